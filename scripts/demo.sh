#!/usr/bin/env bash
# The main job on a default configuration: build ringseed in release mode,
# generate a sample tree (nested folders, an empty file, about 8 MB of random
# data) in a temporary directory, `create` a torrent of it, `verify` the data,
# print it with `info`, then `seed` it on 127.0.0.1 (default settings: one
# shard per core) and `download` it with a second ringseed on 127.0.0.2,
# compare the copy byte for byte, and stop the seeder with SIGTERM.
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

echo "== ringseed create"
"$bin" create "$tree" -o "$work/sample.torrent" \
    --tracker http://127.0.0.1:6969/announce --comment "ringseed demo"
echo
echo "== ringseed verify"
"$bin" verify "$work/sample.torrent" "$work"
echo
echo "== ringseed info"
"$bin" info "$work/sample.torrent"
echo
echo "== ringseed seed (127.0.0.1) and ringseed download (127.0.0.2)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" seed "$work/sample.torrent" --data "$work" --listen "127.0.0.1:$port" \
    --bind-address 127.0.0.1 2> "$work/seed.log" &
seeder=$!
trap 'kill "$seeder" 2>/dev/null || true; ((keep == 1)) || rm -rf "$work"' EXIT
for _ in $(seq 100); do
    grep -q "listening on" "$work/seed.log" && break
    sleep 0.1
done
cat "$work/seed.log"
timeout 120 "$bin" download "$work/sample.torrent" -o "$work/copy" \
    --peer "127.0.0.1:$port" --listen 127.0.0.2:0 --bind-address 127.0.0.2
diff -r "$tree" "$work/copy/sample" && echo "the copy is byte-identical"
kill -TERM "$seeder"
wait "$seeder"
echo "seeder stopped cleanly (exit $?)"
if ((keep == 1)); then
    echo
    echo "kept: $work"
fi
