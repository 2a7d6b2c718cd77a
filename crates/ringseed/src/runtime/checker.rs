//! The checker pool: data checks off the shards.
//!
//! A check hashes a torrent's data on disk (`hash_pieces_until`, all its
//! reads through io_uring on threads of its own), compares each piece with
//! the torrent's hashes and, for a torrent just added, opens its files for
//! serving. The result goes back to the owning shard's control queue as
//! [`Control::Checked`], so the shard never waits on the disk for a check:
//! it serves its other torrents meanwhile. Jobs wait in a bounded queue
//! (one per torrent at most, so the session's torrent limit bounds it) and
//! run `threads` at a time. Each job has a [`CheckProgress`]: pieces checked
//! so far (read by snapshots) and a cancel flag (a removed torrent, or the
//! session stopping): the hashing stops within a few chunk reads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender};
use thiserror::Error;

use super::disk::{disk_files, TorrentStorage};
use super::piece_hash::{hash_pieces_until, HashError, HashOptions};
use super::session::control::{Control, ControlTx};
use super::session::types::{Mode, TorrentId};
use crate::metainfo::Metainfo;
use crate::torrent::Bitfield;

/// Most checks waiting for a thread: one per torrent of the session at
/// most. The queue is a linked (unbounded) channel held to this length by
/// `submit`: a bounded channel of this capacity would allocate and touch
/// all of it up front (about 100 MiB).
pub const CHECK_QUEUE_MAX: usize = super::session::settings::TORRENTS_MAX;
/// How long a finished check waits for room in a full control queue
/// before it looks again whether the session is stopping.
const REPLY_RETRY: Duration = Duration::from_millis(100);

/// A check's progress, shared by the checker and the torrent's shard.
#[derive(Debug, Default)]
pub struct CheckProgress {
    started: AtomicBool,
    pieces_checked: AtomicU32,
    cancel: AtomicBool,
}

impl CheckProgress {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// `None` while queued; the pieces hashed so far once running.
    pub fn pieces_checked(&self) -> Option<u32> {
        self.started
            .load(Ordering::Relaxed)
            .then(|| self.pieces_checked.load(Ordering::Relaxed))
    }

