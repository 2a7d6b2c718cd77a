#!/usr/bin/env python3
"""Drives a qBittorrent Web API v2 server with the PyPI `qbittorrent-api`
client, the way Sonarr/Radarr, autobrr, cross-seed and qbit_manage do.

Usage (with target/test-venv/bin/python):
    qbt_scenario.py --url http://IP:PORT --user U --password P
        --torrent FILE.torrent --save-path DIR --out KEYS.json
        --peer IP:PORT --leech-ip IP --leech-dir DIR

The .torrent's data must already sit in --save-path. The same script runs
against Debian's qbittorrent-nox (the reference) and ringseed: every check
holds for both, and where qBittorrent 4.x and 5.x differ (the `stop`/`start`
names, the `stoppedUP` state) the branch follows the server's Web API
version, explicitly.

Steps: log in; version strings; a wrong password and a request without the
cookie get qBittorrent's answers; create categories; add the .torrent with a
save path, category and tags; wait until it seeds; read properties, files,
trackers, piece states, transfer info, preferences, categories and tags;
change category and tags and see it in `sync/maindata` deltas; stop and start
by every name; a libtorrent leecher (tests/support/lt_peer.py run by
/usr/bin/python3, on --leech-ip, dialing --peer, the server's peer address)
downloads the torrent and the server's upload counters grow; delete without
files (the data stays), re-add, delete with files (the data goes).

Writes --out: {"ok": bool, "server": {...}, "keys": {KIND: [sorted keys]},
"notes": [..], "failures": [..]} with the key set of every JSON object the
API returned, one KIND per endpoint and per nested object kind (a torrent,
a file, a tracker, the maindata's server_state, a category...). Prints one
line per step. A failed check is noted and the run goes on; a wait that
times out or an unexpected API error stops it. Exits 1 when anything
failed, listing every failure.
"""

import argparse
import collections.abc
import json
import os
import subprocess
import sys
import time
import traceback

import qbittorrentapi
import requests

# Bounded waits (seconds).
SEED_WAIT = 30.0
STATE_WAIT = 15.0
STATS_WAIT = 20.0
LEECH_TIMEOUT = 40.0
POLL = 0.25
HTTP_TIMEOUT = (5, 15)

SEEDING = ("uploading", "stalledUP")
LT_PYTHON = os.environ.get("QBT_SCENARIO_LT_PYTHON", "/usr/bin/python3")
LT_PEER = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "support", "lt_peer.py"
)

CAT_A = "rs-cat-a"
CAT_B = "rs-cat-b"
TAG_1 = "rs-tag-1"
TAG_2 = "rs-tag-2"
TAG_3 = "rs-tag-3"

KEYS = {}
TYPES = {}
NOTES = []
FAILURES = []
SERVER = {}


class CheckFailed(Exception):
    pass


def log(msg):
    print(f"qbt_scenario: {msg}", flush=True)


def check(cond, what, got=None):
    """A failed check is noted and the scenario goes on (every failure is
    listed at the end); waits that time out stop it."""
    if not cond:
        extra = "" if got is None else f"; got: {got!r}"
        FAILURES.append(f"{what}{extra}")
        log(f"CHECK FAILED: {what}{extra}")
    return bool(cond)


def is_list(x):
    """A JSON array (qbittorrent-api wraps them in UserList subclasses)."""
    return isinstance(x, collections.abc.Sequence) and not isinstance(x, (str, bytes))


