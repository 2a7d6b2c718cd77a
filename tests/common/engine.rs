//! Helpers for the engine's end-to-end tests: ringseed (or any) children
//! with captured output and a kill-by-pid guard, free ports on a given
//! loopback address, opentracker with a whitelist, libtorrent and aria2c
//! peers, and byte-for-byte tree comparison.
//!
//! Every wait is bounded; a missing tool fails with the install hint.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{
    exit_text, output_tail, ringseed_bin, support_script, Tree, INSTALL_HINT, SYSTEM_PYTHON,
};

/// Most bytes of a child's output kept for the failure message.
const LOG_BYTES_MAX: usize = 8 << 20;
/// How often a waiting loop polls.
const POLL: Duration = Duration::from_millis(20);
/// Longest a ringseed seeder may take to check its data and listen.
pub const LISTEN_WAIT_MAX: Duration = Duration::from_secs(60);
/// Longest a child may take to exit after SIGTERM.
pub const EXIT_WAIT_MAX: Duration = Duration::from_secs(20);
/// Longest opentracker may take to accept and load its whitelist.
const TRACKER_READY_MAX: Duration = Duration::from_secs(10);

/// A running `ringseed` child with its output captured line by line.
pub struct Daemon {
    label: String,
    cmdline: String,
    child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

fn pump<R: Read + Send + 'static>(pipe: Option<R>, sink: Arc<Mutex<String>>) {
    let Some(pipe) = pipe else { return };
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                    if s.len() < LOG_BYTES_MAX {
                        s.push_str(&String::from_utf8_lossy(&line));
                        if !s.ends_with('\n') {
                            s.push('\n');
                        }
                    }
                }
            }
        }
    });
}

impl Daemon {
    pub fn spawn(label: &str, args: &[OsString]) -> Daemon {
        let mut cmd = Command::new(ringseed_bin());
        cmd.args(args);
        Daemon::spawn_command(label, cmd)
    }

    pub fn spawn_command(label: &str, mut cmd: Command) -> Daemon {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let cmdline = format!("{cmd:?}");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{cmdline}`: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        pump(child.stderr.take(), Arc::clone(&stderr));
        pump(child.stdout.take(), Arc::clone(&stdout));
        Daemon {
            label: label.to_string(),
            cmdline,
            child,
            stderr,
            stdout,
            status: None,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How the child ended (`killed by signal: ...` for a crash), or
    /// `still running`.
    pub fn exit_text(&self) -> String {
        exit_text(self.status)
    }

    /// Everything known about the child, for failure messages: how it
    /// ended and the ends of its stdout and stderr.
    pub fn describe(&self) -> String {
        let out = self
            .stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        format!(
            "=== {} ===\ncommand: {}\nexit: {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.label,
            self.cmdline,
            self.exit_text(),
            output_tail(&out),
            output_tail(&self.stderr())
        )
    }

    /// Exit status if the child has exited (reaps it).
    pub fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.status = Some(s);
            }
        }
        self.status
    }

    /// The first stderr line `matches` accepts, waiting up to `timeout`; an
    /// error (with the child's output) if it exits or the time runs out.
    pub fn wait_line(
        &mut self,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.stderr().lines().find(|l| matches(l)) {
                return Ok(line.to_string());
            }
            if let Some(s) = self.poll_exit() {
                // Let the pump catch the last lines before giving up.
                thread::sleep(Duration::from_millis(100));
                if let Some(line) = self.stderr().lines().find(|l| matches(l)) {
                    return Ok(line.to_string());
                }
                return Err(format!(
                    "{} ended first ({})",
                    self.label,
                    exit_text(Some(s))
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!("not within {timeout:?}"));
            }
            thread::sleep(POLL);
        }
    }

    /// Waits for `WHO: listening on ADDR` (ringseed's own log line: `TIME
    /// LEVEL listening on ADDR`) and returns ADDR (or `fallback` if the
    /// printed address does not parse).
    pub fn wait_listening(&mut self, who: &str, fallback: SocketAddr) -> SocketAddr {
        let needle = if who == "ringseed" {
            "INFO listening on".to_string()
        } else {
            format!("{who}: listening on")
        };
        match self.wait_line(LISTEN_WAIT_MAX, |l| l.contains(&needle)) {
            Ok(line) => line
                .split("listening on")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.parse().ok())
                .unwrap_or(fallback),
            Err(why) => panic!(
                "{} never printed `{needle} ADDR`: {why}\n{}",
                self.label,
                self.describe()
            ),
        }
    }

