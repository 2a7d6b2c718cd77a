//! One iterative lookup (BEP 5 / Kademlia): ask the closest known nodes for
//! nodes closer to a target until the `k` closest have answered.
//!
//! Boundary: bookkeeping only; `Dht` sends the queries this picks and feeds
//! back answers and timeouts.
//!
//! Rules, decided on purpose:
//! - candidates are kept sorted by distance to the target, at most
//!   [`LOOKUP_CANDIDATES_MAX`] (failed ones are dropped first, then the
//!   farthest); seeds without a known id (bootstrap addresses) sort first;
//! - at most `alpha` queries in flight; only candidates among the `k`
//!   closest not-failed ones are queried;
//! - the search ends when the `k` closest not-failed candidates have all
//!   answered, when nothing is left to ask, or when `queries_max` queries
//!   were sent (then it ends once none is in flight);
//! - a candidate's depth is the number of hops from the table: the "rounds"
//!   a lookup took is the deepest answered candidate among the `k` closest.

use std::net::SocketAddrV4;

use super::node_id::NodeId;

/// Most candidates one lookup remembers.
pub const LOOKUP_CANDIDATES_MAX: usize = 64;

/// What the lookup is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    /// `find_node` (bootstrap and bucket refresh).
    FindNode,
    /// `get_peers`, reporting peers.
    GetPeers,
    /// `get_peers`, then `announce_peer` to the closest that gave a token.
    Announce { port: u16 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Fresh,
    InFlight,
    Answered,
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    id: Option<NodeId>,
    addr: SocketAddrV4,
    state: State,
    token: Option<Vec<u8>>,
    depth: usize,
}

/// The search state of one lookup.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub target: NodeId,
    pub kind: LookupKind,
    k: usize,
    alpha: usize,
    queries_max: usize,
    candidates: Vec<Candidate>,
    queries_sent: usize,
}

impl Lookup {
    pub fn new(
        target: NodeId,
        kind: LookupKind,
        k: usize,
        alpha: usize,
        queries_max: usize,
    ) -> Lookup {
        Lookup {
            target,
            kind,
            k: k.max(1),
            alpha: alpha.max(1),
            queries_max,
            candidates: Vec::new(),
            queries_sent: 0,
        }
    }

    fn sort_and_bound(&mut self) {
        let t = self.target;
        self.candidates.sort_by(|a, b| match (a.id, b.id) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => t.cmp_distance(&x, &y),
        });
        if self.candidates.len() > LOOKUP_CANDIDATES_MAX {
            // Drop failed candidates first (liars fill the list with nodes that
            // never answer), then the farthest; never one with a query in flight.
            let mut excess = self.candidates.len() - LOOKUP_CANDIDATES_MAX;
            for state in [State::Failed, State::Fresh, State::Answered] {
                let mut i = self.candidates.len();
                while excess > 0 && i > 0 {
                    i -= 1;
                    if self.candidates.get(i).is_some_and(|c| c.state == state) {
                        self.candidates.remove(i);
                        excess -= 1;
                    }
                }
            }
        }
    }

    /// Adds nodes found at hop `depth`; known addresses and ids are skipped.
    pub fn add_nodes(&mut self, nodes: &[(NodeId, SocketAddrV4)], depth: usize) {
        for (id, addr) in nodes {
            if self
                .candidates
                .iter()
                .any(|c| c.addr == *addr || c.id == Some(*id))
            {
                continue;
            }
            self.candidates.push(Candidate {
                id: Some(*id),
                addr: *addr,
                state: State::Fresh,
                token: None,
                depth,
            });
        }
        self.sort_and_bound();
    }

    /// Adds an address whose id is unknown (bootstrap).
    pub fn add_seed(&mut self, addr: SocketAddrV4) {
        if self.candidates.iter().any(|c| c.addr == addr) {
            return;
        }
        self.candidates.push(Candidate {
            id: None,
            addr,
            state: State::Fresh,
            token: None,
            depth: 0,
        });
        self.sort_and_bound();
    }

    fn live_closest(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates
            .iter()
            .filter(|c| c.state != State::Failed)
            .take(self.k)
    }

    /// Addresses to query now (marked in flight).
    pub fn next_queries(&mut self) -> Vec<SocketAddrV4> {
        let in_flight = self
            .candidates
            .iter()
            .filter(|c| c.state == State::InFlight)
            .count();
        let mut room = self.alpha.saturating_sub(in_flight);
        let mut out = Vec::new();
        let k = self.k;
        let mut seen_live = 0;
        for c in self.candidates.iter_mut() {
            if room == 0 || self.queries_sent >= self.queries_max || seen_live >= k {
                break;
            }
            if c.state == State::Failed {
                continue;
            }
            seen_live += 1;
            if c.state == State::Fresh {
                c.state = State::InFlight;
                out.push(c.addr);
                room -= 1;
                self.queries_sent += 1;
            }
        }
        out
    }

    /// Whether `addr` has a query of this lookup in flight.
    pub fn is_in_flight(&self, addr: SocketAddrV4) -> bool {
        self.candidates
            .iter()
            .any(|c| c.addr == addr && c.state == State::InFlight)
    }

    /// Records an answer from `addr` (id `id`), with the nodes it gave and
    /// its token.
    pub fn on_answer(
        &mut self,
        addr: SocketAddrV4,
        id: NodeId,
        nodes: &[(NodeId, SocketAddrV4)],
        token: Option<Vec<u8>>,
    ) {
        let mut depth = 0;
        if let Some(c) = self.candidates.iter_mut().find(|c| c.addr == addr) {
            c.state = State::Answered;
            c.id = Some(id);
            c.token = token;
            depth = c.depth;
        }
        self.add_nodes(nodes, depth + 1);
    }

    /// Records that `addr` did not answer.
    pub fn on_failure(&mut self, addr: SocketAddrV4) {
        if let Some(c) = self.candidates.iter_mut().find(|c| c.addr == addr) {
            c.state = State::Failed;
        }
    }

    /// Whether the search part is over.
    pub fn is_finished(&self) -> bool {
        let in_flight = self.candidates.iter().any(|c| c.state == State::InFlight);
        let closest_answered = {
            let mut n = 0;
            let mut all = true;
            for c in self.live_closest() {
                n += 1;
                all &= c.state == State::Answered;
            }
            n > 0 && all
        };
        if closest_answered {
            return true;
        }
        if in_flight {
            return false;
        }
        let fresh_left = self.live_closest().any(|c| c.state == State::Fresh);
        !fresh_left || self.queries_sent >= self.queries_max
    }

    /// The `k` closest answered candidates that gave a token.
    pub fn announce_targets(&self) -> Vec<(SocketAddrV4, Vec<u8>)> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Answered)
            .filter_map(|c| c.token.clone().map(|t| (c.addr, t)))
            .take(self.k)
            .collect()
    }

    /// The `k` closest answered candidates.
    pub fn closest_answered(&self) -> Vec<(NodeId, SocketAddrV4)> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Answered)
            .filter_map(|c| c.id.map(|id| (id, c.addr)))
            .take(self.k)
            .collect()
    }

    /// Queries sent so far.
    pub fn queries_sent(&self) -> usize {
        self.queries_sent
    }

    /// Hops the search took (see the module rules).
    pub fn rounds(&self) -> usize {
        self.live_closest()
            .filter(|c| c.state == State::Answered)
            .map(|c| c.depth + 1)
            .max()
            .unwrap_or(0)
    }
}
