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
    t.tracker
        .wait_seeders(info_hash_of(&t.torrent), 1, Duration::from_secs(30));
    let out = t.dir.path().join("aria-out");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{e}"));
    let mut aria = start_aria2c("aria2c", &t.torrent, &out, Ipv4Addr::new(127, 0, 3, 3));
    let context = format!("{}\nopentracker log:\n{}", seed.describe(), t.tracker.log());
    wait_all_ok(&mut [&mut aria], DOWNLOAD_WAIT_MAX, &context);
    let bad = compare_tree(&t.tree, &out);
    assert!(bad.is_empty(), "{bad:#?}\n{}\n{context}", aria.describe());
    seed.terminate_cleanly();
}
