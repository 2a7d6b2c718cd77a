#!/usr/bin/python3
"""Daemon start bench (issue 11): how fast `ringseed daemon` and
qBittorrent-nox serve N small seeding torrents after a restart, and their
memory then. Driven by run.sh (which checks the tools); see README.md.

One run, loopback only:
  1. generate N single-file torrents (random data, no trackers) and their data;
  2. load them once into ringseed (watch folder) and into qBittorrent (Web API,
     skip_checking), wait until every one seeds, stop each cleanly;
  3. R rounds, alternating: a 0-torrent baseline and a measured restart of
     each client: time to ready (ringseed: the `ready in` log line;
     qBittorrent: its Web API reports every torrent in a seeding state),
     time to serving (a BitTorrent handshake for a random one of the N
     info-hashes answered with a handshake and a bitfield/have-all), and RSS.
Prints a markdown report on stdout, progress on stderr. Every process is
stopped by pid; every wait is bounded.

Standard library only (Debian's /usr/bin/python3).
"""

import argparse
import hashlib
import http.cookiejar
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

PIECE_LEN = 16 * 1024  # piece length of the generated torrents, bytes
SIZE_MIN = 16 * 1024  # smallest generated file, bytes
SIZE_MAX = 64 * 1024  # largest generated file, bytes
POLL_S = 0.01  # log-tail and probe retry period, seconds
QBT_POLL_S = 0.25  # qBittorrent Web API poll period, seconds
PROBE_IO_TIMEOUT_S = 2.0  # one handshake probe's connect/read limit, seconds
PROBE_MSG_MAX = 1 << 20  # largest peer message the probe accepts, bytes
PROBE_MSGS_MAX = 16  # messages read after the handshake before giving up
STOP_WAIT_S = 120  # SIGTERM grace before SIGKILL, seconds
FIRST_STOP_S_PER_TORRENT = 0.05  # extra grace per torrent after the first
# load, seconds: qBittorrent then writes every resume file with an fsync
# (about 17 ms each here: 3 minutes for 10,000)
ADD_BATCH = 200  # .torrent files per qBittorrent add request
STATE_CHUNK = 1000  # info-hashes per qBittorrent state query
QBT_SEEDING = ("uploading", "stalledUP", "queuedUP", "forcedUP")
SETTLE_RSS_S = 5  # wait after serving before the settled RSS, seconds

T0 = time.monotonic()
CHILDREN = []  # Popen objects still to stop


def log(msg):
    print(f"[{time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- bencode


def bencode(x):
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, str):
        return bencode(x.encode())
    if isinstance(x, list):
        return b"l" + b"".join(bencode(v) for v in x) + b"e"
    if isinstance(x, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in x.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(x)}")


# -------------------------------------------------------------- generator


def generate(work, n, seed):
    """N files of SIZE_MIN..SIZE_MAX random bytes in work/data, their
    .torrent files in work/torrents; returns the info-hashes (hex)."""
    data = os.path.join(work, "data")
    tors = os.path.join(work, "torrents")
    os.makedirs(data)
    os.makedirs(tors)
    rng = random.Random(seed)
    hashes = []
    total = 0
    for i in range(n):
        name = f"ds{i:05d}.bin"
        size = rng.randint(SIZE_MIN, SIZE_MAX)
        body = rng.randbytes(size)
        total += size
        with open(os.path.join(data, name), "wb") as f:
            f.write(body)
        pieces = b"".join(
            hashlib.sha1(body[o : o + PIECE_LEN]).digest() for o in range(0, size, PIECE_LEN)
        )
        info = {"length": size, "name": name, "piece length": PIECE_LEN, "pieces": pieces}
        hashes.append(hashlib.sha1(bencode(info)).hexdigest())
        with open(os.path.join(tors, name + ".torrent"), "wb") as f:
            f.write(bencode({"info": info, "created by": "ringseed daemon_start bench"}))
    if len(set(hashes)) != n:
        raise BenchError("generated info-hashes are not distinct")
    return hashes, total


