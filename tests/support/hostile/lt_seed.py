#!/usr/bin/python3
"""Seed one torrent with libtorrent on a loopback address, for checking the
raw test clients of tests/hostile_peers.rs against a real peer.

Usage: /usr/bin/python3 lt_seed.py TORRENT SAVE_PATH LISTEN_IP [--timeout SECONDS]

Prints `lt_seed: listening on IP:PORT` on stderr once the data is checked and
the torrent is seeding, then seeds until it is killed or the timeout passes. No DHT, LSD, UPnP or NAT-PMP: nothing leaves loopback.
Exit status: 0 after seeding (the timeout passed, or SIGTERM), 1 on a
libtorrent error or if the data does not check, 2 on a timeout before
seeding. Every exit goes through lt_exit (os._exit after flushing the
output), so libtorrent's objects are never torn down: that could crash.
"""

import argparse
import os
import sys
import time

import libtorrent as lt

# lt_exit lives in tests/support, one folder up.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import lt_exit  # noqa: E402 (needs the sys.path entry above)

# How long one wait for alerts may block, in milliseconds.
ALERT_WAIT_MS = 200
# Longest the initial data check may take, in seconds.
CHECK_TIMEOUT_S = 60


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("torrent")
    ap.add_argument("save_path")
    ap.add_argument("listen_ip")
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()
    lt_exit.on_signal(0)

    settings = {
        "listen_interfaces": f"{args.listen_ip}:0",
        "outgoing_interfaces": args.listen_ip,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification,
    }
    # Held until the process ends: destroying it could crash (see lt_exit).
    ses = lt_exit.keep(lt.session(settings))
    ti = lt.torrent_info(args.torrent)
    h = ses.add_torrent({"ti": ti, "save_path": args.save_path})

    deadline = time.monotonic() + min(args.timeout, CHECK_TIMEOUT_S)
    while not h.status().is_seeding:
        if time.monotonic() > deadline:
            print("lt_seed: data check did not finish", file=sys.stderr, flush=True)
            return 2
        st = h.status()
        if st.errc.value() != 0:
            print(f"lt_seed: error: {st.errc.message()}", file=sys.stderr, flush=True)
            return 1
        ses.wait_for_alert(ALERT_WAIT_MS)
        ses.pop_alerts()
    if h.status().num_pieces != ti.num_pieces():
        print("lt_seed: data does not check", file=sys.stderr, flush=True)
        return 1
    print(
        f"lt_seed: listening on {args.listen_ip}:{ses.listen_port()}",
        file=sys.stderr,
        flush=True,
    )
    end = time.monotonic() + args.timeout
    while time.monotonic() < end:
        ses.wait_for_alert(ALERT_WAIT_MS)
        for a in ses.pop_alerts():
            if a.category() & lt.alert.category_t.error_notification:
                print(f"lt_seed: {a.message()}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    lt_exit.run(main)
