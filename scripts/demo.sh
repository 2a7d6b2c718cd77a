#!/usr/bin/env bash
# The main job on a default configuration: build ringseed in release mode,
# generate a sample tree (nested folders, an empty file, about 8 MB of random
# data) in a temporary directory, `create` a torrent of it, `verify` the data,
# print it with `info`, then `seed` it on 127.0.0.1 (default settings: one
# shard per core) and `download` it with a second ringseed on 127.0.0.2,
# compare the copy byte for byte, and stop the seeder with SIGTERM.
#
# The tracker: when opentracker is installed, the torrent names one that
# this script starts on 127.0.0.1 (a free port, the torrent whitelisted) and
# stops by pid at the end; both ringseeds announce to it. Without it the
# torrent has no tracker and announces go nowhere. Either way the download
# is also given the seeder's address with --peer, so it never waits for a
# tracker's next round.
#
# Usage: scripts/demo.sh [--keep]   (--keep leaves the temp dir in place)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

keep=0
[[ "${1:-}" == "--keep" ]] && keep=1

cargo build --release --quiet
bin="$PWD/target/release/ringseed"

work="$(mktemp -d -t ringseed-demo.XXXXXX)"
if ((keep == 0)); then
    trap 'rm -rf "$work"' EXIT
fi

tree="$work/sample"
mkdir -p "$tree/music/album" "$tree/video" "$tree/docs/notes"
head -c 3000001 /dev/urandom > "$tree/video/clip.bin"
head -c 1500007 /dev/urandom > "$tree/music/album/01.bin"
head -c 1200003 /dev/urandom > "$tree/music/album/02.bin"
head -c 2000011 /dev/urandom > "$tree/docs/manual.bin"
head -c 33333   /dev/urandom > "$tree/docs/notes/todo.txt"
: > "$tree/docs/notes/empty.txt"
echo "ringseed demo" > "$tree/README.txt"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    ((keep == 1)) || rm -rf "$work"
}
trap cleanup EXIT

tracker_args=()
tracker_port=""
if command -v opentracker > /dev/null; then
    tracker_port=$(free_port)
    tracker_args=(--tracker "http://127.0.0.1:$tracker_port/announce")
fi

echo "== ringseed create"
"$bin" create "$tree" -o "$work/sample.torrent" "${tracker_args[@]}" \
    --comment "ringseed demo" | tee "$work/create.out"
echo

if [[ -n "$tracker_port" ]]; then
    echo "== opentracker on 127.0.0.1:$tracker_port"
    # opentracker started as root drops to an unprivileged user before it
    # reads its whitelist: the path must be open to everyone (mktemp's
    # folder is not), and given whole (it leaves its working folder).
    mkdir -p "$work/tracker"
    chmod 755 "$work" "$work/tracker"
    sed -n 's/^info hash: //p' "$work/create.out" > "$work/tracker/whitelist"
    chmod 644 "$work/tracker/whitelist"
    if [[ ! -s "$work/tracker/whitelist" ]]; then
        echo "no info hash in the output of ringseed create" >&2
        exit 1
    fi
    (cd "$work/tracker" && exec opentracker -i 127.0.0.1 -p "$tracker_port" \
        -P "$tracker_port" -w "$work/tracker/whitelist" > "$work/tracker.log" 2>&1) &
    pids+=($!)
    # Ready once it accepts and knows the torrent: an announce is not
    # refused (a `stopped` one then takes the probe out of the swarm).
    ready=0
    for _ in $(seq 100); do
        if python3 - "$tracker_port" "$(cat "$work/tracker/whitelist")" <<'PY' 2> /dev/null
import sys, urllib.request
port, hexhash = sys.argv[1], sys.argv[2].strip()
q = "".join("%" + hexhash[i:i + 2] for i in range(0, 40, 2))
url = (f"http://127.0.0.1:{port}/announce?info_hash={q}&peer_id=-DEMO00-000000000000"
       "&port=1&uploaded=0&downloaded=0&left=0&compact=1&numwant=0")
body = urllib.request.urlopen(url, timeout=1).read()
urllib.request.urlopen(url + "&event=stopped", timeout=1).read()
sys.exit(0 if b"interval" in body and b"not authorized" not in body else 1)
PY
        then
            ready=1
            break
        fi
        sleep 0.1
    done
    if ((ready == 0)); then
        echo "opentracker did not start or load its whitelist:" >&2
        cat "$work/tracker.log" >&2
        exit 1
    fi
    echo "tracking $(cat "$work/tracker/whitelist")"
else
    echo "(opentracker is not installed: the torrent has no tracker;"
    echo " apt-get install opentracker to see announces)"
fi
echo
echo "== ringseed verify"
"$bin" verify "$work/sample.torrent" "$work"
echo
echo "== ringseed info"
"$bin" info "$work/sample.torrent"
echo
echo "== ringseed seed (127.0.0.1) and ringseed download (127.0.0.2)"
port=$(free_port)
"$bin" seed "$work/sample.torrent" --data "$work" --listen "127.0.0.1:$port" \
    --bind-address 127.0.0.1 2> "$work/seed.log" &
seeder=$!
pids+=("$seeder")
for _ in $(seq 100); do
    grep -q "listening on" "$work/seed.log" && break
    sleep 0.1
done
sed 's/^/seed: /' "$work/seed.log"
seen=$(wc -l < "$work/seed.log")
echo
timeout 120 "$bin" download "$work/sample.torrent" -o "$work/copy" \
    --peer "127.0.0.1:$port" --listen 127.0.0.2:0 --bind-address 127.0.0.2 2>&1 |
    sed 's/^/download: /'
diff -r "$tree" "$work/copy/sample" && echo "the copy is byte-identical"
if [[ -n "$tracker_port" ]]; then
    python3 - "$tracker_port" "$(cat "$work/tracker/whitelist")" <<'PY'
import re, sys, urllib.request
port, hexhash = sys.argv[1], sys.argv[2].strip()
q = "".join("%" + hexhash[i:i + 2] for i in range(0, 40, 2))
body = urllib.request.urlopen(f"http://127.0.0.1:{port}/scrape?info_hash={q}", timeout=2).read()
seeds = re.search(rb"8:completei(\d+)e", body)
print(f"opentracker lists {int(seeds.group(1)) if seeds else 0} seeder(s) of the torrent")
PY
fi
echo
kill -TERM "$seeder"
status=0
wait "$seeder" || status=$?
# What the seeder logged since (its stop report).
tail -n +"$((seen + 1))" "$work/seed.log" | sed 's/^/seed: /'
if ((status == 0)); then
    echo "seeder stopped cleanly (exit 0)"
else
    echo "seeder exited with status $status" >&2
    exit 1
fi
if ((keep == 1)); then
    echo
    echo "kept: $work"
fi
