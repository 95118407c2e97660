package dev.perch.sample

import android.Manifest
import android.app.NotificationChannel
import android.app.NotificationManager
import android.app.PendingIntent
import android.content.BroadcastReceiver
import android.content.Context
import android.content.Intent
import android.content.pm.PackageManager
import android.net.Uri
import android.os.Build
import androidx.core.app.NotificationCompat
import androidx.core.app.NotificationManagerCompat
import androidx.core.app.RemoteInput
import androidx.core.content.ContextCompat
import dev.perch.ffi.NotificationPresenter
import dev.perch.ffi.PerchException
import dev.perch.ffi.ProviderException
import kotlinx.coroutines.launch
import kotlinx.coroutines.withTimeout
import dev.perch.ffi.Notification as NodeNotification

/** The app's notification channels and the ids its notifications share. */
object Notifications {
    /** What the assistant posts (system.notify). */
    const val CHANNEL_ASSISTANT = "assistant"

    /** system.notify with priority `timeSensitive`: a channel that may interrupt. */
    const val CHANNEL_URGENT = "assistant-urgent"

    /** The foreground service's ongoing notification. */
    const val CHANNEL_NODE = "node"

    /** Platform id of every assistant notification; the node's id is the tag, which keeps them apart. */
    const val ASSISTANT_ID = 1

    /** Platform id of the foreground service's notification. */
    const val NODE_ID = 2

    /** Creates the channels (idempotent; Android keeps the user's changes to them). */
    fun createChannels(context: Context) {
        val manager = context.getSystemService(NotificationManager::class.java)
        manager.createNotificationChannels(
            listOf(
                NotificationChannel(CHANNEL_ASSISTANT, context.getString(R.string.channel_assistant), NotificationManager.IMPORTANCE_DEFAULT)
                    .apply { description = context.getString(R.string.channel_assistant_desc) },
                NotificationChannel(CHANNEL_URGENT, context.getString(R.string.channel_urgent), NotificationManager.IMPORTANCE_HIGH)
                    .apply { description = context.getString(R.string.channel_urgent_desc) },
                NotificationChannel(CHANNEL_NODE, context.getString(R.string.channel_node), NotificationManager.IMPORTANCE_LOW)
                    .apply { description = context.getString(R.string.channel_node_desc) },
            ),
        )
    }

    /** Whether this app may post at all (the runtime permission on 13+, and the user's switch). */
    fun allowed(context: Context): Boolean {
        val permission = Build.VERSION.SDK_INT < Build.VERSION_CODES.TIRAMISU ||
            ContextCompat.checkSelfPermission(context, Manifest.permission.POST_NOTIFICATIONS) ==
            PackageManager.PERMISSION_GRANTED
        return permission && NotificationManagerCompat.from(context).areNotificationsEnabled()
    }
}

/**
 * `system.notify` through NotificationCompat: title, body, the assistant's buttons, and an
 * inline Reply (RemoteInput) when there is room for it. Taps and replies go to
 * [ReplyReceiver] carrying the node's id for the notification, which is what the host
 * matches the answer with.
 */
class NotificationShade(context: Context) : NotificationPresenter {
    private val app = context.applicationContext

    override fun post(notification: NodeNotification): String? {
        if (!Notifications.allowed(app)) {
            throw ProviderException.PermissionDenied("notifications are turned off for this app")
        }
        val channel = if (notification.priority == "timeSensitive") Notifications.CHANNEL_URGENT else Notifications.CHANNEL_ASSISTANT
        val builder = NotificationCompat.Builder(app, channel)
            .setSmallIcon(R.drawable.ic_perch)
            .setContentTitle(notification.title)
            .setContentText(notification.body)
            .setStyle(NotificationCompat.BigTextStyle().bigText(notification.body))
            .setCategory(NotificationCompat.CATEGORY_MESSAGE)
            .setAutoCancel(true)
            // `passive`: shown, but without sound or vibration.
            .setSilent(notification.priority == "passive")
            .setPriority(
                when (notification.priority) {
                    "passive" -> NotificationCompat.PRIORITY_LOW
                    "timeSensitive" -> NotificationCompat.PRIORITY_HIGH
                    else -> NotificationCompat.PRIORITY_DEFAULT
                },
            )
        for (action in notification.actions) {
            val intent = ReplyReceiver.intent(app, notification.id, actionId = action.id)
            val pending = PendingIntent.getBroadcast(
                app, 0, intent,
                PendingIntent.FLAG_UPDATE_CURRENT or PendingIntent.FLAG_IMMUTABLE,
            )
            builder.addAction(NotificationCompat.Action.Builder(0, action.title, pending).build())
        }
        // Android shows at most three buttons: the inline reply only when the actions leave room.
        if (notification.actions.size < MAX_BUTTONS) {
            val input = RemoteInput.Builder(ReplyReceiver.KEY_TEXT)
                .setLabel(app.getString(R.string.reply_hint))
                .build()
            // Mutable, as RemoteInput writes the typed text into it; explicit, so only our receiver gets it.
            val pending = PendingIntent.getBroadcast(
                app, 0, ReplyReceiver.intent(app, notification.id, actionId = null),
                PendingIntent.FLAG_UPDATE_CURRENT or PendingIntent.FLAG_MUTABLE,
            )
            builder.addAction(
                NotificationCompat.Action.Builder(0, app.getString(R.string.reply), pending)
                    .addRemoteInput(input)
                    .setAllowGeneratedReplies(true)
                    .build(),
            )
        }
        try {
            NotificationManagerCompat.from(app).notify(notification.id, Notifications.ASSISTANT_ID, builder.build())
        } catch (e: SecurityException) {
            // The permission was revoked between the check and the post.
            throw ProviderException.PermissionDenied("notifications are turned off for this app")
        }
        return notification.id
    }

