//! The global budgets (upload slots, global upload and download rates)
//! shared among shards and, within a shard, among its torrents (issue 5).
//! Pure: each shard reports a [`ShardDemand`]; every shard reads all the
//! reports and computes the same split with [`split`], so no lock and no
//! coordinator is needed (the exchange itself lives in
//! `runtime::shard::quota_board`).
//!
//! The split of `total` among demands `d`:
//! - no demand anywhere: equal shares (an idle session keeps its budget
//!   spread, ready for whoever asks first);
//! - the demands fit (`sum(d) <= total`): each gets its demand, and the
//!   spare is shared in proportion to demand (a quota is a cap, so room to
//!   grow is kept where the load is); no demand, no share;
//! - they do not fit: every party with demand gets 1 first, the rest in
//!   proportion to demand; if `total` is smaller than the number of parties
//!   with demand, the largest demands get 1 each.
//!
//! Remainders go by largest remainder, ties to the lower index, so the
//! result is deterministic; the sum never exceeds `total`.

/// Most parties one split takes (shards, or torrents of one shard);
/// parties past it get nothing.
pub const PARTIES_MAX: usize = 1 << 16;

/// What a shard reports each round. Packs into one `u64` so a report is
/// one atomic store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardDemand {
    /// Upload slots its torrents would use now (sum of their slot demand).
    pub upload: u32,
    /// Peers of its torrents still downloading.
    pub download: u32,
}

impl ShardDemand {
    pub fn pack(self) -> u64 {
        (u64::from(self.upload) << 32) | u64::from(self.download)
    }

    pub fn unpack(cell: u64) -> ShardDemand {
        ShardDemand {
            upload: (cell >> 32) as u32,
            download: cell as u32,
        }
    }
}

/// Splits `total` among parties by `demands` (rules in the module header).
/// The result has one share per demand, in order.
pub fn split(total: u64, demands: &[u64]) -> Vec<u64> {
    let n = demands.len().min(PARTIES_MAX);
    let demands = &demands[..n];
    let mut shares = vec![0u64; demands.len()];
    if n == 0 || total == 0 {
        return shares;
    }
    let sum: u128 = demands.iter().map(|&d| u128::from(d)).sum();
    if sum == 0 {
        let each = total / n as u64;
        let extra = (total % n as u64) as usize;
        for (i, s) in shares.iter_mut().enumerate() {
            *s = each + u64::from(i < extra);
        }
        return shares;
    }
    if sum <= u128::from(total) {
        shares.copy_from_slice(demands);
        let spare = total - sum as u64;
        add_proportional(&mut shares, spare, demands);
        return shares;
    }
    let wanting: Vec<usize> = (0..n).filter(|&i| demands[i] > 0).collect();
    if (total as u128) < wanting.len() as u128 {
        let mut order = wanting;
        order.sort_by(|&a, &b| demands[b].cmp(&demands[a]).then(a.cmp(&b)));
        for &i in order.iter().take(total as usize) {
            shares[i] = 1;
        }
        return shares;
    }
    for &i in &wanting {
        shares[i] = 1;
    }
    add_proportional(&mut shares, total - wanting.len() as u64, demands);
    shares
}

/// Adds `amount` to `shares` in proportion to `weights` (not all zero),
/// by largest remainder, ties to the lower index.
fn add_proportional(shares: &mut [u64], amount: u64, weights: &[u64]) {
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if sum == 0 || amount == 0 {
        return;
    }
    let mut given = 0u64;
    let mut rests: Vec<(u128, usize)> = Vec::with_capacity(weights.len());
    for (i, &w) in weights.iter().enumerate() {
        let exact = u128::from(amount) * u128::from(w);
        let whole = (exact / sum) as u64;
        shares[i] += whole;
        given += whole;
        if w > 0 {
            rests.push((exact % sum, i));
        }
    }
    rests.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in rests.iter().take((amount - given) as usize) {
        shares[i] += 1;
    }
}

/// Every shard's shares of the global budgets, computed from the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShardQuota {
    /// Upload slots for this shard's torrents (`None`: no global cap).
    pub upload_slots: Option<u64>,
    /// This shard's share of the global upload limit, bytes/s (`None`:
    /// unlimited).
    pub upload_rate: Option<u64>,
    /// Likewise for the global download limit.
    pub download_rate: Option<u64>,
}

/// The global budgets (0 = unlimited in each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GlobalBudget {
    pub upload_slots: u64,
    pub upload_rate: u64,
    pub download_rate: u64,
}

impl GlobalBudget {
    pub fn is_unlimited(&self) -> bool {
        self.upload_slots == 0 && self.upload_rate == 0 && self.download_rate == 0
    }
}

