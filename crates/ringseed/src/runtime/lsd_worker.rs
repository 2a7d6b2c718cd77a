//! The local service discovery worker (BEP 14): one thread with one IPv4 UDP
//! socket in the 239.192.152.143:6771 group, driving the sans-IO
//! [`LsdAnnouncer`] (`ringseed_proto::lsd`): it multicasts what the announcer
//! says when it says, and hands the peers of received messages to the
//! session's callback.
//!
//! Boundary: which torrents to announce (not private ones, and only when LSD
//! is on) is the session's choice, through [`LsdHandle::announce`] and
//! [`LsdHandle::forget`]; what to send and when, and what a datagram means,
//! is the announcer's. This file owns the socket, the thread and the queue.
//!
//! Rules, decided on purpose:
//! - The socket is made here with socket2 (`sockets.rs` has no multicast
//!   socket yet): `SO_REUSEADDR` (other LSD clients on the host bind the same
//!   port), bound to the group address and port (so it receives only the
//!   group's datagrams, whatever else the host joined), `SO_BINDTODEVICE` to
//!   `--interface` and the group joined on that interface, or on
//!   `--bind-address` (which is also the multicast source, `IP_MULTICAST_IF`).
//!   TTL 1 (the LAN only); multicast loop on, so other clients on this host
//!   hear us (our own messages come back and the announcer drops them by
//!   cookie). An IPv6 `--bind-address` without `--interface` is refused, as
//!   `sockets.rs` refuses other-family sockets.
//! - Commands go through a bounded queue of [`COMMANDS_MAX`]; a full queue
//!   or a stopped worker is an error to the caller, never a wait.
//! - The thread wakes at least every [`POLL_INTERVAL`] (for commands and
//!   shutdown); [`LsdWorker::shutdown`] returns within about that.
//! - Send errors (no route, interface down) are logged at debug and the
//!   message is skipped: the announcer announces again in 5 minutes.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::lsd::{
    LsdAnnouncer, LsdDropped, LsdFamily, LSD_IPV4_GROUP, LSD_PORT, LSD_RECEIVE_BYTES_MAX,
};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::rng::Rng;
use crate::runtime::sockets::{self, BindOptions, SocketError};
use crate::InfoHash;

/// Commands (announce, forget) queued for the thread at most.
pub const COMMANDS_MAX: usize = 4096;
/// Longest the thread sleeps before looking at its queue again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Multicast TTL: the local network only.
pub const MULTICAST_TTL: u32 = 1;

/// How the worker runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsdWorkerConfig {
    /// `--interface` / `--bind-address`.
    pub bind: BindOptions,
    /// Our BitTorrent listen port, announced in `Port:`.
    pub listen_port: u16,
    /// Seeds the cookie.
    pub rng_seed: u64,
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum LsdError {
    #[error("LSD: {0}")]
    Bind(#[from] SocketError),
    #[error("LSD listen port 0: expected the BitTorrent port to announce")]
    NoListenPort,
    #[error("LSD: cannot start the thread: {0}")]
    Spawn(#[source] io::Error),
}

/// Why a command was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LsdCommandError {
    #[error("LSD command queue is full ({COMMANDS_MAX} commands)")]
    Full,
    #[error("LSD worker has stopped")]
    Stopped,
}

enum Command {
    Announce(InfoHash),
    Forget(InfoHash),
}

/// A cloneable way to tell the worker which torrents to announce.
#[derive(Debug, Clone)]
pub struct LsdHandle {
    tx: Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Announce(ih) => write!(f, "Announce({})", ih.to_hex()),
            Command::Forget(ih) => write!(f, "Forget({})", ih.to_hex()),
        }
    }
}

impl LsdHandle {
    /// Starts announcing `info_hash` (at once, then every 5 minutes) and
    /// reporting LAN peers for it.
    pub fn announce(&self, info_hash: InfoHash) -> Result<(), LsdCommandError> {
        self.send(Command::Announce(info_hash))
    }

