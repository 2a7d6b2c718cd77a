//! `ringseed download` without `--seed` tells the tracker `completed` before
//! it stops (issue 10, item 3): private trackers count a snatch only from
//! that event. An in-test HTTP tracker records the downloader's events; they
//! must be `started`, `completed` (with nothing left), then `stopped`.
//!
//! Before the fix the session was stopped as soon as the torrent finished,
//! before the tick that would have sent `completed`: the tracker saw only
//! `started` and `stopped`.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::engine::{free_port, os, start_ringseed_seed};
use common::http_tracker::HttpTracker;
use common::payload::single_file;

const TRACKER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 62, 1);
const SEED_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 62, 2);
const DOWNLOADER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 62, 3);
/// Longest the seed may take to announce itself.
const ANNOUNCE_WAIT_MAX: Duration = Duration::from_secs(30);

#[test]
fn a_download_without_seed_announces_completed_before_stopped() {
    let dir = common::tempdir();
    let tracker = HttpTracker::start(TRACKER_IP);
    let len = 700_000;
    let p = single_file(
        dir.path(),
        "snatch.bin",
        len,
        62,
        Some(&tracker.url),
        32 * 1024,
    );
    let (mut seed, _) = start_ringseed_seed("seed", &p.torrent, &p.data_dir, SEED_IP, &[]);
    let (listed, seen) = tracker.wait_for(ANNOUNCE_WAIT_MAX, |a| {
        a.iter().any(|x| x.addr.ip() == IpAddr::V4(SEED_IP))
    });
    assert!(
        listed,
        "the seed never announced: {seen:?}\n{}",
        seed.describe()
    );

    let out = dir.path().join("out");
    let listen = format!("{DOWNLOADER_IP}:{}", free_port(DOWNLOADER_IP));
    let run = common::ringseed([
        os("download"),
        os("--no-dht"),
        os(&p.torrent),
        os("-o"),
        os(&out),
        os("--listen"),
        os(listen),
        os("--bind-address"),
        os(DOWNLOADER_IP.to_string()),
    ]);
    run.assert_code(0);
    let got = std::fs::read(out.join("snatch.bin")).expect("the downloaded file");
    assert!(got == *p.bytes, "the downloaded bytes differ");

    let mine: Vec<_> = tracker
        .announces()
        .into_iter()
        .filter(|x| x.addr.ip() == IpAddr::V4(DOWNLOADER_IP))
        .collect();
    let events: Vec<&str> = mine.iter().map(|x| x.event.as_str()).collect();
    assert_eq!(
        events,
        ["started", "completed", "stopped"],
        "{mine:?}\n{}",
        run.describe()
    );
    assert_eq!(mine[1].left, Some(0), "completed with bytes left: {mine:?}");
    seed.terminate_cleanly();
}
