//! The metadata fetcher: a small fixed pool of control threads that get a
//! torrent's info dictionary from peers (BEP 9) when all we have is its
//! info-hash (a magnet link).
//!
//! Boundary: this module owns the threads, the sockets and the clock; the
//! protocol is `magnet::fetch` (one connection) and `magnet::metadata` (the
//! pieces and the hash check), both sans-IO. The session asks for a fetch,
//! hands over peer addresses as it learns them (magnet `x.pe`, DHT, trackers)
//! and reads [`Fetched`] results; serving metadata is the engine's job.
//!
//! Rules, decided on purpose:
//! - [`FetcherConfig::threads`] threads (1 to [`THREADS_MAX`]); a torrent
//!   always runs on the same thread (chosen by its info-hash), which owns its
//!   connections, so nothing is shared but the command queues;
//! - every socket comes from `runtime::sockets` with the configured
//!   [`BindOptions`], nonblocking, driven by `poll(2)` with a
//!   [`POLL_INTERVAL`] tick; connects, handshakes and requests are bounded by
//!   [`FetcherConfig::peer_timeout`];
//! - at most [`FETCHES_MAX`] fetches, [`FetcherConfig::connections_per_torrent_max`]
//!   connections per fetch and [`CONNECTIONS_MAX`] in all, [`PEERS_PER_FETCH_MAX`]
//!   known addresses per fetch (later ones are dropped);
//! - a peer whose connection fails or ends is tried again after
//!   [`RETRY_BACKOFF_BASE`]·2ⁿ⁻¹ (n its failures in a row, at most
//!   [`RETRY_BACKOFF_MAX`]); a peer that supplied metadata that failed the
//!   hash check is never tried again by that fetch; a fetch with no peer to
//!   try waits for [`MetadataFetcher::add_peers`];
//! - [`MetadataFetcher::fetch`] of a hash already being fetched does
//!   nothing; a finished fetch sends one [`Fetched`] (waiting at most
//!   [`RESULT_SEND_WAIT`] for room) and is forgotten;
//! - connect failures are logged at debug level.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use socket2::{SockAddr, Socket};
use thiserror::Error;

use crate::limits::RECEIVE_CHUNK_BYTES_MAX;
use crate::magnet::fetch::{ExchangeEvent, MetadataExchange};
use crate::magnet::metadata::{MetadataAssembler, PeerKey};
use crate::runtime::sockets::{self, BindOptions};
use crate::InfoHash;

/// Most fetcher threads.
pub const THREADS_MAX: usize = 16;
/// Default number of fetcher threads.
pub const THREADS_DEFAULT: usize = 2;
/// Most fetches at a time, in all.
pub const FETCHES_MAX: usize = 256;
/// Most connections at a time, in all (each thread gets its share).
pub const CONNECTIONS_MAX: usize = 512;
/// Largest `connections_per_torrent_max` accepted.
pub const CONNECTIONS_PER_TORRENT_LIMIT: usize = 64;
/// Default connections per fetch.
pub const CONNECTIONS_PER_TORRENT_DEFAULT: usize = 8;
/// Most peer addresses one fetch knows.
pub const PEERS_PER_FETCH_MAX: usize = 1000;
/// Default (and largest) time a peer may take to connect, handshake or
/// answer a request.
pub const PEER_TIMEOUT_DEFAULT: Duration = Duration::from_secs(15);
pub const PEER_TIMEOUT_MAX: Duration = Duration::from_secs(300);
/// First wait before a failed peer is tried again, doubled on each failure.
pub const RETRY_BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Longest wait before a failed peer is tried again.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Longest a thread sleeps between looks at its sockets and commands.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Commands queued per thread.
pub const COMMAND_QUEUE_MAX: usize = 1024;
/// Results waiting to be read.
pub const RESULTS_QUEUE_MAX: usize = FETCHES_MAX;
/// Longest a thread waits for room in the results queue (then the result
/// is dropped, with a warning).
pub const RESULT_SEND_WAIT: Duration = Duration::from_secs(1);
/// Longest a caller waits for room in a thread's command queue.
pub const COMMAND_SEND_WAIT: Duration = Duration::from_secs(1);
/// Most reads from one socket per wake-up (fairness between connections).
pub const READS_PER_WAKE_MAX: usize = 16;

