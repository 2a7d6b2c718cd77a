//! Two or more `Torrent` engines wired together in memory, in virtual time:
//! a seeder and a downloader exchange bytes with no socket, no file and no
//! clock, so the whole download logic is checked deterministically.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::engine::peer_list::PeerState;
use crate::engine::EngineSettings;
use crate::rng::Rng;

const PIECE: u64 = 32 * 1024;

struct Node {
    t: Torrent,
    addr: SocketAddr,
    /// The data on "disk".
    disk: Vec<u8>,
    /// Corrupts every block it serves.
    liar: bool,
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    Rng::new(seed).bytes(len)
}

fn hashes(d: &[u8]) -> Arc<[[u8; 20]]> {
    d.chunks(PIECE as usize)
        .map(sha1)
        .collect::<Vec<_>>()
        .into()
}

fn node(d: &[u8], have_all: bool, port: u16, seed: u64, liar: bool) -> Node {
    node_with(d, have_all, port, seed, liar, EngineSettings::default())
}

fn node_with(
    d: &[u8],
    have_all: bool,
    port: u16,
    seed: u64,
    liar: bool,
    settings: EngineSettings,
) -> Node {
    let pieces = d.len().div_ceil(PIECE as usize);
    let have: Vec<usize> = if have_all {
        (0..pieces).collect()
    } else {
        Vec::new()
    };
    node_having(d, &have, port, seed, liar, settings)
}

/// A node with the pieces `have` on disk; it downloads the rest.
fn node_having(
    d: &[u8],
    pieces_have: &[usize],
    port: u16,
    seed: u64,
    liar: bool,
    settings: EngineSettings,
) -> Node {
    node_ext(d, pieces_have, port, seed, liar, settings, false, None)
}

/// [`node_having`] with PEX on or off and metadata to serve.
#[allow(clippy::too_many_arguments)]
fn node_ext(
    d: &[u8],
    pieces_have: &[usize],
    port: u16,
    seed: u64,
    liar: bool,
    settings: EngineSettings,
    pex: bool,
    metadata: Option<Arc<[u8]>>,
) -> Node {
    let pieces = d.len().div_ceil(PIECE as usize);
    let mut have = Bitfield::new(pieces).unwrap();
    let mut disk = vec![0; d.len()];
    for &i in pieces_have {
        have.set(i).unwrap();
        let start = i * PIECE as usize;
        let end = (start + PIECE as usize).min(d.len());
        disk[start..end].copy_from_slice(&d[start..end]);
    }
    let have_all = pieces_have.len() == pieces;
    let mut peer_id = [b'x'; 20];
    peer_id[..2].copy_from_slice(&port.to_be_bytes());
    let addr: SocketAddr = format!("127.0.0.{}:{port}", port % 200 + 1)
        .parse()
        .unwrap();
    let setup = TorrentSetup {
        info_hash: InfoHash([7; 20]),
        piece_length: PIECE,
        total_length: d.len() as u64,
        piece_hashes: hashes(d),
        have,
        peer_id,
        listen_port: port,
        listen_addrs: vec![addr],
        has_trackers: false,
        download: !have_all,
        rng_seed: seed,
        metadata,
        pex,
    };
    let t = Torrent::new(setup, settings, Duration::ZERO).unwrap();
    Node {
        t,
        addr,
        disk,
        liar,
    }
}

/// A link: (node a, peer id at a), (node b, peer id at b).
type Link = ((usize, PeerId), (usize, PeerId));

struct Swarm {
    nodes: Vec<Node>,
    links: Vec<Link>,
    /// Writes are held (a stalled disk) instead of completing at once.
    hold_writes: bool,
    held: Vec<(usize, u32, usize)>,
    /// Nodes whose disk reads never complete: they send no blocks.
    stalled_reads: Vec<usize>,
    /// Bytes in flight towards (node, peer).
    pipes: HashMap<(usize, PeerId), Vec<u8>>,
    now: Duration,
    closed: Vec<(usize, SocketAddr, CloseReason)>,
    /// Dials asked for: (node, address, when).
    dials: Vec<(usize, SocketAddr, Duration)>,
    /// Dials the engine asked to make with the obfuscated handshake.
    encrypted_dials: Vec<(usize, SocketAddr)>,
    /// Addresses whose dials are refused (nobody listens there yet).
    refused: Vec<SocketAddr>,
    /// Every announce asked for: (node, event).
    announces: Vec<(usize, Option<Event>)>,
    /// BEP 10 `yourip` votes: (node, ip, voter).
    votes: Vec<(usize, IpAddr, IpAddr)>,
}

impl Swarm {
    fn connect(&mut self, from: usize, to: usize) {
        let now = self.now;
        let to_addr = self.nodes[to].addr;
        let from_addr = self.nodes[from].addr;
        let a = self.nodes[from]
            .t
            .add_peer(now, to_addr, Direction::Outgoing)
            .unwrap();
        let b = self.nodes[to]
            .t
            .add_peer(now, from_addr, Direction::Incoming)
            .unwrap();
        self.links.push(((from, a), (to, b)));
    }

    fn other_end(&self, node: usize, peer: PeerId) -> Option<(usize, PeerId)> {
        self.links.iter().find_map(|&(x, y)| {
            if x == (node, peer) {
                Some(y)
            } else if y == (node, peer) {
                Some(x)
            } else {
                None
            }
        })
    }

