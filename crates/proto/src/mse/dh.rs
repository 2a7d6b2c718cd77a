//! The MSE Diffie-Hellman exchange: the spec's 768-bit prime, generator 2,
//! keys as 96 big-endian bytes. Weak peer keys (outside `2..=P-2`) are
//! refused, as libtorrent does. Arithmetic by `num-bigint` (not constant
//! time; MSE is obfuscation, not confidentiality against a local observer).

use num_bigint::BigUint;

use super::{MseError, PRIVATE_KEY_BYTES, PUBLIC_KEY_BYTES};

/// The spec's prime P, big-endian (768 bits).
pub const PRIME: [u8; PUBLIC_KEY_BYTES] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC9, 0x0F, 0xDA, 0xA2, 0x21, 0x68, 0xC2, 0x34,
    0xC4, 0xC6, 0x62, 0x8B, 0x80, 0xDC, 0x1C, 0xD1, 0x29, 0x02, 0x4E, 0x08, 0x8A, 0x67, 0xCC, 0x74,
    0x02, 0x0B, 0xBE, 0xA6, 0x3B, 0x13, 0x9B, 0x22, 0x51, 0x4A, 0x08, 0x79, 0x8E, 0x34, 0x04, 0xDD,
    0xEF, 0x95, 0x19, 0xB3, 0xCD, 0x3A, 0x43, 0x1B, 0x30, 0x2B, 0x0A, 0x6D, 0xF2, 0x5F, 0x14, 0x37,
    0x4F, 0xE1, 0x35, 0x6D, 0x6D, 0x51, 0xC2, 0x45, 0xE4, 0x85, 0xB5, 0x76, 0x62, 0x5E, 0x7E, 0xC6,
    0xF4, 0x4C, 0x42, 0xE9, 0xA6, 0x3A, 0x36, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x05, 0x63,
];
/// The generator.
pub const GENERATOR: u32 = 2;

/// A private key (the caller draws it at random).
#[derive(Clone)]
pub struct PrivateKey(pub [u8; PRIVATE_KEY_BYTES]);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

fn to_bytes(n: &BigUint) -> [u8; PUBLIC_KEY_BYTES] {
    let mut out = [0u8; PUBLIC_KEY_BYTES];
    let bytes = n.to_bytes_be();
    // Every value here is reduced mod P, so it fits in 96 bytes.
    let start = PUBLIC_KEY_BYTES.saturating_sub(bytes.len());
    let skip = bytes.len().saturating_sub(PUBLIC_KEY_BYTES);
    out[start..].copy_from_slice(&bytes[skip..]);
    out
}

/// Our public key `2^x mod P`, 96 big-endian bytes.
pub fn public_key(private: &PrivateKey) -> [u8; PUBLIC_KEY_BYTES] {
    let p = BigUint::from_bytes_be(&PRIME);
    let x = BigUint::from_bytes_be(&private.0);
    to_bytes(&BigUint::from(GENERATOR).modpow(&x, &p))
}

/// The shared secret `Y^x mod P`, after refusing a weak peer key `Y`.
pub fn shared_secret(
    private: &PrivateKey,
    peer_public: &[u8; PUBLIC_KEY_BYTES],
) -> Result<[u8; PUBLIC_KEY_BYTES], MseError> {
    let p = BigUint::from_bytes_be(&PRIME);
    let y = BigUint::from_bytes_be(peer_public);
    let one = BigUint::from(1u32);
    if y <= one || y >= &p - &one {
        return Err(MseError::WeakPublicKey);
    }
    let s = y.modpow(&BigUint::from_bytes_be(&private.0), &p);
    if s <= one {
        return Err(MseError::WeakSharedSecret);
    }
    Ok(to_bytes(&s))
}
