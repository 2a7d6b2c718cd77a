//! UDP tracker datagrams (BEP 15), sans-IO: requests encoded into bytes and
//! answers read from bytes. The retry and connection-id logic is in
//! [`UdpTrackerSession`](super::UdpTrackerSession).
//!
//! Layouts (all integers big-endian):
//! - connect request, 16 bytes: protocol id `0x41727101980` (u64), action 0,
//!   transaction id;
//! - connect answer, 16 bytes: action 0, transaction id, connection id (u64);
//! - announce request, 98 bytes: connection id (0), action 1 (8), transaction
//!   id (12), info-hash (16), peer id (36), downloaded (56), left (64), uploaded
//!   (72), event (80), IPv4 address (84), key (88), num_want (92, -1 for the
//!   tracker's default), port (96);
//! - announce answer, 20 bytes and then peers: action 1, transaction id,
//!   interval, leechers, seeders; 6-byte IPv4 peers, or 18-byte IPv6 peers
//!   when the request went over IPv6 (the caller says which);
//! - scrape request, 16 + 20·n bytes (1 ≤ n ≤ [`SCRAPE_HASHES_MAX`]); answer
//!   8 + 12·n bytes: seeders, completed, leechers per hash, in request order
//!   (a tracker may send fewer; we read what came);
//! - error answer: action 3, transaction id, message text.
//!
//! Every answer is checked for its transaction id first, then its action; an
//! error answer (action 3) with our transaction id becomes
//! [`TrackerError::Failure`] carrying the tracker's text. Counts the tracker
//! sends as negative numbers read as unknown (announce) or 0 (scrape); the
//! interval is clamped like HTTP's. The `ip` field carries `req.ip` when it is
//! IPv4, else 0; `key` is 0 when `req.key` is `None`.

use std::net::IpAddr;

use super::announce::{clamp_interval, sanitize_message};
use super::peers::PeerCollector;
use super::{AnnounceRequest, AnnounceResponse, ScrapeStats, TrackerError};
use crate::InfoHash;

/// The magic constant that opens a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// Size of a connect request and of its answer, in bytes.
pub const CONNECT_BYTES: usize = 16;
/// Size of an announce request, in bytes.
pub const ANNOUNCE_REQUEST_BYTES: usize = 98;
/// Size of an announce answer before its peers, in bytes.
pub const ANNOUNCE_HEADER_BYTES: usize = 20;
/// Most info-hashes in one scrape request (BEP 15: about 74 fit a packet).
pub const SCRAPE_HASHES_MAX: usize = 74;
/// Size of an answer's action and transaction id, in bytes.
pub const RESPONSE_HEADER_BYTES: usize = 8;

pub const ACTION_CONNECT: u32 = 0;
pub const ACTION_ANNOUNCE: u32 = 1;
pub const ACTION_SCRAPE: u32 = 2;
pub const ACTION_ERROR: u32 = 3;

/// The connect request.
pub fn encode_connect(transaction_id: u32) -> [u8; CONNECT_BYTES] {
    let mut out = [0u8; CONNECT_BYTES];
    out[..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
    out[8..12].copy_from_slice(&ACTION_CONNECT.to_be_bytes());
    out[12..16].copy_from_slice(&transaction_id.to_be_bytes());
    out
}

/// The announce request.
pub fn encode_announce(
    connection_id: u64,
    transaction_id: u32,
    req: &AnnounceRequest,
) -> [u8; ANNOUNCE_REQUEST_BYTES] {
    let mut out = [0u8; ANNOUNCE_REQUEST_BYTES];
    out[0..8].copy_from_slice(&connection_id.to_be_bytes());
    out[8..12].copy_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
    out[12..16].copy_from_slice(&transaction_id.to_be_bytes());
    out[16..36].copy_from_slice(&req.info_hash.0);
    out[36..56].copy_from_slice(&req.peer_id);
    out[56..64].copy_from_slice(&req.downloaded.to_be_bytes());
    out[64..72].copy_from_slice(&req.left.to_be_bytes());
    out[72..80].copy_from_slice(&req.uploaded.to_be_bytes());
    let event = req.event.map_or(0, |e| e.udp_code());
    out[80..84].copy_from_slice(&event.to_be_bytes());
    let ip = match req.ip {
        Some(IpAddr::V4(v4)) => v4.octets(),
        _ => [0; 4],
    };
    out[84..88].copy_from_slice(&ip);
    out[88..92].copy_from_slice(&req.key.unwrap_or(0).to_be_bytes());
    let num_want: i32 = req
        .numwant
        .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX));
    out[92..96].copy_from_slice(&num_want.to_be_bytes());
    out[96..98].copy_from_slice(&req.port.to_be_bytes());
    out
}

