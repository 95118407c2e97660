package dev.perch.bench

import dev.perch.ffi.Location
import dev.perch.ffi.LocationAccess
import dev.perch.ffi.LocationPermission
import dev.perch.ffi.LocationProvider
import dev.perch.ffi.LocationRequest
import dev.perch.ffi.LocationSource
import dev.perch.ffi.benchLocationCallbacks

/** A provider that answers at once, so the figure is the crossing alone. */
private object Instant : LocationProvider {
    private val fix = Location(
        lat = -33.8688, lon = 151.2093, accuracyMeters = 8.0, altitudeMeters = null,
        speedMps = null, headingDeg = null, timestampMs = null, source = LocationSource.WIFI,
    )

    override fun currentLocation(request: LocationRequest): Location = fix

    override fun permission() = LocationPermission(LocationAccess.ALWAYS, precise = true)
}

/**
 * Per-call cost of a Rust→Kotlin foreign-trait callback (LocationProvider.currentLocation:
 * a record lowered to Kotlin, a record lifted back), timed in Rust by the `bench` build's
 * benchLocationCallbacks. Warm-up runs (JIT), then RUNS measured runs of CALLS calls; prints
 * the median ns/call and a `BENCH_JSON` line. Args: [calls] [runs].
 */
fun main(args: Array<String>) {
    val calls = args.getOrNull(0)?.toUInt() ?: 20_000u
    val runs = args.getOrNull(1)?.toInt() ?: 9
    repeat(3) { benchLocationCallbacks(Instant, calls) }
    val perCall = (1..runs).map { benchLocationCallbacks(Instant, calls).toDouble() / calls.toDouble() }.sorted()
    val median = perCall[runs / 2]
    println("kotlin callback: ${"%.0f".format(median)} ns/call median of $runs runs x $calls calls " +
        "(min ${"%.0f".format(perCall.first())}, max ${"%.0f".format(perCall.last())})")
    println("BENCH_JSON {\"lang\":\"kotlin\",\"calls\":$calls,\"runs\":$runs,\"median_ns\":${"%.1f".format(median)}," +
        "\"min_ns\":${"%.1f".format(perCall.first())},\"max_ns\":${"%.1f".format(perCall.last())}}")
}
