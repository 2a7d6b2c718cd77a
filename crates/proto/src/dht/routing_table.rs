//! The routing table (BEP 5): nodes we know, in buckets by how many leading
//! bits their id shares with ours.
//!
//! Boundary: memory only; which node to ping or query is `Dht`'s decision.
//!
//! Rules, decided on purpose:
//! - bucket `i` holds ids whose distance to ours has exactly `i` leading zero
//!   bits, except the last bucket, which holds everything closer; only the last
//!   bucket splits, so there are at most [`NODE_ID_BITS`] buckets of `k` nodes
//!   plus [`REPLACEMENTS_PER_BUCKET_MAX`] waiting replacements each;
//! - a known id keeps its first address (an id seen at another address is
//!   not moved there); an address seen with a new id in a response replaces
//!   the old entry (the node restarted);
//! - a full bucket takes a new node only in place of a node that has failed
//!   a query, or, when the newcomer has a BEP 42 secure id, of a node whose
//!   id is not secure; otherwise the newcomer waits in the replacement cache;
//! - a node that fails `fails_max` queries in a row is evicted and the most
//!   recently seen replacement (secure ones first) takes its place;
//! - our own id is never stored.

use std::net::SocketAddrV4;
use std::time::Duration;

use super::node_id::{is_secure_node_id, NodeId, NODE_ID_BITS};

/// Waiting replacements per bucket.
pub const REPLACEMENTS_PER_BUCKET_MAX: usize = 8;

/// One known node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    pub id: NodeId,
    pub addr: SocketAddrV4,
    /// Last time it answered or queried us.
    pub last_seen: Duration,
    /// Whether it has ever answered one of our queries.
    pub answered: bool,
    /// Queries it failed to answer in a row.
    pub fails: u32,
    /// Its id is BEP 42-valid for its address (or the address is exempt).
    pub secure: bool,
}

impl NodeEntry {
    pub fn new(id: NodeId, addr: SocketAddrV4, now: Duration, answered: bool) -> NodeEntry {
        NodeEntry {
            id,
            addr,
            last_seen: now,
            answered,
            fails: 0,
            secure: is_secure_node_id(&id, *addr.ip()),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    nodes: Vec<NodeEntry>,
    replacements: Vec<NodeEntry>,
    /// Last time a node was added here or the bucket was refreshed.
    last_changed: Duration,
    /// Refresh at the next chance, whatever `last_changed` says.
    due: bool,
}

/// What [`RoutingTable::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// New in the table.
    Added,
    /// Already there; its times were updated.
    Updated,
    /// Put in the replacement cache.
    Replacement,
    /// Not stored (our own id, or an id already at another address).
    Refused,
}

/// Buckets of nodes around our own id.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    own: NodeId,
    k: usize,
    fails_max: u32,
    buckets: Vec<Bucket>,
}

impl RoutingTable {
    /// An empty table for `own` with `k` nodes per bucket.
    pub fn new(own: NodeId, k: usize, fails_max: u32, now: Duration) -> RoutingTable {
        RoutingTable {
            own,
            k: k.max(1),
            fails_max: fails_max.max(1),
            buckets: vec![Bucket {
                last_changed: now,
                ..Bucket::default()
            }],
        }
    }

    pub fn own_id(&self) -> NodeId {
        self.own
    }

    fn bucket_index(&self, id: &NodeId) -> usize {
        let lz = self.own.distance(id).leading_zeros();
        lz.min(self.buckets.len().saturating_sub(1))
    }

