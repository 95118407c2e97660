package dev.perch

import dev.perch.ffi.LocationAccess
import dev.perch.ffi.LocationAccuracy
import dev.perch.ffi.LocationPermission
import dev.perch.ffi.LocationRequest
import dev.perch.ffi.ProviderException
import kotlinx.coroutines.delay
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** The suspend adapters alone: what the node sees when a Kotlin provider throws or hangs. */
class ProvidersTest {
    private fun provider(body: suspend () -> dev.perch.ffi.Location) = object : SuspendLocationProvider {
        override suspend fun currentLocation(request: LocationRequest) = body()
        override fun permission() = LocationPermission(LocationAccess.ALWAYS, precise = false)
    }

    private val request = LocationRequest(LocationAccuracy.BALANCED, maxAgeMs = null, timeoutMs = 200u)

    @Test
    fun anUntypedExceptionBecomesFailedWithItsMessage() {
        val p = provider { throw IllegalStateException("no satellites") }.asLocationProvider()
        try {
            p.currentLocation(request)
            fail("the adapter swallowed the exception")
        } catch (e: ProviderException.Failed) {
            assertTrue(e.reason, e.reason.contains("no satellites"))
        }
    }

    @Test
    fun aTypedExceptionPassesThrough() {
        val p = provider { throw ProviderException.PermissionDenied("revoked") }.asLocationProvider()
        try {
            p.currentLocation(request)
            fail("the adapter swallowed the exception")
        } catch (e: ProviderException.PermissionDenied) {
            assertEquals("revoked", e.reason)
        }
    }

    @Test
    fun aProviderPastTheRequestDeadlineIsUnavailable() {
        val p = provider { delay(10_000); SYDNEY }.asLocationProvider()
        val started = System.nanoTime()
        try {
            p.currentLocation(request)
            fail("a hung provider answered")
        } catch (e: ProviderException.Unavailable) {
            assertTrue(e.reason, e.reason.contains("200 ms"))
        }
        assertTrue((System.nanoTime() - started) / 1_000_000 < 5_000)
    }

    @Test
    fun anAnswerPassesThrough() {
        assertEquals(SYDNEY, provider { SYDNEY }.asLocationProvider().currentLocation(request))
    }
}
