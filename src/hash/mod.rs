//! SHA-1 for piece hashes and info-hashes.
//!
//! Uses the `sha1` crate, which picks the CPU's SHA extensions (SHA-NI) at run
//! time. (Stub: the batched, all-cores hashing lands with the hash work.)

use sha1::{Digest, Sha1};

/// SHA-1 of `data`.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(data);
    h.finalize().into()
}
