#!/usr/bin/python3
"""Load a .torrent with libtorrent and report what libtorrent sees, as JSON.

Usage: /usr/bin/python3 lt_check.py TORRENT [--save-path DIR] [--timeout SECONDS]

Always prints: info_hash (v1, hex), name, num_files (pad files excluded),
total_size, piece_length, num_pieces, private.
With --save-path, the torrent is also added to an offline session (no DHT, LSD,
UPnP or NAT-PMP; listening on 127.0.0.1 only) with seed mode off, libtorrent
rechecks the data in DIR, and the script adds: checked, pieces_have,
missing_pieces, is_seeding.

Exit status: 0 on a report, 1 on a libtorrent error, 2 on a timeout, 143
when stopped by SIGTERM. The script ends through lt_exit (os._exit after
flushing its output), so libtorrent's objects are never torn down.
"""

import argparse
import json
import sys
import time

import libtorrent as lt

import lt_exit

# How long one libtorrent call to wait_for_alert may block, in milliseconds.
ALERT_WAIT_MS = 200
# Most missing piece indexes listed in the report.
MISSING_LISTED_MAX = 1000


def describe(ti):
    files = ti.files()
    real_files = 0
    for i in range(files.num_files()):
        if not files.file_flags(i) & lt.file_storage.flag_pad_file:
            real_files += 1
    return {
        "info_hash": str(ti.info_hashes().v1),
        "name": ti.name(),
        "num_files": real_files,
        "total_size": ti.total_size(),
        "piece_length": ti.piece_length(),
        "num_pieces": ti.num_pieces(),
        "private": bool(ti.priv()),
    }


def recheck(ti, save_path, timeout_s):
    settings = {
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "127.0.0.1",
        "alert_mask": lt.alert.category_t.status_notification
        | lt.alert.category_t.error_notification
        | lt.alert.category_t.storage_notification,
    }
    # Held until the process ends: destroying it could crash (see lt_exit).
    ses = lt_exit.keep(lt.session(settings))
    atp = lt.add_torrent_params()
    atp.ti = ti
    atp.save_path = save_path
    # Recheck from disk: no seed mode, no resume data; do not wait in a queue.
    atp.flags &= ~lt.torrent_flags.seed_mode
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    # Never contact anyone: drop trackers and web seeds from this session.
    atp.trackers = []
    atp.url_seeds = []
    handle = ses.add_torrent(atp)

    deadline = time.monotonic() + timeout_s
    checked = False
    errors = []
    while time.monotonic() < deadline and not checked:
        ses.wait_for_alert(ALERT_WAIT_MS)
        for alert in ses.pop_alerts():
            if isinstance(alert, lt.torrent_checked_alert):
                checked = True
            elif isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
                errors.append(alert.message())
    if not checked:
        return None, errors

    status = handle.status()
    missing = [i for i in range(ti.num_pieces()) if not handle.have_piece(i)]
    report = {
        "checked": True,
        "pieces_have": ti.num_pieces() - len(missing),
        "missing_pieces": missing[:MISSING_LISTED_MAX],
        "is_seeding": bool(status.is_seeding),
        "errors": errors,
    }
    return report, errors


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("torrent")
    parser.add_argument("--save-path")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    try:
        ti = lt.torrent_info(args.torrent)
    except RuntimeError as e:
        print(json.dumps({"error": str(e)}))
        return 1
    report = describe(ti)
    if args.save_path is not None:
        result, errors = recheck(ti, args.save_path, args.timeout)
        if result is None:
            report["checked"] = False
            report["errors"] = errors
            print(json.dumps(report))
            print(f"libtorrent did not finish checking within {args.timeout} s",
                  file=sys.stderr)
            return 2
        report.update(result)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    lt_exit.run(main)
