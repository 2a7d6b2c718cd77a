//! Interop: `runtime::tracker_worker` against a real tracker, Debian's
//! `opentracker`, on 127.0.5.1 (TCP and UDP), with two workers bound to
//! 127.0.5.2 and 127.0.5.3 so the tracker sees two peers at two addresses.
//!
//! Covered: announce over HTTP and over UDP, each getting back the peer the
//! other announced; tier fallback past a dead tracker; an info-hash missing
//! from opentracker's whitelist coming back over HTTP as the tracker's own
//! words in `TrackerFailure::message` (over UDP this opentracker answers it
//! with a bare 8-byte header, so there are no words; the failure names the
//! tracker and the short answer); a `stopped` announce removing the peer; a
//! `stopped` announce finishing during shutdown. A missing binary fails the
//! test with the install hint; nothing is skipped.

mod common;

use std::fs;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::bounded;
use ringseed::info_hash::InfoHash;
use ringseed::rng::Rng;
use ringseed::runtime::sockets::BindOptions;
use ringseed::runtime::tracker_worker::{
    TrackerJob, TrackerReply, TrackerWorker, TrackerWorkerConfig,
};
use ringseed::tracker::{AnnounceRequest, AnnounceResponse, Event};

const OPENTRACKER: &str = "opentracker";
const TRACKER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 5, 1);
const PEER_A_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 5, 2);
const PEER_B_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 5, 3);
/// Longest opentracker may take to accept connections.
const STARTUP_WAIT: Duration = Duration::from_secs(5);
const STARTUP_POLL: Duration = Duration::from_millis(50);
/// Longest one reply may take.
const REPLY_WAIT: Duration = Duration::from_secs(10);
/// Longest the whole test may take.
const TEST_BUDGET: Duration = Duration::from_secs(40);

/// Kills opentracker by its pid and reaps it when the test ends.
struct TrackerGuard {
    child: Child,
}

impl Drop for TrackerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(f) = fs::File::open(path) {
        let _ = f.take(64 * 1024).read_to_string(&mut text);
    }
    text
}

/// Starts opentracker on 127.0.5.1 tracking only `hash`; returns the guard,
/// the HTTP announce URL and the UDP announce URL.
fn start_opentracker(dir: &Path, hash: &InfoHash) -> (TrackerGuard, String, String) {
    let found = Command::new(OPENTRACKER)
        .arg("-h")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "opentracker is missing from PATH; {} (Debian package: opentracker)",
        common::INSTALL_HINT
    );
    let whitelist = dir.join("whitelist");
    fs::write(&whitelist, format!("{}\n", hash.to_hex())).expect("write whitelist");
    let log = dir.join("opentracker.log");
    let log_file = fs::File::create(&log).expect("create log");
    let tcp_port = TcpListener::bind((TRACKER_IP, 0))
        .and_then(|l| l.local_addr())
        .expect("free tcp port on 127.0.5.1")
        .port();
    let udp_port = UdpSocket::bind((TRACKER_IP, 0))
        .and_then(|s| s.local_addr())
        .expect("free udp port on 127.0.5.1")
        .port();
    let child = Command::new(OPENTRACKER)
        .args(["-i", &TRACKER_IP.to_string()])
        .args(["-p", &tcp_port.to_string(), "-P", &udp_port.to_string()])
        .arg("-w")
        .arg(&whitelist)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("clone log"))
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("start {OPENTRACKER}: {e}; {}", common::INSTALL_HINT));
    let mut guard = TrackerGuard { child };
    let addr = SocketAddr::from((TRACKER_IP, tcp_port));
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, STARTUP_POLL).is_err() {
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
    (
        guard,
        format!("http://{addr}/announce"),
        format!("udp://{TRACKER_IP}:{udp_port}/announce"),
    )
}

fn random_hash() -> InfoHash {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut rng = Rng::new(nanos ^ u64::from(std::process::id()).rotate_left(40));
    let mut bytes = [0u8; 20];
    rng.fill(&mut bytes);
    InfoHash(bytes)
}

fn worker(bind_ip: Ipv4Addr) -> TrackerWorker {
    TrackerWorker::start(TrackerWorkerConfig {
        bind: BindOptions {
            interface: None,
            address: Some(IpAddr::V4(bind_ip)),
        },
        threads: 2,
        queue_max: 16,
        timeout: Duration::from_secs(5),
    })
    .unwrap_or_else(|e| panic!("start the worker bound to {bind_ip}: {e}"))
}

fn request(hash: InfoHash, peer_id: &[u8; 20], port: u16, event: Option<Event>) -> AnnounceRequest {
    AnnounceRequest {
        left: 0,
        event,
        numwant: Some(50),
        key: Some(0x5eed_0001),
        ..AnnounceRequest::new(hash, *peer_id, port)
    }
}

/// Runs one job on `w` and waits for its reply.
fn run(w: &TrackerWorker, tiers: &[&[&str]], req: AnnounceRequest) -> TrackerReply {
    let (tx, rx) = bounded(1);
    let job = TrackerJob {
        token: 42,
        tiers: tiers
            .iter()
            .map(|t| t.iter().map(|u| (*u).to_owned()).collect())
            .collect(),
        request: req,
        reply: tx,
        wake: None,
    };
    w.handle()
        .submit(job)
        .unwrap_or_else(|j| panic!("job refused: {j:?}"));
    let reply = rx
        .recv_timeout(REPLY_WAIT)
        .unwrap_or_else(|e| panic!("no reply within {REPLY_WAIT:?}: {e}"));
    assert_eq!(reply.token, 42);
    reply
}

