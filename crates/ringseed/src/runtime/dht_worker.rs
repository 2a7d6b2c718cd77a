//! The DHT worker: one thread that owns the DHT's UDP socket and drives the
//! sans-IO node (`ringseed_proto::dht::Dht`) with the clock.
//!
//! Boundary: the protocol is the node's; this module does the IO (socket,
//! name resolution, clock), keeps the list of info-hashes to announce or look
//! up and repeats them, and hands found peers to the caller's `on_peers`
//! callback (run on the worker thread: it must be quick and not block).
//!
//! Rules, decided on purpose:
//! - the socket is made by `sockets::udp_socket`, so `--interface` and
//!   `--bind-address` cover it; it is bound before [`DhtWorker::start`]
//!   returns, and an error names the address; IPv4 only (the node ignores
//!   anything else);
//! - bootstrap names ("host:port") are resolved in the worker thread, IPv4
//!   addresses only; one that does not resolve is logged and skipped;
//! - time is `Instant` since an epoch taken at start; the thread waits for
//!   datagrams at most until the node's next tick, and at most
//!   [`COMMAND_POLL`] so commands are picked up promptly;
//! - commands travel on a bounded channel of [`COMMAND_QUEUE_MAX`]; a full
//!   channel drops the command with a counted warning, a caller never blocks;
//!   [`DhtHandle::nodes`] and [`DhtHandle::stats`] wait at most
//!   [`QUERY_REPLY_WAIT`];
//! - due announces and lookups start while the node has lookups free
//!   (all but [`LOOKUPS_KEPT_FREE`] of its `LOOKUPS_MAX`); the others stay
//!   due and start as lookups end;
//! - an announced info-hash is announced again every [`ANNOUNCE_INTERVAL`]
//!   (after [`RETRY_INTERVAL`] when the last announce reached nobody), a
//!   looked-up one is looked up again every [`LOOKUP_INTERVAL`], until
//!   `forget`; at most [`TRACKED_MAX`] info-hashes are tracked;
//! - peers are reported only for info-hashes still tracked;
//! - [`DhtWorker::shutdown`] stops the thread and returns the good nodes to
//!   save; past its deadline it returns an empty list without waiting.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, ErrorKind};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::dht::{Dht, DhtConfig, DhtOutput, DhtStats, LOOKUPS_MAX};
use crate::runtime::sockets::{udp_socket, BindOptions, SocketError};
use crate::InfoHash;

/// Well-known bootstrap routers.
pub const DEFAULT_BOOTSTRAP: &[&str] = &[
    "router.bittorrent.com:6881",
    "router.utorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "dht.libtorrent.org:25401",
];
/// Commands waiting for the worker.
pub const COMMAND_QUEUE_MAX: usize = 256;
/// Info-hashes announced or looked up at once: a large seedbox's public
/// torrents. Each costs about 100 bytes, and nothing between its announces
/// (the schedule is ordered by due time).
pub const TRACKED_MAX: usize = 100_000;
/// How often an info-hash is announced again.
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// How often an info-hash is looked up again.
pub const LOOKUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Lookups left to the node's own upkeep (bucket refreshes, bootstrap):
/// announces and lookups start only while more than these are free.
pub const LOOKUPS_KEPT_FREE: usize = 4;
const _: () = assert!(LOOKUPS_KEPT_FREE < LOOKUPS_MAX);
/// Next try after an announce that reached no node.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(60);
/// Longest wait for a datagram before looking at commands again.
pub const COMMAND_POLL: Duration = Duration::from_millis(100);
/// Longest [`DhtHandle::nodes`] / [`DhtHandle::stats`] wait for an answer.
pub const QUERY_REPLY_WAIT: Duration = Duration::from_millis(500);
/// Bootstrap names resolved (more are ignored).
pub const BOOTSTRAP_NAMES_MAX: usize = 16;
/// Addresses used per bootstrap name.
pub const ADDRESSES_PER_NAME_MAX: usize = 4;
/// Largest datagram read, in bytes (larger ones are cut and then refused by
/// the codec).
pub const RECV_BUFFER_BYTES: usize = 4096;