    /// Stops announcing `info_hash` and reporting peers for it.
    pub fn forget(&self, info_hash: InfoHash) -> Result<(), LsdCommandError> {
        self.send(Command::Forget(info_hash))
    }

    fn send(&self, c: Command) -> Result<(), LsdCommandError> {
        self.tx.try_send(c).map_err(|e| match e {
            TrySendError::Full(_) => LsdCommandError::Full,
            TrySendError::Disconnected(_) => LsdCommandError::Stopped,
        })
    }
}

/// The running worker.
pub struct LsdWorker {
    handle: LsdHandle,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    local: Option<SocketAddr>,
}

/// Called with each peer learnt: (torrent, address to dial).
pub type OnPeers = Box<dyn Fn(InfoHash, SocketAddr) + Send>;

impl LsdWorker {
    /// Opens the socket, joins the group and starts the thread.
    pub fn start(config: LsdWorkerConfig, on_peers: OnPeers) -> Result<LsdWorker, LsdError> {
        if config.listen_port == 0 {
            return Err(LsdError::NoListenPort);
        }
        let group = SocketAddrV4::new(LSD_IPV4_GROUP, LSD_PORT);
        let socket =
            sockets::multicast_udp_socket(group, MULTICAST_TTL, POLL_INTERVAL, &config.bind)?;
        let local = socket.local_addr().ok();
        let (tx, rx) = bounded(COMMANDS_MAX);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let mut rng = Rng::new(config.rng_seed);
        let announcer = LsdAnnouncer::new(LsdFamily::V4, config.listen_port, &mut rng);
        let thread = thread::Builder::new()
            .name("lsd".into())
            .spawn(move || {
                run(
                    socket,
                    SocketAddr::V4(group),
                    announcer,
                    rx,
                    thread_stop,
                    on_peers,
                )
            })
            .map_err(LsdError::Spawn)?;
        Ok(LsdWorker {
            handle: LsdHandle { tx },
            stop,
            thread: Some(thread),
            local,
        })
    }

    /// A handle for announce/forget commands.
    pub fn handle(&self) -> LsdHandle {
        self.handle.clone()
    }

    /// The socket's local address (the group and port).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// Stops the thread and closes the socket (within about [`POLL_INTERVAL`]).
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::warn!("LSD thread panicked");
            }
        }
    }
}

impl Drop for LsdWorker {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn run(
    socket: UdpSocket,
    group: SocketAddr,
    mut announcer: LsdAnnouncer,
    rx: Receiver<Command>,
    stop: Arc<AtomicBool>,
    on_peers: OnPeers,
) {
    let start = Instant::now();
    let mut buf = vec![0u8; LSD_RECEIVE_BYTES_MAX + 1];
    while !stop.load(Ordering::Relaxed) {
        let now = start.elapsed();
        drain_commands(&rx, &mut announcer, now);
        if let Some(bytes) = announcer.poll_transmit(now) {
            if let Err(e) = socket.send_to(&bytes, group) {
                tracing::debug!("LSD: send to {group}: {e}");
            }
        }
        let wait = announcer
            .next_wakeup()
            .map_or(POLL_INTERVAL, |t| t.saturating_sub(start.elapsed()))
            .clamp(Duration::from_millis(1), POLL_INTERVAL);
        // On failure the previous timeout (at most POLL_INTERVAL) stays.
        let _ = socket.set_read_timeout(Some(wait));
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let data = buf.get(..n).unwrap_or_default();
                // Commands queued before the datagram came apply to it: a
                // torrent announced a moment ago gets its peers.
                let now = start.elapsed();
                drain_commands(&rx, &mut announcer, now);
                match announcer.handle_datagram(now, from, data) {
                    Ok(peers) => {
                        for p in peers {
                            on_peers(p.info_hash, p.addr);
                        }
                    }
                    Err(LsdDropped::OwnMessage) => {}
                    Err(e) => tracing::debug!("LSD: datagram from {from} dropped: {e}"),
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                tracing::debug!("LSD: receive: {e}");
                thread::sleep(POLL_INTERVAL);
            }
        }
    }
}

