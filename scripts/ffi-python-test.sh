#!/usr/bin/env bash
# perch-ffi from Python: builds the library and the perch binary, generates the Python
# bindings in library mode with the crate's own uniffi-bindgen, and runs
# core/ffi/python/smoke_test.py against a real `perch serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/perch-target}"
export SQLX_OFFLINE=true
export CARGO_INCREMENTAL=0

# Separate builds: each keeps its own feature set (and its cache); the library is built last
# and without the `cli` feature, as apps link it.
if [ -z "${PERCH_BIN:-}" ]; then
  cargo build --locked -p perch-cli --bin perch
  PERCH_BIN="$CARGO_TARGET_DIR/debug/perch"
fi
cargo build --locked -p perch-ffi --features cli --bin uniffi-bindgen
cargo build --locked -p perch-ffi --lib

lib="$CARGO_TARGET_DIR/debug/libperch_ffi.so"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
"$CARGO_TARGET_DIR/debug/uniffi-bindgen" generate --library "$lib" --language python \
  --out-dir "$out" >/dev/null
cp "$lib" "$out/"

PERCH_BIN="$PERCH_BIN" PERCH_FFI_PYDIR="$out" \
  python3 core/ffi/python/smoke_test.py
