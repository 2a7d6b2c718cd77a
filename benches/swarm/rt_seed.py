#!/usr/bin/python3
"""An rtorrent (0.9.8) seed for the swarm bench (issue 4).

  rt_seed.py --ip IP --port PORT --connections N --ready-timeout SECONDS
             --data DATA_DIR TORRENT [TORRENT...]

Starts rtorrent in daemon mode (no terminal UI) from a fresh private temp
dir: its config (no ~/.rtorrent.rc), session dir and XML-RPC socket (SCGI on
a unix socket in that dir) are there. Peers are accepted on IP:PORT. Each
TORRENT is loaded stopped with DATA_DIR as its directory, its trackers are
disabled, it is started (rtorrent hash-checks a new download on start), and
the adapter waits (at most SECONDS) until every torrent is complete, checked,
active, and IP:PORT is listening. Then it prints "rt_seed: pid PID" (the
rtorrent process) and "rt_seed: ready" on stdout and seeds until SIGTERM or
SIGINT; then it stops rtorrent (SIGTERM, bounded wait, SIGKILL), removes the
temp dir and exits 0. On failure: the reason on stderr, the same clean-up,
exit 1. Settings and their reasons: docs/swarm_seeders.md. Stdlib only;
loopback addresses only.
"""

import argparse
import hashlib
import ipaddress
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client

NAME = "rt_seed"
RTORRENT = "rtorrent"
CONNECTIONS_MAX = 100_000      # largest --connections accepted
READY_TIMEOUT_MAX_S = 3600     # largest --ready-timeout accepted
TORRENT_BYTES_MAX = 64 << 20   # largest .torrent file read
RPC_UP_S = 30                  # limit on the XML-RPC socket answering, seconds
RPC_TIMEOUT_S = 10             # limit on one XML-RPC call, seconds
RPC_REPLY_BYTES_MAX = 16 << 20  # largest XML-RPC reply read
STOP_WAIT_S = 5                # SIGTERM grace before SIGKILL, seconds (within run.sh's 10)
LOAD_WAIT_S = 30               # limit on rtorrent listing a loaded torrent, seconds
PLACEHOLDER_TRACKER_PORT = 9   # see read_torrent (disabled, never contacted)
POLL_S = 0.2                   # wait-loop period, seconds
FD_SLACK = 256                 # descriptors needed beyond the connections
BENCODE_DEPTH_MAX = 64         # nesting limit of the .torrent scanner


class Failure(Exception):
    """A reason to stop, printed on stderr."""


def bencode_end(buf, i, depth=0):
    """Index just past the bencoded value that starts at buf[i]."""
    if depth > BENCODE_DEPTH_MAX:
        raise Failure("torrent nested too deeply")
    if i >= len(buf):
        raise Failure("torrent truncated")
    c = buf[i:i + 1]
    if c == b"i":
        j = buf.find(b"e", i)
        if j < 0:
            raise Failure("torrent: unterminated integer")
        return j + 1
    if c in (b"l", b"d"):
        i += 1
        while i < len(buf) and buf[i:i + 1] != b"e":
            i = bencode_end(buf, i, depth + 1)
        if i >= len(buf):
            raise Failure("torrent: unterminated list or dict")
        return i + 1
    if c.isdigit():
        j = buf.find(b":", i)
        if j < 0 or not buf[i:j].isdigit():
            raise Failure("torrent: bad string length")
        end = j + 1 + int(buf[i:j])
        if end > len(buf):
            raise Failure("torrent: string past the end")
        return end
    raise Failure(f"torrent: unexpected byte {c!r} at {i}")


def read_torrent(path):
    """The torrent at path as (info hash, upper-case hex; bytes for rtorrent).

    rtorrent 0.9.8 refuses a torrent without trackers ("Could not find any
    trackers"), so one without 'announce' gets a placeholder announce URL on
    the seeder's own loopback address (port 9, where nothing listens); the
    trackers are disabled before the torrent starts, so it is never contacted.
    The info dictionary, hence the info hash, is unchanged.
    """
    with open(path, "rb") as f:
        buf = f.read(TORRENT_BYTES_MAX + 1)
    if len(buf) > TORRENT_BYTES_MAX:
        raise Failure(f"{path}: larger than {TORRENT_BYTES_MAX} bytes")
    if buf[:1] != b"d":
        raise Failure(f"{path}: not a bencoded dictionary")
    items, i, info = [], 1, None
    while i < len(buf) and buf[i:i + 1] != b"e":
        kend = bencode_end(buf, i)
        key = buf[buf.index(b":", i) + 1:kend]
        vend = bencode_end(buf, kend)
        items.append((key, buf[i:vend]))
        if key == b"info":
            info = buf[kend:vend]
        i = vend
    if info is None:
        raise Failure(f"{path}: no info dictionary")
    return hashlib.sha1(info).hexdigest().upper(), items