def json_type(v):
    """The JSON type of a value (integers and reals are both numbers)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, collections.abc.Mapping):
        return "object"
    return "array"


def record(kind, obj):
    """Notes the key set of one JSON object of kind `kind`."""
    check(isinstance(obj, collections.abc.Mapping), f"{kind}: a JSON object", obj)
    keys = set(obj.keys())
    kinds = TYPES.setdefault(kind, {})
    for k, v in obj.items():
        kinds.setdefault(k, set()).add(json_type(v))
    entry = KEYS.setdefault(kind, {"union": set(), "common": None})
    entry["union"] |= keys
    entry["common"] = keys if entry["common"] is None else entry["common"] & keys


def record_list(kind, items):
    check(is_list(items), f"{kind}: a JSON array", items)
    for it in items:
        record(kind, it)


def wait_for(what, fn, timeout):
    """Polls fn() until it returns a truthy value; fails after `timeout`
    with the last value fn saw (fn may return (None, last))."""
    end = time.monotonic() + timeout
    last = None
    while True:
        res = fn()
        if isinstance(res, tuple):
            val, last = res
        else:
            val, last = res, res
        if val:
            return val
        if time.monotonic() >= end:
            raise CheckFailed(f"not {what} within {timeout:.0f} s; last: {last!r}")
        time.sleep(POLL)


def write_out(path):
    keys = {}
    for kind, e in sorted(KEYS.items()):
        keys[kind] = sorted(e["union"])
        sometimes = sorted(e["union"] - (e["common"] or set()))
        if sometimes:
            keys[f"{kind} (not always present)"] = sometimes
    types = {kind: {k: sorted(t) for k, t in sorted(ks.items())} for kind, ks in sorted(TYPES.items())}
    doc = {"ok": not FAILURES, "server": SERVER, "keys": keys, "types": types, "notes": NOTES,
           "failures": FAILURES}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


def version_tuple(s):
    out = []
    for part in str(s).lstrip("v").split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def raw_get(client, name, method, **params):
    """GET /api/v2/NAME/METHOD through the logged-in client, as the server's
    own JSON: qbittorrent-api renames `reannounce` to `reannounce_in` in
    the torrents it returns and adds `id` to files, so key sets are
    recorded from raw answers."""
    return client._get(_name=name, _method=method, params=params).json()


def one_torrent(client, h):
    """The torrent `h` from torrents/info (None when absent)."""
    lst = raw_get(client, "torrents", "info", hashes=h)
    record_list("torrents/info[]", lst)
    for t in lst:
        if t["hash"] == h:
            return t
    return None


def wait_state(client, h, states, what, timeout=STATE_WAIT):
    def probe():
        t = one_torrent(client, h)
        state = t["state"] if t else None
        return (t if state in states else None, state)

    return wait_for(f"{what} (state in {states})", probe, timeout)


def raw_post(client, method, data):
    """POST /api/v2/torrents/METHOD through the logged-in client, whatever
    the client library thinks of the server's version."""
    return client._post(_name="torrents", _method=method, data=data)