/// Shard `me`'s quota given every shard's report: slots and the upload
/// rate split by upload demand, the download rate by download demand.
pub fn shard_quota(budget: &GlobalBudget, demands: &[ShardDemand], me: usize) -> ShardQuota {
    let up: Vec<u64> = demands.iter().map(|d| u64::from(d.upload)).collect();
    let down: Vec<u64> = demands.iter().map(|d| u64::from(d.download)).collect();
    let mine =
        |total: u64, d: &[u64]| (total > 0).then(|| split(total, d).get(me).copied().unwrap_or(0));
    ShardQuota {
        upload_slots: mine(budget.upload_slots, &up),
        upload_rate: mine(budget.upload_rate, &up),
        download_rate: mine(budget.download_rate, &down),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_split() {
        assert_eq!(split(10, &[]), Vec::<u64>::new());
        assert_eq!(split(0, &[3, 4]), vec![0, 0]);
    }

    #[test]
    fn no_demand_anywhere_splits_equally() {
        assert_eq!(split(10, &[0, 0, 0]), vec![4, 3, 3]);
    }

    #[test]
    fn demands_that_fit_get_their_demand_and_spare_by_demand() {
        assert_eq!(split(20, &[2, 8]), vec![4, 16]);
        assert_eq!(split(10, &[0, 5]), vec![0, 10], "no demand, no share");
        assert_eq!(split(7, &[3, 4]), vec![3, 4]);
    }

    #[test]
    fn short_budget_gives_everyone_with_demand_at_least_one() {
        let s = split(10, &[100, 1, 1, 0]);
        assert_eq!(s, vec![8, 1, 1, 0]);
        let s = split(5, &[50, 30, 20]);
        assert_eq!(s.iter().sum::<u64>(), 5);
        assert!(s.iter().all(|&x| x >= 1));
        assert!(s[0] >= s[1] && s[1] >= s[2]);
    }

    #[test]
    fn fewer_slots_than_parties_go_to_the_largest_demands() {
        assert_eq!(split(2, &[1, 5, 5, 3]), vec![0, 1, 1, 0]);
    }

    #[test]
    fn remainders_go_to_largest_remainder_then_lower_index() {
        assert_eq!(split(3, &[1, 1, 1, 1]), vec![1, 1, 1, 0]);
        // 10 over 3,3,3 with spare 1: equal remainders, lowest index.
        assert_eq!(split(10, &[3, 3, 3]), vec![4, 3, 3]);
    }

    #[test]
    fn sums_never_exceed_the_total_and_are_deterministic() {
        let mut seed = 12345u64;
        for _ in 0..2000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let n = (seed >> 60) as usize + 1;
            let total = (seed >> 20) % 1000;
            let demands: Vec<u64> = (0..n)
                .map(|i| (seed >> (i * 3)) % 50 * u64::from(i % 3 != 0))
                .collect();
            let s = split(total, &demands);
            assert_eq!(s, split(total, &demands));
            assert!(s.iter().sum::<u64>() <= total, "{total} {demands:?} {s:?}");
            let wanting = demands.iter().filter(|&&d| d > 0).count() as u64;
            if total >= wanting {
                for (d, q) in demands.iter().zip(&s) {
                    assert!(*d == 0 || *q >= 1, "{total} {demands:?} {s:?}");
                }
            }
            let sum: u64 = demands.iter().sum();
            if sum <= total {
                for (d, q) in demands.iter().zip(&s) {
                    assert!(q >= d, "fits: each gets its demand");
                }
            }
        }
    }

    #[test]
    fn huge_numbers_do_not_overflow() {
        let s = split(u64::MAX, &[u64::MAX, u64::MAX]);
        assert!(s.iter().map(|&x| u128::from(x)).sum::<u128>() <= u128::from(u64::MAX));
        assert!(s[0] > 0 && s[1] > 0);
    }

    #[test]
    fn parties_past_the_limit_get_nothing() {
        let d = vec![1u64; PARTIES_MAX + 3];
        let s = split(u64::MAX, &d);
        assert_eq!(s.len(), PARTIES_MAX);
    }

    #[test]
    fn demand_packs_into_one_cell() {
        let d = ShardDemand {
            upload: u32::MAX,
            download: 7,
        };
        assert_eq!(ShardDemand::unpack(d.pack()), d);
        assert_eq!(ShardDemand::unpack(0), ShardDemand::default());
    }

    #[test]
    fn shard_quota_splits_each_budget_by_its_demand() {
        let budget = GlobalBudget {
            upload_slots: 10,
            upload_rate: 1_000_000,
            download_rate: 0,
        };
        assert!(!budget.is_unlimited());
        assert!(GlobalBudget::default().is_unlimited());
        let demands = [
            ShardDemand {
                upload: 12,
                download: 0,
            },
            ShardDemand {
                upload: 3,
                download: 9,
            },
        ];
        let a = shard_quota(&budget, &demands, 0);
        let b = shard_quota(&budget, &demands, 1);
        assert_eq!(a.upload_slots, Some(7), "1 + 6.4 of the other 8");
        assert_eq!(b.upload_slots, Some(3), "1 + 1.6 of the other 8");
        assert_eq!(a.upload_rate, Some(800_000));
        assert_eq!(b.upload_rate, Some(200_000));
        assert_eq!(a.download_rate, None);
        let out = shard_quota(&budget, &demands, 5);
        assert_eq!(out.upload_slots, Some(0), "a shard not on the board");
    }
}
