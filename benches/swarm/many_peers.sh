#!/usr/bin/env bash
# Many peers (issue 15): ringseed's memory with thousands of connected
# peers, its memory under connection churn, and the rate at which one shard
# takes new connections while it serves.
#
#   MODE=memory  for each N in POINTS: a fresh seeder; N - ACTIVE idle peers
#                (connected, interested, never asking) and ACTIVE peers
#                downloading, for DURATION_S; the seeder's RSS once every
#                peer is connected (VmRSS, sampled every second, the median
#                of the last half) and its peak (VmHWM). Point 0: the seeder
#                alone. Per-peer memory = (RSS(N) - RSS(0)) / N.
#   MODE=churn   one seeder for DURATION_S (e.g. 1800): ACTIVE peers
#                downloading, IDLE peers connected, and CHURN_PER_S of the
#                idle ones closed and dialled again every second; RSS sampled
#                every SAMPLE_S; prints the samples and first/last/max.
#   MODE=accept  `--shards 1`, ACTIVE peers downloading, and IDLE peers
#                churned as fast as CHURN_PER_S asks: the handshakes the
#                seeder answered per second while it served.
#   MODE=torrents  TORRENTS (e.g. 10000) small torrents seeded, peers on
#                BUSY_TORRENTS of them (PEERS_PER_TORRENT each) for
#                DURATION_S: the generator's report (goodput, Jain over the
#                peers, seeder CPU) and the seeder's time to get ready.
#
# Payload: TORRENTS torrents of SIZE (made once under WORK). Loopback only:
# the seeder on 127.0.12.2, idle peers from 127.1.0.1 on, active ones from
# 127.3.0.1 on. Every process started is stopped by pid; every wait bounded.
#
# Environment (defaults in brackets):
#   MODE [memory]
#   POINTS ["0 1000 10000"]  memory: connected peers per point
#   ACTIVE [100]             peers downloading (unchoke-all; the rest idle)
#   IDLE [1000]              churn, accept: idle peers
#   CHURN_PER_S [churn: 50, accept: 20000]
#   TORRENTS [10; torrents: 10000]  SIZE [64M; torrents: 256K]
#   PIECE_LENGTH [1M; torrents: 64K]
#   BUSY_TORRENTS [300]  PEERS_PER_TORRENT [10]   torrents mode
#   DURATION_S [memory: 30, churn: 1800, accept: 20]
#   SAMPLE_S [churn: 30]     RSS sampling interval
#   SHARDS [memory, churn: the CPUs; accept: 1]
#   SEEDER_ARGS []           more `ringseed seed` flags (e.g. "--upload-limit
#                            50000000" so a 30-minute churn run leaves CPU free)
#   RESULTS [./many-peers-<MODE>-<UTC>.jsonl]
#   PORT [17281]  the seeder's port on 127.0.12.2
#   WORK [a temp dir, removed]  RINGSEED, BENCH [target/release/...]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MODE="${MODE:-memory}"
case "$MODE" in
memory) def_duration=30 def_churn=0 def_shards="" ;;
churn) def_duration=1800 def_churn=50 def_shards="" ;;
accept) def_duration=20 def_churn=20000 def_shards=1 ;;
torrents) def_duration=20 def_churn=0 def_shards="" ;;
*) echo "many_peers.sh: MODE must be memory, churn, accept or torrents, got '$MODE'" >&2; exit 1 ;;
esac
POINTS="${POINTS:-0 1000 10000}"
ACTIVE="${ACTIVE:-100}"
IDLE="${IDLE:-1000}"
CHURN_PER_S="${CHURN_PER_S:-$def_churn}"
if [[ "$MODE" == torrents ]]; then
    TORRENTS="${TORRENTS:-10000}" SIZE="${SIZE:-256K}" PIECE_LENGTH="${PIECE_LENGTH:-64K}"
