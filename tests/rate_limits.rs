//! Rate limits end to end (issue 5): `ringseed seed --upload-limit`
//! serving `ringseed-bench leech`, `ringseed download --download-limit`
//! from an unlimited seed, a global upload limit over two shards with a
//! torrent on each, and per-torrent upload limits. Each measured rate must
//! lie within `LOW..HIGH` of its limit: functional checks with a generous
//! tolerance (the machine is shared), not speed claims.
//!
//! Loopback addresses 127.0.50.1-8; every child is killed by pid on drop;
//! every wait is bounded.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::engine::*;
use common::*;

/// Accepted measured/limit ratios.
const LOW: f64 = 0.7;
const HIGH: f64 = 1.2;
/// 4 MiB/s, the limit of most runs (`4M` on the command line).
const LIMIT_4M: f64 = 4.0 * 1024.0 * 1024.0;
const PIECE_LENGTH: &str = "262144";
/// Seconds the synthetic leechers run.
const LEECH_SECONDS: &str = "3";
/// Longest a leech run may take, start and report included.
const LEECH_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a limited download may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(20);

fn bench_bin() -> Command {
    Command::new(common::bench_bin_path())
}

/// `count` torrents of `size` bytes (payload seeds 11, 12, ...) with their
/// data under `dir/data`; returns the .torrent paths in seed order.
fn make_torrents(dir: &Path, count: u32, size: u64) -> Vec<PathBuf> {
    let tdir = dir.join("torrents");
    let out = run_with_timeout(
        bench_bin()
            .arg("make-torrent")
            .args(["--count", &count.to_string(), "--payload-seed", "11"])
            .args(["--size", &size.to_string(), "--piece-length", PIECE_LENGTH])
            .arg("-o")
            .arg(&tdir)
            .arg("--data-dir")
            .arg(dir.join("data")),
        RINGSEED_TIMEOUT,
    );
    out.assert_code(0);
    (0..count)
        .map(|i| tdir.join(format!("ringseed-bench-{}-{size}.torrent", 11 + i)))
        .collect()
}

/// Runs 8 leechers for `LEECH_SECONDS` on `torrents`; returns the report.
fn leech(torrents: &[PathBuf], target: SocketAddr) -> serde_json::Value {
    let mut cmd = bench_bin();
    cmd.arg("leech");
    for t in torrents {
        cmd.arg("--torrent").arg(t);
    }
    cmd.args(["--target", &target.to_string()])
        .args(["--peers", "8", "--duration", LEECH_SECONDS])
        .args(["--payload-seed", "11", "--json"]);
    let out = run_with_timeout(&mut cmd, LEECH_TIMEOUT);
    out.assert_code(0);
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("report is not JSON: {e}\n{}", out.describe()))
}

/// Bytes per second the leechers received, checked for bad blocks.
fn leech_rate(r: &serde_json::Value) -> f64 {
    assert_eq!(r["blocks_bad"].as_u64(), Some(0), "bad blocks\n{r:#}");
    let bytes = r["bytes"].as_u64().unwrap_or(0) as f64;
    let wall = r["wall_s"].as_f64().unwrap_or(0.0);
    assert!(wall > 0.0, "no duration\n{r:#}");
    bytes / wall
}

fn assert_near(what: &str, measured: f64, limit: f64, context: &str) {
    let ratio = measured / limit;
    eprintln!("{what}: {measured:.0} B/s for a limit of {limit:.0} B/s ({ratio:.2}x)");
    assert!(
        (LOW..=HIGH).contains(&ratio),
        "{what}: {measured:.0} B/s is {ratio:.2}x the limit {limit:.0} B/s \
         (accepted {LOW}..{HIGH})\n{context}"
    );
}

/// The shard of `shards` that owns a torrent (as the session places it).
fn shard_of(torrent: &Path, shards: usize) -> usize {
    let hash = ringseed::info_hash::InfoHash(info_hash_of(torrent));
    ringseed::runtime::shard::shard_of(&hash, shards)
}

