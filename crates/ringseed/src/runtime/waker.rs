//! `Waker`: an eventfd that other threads write to wake a shard's ring.
//!
//! A shard owns one [`Waker`] and keeps one 8-byte
//! [`EventLoop::read`](super::event_loop::EventLoop::read) on [`Waker::fd`] in
//! flight, re-arming it after each completion; any thread holding a
//! [`WakerHandle`] calls [`WakerHandle::wake`], which completes that read and
//! so ends the shard's `submit_and_wait`. Several wakes before the shard reads
//! add up into one completion (the eventfd is a counter). The fd stays open
//! while the `Waker` or any handle lives, so a late wake after the shard is
//! gone writes to a live eventfd nobody reads, never to a reused fd number.
//! This module knows nothing of what the wake means.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// Bytes a read of the eventfd takes (its counter, native endian).
pub const WAKE_READ_BYTES: usize = 8;

/// Why no waker could be made.
#[derive(Debug, thiserror::Error)]
pub enum WakerError {
    #[error("eventfd(0, EFD_CLOEXEC) failed: {0}")]
    Create(#[source] io::Error),
}

/// The shard's side: owns the eventfd the ring reads.
#[derive(Debug)]
pub struct Waker {
    fd: Arc<OwnedFd>,
}

/// Another thread's side: wakes the shard. Cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct WakerHandle {
    fd: Arc<OwnedFd>,
}

impl Waker {
    /// Makes a close-on-exec eventfd with a counter of 0.
    pub fn new() -> Result<Self, WakerError> {
        // SAFETY: plain eventfd(2) call; no pointers.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(WakerError::Create(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Self { fd: Arc::new(fd) })
    }

    /// The eventfd, for the shard's read op.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// A handle for another thread.
    pub fn handle(&self) -> WakerHandle {
        WakerHandle {
            fd: Arc::clone(&self.fd),
        }
    }

    /// The wake count a completed read of [`WAKE_READ_BYTES`] bytes holds;
    /// `None` if `bytes` is not that long.
    pub fn count(bytes: &[u8]) -> Option<u64> {
        let raw: [u8; WAKE_READ_BYTES] = bytes.try_into().ok()?;
        Some(u64::from_ne_bytes(raw))
    }
}

impl WakerHandle {
    /// Adds 1 to the eventfd's counter, completing the shard's read. Never
    /// fails the caller: the only errors (a counter at its maximum, EAGAIN)
    /// mean a wake is pending anyway.
    pub fn wake(&self) {
        let one = 1u64.to_ne_bytes();
        // A signal may interrupt the write: a few tries, then give up.
        for _ in 0..WAKE_TRIES_MAX {
            // SAFETY: writes 8 bytes from a live local array to an fd this
            // handle keeps open.
            let n = unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
            if n >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return;
            }
        }
    }
}

/// Most write attempts one wake makes when interrupted by signals.
const WAKE_TRIES_MAX: u32 = 4;

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::runtime::event_loop::{Completion, EventLoop, LoopConfig, OpKind};

    /// Longest a test waits for a wake.
    const WAIT_MAX: Duration = Duration::from_secs(2);

    fn make() -> Waker {
        Waker::new().unwrap_or_else(|e| panic!("{e}"))
    }

    fn read_counter(fd: RawFd) -> u64 {
        let mut raw = [0u8; WAKE_READ_BYTES];
        // SAFETY: reads 8 bytes into a live local array.
        let n = unsafe { libc::read(fd, raw.as_mut_ptr().cast(), raw.len()) };
        assert_eq!(n, WAKE_READ_BYTES as isize);
        u64::from_ne_bytes(raw)
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<WakerHandle>();
    }

    #[test]
    fn wakes_add_up_in_the_counter() {
        let waker = make();
        let handle = waker.handle();
        handle.wake();
        handle.clone().wake();
        waker.handle().wake();
        assert_eq!(read_counter(waker.fd()), 3);
    }

    #[test]
    fn the_fd_is_close_on_exec() {
        let waker = make();
        // SAFETY: F_GETFD on an fd the waker owns.
        let flags = unsafe { libc::fcntl(waker.fd(), libc::F_GETFD) };
        assert!(flags >= 0);
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn a_handle_outlives_its_waker() {
        let waker = make();
        let handle = waker.handle();
        let fd = waker.fd();
        drop(waker);
        // Still open (the handle holds it), so the wake is harmless.
        // SAFETY: F_GETFD on an fd number; fails if it were closed.
        assert!(unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0);
        handle.wake();
        assert_eq!(read_counter(fd), 1);
    }

    #[test]
    fn count_reads_eight_bytes_only() {
        assert_eq!(Waker::count(&5u64.to_ne_bytes()), Some(5));
        assert_eq!(Waker::count(&[0; 7]), None);
        assert_eq!(Waker::count(&[0; 9]), None);
    }

    #[test]
    fn another_thread_wakes_a_loop_blocked_in_wait() {
        let mut ev = EventLoop::new(LoopConfig {
            ring_entries: 8,
            ops_in_flight_max: 8,
            buffers: 2,
            buffer_bytes: 64,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let waker = make();
        let buf = ev
            .buffers()
            .acquire()
            .unwrap_or_else(|| panic!("no buffer"));
        let mut seen: Vec<Completion> = Vec::new();
        for round in 0..2 {
            let op = ev
                .read(waker.fd(), buf, WAKE_READ_BYTES)
                .unwrap_or_else(|e| panic!("{e}"));
            let handle = waker.handle();
            let start = Instant::now();
            let thread = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                handle.wake();
            });
            // One long wait: only the wake can end it early.
            ev.submit_and_wait(1, Some(Duration::from_secs(10)))
                .unwrap_or_else(|e| panic!("{e}"));
            let mut waited = start.elapsed();
            while !seen.iter().any(|c| c.op == op) && waited < WAIT_MAX {
                ev.drain_completions(&mut seen);
                if !seen.iter().any(|c| c.op == op) {
                    ev.submit_and_wait(1, Some(Duration::from_millis(20)))
                        .unwrap_or_else(|e| panic!("{e}"));
                }
                waited = start.elapsed();
            }
            thread.join().unwrap_or_else(|_| panic!("waking thread"));
            assert!(waited < WAIT_MAX, "round {round}: woken after {waited:?}");
            let c = seen
                .iter()
                .find(|c| c.op == op)
                .copied()
                .unwrap_or_else(|| panic!("round {round}: no completion"));
            assert_eq!(c.kind, OpKind::Read);
            assert_eq!(c.result, Ok(WAKE_READ_BYTES as u32));
            assert_eq!(c.buffer, Some(buf));
            let bytes = ev
                .buffers()
                .get(buf)
                .and_then(|b| b.get(..WAKE_READ_BYTES))
                .unwrap_or_else(|| panic!("buffer"));
            assert_eq!(Waker::count(bytes), Some(1));
        }
        assert_eq!(ev.in_flight(), 0);
    }
}
