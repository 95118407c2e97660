package dev.perch

import dev.perch.ffi.DeviceInfo
import dev.perch.ffi.DeviceInfoProvider
import dev.perch.ffi.DeviceStatus
import dev.perch.ffi.Location
import dev.perch.ffi.LocationPermission
import dev.perch.ffi.LocationProvider
import dev.perch.ffi.LocationRequest
import dev.perch.ffi.Notification
import dev.perch.ffi.NotificationPresenter
import dev.perch.ffi.ProviderException
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.TimeoutCancellationException
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

/**
 * A location source written with suspend functions (the fused location client's callbacks
 * fit here); [asLocationProvider] makes the generated interface the node calls.
 */
interface SuspendLocationProvider {
    /** A fix for [request]; throw [ProviderException] to say why there is none. */
    suspend fun currentLocation(request: LocationRequest): Location

    /** The permission the user granted right now (read before each fix). */
    fun permission(): LocationPermission
}

/** Device facts written with suspend functions; see [asDeviceInfoProvider]. */
interface SuspendDeviceInfoProvider {
    /** Static facts. */
    suspend fun deviceInfo(): DeviceInfo

    /** Changing facts (battery, network, storage). */
    suspend fun deviceStatus(): DeviceStatus
}

/** A notification shade written with a suspend function; see [asNotificationPresenter]. */
fun interface SuspendNotificationPresenter {
    /** Shows [notification] (keep [Notification.id] with it for the reply); returns the platform's id. */
    suspend fun post(notification: Notification): String?
}

/**
 * The node calls providers on its own blocking threads, so waiting there is allowed: each
 * call runs the suspend function under the request's deadline. An exception the provider
 * did not type becomes [ProviderException.Failed] with its message, and a missed deadline
 * [ProviderException.Unavailable], so the host always gets a typed answer.
 */
private fun <T> bridge(what: String, timeoutMs: Long, body: suspend () -> T): T = runBlocking {
    try {
        withTimeout(timeoutMs) { body() }
    } catch (e: ProviderException) {
        throw e
    } catch (e: TimeoutCancellationException) {
        throw ProviderException.Unavailable("$what gave no answer within $timeoutMs ms")
    } catch (e: CancellationException) {
        throw e
    } catch (e: Exception) {
        throw ProviderException.Failed("$what failed: ${e.message ?: e.javaClass.simpleName}")
    }
}

/** How long a provider without a caller's deadline may take (the node's own limit is 15 s). */
private const val DEFAULT_TIMEOUT_MS = 15_000L

/** The generated [LocationProvider] over this suspend one. */
fun SuspendLocationProvider.asLocationProvider(): LocationProvider {
    val source = this
    return object : LocationProvider {
        override fun currentLocation(request: LocationRequest): Location =
            bridge("the location provider", request.timeoutMs.toLong().coerceIn(1, DEFAULT_TIMEOUT_MS)) {
                source.currentLocation(request)
            }

        override fun permission(): LocationPermission = source.permission()
    }
}

/** The generated [DeviceInfoProvider] over this suspend one. */
fun SuspendDeviceInfoProvider.asDeviceInfoProvider(): DeviceInfoProvider {
    val source = this
    return object : DeviceInfoProvider {
        override fun deviceInfo(): DeviceInfo =
            bridge("the device info provider", DEFAULT_TIMEOUT_MS) { source.deviceInfo() }

        override fun deviceStatus(): DeviceStatus =
            bridge("the device info provider", DEFAULT_TIMEOUT_MS) { source.deviceStatus() }
    }
}

/** The generated [NotificationPresenter] over this suspend one. */
fun SuspendNotificationPresenter.asNotificationPresenter(): NotificationPresenter {
    val shade = this
    return object : NotificationPresenter {
        override fun post(notification: Notification): String? =
            bridge("the notification presenter", DEFAULT_TIMEOUT_MS) { shade.post(notification) }
    }
}
