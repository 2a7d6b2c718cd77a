#!/usr/bin/env bash
# Seeding bench (issue 3): seeder CPU-seconds per GiB uploaded, aggregate
# rate and peak RSS while 4 leechers (aria2c, then libtorrent) each take one
# torrent from a ringseed seed, a python3-libtorrent seed and (when asked)
# the trivial seeder `ringseed-bench serve` (no disk, no choker: the floor),
# in the same run; then the time for `ringseed download` to fetch the
# torrent from a libtorrent seed alone. Prints a markdown table of every
# case and one of medians (min-max) per seeder and leechers on stdout,
# progress on stderr. See docs/seeding_bench.md.
#
# The data is the bench's deterministic payload (`ringseed-bench
# make-torrent --data-dir`), so the trivial seeder serves the same bytes
# from memory that the others read from the file.
#
# Everything runs on loopback: tracker 127.0.6.1, seeder 127.0.6.2, leechers
# 127.0.6.10-13, downloader 127.0.6.20. Every process is stopped by pid and
# every wait is bounded.
#
# Environment (defaults in brackets):
#   SIZE_MIB [1024]           size of the file seeded
#   PIECE_LENGTH [1M]         its piece length (K and M suffixes)
#   ROUNDS [1]                rounds; seeder kinds alternate A B A B
#   SEEDERS ["ringseed libtorrent"]   seeder kinds, in order: ringseed,
#                             ringseed-unlimited (`--upload-slots unlimited`),
#                             ringseed-copy (`--send-path copy`: every block
#                             read into a buffer and sent from it),
#                             ringseed-splice (`--send-path splice`),
#                             ringseed-splice-nopin (the same with
#                             `--no-pin`: shards not pinned to CPUs),
#                             ringseed-auto (`--send-path auto`; plain
#                             ringseed runs the default),
#                             libtorrent, rqbit (`rqbit download`, stateless,
#                             DHT, LSD and UPnP off), trivial (`ringseed-bench
#                             serve`, 2 threads, announced to the tracker by
#                             the script)
#   LEECHERS ["aria2c libtorrent"]    leecher kinds, in order
#   LEECHERS_N [4]            leechers per case (1..=4)
#   ENCRYPTIONS ["default"]   libtorrent leechers' (and the libtorrent seed's)
#                             protocol encryption, one case each: default
#                             (libtorrent's: an obfuscated header then
#                             plaintext with a peer that speaks MSE),
#                             plaintext (MSE off), rc4 (forced, RC4 only),
#                             header (forced, plaintext level only); the
#                             ringseed seed runs its default (`enabled`,
#                             both levels). aria2c leechers keep their own
#                             default whatever this says.
#   DOWNLOAD_TEST [1]         1: also time downloads from a libtorrent seed alone
#   DOWNLOADERS ["ringseed libtorrent"]  who downloads then (libtorrent: one
#                             lt_peer.py leecher, for reference)
#   TIMEOUT_S [900]           limit on one case's leeching, in seconds
#   READY_TIMEOUT_S [120]     limit on a seeder getting ready, in seconds
#   VERIFY [1]                1: cmp every downloaded file with the original
#   RINGSEED [target/release/ringseed]  the binary
#   BENCH [target/release/ringseed-bench]  makes the torrent and its data,
#                             and is the trivial seeder
#   RQBIT [rqbit on PATH]     the rqbit binary, for SEEDERS=rqbit (e.g.
#                             `cargo install rqbit --version 9.1.0 --root DIR`)
#   PORT_BASE [17000]         first TCP port used on the 127.0.6.x addresses
#   TMP_PARENT [${TMPDIR:-/tmp}]  where the work dir is made (needs
#                             (2 + LEECHERS_N) x SIZE_MIB of disk)
#   KEEP [0]                  1: keep the work dir
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY=/usr/bin/python3

