#!/usr/bin/python3
"""Small helpers of the seeding bench.

  tracker_util.py infohash TORRENT
      Prints the v1 info-hash in hex (the opentracker whitelist format).
  tracker_util.py wait-seeders TORRENT TRACKER_BASE COUNT TIMEOUT_S
      Polls TRACKER_BASE/scrape (e.g. http://127.0.6.1:6969) until the
      torrent has at least COUNT seeders; exit 0, or 3 on timeout.
  tracker_util.py announce TORRENT TRACKER_BASE IP PORT
      Announces a seed (left=0, event=started) at IP:PORT, from IP (the
      tracker takes the address the request comes from), for a seeder that
      does not announce itself (the bench's trivial seeder); exit 0 once the
      tracker answered 200.

It makes no libtorrent session, but ends through lt_exit all the same, as
every script that loads libtorrent does (no libtorrent object is destroyed
at interpreter shutdown).
"""

import http.client
import os
import sys
import time
import urllib.parse
import urllib.request

import libtorrent as lt

# lt_exit (the one way out of a libtorrent script) lives in tests/support.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tests", "support"))
import lt_exit  # noqa: E402 (needs the sys.path entry above)

POLL_S = 0.2
HTTP_TIMEOUT_S = 2.0


def info_hash(torrent):
    return lt.torrent_info(torrent).info_hash()


def seeders(base, ih):
    raw = bytes.fromhex(str(ih))
    url = f"{base}/scrape?info_hash={urllib.parse.quote_from_bytes(raw)}"
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as r:
        body = lt.bdecode(r.read(64 * 1024))
    files = (body or {}).get(b"files", {})
    entry = files.get(raw, {})
    return int(entry.get(b"complete", 0))


def announce(torrent, base, ip, port):
    raw = bytes.fromhex(str(info_hash(torrent)))
    parts = urllib.parse.urlsplit(base)
    query = urllib.parse.urlencode({
        "peer_id": "-RB0000-trivialseedr",
        "port": port, "uploaded": 0, "downloaded": 0, "left": 0,
        "event": "started", "compact": 1,
    })
    path = f"/announce?info_hash={urllib.parse.quote_from_bytes(raw)}&{query}"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=HTTP_TIMEOUT_S,
                                      source_address=(ip, 0))
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def main(argv):
    if len(argv) == 3 and argv[1] == "infohash":
        print(info_hash(argv[2]))
        return 0
    if len(argv) == 6 and argv[1] == "wait-seeders":
        torrent, base, count, timeout = argv[2], argv[3], int(argv[4]), float(argv[5])
        if not urllib.parse.urlsplit(base).hostname.startswith("127."):
            print(f"{base}: not a loopback tracker", file=sys.stderr)
            return 2
        ih = info_hash(torrent)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = seeders(base, ih)
                if last >= count:
                    return 0
            except OSError as e:
                last = e
            time.sleep(POLL_S)
        print(f"tracker_util: {count} seeders not seen in {timeout} s (last: {last})",
              file=sys.stderr)
        return 3
    if len(argv) == 6 and argv[1] == "announce":
        torrent, base, ip, port = argv[2], argv[3], argv[4], int(argv[5])
        if not ip.startswith("127.") or not urllib.parse.urlsplit(base).hostname.startswith("127."):
            print(f"{base} from {ip}: not loopback", file=sys.stderr)
            return 2
        status = announce(torrent, base, ip, port)
        if status != 200:
            print(f"tracker_util: announce answered {status}", file=sys.stderr)
            return 3
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    lt_exit.run(lambda: main(sys.argv))
