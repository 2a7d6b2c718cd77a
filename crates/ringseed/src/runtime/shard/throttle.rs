//! Work waiting its turn: receives and sends deferred for want of a
//! buffer or a ring slot, reads waiting for a pool buffer, and, under rate
//! limits, reads waiting for upload tokens and peers waiting for download
//! tokens. Each turn gives what came back (buffers, tokens) out in
//! round-robin order; the loop's wait is bounded by when tokens return, so
//! nothing spins.
//!
//! Upload limit: before a block read starts (the read is the first step of
//! sending), the shard asks the upload limiter for the read's wire bytes;
//! without tokens the job waits in `throttled_reads`, holding no buffer.

use std::time::Duration;

use super::conn::ConnState;
use super::disk_read::ReadJob;
use super::recv::conn_key;
use super::Shard;

impl Shard {
    pub(super) fn run_deferred(&mut self) {
        for _ in 0..self.deferred_recv.len() {
            let Some(id) = self.deferred_recv.pop_front() else {
                break;
            };
            let multishot = self.conns.get(id).is_some_and(|c| self.recv_multishot(c));
            if !multishot && self.ev.buffer_pool().available() == 0 {
                self.deferred_recv.push_front(id);
                break;
            }
            self.start_recv(id);
        }
        for _ in 0..self.deferred_send.len() {
            let Some(id) = self.deferred_send.pop_front() else {
                break;
            };
            self.try_send(id);
        }
        while self.ev.buffer_pool().available() > 0 {
            let Some((_, _, r)) = self.deferred_reads.pop(|_| true) else {
                break;
            };
            self.read_now(r);
        }
        self.run_throttled();
    }

    /// Reports demand and takes this shard's share of the global budgets,
    /// when a round is due (see `limits`).
    pub(super) fn quota_round(&mut self) {
        let now = self.now;
        if self.limits.due(now) {
            let mut engines = self.torrents.engines_mut();
            self.limits.round(now, &mut engines);
        }
    }

    /// When tokens return for someone waiting, or the next quota round is
    /// due; `None` when nobody waits and there is no global budget.
    pub(super) fn limits_wake(&mut self, now: Duration) -> Option<Duration> {
        let mut at = self.limits.next_round();
        let mut earliest = |t: Option<Duration>| {
            if let Some(t) = t {
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        };
        for t in self.throttled_reads.torrents() {
            earliest(Some(now + self.limits.up.wait(now, t)));
        }
        for t in self.throttled_recv.torrents() {
            earliest(Some(now + self.limits.down.wait(now, t)));
        }
        at
    }

    /// Starts a read now if its torrent is unlimited or its tokens allow;
    /// else it waits its turn in `throttled_reads`.
    pub(super) fn admit_read(&mut self, job: ReadJob) {
        let t = job.torrent.slot as usize;
        if !self.limits.up.is_limited(t) {
            self.start_read(job);
            return;
        }
        let key = conn_key(job.conn);
        let now = self.now;
        let bytes = job.wire_bytes();
        if !self.throttled_reads.has(t, key) && self.limits.up.admit(now, t, bytes) {
            self.start_read(job);
            return;
        }
        if let Err((_, job)) = self.throttled_reads.push(t, key, job) {
            // The queue is full (far past any real load): send unthrottled.
            self.limits.up.charge(now, t, bytes);
            self.start_read(job);
        }
    }

    /// Gives returned tokens to those waiting, round-robin.
    fn run_throttled(&mut self) {
        if self.throttled_reads.is_empty() && self.throttled_recv.is_empty() {
            return;
        }
        let now = self.now;
        loop {
            let up = &mut self.limits.up;
            let Some((t, _, job)) = self.throttled_reads.pop(|t| up.ready(now, t)) else {
                break;
            };
            let alive = self
                .conns
                .get(job.conn)
                .is_some_and(|c| c.state != ConnState::Closing);
            if alive {
                self.limits.up.charge(now, t, job.wire_bytes());
                self.start_read(job);
            }
        }
        loop {
            let down = &mut self.limits.down;
            let Some((_, _, id)) = self.throttled_recv.pop(|t| down.ready(now, t)) else {
                break;
            };
            self.start_recv(id);
        }
    }
}
