//! The daemon's configuration file (TOML): its types, defaults, parsing
//! and what a reload may change. The file is read at start (`--config
//! FILE`, else `/etc/ringseed/ringseed.toml` when present, else built-in
//! defaults) and again on SIGHUP; command-line overrides are applied by
//! the caller on top of what this module returns.
//!
//! `parse` (in `parse`) refuses unknown keys, wrong types and values out of
//! range, naming the key and its line; `reload` says what a SIGHUP can
//! apply at run time; `ringseed.toml` is the documented default file. No
//! IO beyond `DaemonConfig::load` reading the one file.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ringseed::engine::EngineSettings;
use ringseed::runtime::dht_worker::DEFAULT_BOOTSTRAP;
use ringseed::runtime::session::discovery::DhtOptions;
use ringseed::runtime::session::{available_cpus, LimitsConfig, SessionConfig, SettingsRaw};
use ringseed::runtime::sockets::BindOptions;
use ringseed::upload_slots::{SeedChoking, SlotLimit};
use thiserror::Error;

mod parse;
mod patch;
mod reload;
#[cfg(test)]
mod tests;

pub use patch::{qbt_encryption, ConfigPatch, PATCH_KEY};
pub use reload::ReloadPlan;

/// Where the daemon looks for its file when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/ringseed/ringseed.toml";
/// Largest configuration file read, in bytes (1 MiB: a file with every key
/// and a few hundred categories is tens of KiB).
pub const CONFIG_BYTES_MAX: usize = 1 << 20;
/// Longest path accepted, in bytes (Linux's `PATH_MAX`).
pub const PATH_BYTES_MAX: usize = 4096;
/// Most `network.dht_bootstrap` entries.
pub const DHT_BOOTSTRAP_MAX: usize = 64;
/// Longest `network.dht_bootstrap` entry, in bytes (a 253-byte DNS name,
/// a colon and a port).
pub const DHT_BOOTSTRAP_ENTRY_BYTES_MAX: usize = 260;
/// Longest `paths.watch_interval_s`, in seconds (an hour).
pub const WATCH_INTERVAL_S_MAX: u64 = 3600;
/// Longest `queue.slow_after_s`, in seconds (a day).
pub const SLOW_AFTER_S_MAX: u64 = 86_400;
/// Largest `share.ratio_limit` (qBittorrent's bound).
pub const RATIO_LIMIT_MAX: f64 = 9998.0;
/// Longest `share.seeding_time_limit`, in minutes (a year, qBittorrent's
/// bound).
pub const SEEDING_TIME_LIMIT_MIN_MAX: u64 = 525_600;

/// What to do with a torrent that reached a share limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShareAction {
    /// Stop it (qBittorrent's default).
    #[default]
    Stop,
    /// Remove it, keep its data.
    Remove,
    /// Remove it and delete its data.
    RemoveWithData,
}

/// `[paths]`
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PathsConfig {
    /// `None`: `$STATE_DIRECTORY`, else `~/.local/state/ringseed`.
    pub state_dir: Option<PathBuf>,
    /// `None`: `~/Downloads` (qBittorrent's default).
    pub download_dir: Option<PathBuf>,
    /// A folder scanned for new .torrent files; `None`: no watch folder.
    pub watch_dir: Option<PathBuf>,
    /// Seconds between two scans of the watch folder.
    pub watch_interval_s: u64,
}

/// `[network]`
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    pub listen: Vec<SocketAddr>,
    pub interface: Option<String>,
    pub bind_address: Option<IpAddr>,
    /// The DHT (BEP 5), over UDP on the first listen address's port.
    pub dht: bool,
    /// `host:port` of the nodes the DHT starts from (the public routers
    /// by default; checked by [`check_host_port`]).
    pub dht_bootstrap: Vec<String>,
    /// BEP 43: ask the DHT, never answer its queries.
    pub dht_read_only: bool,
    /// Peer exchange (BEP 11) with the peers of public torrents.
    pub pex: bool,
    /// Local service discovery (BEP 14) on the LAN.
    pub lsd: bool,
    /// Protocol encryption (MSE/PE), both directions.
    pub encryption: ringseed::mse::EncryptionMode,
    /// What may follow the encrypted handshake.
    pub encryption_level: ringseed::mse::EncryptionLevel,
}

/// The DHT's default bootstrap nodes (the public routers).
pub fn default_dht_bootstrap() -> Vec<String> {
    DEFAULT_BOOTSTRAP.iter().map(|s| (*s).to_string()).collect()
}

