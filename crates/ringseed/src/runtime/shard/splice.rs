//! The splice send path: blocks a plaintext peer asked for, whose pages are
//! all in the page cache, go file -> pipe -> socket with `splice(2)` and
//! never enter user memory. Each block's 13-byte piece header is written
//! into the connection's pipe before the block is spliced in behind it, so
//! the pipe holds the exact wire bytes; the pipe then goes to the socket in
//! as few splices as the socket's room allows. The read path copies every
//! block twice (page cache -> pool buffer, buffer -> socket); this path
//! copies it no time on the seeder (the kernel hands page references).
//!
//! The syscalls run on the shard thread, not through io_uring, because
//! io_uring hands every splice to its io-wq threads (a thread switch per
//! op, and a worker blocked on each full socket). Run here, none blocks:
//! - `cachestat(2)` (Linux 6.5+) says every page of the block is cached
//!   just before the file -> pipe splice, which then only takes page
//!   references (a page evicted in between costs one short disk read);
//! - the pipe is sized ([`PIPE_BYTES`]) and its slots counted so that a job
//!   always fits: a write or splice into it never waits;
//! - the socket is switched to `O_NONBLOCK` on its first splice; a full
//!   socket is waited for with an io_uring poll (`EventLoop::poll_out`).
//!
//! A job takes the read path instead when any of that does not hold: a
//! kernel without cachestat, an RC4 connection (its bytes are encrypted in
//! user memory), a pad file, a page not cached, no pipe free
//! ([`PIPES_PER_SHARD_MAX`]), or no room left in the connection's pipe.
//!
//! Once a header is in a pipe, the pipe's bytes are the connection's wire
//! stream: a splice that then fails (a file truncated under us) leaves a
//! stream that cannot be finished, so the connection is dropped; no wrong
//! byte is ever sent.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::conn::{ConnState, OutItem};
use super::disk_read::ReadJob;
use super::Shard;
use crate::runtime::event_loop::HEADER_BYTES;

/// Bytes each pipe holds (`F_SETPIPE_SZ`): room for four jobs of four
/// 16 KiB blocks, each block over five pages at worst, plus their headers.
pub const PIPE_BYTES: usize = 512 * 1024;
/// Page-sized slots of one pipe: a header takes one, a block one per page
/// it touches.
const PIPE_SLOTS: usize = PIPE_BYTES / PAGE_BYTES;
const PAGE_BYTES: usize = 4096;
/// Pipes one shard keeps (two fds each). Connections past this many with
/// bytes waiting in a pipe take the read path. 512 pipes hold at most
/// 256 MiB of page references (pages already in the page cache; only the
/// headers' pages are new memory).
pub const PIPES_PER_SHARD_MAX: usize = 512;
// A whole job (SEND_BLOCKS_MAX blocks of up to 16 KiB, each touching at
// most five pages, and a header each) must fit an empty pipe.
const _: () = assert!(
    crate::runtime::event_loop::SEND_BLOCKS_MAX * (1 + 16 * 1024 / PAGE_BYTES + 1) <= PIPE_SLOTS
);

/// One pipe and what is in it.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// Bytes in the pipe, not yet sent.
    pub bytes: usize,
    /// Slots used since the pipe was last empty (an upper bound: sending
    /// frees slots that are only counted back when it is empty again).
    slots: usize,
}

impl Pipe {
    fn open() -> Option<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two fds into the array.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return None;
        }
        // SAFETY: both fds were just opened and are owned here alone.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on an fd we own.
        let size = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES as i32) };
        if size < 0 || (size as usize) < PIPE_BYTES {
            return None;
        }
        Some(Pipe {
            read,
            write,
            bytes: 0,
            slots: 0,
        })
    }
}

/// A shard's pipes and whether the path is usable at all.
#[derive(Debug, Default)]
pub struct Pipes {
    free: Vec<Pipe>,
    /// Pipes open: free ones and those held by connections.
    open: usize,
}

impl Pipes {
    /// Whether this kernel has what the path needs (cachestat, pipes that
    /// can be sized). Checked once per shard.
    pub fn probe() -> Option<Pipes> {
        let pipe = Pipe::open()?;
        let exe = std::fs::File::open("/proc/self/exe").ok()?;
        cached(exe.as_raw_fd(), 0, 1)?;
        Some(Pipes {
            free: vec![pipe],
            open: 1,
        })
    }