SIZE_MIB="${SIZE_MIB:-1024}"
ROUNDS="${ROUNDS:-1}"
SEEDERS="${SEEDERS:-ringseed libtorrent}"
LEECHERS="${LEECHERS:-aria2c libtorrent}"
LEECHERS_N="${LEECHERS_N:-4}"
ENCRYPTIONS="${ENCRYPTIONS:-default}"
DOWNLOAD_TEST="${DOWNLOAD_TEST:-1}"
DOWNLOADERS="${DOWNLOADERS:-ringseed libtorrent}"
TIMEOUT_S="${TIMEOUT_S:-900}"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-120}"
VERIFY="${VERIFY:-1}"
RINGSEED="${RINGSEED:-$ROOT/target/release/ringseed}"
BENCH="${BENCH:-$ROOT/target/release/ringseed-bench}"
RQBIT="${RQBIT:-$(command -v rqbit || echo rqbit)}"
PIECE_LENGTH="${PIECE_LENGTH:-1M}"
PORT_BASE="${PORT_BASE:-17000}"
TMP_PARENT="${TMP_PARENT:-${TMPDIR:-/tmp}}"
KEEP="${KEEP:-0}"

TRACKER_IP=127.0.6.1
TRACKER_PORT=$PORT_BASE
SEEDER_IP=127.0.6.2
DOWNLOADER_IP=127.0.6.20
STOP_WAIT_S=10           # SIGTERM grace before SIGKILL, in seconds
POLL_S=0.1               # wait-loop period, in seconds (the wall-time resolution)

die() { echo "seeding bench: $*" >&2; exit 1; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

[[ "$SIZE_MIB" =~ ^[1-9][0-9]{0,5}$ ]] || die "SIZE_MIB must be 1..999999, got '$SIZE_MIB'"
[[ "$ROUNDS" =~ ^[1-9][0-9]?$ ]] || die "ROUNDS must be 1..99, got '$ROUNDS'"
[[ "$LEECHERS_N" =~ ^[1-4]$ ]] || die "LEECHERS_N must be 1..4, got '$LEECHERS_N'"
for k in $SEEDERS; do [[ $k =~ ^(ringseed|ringseed-unlimited|ringseed-copy|ringseed-splice|ringseed-splice-nopin|ringseed-auto|libtorrent|rqbit|trivial)$ ]] || die "unknown seeder kind $k"; done
[[ " $SEEDERS " != *" rqbit "* ]] || [[ -x "$RQBIT" ]] \
    || die "rqbit not found: cargo install rqbit --version 9.1.0 --root DIR, then RQBIT=DIR/bin/rqbit"
[[ "$PIECE_LENGTH" =~ ^[1-9][0-9]*[KM]?$ ]] || die "PIECE_LENGTH must be like 1M or 256K, got '$PIECE_LENGTH'"
for k in $LEECHERS; do [[ $k == aria2c || $k == libtorrent ]] || die "unknown leecher kind $k"; done
for e in $ENCRYPTIONS; do [[ $e =~ ^(default|plaintext|rc4|header)$ ]] || die "unknown encryption $e"; done
for k in $DOWNLOADERS; do [[ $k == ringseed || $k == libtorrent ]] || die "unknown downloader kind $k"; done
[[ -x "$RINGSEED" ]] || die "$RINGSEED not found: cargo build --release (or set RINGSEED)"
[[ -x "$BENCH" ]] || die "$BENCH not found: cargo build --release -p ringseed-bench (or set BENCH)"
command -v opentracker >/dev/null || die "opentracker not installed"
[[ " $LEECHERS " != *" aria2c "* ]] || command -v aria2c >/dev/null || die "aria2c not installed"
"$PY" -c 'import libtorrent' || die "$PY cannot import libtorrent (python3-libtorrent)"
CLK_TCK="$(getconf CLK_TCK)"
SIZE_BYTES=$((SIZE_MIB * 1024 * 1024))

WORK="$(mktemp -d "$TMP_PARENT/ringseed-seeding.XXXXXX")"
PIDS=()          # every process started, for the exit trap

# Stops one pid: SIGTERM, up to STOP_WAIT_S, then SIGKILL. Reaps it.
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_WAIT_S * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ignored SIGTERM for ${STOP_WAIT_S} s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
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

# utime + stime of a live process, in clock ticks (fields 14 and 15 of
# /proc/PID/stat, counted after the parenthesised command name).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# Peak resident set of a live process, in KiB.
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
# Anonymous (private, not file-backed) resident memory of a live process, in KiB.
anon_kib() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }
now_s() { date +%s.%N; }

