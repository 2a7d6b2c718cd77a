//! The body of an HTTP announce answer (BEP 3, 23, 7) read into an
//! [`AnnounceResponse`].
//!
//! Rules, decided on purpose:
//! - at most [`BODY_BYTES_MAX`] bytes; bytes after the top-level dictionary are
//!   ignored (some trackers append a newline);
//! - `failure reason` wins over everything else and becomes
//!   [`TrackerError::Failure`] with the tracker's words;
//! - `interval` is required (an integer); `min interval` optional; both are
//!   clamped (see [`crate::tracker::announce`]);
//! - `complete`/`incomplete` outside `0..=u32::MAX` or not integers are left
//!   out rather than failing the announce (they are informative only);
//! - `tracker id` is kept when it is UTF-8 of at most [`TRACKER_ID_BYTES_MAX`]
//!   bytes, otherwise ignored;
//! - `peers` is a compact string (6 bytes each) or a list of dictionaries with
//!   `ip` (a textual IPv4 or IPv6 address) and `port`; `peers6` is a compact
//!   string of 18 bytes each (or a list, read the same way). A compact string
//!   whose length is not a multiple of its entry size is an error; a list
//!   entry that is not usable (not a dictionary, an `ip` that is a hostname -
//!   we never resolve names a tracker hands us - a port outside 1..=65535) is
//!   skipped and counted. A `peers` of another type is an error. Neither key
//!   present means no peers.

use crate::bencode::{decode_prefix_with, Dict, Limits, Value};
use crate::tracker::announce::{clamp_interval, sanitize_message};
use crate::tracker::peers::PeerCollector;
use crate::tracker::{AnnounceResponse, TrackerError};
use std::net::{IpAddr, SocketAddr};

/// Largest tracker answer read, in bytes.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// Longest `tracker id` kept, in bytes.
pub const TRACKER_ID_BYTES_MAX: usize = 256;

/// Reads an announce answer.
pub fn parse_announce_response(body: &[u8]) -> Result<AnnounceResponse, TrackerError> {
    let dict_value = top_dict(body)?;
    let dict = dict_value.as_dict().ok_or(TrackerError::NotADictionary {
        found: dict_value.type_name(),
    })?;
    check_failure(dict)?;

    let interval = required_int(dict, "interval")?;
    let min_interval = optional_int(dict, "min interval")?;
    let mut peers = PeerCollector::default();
    if let Some(v) = dict.get(b"peers") {
        read_peers(v, "peers", false, &mut peers)?;
    }
    if let Some(v) = dict.get(b"peers6") {
        read_peers(v, "peers6", true, &mut peers)?;
    }
    Ok(AnnounceResponse {
        warning: dict
            .get(b"warning message")
            .and_then(Value::as_bytes)
            .map(sanitize_message),
        interval: clamp_interval(interval),
        min_interval: min_interval.map(clamp_interval),
        tracker_id: dict
            .get(b"tracker id")
            .and_then(Value::as_str)
            .filter(|s| s.len() <= TRACKER_ID_BYTES_MAX)
            .map(str::to_string),
        complete: count(dict, "complete"),
        incomplete: count(dict, "incomplete"),
        peers: peers.peers,
        peers_skipped: peers.skipped,
        peers_over_limit: peers.over_limit,
    })
}

/// Deepest nesting in a tracker's answer (a peer list of dictionaries is 3).
const BODY_DEPTH_MAX: usize = 8;
/// Most bencode values in a tracker's answer: room for the peer and scrape
/// limits, far below the crate-wide default.
const BODY_TOKENS_MAX: usize = 50_000;
/// Bencode tokens of one peer in a list of dictionaries: the dictionary,
/// and `ip`, `peer id` and `port` with their values.
const DICT_PEER_TOKENS: usize = 7;
/// Bencode tokens of one torrent in a scrape's `files`: its key, its
/// dictionary, and `complete`, `downloaded`, `incomplete` and `name` with
/// their values.
const SCRAPE_FILE_TOKENS: usize = 10;
/// Bencode tokens of an answer besides its peer or file list (the top
/// dictionary, `interval`, `min interval`, counts, `tracker id`, warnings).
const BODY_REST_TOKENS: usize = 100;

// An answer that lists the most peers we keep, as dictionaries (the
// largest form), must decode: otherwise a tracker that sends a full answer
// gets an error instead of its peers.
const _: () = assert!(
    crate::tracker::PEERS_PER_RESPONSE_MAX * DICT_PEER_TOKENS + BODY_REST_TOKENS <= BODY_TOKENS_MAX
);
// A scrape of the most torrents we keep must decode too.
const _: () = assert!(
    super::scrape::SCRAPE_FILES_MAX * SCRAPE_FILE_TOKENS + BODY_REST_TOKENS <= BODY_TOKENS_MAX
);
// The answer's own limits are tighter than the crate-wide ones.
const _: () = assert!(
    BODY_DEPTH_MAX <= crate::limits::BENCODE_DEPTH_MAX
        && BODY_TOKENS_MAX <= crate::limits::BENCODE_TOKENS_MAX
);

