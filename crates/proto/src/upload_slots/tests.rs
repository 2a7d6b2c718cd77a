//! Tests of [`UploadSlots`]: the round as a whole.

use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn cand(peer: u64, from: u64, to: u64) -> SlotCandidate {
    SlotCandidate {
        peer,
        interested: true,
        rate_from_peer: from,
        rate_to_peer: to,
        ..SlotCandidate::default()
    }
}

fn with(f: impl FnOnce(&mut SlotSettings)) -> UploadSlots {
    let mut s = SlotSettings::default();
    f(&mut s);
    match UploadSlots::new(s, 7) {
        Ok(s) => s,
        Err(e) => panic!("settings refused: {e}"),
    }
}

fn fixed(slots: usize, optimistic: usize) -> UploadSlots {
    with(|s| {
        s.slots = SlotLimit::Fixed(slots);
        s.optimistic = Some(optimistic);
    })
}

fn round(now: Duration, seeding: bool) -> Round {
    Round::new(now, seeding, 16 * 1024, 100)
}

#[test]
fn bad_settings_are_refused() {
    let r = UploadSlots::new(
        SlotSettings {
            newcomer_weight: 0,
            ..SlotSettings::default()
        },
        1,
    );
    assert!(matches!(
        r,
        Err(SlotsError::OutOfRange {
            name: "newcomer_weight",
            ..
        })
    ));
}

#[test]
fn seeding_fastest_ranks_by_rate_to_peer() {
    let mut s = fixed(3, 0);
    let cands: Vec<_> = (0..10).map(|i| cand(i, 1000 - i, i * 100)).collect();
    let mut out = Vec::new();
    s.rechoke(&round(S(0), true), &cands, &mut out);
    assert_eq!(out, vec![9, 8, 7]);
}

#[test]
fn downloading_is_tit_for_tat_snubbed_last() {
    let mut s = fixed(3, 0);
    let now = S(1000);
    let mut cands: Vec<_> = (0..10).map(|i| cand(i, i * 100, 1000 - i)).collect();
    for c in cands.iter_mut().filter(|c| c.peer >= 8) {
        c.waiting_since = Some(now - S(60));
    }
    // Asking, but not for long enough: not snubbed.
    cands[7].waiting_since = Some(now - S(59));
    let mut out = Vec::new();
    s.rechoke(&round(now, false), &cands, &mut out);
    assert_eq!(out, vec![7, 6, 5]);
}

#[test]
fn priority_ranks_first() {
    let mut s = fixed(2, 0);
    let mut cands: Vec<_> = (0..10).map(|i| cand(i, 0, i * 100)).collect();
    cands[1].priority = 1;
    let mut out = Vec::new();
    s.rechoke(&round(S(0), true), &cands, &mut out);
    assert_eq!(out, vec![1, 9]);
}

#[test]
fn anti_leech_favours_starters_and_finishers() {
    let mut s = with(|s| {
        s.slots = SlotLimit::Fixed(2);
        s.optimistic = Some(0);
        s.seed_choking = SeedChoking::AntiLeech;
    });
    let cands: Vec<_> = (0..=10)
        .map(|i| SlotCandidate {
            pieces_have: (i * 10) as u32,
            ..cand(i, 0, 1_000_000 - i)
        })
        .collect();
    let mut out = Vec::new();
    s.rechoke(&round(S(0), true), &cands, &mut out);
    // 0 % and 100 % first; the faster of the two first.
    assert_eq!(out, vec![0, 10]);
}

#[test]
fn round_robin_rotates_finished_turns() {
    let mut s = with(|s| {
        s.slots = SlotLimit::Fixed(1);
        s.optimistic = Some(0);
        s.seed_choking = SeedChoking::RoundRobin;
    });
    let now = S(1000);
    let mut cands = vec![
        SlotCandidate {
            unchoked: true,
            choke_changed_at: now - S(30),
            bytes_sent_since_unchoke: 1 << 30,
            ..cand(0, 0, 1 << 20)
        },
        SlotCandidate {
            choke_changed_at: now - S(500),
            ..cand(1, 0, 0)
        },
        SlotCandidate {
            choke_changed_at: now - S(100),
            ..cand(2, 0, 0)
        },
    ];
    let mut out = Vec::new();
    s.rechoke(&round(now, true), &cands, &mut out);
    assert_eq!(out, vec![0], "under a minute: the holder keeps its turn");
    cands[0].choke_changed_at = now - S(61);
    s.rechoke(&round(now, true), &cands, &mut out);
    assert_eq!(out, vec![1], "turn over: the longest waiting peer");
}

