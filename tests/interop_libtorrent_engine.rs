//! ringseed and libtorrent (python3-libtorrent) trade a multi-file torrent
//! both ways through opentracker: libtorrent downloads from `ringseed seed`
//! (127.0.4.1-3), and `ringseed download` fetches from a libtorrent seed
//! (127.0.4.11-13). Each download is checked byte for byte.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::engine::*;

const DOWNLOAD_WAIT_MAX: Duration = Duration::from_secs(120);

#[test]
fn libtorrent_downloads_from_ringseed() {
    let t = tracked_torrent("ltdown", 75, Ipv4Addr::new(127, 0, 4, 1), "32K");
    let (mut seed, _) = start_ringseed_seed(
        "ringseed seed",
        &t.torrent,
        &t.tree.save_dir,
        Ipv4Addr::new(127, 0, 4, 2),
        &[],
    );
    t.tracker
        .wait_seeders(info_hash_of(&t.torrent), 1, Duration::from_secs(30));
    let out = t.dir.path().join("lt-out");
    let mut lt = start_libtorrent(
        "libtorrent download",
        "download",
        &t.torrent,
        &out,
        Ipv4Addr::new(127, 0, 4, 3),
        DOWNLOAD_WAIT_MAX,
    );
    let context = format!("{}\nopentracker log:\n{}", seed.describe(), t.tracker.log());
    wait_all_ok(
        &mut [&mut lt],
        DOWNLOAD_WAIT_MAX + Duration::from_secs(10),
        &context,
    );
    let bad = compare_tree(&t.tree, &out);
    assert!(bad.is_empty(), "{bad:#?}\n{}\n{context}", lt.describe());
    seed.terminate_cleanly();
}

#[test]
fn ringseed_downloads_from_libtorrent() {
    let t = tracked_torrent("ltseed", 77, Ipv4Addr::new(127, 0, 4, 11), "32K");
    let mut lt = start_libtorrent(
        "libtorrent seed",
        "seed",
        &t.torrent,
        &t.tree.save_dir,
        Ipv4Addr::new(127, 0, 4, 12),
        DOWNLOAD_WAIT_MAX + Duration::from_secs(60),
    );
    if let Err(why) = lt.wait_line(Duration::from_secs(60), |l| l.contains("seeding on")) {
        panic!(
            "the libtorrent seed did not start: {why}\n{}",
            lt.describe()
        );
    }
    t.tracker
        .wait_seeders(info_hash_of(&t.torrent), 1, Duration::from_secs(30));
    let out = t.dir.path().join("rs-out");
    let mut dl = start_ringseed_download(
        "ringseed download",
        &t.torrent,
        &out,
        Ipv4Addr::new(127, 0, 4, 13),
        &[],
    );
    let context = format!("{}\nopentracker log:\n{}", lt.describe(), t.tracker.log());
    wait_all_ok(&mut [&mut dl], DOWNLOAD_WAIT_MAX, &context);
    let bad = compare_tree(&t.tree, &out);
    assert!(bad.is_empty(), "{bad:#?}\n{}\n{context}", dl.describe());
}
