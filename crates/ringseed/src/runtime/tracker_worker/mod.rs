//! The tracker worker: a fixed pool of control threads that run announces for
//! the shards, so that no shard ever blocks on the network.
//!
//! Boundary: a shard hands a [`TrackerJob`] to a [`TrackerHandle`] and gets a
//! [`TrackerReply`] on the job's own channel (then its `wake` is called). This
//! module owns the threads, the bounded job queue and the shutdown; which URLs
//! to try in which order is [`tiers`], one announce to one URL is [`attempt`].
//!
//! Rules, decided on purpose:
//! - [`TrackerWorkerConfig::threads`] threads (1 to [`THREADS_MAX`]) read one
//!   bounded queue of [`TrackerWorkerConfig::queue_max`] jobs; a full queue or
//!   a stopped worker gives the job back at once ([`TrackerHandle::submit`]);
//! - a job tries its tiers in order and the URLs of a tier in order, URLs that
//!   answered before first (BEP 12, see [`tiers`]); the first answer wins and
//!   its URL is remembered. A tracker's `failure reason` does not stop the
//!   search (as libtorrent does, the next tracker is tried), but when no
//!   tracker answers with peers, the reply is the last refusal, in the
//!   tracker's words, if there was one, else the last error;
//! - jobs of one token (one torrent) run one at a time, in the order they
//!   were submitted: a torrent's `completed` then `stopped` reach the tracker
//!   in that order, and never before an announce of it already running. A job
//!   whose token has one queued or running waits behind it (at most
//!   `queue_max` such jobs wait in all); the thread that ran the earlier job
//!   runs it next;
//! - each attempt is bounded by [`TrackerWorkerConfig::timeout`] (plus name
//!   resolution, which the system cannot interrupt);
//! - [`TrackerWorker::shutdown`] stops taking jobs, lets queued and running
//!   jobs (the `stopped` announces) finish until its deadline, then answers
//!   the jobs still queued with a failure, tells running UDP attempts to stop,
//!   and returns without waiting for threads stuck in the network (they exit
//!   on their own within one attempt's timeout).

pub mod attempt;
#[cfg(test)]
mod tests;
pub mod tiers;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};

use crate::rng::Rng;
use crate::runtime::sockets::BindOptions;
use crate::tracker::{scrub, AnnounceRequest, AnnounceResponse, Redacted};
use attempt::{AttemptContext, AttemptError};
use tiers::{plan, TierMemory};

/// Most announce threads.
pub const THREADS_MAX: usize = 64;
/// Most jobs a queue may be configured to hold.
pub const QUEUE_MAX_LIMIT: usize = 1 << 20;
/// Longest per-attempt timeout accepted.
pub const TIMEOUT_MAX: Duration = Duration::from_secs(300);
/// Default number of announce threads.
pub const DEFAULT_THREADS: usize = 4;
/// Default queue depth, in jobs.
pub const DEFAULT_QUEUE_MAX: usize = 1024;
/// Default per-attempt timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a thread waits for room in a caller's full reply channel before
/// dropping the reply (shutdown never waits).
pub const REPLY_SEND_WAIT: Duration = Duration::from_secs(1);

/// How the worker runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerWorkerConfig {
    /// Interface and local address for every tracker socket (HTTP and UDP).
    pub bind: BindOptions,
    /// Announces run at once: 1 to [`THREADS_MAX`].
    pub threads: usize,
    /// Jobs waiting to run: 1 to [`QUEUE_MAX_LIMIT`].
    pub queue_max: usize,
    /// For one attempt at one tracker: more than zero, at most [`TIMEOUT_MAX`].
    pub timeout: Duration,
}

