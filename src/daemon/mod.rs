//! The daemon: `ringseed daemon`, a long-running service that keeps its
//! torrents and their state in a database, takes new torrents while it
//! runs (watch folder, `ringseed ctl`, later the Web API) and resumes
//! without a recheck after any stop, kill -9 included.
//!
//! Layout: `config` (the TOML file), `store` (SQLite on its own thread),
//! `record` (what is kept per torrent), `core` (the loop that owns the
//! engine's session and applies policies: queueing, share limits, the
//! watch folder, periodic saves), `command` (what clients ask of the
//! core), `ctl` (the local control socket), `notify` (systemd).

pub mod command;
pub mod config;
pub mod core;
pub mod ctl;
pub mod notify;
pub mod record;
pub mod store;
pub mod webapi;
