//! systemd's notify protocol (sd_notify), spoken directly: no crate, no
//! libsystemd. A service started with `Type=notify` finds the manager's
//! datagram socket in `NOTIFY_SOCKET` (an absolute path, or `@name` for
//! Linux's abstract namespace) and sends it newline-separated `KEY=VALUE`
//! lines: `READY=1` once it serves, `STATUS=` text for `systemctl status`,
//! `WATCHDOG=1` keep-alives when `WatchdogSec=` is set, `RELOADING=1` and
//! `STOPPING=1` around a reload and a stop.
//!
//! Boundary: this module only formats and sends those messages; when to
//! send them (READY after the state is loaded and the listeners are up,
//! WATCHDOG from the engine's own loop) is the daemon core's business.
//! Sending never fails the caller: an error is logged once (`warn`), later
//! ones only at `debug`, so a service whose manager went away keeps
//! running. A send waits at most [`SEND_TIMEOUT`] when the manager's queue
//! is full, so a watchdog ping cannot stall the loop that sends it.
//!
//! `NOTIFY_SOCKET` is left in the environment (removing it is not
//! thread-safe); the daemon starts no children that could inherit it.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use thiserror::Error;

/// Most bytes of `STATUS=` text sent; longer text is cut at a character
/// boundary (systemctl shows one line).
pub const STATUS_MAX_BYTES: usize = 256;
/// Longest a send waits for room in the manager's receive queue.
pub const SEND_TIMEOUT: Duration = Duration::from_millis(100);
/// Most bytes of an abstract socket name (`sun_path` is 108 bytes, one is
/// the leading NUL).
const ABSTRACT_NAME_MAX_BYTES: usize = 107;

/// Why `NOTIFY_SOCKET` cannot be used.
#[derive(Debug, Error)]
pub enum NotifyError {
    #[error(
        "NOTIFY_SOCKET={0:?} is neither an absolute path nor an @abstract name \
         (vsock addresses are not supported)"
    )]
    Unsupported(String),
    #[error("NOTIFY_SOCKET={value:?} is not a usable socket address: {source}")]
    Address {
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot create a datagram socket for NOTIFY_SOCKET={value:?}: {source}")]
    Socket {
        value: String,
        #[source]
        source: io::Error,
    },
}

/// The socket systemd gave us (`NOTIFY_SOCKET`). `Send + Sync`: the core
/// and the engine's loop may share it behind an `Arc`.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// `NOTIFY_SOCKET` as given, for log lines.
    target: String,
    watchdog: Option<Duration>,
    /// Set once the first send error has been logged.
    warned: AtomicBool,
}

