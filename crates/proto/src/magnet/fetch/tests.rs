//! `MetadataExchange` against an in-process fake peer that serves a real
//! info dictionary (or lies, rejects, or stays silent).

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::hash::sha1;
use crate::magnet::metadata::REJECT_RETRY_AFTER;
use crate::wire::ut_metadata::{piece_of, METADATA_PIECE_BYTES};
use crate::wire::ut_pex::PexFlags;

const TIMEOUT: Duration = Duration::from_secs(15);
const THEIR_METADATA_ID: u8 = 7;
const THEIR_PEX_ID: u8 = 9;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// An info dictionary of `len` bytes (bencode-shaped enough) and its hash.
fn info(len: usize) -> (Vec<u8>, InfoHash) {
    let mut bytes = b"d4:name".to_vec();
    while bytes.len() < len {
        bytes.push(b'a' + (bytes.len() % 26) as u8);
    }
    let hash = InfoHash(sha1(&bytes));
    (bytes, hash)
}

/// How the fake peer behaves.
#[derive(Clone, Default)]
struct Behaviour {
    /// Size to announce instead of the real one.
    size: Option<u64>,
    no_extension_bit: bool,
    no_ut_metadata: bool,
    /// Flip a byte of every piece sent.
    corrupt: bool,
    /// Reject this many requests first.
    rejects: u32,
    /// Never answer requests.
    silent: bool,
    /// Answer the handshake with this info-hash.
    other_hash: Option<InfoHash>,
    /// Send a bitfield of this many bytes after the handshake.
    bitfield_bytes: usize,
    /// Send a ut_pex message with these peers.
    pex: Vec<SocketAddr>,
    /// Ask us for metadata piece 0.
    request_from_us: bool,
}

struct FakePeer {
    info: Vec<u8>,
    info_hash: InfoHash,
    b: Behaviour,
    received: Vec<u8>,
    handshaken: bool,
    decoder: MessageDecoder,
    our_metadata_id: Option<u8>,
    out: Vec<u8>,
    requests: Vec<u32>,
    rejects_we_got: u32,
}

impl FakePeer {
    fn new(info: &[u8], info_hash: InfoHash, b: Behaviour) -> FakePeer {
        FakePeer {
            info: info.to_vec(),
            info_hash,
            b,
            received: Vec::new(),
            handshaken: false,
            decoder: MessageDecoder::new(Limits::DEFAULT),
            our_metadata_id: None,
            out: Vec::new(),
            requests: Vec::new(),
            rejects_we_got: 0,
        }
    }

    fn ext(&mut self, id: u8, payload: &[u8]) {
        encode(&Message::Extended { id, payload }, &mut self.out);
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.received.extend_from_slice(bytes);
        if !self.handshaken {
            let Some(ours) = Handshake::decode(&self.received).unwrap() else {
                return;
            };
            assert!(ours.supports_extension_protocol());
            self.received.drain(..HANDSHAKE_BYTES);
            self.handshaken = true;
            let reply = Handshake {
                info_hash: self.b.other_hash.unwrap_or(self.info_hash),
                peer_id: [b'L'; 20],
                reserved: reserved_bits(!self.b.no_extension_bit, true, false),
            };
            self.out.extend_from_slice(&reply.encode());
            if self.b.bitfield_bytes > 0 {
                let bits = vec![0xffu8; self.b.bitfield_bytes];
                encode(&Message::Bitfield(&bits), &mut self.out);
            }
            let mut m = vec![("ut_pex".to_string(), THEIR_PEX_ID)];
            if !self.b.no_ut_metadata {
                m.push(("ut_metadata".to_string(), THEIR_METADATA_ID));
            }
            let hs = ExtensionHandshake {
                m,
                metadata_size: Some(self.b.size.unwrap_or(self.info.len() as u64)),
                ..Default::default()
            };
            self.ext(0, &hs.encode());
        }
        let mut at = 0;
        let mut messages = Vec::new();
        while let Some((m, used)) = self.decoder.decode(&self.received[at..]).unwrap() {
            if let Message::Extended { id, payload } = m {
                messages.push((id, payload.to_vec()));
            }
            at += used;
        }
        self.received.drain(..at);
        for (id, payload) in messages {
            self.on_extended(id, &payload);
        }
    }

