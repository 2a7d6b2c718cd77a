//! ringseed's Web API under hostile input, spoken to in raw HTTP/1.1 over
//! TCP (std sockets; socket2 only to pick each client's source address on
//! 127.0.117.0/24, since bans and limits are per address):
//!
//! - a body declared larger than 100 MiB is refused with 413 before it is
//!   sent, a chunked one that grows past the limit is cut off, and the
//!   daemon keeps answering;
//! - too many multipart parts, a missing closing boundary, invalid UTF-8,
//!   too many fields, a bad boolean: 400 with the reason;
//! - `..` in a save path, a category, a rename or a torrent's file names
//!   never gets anything written outside the download folder;
//! - 5 failed logins ban an address (qBittorrent's 403 and text), others
//!   still log in; thousands of failed logins keep the daemon's memory
//!   bounded;
//! - a client that sends its headers a byte a second is cut off after the
//!   header timeout while another is served; 300 idle connections do not
//!   keep a new client waiting.
//!
//! Each test starts its own daemon on its own address. Every wait is
//! bounded; the daemon is killed by pid when the test ends.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::daemon::{small_torrent, Dirs, RingDaemon, API_PASSWORD, API_USER};

/// Longest wait for any one answer.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// The server's body limit (src/daemon/webapi/mod.rs `BODY_BYTES_MAX`).
const BODY_BYTES_MAX: u64 = 100 * 1024 * 1024;
/// The form limits (src/daemon/webapi/form.rs).
const PARTS_MAX: usize = 1024;
const FIELDS_MAX: usize = 512;
/// qBittorrent's answer to a banned address.
const BANNED: &str =
    "Your IP address has been banned after too many failed authentication attempts.";

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 117, last)
}

/// The API's address from `http://IP:PORT`.
fn api_addr(d: &RingDaemon) -> SocketAddr {
    let url = d.api_url();
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("bad API URL {url:?}: {e}"))
}

/// A TCP connection from `from` (any port) to `to`, with I/O timeouts.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::from((from, 0)).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(10))?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn describe(&self) -> String {
        let mut t = self.text();
        if t.len() > 500 {
            t.truncate(500);
            t.push_str("...");
        }
        format!("{} {:?}", self.status, t)
    }
}

