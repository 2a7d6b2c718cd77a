//! Interop: `runtime::http_client::{announce, scrape}` against a real tracker,
//! Debian's `opentracker`, on 127.0.0.1 with free ports, in a fresh temporary
//! directory (opentracker chroots to its working directory).
//!
//! Debian builds opentracker with a whitelist: only info-hashes listed in the
//! `-w` file are tracked, so the test lists its random hash there, and also
//! checks that an unlisted hash comes back as the tracker's own failure words.
//! A missing binary fails the test with the install command; nothing is skipped.

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ringseed::info_hash::InfoHash;
use ringseed::rng::Rng;
use ringseed::runtime::http_client::{
    announce, default_connect, scrape, AnnounceError, HttpLimits,
};
use ringseed::tracker::{AnnounceRequest, Event, TrackerError, INTERVAL_FLOOR};

const OPENTRACKER: &str = "/usr/bin/opentracker";
/// Longest opentracker may take to accept connections.
const STARTUP_WAIT: Duration = Duration::from_secs(5);
/// Pause between connection attempts while it starts.
const STARTUP_POLL: Duration = Duration::from_millis(50);
/// Longest the whole test may take before it is a failure.
const TEST_BUDGET: Duration = Duration::from_secs(30);

/// Kills and reaps opentracker when the test ends, passing or failing.
struct TrackerGuard {
    child: Child,
}

impl Drop for TrackerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now (bound to 0, then released).
fn free_tcp_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0 (tcp)")
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|s| s.local_addr())
        .expect("bind 127.0.0.1:0 (udp)")
        .port()
}

fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.by_ref().take(64 * 1024).read_to_string(&mut text);
    }
    text
}

/// Starts opentracker tracking `hash`; returns the guard and the announce URL.
fn start_opentracker(dir: &Path, hash: &InfoHash) -> (TrackerGuard, String) {
    assert!(
        Path::new(OPENTRACKER).exists(),
        "{OPENTRACKER} not found: install with apt-get install opentracker"
    );
    let whitelist = dir.join("whitelist");
    fs::write(&whitelist, format!("{}\n", hash.to_hex())).expect("write whitelist");
    let log = dir.join("opentracker.log");
    let log_file = fs::File::create(&log).expect("create log");
    let port = free_tcp_port();
    let udp_port = free_udp_port();
    let child = Command::new(OPENTRACKER)
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-P", &udp_port.to_string()])
        .arg("-w")
        .arg(&whitelist)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("clone log"))
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("start {OPENTRACKER}: {e}; install with apt-get install opentracker")
        });
    let mut guard = TrackerGuard { child };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let start = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, STARTUP_POLL).is_ok() {
            break;
        }
        if let Ok(Some(status)) = guard.child.try_wait() {
            panic!("opentracker exited early ({status}): {}", read_log(&log));
        }
        assert!(
            start.elapsed() < STARTUP_WAIT,
            "opentracker did not accept on {addr} within {STARTUP_WAIT:?}: {}",
            read_log(&log)
        );
        thread::sleep(STARTUP_POLL);
    }
    let url = format!("http://{addr}/announce");
    // opentracker loads its whitelist in the background just after it
    // starts: until then even the listed hash is "not authorized". Only a
    // `started` announce proves the list is loaded (a `stopped` one may be
    // answered without looking at it), so the probe peer registers, and is
    // then removed again so that the counts below see only A and B.
    let probe = b"-PROBE-0000000000000";
    loop {
        let r = announce(
            &url,
            &request(*hash, probe, 1, Some(Event::Started)),
            &default_connect,
            &limits(),
        );
        match r {
            Ok(_) => break,
            Err(AnnounceError::Tracker(TrackerError::Failure(w)))
                if w.contains("not authorized") => {}
            Err(e) => panic!("probing opentracker at {url}: {e}: {}", read_log(&log)),
        }
        assert!(
            start.elapsed() < STARTUP_WAIT,
            "opentracker did not load its whitelist within {STARTUP_WAIT:?}: {}",
            read_log(&log)
        );
        thread::sleep(STARTUP_POLL);
    }
    announce(
        &url,
        &request(*hash, probe, 1, Some(Event::Stopped)),
        &default_connect,
        &limits(),
    )
    .unwrap_or_else(|e| {
        panic!(
            "removing the probe peer from {url}: {e}: {}",
            read_log(&log)
        )
    });
    (guard, url)
}

