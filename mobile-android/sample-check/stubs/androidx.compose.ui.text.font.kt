// Compile-only stand-in for androidx.compose.ui.text.font: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.compose.ui.text.font
class FontFamily { companion object { val Monospace = FontFamily() } }
