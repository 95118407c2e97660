#!/usr/bin/env bash
# The phone library's size: builds perch-ffi with the `mobile` profile (opt-level z, fat LTO,
# one codegen unit, symbols stripped) for the host target and prints the shared library's size,
# next to the release build stripped by hand for comparison. Android and iOS slices are built by
# scripts/build-android.sh and scripts/build-xcframework.sh on machines with those toolchains.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/perch-target}"
export CARGO_INCREMENTAL=0

cargo build --locked -q -p perch-ffi --lib --profile mobile
cargo build --locked -q -p perch-ffi --lib --release

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cp "$CARGO_TARGET_DIR/release/libperch_ffi.so" "$out/release.so"
strip "$out/release.so"

size() { stat -c %s "$1"; }
mobile="$CARGO_TARGET_DIR/mobile/libperch_ffi.so"
printf 'target: %s\n' "$(rustc -vV | sed -n 's/^host: //p')"
mb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1000000 }'; }
printf 'mobile profile (stripped): %s bytes (%s MB)\n' "$(size "$mobile")" "$(mb "$(size "$mobile")")"
printf 'release profile + strip:   %s bytes (%s MB)\n' "$(size "$out/release.so")" \
  "$(mb "$(size "$out/release.so")")"
