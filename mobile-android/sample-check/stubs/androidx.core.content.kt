// Compile-only stand-in for androidx.core.content: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.core.content
import android.content.Context
import android.content.Intent
object ContextCompat {
    @JvmStatic fun checkSelfPermission(c: Context, p: String): Int = 0
    @JvmStatic fun startForegroundService(c: Context, i: Intent) {}
}