/// `--upload-limit 4M`: 8 synthetic leechers get 4 MiB/s together, and
/// with every peer unchoked (`--upload-slots unlimited`) the limit is
/// shared fairly: every peer gets bytes, Jain's index at least 0.9.
#[test]
fn upload_limit_caps_what_a_seed_sends() {
    let dir = tempdir();
    let torrents = make_torrents(dir.path(), 1, 16 << 20);
    let ip = Ipv4Addr::new(127, 0, 50, 1);
    let (mut seed, addr) = start_ringseed_seed(
        "seed --upload-limit 4M",
        &torrents[0],
        &dir.path().join("data"),
        ip,
        &[
            "--upload-limit",
            "4M",
            "--upload-slots",
            "unlimited",
            "--shards",
            "1",
        ],
    );
    let r = leech(&torrents, addr);
    let rate = leech_rate(&r);
    assert_near("upload limit", rate, LIMIT_4M, &seed.describe());
    let jain = r["peers"]["jain_index"].as_f64().unwrap_or(0.0);
    let min = r["peers"]["rate_min_mb_per_s"].as_f64().unwrap_or(0.0);
    eprintln!("upload limit: Jain's index {jain:.3}, slowest peer {min:.3} MB/s");
    assert!(min > 0.0 && jain >= 0.9, "unfair share of the limit\n{r:#}");
    seed.terminate_cleanly();
}

/// `--download-limit 4M`: a 12 MiB download from an unlimited seed takes
/// about 3 s (unlimited, it takes well under one on loopback), timed from
/// when the downloader listens to its `complete:` line.
#[test]
fn download_limit_caps_what_a_download_receives() {
    let dir = tempdir();
    let size: u64 = 12 << 20;
    let torrents = make_torrents(dir.path(), 1, size);
    let (mut seed, addr) = start_ringseed_seed(
        "seed",
        &torrents[0],
        &dir.path().join("data"),
        Ipv4Addr::new(127, 0, 50, 3),
        &["--shards", "1"],
    );
    let out = dir.path().join("out");
    let peer = addr.to_string();
    let mut dl = start_ringseed_download(
        "download --download-limit 4M",
        &torrents[0],
        &out,
        Ipv4Addr::new(127, 0, 50, 4),
        &["--peer", &peer, "--download-limit", "4M", "--shards", "1"],
    );
    // Timed from when it listens: its start-up (the data check, the ring)
    // is not part of the download.
    let dl_ip = Ipv4Addr::new(127, 0, 50, 4);
    dl.wait_listening("ringseed", SocketAddr::from((dl_ip, 0)));
    let started = Instant::now();
    let complete = dl.wait_line(DOWNLOAD_TIMEOUT, |l| l.contains("complete:"));
    let elapsed = started.elapsed().as_secs_f64();
    assert!(complete.is_ok(), "{complete:?}\n{}", dl.describe());
    let status = dl.wait_exit(DOWNLOAD_TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "download did not finish in {DOWNLOAD_TIMEOUT:?}\n{}\n{}",
        dl.describe(),
        seed.describe()
    );
    let name = format!("ringseed-bench-11-{size}");
    let got = std::fs::read(out.join(&name)).unwrap_or_default();
    let want = std::fs::read(dir.path().join("data").join(&name)).unwrap_or_default();
    assert!(
        got.len() as u64 == size && got == want,
        "downloaded data differs"
    );
    assert_near(
        "download limit",
        size as f64 / elapsed,
        LIMIT_4M,
        &dl.describe(),
    );
    seed.terminate_cleanly();
}

