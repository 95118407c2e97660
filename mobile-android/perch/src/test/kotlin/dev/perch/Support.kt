package dev.perch

import dev.perch.ffi.Location
import dev.perch.ffi.LocationAccess
import dev.perch.ffi.LocationPermission
import dev.perch.ffi.LocationProvider
import dev.perch.ffi.LocationRequest
import dev.perch.ffi.LocationSource
import dev.perch.ffi.NodeEvent
import dev.perch.ffi.NodeSettings
import dev.perch.ffi.Notification
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.launch
import kotlinx.coroutines.withTimeout
import java.io.File
import java.nio.file.Files
import java.util.Collections

/** Settings for a test phone with its own temporary data dir. */
fun phoneSettings(name: String, dir: File) = NodeSettings(
    displayName = name,
    dataDir = dir.path,
    platform = "android",
    deviceFamily = "Pixel",
    modelIdentifier = "Pixel 9",
    locale = "en-AU",
)

/** A temporary directory, removed by [close]. */
class TempDir : AutoCloseable {
    /** The directory. */
    val file: File = Files.createTempDirectory("perch-kt-node").toFile()
    override fun close() {
        file.deleteRecursively()
    }
}

/**
 * Records a device's events from the moment it is made (the collector subscribes before the
 * constructor returns), so a test can wait for the next event of a kind with a deadline.
 */
class Recorder(device: PerchDevice, scope: CoroutineScope) {
    private val channel = Channel<NodeEvent>(Channel.UNLIMITED)

    /** Every event seen so far, in order. */
    val seen: MutableList<NodeEvent> = Collections.synchronizedList(mutableListOf())

    init {
        scope.launch(start = CoroutineStart.UNDISPATCHED) {
            device.events.collect {
                seen += it
                channel.send(it)
            }
        }
    }

    /** The next event of type [T], skipping others; fails at the deadline. */
    suspend inline fun <reified T : NodeEvent> next(): T = withTimeout(DEADLINE_MS) {
        var e = receive()
        while (e !is T) e = receive()
        e as T
    }

    /** The next event, whatever it is (for [next]). */
    suspend fun receive(): NodeEvent = channel.receive()
}

/** Sydney, by Wi-Fi: the fix the Kotlin providers answer with. */
val SYDNEY = Location(
    lat = -33.8688,
    lon = 151.2093,
    accuracyMeters = 8.0,
    altitudeMeters = 12.5,
    speedMps = null,
    headingDeg = null,
    timestampMs = null,
    source = LocationSource.WIFI,
)

/**
 * A plain (generated-interface) location provider with a fixed fix and a settable permission;
 * [failWith] makes it throw instead.
 */
class FixedLocation(
    @Volatile var access: LocationAccess = LocationAccess.ALWAYS,
) : LocationProvider {
    /** Requests seen, in order. */
    val requests: MutableList<LocationRequest> = Collections.synchronizedList(mutableListOf())

    /** Thrown from currentLocation when set. */
    @Volatile var failWith: Exception? = null

    override fun currentLocation(request: LocationRequest): Location {
        requests += request
        failWith?.let { throw it }
        return SYDNEY
    }

    override fun permission() = LocationPermission(access = access, precise = true)
}

/** A notification shade that keeps what it was asked to show. */
class Shade : SuspendNotificationPresenter {
    /** Notifications posted, in order. */
    val posted: MutableList<Notification> = Collections.synchronizedList(mutableListOf())

    override suspend fun post(notification: Notification): String {
        posted += notification
        return "android-${posted.size}"
    }
}
