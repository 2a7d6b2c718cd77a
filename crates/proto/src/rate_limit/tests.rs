use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn bucket_starts_full_and_refills_at_its_rate() {
    let mut b = TokenBucket::new(100_000, 50_000, ms(0));
    assert_eq!(b.tokens(), 50_000);
    assert!(b.try_take(ms(0), 50_000));
    assert!(!b.try_take(ms(0), 1));
    b.refill(ms(100));
    assert_eq!(b.tokens(), 10_000, "100 ms at 100 kB/s");
    b.refill(ms(10_000));
    assert_eq!(b.tokens(), 50_000, "capped by the burst");
}

#[test]
fn refill_keeps_fractions_of_a_token() {
    // 3 bytes/s, refilled every 100 ms for 10 s: exactly 30 tokens.
    let mut b = TokenBucket::new(3, BLOCK_BYTES, ms(0));
    b.take(ms(0), BLOCK_BYTES);
    for i in 1..=100 {
        b.refill(ms(i * 100));
    }
    assert_eq!(b.tokens(), 30);
}

#[test]
fn a_clock_going_back_adds_nothing() {
    let mut b = TokenBucket::new(1000, BLOCK_BYTES, ms(500));
    b.take(ms(500), BLOCK_BYTES);
    b.refill(ms(100));
    assert_eq!(b.tokens(), 0);
}

#[test]
fn take_goes_into_debt_and_ready_waits_for_it() {
    let mut b = TokenBucket::new(10_000, BLOCK_BYTES, ms(0));
    b.take(ms(0), 3 * BLOCK_BYTES);
    assert_eq!(b.tokens(), -2 * BLOCK_BYTES as i64);
    assert!(!b.ready(ms(0)));
    let wait = b.time_until_ready();
    assert_eq!(wait, Duration::from_nanos((2 * BLOCK_BYTES + 1) * 100_000));
    assert!(!b.ready(wait - ms(1)));
    assert!(b.ready(wait));
}

#[test]
fn time_until_n_tokens_is_capped_by_the_burst() {
    let mut b = TokenBucket::new(1000, BLOCK_BYTES, ms(0));
    assert_eq!(b.time_until(10), Duration::ZERO);
    b.take(ms(0), BLOCK_BYTES);
    assert_eq!(b.time_until(500), ms(500));
    assert_eq!(b.time_until(10 * BLOCK_BYTES), b.time_until(BLOCK_BYTES));
}

#[test]
fn rates_and_bursts_are_clamped() {
    let b = TokenBucket::new(0, 0, ms(0));
    assert_eq!(b.rate(), 1);
    assert_eq!(b.burst(), BLOCK_BYTES);
    let b = TokenBucket::new(u64::MAX, u64::MAX, ms(0));
    assert_eq!(b.rate(), RATE_MAX);
    assert_eq!(b.burst(), RATE_MAX);
    let mut b = TokenBucket::new(1, BLOCK_BYTES, ms(0));
    b.take(ms(0), u64::MAX);
    b.take(ms(0), u64::MAX);
    assert_eq!(b.tokens(), -(RATE_MAX as i64));
}

#[test]
fn for_rate_saves_a_tenth_of_a_second_at_least_four_blocks() {
    assert_eq!(TokenBucket::for_rate(10_000_000, ms(0)).burst(), 1_000_000);
    assert_eq!(TokenBucket::for_rate(1000, ms(0)).burst(), BURST_MIN);
}

#[test]
fn set_rate_keeps_what_was_earned_and_changes_the_burst() {
    let mut b = TokenBucket::for_rate(10_000_000, ms(0));
    b.take(ms(0), 1_000_000);
    b.set_rate(ms(50), 1_000_000);
    assert_eq!(
        b.tokens(),
        100_000,
        "500 kB earned, capped by the new burst"
    );
    assert_eq!(b.rate(), 1_000_000);
    b.refill(ms(1050));
    assert_eq!(b.burst(), 100_000);
    assert_eq!(b.tokens(), 100_000);
}

#[test]
fn grants_over_time_follow_the_rate() {
    // Grants of 64 KiB whenever ready, checked every ms for 10 s at 1 MB/s.
    let mut b = TokenBucket::for_rate(1_000_000, ms(0));
    let mut granted = 0u64;
    for i in 0..=10_000 {
        if b.ready(ms(i)) {
            b.take(ms(i), 4 * BLOCK_BYTES);
            granted += 4 * BLOCK_BYTES;
        }
    }
    let expected = 10_000_000 + b.burst();
    assert!(granted >= expected - 4 * BLOCK_BYTES, "{granted}");
    assert!(granted <= expected + 4 * BLOCK_BYTES, "{granted}");
}