# ------------------------------------------------------------ processes


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


def smaps_rollup(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                m = re.match(r"(\w+):\s+(\d+) kB", line)
                if m:
                    out[m.group(1)] = int(m.group(2))
    except OSError:
        pass
    return out


def spawn(argv, logpath, env=None):
    logf = open(logpath, "ab")
    t = time.monotonic()
    p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    logf.close()
    CHILDREN.append(p)
    return p, t


def stop(p, what, grace=STOP_WAIT_S):
    """SIGTERM, wait up to grace s, then SIGKILL. Returns seconds taken."""
    t = time.monotonic()
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            log(f"{what}: still running {grace} s after SIGTERM: SIGKILL")
            p.kill()
            p.wait(10)
    if p in CHILDREN:
        CHILDREN.remove(p)
    return time.monotonic() - t


def stop_all():
    for p in list(CHILDREN):
        try:
            stop(p, f"pid {p.pid}", grace=20)
        except Exception as e:  # noqa: BLE001 - best effort at exit
            log(f"stopping pid {p.pid}: {e}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, limit_s, what, period=POLL_S, proc=None):
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what}: the process exited with {proc.returncode}")
        v = pred()
        if v:
            return v
        time.sleep(period)
    raise BenchError(f"{what}: not within {limit_s} s")


# ------------------------------------------------------------------ probe


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def probe_once(port, info_hash_hex):
    """One BitTorrent handshake to 127.0.0.1:port for the info-hash; True
    when the peer answers with its handshake for the same info-hash and then
    a bitfield (5) or have-all (14) message."""
    ih = bytes.fromhex(info_hash_hex)
    peer_id = b"-DS0001-" + os.urandom(12)
    hs = bytes([19]) + b"BitTorrent protocol" + bytes(8) + ih + peer_id
    with socket.create_connection(("127.0.0.1", port), timeout=PROBE_IO_TIMEOUT_S) as s:
        s.settimeout(PROBE_IO_TIMEOUT_S)
        s.sendall(hs)
        r = recv_exact(s, 68)
        if r[0] != 19 or r[1:20] != b"BitTorrent protocol" or r[28:48] != ih:
            return False
        for _ in range(PROBE_MSGS_MAX):
            (ln,) = struct.unpack(">I", recv_exact(s, 4))
            if ln == 0:
                continue  # keep-alive
            if ln > PROBE_MSG_MAX:
                return False
            msg = recv_exact(s, ln)
            if msg[0] in (5, 14):
                return True
        return False


class Prober(threading.Thread):
    """Retries the probe every POLL_S from its start until one succeeds."""

    def __init__(self, port, info_hash_hex, limit_s):
        super().__init__(daemon=True)
        self.port, self.ih, self.limit_s = port, info_hash_hex, limit_s
        self.at = None
        self.tries = 0
        self.stop_flag = False

    def run(self):
        end = time.monotonic() + self.limit_s
        while not self.stop_flag and time.monotonic() < end:
            self.tries += 1
            try:
                if probe_once(self.port, self.ih):
                    self.at = time.monotonic()
                    return
            except (OSError, ConnectionError, struct.error, IndexError):
                pass
            time.sleep(POLL_S)


# --------------------------------------------------------------- ringseed


class Ringseed:
    def __init__(self, binary, work, torrents_dir, data_dir, hashes, limit_s):
        self.bin = binary
        self.work = os.path.join(work, "ringseed")
        self.state = os.path.join(self.work, "state")
        self.empty_state = os.path.join(self.work, "state-empty")
        self.watch = os.path.join(self.work, "watch")
        self.config = os.path.join(self.work, "bench.toml")
        self.torrents_dir = torrents_dir
        self.data = data_dir
        self.hashes = hashes
        self.limit_s = limit_s
        self.runs = 0
        os.makedirs(self.work)
        with open(self.config, "w") as f:
            # every torrent seeds (qBittorrent's queueing is off too)
            f.write("[queue]\nenabled = false\n")

    def start(self, state, port, watch=False):
        self.runs += 1
        logpath = os.path.join(self.work, f"daemon-{self.runs}.log")
        argv = [self.bin, "daemon", "--state-dir", state, "--download-dir", self.data,
                "--listen", f"127.0.0.1:{port}", "--api-listen", "127.0.0.1:0", "--no-dht",
                "--config", self.config]
        if watch:
            argv += ["--watch-dir", self.watch]
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"), NO_COLOR="1")
        p, t = spawn(argv, logpath, env)
        return p, t, logpath

    def ctl_list(self, state):
        r = subprocess.run([self.bin, "ctl", "--state-dir", state, "list", "--json"],
                           capture_output=True, timeout=60)
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def first_load(self):
        """Starts with the watch folder, drops every .torrent there, waits
        until each seeds, lets the state be saved, stops."""
        os.makedirs(self.watch)
        port = free_port()
        p, _, logpath = self.start(self.state, port, watch=True)
        wait_until(lambda: "ready in" in read(logpath), 60, "ringseed first start", proc=p)
        # the watch folder adds a file only once it is SETTLE (10 s) old:
        # copy with the generator's mtime
        for name in os.listdir(self.torrents_dir):
            shutil.copy2(os.path.join(self.torrents_dir, name), self.watch)
        n = len(self.hashes)
        log(f"ringseed: {n} .torrent files in the watch folder")

        def added():
            return sum(1 for f in os.listdir(self.watch) if f.endswith(".added"))

        def progress():
            a = added()
            bad = [f for f in os.listdir(self.watch) if f.endswith(".invalid")]
            if bad:
                raise BenchError(f"ringseed refused {len(bad)} torrents, e.g. {bad[0]}; see {logpath}")
            return a >= n

        wait_until(progress, self.limit_s, f"ringseed adding {n} torrents (watch folder)",
                   period=0.5, proc=p)
        log("ringseed: all added; waiting until every one seeds (ctl list --json)")

        good = re.compile(r"(ds\d+\.bin): (\d+) of (\d+) pieces good")
        how = [None]

        def all_seeding():
            lst = self.ctl_list(self.state)
            if lst is not None:
                how[0] = "ctl list --json: state seeding"
                items = lst if isinstance(lst, list) else lst.get("torrents", [])
                seeding = sum(1 for t in items if str(t.get("state", "")).startswith("seed"))
                return len(items) == n and seeding == n
            # no ctl: every torrent's check logged complete ("K of K pieces good")
            how[0] = "the log: every torrent checked complete"
            done = {m.group(1) for m in good.finditer(read(logpath)) if m.group(2) == m.group(3)}
            return len(done) == n

        wait_until(all_seeding, self.limit_s, "ringseed: every torrent seeding", period=1, proc=p)
        log(f"ringseed: all {n} seeding ({how[0]})")
        time.sleep(6)  # the state is saved every 5 s
        took = stop(p, "ringseed", grace=STOP_WAIT_S + FIRST_STOP_S_PER_TORRENT * n)
        log(f"ringseed: stopped in {took:.1f} s")
        log(f"ringseed: loaded and stopped; log {logpath}")

    def baseline(self):
        """RSS of the daemon with 0 torrents, after ready and SETTLE_RSS_S."""
        shutil.rmtree(self.empty_state, ignore_errors=True)
        p, _, logpath = self.start(self.empty_state, free_port())
        wait_until(lambda: "ready in" in read(logpath), 60, "ringseed (0 torrents) ready", proc=p)
        time.sleep(SETTLE_RSS_S)
        rss = rss_kib(p.pid)
        stop(p, "ringseed")
        return rss

    def measure(self, probe_hash):
        port = free_port()
        p, t0, logpath = self.start(self.state, port)
        prober = Prober(port, probe_hash, self.limit_s)
        prober.start()
        ready_at = None
        end = t0 + self.limit_s
        while time.monotonic() < end:
            if p.poll() is not None:
                raise BenchError(f"ringseed exited with {p.returncode}; see {logpath}")
            if ready_at is None and "ready in" in read(logpath):
                ready_at = time.monotonic()
            if ready_at is not None and (prober.at is not None or not prober.is_alive()):
                break
            time.sleep(POLL_S)
        prober.stop_flag = True
        if ready_at is None or prober.at is None:
            stop(p, "ringseed")
            raise BenchError(f"ringseed not ready/serving within {self.limit_s} s; see {logpath}")
        rss = rss_kib(p.pid)
        time.sleep(SETTLE_RSS_S)
        rss_settled = rss_kib(p.pid)
        smaps = smaps_rollup(p.pid)
        text = read(logpath)
        stop_s = stop(p, "ringseed")
        m = re.search(r"ready in (\d+) ms", text)
        lm = re.search(r"loaded (\d+) torrents from the state database in (\d+) ms: "
                       r"(\d+) resumed without a check, (\d+) to check", text)
        return {
            "ready_s": ready_at - t0,
            "serving_s": prober.at - t0,
            "probe_tries": prober.tries,
            "rss_kib": rss,
            "rss_settled_kib": rss_settled,
            "smaps": smaps,
            "self_ready_ms": int(m.group(1)) if m else None,
            "loaded": int(lm.group(1)) if lm else None,
            "resumed": int(lm.group(3)) if lm else None,
            "to_check": int(lm.group(4)) if lm else None,
            "stop_s": stop_s,
            "log": logpath,
        }


def read(path):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


# ------------------------------------------------------------ qBittorrent


def multipart(fields, files):
    boundary = "----dsbench" + os.urandom(8).hex()
    out = []
    for k, v in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    for name, body in files:
        out.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="torrents"; filename="{name}"\r\n'
            f"Content-Type: application/x-bittorrent\r\n\r\n".encode() + body + b"\r\n"
        )
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


