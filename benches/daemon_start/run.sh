#!/usr/bin/env bash
# Daemon start bench (issue 11): N small seeding torrents loaded into
# `ringseed daemon` and into qBittorrent-nox, then restarted R times each,
# alternating: time until ready and until a BitTorrent handshake for one of
# them is answered, and RSS then. Loopback only. See README.md.
#
# Usage: benches/daemon_start/run.sh [--count N] [--rounds R] [--only both|ringseed|qbt]
#        [--timeout S] [--keep] [--json FILE] [--tmp DIR]
# Environment: RINGSEED [target/release/ringseed], QBT [qbittorrent-nox on PATH]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=/usr/bin/python3
RINGSEED="${RINGSEED:-$ROOT/target/release/ringseed}"
QBT="${QBT:-$(command -v qbittorrent-nox || true)}"

die() { echo "daemon start bench: $*" >&2; exit 1; }

[[ -x "$PY" ]] || die "needs $PY (Debian's python3; standard library only)"
if [[ " $* " != *" --only qbt "* ]]; then
  [[ -x "$RINGSEED" ]] || die "no $RINGSEED: build it first (cargo build --release) or set RINGSEED"
fi
if [[ " $* " != *" --only ringseed "* ]]; then
  [[ -n "$QBT" && -x "$QBT" ]] || die "qbittorrent-nox is missing: apt-get install -y qbittorrent-nox (or set QBT; or --only ringseed)"
fi

{
  echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
  [[ -x "$RINGSEED" ]] && echo "ringseed: $("$RINGSEED" --version 2>/dev/null || echo '?') ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
  [[ -n "$QBT" ]] && echo "qBittorrent: $("$QBT" --version 2>/dev/null | head -1), libtorrent $(dpkg-query -W -f '${Version}' libtorrent-rasterbar2.0 2>/dev/null | head -1 || echo '?')"
} >&2

exec "$PY" "$HERE/bench.py" --ringseed "$RINGSEED" --qbt "${QBT:-qbittorrent-nox}" "$@"
