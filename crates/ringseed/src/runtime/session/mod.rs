//! `Session`: the running engine, and the handle every client uses (the
//! command line, later the daemon and its API, and the tests).
//!
//! Start-up does everything that can fail with a clear message before any
//! thread starts: the settings, the interface check, the listeners, the
//! wakers. Then one shard thread per core, the tracker worker and the
//! checker pool.
//!
//! Listeners: one socket per listen address, opened here without
//! SO_REUSEPORT and shared by every shard (each shard's ring keeps a
//! accept on its own dup of the fd). So the port is ours from the
//! first bind: another process asking for it, even one that sets
//! SO_REUSEPORT, is refused, and if another process holds it we are
//! refused ([`SocketError::AddressInUse`]) before anything else starts. A
//! connection accepted by one shard is handed to the torrent's owner after
//! the handshake names it, as before.
//!
//! While it runs, torrents are added, removed, paused, resumed, checked
//! again, limited and fed peer addresses through the owning shard's bounded
//! control queue ([`control`]); settings change through one checked type
//! ([`Settings`]). Each operation answers with a typed result: a full queue
//! is [`SessionError::Busy`] at once, never a wait or a lost request. Numbers
//! are pulled ([`Session::snapshot`]); news comes on a bounded event channel
//! ([`Session::events`]).
//!
//! The session's own table (which id is which torrent, on which shard) is
//! control-plane state behind a mutex; the shards never touch it.
//! [`Session::stop`] cancels the checks, asks every shard to stop (they
//! send `stopped` announces, close connections, flush files), joins them,
//! then gives the tracker worker a deadline to finish the announces.

pub mod control;
pub mod discovery;
pub mod registry;
pub mod settings;
pub mod types;

#[cfg(test)]
mod tests;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use thiserror::Error;

use self::control::{Control, ControlTx, Pending, Removed, SendError, ShardAdd, WaitError};
use self::registry::Registry;
pub use self::settings::{available_cpus, SessionConfig, Settings, SettingsRaw, SHARDS_MAX};
pub use self::types::{
    AddTorrent, Event, Have, Mode, StopReport, TorrentId, TorrentLimits, TorrentSnapshot,
    TorrentState,
};
use super::checker::Checker;
use super::disk::{DiskError, TorrentStorage};
use super::shard::quota_board::QuotaBoard;
use super::shard::{self, EventSink, Route, ShardSpec};
use super::sockets::{self, SocketError};
use super::tracker_worker::{TrackerWorker, TrackerWorkerConfig};
use super::uring::{check_usable, UringError};
use super::waker::Waker;
pub use crate::runtime::shard::limits::LimitsConfig;
use crate::InfoHash;

/// Listen backlog of each listening socket (shared by the shards).
const BACKLOG: i32 = 1024;
/// How long `stop` gives the trackers to take the `stopped` announces.
const TRACKER_STOP_DEADLINE: Duration = Duration::from_secs(5);
/// Longest an operation waits for its shard's answer. A removal waits for
/// the torrent's disk ops (bounded by the shard's own limits), so this is
/// generous; a shard that does not answer in it is stuck.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a `Control::Known` message waits for room in a shard's queue.
const KNOWN_SEND_WAIT: Duration = Duration::from_secs(5);

