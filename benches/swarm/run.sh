#!/usr/bin/env bash
# Swarm bench (issue 4): seeders in turn (ringseed and, through adapters,
# libtorrent, transmission, rtorrent) each serve the synthetic leechers of
# `ringseed-bench leech` for D seconds, ROUNDS rounds, seeders alternating
# A B C A B C. Three modes:
#   MODE=peers     one torrent of SIZE, K peers for each K in PEERS
#   MODE=torrents  TORRENTS torrents of SIZE each, PEERS_PER_TORRENT peers on each
#   MODE=scaling   ringseed only, `--shards N` for each N in SHARDS, on
#                  TORRENTS torrents with PEERS peers in all
#   MODE=slots     ringseed only, `--upload-slots S` for each S in SLOTS, one
#                  torrent, K peers for each K in PEERS (per-peer rates with
#                  4 slots against unchoke-all)
# Prints markdown tables per mode point and a summary (ratios against
# ringseed) on stdout, progress on stderr, and appends one JSON line per run
# to RESULTS. Exit 0 when every run gave a report, 1 otherwise (the tables
# still print). See docs/swarm_bench.md (the adapter contract is there).
#
# Loopback only: ringseed seeds on 127.0.10.2, libtorrent on .3,
# transmission on .4, rtorrent on .5; the generator connects from its own
# addresses. A fresh seeder is started for every run (so its peak RSS is
# the run's) and stopped by pid; every wait is bounded; the EXIT trap stops
# whatever is still running.
#
# Environment (defaults in brackets):
#   MODE [peers]              peers | torrents | scaling | slots
#   SIZE [peers: 1G, torrents: 16M, scaling: 64M]  payload bytes per torrent
#   PIECE_LENGTH [1M]         piece length
#   PAYLOAD_SEED [7]          payload seed of the first torrent (then +1 each)
#   PEERS [peers: "16 256 2048", scaling: 256]  peer counts (peers mode: a
#                             list; scaling: the total, one number)
#   TORRENTS [torrents: 200, scaling: 16]  torrents (peers mode: always 1)
#   PEERS_PER_TORRENT [10]    torrents mode: peers on each torrent
#   SHARDS ["1 2"]            scaling mode: ringseed shard counts, in order
#   RINGSEED_SLOTS [unlimited]  ringseed's `--upload-slots` in the other
#                             modes: unlimited unchokes every interested peer,
#                             as libtorrent's high_performance_seed() does
#                             (ringseed's own default is 4 + 1 optimistic)
#   SLOTS ["4 unlimited"]     slots mode: `--upload-slots` values, in order
#   ROUNDS [2]                rounds per point
#   SEEDERS [every kind whose adapter and program exist]  seeder kinds, in
#                             order (A B A B): ringseed libtorrent
#                             transmission rtorrent; scaling: ringseed only
#   DURATION_S [10]           seconds each leech run lasts (--duration)
#   CHECK_EVERY [16]          the generator checks one block in this many
#   REQUESTS []               requests each peer keeps outstanding (generator
#                             default when empty)
#   GEN_THREADS []            generator threads (generator default: the CPUs)
#   WARMUP_UNTIL [unchoke; slots mode: handshake]  the generator's warm-up
#                             ends when every peer has the seeder's handshake
#                             and, with unchoke, its unchoke (transmission
#                             unchokes on a 10 s timer); with 4 upload slots
#                             most peers stay choked, so the slots mode waits
#                             for handshakes only
#   WARMUP_MAX_S [30]         longest warm-up, in seconds
#   DELAY_MS []               empty: everything on loopback. A number 0..10000:
#                             the generator runs in network namespace NETNS_NAME
#                             behind benches/swarm/netns.sh's userspace delay
#                             line, which adds DELAY_MS to the round trip (half
#                             each way); the seeders listen on 10.203.0.1, the
#                             root side of its TUN pair, and the peers bind
#                             10.204.0.1, .2, ... (docs/swarm_delay.md). Root only.
#   NETNS_NAME [delay-swarm]  that namespace (must start with "delay")
#   QUEUE_BYTES [256M]        the delay line's queue per direction
#   RESULTS [./swarm-results-<UTC time>.jsonl]  raw JSON lines, appended
#   READY_TIMEOUT_S [180]     limit on a seeder getting ready, in seconds
#   LEECH_SLACK_S [60]        leech run limit beyond DURATION_S, in seconds
#   STOP_WAIT_S [10]          SIGTERM grace before SIGKILL, in seconds
#   PORT_BASE [17300]         first TCP port (4 per run: the seeder listens on
#                             the first, an adapter may use the next 3)
#   RINGSEED [target/release/ringseed]
#   BENCH [target/release/ringseed-bench]
#   TMP_PARENT [${TMPDIR:-/tmp}]  where the work dir is made (needs the payload's disk)
#   KEEP [0]                  1: keep the work dir
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=/usr/bin/python3

