use super::dh::{self, PrivateKey, PRIME};
use super::*;
use crate::rng::Rng;

const IH: InfoHash = InfoHash([0x42; 20]);
const OTHER_IH: InfoHash = InfoHash([0x17; 20]);
const PAYLOAD_A: &[u8] = b"bytes the initiator sends after the handshake";
const PAYLOAD_B: &[u8] = b"bytes the responder sends after the handshake";

fn lookup(req2: &[u8; 20]) -> Option<InfoHash> {
    [IH, OTHER_IH].into_iter().find(|ih| req2_hash(ih) == *req2)
}

type Lookup = fn(&[u8; 20]) -> Option<InfoHash>;

#[derive(Debug, Clone)]
struct Case {
    provide: CryptoSet,
    allowed: CryptoSet,
    pad_a: usize,
    pad_b: usize,
    pad_c: usize,
    pad_d: usize,
    ia: Vec<u8>,
    seed: u64,
}

impl Case {
    fn initiator(&self) -> Initiator {
        let mut rng = Rng::new(self.seed);
        let mut key = [0u8; PRIVATE_KEY_BYTES];
        rng.fill(&mut key);
        Initiator::new(InitiatorConfig {
            info_hash: IH,
            private_key: PrivateKey(key),
            pad: rng.bytes(self.pad_a),
            encrypted_pad_len: self.pad_c,
            provide: self.provide,
            initial_payload: self.ia.clone(),
        })
        .unwrap()
    }
    fn responder_key(&self) -> PrivateKey {
        let mut rng = Rng::new(self.seed ^ 0x5555);
        let mut key = [0u8; PRIVATE_KEY_BYTES];
        rng.fill(&mut key);
        PrivateKey(key)
    }
    fn responder(&self) -> Responder<Lookup> {
        let mut rng = Rng::new(self.seed ^ 0xAAAA);
        Responder::new(
            ResponderConfig {
                private_key: self.responder_key(),
                pad: rng.bytes(self.pad_b),
                encrypted_pad_len: self.pad_d,
                allowed: self.allowed,
            },
            lookup as Lookup,
        )
        .unwrap()
    }
}

/// The full byte streams of one run: A→B (with A's payload appended) and
/// B→A (with B's payload appended), and the two outcomes.
struct Run {
    a_to_b: Vec<u8>,
    b_to_a: Vec<u8>,
    a: Established,
    b: Established,
}

fn seal(e: &mut Established, plain: &[u8]) -> Vec<u8> {
    let mut v = plain.to_vec();
    if let Some(enc) = e.encryptor.as_mut() {
        enc.apply(&mut v);
    }
    v
}

/// Runs a whole handshake in lock step, then appends each side's payload.
fn run(case: &Case) -> Run {
    let mut a = case.initiator();
    let mut b = case.responder();
    let mut a_to_b = a.take_outgoing();
    let mut b_to_a = Vec::new();
    let (mut a_sent, mut b_sent) = (0, 0);
    let (mut a_done, mut b_done) = (false, false);
    for _ in 0..10 {
        if !b_done && a_sent < a_to_b.len() {
            b_done = b.receive(&a_to_b[a_sent..]).unwrap() == Progress::Done;
            a_sent = a_to_b.len();
            b_to_a.extend(b.take_outgoing());
        }
        if !a_done && b_sent < b_to_a.len() {
            a_done = a.receive(&b_to_a[b_sent..]).unwrap() == Progress::Done;
            b_sent = b_to_a.len();
            a_to_b.extend(a.take_outgoing());
        }
    }
    assert!(a_done && b_done, "{case:?}");
    let mut ea = a.established().unwrap();
    let mut eb = b.established().unwrap();
    assert!(ea.remaining.is_empty() && eb.remaining.is_empty());
    a_to_b.extend(seal(&mut ea, PAYLOAD_A));
    b_to_a.extend(seal(&mut eb, PAYLOAD_B));
    Run {
        a_to_b,
        b_to_a,
        a: ea,
        b: eb,
    }
}

