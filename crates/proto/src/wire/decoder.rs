//! `MessageDecoder`: the streaming, bounded decoder of peer messages.
//!
//! The caller keeps the unconsumed received bytes in one buffer and calls
//! [`MessageDecoder::decode`] on them; it returns one message and the bytes it
//! took, or `None` when the next message is not complete yet. Every length is
//! checked as soon as it can be: the 4-byte length prefix against the largest
//! message the limits allow, then, with the id byte, against that message
//! type's own size. So a peer announcing a 4 GiB message is refused on its
//! first 4 bytes, a 1 MiB "have" on its first 5, and the buffer never has to
//! hold more than [`MessageDecoder::message_bytes_max`] + 4 bytes.
//!
//! Checks against the torrent (piece index in range, block inside the piece)
//! are the engine's: the decoder checks the wire format only, plus the
//! bitfield's exact size and spare bits when the piece count is known.

use super::error::WireError;
use super::message::{id, name_of, Message};
use crate::limits;
use crate::torrent::BLOCK_BYTES;

/// Default largest block in a request or piece message, in bytes (16 KiB, the
/// size every client requests).
pub const BLOCK_BYTES_MAX_DEFAULT: u32 = 16 * 1024;
/// Default largest extended message payload, in bytes (extension id included).
pub const EXTENDED_BYTES_MAX_DEFAULT: u32 = 64 * 1024;
/// Default largest payload of a message with an unknown id, in bytes (room for
/// BEP 52 hash messages, which this codec does not decode yet).
pub const UNKNOWN_BYTES_MAX_DEFAULT: u32 = 32 * 1024;
/// Largest bitfield accepted while the piece count is unknown, in bytes (one bit
/// for each of the most pieces a torrent may have).
pub const BITFIELD_BYTES_MAX_DEFAULT: u32 = limits::PIECES_PER_TORRENT_MAX.div_ceil(8) as u32;
/// Largest `block_bytes_max` any configuration may set, in bytes (128 KiB: the
/// largest block any deployed client has been seen to request; 16 KiB is the
/// norm). `PeerConfig::validate` holds a connection's block to it.
pub const BLOCK_BYTES_MAX_LIMIT: u32 = 128 * 1024;

// We request blocks of `BLOCK_BYTES`: the piece messages that answer them
// must pass the decoder with its default limits, and a configuration may
// only raise the block size up to the limit.
const _: () = assert!(BLOCK_BYTES <= BLOCK_BYTES_MAX_DEFAULT);
const _: () = assert!(BLOCK_BYTES_MAX_DEFAULT <= BLOCK_BYTES_MAX_LIMIT);
// A piece message's length prefix (id, index, begin and block) is a u32.
const _: () = assert!(BLOCK_BYTES_MAX_LIMIT <= u32::MAX - 9);
// The largest limits are those of the largest torrent: its bitfield is
// exactly the bitfield accepted while the piece count is unknown.
const _: () = assert!(
    Limits::LARGEST.bitfield_bytes() == BITFIELD_BYTES_MAX_DEFAULT
        && Limits::DEFAULT.bitfield_bytes() == BITFIELD_BYTES_MAX_DEFAULT
);

/// What the decoder accepts. All sizes are payload bytes (after the id byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest block in a request, cancel, reject or piece message.
    pub block_bytes_max: u32,
    /// The torrent's piece count, when known: a bitfield must then be exactly
    /// `ceil(pieces / 8)` bytes with its spare bits clear.
    pub pieces: Option<u32>,
    /// Largest bitfield while `pieces` is `None`.
    pub bitfield_bytes_max: u32,
    /// Largest extended message (BEP 10), extension id byte included.
    pub extended_bytes_max: u32,
    /// Largest message with an id this codec does not know.
    pub unknown_bytes_max: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

impl Limits {
    /// The default limits, piece count unknown.
    pub const DEFAULT: Limits = Limits {
        block_bytes_max: BLOCK_BYTES_MAX_DEFAULT,
        pieces: None,
        bitfield_bytes_max: BITFIELD_BYTES_MAX_DEFAULT,
        extended_bytes_max: EXTENDED_BYTES_MAX_DEFAULT,
        unknown_bytes_max: UNKNOWN_BYTES_MAX_DEFAULT,
    };

    /// The largest limits a peer connection can have: blocks of
    /// [`BLOCK_BYTES_MAX_LIMIT`], a torrent of
    /// [`PIECES_PER_TORRENT_MAX`](limits::PIECES_PER_TORRENT_MAX) pieces.
    /// [`RECEIVE_BUFFER_BYTES_MAX`](limits::RECEIVE_BUFFER_BYTES_MAX) is its
    /// receive bound.
    pub const LARGEST: Limits = Limits {
        block_bytes_max: BLOCK_BYTES_MAX_LIMIT,
        pieces: Some(limits::PIECES_PER_TORRENT_MAX as u32),
        ..Limits::DEFAULT
    };

