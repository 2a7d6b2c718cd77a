#!/usr/bin/env bash
# Send paths against the load generator, with TCP's side of the story:
# for each round and each path in PATHS (copy, splice, auto), a fresh
# `ringseed seed --send-path P` of one torrent serves PEERS synthetic peers
# (`ringseed-bench leech`) for DURATION_S seconds on loopback; printed per
# run: goodput, the seeder's CPU per GiB, and the kernel's TCP counters
# over the run (`nstat`): tail-loss probes, retransmitted segments, the
# duplicates the receivers reported (DSACK: retransmissions that were not
# needed) and segments queued to a socket's backlog because its owner held
# it. Optional CC runs the whole bench under that congestion control
# (sysctl net.ipv4.tcp_congestion_control, root; restored at exit).
# docs/benchmarks.md, "The splice send path", has what it showed.
#
# Loopback only (seeder on 127.0.10.2); every wait is bounded; the seeder
# is stopped by pid, the EXIT trap stops whatever is left.
#
# Environment (defaults in brackets):
#   PATHS ["copy splice"]   send paths, in order, alternating per round
#   PEERS [256]             synthetic peers
#   DURATION_S [20]         seconds each leech run lasts
#   ROUNDS [2]
#   SIZE [1G]               payload (one torrent, 1 MiB pieces)
#   CHECK_EVERY [16]        the generator checks one block in this many (as run.sh)
#   CC []                   congestion control for the bench (e.g. cubic)
#   RINGSEED [target/release/ringseed]  BENCH [target/release/ringseed-bench]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PATHS="${PATHS:-copy splice}"
PEERS="${PEERS:-256}"
DURATION_S="${DURATION_S:-20}"
ROUNDS="${ROUNDS:-2}"
SIZE="${SIZE:-1G}"
CHECK_EVERY="${CHECK_EVERY:-16}"
CC="${CC:-}"
RINGSEED="${RINGSEED:-$ROOT/target/release/ringseed}"
BENCH="${BENCH:-$ROOT/target/release/ringseed-bench}"
IP=127.0.10.2
PORT_BASE=17900
READY_TIMEOUT_S=60

die() { echo "send_path.sh: $*" >&2; exit 1; }
[[ -x "$RINGSEED" && -x "$BENCH" ]] || die "build first: cargo build --release"
command -v nstat >/dev/null || die "nstat missing: apt-get install iproute2"
for p in $PATHS; do [[ $p =~ ^(copy|splice|auto)$ ]] || die "unknown path $p"; done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ringseed-send-path.XXXXXX")"
SEEDER_PID=""
OLD_CC="$(sysctl -n net.ipv4.tcp_congestion_control)"
cleanup() {
    [[ -n "$SEEDER_PID" ]] && kill "$SEEDER_PID" 2>/dev/null || true
    [[ -n "$CC" ]] && sysctl -qw net.ipv4.tcp_congestion_control="$OLD_CC" || true
    rm -rf "$WORK"
}
trap cleanup EXIT
if [[ -n "$CC" ]]; then
    sysctl -qw net.ipv4.tcp_congestion_control="$CC" || die "cannot set $CC (root?)"
fi
echo "congestion control: $(sysctl -n net.ipv4.tcp_congestion_control); $PEERS peers, $DURATION_S s, payload $SIZE"

mkdir -p "$WORK/data"
"$BENCH" make-torrent --count 1 --payload-seed 7 --size "$SIZE" --piece-length 1M \
    -o "$WORK/torrents" --data-dir "$WORK/data" >"$WORK/torrents.txt"
TORRENT="$(awk '{print $2}' "$WORK/torrents.txt")"
find "$WORK/data" -type f -exec cat {} + >/dev/null   # into the page cache

echo "| round | path | goodput MB/s | seeder CPU s/GiB | loss probes | retransmitted segments | DSACKs received | backlog coalesced |"
echo "|---|---|---|---|---|---|---|---|"
run=0
for ((round = 1; round <= ROUNDS; round++)); do
    for p in $PATHS; do
        port=$((PORT_BASE + run)); run=$((run + 1))
        "$RINGSEED" seed "$TORRENT" --data "$WORK/data" --listen "$IP:$port" --bind-address "$IP" \
            --no-dht --upload-slots unlimited --peers-per-torrent $((PEERS + 16)) --send-path "$p" \
            >"$WORK/seed.out" 2>"$WORK/seed.log" &
        SEEDER_PID=$!
        for ((i = 0; i < READY_TIMEOUT_S * 10; i++)); do
            grep -q "listening on" "$WORK/seed.log" && break
            kill -0 "$SEEDER_PID" 2>/dev/null || die "ringseed seed exited: $(tail -c 300 "$WORK/seed.log")"
            sleep 0.1
        done
        nstat -n >/dev/null
        timeout $((DURATION_S + 90)) "$BENCH" leech --torrent-dir "$WORK/torrents" --payload-seed 7 \
            --target "$IP:$port" --peers "$PEERS" --duration "$DURATION_S" --seeder-pid "$SEEDER_PID" \
            --json --warmup-until unchoke --check-every "$CHECK_EVERY" >"$WORK/leech.json" 2>"$WORK/leech.err" \
            || die "leech failed: $(tail -c 300 "$WORK/leech.err")"
        nstat >"$WORK/nstat.txt" 2>/dev/null || true
        kill "$SEEDER_PID" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do kill -0 "$SEEDER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SEEDER_PID" 2>/dev/null || true
        wait "$SEEDER_PID" 2>/dev/null || true
        SEEDER_PID=""
        /usr/bin/python3 - "$round" "$p" "$WORK/leech.json" "$WORK/nstat.txt" <<'PY'
import json, sys
round_, path, leech, nstat = sys.argv[1:5]
def walk(d, out):
    for k, v in d.items():
        if isinstance(v, dict):
            walk(v, out)
        else:
            out.setdefault(k, v)
    return out
r = walk(json.load(open(leech)), {})
c = {}
for line in open(nstat):
    f = line.split()
    if len(f) >= 2 and f[1].isdigit():
        c[f[0]] = int(f[1])
cpu = r["cpu_user_s_per_gib"] + r["cpu_system_s_per_gib"]
print(f"| {round_} | {path} | {r['goodput_mb_per_s']:.0f} | {cpu:.3f} | "
      f"{c.get('TcpExtTCPLossProbes', 0)} | {c.get('TcpRetransSegs', 0)} | "
      f"{c.get('TcpExtTCPDSACKRecv', 0)} | {c.get('TcpExtTCPBacklogCoalesce', 0)} |")
PY
    done
done
