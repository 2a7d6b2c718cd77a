//! Worker tests against small fake trackers on their own 127.77.0.N
//! addresses: ordering and promotion, refusals, schemes, queue limit and the
//! shutdown deadline (black holes that never answer).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::AtomicUsize;

use super::*;
use crate::tracker::Event;
use crate::InfoHash;

/// Longest any wait in these tests.
const WAIT_MAX: Duration = Duration::from_secs(10);
/// Slack allowed past a shutdown deadline.
const DEADLINE_SLACK: Duration = Duration::from_millis(400);

fn ip(n: u8) -> std::net::IpAddr {
    std::net::IpAddr::from([127, 77, 0, n])
}

fn request() -> AnnounceRequest {
    AnnounceRequest {
        event: Some(Event::Started),
        ..AnnounceRequest::new(InfoHash([3; 20]), [4; 20], 6881)
    }
}

fn config(threads: usize, queue_max: usize, timeout: Duration) -> TrackerWorkerConfig {
    TrackerWorkerConfig {
        threads,
        queue_max,
        timeout,
        ..TrackerWorkerConfig::default()
    }
}

fn job(token: u64, tiers: &[&[&str]]) -> (TrackerJob, Receiver<TrackerReply>) {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let job = TrackerJob {
        token,
        tiers: tiers
            .iter()
            .map(|t| t.iter().map(|u| (*u).to_owned()).collect())
            .collect(),
        request: request(),
        reply: tx,
        wake: None,
    };
    (job, rx)
}

fn wait_reply(rx: &Receiver<TrackerReply>) -> TrackerReply {
    rx.recv_timeout(WAIT_MAX)
        .expect("a reply within the wait limit")
}

/// An HTTP tracker answering every GET with `body`; returns its URL and how
/// many requests it served. Serves until `WAIT_MAX` has passed.
fn fake_http(n: u8, body: &'static [u8]) -> (String, Arc<AtomicUsize>) {
    slow_http(n, body, Duration::ZERO)
}

/// As [`fake_http`], answering each request `delay` after reading it.
fn slow_http(n: u8, body: &'static [u8], delay: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((ip(n), 0)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&served);
    thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < WAIT_MAX {
            let Ok((mut s, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(5));
                continue;
            };
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 16 * 1024 {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => got.extend_from_slice(&buf[..k]),
                }
            }
            // Counted before the answer, so a caller that got it sees the count.
            count.fetch_add(1, Ordering::SeqCst);
            thread::sleep(delay);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(body);
        }
    });
    (format!("http://{addr}/announce"), served)
}

const GOOD_BODY: &[u8] = b"d8:intervali1800e5:peers6:\x7f\x00\x00\x09\x1a\xe1e";
const REFUSAL_BODY: &[u8] = b"d14:failure reason11:go away nowe";

/// A URL on `n` where nothing listens (connections are refused).
fn dead_http(n: u8) -> String {
    let port = TcpListener::bind((ip(n), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://{}:{port}/announce", ip(n))
}

/// A UDP tracker: answers the connect (after a stray datagram), then answers
/// the announce with `answer(transaction_id)`.
fn fake_udp(n: u8, answer: fn(&[u8; 4]) -> Vec<u8>) -> String {
    let socket = UdpSocket::bind((ip(n), 0)).unwrap();
    socket.set_read_timeout(Some(WAIT_MAX)).unwrap();
    let addr = socket.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            return;
        };
        assert_eq!(len, 16, "a connect request");
        let tid: [u8; 4] = buf[12..16].try_into().unwrap();
        // A stray answer (another transaction id) first: ignored.
        let mut stray = vec![0, 0, 0, 0];
        stray.extend_from_slice(&tid.map(|b| !b));
        stray.extend_from_slice(&[9; 8]);
        let _ = socket.send_to(&stray, from);
        let mut connected = vec![0, 0, 0, 0];
        connected.extend_from_slice(&tid);
        connected.extend_from_slice(&[0x42; 8]);
        let _ = socket.send_to(&connected, from);
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            return;
        };
        assert_eq!(len, 98, "an announce request");
        assert_eq!(buf[..8], [0x42; 8], "our connection id");
        let tid: [u8; 4] = buf[12..16].try_into().unwrap();
        let _ = socket.send_to(&answer(&tid), from);
    });
    format!("udp://{addr}/announce")
}

