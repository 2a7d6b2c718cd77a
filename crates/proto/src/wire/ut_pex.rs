//! The BEP 11 peer exchange message (`ut_pex`), sent as a BEP 10 extended
//! message: a bencoded dictionary of compact peer lists, the peers a sender
//! connected to (`added`, with one flags byte each in `added.f`) and those it
//! lost (`dropped`) since its last message.
//!
//! Boundary: this is the codec only. When to send what to which peer is
//! `engine::pex`; the payload is already bounded by the wire decoder's
//! `extended_bytes_max`.
//!
//! Decided on purpose:
//! - IPv4 lists are `added`, `added.f`, `dropped` (6 bytes an entry), IPv6
//!   lists `added6`, `added6.f`, `dropped6` (18 bytes). A list whose length is
//!   not a whole number of entries, or a key of the wrong type, is an error
//!   naming the key (the message is then ignored as a whole).
//! - At most [`PEX_PARSED_MAX`] entries are read from each list; more are
//!   ignored, not an error. Entries with port 0 are skipped.
//! - A flags string shorter than its list gives flags 0 to the rest; longer
//!   is ignored past the list.
//! - A payload that is not bencode or not a dictionary is an error; unknown
//!   keys are ignored.
//! - Writing is canonical bencode with all six keys present (as libtorrent
//!   writes them), entries in the order given, port 0 entries left out; an
//!   IPv6 address (IPv4-mapped included) goes to the IPv6 lists.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::bencode::{self, DecodeError, OwnedValue};

/// The name under which the extension is announced in the BEP 10 `m`.
pub const EXTENSION_NAME: &str = "ut_pex";
/// Most `added` entries we put in one message (both families together).
pub const PEX_ADDED_MAX: usize = 50;
/// Most `dropped` entries we put in one message (both families together).
pub const PEX_DROPPED_MAX: usize = 50;
/// Most entries read from each received list (`added`, `added6`,
/// `dropped`, `dropped6`); more are ignored. Twice what we send: other
/// clients send up to 50 (libtorrent) or 100.
pub const PEX_PARSED_MAX: usize = 100;
/// Bytes of a compact IPv4 entry: address then port, big-endian.
pub const COMPACT_V4_BYTES: usize = 6;
/// Bytes of a compact IPv6 entry.
pub const COMPACT_V6_BYTES: usize = 18;

const _: () = assert!(PEX_ADDED_MAX <= PEX_PARSED_MAX);
const _: () = assert!(PEX_DROPPED_MAX <= PEX_PARSED_MAX);

/// The per-peer flags byte of `added.f` / `added6.f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// The peer prefers encrypted connections.
    pub const ENCRYPTION: u8 = 0x01;
    /// The peer is a seed (or upload only).
    pub const SEED: u8 = 0x02;
    /// The peer supports uTP.
    pub const UTP: u8 = 0x04;
    /// The peer supports the holepunch extension.
    pub const HOLEPUNCH: u8 = 0x08;
    /// The peer was reachable: we connected out to it.
    pub const REACHABLE: u8 = 0x10;

    /// Whether every bit of `bits` is set.
    pub fn has(self, bits: u8) -> bool {
        self.0 & bits == bits
    }
    pub fn encryption(self) -> bool {
        self.has(Self::ENCRYPTION)
    }
    pub fn seed(self) -> bool {
        self.has(Self::SEED)
    }
    pub fn utp(self) -> bool {
        self.has(Self::UTP)
    }
    pub fn holepunch(self) -> bool {
        self.has(Self::HOLEPUNCH)
    }
    pub fn reachable(self) -> bool {
        self.has(Self::REACHABLE)
    }
}

