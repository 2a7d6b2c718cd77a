//! `PeerList`: every address one torrent knows, where it came from, and
//! when it may be dialled again. Plain data, sans-IO: the torrent asks it for
//! the next address to dial and tells it how each dial and each connection
//! ended, with a `now`.
//!
//! Rules (libtorrent's peer list, simplified):
//! - an address is kept with its sources (user, tracker, incoming, later PEX
//!   and DHT), its count of consecutive failures, the time of the last one,
//!   whether it is known to be a seed, and whether it is being dialled or is
//!   connected;
//! - a failed dial, and a connection that ended without moving a block,
//!   count as a failure; the next dial waits `retry_delay_min`, doubled for
//!   each failure after the first, at most `retry_delay_max`. A connection
//!   that moved blocks clears the count before its end is counted, so a
//!   useful peer that dropped is dialled again after `retry_delay_min`;
//! - after `failures_max` failures in a row an address is forgotten (a
//!   tracker may give it again, afresh), except addresses the user gave,
//!   which keep being dialled every `retry_delay_max`;
//! - a peer seen with every piece is marked a seed; a seeding torrent never
//!   dials a known seed (two seeds have nothing to trade: no redial loop);
//! - at most `addresses_max` addresses: when full, a new address replaces an
//!   idle one that failed or is a seed (a bounded scan finds it), else it is
//!   refused.
//!
//! Finding the next address is a round-robin scan that remembers, when it
//! finds nothing, until when nothing can become ready, so a torrent whose
//! peers all wait costs nothing per tick.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Entries looked at to find one to replace when the list is full.
pub const EVICT_SCAN_MAX: usize = 64;

/// Where an address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerSource {
    /// Given by the user (`--peer`, the API): never forgotten.
    User,
    Tracker,
    /// A peer that connected to us (its listening address, when known).
    Incoming,
    Pex,
    Dht,
    /// Local service discovery (BEP 14).
    Lsd,
}

impl PeerSource {
    fn bit(self) -> u8 {
        match self {
            PeerSource::User => 1,
            PeerSource::Tracker => 2,
            PeerSource::Incoming => 4,
            PeerSource::Pex => 8,
            PeerSource::Dht => 16,
            PeerSource::Lsd => 32,
        }
    }
}

/// Whether an address is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Idle,
    Connecting,
    Connected,
}

/// One known address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownPeer {
    pub addr: SocketAddr,
    sources: u8,
    /// Failures in a row (dials that failed, connections that moved nothing).
    pub failures: u32,
    /// When the last failure was.
    pub last_failure: Option<Duration>,
    /// Not dialled before this time.
    pub retry_at: Duration,
    /// Seen with every piece, or a source said it is a seed.
    pub seed: bool,
    pub state: PeerState,
    /// Dial it with the obfuscated (MSE) handshake first: PEX said it
    /// prefers encryption, or a plaintext dial was hung up on.
    pub encrypt: bool,
}

impl KnownPeer {
    pub fn has_source(&self, source: PeerSource) -> bool {
        self.sources & source.bit() != 0
    }

    fn user(&self) -> bool {
        self.has_source(PeerSource::User)
    }
}

/// The retry policy (from `EngineSettings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub addresses_max: usize,
    pub failures_max: u32,
    pub retry_delay_min: Duration,
    pub retry_delay_max: Duration,
}

impl RetryPolicy {
    /// The wait after the `failures`-th failure in a row.
    pub fn delay(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(20);
        self.retry_delay_min
            .saturating_mul(1u32 << shift)
            .min(self.retry_delay_max)
    }
}

/// What happens next to an address after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Dialled again after this wait.
    In(Duration),
    /// Too many failures: forgotten.
    Forgotten { failures: u32 },
    /// Never dialled again while we seed (it is a seed too).
    NotWhileSeeding,
    /// The address is not in the list (or was not being dialled).
    Unknown,
}

