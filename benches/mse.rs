//! Protocol encryption's costs: one whole MSE handshake (both sides, four
//! 768-bit modular exponentiations), and RC4 applied in place to a 64 KiB
//! buffer (the shard's send and receive unit), whose throughput gives the
//! cipher's CPU-seconds per GB of an RC4 peer.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringseed::mse::{
    dh, req2_hash, CryptoSet, Initiator, InitiatorConfig, PrivateKey, Progress, Responder,
    ResponderConfig,
};
use ringseed::InfoHash;

const BUFFER_BYTES: usize = 64 * 1024;

fn handshake(ih: InfoHash, k: u8) {
    let lookup = move |r: &[u8; 20]| (req2_hash(&ih) == *r).then_some(ih);
    let mut a = Initiator::new(InitiatorConfig {
        info_hash: ih,
        private_key: PrivateKey([k | 1; 20]),
        pad: vec![1; 100],
        encrypted_pad_len: 0,
        provide: CryptoSet::RC4,
        initial_payload: Vec::new(),
    })
    .unwrap();
    let mut b = Responder::new(
        ResponderConfig {
            private_key: PrivateKey([k | 2; 20]),
            pad: vec![2; 100],
            encrypted_pad_len: 0,
            allowed: CryptoSet::BOTH,
        },
        lookup,
    )
    .unwrap();
    for _ in 0..4 {
        let out = a.take_outgoing();
        if !out.is_empty() {
            let _ = b.receive(&out);
        }
        let back = b.take_outgoing();
        if !back.is_empty() && a.receive(&back) == Ok(Progress::Done) {
            break;
        }
    }
    black_box(a.established().unwrap());
}

fn bench(c: &mut Criterion) {
    let ih = InfoHash([7; 20]);
    let mut g = c.benchmark_group("mse");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("handshake, both sides", |bench| {
        let mut k = 0u8;
        bench.iter(|| {
            k = k.wrapping_add(4);
            handshake(ih, k)
        })
    });
    g.bench_function("public key (one modexp)", |bench| {
        bench.iter(|| dh::public_key(black_box(&PrivateKey([9; 20]))))
    });
    let mut stream = ringseed::mse::Rc4Stream::new_discarded(&[3; 20]);
    let mut buf = vec![0x5au8; BUFFER_BYTES];
    g.throughput(Throughput::Bytes(BUFFER_BYTES as u64));
    g.bench_function("rc4 in place, 64 KiB", |bench| {
        bench.iter(|| stream.apply(black_box(&mut buf)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
