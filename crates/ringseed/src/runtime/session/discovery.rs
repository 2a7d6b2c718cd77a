//! Peer discovery beyond the torrents' trackers, for the session: the DHT
//! worker (BEP 5), local service discovery (BEP 14), and magnets: the
//! metadata fetcher (BEP 9) with the peers that feed it.
//!
//! Boundary: the workers own their sockets and threads (`dht_worker`,
//! `lsd_worker`, `metadata_fetch`); this module starts them with the
//! session, routes what they find, and stops them. Addresses found for a
//! torrent in the session go to its shard as `AddPeers` (never waiting:
//! a full control queue drops them, the next lookup brings them again);
//! addresses for a magnet being fetched go to the fetcher.
//!
//! Rules, decided on purpose:
//! - the library's default is no DHT and no LSD (a test or an embedding
//!   never reaches outside by accident); the command line and the daemon
//!   turn the DHT on by default, as qBittorrent does;
//! - private torrents (BEP 27) are never announced to the DHT or LSD; the
//!   shard decides that when a torrent starts;
//! - a magnet's peers come from its `x.pe` addresses, its `tr` trackers
//!   (announced at once, then every [`MAGNET_ANNOUNCE_INTERVAL`]) and a DHT
//!   lookup, all at once; when the metadata arrives the caller gets
//!   [`Event::Metadata`] and adds the torrent like any other, with the
//!   peers the fetch met;
//! - at most [`MAGNETS_MAX`] magnets are fetched at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, Receiver, Sender};

use super::control::Control;
use super::registry::Registry;
use super::types::Event;
use crate::engine::PeerSource;
use crate::magnet::Magnet;
use crate::runtime::dht_worker::{DhtHandle, DhtWorker, DhtWorkerConfig};
use crate::runtime::lsd_worker::{LsdHandle, LsdWorker, LsdWorkerConfig};
use crate::runtime::metadata_fetch::{FetcherConfig, MetadataFetcher};
use crate::runtime::shard::{EventSink, Route};
use crate::runtime::sockets::BindOptions;
use crate::runtime::tracker_worker::{TrackerHandle, TrackerJob, TrackerReply};
use crate::tracker::AnnounceRequest;
use crate::InfoHash;

/// Magnets whose metadata is fetched at once.
pub const MAGNETS_MAX: usize = 1_000;
/// How often a magnet's trackers are asked again while it has no metadata.
pub const MAGNET_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(120);
/// Tracker replies waiting for the discovery thread.
const TRACKER_REPLIES_MAX: usize = 256;

/// The DHT's start-up values (see `DhtWorkerConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DhtOptions {
    /// `host:port` of the nodes to bootstrap from.
    pub bootstrap: Vec<String>,
    /// Nodes saved at the last shutdown (the daemon keeps them).
    pub saved_nodes: Vec<SocketAddr>,
    /// BEP 43: ask, never answer.
    pub read_only: bool,
}

/// Why the discovery workers could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("cannot start the DHT: {0}")]
    Dht(String),
    #[error("cannot start local service discovery: {0}")]
    Lsd(String),
    #[error("cannot start the metadata fetcher: {0}")]
    Fetcher(String),
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Why a magnet could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum MagnetError {
    #[error("{0} magnets are being fetched already, the most allowed")]
    TooMany(usize),
    #[error("cannot fetch the metadata: {0}")]
    Fetcher(String),
}

struct PendingMagnet {
    trackers: Vec<Vec<String>>,
    next_announce: Instant,
}

/// What the discovery thread shares with the session.
struct Shared {
    magnets: Mutex<HashMap<InfoHash, PendingMagnet>>,
}