impl Notifier {
    /// `None` when not started by systemd with `Type=notify` (no or empty
    /// `NOTIFY_SOCKET`), or when `NOTIFY_SOCKET` cannot be used (logged).
    pub fn from_env() -> Option<Notifier> {
        let socket = std::env::var_os("NOTIFY_SOCKET")?;
        if socket.is_empty() {
            return None;
        }
        let watchdog = watchdog_from(
            std::env::var_os("WATCHDOG_USEC").as_deref(),
            std::env::var_os("WATCHDOG_PID").as_deref(),
            std::process::id(),
        );
        match Notifier::connect(&socket, watchdog) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!("systemd notifications off: {e}");
                None
            }
        }
    }

    /// A notifier for the socket `notify_socket` (`/path` or `@abstract`),
    /// with the watchdog interval the manager asked for, if any.
    pub fn connect(
        notify_socket: &OsStr,
        watchdog: Option<Duration>,
    ) -> Result<Notifier, NotifyError> {
        let target = notify_socket.to_string_lossy().into_owned();
        let bytes = notify_socket.as_bytes();
        let addr = match bytes.first() {
            Some(b'/') => SocketAddr::from_pathname(notify_socket),
            Some(b'@') => {
                let name = bytes.get(1..).unwrap_or_default();
                if name.is_empty() || name.len() > ABSTRACT_NAME_MAX_BYTES {
                    return Err(NotifyError::Address {
                        value: target,
                        source: io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!(
                                "an abstract name has 1 to {ABSTRACT_NAME_MAX_BYTES} bytes, \
                                 this one {}",
                                name.len()
                            ),
                        ),
                    });
                }
                SocketAddr::from_abstract_name(name)
            }
            _ => return Err(NotifyError::Unsupported(target)),
        }
        .map_err(|source| NotifyError::Address {
            value: target.clone(),
            source,
        })?;
        let socket = UnixDatagram::unbound()
            .and_then(|s| s.set_write_timeout(Some(SEND_TIMEOUT)).map(|()| s))
            .map_err(|source| NotifyError::Socket {
                value: target.clone(),
                source,
            })?;
        Ok(Notifier {
            socket,
            addr,
            target,
            watchdog,
            warned: AtomicBool::new(false),
        })
    }

    /// `WATCHDOG_USEC` for this process, when the watchdog is on: the
    /// manager restarts the service when no `WATCHDOG=1` came for this
    /// long.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// How often to send `WATCHDOG=1`: half the interval, as sd_watchdog_enabled(3)
    /// advises, so one late ping is not yet a restart.
    pub fn watchdog_ping_interval(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// `READY=1`: start-up is done (state loaded, listeners up). Also
    /// sends `MAINPID=` so the manager knows the pid even if it did not
    /// fork us itself, and `STATUS=status`.
    pub fn ready(&self, status: &str) {
        let msg = format!(
            "READY=1\n{}MAINPID={}",
            status_line(status),
            std::process::id()
        );
        self.notify(&msg);
    }

    /// `STATUS=status`: the line `systemctl status` shows.
    pub fn status(&self, status: &str) {
        let line = status_line(status);
        if !line.is_empty() {
            self.notify(line.trim_end_matches('\n'));
        }
    }

    /// `WATCHDOG=1`: still alive.
    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }

    /// `STOPPING=1` with the given status (say what the stop waits for:
    /// peers, announces, the last save).
    pub fn stopping_status(&self, status: &str) {
        let msg = format!("STOPPING=1\n{}", status_line(status));
        self.notify(msg.trim_end_matches('\n'));
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (the clock reading systemd
    /// 253+ requires with `Type=notify-reload`; older ones ignore it), at
    /// the start of a SIGHUP reload. Follow with [`Notifier::ready_again`].
    pub fn reloading(&self, status: &str) {
        let msg = format!(
            "RELOADING=1\nMONOTONIC_USEC={}\n{}",
            monotonic_usec(),
            status_line(status)
        );
        self.notify(msg.trim_end_matches('\n'));
    }

    /// `READY=1` after a reload (whether it applied everything or not).
    pub fn ready_again(&self, status: &str) {
        let msg = format!("READY=1\n{}", status_line(status));
        self.notify(msg.trim_end_matches('\n'));
    }

    /// `EXTEND_TIMEOUT_USEC=`: asks for `more` time before the start (or
    /// stop) timeout fires, for a start-up that is slow but progressing.
    pub fn extend_timeout(&self, more: Duration) {
        let usec = u64::try_from(more.as_micros()).unwrap_or(u64::MAX);
        self.notify(&format!("EXTEND_TIMEOUT_USEC={usec}"));
    }

    /// Sends `msg`; the first error is logged as a warning, later ones at
    /// debug level.
    fn notify(&self, msg: &str) {
        if let Err(e) = self.send_raw(msg) {
            let first_key = msg.split('\n').next().unwrap_or_default();
            if self.warned.swap(true, Ordering::Relaxed) {
                tracing::debug!("systemd notify {first_key} to {} failed: {e}", self.target);
            } else {
                tracing::warn!(
                    "systemd notify {first_key} to NOTIFY_SOCKET={} failed: {e} \
                     (later failures are logged at debug level only)",
                    self.target
                );
            }
        }
    }

    fn send_raw(&self, msg: &str) -> io::Result<()> {
        let sent = self.socket.send_to_addr(msg.as_bytes(), &self.addr)?;
        if sent != msg.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sent {sent} of {} bytes", msg.len()),
            ));
        }
        Ok(())
    }
}

