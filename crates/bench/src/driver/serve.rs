//! `run_serve`: the trivial seeder, or K synthetic seeds (one listening
//! address each, for a leecher under test). Each of N threads listens on
//! every address (SO_REUSEPORT, the kernel spreads connections) with its own
//! [`EventLoop`], and runs one [`Seed`] per accepted connection: one RECV
//! always armed, and one SEND in flight.
//!
//! Blocks come from a [`PayloadCache`] of whole pieces
//! ([`ServeOptions::cache_bytes_max`]): a payload that fits is generated
//! once up front and shared read-only by every thread; a larger one gets a
//! cache per thread (its share of the bytes) filled on demand. A send is
//! then one vectored `sendmsg` of up to [`SEND_BLOCKS_MAX`] piece messages
//! of one piece, the blocks sent straight from the cached piece (no copy,
//! no generation); control bytes (handshake, bitfield, unchoke, rejects) go
//! first from a pool buffer. With `cache_bytes_max` 0 the old path runs:
//! the send buffer is filled with whole piece messages generated in place
//! by the [`Payload`]. No disk, no choker: the cheapest uploader there is,
//! to measure what the load generator can take.
//!
//! Runs until its duration is over or a stop signal arrives.
//!
//! Limits: listening addresses ([`LISTENS_MAX`]), connections per thread ([`ServeOptions::conns_per_thread`], more
//! are closed at once), buffer size ([`SEND_BUFFER_BYTES`]), threads.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::{check_range, stop_requested, LoadgenError, THREADS_MAX};
use crate::loadgen::payload::Payload;
use crate::loadgen::payload_cache::{CacheError, CacheStats, PayloadCache, CACHE_BYTES_LIMIT};
use crate::loadgen::seed::{Block, Seed, SeedConfig, SeedStats, OUTPUT_BYTES_MIN};
use ringseed::peer::TorrentShape;
use ringseed::runtime::event_loop::{
    BlockSegment, BufferId, Completion, EventLoop, LoopConfig, LoopError, OpId, SEND_BLOCKS_MAX,
};
use ringseed::runtime::sockets::{self, BindOptions};

/// Bytes of every pool buffer: 8 whole piece messages of 16 KiB.
pub const SEND_BUFFER_BYTES: usize = 8 * OUTPUT_BYTES_MIN;
/// Most connections per thread accepted.
pub const CONNS_PER_THREAD_MAX: u32 = 8192;
/// Most listening addresses (synthetic seeds) of one run.
pub const LISTENS_MAX: usize = 1024;
/// Listen backlog.
const BACKLOG: i32 = 4096;
/// Longest single wait of the loop.
const WAIT_MAX: Duration = Duration::from_millis(50);
/// Longest wait for ops to finish when stopping.
const DRAIN_WAIT_MAX: Duration = Duration::from_secs(2);

/// What a serve run is asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen: one address per synthetic seed, 1 to [`LISTENS_MAX`].
    pub listen: Vec<SocketAddr>,
    pub shape: TorrentShape,
    pub payload: Payload,
    /// Threads, 1 to [`THREADS_MAX`].
    pub threads: usize,
    /// Connections one thread holds at most, 1 to [`CONNS_PER_THREAD_MAX`].
    pub conns_per_thread: u32,
    /// Stop after this long; `None`: until a stop signal.
    pub duration: Option<Duration>,
    /// Bytes of generated pieces kept in memory, 0 (no cache: every block
    /// generated into the send buffer) or one piece to
    /// [`CACHE_BYTES_LIMIT`]. A payload that fits is generated up front and
    /// shared; otherwise each thread caches its share on demand.
    pub cache_bytes_max: u64,
}

/// What a serve run did.
#[derive(Debug, Clone, Default)]
pub struct ServeOutcome {
    pub wall: Duration,
    pub connections: u64,
    pub refused: u64,
    pub stats: SeedStats,
    /// Cache lookups, fills and evictions, summed over threads (the up-front
    /// fill of a shared cache included).
    pub cache: CacheStats,
}

