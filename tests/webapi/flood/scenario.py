"""Drives a running Flood (`flood --auth none --qburl ...`) through Flood's
own REST API, against whatever qBittorrent Web API Flood was pointed at
(ringseed or qbittorrent-nox), and checks what Flood reports back.

    python scenario.py FLOOD_URL WORK_DIR [PART...]

PART is `main` (the default: .torrent files added, listed, tagged, stopped,
started, rechecked, deleted; the client's settings), `magnet` (a magnet
link through Flood's add-urls) or `extras` (trackers, initial seeding, file
and queue priorities, reannounce, move). Each part ends with a line `OK: ...`.
WORK_DIR is an empty folder this script fills: the torrents' data (already
complete, so the client only has to check it and seed). Each step prints one line; any failure exits 1 with the reason and
the last thing Flood answered. Every wait is bounded.
"""

import base64
import hashlib
import json
import os
import random
import sys
import time

import requests

WAIT = float(os.environ.get("FLOOD_SCENARIO_WAIT", "30"))
# How long one of the extra actions may take to show in Flood.
ACT = min(WAIT, 10.0)
PIECE = 16 * 1024


def step(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Failure(Exception):
    pass


def fail(msg):
    raise Failure(msg)


def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, list):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, dict):
        out = b"d"
        for k in sorted(v, key=lambda k: k.encode() if isinstance(k, str) else k):
            out += bencode(k) + bencode(v[k])
        return out + b"e"
    raise TypeError(type(v))