/// The scrape request for 1 to [`SCRAPE_HASHES_MAX`] torrents.
pub fn encode_scrape(
    connection_id: u64,
    transaction_id: u32,
    hashes: &[InfoHash],
) -> Result<Vec<u8>, TrackerError> {
    if hashes.is_empty() || hashes.len() > SCRAPE_HASHES_MAX {
        return Err(TrackerError::ScrapeHashCount {
            count: hashes.len(),
            limit: SCRAPE_HASHES_MAX,
        });
    }
    let mut out = Vec::with_capacity(16 + 20 * hashes.len());
    out.extend_from_slice(&connection_id.to_be_bytes());
    out.extend_from_slice(&ACTION_SCRAPE.to_be_bytes());
    out.extend_from_slice(&transaction_id.to_be_bytes());
    for h in hashes {
        out.extend_from_slice(&h.0);
    }
    Ok(out)
}

fn be_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

fn be_u64(buf: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = buf.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// Checks an answer's transaction id and action, and turns an error answer
/// into [`TrackerError::Failure`]. Returns the bytes after the 8-byte header.
fn check_header<'a>(
    datagram: &'a [u8],
    what: &'static str,
    action: u32,
    transaction_id: u32,
    min: usize,
) -> Result<&'a [u8], TrackerError> {
    let too_short = |min| TrackerError::DatagramTooShort {
        what,
        length: datagram.len(),
        min,
    };
    let (Some(found_action), Some(found_tid)) = (be_u32(datagram, 0), be_u32(datagram, 4)) else {
        return Err(too_short(RESPONSE_HEADER_BYTES));
    };
    if found_tid != transaction_id {
        return Err(TrackerError::TransactionMismatch {
            expected: transaction_id,
            found: found_tid,
        });
    }
    let rest = datagram.get(RESPONSE_HEADER_BYTES..).unwrap_or_default();
    if found_action == ACTION_ERROR {
        return Err(TrackerError::Failure(sanitize_message(rest)));
    }
    if found_action != action {
        return Err(TrackerError::UnexpectedAction {
            what,
            expected: action,
            found: found_action,
        });
    }
    if datagram.len() < min {
        return Err(too_short(min));
    }
    Ok(rest)
}

/// Reads a connect answer; returns the connection id.
pub fn parse_connect_response(datagram: &[u8], transaction_id: u32) -> Result<u64, TrackerError> {
    let rest = check_header(
        datagram,
        "connect answer",
        ACTION_CONNECT,
        transaction_id,
        CONNECT_BYTES,
    )?;
    be_u64(rest, 0).ok_or(TrackerError::DatagramTooShort {
        what: "connect answer",
        length: datagram.len(),
        min: CONNECT_BYTES,
    })
}