/// Reads one response: status line, headers, then a body of
/// `Content-Length` bytes, chunked, or up to the end of the connection.
fn read_response(s: &mut TcpStream) -> Result<Response, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return Err("response head longer than 64 KiB".into());
        }
        match s.read(&mut chunk) {
            Ok(0) => {
                return Err(format!(
                    "connection closed before a full response head ({} bytes: {:?})",
                    buf.len(),
                    String::from_utf8_lossy(&buf)
                ))
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("reading the response head: {e}")),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut read_more = |rest: &mut Vec<u8>| -> Result<bool, String> {
        match s.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                rest.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) => Err(format!("reading the response body: {e}")),
        }
    };
    let body = if let Some(len) = find("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad Content-Length {len:?}"))?;
        while rest.len() < len {
            if !read_more(&mut rest)? {
                return Err("connection closed inside the response body".into());
            }
        }
        rest.truncate(len);
        rest
    } else if find("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        let mut pos = 0;
        loop {
            let line_end = loop {
                if let Some(i) = rest[pos..].windows(2).position(|w| w == b"\r\n") {
                    break pos + i;
                }
                if !read_more(&mut rest)? {
                    return Err("connection closed inside a chunked body".into());
                }
            };
            let size_text = String::from_utf8_lossy(&rest[pos..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size {size_text:?}"))?;
            pos = line_end + 2;
            while rest.len() < pos + size + 2 {
                if !read_more(&mut rest)? {
                    return Err("connection closed inside a chunk".into());
                }
            }
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[pos..pos + size]);
            pos += size + 2;
        }
        body
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else {
        while read_more(&mut rest)? {}
        rest
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// One request on its own connection (`Connection: close`).
fn request(
    from: Ipv4Addr,
    to: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    let mut s = connect_from(from, to).map_err(|e| format!("connect {from} -> {to}: {e}"))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut all = head.into_bytes();
    all.extend_from_slice(body);
    s.write_all(&all)
        .map_err(|e| format!("sending {method} {path}: {e}"))?;
    read_response(&mut s).map_err(|e| format!("{method} {path}: {e}"))
}

fn must(r: Result<Response, String>, d: &RingDaemon) -> Response {
    r.unwrap_or_else(|e| panic!("{e}\n{}", d.proc.describe()))
}

const FORM: &str = "application/x-www-form-urlencoded";

fn post_form(
    from: Ipv4Addr,
    d: &RingDaemon,
    sid: Option<&str>,
    path: &str,
    body: &str,
) -> Response {
    let cookie = sid.map(|s| format!("SID={s}"));
    let mut headers = vec![("Content-Type", FORM)];
    if let Some(c) = &cookie {
        headers.push(("Cookie", c.as_str()));
    }
    must(
        request(from, api_addr(d), "POST", path, &headers, body.as_bytes()),
        d,
    )
}

fn post_multipart(
    from: Ipv4Addr,
    d: &RingDaemon,
    sid: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Response {
    let cookie = format!("SID={sid}");
    must(
        request(
            from,
            api_addr(d),
            "POST",
            path,
            &[("Content-Type", content_type), ("Cookie", &cookie)],
            body,
        ),
        d,
    )
}

fn get(from: Ipv4Addr, d: &RingDaemon, sid: &str, path: &str) -> Response {
    let cookie = format!("SID={sid}");
    must(
        request(from, api_addr(d), "GET", path, &[("Cookie", &cookie)], b""),
        d,
    )
}

/// Logs in from `from`; returns the answer.
fn login(from: Ipv4Addr, d: &RingDaemon, password: &str) -> Response {
    post_form(
        from,
        d,
        None,
        "/api/v2/auth/login",
        &format!("username={API_USER}&password={password}"),
    )
}

/// Logs in from `from` with the right password; returns the SID.
fn session(from: Ipv4Addr, d: &RingDaemon) -> String {
    let r = login(from, d, API_PASSWORD);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Ok."),
        "login from {from}\n{}",
        d.proc.describe()
    );
    let cookie = r
        .header("set-cookie")
        .unwrap_or_else(|| panic!("login answered no Set-Cookie: {r:?}"));
    cookie
        .split(';')
        .next()
        .and_then(|c| c.trim().strip_prefix("SID="))
        .unwrap_or_else(|| panic!("no SID in {cookie:?}"))
        .to_string()
}

/// The daemon still answers: `app/version` is `v5.1.4`.
fn assert_alive(from: Ipv4Addr, d: &RingDaemon, sid: &str, after: &str) {
    let r = get(from, d, sid, "/api/v2/app/version");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "v5.1.4"),
        "the daemon no longer answers after {after}\n{}",
        d.proc.describe()
    );
}

/// A multipart body: `(name, filename, content)` parts, closed.
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

/// The daemon's resident memory (kB), from /proc/PID/status.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// The ringseed daemon's pid: the child whose command line is ours.
fn daemon_pid(d: &RingDaemon) -> u32 {
    // The Web API's port is on the daemon's command line only as IP:0, so
    // find the process that listens on it: the only child of this test
    // process whose /proc/PID/cmdline holds our state folder.
    let me = std::process::id();
    let state = d.state.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap_or_else(|e| panic!("/proc: {e}")) {
        let Ok(entry) = entry else { continue };
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Field 4 (after the parenthesised name) is the parent pid.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid != Some(me) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&state) {
            return pid;
        }
    }
    panic!("no child process of this test runs with {state}");
}

/// Every path under `root` (files and folders), relative, sorted.
fn tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

// ---------------------------------------------------------------------------

