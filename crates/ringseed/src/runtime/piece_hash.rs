//! Piece hashing over all cores, reading through io_uring: the engine behind
//! `ringseed verify` and `ringseed create`.
//!
//! One worker thread per core, each with its own ring. A worker runs a few
//! lanes (3 by default); each lane claims batches of consecutive pieces from a
//! shared counter and has its own fixed-size buffers and open files. Pieces are
//! cut into chunks of at most `chunk_bytes` (a 512 MiB piece is never held in
//! memory whole), and each lane keeps up to `depth` chunks in flight: while the
//! oldest chunks are hashed, the reads of the next ones are already queued in
//! the kernel. The oldest chunk of every lane is hashed together, block by
//! block interleaved ([`crate::hash::interleave`]), which lets the core overlap the
//! SHA-1 rounds of independent pieces. Every read owns its buffer slot until
//! its completion arrives; a worker never returns (nor frees a buffer) with a
//! read in flight.
//!
//! Results go to the caller through a bounded channel, in completion order. A
//! missing, short or unreadable file fails only the pieces it touches.

use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};

use super::fd_cache::{FdCache, OpenFailure};
use super::uring::{new_ring, UringError};
use crate::hash::update_interleaved;
use crate::hash::Sha1Hasher;
use crate::storage::{FileExtent, FileSpan, Layout, LayoutError};
use io_uring::{cqueue, opcode, types, IoUring};

/// Most worker threads.
pub const THREADS_MAX: usize = 1024;
/// Smallest read chunk, in bytes.
pub const CHUNK_BYTES_MIN: usize = 16 * 1024;
/// Largest read chunk, in bytes (one buffer).
pub const CHUNK_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Fewest chunks a lane keeps in flight (2 = double buffering).
pub const DEPTH_MIN: usize = 2;
/// Most chunks a lane keeps in flight (buffers per lane).
pub const DEPTH_MAX: usize = 8;
/// Fewest pieces a worker hashes at once.
pub const LANES_MIN: usize = 1;
/// Most pieces a worker hashes at once.
pub const LANES_MAX: usize = 4;
/// Most file spans (reads) in one chunk; a chunk of many tiny files ends early.
pub const SPANS_PER_CHUNK_MAX: usize = 16;
/// Results waiting for the caller before workers block.
pub const RESULTS_QUEUE_MAX: usize = 4096;
/// Bytes of pieces a lane claims at once (at least one piece).
pub const CLAIM_BYTES_TARGET: u64 = 16 * 1024 * 1024;
/// Times one read is retried after EINTR/EAGAIN before it counts as failed.
const READ_RETRIES_MAX: u32 = 64;

/// One file of the stream to hash, in torrent order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskFile {
    /// Where the file is; `None` for a pad file (reads as zeros, never opened).
    pub path: Option<PathBuf>,
    /// Bytes the file must have.
    pub length: u64,
}

/// Why one piece could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PieceError {
    #[error("missing file {}", path.display())]
    MissingFile { file: usize, path: PathBuf },
    #[error("short file {}: {found} bytes, {expected} expected", path.display())]
    ShortFile {
        file: usize,
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error("cannot {op} {}: {}", path.display(), io::Error::from_raw_os_error(*errno))]
    Io {
        file: usize,
        path: PathBuf,
        op: &'static str,
        errno: i32,
    },
}

impl PieceError {
    /// Index of the file at fault.
    pub fn file(&self) -> usize {
        match self {
            PieceError::MissingFile { file, .. }
            | PieceError::ShortFile { file, .. }
            | PieceError::Io { file, .. } => *file,
        }
    }
}

/// The outcome for one piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceResult {
    pub index: u64,
    pub hash: Result<[u8; 20], PieceError>,
}

/// Tuning knobs; [`HashOptions::default`] suits most machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashOptions {
    /// Worker threads (each with its own ring).
    pub threads: usize,
    /// Bytes per read chunk (per buffer).
    pub chunk_bytes: usize,
    /// Chunks in flight per lane (buffers per lane).
    pub depth: usize,
    /// Pieces each worker hashes at once, interleaved (see
    /// [`crate::hash::interleave`]); buffers per worker = lanes x depth.
    pub lanes: usize,
}

