// Compile-only stand-in for android.provider: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package android.provider
import android.content.ContentResolver
object Settings {
    const val ACTION_APPLICATION_DETAILS_SETTINGS = "android.settings.APPLICATION_DETAILS_SETTINGS"
    object Global {
        const val DEVICE_NAME = "device_name"
        @JvmStatic fun getString(r: ContentResolver, name: String): String? = null
    }
}