/// Why a `ut_pex` payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UtPexError {
    #[error("ut_pex payload is not bencode: {0}")]
    Bencode(#[from] DecodeError),
    #[error("ut_pex payload is a {found}, expected a dictionary")]
    NotADictionary { found: &'static str },
    #[error("ut_pex key {key:?} is a {found}, expected a byte string")]
    NotAString {
        key: &'static str,
        found: &'static str,
    },
    #[error("ut_pex key {key:?} has {len} bytes, not a multiple of {entry} (one entry)")]
    BadLength {
        key: &'static str,
        len: usize,
        entry: usize,
    },
}

/// A peer exchange message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PexMessage {
    /// Peers the sender connected to, with their flags.
    pub added: Vec<(SocketAddr, PexFlags)>,
    /// Peers the sender is no longer connected to.
    pub dropped: Vec<SocketAddr>,
}

impl PexMessage {
    /// Reads a `ut_pex` payload (the bytes after the extended message id).
    pub fn parse(payload: &[u8]) -> Result<PexMessage, UtPexError> {
        let root = bencode::decode(payload)?;
        let dict = root.as_dict().ok_or(UtPexError::NotADictionary {
            found: root.type_name(),
        })?;
        let string = |key: &'static str| -> Result<&[u8], UtPexError> {
            match dict.get(key.as_bytes()) {
                None => Ok(&[]),
                Some(v) => v.as_bytes().ok_or(UtPexError::NotAString {
                    key,
                    found: v.type_name(),
                }),
            }
        };
        let mut out = PexMessage::default();
        let added = compact(string("added")?, "added", COMPACT_V4_BYTES)?;
        let flags = string("added.f")?;
        push_added(&mut out.added, added, flags, v4);
        let added6 = compact(string("added6")?, "added6", COMPACT_V6_BYTES)?;
        let flags6 = string("added6.f")?;
        push_added(&mut out.added, added6, flags6, v6);
        let dropped = compact(string("dropped")?, "dropped", COMPACT_V4_BYTES)?;
        out.dropped
            .extend(dropped.filter_map(v4).filter(|a| a.port() != 0));
        let dropped6 = compact(string("dropped6")?, "dropped6", COMPACT_V6_BYTES)?;
        out.dropped
            .extend(dropped6.filter_map(v6).filter(|a| a.port() != 0));
        Ok(out)
    }

    /// Canonical bencode of this message.
    pub fn encode(&self) -> Vec<u8> {
        let mut added = Vec::new();
        let mut added_f = Vec::new();
        let mut added6 = Vec::new();
        let mut added6_f = Vec::new();
        for (addr, flags) in self.added.iter().filter(|(a, _)| a.port() != 0) {
            match addr {
                SocketAddr::V4(a) => {
                    put_v4(&mut added, a);
                    added_f.push(flags.0);
                }
                SocketAddr::V6(a) => {
                    put_v6(&mut added6, a);
                    added6_f.push(flags.0);
                }
            }
        }
        let mut dropped = Vec::new();
        let mut dropped6 = Vec::new();
        for addr in self.dropped.iter().filter(|a| a.port() != 0) {
            match addr {
                SocketAddr::V4(a) => put_v4(&mut dropped, a),
                SocketAddr::V6(a) => put_v6(&mut dropped6, a),
            }
        }
        let mut root = BTreeMap::new();
        for (key, value) in [
            ("added", added),
            ("added.f", added_f),
            ("added6", added6),
            ("added6.f", added6_f),
            ("dropped", dropped),
            ("dropped6", dropped6),
        ] {
            root.insert(key.as_bytes().to_vec(), OwnedValue::Bytes(value));
        }
        OwnedValue::Dict(root).encode()
    }
}

/// The first [`PEX_PARSED_MAX`] entries of a compact list.
fn compact<'a>(
    bytes: &'a [u8],
    key: &'static str,
    entry: usize,
) -> Result<impl Iterator<Item = &'a [u8]>, UtPexError> {
    if bytes.len() % entry != 0 {
        return Err(UtPexError::BadLength {
            key,
            len: bytes.len(),
            entry,
        });
    }
    Ok(bytes.chunks_exact(entry).take(PEX_PARSED_MAX))
}

