// Compile-only stand-in for androidx.core.app: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package androidx.core.app
import android.app.PendingIntent
import android.content.Context
import android.content.Intent
class NotificationCompat {
    class Builder(c: Context, channel: String) {
        fun setSmallIcon(i: Int) = this
        fun setContentTitle(t: CharSequence?) = this
        fun setContentText(t: CharSequence?) = this
        fun setStyle(s: Style?) = this
        fun setCategory(c: String?) = this
        fun setAutoCancel(b: Boolean) = this
        fun setSilent(b: Boolean) = this
        fun setPriority(p: Int) = this
        fun setOngoing(b: Boolean) = this
        fun setForegroundServiceBehavior(b: Int) = this
        fun setContentIntent(p: PendingIntent?) = this
        fun addAction(a: Action?) = this
        fun addAction(icon: Int, title: CharSequence?, p: PendingIntent?) = this
        fun build(): android.app.Notification = TODO()
    }
    abstract class Style
    class BigTextStyle : Style() { fun bigText(t: CharSequence?) = this }
    class Action {
        class Builder(icon: Int, title: CharSequence?, p: PendingIntent?) {
            fun addRemoteInput(r: RemoteInput) = this
            fun setAllowGeneratedReplies(b: Boolean) = this
            fun build(): Action = TODO()
        }
    }
    companion object {
        const val CATEGORY_MESSAGE = "msg"
        const val PRIORITY_LOW = -1
        const val PRIORITY_DEFAULT = 0
        const val PRIORITY_HIGH = 1
        const val FOREGROUND_SERVICE_IMMEDIATE = 1
    }
}
class NotificationManagerCompat {
    fun areNotificationsEnabled(): Boolean = true
    fun notify(tag: String?, id: Int, n: android.app.Notification) {}
    fun notify(id: Int, n: android.app.Notification) {}
    fun cancel(tag: String?, id: Int) {}
    companion object { @JvmStatic fun from(c: Context): NotificationManagerCompat = TODO() }
}
class RemoteInput {
    class Builder(key: String) {
        fun setLabel(l: CharSequence?) = this
        fun build(): RemoteInput = TODO()
    }
    companion object { @JvmStatic fun getResultsFromIntent(i: Intent): android.os.Bundle? = null }
}
object ServiceCompat {
    @JvmStatic fun startForeground(s: android.app.Service, id: Int, n: android.app.Notification, type: Int) {}
}