impl Default for HashOptions {
    fn default() -> Self {
        Self {
            threads: available_threads(),
            chunk_bytes: 512 * 1024,
            depth: 2,
            lanes: 3,
        }
    }
}

/// Number of cores this process may run on (1 if unknown).
pub fn available_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(THREADS_MAX)
}

/// Why a hashing run failed as a whole (a per-piece failure is a [`PieceError`]).
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("{what} {value} is out of range: expected {min} to {max}")]
    Option {
        what: &'static str,
        value: usize,
        min: usize,
        max: usize,
    },
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Uring(#[from] UringError),
    #[error("io_uring submission failed: {0}")]
    Submit(#[source] io::Error),
    #[error("internal error in a hashing worker: {0}")]
    Internal(&'static str),
    #[error("a hashing worker panicked")]
    WorkerPanicked,
    #[error("the check was cancelled")]
    Cancelled,
    #[error(
        "piece range {start}..{end} to hash overlaps or precedes the one before \
         (ranges must be ascending and disjoint)"
    )]
    Selection { start: u64, end: u64 },
}

/// What a finished run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashStats {
    pub pieces: u64,
    /// Bytes of the stream covered (pad files included).
    pub bytes: u64,
    pub threads: usize,
}

fn check_range(what: &'static str, value: usize, min: usize, max: usize) -> Result<(), HashError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(HashError::Option {
            what,
            value,
            min,
            max,
        })
    }
}

/// Hashes every piece of the stream `files` makes with pieces of
/// `piece_length` bytes, calling `on_piece` (on the calling thread, in
/// completion order) once per piece. Returns when every piece was reported, or
/// with the first worker-level error.
pub fn hash_pieces(
    files: &[DiskFile],
    piece_length: u64,
    options: &HashOptions,
    on_piece: impl FnMut(PieceResult),
) -> Result<HashStats, HashError> {
    hash_pieces_until(
        files,
        piece_length,
        options,
        &AtomicBool::new(false),
        on_piece,
    )
}

/// [`hash_pieces`] that stops soon after `cancel` is set: no lane plans
/// another chunk, the reads in flight (at most lanes x depth chunks per
/// worker) complete, and it returns [`HashError::Cancelled`]. Pieces
/// reported before that were hashed whole.
pub fn hash_pieces_until(
    files: &[DiskFile],
    piece_length: u64,
    options: &HashOptions,
    cancel: &AtomicBool,
    on_piece: impl FnMut(PieceResult),
) -> Result<HashStats, HashError> {
    hash_pieces_in(files, piece_length, options, cancel, None, on_piece)
}

