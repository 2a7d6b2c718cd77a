//! The daemon's `/metrics` (parsed by the `prometheus-client` Python
//! package's Prometheus text-format parser), the generated password of a
//! first start, `ringseed config --hash-password` and `api.password_hash`,
//! `--webui-root`, and `torrents/add` with an http link. The daemon runs on
//! 127.0.118.x.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::daemon::{small_torrent, Dirs, RingDaemon};
use common::engine::os;

/// One HTTP/1.1 exchange (Connection: close); the status and body.
fn http(
    api: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let addr = api.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{cookie}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

fn login(api: &str, user: &str, password: &str) -> Option<String> {
    let (status, head, body) = http(
        api,
        "POST",
        "/api/v2/auth/login",
        None,
        &format!("username={user}&password={password}"),
    );
    assert_eq!(status, 200, "{head}\n{body}");
    if body != "Ok." {
        return None;
    }
    head.lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .map(str::to_string)
}

fn venv_python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test.sh (it creates the virtualenv with prometheus-client)",
        p.display()
    );
    p
}

#[test]
fn metrics_parse_with_prometheus_client_and_name_each_torrent() {
    let ip = Ipv4Addr::new(127, 0, 118, 1);
    let dirs = Dirs::new();
    let (torrent, hash) = small_torrent(&dirs.downloads, "metrics-data", 300_000, 7);
    let d = RingDaemon::start_api("daemon", &dirs, ip, &[]);
    let api = d.api_url().to_string();
    let t = dirs.path("m.torrent");
    std::fs::write(&t, torrent).unwrap();
    d.ctl(&["add", t.to_str().unwrap()]);
    d.wait_torrent(&hash, Duration::from_secs(30), "seeding", |t| {
        common::daemon::state_of(t) == "seeding"
    });

    let (status, head, text) = http(&api, "GET", "/metrics", None, "");
    assert_eq!(status, 200, "{head}");
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
names = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        names.setdefault(s.name, []).append(s.labels)
for n in sorted(names):
    print(n, len(names[n]), sorted(set(k for l in names[n] for k in l)))
"#;
    let mut child = Command::new(venv_python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the venv's python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let parsed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the prometheus-client parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "ringseed_uploaded_bytes_total",
        "ringseed_upload_rate_bytes_per_second",
        "ringseed_peers",
        "ringseed_torrents",
        "ringseed_torrents_checking",
        "ringseed_torrents_tracker_failing",
        "ringseed_torrent_uploaded_bytes_total",
        "ringseed_torrent_progress_ratio",
        "ringseed_shard_loop_turns_total",
        "ringseed_api_requests_total",
    ] {
        assert!(
            parsed.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} missing from the parsed metrics:\n{parsed}\n{text}"
        );
    }
    assert!(
        text.contains(&format!("hash=\"{hash}\"")) && text.contains("name=\"metrics-data\""),
        "{text}"
    );
    assert!(
        text.contains("ringseed_torrents{state=\"stalledUP\"} 1"),
        "{text}"
    );
    // Two shards, each with its own turns.
    assert!(text.contains("shard=\"1\""), "{text}");
}

#[test]
fn a_first_start_generates_a_password_once_and_keeps_only_its_hash() {
    let ip = Ipv4Addr::new(127, 0, 118, 2);
    let dirs = Dirs::new();
    let start = || {
        RingDaemon::start(
            "daemon",
            &dirs,
            ip,
            &[os("--api-listen"), os(format!("{ip}:0"))],
        )
    };
    let mut d = start();
    let api = d.api_url().to_string();
    let line = d
        .proc
        .wait_line(Duration::from_secs(10), |l| {
            l.contains("generated one for user")
        })
        .unwrap_or_else(|why| panic!("no generated password: {why}\n{}", d.proc.describe()));
    let password = line.rsplit(": ").next().unwrap().trim().to_string();
    assert_eq!(password.len(), 9, "{line}");
    assert!(login(&api, "admin", &password).is_some());
    assert!(login(&api, "admin", "wrong").is_none());
    // Only a salted hash is on disk.
    let db = std::fs::read(dirs.state.join("ringseed.db")).unwrap_or_default();
    let wal = std::fs::read(dirs.state.join("ringseed.db-wal")).unwrap_or_default();
    let needle = password.as_bytes();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the password is on disk"
        );
    }
    d.proc.terminate_cleanly();
    drop(d);
    let mut again = start();
    let api = again.api_url().to_string();
    assert!(
        login(&api, "admin", &password).is_some(),
        "the password changed at restart"
    );
    assert!(
        !again.proc.describe().contains("generated one for user"),
        "printed again:\n{}",
        again.proc.describe()
    );
    again.proc.terminate_cleanly();
}

#[test]
fn a_configured_hash_and_an_alternative_webui_are_used() {
    let ip = Ipv4Addr::new(127, 0, 118, 3);
    let dirs = Dirs::new();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringseed"))
        .args(["config", "--hash-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"s3cret pass\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        hash.starts_with("@ByteArray(") && !hash.contains("s3cret"),
        "{hash}"
    );
    let webui = dirs.root.path().join("alt");
    std::fs::create_dir_all(webui.join("public")).unwrap();
    std::fs::write(
        webui.join("public/index.html"),
        "<title>alternative</title>",
    )
    .unwrap();
    let config = dirs.root.path().join("api.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nusername = \"operator\"\npassword_hash = \"{hash}\"\nmetrics_require_login = true\n"
        ),
    )
    .unwrap();
    let mut d = RingDaemon::start(
        "daemon",
        &dirs,
        ip,
        &[
            os("--config"),
            os(&config),
            os("--api-listen"),
            os(format!("{ip}:0")),
            os("--webui-root"),
            os(&webui),
        ],
    );
    let api = d.api_url().to_string();
    assert!(login(&api, "admin", "s3cret pass").is_none());
    let sid = login(&api, "operator", "s3cret pass").expect("the configured hash logs in");
    let (status, _, body) = http(&api, "GET", "/", None, "");
    assert_eq!((status, body.as_str()), (200, "<title>alternative</title>"));
    let (status, _, _) = http(&api, "GET", "/metrics", None, "");
    assert_eq!(status, 403, "metrics_require_login");
    let (status, _, _) = http(&api, "GET", "/metrics", Some(&sid), "");
    assert_eq!(status, 200);
    d.proc.terminate_cleanly();
}

