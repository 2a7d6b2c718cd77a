#!/usr/bin/env bash
# The main job on a default configuration: build ringseed in release mode
# and run `ringseed daemon` with its folders in a local folder
# (./ringseed-demo: state/, downloads/, watch/), on built-in defaults except
# that peers and the Web API are on 127.0.0.1 only (free ports). Then:
#   1. generate a sample tree (nested folders, an empty file, about 8 MB of
#      random data) in downloads/, `ringseed create` a torrent of it straight
#      into the watch folder: the daemon adds it (the file is renamed
#      sample.torrent.added), checks the data and seeds it;
#   2. show it seeding (`ringseed ctl list`), then through the qBittorrent
#      Web API (logged in with the password the first start generated) and
#      /metrics;
#   3. download it with a second ringseed on 127.0.0.2 from the daemon and
#      compare the copy byte for byte;
#   4. stop the daemon (SIGTERM), start it again and show that the torrent
#      resumes seeding without a check (its state is in state/ringseed.db);
#   5. stop it, or with --keep-running leave it running until Ctrl-C.
#
# Usage: scripts/demo.sh [--keep-running] [--dir DIR]
#   (DIR defaults to ./ringseed-demo; it is emptied first)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

keep_running=0
dir="$PWD/ringseed-demo"
while (($#)); do
    case "$1" in
        --keep-running) keep_running=1 ;;
        --dir) dir="$(realpath -m "$2")"; shift ;;
        *) echo "usage: scripts/demo.sh [--keep-running] [--dir DIR]" >&2; exit 2 ;;
    esac
    shift
done

cargo build --release --quiet
bin="$PWD/target/release/ringseed"

rm -rf "$dir"
mkdir -p "$dir/state" "$dir/downloads" "$dir/watch"
: > "$dir/ringseed.toml" # built-in defaults (`ringseed config --default` shows them)

pid=""
cleanup() {
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
}
trap cleanup EXIT

start_daemon() {
    local log="$1"
    # --no-dht: the demo stays on loopback (the DHT would reach the public
    # routers, router.bittorrent.com and others).
    "$bin" daemon --config "$dir/ringseed.toml" --state-dir "$dir/state" \
        --download-dir "$dir/downloads" --watch-dir "$dir/watch" --no-dht \
        --listen 127.0.0.1:0 --bind-address 127.0.0.1 --api-listen 127.0.0.1:0 2> "$log" &
    pid=$!
    for _ in $(seq 300); do
        grep -q "INFO ready in" "$log" && break
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.1
    done
    sed 's/^/daemon: /' "$log"
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
    api=$(sed -n 's/.*Web API listening on \(http:[^ ]*\).*/\1/p' "$log" | head -1)
}

ctl() {
    "$bin" ctl --state-dir "$dir/state" "$@"
}

wait_seeding() {
    for _ in $(seq 600); do
        ctl list --json | python3 -c '
import json, sys
t = json.load(sys.stdin)
sys.exit(0 if t and all(x["state"] == "seeding" for x in t) else 1)' && return 0
        sleep 0.2
    done
    echo "the torrent did not reach seeding" >&2
    ctl list >&2
    exit 1
}

echo "== ringseed daemon (state, downloads and watch folder in $dir)"
start_daemon "$dir/daemon.log"
echo

tree="$dir/downloads/sample"
mkdir -p "$tree/music/album" "$tree/video" "$tree/docs/notes"
head -c 3000001 /dev/urandom > "$tree/video/clip.bin"
head -c 1500007 /dev/urandom > "$tree/music/album/01.bin"
head -c 1200003 /dev/urandom > "$tree/music/album/02.bin"
head -c 2000011 /dev/urandom > "$tree/docs/notes/manual.bin"
head -c 33333   /dev/urandom > "$tree/docs/notes/todo.txt"
: > "$tree/docs/notes/empty.txt"
echo "ringseed demo" > "$tree/README.txt"

echo "== ringseed create, straight into the watch folder"
"$bin" create "$tree" -o "$dir/sample.torrent.part" --comment "ringseed demo"
mv "$dir/sample.torrent.part" "$dir/watch/sample.torrent"
wait_seeding
ls "$dir/watch"
echo
echo "== ringseed ctl list"
ctl list
echo
echo "== the qBittorrent Web API at $api (the password generated at the first start)"
password=$(sed -n 's/.*generated one for user "admin": \([A-Za-z0-9]*\).*/\1/p' "$dir/daemon.log" | head -1)
API="$api" PASSWORD="$password" python3 - <<'PY'
import json, os, urllib.parse, urllib.request
api, pw = os.environ["API"], os.environ["PASSWORD"]
r = urllib.request.urlopen(api + "/api/v2/auth/login",
                           urllib.parse.urlencode({"username": "admin", "password": pw}).encode())
sid = r.headers["Set-Cookie"].split(";")[0]
def get(path):
    req = urllib.request.Request(api + path, headers={"Cookie": sid})
    return urllib.request.urlopen(req).read().decode()
print("app/version:", get("/api/v2/app/version"), " webapiVersion:", get("/api/v2/app/webapiVersion"))
for t in json.loads(get("/api/v2/torrents/info")):
    print(f"torrents/info: {t['name']}  state={t['state']}  progress={t['progress']}  size={t['size']}")
print("metrics:", [l for l in get("/metrics").splitlines() if l.startswith("ringseed_torrents{")])
PY
echo
echo "== ringseed download from the daemon (127.0.0.2)"
timeout 120 "$bin" download "$dir/watch/sample.torrent.added" -o "$dir/copy" \
    --peer "127.0.0.1:$port" --listen 127.0.0.2:0 --bind-address 127.0.0.2 --no-dht 2>&1 |
    sed 's/^/download: /'
diff -r "$tree" "$dir/copy/sample" && echo "the copy is byte-identical"
echo
sleep 6 # the daemon saves its numbers every 5 s
echo "== SIGTERM, then a restart: the torrent resumes without a check"
kill -TERM "$pid"
wait "$pid" || { echo "the daemon did not stop cleanly" >&2; exit 1; }
pid=""
start_daemon "$dir/daemon2.log"
wait_seeding
ctl list
echo
if ((keep_running == 1)); then
    echo "the daemon runs (pid $pid); Ctrl-C stops it"
    trap 'kill -TERM "$pid"; wait "$pid"; exit 0' INT TERM
    wait "$pid"
else
    kill -TERM "$pid"
    wait "$pid" && echo "daemon stopped cleanly (exit 0); its folders: $dir"
    pid=""
fi
