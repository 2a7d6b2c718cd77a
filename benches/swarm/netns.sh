#!/usr/bin/env bash
# A network namespace for the swarm bench's load generator, joined to the
# root namespace by two TUN devices and `ringseed-bench delay-line`, which
# adds DELAY_MS to every round trip (DELAY_MS/2 each way). This kernel has
# no sch_netem, so the delay is made in userspace; see docs/swarm_delay.md.
#
#   netns.sh up NAME DELAY_MS     make it and start the delay line
#   netns.sh exec NAME CMD...     run CMD inside the namespace
#   netns.sh down NAME            stop the delay line, delete it all
#                                 (idempotent: safe on a half-made setup)
#
# NAME starts with "delay" (at most 12 characters: letters, digits, '-');
# the devices are NAME-o (root namespace) and NAME-i (in NAME).
# Addresses (only these, only on these two devices; nothing else is routed):
#   10.203.0.1     root side (NAME-o): the seeder listens here
#   10.203.0.2     namespace side (NAME-i)
#   10.204.0.0/16  AnyIP in the namespace (local route on lo): leech peers
#                  bind 10.204.0.1 onwards (`leech --source-base 10.204.0.1`)
#                  and the root namespace routes the range to NAME-o.
# The addresses are fixed, so one setup exists at a time; `up` refuses when
# 10.203.0.1 is already on a device.
#
# Environment (defaults in brackets):
#   BENCH [target/release/ringseed-bench]
#   STATE_DIR [/run/ringseed-netns/NAME]   pid and log of the delay line
#   MTU [65000]                 MTU of both TUN devices
#   QUEUE_BYTES [64M]           bound of each direction's queue
#   READY_TIMEOUT_S [10]        limit on the delay line getting ready
#   STOP_WAIT_S [5]             SIGTERM grace before SIGKILL, in seconds
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BENCH="${BENCH:-$ROOT/target/release/ringseed-bench}"
MTU="${MTU:-65000}"
QUEUE_BYTES="${QUEUE_BYTES:-64M}"
READY_TIMEOUT_S="${READY_TIMEOUT_S:-10}"
STOP_WAIT_S="${STOP_WAIT_S:-5}"

OUTER_IP=10.203.0.1
INNER_IP=10.203.0.2
ANYIP_NET=10.204.0.0/16
DELAY_MS_MAX=10000
POLL_S=0.1

die() { echo "netns.sh: $*" >&2; exit 1; }
usage() { die "usage: netns.sh up NAME DELAY_MS | exec NAME CMD... | down NAME"; }

check_name() {
    [[ "$1" =~ ^delay[A-Za-z0-9-]{0,7}$ ]] ||
        die "namespace name must start with 'delay', 5 to 12 letters, digits or '-'; got '$1'"
}

[[ "$MTU" =~ ^[0-9]{3,5}$ && "$MTU" -ge 576 && "$MTU" -le 65000 ]] || die "MTU must be 576..65000, got '$MTU'"
for v in READY_TIMEOUT_S STOP_WAIT_S; do
    [[ "${!v}" =~ ^[1-9][0-9]{0,2}$ ]] || die "$v must be 1..999, got '${!v}'"
done

# Stops the delay line recorded in STATE (only if that pid is still ours).
stop_delay_line() {
    local state=$1 pid i
    [[ -f "$state/pid" ]] || return 0
    pid="$(cat "$state/pid")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "delay-line"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < STOP_WAIT_S * 10; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep "$POLL_S"
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "netns.sh: delay line $pid still running after ${STOP_WAIT_S} s: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$state/pid"
}

down() {
    local name=$1 state="${STATE_DIR:-/run/ringseed-netns/$1}"
    stop_delay_line "$state"
    if [[ -f "$state/delay-line.log" ]]; then
        grep -h "delay-line:" "$state/delay-line.log" | grep -v ready >&2 || true
    fi
    if [[ -e "/var/run/netns/$name" ]]; then
        ip -n "$name" link del "$name-i" 2>/dev/null || true
        ip netns del "$name" 2>/dev/null || true
    fi
    ip link del "$name-o" 2>/dev/null || true
    rm -rf "$state"
}

