//! Tests of the streaming decoder: round trips, every split point, limits,
//! malformed lengths, bitfield rules, and a deterministic fuzz loop.

use super::*;
use crate::rng::Rng;
use crate::wire::message::encode;

fn enc(msg: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode(msg, &mut out);
    out
}

/// One of every message, valid under `Limits::for_pieces(20)`.
fn every_message(block: &[u8]) -> Vec<Message<'_>> {
    vec![
        Message::KeepAlive,
        Message::Choke,
        Message::Unchoke,
        Message::Interested,
        Message::NotInterested,
        Message::Have { piece: 7 },
        Message::Bitfield(&[0xff, 0x0f, 0xf0]),
        Message::Request {
            piece: 1,
            offset: 16384,
            length: 16384,
        },
        Message::Piece {
            piece: 2,
            offset: 32768,
            block,
        },
        Message::Cancel {
            piece: 1,
            offset: 16384,
            length: 16384,
        },
        Message::Port(6881),
        Message::SuggestPiece(3),
        Message::HaveAll,
        Message::HaveNone,
        Message::RejectRequest {
            piece: 4,
            offset: 0,
            length: 1,
        },
        Message::AllowedFast(5),
        Message::Extended {
            id: 0,
            payload: b"d1:md6:ut_pexi1eee",
        },
        Message::Extended {
            id: 3,
            payload: b"",
        },
        Message::Unknown {
            id: 21,
            payload: b"hash request",
        },
        Message::Unknown {
            id: 255,
            payload: b"",
        },
    ]
}

fn decoder() -> MessageDecoder {
    MessageDecoder::new(Limits::for_pieces(20))
}

#[test]
fn every_message_round_trips() {
    let block: Vec<u8> = (0..16384u32).map(|i| i as u8).collect();
    for msg in every_message(&block) {
        let bytes = enc(&msg);
        assert_eq!(
            decoder().decode(&bytes),
            Ok(Some((msg, bytes.len()))),
            "{msg:?}"
        );
        // Bytes after the message are left alone.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0, 0, 0, 1, 1]);
        assert_eq!(decoder().decode(&longer), Ok(Some((msg, bytes.len()))));
    }
}

#[test]
fn every_split_point_needs_more() {
    let block = [0x5a; 300];
    let mut d = decoder();
    for msg in every_message(&block) {
        let bytes = enc(&msg);
        for n in 0..bytes.len() {
            assert_eq!(d.decode(&bytes[..n]), Ok(None), "{msg:?} cut at {n}");
            assert!(d.bytes_wanted() > n && d.bytes_wanted() <= bytes.len());
        }
        assert_eq!(d.decode(&bytes), Ok(Some((msg, bytes.len()))));
    }
}

#[test]
fn a_stream_fed_byte_by_byte_gives_every_message_in_order() {
    let block = [0xa5; 1000];
    let expected = every_message(&block);
    let mut stream = Vec::new();
    for msg in &expected {
        encode(msg, &mut stream);
    }
    let mut d = decoder();
    let mut buf: Vec<u8> = Vec::new();
    let mut seen = 0;
    for &byte in &stream {
        buf.push(byte);
        // At most one message completes per byte; bound the inner loop anyway.
        for _ in 0..4 {
            let consumed = match d.decode(&buf) {
                Ok(Some((msg, consumed))) => {
                    assert_eq!(Some(&msg), expected.get(seen));
                    seen += 1;
                    consumed
                }
                Ok(None) => break,
                Err(e) => panic!("stream broke at message {seen}: {e}"),
            };
            buf.drain(..consumed);
        }
    }
    assert_eq!(seen, expected.len());
    assert!(buf.is_empty());
}