class QbtApi:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}/api/v2/"
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
            urllib.request.ProxyHandler({}),
        )

    def call(self, path, data=None, ctype=None, timeout=30):
        req = urllib.request.Request(self.base + path, data=data)
        if ctype:
            req.add_header("Content-Type", ctype)
        with self.opener.open(req, timeout=timeout) as r:
            return r.read()

    def post(self, path, fields, timeout=30):
        return self.call(path, urllib.parse.urlencode(fields).encode(),
                         "application/x-www-form-urlencoded", timeout)

    def answers(self):
        try:
            self.call("app/version", timeout=2)
            return True
        except (OSError, urllib.error.URLError):
            return False

    def login(self):
        try:
            self.post("auth/login", {"username": "admin", "password": "adminadmin"})
        except (OSError, urllib.error.URLError):
            pass  # LocalHostAuth is off: the API answers without a session

    def states(self):
        return json.loads(self.call("torrents/info", timeout=120))


class Stragglers:
    """Which of the N torrents qBittorrent does not report seeding yet.
    It asks `/api/v2/torrents/info` only about those (`hashes=`, at most
    STATE_CHUNK a query): qBittorrent 4.5 serializes every torrent a query
    matches, and a list of all 10,000 takes its main thread 1-3 s here
    (the sync/maindata diff as much), which would slow the very start being
    measured. A torrent seen seeding is not asked about again (nothing
    stops or rechecks one during the bench)."""

    def __init__(self, api, hashes):
        self.api = api
        self.left = set(hashes)
        self.unasked = set(hashes)
        self.counts = {}
        # send time of the last query that found one not seeding (or not
        # listed): all were seeding only after it; receive time of the last
        # query: all were seeding by then
        self.last_miss_sent = None
        self.last_answer = None

    def query(self, hashes):
        """One query about these torrents; drops those seen seeding from
        `left`; returns the state counts (`not listed yet` for the ones
        qBittorrent does not know yet)."""
        body = urllib.parse.urlencode({"hashes": "|".join(hashes)}).encode()
        sent = time.monotonic()
        got = json.loads(self.api.call("torrents/info", body,
                                       "application/x-www-form-urlencoded", timeout=120))
        self.last_answer = time.monotonic()
        counts, seeding = {}, 0
        for t in got:
            counts[t["state"]] = counts.get(t["state"], 0) + 1
            if t["state"] in QBT_SEEDING:
                self.left.discard(t["hash"])
                self.unasked.discard(t["hash"])
                seeding += 1
        if seeding < len(hashes):
            self.last_miss_sent = sent
        counts["not listed yet"] = len(hashes) - sum(counts.values())
        return counts

    def sweep(self):
        """Asks again about those seen not seeding (few, so quick), then
        about the next STATE_CHUNK never asked about; returns how many are
        left. Asking the stragglers first each time keeps the bounds of the
        ready time about one query apart."""
        counts = {}
        stragglers = sorted(self.left - self.unasked)
        for i in range(0, len(stragglers), STATE_CHUNK):
            for k, v in self.query(stragglers[i : i + STATE_CHUNK]).items():
                counts[k] = counts.get(k, 0) + v
        if self.unasked:
            chunk = sorted(self.unasked)[:STATE_CHUNK]
            self.unasked.difference_update(chunk)
            for k, v in self.query(chunk).items():
                counts[k] = counts.get(k, 0) + v
        counts["never asked yet"] = len(self.unasked)
        self.counts = counts
        return len(self.left)


