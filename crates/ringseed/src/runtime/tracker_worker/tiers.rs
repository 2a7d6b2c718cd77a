//! The order in which one job's trackers are tried (BEP 12), and the worker's
//! memory of which tracker URLs answered last.
//!
//! Boundary: plain data, no sockets and no clock. The worker asks [`plan`] for
//! the list of URLs to try and tells [`TierMemory::promote`] which one
//! answered.
//!
//! Rules, decided on purpose:
//! - tiers are tried in the order given and, within a tier, URLs that answered
//!   before come first, the most recent success first (BEP 12's "move it to
//!   the front of its tier", kept per URL because the caller resends its own
//!   tiers with every job); URLs never seen keep their given order after them;
//! - a URL listed twice in one job is tried once (its first place counts);
//!   blank URLs are skipped;
//! - at most [`TRACKERS_PER_JOB_MAX`] URLs are tried per job, the rest are left
//!   out (counted in [`Plan::left_out`]);
//! - the memory holds at most [`TierMemory::capacity`] URLs; when full, the URL
//!   whose success is oldest is forgotten first. URLs longer than
//!   [`URL_BYTES_MAX`] are never remembered (and fail when tried).

use std::collections::{BTreeMap, HashMap, HashSet};

/// Most tracker URLs tried for one job, all tiers together.
pub const TRACKERS_PER_JOB_MAX: usize = 32;
/// Most URLs the worker remembers as having answered (default capacity).
pub const MEMORY_URLS_MAX: usize = 1024;
/// Longest tracker URL accepted, in bytes.
pub const URL_BYTES_MAX: usize = 2048;

/// The URLs of one job in the order to try them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub urls: Vec<String>,
    /// URLs not tried because of [`TRACKERS_PER_JOB_MAX`].
    pub left_out: usize,
}

/// Which URLs answered, most recent last; bounded.
#[derive(Debug, Clone)]
pub struct TierMemory {
    capacity: usize,
    /// Counts successes; a larger stamp is a more recent success.
    next_stamp: u64,
    stamp_of: HashMap<String, u64>,
    url_of: BTreeMap<u64, String>,
}

impl Default for TierMemory {
    fn default() -> Self {
        Self::with_capacity(MEMORY_URLS_MAX)
    }
}

impl TierMemory {
    /// A memory of at most `capacity` URLs (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        TierMemory {
            capacity: capacity.max(1),
            next_stamp: 0,
            stamp_of: HashMap::new(),
            url_of: BTreeMap::new(),
        }
    }

    /// How many URLs it may hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many URLs it holds.
    pub fn len(&self) -> usize {
        self.stamp_of.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.stamp_of.is_empty()
    }

    /// `url` answered: it goes to the front of its tier in later plans.
    pub fn promote(&mut self, url: &str) {
        if url.len() > URL_BYTES_MAX {
            return;
        }
        let stamp = self.next_stamp;
        self.next_stamp = self.next_stamp.saturating_add(1);
        if let Some(old) = self.stamp_of.insert(url.to_owned(), stamp) {
            self.url_of.remove(&old);
        }
        self.url_of.insert(stamp, url.to_owned());
        while self.stamp_of.len() > self.capacity {
            let Some((_, oldest)) = self.url_of.pop_first() else {
                break;
            };
            self.stamp_of.remove(&oldest);
        }
    }

    /// The last success of `url`, if remembered.
    fn stamp(&self, url: &str) -> Option<u64> {
        self.stamp_of.get(url).copied()
    }
}

/// The URLs to try for `tiers`, in order (see the module header).
pub fn plan(tiers: &[Vec<String>], memory: &TierMemory) -> Plan {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut out = Plan::default();
    for tier in tiers {
        let mut this_tier: Vec<(usize, &str)> = Vec::new();
        for url in tier {
            let url = url.trim();
            if url.is_empty() || !seen.insert(url) {
                continue;
            }
            this_tier.push((this_tier.len(), url));
        }
        // Remembered URLs first, newest success first; the rest as given.
        this_tier.sort_by_key(|&(given, url)| match memory.stamp(url) {
            Some(stamp) => (0, u64::MAX - stamp, given),
            None => (1, 0, given),
        });
        for (_, url) in this_tier {
            if out.urls.len() < TRACKERS_PER_JOB_MAX {
                out.urls.push(url.to_owned());
            } else {
                out.left_out += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers(t: &[&[&str]]) -> Vec<Vec<String>> {
        t.iter()
            .map(|tier| tier.iter().map(|u| (*u).to_owned()).collect())
            .collect()
    }

    #[test]
    fn tiers_in_order_and_urls_as_given_without_memory() {
        let m = TierMemory::default();
        let p = plan(&tiers(&[&["a", "b"], &["c"], &["d", "e"]]), &m);
        assert_eq!(p.urls, ["a", "b", "c", "d", "e"]);
        assert_eq!(p.left_out, 0);
    }

    #[test]
    fn a_success_moves_the_url_to_the_front_of_its_tier_only() {
        let mut m = TierMemory::default();
        m.promote("e");
        let p = plan(&tiers(&[&["a", "b"], &["c"], &["d", "e"]]), &m);
        assert_eq!(p.urls, ["a", "b", "c", "e", "d"]);
        // The most recent success leads; older ones follow it.
        m.promote("b");
        m.promote("a");
        let p = plan(&tiers(&[&["a", "b", "x"]]), &m);
        assert_eq!(p.urls, ["a", "b", "x"]);
        m.promote("b");
        let p = plan(&tiers(&[&["x", "a", "b"]]), &m);
        assert_eq!(p.urls, ["b", "a", "x"]);
    }

    #[test]
    fn duplicates_and_blanks_are_tried_once_or_not_at_all() {
        let m = TierMemory::default();
        let p = plan(&tiers(&[&["a", " ", "a"], &["", "b", "a"]]), &m);
        assert_eq!(p.urls, ["a", "b"]);
        assert_eq!(plan(&[], &m), Plan::default());
    }

    #[test]
    fn urls_beyond_the_per_job_limit_are_left_out() {
        let m = TierMemory::default();
        let many: Vec<String> = (0..TRACKERS_PER_JOB_MAX + 5)
            .map(|i| format!("u{i}"))
            .collect();
        let p = plan(std::slice::from_ref(&many), &m);
        assert_eq!(p.urls.len(), TRACKERS_PER_JOB_MAX);
        assert_eq!(p.left_out, 5);
        assert_eq!(p.urls.first(), many.first());
    }

    #[test]
    fn memory_is_bounded_and_forgets_the_oldest_success() {
        let mut m = TierMemory::with_capacity(2);
        m.promote("a");
        m.promote("b");
        m.promote("a"); // a is now newer than b
        m.promote("c"); // b goes
        assert_eq!(m.len(), 2);
        assert_eq!(m.stamp("b"), None);
        assert!(m.stamp("a").is_some() && m.stamp("c").is_some());
        let p = plan(&tiers(&[&["b", "a", "c"]]), &m);
        assert_eq!(p.urls, ["c", "a", "b"]);
        assert_eq!(TierMemory::with_capacity(0).capacity(), 1);
        assert!(TierMemory::default().is_empty());
    }

    #[test]
    fn overlong_urls_are_not_remembered() {
        let mut m = TierMemory::default();
        m.promote(&"x".repeat(URL_BYTES_MAX + 1));
        assert!(m.is_empty());
    }
}
