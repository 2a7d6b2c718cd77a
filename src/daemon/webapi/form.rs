//! The Web API's request parameters: the query string, and a body that is
//! `application/x-www-form-urlencoded` or `multipart/form-data`, parsed
//! into fields and uploaded files with a limit on everything.
//!
//! Boundary: bytes in, [`Params`] out; no IO, no clock. Depends only on
//! `std` and `thiserror`, so that the fuzz target (fuzz/fuzz_targets/
//! webapi_form.rs) includes this file as it is.
//!
//! qBittorrent's rules as its clients rely on them: fields from the query
//! and the body together (the body's first where both have one; a name
//! repeated in one of them: its last value, as qBittorrent's hash); unknown
//! fields are kept and simply never asked for; booleans in any case
//! (`true`, `True`, `TRUE`); in a multipart body, every part with a file
//! name (whatever its field name) is an uploaded file.

use thiserror::Error;

/// Most fields (query and body together).
pub const FIELDS_MAX: usize = 512;
/// Most parts in one multipart body.
pub const PARTS_MAX: usize = 1024;
/// Longest field name, in bytes.
pub const FIELD_NAME_BYTES_MAX: usize = 256;
/// Longest part header block (all header lines of one part), in bytes.
pub const PART_HEADER_BYTES_MAX: usize = 8 * 1024;

/// One uploaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The part's field name (any name counts).
    pub field: String,
    /// The file name the client gave.
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// A request's parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    fields: Vec<(String, String)>,
    pub files: Vec<Upload>,
}

/// What was wrong with a request's parameters; the text is the answer's
/// body (qBittorrent answers 400 with its reason).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum FormError {
    #[error("missing parameter \"{0}\"")]
    Missing(String),
    #[error("parameter \"{name}\": {why}")]
    Invalid { name: String, why: String },
    #[error("malformed request body: {0}")]
    Malformed(String),
    #[error("too many {what} (at most {max})")]
    TooMany { what: &'static str, max: usize },
}

/// Longest multipart boundary accepted (RFC 2046 allows 70; clients stay
/// well below, some a little above).
const BOUNDARY_BYTES_MAX: usize = 256;
/// Longest value shown back in an error.
const SHOWN_CHARS_MAX: usize = 64;

impl Params {
    /// Parses the query string (without `?`) and the body as its
    /// `Content-Type` says (none or another type: the body is ignored).
    pub fn parse(
        query: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Params, FormError> {
        let mut out = Builder::default();
        if let Some(q) = query {
            parse_urlencoded(q.as_bytes(), &mut out)?;
        }
        if let Some(ct) = content_type {
            let (media, params) = split_media_type(ct.as_bytes())?;
            if media.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
                parse_urlencoded(body, &mut out)?;
            } else if media.eq_ignore_ascii_case(b"multipart/form-data") {
                let boundary = params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(b"boundary"))
                    .map(|(_, v)| v.as_slice())
                    .unwrap_or_default();
                parse_multipart(boundary, body, &mut out)?;
            }
        }
        Ok(out.params)
    }

    /// A field's value (percent-decoded), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A field that must be present.
    pub fn require(&self, name: &str) -> Result<&str, FormError> {
        self.get(name)
            .ok_or_else(|| FormError::Missing(name.to_string()))
    }

    /// A boolean field: `true`/`false` in any case; absent: `None`.
    ///
    /// An empty value counts as absent (qBittorrent then uses the
    /// default, as it does for any value it cannot read); anything else is
    /// [`FormError::Invalid`].
    pub fn bool(&self, name: &str) -> Result<Option<bool>, FormError> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(FormError::Invalid {
                name: name.to_string(),
                why: format!("expected true or false, got {}", shown(v)),
            }),
        }
    }

    /// A number field (absent or empty: `None`).
    pub fn num<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, FormError> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<T>().map(Some).map_err(|_| FormError::Invalid {
                name: name.to_string(),
                why: format!("expected a number, got {}", shown(v)),
            }),
        }
    }

    /// A list field split on `sep` (qBittorrent: `|` for hashes, `,` for
    /// tags, `\n` for URLs), items trimmed, empty items dropped.
    pub fn list(&self, name: &str, sep: char) -> Vec<&str> {
        match self.get(name) {
            None => Vec::new(),
            Some(v) => v
                .split(sep)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}

/// A value as an error shows it: quoted, escaped, cut short.
fn shown(v: &str) -> String {
    if v.chars().count() <= SHOWN_CHARS_MAX {
        format!("{v:?}")
    } else {
        let cut: String = v.chars().take(SHOWN_CHARS_MAX).collect();
        format!("{cut:?}...")
    }
}

/// Collects fields with qBittorrent's rule: a later value for a name
/// replaces an earlier one (the body comes after the query, so it wins).
#[derive(Default)]
struct Builder {
    params: Params,
    /// Fields seen, repeated names included.
    seen: usize,
}

impl Builder {
    /// Counts one more field; fails past [`FIELDS_MAX`].
    fn count(&mut self) -> Result<(), FormError> {
        self.seen += 1;
        if self.seen > FIELDS_MAX {
            return Err(FormError::TooMany {
                what: "fields",
                max: FIELDS_MAX,
            });
        }
        Ok(())
    }

    fn insert(&mut self, name: String, value: String) {
        match self.params.fields.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.params.fields.push((name, value)),
        }
    }
}

