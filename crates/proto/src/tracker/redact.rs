//! Tracker URLs made safe to print: [`redact_url`] hides what a private
//! tracker treats as a password, [`scrub`] hides the same secrets wherever
//! they appear in a message (a tracker's `failure reason` may quote its
//! passkey).
//!
//! Private trackers put a per-user key (the passkey) in the announce URL, and
//! a leaked passkey is an account compromise: anyone holding it can announce
//! as the user. Every URL a log line, an error or a snapshot shows goes
//! through here. What is hidden, decided on purpose:
//!
//! - **every query value** (`?passkey=***&info_hash=***`): the names stay, so
//!   an operator still sees the URL's shape. Listing the secret names
//!   (`passkey`, `key`, `authkey`, `torrent_pass`, `pk`, `uk`, `token`,
//!   `auth`, ...) would miss the next tracker's spelling, and the values of
//!   an announce (`info_hash`, `peer_id`, `key`) are no one's business in a
//!   log either. A query item without `=` (`?0123abcd...`) is hidden whole;
//! - **path segments that look like a key**: only characters of a key
//!   (letters, digits, `-_.~%+=`), and either at least [`KEY_CHARS_MIN`]
//!   characters mixing letters and digits (`/SECRET456/announce`,
//!   `/announce/0123456789abcdef...`) or at least [`LONG_SEGMENT_CHARS_MIN`]
//!   characters of any of them. Words such as `announce`, `announce.php`,
//!   `scrape` or `tracker` stay;
//! - **user information** (`http://user:password@host/`): hidden whole;
//! - **the fragment** (`#...`), which a client never sends: hidden.
//!
//! The scheme, host (IPv6 brackets included) and port stay: they are what an
//! operator needs to tell which tracker failed. Control characters become
//! U+FFFD, so a URL from a torrent cannot forge log lines, and the result is
//! cut at [`REDACTED_URL_BYTES_MAX`]. Anything that is not a URL at all is
//! treated the same way (its query, fragment and key-like segments hidden),
//! so a malformed URL is never printed raw either.

use std::fmt;

/// What a hidden part is replaced with.
pub const REDACTED: &str = "***";
/// A path segment mixing letters and digits is a key from this many
/// characters on (`SECRET456` is 9).
pub const KEY_CHARS_MIN: usize = 8;
/// A path segment of key characters is a key from this many characters on,
/// letters only or digits only included.
pub const LONG_SEGMENT_CHARS_MIN: usize = 24;
/// Longest redacted URL, in bytes; longer ones end in `…`.
pub const REDACTED_URL_BYTES_MAX: usize = 2048;
/// Shortest secret [`scrub`] looks for in a message, in bytes: shorter values
/// (`1`, `yes`) would blank out ordinary words.
pub const SCRUB_SECRET_BYTES_MIN: usize = 6;

/// A URL shown through [`redact_url`] when displayed.
#[derive(Clone, Copy)]
pub struct Redacted<'a>(pub &'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(self.0))
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&redact_url(self.0), f)
    }
}

/// The parts of a URL, as slices of it.
struct Parts<'a> {
    /// `http://` (scheme and separator), or "" when there is none.
    scheme: &'a str,
    /// `user:password` before an `@` in the authority.
    userinfo: Option<&'a str>,
    /// Host and port.
    host: &'a str,
    /// From the first `/` after the authority (or the whole text without a
    /// scheme) to the query.
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

fn split(url: &str) -> Parts<'_> {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let (before_query, query) = match before_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_fragment, None),
    };
    let scheme_end = before_query.find("://").filter(|&i| {
        i > 0
            && before_query.get(..i).is_some_and(|s| {
                s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            })
    });
    let Some(i) = scheme_end else {
        return Parts {
            scheme: "",
            userinfo: None,
            host: "",
            path: before_query,
            query,
            fragment,
        };
    };
    let (scheme, rest) = before_query.split_at(i + 3);
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    Parts {
        scheme,
        userinfo,
        host,
        path,
        query,
        fragment,
    }
}

/// Whether a path segment looks like a key (see the module header).
fn looks_like_key(segment: &str) -> bool {
    let key_chars = segment
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.~%+=".contains(c));
    if !key_chars {
        return false;
    }
    let chars = segment.chars().count();
    let letters = segment.chars().any(|c| c.is_ascii_alphabetic());
    let digits = segment.chars().any(|c| c.is_ascii_digit());
    (chars >= KEY_CHARS_MIN && letters && digits) || chars >= LONG_SEGMENT_CHARS_MIN
}