    fn take(&mut self) -> Option<Pipe> {
        if let Some(p) = self.free.pop() {
            return Some(p);
        }
        if self.open >= PIPES_PER_SHARD_MAX {
            return None;
        }
        let p = Pipe::open()?;
        self.open += 1;
        Some(p)
    }

    /// An empty pipe back to the pool.
    fn give_back(&mut self, mut p: Pipe) {
        debug_assert_eq!(p.bytes, 0, "a pipe with bytes in it went back");
        p.slots = 0;
        self.free.push(p);
    }

    /// A pipe closed (its connection went, maybe with bytes in it).
    pub fn discard(&mut self, p: Pipe) {
        drop(p);
        self.open = self.open.saturating_sub(1);
    }

    /// Pipes open (free and held).
    pub fn open(&self) -> usize {
        self.open
    }
}

/// `cachestat(2)` over `len` bytes at `offset` of `fd`: whether every page
/// is in the page cache; `None` when the kernel has no cachestat (before
/// 6.5) or refuses the fd.
fn cached(fd: RawFd, offset: u64, len: u64) -> Option<bool> {
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    /// The same number on every architecture (the unified syscall table).
    const SYS_CACHESTAT: libc::c_long = 451;
    let range = Range { off: offset, len };
    let mut stat = Stat::default();
    // SAFETY: the kernel reads `range` and writes `stat`, both live here.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd,
            &raw const range,
            &raw mut stat,
            0 as libc::c_uint,
        )
    };
    if r != 0 {
        return None;
    }
    Some(stat.nr_cache >= pages(offset, len) as u64)
}

/// Joins runs `(fd, offset, len)` that continue each other in one file
/// into stretches and asks `ok` of each, in order, until one fails.
fn each_stretch(
    runs: impl IntoIterator<Item = (RawFd, u64, u64)>,
    mut ok: impl FnMut(RawFd, u64, u64) -> bool,
) -> bool {
    let mut stretch: Option<(RawFd, u64, u64)> = None;
    for (fd, at, n) in runs {
        stretch = match stretch {
            Some((f, start, len)) if f == fd && start + len == at => Some((f, start, len + n)),
            Some((f, start, len)) => {
                if !ok(f, start, len) {
                    return false;
                }
                Some((fd, at, n))
            }
            None => Some((fd, at, n)),
        };
    }
    stretch.is_none_or(|(f, start, len)| ok(f, start, len))
}

/// Pages a run of `len` bytes at `offset` touches.
fn pages(offset: u64, len: u64) -> usize {
    let page = PAGE_BYTES as u64;
    ((offset % page + len).div_ceil(page)) as usize
}

/// Why a job could not go down the splice path after its bytes started
/// into the pipe.
#[derive(Debug)]
struct Broken(std::io::Error);

fn write_all(fd: RawFd, bytes: &[u8]) -> Result<(), Broken> {
    // SAFETY: writes from a live slice to an fd we own.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 {
        return Err(Broken(std::io::Error::last_os_error()));
    }
    if n as usize != bytes.len() {
        return Err(Broken(std::io::Error::other("short write into the pipe")));
    }
    Ok(())
}

fn splice_in(file: RawFd, mut offset: u64, len: u64, pipe: RawFd) -> Result<(), Broken> {
    let mut left = len;
    while left > 0 {
        let mut off = i64::try_from(offset).map_err(|_| Broken(std::io::Error::other("offset")))?;
        // SAFETY: splice between fds we own; `off` lives across the call.
        let n = unsafe {
            libc::splice(
                file,
                &raw mut off,
                pipe,
                std::ptr::null_mut(),
                left as usize,
                libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
            )
        };
        if n < 0 {
            return Err(Broken(std::io::Error::last_os_error()));
        }
        if n == 0 {
            return Err(Broken(std::io::Error::other(
                "the file ends before the block",
            )));
        }
        offset += n as u64;
        left -= n as u64;
    }
    Ok(())
}

/// Sets or clears O_NONBLOCK on `fd`; false when fcntl failed.
pub(super) fn set_nonblocking(fd: RawFd, on: bool) -> bool {
    // SAFETY: fcntl on an fd the caller owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return false;
        }
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        libc::fcntl(fd, libc::F_SETFL, flags) == 0
    }
}

/// What the pipe -> socket splice did.
pub enum Out {
    /// This many bytes went.
    Sent(usize),
    /// The socket is full.
    Full,
    Failed(std::io::Error),
}

