//! The built-in web page in a real browser: Debian's headless Chromium,
//! driven by `tests/webapi/page/page_test.mjs` (npm `playwright-core`,
//! pinned in that folder's package-lock.json) as a phone: log in (a wrong
//! password first), add a .torrent through the page's file input with a
//! save path, category and tags, wait until the page shows it seeding, take
//! screenshots, change its category and tags, open its trackers, stop and
//! start it, delete it keeping the files, log out.
//!
//! Against ringseed (127.0.116.1) the script pauses at each checkpoint
//! while this test checks the daemon's own view through `ringseed ctl
//! list --json`: the torrent really is there, seeding, with the category
//! and tags the page set; really stopped; really gone at the end, its data
//! file kept. The same page and script also run against Debian's
//! qbittorrent-nox (127.0.116.3), which serves the page's three files as its
//! alternative WebUI: the page speaks qBittorrent's API, not only
//! ringseed's.
//!
//! The screenshots and the script's log (`page_test.log`) land in
//! `target/test-output/webapi_page/` and
//! `target/test-output/webapi_page_qbittorrent/` (printed by the test).
//! Missing chromium, Node.js or the npm packages fail the test with the
//! command that installs them. Every wait is bounded; children are killed
//! by pid on drop.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::daemon::{small_torrent, state_of, str_of, Dirs, RingDaemon, API_PASSWORD, API_USER};
use common::engine::Daemon;
use common::qbt::{QbtNox, QBT_PASSWORD, QBT_USER};

/// Longest the whole browser run may take (the script's own limit is 100 s;
/// it usually takes 10 to 20 s).
const PAGE_RUN_MAX: Duration = Duration::from_secs(110);
/// Longest the daemon's view may lag behind what the page shows.
const CTL_WAIT: Duration = Duration::from_secs(10);
/// A name that is markup: the page must show it as text.
const HOSTILE_NAME: &str = "page <b>bold &amp; \"q\" <img src=x onerror=window.__pwned=1>.bin";
const DATA_LEN: usize = 100_000;
const SCREENSHOTS: [&str; 2] = ["page-seeding-phone.png", "page-seeding-desktop.png"];

/// One browser at a time: two Chromiums on a small machine make both slow.
static BROWSER: Mutex<()> = Mutex::new(());

const BROWSER_INSTALL: &str = "install them with `apt-get install -y chromium nodejs npm` and \
     `npm ci --prefix tests/webapi/page` (scripts/test.sh does both)";

fn page_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/webapi/page")
}

fn page_files_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/daemon/webapi/page")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Fails the test unless chromium, Node.js 20+ and the npm packages of
/// tests/webapi/page are there.
fn require_browser() {
    let browser = chromium();
    assert!(
        browser.is_file(),
        "{} is missing (chromium, Debian's package): {BROWSER_INSTALL}",
        browser.display()
    );
    let node = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    let version = match node {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        other => panic!("`node --version` failed ({other:?}): {BROWSER_INSTALL}"),
    };
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "Node.js {version} is too old for playwright-core (20 or newer): {BROWSER_INSTALL}"
    );
    let pw = page_dir().join("node_modules/playwright-core/package.json");
    assert!(
        pw.is_file(),
        "{} is missing: {BROWSER_INSTALL}",
        pw.display()
    );
}

/// `target/test-output/NAME/`, emptied.
fn output_dir(name: &str) -> PathBuf {
    let bin = common::ringseed_bin();
    // target/release/ringseed -> target/
    let target = bin
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("no target folder above {}", bin.display()));
    let dir = target.join("test-output").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    println!("webapi_page: screenshots and output in {}", dir.display());
    dir
}

struct PageRun<'a> {
    url: &'a str,
    user: &'a str,
    password: &'a str,
    torrent: &'a Path,
    out: &'a Path,
    save_path: &'a Path,
    /// Pause at each checkpoint until the test answers.
    handshake: bool,
}

fn start_page_test(label: &str, r: &PageRun) -> Daemon {
    let mut cmd = Command::new("node");
    cmd.arg(page_dir().join("page_test.mjs"))
        .arg(r.url)
        .arg(r.user)
        .arg(r.password)
        .arg(r.torrent)
        .arg(r.out)
        .current_dir(page_dir())
        .env("CHROMIUM", chromium())
        .env("PAGE_TEST_SAVEPATH", r.save_path)
        .env("PAGE_TEST_HANDSHAKE", if r.handshake { "1" } else { "0" })
        // Chromium's own files stay in the test's folder.
        .env("HOME", r.out)
        .env("XDG_CONFIG_HOME", r.out.join("xdg-config"))
        .env("XDG_CACHE_HOME", r.out.join("xdg-cache"));
    Daemon::spawn_command(label, cmd)
}

/// Waits for the script's `CHECKPOINT name` line.
fn wait_checkpoint(page: &mut Daemon, name: &str, deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    if let Err(why) = page.wait_line(left, |l| l.ends_with(&format!("CHECKPOINT {name}"))) {
        panic!(
            "the page test never reached checkpoint {name}: {why}\n{}",
            page.describe()
        );
    }
}

