//! Tracker URLs: the announce query appended to the tracker's own URL, and the
//! scrape URL derived from it (BEP 48).
//!
//! Rules, decided on purpose:
//! - only `http://` and `https://` (scheme in any case) with a non-empty host;
//!   no spaces or control characters; at most [`URL_BYTES_MAX`] bytes;
//! - a query already in the URL (private trackers put a passkey there) is kept
//!   and ours follows it after `&` (or directly after a trailing `?` or `&`);
//! - a `#fragment` is dropped: it is never sent to a server, and a query placed
//!   after it would not be either;
//! - binary values (`info_hash`, `peer_id`) are escaped byte by byte: the
//!   unreserved characters `A-Z a-z 0-9 - . _ ~` as they are, every other byte
//!   as `%XX` in upper-case hex;
//! - `key` is written as 8 hex digits, as common clients do.

use super::super::{AnnounceRequest, TrackerError};
use crate::InfoHash;

/// Longest tracker URL accepted (before our query is added), in bytes.
pub const URL_BYTES_MAX: usize = 4096;
/// Most info-hashes in one HTTP scrape URL (about 60 bytes each keeps the URL
/// under common 8 KiB server limits).
pub const SCRAPE_URL_HASHES_MAX: usize = 64;

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Escapes bytes for a URL query: unreserved characters as-is, all else `%XX`.
pub fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    push_encoded(&mut out, bytes);
    out
}

fn push_encoded(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 15)]));
        }
    }
}

/// The tracker URL checked, with any fragment removed.
fn checked_base(base: &str) -> Result<&str, TrackerError> {
    if base.len() > URL_BYTES_MAX {
        return Err(TrackerError::UrlTooLong {
            length: base.len(),
            limit: URL_BYTES_MAX,
        });
    }
    let rest = strip_scheme(base).ok_or_else(|| TrackerError::UnsupportedScheme {
        url: base.to_string(),
    })?;
    if let Some(offset) = base.bytes().position(|b| b <= b' ' || b == 0x7f) {
        return Err(TrackerError::UrlBadChar {
            url: base.to_string(),
            offset,
        });
    }
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if host_end == 0 {
        return Err(TrackerError::MissingHost {
            url: base.to_string(),
        });
    }
    Ok(match base.find('#') {
        Some(hash) => base.get(..hash).unwrap_or(base),
        None => base,
    })
}

/// What follows `http://` or `https://` (any case), or `None` for other schemes.
fn strip_scheme(url: &str) -> Option<&str> {
    for scheme in ["http://", "https://"] {
        if let Some(head) = url.get(..scheme.len()) {
            if head.eq_ignore_ascii_case(scheme) {
                return url.get(scheme.len()..);
            }
        }
    }
    None
}

/// The full announce URL: `base` with the announce's query appended.
pub fn announce_url(base: &str, req: &AnnounceRequest) -> Result<String, TrackerError> {
    let base = checked_base(base)?;
    let mut url = String::with_capacity(base.len() + 256);
    url.push_str(base);
    match base.find('?') {
        None => url.push('?'),
        Some(_) if base.ends_with('?') || base.ends_with('&') => {}
        Some(_) => url.push('&'),
    }
    url.push_str("info_hash=");
    push_encoded(&mut url, &req.info_hash.0);
    url.push_str("&peer_id=");
    push_encoded(&mut url, &req.peer_id);
    url.push_str(&format!(
        "&port={}&uploaded={}&downloaded={}&left={}&compact={}",
        req.port,
        req.uploaded,
        req.downloaded,
        req.left,
        u8::from(req.compact)
    ));
    if req.no_peer_id {
        url.push_str("&no_peer_id=1");
    }
    if let Some(event) = req.event {
        url.push_str("&event=");
        url.push_str(event.as_str());
    }
    if let Some(n) = req.numwant {
        url.push_str(&format!("&numwant={n}"));
    }
    if let Some(key) = req.key {
        url.push_str(&format!("&key={key:08X}"));
    }
    if let Some(id) = &req.tracker_id {
        url.push_str("&trackerid=");
        push_encoded(&mut url, id.as_bytes());
    }
    if let Some(ip) = req.ip {
        url.push_str("&ip=");
        push_encoded(&mut url, ip.to_string().as_bytes());
    }
    Ok(url)
}