/// Why the session could not start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Uring(#[from] UringError),
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error(transparent)]
    Config(#[from] settings::ConfigRangeError),
    #[error("cannot read the listener's address: {0}")]
    LocalAddr(#[source] std::io::Error),
    #[error(
        "listen addresses {first} and {second} overlap (the same port on the same \
         address, or on the unspecified address of the same family): give each once"
    )]
    ListenOverlap {
        first: SocketAddr,
        second: SocketAddr,
    },
    #[error("cannot share the listener on {addr} among the shards: {source}")]
    ShareListener {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("cannot set up a waker: {0}")]
    Waker(String),
    #[error("cannot start the tracker worker: {0}")]
    Tracker(String),
    #[error(transparent)]
    Discovery(#[from] discovery::DiscoveryError),
    #[error(transparent)]
    Checker(#[from] super::checker::CheckerStartError),
}

/// Why an operation failed.
#[derive(Debug, Error)]
pub enum SessionError {
    #[error("{name}: the torrent is in the session already, as {id}")]
    Duplicate { name: String, id: TorrentId },
    #[error("no torrent {0} in the session")]
    UnknownTorrent(TorrentId),
    #[error("{name}: {source}")]
    Disk {
        name: String,
        #[source]
        source: DiskError,
    },
    #[error("the session holds {0} torrents, the most allowed")]
    Full(usize),
    /// The owning shard's control queue is full: try again later.
    #[error("busy: {0}")]
    Busy(#[source] SendError),
    #[error(transparent)]
    Send(SendError),
    #[error(transparent)]
    Answer(#[from] WaitError),
    #[error("these settings do not fit the running session: {0}")]
    Settings(#[source] settings::ConfigRangeError),
    #[error("cannot delete {}: {source}", path.display())]
    Delete {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the session is stopping")]
    Stopped,
    #[error("magnet: {0}")]
    Magnet(String),
}

impl From<SendError> for SessionError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Full { .. } => SessionError::Busy(e),
            SendError::Gone { .. } => SessionError::Send(e),
        }
    }
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

/// Whether two listen addresses (after the bind address is applied) would
/// take the same port of the same family and address: equal, or one of
/// them unspecified. Port 0 stands for the one port every port-0 address
/// gets.
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// One listening socket per address, in order, with its address (port 0
/// resolved: the first address with port 0 gets a port from the kernel,
/// the others with port 0 take the same). No SO_REUSEPORT: see the module
/// header. Addresses that would overlap are refused first, so a bind error
/// always means another program.
fn open_listeners(
    addrs: &[SocketAddr],
    bind: &sockets::BindOptions,
) -> Result<Vec<(SocketAddr, TcpListener)>, StartError> {
    let mut resolved = Vec::with_capacity(addrs.len());
    for &a in addrs {
        let local = sockets::listen_address(a, bind)?;
        if let Some(&(first, _)) = resolved.iter().find(|&&(_, r)| overlap(r, local)) {
            return Err(StartError::ListenOverlap { first, second: a });
        }
        resolved.push((a, local));
    }
    let mut port_zero = None;
    let mut out = Vec::with_capacity(addrs.len());
    for (asked, _) in resolved {
        let mut addr = asked;
        if addr.port() == 0 {
            if let Some(p) = port_zero {
                addr.set_port(p);
            }
        }
        let listener = sockets::tcp_listener(addr, bind, false, BACKLOG)?;
        let got = listener.local_addr().map_err(StartError::LocalAddr)?;
        if asked.port() == 0 && port_zero.is_none() {
            port_zero = Some(got.port());
        }
        out.push((got, listener));
    }
    Ok(out)
}

/// The running engine.
pub struct Session {
    threads: Vec<JoinHandle<StopReport>>,
    routes: Vec<Route>,
    events: Receiver<Event>,
    events_dropped: Arc<AtomicU64>,
    registry: Arc<Mutex<Registry>>,
    settings: Mutex<Arc<Settings>>,
    /// The start-up values (settings are checked against them).
    config: SessionConfig,
    tracker: Option<TrackerWorker>,
    checker: Option<Checker>,
    /// Never empty (the config's list is checked).
    local_addrs: Vec<SocketAddr>,
    /// Each shard's loop turns (see [`Session::shard_turns`]).
    turns: Vec<Arc<AtomicU64>>,
    /// The DHT, LSD and the metadata fetcher.
    discovery: Option<discovery::Discovery>,
}

impl Session {
    /// Starts the shards with no torrents; add them with
    /// [`Session::add_torrent`].
    pub fn start(config: SessionConfig, settings: Settings) -> Result<Session, StartError> {
        config.validate()?;
        config.validate_with(&settings)?;
        check_usable()?;
        config.bind.validate()?;
        let n = config.shards;
        let listeners = open_listeners(&config.listen, &config.bind)?;
        let local_addrs: Vec<SocketAddr> = listeners.iter().map(|(a, _)| *a).collect();
        let own_addrs: Arc<[SocketAddr]> =
            sockets::own_addresses(&local_addrs, &config.bind).into();
        let mut shard_listeners = Vec::with_capacity(n);
        for _ in 0..n {
            let mut mine = Vec::with_capacity(listeners.len());
            for (addr, l) in &listeners {
                mine.push(l.try_clone().map_err(|source| StartError::ShareListener {
                    addr: *addr,
                    source,
                })?);
            }
            shard_listeners.push(Some(mine));
        }
        drop(listeners);
        let listen_port = local_addrs.first().map_or(0, SocketAddr::port);
        let seed = time_seed();
        let peer_id = new_peer_id(seed);
        let epoch = Instant::now();
        let tracker = TrackerWorker::start(TrackerWorkerConfig {
            bind: config.bind.clone(),
            ..TrackerWorkerConfig::default()
        })
        .map_err(|e| StartError::Tracker(e.to_string()))?;
        let checker = Checker::start(config.checker_threads, config.check_hash_threads)?;
        let mut wakers = Vec::with_capacity(n);
        let mut inboxes = Vec::with_capacity(n);
        let mut routes = Vec::with_capacity(n);
        for shard in 0..n {
            let w = Waker::new().map_err(|e| StartError::Waker(e.to_string()))?;
            let (handoff_tx, handoff_rx) = crossbeam_channel::bounded(shard::HANDOFF_QUEUE_MAX);
            let (control_tx, control_rx) = crossbeam_channel::bounded(config.control_queue_max);
            routes.push(Route {
                handoff: handoff_tx,
                control: ControlTx {
                    shard,
                    tx: control_tx,
                    wake: w.handle(),
                    max: config.control_queue_max,
                },
            });
            wakers.push(w);
            inboxes.push((handoff_rx, control_rx));
        }
        let (events_tx, events) = crossbeam_channel::bounded(config.events_max);
        let events_dropped = Arc::new(AtomicU64::new(0));
        let sink = EventSink {
            tx: events_tx,
            dropped: events_dropped.clone(),
        };
        let registry = Arc::new(Mutex::new(Registry::default()));
        let discovery = discovery::Discovery::start(discovery::DiscoverySpec {
            dht: config.dht.clone(),
            lsd: config.lsd,
            bind: config.bind.clone(),
            local: SocketAddr::new(
                local_addrs
                    .first()
                    .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), SocketAddr::ip),
                listen_port,
            ),
            peer_id,
            listen_port,
            rng_seed: seed ^ 0xd47,
            registry: registry.clone(),
            routes: routes.clone(),
            tracker: tracker.handle(),
            events: sink.clone(),
        })?;
        let dht = discovery.dht_handle();
        let lsd = discovery.lsd_handle();
        let settings = Arc::new(settings);
        let board = QuotaBoard::new(n);
        let cpus = cpu_list();
        let turns: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect();
        let mut threads = Vec::with_capacity(n);
        for (index, ((waker, (handoff, control)), listener)) in wakers
            .into_iter()
            .zip(inboxes)
            .zip(shard_listeners.iter_mut())
            .enumerate()
        {
            let spec = ShardSpec {
                index,
                shards: n,
                listeners: listener.take().unwrap_or_default(),
                handoff,
                control,
                waker,
                routes: routes.clone(),
                tracker: tracker.handle(),
                checker: checker.handle(),
                events: sink.clone(),
                bind: config.bind.clone(),
                loop_config: config.loop_config,
                register_buffers: config.register_buffers,
                epoch,
                settings: settings.clone(),
                peer_id,
                listen_port,
                own_addrs: own_addrs.clone(),
                rng_seed: seed.wrapping_add(index as u64 + 1),
                board: board.clone(),
                turns: turns[index].clone(),
                dht: dht.clone(),
                lsd: lsd.clone(),
                pex: config.pex,
                send_path: config.send_path,
            };
            let cpu = (config.pin && !cpus.is_empty()).then(|| cpus[index % cpus.len()]);
            let handle = std::thread::Builder::new()
                .name(format!("shard-{index}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        pin_to(cpu);
                    }
                    shard::run(spec)
                })
                .map_err(StartError::Thread)?;
            threads.push(handle);
        }
        Ok(Session {
            threads,
            routes,
            events,
            events_dropped,
            registry,
            settings: Mutex::new(settings),
            config,
            tracker: Some(tracker),
            checker: Some(checker),
            local_addrs,
            turns,
            discovery: Some(discovery),
        })
    }

    /// Starts fetching a magnet's metadata (BEP 9) from its `x.pe` peers,
    /// its trackers and the DHT; [`Event::Metadata`] brings the info
    /// dictionary, checked against the info-hash. Fetching one already
    /// being fetched is not an error.
    pub fn fetch_metadata(&self, magnet: &crate::magnet::Magnet) -> Result<(), SessionError> {
        self.discovery
            .as_ref()
            .ok_or(SessionError::Stopped)?
            .fetch(magnet)
            .map_err(|e| SessionError::Magnet(e.to_string()))
    }

    /// Stops fetching a magnet's metadata (it was removed).
    pub fn cancel_metadata(&self, info_hash: InfoHash) {
        if let Some(d) = &self.discovery {
            d.cancel(info_hash);
        }
    }

    /// The DHT's good nodes now, to save for the next start (empty when
    /// the DHT is off).
    pub fn dht_nodes(&self) -> Vec<SocketAddr> {
        self.discovery
            .as_ref()
            .map(discovery::Discovery::dht_nodes)
            .unwrap_or_default()
    }

    /// Nodes in the DHT's routing table now, read without waiting (0 when
    /// the DHT is off): for status displays.
    pub fn dht_node_count(&self) -> usize {
        self.discovery
            .as_ref()
            .map_or(0, discovery::Discovery::dht_node_count)
    }

    /// The DHT's UDP address, when it runs.
    pub fn dht_addr(&self) -> Option<SocketAddr> {
        self.discovery
            .as_ref()
            .and_then(discovery::Discovery::dht_addr)
    }

    /// The first address the shards listen on (port 0 resolved): the one
    /// whose port is announced.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addrs
            .first()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Every address the shards listen on, in the order given (port 0
    /// resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    pub fn shards(&self) -> usize {
        self.routes.len()
    }

    /// News from the shards (bounded; see [`Event`]).
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Events dropped because the reader fell behind.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped.load(Ordering::Relaxed)
    }

    /// Each shard's count of loop turns, by shard index. A shard turns at
    /// least every 50 ms even when idle (its longest wait), so a count that
    /// stays put for seconds means a hung shard: the daemon sends systemd
    /// `WATCHDOG=1` only while every count moves. Cheap (relaxed atomic
    /// loads; no request to the shards).
    pub fn shard_turns(&self) -> Vec<u64> {
        self.turns
            .iter()
            .map(|t| t.load(Ordering::Relaxed))
            .collect()
    }

    /// A shard that stopped although nobody asked, with why if it said.
    pub fn failure(&self) -> Option<String> {
        self.threads
            .iter()
            .position(|t| t.is_finished())
            .map(|i| format!("shard {i} stopped unexpectedly"))
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves the table consistent (every
        // change to it is one call), so a poisoned lock is still usable.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn route_of(&self, id: TorrentId) -> Result<&ControlTx, SessionError> {
        let shard = self
            .registry()
            .shard_of(id)
            .ok_or(SessionError::UnknownTorrent(id))?;
        self.routes
            .get(shard)
            .map(|r| &r.control)
            .ok_or(SessionError::UnknownTorrent(id))
    }

    /// The torrent with this info-hash, if it is in the session.
    pub fn find(&self, info_hash: &InfoHash) -> Option<TorrentId> {
        self.registry().by_hash(info_hash)
    }

    /// Every torrent's id.
    pub fn torrent_ids(&self) -> Vec<TorrentId> {
        self.registry().ids()
    }

    /// Adds a torrent and returns its id once its shard has it: checking
    /// (`Have::Check`), paused, or serving (`Have::Known`).
    pub fn add_torrent(&self, add: AddTorrent) -> Result<TorrentId, SessionError> {
        self.send_add(add)?.wait(self, ANSWER_TIMEOUT)
    }

    /// [`Session::add_torrent`] without waiting for the shard's answer.
    pub fn send_add(&self, add: AddTorrent) -> Result<AddPending, SessionError> {
        let m = add.metainfo.clone();
        let name = m.info.name.clone();
        // Known pieces serve at once: the files are opened here, off the
        // shard. A torrent to check has them opened by the checker.
        let storage = match &add.have {
            Have::Known(_) => Some(
                TorrentStorage::open(&m, &add.save_dir, add.mode == Mode::Download).map_err(
                    |source| SessionError::Disk {
                        name: name.clone(),
                        source,
                    },
                )?,
            ),
            Have::Check | Have::Partial { .. } => None,
        };
        let (id, shard) = {
            let mut reg = self.registry();
            let shard = reg.place(&m.info_hash, self.routes.len());
            (reg.reserve(m.info_hash, shard, add.save_dir.clone()), shard)
        };
        let id = id.map_err(|e| match e {
            registry::ReserveError::Duplicate(id) => SessionError::Duplicate { name, id },
            registry::ReserveError::Full(n) => SessionError::Full(n),
        })?;
        let msg = ShardAdd {
            id,
            metainfo: m,
            save_dir: add.save_dir,
            mode: add.mode,
            have: add.have,
            storage,
            paused: add.paused,
            peers: add.peers,
            limits: add.limits,
            uploaded_before: add.uploaded_before,
            downloaded_before: add.downloaded_before,
        };
        self.tell_known(msg.metainfo.info_hash, Some(shard));
        let sent = self.routes[shard].control.request(|reply| Control::Add {
            add: Box::new(msg),
            reply,
        });
        match sent {
            Ok(pending) => Ok(AddPending { id, pending }),
            Err(e) => {
                self.release(id);
                Err(e.into())
            }
        }
    }

    /// Tells every shard which shard owns `info_hash` (`None`: no longer
    /// in the session): shards route incoming connections by it, and their
    /// MSE responders look torrents up by `HASH('req2', info_hash)` in the
    /// same table. Waits for room in a full queue: a lost message would
    /// leave a torrent that peers landing on that shard cannot reach.
    fn tell_known(&self, info_hash: crate::info_hash::InfoHash, owner: Option<usize>) {
        for route in &self.routes {
            let msg = Control::Known { info_hash, owner };
            if let Err(e) = route.control.send_wait(msg, KNOWN_SEND_WAIT) {
                tracing::warn!(
                    "torrent {info_hash}: peers landing on some shard may not reach it: {e}"
                );
            }
        }
    }

    /// Gives a torrent's id back and tells the shards it is gone; returns
    /// its save path.
    fn release(&self, id: TorrentId) -> Option<std::path::PathBuf> {
        let (info_hash, save_dir) = {
            let mut r = self.registry();
            (r.info_hash(id), r.release(id))
        };
        if let Some(h) = info_hash {
            self.tell_known(h, None);
        }
        save_dir
    }

    /// Removes a torrent: its peers are closed, its disk ops finish, its
    /// files close; with `delete_files`, its files are deleted (and the
    /// folders the torrent made, once empty). Returns once it is gone.
    pub fn remove(&self, id: TorrentId, delete_files: bool) -> Result<Removed, SessionError> {
        let removed = self
            .route_of(id)?
            .request(|reply| Control::Remove { id, reply })?
            .wait(ANSWER_TIMEOUT);
        let removed = match removed {
            Ok(r) => r,
            Err(WaitError::Refused(control::ControlError::UnknownTorrent(_))) => {
                self.release(id);
                return Err(SessionError::UnknownTorrent(id));
            }
            Err(e) => return Err(e.into()),
        };
        let save_dir = self.release(id);
        if delete_files {
            delete(&removed.files, save_dir.as_deref())?;
        }
        Ok(removed)
    }

    pub fn pause(&self, id: TorrentId) -> Result<(), SessionError> {
        self.ask(id, |reply| Control::Pause { id, reply })
    }

    pub fn resume(&self, id: TorrentId) -> Result<(), SessionError> {
        self.ask(id, |reply| Control::Resume { id, reply })
    }

    /// Checks the torrent's data again (it stops serving meanwhile).
    pub fn recheck(&self, id: TorrentId) -> Result<(), SessionError> {
        self.ask(id, |reply| Control::Recheck { id, reply })
    }

    pub fn set_limits(&self, id: TorrentId, limits: TorrentLimits) -> Result<(), SessionError> {
        self.ask(id, |reply| Control::SetLimits { id, limits, reply })
    }

    /// Addresses to dial; returns how many were new to the torrent.
    pub fn add_peers(&self, id: TorrentId, peers: Vec<SocketAddr>) -> Result<usize, SessionError> {
        self.send_add_peers(id, peers)?
            .wait(ANSWER_TIMEOUT)
            .map_err(Into::into)
    }

    /// [`Session::add_peers`] without waiting.
    pub fn send_add_peers(
        &self,
        id: TorrentId,
        peers: Vec<SocketAddr>,
    ) -> Result<Pending<usize>, SessionError> {
        Ok(self.route_of(id)?.request(|reply| Control::AddPeers {
            id,
            peers,
            source: crate::engine::PeerSource::User,
            reply,
        })?)
    }

    fn ask(
        &self,
        id: TorrentId,
        build: impl FnOnce(control::Reply<()>) -> Control,
    ) -> Result<(), SessionError> {
        self.route_of(id)?
            .request(build)?
            .wait(ANSWER_TIMEOUT)
            .map_err(Into::into)
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// New settings for every shard and torrent. Returns the names of what
    /// changed. Shards that got them keep them even if a later shard's
    /// queue was full (the error says which); apply again to finish.
    pub fn apply_settings(&self, settings: Settings) -> Result<Vec<&'static str>, SessionError> {
        self.config
            .validate_with(&settings)
            .map_err(SessionError::Settings)?;
        let settings = Arc::new(settings);
        let changed = settings.changes_from(&self.settings());
        let mut pending = Vec::with_capacity(self.routes.len());
        for r in &self.routes {
            let s = settings.clone();
            pending.push(
                r.control
                    .request(|reply| Control::ApplySettings { settings: s, reply })?,
            );
        }
        for p in pending {
            p.wait(ANSWER_TIMEOUT)?;
        }
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = settings;
        Ok(changed)
    }

    /// The torrent's pieces that are verified and written (the write
    /// completed): what it announces as `have`. While it is checked, the
    /// pieces from before the check (none for a torrent added with
    /// [`Have::Check`], the trusted ones for [`Have::Partial`]). The daemon
    /// records these after an fdatasync of the torrent's files.
    pub fn pieces(&self, id: TorrentId) -> Result<crate::torrent::Bitfield, SessionError> {
        Ok(self
            .route_of(id)?
            .request(|reply| Control::Pieces { id, reply })?
            .wait(ANSWER_TIMEOUT)?)
    }

    /// The torrent's connected peers (none while it is paused or checked).
    pub fn peers(&self, id: TorrentId) -> Result<Vec<crate::engine::PeerInfo>, SessionError> {
        Ok(self
            .route_of(id)?
            .request(|reply| Control::Peers { id, reply })?
            .wait(ANSWER_TIMEOUT)?)
    }

    /// Every torrent's pieces version, sorted by id: a number that changes
    /// whenever [`Session::pieces`] would answer differently (the checks
    /// done in the high 32 bits, the count of pieces in the low 32; between
    /// two checks the pieces only grow). For the periodic save of many
    /// torrents: ask [`Session::pieces`] only for those whose version
    /// changed since the last save. One request per shard.
    pub fn pieces_versions(&self) -> Result<Vec<(TorrentId, u64)>, SessionError> {
        let mut pending = Vec::with_capacity(self.routes.len());
        for r in &self.routes {
            pending.push(
                r.control
                    .request(|reply| Control::PiecesVersions { reply })?,
            );
        }
        let mut out = Vec::new();
        for p in pending {
            out.extend(p.wait(ANSWER_TIMEOUT)?);
        }
        out.sort_by_key(|&(id, _)| id);
        Ok(out)
    }

    /// Announces to the torrent's trackers now ("force reannounce"). An
    /// announce in flight is not doubled (its answer sets the next time);
    /// a paused or checking torrent, or one without trackers, does nothing.
    pub fn reannounce(&self, id: TorrentId) -> Result<(), SessionError> {
        self.ask(id, |reply| Control::Reannounce { id, reply })
    }

    /// Every torrent's numbers, from every shard.
    pub fn snapshot(&self) -> Result<Vec<TorrentSnapshot>, SessionError> {
        let mut pending = Vec::with_capacity(self.routes.len());
        for r in &self.routes {
            pending.push(
                r.control
                    .request(|reply| Control::Snapshot { id: None, reply })?,
            );
        }
        let mut out = Vec::new();
        for p in pending {
            out.extend(p.wait(ANSWER_TIMEOUT)?);
        }
        out.sort_by_key(|s| s.id);
        Ok(out)
    }

    /// One torrent's numbers.
    pub fn torrent(&self, id: TorrentId) -> Result<TorrentSnapshot, SessionError> {
        let mut v = self
            .route_of(id)?
            .request(|reply| Control::Snapshot {
                id: Some(id),
                reply,
            })?
            .wait(ANSWER_TIMEOUT)?;
        v.pop().ok_or(SessionError::UnknownTorrent(id))
    }

    /// Tests only: makes a shard sleep for `d`, so its control queue
    /// fills. Returns once the shard has taken the request off its queue
    /// and is asleep (it sleeps right where it read the request: nothing
    /// queued behind it is handled before the sleep ends).
    #[cfg(test)]
    pub(crate) fn stall_shard(&self, shard: usize, d: Duration) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.routes[shard]
            .control
            .send(Control::Stall(d, tx))
            .is_ok()
        {
            let _ = rx.recv_timeout(ANSWER_TIMEOUT);
        }
    }

    /// Cancels the checks, stops every shard, waits for them, then for the
    /// tracker worker (bounded). Returns the hand-offs and the bytes moved.
    pub fn stop(self) -> StopReport {
        self.stop_keeping_nodes().0
    }

    /// [`Session::stop`], also returning the DHT's good nodes at the end
    /// (for the daemon to save, so that the next start is not cold).
    pub fn stop_keeping_nodes(mut self) -> (StopReport, Vec<SocketAddr>) {
        // Checks first: a shard waiting on nothing exits at once, and a
        // cancelled check ends within a few reads.
        if let Some(c) = self.checker.as_ref() {
            c.cancel_all();
        }
        for r in &self.routes {
            // A full queue: the shard is behind; a blocking send waits
            // for it (the Stop must arrive).
            if r.control.send(Control::Stop).is_err() {
                let _ = r.control.tx.send_timeout(Control::Stop, ANSWER_TIMEOUT);
                r.wake().wake();
            }
        }
        let mut report = StopReport::default();
        for t in self.threads.drain(..) {
            if let Ok(r) = t.join() {
                report.add(&r);
            }
        }
        self.routes.clear();
        if let Some(c) = self.checker.take() {
            c.stop();
        }
        let nodes = match self.discovery.take() {
            Some(d) => d.stop(TRACKER_STOP_DEADLINE),
            None => Vec::new(),
        };
        if let Some(t) = self.tracker.take() {
            t.shutdown(TRACKER_STOP_DEADLINE);
        }
        (report, nodes)
    }
}

