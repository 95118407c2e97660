package dev.perch.sample

import android.content.Context
import android.net.ConnectivityManager
import android.net.NetworkCapabilities
import android.os.BatteryManager
import android.os.Build
import android.os.PowerManager
import android.os.StatFs
import android.os.SystemClock
import android.provider.Settings
import dev.perch.ffi.BatteryInfo
import dev.perch.ffi.BatteryState
import dev.perch.ffi.DeviceInfo
import dev.perch.ffi.DeviceInfoProvider
import dev.perch.ffi.DeviceStatus
import dev.perch.ffi.NetworkInfo
import dev.perch.ffi.NetworkKind
import dev.perch.ffi.StorageInfo
import java.util.Locale

/**
 * `device.info` and `device.status` from BatteryManager, ConnectivityManager and StatFs.
 * Every read is a quick system-service query, so the blocking interface fits as it is.
 */
class AndroidDeviceInfo(context: Context) : DeviceInfoProvider {
    private val app = context.applicationContext
    private val battery = app.getSystemService(BatteryManager::class.java)
    private val power = app.getSystemService(PowerManager::class.java)
    private val connectivity = app.getSystemService(ConnectivityManager::class.java)

    override fun deviceInfo(): DeviceInfo = DeviceInfo(
        deviceName = Settings.Global.getString(app.contentResolver, Settings.Global.DEVICE_NAME)
            ?: Build.MODEL,
        systemName = "Android",
        systemVersion = Build.VERSION.RELEASE,
        modelIdentifier = Build.MODEL,
        appVersion = app.packageManager.getPackageInfo(app.packageName, 0).versionName ?: "unknown",
        locale = Locale.getDefault().toLanguageTag(),
    )

    override fun deviceStatus(): DeviceStatus = DeviceStatus(
        battery = batteryInfo(),
        network = networkInfo(),
        storage = StatFs(app.filesDir.path).let {
            StorageInfo(totalBytes = it.totalBytes.toULong(), freeBytes = it.availableBytes.toULong())
        },
        uptimeSeconds = (SystemClock.elapsedRealtime() / 1000).toULong(),
    )

    private fun batteryInfo(): BatteryInfo? {
        // Integer.MIN_VALUE: no battery, or a device that does not report it.
        val percent = battery.getIntProperty(BatteryManager.BATTERY_PROPERTY_CAPACITY)
        val state = when (battery.getIntProperty(BatteryManager.BATTERY_PROPERTY_STATUS)) {
            BatteryManager.BATTERY_STATUS_CHARGING -> BatteryState.CHARGING
            BatteryManager.BATTERY_STATUS_FULL -> BatteryState.FULL
            BatteryManager.BATTERY_STATUS_DISCHARGING,
            BatteryManager.BATTERY_STATUS_NOT_CHARGING -> BatteryState.UNPLUGGED
            else -> BatteryState.UNKNOWN
        }
        if (percent == Int.MIN_VALUE && state == BatteryState.UNKNOWN) return null
        return BatteryInfo(
            level = if (percent in 0..100) percent / 100.0 else null,
            state = state,
            lowPowerMode = power.isPowerSaveMode,
        )
    }

    private fun networkInfo(): NetworkInfo {
        val caps = connectivity.activeNetwork?.let { connectivity.getNetworkCapabilities(it) }
            ?: return NetworkInfo(kind = NetworkKind.NONE, metered = null)
        val kind = when {
            caps.hasTransport(NetworkCapabilities.TRANSPORT_WIFI) -> NetworkKind.WIFI
            caps.hasTransport(NetworkCapabilities.TRANSPORT_CELLULAR) -> NetworkKind.CELLULAR
            caps.hasTransport(NetworkCapabilities.TRANSPORT_ETHERNET) -> NetworkKind.ETHERNET
            else -> NetworkKind.OTHER
        }
        return NetworkInfo(kind = kind, metered = connectivity.isActiveNetworkMetered)
    }
}
