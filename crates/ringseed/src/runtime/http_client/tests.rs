//! Tests for the HTTP client against an in-process fake server on 127.0.0.1:0
//! that serves canned bytes, one response per connection, bounded in time.

use super::response::parse_status_line;
use super::*;
use crate::tracker::http::URL_BYTES_MAX;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

/// Longest the fake server waits for a connection or a request.
const SERVER_WAIT: Duration = Duration::from_secs(5);
/// Most request bytes the fake server reads.
const REQUEST_BYTES_MAX: usize = 16 * 1024;

struct Canned {
    bytes: Vec<u8>,
    /// Pause after reading the request, before answering.
    delay: Duration,
}

fn canned(bytes: impl AsRef<[u8]>) -> Canned {
    Canned {
        bytes: bytes.as_ref().to_vec(),
        delay: Duration::ZERO,
    }
}

/// An empty 200 answer sent only after `delay`.
fn slow_ok(delay: Duration) -> Canned {
    Canned {
        delay,
        ..canned("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    }
}

fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    let _ = stream.set_read_timeout(Some(SERVER_WAIT));
    while request.len() < REQUEST_BYTES_MAX && !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    request
}

/// Runs `client` against a server answering `responses` in order; gives the
/// client's result and the requests the server saw.
fn with_server<R>(
    responses: Vec<Canned>,
    client: impl FnOnce(SocketAddr) -> R,
) -> (R, Vec<String>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    serve_on(listener, responses, client)
}

/// Like [`with_server`], on a listener the test bound (to know its address
/// before writing the responses).
fn serve_on<R>(
    listener: TcpListener,
    responses: Vec<Canned>,
    client: impl FnOnce(SocketAddr) -> R,
) -> (R, Vec<String>) {
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let done = AtomicBool::new(false);
    thread::scope(|scope| {
        let server = scope.spawn(|| {
            let mut requests = Vec::new();
            for response in responses {
                let start = Instant::now();
                let accepted = loop {
                    match listener.accept() {
                        Ok((s, _)) => break Some(s),
                        Err(_) if done.load(Ordering::SeqCst) => break None,
                        Err(_) if start.elapsed() > SERVER_WAIT => break None,
                        Err(_) => thread::sleep(Duration::from_millis(2)),
                    }
                };
                let Some(mut stream) = accepted else { break };
                stream.set_nonblocking(false).unwrap();
                let request = read_request(&mut stream);
                requests.push(String::from_utf8_lossy(&request).into_owned());
                thread::sleep(response.delay);
                let _ = stream.write_all(&response.bytes);
                let _ = stream.shutdown(std::net::Shutdown::Write);
            }
            requests
        });
        let result = client(addr);
        done.store(true, Ordering::SeqCst);
        (result, server.join().unwrap())
    })
}

fn fast_limits() -> HttpLimits {
    HttpLimits {
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_secs(5),
        ..HttpLimits::default()
    }
}

fn get(addr: SocketAddr, path: &str, limits: &HttpLimits) -> Result<HttpResponse, HttpError> {
    http_get(&format!("http://{addr}{path}"), &default_connect, limits)
}

fn get_one(response: impl AsRef<[u8]>) -> Result<HttpResponse, HttpError> {
    with_server(vec![canned(response)], |addr| {
        get(addr, "/announce?x=1", &fast_limits())
    })
    .0
}

#[test]
fn content_length_body_and_request_headers() {
    let (result, requests) = with_server(
        vec![canned(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
        )],
        |addr| get(addr, "/announce?info_hash=%01&port=1", &fast_limits()),
    );
    let response = result.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
    let request = &requests[0];
    assert!(request.starts_with("GET /announce?info_hash=%01&port=1 HTTP/1.1\r\n"));
    assert!(request.contains("\r\nHost: 127.0.0.1:"));
    assert!(request.contains(&format!("\r\nUser-Agent: {USER_AGENT}\r\n")));
    assert!(USER_AGENT.starts_with("ringseed/"));
    assert!(request.contains("\r\nAccept-Encoding: identity\r\n"));
    assert!(request.contains("\r\nConnection: close\r\n"));
}

#[test]
fn content_length_http10_and_repeated_equal_lengths() {
    let response =
        get_one("HTTP/1.0 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nokEXTRA")
            .unwrap();
    assert_eq!(response.body, b"ok");
}

#[test]
fn chunked_body_with_extension_and_trailer() {
    let response = get_one(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
         5;name=x\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n",
    )
    .unwrap();
    assert_eq!(response.body, b"hello 0123456789");
}

#[test]
fn chunked_wins_over_content_length() {
    let response = get_one(
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n\
         2\r\nok\r\n0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(response.body, b"ok");
}

#[test]
fn body_read_to_eof() {
    let response = get_one("HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil the end").unwrap();
    assert_eq!(response.body, b"until the end");
}

#[test]
fn no_content_has_empty_body() {
    let response = get_one("HTTP/1.1 204 No Content\r\n\r\nignored").unwrap();
    assert_eq!(response.status, 204);
    assert!(response.body.is_empty());
}

#[test]
fn non_200_status_is_returned() {
    let response = get_one("HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnah").unwrap();
    assert_eq!(response.status, 404);
    assert_eq!(response.body, b"nah");
}

#[test]
fn redirect_chain_is_followed() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let responses = vec![
        canned("HTTP/1.1 301 Moved\r\nLocation: /second?a=b\r\nContent-Length: 0\r\n\r\n"),
        canned(format!(
            "HTTP/1.1 302 Found\r\nLocation: http://{addr}/third\r\n\r\n"
        )),
        canned("HTTP/1.1 307 Temporary\r\nLocation: /fourth\r\n\r\n"),
        canned("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone"),
    ];
    let (result, requests) = serve_on(listener, responses, |addr| {
        get(addr, "/first", &fast_limits())
    });
    assert_eq!(result.unwrap().body, b"done");
    let lines: Vec<&str> = requests.iter().map(|r| r.lines().next().unwrap()).collect();
    assert_eq!(
        lines,
        [
            "GET /first HTTP/1.1",
            "GET /second?a=b HTTP/1.1",
            "GET /third HTTP/1.1",
            "GET /fourth HTTP/1.1"
        ]
    );
}

#[test]
fn too_many_redirects() {
    let redirect = || canned("HTTP/1.1 308 Permanent\r\nLocation: /again\r\n\r\n");
    let (result, requests) = with_server(
        vec![redirect(), redirect(), redirect(), redirect(), redirect()],
        |addr| get(addr, "/", &fast_limits()),
    );
    assert!(
        matches!(result, Err(HttpError::TooManyRedirects { limit: 3, .. })),
        "{result:?}"
    );
    assert_eq!(requests.len(), 4, "the first GET and three redirects");
}

#[test]
fn redirects_max_zero_refuses_the_first() {
    let limits = HttpLimits {
        redirects_max: 0,
        ..fast_limits()
    };
    let (result, _) = with_server(
        vec![canned("HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n")],
        |addr| get(addr, "/", &limits),
    );
    assert!(matches!(
        result,
        Err(HttpError::TooManyRedirects { limit: 0, .. })
    ));
}

#[test]
fn bad_redirects() {
    // A redirect to https:// is followed (here to a closed port).
    let err = get_one("HTTP/1.1 302 Found\r\nLocation: https://127.0.0.1:1/a\r\n\r\n").unwrap_err();
    assert!(
        matches!(&err, HttpError::Connect { addr, .. } if addr.port() == 1),
        "{err}"
    );
    let err = get_one("HTTP/1.1 301 Moved\r\nLocation: relative/path\r\n\r\n").unwrap_err();
    assert!(
        matches!(err, HttpError::BadRedirect { status: 301, .. }),
        "{err}"
    );
    let err = get_one("HTTP/1.1 301 Moved\r\nLocation: //other.host/x\r\n\r\n").unwrap_err();
    assert!(matches!(err, HttpError::BadRedirect { .. }), "{err}");
    let err = get_one("HTTP/1.1 307 Temp\r\nContent-Length: 0\r\n\r\n").unwrap_err();
    assert!(matches!(
        err,
        HttpError::RedirectWithoutLocation { status: 307, .. }
    ));
}

#[test]
fn oversize_header() {
    let limits = HttpLimits {
        header_bytes_max: 64,
        ..fast_limits()
    };
    let long = format!("HTTP/1.1 200 OK\r\nX-Long: {}\r\n\r\n", "a".repeat(100));
    let (result, _) = with_server(vec![canned(long)], |addr| get(addr, "/", &limits));
    assert!(matches!(
        result,
        Err(HttpError::HeaderTooLarge { limit: 64, .. })
    ));
    // No end of line at all, more than the limit.
    let (result, _) = with_server(vec![canned("x".repeat(200))], |addr| {
        get(addr, "/", &limits)
    });
    assert!(matches!(
        result,
        Err(HttpError::HeaderTooLarge { limit: 64, .. })
    ));
}

#[test]
fn too_many_header_lines() {
    let mut response = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..=HEADER_LINES_MAX {
        response.push_str(&format!("X-{i}: 1\r\n"));
    }
    response.push_str("\r\n");
    let err = get_one(response).unwrap_err();
    assert!(matches!(
        err,
        HttpError::TooManyHeaders {
            limit: HEADER_LINES_MAX,
            ..
        }
    ));
}

#[test]
fn oversize_body_each_framing() {
    let limits = HttpLimits {
        body_bytes_max: 10,
        ..fast_limits()
    };
    let cases = [
        "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n01234567890".to_string(),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n01234\r\n0\r\n\r\n"
            .to_string(),
        format!("HTTP/1.1 200 OK\r\n\r\n{}", "z".repeat(5000)),
    ];
    for case in cases {
        let (result, _) = with_server(vec![canned(&case)], |addr| get(addr, "/", &limits));
        assert!(
            matches!(result, Err(HttpError::BodyTooLarge { limit: 10, .. })),
            "{case:?}: {result:?}"
        );
    }
    // Exactly at the limit is fine.
    let (result, _) = with_server(
        vec![canned(
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
        )],
        |addr| get(addr, "/", &limits),
    );
    assert_eq!(result.unwrap().body.len(), 10);
}

#[test]
fn huge_content_length_refused_before_reading() {
    let err = get_one("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999\r\n\r\n").unwrap_err();
    assert!(matches!(
        err,
        HttpError::BodyTooLarge {
            length: 99_999_999_999_999,
            ..
        }
    ));
}

#[test]
fn bad_status_lines() {
    for line in [
        "HTTP/2 200 OK",
        "HTTP/1.1 20 OK",
        "HTTP/1.1 2000 OK",
        "HTTP/1.1 abc OK",
        "HTTP/1.1 099 Low",
        "HTTP/1.1 600 High",
        "ICY 200 OK",
        "",
    ] {
        let err = parse_status_line("u", line.as_bytes()).unwrap_err();
        assert!(matches!(err, HttpError::BadStatusLine { .. }), "{line:?}");
    }
    assert_eq!(parse_status_line("u", b"HTTP/1.1 200").unwrap(), 200);
    assert!(matches!(
        parse_status_line("u", b"HTTP/1.1 100 Continue"),
        Err(HttpError::InterimStatus { status: 100, .. })
    ));
    let err = get_one("SPAM 200 OK\r\n\r\n").unwrap_err();
    assert!(matches!(&err, HttpError::BadStatusLine { line, .. } if line == "SPAM 200 OK"));
}

#[test]
fn bare_lf_and_bad_headers_refused() {
    let err = get_one("HTTP/1.1 200 OK\nContent-Length: 0\n\n").unwrap_err();
    assert!(matches!(err, HttpError::BadHeader { .. }), "{err}");
    for header in ["NoColon", "Bad Name: x", " folded: x", ": empty"] {
        let err = get_one(format!("HTTP/1.1 200 OK\r\n{header}\r\n\r\n")).unwrap_err();
        assert!(
            matches!(err, HttpError::BadHeader { .. }),
            "{header:?}: {err}"
        );
    }
}

#[test]
fn bad_content_lengths() {
    for value in ["-1", "1 2", "0x10", "", "12345678901234567890123", "+5"] {
        let err = get_one(format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n"
        ))
        .unwrap_err();
        assert!(
            matches!(err, HttpError::BadContentLength { .. }),
            "{value:?}: {err}"
        );
    }
    let err =
        get_one("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab").unwrap_err();
    assert!(matches!(err, HttpError::BadContentLength { .. }));
}

