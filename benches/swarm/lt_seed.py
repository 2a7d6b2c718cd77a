#!/usr/bin/python3
"""A libtorrent (python3-libtorrent 2.x) seed for the swarm bench.

  lt_seed.py TORRENT DATA_DIR IP PORT --connections N [--ready-timeout S]

Adds TORRENT with its data in DATA_DIR (the save directory), checks it,
listens on IP:PORT and prints "lt_seed: ready" on stderr once it seeds,
then seeds until SIGTERM/SIGINT; on exit prints "lt_seed: uploaded BYTES"
(payload bytes sent) on stderr. Exit 2 when it is not seeding within the
ready timeout or the listen socket fails.

Settings: lt.high_performance_seed(), connections_limit N, no tracker,
DHT, LSD, UPnP, NAT-PMP and uTP off. Loopback addresses only.
"""

import argparse
import signal
import sys
import time

import libtorrent as lt

POLL_S = 0.05
IDLE_POLL_S = 0.2
CONNECTIONS_MAX = 100_000


def log(msg):
    print(f"lt_seed: {msg}", file=sys.stderr, flush=True)


def settings_for(ip, port, connections):
    settings = lt.high_performance_seed()
    settings.update({
        "listen_interfaces": f"{ip}:{port}",
        "outgoing_interfaces": ip,
        "connections_limit": connections,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "alert_mask": lt.alert_category.error | lt.alert_category.status,
    })
    return settings


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("torrent")
    p.add_argument("data")
    p.add_argument("ip")
    p.add_argument("port", type=int)
    p.add_argument("--connections", type=int, required=True)
    p.add_argument("--ready-timeout", type=float, default=120.0)
    args = p.parse_args()
    if not args.ip.startswith("127."):
        p.error(f"{args.ip} is not a loopback address")
    if not 1 <= args.connections <= CONNECTIONS_MAX:
        p.error(f"--connections must be 1..{CONNECTIONS_MAX}, got {args.connections}")

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    ses = lt.session(settings_for(args.ip, args.port, args.connections))
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(args.torrent)
    params.save_path = args.data
    handle = ses.add_torrent(params)
    handle.replace_trackers([])

    deadline = time.monotonic() + args.ready_timeout
    listening = False
    while not stop:
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_succeeded_alert):
                listening = True
            elif isinstance(a, (lt.listen_failed_alert, lt.file_error_alert)):
                log(a.message())
                return 2
        if handle.status().is_seeding and listening:
            break
        if time.monotonic() > deadline:
            st = handle.status()
            log(f"not seeding after {args.ready_timeout} s: state {st.state}, "
                f"progress {st.progress * 100:.1f}%, listening {listening}")
            return 2
        time.sleep(POLL_S)
    if stop:
        return 0
    log(f"ready on {args.ip}:{args.port}")
    while not stop:
        time.sleep(IDLE_POLL_S)
        ses.pop_alerts()
    log(f"uploaded {handle.status().total_payload_upload}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
