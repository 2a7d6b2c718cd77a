//! Issue 14, "Done when": protocol encryption (MSE/PE) against libtorrent
//! (python3-libtorrent 2.0, tests/support/lt_swarm.py `enc=`). No tracker,
//! no DHT, no PEX: every peer is given by address. libtorrent's sessions set
//! to `forced_rc4` (`in_enc_policy` and `out_enc_policy` pe_forced,
//! `allowed_enc_level` rc4, `prefer_rc4`) or `forced_both` (pe_forced, level
//! both) talk to nobody in the clear; a `peers` line of lt_swarm.py says how
//! each connection was carried (`enc`: libtorrent's peer_info flags
//! `rc4_encrypted` = "rc4", `plaintext_encrypted` = "plaintext" after the
//! obfuscated handshake, else "none"), so a transfer that happened in the
//! clear cannot pass. libtorrent's leechers run with a download limit
//! ([`LEECH_DOWN_BYTES_PER_S`]) so that their connection lasts long enough
//! to be listed.
//!
//! - `libtorrent_forced_rc4_leechers_download_from_ringseed` (and
//!   `..._forced_both_...`): a ringseed seed with the default policy
//!   (`--encryption enabled`), two libtorrent leechers given its address;
//!   byte-identical, and each lists the seed with enc "rc4" (resp.
//!   "plaintext": both levels offered, plaintext chosen, header obfuscated).
//! - `ringseed_downloads_from_a_forced_rc4_libtorrent_seed` (and
//!   `..._forced_both_...`): `ringseed download --peer SEED` (default policy:
//!   plaintext first, then the obfuscated retry the seed needs) from a
//!   libtorrent seed; byte-identical within [`DOWNLOAD_WAIT_MAX`], and the
//!   seed lists ringseed with enc "rc4" (resp. "plaintext").
//! - `required_refuses_a_plaintext_peer_and_names_it`: `--encryption
//!   required`; a libtorrent leecher with encryption disabled gets nothing
//!   in [`REFUSED_WAIT`] and ringseed logs its `IP:PORT` with `encryption is
//!   required`; a forced_rc4 leecher of the same seed completes.
//! - `two_shards_route_encrypted_peers_to_their_owner`: `--shards 2`, two
//!   torrents owned by different shards, three forced_rc4 leechers each:
//!   all complete byte-identical over RC4 (the shard that accepts cannot
//!   read the torrent from a plaintext handshake, only from `HASH('req2',
//!   info_hash)`). The `connections handed between shards` line is printed.
//! - `control_libtorrent_reports_the_encryption_it_used`: the same forced
//!   policies between two libtorrent sessions report "rc4" and "plaintext",
//!   so the checks above can tell.
//!
//! Addresses 127.0.141.x-127.0.145.x; every child is stopped by pid (guards
//! kill on drop) and every wait is bounded.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::engine::*;

/// Longest a transfer of the 4 MB sample tree may take (libtorrent alone,
/// limited to [`LEECH_DOWN_BYTES_PER_S`]: about 2 s).
const DOWNLOAD_WAIT_MAX: Duration = Duration::from_secs(60);
/// How long lt_swarm.py runs at most: past every wait, so its own deadline
/// error never hides the reason a wait failed.
const SWARM_DEADLINE: Duration = Duration::from_secs(120);
/// Download limit of libtorrent's leechers (and upload limit of its seeds),
/// bytes/s: the 4 MB tree takes about 2 s, so the connection is listed by
/// get_peer_info (polled every 100 ms) with its encryption flags.
const LEECH_DOWN_BYTES_PER_S: u32 = 2_000_000;
/// How long a plaintext leecher must get nothing from a seed that requires
/// encryption.
const REFUSED_WAIT: Duration = Duration::from_secs(15);
/// Longest until ringseed logs the refused plaintext peer.
const REFUSAL_LOG_WAIT_MAX: Duration = Duration::from_secs(15);
/// Shards of the two-shard test, and how many data sets may be tried to
/// find a torrent of the other shard.
const SHARDS: u64 = 2;
const SHARD_CANDIDATES_MAX: u64 = 32;
/// libtorrent leechers per torrent in the two-shard test.
const LEECHERS_PER_TORRENT: u8 = 3;

fn ip(c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, c, d)
}