const _: () = assert!(CONNECTIONS_PER_TORRENT_LIMIT <= CONNECTIONS_MAX);
const _: () = assert!(THREADS_MAX <= CONNECTIONS_MAX);
const _: () = assert!(RESULTS_QUEUE_MAX >= FETCHES_MAX);
const _: () = assert!(RETRY_BACKOFF_BASE.as_nanos() <= RETRY_BACKOFF_MAX.as_nanos());

/// Why the fetcher refused.
#[derive(Debug, Error)]
pub enum FetchError {
    #[error("metadata fetcher: {field} {reason}")]
    BadConfig { field: &'static str, reason: String },
    #[error("metadata fetcher: {max} fetches already running")]
    TooManyFetches { max: usize },
    #[error("metadata fetcher: stopped")]
    Stopped,
    #[error("metadata fetcher: thread {thread} is not taking commands")]
    Busy { thread: usize },
    #[error("metadata fetcher: cannot start a thread: {0}")]
    Spawn(#[source] io::Error),
}

/// How the fetcher runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetcherConfig {
    /// Interface and local address of every connection.
    pub bind: BindOptions,
    /// Our peer id, sent in every handshake.
    pub peer_id: [u8; 20],
    /// Our listen port, told to peers (0: none).
    pub listen_port: u16,
    /// 1 to [`THREADS_MAX`].
    pub threads: usize,
    /// 1 to [`CONNECTIONS_PER_TORRENT_LIMIT`].
    pub connections_per_torrent_max: usize,
    /// Connect, handshake and request timeout: more than zero, at most
    /// [`PEER_TIMEOUT_MAX`].
    pub peer_timeout: Duration,
}

impl FetcherConfig {
    /// The defaults, with this peer id and no listen port.
    pub fn new(peer_id: [u8; 20]) -> FetcherConfig {
        FetcherConfig {
            bind: BindOptions::default(),
            peer_id,
            listen_port: 0,
            threads: THREADS_DEFAULT,
            connections_per_torrent_max: CONNECTIONS_PER_TORRENT_DEFAULT,
            peer_timeout: PEER_TIMEOUT_DEFAULT,
        }
    }

    pub fn validate(&self) -> Result<(), FetchError> {
        let bad = |field, reason: String| Err(FetchError::BadConfig { field, reason });
        if !(1..=THREADS_MAX).contains(&self.threads) {
            return bad(
                "threads",
                format!("is {}, expected 1 to {THREADS_MAX}", self.threads),
            );
        }
        if !(1..=CONNECTIONS_PER_TORRENT_LIMIT).contains(&self.connections_per_torrent_max) {
            return bad(
                "connections_per_torrent_max",
                format!(
                    "is {}, expected 1 to {CONNECTIONS_PER_TORRENT_LIMIT}",
                    self.connections_per_torrent_max
                ),
            );
        }
        if self.peer_timeout.is_zero() || self.peer_timeout > PEER_TIMEOUT_MAX {
            return bad(
                "peer_timeout",
                format!(
                    "is {:?}, expected more than zero and at most {PEER_TIMEOUT_MAX:?}",
                    self.peer_timeout
                ),
            );
        }
        Ok(())
    }
}

/// A finished fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub info_hash: InfoHash,
    /// The info dictionary's bytes; their SHA-1 is `info_hash`.
    pub info: Arc<[u8]>,
    /// Peers that had the metadata and PEX-learned ones, in the order learned (at most
    /// [`PEERS_PER_FETCH_MAX`]), less those that failed the hash check.
    pub peers: Vec<SocketAddr>,
}

