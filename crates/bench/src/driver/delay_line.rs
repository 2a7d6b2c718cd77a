//! A userspace delay line between two TUN devices (issue 4): realistic
//! round-trip times for the swarm bench on a kernel without `sch_netem`.
//!
//! One TUN device lives in the root network namespace (the seeder's side),
//! the other in a namespace of the load generator; both are persistent
//! devices made by `benches/swarm/netns.sh`. Every IP packet the kernel
//! routes into one device is read here, held for a fixed time, and written
//! into the other device, where the other namespace's stack receives it.
//! Two threads, one per direction; each direction adds half the asked
//! round-trip delay.
//!
//! - [`DelayQueue`]: the pure part: a FIFO of packets with a due time,
//!   bounded in bytes and in packets, dropping at the tail when full (as a
//!   real queue does) and counting what it dropped.
//! - [`open_tun`], [`open_tun_in_netns`], [`run_delay_line`]: the IO part:
//!   attaching to the devices (`TUNSETIFF`, `IFF_TUN | IFF_NO_PI`), and the
//!   forwarding loops (non-blocking reads until `EAGAIN`, `ppoll` with a
//!   nanosecond timeout up to the next due packet).
//!
//! Limits: queue bytes ([`QUEUE_BYTES_DEFAULT`], at most
//! [`QUEUE_BYTES_MAX`]), queued packets ([`QUEUE_PACKETS_MAX`]), packet
//! size ([`PACKET_BYTES_MAX`]), delay ([`DELAY_RTT_MAX`]), reads per round
//! ([`READS_PER_ROUND_MAX`]), kept spare buffers ([`SPARE_BUFFERS_MAX`]).

use std::collections::VecDeque;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;

use super::stop_requested;

/// Default bound of one direction's queue, in bytes.
pub const QUEUE_BYTES_DEFAULT: usize = 64 << 20;
/// Largest bound of one direction's queue, in bytes.
pub const QUEUE_BYTES_MAX: usize = 4 << 30;
/// Smallest bound of one direction's queue, in bytes (one largest packet).
pub const QUEUE_BYTES_MIN: usize = PACKET_BYTES_MAX;
/// Most packets one direction holds at once.
pub const QUEUE_PACKETS_MAX: usize = 1 << 20;
/// Largest packet read from a device, in bytes (TUN MTU 65 000 fits).
pub const PACKET_BYTES_MAX: usize = 65_536;
/// Largest round-trip delay accepted.
pub const DELAY_RTT_MAX: Duration = Duration::from_secs(10);
/// Longest wait of a forwarding loop (so a stop request is seen).
const WAIT_MAX: Duration = Duration::from_millis(50);
/// Packets read in a row before due packets are written again.
pub const READS_PER_ROUND_MAX: usize = 256;
/// Buffers a direction keeps for reuse.
pub const SPARE_BUFFERS_MAX: usize = 4096;
/// Longest device name the kernel takes (IFNAMSIZ - 1), in bytes.
const DEVICE_NAME_BYTES_MAX: usize = 15;
/// Longest namespace name accepted, in bytes.
const NETNS_NAME_BYTES_MAX: usize = 64;
/// Where `ip netns` keeps its namespaces.
const NETNS_DIR: &str = "/var/run/netns";
/// `TUNSETIFF`: `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// Why the delay line could not start or stopped.
#[derive(Debug, Error)]
pub enum DelayLineError {
    #[error("{what} {found} is out of range: expected {min} to {max}")]
    Range {
        what: &'static str,
        found: u64,
        min: u64,
        max: u64,
    },
    #[error("{what} {name:?} is not valid: {why}")]
    Name {
        what: &'static str,
        name: String,
        why: &'static str,
    },
    #[error("cannot open {path}: {error}")]
    Open { path: String, error: std::io::Error },
    #[error("cannot enter network namespace {netns}: {error}")]
    Netns {
        netns: String,
        error: std::io::Error,
    },
    #[error("cannot attach to TUN device {device} (made with `ip tuntap add mode tun`?): {error}")]
    Attach {
        device: String,
        error: std::io::Error,
    },
    #[error("{what} on {device}: {error}")]
    Io {
        what: &'static str,
        device: String,
        error: std::io::Error,
    },
    #[error("cannot start a thread: {0}")]
    Spawn(std::io::Error),
    #[error("no network device {device} in {netns} (make it with `ip tuntap add mode tun name {device}`)")]
    NoDevice { device: String, netns: String },
    #[error("a delay line thread panicked")]
    ThreadPanicked,
}