/// 413 for a declared body over the limit, before the body is sent; a
/// chunked body that grows past it is cut off; the daemon answers after.
#[test]
fn oversized_bodies_are_refused_early() {
    let dirs = Dirs::new();
    let d = RingDaemon::start_api("ringseed", &dirs, ip(10), &[]);
    let client = ip(11);
    let addr = api_addr(&d);
    let sid = session(client, &d);

    // Declared too large: only the head and 1 KiB are sent; the answer must
    // come without the rest.
    for (path, with_cookie) in [
        ("/api/v2/torrents/add", true),
        ("/api/v2/auth/login", false),
    ] {
        let mut s = connect_from(client, addr).unwrap_or_else(|e| panic!("{e}"));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let cookie = if with_cookie {
            format!("Cookie: SID={sid}\r\n")
        } else {
            String::new()
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{cookie}\
             Content-Type: multipart/form-data; boundary=q\r\nContent-Length: {}\r\n\r\n",
            BODY_BYTES_MAX + 1
        );
        let t = Instant::now();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&[b'x'; 1024]).unwrap();
        let r = read_response(&mut s).unwrap_or_else(|e| {
            panic!(
                "{path} with Content-Length {}: {e}\n{}",
                BODY_BYTES_MAX + 1,
                d.proc.describe()
            )
        });
        assert_eq!(r.status, 413, "{path}: {}", r.describe());
        assert!(
            r.text().contains("too large"),
            "{path}: 413 without a reason: {}",
            r.describe()
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{path}: 413 took {:?}",
            t.elapsed()
        );
    }

    // A Content-Length that does not fit in 64 bits.
    let mut s = connect_from(client, addr).unwrap();
    s.write_all(
        format!(
            "POST /api/v2/auth/login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {FORM}\r\n\
             Content-Length: 99999999999999999999999\r\n\r\nusername=a"
        )
        .as_bytes(),
    )
    .unwrap();
    let r = read_response(&mut s).unwrap_or_else(|e| panic!("{e}\n{}", d.proc.describe()));
    assert!(
        r.status == 400 || r.status == 413,
        "huge Content-Length: {}",
        r.describe()
    );

    // Chunked: no length announced; past the limit the server must stop
    // reading and answer 413 (or close the connection), never accept it.
    let mut s = connect_from(client, addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let head = format!(
        "POST /api/v2/torrents/add HTTP/1.1\r\nHost: {addr}\r\nCookie: SID={sid}\r\n\
         Content-Type: {FORM}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sent_w = sent.clone();
    let writer = thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        let _ = w.write_all(head.as_bytes());
        // Up to 4 MiB past the limit, then the end of the body.
        for _ in 0..(BODY_BYTES_MAX / (1 << 20) + 4) {
            let mut c = format!("{:x}\r\n", chunk.len()).into_bytes();
            c.extend_from_slice(&chunk);
            c.extend_from_slice(b"\r\n");
            if w.write_all(&c).is_err() {
                return;
            }
            sent_w.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        let _ = w.write_all(b"0\r\n\r\n");
    });
    let t = Instant::now();
    let outcome = read_response(&mut s);
    let _ = s.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    eprintln!(
        "chunked body past the limit ({} bytes sent): {:?} after {:?}",
        sent.load(Ordering::Relaxed),
        outcome.as_ref().map(|r| r.describe()),
        t.elapsed()
    );
    match outcome {
        Ok(r) => assert_eq!(
            r.status,
            413,
            "chunked body of {} bytes: {}",
            sent.load(Ordering::Relaxed),
            r.describe()
        ),
        // A reset before the answer could be read is a refusal too; a
        // timeout is not.
        Err(e) => assert!(
            !e.contains("timed out") && !e.contains("WouldBlock") && !e.contains("would block"),
            "chunked body past the limit: no answer after {:?}: {e}",
            t.elapsed()
        ),
    }
    assert_alive(client, &d, &sid, "oversized bodies");
}

/// Too many parts, a missing closing boundary, bad UTF-8, too many fields,
/// a bad boolean, overlong names and part headers: 400 with the reason.
#[test]
fn malformed_forms_get_400_with_a_reason() {
    let dirs = Dirs::new();
    let d = RingDaemon::start_api("ringseed", &dirs, ip(12), &[]);
    let client = ip(13);
    let sid = session(client, &d);
    let ct = "multipart/form-data; boundary=hostile";

    let expect_400 = |what: &str, r: Response, reason: &str| {
        assert_eq!(r.status, 400, "{what}: {}", r.describe());
        assert!(
            r.text().contains(reason),
            "{what}: the reason should mention {reason:?}: {}",
            r.describe()
        );
    };

    // PARTS_MAX + 1 parts (tiny uploads): refused as a whole.
    let parts: Vec<(&str, Option<&str>, &[u8])> =
        vec![("torrents", Some("x.torrent"), b"d4:infodee"); PARTS_MAX + 1];
    let body = multipart("hostile", &parts);
    let r = post_multipart(client, &d, &sid, "/api/v2/torrents/add", ct, &body);
    expect_400("too many parts", r, "too many");

    // As many fields as parts, each a plain field: too many fields.
    let parts: Vec<(&str, Option<&str>, &[u8])> = vec![("f", None, b"v"); FIELDS_MAX + 1];
    let r = post_multipart(
        client,
        &d,
        &sid,
        "/api/v2/torrents/add",
        ct,
        &multipart("hostile", &parts),
    );
    expect_400("too many multipart fields", r, "too many");

    // No closing boundary.
    let mut body = multipart("hostile", &[("urls", None, b"magnet:?xt=urn:btih:x")]);
    body.truncate(body.len() - "--hostile--\r\n".len());
    let r = post_multipart(client, &d, &sid, "/api/v2/torrents/add", ct, &body);
    expect_400("no closing boundary", r, "closing boundary");

    // No boundary parameter; headers without an empty line; a part
    // without Content-Disposition.
    let body = multipart("hostile", &[("urls", None, b"x")]);
    let r = post_multipart(
        client,
        &d,
        &sid,
        "/api/v2/torrents/add",
        "multipart/form-data",
        &body,
    );
    expect_400("no boundary", r, "boundary");
    let r = post_multipart(
        client,
        &d,
        &sid,
        "/api/v2/torrents/add",
        ct,
        b"--hostile\r\nContent-Disposition: form-data; name=\"urls\"\r\n--hostile--\r\n",
    );
    expect_400("headers without an end", r, "empty line");
    let r = post_multipart(
        client,
        &d,
        &sid,
        "/api/v2/torrents/add",
        ct,
        b"--hostile\r\nContent-Type: text/plain\r\n\r\nx\r\n--hostile--\r\n",
    );
    expect_400("no Content-Disposition", r, "Content-Disposition");

    // Part headers over 8 KiB.
    let body = format!(
        "--hostile\r\nContent-Disposition: form-data; name=\"urls\"\r\nX-Pad: {}\r\n\r\nx\r\n--hostile--\r\n",
        "p".repeat(9000)
    );
    let r = post_multipart(
        client,
        &d,
        &sid,
        "/api/v2/torrents/add",
        ct,
        body.as_bytes(),
    );
    expect_400("part headers over 8 KiB", r, "too many");

    // Urlencoded: invalid UTF-8 names the field; too many fields; a name
    // over 256 bytes.
    let r = post_form(
        client,
        &d,
        Some(&sid),
        "/api/v2/torrents/createCategory",
        "category=%FF%FE",
    );
    expect_400("invalid UTF-8", r, "category");
    let many = vec!["a=1"; FIELDS_MAX + 1].join("&");
    let r = post_form(
        client,
        &d,
        Some(&sid),
        "/api/v2/torrents/createCategory",
        &many,
    );
    expect_400("too many urlencoded fields", r, "too many fields");
    let long = format!("{}=1&category=x", "n".repeat(300));
    let r = post_form(
        client,
        &d,
        Some(&sid),
        "/api/v2/torrents/createCategory",
        &long,
    );
    expect_400("a 300-byte field name", r, "field name");

    // A boolean that is neither true nor false names the field.
    let r = post_form(
        client,
        &d,
        Some(&sid),
        "/api/v2/torrents/add",
        "urls=magnet%3A%3Fxt%3Durn%3Abtih%3A0123456789abcdef0123456789abcdef01234567&paused=maybe",
    );
    expect_400("paused=maybe", r, "paused");

    // Unknown parameters are ignored (and `True` is a boolean).
    let r = post_form(
        client,
        &d,
        Some(&sid),
        "/api/v2/torrents/createCategory",
        "category=fine&unknownParam=1&alsoUnknown=True",
    );
    assert_eq!(r.status, 200, "unknown parameters: {}", r.describe());

    assert_alive(client, &d, &sid, "malformed forms");
}