#[test]
fn compression_refused() {
    let err = get_one("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n").unwrap_err();
    assert!(matches!(&err, HttpError::UnsupportedContentEncoding { value, .. } if value == "gzip"));
    let err = get_one("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap_err();
    assert!(matches!(err, HttpError::UnsupportedTransferEncoding { .. }));
}

#[test]
fn bad_chunks() {
    let cases = [
        ("zz\r\n", "not hexadecimal"),
        ("\r\n", "empty"),
        ("10000000000000000\r\n", "too many digits"),
        ("5\r\nhelloXX0\r\n\r\n", "CRLF"),
    ];
    for (chunks, why) in cases {
        let err = get_one(format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}"
        ))
        .unwrap_err();
        assert!(
            matches!(&err, HttpError::BadChunk { reason, .. } if reason.contains(why)),
            "{chunks:?}: {err}"
        );
    }
    // 16 hex digits of f fit a u64 but not the body limit.
    let err = get_one("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n")
        .unwrap_err();
    assert!(matches!(err, HttpError::BodyTooLarge { .. }), "{err}");
    let long_line = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;{}\r\n",
        "e".repeat(CHUNK_LINE_BYTES_MAX)
    );
    let err = get_one(long_line).unwrap_err();
    assert!(matches!(&err, HttpError::BadChunk { reason, .. } if reason.contains("too long")));
}

