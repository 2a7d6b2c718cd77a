//! The BEP 10 extension handshake: the bencoded dictionary sent as extended
//! message 0, saying which extensions a peer speaks (`m`, name to the message
//! id it wants to receive them under) and a few facts about it.
//!
//! Reading is tolerant, as deployed clients expect: unknown keys are ignored,
//! and a known key with the wrong type or an impossible value (a port of 0 or
//! over 65535, an address of neither 4 nor 16 bytes, an `m` id over 255) is
//! treated as absent. What is refused: a payload that is not bencode or not a
//! dictionary, and more than [`EXTENSIONS_MAX`] entries in `m`. The payload
//! itself is already bounded by the decoder's `extended_bytes_max`.
//! Writing is canonical bencode (sorted keys), through `OwnedValue`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::ExtensionHandshakeError;
use crate::bencode::{self, OwnedValue, Value};

/// Most entries accepted in `m` (real clients send about a dozen).
pub const EXTENSIONS_MAX: usize = 64;
/// Longest extension name kept from `m`, in bytes; longer names are skipped.
pub const EXTENSION_NAME_BYTES_MAX: usize = 64;
/// Longest client name (`v`) kept, in bytes; a longer one is cut at a
/// character boundary.
pub const CLIENT_NAME_BYTES_MAX: usize = 128;

/// A parsed (or to-be-sent) extension handshake.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtensionHandshake {
    /// Extension name and the id to send its messages under; id 0 means the
    /// peer turned the extension off. In the order the dictionary had them.
    pub m: Vec<(String, u8)>,
    /// Client name and version.
    pub v: Option<String>,
    /// How many outstanding requests the peer will queue.
    pub reqq: Option<u32>,
    /// The peer's listen port.
    pub p: Option<u16>,
    /// Our address as the peer sees it.
    pub yourip: Option<IpAddr>,
    /// BEP 9: bytes of the info dictionary.
    pub metadata_size: Option<u64>,
}

impl ExtensionHandshake {
    /// The id the peer wants `name` messages sent under, if it speaks it.
    pub fn extension_id(&self, name: &str) -> Option<u8> {
        self.m
            .iter()
            .find(|(n, id)| n == name && *id != 0)
            .map(|(_, id)| *id)
    }

    /// Reads an extension handshake payload (the bytes after the extended
    /// message's id byte 0).
    pub fn parse(payload: &[u8]) -> Result<ExtensionHandshake, ExtensionHandshakeError> {
        let root = bencode::decode(payload)?;
        let dict = root
            .as_dict()
            .ok_or(ExtensionHandshakeError::NotADictionary {
                found: root.type_name(),
            })?;
        let mut out = ExtensionHandshake::default();
        if let Some(m) = dict.get(b"m").and_then(Value::as_dict) {
            if m.len() > EXTENSIONS_MAX {
                return Err(ExtensionHandshakeError::TooManyExtensions {
                    count: m.len(),
                    limit: EXTENSIONS_MAX,
                });
            }
            for (name, id) in m.iter() {
                let Ok(name) = std::str::from_utf8(name) else {
                    continue;
                };
                let Some(id) = id.as_int().and_then(|i| u8::try_from(i).ok()) else {
                    continue;
                };
                if name.len() <= EXTENSION_NAME_BYTES_MAX {
                    out.m.push((name.to_string(), id));
                }
            }
        }
        out.v = dict.get(b"v").and_then(Value::as_bytes).map(client_name);
        out.reqq = int(dict.get(b"reqq")).and_then(|i| u32::try_from(i).ok());
        out.p = int(dict.get(b"p"))
            .and_then(|i| u16::try_from(i).ok())
            .filter(|&p| p != 0);
        out.yourip = dict
            .get(b"yourip")
            .and_then(Value::as_bytes)
            .and_then(ip_from_bytes);
        out.metadata_size = int(dict.get(b"metadata_size")).and_then(|i| u64::try_from(i).ok());
        Ok(out)
    }