/// The watchdog interval from `WATCHDOG_USEC` and `WATCHDOG_PID` as
/// sd_watchdog_enabled(3) reads them: off when the interval is missing,
/// zero or not a number, or when `WATCHDOG_PID` is set to another
/// process (the variables were inherited from a parent).
fn watchdog_from(usec: Option<&OsStr>, pid: Option<&OsStr>, our_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.to_str()?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(pid) = pid {
        let pid: u32 = pid.to_str()?.trim().parse().ok()?;
        if pid != our_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

/// `STATUS=text\n` with control characters (newlines included) turned
/// into spaces and at most [`STATUS_MAX_BYTES`] bytes of text; empty when
/// there is no text.
fn status_line(status: &str) -> String {
    let mut text = String::with_capacity(status.len().min(STATUS_MAX_BYTES));
    for c in status.trim().chars() {
        let c = if c.is_control() { ' ' } else { c };
        if text.len() + c.len_utf8() > STATUS_MAX_BYTES {
            break;
        }
        text.push(c);
    }
    if text.is_empty() {
        String::new()
    } else {
        format!("STATUS={text}\n")
    }
}

/// CLOCK_MONOTONIC in microseconds (the clock systemd compares
/// `MONOTONIC_USEC=` with).
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000).saturating_add(nanos / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::sync::atomic::AtomicU32;
    use std::time::Instant;

    /// Longest a test waits for a datagram.
    const RECV_WAIT: Duration = Duration::from_secs(5);

    fn receiver_at_path() -> (tempfile::TempDir, UnixDatagram, OsString) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(RECV_WAIT)).unwrap();
        (dir, rx, path.into_os_string())
    }

    fn abstract_receiver() -> (UnixDatagram, OsString) {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "ringseed-notify-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        rx.set_read_timeout(Some(RECV_WAIT)).unwrap();
        (rx, OsString::from(format!("@{name}")))
    }

    fn recv(rx: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = rx.recv(&mut buf).expect("a datagram within RECV_WAIT");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn ready_reaches_a_path_socket_with_status_and_mainpid() {
        let (_dir, rx, path) = receiver_at_path();
        let n = Notifier::connect(&path, None).unwrap();
        n.ready("3 torrents loaded\nlistening on 0.0.0.0:6881");
        let got = recv(&rx);
        assert_eq!(
            got,
            format!(
                "READY=1\nSTATUS=3 torrents loaded listening on 0.0.0.0:6881\nMAINPID={}",
                std::process::id()
            )
        );
    }

    #[test]
    fn every_message_reaches_an_abstract_socket() {
        let (rx, name) = abstract_receiver();
        let n = Notifier::connect(&name, Some(Duration::from_secs(30))).unwrap();
        n.watchdog();
        assert_eq!(recv(&rx), "WATCHDOG=1");
        n.status("seeding 2");
        assert_eq!(recv(&rx), "STATUS=seeding 2");
        n.stopping_status("stopping");
        assert_eq!(recv(&rx), "STOPPING=1\nSTATUS=stopping");
        n.stopping_status("sending stopped announces");
        assert_eq!(recv(&rx), "STOPPING=1\nSTATUS=sending stopped announces");
        n.ready_again("reloaded");
        assert_eq!(recv(&rx), "READY=1\nSTATUS=reloaded");
        n.extend_timeout(Duration::from_secs(20));
        assert_eq!(recv(&rx), "EXTEND_TIMEOUT_USEC=20000000");
        n.status("\n");
        n.watchdog();
        assert_eq!(recv(&rx), "WATCHDOG=1", "an empty status sends nothing");
    }

    #[test]
    fn reloading_carries_the_monotonic_clock() {
        let (rx, name) = abstract_receiver();
        let n = Notifier::connect(&name, None).unwrap();
        let before = monotonic_usec();
        n.reloading("reloading /etc/ringseed/ringseed.toml");
        let after = monotonic_usec();
        let got = recv(&rx);
        let lines: Vec<&str> = got.split('\n').collect();
        assert_eq!(lines.len(), 3, "{got:?}");
        assert_eq!(lines[0], "RELOADING=1");
        let usec: u64 = lines[1]
            .strip_prefix("MONOTONIC_USEC=")
            .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {got:?}"))
            .parse()
            .unwrap();
        assert!(
            before <= usec && usec <= after,
            "{before} <= {usec} <= {after}"
        );
        assert!(usec > 0);
        assert_eq!(lines[2], "STATUS=reloading /etc/ringseed/ringseed.toml");
    }

    #[test]
    fn status_text_is_one_bounded_line() {
        let long = "é".repeat(STATUS_MAX_BYTES); // 2 bytes each
        let line = status_line(&format!("a\r\nb\t{long}"));
        let text = line
            .strip_prefix("STATUS=")
            .and_then(|t| t.strip_suffix('\n'))
            .unwrap();
        assert!(text.starts_with("a  b é"), "{text:?}");
        assert!(!text.contains(['\n', '\r', '\t']));
        assert!(text.len() <= STATUS_MAX_BYTES, "{} bytes", text.len());
        assert!(text.len() > STATUS_MAX_BYTES - 4, "{} bytes", text.len());
        assert_eq!(status_line("  \n "), "");
        assert_eq!(status_line("ok"), "STATUS=ok\n");
    }

    #[test]
    fn the_watchdog_follows_watchdog_usec_and_watchdog_pid() {
        let os = |s: &str| OsString::from(s);
        let us = Some(os("400000"));
        let me = 4242;
        assert_eq!(
            watchdog_from(us.as_deref(), None, me),
            Some(Duration::from_millis(400))
        );
        assert_eq!(
            watchdog_from(us.as_deref(), Some(&os("4242")), me),
            Some(Duration::from_millis(400))
        );
        assert_eq!(watchdog_from(us.as_deref(), Some(&os("4243")), me), None);
        assert_eq!(watchdog_from(us.as_deref(), Some(&os("x")), me), None);
        assert_eq!(watchdog_from(Some(&os("0")), None, me), None);
        assert_eq!(watchdog_from(Some(&os("-5")), None, me), None);
        assert_eq!(watchdog_from(Some(&os("soon")), None, me), None);
        assert_eq!(watchdog_from(None, Some(&os("4242")), me), None);

        let (rx, name) = abstract_receiver();
        drop(rx);
        let n = Notifier::connect(&name, Some(Duration::from_millis(400))).unwrap();
        assert_eq!(n.watchdog_interval(), Some(Duration::from_millis(400)));
        assert_eq!(n.watchdog_ping_interval(), Some(Duration::from_millis(200)));
        let off = Notifier::connect(&name, None).unwrap();
        assert_eq!(off.watchdog_ping_interval(), None);
    }

    #[test]
    fn unusable_addresses_are_refused_with_the_value() {
        for bad in ["relative/notify.sock", "vsock:2:1234", "@"] {
            let e = Notifier::connect(OsStr::new(bad), None).unwrap_err();
            assert!(e.to_string().contains(bad), "{bad}: {e}");
        }
        let long = format!("/{}", "a".repeat(200));
        let e = Notifier::connect(OsStr::new(&long), None).unwrap_err();
        assert!(matches!(e, NotifyError::Address { .. }), "{e}");
        let long_abstract = format!("@{}", "a".repeat(ABSTRACT_NAME_MAX_BYTES + 1));
        let e = Notifier::connect(OsStr::new(&long_abstract), None).unwrap_err();
        assert!(matches!(e, NotifyError::Address { .. }), "{e}");
    }

    #[test]
    fn a_gone_manager_is_reported_once_and_never_fails_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nobody.sock");
        let n = Notifier::connect(path.as_os_str(), None).unwrap();
        assert!(n.send_raw("WATCHDOG=1").is_err(), "no one listens there");
        n.watchdog();
        assert!(n.warned.load(Ordering::Relaxed));
        n.watchdog();
        n.ready("still fine");
    }

    #[test]
    fn a_full_manager_queue_blocks_a_send_at_most_the_send_timeout() {
        let (_dir, rx, path) = receiver_at_path();
        let n = Notifier::connect(&path, None).unwrap();
        // The receive queue holds net.unix.max_dgram_qlen datagrams (512 by
        // default); nothing reads `rx`, so it fills.
        const SENDS_MAX: usize = 100_000;
        let mut failed = None;
        for i in 0..SENDS_MAX {
            let start = Instant::now();
            if let Err(e) = n.send_raw("WATCHDOG=1") {
                failed = Some((i, start.elapsed(), e));
                break;
            }
        }
        let (i, took, e) = failed.expect("a queue that never fills");
        assert!(i > 0, "the first send failed: {e}");
        assert!(
            took < SEND_TIMEOUT + Duration::from_secs(1),
            "a send to a full queue took {took:?}: {e}"
        );
        drop(rx);
    }
}
