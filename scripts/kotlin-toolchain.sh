#!/usr/bin/env bash
# Installs (once, idempotently) the pinned toolchain the Kotlin JVM tests and benches need,
# from the registries CI reaches (npm, PyPI, Debian apt; not Maven Central):
#   kotlinc 2.4.20        npm `kotlin-compiler`, pinned in mobile-android/jvm-test/package-lock.json
#   JNA, JUnit 4, Hamcrest Debian's libjna-java, junit4, libhamcrest-java (scripts/setup.sh test)
#   kotlinx-coroutines 1.10.2  extracted from a pinned PyPI wheel (see fetch_coroutines below)
# Prints nothing on success when everything is in place already. Sourced by
# scripts/kotlin-jvm-test.sh and scripts/kotlin-bench.sh for the paths below.
set -euo pipefail

PERCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KOTLIN_TOOLS_DIR="$PERCH_ROOT/mobile-android/jvm-test"
KOTLINC="$KOTLIN_TOOLS_DIR/node_modules/kotlin-compiler/bin/kotlinc"
KOTLIN_STDLIB="$KOTLIN_TOOLS_DIR/node_modules/kotlin-compiler/lib/kotlin-stdlib.jar"
JNA_JAR=/usr/share/java/jna.jar
JUNIT_JAR=/usr/share/java/junit4.jar
HAMCREST_JAR=/usr/share/java/hamcrest.jar
KOTLIN_CACHE="${PERCH_KOTLIN_CACHE:-$HOME/.cache/perch-kotlin}"
COROUTINES_VERSION=1.10.2
COROUTINES_JAR="$KOTLIN_CACHE/kotlinx-coroutines-core-jvm-$COROUTINES_VERSION.jar"

# kotlinc from npm, exactly the locked version; skipped when the lock is unchanged since the
# last install.
install_kotlinc() {
  local stamp="$KOTLIN_TOOLS_DIR/node_modules/.perch-installed-lock"
  if [ -x "$KOTLINC" ] && cmp -s "$KOTLIN_TOOLS_DIR/package-lock.json" "$stamp"; then
    return 0
  fi
  (cd "$KOTLIN_TOOLS_DIR" && npm ci --no-audit --no-fund --loglevel=error \
    && cp package-lock.json node_modules/.perch-installed-lock)
}

check_debian_jars() {
  local missing=0
  for jar in "$JNA_JAR" "$JUNIT_JAR" "$HAMCREST_JAR"; do
    if [ ! -f "$jar" ]; then
      echo "missing $jar: run 'bash scripts/setup.sh test' (Debian libjna-java, junit4, libhamcrest-java)" >&2
      missing=1
    fi
  done
  command -v java >/dev/null 2>&1 || { echo "no java: run 'bash scripts/setup.sh test'" >&2; missing=1; }
  return "$missing"
}

# Why this route: the tests' wrapper needs kotlinx-coroutines with Flow (1.3+). Debian ships
# 1.0.1 (no Flow) and Maven Central is not reachable from CI. JetBrains' Kotlin Jupyter
# kernel, published on PyPI, bundles JetBrains' own kotlinx-coroutines-core-jvm 1.10.2 classes
# unshaded (package kotlinx.coroutines, with the library's version marker) in its fat jar. We
# download that one wheel, pinned by version and sha256, and copy out only kotlinx/coroutines/**
# plus the module metadata kotlinc needs for top-level functions. The result is cached, so
# the 80 MB wheel is fetched once per machine. An Android Gradle build takes the same version
# from Maven as usual (mobile-android/perch/build.gradle.kts).
fetch_coroutines() {
  [ -f "$COROUTINES_JAR" ] && return 0
  local wheel_version=0.19.0.944
  local wheel_sha256=dc654a426a28e6621aeb0bd7772d268a9a877aabae4a17b73383752a416281a3
  local tmp
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: $tmp is local
  trap "rm -rf '$tmp'" RETURN
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    "kotlin-jupyter-kernel==$wheel_version" -d "$tmp"
  local wheel
  wheel="$(ls "$tmp"/kotlin_jupyter_kernel-*.whl)"
  echo "$wheel_sha256  $wheel" | sha256sum --check --quiet
  mkdir -p "$KOTLIN_CACHE"
  python3 - "$wheel" "$tmp/coroutines.jar" "$COROUTINES_VERSION" <<'PY'
import io, sys, zipfile
wheel, out, want = sys.argv[1:4]
with zipfile.ZipFile(wheel) as w:
    fat = [n for n in w.namelist() if n.startswith("run_kotlin_kernel/jars/") and n.endswith("-all.jar")]
    if len(fat) != 1:
        sys.exit(f"expected one fat jar in the wheel, found {fat}")
    jar = zipfile.ZipFile(io.BytesIO(w.read(fat[0])))
version = jar.read("META-INF/kotlinx_coroutines_core.version").decode().strip()
if version != want:
    sys.exit(f"the wheel bundles kotlinx-coroutines {version}, expected {want}")
keep = ("META-INF/kotlinx_coroutines_core.version", "META-INF/kotlinx-coroutines-core.kotlin_module")
n = 0
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as o:
    for name in jar.namelist():
        if (name.startswith("kotlinx/coroutines/") and not name.endswith("/")) or name in keep:
            o.writestr(name, jar.read(name))
            n += 1
if n < 500:
    sys.exit(f"only {n} coroutines entries found: not the expected jar")
PY
  mv "$tmp/coroutines.jar" "$COROUTINES_JAR"
  echo "cached kotlinx-coroutines $COROUTINES_VERSION in $COROUTINES_JAR"
}

kotlin_toolchain() {
  check_debian_jars
  install_kotlinc
  fetch_coroutines
}

# Run directly: install. Sourced: define the paths and functions only.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  kotlin_toolchain
fi
