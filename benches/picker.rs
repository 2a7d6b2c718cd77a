//! Piece picker: rarest-first picks in a 100,000-piece torrent with 200
//! connected peers, and availability churn (peers joining and leaving).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ringseed::torrent::{Bitfield, Geometry, PeerKey, PiecePicker, Rng};

const PIECES: usize = 100_000;
const PEERS: usize = 200;
const REQUESTS_PER_CALL: usize = 64;
/// 256 KiB pieces: 16 blocks each.
const PIECE_LENGTH: u64 = 256 * 1024;

fn random_bitfield(rng: &mut Rng, percent: u64) -> Bitfield {
    let mut b = Bitfield::new(PIECES).expect("bitfield");
    for i in 0..PIECES {
        if rng.below(100) < percent {
            b.set(i).expect("in range");
        }
    }
    b
}

/// A picker with `PEERS` registered peers of random bitfields (about half the
/// pieces each), every peer already holding `REQUESTS_PER_CALL` requests.
fn loaded_picker(rng: &mut Rng) -> (PiecePicker, Vec<Bitfield>) {
    let g = Geometry::new(PIECES as u64 * PIECE_LENGTH, PIECE_LENGTH).expect("geometry");
    let mut p = PiecePicker::new(g, rng).expect("picker");
    let peers: Vec<Bitfield> = (0..PEERS).map(|_| random_bitfield(rng, 50)).collect();
    for b in &peers {
        p.peer_bitfield(b).expect("register");
    }
    let mut out = Vec::new();
    for (i, b) in peers.iter().enumerate() {
        out.clear();
        p.pick_blocks(PeerKey(i as u32), b, REQUESTS_PER_CALL, &mut out, rng)
            .expect("pick");
    }
    (p, peers)
}

/// Times one `pick_blocks` of 64 per iteration, cycling through `peers`; the
/// picks are cancelled afterwards (untimed) so every iteration sees the same load.
fn time_picks(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    p: &mut PiecePicker,
    rng: &mut Rng,
    peers: &[(PeerKey, &Bitfield)],
) {
    g.bench_function(name, |b| {
        let mut out = Vec::with_capacity(REQUESTS_PER_CALL);
        let mut turn = 0usize;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (key, has) = peers[turn % peers.len()];
                turn = turn.wrapping_add(1);
                out.clear();
                let start = Instant::now();
                let n = p
                    .pick_blocks(key, has, REQUESTS_PER_CALL, &mut out, rng)
                    .expect("pick");
                total += start.elapsed();
                black_box(n);
                for r in &out {
                    p.request_cancelled(key, r).expect("cancel");
                }
            }
            total
        })
    });
}

fn bench_pick(c: &mut Criterion) {
    let mut rng = Rng::new(0xB0B);
    let (mut p, peers) = loaded_picker(&mut rng);
    let sparse = random_bitfield(&mut rng, 2);
    p.peer_bitfield(&sparse).expect("register sparse");
    let half: Vec<(PeerKey, &Bitfield)> = peers
        .iter()
        .enumerate()
        .map(|(i, b)| (PeerKey(i as u32), b))
        .collect();
    let mut g = c.benchmark_group("picker_100000_pieces_200_peers");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    time_picks(&mut g, "pick_blocks_64_half_peer", &mut p, &mut rng, &half);
    time_picks(
        &mut g,
        "pick_blocks_64_sparse_peer_2pct",
        &mut p,
        &mut rng,
        &[(PeerKey(PEERS as u32), &sparse)],
    );
    g.finish();
}

/// Availability churn: a half-full peer joining and leaving (O(set bits)),
/// a seed joining and leaving (O(1)), and single `have` messages.
fn bench_churn(c: &mut Criterion) {
    let mut rng = Rng::new(0xC0FFEE);
    let (mut p, _peers) = loaded_picker(&mut rng);
    let newcomer = random_bitfield(&mut rng, 50);
    let full = Bitfield::full(PIECES).expect("full");
    let mut g = c.benchmark_group("picker_churn_100000_pieces");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    g.bench_function("peer_bitfield_then_peer_lost_half", |b| {
        b.iter(|| {
            p.peer_bitfield(black_box(&newcomer)).expect("join");
            p.peer_lost(black_box(&newcomer)).expect("leave");
        })
    });
    g.bench_function("seed_join_then_leave", |b| {
        b.iter(|| {
            p.peer_has_all().expect("join");
            p.peer_lost(black_box(&full)).expect("leave");
        })
    });
    // One `have` per iteration from a peer that started empty; the peer is
    // dropped and replaced (untimed) before it would become a seed.
    g.bench_function("peer_has_single", |b| {
        let mut bits = Bitfield::new(PIECES).expect("bitfield");
        let mut next = 0usize;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                if next + 1 >= PIECES {
                    p.peer_lost(&bits).expect("reset");
                    bits.clear_all();
                    next = 0;
                }
                let piece = (next * 7919) % PIECES;
                next += 1;
                bits.set(piece).expect("in range");
                let start = Instant::now();
                p.peer_has(piece as u32, black_box(&bits)).expect("have");
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench_pick, bench_churn);
criterion_main!(benches);