fn udp_peers_answer(tid: &[u8; 4]) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 1];
    v.extend_from_slice(tid);
    v.extend_from_slice(&[0, 0, 7, 8, 0, 0, 0, 1, 0, 0, 0, 2]);
    v.extend_from_slice(&[127, 0, 0, 7, 0x1a, 0xe2]);
    v
}

fn udp_error_answer(tid: &[u8; 4]) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 3];
    v.extend_from_slice(tid);
    v.extend_from_slice(b"not on this tracker\x1b[0m");
    v
}

fn udp_garbage_answer(tid: &[u8; 4]) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 1];
    v.extend_from_slice(tid);
    v.extend_from_slice(&[1, 2, 3]);
    v
}

#[test]
fn config_is_checked() {
    let s = Duration::from_secs(1);
    for (c, want) in [
        (config(0, 1, s), "threads"),
        (config(THREADS_MAX + 1, 1, s), "threads"),
        (config(1, 0, s), "queue"),
        (config(1, QUEUE_MAX_LIMIT + 1, s), "queue"),
        (config(1, 1, Duration::ZERO), "timeout"),
        (config(1, 1, TIMEOUT_MAX + s), "timeout"),
    ] {
        let err = TrackerWorker::start(c).unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
    assert_eq!(TrackerWorkerConfig::default().threads, 4);
    let w = TrackerWorker::start(config(THREADS_MAX, 1, s)).unwrap();
    assert_eq!(
        w.shutdown(Duration::from_secs(1)),
        ShutdownReport::default()
    );
}

#[test]
fn first_answer_wins_and_its_url_goes_first_next_time() {
    let (refuser, refused) = fake_http(1, REFUSAL_BODY);
    let (good, served) = fake_http(2, GOOD_BODY);
    let (other, other_served) = fake_http(3, GOOD_BODY);
    let w = TrackerWorker::start(config(1, 8, Duration::from_secs(5))).unwrap();
    let h = w.handle();
    let tiers: &[&[&str]] = &[&[&dead_http(4), &refuser, &good], &[&other]];
    let (j, rx) = job(7, tiers);
    h.submit(j).unwrap();
    let r = wait_reply(&rx);
    assert_eq!(r.token, 7);
    assert_eq!(r.url.as_deref(), Some(good.as_str()));
    let response = r.outcome.unwrap();
    assert_eq!(
        response.peers,
        vec!["127.0.0.9:6881".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(refused.load(Ordering::SeqCst), 1);
    // Next time the answering URL leads its tier: nobody else is asked.
    let (j, rx) = job(8, tiers);
    h.submit(j).unwrap();
    let r = wait_reply(&rx);
    assert_eq!(r.url.as_deref(), Some(good.as_str()));
    assert_eq!(refused.load(Ordering::SeqCst), 1);
    assert_eq!(served.load(Ordering::SeqCst), 2);
    assert_eq!(other_served.load(Ordering::SeqCst), 0);
    // The last reply may come a moment before its job is counted done.
    assert_eq!(w.shutdown(Duration::from_secs(1)).abandoned, 0);
}

#[test]
fn a_refusal_is_reported_in_the_trackers_words_when_nobody_answers() {
    let (refuser, _) = fake_http(5, REFUSAL_BODY);
    let dead = dead_http(6);
    let w = TrackerWorker::start(config(2, 8, Duration::from_secs(5))).unwrap();
    let (j, rx) = job(1, &[&[&refuser], &[&dead]]);
    w.handle().submit(j).unwrap();
    let r = wait_reply(&rx);
    let failure = r.outcome.unwrap_err();
    assert_eq!(r.url.as_deref(), Some(refuser.as_str()));
    assert_eq!(failure.url, refuser);
    assert!(failure.message.contains("go away now"), "{failure}");
    assert!(failure.message.contains(&refuser), "{failure}");
    // Without a refusal, the last error is reported, naming its tracker.
    let (j, rx) = job(2, &[&[&dead]]);
    w.handle().submit(j).unwrap();
    let failure = wait_reply(&rx).outcome.unwrap_err();
    assert_eq!(failure.url, dead);
    assert!(failure.message.contains(&dead), "{failure}");
    w.shutdown(Duration::from_secs(1));
}

#[test]
fn other_schemes_are_refused_with_a_clear_message() {
    let w = TrackerWorker::start(config(1, 8, Duration::from_secs(1))).unwrap();
    let h = w.handle();
    for (url, words) in [
        // https is tried (over TLS): here nothing listens.
        ("https://127.77.0.7:1/announce", "Connection refused"),
        (
            "wss://127.77.0.7/announce",
            "unsupported tracker URL scheme",
        ),
        ("udp://127.77.0.7", "no port"),
    ] {
        let (j, rx) = job(1, &[&[url]]);
        h.submit(j).unwrap();
        let r = wait_reply(&rx);
        let failure = r.outcome.unwrap_err();
        assert_eq!(r.url.as_deref(), Some(url));
        assert!(failure.message.contains(words), "{failure}");
        assert!(failure.message.contains(url), "{failure}");
    }
    let (j, rx) = job(9, &[&[], &[" "]]);
    h.submit(j).unwrap();
    let r = wait_reply(&rx);
    assert_eq!(r.url, None);
    assert!(r.outcome.unwrap_err().message.contains("no tracker URL"));
    w.shutdown(Duration::from_secs(1));
}

#[test]
fn udp_trackers_answer_refuse_or_send_garbage() {
    let w = TrackerWorker::start(config(3, 8, Duration::from_secs(5))).unwrap();
    let h = w.handle();
    let good = fake_udp(8, udp_peers_answer);
    let refuser = fake_udp(9, udp_error_answer);
    let garbage = fake_udp(10, udp_garbage_answer);
    let (j1, rx1) = job(1, &[&[&good]]);
    let (j2, rx2) = job(2, &[&[&refuser]]);
    let (j3, rx3) = job(3, &[&[&garbage]]);
    for j in [j1, j2, j3] {
        h.submit(j).unwrap();
    }
    let r = wait_reply(&rx1);
    let response = r.outcome.unwrap();
    assert_eq!(
        response.peers,
        vec!["127.0.0.7:6882".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(response.incomplete, Some(1));
    let failure = wait_reply(&rx2).outcome.unwrap_err();
    assert!(
        failure.message.contains("not on this tracker\u{fffd}[0m"),
        "{failure}"
    );
    let failure = wait_reply(&rx3).outcome.unwrap_err();
    assert!(failure.message.contains(&garbage), "{failure}");
    w.shutdown(Duration::from_secs(1));
}

#[test]
fn a_full_queue_gives_the_job_back_and_shutdown_keeps_its_deadline() {
    let hole = UdpSocket::bind((ip(11), 0)).unwrap();
    hole.set_read_timeout(Some(WAIT_MAX)).unwrap();
    let hole_url = format!("udp://{}", hole.local_addr().unwrap());
    let w = TrackerWorker::start(config(1, 1, Duration::from_secs(30))).unwrap();
    let h = w.handle();
    let (j1, rx1) = job(1, &[&[&hole_url]]);
    h.submit(j1).unwrap();
    // The thread has taken job 1 once the black hole hears from it.
    let mut buf = [0u8; 64];
    hole.recv_from(&mut buf).expect("the connect request");
    let (j2, rx2) = job(2, &[&[&hole_url]]);
    h.submit(j2).unwrap();
    let (j3, _rx3) = job(3, &[&[&hole_url]]);
    let back = h.submit(j3).unwrap_err();
    assert_eq!(back.token, 3);

    let deadline = Duration::from_millis(300);
    let start = Instant::now();
    let report = w.shutdown(deadline);
    let took = start.elapsed();
    assert!(
        took >= deadline && took < deadline + DEADLINE_SLACK,
        "{took:?}"
    );
    assert_eq!(
        report,
        ShutdownReport {
            finished: 0,
            abandoned: 2
        }
    );
    // The queued job is answered; the running one gives up within a slice.
    let failure = wait_reply(&rx2).outcome.unwrap_err();
    assert!(failure.message.contains("shut down"), "{failure}");
    let failure = wait_reply(&rx1).outcome.unwrap_err();
    assert!(failure.message.contains("abandoned"), "{failure}");
    // A stopped worker takes nothing.
    let (j4, _rx4) = job(4, &[&[&hole_url]]);
    assert_eq!(h.submit(j4).unwrap_err().token, 4);
}

#[test]
fn shutdown_keeps_its_deadline_with_an_http_tracker_that_never_answers() {
    // Connections complete in the backlog; nothing is ever read or written.
    let hole = TcpListener::bind((ip(12), 0)).unwrap();
    let url = format!("http://{}/announce", hole.local_addr().unwrap());
    let w = TrackerWorker::start(config(2, 4, Duration::from_secs(30))).unwrap();
    let (j, _rx) = job(1, &[&[&url]]);
    w.handle().submit(j).unwrap();
    thread::sleep(Duration::from_millis(100));
    let deadline = Duration::from_millis(300);
    let start = Instant::now();
    let report = w.shutdown(deadline);
    let took = start.elapsed();
    assert!(
        took >= deadline && took < deadline + DEADLINE_SLACK,
        "{took:?}"
    );
    assert_eq!(
        report,
        ShutdownReport {
            finished: 0,
            abandoned: 1
        }
    );
}

#[test]
fn shutdown_lets_queued_jobs_finish_and_wakes_the_caller() {
    // Slow answers, so all three jobs are still pending when shutdown begins.
    let (good, _) = slow_http(13, GOOD_BODY, Duration::from_millis(200));
    let w = TrackerWorker::start(config(1, 8, Duration::from_secs(5))).unwrap();
    let woken = Arc::new(AtomicUsize::new(0));
    let mut receivers = Vec::new();
    for token in 0..3 {
        let (mut j, rx) = job(token, &[&[&good]]);
        j.request.event = Some(Event::Stopped);
        let count = Arc::clone(&woken);
        j.wake = Some(Arc::new(move || {
            count.fetch_add(1, Ordering::SeqCst);
        }));
        w.handle().submit(j).unwrap();
        receivers.push(rx);
    }
    let report = w.shutdown(WAIT_MAX);
    assert_eq!(
        report,
        ShutdownReport {
            finished: 3,
            abandoned: 0
        }
    );
    for (token, rx) in receivers.iter().enumerate() {
        let r = rx.try_recv().expect("replied before shutdown returned");
        assert_eq!(r.token, token as u64);
        assert!(r.outcome.is_ok(), "{r:?}");
    }
    assert_eq!(woken.load(Ordering::SeqCst), 3);
}

#[test]
fn a_dropped_reply_channel_is_not_an_error() {
    let (slow, _) = slow_http(14, GOOD_BODY, Duration::from_millis(200));
    let w = TrackerWorker::start(config(1, 8, Duration::from_secs(5))).unwrap();
    let (j, rx) = job(1, &[&[&slow]]);
    drop(rx);
    w.handle().submit(j).unwrap();
    let report = w.shutdown(WAIT_MAX);
    assert_eq!(
        report,
        ShutdownReport {
            finished: 1,
            abandoned: 0
        }
    );
}

#[test]
fn a_full_reply_channel_costs_at_most_the_reply_wait() {
    let (slow, _) = slow_http(15, GOOD_BODY, Duration::from_millis(200));
    let w = TrackerWorker::start(config(1, 8, Duration::from_secs(5))).unwrap();
    let (mut j, rx) = job(1, &[&[&slow]]);
    let woken = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&woken);
    j.wake = Some(Arc::new(move || {
        count.fetch_add(1, Ordering::SeqCst);
    }));
    // Fill the caller's one-slot channel, so the reply finds no room.
    j.reply
        .send(TrackerReply {
            token: 0,
            url: None,
            outcome: Err(not_run()),
        })
        .unwrap();
    w.handle().submit(j).unwrap();
    let start = Instant::now();
    let report = w.shutdown(WAIT_MAX);
    assert_eq!(
        report,
        ShutdownReport {
            finished: 1,
            abandoned: 0
        }
    );
    assert!(start.elapsed() < REPLY_SEND_WAIT + Duration::from_secs(2));
    assert_eq!(
        woken.load(Ordering::SeqCst),
        0,
        "no wake for a dropped reply"
    );
    assert_eq!(rx.try_recv().unwrap().token, 0);
    assert!(rx.try_recv().is_err());
}

/// An HTTP tracker that records the `event=` of each request (or
/// "regular") in arrival order, answering each `delay` after reading it.
fn recording_http(n: u8, delay: Duration) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind((ip(n), 0)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < WAIT_MAX {
            let Ok((mut s, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(5));
                continue;
            };
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 16 * 1024 {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => got.extend_from_slice(&buf[..k]),
                }
            }
            let text = String::from_utf8_lossy(&got);
            let event = ["started", "completed", "stopped"]
                .into_iter()
                .find(|e| text.contains(&format!("event={e}")))
                .unwrap_or("regular");
            seen.lock().unwrap().push(event.to_owned());
            thread::sleep(delay);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                GOOD_BODY.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(GOOD_BODY);
        }
    });
    (format!("http://{addr}/announce"), events)
}

#[test]
fn one_tokens_jobs_run_in_order_whatever_the_threads() {
    // A slow tracker and four threads: without ordering, `completed` and
    // `stopped` would be sent while the regular announce still runs.
    let (url, events) = recording_http(16, Duration::from_millis(300));
    let (other_url, _) = recording_http(18, Duration::ZERO);
    let w = TrackerWorker::start(config(4, 8, Duration::from_secs(5))).unwrap();
    let mut receivers = Vec::new();
    for event in [None, Some(Event::Completed), Some(Event::Stopped)] {
        let (mut j, rx) = job(9, &[&[&url]]);
        j.request.event = event;
        w.handle().submit(j).unwrap();
        receivers.push(rx);
    }
    // Another torrent is not held up behind them.
    let (other, other_rx) = job(10, &[&[&other_url]]);
    let submitted = Instant::now();
    w.handle().submit(other).unwrap();
    let r = wait_reply(&other_rx);
    assert!(r.outcome.is_ok(), "{r:?}");
    assert!(
        submitted.elapsed() < Duration::from_millis(600),
        "token 10 waited for token 9: {:?}",
        submitted.elapsed()
    );
    for rx in &receivers {
        assert!(wait_reply(rx).outcome.is_ok());
    }
    assert_eq!(*events.lock().unwrap(), ["regular", "completed", "stopped"]);
    let report = w.shutdown(WAIT_MAX);
    assert_eq!(report.abandoned, 0);
}

#[test]
fn shutdown_answers_the_jobs_waiting_behind_a_queued_one() {
    let hole = UdpSocket::bind((ip(17), 0)).unwrap();
    hole.set_read_timeout(Some(WAIT_MAX)).unwrap();
    let hole_url = format!("udp://{}", hole.local_addr().unwrap());
    let w = TrackerWorker::start(config(1, 4, Duration::from_secs(30))).unwrap();
    let h = w.handle();
    // Job 1 occupies the only thread; jobs 2 and 2' queue behind it.
    let (j1, _rx1) = job(1, &[&[&hole_url]]);
    h.submit(j1).unwrap();
    let mut buf = [0u8; 64];
    hole.recv_from(&mut buf).expect("the connect request");
    let (j2, rx2) = job(2, &[&[&hole_url]]);
    let (j2b, rx2b) = job(2, &[&[&hole_url]]);
    h.submit(j2).unwrap();
    h.submit(j2b).unwrap();
    let report = w.shutdown(Duration::from_millis(200));
    assert_eq!(report.abandoned, 3);
    for rx in [&rx2, &rx2b] {
        let failure = wait_reply(rx).outcome.unwrap_err();
        assert!(failure.message.contains("shut down"), "{failure}");
    }
}

/// BEP 7 through the worker: a UDP tracker reached over IPv6 (::1) answers
/// with 18-byte peers, and they come back as IPv6 addresses.
#[test]
fn a_udp_tracker_over_ipv6_gives_ipv6_peers() {
    let socket = UdpSocket::bind((std::net::Ipv6Addr::LOCALHOST, 0)).unwrap();
    socket.set_read_timeout(Some(WAIT_MAX)).unwrap();
    let addr = socket.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let Ok((16, from)) = socket.recv_from(&mut buf) else {
            return;
        };
        let mut connected = vec![0, 0, 0, 0];
        connected.extend_from_slice(&buf[12..16]);
        connected.extend_from_slice(&[0x42; 8]);
        let _ = socket.send_to(&connected, from);
        let Ok((98, from)) = socket.recv_from(&mut buf) else {
            return;
        };
        let mut v = vec![0, 0, 0, 1];
        v.extend_from_slice(&buf[12..16]);
        v.extend_from_slice(&[0, 0, 7, 8, 0, 0, 0, 1, 0, 0, 0, 2]);
        let peer: SocketAddr = "[2001:db8::7]:6882".parse().unwrap();
        if let SocketAddr::V6(p) = peer {
            v.extend_from_slice(&p.ip().octets());
            v.extend_from_slice(&p.port().to_be_bytes());
        }
        let _ = socket.send_to(&v, from);
    });
    let w = TrackerWorker::start(config(1, 8, Duration::from_secs(5))).unwrap();
    let url = format!("udp://{addr}/announce");
    let (j, rx) = job(1, &[&[&url]]);
    w.handle().submit(j).unwrap();
    let response = wait_reply(&rx).outcome.unwrap();
    assert_eq!(
        response.peers,
        vec!["[2001:db8::7]:6882".parse::<SocketAddr>().unwrap()]
    );
    w.shutdown(Duration::from_secs(1));
}

