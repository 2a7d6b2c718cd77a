//! aria2c downloads from `ringseed seed`, finding it through opentracker;
//! the download is byte-identical to the source. Addresses 127.0.3.1-3.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::engine::*;
use common::*;

const TRACKER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 3, 1);
const SEED_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 3, 2);
const ARIA_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 3, 3);
const DOWNLOAD_WAIT_MAX: Duration = Duration::from_secs(120);

#[test]
fn aria2c_downloads_from_ringseed() {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "aria", 73);
    let probe = create_torrent(
        &tree,
        "probe.torrent",
        &["--piece-length", "64K", "--no-date"],
    );
    let tracker = Tracker::start(dir.path(), TRACKER_IP, &[info_hash_of(&probe)]);
    let torrent = create_torrent(
        &tree,
        "aria.torrent",
        &[
            "--piece-length",
            "64K",
            "--no-date",
            "--tracker",
            &tracker.announce,
        ],
    );
    let (mut seed, _) = start_ringseed_seed("seed", &torrent, &tree.save_dir, SEED_IP, &[]);
    let out = dir.path().join("aria-out");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{e}"));
    let mut aria = start_aria2c("aria2c", &torrent, &out, ARIA_IP);
    let context = format!("{}\nopentracker log:\n{}", seed.describe(), tracker.log());
    wait_all_ok(&mut [&mut aria], DOWNLOAD_WAIT_MAX, &context);
    let bad = compare_tree(&tree, &out);
    assert!(bad.is_empty(), "{bad:#?}\n{}\n{context}", aria.describe());
    seed.terminate_cleanly();
}