#[test]
fn unlimited_limiter_has_no_buckets_and_admits_everything() {
    let mut l = Limiter::new(0, 0, 3, ms(0));
    assert!(l.is_unlimited());
    assert!(!l.is_limited(1));
    for _ in 0..1000 {
        assert!(l.admit(ms(0), 1, u64::MAX));
    }
    assert_eq!(l.wait(ms(0), 1), Duration::ZERO);
    assert_eq!(l.global_rate(), None);
}

#[test]
fn limiter_needs_both_levels_ready() {
    let mut l = Limiter::new(10_000_000, 100_000, 2, ms(0));
    assert!(!l.is_unlimited());
    assert!(l.is_limited(0));
    // Torrent 0 empties its own bucket: it waits, torrent 1 still goes.
    assert!(l.admit(ms(0), 0, 200_000));
    assert!(!l.admit(ms(0), 0, BLOCK_BYTES));
    assert!(l.admit(ms(0), 1, BLOCK_BYTES));
    // The global one empties too: nobody goes.
    l.charge(ms(0), 1, 10_000_000);
    assert!(!l.ready(ms(0), 1));
    let w = l.wait(ms(0), 0);
    assert!(w > Duration::ZERO);
    assert!(l.ready(ms(0) + w + ms(1000), 0));
}

#[test]
fn limiter_global_share_can_change() {
    let mut l = Limiter::new(1_000_000, 0, 1, ms(0));
    assert!(l.has_global());
    l.set_global_rate(ms(0), 250_000);
    assert_eq!(l.global_rate(), Some(250_000));
    let mut none = Limiter::new(0, 5000, 1, ms(0));
    none.set_global_rate(ms(0), 250_000);
    assert_eq!(none.global_rate(), None);
    assert!(none.is_limited(0));
    assert!(!none.is_limited(7), "no such torrent: not limited");
}

#[test]
fn fair_queue_rotates_over_peers() {
    let mut q = FairQueue::new(100);
    for i in 0..5 {
        q.push(0, 1, ('a', i)).unwrap();
    }
    q.push(0, 2, ('b', 0)).unwrap();
    q.push(0, 3, ('c', 0)).unwrap();
    assert!(q.has(0, 1));
    let order: Vec<char> = std::iter::from_fn(|| q.pop(|_| true))
        .map(|(_, _, (c, _))| c)
        .collect();
    assert_eq!(order, vec!['a', 'b', 'c', 'a', 'a', 'a', 'a']);
    assert!(q.is_empty());
    assert!(!q.has(0, 1));
}

#[test]
fn fair_queue_keeps_each_peers_order() {
    let mut q = FairQueue::new(100);
    for i in 0..4 {
        q.push(2, 9, i).unwrap();
    }
    let got: Vec<u32> = std::iter::from_fn(|| q.pop(|_| true))
        .map(|x| x.2)
        .collect();
    assert_eq!(got, vec![0, 1, 2, 3]);
}

#[test]
fn fair_queue_rotates_over_torrents_whatever_their_peer_counts() {
    let mut q = FairQueue::new(1000);
    for p in 0..50 {
        q.push(0, p, 0).unwrap();
    }
    q.push(1, 0, 1).unwrap();
    let first: Vec<usize> = (0..4)
        .filter_map(|_| q.pop(|_| true))
        .map(|x| x.0)
        .collect();
    assert_eq!(first, vec![0, 1, 0, 0]);
}

#[test]
fn fair_queue_skips_torrents_that_are_not_ready() {
    let mut q = FairQueue::new(100);
    q.push(0, 1, 'x').unwrap();
    q.push(1, 1, 'y').unwrap();
    let mut asked = Vec::new();
    let got = q.pop(|t| {
        asked.push(t);
        t == 1
    });
    assert_eq!(got, Some((1, 1, 'y')));
    assert_eq!(asked, vec![0, 1]);
    assert_eq!(q.pop(|_| false), None);
    assert_eq!(q.len(), 1);
    assert_eq!(q.torrents().collect::<Vec<_>>(), vec![0]);
}

#[test]
fn fair_queue_is_bounded() {
    let mut q = FairQueue::new(2);
    q.push(0, 0, 1).unwrap();
    q.push(0, 1, 2).unwrap();
    let (e, item) = q.push(0, 2, 3).unwrap_err();
    assert_eq!(item, 3);
    assert_eq!(e, QueueFull { held: 2, max: 2 });
}

