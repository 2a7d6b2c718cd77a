//! The mainline DHT (BEP 5) node, with secure ids (BEP 42) and read-only mode
//! (BEP 43), as a sans-IO state machine. IPv4 only: IPv6 addresses are
//! ignored everywhere (BEP 32 is not implemented).
//!
//! The caller owns the UDP socket and the clock: it feeds datagrams to
//! [`Dht::handle_datagram`], calls [`Dht::tick`] at [`Dht::next_tick`], and
//! sends/reports what [`Dht::poll_output`] returns. Time is a `now: Duration`
//! since any fixed monotonic epoch the caller picks.
//!
//! Rules, decided on purpose:
//! - the node id is random until an external IP is known; the `ip` field of
//!   answers (BEP 42) and [`Dht::external_ip_vote`] are votes; when a public
//!   address holds the majority of at least [`EXTERNAL_IP_VOTES_MIN`] distinct
//!   voters and our id is not secure for it, a BEP 42 id is derived and the
//!   table is rebuilt around it (then a bootstrap lookup runs again);
//! - queries carry 2-byte transaction ids; an answer counts only when its
//!   (address, tid) matches a query in flight, anything else is ignored; at
//!   most [`OUTSTANDING_MAX`] queries are in flight, each times out after
//!   `query_timeout`;
//! - server side: ping, find_node, get_peers (values when we have peers, and
//!   always the closest nodes, and a token), announce_peer (token checked,
//!   `implied_port` honoured); answers carry the asker's address in `ip`;
//!   a node that queries us joins the table only after answering a ping;
//!   unknown methods get error 204; each source IP may send
//!   `queries_per_ip_per_second` queries, more are dropped unanswered;
//! - read-only (BEP 43): our queries carry `ro=1` and we answer none; nodes
//!   that send `ro=1` are never put in the table;
//! - answers are cleaned before use: nodes beyond [`RESPONSE_NODES_MAX`] are
//!   cut, nodes with port 0, unusable addresses or our id are dropped; a
//!   `values` list longer than [`RESPONSE_VALUES_MAX`] is dropped whole (a
//!   liar), single entries with port 0 or unusable addresses are dropped;
//! - lookups: see `lookup.rs`; an announce is a get_peers lookup followed by
//!   announce_peer to the `k` closest nodes that gave a token; it is done when
//!   each of those answered or timed out;
//! - maintenance every [`MAINTENANCE_INTERVAL`]: expire stored peers, start a
//!   refresh lookup for buckets unchanged for [`BUCKET_REFRESH_INTERVAL`] (at
//!   most [`REFRESHES_PER_MAINTENANCE_MAX`] at a time; every bucket once
//!   the bootstrap lookup ends), ping a few nodes not
//!   heard from for [`QUESTIONABLE_AGE`], and re-query the bootstrap
//!   addresses every [`BOOTSTRAP_RETRY_INTERVAL`] while fewer than
//!   [`BOOTSTRAP_GOOD_NODES_MIN`] nodes in the table have answered us.

pub mod krpc;
pub mod lookup;
pub mod node_id;
pub mod peer_store;
pub mod routing_table;
pub mod tokens;

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use crate::rng::Rng;
use crate::InfoHash;
use krpc::{Body, Message, Query, Response};
use lookup::{Lookup, LookupKind};
use node_id::{is_secure_node_id, is_usable_ip, secure_node_id, NodeId};
use peer_store::{PeerStore, PeerStoreLimits};
use routing_table::RoutingTable;
use tokens::TokenSecrets;

