//! BEP 9 `ut_metadata` messages: the payload of an extended message (after
//! its id byte) that asks for, sends or refuses one 16 KiB piece of a
//! torrent's info dictionary.
//!
//! Boundary: this is the codec only. Which pieces to ask for, and checking the
//! assembled dictionary against the info-hash, are `magnet::metadata`'s job;
//! serving pieces is the engine's (with [`piece_of`]).
//!
//! Rules, decided on purpose:
//! - the message is a bencoded dictionary; `msg_type` and `piece` are required
//!   integers in every message, `total_size` is required in a data message and
//!   ignored in the others; unknown keys are ignored (BEP 9 allows extensions);
//! - `msg_type` other than 0 (request), 1 (data) or 2 (reject) is an error:
//!   BEP 9 says to ignore it, and a caller may do so on
//!   [`UtMetadataError::UnknownMessageType`], but it is never silently taken;
//! - a request or reject with bytes after its dictionary is an error; a data
//!   message's piece bytes are whatever follows the dictionary;
//! - a data message is checked against its own `total_size`: at most
//!   [`METADATA_BYTES_MAX`], `piece` inside it, and the bytes exactly the
//!   length of that piece (16 KiB, less for the last one), which also bounds
//!   them by [`METADATA_PIECE_BYTES`]; whether `total_size` is the size the
//!   peer announced is the caller's check;
//! - writing is canonical bencode (sorted keys).

use crate::bencode::{self, DecodeError, Encoder, Value};

/// The extension's name in a BEP 10 handshake's `m` dictionary.
pub const EXTENSION_NAME: &str = "ut_metadata";
/// Bytes of every piece of the info dictionary but the last (BEP 9).
pub const METADATA_PIECE_BYTES: usize = 16 * 1024;
/// Largest info dictionary accepted (libtorrent's default max_metadata_size).
pub const METADATA_BYTES_MAX: u64 = 30 * 1024 * 1024;
/// Most pieces an accepted info dictionary has.
pub const METADATA_PIECES_MAX: u32 =
    METADATA_BYTES_MAX.div_ceil(METADATA_PIECE_BYTES as u64) as u32;

const MSG_REQUEST: i64 = 0;
const MSG_DATA: i64 = 1;
const MSG_REJECT: i64 = 2;

// A data message (its dictionary is under 100 bytes) must fit the wire
// decoder's default extended-message limit.
const _: () =
    assert!(METADATA_PIECE_BYTES + 100 <= super::decoder::EXTENDED_BYTES_MAX_DEFAULT as usize);
const _: () =
    assert!(METADATA_PIECES_MAX as u64 * METADATA_PIECE_BYTES as u64 >= METADATA_BYTES_MAX);

/// One `ut_metadata` message, borrowing a data message's bytes from the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataMessage<'a> {
    /// `msg_type` 0: send me piece `piece`.
    Request { piece: u32 },
    /// `msg_type` 1: piece `piece` of a `total_size`-byte info dictionary.
    Data {
        piece: u32,
        total_size: u64,
        data: &'a [u8],
    },
    /// `msg_type` 2: I will not send piece `piece`.
    Reject { piece: u32 },
}

