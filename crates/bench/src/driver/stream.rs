//! `stream`: one bulk TCP stream, the ceiling a single peer's transfer can
//! reach over a path (iperf3's plain TCP test, reduced to what the bench
//! needs). The sender accepts connections and writes bytes until the
//! receiver closes or its time is up; the receiver connects (from a given
//! source address, so it can sit in the delay line's namespace), reads and
//! counts for a bounded time, and reports the rate over the whole run and
//! over its second half (after TCP's ramp-up).
//!
//! Both ends use the kernel's default socket buffers (autotuned, bounded by
//! `tcp_wmem` / `tcp_rmem`), as ringseed and the other seeders do, so the
//! ceiling is what one TCP connection on this machine's settings can do.
//!
//! Boundary: blocking sockets on plain threads; no protocol, no checks.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// Bytes per write and per read.
const CHUNK_BYTES: usize = 1 << 20;
/// Longest a receiver may run.
pub const STREAM_DURATION_MAX: Duration = Duration::from_secs(3600);
/// Longest wait in a blocking read or write (so time limits are seen).
const IO_TIMEOUT: Duration = Duration::from_millis(500);
/// Longest a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections a sender serves at once (one thread each).
pub const SENDER_CONNS_MAX: usize = 64;

/// What a receiver measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamOutcome {
    pub bytes: u64,
    pub wall: Duration,
    /// Bytes received in the second half of the run.
    pub second_half_bytes: u64,
}

impl StreamOutcome {
    /// MB (10^6 bytes) per second over the whole run.
    pub fn mb_s(&self) -> f64 {
        rate(self.bytes, self.wall)
    }

    /// MB per second over the second half.
    pub fn second_half_mb_s(&self) -> f64 {
        rate(self.second_half_bytes, self.wall / 2)
    }
}

fn rate(bytes: u64, wall: Duration) -> f64 {
    let s = wall.as_secs_f64();
    if s > 0.0 {
        bytes as f64 / 1e6 / s
    } else {
        0.0
    }
}

/// Accepts connections on `listen` and writes to each until it closes, for
/// `duration` in all (or until `stop`); returns the connections served.
pub fn run_sender(
    listen: SocketAddr,
    duration: Duration,
    stop: &AtomicBool,
) -> std::io::Result<u64> {
    let listener = TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + duration;
    let mut served = 0u64;
    std::thread::scope(|s| {
        let mut running = Vec::new();
        while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((sock, _)) => {
                    running.retain(|h: &std::thread::ScopedJoinHandle<'_, ()>| !h.is_finished());
                    if running.len() >= SENDER_CONNS_MAX {
                        let _ = sock.shutdown(Shutdown::Both);
                        continue;
                    }
                    served += 1;
                    running.push(s.spawn(move || send_until_closed(sock, deadline, stop)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(served)
    })
}

fn send_until_closed(mut sock: TcpStream, deadline: Instant, stop: &AtomicBool) {
    let chunk = vec![0x5au8; CHUNK_BYTES];
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_write_timeout(Some(IO_TIMEOUT));
    while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
        match sock.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = sock.shutdown(Shutdown::Both);
}

/// Connects to `target` (from `source` when given) and reads for `duration`.
pub fn run_receiver(
    target: SocketAddr,
    source: Option<std::net::IpAddr>,
    duration: Duration,
) -> std::io::Result<StreamOutcome> {
    if duration.is_zero() || duration > STREAM_DURATION_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "duration {duration:?} is out of range: expected up to {STREAM_DURATION_MAX:?}"
            ),
        ));
    }
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if let Some(ip) = source {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    socket.connect_timeout(&target.into(), CONNECT_TIMEOUT)?;
    let mut sock: TcpStream = socket.into();
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut buf = vec![0u8; CHUNK_BYTES];
    let start = Instant::now();
    let half = start + duration / 2;
    let end = start + duration;
    let (mut bytes, mut second_half_bytes) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                bytes += n as u64;
                if now >= half {
                    second_half_bytes += n as u64;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    let wall = start.elapsed().min(duration);
    let _ = sock.shutdown(Shutdown::Both);
    Ok(StreamOutcome {
        bytes,
        wall,
        second_half_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_over_loopback_moves_bytes_both_halves() {
        let addr: SocketAddr = "127.0.41.3:17403".parse().unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let sender = s.spawn(|| run_sender(addr, Duration::from_secs(5), &stop));
            std::thread::sleep(Duration::from_millis(200));
            let out = run_receiver(addr, None, Duration::from_millis(600)).unwrap();
            stop.store(true, Ordering::SeqCst);
            assert_eq!(sender.join().unwrap().unwrap(), 1);
            assert!(out.bytes > 10 * CHUNK_BYTES as u64, "{out:?}");
            assert!(
                out.second_half_bytes > 0 && out.second_half_bytes < out.bytes,
                "{out:?}"
            );
            assert!(out.mb_s() > 0.0 && out.second_half_mb_s() > 0.0);
        });
    }

    #[test]
    fn a_receiver_refuses_a_zero_duration() {
        let addr: SocketAddr = "127.0.41.4:17404".parse().unwrap();
        let e = run_receiver(addr, None, Duration::ZERO).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
    }
}
