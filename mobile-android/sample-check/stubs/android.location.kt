// Compile-only stand-in for android.location: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package android.location
class Location {
    val latitude: Double get() = 0.0
    val longitude: Double get() = 0.0
    val accuracy: Float get() = 0f
    val altitude: Double get() = 0.0
    val speed: Float get() = 0f
    val bearing: Float get() = 0f
    val time: Long get() = 0
    val provider: String? get() = null
    fun hasAccuracy() = true
    fun hasAltitude() = true
    fun hasSpeed() = true
    fun hasBearing() = true
}
class LocationManager { companion object { const val GPS_PROVIDER = "gps" } }
