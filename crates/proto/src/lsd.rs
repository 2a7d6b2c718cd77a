//! Local service discovery (BEP 14): the `BT-SEARCH` message a client
//! multicasts on its LAN to say "I have these torrents on this port", and a
//! sans-IO announcer that decides what to multicast when and turns received
//! messages into peers.
//!
//! Boundary: no socket here. The runtime (`runtime::lsd_worker`) owns the
//! multicast socket, calls [`LsdAnnouncer::poll_transmit`] when
//! [`LsdAnnouncer::next_wakeup`] comes, sends what it returns to the group,
//! and feeds every datagram it reads to [`LsdAnnouncer::handle_datagram`].
//!
//! Decided on purpose:
//! - Writing follows BEP 14 and libtorrent: `BT-SEARCH * HTTP/1.1`, `Host`,
//!   `Port`, one `Infohash` line per torrent (lower-case hex), our `cookie`,
//!   then two empty lines; CRLF line ends. At most
//!   [`LSD_INFOHASHES_PER_MESSAGE_MAX`] info-hashes a message, which keeps it
//!   under [`LSD_DATAGRAM_BYTES_MAX`] (BEP 14's 1400 bytes).
//! - Reading is tolerant: LF or CRLF line ends, header names in any case,
//!   spaces around values, unknown headers and lines without `:` ignored,
//!   `Host` not checked, invalid `Infohash` values skipped, duplicates kept
//!   once; the first `Port` counts. Refused: over [`LSD_RECEIVE_BYTES_MAX`]
//!   bytes, not UTF-8, a first line other than `BT-SEARCH ...`, no valid
//!   `Port` (1 to 65535), no valid `Infohash`. At most
//!   [`LSD_INFOHASHES_PARSED_MAX`] info-hashes are read; more are ignored.
//!   A cookie longer than [`LSD_COOKIE_BYTES_MAX`] is dropped (it cannot be
//!   ours).
//! - The announcer announces each torrent when it is added and then every
//!   [`LSD_ANNOUNCE_INTERVAL`], sends at most one message per
//!   [`LSD_MESSAGE_INTERVAL`] in all, and packs the torrents due (earliest
//!   first) into that message. At most [`LSD_TORRENTS_MAX`] torrents.
//! - Received: a message with our cookie is ours (multicast loops back) and
//!   dropped; so are messages beyond [`LSD_RECEIVED_PER_SECOND_MAX`] a
//!   second, and messages from an address that cannot be dialled (the
//!   unspecified address, which a host sending without a usable source
//!   address produces, multicast, broadcast). Peers are reported only for torrents being announced (those are
//!   the torrents we have and may use LSD for), as the sender's IP with the
//!   message's `Port`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::rng::Rng;
use crate::InfoHash;

/// The UDP port of both groups.
pub const LSD_PORT: u16 = 6771;
/// The IPv4 multicast group.
pub const LSD_IPV4_GROUP: Ipv4Addr = Ipv4Addr::new(239, 192, 152, 143);
/// The IPv6 multicast group (site-local scope).
pub const LSD_IPV6_GROUP: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0xefc0, 0x988f);
/// Longest message we send, in bytes (BEP 14: keep under 1400).
pub const LSD_DATAGRAM_BYTES_MAX: usize = 1400;
/// Longest datagram read, in bytes; a longer one is refused.
pub const LSD_RECEIVE_BYTES_MAX: usize = 2048;
/// Most info-hashes we put in one message.
pub const LSD_INFOHASHES_PER_MESSAGE_MAX: usize = 16;
/// Most info-hashes read from one received message; more are ignored.
pub const LSD_INFOHASHES_PARSED_MAX: usize = 32;
/// Longest cookie kept from a received message, in bytes.
pub const LSD_COOKIE_BYTES_MAX: usize = 64;
/// Bytes of our cookie in hex.
pub const LSD_OWN_COOKIE_HEX_BYTES: usize = 16;
/// Time between two announces of one torrent (BEP 14: at most one per 5 min).
pub const LSD_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Least time between two messages we send, all torrents together.
pub const LSD_MESSAGE_INTERVAL: Duration = Duration::from_secs(1);
/// Most torrents announced at once.
pub const LSD_TORRENTS_MAX: usize = 100_000;
/// Most received datagrams handled per second; more are dropped.
pub const LSD_RECEIVED_PER_SECOND_MAX: u32 = 64;

