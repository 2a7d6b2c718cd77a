//! A simulated network of DHT nodes in virtual time: hundreds of `Dht`s on
//! made-up public addresses, datagrams delivered through a queue with seeded
//! loss and latency, and misbehaving nodes (liars, silent nodes, flooders)
//! driven by the simulator itself. Each test prints its seed; change the
//! seed constant to replay another network (the runs are deterministic:
//! the same seed gives the same network, see `Dht::tick`). No environment
//! variable: the protocol crate reads none (tests/layering.rs).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use super::krpc::{self, Body, Message, Query, Response};
use super::node_id::NodeId;
use super::*;
use crate::rng::Rng;
use crate::InfoHash;

const SEEDS: &[u64] = &[0x5EED_0001, 0x5EED_0002];
const HONEST: usize = 280;
const LIARS: usize = 30;
const SILENT: usize = 30;
const FLOODERS: usize = 4;
const LOSS_PERCENT: u64 = 2;
const LATENCY_MS_MIN: u64 = 5;
const LATENCY_MS_MAX: u64 = 150;
const FLOOD_PER_SECOND: usize = 100;
/// Virtual time per step while lookups run.
const STEP: Duration = Duration::from_millis(20);
/// Virtual time per step in the long quiet phase (flooders off).
const STEP_COARSE: Duration = Duration::from_millis(250);
/// The hops a lookup may take in this network (log2(300 / 8) is about 5).
const ROUNDS_BOUND: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Honest,
    Liar,
    Silent,
    Flooder,
}

/// A datagram on its way: delivery time, sequence (ties), destination
/// index, source address, bytes.
type InFlight = (Duration, u64, usize, SocketAddrV4, Vec<u8>);

struct Sim {
    rng: Rng,
    now: Duration,
    addrs: Vec<SocketAddrV4>,
    roles: Vec<Role>,
    /// `Some` for honest nodes.
    nodes: Vec<Option<Dht>>,
    fake_ids: Vec<NodeId>,
    by_addr: HashMap<SocketAddrV4, usize>,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    outputs: Vec<Vec<DhtOutput>>,
    delivered: u64,
    dropped: u64,
    /// When silent nodes stop answering (they answer before, so they are in
    /// tables when they go).
    silent_from: Duration,
    step: Duration,
    flooding: bool,
}

