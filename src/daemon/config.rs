//! The daemon's configuration file (TOML): its types, defaults, parsing
//! and what a reload may change. The file is read at start (`--config
//! FILE`, else `/etc/ringseed/ringseed.toml` when present, else built-in
//! defaults) and again on SIGHUP; command-line overrides are applied by
//! the caller on top of what this module returns.
//!
//! STUB: the parsing, `default_toml()` and `reload_plan()` are written in
//! the config helper's branch.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ringseed::upload_slots::{SeedChoking, SlotLimit};
use thiserror::Error;

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
            },
            engine: EngineConfig {
                shards: None,
                peers_per_torrent: 200,
                upload_slots: SlotLimit::Fixed(4),
                seed_choking: SeedChoking::FastestUpload,
                optimistic_slots: None,
                round_robin_pieces: 10,
            },
            limits: RateConfig::default(),
            queue: QueueConfig {
                enabled: true,
                max_active_downloads: Some(3),
                max_active_uploads: Some(3),
                max_active_torrents: Some(5),
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
    /// Reads and checks a file.
    pub fn load(path: &Path) -> Result<DaemonConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.into(),
            message,
        })
    }

    /// Parses file text; the error says the key and line.
    pub fn parse(_text: &str) -> Result<DaemonConfig, String> {
        Ok(DaemonConfig::default())
    }
}

/// A documented file with every key at its default.
pub fn default_toml() -> &'static str {
    ""
}

/// What a reload changes: lines for the log (`upload_rate: 0 -> 1048576`),
/// and the keys that only take effect at the next start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    pub applied: Vec<String>,
    pub need_restart: Vec<String>,
}

/// Compares the running configuration with the one just read.
pub fn reload_plan(_old: &DaemonConfig, _new: &DaemonConfig) -> ReloadPlan {
    ReloadPlan::default()
}
