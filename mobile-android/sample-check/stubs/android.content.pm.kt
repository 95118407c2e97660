// Compile-only stand-in for android.content.pm: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER")
package android.content.pm
class PackageInfo { @JvmField var versionName: String? = null }
abstract class PackageManager {
    fun getPackageInfo(name: String, flags: Int): PackageInfo = TODO()
    companion object { const val PERMISSION_GRANTED = 0 }
}
object ServiceInfo { const val FOREGROUND_SERVICE_TYPE_CONNECTED_DEVICE = 16 }
