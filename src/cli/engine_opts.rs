//! Options every engine command takes: where to listen, the interface and
//! address all traffic is bound to, and the shard count; and the data
//! check that turns a save directory into the set of pieces we have.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use ringseed::engine::settings::PEERS_PER_TORRENT_LIMIT;
use ringseed::engine::EngineSettings;
use ringseed::metainfo::Metainfo;
use ringseed::mse::{EncryptionLevel, EncryptionMode, EncryptionPolicy};
use ringseed::rate_limit::RATE_MAX;
use ringseed::runtime::available_threads;
use ringseed::runtime::checker::{hash_have, CheckProgress};
use ringseed::runtime::dht_worker::DEFAULT_BOOTSTRAP;
use ringseed::runtime::session::discovery::DhtOptions;
use ringseed::runtime::session::{
    available_cpus, LimitsConfig, SessionConfig, Settings, SettingsRaw, SHARDS_MAX,
};
use ringseed::runtime::sockets::BindOptions;
use ringseed::torrent::Bitfield;
use ringseed::upload_slots::settings::{OPTIMISTIC_MAX, ROUND_ROBIN_PIECES_MAX, SLOTS_MAX};
use ringseed::upload_slots::{SeedChoking, SlotLimit};

/// Network and thread options of `seed` and `download`.
#[derive(Debug, Clone, Args)]
pub struct EngineOpts {
    /// Address and port to accept peers on; repeatable, e.g. `--listen
    /// 0.0.0.0:6881 --listen [::]:6881` for IPv4 and IPv6 (IPv6 sockets
    /// are IPv6-only). The first address's port is announced; port 0 picks
    /// one free port for every address. An address another program holds
    /// is an error.
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:6881")]
    pub listen: Vec<SocketAddr>,
    /// Bind every socket (peers and trackers) to this network interface;
    /// ringseed refuses to start if it does not exist.
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
    /// Use this local address for every socket of its family (peers and
    /// trackers; trackers are reached over this family only). Peers of the
    /// other family are dialled only with --interface too (through that
    /// interface alone); without it they are not contacted.
    #[arg(long, value_name = "IP")]
    pub bind_address: Option<IpAddr>,
    /// Protocol encryption (MSE/PE) for peer connections, both directions:
    /// `enabled` accepts plaintext and encrypted peers and dials plaintext
    /// first (obfuscated for peers that refused plaintext or that PEX says
    /// prefer it); `required` dials and accepts encrypted handshakes only;
    /// `disabled` plaintext only [default: enabled].
    #[arg(long, value_name = "disabled|enabled|required")]
    pub encryption: Option<EncryptionMode>,
    /// What may follow the encrypted handshake: `plaintext` (header
    /// obfuscated only), `rc4` (the whole stream) or `both`; with both on
    /// offer plaintext is chosen, so RC4 is used only with peers that
    /// require it [default: both].
    #[arg(long, value_name = "plaintext|rc4|both")]
    pub encryption_level: Option<EncryptionLevel>,
    /// Shards (threads with their own io_uring, one per core) [default: online CPUs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=SHARDS_MAX as i64))]
    pub shards: Option<u16>,
    /// How cached blocks go to plaintext peers: copy (read into a buffer,
    /// send from it), splice (page cache -> pipe -> socket, Linux 6.5+) or
    /// auto (each shard measures both and keeps the cheaper) [default: copy].
    #[arg(long, value_name = "auto|copy|splice")]
    pub send_path: Option<ringseed::runtime::shard::send_path::SendPathMode>,
    /// Let the OS scheduler move shards between CPUs instead of pinning
    /// shard i to the i-th CPU (for hosts where other busy programs share
    /// the CPUs).
    #[arg(long)]
    pub no_pin: bool,
    /// Most peers connected per torrent, incoming and outgoing [default: 200].
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=PEERS_PER_TORRENT_LIMIT as i64))]
    pub peers_per_torrent: Option<u32>,
    /// Upload slots per torrent: a count, `unlimited` (unchoke every
    /// interested peer, for fast links) or `rate-based` (grow while the
    /// slowest unchoked peer beats a rising threshold) [default: 4].
    #[arg(long, value_name = "N|unlimited|rate-based", value_parser = parse_upload_slots)]
    pub upload_slots: Option<SlotLimit>,
    /// Who gets the upload slots while seeding [default: fastest].
    #[arg(long, value_name = "ALGORITHM")]
    pub seed_choking: Option<SeedChokingArg>,
    /// Optimistic upload slots per torrent [default: one per 5 slots, at least 1].
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=OPTIMISTIC_MAX as i64))]
    pub optimistic_slots: Option<u32>,
    /// Round-robin seeding: pieces a peer takes before its turn may end [default: 10].
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=ROUND_ROBIN_PIECES_MAX as i64))]
    pub round_robin_pieces: Option<u32>,
    /// Upload limit of all torrents together, bytes per second (500K,
    /// 1.5M, 10M; binary suffixes; 0 = unlimited) [default: unlimited].
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub upload_limit: Option<u64>,
    /// Download limit of all torrents together, bytes per second [default: unlimited].
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub download_limit: Option<u64>,
    /// Upload limit of each torrent, bytes per second [default: unlimited].
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub torrent_upload_limit: Option<u64>,
    /// Download limit of each torrent, bytes per second [default: unlimited].
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub torrent_download_limit: Option<u64>,
    /// Upload slots of all torrents together, shared among shards by
    /// demand (0 = no global cap) [default: 0].
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(0..=GLOBAL_UPLOAD_SLOTS_MAX as i64))]
    pub global_upload_slots: Option<u32>,
    /// Log a one-line status (torrents by state, peers, rates, bytes moved)
    /// every SECONDS; 0 = never (SIGUSR1 still asks for one at once).
    #[arg(long, value_name = "SECONDS", default_value_t = STATUS_INTERVAL_SECS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(0..=STATUS_INTERVAL_SECS_MAX))]
    pub status_interval: u64,
    #[command(flatten)]
    pub discovery: DiscoveryOpts,
}