    /// Canonical bencode of this handshake (`m` is always written, even
    /// empty; absent fields are left out).
    pub fn encode(&self) -> Vec<u8> {
        let mut root = BTreeMap::new();
        let m: BTreeMap<Vec<u8>, OwnedValue> = self
            .m
            .iter()
            .map(|(name, id)| (name.as_bytes().to_vec(), OwnedValue::Int(i64::from(*id))))
            .collect();
        root.insert(b"m".to_vec(), OwnedValue::Dict(m));
        if let Some(v) = &self.v {
            root.insert(b"v".to_vec(), OwnedValue::str(v));
        }
        if let Some(reqq) = self.reqq {
            root.insert(b"reqq".to_vec(), OwnedValue::Int(i64::from(reqq)));
        }
        if let Some(p) = self.p {
            root.insert(b"p".to_vec(), OwnedValue::Int(i64::from(p)));
        }
        if let Some(ip) = self.yourip {
            let bytes = match ip {
                IpAddr::V4(a) => a.octets().to_vec(),
                IpAddr::V6(a) => a.octets().to_vec(),
            };
            root.insert(b"yourip".to_vec(), OwnedValue::Bytes(bytes));
        }
        if let Some(size) = self.metadata_size {
            // Sizes past i64::MAX cannot be bencoded; they saturate.
            let size = i64::try_from(size).unwrap_or(i64::MAX);
            root.insert(b"metadata_size".to_vec(), OwnedValue::Int(size));
        }
        OwnedValue::Dict(root).encode()
    }
}

fn int(v: Option<&Value<'_>>) -> Option<i64> {
    v.and_then(Value::as_int)
}

