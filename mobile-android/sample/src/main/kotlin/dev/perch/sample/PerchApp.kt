package dev.perch.sample

import android.app.Application
import android.net.ConnectivityManager
import android.net.Network
import android.os.Build
import android.provider.Settings
import androidx.lifecycle.DefaultLifecycleObserver
import androidx.lifecycle.LifecycleOwner
import androidx.lifecycle.ProcessLifecycleOwner
import dev.perch.PerchDevice
import dev.perch.asLocationProvider
import dev.perch.ffi.AppState
import dev.perch.ffi.NodeSettings
import java.io.File
import java.util.Locale
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob

/**
 * The process-wide node: one [PerchDevice] for the app's lifetime, with the platform
 * providers plugged in before anything starts it, and the app's lifecycle and network
 * changes reported to it.
 */
class PerchApp : Application() {
    /** The node; the activity pairs it, [NodeService] keeps it running. */
    lateinit var device: PerchDevice
        private set

    /** Work that outlives a screen (a notification reply finishing after its receiver returned). */
    val appScope = CoroutineScope(SupervisorJob() + Dispatchers.Default)

    override fun onCreate() {
        super.onCreate()
        Notifications.createChannels(this)

        val settings = NodeSettings(
            displayName = deviceName(),
            dataDir = File(filesDir, "perch").absolutePath,
            platform = "android",
            deviceFamily = Build.MANUFACTURER.replaceFirstChar { it.titlecase(Locale.ROOT) },
            modelIdentifier = Build.MODEL,
            locale = Locale.getDefault().toLanguageTag(),
        )
        device = PerchDevice(settings, secretStore = KeystoreSecretStore(this))
        device.setLocationProvider(FusedLocation(this).asLocationProvider())
        device.setDeviceInfoProvider(AndroidDeviceInfo(this))
        device.setNotificationPresenter(NotificationShade(this))

        // onStart/onStop of the whole process (any activity visible), not of one activity.
        ProcessLifecycleOwner.get().lifecycle.addObserver(object : DefaultLifecycleObserver {
            override fun onStart(owner: LifecycleOwner) = device.setAppState(AppState.FOREGROUND)
            override fun onStop(owner: LifecycleOwner) = device.setAppState(AppState.BACKGROUND)
        })

        // A new default network (Wi-Fi joined, mobile data back) ends a reconnect wait at once.
        getSystemService(ConnectivityManager::class.java).registerDefaultNetworkCallback(
            object : ConnectivityManager.NetworkCallback() {
                override fun onAvailable(network: Network) = device.networkChanged()
            },
        )
    }

    /** The name the user gave the phone (Settings > About), else its model. */
    private fun deviceName(): String =
        Settings.Global.getString(contentResolver, Settings.Global.DEVICE_NAME)
            ?.takeIf { it.isNotBlank() }
            ?: Build.MODEL
}
