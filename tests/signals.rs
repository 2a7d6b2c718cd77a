//! SIGHUP and SIGUSR1 do not stop `ringseed seed`: SIGHUP logs that there is
//! nothing to reload, SIGUSR1 logs the status line at once, and the seeder
//! keeps serving a peer; SIGTERM then stops it cleanly with a `stopped`
//! announce. (Before, either signal killed the process with no announce.)
//!
//! The tracker is the test's own small HTTP server on 127.0.61.1 that
//! records every announce; the seeder is on 127.0.61.2, a raw peer on
//! 127.0.61.3. Every wait is bounded; the seeder is stopped by pid.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::engine::{info_hash_of, start_ringseed_seed, Daemon};
use common::raw_peer::{our_handshake, RawPeer};
use common::*;
use ringseed::metainfo::Metainfo;
use ringseed::InfoHash;

/// Longest a log line may take to follow its signal.
const LINE_WAIT_MAX: Duration = Duration::from_secs(10);
/// Longest the tracker may wait for an announce.
const ANNOUNCE_WAIT_MAX: Duration = Duration::from_secs(20);
/// How long the recording tracker serves.
const TRACKER_LIFE: Duration = Duration::from_secs(120);

/// An HTTP tracker on `ip` that answers every announce with no peers and
/// records each request line. Returns its announce URL and the record.
fn recording_tracker(ip: Ipv4Addr) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"));
    listener
        .set_nonblocking(true)
        .unwrap_or_else(|e| panic!("nonblocking: {e}"));
    let queries = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&queries);
    thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < TRACKER_LIFE {
            let Ok((mut conn, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(10));
                continue;
            };
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let got = conn.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(buf.get(..got).unwrap_or_default()).into_owned();
            let line = request.lines().next().unwrap_or_default().to_string();
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            let body = b"d8:intervali1800e5:peers0:e";
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(body);
        }
    });
    (format!("http://{addr}/announce"), queries)
}

fn count(queries: &Mutex<Vec<String>>, event: &str) -> usize {
    queries
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|q| q.contains(event))
        .count()
}

fn wait_announce(queries: &Mutex<Vec<String>>, event: &str, seed: &Daemon) {
    let deadline = Instant::now() + ANNOUNCE_WAIT_MAX;
    while count(queries, event) == 0 {
        assert!(
            Instant::now() < deadline,
            "no {event} announce within {ANNOUNCE_WAIT_MAX:?}: {:?}\n{}",
            queries.lock().unwrap_or_else(|e| e.into_inner()),
            seed.describe()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The first `len` bytes of the torrent's content (its files in order).
fn content_prefix(torrent: &std::path::Path, save_dir: &std::path::Path, len: usize) -> Vec<u8> {
    let raw = std::fs::read(torrent).unwrap_or_else(|e| panic!("read torrent: {e}"));
    let m = Metainfo::from_bytes(&raw).unwrap_or_else(|e| panic!("parse torrent: {e}"));
    let mut out = Vec::new();
    for f in &m.info.files {
        if out.len() >= len {
            break;
        }
        // The relative path starts with the torrent's name.
        let path = save_dir.join(f.relative_path());
        out.extend(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    }
    out.truncate(len);
    out
}

/// A raw peer handshakes and gets the first block: the seeder serves.
fn assert_serves(
    seed: &Daemon,
    addr: std::net::SocketAddr,
    torrent: &std::path::Path,
    save: &std::path::Path,
) {
    let hash = InfoHash(info_hash_of(torrent));
    let raw = std::fs::read(torrent).unwrap_or_else(|e| panic!("read torrent: {e}"));
    let pieces = Metainfo::from_bytes(&raw)
        .map(|m| m.info.pieces.len() as u32)
        .unwrap_or_else(|e| panic!("parse torrent: {e}"));
    let mut peer = RawPeer::connect(Ipv4Addr::new(127, 0, 61, 3), addr, pieces)
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", seed.describe()));
    let reply = peer
        .handshake(&our_handshake(hash, [0; 8], 1))
        .unwrap_or_else(|e| panic!("handshake: {e:?}\n{}", seed.describe()));
    assert_eq!(reply.info_hash, hash);
    let block = peer
        .fetch_block(0, 0, 16384)
        .unwrap_or_else(|e| panic!("block: {e}\n{}", seed.describe()));
    assert!(
        block == content_prefix(torrent, save, 16384),
        "the first block differs from the data"
    );
}

#[test]
fn hup_and_usr1_keep_the_seeder_serving_and_term_still_announces_stopped() {
    let (url, queries) = recording_tracker(Ipv4Addr::new(127, 0, 61, 1));
    let dir = tempdir();
    let tree = make_tree(dir.path(), "signals", 0x5161);
    let torrent = create_torrent(
        &tree,
        "signals.torrent",
        &["--piece-length", "64K", "--no-date", "--tracker", &url],
    );
    // No periodic status: the status line can only come from SIGUSR1.
    let (mut seed, addr) = start_ringseed_seed(
        "seed",
        &torrent,
        &tree.save_dir,
        Ipv4Addr::new(127, 0, 61, 2),
        &["--status-interval", "0"],
    );
    wait_announce(&queries, "event=started", &seed);

    seed.signal(libc::SIGHUP);
    let hup = seed.wait_line(LINE_WAIT_MAX, |l| {
        l.contains("INFO SIGHUP: nothing to reload (no configuration file); ignored")
    });
    assert!(hup.is_ok(), "SIGHUP: {hup:?}\n{}", seed.describe());
    assert!(
        seed.poll_exit().is_none(),
        "SIGHUP ended the seeder\n{}",
        seed.describe()
    );

    seed.signal(libc::SIGUSR1);
    let usr1 = seed.wait_line(LINE_WAIT_MAX, |l| {
        l.contains("INFO status: 1 torrent (1 seeding), ")
    });
    assert!(usr1.is_ok(), "SIGUSR1: {usr1:?}\n{}", seed.describe());
    assert!(
        seed.poll_exit().is_none(),
        "SIGUSR1 ended the seeder\n{}",
        seed.describe()
    );

    assert_serves(&seed, addr, &torrent, &tree.save_dir);
    assert_eq!(
        count(&queries, "event=stopped"),
        0,
        "stopped before SIGTERM"
    );

    seed.terminate_cleanly();
    wait_announce(&queries, "event=stopped", &seed);
    let log = seed.stderr();
    assert!(
        log.lines().any(|l| l.contains("INFO stopped: uploaded ")),
        "no stop report\n{}",
        seed.describe()
    );
}