/// Checks a `host:port` bootstrap entry: a DNS name, an IPv4 address or
/// a bracketed IPv6 address, then a port from 1 to 65535.
pub fn check_host_port(s: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{s:?} is not HOST:PORT: {why}"));
    if s.len() > DHT_BOOTSTRAP_ENTRY_BYTES_MAX {
        return bad(&format!("more than {DHT_BOOTSTRAP_ENTRY_BYTES_MAX} bytes"));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return bad("no port");
    };
    if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
        return bad("the port must be 1 to 65535");
    }
    if let Some(inner) = host.strip_prefix('[') {
        return match inner
            .strip_suffix(']')
            .map(str::parse::<std::net::Ipv6Addr>)
        {
            Some(Ok(_)) => Ok(()),
            _ => bad("not an IPv6 address in brackets"),
        };
    }
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !name_ok {
        return bad("the host must be a name or an IP address");
    }
    Ok(())
}

/// `[engine]`: the engine settings operators tune (the rest keep their
/// defaults; see docs/configuration.md).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// `None`: one per CPU.
    pub shards: Option<usize>,
    pub peers_per_torrent: usize,
    pub upload_slots: SlotLimit,
    pub seed_choking: SeedChoking,
    /// `None`: one per 5 slots, at least 1.
    pub optimistic_slots: Option<usize>,
    pub round_robin_pieces: u32,
    /// How cached blocks go to plaintext peers (read at start only).
    pub send_path: ringseed::runtime::shard::send_path::SendPathMode,
    /// Pin shard i to the i-th CPU (read at start only).
    pub pin_shards: bool,
}

/// `[limits]`: bytes per second, 0 = unlimited; slots 0 = no cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateConfig {
    pub upload_rate: u64,
    pub download_rate: u64,
    pub torrent_upload_rate: u64,
    pub torrent_download_rate: u64,
    pub global_upload_slots: u64,
}

/// `[queue]`, as qBittorrent's "Torrent queueing".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    pub enabled: bool,
    /// Most torrents downloading at once; -1 in the file = no limit
    /// (`None`).
    pub max_active_downloads: Option<usize>,
    pub max_active_uploads: Option<usize>,
    pub max_active_torrents: Option<usize>,
    /// A torrent slower than the thresholds below does not hold a place.
    pub ignore_slow: bool,
    /// Bytes per second.
    pub slow_download_rate: u64,
    pub slow_upload_rate: u64,
    /// Seconds a torrent must be slow before it stops counting.
    pub slow_after_s: u64,
}

/// `[share]`: global share limits (per torrent values override them).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ShareConfig {
    /// `None`: no ratio limit.
    pub ratio_limit: Option<f64>,
    /// `None`: no seeding time limit. Minutes in the file.
    pub seeding_time_limit_s: Option<u64>,
    pub action: ShareAction,
}

/// `[categories.NAME]`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CategoryConfig {
    /// `None`: the download dir.
    pub save_path: Option<PathBuf>,
}

/// `[log]`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Seconds between status lines; 0 = never.
    pub status_interval_s: u64,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    pub paths: PathsConfig,
    pub network: NetworkConfig,
    pub engine: EngineConfig,
    pub limits: RateConfig,
    pub queue: QueueConfig,
    pub share: ShareConfig,
    pub categories: BTreeMap<String, CategoryConfig>,
    pub log: LogConfig,
    pub api: ApiConfig,
}

