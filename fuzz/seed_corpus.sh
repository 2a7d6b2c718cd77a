#!/usr/bin/env bash
# Writes small seed corpora for the fuzz targets into fuzz/corpus/<target>/.
# The corpus itself is not committed (git-ignored); run this once before fuzzing.
set -euo pipefail
cd "$(dirname "$0")"

seed() { # seed TARGET NAME CONTENT
    mkdir -p "corpus/$1"
    printf '%s' "$3" >"corpus/$1/$2"
}

seed bencode int 'i42e'
seed bencode neg 'i-7e'
seed bencode str '4:spam'
seed bencode list 'l4:spami3ee'
seed bencode dict 'd3:cow3:moo4:spam4:eggse'
seed bencode nested 'd4:infod6:lengthi12e4:name5:a.txt12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaaee'
seed bencode unsorted 'd1:bi1e1:ai2ee'
seed bencode prefix 'i1ejunk'

seed magnet hex 'magnet:?xt=urn:btih:c0fda1edafdbdbb96443424e0b3899af7159d10e'
seed magnet base32 'magnet:?xt=urn:btih:YD62D3NP3PN3SZCDIJHAWOEZV5YVTUIO&dn=file'
seed magnet full 'magnet:?xt=urn:btih:C0FDA1EDAFDBDBB96443424E0B3899AF7159D10E&dn=Some+Name%20here&xl=12345&tr=udp%3A%2F%2Ftracker.example%3A6969%2Fannounce&tr.1=http://t.example/a&ws=http%3A%2F%2Fseed.example%2Ff&x.pe=10.0.0.1:6881&so=0,2,4-6&foo=bar'
seed magnet v2 'magnet:?xt=urn:btmh:1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e'
seed magnet hybrid 'magnet:?xt=urn:btih:631a31dd0a46257d5078c0dee4e66e26f73e42ac&xt=urn:btmh:1220d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb&dn=bittorrent-v1-v2-hybrid-test'

# KRPC (DHT) messages: a query of each kind, answers, an error.
seed krpc ping 'd1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe'
seed krpc find_node 'd1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe'
seed krpc get_peers 'd1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe'
seed krpc announce 'd1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe'
seed krpc values 'd1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re'
seed krpc error 'd1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee'

# BEP 9 / BEP 11 extension messages (the bytes after the extended id).
seed ext_messages md_request 'd8:msg_typei0e5:piecei0ee'
seed ext_messages md_data 'd8:msg_typei1e5:piecei0e10:total_sizei3eeabc'
seed ext_messages md_reject 'd8:msg_typei2e5:piecei0ee'
seed ext_messages pex 'd5:added6:abcdef7:added.f1:x7:dropped6:ghijkle'
seed ext_messages pex6 'd6:added618:abcdefghijklmnopqr8:added6.f1:x8:dropped60:e'

mkdir -p corpus/metainfo
cp corpus/bencode/nested corpus/metainfo/single_file
# Real .torrent files make much better seeds for metainfo (and bencode): use
# libtorrent's test torrents from shared/ beside the checkout when they are there.
torrents="${TORRENT_SEEDS:-../../shared/corpus/libtorrent-test-torrents}"
if [ -d "$torrents" ]; then
    for t in "$torrents"/*.torrent; do
        [ -f "$t" ] || continue
        cp "$t" corpus/metainfo/
        cp "$t" corpus/bencode/
    done
fi
# webapi_form input: a selector byte (its value mod 8 picks the Content-Type:
# 0 urlencoded, 1-3 multipart with a boundary, 4 multipart without one,
# 5 text/plain, 6 none, 7 the body's own up to a NUL byte), the query's
# length as one byte, the query, then the body.
seed_form() { # seed_form NAME SELECTOR QUERY BODY
    mkdir -p corpus/webapi_form
    { printf '%s' "$2"; printf "\\$(printf '%03o' "${#3}")"; printf '%s%s' "$3" "$4"; } >"corpus/webapi_form/$1"
}
seed_form sonarr 0 'category=tv' 'urls=magnet%3A%3Fxt%3Durn%3Abtih%3A0123456789abcdef0123456789abcdef01234567%26dn%3DShow&category=tv-sonarr&paused=false&savepath=%2Fdata%2FTV+Shows'
seed_form hashes 0 'hashes=a|b&deleteFiles=true' 'hashes=aaa%7Cbbb|ccc&tags=a,b,%20c%20&deleteFiles=True&limit=10&ratioLimit=1.5'
seed_form query_only 6 'filter=seeding&category=&sort=ratio&reverse=TRUE&limit=-1' ''
seed_form qbittorrent_api 1 '' $'--q\r\nContent-Disposition: form-data; name="torrents"; filename="a.torrent"\r\nContent-Type: application/x-bittorrent\r\n\r\nd4:infod4:name1:a6:lengthi1eee\r\n--q\r\nContent-Disposition: form-data; name="savepath"\r\n\r\n/data/seed\r\n--q\r\nContent-Disposition: form-data; name="tags"\r\n\r\nx,y\r\n--q\r\nContent-Disposition: form-data; name="paused"\r\n\r\nTrue\r\n--q--\r\n'
seed_form browser 2 '' $'------WebKitFormBoundary7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; name="fileselect[]"; filename="b.torrent"\r\nContent-Type: application/x-bittorrent\r\n\r\nd4:infodee\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; name="urls"\r\n\r\nmagnet:?xt=urn:btih:x\nhttp://t/a.torrent\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n'
{ printf '7\000'; printf '%s\000' 'multipart/form-data; charset=utf-8; BOUNDARY="a b"'; printf '%s' $'preamble\r\n--a b \r\ncontent-disposition: form-data; name=f; filename*=UTF-8\'\'%E2%9C%93.torrent\r\n\r\nx\r\n--a b--'; } >corpus/webapi_form/custom_type

echo "seeded: $(ls corpus/bencode | wc -l) bencode, $(ls corpus/magnet | wc -l) magnet, $(ls corpus/metainfo | wc -l) metainfo, $(ls corpus/webapi_form | wc -l) webapi_form"
