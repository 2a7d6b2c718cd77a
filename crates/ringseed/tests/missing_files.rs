//! A seeding torrent with a file missing (issue 10, item 7), in process on
//! loopback: the session seeds the pieces of the files that are there, lists
//! the missing file in the snapshot and creates nothing; once the file is put
//! back, a check again finds it, opens it and serves its bytes (not zeros).
//! The peer is a raw socket (`tests/common/raw_peer.rs`), so every byte
//! served is compared. Address: 127.0.13.30 (the session listens on
//! 127.0.0.1).

#[path = "../../../tests/common/raw_peer.rs"]
#[allow(dead_code)]
mod raw_peer;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raw_peer::{our_handshake, RawPeer};
use ringseed::hash::sha1;
use ringseed::metainfo::{Metainfo, NewFile, TorrentBuilder};
use ringseed::runtime::session::{
    AddTorrent, Mode, Session, SessionConfig, Settings, TorrentId, TorrentSnapshot, TorrentState,
};
use ringseed::wire::{encode, reserved_bits, Message};

/// Longest any state change may take.
const STATE_WAIT_MAX: Duration = Duration::from_secs(20);
const PIECE: u64 = 16 * 1024;
const A_BYTES: usize = 40_000;
const B_BYTES: usize = 30_000;

fn wait_for(s: &Session, id: TorrentId, what: &str, ok: impl Fn(&TorrentSnapshot) -> bool) {
    let deadline = Instant::now() + STATE_WAIT_MAX;
    loop {
        let snap = s.torrent(id).unwrap_or_else(|e| panic!("{e}"));
        if ok(&snap) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {snap:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Requests block (piece, 0, len) on an unchoked peer.
fn block(p: &mut RawPeer, piece: u32, len: u32) -> Result<Vec<u8>, String> {
    let mut msg = Vec::new();
    encode(
        &Message::Request {
            piece,
            offset: 0,
            length: len,
        },
        &mut msg,
    );
    p.send(&msg).map_err(|e| format!("request: {e:?}"))?;
    let deadline = Instant::now() + raw_peer::BLOCK_WAIT_MAX;
    loop {
        match p.next(deadline) {
            Ok(raw_peer::Got::Piece {
                piece: got, block, ..
            }) if got == piece => return Ok(block),
            Ok(raw_peer::Got::Reject { .. }) => return Err("rejected".into()),
            Ok(raw_peer::Got::Choke) => return Err("choked".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("{e:?}")),
        }
    }
}

#[test]
fn a_missing_file_is_listed_and_found_again_by_a_recheck() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut data = vec![0u8; A_BYTES + B_BYTES];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8 | 1;
    }
    let hashes: Vec<[u8; 20]> = data.chunks(PIECE as usize).map(sha1).collect();
    let b = TorrentBuilder {
        name: "t".into(),
        files: vec![
            NewFile {
                path: vec!["a.bin".into()],
                length: A_BYTES as u64,
            },
            NewFile {
                path: vec!["sub".into(), "b.bin".into()],
                length: B_BYTES as u64,
            },
        ],
        piece_length: PIECE,
        ..TorrentBuilder::default()
    };
    let m = Arc::new(
        Metainfo::from_bytes(&b.build(&hashes).unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let root = dir.path().join("t");
    std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(root.join("a.bin"), &data[..A_BYTES]).unwrap_or_else(|e| panic!("{e}"));

    let config = SessionConfig {
        shards: 1,
        listen: vec!["127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"))],
        pin: false,
        check_hash_threads: 1,
        ..SessionConfig::default()
    };
    let s = Session::start(config, Settings::default()).unwrap_or_else(|e| panic!("{e}"));
    let id = s
        .add_torrent(AddTorrent::new(
            m.clone(),
            dir.path().to_path_buf(),
            Mode::Seed,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
    // Pieces 0 and 1 lie in a.bin; 2 spans both files; 3 and 4 are b.bin's.
    wait_for(&s, id, "seeding 2 of 5 with t/sub/b.bin missing", |t| {
        t.state == TorrentState::Seeding && t.pieces_have == 2
    });
    let snap = s.torrent(id).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(snap.missing_files, vec!["t/sub/b.bin".to_string()]);
    assert!(!root.join("sub").exists(), "seeding created a folder");

    let pieces = m.info.pieces.len() as u32;
    let addr = s.local_addr();
    let mut p = RawPeer::connect(Ipv4Addr::new(127, 0, 13, 30), addr, pieces)
        .unwrap_or_else(|e| panic!("{e}"));
    p.handshake(&our_handshake(
        m.info_hash,
        reserved_bits(true, true, false),
        1,
    ))
    .unwrap_or_else(|e| panic!("handshake: {e:?}"));
    let got = p
        .fetch_block(1, 0, PIECE as u32)
        .unwrap_or_else(|e| panic!("piece 1: {e}"));
    assert!(
        got == data[PIECE as usize..2 * PIECE as usize],
        "piece 1 bytes"
    );
    assert!(
        block(&mut p, 4, (data.len() as u64 - 4 * PIECE) as u32).is_err(),
        "a piece of the missing file was served"
    );
    drop(p);

    // Put the file back and check again: it is opened and served.
    std::fs::create_dir_all(root.join("sub")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(root.join("sub/b.bin"), &data[A_BYTES..]).unwrap_or_else(|e| panic!("{e}"));
    s.recheck(id).unwrap_or_else(|e| panic!("{e}"));
    wait_for(&s, id, "seeding every piece", |t| {
        t.state == TorrentState::Seeding && t.pieces_have == pieces && t.missing_files.is_empty()
    });
    let mut q = RawPeer::connect(Ipv4Addr::new(127, 0, 13, 30), addr, pieces)
        .unwrap_or_else(|e| panic!("{e}"));
    q.handshake(&our_handshake(
        m.info_hash,
        reserved_bits(true, true, false),
        2,
    ))
    .unwrap_or_else(|e| panic!("handshake: {e:?}"));
    let tail = (data.len() as u64 - 4 * PIECE) as u32;
    let got = q
        .fetch_block(4, 0, tail)
        .unwrap_or_else(|e| panic!("piece 4 after the recheck: {e}"));
    assert!(
        got == data[4 * PIECE as usize..],
        "piece 4 after the recheck: wrong bytes (zeros from a file never opened?)"
    );
    s.stop();
}