#[test]
fn oversized_length_prefix_is_refused_on_four_bytes() {
    let mut d = MessageDecoder::default();
    let limit = d.message_bytes_max();
    assert_eq!(limit, Limits::default().message_bytes_max());
    for length in [u32::MAX, 1 << 30, limit + 1] {
        assert_eq!(
            d.decode(&length.to_be_bytes()),
            Err(WireError::MessageTooLong { length, limit })
        );
    }
    // With a known piece count the largest message is a piece message.
    let d = MessageDecoder::new(Limits::for_pieces(1000));
    assert_eq!(d.message_bytes_max(), 64 * 1024 + 1, "the extended limit");
    let small = Limits {
        extended_bytes_max: 100,
        unknown_bytes_max: 100,
        ..Limits::for_pieces(1000)
    };
    let mut d = MessageDecoder::new(small);
    assert_eq!(d.message_bytes_max(), 16384 + 9);
    assert_eq!(
        d.decode(&(16384u32 + 10).to_be_bytes()),
        Err(WireError::MessageTooLong {
            length: 16394,
            limit: 16393
        })
    );
    // At the limit it waits for the body.
    assert_eq!(d.decode(&(16384u32 + 9).to_be_bytes()), Ok(None));
    assert_eq!(d.bytes_wanted(), 5);
}

#[test]
fn per_message_limits_are_checked_on_the_id_byte() {
    let mut d = decoder();
    // A "have" claiming 1000 bytes: refused with 5 bytes in hand.
    assert_eq!(
        d.decode(&[0, 0, 3, 0xe9, id::HAVE]),
        Err(WireError::PayloadLength {
            message: "have",
            expected: 4,
            found: 1000
        })
    );
    let extended = u32::to_be_bytes(EXTENDED_BYTES_MAX_DEFAULT + 2);
    let d2 = &mut MessageDecoder::default();
    assert_eq!(
        d2.decode(&[
            extended[0],
            extended[1],
            extended[2],
            extended[3],
            id::EXTENDED
        ]),
        Err(WireError::MessageTooLongForId {
            message: "extended",
            id: id::EXTENDED,
            length: EXTENDED_BYTES_MAX_DEFAULT + 1,
            limit: EXTENDED_BYTES_MAX_DEFAULT
        })
    );
    let unknown = u32::to_be_bytes(UNKNOWN_BYTES_MAX_DEFAULT + 2);
    assert_eq!(
        d2.decode(&[unknown[0], unknown[1], unknown[2], unknown[3], 200]),
        Err(WireError::MessageTooLongForId {
            message: "unknown",
            id: 200,
            length: UNKNOWN_BYTES_MAX_DEFAULT + 1,
            limit: UNKNOWN_BYTES_MAX_DEFAULT
        })
    );
    // A bitfield over the global cap while the piece count is unknown.
    let capped = Limits {
        bitfield_bytes_max: 10,
        ..Limits::default()
    };
    assert_eq!(
        MessageDecoder::new(capped).decode(&[0, 0, 0, 12, id::BITFIELD]),
        Err(WireError::MessageTooLongForId {
            message: "bitfield",
            id: id::BITFIELD,
            length: 11,
            limit: 10
        })
    );
    // A piece message with a block over the limit.
    assert_eq!(
        d.decode(&[0, 0, 0x40, 0x0a, id::PIECE]),
        Err(WireError::BlockLength {
            message: "piece",
            length: 16385,
            limit: 16384
        })
    );
    let big_piece = Limits {
        block_bytes_max: 100,
        ..Limits::for_pieces(20)
    };
    assert_eq!(
        MessageDecoder::new(big_piece).decode(&[0, 0, 0, 110, id::PIECE]),
        Err(WireError::BlockLength {
            message: "piece",
            length: 101,
            limit: 100
        })
    );
}