#[test]
fn unlimited_unchokes_every_interested_peer() {
    let mut s = with(|s| s.slots = SlotLimit::Unlimited);
    let mut cands: Vec<_> = (0..500).map(|i| cand(i, i, i)).collect();
    for c in cands.iter_mut().filter(|c| c.peer % 3 == 0) {
        c.interested = false;
    }
    let mut out = Vec::new();
    s.rechoke(&round(S(0), true), &cands, &mut out);
    out.sort_unstable();
    let want: Vec<u64> = (0..500).filter(|p| p % 3 != 0).collect();
    assert_eq!(out, want);
    assert!(s.optimistic_peers().is_empty());
    assert_eq!(s.room(None), usize::MAX);
    assert_eq!(s.slot_limit(), None);
    // A quota caps even unlimited, and adds an optimistic slot.
    let mut r = round(S(10), true);
    r.quota = Some(5);
    s.rechoke(&r, &cands, &mut out);
    assert_eq!(out.len(), 6);
    assert_eq!(s.room(Some(5)), 6);
}

#[test]
fn quota_caps_regular_slots_but_never_below_one() {
    let mut s = with(|s| s.slots = SlotLimit::Fixed(8));
    let cands: Vec<_> = (0..50).map(|i| cand(i, 0, i)).collect();
    let mut out = Vec::new();
    let mut r = round(S(0), true);
    r.quota = Some(3);
    s.rechoke(&r, &cands, &mut out);
    assert_eq!(out[..3], [49, 48, 47]);
    assert_eq!(out.len(), 4, "3 regular + max(1, 3 / 5) optimistic");
    r.quota = Some(0);
    r.now = S(10);
    s.rechoke(&r, &cands, &mut out);
    assert_eq!(out[0], 49);
    assert_eq!(out.len(), 2, "quota 0 still leaves one regular slot");
    // A quota above the setting changes nothing.
    r.quota = Some(100);
    s.rechoke(&r, &cands, &mut out);
    assert_eq!(out.len(), 8 + 1);
    assert_eq!(s.regular_slots(Some(0), 10), 1);
    assert_eq!(s.regular_slots(Some(0), 0), 0);
    assert_eq!(s.regular_slots(None, 5), 5);
    assert_eq!(s.regular_slots(None, 50), 8);
}

#[test]
fn rate_based_count_grows_with_fast_unchoked_peers() {
    let mut s = with(|s| {
        s.slots = SlotLimit::RateBased;
        s.optimistic = Some(0);
    });
    let mut cands: Vec<_> = (0..100).map(|i| cand(i, 0, 0)).collect();
    let mut out = Vec::new();
    s.rechoke(&round(S(0), true), &cands, &mut out);
    assert_eq!(out.len(), 1, "starts at one slot");
    // Ten unchoked peers at 1 MB/s each: all beat the rising threshold.
    for c in cands.iter_mut().take(10) {
        c.unchoked = true;
        c.rate_to_peer = 1_000_000;
    }
    s.rechoke(&round(S(10), true), &cands, &mut out);
    assert_eq!(out.len(), 11);
    assert_eq!(s.slot_limit(), Some(11));
}

#[test]
fn uninterested_never_chosen_and_count_bounded() {
    let mut s = fixed(4, 2);
    let mut cands: Vec<_> = (0..50).map(|i| cand(i, i, i)).collect();
    for c in cands.iter_mut().filter(|c| c.peer % 2 == 1) {
        c.interested = false;
    }
    let mut out = vec![999, 998];
    for r in 0..40u64 {
        s.rechoke(&round(S(r * 10), r % 2 == 0), &cands, &mut out);
        assert_eq!(out.len(), 6, "round {r}: {out:?}");
        assert!(out.iter().all(|p| p % 2 == 0), "round {r}: {out:?}");
        let mut sorted = out.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), out.len(), "listed twice: {out:?}");
    }
    for c in cands.iter_mut() {
        c.interested = false;
    }
    s.rechoke(&round(S(1000), true), &cands, &mut out);
    assert!(out.is_empty());
    assert!(s.optimistic_peers().is_empty());
}

#[test]
fn zero_slots_means_only_optimistic() {
    let mut s = fixed(0, 1);
    let cands: Vec<_> = (0..10).map(|i| cand(i, i, i)).collect();
    let mut out = Vec::new();
    s.rechoke(&round(S(0), true), &cands, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out, s.optimistic_peers());
}

#[test]
fn next_rechoke_follows_interval() {
    let mut s = fixed(4, 1);
    assert_eq!(s.next_rechoke(), S(0));
    let mut out = Vec::new();
    s.rechoke(&round(S(5), true), &[], &mut out);
    assert_eq!(s.next_rechoke(), S(15));
    s.rechoke(&round(Duration::MAX, true), &[], &mut out);
    assert_eq!(s.next_rechoke(), Duration::MAX);
}