    /// The default limits for a torrent of `pieces` pieces.
    pub const fn for_pieces(pieces: u32) -> Limits {
        Limits {
            pieces: Some(pieces),
            ..Limits::DEFAULT
        }
    }

    const fn bitfield_bytes(&self) -> u32 {
        match self.pieces {
            Some(n) => n.div_ceil(8),
            None => self.bitfield_bytes_max,
        }
    }

    /// The largest length prefix (id plus payload) any message may have.
    pub const fn message_bytes_max(&self) -> u32 {
        let mut payload = 12;
        let sizes = [
            self.block_bytes_max.saturating_add(8),
            self.bitfield_bytes(),
            self.extended_bytes_max,
            self.unknown_bytes_max,
        ];
        let mut i = 0;
        while i < sizes.len() {
            if sizes[i] > payload {
                payload = sizes[i];
            }
            i += 1;
        }
        payload.saturating_add(1)
    }

    /// Most bytes a connection decoding with these limits may keep received
    /// and not yet consumed: the largest message it accepts (for a large
    /// torrent, its bitfield) less one byte, plus one receive, and never
    /// less than [`RECEIVE_BUFFER_BYTES_MIN`](limits::RECEIVE_BUFFER_BYTES_MIN).
    /// See [`limits::receive_buffer_bytes_max`].
    pub const fn receive_buffer_bytes_max(&self) -> usize {
        limits::receive_buffer_bytes_max(self.message_bytes_max())
    }
}

/// The streaming decoder; one per connection.
#[derive(Debug, Clone)]
pub struct MessageDecoder {
    limits: Limits,
    message_bytes_max: u32,
    bytes_wanted: usize,
}

/// Bytes of the length prefix.
const PREFIX_BYTES: usize = limits::MESSAGE_PREFIX_BYTES;