/// Peer discovery beyond trackers: the DHT, peer exchange, local discovery.
#[derive(Debug, Clone, Default, Args)]
pub struct DiscoveryOpts {
    /// Turn the DHT (BEP 5) off. It is on by default, over UDP on the port
    /// of the first --listen address; private torrents never use it.
    #[arg(long)]
    pub no_dht: bool,
    /// Bootstrap the DHT from this node instead of the public routers
    /// (router.bittorrent.com and others); repeatable. For tests and
    /// private networks.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "no_dht")]
    pub dht_bootstrap: Vec<String>,
    /// Ask the DHT, never answer its queries (BEP 43).
    #[arg(long, conflicts_with = "no_dht")]
    pub dht_read_only: bool,
    /// Turn peer exchange (BEP 11) off (on by default for public torrents).
    #[arg(long)]
    pub no_pex: bool,
    /// Local service discovery (BEP 14): find peers on the LAN by
    /// multicast. Off by default (a server has no LAN peers).
    #[arg(long)]
    pub lsd: bool,
}

impl DiscoveryOpts {
    /// The DHT's start-up values, `None` when it is off.
    pub fn dht(&self) -> Option<DhtOptions> {
        if self.no_dht {
            return None;
        }
        let bootstrap = if self.dht_bootstrap.is_empty() {
            DEFAULT_BOOTSTRAP.iter().map(|s| (*s).to_string()).collect()
        } else {
            self.dht_bootstrap.clone()
        };
        Some(DhtOptions {
            bootstrap,
            saved_nodes: Vec::new(),
            read_only: self.dht_read_only,
        })
    }
}

/// `--status-interval` default, in seconds: a minute is often enough to
/// follow a long seed in the journal and rare enough not to bury the rest.
pub const STATUS_INTERVAL_SECS_DEFAULT: u64 = 60;
/// Longest `--status-interval`, in seconds (a day).
pub const STATUS_INTERVAL_SECS_MAX: u64 = 86_400;

/// Most `--global-upload-slots`.
pub const GLOBAL_UPLOAD_SLOTS_MAX: u32 = 1_000_000;
/// Longest RATE text looked at, in characters.
const RATE_ARG_CHARS_MAX: usize = 32;

