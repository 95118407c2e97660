#!/usr/bin/env bash
# Builds perch-ffi for Android: libperch_ffi.so per ABI with cargo-ndk into the :perch
# module's jniLibs dir (with the workspace's size profile when it has one), then the Kotlin
# bindings (library mode) into the dir the module compiles. Run it from a clone on a machine
# with the Android NDK; Gradle then packages both (`cd mobile-android && ./gradlew
# :sample:assembleDebug`). Usage: scripts/build-android.sh [--debug]
set -euo pipefail
cd "$(dirname "$0")/.."

# Where the :perch module (mobile-android/perch/build.gradle.kts) reads its inputs.
JNILIBS_DIR="${JNILIBS_DIR:-mobile-android/perch/build/generated/jniLibs}"
BINDINGS_DIR="${BINDINGS_DIR:-mobile-android/perch/build/generated/uniffi/kotlin}"
# The ABIs the sample ships (its abiFilters) and their Rust targets, in the same order.
ABIS=(arm64-v8a armeabi-v7a x86_64)
RUST_TARGETS=(aarch64-linux-android armv7-linux-androideabi x86_64-linux-android)
# Lowest Android API level the library is linked for (the modules' minSdk).
ANDROID_PLATFORM="${ANDROID_PLATFORM:-26}"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/perch-target}"
export SQLX_OFFLINE=true

fail() {
  echo "build-android: $*" >&2
  exit 1
}

# A size profile when the workspace defines one, else plain release.
profile_args=(--release)
for p in release-mobile mobile; do
  if grep -q "^\[profile\.$p\]" Cargo.toml; then
    profile_args=(--profile "$p")
    break
  fi
done
if [ "${1:-}" = "--debug" ]; then
  profile_args=()
elif [ -n "${1:-}" ]; then
  fail "unknown argument '$1' (usage: scripts/build-android.sh [--debug])"
fi

# Prerequisites, each with the command that fixes it.
command -v cargo >/dev/null 2>&1 || fail "cargo is missing: install Rust with rustup (https://rustup.rs)"
command -v cargo-ndk >/dev/null 2>&1 || fail "cargo-ndk is missing: cargo install cargo-ndk --locked"
if [ -z "${ANDROID_NDK_HOME:-}" ] && [ -n "${ANDROID_NDK_ROOT:-}" ]; then
  export ANDROID_NDK_HOME="$ANDROID_NDK_ROOT"
fi
[ -n "${ANDROID_NDK_HOME:-}" ] ||
  fail "ANDROID_NDK_HOME is not set: point it at an NDK (r27 or newer), e.g. \$ANDROID_HOME/ndk/<version>"
[ -d "$ANDROID_NDK_HOME/toolchains/llvm" ] ||
  fail "ANDROID_NDK_HOME=$ANDROID_NDK_HOME does not look like an NDK (no toolchains/llvm)"
if command -v rustup >/dev/null 2>&1; then
  installed="$(rustup target list --installed)"
  for t in "${RUST_TARGETS[@]}"; do
    grep -qx "$t" <<<"$installed" || fail "Rust target $t is missing: rustup target add ${RUST_TARGETS[*]}"
  done
else
  echo "build-android: no rustup; assuming the toolchain has ${RUST_TARGETS[*]}" >&2
fi

# 16 KB pages (required for apps targeting Android 15 on Google Play): align the library's
# segments for them on the 64-bit ABIs. NDK r28 does this by default; older ones need the flag.
page_flags="-C link-arg=-Wl,-z,max-page-size=16384"
export CARGO_TARGET_AARCH64_LINUX_ANDROID_RUSTFLAGS="${CARGO_TARGET_AARCH64_LINUX_ANDROID_RUSTFLAGS:-$page_flags}"
export CARGO_TARGET_X86_64_LINUX_ANDROID_RUSTFLAGS="${CARGO_TARGET_X86_64_LINUX_ANDROID_RUSTFLAGS:-$page_flags}"

ndk_targets=()
for abi in "${ABIS[@]}"; do
  ndk_targets+=(-t "$abi")
done

mkdir -p "$JNILIBS_DIR"
echo "build-android: libperch_ffi.so for ${ABIS[*]} (${profile_args[*]:-dev profile}) into $JNILIBS_DIR"
cargo ndk "${ndk_targets[@]}" --platform "$ANDROID_PLATFORM" -o "$JNILIBS_DIR" \
  build --locked ${profile_args[@]+"${profile_args[@]}"} -p perch-ffi --lib

# Bindings from a host dev build: the shipped libraries carry the same uniffi metadata, but a
# size profile strips the symbols library mode reads. The bindgen is the crate's own binary.
cargo build --locked --quiet -p perch-ffi --features cli --bin uniffi-bindgen
cargo build --locked --quiet -p perch-ffi --lib
rm -rf "$BINDINGS_DIR"
mkdir -p "$BINDINGS_DIR"
"$CARGO_TARGET_DIR/debug/uniffi-bindgen" generate --library "$CARGO_TARGET_DIR/debug/libperch_ffi.a" \
  --language kotlin --out-dir "$BINDINGS_DIR" >/dev/null

echo "build-android: done"
for abi in "${ABIS[@]}"; do
  so="$JNILIBS_DIR/$abi/libperch_ffi.so"
  [ -f "$so" ] || fail "cargo-ndk left no $so"
  printf '  %-12s %s bytes\n' "$abi" "$(wc -c <"$so" | tr -d ' ')"
done
echo "  bindings    $BINDINGS_DIR"