/// Splices up to `len` bytes of `pipe` into `socket` without waiting.
pub fn splice_out(pipe: &Pipe, socket: RawFd, len: usize, more: bool) -> Out {
    let flags =
        libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE | if more { libc::SPLICE_F_MORE } else { 0 };
    // SAFETY: splice between fds we own, no offsets.
    let n = unsafe {
        libc::splice(
            pipe.read.as_raw_fd(),
            std::ptr::null_mut(),
            socket,
            std::ptr::null_mut(),
            len,
            flags,
        )
    };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN) => Out::Full,
            Some(libc::EINTR) => Out::Sent(0),
            _ => Out::Failed(e),
        };
    }
    Out::Sent(n as usize)
}

impl Shard {
    /// Sends `job` down the splice path when it can (see the module
    /// header); gives it back for the read path otherwise.
    pub(super) fn try_splice(&mut self, job: ReadJob) -> Result<(), ReadJob> {
        if self.pipes.is_none() || !self.send_path.splice() {
            return Err(job);
        }
        let Some(conn) = self.conns.get(job.conn) else {
            return Err(job);
        };
        let plaintext = conn.rc4.is_none() && conn.mse.is_none();
        let Some(socket) = conn.raw_fd() else {
            return Err(job);
        };
        if !plaintext || conn.state == ConnState::Closing {
            return Err(job);
        }
        // The file runs of each block.
        let mut runs: [[(RawFd, u64, u64); 2]; crate::runtime::event_loop::SEND_BLOCKS_MAX] =
            [[(-1, 0, 0); 2]; crate::runtime::event_loop::SEND_BLOCKS_MAX];
        let mut run_counts = [0usize; crate::runtime::event_loop::SEND_BLOCKS_MAX];
        let mut slots = 0;
        {
            let Some(storage) = self
                .torrents
                .get(job.torrent)
                .and_then(|e| e.storage.as_ref())
            else {
                return Err(job);
            };
            for (i, (offset, len)) in job.blocks().enumerate() {
                let Ok(spans) = storage.block_spans(job.piece, offset, len) else {
                    return Err(job);
                };
                // A block over more than two files (tiny files) takes the
                // read path.
                if spans.len() > 2 {
                    return Err(job);
                }
                slots += 1;
                for (k, s) in spans.iter().enumerate() {
                    let Some(fd) = storage.fd(s.file_index).filter(|_| !s.pad) else {
                        return Err(job);
                    };
                    runs[i][k] = (fd, s.file_offset, s.length);
                    slots += pages(s.file_offset, s.length);
                }
                run_counts[i] = spans.len();
            }
        }
        // Every page cached: one cachestat per stretch of a file the job
        // reads (adjacent blocks of one file make one stretch).
        let job_runs = runs
            .iter()
            .zip(run_counts)
            .flat_map(|(r, count)| r[..count].iter().copied());
        if !each_stretch(job_runs, |fd, at, n| cached(fd, at, n) == Some(true)) {
            return Err(job);
        }
        let Some(pipes) = self.pipes.as_mut() else {
            return Err(job);
        };
        let Some(conn) = self.conns.get_mut(job.conn) else {
            return Err(job);
        };
        let mut pipe = match conn.pipe.take() {
            Some(p) => p,
            None => match pipes.take() {
                Some(p) => p,
                None => return Err(job),
            },
        };
        if pipe.slots + slots > PIPE_SLOTS {
            // No room: the connection keeps its pipe (if anything is in
            // it), the job reads.
            if pipe.bytes == 0 {
                pipes.give_back(pipe);
            } else {
                conn.pipe = Some(pipe);
            }
            return Err(job);
        }
        if !conn.nonblocking {
            if !set_nonblocking(socket, true) {
                if pipe.bytes == 0 {
                    pipes.give_back(pipe);
                } else {
                    conn.pipe = Some(pipe);
                }
                return Err(job);
            }
            conn.nonblocking = true;
        }
        // From here the pipe carries the job: every block still wanted
        // goes in, header first.
        let now = self.now;
        let mut added = 0usize;
        let mut blocks = 0u32;
        let mut broken = None;
        if let Some(t) = self.torrents.engine_mut(job.torrent) {
            for (i, (offset, len)) in job.blocks().enumerate() {
                let Some(header) = t.on_block_read(now, job.peer, job.piece, offset, len) else {
                    continue;
                };
                let r = write_all(pipe.write.as_raw_fd(), &header).and_then(|()| {
                    runs[i][..run_counts[i]]
                        .iter()
                        .try_for_each(|&(fd, at, n)| splice_in(fd, at, n, pipe.write.as_raw_fd()))
                });
                if let Err(e) = r {
                    broken = Some(e);
                    break;
                }
                added += HEADER_BYTES + len as usize;
                blocks += 1;
            }
        }
        pipe.bytes += added;
        pipe.slots += slots;
        if let Some(Broken(e)) = broken {
            if let Some(p) = self.pipes.as_mut() {
                p.discard(pipe);
            }
            let addr = self
                .conns
                .get(job.conn)
                .map_or_else(|| "?".to_owned(), |c| c.addr.to_string());
            let line = format!("peer {addr} dropped: a block could not be spliced ({e})");
            self.log.line(self.now, line);
            self.drop_conn(job.conn, true);
            self.want_pump(job.torrent);
            return Ok(());
        }
        let Some(conn) = self.conns.get_mut(job.conn) else {
            if let Some(p) = self.pipes.as_mut() {
                p.discard(pipe);
            }
            return Ok(());
        };
        let pipe_slots_used = pipe.slots;
        if pipe.bytes == 0 {
            if let Some(p) = self.pipes.as_mut() {
                p.give_back(pipe);
            }
        } else {
            conn.pipe = Some(pipe);
        }
        if blocks > 0 {
            conn.out.push_back(OutItem::Piped {
                bytes: added,
                blocks,
            });
        }
        self.splices += u64::from(blocks);
        self.want_pump(job.torrent);
        // Jobs the turn adds go out together at its end; a pipe past half
        // full goes now, so the next job still finds room.
        if pipe_slots_used > PIPE_SLOTS / 2 {
            self.try_send(job.conn);
        } else {
            self.want_flush(job.conn);
        }
        Ok(())
    }