/// Lets the script go on (`ok`) or makes it fail with `why`.
fn answer(out: &Path, name: &str, verdict: &Result<(), String>) {
    let text = match verdict {
        Ok(()) => "ok".to_string(),
        Err(why) => why.clone(),
    };
    let tmp = out.join(format!(".continue-{name}"));
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
    let file = out.join(format!("continue-{name}"));
    std::fs::rename(&tmp, &file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
}

/// Waits for the script to end; requires that it passed and left its
/// screenshots (real PNG files).
fn finish(page: &mut Daemon, out: &Path, deadline: Instant, context: &str) {
    let left = deadline.saturating_duration_since(Instant::now());
    let status = page.wait_exit(left);
    assert!(
        status.is_some(),
        "the page test did not finish within {PAGE_RUN_MAX:?}\n{}\n{context}",
        page.describe()
    );
    let log = out.join("page_test.log");
    std::fs::write(&log, page.stderr()).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let passed = page.stderr().lines().any(|l| l == "PAGE TEST PASSED");
    assert!(
        status.and_then(|s| s.code()) == Some(0) && passed,
        "the page test failed (screenshots in {})\n{}\n{context}",
        out.display(),
        page.describe()
    );
    for shot in SCREENSHOTS {
        let p = out.join(shot);
        let bytes = std::fs::read(&p)
            .unwrap_or_else(|e| panic!("no screenshot {}: {e}\n{}", p.display(), page.describe()));
        assert!(
            bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG screenshot ({} bytes)",
            p.display(),
            bytes.len()
        );
    }
    println!(
        "webapi_page: passed; screenshots {:?} in {}",
        SCREENSHOTS,
        out.display()
    );
}

/// The torrent as `ringseed ctl list --json` shows it once `pred` holds
/// (within [`CTL_WAIT`]); otherwise what it showed last.
fn ctl_until(
    d: &RingDaemon,
    hash: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Result<serde_json::Value, String> {
    let deadline = Instant::now() + CTL_WAIT;
    loop {
        let t = d.torrent(hash);
        match t {
            Some(t) if pred(&t) => return Ok(t),
            _ if Instant::now() >= deadline => {
                return Err(format!(
                    "`ringseed ctl list --json` shows {}",
                    t.map_or_else(|| "no such torrent".to_string(), |t| t.to_string())
                ))
            }
            _ => thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn sorted_tags(t: &serde_json::Value) -> Vec<String> {
    let mut tags: Vec<String> = t
        .get("tags")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    tags
}

#[test]
fn page_adds_seeds_stops_and_deletes_a_torrent_on_ringseed() {
    require_browser();
    let ip = Ipv4Addr::new(127, 0, 116, 1);
    let dirs = Dirs::new();
    let (bytes, hash) = small_torrent(&dirs.downloads, HOSTILE_NAME, DATA_LEN, 12);
    let torrent = dirs.path("page.torrent");
    std::fs::write(&torrent, &bytes).unwrap_or_else(|e| panic!("{}: {e}", torrent.display()));
    let d = RingDaemon::start_api("ringseed", &dirs, ip, &[]);
    let url = format!("{}/", d.api_url());
    let out = output_dir("webapi_page");

    let _browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let deadline = Instant::now() + PAGE_RUN_MAX;
    let mut page = start_page_test(
        "page_test.mjs (ringseed)",
        &PageRun {
            url: &url,
            user: API_USER,
            password: API_PASSWORD,
            torrent: &torrent,
            out: &out,
            save_path: &dirs.downloads,
            handshake: true,
        },
    );
    let mut failures = Vec::new();

    // Seeding, with the category and tags the page gave it last.
    wait_checkpoint(&mut page, "seeding", deadline);
    let verdict = ctl_until(&d, &hash, |t| {
        state_of(t) == "seeding"
            && t.get("category").and_then(|c| c.as_str()) == Some("page-cat2")
            && sorted_tags(t) == ["second", "third"]
    })
    .and_then(|t| {
        let name = str_of(&t, "name");
        let save = str_of(&t, "save_path");
        if name != HOSTILE_NAME {
            Err(format!("ctl shows the name {name:?}, not {HOSTILE_NAME:?}"))
        } else if Path::new(save) != dirs.downloads {
            Err(format!(
                "ctl shows save_path {save:?}, the page gave {}",
                dirs.downloads.display()
            ))
        } else {
            Ok(())
        }
    });
    answer(&out, "seeding", &verdict);
    failures.extend(verdict.err().map(|e| format!("at checkpoint seeding: {e}")));

    // Stopped through the page: stopped in the daemon.
    if failures.is_empty() {
        wait_checkpoint(&mut page, "stopped", deadline);
        let verdict = ctl_until(&d, &hash, |t| {
            state_of(t) == "stopped" && t.get("wanted").and_then(|w| w.as_str()) == Some("stopped")
        })
        .map(|_| ());
        answer(&out, "stopped", &verdict);
        failures.extend(verdict.err().map(|e| format!("at checkpoint stopped: {e}")));
    }

    let context = format!("{}\n{}", failures.join("\n"), d.proc.describe());
    assert!(
        failures.is_empty(),
        "the daemon disagrees with the page:\n{}\n{}",
        page.describe(),
        context
    );
    finish(&mut page, &out, deadline, &d.proc.describe());

    // Deleted through the page, with "delete files" left unchecked.
    let deadline = Instant::now() + CTL_WAIT;
    while d.torrent(&hash).is_some() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
    }
    assert!(
        d.torrent(&hash).is_none(),
        "the page deleted the torrent but ringseed ctl still lists it: {:?}\n{}",
        d.torrent(&hash),
        d.proc.describe()
    );
    let data = dirs.downloads.join(HOSTILE_NAME);
    let kept = std::fs::metadata(&data).map(|m| m.len()).ok();
    assert_eq!(
        kept,
        Some(DATA_LEN as u64),
        "deleting without \"delete files\" removed or changed {}",
        data.display()
    );
}

/// One HTTP/1.1 exchange on a fresh connection: (status, headers, body).
/// The body is read by its Content-Length (or to the end of the stream).
fn http(addr: &str, request: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("write to {addr}: {e}"));
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).into_owned();
            let len = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok());
            if let Some(len) = len {
                if raw.len() >= end + 4 + len {
                    let body = String::from_utf8_lossy(&raw[end + 4..end + 4 + len]).into_owned();
                    return (status_of(addr, &head), head, body);
                }
            }
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read from {addr}: {e} (after {} bytes)", raw.len()),
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status_of(addr, head), head.to_string(), body.to_string())
}

