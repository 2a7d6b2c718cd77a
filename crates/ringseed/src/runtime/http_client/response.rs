//! One request and its response on a connection: the request bytes, the
//! status line and headers (strict, bounded), and the body framed by
//! `Content-Length`, chunked transfer coding or end of stream.

use super::conn::{connect_any, excerpt, Conn, Deadline};
use super::url::Target;
use super::{
    Connector, HttpError, HttpLimits, HttpResponse, CHUNK_LINE_BYTES_MAX, CHUNK_SIZE_DIGITS_MAX,
    HEADER_LINES_MAX, USER_AGENT,
};

/// What one request ended in: a response to hand back, or a redirect to follow.
pub(super) enum Outcome {
    Final(HttpResponse),
    Redirect { status: u16, location: String },
}

/// The headers we act on.
#[derive(Default)]
struct Headers {
    content_length: Option<u64>,
    chunked: bool,
    location: Option<String>,
}

/// One connection, one `GET`, one response read within `limits`; redirects
/// (301, 302, 303, 307, 308) come back as [`Outcome::Redirect`] unread.
pub(super) fn get_once(
    url: &str,
    target: &Target,
    connect: &Connector<'_>,
    limits: &HttpLimits,
    deadline: &Deadline,
) -> Result<Outcome, HttpError> {
    let tcp = connect_any(url, target, connect, limits, deadline)?;
    let stream = if target.tls {
        super::tls::wrap(tcp, &target.host, target.ip).map_err(|why| HttpError::Tls {
            url: url.to_string(),
            why,
        })?
    } else {
        super::tls::Transport::Plain(tcp)
    };
    let mut conn = Conn {
        stream,
        url,
        io_timeout: limits.io_timeout,
        deadline,
        buf: Vec::new(),
        pos: 0,
        received: 0,
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\n\
         Accept-Encoding: identity\r\nConnection: close\r\n\r\n",
        target.path,
        target.host_header()
    );
    conn.write_all(request.as_bytes())?;

    let mut budget = limits.header_bytes_max;
    let header_too_large = || HttpError::HeaderTooLarge {
        url: url.to_string(),
        limit: limits.header_bytes_max,
    };
    let status_line = conn.line(&mut budget, "reading the status line", header_too_large)?;
    let status = parse_status_line(url, &status_line)?;
    let headers = read_headers(&mut conn, url, &mut budget, limits)?;

    if matches!(status, 301 | 302 | 303 | 307 | 308) {
        let location = headers.location.ok_or(HttpError::RedirectWithoutLocation {
            url: url.to_string(),
            status,
        })?;
        return Ok(Outcome::Redirect { status, location });
    }
    let body = if status == 204 || status == 304 {
        Vec::new()
    } else if headers.chunked {
        read_chunked(&mut conn, url, &mut budget, limits)?
    } else if let Some(length) = headers.content_length {
        let n = usize::try_from(length)
            .ok()
            .filter(|&n| n <= limits.body_bytes_max)
            .ok_or(HttpError::BodyTooLarge {
                url: url.to_string(),
                length,
                limit: limits.body_bytes_max,
            })?;
        let mut body = Vec::with_capacity(n);
        conn.exact(n, &mut body, "reading the body")?;
        body
    } else {
        read_to_eof(&mut conn, url, limits)?
    };
    Ok(Outcome::Final(HttpResponse { status, body }))
}

