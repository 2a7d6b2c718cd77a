//! A peer given with `--peer` is dialled again after a refusal (issue 10,
//! item 2): a download started 3 s before its seeder is refused, logs why
//! and when it retries, and completes once the seeder listens.
//!
//! Before the fix the address was dialled once and dropped: the download sat
//! with no peer for ever (here: it would not exit within `DOWNLOAD_WAIT_MAX`).

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::thread;
use std::time::Duration;

use common::engine::{free_port, os, Daemon};
use common::payload::single_file;

const SEED_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 63, 1);
const DOWNLOADER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 63, 2);
/// Longest the download may take once the seeder is started (first retry
/// after 10 s, plus the transfer).
const DOWNLOAD_WAIT_MAX: Duration = Duration::from_secs(60);

#[test]
fn a_peer_given_with_peer_is_retried_until_it_listens() {
    let dir = common::tempdir();
    let len = 500_000;
    let p = single_file(dir.path(), "late.bin", len, 63, None, 32 * 1024);
    let seed_addr = SocketAddr::from((SEED_IP, free_port(SEED_IP)));
    let out = dir.path().join("out");
    let listen = format!("{DOWNLOADER_IP}:{}", free_port(DOWNLOADER_IP));
    let mut download = Daemon::spawn(
        "download",
        &[
            os("download"),
            os("--no-dht"),
            os(&p.torrent),
            os("-o"),
            os(&out),
            os("--peer"),
            os(seed_addr.to_string()),
            os("--listen"),
            os(listen),
            os("--bind-address"),
            os(DOWNLOADER_IP.to_string()),
        ],
    );
    // The seeder comes up 3 s later: the first dial was refused.
    thread::sleep(Duration::from_secs(3));
    let mut seed = Daemon::spawn(
        "seed",
        &[
            os("seed"),
            os("--no-dht"),
            os(&p.torrent),
            os("--data"),
            os(&p.data_dir),
            os("--listen"),
            os(seed_addr.to_string()),
            os("--bind-address"),
            os(SEED_IP.to_string()),
        ],
    );
    let status = download.wait_exit(DOWNLOAD_WAIT_MAX);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "the download did not complete after its peer came up\n{}\n{}",
        download.describe(),
        seed.describe()
    );
    let got = std::fs::read(out.join("late.bin")).expect("the downloaded file");
    assert!(got == *p.bytes, "the downloaded bytes differ");
    // The refusal was logged with its reason and when the retry comes.
    let needle = format!("connect to {seed_addr} failed");
    let log = download.stderr();
    let line = log
        .lines()
        .find(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no `{needle}` line\n{}", download.describe()));
    assert!(
        line.contains("Connection refused") && line.contains("(retry in 10 s)"),
        "{line}"
    );
    seed.terminate_cleanly();
}
