//! Hashing several SHA-1 streams at once on one core, by feeding them one
//! 64-byte block each in turn.
//!
//! SHA-1 on SHA-NI is bound by the latency of the `sha1rnds4` dependency
//! chain, not by the execution units: one stream leaves most of the core
//! idle. Blocks of independent streams have no dependency between them, so an
//! out-of-order core overlaps them when they are issued close together. On the
//! machine in docs/benchmarks.md ("ringseed verify") three streams ran at about
//! 2x the single-stream rate. Pure computation, no IO; it only orders calls to
//! [`Sha1Hasher::update`], so the digests are the same as hashing each stream
//! alone.

use super::Sha1Hasher;

/// SHA-1 block size: the step at which the streams take turns.
pub const STEP_BYTES: usize = 64;

/// Feeds `data` of each job into its hasher, interleaving the jobs block by
/// block over their common length, then the rest of each alone.
pub fn update_interleaved(jobs: &mut [(&mut Sha1Hasher, &[u8])]) {
    if let [(hasher, data)] = jobs {
        hasher.update(data);
        return;
    }
    let common = jobs.iter().map(|(_, d)| d.len()).min().unwrap_or(0);
    let common = common - common % STEP_BYTES;
    let mut offset = 0;
    while offset < common {
        for (hasher, data) in jobs.iter_mut() {
            if let Some(block) = data.get(offset..offset + STEP_BYTES) {
                hasher.update(block);
            }
        }
        offset += STEP_BYTES;
    }
    for (hasher, data) in jobs.iter_mut() {
        if let Some(rest) = data.get(common..) {
            hasher.update(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha1;

    fn bytes(seed: u8, n: usize) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
    }

    #[test]
    fn same_digests_as_one_at_a_time() {
        for lens in [
            vec![0usize],
            vec![100],
            vec![4096, 4096],
            vec![64, 65, 63],
            vec![1000, 0, 5000, 129],
            vec![1 << 16, (1 << 16) + 7, 3],
        ] {
            let data: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(i, &n)| bytes(i as u8, n))
                .collect();
            let mut hashers: Vec<Sha1Hasher> = data.iter().map(|_| Sha1Hasher::new()).collect();
            // Two rounds, as the pipeline feeds chunk after chunk.
            for _ in 0..2 {
                let mut jobs: Vec<(&mut Sha1Hasher, &[u8])> = hashers
                    .iter_mut()
                    .zip(&data)
                    .map(|(h, d)| (h, d.as_slice()))
                    .collect();
                update_interleaved(&mut jobs);
            }
            for (h, d) in hashers.into_iter().zip(&data) {
                let twice = [d.as_slice(), d.as_slice()].concat();
                assert_eq!(h.finish(), sha1(&twice), "lengths {lens:?}");
            }
        }
    }

    #[test]
    fn no_jobs_is_fine() {
        update_interleaved(&mut []);
    }
}