    private companion object {
        const val MAX_BUTTONS = 3
    }
}

/**
 * A tap on an assistant notification's button, or an inline reply: sends it to the host
 * with `replyToNotification`, then clears the notification (or says why the answer did
 * not arrive, so the user can act).
 */
class ReplyReceiver : BroadcastReceiver() {
    override fun onReceive(context: Context, intent: Intent) {
        val notificationId = intent.getStringExtra(EXTRA_NOTIFICATION_ID) ?: return
        val actionId = intent.getStringExtra(EXTRA_ACTION_ID)
        val text = RemoteInput.getResultsFromIntent(intent)?.getCharSequence(KEY_TEXT)?.toString()
        val app = context.applicationContext as PerchApp
        // The host's answer takes a round trip: keep the broadcast alive (within its ~10 s).
        val pending = goAsync()
        app.appScope.launch {
            val failure = try {
                withTimeout(REPLY_TIMEOUT_MS) {
                    app.device.replyToNotification(notificationId, actionId = actionId, text = text)
                }
                null
            } catch (e: PerchException.UnknownNotification) {
                "The assistant no longer waits for this answer."
            } catch (e: PerchException.NotConnected) {
                "Not connected to your Perch host; the answer was not sent."
            } catch (e: PerchException) {
                "The answer was not sent: ${e.message}"
            } catch (e: kotlinx.coroutines.TimeoutCancellationException) {
                "Your Perch host did not confirm the answer in time."
            }
            try {
                val manager = NotificationManagerCompat.from(app)
                if (failure == null || !Notifications.allowed(app)) {
                    manager.cancel(notificationId, Notifications.ASSISTANT_ID)
                } else {
                    // Replacing the notification also ends the reply field's spinner.
                    manager.notify(
                        notificationId, Notifications.ASSISTANT_ID,
                        NotificationCompat.Builder(app, Notifications.CHANNEL_ASSISTANT)
                            .setSmallIcon(R.drawable.ic_perch)
                            .setContentTitle(app.getString(R.string.app_name))
                            .setContentText(failure)
                            .setAutoCancel(true)
                            .build(),
                    )
                }
            } catch (e: SecurityException) {
                // Notifications were switched off meanwhile: nothing left to update.
            } finally {
                pending.finish()
            }
        }
    }

    companion object {
        /** The RemoteInput result key of the inline reply. */
        const val KEY_TEXT = "perch.reply.text"
        private const val EXTRA_NOTIFICATION_ID = "perch.notification.id"
        private const val EXTRA_ACTION_ID = "perch.action.id"
        private const val REPLY_TIMEOUT_MS = 9_000L

        /**
         * An explicit intent to this receiver for one notification (and button, when [actionId]
         * is set). Its data URI names both, so Android never merges two buttons' PendingIntents
         * (request codes alone would repeat after a process restart).
         */
        fun intent(context: Context, notificationId: String, actionId: String?): Intent =
            Intent(context, ReplyReceiver::class.java)
                .setData(
                    Uri.Builder().scheme("perch").authority("notification")
                        .appendPath(notificationId).appendPath(actionId ?: "reply").build(),
                )
                .putExtra(EXTRA_NOTIFICATION_ID, notificationId)
                .apply { if (actionId != null) putExtra(EXTRA_ACTION_ID, actionId) }
    }
}