/// What [`PeerList::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    New,
    /// Known already: its sources and seed flag were merged.
    Known,
    /// The list is full of addresses worth keeping.
    Full,
}

/// One torrent's known addresses.
#[derive(Debug, Default)]
pub struct PeerList {
    entries: Vec<KnownPeer>,
    index: HashMap<SocketAddr, usize>,
    /// Where the next scan starts.
    cursor: usize,
    connecting: usize,
    /// No address can be dialled before this time (`None`: scan again).
    quiet_until: Option<Duration>,
    /// The `seeding` flag of the scan that set `quiet_until`.
    quiet_seeding: bool,
}

impl PeerList {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Dials in flight.
    pub fn connecting(&self) -> usize {
        self.connecting
    }

    pub fn get(&self, addr: &SocketAddr) -> Option<&KnownPeer> {
        self.index.get(addr).and_then(|&i| self.entries.get(i))
    }

    fn entry_mut(&mut self, addr: &SocketAddr) -> Option<&mut KnownPeer> {
        let i = *self.index.get(addr)?;
        self.entries.get_mut(i)
    }

    /// Learns `addr` from `source` (`seed`: the source says it is a seed).
    /// A new address may be dialled at once.
    pub fn add(
        &mut self,
        addr: SocketAddr,
        source: PeerSource,
        seed: bool,
        now: Duration,
        policy: &RetryPolicy,
    ) -> Added {
        if let Some(e) = self.entry_mut(&addr) {
            e.sources |= source.bit();
            e.seed |= seed;
            return Added::Known;
        }
        if self.entries.len() >= policy.addresses_max && !self.evict_one() {
            return Added::Full;
        }
        self.index.insert(addr, self.entries.len());
        self.entries.push(KnownPeer {
            addr,
            sources: source.bit(),
            failures: 0,
            last_failure: None,
            retry_at: now,
            seed,
            state: PeerState::Idle,
            encrypt: false,
        });
        self.quiet_until = None;
        Added::New
    }

    /// Makes room: drops an idle address that failed or is a seed, not one
    /// the user gave, looking at most [`EVICT_SCAN_MAX`] entries.
    fn evict_one(&mut self) -> bool {
        let n = self.entries.len();
        if n == 0 {
            return false;
        }
        let start = self.cursor % n;
        let victim = (0..n.min(EVICT_SCAN_MAX))
            .map(|k| (start + k) % n)
            .filter(|&i| {
                self.entries.get(i).is_some_and(|e| {
                    e.state == PeerState::Idle && !e.user() && (e.failures > 0 || e.seed)
                })
            })
            .max_by_key(|&i| self.entries.get(i).map_or(0, |e| e.failures));
        match victim {
            Some(i) => {
                self.remove_at(i);
                true
            }
            None => false,
        }
    }

    fn remove_at(&mut self, i: usize) {
        if i >= self.entries.len() {
            return;
        }
        let gone = self.entries.swap_remove(i);
        self.index.remove(&gone.addr);
        if gone.state == PeerState::Connecting {
            self.connecting = self.connecting.saturating_sub(1);
        }
        if let Some(moved) = self.entries.get(i) {
            self.index.insert(moved.addr, i);
        }
    }

    /// Forgets `addr`.
    pub fn remove(&mut self, addr: &SocketAddr) {
        if let Some(&i) = self.index.get(addr) {
            self.remove_at(i);
        }
    }

    /// Forgets every address of `ip` (it was banned).
    pub fn remove_ip(&mut self, ip: IpAddr) {
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries.get(i).is_some_and(|e| e.addr.ip() == ip) {
                self.remove_at(i);
            } else {
                i += 1;
            }
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.index.clear();
        self.connecting = 0;
        self.cursor = 0;
        self.quiet_until = None;
    }

