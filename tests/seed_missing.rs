//! `ringseed seed` when some data is not there (issue 10, item 7).
//!
//! - Two torrents, the second one's data missing: the first is seeded (a
//!   raw peer fetches a block of it and gets the right bytes), the second is
//!   reported by name with "wrong save path?", and SIGTERM still ends the
//!   seeder with status 0.
//! - One file of a multi-file torrent missing: the torrent is seeded from the
//!   other files; the report line says `NAME: G of M pieces good; missing:
//!   NAME/FILE` with G the pieces that do not touch the missing file; a good
//!   piece is served, a piece of the missing file is not, and the seeder
//!   creates nothing (the missing file stays missing).
//!
//! Addresses: 127.0.13.1-4. Every wait is bounded; the seeders are killed by
//! pid when their guards drop.

mod common;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};

use common::engine::*;
use common::raw_peer::*;
use common::*;

const SEEDER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 13, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 13, 2);
const PIECE_LENGTH: u64 = 16 * 1024;
const BLOCK: u32 = 16 * 1024;

/// Bytes `[at, at + len)` of the tree's data stream (files in torrent
/// order), read from disk.
fn stream_bytes(files: &[JsonFile], save_dir: &std::path::Path, at: u64, len: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for f in files {
        let (start, end) = (f.offset, f.offset + f.length);
        let (lo, hi) = (at.max(start), (at + len).min(end));
        if lo >= hi {
            continue;
        }
        let path = save_dir.join(&f.path);
        let data = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let (a, b) = ((lo - start) as usize, (hi - start) as usize);
        out.extend_from_slice(data.get(a..b).unwrap_or_default());
    }
    out
}

/// A raw peer of `torrent` at `seeder`, handshaken.
fn peer(torrent: &std::path::Path, seeder: SocketAddr, pieces: u32, tag: u8) -> RawPeer {
    let hash = ringseed::InfoHash(info_hash_of(torrent));
    let mut p = RawPeer::connect(PEER_IP, seeder, pieces).unwrap_or_else(|e| panic!("{e}"));
    p.handshake(&our_handshake(hash, [0; 8], tag))
        .unwrap_or_else(|e| panic!("handshake: {e:?}"));
    p
}

#[test]
fn a_torrent_without_data_does_not_stop_the_others() {
    let dir = tempdir();
    let good = make_tree(dir.path(), "present", 0x5ee0_0001);
    let gone = make_tree(dir.path(), "absent", 0x5ee0_0002);
    let good_t = create_torrent(&good, "present.torrent", &["--piece-length", "16K"]);
    let gone_t = create_torrent(&gone, "absent.torrent", &["--piece-length", "16K"]);
    fs::remove_dir_all(gone.root()).unwrap_or_else(|e| panic!("rm: {e}"));
    let info = info_json(&good_t);
    let files = json_files(&info);
    let pieces = json_u64(&info, "num_pieces") as u32;

    let listen = SocketAddr::from((SEEDER_IP, free_port(SEEDER_IP)));
    let args = [
        os("seed"),
        os("--no-dht"),
        os(&good_t),
        os(&gone_t),
        os("--save-path"),
        os(dir.path()),
        os("--listen"),
        os(listen.to_string()),
        os("--bind-address"),
        os(SEEDER_IP.to_string()),
    ];
    let mut seeder = Daemon::spawn("seeder", &args);
    let addr = seeder.wait_listening("ringseed", listen);
    let report = seeder
        .wait_line(LISTEN_WAIT_MAX, |l| l.contains("WARN absent:"))
        .unwrap_or_else(|e| panic!("no line about `absent`: {e}\n{}", seeder.describe()));
    assert!(
        report.contains("wrong save path?"),
        "the torrent with no data should be reported as such: {report:?}\n{}",
        seeder.describe()
    );
    let good_line = format!("present: {pieces} of {pieces} pieces good");
    assert!(
        seeder.stderr().contains(&good_line),
        "expected {good_line:?}\n{}",
        seeder.describe()
    );
    let mut p = peer(&good_t, addr, pieces, b'a');
    let block = p
        .fetch_block(1, 0, BLOCK)
        .unwrap_or_else(|e| panic!("the good torrent is not served: {e}\n{}", seeder.describe()));
    assert!(
        block == stream_bytes(&files, dir.path(), PIECE_LENGTH, u64::from(BLOCK)),
        "piece 1 of `present` came back with wrong bytes"
    );
    assert!(!gone.root().exists(), "seeding created the missing folder");
    seeder.terminate_cleanly();
}

#[test]
fn one_missing_file_leaves_the_other_pieces_seeded() {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "partial", 0x5ee0_0003);
    let torrent = create_torrent(&tree, "partial.torrent", &["--piece-length", "16K"]);
    let info = info_json(&torrent);
    let files = json_files(&info);
    let pieces = json_u64(&info, "num_pieces");
    let rel = "beta/gamma/1.bin";
    let gone = find_json_file(&files, &tree.name, rel).clone();
    assert!(gone.length > 0);
    fs::remove_file(tree.path_of(rel)).unwrap_or_else(|e| panic!("rm {rel}: {e}"));
    let first_bad = gone.offset / PIECE_LENGTH;
    let last_bad = (gone.offset + gone.length - 1) / PIECE_LENGTH;
    let good = pieces - (last_bad - first_bad + 1);
    // A piece wholly outside the missing file.
    let good_piece: u64 = if first_bad > 0 { 0 } else { last_bad + 1 };

    let (mut seeder, addr) = start_ringseed_seed(
        "seeder",
        &torrent,
        dir.path(),
        Ipv4Addr::new(127, 0, 13, 3),
        &[],
    );
    let want = format!("partial: {good} of {pieces} pieces good; missing: partial/{rel}");
    assert!(
        seeder.stderr().contains(&want),
        "expected the report {want:?}\n{}",
        seeder.describe()
    );
    let n = pieces as u32;
    let mut p = peer(&torrent, addr, n, b'b');
    let block = p
        .fetch_block(good_piece as u32, 0, BLOCK)
        .unwrap_or_else(|e| panic!("a good piece is not served: {e}\n{}", seeder.describe()));
    assert!(
        block
            == stream_bytes(
                &files,
                dir.path(),
                good_piece * PIECE_LENGTH,
                u64::from(BLOCK)
            ),
        "piece {good_piece} came back with wrong bytes"
    );
    let mut q = peer(&torrent, addr, n, b'c');
    let missing = q.fetch_block(first_bad as u32, 0, BLOCK);
    assert!(
        missing.is_err(),
        "a piece of the missing file was served\n{}",
        seeder.describe()
    );
    assert!(
        !tree.path_of(rel).exists(),
        "seeding created the missing file"
    );
    seeder.terminate_cleanly();
}