/// The body decoded, under the size limit; its top value is returned as is.
pub(super) fn top_dict(body: &[u8]) -> Result<Value<'_>, TrackerError> {
    if body.len() > BODY_BYTES_MAX {
        return Err(TrackerError::BodyTooLarge {
            length: body.len(),
            limit: BODY_BYTES_MAX,
        });
    }
    let limits = Limits {
        depth_max: BODY_DEPTH_MAX,
        tokens_max: BODY_TOKENS_MAX,
    };
    let (value, _consumed) = decode_prefix_with(body, limits)?;
    Ok(value)
}

/// `failure reason`, if present, as the error.
pub(super) fn check_failure(dict: &Dict<'_>) -> Result<(), TrackerError> {
    match dict.get(b"failure reason") {
        None => Ok(()),
        Some(v) => Err(TrackerError::Failure(match v.as_bytes() {
            Some(text) => sanitize_message(text),
            None => format!("(a failure reason that is a {}, not text)", v.type_name()),
        })),
    }
}

pub(super) fn wrong_type(key: &'static str, v: &Value<'_>, expected: &'static str) -> TrackerError {
    TrackerError::WrongType {
        key,
        offset: v.offset,
        expected,
        found: v.type_name().to_string(),
    }
}

fn required_int(dict: &Dict<'_>, key: &'static str) -> Result<i64, TrackerError> {
    optional_int(dict, key)?.ok_or(TrackerError::MissingKey { key })
}

fn optional_int(dict: &Dict<'_>, key: &'static str) -> Result<Option<i64>, TrackerError> {
    match dict.get(key.as_bytes()) {
        None => Ok(None),
        Some(v) => v
            .as_int()
            .map(Some)
            .ok_or_else(|| wrong_type(key, v, "an integer")),
    }
}

pub(super) fn count(dict: &Dict<'_>, key: &str) -> Option<u32> {
    dict.get(key.as_bytes())
        .and_then(Value::as_int)
        .and_then(|n| u32::try_from(n).ok())
}

fn read_peers(
    v: &Value<'_>,
    key: &'static str,
    v6: bool,
    out: &mut PeerCollector,
) -> Result<(), TrackerError> {
    if let Some(bytes) = v.as_bytes() {
        // The bytes start after the length prefix `<len>:`.
        let offset = v
            .offset
            .saturating_add(v.raw.len().saturating_sub(bytes.len()));
        return out.push_compact(bytes, v6, key, offset);
    }
    let list = v
        .as_list()
        .ok_or_else(|| wrong_type(key, v, "a compact string or a list of peers"))?;
    for entry in list {
        match dict_peer(entry) {
            Some(addr) => out.push(addr),
            None => out.skipped += 1,
        }
    }
    Ok(())
}

