//! Session tests that need the shard's test hooks (in-process; the rest
//! are in `crates/ringseed/tests/session.rs`).

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::metainfo::{Metainfo, NewFile, TorrentBuilder};

fn session(control_queue_max: usize) -> Session {
    let config = SessionConfig {
        shards: 1,
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        pin: false,
        control_queue_max,
        check_hash_threads: 1,
        ..SessionConfig::default()
    };
    Session::start(config, Settings::default()).unwrap()
}

fn metainfo() -> Arc<Metainfo> {
    let b = TorrentBuilder {
        name: "q.bin".into(),
        files: vec![NewFile {
            path: vec![],
            length: 40_000,
        }],
        single_file: true,
        piece_length: 16_384,
        ..TorrentBuilder::default()
    };
    Arc::new(Metainfo::from_bytes(&b.build(&[[1; 20]; 3]).unwrap()).unwrap())
}

#[test]
fn a_full_control_queue_is_an_error_and_no_request_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(4);
    let mut add = AddTorrent::new(metainfo(), dir.path().into(), Mode::Download);
    add.paused = true;
    let id = s.add_torrent(add).unwrap();
    // The shard sleeps (the stall is off the queue once `stall_shard`
    // returns); requests pile up in its queue of 4.
    s.stall_shard(0, Duration::from_millis(300));
    let mut accepted = Vec::new();
    let mut busy = 0;
    for i in 0..50u16 {
        let a: SocketAddr = (std::net::Ipv4Addr::new(127, 0, 1, 1), 1000 + i).into();
        match s.send_add_peers(id, vec![a]) {
            Ok(p) => accepted.push(p),
            Err(SessionError::Busy(control::SendError::Full { shard: 0, max: 4 })) => busy += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert!(busy > 0, "the queue never filled");
    assert!(!accepted.is_empty() && accepted.len() <= 4);
    // Every accepted request is answered, and did what it asked.
    let n = accepted.len();
    for p in accepted {
        assert_eq!(p.wait(ANSWER_TIMEOUT), Ok(1));
    }
    assert_eq!(busy + n, 50);
    // Once drained, the queue takes requests again.
    let a: SocketAddr = "127.0.0.1:999".parse().unwrap();
    assert_eq!(s.add_peers(id, vec![a]).unwrap(), 1);
    s.stop();
}

#[test]
fn requests_to_a_stopping_session_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(64);
    let mut add = AddTorrent::new(metainfo(), dir.path().into(), Mode::Download);
    add.paused = true;
    let id = s.add_torrent(add).unwrap();
    // Queued behind the stop: answered with "stopping", not dropped.
    s.stall_shard(0, Duration::from_millis(100));
    let _ = s.routes[0].control.send(Control::Stop);
    let late = s
        .send_add_peers(id, vec!["127.0.0.1:1".parse().unwrap()])
        .unwrap();
    assert_eq!(
        late.wait(ANSWER_TIMEOUT),
        Err(control::WaitError::Refused(control::ControlError::Stopping))
    );
    s.stop();
}

fn two_shards(listen: &[&str]) -> Result<Session, StartError> {
    let config = SessionConfig {
        shards: 2,
        listen: listen.iter().map(|a| a.parse().unwrap()).collect(),
        pin: false,
        check_hash_threads: 1,
        ..SessionConfig::default()
    };
    Session::start(config, Settings::default())
}

/// Sends a handshake for a torrent nobody has; a shard accepted and routed
/// the connection when it closes it (EOF or reset) within the wait.
fn refused_by_a_shard(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let mut s = match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("connect to {addr}: {e}");
            return false;
        }
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut hs = vec![19u8];
    hs.extend_from_slice(b"BitTorrent protocol");
    hs.extend_from_slice(&[0; 8]);
    hs.extend_from_slice(&[0xab; 20]);
    hs.extend_from_slice(&[b'x'; 20]);
    if s.write_all(&hs).is_err() {
        return true;
    }
    let mut buf = [0u8; 64];
    // Other tests of this process raise signals: a read may be interrupted.
    for _ in 0..100 {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                eprintln!("{addr} answered {n} bytes");
                return false;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("{addr}: {e}");
                return e.kind() == std::io::ErrorKind::ConnectionReset;
            }
        }
    }
    false
}

#[test]
fn one_session_serves_ipv4_and_ipv6_on_one_port() {
    let s = two_shards(&["127.0.0.1:0", "[::1]:0"]).unwrap();
    let addrs = s.local_addrs().to_vec();
    assert_eq!(addrs.len(), 2);
    assert_eq!(s.local_addr(), addrs[0]);
    assert!(addrs[0].is_ipv4() && addrs[1].is_ipv6(), "{addrs:?}");
    assert_eq!(addrs[0].port(), addrs[1].port(), "port 0: one port for all");
    // Several connections each, so both shards' accepts are exercised.
    for addr in &addrs {
        for _ in 0..4 {
            assert!(refused_by_a_shard(*addr), "no shard answered on {addr}");
        }
    }
    s.stop();
}