/// [`hash_pieces_until`] over only the pieces in `select` (ranges
/// `[start, end)` of piece indexes, ascending and disjoint; `None`: every
/// piece). Pieces outside are not read at all and not reported; ranges
/// past the last piece are cut to it. `HashStats::pieces` counts the
/// pieces hashed.
pub fn hash_pieces_in(
    files: &[DiskFile],
    piece_length: u64,
    options: &HashOptions,
    cancel: &AtomicBool,
    select: Option<&[(u64, u64)]>,
    mut on_piece: impl FnMut(PieceResult),
) -> Result<HashStats, HashError> {
    check_range("thread count", options.threads, 1, THREADS_MAX)?;
    check_range(
        "chunk size",
        options.chunk_bytes,
        CHUNK_BYTES_MIN,
        CHUNK_BYTES_MAX,
    )?;
    check_range("read-ahead depth", options.depth, DEPTH_MIN, DEPTH_MAX)?;
    check_range("lane count", options.lanes, LANES_MIN, LANES_MAX)?;
    let extents: Vec<FileExtent> = files
        .iter()
        .map(|f| FileExtent {
            length: f.length,
            pad: f.path.is_none(),
        })
        .collect();
    let layout = Layout::new(piece_length, &extents)?;
    drop(extents);
    let total = layout.total_length();
    let num_pieces = u64::from(layout.num_pieces());
    let runs: Vec<(u64, u64)> = match select {
        None => vec![(0, num_pieces)],
        Some(ranges) => {
            let mut runs: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
            for &(start, end) in ranges {
                let end = end.min(num_pieces);
                if start >= end {
                    continue;
                }
                if runs.last().is_some_and(|&(_, last_end)| start < last_end) {
                    return Err(HashError::Selection { start, end });
                }
                runs.push((start, end));
            }
            runs
        }
    };
    let selected: u64 = runs.iter().map(|&(s, e)| e - s).sum();
    let selected_bytes: u64 = runs
        .iter()
        .map(|&(s, e)| (e * piece_length).min(total) - s * piece_length)
        .sum();
    if selected == 0 {
        return Ok(HashStats {
            pieces: 0,
            bytes: 0,
            threads: 0,
        });
    }
    let threads = options
        .threads
        .min(usize::try_from(selected).unwrap_or(usize::MAX))
        .max(1);
    // Enough batches that every worker gets several, each near the target size.
    let per_target = (CLAIM_BYTES_TARGET / piece_length).max(1);
    let streams = (threads * options.lanes) as u64;
    let per_share = selected.div_ceil(streams * 4).max(1);
    let first = runs.first().map_or(0, |&(s, _)| s);
    let shared = Shared {
        files,
        layout,
        runs,
        claim: per_target.min(per_share),
        next: AtomicU64::new(first),
        stop: AtomicBool::new(false),
        cancel,
        options: *options,
    };
    let (tx, rx) = sync_channel::<PieceResult>(RESULTS_QUEUE_MAX);
    let outcome = std::thread::scope(|scope| {
        // Owned by this closure: should `on_piece` panic, the receiver drops
        // while unwinding, so blocked workers see it gone and end, and the
        // scope's join cannot hang.
        let rx = rx;
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let tx = tx.clone();
                let shared = &shared;
                scope.spawn(move || run_worker(shared, tx))
            })
            .collect();
        drop(tx);
        for result in rx.iter() {
            on_piece(result);
        }
        let mut first_error = None;
        for h in handles {
            let r = h.join().unwrap_or(Err(HashError::WorkerPanicked));
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        }
        first_error
    });
    match outcome {
        Some(e) => Err(e),
        None if cancel.load(Ordering::Relaxed) => Err(HashError::Cancelled),
        None => Ok(HashStats {
            pieces: selected,
            bytes: selected_bytes,
            threads,
        }),
    }
}

/// What all workers share.
struct Shared<'a> {
    files: &'a [DiskFile],
    layout: Layout,
    /// The pieces to hash: ranges `[start, end)`, ascending, disjoint,
    /// never empty.
    runs: Vec<(u64, u64)>,
    /// Pieces per claim.
    claim: u64,
    next: AtomicU64,
    /// Set by a worker that failed, so the others stop claiming.
    stop: AtomicBool,
    /// Set by the caller to stop early.
    cancel: &'a AtomicBool,
    options: HashOptions,
}

impl Shared<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The next batch of pieces `[start, end)` (inside one run), or `None`
    /// when all are taken.
    fn claim(&self) -> Option<(u64, u64)> {
        let mut cur = self.next.load(Ordering::Relaxed);
        loop {
            if self.stop.load(Ordering::Relaxed) || self.cancelled() {
                return None;
            }
            // The first run that ends after `cur`.
            let i = self.runs.partition_point(|&(_, end)| end <= cur);
            let &(run_start, run_end) = self.runs.get(i)?;
            let start = cur.max(run_start);
            let end = (start + self.claim).min(run_end);
            match self
                .next
                .compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some((start, end)),
                Err(now) => cur = now,
            }
        }
    }
}

fn run_worker(shared: &Shared<'_>, tx: SyncSender<PieceResult>) -> Result<(), HashError> {
    let result = Worker::new(shared, tx).and_then(|mut w| {
        let r = w.run();
        w.finish(r)
    });
    if result.is_err() {
        shared.stop.store(true, Ordering::Relaxed);
    }
    result
}