/// What was wrong with a `ut_metadata` payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UtMetadataError {
    #[error("ut_metadata message is not bencode: {0}")]
    Bencode(#[from] DecodeError),
    #[error("ut_metadata message is a bencoded {found}, expected a dictionary")]
    NotADictionary { found: &'static str },
    #[error("ut_metadata message has no integer msg_type")]
    MissingMessageType,
    #[error("ut_metadata msg_type {found} is unknown (expected 0 request, 1 data or 2 reject)")]
    UnknownMessageType { found: i64 },
    #[error("ut_metadata message has no integer piece")]
    MissingPiece,
    #[error("ut_metadata piece {found} is out of range (expected 0 to 4294967295)")]
    BadPiece { found: i64 },
    #[error("ut_metadata data message has no integer total_size")]
    MissingTotalSize,
    #[error("ut_metadata total_size {found} is not a positive size")]
    BadTotalSize { found: i64 },
    #[error("ut_metadata total_size {found} bytes is over the limit of {max} bytes")]
    TotalSizeTooLarge { found: u64, max: u64 },
    #[error("ut_metadata piece {piece} is beyond total_size {total_size} ({pieces} pieces)")]
    PieceBeyondTotalSize {
        piece: u32,
        total_size: u64,
        pieces: u32,
    },
    #[error("ut_metadata piece {piece} carries {found} bytes, over the {max}-byte piece size")]
    DataTooLong {
        piece: u32,
        found: usize,
        max: usize,
    },
    #[error("ut_metadata piece {piece} carries {found} bytes, more than the {expected} left in the metadata")]
    DataPastEnd {
        piece: u32,
        found: usize,
        expected: usize,
    },
    #[error("ut_metadata piece {piece} carries {found} bytes, expected {expected}")]
    DataTooShort {
        piece: u32,
        found: usize,
        expected: usize,
    },
    #[error("ut_metadata {message} has {count} bytes after its dictionary, expected none")]
    TrailingBytes { message: &'static str, count: usize },
}

impl<'a> MetadataMessage<'a> {
    /// Reads a payload (the bytes after the extended message's id byte).
    pub fn parse(payload: &'a [u8]) -> Result<MetadataMessage<'a>, UtMetadataError> {
        let (root, used) = bencode::decode_prefix(payload)?;
        let dict = root.as_dict().ok_or(UtMetadataError::NotADictionary {
            found: root.type_name(),
        })?;
        let msg_type = dict
            .get(b"msg_type")
            .and_then(Value::as_int)
            .ok_or(UtMetadataError::MissingMessageType)?;
        if !(MSG_REQUEST..=MSG_REJECT).contains(&msg_type) {
            return Err(UtMetadataError::UnknownMessageType { found: msg_type });
        }
        let piece = dict
            .get(b"piece")
            .and_then(Value::as_int)
            .ok_or(UtMetadataError::MissingPiece)?;
        let piece = u32::try_from(piece).map_err(|_| UtMetadataError::BadPiece { found: piece })?;
        let rest = payload.get(used..).unwrap_or_default();
        let no_trailing = |message: &'static str| {
            if rest.is_empty() {
                Ok(())
            } else {
                Err(UtMetadataError::TrailingBytes {
                    message,
                    count: rest.len(),
                })
            }
        };
        match msg_type {
            MSG_REQUEST => {
                no_trailing("request")?;
                Ok(MetadataMessage::Request { piece })
            }
            MSG_REJECT => {
                no_trailing("reject")?;
                Ok(MetadataMessage::Reject { piece })
            }
            _ => {
                let total = dict
                    .get(b"total_size")
                    .and_then(Value::as_int)
                    .ok_or(UtMetadataError::MissingTotalSize)?;
                let total_size = u64::try_from(total)
                    .ok()
                    .filter(|&t| t > 0)
                    .ok_or(UtMetadataError::BadTotalSize { found: total })?;
                check_data(piece, total_size, rest)?;
                Ok(MetadataMessage::Data {
                    piece,
                    total_size,
                    data: rest,
                })
            }
        }
    }

    /// Appends the payload (canonical bencode, a data message's bytes after it).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (msg_type, piece) = match *self {
            MetadataMessage::Request { piece } => (MSG_REQUEST, piece),
            MetadataMessage::Data { piece, .. } => (MSG_DATA, piece),
            MetadataMessage::Reject { piece } => (MSG_REJECT, piece),
        };
        let mut enc = Encoder::new(out);
        enc.begin_dict();
        enc.bytes(b"msg_type");
        enc.int(msg_type);
        enc.bytes(b"piece");
        enc.int(i64::from(piece));
        if let MetadataMessage::Data { total_size, .. } = *self {
            enc.bytes(b"total_size");
            // Sizes past i64::MAX cannot be bencoded; they saturate.
            enc.int(i64::try_from(total_size).unwrap_or(i64::MAX));
        }
        enc.end();
        if let MetadataMessage::Data { data, .. } = *self {
            out.extend_from_slice(data);
        }
    }
}

