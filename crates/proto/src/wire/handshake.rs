//! The BitTorrent handshake (BEP 3): `<19>"BitTorrent protocol"<reserved:8>
//! <info_hash:20><peer_id:20>`, 68 bytes, and the reserved bits that announce
//! the extensions ringseed speaks (BEP 10 extension protocol, BEP 6 fast
//! extension, BEP 5 DHT).
//!
//! The first 48 bytes (up to and including the info-hash) decode on their own
//! as a [`HandshakePrefix`]: an incoming connection is routed to the shard that
//! owns its torrent before the peer sends its id (a peer may even wait for our
//! handshake before sending its id).

use super::error::HandshakeError;
use crate::InfoHash;

/// The protocol string every handshake starts with (after its length byte).
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// Bytes in a whole handshake.
pub const HANDSHAKE_BYTES: usize = 68;
/// Bytes up to and including the info-hash.
pub const HANDSHAKE_PREFIX_BYTES: usize = 48;

/// Reserved byte and mask of the BEP 10 extension protocol bit.
const EXTENSION_BIT: (usize, u8) = (5, 0x10);
/// Reserved byte and mask of the BEP 6 fast extension bit.
const FAST_BIT: (usize, u8) = (7, 0x04);
/// Reserved byte and mask of the BEP 5 DHT bit.
const DHT_BIT: (usize, u8) = (7, 0x01);

/// A whole handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub info_hash: InfoHash,
    pub peer_id: [u8; 20],
    pub reserved: [u8; 8],
}

/// The first 48 bytes of a handshake: enough to pick the torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakePrefix {
    pub info_hash: InfoHash,
    pub reserved: [u8; 8],
}

/// Reserved bytes with the given extension bits set and all others clear.
pub fn reserved_bits(extension_protocol: bool, fast: bool, dht: bool) -> [u8; 8] {
    let mut r = [0u8; 8];
    for (on, (byte, mask)) in [
        (extension_protocol, EXTENSION_BIT),
        (fast, FAST_BIT),
        (dht, DHT_BIT),
    ] {
        if on {
            r[byte] |= mask;
        }
    }
    r
}

fn has_bit(reserved: &[u8; 8], (byte, mask): (usize, u8)) -> bool {
    reserved[byte] & mask != 0
}

/// Checks the protocol length byte and whatever of the protocol string is
/// already in `buf`, so a peer speaking something else is refused on its first
/// bytes rather than after 68.
fn check_protocol(buf: &[u8]) -> Result<(), HandshakeError> {
    let Some((&length, rest)) = buf.split_first() else {
        return Ok(());
    };
    if usize::from(length) != PROTOCOL.len() {
        return Err(HandshakeError::ProtocolLength { found: length });
    }
    let seen = &rest[..rest.len().min(PROTOCOL.len())];
    if seen != &PROTOCOL[..seen.len()] {
        return Err(HandshakeError::ProtocolText {
            found: String::from_utf8_lossy(seen).into_owned(),
        });
    }
    Ok(())
}

fn array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = buf.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

impl HandshakePrefix {
    /// Decodes the first 48 bytes of `buf`. `Ok(None)` means fewer than 48
    /// bytes are there yet (and those that are look right); bytes past 48 are
    /// left alone.
    pub fn decode(buf: &[u8]) -> Result<Option<HandshakePrefix>, HandshakeError> {
        check_protocol(buf)?;
        if buf.len() < HANDSHAKE_PREFIX_BYTES {
            return Ok(None);
        }
        Ok(Some(HandshakePrefix {
            reserved: array(buf, 20),
            info_hash: InfoHash(array(buf, 28)),
        }))
    }

    pub fn supports_extension_protocol(&self) -> bool {
        has_bit(&self.reserved, EXTENSION_BIT)
    }

    pub fn supports_fast(&self) -> bool {
        has_bit(&self.reserved, FAST_BIT)
    }

    pub fn supports_dht(&self) -> bool {
        has_bit(&self.reserved, DHT_BIT)
    }
}

