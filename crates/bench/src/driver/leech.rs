//! `run_leech`: K synthetic leechers against one seeder for a bounded time,
//! on one torrent or spread over several (peer i downloads torrent
//! `i % T`, see [`crate::loadgen::torrent_set`]).
//!
//! Each of N threads owns an [`EventLoop`] and the connections whose index
//! is congruent to its own modulo N. A connection: an unconnected socket
//! bound to its own source address (see [`super::source_address`], or
//! [`super::source_from_base`] with [`LeechOptions::source_base`]), an
//! io_uring CONNECT, then one RECV always armed (its bytes go to the
//! [`Leecher`], which checks every block with [`Payload::check_block`]) and
//! at most one SEND in flight (the leecher's requests). A connection that
//! fails or that the peer closes is ended and its error kept for the report;
//! the others go on. At the deadline (or on a stop signal) every socket is
//! shut down, the loop drains (bounded) and the per-peer figures come back.
//!
//! Warm-up ([`LeechOptions::warmup_max`]): every peer connects, handshakes
//! and says it is interested, but holds its requests until every peer has
//! the seeder's handshake ([`WarmupUntil::Handshake`]) or also its unchoke
//! ([`WarmupUntil::Unchoke`]), or has failed, or until `warmup_max` passed.
//! Then all threads let their requests go and the measured window of
//! [`LeechOptions::duration`] starts there, so a seeder that is slow to
//! accept many connections is measured serving them, not accepting them.
//! The threads agree through two atomics (peers ready, window start); the
//! one that starts the window calls the caller's `on_window_start` (the
//! bench samples the seeder's CPU there).
//!
//! Idle peers ([`LeechOptions::idle`]) connect, handshake and say they are
//! interested, and never ask for a block: connected peers that cost the
//! seeder memory and keep-alives only.
//!
//! Churn ([`LeechOptions::churn_per_s`]): once the window started, each
//! thread closes one of its connected peers every `threads / churn_per_s`
//! seconds, in turn, and dials it again on a fresh socket from the same
//! address as soon as its ops are done (a new peer to the seeder: a new
//! leecher state, the same peer id). Every handshake the seeder answers is
//! counted ([`PeerOutcome::handshakes`]): the seeder's accept rate.
//!
//! Limits: peers ([`super::PEERS_MAX`]), torrents ([`TORRENTS_MAX`]),
//! threads ([`super::THREADS_MAX`]),
//! buffer memory per thread ([`POOL_BYTES_PER_THREAD`]), drain time
//! ([`DRAIN_WAIT_MAX`]).

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::{
    check_range, check_source_base, source_address, source_from_base, stop_requested, LoadgenError,
    PEERS_MAX, THREADS_MAX,
};
use crate::loadgen::histogram::Histogram;
use crate::loadgen::leecher::{Leecher, LeecherConfig, LeecherStats, REQUESTS_LIMIT};
use crate::loadgen::payload::Payload;
use crate::loadgen::torrent_set::{torrent_of_peer, TORRENTS_MAX};
use ringseed::peer::TorrentShape;
use ringseed::runtime::event_loop::{BufferId, Completion, EventLoop, LoopConfig, LoopError};
use ringseed::runtime::sockets::{self, BindOptions};

/// Buffer memory of one thread's pool, in bytes (two buffers a connection).
pub const POOL_BYTES_PER_THREAD: usize = 128 * 1024 * 1024;
/// Smallest and largest buffer, in bytes.
const BUFFER_BYTES_MIN: usize = 16 * 1024;
const BUFFER_BYTES_MAX: usize = 256 * 1024;
/// Longest wait for ops to finish after the deadline.
pub const DRAIN_WAIT_MAX: Duration = Duration::from_secs(3);
/// Longest single wait of the loop (so the deadline and signals are seen).
const WAIT_MAX: Duration = Duration::from_millis(50);
/// How often the leechers' timers (keep-alives) run.
const TIMER_INTERVAL: Duration = Duration::from_secs(5);
/// Longest run accepted.
pub const DURATION_MAX: Duration = Duration::from_secs(24 * 3600);
/// Longest warm-up accepted.
pub const WARMUP_MAX: Duration = Duration::from_secs(600);
/// Longest single wait of the loop during the warm-up (another thread may
/// start the window).
const WARMUP_POLL: Duration = Duration::from_millis(5);
/// Longest error text kept per connection.
const ERROR_CHARS_MAX: usize = 200;
/// Most connections closed (and dialled again) per second, all threads
/// together.
pub const CHURN_PER_S_MAX: u32 = 100_000;

/// What ends the warm-up for one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WarmupUntil {
    /// The seeder's handshake arrived.
    #[default]
    Handshake,
    /// The handshake arrived and the seeder unchoked us (for seeders that
    /// unchoke every peer, but only on a timer: transmission's is 10 s).
    Unchoke,
}

/// One torrent of a leech run.
#[derive(Debug, Clone, Copy)]
pub struct LeechTorrent {
    pub shape: TorrentShape,
    /// The generator of the torrent's bytes (same seed as the seeder's).
    pub payload: Payload,
}