impl Default for TrackerWorkerConfig {
    fn default() -> Self {
        TrackerWorkerConfig {
            bind: BindOptions::default(),
            threads: DEFAULT_THREADS,
            queue_max: DEFAULT_QUEUE_MAX,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// One announce to run.
pub struct TrackerJob {
    /// The caller's id, echoed in the reply.
    pub token: u64,
    /// Announce-list tiers (BEP 12), or one tier holding `announce`.
    pub tiers: Vec<Vec<String>>,
    pub request: AnnounceRequest,
    /// Where the reply goes: unbounded, or with room for every job in flight
    /// (a reply that finds it full for [`REPLY_SEND_WAIT`] is dropped).
    pub reply: Sender<TrackerReply>,
    /// Called after the reply was sent (wakes a shard's ring); must be quick.
    pub wake: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl fmt::Debug for TrackerJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackerJob")
            .field("token", &self.token)
            // Redacted: a Debug print must not leak a passkey either.
            .field(
                "tiers",
                &self
                    .tiers
                    .iter()
                    .map(|t| t.iter().map(|u| Redacted(u)).collect::<Vec<_>>())
                    .collect::<Vec<_>>(),
            )
            .field("request", &self.request)
            .field("wake", &self.wake.is_some())
            .finish_non_exhaustive()
    }
}

/// The outcome of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerReply {
    pub token: u64,
    /// The tracker that answered (or the one whose failure is reported);
    /// `None` when no URL was tried.
    pub url: Option<String>,
    pub outcome: Result<AnnounceResponse, TrackerFailure>,
}

/// Why a job got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerFailure {
    /// The tracker the message is about ("" when no URL was tried).
    pub url: String,
    /// Names the tracker (its URL redacted: no passkey or query value, see
    /// `tracker::redact`); holds its `failure reason` (sanitised, secrets of
    /// the URL hidden) when it refused, else the transport error. Safe to log.
    pub message: String,
}

impl fmt::Display for TrackerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum TrackerWorkerError {
    #[error("tracker threads: {found} is outside 1..={THREADS_MAX}")]
    Threads { found: usize },
    #[error("tracker queue: {found} jobs is outside 1..={QUEUE_MAX_LIMIT}")]
    QueueMax { found: usize },
    #[error("tracker timeout {found:?} must be more than zero and at most {TIMEOUT_MAX:?}")]
    Timeout { found: Duration },
    #[error("starting tracker thread {index}: {source}")]
    Spawn {
        index: usize,
        source: std::io::Error,
    },
}

/// What [`TrackerWorker::shutdown`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Jobs queued or running when shutdown began that finished by the deadline.
    pub finished: usize,
    /// Jobs that did not: still queued (answered with a failure) or running.
    pub abandoned: usize,
}

/// Counts shared by handles, threads and shutdown.
#[derive(Debug, Default)]
struct Counters {
    accepting: bool,
    /// Jobs queued or running.
    pending: usize,
    /// Tokens with a job queued or running, each with the jobs that wait
    /// behind it, in order.
    busy: HashMap<u64, VecDeque<TrackerJob>>,
    /// Jobs waiting in `busy`.
    waiting: usize,
}

struct Shared {
    counters: Mutex<Counters>,
    /// Signalled each time a job finishes.
    finished: Condvar,
    /// Tells running attempts to give up.
    abandon: AtomicBool,
    memory: Mutex<TierMemory>,
    config: TrackerWorkerConfig,
}

impl Shared {
    fn counters(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn memory(&self) -> MutexGuard<'_, TierMemory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn job_done(&self) {
        let mut c = self.counters();
        c.pending = c.pending.saturating_sub(1);
        drop(c);
        self.finished.notify_all();
    }

    /// The job waiting behind `token`'s, if any; else `token` is free.
    fn next_of(&self, token: u64) -> Option<TrackerJob> {
        let mut c = self.counters();
        let next = c.busy.get_mut(&token).and_then(VecDeque::pop_front);
        match next {
            Some(job) => {
                c.waiting = c.waiting.saturating_sub(1);
                Some(job)
            }
            None => {
                c.busy.remove(&token);
                None
            }
        }
    }
}

/// Submits jobs; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct TrackerHandle {
    jobs: Sender<TrackerJob>,
    shared: Arc<Shared>,
}

impl fmt::Debug for TrackerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackerHandle").finish_non_exhaustive()
    }
}

impl TrackerHandle {
    /// Queues `job` (behind the job of the same token queued or running, if
    /// any); gives it back when the queue is full or the worker stopped.
    // The job comes back by value on purpose: the caller retries or drops it,
    // and a refusal is rare, so its size does not matter.
    #[allow(clippy::result_large_err)]
    pub fn submit(&self, job: TrackerJob) -> Result<(), TrackerJob> {
        let mut c = self.shared.counters();
        if !c.accepting {
            return Err(job);
        }
        let token = job.token;
        if c.busy.contains_key(&token) {
            if c.waiting >= self.shared.config.queue_max {
                return Err(job);
            }
            c.waiting += 1;
            c.pending = c.pending.saturating_add(1);
            if let Some(q) = c.busy.get_mut(&token) {
                q.push_back(job);
            }
            return Ok(());
        }
        match self.jobs.try_send(job) {
            Ok(()) => {
                c.busy.insert(token, VecDeque::new());
                c.pending = c.pending.saturating_add(1);
                Ok(())
            }
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => Err(job),
        }
    }
}