fn client_name(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut end = text.len().min(CLIENT_NAME_BYTES_MAX);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_string()
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(b) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    if let Ok(v6) = <[u8; 16]>::try_from(b) {
        return Some(IpAddr::V6(Ipv6Addr::from(v6)));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ExtensionHandshake {
        ExtensionHandshake {
            m: vec![("ut_metadata".into(), 3), ("ut_pex".into(), 1)],
            v: Some("ringseed 0.1".into()),
            reqq: Some(500),
            p: Some(6881),
            yourip: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))),
            metadata_size: Some(31_235),
        }
    }

    #[test]
    fn encodes_canonically_and_round_trips() {
        let bytes = sample().encode();
        assert_eq!(
            bytes,
            b"d1:md11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e\
              4:reqqi500e1:v12:ringseed 0.16:yourip4:\x7f\x00\x00\x01e"
                .to_vec()
        );
        let back = ExtensionHandshake::parse(&bytes).unwrap();
        // `m` comes back in the (sorted) order it was written.
        assert_eq!(back, sample());
        assert_eq!(back.extension_id("ut_metadata"), Some(3));
        assert_eq!(back.extension_id("lt_donthave"), None);
    }

    #[test]
    fn empty_handshake_still_writes_m() {
        let bytes = ExtensionHandshake::default().encode();
        assert_eq!(bytes, b"d1:mdee".to_vec());
        assert_eq!(
            ExtensionHandshake::parse(&bytes).unwrap(),
            ExtensionHandshake::default()
        );
    }

    #[test]
    fn yourip_v6_and_bad_lengths() {
        let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let h = ExtensionHandshake {
            yourip: Some(IpAddr::V6(v6)),
            ..Default::default()
        };
        assert_eq!(ExtensionHandshake::parse(&h.encode()).unwrap(), h);
        for bad in [
            &b"d6:yourip0:e"[..],
            b"d6:yourip5:abcdee",
            b"d6:yourip3:abce",
        ] {
            assert_eq!(ExtensionHandshake::parse(bad).unwrap().yourip, None);
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_ignored() {
        let payload = b"d1:md6:ut_pexi1e11:ut_metadata3:abc5:lt_xxi-1e3:bigi256e3:offi0ee\
                        1:pi0e4:reqqi-5e1:vi3e6:yourip4:\x0a\x00\x00\x01\
                        13:metadata_sizei-1e12:complete_agoi5e11:upload_onlyi1ee";
        let h = ExtensionHandshake::parse(payload).unwrap();
        assert_eq!(h.m, vec![("ut_pex".to_string(), 1), ("off".to_string(), 0)]);
        assert_eq!(h.extension_id("off"), None, "id 0 means turned off");
        assert_eq!(h.p, None);
        assert_eq!(h.reqq, None);
        assert_eq!(h.v, None);
        assert_eq!(h.metadata_size, None);
        assert_eq!(h.yourip, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        // `m` of the wrong type is as if absent.
        assert_eq!(
            ExtensionHandshake::parse(b"d1:mi1ee").unwrap(),
            ExtensionHandshake::default()
        );
    }

    #[test]
    fn client_name_is_bounded_and_lossy() {
        let mut payload = b"d1:v300:".to_vec();
        payload.extend(std::iter::repeat_n(b'x', 299));
        payload.push(0xff);
        payload.push(b'e');
        let h = ExtensionHandshake::parse(&payload).unwrap();
        assert_eq!(h.v.as_deref().map(str::len), Some(CLIENT_NAME_BYTES_MAX));
        // A multi-byte character straddling the cut is dropped whole.
        let mut payload = b"d1:v129:".to_vec();
        payload.extend(std::iter::repeat_n(b'a', 127));
        payload.extend("é".as_bytes());
        payload.push(b'e');
        let h = ExtensionHandshake::parse(&payload).unwrap();
        assert_eq!(h.v.as_deref().map(str::len), Some(127));
        // Latin-1 bytes are replaced, not refused.
        let h = ExtensionHandshake::parse(b"d1:v3:\xb5Tce").unwrap();
        assert_eq!(h.v.as_deref(), Some("\u{fffd}Tc"));
    }

    #[test]
    fn long_names_are_skipped_and_too_many_entries_refused() {
        let long = "n".repeat(EXTENSION_NAME_BYTES_MAX + 1);
        let payload = format!("d1:md{}:{long}i1e1:ai2eee", long.len());
        let h = ExtensionHandshake::parse(payload.as_bytes()).unwrap();
        assert_eq!(h.m, vec![("a".to_string(), 2)]);

        let mut m = BTreeMap::new();
        for i in 0..=EXTENSIONS_MAX {
            m.insert(format!("x{i:03}").into_bytes(), OwnedValue::Int(1));
        }
        let mut root = BTreeMap::new();
        root.insert(b"m".to_vec(), OwnedValue::Dict(m));
        assert_eq!(
            ExtensionHandshake::parse(&OwnedValue::Dict(root).encode()),
            Err(ExtensionHandshakeError::TooManyExtensions {
                count: EXTENSIONS_MAX + 1,
                limit: EXTENSIONS_MAX
            })
        );
    }

    #[test]
    fn garbage_is_refused_without_panic() {
        assert!(matches!(
            ExtensionHandshake::parse(b""),
            Err(ExtensionHandshakeError::Bencode(_))
        ));
        assert!(matches!(
            ExtensionHandshake::parse(b"d1:m"),
            Err(ExtensionHandshakeError::Bencode(_))
        ));
        assert!(matches!(
            ExtensionHandshake::parse(b"de trailing"),
            Err(ExtensionHandshakeError::Bencode(_))
        ));
        assert_eq!(
            ExtensionHandshake::parse(b"li1ee"),
            Err(ExtensionHandshakeError::NotADictionary { found: "list" })
        );
        // Duplicate keys are refused by the bencode decoder.
        assert!(ExtensionHandshake::parse(b"d1:md1:ai1e1:ai2eee").is_err());
        // Deep nesting is bounded by the bencode depth limit.
        let deep = format!("d1:x{}{}e", "l".repeat(10_000), "e".repeat(10_000));
        assert!(ExtensionHandshake::parse(deep.as_bytes()).is_err());
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2_000 {
            let mut buf = Vec::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 48) as usize;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                buf.push(b"dle0123456789i:-mpv"[(state % 19) as usize]);
            }
            let _ = ExtensionHandshake::parse(&buf);
        }
    }
}