fi
TORRENTS="${TORRENTS:-10}"
SIZE="${SIZE:-64M}"
PIECE_LENGTH="${PIECE_LENGTH:-1M}"
BUSY_TORRENTS="${BUSY_TORRENTS:-300}"
PEERS_PER_TORRENT="${PEERS_PER_TORRENT:-10}"
DURATION_S="${DURATION_S:-$def_duration}"
SAMPLE_S="${SAMPLE_S:-30}"
SHARDS="${SHARDS:-$def_shards}"
read -r -a SEEDER_ARGS <<<"${SEEDER_ARGS:-}"
RESULTS="${RESULTS:-$PWD/many-peers-$MODE-$(date -u +%Y%m%dT%H%M%SZ).jsonl}"
RINGSEED="${RINGSEED:-$ROOT/target/release/ringseed}"
BENCH="${BENCH:-$ROOT/target/release/ringseed-bench}"
SEEDER_IP=127.0.12.2
PORT="${PORT:-17281}"
READY_TIMEOUT_S=120
STOP_WAIT_S=10

die() { echo "many_peers.sh: $*" >&2; exit 1; }
log() { echo "many_peers.sh: $(date -u +%H:%M:%S) $*" >&2; }
for v in ACTIVE IDLE CHURN_PER_S TORRENTS DURATION_S SAMPLE_S BUSY_TORRENTS PEERS_PER_TORRENT; do
    [[ "${!v}" =~ ^[0-9]{1,6}$ ]] || die "$v must be a number, got '${!v}'"
done
for p in $POINTS; do [[ "$p" =~ ^[0-9]{1,5}$ && "$p" -le 20000 ]] || die "POINTS: 0..20000 each, got '$p'"; done
[[ -x "$RINGSEED" && -x "$BENCH" ]] || die "build first: cargo build --release --workspace --bins"
ulimit -n "$(ulimit -Hn)"

OWN_WORK=0
if [[ -z "${WORK:-}" ]]; then WORK="$(mktemp -d -t ringseed-many-peers.XXXXXX)"; OWN_WORK=1; fi
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    ((OWN_WORK)) && rm -rf "$WORK"
    return 0
}
trap cleanup EXIT

if [[ -d "$WORK/torrents" && "$(ls "$WORK"/torrents | wc -l)" != "$TORRENTS" ]]; then
    rm -rf "$WORK/torrents" "$WORK/data"