/// Parses a RATE in bytes per second: `0` (unlimited), `123456`, `500K`,
/// `10M`, `1.5M`, `1G` (binary: K = 1024; decimals allowed, rounded down
/// to whole bytes), an optional `B`, `iB`, `/s` after the unit; at most
/// `rate_limit::RATE_MAX`.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    use super::units::{parse_binary_amount, AmountError, FRACTION_DIGITS_MAX};
    let t = text.trim();
    if t.len() > RATE_ARG_CHARS_MAX {
        return Err(format!(
            "rate {t:?} is too long (at most {RATE_ARG_CHARS_MAX} characters)"
        ));
    }
    let t = t.strip_suffix("/s").unwrap_or(t);
    let over = || format!("rate {text:?} is over the most accepted, {RATE_MAX} bytes/s");
    match parse_binary_amount(t) {
        Ok(bytes) if bytes <= RATE_MAX => Ok(bytes),
        Ok(_) | Err(AmountError::TooLarge) => Err(over()),
        Err(AmountError::NotANumber) => Err(format!(
            "rate {text:?} is not a rate: expected bytes per second (500000, 500K, 1.5M)"
        )),
        Err(AmountError::TooPrecise) => Err(format!(
            "rate {text:?} has more than {FRACTION_DIGITS_MAX} digits after the point"
        )),
        Err(AmountError::UnknownUnit(suffix)) => Err(format!(
            "rate {text:?} has an unknown unit {suffix:?}: use K, M or G (binary)"
        )),
    }
}

/// `--seed-choking` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeedChokingArg {
    /// The peers we upload to fastest.
    Fastest,
    /// Turns: a peer that had its slot for its piece quota and a minute makes room.
    RoundRobin,
    /// Peers just starting or nearly done first.
    AntiLeech,
}

impl From<SeedChokingArg> for SeedChoking {
    fn from(a: SeedChokingArg) -> Self {
        match a {
            SeedChokingArg::Fastest => SeedChoking::FastestUpload,
            SeedChokingArg::RoundRobin => SeedChoking::RoundRobin,
            SeedChokingArg::AntiLeech => SeedChoking::AntiLeech,
        }
    }
}

/// Parses `--upload-slots`: `0..=SLOTS_MAX`, `unlimited` or `rate-based`.
fn parse_upload_slots(s: &str) -> Result<SlotLimit, String> {
    match s {
        "unlimited" => Ok(SlotLimit::Unlimited),
        "rate-based" => Ok(SlotLimit::RateBased),
        _ => match s.parse::<usize>() {
            Ok(n) if n <= SLOTS_MAX => Ok(SlotLimit::Fixed(n)),
            _ => Err(format!(
                "expected a count from 0 to {SLOTS_MAX}, `unlimited` or `rate-based`, found `{s}`"
            )),
        },
    }
}

impl EngineOpts {
    /// What is fixed for the session's life: threads, listener, binding.
    pub fn session_config(&self) -> SessionConfig {
        SessionConfig {
            shards: self.shards.map_or_else(available_cpus, usize::from),
            listen: self.listen.clone(),
            bind: BindOptions {
                interface: self.interface.clone(),
                address: self.bind_address,
            },
            dht: self.discovery.dht(),
            pex: !self.discovery.no_pex,
            lsd: self.discovery.lsd,
            send_path: self.send_path.unwrap_or_default(),
            pin: !self.no_pin,
            ..SessionConfig::default()
        }
    }

    /// The settings the flags ask for, unchecked.
    pub fn settings_raw(&self) -> SettingsRaw {
        let mut engine = EngineSettings::default();
        if let Some(n) = self.peers_per_torrent {
            engine.peers_per_torrent_max = n as usize;
        }
        if let Some(limit) = self.upload_slots {
            engine.slots.slots = limit;
        }
        if let Some(a) = self.seed_choking {
            engine.slots.seed_choking = a.into();
        }
        if let Some(n) = self.optimistic_slots {
            engine.slots.optimistic = Some(n as usize);
        }
        if let Some(n) = self.round_robin_pieces {
            engine.slots.round_robin_pieces = n;
        }
        let limits = LimitsConfig {
            upload_rate: self.upload_limit.unwrap_or(0),
            download_rate: self.download_limit.unwrap_or(0),
            torrent_upload_rate: self.torrent_upload_limit.unwrap_or(0),
            torrent_download_rate: self.torrent_download_limit.unwrap_or(0),
            upload_slots: u64::from(self.global_upload_slots.unwrap_or(0)),
        };
        let encryption = EncryptionPolicy::both_ways(
            self.encryption.unwrap_or_default(),
            self.encryption_level.unwrap_or_default(),
        );
        SettingsRaw {
            engine,
            limits,
            encryption,
        }
    }

    /// The settings, checked (the same path a config reload or an API
    /// call takes).
    pub fn settings(&self) -> Result<Settings> {
        Settings::check(self.settings_raw()).context("the engine options")
    }
}