# Waits up to $1 seconds for file $2 to contain $3 while pid $4 lives.
wait_line() {
    local limit=$1 file=$2 pattern=$3 pid=$4 i
    for ((i = 0; i < limit * 10; i++)); do
        grep -q -- "$pattern" "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# Waits until every pid in the named array has exited, at most $2 seconds.
# Sets WAIT_FAILED to the number that failed or were still running (those are
# killed). With SAMPLE_PID set, keeps its last CPU ticks and peak RSS seen in
# SAMPLE_TICKS and SAMPLE_HWM (read every POLL_S while it lives).
wait_all() {
    local -n pids=$1
    local limit=$2 deadline pid live rc ticks hwm
    deadline=$(( $(date +%s) + limit ))
    WAIT_FAILED=0
    while :; do
        if [[ -n "${SAMPLE_PID:-}" ]]; then
            ticks=$(cpu_ticks "$SAMPLE_PID" 2>/dev/null) && [[ -n "$ticks" ]] && SAMPLE_TICKS=$ticks
            hwm=$(hwm_kib "$SAMPLE_PID" 2>/dev/null) && [[ -n "$hwm" ]] && SAMPLE_HWM=$hwm
        fi
        live=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && live=$((live + 1)); done
        ((live == 0)) && break
        if (( $(date +%s) >= deadline )); then
            log "time limit of $limit s reached with $live still running"
            break
        fi
        sleep "$POLL_S"
    done
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            WAIT_FAILED=$((WAIT_FAILED + 1)); stop_pid "$pid"
        else
            rc=0; wait "$pid" || rc=$?
            ((rc == 0)) || { WAIT_FAILED=$((WAIT_FAILED + 1)); log "pid $pid exited $rc"; }
        fi
    done
}

TRACKER_PID=""
start_tracker() {
    local dir="$WORK/tracker"
    # opentracker chroots to -d and drops to user nobody: the whitelist path
    # is inside the chroot, and must be readable by nobody.
    chmod 755 "$WORK" "$dir"
    chmod 644 "$dir/whitelist"
    opentracker -i "$TRACKER_IP" -p "$TRACKER_PORT" -P "$TRACKER_PORT" -d "$dir" -w /whitelist \
        >"$dir/log" 2>&1 &
    TRACKER_PID=$!
    PIDS+=("$TRACKER_PID")
}
stop_tracker() { [[ -n "$TRACKER_PID" ]] && stop_pid "$TRACKER_PID"; TRACKER_PID=""; }

SEEDER_PID=""
# start_seeder KIND PORT LOG: starts it on SEEDER_IP:PORT, waits until it is
# ready and the tracker lists it as a seeder.
start_seeder() {
    local kind=$1 port=$2 out=$3
    case "$kind" in
    ringseed | ringseed-unlimited | ringseed-copy | ringseed-splice | ringseed-splice-nopin | ringseed-auto)
        local slots=()
        [[ $kind == ringseed-unlimited ]] && slots=(--upload-slots unlimited)
        [[ $kind == ringseed-copy ]] && slots=(--send-path copy)
        [[ $kind == ringseed-splice ]] && slots=(--send-path splice)
        [[ $kind == ringseed-splice-nopin ]] && slots=(--send-path splice --no-pin)
        [[ $kind == ringseed-auto ]] && slots=(--send-path auto)
        # The debug level of the stop report gives the exact bytes uploaded.
        RINGSEED_LOG=info,ringseed::cli::session_run=debug \
            "$RINGSEED" seed "$TORRENT" --data "$WORK/seed" --listen "$SEEDER_IP:$port" \
            --bind-address "$SEEDER_IP" --no-dht "${slots[@]}" >"$out" 2>&1 &
        SEEDER_PID=$!; PIDS+=("$SEEDER_PID")
        wait_line "$READY_TIMEOUT_S" "$out" "INFO listening on" "$SEEDER_PID" \
            || { cat "$out" >&2; die "ringseed seed did not get ready"; }
        ;;
    rqbit)
        # Listens on every address: it announces from 127.0.0.1 (it binds no
        # source address), which is what the tracker hands aria2c.
        "$RQBIT" --disable-dht --disable-dht-persistence --disable-upnp-port-forward \
            --disable-lsd --ipv4-only --listen-ip 0.0.0.0 --listen-port "$port" \
            download -o "$WORK/seed" --overwrite --disable-http-api "$TORRENT" >"$out" 2>&1 &
        SEEDER_PID=$!; PIDS+=("$SEEDER_PID")
        ;;
    trivial)
        # The whole payload is generated before it listens (a cache as big
        # as the payload), so its CPU per GiB is sending alone.
        "$BENCH" serve --listen "$SEEDER_IP:$port" --size "$SIZE_BYTES" \
            --piece-length "$PIECE_LENGTH" --name "$NAME" --threads 2 \
            --cache-bytes-max "$SIZE_BYTES" >"$out" 2>&1 &
        SEEDER_PID=$!; PIDS+=("$SEEDER_PID")
        wait_line "$READY_TIMEOUT_S" "$out" "ringseed-bench: listening on" "$SEEDER_PID" \
            || { cat "$out" >&2; die "ringseed-bench serve did not get ready"; }
        "$PY" "$HERE/tracker_util.py" announce "$TORRENT" "http://$TRACKER_IP:$TRACKER_PORT" \
            "$SEEDER_IP" "$port" || die "announcing the trivial seeder failed"
        ;;
    libtorrent)
        "$PY" "$HERE/lt_peer.py" seed "$TORRENT" "$WORK/seed" "$SEEDER_IP" "$port" \
            --ready-timeout "$READY_TIMEOUT_S" --enc "$ENC" >"$out" 2>&1 &
        SEEDER_PID=$!; PIDS+=("$SEEDER_PID")
        wait_line "$READY_TIMEOUT_S" "$out" "lt_peer: ready" "$SEEDER_PID" \
            || { cat "$out" >&2; die "libtorrent seed did not get ready"; }
        ;;
    esac
    "$PY" "$HERE/tracker_util.py" wait-seeders "$TORRENT" "http://$TRACKER_IP:$TRACKER_PORT" \
        1 "$READY_TIMEOUT_S" || die "$kind seed never showed up on the tracker"
}