/// One `{ip, port}` dictionary as an address, or `None` if unusable.
fn dict_peer(entry: &Value<'_>) -> Option<SocketAddr> {
    let d = entry.as_dict()?;
    let ip_text = d.get(b"ip")?.as_str()?;
    let ip_text = ip_text
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(ip_text);
    let ip: IpAddr = ip_text.parse().ok()?;
    let port = u16::try_from(d.get(b"port")?.as_int()?).ok()?;
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn parse(body: &[u8]) -> Result<AnnounceResponse, TrackerError> {
        parse_announce_response(body)
    }

    #[test]
    fn compact_response() {
        let r = parse(b"d8:completei5e10:incompletei3e8:intervali1800e5:peers12:\x0a\x00\x00\x01\x1a\xe1\x7f\x00\x00\x01\x00\x50e")
            .unwrap();
        assert_eq!(r.interval, Duration::from_secs(1800));
        assert_eq!(r.complete, Some(5));
        assert_eq!(r.incomplete, Some(3));
        assert_eq!(
            r.peers,
            vec![
                "10.0.0.1:6881".parse::<SocketAddr>().unwrap(),
                "127.0.0.1:80".parse().unwrap()
            ]
        );
        assert_eq!(r.min_interval, None);
        assert_eq!(r.warning, None);
        assert_eq!(r.tracker_id, None);
    }

    #[test]
    fn dict_peers_with_v6_and_skips() {
        let body = b"d8:intervali60e5:peersl\
            d2:ip8:10.0.0.24:porti1ee\
            d2:ip5:[::1]4:porti2e7:peer id20:aaaaaaaaaaaaaaaaaaaae\
            d2:ip11:example.org4:porti3ee\
            d2:ip3:::14:porti0ee\
            d2:ip3:::14:porti70000ee\
            i5e\
            d4:porti3ee\
            ee";
        let r = parse(body).unwrap();
        assert_eq!(
            r.peers,
            vec![
                "10.0.0.2:1".parse::<SocketAddr>().unwrap(),
                "[::1]:2".parse().unwrap()
            ]
        );
        assert_eq!(r.peers_skipped, 5);
    }

    #[test]
    fn peers6_compact() {
        let mut body = b"d8:intervali60e6:peers618:".to_vec();
        let mut p = [0u8; 18];
        p[0] = 0x20;
        p[1] = 0x01;
        p[15] = 5;
        p[17] = 9;
        body.extend_from_slice(&p);
        body.push(b'e');
        let r = parse(&body).unwrap();
        assert_eq!(r.peers, vec!["[2001::5]:9".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn compact_length_error_names_key_and_offset() {
        let e = parse(b"d8:intervali60e5:peers7:abcdefge").unwrap_err();
        assert_eq!(
            e,
            TrackerError::CompactLength {
                key: "peers",
                offset: 24,
                length: 7,
                unit: 6
            }
        );
        let e = parse(b"d8:intervali60e6:peers66:abcdefe").unwrap_err();
        assert!(matches!(
            e,
            TrackerError::CompactLength {
                key: "peers6",
                unit: 18,
                ..
            }
        ));
    }

    #[test]
    fn failure_reason_is_the_trackers_words() {
        let e = parse(b"d14:failure reason17:torrent not founde").unwrap_err();
        assert_eq!(e, TrackerError::Failure("torrent not found".to_string()));
        assert_eq!(
            e.to_string(),
            "tracker refused the request: torrent not found"
        );
        // Failure wins even with other keys present and broken.
        let e = parse(b"d14:failure reason3:bad8:interval3:xyze").unwrap_err();
        assert_eq!(e, TrackerError::Failure("bad".to_string()));
        let e = parse(b"d14:failure reasoni3ee").unwrap_err();
        assert!(matches!(e, TrackerError::Failure(m) if m.contains("integer")));
    }

    #[test]
    fn interval_is_required_and_an_integer() {
        assert_eq!(
            parse(b"d5:peers0:e"),
            Err(TrackerError::MissingKey { key: "interval" })
        );
        assert_eq!(
            parse(b"d8:interval2:60e"),
            Err(TrackerError::WrongType {
                key: "interval",
                offset: 11,
                expected: "an integer",
                found: "string".to_string()
            })
        );
        assert!(matches!(
            parse(b"d8:intervali60e12:min intervalli1eee"),
            Err(TrackerError::WrongType {
                key: "min interval",
                ..
            })
        ));
    }

    #[test]
    fn optional_fields_and_clamps() {
        let r = parse(
            b"d8:completei-1e10:incompletei99999999999e8:intervali1e\
              12:min intervali999999999e10:tracker id3:xyz\
              15:warning message4:slowe\n",
        )
        .unwrap();
        assert_eq!(r.complete, None);
        assert_eq!(r.incomplete, None);
        assert_eq!(r.interval, crate::tracker::INTERVAL_FLOOR);
        assert_eq!(r.min_interval, Some(crate::tracker::INTERVAL_CEILING));
        assert_eq!(r.next_announce_in(), crate::tracker::INTERVAL_CEILING);
        assert_eq!(r.tracker_id.as_deref(), Some("xyz"));
        assert_eq!(r.warning.as_deref(), Some("slow"));
        assert!(r.peers.is_empty());
    }

    #[test]
    fn long_tracker_id_is_ignored() {
        let id = "x".repeat(TRACKER_ID_BYTES_MAX + 1);
        let body = format!("d8:intervali60e10:tracker id{}:{id}e", id.len());
        assert_eq!(parse(body.as_bytes()).unwrap().tracker_id, None);
    }

    #[test]
    fn peers_of_wrong_type() {
        assert!(matches!(
            parse(b"d8:intervali60e5:peersi3ee"),
            Err(TrackerError::WrongType {
                key: "peers",
                offset: 22,
                ..
            })
        ));
    }

    #[test]
    fn garbage_bodies_are_errors() {
        assert!(matches!(parse(b""), Err(TrackerError::Bencode(_))));
        assert!(matches!(
            parse(b"<html>502 Bad Gateway</html>"),
            Err(TrackerError::Bencode(_))
        ));
        assert!(matches!(
            parse(b"li1ee"),
            Err(TrackerError::NotADictionary { found: "list" })
        ));
        assert!(matches!(
            parse(b"d8:interval"),
            Err(TrackerError::Bencode(_))
        ));
    }

    #[test]
    fn body_size_is_capped() {
        let body = vec![b' '; BODY_BYTES_MAX + 1];
        assert_eq!(
            parse(&body),
            Err(TrackerError::BodyTooLarge {
                length: BODY_BYTES_MAX + 1,
                limit: BODY_BYTES_MAX
            })
        );
    }

    #[test]
    fn peer_limit_applies_across_families() {
        let n = crate::tracker::PEERS_PER_RESPONSE_MAX;
        let mut body = format!("d8:intervali60e5:peers{}:", n * 6).into_bytes();
        body.extend(std::iter::repeat_n([1u8, 2, 3, 4, 0, 1], n).flatten());
        body.extend_from_slice(b"6:peers618:");
        body.extend_from_slice(&[1u8; 18]);
        body.push(b'e');
        let r = parse(&body).unwrap();
        assert_eq!(r.peers.len(), n);
        assert_eq!(r.peers_over_limit, 1);
    }
}
