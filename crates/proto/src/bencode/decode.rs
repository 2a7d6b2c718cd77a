//! The decoder: bytes in, a [`Value`] tree that borrows from them out.

use std::collections::HashSet;

use super::value::{Dict, Value, ValueKind};
use crate::limits;

/// Limits for one decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of lists and dictionaries.
    pub depth_max: usize,
    /// Most values in total.
    pub tokens_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            depth_max: limits::BENCODE_DEPTH_MAX,
            tokens_max: limits::BENCODE_TOKENS_MAX,
        }
    }
}

/// What went wrong, and at which byte of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid bencode at byte {offset}: {kind}")]
pub struct DecodeError {
    pub offset: usize,
    pub kind: DecodeErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("input ended where {expected} was expected")]
    UnexpectedEnd { expected: &'static str },
    #[error("expected {expected}, found byte {found:#04x} ({})", printable(*found))]
    UnexpectedByte { expected: &'static str, found: u8 },
    #[error("empty integer: expected digits between 'i' and 'e'")]
    EmptyInteger,
    #[error("integer with a leading zero: expected no zero before other digits")]
    LeadingZero,
    #[error("negative zero: expected 0 or a non-zero number")]
    NegativeZero,
    #[error("integer does not fit in 64 bits")]
    IntegerOverflow,
    #[error("string length {length} runs past the end of the input ({available} bytes left)")]
    StringPastEnd { length: u64, available: usize },
    #[error("nesting deeper than the limit of {limit}")]
    TooDeep { limit: usize },
    #[error("more than the limit of {limit} values")]
    TooManyTokens { limit: usize },
    #[error("dictionary key {key:?} appears twice")]
    DuplicateKey { key: String },
    #[error("{count} bytes after the end of the top-level value, expected none")]
    TrailingBytes { count: usize },
}

fn printable(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", char::from(b))
    } else {
        "not printable".to_string()
    }
}

/// Decodes exactly one value that fills the whole input.
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    let (value, consumed) = decode_prefix_with(input, Limits::default())?;
    if consumed != input.len() {
        return Err(DecodeError {
            offset: consumed,
            kind: DecodeErrorKind::TrailingBytes {
                count: input.len() - consumed,
            },
        });
    }
    Ok(value)
}

/// Decodes one value from the start of the input and says how many bytes it
/// took; whatever follows is left to the caller (a .torrent file with junk after
/// its dictionary loads in libtorrent, and so it does here).
pub fn decode_prefix(input: &[u8]) -> Result<(Value<'_>, usize), DecodeError> {
    decode_prefix_with(input, Limits::default())
}

/// [`decode_prefix`] with explicit limits.
pub fn decode_prefix_with(input: &[u8], limits: Limits) -> Result<(Value<'_>, usize), DecodeError> {
    let mut d = Decoder {
        input,
        pos: 0,
        tokens: 0,
        limits,
    };
    let v = d.value(0)?;
    Ok((v, d.pos))
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    tokens: usize,
    limits: Limits,
}

impl<'a> Decoder<'a> {
    fn err<T>(&self, offset: usize, kind: DecodeErrorKind) -> Result<T, DecodeError> {
        Err(DecodeError { offset, kind })
    }