# start_leecher KIND INDEX PORT: on 127.0.6.(10+INDEX), saving into leechINDEX.
# Leechers upload nothing (aria2c: 1 B/s; libtorrent: no unchoke slots), so
# the seeder sends every byte.
start_leecher() {
    local kind=$1 i=$2 port=$3 ip="127.0.6.$((10 + $2))" dir="$WORK/leech$2"
    mkdir -p "$dir"
    case "$kind" in
    aria2c)
        aria2c --seed-time=0 --enable-dht=false --enable-dht6=false --bt-enable-lpd=false \
            --enable-peer-exchange=false --interface="$ip" --listen-port="$port" \
            --file-allocation=none --check-integrity=false --allow-overwrite=true \
            --max-upload-limit=1 --summary-interval=0 --console-log-level=warn \
            --disable-ipv6=true -d "$dir" "$TORRENT" >"$dir.log" 2>&1 &
        ;;
    libtorrent)
        "$PY" "$HERE/lt_peer.py" leech "$TORRENT" "$dir" "$ip" "$port" \
            --peer "$SEEDER_IP:$SEEDER_PORT" --timeout "$TIMEOUT_S" --enc "$ENC" >"$dir.log" 2>&1 &
        ;;
    esac
    LEECHER_PIDS+=($!); PIDS+=($!)
}

verify_copy() {
    [[ "$VERIFY" == 1 ]] || return 0
    cmp -s "$WORK/seed/$NAME" "$1/$NAME" || {
        log "$1/$NAME differs from the original: $(cmp "$WORK/seed/$NAME" "$1/$NAME" 2>&1 | head -1);" \
            "$(cmp -l "$WORK/seed/$NAME" "$1/$NAME" 2>/dev/null | wc -l) bytes differ"
        return 1
    }
}

