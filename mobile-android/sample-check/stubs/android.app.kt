// Compile-only stand-in for android.app: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package android.app
import android.content.Context
import android.content.Intent
open class Application : android.content.ContextWrapper() { open fun onCreate() {} }
class Notification
class NotificationChannel(id: String, name: CharSequence, importance: Int) { var description: String? = null }
class NotificationManager {
    fun createNotificationChannels(channels: List<NotificationChannel>) {}
    companion object {
        const val IMPORTANCE_LOW = 2
        const val IMPORTANCE_DEFAULT = 3
        const val IMPORTANCE_HIGH = 4
    }
}
class PendingIntent {
    companion object {
        const val FLAG_UPDATE_CURRENT = 1 shl 27
        const val FLAG_IMMUTABLE = 1 shl 26
        const val FLAG_MUTABLE = 1 shl 25
        fun getBroadcast(c: Context, code: Int, i: Intent, flags: Int): PendingIntent = TODO()
        fun getActivity(c: Context, code: Int, i: Intent, flags: Int): PendingIntent = TODO()
        fun getService(c: Context, code: Int, i: Intent, flags: Int): PendingIntent = TODO()
    }
}
abstract class Service : android.content.ContextWrapper() {
    val application: Application get() = TODO()
    abstract fun onBind(intent: Intent?): android.os.IBinder?
    open fun onStartCommand(intent: Intent?, flags: Int, startId: Int): Int = 0
    open fun onDestroy() {}
    fun stopSelf() {}
    companion object {
        const val START_STICKY = 1
        const val START_NOT_STICKY = 2
    }
}
