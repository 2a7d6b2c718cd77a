//! Issue 13, "Done when": a magnet with `x.pe=` pointing at a libtorrent
//! seed completes without DHT (ringseed `--no-dht`, libtorrent's DHT off,
//! no tracker), and `ringseed info` prints a magnet link that round-trips.
//! Addresses 127.0.134.x.
//!
//! `control_libtorrent_magnet_xpe` runs the same transfer with libtorrent
//! in ringseed's place, so a failure of the first test is ringseed's.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::engine::*;

/// Longest the transfer may take (libtorrent alone: under 1 s).
const DOWNLOAD_WAIT_MAX: Duration = Duration::from_secs(60);
/// How long the libtorrent seed runs at most (it is stopped sooner).
const SEED_DEADLINE: Duration = Duration::from_secs(100);

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 134, last)
}

/// A libtorrent seed of `t` on `at`, DHT off.
fn lt_seed(t: &Untracked, at: Ipv4Addr) -> LtSwarm {
    let spec = format!(
        "role=seed,dht=0,ip={at},torrent={},save={}",
        t.torrent.display(),
        t.tree.save_dir.display()
    );
    LtSwarm::start("libtorrent seed", &[spec], &[], SEED_DEADLINE, false)
}

#[test]
fn magnet_with_xpe_completes_from_a_libtorrent_seed_without_dht() {
    let t = untracked_torrent("xpe", 1341, false);
    let mut seed = lt_seed(&t, ip(1));
    let seed_addr = seed.addr(0);
    let magnet = magnet_uri(&t.info_hash, &[seed_addr]);
    let out = t.dir.path().join("rs-out");
    let listen = SocketAddr::from((ip(2), free_port(ip(2))));
    let started = Instant::now();
    let mut dl = start_ringseed_fetch(
        "ringseed download (x.pe)",
        &magnet,
        &out,
        listen,
        &["--no-dht"],
    );
    let context = || format!("magnet {magnet}\n{}", seed.describe());
    expect_exit_ok(&mut dl, DOWNLOAD_WAIT_MAX, &context);
    eprintln!(
        "ringseed fetched the x.pe magnet in {:?}",
        started.elapsed()
    );
    let bad = compare_tree(&t.tree, &out);
    assert!(bad.is_empty(), "{bad:#?}\n{}\n{}", dl.describe(), context());
    let peers = seed.peers(0);
    assert!(
        peers.iter().any(|p| p.ip == ip(2)),
        "the libtorrent seed never listed ringseed ({}): {peers:?}\n{}",
        ip(2),
        context()
    );
    seed.stop();
}

#[test]
fn info_prints_a_magnet_that_round_trips() {
    let dir = common::tempdir();
    let tree = common::make_tree(dir.path(), "magnetinfo", 1342);
    let tracker = "http://127.0.134.200:6969/announce";
    let torrent = common::create_torrent(
        &tree,
        "magnetinfo.torrent",
        &["--piece-length", "32K", "--no-date", "--tracker", tracker],
    );
    let hash = info_hash_of(&torrent);

    // Text output: a line with the magnet link (`magnet:  magnet:?...`).
    let out = common::ringseed([os("info"), os(&torrent)]);
    out.assert_code(0);
    let line = out
        .stdout
        .lines()
        .find_map(|l| {
            let at = l.find("magnet:?xt=urn:btih:")?;
            l.get(at..)?.split_whitespace().next()
        })
        .unwrap_or_else(|| {
            panic!(
                "`ringseed info` printed no magnet link (`magnet:?xt=urn:btih:...`)\n{}",
                out.describe()
            )
        })
        .to_string();
    assert_eq!(
        btih_of(&line).map(|h| hex20(&h)),
        Some(hex20(&hash)),
        "the printed magnet's btih is not the info-hash: {line}"
    );
    assert!(
        line.contains("&tr="),
        "the magnet leaves out the torrent's tracker ({tracker}): {line}"
    );

    // JSON output: the same link ("magnet_uri"; "magnet" is whether the
    // target was a magnet, where that key is a boolean).
    let v = common::info_json(&torrent);
    let json_magnet = ["magnet_uri", "magnet"]
        .iter()
        .find_map(|k| v[*k].as_str())
        .unwrap_or_else(|| panic!("`ringseed info --json` has no magnet link string: {v}"));
    assert_eq!(json_magnet, line, "text and JSON magnets differ");

    // Round trip: ringseed reads its own magnet back to the same hash.
    let back = common::info_json(&line);
    assert_eq!(
        back["info_hash"].as_str(),
        Some(hex20(&hash).as_str()),
        "`ringseed info MAGNET` on the printed magnet gave another info-hash: {back}"
    );
}

#[test]
fn control_libtorrent_magnet_xpe() {
    let t = untracked_torrent("xpectl", 1343, false);
    let mut seed = lt_seed(&t, ip(11));
    let magnet = magnet_uri(&t.info_hash, &[seed.addr(0)]);
    let out = t.dir.path().join("lt-out");
    let spec = format!(
        "role=magnet,dht=0,ip={},magnet={magnet},save={}",
        ip(12),
        out.display()
    );
    let started = Instant::now();
    let mut lt = LtSwarm::start(
        "libtorrent magnet (x.pe)",
        &[spec],
        &[],
        DOWNLOAD_WAIT_MAX,
        true,
    );
    if let Err(why) = lt.wait_done(0, DOWNLOAD_WAIT_MAX) {
        panic!(
            "libtorrent-only x.pe magnet failed: {why}\n{}\n{}",
            seed.describe(),
            lt.describe()
        );
    }
    eprintln!(
        "libtorrent-only x.pe magnet download: {:?}",
        started.elapsed()
    );
    let bad = compare_tree(&t.tree, &out);
    assert!(bad.is_empty(), "{bad:#?}");
    let peers = lt.peers(0);
    assert!(
        peers
            .iter()
            .any(|p| p.ip == ip(11) && p.source & LT_SOURCE_RESUME != 0),
        "libtorrent did not take the seed from x.pe: {peers:?}"
    );
    lt.stop();
    seed.stop();
}