def make_torrent(base, name, files, seed):
    """Writes the files under `base` (single file: base/name; several:
    base/name/...) with random bytes and returns (.torrent bytes, hex hash)."""
    rnd = random.Random(seed)
    blob = b""
    entries = []
    for rel, size in files:
        data = bytes(rnd.getrandbits(8) for _ in range(size))
        path = os.path.join(base, name, *rel) if rel else os.path.join(base, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        blob += data
        entries.append({"length": size, "path": list(rel)})
    pieces = b"".join(hashlib.sha1(blob[i:i + PIECE]).digest() for i in range(0, len(blob), PIECE))
    info = {"name": name, "piece length": PIECE, "pieces": pieces}
    if len(files) == 1 and not files[0][0]:
        info["length"] = files[0][1]
    else:
        info["files"] = entries
    meta = bencode({"info": info, "created by": "ringseed flood test", "comment": "flood interop"})
    return meta, hashlib.sha1(bencode(info)).hexdigest()


class Flood:
    def __init__(self, url):
        self.url = url.rstrip("/")
        self.s = requests.Session()
        self.last = None

    def call(self, method, path, want=(200,), **kw):
        r = self.s.request(method, self.url + path, timeout=30, **kw)
        self.last = f"{method} {path} -> {r.status_code} {r.text[:2000]}"
        if r.status_code not in want:
            fail(f"Flood answered {self.last}")
        return r

    def torrents(self):
        r = self.call("GET", "/api/torrents")
        body = r.json()
        if not isinstance(body, dict) or not isinstance(body.get("torrents"), dict):
            fail(f"GET /api/torrents is not {{id, torrents: {{...}}}}: {r.text[:2000]}")
        return body["torrents"]

    def wait(self, what, pred, timeout=WAIT):
        """Polls the torrent list until pred(torrents) is truthy."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.torrents()
            got = pred(seen)
            if got:
                return got
            time.sleep(0.3)
        fail(f"{what}: not within {timeout}s; Flood's last torrent list: {json.dumps(seen)}")


def status_has(*words):
    def check(t):
        return t is not None and all(w in t.get("status", []) for w in words)
    return check


def main():
    flood_url, work = sys.argv[1], sys.argv[2]
    parts = sys.argv[3:] or ["main"]
    data = os.path.join(work, "data")
    os.makedirs(data, exist_ok=True)
    fl = Flood(flood_url)

    # --auth none still wants the jwt cookie that /api/auth/authenticate sets.
    fl.call("POST", "/api/auth/authenticate", json={})
    if "jwt" not in fl.s.cookies:
        fail(f"no jwt cookie from Flood: {fl.last}")
    step("authenticated to Flood")

    # Flood logs in to the client in the background: wait until it is connected.
    deadline = time.monotonic() + WAIT
    while True:
        r = fl.s.get(fl.url + "/api/client/connection-test", timeout=30)
        if r.status_code == 200 and r.json().get("isConnected") is True:
            break
        if time.monotonic() > deadline:
            fail(f"Flood never connected to the client: {r.status_code} {r.text[:500]}")
        time.sleep(0.5)
    step("Flood is connected to the client (auth/login, app/webapiVersion)")

    before = fl.torrents()
    if before:
        fail(f"the client is not empty: {json.dumps(before)}")
    step("empty torrent list (torrents/info)")
    for part in parts:
        {"main": main_part, "magnet": magnet_part, "extras": extras_part,
         "extras-ringseed": lambda fl, data: extras_part(fl, data, ringseed=True)}[part](fl, data)


def main_part(fl, data):
    settings = fl.call("GET", "/api/client/settings").json()
    if not isinstance(settings.get("directoryDefault"), str) or not settings["directoryDefault"]:
        fail(f"no default save path in Flood's client settings (app/preferences save_path): {settings}")
    step(f"client settings (app/preferences): directoryDefault={settings['directoryDefault']}")

    # A global upload limit through Flood (app/setPreferences json={"up_limit":...}), read back, undone.
    for limit in (1048576, 0):
        fl.call("PATCH", "/api/client/settings", json={"throttleGlobalUpSpeed": limit})
        got = fl.call("GET", "/api/client/settings").json().get("throttleGlobalUpSpeed")
        if got != limit:
            fail(f"upload limit set to {limit} through Flood (app/setPreferences up_limit) reads back {got!r}")
    step("global upload limit set and cleared (app/setPreferences, app/preferences)")

    # Torrent A: one file, its data at data/<name>; destination is the base path.
    meta_a, hash_a = make_torrent(data, "flood-single.bin", [((), 200 * 1024 + 123)], 1)
    # Torrent B: several files under data/<name>/; Flood's default layout
    # (isBasePath false: root_folder=true, contentLayout="undefined").
    meta_b, hash_b = make_torrent(
        data, "flood-multi", [(("a.bin",), 70 * 1024), (("sub", "b.bin"), 33 * 1024 + 7)], 2
    )
    ha, hb = hash_a.upper(), hash_b.upper()

    r = fl.call("POST", "/api/torrents/add-files", json={
        "files": [base64.b64encode(meta_a).decode()],
        "destination": data,
        "tags": ["flood"],
        "isBasePath": True,
        "isCompleted": False,
        "start": True,
    })
    if [h.upper() for h in r.json()] != [ha]:
        fail(f"add-files answered {r.text}, expected [{hash_a}]")
    step(f"added A {ha} through Flood (torrents/add multipart, torrents/setSuperSeeding)")

    r = fl.call("POST", "/api/torrents/add-files", json={
        "files": [base64.b64encode(meta_b).decode()],
        "destination": data,
        "tags": ["old"],
        "start": True,
    })
    if [h.upper() for h in r.json()] != [hb]:
        fail(f"add-files answered {r.text}, expected [{hash_b}]")
    step(f"added B {hb} through Flood")

    def both_seeding(ts):
        a, b = ts.get(ha), ts.get(hb)
        if status_has("seeding", "complete")(a) and status_has("seeding", "complete")(b):
            return a, b
        return None

    a, b = fl.wait("A and B seeding in Flood's list", both_seeding)
    for t, name, size, tags in ((a, "flood-single.bin", 200 * 1024 + 123, ["flood"]),
                                (b, "flood-multi", 70 * 1024 + 33 * 1024 + 7, ["old"])):
        problems = []
        if t.get("name") != name:
            problems.append(f"name {t.get('name')!r} != {name!r}")
        if t.get("sizeBytes") != size:
            problems.append(f"sizeBytes {t.get('sizeBytes')} != {size}")
        if t.get("percentComplete") != 100:
            problems.append(f"percentComplete {t.get('percentComplete')} != 100")
        if t.get("bytesDone") != size:
            problems.append(f"bytesDone {t.get('bytesDone')} != {size}")
        if os.path.realpath(str(t.get("directory"))) != os.path.realpath(data):
            problems.append(f"directory {t.get('directory')!r} != {data!r}")
        if t.get("tags") != tags:
            problems.append(f"tags {t.get('tags')} != {tags}")
        if t.get("comment") != "flood interop":
            problems.append(f"comment {t.get('comment')!r} (torrents/properties) != 'flood interop'")
        if t.get("isPrivate") is not False:
            problems.append(f"isPrivate {t.get('isPrivate')!r} != False")
        if not isinstance(t.get("dateAdded"), int) or t["dateAdded"] <= 0:
            problems.append(f"dateAdded {t.get('dateAdded')!r}")
        if problems:
            fail(f"Flood shows {t.get('hash')} wrongly: {'; '.join(problems)}: {json.dumps(t)}")
    step(f"both seeding in Flood's list: A status={a['status']} B status={b['status']}")

    # Torrent C: added stopped (stopped/paused=true) and "completed" (skip_checking=true):
    # listed as stopped and complete, then started: seeding.
    meta_c, hash_c = make_torrent(data, "flood-skip.bin", [((), 50 * 1024 + 1)], 3)
    hc = hash_c.upper()
    r = fl.call("POST", "/api/torrents/add-files", json={
        "files": [base64.b64encode(meta_c).decode()],
        "destination": data,
        "isBasePath": True,
        "isCompleted": True,
        "start": False,
    })
    if [h.upper() for h in r.json()] != [hc]:
        fail(f"add-files answered {r.text}, expected [{hash_c}]")
    c = fl.wait("C listed stopped", lambda ts: ts.get(hc) if status_has("stopped")(ts.get(hc))
                and "seeding" not in ts[hc]["status"] else None)
    step(f"added C {hc} stopped with skip_checking: status={c['status']} "
         f"percentComplete={c['percentComplete']}")
    fl.call("POST", "/api/torrents/start", json={"hashes": [hc]})
    fl.wait("C seeding once started", lambda ts: status_has("seeding", "complete")(ts.get(hc))
            and ts[hc]["percentComplete"] == 100)
    step("C started: seeding")
    fl.call("POST", "/api/torrents/delete", json={"hashes": [hc], "deleteData": True})
    fl.wait("C gone from the list", lambda ts: hc not in ts and ha in ts and hb in ts)
    deadline = time.monotonic() + WAIT
    while os.path.exists(os.path.join(data, "flood-skip.bin")):
        if time.monotonic() > deadline:
            fail("C's file is still there after a delete with data")
        time.sleep(0.3)
    step("C deleted with its data")

    # Details: torrents/files, sync/torrentPeers, torrents/trackers.
    det = fl.call("GET", f"/api/torrents/{ha}/details").json()
    contents = det.get("contents")
    if not (isinstance(contents, list) and len(contents) == 1
            and contents[0].get("filename") == "flood-single.bin"
            and contents[0].get("percentComplete") == 100
            and contents[0].get("sizeBytes") == 200 * 1024 + 123):
        fail(f"details of A: contents wrong: {json.dumps(det)}")
    if not isinstance(det.get("peers"), list) or not isinstance(det.get("trackers"), list):
        fail(f"details of A: peers/trackers not lists: {json.dumps(det)}")
    det_b = fl.call("GET", f"/api/torrents/{hb}/contents").json()
    names = sorted(c.get("path") for c in det_b)
    if names != ["flood-multi/a.bin", "flood-multi/sub/b.bin"]:
        fail(f"contents of B (torrents/files names): {names}")
    step("details and contents (torrents/files, sync/torrentPeers, torrents/trackers)")

    # Tags through Flood: removeTags (all: tags="") then addTags; "old" must go.
    fl.call("PATCH", "/api/torrents/tags", json={"hashes": [hb], "tags": ["x1", "y2"]})
    fl.wait("B tagged x1,y2", lambda ts: sorted(ts.get(hb, {}).get("tags", [])) == ["x1", "y2"])
    step("tags set through Flood (torrents/removeTags, torrents/addTags)")

    # Stop A, see it stopped (and B still seeding), start it again.
    fl.call("POST", "/api/torrents/stop", json={"hashes": [ha]})
    fl.wait("A stopped", lambda ts: status_has("stopped", "complete")(ts.get(ha))
            and "seeding" not in ts[ha]["status"])
    if not status_has("seeding")(fl.torrents().get(hb)):
        fail(f"B is not seeding after stopping A: {json.dumps(fl.torrents().get(hb))}")
    step("A stopped (torrents/stop or pause)")
    fl.call("POST", "/api/torrents/start", json={"hashes": [ha]})
    fl.wait("A seeding again", lambda ts: status_has("seeding", "complete")(ts.get(ha)))
    step("A started again (torrents/start or resume)")

    # Recheck A through Flood: it must end up seeding again.
    fl.call("POST", "/api/torrents/check-hash", json={"hashes": [ha]})
    fl.wait("A seeding after a recheck", lambda ts: status_has("seeding", "complete")(ts.get(ha)))
    step("A rechecked (torrents/recheck) and seeding")

    # Delete A keeping its data; B with its data.
    path_a = os.path.join(data, "flood-single.bin")
    path_b = os.path.join(data, "flood-multi")
    fl.call("POST", "/api/torrents/delete", json={"hashes": [ha], "deleteData": False})
    fl.wait("A gone from the list", lambda ts: ha not in ts and hb in ts)
    time.sleep(1)
    if not os.path.isfile(path_a):
        fail(f"{path_a} was removed by a delete without data")
    step("A deleted without its data (torrents/delete deleteFiles=false); its file is still there")

    fl.call("POST", "/api/torrents/delete", json={"hashes": [hb], "deleteData": True})
    fl.wait("B gone from the list", lambda ts: not ts)
    deadline = time.monotonic() + WAIT
    while any(os.path.exists(os.path.join(path_b, *p)) for p in (("a.bin",), ("sub", "b.bin"))):
        if time.monotonic() > deadline:
            fail(f"B's files under {path_b} are still there after a delete with data: "
                 f"{sorted(os.listdir(path_b))}")
        time.sleep(0.3)
    step("B deleted with its data (torrents/delete deleteFiles=true); its files are gone")

    if fl.torrents():
        fail(f"Flood's list is not empty at the end: {json.dumps(fl.torrents())}")
    print("OK: Flood added, listed, tagged, stopped, started, rechecked and deleted torrents", flush=True)


def magnet_part(fl, data):
    # A magnet link through Flood's add-urls (multipart `urls`): listed as
    # downloading (metaDL: no peer has its metadata), then deleted.
    hm = hashlib.sha1(b"flood magnet").hexdigest().upper()
    fl.call("POST", "/api/torrents/add-urls", want=(200, 202), json={
        "urls": [f"magnet:?xt=urn:btih:{hm.lower()}&dn=flood-magnet"],
        "destination": data,
        "start": True,
    })
    m = fl.wait("the magnet listed as downloading",
                lambda ts: ts.get(hm) if status_has("downloading")(ts.get(hm)) else None)
    if m.get("percentComplete") != 0:
        fail(f"the magnet without metadata shows percentComplete {m.get('percentComplete')}: {json.dumps(m)}")
    step(f"magnet added through Flood (torrents/add urls=): status={m['status']}")
    fl.call("POST", "/api/torrents/delete", json={"hashes": [hm], "deleteData": True})
    fl.wait("the magnet gone from the list", lambda ts: hm not in ts)
    step("magnet deleted")
    if fl.torrents():
        fail(f"Flood's list is not empty at the end: {json.dumps(fl.torrents())}")
    print("OK: Flood added and deleted a magnet link", flush=True)


def extras_part(fl, data, ringseed=False):
    """The rest of Flood's torrent actions, on one seeding torrent D.

    With ringseed=True, the features ringseed does not have yet (tracker
    edits, file priorities: refused with 409, which Flood turns into an
    error; super seeding: accepted and left off) are checked to answer so,
    as docs/api.md says, and the torrent to be unchanged."""
    meta_d, hash_d = make_torrent(data, "flood-extra", [(("x.bin",), 40 * 1024), (("y.bin",), 20 * 1024 + 5)], 4)
    hd = hash_d.upper()
    fl.call("POST", "/api/torrents/add-files", json={
        "files": [base64.b64encode(meta_d).decode()], "destination": data, "start": True})
    fl.wait("D seeding", lambda ts: status_has("seeding", "complete")(ts.get(hd)))
    step(f"added D {hd}: seeding")

    checks = []

    def refused_by_ringseed():
        tracker = "http://127.0.115.99:1/announce"
        r = fl.call("PATCH", "/api/torrents/trackers", want=(500,),
                    json={"hashes": [hd], "trackers": [tracker]})
        urls = [t.get("url") for t in fl.call("GET", f"/api/torrents/{hd}/trackers").json()]
        if tracker in urls:
            fail(f"a tracker ringseed refused is listed: {urls}")
        fl.call("PATCH", "/api/torrents/initial-seeding", json={"hashes": [hd], "isInitialSeeding": True})
        time.sleep(1)
        if fl.torrents().get(hd, {}).get("isInitialSeeding") is not False:
            fail("super seeding is off in ringseed, yet Flood shows it on")
        fl.call("PATCH", f"/api/torrents/{hd}/contents", want=(500,),
                json={"indices": [1], "priority": 0})
        prios = [c.get("priority") for c in fl.call("GET", f"/api/torrents/{hd}/contents").json()]
        if prios != [1, 1]:
            fail(f"file priorities changed although ringseed refused: {prios}")
        step(f"tracker edits and file priorities refused (Flood: {r.status_code}), super seeding stays off")

    def trackers():
        tracker = "http://127.0.115.99:1/announce"
        fl.call("PATCH", "/api/torrents/trackers", json={"hashes": [hd], "trackers": [tracker]})
        deadline = time.monotonic() + ACT
        while True:
            urls = [t.get("url") for t in fl.call("GET", f"/api/torrents/{hd}/trackers").json()]
            if tracker in urls:
                break
            if time.monotonic() > deadline:
                fail(f"D's trackers after setting {tracker} through Flood (torrents/addTrackers): {urls}")
            time.sleep(0.3)
        step(f"tracker set (torrents/trackers, removeTrackers, addTrackers): {urls}")
    if not ringseed:
        checks.append(trackers)

    def initial_seeding():
        fl.call("PATCH", "/api/torrents/initial-seeding", json={"hashes": [hd], "isInitialSeeding": True})
        fl.wait("D super seeding", lambda ts: ts.get(hd, {}).get("isInitialSeeding") is True, timeout=ACT)
        fl.call("PATCH", "/api/torrents/initial-seeding", json={"hashes": [hd], "isInitialSeeding": False})
        fl.wait("D not super seeding", lambda ts: ts.get(hd, {}).get("isInitialSeeding") is False, timeout=ACT)
        step("initial seeding on and off (torrents/setSuperSeeding, super_seeding)")
    if not ringseed:
        checks.append(initial_seeding)

    def file_priorities():
        fl.call("PATCH", f"/api/torrents/{hd}/contents", json={"indices": [1], "priority": 0})
        deadline = time.monotonic() + ACT
        while True:
            prios = [c.get("priority") for c in fl.call("GET", f"/api/torrents/{hd}/contents").json()]
            if prios == [1, 0]:
                break
            if time.monotonic() > deadline:
                fail(f"file priorities after skipping file 1 through Flood (torrents/filePrio): {prios}")
            time.sleep(0.3)
        fl.call("PATCH", f"/api/torrents/{hd}/contents", json={"indices": [1], "priority": 2})
        deadline = time.monotonic() + ACT
        while True:
            prios = [c.get("priority") for c in fl.call("GET", f"/api/torrents/{hd}/contents").json()]
            if prios == [1, 2]:
                break
            if time.monotonic() > deadline:
                fail(f"file priorities after setting file 1 high through Flood (torrents/filePrio 6): {prios}")
            time.sleep(0.3)
        step("file priorities (torrents/filePrio 0 and 6)")
    if not ringseed:
        checks.append(file_priorities)
    else:
        checks.append(refused_by_ringseed)

    def queue_priority():
        fl.call("PATCH", "/api/torrents/priority", json={"hashes": [hd], "priority": 3})
        fl.call("PATCH", "/api/torrents/priority", json={"hashes": [hd], "priority": 1})
        step("queue priority top and bottom (torrents/topPrio, torrents/bottomPrio)")
    checks.append(queue_priority)

    def reannounce():
        fl.call("POST", "/api/torrents/reannounce", json={"hashes": [hd]})
        step("reannounce (torrents/reannounce)")
    checks.append(reannounce)

    def move():
        moved = os.path.join(os.path.dirname(data), "moved")
        os.makedirs(moved, exist_ok=True)
        fl.call("POST", "/api/torrents/move", json={"hashes": [hd], "destination": moved})
        fl.wait("D moved", lambda ts: ts.get(hd) and os.path.realpath(ts[hd].get("directory", "")) == os.path.realpath(moved), timeout=ACT)
        deadline = time.monotonic() + ACT
        while not os.path.isfile(os.path.join(moved, "flood-extra", "y.bin")):
            if time.monotonic() > deadline:
                fail(f"D's files did not arrive in {moved} after a move (torrents/setLocation): {os.listdir(moved)}")
            time.sleep(0.3)
        fl.wait("D seeding after the move", lambda ts: status_has("seeding", "complete")(ts.get(hd)), timeout=ACT)
        step("moved (torrents/setLocation): seeding from the new folder")
    checks.append(move)

    failures = []
    for check in checks:
        try:
            check()
        except Failure as e:
            failures.append(f"{check.__name__}: {e}")
            print(f"FAILED {check.__name__}: {e}", flush=True)
    fl.call("POST", "/api/torrents/delete", json={"hashes": [hd], "deleteData": True})
    fl.wait("D gone", lambda ts: hd not in ts)
    if failures:
        fail(f"{len(failures)} of {len(checks)} actions failed: " + " | ".join(failures))
    if ringseed:
        print("OK: Flood's tracker and file-priority edits refused, super seeding off; "
              "queue priorities, reannounce and move done", flush=True)
    else:
        print("OK: Flood changed trackers, initial seeding, file and queue priorities, "
              "reannounced and moved a torrent", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"FAIL: {e}", flush=True)
        sys.exit(1)
