//! Token-bucket rate limits, global and per torrent (issue 5). Pure: the
//! caller gives `now: Duration` and asks whether bytes may go; nothing here
//! touches the clock or a socket. Three pieces:
//!
//! - [`TokenBucket`]: `rate` bytes per second, up to `burst` bytes saved.
//!   A take may leave the bucket in debt (below zero) by at most one grant,
//!   so a grant is always whole (a block is never split) and the long-run
//!   rate is still `rate`: the debt is paid back before the next grant.
//! - [`Limiter`]: the two levels, the shard's share of the global limit and
//!   one bucket per torrent. A grant needs both to be ready; no bucket at a
//!   level means that level is unlimited and costs nothing.
//! - [`FairQueue`]: who waits for tokens, served round-robin over torrents
//!   and, within a torrent, over peers, one item per turn. Each waiting peer
//!   is served once per rotation whatever its neighbours want, so no peer is
//!   starved completely: while the limit admits at least one grant per
//!   rotation, every peer gets at least one block per rotation.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// Bytes of one block: the smallest grant worth making. The picker's block
/// ([`torrent::BLOCK_BYTES`](crate::torrent::BLOCK_BYTES)), so a grant of one
/// block covers one block we send or receive.
pub const BLOCK_BYTES: u64 = crate::torrent::BLOCK_BYTES as u64;
/// Highest rate a bucket takes (bytes per second); higher is clamped.
pub const RATE_MAX: u64 = 1 << 40;
/// Saved tokens of a bucket made by [`TokenBucket::for_rate`]: this much
/// time's worth of the rate, so a short measurement is not skewed by a
/// saved-up second.
pub const BURST_TIME: Duration = Duration::from_millis(100);
/// Smallest burst of a bucket (bytes): a few blocks, so one grant of
/// coalesced blocks fits even at a very low rate.
pub const BURST_MIN: u64 = 4 * BLOCK_BYTES;
/// Most items one [`FairQueue`] holds.
pub const WAITING_MAX: usize = 1 << 20;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A token bucket: `rate` bytes per second, at most `burst` saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    /// Below zero: debt from a grant larger than what was saved.
    tokens: i64,
    /// Time up to which refills are counted.
    last: Duration,
}

impl TokenBucket {
    /// A full bucket. `rate` is clamped to `1..=RATE_MAX`, `burst` to at
    /// least `BLOCK_BYTES` and at most `RATE_MAX`.
    pub fn new(rate: u64, burst: u64, now: Duration) -> TokenBucket {
        let burst = burst.clamp(BLOCK_BYTES, RATE_MAX);
        TokenBucket {
            rate: rate.clamp(1, RATE_MAX),
            burst,
            tokens: burst as i64,
            last: now,
        }
    }

    /// A full bucket whose burst is `BURST_TIME` of `rate` (at least
    /// `BURST_MIN`).
    pub fn for_rate(rate: u64, now: Duration) -> TokenBucket {
        TokenBucket::new(rate, burst_for(rate), now)
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Tokens now saved (negative: debt), as of the last refill.
    pub fn tokens(&self) -> i64 {
        self.tokens
    }

    /// Changes the rate (and the burst with it) from `now` on; what was
    /// earned at the old rate up to `now` is kept, capped by the new burst.
    pub fn set_rate(&mut self, now: Duration, rate: u64) {
        self.refill(now);
        self.rate = rate.clamp(1, RATE_MAX);
        self.burst = burst_for(self.rate);
        self.tokens = self.tokens.min(self.burst as i64);
    }

    /// Adds the tokens earned since the last refill. A `now` earlier than
    /// the last refill adds nothing.
    pub fn refill(&mut self, now: Duration) {
        let Some(elapsed) = now.checked_sub(self.last) else {
            return;
        };
        let earned = u128::from(self.rate) * elapsed.as_nanos() / NANOS_PER_SEC;
        let room = (self.burst as i64).saturating_sub(self.tokens).max(0) as u128;
        if earned >= room {
            self.tokens = self.burst as i64;
            self.last = now;
        } else if earned > 0 {
            self.tokens += earned as i64;
            // Keep the fraction of a token not yet earned.
            let used = earned * NANOS_PER_SEC / u128::from(self.rate);
            self.last += Duration::from_nanos(used.min(u128::from(u64::MAX)) as u64);
        }
    }

    /// Whether a grant may be made now (anything saved, no debt).
    pub fn ready(&mut self, now: Duration) -> bool {
        self.refill(now);
        self.tokens > 0
    }

    /// Takes `n` tokens if that many are saved.
    pub fn try_take(&mut self, now: Duration, n: u64) -> bool {
        self.refill(now);
        if self.tokens >= 0 && (self.tokens as u64) >= n {
            self.tokens -= n as i64;
            true
        } else {
            false
        }
    }

    /// Takes `n` tokens whatever is saved, going into debt if need be (down
    /// to minus `RATE_MAX`). Used for a grant already decided, or for bytes
    /// that arrived.
    pub fn take(&mut self, now: Duration, n: u64) {
        self.refill(now);
        let n = n.min(RATE_MAX) as i64;
        self.tokens = self.tokens.saturating_sub(n).max(-(RATE_MAX as i64));
    }

    /// Time from the last refill until `n` tokens are saved (`n` is capped
    /// by the burst: more can never be saved). Zero if they are saved now.
    pub fn time_until(&self, n: u64) -> Duration {
        let n = n.min(self.burst) as i64;
        let missing = n.saturating_sub(self.tokens);
        if missing <= 0 {
            return Duration::ZERO;
        }
        let nanos = (missing as u128 * NANOS_PER_SEC).div_ceil(u128::from(self.rate));
        Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64)
    }