    fn on_extended(&mut self, id: u8, payload: &[u8]) {
        if id == 0 {
            let hs = ExtensionHandshake::parse(payload).unwrap();
            self.our_metadata_id = hs.extension_id("ut_metadata");
            assert_eq!(hs.extension_id("ut_pex"), Some(OUR_UT_PEX_ID));
            if !self.b.pex.is_empty() {
                let pex = PexMessage {
                    added: self.b.pex.iter().map(|a| (*a, PexFlags(0))).collect(),
                    dropped: Vec::new(),
                };
                self.ext(OUR_UT_PEX_ID, &pex.encode());
                // A malformed one is ignored.
                self.ext(OUR_UT_PEX_ID, b"not bencode");
            }
            if self.b.request_from_us {
                let mut p = Vec::new();
                MetadataMessage::Request { piece: 0 }.encode(&mut p);
                self.ext(OUR_UT_METADATA_ID, &p);
            }
            return;
        }
        assert_eq!(id, THEIR_METADATA_ID, "sent under the id the peer chose");
        let our_id = self.our_metadata_id.unwrap();
        match MetadataMessage::parse(payload).unwrap() {
            MetadataMessage::Request { piece } => {
                self.requests.push(piece);
                let mut p = Vec::new();
                if self.b.silent {
                    return;
                }
                if self.b.rejects > 0 {
                    self.b.rejects -= 1;
                    MetadataMessage::Reject { piece }.encode(&mut p);
                } else {
                    let mut data = piece_of(&self.info, piece).unwrap().to_vec();
                    if self.b.corrupt {
                        data[0] ^= 0x20;
                    }
                    MetadataMessage::Data {
                        piece,
                        total_size: self.info.len() as u64,
                        data: &data,
                    }
                    .encode(&mut p);
                }
                self.ext(our_id, &p);
            }
            MetadataMessage::Reject { .. } => self.rejects_we_got += 1,
            MetadataMessage::Data { .. } => panic!("we never announced metadata"),
        }
    }
}

/// Moves bytes both ways until neither side has more to say.
fn pump(
    ex: &mut MetadataExchange,
    peer: &mut FakePeer,
    asm: &mut MetadataAssembler,
    now: Duration,
) -> Result<Vec<ExchangeEvent>, ExchangeError> {
    let mut events = Vec::new();
    for _ in 0..1000 {
        let out = ex.pending_output().to_vec();
        ex.output_written(out.len());
        peer.feed(&out);
        let back = std::mem::take(&mut peer.out);
        if out.is_empty() && back.is_empty() {
            return Ok(events);
        }
        // Deliver in small reads, as a socket would.
        for chunk in back.chunks(1000) {
            events.extend(ex.receive(chunk, now, asm)?);
        }
    }
    panic!("the exchange never went quiet");
}

fn complete(events: &[ExchangeEvent]) -> Option<&Vec<u8>> {
    events.iter().find_map(|e| match e {
        ExchangeEvent::Complete(info) => Some(info),
        _ => None,
    })
}

fn setup(len: usize) -> (Vec<u8>, InfoHash, MetadataAssembler) {
    let (bytes, hash) = info(len);
    let asm = MetadataAssembler::new(hash, TIMEOUT);
    (bytes, hash, asm)
}

fn exchange(key: PeerKey, hash: InfoHash) -> MetadataExchange {
    MetadataExchange::new(key, hash, [b'R'; 20], 6881, TIMEOUT, secs(0))
}

#[test]
fn fetches_a_multi_piece_dictionary_and_collects_pex_peers() {
    let (bytes, hash, mut asm) = setup(3 * METADATA_PIECE_BYTES + 123);
    let pex: Vec<SocketAddr> = vec![
        "10.1.2.3:6881".parse().unwrap(),
        "[2001:db8::1]:51413".parse().unwrap(),
    ];
    let b = Behaviour {
        bitfield_bytes: 50_000,
        pex: pex.clone(),
        request_from_us: true,
        ..Default::default()
    };
    let mut peer = FakePeer::new(&bytes, hash, b);
    let mut ex = exchange(1, hash);
    let events = pump(&mut ex, &mut peer, &mut asm, secs(1)).unwrap();
    assert_eq!(complete(&events), Some(&bytes));
    assert!(events.contains(&ExchangeEvent::HasMetadata {
        size: bytes.len() as u64
    }));
    assert!(events.contains(&ExchangeEvent::Peers(pex)));
    assert_eq!(peer.requests, vec![0, 1, 2, 3]);
    assert_eq!(
        peer.rejects_we_got, 1,
        "its request for our metadata was rejected"
    );
}