MODE="${MODE:-peers}"
case "$MODE" in
peers) def_size=1G def_peers="16 256 2048" def_torrents=1 ;;
torrents) def_size=16M def_peers="" def_torrents=200 ;;
scaling) def_size=64M def_peers=256 def_torrents=16 ;;
slots) def_size=256M def_peers="16 256" def_torrents=1 ;;
*) echo "swarm bench: MODE must be peers, torrents, scaling or slots, got '$MODE'" >&2; exit 1 ;;
esac
SIZE="${SIZE:-$def_size}"
PIECE_LENGTH="${PIECE_LENGTH:-1M}"
PAYLOAD_SEED="${PAYLOAD_SEED:-7}"
PEERS="${PEERS:-$def_peers}"
TORRENTS="${TORRENTS:-$def_torrents}"
PEERS_PER_TORRENT="${PEERS_PER_TORRENT:-10}"
SHARDS="${SHARDS:-1 2}"
RINGSEED_SLOTS="${RINGSEED_SLOTS:-unlimited}"
SLOTS="${SLOTS:-4 unlimited}"
ROUNDS="${ROUNDS:-2}"
SEEDERS="${SEEDERS:-}"
DURATION_S="${DURATION_S:-10}"
CHECK_EVERY="${CHECK_EVERY:-16}"
REQUESTS="${REQUESTS:-}"
GEN_THREADS="${GEN_THREADS:-}"
def_warmup=unchoke
[[ "$MODE" == slots ]] && def_warmup=handshake
WARMUP_UNTIL="${WARMUP_UNTIL:-$def_warmup}"
WARMUP_MAX_S="${WARMUP_MAX_S:-30}"
DELAY_MS="${DELAY_MS:-}"
NETNS_NAME="${NETNS_NAME:-delay-swarm}"
QUEUE_BYTES="${QUEUE_BYTES:-256M}"
RESULTS="${RESULTS:-$PWD/swarm-results-$(date -u +%Y%m%dT%H%M%SZ).jsonl}"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-180}"
LEECH_SLACK_S="${LEECH_SLACK_S:-60}"
STOP_WAIT_S="${STOP_WAIT_S:-10}"
PORT_BASE="${PORT_BASE:-17300}"
RINGSEED="${RINGSEED:-$ROOT/target/release/ringseed}"
BENCH="${BENCH:-$ROOT/target/release/ringseed-bench}"
TMP_PARENT="${TMP_PARENT:-${TMPDIR:-/tmp}}"
KEEP="${KEEP:-0}"

KINDS_ALL="ringseed libtorrent transmission rtorrent"
PEER_SLACK=16            # seeder connection limit = peers + this
PEERS_MAX=10000          # largest peer count (the generator's limit)
TORRENTS_MAX=10000       # most torrents (the generator's limit)
FD_SLACK=256             # descriptors needed beyond the peer count
POLL_S=0.1               # wait-loop period, in seconds
KILL_AFTER_S=5           # leech run: SIGKILL this long after its SIGTERM
PORT_STRIDE=4            # ports per run
SIZE_RE='^[1-9][0-9]{0,12}[KMG]?$'

