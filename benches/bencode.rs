//! Bencode decode and full metainfo load of a 10,000-piece torrent.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringseed::bencode;
use ringseed::metainfo::{Metainfo, NewFile, TorrentBuilder};

/// A multi-file torrent of 10,000 pieces over 200 files, built in memory.
fn ten_thousand_pieces() -> Vec<u8> {
    let piece_length = 256 * 1024u64;
    let files: Vec<NewFile> = (0..200)
        .map(|i| NewFile {
            path: vec![format!("dir{}", i % 10), format!("file{i:03}.bin")],
            length: 10_000 * piece_length / 200,
        })
        .collect();
    let b = TorrentBuilder {
        name: "bench".into(),
        files,
        single_file: false,
        piece_length,
        trackers: vec![vec!["http://127.0.0.1:6969/announce".into()]],
        ..Default::default()
    };
    let pieces: Vec<[u8; 20]> = (0..10_000u32)
        .map(|i| {
            let mut h = [0u8; 20];
            h[..4].copy_from_slice(&i.to_le_bytes());
            h
        })
        .collect();
    b.build(&pieces).expect("bench torrent builds")
}

fn bench(c: &mut Criterion) {
    let torrent = ten_thousand_pieces();
    let mut g = c.benchmark_group("torrent_10000_pieces");
    g.throughput(Throughput::Bytes(torrent.len() as u64));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("bencode_decode", |b| {
        b.iter(|| bencode::decode(black_box(&torrent)).expect("decodes"))
    });
    g.bench_function("metainfo_load", |b| {
        b.iter(|| Metainfo::from_bytes(black_box(&torrent)).expect("loads"))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
