//! Peer messages (BEP 3, BEP 6, BEP 10) and their encoder.
//!
//! On the wire every message after the handshake is `<length:u32 big-endian>
//! <id:u8><payload>`, where `length` counts the id and the payload; a length of
//! 0 is a keep-alive. A [`Message`] borrows its variable-size parts (bitfield,
//! block, extended payload) from the buffer it was decoded from.

/// Message ids.
pub mod id {
    pub const CHOKE: u8 = 0;
    pub const UNCHOKE: u8 = 1;
    pub const INTERESTED: u8 = 2;
    pub const NOT_INTERESTED: u8 = 3;
    pub const HAVE: u8 = 4;
    pub const BITFIELD: u8 = 5;
    pub const REQUEST: u8 = 6;
    pub const PIECE: u8 = 7;
    pub const CANCEL: u8 = 8;
    /// BEP 5: the peer's DHT port.
    pub const PORT: u8 = 9;
    /// BEP 6 fast extension.
    pub const SUGGEST_PIECE: u8 = 0x0d;
    pub const HAVE_ALL: u8 = 0x0e;
    pub const HAVE_NONE: u8 = 0x0f;
    pub const REJECT_REQUEST: u8 = 0x10;
    pub const ALLOWED_FAST: u8 = 0x11;
    /// BEP 10 extension protocol.
    pub const EXTENDED: u8 = 20;
}

/// Bytes before a piece message's block: length (4), id (1), piece (4), offset (4).
pub const PIECE_HEADER_BYTES: usize = 13;

/// One peer message. Variable-size parts borrow from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have {
        piece: u32,
    },
    /// One bit per piece, high bit of the first byte is piece 0.
    Bitfield(&'a [u8]),
    Request {
        piece: u32,
        offset: u32,
        length: u32,
    },
    Piece {
        piece: u32,
        offset: u32,
        block: &'a [u8],
    },
    Cancel {
        piece: u32,
        offset: u32,
        length: u32,
    },
    Port(u16),
    SuggestPiece(u32),
    HaveAll,
    HaveNone,
    RejectRequest {
        piece: u32,
        offset: u32,
        length: u32,
    },
    AllowedFast(u32),
    /// BEP 10: `id` 0 is the extension handshake, others are the ids the
    /// receiver assigned in its handshake's `m` dictionary.
    Extended {
        id: u8,
        payload: &'a [u8],
    },
    /// A message id this codec does not know. BEP 3 says to ignore these; it
    /// is decoded (within [`Limits::unknown_bytes_max`]) so the caller sees how
    /// many bytes it took, and may count or log it.
    ///
    /// [`Limits::unknown_bytes_max`]: super::Limits::unknown_bytes_max
    Unknown {
        id: u8,
        payload: &'a [u8],
    },
}

impl Message<'_> {
    /// The message id, or `None` for a keep-alive (which has none).
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => id::CHOKE,
            Message::Unchoke => id::UNCHOKE,
            Message::Interested => id::INTERESTED,
            Message::NotInterested => id::NOT_INTERESTED,
            Message::Have { .. } => id::HAVE,
            Message::Bitfield(_) => id::BITFIELD,
            Message::Request { .. } => id::REQUEST,
            Message::Piece { .. } => id::PIECE,
            Message::Cancel { .. } => id::CANCEL,
            Message::Port(_) => id::PORT,
            Message::SuggestPiece(_) => id::SUGGEST_PIECE,
            Message::HaveAll => id::HAVE_ALL,
            Message::HaveNone => id::HAVE_NONE,
            Message::RejectRequest { .. } => id::REJECT_REQUEST,
            Message::AllowedFast(_) => id::ALLOWED_FAST,
            Message::Extended { .. } => id::EXTENDED,
            Message::Unknown { id, .. } => *id,
        })
    }

    /// Bytes after the id (0 for a keep-alive).
    pub fn payload_len(&self) -> usize {
        match self {
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 0,
            Message::Have { .. } | Message::SuggestPiece(_) | Message::AllowedFast(_) => 4,
            Message::Port(_) => 2,
            Message::Request { .. } | Message::Cancel { .. } | Message::RejectRequest { .. } => 12,
            Message::Bitfield(bits) => bits.len(),
            Message::Piece { block, .. } => 8 + block.len(),
            Message::Extended { payload, .. } => 1 + payload.len(),
            Message::Unknown { payload, .. } => payload.len(),
        }
    }

    /// Bytes on the wire, length prefix included.
    pub fn encoded_len(&self) -> usize {
        match self {
            Message::KeepAlive => 4,
            _ => 5 + self.payload_len(),
        }
    }

    /// A name for logs and errors.
    pub fn name(&self) -> &'static str {
        match self.id() {
            None => "keep-alive",
            Some(i) => name_of(i),
        }
    }
}

/// A name for message id `i`, for logs and errors.
pub fn name_of(i: u8) -> &'static str {
    match i {
        id::CHOKE => "choke",
        id::UNCHOKE => "unchoke",
        id::INTERESTED => "interested",
        id::NOT_INTERESTED => "not interested",
        id::HAVE => "have",
        id::BITFIELD => "bitfield",
        id::REQUEST => "request",
        id::PIECE => "piece",
        id::CANCEL => "cancel",
        id::PORT => "port",
        id::SUGGEST_PIECE => "suggest piece",
        id::HAVE_ALL => "have all",
        id::HAVE_NONE => "have none",
        id::REJECT_REQUEST => "reject request",
        id::ALLOWED_FAST => "allowed fast",
        id::EXTENDED => "extended",
        _ => "unknown",
    }
}