die() { echo "swarm bench: $*" >&2; exit 1; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# The address, adapter prefix and program of each seeder kind.
kind_ip() {
    # Behind the delay line every seeder listens on the root side of the TUN
    # pair; they run one at a time, each on its own port.
    [[ -n "$DELAY_MS" ]] && { echo "$DELAY_SEEDER_IP"; return 0; }
    case $1 in
    ringseed) echo 127.0.10.2 ;; libtorrent) echo 127.0.10.3 ;;
    transmission) echo 127.0.10.4 ;; rtorrent) echo 127.0.10.5 ;;
    esac
}
kind_prefix() {
    case $1 in libtorrent) echo lt ;; transmission) echo tr ;; rtorrent) echo rt ;; esac
}
# The adapter of a kind (benches/swarm/<prefix>_seed.sh or .py), or nothing.
kind_adapter() {
    local p ext
    p="$(kind_prefix "$1")"
    [[ -n "$p" ]] || return 0
    for ext in sh py; do
        if [[ -f "$HERE/${p}_seed.$ext" ]]; then echo "$HERE/${p}_seed.$ext"; return 0; fi
    done
}
# Whether the program behind a kind is installed; prints why not.
kind_program_missing() {
    case $1 in
    ringseed) [[ -x "$RINGSEED" ]] || echo "$RINGSEED not found: cargo build --release (or set RINGSEED)" ;;
    libtorrent) "$PY" -c 'import libtorrent' 2>/dev/null || echo "$PY cannot import libtorrent (python3-libtorrent)" ;;
    transmission) command -v transmission-daemon >/dev/null || echo "transmission-daemon is not installed" ;;
    rtorrent) command -v rtorrent >/dev/null || echo "rtorrent is not installed" ;;
    esac
}
# Why a kind cannot run (empty when it can).
kind_unavailable() {
    local why
    why="$(kind_program_missing "$1")"
    if [[ -z "$why" && $1 != ringseed && -z "$(kind_adapter "$1")" ]]; then
        why="no adapter benches/swarm/$(kind_prefix "$1")_seed.{sh,py}"
    fi
    echo "$why"
}

[[ "$SIZE" =~ $SIZE_RE ]] || die "SIZE must be a number with an optional K, M or G, got '$SIZE'"
[[ "$PIECE_LENGTH" =~ $SIZE_RE ]] || die "PIECE_LENGTH must be a number with an optional K, M or G"
[[ "$PAYLOAD_SEED" =~ ^[0-9]{1,15}$ ]] || die "PAYLOAD_SEED must be 0..999999999999999"
[[ "$ROUNDS" =~ ^[1-9][0-9]?$ ]] || die "ROUNDS must be 1..99, got '$ROUNDS'"
[[ "$DURATION_S" =~ ^[1-9][0-9]{0,3}$ ]] || die "DURATION_S must be 1..9999, got '$DURATION_S'"
[[ "$CHECK_EVERY" =~ ^[1-9][0-9]{0,5}$ ]] || die "CHECK_EVERY must be 1..999999, got '$CHECK_EVERY'"
[[ -z "$REQUESTS" || "$REQUESTS" =~ ^[1-9][0-9]{0,4}$ ]] || die "REQUESTS must be empty or 1..99999"
[[ -z "$GEN_THREADS" || "$GEN_THREADS" =~ ^[1-9][0-9]{0,2}$ ]] || die "GEN_THREADS must be empty or 1..999"
[[ "$WARMUP_UNTIL" == handshake || "$WARMUP_UNTIL" == unchoke ]] || die "WARMUP_UNTIL must be handshake or unchoke, got '$WARMUP_UNTIL'"
[[ "$WARMUP_MAX_S" =~ ^[0-9]{1,3}$ && "$WARMUP_MAX_S" -le 600 ]] || die "WARMUP_MAX_S must be 0..600, got '$WARMUP_MAX_S'"
DELAY_SEEDER_IP=10.203.0.1   # netns.sh's root-side address
DELAY_SOURCE_BASE=10.204.0.1 # netns.sh's AnyIP range inside the namespace
if [[ -n "$DELAY_MS" ]]; then
    [[ "$DELAY_MS" =~ ^[0-9]{1,5}$ && "$DELAY_MS" -le 10000 ]] || die "DELAY_MS must be empty or 0..10000, got '$DELAY_MS'"
    [[ "$(id -u)" == 0 ]] || die "DELAY_MS needs root (network namespace, TUN devices)"
    [[ "$QUEUE_BYTES" =~ $SIZE_RE ]] || die "QUEUE_BYTES must be a number with an optional K, M or G"