class Qbt:
    def __init__(self, binary, work, torrents_dir, data_dir, hashes, limit_s):
        self.bin = binary
        self.work = os.path.join(work, "qbt")
        self.profile = os.path.join(self.work, "profile")
        self.empty_profile = os.path.join(self.work, "profile-empty")
        self.torrents_dir = torrents_dir
        self.data = data_dir
        self.hashes = hashes
        self.limit_s = limit_s
        self.runs = 0
        os.makedirs(self.work)

    def write_config(self, profile, peer_port, web_port):
        d = os.path.join(profile, "qBittorrent", "config")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "qBittorrent.conf")
        # keep what qBittorrent wrote (it rewrites the file on exit), but
        # set the ports and the bench's settings every start
        conf = f"""[LegalNotice]
Accepted=true

[Network]
PortForwardingEnabled=false

[BitTorrent]
Session\\Port={peer_port}
Session\\Interface=lo
Session\\InterfaceName=lo
Session\\InterfaceAddress=127.0.0.1
Session\\DHTEnabled=false
Session\\LSDEnabled=false
Session\\PeXEnabled=false
Session\\QueueingSystemEnabled=false
Session\\BTProtocol=TCP
Session\\DefaultSavePath={self.data}
Session\\DisableAutoTMMByDefault=true
Session\\AddTorrentPaused=false
Session\\AnonymousModeEnabled=false
Session\\GlobalMaxRatio=-1
Session\\GlobalMaxSeedingMinutes=-1

[Preferences]
Connection\\PortRangeMin={peer_port}
Connection\\UPnP=false
Connection\\ResolvePeerCountries=false
WebUI\\Address=127.0.0.1
WebUI\\Port={web_port}
WebUI\\LocalHostAuth=false
WebUI\\CSRFProtection=false
WebUI\\HostHeaderValidation=false
WebUI\\UseUPnP=false
"""
        with open(path, "w") as f:
            f.write(conf)

    def start(self, profile):
        self.runs += 1
        peer_port, web_port = free_port(), free_port()
        self.write_config(profile, peer_port, web_port)
        logpath = os.path.join(self.work, f"qbt-{self.runs}.log")
        argv = [self.bin, f"--profile={profile}", f"--webui-port={web_port}"]
        env = dict(os.environ, HOME=profile, XDG_CONFIG_HOME=os.path.join(profile, "xdg"))
        p, t = spawn(argv, logpath, env)
        return p, t, QbtApi(web_port), peer_port, logpath

    def check_prefs(self, api):
        prefs = json.loads(api.call("app/preferences"))
        want = {"dht": False, "pex": False, "lsd": False, "upnp": False, "queueing_enabled": False}
        bad = {k: prefs.get(k) for k, v in want.items() if prefs.get(k) != v}
        if bad:
            raise BenchError(f"qBittorrent did not take the bench settings: {bad}")
        return prefs

    def first_load(self):
        p, _, api, _, logpath = self.start(self.profile)
        wait_until(api.answers, 60, "qBittorrent Web API", period=0.2, proc=p)
        api.login()
        prefs = self.check_prefs(api)
        log(f"qBittorrent: listening on {prefs.get('listen_port')} "
            f"({prefs.get('current_network_interface')!r}/{prefs.get('current_interface_address')!r}); "
            f"adding {len(self.hashes)} torrents, skip_checking")
        names = sorted(os.listdir(self.torrents_dir))
        for i in range(0, len(names), ADD_BATCH):
            files = []
            for nm in names[i : i + ADD_BATCH]:
                with open(os.path.join(self.torrents_dir, nm), "rb") as f:
                    files.append((nm, f.read()))
            body, ctype = multipart(
                {"savepath": self.data, "skip_checking": "true", "paused": "false",
                 "autoTMM": "false", "contentLayout": "Original"}, files)
            r = api.call("torrents/add", body, ctype, timeout=120)
            if r.strip() != b"Ok.":
                raise BenchError(f"qBittorrent add answered {r[:200]!r}")
        n = len(self.hashes)
        last = [None]

        def all_seeding():
            st = api.states()
            counts = {}
            for t in st:
                counts[t["state"]] = counts.get(t["state"], 0) + 1
            if counts != last[0]:
                log(f"qBittorrent: {counts}")
                last[0] = counts
            return len(st) == n and sum(counts.get(s, 0) for s in QBT_SEEDING) == n

        wait_until(all_seeding, self.limit_s, f"qBittorrent: {n} torrents seeding", period=1, proc=p)
        # qBittorrent writes each added torrent's resume file in the
        # background (with an fsync each); an exit before they are all
        # written loses the rest: wait for them, as ringseed's save below
        fr = os.path.join(self.profile, "qBittorrent", "data", "BT_backup")

        def resume_files():
            if not os.path.isdir(fr):
                return 0
            return sum(1 for f in os.listdir(fr) if f.endswith(".fastresume"))

        t = time.monotonic()
        wait_until(lambda: resume_files() >= n, self.limit_s, f"qBittorrent: {n} resume files",
                   period=1, proc=p)
        log(f"qBittorrent: {n} resume files written {time.monotonic() - t:.1f} s after all seeded")
        took = stop(p, "qBittorrent", grace=STOP_WAIT_S + FIRST_STOP_S_PER_TORRENT * n)
        nres = resume_files()
        log(f"qBittorrent: stopped in {took:.1f} s; {nres} .fastresume files in {fr}")
        if nres != n:
            raise BenchError(f"qBittorrent wrote {nres} resume files, not {n}: see {logpath}")

    def baseline(self):
        shutil.rmtree(self.empty_profile, ignore_errors=True)
        p, _, api, _, logpath = self.start(self.empty_profile)
        wait_until(api.answers, 60, "qBittorrent (0 torrents) Web API", period=0.2, proc=p)
        time.sleep(SETTLE_RSS_S)
        rss = rss_kib(p.pid)
        stop(p, "qBittorrent")
        return rss

    def measure(self, probe_hash):
        p, t0, api, peer_port, logpath = self.start(self.profile)
        prober = Prober(peer_port, probe_hash, self.limit_s)
        prober.start()
        n = len(self.hashes)
        end = t0 + self.limit_s
        api_at = ready_at = None
        last_counts = None
        sg = Stragglers(api, self.hashes)
        polls = []
        ready_lo = None
        while time.monotonic() < end:
            if p.poll() is not None:
                raise BenchError(f"qBittorrent exited with {p.returncode}; see {logpath}")
            if api_at is None:
                if api.answers():
                    api_at = time.monotonic()
                else:
                    time.sleep(POLL_S)
                continue
            sent = time.monotonic()
            try:
                left = sg.sweep()
            except (OSError, urllib.error.URLError, ValueError):
                time.sleep(QBT_POLL_S)
                continue
            last_counts = sg.counts
            polls.append(time.monotonic() - sent)
            if os.environ.get("BENCH_DEBUG"):
                log(f"qBittorrent at {sent - t0:.2f} s: {sg.counts}")
            if left == 0:
                # all seeding: after the last query that still found one
                # that was not, and before the last answer
                ready_at = sg.last_answer
                ready_lo = sg.last_miss_sent if sg.last_miss_sent is not None else api_at
                break
            if not sg.unasked:  # only stragglers left: ask every QBT_POLL_S
                time.sleep(max(0.0, QBT_POLL_S - (time.monotonic() - sent)))
        if ready_at is not None:
            wait_until(lambda: prober.at is not None or not prober.is_alive(),
                       max(1.0, end - time.monotonic()), "qBittorrent serving probe", proc=p)
        prober.stop_flag = True
        if ready_at is None or prober.at is None:
            stop(p, "qBittorrent")
            raise BenchError(f"qBittorrent not ready/serving within {self.limit_s} s "
                             f"(last states {last_counts}); see {logpath}")
        rss = rss_kib(p.pid)
        time.sleep(SETTLE_RSS_S)
        rss_settled = rss_kib(p.pid)
        smaps = smaps_rollup(p.pid)
        stop_s = stop(p, "qBittorrent")
        return {
            "api_s": api_at - t0,
            "ready_s": ready_at - t0,
            "ready_lo_s": ready_lo - t0,
            "poll_s_max": max(polls) if polls else None,
            "polls": len(polls),
            "serving_s": prober.at - t0,
            "probe_tries": prober.tries,
            "rss_kib": rss,
            "rss_settled_kib": rss_settled,
            "smaps": smaps,
            "states": last_counts,
            "stop_s": stop_s,
            "log": logpath,
        }


