//! Magnet URIs (BEP 9, with BEP 53's `so`): text in, a [`Magnet`] out, and back.
//!
//! Pure code: no network, no files. It reads what a magnet says; fetching the
//! metadata it names is the job of the runtime.
//!
//! What it accepts, decided on purpose:
//! - the scheme `magnet:?` in any case; parameters split on `&`, each `key=value`
//!   split at its first `=` (a segment with no `=` is a key with an empty value);
//!   empty segments (`&&`, a trailing `&`) are skipped;
//! - keys in any case (`XT`, `Dn`), and indexed keys `xt.1`, `tr.2`, `ws.3`,
//!   `x.pe.4` (a dot and digits) as the plain key;
//! - keys and values percent-decoded; `+` decodes to a space, as libtorrent and
//!   HTML forms do (a real `+` must be written `%2B`, which [`Magnet::to_uri`]
//!   does); `%` not followed by two hex digits is an error naming the key and the
//!   byte offset in the URI;
//! - after decoding, values that say where to connect (`xt`, `xl`, `tr`, `ws`,
//!   `x.pe`, `so`) must be UTF-8, or it is an error: a replaced character would
//!   silently change the address. The display name and unknown parameters are
//!   only shown or passed on, so they are decoded lossily (U+FFFD);
//! - `xt`: the first `urn:btih:` wins (40 hex digits in either case, or 32 base32
//!   characters in either case); every `urn:btih:` must be well formed; `urn:btmh:`
//!   (v2) alone is refused as not supported yet, and beside a `urn:btih:` it is
//!   ignored, as are other kinds of `xt` (`urn:sha1:`, ...);
//! - `dn`, `xl` and `so`: the first one counts (each must still be well formed);
//! - `tr`, `ws`, `x.pe`: kept in order, empty values skipped, duplicates removed,
//!   at most [`limits::MAGNET_LIST_ITEMS_MAX`] distinct values each;
//! - other keys are kept, decoded, in `unknown` (at most
//!   [`limits::MAGNET_LIST_ITEMS_MAX`]);
//! - at most [`limits::MAGNET_URI_BYTES_MAX`] bytes in all.
//!
//! `parse(to_uri(m)) == m` holds for every `m` that `parse` returned, as long
//! as `to_uri(m)` stays within [`limits::MAGNET_URI_BYTES_MAX`]: escaping and
//! writing a base32 hash as hex can make the text longer than the input was.

pub mod fetch;
pub mod metadata;

mod base32;
mod error;
mod percent;
mod select_only;

use std::fmt;
use std::str::FromStr;

pub use error::MagnetError;

use crate::{limits, InfoHash};

/// Longest piece of a bad input quoted back in an error, in characters.
const QUOTE_CHARS_MAX: usize = 64;
/// How a magnet URI starts (compared without regard to ASCII case).
const SCHEME: &[u8] = b"magnet:?";
const BTIH_PREFIX: &[u8] = b"urn:btih:";
const BTMH_PREFIX: &[u8] = b"urn:btmh:";
/// Hex digits in a v1 info-hash.
const HEX_HASH_CHARS: usize = 40;

/// A parsed magnet URI.
///
/// Invariants of a value from [`Magnet::parse`] (and needed for `to_uri` to
/// round-trip): list entries are non-empty and distinct, `select_only` is not
/// `Some` of an empty list and its ranges have `first <= last`, and `unknown`
/// holds no key that is one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    /// `xt=urn:btih:`: the v1 info-hash.
    pub info_hash: InfoHash,
    /// `dn`: a name to show until the metadata is known.
    pub display_name: Option<String>,
    /// `tr`: tracker URLs, in order, without duplicates.
    pub trackers: Vec<String>,
    /// `xl`: the total size in bytes.
    pub exact_length: Option<u64>,
    /// `x.pe`: peer addresses (`host:port`) as given.
    pub peers: Vec<String>,
    /// `ws`: web seed URLs (BEP 19).
    pub web_seeds: Vec<String>,
    /// `so` (BEP 53): file indices to download, inclusive `(first, last)` ranges.
    pub select_only: Option<Vec<(u32, u32)>>,
    /// Every other parameter, decoded, in order.
    pub unknown: Vec<(String, String)>,
}

/// The parameters this module knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    ExactTopic,
    DisplayName,
    ExactLength,
    Tracker,
    WebSeed,
    Peer,
    SelectOnly,
}

impl Key {
    /// Which known key `name` is, ignoring ASCII case and a `.N` index on the
    /// keys that may repeat.
    fn of(name: &str) -> Option<Key> {
        let lower = name.to_ascii_lowercase();
        if let Some(key) = Key::exact(&lower) {
            return Some(key);
        }
        let (base, index) = lower.rsplit_once('.')?;
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        match Key::exact(base)? {
            key @ (Key::ExactTopic | Key::Tracker | Key::WebSeed | Key::Peer) => Some(key),
            _ => None,
        }
    }

