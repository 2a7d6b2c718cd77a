//! A small HTTP tracker inside the test process: it records every announce
//! (info-hash, peer id, address, event, left) in arrival order and answers
//! with the compact list of the other peers of the swarm (BEP 23), so a test
//! can check which events a client sent and hand it the peers it wants.
//!
//! Peers are registered at the TCP source address of the announce with the
//! announced port (so a client bound to 127.0.x.y is listed there);
//! `stopped` removes a peer. It serves on loopback until dropped (and at most
//! `SERVE_MAX`); every read and wait is bounded. Also
//! [`announce_from`]: one announce made by the test itself, from a chosen
//! loopback address (a raw test peer registering its listening port).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Longest the tracker serves.
pub const SERVE_MAX: Duration = Duration::from_secs(600);
/// Longest one request may take to arrive.
const READ_WAIT_MAX: Duration = Duration::from_secs(2);
/// Largest request head read, in bytes.
const HEAD_BYTES_MAX: usize = 16 * 1024;
/// The interval the tracker asks for, in seconds (ringseed clamps it to at
/// least 60 s).
pub const INTERVAL_SECS: u32 = 60;

/// One announce as the tracker saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    pub info_hash: [u8; 20],
    pub peer_id: Vec<u8>,
    /// The source address with the announced port.
    pub addr: SocketAddr,
    /// "started", "completed", "stopped", or "" for a regular announce.
    pub event: String,
    pub left: Option<u64>,
}

#[derive(Default)]
struct State {
    announces: Vec<Announce>,
    /// Per info-hash: the peers (peer id, address) in the swarm.
    swarms: HashMap<[u8; 20], Vec<(Vec<u8>, SocketAddr)>>,
}

