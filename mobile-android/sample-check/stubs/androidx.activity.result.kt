// Compile-only stand-in for androidx.activity.result: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.activity.result
abstract class ActivityResultLauncher<I> { fun launch(input: I) {} }