#[test]
fn truncated_responses() {
    let err = get_one("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort").unwrap_err();
    assert!(matches!(err, HttpError::UnexpectedEof { received, .. } if received > 0));
    let err = get_one("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel").unwrap_err();
    assert!(matches!(err, HttpError::UnexpectedEof { .. }));
    let err = get_one("").unwrap_err();
    assert!(matches!(err, HttpError::UnexpectedEof { received: 0, .. }));
    let err = get_one("HTTP/1.1 200 OK\r\nX: y\r\n").unwrap_err();
    assert!(matches!(err, HttpError::UnexpectedEof { .. }));
}

#[test]
fn slow_server_hits_io_timeout() {
    let limits = HttpLimits {
        io_timeout: Duration::from_millis(300),
        ..fast_limits()
    };
    let slow = slow_ok(Duration::from_millis(700));
    let start = Instant::now();
    let (result, _) = with_server(vec![slow], |addr| get(addr, "/", &limits));
    let elapsed = start.elapsed();
    assert!(
        matches!(result, Err(HttpError::Timeout { limit, .. }) if limit == Duration::from_millis(300)),
        "{result:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[test]
fn slow_server_hits_total_timeout() {
    let limits = HttpLimits {
        io_timeout: Duration::from_secs(2),
        total_timeout: Duration::from_millis(300),
        ..fast_limits()
    };
    let slow = slow_ok(Duration::from_millis(700));
    let (result, _) = with_server(vec![slow], |addr| get(addr, "/", &limits));
    assert!(
        matches!(result, Err(HttpError::TotalTimeout { .. })),
        "{result:?}"
    );
}

#[test]
fn connector_is_used_and_its_error_reported() {
    let calls = AtomicUsize::new(0);
    let counting = |addr: SocketAddr, timeout: Duration| {
        calls.fetch_add(1, Ordering::SeqCst);
        default_connect(addr, timeout)
    };
    let (result, _) = with_server(
        vec![canned("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")],
        |addr| http_get(&format!("http://{addr}/"), &counting, &fast_limits()),
    );
    assert_eq!(result.unwrap().status, 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let refusing = |_: SocketAddr, _: Duration| -> io::Result<TcpStream> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "not on this interface",
        ))
    };
    let err = http_get("http://127.0.0.1:9/", &refusing, &fast_limits()).unwrap_err();
    assert!(matches!(&err, HttpError::Connect { attempts: 1, .. }));
    assert!(err.to_string().contains("not on this interface"), "{err}");
}