fn expected_method(case: &Case) -> Option<CryptoMethod> {
    let common = case.provide.intersect(case.allowed);
    if common.contains(CryptoSet::PLAINTEXT) {
        Some(CryptoMethod::Plaintext)
    } else if common.contains(CryptoSet::RC4) {
        Some(CryptoMethod::Rc4)
    } else {
        None
    }
}

fn check_outcomes(case: &Case, r: &Run) {
    let m = expected_method(case).unwrap();
    assert_eq!(r.a.method, m, "{case:?}");
    assert_eq!(r.b.method, m, "{case:?}");
    assert_eq!(r.a.encryptor.is_some(), m == CryptoMethod::Rc4);
    assert_eq!(r.b.decryptor.is_some(), m == CryptoMethod::Rc4);
    assert_eq!(r.b.info_hash, IH);
    assert_eq!(r.a.info_hash, IH);
    assert_eq!(r.b.initial_payload, case.ia);
    assert!(r.a.initial_payload.is_empty());
}

/// Feeds `stream` to a fresh machine in the pieces `cuts` gives until it is
/// done; returns what it sent, its outcome, and the payload after the
/// handshake (its `remaining` plus the rest of the stream, decrypted).
fn drive<M: Machine>(mut m: M, stream: &[u8], cuts: &[usize]) -> (Vec<u8>, Established, Vec<u8>) {
    let mut sent = m.out();
    let mut at = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        let done = m.feed(&stream[at..cut]).unwrap() == Progress::Done;
        sent.extend(m.out());
        at = cut;
        if done {
            let mut e = m.done().unwrap();
            let mut rest = stream[at..].to_vec();
            if let Some(d) = e.decryptor.as_mut() {
                d.apply(&mut rest);
            }
            let mut payload = e.remaining.clone();
            payload.extend(rest);
            return (sent, e, payload);
        }
    }
    panic!("not done, cuts {cuts:?}");
}

trait Machine {
    fn out(&mut self) -> Vec<u8>;
    fn feed(&mut self, data: &[u8]) -> Result<Progress, MseError>;
    fn done(&mut self) -> Option<Established>;
}

impl Machine for Initiator {
    fn out(&mut self) -> Vec<u8> {
        self.take_outgoing()
    }
    fn feed(&mut self, data: &[u8]) -> Result<Progress, MseError> {
        self.receive(data)
    }
    fn done(&mut self) -> Option<Established> {
        self.established()
    }
}

impl Machine for Responder<Lookup> {
    fn out(&mut self) -> Vec<u8> {
        self.take_outgoing()
    }
    fn feed(&mut self, data: &[u8]) -> Result<Progress, MseError> {
        self.receive(data)
    }
    fn done(&mut self) -> Option<Established> {
        self.established()
    }
}

/// Delivers each direction's stream split at every byte boundary (`step` 1)
/// to a fresh machine, which must send the same bytes and reach the same
/// outcome, with the payload after the handshake intact.
fn check_splits(case: &Case, step: usize) {
    let r = run(case);
    check_outcomes(case, &r);
    let a_handshake = r.a_to_b.len() - PAYLOAD_A.len();
    let b_handshake = r.b_to_a.len() - PAYLOAD_B.len();
    for k in (0..=r.a_to_b.len()).step_by(step) {
        let (sent, e, payload) = drive(case.responder(), &r.a_to_b, &[k]);
        assert_eq!(sent, r.b_to_a[..b_handshake], "{case:?} split {k}");
        assert_eq!(e.method, r.b.method);
        assert_eq!(e.initial_payload, case.ia);
        assert_eq!(e.info_hash, IH);
        assert_eq!(payload, PAYLOAD_A, "{case:?} split {k}");
    }
    for k in (0..=r.b_to_a.len()).step_by(step) {
        let (sent, e, payload) = drive(case.initiator(), &r.b_to_a, &[k]);
        assert_eq!(sent, r.a_to_b[..a_handshake], "{case:?} split {k}");
        assert_eq!(e.method, r.a.method);
        assert_eq!(payload, PAYLOAD_B, "{case:?} split {k}");
    }
}

fn case(provide: CryptoSet, allowed: CryptoSet, pad: usize, ia: &[u8], seed: u64) -> Case {
    Case {
        provide,
        allowed,
        pad_a: pad,
        pad_b: pad,
        pad_c: pad,
        pad_d: pad,
        ia: ia.to_vec(),
        seed,
    }
}

