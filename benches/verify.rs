//! Throughput of the io_uring piece-hashing pipeline behind `ringseed verify`
//! and `create`, on a file in the page cache: chunk sizes, read-ahead depth
//! and 1 or 3 interleaved lanes on one thread, and the defaults on all
//! threads; plus the interleaved hashing alone, in memory, for 1 to 4 streams.
//!
//! Run: `cargo bench --bench verify`. The file is 512 MiB by default
//! (`RINGSEED_BENCH_MIB` sets another size), written to a temp dir and read
//! once to warm the cache. The 4 GiB end-to-end figure in docs/benchmarks.md
//! ("ringseed verify") comes from the CLI, not from this bench.

use std::io::Write;
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use ringseed::hash::update_interleaved;
use ringseed::hash::Sha1Hasher;
use ringseed::runtime::{hash_pieces, DiskFile, HashOptions};

const MIB: usize = 1024 * 1024;
/// Piece length used throughout (what `create` picks for 2-24 GiB).
const PIECE_BYTES: u64 = 4 * MIB as u64;

fn bench_file() -> (tempfile::TempDir, DiskFile) {
    let mib: usize = std::env::var("RINGSEED_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let path = dir.path().join("bench.bin");
    let mut f = std::fs::File::create(&path).unwrap_or_else(|e| panic!("create: {e}"));
    let mut block = vec![0u8; MIB];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..mib {
        for b in block.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        f.write_all(&block).unwrap_or_else(|e| panic!("write: {e}"));
    }
    drop(f);
    // Warm the page cache.
    let _ = std::fs::read(&path).map(|d| d.len());
    let file = DiskFile {
        path: Some(path),
        length: (mib * MIB) as u64,
    };
    (dir, file)
}

fn run(files: &[DiskFile], o: &HashOptions) -> u64 {
    let mut n = 0u64;
    hash_pieces(files, PIECE_BYTES, o, |r| {
        if r.hash.is_ok() {
            n += 1;
        }
    })
    .unwrap_or_else(|e| panic!("hash_pieces: {e}"));
    n
}

fn pipeline(c: &mut Criterion) {
    let (_dir, file) = bench_file();
    let files = [file];
    let mut group = c.benchmark_group("verify_pipeline");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Bytes(files[0].length));
    for chunk in [256 * 1024, MIB, 4 * MIB] {
        for depth in [2, 3, 8] {
            for lanes in [1, 3] {
                let o = HashOptions {
                    threads: 1,
                    chunk_bytes: chunk,
                    depth,
                    lanes,
                };
                let name = format!("{}KiB_d{depth}_l{lanes}", chunk / 1024);
                let id = BenchmarkId::new("1thread", name);
                group.bench_with_input(id, &o, |b, o| b.iter(|| run(&files, o)));
            }
        }
    }
    let all = HashOptions::default();
    let id = BenchmarkId::new("all_threads", format!("{}", all.threads));
    group.bench_with_input(id, &all, |b, o| b.iter(|| run(&files, o)));
    group.finish();
}

/// The interleaving alone, in memory: 1 to 4 streams of 1 MiB each.
fn interleave(c: &mut Criterion) {
    let bufs: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; MIB]).collect();
    let mut group = c.benchmark_group("interleave");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for streams in 1..=4usize {
        group.throughput(Throughput::Bytes((streams * MIB) as u64));
        group.bench_with_input(BenchmarkId::from_parameter(streams), &streams, |b, &n| {
            b.iter(|| {
                let mut hashers: Vec<Sha1Hasher> = (0..n).map(|_| Sha1Hasher::new()).collect();
                let mut jobs: Vec<(&mut Sha1Hasher, &[u8])> = hashers
                    .iter_mut()
                    .zip(&bufs)
                    .map(|(h, d)| (h, d.as_slice()))
                    .collect();
                update_interleaved(&mut jobs);
                drop(jobs);
                hashers
                    .into_iter()
                    .map(Sha1Hasher::finish)
                    .collect::<Vec<_>>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, interleave, pipeline);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
