//! `Session`: the running engine: one shard thread per core, each pinned
//! to its CPU with its own io_uring, listener and torrents; the tracker
//! worker; and the channel of [`SessionEvent`]s the caller (the CLI) reads.
//!
//! Start-up does everything that can fail with a clear message before any
//! thread starts: the interface check, the listeners (every shard listens
//! on the same port with SO_REUSEPORT; port 0 is resolved by the first),
//! the wakers and the files. [`Session::stop`] asks every shard to stop
//! (they send `stopped` announces, close connections, flush files), joins
//! them, then gives the tracker worker a deadline to finish the announces.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use thiserror::Error;

use super::disk::{DiskError, TorrentStorage};
use super::event_loop::{LoopConfig, SEND_BLOCKS_MAX};
pub use super::shard::limits::LimitsConfig;
use super::shard::quota_board::QuotaBoard;
use super::shard::{self, shard_of, SessionEvent, ShardMsg, ShardSpec, ShardTorrent};
use super::sockets::{self, BindOptions, SocketError};
use super::tracker_worker::{TrackerWorker, TrackerWorkerConfig};
use super::uring::{check_usable, UringError};
use super::waker::Waker;
use crate::engine::settings::PEERS_PER_TORRENT_LIMIT;
use crate::engine::{EngineSettings, Torrent, TorrentError, TorrentSetup};
use crate::limits::RECEIVE_CHUNK_BYTES_MAX;
use crate::metainfo::Metainfo;
use crate::torrent::Bitfield;

/// Most shards.
pub const SHARDS_MAX: usize = 256;
/// Listen backlog of each shard's listener.
const BACKLOG: i32 = 1024;
/// How long `stop` gives the trackers to take the `stopped` announces.
const TRACKER_STOP_DEADLINE: Duration = Duration::from_secs(5);
/// Bytes of each pool buffer by default: `SEND_BLOCKS_MAX` blocks of 16 KiB
/// (64 KiB), so a coalesced read of adjacent blocks fills one buffer and
/// goes out in one send.
pub const POOL_BUFFER_BYTES_DEFAULT: usize = SEND_BLOCKS_MAX * crate::torrent::BLOCK_BYTES as usize;

// A shard receives into a whole pool buffer (while a connection is routed,
// and on kernels without recv rings): one receive must fit in the room the
// receive bounds leave (`limits::receive_buffer_bytes_max`).
const _: () = assert!(POOL_BUFFER_BYTES_DEFAULT <= RECEIVE_CHUNK_BYTES_MAX);
// A block read goes into one pool buffer: the largest block a peer may ask
// for by default must fit.
const _: () =
    assert!(crate::wire::decoder::BLOCK_BYTES_MAX_DEFAULT as usize <= POOL_BUFFER_BYTES_DEFAULT);
// Every peer of a torrent lives on the torrent's shard: one shard must be
// able to hold the most peers one torrent may be configured for.
const _: () = assert!(PEERS_PER_TORRENT_LIMIT <= super::shard::CONNS_PER_SHARD_MAX);

/// How the session runs.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub shards: usize,
    pub listen: SocketAddr,
    pub bind: BindOptions,
    pub settings: EngineSettings,
    pub loop_config: LoopConfig,
    /// Pin shard i to the i-th CPU this process may run on.
    pub pin: bool,
    /// Register each shard's buffer pool with its ring (READ_FIXED reads).
    /// Default off: measured no faster for page-cache reads, and it keeps
    /// the whole pool resident.
    pub register_buffers: bool,
    /// Rate limits (global and per torrent) and the global upload-slot
    /// budget; default: none.
    pub limits: LimitsConfig,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            shards: available_cpus(),
            listen: SocketAddr::from(([0, 0, 0, 0], 6881)),
            bind: BindOptions::default(),
            settings: EngineSettings::default(),
            loop_config: LoopConfig {
                ring_entries: 1024,
                ops_in_flight_max: 8192,
                buffers: 512,
                buffer_bytes: POOL_BUFFER_BYTES_DEFAULT,
            },
            pin: true,
            register_buffers: false,
            limits: LimitsConfig::default(),
        }
    }
}

/// One torrent to run.
pub struct TorrentSpec {
    pub metainfo: Arc<Metainfo>,
    pub save_dir: PathBuf,
    /// Pieces verified on disk.
    pub have: Bitfield,
    /// Download what is missing.
    pub download: bool,
    /// Addresses to dial at start.
    pub peers: Vec<SocketAddr>,
}

