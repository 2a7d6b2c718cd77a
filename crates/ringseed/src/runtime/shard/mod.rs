//! A shard: one thread, pinned to one core, with its own io_uring event
//! loop, an accept on each of the session's listening sockets
//! (one per listen address, shared by every shard: whichever shard's ring
//! takes a connection routes it), connections and the torrents whose
//! info-hash maps to it ([`shard_of`]).
//!
//! This file holds the shard's state and its loop, which reads like a
//! driver: wait for the ring (bounded by the next deadline), read the clock
//! once, drain completions into a queue and hand each to the part it names
//! (its context lives in the op's slot of the event loop), then the control
//! queue, connections handed over, tracker replies, work deferred for want
//! of a buffer or tokens, and the torrents' ticks. The protocol decisions
//! are made by the sans-IO `engine::Torrent`; each concern of carrying them
//! out has its own file:
//!
//! - [`routing`]: accepting, naming the torrent from the handshake, handing
//!   a connection to the owning shard, dialling, attaching and tearing down;
//! - [`recv`] and [`send`]: the bytes of a connection, both ways (RC4
//!   applied in place on an encrypted one);
//! - [`mse`]: the obfuscated handshake and the encryption policy;
//! - [`disk_read`] and [`disk_write`]: blocks read for peers, verified
//!   pieces written;
//! - [`outputs`]: carrying out what a torrent asked for;
//! - [`control`]: the session's requests (add, remove, pause, resume,
//!   recheck, limits, settings, peers, snapshots) and each torrent's
//!   lifecycle ([`torrents`]);
//! - [`limits`] and [`quota_board`]: rate limits and the global budgets;
//!   [`log`]: the rate-limited peer log.
//!
//! Closing: `shutdown(2)` wakes the connection's pending ops; the fd is
//! closed once the last of them completes, so no op ever names a reused fd.
//! A torrent leaves (paused, removed, checked again) only once no disk op
//! names it, so no op ever reads a file that was closed under it.

pub mod conn;
pub mod control;
pub mod disk_read;
pub mod disk_write;
pub mod limits;
pub mod log;
pub mod mse;
pub mod outputs;
pub mod quota_board;
pub mod recv;
pub mod routing;
pub mod send;
pub mod send_path;
pub mod splice;
pub mod throttle;
pub mod torrents;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use self::conn::{ConnId, Conns};
use self::disk_read::ReadJob;
use self::disk_write::PendingWrite;
use self::limits::ShardLimits;
use self::log::PeerLog;
use self::quota_board::QuotaBoard;
use self::torrents::Torrents;
use crate::info_hash::InfoHash;
use crate::rate_limit::FairQueue;
use crate::runtime::checker::CheckerHandle;
use crate::runtime::event_loop::{BufferId, Completion, EventLoop, LoopConfig, LoopError, OpId};
use crate::runtime::session::control::{Adopt, Control, ControlTx};
use crate::runtime::session::settings::Settings;
use crate::runtime::session::types::{Event, StopReport, TorrentId};
use crate::runtime::sockets::BindOptions;
use crate::runtime::tracker_worker::{TrackerHandle, TrackerReply};
use crate::runtime::waker::{Waker, WakerHandle};