/// What a leech run is asked to do.
#[derive(Debug, Clone)]
pub struct LeechOptions {
    pub target: SocketAddr,
    /// The torrents, 1 to [`TORRENTS_MAX`]; peer i downloads torrent
    /// `i % torrents.len()`.
    pub torrents: Vec<LeechTorrent>,
    /// Synthetic peers in all, 1 to [`PEERS_MAX`].
    pub peers: u32,
    /// Requests each keeps outstanding.
    pub requests: u32,
    /// How long to run, 1 ms to [`DURATION_MAX`].
    pub duration: Duration,
    /// Threads, 1 to [`THREADS_MAX`] (no more than peers are used).
    pub threads: usize,
    /// Good bytes after which a peer stops; `None`: it goes round the
    /// torrent until the deadline.
    pub bytes_per_peer: Option<u64>,
    /// Seed of the piece orders (peer i uses seed + i).
    pub order_seed: u64,
    /// Check one block in this many (1: every block).
    pub check_every: u32,
    /// Peer i binds `source_base + i` (IPv4); `None`: the default (its own
    /// 127.1.x.y for a loopback target, else the kernel's choice).
    pub source_base: Option<std::net::Ipv4Addr>,
    /// Longest warm-up (see the module header), up to [`WARMUP_MAX`]; zero:
    /// none, every peer asks for blocks as soon as it is unchoked and the
    /// window starts at once.
    pub warmup_max: Duration,
    /// What a peer waits for in the warm-up.
    pub warmup_until: WarmupUntil,
    /// Peers never ask for a block (see the module header).
    pub idle: bool,
    /// Connections closed and dialled again per second once the window
    /// started, 0 (none) to [`CHURN_PER_S_MAX`].
    pub churn_per_s: u32,
}

/// What one synthetic peer did.
#[derive(Debug, Clone)]
pub struct PeerOutcome {
    pub index: u32,
    /// Its torrent: an index into [`LeechOptions::torrents`].
    pub torrent: usize,
    pub source: Option<std::net::IpAddr>,
    /// The seeder's handshake arrived (and named the torrent).
    pub connected: bool,
    pub done: bool,
    /// Its connections' figures added up (one connection without churn).
    pub stats: LeecherStats,
    pub active: Duration,
    /// Why it ended before the deadline, if it did.
    pub error: Option<String>,
    /// Handshakes the seeder answered: one per connection that got that far.
    pub handshakes: u64,
    /// Times it was closed by the churn and dialled again.
    pub redials: u64,
}

/// What a leech run measured.
#[derive(Debug, Clone)]
pub struct LeechOutcome {
    /// The measured window: from the end of the warm-up to the end.
    pub wall: Duration,
    /// How long the warm-up took (zero without one).
    pub warmup: Duration,
    /// Peers that had the seeder's handshake when the window started.
    pub peers_ready_at_start: u32,
    pub peers: Vec<PeerOutcome>,
    pub latency: Histogram,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Connect,
    Recv,
    Send { len: usize },
}

struct Conn {
    index: u32,
    torrent: usize,
    payload: Payload,
    source: Option<std::net::IpAddr>,
    fd: Option<OwnedFd>,
    leecher: Leecher,
    recv_buf: Option<BufferId>,
    sending: bool,
    out: Vec<u8>,
    ops: u32,
    connected: bool,
    closed: bool,
    /// Counted in [`Warmup::ready`] (handshake arrived, or ended).
    ready: bool,
    error: Option<String>,
    /// Closed by the churn: dial again once its ops are done.
    redial: bool,
    /// This connection's handshake was counted in `handshakes`.
    handshake_counted: bool,
    handshakes: u64,
    redials: u64,
    /// The figures of its earlier connections (churn).
    earlier: LeecherStats,
    earlier_active: Duration,
}

/// What the threads share for the warm-up.
struct Warmup {
    /// What a peer waits for.
    until: WarmupUntil,
    /// Peers that are ready (see `until`) or that ended.
    ready: AtomicU32,
    /// Peers that are ready (and alive when they became so).
    handshaken: AtomicU32,
    /// Nanoseconds from the start to the window's start; `u64::MAX` while
    /// warming up.
    window_start_ns: AtomicU64,
    /// `handshaken` when the window started.
    handshaken_at_start: AtomicU32,
}

