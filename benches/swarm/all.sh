#!/usr/bin/env bash
# The whole swarm comparison (issue 4) in one command:
#
#   benches/swarm/all.sh [OUT_DIR]        # default OUT_DIR: docs/swarm/<UTC date>
#
# Builds the release binaries (cargo is a no-op when they are up to date),
# then runs benches/swarm/run.sh three times:
#   MODE=peers     one 1 GiB torrent, 16 / 256 / 2048 peers, 2 rounds A B A B, all seeders
#   MODE=torrents  200 torrents x 10 peers (16 MiB each), 1 round, all seeders
#   MODE=scaling   ringseed, 1, 2, 4, ... shards up to the CPU count, 16 torrents, 256 peers, 2 rounds
#   MODE=slots     ringseed, --upload-slots 4 and unlimited, 16 / 256 peers, 1 round
#   MODE=peers with DELAY_MS=20 and 100 (as root): ringseed and libtorrent,
#                  256 peers behind the userspace delay line (netns.sh), 1 round
# ringseed runs with --upload-slots unlimited (RINGSEED_SLOTS) outside the
# slots mode, like libtorrent's high_performance_seed().
# and writes into OUT_DIR: results.jsonl (one JSON line per run), results.md
# (a header naming the date, machine, commit and command, then the tables),
# run.log (progress) and, when `ringseed-bench plot` exists, swarm.svg.
# Prints the total elapsed time. Exit 0 when every run gave a report.
#
# Sized to finish within 15 minutes on a 2-core machine with all four
# seeders (8 s per run). Environment (defaults in brackets):
#   DURATION_S [8]            seconds per run
#   PEERS ["16 256 2048"]     peer counts of MODE=peers
#   ROUNDS [2]                rounds of MODE=peers and MODE=scaling
#   TORRENTS_ROUNDS [1]       rounds of MODE=torrents
#   TORRENTS [200] PEERS_PER_TORRENT [10] TORRENTS_SIZE [16M]  MODE=torrents
#   SCALING_SHARDS [1 2 4 ... up to the CPUs, and the CPU count]
#   SCALING_TORRENTS [16] SCALING_PEERS [256] SCALING_SIZE [64M]  MODE=scaling
#   SLOTS ["4 unlimited"] SLOTS_PEERS ["16 256"] SLOTS_SIZE [256M]  MODE=slots
#   RINGSEED_SLOTS [unlimited]  ringseed's --upload-slots in the other modes
#   DELAYS ["20 100"] DELAY_PEERS [256] DELAY_SIZE [256M] DELAY_REQUESTS [250]
#                             the delayed runs ("" skips them; they need root):
#                             round-trip delays in ms, peers, payload, and the
#                             requests each peer keeps outstanding (64 would
#                             cap a peer at 1 MiB per round trip)
#   SEEDERS [run.sh's default: every kind whose adapter and program exist]
#   RINGSEED, BENCH           binaries (set both to skip the build)
#   TMP_PARENT                where run.sh makes its work dirs
# Every process is started by run.sh and stopped by pid there; this script
# only waits on run.sh (and stops it by pid on SIGINT/SIGTERM).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=/usr/bin/python3
START_S=$SECONDS
START_UTC="$(date -u +%FT%TZ)"
COMMAND="benches/swarm/all.sh${*:+ $*}"
ENV_SET=""
for v in DURATION_S PEERS ROUNDS TORRENTS_ROUNDS TORRENTS PEERS_PER_TORRENT TORRENTS_SIZE \
    SCALING_SHARDS SCALING_TORRENTS SCALING_PEERS SCALING_SIZE SLOTS SLOTS_PEERS SLOTS_SIZE \
    RINGSEED_SLOTS DELAYS DELAY_PEERS DELAY_SIZE DELAY_REQUESTS SEEDERS RINGSEED BENCH TMP_PARENT; do
    [[ -n "${!v+x}" ]] && ENV_SET+="$v=\"${!v}\" "
done

