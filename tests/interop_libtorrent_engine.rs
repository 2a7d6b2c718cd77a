//! ringseed and libtorrent (python3-libtorrent) trade a multi-file torrent
//! both ways through opentracker: libtorrent downloads from `ringseed seed`
//! (127.0.4.1-3), and `ringseed download` fetches from a libtorrent seed
//! (127.0.4.11-13). Each download is checked byte for byte.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::engine::*;
use common::*;

const DOWNLOAD_WAIT_MAX: Duration = Duration::from_secs(120);

#[test]
fn libtorrent_downloads_from_ringseed() {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "ltdown", 75);
    let probe = create_torrent(
        &tree,
        "probe.torrent",
        &["--piece-length", "32K", "--no-date"],
    );
    let tracker = Tracker::start(
        dir.path(),
        Ipv4Addr::new(127, 0, 4, 1),
        &[info_hash_of(&probe)],
    );
    let torrent = create_torrent(
        &tree,
        "ltdown.torrent",
        &[
            "--piece-length",
            "32K",
            "--no-date",
            "--tracker",
            &tracker.announce,
        ],
    );
    let (mut seed, _) = start_ringseed_seed(
        "ringseed seed",
        &torrent,
        &tree.save_dir,
        Ipv4Addr::new(127, 0, 4, 2),
        &[],
    );
    let out = dir.path().join("lt-out");
    let mut lt = start_libtorrent(
        "libtorrent download",
        "download",
        &torrent,
        &out,
        Ipv4Addr::new(127, 0, 4, 3),
        DOWNLOAD_WAIT_MAX,
    );
    let context = format!("{}\nopentracker log:\n{}", seed.describe(), tracker.log());
    wait_all_ok(
        &mut [&mut lt],
        DOWNLOAD_WAIT_MAX + Duration::from_secs(10),
        &context,
    );
    let bad = compare_tree(&tree, &out);
    assert!(bad.is_empty(), "{bad:#?}\n{}\n{context}", lt.describe());
    seed.terminate_cleanly();
}

#[test]
fn ringseed_downloads_from_libtorrent() {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "ltseed", 77);
    let probe = create_torrent(
        &tree,
        "probe.torrent",
        &["--piece-length", "32K", "--no-date"],
    );
    let tracker = Tracker::start(
        dir.path(),
        Ipv4Addr::new(127, 0, 4, 11),
        &[info_hash_of(&probe)],
    );
    let torrent = create_torrent(
        &tree,
        "ltseed.torrent",
        &[
            "--piece-length",
            "32K",
            "--no-date",
            "--tracker",
            &tracker.announce,
        ],
    );
    let mut lt = start_libtorrent(
        "libtorrent seed",
        "seed",
        &torrent,
        &tree.save_dir,
        Ipv4Addr::new(127, 0, 4, 12),
        DOWNLOAD_WAIT_MAX + Duration::from_secs(60),
    );
    if let Err(why) = lt.wait_line(Duration::from_secs(60), |l| l.contains("seeding on")) {
        panic!(
            "the libtorrent seed did not start: {why}\n{}",
            lt.describe()
        );
    }
    let out = dir.path().join("rs-out");
    let mut dl = start_ringseed_download(
        "ringseed download",
        &torrent,
        &out,
        Ipv4Addr::new(127, 0, 4, 13),
        &[],
    );
    let context = format!("{}\nopentracker log:\n{}", lt.describe(), tracker.log());
    wait_all_ok(&mut [&mut dl], DOWNLOAD_WAIT_MAX, &context);
    let bad = compare_tree(&tree, &out);
    assert!(bad.is_empty(), "{bad:#?}\n{}\n{context}", dl.describe());
}