fn push_added<'a>(
    out: &mut Vec<(SocketAddr, PexFlags)>,
    entries: impl Iterator<Item = &'a [u8]>,
    flags: &[u8],
    read: fn(&[u8]) -> Option<SocketAddr>,
) {
    for (i, entry) in entries.enumerate() {
        let Some(addr) = read(entry).filter(|a| a.port() != 0) else {
            continue;
        };
        let f = flags.get(i).copied().unwrap_or(0);
        out.push((addr, PexFlags(f)));
    }
}

fn v4(entry: &[u8]) -> Option<SocketAddr> {
    let b: [u8; COMPACT_V4_BYTES] = entry.try_into().ok()?;
    let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    Some(SocketAddr::V4(SocketAddrV4::new(
        ip,
        u16::from_be_bytes([b[4], b[5]]),
    )))
}

fn v6(entry: &[u8]) -> Option<SocketAddr> {
    let b: [u8; COMPACT_V6_BYTES] = entry.try_into().ok()?;
    let (ip, port) = b.split_at(16);
    let ip: [u8; 16] = ip.try_into().ok()?;
    let port: [u8; 2] = port.try_into().ok()?;
    Some(SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::from(ip),
        u16::from_be_bytes(port),
        0,
        0,
    )))
}

fn put_v4(out: &mut Vec<u8>, a: &SocketAddrV4) {
    out.extend_from_slice(&a.ip().octets());
    out.extend_from_slice(&a.port().to_be_bytes());
}