    fn peek(&self, expected: &'static str) -> Result<u8, DecodeError> {
        match self.input.get(self.pos) {
            Some(&b) => Ok(b),
            None => self.err(self.pos, DecodeErrorKind::UnexpectedEnd { expected }),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, DecodeError> {
        const EXPECTED: &str = "a value ('i', 'l', 'd' or a digit)";
        self.tokens += 1;
        if self.tokens > self.limits.tokens_max {
            return self.err(
                self.pos,
                DecodeErrorKind::TooManyTokens {
                    limit: self.limits.tokens_max,
                },
            );
        }
        let start = self.pos;
        let kind = match self.peek(EXPECTED)? {
            b'i' => ValueKind::Int(self.integer()?),
            b'0'..=b'9' => ValueKind::Bytes(self.string()?),
            b'l' => {
                self.enter(depth)?;
                let mut items = Vec::new();
                while self.peek("a list item or 'e'")? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                ValueKind::List(items)
            }
            b'd' => {
                self.enter(depth)?;
                let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
                // Duplicate keys are found in linear time: while keys come in
                // ascending order (canonical bencode) comparing with the last
                // one is enough; after the first key out of order, a set.
                let mut unsorted_keys: Option<HashSet<&'a [u8]>> = None;
                loop {
                    let b = self.peek("a dictionary key (a string) or 'e'")?;
                    if b == b'e' {
                        break;
                    }
                    if !b.is_ascii_digit() {
                        return self.err(
                            self.pos,
                            DecodeErrorKind::UnexpectedByte {
                                expected: "a dictionary key (a string) or 'e'",
                                found: b,
                            },
                        );
                    }
                    let key_offset = self.pos;
                    self.tokens += 1;
                    let key = self.string()?;
                    let duplicate = match (&mut unsorted_keys, entries.last()) {
                        (None, None) => false,
                        (None, Some((last, _))) if key > *last => false,
                        (None, Some(_)) => {
                            let mut set: HashSet<&'a [u8]> =
                                entries.iter().map(|(k, _)| *k).collect();
                            let fresh = set.insert(key);
                            unsorted_keys = Some(set);
                            !fresh
                        }
                        (Some(set), _) => !set.insert(key),
                    };
                    if duplicate {
                        return self.err(
                            key_offset,
                            DecodeErrorKind::DuplicateKey {
                                key: String::from_utf8_lossy(key).into_owned(),
                            },
                        );
                    }
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                }
                self.pos += 1;
                ValueKind::Dict(Dict { entries })
            }
            found => {
                return self.err(
                    start,
                    DecodeErrorKind::UnexpectedByte {
                        expected: EXPECTED,
                        found,
                    },
                )
            }
        };
        Ok(Value {
            raw: &self.input[start..self.pos],
            offset: start,
            kind,
        })
    }

    /// Steps over the `l` or `d` that opens a container at `depth`.
    fn enter(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth >= self.limits.depth_max {
            return self.err(
                self.pos,
                DecodeErrorKind::TooDeep {
                    limit: self.limits.depth_max,
                },
            );
        }
        self.pos += 1;
        Ok(())
    }

    /// `i<digits>e`, with `self.pos` at the `i`.
    fn integer(&mut self) -> Result<i64, DecodeError> {
        self.pos += 1;
        let mut negative = false;
        if self.peek("an integer's digits")? == b'-' {
            negative = true;
            self.pos += 1;
        }
        let digits_start = self.pos;
        // Accumulate as a negative number so that i64::MIN fits.
        let mut acc: i64 = 0;
        loop {
            let b = self.peek("a digit or the 'e' that ends an integer")?;
            match b {
                b'0'..=b'9' => {
                    if self.pos > digits_start && self.input[digits_start] == b'0' {
                        return self.err(digits_start, DecodeErrorKind::LeadingZero);
                    }
                    let digit = i64::from(b - b'0');
                    acc = match acc.checked_mul(10).and_then(|a| a.checked_sub(digit)) {
                        Some(a) => a,
                        None => return self.err(digits_start, DecodeErrorKind::IntegerOverflow),
                    };
                    self.pos += 1;
                }
                b'e' => break,
                found => {
                    return self.err(
                        self.pos,
                        DecodeErrorKind::UnexpectedByte {
                            expected: "a digit or the 'e' that ends an integer",
                            found,
                        },
                    )
                }
            }
        }
        if self.pos == digits_start {
            return self.err(digits_start, DecodeErrorKind::EmptyInteger);
        }
        self.pos += 1; // the 'e'
        if negative {
            if acc == 0 {
                return self.err(digits_start, DecodeErrorKind::NegativeZero);
            }
            Ok(acc)
        } else {
            match acc.checked_neg() {
                Some(v) => Ok(v),
                None => self.err(digits_start, DecodeErrorKind::IntegerOverflow),
            }
        }
    }

    /// `<length>:<bytes>`, with `self.pos` at the first digit.
    fn string(&mut self) -> Result<&'a [u8], DecodeError> {
        let len_start = self.pos;
        let mut length: u64 = 0;
        loop {
            let b = self.peek("a digit or the ':' after a string length")?;
            match b {
                b'0'..=b'9' => {
                    length = match length
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(u64::from(b - b'0')))
                    {
                        Some(l) => l,
                        None => return self.err(len_start, DecodeErrorKind::IntegerOverflow),
                    };
                    self.pos += 1;
                }
                b':' => break,
                found => {
                    return self.err(
                        self.pos,
                        DecodeErrorKind::UnexpectedByte {
                            expected: "a digit or the ':' after a string length",
                            found,
                        },
                    )
                }
            }
        }
        self.pos += 1; // the ':'
        let available = self.input.len() - self.pos;
        let fits = usize::try_from(length).ok().filter(|&l| l <= available);
        let Some(len) = fits else {
            return self.err(
                len_start,
                DecodeErrorKind::StringPastEnd { length, available },
            );
        };
        let s = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(input: &[u8]) -> DecodeErrorKind {
        decode(input).unwrap_err().kind
    }

    #[test]
    fn scalars() {
        assert_eq!(decode(b"i42e").unwrap().as_int(), Some(42));
        assert_eq!(decode(b"i-42e").unwrap().as_int(), Some(-42));
        assert_eq!(decode(b"i0e").unwrap().as_int(), Some(0));
        assert_eq!(
            decode(b"i9223372036854775807e").unwrap().as_int(),
            Some(i64::MAX)
        );
        assert_eq!(
            decode(b"i-9223372036854775808e").unwrap().as_int(),
            Some(i64::MIN)
        );
        assert_eq!(decode(b"4:spam").unwrap().as_bytes(), Some(&b"spam"[..]));
        assert_eq!(decode(b"0:").unwrap().as_bytes(), Some(&b""[..]));
    }

    #[test]
    fn integer_errors() {
        assert_eq!(kind_of(b"ie"), DecodeErrorKind::EmptyInteger);
        assert_eq!(kind_of(b"i-e"), DecodeErrorKind::EmptyInteger);
        assert_eq!(kind_of(b"i-0e"), DecodeErrorKind::NegativeZero);
        assert_eq!(kind_of(b"i07e"), DecodeErrorKind::LeadingZero);
        assert_eq!(kind_of(b"i00e"), DecodeErrorKind::LeadingZero);
        assert_eq!(kind_of(b"i-01e"), DecodeErrorKind::LeadingZero);
        assert_eq!(
            kind_of(b"i9223372036854775808e"),
            DecodeErrorKind::IntegerOverflow
        );
        assert_eq!(
            kind_of(b"i-9223372036854775809e"),
            DecodeErrorKind::IntegerOverflow
        );
        assert_eq!(
            kind_of(b"i12"),
            DecodeErrorKind::UnexpectedEnd {
                expected: "a digit or the 'e' that ends an integer"
            }
        );
        assert!(matches!(
            kind_of(b"i1x2e"),
            DecodeErrorKind::UnexpectedByte { found: b'x', .. }
        ));
        assert!(matches!(
            kind_of(b"i+1e"),
            DecodeErrorKind::UnexpectedByte { found: b'+', .. }
        ));
    }

    #[test]
    fn string_errors() {
        assert_eq!(
            decode(b"5:spam").unwrap_err(),
            DecodeError {
                offset: 0,
                kind: DecodeErrorKind::StringPastEnd {
                    length: 5,
                    available: 4
                }
            }
        );
        assert_eq!(
            kind_of(b"99999999999999999999999:x"),
            DecodeErrorKind::IntegerOverflow
        );
        assert_eq!(
            kind_of(b"18446744073709551615:x"),
            DecodeErrorKind::StringPastEnd {
                length: u64::MAX,
                available: 1
            }
        );
        assert!(matches!(
            kind_of(b"4"),
            DecodeErrorKind::UnexpectedEnd { .. }
        ));
        assert!(matches!(
            kind_of(b"4x"),
            DecodeErrorKind::UnexpectedByte { found: b'x', .. }
        ));
    }

    #[test]
    fn string_length_with_leading_zeros_is_tolerated() {
        assert_eq!(decode(b"04:spam").unwrap().as_bytes(), Some(&b"spam"[..]));
    }

    #[test]
    fn containers_and_spans() {
        let input = b"d3:bar4:spam3:fooli1ei2eee";
        let v = decode(input).unwrap();
        let d = v.as_dict().unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.get(b"bar").unwrap().as_str(), Some("spam"));
        let foo = d.get(b"foo").unwrap();
        assert_eq!(foo.raw, b"li1ei2ee");
        assert_eq!(foo.offset, 17);
        assert_eq!(&input[foo.offset..foo.offset + foo.raw.len()], foo.raw);
        assert_eq!(v.raw, &input[..]);
        let l = foo.as_list().unwrap();
        assert_eq!(l[1].as_int(), Some(2));
        assert_eq!(l[1].raw, b"i2e");
        assert!(d.get(b"nope").is_none());
    }