/// `..` in a save path, a category, a rename or a torrent's file names:
/// nothing lands outside the download folder.
#[test]
fn path_traversal_writes_nothing_outside_the_save_path() {
    let dirs = Dirs::new();
    let data = dirs.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let (torrent, hash) = small_torrent(&data, "inside.bin", 100_000, 0x117_0001);
    let d = RingDaemon::start_api("ringseed", &dirs, ip(14), &[]);
    let client = ip(15);
    let sid = session(client, &d);
    let ct = "multipart/form-data; boundary=trav";
    // Where an escape from the download folder would land.
    let escapes = [
        dirs.path("escape-savepath"),
        dirs.path("escape-location"),
        dirs.path("escape-category"),
        dirs.path("escape-file.bin"),
    ];
    // Where the renamed torrent's name would point from its moved save
    // path (downloads/moved/../../escape-name): a file that must survive.
    let sentinel = dirs.path("escape-name");
    std::fs::write(&sentinel, b"sentinel").unwrap();
    let before = tree(dirs.root.path());

    // A relative save path that climbs out: refused.
    for savepath in [
        "../escape-savepath",
        "../../escape-savepath",
        "downloads/../../escape-savepath",
    ] {
        let body = multipart(
            "trav",
            &[
                ("torrents", Some("inside.torrent"), torrent.as_slice()),
                ("savepath", None, savepath.as_bytes()),
            ],
        );
        let r = post_multipart(client, &d, &sid, "/api/v2/torrents/add", ct, &body);
        assert_eq!(
            r.status,
            400,
            "add with savepath={savepath:?}: {}",
            r.describe()
        );
    }
    // An absolute one with `..` inside: refused too.
    let climbing = format!("{}/../escape-savepath", dirs.downloads.display());
    let body = multipart(
        "trav",
        &[
            ("torrents", Some("inside.torrent"), torrent.as_slice()),
            ("savepath", None, climbing.as_bytes()),
        ],
    );
    let r = post_multipart(client, &d, &sid, "/api/v2/torrents/add", ct, &body);
    assert_eq!(
        r.status,
        400,
        "add with savepath={climbing:?}: {}",
        r.describe()
    );

    // A category named `../escape-category`, with and without a climbing
    // save path; a torrent added into it stays in the download folder.
    let r = post_form(
        client,
        &d,
        Some(&sid),
        "/api/v2/torrents/createCategory",
        "category=..%2Fescape-category&savePath=..%2Fescape-category",
    );
    assert_eq!(
        r.status,
        400,
        "a category with a relative save path: {}",
        r.describe()
    );
    let r = post_form(
        client,
        &d,
        Some(&sid),
        "/api/v2/torrents/createCategory",
        "category=..%2Fescape-category",
    );
    eprintln!("createCategory ../escape-category: {}", r.describe());
    let category_created = r.status == 200;
    assert!(
        r.status == 200 || r.status == 400,
        "createCategory ../escape-category: {}",
        r.describe()
    );

    // The torrent itself, with its data where it belongs (data/).
    let fields: Vec<(&str, Option<&str>, &[u8])> = vec![
        ("torrents", Some("inside.torrent"), torrent.as_slice()),
        ("savepath", None, data.to_str().unwrap().as_bytes()),
    ];
    let r = post_multipart(
        client,
        &d,
        &sid,
        "/api/v2/torrents/add",
        ct,
        &multipart("trav", &fields),
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Ok."),
        "add: {}",
        r.describe()
    );

    // Renamed to `../../escape-name`: only the name shown changes.
    let r = post_form(
        client,
        &d,
        Some(&sid),
        "/api/v2/torrents/rename",
        &format!("hash={hash}&name=..%2F..%2Fescape-name"),
    );
    assert_eq!(r.status, 200, "rename: {}", r.describe());
    let info = get(
        client,
        &d,
        &sid,
        &format!("/api/v2/torrents/info?hashes={hash}"),
    );
    assert_eq!(info.status, 200, "{}", info.describe());
    let v: serde_json::Value = serde_json::from_slice(&info.body)
        .unwrap_or_else(|e| panic!("torrents/info: {e}: {}", info.describe()));
    let t = &v[0];
    assert_eq!(t["name"], "../../escape-name", "{t}");
    assert_eq!(
        Path::new(t["save_path"].as_str().unwrap_or("")),
        data.as_path(),
        "the save path changed: {t}"
    );
    assert!(data.join("inside.bin").is_file());

    // setLocation / setSavePath to a relative or climbing folder: refused.
    for (endpoint, field) in [("setLocation", "location"), ("setSavePath", "path")] {
        for target in ["..%2Fescape-location", "%2Ftmp%2F..%2F..%2Fescape-location"] {
            let r = post_form(
                client,
                &d,
                Some(&sid),
                &format!("/api/v2/torrents/{endpoint}"),
                &format!("hashes={hash}&{field}={target}"),
            );
            assert_eq!(r.status, 400, "{endpoint} {target}: {}", r.describe());
        }
    }

    // A torrent whose file names climb (`../../escape-file.bin`,
    // `..`/`..` as the name): parsed with the names made safe, or refused.
    // Added into the `../escape-category` category (when it was created)
    // and no save path of its own: it goes to the download folder.
    let hostile = hostile_torrent();
    let mut fields: Vec<(&str, Option<&str>, &[u8])> =
        vec![("torrents", Some("hostile.torrent"), hostile.as_slice())];
    if category_created {
        fields.push(("category", None, b"../escape-category"));
        fields.push(("autoTMM", None, b"true"));
    }
    let body = multipart("trav", &fields);
    let r = post_multipart(client, &d, &sid, "/api/v2/torrents/add", ct, &body);
    eprintln!("add a torrent with climbing file names: {}", r.describe());
    assert!(
        r.status == 200 || r.status == 415,
        "add a torrent with climbing file names: {}",
        r.describe()
    );
    if r.status == 200 {
        let info = get(client, &d, &sid, "/api/v2/torrents/info");
        let list: serde_json::Value = serde_json::from_slice(&info.body).unwrap();
        let other = list
            .as_array()
            .and_then(|a| a.iter().find(|t| t["hash"] != hash.as_str()))
            .unwrap_or_else(|| panic!("the hostile torrent is not listed: {list}"));
        let other_hash = other["hash"].as_str().unwrap().to_string();
        let files = get(
            client,
            &d,
            &sid,
            &format!("/api/v2/torrents/files?hash={other_hash}"),
        );
        assert_eq!(files.status, 200, "{}", files.describe());
        let files: serde_json::Value = serde_json::from_slice(&files.body).unwrap();
        eprintln!(
            "its files: {files}; save_path {}, content_path {}",
            other["save_path"], other["content_path"]
        );
        for f in files.as_array().unwrap_or(&Vec::new()) {
            let name = f["name"].as_str().unwrap_or("");
            assert!(
                !Path::new(name).components().any(|c| matches!(
                    c,
                    std::path::Component::ParentDir | std::path::Component::RootDir
                )),
                "a file name still climbs: {name:?} in {files}"
            );
        }
        for key in ["content_path", "save_path"] {
            let p = other[key].as_str().unwrap_or("");
            assert!(
                Path::new(p).starts_with(&dirs.downloads) && !p.contains(".."),
                "{key} {p:?} is outside {}",
                dirs.downloads.display()
            );
        }
    }

    // The renamed torrent moved to downloads/moved, then deleted with its
    // files: its data goes there and then goes away; the name plays no
    // part (the sentinel file it points at stays).
    let moved = dirs.downloads.join("moved");
    let r = post_form(
        client,
        &d,
        Some(&sid),
        "/api/v2/torrents/setLocation",
        &format!("hashes={hash}&location={}", moved.display()),
    );
    assert_eq!(
        r.status,
        200,
        "setLocation {}: {}",
        moved.display(),
        r.describe()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = get(
            client,
            &d,
            &sid,
            &format!("/api/v2/torrents/info?hashes={hash}"),
        );
        let v: serde_json::Value = serde_json::from_slice(&info.body).unwrap_or_default();
        if v[0]["save_path"].as_str().map(Path::new) == Some(moved.as_path())
            && moved.join("inside.bin").is_file()
            && !data.join("inside.bin").exists()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renamed torrent did not move to {} within 30 s: {v}\ntree: {:?}\n{}",
            moved.display(),
            tree(dirs.root.path()),
            d.proc.describe()
        );
        thread::sleep(Duration::from_millis(200));
    }
    let r = post_form(
        client,
        &d,
        Some(&sid),
        "/api/v2/torrents/delete",
        &format!("hashes={hash}&deleteFiles=true"),
    );
    assert_eq!(r.status, 200, "delete with files: {}", r.describe());
    let deadline = Instant::now() + Duration::from_secs(15);
    while moved.join("inside.bin").exists() {
        assert!(
            Instant::now() < deadline,
            "delete with files left {}",
            moved.join("inside.bin").display()
        );
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        std::fs::read(&sentinel).ok().as_deref(),
        Some(&b"sentinel"[..]),
        "{} was changed by deleting the torrent named ../../escape-name",
        sentinel.display()
    );

    // Give the daemon a moment to create anything it would, then compare.
    thread::sleep(Duration::from_secs(2));
    for e in &escapes {
        assert!(
            !e.exists(),
            "{} was created\n{}",
            e.display(),
            d.proc.describe()
        );
    }
    let allowed = |p: &Path| {
        ["downloads", "state", "watch", "data", "empty.toml"]
            .iter()
            .any(|top| p.starts_with(top))
    };
    let new: Vec<_> = tree(dirs.root.path())
        .into_iter()
        .filter(|p| !before.contains(p) && !allowed(p))
        .collect();
    assert!(
        new.is_empty(),
        "written outside the daemon's folders: {new:?}"
    );
    assert!(!Path::new("/tmp/escape-savepath").exists());
    assert_alive(client, &d, &sid, "path traversal attempts");
}

