//! ringseed under systemd, without systemd as PID 1:
//!
//! - `tuning/ringseed.service` passes `systemd-analyze verify` (with its
//!   `ExecStart=` pointed at the binary under test, since verify checks that
//!   the binary exists), with no warning about the unit, and its system call
//!   filter lets io_uring through;
//! - `ringseed daemon` speaks the notify protocol to a datagram socket the
//!   test binds in `NOTIFY_SOCKET`'s place: `READY=1` and `STATUS=` once it
//!   serves, `WATCHDOG=1` at half of `WATCHDOG_USEC`, `STOPPING=1` on
//!   SIGTERM, then exit status 0.
//!
//! A missing `systemd-analyze` fails with the package to install. Every wait
//! is bounded; the daemon is killed by pid if the test fails
//! (`common::engine::Daemon`'s Drop).

mod common;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::engine::{os, Daemon};
use common::{ringseed_bin, run_with_timeout, tempdir};

/// Longest `systemd-analyze` may take (it loads the unit's dependencies).
const ANALYZE_TIMEOUT: Duration = Duration::from_secs(60);
/// What the test asks for with `WATCHDOG_USEC`.
const WATCHDOG_USEC: u64 = 400_000;
/// Longest the daemon may take to send `READY=1`.
const READY_WAIT_MAX: Duration = Duration::from_secs(20);
/// The window after `READY=1` in which [`WATCHDOG_PINGS_MIN`] pings must come.
const WATCHDOG_WINDOW: Duration = Duration::from_secs(2);
/// Pings expected in [`WATCHDOG_WINDOW`]: one per 200 ms (half the
/// interval) would be 10; 3 leaves room for a loaded machine while failing
/// a daemon that does not ping, or pings far less often than asked (each
/// 400 ms gap without a ping would get it restarted under systemd).
const WATCHDOG_PINGS_MIN: usize = 3;
/// Longest the daemon may take to send `STOPPING=1` and exit after SIGTERM.
const STOP_WAIT_MAX: Duration = Duration::from_secs(20);
/// How often the waiting loops look again.
const POLL: Duration = Duration::from_millis(20);
/// Largest notify datagram read (systemd reads up to its own limit; ours
/// are far smaller).
const DATAGRAM_BYTES_MAX: usize = 64 * 1024;
/// Most datagrams kept (a runaway sender cannot fill the test's memory).
const DATAGRAMS_MAX: usize = 100_000;

const INSTALL_SYSTEMD_HINT: &str =
    "systemd-analyze is missing: install the Debian package `systemd` (`apt-get install -y systemd`; \
     it is not started as PID 1 by installing it, and `systemd-analyze verify` needs no running systemd)";

// ---------------------------------------------------------------------------
// The unit file
// ---------------------------------------------------------------------------

fn unit_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning/ringseed.service")
}

/// Runs `systemd-analyze ARGS` or fails with the install hint when it is
/// not installed.
fn systemd_analyze(args: &[OsString]) -> common::RunOutput {
    match Command::new("systemd-analyze").arg("--version").output() {
        Err(e) if e.kind() == ErrorKind::NotFound => panic!("{INSTALL_SYSTEMD_HINT}"),
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
        Ok(_) => {}
    }
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(args);
    run_with_timeout(&mut cmd, ANALYZE_TIMEOUT)
}

/// The unit with `ExecStart=` pointed at the binary under test, written to
/// `dir/ringseed.service`.
fn unit_for_test(dir: &Path) -> PathBuf {
    let text = fs::read_to_string(unit_source())
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", unit_source().display()));
    let exec = "ExecStart=/usr/local/bin/ringseed daemon";
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("ExecStart="))
        .collect();
    assert_eq!(
        lines,
        vec![exec],
        "the unit must start `{exec}` (its install notes and this test assume that path)"
    );
    let bin = ringseed_bin();
    let replaced = text.replace(exec, &format!("ExecStart={} daemon", bin.display()));
    let path = dir.join("ringseed.service");
    fs::write(&path, replaced).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// The unit's `Key=value` settings (comments and sections left out).
