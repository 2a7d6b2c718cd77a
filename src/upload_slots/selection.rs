//! Rank keys and partial selection: the best `k` of `n` candidates in
//! O(n) (`select_nth_unstable`), only the chosen `k` sorted.
//!
//! Boundary: works on a caller-owned scratch of `u128` keys, so a round
//! allocates nothing once the scratch has grown to the candidate count.
//! A key packs, from the top: priority (8 bits), the algorithm's score
//! (64 bits), a random tie-breaker (24 bits) and the candidate's index in
//! the caller's slice (32 bits). Larger keys rank first.

/// Bits of the random tie-breaker.
const TIE_BITS: u32 = 24;
/// Bits of the candidate index.
const INDEX_BITS: u32 = 32;

/// Most candidates a key can index.
pub const INDEX_LIMIT: usize = 1 << INDEX_BITS;

/// Packs a rank key. `index` must be below [`INDEX_LIMIT`] (higher bits
/// are cut); `tie` keeps its low 24 bits.
pub fn key(priority: u8, score: u64, tie: u64, index: usize) -> u128 {
    let tie = u128::from(tie) & ((1 << TIE_BITS) - 1);
    let index = (index as u128) & ((1 << INDEX_BITS) - 1);
    (u128::from(priority) << 120)
        | (u128::from(score) << (TIE_BITS + INDEX_BITS))
        | (tie << INDEX_BITS)
        | index
}

/// The candidate index packed in `key`.
pub fn index_of(key: u128) -> usize {
    (key & ((1 << INDEX_BITS) - 1)) as usize
}

/// The score packed in `key`.
pub fn score_of(key: u128) -> u64 {
    (key >> (TIE_BITS + INDEX_BITS)) as u64
}

/// Moves the `k` largest keys to `keys[..k]`, sorted largest first when
/// `sorted`; the rest follow in no order. O(n) plus O(k log k) to sort.
pub fn select_top(keys: &mut [u128], k: usize, sorted: bool) {
    let k = k.min(keys.len());
    if k == 0 {
        return;
    }
    if k < keys.len() {
        keys.select_nth_unstable_by(k - 1, |a, b| b.cmp(a));
    }
    if sorted {
        if let Some(top) = keys.get_mut(..k) {
            top.sort_unstable_by(|a, b| b.cmp(a));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn key_orders_by_priority_then_score_then_tie() {
        let a = key(0, u64::MAX, u64::MAX, 5);
        let b = key(1, 0, 0, 6);
        assert!(b > a, "priority first");
        assert!(key(0, 2, 0, 1) > key(0, 1, u64::MAX, 2), "score before tie");
        assert!(key(0, 1, 2, 1) > key(0, 1, 1, 2), "tie before index");
        assert_eq!(index_of(key(9, 77, 3, 123_456)), 123_456);
        assert_eq!(score_of(key(9, 77, 3, 123_456)), 77);
        assert_eq!(
            score_of(key(0, u64::MAX, u64::MAX, INDEX_LIMIT - 1)),
            u64::MAX
        );
        assert_eq!(index_of(key(0, 0, 0, INDEX_LIMIT - 1)), INDEX_LIMIT - 1);
    }

    #[test]
    fn select_top_matches_a_full_sort() {
        let mut rng = Rng::new(11);
        for n in [0usize, 1, 2, 5, 100, 1000] {
            for k in [0usize, 1, 3, n / 2, n, n + 4] {
                let keys: Vec<u128> = (0..n)
                    .map(|i| key(0, rng.below(50), rng.next_u64(), i))
                    .collect();
                let mut full = keys.clone();
                full.sort_unstable_by(|a, b| b.cmp(a));
                let mut part = keys.clone();
                select_top(&mut part, k, true);
                let k = k.min(n);
                assert_eq!(part[..k], full[..k], "n {n} k {k}");
                // Unsorted: same set.
                let mut part = keys;
                select_top(&mut part, k, false);
                let mut top = part[..k].to_vec();
                top.sort_unstable_by(|a, b| b.cmp(a));
                assert_eq!(top, full[..k]);
            }
        }
    }
}