impl Shared {
    fn magnets(&self) -> std::sync::MutexGuard<'_, HashMap<InfoHash, PendingMagnet>> {
        self.magnets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where found peers go: the torrent's shard, or the metadata fetcher.
#[derive(Clone)]
pub(super) struct PeerRouter {
    registry: Arc<Mutex<Registry>>,
    routes: Vec<Route>,
    fetcher: Arc<MetadataFetcher>,
}

impl PeerRouter {
    fn deliver(&self, info_hash: InfoHash, peers: Vec<SocketAddr>, source: PeerSource) {
        if peers.is_empty() {
            return;
        }
        let found = {
            let reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
            reg.by_hash(&info_hash)
                .and_then(|id| reg.shard_of(id).map(|s| (id, s)))
        };
        match found {
            Some((id, shard)) => {
                if let Some(route) = self.routes.get(shard) {
                    // Not waited for: a full queue drops them (counted by
                    // the next lookup bringing them again).
                    let _ = route.control.request(|reply| Control::AddPeers {
                        id,
                        peers,
                        source,
                        reply,
                    });
                }
            }
            None => self.fetcher.add_peers(info_hash, peers),
        }
    }
}

/// The running discovery workers.
pub(super) struct Discovery {
    dht: Option<DhtWorker>,
    lsd: Option<LsdWorker>,
    /// Always `Some` until `stop`.
    fetcher: Option<Arc<MetadataFetcher>>,
    shared: Arc<Shared>,
    tracker: TrackerHandle,
    replies_tx: Sender<TrackerReply>,
    stop_tx: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
    peer_id: [u8; 20],
    listen_port: u16,
}

/// What discovery starts with.
pub(super) struct DiscoverySpec {
    pub dht: Option<DhtOptions>,
    pub lsd: bool,
    pub bind: BindOptions,
    /// Where the DHT's UDP socket binds: the first listen address.
    pub local: SocketAddr,
    pub peer_id: [u8; 20],
    pub listen_port: u16,
    pub rng_seed: u64,
    pub registry: Arc<Mutex<Registry>>,
    pub routes: Vec<Route>,
    pub tracker: TrackerHandle,
    pub events: EventSink,
}

impl Discovery {
    pub(super) fn start(spec: DiscoverySpec) -> Result<Discovery, DiscoveryError> {
        let fetcher = Arc::new(
            MetadataFetcher::start(FetcherConfig {
                bind: spec.bind.clone(),
                listen_port: spec.listen_port,
                ..FetcherConfig::new(spec.peer_id)
            })
            .map_err(|e| DiscoveryError::Fetcher(e.to_string()))?,
        );
        let router = PeerRouter {
            registry: spec.registry,
            routes: spec.routes,
            fetcher: fetcher.clone(),
        };
        let dht = match spec.dht {
            Some(opts) => {
                let r = router.clone();
                let worker = DhtWorker::start(
                    DhtWorkerConfig {
                        local: spec.local,
                        bind: spec.bind.clone(),
                        bootstrap: opts.bootstrap,
                        saved_nodes: opts.saved_nodes,
                        read_only: opts.read_only,
                        rng_seed: spec.rng_seed,
                    },
                    Box::new(move |hash, peers| r.deliver(hash, peers, PeerSource::Dht)),
                )
                .map_err(|e| DiscoveryError::Dht(e.to_string()))?;
                Some(worker)
            }
            None => None,
        };
        let lsd = if spec.lsd {
            let r = router.clone();
            let worker = LsdWorker::start(
                LsdWorkerConfig {
                    bind: spec.bind.clone(),
                    listen_port: spec.listen_port,
                    rng_seed: spec.rng_seed ^ 0x5a5a,
                },
                Box::new(move |hash, peer| r.deliver(hash, vec![peer], PeerSource::Lsd)),
            )
            .map_err(|e| DiscoveryError::Lsd(e.to_string()))?;
            Some(worker)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            magnets: Mutex::new(HashMap::new()),
        });
        let (replies_tx, replies_rx) = bounded(TRACKER_REPLIES_MAX);
        let (stop_tx, stop_rx) = bounded(1);
        let thread = {
            let shared = shared.clone();
            let fetcher = fetcher.clone();
            let tracker = spec.tracker.clone();
            let replies_tx = replies_tx.clone();
            let events = spec.events;
            let (peer_id, listen_port) = (spec.peer_id, spec.listen_port);
            std::thread::Builder::new()
                .name("discovery".into())
                .spawn(move || {
                    run(Loop {
                        shared,
                        fetcher,
                        router,
                        tracker,
                        replies_tx,
                        replies: replies_rx,
                        stop: stop_rx,
                        events,
                        peer_id,
                        listen_port,
                    })
                })
                .map_err(DiscoveryError::Thread)?
        };
        Ok(Discovery {
            dht,
            lsd,
            fetcher: Some(fetcher),
            shared,
            tracker: spec.tracker,
            replies_tx,
            stop_tx: Some(stop_tx),
            thread: Some(thread),
            peer_id: spec.peer_id,
            listen_port: spec.listen_port,
        })
    }

    /// The DHT's handle, for the shards (announces) and votes.
    pub(super) fn dht_handle(&self) -> Option<DhtHandle> {
        self.dht.as_ref().map(DhtWorker::handle)
    }

    /// LSD's handle, for the shards.
    pub(super) fn lsd_handle(&self) -> Option<LsdHandle> {
        self.lsd.as_ref().map(LsdWorker::handle)
    }

    /// The DHT's good nodes now (for the daemon to save).
    pub(super) fn dht_nodes(&self) -> Vec<SocketAddr> {
        self.dht
            .as_ref()
            .map(|d| d.handle().nodes())
            .unwrap_or_default()
    }

    /// Nodes in the DHT's routing table (0 when it is off).
    pub(super) fn dht_node_count(&self) -> usize {
        self.dht.as_ref().map_or(0, |d| d.handle().node_count())
    }

    /// The DHT's UDP address, when it runs.
    pub(super) fn dht_addr(&self) -> Option<SocketAddr> {
        self.dht.as_ref().map(DhtWorker::local_addr)
    }