    /// Sends the front `Piped` item (and those right behind it) from the
    /// connection's pipe, then waits for room or goes on with the queue.
    pub(super) fn send_piped(&mut self, id: super::conn::ConnId, bytes: usize, blocks: u32) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let Some(socket) = conn.raw_fd() else { return };
        // Runs of piped items in a row go in one splice; they stay queued
        // until sent.
        conn.out.push_front(OutItem::Piped { bytes, blocks });
        let mut want = 0;
        let mut run = 0;
        for item in conn.out.iter() {
            let OutItem::Piped { bytes, .. } = item else {
                break;
            };
            want += *bytes;
            run += 1;
        }
        let Some(pipe) = conn.pipe.as_mut() else {
            // Piped items without a pipe: an invariant broken.
            debug_assert!(false, "piped bytes queued without a pipe");
            self.drop_conn(id, true);
            return;
        };
        let more = conn.out.len() > run;
        let sent = match splice_out(pipe, socket, want, more) {
            Out::Sent(n) => n,
            Out::Full => 0,
            Out::Failed(_) => {
                self.drop_conn(id, true);
                return;
            }
        };
        pipe.bytes -= sent.min(pipe.bytes);
        self.sent_bytes += sent as u64;
        // Items fully sent are done; the first one left is cut.
        let mut left = sent;
        let mut done_blocks = 0u32;
        while left > 0 {
            match conn.out.front_mut() {
                Some(OutItem::Piped { bytes, blocks }) if left >= *bytes => {
                    left -= *bytes;
                    done_blocks += *blocks;
                    conn.out.pop_front();
                }
                Some(OutItem::Piped { bytes, .. }) => {
                    *bytes -= left;
                    left = 0;
                }
                _ => break,
            }
        }
        let empty = pipe.bytes == 0;
        if empty {
            if let (Some(p), Some(pipes)) = (conn.pipe.take(), self.pipes.as_mut()) {
                pipes.give_back(p);
            }
        }
        let state = conn.state;
        let waiting = matches!(conn.out.front(), Some(OutItem::Piped { .. }));
        if done_blocks > 0 {
            if let ConnState::Peer { torrent, peer } = state {
                let now = self.now;
                if let Some(t) = self.torrents.engine_mut(torrent) {
                    t.on_blocks_sent(now, peer, done_blocks);
                }
                self.want_pump(torrent);
            }
        }
        if waiting {
            // The socket is full: wait until it takes more.
            match self.queue(super::OpCtx::Send { conn: id }, |ev| ev.poll_out(socket)) {
                Ok(op) => {
                    if let Some(c) = self.conns.get_mut(id) {
                        c.send_op = Some(op);
                        c.sending = Some(super::conn::Sending::Poll);
                        c.ops += 1;
                    }
                }
                Err(_) => self.drop_conn(id, true),
            }
            return;
        }
        self.try_send(id);
    }

    /// Pumps `t` at the end of this turn (outputs that a synchronous send
    /// or splice made, without pumping inside a pump).
    pub(super) fn want_pump(&mut self, t: crate::runtime::session::types::TorrentId) {
        if !self.pumps_wanted.contains(&t) {
            self.pumps_wanted.push(t);
        }
    }

    /// Sends `id`'s queue at the end of this turn: one splice per
    /// connection carries every job the turn queued for it, in fewer and
    /// larger pushes than one per job. Against the load generator that
    /// took splice from 0.68-0.71 to 0.51-0.54 CPU-s/GiB in 10-s runs
    /// (alike in 30-s runs; docs/benchmarks.md, "Why the generator makes
    /// splicing dear").
    pub(super) fn want_flush(&mut self, id: super::conn::ConnId) {
        if let Some(c) = self.conns.get_mut(id) {
            if !c.flush_wanted {
                c.flush_wanted = true;
                self.flushes_wanted.push(id);
            }
        }
    }

    /// Sends the queues of the connections that asked in this turn (a
    /// flush asks for none: `try_send` only waits or sends).
    pub(super) fn run_wanted_flushes(&mut self) {
        let mut wanted = std::mem::take(&mut self.flushes_wanted);
        for id in wanted.drain(..) {
            if let Some(c) = self.conns.get_mut(id) {
                if !c.flush_wanted {
                    continue;
                }
                c.flush_wanted = false;
            }
            self.try_send(id);
        }
        // Keep the list's memory for the next turn.
        if self.flushes_wanted.is_empty() {
            self.flushes_wanted = wanted;
        }
    }

    /// Runs the pumps wanted, and those they want in turn, a bounded number
    /// of rounds (the rest wait for the next turn, which then does not
    /// sleep).
    pub(super) fn run_wanted_pumps(&mut self) {
        for _ in 0..PUMP_ROUNDS_PER_TURN_MAX {
            if self.pumps_wanted.is_empty() {
                return;
            }
            let wanted = std::mem::take(&mut self.pumps_wanted);
            for t in wanted {
                self.pump(t);
            }
        }
    }
}