#[test]
fn malformed_payload_lengths_name_the_message() {
    let mut d = decoder();
    let cases: &[(&[u8], WireError)] = &[
        (
            &[0, 0, 0, 2, id::CHOKE, 0],
            WireError::PayloadLength {
                message: "choke",
                expected: 0,
                found: 1,
            },
        ),
        (
            &[0, 0, 0, 2, id::HAVE_ALL],
            WireError::PayloadLength {
                message: "have all",
                expected: 0,
                found: 1,
            },
        ),
        (
            &[0, 0, 0, 4, id::HAVE],
            WireError::PayloadLength {
                message: "have",
                expected: 4,
                found: 3,
            },
        ),
        (
            &[0, 0, 0, 12, id::REQUEST],
            WireError::PayloadLength {
                message: "request",
                expected: 12,
                found: 11,
            },
        ),
        (
            &[0, 0, 0, 14, id::CANCEL],
            WireError::PayloadLength {
                message: "cancel",
                expected: 12,
                found: 13,
            },
        ),
        (
            &[0, 0, 0, 11, id::REJECT_REQUEST],
            WireError::PayloadLength {
                message: "reject request",
                expected: 12,
                found: 10,
            },
        ),
        (
            &[0, 0, 0, 2, id::PORT],
            WireError::PayloadLength {
                message: "port",
                expected: 2,
                found: 1,
            },
        ),
        (
            &[0, 0, 0, 1, id::ALLOWED_FAST],
            WireError::PayloadLength {
                message: "allowed fast",
                expected: 4,
                found: 0,
            },
        ),
        (
            &[0, 0, 0, 8, id::PIECE],
            WireError::PayloadTooShort {
                message: "piece",
                minimum: 8,
                found: 7,
            },
        ),
        (
            &[0, 0, 0, 9, id::PIECE],
            WireError::BlockLength {
                message: "piece",
                length: 0,
                limit: 16384,
            },
        ),
        (
            &[0, 0, 0, 1, id::EXTENDED],
            WireError::PayloadTooShort {
                message: "extended",
                minimum: 1,
                found: 0,
            },
        ),
    ];
    for (bytes, err) in cases {
        assert_eq!(d.decode(bytes), Err(err.clone()), "{bytes:?}");
    }
}

fn request_bytes(message_id: u8, length: u32) -> Vec<u8> {
    let mut b = vec![0, 0, 0, 13, message_id, 0, 0, 0, 1, 0, 0, 0, 0];
    b.extend_from_slice(&length.to_be_bytes());
    b
}

#[test]
fn request_lengths_of_zero_or_over_the_block_limit_are_refused() {
    let mut d = decoder();
    for (message_id, name) in [
        (id::REQUEST, "request"),
        (id::CANCEL, "cancel"),
        (id::REJECT_REQUEST, "reject request"),
    ] {
        for length in [0, 16385, u32::MAX] {
            assert_eq!(
                d.decode(&request_bytes(message_id, length)),
                Err(WireError::BlockLength {
                    message: name,
                    length,
                    limit: 16384
                })
            );
        }
        assert!(d.decode(&request_bytes(message_id, 16384)).is_ok());
        assert!(d.decode(&request_bytes(message_id, 1)).is_ok());
    }
    // A larger configured block size lets 128 KiB requests through.
    let mut wide = MessageDecoder::new(Limits {
        block_bytes_max: 128 * 1024,
        ..Limits::default()
    });
    assert!(matches!(
        wide.decode(&request_bytes(id::REQUEST, 128 * 1024)),
        Ok(Some((Message::Request { length: 131072, .. }, 17)))
    ));
}

#[test]
fn bitfield_length_must_match_the_piece_count() {
    let mut d = MessageDecoder::new(Limits::for_pieces(20)); // 3 bytes
    assert_eq!(
        d.decode(&[0, 0, 0, 3, id::BITFIELD]),
        Err(WireError::BitfieldLength {
            expected: 3,
            found: 2,
            pieces: 20
        })
    );
    assert_eq!(
        d.decode(&[0, 0, 0, 5, id::BITFIELD]),
        Err(WireError::BitfieldLength {
            expected: 3,
            found: 4,
            pieces: 20
        })
    );
    // Unknown piece count: any length up to the cap.
    let mut any = MessageDecoder::default();
    assert_eq!(
        any.decode(&[0, 0, 0, 3, id::BITFIELD, 0xff, 0xff]),
        Ok(Some((Message::Bitfield(&[0xff, 0xff]), 7)))
    );
    // Learning the piece count tightens it.
    any.set_pieces(9);
    assert!(any.decode(&[0, 0, 0, 3, id::BITFIELD, 0xff, 0xff]).is_err());
    assert_eq!(
        any.decode(&[0, 0, 0, 3, id::BITFIELD, 0xff, 0x80]),
        Ok(Some((Message::Bitfield(&[0xff, 0x80]), 7)))
    );
}

