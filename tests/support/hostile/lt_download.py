#!/usr/bin/python3
"""Download one torrent with libtorrent from given loopback peers, for
checking the malicious seed of tests/hostile_peers.rs against a real peer.

Usage: /usr/bin/python3 lt_download.py TORRENT OUT_DIR LISTEN_IP
           --peer IP:PORT [--peer IP:PORT ...]
           [--peer-after-failure IP:PORT ...] [--timeout SECONDS]

Peers given with --peer-after-failure are connected only after the first
piece fails its hash check (or after LATER_PEERS_AFTER_S seconds), so the
peers given first surely get requests.

Prints `lt_download: banned IP:PORT` for each banned peer and
`lt_download: hash failed PIECE` for each failed piece on stderr, and exits 0
once every piece is downloaded and verified; 1 on a libtorrent error, 2 on a
timeout, 143 on SIGTERM. No DHT, LSD, UPnP or NAT-PMP: nothing leaves
loopback. Every exit goes through lt_exit (os._exit after flushing the
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
# When the --peer-after-failure peers are connected if no piece failed yet.
LATER_PEERS_AFTER_S = 10
REDIAL_S = 5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("torrent")
    ap.add_argument("out_dir")
    ap.add_argument("listen_ip")
    ap.add_argument("--peer", action="append", default=[])
    ap.add_argument("--peer-after-failure", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()

    settings = {
        "listen_interfaces": f"{args.listen_ip}:0",
        "outgoing_interfaces": args.listen_ip,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        # Plain BitTorrent only: the malicious seed speaks no encryption, and
        # an encrypted first attempt would cost a reconnect.
        "out_enc_policy": int(lt.enc_policy.disabled),
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.peer_notification,
    }
    # Held until the process ends: destroying it could crash (see lt_exit).
    ses = lt_exit.keep(lt.session(settings))
    ti = lt.torrent_info(args.torrent)
    h = ses.add_torrent({"ti": ti, "save_path": args.out_dir})
    def connect(peers):
        for p in peers:
            ip, port = p.rsplit(":", 1)
            h.connect_peer((ip, int(port)))

    connect(args.peer)
    later = args.peer_after_failure
    later_at = time.monotonic() + LATER_PEERS_AFTER_S
    end = time.monotonic() + args.timeout
    # Once the later peers are due, dial them again every few seconds: a
    # connect that fails on a loaded machine is not retried soon otherwise.
    redial = []
    redial_at = 0.0
    while time.monotonic() < end:
        if later and time.monotonic() > later_at:
            connect(later)
            redial, later = later, []
            redial_at = time.monotonic() + REDIAL_S
        if redial and time.monotonic() > redial_at:
            connect(redial)
            redial_at = time.monotonic() + REDIAL_S
        ses.wait_for_alert(ALERT_WAIT_MS)
        for a in ses.pop_alerts():
            if isinstance(a, lt.peer_ban_alert):
                ip, port = a.endpoint
                print(f"lt_download: banned {ip}:{port}", file=sys.stderr, flush=True)
            elif isinstance(a, lt.hash_failed_alert):
                print(f"lt_download: hash failed {a.piece_index}", file=sys.stderr, flush=True)
                connect(later)
                if later:
                    redial, later = later, []
                    redial_at = time.monotonic() + REDIAL_S
        st = h.status()
        if st.errc.value() != 0:
            print(f"lt_download: error: {st.errc.message()}", file=sys.stderr, flush=True)
            return 1
        # Seeding comes once every piece passed its hash check; the last
        # writes may still be queued then: done only when all are written.
        if st.is_seeding and st.num_pieces == ti.num_pieces():
            print("lt_download: done", file=sys.stderr, flush=True)
            return 0
    print("lt_download: timed out", file=sys.stderr, flush=True)
    return 2


if __name__ == "__main__":
    lt_exit.run(main)
