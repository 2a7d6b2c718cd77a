//! A seeding `ringseed seed` connects out to the leechers its tracker lists
//! (issue 10, items 1 and 2): two raw leechers that never dial and only
//! accept connections announce their listening ports to an in-test HTTP
//! tracker; the seed learns them from its announce reply, dials them, and
//! both download every byte. One of them listens only after the seed's first
//! dial was refused: the seed logs why and retries it after its back-off.
//!
//! Before the fix, `Torrent::connect_more` returned at once for a torrent
//! that does not download, so a seed never dialled anyone: both leechers
//! would wait for ever (here: fail at `LEECH_TIME_MAX`).

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use common::engine::{free_port, start_ringseed_seed};
use common::http_tracker::{announce_from, HttpTracker};
use common::listening_leecher::{LeechReport, ListeningLeecher};
use common::payload::single_file;
use ringseed::InfoHash;

const TRACKER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 61, 1);
const SEED_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 61, 2);
const LEECHER_A_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 61, 3);
const LEECHER_B_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 61, 4);
/// Longest each leecher waits for its whole download.
const LEECH_TIME_MAX: Duration = Duration::from_secs(60);
/// Longest the seed may take to try (and fail) to reach leecher B.
const REFUSAL_WAIT_MAX: Duration = Duration::from_secs(30);

fn peer_id(tag: u8) -> [u8; 20] {
    let mut id = *b"-LL0001-000000000000";
    id[19] = tag;
    id
}

fn check(name: &str, r: &LeechReport, seed: &common::engine::Daemon) {
    assert!(
        r.complete,
        "leecher {name} did not get every byte ({} blocks missing, {} connections: {:?})\n{}",
        r.missing,
        r.connections,
        r.notes,
        seed.describe()
    );
    assert!(
        r.from
            .iter()
            .all(|f| f.ip() == std::net::IpAddr::V4(SEED_IP)),
        "leecher {name} was reached by someone else: {:?}",
        r.from
    );
}

#[test]
fn a_seed_dials_the_leechers_its_tracker_lists_and_serves_them() {
    let dir = common::tempdir();
    let tracker = HttpTracker::start(TRACKER_IP);
    let len = 1024 * 1024 + 12_345;
    let p = single_file(
        dir.path(),
        "dial.bin",
        len,
        61,
        Some(&tracker.url),
        64 * 1024,
    );
    let hash = InfoHash(p.info_hash);

    // Leecher A listens now; leecher B's port is listed, but nobody listens
    // there until the seed has been refused once.
    let a_listener = TcpListener::bind((LEECHER_A_IP, 0)).expect("bind leecher A");
    let a = ListeningLeecher::start(
        a_listener,
        hash,
        p.bytes.clone(),
        p.piece_length,
        b'a',
        LEECH_TIME_MAX,
    );
    let b_addr = SocketAddr::from((LEECHER_B_IP, free_port(LEECHER_B_IP)));
    for (ip, port, tag) in [
        (LEECHER_A_IP, a.addr.port(), b'a'),
        (LEECHER_B_IP, b_addr.port(), b'b'),
    ] {
        announce_from(
            &tracker.url,
            ip,
            p.info_hash,
            peer_id(tag),
            port,
            len as u64,
            "started",
        )
        .unwrap_or_else(|e| panic!("leecher {} announce: {e}", tag as char));
    }

    let (mut seed, _) = start_ringseed_seed("seed", &p.torrent, &p.data_dir, SEED_IP, &[]);
    // Leecher B comes up once the seed has been refused by it (or after
    // `REFUSAL_WAIT_MAX`; the log line is checked at the end).
    let needle = format!("connect to {b_addr} failed");
    let refused = seed.wait_line(REFUSAL_WAIT_MAX, |l| l.contains(&needle));
    let b_listener = TcpListener::bind(b_addr).expect("bind leecher B");
    let b = ListeningLeecher::start(
        b_listener,
        hash,
        p.bytes.clone(),
        p.piece_length,
        b'b',
        LEECH_TIME_MAX,
    );

    let ra = a.join();
    let rb = b.join();
    check("A", &ra, &seed);
    check("B", &rb, &seed);
    // The refusal was logged with its reason and the back-off.
    let line = refused.unwrap_or_else(|why| {
        panic!(
            "no `{needle}` line ({why}); tracker saw {:?}\n{}",
            tracker.announces(),
            seed.describe()
        )
    });
    assert!(
        line.contains("Connection refused") && line.contains("(retry in 10 s)"),
        "{line}"
    );
    seed.terminate_cleanly();
    // The seed's own announces: started first, stopped last.
    let seen: Vec<String> = tracker
        .announces()
        .iter()
        .filter(|x| x.addr.ip() == std::net::IpAddr::V4(SEED_IP))
        .map(|x| x.event.clone())
        .collect();
    assert_eq!(
        seen.first().map(String::as_str),
        Some("started"),
        "{seen:?}"
    );
    assert_eq!(seen.last().map(String::as_str), Some("stopped"), "{seen:?}");
}