/// What one queue saw. `*_in` counts every packet offered, dropped ones
/// included; `*_out` the ones that came out due.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Refused because the queue was full (tail drop).
    pub packets_dropped: u64,
    pub bytes_dropped: u64,
}

/// A FIFO of packets, each due a fixed delay after it was pushed; bounded
/// in bytes and packets. Time is the caller's `now`.
#[derive(Debug)]
pub struct DelayQueue {
    delay: Duration,
    bytes_max: usize,
    packets_max: usize,
    packets: VecDeque<(Duration, Vec<u8>)>,
    bytes: usize,
    last_due: Duration,
    stats: QueueStats,
}

impl DelayQueue {
    /// A queue delaying every packet by `delay` (at most half of
    /// [`DELAY_RTT_MAX`]), holding at most `bytes_max` bytes
    /// ([`QUEUE_BYTES_MIN`] to [`QUEUE_BYTES_MAX`]) and `packets_max`
    /// packets (1 to [`QUEUE_PACKETS_MAX`]).
    pub fn new(
        delay: Duration,
        bytes_max: usize,
        packets_max: usize,
    ) -> Result<Self, DelayLineError> {
        check_range(
            "one-way delay (us)",
            delay.as_micros().min(u128::from(u64::MAX)) as u64,
            0,
            (DELAY_RTT_MAX / 2).as_micros() as u64,
        )?;
        check_range(
            "queue bytes",
            bytes_max as u64,
            QUEUE_BYTES_MIN as u64,
            QUEUE_BYTES_MAX as u64,
        )?;
        check_range(
            "queue packets",
            packets_max as u64,
            1,
            QUEUE_PACKETS_MAX as u64,
        )?;
        Ok(Self {
            delay,
            bytes_max,
            packets_max,
            packets: VecDeque::new(),
            bytes: 0,
            last_due: Duration::ZERO,
            stats: QueueStats::default(),
        })
    }

    /// Queues `packet`, read at `now`. When it does not fit (bytes or
    /// packets), it is dropped, counted, and handed back for reuse.
    pub fn push(&mut self, now: Duration, packet: Vec<u8>) -> Result<(), Vec<u8>> {
        let len = packet.len();
        self.stats.packets_in += 1;
        self.stats.bytes_in += len as u64;
        let fits = self.packets.len() < self.packets_max
            && self
                .bytes
                .checked_add(len)
                .is_some_and(|b| b <= self.bytes_max);
        if !fits {
            self.stats.packets_dropped += 1;
            self.stats.bytes_dropped += len as u64;
            return Err(packet);
        }
        // Never due before the packet ahead of it: the queue stays FIFO
        // even if a caller's clock stepped back.
        let due = now.saturating_add(self.delay).max(self.last_due);
        self.last_due = due;
        self.bytes += len;
        self.packets.push_back((due, packet));
        Ok(())
    }

    /// The oldest packet if it is due at `now`.
    pub fn pop_due(&mut self, now: Duration) -> Option<Vec<u8>> {
        let (due, _) = self.packets.front()?;
        if *due > now {
            return None;
        }
        let (_, packet) = self.packets.pop_front()?;
        self.bytes = self.bytes.saturating_sub(packet.len());
        self.stats.packets_out += 1;
        self.stats.bytes_out += packet.len() as u64;
        Some(packet)
    }

    /// When the oldest packet is due; `None` when the queue is empty.
    pub fn next_due(&self) -> Option<Duration> {
        self.packets.front().map(|(due, _)| *due)
    }

    /// Packets queued.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn stats(&self) -> QueueStats {
        self.stats
    }
}

fn check_range(what: &'static str, found: u64, min: u64, max: u64) -> Result<(), DelayLineError> {
    if (min..=max).contains(&found) {
        Ok(())
    } else {
        Err(DelayLineError::Range {
            what,
            found,
            min,
            max,
        })
    }
}

/// The delay each direction adds for a round-trip delay `rtt`: half of it.
pub fn one_way_delay(rtt: Duration) -> Duration {
    rtt / 2
}

