//! How a session runs: [`SessionConfig`], fixed at start (threads,
//! listeners, buffers, queue depths), and [`Settings`], which change while
//! it runs.
//!
//! Settings come in raw ([`SettingsRaw`]: plain public fields, as the
//! command line, a config file or an API call fill them) and are checked
//! once into [`Settings`], the only form the session accepts, at start and
//! at run time alike. So one path validates every source, and a shard
//! never sees a value out of range.

use std::net::SocketAddr;

use thiserror::Error;

use crate::engine::settings::PEERS_PER_TORRENT_LIMIT;
use crate::engine::{EngineSettings, SettingError};
use crate::limits::RECEIVE_CHUNK_BYTES_MAX;
use crate::peer::config::ConfigError;
use crate::rate_limit::RATE_MAX;
use crate::runtime::event_loop::LoopConfig;
use crate::runtime::event_loop::SEND_BLOCKS_MAX;
use crate::runtime::shard::limits::LimitsConfig;
use crate::runtime::sockets::BindOptions;
use crate::upload_slots::SlotsError;

/// Most shards.
pub const SHARDS_MAX: usize = 256;
/// Most torrents one session holds (ids are slots up to this).
pub const TORRENTS_MAX: usize = 1_000_000;
/// Most control messages waiting in one shard's queue.
pub const CONTROL_QUEUE_LIMIT: usize = 65_536;
/// Most events waiting for the session's reader.
pub const EVENTS_LIMIT: usize = 1_000_000;
/// Most listen addresses (`--listen` given this many times at most): one
/// per address family and interface address a seedbox serves on is a
/// handful; every shard keeps an accept armed on each.
pub const LISTEN_ADDRESSES_MAX: usize = 16;
/// Most checker threads.
pub const CHECKER_THREADS_MAX: usize = 64;
/// Most global upload slots.
pub const GLOBAL_UPLOAD_SLOTS_MAX: u64 = 1_000_000;

/// Bytes of each pool buffer by default: `SEND_BLOCKS_MAX` blocks of 16 KiB
/// (64 KiB), so a coalesced read of adjacent blocks fills one buffer and
/// goes out in one send.
pub const POOL_BUFFER_BYTES_DEFAULT: usize = SEND_BLOCKS_MAX * crate::torrent::BLOCK_BYTES as usize;

// A shard receives into a whole pool buffer (while a connection is routed,
// and on kernels without recv rings): one receive must fit in the room the
// receive bounds leave (`limits::receive_buffer_bytes_max`).
const _: () = assert!(POOL_BUFFER_BYTES_DEFAULT <= RECEIVE_CHUNK_BYTES_MAX);
// A block read goes into one pool buffer: the largest block a peer may ask
// for by default must fit.
const _: () =
    assert!(crate::wire::decoder::BLOCK_BYTES_MAX_DEFAULT as usize <= POOL_BUFFER_BYTES_DEFAULT);
// Every peer of a torrent lives on the torrent's shard: one shard must be
// able to hold the most peers one torrent may be configured for.
const _: () = assert!(PEERS_PER_TORRENT_LIMIT <= crate::runtime::shard::CONNS_PER_SHARD_MAX);
// Each connection of a shard keeps a receive armed, and has at most one
// send in flight: the default op budget must cover both for the most
// connections a shard holds, or receives could never be armed again.
const _: () =
    assert!(2 * crate::runtime::shard::CONNS_PER_SHARD_MAX as u32 <= OPS_IN_FLIGHT_DEFAULT);

/// Ops in flight per shard by default (the slab holds as many again for
/// cancels; its slots are allocated as they are first used).
pub const OPS_IN_FLIGHT_DEFAULT: u32 = 32_768;

