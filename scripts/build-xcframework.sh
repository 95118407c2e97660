#!/usr/bin/env bash
# Builds perch-ffi for iOS on a Mac: the static library for devices (aarch64-apple-ios) and
# for the simulator (aarch64-apple-ios-sim and x86_64-apple-ios, joined with lipo), the Swift
# bindings in library mode (header and module map into the XCFramework, the .swift file into
# the package's sources), then PerchFFI.xcframework with xcodebuild. The Swift package in
# mobile-ios/ uses both. Works with macOS's own bash 3.2.
# Usage: scripts/build-xcframework.sh [--debug]
set -euo pipefail
cd "$(dirname "$0")/.."

# Where the Swift package (mobile-ios/Package.swift) reads its inputs.
XCFRAMEWORK="${XCFRAMEWORK:-mobile-ios/PerchFFI.xcframework}"
SWIFT_OUT="${SWIFT_OUT:-mobile-ios/Sources/Perch/Generated}"
# Scratch space for the headers and the joined simulator library.
WORK_DIR="${WORK_DIR:-mobile-ios/build}"
DEVICE_TARGET=aarch64-apple-ios
SIM_TARGETS=(aarch64-apple-ios-sim x86_64-apple-ios)
# The Clang module the generated Swift imports (uniffi names it after the crate).
FFI_MODULE=perch_ffiFFI
# Matches the package's platforms: [.iOS(.v16)].
export IPHONEOS_DEPLOYMENT_TARGET="${IPHONEOS_DEPLOYMENT_TARGET:-16.0}"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/perch-target}"
export SQLX_OFFLINE=true

fail() {
  echo "build-xcframework: $*" >&2
  exit 1
}

[ "$(uname -s)" = Darwin ] ||
  fail "this builds iOS libraries and needs macOS with Xcode (xcodebuild, lipo, the iOS SDKs); this machine is $(uname -s)"
command -v xcodebuild >/dev/null 2>&1 || fail "xcodebuild is missing: install Xcode, then: sudo xcode-select -s /Applications/Xcode.app"
xcrun --sdk iphoneos --show-sdk-path >/dev/null 2>&1 ||
  fail "no iOS SDK: install Xcode (not only the Command Line Tools) and select it with xcode-select"
command -v cargo >/dev/null 2>&1 || fail "cargo is missing: install Rust with rustup (https://rustup.rs)"
all_targets=("$DEVICE_TARGET" "${SIM_TARGETS[@]}")
if command -v rustup >/dev/null 2>&1; then
  installed="$(rustup target list --installed)"
  for t in "${all_targets[@]}"; do
    grep -qx "$t" <<<"$installed" || fail "Rust target $t is missing: rustup target add ${all_targets[*]}"
  done
fi

# A size profile when the workspace defines one, else plain release.
profile_args=(--release)
profile_dir=release
for p in release-mobile mobile; do
  if grep -q "^\[profile\.$p\]" Cargo.toml; then
    profile_args=(--profile "$p")
    profile_dir="$p"
    break
  fi
done
if [ "${1:-}" = "--debug" ]; then
  profile_args=()
  profile_dir=debug
elif [ -n "${1:-}" ]; then
  fail "unknown argument '$1' (usage: scripts/build-xcframework.sh [--debug])"
fi

for t in "${all_targets[@]}"; do
  echo "build-xcframework: libperch_ffi.a for $t (${profile_args[*]:-dev profile})"
  cargo build --locked ${profile_args[@]+"${profile_args[@]}"} -p perch-ffi --lib --target "$t"
done
lib_for() { echo "$CARGO_TARGET_DIR/$1/$profile_dir/libperch_ffi.a"; }

rm -rf "$WORK_DIR" "$XCFRAMEWORK" "$SWIFT_OUT"
mkdir -p "$WORK_DIR/bindings" "$WORK_DIR/headers/$FFI_MODULE" "$WORK_DIR/simulator" "$SWIFT_OUT"

# One library for both simulator architectures (an XCFramework holds one per platform).
sim_libs=()
for t in "${SIM_TARGETS[@]}"; do
  sim_libs+=("$(lib_for "$t")")
done
lipo -create "${sim_libs[@]}" -output "$WORK_DIR/simulator/libperch_ffi.a"

# Bindings from a host dev build: the iOS libraries carry the same uniffi metadata, but a
# size profile strips the symbols library mode reads. The bindgen is the crate's own binary.
cargo build --locked --quiet -p perch-ffi --features cli --bin uniffi-bindgen
cargo build --locked --quiet -p perch-ffi --lib
"$CARGO_TARGET_DIR/debug/uniffi-bindgen" generate --library "$CARGO_TARGET_DIR/debug/libperch_ffi.a" \
  --language swift --out-dir "$WORK_DIR/bindings" >/dev/null
mv "$WORK_DIR/bindings/perch_ffi.swift" "$SWIFT_OUT/"
# The header and module map go in a directory named after the module, inside the
# XCFramework's Headers: Clang finds <search path>/perch_ffiFFI/module.modulemap by name, and
# a bare module.modulemap at the top of Headers would clash with other XCFrameworks' ones
# when Xcode copies them into one include directory.
mv "$WORK_DIR/bindings/$FFI_MODULE.h" "$WORK_DIR/headers/$FFI_MODULE/"
mv "$WORK_DIR/bindings/$FFI_MODULE.modulemap" "$WORK_DIR/headers/$FFI_MODULE/module.modulemap"

xcodebuild -create-xcframework \
  -library "$(lib_for "$DEVICE_TARGET")" -headers "$WORK_DIR/headers" \
  -library "$WORK_DIR/simulator/libperch_ffi.a" -headers "$WORK_DIR/headers" \
  -output "$XCFRAMEWORK"

echo "build-xcframework: done"
printf '  %-10s %s bytes\n' device "$(wc -c <"$(lib_for "$DEVICE_TARGET")" | tr -d ' ')"
printf '  %-10s %s bytes\n' simulator "$(wc -c <"$WORK_DIR/simulator/libperch_ffi.a" | tr -d ' ')"
echo "  $XCFRAMEWORK"
echo "  $SWIFT_OUT/perch_ffi.swift"