#[test]
fn a_lying_peer_fails_the_hash_and_is_blamed() {
    let (bytes, hash, mut asm) = setup(METADATA_PIECE_BYTES + 5);
    let b = Behaviour {
        corrupt: true,
        ..Default::default()
    };
    let mut peer = FakePeer::new(&bytes, hash, b);
    let mut ex = exchange(4, hash);
    let events = pump(&mut ex, &mut peer, &mut asm, secs(1)).unwrap();
    assert_eq!(complete(&events), None);
    assert!(events.contains(&ExchangeEvent::HashFailed { blamed: vec![4] }));
    assert!(asm.is_blamed(4));
    // An honest peer then completes it alone.
    let mut honest = FakePeer::new(&bytes, hash, Behaviour::default());
    let mut ex2 = exchange(5, hash);
    let events = pump(&mut ex2, &mut honest, &mut asm, secs(2)).unwrap();
    assert_eq!(complete(&events), Some(&bytes));
}

#[test]
fn a_peer_announcing_another_size_is_not_trusted() {
    let (bytes, hash, mut asm) = setup(100);
    let mut honest = FakePeer::new(
        &bytes,
        hash,
        Behaviour {
            silent: true,
            ..Default::default()
        },
    );
    let mut ex = exchange(1, hash);
    pump(&mut ex, &mut honest, &mut asm, secs(1)).unwrap();
    let liar = Behaviour {
        size: Some(5000),
        ..Default::default()
    };
    let mut peer = FakePeer::new(&bytes, hash, liar);
    let mut ex2 = exchange(2, hash);
    let err = pump(&mut ex2, &mut peer, &mut asm, secs(1)).unwrap_err();
    assert_eq!(
        err,
        ExchangeError::Assembler(AssemblerError::SizeMismatch {
            announced: 5000,
            expected: 100
        })
    );
    assert!(peer.requests.is_empty());
}

