//! The BEP 11 sending policy for one peer: which `ut_pex` message to send it
//! now, given the torrent's connected peers and what it was told before.
//!
//! Boundary: a plain value kept per connection by the torrent; it neither
//! reads nor sends messages (the codec is `wire::ut_pex`) and does not know
//! whether the peer speaks `ut_pex` or whether the torrent is private (the
//! torrent asks only for peers that do, of torrents that are not).
//!
//! Decided on purpose:
//! - One message per [`PEX_INTERVAL`] at most; the first may go at once. No
//!   message when nothing changed (the interval then does not restart).
//! - `added`: connected peers not told before, in the order of `current`, at
//!   most [`PEX_ADDED_MAX`]; `dropped`: peers told before and no longer in
//!   `current`, at most [`PEX_DROPPED_MAX`], in address order. What does not
//!   fit waits for the next message.
//! - `current` must be the torrent's connected peers only, so we never relay
//!   an address we have not connected to. The peer's own address (`own`, in
//!   the same form as the candidates' addresses) is never sent; addresses
//!   with port 0 are never sent. Only an exact address match is left out: two
//!   peers may share an IP (NAT, loopback tests).
//! - What we told the peer is at most [`PEX_SENT_MAX`] addresses (the most
//!   peers a torrent may be configured for): when full, new peers wait until
//!   drops make room. Only the first [`PEX_SENT_MAX`] candidates are looked
//!   at.
//! - A peer's flags are sent with its first `added` entry only; a change of
//!   flags later (a peer that became a seed) is not sent again, as in
//!   libtorrent.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::settings::PEERS_PER_TORRENT_LIMIT;
use crate::wire::ut_pex::{PexFlags, PexMessage, PEX_ADDED_MAX, PEX_DROPPED_MAX};

/// Least time between two messages to one peer (BEP 11: at most one a minute).
pub const PEX_INTERVAL: Duration = Duration::from_secs(60);
/// Most addresses remembered as told to one peer, and most candidates looked
/// at per call: the most connected peers a torrent may be configured for.
pub const PEX_SENT_MAX: usize = PEERS_PER_TORRENT_LIMIT;

const _: () = assert!(PEX_ADDED_MAX <= PEX_SENT_MAX);

/// One connected peer of the torrent, as others could dial it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PexCandidate {
    /// Outgoing connection: the address we dialled. Incoming: the peer's IP
    /// and its BEP 10 `p` port; leave such a peer out when `p` is unknown.
    pub addr: SocketAddr,
    /// Its flags (seed, encryption, reachable for outgoing connections).
    pub flags: PexFlags,
}

/// What one peer was told, and when.
#[derive(Debug, Clone, Default)]
pub struct PexPeerState {
    /// Addresses sent as `added` and not since as `dropped`.
    sent: BTreeSet<SocketAddr>,
    /// When the last message went.
    last_sent: Option<Duration>,
}

impl PexPeerState {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many addresses this peer was told of and not since told dropped
    /// (at most [`PEX_SENT_MAX`]).
    pub fn sent_count(&self) -> usize {
        self.sent.len()
    }

    /// When a message may go next (`None`: at once).
    pub fn next_allowed(&self) -> Option<Duration> {
        self.last_sent.map(|t| t.saturating_add(PEX_INTERVAL))
    }

    /// The message to send now, if any (see the module's rules).
    pub fn next_message(
        &mut self,
        now: Duration,
        current: &[PexCandidate],
        own: SocketAddr,
    ) -> Option<PexMessage> {
        if self.next_allowed().is_some_and(|t| now < t) {
            return None;
        }
        let eligible = |c: &&PexCandidate| c.addr != own && c.addr.port() != 0;
        let connected: BTreeSet<SocketAddr> = current
            .iter()
            .take(PEX_SENT_MAX)
            .filter(eligible)
            .map(|c| c.addr)
            .collect();
        let dropped: Vec<SocketAddr> = self
            .sent
            .iter()
            .filter(|a| !connected.contains(a))
            .take(PEX_DROPPED_MAX)
            .copied()
            .collect();
        let room = PEX_SENT_MAX - (self.sent.len() - dropped.len());
        let mut added: Vec<(SocketAddr, PexFlags)> = Vec::new();
        let mut seen = BTreeSet::new();
        for c in current.iter().take(PEX_SENT_MAX).filter(eligible) {
            if added.len() >= PEX_ADDED_MAX.min(room) {
                break;
            }
            if !self.sent.contains(&c.addr) && seen.insert(c.addr) {
                added.push((c.addr, c.flags));
            }
        }
        if added.is_empty() && dropped.is_empty() {
            return None;
        }
        for a in &dropped {
            self.sent.remove(a);
        }
        self.sent.extend(added.iter().map(|(a, _)| *a));
        self.last_sent = Some(now);
        Some(PexMessage { added, dropped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn addr(i: u32) -> SocketAddr {
        // 127.0.132.x with distinct ports: this helper's loopback range.
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 132, (i % 250) as u8 + 1)),
            10_000 + (i / 250) as u16,
        )
    }

