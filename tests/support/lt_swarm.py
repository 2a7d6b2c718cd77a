#!/usr/bin/python3
"""A loopback swarm of libtorrent sessions for the discovery tests (issue 13:
DHT, BEP 9 magnets, PEX) and the encryption tests (issue 14: MSE/PE), each
session on its own 127.0.0.0/8 address.

Usage: /usr/bin/python3 lt_swarm.py --node SPEC [--node SPEC]...
           [--bootstrap IP:PORT]... [--deadline SECONDS] [--exit-when-done]

A SPEC is comma-separated key=value pairs:
  ip=IP             the session's address (required; TCP and DHT UDP)
  port=N            its port (default 0: the system picks one, no race)
  role=ROLE         dht      a DHT node only, no torrent
                    seed     seeds torrent=PATH from save=DIR (data checked)
                    magnet   downloads magnet=URI into save=DIR (BEP 9 first)
                    download downloads torrent=PATH into save=DIR
  dht=0|1           the DHT on this session (default 1 for role=dht, else 0)
  pex=0|1           ut_pex on this session (default 1)
  up=BYTES         upload rate limit in bytes/s (default 0: none), to keep
                    a download running long enough for PEX to be seen
  down=BYTES        download rate limit in bytes/s (default 0: none), to
                    keep a connection up long enough for get_peer_info to
                    see it (and how it is encrypted) before it is done
  peers=A/B/...     IP:PORT addresses to connect_peer at once ('/' between)
  enc=MODE          protocol encryption (MSE/PE) of the session:
                    off          libtorrent's defaults, nothing set (default)
                    forced_rc4   in_enc_policy and out_enc_policy pe_forced,
                                 allowed_enc_level rc4, prefer_rc4 on: every
                                 connection obfuscated and RC4 throughout
                    forced_both  both policies pe_forced, allowed_enc_level
                                 both, prefer_rc4 off: every connection
                                 obfuscated; a peer offering both levels
                                 gets plaintext after the handshake
                    disabled     both policies pe_disabled: plaintext only
  torrent= magnet= save=   as above (a magnet may hold commas only
                    percent-encoded)

Every DHT session gets the others with add_dht_node, and every --bootstrap
address both as dht_bootstrap_nodes and with add_dht_node (libtorrent never
puts its bootstrap nodes in its routing table): loopback only, never the
public routers. Routing and search are not restricted per IP (all of
127.0.0.0/24 would otherwise count as one node). A torrent of a session
with the DHT on is announced (a seed) or looked up (a download) with
force_dht_announce once the DHT has nodes, and again every ANNOUNCE_EVERY_S
(a download until it is done). LSD, UPnP and NAT-PMP are off everywhere.

Output, one JSON object a line on stdout (`event` names the kind):
  ready    {"nodes": [{"node", "role", "ip", "port"}]} once every session
           listens (port: TCP and DHT UDP alike) and every seed has checked
  progress {"node", "progress", "state", "peers", "has_metadata",
           "dht_nodes"} per session with a torrent, and {"node",
           "dht_nodes"} for a DHT-only one: checked about once a second,
           written when it changed or PROGRESS_REPEAT_S after the last
           (so that a failing test's log stays short)
  peers    {"node", "peers": [{"ip", "port", "source", "connected", "enc"}]}
           whenever a session's peers change: every peer ever listed by
           get_peer_info, `source` the OR of its peer_source_flags
           (tracker 1, dht 2, pex 4, lsd 8, resume 16) over time; `enc`
           how its connection was seen carried: "rc4" (peer_info flag
           rc4_encrypted: MSE with RC4), "plaintext" (plaintext_encrypted:
           the MSE handshake, then plaintext), "none" (a plain BitTorrent
           handshake, or not known yet: a peer seen only in an alert). Once
           "rc4" or "plaintext" it stays so (a later reconnection in the
           clear does not hide that one was obfuscated); `connected`
           true once a connection was accepted from it, or once one to it
           is past its handshakes (its ut_pex entry, for one, is only sent
           then), and stays so
  done     {"node", "pieces", "bytes"} when a download has every piece
           checked and written
  error    {"node", "message"} a libtorrent error (the run then fails)
  exit     {"code"} last line
Log lines go to stderr prefixed `lt_swarm:`.

Exit status: 0 when --exit-when-done and every download is done, or when
the deadline passes with every download done (a swarm of seeds and DHT
nodes only runs to its deadline, or until SIGTERM: status 0); 1 on an
error; 2 when the deadline passes with a download unfinished. Every exit
goes through lt_exit (os._exit after flushing): libtorrent's objects are
never torn down, which could crash (signal 11).
"""