/// The running tracker; stops (and joins its thread) on drop.
pub struct HttpTracker {
    pub url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpTracker {
    /// Serves on `ip` (a free port).
    pub fn start(ip: Ipv4Addr) -> HttpTracker {
        let listener =
            TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("tracker bind {ip}: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("tracker nonblocking: {e}"));
        let addr = listener.local_addr().expect("tracker address");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (Arc::clone(&state), Arc::clone(&stop));
        let thread = thread::spawn(move || serve(&listener, &st, &sp));
        HttpTracker {
            url: format!("http://{addr}/announce"),
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// Every announce so far, in arrival order.
    pub fn announces(&self) -> Vec<Announce> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .announces
            .clone()
    }

    /// Waits up to `timeout` until `done` holds for the announces so far;
    /// returns them either way, with whether it held.
    pub fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[Announce]) -> bool,
    ) -> (bool, Vec<Announce>) {
        let end = Instant::now() + timeout;
        loop {
            let seen = self.announces();
            if done(&seen) {
                return (true, seen);
            }
            if Instant::now() >= end {
                return (false, seen);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for HttpTracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: &TcpListener, state: &Mutex<State>, stop: &AtomicBool) {
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) && start.elapsed() < SERVE_MAX {
        match listener.accept() {
            Ok((stream, from)) => answer(stream, from, state),
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

fn answer(mut s: TcpStream, from: SocketAddr, state: &Mutex<State>) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(READ_WAIT_MAX));
    let _ = s.set_write_timeout(Some(READ_WAIT_MAX));
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < HEAD_BYTES_MAX {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = match parse(&head, from) {
        Some(a) => register(state, a),
        None => b"d14:failure reason11:bad requeste".to_vec(),
    };
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(reply.as_bytes());
    let _ = s.write_all(&body);
}

/// Records `a`, updates its swarm, and returns the bencoded answer.
fn register(state: &Mutex<State>, a: Announce) -> Vec<u8> {
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    let swarm = st.swarms.entry(a.info_hash).or_default();
    swarm.retain(|(id, addr)| *id != a.peer_id && *addr != a.addr);
    let others: Vec<SocketAddr> = swarm.iter().map(|p| p.1).collect();
    if a.event != "stopped" {
        swarm.push((a.peer_id.clone(), a.addr));
    }
    st.announces.push(a);
    let mut peers = Vec::new();
    for p in others {
        if let SocketAddr::V4(v4) = p {
            peers.extend_from_slice(&v4.ip().octets());
            peers.extend_from_slice(&v4.port().to_be_bytes());
        }
    }
    let mut body = format!("d8:intervali{INTERVAL_SECS}e5:peers{}:", peers.len()).into_bytes();
    body.extend_from_slice(&peers);
    body.push(b'e');
    body
}

/// The announce in a request head (`GET /announce?... HTTP/1.1`).
fn parse(head: &[u8], from: SocketAddr) -> Option<Announce> {
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = head.get(..line_end)?;
    let target = line.split(|&b| b == b' ').nth(1)?;
    let query_at = target.iter().position(|&b| b == b'?')?;
    let query = target.get(query_at + 1..)?;
    let mut info_hash = None;
    let mut peer_id = None;
    let mut port = None;
    let mut event = String::new();
    let mut left = None;
    for pair in query.split(|&b| b == b'&') {
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (key, value) = (&pair[..eq], unescape(&pair[eq + 1..])?);
        match key {
            b"info_hash" => info_hash = <[u8; 20]>::try_from(value.as_slice()).ok(),
            b"peer_id" => peer_id = Some(value),
            b"port" => port = std::str::from_utf8(&value).ok()?.parse::<u16>().ok(),
            b"event" => event = String::from_utf8_lossy(&value).into_owned(),
            b"left" => left = std::str::from_utf8(&value).ok()?.parse::<u64>().ok(),
            _ => {}
        }
    }
    Some(Announce {
        info_hash: info_hash?,
        peer_id: peer_id?,
        addr: SocketAddr::new(from.ip(), port?),
        event,
        left,
    })
}

fn unescape(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let hex = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

fn escape(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

/// One announce to `url` (this tracker's) made from `src` (a loopback
/// address): registers `port` there as a peer with `left` bytes to go.
/// Returns the peers the tracker answered with (compact, IPv4).
pub fn announce_from(
    url: &str,
    src: Ipv4Addr,
    info_hash: [u8; 20],
    peer_id: [u8; 20],
    port: u16,
    left: u64,
    event: &str,
) -> Result<Vec<SocketAddr>, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http URL: {url}"))?;
    let slash = rest.find('/').unwrap_or(rest.len());
    let host: SocketAddr = rest[..slash]
        .parse()
        .map_err(|e| format!("tracker address in {url}: {e}"))?;
    let path = &rest[slash..];
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .map_err(|e| format!("socket: {e}"))?;
    sock.bind(&SocketAddr::V4(SocketAddrV4::new(src, 0)).into())
        .map_err(|e| format!("bind {src}: {e}"))?;
    sock.connect_timeout(&host.into(), READ_WAIT_MAX)
        .map_err(|e| format!("connect {host}: {e}"))?;
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(READ_WAIT_MAX))
        .map_err(|e| e.to_string())?;
    let event = if event.is_empty() {
        String::new()
    } else {
        format!("&event={event}")
    };
    let request = format!(
        "GET {path}?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left={left}&compact=1{event} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        escape(&info_hash),
        escape(&peer_id)
    );
    s.write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut reply = Vec::new();
    s.take(1 << 20)
        .read_to_end(&mut reply)
        .map_err(|e| format!("read: {e}"))?;
    let at = reply
        .windows(5)
        .position(|w| w == b"peers")
        .ok_or_else(|| format!("no peers in {}", String::from_utf8_lossy(&reply)))?;
    let after = &reply[at + 5..];
    let colon = after
        .iter()
        .position(|&b| b == b':')
        .ok_or("bad peers string")?;
    let len: usize = std::str::from_utf8(&after[..colon])
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or("bad peers length")?;
    let compact = after
        .get(colon + 1..colon + 1 + len)
        .ok_or("short peers string")?;
    Ok(compact
        .chunks_exact(6)
        .map(|c| {
            SocketAddr::from((
                Ipv4Addr::new(c[0], c[1], c[2], c[3]),
                u16::from_be_bytes([c[4], c[5]]),
            ))
        })
        .collect())
}