/// Longest the seed may take to announce again (the tracker asks for
/// `INTERVAL_SECS`; ringseed never announces sooner than 60 s).
const REANNOUNCE_WAIT_MAX: Duration = Duration::from_secs(90);

/// The "Done when" case exactly: a leecher that never dials registers with
/// the tracker only after the seed's first announce was answered, so the seed
/// can learn it only from a re-announce reply; it dials it and serves it.
#[test]
fn a_seed_learns_a_listen_only_leecher_from_its_re_announce() {
    let dir = common::tempdir();
    let tracker = HttpTracker::start(TRACKER_IP);
    let len = 512 * 1024 + 777;
    let p = single_file(
        dir.path(),
        "later.bin",
        len,
        62,
        Some(&tracker.url),
        64 * 1024,
    );
    let hash = InfoHash(p.info_hash);
    let seed_ip = Ipv4Addr::new(127, 0, 62, 2);
    let leecher_ip = Ipv4Addr::new(127, 0, 62, 3);
    let (mut seed, _) = start_ringseed_seed("seed", &p.torrent, &p.data_dir, seed_ip, &[]);
    let seed_announces = |t: &HttpTracker| -> Vec<String> {
        t.announces()
            .iter()
            .filter(|x| x.addr.ip() == std::net::IpAddr::V4(seed_ip))
            .map(|x| x.event.clone())
            .collect()
    };
    // The seed's `started` was answered with an empty swarm.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seed_announces(&tracker).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the seed never announced\n{}",
            seed.describe()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Now the leecher listens and registers; it never dials.
    let listener = TcpListener::bind((leecher_ip, 0)).expect("bind leecher");
    let leecher = ListeningLeecher::start(
        listener,
        hash,
        p.bytes.clone(),
        p.piece_length,
        b'c',
        REANNOUNCE_WAIT_MAX + LEECH_TIME_MAX,
    );
    announce_from(
        &tracker.url,
        leecher_ip,
        p.info_hash,
        peer_id(b'c'),
        leecher.addr.port(),
        len as u64,
        "started",
    )
    .unwrap_or_else(|e| panic!("leecher announce: {e}"));
    let r = leecher.join();
    assert!(
        r.complete,
        "the leecher did not get every byte ({} blocks missing, {} connections: {:?}); \
         the seed announced {:?}\n{}",
        r.missing,
        r.connections,
        r.notes,
        seed_announces(&tracker),
        seed.describe()
    );
    assert!(
        r.from
            .iter()
            .all(|f| f.ip() == std::net::IpAddr::V4(seed_ip)),
        "the leecher was reached by someone else: {:?}",
        r.from
    );
    // It could only have learnt the leecher from a regular re-announce.
    let seen = seed_announces(&tracker);
    assert_eq!(
        seen.first().map(String::as_str),
        Some("started"),
        "{seen:?}"
    );
    assert!(
        seen.iter().skip(1).any(|e| e.is_empty()),
        "no re-announce: {seen:?}"
    );
    seed.terminate_cleanly();
}