/// Hashes what is on disk under `dir`: the pieces that match. Missing or
/// short files only make their pieces missing.
pub fn check_data(m: &Metainfo, dir: &Path) -> Result<Bitfield> {
    hash_have(m, dir, available_threads(), &CheckProgress::default())
        .with_context(|| format!("checking the data of {} in {}", m.info.name, dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        opts: EngineOpts,
    }

    fn parse(args: &[&str]) -> Result<EngineOpts, clap::Error> {
        Cli::try_parse_from(std::iter::once("ringseed").chain(args.iter().copied())).map(|c| c.opts)
    }

    #[test]
    fn upload_slot_flags_reach_the_settings() {
        let o = parse(&[
            "--upload-slots",
            "unlimited",
            "--seed-choking",
            "round-robin",
            "--optimistic-slots",
            "3",
            "--round-robin-pieces",
            "7",
        ])
        .map_err(|e| e.to_string());
        let Ok(o) = o else {
            panic!("{o:?}");
        };
        let s = o.settings_raw().engine.slots;
        assert_eq!(s.slots, SlotLimit::Unlimited);
        assert_eq!(s.seed_choking, SeedChoking::RoundRobin);
        assert_eq!(s.optimistic, Some(3));
        assert_eq!(s.round_robin_pieces, 7);
        assert_eq!(s.validate(), Ok(()));
        let d = parse(&[]).map_err(|e| e.to_string());
        let Ok(d) = d else {
            panic!("{d:?}");
        };
        assert_eq!(d.settings_raw().engine.slots, Default::default());
    }

    #[test]
    fn listen_is_repeatable_and_defaults_to_one_ipv4_address() {
        let d = parse(&[]).map_err(|e| e.to_string());
        let Ok(d) = d else {
            panic!("{d:?}");
        };
        let any: SocketAddr = "0.0.0.0:6881".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.session_config().listen, vec![any]);
        let o = parse(&["--listen", "0.0.0.0:7000", "--listen", "[::]:7000"])
            .map_err(|e| e.to_string());
        let Ok(o) = o else {
            panic!("{o:?}");
        };
        let want: Vec<SocketAddr> = ["0.0.0.0:7000", "[::]:7000"]
            .iter()
            .map(|a| a.parse().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        assert_eq!(o.session_config().listen, want);
    }

    #[test]
    fn upload_slots_values() {
        assert_eq!(parse_upload_slots("4"), Ok(SlotLimit::Fixed(4)));
        assert_eq!(parse_upload_slots("0"), Ok(SlotLimit::Fixed(0)));
        assert_eq!(parse_upload_slots("rate-based"), Ok(SlotLimit::RateBased));
        assert!(parse_upload_slots("10001").is_err());
        assert!(parse_upload_slots("-1").is_err());
        assert!(parse_upload_slots("lots").is_err());
        assert!(parse(&["--seed-choking", "anti-leech"]).is_ok());
        assert!(parse(&["--seed-choking", "fair"]).is_err());
        assert!(parse(&["--optimistic-slots", "101"]).is_err());
        assert!(parse(&["--round-robin-pieces", "0"]).is_err());
    }
}

#[cfg(test)]
mod rate_arg_tests {
    use super::*;

    #[test]
    fn rates_parse_with_binary_suffixes() {
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate("123456"), Ok(123_456));
        assert_eq!(parse_rate("500K"), Ok(500 * 1024));
        assert_eq!(parse_rate("10M"), Ok(10 << 20));
        assert_eq!(parse_rate("4MiB/s"), Ok(4 << 20));
        assert_eq!(parse_rate(" 1g "), Ok(1 << 30));
        assert_eq!(parse_rate("1.5M"), Ok(1_572_864));
        assert_eq!(parse_rate("0.5K/s"), Ok(512));
    }

    #[test]
    fn bad_rates_are_refused_with_the_reason() {
        assert!(parse_rate("").unwrap_err().contains("not a rate"));
        assert!(parse_rate("fast").unwrap_err().contains("not a rate"));
        assert!(parse_rate("10X").unwrap_err().contains("unknown unit"));
        assert!(parse_rate("99999999999G")
            .unwrap_err()
            .contains("over the most"));
        assert!(parse_rate(&"9".repeat(40))
            .unwrap_err()
            .contains("too long"));
    }
}
