//! ringseed against ringseed, through a real tracker: one `ringseed seed`
//! and three `ringseed download` leechers started together find each other
//! through opentracker (no `--peer`), and each download of the multi-file
//! sample tree is byte-identical to the source. Addresses 127.0.2.1-5.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::engine::*;
use common::*;

const TRACKER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 2, 1);
const SEED_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 2, 2);
const DOWNLOAD_WAIT_MAX: Duration = Duration::from_secs(120);

#[test]
fn three_ringseed_leechers_download_from_a_ringseed_seed_via_opentracker() {
    let t = tracked_torrent("swarm", 71, TRACKER_IP, "32K");
    let (dir, tree, tracker, torrent) = (&t.dir, &t.tree, &t.tracker, &t.torrent);
    let (mut seed, _) = start_ringseed_seed("seed", torrent, &tree.save_dir, SEED_IP, &[]);
    tracker.wait_seeders(info_hash_of(torrent), 1, Duration::from_secs(30));
    let outs: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("leech{i}")))
        .collect();
    let mut leechers: Vec<Daemon> = outs
        .iter()
        .enumerate()
        .map(|(i, out)| {
            let ip = Ipv4Addr::new(127, 0, 2, 3 + i as u8);
            start_ringseed_download(&format!("leech{i}"), torrent, out, ip, &[])
        })
        .collect();
    {
        let mut all: Vec<&mut Daemon> = leechers.iter_mut().collect();
        let context = format!("{}\nopentracker log:\n{}", seed.describe(), tracker.log());
        wait_all_ok(&mut all, DOWNLOAD_WAIT_MAX, &context);
    }
    for (i, out) in outs.iter().enumerate() {
        let bad = compare_tree(tree, out);
        assert!(
            bad.is_empty(),
            "leecher {i}: {bad:#?}\n{}",
            leechers[i].describe()
        );
        assert!(
            leechers[i].stderr().contains("complete: swarm"),
            "{}",
            leechers[i].describe()
        );
    }
    seed.terminate_cleanly();
}

/// `--interface lo` binds every engine socket to the loopback device: the
/// seeder and the downloader still reach each other (127.0.2.10-11).
#[test]
fn seed_and_download_bound_to_the_loopback_interface() {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "bound", 79);
    let torrent = create_torrent(
        &tree,
        "bound.torrent",
        &["--piece-length", "64K", "--no-date"],
    );
    let (mut seed, addr) = start_ringseed_seed(
        "seed",
        &torrent,
        &tree.save_dir,
        Ipv4Addr::new(127, 0, 2, 10),
        &["--interface", "lo"],
    );
    let out = dir.path().join("bound-out");
    let peer = addr.to_string();
    let mut dl = start_ringseed_download(
        "download",
        &torrent,
        &out,
        Ipv4Addr::new(127, 0, 2, 11),
        &["--interface", "lo", "--peer", &peer],
    );
    wait_all_ok(&mut [&mut dl], DOWNLOAD_WAIT_MAX, &seed.describe());
    let bad = compare_tree(&tree, &out);
    assert!(bad.is_empty(), "{bad:#?}\n{}", dl.describe());
    seed.terminate_cleanly();
}

/// The same through opentracker's UDP port (BEP 15): a seed and one leecher
/// that knows no peer address find each other (127.0.2.20-22).
#[test]
fn a_leecher_finds_the_seed_through_a_udp_tracker() {
    let t = tracked_torrent_with("udpswarm", 81, Ipv4Addr::new(127, 0, 2, 20), "32K", true);
    let (mut seed, _) = start_ringseed_seed(
        "seed",
        &t.torrent,
        &t.tree.save_dir,
        Ipv4Addr::new(127, 0, 2, 21),
        &[],
    );
    t.tracker
        .wait_seeders(info_hash_of(&t.torrent), 1, Duration::from_secs(30));
    let out = t.dir.path().join("udp-out");
    let mut dl =
        start_ringseed_download("leech", &t.torrent, &out, Ipv4Addr::new(127, 0, 2, 22), &[]);
    let context = format!("{}\nopentracker log:\n{}", seed.describe(), t.tracker.log());
    wait_all_ok(&mut [&mut dl], DOWNLOAD_WAIT_MAX, &context);
    let bad = compare_tree(&t.tree, &out);
    assert!(bad.is_empty(), "{bad:#?}\n{}", dl.describe());
    seed.terminate_cleanly();
}

/// A seeder announces `started` when it begins and `stopped` when SIGTERM
/// stops it, with its port and nothing left; a tracker's failure reason
/// reaches the seeder's stderr. The tracker here is a small HTTP server of
/// the test's own on 127.0.2.30 that records every query (127.0.2.31 seeds).
#[test]
fn started_and_stopped_announces_and_failure_reasons() {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    let ip = Ipv4Addr::new(127, 0, 2, 30);
    let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "http://{}/announce",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let queries = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&queries);
    // Answers the first announce with a failure reason, the rest normally;
    // stops after 20 connections or 60 s.
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        for (n, conn) in listener.incoming().take(20).enumerate() {
            if std::time::Instant::now() > deadline {
                break;
            }
            let Ok(mut conn) = conn else { continue };
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let got = conn.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..got]).into_owned();
            let line = request.lines().next().unwrap_or_default().to_string();
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            let body: &[u8] = if n == 0 {
                b"d14:failure reason21:passkey test refusal.e"
            } else {
                b"d8:intervali1800e5:peers0:e"
            };
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(body);
        }
    });
    let dir = tempdir();
    let tree = make_tree(dir.path(), "announce", 83);
    let torrent = create_torrent(
        &tree,
        "announce.torrent",
        &["--piece-length", "64K", "--no-date", "--tracker", &url],
    );
    let (mut seed, addr) = start_ringseed_seed(
        "seed",
        &torrent,
        &tree.save_dir,
        Ipv4Addr::new(127, 0, 2, 31),
        &[],
    );
    // The refusal is logged; the retry (15 s later) is accepted.
    if let Err(why) = seed.wait_line(Duration::from_secs(10), |l| {
        l.contains("passkey test refusal")
    }) {
        panic!(
            "the failure reason was not shown: {why}\n{}",
            seed.describe()
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let started = queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|q| q.contains("event=started"))
            .count();
        if started >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no retry of the refused started announce: {:?}\n{}",
            queries.lock().unwrap_or_else(|e| e.into_inner()),
            seed.describe()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    seed.terminate_cleanly();
    let qs = queries.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let stopped: Vec<&String> = qs.iter().filter(|q| q.contains("event=stopped")).collect();
    assert_eq!(stopped.len(), 1, "one stopped announce expected: {qs:#?}");
    let port = format!("port={}", addr.port());
    for q in &qs {
        assert!(q.contains(&port), "announce without our port: {q}");
        assert!(q.contains("left=0"), "a full seed has nothing left: {q}");
    }
}
