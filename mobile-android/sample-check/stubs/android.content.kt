// Compile-only stand-in for android.content: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package android.content
import java.io.File
open class Context {
    open val applicationContext: Context get() = this
    open val packageName: String get() = ""
    open val packageManager: android.content.pm.PackageManager get() = TODO()
    open val contentResolver: ContentResolver get() = TODO()
    open val filesDir: File get() = TODO()
    fun <T> getSystemService(c: Class<T>): T = TODO()
    fun getString(id: Int): String = ""
    fun getSharedPreferences(name: String, mode: Int): SharedPreferences = TODO()
    fun startActivity(i: Intent) {}
    fun stopService(i: Intent): Boolean = true
    companion object { const val MODE_PRIVATE = 0 }
}
class ContentResolver
open class ContextWrapper : Context()
interface SharedPreferences {
    fun getString(key: String, def: String?): String?
    fun edit(): Editor
    interface Editor {
        fun putString(key: String, value: String?): Editor
        fun remove(key: String): Editor
        fun commit(): Boolean
    }
}
open class Intent() {
    constructor(c: Context, cls: Class<*>) : this()
    constructor(action: String, uri: android.net.Uri?) : this()
    val action: String? get() = null
    fun putExtra(name: String, value: String?): Intent = this
    fun getStringExtra(name: String): String? = null
    fun setAction(a: String?): Intent = this
    fun setData(u: android.net.Uri?): Intent = this
    fun addFlags(f: Int): Intent = this
    companion object { const val FLAG_ACTIVITY_NEW_TASK = 0x10000000 }
}
abstract class BroadcastReceiver {
    abstract fun onReceive(context: Context, intent: Intent)
    fun goAsync(): PendingResult = TODO()
    class PendingResult { fun finish() {} }
}
