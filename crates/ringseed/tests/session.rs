//! The session, in process, on loopback: torrents added, served, paused,
//! resumed, checked again, limited, removed while a peer downloads and
//! added back, and a big torrent checked while a small one serves. The
//! peers are raw sockets speaking the wire by hand (`tests/common/raw_peer.rs`
//! of the command line's tests, shared), so every byte served is checked.

#[path = "../../../tests/common/raw_peer.rs"]
#[allow(dead_code)]
mod raw_peer;

#[path = "support/torrent.rs"]
mod torrent;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raw_peer::{our_handshake, RawPeer};
use ringseed::metainfo::{Metainfo, NewFile, TorrentBuilder};
use ringseed::rng::Rng;
use ringseed::runtime::session::{
    AddTorrent, Have, Mode, Session, SessionConfig, SessionError, Settings, TorrentId,
    TorrentLimits, TorrentState,
};
use ringseed::wire::{encode, reserved_bits, Message};
use torrent::torrent_of;

/// Longest any state change may take.
const STATE_WAIT_MAX: Duration = Duration::from_secs(20);
const BLOCK: u32 = 16 * 1024;

fn session(shards: usize) -> Session {
    let config = SessionConfig {
        shards,
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        pin: false,
        check_hash_threads: 1,
        ..SessionConfig::default()
    };
    Session::start(config, Settings::default()).unwrap_or_else(|e| panic!("session: {e}"))
}