/// `[api]`: the qBittorrent Web API, `/metrics` and the web page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Where it listens; `None` (`"off"`): no Web API.
    pub listen: Option<SocketAddr>,
    pub username: String,
    /// `@ByteArray(SALT:HASH)` (PBKDF2-SHA512, as qBittorrent.conf's
    /// `WebUI\Password_PBKDF2`); `None`: from the environment, else the
    /// one generated at the first start.
    pub password_hash: Option<String>,
    /// `/metrics` only with a login session (default: open, as Prometheus
    /// scrapes without one; the default listen address is loopback).
    pub metrics_require_login: bool,
    /// A folder holding an alternative WebUI (`public/index.html`), served
    /// at `/` instead of the built-in page.
    pub webui_root: Option<PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
            username: "admin".to_string(),
            password_hash: None,
            metrics_require_login: false,
            webui_root: None,
        }
    }
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            paths: PathsConfig {
                watch_interval_s: 2,
                ..PathsConfig::default()
            },
            network: NetworkConfig {
                listen: vec![SocketAddr::from(([0, 0, 0, 0], 6881))],
                interface: None,
                bind_address: None,
                dht: true,
                dht_bootstrap: default_dht_bootstrap(),
                dht_read_only: false,
                pex: true,
                lsd: false,
                encryption: Default::default(),
                encryption_level: Default::default(),
            },
            engine: EngineConfig {
                shards: None,
                peers_per_torrent: 200,
                upload_slots: SlotLimit::Fixed(4),
                seed_choking: SeedChoking::FastestUpload,
                optimistic_slots: None,
                round_robin_pieces: 10,
                send_path: ringseed::runtime::shard::send_path::SendPathMode::Copy,
                pin_shards: true,
            },
            limits: RateConfig::default(),
            queue: QueueConfig {
                enabled: true,
                max_active_downloads: Some(3),
                max_active_uploads: None,
                max_active_torrents: None,
                ignore_slow: true,
                slow_download_rate: 2048,
                slow_upload_rate: 2048,
                slow_after_s: 60,
            },
            share: ShareConfig::default(),
            categories: BTreeMap::new(),
            log: LogConfig {
                status_interval_s: 60,
            },
            api: ApiConfig::default(),
        }
    }
}

/// Why the file was refused: names the file, and the key and line where
/// there is one.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl DaemonConfig {
    /// Reads and checks a file (at most `CONFIG_BYTES_MAX` bytes, UTF-8).
    pub fn load(path: &Path) -> Result<DaemonConfig, ConfigError> {
        let read_error = |source| ConfigError::Read {
            path: path.into(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut text = String::new();
        // One byte past the limit tells a file over it from one at it.
        file.take(CONFIG_BYTES_MAX as u64 + 1)
            .read_to_string(&mut text)
            .map_err(read_error)?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.into(),
            message,
        })
    }

    /// Parses file text; the error names the key and its line, e.g.
    /// `unknown key "upload_ratee" in [limits] at line 12`. The engine
    /// settings it makes have passed `Settings::check`.
    pub fn parse(text: &str) -> Result<DaemonConfig, String> {
        parse::parse(text)
    }

    /// The engine settings and rate limits of the file, unchecked (as
    /// `EngineOpts::settings_raw`); the daemon passes them to
    /// `Settings::check`. Engine settings the file has no key for keep
    /// their defaults.
    pub fn settings_raw(&self) -> SettingsRaw {
        let mut engine = EngineSettings::default();
        let e = &self.engine;
        engine.peers_per_torrent_max = e.peers_per_torrent;
        engine.slots.slots = e.upload_slots;
        engine.slots.seed_choking = e.seed_choking;
        engine.slots.optimistic = e.optimistic_slots;
        engine.slots.round_robin_pieces = e.round_robin_pieces;
        let l = &self.limits;
        let limits = LimitsConfig {
            upload_rate: l.upload_rate,
            download_rate: l.download_rate,
            torrent_upload_rate: l.torrent_upload_rate,
            torrent_download_rate: l.torrent_download_rate,
            upload_slots: l.global_upload_slots,
        };
        let encryption = ringseed::mse::EncryptionPolicy::both_ways(
            self.network.encryption,
            self.network.encryption_level,
        );
        SettingsRaw {
            engine,
            limits,
            encryption,
        }
    }

    /// What is fixed for the session's life: shards, listeners, binding,
    /// peer discovery (as `EngineOpts::session_config`). The DHT starts
    /// with no saved nodes: the core adds those the store kept.
    pub fn session_config(&self) -> SessionConfig {
        let n = &self.network;
        SessionConfig {
            shards: self.engine.shards.unwrap_or_else(available_cpus),
            listen: n.listen.clone(),
            bind: BindOptions {
                interface: n.interface.clone(),
                address: n.bind_address,
            },
            dht: n.dht.then(|| DhtOptions {
                bootstrap: n.dht_bootstrap.clone(),
                saved_nodes: Vec::new(),
                read_only: n.dht_read_only,
            }),
            pex: n.pex,
            lsd: n.lsd,
            send_path: self.engine.send_path,
            pin: self.engine.pin_shards,
            ..SessionConfig::default()
        }
    }
}

/// Compares the running configuration with the one just read: what a
/// reload applies (log lines) and what waits for the next start.
pub fn reload_plan(old: &DaemonConfig, new: &DaemonConfig) -> ReloadPlan {
    reload::plan(old, new)
}

/// A documented file with every key at its default (keys with no value by
/// default are commented out, with an example value).
pub fn default_toml() -> &'static str {
    include_str!("config/ringseed.toml")
}
