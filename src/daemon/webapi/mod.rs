//! The Web API: qBittorrent's Web API v2 (so that Sonarr, Radarr, autobrr,
//! cross-seed, qbit_manage, Flood and VueTorrent work unchanged), the
//! Prometheus metrics at `/metrics` and the built-in web page at `/`.
//!
//! Boundary: this module owns the listening socket and a thread of its own
//! with a small tokio runtime (never a shard's). HTTP/1.1 is hyper's; what
//! a request means is ours: [`form`] parses parameters, [`auth`] holds
//! credentials, sessions and bans, [`routes`] answers each endpoint by
//! sending the core the same [`Command`](crate::daemon::command::Command)s `ringseed ctl` sends ([`torrents`]
//! and [`app`] hold the longer handlers), and [`serialize`] writes
//! qBittorrent's JSON. A request is read whole
//! (bounded, with a deadline) and then answered on tokio's blocking pool,
//! so the handlers are plain functions that wait for the core.

pub mod app;
pub mod auth;
pub mod fetch;
pub mod form;
pub mod metrics;
pub mod page;
pub mod routes;
pub mod serialize;
pub mod server;
pub mod sync;
pub mod torrents;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use server::WebApi;

/// The qBittorrent version the API answers as.
pub const QBT_VERSION: &str = "v5.1.4";
/// The Web API version it answers as.
pub const WEBAPI_VERSION: &str = "2.11.4";

/// Connections open at once; a connection past it is closed at once.
pub const CONNECTIONS_MAX: usize = 256;
/// Connections open at once from one address (so that one client's idle
/// connections cannot keep others out); past it, closed at once.
pub const CONNECTIONS_PER_ADDRESS_MAX: usize = 32;
/// Bytes of one request body from a client with a session (qBittorrent's
/// own limit; a .torrent of `TORRENT_FILE_BYTES_MAX` fits with its form).
pub const BODY_BYTES_MAX: usize = 100 * 1024 * 1024;
/// Bytes of a body from a client without a session (a login form):
/// larger ones are answered 403 without being read.
pub const UNAUTHENTICATED_BODY_BYTES_MAX: usize = 64 * 1024;
/// MiB of request bodies being read at once, all connections together:
/// memory stays bounded whatever the number of uploads.
pub const BODY_BUDGET_MIB: usize = 256;
/// A request's line and headers must arrive within this (slow clients).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's body must arrive within this.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for the core's answer.
pub const CORE_REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests being answered at once (threads of the blocking pool).
pub const HANDLERS_MAX: usize = 16;
/// Most torrents or URLs in one `torrents/add`.
pub const ADD_ITEMS_MAX: usize = 1000;
/// Most http(s) links fetched for one `torrents/add` (each may take up to
/// the HTTP client's 30 s: a request holds one of the handlers that long).
pub const URL_FETCHES_MAX: usize = 16;

const _: () = assert!(HANDLERS_MAX <= CONNECTIONS_MAX);
const _: () = assert!(CONNECTIONS_PER_ADDRESS_MAX <= CONNECTIONS_MAX);
// One body of the largest size fits the budget (or it would wait forever).
const _: () = assert!(BODY_BYTES_MAX.div_ceil(1 << 20) <= BODY_BUDGET_MIB);
const _: () = assert!(UNAUTHENTICATED_BODY_BYTES_MAX < BODY_BYTES_MAX);
const _: () = assert!(ringseed::limits::TORRENT_FILE_BYTES_MAX < BODY_BYTES_MAX as u64);

/// The Web API's settings (the `[api]` section and the command line).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiSettings {
    /// Where to listen; `None`: no Web API.
    pub listen: Option<SocketAddr>,
    pub username: String,
    /// The password's hash (`@ByteArray(...)`), from the file, the
    /// environment or the state database.
    pub password_hash: auth::PasswordHash,
    /// `/metrics` only with a login session.
    pub metrics_require_login: bool,
    /// An alternative WebUI folder (`public/index.html` inside) served at
    /// `/` instead of the built-in page.
    pub webui_root: Option<PathBuf>,
}

#[cfg(test)]
mod tests;
