//! Issue 14, "Done when": aria2c, which by default opens a connection with
//! the MSE/PE (obfuscated) handshake and, when the peer hangs up on it,
//! reconnects with a plain BitTorrent handshake, downloads from a ringseed
//! seed over one connection: no reconnect. aria2's own encryption settings
//! are left at their defaults (no `--bt-require-crypto`).
//!
//! aria2 has no option to be given a peer for a .torrent, so it finds the
//! seed through a tracker: the test's own HTTP tracker
//! (tests/common/http_tracker.rs) on 127.0.146.1 knows one peer, a counting
//! TCP proxy on 127.0.146.2 (registered there by an announce the test makes
//! from that address), which forwards every connection to the ringseed
//! seed on 127.0.146.3. The seed seeds the same data through a torrent with
//! no tracker (the announce URL is outside the info dictionary: the same
//! info-hash), so it announces nowhere and aria2 (127.0.146.4) can reach it
//! only through the proxy. DHT, LSD and PEX are off on both sides.
//!
//! Asserts: aria2c exits 0 within [`DOWNLOAD_WAIT_MAX`], the download is
//! byte-identical, and the proxy accepted exactly one connection.
//! Addresses 127.0.146.x only; the proxy's threads end when it is dropped
//! (and after [`PROXY_SERVE_MAX`] in any case); every child is killed by
//! pid on drop.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::engine::*;
use common::http_tracker::{announce_from, HttpTracker};

/// Longest aria2c may take (today, with its reconnect: a few seconds).
const DOWNLOAD_WAIT_MAX: Duration = Duration::from_secs(120);
/// Longest the proxy serves, whatever happens.
const PROXY_SERVE_MAX: Duration = Duration::from_secs(300);
/// Longest the proxy waits to reach the seed.
const PROXY_CONNECT_MAX: Duration = Duration::from_secs(5);
/// Most connections the proxy forwards (later ones are counted and closed).
const PROXY_CONNECTIONS_MAX: usize = 64;
/// Bytes of each forwarding thread's buffer.
const PROXY_BUFFER_BYTES: usize = 64 * 1024;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 146, last)
}

/// A TCP proxy on loopback that forwards each accepted connection to one
/// target (dialling from its own address) and counts the connections.
struct CountingProxy {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    /// Every socket opened (both ends of each pair), shut down on drop so
    /// that the forwarding threads end.
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
    /// What went wrong while forwarding (e.g. the seed refused the dial).
    errors: Arc<Mutex<Vec<String>>>,
}