    /// Carries out outputs of every node until nothing moves.
    fn settle(&mut self) {
        for _ in 0..100_000 {
            let mut moved = false;
            for n in 0..self.nodes.len() {
                while let Some(out) = self.nodes[n].t.poll_output() {
                    moved = true;
                    self.carry(n, out);
                }
            }
            let keys: Vec<_> = self.pipes.keys().copied().collect();
            for key in keys {
                let bytes = self.pipes.remove(&key).unwrap_or_default();
                if bytes.is_empty() {
                    continue;
                }
                let (n, peer) = key;
                let used = self.nodes[n].t.receive(self.now, peer, &bytes);
                if used > 0 {
                    moved = true;
                }
                if used < bytes.len() && self.nodes[n].t.has_peer(peer) {
                    self.pipes.insert(key, bytes[used..].to_vec());
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the swarm did not settle");
    }

    fn carry(&mut self, n: usize, out: Output) {
        let now = self.now;
        match out {
            Output::Flush { peer } => {
                let mut bytes = Vec::new();
                self.nodes[n].t.take_outgoing(peer, &mut bytes);
                if let Some(dst) = self.other_end(n, peer) {
                    self.pipes.entry(dst).or_default().extend(bytes);
                }
            }
            Output::Read { .. } if self.stalled_reads.contains(&n) => {}
            Output::Read {
                peer,
                piece,
                offset,
                length,
            } => {
                let start = piece as usize * PIECE as usize + offset as usize;
                let mut block = self.nodes[n].disk[start..start + length as usize].to_vec();
                if self.nodes[n].liar {
                    block.iter_mut().for_each(|b| *b ^= 0x5a);
                }
                if let Some(h) = self.nodes[n]
                    .t
                    .on_block_read(now, peer, piece, offset, length)
                {
                    if let Some(dst) = self.other_end(n, peer) {
                        let pipe = self.pipes.entry(dst).or_default();
                        pipe.extend_from_slice(&h);
                        pipe.extend_from_slice(&block);
                    }
                    // The block left: room under the send watermark.
                    self.nodes[n].t.on_blocks_sent(now, peer, 1);
                }
            }
            Output::WritePiece { piece, data } if self.hold_writes => {
                self.held.push((n, piece, data.len()));
            }
            Output::WritePiece { piece, data } => {
                let start = piece as usize * PIECE as usize;
                self.nodes[n].disk[start..start + data.len()].copy_from_slice(&data);
                self.nodes[n].t.on_piece_written(now, piece, true);
            }
            Output::Close { peer, addr, reason } => {
                self.closed.push((n, addr, reason));
                if let Some((m, p)) = self.other_end(n, peer) {
                    self.nodes[m].t.peer_removed(now, p);
                }
            }
            Output::Connect { addr, encrypt } => {
                self.dials.push((n, addr, now));
                if encrypt {
                    self.encrypted_dials.push((n, addr));
                }
                let target = self.nodes.iter().position(|x| x.addr == addr);
                match target {
                    Some(m) if !self.refused.contains(&addr) => {
                        let from_addr = self.nodes[n].addr;
                        let a = self.nodes[n].t.add_peer(now, addr, Direction::Outgoing);
                        let b = self.nodes[m]
                            .t
                            .add_peer(now, from_addr, Direction::Incoming);
                        match (a, b) {
                            (Ok(a), Ok(b)) => self.links.push(((n, a), (m, b))),
                            (Ok(a), Err(_)) => self.nodes[n].t.peer_removed(now, a),
                            (Err(_), Ok(b)) => self.nodes[m].t.peer_removed(now, b),
                            (Err(_), Err(_)) => {}
                        }
                    }
                    _ => {
                        self.nodes[n].t.connect_failed(now, addr);
                    }
                }
            }
            Output::Announce { request } => self.announces.push((n, request.event)),
            Output::Finished => {}
            Output::ExternalAddress { ip, voter } => self.votes.push((n, ip, voter)),
        }
    }

    fn run_until_finished(&mut self, node: usize, seconds_max: u64) {
        for _ in 0..seconds_max * 10 {
            self.settle();
            if self.nodes[node].t.is_finished() {
                return;
            }
            self.now += Duration::from_millis(100);
            for n in 0..self.nodes.len() {
                if self.now >= self.nodes[n].t.next_tick() {
                    self.nodes[n].t.tick(self.now);
                }
            }
        }
        panic!(
            "node {node} did not finish in {seconds_max} virtual seconds: {:?}",
            self.nodes[node].t.stats()
        );
    }
}

fn swarm(nodes: Vec<Node>) -> Swarm {
    Swarm {
        nodes,
        links: Vec::new(),
        hold_writes: false,
        stalled_reads: Vec::new(),
        held: Vec::new(),
        pipes: HashMap::new(),
        now: Duration::ZERO,
        closed: Vec::new(),
        dials: Vec::new(),
        encrypted_dials: Vec::new(),
        refused: Vec::new(),
        announces: Vec::new(),
        votes: Vec::new(),
    }
}

#[test]
fn a_downloader_gets_every_byte_from_a_seeder() {
    let d = data(PIECE as usize * 9 + 1234, 1);
    let mut s = swarm(vec![
        node(&d, true, 1000, 1, false),
        node(&d, false, 1001, 2, false),
    ]);
    s.connect(1, 0);
    s.run_until_finished(1, 60);
    assert_eq!(s.nodes[1].disk, d);
    let st = s.nodes[1].t.stats();
    assert!(st.finished);
    assert_eq!(st.bytes_left, 0);
    assert_eq!(st.downloaded, d.len() as u64);
    assert_eq!(s.nodes[0].t.stats().uploaded, d.len() as u64);
    // Once both are seeds the connection is useless and is closed.
    assert!(
        s.closed
            .iter()
            .all(|(_, _, r)| r.text == "BothSeeds" && !r.banned),
        "{:?}",
        s.closed
    );
}

#[test]
fn three_downloaders_finish_from_one_seeder_and_each_other() {
    let d = data(PIECE as usize * 20 + 77, 3);
    let mut s = swarm(vec![
        node(&d, true, 2000, 1, false),
        node(&d, false, 2001, 2, false),
        node(&d, false, 2002, 3, false),
        node(&d, false, 2003, 4, false),
    ]);
    for i in 1..4 {
        s.connect(i, 0);
    }
    s.connect(1, 2);
    s.connect(2, 3);
    s.connect(3, 1);
    for i in 1..4 {
        s.run_until_finished(i, 120);
        assert_eq!(s.nodes[i].disk, d, "node {i}");
    }
}

#[test]
fn a_lying_seed_is_banned_and_the_download_still_completes() {
    let d = data(PIECE as usize * 12, 5);
    let mut s = swarm(vec![
        node(&d, true, 3000, 1, false),
        node(&d, true, 3001, 2, true),
        node(&d, false, 3002, 3, false),
    ]);
    s.connect(2, 1);
    s.connect(2, 0);
    s.run_until_finished(2, 300);
    assert_eq!(s.nodes[2].disk, d);
    let liar = s.nodes[1].addr;
    assert!(
        s.closed
            .iter()
            .any(|(n, a, r)| *n == 2 && *a == liar && r.banned),
        "the liar was not banned: {:?}",
        s.closed
    );
    assert!(
        !s.closed
            .iter()
            .any(|(_, a, r)| *a == s.nodes[0].addr && r.banned),
        "the honest seed was banned: {:?}",
        s.closed
    );
    assert!(s.nodes[2].t.stats().hash_failures >= 1);
    // A banned address cannot come back.
    let e = s.nodes[2]
        .t
        .add_peer(s.now, liar, Direction::Incoming)
        .unwrap_err();
    assert!(matches!(e, AddPeerError::Banned { .. }));
}

#[test]
fn a_seed_only_torrent_never_requests() {
    let d = data(PIECE as usize * 3, 7);
    let mut s = swarm(vec![
        node(&d, true, 4000, 1, false),
        node(&d, true, 4001, 2, false),
    ]);
    // Both seeds: the connection is closed as useless, nothing downloaded.
    s.connect(0, 1);
    s.settle();
    assert_eq!(s.nodes[0].t.stats().downloaded, 0);
    assert_eq!(s.nodes[1].t.stats().downloaded, 0);
}

#[test]
fn stale_peer_ids_are_ignored() {
    let d = data(PIECE as usize * 2, 9);
    let mut n = node(&d, true, 5000, 1, false);
    let addr: SocketAddr = "127.0.0.9:1".parse().unwrap();
    let p =
        n.t.add_peer(Duration::ZERO, addr, Direction::Incoming)
            .unwrap();
    n.t.peer_removed(Duration::ZERO, p);
    assert!(!n.t.has_peer(p));
    let q =
        n.t.add_peer(Duration::ZERO, addr, Direction::Incoming)
            .unwrap();
    assert_eq!(q.slot, p.slot);
    assert_ne!(q.generation, p.generation);
    assert_eq!(n.t.receive(Duration::ZERO, p, b"garbage"), 0);
    assert!(n.t.on_block_read(Duration::ZERO, p, 0, 0, 16).is_none());
    assert!(n.t.has_peer(q));
}

#[test]
fn a_stalled_disk_stops_requests_at_the_memory_limit() {
    let d = data(PIECE as usize * 64, 11);
    let mut settings = EngineSettings {
        download_memory_max_bytes: 1024 * 1024,
        requests_per_peer_min: 8,
        ..EngineSettings::default()
    };
    settings.peer.requests_out_max = 8;
    let mut s = swarm(vec![
        node(&d, true, 6000, 1, false),
        node_with(&d, false, 6001, 2, false, settings),
    ]);
    s.hold_writes = true;
    s.connect(1, 0);
    for _ in 0..50 {
        s.settle();
        s.now += Duration::from_secs(1);
        s.nodes[0].t.tick(s.now);
        s.nodes[1].t.tick(s.now);
    }
    s.settle();
    let held: usize = s.held.iter().map(|h| h.2).sum();
    // The limit, plus what was already requested when it was reached.
    let bound = 1024 * 1024 + 8 * 16 * 1024 + PIECE as usize;
    assert!(
        held >= 1024 * 1024,
        "held {held}: the limit was never reached"
    );
    assert!(held <= bound, "held {held} bytes of writes, over {bound}");
    assert_eq!(s.nodes[1].t.stats().pieces_have, 0);
    // The disk catches up: the download finishes.
    s.hold_writes = false;
    let now = s.now;
    for (n, piece, _) in std::mem::take(&mut s.held) {
        let start = piece as usize * PIECE as usize;
        let end = (start + PIECE as usize).min(d.len());
        s.nodes[n].disk[start..end].copy_from_slice(&d[start..end]);
        s.nodes[n].t.on_piece_written(now, piece, true);
    }
    s.run_until_finished(1, 60);
    assert_eq!(s.nodes[1].disk, d);
}

/// One seed (node 0) and `downloaders` downloaders connected to it, after
/// the first rechoke. The downloaders' writes are held, so they stay
/// interested until [`release_writes`].
fn seed_with_downloaders(
    settings: EngineSettings,
    downloaders: usize,
    base: u16,
) -> (Swarm, Vec<u8>) {
    let d = data(PIECE as usize * 8, 9);
    let mut nodes = vec![node_with(&d, true, base, 1, false, settings)];
    for i in 1..=downloaders {
        nodes.push(node(&d, false, base + i as u16, i as u64 + 1, false));
    }
    let mut s = swarm(nodes);
    s.hold_writes = true;
    for i in 1..=downloaders {
        s.connect(i, 0);
    }
    s.settle();
    s.nodes[0].t.tick(s.now);
    s.settle();
    (s, d)
}

/// The disks catch up: held writes complete, later ones at once.
fn release_writes(s: &mut Swarm, d: &[u8]) {
    s.hold_writes = false;
    let now = s.now;
    for (n, piece, _) in std::mem::take(&mut s.held) {
        let start = piece as usize * PIECE as usize;
        let end = (start + PIECE as usize).min(d.len());
        s.nodes[n].disk[start..end].copy_from_slice(&d[start..end]);
        s.nodes[n].t.on_piece_written(now, piece, true);
    }
}

#[test]
fn default_slots_unchoke_four_plus_one_optimistic() {
    let (s, _) = seed_with_downloaders(EngineSettings::default(), 8, 5000);
    let seed = &s.nodes[0].t;
    assert_eq!(seed.stats().unchoked, 5);
    assert_eq!(seed.slot_demand(), 4, "8 interested, capped by 4 slots");
}

#[test]
fn unlimited_slots_unchoke_every_interested_peer() {
    let mut settings = EngineSettings::default();
    settings.slots.slots = crate::upload_slots::SlotLimit::Unlimited;
    let (mut s, d) = seed_with_downloaders(settings, 8, 5100);
    assert_eq!(s.nodes[0].t.stats().unchoked, 8);
    assert_eq!(s.nodes[0].t.slot_demand(), 8);
    release_writes(&mut s, &d);
    for i in 1..=8 {
        s.run_until_finished(i, 60);
        assert_eq!(s.nodes[i].disk, d, "node {i}");
    }
}

#[test]
fn settings_change_while_peers_are_connected() {
    let (mut s, _) = seed_with_downloaders(EngineSettings::default(), 8, 5150);
    assert_eq!(s.nodes[0].t.stats().unchoked, 5);
    // Unchoke-all from now on: the next rechoke (the next tick) applies it.
    let mut settings = s.nodes[0].t.settings().clone();
    settings.slots.slots = crate::upload_slots::SlotLimit::Unlimited;
    s.nodes[0].t.apply_settings(settings).unwrap();
    s.now += Duration::from_secs(1);
    let now = s.now;
    s.nodes[0].t.tick(now);
    s.settle();
    assert_eq!(s.nodes[0].t.stats().unchoked, 8);
    // Out of range: refused whole, the old settings stay.
    let mut bad = s.nodes[0].t.settings().clone();
    bad.peers_per_torrent_max = 0;
    bad.announce_numwant = 7;
    assert!(s.nodes[0].t.apply_settings(bad).is_err());
    assert_eq!(s.nodes[0].t.settings().announce_numwant, 200);
    // A lower peer limit refuses newcomers and keeps those connected.
    let mut fewer = s.nodes[0].t.settings().clone();
    fewer.peers_per_torrent_max = 2;
    s.nodes[0].t.apply_settings(fewer).unwrap();
    assert_eq!(s.nodes[0].t.stats().peers, 8);
    let refused = s.nodes[0].t.add_peer(
        now,
        "127.0.0.99:6881".parse().unwrap(),
        crate::peer::Direction::Incoming,
    );
    assert!(matches!(refused, Err(AddPeerError::TooMany { count: 8 })));
}

#[test]
fn a_slot_quota_caps_the_next_rechoke_but_never_starves() {
    let (mut s, d) = seed_with_downloaders(EngineSettings::default(), 6, 5200);
    assert_eq!(s.nodes[0].t.slot_quota(), None);
    s.nodes[0].t.set_slot_quota(Some(0));
    assert_eq!(s.nodes[0].t.slot_quota(), Some(0));
    s.now += Duration::from_secs(10);
    let now = s.now;
    s.nodes[0].t.tick(now);
    s.settle();
    // One regular slot (a quota of 0 still leaves one) and one optimistic.
    assert_eq!(s.nodes[0].t.stats().unchoked, 2);
    // The demand does not depend on the quota.
    assert_eq!(s.nodes[0].t.slot_demand(), 4);
    // Everyone still finishes, through the rotating optimistic slot.
    release_writes(&mut s, &d);
    for i in 1..=6 {
        s.run_until_finished(i, 600);
        assert_eq!(s.nodes[i].disk, d, "node {i}");
    }
}

#[test]
fn a_peer_that_sends_nothing_for_a_minute_is_snubbed() {
    // Node 0 has pieces 0..4, node 1 has 4..8: each wants the other's.
    // Neither disk answers, so neither ever sends a block (and both stay
    // interested).
    let d = data(PIECE as usize * 8, 13);
    let low: Vec<usize> = (0..4).collect();
    let high: Vec<usize> = (4..8).collect();
    let mut s = swarm(vec![
        node_having(&d, &low, 5300, 1, false, EngineSettings::default()),
        node_having(&d, &high, 5301, 2, false, EngineSettings::default()),
    ]);
    s.stalled_reads.extend([0, 1]);
    s.connect(0, 1);
    let mut demand = Vec::new();
    for second in 0..=70u64 {
        s.now = Duration::from_secs(second);
        let now = s.now;
        for n in 0..2 {
            s.nodes[n].t.tick(now);
        }
        s.settle();
        demand.push(s.nodes[0].t.slot_demand());
    }
    // Node 1 is interested in node 0 and counts towards its demand while
    // node 0's requests are young; 60 s without a block snubs it.
    assert_eq!(demand[5], 1, "{demand:?}");
    assert_eq!(demand[50], 1, "{demand:?}");
    assert_eq!(demand[70], 0, "{demand:?}");
    assert_eq!(s.nodes[0].t.stats().peers, 1, "still connected");
}

/// A downloading torrent never dials an address it listens on, of either
/// family, however a tracker lists it; other IPv4 and IPv6 peers are
/// dialled.
#[test]
fn own_listen_addresses_of_both_families_are_never_dialled() {
    let own_v4: SocketAddr = "192.0.2.1:6881".parse().unwrap();
    let own_v6: SocketAddr = "[2001:db8::1]:6881".parse().unwrap();
    let setup = TorrentSetup {
        info_hash: InfoHash([8; 20]),
        piece_length: PIECE,
        total_length: 4 * PIECE,
        piece_hashes: vec![[0u8; 20]; 4].into(),
        have: Bitfield::new(4).unwrap(),
        peer_id: [b'o'; 20],
        listen_port: 6881,
        listen_addrs: vec![own_v4, own_v6],
        has_trackers: false,
        download: true,
        rng_seed: 3,
        metadata: None,
        pex: false,
    };
    let mut t = Torrent::new(setup, EngineSettings::default(), Duration::ZERO).unwrap();
    let other_v4: SocketAddr = "192.0.2.2:6881".parse().unwrap();
    let other_v6: SocketAddr = "[2001:db8::2]:6881".parse().unwrap();
    let added = t.add_addresses(
        Duration::ZERO,
        &[own_v4, other_v6, own_v6, other_v4],
        PeerSource::Tracker,
    );
    assert_eq!(added, 2);
    let mut dialled = Vec::new();
    while let Some(o) = t.poll_output() {
        if let Output::Connect { addr, .. } = o {
            dialled.push(addr);
        }
    }
    dialled.sort();
    let mut want = vec![other_v4, other_v6];
    want.sort();
    assert_eq!(dialled, want);
}

/// Issue 9's boundary: a peer of the largest torrent allowed
/// (`PIECES_PER_TORRENT_MAX` pieces) sends its handshake and its 262,149-byte
/// bitfield, received the way the runtime receives (one chunk of
/// `RECEIVE_CHUNK_BYTES_MAX` at a time, checked against the torrent's receive
/// bound before it is fed). The unconsumed bytes go past the old fixed bound
/// of 256 KiB, which dropped such a peer, and stay within
/// `receive_buffer_bytes_max`; the bitfield is accepted and we become
/// interested.
#[test]
fn the_largest_torrents_bitfield_fits_its_receive_bound() {
    use crate::limits::{
        bitfield_message_bytes, PIECES_PER_TORRENT_MAX, RECEIVE_BUFFER_BYTES_MAX,
        RECEIVE_BUFFER_BYTES_MIN, RECEIVE_CHUNK_BYTES_MAX,
    };
    use crate::wire::{encode, Handshake, Limits, Message, MessageDecoder, HANDSHAKE_BYTES};

    let pieces = PIECES_PER_TORRENT_MAX as usize;
    let piece_length = 16;
    let setup = TorrentSetup {
        info_hash: InfoHash([9; 20]),
        piece_length,
        total_length: pieces as u64 * piece_length,
        piece_hashes: vec![[0u8; 20]; pieces].into(),
        have: Bitfield::new(pieces).unwrap(),
        peer_id: [b'r'; 20],
        listen_port: 6881,
        listen_addrs: Vec::new(),
        has_trackers: false,
        download: true,
        rng_seed: 1,
        metadata: None,
        pex: false,
    };
    let mut t = Torrent::new(setup, EngineSettings::default(), Duration::ZERO).unwrap();
    let bound = t.receive_buffer_bytes_max();
    assert!(bound <= RECEIVE_BUFFER_BYTES_MAX, "{bound}");
    assert!(bound > RECEIVE_BUFFER_BYTES_MIN, "{bound}");

    let now = Duration::from_secs(1);
    let addr: SocketAddr = "127.0.0.9:6881".parse().unwrap();
    let peer = t.add_peer(now, addr, Direction::Incoming).unwrap();
    let mut wire = Handshake {
        info_hash: InfoHash([9; 20]),
        peer_id: [b'p'; 20],
        reserved: [0; 8],
    }
    .encode()
    .to_vec();
    let bits = vec![0xaa; pieces / 8];
    encode(&Message::Bitfield(&bits), &mut wire);
    assert_eq!(
        wire.len() as u64,
        HANDSHAKE_BYTES as u64 + bitfield_message_bytes(PIECES_PER_TORRENT_MAX)
    );

    let mut inbuf: Vec<u8> = Vec::new();
    let mut most = 0;
    for chunk in wire.chunks(RECEIVE_CHUNK_BYTES_MAX) {
        inbuf.extend_from_slice(chunk);
        most = most.max(inbuf.len());
        assert!(inbuf.len() <= bound, "{} bytes over the bound", inbuf.len());
        let used = t.receive(now, peer, &inbuf);
        inbuf.drain(..used);
    }
    assert!(inbuf.is_empty(), "{} bytes left", inbuf.len());
    assert!(
        most > 256 * 1024,
        "the old bound would have held {most} bytes"
    );
    assert!(t.has_peer(peer), "the peer was dropped");

    // We answered with our handshake and `interested`.
    let mut out = Vec::new();
    while let Some(o) = t.poll_output() {
        if let Output::Flush { peer: p } = o {
            t.take_outgoing(p, &mut out);
        }
    }
    let mut rest = out.get(HANDSHAKE_BYTES..).unwrap_or_default();
    let mut decoder = MessageDecoder::new(Limits::for_pieces(pieces as u32));
    let mut names = Vec::new();
    while let Ok(Some((m, n))) = decoder.decode(rest) {
        names.push(m.name());
        rest = &rest[n..];
    }
    assert!(names.contains(&"interested"), "{names:?}");
}

/// Ticks every node once per virtual second for `seconds`, settling after
/// each.
fn run_for(s: &mut Swarm, seconds: u64) {
    for _ in 0..seconds {
        s.now += Duration::from_secs(1);
        for n in 0..s.nodes.len() {
            s.nodes[n].t.tick(s.now);
        }
        s.settle();
    }
}

#[test]
fn a_seed_dials_the_downloaders_a_tracker_gives_and_serves_them() {
    let d = data(PIECE as usize * 6 + 99, 21);
    let mut s = swarm(vec![
        node(&d, true, 7000, 1, false),
        node(&d, false, 7001, 2, false),
        node(&d, false, 7002, 3, false),
    ]);
    // The downloaders know nobody: only the seed can start a connection.
    let leechers = [s.nodes[1].addr, s.nodes[2].addr];
    let added = s.nodes[0]
        .t
        .add_addresses(s.now, &leechers, PeerSource::Tracker);
    assert_eq!(added, 2);
    s.settle();
    let dialled: Vec<SocketAddr> = s.dials.iter().map(|d| d.1).collect();
    assert_eq!(dialled, leechers, "the seed dials both downloaders");
    s.run_until_finished(1, 60);
    s.run_until_finished(2, 60);
    assert_eq!(s.nodes[1].disk, d);
    assert_eq!(s.nodes[2].disk, d);
}

#[test]
fn two_seeds_meet_once_and_never_dial_each_other_again() {
    let d = data(PIECE as usize * 3, 22);
    let mut s = swarm(vec![
        node(&d, true, 7100, 1, false),
        node(&d, true, 7101, 2, false),
    ]);
    let (a, b) = (s.nodes[0].addr, s.nodes[1].addr);
    // A tracker lists each to the other on every (re-)announce.
    for round in 0..20 {
        s.nodes[0].t.add_addresses(s.now, &[b], PeerSource::Tracker);
        s.nodes[1].t.add_addresses(s.now, &[a], PeerSource::Tracker);
        s.settle();
        run_for(&mut s, 60);
        assert!(s.dials.len() <= 2, "round {round}: dials {:?}", s.dials);
    }
    assert!(
        !s.dials.is_empty(),
        "a seed dials an address it does not know as a seed"
    );
    assert!(
        s.closed.iter().all(|c| c.2.text == "BothSeeds"),
        "{:?}",
        s.closed
    );
    assert!(s.nodes[0].t.peer_list().get(&b).is_some_and(|e| e.seed));
    assert_eq!(s.nodes[0].t.stats().peers, 0);
}

#[test]
fn a_refused_dial_is_retried_with_a_growing_wait() {
    let d = data(PIECE as usize * 4, 23);
    let mut s = swarm(vec![
        node(&d, true, 7200, 1, false),
        node(&d, false, 7201, 2, false),
    ]);
    let seed = s.nodes[0].addr;
    s.refused.push(seed);
    s.nodes[1].t.add_addresses(s.now, &[seed], PeerSource::User);
    s.settle();
    run_for(&mut s, 40);
    let times: Vec<u64> = s.dials.iter().map(|d| d.2.as_secs()).collect();
    // Refused at 0 s, again after 10 s, then after 20 s more.
    assert_eq!(times, [0, 10, 30], "{:?}", s.dials);
    assert_eq!(s.nodes[1].t.peer_list().get(&seed).unwrap().failures, 3);
    // The seed starts listening: the next retry (the user's address is
    // kept, at the longest wait) reaches it and the download completes.
    s.refused.clear();
    s.run_until_finished(1, 400);
    assert_eq!(s.nodes[1].disk, d);
    let last = s.dials.last().unwrap().2.as_secs();
    assert_eq!(last, 30 + 300, "{:?}", s.dials);
}

#[test]
fn a_tracker_address_that_keeps_failing_is_forgotten() {
    let d = data(PIECE as usize * 2, 24);
    let mut n = node(&d, false, 7300, 1, false);
    let gone: SocketAddr = "127.0.0.77:7301".parse().unwrap();
    n.t.add_addresses(Duration::ZERO, &[gone], PeerSource::Tracker);
    let mut dials = Vec::new();
    for sec in 0..200u64 {
        let now = Duration::from_secs(sec);
        n.t.tick(now);
        while let Some(o) = n.t.poll_output() {
            if let Output::Connect { addr, .. } = o {
                dials.push(sec);
                let retry = n.t.connect_failed(now, addr);
                if dials.len() < 3 {
                    assert!(matches!(retry, Retry::In(_)), "{retry:?}");
                } else {
                    assert_eq!(retry, Retry::Forgotten { failures: 3 });
                }
            }
        }
    }
    assert_eq!(dials, [0, 10, 30]);
    assert!(n.t.peer_list().is_empty());
}

#[test]
fn dials_stay_within_the_per_torrent_limits() {
    let d = data(PIECE as usize * 2, 25);
    let settings = EngineSettings {
        connects_in_flight_max: 3,
        peers_per_torrent_max: 5,
        ..EngineSettings::default()
    };
    let mut n = node_with(&d, true, 7400, 1, false, settings);
    let addrs: Vec<SocketAddr> = (1..=20)
        .map(|i| SocketAddr::from(([127, 0, 1, i], 6881)))
        .collect();
    n.t.add_addresses(Duration::ZERO, &addrs, PeerSource::Tracker);
    let mut dialled = Vec::new();
    while let Some(o) = n.t.poll_output() {
        if let Output::Connect { addr, .. } = o {
            dialled.push(addr);
        }
    }
    assert_eq!(dialled.len(), 3, "connects in flight");
    for a in &dialled[..3] {
        n.t.add_peer(Duration::ZERO, *a, Direction::Outgoing)
            .unwrap();
    }
    assert_eq!(
        n.t.peer_list().get(&dialled[0]).unwrap().state,
        PeerState::Connected
    );
    n.t.tick(Duration::from_secs(1));
    let more = std::iter::from_fn(|| n.t.poll_output())
        .filter(|o| matches!(o, Output::Connect { .. }))
        .count();
    assert_eq!(more, 2, "3 connected + 2 dialling = peers_per_torrent_max");
}

#[test]
fn a_download_stopped_as_it_finishes_owes_completed_then_stopped() {
    let d = data(PIECE as usize * 3, 26);
    let mut s = swarm(vec![
        node(&d, true, 7500, 1, false),
        node(&d, false, 7501, 2, false),
    ]);
    // A downloader with a tracker: `started` is answered first.
    let setup_have = Bitfield::new(3).unwrap();
    let node1 = &mut s.nodes[1];
    let setup = TorrentSetup {
        info_hash: InfoHash([7; 20]),
        piece_length: PIECE,
        total_length: d.len() as u64,
        piece_hashes: hashes(&d),
        have: setup_have,
        peer_id: [b'y'; 20],
        listen_port: 7501,
        listen_addrs: vec![node1.addr],
        has_trackers: true,
        download: true,
        rng_seed: 5,
        metadata: None,
        pex: false,
    };
    node1.t = Torrent::new(setup, EngineSettings::default(), Duration::ZERO).unwrap();
    s.nodes[1].t.tick(Duration::ZERO);
    s.settle();
    assert_eq!(s.announces, [(1, Some(Event::Started))]);
    let answer = AnnounceResponse {
        interval: Duration::from_secs(1800),
        ..AnnounceResponse::default()
    };
    s.nodes[1].t.on_announce(Duration::ZERO, Ok(answer));
    s.connect(1, 0);
    s.run_until_finished(1, 60);
    // `completed` went out as the last piece was written, before
    // `Finished`: the torrent does not wait for its next tick.
    assert_eq!(s.announces.last(), Some(&(1, Some(Event::Completed))));
    // The shard stopped at once: nobody answered `completed` yet, and it is
    // in flight, so only `stopped` is owed (sent after it).
    let owed: Vec<_> = s.nodes[1].t.stop().iter().map(|r| r.event).collect();
    assert_eq!(owed, [Some(Event::Stopped)]);
}

#[test]
fn a_seed_does_not_dial_a_leecher_already_connected_to_it() {
    let d = data(PIECE as usize * 4, 27);
    let mut s = swarm(vec![
        node(&d, true, 7600, 1, false),
        node(&d, false, 7601, 2, false),
    ]);
    s.hold_writes = true;
    // The leecher dials the seed from an ephemeral port; its extension
    // handshake names its listening port.
    let now = s.now;
    let (seed, leecher) = (s.nodes[0].addr, s.nodes[1].addr);
    let ephemeral = SocketAddr::new(leecher.ip(), 50_000);
    let a = s.nodes[1]
        .t
        .add_peer(now, seed, Direction::Outgoing)
        .unwrap();
    let b = s.nodes[0]
        .t
        .add_peer(now, ephemeral, Direction::Incoming)
        .unwrap();
    s.links.push(((1, a), (0, b)));
    s.settle();
    let listed = s.nodes[0].t.peer_list().get(&leecher).cloned();
    assert_eq!(listed.map(|e| e.state), Some(PeerState::Connected));
    // A tracker lists the leecher's listening address: no second connection.
    s.nodes[0]
        .t
        .add_addresses(now, &[leecher], PeerSource::Tracker);
    run_for(&mut s, 5);
    assert!(s.dials.is_empty(), "{:?}", s.dials);
}

#[test]
fn reannounce_sends_one_now_and_never_doubles_one_in_flight() {
    let d = data(PIECE as usize * 2, 28);
    let setup = TorrentSetup {
        info_hash: InfoHash([8; 20]),
        piece_length: PIECE,
        total_length: d.len() as u64,
        piece_hashes: hashes(&d),
        have: Bitfield::new(2).unwrap(),
        peer_id: [b'z'; 20],
        listen_port: 7600,
        listen_addrs: Vec::new(),
        has_trackers: true,
        download: true,
        rng_seed: 6,
        metadata: None,
        pex: false,
    };
    let mut t = Torrent::new(setup, EngineSettings::default(), Duration::ZERO).unwrap();
    let announces = |t: &mut Torrent| -> Vec<Option<Event>> {
        std::iter::from_fn(|| t.poll_output())
            .filter_map(|o| match o {
                Output::Announce { request } => Some(request.event),
                _ => None,
            })
            .collect()
    };
    t.tick(Duration::ZERO);
    assert_eq!(announces(&mut t), [Some(Event::Started)]);
    assert!(!t.reannounce(Duration::from_secs(1)), "started in flight");
    assert!(announces(&mut t).is_empty());
    let answer = AnnounceResponse {
        interval: Duration::from_secs(1800),
        ..AnnounceResponse::default()
    };
    t.on_announce(Duration::from_secs(1), Ok(answer));
    t.tick(Duration::from_secs(2));
    assert!(announces(&mut t).is_empty(), "the next one is 30 min away");
    assert!(t.reannounce(Duration::from_secs(3)));
    assert_eq!(announces(&mut t), [None], "a regular announce, at once");
    assert!(!t.reannounce(Duration::from_secs(4)), "in flight");
    t.tick(Duration::from_secs(5));
    assert!(announces(&mut t).is_empty());
    t.stop();
    assert!(!t.reannounce(Duration::from_secs(6)), "stopped");
}

// ---- BEP 9 and BEP 11 (torrent_ext) ----

/// A node with PEX on (and our metadata to serve when `info` is given).
fn pex_node(d: &[u8], have_all: bool, port: u16, seed: u64, info: Option<&[u8]>) -> Node {
    let pieces = d.len().div_ceil(PIECE as usize);
    let have: Vec<usize> = if have_all {
        (0..pieces).collect()
    } else {
        Vec::new()
    };
    let settings = EngineSettings::default();
    node_ext(
        d,
        &have,
        port,
        seed,
        false,
        settings,
        true,
        info.map(Arc::from),
    )
}

/// A PEX seed (node 0) and two PEX leechers, each leecher told of the seed
/// only and connected to it; the seed's disk stalls, so that nobody
/// finishes (and leaves) before the first PEX round. Returns the swarm and
/// the addresses of the seed and the leechers.
fn pex_trio(seed: u64, port: u16) -> (Swarm, SocketAddr, SocketAddr, SocketAddr) {
    let d = data(PIECE as usize * 40, seed);
    let mut s = swarm(vec![
        pex_node(&d, true, port, 1, None),
        pex_node(&d, false, port + 1, 2, None),
        pex_node(&d, false, port + 2, 3, None),
    ]);
    let seed = s.nodes[0].addr;
    let (a, b) = (s.nodes[1].addr, s.nodes[2].addr);
    s.stalled_reads.push(0);
    s.nodes[1].t.add_addresses(s.now, &[seed], PeerSource::User);
    s.nodes[2].t.add_addresses(s.now, &[seed], PeerSource::User);
    s.settle();
    (s, seed, a, b)
}

#[test]
fn leechers_of_one_seed_meet_through_its_pex_messages() {
    let (mut s, seed, a, b) = pex_trio(31, 7300);
    run_for(&mut s, 3);
    let met = s
        .dials
        .iter()
        .any(|&(n, to, _)| (n == 1 && to == b) || (n == 2 && to == a));
    assert!(met, "no leecher dialled the other: dials {:?}", s.dials);
    let learnt = |n: usize, addr: SocketAddr| {
        s.nodes[n]
            .t
            .peer_list()
            .get(&addr)
            .is_some_and(|e| e.has_source(PeerSource::Pex))
    };
    assert!(learnt(1, b) || learnt(2, a), "not learnt from PEX");
    // The seed is never told its own address, and votes name what each
    // peer saw: 127.0.0.x of the node it talks to.
    assert!(!learnt(0, seed));
    assert!(!s.votes.is_empty());
    assert!(s.votes.iter().all(|&(n, ip, _)| ip == s.nodes[n].addr.ip()));
}

#[test]
fn a_peer_pex_names_as_preferring_encryption_is_dialled_obfuscated() {
    let (mut s, seed, a, b) = pex_trio(33, 7320);
    // The seed's connections are obfuscated: its PEX flags them.
    for id in s.nodes[0].t.peer_ids() {
        s.nodes[0].t.mark_encrypted(id, false);
    }
    run_for(&mut s, 3);
    let wants = |n: usize, addr: SocketAddr| {
        s.nodes[n]
            .t
            .peer_list()
            .get(&addr)
            .is_some_and(|e| e.encrypt && e.has_source(PeerSource::Pex))
    };
    assert!(wants(1, b) || wants(2, a), "PEX's encryption flag not kept");
    assert!(
        s.encrypted_dials
            .iter()
            .any(|&(n, to)| (n == 1 && to == b) || (n == 2 && to == a)),
        "not dialled obfuscated: {:?}",
        s.encrypted_dials
    );
    // The seed itself was given by the user (not by PEX): plaintext first.
    assert!(!s.encrypted_dials.iter().any(|&(_, to)| to == seed));
}

#[test]
fn without_pex_leechers_of_one_seed_never_meet() {
    let d = data(PIECE as usize * 8, 32);
    let mut s = swarm(vec![
        node(&d, true, 7310, 1, false),
        pex_node(&d, false, 7311, 2, None),
        pex_node(&d, false, 7312, 3, None),
    ]);
    let seed = s.nodes[0].addr;
    let (a, b) = (s.nodes[1].addr, s.nodes[2].addr);
    s.stalled_reads.push(0);
    s.nodes[1].t.add_addresses(s.now, &[seed], PeerSource::User);
    s.nodes[2].t.add_addresses(s.now, &[seed], PeerSource::User);
    s.settle();
    run_for(&mut s, 90);
    assert!(
        s.dials
            .iter()
            .all(|&(n, to, _)| !((n == 1 && to == b) || (n == 2 && to == a))),
        "leechers met without PEX from the seed: {:?}",
        s.dials
    );
}

/// Bytes of one message from a raw peer.
fn wire_msg(m: crate::wire::Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    crate::wire::encode(&m, &mut out);
    out
}

/// Every BEP 10 message (id, payload) in `bytes` after a handshake.
fn extended_messages(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    use crate::wire::{Limits, Message, MessageDecoder, HANDSHAKE_BYTES};
    let mut d = MessageDecoder::new(Limits::default());
    let mut rest = bytes.get(HANDSHAKE_BYTES..).unwrap_or_default();
    let mut out = Vec::new();
    while let Ok(Some((m, n))) = d.decode(rest) {
        if let Message::Extended { id, payload } = m {
            out.push((id, payload.to_vec()));
        }
        rest = &rest[n..];
    }
    out
}

#[test]
fn metadata_is_served_piece_by_piece_and_bad_requests_rejected() {
    use crate::wire::extension::ExtensionHandshake;
    use crate::wire::handshake::{reserved_bits, Handshake};
    use crate::wire::ut_metadata::{MetadataMessage, METADATA_PIECE_BYTES};
    use crate::wire::Message;
    let d = data(PIECE as usize * 4, 33);
    // Any bytes stand for the info dictionary here: 1.5 metadata pieces.
    let info: Vec<u8> = (0..METADATA_PIECE_BYTES * 3 / 2).map(|i| i as u8).collect();
    let mut n = pex_node(&d, true, 7320, 4, Some(&info));
    let now = Duration::ZERO;
    let from: SocketAddr = "127.0.0.99:6000".parse().unwrap();
    let peer = n.t.add_peer(now, from, Direction::Incoming).unwrap();
    let mut input = Handshake {
        info_hash: InfoHash([7; 20]),
        peer_id: [b'r'; 20],
        reserved: reserved_bits(true, true, false),
    }
    .encode()
    .to_vec();
    let theirs = ExtensionHandshake {
        m: vec![("ut_metadata".into(), 3)],
        ..ExtensionHandshake::default()
    }
    .encode();
    input.extend(wire_msg(Message::Extended {
        id: 0,
        payload: &theirs,
    }));
    for piece in [0, 1, 2] {
        let mut req = Vec::new();
        MetadataMessage::Request { piece }.encode(&mut req);
        input.extend(wire_msg(Message::Extended {
            id: UT_METADATA_ID,
            payload: &req,
        }));
    }
    assert_eq!(n.t.receive(now, peer, &input), input.len());
    let mut out = Vec::new();
    n.t.take_outgoing(peer, &mut out);
    let ext = extended_messages(&out);
    let ours = ExtensionHandshake::parse(&ext[0].1).unwrap();
    assert_eq!(ext[0].0, 0);
    assert_eq!(ours.metadata_size, Some(info.len() as u64));
    assert_eq!(ours.extension_id("ut_metadata"), Some(UT_METADATA_ID));
    assert_eq!(ours.extension_id("ut_pex"), Some(UT_PEX_ID));
    assert_eq!(ours.yourip, Some(from.ip()));
    let answers: Vec<MetadataMessage<'_>> = ext[1..]
        .iter()
        .map(|(id, p)| {
            assert_eq!(*id, 3, "sent under the peer's id");
            MetadataMessage::parse(p).unwrap()
        })
        .collect();
    assert_eq!(
        answers,
        vec![
            MetadataMessage::Data {
                piece: 0,
                total_size: info.len() as u64,
                data: &info[..METADATA_PIECE_BYTES]
            },
            MetadataMessage::Data {
                piece: 1,
                total_size: info.len() as u64,
                data: &info[METADATA_PIECE_BYTES..]
            },
            MetadataMessage::Reject { piece: 2 },
        ]
    );
}

#[test]
fn a_torrent_without_metadata_or_pex_offers_neither() {
    use crate::wire::extension::ExtensionHandshake;
    use crate::wire::handshake::{reserved_bits, Handshake};
    let d = data(PIECE as usize * 2, 34);
    let mut n = node(&d, true, 7330, 5, false);
    let now = Duration::ZERO;
    let peer =
        n.t.add_peer(now, "127.0.0.98:6000".parse().unwrap(), Direction::Incoming)
            .unwrap();
    let input = Handshake {
        info_hash: InfoHash([7; 20]),
        peer_id: [b'r'; 20],
        reserved: reserved_bits(true, true, false),
    }
    .encode();
    n.t.receive(now, peer, &input);
    let mut out = Vec::new();
    n.t.take_outgoing(peer, &mut out);
    let ext = extended_messages(&out);
    let ours = ExtensionHandshake::parse(&ext[0].1).unwrap();
    assert!(ours.m.is_empty(), "{:?}", ours.m);
    assert_eq!(ours.metadata_size, None);
}