/// Most bytes kept received and unconsumed per connection, whatever its
/// torrent. A peer's connection keeps at most its torrent's
/// `Torrent::receive_buffer_bytes_max` (room for the largest message it may
/// send, e.g. the bitfield of a torrent of many pieces, plus one receive);
/// one not yet attached to a torrent, `limits::RECEIVE_BUFFER_BYTES_MIN`.
pub const INBUF_BYTES_MAX: usize = crate::limits::RECEIVE_BUFFER_BYTES_MAX;
// One receive (a recv-ring buffer) must fit in the room those bounds leave.
const _: () = assert!(RECV_RING_BUFFER_BYTES <= crate::limits::RECEIVE_CHUNK_BYTES_MAX);
/// Buffers in each shard's recv ring (multishot receives). Completions are
/// handled and buffers given back every turn, so the ring only needs to
/// cover one turn's bytes; a dry ring costs a re-arm, not data.
const RECV_RING_ENTRIES: u16 = 512;
/// Bytes per recv-ring buffer (a block message fits).
const RECV_RING_BUFFER_BYTES: usize = 16 * 1024 + 64;
/// Most connections waiting in a shard's hand-off queue.
pub const HANDOFF_QUEUE_MAX: usize = 4096;
/// Most connections one shard holds. Each keeps a receive armed and may
/// have a send in flight, so the shard's op budget must hold two per
/// connection (tied in `session::settings`); the op slots and the
/// connection table grow with use, so the limit costs no memory until
/// reached. 16,384 per core: a busy seedbox's tens of thousands of peers
/// on a few cores (docs/benchmarks.md measures 10,000 on two).
pub const CONNS_PER_SHARD_MAX: usize = 16_384;
/// Longest wait in the loop, so the queues and stop requests are seen even
/// if a wake-up were lost.
const WAIT_MAX: Duration = Duration::from_millis(50);
/// Longest a stopping shard waits for writes and connections to finish.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Longest an incoming connection may take to name its torrent (the
/// handshake's first 48 bytes), and an outgoing one to connect.
const ROUTING_TIMEOUT: Duration = Duration::from_secs(10);
/// How often connections are checked against `ROUTING_TIMEOUT`.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Wait before re-arming an accept that failed (fd limit reached, ...).
const ACCEPT_RETRY: Duration = Duration::from_millis(200);
/// Most control requests handled in one turn (the rest wait a turn, so
/// peers are served between bursts of requests).
const CONTROL_PER_TURN_MAX: usize = 256;

/// The shard a torrent's info-hash names: where the session places it
/// when the shards hold equally many torrents (`Registry::place`).
pub fn shard_of(info_hash: &InfoHash, shards: usize) -> usize {
    let mut first = [0u8; 8];
    first.copy_from_slice(&info_hash.0[..8]);
    (u64::from_le_bytes(first) % shards.max(1) as u64) as usize
}

/// How to reach one shard.
#[derive(Clone)]
pub struct Route {
    pub handoff: Sender<Adopt>,
    pub control: ControlTx,
}

impl Route {
    pub fn wake(&self) -> &WakerHandle {
        &self.control.wake
    }
}