up() {
    local name=$1 delay=$2 state="${STATE_DIR:-/run/ringseed-netns/$1}" i pid
    [[ "$delay" =~ ^[0-9]{1,5}$ && "$delay" -le $DELAY_MS_MAX ]] ||
        die "DELAY_MS must be 0..$DELAY_MS_MAX, got '$delay'"
    [[ -x "$BENCH" ]] || die "$BENCH not found: cargo build --release --bin ringseed-bench (or set BENCH)"
    [[ $EUID -eq 0 ]] || die "needs root (ip netns, ip tuntap)"
    [[ -e /dev/net/tun ]] || die "/dev/net/tun is missing"
    [[ ! -e "/var/run/netns/$name" ]] || die "namespace $name exists: netns.sh down $name first"
    [[ -z "$(ip -o addr show to "$OUTER_IP/32")" ]] ||
        die "$OUTER_IP is already on a device (another setup is up?): $(ip -o addr show to "$OUTER_IP/32" | head -1)"
    # Anything failing from here undoes what was made.
    trap 'down "$name"' ERR
    mkdir -p "$state"
    ip netns add "$name"
    ip tuntap add mode tun name "$name-o"
    ip link set "$name-o" mtu "$MTU" up
    ip addr add "$OUTER_IP/32" peer "$INNER_IP/32" dev "$name-o"
    ip route add "$ANYIP_NET" dev "$name-o"
    ip -n "$name" link set lo up
    ip netns exec "$name" ip tuntap add mode tun name "$name-i"
    ip -n "$name" link set "$name-i" mtu "$MTU" up
    ip -n "$name" addr add "$INNER_IP/32" peer "$OUTER_IP/32" dev "$name-i"
    ip -n "$name" route add local "$ANYIP_NET" dev lo
    # No IPv6 on the pair: only the addresses above cross it.
    echo 1 >"/proc/sys/net/ipv6/conf/$name-o/disable_ipv6" 2>/dev/null || true
    ip netns exec "$name" sh -c "echo 1 >/proc/sys/net/ipv6/conf/$name-i/disable_ipv6" 2>/dev/null || true
    setsid "$BENCH" delay-line --outer-tun "$name-o" --netns "$name" --inner-tun "$name-i" \
        --delay-ms "$delay" --queue-bytes "$QUEUE_BYTES" \
        </dev/null >"$state/delay-line.log" 2>&1 &
    pid=$!
    echo "$pid" >"$state/pid"
    for ((i = 0; i < READY_TIMEOUT_S * 10; i++)); do
        grep -q "delay-line: ready" "$state/delay-line.log" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep "$POLL_S"
    done
    if ! grep -q "delay-line: ready" "$state/delay-line.log" 2>/dev/null; then
        local why
        why="$(tail -c 300 "$state/delay-line.log" | tr '\n' ' ')"
        down "$name"
        die "delay line not ready after ${READY_TIMEOUT_S} s: $why"
    fi
    trap - ERR
    echo "netns.sh: $name up: seeder side $OUTER_IP, peers from 10.204.0.1 in $name, +${delay} ms RTT (delay line pid $pid)" >&2
}

[[ $# -ge 2 ]] || usage
cmd=$1 name=$2
check_name "$name"
case "$cmd" in
up)
    [[ $# -eq 3 ]] || usage
    up "$name" "$3"
    ;;
exec)
    [[ $# -ge 3 ]] || usage
    [[ -e "/var/run/netns/$name" ]] || die "namespace $name does not exist: netns.sh up $name DELAY_MS"
    shift 2
    exec ip netns exec "$name" "$@"
    ;;
down)
    [[ $# -eq 2 ]] || usage
    down "$name"
    ;;
*) usage ;;
esac