/// Bytes of one `Infohash` line.
const INFOHASH_LINE_BYTES: usize = "Infohash: \r\n".len() + 40;
/// Bytes of everything else in the longest message we write.
const MESSAGE_FIXED_BYTES_MAX: usize = "BT-SEARCH * HTTP/1.1\r\n".len()
    + "Host: [ff15::efc0:988f]:6771\r\n".len()
    + "Port: 65535\r\n".len()
    + "cookie: \r\n".len()
    + LSD_OWN_COOKIE_HEX_BYTES
    + "\r\n\r\n".len();

const _: () = assert!(
    MESSAGE_FIXED_BYTES_MAX + LSD_INFOHASHES_PER_MESSAGE_MAX * INFOHASH_LINE_BYTES
        <= LSD_DATAGRAM_BYTES_MAX
);
const _: () = assert!(LSD_DATAGRAM_BYTES_MAX <= LSD_RECEIVE_BYTES_MAX);
const _: () = assert!(LSD_INFOHASHES_PER_MESSAGE_MAX <= LSD_INFOHASHES_PARSED_MAX);
const _: () = assert!(LSD_OWN_COOKIE_HEX_BYTES <= LSD_COOKIE_BYTES_MAX);

/// Which group a message is written for (its `Host` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LsdFamily {
    V4,
    V6,
}

impl LsdFamily {
    /// The group's address and port, where messages are sent.
    pub fn group(self) -> SocketAddr {
        match self {
            LsdFamily::V4 => SocketAddr::new(LSD_IPV4_GROUP.into(), LSD_PORT),
            LsdFamily::V6 => SocketAddr::new(LSD_IPV6_GROUP.into(), LSD_PORT),
        }
    }

    fn host(self) -> &'static str {
        match self {
            LsdFamily::V4 => "239.192.152.143:6771",
            LsdFamily::V6 => "[ff15::efc0:988f]:6771",
        }
    }
}

/// Why a received datagram is not an LSD message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LsdParseError {
    #[error("LSD datagram of {len} bytes, over the limit of {limit}")]
    TooLong { len: usize, limit: usize },
    #[error("LSD datagram is not UTF-8 text")]
    NotText,
    #[error("LSD datagram does not start with BT-SEARCH")]
    NotBtSearch,
    #[error("LSD message has no Port header")]
    NoPort,
    #[error("LSD message's Port {value:?} is not a port from 1 to 65535")]
    BadPort { value: String },
    #[error("LSD message has no valid Infohash header")]
    NoInfoHash,
}

/// One `BT-SEARCH` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsdMessage {
    /// The sender's BitTorrent listen port.
    pub port: u16,
    /// The torrents announced.
    pub info_hashes: Vec<InfoHash>,
    /// The sender's cookie, to recognise its own messages.
    pub cookie: Option<String>,
}

impl LsdMessage {
    /// The message as sent to `family`'s group. The caller keeps
    /// `info_hashes` within [`LSD_INFOHASHES_PER_MESSAGE_MAX`] and the cookie
    /// short for the result to fit [`LSD_DATAGRAM_BYTES_MAX`].
    pub fn encode(&self, family: LsdFamily) -> Vec<u8> {
        let mut s = String::with_capacity(LSD_DATAGRAM_BYTES_MAX);
        s.push_str("BT-SEARCH * HTTP/1.1\r\n");
        let _ = write!(s, "Host: {}\r\nPort: {}\r\n", family.host(), self.port);
        for ih in &self.info_hashes {
            let _ = write!(s, "Infohash: {}\r\n", ih.to_hex());
        }
        if let Some(cookie) = &self.cookie {
            let _ = write!(s, "cookie: {cookie}\r\n");
        }
        s.push_str("\r\n\r\n");
        s.into_bytes()
    }

