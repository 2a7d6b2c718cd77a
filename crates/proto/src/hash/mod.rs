//! SHA-1 for piece hashes and info-hashes, one buffer at a time or a batch
//! over several cores.
//!
//! Wraps the `sha1` crate (which uses the CPU's SHA extensions, SHA-NI, when
//! the CPU has them) so that callers do not depend on it directly. Pure: bytes
//! in, digests out. Spreading a batch over threads is the runtime's job
//! (`ringseed::runtime::hash_batch`).

pub mod interleave;

pub use interleave::update_interleaved;

use sha1::{Digest, Sha1};

/// Blocks each thread of `hash_batch` (runtime) hashes at once, interleaved (see
/// [`interleave`]): three streams kept this CPU's SHA unit busy (docs/benchmarks.md).
pub const BATCH_LANES: usize = 3;

/// Most worker threads `hash_batch` (runtime) starts, whatever the caller asks for.
pub const BATCH_THREADS_MAX: usize = 256;

/// Batches smaller than this, in bytes, are hashed on the calling thread:
/// starting threads would cost more than it saves.
pub const BATCH_INLINE_BYTES_MAX: usize = 256 * 1024;

/// SHA-1 digest length in bytes.
pub const SHA1_BYTES: usize = 20;

/// SHA-1 of `data`.
pub fn sha1(data: &[u8]) -> [u8; SHA1_BYTES] {
    let mut h = Sha1::new();
    h.update(data);
    h.finalize().into()
}

/// SHA-1 of the concatenation of `parts`, without copying them together.
pub fn sha1_parts(parts: &[&[u8]]) -> [u8; SHA1_BYTES] {
    let mut h = Sha1Hasher::new();
    for part in parts {
        h.update(part);
    }
    h.finish()
}

/// Incremental SHA-1: feed bytes with [`update`](Self::update), then take the
/// digest with [`finish`](Self::finish).
#[derive(Clone, Default)]
pub struct Sha1Hasher(Sha1);

impl Sha1Hasher {
    /// A hasher that has seen no bytes yet.
    pub fn new() -> Self {
        Self(Sha1::new())
    }

    /// Feeds `data` into the digest.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> [u8; SHA1_BYTES] {
        self.0.finalize().into()
    }
}

impl std::fmt::Debug for Sha1Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sha1Hasher")
    }
}

/// Whether this CPU has the SHA extensions that the `sha1` crate uses (for
/// reporting; the crate decides on its own at run time).
pub fn sha_ni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Hashes `blocks[i]` into `out[i]`, [`BATCH_LANES`] blocks at a time,
/// interleaved.
pub fn hash_into(blocks: &[&[u8]], out: &mut [[u8; SHA1_BYTES]]) {
    for (ins, outs) in blocks.chunks(BATCH_LANES).zip(out.chunks_mut(BATCH_LANES)) {
        let mut hashers: [Sha1Hasher; BATCH_LANES] = std::array::from_fn(|_| Sha1Hasher::new());
        let mut jobs: Vec<(&mut Sha1Hasher, &[u8])> = Vec::with_capacity(BATCH_LANES);
        for (h, block) in hashers.iter_mut().zip(ins) {
            jobs.push((h, block));
        }
        update_interleaved(&mut jobs);
        drop(jobs);
        for (h, digest) in hashers.into_iter().zip(outs.iter_mut()) {
            *digest = h.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: [u8; SHA1_BYTES]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn known_vectors() {
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        let million = vec![b'a'; 1_000_000];
        assert_eq!(
            hex(sha1(&million)),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
        );
    }

    #[test]
    fn parts_and_incremental_match_one_shot() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = sha1(&data);
        let (a, rest) = data.split_at(1);
        let (b, c) = rest.split_at(4_095);
        assert_eq!(sha1_parts(&[a, b, c]), whole);
        assert_eq!(sha1_parts(&[&data[..0], &data, &data[..0]]), whole);
        assert_eq!(sha1_parts(&[]), sha1(b""));
        assert_eq!(sha1_parts(&[b"a", b"", b"bc"]), sha1(b"abc"));

        let mut h = Sha1Hasher::new();
        for chunk in data.chunks(333) {
            h.update(chunk);
        }
        assert_eq!(h.finish(), whole);
        assert_eq!(Sha1Hasher::default().finish(), sha1(b""));
        let mut h = Sha1Hasher::new();
        h.update(b"ab");
        let mut fork = h.clone();
        h.update(b"c");
        fork.update(b"x");
        assert_eq!(h.finish(), sha1(b"abc"));
        assert_eq!(fork.finish(), sha1(b"abx"));
    }

    #[test]
    fn sha_ni_report_matches_the_cpu() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            sha_ni_available(),
            std::arch::is_x86_feature_detected!("sha")
        );
        #[cfg(not(target_arch = "x86_64"))]
        assert!(!sha_ni_available());
    }
}