enum Command {
    Fetch(InfoHash),
    AddPeers(InfoHash, Vec<SocketAddr>),
    Cancel(InfoHash),
    Stop,
}

/// Info-hashes being fetched, shared by the handle and the threads.
type Active = Arc<Mutex<HashSet<InfoHash>>>;

/// The running fetcher.
pub struct MetadataFetcher {
    commands: Vec<Sender<Command>>,
    results: Receiver<Fetched>,
    active: Active,
    threads: Vec<JoinHandle<()>>,
}

impl MetadataFetcher {
    pub fn start(config: FetcherConfig) -> Result<MetadataFetcher, FetchError> {
        config.validate()?;
        let (results_tx, results) = bounded(RESULTS_QUEUE_MAX);
        let active: Active = Arc::default();
        let config = Arc::new(config);
        let epoch = Instant::now();
        let connections_max = CONNECTIONS_MAX / config.threads;
        let mut fetcher = MetadataFetcher {
            commands: Vec::new(),
            results,
            active,
            threads: Vec::new(),
        };
        for index in 0..config.threads {
            let (tx, rx) = bounded(COMMAND_QUEUE_MAX);
            let mut worker = Worker {
                config: Arc::clone(&config),
                epoch,
                commands: rx,
                results: results_tx.clone(),
                active: Arc::clone(&fetcher.active),
                fetches: HashMap::new(),
                connections_max,
                next_key: 0,
            };
            let handle = thread::Builder::new()
                .name(format!("rs-metadata-{index}"))
                .spawn(move || {
                    if panic::catch_unwind(AssertUnwindSafe(|| worker.run())).is_err() {
                        tracing::error!(thread = index, "metadata fetcher thread panicked");
                    }
                });
            match handle {
                Ok(h) => {
                    fetcher.commands.push(tx);
                    fetcher.threads.push(h);
                }
                Err(e) => {
                    fetcher.shutdown();
                    return Err(FetchError::Spawn(e));
                }
            }
        }
        Ok(fetcher)
    }