import argparse
import json
import sys
import time
import warnings

import libtorrent as lt

import lt_exit

ALERT_WAIT_MS = 100
PROGRESS_EVERY_S = 1.0
PROGRESS_REPEAT_S = 30.0
ANNOUNCE_EVERY_S = 5.0
# A download given peers= that has no peer dials them again this often:
# libtorrent retries a failed peer only after min_reconnect_time (60 s)
# times its fail count, longer than a test waits, so one connection lost
# to a loaded machine at the start would fail the test.
REDIAL_EVERY_S = 5.0
# session.status() (for dht_nodes) is deprecated in 2.0 but still right.
warnings.filterwarnings("ignore", category=DeprecationWarning)
ROLES = ("dht", "seed", "magnet", "download")
ENC_MODES = ("off", "forced_rc4", "forced_both", "disabled")
SOURCE_FLAGS = (
    (lt.peer_info.tracker, 1),
    (lt.peer_info.dht, 2),
    (lt.peer_info.pex, 4),
    (lt.peer_info.lsd, 8),
    (lt.peer_info.resume_data, 16),
)


def log(msg):
    print(f"lt_swarm: {msg}", file=sys.stderr, flush=True)


def emit(event, **fields):
    fields = {"event": event, **fields}
    print(json.dumps(fields, sort_keys=True), flush=True)


def parse_spec(text):
    spec = {}
    for part in text.split(","):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise SystemExit(f"lt_swarm: bad node part {part!r} in {text!r}")
        spec[key.strip()] = value
    if "ip" not in spec:
        raise SystemExit(f"lt_swarm: node {text!r} has no ip=")
    role = spec.setdefault("role", "dht")
    if role not in ROLES:
        raise SystemExit(f"lt_swarm: unknown role {role!r}")
    spec["port"] = int(spec.get("port", "0"))
    spec["dht"] = spec.get("dht", "1" if role == "dht" else "0") == "1"
    spec["pex"] = spec.get("pex", "1") == "1"
    spec["up"] = int(spec.get("up", "0"))
    spec["down"] = int(spec.get("down", "0"))
    spec["peers"] = [p for p in spec.get("peers", "").split("/") if p]
    spec["enc"] = spec.get("enc", "off")
    if spec["enc"] not in ENC_MODES:
        raise SystemExit(f"lt_swarm: unknown enc={spec['enc']!r} (one of {ENC_MODES})")
    need = {"seed": ("torrent", "save"), "download": ("torrent", "save"),
            "magnet": ("magnet", "save")}.get(role, ())
    for key in need:
        if key not in spec:
            raise SystemExit(f"lt_swarm: role {role} needs {key}=")
    return spec


