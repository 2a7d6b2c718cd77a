//! One announce to one tracker URL: `http://` through
//! [`crate::runtime::http_client::announce`], `udp://host:port` by driving a
//! [`UdpTrackerSession`] over a blocking std socket; anything else is refused.
//!
//! Boundary: this file owns the sockets and the clock of a single attempt;
//! which URL to try, and what to tell the caller, is the worker's business.
//! Every socket is made through [`crate::runtime::sockets`] with the worker's
//! [`BindOptions`]. An attempt lasts at most its `timeout` plus one name
//! resolution (the system resolver cannot be interrupted; at most
//! [`ADDRESSES_MAX`] resolved addresses are looked at). A UDP attempt also
//! ends within [`POLL_SLICE`] of the worker asking it to stop.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::rng::Rng;
use crate::runtime::http_client::{self, AnnounceError, HttpLimits};
use crate::runtime::sockets::{self, BindOptions, SocketError};
use crate::tracker::{
    AnnounceRequest, AnnounceResponse, Step, TrackerError, UdpOperation, UdpOutcome,
    UdpTrackerSession, RETRIES_MAX,
};

use super::tiers::URL_BYTES_MAX;

/// Resolved addresses looked at per UDP tracker host.
pub const ADDRESSES_MAX: usize = 4;
/// Longest single wait on a UDP socket, so a stop request is seen quickly.
pub const POLL_SLICE: Duration = Duration::from_millis(100);
/// Receive buffer for one UDP answer: the largest datagram.
pub const UDP_DATAGRAM_BYTES_MAX: usize = 65_536;
/// Most socket events (datagrams, timer wake-ups) handled in one UDP attempt.
pub const UDP_EVENTS_MAX: usize = 100_000;

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// The tracker answered with a refusal; its own words, sanitised.
    #[error("tracker refused the announce: {0}")]
    Refused(String),
    #[error("unsupported tracker URL scheme {scheme:?} (only http://, https:// and udp://)")]
    UnsupportedScheme { scheme: String },
    #[error("tracker URL is {length} bytes, more than the limit of {limit}")]
    UrlTooLong { length: usize, limit: usize },
    #[error("bad udp:// tracker URL: {reason}")]
    BadUdpUrl { reason: &'static str },
    #[error("resolving {host:?}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("resolving {host:?}: no {family} address (the bind address decides the family)")]
    NoAddress { host: String, family: &'static str },
    #[error(transparent)]
    Http(AnnounceError),
    #[error("UDP socket: {0}")]
    Socket(#[from] SocketError),
    #[error("UDP {what} with {addr}: {source}")]
    Io {
        what: &'static str,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("UDP tracker answer: {0}")]
    Udp(TrackerError),
    #[error("UDP tracker {addr} did not answer within {limit:?}")]
    Timeout { addr: SocketAddr, limit: Duration },
    #[error("UDP tracker {addr}: more than {limit} socket events in one announce")]
    TooManyEvents { addr: SocketAddr, limit: usize },
    #[error("UDP tracker session ended without an answer ({what})")]
    Unexpected { what: &'static str },
    #[error("the tracker worker is shutting down; announce abandoned")]
    Abandoned,
}

/// What one attempt needs besides the URL and the request.
pub struct AttemptContext<'a> {
    pub bind: &'a BindOptions,
    pub timeout: Duration,
    /// Set when the worker gives up on running jobs.
    pub abandon: &'a AtomicBool,
    /// Transaction ids for UDP.
    pub rng: &'a mut Rng,
}

/// The transports we speak.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scheme {
    Http,
    Udp { host: String, port: u16 },
}

/// Announces `req` to `url`.
pub fn announce(
    url: &str,
    req: &AnnounceRequest,
    cx: &mut AttemptContext<'_>,
) -> Result<AnnounceResponse, AttemptError> {
    if url.len() > URL_BYTES_MAX {
        return Err(AttemptError::UrlTooLong {
            length: url.len(),
            limit: URL_BYTES_MAX,
        });
    }
    if cx.abandon.load(Ordering::Relaxed) {
        return Err(AttemptError::Abandoned);
    }
    match scheme_of(url)? {
        Scheme::Http => http_announce(url, req, cx),
        Scheme::Udp { host, port } => {
            let addr = resolve(&host, port, cx.bind)?;
            udp_announce(addr, req, cx)
        }
    }
}

/// The scheme of `url`, and for `udp://` its host and port.
fn scheme_of(url: &str) -> Result<Scheme, AttemptError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(AttemptError::UnsupportedScheme {
            scheme: String::new(),
        });
    };
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "https" => Ok(Scheme::Http),
        "udp" => parse_udp_authority(rest),
        _ => Err(AttemptError::UnsupportedScheme {
            scheme: crate::tracker::announce::sanitize_message(scheme.as_bytes()),
        }),
    }
}