/// A multi-file torrent named `..` whose files climb out, as raw bencode
/// (the builder refuses such names).
fn hostile_torrent() -> Vec<u8> {
    fn bstr(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(format!("{}:", s.len()).as_bytes());
        out.extend_from_slice(s);
    }
    let piece_len = 16 * 1024usize;
    let lens = [1000usize, 2000];
    let total: usize = lens.iter().sum();
    let pieces = total.div_ceil(piece_len);
    let mut info = b"d5:filesl".to_vec();
    let paths: [&[&[u8]]; 2] = [
        &[b"..", b"..", b"escape-file.bin"],
        &[b"sub", b"..", b"..", b"..", b"escape-file.bin"],
    ];
    for (len, path) in lens.iter().zip(paths) {
        info.extend_from_slice(format!("d6:lengthi{len}e4:pathl").as_bytes());
        for c in path {
            bstr(&mut info, c);
        }
        info.extend_from_slice(b"ee");
    }
    info.extend_from_slice(b"e4:name");
    bstr(&mut info, b"..");
    info.extend_from_slice(format!("12:piece lengthi{piece_len}e6:pieces").as_bytes());
    bstr(&mut info, &vec![0x5a; 20 * pieces]);
    info.push(b'e');
    let mut t = b"d4:info".to_vec();
    t.extend_from_slice(&info);
    t.push(b'e');
    t
}