impl Warmup {
    fn window_start(&self) -> Option<Duration> {
        match self.window_start_ns.load(Ordering::Acquire) {
            u64::MAX => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// Starts the window at `at` unless another thread did; calls
    /// `on_start` when this call started it.
    fn start_window(&self, at: Duration, on_start: &(dyn Fn() + Sync)) {
        let ns = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX - 1);
        if self
            .window_start_ns
            .compare_exchange(u64::MAX, ns, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.handshaken_at_start
                .store(self.handshaken.load(Ordering::Acquire), Ordering::Release);
            on_start();
        }
    }

    fn handshaken_at_start(&self) -> u32 {
        self.handshaken_at_start.load(Ordering::Acquire)
    }

    /// Counts `c` once it is ready.
    fn note(&self, c: &mut Conn) {
        if c.ready {
            return;
        }
        let handshaken = c.leecher.handshake_done()
            && (self.until == WarmupUntil::Handshake || !c.leecher.is_choked());
        if handshaken || c.closed {
            c.ready = true;
            self.ready.fetch_add(1, Ordering::AcqRel);
            if handshaken {
                self.handshaken.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

impl Conn {
    fn end(&mut self, why: Option<String>) {
        if self.closed {
            return;
        }
        self.closed = true;
        if self.error.is_none() {
            self.error = why.map(|w| w.chars().take(ERROR_CHARS_MAX).collect());
        }
        if let Some(fd) = &self.fd {
            // Wakes the ops in flight on it; the fd is dropped when they are done.
            let _ = SockRef::from(fd).shutdown(Shutdown::Both);
        }
    }
}

/// Runs the leechers and returns what they did.
pub fn run_leech(opts: &LeechOptions) -> Result<LeechOutcome, LoadgenError> {
    run_leech_with(opts, &|| {})
}

/// [`run_leech`], calling `on_window_start` once when the measured window
/// starts (at once without a warm-up).
pub fn run_leech_with(
    opts: &LeechOptions,
    on_window_start: &(dyn Fn() + Sync),
) -> Result<LeechOutcome, LoadgenError> {
    check_range("peers", opts.peers.into(), 1, PEERS_MAX.into())?;
    check_range(
        "torrents",
        opts.torrents.len() as u64,
        1,
        TORRENTS_MAX as u64,
    )?;
    check_range("requests", opts.requests.into(), 1, REQUESTS_LIMIT.into())?;
    check_range("threads", opts.threads as u64, 1, THREADS_MAX as u64)?;
    check_range(
        "duration (ms)",
        opts.duration.as_millis().min(u128::from(u64::MAX)) as u64,
        1,
        DURATION_MAX.as_millis() as u64,
    )?;
    check_range(
        "warm-up (ms)",
        opts.warmup_max.as_millis().min(u128::from(u64::MAX)) as u64,
        0,
        WARMUP_MAX.as_millis() as u64,
    )?;
    check_range(
        "churn (connections per second)",
        opts.churn_per_s.into(),
        0,
        CHURN_PER_S_MAX.into(),
    )?;
    if let Some(base) = opts.source_base {
        check_source_base(base, opts.peers)?;
    }
    let threads = opts.threads.min(opts.peers as usize);
    let warmup = Warmup {
        until: opts.warmup_until,
        ready: AtomicU32::new(0),
        handshaken: AtomicU32::new(0),
        window_start_ns: AtomicU64::new(u64::MAX),
        handshaken_at_start: AtomicU32::new(0),
    };
    let start = Instant::now();
    if opts.warmup_max.is_zero() {
        warmup.start_window(Duration::ZERO, on_window_start);
    }
    let warmup = &warmup;
    let results: Vec<Result<(Vec<PeerOutcome>, Histogram), LoadgenError>> =
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    std::thread::Builder::new()
                        .name(format!("leech-{t}"))
                        .spawn_scoped(s, move || {
                            run_thread(opts, t, threads, start, warmup, on_window_start)
                        })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h {
                    Err(e) => Err(LoadgenError::Spawn(e)),
                    Ok(h) => h.join().unwrap_or(Err(LoadgenError::ThreadPanicked)),
                })
                .collect()
        });
    let end = start.elapsed();
    // Never started (every thread failed before): the window is the run.
    let window_start = warmup.window_start().unwrap_or(Duration::ZERO).min(end);
    let wall = end.saturating_sub(window_start).min(opts.duration);
    let mut peers = Vec::with_capacity(opts.peers as usize);
    let mut latency = Histogram::new();
    for r in results {
        let (p, h) = r?;
        peers.extend(p);
        latency.merge(&h);
    }
    peers.sort_by_key(|p| p.index);
    Ok(LeechOutcome {
        wall,
        warmup: window_start,
        peers_ready_at_start: warmup.handshaken_at_start(),
        peers,
        latency,
    })
}

fn run_thread(
    opts: &LeechOptions,
    thread: usize,
    threads: usize,
    start: Instant,
    warmup: &Warmup,
    on_window_start: &(dyn Fn() + Sync),
) -> Result<(Vec<PeerOutcome>, Histogram), LoadgenError> {
    let mut released = warmup.window_start().is_some();
    let indexes: Vec<u32> = (0..opts.peers)
        .filter(|i| *i as usize % threads == thread)
        .collect();
    let n = indexes.len().max(1);
    let buffers = n * 2 + 4;
    let buffer_bytes = (POOL_BYTES_PER_THREAD / buffers).clamp(BUFFER_BYTES_MIN, BUFFER_BYTES_MAX);
    let mut ev = EventLoop::new(LoopConfig {
        ring_entries: (n as u32 * 2).next_power_of_two().clamp(64, 4096),
        ops_in_flight_max: (n as u32) * 3 + 16,
        buffers: buffers as u32,
        buffer_bytes,
    })?;
    let mut ops: HashMap<u64, (usize, Tag)> = HashMap::with_capacity(n * 3);
    let mut conns: Vec<Conn> = Vec::with_capacity(n);
    let now = || start.elapsed();
    for &index in &indexes {
        let torrent = torrent_of_peer(index, opts.torrents.len());
        let Some(t) = opts.torrents.get(torrent).copied() else {
            continue;
        };
        let leecher = new_leecher(opts, index, t, released, now())?;
        let source = match opts.source_base {
            Some(base) => source_from_base(base, index),
            None => source_address(opts.target.ip(), index),
        };
        let mut c = Conn {
            index,
            torrent,
            payload: t.payload,
            source,
            fd: None,
            leecher,
            recv_buf: None,
            sending: false,
            out: Vec::new(),
            ops: 0,
            connected: false,
            closed: false,
            ready: false,
            error: None,
            redial: false,
            handshake_counted: false,
            handshakes: 0,
            redials: 0,
            earlier: LeecherStats::default(),
            earlier_active: Duration::ZERO,
        };
        let ci = conns.len();
        dial(&mut ev, &mut ops, ci, &mut c, opts);
        warmup.note(&mut c);
        conns.push(c);
    }
    // Churn: this thread's share of the rate, and the next connection to close.
    let churn_every = (opts.churn_per_s > 0)
        .then(|| Duration::from_secs_f64(threads as f64 / f64::from(opts.churn_per_s)));
    let mut next_churn: Option<Instant> = None;
    let mut churn_cursor = 0usize;
    let mut completions: Vec<Completion> = Vec::new();
    let mut latency = Histogram::new();
    let mut stopping_since: Option<Instant> = None;
    let mut next_timer = Instant::now() + TIMER_INTERVAL;
    loop {
        let wall = Instant::now();
        if !released {
            if warmup.window_start().is_none()
                && (warmup.ready.load(Ordering::Acquire) >= opts.peers
                    || wall.duration_since(start) >= opts.warmup_max)
            {
                warmup.start_window(wall.duration_since(start), on_window_start);
            }
            if warmup.window_start().is_some() {
                released = true;
                let t = now();
                for (ci, c) in conns.iter_mut().enumerate() {
                    if !c.closed && !opts.idle {
                        c.leecher.hold_requests(false, t);
                        flush(&mut ev, &mut ops, ci, c);
                    }
                }
            }
        }
        if let (true, None, Some(every)) = (released, stopping_since, churn_every) {
            let due = next_churn.get_or_insert(wall + every);
            // Bounded catch-up: at most one connection per peer per turn.
            let mut turns = conns.len();
            while wall >= *due && turns > 0 {
                *due += every;
                turns -= 1;
                if let Some(ci) = next_to_churn(&conns, &mut churn_cursor) {
                    if let Some(c) = conns.get_mut(ci) {
                        c.redial = true;
                        c.end(None);
                        if c.ops == 0 {
                            // Nothing in flight to complete: dial again now.
                            c.fd = None;
                            if let Some(t) = opts.torrents.get(c.torrent).copied() {
                                let at = now();
                                let fresh = new_leecher(opts, c.index, t, released, at)?;
                                redial(&mut ev, &mut ops, ci, c, fresh, t, opts, at);
                            }
                        }
                    }
                }
            }
        }
        let deadline = start + warmup.window_start().unwrap_or(opts.warmup_max) + opts.duration;
        if stopping_since.is_none() && (wall >= deadline || stop_requested() || all_done(&conns)) {
            stopping_since = Some(wall);
            for c in &mut conns {
                c.end(None);
            }
        }
        if let Some(since) = stopping_since {
            if ev.in_flight() == 0 || wall.duration_since(since) >= DRAIN_WAIT_MAX {
                break;
            }
        }
        if wall >= next_timer {
            next_timer = wall + TIMER_INTERVAL;
            let t = now();
            for (ci, c) in conns.iter_mut().enumerate() {
                if c.connected && !c.closed {
                    c.leecher.on_timer(t);
                    flush(&mut ev, &mut ops, ci, c);
                }
            }
        }
        let wait = deadline.saturating_duration_since(wall).clamp(
            Duration::from_millis(1),
            if released { WAIT_MAX } else { WARMUP_POLL },
        );
        ev.submit_and_wait(1, Some(wait))?;
        completions.clear();
        ev.drain_completions(&mut completions);
        let t = now();
        for comp in completions.drain(..) {
            let Some((ci, tag)) = ops.remove(&comp.op.user_data()) else {
                if let Some(b) = comp.buffer {
                    let _ = ev.buffers().release(b);
                }
                continue;
            };
            let Some(c) = conns.get_mut(ci) else { continue };
            c.ops = c.ops.saturating_sub(1);
            let payload = c.payload;
            let check =
                |piece: u32, offset: u32, data: &[u8]| payload.check_block(piece, offset, data);
            on_completion(&mut ev, &mut ops, ci, c, tag, comp, t, &check);
            warmup.note(c);
            if !c.handshake_counted && c.leecher.handshake_done() {
                c.handshake_counted = true;
                c.handshakes += 1;
            }
            c.leecher.drain_latency(&mut latency);
            if c.closed && c.ops == 0 {
                c.fd = None;
                if c.redial && stopping_since.is_none() {
                    let t = opts.torrents.get(c.torrent).copied();
                    if let Some(t) = t {
                        let at = now();
                        let fresh = new_leecher(opts, c.index, t, released, at)?;
                        redial(&mut ev, &mut ops, ci, c, fresh, t, opts, at);
                    }
                }
            }
        }
    }
    ev.shutdown();
    let end = now();
    let peers = conns
        .into_iter()
        .map(|c| PeerOutcome {
            index: c.index,
            torrent: c.torrent,
            source: c.source,
            connected: c.leecher.handshake_done(),
            done: c.leecher.is_done(),
            stats: add_stats(c.earlier, c.leecher.stats()),
            active: c.earlier_active + c.leecher.active(end),
            error: c.error,
            handshakes: c.handshakes,
            redials: c.redials,
        })
        .collect();
    Ok((peers, latency))
}

/// A peer's leecher state: a fresh one for every connection.
fn new_leecher(
    opts: &LeechOptions,
    index: u32,
    t: LeechTorrent,
    released: bool,
    now: Duration,
) -> Result<Leecher, LoadgenError> {
    let config = LeecherConfig {
        requests_max: opts.requests,
        bytes_budget: Some(opts.bytes_per_peer.unwrap_or(u64::MAX)),
        peer_id: peer_id(index),
        order_seed: opts.order_seed.wrapping_add(u64::from(index)),
        check_every: opts.check_every,
        ..LeecherConfig::default()
    };
    let mut leecher = Leecher::new(config, t.shape, now)?;
    if !released || opts.idle {
        leecher.hold_requests(true, now);
    }
    Ok(leecher)
}

/// A socket from the peer's address and its CONNECT; ends `c` on a failure.
fn dial(
    ev: &mut EventLoop,
    ops: &mut HashMap<u64, (usize, Tag)>,
    ci: usize,
    c: &mut Conn,
    opts: &LeechOptions,
) {
    let bind = BindOptions {
        interface: None,
        address: c.source,
    };
    match sockets::tcp_socket_for_connect(opts.target, &bind) {
        Err(e) => c.end(Some(format!("socket: {e}"))),
        Ok(sock) => {
            let fd: OwnedFd = sock.into();
            let raw = fd.as_raw_fd();
            c.fd = Some(fd);
            match queue(ev, |ev| ev.connect(raw, opts.target)) {
                Ok(id) => {
                    ops.insert(id, (ci, Tag::Connect));
                    c.ops += 1;
                }
                Err(e) => c.end(Some(format!("connect: {e}"))),
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
/// Dials a peer the churn closed again, as a new connection (its figures
/// so far are kept in `earlier`).
fn redial(
    ev: &mut EventLoop,
    ops: &mut HashMap<u64, (usize, Tag)>,
    ci: usize,
    c: &mut Conn,
    fresh: Leecher,
    t: LeechTorrent,
    opts: &LeechOptions,
    now: Duration,
) {
    let old = std::mem::replace(&mut c.leecher, fresh);
    c.earlier = add_stats(c.earlier, old.stats());
    c.earlier_active += old.active(now);
    c.payload = t.payload;
    c.recv_buf = None;
    c.sending = false;
    c.out.clear();
    c.connected = false;
    c.closed = false;
    c.redial = false;
    c.handshake_counted = false;
    c.redials += 1;
    dial(ev, ops, ci, c, opts);
}

/// The next connected peer (handshake done, not closing) after `cursor`.
fn next_to_churn(conns: &[Conn], cursor: &mut usize) -> Option<usize> {
    let n = conns.len();
    for step in 0..n {
        let ci = (*cursor + step) % n;
        let c = conns.get(ci)?;
        if !c.closed && c.handshake_counted {
            *cursor = (ci + 1) % n;
            return Some(ci);
        }
    }
    None
}

fn add_stats(a: LeecherStats, b: &LeecherStats) -> LeecherStats {
    LeecherStats {
        blocks_good: a.blocks_good + b.blocks_good,
        bytes_good: a.bytes_good + b.bytes_good,
        blocks_bad: a.blocks_bad + b.blocks_bad,
        bytes_bad: a.bytes_bad + b.bytes_bad,
        blocks_unchecked: a.blocks_unchecked + b.blocks_unchecked,
        bytes_unchecked: a.bytes_unchecked + b.bytes_unchecked,
        blocks_unrequested: a.blocks_unrequested + b.blocks_unrequested,
        requests_sent: a.requests_sent + b.requests_sent,
        rejects: a.rejects + b.rejects,
        chokes: a.chokes + b.chokes,
        unchokes: a.unchokes + b.unchokes,
        pieces_skipped: a.pieces_skipped + b.pieces_skipped,
        wire_bytes_received: a.wire_bytes_received + b.wire_bytes_received,
        wire_bytes_sent: a.wire_bytes_sent + b.wire_bytes_sent,
    }
}

/// Every peer ended (and none waits to be dialled again) or is done.
fn all_done(conns: &[Conn]) -> bool {
    conns
        .iter()
        .all(|c| (c.closed && !c.redial) || c.leecher.is_done())
}

/// A peer id that tells the synthetic peers apart.
fn peer_id(index: u32) -> [u8; 20] {
    let mut id = *b"-RB0001-000000000000";
    let digits = format!("{index:012}");
    for (dst, src) in id.iter_mut().skip(8).zip(digits.bytes()) {
        *dst = src;
    }
    id
}

/// Queues an op (see [`EventLoop::queue_or_flush`]); its `user_data`.
fn queue(
    ev: &mut EventLoop,
    f: impl Fn(&mut EventLoop) -> Result<ringseed::runtime::event_loop::OpId, LoopError>,
) -> Result<u64, LoopError> {
    Ok(ev.queue_or_flush(f)?.user_data())
}

#[allow(clippy::too_many_arguments)]
fn on_completion(
    ev: &mut EventLoop,
    ops: &mut HashMap<u64, (usize, Tag)>,
    ci: usize,
    c: &mut Conn,
    tag: Tag,
    comp: Completion,
    now: Duration,
    check: &impl Fn(u32, u32, &[u8]) -> bool,
) {
    match (tag, comp.kind) {
        (Tag::Connect, _) => match comp.result {
            Ok(_) if !c.closed => {
                c.connected = true;
                let Some(buf) = ev.buffers().acquire() else {
                    c.end(Some("no receive buffer".into()));
                    return;
                };
                c.recv_buf = Some(buf);
                arm_recv(ev, ops, ci, c, buf);
                flush(ev, ops, ci, c);
            }
            Ok(_) => {}
            Err(errno) => c.end(Some(format!(
                "connect: {}",
                std::io::Error::from_raw_os_error(errno)
            ))),
        },
        (Tag::Recv, _) => {
            let Some(buf) = comp.buffer else { return };
            match comp.result {
                Ok(n) if n > 0 && !c.closed => {
                    let got = ev
                        .buffers()
                        .get(buf)
                        .and_then(|b| b.get(..n as usize))
                        .unwrap_or(&[]);
                    if let Err(e) = c.leecher.receive(now, got, check) {
                        c.end(Some(e.to_string()));
                        let _ = ev.buffers().release(buf);
                        return;
                    }
                    if c.leecher.is_done() {
                        c.end(None);
                        let _ = ev.buffers().release(buf);
                        return;
                    }
                    arm_recv(ev, ops, ci, c, buf);
                    flush(ev, ops, ci, c);
                }
                Ok(0) => {
                    c.end(Some("peer closed the connection".into()));
                    let _ = ev.buffers().release(buf);
                }
                Ok(_) => {
                    let _ = ev.buffers().release(buf);
                }
                Err(errno) => {
                    c.end(Some(format!(
                        "recv: {}",
                        std::io::Error::from_raw_os_error(errno)
                    )));
                    let _ = ev.buffers().release(buf);
                }
            }
        }
        (Tag::Send { len }, _) => {
            c.sending = false;
            let Some(buf) = comp.buffer else { return };
            match comp.result {
                Ok(n) if !c.closed => {
                    let n = n as usize;
                    if n < len {
                        // Put the unsent tail back in front of the queue.
                        let tail = ev
                            .buffers()
                            .get(buf)
                            .and_then(|b| b.get(n..len))
                            .unwrap_or(&[])
                            .to_vec();
                        c.out.splice(0..0, tail);
                    }
                    let _ = ev.buffers().release(buf);
                    flush(ev, ops, ci, c);
                }
                Ok(_) => {
                    let _ = ev.buffers().release(buf);
                }
                Err(errno) => {
                    let _ = ev.buffers().release(buf);
                    c.end(Some(format!(
                        "send: {}",
                        std::io::Error::from_raw_os_error(errno)
                    )));
                }
            }
        }
    }
}

fn arm_recv(
    ev: &mut EventLoop,
    ops: &mut HashMap<u64, (usize, Tag)>,
    ci: usize,
    c: &mut Conn,
    buf: BufferId,
) {
    let Some(fd) = c.fd.as_ref().map(|f| f.as_raw_fd()) else {
        let _ = ev.buffers().release(buf);
        return;
    };
    match queue(ev, |ev| ev.recv(fd, buf)) {
        Ok(id) => {
            ops.insert(id, (ci, Tag::Recv));
            c.ops += 1;
        }
        Err(e) => {
            let _ = ev.buffers().release(buf);
            c.end(Some(format!("recv: {e}")));
        }
    }
}

/// Sends what the leecher has to say, one send in flight at a time.
fn flush(ev: &mut EventLoop, ops: &mut HashMap<u64, (usize, Tag)>, ci: usize, c: &mut Conn) {
    if c.sending || c.closed {
        return;
    }
    c.leecher.take_output(&mut c.out);
    if c.out.is_empty() {
        return;
    }
    let Some(fd) = c.fd.as_ref().map(|f| f.as_raw_fd()) else {
        return;
    };
    let Some(buf) = ev.buffers().acquire() else {
        // Retried on the next completion of this connection.
        return;
    };
    let len = {
        let Some(dst) = ev.buffers().get_mut(buf) else {
            return;
        };
        let len = dst.len().min(c.out.len());
        if let (Some(d), Some(s)) = (dst.get_mut(..len), c.out.get(..len)) {
            d.copy_from_slice(s);
        }
        len
    };
    c.out.drain(..len);
    match queue(ev, |ev| ev.send(fd, buf, len)) {
        Ok(id) => {
            ops.insert(id, (ci, Tag::Send { len }));
            c.ops += 1;
            c.sending = true;
        }
        Err(e) => {
            let _ = ev.buffers().release(buf);
            c.end(Some(format!("send: {e}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringseed::InfoHash;

    fn opts() -> LeechOptions {
        LeechOptions {
            target: "127.0.0.1:1".parse().unwrap(),
            torrents: vec![torrent(1)],
            peers: 1,
            requests: 64,
            duration: Duration::from_millis(200),
            threads: 1,
            bytes_per_peer: None,
            order_seed: 1,
            check_every: 1,
            source_base: None,
            warmup_max: Duration::ZERO,
            warmup_until: WarmupUntil::Handshake,
            idle: false,
            churn_per_s: 0,
        }
    }

    fn torrent(seed: u8) -> LeechTorrent {
        LeechTorrent {
            shape: TorrentShape::new(InfoHash([seed; 20]), 1 << 16, 1 << 20).unwrap(),
            payload: Payload::new(seed.into(), 1 << 20, 1 << 16).unwrap(),
        }
    }

    #[test]
    fn options_out_of_range_are_refused() {
        for o in [
            LeechOptions {
                torrents: Vec::new(),
                ..opts()
            },
            LeechOptions {
                torrents: vec![torrent(1); TORRENTS_MAX + 1],
                ..opts()
            },
            LeechOptions { peers: 0, ..opts() },
            LeechOptions {
                peers: PEERS_MAX + 1,
                ..opts()
            },
            LeechOptions {
                threads: 0,
                ..opts()
            },
            LeechOptions {
                requests: 0,
                ..opts()
            },
            LeechOptions {
                duration: Duration::ZERO,
                ..opts()
            },
            LeechOptions {
                warmup_max: WARMUP_MAX + Duration::from_millis(1),
                ..opts()
            },
            LeechOptions {
                churn_per_s: CHURN_PER_S_MAX + 1,
                ..opts()
            },
        ] {
            assert!(matches!(run_leech(&o), Err(LoadgenError::Range { .. })));
        }
        let o = LeechOptions {
            peers: 3,
            source_base: Some("255.255.255.253".parse().unwrap()),
            ..opts()
        };
        assert!(matches!(
            run_leech(&o),
            Err(LoadgenError::SourceRange { peers: 3, .. })
        ));
    }

    #[test]
    fn a_warm_up_ends_once_every_peer_is_ready_or_failed() {
        // Every connect is refused at once: all peers end, so the warm-up
        // ends long before its limit, and the window callback runs once.
        let calls = AtomicU32::new(0);
        let o = LeechOptions {
            peers: 6,
            threads: 2,
            warmup_max: Duration::from_secs(20),
            ..opts()
        };
        let t0 = Instant::now();
        let out = run_leech_with(&o, &|| {
            calls.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(out.warmup < Duration::from_secs(5), "{:?}", out.warmup);
        assert_eq!(out.peers_ready_at_start, 0, "no handshake arrived");
        assert!(out.peers.iter().all(|p| !p.connected && p.error.is_some()));
    }

    #[test]
    fn without_a_warm_up_the_window_starts_at_once() {
        let calls = AtomicU32::new(0);
        let out = run_leech_with(&opts(), &|| {
            calls.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(out.warmup, Duration::ZERO);
    }

    #[test]
    fn peers_are_spread_over_the_torrents() {
        // Nothing listens on port 1: every connect is refused at once.
        let o = LeechOptions {
            torrents: vec![torrent(1), torrent(2), torrent(3)],
            peers: 7,
            threads: 2,
            ..opts()
        };
        let out = run_leech(&o).unwrap();
        let got: Vec<(u32, usize)> = out.peers.iter().map(|p| (p.index, p.torrent)).collect();
        assert_eq!(
            got,
            vec![(0, 0), (1, 1), (2, 2), (3, 0), (4, 1), (5, 2), (6, 0)]
        );
        assert!(out.peers.iter().all(|p| !p.connected));
    }

    #[test]
    fn peer_ids_differ() {
        assert_ne!(peer_id(0), peer_id(1));
        assert_eq!(&peer_id(42)[..8], b"-RB0001-");
        assert_eq!(&peer_id(42)[8..], b"000000000042");
    }
}

/// Churn and idle peers against the trivial seeder on loopback.
#[cfg(test)]
mod churn_tests {
    use super::*;
    use crate::driver::serve::{run_serve, ServeOptions};
    use ringseed::InfoHash;
    use std::sync::atomic::AtomicBool;

    const PIECE: u64 = 64 * 1024;
    const SIZE: u64 = 16 * PIECE;

    fn torrent() -> LeechTorrent {
        LeechTorrent {
            shape: TorrentShape::new(InfoHash([5; 20]), PIECE, SIZE).unwrap(),
            payload: Payload::new(5, SIZE, PIECE).unwrap(),
        }
    }

    /// `leech` against `ringseed-bench serve` on `addr`; the seeder's
    /// accepted connections with the leech outcome.
    fn against_serve(addr: &str, leech: LeechOptions) -> (u64, LeechOutcome) {
        let t = torrent();
        let serve = ServeOptions {
            listen: vec![addr.parse().unwrap()],
            shape: t.shape,
            payload: t.payload,
            threads: 1,
            conns_per_thread: 64,
            duration: Some(leech.duration + Duration::from_secs(2)),
            cache_bytes_max: SIZE,
        };
        let ready = AtomicBool::new(false);
        std::thread::scope(|s| {
            let h = s.spawn(|| run_serve(&serve, &ready));
            for _ in 0..500 {
                if ready.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(ready.load(Ordering::SeqCst), "serve never listened");
            let out = run_leech(&leech).unwrap();
            let served = h.join().unwrap().unwrap();
            (served.connections, out)
        })
    }

    fn options(addr: &str) -> LeechOptions {
        LeechOptions {
            target: addr.parse().unwrap(),
            torrents: vec![torrent()],
            peers: 4,
            requests: 16,
            duration: Duration::from_millis(1500),
            threads: 1,
            bytes_per_peer: None,
            order_seed: 1,
            check_every: 1,
            source_base: None,
            warmup_max: Duration::from_secs(5),
            warmup_until: WarmupUntil::Handshake,
            idle: false,
            churn_per_s: 0,
        }
    }

    #[test]
    fn churn_closes_connected_peers_and_dials_them_again() {
        let addr = "127.0.41.1:17401";
        let (accepted, out) = against_serve(
            addr,
            LeechOptions {
                churn_per_s: 20,
                ..options(addr)
            },
        );
        let handshakes: u64 = out.peers.iter().map(|p| p.handshakes).sum();
        let redials: u64 = out.peers.iter().map(|p| p.redials).sum();
        let errors: Vec<_> = out.peers.iter().filter_map(|p| p.error.clone()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        // 1.5 s at 20 a second: at most 30 closed and dialled again (a turn
        // that finds no connected peer skips its slot; a loaded machine
        // skips some).
        assert!((10..=31).contains(&redials), "redials {redials}");
        // The first four, and every redial but those still in flight at the end.
        assert!(
            handshakes >= redials,
            "handshakes {handshakes}, redials {redials}"
        );
        assert!(
            accepted >= handshakes,
            "serve accepted {accepted}, handshakes {handshakes}"
        );
        let bytes: u64 = out.peers.iter().map(|p| p.stats.bytes_good).sum();
        assert!(bytes > 0, "churned peers still download");
        assert_eq!(out.peers.iter().map(|p| p.stats.blocks_bad).sum::<u64>(), 0);
    }

    #[test]
    fn a_lone_churned_peer_does_not_end_the_run() {
        // While its only peer is closed for a redial the run is not "all
        // done": it lasts its whole window.
        let addr = "127.0.41.5:17405";
        let (_, out) = against_serve(
            addr,
            LeechOptions {
                peers: 1,
                churn_per_s: 10,
                ..options(addr)
            },
        );
        assert!(out.wall >= Duration::from_millis(1400), "{:?}", out.wall);
        let p = &out.peers[0];
        // 15 at most; a slot that finds the peer still reconnecting is skipped.
        assert!((3..=16).contains(&p.redials), "redials {}", p.redials);
        assert!(p.error.is_none(), "{:?}", p.error);
    }

    #[test]
    fn idle_peers_connect_and_ask_for_nothing() {
        let addr = "127.0.41.2:17402";
        let (accepted, out) = against_serve(
            addr,
            LeechOptions {
                idle: true,
                ..options(addr)
            },
        );
        assert_eq!(accepted, 4);
        assert!(out.peers.iter().all(|p| p.connected && p.error.is_none()));
        assert_eq!(out.peers.iter().map(|p| p.handshakes).sum::<u64>(), 4);
        assert_eq!(out.peers.iter().map(|p| p.redials).sum::<u64>(), 0);
        assert_eq!(
            out.peers.iter().map(|p| p.stats.requests_sent).sum::<u64>(),
            0
        );
        assert_eq!(out.peers.iter().map(|p| p.stats.bytes_good).sum::<u64>(), 0);
    }
}