#[test]
fn bound_connector_binds_through_runtime_sockets() {
    use crate::runtime::sockets::BindOptions;
    let on_lo = bound_connector(BindOptions {
        interface: Some("lo".into()),
        address: None,
    });
    let (result, _) = with_server(
        vec![canned("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")],
        |addr| http_get(&format!("http://{addr}/"), &on_lo, &fast_limits()),
    );
    assert_eq!(result.unwrap().status, 200);

    let missing = bound_connector(BindOptions {
        interface: Some("rsnope0".into()),
        address: None,
    });
    let err = http_get("http://127.0.0.1:9/", &missing, &fast_limits()).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn connection_refused_reports_os_error() {
    // A port just released: nothing listens there.
    let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    let err = http_get(&format!("http://{addr}/"), &default_connect, &fast_limits()).unwrap_err();
    match err {
        HttpError::Connect { source, .. } => {
            assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused)
        }
        other => panic!("{other}"),
    }
}

#[test]
fn errors_never_show_a_passkey() {
    let addr = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap();
    let base = format!("http://{addr}/SECRET456/announce?passkey=SECRET123");
    let err = announce(&base, &sample_request(), &default_connect, &fast_limits()).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, AnnounceError::Http(HttpError::Connect { .. })),
        "{text}"
    );
    assert!(!text.contains("SECRET"), "{text}");
    assert!(
        text.contains(&format!("http://{addr}/***/announce?passkey=***")),
        "{text}"
    );
    // The announce's own values (info_hash, peer_id, key) are hidden too.
    assert!(text.contains("peer_id=***"), "{text}");
    for url in [
        "https://127.0.0.1:1/SECRET456/a?pk=SECRET123",
        "ftp://t/?passkey=SECRET123#SECRET",
    ] {
        let err = http_get(url, &default_connect, &fast_limits()).unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }
}