/// `--shards 2 --upload-limit 4M` with one torrent on each shard: the two
/// shards' shares add up to the global limit, and both torrents move.
#[test]
fn global_upload_limit_holds_over_two_shards() {
    let dir = tempdir();
    let all = make_torrents(dir.path(), 8, 4 << 20);
    let on = |shard: usize| {
        all.iter()
            .find(|t| shard_of(t, 2) == shard)
            .cloned()
            .unwrap_or_else(|| panic!("no torrent of the 8 lands on shard {shard}"))
    };
    let pair = vec![on(0), on(1)];
    let second = pair[1].to_string_lossy().into_owned();
    let (mut seed, addr) = start_ringseed_seed(
        "seed --shards 2 --upload-limit 4M",
        &pair[0],
        &dir.path().join("data"),
        Ipv4Addr::new(127, 0, 50, 5),
        &[second.as_str(), "--upload-limit", "4M", "--shards", "2"],
    );
    let r = leech(&pair, addr);
    let rate = leech_rate(&r);
    assert_near(
        "global upload limit, 2 shards",
        rate,
        LIMIT_4M,
        &seed.describe(),
    );
    let per = r["per_torrent"].as_array().cloned().unwrap_or_default();
    assert_eq!(per.len(), 2, "{r:#}");
    for t in &per {
        assert!(
            t["bytes"].as_u64().unwrap_or(0) > 0,
            "a torrent starved\n{r:#}"
        );
    }
    seed.terminate_cleanly();
}

/// `--torrent-upload-limit 2M` with two torrents on one shard: each is
/// held to 2 MiB/s, so 4 MiB/s together.
#[test]
fn per_torrent_upload_limit_holds_each_torrent() {
    let dir = tempdir();
    let torrents = make_torrents(dir.path(), 2, 8 << 20);
    let second = torrents[1].to_string_lossy().into_owned();
    let (mut seed, addr) = start_ringseed_seed(
        "seed --torrent-upload-limit 2M",
        &torrents[0],
        &dir.path().join("data"),
        Ipv4Addr::new(127, 0, 50, 7),
        &[
            second.as_str(),
            "--torrent-upload-limit",
            "2M",
            "--shards",
            "1",
        ],
    );
    let r = leech(&torrents, addr);
    let wall = r["wall_s"].as_f64().unwrap_or(0.0);
    assert!(wall > 0.0, "{r:#}");
    let per = r["per_torrent"].as_array().cloned().unwrap_or_default();
    assert_eq!(per.len(), 2, "{r:#}");
    for t in &per {
        let rate = t["bytes"].as_u64().unwrap_or(0) as f64 / wall;
        assert_near(
            "per-torrent upload limit",
            rate,
            LIMIT_4M / 2.0,
            &seed.describe(),
        );
    }
    seed.terminate_cleanly();
}

/// `--global-upload-slots 2` with `--upload-slots 8`: the global budget
/// caps the torrent's slots, so of 8 leechers only the 2 regular slots and
/// the optimistic one get bytes (Jain's index about 3/8); without it all 8
/// do. A slot cap, not a rate, so no limit on bytes here.
#[test]
fn global_upload_slots_cap_a_torrents_slots() {
    let dir = tempdir();
    let torrents = make_torrents(dir.path(), 1, 16 << 20);
    let ip = Ipv4Addr::new(127, 0, 50, 8);
    for global in ["0", "2"] {
        let (mut seed, addr) = start_ringseed_seed(
            &format!("seed --global-upload-slots {global}"),
            &torrents[0],
            &dir.path().join("data"),
            ip,
            &[
                "--upload-slots",
                "8",
                "--global-upload-slots",
                global,
                "--shards",
                "1",
            ],
        );
        let r = leech(&torrents, addr);
        let peers = &r["peers"];
        let jain = peers["jain_index"].as_f64().unwrap_or(1.0);
        let median = peers["rate_median_mb_per_s"].as_f64().unwrap_or(-1.0);
        let min = peers["rate_min_mb_per_s"].as_f64().unwrap_or(0.0);
        eprintln!("global slots {global}: jain {jain:.3}, median {median:.2} MB/s");
        if global == "0" {
            assert!(
                min > 0.0,
                "without a global cap every peer gets bytes\n{r:#}"
            );
        } else {
            assert!(
                median == 0.0 && jain <= 0.5,
                "at most 4 of 8 peers served\n{r:#}"
            );
            assert!(r["bytes"].as_u64().unwrap_or(0) > 0, "{r:#}");
        }
        seed.terminate_cleanly();
    }
}
