//! A shard: one thread, pinned to one core, with its own io_uring event
//! loop, listener (SO_REUSEPORT on the shared port), connections and the
//! torrents whose info-hash maps to it ([`shard_of`]).
//!
//! The loop: submit and wait (bounded by the next tick), drain completions
//! into a queue, hand each to the connection or torrent it names, then the
//! cross-shard inbox, tracker replies, ops deferred for want of a buffer,
//! and the torrents' ticks; every torrent call is followed by carrying out
//! the [`Output`]s it queued.
//!
//! Hand-off: an incoming connection is read until the handshake's first 48
//! bytes name an info-hash. If another shard owns that torrent, the fd and
//! the bytes read so far go to it over a crossbeam channel and its waker
//! (an eventfd the owner keeps a read on) is poked; nothing else is shared.
//!
//! Data path, seeding: a request becomes a read into a pool buffer (one op
//! per file run, in turn), then one vectored send of the 13-byte header and
//! the block. Downloading: blocks are assembled and verified by the engine,
//! and a good piece is written with one op per file run from a shared
//! buffer. Sends on one connection go one at a time, in queue order.
//!
//! Rate limits (only when set; [`limits`]): a block read waits for upload
//! tokens in a round-robin queue before it starts; a download-limited peer
//! stops receiving (its recv is cancelled or not re-armed) while the
//! download tokens are spent. Every `limits::QUOTA_ROUND` the shard reports
//! its demand on the [`quota_board`] and takes its share of the global
//! rates and upload slots.
//!
//! Closing: `shutdown(2)` wakes the connection's pending ops; the fd is
//! closed once the last of them completes, so no op ever names a reused fd.

pub mod conn;
pub mod limits;
pub mod quota_board;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use self::conn::{BlocksOut, ConnId, ConnState, Conns, OutItem, Sending};
use self::limits::{LimitsConfig, ShardLimits};
use self::quota_board::QuotaBoard;
use crate::engine::{Output, PeerId, Torrent, TorrentStats};
use crate::info_hash::InfoHash;
use crate::peer::Direction;
use crate::rate_limit::FairQueue;
use crate::runtime::disk::TorrentStorage;
use crate::runtime::event_loop::{
    BlockSegment, BufferId, Completion, EventLoop, LoopConfig, LoopError, OpId, OpKind,
    HEADER_BYTES, SEND_BLOCKS_MAX,
};
use crate::runtime::sockets::{self, BindOptions};
use crate::runtime::tracker_worker::{TrackerHandle, TrackerJob, TrackerReply};
use crate::runtime::waker::{Waker, WakerHandle};
use crate::storage::FileSpan;
use crate::wire::HandshakePrefix;

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
/// Most messages waiting in a shard's inbox (connections handed over).
pub const INBOX_MAX: usize = 4096;
/// Most connections one shard holds.
pub const CONNS_PER_SHARD_MAX: usize = 20_000;
/// Longest wait in the loop, so the inbox and stop requests are seen.
const WAIT_MAX: Duration = Duration::from_millis(50);
/// How often a shard reports its torrents' numbers.
const STATS_INTERVAL: Duration = Duration::from_millis(500);
/// Longest a stopping shard waits for writes and connections to finish.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Peer log lines per shard per `LOG_WINDOW` (a hostile flood cannot fill
/// the log); the rest are counted.
const LOG_LINES_MAX: u32 = 50;
const LOG_WINDOW: Duration = Duration::from_secs(10);
/// Longest an incoming connection may take to name its torrent (the
/// handshake's first 48 bytes), and an outgoing one to connect.
const ROUTING_TIMEOUT: Duration = Duration::from_secs(10);
/// How often connections are checked against `ROUTING_TIMEOUT`.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Wait before re-arming an accept that failed (fd limit reached, ...).
const ACCEPT_RETRY: Duration = Duration::from_millis(200);

/// The shard that owns a torrent.
pub fn shard_of(info_hash: &InfoHash, shards: usize) -> usize {
    let mut first = [0u8; 8];
    first.copy_from_slice(&info_hash.0[..8]);
    (u64::from_le_bytes(first) % shards.max(1) as u64) as usize
}

/// Messages between shards and from the session.
pub enum ShardMsg {
    /// A connection accepted elsewhere whose handshake names our torrent.
    Adopt {
        fd: OwnedFd,
        addr: SocketAddr,
        received: Vec<u8>,
    },
    /// Stop: send `stopped` announces, close connections, flush, exit.
    Stop,
}

/// What shards tell the session.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    Stats {
        shard: usize,
        torrents: Vec<(InfoHash, TorrentStats, Option<String>)>,
        handoffs: u64,
    },
    Finished {
        info_hash: InfoHash,
    },
    Stopped {
        shard: usize,
        handoffs: u64,
    },
    Failed {
        shard: usize,
        error: String,
    },
}

/// One torrent as the shard gets it.
pub struct ShardTorrent {
    pub torrent: Torrent,
    pub storage: TorrentStorage,
    pub trackers: Vec<Vec<String>>,
    pub name: String,
    /// Addresses to dial at start (`--peer`).
    pub peers: Vec<SocketAddr>,
}

/// Everything a shard thread starts with.
pub struct ShardSpec {
    pub index: usize,
    pub shards: usize,
    pub listener: Option<TcpListener>,
    pub torrents: Vec<ShardTorrent>,
    pub inbox: Receiver<ShardMsg>,
    pub waker: Waker,
    /// Every shard's inbox and waker, by shard index (ours included).
    pub routes: Vec<(Sender<ShardMsg>, WakerHandle)>,
    pub tracker: TrackerHandle,
    pub events: Sender<SessionEvent>,
    pub bind: BindOptions,
    pub loop_config: LoopConfig,
    /// Register the buffer pool with the ring (READ_FIXED reads).
    pub register_buffers: bool,
    pub epoch: Instant,
    /// Rate limits and the global slot budget.
    pub limits: LimitsConfig,
    /// Where the shards report demand for the global budgets (one board
    /// shared by all shards).
    pub board: QuotaBoard,
}

#[derive(Debug, Clone, Copy)]
enum OpCtx {
    Accept,
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
        torrent: usize,
        piece: u32,
        fd_file: usize,
        /// Range of the piece this op writes.
        start: u32,
        len: u32,
        file_offset: u64,
    },
}

