//! The encoder: always canonical bencode (dictionary keys sorted as raw bytes,
//! integers without leading zeros), so the same data always gives the same bytes.

use std::collections::BTreeMap;

use super::value::{Value, ValueKind};

/// An owned value to encode. Dictionaries are `BTreeMap`s, so keys come out
/// sorted and unique whatever order they were inserted in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedValue {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<OwnedValue>),
    Dict(BTreeMap<Vec<u8>, OwnedValue>),
}

impl OwnedValue {
    pub fn str(s: &str) -> OwnedValue {
        OwnedValue::Bytes(s.as_bytes().to_vec())
    }

    /// Canonical bencode of this value.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut Encoder::new(&mut out));
        out
    }

    pub fn encode_into(&self, enc: &mut Encoder<'_>) {
        match self {
            OwnedValue::Int(i) => enc.int(*i),
            OwnedValue::Bytes(b) => enc.bytes(b),
            OwnedValue::List(items) => {
                enc.begin_list();
                for item in items {
                    item.encode_into(enc);
                }
                enc.end();
            }
            OwnedValue::Dict(entries) => {
                enc.begin_dict();
                for (k, v) in entries {
                    enc.bytes(k);
                    v.encode_into(enc);
                }
                enc.end();
            }
        }
    }
}

impl From<&Value<'_>> for OwnedValue {
    /// Copies a decoded value; its dictionaries come out sorted.
    fn from(v: &Value<'_>) -> OwnedValue {
        match &v.kind {
            ValueKind::Int(i) => OwnedValue::Int(*i),
            ValueKind::Bytes(b) => OwnedValue::Bytes(b.to_vec()),
            ValueKind::List(l) => OwnedValue::List(l.iter().map(OwnedValue::from).collect()),
            ValueKind::Dict(d) => OwnedValue::Dict(
                d.iter()
                    .map(|(k, v)| (k.to_vec(), OwnedValue::from(v)))
                    .collect(),
            ),
        }
    }
}

/// A low-level writer of bencode tokens into a `Vec<u8>`. It writes what it is
/// told; [`OwnedValue`] is the way to get sorted dictionaries for free.
pub struct Encoder<'o> {
    out: &'o mut Vec<u8>,
}

impl<'o> Encoder<'o> {
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        Encoder { out }
    }

    pub fn int(&mut self, i: i64) {
        self.out.push(b'i');
        self.out.extend_from_slice(i.to_string().as_bytes());
        self.out.push(b'e');
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b.len().to_string().as_bytes());
        self.out.push(b':');
        self.out.extend_from_slice(b);
    }

    pub fn begin_list(&mut self) {
        self.out.push(b'l');
    }

    pub fn begin_dict(&mut self) {
        self.out.push(b'd');
    }

    pub fn end(&mut self) {
        self.out.push(b'e');
    }

    /// Appends bytes that are already bencode (such as an info dictionary
    /// whose exact bytes must be kept).
    pub fn raw(&mut self, encoded: &[u8]) {
        self.out.extend_from_slice(encoded);
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode;
    use super::*;

    #[test]
    fn encodes_canonically() {
        let mut d = BTreeMap::new();
        d.insert(b"zeta".to_vec(), OwnedValue::Int(-3));
        d.insert(b"alpha".to_vec(), OwnedValue::str("x"));
        d.insert(
            b"list".to_vec(),
            OwnedValue::List(vec![OwnedValue::Int(0), OwnedValue::Bytes(vec![])]),
        );
        assert_eq!(
            OwnedValue::Dict(d).encode(),
            b"d5:alpha1:x4:listli0e0:e4:zetai-3ee".to_vec()
        );
        assert_eq!(
            OwnedValue::Int(i64::MIN).encode(),
            b"i-9223372036854775808e"
        );
    }

    #[test]
    fn re_encoding_sorts_keys() {
        let v = decode(b"d1:bi1e1:ai2ee").unwrap();
        assert_eq!(OwnedValue::from(&v).encode(), b"d1:ai2e1:bi1ee".to_vec());
    }

    #[test]
    fn round_trip_of_canonical_input_is_identity() {
        let input: &[u8] = b"d4:infod6:lengthi425e4:name4:temp12:piece lengthi16384ee1:xl0:i-1eee";
        let v = decode(input).unwrap();
        assert_eq!(OwnedValue::from(&v).encode(), input.to_vec());
    }
}
