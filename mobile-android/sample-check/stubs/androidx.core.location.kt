// Compile-only stand-in for androidx.core.location: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.core.location
object LocationManagerCompat { @JvmStatic fun isLocationEnabled(m: android.location.LocationManager): Boolean = true }