/// The checks of a data message against its own `total_size`.
fn check_data(piece: u32, total_size: u64, data: &[u8]) -> Result<(), UtMetadataError> {
    if total_size > METADATA_BYTES_MAX {
        return Err(UtMetadataError::TotalSizeTooLarge {
            found: total_size,
            max: METADATA_BYTES_MAX,
        });
    }
    let Some(expected) = piece_len(total_size, piece) else {
        return Err(UtMetadataError::PieceBeyondTotalSize {
            piece,
            total_size,
            pieces: metadata_pieces(total_size),
        });
    };
    if data.len() > METADATA_PIECE_BYTES {
        return Err(UtMetadataError::DataTooLong {
            piece,
            found: data.len(),
            max: METADATA_PIECE_BYTES,
        });
    }
    if data.len() > expected {
        return Err(UtMetadataError::DataPastEnd {
            piece,
            found: data.len(),
            expected,
        });
    }
    if data.len() < expected {
        return Err(UtMetadataError::DataTooShort {
            piece,
            found: data.len(),
            expected,
        });
    }
    Ok(())
}

/// How many pieces an info dictionary of `total_size` bytes has (saturating
/// at `u32::MAX`).
pub fn metadata_pieces(total_size: u64) -> u32 {
    u32::try_from(total_size.div_ceil(METADATA_PIECE_BYTES as u64)).unwrap_or(u32::MAX)
}

/// Bytes of piece `piece` of a `total_size`-byte info dictionary, `None` past
/// its end.
pub fn piece_len(total_size: u64, piece: u32) -> Option<usize> {
    let start = u64::from(piece).checked_mul(METADATA_PIECE_BYTES as u64)?;
    let left = total_size.checked_sub(start).filter(|&l| l > 0)?;
    Some(left.min(METADATA_PIECE_BYTES as u64) as usize)
}