/// 5 failed logins ban the address with qBittorrent's 403 and text; other
/// addresses still log in; thousands of failed logins keep memory bounded.
#[test]
fn failed_logins_ban_the_address_and_memory_stays_bounded() {
    let dirs = Dirs::new();
    let d = RingDaemon::start_api("ringseed", &dirs, ip(16), &[]);
    let pid = daemon_pid(&d);
    let attacker = ip(17);
    let friend = ip(18);

    for i in 1..=5 {
        let r = login(attacker, &d, "wrong-password");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "Fails."),
            "failed login {i} (qBittorrent answers 200 Fails. to the first 5)"
        );
    }
    let r = login(attacker, &d, API_PASSWORD);
    assert_eq!(
        (r.status, r.text().as_str()),
        (403, BANNED),
        "the right password after 5 failures (qBittorrent: 403 and its text)"
    );
    assert!(
        r.header("set-cookie").is_none(),
        "a banned login got a cookie: {r:?}"
    );
    let sid = session(friend, &d);

    // Thousands of failed logins from a few addresses, in parallel.
    let before = rss_kb(pid);
    let t = Instant::now();
    let addr = api_addr(&d);
    let floods: Vec<_> = (19..23u8)
        .map(|last| {
            thread::spawn(move || {
                let mut fails = 0;
                let mut banned = 0;
                for _ in 0..750 {
                    let r = request(
                        ip(last),
                        addr,
                        "POST",
                        "/api/v2/auth/login",
                        &[("Content-Type", FORM)],
                        b"username=admin&password=nope",
                    )
                    .unwrap_or_else(|e| panic!("flood from {}: {e}", ip(last)));
                    match (r.status, r.text().as_str()) {
                        (200, "Fails.") => fails += 1,
                        (403, BANNED) => banned += 1,
                        _ => panic!("flood from {}: {}", ip(last), r.describe()),
                    }
                }
                (fails, banned)
            })
        })
        .collect();
    for (i, f) in floods.into_iter().enumerate() {
        let (fails, banned) = f
            .join()
            .unwrap_or_else(|_| panic!("flood thread {i} panicked"));
        assert_eq!(
            (fails, banned),
            (5, 745),
            "flood from address {i}: (Fails., banned)"
        );
    }
    let after = rss_kb(pid);
    eprintln!(
        "3000 failed logins in {:?}; daemon RSS {before} kB -> {after} kB",
        t.elapsed()
    );
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} kB to {after} kB after 3000 failed logins"
    );
    assert_alive(friend, &d, &sid, "3000 failed logins");
    // The attacker is still banned; the friend can log in again.
    let r = login(attacker, &d, API_PASSWORD);
    assert_eq!(r.status, 403, "{}", r.describe());
    session(friend, &d);
}