    /// Time from the last refill until a grant may be made ([`Self::ready`]).
    pub fn time_until_ready(&self) -> Duration {
        if self.tokens > 0 {
            Duration::ZERO
        } else {
            self.time_until_raw(self.tokens.unsigned_abs().saturating_add(1))
        }
    }

    fn time_until_raw(&self, missing: u64) -> Duration {
        let nanos = (u128::from(missing) * NANOS_PER_SEC).div_ceil(u128::from(self.rate));
        Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64)
    }
}

fn burst_for(rate: u64) -> u64 {
    let per_burst = u128::from(rate) * BURST_TIME.as_nanos() / NANOS_PER_SEC;
    (per_burst.min(u128::from(RATE_MAX)) as u64).max(BURST_MIN)
}

/// One direction's limits in a shard: its share of the global limit and
/// each torrent's own. `None` at a level: unlimited.
#[derive(Debug, Clone, Default)]
pub struct Limiter {
    global: Option<TokenBucket>,
    torrents: Vec<Option<TokenBucket>>,
}

impl Limiter {
    /// `global_rate` and `torrent_rate` in bytes per second, 0 = unlimited;
    /// `torrents` buckets of `torrent_rate` each.
    pub fn new(global_rate: u64, torrent_rate: u64, torrents: usize, now: Duration) -> Limiter {
        let bucket = |rate: u64| (rate > 0).then(|| TokenBucket::for_rate(rate, now));
        Limiter {
            global: bucket(global_rate),
            torrents: (0..torrents).map(|_| bucket(torrent_rate)).collect(),
        }
    }

    /// No bucket at either level: every grant is free.
    pub fn is_unlimited(&self) -> bool {
        self.global.is_none() && self.torrents.iter().all(Option::is_none)
    }

    /// Whether the global level has a bucket.
    pub fn has_global(&self) -> bool {
        self.global.is_some()
    }

    /// Whether torrent `t` is limited at some level.
    pub fn is_limited(&self, t: usize) -> bool {
        self.global.is_some() || self.torrents.get(t).is_some_and(Option::is_some)
    }

    /// Sets this shard's share of the global limit (bytes per second; the
    /// shard had a global bucket, else nothing changes).
    pub fn set_global_rate(&mut self, now: Duration, rate: u64) {
        if let Some(b) = self.global.as_mut() {
            b.set_rate(now, rate);
        }
    }

    pub fn global_rate(&self) -> Option<u64> {
        self.global.as_ref().map(TokenBucket::rate)
    }

    /// Sets torrent `t`'s own limit (bytes per second, 0 = unlimited),
    /// with a fresh bucket: a torrent added, or re-limited, starts with a
    /// full burst. Slots past the end are added (torrents are named by
    /// their slot, at most `t + 1` of them).
    pub fn set_torrent_rate(&mut self, now: Duration, t: usize, rate: u64) {
        if self.torrents.len() <= t {
            if rate == 0 {
                return;
            }
            self.torrents.resize_with(t + 1, || None);
        }
        if let Some(b) = self.torrents.get_mut(t) {
            *b = (rate > 0).then(|| TokenBucket::for_rate(rate, now));
        }
    }

    /// Takes `other`'s global bucket, keeping the torrents' own.
    pub fn replace_global(&mut self, other: Limiter) {
        self.global = other.global;
    }

    /// Torrent `t`'s own limit, if it has one.
    pub fn torrent_rate(&self, t: usize) -> Option<u64> {
        self.torrents.get(t)?.as_ref().map(TokenBucket::rate)
    }

    /// Whether torrent `t` may be granted bytes now: both levels ready.
    pub fn ready(&mut self, now: Duration, t: usize) -> bool {
        let global = self.global.as_mut().is_none_or(|b| b.ready(now));
        let own = match self.torrents.get_mut(t) {
            Some(Some(b)) => b.ready(now),
            _ => true,
        };
        global && own
    }

    /// Grants `bytes` to torrent `t` if both levels are ready, taking them
    /// from both (debt allowed).
    pub fn admit(&mut self, now: Duration, t: usize, bytes: u64) -> bool {
        if !self.ready(now, t) {
            return false;
        }
        self.charge(now, t, bytes);
        true
    }