    pub fn signal(&self, sig: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill only sends a signal to our own child's pid.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    /// Waits up to `timeout` for the child to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.poll_exit() {
                // Let the pumps read the last lines.
                thread::sleep(Duration::from_millis(100));
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL);
        }
    }

    /// SIGTERM, then requires exit status 0 within [`EXIT_WAIT_MAX`].
    pub fn terminate_cleanly(&mut self) {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit(EXIT_WAIT_MAX);
        assert!(
            status.is_some(),
            "{} did not exit within {EXIT_WAIT_MAX:?} of SIGTERM\n{}",
            self.label,
            self.describe()
        );
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "{} did not exit with status 0 after SIGTERM ({})\n{}",
            self.label,
            exit_text(status),
            self.describe()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.poll_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port that was free on `ip` a moment ago.
pub fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
}

pub fn os(s: impl Into<OsString>) -> OsString {
    s.into()
}

/// opentracker on `ip`, tracking only the whitelisted hashes; killed by pid
/// on drop.
pub struct Tracker {
    child: Child,
    /// The HTTP announce URL.
    pub announce: String,
    /// The UDP (BEP 15) announce URL.
    pub announce_udp: String,
    log: PathBuf,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02x}")).collect()
}

impl Tracker {
    /// Starts opentracker on `ip` with a whitelist of `hashes` (20 bytes
    /// each) and waits until it accepts and knows the first hash.
    pub fn start(dir: &Path, ip: Ipv4Addr, hashes: &[[u8; 20]]) -> Tracker {
        let found = Command::new("opentracker")
            .arg("-h")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(found, "opentracker is missing; {INSTALL_HINT}");
        let whitelist = dir.join("whitelist");
        let list: String = hashes
            .iter()
            .map(|h| h.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n")
            .collect();
        std::fs::write(&whitelist, list).unwrap_or_else(|e| panic!("write whitelist: {e}"));
        let log = dir.join("opentracker.log");
        let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log: {e}"));
        let port = free_port(ip);
        let udp_port = std::net::UdpSocket::bind((ip, 0))
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free udp port on {ip}: {e}"));
        let err_file = log_file.try_clone().unwrap_or_else(|e| panic!("log: {e}"));
        let child = Command::new("opentracker")
            .args(["-i", &ip.to_string(), "-p", &port.to_string()])
            .args(["-P", &udp_port.to_string()])
            .arg("-w")
            .arg(&whitelist)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .spawn()
            .unwrap_or_else(|e| panic!("start opentracker: {e}; {INSTALL_HINT}"));
        let addr = SocketAddr::from((ip, port));
        let mut t = Tracker {
            child,
            announce: format!("http://{addr}/announce"),
            announce_udp: format!("udp://{ip}:{udp_port}/announce"),
            log,
        };
        let deadline = Instant::now() + TRACKER_READY_MAX;
        let probe = hashes.first().copied().unwrap_or([0; 20]);
        loop {
            if let Ok(Some(s)) = t.child.try_wait() {
                panic!("opentracker exited early ({s}): {}", t.log());
            }
            // Only a `started` announce proves the whitelist is loaded (a
            // `stopped` one may be answered without looking at it): the
            // probe peer registers, and is removed again at once.
            let query = |event: &str| {
                format!(
                    "/announce?info_hash={}&peer_id=-PROBE-0000000000000&port=1&uploaded=0&downloaded=0&left=0&compact=1&event={event}",
                    percent(&probe)
                )
            };
            if let Some(body) = http_get(addr, &query("started")) {
                if body.contains("interval") && !body.contains("not authorized") {
                    let gone = http_get(addr, &query("stopped"));
                    assert!(
                        gone.as_deref().is_some_and(|b| b.contains("interval")),
                        "opentracker on {addr} did not remove the probe peer: {gone:?}"
                    );
                    return t;
                }
            }
            assert!(
                Instant::now() < deadline,
                "opentracker on {addr} not ready within {TRACKER_READY_MAX:?}: {}",
                t.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the tracker's scrape counts at least `seeders` seeders
    /// of `hash`: a leecher started before that could get an empty peer
    /// list and wait a whole announce interval (30 min on opentracker).
    pub fn wait_seeders(&self, hash: [u8; 20], seeders: u32, timeout: Duration) {
        let addr: SocketAddr = self
            .announce
            .trim_start_matches("http://")
            .trim_end_matches("/announce")
            .parse()
            .unwrap_or_else(|e| panic!("tracker address: {e}"));
        let path = format!("/scrape?info_hash={}", percent(&hash));
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Some(reply) = http_get_bytes(addr, &path) {
                let body = reply
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .and_then(|i| reply.get(i + 4..))
                    .unwrap_or_default();
                let stats = ringseed::tracker::http::parse_scrape_response(body)
                    .ok()
                    .and_then(|r| r.get(&ringseed::InfoHash(hash)));
                if stats.is_some_and(|s| s.complete >= seeders) {
                    return;
                }
                last = stats;
            }
            assert!(
                Instant::now() < deadline,
                "the tracker did not list {seeders} seeder(s) within {timeout:?} (last scrape: {last:?})\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A bounded HTTP/1.0 GET; the body (lossy), or `None` on any failure.
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    http_get_bytes(addr, path).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// As [`http_get`], the raw bytes (a scrape's keys are binary hashes).
fn http_get_bytes(addr: SocketAddr, path: &str) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.take(64 * 1024).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// The 20-byte info-hash of a .torrent file (through ringseed's parser).
pub fn info_hash_of(torrent: &Path) -> [u8; 20] {
    let raw = std::fs::read(torrent).unwrap_or_else(|e| panic!("read {}: {e}", torrent.display()));
    ringseed::metainfo::Metainfo::from_bytes(&raw)
        .unwrap_or_else(|e| panic!("parse {}: {e}", torrent.display()))
        .info_hash
        .0
}

/// Starts `ringseed seed TORRENT --data DIR` on `ip` and waits until it listens.
pub fn start_ringseed_seed(
    label: &str,
    torrent: &Path,
    data: &Path,
    ip: Ipv4Addr,
    extra: &[&str],
) -> (Daemon, SocketAddr) {
    let listen = SocketAddr::from((ip, free_port(ip)));
    let mut args = vec![
        os("seed"),
        os(torrent),
        os("--data"),
        os(data),
        os("--listen"),
        os(listen.to_string()),
        os("--bind-address"),
        os(ip.to_string()),
    ];
    args.extend(extra.iter().map(os));
    let mut d = Daemon::spawn(label, &args);
    let addr = d.wait_listening("ringseed", listen);
    (d, addr)
}

/// Starts `ringseed download TORRENT -o OUT` from `ip`.
pub fn start_ringseed_download(
    label: &str,
    torrent: &Path,
    out: &Path,
    ip: Ipv4Addr,
    extra: &[&str],
) -> Daemon {
    let listen = SocketAddr::from((ip, free_port(ip)));
    let mut args = vec![
        os("download"),
        os(torrent),
        os("-o"),
        os(out),
        os("--listen"),
        os(listen.to_string()),
        os("--bind-address"),
        os(ip.to_string()),
    ];
    args.extend(extra.iter().map(os));
    Daemon::spawn(label, &args)
}

/// Fails with the install hint unless libtorrent's Python binding loads.
pub fn require_libtorrent_python() {
    super::require_libtorrent();
}

/// Starts tests/support/lt_peer.py (libtorrent) in `mode` (`seed` or
/// `download`) on `ip`. libtorrent picks its own free port (port 0): a port
/// chosen here and freed again could be taken before Python has started.
pub fn start_libtorrent(
    label: &str,
    mode: &str,
    torrent: &Path,
    save: &Path,
    ip: Ipv4Addr,
    timeout: Duration,
) -> Daemon {
    super::require_libtorrent();
    let mut cmd = Command::new(SYSTEM_PYTHON);
    cmd.arg(support_script("lt_peer.py"))
        .arg(mode)
        .arg(torrent)
        .arg(save)
        .arg(ip.to_string())
        .arg("0")
        .args(["--timeout", &timeout.as_secs().to_string()]);
    Daemon::spawn_command(label, cmd)
}

/// Starts aria2c downloading `torrent` into `save` from `ip` (trackers only).
pub fn start_aria2c(label: &str, torrent: &Path, save: &Path, ip: Ipv4Addr) -> Daemon {
    let found = Command::new("aria2c")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "aria2c is missing; {INSTALL_HINT}");
    let port = free_port(ip);
    let mut cmd = Command::new("aria2c");
    cmd.args([
        "--seed-time=0",
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--file-allocation=none",
        "--allow-overwrite=true",
        "--bt-stop-timeout=120",
        "--summary-interval=0",
        "--console-log-level=warn",
        "--check-certificate=false",
    ])
    .arg(format!("--interface={ip}"))
    .arg(format!("--listen-port={port}"))
    .arg("-d")
    .arg(save)
    .arg(torrent);
    Daemon::spawn_command(label, cmd)
}

/// Compares every file of `tree` with its copy under `save/<name>/`; the
/// differences (empty when identical), naming the first differing offset.
pub fn compare_tree(tree: &Tree, save: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    for f in &tree.files {
        let want = tree.path_of(&f.rel);
        let got = save.join(&tree.name).join(&f.rel);
        let a = std::fs::read(&want).unwrap_or_else(|e| panic!("read {}: {e}", want.display()));
        match std::fs::read(&got) {
            Ok(b) if a == b => {}
            Ok(b) => {
                let first = a.iter().zip(&b).position(|(x, y)| x != y);
                bad.push(format!(
                    "{}: {} bytes, expected {}; first difference at {first:?}",
                    got.display(),
                    b.len(),
                    a.len()
                ));
            }
            Err(e) => bad.push(format!("{}: {e}", got.display())),
        }
    }
    bad
}

/// Waits for every daemon to exit (bounded); panics with all their output
/// if one fails or runs out of time.
pub fn wait_all_ok(list: &mut [&mut Daemon], timeout: Duration, context: &str) {
    let deadline = Instant::now() + timeout;
    loop {
        let mut running = false;
        let mut failed = None;
        for d in list.iter_mut() {
            match d.poll_exit() {
                Some(s) if s.success() => {}
                Some(s) => failed = Some(format!("{} failed ({})", d.label, exit_text(Some(s)))),
                None => running = true,
            }
        }
        if let Some(what) = failed {
            thread::sleep(Duration::from_millis(100));
            let all: Vec<String> = list.iter().map(|d| d.describe()).collect();
            panic!("{what}\n{context}\n{}", all.join("\n"));
        }
        if !running {
            return;
        }
        if Instant::now() >= deadline {
            let all: Vec<String> = list.iter().map(|d| d.describe()).collect();
            panic!(
                "not finished within {timeout:?}\n{context}\n{}",
                all.join("\n")
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A sample tree, an opentracker that knows its torrent, and the torrent
/// (announcing to that tracker), all in one temporary directory.
pub struct Tracked {
    pub dir: tempfile::TempDir,
    pub tree: Tree,
    pub tracker: Tracker,
    pub torrent: PathBuf,
}

/// Makes a sample tree `name` (from `seed`), starts opentracker on
/// `tracker_ip` whitelisting its info-hash, and creates the torrent with
/// that tracker and `piece_length` (e.g. "32K").
pub fn tracked_torrent(name: &str, seed: u64, tracker_ip: Ipv4Addr, piece_length: &str) -> Tracked {
    tracked_torrent_with(name, seed, tracker_ip, piece_length, false)
}

/// As [`tracked_torrent`], announcing over UDP (BEP 15) when `udp`.
pub fn tracked_torrent_with(
    name: &str,
    seed: u64,
    tracker_ip: Ipv4Addr,
    piece_length: &str,
    udp: bool,
) -> Tracked {
    let dir = super::tempdir();
    let tree = super::make_tree(dir.path(), name, seed);
    let base = ["--piece-length", piece_length, "--no-date"];
    // The tracker URL is outside the info dictionary: the hash is known first.
    let probe = super::create_torrent(&tree, "probe.torrent", &base);
    let tracker = Tracker::start(dir.path(), tracker_ip, &[info_hash_of(&probe)]);
    let mut args = base.to_vec();
    let url = if udp {
        tracker.announce_udp.as_str()
    } else {
        tracker.announce.as_str()
    };
    args.extend(["--tracker", url]);
    let torrent = super::create_torrent(&tree, &format!("{name}.torrent"), &args);
    assert_eq!(info_hash_of(&torrent), info_hash_of(&probe));
    Tracked {
        dir,
        tree,
        tracker,
        torrent,
    }
}