fn wait_state(s: &Session, id: TorrentId, ok: impl Fn(TorrentState) -> bool, what: &str) {
    let deadline = Instant::now() + STATE_WAIT_MAX;
    loop {
        let snap = s
            .torrent(id)
            .unwrap_or_else(|e| panic!("snapshot of {id}: {e}"));
        if ok(snap.state) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never became {what}: {snap:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn seeding(s: &Session, id: TorrentId) {
    wait_state(s, id, |st| st == TorrentState::Seeding, "seeding");
}

/// A peer from `ip` that handshook for `m`.
fn peer(addr: SocketAddr, ip: [u8; 4], m: &Metainfo) -> RawPeer {
    let pieces = m.info.pieces.len() as u32;
    let mut p = RawPeer::connect(Ipv4Addr::from(ip), addr, pieces).unwrap();
    let hs = our_handshake(m.info_hash, reserved_bits(true, true, false), ip[3]);
    let reply = p
        .handshake(&hs)
        .unwrap_or_else(|e| panic!("handshake: {e:?}"));
    assert_eq!(reply.info_hash, m.info_hash);
    p
}

/// Fetches every block of `m` through `p` and compares with `data`.
fn fetch_all(p: &mut RawPeer, m: &Metainfo, data: &[u8]) {
    let pl = m.info.piece_length as usize;
    for (i, piece) in data.chunks(pl).enumerate() {
        let mut at = 0;
        while at < piece.len() {
            let len = (piece.len() - at).min(BLOCK as usize);
            let block = if i == 0 && at == 0 {
                p.fetch_block(0, 0, len as u32)
            } else {
                request(p, i as u32, at as u32, len as u32)
            }
            .unwrap_or_else(|e| panic!("piece {i} at {at}: {e}"));
            assert_eq!(block, &piece[at..at + len], "piece {i} at {at}");
            at += len;
        }
    }
}

/// One more request on a peer already unchoked.
fn request(p: &mut RawPeer, piece: u32, offset: u32, length: u32) -> Result<Vec<u8>, String> {
    let mut msg = Vec::new();
    encode(
        &Message::Request {
            piece,
            offset,
            length,
        },
        &mut msg,
    );
    p.send(&msg).map_err(|e| format!("request: {e:?}"))?;
    let deadline = Instant::now() + raw_peer::BLOCK_WAIT_MAX;
    loop {
        match p.next(deadline) {
            Ok(raw_peer::Got::Piece {
                piece: pp,
                offset: o,
                block,
            }) if pp == piece && o == offset => return Ok(block),
            Ok(raw_peer::Got::Choke) => return Err("choked".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("{e:?}")),
        }
    }
}

#[test]
fn torrents_change_while_peers_are_connected() {
    let dir = tempfile::tempdir().unwrap();
    let data = Rng::new(7).bytes(600 * 1024 + 123);
    let m = torrent_of(dir.path(), "a.bin", &data, 64 * 1024);
    let s = session(2);
    let addr = s.local_addr();
    let id = s
        .add_torrent(AddTorrent::new(m.clone(), dir.path().into(), Mode::Seed))
        .unwrap();
    seeding(&s, id);
    let snap = s.torrent(id).unwrap();
    assert_eq!((snap.pieces_have, snap.pieces), (10, 10));
    assert_eq!(snap.info_hash, m.info_hash);

    // Adding it twice is refused, naming the id it has.
    let again = s.add_torrent(AddTorrent::new(m.clone(), dir.path().into(), Mode::Seed));
    assert!(
        matches!(again, Err(SessionError::Duplicate { id: d, .. }) if d == id),
        "{again:?}"
    );

    // A peer downloads every byte.
    let mut p1 = peer(addr, [127, 0, 0, 2], &m);
    fetch_all(&mut p1, &m, &data);

    // Removed while that peer is connected (and has been served): its
    // connection closes, the id names nothing, the files stay.
    let mut p2 = peer(addr, [127, 0, 0, 3], &m);
    let _ = p2.fetch_block(1, 0, BLOCK).unwrap();
    // Many requests in flight when the removal comes.
    let mut burst = Vec::new();
    for piece in 0..10u32 {
        for block in 0..4u32 {
            let m = Message::Request {
                piece,
                offset: block * BLOCK,
                length: BLOCK,
            };
            encode(&m, &mut burst);
        }
    }
    p2.send(&burst).unwrap();
    let removed = s.remove(id, false).unwrap();
    assert_eq!(removed.files, vec![dir.path().join("a.bin")]);
    p1.wait_closed(STATE_WAIT_MAX).unwrap();
    p2.wait_closed(STATE_WAIT_MAX).unwrap();
    assert!(matches!(
        s.torrent(id),
        Err(SessionError::UnknownTorrent(_))
    ));
    assert!(matches!(s.pause(id), Err(SessionError::UnknownTorrent(_))));
    assert!(s.snapshot().unwrap().is_empty());
    assert!(dir.path().join("a.bin").exists());

    // Added back: a new id, served again from the start.
    let id2 = s
        .add_torrent(AddTorrent::new(m.clone(), dir.path().into(), Mode::Seed))
        .unwrap();
    assert_ne!(id2, id);
    seeding(&s, id2);
    let mut p3 = peer(addr, [127, 0, 0, 4], &m);
    fetch_all(&mut p3, &m, &data);
    let up = s.torrent(id2).unwrap().uploaded;
    assert!(up >= data.len() as u64, "uploaded {up}");

    // Paused: its peers are closed and newcomers refused; resumed: served.
    s.pause(id2).unwrap();
    p3.wait_closed(STATE_WAIT_MAX).unwrap();
    wait_state(&s, id2, |st| st == TorrentState::Paused, "paused");
    let mut refused = RawPeer::connect(Ipv4Addr::new(127, 0, 0, 5), addr, 10).unwrap();
    let hs = our_handshake(m.info_hash, reserved_bits(true, true, false), 5);
    assert!(refused.handshake(&hs).is_err(), "a paused torrent answered");
    // The counts stay across a pause.
    assert_eq!(s.torrent(id2).unwrap().uploaded, up);
    s.resume(id2).unwrap();
    seeding(&s, id2);
    let mut p4 = peer(addr, [127, 0, 0, 6], &m);
    fetch_all(&mut p4, &m, &data);

    // Checked again while a peer is connected: the peer goes, the check
    // runs, serving resumes with every piece.
    s.recheck(id2).unwrap();
    p4.wait_closed(STATE_WAIT_MAX).unwrap();
    seeding(&s, id2);
    assert_eq!(s.torrent(id2).unwrap().pieces_have, 10);

    // Limits and peer addresses.
    let limits = TorrentLimits {
        upload_rate: Some(1 << 20),
        download_rate: None,
    };
    s.set_limits(id2, limits).unwrap();
    assert_eq!(s.torrent(id2).unwrap().limits, limits);
    let a: SocketAddr = "127.0.0.9:1".parse().unwrap();
    assert_eq!(s.add_peers(id2, vec![a, a]).unwrap(), 1);
    assert_eq!(s.add_peers(id2, vec![a]).unwrap(), 0);

    // Settings change for every torrent; a bad value is refused by name
    // before it reaches a shard.
    let mut raw = s.settings().to_raw();
    raw.engine.peers_per_torrent_max = 50;
    raw.limits.upload_rate = 10 << 20;
    let changed = s.apply_settings(Settings::check(raw).unwrap()).unwrap();
    assert_eq!(changed, vec!["torrent engine", "rate limits"]);
    let mut bad = s.settings().to_raw();
    bad.engine.peers_per_torrent_max = 0;
    assert!(Settings::check(bad).is_err());
    let mut p5 = peer(addr, [127, 0, 0, 7], &m);
    fetch_all(&mut p5, &m, &data);

    // Removed with its files.
    s.remove(id2, true).unwrap();
    assert!(!dir.path().join("a.bin").exists());
    let report = s.stop();
    assert!(report.uploaded >= 4 * data.len() as u64, "{report:?}");
}

#[test]
fn a_download_added_at_run_time_completes_from_a_seed_of_the_same_session() {
    // Two sessions: one seeds, the other is told the address and downloads.
    let seed_dir = tempfile::tempdir().unwrap();
    let leech_dir = tempfile::tempdir().unwrap();
    let data = Rng::new(11).bytes(3 * 256 * 1024 + 5000);
    let m = torrent_of(seed_dir.path(), "d.bin", &data, 256 * 1024);
    let seeder = session(1);
    let sid = seeder
        .add_torrent(AddTorrent::new(
            m.clone(),
            seed_dir.path().into(),
            Mode::Seed,
        ))
        .unwrap();
    seeding(&seeder, sid);
    let leecher = session(2);
    let mut add = AddTorrent::new(m.clone(), leech_dir.path().into(), Mode::Download);
    add.peers = vec![seeder.local_addr()];
    let lid = leecher.add_torrent(add).unwrap();
    seeding(&leecher, lid);
    let snap = leecher.torrent(lid).unwrap();
    assert!(snap.is_complete(), "{snap:?}");
    assert_eq!(snap.downloaded, data.len() as u64);
    assert_eq!(std::fs::read(leech_dir.path().join("d.bin")).unwrap(), data);
    // Every piece downloaded is written: the daemon may record them all.
    let pieces = leecher.pieces(lid).unwrap();
    assert_eq!(pieces.count_ones(), m.info.pieces.len());
    // The one check (of the empty files) then 4 pieces written.
    assert_eq!(leecher.pieces_versions().unwrap(), [(lid, (1 << 32) | 4)]);
    leecher.stop();
    seeder.stop();
}

#[test]
fn a_big_check_runs_while_another_torrent_serves_and_stop_cancels_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = Rng::new(3).bytes(200 * 1024);
    let small = torrent_of(dir.path(), "small.bin", &data, 32 * 1024);
    // 4 GiB of holes, with made-up hashes: the check reads it all.
    let big_len: u64 = 4 << 30;
    let f = std::fs::File::create(dir.path().join("big.bin")).unwrap();
    f.set_len(big_len).unwrap();
    let piece_length: u64 = 4 << 20;
    let b = TorrentBuilder {
        name: "big.bin".into(),
        files: vec![NewFile {
            path: vec![],
            length: big_len,
        }],
        single_file: true,
        piece_length,
        ..TorrentBuilder::default()
    };
    let hashes = vec![[7u8; 20]; (big_len / piece_length) as usize];
    let big = Arc::new(Metainfo::from_bytes(&b.build(&hashes).unwrap()).unwrap());

    let s = session(2);
    let addr = s.local_addr();
    let sid = s
        .add_torrent(AddTorrent::new(
            small.clone(),
            dir.path().into(),
            Mode::Seed,
        ))
        .unwrap();
    seeding(&s, sid);
    let bid = s
        .add_torrent(AddTorrent::new(big, dir.path().into(), Mode::Download))
        .unwrap();
    wait_state(
        &s,
        bid,
        |st| matches!(st, TorrentState::Checking { pieces_checked } if pieces_checked > 0),
        "checking",
    );
    // The small one serves meanwhile.
    let mut p = peer(addr, [127, 0, 0, 2], &small);
    fetch_all(&mut p, &small, &data);
    let st = s.torrent(bid).unwrap().state;
    assert!(
        matches!(st, TorrentState::Checking { pieces_checked } if pieces_checked < 1024),
        "the check ended before the small torrent was served: {st:?}"
    );
    // Stopping cancels the check at once.
    let started = Instant::now();
    s.stop();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "stop took {took:?}");
}

#[test]
fn resume_data_serves_at_once_and_a_paused_add_waits() {
    let dir = tempfile::tempdir().unwrap();
    let data = Rng::new(5).bytes(100 * 1024);
    let m = torrent_of(dir.path(), "r.bin", &data, 16 * 1024);
    let s = session(1);
    let mut have = ringseed::torrent::Bitfield::new(m.info.pieces.len()).unwrap();
    for i in 0..m.info.pieces.len() {
        have.set(i).unwrap();
    }
    let mut add = AddTorrent::new(m.clone(), dir.path().into(), Mode::Seed);
    add.have = Have::Known(have);
    add.paused = true;
    add.uploaded_before = 1000;
    let id = s.add_torrent(add).unwrap();
    let snap = s.torrent(id).unwrap();
    assert_eq!(snap.state, TorrentState::Paused);
    assert_eq!(snap.uploaded, 1000);
    assert_eq!(snap.pieces_have, snap.pieces);
    s.resume(id).unwrap();
    // No check: serving right away.
    assert_eq!(s.torrent(id).unwrap().state, TorrentState::Seeding);
    let mut p = peer(s.local_addr(), [127, 0, 0, 2], &m);
    fetch_all(&mut p, &m, &data);
    assert!(s.torrent(id).unwrap().uploaded >= 1000 + data.len() as u64);
    s.stop();
}
