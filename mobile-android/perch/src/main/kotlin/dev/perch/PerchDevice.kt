package dev.perch

import dev.perch.ffi.AccessEntry
import dev.perch.ffi.AppState
import dev.perch.ffi.CanvasPresenter
import dev.perch.ffi.DeviceInfoProvider
import dev.perch.ffi.Location
import dev.perch.ffi.LocationProvider
import dev.perch.ffi.LocationReport
import dev.perch.ffi.NodeEvent
import dev.perch.ffi.NodeListener
import dev.perch.ffi.NodeSettings
import dev.perch.ffi.NodeStatus
import dev.perch.ffi.NotificationPresenter
import dev.perch.ffi.NotificationReply
import dev.perch.ffi.PerchNode
import dev.perch.ffi.SecretStore
import dev.perch.ffi.WatchedPlace
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.async
import kotlinx.coroutines.cancel
import kotlinx.coroutines.channels.BufferOverflow
import kotlinx.coroutines.flow.MutableSharedFlow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.SharedFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asSharedFlow
import kotlinx.coroutines.flow.asStateFlow

/**
 * This device as a node of a Perch host, for Kotlin callers: the generated [PerchNode] with
 * its events as a [SharedFlow] and every call as a suspend function. Pure Kotlin (no
 * android.* imports), so the same class runs in JVM tests and in the app.
 *
 * The Rust side's blocking calls (connect, start, stop, status) run on [dispatcher]
 * (Dispatchers.IO by default) in a scope this object owns, and the caller only awaits them:
 * cancelling the caller returns at once, while the Rust call finishes by itself (every one
 * of them is bounded on the Rust side). Its async exports (pairing by setup code, replies,
 * the access record, location reports) are suspend functions already: cancelling the caller
 * aborts the Rust future.
 *
 * [secretStore]: the platform keystore for the identity key and device tokens (Android
 * Keystore-wrapped storage); without it they are files in the data dir.
 */
class PerchDevice(
    settings: NodeSettings,
    secretStore: SecretStore? = null,
    private val dispatcher: CoroutineDispatcher = Dispatchers.IO,
) : AutoCloseable {
    /** The generated object, for calls this wrapper does not cover. */
    val node: PerchNode =
        if (secretStore == null) PerchNode(settings) else PerchNode.withSecretStore(settings, secretStore)

    private val calls = CoroutineScope(SupervisorJob() + dispatcher)

    // The listener runs on a Rust blocking thread and must not wait for slow collectors:
    // events go into a bounded buffer, the oldest dropped if a collector falls that far behind.
    private val eventFlow = MutableSharedFlow<NodeEvent>(
        extraBufferCapacity = EVENT_BUFFER,
        onBufferOverflow = BufferOverflow.DROP_OLDEST,
    )
    private val lastEvent = MutableStateFlow<NodeEvent?>(null)

    /** Every event from now on, in order (Connecting, WaitingForApproval, Online, ...). */
    val events: SharedFlow<NodeEvent> = eventFlow.asSharedFlow()

    /** The latest event, for a status line that only needs the current state. */
    val latest: StateFlow<NodeEvent?> = lastEvent.asStateFlow()

    init {
        node.setListener(object : NodeListener {
            override fun onEvent(event: NodeEvent) {
                lastEvent.value = event
                eventFlow.tryEmit(event)
            }
        })
    }

    /** This device's id, as the host knows it. */
    suspend fun deviceId(): String = status().deviceId

    /** Answers `location.get`; takes effect at the next start. */
    fun setLocationProvider(provider: LocationProvider) = node.setLocationProvider(provider)

    /** Answers `device.info` and `device.status`; takes effect at the next start. */
    fun setDeviceInfoProvider(provider: DeviceInfoProvider) = node.setDeviceInfoProvider(provider)

    /** Answers `system.notify`; takes effect at the next start. */
    fun setNotificationPresenter(presenter: NotificationPresenter) =
        node.setNotificationPresenter(presenter)

    /** Answers the canvas commands with the app's web view; takes effect at the next start. */
    fun setCanvasPresenter(presenter: CanvasPresenter) = node.setCanvasPresenter(presenter)

    /** Pairs with the host a setup code names and starts the node (see [PerchNode.pairWithSetupCode]). */
    suspend fun pairWithSetupCode(code: String) = node.pairWithSetupCode(code)

    /** Connects to a host by address; an unknown device waits for approval on the host. */
    suspend fun connectTo(url: String) = blocking { node.connectTo(url) }

    /** Starts the node with its last (or its only pinned) host. */
    suspend fun start() = blocking { node.start() }

    /** Closes the connection and stops the node. */
    suspend fun stop() = blocking { node.stop() }

    /** A snapshot for a status screen. */
    suspend fun status(): NodeStatus = blocking { node.status() }

    /** The newest [limit] commands the host ran on this device. */
    suspend fun accessRecord(limit: Int = 50): List<AccessEntry> =
        node.accessRecord(limit.coerceAtLeast(1).toUInt())

    /** Sends the user's answer to a notification the host posted; returns once the host has it. */
    suspend fun replyToNotification(notificationId: String, actionId: String? = null, text: String? = null) =
        node.replyToNotification(NotificationReply(notificationId, actionId, text))

    /** A location update from the platform (a geofence, a fused-provider fix); the node decides whether it is worth sending. */
    suspend fun reportLocation(location: Location): LocationReport = node.reportLocation(location)

    /** The named places to register as geofences, asked of the host now. */
    suspend fun watchedPlaces(): List<WatchedPlace> = node.watchedPlaces()

    /** The app came on screen or left it (cheap: no suspension needed). */
    fun setAppState(state: AppState) = node.setAppState(state)

    /** The network changed: a node waiting to reconnect tries now. */
    fun networkChanged() = node.networkChanged()

    /** Stops waiting for running calls and frees the native node; stop() first to close politely. */
    override fun close() {
        calls.cancel()
        node.close()
    }

    private suspend fun <T> blocking(call: () -> T): T = calls.async { call() }.await()

    private companion object {
        const val EVENT_BUFFER = 256
    }
}
