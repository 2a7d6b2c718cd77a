//! Issue 13, magnets in the daemon: a magnet added through `ringseed ctl
//! add` and one through the Web API (`torrents/add` with `urls=`) show as
//! `metaDL` (ctl: `metadata`) while no peer has their metadata, then fetch
//! it (BEP 9) from a libtorrent seed named by `x.pe` and complete
//! byte-identical; a magnet survives kill -9 and a restart, still without
//! metadata, and is fetched again at the next start.
//!
//! No tracker and no DHT anywhere (`--no-dht`, libtorrent's DHT, PEX and
//! LSD off). Addresses 127.0.138.x. The seeds listen on ports chosen
//! before they start, so that the magnets can name them while nothing
//! listens there yet.

mod common;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::daemon::{state_of, str_of, Dirs, RingDaemon, API_PASSWORD, API_USER};
use common::engine::*;

/// Longest a transfer may take once the seed is reachable (a few hundred
/// KiB on loopback; the fetch of a peer that failed before is retried
/// within seconds).
const COMPLETE_WAIT_MAX: Duration = Duration::from_secs(90);
/// How long a libtorrent seed runs at most (it is stopped sooner).
const SEED_DEADLINE: Duration = Duration::from_secs(240);
/// Longest a Web API request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest Web API answer read, in bytes.
const HTTP_BODY_BYTES_MAX: usize = 4 << 20;
/// How often states are polled.
const POLL: Duration = Duration::from_millis(200);

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 138, last)
}

/// A libtorrent seed of `t` on `at` (DHT, PEX and LSD off).
fn seed_spec(t: &Untracked, at: SocketAddr) -> String {
    format!(
        "role=seed,dht=0,pex=0,ip={},port={},torrent={},save={}",
        at.ip(),
        at.port(),
        t.torrent.display(),
        t.tree.save_dir.display()
    )
}

fn no_dht() -> Vec<OsString> {
    vec![os("--no-dht")]
}

