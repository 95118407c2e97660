#!/usr/bin/env bash
# perch-ffi's foreign-language costs, all in one run (figures in docs/benchmarks.md):
#  1. per-call cost of a Rust→Kotlin and a Rust→Python foreign-trait callback
#     (LocationProvider.current_location), timed in Rust by a release `bench` build of
#     perch-ffi (`bench_location_callbacks`; the feature is never in the shipped library);
#  2. device.info round trips through one `perch serve`, answered by `perch node run` (Rust)
#     and by a Kotlin node on perch-ffi (cargo bench -p perch-cli --bench invoke, scenario ffi).
# Usage: scripts/ffi-bench.sh [callbacks|invoke|all]   (default all)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/perch-target}"
export SQLX_OFFLINE=true
export CARGO_INCREMENTAL=0
what="${1:-all}"
# shellcheck source=scripts/kotlin-toolchain.sh
source scripts/kotlin-toolchain.sh
kotlin_toolchain

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
cargo build --locked --quiet -p perch-ffi --features cli --bin uniffi-bindgen
cargo build --locked --quiet --release -p perch-ffi --lib --features bench
lib="$CARGO_TARGET_DIR/release/libperch_ffi.so"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for lang in kotlin python; do
  "$CARGO_TARGET_DIR/debug/uniffi-bindgen" generate --library "$lib" --language "$lang" \
    --out-dir "$work/$lang" >/dev/null
done
mkdir -p "$work/native"
cp "$lib" "$work/native/"
cp "$lib" "$work/python/"

cp_run="$KOTLIN_STDLIB:$JNA_JAR:$COROUTINES_JAR"
"$KOTLINC" -nowarn -jvm-target 17 -cp "$JNA_JAR:$COROUTINES_JAR" -d "$work/classes" \
  "$work/kotlin" mobile-android/perch/src/main/kotlin mobile-android/bench/src 2>&1 \
  | grep -v '^warning: unable to find kotlin-stdlib.jar' || true
[ -d "$work/classes/dev/perch/bench" ] || { echo "kotlinc failed" >&2; exit 1; }
java_run=(java -Djna.library.path="$work/native" -cp "$work/classes:$cp_run")

if [ "$what" = all ] || [ "$what" = callbacks ]; then
  echo "== foreign-trait callback, Rust to Kotlin and to Python (same library, same run)"
  "${java_run[@]}" dev.perch.bench.CallbackBenchKt
  PERCH_FFI_PYDIR="$work/python" python3 core/ffi/python/bench_callbacks.py
fi

if [ "$what" = all ] || [ "$what" = invoke ]; then
  echo "== device.info round trip: Rust node against Kotlin node (one host, one run)"
  printf -v kotlin_node '%q ' "${java_run[@]}" dev.perch.bench.KotlinNodeKt
  PERCH_BENCH_SCENARIOS=ffi PERCH_BENCH_KOTLIN_NODE="$kotlin_node" \
    cargo bench --locked -p perch-cli --bench invoke
fi