fn settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    let dir = tempdir();
    let unit = unit_for_test(dir.path());
    let out = systemd_analyze(&[os("verify"), os("--man=no"), unit.clone().into_os_string()]);
    println!(
        "systemd-analyze verify {}:\n{}",
        unit.display(),
        out.describe()
    );
    out.assert_code(0);
    // verify reports problems in a unit (unknown keys, values it cannot
    // parse) as warnings and still exits 0: any line naming our unit fails.
    let about_ours: Vec<&str> = out
        .stdout
        .lines()
        .chain(out.stderr.lines())
        .filter(|l| l.contains("ringseed.service") || l.contains(&*dir.path().to_string_lossy()))
        .collect();
    assert!(
        about_ours.is_empty(),
        "systemd-analyze verify warns about the unit:\n{}",
        about_ours.join("\n")
    );
}

#[test]
fn the_unit_has_what_the_daemon_relies_on() {
    let text = fs::read_to_string(unit_source()).unwrap();
    let set = settings(&text);
    let get = |key: &str| -> Vec<&str> {
        set.iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    for (key, want) in [
        ("Type", "notify"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        ("StateDirectory", "ringseed"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        (
            "RestrictAddressFamilies",
            "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
        ),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(
            get(key),
            vec![want],
            "{key}= in {}",
            unit_source().display()
        );
    }
    for key in ["WatchdogSec", "LimitNOFILE", "TimeoutStopSec", "User"] {
        assert_eq!(get(key).len(), 1, "{key}= set once");
    }
    let nofile: u64 = get("LimitNOFILE")[0]
        .parse()
        .expect("LimitNOFILE= a number");
    assert!(
        nofile >= 65_536,
        "LimitNOFILE={nofile} is too low for thousands of peers"
    );
    // The VPN example is there, commented.
    assert!(
        text.contains("#BindsTo=sys-subsystem-net-devices-wg0.device"),
        "the commented VPN-interface example is missing"
    );
}

/// The system calls in a `@group` as this systemd defines it (nested
/// groups expanded).
fn syscall_group(name: &str, seen: &mut BTreeSet<String>) -> BTreeSet<String> {
    let mut calls = BTreeSet::new();
    if !seen.insert(name.to_string()) {
        return calls;
    }
    let out = systemd_analyze(&[os("syscall-filter"), os(name)]);
    out.assert_code(0);
    for line in out.stdout.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line == name {
            continue;
        }
        if line.starts_with('@') {
            calls.extend(syscall_group(line, seen));
        } else {
            calls.insert(line.to_string());
        }
    }
    calls
}

#[test]
fn the_system_call_filter_lets_io_uring_through() {
    let text = fs::read_to_string(unit_source()).unwrap();
    let filters: Vec<String> = settings(&text)
        .into_iter()
        .filter(|(k, _)| k == "SystemCallFilter")
        .map(|(_, v)| v)
        .collect();
    assert!(!filters.is_empty(), "the unit has no SystemCallFilter=");
    let mut allowed = BTreeSet::new();
    let mut denied = BTreeSet::new();
    for f in &filters {
        let (deny, list) = match f.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, f.as_str()),
        };
        for item in list.split_whitespace() {
            let calls = if item.starts_with('@') {
                syscall_group(item, &mut BTreeSet::new())
            } else {
                BTreeSet::from([item.to_string()])
            };
            if deny {
                denied.extend(calls);
            } else {
                allowed.extend(calls);
            }
        }
    }
    for call in [
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "setrlimit",
        "sched_setaffinity",
        "fdatasync",
    ] {
        assert!(
            allowed.contains(call),
            "SystemCallFilter= does not allow {call}: {filters:?}"
        );
        assert!(
            !denied.contains(call),
            "SystemCallFilter= denies {call}: {filters:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// The notify protocol
// ---------------------------------------------------------------------------

/// One datagram and when it came.
struct Datagram {
    at: Instant,
    text: String,
}

impl Datagram {
    fn has(&self, line: &str) -> bool {
        self.text.split('\n').any(|l| l == line)
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.text
            .split('\n')
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }
}

/// The test's stand-in for systemd's notify socket: a bound datagram socket
/// read by a thread into a list until dropped.
struct NotifyListener {
    path: PathBuf,
    got: Arc<Mutex<Vec<Datagram>>>,
    stop: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<()>>,
}

impl NotifyListener {
    fn bind(path: PathBuf) -> NotifyListener {
        let socket =
            UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap_or_else(|e| panic!("set_read_timeout: {e}"));
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, done) = (Arc::clone(&got), Arc::clone(&stop));
        let reader = thread::spawn(move || {
            let mut buf = vec![0u8; DATAGRAM_BYTES_MAX];
            while !done.load(Ordering::Relaxed) {
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        let at = Instant::now();
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        let mut list = sink.lock().unwrap_or_else(|e| e.into_inner());
                        if list.len() < DATAGRAMS_MAX {
                            list.push(Datagram { at, text });
                        }
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) => panic!("notify socket recv: {e}"),
                }
            }
        });
        NotifyListener {
            path,
            got,
            stop,
            reader: Some(reader),
        }
    }

    /// The first datagram (index and time) with the line `line`.
    fn first(&self, line: &str) -> Option<(usize, Instant)> {
        let list = self.got.lock().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .enumerate()
            .find(|(_, d)| d.has(line))
            .map(|(i, d)| (i, d.at))
    }

    fn count_between(&self, line: &str, from: Instant, to: Instant) -> usize {
        let list = self.got.lock().unwrap_or_else(|e| e.into_inner());
        list.iter()
            .filter(|d| d.has(line) && d.at >= from && d.at <= to)
            .count()
    }

    /// Every datagram so far, for failure messages.
    fn transcript(&self) -> String {
        let list = self.got.lock().unwrap_or_else(|e| e.into_inner());
        let Some(start) = list.first().map(|d| d.at) else {
            return "(no datagram)".to_string();
        };
        list.iter()
            .map(|d| {
                format!(
                    "+{:>6} ms  {}",
                    d.at.duration_since(start).as_millis(),
                    d.text.replace('\n', "\\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn with_all<T>(&self, f: impl FnOnce(&[Datagram]) -> T) -> T {
        let list = self.got.lock().unwrap_or_else(|e| e.into_inner());
        f(&list)
    }
}

impl Drop for NotifyListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let _ = fs::remove_file(&self.path);
    }
}

/// Waits up to `timeout` for a datagram with `line`; fails with the
/// transcript and the daemon's output if it exits or time runs out.
fn wait_for(
    listener: &NotifyListener,
    daemon: &mut Daemon,
    line: &str,
    timeout: Duration,
) -> (usize, Instant) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = listener.first(line) {
            return found;
        }
        if daemon.poll_exit().is_some() {
            thread::sleep(Duration::from_millis(200));
            if let Some(found) = listener.first(line) {
                return found;
            }
            panic!(
                "the daemon exited before sending {line}\n--- datagrams ---\n{}\n{}",
                listener.transcript(),
                daemon.describe()
            );
        }
        if Instant::now() >= deadline {
            panic!(
                "no {line} within {timeout:?}\n--- datagrams ---\n{}\n{}",
                listener.transcript(),
                daemon.describe()
            );
        }
        thread::sleep(POLL);
    }
}

