//! Optimistic unchokes: a few slots for interested peers outside the
//! regular ranking, so peers with nothing to show yet (newcomers, peers
//! we have not tried) get a chance to prove themselves.
//!
//! The holders are drawn again every `optimistic_interval`; in between, a
//! holder keeps its slot while it stays interested, connected and outside
//! the regular slots, and a freed slot is drawn again at once. A newcomer
//! (connected within `newcomer_window`, or never unchoked yet) is
//! `newcomer_weight` times as likely to be drawn.
//!
//! Boundary: state (the holders, the next draw) and one O(n) pass per
//! round over the pool the caller hands in; nothing allocated once the
//! holder list has its capacity (`OPTIMISTIC_MAX`, reserved at the first
//! round with candidates, so an idle torrent holds none).

use std::time::Duration;

use super::candidate::SlotCandidate;
use super::selection::{flags_of, index_of, FLAG_HOLDER, FLAG_NEWCOMER};
use super::settings::OPTIMISTIC_MAX;
use crate::rng::Rng;

/// What one round's draw needs.
#[derive(Clone, Copy, Debug)]
pub struct Draw {
    pub now: Duration,
    /// Time until the next full redraw.
    pub interval: Duration,
    /// Slots to fill, at most [`OPTIMISTIC_MAX`].
    pub count: usize,
    pub newcomer_window: Duration,
    pub newcomer_weight: u32,
}

/// The optimistic holders of one torrent.
#[derive(Debug, Clone)]
pub struct Optimistic {
    /// Peers holding an optimistic slot, sorted (binary-searched per
    /// candidate when keeping holders).
    holders: Vec<u64>,
    next_draw: Duration,
}

impl Default for Optimistic {
    fn default() -> Self {
        Self::new()
    }
}

impl Optimistic {
    /// No holders; the first draw is due at once.
    pub fn new() -> Self {
        Self {
            // Reserved at the first round with candidates: an idle
            // torrent (thousands of them on a seedbox) holds nothing.
            holders: Vec::new(),
            next_draw: Duration::ZERO,
        }
    }

    /// The holders after the last round, sorted by peer id.
    pub fn holders(&self) -> &[u64] {
        &self.holders
    }

    /// The flags of `c`'s rank key for this round's draw (newcomer, holder).
    pub fn flags(&self, c: &SlotCandidate, now: Duration, newcomer_window: Duration) -> u8 {
        let mut flags = 0;
        if c.is_newcomer(now, newcomer_window) {
            flags |= FLAG_NEWCOMER;
        }
        if !self.holders.is_empty() && self.holders.binary_search(&c.peer).is_ok() {
            flags |= FLAG_HOLDER;
        }
        flags
    }

    /// When the holders are next drawn afresh.
    pub fn next_draw(&self) -> Duration {
        self.next_draw
    }