impl Handshake {
    /// The 68 bytes on the wire.
    pub fn encode(&self) -> [u8; HANDSHAKE_BYTES] {
        let mut out = [0u8; HANDSHAKE_BYTES];
        out[0] = 19;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved);
        out[28..48].copy_from_slice(&self.info_hash.0);
        out[48..68].copy_from_slice(&self.peer_id);
        out
    }

    /// Decodes a whole handshake from the start of `buf`. `Ok(None)` means
    /// fewer than [`HANDSHAKE_BYTES`] are there yet; when it is `Some`, exactly
    /// [`HANDSHAKE_BYTES`] were consumed and any bytes after them are the
    /// peer's first messages.
    pub fn decode(buf: &[u8]) -> Result<Option<Handshake>, HandshakeError> {
        let Some(prefix) = HandshakePrefix::decode(buf)? else {
            return Ok(None);
        };
        if buf.len() < HANDSHAKE_BYTES {
            return Ok(None);
        }
        Ok(Some(Handshake {
            info_hash: prefix.info_hash,
            reserved: prefix.reserved,
            peer_id: array(buf, 48),
        }))
    }

    pub fn prefix(&self) -> HandshakePrefix {
        HandshakePrefix {
            info_hash: self.info_hash,
            reserved: self.reserved,
        }
    }

    pub fn supports_extension_protocol(&self) -> bool {
        has_bit(&self.reserved, EXTENSION_BIT)
    }

    pub fn supports_fast(&self) -> bool {
        has_bit(&self.reserved, FAST_BIT)
    }

    pub fn supports_dht(&self) -> bool {
        has_bit(&self.reserved, DHT_BIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handshake {
        Handshake {
            info_hash: InfoHash([0xab; 20]),
            peer_id: *b"-RS0001-abcdefghijkl",
            reserved: reserved_bits(true, true, false),
        }
    }

    #[test]
    fn encodes_68_bytes_in_order() {
        let bytes = sample().encode();
        assert_eq!(bytes.len(), 68);
        assert_eq!(bytes[0], 19);
        assert_eq!(&bytes[1..20], b"BitTorrent protocol");
        assert_eq!(bytes[25], 0x10);
        assert_eq!(bytes[27], 0x04);
        assert_eq!(&bytes[28..48], &[0xab; 20]);
        assert_eq!(&bytes[48..], b"-RS0001-abcdefghijkl");
    }

    #[test]
    fn round_trip_with_trailing_bytes() {
        let mut bytes = sample().encode().to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 1, 2]); // an unchoke follows
        assert_eq!(Handshake::decode(&bytes), Ok(Some(sample())));
    }

    #[test]
    fn messages_after_the_handshake_go_to_the_decoder() {
        use crate::wire::{Message, MessageDecoder};
        let mut bytes = sample().encode().to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 1, 0x0e, 0, 0, 0, 1, 1]);
        assert!(Handshake::decode(&bytes).unwrap().is_some());
        let rest = &bytes[HANDSHAKE_BYTES..];
        let mut d = MessageDecoder::default();
        assert_eq!(d.decode(rest), Ok(Some((Message::HaveAll, 5))));
        assert_eq!(d.decode(&rest[5..]), Ok(Some((Message::Unchoke, 5))));
    }

    #[test]
    fn every_short_prefix_needs_more() {
        let bytes = sample().encode();
        for n in 0..HANDSHAKE_BYTES {
            assert_eq!(Handshake::decode(&bytes[..n]), Ok(None), "at {n} bytes");
        }
        for n in 0..HANDSHAKE_PREFIX_BYTES {
            assert_eq!(HandshakePrefix::decode(&bytes[..n]), Ok(None));
        }
    }

    #[test]
    fn prefix_routes_on_48_bytes() {
        let bytes = sample().encode();
        let p = HandshakePrefix::decode(&bytes[..48]).unwrap().unwrap();
        assert_eq!(p, sample().prefix());
        assert_eq!(p.info_hash, InfoHash([0xab; 20]));
        assert!(p.supports_extension_protocol() && p.supports_fast() && !p.supports_dht());
        // The whole handshake is still not there.
        assert_eq!(Handshake::decode(&bytes[..48]), Ok(None));
    }

    #[test]
    fn reserved_bits_are_the_documented_ones() {
        assert_eq!(
            reserved_bits(true, false, false),
            [0, 0, 0, 0, 0, 0x10, 0, 0]
        );
        assert_eq!(
            reserved_bits(false, true, false),
            [0, 0, 0, 0, 0, 0, 0, 0x04]
        );
        assert_eq!(
            reserved_bits(false, false, true),
            [0, 0, 0, 0, 0, 0, 0, 0x01]
        );
        let mut h = sample();
        h.reserved = [0xff; 8];
        assert!(h.supports_extension_protocol() && h.supports_fast() && h.supports_dht());
        h.reserved = [0; 8];
        assert!(!h.supports_extension_protocol() && !h.supports_fast() && !h.supports_dht());
        // Bits of other extensions do not count as ours.
        h.reserved = [0xff, 0xff, 0xff, 0xff, 0xff, 0xef, 0xff, 0xfa];
        assert!(!h.supports_extension_protocol() && !h.supports_fast() && !h.supports_dht());
    }

    #[test]
    fn wrong_protocol_length_is_refused_on_the_first_byte() {
        assert_eq!(
            Handshake::decode(&[18]),
            Err(HandshakeError::ProtocolLength { found: 18 })
        );
        assert_eq!(
            HandshakePrefix::decode(&[0]),
            Err(HandshakeError::ProtocolLength { found: 0 })
        );
    }

    #[test]
    fn wrong_protocol_text_is_refused_as_soon_as_it_differs() {
        assert_eq!(
            Handshake::decode(b"\x13BitTorrent"),
            Ok(None),
            "a correct partial string waits"
        );
        assert_eq!(
            Handshake::decode(b"\x13GET "),
            Err(HandshakeError::ProtocolText {
                found: "GET ".into()
            })
        );
        let mut bytes = sample().encode();
        bytes[19] = b'X';
        assert_eq!(
            Handshake::decode(&bytes),
            Err(HandshakeError::ProtocolText {
                found: "BitTorrent protocoX".into()
            })
        );
        // Not UTF-8: still an error, no panic.
        bytes[1] = 0xff;
        assert!(matches!(
            Handshake::decode(&bytes),
            Err(HandshakeError::ProtocolText { .. })
        ));
    }
}