/// Applies the queued commands (at most [`COMMANDS_MAX`] at a time).
fn drain_commands(rx: &Receiver<Command>, announcer: &mut LsdAnnouncer, now: Duration) {
    for _ in 0..COMMANDS_MAX {
        match rx.try_recv() {
            Ok(Command::Announce(ih)) => {
                if let Err(e) = announcer.announce(ih, now) {
                    tracing::warn!("LSD: {e}");
                }
            }
            Ok(Command::Forget(ih)) => announcer.forget(ih),
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    //! These tests multicast, so each runs in a network namespace of its own
    //! where `lo` is the only interface (see `in_own_netns`): nothing can
    //! leave the machine.
    use super::*;
    use std::net::IpAddr;
    use std::sync::mpsc;

    /// Longest any wait in these tests.
    const WAIT_MAX: Duration = Duration::from_secs(5);

    /// Runs `body` on a thread of its own in a new network namespace whose
    /// only interface is `lo` (up, multicast on, a route for the LSD
    /// group): nothing these tests multicast can leave the machine, and
    /// the host's interfaces do not matter. Needs CAP_SYS_ADMIN (root, as
    /// CI runs): without it the test fails and says so.
    fn in_own_netns(body: impl FnOnce() + Send + 'static) {
        let t = thread::spawn(move || {
            // SAFETY: unshare takes flags only; it moves this thread (and
            // the threads and processes it starts from now on) into a new
            // network namespace.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "a network namespace for the multicast tests needs root (CAP_SYS_ADMIN): {}",
                io::Error::last_os_error()
            );
            for args in [
                &["link", "set", "lo", "up"][..],
                &["link", "set", "lo", "multicast", "on"][..],
                &[
                    "route",
                    "add",
                    "239.0.0.0/8",
                    "dev",
                    "lo",
                    "src",
                    "127.0.0.1",
                ][..],
            ] {
                let st = std::process::Command::new("ip")
                    .args(args)
                    .status()
                    .unwrap_or_else(|e| panic!("`ip` (iproute2) is needed: {e}"));
                assert!(st.success(), "ip {args:?}: {st}");
            }
            body();
        });
        if let Err(panic) = t.join() {
            std::panic::resume_unwind(panic);
        }
    }

    fn worker(
        port: u16,
        seed: u64,
        address: Option<IpAddr>,
    ) -> (LsdWorker, mpsc::Receiver<(InfoHash, SocketAddr)>) {
        worker_on(port, seed, None, address)
    }

    fn worker_on(
        port: u16,
        seed: u64,
        interface: Option<&str>,
        address: Option<IpAddr>,
    ) -> (LsdWorker, mpsc::Receiver<(InfoHash, SocketAddr)>) {
        let (tx, rx) = mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let config = LsdWorkerConfig {
            bind: BindOptions {
                interface: interface.map(str::to_owned),
                address,
            },
            listen_port: port,
            rng_seed: seed,
        };
        let w = LsdWorker::start(
            config,
            Box::new(move |ih, addr| {
                if let Ok(tx) = tx.lock() {
                    let _ = tx.send((ih, addr));
                }
            }),
        )
        .unwrap();
        (w, rx)
    }

    /// `listener` announces `ih`, then (once its thread has surely taken
    /// the command) `sender` does: `sender`'s first message for `ih` then
    /// reaches a `listener` that knows `ih`, with no race.
    fn meet(listener: &LsdWorker, sender: &LsdWorker, ih: InfoHash) {
        listener.handle().announce(ih).unwrap();
        thread::sleep(POLL_INTERVAL * 3);
        sender.handle().announce(ih).unwrap();
    }

    #[test]
    fn two_workers_find_each_other_and_not_themselves() {
        in_own_netns(|| {
            let (ih, ih2, other) = (
                InfoHash([0x13; 20]),
                InfoHash([0x16; 20]),
                InfoHash([0x14; 20]),
            );
            let a_ip = IpAddr::from([127, 0, 132, 1]);
            let b_ip = IpAddr::from([127, 0, 132, 2]);
            let (a, a_rx) = worker(7001, 1, Some(a_ip));
            let (b, b_rx) = worker(7002, 2, Some(b_ip));
            assert_eq!(
                a.local_addr(),
                Some("239.192.152.143:6771".parse().unwrap())
            );
            b.handle().announce(other).unwrap();
            meet(&a, &b, ih);
            assert_eq!(
                a_rx.recv_timeout(WAIT_MAX),
                Ok((ih, SocketAddr::new(b_ip, 7002)))
            );
            meet(&b, &a, ih2);
            assert_eq!(
                b_rx.recv_timeout(WAIT_MAX),
                Ok((ih2, SocketAddr::new(a_ip, 7001)))
            );
            // a never hears of `other` (it does not announce it), and neither
            // hears itself.
            thread::sleep(Duration::from_millis(300));
            assert!(a_rx
                .try_iter()
                .all(|(h, addr)| h != other && addr.port() == 7002));
            assert!(b_rx.try_iter().all(|(_, addr)| addr.port() == 7001));
            a.shutdown();
            let t = Instant::now();
            b.shutdown();
            assert!(t.elapsed() < POLL_INTERVAL * 5);
        });
    }

    #[test]
    fn interface_pinned_worker_hears_and_is_heard() {
        in_own_netns(|| {
            let (ih, ih2) = (InfoHash([0x15; 20]), InfoHash([0x17; 20]));
            let (a, a_rx) = worker_on(7004, 4, Some("lo"), None);
            let b_ip = IpAddr::from([127, 0, 132, 3]);
            let (b, b_rx) = worker(7005, 5, Some(b_ip));
            meet(&a, &b, ih);
            assert_eq!(
                a_rx.recv_timeout(WAIT_MAX),
                Ok((ih, SocketAddr::new(b_ip, 7005)))
            );
            meet(&b, &a, ih2);
            let (got, from) = b_rx.recv_timeout(WAIT_MAX).expect("b hears a");
            assert_eq!((got, from.port()), (ih2, 7004));
            assert!(from.ip().is_loopback(), "{from}");
            a.shutdown();
            b.shutdown();
        });
    }

    #[test]
    fn commands_after_shutdown_say_stopped() {
        in_own_netns(|| {
            let (a, _rx) = worker(7003, 3, None);
            let h = a.handle();
            a.shutdown();
            assert_eq!(h.announce(InfoHash([1; 20])), Err(LsdCommandError::Stopped));
        });
    }

    #[test]
    fn bad_configs_are_refused() {
        let cb: OnPeers = Box::new(|_, _| {});
        let e = LsdWorker::start(
            LsdWorkerConfig {
                bind: BindOptions::default(),
                listen_port: 0,
                rng_seed: 1,
            },
            cb,
        );
        assert!(matches!(e, Err(LsdError::NoListenPort)));
        let cb: OnPeers = Box::new(|_, _| {});
        let e = LsdWorker::start(
            LsdWorkerConfig {
                bind: BindOptions {
                    interface: None,
                    address: Some("::1".parse().unwrap()),
                },
                listen_port: 1,
                rng_seed: 1,
            },
            cb,
        );
        assert!(matches!(
            e,
            Err(LsdError::Bind(SocketError::FamilyMismatch { .. }))
        ));
        let cb: OnPeers = Box::new(|_, _| {});
        let e = LsdWorker::start(
            LsdWorkerConfig {
                bind: BindOptions {
                    interface: Some("nosuchif0".into()),
                    address: None,
                },
                listen_port: 1,
                rng_seed: 1,
            },
            cb,
        );
        assert!(matches!(
            e,
            Err(LsdError::Bind(SocketError::NoSuchInterface { .. }))
        ));
    }
}