/// Nodes per bucket (BEP 5's K).
pub const K: usize = 8;
/// Queries in flight per lookup.
pub const ALPHA: usize = 3;
/// How long a query waits for its answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(4);
/// Most queries in flight, all purposes together.
pub const OUTSTANDING_MAX: usize = 256;
/// Most lookups running at once (refresh and bootstrap included).
pub const LOOKUPS_MAX: usize = 32;
/// Most queries one lookup sends.
pub const LOOKUP_QUERIES_MAX: usize = 64;
/// Failed queries in a row after which a node is evicted.
pub const NODE_FAILS_MAX: u32 = 2;
/// A bucket unchanged this long gets a refresh lookup (BEP 5: 15 min).
pub const BUCKET_REFRESH_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// A node not heard from this long is pinged.
pub const QUESTIONABLE_AGE: Duration = Duration::from_secs(15 * 60);
/// How often the maintenance step runs.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(5);
/// Refresh lookups started per maintenance step.
pub const REFRESHES_PER_MAINTENANCE_MAX: usize = 2;
/// Questionable nodes pinged per maintenance step.
pub const PINGS_PER_MAINTENANCE_MAX: usize = 4;
/// Nodes kept from one answer (more are cut): BEP 5 answers carry K.
pub const RESPONSE_NODES_MAX: usize = K;
/// A `values` list longer than this is dropped whole.
pub const RESPONSE_VALUES_MAX: usize = 100;
/// Queries per second accepted from one source IP.
pub const QUERIES_PER_IP_PER_SECOND: u32 = 20;
/// Source IPs tracked by the query rate limit.
pub const RATE_LIMIT_IPS_MAX: usize = 4096;
/// Distinct voters remembered for the external address.
pub const EXTERNAL_IP_VOTERS_MAX: usize = 64;
/// Votes the leading address needs before it is believed.
pub const EXTERNAL_IP_VOTES_MIN: usize = 3;
/// Wait between bootstrap retries while the table is thin.
pub const BOOTSTRAP_RETRY_INTERVAL: Duration = Duration::from_secs(30);
/// While fewer nodes than this have answered us, the bootstrap addresses are
/// queried again every [`BOOTSTRAP_RETRY_INTERVAL`]: one lost answer from
/// the router must not leave a node with a table of one or two nodes that
/// know nobody (seen in the simulation).
pub const BOOTSTRAP_GOOD_NODES_MIN: usize = K;
/// Bootstrap addresses remembered.
pub const BOOTSTRAP_ADDRS_MAX: usize = 32;
/// Good nodes returned by [`Dht::nodes`].
pub const SAVED_NODES_MAX: usize = 200;
/// Peers reported per lookup (distinct addresses).
pub const PEERS_PER_LOOKUP_MAX: usize = 1000;
/// Outputs queued before new ones are dropped (the caller drains it).
pub const OUTPUT_QUEUE_MAX: usize = 4096;

const _: () = assert!(ALPHA <= K && K * LOOKUPS_MAX <= OUTSTANDING_MAX);
const _: () = assert!(RESPONSE_NODES_MAX <= krpc::NODES_DECODED_MAX);
const _: () = assert!(RESPONSE_VALUES_MAX <= krpc::VALUES_DECODED_MAX);
const _: () = assert!(K <= lookup::LOOKUP_CANDIDATES_MAX);

/// Settings of one node (defaults: the constants above).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtConfig {
    /// BEP 43: send `ro=1` and answer no queries.
    pub read_only: bool,
    /// External address known at start (a BEP 42 id is derived from it).
    pub external_ip: Option<Ipv4Addr>,
    pub k: usize,
    pub alpha: usize,
    pub query_timeout: Duration,
    pub lookup_queries_max: usize,
    pub node_fails_max: u32,
    pub peer_store: PeerStoreLimits,
    pub queries_per_ip_per_second: u32,
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            read_only: false,
            external_ip: None,
            k: K,
            alpha: ALPHA,
            query_timeout: QUERY_TIMEOUT,
            lookup_queries_max: LOOKUP_QUERIES_MAX,
            node_fails_max: NODE_FAILS_MAX,
            peer_store: PeerStoreLimits::default(),
            queries_per_ip_per_second: QUERIES_PER_IP_PER_SECOND,
        }
    }
}

/// Names a lookup started by [`Dht::get_peers`] or [`Dht::announce`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

/// What the caller must do or know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhtOutput {
    /// Send `bytes` to `to` in one datagram.
    Send { to: SocketAddr, bytes: Vec<u8> },
    /// Peers found for `info_hash` (new ones for this lookup).
    Peers {
        info_hash: InfoHash,
        peers: Vec<SocketAddr>,
    },
    /// A lookup ended; `announced` counts announce_peer answers.
    LookupDone {
        id: LookupId,
        info_hash: InfoHash,
        announced: usize,
        /// Queries the search sent.
        queries: usize,
        /// Hops from the table to the closest nodes (see `lookup.rs`).
        rounds: usize,
    },
}

