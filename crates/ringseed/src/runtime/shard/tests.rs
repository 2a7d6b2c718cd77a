//! The shard on its own: a real ring, listener and checker, driven turn by
//! turn from the test thread (no shard thread), with the tables' invariants
//! checked after every turn. The session's tests drive whole shards on
//! threads; these look inside one.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::torrents::Phase;
use super::*;
use crate::hash::sha1;
use crate::metainfo::{Metainfo, NewFile, TorrentBuilder};
use crate::runtime::checker::{CheckOutcome, CheckProgress, Checked, Checker};
use crate::runtime::session::control::{ControlError, Removed, Reply, ShardAdd};
use crate::runtime::session::types::{Have, Mode, TorrentLimits};
use crate::runtime::tracker_worker::{TrackerWorker, TrackerWorkerConfig};
use crate::wire::{encode, reserved_bits, Handshake, Message};

/// Longest any test waits for the shard.
const WAIT_MAX: Duration = Duration::from_secs(10);
const PIECE: u64 = 32 * 1024;

struct Rig {
    shard: Shard,
    completions: Vec<Completion<Option<OpCtx>>>,
    addr: SocketAddr,
    _events: Receiver<Event>,
    // Kept alive for the shard's handles; stopped on drop.
    checker: Option<Checker>,
    tracker: Option<TrackerWorker>,
    dir: tempfile::TempDir,
    metainfo: Arc<Metainfo>,
    next_id: u32,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.shard.stop();
        let _ = self.shard.finish();
        if let Some(c) = self.checker.take() {
            c.cancel_all();
        }
        if let Some(t) = self.tracker.take() {
            t.shutdown(Duration::from_millis(100));
        }
    }
}

fn rig() -> Rig {
    rig_with(Settings::default())
}

fn rig_with(settings: Settings) -> Rig {
    let listener = crate::runtime::sockets::tcp_listener(
        "127.0.0.1:0".parse().unwrap(),
        &BindOptions::default(),
        false,
        64,
    )
    .unwrap();
    let addr = listener.local_addr().unwrap();
    let waker = Waker::new().unwrap();
    let (handoff_tx, handoff_rx) = crossbeam_channel::bounded(16);
    let (control_tx, control_rx) = crossbeam_channel::bounded(64);
    let route = Route {
        handoff: handoff_tx,
        control: ControlTx {
            shard: 0,
            tx: control_tx,
            wake: waker.handle(),
            max: 64,
        },
    };
    let tracker = TrackerWorker::start(TrackerWorkerConfig::default()).unwrap();
    let checker = Checker::start(1, 1).unwrap();
    let (events_tx, events) = crossbeam_channel::bounded(1024);
    let spec = ShardSpec {
        index: 0,
        shards: 1,
        listeners: vec![listener],
        handoff: handoff_rx,
        control: control_rx,
        waker,
        routes: vec![route],
        tracker: tracker.handle(),
        checker: checker.handle(),
        events: EventSink {
            tx: events_tx,
            dropped: Arc::default(),
        },
        bind: BindOptions::default(),
        loop_config: LoopConfig {
            ring_entries: 64,
            ops_in_flight_max: 256,
            buffers: 32,
            buffer_bytes: 64 * 1024,
        },
        register_buffers: false,
        epoch: Instant::now(),
        settings: Arc::new(settings),
        peer_id: *b"-RS0100-shardtest000",
        listen_port: addr.port(),
        own_addrs: vec![addr].into(),
        rng_seed: 1,
        board: QuotaBoard::new(1),
        turns: Arc::default(),
        dht: None,
        lsd: None,
        pex: true,
        send_path: crate::runtime::shard::send_path::SendPathMode::Splice,
    };
    let mut shard = Shard::new(spec).unwrap();
    shard.arm_accept();
    shard.arm_wake();
    let dir = tempfile::tempdir().unwrap();
    let data = crate::rng::Rng::new(4).bytes(5 * PIECE as usize + 1000);
    std::fs::write(dir.path().join("s.bin"), &data).unwrap();
    let hashes: Vec<[u8; 20]> = data.chunks(PIECE as usize).map(sha1).collect();
    let b = TorrentBuilder {
        name: "s.bin".into(),
        files: vec![NewFile {
            path: vec![],
            length: data.len() as u64,
        }],
        single_file: true,
        piece_length: PIECE,
        ..TorrentBuilder::default()
    };
    let metainfo = Arc::new(Metainfo::from_bytes(&b.build(&hashes).unwrap()).unwrap());
    Rig {
        shard,
        completions: Vec::new(),
        addr,
        _events: events,
        checker: Some(checker),
        tracker: Some(tracker),
        dir,
        metainfo,
        next_id: 0,
    }
}