impl MessageDecoder {
    pub fn new(limits: Limits) -> MessageDecoder {
        MessageDecoder {
            message_bytes_max: limits.message_bytes_max(),
            limits,
            bytes_wanted: PREFIX_BYTES,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The largest length prefix accepted (id plus payload, in bytes).
    pub fn message_bytes_max(&self) -> u32 {
        self.message_bytes_max
    }

    /// After `decode` returned `None`: how many bytes, counted from the start
    /// of the buffer it was given, are needed before it can say more.
    pub fn bytes_wanted(&self) -> usize {
        self.bytes_wanted
    }

    /// Learns the piece count (e.g. once the metadata has arrived), which
    /// tightens the bitfield check.
    pub fn set_pieces(&mut self, pieces: u32) {
        self.limits.pieces = Some(pieces);
        self.message_bytes_max = self.limits.message_bytes_max();
    }

    /// Decodes the message at the start of `buf`. `Ok(None)`: it is not all
    /// there yet (see [`bytes_wanted`](Self::bytes_wanted)). `Ok(Some((m, n)))`:
    /// `m` took the first `n` bytes of `buf`. An error means the peer broke the
    /// protocol; the connection should be closed.
    pub fn decode<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Message<'a>, usize)>, WireError> {
        let Some((prefix, rest)) = buf.split_first_chunk::<PREFIX_BYTES>() else {
            self.bytes_wanted = PREFIX_BYTES;
            return Ok(None);
        };
        let length = u32::from_be_bytes(*prefix);
        if length == 0 {
            return Ok(Some((Message::KeepAlive, PREFIX_BYTES)));
        }
        if length > self.message_bytes_max {
            return Err(WireError::MessageTooLong {
                length,
                limit: self.message_bytes_max,
            });
        }
        let Some(&message_id) = rest.first() else {
            self.bytes_wanted = PREFIX_BYTES + 1;
            return Ok(None);
        };
        let payload_len = length - 1;
        self.check_payload_len(message_id, payload_len)?;
        let total = PREFIX_BYTES + length as usize;
        let Some(payload) = buf.get(PREFIX_BYTES + 1..total) else {
            self.bytes_wanted = total;
            return Ok(None);
        };
        let msg = self.parse(message_id, payload)?;
        self.bytes_wanted = PREFIX_BYTES;
        Ok(Some((msg, total)))
    }

    /// The checks that need only the id and the length, made before the
    /// payload is waited for.
    fn check_payload_len(&self, message_id: u8, found: u32) -> Result<(), WireError> {
        let message = name_of(message_id);
        let exact = |expected: u32| {
            if found == expected {
                Ok(())
            } else {
                Err(WireError::PayloadLength {
                    message,
                    expected,
                    found,
                })
            }
        };
        let at_most = |limit: u32| {
            if found <= limit {
                Ok(())
            } else {
                Err(WireError::MessageTooLongForId {
                    message,
                    id: message_id,
                    length: found,
                    limit,
                })
            }
        };
        match message_id {
            id::CHOKE | id::UNCHOKE | id::INTERESTED | id::NOT_INTERESTED => exact(0),
            id::HAVE_ALL | id::HAVE_NONE => exact(0),
            id::HAVE | id::SUGGEST_PIECE | id::ALLOWED_FAST => exact(4),
            id::REQUEST | id::CANCEL | id::REJECT_REQUEST => exact(12),
            id::PORT => exact(2),
            id::BITFIELD => match self.limits.pieces {
                Some(pieces) => {
                    let expected = pieces.div_ceil(8);
                    if found == expected {
                        Ok(())
                    } else {
                        Err(WireError::BitfieldLength {
                            expected,
                            found,
                            pieces,
                        })
                    }
                }
                None => at_most(self.limits.bitfield_bytes_max),
            },
            id::PIECE => {
                if found < 8 {
                    return Err(WireError::PayloadTooShort {
                        message,
                        minimum: 8,
                        found,
                    });
                }
                self.check_block(message, found - 8)
            }
            id::EXTENDED => {
                if found < 1 {
                    return Err(WireError::PayloadTooShort {
                        message,
                        minimum: 1,
                        found,
                    });
                }
                at_most(self.limits.extended_bytes_max)
            }
            _ => at_most(self.limits.unknown_bytes_max),
        }
    }

    fn check_block(&self, message: &'static str, length: u32) -> Result<(), WireError> {
        if length == 0 || length > self.limits.block_bytes_max {
            return Err(WireError::BlockLength {
                message,
                length,
                limit: self.limits.block_bytes_max,
            });
        }
        Ok(())
    }

    /// Builds the message from a payload whose length has been checked.
    fn parse<'a>(&self, message_id: u8, payload: &'a [u8]) -> Result<Message<'a>, WireError> {
        let mut r = Reader(payload);
        Ok(match message_id {
            id::CHOKE => Message::Choke,
            id::UNCHOKE => Message::Unchoke,
            id::INTERESTED => Message::Interested,
            id::NOT_INTERESTED => Message::NotInterested,
            id::HAVE_ALL => Message::HaveAll,
            id::HAVE_NONE => Message::HaveNone,
            id::HAVE => Message::Have { piece: r.u32() },
            id::SUGGEST_PIECE => Message::SuggestPiece(r.u32()),
            id::ALLOWED_FAST => Message::AllowedFast(r.u32()),
            id::PORT => Message::Port(u16::from_be_bytes(r.array())),
            id::REQUEST | id::CANCEL | id::REJECT_REQUEST => {
                let (piece, offset, length) = (r.u32(), r.u32(), r.u32());
                self.check_block(name_of(message_id), length)?;
                match message_id {
                    id::REQUEST => Message::Request {
                        piece,
                        offset,
                        length,
                    },
                    id::CANCEL => Message::Cancel {
                        piece,
                        offset,
                        length,
                    },
                    _ => Message::RejectRequest {
                        piece,
                        offset,
                        length,
                    },
                }
            }
            id::BITFIELD => {
                if let Some(pieces) = self.limits.pieces {
                    check_spare_bits(payload, pieces)?;
                }
                Message::Bitfield(payload)
            }
            id::PIECE => {
                let (piece, offset) = (r.u32(), r.u32());
                Message::Piece {
                    piece,
                    offset,
                    block: r.0,
                }
            }
            id::EXTENDED => match payload.split_first() {
                Some((&ext, rest)) => Message::Extended {
                    id: ext,
                    payload: rest,
                },
                None => {
                    return Err(WireError::PayloadTooShort {
                        message: "extended",
                        minimum: 1,
                        found: 0,
                    })
                }
            },
            other => Message::Unknown { id: other, payload },
        })
    }
}

impl Default for MessageDecoder {
    fn default() -> Self {
        MessageDecoder::new(Limits::default())
    }
}

/// Refuses a bitfield with any bit set past the last piece.
fn check_spare_bits(bits: &[u8], pieces: u32) -> Result<(), WireError> {
    let used_in_last = pieces % 8;
    if used_in_last == 0 {
        return Ok(());
    }
    let spare_mask = 0xffu8 >> used_in_last;
    match bits.last() {
        Some(&last) if last & spare_mask != 0 => Err(WireError::BitfieldSpareBits { pieces }),
        _ => Ok(()),
    }
}

/// Reads big-endian fields from a payload whose length was checked; a short
/// payload reads as zeros rather than panicking.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn array<const N: usize>(&mut self) -> [u8; N] {
        match self.0.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.0 = rest;
                *head
            }
            None => [0; N],
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.array())
    }
}

#[cfg(test)]
mod tests;
