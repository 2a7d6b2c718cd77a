//! Fuzz target: the MSE handshake machines (`mse::Initiator`,
//! `mse::Responder`) fed arbitrary bytes must never panic, must end in a
//! typed error or a consistent outcome, and never buffer or send more than
//! the handshake allows. Three modes (first byte): a responder fed the input
//! as the initiator's stream, an initiator fed it as the responder's stream,
//! and a real pair whose A→B stream is corrupted at offsets the input names
//! (reaching the states behind the Diffie-Hellman exchange), delivered in
//! chunks the input sizes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringseed::mse::{
    req2_hash, CryptoSet, Initiator, InitiatorConfig, PrivateKey, Progress, Responder,
    ResponderConfig, PAD_BYTES_MAX, PUBLIC_KEY_BYTES,
};
use ringseed::InfoHash;

const IH: InfoHash = InfoHash([0x42; 20]);
/// Most bytes one side may send during the handshake: key, pad, hashes,
/// header, pad, a `u16` initial payload.
const SENT_MAX: usize = PUBLIC_KEY_BYTES + 2 * PAD_BYTES_MAX + 40 + 16 + 65_535;

fn lookup(req2: &[u8; 20]) -> Option<InfoHash> {
    (req2_hash(&IH) == *req2).then_some(IH)
}

type Lookup = fn(&[u8; 20]) -> Option<InfoHash>;

fn set(b: u8) -> CryptoSet {
    [CryptoSet::PLAINTEXT, CryptoSet::RC4, CryptoSet::BOTH][usize::from(b % 3)]
}

fn pair(p: &[u8; 6]) -> (Initiator, Responder<Lookup>) {
    let a = Initiator::new(InitiatorConfig {
        info_hash: IH,
        private_key: PrivateKey([p[0] | 1; 20]),
        pad: vec![0x11; usize::from(p[1]) * 2],
        encrypted_pad_len: usize::from(p[2]) * 2,
        provide: set(p[3]),
        initial_payload: vec![0x13; usize::from(p[4] % 70)],
    })
    .expect("valid config");
    let b = Responder::new(
        ResponderConfig {
            private_key: PrivateKey([p[5] | 2; 20]),
            pad: vec![0x22; usize::from(p[1])],
            encrypted_pad_len: usize::from(p[2]),
            allowed: set(p[3] / 3),
        },
        lookup as Lookup,
    )
    .expect("valid config");
    (a, b)
}

/// Feeds `data` in chunks of 1 + `chunk` bytes until the machine ends.
fn feed(
    mut recv: impl FnMut(&[u8]) -> Result<Progress, ringseed::mse::MseError>,
    data: &[u8],
    chunk: u8,
) {
    for piece in data.chunks(1 + usize::from(chunk)) {
        match recv(piece) {
            Ok(Progress::Pending) => {}
            Ok(Progress::Done) | Err(_) => return,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, chunk, p0, p1, p2, p3, p4, p5, rest @ ..] = data else {
        return;
    };
    let params = [*p0, *p1, *p2, *p3, *p4, *p5];
    let (mut a, mut b) = pair(&params);
    match mode % 3 {
        0 => {
            feed(|d| b.receive(d), rest, *chunk);
            assert!(b.take_outgoing().len() <= SENT_MAX);
        }
        1 => {
            a.take_outgoing();
            feed(|d| a.receive(d), rest, *chunk);
            assert!(a.take_outgoing().len() <= SENT_MAX);
        }
        _ => {
            // rest: pairs (offset / 4, xor) applied to A's stream.
            let mut a_to_b = a.take_outgoing();
            let r1 = b.receive(&a_to_b);
            let b_to_a = b.take_outgoing();
            let r2 = a.receive(&b_to_a);
            if r1.is_err() || r2.is_err() {
                return;
            }
            a_to_b = a.take_outgoing();
            let mutated = !rest.is_empty();
            for m in rest.chunks_exact(2) {
                let at = usize::from(m[0]) * 4;
                if let Some(byte) = a_to_b.get_mut(at) {
                    *byte ^= m[1];
                }
            }
            let mut done = false;
            feed(
                |d| {
                    let r = b.receive(d);
                    done = r == Ok(Progress::Done);
                    r
                },
                &a_to_b,
                *chunk,
            );
            if !done {
                let common = set(params[3]).intersect(set(params[3] / 3));
                assert!(mutated || common.0 == 0, "an intact handshake must finish");
                return;
            }
            let reply = b.take_outgoing();
            let eb = b.established().expect("done");
            if a.receive(&reply) == Ok(Progress::Done) {
                let ea = a.established().expect("done");
                assert_eq!(ea.method, eb.method);
                assert_eq!(eb.info_hash, IH);
            } else {
                assert!(mutated);
            }
        }
    }
});
