//! Smoke runs of `ringseed-bench` (issue 4): a few seconds of 8 synthetic
//! leechers against the trivial seeder (`ringseed-bench serve`) and against
//! `ringseed seed` serving a payload written by `make-torrent`, on one
//! torrent and spread over two (`make-torrent --count 2`, `leech
//! --torrent-dir`). Each must move bytes (nonzero goodput) and never see a
//! bad block.
//!
//! Every child is killed by pid on drop; every wait is bounded.

mod common;

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::engine::*;
use common::*;

/// Payload of the smoke runs.
const SEED: &str = "11";
const SIZE: &str = "16777216";
const PIECE_LENGTH: &str = "262144";
/// Longest a leech run (2 s of load) may take, start and report included.
const LEECH_TIMEOUT: Duration = Duration::from_secs(60);

fn bench_bin() -> Command {
    Command::new(common::bench_bin_path())
}

fn make_torrent(dir: &Path) -> std::path::PathBuf {
    let torrent = dir.join("bench.torrent");
    let out = run_with_timeout(
        bench_bin()
            .arg("make-torrent")
            .args(["--payload-seed", SEED, "--size", SIZE])
            .args(["--piece-length", PIECE_LENGTH])
            .arg("-o")
            .arg(&torrent)
            .arg("--data-dir")
            .arg(dir.join("data")),
        RINGSEED_TIMEOUT,
    );
    out.assert_code(0);
    torrent
}

/// Runs 8 leechers for 2 s against `target`; returns the JSON report.
fn leech(torrent: &Path, target: SocketAddr, seeder_pid: u32) -> serde_json::Value {
    leech_with(
        &[OsStr::new("--torrent"), torrent.as_os_str()],
        target,
        seeder_pid,
    )
}

/// Runs 8 leechers for 2 s against `target` on the torrents `which` names
/// (--torrent / --torrent-dir arguments); returns the JSON report.
fn leech_with(which: &[&OsStr], target: SocketAddr, seeder_pid: u32) -> serde_json::Value {
    let out = run_with_timeout(
        bench_bin()
            .arg("leech")
            .args(which)
            .args(["--target", &target.to_string()])
            .args(["--peers", "8", "--duration", "2", "--payload-seed", SEED])
            .args(["--seeder-pid", &seeder_pid.to_string(), "--json"]),
        LEECH_TIMEOUT,
    );
    out.assert_code(0);
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("report is not JSON: {e}\n{}", out.describe()))
}

fn check_report(r: &serde_json::Value, what: &str) {
    let goodput = r["goodput_mb_per_s"].as_f64().unwrap_or(0.0);
    assert!(goodput > 0.0, "{what}: no goodput\n{r:#}");
    assert!(
        r["bytes"].as_u64().unwrap_or(0) > 0,
        "{what}: no bytes\n{r:#}"
    );
    assert_eq!(
        r["blocks_bad"].as_u64(),
        Some(0),
        "{what}: bad blocks\n{r:#}"
    );
    assert!(r["blocks_good"].as_u64().unwrap_or(0) > 0, "{what}\n{r:#}");
    assert_eq!(r["peers"]["count"].as_u64(), Some(8), "{what}\n{r:#}");
    assert_eq!(r["peers_connected"].as_u64(), Some(8), "{what}\n{r:#}");
    assert!(
        r["latency"]["samples"].as_u64().unwrap_or(0) > 0,
        "{what}\n{r:#}"
    );
}

#[test]
fn leechers_against_the_trivial_seeder() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = make_torrent(dir.path());
    let ip = Ipv4Addr::new(127, 0, 9, 50);
    let listen = SocketAddr::from((ip, free_port(ip)));
    let mut cmd = bench_bin();
    cmd.arg("serve")
        .args(["--listen", &listen.to_string()])
        .args(["--payload-seed", SEED, "--size", SIZE])
        .args(["--piece-length", PIECE_LENGTH, "--threads", "1"]);
    let mut serve = Daemon::spawn_command("ringseed-bench serve", cmd);
    let addr = serve.wait_listening("ringseed-bench", listen);
    let pid = pid_of(&listen.to_string());
    let r = leech(&torrent, addr, pid);
    check_report(&r, "against serve");
    serve.terminate_cleanly();
    let err = serve.stderr();
    assert!(err.contains("served"), "{}", serve.describe());
}

#[test]
fn leechers_against_ringseed_seed() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = make_torrent(dir.path());
    let ip = Ipv4Addr::new(127, 0, 9, 51);
    let (mut seed, addr) =
        start_ringseed_seed("ringseed seed", &torrent, &dir.path().join("data"), ip, &[]);
    let pid = pid_of(&torrent.to_string_lossy());
    let r = leech(&torrent, addr, pid);
    check_report(&r, "against ringseed seed");
    assert!(
        r["seeder"]["cpu_user_s"].as_f64().is_some(),
        "seeder CPU measured\n{r:#}"
    );
    seed.terminate_cleanly();
}