/// A TLS server on 127.0.0.1 with a certificate for `localhost` made now;
/// answers one request with `response`. Gives its port and the
/// certificate (to trust it).
fn tls_server(
    response: &'static [u8],
) -> (
    u16,
    rustls::pki_types::CertificateDer<'static>,
    thread::JoinHandle<()>,
) {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let der = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(super::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let Ok((mut tcp, _)) = listener.accept() else {
            return;
        };
        let _ = tcp.set_read_timeout(Some(SERVER_WAIT));
        let _ = tcp.set_write_timeout(Some(SERVER_WAIT));
        let mut conn = rustls::ServerConnection::new(std::sync::Arc::new(config)).unwrap();
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        let mut request = Vec::new();
        let mut chunk = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < REQUEST_BYTES_MAX {
            match tls.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&chunk[..n]),
            }
        }
        let _ = tls.write_all(response);
        let _ = tls.flush();
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    (port, der, handle)
}

#[test]
fn https_over_tls_with_a_trusted_certificate() {
    let (port, der, server) = tls_server(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    super::tls::TEST_ROOT.with(|r| *r.borrow_mut() = Some(der));
    let connect = |_: SocketAddr, t: Duration| {
        TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), t)
    };
    let r = http_get(
        &format!("https://localhost:{port}/x"),
        &connect,
        &fast_limits(),
    );
    super::tls::TEST_ROOT.with(|r| *r.borrow_mut() = None);
    server.join().unwrap();
    let r = r.unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
}

#[test]
fn https_with_an_untrusted_certificate_fails_naming_it() {
    let (port, _der, server) = tls_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let connect = |_: SocketAddr, t: Duration| {
        TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), t)
    };
    let err = http_get(
        &format!("https://localhost:{port}/x?pk=SECRET"),
        &connect,
        &fast_limits(),
    )
    .unwrap_err();
    server.join().unwrap();
    let text = err.to_string();
    assert!(text.contains("certificate"), "{text}");
    assert!(!text.contains("SECRET"), "{text}");
}

#[test]
fn https_urls_default_to_port_443() {
    let t = super::url::parse_url("HTTPS://tracker.example/announce").unwrap();
    assert!(t.tls);
    assert_eq!((t.port, t.host_header().as_str()), (443, "tracker.example"));
    let t = super::url::parse_url("https://tracker.example:8443/a").unwrap();
    assert_eq!(t.host_header(), "tracker.example:8443");
}