    /// Asks the check to stop (its result is then an error, ignored).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// One data check.
pub struct CheckJob {
    pub id: TorrentId,
    pub metainfo: Arc<Metainfo>,
    pub save_dir: PathBuf,
    /// Open the files for this mode once checked (a new torrent); `None`
    /// when the shard holds them already (a recheck).
    pub open: Option<Mode>,
    pub progress: Arc<CheckProgress>,
    /// The owning shard's control queue.
    pub reply: ControlTx,
}

/// What a check found.
pub struct CheckOutcome {
    pub id: TorrentId,
    pub progress: Arc<CheckProgress>,
    pub result: Result<Checked, CheckError>,
}

/// A finished check.
pub struct Checked {
    pub have: Bitfield,
    /// Opened when the job asked.
    pub storage: Option<TorrentStorage>,
}

/// Why a check gave no result.
#[derive(Debug, Error)]
pub enum CheckError {
    #[error("the check was cancelled")]
    Cancelled,
    #[error("cannot check the data: {0}")]
    Hash(#[from] HashError),
    #[error(transparent)]
    Disk(#[from] super::disk::DiskError),
    #[error("piece count: {0}")]
    Pieces(String),
    #[error("{}", nothing_to_seed(dir, missing, *files))]
    NothingToSeed {
        dir: PathBuf,
        /// The torrent's paths of the files that are not there.
        missing: Vec<String>,
        /// Files of the torrent (pad files not counted).
        files: usize,
    },
}

/// Most missing file names one message lists; the rest are counted.
pub const MISSING_NAMES_SHOWN_MAX: usize = 10;

/// `a, b, c and 7 more`: at most [`MISSING_NAMES_SHOWN_MAX`] names.
pub fn name_list(names: &[String]) -> String {
    let shown: Vec<&str> = names
        .iter()
        .take(MISSING_NAMES_SHOWN_MAX)
        .map(String::as_str)
        .collect();
    let mut text = shown.join(", ");
    if names.len() > shown.len() {
        text.push_str(&format!(" and {} more", names.len() - shown.len()));
    }
    text
}

fn nothing_to_seed(dir: &std::path::Path, missing: &[String], files: usize) -> String {
    if files > 0 && missing.len() >= files {
        return format!(
            "nothing to seed: no file of the torrent is in {} (wrong save path?)",
            dir.display()
        );
    }
    let mut text = format!(
        "nothing to seed: no piece of the data in {} matches the torrent",
        dir.display()
    );
    if !missing.is_empty() {
        text.push_str(&format!("; missing: {}", name_list(missing)));
    }
    text
}

/// Why the pool could not start.
#[derive(Debug, Error)]
#[error("cannot start a checker thread: {0}")]
pub struct CheckerStartError(#[source] std::io::Error);

/// The pool's queue, for shards.
#[derive(Clone)]
pub struct CheckerHandle {
    jobs: Sender<CheckJob>,
}

impl CheckerHandle {
    /// Queues a check. The queue holds one job per torrent of the session;
    /// a refusal gives the job back.
    pub fn submit(&self, job: CheckJob) -> Result<(), Box<CheckJob>> {
        if self.jobs.len() >= CHECK_QUEUE_MAX {
            return Err(Box::new(job));
        }
        self.jobs
            .try_send(job)
            .map_err(|e| Box::new(e.into_inner()))
    }
}

/// The running pool.
pub struct Checker {
    handle: CheckerHandle,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    /// The job each thread runs now, to cancel it on stop.
    running: Arc<Mutex<Vec<Option<Arc<CheckProgress>>>>>,
}

impl Checker {
    /// Starts `threads` checkers, each hashing with `hash_threads` threads.
    pub fn start(threads: usize, hash_threads: usize) -> Result<Checker, CheckerStartError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::new(Mutex::new(vec![None; threads]));
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let (rx, stop, running) = (rx.clone(), stop.clone(), running.clone());
            let h = std::thread::Builder::new()
                .name(format!("checker-{i}"))
                .spawn(move || worker(i, rx, stop, running, hash_threads))
                .map_err(CheckerStartError)?;
            handles.push(h);
        }
        Ok(Checker {
            handle: CheckerHandle { jobs: tx },
            threads: handles,
            stop,
            running,
        })
    }

    pub fn handle(&self) -> CheckerHandle {
        self.handle.clone()
    }

    /// Cancels the checks running and drops those waiting (the session is
    /// stopping; no result is delivered after this).
    pub fn cancel_all(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(running) = self.running.lock() {
            for p in running.iter().flatten() {
                p.cancel();
            }
        }
    }

    /// [`Checker::cancel_all`], then joins the threads (a cancelled check
    /// ends within a few chunk reads).
    pub fn stop(mut self) {
        self.cancel_all();
        // Workers wake on the closed queue once every handle is gone; the
        // shards' handles go with the shards, which the session joined.
        drop(self.handle);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn worker(
    index: usize,
    jobs: Receiver<CheckJob>,
    stop: Arc<AtomicBool>,
    running: Arc<Mutex<Vec<Option<Arc<CheckProgress>>>>>,
    hash_threads: usize,
) {
    let set_running = |p: Option<Arc<CheckProgress>>| {
        if let Ok(mut r) = running.lock() {
            if let Some(slot) = r.get_mut(index) {
                *slot = p;
            }
        }
    };
    // Wakes now and then to see the stop flag while shards still hold
    // their handles.
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let job = match jobs.recv_timeout(REPLY_RETRY) {
            Ok(job) => job,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        };
        if job.progress.is_cancelled() {
            continue;
        }
        set_running(Some(job.progress.clone()));
        if stop.load(Ordering::Relaxed) {
            job.progress.cancel();
        }
        let result = check(&job, hash_threads);
        set_running(None);
        let outcome = CheckOutcome {
            id: job.id,
            progress: job.progress.clone(),
            result,
        };
        deliver(&job.reply, outcome, &stop);
    }
}

/// Hands the outcome to the shard, waiting for room in its queue (a check
/// result is never dropped while the session runs).
fn deliver(to: &ControlTx, outcome: CheckOutcome, stop: &AtomicBool) {
    let mut msg = Control::Checked(Box::new(outcome));
    loop {
        match to.tx.send_timeout(msg, REPLY_RETRY) {
            Ok(()) => {
                to.wake.wake();
                return;
            }
            Err(SendTimeoutError::Timeout(m)) => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                msg = m;
            }
            Err(SendTimeoutError::Disconnected(_)) => return,
        }
    }
}

/// Hashes the job's data and, when asked, opens its files.
fn check(job: &CheckJob, hash_threads: usize) -> Result<Checked, CheckError> {
    let m = &job.metainfo;
    let p = &job.progress;
    p.started.store(true, Ordering::Relaxed);
    let have = hash_have(m, &job.save_dir, hash_threads, p)?;
    if p.is_cancelled() {
        return Err(CheckError::Cancelled);
    }
    let storage = match job.open {
        Some(mode) => Some(TorrentStorage::open(
            m,
            &job.save_dir,
            mode == Mode::Download,
        )?),
        None => None,
    };
    if job.open == Some(Mode::Seed) && have.count_ones() == 0 {
        let missing = storage
            .as_ref()
            .map(|s| missing_names(m, s.missing_files()))
            .unwrap_or_default();
        return Err(CheckError::NothingToSeed {
            dir: job.save_dir.clone(),
            missing,
            files: m.info.files.iter().filter(|f| !f.attr.pad).count(),
        });
    }
    Ok(Checked { have, storage })
}

/// The torrent's paths (as `info` shows them) of files `indexes`.
pub fn missing_names(m: &Metainfo, indexes: &[usize]) -> Vec<String> {
    indexes
        .iter()
        .filter_map(|&i| m.info.files.get(i))
        .map(|f| f.display_path())
        .collect()
}

/// The pieces of `m` whose data under `dir` matches.
pub fn hash_have(
    m: &Metainfo,
    dir: &std::path::Path,
    hash_threads: usize,
    progress: &CheckProgress,
) -> Result<Bitfield, CheckError> {
    let files = disk_files(m, dir);
    let pieces = m.info.pieces.len();
    let mut have = Bitfield::new(pieces).map_err(|e| CheckError::Pieces(e.to_string()))?;
    let any_present = files
        .iter()
        .any(|f| f.path.as_ref().is_some_and(|p| p.exists()));
    if !any_present {
        progress
            .pieces_checked
            .store(pieces as u32, Ordering::Relaxed);
        return Ok(have);
    }
    let options = HashOptions {
        threads: hash_threads.max(1),
        ..HashOptions::default()
    };
    let r = hash_pieces_until(
        &files,
        m.info.piece_length,
        &options,
        &progress.cancel,
        |r| {
            let i = r.index as usize;
            let good = r.hash.as_ref().ok().copied();
            if good.is_some() && good == m.info.pieces.get(i).copied() {
                let _ = have.set(i);
            }
            progress.pieces_checked.fetch_add(1, Ordering::Relaxed);
        },
    );
    match r {
        Ok(_) => Ok(have),
        Err(HashError::Cancelled) => Err(CheckError::Cancelled),
        Err(e) => Err(e.into()),
    }
}
