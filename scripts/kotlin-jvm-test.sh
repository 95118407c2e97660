#!/usr/bin/env bash
# perch-ffi from Kotlin on the JVM: installs the pinned Kotlin toolchain
# (scripts/kotlin-toolchain.sh), builds the library and generates its Kotlin bindings in
# library mode (scripts/uniffi-kotlin.sh), compiles them with the wrapper of
# mobile-android/perch and its JUnit 4 tests, and runs the tests against real `perch serve`
# processes the tests start. PERCH_BIN: the perch binary (built here when unset).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/perch-target}"
export SQLX_OFFLINE=true
export CARGO_INCREMENTAL=0
# shellcheck source=scripts/kotlin-toolchain.sh
source scripts/kotlin-toolchain.sh
kotlin_toolchain

if [ -z "${PERCH_BIN:-}" ]; then
  cargo build --locked -p perch-cli --bin perch
  PERCH_BIN="$CARGO_TARGET_DIR/debug/perch"
fi
export PERCH_BIN

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
bash scripts/uniffi-kotlin.sh "$work/gen/kotlin"

module=mobile-android/perch
cp_compile="$JNA_JAR:$COROUTINES_JAR:$JUNIT_JAR:$HAMCREST_JAR"
echo "compiling the bindings, the wrapper and the tests with $("$KOTLINC" -version 2>&1 | grep -o 'kotlinc-jvm [0-9.]*')"
# -nowarn: the generated bindings warn about unused parameters; the wrapper is kept clean by
# review (an Android build reports them).
"$KOTLINC" -nowarn -jvm-target 17 -cp "$cp_compile" -d "$work/classes" \
  "$work/gen/kotlin" "$module/src/main/kotlin" "$module/src/test/kotlin" 2>&1 \
  | grep -v '^warning: unable to find kotlin-stdlib.jar' || true
[ -d "$work/classes/dev/perch" ] || { echo "kotlinc failed" >&2; exit 1; }

tests=()
while IFS= read -r f; do
  tests+=("dev.perch.$(basename "$f" .kt)")
done < <(find "$module/src/test/kotlin" -name '*Test.kt' | sort)

set +e
java -Djna.library.path="$work/gen/native" \
  -cp "$work/classes:$KOTLIN_STDLIB:$cp_compile" \
  org.junit.runner.JUnitCore "${tests[@]}" | tee "$work/junit.log"
status=${PIPESTATUS[0]}
set -e
# One plain closing line, whatever JUnit printed.
run=$(grep -oE '^(OK \(([0-9]+) tests?\)|Tests run: [0-9]+,  Failures: [0-9]+)' "$work/junit.log" | tail -1)
if [[ "$run" =~ ^OK\ \(([0-9]+) ]]; then
  echo "kotlin-jvm: ${BASH_REMATCH[1]} passed, 0 failed"
elif [[ "$run" =~ Tests\ run:\ ([0-9]+),\ \ Failures:\ ([0-9]+) ]]; then
  echo "kotlin-jvm: $((BASH_REMATCH[1] - BASH_REMATCH[2])) passed, ${BASH_REMATCH[2]} failed"
fi
exit "$status"