#[test]
fn the_daemon_speaks_the_notify_protocol() {
    let dir = tempdir();
    let state = dir.path().join("state");
    let downloads = dir.path().join("downloads");
    for d in [&state, &downloads] {
        fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
    let listener = NotifyListener::bind(dir.path().join("notify.sock"));

    let mut cmd = Command::new(ringseed_bin());
    cmd.args([
        os("daemon"),
        os("--no-dht"),
        os("--state-dir"),
        state.clone().into_os_string(),
        os("--download-dir"),
        downloads.clone().into_os_string(),
        os("--listen"),
        os("127.0.0.1:0"),
        os("--api-listen"),
        os("off"),
        os("--shards"),
        os("1"),
    ])
    .env("NOTIFY_SOCKET", &listener.path)
    .env("WATCHDOG_USEC", WATCHDOG_USEC.to_string())
    .env("RINGSEED_LOG", "info")
    // Not ours: a WATCHDOG_PID inherited from the test's own environment
    // would (rightly) turn the daemon's watchdog off.
    .env_remove("WATCHDOG_PID")
    .env_remove("STATE_DIRECTORY")
    .env_remove("LISTEN_FDS");
    let mut daemon = Daemon::spawn_command("ringseed daemon", cmd);

    // READY=1 once it serves, with a status and (if sent) our pid.
    let (ready_index, ready_at) = wait_for(&listener, &mut daemon, "READY=1", READY_WAIT_MAX);

    // At least WATCHDOG_PINGS_MIN pings in the window after READY=1.
    let window_end = ready_at + WATCHDOG_WINDOW;
    while Instant::now() < window_end + Duration::from_millis(100) {
        if daemon.poll_exit().is_some() {
            panic!(
                "the daemon exited after READY=1\n--- datagrams ---\n{}\n{}",
                listener.transcript(),
                daemon.describe()
            );
        }
        thread::sleep(POLL);
    }
    let pings = listener.count_between("WATCHDOG=1", ready_at, window_end);
    assert!(
        pings >= WATCHDOG_PINGS_MIN,
        "{pings} WATCHDOG=1 within {WATCHDOG_WINDOW:?} of READY=1 with WATCHDOG_USEC={WATCHDOG_USEC} \
         (want at least {WATCHDOG_PINGS_MIN}: one every WATCHDOG_USEC/2)\n--- datagrams ---\n{}",
        listener.transcript()
    );

    listener.with_all(|all| {
        // Every datagram is KEY=VALUE lines.
        for d in all {
            assert!(
                d.text.split('\n').all(|l| {
                    l.split_once('=').is_some_and(|(k, _)| {
                        !k.is_empty() && k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
                    })
                }),
                "a datagram that is not KEY=VALUE lines: {:?}",
                d.text
            );
        }
        // A status by the end of the watchdog window, with text.
        let status = all
            .iter()
            .filter_map(|d| d.value("STATUS"))
            .find(|s| !s.trim().is_empty());
        assert!(
            status.is_some(),
            "no STATUS= text by {WATCHDOG_WINDOW:?} after READY=1\n--- datagrams ---\n{}",
            listener.transcript()
        );
        // MAINPID=, when sent, is the daemon: a child of this test.
        for d in all {
            if let Some(main) = d.value("MAINPID") {
                assert_eq!(
                    parent_of(main),
                    Some(std::process::id()),
                    "MAINPID={main} is not the daemon (not a child of the test)"
                );
            }
        }
        // Nothing says it is stopping before we ask it to.
        assert!(
            !all.iter().any(|d| d.has("STOPPING=1")),
            "STOPPING=1 before SIGTERM\n--- datagrams ---\n{}",
            listener.transcript()
        );
    });

    // SIGTERM: STOPPING=1, then exit 0.
    daemon.signal(libc::SIGTERM);
    let (stopping_index, _) = wait_for(&listener, &mut daemon, "STOPPING=1", STOP_WAIT_MAX);
    assert!(stopping_index > ready_index);
    let status = daemon.wait_exit(STOP_WAIT_MAX);
    assert!(
        status.is_some(),
        "the daemon did not exit within {STOP_WAIT_MAX:?} of SIGTERM\n--- datagrams ---\n{}\n{}",
        listener.transcript(),
        daemon.describe()
    );
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "the daemon did not exit with status 0 after SIGTERM ({})\n--- datagrams ---\n{}\n{}",
        daemon.exit_text(),
        listener.transcript(),
        daemon.describe()
    );
    println!("--- datagrams ---\n{}", listener.transcript());
}

/// The parent pid of process `pid` (from `/proc/PID/stat`), `None` when
/// it is not a pid or not running.
fn parent_of(pid: &str) -> Option<u32> {
    let pid: u32 = pid.parse().ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(1)?.parse().ok()
}