fn put_v6(out: &mut Vec<u8>, a: &SocketAddrV6) {
    out.extend_from_slice(&a.ip().octets());
    out.extend_from_slice(&a.port().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a4(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn round_trip_both_families() {
        let msg = PexMessage {
            added: vec![
                (a4("127.0.132.1:6881"), PexFlags(PexFlags::SEED)),
                (
                    a4("[::1]:7000"),
                    PexFlags(PexFlags::REACHABLE | PexFlags::ENCRYPTION),
                ),
                (a4("127.0.132.2:1"), PexFlags(0)),
            ],
            dropped: vec![a4("127.0.132.3:65535"), a4("[fe80::1]:80")],
        };
        let bytes = msg.encode();
        let back = PexMessage::parse(&bytes).unwrap();
        // IPv4 entries come first after parsing; the order within a family stays.
        assert_eq!(back.added, vec![msg.added[0], msg.added[2], msg.added[1]]);
        assert_eq!(back.dropped, msg.dropped);
        assert!(back.added[0].1.seed());
        assert!(back.added[2].1.reachable() && back.added[2].1.encryption());
        assert!(!back.added[2].1.seed());
    }

    #[test]
    fn encode_is_canonical_with_all_keys() {
        let msg = PexMessage {
            added: vec![(a4("1.2.3.4:258"), PexFlags(2))],
            dropped: vec![],
        };
        assert_eq!(
            msg.encode(),
            b"d5:added6:\x01\x02\x03\x04\x01\x027:added.f1:\x026:added60:8:added6.f0:7:dropped0:8:dropped60:e"
                .to_vec()
        );
        let empty = PexMessage::default().encode();
        assert_eq!(PexMessage::parse(&empty).unwrap(), PexMessage::default());
    }

    #[test]
    fn port_zero_entries_are_skipped_both_ways() {
        let bytes = b"d5:added12:\x01\x02\x03\x04\x00\x00\x05\x06\x07\x08\x00\x097:added.f2:\x01\x027:dropped6:\x01\x01\x01\x01\x00\x00e";
        let msg = PexMessage::parse(bytes).unwrap();
        // The flags stay with their entry: the second entry keeps 0x02.
        assert_eq!(msg.added, vec![(a4("5.6.7.8:9"), PexFlags(2))]);
        assert!(msg.dropped.is_empty());
        let out = PexMessage {
            added: vec![(a4("1.1.1.1:0"), PexFlags(0))],
            dropped: vec![a4("[::1]:0")],
        };
        assert_eq!(
            PexMessage::parse(&out.encode()).unwrap(),
            PexMessage::default()
        );
    }

    #[test]
    fn short_flags_give_zero_and_long_flags_are_ignored() {
        let short = b"d5:added12:\x01\x02\x03\x04\x00\x01\x05\x06\x07\x08\x00\x027:added.f1:\x02e";
        let msg = PexMessage::parse(short).unwrap();
        assert_eq!(msg.added[0].1, PexFlags(2));
        assert_eq!(msg.added[1].1, PexFlags(0));
        let long = b"d5:added6:\x01\x02\x03\x04\x00\x017:added.f3:\x10\x02\x02e";
        let msg = PexMessage::parse(long).unwrap();
        assert_eq!(msg.added, vec![(a4("1.2.3.4:1"), PexFlags(0x10))]);
        // No flags key at all.
        let none = b"d6:added618:\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x05e";
        let msg = PexMessage::parse(none).unwrap();
        assert_eq!(msg.added, vec![(a4("[::1]:5"), PexFlags(0))]);
    }

    #[test]
    fn entries_past_the_parse_limit_are_ignored() {
        let mut added = Vec::new();
        let mut dropped6 = Vec::new();
        for i in 0..(PEX_PARSED_MAX as u16 + 7) {
            added.extend_from_slice(&[10, 0, 0, 1]);
            added.extend_from_slice(&(i + 1).to_be_bytes());
            dropped6.extend_from_slice(&[0u8; 15]);
            dropped6.push(1);
            dropped6.extend_from_slice(&(i + 1).to_be_bytes());
        }
        let mut root = BTreeMap::new();
        root.insert(b"added".to_vec(), OwnedValue::Bytes(added));
        root.insert(b"dropped6".to_vec(), OwnedValue::Bytes(dropped6));
        let msg = PexMessage::parse(&OwnedValue::Dict(root).encode()).unwrap();
        assert_eq!(msg.added.len(), PEX_PARSED_MAX);
        assert_eq!(msg.dropped.len(), PEX_PARSED_MAX);
        assert_eq!(msg.added.last().unwrap().0.port(), PEX_PARSED_MAX as u16);
    }

    #[test]
    fn malformed_payloads_are_errors_naming_the_fault() {
        assert!(matches!(
            PexMessage::parse(b"d5:added"),
            Err(UtPexError::Bencode(_))
        ));
        assert!(matches!(
            PexMessage::parse(b"de trailing"),
            Err(UtPexError::Bencode(_))
        ));
        assert_eq!(
            PexMessage::parse(b"li1ee"),
            Err(UtPexError::NotADictionary { found: "list" })
        );
        assert_eq!(
            PexMessage::parse(b"d5:addedi5ee"),
            Err(UtPexError::NotAString {
                key: "added",
                found: "integer"
            })
        );
        assert_eq!(
            PexMessage::parse(b"d7:added.fle7:dropped0:e"),
            Err(UtPexError::NotAString {
                key: "added.f",
                found: "list"
            })
        );
        assert_eq!(
            PexMessage::parse(b"d5:added5:abcdee"),
            Err(UtPexError::BadLength {
                key: "added",
                len: 5,
                entry: 6
            })
        );
        assert_eq!(
            PexMessage::parse(b"d8:dropped66:abcdefe"),
            Err(UtPexError::BadLength {
                key: "dropped6",
                len: 6,
                entry: 18
            })
        );
        // Unknown keys are fine.
        assert_eq!(
            PexMessage::parse(b"d1:xi1ee").unwrap(),
            PexMessage::default()
        );
    }

    #[test]
    fn flags_accessors() {
        let f = PexFlags(PexFlags::UTP | PexFlags::HOLEPUNCH);
        assert!(f.utp() && f.holepunch());
        assert!(!f.seed() && !f.encryption() && !f.reachable());
        assert!(f.has(PexFlags::UTP | PexFlags::HOLEPUNCH));
        assert!(!f.has(PexFlags::UTP | PexFlags::SEED));
    }
}
