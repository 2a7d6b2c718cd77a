//! `UdpTrackerSession`: the BEP 15 exchange with one UDP tracker as a sans-IO
//! state machine. The caller owns the socket and the clock: it sends the
//! datagrams this returns, feeds back what arrives, and calls
//! [`UdpTrackerSession::on_timer`] when the retry time it was given is reached.
//!
//! Time is a `now: Duration` since any fixed, monotonic epoch the caller picks
//! (for example an `Instant` taken at start-up); it is only compared and
//! added to. Transaction ids are random values the caller passes in; one is
//! used only when a new request (not a retransmission) is written.
//!
//! Rules, decided on purpose:
//! - a connection id is used for [`CONNECTION_ID_TTL`] (60 s) after its
//!   answer arrived and is kept across operations; after that, or after the
//!   tracker sends an error, the next request connects first;
//! - an unanswered request is sent again after 15·2ⁿ seconds, n counting every
//!   retransmission of the operation (connects and requests together, never
//!   reset, so a tracker that answers connects but never announces still ends),
//!   up to n = `retries_max` (at most [`RETRIES_MAX`] = 8, as BEP 15 says);
//!   after the last wait the operation fails with [`TrackerError::Timeout`];
//! - a retransmission reuses the request's transaction id (a late answer to
//!   an earlier copy still counts); if the connection id expired meanwhile, it
//!   reconnects instead;
//! - datagrams with another transaction id, or too short to carry one, are
//!   ignored (anyone can send us datagrams); an answer with our transaction id
//!   that is malformed or an error ends the operation with that error;
//! - one operation at a time: [`UdpTrackerSession::start`] replaces any
//!   operation in progress.

use std::time::Duration;

use super::{udp, AnnounceRequest, AnnounceResponse, ScrapeStats, TrackerError};
use crate::InfoHash;

/// How long a connection id may be used after it arrived (BEP 15).
pub const CONNECTION_ID_TTL: Duration = Duration::from_secs(60);
/// The first retry wait, doubled on each retransmission (BEP 15).
pub const RETRY_BASE: Duration = Duration::from_secs(15);
/// Most retransmissions of one operation, the n of 15·2ⁿ (BEP 15).
pub const RETRIES_MAX: u32 = 8;

/// What to ask the tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpOperation {
    Announce(AnnounceRequest),
    /// 1 to [`udp::SCRAPE_HASHES_MAX`] torrents.
    Scrape(Vec<InfoHash>),
}

/// What the tracker answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpOutcome {
    Announced(AnnounceResponse),
    Scraped(Vec<(InfoHash, ScrapeStats)>),
}

/// What the caller should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send `datagram` now; call `on_timer` at `retry_at` unless an answer
    /// ends the operation first.
    Send {
        datagram: Vec<u8>,
        retry_at: Duration,
    },
    /// Nothing to send (a stray datagram or an early timer); the retry time
    /// stays `retry_at`.
    Wait { retry_at: Duration },
    /// The operation finished.
    Done(UdpOutcome),
    /// The operation failed; the session is idle again.
    Failed(TrackerError),
    /// No operation is in progress; the event was ignored.
    Idle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    Requesting,
}

#[derive(Debug, Clone)]
struct InFlight {
    operation: UdpOperation,
    phase: Phase,
    transaction_id: u32,
    /// n: retransmissions so far.
    retries: u32,
    started_at: Duration,
    retry_at: Duration,
}

/// A datagram that was an answer to us.
enum Parsed {
    Connected(u64),
    Finished(UdpOutcome),
}

#[derive(Debug, Clone, Copy)]
struct Connection {
    id: u64,
    received_at: Duration,
}

/// The exchange with one UDP tracker (see the module header).
#[derive(Debug, Clone)]
pub struct UdpTrackerSession {
    ipv6: bool,
    retries_max: u32,
    connection: Option<Connection>,
    in_flight: Option<InFlight>,
}

/// 15·2ⁿ seconds, n at most [`RETRIES_MAX`].
pub fn retry_wait(n: u32) -> Duration {
    RETRY_BASE * (1u32 << n.min(RETRIES_MAX))
}

impl UdpTrackerSession {
    /// A session for a tracker reached over IPv6 (`ipv6`) or IPv4, with BEP
    /// 15's full retry schedule.
    pub fn new(ipv6: bool) -> Self {
        Self::with_retries_max(ipv6, RETRIES_MAX)
    }

