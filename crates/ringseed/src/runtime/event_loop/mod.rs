//! The per-shard io_uring event loop: one ring, one thread, no locks.
//!
//! A shard thread owns one [`EventLoop`]. It queues ops ([`EventLoop::recv`],
//! [`EventLoop::send_with_header`], [`EventLoop::read_at`], ...), hands them to
//! the kernel with [`EventLoop::submit_and_wait`], and takes what finished with
//! [`EventLoop::drain_completions`] into a queue of [`Completion`]s, which it
//! then hands to its sans-IO state machines. The loop knows nothing of
//! BitTorrent.
//!
//! Ops in flight live in a slab of fixed capacity, whose slots are
//! allocated a chunk at a time as ops need them (`slots`). An [`OpId`] is the slot
//! index and the slot's generation, packed into the SQE's `user_data`. The
//! slot also holds the caller's context for the op (`C`, given to
//! [`EventLoop::queue_with`]), which comes back in [`Completion::ctx`]: the
//! caller needs no table of its own from op to meaning. A
//! completion whose generation does not match its slot (or whose slot is out
//! of range or empty) is stale: it is counted
//! ([`EventLoop::stale_completions`]) and dropped, never matched to a newer op.
//! Whatever the kernel reads through a pointer while an op is in flight (the
//! peer address of a connect or accept, a timeout's `Timespec`, the iovecs and
//! header of a vectored send) lives in the op's slot, which does not move.
//!
//! Buffer ownership: buffers come from a fixed [`BufferPool`]. The caller
//! acquires one, fills it if it sends, and passes its [`BufferId`] to an op;
//! from then on the op owns it and nobody (not even the caller) can reach its
//! bytes. When the op's completion is drained the buffer comes back in
//! [`Completion::buffer`], held by the caller, who reads it (a recv's bytes),
//! reuses it for the next op, or releases it to the pool. A buffer is never
//! freed or reused with an op in flight: if the loop is dropped while ops are
//! still in flight, it cancels them and waits (bounded); should any still be
//! in flight after that, the pool and the slab are leaked, not freed. A
//! file write ([`EventLoop::write_at_shared`]) takes no pool buffer: its
//! slot holds a reference to the caller's `Arc<[u8]>` until the completion
//! is drained, so those bytes are leaked with the slab too.
//!
//! A zero-copy send completes twice in the kernel (its result, then a
//! notification when the buffer is no longer used); the loop reports it
//! once, on the notification. Ops the kernel may lack
//! ([`EventLoop::send_zc_with_header`], [`EventLoop::splice`]) are checked
//! against the ring's probe ([`EventLoop::supports`]) and refused with
//! [`LoopError::Unsupported`].
//!
//! Threads: build the loop on the shard thread that will use it. The ring is
//! set up SINGLE_ISSUER, so only the creating thread may submit, and the
//! loop is not `Send` (its slots hold raw pointers).
//!
//! Progress: in DEFER_TASKRUN mode the kernel posts completions only while
//! the owner waits, so drive the loop with `submit_and_wait(1 or more,
//! Some(timeout))`; `submit_and_wait(0, None)` only hands ops over.
//!
//! Limits: ops in flight ([`LoopConfig::ops_in_flight_max`]; cancels have a
//! budget of their own, as large, so an op can always be cancelled), buffer
//! count and size ([`BUFFERS_MAX`], [`BUFFER_BYTES_MAX`], [`POOL_BYTES_MAX`]),
//! and the submission queue (the ring's entries). A full slab or a full
//! submission queue is an error the caller acts on (backpressure: submit,
//! drain, retry), never a panic nor an unbounded queue.

mod buffers;
pub mod recv_ring;
mod slots;
#[cfg(test)]
mod tests;

pub use buffers::{BufferError, BufferId, BufferPool, BufferState};
pub use recv_ring::{RecvRing, RecvRingError};

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use self::slots::SlotTable;
use super::uring::{new_ring, RingMode, UringError};

/// Most ops in flight one loop may be configured for.
pub const OPS_IN_FLIGHT_MAX: u32 = 1 << 20;
/// Most buffers in one pool.
pub const BUFFERS_MAX: u32 = 1 << 20;
/// Largest buffer, in bytes.
pub const BUFFER_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Largest pool (buffers x buffer bytes), in bytes.
pub const POOL_BYTES_MAX: u64 = 4 * 1024 * 1024 * 1024;
/// Bytes of a piece message header sent by [`EventLoop::send_with_header`]
/// (length prefix, id, index, begin).
pub const HEADER_BYTES: usize = 13;
/// The provided-buffer group of the recv ring.
const RECV_RING_GROUP: u16 = 0;
/// Largest pool registered as a fixed buffer (the kernel's limit per buffer).
pub const FIXED_BUFFER_BYTES_MAX: usize = 1 << 30;
/// Most blocks one [`EventLoop::send_blocks`] op sends.
pub const SEND_BLOCKS_MAX: usize = 4;
/// Rounds of waiting [`EventLoop::shutdown`] spends on ops still in flight.
const DROP_DRAIN_ROUNDS_MAX: u32 = 100;
/// Wait per shutdown round.
const DROP_DRAIN_WAIT: Duration = Duration::from_millis(10);
/// Bits of `user_data` that hold the slot index; the generation is above.
const INDEX_BITS: u32 = 32;
/// Largest write by [`EventLoop::write_at_shared`], in bytes: a verified piece
/// is written with one op per file it touches, so one write may be a whole
/// piece. (It was 64 MiB, under the largest piece: such a piece's write
/// failed.)
pub const WRITE_BYTES_MAX: usize = crate::limits::PIECE_LENGTH_BYTES_MAX as usize;
// A write of one whole piece must be accepted...
const _: () = assert!(WRITE_BYTES_MAX as u64 >= crate::limits::PIECE_LENGTH_BYTES_MAX);
// ...and its length fits the op's u32.
const _: () = assert!(WRITE_BYTES_MAX <= u32::MAX as usize);
// A piece message's header is the wire codec's.
const _: () = assert!(HEADER_BYTES == crate::wire::PIECE_HEADER_BYTES);
/// IORING_CQE_F_MORE: more completions of this op will follow.
const CQE_F_MORE: u32 = 1 << 1;
/// Opcodes the probe bitmap covers (io_uring opcodes are a `u8`).
const OPCODES: usize = 256;

/// What the loop is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopConfig {
    /// Submission queue entries of the ring.
    pub ring_entries: u32,
    /// Most ops in flight (cancels not counted; they have as many again).
    pub ops_in_flight_max: u32,
    /// Buffers in the pool.
    pub buffers: u32,
    /// Bytes per buffer.
    pub buffer_bytes: usize,
}