fi
for v in READY_TIMEOUT_S LEECH_SLACK_S STOP_WAIT_S; do
    [[ "${!v}" =~ ^[1-9][0-9]{0,3}$ ]] || die "$v must be 1..9999, got '${!v}'"
done
[[ "$PORT_BASE" =~ ^[1-9][0-9]{3,4}$ && "$PORT_BASE" -le 60000 ]] || die "PORT_BASE must be 1000..60000"
[[ "$TORRENTS" =~ ^[1-9][0-9]{0,4}$ && "$TORRENTS" -le $TORRENTS_MAX ]] ||
    die "TORRENTS must be 1..$TORRENTS_MAX, got '$TORRENTS'"

SLOTS_RE='^([1-9][0-9]{0,3}|unlimited|rate-based)$'
[[ "$RINGSEED_SLOTS" =~ $SLOTS_RE ]] || die "RINGSEED_SLOTS must be 1..9999, unlimited or rate-based, got '$RINGSEED_SLOTS'"

# The points of this mode: "torrents peers shards slots" (shards "-":
# ringseed's default; slots: ringseed's --upload-slots).
POINTS=()
case "$MODE" in
peers | slots)
    [[ "$TORRENTS" == 1 ]] || die "MODE=$MODE uses one torrent (TORRENTS=$TORRENTS): use MODE=torrents"
    [[ -n "$PEERS" ]] || die "PEERS is empty"
    if [[ $MODE == peers ]]; then
        for k in $PEERS; do POINTS+=("1 $k - $RINGSEED_SLOTS"); done
    else
        [[ -n "$SLOTS" ]] || die "SLOTS is empty"
        for s in $SLOTS; do
            [[ "$s" =~ $SLOTS_RE ]] || die "SLOTS: each must be 1..9999, unlimited or rate-based, got '$s'"
            for k in $PEERS; do POINTS+=("1 $k - $s"); done
        done
    fi
    ;;
torrents)
    [[ "$PEERS_PER_TORRENT" =~ ^[1-9][0-9]{0,4}$ ]] || die "PEERS_PER_TORRENT must be 1..99999"
    POINTS+=("$TORRENTS $((TORRENTS * PEERS_PER_TORRENT)) - $RINGSEED_SLOTS")
    ;;
scaling)
    [[ "$PEERS" =~ ^[1-9][0-9]{0,4}$ ]] || die "MODE=scaling takes one total peer count in PEERS, got '$PEERS'"
    ((PEERS >= TORRENTS)) || die "PEERS ($PEERS) must be at least TORRENTS ($TORRENTS)"
    [[ -n "$SHARDS" ]] || die "SHARDS is empty"
    for n in $SHARDS; do
        [[ "$n" =~ ^[1-9][0-9]{0,2}$ && "$n" -le 256 ]] || die "shard count must be 1..256, got '$n'"
        POINTS+=("$TORRENTS $PEERS $n $RINGSEED_SLOTS")
    done
    ;;
