#!/usr/bin/env bash
# Swarm bench (issue 4): ringseed and a libtorrent seed, in turn, each serve
# the synthetic leechers of `ringseed-bench leech` (K peers for D seconds),
# for every K in PEERS and ROUNDS rounds, seeders alternating A B A B. Prints
# one markdown table per peer count and a summary (libtorrent / ringseed
# ratios of goodput and seeder CPU per GiB, medians over rounds) on stdout,
# progress on stderr, and appends one JSON line per run to RESULTS.
# Exit 0 when every run gave a report, 1 otherwise (the tables still print).
# See docs/swarm_bench.md.
#
# Loopback only: ringseed seeds on 127.0.10.2, libtorrent on 127.0.10.3; the
# generator connects from its own addresses. A fresh seeder is started for
# every run (so its peak RSS is the run's) and stopped by pid; every wait is
# bounded; the EXIT trap stops whatever is still running.
#
# Environment (defaults in brackets):
#   SIZE [1G]                 payload size (ringseed-bench make-torrent --size)
#   PIECE_LENGTH [1M]         piece length
#   PAYLOAD_SEED [7]          payload seed
#   PEERS ["16 256 2048"]     peer counts, in order
#   ROUNDS [2]                rounds per peer count
#   SEEDERS ["ringseed libtorrent"]  seeder kinds, in order (A B A B)
#   DURATION_S [10]           seconds each leech run lasts (--duration)
#   CHECK_EVERY [16]          the generator checks one block in this many
#   REQUESTS []               requests each peer keeps outstanding (generator
#                             default when empty)
#   GEN_THREADS []            generator threads (generator default: the CPUs)
#   RESULTS [./swarm-results-<UTC time>.jsonl]  raw JSON lines, appended
#   READY_TIMEOUT_S [180]     limit on a seeder getting ready, in seconds
#   LEECH_SLACK_S [60]        leech run limit beyond DURATION_S, in seconds
#   STOP_WAIT_S [10]          SIGTERM grace before SIGKILL, in seconds
#   PORT_BASE [17300]         first TCP port (one per run)
#   RINGSEED [target/release/ringseed]
#   BENCH [target/release/ringseed-bench]
#   TMP_PARENT [${TMPDIR:-/tmp}]  where the work dir is made (needs SIZE of disk)
#   KEEP [0]                  1: keep the work dir
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=/usr/bin/python3

SIZE="${SIZE:-1G}"
PIECE_LENGTH="${PIECE_LENGTH:-1M}"
PAYLOAD_SEED="${PAYLOAD_SEED:-7}"
PEERS="${PEERS:-16 256 2048}"
ROUNDS="${ROUNDS:-2}"
SEEDERS="${SEEDERS:-ringseed libtorrent}"
DURATION_S="${DURATION_S:-10}"
CHECK_EVERY="${CHECK_EVERY:-16}"
REQUESTS="${REQUESTS:-}"
GEN_THREADS="${GEN_THREADS:-}"
RESULTS="${RESULTS:-$PWD/swarm-results-$(date -u +%Y%m%dT%H%M%SZ).jsonl}"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-180}"
LEECH_SLACK_S="${LEECH_SLACK_S:-60}"
STOP_WAIT_S="${STOP_WAIT_S:-10}"
PORT_BASE="${PORT_BASE:-17300}"
RINGSEED="${RINGSEED:-$ROOT/target/release/ringseed}"
BENCH="${BENCH:-$ROOT/target/release/ringseed-bench}"
TMP_PARENT="${TMP_PARENT:-${TMPDIR:-/tmp}}"
KEEP="${KEEP:-0}"

RINGSEED_IP=127.0.10.2
LIBTORRENT_IP=127.0.10.3
PEER_SLACK=16            # seeder connection limit = peers + this
PEERS_MAX=20000          # largest peer count accepted
FD_SLACK=256             # descriptors needed beyond the peer count
POLL_S=0.1               # wait-loop period, in seconds
KILL_AFTER_S=5           # leech run: SIGKILL this long after its SIGTERM