/// A client that sends a byte a second is cut off after the header
/// timeout (10 s) while another client is served meanwhile.
#[test]
fn slow_headers_are_cut_off_while_others_are_served() {
    let dirs = Dirs::new();
    let d = RingDaemon::start_api("ringseed", &dirs, ip(23), &[]);
    let addr = api_addr(&d);
    let slow_ip = ip(24);
    let client = ip(25);
    let sid = session(client, &d);

    let mut slow = connect_from(slow_ip, addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(25)))
        .unwrap();
    let mut w = slow.try_clone().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let done_w = done.clone();
    let head = format!(
        "GET /api/v2/app/version HTTP/1.1\r\nHost: {addr}\r\nX-Slow: {}\r\n\r\n",
        "s".repeat(40)
    );
    let t0 = Instant::now();
    let writer = thread::spawn(move || {
        for b in head.bytes() {
            if done_w.load(Ordering::Relaxed) || w.write_all(&[b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_secs(1));
        }
    });

    // Others are served meanwhile.
    thread::sleep(Duration::from_secs(3));
    let t = Instant::now();
    assert_alive(client, &d, &sid, "a slow client started");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "served in {:?} beside a slow client",
        t.elapsed()
    );

    // The slow one gets closed (EOF, reset, or a 408 first).
    let mut buf = [0u8; 1024];
    let outcome = loop {
        match slow.read(&mut buf) {
            Ok(0) => break Ok("closed".to_string()),
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.starts_with("HTTP/1.1 200") {
                    break Err(format!("the slow request was answered: {text:?}"));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                break Err(format!("still open after {:?}", t0.elapsed()));
            }
            Err(e) => break Ok(format!("reset ({e})")),
        }
    };
    let took = t0.elapsed();
    done.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let how = outcome.unwrap_or_else(|e| panic!("slow client: {e}\n{}", d.proc.describe()));
    eprintln!("slow client {how} after {took:?}");
    assert!(
        took < Duration::from_secs(16),
        "the slow client was cut off only after {took:?} (header timeout 10 s)"
    );
    assert_alive(client, &d, &sid, "a slow client");
}

