//! Rank keys and partial selection: the best `k` of `n` candidates in
//! O(n) (`select_nth_unstable`), only the chosen `k` sorted.
//!
//! Boundary: works on a caller-owned scratch of `u128` keys, so a round
//! allocates nothing once the scratch has grown to the candidate count.
//! A key packs, from the top: priority (8 bits), the algorithm's score
//! (64 bits), a random tie-breaker (22 bits), two flags for the
//! optimistic draw (so it need not look the candidates up again) and the
//! candidate's index in the caller's slice (32 bits). Larger keys rank
//! first.

/// Bits of the random tie-breaker and the flags together.
const TIE_BITS: u32 = 24;
/// Bits of the flags, the low bits of the tie-breaker field.
const FLAG_BITS: u32 = 2;
/// Flag: the candidate is a newcomer.
pub const FLAG_NEWCOMER: u8 = 1;
/// Flag: the candidate held an optimistic slot after the last round.
pub const FLAG_HOLDER: u8 = 2;
/// Bits of the candidate index.
const INDEX_BITS: u32 = 32;

/// Most candidates a key can index.
pub const INDEX_LIMIT: usize = 1 << INDEX_BITS;

/// Packs a rank key. `index` must be below [`INDEX_LIMIT`] (higher bits
/// are cut); `tie` keeps its low 22 bits, `flags` its low 2.
pub fn key(priority: u8, score: u64, tie: u64, flags: u8, index: usize) -> u128 {
    let flag_mask = (1u128 << FLAG_BITS) - 1;
    let tie =
        ((u128::from(tie) << FLAG_BITS) | (u128::from(flags) & flag_mask)) & ((1 << TIE_BITS) - 1);
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

/// The flags packed in `key`.
pub fn flags_of(key: u128) -> u8 {
    ((key >> INDEX_BITS) as u8) & ((1 << FLAG_BITS) - 1)
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
        let a = key(0, u64::MAX, u64::MAX, 3, 5);
        let b = key(1, 0, 0, 0, 6);
        assert!(b > a, "priority first");
        assert!(
            key(0, 2, 0, 0, 1) > key(0, 1, u64::MAX, 3, 2),
            "score before tie"
        );
        assert!(key(0, 1, 2, 0, 1) > key(0, 1, 1, 3, 2), "tie before index");
        let k = key(9, 77, 3, FLAG_HOLDER, 123_456);
        assert_eq!(index_of(k), 123_456);
        assert_eq!(score_of(k), 77);
        assert_eq!(flags_of(k), FLAG_HOLDER);
        let k = key(0, u64::MAX, u64::MAX, u8::MAX, INDEX_LIMIT - 1);
        assert_eq!(score_of(k), u64::MAX);
        assert_eq!(flags_of(k), FLAG_NEWCOMER | FLAG_HOLDER);
        assert_eq!(index_of(k), INDEX_LIMIT - 1);
        assert_eq!(flags_of(key(0, u64::MAX, u64::MAX, 0, 0)), 0);
    }

    #[test]
    fn select_top_matches_a_full_sort() {
        let mut rng = Rng::new(11);
        for n in [0usize, 1, 2, 5, 100, 1000] {
            for k in [0usize, 1, 3, n / 2, n, n + 4] {
                let keys: Vec<u128> = (0..n)
                    .map(|i| key(0, rng.below(50), rng.next_u64(), 0, i))
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