def with_announce(items, url):
    """Bencoded torrent from its top-level items, with 'announce' = url when
    it has neither 'announce' nor 'announce-list' (keys kept sorted)."""
    keys = {key for key, _ in items}
    if b"announce" not in keys and b"announce-list" not in keys:
        u = url.encode()
        items = items + [(b"announce", b"8:announce%d:%s" % (len(u), u))]
    return b"d" + b"".join(raw for _, raw in sorted(items)) + b"e"


class Rpc:
    """XML-RPC over SCGI on rtorrent's unix socket."""

    def __init__(self, path):
        self.path = path

    def __call__(self, method, *params):
        body = xmlrpc.client.dumps(params, method).encode()
        head = b"CONTENT_LENGTH\0%d\0SCGI\x001\0" % len(body)
        req = b"%d:%s," % (len(head), head) + body
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(RPC_TIMEOUT_S)
            s.connect(self.path)
            s.sendall(req)
            chunks, n = [], 0
            while True:
                b = s.recv(65536)
                if not b:
                    break
                n += len(b)
                if n > RPC_REPLY_BYTES_MAX:
                    raise Failure(f"XML-RPC reply to {method} over {RPC_REPLY_BYTES_MAX} bytes")
                chunks.append(b)
        reply = b"".join(chunks)
        sep = reply.find(b"\r\n\r\n")
        if sep < 0:
            raise Failure(f"XML-RPC reply to {method} has no header end")
        try:
            (result,), _ = xmlrpc.client.loads(reply[sep + 4:])
        except xmlrpc.client.Fault as e:
            raise Failure(f"XML-RPC {method}{params!r}: fault {e.faultCode}: {e.faultString}")
        return result


def proc_net_key(packed, port):
    """An address as /proc/net/tcp{,6} writes it: each 32-bit word in host
    (little-endian) order, then the port."""
    words = [packed[i:i + 4][::-1].hex().upper() for i in range(0, len(packed), 4)]
    return "%s:%04X" % ("".join(words), port)


def listening(ip, port):
    """Whether a TCP socket listens on ip:port, as IPv4 or IPv4-mapped IPv6
    (rtorrent 0.9.8 listens on an AF_INET6 socket bound to ::ffff:IP)."""
    v4 = ipaddress.IPv4Address(ip)
    want = {("/proc/net/tcp", proc_net_key(v4.packed, port)),
            ("/proc/net/tcp6", proc_net_key(ipaddress.IPv6Address(f"::ffff:{ip}").packed, port))}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                for line in f:
                    cols = line.split()
                    if len(cols) > 3 and (table, cols[1]) in want and cols[3] == "0A":
                        return True
        except FileNotFoundError:
            continue
    return False


def config_text(args, work, sock):
    """The rtorrent config. docs/swarm_seeders.md gives the reasons."""
    n = args.connections
    return "\n".join([
        "system.daemon.set = true",
        f"log.open_file = rtorrent, {work}/rtorrent.log",
        "log.add_output = info, rtorrent",
        f"session.path.set = {work}/session",
        f"directory.default.set = {args.data}",
        f"network.bind_address.set = {args.ip}",
        f"network.local_address.set = {args.ip}",
        f"network.port_range.set = {args.port}-{args.port}",
        "network.port_random.set = no",
        "network.port_open.set = yes",
        f"network.scgi.open_local = {sock}",
        f"network.max_open_sockets.set = {n + FD_SLACK}",
        "network.http.max_open.set = 8",
        "dht.mode.set = disable",
        "protocol.pex.set = no",
        "trackers.use_udp.set = no",
        "protocol.encryption.set = allow_incoming,try_outgoing,enable_retry",
        "throttle.global_up.max_rate.set = 0",
        "throttle.global_down.max_rate.set = 0",
        f"throttle.max_uploads.global.set = {n}",
        f"throttle.max_downloads.global.set = {n}",
        f"throttle.max_uploads.set = {n}",
        "throttle.min_peers.normal.set = 1",
        f"throttle.max_peers.normal.set = {n}",
        "throttle.min_peers.seed.set = 1",
        f"throttle.max_peers.seed.set = {n}",
        "pieces.hash.on_completion.set = no",
        "",
    ])