/// A libtorrent leecher of `torrent` on `at`, encryption `enc`, given `peer`.
fn leecher_spec(enc: &str, at: Ipv4Addr, torrent: &Path, save: &Path, peer: SocketAddr) -> String {
    format!(
        "role=download,dht=0,pex=0,enc={enc},down={LEECH_DOWN_BYTES_PER_S},ip={at},torrent={},save={},peers={peer}",
        torrent.display(),
        save.display()
    )
}

/// A libtorrent seed of `t` on `at`, encryption `enc`.
fn lt_seed(t: &Untracked, enc: &str, at: Ipv4Addr) -> LtSwarm {
    let spec = format!(
        "role=seed,dht=0,pex=0,enc={enc},up={LEECH_DOWN_BYTES_PER_S},ip={at},torrent={},save={}",
        t.torrent.display(),
        t.tree.save_dir.display()
    );
    LtSwarm::start(
        &format!("libtorrent seed (enc={enc})"),
        &[spec],
        &[],
        SWARM_DEADLINE,
        false,
    )
}

/// Stops lt_swarm.py unless it has exited by itself (`--exit-when-done`):
/// a pid already reaped is never signalled.
fn stop_swarm(swarm: &mut LtSwarm) {
    if swarm.daemon.poll_exit().is_none() {
        swarm.stop();
    }
}

/// Every `enc` value session `node` ever listed for a peer on `peer_ip`.
fn encs_seen(swarm: &LtSwarm, node: usize, peer_ip: Ipv4Addr) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for e in swarm.events() {
        if e["event"] != "peers" || e["node"].as_u64() != Some(node as u64) {
            continue;
        }
        for p in e["peers"].as_array().into_iter().flatten() {
            if p["ip"].as_str() != Some(peer_ip.to_string().as_str()) {
                continue;
            }
            let enc = p["enc"].as_str().unwrap_or("(no enc field)").to_string();
            if !seen.contains(&enc) {
                seen.push(enc);
            }
        }
    }
    seen
}

/// Requires that session `node` listed a connection to `peer_ip` carried
/// as `want` ("rc4" or "plaintext").
fn assert_enc(
    swarm: &LtSwarm,
    node: usize,
    peer_ip: Ipv4Addr,
    want: &str,
    context: &dyn Fn() -> String,
) {
    let seen = encs_seen(swarm, node, peer_ip);
    assert!(
        seen.iter().any(|e| e == want),
        "{} node {node} never listed its connection with {peer_ip} as enc={want:?} \
         (seen: {seen:?}; \"none\" = a plain BitTorrent handshake)\n{}\n{}",
        swarm.daemon.label(),
        swarm.describe(),
        context()
    );
}

/// What an `enc=` mode of libtorrent leads to when both ends agree: RC4
/// when only RC4 is allowed, plaintext after the obfuscated header when
/// both are offered (ringseed and libtorrent pick plaintext then).
fn expected_level(enc: &str) -> &'static str {
    match enc {
        "forced_rc4" => "rc4",
        _ => "plaintext",
    }
}

/// (a) A ringseed seed (default policy) and two libtorrent leechers `enc`.
fn leechers_download_from_ringseed(enc: &str, name: &str, seed_no: u64, c: u8) {
    let t = untracked_torrent(name, seed_no, false);
    let (mut seed, seed_addr) = start_ringseed_seed(
        "ringseed seed (default encryption policy)",
        &t.torrent,
        &t.tree.save_dir,
        ip(c, 1),
        &[],
    );
    let leechers = [ip(c, 2), ip(c, 3)];
    let specs: Vec<String> = leechers
        .iter()
        .enumerate()
        .map(|(i, at)| {
            let out = t.dir.path().join(format!("lt-out-{i}"));
            leecher_spec(enc, *at, &t.torrent, &out, seed_addr)
        })
        .collect();
    let started = Instant::now();
    let mut lt = LtSwarm::start(
        &format!("libtorrent leechers (enc={enc})"),
        &specs,
        &[],
        SWARM_DEADLINE,
        true,
    );
    for (i, at) in leechers.iter().enumerate() {
        let left = DOWNLOAD_WAIT_MAX.saturating_sub(started.elapsed());
        if let Err(why) = lt.wait_done(i, left) {
            panic!(
                "libtorrent leecher {i} ({at}, enc={enc}) did not complete from the ringseed seed \
                 {seed_addr} within {DOWNLOAD_WAIT_MAX:?}: {why}\nits peers: {:?}\n{}\n{}",
                lt.peers(i),
                lt.describe(),
                seed.describe()
            );
        }
    }
    eprintln!(
        "2 libtorrent leechers (enc={enc}) done in {:?}",
        started.elapsed()
    );
    for i in 0..leechers.len() {
        let bad = compare_tree(&t.tree, &t.dir.path().join(format!("lt-out-{i}")));
        assert!(
            bad.is_empty(),
            "leecher {i}: {bad:#?}\n{}\n{}",
            lt.describe(),
            seed.describe()
        );
        assert_enc(&lt, i, ip(c, 1), expected_level(enc), &|| seed.describe());
    }
    stop_swarm(&mut lt);
    seed.terminate_cleanly();
}