/// One read inside a chunk.
#[derive(Debug, Clone, Copy)]
struct ReadOp {
    file: usize,
    fd: RawFd,
    file_offset: u64,
    buf_offset: usize,
    length: usize,
    /// Bytes read so far.
    done: usize,
    retries: u32,
}

/// A chunk occupying a buffer slot.
#[derive(Debug, Default)]
struct Chunk {
    piece: u64,
    length: usize,
    last_of_piece: bool,
    ops: Vec<ReadOp>,
    /// Reads not yet completed.
    pending: usize,
    error: Option<PieceError>,
}

struct Slot {
    /// Fixed-size buffer; never resized while a read may target it.
    buf: Vec<u8>,
    chunk: Chunk,
}

/// Where the planning of a lane's next chunk stands.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    piece: u64,
    batch_end: u64,
    /// Bytes of `piece` already planned.
    offset: u64,
    /// A chunk of `piece` already failed at planning: plan no more reads for it.
    failed: bool,
}

/// One stream of pieces inside a worker: its own batch of pieces, buffers,
/// open files (so the kernel's read-ahead sees one sequential reader per
/// file) and hasher. The worker hashes its lanes' chunks interleaved.
struct Lane {
    slots: Vec<Slot>,
    fds: FdCache,
    cursor: Option<Cursor>,
    /// No more pieces to claim.
    exhausted: bool,
    /// Sequence numbers: chunks planned (`tail`) and hashed (`head`); chunk
    /// `n` lives in slot `n % depth`.
    head: u64,
    tail: u64,
    hasher: Sha1Hasher,
    piece_error: Option<PieceError>,
}

impl Lane {
    fn depth(&self) -> u64 {
        self.slots.len() as u64
    }

    fn slot_of(&self, seq: u64) -> usize {
        (seq % self.depth()) as usize
    }

    /// Reads of the oldest chunk still outstanding (0 when there is none).
    fn head_pending(&self) -> usize {
        if self.head == self.tail {
            return 0;
        }
        self.slots
            .get(self.slot_of(self.head))
            .map_or(0, |s| s.chunk.pending)
    }
}

/// Packs (lane, slot, read) into a completion's user data.
fn user_data(lane: usize, slot: usize, op: usize) -> u64 {
    ((lane as u64) << 48) | ((slot as u64) << 32) | (op as u64 & 0xffff_ffff)
}

fn unpack(user_data: u64) -> (usize, usize, usize) {
    (
        (user_data >> 48) as usize,
        ((user_data >> 32) & 0xffff) as usize,
        (user_data & 0xffff_ffff) as usize,
    )
}

struct Worker<'s, 'a> {
    shared: &'s Shared<'a>,
    tx: SyncSender<PieceResult>,
    ring: IoUring,
    lanes: Vec<Lane>,
    /// Reads pushed to the ring whose completion has not arrived yet.
    in_flight: usize,
    spans: Vec<FileSpan>,
    cqes: Vec<(u64, i32)>,
    /// Set when the caller stopped listening.
    receiver_gone: bool,
}

impl<'s, 'a> Worker<'s, 'a> {
    fn new(shared: &'s Shared<'a>, tx: SyncSender<PieceResult>) -> Result<Self, HashError> {
        let o = shared.options;
        let entries = u32::try_from(o.lanes * o.depth * SPANS_PER_CHUNK_MAX)
            .map_err(|_| HashError::Internal("ring size overflow"))?;
        let (ring, _mode) = new_ring(entries)?;
        let lanes = (0..o.lanes)
            .map(|_| Lane {
                slots: (0..o.depth)
                    .map(|_| Slot {
                        buf: vec![0u8; o.chunk_bytes],
                        chunk: Chunk::default(),
                    })
                    .collect(),
                // Busy fds never exceed depth * spans per chunk, so one is always idle.
                fds: FdCache::new(o.depth * SPANS_PER_CHUNK_MAX + 1),
                cursor: None,
                exhausted: false,
                head: 0,
                tail: 0,
                hasher: Sha1Hasher::new(),
                piece_error: None,
            })
            .collect();
        Ok(Self {
            shared,
            tx,
            ring,
            lanes,
            in_flight: 0,
            spans: Vec::with_capacity(SPANS_PER_CHUNK_MAX),
            cqes: Vec::new(),
            receiver_gone: false,
        })
    }