    fn exact(lower: &str) -> Option<Key> {
        Some(match lower {
            "xt" => Key::ExactTopic,
            "dn" => Key::DisplayName,
            "xl" => Key::ExactLength,
            "tr" => Key::Tracker,
            "ws" => Key::WebSeed,
            "x.pe" => Key::Peer,
            "so" => Key::SelectOnly,
            _ => return None,
        })
    }
}

/// One `key=value` segment, decoded.
struct Param {
    key: String,
    value: Vec<u8>,
    /// Byte offset of the value in the URI.
    value_at: usize,
}

impl Param {
    /// The value as UTF-8, or an error naming the key.
    fn strict(self) -> Result<String, MagnetError> {
        let Param {
            key,
            value,
            value_at,
        } = self;
        String::from_utf8(value).map_err(|_| MagnetError::NotUtf8 {
            key,
            position: value_at,
        })
    }

    /// The value as text, bytes that are not UTF-8 replaced by U+FFFD.
    fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.value).into_owned()
    }
}

impl Magnet {
    /// A magnet with only an info-hash.
    pub fn new(info_hash: InfoHash) -> Magnet {
        Magnet {
            info_hash,
            display_name: None,
            trackers: Vec::new(),
            exact_length: None,
            peers: Vec::new(),
            web_seeds: Vec::new(),
            select_only: None,
            unknown: Vec::new(),
        }
    }

    /// Reads a magnet URI (see the module documentation for what is accepted).
    pub fn parse(uri: &str) -> Result<Magnet, MagnetError> {
        let bytes = uri.as_bytes();
        if bytes.len() > limits::MAGNET_URI_BYTES_MAX {
            return Err(MagnetError::TooLong {
                bytes: bytes.len(),
                max: limits::MAGNET_URI_BYTES_MAX,
            });
        }
        let query = match (bytes.get(..SCHEME.len()), bytes.get(SCHEME.len()..)) {
            (Some(scheme), Some(query)) if scheme.eq_ignore_ascii_case(SCHEME) => query,
            _ => return Err(MagnetError::NotMagnet { found: quote(uri) }),
        };

        let mut info_hash = None;
        let mut saw_v2 = false;
        let mut magnet = Magnet::new(InfoHash::default());
        let mut segment_at = SCHEME.len();
        for segment in query.split(|&b| b == b'&') {
            let at = segment_at;
            segment_at += segment.len() + 1;
            if segment.is_empty() {
                continue;
            }
            let param = decode_segment(segment, at)?;
            match Key::of(&param.key) {
                Some(Key::ExactTopic) => {
                    let topic = param.strict()?;
                    let topic_bytes = topic.as_bytes();
                    if starts_with_ignore_case(topic_bytes, BTIH_PREFIX) {
                        let hash = parse_hash(topic.get(BTIH_PREFIX.len()..).unwrap_or(""))?;
                        info_hash.get_or_insert(hash);
                    } else if starts_with_ignore_case(topic_bytes, BTMH_PREFIX) {
                        saw_v2 = true;
                    }
                }
                Some(Key::DisplayName) => {
                    let name = param.lossy();
                    magnet.display_name.get_or_insert(name);
                }
                Some(Key::ExactLength) => {
                    let length = parse_length(&param.strict()?)?;
                    magnet.exact_length.get_or_insert(length);
                }
                Some(Key::Tracker) => {
                    push_distinct(&mut magnet.trackers, param.strict()?, "trackers (tr)")?
                }
                Some(Key::WebSeed) => {
                    push_distinct(&mut magnet.web_seeds, param.strict()?, "web seeds (ws)")?
                }
                Some(Key::Peer) => {
                    push_distinct(&mut magnet.peers, param.strict()?, "peers (x.pe)")?
                }
                Some(Key::SelectOnly) => {
                    let ranges = select_only::parse(&param.strict()?)?;
                    magnet.select_only.get_or_insert(ranges);
                }
                None => {
                    if magnet.unknown.len() >= limits::MAGNET_LIST_ITEMS_MAX {
                        return Err(MagnetError::TooManyItems {
                            what: "unknown parameters",
                            max: limits::MAGNET_LIST_ITEMS_MAX,
                        });
                    }
                    let value = param.lossy();
                    magnet.unknown.push((param.key, value));
                }
            }
        }
        magnet.info_hash = match info_hash {
            Some(hash) => hash,
            None if saw_v2 => return Err(MagnetError::V2NotSupported),
            None => return Err(MagnetError::MissingInfoHash),
        };
        Ok(magnet)
    }

