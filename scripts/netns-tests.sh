#!/usr/bin/env bash
# The tests that multicast or cross hosts (core/cli/tests/netns_*.rs, and the attack suite's
# ignored tests in tests/attack/*.rs). They run only inside network namespaces they create, never
# on this machine's own interfaces, so they need root and `ip netns`. Where that is not available
# they are reported as skipped and this exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/perch-target}"
export SQLX_OFFLINE=true

ZEROCONF_VERSION="0.154.0"
count=$(cat core/cli/tests/netns_*.rs tests/attack/*.rs | grep -c '#\[ignore = "needs root and ip netns' || true)

skip() {
  echo "netns tests: 0 passed, 0 failed, ${count} skipped ($1)"
  exit 0
}

[ "$(id -u)" -eq 0 ] || skip "not root"
command -v ip >/dev/null 2>&1 || skip "no ip command (iproute2)"
probe="perch-probe-$$"
if ! ip netns add "$probe" >/dev/null 2>&1; then
  skip "cannot create a network namespace"
fi
if ! ip netns exec "$probe" true >/dev/null 2>&1; then
  ip netns del "$probe" >/dev/null 2>&1 || true
  skip "cannot enter a network namespace"
fi
ip netns del "$probe"

# A non-Perch mDNS client for the interoperability tests: python-zeroconf, pinned, from pip;
# Debian's python3-zeroconf as the fallback. The tests fail (not skip) without it.
has_zeroconf() { "$1" -c "import zeroconf" >/dev/null 2>&1; }
python=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && has_zeroconf "$candidate"; then
    python="$candidate"
    break
  fi
done
if [ -z "$python" ] && command -v python3 >/dev/null 2>&1; then
  echo "installing zeroconf==${ZEROCONF_VERSION} with pip"
  if python3 -m pip install --quiet --disable-pip-version-check "zeroconf==${ZEROCONF_VERSION}" >/dev/null 2>&1 \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "zeroconf==${ZEROCONF_VERSION}" >/dev/null 2>&1; then
    has_zeroconf python3 && python=python3
  fi
fi
if [ -z "$python" ] && command -v apt-get >/dev/null 2>&1; then
  echo "pip could not install zeroconf; trying Debian's python3-zeroconf"
  apt-get update -qq >/dev/null 2>&1 || true
  if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-zeroconf >/dev/null 2>&1; then
    has_zeroconf /usr/bin/python3 && python=/usr/bin/python3
  fi
fi
if [ -n "$python" ]; then
  export PERCH_TEST_PYTHON="$python"
else
  echo "warning: no python3 with zeroconf; the interoperability tests will fail" >&2
fi

status=0
cargo test --locked -p perch-cli --test netns_mdns --test netns_pairing -- --ignored --test-threads=1 || status=$?
# The attack suite's namespace tests (perch, built above, is what they attack).
cargo test --locked -p perch-attack-tests -- --ignored --test-threads=1 || status=$?
exit "$status"