/// Where a shard reports events: a bounded queue, and a count of those
/// dropped because the reader fell behind.
#[derive(Clone)]
pub struct EventSink {
    pub tx: Sender<Event>,
    pub dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl EventSink {
    pub fn send(&self, e: Event) {
        if self.tx.try_send(e).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Everything a shard thread starts with.
pub struct ShardSpec {
    pub index: usize,
    pub shards: usize,
    /// This shard's dups of the session's listening sockets, one per
    /// listen address (empty: the shard accepts nothing).
    pub listeners: Vec<TcpListener>,
    pub handoff: Receiver<Adopt>,
    pub control: Receiver<Control>,
    pub waker: Waker,
    /// Every shard, by index (ours included).
    pub routes: Vec<Route>,
    pub tracker: TrackerHandle,
    pub checker: CheckerHandle,
    pub events: EventSink,
    pub bind: BindOptions,
    pub loop_config: LoopConfig,
    /// Register the buffer pool with the ring (READ_FIXED reads).
    pub register_buffers: bool,
    pub epoch: Instant,
    pub settings: Arc<Settings>,
    /// Our peer id and listening port, for every torrent's engine.
    pub peer_id: [u8; 20],
    pub listen_port: u16,
    /// The addresses we may be known by (the listening addresses, the
    /// unspecified ones expanded to the machine's): never dialled.
    pub own_addrs: Arc<[std::net::SocketAddr]>,
    pub rng_seed: u64,
    /// Where the shards report demand for the global budgets (one board
    /// shared by all shards).
    pub board: QuotaBoard,
    /// Bumped once per loop turn (the session's watchdog reads it).
    pub turns: Arc<std::sync::atomic::AtomicU64>,
    /// The DHT, when it runs: public torrents are announced to it.
    pub dht: Option<crate::runtime::dht_worker::DhtHandle>,
    /// Local service discovery, when it runs.
    pub lsd: Option<crate::runtime::lsd_worker::LsdHandle>,
    /// Peer exchange (BEP 11) for public torrents.
    pub pex: bool,
    /// Which path cached blocks to plaintext peers take (`send_path.rs`).
    pub send_path: self::send_path::SendPathMode,
}

/// What an op was for; kept in the op's slot of the event loop.
#[derive(Debug, Clone, Copy)]
pub(crate) enum OpCtx {
    /// An accept on `listeners[listener]`.
    Accept {
        listener: usize,
    },
    Wake,
    Recv {
        conn: ConnId,
    },
    Send {
        conn: ConnId,
    },
    Connect {
        conn: ConnId,
    },
    Read {
        job: ReadJob,
        /// Bytes of the run read so far.
        done: u32,
    },
    Write {
        torrent: TorrentId,
        piece: u32,
        file: usize,
        /// Range of the piece this op writes.
        start: u32,
        len: u32,
        file_offset: u64,
    },
}

/// One shard's state.
pub(crate) struct Shard {
    index: usize,
    ev: EventLoop<Option<OpCtx>>,
    /// Peers receive multishot into the loop's recv ring.
    multishot: bool,
    torrents: Torrents,
    conns: Conns,
    listeners: Vec<TcpListener>,
    /// The accept armed on each listener, by index.
    accept_ops: Vec<Option<OpId>>,
    /// When to re-arm the accepts that failed.
    accept_retry_at: Option<Duration>,
    waker: Waker,
    wake_buffer: Option<BufferId>,
    handoff: Receiver<Adopt>,
    control: Receiver<Control>,
    routes: Vec<Route>,
    tracker: TrackerHandle,
    checker: CheckerHandle,
    replies_tx: Sender<TrackerReply>,
    replies: Receiver<TrackerReply>,
    stopped_tx: Sender<TrackerReply>,
    events: EventSink,
    bind: BindOptions,
    settings: Arc<Settings>,
    /// `settings.engine()`, shared by every engine of the shard (one copy,
    /// not one per torrent); replaced when the settings change.
    engine_settings: Arc<crate::engine::EngineSettings>,
    peer_id: [u8; 20],
    listen_port: u16,
    own_addrs: Arc<[std::net::SocketAddr]>,
    rng_seed: u64,
    /// Pieces being written: the data and the ops left.
    writes: HashMap<(TorrentId, u32), PendingWrite>,
    /// Reads waiting for a pool buffer, served round-robin over torrents
    /// and peers (one read per turn), so under load every peer gets the same
    /// share of the disk and the pool, whatever its send window.
    deferred_reads: FairQueue<ReadJob>,
    deferred_recv: VecDeque<ConnId>,
    deferred_send: VecDeque<ConnId>,
    limits: ShardLimits,
    /// Reads waiting for upload tokens (rate limits only).
    throttled_reads: FairQueue<ReadJob>,
    /// Peers whose receive waits for download tokens (rate limits only).
    throttled_recv: FairQueue<ConnId>,
    epoch: Instant,
    /// The time of this loop turn (read once per turn, after the wait).
    now: Duration,
    handoffs: u64,
    stopping: Option<Duration>,
    next_sweep: Duration,
    log: PeerLog,
    scratch: Vec<u8>,
    /// Counts of torrents already gone, for the stop report.
    gone: StopReport,
    /// Loop turns (see `ShardSpec::turns`).
    turns: Arc<std::sync::atomic::AtomicU64>,
    dht: Option<crate::runtime::dht_worker::DhtHandle>,
    lsd: Option<crate::runtime::lsd_worker::LsdHandle>,
    pex: bool,
    /// Every torrent of the session by `HASH('req2', info_hash)`, for the
    /// MSE responder (kept by `Control::Known`).
    req2: self::conn::Req2Table,
    /// Padding lengths and bytes of MSE handshakes.
    rng: crate::rng::Rng,
    /// The splice send path's pipes; `None` when it is off or the kernel
    /// lacks what it needs.
    pipes: Option<self::splice::Pipes>,
    /// Torrents to pump at the end of the turn (see `Shard::want_pump`).
    pumps_wanted: Vec<TorrentId>,
    /// Connections whose pipes go to their sockets at the end of the turn
    /// (see `Shard::want_flush`); at most one entry per connection.
    flushes_wanted: Vec<ConnId>,
    /// Blocks sent down the splice path.
    splices: u64,
    /// Which send path jobs take (`send_path.rs`).
    send_path: self::send_path::SendPathTuner,
    /// Bytes handed to sockets, both paths (the tuner's measure).
    sent_bytes: u64,
}

/// The calling thread's CPU time, user and system, as getrusage counts it
/// (the accounting behind /proc's utime and stime, which the benches read).
fn thread_cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the live struct.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &raw mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::new(
            t.tv_sec.max(0) as u64,
            (t.tv_usec.clamp(0, 999_999) as u32) * 1000,
        )
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs a shard until it is stopped; returns what it moved. Call on the
/// shard's own thread.
pub fn run(spec: ShardSpec) -> StopReport {
    let index = spec.index;
    let events = spec.events.clone();
    match Shard::new(spec) {
        Ok(mut s) => {
            if let Err(e) = s.run() {
                events.send(Event::ShardFailed {
                    shard: index,
                    error: e.to_string(),
                });
            }
            s.finish()
        }
        Err(e) => {
            events.send(Event::ShardFailed {
                shard: index,
                error: e.to_string(),
            });
            StopReport::default()
        }
    }
}

impl Shard {
    fn new(spec: ShardSpec) -> Result<Shard, LoopError> {
        let mut ev = EventLoop::with_context(spec.loop_config)?;
        // READ_FIXED into the pool, when asked and the kernel allows. Off by
        // default: it measured no faster for page-cache reads and keeps the
        // whole pool resident (docs/benchmarks.md).
        if spec.register_buffers {
            ev.register_buffers();
        }
        // Multishot receives into a ring of provided buffers (Linux 5.19+);
        // one pool buffer per pending recv on older kernels.
        let multishot = ev
            .setup_recv_ring(RECV_RING_ENTRIES, RECV_RING_BUFFER_BYTES)
            .is_ok();
        // Unbounded but never long: each torrent has at most one announce
        // in flight, so replies are at most one per torrent.
        let (replies_tx, replies) = crossbeam_channel::unbounded();
        let (stopped_tx, _) = crossbeam_channel::bounded(1);
        let now = spec.epoch.elapsed();
        let limits = ShardLimits::new(spec.settings.limits(), spec.board, spec.index, now);
        let pipes = match spec.send_path {
            self::send_path::SendPathMode::Copy => None,
            _ => self::splice::Pipes::probe(),
        };
        let splice_usable = pipes.is_some();
        Ok(Shard {
            index: spec.index,
            ev,
            multishot,
            torrents: Torrents::default(),
            conns: Conns::default(),
            accept_ops: vec![None; spec.listeners.len()],
            listeners: spec.listeners,
            accept_retry_at: None,
            waker: spec.waker,
            wake_buffer: None,
            handoff: spec.handoff,
            control: spec.control,
            routes: spec.routes,
            tracker: spec.tracker,
            checker: spec.checker,
            replies_tx,
            replies,
            stopped_tx,
            events: spec.events,
            bind: spec.bind,
            engine_settings: Arc::new(spec.settings.engine().clone()),
            settings: spec.settings,
            peer_id: spec.peer_id,
            listen_port: spec.listen_port,
            own_addrs: spec.own_addrs,
            rng_seed: spec.rng_seed,
            writes: HashMap::new(),
            deferred_reads: FairQueue::default(),
            deferred_recv: VecDeque::new(),
            deferred_send: VecDeque::new(),
            limits,
            throttled_reads: FairQueue::default(),
            throttled_recv: FairQueue::default(),
            epoch: spec.epoch,
            now,
            handoffs: 0,
            stopping: None,
            next_sweep: now,
            log: PeerLog::new(spec.index, now),
            scratch: Vec::new(),
            gone: StopReport::default(),
            turns: spec.turns,
            dht: spec.dht,
            lsd: spec.lsd,
            pex: spec.pex,
            req2: Default::default(),
            rng: crate::rng::Rng::new(spec.rng_seed ^ 0x6d73_655f_7061_6473),
            pipes,
            pumps_wanted: Vec::new(),
            flushes_wanted: Vec::new(),
            splices: 0,
            // Built on the shard's own thread: its CPU time is this thread's.
            send_path: self::send_path::SendPathTuner::new(
                spec.send_path,
                splice_usable,
                now,
                thread_cpu_time(),
                0,
            ),
            sent_bytes: 0,
        })
    }

    /// Queues an op that carries `ctx`, making room in the submission
    /// queue once if it is full.
    fn queue(
        &mut self,
        ctx: OpCtx,
        f: impl Fn(&mut EventLoop<Option<OpCtx>>) -> Result<OpId, LoopError>,
    ) -> Result<OpId, LoopError> {
        self.ev.queue_with(Some(ctx), f)
    }

    fn run(&mut self) -> Result<(), LoopError> {
        self.arm_accept();
        self.arm_wake();
        let mut completions = Vec::new();
        loop {
            if self.turn(&mut completions)? {
                return Ok(());
            }
        }
    }

    /// When the loop must wake at the latest.
    fn next_deadline(&mut self) -> Duration {
        let now = self.now;
        let mut next = self.torrents.next_tick().unwrap_or(now + WAIT_MAX);
        if let Some(at) = self.limits_wake(now) {
            next = next.min(at);
        }
        next
    }

    /// One turn of the loop. Returns true when the shard may exit.
    fn turn(
        &mut self,
        completions: &mut Vec<Completion<Option<OpCtx>>>,
    ) -> Result<bool, LoopError> {
        let wait = self
            .next_deadline()
            .saturating_sub(self.now)
            .clamp(Duration::from_millis(1), WAIT_MAX);
        // Pumps still wanted from the last turn: look, do not sleep.
        let want = usize::from(self.pumps_wanted.is_empty());
        self.ev.submit_and_wait(want, Some(wait))?;
        self.turns
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.now = self.epoch.elapsed();
        completions.clear();
        self.ev.drain_completions(completions);
        for c in completions.drain(..) {
            self.on_completion(c);
        }
        self.handle_control();
        self.handle_handoffs();
        self.handle_replies();
        self.run_deferred();
        self.run_wanted_pumps();
        let now = self.now;
        if now >= self.send_path.next_at() {
            if let Some(c) = self
                .send_path
                .on_tick(now, thread_cpu_time(), self.sent_bytes)
            {
                tracing::info!(
                    "shard {}: send path {:?} (CPU per MB sent: splice {} us, copy {} us)",
                    self.index,
                    c.path,
                    c.splice_ns_per_mb / 1000,
                    c.copy_ns_per_mb / 1000
                );
            }
        }
        self.quota_round();
        for id in self.torrents.due(now) {
            if let Some(t) = self.torrents.engine_mut(id) {
                t.tick(now);
            }
            self.pump(id);
        }
        self.finish_drains();
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_INTERVAL;
            self.sweep(now);
        }
        if self.accept_retry_at.is_some_and(|at| now >= at) {
            self.accept_retry_at = None;
            self.arm_accept();
        }
        self.run_wanted_pumps();
        self.run_wanted_flushes();
        #[cfg(debug_assertions)]
        self.check_invariants();
        if let Some(since) = self.stopping {
            let idle = self.conns.is_empty() && self.writes.is_empty();
            return Ok(idle || now.saturating_sub(since) >= STOP_GRACE);
        }
        Ok(false)
    }

    /// After the loop: flush files, give ops back, report.
    fn finish(&mut self) -> StopReport {
        let mut report = self.gone;
        report.handoffs = self.handoffs;
        report.spliced_blocks = self.splices;
        for (_, e) in self.torrents.iter() {
            let (up, down) = e.session_totals();
            report.uploaded += up;
            report.downloaded += down;
            if let Some(s) = e.storage.as_ref() {
                if let Err(err) = s.sync() {
                    tracing::error!("{}: {err}", e.name());
                }
            }
        }
        self.ev.shutdown();
        // Whatever is still queued gets its answer: the shard is gone.
        while let Ok(msg) = self.control.try_recv() {
            self.refuse_stopping(msg);
        }
        report
    }

    // ---- arming ----

    /// Arms an accept on every listener that has none (after a failed
    /// accept, only once its retry time has come). Single-shot, re-armed
    /// after each connection: every shard waits on the same shared socket,
    /// and a re-armed accept queues behind the other shards' waiting ones,
    /// so connections go round the shards (a multishot accept stays first
    /// in line and one shard took them all). It also gives the peer's
    /// address with the fd.
    fn arm_accept(&mut self) {
        if self.stopping.is_some() || self.accept_retry_at.is_some() {
            return;
        }
        for listener in 0..self.listeners.len() {
            if self.accept_ops.get(listener).is_some_and(Option::is_some) {
                continue;
            }
            let Some(fd) = self.listeners.get(listener).map(|l| l.as_raw_fd()) else {
                continue;
            };
            match self.queue(OpCtx::Accept { listener }, |ev| ev.accept(fd)) {
                Ok(op) => {
                    if let Some(slot) = self.accept_ops.get_mut(listener) {
                        *slot = Some(op);
                    }
                }
                Err(e) => {
                    let addr = self
                        .listeners
                        .get(listener)
                        .and_then(|l| l.local_addr().ok());
                    let addr = addr.map_or_else(|| "?".to_owned(), |a| a.to_string());
                    tracing::error!(
                        "shard {}: cannot accept connections on {addr}: {e}",
                        self.index
                    );
                }
            }
        }
    }

    fn arm_wake(&mut self) {
        let buffer = match self.wake_buffer.take() {
            Some(b) => b,
            None => match self.ev.buffers().acquire() {
                Some(b) => b,
                None => return,
            },
        };
        let fd = self.waker.fd();
        if self
            .queue(OpCtx::Wake, |ev| ev.read(fd, buffer, 8))
            .is_err()
        {
            let _ = self.ev.buffers().release(buffer);
        }
    }

    // ---- completions ----

    fn on_completion(&mut self, c: Completion<Option<OpCtx>>) {
        let Some(ctx) = c.ctx else {
            // Not ours to handle (cancels): give the buffer back.
            if let Some(b) = c.buffer {
                let _ = self.ev.buffers().release(b);
            }
            return;
        };
        match ctx {
            OpCtx::Accept { listener } => self.on_accept(listener, c),
            OpCtx::Wake => {
                self.wake_buffer = c.buffer;
                self.arm_wake();
            }
            OpCtx::Recv { conn } => self.on_recv(conn, c),
            OpCtx::Send { conn } => self.on_send(conn, c),
            OpCtx::Connect { conn } => self.on_connect(conn, c),
            OpCtx::Read { job, done } => self.on_read(c, job, done),
            OpCtx::Write {
                torrent,
                piece,
                file,
                start,
                len,
                file_offset,
            } => self.on_write(c, torrent, piece, file, start, len, file_offset),
        }
    }

    fn handle_replies(&mut self) {
        while let Ok(r) = self.replies.try_recv() {
            let id = TorrentId::from_u64(r.token);
            let Some(name) = self.torrents.get(id).map(|e| e.name().to_owned()) else {
                continue;
            };
            let result = match r.outcome {
                Ok(resp) => Ok(resp),
                Err(f) => {
                    // The message names the tracker with its URL redacted.
                    self.log
                        .warn(self.now, format!("{name}: announce failed: {}", f.message));
                    Err(f.message)
                }
            };
            self.events.send(Event::Tracker {
                id,
                result: result.as_ref().map(|r| r.peers.len()).map_err(Clone::clone),
            });
            let now = self.now;
            if let Some(t) = self.torrents.engine_mut(id) {
                t.on_announce(now, result);
            }
            self.pump(id);
        }
    }

    /// Checks what must always hold between the shard's tables (debug
    /// builds, every turn; tests).
    #[cfg(any(test, debug_assertions))]
    fn check_invariants(&self) {
        use self::conn::ConnState;
        for (cid, c) in self.conns.iter() {
            match c.state {
                ConnState::Peer { torrent, peer } => {
                    let mapped = self
                        .torrents
                        .running(torrent)
                        .and_then(|r| r.conn_of.get(&peer));
                    assert_eq!(
                        mapped,
                        Some(&cid),
                        "peer connection {cid:?} is not its torrent's"
                    );
                }
                ConnState::Connecting { torrent }
                | ConnState::Handshake {
                    torrent: Some(torrent),
                } => {
                    assert!(
                        self.torrents.get(torrent).is_some(),
                        "a connect for a torrent that is gone"
                    );
                }
                ConnState::Routing
                | ConnState::Handshake { torrent: None }
                | ConnState::Closing => {}
            }
            assert!(
                c.mse.is_some() == matches!(c.state, ConnState::Handshake { .. }),
                "connection {cid:?} in state {:?} with handshake {:?}",
                c.state,
                c.mse
            );
            assert!(c.send_op.is_some() || c.sending.is_none());
            // The piped items queued are exactly the bytes in the pipe.
            let piped: usize = c
                .out
                .iter()
                .map(|i| match i {
                    self::conn::OutItem::Piped { bytes, .. } => *bytes,
                    _ => 0,
                })
                .sum();
            assert_eq!(
                piped,
                c.pipe.as_ref().map_or(0, |p| p.bytes),
                "connection {cid:?}: piped items and pipe disagree"
            );
            assert!(
                c.pipe.as_ref().is_none_or(|p| p.bytes > 0),
                "connection {cid:?} holds an empty pipe"
            );
        }
        if let Some(p) = self.pipes.as_ref() {
            assert!(p.open() <= self::splice::PIPES_PER_SHARD_MAX);
        }
        for (id, e) in self.torrents.iter() {
            if let Some(r) = e.run.as_ref() {
                for (&peer, &cid) in &r.conn_of {
                    let ok = self
                        .conns
                        .get(cid)
                        .is_some_and(|c| c.state == ConnState::Peer { torrent: id, peer });
                    assert!(
                        ok,
                        "torrent {id} maps peer {peer:?} to a connection that is not it"
                    );
                }
            }
            assert_eq!(
                self.torrents.by_hash(&e.info_hash),
                Some(id),
                "torrent {id} is not routed"
            );
        }
        for &(id, _) in self.writes.keys() {
            assert!(
                self.torrents
                    .get(id)
                    .is_some_and(|e| e.io_ops > 0 || e.run.is_some()),
                "a write for torrent {id}, gone"
            );
        }
    }
}