    /// Reads a received datagram (see the module's rules).
    pub fn parse(datagram: &[u8]) -> Result<LsdMessage, LsdParseError> {
        if datagram.len() > LSD_RECEIVE_BYTES_MAX {
            return Err(LsdParseError::TooLong {
                len: datagram.len(),
                limit: LSD_RECEIVE_BYTES_MAX,
            });
        }
        let text = std::str::from_utf8(datagram).map_err(|_| LsdParseError::NotText)?;
        let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
        let first = lines.next().unwrap_or_default();
        let method = first.split_ascii_whitespace().next().unwrap_or_default();
        if !method.eq_ignore_ascii_case("BT-SEARCH") {
            return Err(LsdParseError::NotBtSearch);
        }
        let mut port: Option<Result<u16, String>> = None;
        let mut info_hashes: Vec<InfoHash> = Vec::new();
        let mut cookie = None;
        for line in lines {
            if line.trim().is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("port") {
                if port.is_none() {
                    port = Some(
                        value
                            .parse::<u16>()
                            .ok()
                            .filter(|&p| p != 0)
                            .ok_or_else(|| value.chars().take(16).collect()),
                    );
                }
            } else if name.eq_ignore_ascii_case("infohash") {
                if info_hashes.len() < LSD_INFOHASHES_PARSED_MAX {
                    if let Ok(ih) = InfoHash::from_hex(value) {
                        if !info_hashes.contains(&ih) {
                            info_hashes.push(ih);
                        }
                    }
                }
            } else if name.eq_ignore_ascii_case("cookie")
                && cookie.is_none()
                && !value.is_empty()
                && value.len() <= LSD_COOKIE_BYTES_MAX
            {
                cookie = Some(value.to_string());
            }
        }
        let port = match port {
            None => return Err(LsdParseError::NoPort),
            Some(Err(value)) => return Err(LsdParseError::BadPort { value }),
            Some(Ok(p)) => p,
        };
        if info_hashes.is_empty() {
            return Err(LsdParseError::NoInfoHash);
        }
        Ok(LsdMessage {
            port,
            info_hashes,
            cookie,
        })
    }
}

/// A peer learnt from a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LsdPeer {
    pub info_hash: InfoHash,
    /// The sender's IP with the message's `Port`.
    pub addr: SocketAddr,
}

/// Why a received datagram gave no peers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LsdDropped {
    #[error(transparent)]
    Parse(#[from] LsdParseError),
    #[error("LSD message carries our own cookie")]
    OwnMessage,
    #[error("over {LSD_RECEIVED_PER_SECOND_MAX} LSD datagrams this second")]
    RateLimited,
    #[error("LSD message from {ip}, which cannot be dialled")]
    BadSender { ip: IpAddr },
}

/// Why a torrent could not be announced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LsdAnnounceError {
    #[error("LSD already announces {LSD_TORRENTS_MAX} torrents")]
    TooManyTorrents,
}

/// The sans-IO announcer for one socket (one family).
#[derive(Debug, Clone)]
pub struct LsdAnnouncer {
    family: LsdFamily,
    listen_port: u16,
    cookie: String,
    /// Each torrent's next announce time.
    due: BTreeMap<InfoHash, Duration>,
    /// The same, ordered by time.
    queue: BTreeSet<(Duration, InfoHash)>,
    last_sent: Option<Duration>,
    received_window_start: Duration,
    received_in_window: u32,
}

impl LsdAnnouncer {
    /// An announcer for our BitTorrent `listen_port`, with a random cookie.
    pub fn new(family: LsdFamily, listen_port: u16, rng: &mut Rng) -> Self {
        let mut cookie = String::with_capacity(LSD_OWN_COOKIE_HEX_BYTES);
        let _ = write!(cookie, "{:016x}", rng.next_u64());
        LsdAnnouncer {
            family,
            listen_port,
            cookie,
            due: BTreeMap::new(),
            queue: BTreeSet::new(),
            last_sent: None,
            received_window_start: Duration::ZERO,
            received_in_window: 0,
        }
    }

    /// Our cookie (hex).
    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    /// Torrents being announced.
    pub fn torrents(&self) -> usize {
        self.due.len()
    }

    /// Starts announcing `info_hash`: due now. Already announced: no change.
    pub fn announce(&mut self, info_hash: InfoHash, now: Duration) -> Result<(), LsdAnnounceError> {
        if self.due.contains_key(&info_hash) {
            return Ok(());
        }
        if self.due.len() >= LSD_TORRENTS_MAX {
            return Err(LsdAnnounceError::TooManyTorrents);
        }
        self.due.insert(info_hash, now);
        self.queue.insert((now, info_hash));
        Ok(())
    }