fi
if [[ ! -d "$WORK/torrents" ]]; then
    log "making $TORRENTS torrents of $SIZE in $WORK"
    "$BENCH" make-torrent --count "$TORRENTS" --size "$SIZE" --piece-length "$PIECE_LENGTH" \
        --payload-seed 7 -o "$WORK/torrents" --data-dir "$WORK/data" >/dev/null
    cat "$WORK"/data/*/* "$WORK"/data/* >/dev/null 2>&1 || true
fi
mapfile -t TORRENT_FILES < <(ls "$WORK"/torrents/*.torrent)

rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kib() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2>/dev/null || echo 0; }

# Starts the seeder for $1 peers in all (per torrent: $2, default an even
# share); sets SEEDER_PID and READY_S (seconds until it listened).
start_seeder() {
    local peers=$1 per_torrent=${2:-} extra=() t0
    [[ -n "$per_torrent" ]] || per_torrent=$((peers / TORRENTS + 64))
    ((per_torrent > 10000)) && per_torrent=10000
    [[ -n "$SHARDS" ]] && extra+=(--shards "$SHARDS")
    "$RINGSEED" seed "${TORRENT_FILES[@]}" --data "$WORK/data" --listen "$SEEDER_IP:$PORT" \
        --bind-address "$SEEDER_IP" --no-dht --peers-per-torrent "$per_torrent" \
        --upload-slots unlimited "${extra[@]}" "${SEEDER_ARGS[@]}" >"$WORK/seeder.out" 2>"$WORK/seeder.log" &
    SEEDER_PID=$!
    PIDS+=("$SEEDER_PID")
    t0=$(date +%s%N)
    local i
    for ((i = 0; i < READY_TIMEOUT_S * 10; i++)); do
        if grep -q " INFO listening on " "$WORK/seeder.log" 2>/dev/null; then
            READY_S=$(python3 -c "print(round(($(date +%s%N) - $t0) / 1e9, 2))")
            return 0
        fi
        kill -0 "$SEEDER_PID" 2>/dev/null || die "seeder exited: $(tail -c 400 "$WORK/seeder.log")"
        sleep 0.1
    done
    die "seeder not ready in ${READY_TIMEOUT_S}s"
}

stop_pid() {
    local p=$1 i
    kill "$p" 2>/dev/null || return 0
    for ((i = 0; i < STOP_WAIT_S * 10; i++)); do
        kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

# A generator in the background: $1 peers, $2 extra flags...; sets GEN_PID.
start_gen() {
    local n=$1 out=$2
    shift 2
    "$BENCH" leech --torrent-dir "$WORK/torrents" --payload-seed 7 --target "$SEEDER_IP:$PORT" \
        --peers "$n" --duration "$DURATION_S" --check-every 16 --warmup-max 60 --json "$@" \
        >"$out" 2>"$out.log" &
    GEN_PID=$!
    PIDS+=("$GEN_PID")
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print 0}'; }

case "$MODE" in
torrents)
    mkdir -p "$WORK/busy"
    rm -f "$WORK"/busy/*.torrent
    # Every (TORRENTS / BUSY_TORRENTS)-th torrent gets peers.
    step=$((TORRENTS / BUSY_TORRENTS))
    ((step >= 1)) || step=1
    for ((i = 0; i < BUSY_TORRENTS && i * step < ${#TORRENT_FILES[@]}; i++)); do
        ln -s "${TORRENT_FILES[$((i * step))]}" "$WORK/busy/"
    done
    start_seeder $((BUSY_TORRENTS * PEERS_PER_TORRENT)) $((PEERS_PER_TORRENT + 16))
    log "seeder ready in ${READY_S}s with $TORRENTS torrents; peers on $BUSY_TORRENTS"
    "$BENCH" leech --torrent-dir "$WORK/busy" --payload-seed 7 --target "$SEEDER_IP:$PORT" \
        --peers-per-torrent "$PEERS_PER_TORRENT" --duration "$DURATION_S" --check-every 16 \
        --warmup-max 60 --warmup-until unchoke --seeder-pid "$SEEDER_PID" --json >"$WORK/busy.json" 2>"$WORK/busy.log" || true
    rss=$(rss_kib "$SEEDER_PID")
    stop_pid "$SEEDER_PID"
    echo "{\"mode\":\"torrents\",\"torrents\":$TORRENTS,\"busy_torrents\":$BUSY_TORRENTS,\"peers_per_torrent\":$PEERS_PER_TORRENT,\"ready_s\":$READY_S,\"rss_kib_end\":$rss,\"report\":$(cat "$WORK/busy.json" 2>/dev/null || echo null)}" >>"$RESULTS"
    python3 - "$RESULTS" <<'EOF'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])][-1]
rep = r["report"] or {}
p, s = rep.get("peers", {}), rep.get("seeder") or {}
print(f"{r['torrents']} torrents seeded, ready in {r['ready_s']:.1f} s; peers on {r['busy_torrents']} x {r['peers_per_torrent']}:"
      f" {rep.get('peers_connected')} connected, goodput {rep.get('goodput_mb_per_s', 0):.0f} MB/s,"
      f" Jain {p.get('jain_index', 0):.3f}, per-peer MB/s min/median/max {p.get('rate_min_mb_per_s', 0):.2f}/"
      f"{p.get('rate_median_mb_per_s', 0):.2f}/{p.get('rate_max_mb_per_s', 0):.2f},"
      f" seeder CPU {(s.get('cpu_user_s_per_gib') or 0) + (s.get('cpu_system_s_per_gib') or 0):.3f} s/GiB,"
      f" RSS {r['rss_kib_end'] / 1024:.0f} MiB, errors {len(rep.get('errors', []))}")
EOF
    ;;
memory)
    base=0
    for n in $POINTS; do
        start_seeder "$n"
        sleep 2
        idle=$((n > ACTIVE ? n - ACTIVE : 0))
        active=$((n < ACTIVE ? n : ACTIVE))
        gens=()
        if ((idle > 0)); then start_gen "$idle" "$WORK/idle.json" --idle --threads 1; gens+=("$GEN_PID"); fi
        if ((active > 0)); then
            start_gen "$active" "$WORK/active.json" --source-base 127.3.0.1 --threads 1
            gens+=("$GEN_PID")
        fi
        samples=()
        # Peers connect (warm-up up to 60 s), then DURATION_S: sample the
        # second half of the whole wait.
        total=$((DURATION_S + 10))
        ((n == 0)) && total=$DURATION_S
        for ((s = 0; s < total; s++)); do
            sleep 1
            ((s * 2 >= total)) && samples+=("$(rss_kib "$SEEDER_PID")")
        done
        for g in "${gens[@]}"; do
            for ((s = 0; s < 120 && $(kill -0 "$g" 2>/dev/null && echo 1 || echo 0); s++)); do sleep 1; done
            stop_pid "$g"
        done
        rss=$(printf '%s\n' "${samples[@]}" | median)
        hwm=$(hwm_kib "$SEEDER_PID")
        connected=0
        for f in idle active; do
            [[ -s "$WORK/$f.json" ]] && connected=$((connected + $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("peers_connected",0))' "$WORK/$f.json")))
        done
        rm -f "$WORK/idle.json" "$WORK/active.json"
        stop_pid "$SEEDER_PID"
        ((n == 0)) && base=$rss
        per_peer="null"
        ((n > 0)) && per_peer=$(((rss - base) * 1024 / n))
        echo "{\"mode\":\"memory\",\"peers\":$n,\"active\":$active,\"connected\":$connected,\"rss_kib\":$rss,\"hwm_kib\":$hwm,\"per_peer_bytes\":$per_peer,\"torrents\":$TORRENTS,\"utc\":\"$(date -u +%FT%TZ)\"}" | tee -a "$RESULTS"
    done
    ;;
churn | accept)
    start_seeder $((IDLE + ACTIVE))
    sleep 2
    rss0=$(rss_kib "$SEEDER_PID")
    start_gen "$ACTIVE" "$WORK/active.json" --source-base 127.3.0.1 --threads 1
    start_gen "$IDLE" "$WORK/idle.json" --idle --churn-per-s "$CHURN_PER_S" --threads 1
    idle_pid=$GEN_PID
    step=$SAMPLE_S
    [[ "$MODE" == accept ]] && step=1
    t=0
    while kill -0 "$idle_pid" 2>/dev/null && ((t < DURATION_S + 120)); do
        sleep "$step"
        t=$((t + step))
        r=$(rss_kib "$SEEDER_PID")
        echo "{\"mode\":\"$MODE\",\"t_s\":$t,\"rss_kib\":$r}" >>"$RESULTS"
        [[ "$MODE" == churn ]] && log "t=${t}s rss ${r} KiB"
    done
    for p in "${PIDS[@]:1}"; do stop_pid "$p"; done
    hwm=$(hwm_kib "$SEEDER_PID")
    stop_pid "$SEEDER_PID"
    idle_report=$(cat "$WORK/idle.json" 2>/dev/null || echo null)
    active_report=$(cat "$WORK/active.json" 2>/dev/null || echo null)
    echo "{\"mode\":\"$MODE\",\"summary\":true,\"idle\":$IDLE,\"active\":$ACTIVE,\"churn_per_s\":$CHURN_PER_S,\"rss0_kib\":$rss0,\"hwm_kib\":$hwm,\"idle_report\":$idle_report,\"active_report\":$active_report}" >>"$RESULTS"
    python3 - "$RESULTS" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
samples = [r["rss_kib"] for r in rows if "t_s" in r]
s = [r for r in rows if r.get("summary")][-1]
idle, active = s["idle_report"] or {}, s["active_report"] or {}
wall = idle.get("wall_s") or 0
print(f"mode {s['mode']}: {s['idle']} idle peers churned at {s['churn_per_s']}/s asked, {s['active']} active")
print(f"  redials {idle.get('redials')} ({idle.get('redials_per_s', 0):.0f}/s), handshakes answered {idle.get('handshakes')}"
      f" ({(idle.get('handshakes') or 0) / wall if wall else 0:.0f}/s over {wall:.0f} s)")
print(f"  active goodput {active.get('goodput_mb_per_s', 0):.0f} MB/s, errors {len(idle.get('errors', []))} idle / {len(active.get('errors', []))} active")
if samples:
    print(f"  seeder RSS KiB: before peers {s['rss0_kib']}, first sample {samples[0]}, last {samples[-1]}, max {max(samples)}, peak {s['hwm_kib']}")
EOF
    ;;
esac
