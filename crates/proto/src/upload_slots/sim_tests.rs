//! The done-when claims, as simulations with fixed seeds (the
//! seed is printed with the figures; run with `--nocapture` to see them).

use std::time::Duration;

use super::settings::{SeedChoking, SlotLimit, SlotSettings};
use super::sim::{run, PeerSpec, SimConfig, SimReport};
use crate::rng::Rng;

const S: fn(u64) -> Duration = Duration::from_secs;
const KIB: u64 = 1024;

fn config(seed: u64, seeding: bool, settings: SlotSettings, upload: u64) -> SimConfig {
    SimConfig {
        seed,
        settings,
        seeding,
        upload,
        step: S(2),
        duration: S(30 * 60),
        piece_length: 256 * KIB,
        pieces_total: 1000,
    }
}

fn run_ok(cfg: &SimConfig, specs: &[PeerSpec]) -> SimReport {
    match run(cfg, specs) {
        Ok(r) => r,
        Err(e) => panic!("settings refused: {e}"),
    }
}

/// A capacity between `min` and `max` bytes per second, log-uniform.
fn capacity(rng: &mut Rng, min: u64, max: u64) -> u64 {
    let f = rng.below(1 << 20) as f64 / f64::from(1 << 20);
    ((min as f64).ln() + f * ((max as f64).ln() - (min as f64).ln())).exp() as u64
}

fn seeding_with(choking: SeedChoking, slots: SlotLimit) -> SlotSettings {
    SlotSettings {
        slots,
        seed_choking: choking,
        ..SlotSettings::default()
    }
}

#[test]
fn sim_tit_for_tat_reciprocators_get_3x_free_riders() {
    let seed = 1;
    let mut rng = Rng::new(seed);
    // 150 pairs: a reciprocating peer and a free-rider of the same
    // capacities.
    let mut specs = Vec::new();
    for _ in 0..150 {
        let cap = capacity(&mut rng, 20 * KIB, 2048 * KIB);
        for reciprocates in [true, false] {
            specs.push(PeerSpec {
                up: cap,
                down: cap,
                reciprocates,
                joins_at: Duration::ZERO,
                pieces_have: 500,
            });
        }
    }
    let cfg = config(seed, false, SlotSettings::default(), 1024 * KIB);
    let r = run_ok(&cfg, &specs);
    let sum = |want: bool| -> u64 {
        specs
            .iter()
            .zip(&r.peers)
            .filter(|(s, _)| s.reciprocates == want)
            .map(|(_, p)| p.received)
            .sum()
    };
    let (recip, free) = (sum(true), sum(false));
    let ratio = recip as f64 / free.max(1) as f64;
    println!(
        "seed {seed}: reciprocators got {recip} B, free-riders {free} B \
         (150 each, equal capacities): ratio {ratio:.1}"
    );
    assert!(ratio >= 3.0, "ratio {ratio:.2}");
}

#[test]
fn sim_fastest_upload_within_5_percent_of_unchoke_all() {
    let seed = 2;
    let mut rng = Rng::new(seed);
    let specs: Vec<_> = (0..300)
        .map(|_| PeerSpec {
            up: 0,
            down: capacity(&mut rng, 20 * KIB, 2048 * KIB),
            reciprocates: false,
            joins_at: Duration::ZERO,
            pieces_have: 0,
        })
        .collect();
    let upload = 4096 * KIB;
    let all = run_ok(
        &config(
            seed,
            true,
            seeding_with(SeedChoking::FastestUpload, SlotLimit::Unlimited),
            upload,
        ),
        &specs,
    );
    let four = run_ok(
        &config(
            seed,
            true,
            seeding_with(SeedChoking::FastestUpload, SlotLimit::Fixed(4)),
            upload,
        ),
        &specs,
    );
    let share = four.uploaded as f64 / all.uploaded as f64;
    println!(
        "seed {seed}: 300 peers, 4 MiB/s link, 30 min: fastest-upload (4 slots) {} B, \
         unchoke-all {} B: {:.1} %",
        four.uploaded,
        all.uploaded,
        share * 100.0
    );
    assert!(
        share >= 0.95,
        "fastest-upload reached {share:.3} of unchoke-all"
    );
}

#[test]
fn sim_round_robin_every_interested_peer_gets_a_turn_in_bounded_time() {
    let seed = 3;
    let mut rng = Rng::new(seed);
    let n = 100u64;
    let specs: Vec<_> = (0..n)
        .map(|_| PeerSpec {
            up: 0,
            // Some fast, some so slow they never take the piece quota.
            down: capacity(&mut rng, 2 * KIB, 2048 * KIB),
            reciprocates: false,
            joins_at: Duration::ZERO,
            pieces_have: 0,
        })
        .collect();
    let settings = seeding_with(SeedChoking::RoundRobin, SlotLimit::Fixed(4));
    // Each of the 4 regular slots frees at the latest after the longest
    // turn plus one rechoke; a waiting peer has at most n - 1 ahead.
    let turn = settings.round_robin_turn_max + settings.rechoke_interval;
    let bound = turn * (n as u32).div_ceil(4);
    let mut cfg = config(seed, true, settings, 1024 * KIB);
    cfg.duration = S(4 * 3600);
    let r = run_ok(&cfg, &specs);
    let worst = r
        .peers
        .iter()
        .map(|p| p.longest_wait)
        .max()
        .unwrap_or_default();
    let first = r
        .peers
        .iter()
        .map(|p| p.first_unchoke.unwrap_or(Duration::MAX))
        .max()
        .unwrap_or_default();
    println!(
        "seed {seed}: {n} peers, 4 slots, 4 h: every peer unchoked; last first unchoke \
         after {first:?}, longest wait {worst:?} (bound {bound:?})"
    );
    assert!(first <= bound, "first unchoke after {first:?}");
    assert!(worst <= bound, "longest wait {worst:?} > {bound:?}");
    // Fastest-upload, by contrast, leaves some peers waiting for hours.
    let mut fastest = cfg.clone();
    fastest.settings.seed_choking = SeedChoking::FastestUpload;
    let f = run_ok(&fastest, &specs);
    let f_worst = f
        .peers
        .iter()
        .map(|p| p.longest_wait)
        .max()
        .unwrap_or_default();
    println!("seed {seed}: fastest-upload's longest wait {f_worst:?}");
    assert!(f_worst > worst);
}

