//! Session tests that need the shard's test hooks (in-process; the rest
//! are in `crates/ringseed/tests/session.rs`).

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::metainfo::{Metainfo, NewFile, TorrentBuilder};

fn session(control_queue_max: usize) -> Session {
    let config = SessionConfig {
        shards: 1,
        listen: "127.0.0.1:0".parse().unwrap(),
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
    // The shard sleeps; requests pile up in its queue of 4 (the stall
    // itself takes one place).
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