    /// Stops announcing `info_hash`, and reporting peers for it.
    pub fn forget(&mut self, info_hash: InfoHash) {
        if let Some(t) = self.due.remove(&info_hash) {
            self.queue.remove(&(t, info_hash));
        }
    }

    /// When [`Self::poll_transmit`] may next return a message; `None` when
    /// nothing is announced.
    pub fn next_wakeup(&self) -> Option<Duration> {
        let (first, _) = self.queue.first()?;
        let allowed = self
            .last_sent
            .map_or(Duration::ZERO, |t| t.saturating_add(LSD_MESSAGE_INTERVAL));
        Some((*first).max(allowed))
    }

    /// The message to send to the group now, if any.
    pub fn poll_transmit(&mut self, now: Duration) -> Option<Vec<u8>> {
        if self
            .last_sent
            .is_some_and(|t| now < t.saturating_add(LSD_MESSAGE_INTERVAL))
        {
            return None;
        }
        let mut info_hashes = Vec::new();
        while info_hashes.len() < LSD_INFOHASHES_PER_MESSAGE_MAX {
            let Some(&(t, ih)) = self.queue.first() else {
                break;
            };
            if t > now {
                break;
            }
            self.queue.remove(&(t, ih));
            let next = now.saturating_add(LSD_ANNOUNCE_INTERVAL);
            self.queue.insert((next, ih));
            self.due.insert(ih, next);
            info_hashes.push(ih);
        }
        if info_hashes.is_empty() {
            return None;
        }
        self.last_sent = Some(now);
        let msg = LsdMessage {
            port: self.listen_port,
            info_hashes,
            cookie: Some(self.cookie.clone()),
        };
        Some(msg.encode(self.family))
    }