fn ask<T>(build: impl FnOnce(Reply<T>) -> Control) -> (Control, Receiver<Result<T, ControlError>>) {
    let (tx, rx) = crossbeam_channel::bounded(1);
    (build(tx), rx)
}

impl Rig {
    fn turn(&mut self) {
        let done = self.shard.turn(&mut self.completions).unwrap();
        assert!(!done, "the shard stopped");
        self.shard.check_invariants();
    }

    /// Turns until `cond` holds (bounded).
    fn until(&mut self, what: &str, cond: impl Fn(&Shard) -> bool) {
        let deadline = Instant::now() + WAIT_MAX;
        while !cond(&self.shard) {
            assert!(Instant::now() < deadline, "never: {what}");
            self.turn();
        }
    }

    fn add(&mut self, have: Have, paused: bool) -> TorrentId {
        self.next_id += 1;
        let id = TorrentId {
            slot: self.next_id,
            generation: 7,
        };
        let storage = match have {
            Have::Known(_) => Some(
                crate::runtime::disk::TorrentStorage::open(&self.metainfo, self.dir.path(), false)
                    .unwrap(),
            ),
            Have::Check | Have::Partial { .. } => None,
        };
        let add = ShardAdd {
            id,
            metainfo: self.metainfo.clone(),
            save_dir: self.dir.path().into(),
            mode: Mode::Seed,
            have,
            storage,
            paused,
            peers: Vec::new(),
            limits: TorrentLimits::default(),
            uploaded_before: 0,
            downloaded_before: 0,
        };
        let (msg, rx) = ask(|reply| Control::Add {
            add: Box::new(add),
            reply,
        });
        self.shard.on_control(msg);
        assert_eq!(rx.try_recv(), Ok(Ok(())));
        id
    }

    fn phase(&self, id: TorrentId) -> Option<&'static str> {
        self.shard.torrents.get(id).map(|e| match e.phase {
            Phase::Checking => "checking",
            Phase::Active => "active",
            Phase::Paused => "paused",
            Phase::Draining(_) => "draining",
            Phase::Error => "error",
        })
    }

    fn all_have(&self) -> crate::torrent::Bitfield {
        let n = self.metainfo.info.pieces.len();
        let mut b = crate::torrent::Bitfield::new(n).unwrap();
        for i in 0..n {
            b.set(i).unwrap();
        }
        b
    }
}

#[test]
fn a_torrent_goes_through_its_phases() {
    let mut r = rig();
    let id = r.add(Have::Check, false);
    assert_eq!(r.phase(id), Some("checking"));
    assert!(r.shard.torrents.get(id).unwrap().run.is_none());
    r.until("checked", |s| {
        s.torrents.get(id).is_some_and(|e| e.is_active())
    });
    assert_eq!(r.shard.torrents.get(id).unwrap().snapshot().pieces_have, 6);
    // Pause with nothing in flight: paused at once.
    let (msg, rx) = ask(|reply| Control::Pause { id, reply });
    r.shard.on_control(msg);
    assert_eq!(rx.try_recv(), Ok(Ok(())));
    assert_eq!(r.phase(id), Some("paused"));
    assert!(r.shard.torrents.get(id).unwrap().run.is_none());
    assert_eq!(r.shard.torrents.get(id).unwrap().have.count_ones(), 6);
    // Resume: a new engine with the same pieces.
    let (msg, _rx) = ask(|reply| Control::Resume { id, reply });
    r.shard.on_control(msg);
    assert_eq!(r.phase(id), Some("active"));
    // Recheck: checking, then active again.
    let (msg, _rx) = ask(|reply| Control::Recheck { id, reply });
    r.shard.on_control(msg);
    assert_eq!(r.phase(id), Some("checking"));
    r.until("rechecked", |s| {
        s.torrents.get(id).is_some_and(|e| e.is_active())
    });
    // Paused while checking: paused once checked, not serving.
    let (msg, _rx) = ask(|reply| Control::Recheck { id, reply });
    r.shard.on_control(msg);
    let (msg, _rx) = ask(|reply| Control::Pause { id, reply });
    r.shard.on_control(msg);
    r.until("checked, paused", |s| {
        s.torrents
            .get(id)
            .is_some_and(|e| matches!(e.phase, Phase::Paused))
    });
    // Removed: gone, routed nowhere, and its id refused from now on.
    let (msg, rx) = ask(|reply| Control::Remove { id, reply });
    r.shard.on_control(msg);
    let removed: Removed = rx.try_recv().unwrap().unwrap();
    assert_eq!(removed.files, vec![r.dir.path().join("s.bin")]);
    assert!(r.shard.torrents.get(id).is_none());
    assert_eq!(r.shard.torrents.by_hash(&r.metainfo.info_hash), None);
    let (msg, rx) = ask(|reply| Control::Resume { id, reply });
    r.shard.on_control(msg);
    assert_eq!(rx.try_recv(), Ok(Err(ControlError::UnknownTorrent(id))));
    r.turn();
}