/// 300 connections that send nothing do not keep a new client from being
/// served within a few seconds; the daemon closes them in the end.
#[test]
fn idle_connections_do_not_lock_out_new_clients() {
    let dirs = Dirs::new();
    let d = RingDaemon::start_api("ringseed", &dirs, ip(26), &[]);
    let addr = api_addr(&d);
    let client = ip(29);
    let sid = session(client, &d);

    let t0 = Instant::now();
    let mut idle = Vec::new();
    for i in 0..300 {
        let from = if i % 2 == 0 { ip(27) } else { ip(28) };
        idle.push(connect_from(from, addr).unwrap_or_else(|e| panic!("idle connection {i}: {e}")));
    }
    // Let the server accept what it will.
    thread::sleep(Duration::from_millis(500));

    let t = Instant::now();
    let cookie = format!("SID={sid}");
    let r = request(
        client,
        addr,
        "GET",
        "/api/v2/app/version",
        &[("Cookie", &cookie)],
        b"",
    );
    let took = t.elapsed();
    let r = r.unwrap_or_else(|e| {
        panic!(
            "new client beside 300 idle ones: {e}\n{}",
            d.proc.describe()
        )
    });
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "v5.1.4"),
        "{}",
        r.describe()
    );
    assert!(
        took < Duration::from_secs(5),
        "a new client waited {took:?} behind 300 idle connections"
    );

    // The idle connections are closed by the server (header timeout) in
    // the end: within ~25 s of opening, every one reads EOF or a reset.
    let mut still_open = 0;
    for s in &mut idle {
        let left = Duration::from_secs(25).saturating_sub(t0.elapsed());
        s.set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .unwrap();
        let mut b = [0u8; 256];
        match s.read(&mut b) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                still_open += 1
            }
            Err(_) => {}
        }
    }
    assert_eq!(
        still_open,
        0,
        "idle connections left open after {:?}",
        t0.elapsed()
    );
    drop(idle);
    assert_alive(client, &d, &sid, "300 idle connections");
}

/// Clients without a session cannot make the daemon hold their large
/// bodies: 8 of them, each sending 48 MiB to `auth/login` or
/// `torrents/add` at the same time, must not grow its memory by more than
/// 128 MiB (were every body held, it would be well over 384 MiB; with
/// CONNECTIONS_MAX connections of BODY_BYTES_MAX each, 16 GiB).
#[test]
fn unauthenticated_large_bodies_do_not_pile_up_in_memory() {
    const CLIENTS: u8 = 8;
    const BODY: u64 = 48 << 20;
    let dirs = Dirs::new();
    let d = RingDaemon::start_api("ringseed", &dirs, ip(30), &[]);
    let pid = daemon_pid(&d);
    let addr = api_addr(&d);
    let before = rss_kb(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let peak = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss_kb(pid));
                thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            thread::spawn(move || -> Result<u16, String> {
                let path = if i % 2 == 0 {
                    "/api/v2/auth/login"
                } else {
                    "/api/v2/torrents/add"
                };
                let mut s = connect_from(ip(31 + i), addr).map_err(|e| e.to_string())?;
                let head = format!(
                    "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {FORM}\r\n\
                     Content-Length: {BODY}\r\nConnection: close\r\n\r\n"
                );
                let chunk = vec![b'a'; 1 << 20];
                let mut ok = s.write_all(head.as_bytes()).is_ok();
                let mut sent = 0;
                while ok && sent + (1 << 20) < BODY {
                    ok = s.write_all(&chunk).is_ok();
                    sent += 1 << 20;
                }
                // Hold the last MiB a moment: every body is in flight at once.
                thread::sleep(Duration::from_secs(2));
                if ok {
                    let _ = s.write_all(&chunk[..(BODY - sent) as usize]);
                }
                match read_response(&mut s) {
                    Ok(r) => Ok(r.status),
                    // Closed early: refused without reading, which is fine.
                    Err(e) if !e.contains("timed out") && !e.contains("would block") => Ok(0),
                    Err(e) => Err(e),
                }
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for c in clients {
        statuses.push(
            c.join()
                .unwrap_or_else(|_| panic!("a client thread panicked")),
        );
    }
    stop.store(true, Ordering::Relaxed);
    let peak = peak.join().unwrap();
    eprintln!("answers {statuses:?}; daemon RSS {before} kB, peak {peak} kB");
    for s in &statuses {
        match s {
            Ok(code) => assert!(
                !(200..300).contains(code),
                "a body without a session was accepted: {statuses:?}"
            ),
            Err(e) => panic!("no answer to a large body: {e}\n{}", d.proc.describe()),
        }
    }
    assert!(
        peak < before + 128 * 1024,
        "{CLIENTS} clients without a session sending {} MiB each took the daemon's RSS from \
         {before} kB to {peak} kB: bodies are read whole before the session (or the login \
         form's size) is checked",
        BODY >> 20
    );
    let client = ip(39);
    let sid = session(client, &d);
    assert_alive(client, &d, &sid, "large bodies without a session");
}