impl Default for LoopConfig {
    fn default() -> Self {
        Self {
            ring_entries: 256,
            ops_in_flight_max: 1024,
            buffers: 256,
            buffer_bytes: 16 * 1024,
        }
    }
}

/// Names one op in flight: slot index and generation (its `user_data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpId(u64);

impl OpId {
    fn new(index: u32, generation: u32) -> Self {
        Self((u64::from(generation) << INDEX_BITS) | u64::from(index))
    }
    fn index(self) -> usize {
        (self.0 & ((1 << INDEX_BITS) - 1)) as usize
    }
    fn generation(self) -> u32 {
        (self.0 >> INDEX_BITS) as u32
    }
    /// The `user_data` the op's SQE carries.
    pub fn user_data(self) -> u64 {
        self.0
    }
}

/// What an op did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Result: the new connection's fd; [`Completion::peer`] its address.
    Accept,
    /// Multishot accept: one completion per connection (fd, no peer
    /// address), [`Completion::more`] set while the op stays armed. The last
    /// completion (an error, or after a cancel) has `more` unset.
    AcceptMulti,
    /// Result: bytes received into the buffer (0: the peer closed).
    Recv,
    /// Multishot receive into the recv ring: one completion per chunk of
    /// bytes, naming the ring buffer it filled ([`EventLoop::ring_buffer_of`]),
    /// `more` set while armed. `Err(ENOBUFS)` ends it when the ring is empty.
    RecvMulti,
    /// Result: bytes sent from the buffer.
    Send,
    /// Result: bytes sent, header included.
    SendWithHeader,
    /// Result: bytes sent (after the skipped ones), headers included.
    SendBlocks,
    /// Result: bytes read into the buffer (0: end of file).
    ReadAt,
    /// A read at the file's current position (pipes, eventfds). Result:
    /// bytes read into the buffer.
    Read,
    /// Result: bytes written from the shared data.
    WriteAt,
    /// A zero-copy vectored send of a header and a block. Result: bytes
    /// sent, header included. Reported once, after the kernel let go of the
    /// buffer (its notification), so the buffer is free to reuse.
    SendZcWithHeader,
    /// Result: bytes moved between the two fds.
    Splice,
    /// Result: 0 when connected.
    Connect,
    /// Waits until a socket can take more bytes. Result: the ready events
    /// (`POLLOUT`, or `POLLERR`/`POLLHUP` when it broke).
    PollOut,
    /// Result: `Err(ETIME)` when the time ran out (the normal case), or
    /// `Err(ECANCELED)` when cancelled.
    Timeout,
    /// Result: 0 when the target was cancelled, `Err(ENOENT)` when it had
    /// completed already, `Err(EALREADY)` when it was running.
    Cancel,
    /// Result: 0 when closed.
    Close,
}

/// One finished op, handed to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion<C = ()> {
    pub op: OpId,
    /// What the caller said the op was for (see [`EventLoop::queue_with`]);
    /// `C::default()` for ops queued without one.
    pub ctx: C,
    pub kind: OpKind,
    /// The kernel's answer: a count or fd, or an errno.
    pub result: Result<u32, i32>,
    /// The op's buffer, now held by the caller (who must release or reuse it).
    pub buffer: Option<BufferId>,
    /// For an accept: the peer's address, when the kernel gave one.
    pub peer: Option<SocketAddr>,
    /// The CQE flags.
    pub flags: u32,
    /// The op is still in flight (multishot): more completions will come
    /// under the same [`OpId`], and the slot stays taken until one arrives
    /// with `more` unset.
    pub more: bool,
}

