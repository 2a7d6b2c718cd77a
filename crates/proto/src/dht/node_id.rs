//! DHT node ids: 160-bit names, their XOR distance (BEP 5) and the BEP 42
//! secure-id rule that ties an id to the node's external IPv4 address.
//!
//! Boundary: pure arithmetic on ids and addresses; randomness comes from the
//! caller's [`Rng`].
//!
//! Rules, decided on purpose:
//! - BEP 42 checks the top 21 bits of the id against CRC32-C of the masked
//!   address (mask `0x030f3fff`, the id's last byte's low 3 bits as `r`);
//!   CRC32-C is computed here bit by bit (4 bytes per id, no table needed);
//! - addresses in 10/8, 172.16/12, 192.168/16, 169.254/16 and 127/8 are exempt
//!   (BEP 42): any id is "secure" for them;
//! - only IPv4 is handled (BEP 32 is out of scope).

use std::cmp::Ordering;
use std::fmt;
use std::net::Ipv4Addr;

use crate::rng::Rng;
use crate::InfoHash;

/// Bytes in a node id (BEP 5).
pub const NODE_ID_LEN: usize = 20;
/// Bits in a node id: the most buckets a routing table can have.
pub const NODE_ID_BITS: usize = NODE_ID_LEN * 8;
/// The BEP 42 mask applied to an IPv4 address before the CRC.
pub const BEP42_IPV4_MASK: u32 = 0x030f_3fff;

/// A node id (or a target: an info-hash lives in the same space).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub [u8; NODE_ID_LEN]);

impl NodeId {
    /// A uniformly random id.
    pub fn random(rng: &mut Rng) -> NodeId {
        let mut id = [0u8; NODE_ID_LEN];
        rng.fill(&mut id);
        NodeId(id)
    }

    /// The id from a 20-byte slice; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<NodeId> {
        let id: [u8; NODE_ID_LEN] = bytes.try_into().ok()?;
        Some(NodeId(id))
    }

    /// `self XOR other`.
    pub fn distance(&self, other: &NodeId) -> NodeId {
        let mut d = [0u8; NODE_ID_LEN];
        for (i, out) in d.iter_mut().enumerate() {
            *out = self.0[i] ^ other.0[i];
        }
        NodeId(d)
    }

    /// Orders `a` and `b` by their XOR distance to `self` (closer first).
    pub fn cmp_distance(&self, a: &NodeId, b: &NodeId) -> Ordering {
        self.distance(a).cmp(&self.distance(b))
    }

    /// Leading zero bits of this value (160 for zero): the length of the
    /// prefix two ids share when this is their distance.
    pub fn leading_zeros(&self) -> usize {
        let mut n = 0;
        for b in self.0 {
            if b == 0 {
                n += 8;
            } else {
                n += b.leading_zeros() as usize;
                break;
            }
        }
        n
    }

    /// A random id that shares exactly `prefix_bits` leading bits with
    /// `self` (bit `prefix_bits` flipped, the rest random); `prefix_bits`
    /// at or past 160 gives `self`.
    pub fn random_with_prefix(&self, prefix_bits: usize, rng: &mut Rng) -> NodeId {
        if prefix_bits >= NODE_ID_BITS {
            return *self;
        }
        let mut out = NodeId::random(rng).0;
        for bit in 0..=prefix_bits {
            let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
            let mine = self.0[byte] & mask;
            let want = if bit == prefix_bits {
                mine ^ mask
            } else {
                mine
            };
            out[byte] = (out[byte] & !mask) | want;
        }
        NodeId(out)
    }
}

impl From<InfoHash> for NodeId {
    fn from(h: InfoHash) -> NodeId {
        NodeId(h.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// CRC32-C (Castagnoli, reflected polynomial `0x82F63B78`), as BEP 42 asks.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}

/// The CRC that the top 21 bits of a secure id for `ip` with `r` (0..8) copy.
fn bep42_crc(ip: Ipv4Addr, r: u8) -> u32 {
    let masked = (u32::from(ip) & BEP42_IPV4_MASK) | (u32::from(r & 7) << 29);
    crc32c(&masked.to_be_bytes())
}

/// A fresh BEP 42 id for external address `ip`.
pub fn secure_node_id(ip: Ipv4Addr, rng: &mut Rng) -> NodeId {
    let mut id = NodeId::random(rng).0;
    let r = id[NODE_ID_LEN - 1] & 7;
    let crc = bep42_crc(ip, r);
    let [c0, c1, c2, _] = crc.to_be_bytes();
    id[0] = c0;
    id[1] = c1;
    id[2] = (c2 & 0xf8) | (id[2] & 7);
    NodeId(id)
}

/// Whether BEP 42 exempts `ip` (local networks).
pub fn is_bep42_exempt(ip: Ipv4Addr) -> bool {
    ip.is_private() || ip.is_loopback() || ip.is_link_local()
}

/// Whether `id` is a valid BEP 42 id for `ip` (always true for exempt
/// addresses).
pub fn is_secure_node_id(id: &NodeId, ip: Ipv4Addr) -> bool {
    if is_bep42_exempt(ip) {
        return true;
    }
    let r = id.0[NODE_ID_LEN - 1] & 7;
    let [c0, c1, c2, _] = bep42_crc(ip, r).to_be_bytes();
    id.0[0] == c0 && id.0[1] == c1 && (id.0[2] & 0xf8) == (c2 & 0xf8)
}

/// Whether `ip` can be a DHT node's address at all (not unspecified,
/// broadcast or multicast).
pub fn is_usable_ip(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast())
}