const SETS: [CryptoSet; 3] = [CryptoSet::PLAINTEXT, CryptoSet::RC4, CryptoSet::BOTH];
const HANDSHAKE: &[u8] = b"\x13BitTorrent protocol\0\0\0\0\0\x10\0\x05";

#[test]
fn every_provide_allowed_pair_and_padding_class_agrees_or_fails_typed() {
    let seed = 0x5eed_0001;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    for provide in SETS {
        for allowed in SETS {
            for pad in [0, 1, 511, 512, rng.below_usize(513)] {
                for ia in [&b""[..], HANDSHAKE] {
                    let c = case(provide, allowed, pad, ia, rng.next_u64());
                    if expected_method(&c).is_some() {
                        let r = run(&c);
                        check_outcomes(&c, &r);
                        // Payload after the handshake crosses intact.
                        let mut r = r;
                        let a_len = r.a_to_b.len();
                        let mut got = r.a_to_b[a_len - PAYLOAD_A.len()..].to_vec();
                        if let Some(d) = r.b.decryptor.as_mut() {
                            d.apply(&mut got);
                        }
                        assert_eq!(got, PAYLOAD_A);
                    } else {
                        let mut a = c.initiator();
                        let mut b = c.responder();
                        b.receive(&a.take_outgoing()).unwrap();
                        a.receive(&b.take_outgoing()).unwrap();
                        let err = b.receive(&a.take_outgoing()).unwrap_err();
                        assert_eq!(
                            err,
                            MseError::NoCommonMethod {
                                provided: provide.0,
                                allowed: allowed.0
                            }
                        );
                        assert_eq!(b.receive(b"x"), Err(MseError::Ended));
                    }
                }
            }
        }
    }
}

#[test]
fn streams_split_at_every_byte_boundary() {
    let seed = 0x5eed_0002;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    // Every padding class once, alternating plaintext (both offered) and RC4
    // selected, IA empty and not; every split point of both streams. (Each
    // split runs two fresh machines, so the other pairs are left to the
    // strided test below to keep this test's time bounded.)
    let random = rng.below_usize(513);
    for (pad, allowed, ia) in [
        (0, CryptoSet::RC4, HANDSHAKE),
        (1, CryptoSet::BOTH, &b""[..]),
        (511, CryptoSet::RC4, &b""[..]),
        (512, CryptoSet::BOTH, HANDSHAKE),
        (random, CryptoSet::RC4, HANDSHAKE),
    ] {
        check_splits(&case(CryptoSet::BOTH, allowed, pad, ia, rng.next_u64()), 1);
    }
}

#[test]
fn mixed_padding_lengths_split_at_strided_boundaries() {
    let seed = 0x5eed_0003;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    for _ in 0..6 {
        let ia_len = rng.below_usize(100);
        let c = Case {
            provide: SETS[rng.below_usize(3)],
            allowed: CryptoSet::BOTH,
            pad_a: rng.below_usize(513),
            pad_b: rng.below_usize(513),
            pad_c: rng.below_usize(513),
            pad_d: rng.below_usize(513),
            ia: rng.bytes(ia_len),
            seed: rng.next_u64(),
        };
        check_splits(&c, 7);
    }
}

#[test]
fn one_byte_at_a_time() {
    let c = case(CryptoSet::BOTH, CryptoSet::RC4, 3, HANDSHAKE, 99);
    let r = run(&c);
    let cuts: Vec<usize> = (1..r.a_to_b.len()).collect();
    let (sent, e, payload) = drive(c.responder(), &r.a_to_b, &cuts);
    assert_eq!(sent, r.b_to_a[..r.b_to_a.len() - PAYLOAD_B.len()]);
    assert_eq!(e.initial_payload, HANDSHAKE);
    assert_eq!(payload, PAYLOAD_A);
    let cuts: Vec<usize> = (1..r.b_to_a.len()).collect();
    let (_, _, payload) = drive(c.initiator(), &r.b_to_a, &cuts);
    assert_eq!(payload, PAYLOAD_B);
}