struct PendingWrite {
    data: Arc<[u8]>,
    ops: u32,
    failed: bool,
}

/// A read of up to `SEND_BLOCKS_MAX` adjacent blocks one peer asked for,
/// into one buffer.
#[derive(Debug, Clone, Copy)]
struct ReadJob {
    conn: ConnId,
    torrent: usize,
    peer: PeerId,
    piece: u32,
    /// Offset of the first block in the piece.
    offset: u32,
    /// Lengths of the blocks, in order.
    lens: [u32; SEND_BLOCKS_MAX],
    n: usize,
}

impl ReadJob {
    fn total(&self) -> u32 {
        self.lens[..self.n].iter().sum()
    }

    /// Offset in the piece and length of each block.
    fn blocks(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.lens[..self.n].iter().scan(self.offset, |at, &len| {
            let b = (*at, len);
            *at += len;
            Some(b)
        })
    }
}

/// One shard's state.
struct Shard {
    index: usize,
    shards: usize,
    ev: EventLoop,
    /// Peers receive multishot into the loop's recv ring.
    multishot: bool,
    torrents: Vec<ShardTorrent>,
    by_hash: HashMap<InfoHash, usize>,
    conn_of: Vec<HashMap<PeerId, ConnId>>,
    conns: Conns,
    listener: Option<TcpListener>,
    accept_op: Option<OpId>,
    waker: Waker,
    wake_buffer: Option<BufferId>,
    inbox: Receiver<ShardMsg>,
    routes: Vec<(Sender<ShardMsg>, WakerHandle)>,
    tracker: TrackerHandle,
    replies_tx: Sender<TrackerReply>,
    replies: Receiver<TrackerReply>,
    stopped_tx: Sender<TrackerReply>,
    events: Sender<SessionEvent>,
    bind: BindOptions,
    ops: HashMap<u64, OpCtx>,
    writes: HashMap<(usize, u32), PendingWrite>,
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
    handoffs: u64,
    stopping: Option<Duration>,
    next_stats: Duration,
    next_sweep: Duration,
    accept_retry_at: Option<Duration>,
    log_window_start: Duration,
    log_lines: u32,
    log_dropped: u64,
    scratch: Vec<u8>,
}

/// Runs a shard until it is stopped. Call on the shard's own thread.
pub fn run(spec: ShardSpec) {
    let index = spec.index;
    let events = spec.events.clone();
    match Shard::new(spec) {
        Ok(mut s) => {
            if let Err(e) = s.run() {
                let _ = events.send(SessionEvent::Failed {
                    shard: index,
                    error: e.to_string(),
                });
            }
            let handoffs = s.handoffs;
            s.finish();
            let _ = events.send(SessionEvent::Stopped {
                shard: index,
                handoffs,
            });
        }
        Err(e) => {
            let _ = events.send(SessionEvent::Failed {
                shard: index,
                error: e.to_string(),
            });
            let _ = events.send(SessionEvent::Stopped {
                shard: index,
                handoffs: 0,
            });
        }
    }
}

fn errno_text(errno: i32) -> String {
    io::Error::from_raw_os_error(errno).to_string()
}