#[test]
fn a_stale_check_result_is_ignored() {
    let mut r = rig();
    let id = r.add(Have::Check, true);
    // A result from an earlier check (another progress) changes nothing.
    let have = r.all_have();
    let old = CheckOutcome {
        id,
        progress: CheckProgress::new(),
        result: Ok(Checked {
            have,
            storage: None,
        }),
    };
    r.shard.on_control(Control::Checked(Box::new(old)));
    assert_eq!(r.phase(id), Some("checking"));
    r.until("checked", |s| {
        s.torrents
            .get(id)
            .is_some_and(|e| matches!(e.phase, Phase::Paused))
    });
}

/// A raw peer on the test thread: nonblocking, so the shard can be turned
/// between its reads and writes.
fn connect_and_request(r: &mut Rig, blocks: u32) -> TcpStream {
    let mut s = TcpStream::connect(r.addr).unwrap();
    s.set_nonblocking(true).unwrap();
    let hs = Handshake {
        info_hash: r.metainfo.info_hash,
        peer_id: *b"-XX0001-rawpeer00000",
        reserved: reserved_bits(true, true, false),
    }
    .encode();
    let mut out = hs.to_vec();
    encode(&Message::Interested, &mut out);
    for i in 0..blocks {
        encode(
            &Message::Request {
                piece: i / 2,
                offset: (i % 2) * 16 * 1024,
                length: 16 * 1024,
            },
            &mut out,
        );
    }
    s.write_all(&out).unwrap();
    s
}

#[test]
fn a_removal_waits_for_the_reads_in_flight() {
    let mut r = rig();
    // The read path (the splice path has no reads in flight).
    r.shard.pipes = None;
    let have = r.all_have();
    let id = r.add(Have::Known(have), false);
    assert_eq!(r.phase(id), Some("active"));
    let mut peer = connect_and_request(&mut r, 10);
    // Requests before the unchoke are refused; ask again once unchoked.
    r.until("a peer attached", |s| {
        s.torrents
            .running(id)
            .is_some_and(|run| !run.conn_of.is_empty())
    });
    let mut more = Vec::new();
    for i in 0..10u32 {
        encode(
            &Message::Request {
                piece: i / 2,
                offset: (i % 2) * 16 * 1024,
                length: 16 * 1024,
            },
            &mut more,
        );
    }
    peer.write_all(&more).unwrap();
    r.until("reads in flight", |s| {
        s.torrents.get(id).is_some_and(|e| e.io_ops > 0)
    });
    let (msg, rx) = ask(|reply| Control::Remove { id, reply });
    r.shard.on_control(msg);
    // Its files stay open until the reads complete.
    assert_eq!(r.phase(id), Some("draining"));
    assert!(rx.try_recv().is_err(), "answered with reads in flight");
    assert!(r.shard.torrents.get(id).unwrap().storage.is_some());
    r.until("removed", |s| s.torrents.get(id).is_none());
    assert!(rx.try_recv().unwrap().is_ok());
    // The peer's connection is closed.
    let deadline = Instant::now() + WAIT_MAX;
    let mut buf = [0u8; 64 * 1024];
    loop {
        match peer.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "the peer was not closed");
                r.turn();
            }
            Err(_) => break,
        }
    }
    r.until("no connection left", |s| s.conns.is_empty());
}

#[test]
fn a_connection_for_a_paused_torrent_is_refused() {
    let mut r = rig();
    let have = r.all_have();
    let id = r.add(Have::Known(have), true);
    assert_eq!(r.phase(id), Some("paused"));
    let mut peer = connect_and_request(&mut r, 1);
    let deadline = Instant::now() + WAIT_MAX;
    let mut buf = [0u8; 1024];
    loop {
        match peer.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => panic!("a paused torrent answered {n} bytes"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "the connection stayed open");
                r.turn();
            }
            Err(_) => break,
        }
    }
    r.until("no connection left", |s| s.conns.is_empty());
}