/// Calls `part(text, hidden)` for each part of `url` in order: `hidden` for
/// the parts [`redact_url`] replaces.
fn walk<'a>(url: &'a str, mut part: impl FnMut(&'a str, bool)) {
    let p = split(url);
    part(p.scheme, false);
    if let Some(u) = p.userinfo {
        part(u, true);
        part("@", false);
    }
    part(p.host, false);
    for (i, segment) in p.path.split('/').enumerate() {
        if i > 0 {
            part("/", false);
        }
        part(segment, looks_like_key(segment));
    }
    if let Some(q) = p.query {
        part("?", false);
        for (i, item) in q.split('&').enumerate() {
            if i > 0 {
                part("&", false);
            }
            match item.split_once('=') {
                Some((name, value)) => {
                    part(name, looks_like_key(name));
                    part("=", false);
                    if !value.is_empty() {
                        part(value, true);
                    }
                }
                None => part(item, !item.is_empty()),
            }
        }
    }
    if let Some(f) = p.fragment {
        part("#", false);
        if !f.is_empty() {
            part(f, true);
        }
    }
}

/// `url` with its secrets replaced by [`REDACTED`] (see the module header):
/// safe to log.
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len().min(REDACTED_URL_BYTES_MAX) + 8);
    let mut truncated = false;
    walk(url, |text, hidden| {
        let text = if hidden { REDACTED } else { text };
        for c in text.chars() {
            let c = if c.is_control() { '\u{FFFD}' } else { c };
            if truncated || out.len() + c.len_utf8() > REDACTED_URL_BYTES_MAX {
                truncated = true;
                return;
            }
            out.push(c);
        }
    });
    if truncated {
        out.push('…');
    }
    out
}

/// The parts of `url` that [`redact_url`] hides, longest first, each once.
pub fn url_secrets(url: &str) -> Vec<&str> {
    let mut secrets = Vec::new();
    walk(url, |text, hidden| {
        if hidden {
            secrets.push(text);
        }
    });
    secrets.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    secrets.dedup();
    secrets
}

