package dev.perch

import dev.perch.ffi.AppState
import dev.perch.ffi.LocationAccess
import dev.perch.ffi.LocationAccuracy
import dev.perch.ffi.LocationPermission
import dev.perch.ffi.LocationRequest
import dev.perch.ffi.NodeEvent
import dev.perch.ffi.NodePhase
import dev.perch.ffi.PerchException
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Before
import org.junit.Test

/**
 * The Kotlin wrapper over perch-ffi's generated bindings against a real `perch serve` (one
 * per test, on a free loopback port with a temporary data dir): pairing both ways, commands
 * answered by Kotlin providers, notification replies, a host restart, the background gate
 * and a provider that throws. Run by scripts/kotlin-jvm-test.sh (or Gradle's unit tests with
 * PERCH_BIN and jna.library.path set).
 */
class PerchDeviceTest {
    private lateinit var host: HostProcess
    private lateinit var nodeDir: TempDir
    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)
    private val devices = mutableListOf<PerchDevice>()

    @Before
    fun startHost() {
        host = HostProcess()
        nodeDir = TempDir()
    }

    @After
    fun cleanUp() {
        for (d in devices) {
            runCatching { d.node.stop() }
            d.close()
        }
        scope.cancel()
        host.close()
        nodeDir.close()
    }

    private fun device(name: String): PerchDevice =
        PerchDevice(phoneSettings(name, nodeDir.file)).also { devices += it }

    /** A phone paired by setup code and online, answering location.get from [location]. */
    private suspend fun online(name: String, location: dev.perch.ffi.LocationProvider? = null): Pair<PerchDevice, Recorder> {
        val d = device(name)
        val events = Recorder(d, scope)
        location?.let { d.setLocationProvider(it) }
        d.pairWithSetupCode(host.setupCode())
        events.next<NodeEvent.Online>()
        return d to events
    }

    @Test
    fun pairsBySetupCodeAndComesOnline() = runBlocking {
        val d = device("Kotlin Phone")
        val events = Recorder(d, scope)
        assertEquals(NodePhase.IDLE, d.status().phase)
        val code = host.setupCode()
        try {
            d.pairWithSetupCode(code.dropLast(3))
            fail("a truncated setup code was accepted")
        } catch (e: PerchException.InvalidSetupCode) {
            assertTrue(e.reason.isNotBlank())
        }
        d.pairWithSetupCode(code)
        val online = events.next<NodeEvent.Online>()
        assertTrue(online.hostName.isNotBlank())
        val status = d.status()
        assertEquals(NodePhase.ONLINE, status.phase)
        assertEquals(online.hostName, status.hostName)
        assertEquals(1, status.hosts.size)
        // The host lists the phone as connected, under the device id the node reports.
        val nodes = host.cli("nodes", "list").ok().toString()
        assertTrue(nodes, nodes.contains(status.deviceId))
        d.stop()
        assertEquals(null, events.next<NodeEvent.Stopped>().error)
        try {
            d.stop()
            fail("stop on a stopped node succeeded")
        } catch (e: PerchException.NotRunning) {
            // expected
        }
    }

    @Test
    fun pairsByAddressOnceTheOperatorApproves() = runBlocking {
        val d = device("Approval Phone")
        val events = Recorder(d, scope)
        d.connectTo(host.url)
        val waiting = events.next<NodeEvent.WaitingForApproval>()
        val appCode = waiting.verificationCode
            ?: throw AssertionError("a Perch host proves its key, so there is a code")
        assertEquals(NodePhase.WAITING_FOR_APPROVAL, d.status().phase)
        assertEquals(appCode, d.status().verificationCode)
        val pending = host.cli("devices", "list").ok().at("pending") as List<*>
        val request = pending.firstOrNull { it.at("requestId") == waiting.requestId }
        assertNotNull("the host has request ${waiting.requestId}: $pending", request)
        assertEquals(appCode, request.at("verificationCode"))
        assertFalse(events.seen.any { it is NodeEvent.Online })
        host.cli("devices", "approve", waiting.requestId).ok()
        events.next<NodeEvent.Online>()
        assertEquals(NodePhase.ONLINE, d.status().phase)
    }

    @Test
    fun locationGetIsAnsweredByAKotlinProvider() = runBlocking {
        val asked = mutableListOf<LocationRequest>()
        val provider = object : SuspendLocationProvider {
            override suspend fun currentLocation(request: LocationRequest): dev.perch.ffi.Location {
                asked += request
                delay(20) // a suspending platform call
                return SYDNEY
            }

            override fun permission() = LocationPermission(LocationAccess.ALWAYS, precise = true)
        }
        val (d, events) = online("Kotlin Phone", provider.asLocationProvider())
        val fix = host.invoke("Kotlin Phone", "location.get", """{"desiredAccuracy":"precise","timeoutMs":5000}""").ok()
        assertEquals(-33.8688, fix.at("lat"))
        assertEquals(151.2093, fix.at("lon"))
        assertEquals("wifi", fix.at("source"))
        assertEquals(true, fix.at("isPrecise"))
        assertEquals(1, asked.size)
        assertEquals(LocationAccuracy.PRECISE, asked[0].desiredAccuracy)
        assertTrue(asked[0].timeoutMs in 1u..5000u)
        val served = events.next<NodeEvent.CommandServed>()
        assertEquals("location.get", served.command)
        assertTrue(served.ok)
        // The host's access record, read through the node, shows the command.
        val record = d.accessRecord(10)
        assertEquals("location.get", record.first().command)
    }

    @Test
    fun notificationIsShownAndTheReplyReachesTheHost() = runBlocking {
        val shade = Shade()
        val d = device("Reply Phone")
        val events = Recorder(d, scope)
        d.setNotificationPresenter(shade.asNotificationPresenter())
        d.pairWithSetupCode(host.setupCode())
        events.next<NodeEvent.Online>()
        val params = """{"title":"Dinner?","body":"At 7","actions":[{"id":"yes","title":"Yes"},{"id":"no","title":"No"}]}"""
        val shown = host.invoke("Reply Phone", "system.notify", params).ok()
        assertEquals(true, shown.at("delivered"))
        assertEquals(1, shade.posted.size)
        val n = shade.posted[0]
        assertEquals("Dinner?", n.title)
        assertEquals("At 7", n.body)
        assertEquals(listOf("yes" to "Yes", "no" to "No"), n.actions.map { it.id to it.title })
        // The host knows the notification by the id the app keeps with it.
        assertEquals(n.id, shown.at("notificationId"))

        d.replyToNotification(n.id, actionId = "yes")
        d.replyToNotification(n.id, text = "make it 8")
        val replies = host.cli("devices", "replies").ok().at("replies") as List<*>
        assertEquals(replies.toString(), 2, replies.size)
        val newest = replies[0]
        val older = replies[1]
        assertEquals(d.status().deviceId, newest.at("deviceId"))
        assertEquals(n.id, newest.at("notificationId"))
        assertEquals("Dinner?", newest.at("title"))
        assertEquals("make it 8", newest.at("text"))
        assertEquals("yes", older.at("actionId"))

        try {
            d.replyToNotification("no-such-notification", actionId = "yes")
            fail("a reply to an unknown notification was accepted")
        } catch (e: PerchException.UnknownNotification) {
            assertEquals("no-such-notification", e.notificationId)
        }
        try {
            d.replyToNotification(n.id, actionId = "maybe")
            fail("a reply with an action the notification did not offer was accepted")
        } catch (e: PerchException.InvalidReply) {
            // expected
        }
        assertEquals(2, (host.cli("devices", "replies").ok().at("replies") as List<*>).size)
        assertEquals(NodePhase.ONLINE, d.status().phase)
    }

    @Test
    fun theSameNodeComesBackAfterAHostRestart() = runBlocking {
        val location = FixedLocation()
        val (d, events) = online("Restart Phone", location)
        val deviceId = d.status().deviceId
        host.kill()
        events.next<NodeEvent.Offline>()
        assertEquals(NodePhase.OFFLINE, d.status().phase)
        host.start()
        events.next<NodeEvent.Online>()
        // No new pairing: no approval wait and no setup code, and the same device.
        assertFalse(events.seen.any { it is NodeEvent.WaitingForApproval })
        assertEquals(deviceId, d.status().deviceId)
        assertEquals(NodePhase.ONLINE, d.status().phase)
        val fix = host.invoke("Restart Phone", "location.get").ok()
        assertEquals(-33.8688, fix.at("lat"))
    }

    @Test
    fun whileUsingLocationIsRefusedInTheBackgroundAndServedBackInTheForeground() = runBlocking {
        val location = FixedLocation(access = LocationAccess.WHILE_USING)
        val (d, events) = online("Background Phone", location)
        assertEquals(-33.8688, host.invoke("Background Phone", "location.get").ok().at("lat"))
        val connectsBefore = events.seen.count { it is NodeEvent.Connecting }

        d.setAppState(AppState.BACKGROUND)
        val refused = host.invoke("Background Phone", "location.get")
        assertEquals(refused.stdout, "NODE_BACKGROUND_UNAVAILABLE", refused.errorCode())
        assertEquals("the provider is not asked in the background", 1, location.requests.size)

        d.setAppState(AppState.FOREGROUND)
        assertEquals(-33.8688, host.invoke("Background Phone", "location.get").ok().at("lat"))
        assertEquals(2, location.requests.size)
        // The same connection throughout: no reconnect happened.
        assertEquals(connectsBefore, events.seen.count { it is NodeEvent.Connecting })
        assertEquals(NodePhase.ONLINE, d.status().phase)
    }

    @Test
    fun aProviderThatThrowsGivesTheHostATypedErrorAndTheNodeStaysOnline() = runBlocking {
        val location = FixedLocation()
        val (d, events) = online("Throwing Phone", location)
        location.failWith = IllegalStateException("the GPS driver fell over")
        val failed = host.invoke("Throwing Phone", "location.get")
        assertEquals(failed.stdout, "LOCATION_UNAVAILABLE", failed.errorCode())
        assertTrue(failed.stdout, (failed.json.at("error", "message") as String).contains("the GPS driver fell over"))
        val served = events.next<NodeEvent.CommandServed>()
        assertFalse(served.ok)

        location.failWith = null
        assertEquals(-33.8688, host.invoke("Throwing Phone", "location.get").ok().at("lat"))
        assertEquals(NodePhase.ONLINE, d.status().phase)
        assertFalse(events.seen.any { it is NodeEvent.Offline || it is NodeEvent.Stopped })
    }
}