/// `host:port` or `[v6]:port`, up to the first `/`, `?` or `#`.
fn parse_udp_authority(rest: &str) -> Result<Scheme, AttemptError> {
    let bad = |reason| Err(AttemptError::BadUdpUrl { reason });
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..end).unwrap_or(rest);
    if authority.contains('@') {
        return bad("user information is not allowed");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((host, after)) = v6.split_once(']') else {
            return bad("unclosed '[' in the host");
        };
        let Some(port) = after.strip_prefix(':') else {
            return bad("no port after the IPv6 address");
        };
        (host, port)
    } else {
        let Some((host, port)) = authority.rsplit_once(':') else {
            return bad("no port (udp:// trackers need host:port)");
        };
        if host.contains(':') {
            return bad("an IPv6 address must be in brackets");
        }
        (host, port)
    };
    if host.is_empty() {
        return bad("no host");
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("space or control character in the host");
    }
    let Ok(port) = port.parse::<u16>() else {
        return bad("the port is not a number from 1 to 65535");
    };
    if port == 0 {
        return bad("port 0");
    }
    Ok(Scheme::Udp {
        host: host.to_owned(),
        port,
    })
}

/// The first of at most [`ADDRESSES_MAX`] addresses of `host` whose family
/// matches the bind address (any family without one).
fn resolve(host: &str, port: u16, bind: &BindOptions) -> Result<SocketAddr, AttemptError> {
    let want_v6 = bind.address.map(|a| a.is_ipv6());
    let family = match want_v6 {
        Some(true) => "IPv6",
        Some(false) => "IPv4",
        None => "IPv4 or IPv6",
    };
    let found = (host, port)
        .to_socket_addrs()
        .map_err(|source| AttemptError::Resolve {
            host: host.to_owned(),
            source,
        })?
        .take(ADDRESSES_MAX)
        .find(|a| want_v6.is_none_or(|v6| a.is_ipv6() == v6));
    found.ok_or_else(|| AttemptError::NoAddress {
        host: host.to_owned(),
        family,
    })
}

fn http_announce(
    url: &str,
    req: &AnnounceRequest,
    cx: &AttemptContext<'_>,
) -> Result<AnnounceResponse, AttemptError> {
    let limits = HttpLimits {
        connect_timeout: cx.timeout,
        io_timeout: cx.timeout,
        total_timeout: cx.timeout,
        ..HttpLimits::default()
    };
    let connect = http_client::bound_connector(cx.bind.clone());
    http_client::announce(url, req, &connect, &limits).map_err(|e| match e {
        AnnounceError::Tracker(TrackerError::Failure(words)) => AttemptError::Refused(words),
        other => AttemptError::Http(other),
    })
}

