//! ringseed against ringseed, through a real tracker: one `ringseed seed`
//! and three `ringseed download` leechers started together find each other
//! through opentracker (no `--peer`), and each download of the multi-file
//! sample tree is byte-identical to the source. Addresses 127.0.2.1-5.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::engine::*;
use common::*;

const TRACKER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 2, 1);
const SEED_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 2, 2);
const DOWNLOAD_WAIT_MAX: Duration = Duration::from_secs(120);

#[test]
fn three_ringseed_leechers_download_from_a_ringseed_seed_via_opentracker() {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "swarm", 71);
    let probe = create_torrent(
        &tree,
        "probe.torrent",
        &["--piece-length", "32K", "--no-date"],
    );
    let hash = info_hash_of(&probe);
    let tracker = Tracker::start(dir.path(), TRACKER_IP, &[hash]);
    let torrent = create_torrent(
        &tree,
        "swarm.torrent",
        &[
            "--piece-length",
            "32K",
            "--no-date",
            "--tracker",
            &tracker.announce,
        ],
    );
    assert_eq!(
        info_hash_of(&torrent),
        hash,
        "the tracker URL is outside the info dict"
    );
    let (mut seed, _) = start_ringseed_seed("seed", &torrent, &tree.save_dir, SEED_IP, &[]);
    let outs: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("leech{i}")))
        .collect();
    let mut leechers: Vec<Daemon> = outs
        .iter()
        .enumerate()
        .map(|(i, out)| {
            let ip = Ipv4Addr::new(127, 0, 2, 3 + i as u8);
            start_ringseed_download(&format!("leech{i}"), &torrent, out, ip, &[])
        })
        .collect();
    {
        let mut all: Vec<&mut Daemon> = leechers.iter_mut().collect();
        let context = format!("{}\nopentracker log:\n{}", seed.describe(), tracker.log());
        wait_all_ok(&mut all, DOWNLOAD_WAIT_MAX, &context);
    }
    for (i, out) in outs.iter().enumerate() {
        let bad = compare_tree(&tree, out);
        assert!(
            bad.is_empty(),
            "leecher {i}: {bad:#?}\n{}",
            leechers[i].describe()
        );
        assert!(
            leechers[i].stderr().contains("complete: swarm"),
            "{}",
            leechers[i].describe()
        );
    }
    seed.terminate_cleanly();
}
