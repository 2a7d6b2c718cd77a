//! `Value`: one decoded bencode value, borrowing its strings from the input.

use std::fmt;

/// A decoded value and where it stood in the input.
#[derive(Clone, PartialEq, Eq)]
pub struct Value<'a> {
    /// The value's exact bytes in the input (for a dictionary, from `d` to `e`).
    pub raw: &'a [u8],
    /// Offset of `raw` in the input, in bytes.
    pub offset: usize,
    pub kind: ValueKind<'a>,
}

/// What a value is.
#[derive(Clone, PartialEq, Eq)]
pub enum ValueKind<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    Dict(Dict<'a>),
}

/// A dictionary's entries in the order they were written.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Dict<'a> {
    pub entries: Vec<(&'a [u8], Value<'a>)>,
}

impl<'a> Dict<'a> {
    /// The value under `key`, if present. Keys are unique (the decoder refuses
    /// duplicates), so there is at most one.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &(&'a [u8], Value<'a>)> {
        self.entries.iter()
    }
}

impl<'a> Value<'a> {
    pub fn as_int(&self) -> Option<i64> {
        match self.kind {
            ValueKind::Int(i) => Some(i),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.kind {
            ValueKind::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The string as UTF-8, if it is a string and valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match &self.kind {
            ValueKind::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match &self.kind {
            ValueKind::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// A word for the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            ValueKind::Int(_) => "integer",
            ValueKind::Bytes(_) => "string",
            ValueKind::List(_) => "list",
            ValueKind::Dict(_) => "dictionary",
        }
    }
}

impl fmt::Debug for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ValueKind::Int(i) => write!(f, "{i}"),
            ValueKind::Bytes(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            ValueKind::List(l) => f.debug_list().entries(l).finish(),
            ValueKind::Dict(d) => f
                .debug_map()
                .entries(
                    d.entries
                        .iter()
                        .map(|(k, v)| (String::from_utf8_lossy(k), v)),
                )
                .finish(),
        }
    }
}

impl fmt::Debug for Dict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k), v)),
            )
            .finish()
    }
}