    fn thread_of(&self, info_hash: &InfoHash) -> usize {
        let n = u32::from_le_bytes([
            info_hash.0[0],
            info_hash.0[1],
            info_hash.0[2],
            info_hash.0[3],
        ]);
        n as usize % self.commands.len().max(1)
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashSet<InfoHash>> {
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts fetching `info_hash` (nothing if it is already being fetched).
    pub fn fetch(&self, info_hash: InfoHash) -> Result<(), FetchError> {
        let thread = self.thread_of(&info_hash);
        let tx = self.commands.get(thread).ok_or(FetchError::Stopped)?;
        let mut active = self.active();
        if active.contains(&info_hash) {
            return Ok(());
        }
        if active.len() >= FETCHES_MAX {
            return Err(FetchError::TooManyFetches { max: FETCHES_MAX });
        }
        match tx.send_timeout(Command::Fetch(info_hash), COMMAND_SEND_WAIT) {
            Ok(()) => {
                active.insert(info_hash);
                Ok(())
            }
            Err(crossbeam_channel::SendTimeoutError::Timeout(_)) => {
                Err(FetchError::Busy { thread })
            }
            Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => Err(FetchError::Stopped),
        }
    }

    /// More addresses for a fetch; ignored when `info_hash` is not being
    /// fetched (or the thread's queue is full).
    pub fn add_peers(&self, info_hash: InfoHash, mut peers: Vec<SocketAddr>) {
        if peers.is_empty() || !self.active().contains(&info_hash) {
            return;
        }
        peers.truncate(PEERS_PER_FETCH_MAX);
        let thread = self.thread_of(&info_hash);
        if let Some(tx) = self.commands.get(thread) {
            if let Err(TrySendError::Full(_)) = tx.try_send(Command::AddPeers(info_hash, peers)) {
                tracing::debug!(
                    thread,
                    "metadata fetcher: command queue full, peers dropped"
                );
            }
        }
    }

    /// Stops fetching `info_hash` and closes its connections.
    pub fn cancel(&self, info_hash: InfoHash) {
        let thread = self.thread_of(&info_hash);
        let mut active = self.active();
        if !active.remove(&info_hash) {
            return;
        }
        if let Some(tx) = self.commands.get(thread) {
            let _ = tx.send_timeout(Command::Cancel(info_hash), COMMAND_SEND_WAIT);
        }
    }

    /// Finished fetches.
    pub fn results(&self) -> &Receiver<Fetched> {
        &self.results
    }

    /// Stops the threads (each within one [`POLL_INTERVAL`] and one round
    /// of nonblocking socket work) and closes every connection.
    pub fn shutdown(mut self) {
        for tx in self.commands.drain(..) {
            let _ = tx.try_send(Command::Stop);
        }
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

/// What a fetch knows of one address.
#[derive(Debug, Default)]
struct PeerState {
    /// Not before this (time since the fetcher's epoch).
    next_try: Duration,
    failures: u32,
    banned: bool,
    connected: bool,
}

struct Conn {
    addr: SocketAddr,
    socket: Socket,
    connected: bool,
    exchange: MetadataExchange,
}

struct Fetch {
    assembler: MetadataAssembler,
    peers: HashMap<SocketAddr, PeerState>,
    conns: Vec<Conn>,
    /// Peers that had metadata, then PEX-learned ones, without duplicates.
    found: Vec<SocketAddr>,
}

/// Adds usable addresses to a fetch's peers, up to [`PEERS_PER_FETCH_MAX`].
fn learn(peers: &mut HashMap<SocketAddr, PeerState>, addrs: impl IntoIterator<Item = SocketAddr>) {
    for addr in addrs {
        if peers.len() >= PEERS_PER_FETCH_MAX {
            return;
        }
        if addr.port() != 0 && !addr.ip().is_unspecified() {
            peers.entry(addr).or_default();
        }
    }
}

/// Adds `addr` to a fetch's result list once, up to [`PEERS_PER_FETCH_MAX`].
fn remember(found: &mut Vec<SocketAddr>, addr: SocketAddr) {
    if found.len() < PEERS_PER_FETCH_MAX && !found.contains(&addr) {
        found.push(addr);
    }
}

/// Why a connection ended.
type CloseReason = String;

struct Worker {
    config: Arc<FetcherConfig>,
    epoch: Instant,
    commands: Receiver<Command>,
    results: Sender<Fetched>,
    active: Active,
    fetches: HashMap<InfoHash, Fetch>,
    connections_max: usize,
    next_key: PeerKey,
}

impl Worker {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn run(&mut self) {
        let mut buf = vec![0u8; RECEIVE_CHUNK_BYTES_MAX];
        loop {
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Stop) => return,
                    Ok(cmd) => self.command(cmd),
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => return,
                }
            }
            self.dial();
            let mut fds = Vec::new();
            for fetch in self.fetches.values() {
                for c in &fetch.conns {
                    let mut events = libc::POLLIN;
                    if !c.connected || !c.exchange.pending_output().is_empty() {
                        events |= libc::POLLOUT;
                    }
                    fds.push(libc::pollfd {
                        fd: c.socket.as_raw_fd(),
                        events,
                        revents: 0,
                    });
                }
            }
            if fds.is_empty() {
                match self.commands.recv_timeout(POLL_INTERVAL) {
                    Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    Ok(cmd) => self.command(cmd),
                    Err(RecvTimeoutError::Timeout) => {}
                }
                continue;
            }
            // SAFETY: `fds` is a live, exclusively borrowed array of
            // `fds.len()` pollfd structs for the duration of the call.
            let ready = unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    POLL_INTERVAL.as_millis() as libc::c_int,
                )
            };
            if ready < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::warn!(error = %e, "metadata fetcher: poll failed");
                    thread::sleep(POLL_INTERVAL);
                }
                continue;
            }
            self.service(&fds, &mut buf);
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Fetch(info_hash) => {
                let timeout = self.config.peer_timeout;
                self.fetches.entry(info_hash).or_insert_with(|| Fetch {
                    assembler: MetadataAssembler::new(info_hash, timeout),
                    peers: HashMap::new(),
                    conns: Vec::new(),
                    found: Vec::new(),
                });
            }
            Command::AddPeers(info_hash, peers) => {
                if let Some(fetch) = self.fetches.get_mut(&info_hash) {
                    learn(&mut fetch.peers, peers);
                }
            }
            Command::Cancel(info_hash) => {
                self.fetches.remove(&info_hash);
            }
            Command::Stop => {}
        }
    }

    fn connections(&self) -> usize {
        self.fetches.values().map(|f| f.conns.len()).sum()
    }

    /// Opens connections to peers that are due, within the bounds.
    fn dial(&mut self) {
        let now = self.now();
        let mut total = self.connections();
        let per_torrent = self.config.connections_per_torrent_max;
        for (info_hash, fetch) in self.fetches.iter_mut() {
            while fetch.conns.len() < per_torrent && total < self.connections_max {
                let Some(addr) = fetch
                    .peers
                    .iter()
                    .filter(|(_, p)| !p.banned && !p.connected && p.next_try <= now)
                    .map(|(a, _)| *a)
                    .next()
                else {
                    break;
                };
                let key = self.next_key;
                self.next_key += 1;
                match connect(addr, &self.config.bind) {
                    Ok((socket, connected)) => {
                        let exchange = MetadataExchange::new(
                            key,
                            *info_hash,
                            self.config.peer_id,
                            self.config.listen_port,
                            self.config.peer_timeout,
                            now,
                        );
                        if let Some(p) = fetch.peers.get_mut(&addr) {
                            p.connected = true;
                        }
                        fetch.conns.push(Conn {
                            addr,
                            socket,
                            connected,
                            exchange,
                        });
                        total += 1;
                    }
                    Err(reason) => {
                        tracing::debug!(peer = %addr, info_hash = %info_hash.to_hex(), %reason,
                            "metadata fetch: connect failed");
                        failed(fetch, addr, now);
                    }
                }
            }
        }
    }

    /// Reads, writes and ticks every connection after a poll.
    fn service(&mut self, fds: &[libc::pollfd], buf: &mut [u8]) {
        let now = self.now();
        let mut at = 0;
        let mut done = Vec::new();
        for (info_hash, fetch) in self.fetches.iter_mut() {
            let mut closed: Vec<(usize, CloseReason)> = Vec::new();
            let mut complete = None;
            let mut blamed = Vec::new();
            for (i, conn) in fetch.conns.iter_mut().enumerate() {
                let revents = fds.get(at).map_or(0, |f| f.revents);
                at += 1;
                let result =
                    serve(conn, revents, now, &mut fetch.assembler, buf).and_then(|events| {
                        conn.exchange
                            .tick(now, &mut fetch.assembler)
                            .map_err(|e| e.to_string())?;
                        flush(conn)?;
                        Ok(events)
                    });
                match result {
                    Ok(events) => {
                        for event in events {
                            match event {
                                ExchangeEvent::HasMetadata { .. } => {
                                    remember(&mut fetch.found, conn.addr)
                                }
                                ExchangeEvent::Peers(addrs) => {
                                    for a in &addrs {
                                        remember(&mut fetch.found, *a);
                                    }
                                    learn(&mut fetch.peers, addrs);
                                }
                                ExchangeEvent::Complete(info) => complete = Some(info),
                                ExchangeEvent::HashFailed { blamed: keys } => blamed.extend(keys),
                            }
                        }
                    }
                    Err(reason) => closed.push((i, reason)),
                }
            }
            if let Some(info) = complete {
                let mut found = std::mem::take(&mut fetch.found);
                found.retain(|a| !fetch.peers.get(a).is_some_and(|p| p.banned));
                done.push((*info_hash, info, found));
                continue;
            }
            for (i, conn) in fetch.conns.iter().enumerate() {
                if blamed.contains(&conn.exchange.key()) {
                    closed.push((i, "supplied metadata that failed the hash check".into()));
                    if let Some(p) = fetch.peers.get_mut(&conn.addr) {
                        p.banned = true;
                    }
                }
            }
            closed.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
            closed.dedup_by_key(|(i, _)| *i);
            for (i, reason) in closed {
                if i >= fetch.conns.len() {
                    continue;
                }
                let conn = fetch.conns.swap_remove(i);
                tracing::debug!(peer = %conn.addr, info_hash = %info_hash.to_hex(), %reason,
                    "metadata fetch: connection closed");
                fetch.assembler.remove_peer(conn.exchange.key());
                failed(fetch, conn.addr, now);
            }
        }
        for (info_hash, info, peers) in done {
            self.fetches.remove(&info_hash);
            self.active
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&info_hash);
            tracing::info!(info_hash = %info_hash.to_hex(), bytes = info.len(), "metadata fetched");
            let fetched = Fetched {
                info_hash,
                info: Arc::from(info),
                peers,
            };
            if self
                .results
                .send_timeout(fetched, RESULT_SEND_WAIT)
                .is_err()
            {
                tracing::warn!(info_hash = %info_hash.to_hex(), "metadata fetcher: results queue full, result dropped");
            }
        }
    }
}