/// What is fixed for the session's life.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub shards: usize,
    /// Where to accept peers, 1 to [`LISTEN_ADDRESSES_MAX`] addresses; the
    /// first is the one announced to trackers (its port) and
    /// [`Session::local_addr`](super::Session::local_addr). IPv6 sockets
    /// are IPv6-only, so `0.0.0.0:P` and `[::]:P` together serve both
    /// families. Port 0: the port the first listener got (the kernel picks
    /// it for the first address with port 0), so every family is reached
    /// on the announced port. Default: `0.0.0.0:6881` only (IPv4), since
    /// binding `[::]` fails on hosts with IPv6 turned off; add
    /// `[::]:6881` for dual stack.
    pub listen: Vec<SocketAddr>,
    pub bind: BindOptions,
    pub loop_config: LoopConfig,
    /// Pin shard i to the i-th CPU this process may run on.
    pub pin: bool,
    /// Register each shard's buffer pool with its ring (READ_FIXED reads).
    /// Default off: measured no faster for page-cache reads, and it keeps
    /// the whole pool resident.
    pub register_buffers: bool,
    /// Control messages waiting per shard. Default 1,024: a burst of adds
    /// from automation; a full queue is an error to the caller, not a wait.
    pub control_queue_max: usize,
    /// Events waiting for the reader. Default 4,096; past it events are
    /// counted and dropped (the state is in snapshots).
    pub events_max: usize,
    /// Data checks run at once. Default 1, as qBittorrent: checks of
    /// several torrents on one disk slow each other down.
    pub checker_threads: usize,
    /// Hashing threads of each check. Default: half the CPUs (at least
    /// one), so the shards keep serving while a check runs.
    pub check_hash_threads: usize,
    /// The DHT (BEP 5), on UDP at the first listen address and port.
    /// Default `None` (off) for the library, so that nothing embedding it
    /// reaches outside by accident; the command line and the daemon turn it
    /// on unless told not to.
    pub dht: Option<super::discovery::DhtOptions>,
    /// Peer exchange (BEP 11) with the peers of public torrents. Default on.
    pub pex: bool,
    /// Local service discovery (BEP 14) for public torrents. Default off
    /// (a seedbox has no LAN to find peers on).
    pub lsd: bool,
    /// How blocks in the page cache go to plaintext peers: `Copy` (the
    /// default: read into a pool buffer, sent from it), `Splice` (file ->
    /// pipe -> socket, no copy on our side; `shard/splice.rs`) or `Auto`
    /// (each shard measures both on its own traffic and keeps the one that
    /// costs it less CPU per byte; `shard/send_path.rs`). Splice needs Linux
    /// 6.5+ (cachestat); without it every mode is `Copy`. Why `Copy` by
    /// default: docs/benchmarks.md, "The splice send path".
    pub send_path: crate::runtime::shard::send_path::SendPathMode,
}

impl Default for SessionConfig {
    fn default() -> Self {
        let cpus = available_cpus();
        Self {
            shards: cpus,
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 6881))],
            bind: BindOptions::default(),
            loop_config: LoopConfig {
                ring_entries: 1024,
                ops_in_flight_max: OPS_IN_FLIGHT_DEFAULT,
                buffers: 512,
                buffer_bytes: POOL_BUFFER_BYTES_DEFAULT,
            },
            pin: true,
            register_buffers: false,
            control_queue_max: 1024,
            events_max: 4096,
            checker_threads: 1,
            check_hash_threads: (cpus / 2).max(1),
            dht: None,
            pex: true,
            send_path: crate::runtime::shard::send_path::SendPathMode::Copy,
            lsd: false,
        }
    }
}

/// CPUs this process may run on.
pub fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(SHARDS_MAX)
}

/// A start-up value out of range.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{name} = {value} is out of range: expected {min} to {max} ({why})")]
pub struct ConfigRangeError {
    pub why: &'static str,
    pub name: &'static str,
    pub value: u64,
    pub min: u64,
    pub max: u64,
}

fn range(name: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigRangeError> {
    range_why(name, value, min, max, "the allowed range")
}

fn range_why(
    name: &'static str,
    value: u64,
    min: u64,
    max: u64,
    why: &'static str,
) -> Result<(), ConfigRangeError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigRangeError {
            why,
            name,
            value,
            min,
            max,
        })
    }
}

impl SessionConfig {
    /// Checks every range (the loop checks its own when it is built).
    pub fn validate(&self) -> Result<(), ConfigRangeError> {
        range("shards", self.shards as u64, 1, SHARDS_MAX as u64)?;
        range(
            "listen addresses",
            self.listen.len() as u64,
            1,
            LISTEN_ADDRESSES_MAX as u64,
        )?;
        range(
            "control_queue_max",
            self.control_queue_max as u64,
            1,
            CONTROL_QUEUE_LIMIT as u64,
        )?;
        range("events_max", self.events_max as u64, 1, EVENTS_LIMIT as u64)?;
        range(
            "checker_threads",
            self.checker_threads as u64,
            1,
            CHECKER_THREADS_MAX as u64,
        )?;
        range(
            "check_hash_threads",
            self.check_hash_threads as u64,
            1,
            crate::runtime::piece_hash::THREADS_MAX as u64,
        )
    }

    /// Checks what ties the start-up values to the settings: the pool
    /// buffers must hold the largest block a peer may request (a block read
    /// fills one buffer) and be no larger than one receive may be (a shard
    /// receives into a whole buffer on kernels without recv rings).
    pub fn validate_with(&self, settings: &Settings) -> Result<(), ConfigRangeError> {
        range_why(
            "pool buffer bytes",
            self.loop_config.buffer_bytes as u64,
            u64::from(settings.engine().peer.block_bytes_max),
            RECEIVE_CHUNK_BYTES_MAX as u64,
            "from the largest block a peer may request to the most one receive may add",
        )
    }
}

/// Settings that may change while the session runs, unchecked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsRaw {
    /// Every torrent's engine: peers, choker, requests, timings.
    pub engine: EngineSettings,
    /// Rate limits and the global upload-slot budget.
    pub limits: LimitsConfig,
    /// When connections use the MSE handshake, and the payload methods
    /// allowed after it (see `mse::policy`).
    pub encryption: crate::mse::EncryptionPolicy,
}