    /// Reads a datagram from `from`: the peers it announces for our torrents.
    pub fn handle_datagram(
        &mut self,
        now: Duration,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<Vec<LsdPeer>, LsdDropped> {
        if now
            >= self
                .received_window_start
                .saturating_add(Duration::from_secs(1))
        {
            self.received_window_start = now;
            self.received_in_window = 0;
        }
        if self.received_in_window >= LSD_RECEIVED_PER_SECOND_MAX {
            return Err(LsdDropped::RateLimited);
        }
        self.received_in_window += 1;
        let msg = LsdMessage::parse(datagram)?;
        if msg.cookie.as_deref() == Some(self.cookie.as_str()) {
            return Err(LsdDropped::OwnMessage);
        }
        let ip = from.ip();
        let undialable = match ip {
            IpAddr::V4(a) => a.is_unspecified() || a.is_multicast() || a.is_broadcast(),
            IpAddr::V6(a) => a.is_unspecified() || a.is_multicast(),
        };
        if undialable {
            return Err(LsdDropped::BadSender { ip });
        }
        let addr = SocketAddr::new(ip, msg.port);
        Ok(msg
            .info_hashes
            .into_iter()
            .filter(|ih| self.due.contains_key(ih))
            .map(|info_hash| LsdPeer { info_hash, addr })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: u64 = 0x1d5_5eed;

    fn ih(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    fn from(last: u8) -> SocketAddr {
        SocketAddr::new(Ipv4Addr::new(127, 0, 132, last).into(), LSD_PORT)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn announcer() -> LsdAnnouncer {
        println!("seed {SEED:#x}");
        LsdAnnouncer::new(LsdFamily::V4, 6881, &mut Rng::new(SEED))
    }

    #[test]
    fn encode_matches_bep14_and_round_trips() {
        let msg = LsdMessage {
            port: 6881,
            info_hashes: vec![ih(0xab), ih(0x01)],
            cookie: Some("c0ffee".into()),
        };
        let bytes = msg.encode(LsdFamily::V4);
        let text = String::from_utf8(bytes.clone()).unwrap();
        let ab = "ab".repeat(20);
        let one = "01".repeat(20);
        assert_eq!(
            text,
            format!(
                "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n\
                 Infohash: {ab}\r\nInfohash: {one}\r\ncookie: c0ffee\r\n\r\n\r\n"
            )
        );
        assert_eq!(LsdMessage::parse(&bytes).unwrap(), msg);
        let v6 = String::from_utf8(msg.encode(LsdFamily::V6)).unwrap();
        assert!(v6.contains("\r\nHost: [ff15::efc0:988f]:6771\r\n"));
        assert_eq!(LsdMessage::parse(v6.as_bytes()).unwrap(), msg);
        assert_eq!(
            LsdFamily::V6.group(),
            "[ff15::efc0:988f]:6771".parse().unwrap()
        );
        assert_eq!(
            LsdFamily::V4.group(),
            "239.192.152.143:6771".parse().unwrap()
        );
    }

    #[test]
    fn largest_message_fits_the_datagram_limit() {
        let msg = LsdMessage {
            port: 65535,
            info_hashes: (0..LSD_INFOHASHES_PER_MESSAGE_MAX as u8).map(ih).collect(),
            cookie: Some("f".repeat(LSD_OWN_COOKIE_HEX_BYTES)),
        };
        let n = msg.encode(LsdFamily::V6).len();
        assert!(n <= LSD_DATAGRAM_BYTES_MAX, "{n} bytes");
    }

    #[test]
    fn parse_is_tolerant() {
        let hex_upper = "AB".repeat(20);
        let text = format!(
            "bt-search * HTTP/1.0\nHOST: anything\nX-Other: 1\nno colon here\n\
             infohash:   {hex_upper}  \nInfohash: nothex\nInfohash: {hex_upper}\n\
             PORT:  7000 \nPort: 1\nCookie: xyz\n\nInfohash: {}\n",
            "cd".repeat(20)
        );
        let msg = LsdMessage::parse(text.as_bytes()).unwrap();
        assert_eq!(msg.port, 7000);
        // Invalid skipped, duplicate once, lines after the blank line not read.
        assert_eq!(msg.info_hashes, vec![ih(0xab)]);
        assert_eq!(msg.cookie.as_deref(), Some("xyz"));
        // No cookie; a cookie too long to be anyone's is dropped.
        let long = format!(
            "BT-SEARCH * HTTP/1.1\r\nPort: 2\r\nInfohash: {}\r\ncookie: {}\r\n",
            "00".repeat(20),
            "c".repeat(LSD_COOKIE_BYTES_MAX + 1)
        );
        assert_eq!(LsdMessage::parse(long.as_bytes()).unwrap().cookie, None);
    }

    #[test]
    fn parse_reads_at_most_the_limit_of_info_hashes() {
        let mut text = String::from("BT-SEARCH * HTTP/1.1\r\nPort: 6881\r\n");
        for i in 0..(LSD_INFOHASHES_PARSED_MAX + 5) {
            text.push_str(&format!(
                "Infohash: {}\r\n",
                InfoHash([i as u8; 20]).to_hex()
            ));
        }
        let msg = LsdMessage::parse(text.as_bytes()).unwrap();
        assert_eq!(msg.info_hashes.len(), LSD_INFOHASHES_PARSED_MAX);
    }

    #[test]
    fn malformed_messages_are_refused_with_the_reason() {
        let ihl = format!("Infohash: {}\r\n", "00".repeat(20));
        let cases: Vec<(Vec<u8>, LsdParseError)> = vec![
            (
                vec![b'a'; LSD_RECEIVE_BYTES_MAX + 1],
                LsdParseError::TooLong {
                    len: LSD_RECEIVE_BYTES_MAX + 1,
                    limit: LSD_RECEIVE_BYTES_MAX,
                },
            ),
            (b"BT-SEARCH \xff\xfe\r\n".to_vec(), LsdParseError::NotText),
            (b"".to_vec(), LsdParseError::NotBtSearch),
            (
                format!("M-SEARCH * HTTP/1.1\r\nPort: 1\r\n{ihl}").into_bytes(),
                LsdParseError::NotBtSearch,
            ),
            (
                format!("BT-SEARCH * HTTP/1.1\r\n{ihl}").into_bytes(),
                LsdParseError::NoPort,
            ),
            (
                format!("BT-SEARCH * HTTP/1.1\r\nPort: 0\r\n{ihl}").into_bytes(),
                LsdParseError::BadPort { value: "0".into() },
            ),
            (
                format!("BT-SEARCH * HTTP/1.1\r\nPort: 65536\r\n{ihl}").into_bytes(),
                LsdParseError::BadPort {
                    value: "65536".into(),
                },
            ),
            (
                b"BT-SEARCH * HTTP/1.1\r\nPort: 6881\r\nInfohash: 1234\r\n".to_vec(),
                LsdParseError::NoInfoHash,
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                LsdMessage::parse(&bytes),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn new_torrents_go_at_once_then_every_five_minutes() {
        let mut a = announcer();
        assert_eq!(a.next_wakeup(), None);
        assert_eq!(a.poll_transmit(secs(0)), None);
        a.announce(ih(1), secs(10)).unwrap();
        assert_eq!(a.next_wakeup(), Some(secs(10)));
        assert_eq!(a.poll_transmit(secs(9)), None);
        let m = LsdMessage::parse(&a.poll_transmit(secs(10)).unwrap()).unwrap();
        assert_eq!(m.info_hashes, vec![ih(1)]);
        assert_eq!(m.port, 6881);
        assert_eq!(m.cookie.as_deref(), Some(a.cookie()));
        assert_eq!(a.next_wakeup(), Some(secs(10) + LSD_ANNOUNCE_INTERVAL));
        assert_eq!(a.poll_transmit(secs(200)), None);
        // Announcing again changes nothing.
        a.announce(ih(1), secs(200)).unwrap();
        assert_eq!(a.poll_transmit(secs(200)), None);
        assert!(a.poll_transmit(secs(10) + LSD_ANNOUNCE_INTERVAL).is_some());
    }

    #[test]
    fn at_most_one_message_a_second_with_several_info_hashes() {
        let mut a = announcer();
        let n = LSD_INFOHASHES_PER_MESSAGE_MAX * 2 + 3;
        for i in 0..n {
            a.announce(ih(i as u8), secs(0)).unwrap();
        }
        let mut sent = BTreeSet::new();
        let mut messages = 0;
        let mut last: Option<Duration> = None;
        // Poll every 100 ms for 10 s.
        for tick in 0..100u64 {
            let now = Duration::from_millis(tick * 100);
            if let Some(bytes) = a.poll_transmit(now) {
                if let Some(l) = last {
                    assert!(
                        now - l >= LSD_MESSAGE_INTERVAL,
                        "two messages within a second"
                    );
                }
                last = Some(now);
                messages += 1;
                let m = LsdMessage::parse(&bytes).unwrap();
                assert!(m.info_hashes.len() <= LSD_INFOHASHES_PER_MESSAGE_MAX);
                assert!(bytes.len() <= LSD_DATAGRAM_BYTES_MAX);
                for h in m.info_hashes {
                    assert!(sent.insert(h), "announced twice within 5 min");
                }
            }
        }
        assert_eq!(messages, 3);
        assert_eq!(sent.len(), n);
        assert_eq!(a.next_wakeup(), Some(LSD_ANNOUNCE_INTERVAL));
    }

    #[test]
    fn next_wakeup_waits_for_the_message_interval() {
        let mut a = announcer();
        a.announce(ih(1), secs(0)).unwrap();
        assert!(a.poll_transmit(secs(0)).is_some());
        a.announce(ih(2), Duration::from_millis(300)).unwrap();
        assert_eq!(a.next_wakeup(), Some(LSD_MESSAGE_INTERVAL));
        assert_eq!(a.poll_transmit(Duration::from_millis(999)), None);
        let m = LsdMessage::parse(&a.poll_transmit(secs(1)).unwrap()).unwrap();
        assert_eq!(m.info_hashes, vec![ih(2)]);
    }

    #[test]
    fn forget_stops_announces_and_peers() {
        let mut a = announcer();
        a.announce(ih(1), secs(0)).unwrap();
        a.announce(ih(2), secs(0)).unwrap();
        a.forget(ih(1));
        a.forget(ih(9));
        assert_eq!(a.torrents(), 1);
        let m = LsdMessage::parse(&a.poll_transmit(secs(0)).unwrap()).unwrap();
        assert_eq!(m.info_hashes, vec![ih(2)]);
        let other = LsdMessage {
            port: 7000,
            info_hashes: vec![ih(1), ih(2), ih(3)],
            cookie: Some("other".into()),
        };
        let peers = a
            .handle_datagram(secs(1), from(9), &other.encode(LsdFamily::V4))
            .unwrap();
        let want = SocketAddr::new(from(9).ip(), 7000);
        assert_eq!(
            peers,
            vec![LsdPeer {
                info_hash: ih(2),
                addr: want
            }]
        );
        a.forget(ih(2));
        assert_eq!(a.next_wakeup(), None);
    }

    #[test]
    fn own_cookie_messages_are_dropped() {
        let mut a = announcer();
        a.announce(ih(1), secs(0)).unwrap();
        let ours = a.poll_transmit(secs(0)).unwrap();
        assert_eq!(
            a.handle_datagram(secs(0), from(1), &ours),
            Err(LsdDropped::OwnMessage)
        );
        // Another announcer (another cookie) with the same torrent is a peer.
        let mut b = LsdAnnouncer::new(LsdFamily::V4, 7001, &mut Rng::new(SEED + 1));
        assert_ne!(a.cookie(), b.cookie());
        b.announce(ih(1), secs(0)).unwrap();
        let theirs = b.poll_transmit(secs(0)).unwrap();
        let peers = a.handle_datagram(secs(0), from(2), &theirs).unwrap();
        assert_eq!(
            peers,
            vec![LsdPeer {
                info_hash: ih(1),
                addr: SocketAddr::new(from(2).ip(), 7001)
            }]
        );
        // No cookie at all: a peer too.
        let plain = LsdMessage {
            port: 7002,
            info_hashes: vec![ih(1)],
            cookie: None,
        };
        assert_eq!(
            a.handle_datagram(secs(0), from(3), &plain.encode(LsdFamily::V4))
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn undialable_senders_are_dropped() {
        let mut a = announcer();
        a.announce(ih(1), secs(0)).unwrap();
        let msg = LsdMessage {
            port: 7000,
            info_hashes: vec![ih(1)],
            cookie: None,
        }
        .encode(LsdFamily::V4);
        for bad in [
            "0.0.0.0:6771",
            "239.192.152.143:6771",
            "255.255.255.255:1",
            "[::]:1",
            "[ff02::1]:1",
        ] {
            let from: SocketAddr = bad.parse().unwrap();
            assert_eq!(
                a.handle_datagram(secs(0), from, &msg),
                Err(LsdDropped::BadSender { ip: from.ip() })
            );
        }
        let ok: SocketAddr = "[fe80::1]:6771".parse().unwrap();
        assert_eq!(
            a.handle_datagram(secs(0), ok, &msg).unwrap()[0].addr,
            "[fe80::1]:7000".parse().unwrap()
        );
    }

    #[test]
    fn received_datagrams_are_rate_limited() {
        let mut a = announcer();
        a.announce(ih(1), secs(0)).unwrap();
        let msg = LsdMessage {
            port: 7000,
            info_hashes: vec![ih(1)],
            cookie: None,
        }
        .encode(LsdFamily::V4);
        for _ in 0..LSD_RECEIVED_PER_SECOND_MAX {
            assert!(a.handle_datagram(secs(5), from(4), &msg).is_ok());
        }
        assert_eq!(
            a.handle_datagram(Duration::from_millis(5999), from(4), &msg),
            Err(LsdDropped::RateLimited)
        );
        // Garbage counts too, and a new second starts afresh.
        assert!(a.handle_datagram(secs(6), from(4), b"junk").is_err());
        assert!(a.handle_datagram(secs(6), from(4), &msg).is_ok());
    }

    #[test]
    fn torrent_count_is_bounded() {
        let mut a = announcer();
        for i in 0..LSD_TORRENTS_MAX as u32 {
            let mut h = [0u8; 20];
            h[..4].copy_from_slice(&i.to_be_bytes());
            a.announce(InfoHash(h), secs(0)).unwrap();
        }
        assert_eq!(
            a.announce(InfoHash([0xff; 20]), secs(0)),
            Err(LsdAnnounceError::TooManyTorrents)
        );
        assert_eq!(a.torrents(), LSD_TORRENTS_MAX);
    }
}
