//! Issue 13, "Done when": peer exchange (BEP 11) with libtorrent, three peers
//! where one learns of another only through PEX. No tracker, no DHT
//! (ringseed `--no-dht`, libtorrent's off), no LSD; addresses 127.0.135.x.
//!
//! - `libtorrent_learns_a_peer_from_ringseeds_pex`: ringseed seeds (upload
//!   limited, so the leechers stay leechers); libtorrent leechers B, then A,
//!   are each given only ringseed's address. A can only know B from
//!   ringseed's `ut_pex`: A must list B with libtorrent's pex source flag.
//! - `ringseed_learns_a_seed_from_libtorrents_pex`: a libtorrent seed S with
//!   PEX off (so it never dials anyone it hears of) and a libtorrent leecher
//!   L connected to S; ringseed downloads given only L (`--peer`). ringseed
//!   can only know S from L's `ut_pex`: S must see ringseed connect.
//! - `control_*`: both with libtorrent in ringseed's place.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::engine::*;

/// Longest until the PEX-learnt connection shows (libtorrent alone: 1-2 s
/// after the second leecher connects; ringseed may send its first PEX
/// message up to a minute after a peer connects, but never to a peer that
/// connected after the one it must tell of).
const PEX_WAIT_MAX: Duration = Duration::from_secs(80);
/// How long each libtorrent swarm runs at most (stopped sooner).
const SWARM_DEADLINE: Duration = Duration::from_secs(120);
/// Longest until a leecher is connected to the peer it was given.
const CONNECT_WAIT_MAX: Duration = Duration::from_secs(30);
/// The seed's upload limit in bytes/s: the 4 MB tree takes about 100 s,
/// longer than `PEX_WAIT_MAX`, so no leecher becomes a seed (seeds do not
/// dial seeds, and a leecher that finished would drop its link to the seed
/// before a late PEX message could name it: libtorrent redials a peer that
/// failed once only after 60 s).
const SLOW_UPLOAD_BYTES_PER_S: u32 = 40_000;

/// The test torrent, checked to take longer than `PEX_WAIT_MAX` at
/// `SLOW_UPLOAD_BYTES_PER_S`.
fn slow_torrent(name: &str, seed: u64) -> Untracked {
    let t = untracked_torrent(name, seed, false);
    let bytes: u64 = t.tree.files.iter().map(|f| f.length).sum();
    let upload_s = bytes / u64::from(SLOW_UPLOAD_BYTES_PER_S);
    assert!(
        upload_s > PEX_WAIT_MAX.as_secs(),
        "{name}: {bytes} bytes take {upload_s} s at the slow upload limit, not longer than PEX_WAIT_MAX"
    );
    t
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 135, last)
}

fn leecher_spec(t: &Untracked, at: Ipv4Addr, out: &str, peer: SocketAddr) -> String {
    format!(
        "role=download,dht=0,pex=1,ip={at},torrent={},save={},peers={peer}",
        t.torrent.display(),
        t.dir.path().join(out).display()
    )
}

/// B joins the seed at `seed` first, then A: A must learn B by PEX.
fn a_learns_b_through(
    t: &Untracked,
    seed: SocketAddr,
    a: Ipv4Addr,
    b: Ipv4Addr,
    context: &dyn Fn() -> String,
) {
    let mut lt_b = LtSwarm::start(
        "libtorrent leecher B",
        &[leecher_spec(t, b, "out-b", seed)],
        &[],
        SWARM_DEADLINE,
        false,
    );
    if let Err(why) = lt_b.wait_peer(0, CONNECT_WAIT_MAX, |p| {
        std::net::IpAddr::V4(p.ip) == seed.ip() && p.connected
    }) {
        panic!(
            "B never connected to the seed {seed}: {why}\n{}\n{}",
            lt_b.describe(),
            context()
        );
    }
    let started = Instant::now();
    let mut lt_a = LtSwarm::start(
        "libtorrent leecher A",
        &[leecher_spec(t, a, "out-a", seed)],
        &[],
        SWARM_DEADLINE,
        false,
    );
    let found = lt_a.wait_peer(0, PEX_WAIT_MAX, |p| {
        p.ip == b && p.source & LT_SOURCE_PEX != 0
    });
    if let Err(why) = found {
        panic!(
            "A ({a}) never listed B ({b}) as learnt by PEX from the seed {seed}: {why}\n\
             A's peers: {:?}\nB's peers: {:?}\n{}\n{}\n{}",
            lt_a.peers(0),
            lt_b.peers(0),
            lt_a.describe(),
            lt_b.describe(),
            context()
        );
    }
    eprintln!("A learnt B by PEX {:?} after joining", started.elapsed());
    lt_a.stop();
    lt_b.stop();
}