#[test]
fn fair_queue_remove_peer_takes_its_items() {
    let mut q = FairQueue::new(100);
    q.push(0, 1, 'a').unwrap();
    q.push(0, 1, 'b').unwrap();
    q.push(0, 2, 'c').unwrap();
    assert_eq!(q.remove_peer(0, 1), vec!['a', 'b']);
    assert_eq!(q.remove_peer(0, 1), Vec::<char>::new());
    assert_eq!(q.len(), 1);
    assert_eq!(q.pop(|_| true), Some((0, 2, 'c')));
    q.push(3, 1, 'd').unwrap();
    q.remove_peer(3, 1);
    assert_eq!(q.torrents().count(), 0);
}

/// Many peers share a limit: served round-robin with one block per turn,
/// each gets its share within one block, and a peer that asks for one block
/// at a time (a slow one) among greedy ones still gets every block it asks.
#[test]
fn many_peers_share_a_limit_fairly_and_a_slow_peer_still_gets_blocks() {
    const PEERS: u64 = 40;
    let mut limiter = Limiter::new(0, 2_000_000, 1, ms(0));
    let mut q: FairQueue<u64> = FairQueue::new(10_000);
    let mut got = vec![0u64; PEERS as usize];
    let mut slow_asks = 0u64;
    let mut slow_waiting = false;
    for tick in 0..5000u64 {
        let now = ms(tick);
        // Greedy peers keep four blocks queued; peer 0 asks one block every
        // 200 ms and only when the previous one was served.
        for p in 1..PEERS {
            while q.items.get(&(0, p)).map_or(0, VecDeque::len) < 4 {
                q.push(0, p, p).unwrap();
            }
        }
        if tick % 200 == 0 && !slow_waiting {
            q.push(0, 0, 0).unwrap();
            slow_asks += 1;
            slow_waiting = true;
        }
        while let Some((_, p, _)) = q.pop(|t| limiter.ready(now, t)) {
            limiter.charge(now, 0, BLOCK_BYTES);
            got[p as usize] += 1;
            if p == 0 {
                slow_waiting = false;
            }
        }
    }
    let total: u64 = got.iter().sum::<u64>() * BLOCK_BYTES;
    assert!(total <= 10_000_000 + 300_000, "{total}");
    assert!(total >= 10_000_000 - 300_000, "{total}");
    let greedy = &got[1..];
    let (lo, hi) = (greedy.iter().min().unwrap(), greedy.iter().max().unwrap());
    assert!(hi - lo <= 1, "greedy peers within one block: {lo}..{hi}");
    assert!(
        got[0] + 1 >= slow_asks,
        "slow peer: {} of {slow_asks}",
        got[0]
    );
}

#[test]
fn a_torrent_limit_set_later_grows_the_table_and_zero_removes_it() {
    let now = Duration::ZERO;
    let mut l = Limiter::new(0, 0, 0, now);
    assert!(l.is_unlimited());
    l.set_torrent_rate(now, 5, 0);
    assert!(l.is_unlimited(), "0 on a missing slot adds nothing");
    l.set_torrent_rate(now, 5, 1000);
    assert_eq!(l.torrent_rate(5), Some(1000));
    assert!(l.is_limited(5) && !l.is_limited(4) && !l.is_limited(6));
    l.set_torrent_rate(now, 5, 0);
    assert_eq!(l.torrent_rate(5), None);
    assert!(l.is_unlimited());
}

#[test]
fn removing_a_torrent_takes_all_its_items_and_keeps_the_others_in_turn() {
    let mut q: FairQueue<u32> = FairQueue::new(100);
    q.push(1, 10, 1).unwrap();
    q.push(2, 20, 2).unwrap();
    q.push(1, 11, 3).unwrap();
    q.push(1, 10, 4).unwrap();
    q.push(3, 30, 5).unwrap();
    let mut gone = q.remove_torrent(1);
    gone.sort_unstable();
    assert_eq!(gone, vec![1, 3, 4]);
    assert_eq!(q.len(), 2);
    assert!(!q.has(1, 10));
    assert_eq!(q.torrents().collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(q.pop(|_| true).map(|x| x.2), Some(2));
    assert_eq!(q.pop(|_| true).map(|x| x.2), Some(5));
    assert!(q.is_empty());
    assert!(q.remove_torrent(9).is_empty());
}