/// `torrents/add` with an http link: ringseed fetches the .torrent (from a
/// one-shot server on loopback) and adds it; a link that answers 404 is
/// refused with 415 and the status, without the link's secret part.
#[test]
fn a_torrent_link_is_fetched_and_added() {
    let ip = Ipv4Addr::new(127, 0, 118, 4);
    let dirs = Dirs::new();
    let (torrent, hash) = small_torrent(&dirs.downloads, "linked-data", 100_000, 9);
    let d = RingDaemon::start_api("daemon", &dirs, ip, &[]);
    let api = d.api_url().to_string();
    let sid = login(&api, common::daemon::API_USER, common::daemon::API_PASSWORD).expect("log in");
    let server = std::net::TcpListener::bind((ip, 0)).unwrap();
    let port = server.local_addr().unwrap().port();
    let serve = std::thread::spawn(move || {
        for answer in [Some(torrent), None] {
            let Ok((mut s, _)) = server.accept() else {
                return;
            };
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&b[..n]),
                }
            }
            let _ = match answer {
                Some(body) => s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/x-bittorrent\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .and_then(|()| s.write_all(&body)),
                None => s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
            };
        }
    });
    let link = format!("http://{ip}:{port}/dl/PASSKEY123/file.torrent");
    let (status, _, body) = http(
        &api,
        "POST",
        "/api/v2/torrents/add",
        Some(&sid),
        &format!("urls={link}&category=linked"),
    );
    assert_eq!((status, body.as_str()), (200, "Ok."));
    d.wait_torrent(&hash, Duration::from_secs(30), "seeding", |t| {
        common::daemon::state_of(t) == "seeding"
    });
    let (status, _, body) = http(
        &api,
        "POST",
        "/api/v2/torrents/add",
        Some(&sid),
        &format!("urls={link}"),
    );
    assert_eq!(status, 415, "{body}");
    assert!(
        body.contains("404") && !body.contains("PASSKEY123"),
        "{body}"
    );
    serve.join().unwrap();
    assert!(
        !d.proc.describe().contains("PASSKEY123"),
        "the link's secret reached the log"
    );
}

/// A limit set with `app/setPreferences` and a tag created with
/// `torrents/createTags` are kept in the state database: after a restart
/// the API answers them again (the configuration file is not written) and
/// the log names the settings taken from the database.
#[test]
fn preferences_and_tags_set_through_the_api_survive_a_restart() {
    let ip = Ipv4Addr::new(127, 0, 118, 5);
    let dirs = Dirs::new();
    let start = || RingDaemon::start_api("daemon", &dirs, ip, &[]);
    let mut d = start();
    let api = d.api_url().to_string();
    let sid = login(&api, common::daemon::API_USER, common::daemon::API_PASSWORD).unwrap();
    let (status, _, body) = http(
        &api,
        "POST",
        "/api/v2/app/setPreferences",
        Some(&sid),
        r#"json={"up_limit":1048576,"max_active_downloads":7,"encryption":1}"#,
    );
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = http(
        &api,
        "POST",
        "/api/v2/app/setPreferences",
        Some(&sid),
        r#"json={"encryption":5}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("encryption 5"), "{body}");
    let (status, _, body) = http(
        &api,
        "POST",
        "/api/v2/torrents/createTags",
        Some(&sid),
        "tags=kept,also",
    );
    assert_eq!(status, 200, "{body}");
    let (_, _, limit) = http(&api, "GET", "/api/v2/transfer/uploadLimit", Some(&sid), "");
    assert_eq!(limit, "1048576");
    let (_, _, prefs) = http(&api, "GET", "/api/v2/app/preferences", Some(&sid), "");
    assert!(
        prefs.contains(r#""encryption":1"#),
        "applied at once: {prefs}"
    );
    d.proc.terminate_cleanly();
    drop(d);

    let mut again = start();
    let api = again.api_url().to_string();
    let sid = login(&api, common::daemon::API_USER, common::daemon::API_PASSWORD).unwrap();
    let (_, _, limit) = http(&api, "GET", "/api/v2/transfer/uploadLimit", Some(&sid), "");
    assert_eq!(limit, "1048576", "the upload limit was not kept");
    let (_, _, prefs) = http(&api, "GET", "/api/v2/app/preferences", Some(&sid), "");
    let prefs: serde_json::Value = serde_json::from_str(&prefs).unwrap();
    assert_eq!(prefs["max_active_downloads"], 7, "{prefs}");
    assert_eq!(prefs["up_limit"], 1048576, "{prefs}");
    assert_eq!(prefs["encryption"], 1, "required, kept: {prefs}");
    let (_, _, tags) = http(&api, "GET", "/api/v2/torrents/tags", Some(&sid), "");
    assert_eq!(tags, r#"["also","kept"]"#);
    let log = again.proc.describe();
    assert!(
        log.contains("settings changed through the Web API, over the configuration file: limits.upload_rate, queue.max_active_downloads, network.encryption"),
        "{log}"
    );
    again.proc.terminate_cleanly();
}
