//! Issue 13, "Done when": a private torrent (BEP 27, `private=1`) never
//! produces a DHT or PEX packet, captured on the test's own sockets.
//! Addresses 127.0.136.x.
//!
//! ringseed seeds the private torrent, and a public one beside it, with
//! `--dht-bootstrap` pointing at a UDP socket the test owns ([`DhtCapture`]:
//! it records every datagram and answers like a DHT node that knows nobody,
//! so ringseed keeps sending it its lookups). A libtorrent leecher and a raw
//! test peer connect to the seed for the private torrent. Once the public
//! torrent's lookup has reached the capture (the DHT runs), and at least
//! `OBSERVE_FOR` after the start:
//! - no datagram holds the private info-hash (no get_peers or announce_peer
//!   for it);
//! - ringseed's BEP 10 handshake to the raw peer names no `ut_pex`, and no
//!   message arrives on the raw peer's `ut_pex` id.
//!
//! `public_torrent_is_announced_and_offers_pex` watches a public torrent
//! alone and requires the opposite (a get_peers or announce_peer
//! for the info-hash reaches the capture, the handshake names `ut_pex`), so
//! the capture is shown to see what the private test looks for;
//! `control_capture_with_libtorrent_seeds` checks the capture with
//! libtorrent seeds (public: announced through it; private: never named).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::engine::*;
use common::raw_peer::our_handshake;
use ringseed::InfoHash;

/// How long the private seed is watched for DHT and PEX traffic.
const OBSERVE_FOR: Duration = Duration::from_secs(20);
/// Longest the public control waits for a lookup of its info-hash.
const ANNOUNCE_WAIT_MAX: Duration = Duration::from_secs(45);
/// How long the libtorrent leecher runs at most (stopped sooner).
const SWARM_DEADLINE: Duration = Duration::from_secs(100);
/// Our `ut_pex` id in the raw peer's extension handshake.
const OUR_UT_PEX_ID: u8 = 1;
/// Largest message the raw peer accepts, in bytes.
const FRAME_BYTES_MAX: usize = 1 << 20;
/// Most bytes the raw peer buffers.
const RAW_BUFFER_BYTES_MAX: usize = 4 << 20;
/// Reserved byte 5, bit 0x10: the extension protocol (BEP 10).
const EXTENSION_BIT: u8 = 0x10;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 136, last)
}

/// What the raw peer saw of ringseed's extension messages.
#[derive(Debug, Default)]
struct ExtensionLog {
    /// Keys of the `m` dictionary of ringseed's extension handshake.
    handshake_m: Option<Vec<String>>,
    /// Messages that arrived on our `ut_pex` id.
    pex_messages: usize,
    /// Why reading ended early (a close), if it did.
    ended: Option<String>,
}

/// A raw peer from `src` that handshakes with extensions on, offers
/// `ut_pex`, and logs ringseed's extension messages for `watch`.
fn raw_peer_watch(
    src: Ipv4Addr,
    seed: SocketAddr,
    hash: [u8; 20],
    watch: Duration,
) -> ExtensionLog {
    let mut log = ExtensionLog::default();
    // RawPeer only for its connect from `src`; the wire is written here.
    let peer = common::raw_peer::RawPeer::connect(src, seed, 1)
        .unwrap_or_else(|e| panic!("raw peer cannot connect to {seed}: {e}"));
    let mut s: TcpStream = peer.stream;
    let mut reserved = [0u8; 8];
    reserved[5] |= EXTENSION_BIT;
    let hs = our_handshake(InfoHash(hash), reserved, b'x');
    s.write_all(&hs)
        .unwrap_or_else(|e| panic!("send handshake: {e}"));
    // Our extension handshake: ut_pex on id 1.
    let body = format!("d1:md6:ut_pexi{OUR_UT_PEX_ID}eee");
    let mut msg = Vec::new();
    msg.extend_from_slice(&u32::try_from(body.len() + 2).unwrap_or(0).to_be_bytes());
    msg.extend_from_slice(&[20, 0]);
    msg.extend_from_slice(body.as_bytes());
    // Interested, so that the seed has a reason to keep us.
    msg.extend_from_slice(&[0, 0, 0, 1, 2]);
    s.write_all(&msg)
        .unwrap_or_else(|e| panic!("send extension handshake: {e}"));
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap_or_else(|e| panic!("read timeout: {e}"));
    let deadline = Instant::now() + watch;
    let mut buf: Vec<u8> = Vec::new();
    let mut handshake_seen = false;
    let mut chunk = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => {
                log.ended = Some("closed by ringseed".into());
                break;
            }
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => {
                log.ended = Some(format!("read failed: {e}"));
                break;
            }
        }
        assert!(buf.len() <= RAW_BUFFER_BYTES_MAX, "ringseed sent too much");
        if !handshake_seen {
            if buf.len() < 68 {
                continue;
            }
            let reply: Vec<u8> = buf.drain(..68).collect();
            assert_eq!(
                reply.get(28..48),
                Some(&hash[..]),
                "ringseed answered with another info-hash"
            );
            assert!(
                reply.get(25).is_some_and(|b| b & EXTENSION_BIT != 0),
                "ringseed's handshake does not set the extension bit (BEP 10)"
            );
            handshake_seen = true;
        }
        // Whole frames: u32 length, id, payload.
        while buf.len() >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            assert!(len <= FRAME_BYTES_MAX, "a {len}-byte message from ringseed");
            if buf.len() < 4 + len {
                break;
            }
            let frame: Vec<u8> = buf.drain(..4 + len).skip(4).collect();
            if frame.first() != Some(&20) {
                continue;
            }
            match frame.get(1) {
                Some(0) => {
                    let payload = frame.get(2..).unwrap_or_default();
                    let v = ringseed::bencode::decode(payload).unwrap_or_else(|e| {
                        panic!("ringseed's extension handshake does not decode: {e:?}")
                    });
                    let keys = v
                        .as_dict()
                        .and_then(|d| d.get(b"m"))
                        .and_then(|m| m.as_dict())
                        .map(|m| {
                            m.entries
                                .iter()
                                .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                                .collect()
                        })
                        .unwrap_or_default();
                    log.handshake_m = Some(keys);
                }
                Some(&id) if id == OUR_UT_PEX_ID => log.pex_messages += 1,
                _ => {}
            }
        }
    }
    log
}