die() { echo "swarm all: $*" >&2; exit 1; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

[[ $# -le 1 ]] || die "usage: benches/swarm/all.sh [OUT_DIR]"
OUT="${1:-$ROOT/docs/swarm/$(date -u +%F)}"
DURATION_S="${DURATION_S:-8}"
PEERS="${PEERS:-16 256 2048}"
ROUNDS="${ROUNDS:-2}"
TORRENTS_ROUNDS="${TORRENTS_ROUNDS:-1}"
TORRENTS="${TORRENTS:-200}"
PEERS_PER_TORRENT="${PEERS_PER_TORRENT:-10}"
TORRENTS_SIZE="${TORRENTS_SIZE:-16M}"
SCALING_TORRENTS="${SCALING_TORRENTS:-16}"
SCALING_PEERS="${SCALING_PEERS:-256}"
SCALING_SIZE="${SCALING_SIZE:-64M}"
SLOTS="${SLOTS:-4 unlimited}"
SLOTS_PEERS="${SLOTS_PEERS:-16 256}"
SLOTS_SIZE="${SLOTS_SIZE:-256M}"
RINGSEED_SLOTS="${RINGSEED_SLOTS:-unlimited}"
export RINGSEED_SLOTS
DELAYS="${DELAYS-20 100}"
DELAY_PEERS="${DELAY_PEERS:-256}"
DELAY_SIZE="${DELAY_SIZE:-256M}"
DELAY_REQUESTS="${DELAY_REQUESTS:-250}"
SHARDS_MAX=256
CPUS="$(nproc)"
if [[ -z "${SCALING_SHARDS:-}" ]]; then
    SCALING_SHARDS=""
    for ((n = 1; n <= CPUS && n <= SHARDS_MAX; n *= 2)); do SCALING_SHARDS+="${SCALING_SHARDS:+ }$n"; done
    [[ " $SCALING_SHARDS " == *" $CPUS "* || $CPUS -gt $SHARDS_MAX ]] || SCALING_SHARDS+=" $CPUS"
    [[ "$SCALING_SHARDS" == 1 ]] && SCALING_SHARDS="1 2"   # always show a step
fi

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
RESULTS="$OUT/results.jsonl"
[[ -e "$RESULTS" ]] && die "$RESULTS already exists: give another OUT_DIR or move it away"
RUNLOG="$OUT/run.log"
: >"$RUNLOG"

if [[ -z "${RINGSEED:-}" || -z "${BENCH:-}" ]]; then
    log "building release binaries (cargo build --release --bin ringseed --bin ringseed-bench)"
    (cd "$ROOT" && cargo build --release --bin ringseed --bin ringseed-bench) 2>&1 | tail -n 3 >&2
    RINGSEED="$ROOT/target/release/ringseed"
    BENCH="$ROOT/target/release/ringseed-bench"
fi
[[ -x "$RINGSEED" && -x "$BENCH" ]] || die "binaries missing: $RINGSEED $BENCH"
export RINGSEED BENCH RESULTS DURATION_S
[[ -n "${SEEDERS:-}" ]] && export SEEDERS
[[ -n "${TMP_PARENT:-}" ]] && export TMP_PARENT

RUN_PID=
on_signal() {
    if [[ -n "$RUN_PID" ]] && kill -0 "$RUN_PID" 2>/dev/null; then
        kill -TERM "$RUN_PID" 2>/dev/null || true
        wait "$RUN_PID" 2>/dev/null || true
    fi
    exit 130
}
trap on_signal INT TERM

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
failed_modes=()
# Runs run.sh with the given environment; its tables go to run.log.
run_mode() {
    local mode=$1
    shift
    log "MODE=$mode $*"
    echo "=== MODE=$mode $* ($(date -u +%T) UTC)" >>"$RUNLOG"
    env MODE="$mode" "$@" bash "$HERE/run.sh" >>"$RUNLOG" 2> >(tee -a "$RUNLOG" >&2) &
    RUN_PID=$!
    local rc=0
    wait "$RUN_PID" || rc=$?
    RUN_PID=
    ((rc == 0)) || failed_modes+=("$mode (exit $rc)")
}

run_mode peers PEERS="$PEERS" ROUNDS="$ROUNDS" SIZE=1G TORRENTS=1 PORT_BASE=17300
run_mode torrents TORRENTS="$TORRENTS" PEERS_PER_TORRENT="$PEERS_PER_TORRENT" \
    SIZE="$TORRENTS_SIZE" ROUNDS="$TORRENTS_ROUNDS" PORT_BASE=18300
run_mode scaling SHARDS="$SCALING_SHARDS" TORRENTS="$SCALING_TORRENTS" PEERS="$SCALING_PEERS" \
    SIZE="$SCALING_SIZE" ROUNDS="$ROUNDS" PORT_BASE=19300
run_mode slots SLOTS="$SLOTS" PEERS="$SLOTS_PEERS" SIZE="$SLOTS_SIZE" TORRENTS=1 ROUNDS=1 PORT_BASE=20300
port=20600
for d in $DELAYS; do
    if [[ "$(id -u)" != 0 ]]; then
        log "delayed runs skipped: they need root (network namespace, TUN devices)"
        failed_modes+=("delay (not root)")
        break
    fi
    run_mode peers DELAY_MS="$d" PEERS="$DELAY_PEERS" SIZE="$DELAY_SIZE" TORRENTS=1 ROUNDS=1 \
        REQUESTS="$DELAY_REQUESTS" SEEDERS="ringseed libtorrent" PORT_BASE=$port
    port=$((port + 100))
done
ELAPSED=$((SECONDS - START_S))
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

version_of() {
    case $1 in
    libtorrent) "$PY" -c 'import libtorrent; print("python3-libtorrent", libtorrent.__version__)' 2>/dev/null ;;
    transmission) transmission-daemon --version 2>&1 | head -n 1 ;;
    rtorrent) rtorrent -h 2>/dev/null | head -n 1 ;;
    esac || true
}