#[test]
fn libtorrent_forced_rc4_leechers_download_from_ringseed() {
    leechers_download_from_ringseed("forced_rc4", "encleechrc4", 1411, 141);
}

#[test]
fn libtorrent_forced_both_leechers_download_from_ringseed() {
    leechers_download_from_ringseed("forced_both", "encleechboth", 1412, 142);
}

/// (b) `ringseed download` (default policy) from a libtorrent seed `enc`.
fn ringseed_downloads_from_lt_seed(enc: &str, name: &str, seed_no: u64, d: u8) {
    let t = untracked_torrent(name, seed_no, false);
    let mut seed = lt_seed(&t, enc, ip(143, d));
    let seed_addr = seed.addr(0).to_string();
    let out = t.dir.path().join("rs-out");
    let started = Instant::now();
    let mut dl = start_ringseed_download(
        "ringseed download (default encryption policy)",
        &t.torrent,
        &out,
        ip(143, d + 1),
        &["--peer", &seed_addr],
    );
    expect_exit_ok(&mut dl, DOWNLOAD_WAIT_MAX, &|| {
        format!(
            "(the libtorrent seed {seed_addr} has enc={enc}: it accepts only the obfuscated \
             handshake)\nits peers: {:?}\n{}",
            seed.peers(0),
            seed.describe()
        )
    });
    eprintln!(
        "ringseed downloaded from the enc={enc} libtorrent seed in {:?}",
        started.elapsed()
    );
    let bad = compare_tree(&t.tree, &out);
    assert!(
        bad.is_empty(),
        "{bad:#?}\n{}\n{}",
        dl.describe(),
        seed.describe()
    );
    assert_enc(&seed, 0, ip(143, d + 1), expected_level(enc), &|| {
        dl.describe()
    });
    stop_swarm(&mut seed);
}

#[test]
fn ringseed_downloads_from_a_forced_rc4_libtorrent_seed() {
    ringseed_downloads_from_lt_seed("forced_rc4", "encseedrc4", 1431, 1);
}

#[test]
fn ringseed_downloads_from_a_forced_both_libtorrent_seed() {
    ringseed_downloads_from_lt_seed("forced_both", "encseedboth", 1432, 11);
}

