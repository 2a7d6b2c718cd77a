//! Peer lists as trackers send them: compact IPv4 (6 bytes each, BEP 23),
//! compact IPv6 (18 bytes each, BEP 7), collected under a bound.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::announce::PEERS_PER_RESPONSE_MAX;
use super::TrackerError;

/// Bytes per compact IPv4 peer: address then port, big-endian.
pub const COMPACT_V4_BYTES: usize = 6;
/// Bytes per compact IPv6 peer: address then port, big-endian.
pub const COMPACT_V6_BYTES: usize = 18;

/// Gathers peers under [`PEERS_PER_RESPONSE_MAX`], skipping port 0.
#[derive(Debug, Default)]
pub(crate) struct PeerCollector {
    pub peers: Vec<SocketAddr>,
    pub skipped: usize,
    pub over_limit: usize,
}

impl PeerCollector {
    pub fn push(&mut self, addr: SocketAddr) {
        if addr.port() == 0 {
            self.skipped += 1;
        } else if self.peers.len() >= PEERS_PER_RESPONSE_MAX {
            self.over_limit += 1;
        } else {
            self.peers.push(addr);
        }
    }

    /// Reads compact peers of one family. `key` and `offset` name where the
    /// bytes stood, for the error when their length is not a multiple of the
    /// entry size.
    pub fn push_compact(
        &mut self,
        bytes: &[u8],
        v6: bool,
        key: &'static str,
        offset: usize,
    ) -> Result<(), TrackerError> {
        let unit = if v6 {
            COMPACT_V6_BYTES
        } else {
            COMPACT_V4_BYTES
        };
        if bytes.len() % unit != 0 {
            return Err(TrackerError::CompactLength {
                key,
                offset,
                length: bytes.len(),
                unit,
            });
        }
        let total = bytes.len() / unit;
        for (index, entry) in bytes.chunks_exact(unit).enumerate() {
            if self.peers.len() >= PEERS_PER_RESPONSE_MAX {
                // Count the rest without reading them one by one.
                self.over_limit += total - index;
                break;
            }
            if let Some(addr) = compact_entry(entry) {
                self.push(addr);
            }
        }
        Ok(())
    }
}

/// One compact entry (6 or 18 bytes) as an address.
fn compact_entry(entry: &[u8]) -> Option<SocketAddr> {
    match entry.len() {
        COMPACT_V4_BYTES => {
            let ip: [u8; 4] = entry.get(..4)?.try_into().ok()?;
            let port: [u8; 2] = entry.get(4..6)?.try_into().ok()?;
            Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(ip)),
                u16::from_be_bytes(port),
            ))
        }
        COMPACT_V6_BYTES => {
            let ip: [u8; 16] = entry.get(..16)?.try_into().ok()?;
            let port: [u8; 2] = entry.get(16..18)?.try_into().ok()?;
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(ip)),
                u16::from_be_bytes(port),
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_v4_and_v6() {
        let mut c = PeerCollector::default();
        c.push_compact(
            &[10, 0, 0, 1, 0x1a, 0xe1, 1, 2, 3, 4, 0, 80],
            false,
            "peers",
            0,
        )
        .unwrap();
        let mut v6 = [0u8; 18];
        v6[15] = 1;
        v6[16] = 0x1a;
        v6[17] = 0xe1;
        c.push_compact(&v6, true, "peers6", 0).unwrap();
        assert_eq!(
            c.peers,
            vec![
                "10.0.0.1:6881".parse::<SocketAddr>().unwrap(),
                "1.2.3.4:80".parse().unwrap(),
                "[::1]:6881".parse().unwrap(),
            ]
        );
    }

    #[test]
    fn compact_length_must_be_a_multiple() {
        let mut c = PeerCollector::default();
        let e = c
            .push_compact(&[1, 2, 3, 4, 5, 6, 7], false, "peers", 42)
            .unwrap_err();
        assert_eq!(
            e,
            TrackerError::CompactLength {
                key: "peers",
                offset: 42,
                length: 7,
                unit: 6
            }
        );
        let e = c.push_compact(&[0; 17], true, "peers6", 0).unwrap_err();
        assert!(matches!(e, TrackerError::CompactLength { unit: 18, .. }));
    }

    #[test]
    fn port_zero_is_skipped() {
        let mut c = PeerCollector::default();
        c.push_compact(&[1, 2, 3, 4, 0, 0, 1, 2, 3, 4, 0, 1], false, "peers", 0)
            .unwrap();
        assert_eq!(c.peers.len(), 1);
        assert_eq!(c.skipped, 1);
    }

    #[test]
    fn at_most_the_limit_is_kept() {
        let mut c = PeerCollector::default();
        let bytes: Vec<u8> = (0..PEERS_PER_RESPONSE_MAX + 7)
            .flat_map(|i| {
                let [a, b, cc, d] = u32::try_from(i).unwrap().to_be_bytes();
                [a, b, cc, d, 0, 1]
            })
            .collect();
        c.push_compact(&bytes, false, "peers", 0).unwrap();
        assert_eq!(c.peers.len(), PEERS_PER_RESPONSE_MAX);
        assert_eq!(c.over_limit, 7);
        c.push("1.1.1.1:1".parse().unwrap());
        assert_eq!(c.over_limit, 8);
    }
}