commit="$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    commit+=" (with uncommitted changes)"
fi
cpu_model="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
mem_gib="$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)"
seeders_run="$("$PY" -c '
import json, sys
seen = []
for line in open(sys.argv[1]):
    try:
        s = json.loads(line).get("seeder")
    except ValueError:
        continue
    if s and s not in seen:
        seen.append(s)
print(" ".join(seen))' "$RESULTS")"
{
    echo "# Swarm bench: $(date -u +%F), all modes"
    echo
    echo "- Date: $START_UTC to $(date -u +%FT%TZ) ($ELAPSED s in all)"
    echo "- Machine: $(uname -n | cut -c1-40), Linux $(uname -r), $cpu_model, $CPUS CPUs, $mem_gib GiB memory"
    echo "- Load average (1/5/15 min): $LOAD_BEFORE before, $LOAD_AFTER after"
    echo "- ringseed: commit $commit, release build"
    for s in $seeders_run; do
        [[ $s == ringseed ]] || echo "- $s: $(version_of "$s")"
    done
    echo "- Command: \`${ENV_SET}$COMMAND\`"
    echo "- Settings: ${DURATION_S} s per run; peers mode: 1 GiB torrent, peers $PEERS, $ROUNDS rounds;" \
        "torrents mode: $TORRENTS x $PEERS_PER_TORRENT peers, $TORRENTS_SIZE each, $TORRENTS_ROUNDS round(s);" \
        "scaling mode: ringseed --shards $SCALING_SHARDS, $SCALING_TORRENTS torrents of $SCALING_SIZE, $SCALING_PEERS peers, $ROUNDS rounds;" \
        "slots mode: ringseed --upload-slots $SLOTS, peers $SLOTS_PEERS, $SLOTS_SIZE, 1 round;" \
        "delayed runs: +${DELAYS:-none} ms RTT, ringseed and libtorrent, $DELAY_PEERS peers, $DELAY_SIZE, $DELAY_REQUESTS requests per peer, 1 round;" \
        "ringseed --upload-slots $RINGSEED_SLOTS outside the slots mode"
    echo "- Raw results: results.jsonl (fields in docs/swarm_bench.md); progress: run.log"
    ((${#failed_modes[@]} == 0)) || echo "- Modes with failed runs: ${failed_modes[*]}"
    echo
    "$PY" "$HERE/report.py" "$RESULTS"
} >"$OUT/results.md"

if "$BENCH" plot --help >/dev/null 2>&1; then
    if "$BENCH" plot --results "$RESULTS" -o "$OUT/swarm.svg" \
        --title "ringseed swarm bench $(date -u +%F), $CPUS CPUs" >>"$RUNLOG" 2>&1; then
        log "plot: $OUT/swarm.svg"
    else
        log "ringseed-bench plot failed (see $RUNLOG)"
        failed_modes+=("plot")
    fi
else
    log "ringseed-bench has no plot subcommand: no swarm.svg"
fi

log "wrote $OUT/results.md and results.jsonl; total elapsed $((SECONDS - START_S)) s"
echo "swarm all: total elapsed $((SECONDS - START_S)) s ($(((SECONDS - START_S) / 60)) min $(((SECONDS - START_S) % 60)) s)"
((${#failed_modes[@]} == 0)) || die "failed: ${failed_modes[*]}"
