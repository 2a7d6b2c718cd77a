//! SHA-1 of many blocks at once, spread over scoped threads: the threaded
//! half of `hash` (the protocol crate hashes on the calling thread only).

use crate::hash::{hash_into, BATCH_INLINE_BYTES_MAX, BATCH_THREADS_MAX, SHA1_BYTES};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha1;

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