/// Two torrents (`make-torrent --count 2`, payload seeds 11 and 12) seeded
/// by one `ringseed seed`; 8 leechers from `--torrent-dir`, 4 per torrent.
/// Both torrents must move good bytes.
#[test]
fn leechers_spread_over_two_torrents() {
    let dir = tempfile::tempdir().unwrap();
    let tdir = dir.path().join("torrents");
    let out = run_with_timeout(
        bench_bin()
            .arg("make-torrent")
            .args(["--count", "2", "--payload-seed", SEED, "--size", SIZE])
            .args(["--piece-length", PIECE_LENGTH])
            .arg("-o")
            .arg(&tdir)
            .arg("--data-dir")
            .arg(dir.path().join("data")),
        RINGSEED_TIMEOUT,
    );
    out.assert_code(0);
    let names = [11, 12].map(|s| format!("ringseed-bench-{s}-{SIZE}"));
    let torrents = names.clone().map(|n| tdir.join(format!("{n}.torrent")));
    for n in &names {
        assert!(
            dir.path().join("data").join(n).is_file(),
            "{n}\n{}",
            out.describe()
        );
    }
    let ip = Ipv4Addr::new(127, 0, 9, 52);
    let second = torrents[1].to_string_lossy().into_owned();
    let (mut seed, addr) = start_ringseed_seed(
        "ringseed seed (2 torrents)",
        &torrents[0],
        &dir.path().join("data"),
        ip,
        &[second.as_str()],
    );
    let pid = pid_of(&torrents[0].to_string_lossy());
    let r = leech_with(&[OsStr::new("--torrent-dir"), tdir.as_os_str()], addr, pid);
    check_report(&r, "two torrents");
    assert_eq!(r["torrents"].as_u64(), Some(2), "{r:#}");
    let per = r["per_torrent"].as_array().expect("per_torrent list");
    assert_eq!(per.len(), 2, "{r:#}");
    for (t, (name, seed)) in per.iter().zip(names.iter().zip([11, 12])) {
        assert_eq!(t["name"].as_str(), Some(name.as_str()), "{r:#}");
        assert_eq!(t["payload_seed"].as_u64(), Some(seed), "{r:#}");
        assert_eq!(t["peers"].as_u64(), Some(4), "{r:#}");
        assert_eq!(t["peers_connected"].as_u64(), Some(4), "{r:#}");
        assert!(t["bytes"].as_u64().unwrap_or(0) > 0, "{r:#}");
        assert_eq!(t["blocks_bad"].as_u64(), Some(0), "{r:#}");
    }
    seed.terminate_cleanly();
}

/// The pid of our child whose command line holds `needle` (a path unique
/// to the test), found in /proc: `Daemon` keeps its child's pid to itself.
fn pid_of(needle: &str) -> u32 {
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .unwrap_or("");
        if ppid == me && String::from_utf8_lossy(&cmdline).contains(needle) {
            return pid;
        }
    }
    panic!("no child of ours runs with {needle:?}");
}

/// Synthetic-seeds mode: 3 seeds (127.0.9.60-62) serve the payload to
/// `ringseed download`, which must finish with the exact bytes.
#[test]
fn synthetic_seeds_serve_ringseed_download() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = make_torrent(dir.path());
    let first = Ipv4Addr::new(127, 0, 9, 60);
    let port = free_port(first);
    let listen = SocketAddr::from((first, port));
    let mut cmd = bench_bin();
    cmd.arg("serve")
        .args(["--listen", &listen.to_string(), "--seeds", "3"])
        .args(["--payload-seed", SEED, "--size", SIZE])
        .args(["--piece-length", PIECE_LENGTH, "--threads", "1"]);
    let mut seeds = Daemon::spawn_command("ringseed-bench serve --seeds 3", cmd);
    seeds.wait_listening("ringseed-bench", listen);
    let out = dir.path().join("out");
    let mut extra: Vec<String> = Vec::new();
    for i in 0..3u8 {
        extra.push("--peer".into());
        extra.push(format!("127.0.9.{}:{port}", 60 + i));
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut dl = start_ringseed_download(
        "ringseed download",
        &torrent,
        &out,
        Ipv4Addr::new(127, 0, 9, 70),
        &extra,
    );
    wait_all_ok(&mut [&mut dl], LEECH_TIMEOUT, &seeds.describe());
    let name = format!("ringseed-bench-{SEED}-{SIZE}");
    let got = std::fs::read(out.join(&name)).unwrap();
    let want = std::fs::read(dir.path().join("data").join(&name)).unwrap();
    assert!(got == want, "downloaded bytes differ from the payload");
    seeds.terminate_cleanly();
    let err = seeds.stderr();
    let conns = err
        .split(" connections")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(
        conns >= 3,
        "the download used every seed\n{}",
        seeds.describe()
    );
}