/// The scrape URL for an announce URL (BEP 48): the last path segment must
/// start with `announce`, and that word becomes `scrape` (`/announce.php` →
/// `/scrape.php`); the query (a passkey) is kept. `info_hash` parameters are
/// the caller's to add with [`percent_encode`].
pub fn scrape_url(announce: &str) -> Result<String, TrackerError> {
    let base = checked_base(announce)?;
    let not_supported = || TrackerError::ScrapeNotSupported {
        url: announce.to_string(),
    };
    let path_end = base.find('?').unwrap_or(base.len());
    let (path_part, query) = base.split_at(path_end);
    let slash = path_part.rfind('/').ok_or_else(not_supported)?;
    let after_scheme = path_part.find("://").map_or(0, |i| i + 3);
    if slash < after_scheme {
        // The only slashes are the scheme's: no path at all.
        return Err(not_supported());
    }
    let (dir, segment) = path_part.split_at(slash + 1);
    let tail = segment.strip_prefix("announce").ok_or_else(not_supported)?;
    Ok(format!("{dir}scrape{tail}{query}"))
}

/// The full scrape URL for `hashes` (1 to [`SCRAPE_URL_HASHES_MAX`]): the
/// [`scrape_url`] with one `info_hash` parameter per torrent.
pub fn scrape_request_url(announce: &str, hashes: &[InfoHash]) -> Result<String, TrackerError> {
    if hashes.is_empty() || hashes.len() > SCRAPE_URL_HASHES_MAX {
        return Err(TrackerError::ScrapeHashCount {
            count: hashes.len(),
            limit: SCRAPE_URL_HASHES_MAX,
        });
    }
    let mut url = scrape_url(announce)?;
    // Nothing to add after a trailing `?` or `&`.
    let mut separator = match url.find('?') {
        None => Some('?'),
        Some(_) if url.ends_with('?') || url.ends_with('&') => None,
        Some(_) => Some('&'),
    };
    for hash in hashes {
        if let Some(c) = separator {
            url.push(c);
        }
        url.push_str("info_hash=");
        push_encoded(&mut url, &hash.0);
        separator = Some('&');
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::Event;
    use crate::InfoHash;
    use std::net::IpAddr;

    fn request() -> AnnounceRequest {
        let mut hash = [0u8; 20];
        for (i, b) in hash.iter_mut().enumerate() {
            *b = u8::try_from(i).unwrap() * 13;
        }
        AnnounceRequest {
            uploaded: 1,
            downloaded: 2,
            left: 3,
            ..AnnounceRequest::new(InfoHash(hash), *b"-RS0001-abcdefghij~.", 6881)
        }
    }

    const HASH_ESCAPED: &str = "%00%0D%1A%274AN%5Bhu%82%8F%9C%A9%B6%C3%D0%DD%EA%F7";

    #[test]
    fn every_byte_escapes_correctly() {
        let all: Vec<u8> = (0..=255u8).collect();
        let s = percent_encode(&all);
        let mut i = 0;
        let bytes = s.as_bytes();
        for b in 0..=255u8 {
            let unreserved = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
            if unreserved {
                assert_eq!(bytes[i], b, "byte {b}");
                i += 1;
            } else {
                let want = format!("%{b:02X}");
                assert_eq!(&s[i..i + 3], want, "byte {b}");
                i += 3;
            }
        }
        assert_eq!(i, s.len());
        // Unreserved count: 26 + 26 + 10 + 4.
        assert_eq!(s.len(), 66 + (256 - 66) * 3);
    }

    #[test]
    fn url_without_query() {
        let url = announce_url("http://tracker.example/announce", &request()).unwrap();
        assert_eq!(
            url,
            format!(
                "http://tracker.example/announce?info_hash={HASH_ESCAPED}\
                 &peer_id=-RS0001-abcdefghij~.&port=6881&uploaded=1&downloaded=2&left=3&compact=1"
            )
        );
    }

    #[test]
    fn url_with_passkey_query() {
        let url = announce_url("https://t.example/announce?passkey=abc", &request()).unwrap();
        assert!(url.starts_with("https://t.example/announce?passkey=abc&info_hash=%00"));
        assert_eq!(url.matches('?').count(), 1);
        let url = announce_url("https://t.example/a?passkey=abc&", &request()).unwrap();
        assert!(url.starts_with("https://t.example/a?passkey=abc&info_hash="));
        let url = announce_url("https://t.example/a?", &request()).unwrap();
        assert!(url.starts_with("https://t.example/a?info_hash="));
    }

    #[test]
    fn fragment_is_dropped() {
        let url = announce_url("http://t.example/announce?pk=1#frag", &request()).unwrap();
        assert!(url.starts_with("http://t.example/announce?pk=1&info_hash="));
        assert!(!url.contains('#'));
    }

    #[test]
    fn optional_parameters() {
        let mut r = request();
        r.event = Some(Event::Started);
        r.numwant = Some(50);
        r.key = Some(0xdead_beef);
        r.compact = false;
        r.no_peer_id = true;
        r.tracker_id = Some("id 1&x".to_string());
        r.ip = Some("2001:db8::1".parse::<IpAddr>().unwrap());
        let url = announce_url("HTTP://t.example:8080/announce", &r).unwrap();
        assert!(url.ends_with(
            "&compact=0&no_peer_id=1&event=started&numwant=50&key=DEADBEEF\
             &trackerid=id%201%26x&ip=2001%3Adb8%3A%3A1"
        ));
    }

    #[test]
    fn other_schemes_are_refused() {
        for url in [
            "udp://t.example:80/announce",
            "ftp://x/",
            "tracker.example/announce",
            "",
        ] {
            assert_eq!(
                announce_url(url, &request()),
                Err(TrackerError::UnsupportedScheme {
                    url: url.to_string()
                })
            );
        }
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(matches!(
            announce_url("http:///announce", &request()),
            Err(TrackerError::MissingHost { .. })
        ));
        assert!(matches!(
            announce_url("http://", &request()),
            Err(TrackerError::MissingHost { .. })
        ));
        assert_eq!(
            announce_url("http://t.example/an nounce", &request()),
            Err(TrackerError::UrlBadChar {
                url: "http://t.example/an nounce".to_string(),
                offset: 19
            })
        );
        let long = format!("http://t.example/{}", "a".repeat(URL_BYTES_MAX));
        assert!(matches!(
            announce_url(&long, &request()),
            Err(TrackerError::UrlTooLong {
                limit: URL_BYTES_MAX,
                ..
            })
        ));
    }

    #[test]
    fn scrape_request_urls() {
        let a = InfoHash([b'a'; 20]);
        let b = InfoHash([0xff; 20]);
        let url = scrape_request_url("http://t.example/announce", &[a, b]).unwrap();
        assert_eq!(
            url,
            format!(
                "http://t.example/scrape?info_hash={}&info_hash={}",
                "a".repeat(20),
                "%FF".repeat(20)
            )
        );
        let url = scrape_request_url("http://t.example/announce?pk=1", &[a]).unwrap();
        assert_eq!(
            url,
            format!("http://t.example/scrape?pk=1&info_hash={}", "a".repeat(20))
        );
        let url = scrape_request_url("http://t.example/announce?", &[a]).unwrap();
        assert_eq!(
            url,
            format!("http://t.example/scrape?info_hash={}", "a".repeat(20))
        );
        assert_eq!(
            scrape_request_url("http://t.example/announce", &[]),
            Err(TrackerError::ScrapeHashCount {
                count: 0,
                limit: SCRAPE_URL_HASHES_MAX
            })
        );
        let many = vec![a; SCRAPE_URL_HASHES_MAX + 1];
        assert!(matches!(
            scrape_request_url("http://t.example/announce", &many),
            Err(TrackerError::ScrapeHashCount { .. })
        ));
        assert!(matches!(
            scrape_request_url("http://t.example/x", &[a]),
            Err(TrackerError::ScrapeNotSupported { .. })
        ));
    }

    #[test]
    fn scrape_urls() {
        let cases = [
            ("http://t.example/announce", "http://t.example/scrape"),
            ("http://t.example/x/announce", "http://t.example/x/scrape"),
            (
                "http://t.example/announce.php",
                "http://t.example/scrape.php",
            ),
            (
                "https://t.example/announce?passkey=abc",
                "https://t.example/scrape?passkey=abc",
            ),
            ("http://t.example/announce#f", "http://t.example/scrape"),
        ];
        for (announce, scrape) in cases {
            assert_eq!(scrape_url(announce).unwrap(), scrape, "{announce}");
        }
        for url in [
            "http://t.example/a",
            "http://t.example/announce/x",
            "http://t.example/x%064announce",
            "http://t.example",
            "http://t.example?announce",
        ] {
            assert_eq!(
                scrape_url(url),
                Err(TrackerError::ScrapeNotSupported {
                    url: url.to_string()
                }),
                "{url}"
            );
        }
        assert!(matches!(
            scrape_url("udp://t/announce"),
            Err(TrackerError::UnsupportedScheme { .. })
        ));
    }
}
