//! SIGTERM during a data check: `ringseed seed` with a 4 GiB torrent (a
//! sparse file: the check reads 4 GiB of zeros) and a small one. While the
//! big one is being checked the small one is already served to a raw peer;
//! SIGTERM then ends the process, status 0, within 1 s.
//!
//! Addresses: 127.0.9.1 (seeder), 127.0.9.2 (peer). Every wait is bounded;
//! the seeder is killed by pid when its guard drops.

mod common;

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use common::engine::{free_port, os, Daemon};
use common::raw_peer::{our_handshake, RawPeer};
use common::*;
use ringseed::hash::sha1;
use ringseed::metainfo::{Metainfo, NewFile, TorrentBuilder};
use ringseed::wire::reserved_bits;

const SEEDER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 9, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 9, 2);
const BIG_BYTES: u64 = 4 << 30;
const BIG_PIECE_BYTES: u64 = 4 << 20;
/// The bound from SIGTERM to exit.
const EXIT_AFTER_SIGTERM_MAX: Duration = Duration::from_secs(1);
/// Longest the small torrent's check and the big one's start may take.
const READY_WAIT_MAX: Duration = Duration::from_secs(30);

fn write_torrent(path: &Path, name: &str, length: u64, piece_length: u64, hashes: &[[u8; 20]]) {
    let b = TorrentBuilder {
        name: name.into(),
        files: vec![NewFile {
            path: vec![],
            length,
        }],
        single_file: true,
        piece_length,
        ..TorrentBuilder::default()
    };
    let bytes = b.build(hashes).unwrap_or_else(|e| panic!("{name}: {e}"));
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

#[test]
fn sigterm_during_a_4_gib_check_exits_within_a_second_while_others_serve() {
    let dir = tempdir();
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap_or_else(|e| panic!("{e}"));
    // The small torrent, real data.
    let mut small = vec![0u8; 96 * 1024];
    XorShift64::new(9).fill(&mut small);
    std::fs::write(data_dir.join("small.bin"), &small).unwrap_or_else(|e| panic!("{e}"));
    let small_hashes: Vec<[u8; 20]> = small.chunks(32 * 1024).map(sha1).collect();
    let small_torrent = dir.path().join("small.torrent");
    write_torrent(
        &small_torrent,
        "small.bin",
        small.len() as u64,
        32 * 1024,
        &small_hashes,
    );
    // The big one: holes, and hashes that never match (the check reads all).
    let big = std::fs::File::create(data_dir.join("big.bin")).unwrap_or_else(|e| panic!("{e}"));
    big.set_len(BIG_BYTES).unwrap_or_else(|e| panic!("{e}"));
    let big_torrent = dir.path().join("big.torrent");
    let big_hashes = vec![[1u8; 20]; (BIG_BYTES / BIG_PIECE_BYTES) as usize];
    write_torrent(
        &big_torrent,
        "big.bin",
        BIG_BYTES,
        BIG_PIECE_BYTES,
        &big_hashes,
    );

    let listen = SocketAddr::from((SEEDER_IP, free_port(SEEDER_IP)));
    let args: Vec<OsString> = vec![
        os("seed"),
        os("--no-dht"),
        os(&small_torrent),
        os(&big_torrent),
        os("--data"),
        os(&data_dir),
        os("--listen"),
        os(listen.to_string()),
        os("--bind-address"),
        os(SEEDER_IP.to_string()),
    ];
    let mut seeder = Daemon::spawn("seeder", &args);
    // The small torrent is checked first (one check at a time, in order)
    // and served while the big one is checked.
    if let Err(why) = seeder.wait_line(READY_WAIT_MAX, |l| {
        l.contains("small.bin: 3 of 3 pieces good")
    }) {
        panic!(
            "the small torrent was not checked: {why}\n{}",
            seeder.describe()
        );
    }
    let m = Metainfo::from_bytes(&std::fs::read(&small_torrent).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut peer = RawPeer::connect(PEER_IP, listen, 3).unwrap_or_else(|e| panic!("{e}"));
    let hs = our_handshake(m.info_hash, reserved_bits(true, true, false), 2);
    peer.handshake(&hs)
        .unwrap_or_else(|e| panic!("handshake: {e:?}\n{}", seeder.describe()));
    let block = peer
        .fetch_block(2, 0, 16 * 1024)
        .unwrap_or_else(|e| panic!("block: {e}\n{}", seeder.describe()));
    assert_eq!(block, small[64 * 1024..80 * 1024]);
    // `listening on` comes once every first check has ended.
    let still_checking = !seeder.stderr().contains("listening on");
    assert!(
        still_checking,
        "the 4 GiB check ended before the test could interrupt it\n{}",
        seeder.describe()
    );
    let sent = Instant::now();
    seeder.signal(libc::SIGTERM);
    let mut status = None;
    while status.is_none() && sent.elapsed() < Duration::from_secs(10) {
        status = seeder.poll_exit();
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = sent.elapsed();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "no clean exit after SIGTERM\n{}",
        seeder.describe()
    );
    assert!(
        took < EXIT_AFTER_SIGTERM_MAX,
        "exit took {took:?} after SIGTERM\n{}",
        seeder.describe()
    );
}