    /// Starts fetching a magnet's metadata: its `x.pe` peers at once, its
    /// trackers and the DHT as they answer.
    pub(super) fn fetch(&self, magnet: &Magnet) -> Result<(), MagnetError> {
        let hash = magnet.info_hash;
        {
            let mut magnets = self.shared.magnets();
            if !magnets.contains_key(&hash) && magnets.len() >= MAGNETS_MAX {
                return Err(MagnetError::TooMany(MAGNETS_MAX));
            }
            self.fetcher
                .as_ref()
                .ok_or_else(|| MagnetError::Fetcher("stopped".into()))?
                .fetch(hash)
                .map_err(|e| MagnetError::Fetcher(e.to_string()))?;
            magnets.insert(
                hash,
                PendingMagnet {
                    trackers: magnet.trackers.iter().map(|t| vec![t.clone()]).collect(),
                    next_announce: Instant::now(),
                },
            );
        }
        let peers = magnet_peers(magnet);
        if let (false, Some(f)) = (peers.is_empty(), &self.fetcher) {
            f.add_peers(hash, peers);
        }
        if let Some(dht) = &self.dht {
            dht.handle().lookup(hash);
        }
        // The discovery thread announces to the trackers; wake it.
        announce_due(
            &self.shared,
            &self.tracker,
            &self.replies_tx,
            self.peer_id,
            self.listen_port,
        );
        Ok(())
    }

    /// Stops fetching a magnet (removed, or its metadata arrived).
    pub(super) fn cancel(&self, info_hash: InfoHash) {
        self.shared.magnets().remove(&info_hash);
        if let Some(f) = &self.fetcher {
            f.cancel(info_hash);
        }
        if let Some(dht) = &self.dht {
            dht.handle().forget(info_hash);
        }
    }

    /// Stops the workers; returns the DHT's good nodes, to save.
    pub(super) fn stop(mut self, deadline: Duration) -> Vec<SocketAddr> {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(lsd) = self.lsd.take() {
            lsd.shutdown();
        }
        let nodes = match self.dht.take() {
            Some(d) => d.shutdown(deadline),
            None => Vec::new(),
        };
        if let Some(Ok(f)) = self.fetcher.take().map(Arc::try_unwrap) {
            f.shutdown();
        }
        nodes
    }
}

impl Drop for Discovery {
    /// A session dropped without `stop`: the discovery thread ends (the
    /// workers end with their own `Drop`s).
    fn drop(&mut self) {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
    }
}

/// A magnet's `x.pe` peers that are addresses (host names are skipped:
/// resolving them would leave the bound interface's control).
pub fn magnet_peers(magnet: &Magnet) -> Vec<SocketAddr> {
    magnet
        .peers
        .iter()
        .filter_map(|p| p.parse::<SocketAddr>().ok())
        .collect()
}

struct Loop {
    shared: Arc<Shared>,
    fetcher: Arc<MetadataFetcher>,
    router: PeerRouter,
    tracker: TrackerHandle,
    replies_tx: Sender<TrackerReply>,
    replies: Receiver<TrackerReply>,
    stop: Receiver<()>,
    events: EventSink,
    peer_id: [u8; 20],
    listen_port: u16,
}

/// The discovery thread: fetched metadata becomes events; tracker answers
/// for magnets feed the fetcher; magnets' trackers are asked again when due.
fn run(l: Loop) {
    let tick = crossbeam_channel::tick(Duration::from_secs(5));
    loop {
        select! {
            recv(l.stop) -> _ => return,
            recv(l.fetcher.results()) -> r => {
                let Ok(f) = r else { return };
                if l.shared.magnets().remove(&f.info_hash).is_some() {
                    l.events.send(Event::Metadata {
                        info_hash: f.info_hash,
                        info: f.info,
                        peers: f.peers,
                    });
                }
            }
            recv(l.replies) -> r => {
                let Ok(reply) = r else { return };
                if let Ok(resp) = reply.outcome {
                    let hash = {
                        let magnets = l.shared.magnets();
                        magnets.keys().find(|h| token_of(h) == reply.token).copied()
                    };
                    if let Some(hash) = hash {
                        l.router.deliver(hash, resp.peers, PeerSource::Tracker);
                    }
                }
            }
            recv(tick) -> _ => announce_due(&l.shared, &l.tracker, &l.replies_tx, l.peer_id, l.listen_port),
        }
    }
}

/// The tracker job token of a magnet: its hash's first 8 bytes.
fn token_of(hash: &InfoHash) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&hash.0[..8]);
    u64::from_be_bytes(b) | (1 << 63)
}

/// Announces the magnets whose trackers are due.
fn announce_due(
    shared: &Shared,
    tracker: &TrackerHandle,
    replies: &Sender<TrackerReply>,
    peer_id: [u8; 20],
    listen_port: u16,
) {
    let now = Instant::now();
    let mut magnets = shared.magnets();
    for (hash, m) in magnets.iter_mut() {
        if m.trackers.is_empty() || m.next_announce > now {
            continue;
        }
        m.next_announce = now + MAGNET_ANNOUNCE_INTERVAL;
        let request = AnnounceRequest {
            // Unknown until the metadata arrives; not 0, or trackers would
            // take us for a seed and send no seeds.
            left: 1,
            ..AnnounceRequest::new(*hash, peer_id, listen_port)
        };
        let _ = tracker.submit(TrackerJob {
            token: token_of(hash),
            tiers: m.trackers.clone(),
            request,
            reply: replies.clone(),
            wake: None,
        });
    }
}