def endpoint(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def enc_settings(mode):
    """The settings_pack entries of an enc= mode (none for off)."""
    forced = int(lt.enc_policy.pe_forced)
    if mode == "forced_rc4":
        return {"in_enc_policy": forced, "out_enc_policy": forced,
                "allowed_enc_level": int(lt.enc_level.rc4), "prefer_rc4": True}
    if mode == "forced_both":
        return {"in_enc_policy": forced, "out_enc_policy": forced,
                "allowed_enc_level": int(lt.enc_level.both), "prefer_rc4": False}
    if mode == "disabled":
        off = int(lt.enc_policy.pe_disabled)
        return {"in_enc_policy": off, "out_enc_policy": off}
    return {}


def enc_of(flags):
    """How a peer_info's connection is carried: rc4, plaintext or none."""
    if flags & lt.peer_info.rc4_encrypted:
        return "rc4"
    if flags & lt.peer_info.plaintext_encrypted:
        return "plaintext"
    return "none"


def source_bits(flags):
    bits = 0
    for flag, bit in SOURCE_FLAGS:
        if flags & flag:
            bits |= bit
    return bits


class Node:
    def __init__(self, index, spec, bootstrap):
        self.index = index
        self.spec = spec
        self.role = spec["role"]
        settings = {
            "listen_interfaces": f"{spec['ip']}:{spec['port']}",
            "outgoing_interfaces": spec["ip"],
            "enable_dht": spec["dht"],
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "allow_multiple_connections_per_ip": True,
            "announce_ip": spec["ip"],
            "dht_bootstrap_nodes": ",".join(bootstrap),
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_ignore_dark_internet": False,
            "dht_prefer_verified_node_ids": False,
            # connect/peer: every peer that connects or leaves is seen
            # (get_peer_info alone misses one that finishes between polls).
            "alert_mask": lt.alert.category_t.error_notification
            | lt.alert.category_t.status_notification
            | lt.alert.category_t.connect_notification
            | lt.alert.category_t.peer_notification,
        }
        settings.update(enc_settings(spec["enc"]))
        # flags=0: no default plugins; add back all but ut_pex when PEX is off.
        flags = 1 if spec["pex"] else 0
        self.ses = lt_exit.keep(lt.session(settings, flags))
        if not spec["pex"]:
            self.ses.add_extension("ut_metadata")
            self.ses.add_extension("smart_ban")
        self.handle = None
        self.ti = None
        self.ready = self.role == "dht"
        self.done = self.role in ("dht", "seed")
        self.peers = {}
        self.last_announce = None
        self.last_redial = None
        self.last_progress = None  # (fields, when written)
        if self.role in ("seed", "download"):
            self.ti = lt.torrent_info(spec["torrent"])
            atp = {"ti": self.ti, "save_path": spec["save"]}
            self.handle = self.ses.add_torrent(atp)
        elif self.role == "magnet":
            atp = lt.parse_magnet_uri(spec["magnet"])
            atp.save_path = spec["save"]
            self.handle = self.ses.add_torrent(atp)
        if spec["up"] and self.handle is not None:
            # The torrent's own limit: the session's would not apply to
            # peers on the local network (loopback).
            self.handle.set_upload_limit(spec["up"])
        if spec["down"] and self.handle is not None:
            self.handle.set_download_limit(spec["down"])
        for p in spec["peers"]:
            self.handle.connect_peer(endpoint(p))

    def port(self):
        return self.ses.listen_port()

    def dht_nodes(self):
        if not self.spec["dht"]:
            return 0
        return self.ses.status().dht_nodes

    def poll(self, now):
        """Pops alerts, checks the torrent; False on an error."""
        changed = False
        for a in self.ses.pop_alerts():
            if a.category() & lt.alert.category_t.error_notification:
                log(f"node {self.index}: {a.message()}")
            if isinstance(a, (lt.peer_connect_alert, lt.peer_disconnected_alert,
                              lt.incoming_connection_alert)):
                where = getattr(a, "endpoint", None) or getattr(a, "ip", None)
                # An incoming connection was accepted; an outgoing one may
                # still fail (get_peer_info says when it connected).
                incoming = isinstance(a, lt.incoming_connection_alert)
                if where and self.note_peer(where[0], where[1], 0, incoming, "none"):
                    changed = True
        if self.handle is None:
            return True
        st = self.handle.status()
        if st.errc.value() != 0:
            emit("error", node=self.index, message=st.errc.message())
            return False
        if self.role == "seed" and not self.ready and st.is_seeding:
            if st.num_pieces != self.ti.num_pieces():
                emit("error", node=self.index, message="seed data does not check")
                return False
            self.ready = True
        if self.role == "magnet" and not self.ready:
            self.ready = True
        if self.role == "download" and not self.ready:
            self.ready = True
        # Seeds announce; downloads look up again (libtorrent would wait
        # dht_announce_interval, 15 min, after a first lookup that found
        # nobody, e.g. one made before the seed had announced).
        lookup = self.role == "seed" or not self.done
        if self.spec["dht"] and self.ready and lookup:
            due = self.last_announce is None or now - self.last_announce >= ANNOUNCE_EVERY_S
            if due and self.dht_nodes() > 0:
                self.handle.force_dht_announce()
                self.last_announce = now
        if self.spec["peers"] and not self.done and self.role in ("download", "magnet"):
            if self.last_redial is None:
                self.last_redial = now
            elif now - self.last_redial >= REDIAL_EVERY_S:
                self.last_redial = now
                if st.num_peers == 0:
                    log(f"node {self.index}: no peer; dialling {' '.join(self.spec['peers'])} again")
                    for p in self.spec["peers"]:
                        self.handle.connect_peer(endpoint(p))
        if not self.done and st.has_metadata and st.is_seeding:
            total = self.handle.torrent_file().num_pieces()
            # is_seeding comes once every piece passed its check; the last
            # writes may still be queued: done once num_pieces says so too.
            if st.num_pieces == total:
                self.done = True
                emit("done", node=self.index, pieces=st.num_pieces,
                     bytes=st.total_payload_download)
        for p in self.handle.get_peer_info():
            ip, port = p.ip
            # Past TCP connect and the (MSE and) BitTorrent handshakes: a
            # peer in its handshake is left out of this session's PEX.
            connected = not (p.flags & (lt.peer_info.connecting | lt.peer_info.handshake))
            enc = enc_of(p.flags)
            if self.note_peer(ip, port, source_bits(p.source), connected, enc):
                changed = True
        if changed:
            emit("peers", node=self.index, peers=sorted(
                self.peers.values(), key=lambda e: (e["ip"], e["port"])))
        return True

    def note_peer(self, ip, port, source, connected, enc):
        """Adds what is known of a peer; True when that changed anything."""
        key = f"{ip}:{port}"
        entry = self.peers.setdefault(key, {"ip": ip, "port": port, "source": 0,
                                            "connected": False, "enc": "none",
                                            "new": True})
        new = entry.pop("new", False)
        bits = entry["source"] | source
        up = entry["connected"] or connected
        # An obfuscated connection, once seen, is what the entry reports.
        level = enc if entry["enc"] == "none" else entry["enc"]
        if (new or bits != entry["source"] or up != entry["connected"]
                or level != entry["enc"]):
            entry["source"] = bits
            entry["connected"] = up
            entry["enc"] = level
            return True
        return False

    def progress(self, now):
        if self.handle is None:
            fields = {"dht_nodes": self.dht_nodes()}
        else:
            st = self.handle.status()
            fields = {"progress": round(st.progress, 4), "state": str(st.state),
                      "peers": st.num_peers, "has_metadata": st.has_metadata,
                      "dht_nodes": self.dht_nodes()}
        last = self.last_progress
        if last is not None and last[0] == fields and now - last[1] < PROGRESS_REPEAT_S:
            return
        self.last_progress = (fields, now)
        emit("progress", node=self.index, **fields)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--node", action="append", default=[], required=True)
    ap.add_argument("--bootstrap", action="append", default=[])
    ap.add_argument("--deadline", type=float, default=90.0)
    ap.add_argument("--exit-when-done", action="store_true")
    args = ap.parse_args()
    # Stopped by the test (SIGTERM): a normal end for a swarm of seeds.
    lt_exit.on_signal(0)
    end = time.monotonic() + args.deadline
    specs = [parse_spec(s) for s in args.node]
    nodes = [Node(i, s, args.bootstrap) for i, s in enumerate(specs)]

    # Wait for every session to listen and every seed to check its data.
    while not all(n.ready and n.port() > 0 for n in nodes):
        if time.monotonic() >= end:
            emit("error", node=-1, message="sessions not ready before the deadline")
            return 1
        for n in nodes:
            if not n.poll(time.monotonic()):
                return 1
        time.sleep(ALERT_WAIT_MS / 1000)

    # Link the DHT: every DHT session learns of every other and of the
    # bootstrap nodes given.
    dht = [n for n in nodes if n.spec["dht"]]
    for n in dht:
        for m in dht:
            if m is not n:
                n.ses.add_dht_node((m.spec["ip"], m.port()))
        for b in args.bootstrap:
            n.ses.add_dht_node(endpoint(b))
    emit("ready", nodes=[{"node": n.index, "role": n.role, "ip": n.spec["ip"],
                          "port": n.port()} for n in nodes])
    log("ready: " + ", ".join(f"{n.role}@{n.spec['ip']}:{n.port()}" for n in nodes))

    downloads = [n for n in nodes if n.role in ("magnet", "download")]
    next_progress = 0.0
    while True:
        now = time.monotonic()
        for n in nodes:
            if not n.poll(now):
                return 1
        if args.exit_when_done and downloads and all(n.done for n in downloads):
            return 0
        if now >= next_progress:
            next_progress = now + PROGRESS_EVERY_S
            for n in nodes:
                n.progress(now)
        if now >= end:
            unfinished = [n.index for n in downloads if not n.done]
            if unfinished:
                emit("error", node=unfinished[0],
                     message=f"deadline passed with downloads {unfinished} unfinished")
                return 2
            return 0
        nodes[0].ses.wait_for_alert(ALERT_WAIT_MS)


def run():
    code = 1
    try:
        code = main()
    finally:
        emit("exit", code=code if isinstance(code, int) else 1)
    return code


if __name__ == "__main__":
    lt_exit.run(run)