/// Reads an announce answer. `ipv6` says the request went over IPv6, so the
/// peers are 18 bytes each; otherwise 6.
pub fn parse_announce_response(
    datagram: &[u8],
    transaction_id: u32,
    ipv6: bool,
) -> Result<AnnounceResponse, TrackerError> {
    let what = "announce answer";
    check_header(
        datagram,
        what,
        ACTION_ANNOUNCE,
        transaction_id,
        ANNOUNCE_HEADER_BYTES,
    )?;
    let field = |at| {
        be_u32(datagram, at).ok_or(TrackerError::DatagramTooShort {
            what,
            length: datagram.len(),
            min: ANNOUNCE_HEADER_BYTES,
        })
    };
    // Fields are signed 32-bit on the wire.
    let interval = i64::from(field(8)? as i32);
    let leechers = u32::try_from(field(12)? as i32).ok();
    let seeders = u32::try_from(field(16)? as i32).ok();
    let mut peers = PeerCollector::default();
    let peer_bytes = datagram.get(ANNOUNCE_HEADER_BYTES..).unwrap_or_default();
    peers.push_compact(peer_bytes, ipv6, "peers", ANNOUNCE_HEADER_BYTES)?;
    Ok(AnnounceResponse {
        interval: clamp_interval(interval),
        complete: seeders,
        incomplete: leechers,
        peers: peers.peers,
        peers_skipped: peers.skipped,
        peers_over_limit: peers.over_limit,
        ..AnnounceResponse::default()
    })
}

/// Reads a scrape answer for the `hashes` that were asked, in that order. A
/// tracker may answer for fewer; trailing bytes that do not make a whole
/// 12-byte entry are ignored.
pub fn parse_scrape_response(
    datagram: &[u8],
    transaction_id: u32,
    hashes: &[InfoHash],
) -> Result<Vec<(InfoHash, ScrapeStats)>, TrackerError> {
    let rest = check_header(
        datagram,
        "scrape answer",
        ACTION_SCRAPE,
        transaction_id,
        RESPONSE_HEADER_BYTES,
    )?;
    let count = |v: u32| u32::try_from(v as i32).unwrap_or(0);
    Ok(rest
        .chunks_exact(12)
        .zip(hashes)
        .map(|(entry, hash)| {
            let seeders = be_u32(entry, 0).unwrap_or(0);
            let completed = be_u32(entry, 4).unwrap_or(0);
            let leechers = be_u32(entry, 8).unwrap_or(0);
            (
                *hash,
                ScrapeStats {
                    complete: count(seeders),
                    downloaded: count(completed),
                    incomplete: count(leechers),
                },
            )
        })
        .collect())
}