/// Where a thread's blocks come from.
enum Pieces {
    /// Generated into the send buffer per block.
    Generate,
    /// The whole payload, filled up front, shared read-only; the hits of
    /// this thread.
    Shared(Arc<PayloadCache>, u64),
    /// This thread's own cache, filled on demand.
    Own(PayloadCache),
}

impl Pieces {
    fn piece(&mut self, piece: u32) -> Option<Arc<[u8]>> {
        match self {
            Pieces::Generate => None,
            Pieces::Shared(c, hits) => {
                let p = c.get(piece).cloned();
                *hits += u64::from(p.is_some());
                p
            }
            Pieces::Own(c) => c.piece(piece),
        }
    }

    fn stats(&self) -> CacheStats {
        match self {
            Pieces::Generate => CacheStats::default(),
            Pieces::Shared(_, hits) => CacheStats {
                hits: *hits,
                ..CacheStats::default()
            },
            Pieces::Own(c) => *c.stats(),
        }
    }
}

/// A send straight from a cached piece, kept until it is all out.
struct SharedSend {
    data: Arc<[u8]>,
    segments: [BlockSegment; SEND_BLOCKS_MAX],
    count: usize,
    /// Bytes of the whole send (headers included) and those already sent.
    total: usize,
    sent: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Accept(usize),
    Recv(usize),
    Send {
        conn: usize,
        start: usize,
        len: usize,
    },
    SendShared(usize),
}

struct Conn {
    fd: Option<OwnedFd>,
    seed: Seed,
    /// The send from a cached piece in flight, if any.
    shared: Option<SharedSend>,
    sending: bool,
    ops: u32,
    closed: bool,
}

impl Conn {
    fn end(&mut self) {
        if !self.closed {
            self.closed = true;
            if let Some(fd) = &self.fd {
                let _ = SockRef::from(fd).shutdown(Shutdown::Both);
            }
        }
    }
}

/// Binds the listeners (so the caller knows it listens) and serves until
/// the end; `ready` is set once every thread listens.
pub fn run_serve(opts: &ServeOptions, ready: &AtomicBool) -> Result<ServeOutcome, LoadgenError> {
    check_range("threads", opts.threads as u64, 1, THREADS_MAX as u64)?;
    check_range(
        "connections per thread",
        opts.conns_per_thread.into(),
        1,
        CONNS_PER_THREAD_MAX.into(),
    )?;
    check_range(
        "listen addresses",
        opts.listen.len() as u64,
        1,
        LISTENS_MAX as u64,
    )?;
    let piece_length = opts.payload.piece_length();
    if opts.cache_bytes_max != 0 {
        let min = piece_length.min(opts.payload.total_length());
        check_range("cache bytes", opts.cache_bytes_max, min, CACHE_BYTES_LIMIT)?;
    }
    let mut prefill = CacheStats::default();
    let shared = if opts.cache_bytes_max != 0 && opts.payload.total_length() <= opts.cache_bytes_max
    {
        let mut c = PayloadCache::new(opts.payload, opts.cache_bytes_max).map_err(cache_error)?;
        c.prefill();
        prefill = *c.stats();
        Some(Arc::new(c))
    } else {
        None
    };
    // Each thread's share of a cache that cannot hold everything.
    let own_bytes = (opts.cache_bytes_max / opts.threads as u64)
        .max(piece_length.min(opts.payload.total_length()));
    let mut listeners: Vec<Vec<OwnedFd>> = Vec::with_capacity(opts.threads);
    for _ in 0..opts.threads {
        let mut mine = Vec::with_capacity(opts.listen.len());
        for addr in &opts.listen {
            let l = sockets::tcp_listener(*addr, &BindOptions::default(), true, BACKLOG)?;
            mine.push(OwnedFd::from(l));
        }
        listeners.push(mine);
    }
    let start = Instant::now();
    let results: Vec<Result<ServeOutcome, LoadgenError>> = std::thread::scope(|s| {
        let handles: Vec<_> = listeners
            .iter()
            .enumerate()
            .map(|(t, l)| {
                let fds: Vec<RawFd> = l.iter().map(|f| f.as_raw_fd()).collect();
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("serve-{t}"))
                    .spawn_scoped(s, move || {
                        let pieces = match shared {
                            Some(c) => Pieces::Shared(c, 0),
                            None if opts.cache_bytes_max == 0 => Pieces::Generate,
                            None => Pieces::Own(
                                PayloadCache::new(opts.payload, own_bytes).map_err(cache_error)?,
                            ),
                        };
                        serve_thread(opts, &fds, start, pieces)
                    })
            })
            .collect();
        ready.store(true, Ordering::SeqCst);
        handles
            .into_iter()
            .map(|h| match h {
                Err(e) => Err(LoadgenError::Spawn(e)),
                Ok(h) => h.join().unwrap_or(Err(LoadgenError::ThreadPanicked)),
            })
            .collect()
    });
    let mut total = ServeOutcome {
        wall: start.elapsed(),
        cache: prefill,
        ..ServeOutcome::default()
    };
    for r in results {
        let r = r?;
        total.connections += r.connections;
        total.refused += r.refused;
        total.cache.add(&r.cache);
        total.stats.add(&r.stats);
    }
    Ok(total)
}