impl CountingProxy {
    fn start(at: Ipv4Addr, target: SocketAddr) -> CountingProxy {
        let listener =
            TcpListener::bind((at, 0)).unwrap_or_else(|e| panic!("proxy bind {at}: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("proxy nonblocking: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy address: {e}"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (acc, st, socks, thr, errs) = (
            Arc::clone(&accepted),
            Arc::clone(&stop),
            Arc::clone(&sockets),
            Arc::clone(&threads),
            Arc::clone(&errors),
        );
        let acceptor = thread::spawn(move || {
            let started = Instant::now();
            while !st.load(Ordering::Relaxed) && started.elapsed() < PROXY_SERVE_MAX {
                let (client, from) = match listener.accept() {
                    Ok(c) => c,
                    Err(_) => {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let n = acc.fetch_add(1, Ordering::SeqCst) + 1;
                if n > PROXY_CONNECTIONS_MAX {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                match forward(client, at, target, &socks) {
                    Ok(pair) => thr.lock().unwrap_or_else(|e| e.into_inner()).extend(pair),
                    Err(e) => errs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("connection {n} from {from}: {e}")),
                }
            }
        });
        CountingProxy {
            addr,
            accepted,
            stop,
            sockets,
            threads,
            acceptor: Some(acceptor),
            errors,
        }
    }

    /// Connections accepted so far.
    fn count(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Dials `target` from `from` and starts a copying thread each way.
fn forward(
    client: TcpStream,
    from: Ipv4Addr,
    target: SocketAddr,
    sockets: &Mutex<Vec<TcpStream>>,
) -> Result<[JoinHandle<()>; 2], String> {
    client
        .set_nonblocking(false)
        .map_err(|e| format!("blocking: {e}"))?;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .map_err(|e| format!("socket: {e}"))?;
    sock.bind(&SocketAddr::V4(SocketAddrV4::new(from, 0)).into())
        .map_err(|e| format!("bind {from}: {e}"))?;
    sock.connect_timeout(&target.into(), PROXY_CONNECT_MAX)
        .map_err(|e| format!("connect {target}: {e}"))?;
    let server: TcpStream = sock.into();
    let clone = |s: &TcpStream| s.try_clone().map_err(|e| format!("clone: {e}"));
    {
        let mut list = sockets.lock().unwrap_or_else(|e| e.into_inner());
        list.push(clone(&client)?);
        list.push(clone(&server)?);
    }
    let (client_r, server_w) = (clone(&client)?, clone(&server)?);
    let up = thread::spawn(move || pipe(client_r, server_w));
    let down = thread::spawn(move || pipe(server, client));
    Ok([up, down])
}

/// Copies `from` to `to` until `from` ends, then ends `to`'s sending side.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; PROXY_BUFFER_BYTES];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        for s in self
            .sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = s.shutdown(Shutdown::Both);
        }
        let threads: Vec<_> = self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

#[test]
fn aria2c_downloads_from_ringseed_without_a_reconnect() {
    let t = untracked_torrent("encaria", 1461, false);
    let tracker = HttpTracker::start(ip(1));
    // The same info dictionary with a tracker, for aria2 only.
    let tracked = common::create_torrent(
        &t.tree,
        "encaria-tracked.torrent",
        &[
            "--piece-length",
            "32K",
            "--no-date",
            "--tracker",
            &tracker.url,
        ],
    );
    assert_eq!(
        info_hash_of(&tracked),
        t.info_hash,
        "adding a tracker changed the info-hash"
    );
    let (mut seed, seed_addr) = start_ringseed_seed(
        "ringseed seed (default encryption policy)",
        &t.torrent,
        &t.tree.save_dir,
        ip(3),
        &[],
    );
    let proxy = CountingProxy::start(ip(2), seed_addr);
    let listed = announce_from(
        &tracker.url,
        ip(2),
        t.info_hash,
        *b"-PROXY0-000000000000",
        proxy.addr.port(),
        0,
        "started",
    );
    assert!(
        listed.is_ok(),
        "registering the proxy {} with the test tracker failed: {listed:?}",
        proxy.addr
    );

    let out = t.dir.path().join("aria-out");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("mkdir {}: {e}", out.display()));
    let started = Instant::now();
    let mut aria = start_aria2c(
        "aria2c (default encryption settings)",
        &tracked,
        &out,
        ip(4),
    );
    let context = || {
        format!(
            "proxy {} -> seed {seed_addr}: {} connection(s), errors {:?}\ntracker announces: {:?}\n{}",
            proxy.addr,
            proxy.count(),
            proxy.errors(),
            tracker.announces(),
            seed.describe()
        )
    };
    expect_exit_ok(&mut aria, DOWNLOAD_WAIT_MAX, &context);
    eprintln!(
        "aria2c done in {:?} over {} connection(s) through the proxy",
        started.elapsed(),
        proxy.count()
    );
    let bad = compare_tree(&t.tree, &out);
    assert!(
        bad.is_empty(),
        "{bad:#?}\n{}\n{}",
        aria.describe(),
        context()
    );
    assert_eq!(
        proxy.count(),
        1,
        "aria2c needed {} connections to the seed (through the proxy) instead of 1: its \
         obfuscated (MSE) handshake was dropped and it reconnected in plaintext\n{}\n{}",
        proxy.count(),
        aria.describe(),
        context()
    );
    drop(proxy);
    seed.terminate_cleanly();
}