#[test]
fn a_data_message_with_a_wrong_total_size_ends_the_exchange() {
    let (bytes, hash, mut asm) = setup(100);
    // The peer announces 100 but its data message says 5000 (and carries
    // the 5000 bytes, so the codec accepts it).
    let b = Behaviour {
        size: Some(100),
        ..Default::default()
    };
    let mut peer = FakePeer::new(&bytes, hash, b);
    peer.info = vec![b'x'; 5000];
    let mut ex = exchange(1, hash);
    let err = pump(&mut ex, &mut peer, &mut asm, secs(1)).unwrap_err();
    assert!(
        matches!(
            err,
            ExchangeError::Assembler(AssemblerError::SizeMismatch { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn rejected_requests_are_asked_again_later() {
    let (bytes, hash, mut asm) = setup(METADATA_PIECE_BYTES * 2);
    let b = Behaviour {
        rejects: 2,
        ..Default::default()
    };
    let mut peer = FakePeer::new(&bytes, hash, b);
    let mut ex = exchange(1, hash);
    let events = pump(&mut ex, &mut peer, &mut asm, secs(1)).unwrap();
    assert_eq!(complete(&events), None);
    assert_eq!(peer.requests, vec![0, 1]);
    // Resting: nothing asked before REJECT_RETRY_AFTER.
    ex.tick(secs(2), &mut asm).unwrap();
    assert!(ex.pending_output().is_empty());
    let later = secs(1) + REJECT_RETRY_AFTER;
    ex.tick(later, &mut asm).unwrap();
    let events = pump(&mut ex, &mut peer, &mut asm, later).unwrap();
    assert_eq!(complete(&events), Some(&bytes));
}

#[test]
fn a_silent_peer_times_out_and_its_piece_goes_elsewhere() {
    let (bytes, hash, mut asm) = setup(100);
    let mut silent = FakePeer::new(
        &bytes,
        hash,
        Behaviour {
            silent: true,
            ..Default::default()
        },
    );
    let mut ex = exchange(1, hash);
    pump(&mut ex, &mut silent, &mut asm, secs(1)).unwrap();
    assert_eq!(silent.requests, vec![0]);
    ex.tick(secs(15), &mut asm).unwrap();
    assert_eq!(
        ex.tick(secs(16), &mut asm),
        Err(ExchangeError::Timeout {
            waiting_for: "metadata piece"
        })
    );
    asm.remove_peer(1);
    let mut honest = FakePeer::new(&bytes, hash, Behaviour::default());
    let mut ex2 = exchange(2, hash);
    let events = pump(&mut ex2, &mut honest, &mut asm, secs(16)).unwrap();
    assert_eq!(complete(&events), Some(&bytes));
}

#[test]
fn handshakes_time_out() {
    let (_, hash, mut asm) = setup(100);
    let mut ex = exchange(1, hash);
    ex.tick(secs(14), &mut asm).unwrap();
    assert_eq!(
        ex.tick(secs(15), &mut asm),
        Err(ExchangeError::Timeout {
            waiting_for: "handshake"
        })
    );
    let mut ex = exchange(1, hash);
    let theirs = Handshake {
        info_hash: hash,
        peer_id: [0; 20],
        reserved: reserved_bits(true, false, false),
    };
    assert_eq!(ex.receive(&theirs.encode(), secs(1), &mut asm), Ok(vec![]));
    assert_eq!(
        ex.tick(secs(15), &mut asm),
        Err(ExchangeError::Timeout {
            waiting_for: "extension handshake"
        })
    );
}

#[test]
fn unfit_peers_are_refused() {
    let (bytes, hash, mut asm) = setup(100);
    let other = InfoHash([9; 20]);
    let cases = [
        (
            Behaviour {
                other_hash: Some(other),
                ..Default::default()
            },
            ExchangeError::WrongInfoHash {
                found: other.to_hex(),
            },
        ),
        (
            Behaviour {
                no_extension_bit: true,
                ..Default::default()
            },
            ExchangeError::NoExtensionProtocol,
        ),
        (
            Behaviour {
                no_ut_metadata: true,
                ..Default::default()
            },
            ExchangeError::NoUtMetadata,
        ),
        (
            Behaviour {
                size: Some(0),
                ..Default::default()
            },
            ExchangeError::Assembler(AssemblerError::SizeZero),
        ),
    ];
    for (b, want) in cases {
        let mut peer = FakePeer::new(&bytes, hash, b);
        let mut ex = exchange(1, hash);
        assert_eq!(pump(&mut ex, &mut peer, &mut asm, secs(1)), Err(want));
    }
    let mut ex = exchange(1, hash);
    assert!(matches!(
        ex.receive(b"\x13BitTorrent protocoX", secs(1), &mut asm),
        Err(ExchangeError::Handshake(_))
    ));
}

#[test]
fn received_bytes_are_bounded() {
    let (_, hash, mut asm) = setup(100);
    let mut ex = exchange(1, hash);
    let room = ex.receive_room();
    assert_eq!(room, RECEIVE_BYTES_MAX);
    let too_much = vec![0u8; room + 1];
    assert!(matches!(
        ex.receive(&too_much, secs(0), &mut asm),
        Err(ExchangeError::ReceiveOverflow { .. })
    ));
}

#[test]
fn a_malformed_ut_metadata_message_ends_the_exchange() {
    let (bytes, hash, mut asm) = setup(100);
    let mut peer = FakePeer::new(
        &bytes,
        hash,
        Behaviour {
            silent: true,
            ..Default::default()
        },
    );
    let mut ex = exchange(1, hash);
    pump(&mut ex, &mut peer, &mut asm, secs(1)).unwrap();
    let mut bad = Vec::new();
    encode(
        &Message::Extended {
            id: OUR_UT_METADATA_ID,
            payload: b"d8:msg_typei9e5:piecei0ee",
        },
        &mut bad,
    );
    assert_eq!(
        ex.receive(&bad, secs(1), &mut asm),
        Err(ExchangeError::UtMetadata(
            UtMetadataError::UnknownMessageType { found: 9 }
        ))
    );
}
