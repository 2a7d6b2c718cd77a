//! The errors of the wire codec: each names what was expected and what the
//! peer sent, so a disconnect can be logged with its reason.

use crate::bencode::DecodeError;

/// Why a handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("handshake protocol string length is {found}, expected 19")]
    ProtocolLength { found: u8 },
    #[error("handshake protocol string is {found:?}, expected \"BitTorrent protocol\"")]
    ProtocolText { found: String },
}

/// Why a peer message was refused. Any of these ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message length prefix {length} bytes is over the limit of {limit} bytes")]
    MessageTooLong { length: u32, limit: u32 },
    #[error("{message} message (id {id}) of {length} bytes is over its limit of {limit} bytes")]
    MessageTooLongForId {
        message: &'static str,
        id: u8,
        length: u32,
        limit: u32,
    },
    #[error("{message} message has a {found}-byte payload, expected {expected} bytes")]
    PayloadLength {
        message: &'static str,
        expected: u32,
        found: u32,
    },
    #[error("{message} message has a {found}-byte payload, expected at least {minimum} bytes")]
    PayloadTooShort {
        message: &'static str,
        minimum: u32,
        found: u32,
    },
    #[error("{message} message asks for a block of {length} bytes, expected 1 to {limit} bytes")]
    BlockLength {
        message: &'static str,
        length: u32,
        limit: u32,
    },
    #[error("bitfield of {found} bytes, expected {expected} bytes for {pieces} pieces")]
    BitfieldLength {
        expected: u32,
        found: u32,
        pieces: u32,
    },
    #[error("bitfield has spare bits set past piece {pieces}, expected them zero")]
    BitfieldSpareBits { pieces: u32 },
}

/// Why a BEP 10 extension handshake payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionHandshakeError {
    #[error("extension handshake is not valid bencode: {0}")]
    Bencode(#[from] DecodeError),
    #[error("extension handshake is a {found}, expected a dictionary")]
    NotADictionary { found: &'static str },
    #[error("extension handshake 'm' has {count} entries, over the limit of {limit}")]
    TooManyExtensions { count: usize, limit: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_the_evidence() {
        let e = WireError::MessageTooLong {
            length: u32::MAX,
            limit: 65537,
        };
        assert_eq!(
            e.to_string(),
            "message length prefix 4294967295 bytes is over the limit of 65537 bytes"
        );
        let e = WireError::BlockLength {
            message: "request",
            length: 0,
            limit: 16384,
        };
        assert_eq!(
            e.to_string(),
            "request message asks for a block of 0 bytes, expected 1 to 16384 bytes"
        );
        let e = HandshakeError::ProtocolText {
            found: "GET ".into(),
        };
        assert!(e.to_string().contains("\"GET \""));
        let e = ExtensionHandshakeError::TooManyExtensions {
            count: 65,
            limit: 64,
        };
        assert!(e.to_string().contains("65") && e.to_string().contains("64"));
    }
}