// ---- known answers, computed here from the spec's formulas ----

/// RC4 from its definition (KSA, PRGA), independent of the `rc4` crate.
fn rc4_reference(key: &[u8], len: usize) -> Vec<u8> {
    let mut s: Vec<u8> = (0..=255).collect();
    let mut j = 0u8;
    for i in 0..256 {
        j = j.wrapping_add(s[i]).wrapping_add(key[i % key.len()]);
        s.swap(i, j as usize);
    }
    let (mut i, mut j) = (0u8, 0u8);
    (0..len)
        .map(|_| {
            i = i.wrapping_add(1);
            j = j.wrapping_add(s[i as usize]);
            s.swap(i as usize, j as usize);
            s[(s[i as usize].wrapping_add(s[j as usize])) as usize]
        })
        .collect()
}

fn sha1_concat(parts: &[&[u8]]) -> [u8; 20] {
    use sha1::{Digest, Sha1};
    let mut all = Vec::new();
    for p in parts {
        all.extend_from_slice(p);
    }
    Sha1::digest(&all).into()
}

#[test]
fn reference_rc4_matches_published_vectors() {
    let xor = |k: &[u8], p: &[u8]| -> Vec<u8> {
        let ks = rc4_reference(k, p.len());
        p.iter().zip(ks).map(|(a, b)| a ^ b).collect()
    };
    assert_eq!(
        xor(b"Key", b"Plaintext"),
        [0xBB, 0xF3, 0x16, 0xE8, 0xD9, 0x40, 0xAF, 0x0A, 0xD3]
    );
    assert_eq!(xor(b"Wiki", b"pedia"), [0x10, 0x21, 0xBF, 0x04, 0x20]);
}

#[test]
fn key_derivation_and_rc4_drop_1024_match_the_formulas() {
    let secret = [0x5au8; PUBLIC_KEY_BYTES];
    let key_a = sha1_concat(&[b"keyA", &secret, &IH.0]);
    let key_b = sha1_concat(&[b"keyB", &secret, &IH.0]);
    let (mut enc, mut dec) = streams(&secret, &IH, true);
    let mut a = [0u8; 64];
    enc.apply(&mut a);
    let mut b = [0u8; 64];
    dec.apply(&mut b);
    assert_eq!(a[..], rc4_reference(&key_a, 1024 + 64)[1024..]);
    assert_eq!(b[..], rc4_reference(&key_b, 1024 + 64)[1024..]);
    let (mut r_enc, _) = streams(&secret, &IH, false);
    let mut rb = [0u8; 64];
    r_enc.apply(&mut rb);
    assert_eq!(rb, b, "the responder sends with keyB");
    assert_eq!(req2_hash(&IH), sha1_concat(&[b"req2", &IH.0]));
}

#[test]
fn prime_and_small_public_keys() {
    let hex: String = PRIME.iter().map(|b| format!("{b:02X}")).collect();
    assert_eq!(
        hex,
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E\
         3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000\
         000000090563"
    );
    // 2^x for x < 768 is below P: a single bit, at x.
    for x in [1u8, 2, 7, 100, 200, 255] {
        let mut k = [0u8; PRIVATE_KEY_BYTES];
        k[PRIVATE_KEY_BYTES - 1] = x;
        let y = dh::public_key(&PrivateKey(k));
        let mut want = [0u8; PUBLIC_KEY_BYTES];
        want[PUBLIC_KEY_BYTES - 1 - usize::from(x) / 8] = 1 << (x % 8);
        assert_eq!(y, want, "x = {x}");
    }
    // Both sides reach the same secret.
    let a = PrivateKey([3; PRIVATE_KEY_BYTES]);
    let b = PrivateKey([200; PRIVATE_KEY_BYTES]);
    let sa = dh::shared_secret(&a, &dh::public_key(&b)).unwrap();
    let sb = dh::shared_secret(&b, &dh::public_key(&a)).unwrap();
    assert_eq!(sa, sb);
}