#[test]
fn malformed_urls() {
    let cases = [
        ("ftp://x/", "scheme"),
        ("udp://tracker:80/announce", "scheme"),
        ("http//x/", "scheme"),
        ("http://", "no host"),
        ("http:///path", "no host"),
        ("http://:80/", "no host"),
        ("http://x:/", "bad port"),
        ("http://x:0/", "range"),
        ("http://x:65536/", "range"),
        ("http://x:8a/", "bad port"),
        ("http://x:123456/", "bad port"),
        ("http://[::1/", "unclosed"),
        ("http://[zz::1]/", "IPv6"),
        ("http://[::1]x/", "junk"),
        ("http://user@x/", "user"),
        ("http://a b/", "space"),
        ("http://x/\u{7f}", "control"),
        ("http://ex%41mple/", "characters"),
    ];
    for (url, why) in cases {
        let err = parse_url(url).unwrap_err();
        let text = err.to_string();
        let ok = match &err {
            HttpError::UnsupportedScheme { .. } => why == "scheme",
            HttpError::BadUrl { reason, .. } => reason.contains(why),
            _ => false,
        };
        assert!(ok, "{url:?}: {text}");
    }
    let long = format!("http://x/{}", "a".repeat(URL_BYTES_MAX));
    assert!(matches!(
        parse_url(&long),
        Err(HttpError::UrlTooLong { .. })
    ));
}

