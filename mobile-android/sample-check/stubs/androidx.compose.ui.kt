// Compile-only stand-in for androidx.compose.ui: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.compose.ui
interface Modifier { companion object : Modifier }
interface Alignment { interface Horizontal; companion object { val CenterHorizontally: Horizontal = TODO() } }
