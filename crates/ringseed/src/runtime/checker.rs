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

use super::disk::{disk_files, files_on_disk, TorrentStorage};
use super::piece_hash::{hash_pieces_in, HashError, HashOptions};
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
    /// Hash only some pieces, trust others (`None`: hash every piece).
    pub partial: Option<PartialCheck>,
    /// The owning shard's control queue.
    pub reply: ControlTx,
}

/// A check of some pieces only: those of `known` not in `check` are
/// trusted (never read), those in `check` hashed.
#[derive(Debug, Clone)]
pub struct PartialCheck {
    pub known: Bitfield,
    pub check: Bitfield,
}

impl PartialCheck {
    /// The pieces trusted without a read: `known` and not `check`.
    pub fn trusted(&self) -> Bitfield {
        let mut t = self.known.clone();
        for i in self.check.iter_ones() {
            let _ = t.clear(i);
        }
        t
    }
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
    let have = match &job.partial {
        None => hash_have(m, &job.save_dir, hash_threads, p)?,
        Some(partial) => hash_have_partial(m, &job.save_dir, hash_threads, p, partial)?,
    };
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
    let pieces = m.info.pieces.len();
    let have = Bitfield::new(pieces).map_err(|e| CheckError::Pieces(e.to_string()))?;
    hash_into(m, dir, hash_threads, progress, have, None)
}

/// The trusted pieces of `partial` (see [`PartialCheck::trusted`]), plus
/// those of `partial.check` whose data under `dir` matches; only these are
/// read. A trusted piece that touches a file not on disk as a regular file
/// is checked too. `progress` counts the pieces hashed.
pub fn hash_have_partial(
    m: &Metainfo,
    dir: &std::path::Path,
    hash_threads: usize,
    progress: &CheckProgress,
    partial: &PartialCheck,
) -> Result<Bitfield, CheckError> {
    let pieces = m.info.pieces.len();
    if partial.known.len() != pieces || partial.check.len() != pieces {
        return Err(CheckError::Pieces(format!(
            "{} known-bits and {} check-bits for {pieces} pieces",
            partial.known.len(),
            partial.check.len()
        )));
    }
    let mut have = partial.trusted();
    let mut check = partial.check.clone();
    let layout = crate::storage::Layout::new(m.info.piece_length, &m.info.extents())
        .map_err(|e| CheckError::Pieces(e.to_string()))?;
    for f in files_on_disk(m, dir).iter().filter(|f| f.actual.is_none()) {
        for i in layout.file_piece_range(f.index).into_iter().flatten() {
            if have.get(i as usize) {
                let _ = have.clear(i as usize);
                let _ = check.set(i as usize);
            }
        }
    }
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for i in check.iter_ones() {
        let i = i as u64;
        match runs.last_mut() {
            Some((_, end)) if *end == i => *end = i + 1,
            _ => runs.push((i, i + 1)),
        }
    }
    hash_into(m, dir, hash_threads, progress, have, Some(&runs))
}