#[test]
fn url_forms() {
    let t = parse_url("HTTP://Tracker.Example").unwrap();
    assert_eq!(
        (t.host.as_str(), t.port, t.path.as_str()),
        ("Tracker.Example", 80, "/")
    );
    assert_eq!(t.host_header(), "Tracker.Example");
    let t = parse_url("http://10.0.0.1:6969?passkey=abc#frag").unwrap();
    assert_eq!(t.ip, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
    assert_eq!(t.path, "/?passkey=abc");
    assert_eq!(t.host_header(), "10.0.0.1:6969");
    let t = parse_url("http://[::1]:8080/announce?a=%20").unwrap();
    assert_eq!(t.ip, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    assert_eq!(t.host_header(), "[::1]:8080");
    assert_eq!(t.path, "/announce?a=%20");
    let t = parse_url("http://[::1]/").unwrap();
    assert_eq!(t.host_header(), "[::1]");
    let t = parse_url("http://x/ann\u{e9}?k=\u{20ac}").unwrap();
    assert_eq!(t.path, "/ann%C3%A9?k=%E2%82%AC");
}

#[test]
fn location_resolution() {
    let target = parse_url("http://[::1]:81/a").unwrap();
    assert_eq!(
        resolve_location("u", &target, 301, "/b?c").unwrap(),
        "http://[::1]:81/b?c"
    );
    assert_eq!(
        resolve_location("u", &target, 301, "HTTP://other/x").unwrap(),
        "HTTP://other/x"
    );
}

#[test]
fn name_resolution_localhost() {
    let (result, requests) = with_server(
        vec![canned("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")],
        |addr| {
            // localhost may resolve to ::1 first; addresses_max bounds the tries.
            let limits = HttpLimits {
                addresses_max: 4,
                ..fast_limits()
            };
            http_get(
                &format!("http://localhost:{}/x", addr.port()),
                &default_connect,
                &limits,
            )
        },
    );
    assert_eq!(result.unwrap().body, b"ok");
    assert!(requests[0].contains("\r\nHost: localhost:"));
}

fn sample_request() -> AnnounceRequest {
    AnnounceRequest {
        left: 100,
        event: Some(crate::tracker::Event::Started),
        no_peer_id: true,
        ..AnnounceRequest::new(InfoHash([7; 20]), *b"-RS0001-abcdefghijkl", 6881)
    }
}

fn bencode_response(body: &[u8], status: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[test]
fn announce_success_with_compact_peers() {
    let body = b"d8:intervali1800e5:peers6:\x7f\x00\x00\x01\x1a\xe1e";
    let (result, requests) = with_server(vec![canned(bencode_response(body, "200 OK"))], |addr| {
        announce(
            &format!("http://{addr}/announce"),
            &sample_request(),
            &default_connect,
            &fast_limits(),
        )
    });
    let response = result.unwrap();
    assert_eq!(response.interval, Duration::from_secs(1800));
    assert_eq!(response.peers, ["127.0.0.1:6881".parse().unwrap()]);
    assert!(requests[0].starts_with("GET /announce?info_hash=%07%07"));
    assert!(requests[0].contains("&event=started"));
}

#[test]
fn announce_failure_reason_in_trackers_words() {
    for status in ["200 OK", "403 Forbidden"] {
        let body = b"d14:failure reason24:torrent not on this sitee";
        let (result, _) = with_server(vec![canned(bencode_response(body, status))], |addr| {
            announce(
                &format!("http://{addr}/announce"),
                &sample_request(),
                &default_connect,
                &fast_limits(),
            )
        });
        match result {
            Err(AnnounceError::Tracker(TrackerError::Failure(words))) => {
                assert_eq!(words, "torrent not on this site")
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[test]
fn announce_non_200_keeps_status_and_sanitized_body() {
    let mut body = b"<html>\x1b[31mbad gateway</html>".to_vec();
    body.extend(std::iter::repeat_n(b'x', 1000));
    let (result, _) = with_server(
        vec![canned(bencode_response(&body, "502 Bad Gateway"))],
        |addr| {
            announce(
                &format!("http://{addr}/announce"),
                &sample_request(),
                &default_connect,
                &fast_limits(),
            )
        },
    );
    match result {
        Err(AnnounceError::Status {
            status, body_start, ..
        }) => {
            assert_eq!(status, 502);
            assert!(body_start.starts_with("<html>\u{fffd}[31mbad gateway"));
            assert!(body_start.len() < BODY_EXCERPT_BYTES + 8);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn announce_bad_body_and_bad_url() {
    let (result, _) = with_server(
        vec![canned(bencode_response(b"not bencode", "200 OK"))],
        |addr| {
            announce(
                &format!("http://{addr}/announce"),
                &sample_request(),
                &default_connect,
                &fast_limits(),
            )
        },
    );
    assert!(
        matches!(result, Err(AnnounceError::Tracker(_))),
        "{result:?}"
    );
    let err = announce(
        "https://127.0.0.1:1/announce",
        &sample_request(),
        &default_connect,
        &fast_limits(),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        AnnounceError::Http(HttpError::Connect { .. })
    ));
    let err = announce(
        "gopher://x/",
        &sample_request(),
        &default_connect,
        &fast_limits(),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        AnnounceError::Tracker(TrackerError::UnsupportedScheme { .. })
    ));
}

#[test]
fn scrape_parses_files() {
    let mut body = b"d5:filesd20:".to_vec();
    body.extend_from_slice(&[7; 20]);
    body.extend_from_slice(b"d8:completei2e10:downloadedi5e10:incompletei3eeee");
    let (result, requests) = with_server(vec![canned(bencode_response(&body, "200 OK"))], |addr| {
        scrape(
            &format!("http://{addr}/announce"),
            &[InfoHash([7; 20])],
            &default_connect,
            &fast_limits(),
        )
    });
    let stats = result.unwrap().get(&InfoHash([7; 20])).unwrap();
    assert_eq!(
        (stats.complete, stats.incomplete, stats.downloaded),
        (2, 3, 5)
    );
    assert!(requests[0].starts_with("GET /scrape?info_hash=%07"));
}

#[test]
fn see_other_is_followed_and_huge_total_timeout_is_fine() {
    let limits = HttpLimits {
        total_timeout: Duration::MAX,
        ..fast_limits()
    };
    let (result, requests) = with_server(
        vec![
            canned("HTTP/1.1 303 See Other\r\nLocation: /other\r\n\r\n"),
            canned("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!"),
        ],
        |addr| get(addr, "/", &limits),
    );
    assert_eq!(result.unwrap().body, b"!");
    assert!(requests[1].starts_with("GET /other HTTP/1.1"));
}

#[test]
fn zero_io_timeout_fails_fast() {
    let limits = HttpLimits {
        io_timeout: Duration::ZERO,
        ..fast_limits()
    };
    let slow = slow_ok(Duration::from_millis(300));
    let (result, _) = with_server(vec![slow], |addr| get(addr, "/", &limits));
    assert!(
        matches!(result, Err(HttpError::Timeout { .. })),
        "{result:?}"
    );
}