    /// As [`new`](Self::new) with fewer retransmissions (clamped to
    /// [`RETRIES_MAX`]); 0 means one try of 15 s.
    pub fn with_retries_max(ipv6: bool, retries_max: u32) -> Self {
        UdpTrackerSession {
            ipv6,
            retries_max: retries_max.min(RETRIES_MAX),
            connection: None,
            in_flight: None,
        }
    }

    /// Whether an operation is in progress.
    pub fn is_busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The connection id, if one is still valid at `now`.
    pub fn connection_id(&self, now: Duration) -> Option<u64> {
        self.connection
            .filter(|c| now.saturating_sub(c.received_at) < CONNECTION_ID_TTL)
            .map(|c| c.id)
    }

    /// Forgets the operation in progress, if any (the connection id stays).
    pub fn cancel(&mut self) {
        self.in_flight = None;
    }

    /// Begins `operation`, replacing any in progress.
    pub fn start(&mut self, now: Duration, operation: UdpOperation, transaction_id: u32) -> Step {
        if let UdpOperation::Scrape(hashes) = &operation {
            if hashes.is_empty() || hashes.len() > udp::SCRAPE_HASHES_MAX {
                self.in_flight = None;
                return Step::Failed(TrackerError::ScrapeHashCount {
                    count: hashes.len(),
                    limit: udp::SCRAPE_HASHES_MAX,
                });
            }
        }
        let phase = if self.connection_id(now).is_some() {
            Phase::Requesting
        } else {
            Phase::Connecting
        };
        self.in_flight = Some(InFlight {
            operation,
            phase,
            transaction_id,
            retries: 0,
            started_at: now,
            retry_at: now.saturating_add(retry_wait(0)),
        });
        self.send_current(now)
    }

    /// The retry time has come (or the caller's timer fired early).
    pub fn on_timer(&mut self, now: Duration, transaction_id: u32) -> Step {
        let retries_max = self.retries_max;
        let Some(f) = self.in_flight.as_mut() else {
            return Step::Idle;
        };
        if now < f.retry_at {
            return Step::Wait {
                retry_at: f.retry_at,
            };
        }
        if f.retries >= retries_max {
            let error = TrackerError::Timeout {
                attempts: f.retries + 1,
                waited: now.saturating_sub(f.started_at),
            };
            self.in_flight = None;
            return Step::Failed(error);
        }
        f.retries += 1;
        f.retry_at = now.saturating_add(retry_wait(f.retries));
        if f.phase == Phase::Requesting && self.connection_id(now).is_none() {
            if let Some(f) = self.in_flight.as_mut() {
                f.phase = Phase::Connecting;
                f.transaction_id = transaction_id;
            }
        }
        self.send_current(now)
    }

    /// A datagram arrived from the tracker's address.
    pub fn on_datagram(&mut self, now: Duration, datagram: &[u8], transaction_id: u32) -> Step {
        let ipv6 = self.ipv6;
        let Some(f) = self.in_flight.as_mut() else {
            return Step::Idle;
        };
        let result = match (f.phase, &f.operation) {
            (Phase::Connecting, _) => {
                udp::parse_connect_response(datagram, f.transaction_id).map(|id| {
                    f.phase = Phase::Requesting;
                    f.transaction_id = transaction_id;
                    f.retry_at = now.saturating_add(retry_wait(f.retries));
                    Parsed::Connected(id)
                })
            }
            (Phase::Requesting, UdpOperation::Announce(_)) => {
                udp::parse_announce_response(datagram, f.transaction_id, ipv6)
                    .map(|r| Parsed::Finished(UdpOutcome::Announced(r)))
            }
            (Phase::Requesting, UdpOperation::Scrape(hashes)) => {
                udp::parse_scrape_response(datagram, f.transaction_id, hashes)
                    .map(|r| Parsed::Finished(UdpOutcome::Scraped(r)))
            }
        };
        match result {
            Ok(Parsed::Finished(outcome)) => {
                self.in_flight = None;
                Step::Done(outcome)
            }
            Ok(Parsed::Connected(connection_id)) => {
                self.connection = Some(Connection {
                    id: connection_id,
                    received_at: now,
                });
                self.send_current(now)
            }
            Err(e) if is_stray(&e) => Step::Wait {
                retry_at: f.retry_at,
            },
            Err(e) => {
                self.in_flight = None;
                // An error answer may mean the connection id is no good.
                self.connection = None;
                Step::Failed(e)
            }
        }
    }