/// A field name as text, checked for length and UTF-8.
fn field_name(bytes: Vec<u8>) -> Result<String, FormError> {
    if bytes.len() > FIELD_NAME_BYTES_MAX {
        return Err(FormError::TooMany {
            what: "bytes in a field name",
            max: FIELD_NAME_BYTES_MAX,
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        FormError::Malformed(format!(
            "field name {} is not valid UTF-8",
            shown(&String::from_utf8_lossy(e.as_bytes()))
        ))
    })
}

fn field_value(name: &str, bytes: Vec<u8>) -> Result<String, FormError> {
    String::from_utf8(bytes).map_err(|_| FormError::Invalid {
        name: name.to_string(),
        why: "the value is not valid UTF-8".to_string(),
    })
}

/// `a=1&b=x+y%21`: `+` is a space, `%XX` a byte (a `%` not followed by
/// two hex digits stays as it is); a pair without a name is skipped, a
/// name without `=` has an empty value.
fn parse_urlencoded(bytes: &[u8], out: &mut Builder) -> Result<(), FormError> {
    for pair in bytes.split(|&c| c == b'&') {
        let (raw_name, raw_value) = match pair.iter().position(|&c| c == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        if raw_name.is_empty() {
            continue;
        }
        out.count()?;
        // A percent-encoded byte takes three bytes: a name this long
        // cannot decode to an acceptable one.
        if raw_name.len() > 3 * FIELD_NAME_BYTES_MAX {
            return Err(FormError::TooMany {
                what: "bytes in a field name",
                max: FIELD_NAME_BYTES_MAX,
            });
        }
        let name = field_name(percent_decode(raw_name, true))?;
        let value = field_value(&name, percent_decode(raw_value, true))?;
        out.insert(name, value);
    }
    Ok(())
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn percent_decode(bytes: &[u8], plus_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'%' {
            if let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex_digit),
                bytes.get(i + 2).copied().and_then(hex_digit),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(if c == b'+' && plus_is_space { b' ' } else { c });
        i += 1;
    }
    out
}

/// Header parameters (`; key=value; key="quoted"`), keys as written.
type HeaderParams = Vec<(Vec<u8>, Vec<u8>)>;

/// `type/subtype; key=value...` into the media type and its parameters.
fn split_media_type(value: &[u8]) -> Result<(&[u8], HeaderParams), FormError> {
    let end = value.iter().position(|&c| c == b';').unwrap_or(value.len());
    let params = header_params(&value[end..])?;
    Ok((value[..end].trim_ascii(), params))
}

/// Parses `; key=value; key="quoted \"value\""; flag` (RFC 9110
/// parameters, as Content-Type and Content-Disposition write them).
fn header_params(mut s: &[u8]) -> Result<HeaderParams, FormError> {
    let mut out = Vec::new();
    loop {
        s = s.trim_ascii_start();
        match s.first() {
            None => return Ok(out),
            Some(b';') => {
                s = &s[1..];
                continue;
            }
            Some(_) => {}
        }
        let key_end = s
            .iter()
            .position(|&c| c == b'=' || c == b';')
            .unwrap_or(s.len());
        let key = s[..key_end].trim_ascii().to_vec();
        s = &s[key_end..];
        let mut value = Vec::new();
        if s.first() == Some(&b'=') {
            s = s[1..].trim_ascii_start();
            if s.first() == Some(&b'"') {
                let mut i = 1;
                let mut closed = false;
                while i < s.len() {
                    match s[i] {
                        b'"' => {
                            closed = true;
                            i += 1;
                            break;
                        }
                        b'\\' if i + 1 < s.len() => {
                            value.push(s[i + 1]);
                            i += 2;
                        }
                        c => {
                            value.push(c);
                            i += 1;
                        }
                    }
                }
                if !closed {
                    return Err(FormError::Malformed(format!(
                        "header parameter {} has an unterminated quoted value",
                        shown(&String::from_utf8_lossy(&key))
                    )));
                }
                s = &s[i..];
            } else {
                let end = s.iter().position(|&c| c == b';').unwrap_or(s.len());
                value = s[..end].trim_ascii().to_vec();
                s = &s[end..];
            }
        }
        if !key.is_empty() {
            out.push((key, value));
        }
    }
}

/// Finds a needle in linear time whatever the input (Knuth-Morris-Pratt),
/// so that a body full of near-boundaries costs no more than any other.
struct Finder<'a> {
    needle: &'a [u8],
    fail: Vec<usize>,
}

impl<'a> Finder<'a> {
    fn new(needle: &'a [u8]) -> Finder<'a> {
        let mut fail = vec![0; needle.len()];
        let mut k = 0;
        for i in 1..needle.len() {
            while k > 0 && needle[i] != needle[k] {
                k = fail[k - 1];
            }
            if needle[i] == needle[k] {
                k += 1;
            }
            fail[i] = k;
        }
        Finder { needle, fail }
    }

    /// Where the needle next starts in `hay`, from `from` on.
    fn find(&self, hay: &[u8], from: usize) -> Option<usize> {
        let n = self.needle.len();
        if n == 0 {
            return None;
        }
        let first = self.needle[0];
        let mut k = 0;
        let mut i = from;
        while i < hay.len() {
            if k == 0 {
                // Skip quickly to the next possible start.
                i += hay.get(i..)?.iter().position(|&c| c == first)?;
            }
            let c = hay[i];
            while k > 0 && c != self.needle[k] {
                k = self.fail[k - 1];
            }
            if c == self.needle[k] {
                k += 1;
            }
            i += 1;
            if k == n {
                return Some(i - n);
            }
        }
        None
    }
}

/// `multipart/form-data` (RFC 7578): parts between `--BOUNDARY` lines, the
/// last followed by `--`. Lines end in CRLF (a bare LF is tolerated).
fn parse_multipart(boundary: &[u8], body: &[u8], out: &mut Builder) -> Result<(), FormError> {
    if boundary.is_empty() {
        return Err(FormError::Malformed(
            "multipart/form-data without a boundary".to_string(),
        ));
    }
    if boundary.len() > BOUNDARY_BYTES_MAX || boundary.iter().any(|&c| c == b'\r' || c == b'\n') {
        return Err(FormError::Malformed(format!(
            "bad multipart boundary (at most {BOUNDARY_BYTES_MAX} bytes, one line)"
        )));
    }
    if body.trim_ascii().is_empty() {
        // No parts at all (some clients send nothing for an empty form).
        return Ok(());
    }
    let mut needle = Vec::with_capacity(boundary.len() + 3);
    needle.extend_from_slice(b"\n--");
    needle.extend_from_slice(boundary);
    let finder = Finder::new(&needle);

    // The first delimiter may open the body, without a line break before.
    let mut after = if body.starts_with(&needle[1..]) {
        needle.len() - 1
    } else {
        match finder.find(body, 0) {
            Some(at) => at + needle.len(),
            None => {
                return Err(FormError::Malformed(
                    "the multipart body has no boundary line".to_string(),
                ))
            }
        }
    };
    let mut parts = 0usize;
    loop {
        // `after` is just past a `--BOUNDARY`.
        let rest = &body[after..];
        if rest.starts_with(b"--") {
            return Ok(()); // the closing delimiter; the epilogue is ignored
        }
        let pad = rest
            .iter()
            .position(|&c| c != b' ' && c != b'\t')
            .unwrap_or(rest.len());
        let start = after
            + pad
            + if rest[pad..].starts_with(b"\r\n") {
                2
            } else if rest[pad..].starts_with(b"\n") {
                1
            } else if rest[pad..].is_empty() {
                return Err(FormError::Malformed(
                    "the multipart body ends without its closing boundary".to_string(),
                ));
            } else {
                return Err(FormError::Malformed(
                    "a multipart boundary line has more text after the boundary".to_string(),
                ));
            };
        parts += 1;
        if parts > PARTS_MAX {
            return Err(FormError::TooMany {
                what: "multipart parts",
                max: PARTS_MAX,
            });
        }
        let Some(at) = finder.find(body, start) else {
            return Err(FormError::Malformed(
                "the multipart body ends without its closing boundary".to_string(),
            ));
        };
        // The line break before the delimiter belongs to it.
        let end = if at > start && body[at - 1] == b'\r' {
            at - 1
        } else {
            at
        };
        parse_part(&body[start..end.max(start)], out)?;
        after = at + needle.len();
    }
}

/// One part: header lines, an empty line, the content.
fn parse_part(part: &[u8], out: &mut Builder) -> Result<(), FormError> {
    let mut headers: Vec<(&[u8], Vec<u8>)> = Vec::new();
    let mut pos = 0;
    let content_start = loop {
        if pos > PART_HEADER_BYTES_MAX {
            return Err(FormError::TooMany {
                what: "bytes in a part's headers",
                max: PART_HEADER_BYTES_MAX,
            });
        }
        // Look no further than the limit allows (a part may be large).
        let window = &part[pos..part.len().min(PART_HEADER_BYTES_MAX + 2)];
        let Some(nl) = window.iter().position(|&c| c == b'\n') else {
            if part.len() > PART_HEADER_BYTES_MAX + 2 {
                return Err(FormError::TooMany {
                    what: "bytes in a part's headers",
                    max: PART_HEADER_BYTES_MAX,
                });
            }
            return Err(FormError::Malformed(
                "a multipart part's headers do not end with an empty line".to_string(),
            ));
        };
        let line_end = pos + nl;
        let mut line = &part[pos..line_end];
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        let next = line_end + 1;
        if line_end > PART_HEADER_BYTES_MAX {
            return Err(FormError::TooMany {
                what: "bytes in a part's headers",
                max: PART_HEADER_BYTES_MAX,
            });
        }
        pos = next;
        if line.is_empty() {
            break next;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            // An obsolete folded line continues the previous header.
            match headers.last_mut() {
                Some((_, v)) => {
                    v.push(b' ');
                    v.extend_from_slice(line.trim_ascii());
                }
                None => {
                    return Err(FormError::Malformed(
                        "a multipart part's headers start with a continuation line".to_string(),
                    ))
                }
            }
            continue;
        }
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            return Err(FormError::Malformed(
                "a multipart part has a header line without a colon".to_string(),
            ));
        };
        headers.push((
            line[..colon].trim_ascii(),
            line[colon + 1..].trim_ascii().to_vec(),
        ));
    };
    let content = &part[content_start..];

    let Some((_, disposition)) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"content-disposition"))
    else {
        return Err(FormError::Malformed(
            "a multipart part has no Content-Disposition header".to_string(),
        ));
    };
    let (_kind, params) = split_media_type(disposition)?;
    let param = |key: &[u8]| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_slice())
    };
    // `filename*=UTF-8''%E2%9C%93.torrent` (RFC 5987) before `filename`.
    let filename = match param(b"filename*") {
        Some(ext) => Some(match ext.windows(2).position(|w| w == b"''") {
            Some(i) => percent_decode(&ext[i + 2..], false),
            None => ext.to_vec(),
        }),
        None => param(b"filename").map(<[u8]>::to_vec),
    };
    let name = match param(b"name") {
        Some(n) => Some(field_name(n.to_vec())?),
        None => None,
    };
    match (filename, name) {
        (Some(filename), name) => {
            out.params.files.push(Upload {
                field: name.unwrap_or_default(),
                filename: String::from_utf8_lossy(&filename).into_owned(),
                bytes: content.to_vec(),
            });
        }
        (None, Some(name)) => {
            out.count()?;
            let value = field_value(&name, content.to_vec())?;
            out.insert(name, value);
        }
        (None, None) => {
            return Err(FormError::Malformed(
                "a multipart part has neither a name nor a file name".to_string(),
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const URLENCODED: &str = "application/x-www-form-urlencoded";

    fn form(body: &str) -> Result<Params, FormError> {
        Params::parse(None, Some(URLENCODED), body.as_bytes())
    }

    fn multipart_ct(boundary: &str) -> String {
        format!("multipart/form-data; boundary={boundary}")
    }

    /// A multipart body as clients write it: `(name, filename, content)`.
    fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        for (name, filename, content) in parts {
            b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match filename {
                Some(f) => b.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                         Content-Type: application/x-bittorrent\r\n"
                    )
                    .as_bytes(),
                ),
                None => b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n").as_bytes(),
                ),
            }
            b.extend_from_slice(b"\r\n");
            b.extend_from_slice(content);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        b
    }

    #[test]
    fn query_only() {
        let p = Params::parse(Some("filter=seeding&category=tv&limit=10"), None, b"").unwrap();
        assert_eq!(p.get("filter"), Some("seeding"));
        assert_eq!(p.get("category"), Some("tv"));
        assert_eq!(p.num::<u32>("limit").unwrap(), Some(10));
        assert_eq!(p.get("nothing"), None);
        assert!(p.files.is_empty());
    }

    #[test]
    fn empty_inputs() {
        let p = Params::parse(None, None, b"").unwrap();
        assert_eq!(p, Params::default());
        let p = Params::parse(Some(""), Some(URLENCODED), b"").unwrap();
        assert_eq!(p, Params::default());
        let p = Params::parse(Some("&&&"), Some(URLENCODED), b"&=&=x&").unwrap();
        assert_eq!(p, Params::default());
    }

    #[test]
    fn percent_and_plus_decoding() {
        let p =
            form("savepath=%2Fdata%2FTV+Shows&name=a%2Bb&utf=%C3%A9t%C3%A9&raw=%zz%4&pct=100%25")
                .unwrap();
        assert_eq!(p.get("savepath"), Some("/data/TV Shows"));
        assert_eq!(p.get("name"), Some("a+b"));
        assert_eq!(p.get("utf"), Some("été"));
        // A `%` without two hex digits stays as it is (as Qt and browsers).
        assert_eq!(p.get("raw"), Some("%zz%4"));
        assert_eq!(p.get("pct"), Some("100%"));
        // Names are decoded too.
        let p = form("save%70ath=x&a+b=1").unwrap();
        assert_eq!(p.get("savepath"), Some("x"));
        assert_eq!(p.get("a b"), Some("1"));
        // Query strings decode `+` as a space as well (qBittorrent does).
        let p = Params::parse(Some("category=TV+Shows&tag=a%20b"), None, b"").unwrap();
        assert_eq!(p.get("category"), Some("TV Shows"));
        assert_eq!(p.get("tag"), Some("a b"));
    }

    #[test]
    fn names_without_values_and_values_without_names() {
        let p = form("flag&x=1&=orphan&y=").unwrap();
        assert_eq!(p.get("flag"), Some(""));
        assert_eq!(p.get("x"), Some("1"));
        assert_eq!(p.get("y"), Some(""));
        assert_eq!(p.get(""), None);
        // `=` inside a value is kept.
        let p = form("urls=magnet%3A%3Fxt%3Durn&b=c=d").unwrap();
        assert_eq!(p.get("urls"), Some("magnet:?xt=urn"));
        assert_eq!(p.get("b"), Some("c=d"));
    }

    #[test]
    fn body_wins_over_query_and_last_wins_within_one() {
        let p = Params::parse(
            Some("hash=fromquery&only=q&dup=1&dup=2"),
            Some(URLENCODED),
            b"hash=frombody&dup2=a&dup2=b",
        )
        .unwrap();
        assert_eq!(p.get("hash"), Some("frombody"));
        assert_eq!(p.get("only"), Some("q"));
        assert_eq!(p.get("dup"), Some("2"));
        assert_eq!(p.get("dup2"), Some("b"));
        // Multipart fields override the query too.
        let body = multipart("b0", &[("category", None, b"body")]);
        let p = Params::parse(Some("category=query"), Some(&multipart_ct("b0")), &body).unwrap();
        assert_eq!(p.get("category"), Some("body"));
    }

    #[test]
    fn body_of_other_or_no_type_is_ignored() {
        for ct in [None, Some("text/plain"), Some("application/json"), Some("")] {
            let p = Params::parse(Some("a=1"), ct, b"b=2").unwrap();
            assert_eq!(p.get("a"), Some("1"), "{ct:?}");
            assert_eq!(p.get("b"), None, "{ct:?}");
        }
        // The media type is case-insensitive and may carry a charset.
        for ct in [
            "Application/X-WWW-Form-Urlencoded",
            "application/x-www-form-urlencoded; charset=UTF-8",
            " application/x-www-form-urlencoded ;charset=utf-8",
        ] {
            let p = Params::parse(None, Some(ct), b"b=2").unwrap();
            assert_eq!(p.get("b"), Some("2"), "{ct}");
        }
    }

    #[test]
    fn sonarr_add_by_url() {
        // Sonarr/Radarr: torrents/add with `urls` (a magnet or a URL) and options.
        let body = "urls=magnet%3A%3Fxt%3Durn%3Abtih%3A0123456789abcdef0123456789abcdef01234567%26dn%3DShow\
                    &category=tv-sonarr&paused=false&savepath=%2Fdata%2Ftv&sequentialDownload=true\
                    &firstLastPiecePrio=false";
        let p = form(body).unwrap();
        assert_eq!(
            p.list("urls", '\n'),
            vec!["magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=Show"]
        );
        assert_eq!(p.get("category"), Some("tv-sonarr"));
        assert_eq!(p.bool("paused").unwrap(), Some(false));
        assert_eq!(p.bool("sequentialDownload").unwrap(), Some(true));
        assert_eq!(p.get("savepath"), Some("/data/tv"));
        // Several URLs, one a line (CRLF from some clients), blank lines dropped.
        let p = form("urls=http%3A%2F%2Fa%2F1.torrent%0D%0A%0D%0Amagnet%3A%3Fxt%3Dx%0A").unwrap();
        assert_eq!(
            p.list("urls", '\n'),
            vec!["http://a/1.torrent", "magnet:?xt=x"]
        );
    }

    #[test]
    fn lists() {
        let p = form("hashes=aaa%7Cbbb|ccc||%20ddd%20&tags=a,b,%20c%20,,&none=&all=all").unwrap();
        assert_eq!(p.list("hashes", '|'), vec!["aaa", "bbb", "ccc", "ddd"]);
        assert_eq!(p.list("tags", ','), vec!["a", "b", "c"]);
        assert!(p.list("none", ',').is_empty());
        assert!(p.list("absent", ',').is_empty());
        assert_eq!(p.list("all", '|'), vec!["all"]);
    }

    #[test]
    fn booleans_in_any_case() {
        let p = form("a=true&b=True&c=TRUE&d=false&e=False&f=FALSE&g=%20true%20&h=").unwrap();
        for n in ["a", "b", "c", "g"] {
            assert_eq!(p.bool(n).unwrap(), Some(true), "{n}");
        }
        for n in ["d", "e", "f"] {
            assert_eq!(p.bool(n).unwrap(), Some(false), "{n}");
        }
        assert_eq!(p.bool("h").unwrap(), None);
        assert_eq!(p.bool("absent").unwrap(), None);
        for bad in ["1", "0", "yes", "on", "truee", "t"] {
            let p = form(&format!("paused={bad}")).unwrap();
            match p.bool("paused") {
                Err(FormError::Invalid { name, why }) => {
                    assert_eq!(name, "paused");
                    assert!(why.contains(bad), "{why}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn numbers() {
        let p =
            form("limit=10&neg=-1&ratio=1.5&sp=%2010%20&empty=&bad=ten&huge=99999999999999999999")
                .unwrap();
        assert_eq!(p.num::<u32>("limit").unwrap(), Some(10));
        assert_eq!(p.num::<i64>("neg").unwrap(), Some(-1));
        assert_eq!(p.num::<f64>("ratio").unwrap(), Some(1.5));
        assert_eq!(p.num::<u64>("sp").unwrap(), Some(10));
        assert_eq!(p.num::<u64>("empty").unwrap(), None);
        assert_eq!(p.num::<u64>("absent").unwrap(), None);
        let err = p.num::<u64>("bad").unwrap_err();
        assert!(
            matches!(&err, FormError::Invalid { name, .. } if name == "bad"),
            "{err:?}"
        );
        assert!(err.to_string().contains("\"bad\""), "{err}");
        assert!(p.num::<u64>("huge").is_err());
        assert!(p.num::<u32>("neg").is_err());
        // An error never echoes a long value whole.
        let long = "9".repeat(10_000) + "x";
        let p = form(&format!("n={long}")).unwrap();
        assert!(p.num::<u64>("n").unwrap_err().to_string().len() < 200);
    }

    #[test]
    fn require() {
        let p = form("hashes=abc").unwrap();
        assert_eq!(p.require("hashes").unwrap(), "abc");
        let err = p.require("urls").unwrap_err();
        assert_eq!(err, FormError::Missing("urls".to_string()));
        assert_eq!(err.to_string(), "missing parameter \"urls\"");
    }

    #[test]
    fn unknown_parameters_are_kept_and_harmless() {
        let p =
            form("hashes=abc&foo=bar&rename=x&root_folder=true&contentLayout=Original").unwrap();
        assert_eq!(p.get("hashes"), Some("abc"));
        assert_eq!(p.get("foo"), Some("bar"));
    }

    #[test]
    fn invalid_utf8_names_the_field() {
        let err = form("name=%FF%FE").unwrap_err();
        assert_eq!(
            err,
            FormError::Invalid {
                name: "name".to_string(),
                why: "the value is not valid UTF-8".to_string()
            }
        );
        let err = Params::parse(Some("category=%C3"), None, b"").unwrap_err();
        assert!(matches!(err, FormError::Invalid { ref name, .. } if name == "category"));
        // A name that is not UTF-8: malformed.
        let err = form("%FF=1").unwrap_err();
        assert!(matches!(err, FormError::Malformed(_)), "{err:?}");
        // Raw (not percent-encoded) bytes in a body are checked as well.
        let err = Params::parse(None, Some(URLENCODED), b"tags=\xff").unwrap_err();
        assert!(matches!(err, FormError::Invalid { ref name, .. } if name == "tags"));
    }

    #[test]
    fn field_limits() {
        // Exactly FIELDS_MAX fields, query and body together: fine.
        let query: Vec<String> = (0..FIELDS_MAX / 2).map(|i| format!("q{i}=1")).collect();
        let body: Vec<String> = (0..FIELDS_MAX - FIELDS_MAX / 2)
            .map(|i| format!("b{i}=1"))
            .collect();
        let p = Params::parse(
            Some(&query.join("&")),
            Some(URLENCODED),
            body.join("&").as_bytes(),
        )
        .unwrap();
        assert_eq!(p.get("q0"), Some("1"));
        assert_eq!(
            p.get(&format!("b{}", FIELDS_MAX - FIELDS_MAX / 2 - 1)),
            Some("1")
        );
        // One more: refused. Repeated names count too.
        let err = Params::parse(
            Some(&query.join("&")),
            Some(URLENCODED),
            format!("{}&x=1", body.join("&")).as_bytes(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            FormError::TooMany {
                what: "fields",
                max: FIELDS_MAX
            }
        );
        let many = vec!["a=1"; FIELDS_MAX + 1].join("&");
        assert!(matches!(
            form(&many),
            Err(FormError::TooMany { what: "fields", .. })
        ));
        assert_eq!(
            form(&many).unwrap_err().to_string(),
            format!("too many fields (at most {FIELDS_MAX})")
        );
        // Names up to the limit.
        let name = "n".repeat(FIELD_NAME_BYTES_MAX);
        assert_eq!(form(&format!("{name}=v")).unwrap().get(&name), Some("v"));
        let name = "n".repeat(FIELD_NAME_BYTES_MAX + 1);
        assert!(matches!(
            form(&format!("{name}=v")),
            Err(FormError::TooMany { .. })
        ));
        // Encoded, the limit is on the decoded name.
        let name = "%6E".repeat(FIELD_NAME_BYTES_MAX);
        assert!(form(&format!("{name}=v")).is_ok());
        let name = "%6E".repeat(FIELD_NAME_BYTES_MAX + 1);
        assert!(form(&format!("{name}=v")).is_err());
        // A huge name without `=` is bounded too.
        let name = "n".repeat(1 << 20);
        assert!(matches!(form(&name), Err(FormError::TooMany { .. })));
    }

    #[test]
    fn qbittorrent_api_multipart_upload() {
        // qbittorrent-api (requests): every file in field `torrents`, the
        // options as plain fields, booleans as `True`/`False`.
        let boundary = "9f0e4e7c4b6f4f0c8d2c1b0a99887766";
        let torrent1: &[u8] = b"d8:announce0:4:infod4:name1:a6:lengthi1eee";
        let torrent2: &[u8] = b"d4:infod4:name1:b\r\n\r\n--not-the-boundary\r\ne";
        let body = multipart(
            boundary,
            &[
                ("torrents", Some("a.torrent"), torrent1),
                ("torrents", Some("b.torrent"), torrent2),
                ("savepath", None, b"/data/seed"),
                ("category", None, b"movies"),
                ("tags", None, b"x,y"),
                ("paused", None, b"True"),
                ("skip_checking", None, b"False"),
            ],
        );
        let p = Params::parse(None, Some(&multipart_ct(boundary)), &body).unwrap();
        assert_eq!(p.files.len(), 2);
        assert_eq!(
            p.files[0],
            Upload {
                field: "torrents".to_string(),
                filename: "a.torrent".to_string(),
                bytes: torrent1.to_vec(),
            }
        );
        assert_eq!(p.files[1].filename, "b.torrent");
        assert_eq!(p.files[1].bytes, torrent2);
        assert_eq!(p.get("savepath"), Some("/data/seed"));
        assert_eq!(p.get("category"), Some("movies"));
        assert_eq!(p.list("tags", ','), vec!["x", "y"]);
        assert_eq!(p.bool("paused").unwrap(), Some(true));
        assert_eq!(p.bool("skip_checking").unwrap(), Some(false));
        // Uploads are not fields.
        assert_eq!(p.get("torrents"), None);
    }

    #[test]
    fn any_field_name_with_a_filename_is_an_upload() {
        let body = multipart(
            "XyZ",
            &[
                ("fileselect[]", Some("one.torrent"), b"1"),
                ("file", Some("two.torrent"), b"2"),
                ("urls", None, b"magnet:?xt=x"),
            ],
        );
        let p = Params::parse(None, Some(&multipart_ct("XyZ")), &body).unwrap();
        let names: Vec<_> = p
            .files
            .iter()
            .map(|f| (f.field.as_str(), f.filename.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![("fileselect[]", "one.torrent"), ("file", "two.torrent")]
        );
        assert_eq!(p.get("urls"), Some("magnet:?xt=x"));
        // A filename without a name, an empty filename, `filename*`.
        let body = b"--b\r\n\
            Content-Disposition: form-data; filename=\"noname.torrent\"\r\n\r\nA\r\n\
            --b\r\n\
            Content-Disposition: form-data; name=\"f\"; filename=\"\"\r\n\r\n\r\n\
            --b\r\n\
            content-disposition: FORM-DATA; NAME=f2; filename*=UTF-8''%E2%9C%93%20x.torrent; filename=\"fallback\"\r\n\r\nC\r\n\
            --b--";
        let p = Params::parse(None, Some("multipart/form-data; boundary=b"), body).unwrap();
        assert_eq!(p.files.len(), 3);
        assert_eq!(
            (p.files[0].field.as_str(), p.files[0].filename.as_str()),
            ("", "noname.torrent")
        );
        assert_eq!(p.files[0].bytes, b"A");
        assert_eq!(
            (p.files[1].field.as_str(), p.files[1].filename.as_str()),
            ("f", "")
        );
        assert!(p.files[1].bytes.is_empty());
        assert_eq!(
            (p.files[2].field.as_str(), p.files[2].filename.as_str()),
            ("f2", "✓ x.torrent")
        );
        assert_eq!(p.files[2].bytes, b"C");
    }

    #[test]
    fn boundary_forms() {
        let body = multipart("a b;c\"d", &[("x", None, b"1")]);
        // Quoted boundary with a space, a `;` and an escaped quote.
        let p = Params::parse(
            None,
            Some("multipart/form-data; boundary=\"a b;c\\\"d\"; charset=utf-8"),
            &body,
        )
        .unwrap();
        assert_eq!(p.get("x"), Some("1"));
        // Unquoted, other parameters first, any case.
        let body = multipart(
            "----WebKitFormBoundary7MA4YWxkTrZu0gW",
            &[("x", None, b"2")],
        );
        let p = Params::parse(
            None,
            Some(
                "Multipart/Form-Data;charset=UTF-8;BOUNDARY=----WebKitFormBoundary7MA4YWxkTrZu0gW",
            ),
            &body,
        )
        .unwrap();
        assert_eq!(p.get("x"), Some("2"));
    }

    #[test]
    fn multipart_framing_details() {
        // Preamble and epilogue are ignored, transport padding after the
        // boundary is allowed, bare LF line ends are tolerated, a field's
        // content keeps its inner line breaks.
        let body = b"this is a preamble\r\n--q \t\r\n\
            Content-Disposition: form-data; name=\"a\"\r\n\r\nline1\r\nline2\r\n\
            --q\n\
            Content-Disposition: form-data; name=\"b\"\n\nlf\n\
            --q\r\n\
            Content-Disposition: form-data;\r\n name=\"folded\"\r\n\r\n\r\n\
            --q--\r\nepilogue --q\r\ngarbage";
        let p = Params::parse(None, Some("multipart/form-data; boundary=q"), body).unwrap();
        assert_eq!(p.get("a"), Some("line1\r\nline2"));
        assert_eq!(p.get("b"), Some("lf"));
        assert_eq!(p.get("folded"), Some(""));
        // Closing boundary without a final line break.
        let body = b"--q\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--q--";
        let p = Params::parse(None, Some("multipart/form-data; boundary=q"), body).unwrap();
        assert_eq!(p.get("a"), Some("v"));
        // Only a closing boundary: no parts.
        let p = Params::parse(None, Some("multipart/form-data; boundary=q"), b"--q--\r\n").unwrap();
        assert_eq!(p, Params::default());
        // Binary content with CR, LF and near-boundaries survives.
        let bin: Vec<u8> = (0..=255u8)
            .chain(b"\r\n--Q\r\n-q\r\nx--q--\r\n--".iter().copied())
            .collect();
        let body = multipart("q", &[("t", Some("bin.torrent"), &bin)]);
        let p = Params::parse(None, Some(&multipart_ct("q")), &body).unwrap();
        assert_eq!(p.files[0].bytes, bin);
    }

    fn malformed(ct: &str, body: &[u8]) -> String {
        match Params::parse(None, Some(ct), body) {
            Err(e @ FormError::Malformed(_)) => e.to_string(),
            other => panic!("{body:?}: expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn malformed_multipart_bodies() {
        let ct = "multipart/form-data; boundary=q";
        let part = b"--q\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n";
        // No closing boundary.
        let why = malformed(ct, part);
        assert!(why.contains("closing boundary"), "{why}");
        assert!(malformed(ct, b"--q\r\n").contains("closing boundary"));
        assert!(malformed(ct, b"--q").contains("closing boundary"));
        assert!(malformed(
            ct,
            b"--q\r\nContent-Disposition: form-data; name=a\r\n\r\nvalue"
        )
        .contains("closing"));
        // No boundary at all (an empty body is an empty form).
        assert_eq!(Params::parse(None, Some(ct), b""), Ok(Params::default()));
        assert_eq!(
            Params::parse(None, Some(ct), b"\r\n"),
            Ok(Params::default())
        );
        assert!(malformed(ct, b"x").contains("no boundary line"));
        assert!(malformed(ct, b"a=1&b=2").contains("no boundary line"));
        // No or a bad boundary parameter.
        assert!(malformed("multipart/form-data", part).contains("without a boundary"));
        assert!(malformed("multipart/form-data; boundary=", part).contains("without a boundary"));
        assert!(
            malformed("multipart/form-data; boundary=\"\"", part).contains("without a boundary")
        );
        assert!(malformed("multipart/form-data; boundary=\"q", part).contains("unterminated"));
        let long = format!(
            "multipart/form-data; boundary={}",
            "b".repeat(BOUNDARY_BYTES_MAX + 1)
        );
        assert!(malformed(&long, part).contains("boundary"));
        // Text after the boundary on its line.
        assert!(malformed(ct, b"--qx\r\n\r\n--q--").contains("more text"));
        // Headers without an empty line, without a colon, without a
        // disposition, without a name.
        assert!(malformed(
            ct,
            b"--q\r\nContent-Disposition: form-data; name=a\r\n--q--"
        )
        .contains("empty line"));
        assert!(malformed(ct, b"--q\r\nnot a header\r\n\r\nv\r\n--q--").contains("colon"));
        assert!(
            malformed(ct, b"--q\r\nContent-Type: text/plain\r\n\r\nv\r\n--q--")
                .contains("Content-Disposition")
        );
        assert!(malformed(
            ct,
            b"--q\r\nContent-Disposition: form-data\r\n\r\nv\r\n--q--"
        )
        .contains("neither a name"));
        assert!(malformed(ct, b"--q\r\n\r\nv\r\n--q--").contains("Content-Disposition"));
        assert!(malformed(ct, b"--q\r\n fold\r\n\r\nv\r\n--q--").contains("continuation"));
        assert!(malformed(
            ct,
            b"--q\r\nContent-Disposition: form-data; name=\"a\r\n\r\nv\r\n--q--"
        )
        .contains("unterminated"));
        // An empty part.
        assert!(malformed(ct, b"--q\r\n\r\n--q--").contains("empty line"));
        // A field name that is not UTF-8.
        assert!(malformed(
            ct,
            b"--q\r\nContent-Disposition: form-data; name=\"\xff\"\r\n\r\nv\r\n--q--"
        )
        .contains("UTF-8"));
    }

    #[test]
    fn multipart_value_utf8() {
        let body = multipart("q", &[("category", None, b"\xff\xfe")]);
        let err = Params::parse(None, Some(&multipart_ct("q")), &body).unwrap_err();
        assert!(
            matches!(err, FormError::Invalid { ref name, .. } if name == "category"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "parameter \"category\": the value is not valid UTF-8"
        );
        // A file name that is not UTF-8 is shown lossily (it is only a label).
        let body = multipart("q", &[("torrents", Some("\u{e9}"), b"x")]);
        let mut latin1 = body.clone();
        let at = latin1
            .windows(2)
            .position(|w| w == "\u{e9}".as_bytes())
            .unwrap();
        latin1.splice(at..at + 2, [0xe9]);
        let p = Params::parse(None, Some(&multipart_ct("q")), &latin1).unwrap();
        assert_eq!(p.files[0].filename, "\u{fffd}");
    }

    #[test]
    fn multipart_limits() {
        let ct = multipart_ct("q");
        // PARTS_MAX uploads: fine; one more: refused.
        let files: Vec<(&str, Option<&str>, &[u8])> =
            vec![("torrents", Some("t.torrent"), b"d4:infodee"); PARTS_MAX];
        let p = Params::parse(None, Some(&ct), &multipart("q", &files)).unwrap();
        assert_eq!(p.files.len(), PARTS_MAX);
        let files: Vec<(&str, Option<&str>, &[u8])> =
            vec![("torrents", Some("t.torrent"), b"d4:infodee"); PARTS_MAX + 1];
        let err = Params::parse(None, Some(&ct), &multipart("q", &files)).unwrap_err();
        assert_eq!(
            err,
            FormError::TooMany {
                what: "multipart parts",
                max: PARTS_MAX
            }
        );
        // Fields count against FIELDS_MAX together with the query's.
        let fields: Vec<(&str, Option<&str>, &[u8])> = vec![("f", None, b"v"); FIELDS_MAX];
        let body = multipart("q", &fields);
        assert!(Params::parse(None, Some(&ct), &body).is_ok());
        let err = Params::parse(Some("one=more"), Some(&ct), &body).unwrap_err();
        assert!(
            matches!(err, FormError::TooMany { what: "fields", .. }),
            "{err:?}"
        );
        // A long field name.
        let name = "n".repeat(FIELD_NAME_BYTES_MAX + 1);
        let body = multipart("q", &[(&name, None, b"v")]);
        assert!(matches!(
            Params::parse(None, Some(&ct), &body),
            Err(FormError::TooMany {
                what: "bytes in a field name",
                ..
            })
        ));
        // Part headers up to the limit and beyond.
        let pad = "x".repeat(PART_HEADER_BYTES_MAX);
        let body = format!(
            "--q\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Pad: {pad}\r\n\r\nv\r\n--q--"
        );
        assert!(matches!(
            Params::parse(None, Some(&ct), body.as_bytes()),
            Err(FormError::TooMany {
                what: "bytes in a part's headers",
                ..
            })
        ));
        let many_lines = "X-A: b\r\n".repeat(PART_HEADER_BYTES_MAX / 8 + 1);
        let body = format!(
            "--q\r\nContent-Disposition: form-data; name=\"a\"\r\n{many_lines}\r\nv\r\n--q--"
        );
        assert!(matches!(
            Params::parse(None, Some(&ct), body.as_bytes()),
            Err(FormError::TooMany {
                what: "bytes in a part's headers",
                ..
            })
        ));
        // A large part with no line break at all: refused without reading it all.
        let mut body = b"--q\r\n".to_vec();
        body.extend(std::iter::repeat_n(b'x', 1 << 20));
        body.extend_from_slice(b"\r\n--q--");
        assert!(matches!(
            Params::parse(None, Some(&ct), &body),
            Err(FormError::TooMany {
                what: "bytes in a part's headers",
                ..
            })
        ));
        let pad = "x".repeat(PART_HEADER_BYTES_MAX - 100);
        let body = format!(
            "--q\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Pad: {pad}\r\n\r\nv\r\n--q--"
        );
        assert_eq!(
            Params::parse(None, Some(&ct), body.as_bytes())
                .unwrap()
                .get("a"),
            Some("v")
        );
    }

    #[test]
    fn near_boundaries_take_linear_time() {
        // A body full of almost-delimiters: KMP keeps this linear.
        let boundary = "a".repeat(70);
        let near = format!("\r\n--{}", "a".repeat(69));
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n"
        )
        .into_bytes();
        while body.len() < 4 << 20 {
            body.extend_from_slice(near.as_bytes());
        }
        body.extend_from_slice(format!("\r\n--{boundary}--").as_bytes());
        let t = std::time::Instant::now();
        let p = Params::parse(None, Some(&multipart_ct(&boundary)), &body).unwrap();
        assert_eq!(p.files.len(), 1);
        // Generous, even for a debug build on a busy machine.
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn finder() {
        let f = Finder::new(b"\n--ab");
        assert_eq!(f.find(b"x\n--ab", 0), Some(1));
        assert_eq!(f.find(b"\n--a\n--ab", 0), Some(4));
        assert_eq!(f.find(b"\n--ab\n--ab", 1), Some(5));
        assert_eq!(f.find(b"\n--a", 0), None);
        assert_eq!(f.find(b"", 0), None);
        assert_eq!(f.find(b"\n--ab", 9), None);
        let f = Finder::new(b"aab");
        assert_eq!(f.find(b"aaab", 0), Some(1));
        assert_eq!(Finder::new(b"").find(b"abc", 0), None);
    }

    #[test]
    fn header_params_parsing() {
        let (t, p) =
            split_media_type(b"form-data; name=\"a;b\"; filename=x.torrent ;flag; =v").unwrap();
        assert_eq!(t, b"form-data");
        assert_eq!(
            p,
            vec![
                (b"name".to_vec(), b"a;b".to_vec()),
                (b"filename".to_vec(), b"x.torrent".to_vec()),
                (b"flag".to_vec(), Vec::new()),
            ]
        );
        let (_, p) =
            split_media_type(br#"form-data; filename="C:\\dir\\a \"b\".torrent""#).unwrap();
        assert_eq!(p[0].1, br#"C:\dir\a "b".torrent"#);
    }

    /// A small xorshift generator, so that the next test needs no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a>(&mut self, items: &[&'a [u8]]) -> &'a [u8] {
            items[(self.next() % items.len() as u64) as usize]
        }
    }

    #[test]
    fn no_panic_on_random_input() {
        // A poor fuzzer's pass in every `cargo test` (the real one is
        // fuzz/fuzz_targets/webapi_form.rs): pieces that matter glued at
        // random, then every accessor.
        let pieces: &[&[u8]] = &[
            b"--q",
            b"--q--",
            b"\r\n",
            b"\n",
            b"\r",
            b"Content-Disposition: form-data; ",
            b"name=\"a\"",
            b"name=a",
            b"filename=\"f\"",
            b"filename*=UTF-8''%FF",
            b";",
            b"\"",
            b"\\",
            b"=",
            b"&",
            b"%",
            b"%F",
            b"%FF",
            b"%41",
            b"+",
            b"true",
            b"1",
            b"a",
            b" ",
            b"\xff",
            b"\xc3",
            b":",
            b"--",
            b"q",
            b"X: y",
        ];
        let cts = [
            "multipart/form-data; boundary=q",
            "multipart/form-data; boundary=\"q\"",
            "multipart/form-data; boundary=",
            "multipart/form-data",
            URLENCODED,
            "text/plain",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let n = (rng.next() % 24) as usize;
            let mut body = Vec::new();
            for _ in 0..n {
                body.extend_from_slice(rng.pick(pieces));
            }
            let ct = cts[(rng.next() % cts.len() as u64) as usize];
            let q = String::from_utf8_lossy(rng.pick(pieces)).into_owned();
            if let Ok(p) = Params::parse(Some(&q), Some(ct), &body) {
                for name in ["a", "q", "f", "name"] {
                    let _ = p.get(name);
                    let _ = p.require(name);
                    let _ = p.bool(name);
                    let _ = p.num::<i64>(name);
                    let _ = p.num::<f64>(name);
                    let _ = p.list(name, '|');
                }
            }
        }
    }
}