/// ringseed seeding `t` (and `also_seed`, whose data is in the same save
/// path) on `seed_ip` with the capture as its only DHT node, a libtorrent
/// leecher of `t` on `lt_ip` connected to it, and a raw peer of `t` on
/// `raw_ip` watching for `watch`; returns what the raw peer saw.
fn seed_and_watch(
    t: &Untracked,
    capture: &DhtCapture,
    seed_ip: Ipv4Addr,
    lt_ip: Ipv4Addr,
    raw_ip: Ipv4Addr,
    watch: Duration,
    also_seed: Option<&Path>,
) -> (Daemon, SocketAddr, LtSwarm, ExtensionLog) {
    let bootstrap = capture.addr().to_string();
    let mut extra = vec!["--dht-bootstrap", &bootstrap];
    // A second torrent (same save path), after the options: clap takes it.
    let also = also_seed.map(|p| p.display().to_string());
    extra.extend(also.as_deref());
    let (seed, seed_addr) = start_ringseed_seed(
        "ringseed seed",
        &t.torrent,
        &t.tree.save_dir,
        seed_ip,
        &extra,
    );
    let spec = format!(
        "role=download,dht=0,pex=1,ip={lt_ip},torrent={},save={},peers={seed_addr}",
        t.torrent.display(),
        t.dir.path().join("lt-out").display()
    );
    let lt = LtSwarm::start("libtorrent leecher", &[spec], &[], SWARM_DEADLINE, false);
    let log = raw_peer_watch(raw_ip, seed_addr, t.info_hash, watch);
    (seed, seed_addr, lt, log)
}

#[test]
fn private_torrent_sends_no_dht_or_pex_packet() {
    let t = untracked_torrent("private", 1361, true);
    // The same ringseed also seeds a public torrent: its lookups show that
    // the DHT runs and reaches the capture while the private one is silent.
    let public_tree = common::make_tree(&t.tree.save_dir, "alsopublic", 1365);
    let public_torrent = common::create_torrent(
        &public_tree,
        "alsopublic.torrent",
        &["--piece-length", "32K", "--no-date"],
    );
    let public_hash = info_hash_of(&public_torrent);
    let capture = DhtCapture::start(ip(1));
    let started = Instant::now();
    let (mut seed, _, mut lt, log) = seed_and_watch(
        &t,
        &capture,
        ip(2),
        ip(3),
        ip(4),
        OBSERVE_FOR,
        Some(&public_torrent),
    );
    let public_seen = capture.wait_query(ANNOUNCE_WAIT_MAX, |q| {
        (q.method == "get_peers" || q.method == "announce_peer") && q.info_hash == Some(public_hash)
    });
    // Watch at least OBSERVE_FOR in all, and as long as the public lookup took.
    std::thread::sleep(OBSERVE_FOR.saturating_sub(started.elapsed()));
    let context = || {
        format!(
            "{}\n{}\n{}\nraw peer: {log:?}",
            capture.describe(),
            seed.describe(),
            lt.describe()
        )
    };
    eprintln!("private: {}; raw peer: {log:?}", capture.describe());
    assert!(
        public_seen.is_some(),
        "the public torrent seeded beside the private one was never looked up on the DHT \
         within {ANNOUNCE_WAIT_MAX:?}: the DHT did not run, so nothing was tested\n{}",
        context()
    );
    let leaks = capture.datagrams_holding(&t.info_hash);
    assert!(
        leaks.is_empty(),
        "{} datagram(s) to the DHT node named the private torrent's info-hash {}: {:?}\n{}",
        leaks.len(),
        hex20(&t.info_hash),
        leaks
            .first()
            .map(|(from, d)| (from, String::from_utf8_lossy(d).into_owned())),
        context()
    );
    let m = log
        .handshake_m
        .as_ref()
        .unwrap_or_else(|| panic!("ringseed sent no extension handshake\n{}", context()));
    assert!(
        !m.iter().any(|k| k == "ut_pex"),
        "ringseed offers ut_pex for a private torrent: m = {m:?}\n{}",
        context()
    );
    // As libtorrent: a private torrent's metadata is not served either.
    assert!(
        !m.iter().any(|k| k == "ut_metadata"),
        "ringseed offers ut_metadata for a private torrent: m = {m:?}\n{}",
        context()
    );
    assert_eq!(
        log.pex_messages,
        0,
        "ringseed sent PEX messages for a private torrent\n{}",
        context()
    );
    lt.stop();
    seed.terminate_cleanly();
}

