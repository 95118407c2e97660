// Compile-only stand-in for android.annotation: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
package android.annotation
annotation class SuppressLint(vararg val value: String)