def stop_process(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        print(f"{NAME}: rtorrent pid {proc.pid} still running after {STOP_WAIT_S} s: SIGKILL",
              file=sys.stderr, flush=True)
        proc.kill()
        proc.wait(STOP_WAIT_S)


def log_tail(work, name="rtorrent.out"):
    try:
        with open(os.path.join(work, name), "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 600))
            return f.read().decode(errors="replace").replace("\n", " ")
    except OSError:
        return ""


def run(args, work, stop, state):
    sock = os.path.join(work, "rpc.socket")
    os.mkdir(os.path.join(work, "session"))
    conf = os.path.join(work, "rtorrent.rc")
    with open(conf, "w") as f:
        f.write(config_text(args, work, sock))
    loaded = [read_torrent(t) for t in args.torrents]
    hashes = [h for h, _ in loaded]
    placeholder = f"http://{args.ip}:{PLACEHOLDER_TRACKER_PORT}/announce"
    paths = []
    for n, (_, items) in enumerate(loaded):
        paths.append(os.path.join(work, f"t{n}.torrent"))
        with open(paths[-1], "wb") as f:
            f.write(with_announce(items, placeholder))

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < args.connections + FD_SLACK:
        raise Failure(f"open-file limit {hard} is too low for {args.connections} connections")

    env = dict(os.environ, HOME=work, TERM="dumb")
    out = open(os.path.join(work, "rtorrent.out"), "wb")
    try:
        state["proc"] = proc = subprocess.Popen(
            [RTORRENT, "-n", "-o", f"import={conf}"], cwd=work, env=env,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    except FileNotFoundError:
        raise Failure(f"{RTORRENT} not found: apt-get install rtorrent")
    finally:
        out.close()

    def alive():
        if proc.poll() is not None:
            raise Failure(f"rtorrent exited with {proc.returncode}: {log_tail(work)}")

    rpc = Rpc(sock)
    deadline = time.monotonic() + RPC_UP_S
    while True:
        if stop:
            return 0
        alive()
        try:
            rpc("system.client_version")
            break
        except (OSError, Failure) as e:
            if time.monotonic() > deadline:
                raise Failure(f"XML-RPC socket not answering after {RPC_UP_S} s: {e}")
        time.sleep(POLL_S)

    # Load stopped, wait (bounded) until rtorrent lists it, disable its
    # trackers, then start it (a new download is hash-checked on start).
    for path, orig, h in zip(paths, args.torrents, hashes):
        rpc("load.verbose", "", path)
        deadline = time.monotonic() + LOAD_WAIT_S
        while h not in (x.upper() for x in rpc("download_list", "")):
            if stop:
                return 0
            alive()
            if time.monotonic() > deadline:
                raise Failure(f"{orig} not loaded after {LOAD_WAIT_S} s: {log_tail(work, 'rtorrent.log')}")
            time.sleep(POLL_S)
        rpc("t.multicall", h, "", "t.disable=")
        rpc("d.start", h)

    deadline = time.monotonic() + args.ready_timeout
    why = "no reply yet"
    while True:
        if stop:
            return 0
        alive()
        rows = {r[0].upper(): r for r in rpc(
            "d.multicall2", "", "main", "d.hash=", "d.name=", "d.complete=",
            "d.hashing=", "d.is_active=", "d.state=", "d.message=")}
        missing = [h for h in hashes if h not in rows]
        notyet = [rows[h] for h in hashes if h in rows and not (
            rows[h][2] == 1 and rows[h][3] == 0 and rows[h][4] == 1 and rows[h][5] == 1)]
        if missing:
            why = f"torrent {missing[0]} not loaded"
        elif notyet:
            r = notyet[0]
            why = (f"{r[1]}: complete {r[2]}, hashing {r[3]}, active {r[4]}, "
                   f"state {r[5]}, message '{r[6]}'")
        elif not listening(args.ip, args.port):
            why = f"seeding, but {args.ip}:{args.port} not listening"
        else:
            break
        if time.monotonic() > deadline:
            raise Failure(f"not ready after {args.ready_timeout} s: {why}")
        time.sleep(POLL_S)

    print(f"{NAME}: pid {proc.pid}", flush=True)
    print(f"{NAME}: ready", flush=True)
    while not stop:
        time.sleep(POLL_S)
        if not stop:
            alive()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ip", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, required=True)
    p.add_argument("--ready-timeout", type=int, required=True)
    p.add_argument("--data", required=True)
    p.add_argument("torrents", nargs="+", metavar="TORRENT")
    args = p.parse_args()
    try:
        if not ipaddress.IPv4Address(args.ip).is_loopback:
            raise ValueError
    except ValueError:
        p.error(f"--ip must be a 127.x.y.z loopback address, got {args.ip!r}")
    if not 1 <= args.port <= 65535:
        p.error(f"--port must be 1..65535, got {args.port}")
    if not 1 <= args.connections <= CONNECTIONS_MAX:
        p.error(f"--connections must be 1..{CONNECTIONS_MAX}, got {args.connections}")
    if not 1 <= args.ready_timeout <= READY_TIMEOUT_MAX_S:
        p.error(f"--ready-timeout must be 1..{READY_TIMEOUT_MAX_S}, got {args.ready_timeout}")
    if not os.path.isdir(args.data):
        p.error(f"data dir {args.data!r} not found")
    args.data = os.path.abspath(args.data)
    for t in args.torrents:
        if not os.path.isfile(t):
            p.error(f"torrent {t!r} not found")
    if shutil.which(RTORRENT) is None:
        print(f"{NAME}: {RTORRENT} not found: apt-get install rtorrent", file=sys.stderr)
        return 1

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    work = tempfile.mkdtemp(prefix="rt_seed.")
    state = {"proc": None}
    rc = 1
    try:
        rc = run(args, work, stop, state)
    except (Failure, OSError, xmlrpc.client.Error) as e:
        print(f"{NAME}: {e}", file=sys.stderr, flush=True)
    finally:
        stop_process(state["proc"])
        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