esac
peers_top=0
for p in "${POINTS[@]}"; do
    read -r _ k _ _ <<<"$p"
    [[ "$k" =~ ^[1-9][0-9]*$ && "$k" -le $PEERS_MAX ]] || die "peer count must be 1..$PEERS_MAX, got '$k'"
    ((k > peers_top)) && peers_top=$k
done

# Seeder kinds: the ones asked for must all run; by default every one that can.
if [[ "$MODE" == scaling || "$MODE" == slots ]]; then
    [[ -z "$SEEDERS" || "$SEEDERS" == ringseed ]] || log "MODE=$MODE runs ringseed only (SEEDERS='$SEEDERS' ignored)"
    SEEDERS=ringseed
fi
if [[ -z "$SEEDERS" ]]; then
    for kind in $KINDS_ALL; do
        why="$(kind_unavailable "$kind")"
        if [[ -z "$why" ]]; then
            SEEDERS="${SEEDERS:+$SEEDERS }$kind"
        elif [[ $kind == ringseed || $kind == libtorrent ]]; then
            die "$kind is required: $why"
        else
            log "seeder $kind skipped: $why"
        fi
    done
else
    for kind in $SEEDERS; do
        [[ " $KINDS_ALL " == *" $kind "* ]] || die "unknown seeder kind '$kind' (known: $KINDS_ALL)"
        why="$(kind_unavailable "$kind")"
        [[ -z "$why" ]] || die "seeder $kind: $why"
    done
fi
[[ -x "$BENCH" ]] || die "$BENCH not found: cargo build --release (or set BENCH)"
if command -v jq >/dev/null; then JQ=1; else JQ=0; fi

# Descriptors: the generator and the seeders each hold one socket per peer.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fds="$(ulimit -n)"
[[ "$fds" == unlimited || "$fds" -ge $((peers_top + PEER_SLACK + FD_SLACK + TORRENTS)) ]] ||
    die "open-file limit $fds is too low for $peers_top peers (raise ulimit -n)"

PEERS_FLAG=0
if "$RINGSEED" seed --help 2>/dev/null | grep -q -- --peers-per-torrent; then PEERS_FLAG=1; fi

WORK="$(mktemp -d "$TMP_PARENT/ringseed-swarm.XXXXXX")"
PIDS=()          # every process started, for the exit trap
SEEDER_PID=      # the seeder (or adapter) running now
NETNS_UP=0       # 1 once netns.sh up ran (cleanup then runs netns.sh down)
LEECH_PREFIX=()  # runs the generator inside the namespace when DELAY_MS is set
kind=            # its kind

# Whether process $1 runs (exists and is not a zombie).
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [[ "$(sed -n 's/^.*) \([A-Za-z]\) .*$/\1/p' "/proc/$1/stat" 2>/dev/null || true)" != Z ]]
}

