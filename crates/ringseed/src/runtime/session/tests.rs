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
