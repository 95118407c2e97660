package dev.perch.sample

import android.Manifest
import android.annotation.SuppressLint
import android.content.Context
import android.content.pm.PackageManager
import android.location.LocationManager
import android.os.Build
import androidx.core.content.ContextCompat
import androidx.core.location.LocationManagerCompat
import com.google.android.gms.location.CurrentLocationRequest
import com.google.android.gms.location.LocationServices
import com.google.android.gms.location.Priority
import com.google.android.gms.tasks.CancellationTokenSource
import dev.perch.SuspendLocationProvider
import dev.perch.ffi.Location
import dev.perch.ffi.LocationAccess
import dev.perch.ffi.LocationAccuracy
import dev.perch.ffi.LocationPermission
import dev.perch.ffi.LocationRequest
import dev.perch.ffi.LocationSource
import dev.perch.ffi.ProviderException
import kotlinx.coroutines.tasks.await

/**
 * `location.get` from the fused location provider. The permission the node sees follows
 * what the user granted: none (or location switched off) is OFF, foreground only is
 * WHILE_USING, "Allow all the time" is ALWAYS; FINE granted means precise.
 */
class FusedLocation(context: Context) : SuspendLocationProvider {
    private val app = context.applicationContext
    private val client = LocationServices.getFusedLocationProviderClient(app)
    private val locationManager = app.getSystemService(LocationManager::class.java)

    override fun permission(): LocationPermission {
        val fine = granted(Manifest.permission.ACCESS_FINE_LOCATION)
        val coarse = granted(Manifest.permission.ACCESS_COARSE_LOCATION)
        if (!(fine || coarse) || !LocationManagerCompat.isLocationEnabled(locationManager)) {
            return LocationPermission(access = LocationAccess.OFF, precise = false)
        }
        // Before Android 10 a foreground grant also covers the background.
        val always = Build.VERSION.SDK_INT < Build.VERSION_CODES.Q ||
            granted(Manifest.permission.ACCESS_BACKGROUND_LOCATION)
        return LocationPermission(
            access = if (always) LocationAccess.ALWAYS else LocationAccess.WHILE_USING,
            precise = fine,
        )
    }

    // The permission is checked just above each request (permission() throws nothing, and the
    // node refuses location.get itself when it says OFF).
    @SuppressLint("MissingPermission")
    override suspend fun currentLocation(request: LocationRequest): Location {
        if (permission().access == LocationAccess.OFF) {
            throw ProviderException.PermissionDenied("location is off or not allowed for this app")
        }
        val priority = when (request.desiredAccuracy) {
            LocationAccuracy.PRECISE -> Priority.PRIORITY_HIGH_ACCURACY
            LocationAccuracy.BALANCED -> Priority.PRIORITY_BALANCED_POWER_ACCURACY
            LocationAccuracy.COARSE -> Priority.PRIORITY_LOW_POWER
        }
        val wanted = CurrentLocationRequest.Builder()
            .setPriority(priority)
            .setDurationMillis(request.timeoutMs.toLong().coerceAtLeast(1))
            // No age given: a fresh fix only.
            .setMaxUpdateAgeMillis(request.maxAgeMs?.toLong() ?: 0L)
            .build()
        // Cancelling the coroutine (the node's deadline) cancels the platform request too.
        val cancel = CancellationTokenSource()
        val fix = client.getCurrentLocation(wanted, cancel.token).await(cancel)
            ?: throw ProviderException.Unavailable("no location fix within ${request.timeoutMs} ms")
        return Location(
            lat = fix.latitude,
            lon = fix.longitude,
            // Fused fixes carry an accuracy; one without is claimed as no better than a city.
            accuracyMeters = if (fix.hasAccuracy()) fix.accuracy.toDouble() else UNKNOWN_ACCURACY_M,
            altitudeMeters = if (fix.hasAltitude()) fix.altitude else null,
            speedMps = if (fix.hasSpeed()) fix.speed.toDouble() else null,
            headingDeg = if (fix.hasBearing()) fix.bearing.toDouble() else null,
            timestampMs = fix.time,
            source = if (fix.provider == LocationManager.GPS_PROVIDER) LocationSource.GPS else LocationSource.UNKNOWN,
        )
    }

    private fun granted(permission: String) =
        ContextCompat.checkSelfPermission(app, permission) == PackageManager.PERMISSION_GRANTED

    private companion object {
        const val UNKNOWN_ACCURACY_M = 5_000.0
    }
}
