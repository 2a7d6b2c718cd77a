//! Peer identities as the picker sees them ([`PeerKey`]) and the small,
//! fixed-capacity set of peers a block is requested from ([`Requesters`]).
//! More than one requester only happens in endgame.

/// A connected peer, as a small integer chosen by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PeerKey(pub u32);

/// Most peers one block may be requested from at once (endgame duplicates).
pub const REQUESTERS_MAX: usize = 3;

/// A set of at most [`REQUESTERS_MAX`] distinct peers, stored inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Requesters {
    peers: [PeerKey; REQUESTERS_MAX],
    len: u8,
}

impl Requesters {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// A set holding only `peer`.
    pub fn one(peer: PeerKey) -> Self {
        let mut r = Self::new();
        r.insert(peer);
        r
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the set is at capacity.
    pub fn is_full(&self) -> bool {
        self.len() >= REQUESTERS_MAX
    }

    /// The peers, in insertion order.
    pub fn as_slice(&self) -> &[PeerKey] {
        &self.peers[..self.len()]
    }

    /// Iterates over the peers.
    pub fn iter(&self) -> impl Iterator<Item = PeerKey> + '_ {
        self.as_slice().iter().copied()
    }

    /// Whether `peer` is in the set.
    pub fn contains(&self, peer: PeerKey) -> bool {
        self.as_slice().contains(&peer)
    }

    /// Adds `peer`; false when it was already there or the set is full.
    pub fn insert(&mut self, peer: PeerKey) -> bool {
        if self.contains(peer) || self.is_full() {
            return false;
        }
        self.peers[self.len()] = peer;
        self.len += 1;
        true
    }

    /// Removes `peer`; false when it was not there. Keeps insertion order.
    pub fn remove(&mut self, peer: PeerKey) -> bool {
        let Some(i) = self.as_slice().iter().position(|&p| p == peer) else {
            return false;
        };
        let len = self.len();
        self.peers.copy_within(i + 1..len, i);
        self.len -= 1;
        self.peers[self.len()] = PeerKey::default();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_distinct_set() {
        let mut r = Requesters::new();
        assert!(r.is_empty());
        assert!(r.insert(PeerKey(1)));
        assert!(!r.insert(PeerKey(1)));
        assert!(r.insert(PeerKey(2)));
        assert!(r.insert(PeerKey(3)));
        assert!(r.is_full());
        assert!(!r.insert(PeerKey(4)));
        assert!(r.remove(PeerKey(2)));
        assert!(!r.remove(PeerKey(2)));
        assert_eq!(r.as_slice(), &[PeerKey(1), PeerKey(3)]);
        assert_eq!(
            Requesters::one(PeerKey(9)).iter().collect::<Vec<_>>(),
            vec![PeerKey(9)]
        );
    }
}
