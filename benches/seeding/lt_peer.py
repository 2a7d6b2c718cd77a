#!/usr/bin/python3
"""A libtorrent (python3-libtorrent 2.x) seed or leecher for the seeding bench.

  lt_peer.py seed  TORRENT DATA_DIR IP PORT [--ready-timeout S]
      Checks the data, announces to the torrent's tracker, prints
      "lt_peer: ready" on stdout once it is seeding and the tracker answered,
      then seeds until SIGTERM/SIGINT. On exit prints
      "lt_peer: uploaded BYTES" (payload bytes sent).
  lt_peer.py leech TORRENT SAVE_DIR IP PORT [--peer IP:PORT]... [--timeout S]
      Downloads into SAVE_DIR from the --peer addresses only (no tracker, so
      leechers never learn of each other) and exits 0 once every piece is
      verified; exit 3 on timeout. Uploads nothing (no unchoke slots; a rate
      limit would also throttle its requests), so every byte comes from the
      seed.

Both take --enc MODE, the session's protocol encryption (MSE/PE):
  default    libtorrent's defaults (encryption enabled, both levels: against
             a peer that speaks MSE, an obfuscated header then plaintext)
  plaintext  encryption disabled both ways: plain BitTorrent
  rc4        encryption forced both ways, RC4 only (the whole stream)
  header     encryption forced both ways, plaintext level only (obfuscated
             header, plaintext payload)

DHT, LSD, UPnP and NAT-PMP are off; the session listens on IP:PORT and
makes its outgoing connections from IP. Only for loopback benches.

Every exit goes through lt_exit (os._exit after flushing the output), so
libtorrent's objects are never torn down: that could crash (signal 11).
A SIGTERM before the seed is ready, or to a leecher, exits 143.
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

POLL_S = 0.05
# Longest wait for the disk flush once done.
FLUSH_WAIT_S = 10
RECONNECT_S = 1.0


def base_settings(ip, port):
    return {
        "listen_interfaces": f"{ip}:{port}",
        "outgoing_interfaces": ip,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "stop_tracker_timeout": 1,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "alert_mask": lt.alert_category.error
        | lt.alert_category.status
        | lt.alert_category.storage
        | lt.alert_category.tracker,
    }


def encryption_settings(mode):
    forced, disabled = int(lt.enc_policy.forced), int(lt.enc_policy.disabled)
    return {
        "default": {},
        "plaintext": {"in_enc_policy": disabled, "out_enc_policy": disabled},
        "rc4": {"in_enc_policy": forced, "out_enc_policy": forced,
                "allowed_enc_level": int(lt.enc_level.rc4), "prefer_rc4": True},
        "header": {"in_enc_policy": forced, "out_enc_policy": forced,
                   "allowed_enc_level": int(lt.enc_level.plaintext)},
    }[mode]


def add(ses, torrent, save_dir):
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = save_dir
    return ses.add_torrent(params)


def log(msg):
    print(f"lt_peer: {msg}", file=sys.stderr, flush=True)


def seed(args):
    settings = lt.high_performance_seed()
    settings.update(base_settings(args.ip, args.port))
    settings.update(encryption_settings(args.enc))
    # Held until the process ends: destroying it could crash (see lt_exit).
    ses = lt_exit.keep(lt.session(settings))
    handle = add(ses, args.torrent, args.data)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    deadline = time.monotonic() + args.ready_timeout
    announced = False
    while not stop:
        for a in ses.pop_alerts():
            if isinstance(a, lt.tracker_reply_alert):
                announced = True
            elif isinstance(a, (lt.tracker_error_alert, lt.listen_failed_alert)):
                log(a.message())
        if handle.status().is_seeding and announced:
            break
        if time.monotonic() > deadline:
            log(f"not seeding and announced after {args.ready_timeout} s: "
                f"{handle.status().state} announced={announced}")
            return 2
        time.sleep(POLL_S)
    print("lt_peer: ready", flush=True)
    while not stop:
        time.sleep(POLL_S * 4)
        ses.pop_alerts()
    print(f"lt_peer: uploaded {handle.status().total_payload_upload}", flush=True)
    return 0


def leech(args):
    settings = base_settings(args.ip, args.port)
    settings.update(encryption_settings(args.enc))
    # Upload nothing: no unchoke slots, no allowed-fast pieces, and no
    # incoming connections (a seed's peer exchange would name the others).
    settings["unchoke_slots_limit"] = 0
    settings["allowed_fast_set_size"] = 0
    settings["enable_incoming_tcp"] = False
    ses = lt_exit.keep(lt.session(settings))
    handle = add(ses, args.torrent, args.save)
    handle.replace_trackers([])
    peers = []
    for peer in args.peer:
        host, _, port = peer.rpartition(":")
        peers.append((host, int(port)))
    start = time.monotonic()
    deadline = start + args.timeout
    last_connect = None
    while True:
        for a in ses.pop_alerts():
            if isinstance(a, (lt.listen_failed_alert, lt.file_error_alert)):
                log(a.message())
        st = handle.status()
        if st.is_seeding:
            took = time.monotonic() - start
            # Flushed before the process ends and the file is compared: a
            # leecher done and gone at once left a file that differed from
            # the original now and then (seen with a libtorrent seeder too).
            handle.save_resume_data(lt.torrent_handle.flush_disk_cache)
            flushed = False
            flush_deadline = time.monotonic() + FLUSH_WAIT_S
            while not flushed and time.monotonic() < flush_deadline:
                for a in ses.pop_alerts():
                    if isinstance(a, (lt.save_resume_data_alert,
                                      lt.save_resume_data_failed_alert)):
                        flushed = True
                time.sleep(0.01)
            if not flushed:
                log(f"the disk flush was not confirmed within {FLUSH_WAIT_S} s")
            print(f"lt_peer: done {took:.3f} s downloaded {st.total_payload_download} "
                  f"failed {st.total_failed_bytes}", flush=True)
            return 0
        now = time.monotonic()
        if now > deadline:
            log(f"timeout after {args.timeout} s at {st.progress * 100:.1f}%")
            return 3
        # A torrent still checking its files drops connect_peer: (re)connect
        # once it downloads and whenever it has no peer, at most once a second.
        if (st.state == lt.torrent_status.downloading and st.num_peers == 0
                and (last_connect is None or now - last_connect >= RECONNECT_S)):
            for peer in peers:
                handle.connect_peer(peer)
            last_connect = now
        time.sleep(POLL_S)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("seed")
    s.add_argument("torrent")
    s.add_argument("data")
    s.add_argument("ip")
    s.add_argument("port", type=int)
    s.add_argument("--ready-timeout", type=float, default=120.0)
    l = sub.add_parser("leech")
    l.add_argument("torrent")
    l.add_argument("save")
    l.add_argument("ip")
    l.add_argument("port", type=int)
    l.add_argument("--peer", action="append", default=[])
    l.add_argument("--timeout", type=float, default=600.0)
    for sp in (s, l):
        sp.add_argument("--enc", choices=("default", "plaintext", "rc4", "header"),
                        default="default")
    args = p.parse_args()
    for ip in [args.ip] + [x.rpartition(":")[0] for x in getattr(args, "peer", [])]:
        if not ip.startswith("127."):
            p.error(f"{ip} is not a loopback address")
    return seed(args) if args.mode == "seed" else leech(args)


if __name__ == "__main__":
    lt_exit.run(main)