/// Appends the wire form of `msg` to `out`.
///
/// A message whose length does not fit the 32-bit prefix cannot be built from
/// anything the decoder accepts; its prefix saturates at `u32::MAX` (the
/// receiver refuses it) rather than wrapping.
pub fn encode(msg: &Message<'_>, out: &mut Vec<u8>) {
    out.reserve(msg.encoded_len());
    let Some(message_id) = msg.id() else {
        out.extend_from_slice(&0u32.to_be_bytes());
        return;
    };
    let length = u32::try_from(1 + msg.payload_len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.push(message_id);
    match *msg {
        Message::KeepAlive
        | Message::Choke
        | Message::Unchoke
        | Message::Interested
        | Message::NotInterested
        | Message::HaveAll
        | Message::HaveNone => {}
        Message::Have { piece: n } | Message::SuggestPiece(n) | Message::AllowedFast(n) => {
            out.extend_from_slice(&n.to_be_bytes())
        }
        Message::Port(port) => out.extend_from_slice(&port.to_be_bytes()),
        Message::Request {
            piece,
            offset,
            length,
        }
        | Message::Cancel {
            piece,
            offset,
            length,
        }
        | Message::RejectRequest {
            piece,
            offset,
            length,
        } => {
            out.extend_from_slice(&piece.to_be_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&length.to_be_bytes());
        }
        Message::Bitfield(bits) => out.extend_from_slice(bits),
        Message::Piece {
            piece,
            offset,
            block,
        } => {
            out.extend_from_slice(&piece.to_be_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(block);
        }
        Message::Extended { id, payload } => {
            out.push(id);
            out.extend_from_slice(payload);
        }
        Message::Unknown { payload, .. } => out.extend_from_slice(payload),
    }
}

/// The 13 bytes that precede a block of `block_len` bytes in a piece message,
/// so the engine can send header and block as two buffers (the block straight
/// from disk, never copied).
pub fn piece_header(piece: u32, offset: u32, block_len: u32) -> [u8; PIECE_HEADER_BYTES] {
    let mut h = [0u8; PIECE_HEADER_BYTES];
    h[0..4].copy_from_slice(&block_len.saturating_add(9).to_be_bytes());
    h[4] = id::PIECE;
    h[5..9].copy_from_slice(&piece.to_be_bytes());
    h[9..13].copy_from_slice(&offset.to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(msg: &Message<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(msg, &mut out);
        assert_eq!(out.len(), msg.encoded_len(), "{msg:?}");
        out
    }

    #[test]
    fn fixed_messages_have_the_documented_bytes() {
        assert_eq!(bytes(&Message::KeepAlive), [0, 0, 0, 0]);
        assert_eq!(bytes(&Message::Choke), [0, 0, 0, 1, 0]);
        assert_eq!(bytes(&Message::Unchoke), [0, 0, 0, 1, 1]);
        assert_eq!(bytes(&Message::Interested), [0, 0, 0, 1, 2]);
        assert_eq!(bytes(&Message::NotInterested), [0, 0, 0, 1, 3]);
        assert_eq!(
            bytes(&Message::Have { piece: 0x01020304 }),
            [0, 0, 0, 5, 4, 1, 2, 3, 4]
        );
        assert_eq!(
            bytes(&Message::Request {
                piece: 1,
                offset: 0x4000,
                length: 0x4000
            }),
            [0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0]
        );
        assert_eq!(bytes(&Message::Port(6881)), [0, 0, 0, 3, 9, 0x1a, 0xe1]);
        assert_eq!(bytes(&Message::HaveAll), [0, 0, 0, 1, 0x0e]);
        assert_eq!(bytes(&Message::HaveNone), [0, 0, 0, 1, 0x0f]);
        assert_eq!(
            bytes(&Message::Extended {
                id: 0,
                payload: b"de"
            }),
            [0, 0, 0, 4, 20, 0, b'd', b'e']
        );
    }

    #[test]
    fn piece_header_matches_the_encoder() {
        let block = [7u8; 100];
        let msg = Message::Piece {
            piece: 9,
            offset: 16384,
            block: &block,
        };
        let full = bytes(&msg);
        assert_eq!(piece_header(9, 16384, 100), full[..PIECE_HEADER_BYTES]);
        assert_eq!(&full[PIECE_HEADER_BYTES..], &block);
        // A length that cannot be sent saturates instead of wrapping.
        assert_eq!(piece_header(0, 0, u32::MAX)[..4], [0xff; 4]);
    }

    #[test]
    fn names_and_ids() {
        assert_eq!(Message::KeepAlive.id(), None);
        assert_eq!(Message::KeepAlive.name(), "keep-alive");
        assert_eq!(Message::AllowedFast(1).name(), "allowed fast");
        assert_eq!(
            Message::Unknown {
                id: 99,
                payload: &[]
            }
            .name(),
            "unknown"
        );
    }
}
