//! Helpers for the daemon's end-to-end tests: a `ringseed daemon` child on
//! loopback with its state, download and watch folders in one temporary
//! directory, `ringseed ctl` against it, small generated torrents, and an
//! inotify watch that tells which data files were read.
//!
//! Every wait is bounded; children are killed by pid on drop.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::engine::{os, Daemon};
use super::{ringseed, RunOutput, XorShift64};
use ringseed::metainfo::{NewFile, TorrentBuilder};

/// Longest the daemon may take to load its state and listen.
pub const READY_WAIT_MAX: Duration = Duration::from_secs(90);
/// How often state is polled.
const POLL: Duration = Duration::from_millis(100);

/// The folders of one daemon.
pub struct Dirs {
    pub root: tempfile::TempDir,
    pub state: PathBuf,
    pub downloads: PathBuf,
    pub watch: PathBuf,
}

impl Dirs {
    pub fn new() -> Dirs {
        let root = super::tempdir();
        let state = root.path().join("state");
        let downloads = root.path().join("downloads");
        let watch = root.path().join("watch");
        for d in [&downloads, &watch] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        }
        Dirs {
            root,
            state,
            downloads,
            watch,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }
}

/// A running daemon.
pub struct RingDaemon {
    pub proc: Daemon,
    pub state: PathBuf,
    pub addr: SocketAddr,
    /// `http://IP:PORT` of the Web API when started with `--api-listen`
    /// (from the daemon's `Web API listening on http://...` line).
    pub api: Option<String>,
}

/// The Web API's user name and password the API tests start the daemon
/// with (through `RINGSEED_API_USERNAME` / `RINGSEED_API_PASSWORD`).
pub const API_USER: &str = "admin";
pub const API_PASSWORD: &str = "ringseed-test-password";

impl RingDaemon {
    /// Starts `ringseed daemon` on `ip` with the folders of `dirs` (and
    /// `extra` arguments), and waits for its `ready` line.
    pub fn start(label: &str, dirs: &Dirs, ip: std::net::Ipv4Addr, extra: &[OsString]) -> Self {
        Self::start_env(label, dirs, ip, extra, &[])
    }

