#!/usr/bin/env bash
# The main job on a default configuration: build ringseed in release mode,
# generate a sample tree (nested folders, an empty file, about 8 MB of random
# data) in a temporary directory, then `create` a torrent of it, `verify` the
# data against the torrent and print it with `info`.
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
if ((keep == 1)); then
    echo
    echo "kept: $work"
fi