#[test]
fn bitfield_spare_bits_are_refused() {
    let mut d = MessageDecoder::new(Limits::for_pieces(20));
    // Pieces 20..24 are spare: the low nibble of the last byte.
    for last in [0x01, 0x02, 0x04, 0x08, 0x0f] {
        assert_eq!(
            d.decode(&[0, 0, 0, 4, id::BITFIELD, 0xff, 0xff, 0xf0 | last]),
            Err(WireError::BitfieldSpareBits { pieces: 20 })
        );
    }
    assert!(d
        .decode(&[0, 0, 0, 4, id::BITFIELD, 0xff, 0xff, 0xf0])
        .is_ok());
    // A multiple of 8 pieces has no spare bits.
    let mut whole = MessageDecoder::new(Limits::for_pieces(16));
    assert!(whole
        .decode(&[0, 0, 0, 3, id::BITFIELD, 0xff, 0xff])
        .is_ok());
    // Zero pieces: an empty bitfield.
    let mut none = MessageDecoder::new(Limits::for_pieces(0));
    assert_eq!(
        none.decode(&[0, 0, 0, 1, id::BITFIELD]),
        Ok(Some((Message::Bitfield(&[]), 5)))
    );
}

#[test]
fn unknown_ids_are_skipped_within_their_limit() {
    let mut d = decoder();
    let mut stream = vec![0, 0, 0, 4, 99, 1, 2, 3];
    stream.extend_from_slice(&[0, 0, 0, 1, id::INTERESTED]);
    let (msg, n) = d.decode(&stream).unwrap().unwrap();
    assert_eq!(
        msg,
        Message::Unknown {
            id: 99,
            payload: &[1, 2, 3]
        }
    );
    assert_eq!(d.decode(&stream[n..]), Ok(Some((Message::Interested, 5))));
}

#[test]
fn keep_alive_needs_only_the_prefix() {
    assert_eq!(
        decoder().decode(&[0, 0, 0, 0, 0xde, 0xad]),
        Ok(Some((Message::KeepAlive, 4)))
    );
}

/// Decodes `buf` to its end, checking that every step consumes something and
/// never more than there is; returns how many messages came out.
fn drain(d: &mut MessageDecoder, buf: &[u8]) -> usize {
    let mut at = 0;
    let mut count = 0;
    for _ in 0..=buf.len() {
        match d.decode(buf.get(at..).unwrap_or_default()) {
            Ok(Some((_, n))) => {
                assert!(n > 0 && at + n <= buf.len());
                at += n;
                count += 1;
            }
            Ok(None) | Err(_) => break,
        }
    }
    count
}

#[test]
fn fuzz_random_bytes_never_panic() {
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let limits = [
        Limits::default(),
        Limits::for_pieces(13),
        Limits {
            block_bytes_max: 1,
            extended_bytes_max: 0,
            unknown_bytes_max: 0,
            bitfield_bytes_max: 0,
            pieces: None,
        },
    ];
    let mut decoded = 0;
    for round in 0..20_000 {
        let mut d = MessageDecoder::new(limits[round % limits.len()]);
        let len = rng.below(96) as usize;
        let mut buf = Vec::with_capacity(len);
        while buf.len() < len {
            // Mostly small length prefixes and known ids, so that bodies are
            // reached and parsed, not only refused.
            match rng.below(4) {
                0 => {
                    let length = rng.below(20) as u32;
                    buf.extend_from_slice(&length.to_be_bytes());
                    buf.push(rng.below(24) as u8);
                }
                _ => buf.push(rng.next_u64() as u8),
            }
        }
        decoded += drain(&mut d, &buf);
    }
    // The generator reaches the parsers, not only the length checks.
    assert!(decoded > 1_000, "only {decoded} messages decoded");
}

#[test]
fn fuzz_mutated_valid_streams_never_panic() {
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let block = [1u8; 64];
    let mut stream = Vec::new();
    for msg in every_message(&block) {
        encode(&msg, &mut stream);
    }
    let mut decoded = 0;
    for round in 0..5_000 {
        let mut buf = stream.clone();
        for _ in 0..=rng.below(4) {
            let at = rng.below(buf.len() as u64) as usize;
            if let Some(b) = buf.get_mut(at) {
                *b = rng.next_u64() as u8;
            }
        }
        let cut = rng.below(buf.len() as u64 + 1) as usize;
        buf.truncate(cut);
        let limits = if round % 2 == 0 {
            Limits::for_pieces(20)
        } else {
            Limits::default()
        };
        decoded += drain(&mut MessageDecoder::new(limits), &buf);
    }
    assert!(decoded > 5_000, "only {decoded} messages decoded");
}