/// The answer to an add, on its way.
pub struct AddPending {
    pub id: TorrentId,
    pending: Pending<()>,
}

impl AddPending {
    /// Waits for the shard; the id is valid once this returns it. A refusal
    /// gives the id back to `session`.
    pub fn wait(self, session: &Session, timeout: Duration) -> Result<TorrentId, SessionError> {
        match self.pending.wait(timeout) {
            Ok(()) => Ok(self.id),
            Err(e @ (WaitError::Refused(_) | WaitError::Gone { .. })) => {
                session.release(self.id);
                Err(e.into())
            }
            // No answer yet: the shard may still take it; the id stays.
            Err(e) => Err(e.into()),
        }
    }
}

/// Deletes a removed torrent's files, then the folders under `save_dir`
/// they leave empty. A file already gone is no error.
fn delete(
    files: &[std::path::PathBuf],
    save_dir: Option<&std::path::Path>,
) -> Result<(), SessionError> {
    for f in files {
        match std::fs::remove_file(f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SessionError::Delete {
                    path: f.clone(),
                    source,
                })
            }
        }
    }
    let Some(save_dir) = save_dir else {
        return Ok(());
    };
    // Parents of the files, deepest first, never the save directory itself
    // nor anything outside it.
    let mut dirs: Vec<&std::path::Path> = files
        .iter()
        .flat_map(|f| f.ancestors().skip(1))
        .filter(|d| d.starts_with(save_dir) && *d != save_dir)
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    for d in dirs {
        // Not empty (the user's own files) or gone: left alone.
        let _ = std::fs::remove_dir(d);
    }
    Ok(())
}