/// Why settings were refused; names the setting.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error(transparent)]
    Engine(#[from] SettingError),
    #[error("peer setting: {0}")]
    Peer(#[from] ConfigError),
    #[error("upload slots: {0}")]
    Slots(#[from] SlotsError),
    #[error("{name} = {value} is over the most allowed, {max}")]
    TooLarge {
        name: &'static str,
        value: u64,
        max: u64,
    },
}

/// Checked settings: made only by [`Settings::check`] (or the defaults,
/// which check), so every value is in range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    raw: SettingsRaw,
}

impl Settings {
    /// Checks `raw` whole: every range, and the rules across settings.
    pub fn check(raw: SettingsRaw) -> Result<Settings, SettingsError> {
        raw.engine.validate()?;
        raw.engine.peer.validate()?;
        raw.engine.slots.validate()?;
        let l = &raw.limits;
        for (name, value) in [
            ("upload_rate", l.upload_rate),
            ("download_rate", l.download_rate),
            ("torrent_upload_rate", l.torrent_upload_rate),
            ("torrent_download_rate", l.torrent_download_rate),
        ] {
            if value > RATE_MAX {
                return Err(SettingsError::TooLarge {
                    name,
                    value,
                    max: RATE_MAX,
                });
            }
        }
        if l.upload_slots > GLOBAL_UPLOAD_SLOTS_MAX {
            return Err(SettingsError::TooLarge {
                name: "global upload_slots",
                value: l.upload_slots,
                max: GLOBAL_UPLOAD_SLOTS_MAX,
            });
        }
        Ok(Settings { raw })
    }

    pub fn engine(&self) -> &EngineSettings {
        &self.raw.engine
    }

    pub fn limits(&self) -> &LimitsConfig {
        &self.raw.limits
    }

    pub fn encryption(&self) -> crate::mse::EncryptionPolicy {
        self.raw.encryption
    }

    /// The raw form, to change and check again.
    pub fn to_raw(&self) -> SettingsRaw {
        self.raw.clone()
    }

    /// Names of the groups that differ from `other` (for "what changed"
    /// messages).
    pub fn changes_from(&self, other: &Settings) -> Vec<&'static str> {
        let (a, b) = (&self.raw, &other.raw);
        let mut out = Vec::new();
        if a.engine.peer != b.engine.peer {
            out.push("peer connections");
        }
        if a.engine.slots != b.engine.slots {
            out.push("upload slots");
        }
        let (mut ea, mut eb) = (a.engine.clone(), b.engine.clone());
        (ea.peer, ea.slots) = (Default::default(), Default::default());
        (eb.peer, eb.slots) = (Default::default(), Default::default());
        if ea != eb {
            out.push("torrent engine");
        }
        if a.limits != b.limits {
            out.push("rate limits");
        }
        if a.encryption != b.encryption {
            out.push("encryption");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_check_and_ranges_are_refused_by_name() {
        assert!(Settings::check(SettingsRaw::default()).is_ok());
        assert_eq!(
            Settings::default(),
            Settings::check(Default::default()).unwrap()
        );
        let mut raw = SettingsRaw::default();
        raw.engine.peers_per_torrent_max = 0;
        let e = Settings::check(raw).unwrap_err().to_string();
        assert!(e.contains("peers_per_torrent_max"), "{e}");
        let mut raw = SettingsRaw::default();
        raw.limits.upload_rate = RATE_MAX + 1;
        let e = Settings::check(raw).unwrap_err().to_string();
        assert!(e.contains("upload_rate"), "{e}");
        let mut raw = SettingsRaw::default();
        raw.limits.upload_slots = GLOBAL_UPLOAD_SLOTS_MAX + 1;
        assert!(Settings::check(raw).is_err());
    }

    #[test]
    fn changes_are_named() {
        let a = Settings::default();
        let mut raw = a.to_raw();
        raw.limits.upload_rate = 1000;
        raw.engine.announce_numwant = 50;
        let b = Settings::check(raw).unwrap();
        assert_eq!(b.changes_from(&a), vec!["torrent engine", "rate limits"]);
        assert!(a.changes_from(&a).is_empty());
    }

    #[test]
    fn pool_buffers_must_hold_a_block_and_fit_a_receive() {
        let mut c = SessionConfig::default();
        let s = Settings::default();
        assert!(c.validate_with(&s).is_ok());
        c.loop_config.buffer_bytes = RECEIVE_CHUNK_BYTES_MAX + 1;
        assert_eq!(
            c.validate_with(&s).unwrap_err().max,
            RECEIVE_CHUNK_BYTES_MAX as u64
        );
        c.loop_config.buffer_bytes = 32 * 1024;
        let mut raw = s.to_raw();
        raw.engine.peer.block_bytes_max = 64 * 1024;
        let e = c.validate_with(&Settings::check(raw).unwrap()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("pool buffer bytes = 32768 is out of range: expected 65536"),
            "{e}"
        );
    }

    #[test]
    fn config_ranges() {
        assert!(SessionConfig::default().validate().is_ok());
        let c = SessionConfig {
            control_queue_max: 0,
            ..SessionConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().name, "control_queue_max");
    }
}