ROWS=()
# run_case ROUND SEEDER LEECHER CASE_INDEX
run_case() {
    local round=$1 seeder=$2 leecher=$3 case_index=$4
    local port_base=$((PORT_BASE + 10 + case_index * 10)) i t0 t1 c0 c1 wall
    SEEDER_PORT=$port_base
    log "round $round: $seeder seed -> $LEECHERS_N x $leecher (encryption $ENC)"
    start_tracker
    start_seeder "$seeder" "$SEEDER_PORT" "$WORK/seeder.log"
    LEECHER_PIDS=()
    c0=$(cpu_ticks "$SEEDER_PID"); t0=$(now_s)
    for ((i = 0; i < LEECHERS_N; i++)); do start_leecher "$leecher" "$i" $((port_base + 1 + i)); done
    wait_all LEECHER_PIDS "$TIMEOUT_S"
    t1=$(now_s)
    c1=$(cpu_ticks "$SEEDER_PID")
    local hwm anon; hwm=$(hwm_kib "$SEEDER_PID"); anon=$(anon_kib "$SEEDER_PID")
    stop_pid "$SEEDER_PID"
    stop_tracker
    local failed=$WAIT_FAILED
    for ((i = 0; i < LEECHERS_N; i++)); do
        if ((failed > 0)); then log "leech$i log:"; tail -5 "$WORK/leech$i.log" >&2 || true; fi
        verify_copy "$WORK/leech$i" || failed=$((failed + 1))
        rm -rf "$WORK/leech$i" "$WORK/leech$i.log"
    done
    local uploaded
    # lt_peer.py prints `lt_peer: uploaded N`; ringseed logs `... DEBUG
    # connections handed between shards: H (uploaded N bytes, downloaded M
    # bytes)` when it stops; serve prints `ringseed-bench: served N bytes`.
    uploaded=$(awk '/^lt_peer: uploaded/ {print $3}
        /^ringseed-bench: served / {print $3}
        / connections handed between shards: / {
            for (i = 1; i < NF; i++) if ($i == "(uploaded") print $(i + 1) }' "$WORK/seeder.log")
    local label=$leecher
    [[ $leecher == libtorrent ]] && label="$leecher ($ENC)"
    ROWS+=("$(awk -v r="$round" -v s="$seeder" -v l="$label" -v n="$LEECHERS_N" \
        -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v hz="$CLK_TCK" -v hwm="$hwm" -v anon="$anon" \
        -v size="$SIZE_BYTES" -v up="$uploaded" -v failed="$failed" 'BEGIN {
            wall = t1 - t0; cpu = (c1 - c0) / hz; gib = n * size / 2^30
            upl = (up == "") ? "n/a" : sprintf("%.3f", up / 2^30)
            ok = (failed == 0) ? "ok" : failed " failed"
            printf "| %d | %s | %d x %s | %.2f | %.1f | %.2f | %.3f | %.0f | %.0f | %s | %s |",
                r, s, n, l, wall, n * size / 2^20 / wall, cpu, cpu / gib, hwm / 1024, anon / 1024, upl, ok
        }')")
    # KEEP=1 keeps each case's seeder log (ringseed logs its send-path choices).
    if [[ "$KEEP" == 1 ]]; then mv "$WORK/seeder.log" "$WORK/seeder-r$round-$seeder-$leecher.log"; else rm -f "$WORK/seeder.log"; fi
}

# time_download KIND CASE_INDEX: one downloader alone from a libtorrent seed.
# Its CPU time and peak RSS are the last values read from /proc while it ran
# (at most POLL_S old).
DL_ROWS=()
time_download() {
    local kind=$1 case_index=$2 port_base=$((PORT_BASE + 10 + $2 * 10)) dir="$WORK/dl" t0 t1 pid
    SEEDER_PORT=$port_base
    log "download: $kind <- libtorrent seed"
    start_tracker
    start_seeder libtorrent "$SEEDER_PORT" "$WORK/seeder.log"
    mkdir -p "$dir"
    t0=$(now_s)
    case "$kind" in
    ringseed)
        "$RINGSEED" download "$TORRENT" -o "$dir" \
            --listen "$DOWNLOADER_IP:$((port_base + 1))" --bind-address "$DOWNLOADER_IP" \
            --peer "$SEEDER_IP:$SEEDER_PORT" --no-dht >"$dir.log" 2>&1 &
        ;;
    libtorrent)
        "$PY" "$HERE/lt_peer.py" leech "$TORRENT" "$dir" "$DOWNLOADER_IP" $((port_base + 1)) \
            --peer "$SEEDER_IP:$SEEDER_PORT" --timeout "$TIMEOUT_S" >"$dir.log" 2>&1 &
        ;;
    esac
    pid=$!; PIDS+=("$pid")
    local one=("$pid")
    SAMPLE_PID=$pid SAMPLE_TICKS=0 SAMPLE_HWM=0
    wait_all one "$TIMEOUT_S"
    SAMPLE_PID=""
    t1=$(now_s)
    stop_pid "$SEEDER_PID"
    stop_tracker
    local failed=$WAIT_FAILED
    ((failed == 0)) || tail -5 "$dir.log" >&2 || true
    verify_copy "$dir" || failed=$((failed + 1))
    DL_ROWS+=("$(awk -v k="$kind" -v t0="$t0" -v t1="$t1" -v size="$SIZE_BYTES" \
        -v c="$SAMPLE_TICKS" -v hz="$CLK_TCK" -v m="$SAMPLE_HWM" -v failed="$failed" 'BEGIN {
            wall = t1 - t0; ok = (failed == 0) ? "ok" : "failed"
            printf "| %s | %.2f | %.1f | %.2f | %.0f | %s |",
                k, wall, size / 2^20 / wall, c / hz, m / 1024, ok
        }')")
    rm -rf "$dir" "$dir.log" "$WORK/seeder.log"
}