/// Counters and sizes, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DhtStats {
    pub nodes: usize,
    pub replacements: usize,
    pub buckets: usize,
    pub largest_bucket: usize,
    pub outstanding: usize,
    pub lookups: usize,
    pub stored_hashes: usize,
    pub stored_peers: usize,
    pub queries_received: u64,
    pub queries_rate_limited: u64,
    pub responses_received: u64,
    pub unexpected_responses: u64,
    pub malformed: u64,
    pub timeouts: u64,
    pub evicted: u64,
    pub datagrams_sent: u64,
    pub outputs_dropped: u64,
    pub id_changes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Ping,
    Lookup(u64),
    Announce(u64),
}

#[derive(Debug, Clone)]
struct Outstanding {
    deadline: Duration,
    purpose: Purpose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Searching,
    Announcing,
}

#[derive(Debug, Clone)]
struct LookupState {
    lookup: Lookup,
    /// Reported to the caller (get_peers/announce), not internal.
    public: bool,
    phase: Phase,
    peers_seen: HashSet<SocketAddrV4>,
    announce_pending: usize,
    announced: usize,
}

/// One DHT node.
#[derive(Debug)]
pub struct Dht {
    config: DhtConfig,
    rng: Rng,
    id: NodeId,
    external_ip: Option<Ipv4Addr>,
    table: RoutingTable,
    tokens: TokenSecrets,
    store: PeerStore,
    outstanding: HashMap<(SocketAddrV4, [u8; 2]), Outstanding>,
    next_tid: u16,
    lookups: HashMap<u64, LookupState>,
    next_lookup: u64,
    self_lookup: Option<u64>,
    output: VecDeque<DhtOutput>,
    rate: HashMap<Ipv4Addr, (Duration, u32)>,
    votes: VecDeque<(Ipv4Addr, Ipv4Addr)>,
    bootstrap: Vec<SocketAddrV4>,
    next_bootstrap_retry: Duration,
    next_maintenance: Duration,
    stats: DhtStats,
}

fn v4(addr: SocketAddr) -> Option<SocketAddrV4> {
    match addr {
        SocketAddr::V4(a) if a.port() != 0 && is_usable_ip(*a.ip()) => Some(a),
        _ => None,
    }
}

/// Whether votes for `ip` as our external address are believed.
fn is_public(ip: Ipv4Addr) -> bool {
    is_usable_ip(ip) && !ip.is_private() && !ip.is_loopback() && !ip.is_link_local()
}

impl Dht {
    /// A node with a random id (a BEP 42 one when `config.external_ip` is set).
    pub fn new(config: DhtConfig, rng_seed: u64, now: Duration) -> Dht {
        let mut rng = Rng::new(rng_seed);
        let external_ip = config.external_ip.filter(|ip| is_public(*ip));
        let id = match external_ip {
            Some(ip) => secure_node_id(ip, &mut rng),
            None => NodeId::random(&mut rng),
        };
        let table = RoutingTable::new(id, config.k, config.node_fails_max, now);
        let tokens = TokenSecrets::new(&mut rng, now);
        let store = PeerStore::new(config.peer_store);
        let next_tid = rng.next_u64() as u16;
        Dht {
            config,
            rng,
            id,
            external_ip,
            table,
            tokens,
            store,
            outstanding: HashMap::new(),
            next_tid,
            lookups: HashMap::new(),
            next_lookup: 1,
            self_lookup: None,
            output: VecDeque::new(),
            rate: HashMap::new(),
            votes: VecDeque::new(),
            bootstrap: Vec::new(),
            next_bootstrap_retry: now + BOOTSTRAP_RETRY_INTERVAL,
            next_maintenance: now + MAINTENANCE_INTERVAL,
            stats: DhtStats::default(),
        }
    }

    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// The external address believed now, if any.
    pub fn external_ip(&self) -> Option<Ipv4Addr> {
        self.external_ip
    }

