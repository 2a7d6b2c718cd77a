//! Peer wire codec: decoding a mixed stream of 1,000 messages (mostly 16 KiB
//! piece messages and requests), encoding 1,000 requests, and building the
//! 13-byte piece header.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringseed::wire::{encode, piece_header, Limits, Message, MessageDecoder};

const MESSAGES: u32 = 1_000;
const BLOCK_BYTES: u32 = 16 * 1024;

/// 1,000 messages: per 10, six piece messages, three requests and a have.
fn mixed_stream(block: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..MESSAGES {
        let msg = match i % 10 {
            0..=5 => Message::Piece {
                piece: i / 16,
                offset: (i % 16) * BLOCK_BYTES,
                block,
            },
            6..=8 => Message::Request {
                piece: i / 16,
                offset: (i % 16) * BLOCK_BYTES,
                length: BLOCK_BYTES,
            },
            _ => Message::Have { piece: i },
        };
        encode(&msg, &mut out);
    }
    out
}

fn bench(c: &mut Criterion) {
    let block = vec![0x5au8; BLOCK_BYTES as usize];
    let stream = mixed_stream(&block);

    let mut g = c.benchmark_group("wire");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));

    g.throughput(Throughput::Elements(u64::from(MESSAGES)));
    g.bench_function("decode_1000_mixed", |b| {
        b.iter(|| {
            let mut d = MessageDecoder::new(Limits::for_pieces(100_000));
            let buf = black_box(&stream[..]);
            let (mut at, mut count) = (0, 0u32);
            while let Ok(Some((msg, n))) = d.decode(buf.get(at..).unwrap_or_default()) {
                black_box(msg);
                at += n;
                count += 1;
            }
            assert_eq!(count, MESSAGES);
        })
    });

    g.bench_function("encode_1000_requests", |b| {
        let mut out = Vec::with_capacity(17 * MESSAGES as usize);
        b.iter(|| {
            out.clear();
            for i in 0..MESSAGES {
                let msg = Message::Request {
                    piece: black_box(i),
                    offset: 0,
                    length: BLOCK_BYTES,
                };
                encode(&msg, &mut out);
            }
            black_box(out.len())
        })
    });

    g.throughput(Throughput::Elements(1));
    g.bench_function("piece_header", |b| {
        b.iter(|| piece_header(black_box(7), black_box(16384), black_box(BLOCK_BYTES)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
