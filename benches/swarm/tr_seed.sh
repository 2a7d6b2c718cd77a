#!/usr/bin/env bash
# transmission-daemon (3.00) seed for the swarm bench (issue 4).
#
#   tr_seed.sh --ip IP --port PORT --connections N --ready-timeout SECONDS \
#              --data DATA_DIR TORRENT [TORRENT...]
#
# Starts transmission-daemon in a fresh private config dir (peer port IP:PORT,
# RPC on IP:PORT+1), adds every TORRENT paused with DATA_DIR as its download
# dir, removes its trackers, verifies it, starts it, and waits (at most
# SECONDS) until every torrent is complete and seeding and IP:PORT listens.
# Then prints "tr_seed: pid PID" (the daemon) and "tr_seed: ready" on stdout
# and seeds until SIGTERM/SIGINT; then stops the daemon (SIGTERM, bounded
# wait, SIGKILL), removes the temp dir and exits 0. On failure: the reason on
# stderr, the same clean-up, exit 1. Settings and their reasons:
# docs/swarm_seeders.md. Loopback addresses only.
set -euo pipefail

NAME=tr_seed
PY=/usr/bin/python3
DAEMON=transmission-daemon
CONNECTIONS_MAX=100000     # largest --connections accepted
READY_TIMEOUT_MAX_S=3600   # largest --ready-timeout accepted
STOP_WAIT_S=5              # SIGTERM grace before SIGKILL, in seconds (within run.sh's 10)
RPC_UP_S=30                # limit on the RPC port answering, in seconds
CURL_TIMEOUT_S=10          # limit on one RPC request, in seconds
POLL_S=0.2                 # wait-loop period, in seconds
CACHE_MB=64                # transmission's block cache (default 4 MiB)
FD_CAP=1024                # transmission 3.00 lowers its own soft open-file
                           # limit to FD_SETSIZE (1024) whatever ulimit says
FD_RESERVE=64              # of those, kept for files, listen/RPC sockets, epoll

die() {
    echo "$NAME: $*" >&2
    exit 1
}
usage() { die "usage: $0 --ip IP --port PORT --connections N --ready-timeout SECONDS --data DATA_DIR TORRENT [TORRENT...]"; }

IP="" PORT="" CONNS="" READY_S="" DATA=""
TORRENTS=()
while (($#)); do
    case "$1" in
    --ip | --port | --connections | --ready-timeout | --data)
        (($# >= 2)) || usage
        case "$1" in
        --ip) IP=$2 ;;
        --port) PORT=$2 ;;
        --connections) CONNS=$2 ;;
        --ready-timeout) READY_S=$2 ;;
        --data) DATA=$2 ;;
        esac
        shift 2
        ;;
    -*) usage ;;
    *)
        TORRENTS+=("$1")
        shift
        ;;
    esac