/// The running pool.
pub struct TrackerWorker {
    handle: TrackerHandle,
    jobs: Receiver<TrackerJob>,
    /// Dropped to tell idle threads to exit.
    stop: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl fmt::Debug for TrackerWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackerWorker")
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl TrackerWorker {
    /// Checks `config` and starts the threads.
    pub fn start(config: TrackerWorkerConfig) -> Result<TrackerWorker, TrackerWorkerError> {
        if !(1..=THREADS_MAX).contains(&config.threads) {
            return Err(TrackerWorkerError::Threads {
                found: config.threads,
            });
        }
        if !(1..=QUEUE_MAX_LIMIT).contains(&config.queue_max) {
            return Err(TrackerWorkerError::QueueMax {
                found: config.queue_max,
            });
        }
        if config.timeout.is_zero() || config.timeout > TIMEOUT_MAX {
            return Err(TrackerWorkerError::Timeout {
                found: config.timeout,
            });
        }
        let (jobs_tx, jobs_rx) = bounded(config.queue_max);
        let (stop_tx, stop_rx) = bounded::<()>(0);
        let shared = Arc::new(Shared {
            counters: Mutex::new(Counters {
                accepting: true,
                ..Counters::default()
            }),
            finished: Condvar::new(),
            abandon: AtomicBool::new(false),
            memory: Mutex::new(TierMemory::default()),
            config,
        });
        let mut worker = TrackerWorker {
            handle: TrackerHandle {
                jobs: jobs_tx,
                shared: Arc::clone(&shared),
            },
            jobs: jobs_rx.clone(),
            stop: Some(stop_tx),
            threads: Vec::new(),
        };
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        for index in 0..shared.config.threads {
            let shared = Arc::clone(&shared);
            let jobs = jobs_rx.clone();
            let stop = stop_rx.clone();
            let rng = Rng::new(seed.wrapping_add((index as u64).wrapping_mul(0x9E37_79B9)));
            let spawned = thread::Builder::new()
                .name(format!("ringseed-tracker-{index}"))
                .spawn(move || run_thread(&shared, &jobs, &stop, rng));
            match spawned {
                Ok(t) => worker.threads.push(t),
                // Dropping `worker` stops the threads already started.
                Err(source) => return Err(TrackerWorkerError::Spawn { index, source }),
            }
        }
        Ok(worker)
    }

    /// A handle for submitting jobs.
    pub fn handle(&self) -> TrackerHandle {
        self.handle.clone()
    }

    /// Stops taking jobs, lets queued and running jobs finish until
    /// `deadline` has passed, then gives up on the rest (see the module
    /// header). Returns by the deadline (plus a few milliseconds).
    pub fn shutdown(mut self, deadline: Duration) -> ShutdownReport {
        let shared = Arc::clone(&self.handle.shared);
        let end = Instant::now().checked_add(deadline);
        let mut c = shared.counters();
        c.accepting = false;
        let at_start = c.pending;
        while c.pending > 0 {
            let left = match end {
                Some(end) => end.saturating_duration_since(Instant::now()),
                None => deadline,
            };
            if left.is_zero() {
                break;
            }
            c = shared
                .finished
                .wait_timeout(c, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let abandoned = c.pending;
        drop(c);
        self.stop_threads();
        ShutdownReport {
            finished: at_start.saturating_sub(abandoned),
            abandoned,
        }
    }

    /// Refuses new jobs, tells running attempts to give up, answers queued
    /// jobs with a failure, lets idle threads exit and reaps those that have.
    fn stop_threads(&mut self) {
        let shared = &self.handle.shared;
        shared.counters().accepting = false;
        shared.abandon.store(true, Ordering::Relaxed);
        self.stop = None;
        while let Ok(job) = self.jobs.try_recv() {
            // The jobs waiting behind it are answered too, in order.
            let token = job.token;
            send_reply(job, None, Err(not_run()), Duration::ZERO);
            shared.job_done();
            while let Some(next) = shared.next_of(token) {
                send_reply(next, None, Err(not_run()), Duration::ZERO);
                shared.job_done();
            }
        }
        for t in std::mem::take(&mut self.threads) {
            if t.is_finished() {
                let _ = t.join();
            }
            // Threads still in an attempt are left to end on their own.
        }
    }
}

impl Drop for TrackerWorker {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

/// One thread: run jobs until told to stop.
fn run_thread(shared: &Shared, jobs: &Receiver<TrackerJob>, stop: &Receiver<()>, mut rng: Rng) {
    loop {
        let job = select! {
            recv(jobs) -> job => job,
            recv(stop) -> _ => return,
        };
        let Ok(job) = job else { return };
        // Then the jobs of the same token that waited behind it, in order.
        let mut next = Some(job);
        while let Some(job) = next.take() {
            let token = job.token;
            run_one(shared, job, &mut rng);
            next = shared.next_of(token);
            shared.job_done();
        }
    }
}

/// Runs one job (or answers it, when told to abandon), catching a panic.
fn run_one(shared: &Shared, job: TrackerJob, rng: &mut Rng) {
    if shared.abandon.load(Ordering::Relaxed) {
        send_reply(job, None, Err(not_run()), Duration::ZERO);
        return;
    }
    let token = job.token;
    let reply = job.reply.clone();
    let ran = panic::catch_unwind(AssertUnwindSafe(|| run_job(shared, job, rng)));
    if ran.is_err() {
        let _ = reply.send_timeout(
            TrackerReply {
                token,
                url: None,
                outcome: Err(TrackerFailure {
                    url: String::new(),
                    message: "internal error in the tracker worker (a bug)".to_owned(),
                }),
            },
            REPLY_SEND_WAIT,
        );
    }
}

/// Tries the job's trackers and sends the reply.
fn run_job(shared: &Shared, job: TrackerJob, rng: &mut Rng) {
    let plan = plan(&job.tiers, &shared.memory());
    let mut cx = AttemptContext {
        bind: &shared.config.bind,
        timeout: shared.config.timeout,
        abandon: &shared.abandon,
        rng,
    };
    let mut last: Option<TrackerFailure> = None;
    let mut refusal: Option<TrackerFailure> = None;
    for url in &plan.urls {
        match attempt::announce(url, &job.request, &mut cx) {
            Ok(response) => {
                shared.memory().promote(url);
                let url = Some(url.clone());
                return send_reply(job, url, Ok(response), REPLY_SEND_WAIT);
            }
            Err(e) => {
                // Never the raw URL: it may hold a passkey (see
                // `tracker::redact`); the tracker's own words may quote it.
                let failure = TrackerFailure {
                    url: url.clone(),
                    message: scrub(&format!("tracker {}: {e}", Redacted(url)), url),
                };
                let stop = matches!(e, AttemptError::Abandoned);
                if matches!(e, AttemptError::Refused(_)) {
                    refusal = Some(failure.clone());
                }
                last = Some(failure);
                if stop {
                    break;
                }
            }
        }
    }
    let failure = refusal.or(last).unwrap_or_else(|| TrackerFailure {
        url: String::new(),
        message: "no tracker URL to announce to".to_owned(),
    });
    let mut failure = failure;
    if plan.left_out > 0 {
        failure.message.push_str(&format!(
            " ({} more tracker URLs were not tried: at most {} per announce)",
            plan.left_out,
            tiers::TRACKERS_PER_JOB_MAX
        ));
    }
    let url = (!failure.url.is_empty()).then(|| failure.url.clone());
    send_reply(job, url, Err(failure), REPLY_SEND_WAIT);
}

/// The failure of a job the worker dropped at shutdown without running it.
fn not_run() -> TrackerFailure {
    TrackerFailure {
        url: String::new(),
        message: "the tracker worker shut down before this announce ran".to_owned(),
    }
}

/// Sends the reply, waiting at most `wait` for room, and if it was
/// delivered calls `wake`.
fn send_reply(
    job: TrackerJob,
    url: Option<String>,
    outcome: Result<AnnounceResponse, TrackerFailure>,
    wait: Duration,
) {
    let reply = TrackerReply {
        token: job.token,
        url,
        outcome,
    };
    if job.reply.send_timeout(reply, wait).is_ok() {
        if let Some(wake) = &job.wake {
            wake();
        }
    }
}