/// Why the loop refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error("{what} {value} is out of range: expected {min} to {max}")]
    Config {
        what: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    #[error(transparent)]
    Setup(#[from] UringError),
    #[error("{in_flight} ops in flight already, the most allowed ({what} budget)")]
    SlabFull { what: &'static str, in_flight: u32 },
    #[error("submission queue full ({entries} entries): submit, then retry")]
    QueueFull { entries: usize },
    #[error(transparent)]
    Buffer(#[from] BufferError),
    #[error("start {start} is outside a buffer of {size} bytes")]
    Start { start: usize, size: usize },
    #[error("length {len} is out of range: expected 1 to {max} bytes")]
    Length { len: usize, max: usize },
    #[error("op {0:?} is not in flight")]
    NotInFlight(OpId),
    #[error("range {start}+{len} is outside data of {size} bytes (at most {max} bytes per op)")]
    Range {
        start: usize,
        len: usize,
        size: usize,
        max: usize,
    },
    #[error("file offset {offset} is out of range: expected at most {max}")]
    Offset { offset: u64, max: u64 },
    #[error("this kernel's io_uring does not support {op:?} (opcode {opcode})")]
    Unsupported { op: OpKind, opcode: u8 },
    #[error("io_uring submission failed: {0}")]
    Submit(#[source] io::Error),
    #[error("{count} blocks in one send: expected 1 to {max}")]
    Segments { count: usize, max: usize },
    #[error(transparent)]
    RecvRing(#[from] RecvRingError),
    #[error("no recv ring is set up (call setup_recv_ring first)")]
    NoRecvRing,
    #[error("cannot register the recv ring with io_uring: {0}")]
    RegisterRing(#[source] io::Error),
}

/// One piece message of [`EventLoop::send_blocks`]: its 13-byte header and
/// where its block lies in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSegment {
    pub header: [u8; HEADER_BYTES],
    pub start: usize,
    pub len: usize,
}

/// Checks the segments of a block send over `size` bytes of source, and
/// that `skip` leaves something to send; returns the end of the last byte
/// used.
fn check_block_segments(
    segments: &[BlockSegment],
    size: usize,
    skip: usize,
) -> Result<usize, LoopError> {
    if segments.is_empty() || segments.len() > SEND_BLOCKS_MAX {
        return Err(LoopError::Segments {
            count: segments.len(),
            max: SEND_BLOCKS_MAX,
        });
    }
    let mut end = 0;
    let mut total = 0;
    for seg in segments {
        let fits = seg.len > 0 && seg.start.checked_add(seg.len).is_some_and(|e| e <= size);
        if !fits {
            return Err(LoopError::Range {
                start: seg.start,
                len: seg.len,
                size,
                max: size,
            });
        }
        end = end.max(seg.start + seg.len);
        total += HEADER_BYTES + seg.len;
    }
    if skip >= total {
        return Err(LoopError::Length {
            len: skip,
            max: total.saturating_sub(1),
        });
    }
    Ok(end)
}

/// Fills the slot's headers, iovecs (header, block, header, block, ...,
/// the first `skip` bytes left out) and msghdr for blocks at `base`, and
/// returns the SENDMSG entry.
fn block_sendmsg(
    slot: &mut SlotData,
    fd: RawFd,
    segs: &[Option<BlockSegment>; SEND_BLOCKS_MAX],
    base: *mut u8,
    skip: usize,
) -> squeue::Entry {
    let mut n = 0;
    let mut to_skip = skip;
    for (i, seg) in segs.iter().flatten().enumerate() {
        slot.headers[i] = seg.header;
        let parts: [(*mut u8, usize); 2] = [
            (slot.headers[i].as_mut_ptr(), HEADER_BYTES),
            (base.wrapping_add(seg.start), seg.len),
        ];
        for (ptr, len) in parts {
            if to_skip >= len {
                to_skip -= len;
                continue;
            }
            slot.iov[n] = libc::iovec {
                iov_base: ptr.wrapping_add(to_skip).cast(),
                iov_len: len - to_skip,
            };
            to_skip = 0;
            n += 1;
        }
    }
    // SAFETY: all-zero bytes are a valid msghdr.
    slot.msg = unsafe { mem::zeroed() };
    slot.msg.msg_iov = slot.iov.as_mut_ptr();
    slot.msg.msg_iovlen = n as _;
    opcode::SendMsg::new(types::Fd(fd), &raw const slot.msg)
        .flags((libc::MSG_NOSIGNAL | libc::MSG_WAITALL) as u32)
        .build()
}

/// What the kernel may read through pointers while an op is in flight.
struct SlotData {
    timespec: types::Timespec,
    addr: libc::sockaddr_storage,
    addr_len: libc::socklen_t,
    iov: [libc::iovec; 2 * SEND_BLOCKS_MAX],
    msg: libc::msghdr,
    header: [u8; HEADER_BYTES],
    headers: [[u8; HEADER_BYTES]; SEND_BLOCKS_MAX],
    /// Source bytes of a write, kept alive until its completion is drained
    /// (and leaked with the slab if the loop is dropped with it in flight).
    shared: Option<Arc<[u8]>>,
}

impl SlotData {
    fn new() -> Self {
        // SAFETY: all-zero bytes are a valid value of these plain C structs.
        let (addr, msg) = unsafe { (mem::zeroed(), mem::zeroed()) };
        Self {
            timespec: types::Timespec::new(),
            addr,
            addr_len: 0,
            iov: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; 2 * SEND_BLOCKS_MAX],
            msg,
            header: [0; HEADER_BYTES],
            headers: [[0; HEADER_BYTES]; SEND_BLOCKS_MAX],
            shared: None,
        }
    }
}

/// An op in flight.
#[derive(Clone, Copy)]
struct Pending {
    kind: OpKind,
    buffer: Option<BufferId>,
    /// A timeout the loop set for its own wait; never reported.
    internal: bool,
    /// A zero-copy send's result and flags (first CQE), held until its
    /// notification arrives.
    zc_first: Option<(i32, u32)>,
}

struct Slot<C> {
    generation: u32,
    pending: Option<Pending>,
    /// The caller's context of the op in flight.
    ctx: C,
    data: SlotData,
}

/// One shard's ring, its ops in flight and its buffers. `C` is the
/// caller's per-op context, kept in the op's slot.
pub struct EventLoop<C: Copy + Default = ()> {
    ring: IoUring,
    mode: RingMode,
    /// Grown a chunk at a time, never moved: slot addresses are stable.
    slots: SlotTable<Slot<C>>,
    /// The context the next queued op takes (set by `queue_with`, reset
    /// to the default as the op takes it).
    staged_ctx: C,
    ops_in_flight_max: u32,
    ops_in_flight: u32,
    cancels_in_flight: u32,
    internal_timeout: Option<OpId>,
    buffers: BufferPool,
    stale: u64,
    /// The kernel takes a wait timeout in io_uring_enter (5.11+).
    ext_arg: bool,
    /// The pool is registered with the ring as fixed buffer 0: reads use
    /// READ_FIXED (no per-op page lookup of the destination).
    fixed: bool,
    /// Provided buffers for multishot receives (buffer group 0).
    recv_ring: Option<RecvRing>,
    /// Scratch list for [`EventLoop::drain_completions`].
    cqes: Vec<(u64, i32, u32)>,
    /// Opcodes this kernel supports, one bit each (all clear when the
    /// kernel has no probe, before 5.6).
    opcodes: [u64; OPCODES / 64],
}

fn check_range(what: &'static str, value: u64, min: u64, max: u64) -> Result<(), LoopError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(LoopError::Config {
            what,
            value,
            min,
            max,
        })
    }
}

impl EventLoop<()> {
    /// Builds the ring, the slab and the buffer pool, all at their full
    /// size, for a caller that keeps no per-op context.
    pub fn new(config: LoopConfig) -> Result<Self, LoopError> {
        Self::with_context(config)
    }
}

impl<C: Copy + Default> EventLoop<C> {
    /// Builds the ring, the slab and the buffer pool, all at their full
    /// size; each op carries a context of type `C`.
    pub fn with_context(config: LoopConfig) -> Result<Self, LoopError> {
        let LoopConfig {
            ring_entries,
            ops_in_flight_max,
            buffers,
            buffer_bytes,
        } = config;
        check_range(
            "ops_in_flight_max",
            ops_in_flight_max.into(),
            1,
            OPS_IN_FLIGHT_MAX.into(),
        )?;
        check_range("buffers", buffers.into(), 0, BUFFERS_MAX.into())?;
        check_range(
            "buffer_bytes",
            buffer_bytes as u64,
            1,
            BUFFER_BYTES_MAX as u64,
        )?;
        check_range(
            "pool bytes",
            u64::from(buffers).saturating_mul(buffer_bytes as u64),
            0,
            POOL_BYTES_MAX,
        )?;
        let (ring, mode) = new_ring(ring_entries)?;
        let mut opcodes = [0u64; OPCODES / 64];
        let mut probe = Probe::new();
        if ring.submitter().register_probe(&mut probe).is_ok() {
            for code in 0..=u8::MAX {
                if probe.is_supported(code) {
                    if let Some(word) = opcodes.get_mut(usize::from(code / 64)) {
                        *word |= 1 << (code % 64);
                    }
                }
            }
        }
        // Regular ops and cancels each have `ops_in_flight_max` slots.
        let slot_count = ops_in_flight_max.saturating_mul(2);
        let slots = SlotTable::new(slot_count);
        Ok(Self {
            mode,
            slots,
            staged_ctx: C::default(),
            ops_in_flight_max,
            ops_in_flight: 0,
            cancels_in_flight: 0,
            internal_timeout: None,
            buffers: BufferPool::new(buffers, buffer_bytes),
            stale: 0,
            cqes: Vec::with_capacity(ring_entries as usize * 2),
            ext_arg: ring.params().is_feature_ext_arg(),
            fixed: false,
            recv_ring: None,
            opcodes,
            ring,
        })
    }

    /// How the ring was set up.
    pub fn mode(&self) -> RingMode {
        self.mode
    }

    /// The buffer pool: acquire, fill, read and release buffers here.
    pub fn buffers(&mut self) -> &mut BufferPool {
        &mut self.buffers
    }

    /// The buffer pool, read-only.
    pub fn buffer_pool(&self) -> &BufferPool {
        &self.buffers
    }

    /// Whether this kernel's io_uring supports `opcode` (an
    /// `io_uring::opcode::*::CODE`), as its probe said when the loop was built.
    pub fn supports(&self, opcode: u8) -> bool {
        self.opcodes
            .get(usize::from(opcode / 64))
            .is_some_and(|word| word & (1 << (opcode % 64)) != 0)
    }

    /// Ops in flight (cancels and the loop's own wait timeout included).
    pub fn in_flight(&self) -> u32 {
        self.ops_in_flight + self.cancels_in_flight
    }

    /// Completions dropped because their `user_data` named no op in flight.
    pub fn stale_completions(&self) -> u64 {
        self.stale
    }

    /// Queues an accept on a listening socket; the new fd is close-on-exec.
    pub fn accept(&mut self, listener_fd: RawFd) -> Result<OpId, LoopError> {
        self.queue(OpKind::Accept, None, |data| {
            data.addr_len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            opcode::Accept::new(
                types::Fd(listener_fd),
                (&raw mut data.addr).cast::<libc::sockaddr>(),
                &raw mut data.addr_len,
            )
            .flags(libc::SOCK_CLOEXEC)
            .build()
        })
    }

    /// Queues a multishot accept (Linux 5.19+): every connection completes
    /// under the same [`OpId`] until it is cancelled or fails. On older
    /// kernels the one completion is `Err(EINVAL)`; use [`EventLoop::accept`].
    pub fn accept_multi(&mut self, listener_fd: RawFd) -> Result<OpId, LoopError> {
        self.queue(OpKind::AcceptMulti, None, |_| {
            opcode::AcceptMulti::new(types::Fd(listener_fd))
                .flags(libc::SOCK_CLOEXEC)
                .build()
        })
    }

    /// Queues a recv into the whole of `buffer`.
    pub fn recv(&mut self, fd: RawFd, buffer: BufferId) -> Result<OpId, LoopError> {
        let len = self.buffers.buffer_bytes();
        self.recv_range(fd, buffer, 0, len)
    }

    /// Queues a recv into `buffer[start..start + len]` (to complete a message
    /// already partly received); the completion's count is of bytes written
    /// from `start` on.
    pub fn recv_range(
        &mut self,
        fd: RawFd,
        buffer: BufferId,
        start: usize,
        len: usize,
    ) -> Result<OpId, LoopError> {
        self.queue_with_buffer(OpKind::Recv, buffer, start, len, |_, ptr, len| {
            opcode::Recv::new(types::Fd(fd), ptr, len).build()
        })
    }

    /// Queues a send of the first `len` bytes of `buffer`. The kernel is
    /// asked to send all of them (MSG_WAITALL); a shorter count can still
    /// come back (an error midway, or a kernel before 6.0): send the rest
    /// with [`EventLoop::send_range`].
    pub fn send(&mut self, fd: RawFd, buffer: BufferId, len: usize) -> Result<OpId, LoopError> {
        self.send_range(fd, buffer, 0, len)
    }

    /// Queues a send of `buffer[start..start + len]`.
    pub fn send_range(
        &mut self,
        fd: RawFd,
        buffer: BufferId,
        start: usize,
        len: usize,
    ) -> Result<OpId, LoopError> {
        self.queue_with_buffer(OpKind::Send, buffer, start, len, |_, ptr, len| {
            opcode::Send::new(types::Fd(fd), ptr, len)
                .flags(libc::MSG_NOSIGNAL | libc::MSG_WAITALL)
                .build()
        })
    }

    /// Queues one vectored send of `header` then the first `len` bytes of
    /// `buffer` (a piece message: the block is not copied). As with
    /// [`EventLoop::send`], the kernel is asked for all bytes; on a short
    /// count the caller sends what is left (of the header, then
    /// [`EventLoop::send_range`] for the block).
    pub fn send_with_header(
        &mut self,
        fd: RawFd,
        header: [u8; HEADER_BYTES],
        buffer: BufferId,
        len: usize,
    ) -> Result<OpId, LoopError> {
        self.queue_with_buffer(OpKind::SendWithHeader, buffer, 0, len, |data, ptr, len| {
            let msg = header_msg(data, header, ptr, len);
            opcode::SendMsg::new(types::Fd(fd), msg)
                .flags((libc::MSG_NOSIGNAL | libc::MSG_WAITALL) as u32)
                .build()
        })
    }

    /// Queues one vectored send of up to [`SEND_BLOCKS_MAX`] piece messages
    /// whose blocks lie in `buffer` (header, block, header, block, ...), the
    /// first `skip` bytes of that sequence left out (to finish a short
    /// send). Coalesced reads of adjacent blocks go out this way in one
    /// `sendmsg`, with no copy. The result counts bytes sent after `skip`.
    pub fn send_blocks(
        &mut self,
        fd: RawFd,
        buffer: BufferId,
        segments: &[BlockSegment],
        skip: usize,
    ) -> Result<OpId, LoopError> {
        let end = check_block_segments(segments, self.buffers.buffer_bytes(), skip)?;
        let segs: [Option<BlockSegment>; SEND_BLOCKS_MAX] =
            std::array::from_fn(|i| segments.get(i).copied());
        self.queue_with_buffer(OpKind::SendBlocks, buffer, 0, end, move |data, ptr, _| {
            block_sendmsg(data, fd, &segs, ptr, skip)
        })
    }

    /// As [`EventLoop::send_with_header`], but zero-copy (SENDMSG_ZC, Linux
    /// 6.1+): the kernel sends from the buffer itself. The op completes
    /// twice in the kernel (the send's result, then a notification once the
    /// network stack let go of the buffer); the loop keeps the buffer until
    /// the notification and reports one [`Completion`] with the send's
    /// result. `Err(Unsupported)` when the kernel lacks the opcode.
    pub fn send_zc_with_header(
        &mut self,
        fd: RawFd,
        header: [u8; HEADER_BYTES],
        buffer: BufferId,
        len: usize,
    ) -> Result<OpId, LoopError> {
        self.require(OpKind::SendZcWithHeader, opcode::SendMsgZc::CODE)?;
        self.queue_with_buffer(
            OpKind::SendZcWithHeader,
            buffer,
            0,
            len,
            |data, ptr, len| {
                let msg = header_msg(data, header, ptr, len);
                opcode::SendMsgZc::new(types::Fd(fd), msg)
                    .flags((libc::MSG_NOSIGNAL | libc::MSG_WAITALL) as u32)
                    .build()
            },
        )
    }

    /// Queues a splice of up to `len` bytes from `fd_in` to `fd_out`, one of
    /// which must be a pipe (file -> pipe, then pipe -> socket: the bytes
    /// never enter user memory). An offset is for a file (`None`: its
    /// current position; always `None` for a pipe). `Err(Unsupported)` when
    /// the kernel lacks the opcode (before 5.7).
    pub fn splice(
        &mut self,
        fd_in: RawFd,
        off_in: Option<u64>,
        fd_out: RawFd,
        off_out: Option<u64>,
        len: u32,
    ) -> Result<OpId, LoopError> {
        self.require(OpKind::Splice, opcode::Splice::CODE)?;
        if len == 0 {
            return Err(LoopError::Length {
                len: 0,
                max: u32::MAX as usize,
            });
        }
        // -1: no offset (the fd's position, or a pipe).
        let offset = |o: Option<u64>| match o {
            None => Ok(-1),
            Some(v) => i64::try_from(v).map_err(|_| LoopError::Offset {
                offset: v,
                max: i64::MAX as u64,
            }),
        };
        let (off_in, off_out) = (offset(off_in)?, offset(off_out)?);
        self.queue(OpKind::Splice, None, |_| {
            opcode::Splice::new(types::Fd(fd_in), off_in, types::Fd(fd_out), off_out, len)
                .flags(libc::SPLICE_F_MOVE)
                .build()
        })
    }

    /// `Err(Unsupported)` unless the kernel supports `code`.
    fn require(&self, op: OpKind, code: u8) -> Result<(), LoopError> {
        if self.supports(code) {
            Ok(())
        } else {
            Err(LoopError::Unsupported { op, opcode: code })
        }
    }

    /// Queues a read of `len` bytes at `offset` of a file into `buffer`.
    pub fn read_at(
        &mut self,
        file_fd: RawFd,
        buffer: BufferId,
        len: usize,
        offset: u64,
    ) -> Result<OpId, LoopError> {
        self.read_at_range(file_fd, buffer, 0, len, offset)
    }

    /// Queues a read of `len` bytes at `offset` of a file into
    /// `buffer[start..start + len]` (a block spanning two files is read by
    /// two such ops, one after the other, into one buffer).
    pub fn read_at_range(
        &mut self,
        file_fd: RawFd,
        buffer: BufferId,
        start: usize,
        len: usize,
        offset: u64,
    ) -> Result<OpId, LoopError> {
        let fixed = self.fixed;
        self.queue_with_buffer(OpKind::ReadAt, buffer, start, len, |_, ptr, len| {
            if fixed {
                // The range lies inside the pool, which is fixed buffer 0.
                opcode::ReadFixed::new(types::Fd(file_fd), ptr, len, 0)
                    .offset(offset)
                    .build()
            } else {
                opcode::Read::new(types::Fd(file_fd), ptr, len)
                    .offset(offset)
                    .build()
            }
        })
    }

    /// Registers the whole buffer pool with the ring as one fixed buffer, so
    /// file reads into it use READ_FIXED: the kernel maps the pool once
    /// instead of looking the destination pages up on every read. Returns
    /// whether it is registered; when the kernel refuses (an old kernel, a
    /// low locked-memory limit, a pool over 1 GiB) reads go on unregistered.
    pub fn register_buffers(&mut self) -> bool {
        if self.fixed {
            return true;
        }
        let (base, len) = self.buffers.region();
        if len == 0 || len > FIXED_BUFFER_BYTES_MAX {
            return false;
        }
        let iov = [libc::iovec {
            iov_base: base.cast(),
            iov_len: len,
        }];
        // SAFETY: the pool's memory is allocated once and never moved or
        // freed while the ring exists: the ring field is dropped first, and
        // a loop dropped with ops in flight leaks both (see `Drop`).
        self.fixed = unsafe { self.ring.submitter().register_buffers(&iov) }.is_ok();
        self.fixed
    }

    /// Sets up the recv ring: `entries` provided buffers of `buf_bytes`
    /// each, registered as buffer group 0, for [`EventLoop::recv_multi`].
    pub fn setup_recv_ring(&mut self, entries: u16, buf_bytes: usize) -> Result<(), LoopError> {
        if self.recv_ring.is_some() {
            return Ok(());
        }
        let ring = RecvRing::new(entries, buf_bytes)?;
        // SAFETY: the ring memory is page-aligned, holds `entries` entries
        // and lives until the loop unregisters it (or leaks it) on drop.
        unsafe {
            self.ring.submitter().register_buf_ring_with_flags(
                ring.ring_addr(),
                ring.entries(),
                RECV_RING_GROUP,
                0,
            )
        }
        .map_err(LoopError::RegisterRing)?;
        self.recv_ring = Some(ring);
        Ok(())
    }

    /// Queues a multishot receive on `fd` into the recv ring (see
    /// [`OpKind::RecvMulti`]).
    pub fn recv_multi(&mut self, fd: RawFd) -> Result<OpId, LoopError> {
        if self.recv_ring.is_none() {
            return Err(LoopError::NoRecvRing);
        }
        self.queue(OpKind::RecvMulti, None, |_| {
            opcode::RecvMulti::new(types::Fd(fd), RECV_RING_GROUP).build()
        })
    }

    /// The recv-ring buffer a completion filled, if any.
    pub fn ring_buffer_of(c: &Completion<C>) -> Option<u16> {
        if c.kind == OpKind::RecvMulti {
            cqueue::buffer_select(c.flags)
        } else {
            None
        }
    }

    /// The first `len` bytes of recv-ring buffer `bid` (held by the caller).
    pub fn ring_buffer(&self, bid: u16, len: usize) -> Option<&[u8]> {
        self.recv_ring.as_ref()?.get(bid, len)
    }

    /// Gives recv-ring buffer `bid` back to the kernel.
    pub fn give_back_ring_buffer(&mut self, bid: u16) -> bool {
        self.recv_ring.as_mut().is_some_and(|r| r.give_back(bid))
    }

    /// Queues an op with `f`; when the submission queue is full, hands the
    /// queued ops to the kernel once and tries again (backpressure without
    /// waiting). Other errors come back as they are.
    pub fn queue_or_flush(
        &mut self,
        f: impl Fn(&mut Self) -> Result<OpId, LoopError>,
    ) -> Result<OpId, LoopError> {
        match f(self) {
            Err(LoopError::QueueFull { .. }) => {
                self.submit_and_wait(0, None)?;
                f(self)
            }
            other => other,
        }
    }

    /// [`Self::queue_or_flush`] for an op that carries `ctx`: the op queued
    /// by `f` (its one op) keeps `ctx` in its slot, and every completion of
    /// it returns it in [`Completion::ctx`].
    pub fn queue_with(
        &mut self,
        ctx: C,
        f: impl Fn(&mut Self) -> Result<OpId, LoopError>,
    ) -> Result<OpId, LoopError> {
        let result = self.queue_or_flush(|ev| {
            ev.staged_ctx = ctx;
            f(ev)
        });
        self.staged_ctx = C::default();
        result
    }

    /// The context of an op in flight (`None` when `op` names none).
    pub fn ctx(&self, op: OpId) -> Option<C> {
        let slot = self.slots.get(op.index())?;
        (slot.generation == op.generation() && slot.pending.is_some()).then_some(slot.ctx)
    }

    /// Whether the pool is registered (see [`EventLoop::register_buffers`]).
    pub fn buffers_registered(&self) -> bool {
        self.fixed
    }

    /// Queues a read of up to `len` bytes into `buffer` at the fd's current
    /// position: for fds that cannot seek (pipes, an eventfd such as a
    /// [`crate::runtime::waker::Waker`]'s).
    pub fn read(&mut self, fd: RawFd, buffer: BufferId, len: usize) -> Result<OpId, LoopError> {
        self.queue_with_buffer(OpKind::Read, buffer, 0, len, |_, ptr, len| {
            // Offset -1: use (and advance) the file position.
            opcode::Read::new(types::Fd(fd), ptr, len)
                .offset(u64::MAX)
                .build()
        })
    }

    /// Queues a write of `data[start..start + len]` at `offset` of a file.
    /// The op holds its own reference to `data` until its completion is
    /// drained, so the caller may drop theirs at once; should the loop be
    /// dropped with the write still in flight, the reference is leaked
    /// rather than let the bytes be freed under the kernel.
    pub fn write_at_shared(
        &mut self,
        file_fd: RawFd,
        data: Arc<[u8]>,
        start: usize,
        len: usize,
        offset: u64,
    ) -> Result<OpId, LoopError> {
        let size = data.len();
        let range_error = LoopError::Range {
            start,
            len,
            size,
            max: WRITE_BYTES_MAX,
        };
        let Some(bytes) = start
            .checked_add(len)
            .and_then(|end| data.get(start..end))
            .filter(|b| !b.is_empty() && b.len() <= WRITE_BYTES_MAX)
        else {
            return Err(range_error);
        };
        let ptr = bytes.as_ptr();
        let len32 = u32::try_from(len).map_err(|_| range_error)?;
        self.queue(OpKind::WriteAt, None, |slot| {
            // The slot's reference keeps `ptr` valid: an Arc's bytes never move.
            slot.shared = Some(data);
            opcode::Write::new(types::Fd(file_fd), ptr, len32)
                .offset(offset)
                .build()
        })
    }

    /// As [`EventLoop::send_blocks`], but the blocks lie in the caller's
    /// shared bytes `data` (segment starts count from its first byte), not
    /// in a pool buffer: one `sendmsg` straight from memory that many sends
    /// share (the load generator's cached pieces). The op holds its own
    /// reference to `data` until its completion is drained (leaked, not
    /// freed, should the loop be dropped with it in flight). The completion
    /// carries no buffer.
    pub fn send_blocks_shared(
        &mut self,
        fd: RawFd,
        data: Arc<[u8]>,
        segments: &[BlockSegment],
        skip: usize,
    ) -> Result<OpId, LoopError> {
        check_block_segments(segments, data.len(), skip)?;
        let segs: [Option<BlockSegment>; SEND_BLOCKS_MAX] =
            std::array::from_fn(|i| segments.get(i).copied());
        // The kernel only reads through these pointers (a send).
        let base = data.as_ptr().cast_mut();
        self.queue(OpKind::SendBlocks, None, move |slot| {
            // The slot's reference keeps `base` valid: an Arc's bytes never move.
            slot.shared = Some(data);
            block_sendmsg(slot, fd, &segs, base, skip)
        })
    }

    /// Queues a connect of socket `fd` to `addr`.
    pub fn connect(&mut self, fd: RawFd, addr: SocketAddr) -> Result<OpId, LoopError> {
        self.queue(OpKind::Connect, None, |data| {
            data.addr_len = write_sockaddr(addr, &mut data.addr);
            opcode::Connect::new(
                types::Fd(fd),
                (&raw const data.addr).cast::<libc::sockaddr>(),
                data.addr_len,
            )
            .build()
        })
    }

    /// Queues a one-shot wait until `fd` is writable (the splice send path
    /// writes with its own syscalls and waits here when the socket is full).
    pub fn poll_out(&mut self, fd: RawFd) -> Result<OpId, LoopError> {
        self.queue(OpKind::PollOut, None, |_| {
            opcode::PollAdd::new(types::Fd(fd), libc::POLLOUT as u32).build()
        })
    }

    /// Queues a timer that completes with `Err(ETIME)` after `duration`.
    pub fn timeout(&mut self, duration: Duration) -> Result<OpId, LoopError> {
        self.queue(OpKind::Timeout, None, |data| {
            data.timespec = types::Timespec::from(duration);
            opcode::Timeout::new(&raw const data.timespec).build()
        })
    }

    /// Queues the cancellation of op `target`, which must be in flight. The
    /// target completes (usually with `Err(ECANCELED)`), and so does the
    /// cancel itself.
    pub fn cancel(&mut self, target: OpId) -> Result<OpId, LoopError> {
        if self.pending(target).is_none() {
            return Err(LoopError::NotInFlight(target));
        }
        self.queue(OpKind::Cancel, None, |_| {
            opcode::AsyncCancel::new(target.user_data()).build()
        })
    }

    /// Queues the closing of `fd`. Ops still in flight on it keep their
    /// buffers until their own completions arrive.
    pub fn close(&mut self, fd: RawFd) -> Result<OpId, LoopError> {
        self.queue(OpKind::Close, None, |_| {
            opcode::Close::new(types::Fd(fd)).build()
        })
    }

    /// Hands the queued ops to the kernel and waits until `want` completions
    /// are ready or `timeout` passes (no timeout: wait for `want`). An
    /// interrupted or timed-out wait is not an error; drain and look.
    pub fn submit_and_wait(
        &mut self,
        want: usize,
        timeout: Option<Duration>,
    ) -> Result<usize, LoopError> {
        let outcome = match timeout {
            Some(limit) if want > 0 && self.ext_arg => {
                let ts = types::Timespec::from(limit);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(want, &args)
            }
            Some(limit) if want > 0 => {
                // Kernels before 5.11 take no wait timeout: a timeout op of
                // the loop's own ends the wait (its completion is dropped).
                // One completion ends this wait, whatever `want` is.
                if self.internal_timeout.is_none() {
                    self.internal_timeout = self.timeout(limit).ok();
                    if let Some(id) = self.internal_timeout {
                        if let Some(p) = self.pending_mut(id) {
                            p.internal = true;
                        }
                    }
                }
                if self.internal_timeout.is_some() {
                    self.ring.submit_and_wait(1)
                } else {
                    // No room for the timer: never wait unbounded.
                    self.ring.submit()
                }
            }
            _ => self.ring.submit_and_wait(want),
        };
        match outcome {
            Ok(n) => Ok(n),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => Ok(0),
                _ => Err(LoopError::Submit(e)),
            },
        }
    }

    /// Moves every completion that arrived into `out` (appended), frees the
    /// ops' slots and hands their buffers to the caller. Returns how many
    /// were appended.
    pub fn drain_completions(&mut self, out: &mut Vec<Completion<C>>) -> usize {
        let before = out.len();
        // Collected first (the completion queue borrows the ring), into a
        // scratch list kept between calls.
        let mut cqes = mem::take(&mut self.cqes);
        cqes.clear();
        cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(user_data, cqe_res, cqe_flags) in &cqes {
            let id = OpId(user_data);
            let (mut res, mut flags) = (cqe_res, cqe_flags);
            let mut more = cqueue::more(flags);
            let zero_copy = self
                .pending(id)
                .is_some_and(|p| p.kind == OpKind::SendZcWithHeader);
            if zero_copy {
                if cqueue::notif(flags) {
                    // The kernel let go of the buffer: report the send.
                    let first = self.pending(id).and_then(|p| p.zc_first);
                    (res, flags) = first.unwrap_or((res, flags));
                    more = false;
                } else if more {
                    // The send's result; its notification follows.
                    if let Some(p) = self.pending_mut(id) {
                        p.zc_first = Some((res, flags & !CQE_F_MORE));
                    }
                    continue;
                }
                flags &= !CQE_F_MORE;
            }
            let ctx = self.ctx(id).unwrap_or_default();
            let pending = if more {
                self.pending(id).copied()
            } else {
                self.finish(id)
            };
            let Some(pending) = pending else {
                self.stale += 1;
                continue;
            };
            if pending.internal {
                continue;
            }
            let result = if res < 0 {
                Err(-res)
            } else {
                Ok(res.unsigned_abs())
            };
            let peer = match (pending.kind, result) {
                (OpKind::Accept, Ok(_)) => self
                    .slots
                    .get(id.index())
                    .and_then(|s| read_sockaddr(&s.data.addr, s.data.addr_len)),
                _ => None,
            };
            if pending.kind == OpKind::RecvMulti {
                if let (Some(bid), Some(r)) =
                    (cqueue::buffer_select(flags), self.recv_ring.as_mut())
                {
                    r.taken(bid);
                }
            }
            out.push(Completion {
                op: id,
                ctx,
                kind: pending.kind,
                result,
                buffer: if more { None } else { pending.buffer },
                peer,
                flags,
                more,
            });
        }
        self.cqes = cqes;
        out.len() - before
    }

    fn pending(&self, id: OpId) -> Option<&Pending> {
        let slot = self.slots.get(id.index())?;
        if slot.generation != id.generation() {
            return None;
        }
        slot.pending.as_ref()
    }

    fn pending_mut(&mut self, id: OpId) -> Option<&mut Pending> {
        let slot = self.slots.get_mut(id.index())?;
        if slot.generation != id.generation() {
            return None;
        }
        slot.pending.as_mut()
    }

    /// Frees the slot of a completed op and takes its buffer back from the
    /// kernel; `None` if `id` names no op in flight.
    fn finish(&mut self, id: OpId) -> Option<Pending> {
        let slot = self.slots.get_mut(id.index())?;
        if slot.generation != id.generation() {
            return None;
        }
        let pending = slot.pending.take()?;
        slot.ctx = C::default();
        // The kernel is done with the write's bytes.
        slot.data.shared = None;
        self.slots.give_back(id.index() as u32);
        if pending.kind == OpKind::Cancel {
            self.cancels_in_flight = self.cancels_in_flight.saturating_sub(1);
        } else {
            self.ops_in_flight = self.ops_in_flight.saturating_sub(1);
        }
        if self.internal_timeout == Some(id) {
            self.internal_timeout = None;
        }
        if let Some(buffer) = pending.buffer {
            // Lent by this loop, so it is InKernel; nothing else can fail.
            let _ = self.buffers.take_back(buffer);
        }
        Some(pending)
    }

    /// Queues an op whose buffer is `len` bytes of `buffer`.
    fn queue_with_buffer(
        &mut self,
        kind: OpKind,
        buffer: BufferId,
        start: usize,
        len: usize,
        build: impl FnOnce(&mut SlotData, *mut u8, u32) -> squeue::Entry,
    ) -> Result<OpId, LoopError> {
        let size = self.buffers.buffer_bytes();
        let max = size.saturating_sub(start);
        if start >= size {
            return Err(LoopError::Start { start, size });
        }
        if len == 0 || len > max {
            return Err(LoopError::Length { len, max });
        }
        let state = self.buffers.state(buffer)?;
        if state != BufferState::Held {
            return Err(BufferError::State {
                index: buffer.index(),
                expected: BufferState::Held,
                found: state,
            }
            .into());
        }
        // len <= BUFFER_BYTES_MAX, which fits u32.
        let len32 = u32::try_from(len).map_err(|_| LoopError::Length { len, max })?;
        // start < size: the range lies inside the buffer.
        let ptr = self.buffers.lend(buffer)?.wrapping_add(start);
        let queued = self.queue(kind, Some(buffer), |data| build(data, ptr, len32));
        if queued.is_err() {
            // Never reached the kernel: the caller holds it again.
            let _ = self.buffers.take_back(buffer);
        }
        queued
    }

    /// Takes a slot, lets `build` fill its data and make the SQE, and pushes
    /// it. Refuses when the op budget or the submission queue is full.
    fn queue(
        &mut self,
        kind: OpKind,
        buffer: Option<BufferId>,
        build: impl FnOnce(&mut SlotData) -> squeue::Entry,
    ) -> Result<OpId, LoopError> {
        let (what, in_flight) = if kind == OpKind::Cancel {
            ("cancel", self.cancels_in_flight)
        } else {
            ("op", self.ops_in_flight)
        };
        if in_flight >= self.ops_in_flight_max {
            return Err(LoopError::SlabFull { what, in_flight });
        }
        if self.ring.submission().is_full() {
            return Err(LoopError::QueueFull {
                entries: self.ring.submission().capacity(),
            });
        }
        let Some(index) = self.slots.take(|| Slot {
            generation: 0,
            pending: None,
            ctx: C::default(),
            data: SlotData::new(),
        }) else {
            return Err(LoopError::SlabFull { what, in_flight });
        };
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return Err(LoopError::SlabFull { what, in_flight });
        };
        slot.generation = slot.generation.wrapping_add(1);
        slot.ctx = mem::take(&mut self.staged_ctx);
        let id = OpId::new(index, slot.generation);
        let entry = build(&mut slot.data).user_data(id.user_data());
        // SAFETY: every pointer in `entry` points into this slot's data (which
        // lives in a slab that never moves or shrinks) or into a pool buffer
        // lent to this op; both stay put until the completion is drained, and
        // a loop dropped with ops in flight leaks them rather than free them.
        if unsafe { self.ring.submission().push(&entry) }.is_err() {
            slot.data.shared = None;
            slot.ctx = C::default();
            self.slots.give_back(index);
            return Err(LoopError::QueueFull {
                entries: self.ring.submission().capacity(),
            });
        }
        slot.pending = Some(Pending {
            kind,
            buffer,
            internal: false,
            zc_first: None,
        });
        if kind == OpKind::Cancel {
            self.cancels_in_flight += 1;
        } else {
            self.ops_in_flight += 1;
        }
        Ok(id)
    }
}

