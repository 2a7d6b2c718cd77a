//! Issue 13, "Done when": magnets through the mainline DHT against real
//! libtorrent nodes (tests/support/lt_swarm.py), no tracker anywhere, all
//! on 127.0.133.x.
//!
//! - `ringseed_fetches_a_magnet_found_through_a_libtorrent_dht`: three
//!   libtorrent DHT nodes and a libtorrent seed that announces the torrent;
//!   `ringseed download 'magnet:?xt=urn:btih:...' --dht-bootstrap <node>`
//!   finds the seed through the DHT, fetches the metadata (BEP 9) and
//!   completes byte-identical.
//! - `libtorrent_fetches_a_magnet_seeded_by_ringseed_through_the_dht`: ringseed
//!   seeds with `--dht-bootstrap <node>` and announces; a libtorrent session
//!   given only the magnet and another bootstrap node downloads it from
//!   ringseed, byte-identical.
//! - `control_libtorrent_only_dht_magnet`: the same swarm with libtorrent in
//!   ringseed's place, so a failure above is ringseed's, not the harness's.
//!
//! Every ringseed here gets `--dht-bootstrap` on loopback (never the public
//! routers) and `--bind-address`. Each test is bounded by `TEST_WAIT_MAX`.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::engine::*;

/// Longest a whole scenario may take once its swarm is up (measured
/// libtorrent-only: under 1 s on an idle 2-core machine).
const TEST_WAIT_MAX: Duration = Duration::from_secs(75);
/// How long the libtorrent swarm runs at most (it is stopped sooner).
const SWARM_DEADLINE: Duration = Duration::from_secs(110);

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 133, last)
}

/// Three DHT-only libtorrent nodes on 127.0.133.`base`+0..2 that know each other.
fn dht_specs(base: u8) -> Vec<String> {
    (0..3)
        .map(|i| format!("role=dht,ip={}", ip(base + i)))
        .collect()
}

#[test]
fn ringseed_fetches_a_magnet_found_through_a_libtorrent_dht() {
    let t = untracked_torrent("dhtget", 1301, false);
    let mut specs = dht_specs(1);
    specs.push(format!(
        "role=seed,dht=1,ip={},torrent={},save={}",
        ip(4),
        t.torrent.display(),
        t.tree.save_dir.display()
    ));
    let mut swarm = LtSwarm::start("libtorrent DHT + seed", &specs, &[], SWARM_DEADLINE, false);
    let seed_addr = swarm.addr(3);
    let out = t.dir.path().join("rs-out");
    let listen = SocketAddr::from((ip(5), free_port(ip(5))));
    let bootstrap = swarm.addr(0).to_string();
    let magnet = magnet_uri(&t.info_hash, &[]);
    let started = Instant::now();
    let mut dl = start_ringseed_fetch(
        "ringseed download (magnet)",
        &magnet,
        &out,
        listen,
        &["--dht-bootstrap", &bootstrap],
    );
    let context = || {
        format!(
            "magnet {magnet}; libtorrent seed on {seed_addr}; DHT bootstrap {bootstrap}\n{}",
            swarm.describe()
        )
    };
    expect_exit_ok(&mut dl, TEST_WAIT_MAX, &context);
    eprintln!(
        "ringseed fetched the magnet through the DHT in {:?}",
        started.elapsed()
    );
    let bad = compare_tree(&t.tree, &out);
    assert!(bad.is_empty(), "{bad:#?}\n{}\n{}", dl.describe(), context());
    // The seed saw ringseed: the data came from it, found through the DHT.
    let peers = swarm.peers(3);
    assert!(
        peers.iter().any(|p| p.ip == ip(5)),
        "the libtorrent seed never listed ringseed ({}) as a peer: {peers:?}\n{}",
        ip(5),
        context()
    );
    swarm.stop();
}

#[test]
fn libtorrent_fetches_a_magnet_seeded_by_ringseed_through_the_dht() {
    let t = untracked_torrent("dhtput", 1302, false);
    let mut nodes = LtSwarm::start("libtorrent DHT", &dht_specs(11), &[], SWARM_DEADLINE, false);
    let bootstrap = nodes.addr(0).to_string();
    let (mut seed, seed_addr) = start_ringseed_seed(
        "ringseed seed",
        &t.torrent,
        &t.tree.save_dir,
        ip(14),
        &["--dht-bootstrap", &bootstrap],
    );
    let out = t.dir.path().join("lt-out");
    let magnet = magnet_uri(&t.info_hash, &[]);
    let started = Instant::now();
    // Given only the magnet and another node of the DHT.
    let spec = format!(
        "role=magnet,dht=1,ip={},magnet={magnet},save={}",
        ip(15),
        out.display()
    );
    let mut lt = LtSwarm::start(
        "libtorrent magnet download",
        &[spec],
        &[nodes.addr(1)],
        TEST_WAIT_MAX,
        true,
    );
    let done = lt.wait_done(0, TEST_WAIT_MAX);
    let context = format!(
        "magnet {magnet}; ringseed seed on {seed_addr}; bootstrap {bootstrap} / {}\n{}\n{}\n{}",
        nodes.addr(1),
        seed.describe(),
        nodes.describe(),
        lt.describe()
    );
    if let Err(why) = done {
        panic!("libtorrent did not complete the magnet from ringseed: {why}\n{context}");
    }
    eprintln!(
        "libtorrent fetched ringseed's magnet through the DHT in {:?}",
        started.elapsed()
    );
    let bad = compare_tree(&t.tree, &out);
    assert!(bad.is_empty(), "{bad:#?}\n{context}");
    // ringseed was found through the DHT (the only source libtorrent had).
    let peers = lt.peers(0);
    assert!(
        peers
            .iter()
            .any(|p| p.ip == ip(14) && p.source & LT_SOURCE_DHT != 0),
        "libtorrent did not list ringseed ({seed_addr}) as found through the DHT: {peers:?}\n{context}"
    );
    lt.stop();
    nodes.stop();
    seed.terminate_cleanly();
}

#[test]
fn control_libtorrent_only_dht_magnet() {
    let t = untracked_torrent("dhtctl", 1303, false);
    let mut specs = dht_specs(21);
    specs.push(format!(
        "role=seed,dht=1,ip={},torrent={},save={}",
        ip(24),
        t.torrent.display(),
        t.tree.save_dir.display()
    ));
    let mut swarm = LtSwarm::start("libtorrent DHT + seed", &specs, &[], SWARM_DEADLINE, false);
    let out = t.dir.path().join("lt-out");
    let magnet = magnet_uri(&t.info_hash, &[]);
    let spec = format!(
        "role=magnet,dht=1,ip={},magnet={magnet},save={}",
        ip(25),
        out.display()
    );
    let started = Instant::now();
    let mut lt = LtSwarm::start(
        "libtorrent magnet download",
        &[spec],
        &[swarm.addr(0)],
        TEST_WAIT_MAX,
        true,
    );
    if let Err(why) = lt.wait_done(0, TEST_WAIT_MAX) {
        panic!(
            "libtorrent-only DHT magnet download failed: {why}\n{}\n{}",
            swarm.describe(),
            lt.describe()
        );
    }
    eprintln!(
        "libtorrent-only DHT magnet download: {:?}",
        started.elapsed()
    );
    let bad = compare_tree(&t.tree, &out);
    assert!(bad.is_empty(), "{bad:#?}");
    let peers = lt.peers(0);
    assert!(
        peers
            .iter()
            .any(|p| p.ip == ip(24) && p.source & LT_SOURCE_DHT != 0),
        "the seed was not found through the DHT: {peers:?}"
    );
    lt.stop();
    swarm.stop();
}