#[test]
fn a_second_session_on_the_same_address_is_refused() {
    let first = two_shards(&["127.0.0.1:0"]).unwrap();
    let addr = first.local_addr();
    let err = two_shards(&[&addr.to_string()]).err().unwrap();
    assert!(
        matches!(&err, StartError::Socket(SocketError::AddressInUse { addr: a }) if *a == addr),
        "{err:?}"
    );
    assert!(err.to_string().contains("address already in use"), "{err}");
    // And the first still serves.
    assert!(refused_by_a_shard(addr));
    first.stop();
}

#[test]
fn overlapping_listen_addresses_are_refused() {
    for pair in [
        ["127.0.0.1:0", "0.0.0.0:0"],
        ["[::1]:7", "[::]:7"],
        ["127.0.0.1:7", "127.0.0.1:7"],
    ] {
        let err = two_shards(&pair).err().unwrap();
        assert!(
            matches!(err, StartError::ListenOverlap { .. }),
            "{pair:?}: {err:?}"
        );
    }
    let err = two_shards(&[]).err().unwrap();
    assert!(matches!(err, StartError::Config(_)), "{err:?}");
}

#[test]
fn every_shard_turns_while_idle() {
    let s = two_shards(&["127.0.0.1:0"]).unwrap();
    let before = s.shard_turns();
    assert_eq!(before.len(), 2);
    std::thread::sleep(Duration::from_millis(200));
    let after = s.shard_turns();
    // An idle shard waits at most WAIT_MAX (50 ms) a turn: about 4 turns
    // in 200 ms; 2 leaves room for a loaded machine.
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(a >= &(b + 2), "shard {i} turned {b} -> {a} in 200 ms");
    }
    s.stop();
}

/// A single-file torrent of `data` written to `dir`, pieces of 16 KiB,
/// announcing to `tracker` if given.
fn torrent_in(dir: &std::path::Path, data: &[u8], tracker: Option<String>) -> Arc<Metainfo> {
    std::fs::write(dir.join("p.bin"), data).unwrap();
    let hashes: Vec<[u8; 20]> = data.chunks(16_384).map(crate::hash::sha1).collect();
    let b = TorrentBuilder {
        name: "p.bin".into(),
        files: vec![NewFile {
            path: vec![],
            length: data.len() as u64,
        }],
        single_file: true,
        piece_length: 16_384,
        trackers: tracker.map(|t| vec![vec![t]]).unwrap_or_default(),
        ..TorrentBuilder::default()
    };
    Arc::new(Metainfo::from_bytes(&b.build(&hashes).unwrap()).unwrap())
}

fn bits(len: usize, ones: impl IntoIterator<Item = usize>) -> crate::torrent::Bitfield {
    let mut b = crate::torrent::Bitfield::new(len).unwrap();
    for i in ones {
        b.set(i).unwrap();
    }
    b
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "never {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn pieces_are_those_verified_and_their_version_follows_checks() {
    let dir = tempfile::tempdir().unwrap();
    let data = crate::rng::Rng::new(21).bytes(6 * 16_384);
    let m = torrent_in(dir.path(), &data, None);
    let s = session(64);
    // Known: the pieces given, at once.
    let mut add = AddTorrent::new(m.clone(), dir.path().into(), Mode::Seed);
    add.have = Have::Known(bits(6, [0, 2, 3]));
    let id = s.add_torrent(add).unwrap();
    let pieces = s.pieces(id).unwrap();
    assert_eq!(pieces.iter_ones().collect::<Vec<_>>(), [0, 2, 3]);
    let versions = s.pieces_versions().unwrap();
    assert_eq!(versions, [(id, 3)], "no check yet, 3 pieces");
    // A recheck finds them all: the version moves.
    s.recheck(id).unwrap();
    wait_for("rechecked", || {
        s.torrent(id).unwrap().state == TorrentState::Seeding
            && s.pieces_versions().unwrap() != versions
    });
    assert_eq!(s.pieces(id).unwrap().count_ones(), 6);
    assert_eq!(s.pieces_versions().unwrap(), [(id, (1 << 32) | 6)]);
    let gone = TorrentId {
        slot: 999,
        generation: 1,
    };
    assert!(matches!(
        s.pieces(gone),
        Err(SessionError::UnknownTorrent(g)) if g == gone
    ));
    s.stop();
}