/// Sets in `have` the pieces (of `select`, or all) whose data matches.
fn hash_into(
    m: &Metainfo,
    dir: &std::path::Path,
    hash_threads: usize,
    progress: &CheckProgress,
    mut have: Bitfield,
    select: Option<&[(u64, u64)]>,
) -> Result<Bitfield, CheckError> {
    let files = disk_files(m, dir);
    let pieces: usize = match select {
        None => m.info.pieces.len(),
        Some(runs) => runs.iter().map(|&(s, e)| (e - s) as usize).sum(),
    };
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
    if pieces == 0 {
        return Ok(have);
    }
    let r = hash_pieces_in(
        &files,
        m.info.piece_length,
        &options,
        &progress.cancel,
        select,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::sha1;
    use crate::metainfo::{NewFile, TorrentBuilder};

    const PIECE: usize = 16 * 1024;

    /// A torrent of `files` (name, data) in `dir/t/`, pieces of 16 KiB.
    fn torrent(dir: &std::path::Path, files: &[(&str, Vec<u8>)]) -> Metainfo {
        let root = dir.join("t");
        std::fs::create_dir_all(&root).unwrap();
        let mut stream = Vec::new();
        for (name, data) in files {
            std::fs::write(root.join(name), data).unwrap();
            stream.extend_from_slice(data);
        }
        let hashes: Vec<[u8; 20]> = stream.chunks(PIECE).map(sha1).collect();
        let b = TorrentBuilder {
            name: "t".into(),
            files: files
                .iter()
                .map(|(name, data)| NewFile {
                    path: vec![(*name).into()],
                    length: data.len() as u64,
                })
                .collect(),
            single_file: false,
            piece_length: PIECE as u64,
            ..TorrentBuilder::default()
        };
        Metainfo::from_bytes(&b.build(&hashes).unwrap()).unwrap()
    }

    fn bits(len: usize, ones: &[usize]) -> Bitfield {
        let mut b = Bitfield::new(len).unwrap();
        for &i in ones {
            b.set(i).unwrap();
        }
        b
    }

    fn corrupt(path: &std::path::Path, offset: u64) {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.write_all_at(b"corrupted", offset).unwrap();
    }

    #[test]
    fn a_partial_check_reads_only_the_pieces_to_check() {
        let dir = tempfile::tempdir().unwrap();
        let data = crate::rng::Rng::new(9).bytes(6 * PIECE + 100);
        let m = torrent(dir.path(), &[("a.bin", data)]);
        let file = dir.path().join("t/a.bin");
        // Pieces 1 and 4 go bad on disk; only 4 (and 5) are checked.
        corrupt(&file, PIECE as u64 + 10);
        corrupt(&file, 4 * PIECE as u64 + 10);
        let partial = PartialCheck {
            known: bits(7, &[0, 1, 2, 4, 5]),
            check: bits(7, &[4, 5, 6]),
        };
        let progress = CheckProgress::default();
        let have = hash_have_partial(&m, dir.path(), 1, &progress, &partial).unwrap();
        let got: Vec<usize> = have.iter_ones().collect();
        // 1: trusted, so never read (its corruption unseen); 3: neither
        // known nor checked; 4: checked and bad; 5, 6: checked and good.
        assert_eq!(got, [0, 1, 2, 5, 6]);
        assert_eq!(progress.pieces_checked.load(Ordering::Relaxed), 3);
        // A full check of the same data finds both bad pieces.
        let full = hash_have(&m, dir.path(), 1, &CheckProgress::default()).unwrap();
        assert_eq!(full.iter_ones().collect::<Vec<_>>(), [0, 2, 3, 5, 6]);
        // Nothing to check: nothing read, the trusted ones kept.
        let trust_all = PartialCheck {
            known: bits(7, &[0, 3]),
            check: bits(7, &[]),
        };
        let progress = CheckProgress::default();
        let have = hash_have_partial(&m, dir.path(), 1, &progress, &trust_all).unwrap();
        assert_eq!(have.iter_ones().collect::<Vec<_>>(), [0, 3]);
        assert_eq!(progress.pieces_checked.load(Ordering::Relaxed), 0);
        // Wrong lengths are refused.
        let bad = PartialCheck {
            known: bits(6, &[]),
            check: bits(7, &[]),
        };
        let err = hash_have_partial(&m, dir.path(), 1, &CheckProgress::default(), &bad);
        assert!(matches!(err, Err(CheckError::Pieces(_))));
    }

    #[test]
    fn a_trusted_piece_of_a_missing_file_is_checked_and_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let rng = |s| crate::rng::Rng::new(s).bytes(2 * PIECE);
        // Pieces 0-1 in a.bin, 2-3 in b.bin, 4-5 in c.bin.
        let m = torrent(
            dir.path(),
            &[("a.bin", rng(1)), ("b.bin", rng(2)), ("c.bin", rng(3))],
        );
        std::fs::remove_file(dir.path().join("t/b.bin")).unwrap();
        let partial = PartialCheck {
            known: bits(6, &[0, 1, 2, 3, 4, 5]),
            check: bits(6, &[5]),
        };
        let progress = CheckProgress::default();
        let have = hash_have_partial(&m, dir.path(), 1, &progress, &partial).unwrap();
        assert_eq!(have.iter_ones().collect::<Vec<_>>(), [0, 1, 4, 5]);
        assert_eq!(progress.pieces_checked.load(Ordering::Relaxed), 3);
    }
}