/// Why the session could not start.
#[derive(Debug, Error)]
pub enum SessionError {
    #[error(transparent)]
    Uring(#[from] UringError),
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error("{}: {source}", name)]
    Disk {
        name: String,
        #[source]
        source: DiskError,
    },
    #[error("{}: {source}", name)]
    Torrent {
        name: String,
        #[source]
        source: TorrentError,
    },
    #[error("shard count {0} is out of range: expected 1 to {SHARDS_MAX}")]
    Shards(usize),
    #[error(
        "pool buffers of {bytes} bytes: expected {min} (the largest block a peer may \
         request) to {max} (the most one receive may add to a connection's buffer)"
    )]
    PoolBufferBytes {
        bytes: usize,
        min: usize,
        max: usize,
    },
    #[error("the same torrent ({0}) is given twice")]
    Duplicate(String),
    #[error("cannot read the listener's address: {0}")]
    LocalAddr(#[source] std::io::Error),
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("cannot set up a waker: {0}")]
    Waker(String),
    #[error("cannot start the tracker worker: {0}")]
    Tracker(String),
}

/// The pool buffers must hold the largest block a peer may request (a block
/// read fills one buffer) and be no larger than one receive may be (a shard
/// receives into a whole buffer on kernels without recv rings).
fn check_pool_buffer(config: &SessionConfig) -> Result<(), SessionError> {
    let bytes = config.loop_config.buffer_bytes;
    let min = config.settings.peer.block_bytes_max as usize;
    let max = RECEIVE_CHUNK_BYTES_MAX;
    if (min..=max).contains(&bytes) {
        Ok(())
    } else {
        Err(SessionError::PoolBufferBytes { bytes, min, max })
    }
}

/// CPUs this process may run on.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(SHARDS_MAX)
}

/// What a stopped session did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StopReport {
    /// Connections moved from the shard that accepted them to the owner.
    pub handoffs: u64,
    /// Block bytes sent to peers, all torrents.
    pub uploaded: u64,
    /// Bytes of verified pieces downloaded, all torrents.
    pub downloaded: u64,
}

/// The running engine.
pub struct Session {
    threads: Vec<JoinHandle<()>>,
    routes: Vec<(Sender<ShardMsg>, super::waker::WakerHandle)>,
    events: Receiver<SessionEvent>,
    tracker: Option<TrackerWorker>,
    local_addr: SocketAddr,
    shards: usize,
}

/// A random peer id: our client prefix, then 12 random bytes.
fn new_peer_id(seed: u64) -> [u8; 20] {
    let mut id = *b"-RS0100-000000000000";
    let mut rng = crate::rng::Rng::new(seed);
    for b in id.iter_mut().skip(8) {
        *b = b"0123456789abcdefghijklmnopqrstuvwxyz"[rng.below_usize(36)];
    }
    id
}

fn time_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    t ^ (u64::from(std::process::id()) << 32) | 1
}

fn cpu_list() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; we set one bit and apply it to
    // the calling thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