    #[test]
    fn unsorted_keys_are_kept_in_written_order() {
        let v = decode(b"d1:bi1e1:ai2ee").unwrap();
        let keys: Vec<&[u8]> = v.as_dict().unwrap().iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, vec![&b"b"[..], &b"a"[..]]);
    }

    #[test]
    fn duplicate_keys_are_refused() {
        assert_eq!(
            decode(b"d1:ai1e1:ai2ee").unwrap_err(),
            DecodeError {
                offset: 7,
                kind: DecodeErrorKind::DuplicateKey { key: "a".into() }
            }
        );
    }

    #[test]
    fn duplicate_keys_are_found_in_big_dictionaries_quickly() {
        // 200,000 keys, sorted then unsorted: both must decode in linear time.
        let mut sorted = b"d".to_vec();
        for i in 0..200_000u32 {
            let k = format!("{i:08}");
            sorted.extend_from_slice(format!("{}:{}i0e", k.len(), k).as_bytes());
        }
        sorted.push(b'e');
        assert_eq!(decode(&sorted).unwrap().as_dict().unwrap().len(), 200_000);
        let mut unsorted = b"d".to_vec();
        for i in (0..200_000u32).rev() {
            let k = format!("{i:08}");
            unsorted.extend_from_slice(format!("{}:{}i0e", k.len(), k).as_bytes());
        }
        let mut dup = unsorted.clone();
        unsorted.push(b'e');
        assert_eq!(decode(&unsorted).unwrap().as_dict().unwrap().len(), 200_000);
        dup.extend_from_slice(b"8:00000007i1ee");
        assert!(matches!(
            decode(&dup).unwrap_err().kind,
            DecodeErrorKind::DuplicateKey { .. }
        ));
        // Out of order after a sorted start, duplicate of an early key.
        assert!(matches!(
            decode(b"d1:ai1e1:ci1e1:bi1e1:ai1ee").unwrap_err().kind,
            DecodeErrorKind::DuplicateKey { .. }
        ));
    }

    #[test]
    fn dictionary_key_must_be_a_string() {
        assert!(matches!(
            kind_of(b"di1ei2ee"),
            DecodeErrorKind::UnexpectedByte { found: b'i', .. }
        ));
        assert!(matches!(
            kind_of(b"d1:a"),
            DecodeErrorKind::UnexpectedEnd { .. }
        ));
        assert!(matches!(
            kind_of(b"l"),
            DecodeErrorKind::UnexpectedEnd { .. }
        ));
        assert!(matches!(
            kind_of(b""),
            DecodeErrorKind::UnexpectedEnd { .. }
        ));
        assert!(matches!(
            kind_of(b"x"),
            DecodeErrorKind::UnexpectedByte { found: b'x', .. }
        ));
    }

    #[test]
    fn trailing_bytes() {
        assert_eq!(
            decode(b"i1eXYZ").unwrap_err(),
            DecodeError {
                offset: 3,
                kind: DecodeErrorKind::TrailingBytes { count: 3 }
            }
        );
        let (v, used) = decode_prefix(b"de\n\n").unwrap();
        assert!(v.as_dict().unwrap().is_empty());
        assert_eq!(used, 2);
    }

    #[test]
    fn depth_limit() {
        let ok = [&b"l".repeat(100)[..], &b"e".repeat(100)[..]].concat();
        assert!(decode(&ok).is_ok());
        let deep = [&b"l".repeat(101)[..], &b"e".repeat(101)[..]].concat();
        assert_eq!(
            decode(&deep).unwrap_err(),
            DecodeError {
                offset: 100,
                kind: DecodeErrorKind::TooDeep { limit: 100 }
            }
        );
        // Far deeper input fails the same way, without exhausting the stack.
        let very_deep = b"d1:a".repeat(100_000);
        assert!(matches!(
            kind_of(&very_deep),
            DecodeErrorKind::TooDeep { limit: 100 }
        ));
    }

    #[test]
    fn token_limit() {
        let limits = Limits {
            depth_max: 100,
            tokens_max: 3,
        };
        assert!(decode_prefix_with(b"li1ei2ee", limits).is_ok());
        assert_eq!(
            decode_prefix_with(b"li1ei2ei3ee", limits).unwrap_err().kind,
            DecodeErrorKind::TooManyTokens { limit: 3 }
        );
    }

    #[test]
    fn error_messages_name_what_and_where() {
        let e = decode(b"d3:fooi1x").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("byte 8"), "{msg}");
        assert!(msg.contains("'e' that ends an integer"), "{msg}");
        assert!(msg.contains("'x'"), "{msg}");
    }
}