die() { echo "swarm bench: $*" >&2; exit 1; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

[[ "$ROUNDS" =~ ^[1-9][0-9]?$ ]] || die "ROUNDS must be 1..99, got '$ROUNDS'"
[[ "$DURATION_S" =~ ^[1-9][0-9]{0,3}$ ]] || die "DURATION_S must be 1..9999, got '$DURATION_S'"
[[ "$CHECK_EVERY" =~ ^[1-9][0-9]{0,5}$ ]] || die "CHECK_EVERY must be 1..999999, got '$CHECK_EVERY'"
[[ -z "$REQUESTS" || "$REQUESTS" =~ ^[1-9][0-9]{0,4}$ ]] || die "REQUESTS must be empty or 1..99999"
[[ -z "$GEN_THREADS" || "$GEN_THREADS" =~ ^[1-9][0-9]{0,2}$ ]] || die "GEN_THREADS must be empty or 1..999"
for v in READY_TIMEOUT_S LEECH_SLACK_S STOP_WAIT_S; do
    [[ "${!v}" =~ ^[1-9][0-9]{0,3}$ ]] || die "$v must be 1..9999, got '${!v}'"
done
[[ "$PORT_BASE" =~ ^[1-9][0-9]{3,4}$ && "$PORT_BASE" -le 60000 ]] || die "PORT_BASE must be 1000..60000"
[[ -n "$PEERS" ]] || die "PEERS is empty"
for k in $PEERS; do
    [[ "$k" =~ ^[1-9][0-9]{0,4}$ && "$k" -le $PEERS_MAX ]] || die "peer count must be 1..$PEERS_MAX, got '$k'"
done
for s in $SEEDERS; do [[ $s == ringseed || $s == libtorrent ]] || die "unknown seeder kind '$s'"; done
[[ -x "$RINGSEED" ]] || die "$RINGSEED not found: cargo build --release (or set RINGSEED)"
[[ -x "$BENCH" ]] || die "$BENCH not found: cargo build --release (or set BENCH)"
if [[ " $SEEDERS " == *" libtorrent "* ]]; then
    "$PY" -c 'import libtorrent' 2>/dev/null || die "$PY cannot import libtorrent (python3-libtorrent)"
fi
if command -v jq >/dev/null; then JQ=1; else JQ=0; fi

# Descriptors: the generator and the seeders each hold one socket per peer.
peers_top=0
for k in $PEERS; do ((k > peers_top)) && peers_top=$k; done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fds="$(ulimit -n)"
[[ "$fds" == unlimited || "$fds" -ge $((peers_top + PEER_SLACK + FD_SLACK)) ]] ||
    die "open-file limit $fds is too low for $peers_top peers (raise ulimit -n)"

PEERS_FLAG=0
if "$RINGSEED" seed --help 2>/dev/null | grep -q -- --peers-per-torrent; then PEERS_FLAG=1; fi

WORK="$(mktemp -d "$TMP_PARENT/ringseed-swarm.XXXXXX")"
PIDS=()          # every process started, for the exit trap

# Stops one pid: SIGTERM, up to STOP_WAIT_S, then SIGKILL. Reaps it.
stop_pid() {
    local pid=$1 i
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < STOP_WAIT_S * 10; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep "$POLL_S"
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid still running after ${STOP_WAIT_S} s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [[ "$KEEP" == 1 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts seeder KIND on PORT for K peers; sets SEEDER_PID and SEEDER_ADDR, or
# returns 1 (with the reason in SEEDER_ERR) when it is not ready in time.
start_seeder() {
    local kind=$1 port=$2 k=$3 logf=$4 ready i
    local conns=$((k + PEER_SLACK))
    if [[ $kind == ringseed ]]; then
        local extra=()
        ((PEERS_FLAG)) && extra=(--peers-per-torrent "$conns")
        SEEDER_ADDR="$RINGSEED_IP:$port"
        "$RINGSEED" seed "$WORK/t.torrent" --data "$WORK/data" --listen "$SEEDER_ADDR" \
            --bind-address "$RINGSEED_IP" "${extra[@]}" >"$logf" 2>&1 &
        ready="ringseed: listening on"
    else
        SEEDER_ADDR="$LIBTORRENT_IP:$port"
        "$PY" "$HERE/lt_seed.py" "$WORK/t.torrent" "$WORK/data" "$LIBTORRENT_IP" "$port" \
            --connections "$conns" --ready-timeout "$READY_TIMEOUT_S" >"$logf" 2>&1 &
        ready="lt_seed: ready"
    fi
    SEEDER_PID=$!
    PIDS+=("$SEEDER_PID")
    for ((i = 0; i < READY_TIMEOUT_S * 10; i++)); do
        grep -q "$ready" "$logf" && return 0
        if ! kill -0 "$SEEDER_PID" 2>/dev/null; then
            SEEDER_ERR="$kind exited before it was ready: $(tail -c 300 "$logf" | tr '\n"' ' _')"
            return 1
        fi
        sleep "$POLL_S"
    done
    SEEDER_ERR="$kind not ready after ${READY_TIMEOUT_S} s"
    return 1
}

# Appends one record to RESULTS: report JSON from file $5 or error text $4.
record() {
    local kind=$1 k=$2 round=$3 err=$4 report=${5:-}
    local meta
    meta="$(printf '{"seeder":"%s","peers":%d,"round":%d,"duration_s":%d,"check_every":%d,"size":"%s","piece_length":"%s","utc":"%s"}' \
        "$kind" "$k" "$round" "$DURATION_S" "$CHECK_EVERY" "$SIZE" "$PIECE_LENGTH" "$(date -u +%FT%TZ)")"
    if [[ -n "$report" ]]; then
        if ((JQ)); then
            jq -c --argjson m "$meta" '$m + {report: .}' "$report" >>"$RESULTS"
        else
            "$PY" -c 'import json,sys; m=json.loads(sys.argv[1]); m["report"]=json.load(open(sys.argv[2])); print(json.dumps(m))' \
                "$meta" "$report" >>"$RESULTS"
        fi
    else
        "$PY" -c 'import json,sys; m=json.loads(sys.argv[1]); m["error"]=sys.argv[2]; print(json.dumps(m))' \
            "$meta" "$err" >>"$RESULTS"
    fi
}

log "work dir $WORK; results $RESULTS"
log "ringseed --peers-per-torrent: $([[ $PEERS_FLAG == 1 ]] && echo passed || echo 'not supported, not passed')"
log "making a $SIZE payload (seed $PAYLOAD_SEED, pieces $PIECE_LENGTH)"
mkdir -p "$WORK/data"
"$BENCH" make-torrent --payload-seed "$PAYLOAD_SEED" --size "$SIZE" --piece-length "$PIECE_LENGTH" \
    -o "$WORK/t.torrent" --data-dir "$WORK/data" >&2
find "$WORK/data" -type f -exec cat {} + >/dev/null   # into the page cache

gen_extra=(--check-every "$CHECK_EVERY")
[[ -n "$REQUESTS" ]] && gen_extra+=(--requests "$REQUESTS")
[[ -n "$GEN_THREADS" ]] && gen_extra+=(--threads "$GEN_THREADS")

: >>"$RESULTS"
run_index=0
failed=0         # runs without a report
start_s=$SECONDS
for k in $PEERS; do
    for ((round = 1; round <= ROUNDS; round++)); do
        for kind in $SEEDERS; do
            port=$((PORT_BASE + run_index))
            tag="$kind-$k-$round"
            run_index=$((run_index + 1))
            log "$tag: starting $kind"
            if ! start_seeder "$kind" "$port" "$k" "$WORK/$tag.seeder.log"; then
                log "$tag: $SEEDER_ERR"
                record "$kind" "$k" "$round" "$SEEDER_ERR"
                failed=$((failed + 1))
                stop_pid "$SEEDER_PID"
                PIDS=()
                continue
            fi
            log "$tag: $kind ready on $SEEDER_ADDR (pid $SEEDER_PID); $k peers for $DURATION_S s"
            timeout --signal=TERM --kill-after="$KILL_AFTER_S" $((DURATION_S + LEECH_SLACK_S)) \
                "$BENCH" leech --torrent "$WORK/t.torrent" --payload-seed "$PAYLOAD_SEED" \
                --target "$SEEDER_ADDR" --peers "$k" --duration "$DURATION_S" \
                --seeder-pid "$SEEDER_PID" --json "${gen_extra[@]}" \
                >"$WORK/$tag.json" 2>"$WORK/$tag.leech.err" &
            leech_pid=$!
            PIDS+=("$leech_pid")
            rc=0
            wait "$leech_pid" || rc=$?
            stop_pid "$SEEDER_PID"
            PIDS=()      # both reaped: nothing of this run is left to stop
            if ((rc == 0)) && [[ -s "$WORK/$tag.json" ]]; then
                record "$kind" "$k" "$round" "" "$WORK/$tag.json"
                log "$tag: $("$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.2f GB/s, %s peers connected" % (r["goodput_mb_per_s"] / 1000, r["peers_connected"]))' "$WORK/$tag.json" 2>/dev/null || echo done)"
            else
                err="leech exit $rc: $(tail -c 300 "$WORK/$tag.leech.err" | tr '\n"' ' _')"
                log "$tag: $err"
                record "$kind" "$k" "$round" "$err"
                failed=$((failed + 1))
            fi
        done
    done
done
log "all runs done in $((SECONDS - start_s)) s; $failed failed"

echo "## Swarm bench $(date -u +%F\ %H:%M) UTC: SIZE=$SIZE pieces $PIECE_LENGTH, ${DURATION_S} s per run, check every $CHECK_EVERY blocks, $(nproc) CPUs"
echo
"$PY" "$HERE/report.py" "$RESULTS"
((failed == 0)) || die "$failed of $run_index runs failed (see the table and $RESULTS)"