fn sim_addr(i: usize) -> SocketAddrV4 {
    // Public-looking addresses so BEP 42 applies (nothing is sent anywhere).
    SocketAddrV4::new(
        Ipv4Addr::new(20, 1 + (i / 250) as u8, (i % 250) as u8, 7),
        6881,
    )
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng::new(seed);
        let mut roles = Vec::new();
        roles.extend(std::iter::repeat_n(Role::Honest, HONEST));
        roles.extend(std::iter::repeat_n(Role::Liar, LIARS));
        roles.extend(std::iter::repeat_n(Role::Silent, SILENT));
        roles.extend(std::iter::repeat_n(Role::Flooder, FLOODERS));
        // Shuffle all but node 0 (the bootstrap router, honest).
        for i in (2..roles.len()).rev() {
            let j = 1 + rng.below_usize(i);
            roles.swap(i, j);
        }
        let n = roles.len();
        let addrs: Vec<_> = (0..n).map(sim_addr).collect();
        let mut nodes = Vec::new();
        let mut fake_ids = Vec::new();
        for (i, role) in roles.iter().enumerate() {
            fake_ids.push(NodeId::random(&mut rng));
            nodes.push((*role == Role::Honest).then(|| {
                Dht::new(
                    DhtConfig {
                        external_ip: Some(*addrs[i].ip()),
                        ..DhtConfig::default()
                    },
                    rng.next_u64(),
                    Duration::ZERO,
                )
            }));
        }
        let by_addr = addrs.iter().enumerate().map(|(i, a)| (*a, i)).collect();
        Sim {
            rng,
            now: Duration::ZERO,
            addrs,
            roles,
            nodes,
            fake_ids,
            by_addr,
            queue: BinaryHeap::new(),
            seq: 0,
            outputs: vec![Vec::new(); n],
            delivered: 0,
            dropped: 0,
            silent_from: Duration::MAX,
            step: STEP,
            flooding: true,
        }
    }

    fn send(&mut self, from: usize, to: SocketAddr, bytes: Vec<u8>) {
        let SocketAddr::V4(to) = to else { return };
        if self.rng.below(100) < LOSS_PERCENT {
            self.dropped += 1;
            return;
        }
        let Some(&dest) = self.by_addr.get(&to) else {
            self.dropped += 1; // a made-up address: nobody there
            return;
        };
        let latency = LATENCY_MS_MIN + self.rng.below(LATENCY_MS_MAX - LATENCY_MS_MIN);
        let at = self.now + Duration::from_millis(latency);
        self.seq += 1;
        let from_addr = self.addrs[from];
        self.queue
            .push(Reverse((at, self.seq, dest, from_addr, bytes)));
    }

    fn drain(&mut self, i: usize) {
        let mut sends = Vec::new();
        if let Some(d) = self.nodes[i].as_mut() {
            while let Some(o) = d.poll_output() {
                match o {
                    DhtOutput::Send { to, bytes } => sends.push((to, bytes)),
                    other => self.outputs[i].push(other),
                }
            }
        }
        for (to, bytes) in sends {
            self.send(i, to, bytes);
        }
    }

    /// What a misbehaving node does with a datagram.
    fn misbehave(&mut self, i: usize, from: SocketAddrV4, bytes: &[u8]) {
        let Ok(msg) = krpc::decode(bytes) else { return };
        let Body::Query(q) = msg.body else { return };
        let body = match (self.roles[i], q) {
            (Role::Liar, Query::Ping { .. }) | (Role::Liar, Query::AnnouncePeer { .. }) => {
                Response {
                    id: self.fake_ids[i],
                    ..Response::default()
                }
            }
            (Role::Liar, Query::FindNode { target, .. }) => self.lie(i, target, false),
            (Role::Liar, Query::GetPeers { info_hash, .. }) => {
                self.lie(i, NodeId::from(info_hash), true)
            }
            // Silent nodes answer (with no nodes) until they go offline.
            (Role::Silent, _) if self.now < self.silent_from => Response {
                id: self.fake_ids[i],
                ..Response::default()
            },
            _ => return, // flooders, and silent nodes once offline, answer nothing
        };
        let reply = Message {
            tid: msg.tid,
            body: Body::Response(body),
            read_only: false,
            ip: Some(from),
        };
        self.send(i, SocketAddr::V4(from), reply.encode());
    }

    /// A liar's answer: made-up nodes just next to the target (at addresses
    /// where nobody listens), and made-up peers (too many, or port 0).
    fn lie(&mut self, i: usize, target: NodeId, peers: bool) -> Response {
        let count = 8 + self.rng.below_usize(40);
        let nodes = (0..count)
            .map(|_| {
                let id = target.random_with_prefix(100 + self.rng.below_usize(50), &mut self.rng);
                let a = SocketAddrV4::new(
                    Ipv4Addr::new(66, 6, self.rng.below(250) as u8, 1),
                    1 + self.rng.below(60000) as u16,
                );
                (id, a)
            })
            .collect();
        let values = if peers {
            let n = if self.rng.below(2) == 0 { 3 } else { 150 };
            (0..n)
                .map(|k| {
                    SocketAddrV4::new(
                        Ipv4Addr::new(66, 7, 0, k as u8),
                        if k == 0 { 0 } else { 9999 },
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        Response {
            id: self.fake_ids[i],
            nodes,
            values,
            token: Some(b"liar".to_vec()),
        }
    }

    fn flood(&mut self, i: usize) {
        if !self.flooding {
            return;
        }
        let per_step = (FLOOD_PER_SECOND as u128 * self.step.as_millis() / 1000) as usize;
        for k in 0..per_step {
            let target = if k % 2 == 0 {
                0
            } else {
                self.rng.below_usize(HONEST)
            };
            let tid = (self.seq as u16).to_be_bytes().to_vec();
            let q = Message {
                tid,
                body: Body::Query(Query::GetPeers {
                    id: NodeId::random(&mut self.rng),
                    info_hash: InfoHash(NodeId::random(&mut self.rng).0),
                }),
                read_only: false,
                ip: None,
            };
            let to = SocketAddr::V4(self.addrs[target]);
            self.send(i, to, q.encode());
        }
    }

    fn step(&mut self) {
        self.now += self.step;
        while let Some(Reverse((at, _, _, _, _))) = self.queue.peek() {
            if *at > self.now {
                break;
            }
            let Some(Reverse((_, _, dest, from, bytes))) = self.queue.pop() else {
                break;
            };
            self.delivered += 1;
            match self.nodes[dest].as_mut() {
                Some(d) => {
                    d.handle_datagram(self.now, SocketAddr::V4(from), &bytes);
                    self.drain(dest);
                }
                None => self.misbehave(dest, from, &bytes),
            }
        }
        for i in 0..self.nodes.len() {
            match self.roles[i] {
                Role::Honest => {
                    let due = self.nodes[i]
                        .as_ref()
                        .is_some_and(|d| d.next_tick() <= self.now);
                    if due {
                        if let Some(d) = self.nodes[i].as_mut() {
                            d.tick(self.now);
                        }
                        self.drain(i);
                    }
                }
                Role::Flooder => self.flood(i),
                _ => {}
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// Every node joins through node 0 (and a few others for the liars and
    /// silent nodes, which ping to get into tables).
    fn bootstrap(&mut self) {
        let router = SocketAddr::V4(self.addrs[0]);
        for i in 0..self.nodes.len() {
            match self.roles[i] {
                Role::Honest if i > 0 => {
                    let now = self.now;
                    if let Some(d) = self.nodes[i].as_mut() {
                        d.add_node(now, router);
                    }
                    self.drain(i);
                }
                Role::Liar | Role::Silent => {
                    for _ in 0..5 {
                        let to = self.addrs[self.rng.below_usize(HONEST)];
                        let tid = vec![0x70, self.rng.below(256) as u8];
                        let q = Message {
                            tid,
                            body: Body::Query(Query::Ping {
                                id: self.fake_ids[i],
                            }),
                            read_only: false,
                            ip: None,
                        };
                        self.send(i, SocketAddr::V4(to), q.encode());
                    }
                }
                _ => {}
            }
            if i % 20 == 0 {
                self.run_for(Duration::from_millis(200));
            }
        }
    }

    fn honest(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.roles[*i] == Role::Honest)
            .collect()
    }

    /// Runs until node `i` reports `LookupDone` for `id`; returns it and the
    /// peers it reported.
    fn wait_done(
        &mut self,
        i: usize,
        id: LookupId,
        limit: Duration,
    ) -> Option<(usize, usize, usize, HashSet<SocketAddr>)> {
        let end = self.now + limit;
        let mut peers = HashSet::new();
        while self.now < end {
            self.step();
            for o in std::mem::take(&mut self.outputs[i]) {
                match o {
                    DhtOutput::Peers { peers: p, .. } => peers.extend(p),
                    DhtOutput::LookupDone {
                        id: done,
                        announced,
                        queries,
                        rounds,
                        ..
                    } if done == id => return Some((announced, queries, rounds, peers)),
                    _ => {}
                }
            }
        }
        None
    }

    fn assert_bounded(&self) {
        for d in self.nodes.iter().flatten() {
            let s = d.stats();
            assert!(s.largest_bucket <= K, "{s:?}");
            assert!(s.buckets <= node_id::NODE_ID_BITS, "{s:?}");
            assert!(s.nodes <= s.buckets * K, "{s:?}");
            assert!(
                s.replacements <= s.buckets * routing_table::REPLACEMENTS_PER_BUCKET_MAX,
                "{s:?}"
            );
            assert!(s.outstanding <= OUTSTANDING_MAX, "{s:?}");
            assert!(s.lookups <= LOOKUPS_MAX, "{s:?}");
            assert!(
                s.stored_hashes <= peer_store::PEER_STORE_HASHES_MAX,
                "{s:?}"
            );
            assert!(d.nodes().len() <= SAVED_NODES_MAX);
        }
    }
}

fn run_network(seed: u64) {
    println!("dht simulation seed {seed:#x}");
    let mut sim = Sim::new(seed);
    sim.bootstrap();
    sim.run_for(Duration::from_secs(60));
    sim.silent_from = sim.now;
    let silent_in_tables: usize = sim
        .nodes
        .iter()
        .flatten()
        .map(|d| {
            d.table
                .entries()
                .iter()
                .filter(|e| {
                    sim.by_addr
                        .get(&e.addr)
                        .is_some_and(|i| sim.roles[*i] == Role::Silent)
                })
                .count()
        })
        .sum();
    println!("silent nodes in tables: {silent_in_tables}");
    sim.assert_bounded();
    let honest = sim.honest();
    let mean_nodes: usize = honest
        .iter()
        .filter_map(|i| sim.nodes[*i].as_ref())
        .map(|d| d.stats().nodes)
        .sum::<usize>()
        / honest.len();
    println!("after bootstrap: mean table size {mean_nodes}");
    assert!(mean_nodes >= 2 * K, "tables filled: {mean_nodes}");

    let pairs = 8;
    let mut found = 0;
    for p in 0..pairs {
        let a = honest[1 + sim.rng.below_usize(honest.len() - 1)];
        let b = loop {
            let b = honest[1 + sim.rng.below_usize(honest.len() - 1)];
            if b != a {
                break b;
            }
        };
        let info_hash = InfoHash(NodeId::random(&mut sim.rng).0);
        let port = 7000 + p as u16;
        let now = sim.now;
        let id = sim.nodes[a]
            .as_mut()
            .map(|d| d.announce(now, info_hash, port))
            .unwrap_or(LookupId(0));
        sim.drain(a);
        let (announced, q_a, r_a, _) = sim
            .wait_done(a, id, Duration::from_secs(120))
            .expect("announce finishes");
        let now = sim.now;
        let id = sim.nodes[b]
            .as_mut()
            .map(|d| d.get_peers(now, info_hash))
            .unwrap_or(LookupId(0));
        sim.drain(b);
        let (_, q_b, r_b, peers) = sim
            .wait_done(b, id, Duration::from_secs(120))
            .expect("get_peers finishes");
        let want = SocketAddr::V4(SocketAddrV4::new(*sim.addrs[a].ip(), port));
        let ok = peers.contains(&want);
        println!(
            "pair {p}: node {a} announced to {announced} (queries {q_a}, rounds {r_a}); node {b} found it: {ok} (queries {q_b}, rounds {r_b}, {} peers)",
            peers.len()
        );
        if announced == 0 {
            let d = sim.nodes[a].as_ref();
            println!("announcer stats {:?}", d.map(|d| d.stats()));
            let own = d.map(|d| d.node_id()).unwrap_or_default();
            let near: Vec<_> = d
                .map(|d| d.table.closest(&NodeId::from(info_hash), K))
                .unwrap_or_default();
            for (id, ad) in near {
                let role = sim.by_addr.get(&ad).map(|i| sim.roles[*i]);
                println!(
                    "  {id:?} {ad} {role:?} lz {}",
                    own.distance(&id).leading_zeros()
                );
            }
        }
        assert!(announced >= 1, "announce reached nobody");
        assert!(
            peers.iter().all(|p| p.port() != 0),
            "port-0 peers are dropped"
        );
        assert!(q_a <= LOOKUP_QUERIES_MAX && q_b <= LOOKUP_QUERIES_MAX);
        assert!(r_b <= ROUNDS_BOUND, "get_peers took {r_b} rounds");
        found += usize::from(ok);
    }
    println!(
        "found {found} of {pairs}; delivered {} dropped {}",
        sim.delivered, sim.dropped
    );
    assert!(found >= pairs - 1, "lookups converge: {found} of {pairs}");

    // Flooders stop; a quiet quarter of an hour: nodes gone silent are
    // pinged (questionable) or queried by refreshes, time out and are evicted.
    sim.flooding = false;
    sim.step = STEP_COARSE;
    sim.run_for(QUESTIONABLE_AGE + Duration::from_secs(60));
    sim.assert_bounded();
    let limited: u64 = sim
        .nodes
        .iter()
        .flatten()
        .map(|d| d.stats().queries_rate_limited)
        .sum();
    let evicted: u64 = sim.nodes.iter().flatten().map(|d| d.stats().evicted).sum();
    println!("rate-limited queries {limited}, evicted nodes {evicted}");
    assert!(limited > 0, "flooders were limited");
    let silent_left: usize = sim
        .nodes
        .iter()
        .flatten()
        .map(|d| {
            d.table
                .closest(&d.node_id(), usize::MAX)
                .iter()
                .filter(|(_, a)| {
                    sim.by_addr
                        .get(a)
                        .is_some_and(|i| sim.roles[*i] == Role::Silent)
                })
                .count()
        })
        .sum();
    println!("silent nodes still in tables (not replacement caches): {silent_left}");
    assert!(evicted > 0, "silent nodes were evicted");
    assert!(
        silent_left * 4 <= silent_in_tables,
        "most silent nodes were evicted"
    );
    let router = sim.nodes[0].as_ref().map(|d| d.stats()).unwrap_or_default();
    println!("router: {router:?}");
    assert!(router.queries_rate_limited > 0);
}

#[test]
fn simulated_network_lookups_converge_despite_liars_silence_and_floods() {
    for seed in SEEDS {
        run_network(*seed);
    }
}