/// Counts a failure of `addr` and sets when to try it again.
fn failed(fetch: &mut Fetch, addr: SocketAddr, now: Duration) {
    let Some(p) = fetch.peers.get_mut(&addr) else {
        return;
    };
    p.connected = false;
    p.failures = p.failures.saturating_add(1);
    let doublings = p.failures.saturating_sub(1).min(16);
    let wait = RETRY_BACKOFF_BASE
        .saturating_mul(1u32 << doublings)
        .min(RETRY_BACKOFF_MAX);
    p.next_try = now + wait;
}

/// A nonblocking socket connecting (or connected: `true`) to `addr`.
fn connect(addr: SocketAddr, bind: &BindOptions) -> Result<(Socket, bool), String> {
    let socket = sockets::tcp_socket_for_connect(addr, bind).map_err(|e| e.to_string())?;
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => Ok((socket, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok((socket, false)),
        Err(e) => Err(e.to_string()),
    }
}

/// Handles what poll said about one connection: finishes its connect, reads
/// what arrived into its exchange.
fn serve(
    conn: &mut Conn,
    revents: libc::c_short,
    now: Duration,
    assembler: &mut MetadataAssembler,
    buf: &mut [u8],
) -> Result<Vec<ExchangeEvent>, CloseReason> {
    let mut events = Vec::new();
    if revents == 0 {
        return Ok(events);
    }
    if !conn.connected {
        match conn.socket.take_error() {
            Ok(None) if revents & libc::POLLOUT != 0 => conn.connected = true,
            Ok(None) => return Ok(events),
            Ok(Some(e)) | Err(e) => {
                tracing::debug!(peer = %conn.addr, error = %e, "metadata fetch: connect failed");
                return Err(format!("connect failed: {e}"));
            }
        }
    }
    flush(conn)?;
    if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
        return Ok(events);
    }
    for _ in 0..READS_PER_WAKE_MAX {
        let room = conn.exchange.receive_room().min(buf.len());
        let Some(chunk) = buf.get_mut(..room) else {
            break;
        };
        match (&conn.socket).read(chunk) {
            Ok(0) => return Err("closed by the peer".into()),
            Ok(n) => {
                let got = chunk.get(..n).unwrap_or_default();
                events.extend(
                    conn.exchange
                        .receive(got, now, assembler)
                        .map_err(|e| e.to_string())?,
                );
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
    Ok(events)
}

/// Writes what the exchange has queued, as far as the socket takes it.
fn flush(conn: &mut Conn) -> Result<(), CloseReason> {
    while conn.connected && !conn.exchange.pending_output().is_empty() {
        match conn
            .socket
            .send_with_flags(conn.exchange.pending_output(), libc::MSG_NOSIGNAL)
        {
            Ok(n) => conn.exchange.output_written(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("write failed: {e}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_checked() {
        let ok = FetcherConfig::new([1; 20]);
        assert!(ok.validate().is_ok());
        for bad in [
            FetcherConfig {
                threads: 0,
                ..ok.clone()
            },
            FetcherConfig {
                threads: THREADS_MAX + 1,
                ..ok.clone()
            },
            FetcherConfig {
                connections_per_torrent_max: 0,
                ..ok.clone()
            },
            FetcherConfig {
                connections_per_torrent_max: CONNECTIONS_PER_TORRENT_LIMIT + 1,
                ..ok.clone()
            },
            FetcherConfig {
                peer_timeout: Duration::ZERO,
                ..ok.clone()
            },
            FetcherConfig {
                peer_timeout: PEER_TIMEOUT_MAX + Duration::from_secs(1),
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(FetchError::BadConfig { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_max() {
        let addr: SocketAddr = "127.0.131.9:1".parse().unwrap();
        let mut fetch = Fetch {
            assembler: MetadataAssembler::new(InfoHash([0; 20]), PEER_TIMEOUT_DEFAULT),
            peers: HashMap::new(),
            conns: Vec::new(),
            found: Vec::new(),
        };
        learn(
            &mut fetch.peers,
            [
                addr,
                "0.0.0.0:5".parse().unwrap(),
                "127.0.131.9:0".parse().unwrap(),
            ],
        );
        assert_eq!(fetch.peers.len(), 1, "unusable addresses are skipped");
        let mut waits = Vec::new();
        for _ in 0..10 {
            failed(&mut fetch, addr, Duration::ZERO);
            waits.push(fetch.peers[&addr].next_try.as_secs());
        }
        assert_eq!(waits, vec![5, 10, 20, 40, 80, 160, 300, 300, 300, 300]);
    }

    #[test]
    fn fetches_are_idempotent_bounded_and_cancellable() {
        let fetcher = MetadataFetcher::start(FetcherConfig::new([2; 20])).unwrap();
        let h = InfoHash([7; 20]);
        fetcher.fetch(h).unwrap();
        fetcher.fetch(h).unwrap();
        assert_eq!(fetcher.active().len(), 1);
        for i in 1..FETCHES_MAX {
            let mut b = [0u8; 20];
            b[..8].copy_from_slice(&(i as u64).to_le_bytes());
            fetcher.fetch(InfoHash(b)).unwrap();
        }
        assert!(matches!(
            fetcher.fetch(InfoHash([9; 20])),
            Err(FetchError::TooManyFetches { max: FETCHES_MAX })
        ));
        fetcher.cancel(h);
        fetcher.fetch(InfoHash([9; 20])).unwrap();
        // A peer that refuses connections is only retried after the backoff.
        fetcher.add_peers(InfoHash([9; 20]), vec!["127.0.131.1:1".parse().unwrap()]);
        thread::sleep(Duration::from_millis(200));
        assert!(fetcher.results().try_recv().is_err());
        let started = Instant::now();
        fetcher.shutdown();
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    /// A blocking fake peer on `ip` that serves `info` under ut_metadata,
    /// with its first byte flipped when `corrupt`; it accepts connections
    /// until `stop` is set. Returns its address and how many it accepted.
    fn fake_peer(
        ip: &str,
        info: Arc<Vec<u8>>,
        corrupt: bool,
        stop: Arc<std::sync::atomic::AtomicBool>,
    ) -> (SocketAddr, JoinHandle<usize>) {
        use crate::wire::ut_metadata::{piece_of, MetadataMessage};
        use crate::wire::{encode, reserved_bits, ExtensionHandshake, Handshake, Message};
        use std::io::Write;
        use std::sync::atomic::Ordering;

        let listener = sockets::tcp_listener(
            format!("{ip}:0").parse().unwrap(),
            &BindOptions::default(),
            false,
            8,
        )
        .unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let mut accepted = 0;
            while !stop.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                accepted += 1;
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut hs = [0u8; 68];
                if s.read_exact(&mut hs).is_err() {
                    continue;
                }
                let theirs = Handshake::decode(&hs).unwrap().unwrap();
                let mut out = Handshake {
                    info_hash: theirs.info_hash,
                    peer_id: [b'F'; 20],
                    reserved: reserved_bits(true, false, false),
                }
                .encode()
                .to_vec();
                let ext = ExtensionHandshake {
                    m: vec![("ut_metadata".into(), 5)],
                    metadata_size: Some(info.len() as u64),
                    ..Default::default()
                };
                encode(
                    &Message::Extended {
                        id: 0,
                        payload: &ext.encode(),
                    },
                    &mut out,
                );
                let _ = s.write_all(&out);
                let mut their_id = 0;
                loop {
                    let mut len = [0u8; 4];
                    if s.read_exact(&mut len).is_err() {
                        break;
                    }
                    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                    if s.read_exact(&mut body).is_err() {
                        break;
                    }
                    match body.as_slice() {
                        [20, 0, payload @ ..] => {
                            their_id = ExtensionHandshake::parse(payload)
                                .unwrap()
                                .extension_id("ut_metadata")
                                .unwrap();
                        }
                        [20, 5, payload @ ..] => {
                            let Ok(MetadataMessage::Request { piece }) =
                                MetadataMessage::parse(payload)
                            else {
                                continue;
                            };
                            let mut data = piece_of(&info, piece).unwrap().to_vec();
                            if corrupt {
                                data[0] ^= 1;
                            }
                            let mut p = Vec::new();
                            MetadataMessage::Data {
                                piece,
                                total_size: info.len() as u64,
                                data: &data,
                            }
                            .encode(&mut p);
                            let mut out = Vec::new();
                            encode(
                                &Message::Extended {
                                    id: their_id,
                                    payload: &p,
                                },
                                &mut out,
                            );
                            let _ = s.write_all(&out);
                        }
                        _ => {}
                    }
                }
            }
            accepted
        });
        (addr, handle)
    }

    #[test]
    fn a_lying_peer_is_banned_and_an_honest_one_completes() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let info: Vec<u8> = b"d4:name".iter().copied().cycle().take(20_000).collect();
        let info_hash = InfoHash(crate::hash::sha1(&info));
        let info = Arc::new(info);
        let stop = Arc::new(AtomicBool::new(false));
        let (liar, liar_thread) =
            fake_peer("127.0.131.3", Arc::clone(&info), true, Arc::clone(&stop));
        let (honest, honest_thread) =
            fake_peer("127.0.131.4", Arc::clone(&info), false, Arc::clone(&stop));
        let mut config = FetcherConfig::new([3; 20]);
        config.threads = 1;
        // One connection at a time: the liar first supplies every piece.
        config.connections_per_torrent_max = 1;
        config.bind.address = Some("127.0.131.1".parse().unwrap());
        let fetcher = MetadataFetcher::start(config).unwrap();
        fetcher.fetch(info_hash).unwrap();
        fetcher.add_peers(info_hash, vec![liar]);
        thread::sleep(Duration::from_millis(500));
        assert!(
            fetcher.results().try_recv().is_err(),
            "the liar's data must fail"
        );
        fetcher.add_peers(info_hash, vec![honest]);
        let fetched = fetcher
            .results()
            .recv_timeout(Duration::from_secs(20))
            .unwrap();
        assert_eq!(&fetched.info[..], &info[..]);
        assert_eq!(fetched.peers, vec![honest], "the banned liar is left out");
        fetcher.shutdown();
        stop.store(true, Ordering::Relaxed);
        assert_eq!(
            liar_thread.join().unwrap(),
            1,
            "the banned liar is not tried again"
        );
        assert_eq!(honest_thread.join().unwrap(), 1);
    }
}
