#!/usr/bin/env bash
# Runs ringseed's whole test suite, as CI does.
#
# 1. Installs the real BitTorrent peers the interop tests talk to, when missing:
#    libtorrent's Python binding (for /usr/bin/python3), mktorrent, aria2c,
#    opentracker, and iproute2's `ip` (the interface-binding test creates a
#    throw-away network interface) (Debian/Ubuntu packages); for the Web API
#    tests also Chromium, Node.js/npm and Python's venv, then a virtualenv in
#    target/test-venv (tests/webapi/requirements.txt: qbittorrent-api,
#    prometheus-client) and the npm packages of tests/webapi/*/package.json
#    (Flood, playwright-core), each from its lockfile.
# 2. Builds every binary, then runs `cargo test --profile ci --workspace
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
command -v qbittorrent-nox >/dev/null 2>&1 || missing+=(qbittorrent-nox)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
/usr/bin/python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
/usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

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

# The Web API tests' Python packages, in a virtualenv of their own (rebuilt
# when requirements.txt changes).
venv=target/test-venv
if ! cmp -s tests/webapi/requirements.txt "$venv/requirements.txt" 2>/dev/null; then
    echo "test.sh: creating $venv"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/webapi/requirements.txt
    cp tests/webapi/requirements.txt "$venv/requirements.txt"
fi
# The Web API tests' npm packages, each folder from its own lockfile.
for pkg in tests/webapi/*/package.json; do
    dir="$(dirname "$pkg")"
    if [[ ! -d "$dir/node_modules" || "$dir/package-lock.json" -nt "$dir/node_modules" ]]; then
        echo "test.sh: npm ci in $dir"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
        touch "$dir/node_modules"
    fi
done

log="$(mktemp -t ringseed-test.XXXXXX)"
trap 'rm -f "$log"' EXIT

status=0
# Every binary of the workspace first: tests run `ringseed` and the swarm
# bench's `ringseed-bench`, and cargo builds a test only its own package's.
# Profile `ci` (Cargo.toml): release optimisation without LTO, so that
# linking some sixty test binaries does not take most of CI's time.
{ cargo build --profile ci --workspace --bins &&
    cargo test --profile ci --workspace --all-targets --no-fail-fast; } 2>&1 | tee "$log" || status=$?

echo
echo "=== cargo test summary ==="
grep -E '^(test result:|     Running|error\[E[0-9]+\]|error: (test failed|[0-9]+ targets? failed|could not compile)|test .* \.\.\. FAILED$)' "$log" || true
if ((status != 0)); then
    echo "test.sh: FAILED (cargo test exited $status)" >&2
    exit "$status"
fi
echo "test.sh: all tests passed"
