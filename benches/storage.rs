//! Storage span mapping: what `Layout::block_spans` / `piece_spans` cost
//! for one 16 KiB block, a 64 KiB run and a whole piece, in a single-file
//! torrent and in a 200-file torrent mixing small and large files (so
//! blocks and pieces cross file boundaries).
//!
//! Each bench walks a fixed set of positions spread over the torrent, so
//! the figure is an average over the files, not one lucky spot.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use ringseed::storage::{FileExtent, Layout};

/// 1 MiB pieces.
const PIECE_LENGTH: u64 = 1 << 20;
/// One 16 KiB block.
const BLOCK_BYTES: u64 = 16 * 1024;
/// A 64 KiB run of blocks.
const RUN_BYTES: u64 = 64 * 1024;
/// Files of the multi-file torrent.
const FILES: usize = 200;
/// Positions visited per measured call.
const POSITIONS: usize = 64;

/// One 4 GiB file.
fn single_file() -> Layout {
    let files = [FileExtent {
        length: 4 << 30,
        pad: false,
    }];
    Layout::new(PIECE_LENGTH, &files).expect("single-file layout")
}

/// 200 files: every fourth a large one (40 MiB + a few bytes, so files do
/// not line up with pieces), the others small (3 KiB to 300 KiB).
fn many_files() -> Layout {
    let files: Vec<FileExtent> = (0..FILES as u64)
        .map(|i| FileExtent {
            length: if i % 4 == 0 {
                (40 << 20) + 4093 * i
            } else {
                3 * 1024 + (i * 7919) % (300 * 1024)
            },
            pad: false,
        })
        .collect();
    Layout::new(PIECE_LENGTH, &files).expect("multi-file layout")
}

/// `(piece, offset)` positions spread over the torrent for a range of
/// `length` bytes that always fits in its piece.
fn positions(layout: &Layout, length: u64) -> Vec<(u32, u64)> {
    let pieces = layout.num_pieces().saturating_sub(1).max(1);
    (0..POSITIONS as u32)
        .map(|i| {
            let piece = (u64::from(i) * 7_919 % u64::from(pieces)) as u32;
            let slots = (PIECE_LENGTH / length).max(1);
            let offset = (u64::from(i) % slots) * length;
            (piece, offset)
        })
        .collect()
}

fn bench_layout(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    l: &Layout,
) {
    for (what, length) in [("block_16k", BLOCK_BYTES), ("run_64k", RUN_BYTES)] {
        let at = positions(l, length);
        g.bench_function(format!("{name}/{what}"), |b| {
            b.iter(|| {
                let mut n = 0usize;
                for &(piece, offset) in &at {
                    let spans = l
                        .block_spans(black_box(piece), black_box(offset), length)
                        .expect("in range");
                    for s in spans {
                        n += black_box(s).length as usize;
                    }
                }
                n
            })
        });
    }
    let at = positions(l, PIECE_LENGTH);
    g.bench_function(format!("{name}/piece_1m"), |b| {
        b.iter(|| {
            let mut n = 0usize;
            for &(piece, _) in &at {
                for s in l.piece_spans(black_box(piece)) {
                    n += black_box(s).length as usize;
                }
            }
            n
        })
    });
}

fn bench_spans(c: &mut Criterion) {
    let mut g = c.benchmark_group(format!("storage_spans_x{POSITIONS}"));
    g.measurement_time(Duration::from_secs(2));
    g.warm_up_time(Duration::from_millis(500));
    g.sample_size(30);
    bench_layout(&mut g, "single_file", &single_file());
    bench_layout(&mut g, "files_200", &many_files());
    g.finish();
}

criterion_group!(benches, bench_spans);
criterion_main!(benches);
