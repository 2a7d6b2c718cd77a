//! `http://` and `https://` URLs for the client: parsing into a [`Target`] (host, port,
//! request target) and resolving a redirect's `Location`. Pure: no sockets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::HttpError;
use crate::tracker::http::URL_BYTES_MAX;

/// Where an `http(s)://` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    /// As written in the URL (IPv6 without brackets).
    pub(super) host: String,
    /// Set when the host is an IP literal: no resolution.
    pub(super) ip: Option<IpAddr>,
    pub(super) port: u16,
    /// Path and query, starting with `/`; no fragment.
    pub(super) path: String,
    /// `https://`.
    pub(super) tls: bool,
}

impl Target {
    fn default_port(&self) -> u16 {
        if self.tls {
            443
        } else {
            80
        }
    }

    fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    pub(super) fn host_header(&self) -> String {
        let host = match self.ip {
            Some(IpAddr::V6(_)) => format!("[{}]", self.host),
            _ => self.host.clone(),
        };
        if self.port == self.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

fn bad_url(url: &str, reason: &'static str) -> HttpError {
    HttpError::BadUrl {
        url: url.to_string(),
        reason,
    }
}

/// Strip a scheme case-insensitively.
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

pub(super) fn parse_url(url: &str) -> Result<Target, HttpError> {
    if url.len() > URL_BYTES_MAX {
        return Err(HttpError::UrlTooLong {
            length: url.len(),
            limit: URL_BYTES_MAX,
        });
    }
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad_url(url, "space or control character"));
    }
    let (rest, tls) = match strip_prefix_ci(url, "https://") {
        Some(rest) => (rest, true),
        None => (
            strip_prefix_ci(url, "http://").ok_or_else(|| HttpError::UnsupportedScheme {
                url: url.to_string(),
            })?,
            false,
        ),
    };
    let rest = rest.split('#').next().unwrap_or("");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err(bad_url(url, "user information is not supported"));
    }
    let (host, ip, port_text) = if let Some(after) = authority.strip_prefix('[') {
        let close = after
            .find(']')
            .ok_or_else(|| bad_url(url, "unclosed '[' in host"))?;
        let (literal, tail) = after.split_at(close);
        let v6: Ipv6Addr = literal
            .parse()
            .map_err(|_| bad_url(url, "bad IPv6 literal"))?;
        let tail = tail.get(1..).unwrap_or("");
        let port_text = match tail.strip_prefix(':') {
            Some(p) => Some(p),
            None if tail.is_empty() => None,
            None => return Err(bad_url(url, "junk after IPv6 literal")),
        };
        (literal.to_string(), Some(IpAddr::V6(v6)), port_text)
    } else {
        let (host, port_text) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(bad_url(url, "no host"));
        }
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        {
            return Err(bad_url(url, "host has characters outside [A-Za-z0-9.-_]"));
        }
        let ip = host.parse::<Ipv4Addr>().ok().map(IpAddr::V4);
        (host.to_string(), ip, port_text)
    };
    let port = match port_text {
        None if tls => 443,
        None => 80,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad_url(url, "bad port"));
            }
            match p.parse::<u16>() {
                Ok(n) if n != 0 => n,
                _ => return Err(bad_url(url, "port out of range 1..65535")),
            }
        }
    };
    let mut request_target = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        request_target.push('/');
    }
    // The request line is ASCII: bytes beyond it are percent-encoded.
    for c in path.chars() {
        if c.is_ascii() {
            request_target.push(c);
        } else {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                request_target.push_str(&format!("%{b:02X}"));
            }
        }
    }
    Ok(Target {
        host,
        ip,
        port,
        path: request_target,
        tls,
    })
}

/// The next URL from a `Location`: an absolute `http://` URL, or an absolute
/// path on the same host.
pub(super) fn resolve_location(
    url: &str,
    target: &Target,
    status: u16,
    location: &str,
) -> Result<String, HttpError> {
    let bad = |reason| HttpError::BadRedirect {
        url: url.to_string(),
        status,
        location: location.to_string(),
        reason,
    };
    if strip_prefix_ci(location, "http://").is_some()
        || strip_prefix_ci(location, "https://").is_some()
    {
        return Ok(location.to_string());
    }
    if location.starts_with('/') && !location.starts_with("//") {
        let host = match target.ip {
            Some(IpAddr::V6(_)) => format!("[{}]", target.host),
            _ => target.host.clone(),
        };
        return Ok(format!(
            "{}://{host}:{}{location}",
            target.scheme(),
            target.port
        ));
    }
    Err(bad("only http(s):// URLs and absolute paths are followed"))
}