#[test]
fn initiator_stream_decodes_by_the_spec() {
    let c = case(CryptoSet::BOTH, CryptoSet::RC4, 5, HANDSHAKE, 7);
    let r = run(&c);
    let ya: [u8; 96] = r.a_to_b[..96].try_into().unwrap();
    let yb: [u8; 96] = r.b_to_a[..96].try_into().unwrap();
    let s = dh::shared_secret(&c.responder_key(), &ya).unwrap();
    let mut at = 96 + c.pad_a;
    assert_eq!(r.a_to_b[at..at + 20], sha1_concat(&[b"req1", &s]));
    at += 20;
    let req2 = sha1_concat(&[b"req2", &IH.0]);
    let req3 = sha1_concat(&[b"req3", &s]);
    let x: Vec<u8> = req2.iter().zip(req3).map(|(a, b)| a ^ b).collect();
    assert_eq!(r.a_to_b[at..at + 20], x);
    at += 20;
    let ks = rc4_reference(&sha1_concat(&[b"keyA", &s, &IH.0]), 1024 + 2000);
    let plain: Vec<u8> = r.a_to_b[at..]
        .iter()
        .zip(&ks[1024..])
        .map(|(a, b)| a ^ b)
        .collect();
    assert_eq!(plain[..8], VC);
    assert_eq!(plain[8..12], [0, 0, 0, 3]);
    assert_eq!(plain[12..14], [0, 5]);
    assert_eq!(plain[19..21], [0, HANDSHAKE.len() as u8]);
    assert_eq!(plain[21..21 + HANDSHAKE.len()], *HANDSHAKE);
    assert_eq!(plain[21 + HANDSHAKE.len()..], *PAYLOAD_A, "RC4 continues");
    // B's reply: Yb, PadB, then ENCRYPT(VC, select = RC4, len(PadD) = 5, PadD).
    assert_ne!(yb, ya);
    let ks = rc4_reference(&sha1_concat(&[b"keyB", &s, &IH.0]), 1024 + 100);
    let plain: Vec<u8> = r.b_to_a[96 + c.pad_b..]
        .iter()
        .zip(&ks[1024..])
        .map(|(a, b)| a ^ b)
        .collect();
    assert_eq!(plain[..14], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 5]);
}

// ---- malformed input ----

fn weak_keys() -> Vec<[u8; 96]> {
    let mut one = [0u8; 96];
    one[95] = 1;
    let mut p_minus_1 = PRIME;
    p_minus_1[95] -= 1;
    let mut p_plus_1 = PRIME;
    p_plus_1[95] += 1;
    vec![[0; 96], one, p_minus_1, PRIME, p_plus_1, [0xFF; 96]]
}

#[test]
fn weak_public_keys_are_refused_by_both_roles() {
    let c = case(CryptoSet::BOTH, CryptoSet::BOTH, 0, b"", 1);
    for y in weak_keys() {
        let mut b = c.responder();
        assert_eq!(b.receive(&y), Err(MseError::WeakPublicKey));
        assert!(b.take_outgoing().is_empty(), "nothing sent to a weak key");
        let mut a = c.initiator();
        a.take_outgoing();
        assert_eq!(a.receive(&y), Err(MseError::WeakPublicKey));
        assert_eq!(a.receive(&[]), Err(MseError::Ended));
    }
    // 2 and P-2 are fine.
    let mut two = [0u8; 96];
    two[95] = 2;
    let mut p_minus_2 = PRIME;
    p_minus_2[95] -= 2;
    for y in [two, p_minus_2] {
        assert_eq!(c.responder().receive(&y), Ok(Progress::Pending));
    }
}

#[test]
fn req1_not_within_628_bytes() {
    let c = case(CryptoSet::BOTH, CryptoSet::BOTH, 0, b"", 2);
    let mut a = c.initiator();
    let ya = a.take_outgoing();
    let mut b = c.responder();
    assert_eq!(b.receive(&ya), Ok(Progress::Pending));
    // 531 bytes after Ya: still looking; the 532nd ends it (96 + 532 = 628).
    assert_eq!(b.receive(&[0x33; 531]), Ok(Progress::Pending));
    assert_eq!(b.receive(&[0x33]), Err(MseError::Req1NotFound));
    // The real req1 just past the window is refused too.
    let r = run(&c);
    let mut late = r.a_to_b[..96].to_vec();
    late.extend([0u8; 513]);
    late.extend(&r.a_to_b[96..]);
    let mut b = c.responder();
    assert_eq!(b.receive(&late), Err(MseError::Req1NotFound));
}