    /// Writes the magnet as a URI: `xt` as lower-case hex first, then `dn`,
    /// `xl`, every `tr`, `ws` and `x.pe`, `so`, and the unknown parameters in
    /// order, with values percent-escaped so that [`Magnet::parse`] reads the
    /// same magnet back.
    pub fn to_uri(&self) -> String {
        let mut out = String::from("magnet:?xt=urn:btih:");
        out.push_str(&self.info_hash.to_hex());
        if let Some(name) = &self.display_name {
            out.push_str("&dn=");
            percent::encode_into(&mut out, name);
        }
        if let Some(length) = self.exact_length {
            out.push_str("&xl=");
            out.push_str(&length.to_string());
        }
        for (key, values) in [
            ("tr", &self.trackers),
            ("ws", &self.web_seeds),
            ("x.pe", &self.peers),
        ] {
            for value in values {
                out.push('&');
                out.push_str(key);
                out.push('=');
                percent::encode_into(&mut out, value);
            }
        }
        if let Some(ranges) = &self.select_only {
            out.push_str("&so=");
            select_only::format_into(&mut out, ranges);
        }
        for (key, value) in &self.unknown {
            out.push('&');
            percent::encode_into(&mut out, key);
            out.push('=');
            percent::encode_into(&mut out, value);
        }
        out
    }
}

impl FromStr for Magnet {
    type Err = MagnetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Magnet::parse(s)
    }
}

impl fmt::Display for Magnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

/// Splits one non-empty segment at its first `=` and decodes both halves.
/// `at` is the segment's byte offset in the URI.
fn decode_segment(segment: &[u8], at: usize) -> Result<Param, MagnetError> {
    let (raw_key, raw_value, value_at) = match segment.iter().position(|&b| b == b'=') {
        Some(eq) => {
            let (key, rest) = segment.split_at(eq);
            (key, rest.get(1..).unwrap_or_default(), at + eq + 1)
        }
        None => (segment, &[][..], at + segment.len()),
    };
    let key_bytes = percent::decode(raw_key).map_err(|e| MagnetError::BadEscape {
        key: quote(&String::from_utf8_lossy(raw_key)),
        position: at + e.offset,
        found: e.found,
    })?;
    let key = String::from_utf8_lossy(&key_bytes).into_owned();
    let value = percent::decode(raw_value).map_err(|e| MagnetError::BadEscape {
        key: quote(&key),
        position: value_at + e.offset,
        found: e.found,
    })?;
    Ok(Param {
        key,
        value,
        value_at,
    })
}

/// The hash after `urn:btih:`: 40 hex or 32 base32 characters, either case.
fn parse_hash(text: &str) -> Result<InfoHash, MagnetError> {
    match text.chars().count() {
        HEX_HASH_CHARS => {
            if let Some((position, found)) = text
                .chars()
                .enumerate()
                .find(|(_, c)| !c.is_ascii_hexdigit())
            {
                return Err(MagnetError::BadHashDigit {
                    encoding: "hex",
                    position,
                    found,
                });
            }
            InfoHash::from_hex(text).map_err(|_| MagnetError::BadHashLength {
                found: HEX_HASH_CHARS,
            })
        }
        base32::HASH_CHARS => match base32::decode_hash(text) {
            Ok(bytes) => Ok(InfoHash(bytes)),
            Err(base32::Base32Error::Digit { position, found }) => Err(MagnetError::BadHashDigit {
                encoding: "base32",
                position,
                found,
            }),
            Err(base32::Base32Error::Length(found)) => Err(MagnetError::BadHashLength { found }),
        },
        found => Err(MagnetError::BadHashLength { found }),
    }
}

/// `xl`: ASCII digits only, fitting in `u64`.
fn parse_length(text: &str) -> Result<u64, MagnetError> {
    let bad = || MagnetError::BadExactLength { found: quote(text) };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<u64>().map_err(|_| bad())
}

/// Appends `value` unless it is empty or already there; refuses to grow a list
/// past [`limits::MAGNET_LIST_ITEMS_MAX`].
fn push_distinct(
    list: &mut Vec<String>,
    value: String,
    what: &'static str,
) -> Result<(), MagnetError> {
    if value.is_empty() || list.contains(&value) {
        return Ok(());
    }
    if list.len() >= limits::MAGNET_LIST_ITEMS_MAX {
        return Err(MagnetError::TooManyItems {
            what,
            max: limits::MAGNET_LIST_ITEMS_MAX,
        });
    }
    list.push(value);
    Ok(())
}

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// The start of `text`, short enough to put in an error message.
fn quote(text: &str) -> String {
    text.chars().take(QUOTE_CHARS_MAX).collect()
}

#[cfg(test)]
mod tests;