/// One Web API request on its own connection; the status and the body.
fn http(api: &str, method: &str, path: &str, cookie: Option<&str>, body: &str) -> (u16, String) {
    let host = api.trim_start_matches("http://");
    let addr: SocketAddr = host
        .parse()
        .unwrap_or_else(|e| panic!("Web API address {host:?}: {e}"));
    let mut s = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(HTTP_TIMEOUT))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: SID={c}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let mut all = Vec::new();
    s.take(HTTP_BODY_BYTES_MAX as u64)
        .read_to_end(&mut all)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let text = String::from_utf8_lossy(&all).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no header end in {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: bad status line in {head:?}"));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

/// A chunked body's bytes (text).
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// Logs in; the SID.
fn login(api: &str) -> String {
    let host = api.trim_start_matches("http://");
    let addr: SocketAddr = host.parse().unwrap_or_else(|e| panic!("{e}"));
    let mut s = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    s.set_read_timeout(Some(HTTP_TIMEOUT))
        .unwrap_or_else(|e| panic!("{e}"));
    let body = format!("username={API_USER}&password={API_PASSWORD}");
    let req = format!(
        "POST /api/v2/auth/login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut all = String::new();
    let _ = s.take(HTTP_BODY_BYTES_MAX as u64).read_to_string(&mut all);
    all.lines()
        .find_map(|l| {
            let lower = l.to_ascii_lowercase();
            lower.starts_with("set-cookie:").then(|| {
                l.split_once(':')
                    .map(|(_, v)| v.trim())
                    .and_then(|v| v.split(';').next())
                    .and_then(|c| c.trim().strip_prefix("SID="))
                    .map(str::to_string)
            })?
        })
        .unwrap_or_else(|| panic!("login gave no SID:\n{all}"))
}

/// Percent-encodes a form value.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `torrents/info?hashes=HASH`: the torrent's object.
fn api_torrent(api: &str, sid: &str, hash: &str) -> Option<serde_json::Value> {
    let (status, body) = http(
        api,
        "GET",
        &format!("/api/v2/torrents/info?hashes={hash}"),
        Some(sid),
        "",
    );
    assert_eq!(status, 200, "torrents/info: {body}");
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("torrents/info: {e}: {body}"));
    v.as_array().and_then(|a| a.first().cloned())
}

/// Waits (bounded) until the torrent is complete: every piece had, listed
/// as a .torrent now.
fn wait_complete(d: &RingDaemon, hash: &str, context: &str) -> serde_json::Value {
    let deadline = Instant::now() + COMPLETE_WAIT_MAX;
    let mut last = None;
    while Instant::now() < deadline {
        last = d.torrent(hash);
        if let Some(t) = &last {
            let have = t["pieces_have"].as_u64().unwrap_or(0);
            let count = t["piece_count"].as_u64().unwrap_or(0);
            if count > 0 && have == count && t["source"] == "torrent" {
                return t.clone();
            }
        }
        thread::sleep(POLL);
    }
    panic!(
        "{hash} not complete within {COMPLETE_WAIT_MAX:?}; last: {last:?}\n{context}\n{}",
        d.proc.describe()
    );
}

fn assert_metadata_wait(d: &RingDaemon, hash: &str, name: &str) {
    let t = d
        .torrent(hash)
        .unwrap_or_else(|| panic!("{hash} not listed\n{}", d.proc.describe()));
    assert_eq!(state_of(&t), "metadata", "{t}");
    assert_eq!(str_of(&t, "source"), "magnet", "{t}");
    assert_eq!(str_of(&t, "name"), name, "{t}");
    assert_eq!(t["total_length"].as_u64(), Some(0), "{t}");
    assert_eq!(t["piece_count"].as_u64(), Some(0), "{t}");
}

#[test]
fn magnets_from_ctl_and_the_web_api_show_meta_dl_then_complete_from_a_libtorrent_seed() {
    let t1 = untracked_torrent("dmctl", 1381, false);
    let t2 = untracked_torrent("dmapi", 1382, false);
    let seed_ip = ip(2);
    let s1 = SocketAddr::from((seed_ip, free_port(seed_ip)));
    let s2 = SocketAddr::from((seed_ip, free_port(seed_ip)));
    let (h1, h2) = (hex20(&t1.info_hash), hex20(&t2.info_hash));
    let dirs = Dirs::new();
    let mut d = RingDaemon::start_api("ringseed daemon", &dirs, ip(1), &no_dht());
    let api = d.api_url().to_string();
    let sid = login(&api);

    // Added while nothing listens on the x.pe addresses: no metadata.
    let m1 = format!("{}&dn=dmctl", magnet_uri(&t1.info_hash, &[s1]));
    let out = d.ctl(&["add", &m1]);
    assert!(out.stdout.contains(&h1), "ctl add printed {:?}", out.stdout);
    let m2 = magnet_uri(&t2.info_hash, &[s2]);
    let (status, body) = http(
        &api,
        "POST",
        "/api/v2/torrents/add",
        Some(&sid),
        &format!("urls={}", form_encode(&m2)),
    );
    assert_eq!((status, body.as_str()), (200, "Ok."), "torrents/add urls=");
    assert_metadata_wait(&d, &h1, "dmctl");
    assert_metadata_wait(&d, &h2, &h2);
    for h in [&h1, &h2] {
        let t = api_torrent(&api, &sid, h).unwrap_or_else(|| panic!("{h} not in torrents/info"));
        assert_eq!(t["state"], "metaDL", "{t}");
        assert_eq!(t["has_metadata"], false, "{t}");
        assert_eq!(t["progress"].as_f64(), Some(0.0), "{t}");
    }
    // The same magnet again: a duplicate, refused.
    let again = d.ctl_any(&["add", &m1]);
    assert_ne!(
        again.code,
        Some(0),
        "a duplicate magnet was added:\n{}",
        again.describe()
    );
    assert_eq!(d.list().len(), 2);

    // The seeds start; a stop and a start fetch anew at once (no wait for
    // the retry of the addresses that failed).
    let mut seeds = LtSwarm::start(
        "libtorrent seeds",
        &[seed_spec(&t1, s1), seed_spec(&t2, s2)],
        &[],
        SEED_DEADLINE,
        false,
    );
    assert_eq!(
        (seeds.addr(0), seeds.addr(1)),
        (s1, s2),
        "the seeds took other ports"
    );
    d.ctl(&["stop", &h1, &h2]);
    for h in [&h1, &h2] {
        let t = api_torrent(&api, &sid, h).unwrap_or_else(|| panic!("{h} gone"));
        assert_eq!(t["state"], "stoppedDL", "a stopped magnet: {t}");
    }
    d.ctl(&["start", &h1, &h2]);
    let context = format!("magnets {m1} {m2}\n{}", seeds.describe());
    let done1 = wait_complete(&d, &h1, &context);
    let done2 = wait_complete(&d, &h2, &context);
    assert_eq!(str_of(&done1, "name"), t1.tree.name, "{done1}");
    assert_eq!(str_of(&done2, "name"), t2.tree.name, "{done2}");
    for t in [&t1, &t2] {
        let bad = compare_tree(&t.tree, &dirs.downloads);
        assert!(bad.is_empty(), "{bad:#?}\n{context}\n{}", d.proc.describe());
    }
    let t = api_torrent(&api, &sid, &h2).unwrap_or_else(|| panic!("{h2} gone"));
    assert_eq!(t["has_metadata"], true, "{t}");
    assert_ne!(t["state"], "metaDL", "{t}");
    seeds.stop();
    d.proc.terminate_cleanly();
}

#[test]
fn a_magnet_survives_kill_9_and_is_fetched_again_at_the_next_start() {
    let t = untracked_torrent("dmkill", 1383, false);
    let seed_ip = ip(5);
    let seed_at = SocketAddr::from((seed_ip, free_port(seed_ip)));
    let hash = hex20(&t.info_hash);
    let magnet = format!("{}&dn=dmkill", magnet_uri(&t.info_hash, &[seed_at]));
    let dirs = Dirs::new();

    // Added with nothing at its x.pe address, then kill -9.
    let mut d = RingDaemon::start("ringseed daemon", &dirs, ip(4), &no_dht());
    d.ctl(&["add", &magnet]);
    assert_metadata_wait(&d, &hash, "dmkill");
    d.kill9();

    // Back: listed, still without metadata, its magnet kept.
    let mut d = RingDaemon::start("ringseed daemon (after kill -9)", &dirs, ip(4), &no_dht());
    assert_metadata_wait(&d, &hash, "dmkill");
    let listed = d.torrent(&hash).unwrap_or_default();
    assert_eq!(listed["magnet"].as_str(), Some(magnet.as_str()), "{listed}");
    assert!(
        d.proc.stderr().contains("fetching the metadata"),
        "the restart did not fetch the magnet again\n{}",
        d.proc.describe()
    );
    d.proc.terminate_cleanly();

    // With the seed up, the next start fetches it and completes.
    let mut seed = LtSwarm::start(
        "libtorrent seed",
        &[seed_spec(&t, seed_at)],
        &[],
        SEED_DEADLINE,
        false,
    );
    assert_eq!(seed.addr(0), seed_at, "the seed took another port");
    let mut d = RingDaemon::start("ringseed daemon (seed up)", &dirs, ip(4), &no_dht());
    let context = format!("magnet {magnet}\n{}", seed.describe());
    let done = wait_complete(&d, &hash, &context);
    assert_eq!(str_of(&done, "name"), t.tree.name, "{done}");
    let bad = compare_tree(&t.tree, &dirs.downloads);
    assert!(bad.is_empty(), "{bad:#?}\n{context}\n{}", d.proc.describe());
    seed.stop();
    d.proc.terminate_cleanly();

    // Its .torrent is kept: the next start needs no peer to know it.
    let mut d = RingDaemon::start("ringseed daemon (no seed)", &dirs, ip(4), &no_dht());
    let t2 = d
        .torrent(&hash)
        .unwrap_or_else(|| panic!("{hash} gone\n{}", d.proc.describe()));
    assert_eq!(str_of(&t2, "source"), "torrent", "{t2}");
    assert!(t2["piece_count"].as_u64().unwrap_or(0) > 0, "{t2}");
    d.proc.terminate_cleanly();
}
