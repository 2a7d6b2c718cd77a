//! `AnnounceSchedule`: when one torrent announces, and with which event.
//!
//! `started` first (retried until a tracker answers), `completed` once when
//! the download finishes after a `started`, regular announces at the
//! tracker's interval (never below its minimum), failures retried with a
//! doubling delay. At most one announce is in flight. [`AnnounceSchedule::stop`]
//! says what stopping still owes the trackers, in order: `completed` if the
//! download finished and no tracker has taken it yet (and it is not in
//! flight), then `stopped`; neither needs an answer.

use std::time::Duration;

use crate::tracker::Event;

/// The announces stopping still owes, in this order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StopAnnounces {
    pub completed: bool,
    pub stopped: bool,
}

/// One torrent's announce timing.
#[derive(Debug, Clone)]
pub struct AnnounceSchedule {
    enabled: bool,
    next_at: Duration,
    in_flight: bool,
    started_done: bool,
    completed_due: bool,
    /// The announce in flight is the `completed` one.
    completed_in_flight: bool,
    failures: u32,
    retry_min: Duration,
    retry_max: Duration,
    last_error: Option<String>,
    stopped: bool,
}

impl AnnounceSchedule {
    /// `enabled`: the torrent has trackers. The first announce is due at `now`.
    pub fn new(enabled: bool, now: Duration, retry_min: Duration, retry_max: Duration) -> Self {
        Self {
            enabled,
            next_at: now,
            in_flight: false,
            started_done: false,
            completed_due: false,
            completed_in_flight: false,
            failures: 0,
            retry_min,
            retry_max,
            last_error: None,
            stopped: false,
        }
    }

    /// If an announce is due at `now`, marks it in flight and returns its
    /// event (`None` inside means a regular announce).
    pub fn due(&mut self, now: Duration) -> Option<Option<Event>> {
        if !self.enabled || self.stopped || self.in_flight || now < self.next_at {
            return None;
        }
        self.in_flight = true;
        let event = if !self.started_done {
            Some(Event::Started)
        } else if self.completed_due {
            Some(Event::Completed)
        } else {
            None
        };
        self.completed_in_flight = event == Some(Event::Completed);
        Some(event)
    }

    /// A tracker answered; the next regular announce is `next_in` away.
    pub fn on_success(&mut self, now: Duration, event: Option<Event>, next_in: Duration) {
        self.in_flight = false;
        self.completed_in_flight = false;
        self.failures = 0;
        self.last_error = None;
        match event {
            Some(Event::Started) => self.started_done = true,
            Some(Event::Completed) => self.completed_due = false,
            _ => {}
        }
        self.next_at = now.saturating_add(next_in);
        if self.completed_due {
            self.next_at = now;
        }
    }

    /// Every tracker failed; retry later with the same event.
    pub fn on_failure(&mut self, now: Duration, message: String) {
        self.in_flight = false;
        self.completed_in_flight = false;
        self.failures = self.failures.saturating_add(1);
        let shift = self.failures.saturating_sub(1).min(16);
        let wait = self
            .retry_min
            .saturating_mul(1u32 << shift)
            .min(self.retry_max);
        self.next_at = now.saturating_add(wait);
        self.last_error = Some(message);
    }

    /// The download finished: announce `completed` now (only if `started`
    /// was announced while incomplete, which is the case for any torrent
    /// that downloads).
    pub fn completed(&mut self, now: Duration) {
        if self.enabled && self.started_done {
            self.completed_due = true;
            if !self.in_flight {
                self.next_at = now;
            }
        }
    }

    /// Stops announcing; returns what is still owed to the trackers, to be
    /// sent in order: `completed` when the download finished and no tracker
    /// has taken that yet (one in flight counts as sent: it goes first),
    /// then `stopped` when a `started` reached a tracker or one is in flight.
    pub fn stop(&mut self) -> StopAnnounces {
        if !self.enabled || self.stopped {
            self.stopped = true;
            return StopAnnounces::default();
        }
        self.stopped = true;
        StopAnnounces {
            completed: self.completed_due && !self.completed_in_flight,
            stopped: self.started_done || self.in_flight,
        }
    }

    /// Asks for an announce now (a "force reannounce"): the next one, with
    /// whatever event is owed, is due at `now`. One in flight is not
    /// doubled: this returns false and changes nothing (its answer sets the
    /// next time as usual). False too when there are no trackers or the
    /// torrent stopped. A failure back-off is cut short, its count kept.
    pub fn reannounce(&mut self, now: Duration) -> bool {
        if !self.enabled || self.stopped || self.in_flight {
            return false;
        }
        self.next_at = self.next_at.min(now);
        true
    }