    /// The next address to dial at `now`, marked as being dialled: idle,
    /// its wait over, and not a known seed when we are `seeding`.
    pub fn next_to_dial(&mut self, now: Duration, seeding: bool) -> Option<SocketAddr> {
        if self.quiet_seeding == seeding && self.quiet_until.is_some_and(|t| now < t) {
            return None;
        }
        let n = self.entries.len();
        let mut soonest: Option<Duration> = None;
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let Some(e) = self.entries.get_mut(i) else {
                continue;
            };
            if e.state != PeerState::Idle || (seeding && e.seed) {
                continue;
            }
            if e.retry_at > now {
                soonest = Some(soonest.map_or(e.retry_at, |s| s.min(e.retry_at)));
                continue;
            }
            e.state = PeerState::Connecting;
            self.connecting += 1;
            self.cursor = (i + 1) % n;
            return Some(e.addr);
        }
        self.quiet_until = Some(soonest.unwrap_or(Duration::MAX));
        self.quiet_seeding = seeding;
        None
    }

    /// A connection with `addr` is up (a dial that finished, or an
    /// incoming peer whose address is listed).
    pub fn connected(&mut self, addr: &SocketAddr) {
        let Some(e) = self.entry_mut(addr) else {
            return;
        };
        let was = e.state;
        e.state = PeerState::Connected;
        if was == PeerState::Connecting {
            self.connecting = self.connecting.saturating_sub(1);
        }
    }

    /// An incoming connection is from `addr`'s peer: if `addr` is listed
    /// and idle it is marked connected (and not dialled meanwhile). Returns
    /// whether it was; the caller then reports its end with
    /// [`PeerList::disconnected`].
    pub fn claim(&mut self, addr: &SocketAddr) -> bool {
        match self.entry_mut(addr) {
            Some(e) if e.state == PeerState::Idle => {
                e.state = PeerState::Connected;
                true
            }
            _ => false,
        }
    }

    /// A dial that did not become a connection for a reason of ours (the
    /// torrent is full or stopping): idle again, no failure counted.
    pub fn dial_abandoned(&mut self, addr: &SocketAddr) {
        let Some(e) = self.entry_mut(addr) else {
            return;
        };
        if e.state == PeerState::Connecting {
            e.state = PeerState::Idle;
            self.connecting = self.connecting.saturating_sub(1);
            self.quiet_until = None;
        }
    }

    /// A dial of `addr` failed at `now`. Ignored unless it was being
    /// dialled (a late report).
    pub fn dial_failed(&mut self, addr: &SocketAddr, now: Duration, policy: &RetryPolicy) -> Retry {
        match self.get(addr).map(|e| e.state) {
            Some(PeerState::Connecting) => {}
            _ => return Retry::Unknown,
        }
        self.connecting = self.connecting.saturating_sub(1);
        self.failed(addr, now, policy)
    }

    /// The connection with `addr` ended at `now`. `seed`: the peer had
    /// every piece; `useful`: blocks moved on it (its failures are cleared
    /// first); `routine`: a normal end (both sides seeds), not a failure.
    pub fn disconnected(
        &mut self,
        addr: &SocketAddr,
        now: Duration,
        seed: bool,
        useful: bool,
        routine: bool,
        policy: &RetryPolicy,
    ) -> Retry {
        let Some(e) = self.entry_mut(addr) else {
            return Retry::Unknown;
        };
        if e.state != PeerState::Connected {
            return Retry::Unknown;
        }
        e.seed |= seed;
        if useful {
            e.failures = 0;
        }
        if routine {
            e.state = PeerState::Idle;
            e.retry_at = now.saturating_add(policy.retry_delay_min);
            self.quiet_until = None;
            return if seed {
                Retry::NotWhileSeeding
            } else {
                Retry::In(policy.retry_delay_min)
            };
        }
        self.failed(addr, now, policy)
    }

    /// Counts a failure of a listed address and schedules its next dial.
    fn failed(&mut self, addr: &SocketAddr, now: Duration, policy: &RetryPolicy) -> Retry {
        let Some(&i) = self.index.get(addr) else {
            return Retry::Unknown;
        };
        let Some(e) = self.entries.get_mut(i) else {
            return Retry::Unknown;
        };
        e.state = PeerState::Idle;
        e.failures = e.failures.saturating_add(1);
        e.last_failure = Some(now);
        self.quiet_until = None;
        let failures = e.failures;
        if failures >= policy.failures_max {
            if e.user() {
                e.retry_at = now.saturating_add(policy.retry_delay_max);
                return Retry::In(policy.retry_delay_max);
            }
            self.remove_at(i);
            return Retry::Forgotten { failures };
        }
        let wait = policy.delay(failures);
        e.retry_at = now.saturating_add(wait);
        Retry::In(wait)
    }

    /// Says how `addr` is dialled next: the obfuscated handshake first
    /// (`encrypt`) or plaintext (if listed).
    pub fn prefer_encryption(&mut self, addr: &SocketAddr, encrypt: bool) {
        if let Some(e) = self.entry_mut(addr) {
            e.encrypt = encrypt;
        }
    }

    /// A dial's handshake was refused in the form it tried (plaintext hung
    /// up on, or an obfuscated handshake that failed): the other form is
    /// tried next, at once when this was the address's first failure in a
    /// row (a peer that wants the other form is not a failing peer; later
    /// failures keep their backoff). Returns the form now preferred
    /// (`true`: obfuscated), `None` when the address is not listed.
    pub fn switch_handshake(&mut self, addr: &SocketAddr, now: Duration) -> Option<bool> {
        let e = self.entry_mut(addr)?;
        e.encrypt = !e.encrypt;
        let encrypt = e.encrypt;
        if e.state == PeerState::Idle && e.failures <= 1 {
            e.retry_at = now;
            self.quiet_until = None;
        }
        Some(encrypt)
    }

    /// Marks `addr` as a seed (if listed).
    pub fn mark_seed(&mut self, addr: &SocketAddr) {
        if let Some(e) = self.entry_mut(addr) {
            e.seed = true;
        }
    }

    /// Checks the counters against the entries (tests, debug builds).
    pub fn check(&self) -> Result<(), String> {
        let connecting = self
            .entries
            .iter()
            .filter(|e| e.state == PeerState::Connecting)
            .count();
        if connecting != self.connecting {
            return Err(format!(
                "{connecting} entries connecting, counter {}",
                self.connecting
            ));
        }
        if self.index.len() != self.entries.len() {
            return Err("index and entries differ in length".into());
        }
        for (i, e) in self.entries.iter().enumerate() {
            if self.index.get(&e.addr) != Some(&i) {
                return Err(format!("{} is not indexed at {i}", e.addr));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);
    const Z: Duration = Duration::ZERO;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            addresses_max: 4,
            failures_max: 3,
            retry_delay_min: 10 * S,
            retry_delay_max: 300 * S,
        }
    }

    fn a(n: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, n], 6881))
    }

    #[test]
    fn a_failed_dial_waits_longer_each_time_then_is_forgotten() {
        let p = policy();
        let mut l = PeerList::new();
        assert_eq!(l.add(a(1), PeerSource::Tracker, false, Z, &p), Added::New);
        assert_eq!(l.next_to_dial(Z, false), Some(a(1)));
        assert_eq!(l.connecting(), 1);
        assert_eq!(l.next_to_dial(Z, false), None, "dialled already");
        assert_eq!(l.dial_failed(&a(1), S, &p), Retry::In(10 * S));
        assert_eq!(l.get(&a(1)).unwrap().last_failure, Some(S));
        assert_eq!(l.next_to_dial(10 * S, false), None, "still waiting");
        assert_eq!(l.next_to_dial(11 * S, false), Some(a(1)));
        assert_eq!(l.dial_failed(&a(1), 11 * S, &p), Retry::In(20 * S));
        assert_eq!(l.next_to_dial(30 * S, false), None);
        assert_eq!(l.next_to_dial(31 * S, false), Some(a(1)));
        assert_eq!(
            l.dial_failed(&a(1), 31 * S, &p),
            Retry::Forgotten { failures: 3 }
        );
        assert!(l.is_empty());
        assert_eq!(l.connecting(), 0);
        l.check().unwrap();
        // A late report about a forgotten address changes nothing.
        assert_eq!(l.dial_failed(&a(1), 40 * S, &p), Retry::Unknown);
    }

    #[test]
    fn a_refused_handshake_form_is_switched_and_retried_at_once_the_first_time() {
        let p = policy();
        let mut l = PeerList::new();
        l.add(a(1), PeerSource::Tracker, false, Z, &p);
        assert!(!l.get(&a(1)).unwrap().encrypt, "plaintext first");
        assert_eq!(l.next_to_dial(Z, false), Some(a(1)));
        assert_eq!(l.dial_failed(&a(1), S, &p), Retry::In(10 * S));
        // The peer hung up on plaintext: obfuscated next, without the wait.
        assert_eq!(l.switch_handshake(&a(1), S), Some(true));
        assert_eq!(l.next_to_dial(S, false), Some(a(1)));
        assert!(l.get(&a(1)).unwrap().encrypt);
        // A second failure in a row keeps its backoff.
        assert_eq!(l.dial_failed(&a(1), 2 * S, &p), Retry::In(20 * S));
        assert_eq!(l.switch_handshake(&a(1), 2 * S), Some(false));
        assert_eq!(l.next_to_dial(3 * S, false), None, "waits its backoff");
        assert_eq!(l.next_to_dial(22 * S, false), Some(a(1)));
        assert_eq!(l.switch_handshake(&a(9), S), None, "not listed");
        l.prefer_encryption(&a(1), true);
        assert!(l.get(&a(1)).unwrap().encrypt);
        l.check().unwrap();
    }

    #[test]
    fn an_address_the_user_gave_is_retried_at_the_longest_delay_for_ever() {
        let p = policy();
        let mut l = PeerList::new();
        l.add(a(1), PeerSource::User, false, Z, &p);
        let mut now = Z;
        let mut waits = Vec::new();
        for _ in 0..6 {
            assert_eq!(l.next_to_dial(now, false), Some(a(1)), "at {now:?}");
            let Retry::In(w) = l.dial_failed(&a(1), now, &p) else {
                panic!("forgotten")
            };
            waits.push(w.as_secs());
            now += w;
        }
        assert_eq!(waits, [10, 20, 300, 300, 300, 300]);
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn a_tracker_repeating_a_user_address_keeps_it_a_user_address() {
        let p = policy();
        let mut l = PeerList::new();
        l.add(a(1), PeerSource::Tracker, false, Z, &p);
        assert_eq!(l.add(a(1), PeerSource::User, false, Z, &p), Added::Known);
        let e = l.get(&a(1)).unwrap();
        assert!(e.has_source(PeerSource::User) && e.has_source(PeerSource::Tracker));
    }

    #[test]
    fn a_useful_connection_clears_failures_and_a_useless_one_counts() {
        let p = policy();
        let mut l = PeerList::new();
        l.add(a(1), PeerSource::Tracker, false, Z, &p);
        l.next_to_dial(Z, false);
        l.dial_failed(&a(1), Z, &p);
        l.next_to_dial(10 * S, false);
        l.connected(&a(1));
        assert_eq!(l.connecting(), 0);
        assert_eq!(l.get(&a(1)).unwrap().state, PeerState::Connected);
        // It moved blocks, then dropped: one failure, the shortest wait.
        assert_eq!(
            l.disconnected(&a(1), 50 * S, false, true, false, &p),
            Retry::In(10 * S)
        );
        l.next_to_dial(60 * S, false);
        l.connected(&a(1));
        // Nothing moved this time: the count grows.
        assert_eq!(
            l.disconnected(&a(1), 61 * S, false, false, false, &p),
            Retry::In(20 * S)
        );
        l.check().unwrap();
    }

    #[test]
    fn an_incoming_peer_holds_its_listed_address_until_it_goes() {
        let p = policy();
        let mut l = PeerList::new();
        l.add(a(1), PeerSource::Tracker, false, Z, &p);
        assert!(l.claim(&a(1)));
        assert!(!l.claim(&a(1)), "held already");
        assert!(!l.claim(&a(2)), "not listed");
        assert_eq!(l.next_to_dial(Z, false), None, "connected: not dialled");
        l.disconnected(&a(1), S, false, true, false, &p);
        assert_eq!(l.next_to_dial(20 * S, false), Some(a(1)));
        assert!(!l.claim(&a(1)), "being dialled");
        l.check().unwrap();
    }

    #[test]
    fn a_seeding_torrent_never_dials_a_known_seed() {
        let p = policy();
        let mut l = PeerList::new();
        l.add(a(1), PeerSource::Tracker, false, Z, &p);
        l.add(a(2), PeerSource::Pex, true, Z, &p);
        assert_eq!(l.next_to_dial(Z, true), Some(a(1)));
        assert_eq!(l.next_to_dial(Z, true), None, "a(2) is a seed");
        l.connected(&a(1));
        // Both sides seeds: closed as routine; a(1) is a seed from now on.
        assert_eq!(
            l.disconnected(&a(1), S, true, false, true, &p),
            Retry::NotWhileSeeding
        );
        for t in [1, 10, 100, 10_000] {
            assert_eq!(l.next_to_dial(t * S, true), None, "at {t} s");
        }
        // A downloading torrent does dial seeds.
        let first = l.next_to_dial(20 * S, false);
        assert!(first == Some(a(1)) || first == Some(a(2)), "{first:?}");
        l.check().unwrap();
    }

    #[test]
    fn a_full_list_replaces_a_failed_address_and_keeps_good_ones() {
        let p = policy();
        let mut l = PeerList::new();
        for n in 1..=4 {
            assert_eq!(l.add(a(n), PeerSource::Tracker, false, Z, &p), Added::New);
        }
        assert_eq!(l.add(a(5), PeerSource::Tracker, false, Z, &p), Added::Full);
        let dialled = l.next_to_dial(Z, false).unwrap();
        l.dial_failed(&dialled, Z, &p);
        assert_eq!(l.add(a(5), PeerSource::Tracker, false, Z, &p), Added::New);
        assert!(l.get(&dialled).is_none(), "the failed one made room");
        assert_eq!(l.len(), 4);
        l.check().unwrap();
    }

    #[test]
    fn an_abandoned_dial_is_not_a_failure_and_a_ban_removes_the_ip() {
        let p = policy();
        let mut l = PeerList::new();
        l.add(a(1), PeerSource::Tracker, false, Z, &p);
        l.add(
            SocketAddr::from(([127, 0, 0, 1], 7000)),
            PeerSource::User,
            false,
            Z,
            &p,
        );
        l.add(a(2), PeerSource::Tracker, false, Z, &p);
        let d = l.next_to_dial(Z, false).unwrap();
        l.dial_abandoned(&d);
        assert_eq!(l.get(&d).unwrap().failures, 0);
        assert_eq!(l.connecting(), 0);
        l.remove_ip(a(1).ip());
        assert_eq!(l.len(), 1);
        assert!(l.get(&a(2)).is_some());
        l.check().unwrap();
    }

    #[test]
    fn a_list_with_nothing_ready_is_not_scanned_again_until_something_may_be() {
        let p = policy();
        let mut l = PeerList::new();
        l.add(a(1), PeerSource::Tracker, false, Z, &p);
        l.next_to_dial(Z, false);
        l.dial_failed(&a(1), Z, &p);
        assert_eq!(l.next_to_dial(S, false), None);
        assert_eq!(l.quiet_until, Some(10 * S));
        // A new address is dialled at once.
        l.add(a(2), PeerSource::Tracker, false, 2 * S, &p);
        assert_eq!(l.next_to_dial(2 * S, false), Some(a(2)));
        assert_eq!(l.next_to_dial(10 * S, false), Some(a(1)));
    }
}