const _: () = assert!(RETRY_INTERVAL.as_secs() < LOOKUP_INTERVAL.as_secs());
const _: () = assert!(LOOKUP_INTERVAL.as_secs() <= ANNOUNCE_INTERVAL.as_secs());

/// How to start the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtWorkerConfig {
    /// Local address of the UDP socket (IPv4; port 0 for any).
    pub local: SocketAddr,
    pub bind: BindOptions,
    /// "host:port" names, resolved in the worker thread.
    pub bootstrap: Vec<String>,
    /// Nodes saved by a previous run.
    pub saved_nodes: Vec<SocketAddr>,
    /// BEP 43: query only, answer nothing.
    pub read_only: bool,
    pub rng_seed: u64,
}

/// Why the worker did not start.
#[derive(Debug, thiserror::Error)]
pub enum DhtWorkerError {
    #[error("cannot open the DHT's UDP socket on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: SocketError,
    },
    #[error("cannot set up the DHT's UDP socket on {addr}: {source}")]
    Socket {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the DHT thread: {0}")]
    Thread(#[source] io::Error),
}

enum Command {
    Announce(InfoHash, u16),
    Lookup(InfoHash),
    Forget(InfoHash),
    Vote(IpAddr, IpAddr),
    Nodes(Sender<Vec<SocketAddr>>),
    Stats(Sender<DhtStats>),
}

/// Sends commands to the worker; cheap to clone.
#[derive(Clone)]
pub struct DhtHandle {
    commands: Sender<Command>,
    dropped: Arc<AtomicU64>,
    /// Nodes in the routing table, as of the worker's last tick.
    nodes: Arc<AtomicUsize>,
}

/// The running worker.
pub struct DhtWorker {
    handle: DhtHandle,
    local: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<SocketAddr>>>,
}

impl DhtWorker {
    /// Binds the socket and starts the thread.
    pub fn start(
        config: DhtWorkerConfig,
        on_peers: Box<dyn Fn(InfoHash, Vec<SocketAddr>) + Send>,
    ) -> Result<DhtWorker, DhtWorkerError> {
        let addr = config.local;
        let socket = udp_socket(addr, &config.bind)
            .map_err(|source| DhtWorkerError::Bind { addr, source })?;
        let setup = |e| DhtWorkerError::Socket { addr, source: e };
        socket.set_nonblocking(false).map_err(setup)?;
        let local = socket.local_addr().map_err(setup)?;
        let (tx, rx) = bounded(COMMAND_QUEUE_MAX);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let nodes = Arc::new(AtomicUsize::new(0));
        let thread_nodes = Arc::clone(&nodes);
        let thread = thread::Builder::new()
            .name("ringseed-dht".into())
            .spawn(move || {
                let run = AssertUnwindSafe(|| {
                    run(socket, config, rx, thread_stop, thread_nodes, on_peers)
                });
                panic::catch_unwind(run).unwrap_or_else(|_| {
                    tracing::error!("DHT thread panicked");
                    Vec::new()
                })
            })
            .map_err(DhtWorkerError::Thread)?;
        tracing::info!(%local, "DHT started");
        Ok(DhtWorker {
            handle: DhtHandle {
                commands: tx,
                dropped: Arc::new(AtomicU64::new(0)),
                nodes,
            },
            local,
            stop,
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> DhtHandle {
        self.handle.clone()
    }

    /// The socket's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops the thread; returns the good nodes to save (empty when the
    /// thread did not stop within `deadline`).
    pub fn shutdown(mut self, deadline: Duration) -> Vec<SocketAddr> {
        self.stop.store(true, Ordering::Relaxed);
        let Some(thread) = self.thread.take() else {
            return Vec::new();
        };
        let end = Instant::now() + deadline;
        while !thread.is_finished() {
            if Instant::now() >= end {
                tracing::warn!("DHT thread did not stop in time; nodes not saved");
                return Vec::new();
            }
            thread::sleep(Duration::from_millis(5));
        }
        thread.join().unwrap_or_default()
    }
}

impl Drop for DhtWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl DhtHandle {
    fn send(&self, cmd: Command) -> bool {
        match self.commands.try_send(cmd) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(dropped = n, "DHT command queue full, command dropped");
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::debug!("DHT worker stopped, command dropped");
                false
            }
        }
    }

    /// Announces `port` for `info_hash` now and every [`ANNOUNCE_INTERVAL`]
    /// (it is looked up as well: peers found are reported).
    pub fn announce(&self, info_hash: InfoHash, port: u16) {
        self.send(Command::Announce(info_hash, port));
    }

    /// Looks for peers of `info_hash` now and every [`LOOKUP_INTERVAL`].
    pub fn lookup(&self, info_hash: InfoHash) {
        self.send(Command::Lookup(info_hash));
    }

    /// Stops announcing and looking up `info_hash`.
    pub fn forget(&self, info_hash: InfoHash) {
        self.send(Command::Forget(info_hash));
    }

    /// A vote for our external address (BEP 10 `yourip` and the like).
    pub fn external_ip_vote(&self, ip: IpAddr, voter: IpAddr) {
        self.send(Command::Vote(ip, voter));
    }

    /// The good nodes now; empty when the worker does not answer within
    /// [`QUERY_REPLY_WAIT`].
    pub fn nodes(&self) -> Vec<SocketAddr> {
        let (tx, rx) = bounded(1);
        if !self.send(Command::Nodes(tx)) {
            return Vec::new();
        }
        rx.recv_timeout(QUERY_REPLY_WAIT).unwrap_or_default()
    }

    /// The node's counters; `None` when the worker does not answer within
    /// [`QUERY_REPLY_WAIT`].
    pub fn stats(&self) -> Option<DhtStats> {
        let (tx, rx) = bounded(1);
        if !self.send(Command::Stats(tx)) {
            return None;
        }
        rx.recv_timeout(QUERY_REPLY_WAIT).ok()
    }

    /// Nodes in the routing table as of the worker's last tick: a number
    /// for status displays, read without asking the worker.
    pub fn node_count(&self) -> usize {
        self.nodes.load(Ordering::Relaxed)
    }

    /// Commands dropped because the queue was full.
    pub fn dropped_commands(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// One tracked info-hash.
#[derive(Clone, Copy)]
struct Tracked {
    /// `Some` when announcing.
    port: Option<u16>,
    next: Duration,
}

/// The tracked info-hashes, also ordered by when each is due: a turn
/// looks at the due ones only, so thousands tracked cost nothing between
/// their announces.
#[derive(Default)]
struct Schedule {
    by_hash: HashMap<InfoHash, Tracked>,
    due: BTreeSet<(Duration, InfoHash)>,
}

impl Schedule {
    fn len(&self) -> usize {
        self.by_hash.len()
    }

    fn contains(&self, ih: &InfoHash) -> bool {
        self.by_hash.contains_key(ih)
    }

    fn get(&self, ih: &InfoHash) -> Option<Tracked> {
        self.by_hash.get(ih).copied()
    }

    /// Tracks `ih` as `t` (replacing what was there).
    fn set(&mut self, ih: InfoHash, t: Tracked) {
        if let Some(old) = self.by_hash.insert(ih, t) {
            self.due.remove(&(old.next, ih));
        }
        self.due.insert((t.next, ih));
    }

    fn remove(&mut self, ih: &InfoHash) {
        if let Some(old) = self.by_hash.remove(ih) {
            self.due.remove(&(old.next, *ih));
        }
    }

    /// The info-hash due first, if one is due at `now`.
    fn first_due(&self, now: Duration) -> Option<(InfoHash, Tracked)> {
        let &(next, ih) = self.due.first()?;
        if next > now {
            return None;
        }
        self.get(&ih).map(|t| (ih, t))
    }
}

fn resolve_bootstrap(names: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for name in names.iter().take(BOOTSTRAP_NAMES_MAX) {
        match name.to_socket_addrs() {
            Ok(addrs) => {
                let v4: Vec<SocketAddr> = addrs
                    .filter(SocketAddr::is_ipv4)
                    .take(ADDRESSES_PER_NAME_MAX)
                    .collect();
                if v4.is_empty() {
                    tracing::warn!(bootstrap = %name, "DHT bootstrap name has no IPv4 address, skipped");
                }
                out.extend(v4);
            }
            Err(e) => {
                tracing::warn!(bootstrap = %name, error = %e, "DHT bootstrap name does not resolve, skipped");
            }
        }
    }
    out
}

fn run(
    socket: UdpSocket,
    config: DhtWorkerConfig,
    commands: Receiver<Command>,
    stop: Arc<AtomicBool>,
    node_count: Arc<AtomicUsize>,
    on_peers: Box<dyn Fn(InfoHash, Vec<SocketAddr>) + Send>,
) -> Vec<SocketAddr> {
    let epoch = Instant::now();
    let now = || epoch.elapsed();
    let mut dht = Dht::new(
        DhtConfig {
            read_only: config.read_only,
            ..DhtConfig::default()
        },
        config.rng_seed,
        now(),
    );
    for addr in config
        .saved_nodes
        .iter()
        .chain(resolve_bootstrap(&config.bootstrap).iter())
    {
        dht.add_node(now(), *addr);
    }
    let mut tracked = Schedule::default();
    let mut buf = vec![0u8; RECV_BUFFER_BYTES];
    while !stop.load(Ordering::Relaxed) {
        while let Ok(cmd) = commands.try_recv() {
            apply(&mut dht, &mut tracked, cmd, now());
        }
        let t = now();
        // Lookups the node may start now, counted once per turn when one
        // is due: the rest stay due and start as lookups end (a start with
        // thousands of torrents announces them one after another, at the
        // DHT's pace, instead of most being refused).
        let mut room: Option<usize> = None;
        while let Some((info_hash, mut tr)) = tracked.first_due(t) {
            let free = room.get_or_insert_with(|| {
                LOOKUPS_MAX.saturating_sub(dht.stats().lookups + LOOKUPS_KEPT_FREE)
            });
            if *free == 0 {
                break;
            }
            *free -= 1;
            match tr.port {
                Some(port) => {
                    dht.announce(t, info_hash, port);
                    tr.next = t + ANNOUNCE_INTERVAL;
                }
                None => {
                    dht.get_peers(t, info_hash);
                    tr.next = t + LOOKUP_INTERVAL;
                }
            }
            tracked.set(info_hash, tr);
        }
        if dht.next_tick() <= t {
            dht.tick(t);
            node_count.store(dht.stats().nodes, Ordering::Relaxed);
        }
        flush(&socket, &mut dht, &mut tracked, &*on_peers, t);
        let wait = dht
            .next_tick()
            .saturating_sub(now())
            .clamp(Duration::from_millis(1), COMMAND_POLL);
        if let Err(e) = socket.set_read_timeout(Some(wait)) {
            tracing::warn!(error = %e, "DHT socket: cannot set the read timeout");
            thread::sleep(wait);
            continue;
        }
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                if let Some(data) = buf.get(..n) {
                    dht.handle_datagram(now(), from, data);
                }
                flush(&socket, &mut dht, &mut tracked, &*on_peers, now());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                // ICMP errors from earlier sends (ConnectionRefused) land here.
                tracing::trace!(error = %e, "DHT socket receive error");
            }
        }
    }
    let nodes = dht.nodes();
    tracing::info!(nodes = nodes.len(), "DHT stopped");
    nodes
}

fn apply(dht: &mut Dht, tracked: &mut Schedule, cmd: Command, now: Duration) {
    let room =
        |tracked: &Schedule, ih: &InfoHash| tracked.contains(ih) || tracked.len() < TRACKED_MAX;
    match cmd {
        Command::Announce(ih, port) => {
            if !room(tracked, &ih) {
                tracing::warn!(info_hash = %ih.to_hex(), "DHT: too many info-hashes tracked, announce ignored");
                return;
            }
            tracked.set(
                ih,
                Tracked {
                    port: Some(port),
                    next: now,
                },
            );
        }
        Command::Lookup(ih) => {
            if !room(tracked, &ih) {
                tracing::warn!(info_hash = %ih.to_hex(), "DHT: too many info-hashes tracked, lookup ignored");
                return;
            }
            let port = tracked.get(&ih).and_then(|t| t.port);
            tracked.set(ih, Tracked { port, next: now });
        }
        Command::Forget(ih) => {
            tracked.remove(&ih);
        }
        Command::Vote(ip, voter) => dht.external_ip_vote(now, ip, voter),
        Command::Nodes(reply) => {
            let _ = reply.try_send(dht.nodes());
        }
        Command::Stats(reply) => {
            let _ = reply.try_send(dht.stats());
        }
    }
}

fn flush(
    socket: &UdpSocket,
    dht: &mut Dht,
    tracked: &mut Schedule,
    on_peers: &dyn Fn(InfoHash, Vec<SocketAddr>),
    now: Duration,
) {
    while let Some(out) = dht.poll_output() {
        match out {
            DhtOutput::Send { to, bytes } => {
                if let Err(e) = socket.send_to(&bytes, to) {
                    tracing::trace!(%to, error = %e, "DHT send failed");
                }
            }
            DhtOutput::Peers { info_hash, peers } => {
                if tracked.contains(&info_hash) {
                    tracing::debug!(info_hash = %info_hash.to_hex(), peers = peers.len(), "DHT peers found");
                    on_peers(info_hash, peers);
                }
            }
            DhtOutput::LookupDone {
                info_hash,
                announced,
                queries,
                ..
            } => {
                tracing::debug!(info_hash = %info_hash.to_hex(), announced, queries, "DHT lookup done");
                if let Some(mut tr) = tracked.get(&info_hash) {
                    if tr.port.is_some() && announced == 0 && tr.next > now + RETRY_INTERVAL {
                        tr.next = now + RETRY_INTERVAL;
                        tracked.set(info_hash, tr);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Peers reported through `on_peers`.
    type Found = Arc<Mutex<Vec<(InfoHash, Vec<SocketAddr>)>>>;

    fn local(last: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 130, last], 0))
    }

    fn config(last: u8, bootstrap: Vec<String>) -> DhtWorkerConfig {
        DhtWorkerConfig {
            local: local(last),
            bind: BindOptions::default(),
            bootstrap,
            saved_nodes: Vec::new(),
            read_only: false,
            rng_seed: u64::from(last) * 7919,
        }
    }

    fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if f() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn workers_on_loopback_find_an_announced_peer() {
        let a = DhtWorker::start(config(1, Vec::new()), Box::new(|_, _| {})).unwrap();
        let boot = vec![a.local_addr().to_string()];
        let b = DhtWorker::start(config(2, boot.clone()), Box::new(|_, _| {})).unwrap();
        let found: Found = Arc::default();
        let sink = Arc::clone(&found);
        let c = DhtWorker::start(
            config(3, boot),
            Box::new(move |ih, peers| sink.lock().unwrap().push((ih, peers))),
        )
        .unwrap();
        let ih = InfoHash([0x42; 20]);
        b.handle().announce(ih, 7777);
        let stored = wait_until(Duration::from_secs(10), || {
            a.handle().stats().is_some_and(|s| s.stored_peers >= 1)
        });
        assert!(stored, "the announce reached the bootstrap node");
        c.handle().lookup(ih);
        let want = SocketAddr::from(([127, 0, 130, 2], 7777));
        let ok = wait_until(Duration::from_secs(10), || {
            found
                .lock()
                .unwrap()
                .iter()
                .any(|(h, p)| *h == ih && p.contains(&want))
        });
        assert!(
            ok,
            "lookup reported the announcer: {:?}",
            found.lock().unwrap()
        );
        assert!(wait_until(Duration::from_secs(5), || !c
            .handle()
            .nodes()
            .is_empty()));
        let saved = c.shutdown(Duration::from_secs(2));
        assert!(saved.contains(&a.local_addr()), "{saved:?}");
        b.shutdown(Duration::from_secs(2));
        a.shutdown(Duration::from_secs(2));
    }

    #[test]
    fn more_announces_than_lookups_at_once_all_start_soon() {
        // Three times the lookups a node runs at once: the worker starts
        // them as lookups end, not a minute later for those refused.
        const N: usize = 3 * LOOKUPS_MAX;
        let a = DhtWorker::start(config(7, Vec::new()), Box::new(|_, _| {})).unwrap();
        let boot = vec![a.local_addr().to_string()];
        let b = DhtWorker::start(config(8, boot), Box::new(|_, _| {})).unwrap();
        // b knows a before it announces (a lookup with an empty table
        // would only reach the bootstrap address).
        assert!(wait_until(Duration::from_secs(10), || !b
            .handle()
            .nodes()
            .is_empty()));
        for i in 0..N {
            let mut h = [0x51; 20];
            h[..8].copy_from_slice(&(i as u64).to_be_bytes());
            b.handle().announce(InfoHash(h), 7000);
        }
        // a answers a few queries a second from one address (flood
        // protection), so count what reached it: a get_peers (at least)
        // for every torrent, not only the first lookups' worth.
        let asked = wait_until(Duration::from_secs(20), || {
            a.handle()
                .stats()
                .is_some_and(|s| s.queries_received >= N as u64)
        });
        assert!(
            asked,
            "the lookups of {N} announces reached the only other node within 20 s: {:?}",
            a.handle().stats()
        );
        b.shutdown(Duration::from_secs(2));
        a.shutdown(Duration::from_secs(2));
    }

    #[test]
    fn the_schedule_gives_due_hashes_in_time_order_and_forgets_replaced_times() {
        let mut s = Schedule::default();
        let h = |n: u8| InfoHash([n; 20]);
        let at = |secs: u64, port: Option<u16>| Tracked {
            port,
            next: Duration::from_secs(secs),
        };
        s.set(h(1), at(30, Some(1)));
        s.set(h(2), at(10, None));
        s.set(h(3), at(20, Some(3)));
        assert!(s.first_due(Duration::from_secs(5)).is_none());
        assert_eq!(
            s.first_due(Duration::from_secs(25)).map(|d| d.0),
            Some(h(2))
        );
        // Moved later: its old time is gone from the order.
        s.set(h(2), at(40, None));
        assert_eq!(
            s.first_due(Duration::from_secs(25)).map(|d| d.0),
            Some(h(3))
        );
        s.remove(&h(3));
        assert_eq!(
            s.first_due(Duration::from_secs(35)).map(|d| d.0),
            Some(h(1))
        );
        assert_eq!((s.len(), s.due.len()), (2, 2));
        s.remove(&h(1));
        s.remove(&h(2));
        assert!(s.first_due(Duration::MAX).is_none() && s.due.is_empty());
    }

    #[test]
    fn starts_with_an_unresolvable_bootstrap_name() {
        let w = DhtWorker::start(
            config(4, vec!["no.such.host.invalid:1".to_string()]),
            Box::new(|_, _| {}),
        )
        .unwrap();
        let stats = w.handle().stats();
        assert!(stats.is_some_and(|s| s.nodes == 0));
        assert!(w.shutdown(Duration::from_secs(2)).is_empty());
    }

    #[test]
    fn bind_errors_name_the_address() {
        // TEST-NET-1: not an address of this host, so the bind fails.
        let mut cfg = config(5, Vec::new());
        cfg.local = SocketAddr::from(([192, 0, 2, 1], 6881));
        let err = DhtWorker::start(cfg, Box::new(|_, _| {})).err().unwrap();
        assert!(err.to_string().contains("192.0.2.1:6881"), "{err}");
    }

    #[test]
    fn a_full_command_queue_drops_without_blocking() {
        let w = DhtWorker::start(config(6, Vec::new()), Box::new(|_, _| {})).unwrap();
        let h = w.handle();
        let started = Instant::now();
        for i in 0..(COMMAND_QUEUE_MAX * 20) {
            h.external_ip_vote(
                IpAddr::from([20, 0, 0, (i % 200) as u8]),
                IpAddr::from([20, 1, 0, 1]),
            );
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(h.dropped_commands() > 0, "some commands were dropped");
        w.shutdown(Duration::from_secs(2));
    }
}
