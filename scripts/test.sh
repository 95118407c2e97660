#!/usr/bin/env bash
# Every check CI runs: formatting, clippy, and all tests (unit, integration, and the end-to-end
# tests that start real `perch serve` and `perch node run` processes). Tests run inside a
# private D-Bus session so the notification paths are exercised for real.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/perch-target}"
export SQLX_OFFLINE=true
# CI builds from scratch or from a shared target dir: incremental caches only cost disk there.
export CARGO_INCREMENTAL=0

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

echo "== cargo test (build)"
cargo test --locked --workspace --no-run

echo "== cargo test"
if command -v dbus-run-session >/dev/null 2>&1; then
  dbus-run-session -- cargo test --locked --workspace
else
  echo "dbus-run-session not found: notification tests will take their no-bus paths" >&2
  cargo test --locked --workspace
fi

echo "== perch-ffi from Python (generated bindings, a real perch serve)"
PERCH_BIN="$CARGO_TARGET_DIR/debug/perch" bash scripts/ffi-python-test.sh

echo "== perch-ffi from Kotlin on the JVM (generated bindings, the mobile-android wrapper, a real perch serve)"
PERCH_BIN="$CARGO_TARGET_DIR/debug/perch" bash scripts/kotlin-jvm-test.sh

echo "== web UI: unit tests (Vitest)"
(cd ui && npm test --silent)

echo "== web UI: browser tests (Playwright, Debian Chromium, a real perch serve and node)"
(cd ui && PERCH_BIN="$CARGO_TARGET_DIR/debug/perch" npm run e2e --silent)

echo "== network-namespace tests (mDNS, discovery, pairing across hosts)"
bash scripts/netns-tests.sh