    fn run(&mut self) -> Result<(), HashError> {
        loop {
            for lane in 0..self.lanes.len() {
                while !self.receiver_gone && self.has_room(lane) {
                    if !self.plan_next(lane)? {
                        break;
                    }
                }
            }
            if self.lanes.iter().all(|l| l.head == l.tail) {
                return Ok(());
            }
            self.submit(0)?;
            self.reap()?;
            while self.lanes.iter().any(|l| l.head_pending() > 0) {
                if self.in_flight == 0 {
                    return Err(HashError::Internal("a chunk waits for reads never queued"));
                }
                self.submit(1)?;
                self.reap()?;
            }
            self.hash_heads()?;
        }
    }

    fn has_room(&self, lane: usize) -> bool {
        self.lanes
            .get(lane)
            .is_some_and(|l| !l.exhausted && l.tail - l.head < l.depth())
    }

    /// Waits out every read still in flight, so no buffer is freed under the
    /// kernel. If that is impossible the buffers are leaked instead.
    fn finish(mut self, result: Result<(), HashError>) -> Result<(), HashError> {
        let mut drained = Ok(());
        while self.in_flight > 0 {
            if let Err(e) = self.submit(1).and_then(|_| self.reap()) {
                drained = Err(e);
                break;
            }
        }
        if self.in_flight > 0 {
            // The kernel may still write into these buffers: never free them.
            std::mem::forget(std::mem::take(&mut self.lanes));
        }
        result.and(drained)
    }

    /// Plans the next chunk of lane `lane_index` into its free slot and
    /// queues its reads. Returns false when the lane has no work left.
    fn plan_next(&mut self, lane_index: usize) -> Result<bool, HashError> {
        let shared = self.shared;
        let Some(lane) = self.lanes.get_mut(lane_index) else {
            return Err(HashError::Internal("lane index out of range"));
        };
        if shared.cancelled() {
            lane.cursor = None;
            lane.exhausted = true;
            return Ok(false);
        }
        let cursor = match lane.cursor {
            Some(c) if c.piece < c.batch_end => c,
            _ => match shared.claim() {
                Some((start, end)) => Cursor {
                    piece: start,
                    batch_end: end,
                    offset: 0,
                    failed: false,
                },
                None => {
                    lane.cursor = None;
                    lane.exhausted = true;
                    return Ok(false);
                }
            },
        };
        // Layout::new capped the piece count to u32.
        let piece32 =
            u32::try_from(cursor.piece).map_err(|_| HashError::Internal("piece index past u32"))?;
        let piece_size = shared.layout.piece_size(piece32).unwrap_or(0);
        let want = (piece_size - cursor.offset).min(shared.options.chunk_bytes as u64);
        self.spans.clear();
        self.spans.extend(
            shared
                .layout
                .block_spans(piece32, cursor.offset, want)?
                .take(SPANS_PER_CHUNK_MAX),
        );
        let covered: usize = self.spans.iter().map(|s| s.length as usize).sum();
        if covered == 0 && want > 0 {
            return Err(HashError::Internal("a piece reaches past the stream's end"));
        }
        let last_of_piece = cursor.offset + covered as u64 >= piece_size;
        let slot_index = lane.slot_of(lane.tail);
        let Some(slot) = lane.slots.get_mut(slot_index) else {
            return Err(HashError::Internal("slot index out of range"));
        };
        let mut ops = std::mem::take(&mut slot.chunk.ops);
        ops.clear();
        let mut error = None;
        let mut failed = cursor.failed;
        for span in &self.spans {
            let file = span.file_index;
            let (start, len) = (span.buffer_offset as usize, span.length as usize);
            let Some(path) = shared.files.get(file).and_then(|f| f.path.as_deref()) else {
                // Pad file: zeros.
                if let Some(bytes) = slot.buf.get_mut(start..start + len) {
                    bytes.fill(0);
                }
                continue;
            };
            if failed {
                continue;
            }
            match lane.fds.acquire(file, path) {
                Ok(Ok(fd)) => ops.push(ReadOp {
                    file,
                    fd,
                    file_offset: span.file_offset,
                    buf_offset: start,
                    length: len,
                    done: 0,
                    retries: 0,
                }),
                Ok(Err(fail)) => {
                    error = Some(open_error(file, path, fail));
                    failed = true;
                }
                Err(_) => return Err(HashError::Internal("file descriptor cache overflow")),
            }
        }
        let count = ops.len();
        slot.chunk = Chunk {
            piece: cursor.piece,
            length: covered,
            last_of_piece,
            ops,
            pending: count,
            error,
        };
        lane.tail += 1;
        lane.cursor = Some(if last_of_piece {
            Cursor {
                piece: cursor.piece + 1,
                batch_end: cursor.batch_end,
                offset: 0,
                failed: false,
            }
        } else {
            Cursor {
                offset: cursor.offset + covered as u64,
                failed,
                ..cursor
            }
        });
        for op_index in 0..count {
            self.push_read(lane_index, slot_index, op_index)?;
        }
        Ok(true)
    }