    /// Records that `id` at `addr` was heard from: `answered` when it
    /// answered our query.
    pub fn insert(
        &mut self,
        id: NodeId,
        addr: SocketAddrV4,
        now: Duration,
        answered: bool,
    ) -> Inserted {
        if id == self.own {
            return Inserted::Refused;
        }
        // The same address under another id: replace it only on an answer.
        if let Some((bi, ni, old_id)) = self.find_addr(addr) {
            if old_id != id {
                if !answered {
                    return Inserted::Refused;
                }
                if let Some(b) = self.buckets.get_mut(bi) {
                    b.nodes.swap_remove(ni);
                }
            }
        }
        loop {
            let bi = self.bucket_index(&id);
            let k = self.k;
            let last = self.buckets.len() - 1;
            let Some(bucket) = self.buckets.get_mut(bi) else {
                return Inserted::Refused;
            };
            if let Some(e) = bucket.nodes.iter_mut().find(|e| e.id == id) {
                if e.addr != addr {
                    return Inserted::Refused;
                }
                e.last_seen = now;
                e.answered |= answered;
                if answered {
                    e.fails = 0;
                }
                return Inserted::Updated;
            }
            let entry = NodeEntry::new(id, addr, now, answered);
            if bucket.nodes.len() < k {
                bucket.replacements.retain(|r| r.id != id);
                bucket.nodes.push(entry);
                bucket.last_changed = now;
                return Inserted::Added;
            }
            if bi == last && last + 1 < NODE_ID_BITS {
                self.split_last();
                continue;
            }
            // Full: a failing node, or an insecure one for a secure newcomer, gives way.
            let victim = bucket
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, e)| e.fails > 0)
                .max_by_key(|(_, e)| e.fails)
                .map(|(i, _)| i)
                .or_else(|| {
                    if entry.secure {
                        bucket.nodes.iter().position(|e| !e.secure)
                    } else {
                        None
                    }
                });
            if let (Some(v), true) = (victim, answered || entry.secure) {
                if let Some(slot) = bucket.nodes.get_mut(v) {
                    *slot = entry;
                    bucket.last_changed = now;
                    return Inserted::Added;
                }
            }
            if let Some(r) = bucket.replacements.iter_mut().find(|r| r.id == id) {
                r.last_seen = now;
                r.answered |= answered;
                return Inserted::Replacement;
            }
            if bucket.replacements.len() >= REPLACEMENTS_PER_BUCKET_MAX {
                // Drop the stalest non-secure one, else the stalest.
                let drop = bucket
                    .replacements
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, r)| (r.secure, r.last_seen))
                    .map(|(i, _)| i);
                if let Some(d) = drop {
                    bucket.replacements.swap_remove(d);
                }
            }
            bucket.replacements.push(entry);
            return Inserted::Replacement;
        }
    }

    fn split_last(&mut self) {
        let new_index = self.buckets.len();
        let own = self.own;
        let Some(last) = self.buckets.last_mut() else {
            return;
        };
        let lz = |e: &NodeEntry| own.distance(&e.id).leading_zeros();
        let (stay, go): (Vec<_>, Vec<_>) = last.nodes.drain(..).partition(|e| lz(e) < new_index);
        let (rstay, rgo): (Vec<_>, Vec<_>) =
            last.replacements.drain(..).partition(|e| lz(e) < new_index);
        last.nodes = stay;
        last.replacements = rstay;
        let changed = last.last_changed;
        let due = last.due;
        self.buckets.push(Bucket {
            nodes: go,
            replacements: rgo,
            last_changed: changed,
            due,
        });
    }

    fn find_addr(&self, addr: SocketAddrV4) -> Option<(usize, usize, NodeId)> {
        for (bi, b) in self.buckets.iter().enumerate() {
            if let Some(ni) = b.nodes.iter().position(|e| e.addr == addr) {
                return Some((bi, ni, b.nodes[ni].id));
            }
        }
        None
    }

    /// A node that queried us: updates its entry if it is known at `addr`.
    /// Returns true when it is unknown (worth a ping to verify it).
    pub fn touch(&mut self, id: NodeId, addr: SocketAddrV4, now: Duration) -> bool {
        if id == self.own {
            return false;
        }
        let bi = self.bucket_index(&id);
        let Some(bucket) = self.buckets.get_mut(bi) else {
            return false;
        };
        if let Some(e) = bucket.nodes.iter_mut().find(|e| e.id == id) {
            if e.addr == addr {
                e.last_seen = now;
            }
            return false;
        }
        !bucket
            .replacements
            .iter()
            .any(|r| r.id == id && r.addr == addr)
    }

    /// Whether `addr` is in the table (not the replacement cache).
    pub fn contains_addr(&self, addr: SocketAddrV4) -> bool {
        self.find_addr(addr).is_some()
    }

    /// Counts a failed query to `addr`; true when the node was evicted.
    pub fn on_failure(&mut self, addr: SocketAddrV4) -> bool {
        let fails_max = self.fails_max;
        let Some((bi, ni, _)) = self.find_addr(addr) else {
            return false;
        };
        let Some(bucket) = self.buckets.get_mut(bi) else {
            return false;
        };
        let Some(e) = bucket.nodes.get_mut(ni) else {
            return false;
        };
        e.fails += 1;
        if e.fails < fails_max {
            return false;
        }
        bucket.nodes.swap_remove(ni);
        let best = bucket
            .replacements
            .iter()
            .enumerate()
            .max_by_key(|(_, r)| (r.secure, r.answered, r.last_seen))
            .map(|(i, _)| i);
        if let Some(b) = best {
            let r = bucket.replacements.swap_remove(b);
            bucket.nodes.push(r);
        }
        true
    }

    /// The `n` nodes closest to `target`, closest first.
    pub fn closest(&self, target: &NodeId, n: usize) -> Vec<(NodeId, SocketAddrV4)> {
        let mut all: Vec<(NodeId, SocketAddrV4)> = self
            .buckets
            .iter()
            .flat_map(|b| b.nodes.iter())
            .map(|e| (e.id, e.addr))
            .collect();
        all.sort_by(|a, b| target.cmp_distance(&a.0, &b.0));
        all.truncate(n);
        all
    }

    /// Up to `max` buckets not changed for `interval`, each with a random
    /// target in its range; their time is reset so each is returned once per
    /// interval.
    pub fn refresh_due(
        &mut self,
        now: Duration,
        interval: Duration,
        max: usize,
        rng: &mut crate::rng::Rng,
    ) -> Vec<NodeId> {
        let own = self.own;
        let mut out = Vec::new();
        for (i, b) in self.buckets.iter_mut().enumerate() {
            if out.len() >= max {
                break;
            }
            if b.due || now.saturating_sub(b.last_changed) >= interval {
                b.last_changed = now;
                b.due = false;
                out.push(own.random_with_prefix(i, rng));
            }
        }
        out
    }

    /// Makes every bucket due for refresh at the next [`Self::refresh_due`]
    /// (after bootstrap, to fill the far buckets).
    pub fn mark_all_due(&mut self) {
        for b in &mut self.buckets {
            b.due = true;
        }
    }

    /// Nodes not heard from for `age`, at most `n`, stalest first.
    pub fn questionable(
        &self,
        now: Duration,
        age: Duration,
        n: usize,
    ) -> Vec<(NodeId, SocketAddrV4)> {
        let mut q: Vec<&NodeEntry> = self
            .buckets
            .iter()
            .flat_map(|b| b.nodes.iter())
            .filter(|e| now.saturating_sub(e.last_seen) >= age)
            .collect();
        q.sort_by_key(|e| e.last_seen);
        q.into_iter().take(n).map(|e| (e.id, e.addr)).collect()
    }

    /// Nodes that answered us and have not failed since, most recent first,
    /// at most `n`.
    pub fn good_nodes(&self, n: usize) -> Vec<SocketAddrV4> {
        let mut g: Vec<&NodeEntry> = self
            .buckets
            .iter()
            .flat_map(|b| b.nodes.iter())
            .filter(|e| e.answered && e.fails == 0)
            .collect();
        g.sort_by_key(|e| std::cmp::Reverse(e.last_seen));
        g.into_iter().take(n).map(|e| e.addr).collect()
    }

    /// Every entry, table and replacement cache (for rebuilding under a new id).
    pub fn entries(&self) -> Vec<NodeEntry> {
        self.buckets
            .iter()
            .flat_map(|b| b.nodes.iter().chain(b.replacements.iter()))
            .cloned()
            .collect()
    }

    /// Nodes in the table.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Nodes waiting in replacement caches.
    pub fn replacement_len(&self) -> usize {
        self.buckets.iter().map(|b| b.replacements.len()).sum()
    }

    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Largest bucket's size (never above `k`).
    pub fn largest_bucket(&self) -> usize {
        self.buckets
            .iter()
            .map(|b| b.nodes.len())
            .max()
            .unwrap_or(0)
    }
}
