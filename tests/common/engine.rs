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
    no_public_dht(&mut args);
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
    no_public_dht(&mut args);
    Daemon::spawn(label, &args)
}

/// Adds `--no-dht` unless the arguments name the DHT's bootstrap nodes (or
/// turn it off already): a test never reaches the public DHT routers.
pub fn no_public_dht(args: &mut Vec<OsString>) {
    if !args
        .iter()
        .any(|a| a == "--no-dht" || a == "--dht-bootstrap")
    {
        args.push(os("--no-dht"));
    }
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

// ===========================================================================
// Discovery tests (issue 13: DHT, magnets, PEX). Added for
// tests/dht_libtorrent.rs, magnet_xpe.rs, pex.rs, private_no_dht.rs and
// bind_interface_dht.rs: libtorrent swarms through tests/support/lt_swarm.py,
// magnet URIs, and a UDP socket that plays a DHT node and records every
// datagram it gets.
// ===========================================================================

/// Longest lt_swarm.py may take to start its sessions and check its seeds.
pub const SWARM_READY_MAX: Duration = Duration::from_secs(60);
/// libtorrent's peer_source_flags as lt_swarm.py reports them.
pub const LT_SOURCE_TRACKER: u64 = 1;
pub const LT_SOURCE_DHT: u64 = 2;
pub const LT_SOURCE_PEX: u64 = 4;
pub const LT_SOURCE_LSD: u64 = 8;
/// Peers from a magnet's `x.pe` (and connect_peer's) count as resume data.
pub const LT_SOURCE_RESUME: u64 = 16;
/// Largest datagram a [`DhtCapture`] keeps, in bytes (KRPC fits in 1500).
pub const CAPTURE_DATAGRAM_BYTES_MAX: usize = 2048;
/// Most datagrams a [`DhtCapture`] records; later ones are only counted.
pub const CAPTURE_DATAGRAMS_MAX: usize = 10_000;

impl Daemon {
    /// Everything the child printed on stdout so far.
    pub fn stdout_text(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn label(&self) -> &str {
        &self.label
    }
}

/// One session of a running lt_swarm.py, from its `ready` line.
#[derive(Debug, Clone)]
pub struct SwarmNode {
    pub index: usize,
    pub role: String,
    /// Its TCP listen address; its DHT answers on the same UDP port.
    pub addr: SocketAddr,
}

/// A peer of a session, as lt_swarm.py's `peers` lines give it: `source`
/// is the OR of every libtorrent source flag seen for it (`LT_SOURCE_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmPeer {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub source: u64,
    pub connected: bool,
}

/// tests/support/lt_swarm.py running: libtorrent sessions on loopback.
pub struct LtSwarm {
    pub daemon: Daemon,
    pub nodes: Vec<SwarmNode>,
}

impl LtSwarm {
    /// Starts lt_swarm.py with these `--node` specs (see the script) and
    /// `--bootstrap` nodes, and waits for its `ready` line. It exits by
    /// itself after `deadline` (and at once when every download is done if
    /// `exit_when_done`).
    pub fn start(
        label: &str,
        specs: &[String],
        bootstrap: &[SocketAddr],
        deadline: Duration,
        exit_when_done: bool,
    ) -> LtSwarm {
        super::require_libtorrent();
        let mut cmd = Command::new(SYSTEM_PYTHON);
        cmd.arg(support_script("lt_swarm.py"));
        for s in specs {
            cmd.arg("--node").arg(s);
        }
        for b in bootstrap {
            cmd.arg("--bootstrap").arg(b.to_string());
        }
        cmd.arg("--deadline").arg(deadline.as_secs().to_string());
        if exit_when_done {
            cmd.arg("--exit-when-done");
        }
        let daemon = Daemon::spawn_command(label, cmd);
        let mut swarm = LtSwarm {
            daemon,
            nodes: Vec::new(),
        };
        let ready = swarm
            .wait_event(SWARM_READY_MAX, |e| e["event"] == "ready")
            .unwrap_or_else(|why| {
                panic!(
                    "{label}: lt_swarm.py never became ready: {why}\n{}",
                    swarm.daemon.describe()
                )
            });
        let list = ready["nodes"].as_array().cloned().unwrap_or_default();
        for n in list {
            let ip: Ipv4Addr = n["ip"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad node in ready line: {n}"));
            let port = n["port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or_else(|| panic!("bad port in ready line: {n}"));
            swarm.nodes.push(SwarmNode {
                index: n["node"].as_u64().unwrap_or(0) as usize,
                role: n["role"].as_str().unwrap_or("").to_string(),
                addr: SocketAddr::from((ip, port)),
            });
        }
        swarm
    }

    /// The address of session `i` (TCP; its DHT UDP port is the same).
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes
            .get(i)
            .map(|n| n.addr)
            .unwrap_or_else(|| panic!("lt_swarm has no node {i}: {:?}", self.nodes))
    }

    /// Every JSON line printed so far (other lines are skipped).
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.daemon
            .stdout_text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The first event `pred` accepts, waiting up to `timeout`; an `error`
    /// event, the script's exit or the timeout end the wait with an error.
    pub fn wait_event(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.events();
            if let Some(e) = events.iter().find(|e| pred(e)) {
                return Ok(e.clone());
            }
            if let Some(e) = events.iter().find(|e| e["event"] == "error") {
                return Err(format!("lt_swarm reported an error: {e}"));
            }
            if self.daemon.poll_exit().is_some() {
                thread::sleep(Duration::from_millis(100));
                if let Some(e) = self.events().iter().find(|e| pred(e)) {
                    return Ok(e.clone());
                }
                return Err(format!(
                    "lt_swarm ended first ({})",
                    self.daemon.exit_text()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!("not within {timeout:?}"));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The peers of session `node` from its latest `peers` line.
    pub fn peers(&self, node: usize) -> Vec<SwarmPeer> {
        let events = self.events();
        let Some(last) = events
            .iter()
            .rev()
            .find(|e| e["event"] == "peers" && e["node"].as_u64() == Some(node as u64))
        else {
            return Vec::new();
        };
        parse_swarm_peers(last)
    }

    /// Waits until session `node` lists a peer `pred` accepts.
    pub fn wait_peer(
        &mut self,
        node: usize,
        timeout: Duration,
        pred: impl Fn(&SwarmPeer) -> bool,
    ) -> Result<SwarmPeer, String> {
        let n = node as u64;
        let found = self.wait_event(timeout, |e| {
            e["event"] == "peers" && e["node"].as_u64() == Some(n) && {
                parse_swarm_peers(e).iter().any(&pred)
            }
        })?;
        parse_swarm_peers(&found)
            .into_iter()
            .find(|p| pred(p))
            .ok_or_else(|| "peer vanished".to_string())
    }

    /// Waits for session `node`'s `done` line (every piece checked and written).
    pub fn wait_done(&mut self, node: usize, timeout: Duration) -> Result<(), String> {
        let n = node as u64;
        self.wait_event(timeout, |e| {
            e["event"] == "done" && e["node"].as_u64() == Some(n)
        })
        .map(|_| ())
    }

    /// The script's output, for failure messages.
    pub fn describe(&self) -> String {
        self.daemon.describe()
    }

    /// Stops the script (SIGTERM; its sessions are never torn down).
    pub fn stop(&mut self) {
        self.daemon.signal(libc::SIGTERM);
        let _ = self.daemon.wait_exit(EXIT_WAIT_MAX);
    }
}

fn parse_swarm_peers(e: &serde_json::Value) -> Vec<SwarmPeer> {
    e["peers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|p| {
                    Some(SwarmPeer {
                        ip: p["ip"].as_str()?.parse().ok()?,
                        port: u16::try_from(p["port"].as_u64()?).ok()?,
                        source: p["source"].as_u64()?,
                        connected: p["connected"].as_bool()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Lower-case hex of an info-hash (a magnet's btih).
pub fn hex20(hash: &[u8; 20]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// `magnet:?xt=urn:btih:<hex>` with an `x.pe=` for each peer.
pub fn magnet_uri(hash: &[u8; 20], peers: &[SocketAddr]) -> String {
    let mut uri = format!("magnet:?xt=urn:btih:{}", hex20(hash));
    for p in peers {
        uri.push_str(&format!("&x.pe={p}"));
    }
    uri
}

/// The btih of a magnet URI as 20 bytes (40 hex digits or 32 base32
/// characters), or `None`.
pub fn btih_of(magnet: &str) -> Option<[u8; 20]> {
    let query = magnet.strip_prefix("magnet:?")?;
    let value = query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == "xt").then_some(v)?.strip_prefix("urn:btih:")
    })?;
    let mut out = [0u8; 20];
    if value.len() == 40 {
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(value.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        return Some(out);
    }
    if value.len() == 32 {
        let mut acc: u64 = 0;
        let mut bits = 0;
        let mut n = 0;
        for c in value.bytes() {
            let v = match c.to_ascii_uppercase() {
                c @ b'A'..=b'Z' => c - b'A',
                c @ b'2'..=b'7' => c - b'2' + 26,
                _ => return None,
            };
            acc = (acc << 5) | u64::from(v);
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                *out.get_mut(n)? = (acc >> bits) as u8;
                n += 1;
            }
        }
        return (n == 20).then_some(out);
    }
    None
}

/// Starts `ringseed download TARGET --save-path OUT --listen LISTEN
/// --bind-address IP EXTRA...` (`--no-dht` added unless EXTRA names the
/// DHT); TARGET may be a magnet URI.
pub fn start_ringseed_fetch(
    label: &str,
    target: &str,
    out: &Path,
    listen: SocketAddr,
    extra: &[&str],
) -> Daemon {
    let mut args = vec![
        os("download"),
        os(target),
        os("--save-path"),
        os(out),
        os("--listen"),
        os(listen.to_string()),
        os("--bind-address"),
        os(listen.ip().to_string()),
    ];
    args.extend(extra.iter().map(os));
    no_public_dht(&mut args);
    Daemon::spawn(label, &args)
}

/// A sample tree and its torrent with no tracker (DHT, PEX and magnets
/// only), `--private` when `private`.
pub struct Untracked {
    pub dir: tempfile::TempDir,
    pub tree: Tree,
    pub torrent: PathBuf,
    pub info_hash: [u8; 20],
}

pub fn untracked_torrent(name: &str, seed: u64, private: bool) -> Untracked {
    let dir = super::tempdir();
    let tree = super::make_tree(dir.path(), name, seed);
    let mut args = vec!["--piece-length", "32K", "--no-date"];
    if private {
        args.push("--private");
    }
    let torrent = super::create_torrent(&tree, &format!("{name}.torrent"), &args);
    let info_hash = info_hash_of(&torrent);
    Untracked {
        dir,
        tree,
        torrent,
        info_hash,
    }
}

/// What a [`DhtCapture`] recorded: (sender, bytes) of each datagram kept,
/// and how many arrived in all.
type Captured = (Vec<(SocketAddr, Vec<u8>)>, usize);

/// One KRPC query a [`DhtCapture`] received.
#[derive(Debug, Clone)]
pub struct KrpcQuery {
    pub from: SocketAddr,
    /// `q`: ping, find_node, get_peers, announce_peer, ...
    pub method: String,
    /// `a.info_hash`, for get_peers and announce_peer.
    pub info_hash: Option<[u8; 20]>,
}

/// A UDP socket that records every datagram sent to it and answers KRPC
/// queries as a DHT node that knows no other node (so that a client keeps
/// it in its routing table and sends it its lookups): `r` with an `id`, an
/// empty `nodes` and, for get_peers, a `token`.
pub struct DhtCapture {
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
    seen: Arc<Mutex<Captured>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl DhtCapture {
    /// Binds a fresh UDP port on `ip` and starts recording.
    pub fn start(ip: Ipv4Addr) -> DhtCapture {
        let socket = std::net::UdpSocket::bind((ip, 0))
            .unwrap_or_else(|e| panic!("cannot bind a UDP socket on {ip}: {e}"));
        DhtCapture::on(socket)
    }

    /// Records on `socket` (bound by the caller, e.g. to an interface's address).
    pub fn on(socket: std::net::UdpSocket) -> DhtCapture {
        let addr = socket
            .local_addr()
            .unwrap_or_else(|e| panic!("capture socket address: {e}"));
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap_or_else(|e| panic!("capture socket timeout: {e}"));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen: Arc<Mutex<Captured>> = Arc::new(Mutex::new((Vec::new(), 0)));
        let (stop2, seen2) = (Arc::clone(&stop), Arc::clone(&seen));
        let thread = thread::spawn(move || {
            let mut buf = vec![0u8; CAPTURE_DATAGRAM_BYTES_MAX];
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let data = buf.get(..n).unwrap_or_default().to_vec();
                {
                    let mut s = seen2.lock().unwrap_or_else(|e| e.into_inner());
                    s.1 += 1;
                    if s.0.len() < CAPTURE_DATAGRAMS_MAX {
                        s.0.push((from, data.clone()));
                    }
                }
                if let Some(reply) = krpc_reply(&data) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        DhtCapture {
            addr,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every datagram so far (sender, bytes).
    pub fn datagrams(&self) -> Vec<(SocketAddr, Vec<u8>)> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// How many datagrams arrived, recorded or not.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    /// The datagrams that parse as KRPC queries.
    pub fn queries(&self) -> Vec<KrpcQuery> {
        self.datagrams()
            .iter()
            .filter_map(|(from, d)| parse_krpc_query(*from, d))
            .collect()
    }

    /// The datagrams whose bytes hold `hash` anywhere (whatever their form).
    pub fn datagrams_holding(&self, hash: &[u8; 20]) -> Vec<(SocketAddr, Vec<u8>)> {
        self.datagrams()
            .into_iter()
            .filter(|(_, d)| d.windows(20).any(|w| w == hash))
            .collect()
    }

    /// Waits up to `timeout` for a query `pred` accepts.
    pub fn wait_query(
        &self,
        timeout: Duration,
        pred: impl Fn(&KrpcQuery) -> bool,
    ) -> Option<KrpcQuery> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(q) = self.queries().into_iter().find(|q| pred(q)) {
                return Some(q);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// A summary of what arrived, for failure messages.
    pub fn describe(&self) -> String {
        let queries: Vec<String> = self
            .queries()
            .iter()
            .map(|q| {
                format!(
                    "{} from {}{}",
                    q.method,
                    q.from,
                    q.info_hash
                        .map(|h| format!(" for {}", hex20(&h)))
                        .unwrap_or_default()
                )
            })
            .collect();
        format!(
            "capture on {}: {} datagram(s); queries: {queries:?}",
            self.addr,
            self.count()
        )
    }
}

impl Drop for DhtCapture {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `datagram` as a KRPC query, if it is one.
pub fn parse_krpc_query(from: SocketAddr, datagram: &[u8]) -> Option<KrpcQuery> {
    let v = ringseed::bencode::decode(datagram).ok()?;
    let d = v.as_dict()?;
    if d.get(b"y")?.as_bytes()? != b"q" {
        return None;
    }
    let method = String::from_utf8_lossy(d.get(b"q")?.as_bytes()?).into_owned();
    let info_hash = d
        .get(b"a")
        .and_then(|a| a.as_dict())
        .and_then(|a| a.get(b"info_hash"))
        .and_then(|h| h.as_bytes())
        .and_then(|h| <[u8; 20]>::try_from(h).ok());
    Some(KrpcQuery {
        from,
        method,
        info_hash,
    })
}

/// The answer of a node that knows no other node, or `None` for anything
/// but a query.
fn krpc_reply(datagram: &[u8]) -> Option<Vec<u8>> {
    use ringseed::bencode::OwnedValue;
    use std::collections::BTreeMap;
    let v = ringseed::bencode::decode(datagram).ok()?;
    let d = v.as_dict()?;
    if d.get(b"y")?.as_bytes()? != b"q" {
        return None;
    }
    let tid = d.get(b"t")?.as_bytes()?.to_vec();
    let method = d.get(b"q")?.as_bytes()?;
    let mut r = BTreeMap::new();
    r.insert(b"id".to_vec(), OwnedValue::Bytes([0x5a; 20].to_vec()));
    if method == b"find_node" || method == b"get_peers" {
        r.insert(b"nodes".to_vec(), OwnedValue::Bytes(Vec::new()));
    }
    if method == b"get_peers" {
        r.insert(b"token".to_vec(), OwnedValue::Bytes(b"capture".to_vec()));
    }
    let mut top = BTreeMap::new();
    top.insert(b"t".to_vec(), OwnedValue::Bytes(tid));
    top.insert(b"y".to_vec(), OwnedValue::str("r"));
    top.insert(b"r".to_vec(), OwnedValue::Dict(r));
    Some(OwnedValue::Dict(top).encode())
}

/// Waits up to `timeout` for `d` to exit with status 0; otherwise panics
/// with its output and `context()` (the other peers' logs, taken then).
pub fn expect_exit_ok(d: &mut Daemon, timeout: Duration, context: &dyn Fn() -> String) {
    let status = d.wait_exit(timeout);
    if status.and_then(|s| s.code()) != Some(0) {
        let why = match status {
            None => format!("did not finish within {timeout:?}"),
            Some(s) => format!("failed ({})", exit_text(Some(s))),
        };
        panic!("{} {why}\n{}\n{}", d.label, d.describe(), context());
    }
}
