#!/usr/bin/env bash
# Type-checks the Android sample app here, without the Android SDK: kotlinc compiles the
# sample's sources together with the real generated bindings and the real :perch wrapper,
# and with compile-only stand-ins for the Android, AndroidX and Play services classes it
# calls (mobile-android/sample-check/stubs). Every call into Perch is checked for real; the
# stand-ins only claim the platform signatures they declare. Not part of `make test`: a
# full Android build (Gradle, the SDK) is the real check and needs a developer machine.
# Uses the pinned Kotlin toolchain of the JVM tests (scripts/kotlin-toolchain.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/perch-target}"
export SQLX_OFFLINE=true
export CARGO_INCREMENTAL=0

for f in scripts/kotlin-toolchain.sh scripts/uniffi-kotlin.sh; do
  [ -f "$f" ] || { echo "android-sample-check: $f is missing (it comes with the Kotlin JVM tests)" >&2; exit 1; }
done
# shellcheck source=/dev/null
source scripts/kotlin-toolchain.sh
kotlin_toolchain

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bash scripts/uniffi-kotlin.sh "$work/gen/kotlin"

echo "android-sample-check: compiling the sample against the bindings, :perch and the stand-ins"
# -nowarn: the generated bindings warn about unused parameters. kotlinc prints its errors;
# a missing class file afterwards is how a failed compile shows here.
"$KOTLINC" -nowarn -jvm-target 17 -cp "$JNA_JAR:$COROUTINES_JAR" -d "$work/classes" \
  "$work/gen/kotlin" mobile-android/perch/src/main/kotlin mobile-android/sample/src/main/kotlin \
  mobile-android/sample-check/stubs 2>&1 | grep -v '^warning: unable to find kotlin-stdlib.jar' || true
[ -f "$work/classes/dev/perch/sample/MainActivity.class" ] || {
  echo "android-sample-check: kotlinc failed (errors above)" >&2
  exit 1
}
echo "android-sample-check: the sample type-checks"
