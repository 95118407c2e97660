// Compile-only stand-in for androidx.compose.foundation: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.compose.foundation
import androidx.compose.runtime.Composable
import androidx.compose.ui.Modifier
class ScrollState
@Composable fun rememberScrollState(): ScrollState = TODO()
fun Modifier.verticalScroll(state: ScrollState): Modifier = this