def run(args):
    url = args.url.rstrip("/")
    client = qbittorrentapi.Client(
        host=url,
        username=args.user,
        password=args.password,
        REQUESTS_ARGS={"timeout": HTTP_TIMEOUT},
        VERIFY_WEBUI_CERTIFICATE=False,
        DISABLE_LOGGING_DEBUG_OUTPUT=True,
    )

    # --- authentication -------------------------------------------------
    client.auth_log_in()
    check(client.is_logged_in, "logged in after auth_log_in")
    version = client.app.version
    api_version = client.app.web_api_version
    check(isinstance(version, str) and version.startswith("v"), "app/version a string 'vX.Y.Z'", version)
    check(isinstance(api_version, str) and len(version_tuple(api_version)) >= 2,
          "app/webapiVersion a string 'X.Y.Z'", api_version)
    SERVER["version"] = version
    SERVER["webapi_version"] = api_version
    is5 = version_tuple(api_version) >= (2, 11, 0)
    SERVER["names"] = "5.x (stop/start, stoppedUP)" if is5 else "4.x (pause/resume, pausedUP)"
    log(f"server {version}, Web API {api_version} ({SERVER['names']})")
    stopped_state = "stoppedUP" if is5 else "pausedUP"

    record("app/buildInfo", client.app_build_info())
    default_save = client.app_default_save_path()
    check(isinstance(default_save, str) and default_save, "app/defaultSavePath a path", default_save)

    bad = qbittorrentapi.Client(
        host=url, username=args.user, password=args.password + "-wrong",
        REQUESTS_ARGS={"timeout": HTTP_TIMEOUT}, DISABLE_LOGGING_DEBUG_OUTPUT=True,
    )
    try:
        bad.auth_log_in()
        check(False, "a wrong password logged in")
    except qbittorrentapi.LoginFailed:
        pass
    r = requests.post(f"{url}/api/v2/auth/login",
                      data={"username": args.user, "password": args.password + "-wrong"},
                      timeout=HTTP_TIMEOUT)
    check(r.status_code == 200 and r.text == "Fails.", "a wrong password: 200 'Fails.'",
          (r.status_code, r.text))
    check("SID" not in r.cookies, "no SID cookie for a wrong password", dict(r.cookies))
    r = requests.get(f"{url}/api/v2/app/version", timeout=HTTP_TIMEOUT)
    check(r.status_code == 403, "GET app/version without a cookie: 403", (r.status_code, r.text))
    r = requests.post(f"{url}/api/v2/torrents/info", timeout=HTTP_TIMEOUT)
    check(r.status_code == 403, "POST torrents/info without a cookie: 403", (r.status_code, r.text))
    r = requests.get(f"{url}/api/v2/torrents/info", cookies={"SID": "not-a-session"},
                     timeout=HTTP_TIMEOUT)
    check(r.status_code == 403, "a made-up SID: 403", (r.status_code, r.text))
    r = requests.post(f"{url}/api/v2/auth/login",
                      data={"username": args.user, "password": args.password},
                      timeout=HTTP_TIMEOUT)
    check(r.status_code == 200 and r.text == "Ok." and "SID" in r.cookies,
          "login by hand: 200 'Ok.' with cookie SID", (r.status_code, r.text, dict(r.cookies)))
    log("auth: login, wrong password (LoginFailed, 'Fails.'), no cookie (403) ok")

    # --- categories, add -----------------------------------------------
    save_path = os.path.abspath(args.save_path)
    client.torrents_create_category(name=CAT_A, save_path=save_path)
    client.torrents_create_category(name=CAT_B, save_path=save_path)
    try:
        client.torrents_create_category(name=CAT_A, save_path=save_path)
        check(False, f"creating category {CAT_A} twice was accepted (qBittorrent: 409)")
    except qbittorrentapi.Conflict409Error:
        pass
    cats = client.torrents_categories()
    check(isinstance(cats, collections.abc.Mapping) and CAT_A in cats and CAT_B in cats,
          "both categories listed", cats)
    for name, c in cats.items():
        record("torrents/categories{}", c)
        check(c.get("name") == name, f"category {name}: name", c)
    check(os.path.normpath(cats[CAT_A].get("savePath", "")) == save_path,
          f"category {CAT_A}: savePath", cats[CAT_A])

    try:
        client.torrents_properties(torrent_hash="0" * 40)
        check(False, "properties of an unknown hash answered (qBittorrent: 404)")
    except qbittorrentapi.NotFound404Error:
        pass

    with open(args.torrent, "rb") as f:
        torrent_bytes = f.read()
    before = {t["hash"] for t in client.torrents_info()}
    res = client.torrents_add(torrent_files=args.torrent, save_path=save_path,
                              category=CAT_A, tags=[TAG_1, TAG_2])
    check(res == "Ok.", "torrents/add answers 'Ok.'", res)

    def new_hash():
        now = [t["hash"] for t in client.torrents_info() if t["hash"] not in before]
        return (now[0] if len(now) == 1 else None, now)

    h = wait_for("listed after torrents/add", new_hash, STATE_WAIT)
    SERVER["hash"] = h
    t = wait_state(client, h, SEEDING, "seeding after add", SEED_WAIT)
    log(f"added {h}: {t['state']}, category {t['category']!r}, tags {t['tags']!r}")
    check(t["category"] == CAT_A, "category as added", t["category"])
    check(t["tags"] == f"{TAG_1}, {TAG_2}", "tags as added, joined with ', '", t["tags"])
    check(os.path.normpath(t["save_path"]) == save_path, "save_path as added", t["save_path"])
    check(t["progress"] == 1, "progress 1 while seeding", t["progress"])
    check(t["amount_left"] == 0, "amount_left 0 while seeding", t["amount_left"])
    content_path = t["content_path"]
    check(os.path.normpath(content_path) == os.path.join(save_path, t["name"]),
          "content_path = save_path/name (single file)", content_path)
    check(os.path.isfile(content_path), "the data file exists", content_path)
    data_size = os.path.getsize(content_path)
    check(t["size"] == data_size and t["total_size"] == data_size, "size = total_size = the file's",
          (t["size"], t["total_size"], data_size))
    # Values as qBittorrent serializes them for a seeding torrent with no
    # limits of its own.
    expect = {"eta": 8640000, "ratio_limit": -2, "seeding_time_limit": -2, "max_ratio": -1,
              "max_seeding_time": -1, "infohash_v1": h, "infohash_v2": "", "seq_dl": False,
              "super_seeding": False, "force_start": False, "auto_tmm": False, "dlspeed": 0,
              "completed": data_size}
    for k, want in expect.items():
        check(t.get(k) == want, f"torrents/info {k} = {want!r} (as qBittorrent)", t.get(k))
    check(str(t["magnet_uri"]).lower().startswith(f"magnet:?xt=urn:btih:{h}"), "magnet_uri", t["magnet_uri"])
    check(abs(time.time() - t["added_on"]) < 600, "added_on: now, in seconds since the epoch", t["added_on"])

    # --- filters --------------------------------------------------------
    for kwargs in ({"category": CAT_A}, {"tag": TAG_1}, {"status_filter": "seeding"},
                   {"status_filter": "completed"}, {"torrent_hashes": h}):
        lst = client.torrents_info(**kwargs)
        check(h in [x["hash"] for x in lst], f"torrents/info {kwargs} lists it", lst)
    # `paused` is the pre-5.0 name of `stopped` (ringseed takes both).
    stopped_filters = ("paused", "stopped") if is5 else ("paused",)
    for kwargs in ({"category": CAT_B}, {"status_filter": "downloading"},
                   *({"status_filter": f} for f in stopped_filters)):
        lst = client.torrents_info(**kwargs)
        check(h not in [x["hash"] for x in lst], f"torrents/info {kwargs} does not list it", lst)

    # --- reads ----------------------------------------------------------
    props = client.torrents_properties(torrent_hash=h)
    record("torrents/properties", props)
    check(props["total_size"] == data_size, "properties total_size", props["total_size"])
    piece_size = props["piece_size"]
    pieces = props["pieces_num"]
    check(pieces == (data_size + piece_size - 1) // piece_size, "pieces_num from piece_size",
          (pieces, piece_size, data_size))
    check(props["pieces_have"] == pieces, "pieces_have = pieces_num while seeding", props["pieces_have"])
    check(os.path.normpath(props["save_path"]) == save_path, "properties save_path", props["save_path"])

    files = client.torrents_files(torrent_hash=h)
    raw_files = raw_get(client, "torrents", "files", hash=h)
    record_list("torrents/files[]", raw_files)
    check(len(raw_files) == len(files), "files: the same through the client and raw", raw_files)
    check(len(files) == 1, "one file", files)
    check(files[0]["size"] == data_size and files[0]["progress"] == 1 and files[0]["name"] == t["name"],
          "file: size, progress 1, name", files[0])
    f0 = raw_files[0]
    check(f0.get("index") == 0 and f0.get("priority") == 1 and f0.get("is_seed") is True
          and list(f0.get("piece_range", [])) == [0, pieces - 1],
          "file: index 0, priority 1, is_seed true, piece_range [0, last]", f0)

    trackers = client.torrents_trackers(torrent_hash=h)
    check(is_list(trackers) and len(trackers) >= 3, "trackers: the 3 pseudo-entries at least", trackers)
    sticky = [x for x in trackers if str(x.get("url", "")).startswith("** [")]
    real = [x for x in trackers if not str(x.get("url", "")).startswith("** [")]
    check([x["url"] for x in trackers[:3]] == ["** [DHT] **", "** [PeX] **", "** [LSD] **"],
          "DHT, PeX, LSD pseudo-entries first", [x.get("url") for x in trackers])
    record_list("torrents/trackers[] (DHT/PeX/LSD)", sticky)
    record_list("torrents/trackers[]", real)
    check(len(real) == t["trackers_count"], "trackers_count = real trackers", (t["trackers_count"], real))
    check(all(x["tier"] == -1 for x in sticky), "DHT/PeX/LSD entries: tier -1", sticky)
    check(len(real) == 1 and real[0]["tier"] == 0 and real[0]["status"] in (1, 2, 3, 4),
          "the .torrent's tracker: tier 0, status 1..4", real)
    check(t["tracker"] == "" or t["tracker"] == real[0]["url"], "tracker: '' until one works", t["tracker"])

    states = client.torrents_piece_states(torrent_hash=h)
    check(is_list(states) and len(states) == pieces and all(s == 2 for s in states),
          "pieceStates: pieces_num entries, all 2 (have)", states)

    info = client.transfer_info()
    record("transfer/info", info)
    check(info["connection_status"] in ("connected", "firewalled", "disconnected"),
          "transfer/info connection_status", info["connection_status"])
    check(props["up_limit"] == -1 and props["dl_limit"] == -1, "properties: no limit is -1",
          (props["up_limit"], props["dl_limit"]))
    prefs = client.app_preferences()
    record("app/preferences", prefs)
    tags = client.torrents_tags()
    check(is_list(tags) and TAG_1 in tags and TAG_2 in tags, "torrents/tags has the added tags", tags)

    # --- sync/maindata deltas -------------------------------------------
    md = client.sync_maindata(rid=0)
    check(md.get("full_update") is True, "sync/maindata rid=0 is a full update", dict(md))
    record("sync/maindata (full)", md)
    check(h in md.get("torrents", {}), "the torrent in the full maindata", list(md.get("torrents", {})))
    for th, tor in md["torrents"].items():
        record("sync/maindata torrents{}", tor)
    record("sync/maindata server_state", md["server_state"])
    for name, c in md.get("categories", {}).items():
        record("sync/maindata categories{}", c)
    check(CAT_A in md.get("categories", {}), "categories in the full maindata", md.get("categories"))
    check(TAG_1 in md.get("tags", []), "tags in the full maindata", md.get("tags"))
    merged = dict(md["torrents"][h])
    rid = md["rid"]
    check(isinstance(rid, int) and rid > 0, "rid a positive integer", rid)

    delta = client.sync_maindata(rid=rid)
    check(not delta.get("full_update"), "sync/maindata with the rid: no full update", dict(delta))
    dt = delta.get("torrents", {}).get(h, {})
    for k in ("name", "save_path", "total_size", "infohash_v1", "magnet_uri", "added_on"):
        check(k not in dt, f"an unchanged field ({k}) is not repeated in a delta", dict(dt))
    merged.update(dt)
    rid = delta["rid"]

    client.torrents_set_category(category=CAT_B, torrent_hashes=h)
    client.torrents_add_tags(tags=TAG_3, torrent_hashes=h)
    client.torrents_remove_tags(tags=TAG_1, torrent_hashes=h)
    want_tags = f"{TAG_2}, {TAG_3}"
    seen = {"tags_key": False, "new_tag": False}

    def delta_shows_change():
        nonlocal rid
        d = client.sync_maindata(rid=rid)
        check(not d.get("full_update"), "a delta, not a full update", dict(d))
        rid = d["rid"]
        td = d.get("torrents", {}).get(h, {})
        for k in ("name", "save_path", "total_size"):
            check(k not in td, f"an unchanged field ({k}) is not repeated in a delta", dict(td))
        if "tags" in td:
            seen["tags_key"] = True
        if TAG_3 in d.get("tags", []):
            seen["new_tag"] = True
        merged.update(td)
        done = merged.get("category") == CAT_B and merged.get("tags") == want_tags
        return (done, {k: merged.get(k) for k in ("category", "tags")})

    wait_for("category and tags changed in sync/maindata deltas", delta_shows_change, STATE_WAIT)
    check(seen["tags_key"], "a delta carried the torrent's tags")
    check(seen["new_tag"], f"a delta listed the new tag {TAG_3} in `tags`")
    t = one_torrent(client, h)
    check(t["category"] == CAT_B and t["tags"] == want_tags, "torrents/info shows the new category and tags",
          (t["category"], t["tags"]))
    tags = client.torrents_tags()
    check(all(x in tags for x in (TAG_1, TAG_2, TAG_3)), "torrents/tags keeps every tag", tags)
    log(f"sync/maindata deltas ok (rid {rid}); category {CAT_B}, tags {want_tags!r}")

    # --- stop / start under every name ---------------------------------
    def raw(method):
        return lambda: raw_post(client, method, {"hashes": h})

    cycles = [
        ("torrents_stop, torrents_start", lambda: client.torrents_stop(torrent_hashes=h),
         lambda: client.torrents_start(torrent_hashes=h), "stopped" if is5 else "paused"),
        ("torrents_pause, torrents_resume", lambda: client.torrents_pause(torrent_hashes=h),
         lambda: client.torrents_resume(torrent_hashes=h), None),
        ("POST torrents/pause, torrents/resume", raw("pause"), raw("resume"), "paused"),
    ]
    if is5:
        cycles.append(("POST torrents/stop, torrents/start", raw("stop"), raw("start"), "stopped"))
    for names, stop, start, status_filter in cycles:
        stop()
        wait_state(client, h, (stopped_state,), f"stopped by {names}")
        if status_filter:
            lst = client.torrents_info(status_filter=status_filter)
            check(h in [x["hash"] for x in lst], f"listed by filter={status_filter}", lst)
        start()
        wait_state(client, h, SEEDING, f"seeding after {names}")
    if is5:
        log("stop/start, pause/resume (client and raw endpoints) ok")
    else:
        for method in ("stop", "start"):
            try:
                raw_post(client, method, {"hashes": h})
                check(False, f"a 4.x server answered POST torrents/{method}")
            except qbittorrentapi.NotFound404Error:
                pass
        NOTES.append(f"server {version} (Web API {api_version}): torrents/stop and torrents/start "
                     "answer 404 (added in 5.0); pause/resume and state pausedUP used")
        log("pause/resume ok; stop/start 404 on this 4.x server, as expected")
    lst = client.torrents_info(status_filter="seeding")
    check(h in [x["hash"] for x in lst], "listed as seeding again", lst)

    # --- a libtorrent leecher downloads it ------------------------------
    up_before = client.transfer_info()["up_info_data"]
    t = one_torrent(client, h)
    uploaded_before = t["uploaded"]
    leech_dir = os.path.abspath(args.leech_dir)
    os.makedirs(leech_dir, exist_ok=True)
    cmd = [LT_PYTHON, os.path.normpath(LT_PEER), "download", args.torrent, leech_dir,
           args.leech_ip, "0", "--peer", args.peer, "--timeout", str(LEECH_TIMEOUT)]
    log(f"leecher: {' '.join(cmd)}")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=LEECH_TIMEOUT + 20)
    except FileNotFoundError:
        raise CheckFailed(f"{LT_PYTHON} is missing: install python3-libtorrent (scripts/test.sh does)")
    if p.returncode != 0:
        raise CheckFailed(f"the libtorrent leecher failed (exit {p.returncode}):\n"
                          f"{p.stdout}\n{p.stderr}")
    with open(os.path.join(leech_dir, t["name"]), "rb") as f:
        got = f.read()
    with open(content_path, "rb") as f:
        check(got == f.read(), "the leecher's copy equals the data")

    def counters_grew():
        up = client.transfer_info()["up_info_data"]
        tt = one_torrent(client, h)
        return (up >= up_before + data_size and tt["uploaded"] >= uploaded_before + data_size,
                {"up_info_data": [up_before, up], "uploaded": [uploaded_before, tt["uploaded"]]})

    wait_for("transfer/info up_info_data and the torrent's uploaded grown by the data size",
             counters_grew, STATS_WAIT)
    log(f"leecher downloaded {data_size} bytes; counters grew")
    info = client.transfer_info()
    record("transfer/info", info)
    # The peer objects come and go with the leecher: only the envelope.
    peers = client.sync_torrent_peers(torrent_hash=h, rid=0)
    record("sync/torrentPeers", peers)
    check(isinstance(peers.get("peers"), collections.abc.Mapping), "torrentPeers: `peers` an object", dict(peers))

    # --- delete without files, re-add, delete with files ----------------
    def gone():
        lst = client.torrents_info(torrent_hashes=h)
        return (h not in [x["hash"] for x in lst], [x["state"] for x in lst])

    client.torrents_delete(delete_files=False, torrent_hashes=h)
    wait_for("gone after delete without files", gone, STATE_WAIT)

    def removed_in_delta():
        nonlocal rid
        d = client.sync_maindata(rid=rid)
        rid = d["rid"]
        return (h in d.get("torrents_removed", []), dict(d))

    wait_for("listed in a delta's torrents_removed", removed_in_delta, STATE_WAIT)
    time.sleep(1.0)
    check(os.path.isfile(content_path) and os.path.getsize(content_path) == data_size,
          "the data stays after delete without files", content_path)
    log("deleted without files: the data stays")

    res = client.torrents_add(torrent_files=torrent_bytes, save_path=save_path, category=CAT_A)
    check(res == "Ok.", "torrents/add (re-add, bytes) answers 'Ok.'", res)
    wait_state(client, h, SEEDING, "seeding again after re-add", SEED_WAIT)
    client.torrents_delete(delete_files=True, torrent_hashes=h)
    wait_for("gone after delete with files", gone, STATE_WAIT)
    wait_for("the data file removed", lambda: (not os.path.exists(content_path), content_path), STATE_WAIT)
    log("re-added, deleted with files: the data is gone")

    client.torrents_remove_categories(categories=[CAT_A, CAT_B])
    client.torrents_delete_tags(tags=[TAG_1, TAG_2, TAG_3])
    cats = client.torrents_categories()
    check(CAT_A not in cats and CAT_B not in cats, "categories removed", cats)
    client.auth_log_out()
    r = requests.get(f"{url}/api/v2/app/version", cookies={"SID": "x"}, timeout=HTTP_TIMEOUT)
    check(r.status_code == 403, "403 after logout", r.status_code)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--save-path", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--peer", required=True, help="the server's BitTorrent address, IP:PORT")
    ap.add_argument("--leech-ip", required=True)
    ap.add_argument("--leech-dir", required=True)
    args = ap.parse_args()
    try:
        run(args)
    except CheckFailed as e:
        FAILURES.append(str(e))
        log(f"STOPPED: {e}")
    except Exception as e:  # an API error the checks did not expect
        traceback.print_exc(file=sys.stdout)
        FAILURES.append(f"{type(e).__name__}: {e}")
        log(f"STOPPED: {type(e).__name__}: {e}")
    write_out(args.out)
    if FAILURES:
        log(f"FAILED: {len(FAILURES)} failed checks:")
        for f in FAILURES:
            log(f"  - {f}")
        return 1
    log(f"ok: {len(KEYS)} object kinds recorded in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
