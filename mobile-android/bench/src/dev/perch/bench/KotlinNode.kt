package dev.perch.bench

import dev.perch.PerchDevice
import dev.perch.ffi.DeviceInfo
import dev.perch.ffi.DeviceInfoProvider
import dev.perch.ffi.DeviceStatus
import dev.perch.ffi.NodeEvent
import dev.perch.ffi.NodeSettings
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

/** device.info from Kotlin: fixed facts, answered at once. */
private object Facts : DeviceInfoProvider {
    override fun deviceInfo() = DeviceInfo(
        deviceName = "Kotlin Bench Phone", systemName = "Android", systemVersion = "16",
        modelIdentifier = "Pixel 9", appVersion = "0.0.0", locale = "en-AU",
    )

    override fun deviceStatus() = DeviceStatus(battery = null, network = null, storage = null, uptimeSeconds = 0u)
}

/**
 * A Kotlin node process for the invoke bench (core/cli/benches/invoke, scenario `ffi`):
 * perch-ffi's node runtime with a Kotlin DeviceInfoProvider, paired by the setup code in
 * PERCH_SETUP_CODE, named PERCH_NODE_NAME, keeping its identity in PERCH_NODE_DIR. Prints
 * `ONLINE` once paired and serves until its standard input closes.
 */
fun main() {
    val device = PerchDevice(
        NodeSettings(
            displayName = System.getenv("PERCH_NODE_NAME") ?: "Kotlin Bench Phone",
            dataDir = System.getenv("PERCH_NODE_DIR") ?: error("PERCH_NODE_DIR is not set"),
            platform = "android", deviceFamily = "Pixel", modelIdentifier = "Pixel 9", locale = "en-AU",
        ),
    )
    device.setDeviceInfoProvider(Facts)
    runBlocking {
        withTimeout(30_000) {
            // Subscribed before pairing starts, so Online cannot be missed.
            val online = async(start = CoroutineStart.UNDISPATCHED) { device.events.first { it is NodeEvent.Online } }
            device.pairWithSetupCode(System.getenv("PERCH_SETUP_CODE") ?: error("PERCH_SETUP_CODE is not set"))
            online.await()
        }
    }
    println("ONLINE")
    System.out.flush()
    while (System.`in`.read() >= 0) {
        // Serve until the bench closes our input.
    }
    runBlocking { device.stop() }
    device.close()
}