fn status_of(addr: &str, head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status from {addr}: {head:?}"))
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn post(addr: &str, path: &str, cookie: &str, body: &str) -> (u16, String, String) {
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{cookie}\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// Points qbittorrent-nox's alternative WebUI at `root` (holding
/// `public/index.html`) through its own API, and waits until `/` serves it.
fn qbt_serve_page(qbt: &QbtNox, root: &Path) {
    let addr = qbt.url.trim_start_matches("http://");
    let body = format!(
        "username={}&password={}",
        form_encode(QBT_USER),
        form_encode(QBT_PASSWORD)
    );
    let (code, head, answer) = post(addr, "/api/v2/auth/login", "", &body);
    assert!(
        code == 200 && answer.trim() == "Ok.",
        "qbittorrent-nox login: {code} {answer:?}\n{}",
        qbt.describe()
    );
    let sid = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| v.trim().split(';').next().filter(|c| c.starts_with("SID=")))
        .unwrap_or_else(|| panic!("no SID cookie from qbittorrent-nox: {head}"))
        .to_string();
    let prefs = serde_json::json!({
        "alternative_webui_enabled": true,
        "alternative_webui_path": root,
    });
    let (code, _, answer) = post(
        addr,
        "/api/v2/app/setPreferences",
        &format!("Cookie: {sid}\r\n"),
        &format!("json={}", form_encode(&prefs.to_string())),
    );
    assert_eq!(code, 200, "qbittorrent-nox setPreferences: {answer:?}");
    let _ = post(
        addr,
        "/api/v2/auth/logout",
        &format!("Cookie: {sid}\r\n"),
        "",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, _, page) = http(
            addr,
            &format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        );
        if code == 200 && page.contains("id=\"login-form\"") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "qbittorrent-nox does not serve the page from {} ({code}): {}\n{}",
            root.display(),
            &page[..page.len().min(300)],
            qbt.describe()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn page_drives_qbittorrent_nox_too() {
    require_browser();
    let ip = Ipv4Addr::new(127, 0, 116, 3);
    let qbt = QbtNox::start("qbittorrent-nox", ip);
    let (bytes, _hash) = small_torrent(&qbt.downloads, HOSTILE_NAME, DATA_LEN, 13);
    let work = common::tempdir();
    let torrent = work.path().join("page.torrent");
    std::fs::write(&torrent, &bytes).unwrap_or_else(|e| panic!("{}: {e}", torrent.display()));
    // The page's files as an alternative WebUI: ROOT/public/index.html.
    let public = work.path().join("webui/public");
    std::fs::create_dir_all(&public).unwrap_or_else(|e| panic!("{}: {e}", public.display()));
    for f in ["index.html", "app.js", "style.css"] {
        let from = page_files_dir().join(f);
        std::fs::copy(&from, public.join(f)).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
    qbt_serve_page(&qbt, &work.path().join("webui"));
    let out = output_dir("webapi_page_qbittorrent");

    let _browser = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let deadline = Instant::now() + PAGE_RUN_MAX;
    let url = format!("{}/", qbt.url);
    let mut page = start_page_test(
        "page_test.mjs (qbittorrent-nox)",
        &PageRun {
            url: &url,
            user: QBT_USER,
            password: QBT_PASSWORD,
            torrent: &torrent,
            out: &out,
            save_path: &qbt.downloads,
            handshake: false,
        },
    );
    finish(&mut page, &out, deadline, &qbt.describe());
    assert!(
        qbt.downloads.join(HOSTILE_NAME).is_file(),
        "deleting without \"delete files\" removed the data from qbittorrent-nox's folder"
    );
}