#[test]
fn vc_not_within_616_bytes() {
    let c = case(CryptoSet::BOTH, CryptoSet::BOTH, 0, b"", 3);
    let r = run(&c);
    let mut a = c.initiator();
    assert_eq!(a.receive(&r.b_to_a[..96]), Ok(Progress::Pending));
    assert_eq!(a.receive(&[0x44; 519]), Ok(Progress::Pending));
    assert_eq!(a.receive(&[0x44]), Err(MseError::VcNotFound));
    let mut late = r.b_to_a[..96].to_vec();
    late.extend([0u8; 513]);
    late.extend(&r.b_to_a[96..]);
    let mut a = c.initiator();
    assert_eq!(a.receive(&late), Err(MseError::VcNotFound));
}

#[test]
fn unknown_info_hash() {
    let mut c = case(CryptoSet::BOTH, CryptoSet::BOTH, 0, b"", 4);
    c.seed = 4;
    let mut a = Initiator::new(InitiatorConfig {
        info_hash: InfoHash([9; 20]),
        private_key: PrivateKey([1; 20]),
        pad: vec![],
        encrypted_pad_len: 0,
        provide: CryptoSet::BOTH,
        initial_payload: vec![],
    })
    .unwrap();
    let mut b = c.responder();
    b.receive(&a.take_outgoing()).unwrap();
    a.receive(&b.take_outgoing()).unwrap();
    assert_eq!(
        b.receive(&a.take_outgoing()),
        Err(MseError::UnknownInfoHash)
    );
}

/// A responder's stream as a forger writes it: Yb, then
/// `ENCRYPT(vc, select, len_field)` and `pad` bytes.
fn forged_reply(c: &Case, ya: &[u8], vc: [u8; 8], select: u32, len_field: u16) -> Vec<u8> {
    let ya: [u8; 96] = ya[..96].try_into().unwrap();
    let key = c.responder_key();
    let s = dh::shared_secret(&key, &ya).unwrap();
    let (mut enc, _) = streams(&s, &IH, false);
    let mut body = vc.to_vec();
    body.extend(select.to_be_bytes());
    body.extend(len_field.to_be_bytes());
    enc.apply(&mut body);
    let mut out = dh::public_key(&key).to_vec();
    out.extend(body);
    out
}

#[test]
fn initiator_refuses_a_select_it_did_not_offer_and_long_pad_d() {
    for (provide, select) in [
        (CryptoSet::RC4, 1),
        (CryptoSet::PLAINTEXT, 2),
        (CryptoSet::BOTH, 3),
        (CryptoSet::BOTH, 0),
        (CryptoSet::BOTH, 4),
    ] {
        let c = case(provide, CryptoSet::BOTH, 0, b"", 5);
        let mut a = c.initiator();
        let ya = a.take_outgoing();
        assert_eq!(
            a.receive(&forged_reply(&c, &ya, VC, select, 0)),
            Err(MseError::SelectNotOffered {
                selected: select,
                provided: provide.0
            })
        );
    }
    let c = case(CryptoSet::BOTH, CryptoSet::BOTH, 0, b"", 6);
    let mut a = c.initiator();
    let ya = a.take_outgoing();
    assert_eq!(
        a.receive(&forged_reply(&c, &ya, VC, 2, 513)),
        Err(MseError::PadTooLong(513))
    );
    // A wrong VC is simply not found.
    let mut a = c.initiator();
    let ya = a.take_outgoing();
    let mut reply = forged_reply(&c, &ya, [1; 8], 2, 0);
    reply.extend([0u8; 600]);
    assert_eq!(a.receive(&reply), Err(MseError::VcNotFound));
}