/// Reads an error answer (action 3) with our transaction id: the tracker's
/// message, sanitised. Any other datagram is an error saying why it is not one.
pub fn parse_error_response(datagram: &[u8], transaction_id: u32) -> Result<String, TrackerError> {
    match check_header(
        datagram,
        "error answer",
        ACTION_ERROR,
        transaction_id,
        RESPONSE_HEADER_BYTES,
    ) {
        Err(TrackerError::Failure(message)) => Ok(message),
        Err(e) => Err(e),
        Ok(_) => Err(TrackerError::UnexpectedAction {
            what: "error answer",
            expected: ACTION_ERROR,
            found: ACTION_ERROR,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::Event;
    use std::net::SocketAddr;
    use std::time::Duration;

    fn request() -> AnnounceRequest {
        AnnounceRequest {
            uploaded: 0x0102_0304_0506_0708,
            downloaded: 0x1112_1314_1516_1718,
            left: 0x2122_2324_2526_2728,
            event: Some(Event::Stopped),
            key: Some(0xfeed_f00d),
            ..AnnounceRequest::new(InfoHash([0xab; 20]), [0xcd; 20], 0x1ae1)
        }
    }

    fn header(action: u32, tid: u32) -> Vec<u8> {
        let mut v = action.to_be_bytes().to_vec();
        v.extend_from_slice(&tid.to_be_bytes());
        v
    }

    #[test]
    fn connect_request_layout() {
        let d = encode_connect(0x1234_5678);
        assert_eq!(
            d,
            [0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]
        );
    }

    #[test]
    fn connect_response() {
        let mut d = header(0, 7);
        d.extend_from_slice(&0xaabb_ccdd_eeff_0011u64.to_be_bytes());
        assert_eq!(parse_connect_response(&d, 7), Ok(0xaabb_ccdd_eeff_0011));
        assert_eq!(
            parse_connect_response(&d, 8),
            Err(TrackerError::TransactionMismatch {
                expected: 8,
                found: 7
            })
        );
        assert_eq!(
            parse_connect_response(&d[..15], 7),
            Err(TrackerError::DatagramTooShort {
                what: "connect answer",
                length: 15,
                min: 16
            })
        );
        assert!(matches!(
            parse_connect_response(&d[..7], 7),
            Err(TrackerError::DatagramTooShort { min: 8, .. })
        ));
        let mut wrong = header(1, 7);
        wrong.extend_from_slice(&[0; 8]);
        assert_eq!(
            parse_connect_response(&wrong, 7),
            Err(TrackerError::UnexpectedAction {
                what: "connect answer",
                expected: 0,
                found: 1
            })
        );
    }

    #[test]
    fn announce_request_layout() {
        let d = encode_announce(0x0102_0304_0506_0708, 0x0a0b_0c0d, &request());
        assert_eq!(d.len(), 98);
        assert_eq!(&d[0..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&d[8..12], &[0, 0, 0, 1]);
        assert_eq!(&d[12..16], &[0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(&d[16..36], &[0xab; 20]);
        assert_eq!(&d[36..56], &[0xcd; 20]);
        assert_eq!(&d[56..64], &0x1112_1314_1516_1718u64.to_be_bytes());
        assert_eq!(&d[64..72], &0x2122_2324_2526_2728u64.to_be_bytes());
        assert_eq!(&d[72..80], &0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(&d[80..84], &[0, 0, 0, 3]);
        assert_eq!(&d[84..88], &[0, 0, 0, 0]);
        assert_eq!(&d[88..92], &[0xfe, 0xed, 0xf0, 0x0d]);
        assert_eq!(&d[92..96], &[0xff; 4]);
        assert_eq!(&d[96..98], &[0x1a, 0xe1]);

        let mut r = request();
        r.event = None;
        r.numwant = Some(u32::MAX);
        r.key = None;
        r.ip = Some("10.1.2.3".parse().unwrap());
        let d = encode_announce(0, 0, &r);
        assert_eq!(&d[80..84], &[0, 0, 0, 0]);
        assert_eq!(&d[84..88], &[10, 1, 2, 3]);
        assert_eq!(&d[88..92], &[0, 0, 0, 0]);
        assert_eq!(&d[92..96], &i32::MAX.to_be_bytes());
        r.ip = Some("::1".parse().unwrap());
        r.numwant = Some(30);
        let d = encode_announce(0, 0, &r);
        assert_eq!(&d[84..88], &[0, 0, 0, 0]);
        assert_eq!(&d[92..96], &[0, 0, 0, 30]);
        r.event = Some(Event::Started);
        assert_eq!(&encode_announce(0, 0, &r)[80..84], &[0, 0, 0, 2]);
        r.event = Some(Event::Completed);
        assert_eq!(&encode_announce(0, 0, &r)[80..84], &[0, 0, 0, 1]);
    }

    #[test]
    fn announce_response_v4_and_v6() {
        let mut d = header(1, 9);
        d.extend_from_slice(&1800u32.to_be_bytes());
        d.extend_from_slice(&4u32.to_be_bytes());
        d.extend_from_slice(&6u32.to_be_bytes());
        let mut v4 = d.clone();
        v4.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1, 1, 1, 1, 1, 0, 0]);
        let r = parse_announce_response(&v4, 9, false).unwrap();
        assert_eq!(r.interval, Duration::from_secs(1800));
        assert_eq!(r.incomplete, Some(4));
        assert_eq!(r.complete, Some(6));
        assert_eq!(
            r.peers,
            vec!["127.0.0.1:6881".parse::<SocketAddr>().unwrap()]
        );
        assert_eq!(r.peers_skipped, 1);

        // The same 12 bytes are not a whole number of IPv6 peers.
        assert_eq!(
            parse_announce_response(&v4, 9, true),
            Err(TrackerError::CompactLength {
                key: "peers",
                offset: 20,
                length: 12,
                unit: 18
            })
        );
        let mut v6 = d.clone();
        let mut p = [0u8; 18];
        p[15] = 1;
        p[17] = 80;
        v6.extend_from_slice(&p);
        let r = parse_announce_response(&v6, 9, true).unwrap();
        assert_eq!(r.peers, vec!["[::1]:80".parse::<SocketAddr>().unwrap()]);

        // No peers at all is fine.
        assert!(parse_announce_response(&d, 9, false)
            .unwrap()
            .peers
            .is_empty());
    }

    #[test]
    fn announce_response_errors() {
        let mut d = header(1, 9);
        d.extend_from_slice(&[0xff; 12]);
        // Negative counts read as unknown, a negative interval as the floor.
        let r = parse_announce_response(&d, 9, false).unwrap();
        assert_eq!((r.complete, r.incomplete), (None, None));
        assert_eq!(r.interval, crate::tracker::INTERVAL_FLOOR);
        assert_eq!(
            parse_announce_response(&d[..19], 9, false),
            Err(TrackerError::DatagramTooShort {
                what: "announce answer",
                length: 19,
                min: 20
            })
        );
        assert!(matches!(
            parse_announce_response(&d, 10, false),
            Err(TrackerError::TransactionMismatch { .. })
        ));
        assert!(matches!(
            parse_announce_response(&[], 10, false),
            Err(TrackerError::DatagramTooShort { length: 0, .. })
        ));
    }

    #[test]
    fn error_action_carries_the_message() {
        let mut d = header(3, 5);
        d.extend_from_slice(b"unregistered torrent");
        let want = TrackerError::Failure("unregistered torrent".to_string());
        assert_eq!(parse_announce_response(&d, 5, false), Err(want.clone()));
        assert_eq!(parse_connect_response(&d, 5), Err(want.clone()));
        assert_eq!(parse_scrape_response(&d, 5, &[]), Err(want));
        assert_eq!(
            parse_error_response(&d, 5),
            Ok("unregistered torrent".to_string())
        );
        // Even an error must carry our transaction id.
        assert!(matches!(
            parse_error_response(&d, 6),
            Err(TrackerError::TransactionMismatch { .. })
        ));
        assert!(matches!(
            parse_error_response(&header(3, 5), 5),
            Ok(m) if m.is_empty()
        ));
        assert!(matches!(
            parse_error_response(&header(1, 5), 5),
            Err(TrackerError::UnexpectedAction { .. })
        ));
    }

    #[test]
    fn scrape_request_and_response() {
        let hashes = [InfoHash([1; 20]), InfoHash([2; 20])];
        let d = encode_scrape(0x55, 0x66, &hashes).unwrap();
        assert_eq!(d.len(), 16 + 40);
        assert_eq!(&d[0..8], &0x55u64.to_be_bytes());
        assert_eq!(&d[8..12], &[0, 0, 0, 2]);
        assert_eq!(&d[12..16], &[0, 0, 0, 0x66]);
        assert_eq!(&d[16..36], &[1; 20]);
        assert_eq!(&d[36..56], &[2; 20]);
        assert_eq!(
            encode_scrape(0, 0, &[]),
            Err(TrackerError::ScrapeHashCount {
                count: 0,
                limit: 74
            })
        );
        let many = vec![InfoHash::default(); SCRAPE_HASHES_MAX + 1];
        assert!(encode_scrape(0, 0, &many).is_err());
        assert_eq!(
            encode_scrape(0, 0, &many[..SCRAPE_HASHES_MAX])
                .unwrap()
                .len(),
            16 + 20 * SCRAPE_HASHES_MAX
        );

        let mut r = header(2, 0x66);
        for v in [5u32, 50, 10] {
            r.extend_from_slice(&v.to_be_bytes());
        }
        r.extend_from_slice(&[0, 0, 0]); // a partial second entry: ignored
        let got = parse_scrape_response(&r, 0x66, &hashes).unwrap();
        assert_eq!(
            got,
            vec![(
                hashes[0],
                ScrapeStats {
                    complete: 5,
                    downloaded: 50,
                    incomplete: 10
                }
            )]
        );
        assert!(matches!(
            parse_scrape_response(&r, 0x67, &hashes),
            Err(TrackerError::TransactionMismatch { .. })
        ));
        assert!(matches!(
            parse_scrape_response(&r[..5], 0x66, &hashes),
            Err(TrackerError::DatagramTooShort { .. })
        ));
    }
}