    pub fn start_env(
        label: &str,
        dirs: &Dirs,
        ip: std::net::Ipv4Addr,
        extra: &[OsString],
        env: &[(&str, &str)],
    ) -> Self {
        let mut cmd = std::process::Command::new(super::ringseed_bin());
        cmd.args([
            os("daemon"),
            os("--state-dir"),
            os(&dirs.state),
            os("--download-dir"),
            os(&dirs.downloads),
            os("--watch-dir"),
            os(&dirs.watch),
            os("--listen"),
            os(format!("{ip}:0")),
            os("--bind-address"),
            os(ip.to_string()),
            os("--shards"),
            os("2"),
        ]);
        if !extra.iter().any(|a| a == "--config") {
            // Never the machine's own /etc/ringseed/ringseed.toml.
            let empty = dirs.root.path().join("empty.toml");
            if !empty.exists() {
                std::fs::write(&empty, "").unwrap_or_else(|e| panic!("{e}"));
            }
            cmd.args([os("--config"), os(&empty)]);
        }
        if !extra.iter().any(|a| a == "--api-listen") {
            // Tests run side by side: never the default 127.0.0.1:8080.
            cmd.args([os("--api-listen"), os("off")]);
        }
        if !extra
            .iter()
            .any(|a| a == "--no-dht" || a == "--dht-bootstrap")
        {
            // Tests never reach the public DHT routers.
            cmd.arg(os("--no-dht"));
        }
        cmd.args(extra);
        cmd.env("RINGSEED_LOG", "info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proc = Daemon::spawn_command(label, cmd);
        let fallback = SocketAddr::from((ip, 0));
        let addr = proc.wait_listening("ringseed", fallback);
        if let Err(why) = proc.wait_line(READY_WAIT_MAX, |l| l.contains("INFO ready in")) {
            panic!("{label} never got ready: {why}\n{}", proc.describe());
        }
        let api = if extra.iter().any(|a| a == "--api-listen") {
            let line = proc
                .wait_line(READY_WAIT_MAX, |l| {
                    l.contains("Web API listening on http://")
                })
                .unwrap_or_else(|why| {
                    panic!("{label}: no Web API line: {why}\n{}", proc.describe())
                });
            let url = line
                .split("listening on ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .unwrap_or_else(|| panic!("{label}: bad Web API line {line:?}"));
            Some(url.trim_end_matches('/').to_string())
        } else {
            None
        };
        RingDaemon {
            proc,
            state: dirs.state.clone(),
            addr,
            api,
        }
    }

    /// Starts the daemon with its Web API on `ip` (a free port) and the
    /// test credentials [`API_USER`] / [`API_PASSWORD`] from the
    /// environment; `self.api` holds its URL.
    pub fn start_api(label: &str, dirs: &Dirs, ip: std::net::Ipv4Addr, extra: &[OsString]) -> Self {
        let mut args = vec![os("--api-listen"), os(format!("{ip}:0"))];
        args.extend(extra.iter().cloned());
        Self::start_env(
            label,
            dirs,
            ip,
            &args,
            &[
                ("RINGSEED_API_USERNAME", API_USER),
                ("RINGSEED_API_PASSWORD", API_PASSWORD),
            ],
        )
    }

    /// The Web API's URL (panics unless started with `--api-listen`).
    pub fn api_url(&self) -> &str {
        self.api
            .as_deref()
            .unwrap_or_else(|| panic!("the daemon was started without --api-listen"))
    }

    /// `ringseed ctl --state-dir STATE ARGS...`, required to succeed.
    pub fn ctl(&self, args: &[&str]) -> RunOutput {
        let out = self.ctl_any(args);
        assert!(
            out.code == Some(0),
            "ringseed ctl {args:?} failed:\n{}\n{}",
            out.describe(),
            self.proc.describe()
        );
        out
    }

    /// `ringseed ctl` whatever it answers.
    pub fn ctl_any(&self, args: &[&str]) -> RunOutput {
        let mut all: Vec<OsString> = vec![os("ctl"), os("--state-dir"), os(&self.state)];
        all.extend(args.iter().map(os));
        ringseed(all)
    }

    /// `ctl list --json`: one object per torrent.
    pub fn list(&self) -> Vec<serde_json::Value> {
        let out = self.ctl(&["list", "--json"]);
        match serde_json::from_str::<serde_json::Value>(&out.stdout) {
            Ok(serde_json::Value::Array(v)) => v,
            other => panic!(
                "ctl list --json printed no array ({other:?}):\n{}",
                out.stdout
            ),
        }
    }

    /// The listed torrent with this info-hash.
    pub fn torrent(&self, hash: &str) -> Option<serde_json::Value> {
        self.list()
            .into_iter()
            .find(|t| t.get("hash").and_then(|h| h.as_str()) == Some(hash))
    }

    /// Waits until `pred` holds for the torrent `hash`; returns it.
    pub fn wait_torrent(
        &self,
        hash: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            last = self.torrent(hash);
            if last.as_ref().is_some_and(&pred) {
                return last.unwrap_or_default();
            }
            thread::sleep(POLL * 2);
        }
        panic!(
            "torrent {hash} not {what} within {timeout:?}; last: {last:?}\n{}",
            self.proc.describe()
        );
    }

    /// Waits until every listed torrent is in `state` (and there are `n`).
    pub fn wait_all(&self, n: usize, state: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut summary = String::new();
        while Instant::now() < deadline {
            let l = self.list();
            let ok = l
                .iter()
                .filter(|t| t.get("state").and_then(|s| s.as_str()) == Some(state))
                .count();
            if l.len() == n && ok == n {
                return;
            }
            summary = format!("{} listed, {ok} {state}", l.len());
            thread::sleep(POLL * 5);
        }
        panic!(
            "not all {n} torrents {state} within {timeout:?} ({summary})\n{}",
            self.proc.describe()
        );
    }

    pub fn kill9(&mut self) {
        self.proc.signal(libc::SIGKILL);
        let _ = self.proc.wait_exit(Duration::from_secs(10));
    }
}

pub fn state_of(t: &serde_json::Value) -> &str {
    t.get("state").and_then(|s| s.as_str()).unwrap_or("?")
}

pub fn u64_of(t: &serde_json::Value, key: &str) -> u64 {
    t.get(key)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("no unsigned `{key}` in {t}"))
}