    /// Writes the datagram for the current phase.
    fn send_current(&mut self, now: Duration) -> Step {
        let connection_id = self.connection_id(now);
        let Some(f) = self.in_flight.as_mut() else {
            return Step::Idle;
        };
        if connection_id.is_none() {
            // No valid id (callers switch phase first; this keeps the phase
            // and the datagram in agreement regardless).
            f.phase = Phase::Connecting;
        }
        let datagram = match (f.phase, connection_id, &f.operation) {
            (Phase::Requesting, Some(cid), UdpOperation::Announce(req)) => {
                udp::encode_announce(cid, f.transaction_id, req).to_vec()
            }
            (Phase::Requesting, Some(cid), UdpOperation::Scrape(hashes)) => {
                match udp::encode_scrape(cid, f.transaction_id, hashes) {
                    Ok(d) => d,
                    Err(e) => {
                        self.in_flight = None;
                        return Step::Failed(e);
                    }
                }
            }
            _ => udp::encode_connect(f.transaction_id).to_vec(),
        };
        Step::Send {
            datagram,
            retry_at: f.retry_at,
        }
    }
}

/// Whether a parse error means "not an answer to us" rather than "a bad answer".
fn is_stray(e: &TrackerError) -> bool {
    match e {
        TrackerError::TransactionMismatch { .. } => true,
        TrackerError::DatagramTooShort { length, .. } => *length < udp::RESPONSE_HEADER_BYTES,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::udp::{ACTION_ANNOUNCE, ACTION_CONNECT, ACTION_ERROR, ACTION_SCRAPE};
    use std::net::SocketAddr;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn request() -> AnnounceRequest {
        AnnounceRequest::new(InfoHash([7; 20]), [8; 20], 6881)
    }

    fn answer(action: u32, tid: u32, body: &[u8]) -> Vec<u8> {
        let mut v = action.to_be_bytes().to_vec();
        v.extend_from_slice(&tid.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn connect_answer(tid: u32, cid: u64) -> Vec<u8> {
        answer(ACTION_CONNECT, tid, &cid.to_be_bytes())
    }

    fn announce_answer(tid: u32) -> Vec<u8> {
        let mut body = Vec::new();
        for v in [900u32, 1, 2] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        body.extend_from_slice(&[127, 0, 0, 1, 0, 80]);
        answer(ACTION_ANNOUNCE, tid, &body)
    }

    fn sent(step: &Step) -> (&[u8], Duration) {
        match step {
            Step::Send { datagram, retry_at } => (datagram, *retry_at),
            other => panic!("expected a datagram to send, got {other:?}"),
        }
    }

    fn tid_of(datagram: &[u8]) -> u32 {
        u32::from_be_bytes(datagram[12..16].try_into().unwrap())
    }

    #[test]
    fn connect_then_announce_then_reuse_connection() {
        let mut s = UdpTrackerSession::new(false);
        let step = s.start(S(100), UdpOperation::Announce(request()), 1);
        let (d, retry) = sent(&step);
        assert_eq!(d, udp::encode_connect(1));
        assert_eq!(retry, S(115));
        assert!(s.is_busy());

        let step = s.on_datagram(S(101), &connect_answer(1, 0xc0ffee), 2);
        let (d, retry) = sent(&step);
        assert_eq!(d, udp::encode_announce(0xc0ffee, 2, &request()));
        assert_eq!(retry, S(116));
        assert_eq!(s.connection_id(S(101)), Some(0xc0ffee));

        let step = s.on_datagram(S(102), &announce_answer(2), 3);
        let Step::Done(UdpOutcome::Announced(r)) = step else {
            panic!("expected an announce answer, got {step:?}");
        };
        assert_eq!(r.peers, vec!["127.0.0.1:80".parse::<SocketAddr>().unwrap()]);
        assert_eq!(r.interval, S(900));
        assert!(!s.is_busy());

        // Within 60 s of the connect answer: straight to the request.
        let hashes = vec![InfoHash([7; 20])];
        let step = s.start(S(160), UdpOperation::Scrape(hashes.clone()), 4);
        assert_eq!(
            sent(&step).0,
            udp::encode_scrape(0xc0ffee, 4, &hashes).unwrap()
        );
        let step = s.on_datagram(
            S(161),
            &answer(ACTION_SCRAPE, 4, &[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]),
            5,
        );
        assert_eq!(
            step,
            Step::Done(UdpOutcome::Scraped(vec![(
                hashes[0],
                ScrapeStats {
                    complete: 1,
                    downloaded: 2,
                    incomplete: 3
                }
            )]))
        );

        // 60 s after it: the connection id has expired, connect again.
        assert_eq!(s.connection_id(S(161)), None);
        let step = s.start(S(161), UdpOperation::Announce(request()), 6);
        assert_eq!(sent(&step).0, udp::encode_connect(6));
    }

    #[test]
    fn backoff_doubles_up_to_the_limit_then_times_out() {
        let mut s = UdpTrackerSession::new(false);
        let (_, mut retry) = {
            let step = s.start(S(0), UdpOperation::Announce(request()), 1);
            let (d, r) = sent(&step);
            (d.to_vec(), r)
        };
        assert_eq!(retry, S(15));
        // An early timer changes nothing.
        assert_eq!(s.on_timer(S(14), 9), Step::Wait { retry_at: S(15) });
        let mut waits = vec![];
        for _ in 0..RETRIES_MAX {
            let step = s.on_timer(retry, 9);
            let (d, next) = sent(&step);
            // Still connecting: the same request with the same transaction id.
            assert_eq!(d, udp::encode_connect(1));
            waits.push((next - retry).as_secs());
            retry = next;
        }
        assert_eq!(waits, vec![30, 60, 120, 240, 480, 960, 1920, 3840]);
        let step = s.on_timer(retry, 9);
        assert_eq!(
            step,
            Step::Failed(TrackerError::Timeout {
                attempts: 9,
                waited: S(15 * 511)
            })
        );
        assert!(!s.is_busy());
        assert_eq!(s.on_timer(retry + S(1), 9), Step::Idle);
        assert_eq!(s.on_datagram(retry, &connect_answer(1, 1), 9), Step::Idle);
    }

    #[test]
    fn fewer_retries_when_asked() {
        let mut s = UdpTrackerSession::with_retries_max(false, 0);
        s.start(S(0), UdpOperation::Announce(request()), 1);
        assert!(matches!(
            s.on_timer(S(15), 2),
            Step::Failed(TrackerError::Timeout { attempts: 1, .. })
        ));
        assert_eq!(
            UdpTrackerSession::with_retries_max(false, 99).retries_max,
            RETRIES_MAX
        );
        assert_eq!(retry_wait(20), S(3840));
    }

    #[test]
    fn expired_connection_id_reconnects_on_retry() {
        let mut s = UdpTrackerSession::new(false);
        s.start(S(0), UdpOperation::Announce(request()), 1);
        let step = s.on_datagram(S(1), &connect_answer(1, 77), 2);
        assert_eq!(sent(&step).1, S(16));
        // Retry at 16 s: the id is still fresh, resend the announce as it was.
        let step = s.on_timer(S(16), 3);
        let (d, retry) = sent(&step);
        assert_eq!(d, udp::encode_announce(77, 2, &request()));
        assert_eq!(retry, S(46));
        // Retry at 46 s: still fresh (45 s old).
        let step = s.on_timer(S(46), 4);
        let (_, retry) = sent(&step);
        assert_eq!(retry, S(106));
        // Retry at 106 s: the id is 105 s old, connect again with a new id.
        let step = s.on_timer(S(106), 5);
        let (d, retry) = sent(&step);
        assert_eq!(d, udp::encode_connect(5));
        assert_eq!(retry, S(106 + 120));
        // The connect answer leads to the announce, retries not reset.
        let step = s.on_datagram(S(107), &connect_answer(5, 78), 6);
        let (d, retry) = sent(&step);
        assert_eq!(d, udp::encode_announce(78, 6, &request()));
        assert_eq!(retry, S(107 + 120));
        assert_eq!(tid_of(d), 6);
    }

    #[test]
    fn stray_datagrams_are_ignored() {
        let mut s = UdpTrackerSession::new(false);
        s.start(S(0), UdpOperation::Announce(request()), 1);
        // Another transaction id, even an error, even a valid-looking answer.
        assert_eq!(
            s.on_datagram(S(1), &connect_answer(2, 5), 3),
            Step::Wait { retry_at: S(15) }
        );
        assert_eq!(
            s.on_datagram(S(1), &answer(ACTION_ERROR, 2, b"no"), 3),
            Step::Wait { retry_at: S(15) }
        );
        // Too short to carry a transaction id.
        assert_eq!(
            s.on_datagram(S(1), &[0, 0, 0], 3),
            Step::Wait { retry_at: S(15) }
        );
        assert_eq!(s.on_datagram(S(1), &[], 3), Step::Wait { retry_at: S(15) });
        assert!(s.is_busy());
        // The real answer still works.
        assert!(matches!(
            s.on_datagram(S(2), &connect_answer(1, 5), 3),
            Step::Send { .. }
        ));
    }

    #[test]
    fn bad_answers_with_our_id_fail_the_operation() {
        let mut s = UdpTrackerSession::new(false);
        s.start(S(0), UdpOperation::Announce(request()), 1);
        // Our transaction id but cut short.
        assert_eq!(
            s.on_datagram(S(1), &connect_answer(1, 5)[..12], 2),
            Step::Failed(TrackerError::DatagramTooShort {
                what: "connect answer",
                length: 12,
                min: 16
            })
        );
        assert!(!s.is_busy());

        // An error answer to the announce: the tracker's words, and the
        // connection id is forgotten.
        s.start(S(10), UdpOperation::Announce(request()), 1);
        s.on_datagram(S(11), &connect_answer(1, 5), 2);
        assert_eq!(s.connection_id(S(11)), Some(5));
        assert_eq!(
            s.on_datagram(
                S(12),
                &answer(ACTION_ERROR, 2, b"torrent not registered"),
                3
            ),
            Step::Failed(TrackerError::Failure("torrent not registered".to_string()))
        );
        assert_eq!(s.connection_id(S(12)), None);

        // The wrong action with our id.
        s.start(S(20), UdpOperation::Announce(request()), 1);
        assert!(matches!(
            s.on_datagram(S(21), &answer(ACTION_ANNOUNCE, 1, &[0; 16]), 2),
            Step::Failed(TrackerError::UnexpectedAction { .. })
        ));
    }

    #[test]
    fn ipv6_sessions_read_18_byte_peers() {
        let mut s = UdpTrackerSession::new(true);
        s.start(S(0), UdpOperation::Announce(request()), 1);
        s.on_datagram(S(0), &connect_answer(1, 5), 2);
        let mut body = vec![0, 0, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut p = [0u8; 18];
        p[15] = 1;
        p[17] = 1;
        body.extend_from_slice(&p);
        let step = s.on_datagram(S(0), &answer(ACTION_ANNOUNCE, 2, &body), 3);
        let Step::Done(UdpOutcome::Announced(r)) = step else {
            panic!("expected an answer, got {step:?}");
        };
        assert_eq!(r.peers, vec!["[::1]:1".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn scrape_hash_count_is_checked_up_front() {
        let mut s = UdpTrackerSession::new(false);
        assert_eq!(
            s.start(S(0), UdpOperation::Scrape(vec![]), 1),
            Step::Failed(TrackerError::ScrapeHashCount {
                count: 0,
                limit: 74
            })
        );
        assert!(!s.is_busy());
        let many = vec![InfoHash::default(); 75];
        assert!(matches!(
            s.start(S(0), UdpOperation::Scrape(many), 1),
            Step::Failed(TrackerError::ScrapeHashCount { count: 75, .. })
        ));
    }

    #[test]
    fn times_near_the_end_of_duration_do_not_overflow() {
        let mut s = UdpTrackerSession::new(false);
        let end = Duration::MAX;
        let step = s.start(end, UdpOperation::Announce(request()), 1);
        assert_eq!(sent(&step).1, Duration::MAX);
        assert!(matches!(s.on_timer(end, 2), Step::Send { .. }));
        assert!(matches!(
            s.on_datagram(end, &connect_answer(1, 5), 2),
            Step::Send { .. }
        ));
        // Time going backwards is not a reason to panic either.
        assert!(matches!(s.on_timer(S(0), 3), Step::Wait { .. }));
    }

    #[test]
    fn start_replaces_and_cancel_forgets() {
        let mut s = UdpTrackerSession::new(false);
        s.start(S(0), UdpOperation::Announce(request()), 1);
        s.start(S(1), UdpOperation::Announce(request()), 2);
        // The first operation's answer is now a stray.
        assert_eq!(
            s.on_datagram(S(2), &connect_answer(1, 5), 3),
            Step::Wait { retry_at: S(16) }
        );
        s.cancel();
        assert!(!s.is_busy());
        assert_eq!(s.on_datagram(S(2), &connect_answer(2, 5), 3), Step::Idle);
    }
}