    /// Fills the optimistic slots from `pool` (keys of the interested
    /// candidates without a regular slot, flagged by
    /// [`Optimistic::flags`]; reordered in place): keeps the
    /// current holders found there unless a redraw is due, then draws the
    /// free slots without replacement. Appends the holders to `unchoked`.
    pub fn choose(
        &mut self,
        draw: Draw,
        pool: &mut [u128],
        candidates: &[SlotCandidate],
        rng: &mut Rng,
        unchoked: &mut Vec<u64>,
    ) {
        let count = draw.count.min(OPTIMISTIC_MAX);
        if !pool.is_empty() && self.holders.capacity() < OPTIMISTIC_MAX {
            self.holders
                .reserve_exact(OPTIMISTIC_MAX - self.holders.len());
        }
        let redraw = draw.now >= self.next_draw;
        if redraw {
            self.holders.clear();
            self.next_draw = draw.now.saturating_add(draw.interval);
        }
        let peer_of = |key: &u128| candidates.get(index_of(*key)).map(|c| c.peer);
        // Keep the holders still in the pool: move them to its front.
        let mut front = 0;
        if !redraw && !self.holders.is_empty() {
            for i in 0..pool.len() {
                if front >= count {
                    break;
                }
                if pool.get(i).is_some_and(|k| flags_of(*k) & FLAG_HOLDER != 0) {
                    pool.swap(front, i);
                    front += 1;
                }
            }
        }
        self.holders.clear();
        for key in pool.get(..front).unwrap_or_default() {
            if let Some(peer) = peer_of(key) {
                self.holders.push(peer);
            }
        }
        // Partition the rest: newcomers first, then the others.
        let rest = pool.get_mut(front..).unwrap_or_default();
        let mut newcomers = 0;
        for i in 0..rest.len() {
            let new = rest
                .get(i)
                .is_some_and(|k| flags_of(*k) & FLAG_NEWCOMER != 0);
            if new {
                rest.swap(newcomers, i);
                newcomers += 1;
            }
        }
        // Draw without replacement: a drawn key is swapped to the start of
        // its class's remaining range.
        let weight = u64::from(draw.newcomer_weight.max(1));
        let (mut new_at, new_end) = (0, newcomers);
        let mut old_at = newcomers;
        while self.holders.len() < count {
            let new_left = (new_end - new_at) as u64;
            let old_left = (rest.len() - old_at) as u64;
            let total = new_left * weight + old_left;
            if total == 0 {
                break;
            }
            let r = rng.below(total);
            let picked = if r < new_left * weight {
                let i = new_at + (r / weight) as usize;
                rest.swap(new_at, i);
                new_at += 1;
                new_at - 1
            } else {
                let i = old_at + (r - new_left * weight) as usize;
                rest.swap(old_at, i);
                old_at += 1;
                old_at - 1
            };
            if let Some(peer) = rest.get(picked).and_then(peer_of) {
                self.holders.push(peer);
            }
        }
        unchoked.extend_from_slice(&self.holders);
        self.holders.sort_unstable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload_slots::selection::key;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn draw(now: Duration, count: usize) -> Draw {
        Draw {
            now,
            interval: S(30),
            count,
            newcomer_window: S(120),
            newcomer_weight: 3,
        }
    }

    /// The pool the allocator would hand in at `now`.
    fn pool(o: &Optimistic, c: &[SlotCandidate], now: Duration) -> Vec<u128> {
        c.iter()
            .enumerate()
            .map(|(i, c)| key(0, 0, 0, o.flags(c, now, S(120)), i))
            .collect()
    }

    fn cands(n: u64) -> Vec<SlotCandidate> {
        (0..n)
            .map(|peer| SlotCandidate {
                peer,
                interested: true,
                ..SlotCandidate::default()
            })
            .collect()
    }

    #[test]
    fn kept_until_the_interval_then_redrawn() {
        let c = cands(20);
        let mut o = Optimistic::new();
        let mut rng = Rng::new(5);
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for period in 0..40u64 {
            let start = S(period * 30);
            out.clear();
            o.choose(
                draw(start, 2),
                &mut pool(&o, &c, start),
                &c,
                &mut rng,
                &mut out,
            );
            assert_eq!(out.len(), 2);
            assert_ne!(out[0], out[1]);
            let held = o.holders().to_vec();
            for offset in [10, 20] {
                out.clear();
                let now = start + S(offset);
                o.choose(draw(now, 2), &mut pool(&o, &c, now), &c, &mut rng, &mut out);
                assert_eq!(o.holders(), held, "period {period}");
            }
            seen.extend(held);
            assert_eq!(o.next_draw(), start + S(30));
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 20, "rotation reaches everyone");
    }

    #[test]
    fn an_idle_torrent_holds_no_list_and_the_first_round_reserves_it_whole() {
        let mut o = Optimistic::new();
        let mut rng = Rng::new(3);
        let mut out = Vec::new();
        o.choose(draw(S(0), 1), &mut [], &[], &mut rng, &mut out);
        assert_eq!(o.holders.capacity(), 0, "no candidates: nothing reserved");
        let c = cands(3);
        o.choose(
            draw(S(40), 1),
            &mut pool(&o, &c, S(40)),
            &c,
            &mut rng,
            &mut out,
        );
        assert!(o.holders.capacity() >= OPTIMISTIC_MAX);
    }

    #[test]
    fn a_holder_that_left_the_pool_is_replaced_at_once() {
        let c = cands(10);
        let mut o = Optimistic::new();
        let mut rng = Rng::new(9);
        let mut out = Vec::new();
        o.choose(
            draw(S(0), 1),
            &mut pool(&o, &c, S(0)),
            &c,
            &mut rng,
            &mut out,
        );
        let held = o.holders()[0];
        let rest: Vec<_> = c.iter().copied().filter(|x| x.peer != held).collect();
        out.clear();
        o.choose(
            draw(S(10), 1),
            &mut pool(&o, &rest, S(10)),
            &rest,
            &mut rng,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_ne!(out[0], held);
        // Empty pool, count 0: nothing.
        out.clear();
        o.choose(draw(S(20), 1), &mut [], &rest, &mut rng, &mut out);
        assert!(out.is_empty() && o.holders().is_empty());
        o.choose(
            draw(S(30), 0),
            &mut pool(&o, &rest, S(30)),
            &rest,
            &mut rng,
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn newcomers_are_weighted() {
        let mut o = Optimistic::new();
        let mut rng = Rng::new(1);
        let draws = 4000u64;
        let mut wins = 0u64;
        let mut out = Vec::new();
        for d in 0..draws {
            let now = S(3600 + d * 30);
            let c: Vec<_> = (0..20u64)
                .map(|peer| {
                    let connected_at = if peer < 10 { S(0) } else { now - S(60) };
                    SlotCandidate {
                        peer,
                        connected_at,
                        // Each had a turn once: only the age counts.
                        choke_changed_at: connected_at + S(1),
                        ..SlotCandidate::default()
                    }
                })
                .collect();
            out.clear();
            o.choose(draw(now, 1), &mut pool(&o, &c, now), &c, &mut rng, &mut out);
            if out.first().is_some_and(|&p| p >= 10) {
                wins += 1;
            }
        }
        // Expected 30 / 40 = 0.75 (0.5 without the weight).
        let share = wins as f64 / draws as f64;
        assert!((0.72..=0.78).contains(&share), "newcomer share {share}");
    }
}