done
[[ -n "$IP" && -n "$PORT" && -n "$CONNS" && -n "$READY_S" && -n "$DATA" ]] || usage
((${#TORRENTS[@]})) || usage
[[ "$IP" =~ ^127\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || die "--ip must be a 127.x.y.z loopback address, got '$IP'"
IP_OCTETS=(127 "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}")
for o in "${IP_OCTETS[@]}"; do ((10#$o <= 255)) || die "bad address '$IP'"; done
if ! [[ "$PORT" =~ ^[1-9][0-9]{0,4}$ ]] || ((PORT > 65534)); then
    die "--port must be 1..65534 (RPC uses PORT+1), got '$PORT'"
fi
if ! [[ "$CONNS" =~ ^[1-9][0-9]{0,5}$ ]] || ((CONNS > CONNECTIONS_MAX)); then
    die "--connections must be 1..$CONNECTIONS_MAX, got '$CONNS'"
fi
if ! [[ "$READY_S" =~ ^[1-9][0-9]{0,3}$ ]] || ((READY_S > READY_TIMEOUT_MAX_S)); then
    die "--ready-timeout must be 1..$READY_TIMEOUT_MAX_S seconds, got '$READY_S'"
fi
[[ -d "$DATA" ]] || die "data dir '$DATA' not found"
DATA="$(cd "$DATA" && pwd)"
for t in "${TORRENTS[@]}"; do [[ -f "$t" && -r "$t" ]] || die "torrent '$t' not found"; done
command -v "$DAEMON" >/dev/null || die "$DAEMON not found: apt-get install transmission-daemon"
command -v setsid >/dev/null || die "setsid not found: apt-get install util-linux"
command -v curl >/dev/null || die "curl not found: apt-get install curl"
[[ -x "$PY" ]] || die "$PY not found: apt-get install python3"
RPC_PORT=$((PORT + 1))
RPC_URL="http://$IP:$RPC_PORT/transmission/rpc"

# One descriptor per peer plus the files and the RPC: take the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fds="$(ulimit -n)"
[[ "$fds" == unlimited || "$fds" -ge $((CONNS + 256)) ]] || die "open-file limit $fds is too low for $CONNS connections (raise ulimit -Hn)"

# Peers beyond FD_CAP - FD_RESERVE would starve transmission of descriptors:
# accept() and the payload's open() then fail with EMFILE, it spins and
# uploads nothing. So the limits are clamped and the clamp is reported.
PEER_LIMIT=$CONNS
if ((CONNS > FD_CAP - FD_RESERVE)); then
    PEER_LIMIT=$((FD_CAP - FD_RESERVE))
    echo "$NAME: --connections $CONNS clamped to $PEER_LIMIT: transmission-daemon 3.00 caps its open-file limit at $FD_CAP" >&2
fi

WORK=""
DPID=""
STOP=0

# shellcheck disable=SC2317  # called from the EXIT trap
stop_daemon() {
    local i
    [[ -n "$DPID" ]] || return 0
    if kill -0 "$DPID" 2>/dev/null; then
        kill -TERM "$DPID" 2>/dev/null || true
        for ((i = 0; i < STOP_WAIT_S * 5; i++)); do
            kill -0 "$DPID" 2>/dev/null || break
            sleep "$POLL_S" || true
        done
        if kill -0 "$DPID" 2>/dev/null; then
            echo "$NAME: daemon pid $DPID still running after $STOP_WAIT_S s: SIGKILL" >&2
            kill -KILL "$DPID" 2>/dev/null || true
        fi
    fi
    wait "$DPID" 2>/dev/null || true
    DPID=""
}
# shellcheck disable=SC2317  # the EXIT trap
cleanup() {
    stop_daemon
    [[ -z "$WORK" ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'STOP=1' INT TERM
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tr_seed.XXXXXX")"

# settings.json: see docs/swarm_seeders.md for each choice.
mkdir -p "$WORK/config"
cat >"$WORK/config/settings.json" <<EOF
{
    "alt-speed-enabled": false,
    "bind-address-ipv4": "$IP",
    "bind-address-ipv6": "::1",
    "blocklist-enabled": false,
    "cache-size-mb": $CACHE_MB,
    "dht-enabled": false,
    "download-dir": "$DATA",
    "download-queue-enabled": false,
    "encryption": 0,
    "idle-seeding-limit-enabled": false,
    "incomplete-dir-enabled": false,
    "lpd-enabled": false,
    "message-level": 1,
    "peer-limit-global": $PEER_LIMIT,
    "peer-limit-per-torrent": $PEER_LIMIT,
    "peer-port": $PORT,
    "peer-port-random-on-start": false,
    "pex-enabled": false,
    "port-forwarding-enabled": false,
    "queue-stalled-enabled": false,
    "ratio-limit-enabled": false,
    "rename-partial-files": false,
    "rpc-authentication-required": false,
    "rpc-bind-address": "$IP",
    "rpc-enabled": true,
    "rpc-host-whitelist-enabled": false,
    "rpc-port": $RPC_PORT,
    "rpc-whitelist-enabled": false,
    "scrape-paused-torrents-enabled": false,
    "seed-queue-enabled": false,
    "speed-limit-down-enabled": false,
    "speed-limit-up-enabled": false,
    "start-added-torrents": false,
    "trash-original-torrent-files": false,
    "umask": 18,
    "upload-slots-per-torrent": $PEER_LIMIT,
    "utp-enabled": false,
    "watch-dir-enabled": false
}
EOF

# -f: foreground, so $! is the daemon itself (the process that moves bytes).
# setsid: its own session, so a Ctrl-C to the caller's process group reaches
# only this adapter, which then stops the daemon with SIGTERM (transmission
# aborts on a SIGINT). A background child is no group leader, so setsid
# execs the daemon in place: $! stays its pid (checked below).
setsid "$DAEMON" -f -g "$WORK/config" --logfile "$WORK/daemon.log" >"$WORK/daemon.out" 2>&1 &
DPID=$!

daemon_died() {
    echo "$NAME: $DAEMON exited: $(tail -c 600 "$WORK/daemon.log" "$WORK/daemon.out" 2>/dev/null | tr '\n' ' ')" >&2
    DPID=""
    exit 1
}

SID=""
# rpc JSON: one RPC request; prints the reply body. Handles the session id
# handshake (409 + X-Transmission-Session-Id). Returns 1 when it cannot.
rpc() {
    local body=$1 code _
    for _ in 1 2; do
        code="$(curl -sS -o "$WORK/rpc.body" -D "$WORK/rpc.head" -w '%{http_code}' \
            --max-time "$CURL_TIMEOUT_S" -H "X-Transmission-Session-Id: $SID" \
            --data-binary "$body" "$RPC_URL" 2>"$WORK/rpc.err")" || return 1
        if [[ "$code" == 409 ]]; then
            SID="$(sed -n 's/^X-Transmission-Session-Id: *\([^[:space:]]*\).*/\1/Ip' "$WORK/rpc.head" | head -n 1)"
            [[ -n "$SID" ]] || return 1
            continue
        fi
        [[ "$code" == 200 ]] || { echo "$NAME: RPC answered HTTP $code" >&2; return 1; }
        cat "$WORK/rpc.body"
        return 0
    done
    return 1
}

# RPC up: bounded.
up=0
for ((i = 0; i < RPC_UP_S * 5; i++)); do
    ((STOP)) && exit 0
    kill -0 "$DPID" 2>/dev/null || daemon_died
    if rpc '{"method":"session-get"}' >/dev/null 2>&1; then
        up=1
        break
    fi
    sleep "$POLL_S" || true
done
((up)) || die "RPC on $IP:$RPC_PORT not answering after $RPC_UP_S s: $(tail -c 300 "$WORK/rpc.err" 2>/dev/null)"
comm="$(cat "/proc/$DPID/comm" 2>/dev/null || true)"
[[ "$comm" == transmission-da* ]] || die "pid $DPID is '$comm', not $DAEMON"

# py SCRIPT ARGS...: JSON glue on the reply in $WORK/reply.json.
py() { "$PY" -c "$@"; }

# Add every torrent paused; remove its trackers; verify; start.
IDS=()
for t in "${TORRENTS[@]}"; do
    req="$(py 'import base64,json,sys
print(json.dumps({"method": "torrent-add", "arguments": {
    "metainfo": base64.b64encode(open(sys.argv[1], "rb").read()).decode(),
    "download-dir": sys.argv[2], "paused": True}}))' "$t" "$DATA")"
    rpc "$req" >"$WORK/reply.json" || die "torrent-add of '$t' failed"
    id="$(py 'import json,sys
r = json.load(open(sys.argv[1]))
a = r.get("arguments", {})
t = a.get("torrent-added") or a.get("torrent-duplicate")
if r.get("result") != "success" or not t:
    sys.exit("result: %s" % r.get("result"))
print(t["id"])' "$WORK/reply.json")" || die "torrent-add of '$t' refused: $(head -c 300 "$WORK/reply.json")"
    IDS+=("$id")
done
ids_json="[$(IFS=,; echo "${IDS[*]}")]"

rpc "{\"method\":\"torrent-get\",\"arguments\":{\"ids\":$ids_json,\"fields\":[\"id\",\"trackers\"]}}" >"$WORK/reply.json" ||
    die "torrent-get (trackers) failed"
while read -r line; do
    [[ -n "$line" ]] || continue
    rpc "$line" >/dev/null || die "removing trackers failed"
done < <(py 'import json,sys
for t in json.load(open(sys.argv[1]))["arguments"]["torrents"]:
    ids = [k["id"] for k in t.get("trackers", [])]
    if ids:
        print(json.dumps({"method": "torrent-set", "arguments": {"ids": [t["id"]], "trackerRemove": ids}}))' "$WORK/reply.json")

rpc "{\"method\":\"torrent-verify\",\"arguments\":{\"ids\":$ids_json}}" >/dev/null || die "torrent-verify failed"
rpc "{\"method\":\"torrent-start-now\",\"arguments\":{\"ids\":$ids_json}}" >/dev/null || die "torrent-start failed"

# listening IP PORT: a TCP socket in LISTEN on IP:PORT (from /proc/net/tcp).
LISTEN_KEY="$(printf '%02X%02X%02X%02X:%04X' "$((10#${IP_OCTETS[3]}))" "$((10#${IP_OCTETS[2]}))" \
    "$((10#${IP_OCTETS[1]}))" "$((10#${IP_OCTETS[0]}))" "$PORT")"
listening() { awk -v k="$LISTEN_KEY" '$2 == k && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp; }

# Ready: every torrent status 6 (seeding), percentDone 1, no error; port listening.
ready=0
state="no reply yet"
deadline=$((SECONDS + READY_S))
while ((SECONDS < deadline)); do
    ((STOP)) && exit 0
    kill -0 "$DPID" 2>/dev/null || daemon_died
    if rpc "{\"method\":\"torrent-get\",\"arguments\":{\"ids\":$ids_json,\"fields\":[\"id\",\"name\",\"status\",\"percentDone\",\"error\",\"errorString\"]}}" >"$WORK/reply.json"; then
        if state="$(py 'import json,sys
ts = json.load(open(sys.argv[1]))["arguments"]["torrents"]
bad = [t for t in ts if t["error"] != 0]
if bad:
    print("error on %s: %s" % (bad[0]["name"], bad[0]["errorString"]))
    sys.exit(2)
notyet = [t for t in ts if not (t["status"] == 6 and t["percentDone"] == 1)]
print("; ".join("%s status %d, %.1f%% done" % (t["name"], t["status"], t["percentDone"] * 100) for t in notyet))
sys.exit(1 if notyet or len(ts) != int(sys.argv[2]) else 0)' "$WORK/reply.json" "${#IDS[@]}")"; then
            if listening; then
                ready=1
                break
            fi
            state="seeding, but $IP:$PORT not listening"
        elif [[ $? == 2 ]]; then
            die "torrent $state"
        fi
    fi
    sleep "$POLL_S" || true
done
((ready)) || die "not ready after $READY_S s: $state"

echo "$NAME: pid $DPID"
echo "$NAME: ready"

# Seed until SIGTERM/SIGINT (the trap sets STOP; sleep is short so it is seen).
while ((!STOP)); do
    sleep "$POLL_S" || true
    ((STOP)) || kill -0 "$DPID" 2>/dev/null || daemon_died
done
exit 0