fn cache_error(e: CacheError) -> LoadgenError {
    match e {
        CacheError::BytesMax { found, min, max } => LoadgenError::Range {
            what: "cache bytes",
            found,
            min,
            max,
        },
    }
}

/// Queues an op (see [`EventLoop::queue_or_flush`]); its `user_data`.
fn queue(
    ev: &mut EventLoop,
    f: impl Fn(&mut EventLoop) -> Result<OpId, LoopError>,
) -> Result<u64, LoopError> {
    Ok(ev.queue_or_flush(f)?.user_data())
}

struct Thread<'a> {
    opts: &'a ServeOptions,
    ev: EventLoop,
    ops: HashMap<u64, Tag>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    out: ServeOutcome,
    pieces: Pieces,
    /// Scratch list of the blocks of one send.
    blocks: Vec<Block>,
}

fn serve_thread(
    opts: &ServeOptions,
    listeners: &[RawFd],
    start: Instant,
    pieces: Pieces,
) -> Result<ServeOutcome, LoadgenError> {
    let conns = opts.conns_per_thread;
    let ev = EventLoop::new(LoopConfig {
        ring_entries: (conns * 2).next_power_of_two().clamp(64, 4096),
        ops_in_flight_max: conns * 3 + 16 + listeners.len() as u32,
        buffers: conns * 2 + 4,
        buffer_bytes: SEND_BUFFER_BYTES,
    })?;
    let mut t = Thread {
        opts,
        ev,
        ops: HashMap::new(),
        conns: Vec::new(),
        free: Vec::new(),
        out: ServeOutcome::default(),
        pieces,
        blocks: Vec::with_capacity(SEND_BLOCKS_MAX),
    };
    for (i, &l) in listeners.iter().enumerate() {
        let id = queue(&mut t.ev, |ev| ev.accept(l))?;
        t.ops.insert(id, Tag::Accept(i));
    }
    let deadline = opts.duration.map(|d| start + d);
    let mut completions: Vec<Completion> = Vec::new();
    let mut stopping_since: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if stopping_since.is_none() && (deadline.is_some_and(|d| now >= d) || stop_requested()) {
            stopping_since = Some(now);
            for c in t.conns.iter_mut().flatten() {
                c.end();
            }
        }
        if let Some(since) = stopping_since {
            let open = t.conns.iter().flatten().any(|c| c.ops > 0);
            if !open || now.duration_since(since) >= DRAIN_WAIT_MAX {
                break;
            }
        }
        t.ev.submit_and_wait(1, Some(WAIT_MAX))?;
        completions.clear();
        t.ev.drain_completions(&mut completions);
        for c in completions.drain(..) {
            t.on_completion(c, listeners, stopping_since.is_some());
        }
    }
    t.ev.shutdown();
    for c in t.conns.iter().flatten() {
        t.out.stats.add(c.seed.stats());
    }
    t.out.wall = start.elapsed();
    t.out.cache = t.pieces.stats();
    Ok(t.out)
}

