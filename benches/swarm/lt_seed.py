#!/usr/bin/python3
"""The libtorrent (python3-libtorrent 2.x) seeder adapter of the swarm bench.

  lt_seed.py --ip IP --port PORT --connections N --ready-timeout SECONDS \\
             --data DATA_DIR TORRENT [TORRENT...]

The adapter contract of benches/swarm/run.sh (docs/swarm_bench.md): adds
every TORRENT with its data in DATA_DIR (the save directory), checks them,
listens on IP:PORT, and prints on stdout

  libtorrent: pid PID      (this process: its /proc/PID/stat is the seeder's CPU)
  libtorrent: ready        (every torrent is seeding and the socket listens)

then seeds until SIGTERM/SIGINT and exits 0; before it exits it prints
"libtorrent: uploaded BYTES" (payload bytes sent, all torrents) on stderr.
Exit 2 when it is not ready within the timeout or the listen socket fails.

Settings: lt.high_performance_seed(), connections_limit N (all torrents
together), every torrent active (not auto-managed), no tracker, DHT, LSD,
UPnP, NAT-PMP or uTP. Loopback addresses only.

The "local" peer class (libtorrent puts 127.0.0.0/8 and the private
networks in it) has connection_limit_factor 150 by default, and libtorrent
divides the limit by it for those peers: incoming loopback peers are
refused ("too many connections") beyond connections_limit * 100 / 150 +
connections_slack, 1,375 of 2,048. The adapter sets that factor to 100 so
that N loopback peers fit under connections_limit N.

Every exit goes through lt_exit (os._exit after flushing the output), so
libtorrent's objects are never torn down: that could crash (signal 11).
"""

import argparse
import os
import signal
import sys
import time

import libtorrent as lt

# lt_exit (the one way out of a libtorrent script) lives in tests/support.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tests", "support"))
import lt_exit  # noqa: E402 (needs the sys.path entry above)

NAME = "libtorrent"
POLL_S = 0.05
IDLE_POLL_S = 0.2
CONNECTIONS_MAX = 100_000
TORRENTS_MAX = 10_000
READY_TIMEOUT_MAX_S = 3600.0
HASHING_THREADS = max(1, min(os.cpu_count() or 1, 16))
# Percent; libtorrent's default for the local class is 150, which lowers the
# limit for loopback peers to two thirds (see the module text).
LOCAL_CONNECTION_LIMIT_FACTOR = 100


def log(msg):
    print(f"{NAME}: {msg}", file=sys.stderr, flush=True)


def say(msg):
    print(f"{NAME}: {msg}", flush=True)


def settings_for(ip, port, connections, torrents):
    settings = lt.high_performance_seed()
    settings.update({
        "listen_interfaces": f"{ip}:{port}",
        "outgoing_interfaces": ip,
        "connections_limit": connections,
        # Every torrent seeds at once (the queue would leave most inactive).
        "active_limit": torrents + 16,
        "active_seeds": torrents + 16,
        "active_checking": HASHING_THREADS,
        "hashing_threads": HASHING_THREADS,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "alert_mask": lt.alert_category.error | lt.alert_category.status,
    })
    return settings


def set_local_connection_limit_factor(ses):
    """Give loopback peers the whole connections_limit (see the module text).

    set_peer_class replaces every field, so the class is read, changed and
    written back whole."""
    local = ses.get_peer_class(lt.session.local_peer_class_id)
    local["connection_limit_factor"] = LOCAL_CONNECTION_LIMIT_FACTOR
    ses.set_peer_class(lt.session.local_peer_class_id, local)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ip", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, required=True)
    p.add_argument("--ready-timeout", type=float, required=True)
    p.add_argument("--data", required=True)
    p.add_argument("torrents", nargs="+", metavar="TORRENT")
    args = p.parse_args()
    # Loopback, or the root side of benches/swarm/netns.sh's TUN pair (the
    # delay line), which exists only while the bench runs.
    if not (args.ip.startswith("127.") or args.ip == "10.203.0.1"):
        p.error(f"{args.ip} is neither a loopback address nor the delay line's 10.203.0.1")
    if not 1 <= args.port <= 65535:
        p.error(f"--port must be 1..65535, got {args.port}")
    if not 1 <= args.connections <= CONNECTIONS_MAX:
        p.error(f"--connections must be 1..{CONNECTIONS_MAX}, got {args.connections}")
    if not 0 < args.ready_timeout <= READY_TIMEOUT_MAX_S:
        p.error(f"--ready-timeout must be over 0 and at most {READY_TIMEOUT_MAX_S}")
    if len(args.torrents) > TORRENTS_MAX:
        p.error(f"{len(args.torrents)} torrents: at most {TORRENTS_MAX}")

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    say(f"pid {os.getpid()}")

    # Held until the process ends: destroying it could crash (see lt_exit).
    ses = lt_exit.keep(lt.session(settings_for(args.ip, args.port, args.connections,
                                               len(args.torrents))))
    set_local_connection_limit_factor(ses)
    handles = []
    for path in args.torrents:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(path)
        params.save_path = args.data
        params.flags &= ~lt.torrent_flags.auto_managed
        params.flags &= ~lt.torrent_flags.paused
        handle = ses.add_torrent(params)
        handle.replace_trackers([])
        handles.append(handle)

    deadline = time.monotonic() + args.ready_timeout
    listening = False
    while not stop:
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_succeeded_alert):
                listening = True
            elif isinstance(a, (lt.listen_failed_alert, lt.file_error_alert)):
                log(a.message())
                return 2
        seeding = sum(1 for h in handles if h.status().is_seeding)
        if seeding == len(handles) and listening:
            break
        if time.monotonic() > deadline:
            log(f"not ready after {args.ready_timeout} s: {seeding} of {len(handles)} "
                f"torrents seeding, listening {listening}")
            return 2
        time.sleep(POLL_S)
    if stop:
        return 0
    log(f"{len(handles)} torrents seeding on {args.ip}:{args.port}")
    say("ready")
    while not stop:
        time.sleep(IDLE_POLL_S)
        ses.pop_alerts()
    log(f"uploaded {sum(h.status().total_payload_upload for h in handles)}")
    return 0


if __name__ == "__main__":
    lt_exit.run(main)
