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

need_cargo
case "$mode" in
  run)
    # The host builds from crates alone (SQLite is bundled); nothing else to install.
    ;;
  test)
    # dbus: a private session bus for the notification tests (dbus-run-session, dbus-daemon).
    # iproute2: `ip netns` for the tests that cross hosts (mDNS, discovery, pairing); python3-pip
    # for python-zeroconf, the non-Perch mDNS client they check the advertisement with.
    if command -v apt-get >/dev/null 2>&1; then
      apt_install dbus iproute2 python3-pip
    fi
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >/dev/null 2>&1 || true
    ;;
  *)
    echo "usage: setup.sh run|test" >&2
    exit 2
    ;;
esac