/// `HTTP/1.x NNN reason`.
pub(super) fn parse_status_line(url: &str, line: &[u8]) -> Result<u16, HttpError> {
    let bad = || HttpError::BadStatusLine {
        url: url.to_string(),
        line: excerpt(line),
    };
    let rest = line
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| line.strip_prefix(b"HTTP/1.0 "))
        .ok_or_else(bad)?;
    let code = rest.get(..3).ok_or_else(bad)?;
    if !code.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    match rest.get(3) {
        None | Some(b' ') => {}
        Some(_) => return Err(bad()),
    }
    let status = code
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    if !(100..=599).contains(&status) {
        return Err(bad());
    }
    if status < 200 {
        return Err(HttpError::InterimStatus {
            url: url.to_string(),
            status,
        });
    }
    Ok(status)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn read_headers(
    conn: &mut Conn<'_>,
    url: &str,
    budget: &mut usize,
    limits: &HttpLimits,
) -> Result<Headers, HttpError> {
    let mut headers = Headers::default();
    let header_too_large = || HttpError::HeaderTooLarge {
        url: url.to_string(),
        limit: limits.header_bytes_max,
    };
    for _ in 0..=HEADER_LINES_MAX {
        let line = conn.line(budget, "reading the headers", header_too_large)?;
        if line.is_empty() {
            return Ok(headers);
        }
        let bad = |reason| HttpError::BadHeader {
            url: url.to_string(),
            line: excerpt(&line),
            reason,
        };
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| bad("no colon"))?;
        let (name, value) = line.split_at(colon);
        if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
            return Err(bad("name is not a token (or the line is folded)"));
        }
        let value = value.get(1..).unwrap_or(&[]).trim_ascii();
        if value.iter().any(|&b| b < b' ' && b != b'\t' || b == 0x7f) {
            return Err(bad("control character in value"));
        }
        let value_text = String::from_utf8_lossy(value).into_owned();
        if name.eq_ignore_ascii_case(b"content-length") {
            let bad_length = || HttpError::BadContentLength {
                url: url.to_string(),
                value: excerpt(value),
            };
            if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
                return Err(bad_length());
            }
            let n: u64 = value_text.parse().map_err(|_| bad_length())?;
            if headers.content_length.is_some_and(|old| old != n) {
                return Err(bad_length());
            }
            headers.content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if value.eq_ignore_ascii_case(b"chunked") && !headers.chunked {
                headers.chunked = true;
            } else if !value.eq_ignore_ascii_case(b"identity") {
                return Err(HttpError::UnsupportedTransferEncoding {
                    url: url.to_string(),
                    value: excerpt(value),
                });
            }
        } else if name.eq_ignore_ascii_case(b"content-encoding") {
            if !value.eq_ignore_ascii_case(b"identity") {
                return Err(HttpError::UnsupportedContentEncoding {
                    url: url.to_string(),
                    value: excerpt(value),
                });
            }
        } else if name.eq_ignore_ascii_case(b"location") {
            headers.location = Some(value_text);
        }
    }
    Err(HttpError::TooManyHeaders {
        url: url.to_string(),
        limit: HEADER_LINES_MAX,
    })
}

fn read_chunked(
    conn: &mut Conn<'_>,
    url: &str,
    header_budget: &mut usize,
    limits: &HttpLimits,
) -> Result<Vec<u8>, HttpError> {
    let bad = |reason| HttpError::BadChunk {
        url: url.to_string(),
        reason,
    };
    let mut body = Vec::new();
    loop {
        let mut line_budget = CHUNK_LINE_BYTES_MAX;
        let line = conn.line(&mut line_budget, "reading a chunk size", || {
            bad("chunk-size line too long")
        })?;
        let size_part = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or(&[])
            .trim_ascii();
        if size_part.is_empty() || size_part.len() > CHUNK_SIZE_DIGITS_MAX {
            return Err(bad("chunk size is empty or has too many digits"));
        }
        let mut size: u64 = 0;
        for &b in size_part {
            let digit = char::from(b)
                .to_digit(16)
                .ok_or_else(|| bad("chunk size is not hexadecimal"))?;
            size = size
                .checked_mul(16)
                .and_then(|s| s.checked_add(u64::from(digit)))
                .ok_or_else(|| bad("chunk size overflows"))?;
        }
        if size == 0 {
            break;
        }
        let total = (body.len() as u64).saturating_add(size);
        let n = usize::try_from(size)
            .ok()
            .filter(|_| total <= limits.body_bytes_max as u64)
            .ok_or(HttpError::BodyTooLarge {
                url: url.to_string(),
                length: total,
                limit: limits.body_bytes_max,
            })?;
        conn.exact(n, &mut body, "reading a chunk")?;
        let mut crlf = Vec::with_capacity(2);
        conn.exact(2, &mut crlf, "reading a chunk's CRLF")?;
        if crlf != b"\r\n" {
            return Err(bad("chunk data not followed by CRLF"));
        }
    }
    // Trailers, counted against what is left of the header budget.
    let header_too_large = || HttpError::HeaderTooLarge {
        url: url.to_string(),
        limit: limits.header_bytes_max,
    };
    for _ in 0..=HEADER_LINES_MAX {
        let line = conn.line(header_budget, "reading the trailers", header_too_large)?;
        if line.is_empty() {
            return Ok(body);
        }
    }
    Err(HttpError::TooManyHeaders {
        url: url.to_string(),
        limit: HEADER_LINES_MAX,
    })
}

fn read_to_eof(conn: &mut Conn<'_>, url: &str, limits: &HttpLimits) -> Result<Vec<u8>, HttpError> {
    let mut body = conn.pending().to_vec();
    conn.pos = conn.buf.len();
    loop {
        if body.len() > limits.body_bytes_max {
            return Err(HttpError::BodyTooLarge {
                url: url.to_string(),
                length: body.len() as u64,
                limit: limits.body_bytes_max,
            });
        }
        if !conn.fill()? {
            return Ok(body);
        }
        body.extend_from_slice(conn.pending());
        conn.pos = conn.buf.len();
    }
}
