#!/usr/bin/python3
"""A libtorrent peer for the engine's interop tests, on one loopback address.

Usage: /usr/bin/python3 lt_peer.py seed|download TORRENT SAVE_PATH IP PORT
           [--peer IP:PORT]... [--timeout SECONDS]

seed: checks the data, prints `lt_peer: seeding on IP:PORT` on stderr, then
seeds until SIGTERM or the timeout passes (exit 0), 1 if the data does not
check. download: downloads into SAVE_PATH, exits 0 once every piece is
checked (libtorrent verifies each piece), 1 on a libtorrent error, 2 on a
timeout, 143 on SIGTERM. Both announce to the torrent's trackers; `--peer`
also connects directly. No DHT, LSD, UPnP or NAT-PMP: nothing leaves
loopback. PORT 0 lets the system pick a free port (no race with another
process for a port chosen beforehand).

Every exit goes through lt_exit (os._exit after flushing the output), so
libtorrent's objects are never torn down: that could crash (signal 11).
"""

import argparse
import sys
import time

import libtorrent as lt

import lt_exit

ALERT_WAIT_MS = 200


def log(msg):
    print(f"lt_peer: {msg}", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["seed", "download"])
    ap.add_argument("torrent")
    ap.add_argument("save_path")
    ap.add_argument("ip")
    ap.add_argument("port", type=int)
    ap.add_argument("--peer", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    if args.mode == "seed":
        lt_exit.on_signal(0)

    # Held until the process ends: destroying it could crash (see lt_exit).
    ses = lt_exit.keep(lt.session({
        "listen_interfaces": f"{args.ip}:{args.port}",
        "outgoing_interfaces": args.ip,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "allow_multiple_connections_per_ip": True,
        "announce_ip": args.ip,
        "alert_mask": lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.tracker_notification,
    }))
    ti = lt.torrent_info(args.torrent)
    h = ses.add_torrent({"ti": ti, "save_path": args.save_path})
    end = time.monotonic() + args.timeout
    announced = False
    for p in args.peer:
        host, port = p.rsplit(":", 1)
        h.connect_peer((host, int(port)))
    while time.monotonic() < end:
        ses.wait_for_alert(ALERT_WAIT_MS)
        for a in ses.pop_alerts():
            if a.category() & (lt.alert.category_t.error_notification
                               | lt.alert.category_t.tracker_notification):
                log(a.message())
        st = h.status()
        if st.errc.value() != 0:
            log(f"error: {st.errc.message()}")
            return 1
        if args.mode == "seed":
            if st.is_seeding and not announced:
                if st.num_pieces != ti.num_pieces():
                    log("data does not check")
                    return 1
                announced = True
                log(f"seeding on {args.ip}:{ses.listen_port()}")
        # libtorrent 2.0 reports seeding once every piece passed its hash
        # check, while the last writes may still be queued: done only when
        # every piece is written too (num_pieces), or an exit loses them.
        elif st.is_seeding and st.num_pieces == ti.num_pieces():
            log(f"download complete: {st.num_pieces} pieces, {st.total_payload_download} bytes")
            return 0
    if args.mode == "seed":
        return 0
    st = h.status()
    log(f"timeout: progress {st.progress:.3f}, peers {st.num_peers}, state {st.state}")
    return 2


if __name__ == "__main__":
    lt_exit.run(main)
