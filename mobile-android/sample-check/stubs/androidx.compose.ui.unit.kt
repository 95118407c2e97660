// Compile-only stand-in for androidx.compose.ui.unit: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.compose.ui.unit
class Dp
class TextUnit
val Int.dp: Dp get() = TODO()
val Int.sp: TextUnit get() = TODO()