    /// Counts `bytes` against both levels whatever they hold (bytes that
    /// arrived, or a grant already made).
    pub fn charge(&mut self, now: Duration, t: usize, bytes: u64) {
        if let Some(b) = self.global.as_mut() {
            b.take(now, bytes);
        }
        if let Some(Some(b)) = self.torrents.get_mut(t) {
            b.take(now, bytes);
        }
    }

    /// Time after `now` until torrent `t` may be granted bytes (the later
    /// of the two levels).
    pub fn wait(&mut self, now: Duration, t: usize) -> Duration {
        let g = self.global.as_mut().map_or(Duration::ZERO, |b| {
            b.refill(now);
            b.time_until_ready()
        });
        let own = match self.torrents.get_mut(t) {
            Some(Some(b)) => {
                b.refill(now);
                b.time_until_ready()
            }
            _ => Duration::ZERO,
        };
        g.max(own)
    }
}

/// Why an item was not queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the wait queue is full ({held} items, at most {max})")]
pub struct QueueFull {
    pub held: usize,
    pub max: usize,
}

/// Items waiting for tokens, by torrent and peer, served round-robin: each
/// turn goes to the next torrent in rotation whose limits are ready, and
/// within it to its next peer; a peer with several items waits for its
/// next turn for each.
#[derive(Debug)]
pub struct FairQueue<T> {
    /// Torrents with waiting peers, in rotation order.
    torrents: VecDeque<usize>,
    /// Each waiting torrent's peers, in rotation order.
    peers: HashMap<usize, VecDeque<u64>>,
    items: HashMap<(usize, u64), VecDeque<T>>,
    len: usize,
    max: usize,
}

impl<T> Default for FairQueue<T> {
    fn default() -> Self {
        FairQueue::new(WAITING_MAX)
    }
}

impl<T> FairQueue<T> {
    /// A queue holding at most `max` items.
    pub fn new(max: usize) -> FairQueue<T> {
        FairQueue {
            torrents: VecDeque::new(),
            peers: HashMap::new(),
            items: HashMap::new(),
            len: 0,
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `peer` of torrent `t` has items waiting (a later item of it
    /// must queue behind them to keep its order).
    pub fn has(&self, t: usize, peer: u64) -> bool {
        self.items.contains_key(&(t, peer))
    }

    /// Torrents with items waiting, in rotation order.
    pub fn torrents(&self) -> impl Iterator<Item = usize> + '_ {
        self.torrents.iter().copied()
    }

    /// Queues `item` behind `peer`'s earlier ones.
    pub fn push(&mut self, t: usize, peer: u64, item: T) -> Result<(), (QueueFull, T)> {
        if self.len >= self.max {
            let full = QueueFull {
                held: self.len,
                max: self.max,
            };
            return Err((full, item));
        }
        let q = self.items.entry((t, peer)).or_default();
        if q.is_empty() {
            let peers = self.peers.entry(t).or_default();
            if peers.is_empty() {
                self.torrents.push_back(t);
            }
            peers.push_back(peer);
        }
        q.push_back(item);
        self.len += 1;
        Ok(())
    }

    /// The next item whose torrent `ready` says may go, in rotation; `None`
    /// when no waiting torrent is ready. `ready` is asked at most once per
    /// waiting torrent.
    pub fn pop(&mut self, mut ready: impl FnMut(usize) -> bool) -> Option<(usize, u64, T)> {
        for _ in 0..self.torrents.len() {
            let t = self.torrents.pop_front()?;
            if !ready(t) {
                self.torrents.push_back(t);
                continue;
            }
            let peers = self.peers.get_mut(&t)?;
            let Some(peer) = peers.pop_front() else {
                self.peers.remove(&t);
                continue;
            };
            let q = self.items.get_mut(&(t, peer))?;
            let item = q.pop_front();
            if q.is_empty() {
                self.items.remove(&(t, peer));
            } else {
                peers.push_back(peer);
            }
            if peers.is_empty() {
                self.peers.remove(&t);
            } else {
                self.torrents.push_back(t);
            }
            let item = item?;
            self.len -= 1;
            return Some((t, peer, item));
        }
        None
    }

    /// Takes out every item of torrent `t` (it was paused or removed).
    pub fn remove_torrent(&mut self, t: usize) -> Vec<T> {
        let peers = self.peers.remove(&t).unwrap_or_default();
        self.torrents.retain(|&x| x != t);
        let mut out = Vec::new();
        for peer in peers {
            if let Some(q) = self.items.remove(&(t, peer)) {
                self.len -= q.len();
                out.extend(q);
            }
        }
        out
    }

    /// Takes out every item of `peer` of torrent `t` (it went away).
    pub fn remove_peer(&mut self, t: usize, peer: u64) -> Vec<T> {
        let Some(q) = self.items.remove(&(t, peer)) else {
            return Vec::new();
        };
        self.len -= q.len();
        if let Some(peers) = self.peers.get_mut(&t) {
            peers.retain(|&p| p != peer);
            if peers.is_empty() {
                self.peers.remove(&t);
                self.torrents.retain(|&x| x != t);
            }
        }
        q.into()
    }
}

#[cfg(test)]
mod tests;
