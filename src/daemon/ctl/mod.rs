//! The local control socket: `STATE_DIR/control.sock`, a Unix stream
//! socket (mode 0600) where `ringseed ctl` (or any local script) sends
//! JSON-line requests that become [`Command`](super::command::Command)s
//! for the core.
//!
//! Layout: `protocol` (the JSON requests and answers, and their mapping
//! to commands), `server` (the socket, its accept and connection threads),
//! `client` (one connection from `ringseed ctl`). The boundary: this module
//! parses and checks what clients send and carries the core's answers
//! back; what a command does is the core's business.

pub mod client;
pub mod protocol;
pub mod server;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use ringseed::limits::TORRENT_FILE_BYTES_MAX;

pub use client::{ClientError, CtlClient};
pub use protocol::{Hashes, Request};
// The daemon loop (`cli::daemon`) starts the server.
#[allow(unused_imports)]
pub use server::{CtlError, CtlServer};

/// The control socket's file name in the state directory.
pub const SOCKET_FILE: &str = "control.sock";

/// Connections served at once; one more gets an error line and is closed.
pub const CTL_CONNECTIONS_MAX: usize = 16;

/// Longest request line, in bytes, newline excluded: room for the largest
/// .torrent file the engine takes, hex-encoded, and the other fields.
pub const CTL_REQUEST_BYTES_MAX: usize = 2 * TORRENT_FILE_BYTES_MAX as usize + 1024 * 1024;

/// Longest answer line the client reads, in bytes (a `list` of many
/// thousands of torrents with their piece bitfields).
pub const CTL_RESPONSE_BYTES_MAX: usize = 512 * 1024 * 1024;

/// A connection with no complete request for this long is closed.
pub const CTL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A client that does not take its answer within this long is dropped.
pub const CTL_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a request waits for the core's answer.
pub const CTL_REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a `move` or `remove` waits for the core's answer (deleting
/// or moving much data can take a while before the core answers).
pub const CTL_REPLY_TIMEOUT_LONG: Duration = Duration::from_secs(600);

/// The state directory when none is given on the command line:
/// `$STATE_DIRECTORY` (systemd's `StateDirectory=`; the first when it
/// lists several), else `$XDG_STATE_HOME/ringseed`, else
/// `~/.local/state/ringseed`. `None` when none of these is known.
pub fn default_state_dir() -> Option<PathBuf> {
    state_dir_from(
        std::env::var_os("STATE_DIRECTORY"),
        std::env::var_os("XDG_STATE_HOME"),
        std::env::var_os("HOME"),
    )
}

/// [`default_state_dir`] on given values of the three variables.
fn state_dir_from(
    state_directory: Option<std::ffi::OsString>,
    xdg_state_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if let Some(dirs) = state_directory {
        // systemd separates several directories with ':'.
        let first = dirs.as_bytes().split(|&b| b == b':').next().unwrap_or(&[]);
        if !first.is_empty() {
            return Some(PathBuf::from(std::ffi::OsStr::from_bytes(first)));
        }
    }
    // The XDG base directory spec: a relative value is to be ignored.
    if let Some(xdg) = xdg_state_home.map(PathBuf::from) {
        if xdg.is_absolute() {
            return Some(xdg.join("ringseed"));
        }
    }
    let home = home
        .map(PathBuf::from)
        .filter(|h| !h.as_os_str().is_empty())?;
    Some(home.join(".local/state/ringseed"))
}