# ----------------------------------------------------------------- report


def fmt(xs, unit_fmt="{:.2f}"):
    """`median (min-max)` of the figures, `-` when there are none."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    md, lo, hi = statistics.median(xs), min(xs), max(xs)
    return f"{unit_fmt.format(md)} ({unit_fmt.format(lo)}-{unit_fmt.format(hi)})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ringseed", required=True)
    ap.add_argument("--qbt", required=True)
    ap.add_argument("--tmp", default=os.environ.get("TMPDIR", "/tmp"))
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--timeout", type=float, default=600, help="limit on one load or start, s")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--only", choices=["both", "ringseed", "qbt"], default="both")
    ap.add_argument("--json", help="also write the raw results here")
    a = ap.parse_args()
    if a.count < 1 or a.rounds < 1:
        raise BenchError("--count and --rounds must be at least 1")

    work = tempfile.mkdtemp(prefix="ringseed-daemon-start-", dir=a.tmp)
    try:
        log(f"work dir {work}; generating {a.count} torrents")
        t = time.monotonic()
        hashes, total = generate(work, a.count, a.seed)
        log(f"generated {a.count} torrents, {total / 2**20:.1f} MiB of data, in {time.monotonic() - t:.1f} s")
        tors, data = os.path.join(work, "torrents"), os.path.join(work, "data")
        clients = []
        if a.only in ("both", "ringseed"):
            clients.append(("ringseed", Ringseed(a.ringseed, work, tors, data, hashes, a.timeout)))
        if a.only in ("both", "qbt"):
            clients.append(("qBittorrent", Qbt(a.qbt, work, tors, data, hashes, a.timeout)))
        for name, c in clients:
            t = time.monotonic()
            c.first_load()
            log(f"{name}: first load (not measured) took {time.monotonic() - t:.1f} s")
        rng = random.Random(a.seed + 1)
        res = {name: {"base": [], "runs": []} for name, _ in clients}
        for r in range(a.rounds):
            probe = rng.choice(hashes)
            for name, c in clients:
                base = c.baseline()
                m = c.measure(probe)
                m["base_kib"] = base
                res[name]["base"].append(base)
                res[name]["runs"].append(m)
                log(f"round {r + 1} {name}: ready {m['ready_s']:.3f} s, serving {m['serving_s']:.3f} s, "
                    f"RSS {m['rss_kib']} KiB (0 torrents: {base} KiB), settled {m['rss_settled_kib']} KiB")
        report(a, res, total)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"count": a.count, "rounds": a.rounds, "results": res}, f, indent=1)
    finally:
        stop_all()
        if a.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(a, res, total):
    n = a.count
    print(f"Daemon start with {n} torrents ({total / 2**20:.0f} MiB of data), {a.rounds} rounds; "
          "median (min-max)\n")
    print("| client | ready s | serving s | RSS MiB at ready+serving | RSS MiB 0 torrents "
          "| KiB per torrent | KiB per torrent, settled | stop s (SIGTERM to exit) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    per = {}
    for name, d in res.items():
        runs = d["runs"]
        ready = [m["ready_s"] for m in runs]
        serving = [m["serving_s"] for m in runs]
        kib = [(m["rss_kib"] - m["base_kib"]) / n for m in runs]
        kib_s = [(m["rss_settled_kib"] - m["base_kib"]) / n for m in runs]
        per[name] = (ready, serving, kib, kib_s)
        print(f"| {name} | {fmt(ready)} | {fmt(serving)} | {fmt([m['rss_kib'] / 1024 for m in runs], '{:.1f}')} "
              f"| {fmt([b / 1024 for b in d['base']], '{:.1f}')} | {fmt(kib)} | {fmt(kib_s)} "
              f"| {fmt([m['stop_s'] for m in runs], '{:.1f}')} |")
    print()
    if "ringseed" in res:
        runs = res["ringseed"]["runs"]
        print("ringseed: own `ready in` figure (ms): "
              + ", ".join(str(m["self_ready_ms"]) for m in runs)
              + "; loaded/resumed without a check/to check: "
              + ", ".join(f"{m['loaded']}/{m['resumed']}/{m['to_check']}" for m in runs))
    if "qBittorrent" in res:
        runs = res["qBittorrent"]["runs"]
        print("qBittorrent: Web API answering at (s): " + ", ".join(f"{m['api_s']:.2f}" for m in runs)
              + "; ready (the table's figure is the upper bound) between (s): "
              + ", ".join(f"{m['ready_lo_s']:.2f}-{m['ready_s']:.2f}" for m in runs)
              + "; state sweeps, longest (s): "
              + ", ".join(f"{m['polls']}, {m['poll_s_max']:.2f}" for m in runs)
              + f"; states seen last: {runs[-1]['states']}")
    if "ringseed" in per and "qBittorrent" in per:
        r, q = per["ringseed"], per["qBittorrent"]
        mr = statistics.median
        q_lo = [m["ready_lo_s"] for m in res["qBittorrent"]["runs"]]
        print()
        ratio = f"ratio qBittorrent/ringseed (medians): ready {mr(q[0]) / mr(r[0]):.1f}x " \
            f"({mr(q_lo) / mr(r[0]):.1f}x on qBittorrent's lower bound), " \
            f"serving {mr(q[1]) / mr(r[1]):.1f}x"
        if mr(r[2]) > 0 and mr(r[3]) > 0:
            ratio += f", KiB per torrent {mr(q[2]) / mr(r[2]):.1f}x (settled {mr(q[3]) / mr(r[3]):.1f}x)"
        print(ratio)


if __name__ == "__main__":
    def on_term(_sig, _frm):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        main()
    except BenchError as e:
        print(f"daemon start bench: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