impl Session {
    pub fn start(
        config: SessionConfig,
        torrents: Vec<TorrentSpec>,
    ) -> Result<Session, SessionError> {
        check_usable()?;
        config.bind.validate()?;
        let n = config.shards;
        if !(1..=SHARDS_MAX).contains(&n) {
            return Err(SessionError::Shards(n));
        }
        check_pool_buffer(&config)?;
        // Listeners: the first resolves port 0; the rest share its port.
        let first = sockets::tcp_listener(config.listen, &config.bind, n > 1, BACKLOG)?;
        let local_addr = first.local_addr().map_err(SessionError::LocalAddr)?;
        let mut listeners: Vec<Option<TcpListener>> = vec![Some(first)];
        for _ in 1..n {
            let addr = SocketAddr::new(config.listen.ip(), local_addr.port());
            listeners.push(Some(sockets::tcp_listener(
                addr,
                &config.bind,
                true,
                BACKLOG,
            )?));
        }
        let seed = time_seed();
        let peer_id = new_peer_id(seed);
        let epoch = Instant::now();
        let now = Duration::ZERO;
        let mut per_shard: Vec<Vec<ShardTorrent>> = (0..n).map(|_| Vec::new()).collect();
        let mut seen = std::collections::HashSet::new();
        for (i, spec) in torrents.into_iter().enumerate() {
            let m = spec.metainfo;
            let name = m.info.name.clone();
            if !seen.insert(m.info_hash) {
                return Err(SessionError::Duplicate(name));
            }
            let storage =
                TorrentStorage::open(&m, &spec.save_dir, spec.download).map_err(|source| {
                    SessionError::Disk {
                        name: name.clone(),
                        source,
                    }
                })?;
            let setup = TorrentSetup {
                info_hash: m.info_hash,
                piece_length: m.info.piece_length,
                total_length: m.info.total_length,
                piece_hashes: Arc::from(m.info.pieces.clone()),
                have: spec.have,
                peer_id,
                listen_port: local_addr.port(),
                listen_addr: Some(local_addr),
                has_trackers: !m.trackers.is_empty(),
                download: spec.download,
                rng_seed: seed.wrapping_add(i as u64 + 1),
            };
            let torrent = Torrent::new(setup, config.settings.clone(), now).map_err(|source| {
                SessionError::Torrent {
                    name: name.clone(),
                    source,
                }
            })?;
            let owner = shard_of(&m.info_hash, n);
            per_shard[owner].push(ShardTorrent {
                torrent,
                storage,
                trackers: m.trackers.clone(),
                name,
                peers: spec.peers,
            });
        }
        let tracker = TrackerWorker::start(TrackerWorkerConfig {
            bind: config.bind.clone(),
            ..TrackerWorkerConfig::default()
        })
        .map_err(|e| SessionError::Tracker(e.to_string()))?;
        let mut wakers = Vec::with_capacity(n);
        let mut inboxes = Vec::with_capacity(n);
        let mut routes = Vec::with_capacity(n);
        for _ in 0..n {
            let w = Waker::new().map_err(|e| SessionError::Waker(e.to_string()))?;
            let (tx, rx) = crossbeam_channel::bounded(super::shard::INBOX_MAX);
            routes.push((tx, w.handle()));
            wakers.push(w);
            inboxes.push(rx);
        }
        let (events_tx, events) = crossbeam_channel::unbounded();
        let board = QuotaBoard::new(n);
        let cpus = cpu_list();
        let mut threads = Vec::with_capacity(n);
        let mut parts = per_shard.into_iter();
        for (index, ((waker, inbox), listener)) in wakers
            .into_iter()
            .zip(inboxes)
            .zip(listeners.iter_mut())
            .enumerate()
        {
            let spec = ShardSpec {
                index,
                shards: n,
                listener: listener.take(),
                torrents: parts.next().unwrap_or_default(),
                inbox,
                waker,
                routes: routes.clone(),
                tracker: tracker.handle(),
                events: events_tx.clone(),
                bind: config.bind.clone(),
                loop_config: config.loop_config,
                register_buffers: config.register_buffers,
                epoch,
                limits: config.limits,
                board: board.clone(),
            };
            let cpu = (config.pin && !cpus.is_empty()).then(|| cpus[index % cpus.len()]);
            let handle = std::thread::Builder::new()
                .name(format!("shard-{index}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        pin_to(cpu);
                    }
                    shard::run(spec);
                })
                .map_err(SessionError::Thread)?;
            threads.push(handle);
        }
        Ok(Session {
            threads,
            routes,
            events,
            tracker: Some(tracker),
            local_addr,
            shards: n,
        })
    }

    /// The address the shards listen on (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    /// What the shards report.
    pub fn events(&self) -> &Receiver<SessionEvent> {
        &self.events
    }

    /// Stops every shard, waits for them, then for the tracker worker
    /// (bounded). Returns the hand-offs and the bytes moved.
    pub fn stop(mut self) -> StopReport {
        for (tx, wake) in &self.routes {
            let _ = tx.send(ShardMsg::Stop);
            wake.wake();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let mut report = StopReport::default();
        // Each shard's last stats (sent as it stops) hold its final counts.
        let mut last: std::collections::HashMap<usize, (u64, u64)> = Default::default();
        while let Ok(e) = self.events.try_recv() {
            match e {
                SessionEvent::Stopped { handoffs, .. } => report.handoffs += handoffs,
                SessionEvent::Stats {
                    shard, torrents, ..
                } => {
                    let up = torrents.iter().map(|(_, s, _)| s.uploaded).sum();
                    let down = torrents.iter().map(|(_, s, _)| s.downloaded).sum();
                    last.insert(shard, (up, down));
                }
                _ => {}
            }
        }
        for (up, down) in last.values() {
            report.uploaded += up;
            report.downloaded += down;
        }
        if let Some(t) = self.tracker.take() {
            t.shutdown(TRACKER_STOP_DEADLINE);
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_buffers_must_hold_a_block_and_fit_a_receive() {
        let mut c = SessionConfig::default();
        assert!(check_pool_buffer(&c).is_ok());
        c.loop_config.buffer_bytes = RECEIVE_CHUNK_BYTES_MAX + 1;
        assert!(matches!(
            check_pool_buffer(&c),
            Err(SessionError::PoolBufferBytes { max, .. }) if max == RECEIVE_CHUNK_BYTES_MAX
        ));
        c.loop_config.buffer_bytes = 32 * 1024;
        c.settings.peer.block_bytes_max = 64 * 1024;
        let e = check_pool_buffer(&c).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("pool buffers of 32768 bytes: expected 65536"),
            "{e}"
        );
    }
}
