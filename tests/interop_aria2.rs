//! aria2c downloads from `ringseed seed`, finding it through opentracker;
//! the download is byte-identical to the source. Addresses 127.0.3.1-3.
//! aria2 sends its bitfield again after its first pieces: the engine must
//! merge it rather than drop the peer.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::engine::*;

const DOWNLOAD_WAIT_MAX: Duration = Duration::from_secs(120);

#[test]
fn aria2c_downloads_from_ringseed() {
    let t = tracked_torrent("aria", 73, Ipv4Addr::new(127, 0, 3, 1), "64K");
    let (mut seed, _) = start_ringseed_seed(
        "seed",
        &t.torrent,
        &t.tree.save_dir,
        Ipv4Addr::new(127, 0, 3, 2),
        &[],
    );
    aria2c_fetches_a_byte_exact_copy(&t, &seed, Ipv4Addr::new(127, 0, 3, 3));
    seed.terminate_cleanly();
}

/// Waits for the tracker to list the seed, then has aria2c (on `aria_ip`)
/// download the torrent and compares its copy byte for byte.
fn aria2c_fetches_a_byte_exact_copy(t: &Tracked, seed: &Daemon, aria_ip: Ipv4Addr) {
    t.tracker
        .wait_seeders(info_hash_of(&t.torrent), 1, Duration::from_secs(30));
    let out = t.dir.path().join("aria-out");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{e}"));
    let mut aria = start_aria2c("aria2c", &t.torrent, &out, aria_ip);
    let context = format!("{}\nopentracker log:\n{}", seed.describe(), t.tracker.log());
    wait_all_ok(&mut [&mut aria], DOWNLOAD_WAIT_MAX, &context);
    let bad = compare_tree(&t.tree, &out);
    assert!(bad.is_empty(), "{bad:#?}\n{}\n{context}", aria.describe());
}

/// The same download with `--send-path splice`: every block the seed sends
/// goes page cache -> pipe -> socket (the data was just written, so it is
/// cached), headers written into the pipe between the blocks. aria2c checks
/// every piece; the copy is compared byte for byte; the stop report counts
/// the blocks spliced. Addresses 127.0.3.4-6.
#[test]
fn aria2c_downloads_from_ringseed_over_the_splice_path() {
    let t = tracked_torrent("aria-splice", 74, Ipv4Addr::new(127, 0, 3, 4), "64K");
    let ip = Ipv4Addr::new(127, 0, 3, 5);
    let listen = std::net::SocketAddr::from((ip, free_port(ip)));
    let mut args: Vec<std::ffi::OsString> = vec![
        "seed".into(),
        t.torrent.clone().into(),
        "--data".into(),
        t.tree.save_dir.clone().into(),
        "--listen".into(),
        listen.to_string().into(),
        "--bind-address".into(),
        ip.to_string().into(),
        "--send-path".into(),
        "splice".into(),
    ];
    no_public_dht(&mut args);
    // The spliced-block count is a debug line of the stop report.
    let mut cmd = std::process::Command::new(common::ringseed_bin());
    cmd.args(&args)
        .env("RINGSEED_LOG", "info,ringseed::cli::session_run=debug");
    let mut seed = Daemon::spawn_command("seed (splice)", cmd);
    seed.wait_listening("ringseed", listen);
    aria2c_fetches_a_byte_exact_copy(&t, &seed, Ipv4Addr::new(127, 0, 3, 6));
    seed.terminate_cleanly();
    let log = seed.stderr();
    let spliced = log
        .lines()
        .filter(|l| l.contains(" blocks spliced)"))
        .find_map(|l| l.split(" blocks spliced)").next())
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok());
    match spliced {
        Some(n) => assert!(
            n > 0,
            "no block went down the splice path\n{}",
            seed.describe()
        ),
        None => panic!(
            "no `... downloaded N bytes, M blocks spliced)` line in the stop report\n{}",
            seed.describe()
        ),
    }
}
