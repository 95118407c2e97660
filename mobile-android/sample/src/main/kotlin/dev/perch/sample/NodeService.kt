package dev.perch.sample

import android.app.PendingIntent
import android.app.Service
import android.content.Context
import android.content.Intent
import android.content.pm.ServiceInfo
import android.os.Build
import android.os.IBinder
import androidx.core.app.NotificationCompat
import androidx.core.app.NotificationManagerCompat
import androidx.core.app.ServiceCompat
import androidx.core.content.ContextCompat
import dev.perch.ffi.NodeEvent
import dev.perch.ffi.PerchException
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch

/**
 * Keeps the node connected while the app is off screen: a foreground service (type
 * connectedDevice: the phone stays linked to the Perch host) whose ongoing notification
 * shows the connection and offers Disconnect. Started from the activity once the phone is
 * paired; stopping it stops the node.
 */
class NodeService : Service() {
    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.Main.immediate)
    private var watching = false

    override fun onBind(intent: Intent?): IBinder? = null

    override fun onStartCommand(intent: Intent?, flags: Int, startId: Int): Int {
        val app = application as PerchApp
        if (intent?.action == ACTION_STOP) {
            stopSelf()
            return START_NOT_STICKY
        }
        val type = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.Q) {
            ServiceInfo.FOREGROUND_SERVICE_TYPE_CONNECTED_DEVICE
        } else {
            0
        }
        ServiceCompat.startForeground(this, Notifications.NODE_ID, statusNotification("Connecting…"), type)
        if (!watching) {
            watching = true
            scope.launch {
                // A served command says nothing about the connection: the line keeps the last state.
                app.device.latest.collect { event ->
                    if (event != null && event !is NodeEvent.CommandServed) update(describe(event))
                }
            }
        }
        scope.launch {
            try {
                // Already running (just paired): nothing to do. After a restart: the pinned host.
                app.device.start()
            } catch (e: PerchException.NoHost) {
                stopSelf()
            } catch (e: PerchException) {
                update("Cannot start: ${e.message}")
            }
        }
        // Restarted by the system after it had to kill the process: reconnect then too.
        return START_STICKY
    }

    override fun onDestroy() {
        scope.cancel()
        val app = application as PerchApp
        // Off the main thread: stop waits (bounded) for the connection to close.
        app.appScope.launch {
            try {
                app.device.stop()
            } catch (e: PerchException.NotRunning) {
                // Already stopped (the host refused the device, or it was never started).
            }
        }
        super.onDestroy()
    }

    private fun update(text: String) {
        if (Notifications.allowed(this)) {
            try {
                NotificationManagerCompat.from(this).notify(Notifications.NODE_ID, statusNotification(text))
            } catch (e: SecurityException) {
                // Notifications switched off meanwhile; the service keeps running without its text.
            }
        }
    }

    private fun statusNotification(text: String) =
        NotificationCompat.Builder(this, Notifications.CHANNEL_NODE)
            .setSmallIcon(R.drawable.ic_perch)
            .setContentTitle(getString(R.string.app_name))
            .setContentText(text)
            .setOngoing(true)
            .setForegroundServiceBehavior(NotificationCompat.FOREGROUND_SERVICE_IMMEDIATE)
            .setContentIntent(
                PendingIntent.getActivity(
                    this, 0, Intent(this, MainActivity::class.java),
                    PendingIntent.FLAG_IMMUTABLE,
                ),
            )
            .addAction(
                0, getString(R.string.disconnect),
                PendingIntent.getService(
                    this, 1, Intent(this, NodeService::class.java).setAction(ACTION_STOP),
                    PendingIntent.FLAG_IMMUTABLE,
                ),
            )
            .build()

    companion object {
        private const val ACTION_STOP = "dev.perch.sample.STOP"

        /** Starts (or re-poses) the service; call it while the app is in the foreground. */
        fun start(context: Context) {
            ContextCompat.startForegroundService(context, Intent(context, NodeService::class.java))
        }

        /** A one-line description of [event] for the status notification and the screen. */
        fun describe(event: NodeEvent): String = when (event) {
            is NodeEvent.Connecting -> "Connecting to ${event.url}…"
            is NodeEvent.WaitingForApproval -> "Waiting for approval on the host"
            is NodeEvent.Online -> "Connected to ${event.hostName}"
            is NodeEvent.Offline -> "Offline (${event.reason}); retrying in ${event.retryInMs.toLong() / 1000} s"
            is NodeEvent.HostKeyChanged -> "The host's key changed: not connecting"
            is NodeEvent.CommandServed -> "Answered ${event.command}"
            is NodeEvent.Stopped -> event.error?.let { "Stopped: $it" } ?: "Stopped"
        }
    }
}