# --- setup: data, torrent, tracker whitelist ---
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
NAME=bench.bin
mkdir -p "$WORK/seed" "$WORK/tracker"
log "work dir $WORK; writing $SIZE_MIB MiB of the bench payload"
TORRENT="$WORK/bench.torrent"
"$BENCH" make-torrent --size "$SIZE_BYTES" --piece-length "$PIECE_LENGTH" --name "$NAME" \
    --tracker "http://$TRACKER_IP:$TRACKER_PORT/announce" -o "$TORRENT" \
    --data-dir "$WORK/seed" >/dev/null 2>"$WORK/create.log" \
    || { cat "$WORK/create.log" >&2; die "ringseed-bench make-torrent failed"; }
"$PY" "$HERE/tracker_util.py" infohash "$TORRENT" >"$WORK/tracker/whitelist"
log "torrent $(cat "$WORK/tracker/whitelist")"

case_index=0
for ((round = 1; round <= ROUNDS; round++)); do
    for leecher in $LEECHERS; do
        encs=$ENCRYPTIONS
        [[ $leecher == libtorrent ]] || encs=default
        for ENC in $encs; do
            for seeder in $SEEDERS; do
                run_case "$round" "$seeder" "$leecher" "$case_index"
                case_index=$((case_index + 1))
            done
        done
    done
done
ENC=default
if [[ "$DOWNLOAD_TEST" == 1 ]]; then
    for kind in $DOWNLOADERS; do
        time_download "$kind" "$case_index"
        case_index=$((case_index + 1))
    done
fi

# --- report ---
echo "Seeding bench: $SIZE_MIB MiB torrent, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)," \
    "load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo
echo "| round | seeder | leechers | wall s | aggregate MiB/s | seeder CPU s | seeder CPU s / GiB | seeder peak RSS MiB | seeder anon RSS MiB at end | seeder-reported GiB up | result |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
# Medians (min-max) over the rounds, per seeder and leechers (failed cases
# left out), with each seeder's CPU per GiB as a ratio of the first seeder's.
echo
echo "| seeder | leechers | runs | seeder CPU s / GiB, median (min-max) | / ${SEEDERS%% *} | aggregate MiB/s, median (min-max) | seeder peak RSS MiB, median |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}" | awk -F'|' -v first="${SEEDERS%% *}" '
    function med(list,   n, a, i, j, t) {
        n = split(list, a, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
        lo = a[1]; hi = a[n]
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
        for (i = 2; i <= NF; i++) gsub(/^ +| +$/, "", $i)
        if ($12 != "ok") next
        key = $3 SUBSEP $4
        if (!(key in seen)) { seen[key] = 1; order[++k] = key }
        cpu[key] = cpu[key] " " $8; rate[key] = rate[key] " " $6; rss[key] = rss[key] " " $9; runs[key]++
    }
    END {
        for (i = 1; i <= k; i++) {
            split(order[i], p, SUBSEP)
            c = med(cpu[order[i]]); clo = lo; chi = hi
            base[p[2]] = (p[1] == first) ? c : base[p[2]]
        }
        for (i = 1; i <= k; i++) {
            split(order[i], p, SUBSEP)
            c = med(cpu[order[i]]); clo = lo; chi = hi
            r = med(rate[order[i]]); rlo = lo; rhi = hi
            m = med(rss[order[i]])
            ratio = (base[p[2]] > 0) ? sprintf("%.2f", c / base[p[2]]) : "n/a"
            printf "| %s | %s | %d | %.3f (%.3f-%.3f) | %s | %.0f (%.0f-%.0f) | %.0f |\n",
                p[1], p[2], runs[order[i]], c, clo, chi, ratio, r, rlo, rhi, m
        }
    }'
if ((${#DL_ROWS[@]} > 0)); then
    echo
    echo "| downloader (alone, from a libtorrent seed) | wall s | MiB/s | downloader CPU s | downloader peak RSS MiB | result |"
    echo "|---|---|---|---|---|---|"
    printf '%s\n' "${DL_ROWS[@]}"
fi
