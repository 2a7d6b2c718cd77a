//! SHA-1 throughput: the `sha1` crate (SHA-NI when present, used by
//! `ringseed::hash`) against the pure-software `sha1_smol`, at piece-like
//! sizes; and `hash_batch` over 64 pieces of 1 MiB on one thread vs all.
//!
//! Run: `cargo bench --bench sha1`. Results are recorded in docs/benchmarks.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use ringseed::hash;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Deterministic, non-trivial test data.
fn data(len: usize) -> Vec<u8> {
    ringseed::rng::Rng::new(0x1234_5678).bytes(len)
}

fn label(size: usize) -> String {
    if size >= MIB {
        format!("{}MiB", size / MIB)
    } else {
        format!("{}KiB", size / KIB)
    }
}

fn single(c: &mut Criterion) {
    let mut group = c.benchmark_group("sha1_single");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(20);
    for size in [16 * KIB, 256 * KIB, MIB, 4 * MIB] {
        let buf = data(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("sha1", label(size)), &buf, |b, buf| {
            b.iter(|| hash::sha1(black_box(buf)))
        });
        group.bench_with_input(
            BenchmarkId::new("sha1_smol", label(size)),
            &buf,
            |b, buf| b.iter(|| sha1_smol::Sha1::from(black_box(buf)).digest().bytes()),
        );
    }
    group.finish();
}

fn batch(c: &mut Criterion) {
    const BLOCKS: usize = 64;
    let owned: Vec<Vec<u8>> = (0..BLOCKS)
        .map(|i| {
            let mut d = data(MIB);
            d[0] = i as u8;
            d
        })
        .collect();
    let blocks: Vec<&[u8]> = owned.iter().map(|b| b.as_slice()).collect();
    let all = ringseed::runtime::available_threads();

    let mut group = c.benchmark_group("hash_batch_64x1MiB");
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(10);
    group.throughput(Throughput::Bytes((BLOCKS * MIB) as u64));
    let mut counts = vec![1];
    if all > 1 {
        counts.push(all);
    }
    for threads in counts {
        group.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, &t| {
            b.iter(|| ringseed::runtime::hash_batch::hash_batch(black_box(&blocks), t))
        });
    }
    group.finish();
}

criterion_group!(benches, single, batch);

fn main() {
    eprintln!(
        "sha_ni_available={} available_threads={}",
        hash::sha_ni_available(),
        ringseed::runtime::available_threads()
    );
    benches();
    Criterion::default().configure_from_args().final_summary();
}