impl<C: Copy + Default> EventLoop<C> {
    /// Cancels every op in flight and waits for their completions (at most
    /// about a second), dropping those completions and returning their
    /// buffers to the pool. Returns the ops still in flight after that (0
    /// unless the kernel is stuck). The loop stays usable.
    pub fn shutdown(&mut self) -> u32 {
        if self.in_flight() == 0 {
            return 0;
        }
        let ids: Vec<OpId> = self
            .slots
            .iter()
            .filter(|(_, s)| s.pending.is_some_and(|p| p.kind != OpKind::Cancel))
            .map(|(i, s)| OpId::new(i as u32, s.generation))
            .collect();
        let mut sink = Vec::new();
        for id in ids {
            while let Err(LoopError::QueueFull { .. } | LoopError::SlabFull { .. }) =
                self.cancel(id)
            {
                if self.submit_and_wait(1, Some(DROP_DRAIN_WAIT)).is_err()
                    || self.drain_and_release(&mut sink) == 0
                {
                    break;
                }
            }
        }
        for _ in 0..DROP_DRAIN_ROUNDS_MAX {
            if self.in_flight() == 0 {
                break;
            }
            if self.submit_and_wait(1, Some(DROP_DRAIN_WAIT)).is_err() {
                break;
            }
            self.drain_and_release(&mut sink);
        }
        self.in_flight()
    }