#[test]
fn a_started_torrent_takes_its_share_of_the_global_slots_at_once() {
    let mut raw = Settings::default().to_raw();
    raw.limits.upload_slots = 2;
    let mut r = rig_with(Settings::check(raw).unwrap());
    r.turn();
    let have = r.all_have();
    let id = r.add(Have::Known(have), false);
    // No turn in between: a peer arriving now must already meet the cap.
    let quota = r.shard.torrents.running(id).unwrap().torrent.slot_quota();
    assert_eq!(quota, Some(2));
}

/// Serves every block of the torrent to one raw peer and returns the piece
/// messages' payloads by (piece, offset), checking the stream's framing.
fn fetch_all_blocks(r: &mut Rig) -> std::collections::BTreeMap<(u32, u32), Vec<u8>> {
    let mut peer = connect_and_request(r, 0);
    let len = r.metainfo.info.total_length;
    let blocks: Vec<(u32, u32, u32)> = (0..len.div_ceil(16 * 1024))
        .map(|b| {
            let at = b * 16 * 1024;
            let l = (len - at).min(16 * 1024) as u32;
            ((at / PIECE) as u32, (at % PIECE) as u32, l)
        })
        .collect();
    let mut inbuf = Vec::new();
    let mut got = std::collections::BTreeMap::new();
    let mut handshake_seen = false;
    let mut asked = false;
    let deadline = Instant::now() + WAIT_MAX;
    let mut buf = [0u8; 64 * 1024];
    while got.len() < blocks.len() {
        assert!(Instant::now() < deadline, "only {} blocks came", got.len());
        match peer.read(&mut buf) {
            Ok(0) => panic!("the shard closed the connection"),
            Ok(n) => inbuf.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => r.turn(),
            Err(e) => panic!("{e}"),
        }
        if !handshake_seen && inbuf.len() >= 68 {
            inbuf.drain(..68);
            handshake_seen = true;
        }
        while handshake_seen && inbuf.len() >= 4 {
            let n = u32::from_be_bytes([inbuf[0], inbuf[1], inbuf[2], inbuf[3]]) as usize;
            if inbuf.len() < 4 + n {
                break;
            }
            let msg: Vec<u8> = inbuf.drain(..4 + n).skip(4).collect();
            match msg.first() {
                Some(1) if !asked => {
                    asked = true;
                    let mut out = Vec::new();
                    for &(piece, offset, length) in &blocks {
                        encode(
                            &Message::Request {
                                piece,
                                offset,
                                length,
                            },
                            &mut out,
                        );
                    }
                    peer.write_all(&out).unwrap();
                }
                Some(7) => {
                    assert!(msg.len() >= 9, "a piece message of {} bytes", msg.len());
                    let piece = u32::from_be_bytes([msg[1], msg[2], msg[3], msg[4]]);
                    let offset = u32::from_be_bytes([msg[5], msg[6], msg[7], msg[8]]);
                    assert!(
                        got.insert((piece, offset), msg[9..].to_vec()).is_none(),
                        "block {piece}/{offset} came twice"
                    );
                }
                _ => {}
            }
        }
    }
    got
}

#[test]
fn cached_blocks_go_down_the_splice_path_byte_exact() {
    let mut r = rig();
    if r.shard.pipes.is_none() {
        // Kernels before 6.5 (no cachestat): the path is off by design.
        eprintln!("splice path unavailable on this kernel: nothing to test");
        return;
    }
    let have = r.all_have();
    let id = r.add(Have::Known(have), false);
    assert_eq!(r.phase(id), Some("active"));
    let data = std::fs::read(r.dir.path().join("s.bin")).unwrap();
    let got = fetch_all_blocks(&mut r);
    for ((piece, offset), block) in &got {
        let at = u64::from(*piece) * PIECE + u64::from(*offset);
        let want = &data[at as usize..at as usize + block.len()];
        assert!(
            block == want,
            "block {piece}/{offset} differs from the file"
        );
    }
    assert!(r.shard.splices > 0, "no block went down the splice path");
}

#[test]
fn without_pipes_the_same_blocks_come_from_the_read_path() {
    let mut r = rig();
    r.shard.pipes = None;
    let have = r.all_have();
    r.add(Have::Known(have), false);
    let data = std::fs::read(r.dir.path().join("s.bin")).unwrap();
    let got = fetch_all_blocks(&mut r);
    for ((piece, offset), block) in &got {
        let at = u64::from(*piece) * PIECE + u64::from(*offset);
        assert!(block[..] == data[at as usize..at as usize + block.len()]);
    }
    assert_eq!(r.shard.splices, 0);
}