/// A UDP socket for `addr`'s family, bound as the worker says, connected to
/// the tracker (so only its datagrams arrive), blocking.
fn udp_socket_for(addr: SocketAddr, bind: &BindOptions) -> Result<UdpSocket, AttemptError> {
    let any = match addr {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket = sockets::udp_socket(SocketAddr::new(any, 0), bind)?;
    let io = |what| move |source| AttemptError::Io { what, addr, source };
    socket.set_nonblocking(false).map_err(io("set blocking"))?;
    socket.connect(addr).map_err(io("connect"))?;
    Ok(socket)
}

fn udp_announce(
    addr: SocketAddr,
    req: &AnnounceRequest,
    cx: &mut AttemptContext<'_>,
) -> Result<AnnounceResponse, AttemptError> {
    let socket = udp_socket_for(addr, cx.bind)?;
    let io = |what| move |source| AttemptError::Io { what, addr, source };
    let mut session = UdpTrackerSession::with_retries_max(addr.is_ipv6(), RETRIES_MAX);
    let epoch = Instant::now();
    let end = cx.timeout;
    let mut buf = vec![0u8; UDP_DATAGRAM_BYTES_MAX];
    let first_tid = cx.rng.next_u64() as u32;
    let mut step = session.start(
        Duration::ZERO,
        UdpOperation::Announce(req.clone()),
        first_tid,
    );
    for _ in 0..UDP_EVENTS_MAX {
        let retry_at = match step {
            Step::Send { datagram, retry_at } => {
                socket.send(&datagram).map_err(io("send"))?;
                retry_at
            }
            Step::Wait { retry_at } => retry_at,
            Step::Done(UdpOutcome::Announced(response)) => return Ok(response),
            Step::Done(UdpOutcome::Scraped(_)) => {
                return Err(AttemptError::Unexpected {
                    what: "a scrape answer to an announce",
                })
            }
            Step::Failed(TrackerError::Failure(words)) => return Err(AttemptError::Refused(words)),
            Step::Failed(TrackerError::Timeout { .. }) => {
                return Err(AttemptError::Timeout {
                    addr,
                    limit: cx.timeout,
                })
            }
            Step::Failed(e) => return Err(AttemptError::Udp(e)),
            Step::Idle => return Err(AttemptError::Unexpected { what: "idle" }),
        };
        if cx.abandon.load(Ordering::Relaxed) {
            return Err(AttemptError::Abandoned);
        }
        let now = epoch.elapsed();
        if now >= end {
            return Err(AttemptError::Timeout {
                addr,
                limit: cx.timeout,
            });
        }
        let wait = retry_at
            .min(end)
            .saturating_sub(now)
            .clamp(Duration::from_millis(1), POLL_SLICE);
        socket
            .set_read_timeout(Some(wait))
            .map_err(io("set read timeout"))?;
        let tid = cx.rng.next_u64() as u32;
        step = match socket.recv(&mut buf) {
            Ok(n) => session.on_datagram(epoch.elapsed(), buf.get(..n).unwrap_or(&[]), tid),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                session.on_timer(epoch.elapsed(), tid)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Step::Wait { retry_at },
            Err(e) => return Err(io("receive")(e)),
        };
    }
    Err(AttemptError::TooManyEvents {
        addr,
        limit: UDP_EVENTS_MAX,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(host: &str, port: u16) -> Scheme {
        Scheme::Udp {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn schemes_are_recognised_or_refused() {
        assert_eq!(
            scheme_of("http://t.example/announce").unwrap(),
            Scheme::Http
        );
        assert_eq!(scheme_of("HTTP://t.example/a").unwrap(), Scheme::Http);
        assert_eq!(
            scheme_of("https://t.example/announce").unwrap(),
            Scheme::Http
        );
        match scheme_of("wss://t.example/x") {
            Err(e @ AttemptError::UnsupportedScheme { .. }) => {
                assert!(e.to_string().contains("\"wss\""), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            scheme_of("t.example:80"),
            Err(AttemptError::UnsupportedScheme { .. })
        ));
    }

    #[test]
    fn udp_urls_give_host_and_port() {
        assert_eq!(
            scheme_of("udp://t.example:6969/announce").unwrap(),
            udp("t.example", 6969)
        );
        assert_eq!(
            scheme_of("udp://127.0.0.1:80").unwrap(),
            udp("127.0.0.1", 80)
        );
        assert_eq!(scheme_of("UDP://[::1]:1?x#y").unwrap(), udp("::1", 1));
        for bad in [
            "udp://t.example",
            "udp://t.example/announce",
            "udp://:80",
            "udp://t.example:0",
            "udp://t.example:65536",
            "udp://t.example:x",
            "udp://[::1]/a",
            "udp://[::1:80",
            "udp://::1:80",
            "udp://u@t.example:80",
            "udp://t exa:80",
            "udp://",
        ] {
            assert!(
                matches!(scheme_of(bad), Err(AttemptError::BadUdpUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn resolution_follows_the_bind_family() {
        let none = BindOptions::default();
        assert_eq!(
            resolve("127.0.0.1", 80, &none).unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        let v6 = BindOptions {
            interface: None,
            address: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        };
        assert!(matches!(
            resolve("127.0.0.1", 80, &v6),
            Err(AttemptError::NoAddress { family: "IPv6", .. })
        ));
    }

    #[test]
    fn overlong_urls_fail_before_any_traffic() {
        let abandon = AtomicBool::new(false);
        let mut rng = Rng::new(1);
        let mut cx = AttemptContext {
            bind: &BindOptions::default(),
            timeout: Duration::from_secs(1),
            abandon: &abandon,
            rng: &mut rng,
        };
        let url = format!("http://127.0.0.1/{}", "a".repeat(URL_BYTES_MAX));
        let req = AnnounceRequest::new(crate::InfoHash([1; 20]), [2; 20], 1);
        assert!(matches!(
            announce(&url, &req, &mut cx),
            Err(AttemptError::UrlTooLong { .. })
        ));
        abandon.store(true, Ordering::Relaxed);
        assert!(matches!(
            announce("http://127.0.0.1:1/", &req, &mut cx),
            Err(AttemptError::Abandoned)
        ));
    }
}