impl Shard {
    fn new(spec: ShardSpec) -> Result<Shard, LoopError> {
        let mut ev = EventLoop::new(spec.loop_config)?;
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
        let by_hash = spec
            .torrents
            .iter()
            .enumerate()
            .map(|(i, t)| (t.torrent.info_hash(), i))
            .collect();
        // Unbounded but never long: each torrent has at most one announce
        // in flight, so replies are at most one per torrent.
        let (replies_tx, replies) = crossbeam_channel::unbounded();
        let (stopped_tx, _) = crossbeam_channel::bounded(1);
        let now = spec.epoch.elapsed();
        let conn_of = spec.torrents.iter().map(|_| HashMap::new()).collect();
        let limits = ShardLimits::new(
            &spec.limits,
            spec.board,
            spec.index,
            spec.torrents.len(),
            now,
        );
        Ok(Shard {
            index: spec.index,
            shards: spec.shards,
            ev,
            multishot,
            torrents: spec.torrents,
            by_hash,
            conn_of,
            conns: Conns::default(),
            listener: spec.listener,
            accept_op: None,
            waker: spec.waker,
            wake_buffer: None,
            inbox: spec.inbox,
            routes: spec.routes,
            tracker: spec.tracker,
            replies_tx,
            replies,
            stopped_tx,
            events: spec.events,
            bind: spec.bind,
            ops: HashMap::new(),
            writes: HashMap::new(),
            deferred_reads: FairQueue::default(),
            deferred_recv: VecDeque::new(),
            deferred_send: VecDeque::new(),
            limits,
            throttled_reads: FairQueue::default(),
            throttled_recv: FairQueue::default(),
            epoch: spec.epoch,
            handoffs: 0,
            stopping: None,
            next_stats: now,
            next_sweep: now,
            accept_retry_at: None,
            log_window_start: now,
            log_lines: 0,
            log_dropped: 0,
            scratch: Vec::new(),
        })
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn log(&mut self, line: String) {
        let now = self.now();
        if now.saturating_sub(self.log_window_start) >= LOG_WINDOW {
            if self.log_dropped > 0 {
                eprintln!(
                    "ringseed: shard {}: {} peer log lines left out",
                    self.index, self.log_dropped
                );
            }
            self.log_window_start = now;
            self.log_lines = 0;
            self.log_dropped = 0;
        }
        if self.log_lines < LOG_LINES_MAX {
            self.log_lines += 1;
            eprintln!("ringseed: {line}");
        } else {
            self.log_dropped += 1;
        }
    }

    /// Queues an op, making room in the submission queue once if it is full.
    fn queue(
        &mut self,
        ctx: OpCtx,
        f: impl Fn(&mut EventLoop) -> Result<OpId, LoopError>,
    ) -> Result<OpId, LoopError> {
        let op = self.ev.queue_or_flush(f)?;
        self.ops.insert(op.user_data(), ctx);
        Ok(op)
    }

    fn run(&mut self) -> Result<(), LoopError> {
        self.arm_accept();
        self.arm_wake();
        let now = self.now();
        for t in 0..self.torrents.len() {
            let peers = std::mem::take(&mut self.torrents[t].peers);
            self.torrents[t].torrent.add_addresses(&peers);
            self.torrents[t].torrent.tick(now);
            self.pump(t);
        }
        let mut completions: Vec<Completion> = Vec::new();
        loop {
            let now = self.now();
            let next = self
                .torrents
                .iter()
                .map(|t| t.torrent.next_tick())
                .min()
                .unwrap_or(now + WAIT_MAX);
            let next = match self.limits_wake(now) {
                Some(at) => next.min(at),
                None => next,
            };
            let wait = next
                .saturating_sub(now)
                .clamp(Duration::from_millis(1), WAIT_MAX);
            self.ev.submit_and_wait(1, Some(wait))?;
            completions.clear();
            self.ev.drain_completions(&mut completions);
            for c in completions.drain(..) {
                self.on_completion(c);
            }
            self.handle_inbox();
            self.handle_replies();
            self.run_deferred();
            let now = self.now();
            if self.limits.due(now) {
                let mut ts: Vec<&mut Torrent> =
                    self.torrents.iter_mut().map(|t| &mut t.torrent).collect();
                self.limits.round(now, &mut ts);
            }
            for t in 0..self.torrents.len() {
                if now >= self.torrents[t].torrent.next_tick() {
                    self.torrents[t].torrent.tick(now);
                    self.pump(t);
                }
            }
            if now >= self.next_sweep {
                self.next_sweep = now + SWEEP_INTERVAL;
                self.sweep(now);
            }
            if self.accept_retry_at.is_some_and(|at| now >= at) {
                self.accept_retry_at = None;
                self.arm_accept();
            }
            if now >= self.next_stats {
                self.next_stats = now + STATS_INTERVAL;
                self.send_stats();
            }
            if let Some(since) = self.stopping {
                let idle = self.conns.is_empty() && self.writes.is_empty();
                if idle || now.saturating_sub(since) >= STOP_GRACE {
                    return Ok(());
                }
            }
        }
    }

    /// After the loop: flush files, give ops back, report.
    fn finish(&mut self) {
        self.send_stats();
        for t in &self.torrents {
            if let Err(e) = t.storage.sync() {
                eprintln!("ringseed: {}: {e}", t.name);
            }
        }
        self.ev.shutdown();
    }

    fn send_stats(&self) {
        let torrents = self
            .torrents
            .iter()
            .map(|t| {
                (
                    t.torrent.info_hash(),
                    t.torrent.stats(),
                    t.torrent.tracker_error().map(str::to_owned),
                )
            })
            .collect();
        let _ = self.events.send(SessionEvent::Stats {
            shard: self.index,
            torrents,
            handoffs: self.handoffs,
        });
    }

    // ---- arming ----

    fn arm_accept(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        let Some(fd) = self.listener.as_ref().map(|l| l.as_raw_fd()) else {
            return;
        };
        match self.queue(OpCtx::Accept, |ev| ev.accept_multi(fd)) {
            Ok(op) => self.accept_op = Some(op),
            Err(e) => eprintln!("ringseed: shard {}: cannot accept: {e}", self.index),
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

    fn on_completion(&mut self, c: Completion) {
        let key = c.op.user_data();
        let ctx = if c.more {
            self.ops.get(&key).copied()
        } else {
            self.ops.remove(&key)
        };
        let Some(ctx) = ctx else {
            if let Some(b) = c.buffer {
                let _ = self.ev.buffers().release(b);
            }
            return;
        };
        match ctx {
            OpCtx::Accept => self.on_accept(c),
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
                fd_file,
                start,
                len,
                file_offset,
            } => self.on_write(c, torrent, piece, fd_file, start, len, file_offset),
        }
    }

    fn on_accept(&mut self, c: Completion) {
        if !c.more {
            self.accept_op = None;
            if c.result.is_err() {
                // EMFILE and friends: try again soon rather than spin.
                self.accept_retry_at = Some(self.now() + ACCEPT_RETRY);
            } else {
                self.arm_accept();
            }
        }
        let Ok(fd) = c.result else {
            return;
        };
        // SAFETY: the kernel just gave us this new fd; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        if self.stopping.is_some() || self.conns.len() >= CONNS_PER_SHARD_MAX {
            return;
        }
        let addr = c
            .peer
            .or_else(|| peer_addr(&fd))
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let now = self.now();
        let id = self.conns.insert(fd, addr, ConnState::Routing, now);
        self.start_recv(id);
    }

    fn start_recv(&mut self, id: ConnId) {
        let Some(c) = self.conns.get(id) else { return };
        if c.recv_op.is_some() || c.state == ConnState::Closing {
            return;
        }
        let Some(fd) = c.raw_fd() else { return };
        // A peer's connection receives multishot into the recv ring (a
        // buffer is taken only when bytes arrive). A connection still being
        // routed uses one pool buffer: it may move to another shard, and a
        // multishot op would stay armed on this ring.
        let multishot = self.recv_multishot(c);
        if let ConnState::Peer { torrent, .. } = c.state {
            if self.limits.down.is_limited(torrent) {
                // Download limited: receive only with tokens; else wait
                // unarmed (holding no buffer), and TCP flow control slows
                // the sender.
                let now = self.epoch.elapsed();
                if !self.limits.down.ready(now, torrent) {
                    if let Some(c) = self.conns.get_mut(id) {
                        c.recv_paused = true;
                    }
                    let key = conn_key(id);
                    if !self.throttled_recv.has(torrent, key) {
                        let _ = self.throttled_recv.push(torrent, key, id);
                    }
                    return;
                }
                if let Some(c) = self.conns.get_mut(id) {
                    c.recv_paused = false;
                }
            }
        }
        if multishot {
            match self.queue(OpCtx::Recv { conn: id }, |ev| ev.recv_multi(fd)) {
                Ok(op) => {
                    if let Some(c) = self.conns.get_mut(id) {
                        c.recv_op = Some(op);
                        c.ops += 1;
                    }
                }
                Err(_) => self.deferred_recv.push_back(id),
            }
            return;
        }
        let Some(buffer) = self.ev.buffers().acquire() else {
            self.deferred_recv.push_back(id);
            return;
        };
        match self.queue(OpCtx::Recv { conn: id }, |ev| ev.recv(fd, buffer)) {
            Ok(op) => {
                if let Some(c) = self.conns.get_mut(id) {
                    c.recv_op = Some(op);
                    c.ops += 1;
                }
            }
            Err(_) => {
                let _ = self.ev.buffers().release(buffer);
                self.deferred_recv.push_back(id);
            }
        }
    }

    fn on_recv(&mut self, id: ConnId, c: Completion) {
        let mut n = 0;
        let mut failed = None;
        let mut rearm_later = false;
        match c.result {
            Ok(0) => failed = Some("closed by peer".to_owned()),
            Ok(k) => n = k as usize,
            // The recv ring ran dry: arm again once buffers come back.
            Err(libc::ENOBUFS) if c.kind == OpKind::RecvMulti => rearm_later = true,
            // Cancelled by `pause_recv`: armed again when tokens return.
            Err(libc::ECANCELED) if self.conns.get(id).is_some_and(|c| c.recv_paused) => {}
            Err(e) => failed = Some(errno_text(e)),
        }
        let ring_bid = EventLoop::ring_buffer_of(&c);
        let Some(conn) = self.conns.get_mut(id) else {
            if let Some(b) = c.buffer {
                let _ = self.ev.buffers().release(b);
            }
            if let Some(bid) = ring_bid {
                self.ev.give_back_ring_buffer(bid);
            }
            return;
        };
        if !c.more {
            conn.recv_op = None;
            conn.ops = conn.ops.saturating_sub(1);
        }
        if let Some(b) = c.buffer {
            if failed.is_none() {
                if let Some(bytes) = self.ev.buffer_pool().get(b).and_then(|s| s.get(..n)) {
                    conn.inbuf.extend_from_slice(bytes);
                }
            }
            let _ = self.ev.buffers().release(b);
        }
        if let Some(bid) = ring_bid {
            if failed.is_none() {
                if let Some(bytes) = self.ev.ring_buffer(bid, n) {
                    conn.inbuf.extend_from_slice(bytes);
                }
            }
            self.ev.give_back_ring_buffer(bid);
        }
        if conn.state == ConnState::Closing {
            self.maybe_reap(id);
            return;
        }
        if failed.is_some() {
            self.drop_conn(id, true);
            return;
        }
        if rearm_later {
            self.deferred_recv.push_back(id);
            return;
        }
        if let ConnState::Peer { torrent, .. } = conn.state {
            if n > 0 && self.limits.down.is_limited(torrent) {
                let now = self.epoch.elapsed();
                self.limits.down.charge(now, torrent, n as u64);
                if !self.limits.down.ready(now, torrent) {
                    self.pause_recv(id);
                }
            }
        }
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let inbuf_max = match conn.state {
            ConnState::Peer { torrent, .. } => self
                .torrents
                .get(torrent)
                .map_or(crate::limits::RECEIVE_BUFFER_BYTES_MIN, |t| {
                    t.torrent.receive_buffer_bytes_max()
                }),
            _ => crate::limits::RECEIVE_BUFFER_BYTES_MIN,
        }
        .min(INBUF_BYTES_MAX);
        if conn.inbuf.len() > inbuf_max {
            let addr = conn.addr;
            self.log(format!(
                "peer {addr} dropped: over {inbuf_max} bytes unconsumed"
            ));
            self.drop_conn(id, true);
            return;
        }
        match conn.state {
            ConnState::Routing => self.route(id),
            ConnState::Peer { torrent, peer } => {
                self.feed(id, torrent, peer);
                self.start_recv(id);
            }
            _ => {}
        }
    }

    /// Hands the connection's unconsumed bytes to its torrent.
    fn feed(&mut self, id: ConnId, torrent: usize, peer: PeerId) {
        let now = self.now();
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let inbuf = std::mem::take(&mut conn.inbuf);
        let Some(t) = self.torrents.get_mut(torrent) else {
            return;
        };
        let consumed = t.torrent.receive(now, peer, &inbuf);
        if let Some(conn) = self.conns.get_mut(id) {
            let mut inbuf = inbuf;
            inbuf.drain(..consumed.min(inbuf.len()));
            conn.inbuf = inbuf;
        }
        self.pump(torrent);
    }

    /// An incoming connection: find the torrent its handshake names.
    fn route(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get(id) else {
            return;
        };
        let addr = conn.addr;
        let hash = match HandshakePrefix::decode(&conn.inbuf) {
            Ok(Some(p)) => p.info_hash,
            Ok(None) => {
                self.start_recv(id);
                return;
            }
            Err(e) => {
                self.log(format!("peer {addr} dropped: {e}"));
                self.drop_conn(id, false);
                return;
            }
        };
        let owner = shard_of(&hash, self.shards);
        if owner != self.index {
            let Some(mut conn) = self.conns.remove(id) else {
                return;
            };
            let (Some(fd), Some((tx, wake))) = (conn.fd.take(), self.routes.get(owner)) else {
                return;
            };
            let received = std::mem::take(&mut conn.inbuf);
            // A full inbox (the owner is far behind) drops the connection:
            // the fd is closed with the message; the peer may retry.
            match tx.try_send(ShardMsg::Adopt { fd, addr, received }) {
                Ok(()) => {
                    self.handoffs += 1;
                    wake.wake();
                }
                Err(_) => self.log(format!(
                    "peer {addr} dropped: shard {owner}'s inbox is full ({INBOX_MAX} messages)"
                )),
            }
            return;
        }
        let Some(&t) = self.by_hash.get(&hash) else {
            self.log(format!("peer {addr} dropped: unknown info-hash {hash}"));
            self.drop_conn(id, false);
            return;
        };
        if let Err(e) = self.attach(id, t, addr, Direction::Incoming) {
            self.log(format!("peer {addr} refused: {e}"));
        }
    }

    fn handle_inbox(&mut self) {
        while let Ok(msg) = self.inbox.try_recv() {
            match msg {
                ShardMsg::Adopt { fd, addr, received } => {
                    if self.stopping.is_some() {
                        continue;
                    }
                    let now = self.now();
                    let id = self.conns.insert(fd, addr, ConnState::Routing, now);
                    if let Some(c) = self.conns.get_mut(id) {
                        c.inbuf = received;
                    }
                    self.route(id);
                }
                ShardMsg::Stop => self.stop(),
            }
        }
    }

    fn stop(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(self.now());
        if let Some(op) = self.accept_op.take() {
            let _ = self.ev.cancel(op);
        }
        for t in 0..self.torrents.len() {
            if let Some(request) = self.torrents[t].torrent.stop() {
                let job = TrackerJob {
                    token: t as u64,
                    tiers: self.torrents[t].trackers.clone(),
                    request,
                    reply: self.stopped_tx.clone(),
                    wake: None,
                };
                let _ = self.tracker.submit(job);
            }
        }
        for id in self.conns.ids() {
            self.drop_conn(id, true);
        }
    }

    fn handle_replies(&mut self) {
        while let Ok(r) = self.replies.try_recv() {
            let t = r.token as usize;
            if t >= self.torrents.len() {
                continue;
            }
            let now = self.now();
            let result = match r.outcome {
                Ok(resp) => Ok(resp),
                Err(f) => {
                    let line = format!("{}: {}", self.torrents[t].name, f.message);
                    self.log(line);
                    Err(f.message)
                }
            };
            self.torrents[t].torrent.on_announce(now, result);
            self.pump(t);
        }
    }

    fn run_deferred(&mut self) {
        for _ in 0..self.deferred_recv.len() {
            let Some(id) = self.deferred_recv.pop_front() else {
                break;
            };
            let multishot = self.conns.get(id).is_some_and(|c| self.recv_multishot(c));
            if !multishot && self.ev.buffer_pool().available() == 0 {
                self.deferred_recv.push_front(id);
                break;
            }
            self.start_recv(id);
        }
        for _ in 0..self.deferred_send.len() {
            let Some(id) = self.deferred_send.pop_front() else {
                break;
            };
            self.try_send(id);
        }
        while self.ev.buffer_pool().available() > 0 {
            let Some((_, _, r)) = self.deferred_reads.pop(|_| true) else {
                break;
            };
            self.read_now(r);
        }
        self.run_throttled();
    }

    // ---- rate limits ----

    /// Whether a connection receives multishot: a peer, when the kernel
    /// has provided-buffer rings. A download-limited peer too: its op is
    /// cancelled when the tokens run out ([`Self::pause_recv`]), so an
    /// idle peer holds no buffer while it waits.
    fn recv_multishot(&self, c: &conn::Conn) -> bool {
        self.multishot && matches!(c.state, ConnState::Peer { .. })
    }

    /// Download tokens ran out: stop receiving from this peer until they
    /// return. A multishot op is cancelled (its last completion, ECANCELED,
    /// is not a failure); a single recv simply is not re-armed.
    fn pause_recv(&mut self, id: ConnId) {
        let Some(c) = self.conns.get(id) else {
            return;
        };
        if c.recv_paused {
            return;
        }
        // A cancel that cannot be queued now is tried again on the next
        // completion (the flag stays down).
        if let (Some(op), true) = (c.recv_op, self.multishot) {
            if self.ev.cancel(op).is_err() {
                return;
            }
        }
        if let Some(c) = self.conns.get_mut(id) {
            c.recv_paused = true;
        }
    }

    /// When tokens return for someone waiting, or the next quota round is
    /// due; `None` when nobody waits and there is no global budget.
    fn limits_wake(&mut self, now: Duration) -> Option<Duration> {
        let mut at = self.limits.next_round();
        let mut earliest = |t: Option<Duration>| {
            if let Some(t) = t {
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        };
        for t in self.throttled_reads.torrents() {
            earliest(Some(now + self.limits.up.wait(now, t)));
        }
        for t in self.throttled_recv.torrents() {
            earliest(Some(now + self.limits.down.wait(now, t)));
        }
        at
    }

    /// Bytes a read job puts on the wire (blocks and their headers).
    fn job_wire_bytes(job: &ReadJob) -> u64 {
        u64::from(job.total()) + (job.n * HEADER_BYTES) as u64
    }

    /// Starts a read now if its torrent is unlimited or its tokens allow;
    /// else it waits its turn in `throttled_reads`.
    fn admit_read(&mut self, job: ReadJob) {
        let t = job.torrent;
        if !self.limits.up.is_limited(t) {
            self.start_read(job);
            return;
        }
        let key = conn_key(job.conn);
        let now = self.now();
        let bytes = Self::job_wire_bytes(&job);
        if !self.throttled_reads.has(t, key) && self.limits.up.admit(now, t, bytes) {
            self.start_read(job);
            return;
        }
        if let Err((_, job)) = self.throttled_reads.push(t, key, job) {
            // The queue is full (far past any real load): send unthrottled.
            self.limits.up.charge(now, t, bytes);
            self.start_read(job);
        }
    }

    /// Gives returned tokens to those waiting, round-robin.
    fn run_throttled(&mut self) {
        if self.throttled_reads.is_empty() && self.throttled_recv.is_empty() {
            return;
        }
        let now = self.now();
        loop {
            let up = &mut self.limits.up;
            let Some((t, _, job)) = self.throttled_reads.pop(|t| up.ready(now, t)) else {
                break;
            };
            let alive = self
                .conns
                .get(job.conn)
                .is_some_and(|c| c.state != ConnState::Closing);
            if alive {
                self.limits.up.charge(now, t, Self::job_wire_bytes(&job));
                self.start_read(job);
            }
        }
        loop {
            let down = &mut self.limits.down;
            let Some((_, _, id)) = self.throttled_recv.pop(|t| down.ready(now, t)) else {
                break;
            };
            self.start_recv(id);
        }
    }

    // ---- outputs ----

    fn pump(&mut self, t: usize) {
        let mut reads: Vec<(PeerId, u32, u32, u32)> = Vec::new();
        while let Some(out) = self
            .torrents
            .get_mut(t)
            .and_then(|x| x.torrent.poll_output())
        {
            match out {
                Output::Flush { peer } => {
                    let Some(&id) = self.conn_of[t].get(&peer) else {
                        continue;
                    };
                    let mut bytes = std::mem::take(&mut self.scratch);
                    self.torrents[t].torrent.take_outgoing(peer, &mut bytes);
                    if let Some(c) = self.conns.get_mut(id) {
                        c.queue_bytes(&mut bytes);
                    }
                    bytes.clear();
                    self.scratch = bytes;
                    self.try_send(id);
                }
                Output::Read {
                    peer,
                    piece,
                    offset,
                    length,
                } => reads.push((peer, piece, offset, length)),
                Output::WritePiece { piece, data } => self.start_write(t, piece, data),
                Output::Connect { addr } => self.start_connect(t, addr),
                Output::Close { peer, addr, reason } => {
                    let verb = if reason.banned { "banned" } else { "dropped" };
                    let name = self.torrents[t].name.clone();
                    if !reason.routine {
                        self.log(format!("peer {addr} {verb} ({name}): {}", reason.text));
                    }
                    if let Some(id) = self.conn_of[t].remove(&peer) {
                        self.drop_conn(id, false);
                    }
                }
                Output::Announce { request } => {
                    let wake = self.routes.get(self.index).map(|(_, w)| w.clone());
                    let job = TrackerJob {
                        token: t as u64,
                        tiers: self.torrents[t].trackers.clone(),
                        request,
                        reply: self.replies_tx.clone(),
                        wake: wake
                            .map(|w| Arc::new(move || w.wake()) as Arc<dyn Fn() + Send + Sync>),
                    };
                    if self.tracker.submit(job).is_err() {
                        let now = self.now();
                        self.torrents[t]
                            .torrent
                            .on_announce(now, Err("the tracker queue is full".into()));
                    }
                }
                Output::Finished => {
                    if let Err(e) = self.torrents[t].storage.sync() {
                        eprintln!("ringseed: {}: {e}", self.torrents[t].name);
                    }
                    let info_hash = self.torrents[t].torrent.info_hash();
                    let _ = self.events.send(SessionEvent::Finished { info_hash });
                }
            }
        }
        if !reads.is_empty() {
            self.start_reads(t, &reads);
        }
    }

    /// Starts the reads a pump collected, adjacent blocks of one peer
    /// coalesced (up to `SEND_BLOCKS_MAX`, within one buffer).
    fn start_reads(&mut self, t: usize, reads: &[(PeerId, u32, u32, u32)]) {
        let room = self.ev.buffer_pool().buffer_bytes() as u32;
        let mut job: Option<ReadJob> = None;
        for &(peer, piece, offset, length) in reads {
            if let Some(j) = job.as_mut() {
                let adjacent = j.peer == peer
                    && j.piece == piece
                    && j.offset + j.total() == offset
                    && j.n < SEND_BLOCKS_MAX
                    && j.total() + length <= room;
                if adjacent {
                    j.lens[j.n] = length;
                    j.n += 1;
                    continue;
                }
            }
            if let Some(j) = job.take() {
                self.admit_read(j);
            }
            let Some(&conn) = self.conn_of[t].get(&peer) else {
                continue;
            };
            let mut lens = [0; SEND_BLOCKS_MAX];
            lens[0] = length;
            job = Some(ReadJob {
                conn,
                torrent: t,
                peer,
                piece,
                offset,
                lens,
                n: 1,
            });
        }
        if let Some(j) = job {
            self.admit_read(j);
        }
    }

    // ---- connections ----

    fn start_connect(&mut self, t: usize, addr: SocketAddr) {
        let socket = match sockets::tcp_socket_for_connect(addr, &self.bind) {
            Ok(s) => s,
            Err(e) => {
                self.log(format!("cannot connect to {addr}: {e}"));
                self.torrents[t].torrent.connect_failed(addr);
                return;
            }
        };
        let fd: OwnedFd = socket.into();
        let raw = fd.as_raw_fd();
        let now = self.now();
        let id = self
            .conns
            .insert(fd, addr, ConnState::Connecting { torrent: t }, now);
        match self.queue(OpCtx::Connect { conn: id }, |ev| ev.connect(raw, addr)) {
            Ok(_) => {
                if let Some(c) = self.conns.get_mut(id) {
                    c.ops += 1;
                }
            }
            Err(_) => {
                self.conns.remove(id);
                self.torrents[t].torrent.connect_failed(addr);
            }
        }
    }

    fn on_connect(&mut self, id: ConnId, c: Completion) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        conn.ops = conn.ops.saturating_sub(1);
        let addr = conn.addr;
        let ConnState::Connecting { torrent: t } = conn.state else {
            self.maybe_reap(id);
            return;
        };
        if c.result.is_err() {
            self.torrents[t].torrent.connect_failed(addr);
            self.drop_conn(id, false);
            return;
        }
        let _ = self.attach(id, t, addr, Direction::Outgoing);
    }

    /// Drops connections that did not name a torrent, or connect, in time.
    fn sweep(&mut self, now: Duration) {
        for id in self.conns.ids() {
            let Some(c) = self.conns.get(id) else {
                continue;
            };
            let slow = matches!(c.state, ConnState::Routing | ConnState::Connecting { .. })
                && now.saturating_sub(c.since) >= ROUTING_TIMEOUT;
            if slow {
                let addr = c.addr;
                if c.state == ConnState::Routing {
                    self.log(format!(
                        "peer {addr} dropped: no handshake within {} s",
                        ROUTING_TIMEOUT.as_secs()
                    ));
                }
                self.drop_conn(id, false);
            }
        }
    }

    /// Makes a connection a peer of torrent `t`, feeds it what it received
    /// so far and starts receiving; on refusal the connection is dropped.
    fn attach(
        &mut self,
        id: ConnId,
        t: usize,
        addr: SocketAddr,
        direction: Direction,
    ) -> Result<(), crate::engine::AddPeerError> {
        let now = self.now();
        match self.torrents[t].torrent.add_peer(now, addr, direction) {
            Ok(peer) => {
                if let Some(c) = self.conns.get_mut(id) {
                    c.state = ConnState::Peer { torrent: t, peer };
                }
                self.conn_of[t].insert(peer, id);
                self.feed(id, t, peer);
                self.start_recv(id);
                Ok(())
            }
            Err(e) => {
                self.drop_conn(id, false);
                Err(e)
            }
        }
    }

    /// Starts tearing a connection down; `notify`: tell its torrent.
    fn drop_conn(&mut self, id: ConnId, notify: bool) {
        let now = self.now();
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.state == ConnState::Closing {
            return;
        }
        if let ConnState::Peer { torrent, peer } = conn.state {
            if notify {
                if let Some(t) = self.torrents.get_mut(torrent) {
                    t.torrent.peer_removed(now, peer);
                }
            }
            if let Some(m) = self.conn_of.get_mut(torrent) {
                m.remove(&peer);
            }
        }
        if let ConnState::Connecting { torrent } = conn.state {
            let addr = conn.addr;
            if let Some(t) = self.torrents.get_mut(torrent) {
                t.torrent.connect_failed(addr);
            }
        }
        conn.state = ConnState::Closing;
        if let Some(fd) = conn.raw_fd() {
            // SAFETY: shutdown on an fd we own; it only wakes pending ops.
            unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR);
            }
        }
        let items: Vec<OutItem> = conn.out.drain(..).collect();
        for item in items {
            match item {
                OutItem::Blocks(b) => {
                    let _ = self.ev.buffers().release(b.buffer);
                }
                OutItem::Bytes(_) => {}
            }
        }
        self.maybe_reap(id);
    }

    /// Frees a closing connection once no op names it.
    fn maybe_reap(&mut self, id: ConnId) {
        let ready = self
            .conns
            .get(id)
            .is_some_and(|c| c.state == ConnState::Closing && c.ops == 0);
        if ready {
            // Dropping the OwnedFd closes it.
            self.conns.remove(id);
        }
    }

    // ---- sending ----

    fn try_send(&mut self, id: ConnId) {
        let buffer_bytes = self.ev.buffer_pool().buffer_bytes();
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.send_op.is_some() || conn.state == ConnState::Closing {
            return;
        }
        let Some(fd) = conn.raw_fd() else { return };
        let Some(item) = conn.out.pop_front() else {
            return;
        };
        let (result, sending, buffer) = match item {
            OutItem::Bytes(mut bytes) => {
                let Some(buffer) = self.ev.buffers().acquire() else {
                    if let Some(c) = self.conns.get_mut(id) {
                        c.out.push_front(OutItem::Bytes(bytes));
                    }
                    self.deferred_send.push_back(id);
                    return;
                };
                let n = bytes.len().min(buffer_bytes);
                if let Some(dst) = self.ev.buffers().get_mut(buffer) {
                    dst[..n].copy_from_slice(&bytes[..n]);
                }
                if n < bytes.len() {
                    bytes.drain(..n);
                    if let Some(c) = self.conns.get_mut(id) {
                        c.out.push_front(OutItem::Bytes(bytes));
                    }
                }
                let r = self.queue(OpCtx::Send { conn: id }, |ev| ev.send(fd, buffer, n));
                (r, Sending::Bytes { len: n }, buffer)
            }
            OutItem::Blocks(b) => {
                let r = self.queue(OpCtx::Send { conn: id }, |ev| {
                    ev.send_blocks(fd, b.buffer, &b.segs[..b.n], b.skip)
                });
                (r, Sending::Blocks(b), b.buffer)
            }
        };
        match result {
            Ok(op) => {
                if let Some(c) = self.conns.get_mut(id) {
                    c.send_op = Some(op);
                    c.sending = Some(sending);
                    c.ops += 1;
                }
            }
            Err(_) => {
                let _ = self.ev.buffers().release(buffer);
                self.drop_conn(id, true);
            }
        }
    }

    fn on_send(&mut self, id: ConnId, c: Completion) {
        let release = |s: &mut Shard| {
            if let Some(b) = c.buffer {
                let _ = s.ev.buffers().release(b);
            }
        };
        let Some(conn) = self.conns.get_mut(id) else {
            release(self);
            return;
        };
        conn.send_op = None;
        conn.ops = conn.ops.saturating_sub(1);
        let sending = conn.sending.take();
        let state = conn.state;
        let sent = match (c.result, state) {
            (Ok(n), ConnState::Peer { .. }) => n as usize,
            (_, ConnState::Closing) => {
                release(self);
                self.maybe_reap(id);
                return;
            }
            _ => {
                release(self);
                self.drop_conn(id, true);
                return;
            }
        };
        let ConnState::Peer { torrent, peer } = state else {
            return;
        };
        match sending {
            Some(Sending::Bytes { len }) if sent < len => {
                // A short send: the rest goes first next time.
                let rest = c
                    .buffer
                    .and_then(|b| self.ev.buffer_pool().get(b))
                    .and_then(|b| b.get(sent..len))
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default();
                if let Some(conn) = self.conns.get_mut(id) {
                    conn.out.push_front(OutItem::Bytes(rest));
                }
                release(self);
            }
            Some(Sending::Blocks(mut b)) if b.skip + sent < b.total() => {
                b.skip += sent;
                if let Some(conn) = self.conns.get_mut(id) {
                    conn.out.push_front(OutItem::Blocks(b));
                }
            }
            Some(Sending::Blocks(b)) => {
                release(self);
                let now = self.now();
                if let Some(t) = self.torrents.get_mut(torrent) {
                    t.torrent.on_blocks_sent(now, peer, b.n as u32);
                }
                self.pump(torrent);
            }
            _ => release(self),
        }
        self.try_send(id);
    }

    // ---- disk ----

    /// Starts a read, or queues it behind the reads already waiting for a
    /// buffer (its turn comes round-robin, see `deferred_reads`).
    fn start_read(&mut self, job: ReadJob) {
        if self.deferred_reads.is_empty() {
            self.read_now(job);
            return;
        }
        self.defer_read(job);
    }

    fn read_now(&mut self, job: ReadJob) {
        let Some(buffer) = self.ev.buffers().acquire() else {
            self.defer_read(job);
            return;
        };
        self.read_span(job, buffer, 0);
    }

    fn defer_read(&mut self, job: ReadJob) {
        let (t, key, conn) = (job.torrent, conn_key(job.conn), job.conn);
        if self.deferred_reads.push(t, key, job).is_err() {
            // Past WAITING_MAX reads waiting (far beyond peers x windows):
            // this peer asks for more than the shard can hold.
            self.log(format!(
                "peer dropped: over {} reads wait for a buffer",
                self.deferred_reads.len()
            ));
            self.drop_conn(conn, true);
        }
    }

    fn read_failed(&mut self, job: ReadJob, buffer: BufferId) {
        let _ = self.ev.buffers().release(buffer);
        let now = self.now();
        if let Some(t) = self.torrents.get_mut(job.torrent) {
            for (offset, len) in job.blocks() {
                t.torrent
                    .on_block_read_failed(now, job.peer, job.piece, offset, len);
            }
        }
        self.pump(job.torrent);
        self.maybe_reap(job.conn);
    }

    /// Reads the next file run of the job's bytes into `buffer`, from byte
    /// `done` of the run on.
    fn read_span(&mut self, job: ReadJob, buffer: BufferId, done: u32) {
        let total = job.total();
        let span = self.torrents.get(job.torrent).and_then(|t| {
            t.storage
                .block_spans(job.piece, job.offset + done, total - done)
                .ok()
                .and_then(|s| s.first().copied())
                .map(|s| (s, t.storage.fd(s.file_index)))
        });
        let Some((span, fd)) = span else {
            self.read_failed(job, buffer);
            return;
        };
        let FileSpan {
            length,
            file_offset,
            pad,
            ..
        } = span;
        let start = done as usize;
        let len = length as usize;
        if pad || fd.is_none() {
            if let Some(d) = self
                .ev
                .buffers()
                .get_mut(buffer)
                .and_then(|b| b.get_mut(start..start + len))
            {
                d.fill(0);
            }
            let next = done + length as u32;
            if next >= total {
                self.blocks_ready(job, buffer);
            } else {
                self.read_span(job, buffer, next);
            }
            return;
        }
        let Some(fd) = fd else { return };
        let ctx = OpCtx::Read { job, done };
        match self.queue(ctx, |ev| {
            ev.read_at_range(fd, buffer, start, len, file_offset)
        }) {
            Ok(_) => {
                if let Some(c) = self.conns.get_mut(job.conn) {
                    c.ops += 1;
                }
            }
            Err(_) => self.read_failed(job, buffer),
        }
    }

    fn on_read(&mut self, c: Completion, job: ReadJob, done: u32) {
        if let Some(cn) = self.conns.get_mut(job.conn) {
            cn.ops = cn.ops.saturating_sub(1);
        }
        let Some(buffer) = c.buffer else { return };
        let alive = self
            .conns
            .get(job.conn)
            .is_some_and(|cn| cn.state != ConnState::Closing);
        match c.result {
            Ok(n) if n > 0 && alive => {
                let done = done + n;
                if done >= job.total() {
                    self.blocks_ready(job, buffer);
                } else {
                    self.read_span(job, buffer, done);
                }
            }
            _ => self.read_failed(job, buffer),
        }
    }

    /// The job's blocks are in `buffer`: queue those still wanted.
    fn blocks_ready(&mut self, job: ReadJob, buffer: BufferId) {
        let now = self.now();
        let mut out = BlocksOut {
            buffer,
            segs: [BlockSegment {
                header: [0; HEADER_BYTES],
                start: 0,
                len: 0,
            }; SEND_BLOCKS_MAX],
            n: 0,
            skip: 0,
        };
        if let Some(t) = self.torrents.get_mut(job.torrent) {
            for (offset, len) in job.blocks() {
                if let Some(header) = t
                    .torrent
                    .on_block_read(now, job.peer, job.piece, offset, len)
                {
                    out.segs[out.n] = BlockSegment {
                        header,
                        start: (offset - job.offset) as usize,
                        len: len as usize,
                    };
                    out.n += 1;
                }
            }
        }
        match self.conns.get_mut(job.conn) {
            Some(c) if c.state != ConnState::Closing && out.n > 0 => {
                c.out.push_back(OutItem::Blocks(out));
                self.pump(job.torrent);
                self.try_send(job.conn);
            }
            _ => {
                let _ = self.ev.buffers().release(buffer);
                self.pump(job.torrent);
                self.maybe_reap(job.conn);
            }
        }
    }

    fn start_write(&mut self, t: usize, piece: u32, data: Arc<[u8]>) {
        let spans = self.torrents[t].storage.piece_spans(piece);
        self.writes.insert(
            (t, piece),
            PendingWrite {
                data: data.clone(),
                ops: 0,
                failed: false,
            },
        );
        for s in spans {
            if s.pad {
                continue;
            }
            self.write_span(
                t,
                piece,
                s.file_index,
                s.buffer_offset as u32,
                s.length as u32,
                s.file_offset,
            );
        }
        self.write_done_check(t, piece);
    }

    fn write_span(
        &mut self,
        t: usize,
        piece: u32,
        file: usize,
        start: u32,
        len: u32,
        file_offset: u64,
    ) {
        let fd = self.torrents[t].storage.fd(file);
        let Some(w) = self.writes.get(&(t, piece)) else {
            return;
        };
        let data = w.data.clone();
        let ok = fd.is_some_and(|fd| {
            let ctx = OpCtx::Write {
                torrent: t,
                piece,
                fd_file: file,
                start,
                len,
                file_offset,
            };
            self.queue(ctx, |ev| {
                ev.write_at_shared(fd, data.clone(), start as usize, len as usize, file_offset)
            })
            .is_ok()
        });
        if let Some(w) = self.writes.get_mut(&(t, piece)) {
            if ok {
                w.ops += 1;
            } else {
                w.failed = true;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_write(
        &mut self,
        c: Completion,
        t: usize,
        piece: u32,
        file: usize,
        start: u32,
        len: u32,
        file_offset: u64,
    ) {
        if let Some(w) = self.writes.get_mut(&(t, piece)) {
            w.ops = w.ops.saturating_sub(1);
        }
        match c.result {
            Ok(n) if n > 0 && n < len => {
                self.write_span(
                    t,
                    piece,
                    file,
                    start + n,
                    len - n,
                    file_offset + u64::from(n),
                );
            }
            Ok(n) if n == len => {}
            other => {
                let path = self.torrents[t]
                    .storage
                    .path(file)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let why = match other {
                    Err(e) => errno_text(e),
                    _ => "nothing written".into(),
                };
                eprintln!("ringseed: cannot write {path}: {why}");
                if let Some(w) = self.writes.get_mut(&(t, piece)) {
                    w.failed = true;
                }
            }
        }
        self.write_done_check(t, piece);
    }

    fn write_done_check(&mut self, t: usize, piece: u32) {
        let done = self.writes.get(&(t, piece)).is_some_and(|w| w.ops == 0);
        if !done {
            return;
        }
        let Some(w) = self.writes.remove(&(t, piece)) else {
            return;
        };
        let now = self.now();
        self.torrents[t]
            .torrent
            .on_piece_written(now, piece, !w.failed);
        self.pump(t);
    }
}

/// A connection's key in the wait queues.
fn conn_key(id: ConnId) -> u64 {
    (u64::from(id.slot) << 32) | u64::from(id.generation)
}

fn peer_addr(fd: &OwnedFd) -> Option<SocketAddr> {
    let s = socket2::SockRef::from(fd);
    s.peer_addr().ok()?.as_socket()
}
