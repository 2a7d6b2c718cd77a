//! SHA-1 for piece hashes and info-hashes, one buffer at a time or a batch
//! over several cores.
//!
//! Wraps the `sha1` crate (which uses the CPU's SHA extensions, SHA-NI, when
//! the CPU has them) so that callers do not depend on it directly. Pure: bytes
//! in, digests out; the only side effect is the scoped worker threads of
//! [`hash_batch`], which end before it returns.

pub mod interleave;

pub use interleave::update_interleaved;

use sha1::{Digest, Sha1};

/// Blocks each thread of [`hash_batch`] hashes at once, interleaved (see
/// [`interleave`]): three streams kept this CPU's SHA unit busy (docs/benchmarks.md).
pub const BATCH_LANES: usize = 3;

/// Most worker threads [`hash_batch`] starts, whatever the caller asks for.
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

/// Number of threads worth using for hashing: the parallelism the OS reports,
/// or 1 when it cannot tell.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// SHA-1 of each block, in input order, spread over up to `threads` scoped
/// threads (capped by [`BATCH_THREADS_MAX`] and the number of blocks).
///
/// With one thread, or a batch under [`BATCH_INLINE_BYTES_MAX`] bytes, it
/// hashes on the calling thread and starts none. If the OS refuses a thread,
/// that share is hashed on the calling thread instead.
pub fn hash_batch(blocks: &[&[u8]], threads: usize) -> Vec<[u8; SHA1_BYTES]> {
    let mut out = vec![[0u8; SHA1_BYTES]; blocks.len()];
    let total_bytes = blocks
        .iter()
        .fold(0usize, |acc, b| acc.saturating_add(b.len()));
    let threads = threads.clamp(1, BATCH_THREADS_MAX).min(blocks.len());
    if threads <= 1 || total_bytes < BATCH_INLINE_BYTES_MAX {
        hash_into(blocks, &mut out);
        return out;
    }
    // Equal block counts per thread: batches are mostly pieces of one size.
    let per_thread = blocks.len().div_ceil(threads);
    // Chunks whose worker could not start or died; redone on this thread.
    let mut redo: Vec<usize> = Vec::new();
    std::thread::scope(|scope| {
        let mut workers = Vec::with_capacity(threads);
        let chunks = blocks.chunks(per_thread).zip(out.chunks_mut(per_thread));
        for (chunk, (ins, outs)) in chunks.enumerate() {
            let spawned = std::thread::Builder::new()
                .name("ringseed-sha1".into())
                .spawn_scoped(scope, move || hash_into(ins, outs));
            match spawned {
                Ok(handle) => workers.push((chunk, handle)),
                Err(_) => redo.push(chunk),
            }
        }
        for (chunk, handle) in workers {
            if handle.join().is_err() {
                redo.push(chunk);
            }
        }
    });
    for chunk in redo {
        let start = chunk.saturating_mul(per_thread);
        let end = start.saturating_add(per_thread).min(blocks.len());
        if let (Some(ins), Some(outs)) = (blocks.get(start..end), out.get_mut(start..end)) {
            hash_into(ins, outs);
        }
    }
    out
}

/// Hashes `blocks[i]` into `out[i]`, [`BATCH_LANES`] blocks at a time,
/// interleaved.
fn hash_into(blocks: &[&[u8]], out: &mut [[u8; SHA1_BYTES]]) {
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
        assert!(available_threads() >= 1);
    }

    /// Blocks of varied sizes and contents, `count` of them.
    fn blocks(count: usize, size: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|i| {
                let len = size + i % 3;
                (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
            })
            .collect()
    }

    #[test]
    fn parallel_equals_sequential_in_order() {
        for (count, size) in [(0, 0), (1, 10), (5, 100), (13, 64 * 1024), (64, 16 * 1024)] {
            let owned = blocks(count, size);
            let refs: Vec<&[u8]> = owned.iter().map(|b| b.as_slice()).collect();
            let expected: Vec<[u8; SHA1_BYTES]> = refs.iter().map(|b| sha1(b)).collect();
            for threads in [0, 1, 2, 3, 4, 7, 64, usize::MAX] {
                assert_eq!(
                    hash_batch(&refs, threads),
                    expected,
                    "count {count} size {size} threads {threads}"
                );
            }
        }
    }

    #[test]
    fn batch_at_the_inline_threshold() {
        // Just under and at the threshold: both paths give the same digests.
        for total in [BATCH_INLINE_BYTES_MAX - 1, BATCH_INLINE_BYTES_MAX] {
            let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
            let refs: Vec<&[u8]> = data.chunks(total / 4 + 1).collect();
            let expected: Vec<[u8; SHA1_BYTES]> = refs.iter().map(|b| sha1(b)).collect();
            assert_eq!(hash_batch(&refs, 4), expected);
        }
    }
}