    fn cands(range: std::ops::Range<u32>) -> Vec<PexCandidate> {
        range
            .map(|i| PexCandidate {
                addr: addr(i),
                flags: PexFlags(if i % 2 == 0 { PexFlags::SEED } else { 0 }),
            })
            .collect()
    }

    const OWN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 132, 200)), 1);
    const MIN: Duration = PEX_INTERVAL;

    #[test]
    fn first_message_at_once_then_once_per_interval() {
        let mut s = PexPeerState::new();
        let t0 = Duration::from_secs(5);
        let m = s
            .next_message(t0, &cands(0..3), OWN)
            .expect("first at once");
        assert_eq!(m.added.len(), 3);
        assert!(m.dropped.is_empty());
        assert_eq!(m.added[0], (addr(0), PexFlags(PexFlags::SEED)));
        // Something changed, but the interval has not passed.
        let more = cands(0..5);
        assert_eq!(
            s.next_message(t0 + MIN - Duration::from_millis(1), &more, OWN),
            None
        );
        let m = s
            .next_message(t0 + MIN, &more, OWN)
            .expect("after the interval");
        assert_eq!(
            m.added.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
            vec![addr(3), addr(4)]
        );
        assert_eq!(s.next_allowed(), Some(t0 + MIN + MIN));
    }

    #[test]
    fn nothing_changed_sends_nothing_and_keeps_the_clock() {
        let mut s = PexPeerState::new();
        assert!(s.next_message(Duration::ZERO, &cands(0..2), OWN).is_some());
        assert_eq!(s.next_message(MIN, &cands(0..2), OWN), None);
        // The silent round did not restart the interval: a change at MIN + 1 s goes.
        assert!(s
            .next_message(MIN + Duration::from_secs(1), &cands(0..3), OWN)
            .is_some());
        // Nothing at all to say to a peer alone in the swarm.
        let mut alone = PexPeerState::new();
        let me = [PexCandidate {
            addr: OWN,
            flags: PexFlags(0),
        }];
        assert_eq!(alone.next_message(Duration::ZERO, &me, OWN), None);
        assert_eq!(alone.next_allowed(), None);
    }

    #[test]
    fn never_the_peers_own_address_nor_port_zero() {
        let mut s = PexPeerState::new();
        let mut c = cands(0..3);
        c.push(PexCandidate {
            addr: OWN,
            flags: PexFlags(0),
        });
        c.push(PexCandidate {
            addr: SocketAddr::new(OWN.ip(), 0),
            flags: PexFlags(0),
        });
        // Same IP, other port: another peer behind the same address, sent.
        let sibling = SocketAddr::new(OWN.ip(), 2);
        c.push(PexCandidate {
            addr: sibling,
            flags: PexFlags(0),
        });
        let m = s.next_message(Duration::ZERO, &c, OWN).unwrap();
        let sent: Vec<_> = m.added.iter().map(|(a, _)| *a).collect();
        assert!(!sent.contains(&OWN));
        assert!(sent.iter().all(|a| a.port() != 0));
        assert!(sent.contains(&sibling));
        assert_eq!(sent.len(), 4);
    }

    #[test]
    fn dropped_are_those_told_and_gone() {
        let mut s = PexPeerState::new();
        s.next_message(Duration::ZERO, &cands(0..4), OWN).unwrap();
        let now: Vec<_> = cands(0..4)
            .into_iter()
            .filter(|c| c.addr != addr(1))
            .chain(cands(9..10))
            .collect();
        let m = s.next_message(MIN, &now, OWN).unwrap();
        assert_eq!(m.dropped, vec![addr(1)]);
        assert_eq!(m.added, vec![(addr(9), PexFlags(0))]);
        // A peer never told of is never sent as dropped.
        let m = s.next_message(MIN * 2, &cands(0..1), OWN).unwrap();
        let mut expect = vec![addr(2), addr(3), addr(9)];
        expect.sort();
        assert_eq!(m.dropped, expect);
        assert!(m.added.is_empty());
        assert_eq!(s.sent_count(), 1);
        // It reconnects: added again.
        let m = s.next_message(MIN * 3, &cands(0..2), OWN).unwrap();
        assert_eq!(m.added, vec![(addr(1), PexFlags(0))]);
    }

    #[test]
    fn caps_on_added_and_dropped_carry_over() {
        let mut s = PexPeerState::new();
        let all = cands(0..120);
        let m = s.next_message(Duration::ZERO, &all, OWN).unwrap();
        assert_eq!(m.added.len(), PEX_ADDED_MAX);
        let m = s.next_message(MIN, &all, OWN).unwrap();
        assert_eq!(m.added.len(), PEX_ADDED_MAX);
        let m = s.next_message(MIN * 2, &all, OWN).unwrap();
        assert_eq!(m.added.len(), 20);
        assert_eq!(s.sent_count(), 120);
        assert_eq!(s.next_message(MIN * 3, &all, OWN), None);
        // Everyone leaves: 50 + 50 + 20 dropped over three messages.
        let mut total = BTreeSet::new();
        for (k, expect) in [(4, 50), (5, 50), (6, 20)] {
            let m = s.next_message(MIN * k, &[], OWN).unwrap();
            assert_eq!(m.dropped.len(), expect);
            assert!(m.added.is_empty());
            total.extend(m.dropped);
        }
        assert_eq!(total.len(), 120);
        assert_eq!(s.sent_count(), 0);
        assert_eq!(s.next_message(MIN * 7, &[], OWN), None);
    }

    #[test]
    fn duplicates_in_current_are_sent_once() {
        let mut s = PexPeerState::new();
        let mut c = cands(0..2);
        c.extend(cands(0..2));
        let m = s.next_message(Duration::ZERO, &c, OWN).unwrap();
        assert_eq!(m.added.len(), 2);
    }

    #[test]
    fn memory_is_bounded_by_the_peer_limit() {
        let mut s = PexPeerState::new();
        let mut now = Duration::ZERO;
        let big = cands(0..(PEX_SENT_MAX as u32 + 500));
        // Fill: every round adds 50 until the bound.
        for _ in 0..(PEX_SENT_MAX / PEX_ADDED_MAX + 10) {
            s.next_message(now, &big, OWN);
            now += MIN;
            assert!(s.sent_count() <= PEX_SENT_MAX);
        }
        assert_eq!(s.sent_count(), PEX_SENT_MAX);
        // Candidates past the first PEX_SENT_MAX are never looked at.
        assert_eq!(s.next_message(now, &big, OWN), None);
        // Churn: the first 30 leave and 30 new ones come; the drops make room.
        let churn: Vec<_> = cands(30..(PEX_SENT_MAX as u32 + 30));
        let m = s.next_message(now + MIN, &churn, OWN).unwrap();
        assert_eq!(m.dropped.len(), 30);
        assert_eq!(m.added.len(), 30);
        assert_eq!(s.sent_count(), PEX_SENT_MAX);
    }

    #[test]
    fn ipv6_candidates_are_sent() {
        let mut s = PexPeerState::new();
        let v6: SocketAddr = "[::1]:6881".parse().unwrap();
        let m = s
            .next_message(
                Duration::ZERO,
                &[PexCandidate {
                    addr: v6,
                    flags: PexFlags(PexFlags::REACHABLE),
                }],
                OWN,
            )
            .unwrap();
        let back = PexMessage::parse(&m.encode()).unwrap();
        assert_eq!(back.added, vec![(v6, PexFlags(PexFlags::REACHABLE))]);
    }
}