/// The bytes of piece `piece` of an info dictionary, `None` out of range.
pub fn piece_of(info: &[u8], piece: u32) -> Option<&[u8]> {
    let len = piece_len(info.len() as u64, piece)?;
    let start = (piece as usize).checked_mul(METADATA_PIECE_BYTES)?;
    info.get(start..start.checked_add(len)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_payload(piece: u32, total: u64, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MetadataMessage::Data {
            piece,
            total_size: total,
            data,
        }
        .encode(&mut out);
        out
    }

    #[test]
    fn encodes_canonically() {
        let mut out = Vec::new();
        MetadataMessage::Request { piece: 3 }.encode(&mut out);
        assert_eq!(out, b"d8:msg_typei0e5:piecei3ee");
        out.clear();
        MetadataMessage::Reject { piece: 0 }.encode(&mut out);
        assert_eq!(out, b"d8:msg_typei2e5:piecei0ee");
        assert_eq!(
            data_payload(1, 16_390, b"abcdef"),
            b"d8:msg_typei1e5:piecei1e10:total_sizei16390eeabcdef"
        );
    }

    #[test]
    fn round_trips() {
        let full = vec![7u8; METADATA_PIECE_BYTES];
        let cases = [
            MetadataMessage::Request { piece: 0 },
            MetadataMessage::Request { piece: u32::MAX },
            MetadataMessage::Reject { piece: 12 },
            MetadataMessage::Data {
                piece: 0,
                total_size: 1,
                data: b"x",
            },
            MetadataMessage::Data {
                piece: 0,
                total_size: 40_000,
                data: &full,
            },
            MetadataMessage::Data {
                piece: 2,
                total_size: 40_000,
                data: &full[..40_000 - 2 * METADATA_PIECE_BYTES],
            },
            MetadataMessage::Data {
                piece: METADATA_PIECES_MAX - 1,
                total_size: METADATA_BYTES_MAX,
                data: &full,
            },
        ];
        for m in cases {
            let mut out = Vec::new();
            m.encode(&mut out);
            assert_eq!(MetadataMessage::parse(&out), Ok(m.clone()), "{m:?}");
        }
    }

    #[test]
    fn tolerates_unknown_keys_and_total_size_in_requests() {
        let m = MetadataMessage::parse(b"d1:xi9e8:msg_typei0e5:piecei5e10:total_sizei99ee");
        assert_eq!(m, Ok(MetadataMessage::Request { piece: 5 }));
    }

    #[test]
    fn malformed_messages_give_their_error() {
        use UtMetadataError as E;
        let long = vec![0u8; METADATA_PIECE_BYTES + 1];
        let mut too_long = b"d8:msg_typei1e5:piecei0e10:total_sizei100000ee".to_vec();
        too_long.extend_from_slice(&long);
        let cases: Vec<(Vec<u8>, E)> = vec![
            (b"le".to_vec(), E::NotADictionary { found: "list" }),
            (b"d5:piecei0ee".to_vec(), E::MissingMessageType),
            (b"d8:msg_type1:05:piecei0ee".to_vec(), E::MissingMessageType),
            (
                b"d8:msg_typei3e5:piecei0ee".to_vec(),
                E::UnknownMessageType { found: 3 },
            ),
            (
                b"d8:msg_typei-1e5:piecei0ee".to_vec(),
                E::UnknownMessageType { found: -1 },
            ),
            (b"d8:msg_typei0ee".to_vec(), E::MissingPiece),
            (
                b"d8:msg_typei0e5:piecei-1ee".to_vec(),
                E::BadPiece { found: -1 },
            ),
            (
                b"d8:msg_typei2e5:piecei4294967296ee".to_vec(),
                E::BadPiece { found: 1 << 32 },
            ),
            (
                b"d8:msg_typei0e5:piecei0eex".to_vec(),
                E::TrailingBytes {
                    message: "request",
                    count: 1,
                },
            ),
            (
                b"d8:msg_typei2e5:piecei0eexy".to_vec(),
                E::TrailingBytes {
                    message: "reject",
                    count: 2,
                },
            ),
            (b"d8:msg_typei1e5:piecei0eex".to_vec(), E::MissingTotalSize),
            (
                b"d8:msg_typei1e5:piecei0e10:total_sizei0eex".to_vec(),
                E::BadTotalSize { found: 0 },
            ),
            (
                b"d8:msg_typei1e5:piecei0e10:total_sizei-5eex".to_vec(),
                E::BadTotalSize { found: -5 },
            ),
            (
                b"d8:msg_typei1e5:piecei0e10:total_sizei31457281eex".to_vec(),
                E::TotalSizeTooLarge {
                    found: METADATA_BYTES_MAX + 1,
                    max: METADATA_BYTES_MAX,
                },
            ),
            (
                b"d8:msg_typei1e5:piecei1e10:total_sizei16384eex".to_vec(),
                E::PieceBeyondTotalSize {
                    piece: 1,
                    total_size: 16_384,
                    pieces: 1,
                },
            ),
            (
                too_long,
                E::DataTooLong {
                    piece: 0,
                    found: METADATA_PIECE_BYTES + 1,
                    max: METADATA_PIECE_BYTES,
                },
            ),
            (
                data_payload(1, 16_390, b"abcdefg"),
                E::DataPastEnd {
                    piece: 1,
                    found: 7,
                    expected: 6,
                },
            ),
            (
                data_payload(0, 16_390, b"abc"),
                E::DataTooShort {
                    piece: 0,
                    found: 3,
                    expected: METADATA_PIECE_BYTES,
                },
            ),
            (
                data_payload(0, 3, b""),
                E::DataTooShort {
                    piece: 0,
                    found: 0,
                    expected: 3,
                },
            ),
        ];
        for (payload, want) in cases {
            assert_eq!(
                MetadataMessage::parse(&payload),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(&payload)
            );
        }
        assert!(matches!(
            MetadataMessage::parse(b"d8:msg_type"),
            Err(E::Bencode(_))
        ));
        assert!(matches!(MetadataMessage::parse(b""), Err(E::Bencode(_))));
    }

    #[test]
    fn pieces_and_slices() {
        assert_eq!(metadata_pieces(0), 0);
        assert_eq!(metadata_pieces(1), 1);
        assert_eq!(metadata_pieces(16_384), 1);
        assert_eq!(metadata_pieces(16_385), 2);
        assert_eq!(metadata_pieces(METADATA_BYTES_MAX), METADATA_PIECES_MAX);
        assert_eq!(metadata_pieces(u64::MAX), u32::MAX);
        let info: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        assert_eq!(piece_of(&info, 0), info.get(..16_384));
        assert_eq!(piece_of(&info, 1), info.get(16_384..32_768));
        assert_eq!(piece_of(&info, 2), info.get(32_768..));
        assert_eq!(piece_of(&info, 3), None);
        assert_eq!(piece_of(&info, u32::MAX), None);
        assert_eq!(piece_of(&[], 0), None);
        assert_eq!(piece_of(&info[..16_384], 1), None);
    }
}