    /// Drains completions nobody will handle, returning their buffers to
    /// the pool.
    fn drain_and_release(&mut self, sink: &mut Vec<Completion<C>>) -> usize {
        sink.clear();
        let n = self.drain_completions(sink);
        for buffer in sink.iter().filter_map(|c| c.buffer) {
            let _ = self.buffers.release(buffer);
        }
        n
    }
}

impl<C: Copy + Default> EventLoop<C> {
    /// Leaks what the kernel may still use (the pool, and the slab with the
    /// slots' data and the shared bytes of writes): never freed.
    fn leak_in_flight(&mut self) {
        mem::forget(mem::replace(&mut self.buffers, BufferPool::new(0, 1)));
        mem::forget(mem::take(&mut self.slots));
        mem::forget(self.recv_ring.take());
    }
}

impl<C: Copy + Default> Drop for EventLoop<C> {
    fn drop(&mut self) {
        if self.shutdown() > 0 {
            self.leak_in_flight();
        } else if self.recv_ring.is_some()
            && self
                .ring
                .submitter()
                .unregister_buf_ring(RECV_RING_GROUP)
                .is_err()
        {
            // The kernel may still write into it: never free it.
            mem::forget(self.recv_ring.take());
        }
    }
}

/// Fills a slot's header, iovecs and msghdr for a send of `header` then
/// `len` bytes at `block`; returns the msghdr's address (in the slot).
fn header_msg(
    data: &mut SlotData,
    header: [u8; HEADER_BYTES],
    block: *mut u8,
    len: u32,
) -> *const libc::msghdr {
    data.header = header;
    data.iov[0] = libc::iovec {
        iov_base: data.header.as_mut_ptr().cast(),
        iov_len: HEADER_BYTES,
    };
    data.iov[1] = libc::iovec {
        iov_base: block.cast(),
        iov_len: len as usize,
    };
    // SAFETY: all-zero bytes are a valid msghdr.
    data.msg = unsafe { mem::zeroed() };
    data.msg.msg_iov = data.iov.as_mut_ptr();
    data.msg.msg_iovlen = 2;
    &raw const data.msg
}

/// Writes `addr` as a C socket address; returns its length.
fn write_sockaddr(addr: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    *out = unsafe { mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((out as *mut libc::sockaddr_storage).cast(), sin) };
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((out as *mut libc::sockaddr_storage).cast(), sin6) };
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads a C socket address the kernel wrote; `None` for other families.
fn read_sockaddr(addr: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(addr.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin: libc::sockaddr_in =
                unsafe { std::ptr::read((addr as *const libc::sockaddr_storage).cast()) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6: libc::sockaddr_in6 =
                unsafe { std::ptr::read((addr as *const libc::sockaddr_storage).cast()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
