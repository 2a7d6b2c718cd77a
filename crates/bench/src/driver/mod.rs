//! The load generator's IO driver (issue 4): threads, io_uring loops and
//! sockets around the sans-IO machines of `crate::loadgen`.
//!
//! - [`leech`]: K synthetic leechers ([`crate::loadgen::leecher`]) against
//!   one seeder, spread over N threads, each with its own [`EventLoop`];
//!   every connection binds its own 127.1.x.y source address when the
//!   target is on loopback (clients limit connections per IP), or the
//!   consecutive addresses from a given base ([`source_from_base`]).
//! - [`delay_line`]: a userspace delay line between two TUN devices (the
//!   generator in its own network namespace, see benches/swarm/netns.sh).
//! - [`serve`]: the trivial seeder: a listener per thread (SO_REUSEPORT)
//!   and one [`crate::loadgen::seed`] per accepted connection.
//! - [`stream`]: one bulk TCP stream, the ceiling of a single peer's
//!   transfer over a path (the far-peer bench).
//!
//! CPU figures come from [`proc_stats`].
//!
//! Boundary: only plumbing lives here (sockets, rings, threads, clock,
//! /proc); what is sent and how blocks are checked is decided by the
//! sans-IO machines.
//!
//! [`EventLoop`]: ringseed::runtime::event_loop::EventLoop

pub mod delay_line;
pub mod leech;
pub mod proc_stats;
pub mod serve;
pub mod stream;

use std::net::{IpAddr, Ipv4Addr};

use thiserror::Error;

use crate::loadgen::leecher::LeecherError;
use crate::loadgen::order::OrderError;
use crate::loadgen::seed::SeedError;
use ringseed::runtime::event_loop::LoopError;
use ringseed::runtime::sockets::SocketError;

/// Most threads a run may use.
pub const THREADS_MAX: usize = 256;
/// Most synthetic peers of one run.
pub const PEERS_MAX: u32 = 10_000;
/// Source addresses used for loopback targets: 127.1.0.1 onwards.
const SOURCE_NET: [u8; 2] = [127, 1];

/// Why a load generator run could not start or went wrong.
#[derive(Debug, Error)]
pub enum LoadgenError {
    #[error("{what} {found} is out of range: expected {min} to {max}")]
    Range {
        what: &'static str,
        found: u64,
        min: u64,
        max: u64,
    },
    #[error("event loop: {0}")]
    Loop(#[from] LoopError),
    #[error("socket: {0}")]
    Socket(#[from] SocketError),
    #[error("leecher: {0}")]
    Leecher(#[from] LeecherError),
    #[error("seed: {0}")]
    Seed(#[from] SeedError),
    #[error("piece order: {0}")]
    Order(#[from] OrderError),
    #[error("a load generator thread panicked")]
    ThreadPanicked,
    #[error("cannot start a thread: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("source addresses from {base} for {peers} peers: {why}")]
    SourceRange {
        base: Ipv4Addr,
        peers: u32,
        why: &'static str,
    },
}

pub(crate) fn check_range(
    what: &'static str,
    found: u64,
    min: u64,
    max: u64,
) -> Result<(), LoadgenError> {
    if (min..=max).contains(&found) {
        Ok(())
    } else {
        Err(LoadgenError::Range {
            what,
            found,
            min,
            max,
        })
    }
}

/// The source address of connection `index` to `target`: its own
/// 127.1.x.y when the target is IPv4 loopback, none (the kernel's choice)
/// otherwise. Indexes up to 65 534 get distinct addresses.
pub fn source_address(target: IpAddr, index: u32) -> Option<IpAddr> {
    let IpAddr::V4(v4) = target else {
        return None;
    };
    if !v4.is_loopback() {
        return None;
    }
    let n = (index % 0xfffe) + 1;
    Some(IpAddr::V4(Ipv4Addr::new(
        SOURCE_NET[0],
        SOURCE_NET[1],
        (n >> 8) as u8,
        (n & 0xff) as u8,
    )))
}

/// Checks that `peers` consecutive source addresses from `base` exist:
/// `base` is not 0.0.0.0 and the last one is below 255.255.255.255.
pub fn check_source_base(base: Ipv4Addr, peers: u32) -> Result<(), LoadgenError> {
    let err = |why| Err(LoadgenError::SourceRange { base, peers, why });
    if base.is_unspecified() {
        return err("the base is 0.0.0.0");
    }
    match u32::from(base).checked_add(peers.saturating_sub(1)) {
        Some(last) if last < u32::MAX => Ok(()),
        _ => err("the range runs past 255.255.255.254"),
    }
}

/// The source address of connection `index` when sources are given from
/// `base`: `base + index`; `None` past the end of IPv4 (see
/// [`check_source_base`]).
pub fn source_from_base(base: Ipv4Addr, index: u32) -> Option<IpAddr> {
    u32::from(base)
        .checked_add(index)
        .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
}

/// The default thread count: the CPUs this process may run on.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, THREADS_MAX)
}

/// Makes SIGINT and SIGTERM ask the running driver to stop (it then
/// reports), and ignores SIGPIPE.
pub use ringseed::runtime::signals::install as install_stop_signals;
pub use ringseed::runtime::signals::stop_requested;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_get_distinct_sources_others_none() {
        let lo: IpAddr = "127.0.9.50".parse().unwrap();
        assert_eq!(source_address(lo, 0), Some("127.1.0.1".parse().unwrap()));
        assert_eq!(source_address(lo, 255), Some("127.1.1.0".parse().unwrap()));
        let mut seen = std::collections::HashSet::new();
        for i in 0..PEERS_MAX {
            assert!(seen.insert(source_address(lo, i).unwrap()));
        }
        assert_eq!(source_address("10.0.0.1".parse().unwrap(), 0), None);
        assert_eq!(source_address("::1".parse().unwrap(), 0), None);
    }

    #[test]
    fn sources_from_a_base_are_consecutive_and_bounded() {
        let base: Ipv4Addr = "10.204.0.1".parse().unwrap();
        assert_eq!(
            source_from_base(base, 0),
            Some("10.204.0.1".parse().unwrap())
        );
        assert_eq!(
            source_from_base(base, 255),
            Some("10.204.1.0".parse().unwrap())
        );
        assert!(check_source_base(base, PEERS_MAX).is_ok());
        let top: Ipv4Addr = "255.255.255.250".parse().unwrap();
        assert!(check_source_base(top, 5).is_ok());
        assert!(matches!(
            check_source_base(top, 6),
            Err(LoadgenError::SourceRange { peers: 6, .. })
        ));
        assert!(matches!(
            check_source_base(Ipv4Addr::UNSPECIFIED, 1),
            Err(LoadgenError::SourceRange { .. })
        ));
        assert_eq!(source_from_base(Ipv4Addr::BROADCAST, 1), None);
    }

    #[test]
    fn ranges_are_checked() {
        assert!(check_range("x", 5, 1, 10).is_ok());
        assert!(matches!(
            check_range("peers", 0, 1, 10),
            Err(LoadgenError::Range { found: 0, .. })
        ));
        assert!(default_threads() >= 1);
    }
}