/// Announces until the tracker stops saying "not authorized", at most
/// [`STARTUP_WAIT`].
fn first_announce(w: &TrackerWorker, url: &str, req: AnnounceRequest) -> TrackerReply {
    let start = Instant::now();
    loop {
        let reply = run(w, &[&[url]], req.clone());
        let unlisted = matches!(&reply.outcome, Err(f) if f.message.contains("not authorized"));
        if !unlisted || start.elapsed() >= STARTUP_WAIT {
            return reply;
        }
        thread::sleep(STARTUP_POLL);
    }
}

fn answered(reply: TrackerReply, what: &str) -> AnnounceResponse {
    match reply.outcome {
        Ok(r) => r,
        Err(f) => panic!("{what}: expected an answer, got {f:?}"),
    }
}

#[test]
fn worker_announces_to_opentracker_over_http_and_udp() {
    let start = Instant::now();
    let dir = common::tempdir();
    let hash = random_hash();
    let (guard, http, udp) = start_opentracker(dir.path(), &hash);
    let a = worker(PEER_A_IP);
    let b = worker(PEER_B_IP);
    let peer_a = SocketAddr::from((PEER_A_IP, 6881));
    let peer_b = SocketAddr::from((PEER_B_IP, 6882));
    let id_a = b"-RS0001-aaaaaaaaaaaa";
    let id_b = b"-RS0001-bbbbbbbbbbbb";

    // A over HTTP (opentracker loads its whitelist in the background just
    // after start: until then even the listed hash is "not authorized").
    let r = first_announce(&a, &http, request(hash, id_a, 6881, Some(Event::Started)));
    assert_eq!(r.url.as_deref(), Some(http.as_str()));
    let first = answered(r, "A started over HTTP");
    assert!(!first.interval.is_zero(), "{first:?}");

    // B over UDP, after a dead tracker in the first tier: A is listed.
    let dead = format!("udp://{}:1/announce", Ipv4Addr::new(127, 0, 5, 4));
    let r = run(
        &b,
        &[&[&dead], &[&udp]],
        request(hash, id_b, 6882, Some(Event::Started)),
    );
    assert_eq!(r.url.as_deref(), Some(udp.as_str()));
    let over_udp = answered(r, "B started over UDP");
    assert!(
        over_udp.peers.contains(&peer_a),
        "B lacks A ({peer_a}): {over_udp:?}"
    );

    // A again over HTTP: B is listed.
    let again = answered(
        run(&a, &[&[&http]], request(hash, id_a, 6881, None)),
        "A again over HTTP",
    );
    assert!(
        again.peers.contains(&peer_b),
        "A lacks B ({peer_b}): {again:?}"
    );

    // An unlisted hash over HTTP: the tracker's own words.
    let mut other = hash;
    other.0[0] ^= 0xff;
    let r = run(
        &a,
        &[&[&http]],
        request(other, id_a, 6881, Some(Event::Started)),
    );
    assert_eq!(r.url.as_deref(), Some(http.as_str()));
    let failure = r.outcome.expect_err("an unlisted hash must be refused");
    assert_eq!(failure.url, http);
    assert!(
        failure.message.contains("not authorized") && failure.message.contains(&http),
        "{failure:?}"
    );
    // Over UDP opentracker gives no words: it answers the announce with the
    // 8-byte header alone. The failure still names the tracker and the cause.
    let r = run(
        &a,
        &[&[&udp]],
        request(other, id_a, 6881, Some(Event::Started)),
    );
    let failure = r.outcome.expect_err("an unlisted hash must be refused");
    assert_eq!(failure.url, udp);
    assert!(
        failure.message.contains(&udp) && failure.message.contains("8 bytes"),
        "{failure:?}"
    );

    // A stops (over UDP); B no longer sees it.
    let stopped = run(
        &a,
        &[&[&udp]],
        request(hash, id_a, 6881, Some(Event::Stopped)),
    );
    answered(stopped, "A stopped over UDP");
    let after = answered(
        run(&b, &[&[&http]], request(hash, id_b, 6882, None)),
        "B after A stopped",
    );
    assert!(
        !after.peers.contains(&peer_a),
        "A stopped but is listed: {after:?}"
    );

    // B stops as its worker shuts down: the job finishes before the deadline.
    let (tx, rx) = bounded(1);
    b.handle()
        .submit(TrackerJob {
            token: 7,
            tiers: vec![vec![http.clone()]],
            request: request(hash, id_b, 6882, Some(Event::Stopped)),
            reply: tx,
            wake: None,
        })
        .unwrap_or_else(|j| panic!("stop job refused: {j:?}"));
    let report = b.shutdown(REPLY_WAIT);
    // It may have finished before shutdown began (then it is not counted),
    // and the previous job, whose reply already came, may still be counted
    // as pending for a moment (a reply is sent before its job is marked
    // done), so up to 2 jobs can be reported as finished.
    assert!(report.abandoned == 0 && report.finished <= 2, "{report:?}");
    let r = rx.try_recv().expect("the stopped announce replied");
    answered(r, "B stopped over HTTP during shutdown");
    // The last reply may come a moment before its job is counted done.
    assert_eq!(a.shutdown(Duration::from_secs(1)).abandoned, 0);

    drop(guard);
    assert!(start.elapsed() < TEST_BUDGET, "took {:?}", start.elapsed());
}