    pub fn stats(&self) -> DhtStats {
        DhtStats {
            nodes: self.table.len(),
            replacements: self.table.replacement_len(),
            buckets: self.table.bucket_count(),
            largest_bucket: self.table.largest_bucket(),
            outstanding: self.outstanding.len(),
            lookups: self.lookups.len(),
            stored_hashes: self.store.hashes(),
            stored_peers: self.store.peer_count(),
            ..self.stats
        }
    }

    /// Good nodes (answered, not failing), most recent first, at most
    /// [`SAVED_NODES_MAX`].
    pub fn nodes(&self) -> Vec<SocketAddr> {
        self.table
            .good_nodes(SAVED_NODES_MAX)
            .into_iter()
            .map(SocketAddr::V4)
            .collect()
    }

    /// The next queued output.
    pub fn poll_output(&mut self) -> Option<DhtOutput> {
        self.output.pop_front()
    }

    /// When [`Dht::tick`] should run next.
    pub fn next_tick(&self) -> Duration {
        let mut t = self.next_maintenance.min(self.tokens.next_rotation());
        for o in self.outstanding.values() {
            t = t.min(o.deadline);
        }
        t
    }

    fn push(&mut self, out: DhtOutput) {
        if self.output.len() >= OUTPUT_QUEUE_MAX {
            self.stats.outputs_dropped += 1;
            return;
        }
        if matches!(out, DhtOutput::Send { .. }) {
            self.stats.datagrams_sent += 1;
        }
        self.output.push_back(out);
    }

    fn send(&mut self, to: SocketAddrV4, msg: &Message) {
        let bytes = msg.encode();
        self.push(DhtOutput::Send {
            to: SocketAddr::V4(to),
            bytes,
        });
    }

    /// Sends `query` to `to`; false when too many queries are in flight.
    fn send_query(
        &mut self,
        now: Duration,
        to: SocketAddrV4,
        query: Query,
        purpose: Purpose,
    ) -> bool {
        if self.outstanding.len() >= OUTSTANDING_MAX {
            return false;
        }
        let mut tid = self.next_tid.to_be_bytes();
        while self.outstanding.contains_key(&(to, tid)) {
            self.next_tid = self.next_tid.wrapping_add(1);
            tid = self.next_tid.to_be_bytes();
        }
        self.next_tid = self.next_tid.wrapping_add(1);
        self.outstanding.insert(
            (to, tid),
            Outstanding {
                deadline: now + self.config.query_timeout,
                purpose,
            },
        );
        let msg = Message {
            tid: tid.to_vec(),
            body: Body::Query(query),
            read_only: self.config.read_only,
            ip: None,
        };
        self.send(to, &msg);
        true
    }

    /// A bootstrap or saved node: remembered (for an empty table later) and
    /// asked for nodes near our id.
    pub fn add_node(&mut self, now: Duration, addr: SocketAddr) {
        let Some(addr) = v4(addr) else {
            return;
        };
        if !self.bootstrap.contains(&addr) && self.bootstrap.len() < BOOTSTRAP_ADDRS_MAX {
            self.bootstrap.push(addr);
        }
        let lid = match self.self_lookup.filter(|l| self.lookups.contains_key(l)) {
            Some(l) => l,
            None => match self.start_lookup(now, self.id, LookupKind::FindNode, false) {
                Some(l) => {
                    self.self_lookup = Some(l);
                    l
                }
                None => return,
            },
        };
        if let Some(st) = self.lookups.get_mut(&lid) {
            st.lookup.add_seed(addr);
        }
        self.advance(now, lid);
    }

    /// Starts a lookup seeded from the table (and the bootstrap addresses when
    /// the table is empty). `None` when [`LOOKUPS_MAX`] are running.
    fn start_lookup(
        &mut self,
        now: Duration,
        target: NodeId,
        kind: LookupKind,
        public: bool,
    ) -> Option<u64> {
        if self.lookups.len() >= LOOKUPS_MAX {
            return None;
        }
        let mut lookup = Lookup::new(
            target,
            kind,
            self.config.k,
            self.config.alpha,
            self.config.lookup_queries_max,
        );
        lookup.add_nodes(&self.table.closest(&target, self.config.k), 0);
        if self.table.good_nodes(1).is_empty() {
            for a in self.bootstrap.clone() {
                lookup.add_seed(a);
            }
        }
        let lid = self.next_lookup;
        self.next_lookup += 1;
        self.lookups.insert(
            lid,
            LookupState {
                lookup,
                public,
                phase: Phase::Searching,
                peers_seen: HashSet::new(),
                announce_pending: 0,
                announced: 0,
            },
        );
        let _ = now;
        Some(lid)
    }

