"""Per-call cost of a Rust->Python foreign-trait callback (LocationProvider.current_location),
timed in Rust by `bench_location_callbacks` from a `bench` build of perch-ffi: the Python
counterpart of mobile-android/bench's CallbackBench.kt, run by scripts/ffi-bench.sh in the
same run. Environment: PERCH_FFI_PYDIR (the generated perch_ffi.py and the library).
Args: [calls] [runs].
"""

import os
import sys

sys.path.insert(0, os.environ.get("PERCH_FFI_PYDIR", "."))
import perch_ffi as pf  # noqa: E402

FIX = pf.Location(
    lat=-33.8688, lon=151.2093, accuracy_meters=8.0, altitude_meters=None, speed_mps=None,
    heading_deg=None, timestamp_ms=None, source=pf.LocationSource.WIFI,
)


class Instant(pf.LocationProvider):
    """Answers at once, so the figure is the crossing alone."""

    def current_location(self, request):
        return FIX

    def permission(self):
        return pf.LocationPermission(access=pf.LocationAccess.ALWAYS, precise=True)


def main():
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    provider = Instant()
    pf.bench_location_callbacks(provider, calls // 10)
    per_call = sorted(pf.bench_location_callbacks(provider, calls) / calls for _ in range(runs))
    median = per_call[runs // 2]
    print(f"python callback: {median:.0f} ns/call median of {runs} runs x {calls} calls "
          f"(min {per_call[0]:.0f}, max {per_call[-1]:.0f})")
    print(f'BENCH_JSON {{"lang":"python","calls":{calls},"runs":{runs},"median_ns":{median:.1f},'
          f'"min_ns":{per_call[0]:.1f},"max_ns":{per_call[-1]:.1f}}}')


if __name__ == "__main__":
    main()
