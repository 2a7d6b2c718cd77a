//! The daemon's policies and run-time changes, each against the real
//! binary on loopback (127.0.112.x): a share limit stops a torrent that
//! reached its ratio; the queue runs only the allowed number of
//! downloads; a seeding torrent's data moves to another save path and it
//! seeds again from there (also after a restart); SIGHUP re-reads the
//! configuration file and says what changed. Every wait is bounded.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::daemon::{small_torrent, state_of, str_of, Dirs, RingDaemon};
use common::engine::{os, start_ringseed_download};

const STATE_WAIT: Duration = Duration::from_secs(60);

#[test]
fn a_torrent_that_reached_its_ratio_is_stopped() {
    let ip = Ipv4Addr::new(127, 0, 112, 1);
    let dirs = Dirs::new();
    let config = dirs.path("ringseed.toml");
    std::fs::write(&config, "[share]\nratio_limit = 0.5\naction = \"stop\"\n").unwrap();
    let (bytes, hash) = small_torrent(&dirs.downloads, "shared.bin", 2_000_000, 3);
    let file = dirs.path("shared.torrent");
    std::fs::write(&file, &bytes).unwrap();
    let d = RingDaemon::start("daemon", &dirs, ip, &[os("--config"), os(&config)]);
    d.ctl(&["add", &file.to_string_lossy()]);
    d.wait_torrent(&hash, STATE_WAIT, "seeding", |t| state_of(t) == "seeding");
    let out = dirs.path("leech");
    std::fs::create_dir_all(&out).unwrap();
    let mut leech = start_ringseed_download(
        "leecher",
        &file,
        &out,
        Ipv4Addr::new(127, 0, 112, 2),
        &["--peer", &d.addr.to_string()],
    );
    let exit = leech.wait_exit(Duration::from_secs(60));
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "{}", leech.describe());
    let t = d.wait_torrent(&hash, Duration::from_secs(20), "stopped", |t| {
        state_of(t) == "stopped"
    });
    assert!(
        d.proc.stderr().contains("share limit reached (ratio"),
        "{t}\n{}",
        d.proc.describe()
    );
}

#[test]
fn the_queue_runs_only_the_allowed_downloads() {
    let ip = Ipv4Addr::new(127, 0, 112, 3);
    let dirs = Dirs::new();
    let config = dirs.path("ringseed.toml");
    std::fs::write(
        &config,
        "[queue]\nenabled = true\nmax_active_downloads = 1\nignore_slow = false\n",
    )
    .unwrap();
    let d = RingDaemon::start("daemon", &dirs, ip, &[os("--config"), os(&config)]);
    // Torrents whose data nobody has: they stay downloading.
    let elsewhere = dirs.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let mut hashes = Vec::new();
    for i in 0..3u64 {
        let (b, h) = small_torrent(&elsewhere, &format!("q{i}.bin"), 100_000, 30 + i);
        let f = dirs.path(&format!("q{i}.torrent"));
        std::fs::write(&f, b).unwrap();
        d.ctl(&["add", &f.to_string_lossy()]);
        hashes.push(h);
    }
    let states = |d: &RingDaemon| -> Vec<String> {
        hashes
            .iter()
            .map(|h| {
                d.torrent(h)
                    .map_or("gone".into(), |t| state_of(&t).to_string())
            })
            .collect()
    };
    let want = ["downloading", "queued", "queued"];
    let deadline = Instant::now() + Duration::from_secs(20);
    while states(&d) != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(states(&d), want, "{}", d.proc.describe());
    d.ctl(&["stop", &hashes[0]]);
    let want = ["stopped", "downloading", "queued"];
    let deadline = Instant::now() + Duration::from_secs(10);
    while states(&d) != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(states(&d), want, "{}", d.proc.describe());
}

#[test]
fn a_seeding_torrent_moves_to_another_save_path_and_seeds_from_there() {
    let ip = Ipv4Addr::new(127, 0, 112, 4);
    let dirs = Dirs::new();
    let (bytes, hash) = small_torrent(&dirs.downloads, "moved.bin", 1_500_000, 9);
    let original = std::fs::read(dirs.downloads.join("moved.bin")).unwrap();
    let file = dirs.path("moved.torrent");
    std::fs::write(&file, &bytes).unwrap();
    let mut d = RingDaemon::start("daemon", &dirs, ip, &[]);
    d.ctl(&["add", &file.to_string_lossy()]);
    d.wait_torrent(&hash, STATE_WAIT, "seeding", |t| state_of(t) == "seeding");
    let target = dirs.path("archive");
    d.ctl(&["move", &target.to_string_lossy(), &hash]);
    let t = d.wait_torrent(&hash, STATE_WAIT, "seeding from the new path", |t| {
        state_of(t) == "seeding" && str_of(t, "save_path") == target.to_string_lossy()
    });
    assert!(!dirs.downloads.join("moved.bin").exists(), "{t}");
    assert_eq!(std::fs::read(target.join("moved.bin")).unwrap(), original);
    // A leecher gets it from the new place.
    let out = dirs.path("leech");
    std::fs::create_dir_all(&out).unwrap();
    let mut leech = start_ringseed_download(
        "leecher",
        &file,
        &out,
        Ipv4Addr::new(127, 0, 112, 5),
        &["--peer", &d.addr.to_string()],
    );
    let exit = leech.wait_exit(Duration::from_secs(60));
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "{}", leech.describe());
    assert_eq!(std::fs::read(out.join("moved.bin")).unwrap(), original);
    // The new save path is kept across a restart, with no check.
    std::thread::sleep(Duration::from_secs(6));
    d.proc.terminate_cleanly();
    drop(d);
    let d = RingDaemon::start("daemon restarted", &dirs, ip, &[]);
    let t = d.wait_torrent(&hash, STATE_WAIT, "seeding", |t| state_of(t) == "seeding");
    assert_eq!(str_of(&t, "save_path"), target.to_string_lossy());
    assert!(
        d.proc.stderr().contains("1 resumed without a check"),
        "{}",
        d.proc.describe()
    );
}

#[test]
fn sighup_rereads_the_configuration_and_says_what_changed() {
    let ip = Ipv4Addr::new(127, 0, 112, 6);
    let dirs = Dirs::new();
    let config = dirs.path("ringseed.toml");
    std::fs::write(&config, "[limits]\nupload_rate = 0\n").unwrap();
    let mut d = RingDaemon::start("daemon", &dirs, ip, &[os("--config"), os(&config)]);
    std::fs::write(&config, "[limits]\nupload_rate = \"1M\"\n").unwrap();
    d.proc.signal(libc::SIGHUP);
    let line = d
        .proc
        .wait_line(Duration::from_secs(10), |l| {
            l.contains("SIGHUP: configuration reloaded")
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", d.proc.describe()));
    assert!(
        line.contains("limits.upload_rate") && line.contains("1048576"),
        "{line}"
    );
    // A broken file is refused with the key and line; the daemon goes on.
    std::fs::write(&config, "[limits]\nupload_rate = 0\nbogus_key = 1\n").unwrap();
    d.proc.signal(libc::SIGHUP);
    let line = d
        .proc
        .wait_line(Duration::from_secs(10), |l| {
            l.contains("configuration not reloaded")
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", d.proc.describe()));
    assert!(line.contains("bogus_key"), "{line}");
    assert!(d.proc.poll_exit().is_none(), "{}", d.proc.describe());
    assert!(d.list().is_empty());
    d.proc.terminate_cleanly();
}
