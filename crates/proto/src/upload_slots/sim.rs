//! A deterministic swarm simulation for the allocator (tests only): one
//! node (us) and hundreds of simulated peers in virtual time, no sockets.
//!
//! Every `step` the node's upload capacity is shared among the peers it
//! has unchoked, fairly as TCP would, each capped by the peer's download
//! capacity (water-filling). While downloading, a reciprocating peer
//! uploads to us one slot's share of its capacity while we gave it
//! something within the rate window, or while it has us in its own
//! optimistic slot (a 30 s turn drawn with probability
//! [`PEER_OPTIMISTIC_ODDS`]); a free-rider never uploads. Every
//! `rechoke_interval` the real [`UploadSlots`] ranks the candidates built
//! from these facts. Peers join at their `joins_at`.
//!
//! Boundary: pure; all randomness from the seed.

use std::time::Duration;

use super::{Round, SlotCandidate, SlotSettings, SlotsError, UploadSlots};
use crate::rng::Rng;

/// Upload slots a simulated reciprocating peer shares its capacity over.
pub const PEER_SLOTS: u64 = 4;
/// One in this many 30 s periods, a reciprocating peer has us in its own
/// optimistic slot.
pub const PEER_OPTIMISTIC_ODDS: u64 = 8;
/// A simulated peer's own optimistic period.
const PEER_OPTIMISTIC_PERIOD: Duration = Duration::from_secs(30);
/// Most rate-window buckets kept per peer.
const WINDOW_STEPS_MAX: usize = 64;
/// Most peers a simulation accepts.
pub const PEERS_MAX: usize = 10_000;

/// One simulated peer.
#[derive(Debug, Clone, Copy)]
pub struct PeerSpec {
    /// What it can upload, bytes per second.
    pub up: u64,
    /// What it can download, bytes per second.
    pub down: u64,
    /// It uploads to those who upload to it; else a free-rider.
    pub reciprocates: bool,
    pub joins_at: Duration,
    /// Pieces it has (anti-leech looks at them).
    pub pieces_have: u32,
}

/// The run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub settings: SlotSettings,
    /// Our node is seeding (else downloading, with tit-for-tat).
    pub seeding: bool,
    /// Our upload capacity, bytes per second.
    pub upload: u64,
    /// Time step, a divisor of the rechoke interval.
    pub step: Duration,
    pub duration: Duration,
    pub piece_length: u64,
    pub pieces_total: u32,
}

/// What one peer got out of the run.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerResult {
    /// Bytes we uploaded to it.
    pub received: u64,
    /// Bytes it uploaded to us.
    pub given: u64,
    /// Time from joining to its first unchoke by us.
    pub first_unchoke: Option<Duration>,
    /// Longest time it waited choked while interested (joining to first
    /// unchoke, or between turns), the wait still running at the end
    /// included.
    pub longest_wait: Duration,
}

/// The outcome.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    pub peers: Vec<PeerResult>,
    /// Bytes we uploaded in all.
    pub uploaded: u64,
}

#[derive(Debug, Clone)]
struct PeerState {
    spec: PeerSpec,
    joined: bool,
    unchoked: bool,
    choke_changed_at: Duration,
    sent_since_unchoke: u64,
    /// Bytes per step to the peer / from the peer, a ring over the window.
    to_ring: [u64; WINDOW_STEPS_MAX],
    from_ring: [u64; WINDOW_STEPS_MAX],
    /// The peer has us in its optimistic slot until then.
    optimistic_until: Duration,
    last_given_at: Option<Duration>,
    result: PeerResult,
}