#[test]
fn required_refuses_a_plaintext_peer_and_names_it() {
    let t = untracked_torrent("encrequired", 1441, false);
    let (mut seed, seed_addr) = start_ringseed_seed(
        "ringseed seed --encryption required",
        &t.torrent,
        &t.tree.save_dir,
        ip(144, 1),
        &["--encryption", "required"],
    );
    let plain_ip = ip(144, 2);
    let rc4_ip = ip(144, 3);
    let plain_out = t.dir.path().join("lt-plain");
    let rc4_out = t.dir.path().join("lt-rc4");
    let started = Instant::now();
    let mut plain = LtSwarm::start(
        "libtorrent leecher (enc=disabled)",
        &[leecher_spec(
            "disabled", plain_ip, &t.torrent, &plain_out, seed_addr,
        )],
        &[],
        SWARM_DEADLINE,
        false,
    );
    let mut rc4 = LtSwarm::start(
        "libtorrent leecher (enc=forced_rc4)",
        &[leecher_spec(
            "forced_rc4",
            rc4_ip,
            &t.torrent,
            &rc4_out,
            seed_addr,
        )],
        &[],
        SWARM_DEADLINE,
        true,
    );

    // The encrypted leecher completes: the seed works.
    if let Err(why) = rc4.wait_done(0, DOWNLOAD_WAIT_MAX) {
        panic!(
            "the forced_rc4 leecher ({rc4_ip}) did not complete from the seed {seed_addr} \
             (--encryption required) within {DOWNLOAD_WAIT_MAX:?}: {why}\nits peers: {:?}\n{}\n{}",
            rc4.peers(0),
            rc4.describe(),
            seed.describe()
        );
    }
    let bad = compare_tree(&t.tree, &rc4_out);
    assert!(
        bad.is_empty(),
        "{bad:#?}\n{}\n{}",
        rc4.describe(),
        seed.describe()
    );
    assert_enc(&rc4, 0, ip(144, 1), "rc4", &|| seed.describe());

    // ringseed names the plaintext peer it refused.
    let needle = format!("{plain_ip}:");
    let line = seed.wait_line(REFUSAL_LOG_WAIT_MAX, |l| {
        l.contains(&needle) && l.contains("encryption is required")
    });
    if let Err(why) = line {
        panic!(
            "ringseed (--encryption required) never logged a line with the plaintext peer \
             `{plain_ip}:PORT` and `encryption is required`: {why}\nthe plaintext leecher's peers: {:?}\n{}\n{}",
            plain.peers(0),
            seed.describe(),
            plain.describe()
        );
    }
    eprintln!(
        "ringseed refused the plaintext peer: {}",
        line.unwrap_or_default()
    );

    // The plaintext leecher never gets the torrent.
    let left = REFUSED_WAIT.saturating_sub(started.elapsed());
    match plain.wait_done(0, left) {
        Ok(()) => panic!(
            "the plaintext leecher ({plain_ip}) completed from a seed with --encryption required\n{}\n{}",
            plain.describe(),
            seed.describe()
        ),
        Err(why) => assert!(
            why.starts_with("not within"),
            "the plaintext leecher's lt_swarm.py failed instead of waiting: {why}\n{}",
            plain.describe()
        ),
    }
    let got: Vec<f64> = plain
        .events()
        .iter()
        .filter(|e| e["event"] == "progress")
        .filter_map(|e| e["progress"].as_f64())
        .collect();
    assert!(
        got.iter().all(|p| *p == 0.0),
        "the plaintext leecher ({plain_ip}) got data from a seed with --encryption required \
         (progress {got:?})\n{}\n{}",
        plain.describe(),
        seed.describe()
    );
    assert_eq!(
        encs_seen(&plain, 0, ip(144, 1))
            .iter()
            .filter(|e| *e != "none")
            .count(),
        0,
        "a libtorrent session with encryption disabled reported an encrypted connection\n{}",
        plain.describe()
    );
    stop_swarm(&mut plain);
    stop_swarm(&mut rc4);
    seed.terminate_cleanly();
}

/// The shard that owns `info_hash` among `shards`.
fn owner_shard(info_hash: &[u8; 20], shards: u64) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&info_hash[..8]);
    u64::from_le_bytes(first) % shards
}

