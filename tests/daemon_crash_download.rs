//! kill -9 during a download from a libtorrent seed, three times at random
//! moments (the seed of the moments is printed), then a restart each time:
//! the download completes byte-identical, and at least 90 % of the pieces
//! verified before each kill are had again after the restart without
//! being downloaded again (recorded, or found by the check of the files
//! that changed since the last save).
//!
//! opentracker and the libtorrent seed run on 127.0.113.1 and .2, the
//! daemon on .3, its download rate limited so the download lasts about
//! 15 s. Every wait is bounded.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::daemon::{state_of, u64_of, Dirs, RingDaemon};
use common::engine::{compare_tree, info_hash_of, os, start_libtorrent, tracked_torrent};
use common::XorShift64;

#[test]
fn kill9_three_times_during_a_download_loses_nothing_recorded() {
    let t = tracked_torrent("crashdl", 1234, Ipv4Addr::new(127, 0, 113, 1), "32K");
    let total: u64 = t.tree.files.iter().map(|f| f.length).sum();
    let mut lt = start_libtorrent(
        "libtorrent seed",
        "seed",
        &t.torrent,
        &t.tree.save_dir,
        Ipv4Addr::new(127, 0, 113, 2),
        Duration::from_secs(400),
    );
    if let Err(why) = lt.wait_line(Duration::from_secs(60), |l| l.contains("seeding on")) {
        panic!("libtorrent never seeded: {why}\n{}", lt.describe());
    }
    t.tracker
        .wait_seeders(info_hash_of(&t.torrent), 1, Duration::from_secs(30));
    let hash = ringseed::InfoHash(info_hash_of(&t.torrent)).to_hex();
    let dirs = Dirs::new();
    let config = dirs.path("ringseed.toml");
    let rate = (total / 15).max(16 * 1024);
    std::fs::write(&config, format!("[limits]\ndownload_rate = {rate}\n")).unwrap();
    let args = [os("--config"), os(&config)];
    let ip = Ipv4Addr::new(127, 0, 113, 3);
    let mut d = RingDaemon::start("daemon", &dirs, ip, &args);
    d.ctl(&["add", &t.torrent.to_string_lossy()]);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("kill moments from seed {seed}");
    let mut rng = XorShift64::new(seed);
    for round in 1..=3 {
        let wait = Duration::from_millis(1500 + rng.next_u64() % 3000);
        std::thread::sleep(wait);
        let before = d.torrent(&hash).expect("torrent listed");
        let had = u64_of(&before, "pieces_have");
        d.kill9();
        let again = RingDaemon::start(&format!("daemon after kill {round}"), &dirs, ip, &args);
        d = again;
        let after = d.wait_torrent(&hash, Duration::from_secs(60), "checked", |t| {
            !state_of(t).contains("check")
        });
        let kept = u64_of(&after, "pieces_have");
        eprintln!("kill {round} after {wait:?}: {had} pieces before, {kept} after the restart");
        assert!(
            kept * 10 >= had * 9,
            "kill {round}: {had} pieces verified before kill -9, only {kept} had after the restart\n{}",
            d.proc.describe()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let t = d.torrent(&hash).expect("torrent listed");
        if state_of(&t) == "seeding" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the download did not finish: {t}\n{}",
            d.proc.describe()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let bad = compare_tree(&t.tree, &dirs.downloads);
    assert!(bad.is_empty(), "{bad:#?}\n{}", d.proc.describe());
    d.proc.terminate_cleanly();
    lt.terminate_cleanly();
}