impl Thread<'_> {
    fn on_completion(&mut self, c: Completion, listeners: &[RawFd], stopping: bool) {
        let Some(tag) = self.ops.remove(&c.op.user_data()) else {
            if let Some(b) = c.buffer {
                let _ = self.ev.buffers().release(b);
            }
            return;
        };
        match tag {
            Tag::Accept(i) => {
                if let Ok(fd) = c.result {
                    // SAFETY: the kernel just gave us this fd; nobody else owns it.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
                    self.accepted(fd);
                }
                if let (false, Some(&l)) = (stopping, listeners.get(i)) {
                    if let Ok(id) = queue(&mut self.ev, |ev| ev.accept(l)) {
                        self.ops.insert(id, Tag::Accept(i));
                    }
                }
            }
            Tag::Recv(ci) => {
                self.op_done(ci);
                let Some(buf) = c.buffer else { return };
                let ok = match (c.result, self.conns.get_mut(ci).and_then(|c| c.as_mut())) {
                    (Ok(n), Some(conn)) if n > 0 && !conn.closed => {
                        let got = self
                            .ev
                            .buffer_pool()
                            .get(buf)
                            .and_then(|b| b.get(..n as usize))
                            .unwrap_or(&[]);
                        match conn.seed.receive(got) {
                            Ok(()) => true,
                            Err(_) => {
                                conn.end();
                                false
                            }
                        }
                    }
                    (_, Some(conn)) => {
                        conn.end();
                        false
                    }
                    _ => false,
                };
                if ok {
                    self.arm_recv(ci, buf);
                    self.pump(ci, None);
                } else {
                    let _ = self.ev.buffers().release(buf);
                }
                self.reap(ci);
            }
            Tag::Send {
                conn: ci,
                start,
                len,
            } => {
                self.op_done(ci);
                let Some(buf) = c.buffer else { return };
                let alive = self
                    .conns
                    .get(ci)
                    .and_then(|c| c.as_ref())
                    .is_some_and(|c| !c.closed);
                if let (Some(conn), true) = (self.conns.get_mut(ci).and_then(|c| c.as_mut()), alive)
                {
                    conn.sending = false;
                    match c.result {
                        Ok(n) if (n as usize) < len && n > 0 => {
                            self.send(ci, buf, start + n as usize, len - n as usize);
                        }
                        Ok(n) if n > 0 => self.pump(ci, Some(buf)),
                        _ => {
                            conn.end();
                            let _ = self.ev.buffers().release(buf);
                        }
                    }
                } else {
                    let _ = self.ev.buffers().release(buf);
                }
                self.reap(ci);
            }
            Tag::SendShared(ci) => {
                self.op_done(ci);
                if let Some(b) = c.buffer {
                    let _ = self.ev.buffers().release(b);
                }
                if let Some(Some(conn)) = self.conns.get_mut(ci) {
                    conn.sending = false;
                    let more = match (c.result, conn.shared.as_mut(), conn.closed) {
                        (Ok(n), Some(s), false) if n > 0 => {
                            s.sent += n as usize;
                            s.sent < s.total
                        }
                        (_, _, true) => false,
                        _ => {
                            conn.end();
                            false
                        }
                    };
                    if more {
                        self.send_shared(ci);
                    } else {
                        conn.shared = None;
                        self.pump(ci, None);
                    }
                }
                self.reap(ci);
            }
        }
    }

    fn op_done(&mut self, ci: usize) {
        if let Some(Some(c)) = self.conns.get_mut(ci) {
            c.ops = c.ops.saturating_sub(1);
        }
    }

    /// Frees a closed connection's slot once its ops are done.
    fn reap(&mut self, ci: usize) {
        let done = matches!(self.conns.get(ci), Some(Some(c)) if c.closed && c.ops == 0);
        if done {
            if let Some(slot) = self.conns.get_mut(ci) {
                if let Some(c) = slot.take() {
                    self.out.stats.add(c.seed.stats());
                }
            }
            self.free.push(ci);
        }
    }

    fn accepted(&mut self, fd: OwnedFd) {
        let open = self.conns.len() - self.free.len();
        let seed = match Seed::new(SeedConfig::default(), self.opts.shape) {
            Ok(s) => s,
            Err(_) => return,
        };
        if open >= self.opts.conns_per_thread as usize {
            self.out.refused += 1;
            return;
        }
        let Some(buf) = self.ev.buffers().acquire() else {
            self.out.refused += 1;
            return;
        };
        let conn = Conn {
            fd: Some(fd),
            seed,
            shared: None,
            sending: false,
            ops: 0,
            closed: false,
        };
        let ci = match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.conns.get_mut(i) {
                    *slot = Some(conn);
                }
                i
            }
            None => {
                self.conns.push(Some(conn));
                self.conns.len() - 1
            }
        };
        self.out.connections += 1;
        self.arm_recv(ci, buf);
    }

    fn arm_recv(&mut self, ci: usize, buf: BufferId) {
        let Some(Some(conn)) = self.conns.get_mut(ci) else {
            let _ = self.ev.buffers().release(buf);
            return;
        };
        let Some(fd) = conn.fd.as_ref().map(|f| f.as_raw_fd()) else {
            let _ = self.ev.buffers().release(buf);
            return;
        };
        match queue(&mut self.ev, |ev| ev.recv(fd, buf)) {
            Ok(id) => {
                self.ops.insert(id, Tag::Recv(ci));
                conn.ops += 1;
            }
            Err(_) => {
                let _ = self.ev.buffers().release(buf);
                conn.end();
            }
        }
    }

    /// Fills a send buffer with what the seed has and sends it; `held` is a
    /// buffer the caller already has (released when there is nothing to send).
    fn pump(&mut self, ci: usize, held: Option<BufferId>) {
        let Some(Some(conn)) = self.conns.get_mut(ci) else {
            if let Some(b) = held {
                let _ = self.ev.buffers().release(b);
            }
            return;
        };
        if conn.sending || conn.closed || !conn.seed.has_output() {
            if let Some(b) = held {
                let _ = self.ev.buffers().release(b);
            }
            return;
        }
        let cached = !matches!(self.pieces, Pieces::Generate);
        if cached && !conn.seed.has_control() {
            if let Some(b) = held {
                let _ = self.ev.buffers().release(b);
            }
            self.pump_cached(ci);
            return;
        }
        let Some(buf) = held.or_else(|| self.ev.buffers().acquire()) else {
            return;
        };
        if cached {
            // Control bytes alone; the blocks follow from the cache.
            let n = match self.ev.buffers().get_mut(buf) {
                Some(dst) => conn.seed.produce_control(dst),
                None => 0,
            };
            if n == 0 {
                let _ = self.ev.buffers().release(buf);
                return;
            }
            self.send(ci, buf, 0, n);
            return;
        }
        let payload = self.opts.payload;
        let piece_length = payload.piece_length();
        let fill = move |piece: u32, offset: u32, out: &mut [u8]| {
            payload.fill(u64::from(piece) * piece_length + u64::from(offset), out)
        };
        let n = match self.ev.buffers().get_mut(buf) {
            Some(dst) => conn.seed.produce(dst, &fill),
            None => 0,
        };
        if n == 0 {
            let _ = self.ev.buffers().release(buf);
            return;
        }
        self.send(ci, buf, 0, n);
    }

    /// Takes the next blocks of one piece from the seed and sends them
    /// straight from the cached piece.
    fn pump_cached(&mut self, ci: usize) {
        let Some(Some(conn)) = self.conns.get_mut(ci) else {
            return;
        };
        self.blocks.clear();
        if conn.seed.take_blocks(SEND_BLOCKS_MAX, &mut self.blocks) == 0 {
            return;
        }
        let Some(first) = self.blocks.first().map(|b| b.piece) else {
            return;
        };
        let Some(data) = self.pieces.piece(first) else {
            // The seed checked the request against the torrent: not reached.
            conn.end();
            return;
        };
        let empty = BlockSegment {
            header: [0; 13],
            start: 0,
            len: 0,
        };
        let mut segments = [empty; SEND_BLOCKS_MAX];
        let mut total = 0;
        for (seg, b) in segments.iter_mut().zip(&self.blocks) {
            *seg = BlockSegment {
                header: b.header(),
                start: b.offset as usize,
                len: b.length as usize,
            };
            total += seg.header.len() + seg.len;
        }
        conn.shared = Some(SharedSend {
            data,
            segments,
            count: self.blocks.len().min(SEND_BLOCKS_MAX),
            total,
            sent: 0,
        });
        self.send_shared(ci);
    }

    /// Sends what is left of the connection's send from a cached piece.
    fn send_shared(&mut self, ci: usize) {
        let Some(Some(conn)) = self.conns.get_mut(ci) else {
            return;
        };
        let (Some(fd), Some(s)) = (
            conn.fd.as_ref().map(|f| f.as_raw_fd()),
            conn.shared.as_ref(),
        ) else {
            return;
        };
        let segs = s.segments.get(..s.count).unwrap_or(&[]);
        let queued = queue(&mut self.ev, |ev| {
            ev.send_blocks_shared(fd, Arc::clone(&s.data), segs, s.sent)
        });
        match queued {
            Ok(id) => {
                self.ops.insert(id, Tag::SendShared(ci));
                conn.ops += 1;
                conn.sending = true;
            }
            Err(_) => {
                conn.shared = None;
                conn.end();
            }
        }
    }

    fn send(&mut self, ci: usize, buf: BufferId, start: usize, len: usize) {
        let Some(Some(conn)) = self.conns.get_mut(ci) else {
            let _ = self.ev.buffers().release(buf);
            return;
        };
        let Some(fd) = conn.fd.as_ref().map(|f| f.as_raw_fd()) else {
            let _ = self.ev.buffers().release(buf);
            return;
        };
        match queue(&mut self.ev, |ev| ev.send_range(fd, buf, start, len)) {
            Ok(id) => {
                self.ops.insert(
                    id,
                    Tag::Send {
                        conn: ci,
                        start,
                        len,
                    },
                );
                conn.ops += 1;
                conn.sending = true;
            }
            Err(_) => {
                let _ = self.ev.buffers().release(buf);
                conn.end();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;
    use crate::loadgen::leecher::{Leecher, LeecherConfig};
    use ringseed::InfoHash;

    const PIECE: u64 = 64 * 1024;
    /// 6 pieces and a short seventh.
    const SIZE: u64 = 6 * PIECE + 5000;
    const RUN: Duration = Duration::from_secs(2);
    const READS_MAX: usize = 100_000;

    fn options(addr: &str, cache_bytes_max: u64) -> ServeOptions {
        let payload = Payload::new(3, SIZE, PIECE).unwrap();
        ServeOptions {
            listen: vec![addr.parse().unwrap()],
            shape: TorrentShape::new(InfoHash([9; 20]), PIECE, SIZE).unwrap(),
            payload,
            threads: 2,
            conns_per_thread: 8,
            duration: Some(RUN),
            cache_bytes_max,
        }
    }

    /// One blocking leecher downloads the whole torrent from `opts`'s
    /// address and checks every block.
    fn download(opts: &ServeOptions) {
        let mut sock = TcpStream::connect(opts.listen[0]).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let start = Instant::now();
        let mut l = Leecher::new(LeecherConfig::default(), opts.shape, Duration::ZERO).unwrap();
        let p = opts.payload;
        let check = |piece, offset, data: &[u8]| p.check_block(piece, offset, data);
        let mut buf = vec![0u8; 1 << 16];
        let mut out = Vec::new();
        for _ in 0..READS_MAX {
            out.clear();
            l.take_output(&mut out);
            sock.write_all(&out).unwrap();
            let n = sock.read(&mut buf).unwrap();
            assert!(n > 0, "serve closed the connection");
            l.receive(start.elapsed(), &buf[..n], &check).unwrap();
            if l.is_done() {
                break;
            }
        }
        assert!(l.is_done());
        assert_eq!(l.stats().bytes_good, SIZE);
        assert_eq!(l.stats().blocks_bad, 0);
    }

    fn serve_and_download(opts: ServeOptions) -> ServeOutcome {
        let ready = AtomicBool::new(false);
        std::thread::scope(|s| {
            let h = s.spawn(|| run_serve(&opts, &ready));
            for _ in 0..500 {
                if ready.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            download(&opts);
            download(&opts);
            h.join().unwrap().unwrap()
        })
    }

    #[test]
    fn a_shared_cache_serves_everything_from_memory() {
        let out = serve_and_download(options("127.0.40.11:17391", 1 << 20));
        assert_eq!(out.connections, 2);
        assert_eq!(out.stats.block_bytes_sent, 2 * SIZE);
        assert_eq!(out.cache.bytes_generated, SIZE, "generated once, up front");
        assert_eq!(out.cache.misses, 0);
        assert!(out.cache.hits > 0);
    }

    #[test]
    fn per_thread_caches_fill_on_demand_and_evict() {
        // Two threads, one piece each: every new piece evicts.
        let out = serve_and_download(options("127.0.40.12:17392", 2 * PIECE));
        assert_eq!(out.stats.block_bytes_sent, 2 * SIZE);
        assert!(out.cache.misses >= 7, "{:?}", out.cache);
        assert!(out.cache.evictions > 0, "{:?}", out.cache);
    }

    #[test]
    fn without_a_cache_blocks_are_generated_in_place() {
        let out = serve_and_download(options("127.0.40.13:17393", 0));
        assert_eq!(out.stats.block_bytes_sent, 2 * SIZE);
        assert_eq!(out.cache, CacheStats::default());
    }

    /// `EventLoop::send_blocks_shared`, the op serve's cached path uses:
    /// header and block pairs straight from shared bytes, a skip resumes a
    /// short send, and bad segments are refused.
    #[test]
    fn shared_bytes_go_out_as_piece_messages() {
        use std::os::unix::net::UnixStream;
        let mut ev = EventLoop::new(LoopConfig {
            ring_entries: 8,
            ops_in_flight_max: 8,
            buffers: 2,
            buffer_bytes: 4096,
        })
        .unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let data: Arc<[u8]> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let segs: Vec<BlockSegment> = (0..3)
            .map(|i| BlockSegment {
                header: [i as u8 + 1; 13],
                start: 1000 + i * 20_000,
                len: 16_384 - i,
            })
            .collect();
        let expected: Vec<u8> = segs
            .iter()
            .flat_map(|s| {
                s.header
                    .iter()
                    .chain(&data[s.start..s.start + s.len])
                    .copied()
            })
            .collect();
        for skip in [0, 7, 13 + 500] {
            let id = ev
                .send_blocks_shared(a.as_raw_fd(), Arc::clone(&data), &segs, skip)
                .unwrap();
            let mut got = vec![0u8; expected.len() - skip];
            let mut done = None;
            let mut comps = Vec::new();
            for _ in 0..500 {
                ev.submit_and_wait(1, Some(Duration::from_millis(10)))
                    .unwrap();
                ev.drain_completions(&mut comps);
                if let Some(c) = comps.iter().find(|c| c.op == id) {
                    done = Some(*c);
                    break;
                }
            }
            let c = done.expect("the send completes");
            assert_eq!(c.result, Ok((expected.len() - skip) as u32));
            assert_eq!(c.buffer, None);
            b.read_exact(&mut got).unwrap();
            assert_eq!(got, expected[skip..], "skip {skip}");
        }
        assert_eq!(
            Arc::strong_count(&data),
            1,
            "the op let go of its reference"
        );
        let fd = a.as_raw_fd();
        let past = BlockSegment {
            header: [0; 13],
            start: 99_990,
            len: 11,
        };
        assert!(matches!(
            ev.send_blocks_shared(fd, Arc::clone(&data), &[], 0),
            Err(LoopError::Segments { count: 0, .. })
        ));
        assert!(matches!(
            ev.send_blocks_shared(fd, Arc::clone(&data), &[segs[0]; 5], 0),
            Err(LoopError::Segments { count: 5, .. })
        ));
        assert!(matches!(
            ev.send_blocks_shared(fd, Arc::clone(&data), &[past], 0),
            Err(LoopError::Range { .. })
        ));
        assert!(matches!(
            ev.send_blocks_shared(fd, Arc::clone(&data), &segs[..1], 13 + 16_384),
            Err(LoopError::Length { .. })
        ));
    }

    #[test]
    fn a_cache_smaller_than_a_piece_is_refused() {
        let ready = AtomicBool::new(false);
        let r = run_serve(&options("127.0.40.14:17394", PIECE - 1), &ready);
        assert!(matches!(
            r,
            Err(LoadgenError::Range {
                what: "cache bytes",
                ..
            })
        ));
    }
}
