//! The upload-slot allocator: one rechoke round (rank, select the regular
//! slots, keep or draw the optimistic ones) over 10,000 and 100,000
//! candidates, seeding (fastest-upload, round-robin) and downloading
//! (tit-for-tat). A counting global allocator checks that the measured
//! loop allocates nothing once the allocator's scratch is warm; the count
//! is printed and asserted for every benchmark.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringseed::rng::Rng;
use ringseed::upload_slots::{Round, SeedChoking, SlotCandidate, SlotSettings, UploadSlots};

/// Counts every allocation and reallocation made by the process.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only a
// counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// `n` connected peers: 3 in 4 interested, rates up to 1 MiB/s, a few
/// snubbed, a few unchoked, ages up to an hour.
fn candidates(n: usize, seed: u64) -> Vec<SlotCandidate> {
    let mut rng = Rng::new(seed);
    (0..n as u64)
        .map(|peer| {
            let connected_at = Duration::from_secs(rng.below(3600));
            let unchoked = rng.below(100) < 5;
            SlotCandidate {
                peer,
                interested: rng.below(4) != 0,
                rate_from_peer: rng.below(1 << 20),
                rate_to_peer: rng.below(1 << 20),
                waiting_since: (rng.below(10) == 0).then(|| Duration::from_secs(rng.below(3600))),
                unchoked,
                choke_changed_at: connected_at + Duration::from_secs(rng.below(600)),
                bytes_sent_since_unchoke: if unchoked { rng.below(1 << 24) } else { 0 },
                pieces_have: rng.below(1000) as u32,
                priority: 0,
                connected_at,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("upload_slots_rechoke");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));
    let cases = [
        ("fastest_upload", true, SeedChoking::FastestUpload),
        ("round_robin", true, SeedChoking::RoundRobin),
        ("tit_for_tat", false, SeedChoking::FastestUpload),
    ];
    for n in [10_000usize, 100_000] {
        let cands = candidates(n, n as u64);
        g.throughput(Throughput::Elements(n as u64));
        for (name, seeding, seed_choking) in cases {
            let settings = SlotSettings {
                seed_choking,
                ..SlotSettings::default()
            };
            let mut slots = UploadSlots::new(settings, 1).expect("default settings are valid");
            let mut unchoked = Vec::with_capacity(64);
            let mut now = Duration::from_secs(3600);
            // Warm the scratch: the first round sizes it.
            let round = |now| Round::new(now, seeding, 256 * 1024, 1000);
            slots.rechoke(&round(now), &cands, &mut unchoked);
            let mut rounds = 0u64;
            let mut allocations = 0u64;
            g.bench_function(format!("{name}/{n}"), |b| {
                b.iter_custom(|iters| {
                    let before = ALLOCATIONS.load(Ordering::Relaxed);
                    let start = Instant::now();
                    for _ in 0..iters {
                        // 10 s per round: every third one redraws the
                        // optimistic slot.
                        now += Duration::from_secs(10);
                        slots.rechoke(&round(now), black_box(&cands), &mut unchoked);
                        black_box(&unchoked);
                    }
                    let took = start.elapsed();
                    allocations += ALLOCATIONS.load(Ordering::Relaxed) - before;
                    rounds += iters;
                    took
                })
            });
            println!("{name}/{n}: {allocations} allocations in {rounds} measured rounds");
            assert_eq!(allocations, 0, "{name}/{n} allocated in the measured loop");
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