/// Checks a network device name as the kernel would take it.
pub fn check_device_name(name: &str) -> Result<(), DelayLineError> {
    let bad = |why| {
        Err(DelayLineError::Name {
            what: "TUN device name",
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > DEVICE_NAME_BYTES_MAX {
        return bad("longer than 15 bytes");
    }
    if name == "." || name == ".." {
        return bad("reserved");
    }
    if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
    {
        return bad("contains '/', ':', whitespace or NUL");
    }
    Ok(())
}

/// Checks a namespace name (a file name under /var/run/netns).
pub fn check_netns_name(name: &str) -> Result<(), DelayLineError> {
    let bad = |why| {
        Err(DelayLineError::Name {
            what: "network namespace name",
            name: name.to_owned(),
            why,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > NETNS_NAME_BYTES_MAX {
        return bad("longer than 64 bytes");
    }
    if name.starts_with('.') {
        return bad("starts with '.'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return bad("only letters, digits, '-', '_' and '.' are allowed");
    }
    Ok(())
}

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags.
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    pad: [u8; 22],
}

/// Attaches to the persistent TUN device `name` of the calling thread's
/// network namespace (`netns` names it in errors); the fd is non-blocking.
/// A missing device is an error: TUNSETIFF would make a transient one.
pub fn open_tun(name: &str, netns: &str) -> Result<OwnedFd, DelayLineError> {
    check_device_name(name)?;
    let cname = CString::new(name).map_err(|_| DelayLineError::Name {
        what: "TUN device name",
        name: name.into(),
        why: "contains NUL",
    })?;
    // SAFETY: a valid NUL-terminated name; 0 means no such device.
    if unsafe { libc::if_nametoindex(cname.as_ptr()) } == 0 {
        return Err(DelayLineError::NoDevice {
            device: name.into(),
            netns: netns.into(),
        });
    }
    let path = CString::new("/dev/net/tun").map_err(|_| DelayLineError::Name {
        what: "path",
        name: "/dev/net/tun".into(),
        why: "contains NUL",
    })?;
    // SAFETY: a valid NUL-terminated path; the result is checked.
    let raw = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if raw < 0 {
        return Err(DelayLineError::Open {
            path: "/dev/net/tun".into(),
            error: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: `raw` was just opened and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = IfReq {
        name: [0; 16],
        flags: IFF_TUN | IFF_NO_PI,
        pad: [0; 22],
    };
    for (dst, src) in req.name.iter_mut().zip(name.bytes()) {
        *dst = src;
    }
    // SAFETY: TUNSETIFF reads (and may write) one `struct ifreq`, which
    // `IfReq` lays out with the same size (40 bytes).
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(DelayLineError::Attach {
            device: name.into(),
            error: std::io::Error::last_os_error(),
        });
    }
    set_nonblocking(fd.as_raw_fd()).map_err(|error| DelayLineError::Io {
        what: "fcntl O_NONBLOCK",
        device: name.into(),
        error,
    })?;
    Ok(fd)
}

fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: plain fcntl calls on an fd we own; results are checked.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Attaches to the TUN device `name` of network namespace `netns` (as made
/// by `ip netns add`): a short-lived thread enters the namespace and opens
/// the device; the fd stays bound to that device afterwards.
pub fn open_tun_in_netns(netns: &str, name: &str) -> Result<OwnedFd, DelayLineError> {
    check_netns_name(netns)?;
    check_device_name(name)?;
    let path = format!("{NETNS_DIR}/{netns}");
    let ns = File::open(&path).map_err(|error| DelayLineError::Open {
        path: path.clone(),
        error,
    })?;
    let (netns, name) = (netns.to_owned(), name.to_owned());
    std::thread::Builder::new()
        .name("delay-netns".into())
        .spawn(move || {
            // SAFETY: setns on an open namespace fd; it changes only this
            // thread's network namespace, and the thread ends right after.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc < 0 {
                return Err(DelayLineError::Netns {
                    netns,
                    error: std::io::Error::last_os_error(),
                });
            }
            open_tun(&name, &format!("network namespace {netns}"))
        })
        .map_err(DelayLineError::Spawn)?
        .join()
        .unwrap_or(Err(DelayLineError::ThreadPanicked))
}

/// What a delay line is asked to do.
#[derive(Debug, Clone)]
pub struct DelayLineOptions {
    /// The TUN device in this process's namespace (the seeder's side).
    pub outer_tun: String,
    /// The load generator's namespace (`/var/run/netns/NAME`).
    pub netns: String,
    /// The TUN device inside `netns`.
    pub inner_tun: String,
    /// Added to the round-trip time: half on each direction, up to
    /// [`DELAY_RTT_MAX`].
    pub delay_rtt: Duration,
    /// Bound of each direction's queue, in bytes.
    pub queue_bytes: usize,
}

/// What one direction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    pub queue: QueueStats,
    /// Writes the receiving device refused (the packet is lost).
    pub write_errors: u64,
    /// Packets still queued at the stop (not delivered).
    pub left_in_queue: u64,
}

/// What a delay line run did, per direction.
#[derive(Debug, Clone, Copy)]
pub struct DelayLineOutcome {
    pub wall: Duration,
    /// Root namespace to the load generator's (the seeder's data).
    pub inward: DirectionStats,
    /// The load generator's namespace to the root one (requests, ACKs).
    pub outward: DirectionStats,
}

/// Attaches to both devices, sets `ready`, and forwards until a stop signal
/// ([`super::install_stop_signals`]) or `stop` is set.
pub fn run_delay_line(
    opts: &DelayLineOptions,
    ready: &AtomicBool,
    stop: &AtomicBool,
) -> Result<DelayLineOutcome, DelayLineError> {
    check_range(
        "round-trip delay (ms)",
        opts.delay_rtt.as_millis().min(u128::from(u64::MAX)) as u64,
        0,
        DELAY_RTT_MAX.as_millis() as u64,
    )?;
    let one_way = one_way_delay(opts.delay_rtt);
    // Both queues are checked before anything is opened.
    let queue = || DelayQueue::new(one_way, opts.queue_bytes, QUEUE_PACKETS_MAX);
    let (q_in, q_out) = (queue()?, queue()?);
    let inner = open_tun_in_netns(&opts.netns, &opts.inner_tun)?;
    let outer = open_tun(&opts.outer_tun, "this network namespace")?;
    let start = Instant::now();
    ready.store(true, Ordering::SeqCst);
    let (inward, outward) = std::thread::scope(|s| {
        let spawn = |name: &str, src: RawFd, dst: RawFd, dst_name: &str, q: DelayQueue| {
            let dst_name = dst_name.to_owned();
            std::thread::Builder::new()
                .name(name.into())
                .spawn_scoped(s, move || forward(src, dst, &dst_name, q, start, stop))
        };
        let a = spawn(
            "delay-in",
            outer.as_raw_fd(),
            inner.as_raw_fd(),
            &opts.inner_tun,
            q_in,
        );
        let b = spawn(
            "delay-out",
            inner.as_raw_fd(),
            outer.as_raw_fd(),
            &opts.outer_tun,
            q_out,
        );
        let join = |h: std::io::Result<std::thread::ScopedJoinHandle<'_, _>>| match h {
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                Err(DelayLineError::Spawn(e))
            }
            Ok(h) => h.join().unwrap_or(Err(DelayLineError::ThreadPanicked)),
        };
        let a = join(a);
        let b = join(b);
        (a, b)
    });
    Ok(DelayLineOutcome {
        wall: start.elapsed(),
        inward: inward?,
        outward: outward?,
    })
}

/// One direction: reads packets from `src`, holds them in `q`, writes them
/// to `dst` when due.
fn forward(
    src: RawFd,
    dst: RawFd,
    dst_name: &str,
    mut q: DelayQueue,
    start: Instant,
    stop: &AtomicBool,
) -> Result<DirectionStats, DelayLineError> {
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut write_errors = 0u64;
    let mut write_due = |q: &mut DelayQueue, spare: &mut Vec<Vec<u8>>, now: Duration| {
        while let Some(mut p) = q.pop_due(now) {
            // SAFETY: writes `p.len()` initialised bytes from `p`.
            let n = unsafe { libc::write(dst, p.as_ptr().cast(), p.len()) };
            if n < 0 || n as usize != p.len() {
                // A TUN write takes the whole packet or refuses it; a
                // refused packet is lost, as on a wire.
                write_errors += 1;
            }
            if spare.len() < SPARE_BUFFERS_MAX {
                p.clear();
                spare.push(p);
            }
        }
    };
    loop {
        if stop.load(Ordering::Relaxed) || stop_requested() {
            stop.store(true, Ordering::SeqCst);
            break;
        }
        let now = start.elapsed();
        write_due(&mut q, &mut spare, now);
        let mut drained = false;
        for _ in 0..READS_PER_ROUND_MAX {
            let mut buf = spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(PACKET_BYTES_MAX));
            buf.clear();
            buf.reserve(PACKET_BYTES_MAX);
            // SAFETY: reads at most `capacity` bytes into the buffer's
            // allocation; only the `n` bytes the kernel wrote are exposed.
            let n = unsafe { libc::read(src, buf.as_mut_ptr().cast(), buf.capacity()) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                spare.push(buf);
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => {
                        drained = true;
                        break;
                    }
                    Some(libc::EINTR) => continue,
                    _ => {
                        stop.store(true, Ordering::SeqCst);
                        return Err(DelayLineError::Io {
                            what: "read",
                            device: format!("the device writing to {dst_name}"),
                            error: e,
                        });
                    }
                }
            }
            // SAFETY: the kernel initialised the first `n` bytes (n >= 0,
            // n <= capacity).
            unsafe { buf.set_len((n as usize).min(buf.capacity())) };
            if let Err(back) = q.push(start.elapsed(), buf) {
                spare.push(back);
            }
        }
        let now = start.elapsed();
        write_due(&mut q, &mut spare, now);
        if !drained {
            continue;
        }
        let wait = q
            .next_due()
            .map(|due| due.saturating_sub(now))
            .unwrap_or(WAIT_MAX)
            .min(WAIT_MAX);
        if wait.is_zero() {
            continue;
        }
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        let mut pfd = libc::pollfd {
            fd: src,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd and timespec; the result only says
        // whether to read again, which the loop does anyway.
        unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    }
    Ok(DirectionStats {
        queue: q.stats(),
        write_errors,
        left_in_queue: q.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn q(delay: Duration) -> DelayQueue {
        DelayQueue::new(delay, QUEUE_BYTES_MIN * 2, 4).unwrap()
    }

    #[test]
    fn packets_come_out_after_the_delay_in_order() {
        let mut q = q(10 * MS);
        assert_eq!(q.next_due(), None);
        q.push(Duration::ZERO, vec![1]).unwrap();
        q.push(3 * MS, vec![2, 2]).unwrap();
        assert_eq!((q.len(), q.bytes()), (2, 3));
        assert_eq!(q.next_due(), Some(10 * MS));
        assert_eq!(q.pop_due(9 * MS), None);
        assert_eq!(q.pop_due(10 * MS), Some(vec![1]));
        assert_eq!(q.next_due(), Some(13 * MS));
        assert_eq!(q.pop_due(12 * MS), None);
        assert_eq!(q.pop_due(100 * MS), Some(vec![2, 2]));
        assert_eq!(q.pop_due(100 * MS), None);
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
        let s = q.stats();
        assert_eq!((s.packets_in, s.bytes_in), (2, 3));
        assert_eq!((s.packets_out, s.bytes_out), (2, 3));
        assert_eq!((s.packets_dropped, s.bytes_dropped), (0, 0));
    }

    #[test]
    fn zero_delay_is_due_at_once() {
        let mut q = q(Duration::ZERO);
        q.push(5 * MS, vec![7]).unwrap();
        assert_eq!(q.next_due(), Some(5 * MS));
        assert_eq!(q.pop_due(5 * MS), Some(vec![7]));
    }

    #[test]
    fn a_clock_stepping_back_keeps_fifo_order() {
        let mut q = q(10 * MS);
        q.push(20 * MS, vec![1]).unwrap();
        q.push(5 * MS, vec![2]).unwrap();
        assert_eq!(q.pop_due(29 * MS), None);
        assert_eq!(q.pop_due(30 * MS), Some(vec![1]));
        assert_eq!(q.pop_due(30 * MS), Some(vec![2]));
    }

    #[test]
    fn a_full_queue_drops_at_the_tail_by_packets() {
        let mut q = q(MS);
        for i in 0..4u8 {
            q.push(Duration::ZERO, vec![i]).unwrap();
        }
        assert_eq!(q.push(Duration::ZERO, vec![9, 9]), Err(vec![9, 9]));
        let s = q.stats();
        assert_eq!(
            (s.packets_in, s.packets_dropped, s.bytes_dropped),
            (5, 1, 2)
        );
        assert_eq!(q.pop_due(MS), Some(vec![0]));
        q.push(Duration::ZERO, vec![4]).unwrap();
        assert_eq!(q.len(), 4);
    }

    #[test]
    fn a_full_queue_drops_at_the_tail_by_bytes() {
        let mut q = q(MS);
        let big = vec![0u8; QUEUE_BYTES_MIN];
        q.push(Duration::ZERO, big.clone()).unwrap();
        q.push(Duration::ZERO, vec![1; QUEUE_BYTES_MIN - 1])
            .unwrap();
        assert_eq!(q.bytes(), 2 * QUEUE_BYTES_MIN - 1);
        assert!(q.push(Duration::ZERO, vec![1, 2]).is_err());
        q.push(Duration::ZERO, vec![3]).unwrap();
        assert_eq!(q.bytes(), 2 * QUEUE_BYTES_MIN);
        assert!(q.push(Duration::ZERO, vec![]).is_ok());
        assert_eq!(q.stats().packets_dropped, 1);
        assert_eq!(q.pop_due(MS).map(|p| p.len()), Some(QUEUE_BYTES_MIN));
        assert_eq!(q.bytes(), QUEUE_BYTES_MIN);
    }

    #[test]
    fn bounds_are_checked() {
        let bad = [
            DelayQueue::new(DELAY_RTT_MAX, QUEUE_BYTES_DEFAULT, 1),
            DelayQueue::new(MS, QUEUE_BYTES_MIN - 1, 1),
            DelayQueue::new(MS, QUEUE_BYTES_MAX + 1, 1),
            DelayQueue::new(MS, QUEUE_BYTES_DEFAULT, 0),
            DelayQueue::new(MS, QUEUE_BYTES_DEFAULT, QUEUE_PACKETS_MAX + 1),
        ];
        for r in bad {
            assert!(matches!(r, Err(DelayLineError::Range { .. })), "{r:?}");
        }
        assert!(DelayQueue::new(DELAY_RTT_MAX / 2, QUEUE_BYTES_MAX, QUEUE_PACKETS_MAX).is_ok());
        assert_eq!(one_way_delay(20 * MS), 10 * MS);
        assert_eq!(one_way_delay(MS), Duration::from_micros(500));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_device_name("delay0-o").is_ok());
        assert!(check_device_name("abcdefghijklmno").is_ok());
        for n in ["", "abcdefghijklmnop", "a/b", "a b", "a:b", ".", ".."] {
            assert!(
                matches!(check_device_name(n), Err(DelayLineError::Name { .. })),
                "{n:?}"
            );
        }
        assert!(check_netns_name("delay0").is_ok());
        for n in ["", ".hidden", "a/b", "../x", "a b", &"x".repeat(65)] {
            assert!(
                matches!(check_netns_name(n), Err(DelayLineError::Name { .. })),
                "{n:?}"
            );
        }
    }

    #[test]
    fn opening_checks_names_and_refuses_a_missing_device() {
        assert!(matches!(
            open_tun("a/b", "here"),
            Err(DelayLineError::Name { .. })
        ));
        assert!(matches!(
            open_tun_in_netns("../etc", "x"),
            Err(DelayLineError::Name { .. })
        ));
        assert!(matches!(
            open_tun_in_netns("delay-x", ""),
            Err(DelayLineError::Name { .. })
        ));
        // No device of that name exists: refused before TUNSETIFF, which
        // would make one.
        match open_tun("rsdl-none-9z", "here") {
            Err(DelayLineError::NoDevice { device, netns }) => {
                assert_eq!((device.as_str(), netns.as_str()), ("rsdl-none-9z", "here"));
            }
            other => panic!("expected NoDevice, got {other:?}"),
        }
        assert!(matches!(
            open_tun_in_netns("rsdl-no-such-netns", "x"),
            Err(DelayLineError::Open { .. })
        ));
    }

    #[test]
    fn run_refuses_bad_options_before_opening_anything() {
        let opts = DelayLineOptions {
            outer_tun: "x".into(),
            netns: "delay-none".into(),
            inner_tun: "y".into(),
            delay_rtt: DELAY_RTT_MAX + MS,
            queue_bytes: QUEUE_BYTES_DEFAULT,
        };
        let (ready, stop) = (AtomicBool::new(false), AtomicBool::new(false));
        assert!(matches!(
            run_delay_line(&opts, &ready, &stop),
            Err(DelayLineError::Range { .. })
        ));
        let opts = DelayLineOptions {
            delay_rtt: MS,
            queue_bytes: 1,
            ..opts
        };
        assert!(matches!(
            run_delay_line(&opts, &ready, &stop),
            Err(DelayLineError::Range { .. })
        ));
        assert!(!ready.load(Ordering::SeqCst));
    }
}
