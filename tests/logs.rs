//! What `ringseed` logs: the periodic status line (`--status-interval`), the
//! journald line shape (a `<N>` priority, no time stamp, when stderr is the
//! journal), and no tracker passkey anywhere in the log or in `info`.
//!
//! Everything runs on 127.0.62.0/24; trackers that fail are closed loopback
//! ports. Every wait is bounded; children are stopped by pid.

mod common;

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::engine::{free_port, os, start_ringseed_seed, Daemon};
use common::*;

/// Longest a log line may take to appear.
const LINE_WAIT_MAX: Duration = Duration::from_secs(20);

#[test]
fn status_line_every_interval() {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "status", 0x5747);
    let torrent = create_torrent(&tree, "status.torrent", &["--piece-length", "64K"]);
    let (mut seed, _) = start_ringseed_seed(
        "seed",
        &torrent,
        &tree.save_dir,
        Ipv4Addr::new(127, 0, 62, 1),
        &["--status-interval", "1"],
    );
    let deadline = Instant::now() + LINE_WAIT_MAX;
    let want = "INFO status: 1 torrent (1 seeding), 0 peers, up 0 B/s, down 0 B/s, uploaded 0 B, \
                downloaded 0 B";
    loop {
        let lines = seed.stderr().lines().filter(|l| l.contains(want)).count();
        if lines >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline && seed.poll_exit().is_none(),
            "fewer than two `{want}` lines within {LINE_WAIT_MAX:?} with --status-interval 1\n{}",
            seed.describe()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    seed.terminate_cleanly();
}

#[test]
fn status_interval_is_checked() {
    let out = ringseed([
        "seed",
        "--no-dht",
        "x.torrent",
        "--data",
        ".",
        "--status-interval",
        "86401",
    ]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("--status-interval"),
        "{}",
        out.describe()
    );
}

/// Runs `ringseed download` of complete data (it checks, says so and exits)
/// with stderr in a file, JOURNAL_STREAM naming `journal` (`None`: the file
/// itself); returns the log.
fn download_logging_to_file(journal: Option<&str>, label: &str) -> String {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "journal", 0x10c);
    let torrent = create_torrent(&tree, "journal.torrent", &["--piece-length", "64K"]);
    let log_path = dir.path().join(format!("{label}.log"));
    let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("log file: {e}"));
    let meta = log.metadata().unwrap_or_else(|e| panic!("stat log: {e}"));
    let stream = journal.map_or_else(|| format!("{}:{}", meta.dev(), meta.ino()), str::to_owned);
    let ip = Ipv4Addr::new(127, 0, 62, 2);
    let listen = SocketAddr::from((ip, free_port(ip)));
    let mut cmd = Command::new(ringseed_bin());
    cmd.args([
        os("download"),
        os("--no-dht"),
        os(&torrent),
        os("-o"),
        os(&tree.save_dir),
        os("--listen"),
        os(listen.to_string()),
        os("--bind-address"),
        os(ip.to_string()),
    ])
    .env("JOURNAL_STREAM", stream)
    .env_remove("RINGSEED_LOG")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(log);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let deadline = Instant::now() + RINGSEED_TIMEOUT;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{cmd:?} ({}):\n--- log ---\n{text}",
        exit_text(status)
    );
    text
}

/// Whether `line` starts with an RFC 3339 time stamp (`2026-12-06T...`).
fn starts_with_time(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 11 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[10] == b'T'
}

#[test]
fn journald_lines_have_a_priority_and_no_time() {
    let text = download_logging_to_file(None, "journal");
    assert!(
        text.lines().any(|l| l.starts_with("<6>journal: ")),
        "no `<6>` info line:\n{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("<6>complete: journal")),
        "no `<6>complete:` line:\n{text}"
    );
    for line in text.lines() {
        let prio = line
            .strip_prefix('<')
            .and_then(|r| r.split_once('>'))
            .map(|(n, _)| n);
        assert!(
            matches!(prio, Some("3" | "4" | "6" | "7")),
            "a journal line without a syslog priority: {line:?}\n{text}"
        );
        assert!(
            !line.contains(" INFO "),
            "a level word under journald: {line:?}"
        );
        let rest = line.split_once('>').map_or(line, |(_, r)| r);
        assert!(
            !starts_with_time(rest),
            "a time stamp under journald: {line:?}"
        );
    }
    // A JOURNAL_STREAM naming another file is not the journal: plain lines.
    let plain = download_logging_to_file(Some("1:1"), "plain");
    assert!(
        plain
            .lines()
            .any(|l| starts_with_time(l) && l.contains(" INFO complete: journal")),
        "plain lines need a time stamp and a level:\n{plain}"
    );
    assert!(!plain.contains("<6>"), "{plain}");
}