#[test]
fn two_shards_route_encrypted_peers_to_their_owner() {
    let dir = common::tempdir();
    let tree_a = common::make_tree(dir.path(), "encshard-a", 1451);
    let torrent_a = common::create_torrent(
        &tree_a,
        "encshard-a.torrent",
        &["--piece-length", "32K", "--no-date"],
    );
    let hash_a = info_hash_of(&torrent_a);
    let owner_a = owner_shard(&hash_a, SHARDS);
    let mut tried = Vec::new();
    let mut b = None;
    for k in 0..SHARD_CANDIDATES_MAX {
        // The same tree name each time (its data rewritten), a new torrent file.
        let tree = common::make_tree(dir.path(), "encshard-b", 1452 + k);
        let torrent = common::create_torrent(
            &tree,
            &format!("encshard-b-{k}.torrent"),
            &["--piece-length", "32K", "--no-date"],
        );
        let hash = info_hash_of(&torrent);
        let owner = owner_shard(&hash, SHARDS);
        tried.push((hex20(&hash), owner));
        if owner != owner_a {
            b = Some((tree, torrent));
            break;
        }
    }
    let Some((tree_b, torrent_b)) = b else {
        panic!("no data set of {SHARD_CANDIDATES_MAX} gave a torrent of the shard other than {owner_a}: {tried:?}");
    };
    eprintln!(
        "torrent a {} on shard {owner_a}, torrent b {} on shard {}",
        hex20(&hash_a),
        hex20(&info_hash_of(&torrent_b)),
        1 - owner_a
    );

    let seed_ip = ip(145, 1);
    let listen = SocketAddr::from((seed_ip, free_port(seed_ip)));
    let mut cmd = Command::new(common::ringseed_bin());
    cmd.arg("seed")
        .arg(&torrent_a)
        .arg(&torrent_b)
        .arg("--data")
        .arg(dir.path())
        .args(["--listen", &listen.to_string()])
        .args(["--bind-address", &seed_ip.to_string()])
        .args(["--shards", &SHARDS.to_string(), "--no-dht"])
        // The handoff count is a debug line of the stop report.
        .env("RINGSEED_LOG", "info,ringseed::cli::session_run=debug");
    let mut seed = Daemon::spawn_command("ringseed seed --shards 2", cmd);
    let seed_addr = seed.wait_listening("ringseed", listen);

    // Leechers 0..3 fetch torrent a, 3..6 torrent b, each from its own address.
    let mut specs = Vec::new();
    let mut plan = Vec::new();
    for (which, torrent, tree, base) in [
        ("a", &torrent_a, &tree_a, 10u8),
        ("b", &torrent_b, &tree_b, 20u8),
    ] {
        for k in 0..LEECHERS_PER_TORRENT {
            let at = ip(145, base + k);
            let out = dir.path().join(format!("lt-out-{which}{k}"));
            specs.push(leecher_spec("forced_rc4", at, torrent, &out, seed_addr));
            plan.push((which, at, tree, out));
        }
    }
    let started = Instant::now();
    let mut lt = LtSwarm::start(
        "libtorrent leechers (enc=forced_rc4, 2 torrents)",
        &specs,
        &[],
        SWARM_DEADLINE,
        true,
    );
    for (i, (which, at, _, _)) in plan.iter().enumerate() {
        let left = DOWNLOAD_WAIT_MAX.saturating_sub(started.elapsed());
        if let Err(why) = lt.wait_done(i, left) {
            panic!(
                "libtorrent leecher {i} ({at}, torrent {which}, enc=forced_rc4) did not complete \
                 from the 2-shard seed {seed_addr} within {DOWNLOAD_WAIT_MAX:?}: {why}\n\
                 its peers: {:?}\n{}\n{}",
                lt.peers(i),
                lt.describe(),
                seed.describe()
            );
        }
    }
    eprintln!(
        "6 libtorrent leechers (enc=forced_rc4) of 2 torrents done in {:?}",
        started.elapsed()
    );
    for (i, (which, _, tree, out)) in plan.iter().enumerate() {
        let bad = compare_tree(tree, out);
        assert!(
            bad.is_empty(),
            "leecher {i} (torrent {which}): {bad:#?}\n{}\n{}",
            lt.describe(),
            seed.describe()
        );
        assert_enc(&lt, i, seed_ip, "rc4", &|| seed.describe());
    }
    stop_swarm(&mut lt);
    seed.terminate_cleanly();
    match seed
        .stderr()
        .lines()
        .find(|l| l.contains("connections handed between shards"))
    {
        Some(line) => eprintln!("{line}"),
        None => eprintln!("(no `connections handed between shards` line in the seed's stderr)"),
    }
}

#[test]
fn control_libtorrent_reports_the_encryption_it_used() {
    for (enc, name, seed_no, d) in [
        ("forced_rc4", "encctlrc4", 1461, 101u8),
        ("forced_both", "encctlboth", 1462, 111),
    ] {
        let t = untracked_torrent(name, seed_no, false);
        let mut seed = lt_seed(&t, enc, ip(145, d));
        let out = t.dir.path().join("lt-out");
        let mut lt = LtSwarm::start(
            &format!("libtorrent leecher (enc={enc})"),
            &[leecher_spec(
                enc,
                ip(145, d + 1),
                &t.torrent,
                &out,
                seed.addr(0),
            )],
            &[],
            SWARM_DEADLINE,
            true,
        );
        if let Err(why) = lt.wait_done(0, DOWNLOAD_WAIT_MAX) {
            panic!(
                "libtorrent-only enc={enc} transfer failed: {why}\n{}\n{}",
                lt.describe(),
                seed.describe()
            );
        }
        let bad = compare_tree(&t.tree, &out);
        assert!(bad.is_empty(), "{bad:#?}");
        assert_enc(&lt, 0, ip(145, d), expected_level(enc), &|| seed.describe());
        assert_enc(&seed, 0, ip(145, d + 1), expected_level(enc), &|| {
            lt.describe()
        });
        stop_swarm(&mut lt);
        stop_swarm(&mut seed);
    }
}