/// An initiator's step 3 as a forger writes it, after the responder's Yb.
fn forged_offer(
    a_key: &PrivateKey,
    yb: &[u8],
    vc: [u8; 8],
    provide: u32,
    pad_c: u16,
    tail: &[u8],
) -> Vec<u8> {
    let yb: [u8; 96] = yb[..96].try_into().unwrap();
    let s = dh::shared_secret(a_key, &yb).unwrap();
    let mut out = hash(b"req1", &[&s]).to_vec();
    let req2 = req2_hash(&IH);
    let req3 = hash(b"req3", &[&s]);
    out.extend(req2.iter().zip(req3).map(|(a, b)| a ^ b));
    let (mut enc, _) = streams(&s, &IH, true);
    let mut body = vc.to_vec();
    body.extend(provide.to_be_bytes());
    body.extend(pad_c.to_be_bytes());
    body.extend(tail);
    enc.apply(&mut body);
    out.extend(body);
    out
}

#[test]
fn responder_refuses_bad_vc_long_pad_c_and_no_common_method() {
    let c = case(CryptoSet::BOTH, CryptoSet::BOTH, 0, b"", 8);
    let a_key = PrivateKey([0x21; 20]);
    let ya = dh::public_key(&a_key);
    let cases: [(u32, u16, [u8; 8], MseError); 4] = [
        (3, 0, [0, 0, 0, 0, 0, 0, 0, 1], MseError::BadVc),
        (3, 513, VC, MseError::PadTooLong(513)),
        (
            0,
            0,
            VC,
            MseError::NoCommonMethod {
                provided: 0,
                allowed: 3,
            },
        ),
        (
            4,
            0,
            VC,
            MseError::NoCommonMethod {
                provided: 4,
                allowed: 3,
            },
        ),
    ];
    for (provide, pad_c, vc, err) in cases {
        let mut b = c.responder();
        b.receive(&ya).unwrap();
        let yb = b.take_outgoing();
        assert_eq!(
            b.receive(&forged_offer(&a_key, &yb, vc, provide, pad_c, &[])),
            Err(err)
        );
    }
    // A well-formed forged offer with an IA length longer than what arrived
    // waits for the rest.
    let mut b = c.responder();
    b.receive(&ya).unwrap();
    let yb = b.take_outgoing();
    let offer = forged_offer(&a_key, &yb, VC, 2, 0, &[0xFF, 0xFF, 1, 2, 3]);
    assert_eq!(b.receive(&offer), Ok(Progress::Pending));
}

#[test]
fn our_own_bad_configuration_is_a_typed_error() {
    let base = InitiatorConfig {
        info_hash: IH,
        private_key: PrivateKey([1; 20]),
        pad: vec![],
        encrypted_pad_len: 0,
        provide: CryptoSet::BOTH,
        initial_payload: vec![],
    };
    let mut c = base.clone();
    c.pad = vec![0; 513];
    assert_eq!(Initiator::new(c).unwrap_err(), MseError::OurPadTooLong(513));
    let mut c = base.clone();
    c.encrypted_pad_len = 513;
    assert_eq!(Initiator::new(c).unwrap_err(), MseError::OurPadTooLong(513));
    let mut c = base.clone();
    c.initial_payload = vec![0; 65_536];
    assert_eq!(
        Initiator::new(c).unwrap_err(),
        MseError::OurInitialPayloadTooLong(65_536)
    );
    let mut c = base.clone();
    c.provide = CryptoSet(4);
    assert_eq!(
        Initiator::new(c).unwrap_err(),
        MseError::NoMethodConfigured(4)
    );
    let r = ResponderConfig {
        private_key: PrivateKey([1; 20]),
        pad: vec![],
        encrypted_pad_len: 0,
        allowed: CryptoSet(0),
    };
    assert_eq!(
        Responder::new(r, lookup as Lookup).unwrap_err(),
        MseError::NoMethodConfigured(0)
    );
}

#[test]
fn a_finished_machine_takes_no_more_bytes() {
    let c = case(CryptoSet::BOTH, CryptoSet::BOTH, 0, b"", 10);
    let r = run(&c);
    let mut b = c.responder();
    assert_eq!(b.receive(&r.a_to_b), Ok(Progress::Done));
    assert_eq!(b.receive(b"more"), Err(MseError::Ended));
    assert!(b.established().is_some());
    assert!(b.established().is_none());
}
