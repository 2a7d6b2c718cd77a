#!/usr/bin/env bash
# Runs ringseed's whole test suite, as CI does.
#
# 1. Installs the real BitTorrent peers the interop tests talk to, when missing:
#    libtorrent's Python binding (for /usr/bin/python3), mktorrent, aria2c,
#    opentracker, and iproute2's `ip` (the interface-binding test creates a
#    throw-away network interface) (Debian/Ubuntu packages).
# 2. Builds every binary, then runs `cargo test --release --workspace
#    --all-targets --no-fail-fast` (benches compile too; every test binary
#    runs even after a failure) and prints
#    the summary lines. Any failure fails the script.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
if ! /usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1; then
    missing+=(python3-libtorrent)
fi
command -v mktorrent >/dev/null 2>&1 || missing+=(mktorrent)
command -v aria2c >/dev/null 2>&1 || missing+=(aria2)
command -v opentracker >/dev/null 2>&1 || missing+=(opentracker)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)

if ((${#missing[@]} > 0)); then
    echo "test.sh: installing missing test peers: ${missing[*]}"
    sudo_cmd=()
    if [[ "$(id -u)" != 0 ]]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "test.sh: need root or sudo to install: ${missing[*]}" >&2
            exit 1
        fi
        sudo_cmd=(sudo)
    fi
    "${sudo_cmd[@]}" apt-get update
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y "${missing[@]}"
fi

log="$(mktemp -t ringseed-test.XXXXXX)"
trap 'rm -f "$log"' EXIT

status=0
# Every binary of the workspace first: tests run `ringseed` and the swarm
# bench's `ringseed-bench`, and cargo builds a test only its own package's.
{ cargo build --release --workspace --bins &&
    cargo test --release --workspace --all-targets --no-fail-fast; } 2>&1 | tee "$log" || status=$?

echo
echo "=== cargo test summary ==="
grep -E '^(test result:|     Running|error\[E[0-9]+\]|error: (test failed|[0-9]+ targets? failed|could not compile)|test .* \.\.\. FAILED$)' "$log" || true
if ((status != 0)); then
    echo "test.sh: FAILED (cargo test exited $status)" >&2
    exit "$status"
fi
echo "test.sh: all tests passed"