# Stops one pid: SIGTERM, up to STOP_WAIT_S, then SIGKILL. Reaps it when it
# is our child.
stop_pid() {
    local pid=$1 i
    [[ -n "$pid" ]] || return 0
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < STOP_WAIT_S * 10; i++)); do
            alive "$pid" || break
            sleep "$POLL_S"
        done
        if alive "$pid"; then
            log "pid $pid still running after ${STOP_WAIT_S} s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local pid pids=("${PIDS[@]}")
    stop_seeder
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    if ((NETNS_UP)); then BENCH="$BENCH" bash "$HERE/netns.sh" down "$NETNS_NAME" >&2 || true; fi
    if [[ "$KEEP" == 1 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts seeder KIND on PORT for T torrents, K peers, N shards ("-": the
# default), ringseed upload slots S; sets SEEDER_PID (the process started), CPU_PID (the one whose
# CPU counts), SEEDER_ADDR and SEEDER_SHARDS, or returns 1 (reason in
# SEEDER_ERR) when it is not ready in time.
start_seeder() {
    local kind=$1 port=$2 t=$3 k=$4 shards=$5 logf=$6 outf=$7 slots=$8 i
    local per_torrent=$(((k + t - 1) / t + PEER_SLACK)) conns=$((k + PEER_SLACK))
    SEEDER_ADDR="$(kind_ip "$kind"):$port"
    SEEDER_SHARDS=null
    CPU_PID=
    if [[ $kind == ringseed ]]; then
        local extra=()
        ((PEERS_FLAG)) && extra+=(--peers-per-torrent "$per_torrent")
        [[ "$shards" != - ]] && extra+=(--shards "$shards")
        extra+=(--upload-slots "$slots")
        "$RINGSEED" seed "${TORRENT_FILES[@]}" --data "$WORK/data" --listen "$SEEDER_ADDR" \
            --bind-address "$(kind_ip "$kind")" --no-dht "${extra[@]}" >"$outf" 2>"$logf" &
        SEEDER_PID=$!
        PIDS+=("$SEEDER_PID")
        CPU_PID=$SEEDER_PID
        for ((i = 0; i < READY_TIMEOUT_S * 10; i++)); do
            if grep -q " INFO listening on " "$logf" 2>/dev/null; then
                SEEDER_SHARDS="$(sed -n 's/.* INFO listening on .* (\([0-9]*\) shards)$/\1/p' "$logf" | head -1)"
                [[ -n "$SEEDER_SHARDS" ]] || SEEDER_SHARDS=null
                return 0
            fi
            if ! kill -0 "$SEEDER_PID" 2>/dev/null; then
                SEEDER_ERR="ringseed exited before it was ready: $(tail -c 300 "$logf" | tr '\n"' ' _')"
                return 1
            fi
            sleep "$POLL_S"
        done
    else
        local adapter
        adapter="$(kind_adapter "$kind")"
        local run=(bash)
        [[ "$adapter" == *.py ]] && run=("$PY")
        "${run[@]}" "$adapter" --ip "$(kind_ip "$kind")" --port "$port" --connections "$conns" \
            --ready-timeout "$READY_TIMEOUT_S" --data "$WORK/data" "${TORRENT_FILES[@]}" \
            >"$outf" 2>"$logf" &
        SEEDER_PID=$!
        PIDS+=("$SEEDER_PID")
        for ((i = 0; i < READY_TIMEOUT_S * 10; i++)); do
            # The pid line comes before the ready line: read it once ready.
            if grep -qE '^[A-Za-z0-9_.-]+: ready$' "$outf" 2>/dev/null; then
                CPU_PID="$(sed -n 's/^[A-Za-z0-9_.-]*: pid \([0-9][0-9]*\)$/\1/p' "$outf" 2>/dev/null | head -1)"
                if [[ -z "$CPU_PID" ]]; then
                    SEEDER_ERR="$kind adapter said ready without a pid line"
                    return 1
                fi
                if ! descends_from "$CPU_PID" "$SEEDER_PID"; then
                    SEEDER_ERR="$kind adapter reported pid $CPU_PID, which is not the adapter or one of its descendants"
                    CPU_PID=
                    return 1
                fi
                return 0
            fi
            if ! kill -0 "$SEEDER_PID" 2>/dev/null; then
                SEEDER_ERR="$kind adapter exited before it was ready: $(tail -c 300 "$logf" | tr '\n"' ' _')"
                return 1
            fi
            sleep "$POLL_S"
        done
    fi
    SEEDER_ERR="$kind not ready after ${READY_TIMEOUT_S} s"
    return 1
}

# Whether process $1 is $2 or one of its descendants (up to 32 levels).
descends_from() {
    local pid=$1 anc=$2 i
    for ((i = 0; i < 32; i++)); do
        [[ "$pid" == "$anc" ]] && return 0
        ((pid > 1)) || return 1
        pid="$(sed -n 's/^.*) [A-Za-z] \([0-9]*\) .*$/\1/p' "/proc/$pid/stat" 2>/dev/null || true)"
        [[ -n "$pid" ]] || return 1
    done
    return 1
}

# The descendants of process $1 (children first), at most 64 levels deep.
descendants_of() {
    local pid
    for pid in $(ps -o pid= --ppid "$1" 2>/dev/null || true); do
        echo "$pid"
        (( ${2:-0} < 64 )) && descendants_of "$pid" $(( ${2:-0} + 1 ))
    done
}

# Stops the seeder: the process started and, for an adapter, whatever it
# started that outlives it (the seeder pid it reported included).
stop_seeder() {
    local left=() pid i
    [[ -n "${SEEDER_PID:-}" ]] && left=($(descendants_of "$SEEDER_PID"))
    stop_pid "${SEEDER_PID:-}"
    SEEDER_PID=
    # Let short-lived helpers (a `sleep` in a wait loop) end by themselves.
    for ((i = 0; i < 10 && ${#left[@]} > 0; i++)); do
        local alive=0
        for pid in "${left[@]}"; do alive "$pid" && alive=1; done
        ((alive)) || break
        sleep "$POLL_S"
    done
    for pid in "${left[@]}"; do
        if alive "$pid"; then
            log "pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80), started by the ${kind:-seeder} adapter) outlived it: stopping it"
            stop_pid "$pid"
        fi
    done
    PIDS=()
}

# Appends one record to RESULTS: report JSON from file $7 or error text $6.
record() {
    local kind=$1 t=$2 k=$3 shards=$4 round=$5 err=$6 report=${7:-} slots_json=null
    local meta delay_json=${DELAY_MS:-null}
    [[ $kind == ringseed ]] && slots_json="\"$slots\""
    meta="$(printf '{"seeder":"%s","mode":"%s","shards":%s,"slots":%s,"torrents":%d,"peers":%d,"delay_ms":%s,"round":%d,"duration_s":%d,"check_every":%d,"size":"%s","piece_length":"%s","utc":"%s"}' \
        "$kind" "$MODE" "$shards" "$slots_json" "$t" "$k" "$delay_json" "$round" "$DURATION_S" "$CHECK_EVERY" "$SIZE" "$PIECE_LENGTH" "$(date -u +%FT%TZ)")"
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

log "mode $MODE; seeders: $SEEDERS; ringseed --upload-slots $RINGSEED_SLOTS (slots mode: $SLOTS); work dir $WORK; results $RESULTS"
log "ringseed --peers-per-torrent: $([[ $PEERS_FLAG == 1 ]] && echo passed || echo 'not supported, not passed')"
log "making $TORRENTS payload(s) of $SIZE (seeds from $PAYLOAD_SEED, pieces $PIECE_LENGTH)"
mkdir -p "$WORK/data"
"$BENCH" make-torrent --count "$TORRENTS" --payload-seed "$PAYLOAD_SEED" --size "$SIZE" \
    --piece-length "$PIECE_LENGTH" -o "$WORK/torrents" --data-dir "$WORK/data" >"$WORK/torrents.txt"
TORRENT_FILES=()
while read -r _ path; do TORRENT_FILES+=("$path"); done <"$WORK/torrents.txt"
((${#TORRENT_FILES[@]} == TORRENTS)) || die "make-torrent wrote ${#TORRENT_FILES[@]} torrents, not $TORRENTS"
find "$WORK/data" -type f -exec cat {} + >/dev/null   # into the page cache

gen_extra=(--check-every "$CHECK_EVERY" --warmup-until "$WARMUP_UNTIL" --warmup-max "$WARMUP_MAX_S")
[[ -n "$REQUESTS" ]] && gen_extra+=(--requests "$REQUESTS")
[[ -n "$GEN_THREADS" ]] && gen_extra+=(--threads "$GEN_THREADS")
if [[ -n "$DELAY_MS" ]]; then
    NETNS_UP=1
    log "delay line: namespace $NETNS_NAME, +$DELAY_MS ms round trip, queue $QUEUE_BYTES per direction"
    BENCH="$BENCH" QUEUE_BYTES="$QUEUE_BYTES" bash "$HERE/netns.sh" up "$NETNS_NAME" "$DELAY_MS" >&2
    LEECH_PREFIX=(bash "$HERE/netns.sh" exec "$NETNS_NAME")
    gen_extra+=(--source-base "$DELAY_SOURCE_BASE")
fi

: >>"$RESULTS"
run_index=0
failed=0         # runs without a report
start_s=$SECONDS
for point in "${POINTS[@]}"; do
    read -r t k shards slots <<<"$point"
    for ((round = 1; round <= ROUNDS; round++)); do
        for kind in $SEEDERS; do
            port=$((PORT_BASE + run_index * PORT_STRIDE))
            ((port <= 65535 - PORT_STRIDE)) || die "out of ports: lower PORT_BASE"
            tag="$kind-t$t-k$k-s${shards/#-/d}-u$slots-r$round"
            run_index=$((run_index + 1))
            log "$tag: starting $kind ($t torrent(s), $k peers$([[ $shards != - ]] && echo ", $shards shards" || true))"
            if ! start_seeder "$kind" "$port" "$t" "$k" "$shards" "$WORK/$tag.seeder.log" "$WORK/$tag.seeder.out" "$slots"; then
                log "$tag: $SEEDER_ERR"
                stop_seeder
                record "$kind" "$t" "$k" "$([[ $shards != - ]] && echo "$shards" || echo null)" "$round" "$SEEDER_ERR"
                failed=$((failed + 1))
                continue
            fi
            log "$tag: $kind ready on $SEEDER_ADDR (pid $CPU_PID); $k peers for $DURATION_S s"
            timeout --signal=TERM --kill-after="$KILL_AFTER_S" $((DURATION_S + WARMUP_MAX_S + LEECH_SLACK_S)) \
                "${LEECH_PREFIX[@]}" "$BENCH" leech --torrent-dir "$WORK/torrents" --payload-seed "$PAYLOAD_SEED" \
                --target "$SEEDER_ADDR" --peers "$k" --duration "$DURATION_S" \
                --seeder-pid "$CPU_PID" --json "${gen_extra[@]}" \
                >"$WORK/$tag.json" 2>"$WORK/$tag.leech.err" &
            leech_pid=$!
            PIDS+=("$leech_pid")
            rc=0
            wait "$leech_pid" || rc=$?
            shards_json=$SEEDER_SHARDS
            stop_seeder      # also forgets the leech pid: it is reaped
            if ((rc == 0)) && [[ -s "$WORK/$tag.json" ]]; then
                record "$kind" "$t" "$k" "$shards_json" "$round" "" "$WORK/$tag.json"
                log "$tag: $("$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.2f GB/s, %s peers connected, %s bad blocks" % (r["goodput_mb_per_s"] / 1000, r["peers_connected"], r["blocks_bad"]))' "$WORK/$tag.json" 2>/dev/null || echo done)"
            else
                err="leech exit $rc: $(tail -c 300 "$WORK/$tag.leech.err" | tr '\n"' ' _')"
                log "$tag: $err"
                record "$kind" "$t" "$k" "$shards_json" "$round" "$err"
                failed=$((failed + 1))
            fi
        done
    done
done
log "all $run_index runs of mode $MODE done in $((SECONDS - start_s)) s; $failed failed"

echo "## Swarm bench, mode $MODE, $(date -u +%F\ %H:%M) UTC: $TORRENTS torrent(s) of $SIZE, pieces $PIECE_LENGTH, ${DURATION_S} s per run, check every $CHECK_EVERY blocks, $(nproc) CPUs"
echo
"$PY" "$HERE/report.py" --mode "$MODE" "$RESULTS"
((failed == 0)) || die "$failed of $run_index runs failed (see the table and $RESULTS)"
