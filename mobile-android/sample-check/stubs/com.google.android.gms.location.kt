// Compile-only stand-in for com.google.android.gms.location: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package com.google.android.gms.location
import com.google.android.gms.tasks.CancellationToken
import com.google.android.gms.tasks.Task
class CurrentLocationRequest {
    class Builder {
        fun setPriority(p: Int) = this
        fun setDurationMillis(ms: Long) = this
        fun setMaxUpdateAgeMillis(ms: Long) = this
        fun build(): CurrentLocationRequest = TODO()
    }
}
object Priority {
    const val PRIORITY_HIGH_ACCURACY = 100
    const val PRIORITY_BALANCED_POWER_ACCURACY = 102
    const val PRIORITY_LOW_POWER = 104
}
interface FusedLocationProviderClient {
    fun getCurrentLocation(r: CurrentLocationRequest, t: CancellationToken?): Task<android.location.Location?>
}
object LocationServices { @JvmStatic fun getFusedLocationProviderClient(c: android.content.Context): FusedLocationProviderClient = TODO() }