#[test]
fn optimistic_kept_between_rounds_and_never_a_regular_peer() {
    let mut s = fixed(1, 1);
    let mut cands: Vec<_> = (0..21).map(|i| cand(i, 0, 0)).collect();
    cands[0].rate_to_peer = 1_000_000;
    let mut out = Vec::new();
    let mut holders = Vec::new();
    for period in 0..30u64 {
        let start = period * 30;
        s.rechoke(&round(S(start), true), &cands, &mut out);
        let held = s.optimistic_peers().to_vec();
        assert_eq!(held.len(), 1);
        assert_eq!(out[0], 0);
        assert_eq!(out.get(1), held.first());
        for offset in [10, 20] {
            s.rechoke(&round(S(start + offset), true), &cands, &mut out);
            assert_eq!(s.optimistic_peers(), held.as_slice(), "period {period}");
        }
        holders.extend(held);
    }
    holders.sort_unstable();
    holders.dedup();
    assert!(holders.len() >= 8, "only {holders:?} drawn");
    // The holder becomes the fastest taker: it moves to the regular slot
    // and someone else gets the optimistic one.
    let held = s.optimistic_peers()[0];
    for c in cands.iter_mut() {
        c.rate_to_peer = if c.peer == held { 5_000_000 } else { 0 };
    }
    s.rechoke(&round(S(905), true), &cands, &mut out);
    assert_eq!(out[0], held);
    assert_eq!(out.len(), 2);
    assert_ne!(out[1], held);
}

#[test]
fn ties_rotate_between_rounds() {
    let mut s = fixed(2, 0);
    let cands: Vec<_> = (0..10).map(|i| cand(i, 0, 0)).collect();
    let mut out = Vec::new();
    let mut seen = [false; 10];
    for r in 0..50u64 {
        s.rechoke(&round(S(r * 10), true), &cands, &mut out);
        for &p in &out {
            seen[p as usize] = true;
        }
    }
    assert!(seen.iter().all(|&x| x), "{seen:?}");
}

#[test]
fn ten_thousand_candidates_top_four_exact() {
    let mut rng = Rng::new(3);
    let cands: Vec<_> = (0..10_000u64)
        .map(|i| SlotCandidate {
            interested: rng.below(4) != 0,
            connected_at: S(rng.below(1000)),
            ..cand(i, rng.below(1 << 20), rng.below(1 << 20))
        })
        .collect();
    let mut d = with(|_| {});
    let mut out = Vec::new();
    d.rechoke(&round(S(0), true), &cands, &mut out);
    assert_eq!(out.len(), 5);
    let mut rates: Vec<_> = cands
        .iter()
        .filter(|c| c.interested)
        .map(|c| c.rate_to_peer)
        .collect();
    rates.sort_unstable_by(|a, b| b.cmp(a));
    let chosen: Vec<_> = out[..4]
        .iter()
        .map(|&p| cands[p as usize].rate_to_peer)
        .collect();
    assert_eq!(chosen, rates[..4]);
    assert!(cands[out[4] as usize].interested);
}

#[test]
fn candidates_past_the_limit_are_ignored() {
    let mut s = fixed(1, 0);
    let mut cands: Vec<_> = (0..CANDIDATES_MAX as u64 + 1)
        .map(|i| cand(i, 0, 1))
        .collect();
    if let Some(last) = cands.last_mut() {
        last.rate_to_peer = u64::MAX;
    }
    let mut out = Vec::new();
    s.rechoke(&round(S(0), true), &cands, &mut out);
    assert_eq!(out.len(), 1);
    assert_ne!(out[0], CANDIDATES_MAX as u64);
}

#[test]
fn no_allocation_once_warm() {
    let mut s = with(|_| {});
    let cands: Vec<_> = (0..1000).map(|i| cand(i, i, i)).collect();
    let mut out = Vec::with_capacity(16);
    s.rechoke(&round(S(0), true), &cands, &mut out);
    let (keys, rates, holders) = (
        s.keys.capacity(),
        s.rates.capacity(),
        s.optimistic_peers().as_ptr(),
    );
    for r in 1..20u64 {
        s.rechoke(&round(S(r * 10), r % 2 == 0), &cands, &mut out);
    }
    assert_eq!(s.keys.capacity(), keys);
    assert_eq!(s.rates.capacity(), rates);
    assert_eq!(s.optimistic_peers().as_ptr(), holders);
    assert_eq!(out.capacity(), 16);
}
