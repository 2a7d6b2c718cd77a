//! Percent-escapes in magnet URI parameters: decoding `%XX` (and `+` as a
//! space) into bytes, and escaping text back so that decoding gives it again.
//!
//! Pure byte code: no knowledge of which parameter is which; the caller turns a
//! [`BadEscape`] into an error that names the parameter.

use crate::info_hash::hex_value;

/// A malformed escape: `%` not followed by two hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadEscape {
    /// Byte offset of the `%` in the text that was decoded.
    pub offset: usize,
    /// The `%` and up to two bytes after it, as text (lossy).
    pub found: String,
}

/// Decodes `%XX` escapes (either case of hex digit) and `+` as a space, the way
/// HTML forms and libtorrent read them. Every other byte is kept as it is.
pub(crate) fn decode(text: &[u8]) -> Result<Vec<u8>, BadEscape> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        match b {
            b'%' => {
                let hi = text.get(i + 1).copied().and_then(hex_value);
                let lo = text.get(i + 2).copied().and_then(hex_value);
                match (hi, lo) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi << 4) | lo);
                        i += 3;
                    }
                    _ => {
                        let end = text.len().min(i + 3);
                        let found = text.get(i..end).unwrap_or_default();
                        return Err(BadEscape {
                            offset: i,
                            found: String::from_utf8_lossy(found).into_owned(),
                        });
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Appends `text` to `out` with every byte escaped except ASCII letters, digits
/// and `-._~:/@!'()*,` (unreserved characters and a few that are harmless inside
/// a query value and keep tracker URLs readable). `%`, `&`, `=`, `+`, `#`,
/// space, controls and all non-ASCII bytes are always escaped.
pub(crate) fn encode_into(out: &mut String, text: &str) {
    for &b in text.as_bytes() {
        if is_plain(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 15)]));
        }
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/@!'()*,".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(text: &str) -> String {
        let mut s = String::new();
        encode_into(&mut s, text);
        s
    }

    #[test]
    fn decodes_escapes_in_either_case_and_plus_as_space() {
        assert_eq!(decode(b"a%20b+c%2bd%2Fe").unwrap(), b"a b c+d/e");
        assert_eq!(decode(b"").unwrap(), b"");
        assert_eq!(decode(b"%ff%FF").unwrap(), [0xff, 0xff]);
    }

    #[test]
    fn bad_escapes_say_where() {
        assert_eq!(
            decode(b"ab%zz"),
            Err(BadEscape {
                offset: 2,
                found: "%zz".into()
            })
        );
        assert_eq!(
            decode(b"x%4"),
            Err(BadEscape {
                offset: 1,
                found: "%4".into()
            })
        );
        assert_eq!(
            decode(b"%"),
            Err(BadEscape {
                offset: 0,
                found: "%".into()
            })
        );
        // A multi-byte character after '%' must not panic.
        let err = decode("%é".as_bytes()).unwrap_err();
        assert_eq!(err.offset, 0);
    }

    #[test]
    fn encodes_everything_that_matters() {
        assert_eq!(encoded("a b+c&d=e%f#g"), "a%20b%2Bc%26d%3De%25f%23g");
        assert_eq!(
            encoded("udp://t.example:6969/announce"),
            "udp://t.example:6969/announce"
        );
        assert_eq!(encoded("é\u{1}"), "%C3%A9%01");
    }

    #[test]
    fn encode_then_decode_is_identity() {
        for text in ["", "plain", "a b+c&d=e%f#g?h", "é日本\u{0}\u{7f}", "~-._"] {
            assert_eq!(decode(encoded(text).as_bytes()).unwrap(), text.as_bytes());
        }
    }
}
