// Compile-only stand-in for android.os: just the signatures the sample calls, so kotlinc can
// type-check the sample here (scripts/android-sample-check.sh). Not the real library.
@file:Suppress("unused", "UNUSED_PARAMETER", "ClassName")
package android.os
class Bundle { fun getCharSequence(key: String): CharSequence? = null }
interface IBinder
object Build {
    @JvmField val MANUFACTURER: String = ""
    @JvmField val MODEL: String = ""
    object VERSION { @JvmField val SDK_INT: Int = 0; @JvmField val RELEASE: String = "" }
    object VERSION_CODES { const val Q = 29; const val TIRAMISU = 33 }
}
class BatteryManager {
    fun getIntProperty(id: Int): Int = 0
    companion object {
        const val BATTERY_PROPERTY_CAPACITY = 4
        const val BATTERY_PROPERTY_STATUS = 6
        const val BATTERY_STATUS_CHARGING = 2
        const val BATTERY_STATUS_DISCHARGING = 3
        const val BATTERY_STATUS_NOT_CHARGING = 4
        const val BATTERY_STATUS_FULL = 5
    }
}
class PowerManager { val isPowerSaveMode: Boolean get() = false }
class StatFs(path: String) { val totalBytes: Long get() = 0; val availableBytes: Long get() = 0 }
object SystemClock { @JvmStatic fun elapsedRealtime(): Long = 0 }