/// Rounds of wanted pumps per loop turn.
const PUMP_ROUNDS_PER_TURN_MAX: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_that_continue_each_other_are_checked_as_one_stretch() {
        let mut asked = Vec::new();
        let runs = [
            (3, 0, 16384),
            (3, 16384, 16384),
            (4, 0, 100),
            (3, 32768, 10),
        ];
        assert!(each_stretch(runs, |f, at, n| {
            asked.push((f, at, n));
            true
        }));
        assert_eq!(asked, [(3, 0, 32768), (4, 0, 100), (3, 32768, 10)]);
        // The first stretch that fails ends it.
        asked.clear();
        assert!(!each_stretch(runs, |f, at, n| {
            asked.push((f, at, n));
            f != 4
        }));
        assert_eq!(asked, [(3, 0, 32768), (4, 0, 100)]);
        assert!(each_stretch([], |_, _, _| false));
    }

    #[test]
    fn pages_counts_partial_pages_at_both_ends() {
        assert_eq!(pages(0, 16_384), 4);
        assert_eq!(pages(100, 16_384), 5);
        assert_eq!(pages(4095, 2), 2);
        assert_eq!(pages(8192, 1), 1);
    }

    #[test]
    fn cachestat_sees_a_file_just_written() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("ringseed-cachestat-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("f");
        let mut f = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{e}"));
        f.write_all(&vec![1u8; 64 * 1024])
            .unwrap_or_else(|e| panic!("{e}"));
        let r = cached(f.as_raw_fd(), 0, 64 * 1024);
        let _ = std::fs::remove_dir_all(&dir);
        // None on kernels before 6.5: the path is then off, which is fine.
        assert_ne!(r, Some(false), "pages just written are cached");
    }

    #[test]
    fn a_pipe_takes_a_whole_job_without_waiting() {
        let Some(p) = Pipe::open() else {
            panic!("pipe2 or F_SETPIPE_SZ({PIPE_BYTES}) failed");
        };
        // Worst case: 4 blocks over 5 pages each, a header before each.
        let block = vec![7u8; 16 * 1024];
        for _ in 0..crate::runtime::event_loop::SEND_BLOCKS_MAX * 4 {
            write_all(p.write.as_raw_fd(), &[1u8; HEADER_BYTES])
                .unwrap_or_else(|e| panic!("{e:?}"));
            write_all(p.write.as_raw_fd(), &block).unwrap_or_else(|e| panic!("{e:?}"));
        }
    }
}
