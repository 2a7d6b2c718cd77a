//! `InfoHash`: the 20-byte SHA-1 that names a v1 torrent.
//!
//! It is the SHA-1 of the exact bytes of the bencoded `info` dictionary as they
//! appear in the .torrent file (never of a re-encoding).

use std::fmt;
use std::str::FromStr;

/// A v1 info-hash (SHA-1, 20 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InfoHash(pub [u8; 20]);

/// Why a text could not be read as an info-hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InfoHashParseError {
    #[error("an info-hash in hex has 40 characters, found {0}")]
    BadLength(usize),
    #[error("an info-hash in hex has only 0-9 and a-f, found {found:?} at character {position}")]
    BadDigit { position: usize, found: char },
}

impl InfoHash {
    /// The hash of `bytes`, which must be the exact bencoded info dictionary.
    pub fn of_info_bytes(bytes: &[u8]) -> InfoHash {
        InfoHash(crate::hash::sha1(bytes))
    }

    /// Lower-case hex, 40 characters.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(40);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }

    /// Parses 40 hex digits (either case).
    pub fn from_hex(text: &str) -> Result<InfoHash, InfoHashParseError> {
        let bytes = text.as_bytes();
        if bytes.len() != 40 {
            return Err(InfoHashParseError::BadLength(text.chars().count()));
        }
        let mut out = [0u8; 20];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or_else(|| bad_digit(text, 2 * i))?;
            let lo = hex_value(pair[1]).ok_or_else(|| bad_digit(text, 2 * i + 1))?;
            out[i] = (hi << 4) | lo;
        }
        Ok(InfoHash(out))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The value of one hex digit (either case).
pub(crate) fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn bad_digit(text: &str, position: usize) -> InfoHashParseError {
    let found = text
        .get(position..)
        .and_then(|s| s.chars().next())
        .unwrap_or('?');
    InfoHashParseError::BadDigit { position, found }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

impl FromStr for InfoHash {
    type Err = InfoHashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InfoHash::from_hex(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let h = InfoHash::from_hex("C0FDA1EDAFDBDBB96443424E0B3899AF7159D10E").unwrap();
        assert_eq!(h.to_hex(), "c0fda1edafdbdbb96443424e0b3899af7159d10e");
        assert_eq!(h.to_string().parse::<InfoHash>().unwrap(), h);
    }

    #[test]
    fn hex_errors_name_the_problem() {
        assert_eq!(
            InfoHash::from_hex("abc"),
            Err(InfoHashParseError::BadLength(3))
        );
        let bad = "g0fda1edafdbdbb96443424e0b3899af7159d10e";
        assert_eq!(
            InfoHash::from_hex(bad),
            Err(InfoHashParseError::BadDigit {
                position: 0,
                found: 'g'
            })
        );
        // Multi-byte characters must not panic.
        assert!(InfoHash::from_hex("éééééééééééééééééééééééééééééééééééééééé").is_err());
    }
}