    /// Queues (the rest of) one read.
    fn push_read(&mut self, lane: usize, slot: usize, op: usize) -> Result<(), HashError> {
        let Some(s) = self.lanes.get_mut(lane).and_then(|l| l.slots.get_mut(slot)) else {
            return Err(HashError::Internal("slot index out of range"));
        };
        let buf_len = s.buf.len();
        let Some(read) = s.chunk.ops.get(op) else {
            return Err(HashError::Internal("read index out of range"));
        };
        let start = read.buf_offset + read.done;
        let len = read.length - read.done;
        if start + len > buf_len {
            return Err(HashError::Internal("read past the end of its buffer"));
        }
        // The pointer stays valid: the buffer is never resized or dropped
        // while `in_flight` counts this read (see `finish`).
        let ptr = s.buf.as_mut_ptr().wrapping_add(start);
        let len32 = u32::try_from(len).map_err(|_| HashError::Internal("read too long"))?;
        let entry = opcode::Read::new(types::Fd(read.fd), ptr, len32)
            .offset(read.file_offset + read.done as u64)
            .build()
            .user_data(user_data(lane, slot, op));
        // SAFETY: the buffer range lies inside the slot's buffer (checked
        // above) and outlives the read; the fd stays open while the lane's fd
        // cache counts the read as busy.
        let pushed = unsafe { self.ring.submission().push(&entry) };
        if pushed.is_err() {
            // Full queue: hand what is queued to the kernel, then retry once.
            self.submit(0)?;
            // SAFETY: as above.
            unsafe { self.ring.submission().push(&entry) }
                .map_err(|_| HashError::Internal("submission queue stays full"))?;
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Submits queued reads and, with `wait` > 0, waits for that many completions.
    fn submit(&mut self, wait: usize) -> Result<(), HashError> {
        loop {
            match self.ring.submit_and_wait(wait) {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    // Completions pile up: take them, then go on.
                    self.reap()?;
                    return Ok(());
                }
                Err(e) => return Err(HashError::Submit(e)),
            }
        }
    }

    /// Takes every completion that arrived and books it.
    fn reap(&mut self) -> Result<(), HashError> {
        self.cqes.clear();
        self.cqes.extend(
            self.ring
                .completion()
                .map(|c: cqueue::Entry| (c.user_data(), c.result())),
        );
        let cqes = std::mem::take(&mut self.cqes);
        for &(user_data, res) in &cqes {
            self.complete(user_data, res)?;
        }
        self.cqes = cqes;
        Ok(())
    }

    fn complete(&mut self, user_data: u64, res: i32) -> Result<(), HashError> {
        let (lane_index, slot_index, op_index) = unpack(user_data);
        self.in_flight = self.in_flight.saturating_sub(1);
        let shared = self.shared;
        let Some(lane) = self.lanes.get_mut(lane_index) else {
            return Err(HashError::Internal("completion for an unknown lane"));
        };
        let Some(slot) = lane.slots.get_mut(slot_index) else {
            return Err(HashError::Internal("completion for an unknown slot"));
        };
        let chunk = &mut slot.chunk;
        let Some(op) = chunk.ops.get_mut(op_index) else {
            return Err(HashError::Internal("completion for an unknown read"));
        };
        let file = op.file;
        let path = || {
            shared
                .files
                .get(file)
                .and_then(|f| f.path.clone())
                .unwrap_or_default()
        };
        let mut retry = false;
        if res < 0 {
            let errno = -res;
            if (errno == libc::EINTR || errno == libc::EAGAIN) && op.retries < READ_RETRIES_MAX {
                op.retries += 1;
                retry = true;
            } else if chunk.error.is_none() {
                chunk.error = Some(PieceError::Io {
                    file,
                    path: path(),
                    op: "read",
                    errno,
                });
            }
        } else if res == 0 {
            if chunk.error.is_none() {
                // End of file before the data expected there: report the size
                // the file really has (a rare path, so a plain stat is fine).
                let path = path();
                let eof_at = op.file_offset + op.done as u64;
                let found = std::fs::metadata(&path).map_or(eof_at, |m| m.len().min(eof_at));
                chunk.error = Some(PieceError::ShortFile {
                    file,
                    path,
                    found,
                    expected: shared.files.get(file).map_or(0, |f| f.length),
                });
            }
        } else {
            op.done += res as usize;
            // A partial read: ask for the rest.
            retry = op.done < op.length;
        }
        if retry {
            return self.push_read(lane_index, slot_index, op_index);
        }
        chunk.pending = chunk.pending.saturating_sub(1);
        lane.fds.release(file);
        Ok(())
    }

    /// Hashes the oldest chunk of every lane that has one (all their reads
    /// are complete), interleaved, then frees those slots and reports the
    /// pieces they completed.
    fn hash_heads(&mut self) -> Result<(), HashError> {
        let mut jobs: Vec<(&mut Sha1Hasher, &[u8])> = Vec::with_capacity(self.lanes.len());
        for lane in self.lanes.iter_mut().filter(|l| l.head < l.tail) {
            let slot_index = lane.slot_of(lane.head);
            let Lane {
                slots,
                hasher,
                piece_error,
                ..
            } = lane;
            let Some(slot) = slots.get_mut(slot_index) else {
                return Err(HashError::Internal("slot index out of range"));
            };
            if piece_error.is_some() {
                continue;
            }
            if let Some(e) = slot.chunk.error.take() {
                *piece_error = Some(e);
            } else if let Some(bytes) = slot.buf.get(..slot.chunk.length) {
                jobs.push((hasher, bytes));
            } else {
                return Err(HashError::Internal("chunk longer than its buffer"));
            }
        }
        update_interleaved(&mut jobs);
        drop(jobs);
        for lane in self.lanes.iter_mut().filter(|l| l.head < l.tail) {
            let Some(slot) = lane.slots.get(lane.slot_of(lane.head)) else {
                return Err(HashError::Internal("slot index out of range"));
            };
            let (piece, last) = (slot.chunk.piece, slot.chunk.last_of_piece);
            lane.head += 1;
            if !last {
                continue;
            }
            let hash = match lane.piece_error.take() {
                Some(e) => {
                    lane.hasher = Sha1Hasher::new();
                    Err(e)
                }
                None => Ok(std::mem::take(&mut lane.hasher).finish()),
            };
            if self.tx.send(PieceResult { index: piece, hash }).is_err() {
                self.receiver_gone = true;
            }
        }
        Ok(())
    }
}

fn open_error(file: usize, path: &Path, fail: OpenFailure) -> PieceError {
    match fail {
        OpenFailure::Missing => PieceError::MissingFile {
            file,
            path: path.to_path_buf(),
        },
        OpenFailure::Errno(errno) => PieceError::Io {
            file,
            path: path.to_path_buf(),
            op: "open",
            errno,
        },
    }
}

#[cfg(test)]
mod tests;