    /// The last failure, until a tracker answers again.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// When the next announce is due (for the tick), if any.
    pub fn next_at(&self) -> Option<Duration> {
        (self.enabled && !self.stopped && !self.in_flight).then_some(self.next_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn sched() -> AnnounceSchedule {
        AnnounceSchedule::new(true, Duration::ZERO, 15 * S, 60 * S)
    }

    #[test]
    fn started_then_regular_at_the_interval() {
        let mut a = sched();
        assert_eq!(a.due(Duration::ZERO), Some(Some(Event::Started)));
        assert_eq!(a.due(Duration::ZERO), None, "one in flight");
        a.on_success(S, Some(Event::Started), 100 * S);
        assert_eq!(a.due(50 * S), None);
        assert_eq!(a.due(101 * S), Some(None));
    }

    #[test]
    fn failures_back_off_and_keep_the_event() {
        let mut a = sched();
        a.due(Duration::ZERO);
        a.on_failure(Duration::ZERO, "refused".into());
        assert_eq!(a.last_error(), Some("refused"));
        assert_eq!(a.due(14 * S), None);
        assert_eq!(a.due(15 * S), Some(Some(Event::Started)));
        a.on_failure(15 * S, "again".into());
        assert_eq!(a.due(44 * S), None);
        assert_eq!(a.due(45 * S), Some(Some(Event::Started)));
        for _ in 0..40 {
            a.on_failure(Duration::ZERO, "x".into());
            a.in_flight = false;
        }
        assert_eq!(a.next_at(), Some(60 * S), "capped");
    }

    #[test]
    fn completed_once_after_started() {
        let mut a = sched();
        a.due(Duration::ZERO);
        a.on_success(S, Some(Event::Started), 1000 * S);
        a.completed(5 * S);
        assert_eq!(a.due(5 * S), Some(Some(Event::Completed)));
        a.on_success(6 * S, Some(Event::Completed), 1000 * S);
        assert_eq!(a.due(7 * S), None);
        assert_eq!(a.due(1006 * S), Some(None));
    }

    const STOPPED: StopAnnounces = StopAnnounces {
        completed: false,
        stopped: true,
    };
    const BOTH: StopAnnounces = StopAnnounces {
        completed: true,
        stopped: true,
    };

    #[test]
    fn stop_sends_stopped_only_after_a_start() {
        let mut fresh = sched();
        assert_eq!(fresh.stop(), StopAnnounces::default());
        let mut a = sched();
        a.due(Duration::ZERO);
        assert_eq!(a.stop(), STOPPED, "a started announce is in flight");
        assert_eq!(a.due(1000 * S), None);
        assert_eq!(a.stop(), StopAnnounces::default(), "once");
        let mut off = AnnounceSchedule::new(false, Duration::ZERO, S, S);
        assert_eq!(off.due(Duration::ZERO), None);
        assert_eq!(off.stop(), StopAnnounces::default());
    }

    #[test]
    fn stopping_right_after_finishing_owes_completed_then_stopped() {
        let mut a = sched();
        a.due(Duration::ZERO);
        a.on_success(S, Some(Event::Started), 1000 * S);
        a.completed(5 * S);
        // Stopped before the tick that would have sent `completed`.
        assert_eq!(a.stop(), BOTH);
    }

    #[test]
    fn a_completed_in_flight_or_taken_is_not_owed_again() {
        let mut a = sched();
        a.due(Duration::ZERO);
        a.on_success(S, Some(Event::Started), 1000 * S);
        a.completed(5 * S);
        assert_eq!(a.due(5 * S), Some(Some(Event::Completed)));
        assert_eq!(a.stop(), STOPPED, "completed is in flight: it goes first");
        let mut b = sched();
        b.due(Duration::ZERO);
        b.on_success(S, Some(Event::Started), 1000 * S);
        b.completed(5 * S);
        b.due(5 * S);
        b.on_success(6 * S, Some(Event::Completed), 1000 * S);
        assert_eq!(b.stop(), STOPPED);
        // A failed `completed` is owed again.
        let mut c = sched();
        c.due(Duration::ZERO);
        c.on_success(S, Some(Event::Started), 1000 * S);
        c.completed(5 * S);
        c.due(5 * S);
        c.on_failure(6 * S, "down".into());
        assert_eq!(c.stop(), BOTH);
    }

    #[test]
    fn reannounce_is_due_at_once_but_never_doubles_one_in_flight() {
        let mut a = sched();
        assert_eq!(a.due(Duration::ZERO), Some(Some(Event::Started)));
        assert!(!a.reannounce(S), "started is in flight");
        assert_eq!(a.due(S), None);
        a.on_success(S, Some(Event::Started), 1800 * S);
        assert_eq!(a.due(2 * S), None, "next regular one is far");
        assert!(a.reannounce(2 * S));
        assert_eq!(a.due(2 * S), Some(None), "a regular announce, now");
        assert!(!a.reannounce(3 * S), "in flight");
        assert_eq!(a.due(3 * S), None);
        // After failures: the back-off is cut short, the event kept.
        let mut b = sched();
        b.due(Duration::ZERO);
        b.on_failure(Duration::ZERO, "down".into());
        assert_eq!(b.due(S), None);
        assert!(b.reannounce(S));
        assert_eq!(b.due(S), Some(Some(Event::Started)));
        // No trackers, or stopped: nothing.
        let mut off = AnnounceSchedule::new(false, Duration::ZERO, S, S);
        assert!(!off.reannounce(S));
        let mut c = sched();
        c.stop();
        assert!(!c.reannounce(S));
        assert_eq!(c.due(S), None);
    }

    #[test]
    fn finishing_while_a_regular_announce_is_in_flight_still_owes_completed() {
        let mut a = sched();
        a.due(Duration::ZERO);
        a.on_success(S, Some(Event::Started), 10 * S);
        assert_eq!(a.due(11 * S), Some(None));
        a.completed(12 * S);
        assert_eq!(a.stop(), BOTH);
    }
}