#[test]
fn a_partial_add_trusts_the_known_pieces_and_checks_the_rest() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let data = crate::rng::Rng::new(22).bytes(8 * 16_384);
    let m = torrent_in(dir.path(), &data, None);
    // Pieces 1 and 6 go bad on disk; 1 is trusted, 6 is checked.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("p.bin"))
        .unwrap();
    f.write_all_at(b"bad", 16_384 + 5).unwrap();
    f.write_all_at(b"bad", 6 * 16_384 + 5).unwrap();
    let s = session(64);
    let mut add = AddTorrent::new(m, dir.path().into(), Mode::Seed);
    add.have = Have::Partial {
        known: bits(8, 0..6),
        check: bits(8, 4..8),
    };
    let id = s.add_torrent(add).unwrap();
    // Checking, with the trusted pieces as its pieces meanwhile.
    let early = s.torrent(id).unwrap();
    assert!(
        early.state.is_checking() || early.state == TorrentState::Seeding,
        "{early:?}"
    );
    wait_for("seeding", || {
        s.torrent(id).unwrap().state == TorrentState::Seeding
    });
    let got: Vec<usize> = s.pieces(id).unwrap().iter_ones().collect();
    assert_eq!(got, [0, 1, 2, 3, 4, 5, 7], "1 trusted unread, 6 bad");
    let checked = s.events().try_iter().find_map(|e| match e {
        Event::Checked {
            id: i, pieces_have, ..
        } if i == id => Some(pieces_have),
        _ => None,
    });
    assert_eq!(checked, Some(7));
    // Bitfields of the wrong length are refused.
    let sub = dir.path().join("other");
    std::fs::create_dir(&sub).unwrap();
    let other = torrent_in(&sub, &data[..3 * 16_384], None);
    let mut add = AddTorrent::new(other, sub, Mode::Seed);
    add.have = Have::Partial {
        known: bits(3, 0..3),
        check: bits(8, []),
    };
    let err = s.add_torrent(add).err().unwrap();
    assert!(
        err.to_string().contains("8 check-bits for 3 pieces"),
        "{err}"
    );
    s.stop();
}

/// An HTTP tracker on loopback that counts announces and answers each with
/// no peers and a 30-minute interval, the second one after `slow`. Serves
/// until the listener is dropped with the test (bounded by its accept
/// timeout).
fn counting_tracker(slow: Duration) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    use std::sync::atomic::AtomicUsize;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/announce", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let n = count.clone();
    std::thread::spawn(move || {
        let end = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < end {
            let Ok((mut c, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            let _ = c.set_nonblocking(false);
            let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
            let mut req = Vec::new();
            let mut buf = [0u8; 2048];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => req.extend_from_slice(&buf[..k]),
                }
            }
            let k = n.fetch_add(1, Ordering::SeqCst) + 1;
            if k == 2 {
                std::thread::sleep(slow);
            }
            let body = b"d8:intervali1800e5:peers0:e";
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = c.write_all(head.as_bytes());
            let _ = c.write_all(body);
        }
    });
    (url, count)
}

#[test]
fn reannounce_announces_now_and_never_doubles_one_in_flight() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let data = crate::rng::Rng::new(23).bytes(2 * 16_384);
    let (url, count) = counting_tracker(Duration::from_millis(800));
    let m = torrent_in(dir.path(), &data, Some(url));
    let s = session(64);
    let mut add = AddTorrent::new(m, dir.path().into(), Mode::Seed);
    add.have = Have::Known(bits(2, 0..2));
    let id = s.add_torrent(add).unwrap();
    wait_for("started announced", || count.load(SeqCst) == 1);
    // Answered (the next one is 30 min away): a reannounce goes at once.
    wait_for("the answer taken", || {
        s.events()
            .try_iter()
            .any(|e| matches!(e, Event::Tracker { id: i, result: Ok(0) } if i == id))
    });
    s.reannounce(id).unwrap();
    wait_for("reannounced", || count.load(SeqCst) == 2);
    // The tracker holds that one 800 ms: more asks meanwhile add nothing.
    for _ in 0..5 {
        s.reannounce(id).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(count.load(SeqCst), 2, "an announce in flight was doubled");
    // Once answered, another goes.
    s.reannounce(id).unwrap();
    wait_for("reannounced again", || count.load(SeqCst) == 3);
    // A paused torrent does nothing.
    s.pause(id).unwrap();
    wait_for("paused", || {
        s.torrent(id).unwrap().state == TorrentState::Paused
    });
    // The pause sent `stopped`.
    wait_for("stopped announced", || count.load(SeqCst) == 4);
    s.reannounce(id).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count.load(SeqCst), 4, "a paused torrent announced");
    s.stop();
}