    fn start_public(&mut self, now: Duration, info_hash: InfoHash, kind: LookupKind) -> LookupId {
        match self.start_lookup(now, NodeId::from(info_hash), kind, true) {
            Some(lid) => {
                self.advance(now, lid);
                LookupId(lid)
            }
            None => {
                let lid = self.next_lookup;
                self.next_lookup += 1;
                self.push(DhtOutput::LookupDone {
                    id: LookupId(lid),
                    info_hash,
                    announced: 0,
                    queries: 0,
                    rounds: 0,
                });
                LookupId(lid)
            }
        }
    }

    /// Looks for peers of `info_hash`: [`DhtOutput::Peers`] as they come, then
    /// [`DhtOutput::LookupDone`]. When [`LOOKUPS_MAX`] run already, the lookup
    /// ends at once (done, nothing found).
    pub fn get_peers(&mut self, now: Duration, info_hash: InfoHash) -> LookupId {
        self.start_public(now, info_hash, LookupKind::GetPeers)
    }

    /// Like [`Dht::get_peers`], then announces `port` to the closest nodes.
    pub fn announce(&mut self, now: Duration, info_hash: InfoHash, port: u16) -> LookupId {
        self.start_public(now, info_hash, LookupKind::Announce { port })
    }

    /// Sends what lookup `lid` can send now and finishes it when it is over.
    fn advance(&mut self, now: Duration, lid: u64) {
        let own = self.id;
        let Some(st) = self.lookups.get_mut(&lid) else {
            return;
        };
        if st.phase == Phase::Announcing {
            if st.announce_pending == 0 {
                self.finish(lid);
            }
            return;
        }
        let to_ask = st.lookup.next_queries();
        let target = st.lookup.target;
        let kind = st.lookup.kind;
        for addr in to_ask {
            let q = match kind {
                LookupKind::FindNode => Query::FindNode { id: own, target },
                LookupKind::GetPeers | LookupKind::Announce { .. } => Query::GetPeers {
                    id: own,
                    info_hash: InfoHash(target.0),
                },
            };
            if !self.send_query(now, addr, q, Purpose::Lookup(lid)) {
                if let Some(st) = self.lookups.get_mut(&lid) {
                    st.lookup.on_failure(addr);
                }
            }
        }
        let Some(st) = self.lookups.get_mut(&lid) else {
            return;
        };
        if !st.lookup.is_finished() {
            return;
        }
        match kind {
            LookupKind::Announce { port } => {
                st.phase = Phase::Announcing;
                let targets = st.lookup.announce_targets();
                let mut sent = 0;
                for (addr, token) in targets {
                    let q = Query::AnnouncePeer {
                        id: own,
                        info_hash: InfoHash(target.0),
                        port,
                        implied_port: false,
                        token,
                    };
                    if self.send_query(now, addr, q, Purpose::Announce(lid)) {
                        sent += 1;
                    }
                }
                if let Some(st) = self.lookups.get_mut(&lid) {
                    st.announce_pending = sent;
                }
                if sent == 0 {
                    self.finish(lid);
                }
            }
            _ => self.finish(lid),
        }
    }

    fn finish(&mut self, lid: u64) {
        let Some(st) = self.lookups.remove(&lid) else {
            return;
        };
        if self.self_lookup == Some(lid) {
            self.self_lookup = None;
            // Bootstrap done: refresh every bucket soon to fill the far ones.
            self.table.mark_all_due();
        }
        if st.public {
            self.push(DhtOutput::LookupDone {
                id: LookupId(lid),
                info_hash: InfoHash(st.lookup.target.0),
                announced: st.announced,
                queries: st.lookup.queries_sent(),
                rounds: st.lookup.rounds(),
            });
        }
    }

