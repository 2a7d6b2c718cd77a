//! Options every engine command takes: where to listen, the interface and
//! address all traffic is bound to, and the shard count; and the data
//! check that turns a save directory into the set of pieces we have.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use ringseed::engine::settings::PEERS_PER_TORRENT_LIMIT;
use ringseed::engine::EngineSettings;
use ringseed::metainfo::Metainfo;
use ringseed::runtime::session::{available_cpus, SessionConfig, SHARDS_MAX};
use ringseed::runtime::sockets::BindOptions;
use ringseed::runtime::{hash_pieces, HashOptions};
use ringseed::torrent::Bitfield;

use super::verify::disk_files;

/// Network and thread options of `seed` and `download`.
#[derive(Debug, Clone, Args)]
pub struct EngineOpts {
    /// Address and port to accept peers on.
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:6881")]
    pub listen: SocketAddr,
    /// Bind every socket (peers and trackers) to this network interface;
    /// ringseed refuses to start if it does not exist.
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
    /// Use this local address for every socket (peers and trackers).
    #[arg(long, value_name = "IP")]
    pub bind_address: Option<IpAddr>,
    /// Shards (threads with their own io_uring, one per core) [default: online CPUs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=SHARDS_MAX as i64))]
    pub shards: Option<u16>,
    /// Most peers connected per torrent, incoming and outgoing [default: 200].
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=PEERS_PER_TORRENT_LIMIT as i64))]
    pub peers_per_torrent: Option<u32>,
}

impl EngineOpts {
    pub fn session_config(&self) -> SessionConfig {
        let mut settings = EngineSettings::default();
        if let Some(n) = self.peers_per_torrent {
            settings.peers_per_torrent_max = n as usize;
        }
        SessionConfig {
            settings,
            shards: self.shards.map_or_else(available_cpus, usize::from),
            listen: self.listen,
            bind: BindOptions {
                interface: self.interface.clone(),
                address: self.bind_address,
            },
            ..SessionConfig::default()
        }
    }
}

/// Hashes what is on disk under `dir`: the pieces that match. Missing or
/// short files only make their pieces missing.
pub fn check_data(m: &Metainfo, dir: &Path) -> Result<Bitfield> {
    let files = disk_files(m, dir);
    let pieces = m.info.pieces.len();
    let mut have = Bitfield::new(pieces).context("piece count")?;
    let any_present = files
        .iter()
        .any(|f| f.path.as_ref().is_some_and(|p| p.exists()));
    if !any_present {
        return Ok(have);
    }
    hash_pieces(&files, m.info.piece_length, &HashOptions::default(), |r| {
        let good = r.hash.as_ref().ok().copied();
        let i = r.index as usize;
        if good.is_some() && good == m.info.pieces.get(i).copied() {
            let _ = have.set(i);
        }
    })
    .with_context(|| format!("checking the data of {} in {}", m.info.name, dir.display()))?;
    Ok(have)
}