/// `text` with every secret of `url` (at least [`SCRUB_SECRET_BYTES_MIN`]
/// bytes) replaced by [`REDACTED`], and every copy of `url` itself by its
/// redacted form: for messages that may quote the URL or its passkey (a
/// tracker's own `failure reason`, an OS error naming the URL).
pub fn scrub(text: &str, url: &str) -> String {
    let mut out = text.to_owned();
    if !url.is_empty() && out.contains(url) {
        out = out.replace(url, &redact_url(url));
    }
    for secret in url_secrets(url) {
        if secret.len() >= SCRUB_SECRET_BYTES_MIN && out.contains(secret) {
            out = out.replace(secret, REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_hidden_names_kept() {
        assert_eq!(
            redact_url("http://t.example/announce?passkey=SECRET123"),
            "http://t.example/announce?passkey=***"
        );
        assert_eq!(
            redact_url(
                "http://t.example:2710/announce.php?info_hash=%12%34&peer_id=-RS0100-abcdefghijkl\
                 &port=6881&key=1a2b3c4d&event=started&compact=1"
            ),
            "http://t.example:2710/announce.php?info_hash=***&peer_id=***\
             &port=***&key=***&event=***&compact=***"
        );
        // Empty values and empty items stay; a bare item is hidden whole.
        assert_eq!(
            redact_url("http://t/a?x=&&0123456789abcdef0123"),
            "http://t/a?x=&&***"
        );
        assert_eq!(redact_url("http://t/a?"), "http://t/a?");
        assert_eq!(redact_url("http://t/a?secretword"), "http://t/a?***");
    }

    #[test]
    fn passkeys_in_the_path_are_hidden() {
        assert_eq!(
            redact_url("http://t.example/SECRET456/announce"),
            "http://t.example/***/announce"
        );
        assert_eq!(
            redact_url("http://t.example/announce/0123456789abcdef0123456789abcdef"),
            "http://t.example/announce/***"
        );
        assert_eq!(
            redact_url("https://t.example/a/abcdefghijklmnopqrstuvwxyzab/announce"),
            "https://t.example/a/***/announce"
        );
        assert_eq!(
            redact_url("http://t.example/tracker.php/Zm9vYmFy0123==/announce"),
            "http://t.example/tracker.php/***/announce"
        );
        // Ordinary words stay.
        for keep in [
            "http://t.example/announce",
            "http://t.example/announce.php",
            "http://t.example/tracker/scrape",
            "http://t.example/v1/announce",
            "http://t.example/",
            "http://t.example",
        ] {
            assert_eq!(redact_url(keep), keep);
        }
    }

    #[test]
    fn udp_ipv6_ports_and_userinfo() {
        assert_eq!(
            redact_url("udp://tracker.example:6969/announce"),
            "udp://tracker.example:6969/announce"
        );
        assert_eq!(
            redact_url("udp://[2001:db8::1]:6969/0123456789abcdef/announce?pk=x"),
            "udp://[2001:db8::1]:6969/***/announce?pk=***"
        );
        assert_eq!(
            redact_url("http://[::1]:8080/announce?passkey=abc"),
            "http://[::1]:8080/announce?passkey=***"
        );
        assert_eq!(
            redact_url("http://user:hunter2@t.example:80/announce"),
            "http://***@t.example:80/announce"
        );
        assert_eq!(redact_url("HTTP://T.EXAMPLE/"), "HTTP://T.EXAMPLE/");
    }

    #[test]
    fn fragments_are_hidden() {
        assert_eq!(
            redact_url("http://t.example/announce#SECRET"),
            "http://t.example/announce#***"
        );
        assert_eq!(
            redact_url("http://t.example/announce?a=1#"),
            "http://t.example/announce?a=***#"
        );
        // A `?` inside the fragment is the fragment's.
        assert_eq!(redact_url("http://t/x#a?b=c"), "http://t/x#***");
    }

    #[test]
    fn bad_urls_are_redacted_too() {
        assert_eq!(redact_url(""), "");
        assert_eq!(redact_url("announce?passkey=abc"), "announce?passkey=***");
        assert_eq!(
            redact_url("t.example/SECRET456/announce"),
            "t.example/***/announce"
        );
        assert_eq!(redact_url("://x/SECRET456"), "://x/***");
        assert_eq!(redact_url("http://"), "http://");
        assert_eq!(redact_url("?"), "?");
        assert_eq!(redact_url("#"), "#");
        // Control characters cannot forge a log line.
        assert_eq!(
            redact_url("http://t/a\nFAKE LINE\x1b[2J"),
            "http://t/a\u{FFFD}FAKE LINE\u{FFFD}[2J"
        );
        // Bytes that are not ASCII pass through as characters.
        assert_eq!(redact_url("http://tö/ä?ü=ß"), "http://tö/ä?ü=***");
    }

    #[test]
    fn output_is_bounded() {
        let long = format!("http://t/{}", "a/".repeat(10_000));
        let r = redact_url(&long);
        assert!(
            r.len() <= REDACTED_URL_BYTES_MAX + '…'.len_utf8(),
            "{}",
            r.len()
        );
        assert!(r.ends_with('…'));
        let multibyte = format!("http://t/{}", "ä".repeat(5_000));
        assert!(redact_url(&multibyte).len() <= REDACTED_URL_BYTES_MAX + '…'.len_utf8());
    }

    #[test]
    fn no_secret_survives() {
        let secrets = ["SECRET123", "SECRET456", "hunter2", "0123456789abcdef0123"];
        for url in [
            "http://u:hunter2@127.0.0.1:1/SECRET456/announce?passkey=SECRET123#SECRET123",
            "udp://127.0.0.1:1/announce/0123456789abcdef0123?key=SECRET123",
            "http://[::1]:1/SECRET456/announce?a=b&passkey=SECRET123&c",
        ] {
            let r = redact_url(url);
            for s in secrets {
                assert!(!r.contains(s), "{url} -> {r}");
            }
            assert!(!format!("{}", Redacted(url)).contains("SECRET"));
            assert!(!format!("{:?}", Redacted(url)).contains("SECRET"));
        }
    }

    #[test]
    fn scrub_hides_the_url_and_its_secrets_in_messages() {
        let url = "http://127.0.0.1:1/SECRET456/announce?passkey=SECRET123&x=1";
        let msg = format!(
            "tracker {url}: connecting to 127.0.0.1:1 for \"{url}&info_hash=%01\": refused; \
             tracker said: invalid passkey SECRET123 (x=1)"
        );
        let s = scrub(&msg, url);
        assert!(!s.contains("SECRET"), "{s}");
        assert!(s.contains("tracker http://127.0.0.1:1/***/announce?passkey=***&x=***"));
        // Short values are not hunted in the text: `1` stays a digit.
        assert!(s.contains("127.0.0.1:1"), "{s}");
        assert_eq!(
            url_secrets(url),
            vec!["SECRET123", "SECRET456", "1"],
            "longest first"
        );
        assert_eq!(scrub("nothing here", ""), "nothing here");
    }
}