    /// One datagram from `from`. Garbage, IPv6 and unexpected answers are
    /// counted and ignored.
    pub fn handle_datagram(&mut self, now: Duration, from: SocketAddr, bytes: &[u8]) {
        let Some(from) = v4(from) else {
            return;
        };
        let msg = match krpc::decode(bytes) {
            Ok(m) => m,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        match msg.body {
            Body::Query(q) => self.on_query(now, from, msg.tid, msg.read_only, q),
            Body::Response(r) => {
                let Some(o) = self.take_outstanding(from, &msg.tid) else {
                    self.stats.unexpected_responses += 1;
                    return;
                };
                self.stats.responses_received += 1;
                if let Some(ip) = msg.ip {
                    self.external_ip_vote(now, IpAddr::V4(*ip.ip()), IpAddr::V4(*from.ip()));
                }
                self.on_response(now, from, msg.read_only, o, r);
            }
            Body::Error { .. } => {
                let Some(o) = self.take_outstanding(from, &msg.tid) else {
                    self.stats.unexpected_responses += 1;
                    return;
                };
                self.stats.responses_received += 1;
                match o.purpose {
                    Purpose::Ping => {}
                    Purpose::Lookup(lid) => {
                        if let Some(st) = self.lookups.get_mut(&lid) {
                            st.lookup.on_failure(from);
                        }
                        self.advance(now, lid);
                    }
                    Purpose::Announce(lid) => self.announce_settled(lid, false),
                }
            }
        }
    }

    fn take_outstanding(&mut self, from: SocketAddrV4, tid: &[u8]) -> Option<Outstanding> {
        let tid: [u8; 2] = tid.try_into().ok()?;
        self.outstanding.remove(&(from, tid))
    }

    fn announce_settled(&mut self, lid: u64, ok: bool) {
        if let Some(st) = self.lookups.get_mut(&lid) {
            st.announce_pending = st.announce_pending.saturating_sub(1);
            if ok {
                st.announced += 1;
            }
            if st.announce_pending == 0 {
                self.finish(lid);
            }
        }
    }

    fn clean_nodes(&self, mut nodes: Vec<(NodeId, SocketAddrV4)>) -> Vec<(NodeId, SocketAddrV4)> {
        nodes.truncate(RESPONSE_NODES_MAX);
        nodes.retain(|(id, a)| *id != self.id && a.port() != 0 && is_usable_ip(*a.ip()));
        nodes
    }

    fn on_response(
        &mut self,
        now: Duration,
        from: SocketAddrV4,
        read_only: bool,
        o: Outstanding,
        r: Response,
    ) {
        if !read_only {
            self.table.insert(r.id, from, now, true);
        }
        let nodes = self.clean_nodes(r.nodes);
        match o.purpose {
            Purpose::Ping => {}
            Purpose::Announce(lid) => self.announce_settled(lid, true),
            Purpose::Lookup(lid) => {
                let mut values = r.values;
                if values.len() > RESPONSE_VALUES_MAX {
                    values.clear();
                }
                values.retain(|a| a.port() != 0 && is_usable_ip(*a.ip()));
                let Some(st) = self.lookups.get_mut(&lid) else {
                    return;
                };
                st.lookup.on_answer(from, r.id, &nodes, r.token);
                let mut fresh = Vec::new();
                if st.lookup.kind != LookupKind::FindNode {
                    for v in values {
                        if st.peers_seen.len() >= PEERS_PER_LOOKUP_MAX {
                            break;
                        }
                        if st.peers_seen.insert(v) {
                            fresh.push(SocketAddr::V4(v));
                        }
                    }
                }
                let info_hash = InfoHash(st.lookup.target.0);
                if !fresh.is_empty() {
                    self.push(DhtOutput::Peers {
                        info_hash,
                        peers: fresh,
                    });
                }
                self.advance(now, lid);
            }
        }
    }

    /// Whether a query from `ip` at `now` is within the rate limit.
    fn rate_ok(&mut self, now: Duration, ip: Ipv4Addr) -> bool {
        let window = Duration::from_secs(1);
        if !self.rate.contains_key(&ip) && self.rate.len() >= RATE_LIMIT_IPS_MAX {
            self.rate
                .retain(|_, (start, _)| now.saturating_sub(*start) < window);
            if self.rate.len() >= RATE_LIMIT_IPS_MAX {
                return false;
            }
        }
        let e = self.rate.entry(ip).or_insert((now, 0));
        if now.saturating_sub(e.0) >= window {
            *e = (now, 0);
        }
        e.1 += 1;
        e.1 <= self.config.queries_per_ip_per_second
    }

    fn on_query(
        &mut self,
        now: Duration,
        from: SocketAddrV4,
        tid: Vec<u8>,
        sender_ro: bool,
        q: Query,
    ) {
        self.stats.queries_received += 1;
        if self.config.read_only {
            return;
        }
        if !self.rate_ok(now, *from.ip()) {
            self.stats.queries_rate_limited += 1;
            return;
        }
        let verify = !sender_ro && self.table.touch(q.sender_id(), from, now);
        let own = self.id;
        let reply = |body: Body| Message {
            tid: tid.clone(),
            body,
            read_only: false,
            ip: Some(from),
        };
        let error = |code: i64, text: &str| {
            reply(Body::Error {
                code,
                message: text.as_bytes().to_vec(),
            })
        };
        let k = self.config.k;
        let msg = match q {
            Query::Ping { .. } => reply(Body::Response(Response {
                id: own,
                ..Response::default()
            })),
            Query::FindNode { target, .. } => reply(Body::Response(Response {
                id: own,
                nodes: self.table.closest(&target, k),
                ..Response::default()
            })),
            Query::GetPeers { info_hash, .. } => {
                let values = self.store.peers(now, &info_hash, &mut self.rng);
                reply(Body::Response(Response {
                    id: own,
                    nodes: self.table.closest(&NodeId::from(info_hash), k),
                    values,
                    token: Some(self.tokens.token_for(*from.ip())),
                }))
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                ..
            } => {
                let port = if implied_port { from.port() } else { port };
                if !self.tokens.is_valid(*from.ip(), &token) {
                    error(krpc::ERROR_PROTOCOL, "bad token")
                } else if port == 0 {
                    error(krpc::ERROR_PROTOCOL, "bad port")
                } else if !self
                    .store
                    .announce(now, info_hash, SocketAddrV4::new(*from.ip(), port))
                {
                    error(krpc::ERROR_SERVER, "peer store full")
                } else {
                    reply(Body::Response(Response {
                        id: own,
                        ..Response::default()
                    }))
                }
            }
            Query::Unknown { .. } => error(krpc::ERROR_METHOD_UNKNOWN, "method unknown"),
        };
        self.send(from, &msg);
        if verify {
            self.verify_node(now, from);
        }
    }

    /// Pings an unknown node that queried us: it joins the table only if
    /// it answers (so flooders and nodes that never answer stay out). At
    /// most one ping in flight per address, and only while half the
    /// outstanding slots are free.
    fn verify_node(&mut self, now: Duration, addr: SocketAddrV4) {
        if self.outstanding.len() >= OUTSTANDING_MAX / 2
            || self.outstanding.keys().any(|(a, _)| *a == addr)
        {
            return;
        }
        let own = self.id;
        self.send_query(now, addr, Query::Ping { id: own }, Purpose::Ping);
    }

    /// A vote that our external address is `ip`, from `voter` (a KRPC `ip`
    /// field, a BEP 10 `yourip`). IPv6 and non-public addresses are ignored.
    pub fn external_ip_vote(&mut self, now: Duration, ip: IpAddr, voter: IpAddr) {
        let (IpAddr::V4(ip), IpAddr::V4(voter)) = (ip, voter) else {
            return;
        };
        if !is_public(ip) {
            return;
        }
        self.votes.retain(|(v, _)| *v != voter);
        if self.votes.len() >= EXTERNAL_IP_VOTERS_MAX {
            self.votes.pop_front();
        }
        self.votes.push_back((voter, ip));
        let mut counts: HashMap<Ipv4Addr, usize> = HashMap::new();
        for (_, v) in &self.votes {
            *counts.entry(*v).or_default() += 1;
        }
        let total = self.votes.len();
        let Some((leader, n)) = counts.into_iter().max_by_key(|(ip, n)| (*n, *ip)) else {
            return;
        };
        if n < EXTERNAL_IP_VOTES_MIN || n * 2 <= total || self.external_ip == Some(leader) {
            return;
        }
        self.external_ip = Some(leader);
        if !is_secure_node_id(&self.id, leader) {
            let id = secure_node_id(leader, &mut self.rng);
            self.restart_with_id(now, id);
        }
    }

    fn restart_with_id(&mut self, now: Duration, id: NodeId) {
        self.stats.id_changes += 1;
        self.id = id;
        let old = std::mem::replace(
            &mut self.table,
            RoutingTable::new(id, self.config.k, self.config.node_fails_max, now),
        );
        for e in old.entries() {
            self.table.insert(e.id, e.addr, e.last_seen, e.answered);
        }
        self.self_lookup = None;
        if let Some(lid) = self.start_lookup(now, id, LookupKind::FindNode, false) {
            self.self_lookup = Some(lid);
            self.advance(now, lid);
        }
    }

    /// Timeouts, token rotation, maintenance, and lookups moving on.
    pub fn tick(&mut self, now: Duration) {
        // Sorted: the same inputs give the same outputs (simulations replay
        // from their seed), whatever order the map iterates in.
        let mut expired: Vec<(SocketAddrV4, [u8; 2])> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        expired.sort_unstable();
        for key in expired {
            let Some(o) = self.outstanding.remove(&key) else {
                continue;
            };
            self.stats.timeouts += 1;
            if self.table.on_failure(key.0) {
                self.stats.evicted += 1;
            }
            match o.purpose {
                Purpose::Ping => {}
                Purpose::Lookup(lid) => {
                    if let Some(st) = self.lookups.get_mut(&lid) {
                        st.lookup.on_failure(key.0);
                    }
                }
                Purpose::Announce(lid) => self.announce_settled(lid, false),
            }
        }
        self.tokens.tick(now, &mut self.rng);
        if now >= self.next_maintenance {
            self.next_maintenance = now + MAINTENANCE_INTERVAL;
            self.maintain(now);
        }
        let mut ids: Vec<u64> = self.lookups.keys().copied().collect();
        ids.sort_unstable();
        for lid in ids {
            self.advance(now, lid);
        }
    }

    fn maintain(&mut self, now: Duration) {
        self.store.expire(now);
        self.rate
            .retain(|_, (start, _)| now.saturating_sub(*start) < Duration::from_secs(1));
        let good = self.table.good_nodes(BOOTSTRAP_GOOD_NODES_MIN).len();
        if good < BOOTSTRAP_GOOD_NODES_MIN
            && self.self_lookup.is_none()
            && now >= self.next_bootstrap_retry
        {
            self.next_bootstrap_retry = now + BOOTSTRAP_RETRY_INTERVAL;
            for a in self.bootstrap.clone() {
                self.add_node(now, SocketAddr::V4(a));
            }
        }
        if good == 0 {
            return;
        }
        let room = LOOKUPS_MAX.saturating_sub(self.lookups.len());
        let targets = self.table.refresh_due(
            now,
            BUCKET_REFRESH_INTERVAL,
            REFRESHES_PER_MAINTENANCE_MAX.min(room),
            &mut self.rng,
        );
        for t in targets {
            if let Some(lid) = self.start_lookup(now, t, LookupKind::FindNode, false) {
                self.advance(now, lid);
            }
        }
        let busy: HashSet<SocketAddrV4> = self.outstanding.keys().map(|(a, _)| *a).collect();
        let own = self.id;
        for (_, addr) in self
            .table
            .questionable(now, QUESTIONABLE_AGE, PINGS_PER_MAINTENANCE_MAX * 4)
            .into_iter()
            .filter(|(_, a)| !busy.contains(a))
            .take(PINGS_PER_MAINTENANCE_MAX)
        {
            self.send_query(now, addr, Query::Ping { id: own }, Purpose::Ping);
        }
    }
}