#[test]
fn public_torrent_is_announced_and_offers_pex() {
    let t = untracked_torrent("public", 1362, false);
    let capture = DhtCapture::start(ip(11));
    let (mut seed, seed_addr, mut lt, log) = seed_and_watch(
        &t,
        &capture,
        ip(12),
        ip(13),
        ip(14),
        Duration::from_secs(5),
        None,
    );
    let hash = t.info_hash;
    let found = capture.wait_query(ANNOUNCE_WAIT_MAX, |q| {
        (q.method == "get_peers" || q.method == "announce_peer") && q.info_hash == Some(hash)
    });
    let context = || {
        format!(
            "{}\n{}\n{}\nraw peer: {log:?}",
            capture.describe(),
            seed.describe(),
            lt.describe()
        )
    };
    eprintln!("public: {}; raw peer: {log:?}", capture.describe());
    assert!(
        found.is_some(),
        "no get_peers or announce_peer for the public torrent {} reached the DHT node within \
         {ANNOUNCE_WAIT_MAX:?}: the capture would not see a private leak either\n{}",
        hex20(&hash),
        context()
    );
    // DHT traffic comes from the listen port (one port for TCP and UDP).
    let q = found.unwrap_or_else(|| unreachable!());
    assert_eq!(
        q.from,
        seed_addr,
        "DHT query not from the listen address\n{}",
        context()
    );
    let m = log
        .handshake_m
        .as_ref()
        .unwrap_or_else(|| panic!("ringseed sent no extension handshake\n{}", context()));
    assert!(
        m.iter().any(|k| k == "ut_pex"),
        "ringseed does not offer ut_pex for a public torrent: m = {m:?}\n{}",
        context()
    );
    assert!(
        m.iter().any(|k| k == "ut_metadata"),
        "ringseed does not offer ut_metadata for a public torrent: m = {m:?}\n{}",
        context()
    );
    lt.stop();
    seed.terminate_cleanly();
}

/// The capture itself, with libtorrent in ringseed's place: a libtorrent
/// seed bootstrapped from it looks up and announces a public torrent
/// through it, and never names a private one.
#[test]
fn control_capture_with_libtorrent_seeds() {
    let public = untracked_torrent("ltpublic", 1363, false);
    let private = untracked_torrent("ltprivate", 1364, true);
    let cap_public = DhtCapture::start(ip(21));
    let cap_private = DhtCapture::start(ip(23));
    let spec = |t: &Untracked, at: Ipv4Addr| {
        format!(
            "role=seed,dht=1,ip={at},torrent={},save={}",
            t.torrent.display(),
            t.tree.save_dir.display()
        )
    };
    let mut lt_public = LtSwarm::start(
        "libtorrent public seed",
        &[spec(&public, ip(22))],
        &[cap_public.addr()],
        SWARM_DEADLINE,
        false,
    );
    let mut lt_private = LtSwarm::start(
        "libtorrent private seed",
        &[spec(&private, ip(24))],
        &[cap_private.addr()],
        SWARM_DEADLINE,
        false,
    );
    let hash = public.info_hash;
    let found = capture_wait_announce(&cap_public, hash);
    assert!(
        found,
        "libtorrent's lookup of {} never reached the capture\n{}\n{}",
        hex20(&hash),
        cap_public.describe(),
        lt_public.describe()
    );
    // By now the private seed has had as long to leak.
    let leaks = cap_private.datagrams_holding(&private.info_hash);
    eprintln!(
        "libtorrent: {}; {}",
        cap_public.describe(),
        cap_private.describe()
    );
    assert!(
        leaks.is_empty(),
        "libtorrent named its private torrent to the DHT?\n{}",
        cap_private.describe()
    );
    assert!(
        cap_private.count() > 0,
        "the private seed's DHT never reached its capture: nothing was tested\n{}",
        lt_private.describe()
    );
    lt_public.stop();
    lt_private.stop();
}

/// Waits for both a get_peers and an announce_peer for `hash`.
fn capture_wait_announce(capture: &DhtCapture, hash: [u8; 20]) -> bool {
    capture
        .wait_query(ANNOUNCE_WAIT_MAX, |q| {
            q.method == "announce_peer" && q.info_hash == Some(hash)
        })
        .is_some()
}
