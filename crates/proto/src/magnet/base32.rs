//! Base32 (RFC 4648 alphabet `A-Z2-7`, no padding) as used for 20-byte
//! info-hashes in old magnet URIs: 32 characters, 160 bits, no spare bits.

/// Why a text is not a base32 info-hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base32Error {
    /// Not [`HASH_CHARS`] characters; the count found.
    Length(usize),
    /// A character outside the alphabet, and its index in characters.
    Digit { position: usize, found: char },
}

/// Characters in a base32 info-hash.
pub(crate) const HASH_CHARS: usize = 32;

/// Decodes exactly [`HASH_CHARS`] base32 characters (either case) into 20 bytes.
pub(crate) fn decode_hash(text: &str) -> Result<[u8; 20], Base32Error> {
    let count = text.chars().count();
    if count != HASH_CHARS {
        return Err(Base32Error::Length(count));
    }
    let mut out = [0u8; 20];
    let mut written = 0usize;
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for (position, c) in text.chars().enumerate() {
        let bad = Base32Error::Digit { position, found: c };
        let value = digit_value(c).ok_or(bad)?;
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            let byte = ((buffer >> bits) & 0xff) as u8;
            *out.get_mut(written).ok_or(bad)? = byte;
            written += 1;
            buffer &= (1 << bits) - 1;
        }
    }
    if written != out.len() {
        return Err(Base32Error::Length(count));
    }
    Ok(out)
}

fn digit_value(c: char) -> Option<u8> {
    match c {
        'A'..='Z' => Some(c as u8 - b'A'),
        'a'..='z' => Some(c as u8 - b'a'),
        '2'..='7' => Some(c as u8 - b'2' + 26),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors made with Python's base64.b32encode.
    #[test]
    fn known_vectors() {
        assert_eq!(decode_hash(&"A".repeat(32)).unwrap(), [0u8; 20]);
        assert_eq!(decode_hash(&"7".repeat(32)).unwrap(), [0xffu8; 20]);
        let h = decode_hash("YD62D3NP3PN3SZCDIJHAWOEZV5YVTUIO").unwrap();
        assert_eq!(
            crate::InfoHash(h).to_hex(),
            "c0fda1edafdbdbb96443424e0b3899af7159d10e"
        );
        let lower = decode_hash("yd62d3np3pn3szcdijhawoezv5yvtuio").unwrap();
        assert_eq!(lower, h);
        // 0x00 0x01 ... 0x13
        let counting: [u8; 20] = core::array::from_fn(|i| i as u8);
        assert_eq!(
            decode_hash("AAAQEAYEAUDAOCAJBIFQYDIOB4IBCEQT").unwrap(),
            counting
        );
    }

    #[test]
    fn refuses_characters_outside_the_alphabet() {
        for (text, position, found) in [
            ("1AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0, '1'),
            ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA8", 31, '8'),
            ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", 30, '='),
            ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAé", 31, 'é'),
        ] {
            assert_eq!(
                decode_hash(text),
                Err(Base32Error::Digit { position, found })
            );
        }
    }

    #[test]
    fn refuses_wrong_lengths() {
        assert_eq!(decode_hash("AAAA"), Err(Base32Error::Length(4)));
        assert_eq!(decode_hash(&"A".repeat(33)), Err(Base32Error::Length(33)));
        assert_eq!(decode_hash(""), Err(Base32Error::Length(0)));
        assert_eq!(
            decode_hash(&"é".repeat(32)),
            Err(Base32Error::Digit {
                position: 0,
                found: 'é'
            })
        );
    }
}