#[test]
fn libtorrent_learns_a_peer_from_ringseeds_pex() {
    let t = slow_torrent("pexout", 1351);
    let limit = SLOW_UPLOAD_BYTES_PER_S.to_string();
    let (mut seed, seed_addr) = start_ringseed_seed(
        "ringseed seed",
        &t.torrent,
        &t.tree.save_dir,
        ip(1),
        &["--no-dht", "--upload-limit", &limit],
    );
    a_learns_b_through(&t, seed_addr, ip(3), ip(2), &|| seed.describe());
    seed.terminate_cleanly();
}

#[test]
fn control_libtorrent_learns_a_peer_from_libtorrents_pex() {
    let t = slow_torrent("pexoutctl", 1352);
    let spec = format!(
        "role=seed,dht=0,pex=1,up={SLOW_UPLOAD_BYTES_PER_S},ip={},torrent={},save={}",
        ip(11),
        t.torrent.display(),
        t.tree.save_dir.display()
    );
    let mut seed = LtSwarm::start("libtorrent seed", &[spec], &[], SWARM_DEADLINE, false);
    let seed_addr = seed.addr(0);
    a_learns_b_through(&t, seed_addr, ip(13), ip(12), &|| seed.describe());
    seed.stop();
}

/// A libtorrent seed S (PEX off: it never dials a peer it hears of) and a
/// slow leecher L connected to S (PEX on); S's and L's addresses.
fn seed_and_leecher(t: &Untracked, s: Ipv4Addr, l: Ipv4Addr) -> (LtSwarm, LtSwarm) {
    let spec = format!(
        "role=seed,dht=0,pex=0,up={SLOW_UPLOAD_BYTES_PER_S},ip={s},torrent={},save={}",
        t.torrent.display(),
        t.tree.save_dir.display()
    );
    let seed = LtSwarm::start(
        "libtorrent seed S (PEX off)",
        &[spec],
        &[],
        SWARM_DEADLINE,
        false,
    );
    let mut leecher = LtSwarm::start(
        "libtorrent leecher L",
        &[leecher_spec(t, l, "out-l", seed.addr(0))],
        &[],
        SWARM_DEADLINE,
        false,
    );
    if let Err(why) = leecher.wait_peer(0, CONNECT_WAIT_MAX, |p| p.ip == s && p.connected) {
        panic!(
            "L never connected to S: {why}\n{}\n{}",
            leecher.describe(),
            seed.describe()
        );
    }
    (seed, leecher)
}

/// Waits until S lists a connection from `who` (which only L's PEX told of S).
fn wait_s_sees(seed: &mut LtSwarm, who: Ipv4Addr, context: &dyn Fn() -> String) {
    let started = Instant::now();
    if let Err(why) = seed.wait_peer(0, PEX_WAIT_MAX, |p| p.ip == who && p.connected) {
        panic!(
            "S never saw {who} connect (it could only learn S from L's PEX): {why}\n\
             S's peers: {:?}\n{}\n{}",
            seed.peers(0),
            context(),
            seed.describe()
        );
    }
    eprintln!("{who} dialled S {:?} after joining", started.elapsed());
}

#[test]
fn ringseed_learns_a_seed_from_libtorrents_pex() {
    let t = slow_torrent("pexin", 1353);
    let (mut seed, mut leecher) = seed_and_leecher(&t, ip(21), ip(22));
    let l_addr = leecher.addr(0).to_string();
    let out = t.dir.path().join("rs-out");
    let listen = SocketAddr::from((ip(23), free_port(ip(23))));
    let dl = start_ringseed_fetch(
        "ringseed download",
        &t.torrent.display().to_string(),
        &out,
        listen,
        &["--no-dht", "--peer", &l_addr],
    );
    wait_s_sees(&mut seed, ip(23), &|| {
        format!("{}\n{}", dl.describe(), leecher.describe())
    });
    leecher.stop();
    seed.stop();
}

#[test]
fn control_libtorrent_learns_a_seed_from_libtorrents_pex() {
    let t = slow_torrent("pexinctl", 1354);
    let (mut seed, mut leecher) = seed_and_leecher(&t, ip(31), ip(32));
    let mut r = LtSwarm::start(
        "libtorrent leecher R",
        &[leecher_spec(&t, ip(33), "out-r", leecher.addr(0))],
        &[],
        SWARM_DEADLINE,
        false,
    );
    wait_s_sees(&mut seed, ip(33), &|| {
        format!("{}\n{}", r.describe(), leecher.describe())
    });
    r.stop();
    leecher.stop();
    seed.stop();
}