/// BEP 7 through the worker: an HTTP tracker at an IPv6 literal
/// (`http://[::1]:P/announce`) answering with a compact `peers6`.
#[test]
fn an_http_tracker_over_ipv6_gives_its_peers6() {
    let listener = TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 16 * 1024 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
        let mut body = b"d8:intervali60e5:peers0:6:peers618:".to_vec();
        body.extend_from_slice(
            &"2001:db8::9"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        body.extend_from_slice(&6883u16.to_be_bytes());
        body.push(b'e');
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&body);
    });
    let w = TrackerWorker::start(config(1, 8, Duration::from_secs(5))).unwrap();
    let url = format!("http://{addr}/announce");
    let (j, rx) = job(1, &[&[&url]]);
    w.handle().submit(j).unwrap();
    let response = wait_reply(&rx).outcome.unwrap();
    assert_eq!(
        response.peers,
        vec!["[2001:db8::9]:6883".parse::<SocketAddr>().unwrap()]
    );
    w.shutdown(Duration::from_secs(1));
}

#[test]
fn failures_never_show_a_passkey() {
    const QUOTING_REFUSAL: &[u8] = b"d14:failure reason25:invalid passkey SECRET123e";
    let (refuser, _) = fake_http(61, QUOTING_REFUSAL);
    let dead = dead_http(62).replace("/announce", "/SECRET456/announce?passkey=SECRET123");
    let udp = format!("udp://{}:1/announce/SECRET789?key=SECRET123", ip(63));
    let w = TrackerWorker::start(config(2, 8, Duration::from_secs(1))).unwrap();
    for (token, url) in [
        (1, format!("{refuser}?passkey=SECRET123")),
        (2, dead.clone()),
        (3, udp),
    ] {
        let (j, rx) = job(token, &[&[&url]]);
        w.handle().submit(j).unwrap();
        let failure = wait_reply(&rx).outcome.unwrap_err();
        assert!(!failure.message.contains("SECRET"), "{url}: {failure}");
        // Still says which tracker failed: its host and port.
        let host = url.split('/').nth(2).unwrap();
        assert!(failure.message.contains(host), "{url}: {failure}");
    }
    w.shutdown(Duration::from_secs(1));
}

#[test]
fn a_job_debug_print_hides_its_passkeys() {
    let (j, _rx) = job(
        1,
        &[&["http://127.0.0.1:1/SECRET456/announce?passkey=SECRET123"]],
    );
    let text = format!("{j:?}");
    assert!(!text.contains("SECRET"), "{text}");
    assert!(text.contains("127.0.0.1:1"), "{text}");
}