/// A loopback port with nothing listening on TCP or UDP (bound, then freed).
fn closed_port(ip: Ipv4Addr) -> u16 {
    let port = TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no port on {ip}: {e}"));
    // The same number on UDP, to be sure nothing answers there either.
    drop(UdpSocket::bind((ip, port)));
    port
}

#[test]
fn failing_announces_never_log_a_passkey() {
    let ip = Ipv4Addr::new(127, 0, 62, 3);
    let (p1, p2, p3) = (closed_port(ip), closed_port(ip), closed_port(ip));
    let urls = [
        format!("http://{ip}:{p1}/announce?passkey=SECRET123&uid=42"),
        format!("http://{ip}:{p2}/SECRET456/announce"),
        format!("udp://{ip}:{p3}/announce/SECRET789abc"),
    ];
    let dir = tempdir();
    let tree = make_tree(dir.path(), "secrets", 0x5ec);
    // One torrent per URL (a different source, so a different info-hash),
    // so that each URL's failure is the one reported.
    let torrents: Vec<_> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            create_torrent(
                &tree,
                &format!("secrets{i}.torrent"),
                &[
                    "--piece-length",
                    "64K",
                    "--tracker",
                    url,
                    "--source",
                    &format!("s{i}"),
                ],
            )
        })
        .collect();
    let seed_ip = Ipv4Addr::new(127, 0, 62, 4);
    let listen = SocketAddr::from((seed_ip, free_port(seed_ip)));
    let mut args: Vec<OsString> = vec![os("seed"), os("--no-dht")];
    args.extend(torrents.iter().map(os));
    args.extend([
        os("--data"),
        os(&tree.save_dir),
        os("--listen"),
        os(listen.to_string()),
        os("--bind-address"),
        os(seed_ip.to_string()),
    ]);
    let mut seed = Daemon::spawn("seed", &args);
    seed.wait_listening("ringseed", listen);
    for port in [p1, p2, p3] {
        let needle = format!("{ip}:{port}");
        let line = seed.wait_line(LINE_WAIT_MAX, |l| {
            l.contains("WARN") && l.contains("announce failed") && l.contains(&needle)
        });
        assert!(
            line.is_ok(),
            "no failed announce naming {needle}: {line:?}\n{}",
            seed.describe()
        );
    }
    seed.terminate_cleanly();
    let log = seed.stderr();
    for secret in ["SECRET123", "SECRET456", "SECRET789", "uid=42"] {
        assert!(
            !log.contains(secret),
            "the log shows {secret}:\n{}",
            seed.describe()
        );
    }
    assert!(log.contains("passkey=***"), "{}", seed.describe());
    assert!(log.contains("/***/announce"), "{}", seed.describe());
}

#[test]
fn info_redacts_tracker_urls_unless_asked() {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "info", 0x1f0);
    let url = "http://127.0.0.1:6969/0123456789abcdef0123456789abcdef/announce?passkey=SECRET123";
    let torrent = create_torrent(
        &tree,
        "info.torrent",
        &[
            "--tracker",
            url,
            "--web-seed",
            "http://127.0.0.1:8080/files?token=SECRET456",
        ],
    );
    let out = ringseed([os("info"), os(&torrent)]);
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("tier 0: http://127.0.0.1:6969/***/announce?passkey=***"),
        "{}",
        out.describe()
    );
    assert!(!out.stdout.contains("SECRET") && !out.stdout.contains("0123456789abcdef"));
    let json = info_json(&torrent).to_string();
    assert!(!json.contains("SECRET"), "{json}");
    let shown = ringseed([os("info"), os(&torrent), os("--show-secrets")]);
    shown.assert_code(0);
    assert!(shown.stdout.contains(url), "{}", shown.describe());
    assert!(
        shown.stdout.contains("token=SECRET456"),
        "{}",
        shown.describe()
    );

    let magnet = "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a\
                  &tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce%3Fpasskey%3DSECRET123";
    let out = ringseed(["info", magnet]);
    out.assert_code(0);
    assert!(!out.stdout.contains("SECRET"), "{}", out.describe());
    assert!(out.stdout.contains("passkey=***"), "{}", out.describe());
    let shown = ringseed(["info", magnet, "--show-secrets"]);
    assert!(
        shown.stdout.contains("passkey=SECRET123"),
        "{}",
        shown.describe()
    );
}
