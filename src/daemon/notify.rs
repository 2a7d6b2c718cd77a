//! systemd's notify protocol (sd_notify). STUB: written in the systemd
//! helper's branch.

use std::time::Duration;

/// The socket systemd gave us (`NOTIFY_SOCKET`).
pub struct Notifier {}

impl Notifier {
    /// `None` when not started by systemd with `Type=notify`.
    pub fn from_env() -> Option<Notifier> {
        None
    }

    /// `WATCHDOG_USEC` for this process, when the watchdog is on.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        None
    }

    pub fn ready(&self, _status: &str) {}
    pub fn status(&self, _status: &str) {}
    pub fn watchdog(&self) {}
    pub fn stopping(&self) {}
}
