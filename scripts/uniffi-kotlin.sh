#!/usr/bin/env bash
# Generates perch-ffi's Kotlin bindings (package dev.perch.ffi, core/ffi/uniffi.toml) in
# library mode from a host build of the library, into OUT_DIR (default
# mobile-android/perch/build/generated/uniffi/kotlin, which the Gradle module compiles), and
# copies the host library beside them in OUT_DIR/../native for JVM runs (jna.library.path).
# The bindings are build output, never committed or edited: they always match the library
# they are generated from. Usage: scripts/uniffi-kotlin.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/perch-target}"
export SQLX_OFFLINE=true
export CARGO_INCREMENTAL=0
out="${1:-mobile-android/perch/build/generated/uniffi/kotlin}"

# Separate builds, as in scripts/ffi-python-test.sh: the library without the `cli` feature,
# as apps link it.
cargo build --locked --quiet -p perch-ffi --features cli --bin uniffi-bindgen
cargo build --locked --quiet -p perch-ffi --lib

lib="$CARGO_TARGET_DIR/debug/libperch_ffi.so"
rm -rf "$out"
mkdir -p "$out" "$out/../native"
"$CARGO_TARGET_DIR/debug/uniffi-bindgen" generate --library "$lib" --language kotlin \
  --out-dir "$out" >/dev/null
cp "$lib" "$out/../native/"