pub fn str_of<'a>(t: &'a serde_json::Value, key: &str) -> &'a str {
    t.get(key)
        .and_then(|s| s.as_str())
        .unwrap_or_else(|| panic!("no string `{key}` in {t}"))
}

/// A single-file torrent of `len` random bytes (from `seed`) named
/// `name`: writes the data into `data_dir` and returns the .torrent's
/// bytes and its info-hash (hex).
pub fn small_torrent(data_dir: &Path, name: &str, len: usize, seed: u64) -> (Vec<u8>, String) {
    small_torrent_with(data_dir, name, len, seed, 16 * 1024, &[])
}

pub fn small_torrent_with(
    data_dir: &Path,
    name: &str,
    len: usize,
    seed: u64,
    piece_length: u64,
    trackers: &[String],
) -> (Vec<u8>, String) {
    let mut data = vec![0u8; len];
    XorShift64::new(seed).fill(&mut data);
    std::fs::write(data_dir.join(name), &data).unwrap_or_else(|e| panic!("{e}"));
    let hashes: Vec<[u8; 20]> = data
        .chunks(piece_length as usize)
        .map(ringseed::hash::sha1)
        .collect();
    let b = TorrentBuilder {
        name: name.into(),
        files: vec![NewFile {
            path: vec![],
            length: len as u64,
        }],
        single_file: true,
        piece_length,
        trackers: if trackers.is_empty() {
            Vec::new()
        } else {
            vec![trackers.to_vec()]
        },
        ..TorrentBuilder::default()
    };
    let bytes = b.build(&hashes).unwrap_or_else(|e| panic!("{e}"));
    let hash = ringseed::metainfo::Metainfo::from_bytes(&bytes)
        .unwrap_or_else(|e| panic!("{e}"))
        .info_hash
        .to_hex();
    (bytes, hash)
}

/// Files of a folder read (IN_ACCESS) while it is watched, through
/// inotify.
pub struct ReadWatch {
    fd: i32,
}

impl ReadWatch {
    /// Watches `dir` (not recursive) for reads of its files.
    pub fn new(dir: &Path) -> ReadWatch {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: plain syscalls on a fd we own; the path is NUL-terminated.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0, "inotify_init1 failed");
        let mut p = dir.as_os_str().as_bytes().to_vec();
        p.push(0);
        let wd = unsafe { libc::inotify_add_watch(fd, p.as_ptr().cast(), libc::IN_ACCESS) };
        assert!(wd >= 0, "inotify_add_watch {} failed", dir.display());
        ReadWatch { fd }
    }

    /// Names of the files read since the last call.
    pub fn take(&self) -> Vec<String> {
        let mut names = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: reads into our own buffer of that length.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            let mut off = 0usize;
            let header = std::mem::size_of::<libc::inotify_event>();
            while off + header <= n as usize {
                // SAFETY: the kernel wrote whole events; read unaligned.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
                let name_bytes = &buf[off + header..off + header + ev.len as usize];
                let name = String::from_utf8_lossy(name_bytes)
                    .trim_end_matches('\0')
                    .to_string();
                if !names.contains(&name) {
                    names.push(name);
                }
                off += header + ev.len as usize;
            }
        }
        names
    }
}

impl Drop for ReadWatch {
    fn drop(&mut self) {
        // SAFETY: closes our own fd once.
        unsafe {
            libc::close(self.fd);
        }
    }
}