fn random_hash() -> InfoHash {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut rng = Rng::new(nanos ^ (u64::from(std::process::id()) << 32));
    let mut bytes = [0u8; 20];
    rng.fill(&mut bytes);
    InfoHash(bytes)
}

fn request(hash: InfoHash, peer_id: &[u8; 20], port: u16, event: Option<Event>) -> AnnounceRequest {
    AnnounceRequest {
        left: 1_000_000,
        event,
        numwant: Some(50),
        key: Some(0x1234_5678),
        no_peer_id: true,
        ..AnnounceRequest::new(hash, *peer_id, port)
    }
}

fn limits() -> HttpLimits {
    HttpLimits {
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(3),
        total_timeout: Duration::from_secs(5),
        ..HttpLimits::default()
    }
}

#[test]
fn announce_and_scrape_against_opentracker() {
    let start = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let hash = random_hash();
    let (guard, url) = start_opentracker(dir.path(), &hash);
    let connect = &default_connect;
    let peer_a = b"-RS0001-aaaaaaaaaaaa";
    let peer_b = b"-RS0001-bbbbbbbbbbbb";
    let addr_a: SocketAddr = "127.0.0.1:6881".parse().unwrap();

    // An unlisted hash: the tracker's own words reach us.
    let mut other = hash;
    other.0[0] ^= 0xff;
    match announce(
        &url,
        &request(other, peer_a, 6881, Some(Event::Started)),
        connect,
        &limits(),
    ) {
        Err(AnnounceError::Tracker(TrackerError::Failure(words))) => {
            assert!(words.contains("not authorized"), "{words:?}")
        }
        other => panic!("unlisted hash: expected the tracker's failure reason, got {other:?}"),
    }

    let a = announce(
        &url,
        &request(hash, peer_a, 6881, Some(Event::Started)),
        connect,
        &limits(),
    )
    .unwrap_or_else(|e| panic!("announce A started: {e}"));
    assert!(a.interval >= INTERVAL_FLOOR, "{a:?}");
    assert!(a.warning.is_none(), "{a:?}");

    let b = announce(
        &url,
        &request(hash, peer_b, 6882, Some(Event::Started)),
        connect,
        &limits(),
    )
    .unwrap_or_else(|e| panic!("announce B started: {e}"));
    assert!(
        b.peers.contains(&addr_a),
        "B's peers lack A ({addr_a}): {b:?}"
    );
    assert_eq!(b.incomplete, Some(2), "{b:?}");

    let stats = scrape(&url, &[hash], connect, &limits())
        .unwrap_or_else(|e| panic!("scrape: {e}"))
        .get(&hash)
        .unwrap_or_else(|| panic!("scrape lacks {hash:?}"));
    assert_eq!((stats.complete, stats.incomplete), (0, 2), "{stats:?}");

    announce(
        &url,
        &request(hash, peer_a, 6881, Some(Event::Stopped)),
        connect,
        &limits(),
    )
    .unwrap_or_else(|e| panic!("announce A stopped: {e}"));
    let stats = scrape(&url, &[hash], connect, &limits())
        .unwrap_or_else(|e| panic!("scrape after stop: {e}"))
        .get(&hash)
        .unwrap_or_else(|| panic!("scrape after stop lacks {hash:?}"));
    assert_eq!((stats.complete, stats.incomplete), (0, 1), "{stats:?}");

    let b_again = announce(&url, &request(hash, peer_b, 6882, None), connect, &limits())
        .unwrap_or_else(|e| panic!("announce B again: {e}"));
    assert!(
        !b_again.peers.contains(&addr_a),
        "A stopped but is listed: {b_again:?}"
    );

    drop(guard);
    assert!(start.elapsed() < TEST_BUDGET, "took {:?}", start.elapsed());
}
