#!/usr/bin/env bash
# Far peers (issue 15): per-peer throughput behind the delay line as a
# ratio of the ceiling, one bulk TCP stream over the same path.
#
# For each D in DELAYS (added round trip, ms), in one run:
#   1. the ceiling: `ringseed-bench stream-send` on 10.203.0.1 (root
#      namespace), `ringseed-bench stream-recv` in the delay namespace,
#      DURATION_S seconds, kernel-default socket buffers on both ends;
#   2. run.sh MODE=peers DELAY_MS=D with PEERS peers keeping REQUESTS
#      requests outstanding, each seeder of SEEDERS in turn, DURATION_S each.
# Prints one table: per-peer MB/s (median over peers) and its ratio to the
# ceiling, per seeder and delay. Raw JSON lines go to RESULTS.
#
# Root only (network namespace, TUN devices); loopback and the namespace
# only. Every step is bounded; run.sh and netns.sh stop what they start.
#
# Environment (defaults in brackets):
#   DELAYS ["50 150 300"]     added round trips, ms
#   PEERS [16]                peers per run
#   REQUESTS [512]            requests each peer keeps outstanding
#   DURATION_S [20]           seconds per measurement (TCP's ramp-up included,
#                             the same for the ceiling and the seeders)
#   SEEDERS ["ringseed libtorrent"]
#   ROUNDS [1]
#   QUEUE_BYTES [256M]        the delay line's queue per direction
#   STREAM_PORT [17291]       the ceiling stream's port on 10.203.0.1
#   RESULTS [./far-results-<UTC>.jsonl]
#   RINGSEED, BENCH           as run.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=/usr/bin/python3
DELAYS="${DELAYS:-50 150 300}"
PEERS="${PEERS:-16}"
REQUESTS="${REQUESTS:-512}"
DURATION_S="${DURATION_S:-20}"
SEEDERS="${SEEDERS:-ringseed libtorrent}"
ROUNDS="${ROUNDS:-1}"
QUEUE_BYTES="${QUEUE_BYTES:-256M}"
STREAM_PORT="${STREAM_PORT:-17291}"
RESULTS="${RESULTS:-$PWD/far-results-$(date -u +%Y%m%dT%H%M%SZ).jsonl}"
RINGSEED="${RINGSEED:-$ROOT/target/release/ringseed}"
BENCH="${BENCH:-$ROOT/target/release/ringseed-bench}"
NETNS_NAME=delay-far
SEEDER_IP=10.203.0.1
SOURCE_IP=10.204.0.1

die() { echo "far.sh: $*" >&2; exit 1; }
log() { echo "far.sh: $*" >&2; }
[[ "$(id -u)" == 0 ]] || die "needs root (network namespace, TUN devices)"
[[ -x "$BENCH" ]] || die "$BENCH is missing: cargo build --release --workspace --bins"
for d in $DELAYS; do
    [[ "$d" =~ ^[0-9]{1,5}$ && "$d" -le 10000 ]] || die "DELAYS: each 0..10000, got '$d'"
done
[[ "$DURATION_S" =~ ^[1-9][0-9]{0,3}$ ]] || die "DURATION_S must be 1..9999, got '$DURATION_S'"

SENDER_PID=""
NETNS_UP=0
cleanup() {
    if [[ -n "$SENDER_PID" ]]; then
        kill "$SENDER_PID" 2>/dev/null || true
        wait "$SENDER_PID" 2>/dev/null || true
    fi
    if ((NETNS_UP)); then BENCH="$BENCH" bash "$HERE/netns.sh" down "$NETNS_NAME" >&2 || true; fi
}
trap cleanup EXIT

# The ceiling at delay $1: one stream, DURATION_S seconds; appends a JSON line.
ceiling() {
    local d=$1 out
    BENCH="$BENCH" QUEUE_BYTES="$QUEUE_BYTES" bash "$HERE/netns.sh" up "$NETNS_NAME" "$d" >&2
    NETNS_UP=1
    "$BENCH" stream-send --listen "$SEEDER_IP:$STREAM_PORT" --duration $((DURATION_S + 30)) &
    SENDER_PID=$!
    sleep 0.5
    out=$(timeout $((DURATION_S + 30)) bash "$HERE/netns.sh" exec "$NETNS_NAME" \
        "$BENCH" stream-recv --target "$SEEDER_IP:$STREAM_PORT" --source "$SOURCE_IP" \
        --duration "$DURATION_S" --json)
    kill "$SENDER_PID" 2>/dev/null || true
    wait "$SENDER_PID" 2>/dev/null || true
    SENDER_PID=""
    BENCH="$BENCH" bash "$HERE/netns.sh" down "$NETNS_NAME" >&2
    NETNS_UP=0
    echo "{\"kind\":\"ceiling\",\"delay_ms\":$d,\"duration_s\":$DURATION_S,\"report\":$out}" >>"$RESULTS"
    log "ceiling at +$d ms: $out"
}

: >"$RESULTS"
for d in $DELAYS; do
    ceiling "$d"
    DELAY_MS="$d" MODE=peers PEERS="$PEERS" REQUESTS="$REQUESTS" DURATION_S="$DURATION_S" \
        SEEDERS="$SEEDERS" ROUNDS="$ROUNDS" QUEUE_BYTES="$QUEUE_BYTES" NETNS_NAME="$NETNS_NAME" \
        RINGSEED="$RINGSEED" BENCH="$BENCH" RESULTS="$RESULTS" \
        bash "$HERE/run.sh" >/dev/null
done

"$PY" - "$RESULTS" <<'EOF'
import json, statistics, sys
ceil, runs = {}, {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("kind") == "ceiling":
        ceil[r["delay_ms"]] = r["report"]["mb_s"]
    elif "seeder" in r:
        p = r["report"].get("peers", {})
        runs.setdefault((r["delay_ms"], r["seeder"]), []).append(
            (p.get("rate_median_mb_per_s") or 0.0, p.get("rate_max_mb_per_s") or 0.0,
             r["report"].get("goodput_mb_per_s") or 0.0))
print("| added RTT | seeder | per-peer MB/s (median) | max | / ceiling | goodput MB/s | ceiling MB/s (1 stream) |")
print("|---|---|---|---|---|---|---|")
for (d, s), rs in sorted(runs.items()):
    med = statistics.median(x[0] for x in rs)
    mx = statistics.median(x[1] for x in rs)
    gp = statistics.median(x[2] for x in rs)
    c = ceil.get(d)
    ratio = f"{med / c:.2f}" if c else "-"
    print(f"| {d} ms | {s} | {med:.1f} | {mx:.1f} | {ratio} | {gp:.0f} | {c:.1f} |" if c else
          f"| {d} ms | {s} | {med:.1f} | {mx:.1f} | - | {gp:.0f} | - |")
EOF