/// Runs the simulation. Fails only on settings the allocator refuses.
pub fn run(cfg: &SimConfig, specs: &[PeerSpec]) -> Result<SimReport, SlotsError> {
    let mut slots = UploadSlots::new(cfg.settings.clone(), cfg.seed)?;
    let mut rng = Rng::new(cfg.seed ^ 0x5EED);
    let step = cfg.step.max(Duration::from_millis(100));
    let step_s = step.as_secs_f64();
    let window_steps = ((cfg.settings.rate_window.as_secs_f64() / step_s).round() as usize)
        .clamp(1, WINDOW_STEPS_MAX);
    let window_s = window_steps as f64 * step_s;
    let mut peers: Vec<PeerState> = specs
        .iter()
        .take(PEERS_MAX)
        .map(|&spec| PeerState {
            spec,
            joined: false,
            unchoked: false,
            choke_changed_at: spec.joins_at,
            sent_since_unchoke: 0,
            to_ring: [0; WINDOW_STEPS_MAX],
            from_ring: [0; WINDOW_STEPS_MAX],
            optimistic_until: Duration::ZERO,
            last_given_at: None,
            result: PeerResult::default(),
        })
        .collect();
    let mut candidates: Vec<SlotCandidate> = Vec::with_capacity(peers.len());
    let mut unchoked: Vec<u64> = Vec::new();
    let mut chosen = vec![false; peers.len()];
    let mut order: Vec<usize> = Vec::with_capacity(peers.len());
    let mut report = SimReport::default();
    let steps = (cfg.duration.as_secs_f64() / step_s) as u64;
    for n in 0..steps {
        let now = step * n as u32;
        let slot = n as usize % window_steps;
        for p in peers.iter_mut() {
            if !p.joined && now >= p.spec.joins_at {
                p.joined = true;
                p.choke_changed_at = now;
            }
            p.to_ring[slot] = 0;
            p.from_ring[slot] = 0;
        }
        if now >= slots.next_rechoke() {
            candidates.clear();
            for (i, p) in peers.iter().enumerate() {
                if !p.joined {
                    continue;
                }
                let rate = |ring: &[u64; WINDOW_STEPS_MAX]| {
                    (ring.iter().take(window_steps).sum::<u64>() as f64 / window_s) as u64
                };
                // We ask every peer that has us unchoked for blocks.
                let asking = !cfg.seeding && peer_unchokes_us(p, now, window_steps);
                candidates.push(SlotCandidate {
                    peer: i as u64,
                    interested: true,
                    rate_from_peer: rate(&p.from_ring),
                    rate_to_peer: rate(&p.to_ring),
                    waiting_since: asking.then(|| p.last_given_at.unwrap_or(p.spec.joins_at)),
                    unchoked: p.unchoked,
                    choke_changed_at: p.choke_changed_at,
                    bytes_sent_since_unchoke: p.sent_since_unchoke,
                    pieces_have: p.spec.pieces_have,
                    priority: 0,
                    connected_at: p.spec.joins_at,
                });
            }
            let round = Round::new(now, cfg.seeding, cfg.piece_length, cfg.pieces_total);
            slots.rechoke(&round, &candidates, &mut unchoked);
            chosen.iter_mut().for_each(|c| *c = false);
            for &u in &unchoked {
                if let Some(c) = chosen.get_mut(u as usize) {
                    *c = true;
                }
            }
            for (i, p) in peers.iter_mut().enumerate() {
                let want = chosen.get(i).copied().unwrap_or(false);
                if want != p.unchoked {
                    if want {
                        let waited = now.saturating_sub(p.choke_changed_at);
                        p.result.longest_wait = p.result.longest_wait.max(waited);
                        if p.result.first_unchoke.is_none() {
                            p.result.first_unchoke = Some(now.saturating_sub(p.spec.joins_at));
                        }
                    }
                    p.unchoked = want;
                    p.choke_changed_at = now;
                    p.sent_since_unchoke = 0;
                }
            }
        }
        // Our upload, water-filled over the unchoked peers, slowest first.
        order.clear();
        order.extend((0..peers.len()).filter(|&i| peers.get(i).is_some_and(|p| p.unchoked)));
        order.sort_unstable_by_key(|&i| peers.get(i).map_or(0, |p| p.spec.down));
        let mut left = cfg.upload as f64 * step_s;
        for (k, &i) in order.iter().enumerate() {
            let Some(p) = peers.get_mut(i) else { continue };
            let share = left / (order.len() - k) as f64;
            let bytes = share.min(p.spec.down as f64 * step_s);
            left -= bytes;
            let bytes = bytes as u64;
            p.to_ring[slot] += bytes;
            p.sent_since_unchoke += bytes;
            p.result.received += bytes;
            report.uploaded += bytes;
        }
        // What the peers give us.
        if !cfg.seeding {
            for p in peers.iter_mut() {
                if !p.joined || !p.spec.reciprocates {
                    continue;
                }
                if now >= p.optimistic_until
                    && (now.as_millis() % PEER_OPTIMISTIC_PERIOD.as_millis()) < step.as_millis()
                    && rng.below(PEER_OPTIMISTIC_ODDS) == 0
                {
                    p.optimistic_until = now + PEER_OPTIMISTIC_PERIOD;
                }
                if peer_unchokes_us(p, now, window_steps) {
                    let bytes = (p.spec.up as f64 / PEER_SLOTS as f64 * step_s) as u64;
                    p.from_ring[slot] += bytes;
                    p.result.given += bytes;
                    if bytes > 0 {
                        p.last_given_at = Some(now);
                    }
                }
            }
        }
    }
    let end = step * steps as u32;
    for p in peers.iter_mut() {
        if p.joined && !p.unchoked {
            let waited = end.saturating_sub(p.choke_changed_at);
            p.result.longest_wait = p.result.longest_wait.max(waited);
        }
        report.peers.push(p.result);
    }
    Ok(report)
}

/// A reciprocating peer unchokes us while we gave it something within the
/// window, or while we are in its optimistic slot.
fn peer_unchokes_us(p: &PeerState, now: Duration, window_steps: usize) -> bool {
    p.spec.reciprocates
        && (now < p.optimistic_until || p.to_ring.iter().take(window_steps).any(|&b| b > 0))
}
