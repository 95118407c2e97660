// Compile-only stand-in for androidx.compose.ui.platform: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.compose.ui.platform
import androidx.compose.runtime.Composable
object LocalContext { val current: android.content.Context @Composable get() = TODO() }