#[test]
fn sim_optimistic_unchokes_reach_every_newcomer() {
    let seed = 4;
    let mut rng = Rng::new(seed);
    // 60 established fast peers hold the regular slots; 30 slow newcomers
    // join one every 2 minutes and can only get in optimistically.
    let mut specs: Vec<_> = (0..60)
        .map(|_| PeerSpec {
            up: 0,
            down: capacity(&mut rng, 512 * KIB, 4096 * KIB),
            reciprocates: false,
            joins_at: Duration::ZERO,
            pieces_have: 500,
        })
        .collect();
    for k in 0..30u64 {
        specs.push(PeerSpec {
            up: 0,
            down: 4 * KIB,
            reciprocates: false,
            joins_at: S(600 + k * 120),
            pieces_have: 0,
        });
    }
    let mut cfg = config(
        seed,
        true,
        seeding_with(SeedChoking::FastestUpload, SlotLimit::Fixed(4)),
        2048 * KIB,
    );
    cfg.duration = S(6 * 3600);
    let mean_first = |r: &SimReport| -> (Duration, Duration, usize) {
        let waits: Vec<_> = r.peers[60..]
            .iter()
            .filter_map(|p| p.first_unchoke)
            .collect();
        let sum: Duration = waits.iter().sum();
        let worst = waits.iter().max().copied().unwrap_or_default();
        (sum / waits.len().max(1) as u32, worst, waits.len())
    };
    let r = run_ok(&cfg, &specs);
    let (mean, worst, reached) = mean_first(&r);
    println!(
        "seed {seed}: newcomer weight 3: {reached}/30 newcomers unchoked, mean first \
         unchoke after {mean:?}, last after {worst:?}"
    );
    assert_eq!(reached, 30);
    for p in &r.peers[60..] {
        assert!(p.received > 0, "a newcomer got its first bytes");
    }
    // Without the newcomer weight they wait longer on average.
    let mut flat = cfg.clone();
    flat.settings.newcomer_weight = 1;
    let (flat_mean, _, _) = mean_first(&run_ok(&flat, &specs));
    println!("seed {seed}: newcomer weight 1: mean first unchoke after {flat_mean:?}");
    assert!(mean < flat_mean);
}

#[test]
fn sim_rate_based_count_fills_a_fast_link_of_slow_peers() {
    let seed = 5;
    let mut rng = Rng::new(seed);
    let specs: Vec<_> = (0..300)
        .map(|_| PeerSpec {
            up: 0,
            down: capacity(&mut rng, 50 * KIB, 400 * KIB),
            reciprocates: false,
            joins_at: Duration::ZERO,
            pieces_have: 0,
        })
        .collect();
    let upload = 8192 * KIB;
    let fixed = run_ok(
        &config(
            seed,
            true,
            seeding_with(SeedChoking::FastestUpload, SlotLimit::Fixed(4)),
            upload,
        ),
        &specs,
    );
    let rate = run_ok(
        &config(
            seed,
            true,
            seeding_with(SeedChoking::FastestUpload, SlotLimit::RateBased),
            upload,
        ),
        &specs,
    );
    let all = run_ok(
        &config(
            seed,
            true,
            seeding_with(SeedChoking::FastestUpload, SlotLimit::Unlimited),
            upload,
        ),
        &specs,
    );
    println!(
        "seed {seed}: 300 slow peers, 8 MiB/s link: 4 slots {} B, rate-based {} B, \
         unchoke-all {} B",
        fixed.uploaded, rate.uploaded, all.uploaded
    );
    assert!(rate.uploaded > fixed.uploaded * 3);
}

#[test]
fn sim_anti_leech_serves_starters_and_finishers_first() {
    let seed = 6;
    let specs: Vec<_> = (0..=100u32)
        .map(|i| PeerSpec {
            up: 0,
            down: 1024 * KIB,
            reciprocates: false,
            joins_at: Duration::ZERO,
            pieces_have: i * 10,
        })
        .collect();
    let r = run_ok(
        &config(
            seed,
            true,
            seeding_with(SeedChoking::AntiLeech, SlotLimit::Fixed(4)),
            1024 * KIB,
        ),
        &specs,
    );
    let got =
        |range: std::ops::Range<usize>| -> u64 { r.peers[range].iter().map(|p| p.received).sum() };
    let (ends, middle) = (got(0..10) + got(91..101), got(40..61));
    println!("seed {seed}: anti-leech: ends {ends} B, middle {middle} B");
    assert!(ends > middle * 3);
}
