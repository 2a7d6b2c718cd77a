//! The state database: SQLite (WAL, `synchronous=FULL`) in the state
//! directory, written on a thread of its own.
//!
//! [`Store::open`] locks the directory against a second daemon (`flock` on
//! `STATE_DIR/lock`), opens or creates `STATE_DIR/ringseed.db`, and reads
//! everything back. Then one thread owns the connection; the [`Store`]
//! handle talks to it over a bounded queue. Writes the caller must be able
//! to trust (`put`, `remove`, categories, values, `flush`) wait until
//! committed (bounded by [`ACK_TIMEOUT`]); the periodic
//! [`Store::save_progress`] never waits (a full queue is
//! [`StoreError::Full`]). A progress save syncs the torrent's files to disk
//! before it records their pieces, so a piece recorded as had is on disk.
//!
//! Boundary: no policy here (what to save and when is the core's); the
//! rows' layout and encodings are in `schema`.

mod schema;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError};
use ringseed::metainfo::Metainfo;
use ringseed::InfoHash;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use thiserror::Error;

use super::command::Category;
use super::record::{FileStamp, Source, TorrentRecord};

/// The schema this code writes (`PRAGMA user_version`). A database with a
/// larger number was written by a newer ringseed and is refused.
pub const SCHEMA_VERSION: i64 = 1;
/// The database file in the state directory.
pub const DB_FILE: &str = "ringseed.db";
/// The file in the state directory a running daemon holds locked.
pub const LOCK_FILE: &str = "lock";
/// Requests waiting for the store thread (writes and progress batches).
pub const STORE_QUEUE_MAX: usize = 64;
/// Longest wait for a write to be confirmed, in seconds: past it the
/// caller gets [`StoreError::Timeout`] rather than hanging.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long SQLite waits on a lock held by another connection (a backup
/// tool reading the file), in milliseconds.
pub const BUSY_TIMEOUT: Duration = Duration::from_millis(5_000);

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("state database {}: {message}", path.display())]
    Db { path: PathBuf, message: String },
    #[error("the state database thread is gone")]
    Gone,
    #[error("the state database is behind ({0} saves waiting)")]
    Full(usize),
    #[error("another ringseed daemon is using {} (it holds {}/{LOCK_FILE})", dir.display(), dir.display())]
    Locked { dir: PathBuf },
    #[error("state directory {}: {message}", path.display())]
    Dir { path: PathBuf, message: String },
    #[error(
        "the state database did not confirm a write within {} s (it may still be written)",
        .0.as_secs()
    )]
    Timeout(Duration),
}

/// One torrent's numbers for a periodic save.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub info_hash: InfoHash,
    pub uploaded: u64,
    pub downloaded: u64,
    pub seeding_time_s: u64,
    pub active_time_s: u64,
    pub completed_at: Option<i64>,
    /// Pieces newly had: the store syncs these files to disk (fdatasync),
    /// stamps them (size, mtime), then commits the bits with the stamps.
    pub pieces: Option<PiecesUpdate>,
}

/// A torrent's had pieces and its files, to sync then record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiecesUpdate {
    /// Bitfield bytes (BEP 3 order).
    pub bits: Vec<u8>,
    /// Every file of the torrent in order; `None` for pad files.
    pub files: Vec<Option<PathBuf>>,
}

/// What `open` read back.
pub struct Loaded {
    pub store: Store,
    pub torrents: Vec<TorrentRecord>,
    /// The .torrents parsed while checking the recorded pieces, by
    /// info-hash, so the caller does not parse them again.
    pub parsed: HashMap<InfoHash, Arc<Metainfo>>,
    pub categories: Vec<Category>,
    /// The key/value table ([`Store::put_value`]): for the Web API's
    /// credentials (issue 12) and the DHT's nodes (issue 13).
    pub values: BTreeMap<String, Vec<u8>>,
}

/// A write the caller waits for.
enum Write {
    Put(Box<TorrentRecord>),
    Remove(InfoHash),
    PutCategory(Category),
    RemoveCategory(String),
    PutValue(String, Vec<u8>),
    #[allow(dead_code)]
    RemoveValue(String),
    /// Nothing to write: answered once everything before is committed.
    Flush,
}

type Ack = Sender<Result<(), StoreError>>;

enum Request {
    Write(Write, Ack),
    Progress(Vec<Progress>),
    /// Test hook: the thread waits until the sender is used or dropped.
    #[cfg(test)]
    Stall(Receiver<()>),
}

/// The handle of the store thread.
pub struct Store {
    tx: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    last_error: Arc<Mutex<Option<String>>>,
    db_path: PathBuf,
    /// Held (flock) for the handle's life; released after the thread ends.
    _lock: File,
}

impl Store {
    /// Opens (creating) the database in `dir`, locks the directory against
    /// a second daemon, and reads everything back.
    pub fn open(dir: &Path) -> Result<Loaded, StoreError> {
        let dir_err = |message: String| StoreError::Dir {
            path: dir.to_path_buf(),
            message,
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| dir_err(format!("cannot create it: {e}")))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| dir_err(format!("cannot open {}: {e}", lock_path.display())))?;
        // SAFETY: flock on a descriptor this function owns; no memory is
        // passed.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                StoreError::Locked {
                    dir: dir.to_path_buf(),
                }
            } else {
                dir_err(format!("cannot lock {}: {e}", lock_path.display()))
            });
        }

        let db_path = dir.join(DB_FILE);
        let conn = open_connection(&db_path)?;
        let (torrents, parsed, categories, values) = load(&conn, &db_path)?;
        // The loop's statements: prepared once, kept by the cache.
        conn.set_prepared_statement_cache_capacity(32);

        let (tx, rx) = crossbeam_channel::bounded(STORE_QUEUE_MAX);
        let last_error = Arc::new(Mutex::new(None));
        let mut worker = Worker {
            conn,
            db_path: db_path.clone(),
            last_error: Arc::clone(&last_error),
        };
        let thread = std::thread::Builder::new()
            .name("ringseed-store".to_string())
            .spawn(move || worker.run(rx))
            .map_err(|e| StoreError::Db {
                path: db_path.clone(),
                message: format!("cannot start its thread: {e}"),
            })?;
        Ok(Loaded {
            store: Store {
                tx: Some(tx),
                thread: Some(thread),
                last_error,
                db_path,
                _lock: lock,
            },
            torrents,
            parsed,
            categories,
            values,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.db_path
    }

    /// Inserts or replaces a torrent; returns once committed durably.
    pub fn put(&self, rec: &TorrentRecord) -> Result<(), StoreError> {
        self.write(Write::Put(Box::new(rec.clone())), ACK_TIMEOUT)
    }

    /// Forgets a torrent; returns once committed.
    pub fn remove(&self, hash: InfoHash) -> Result<(), StoreError> {
        self.write(Write::Remove(hash), ACK_TIMEOUT)
    }

    /// Queues a periodic save; never blocks (a full queue is `Full`: the
    /// caller tries again at its next period).
    pub fn save_progress(&self, batch: Vec<Progress>) -> Result<(), StoreError> {
        let tx = self.tx.as_ref().ok_or(StoreError::Gone)?;
        match tx.try_send(Request::Progress(batch)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(StoreError::Full(tx.len())),
            Err(TrySendError::Disconnected(_)) => Err(StoreError::Gone),
        }
    }

    pub fn put_category(&self, c: &Category) -> Result<(), StoreError> {
        self.write(Write::PutCategory(c.clone()), ACK_TIMEOUT)
    }

    pub fn remove_category(&self, name: &str) -> Result<(), StoreError> {
        self.write(Write::RemoveCategory(name.to_string()), ACK_TIMEOUT)
    }

    /// Keeps a small value under `key` (read back in [`Loaded::values`]);
    /// returns once committed.
    pub fn put_value(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write(
            Write::PutValue(key.to_string(), value.to_vec()),
            ACK_TIMEOUT,
        )
    }

    /// Forgets the value under `key`; returns once committed.
    #[allow(dead_code)] // see `Loaded::values`
    pub fn remove_value(&self, key: &str) -> Result<(), StoreError> {
        self.write(Write::RemoveValue(key.to_string()), ACK_TIMEOUT)
    }

    /// Waits until everything queued before is committed.
    pub fn flush(&self, timeout: Duration) -> Result<(), StoreError> {
        self.write(Write::Flush, timeout)
    }

    /// The last error of a periodic save (they have no caller to answer),
    /// or of a write; `None` when none happened.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().map(|e| e.clone()).unwrap_or(None)
    }

    /// Flushes, then ends the thread.
    pub fn close(mut self) {
        if let Err(e) = self.flush(ACK_TIMEOUT) {
            tracing::warn!("closing the state database: {e}");
        }
        self.shutdown();
    }

    /// Ends the thread once it has done what is queued.
    fn shutdown(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the state database thread panicked");
            }
        }
    }

    fn write(&self, write: Write, timeout: Duration) -> Result<(), StoreError> {
        let tx = self.tx.as_ref().ok_or(StoreError::Gone)?;
        let deadline = Instant::now() + timeout;
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        match tx.send_deadline(Request::Write(write, ack_tx), deadline) {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(_)) => return Err(StoreError::Timeout(timeout)),
            Err(SendTimeoutError::Disconnected(_)) => return Err(StoreError::Gone),
        }
        match ack_rx.recv_deadline(deadline) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(StoreError::Timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(StoreError::Gone),
        }
    }

    /// Test hook: the thread stops taking requests until the returned
    /// sender is used or dropped.
    #[cfg(test)]
    fn stall(&self) -> Sender<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if let Some(q) = &self.tx {
            let _ = q.send(Request::Stall(rx));
        }
        tx
    }
}

impl Drop for Store {
    /// Without `close`: the thread still does what is queued, then ends.
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn db_error(path: &Path, e: &rusqlite::Error) -> StoreError {
    let message = if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) {
        format!("not a SQLite database ({e}): move it away or restore a backup")
    } else {
        e.to_string()
    };
    StoreError::Db {
        path: path.to_path_buf(),
        message,
    }
}

/// Opens the file, sets the pragmas, creates or checks the schema.
fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let err = |e: rusqlite::Error| db_error(path, &e);
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    // The first read of the file: where a file that is not a database
    // shows.
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Db {
            path: path.to_path_buf(),
            message: format!("cannot use write-ahead logging (journal mode stays {mode:?})"),
        });
    }
    // FULL: a commit syncs the WAL, so an acknowledged write survives a
    // power loss (NORMAL in WAL mode would only survive a crash).
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(err)?;
    schema::prepare(&mut conn).map_err(|message| StoreError::Db {
        path: path.to_path_buf(),
        message,
    })?;
    Ok(conn)
}

type Everything = (
    Vec<TorrentRecord>,
    HashMap<InfoHash, Arc<Metainfo>>,
    Vec<Category>,
    BTreeMap<String, Vec<u8>>,
);

/// Reads every table back; rows that do not decode are logged and left
/// out.
fn load(conn: &Connection, path: &Path) -> Result<Everything, StoreError> {
    let err = |e: rusqlite::Error| db_error(path, &e);
    let (mut torrents, bad) = schema::load_torrents(conn).map_err(err)?;
    for b in bad {
        tracing::warn!("state database: skipping torrent {}: {}", b.key, b.why);
    }
    let mut parsed = HashMap::with_capacity(torrents.len());
    torrents.retain_mut(|rec| check_resume_data(rec, &mut parsed));
    let (categories, bad) = schema::load_categories(conn).map_err(err)?;
    for b in bad {
        tracing::warn!("state database: skipping category {:?}: {}", b.key, b.why);
    }
    let (values, bad) = schema::load_values(conn).map_err(err)?;
    for b in bad {
        tracing::warn!("state database: skipping value {:?}: {}", b.key, b.why);
    }
    Ok((torrents, parsed, categories, values))
}

/// Checks a record against its .torrent: a record of another torrent is
/// dropped (false); had pieces that do not fit the torrent (bitfield
/// length, spare bits, number of file stamps) are forgotten, so the data
/// is checked at start, and the record is kept. A .torrent that does not
/// parse is left for the core to report; one that does goes to `parsed`.
fn check_resume_data(
    rec: &mut TorrentRecord,
    parsed: &mut HashMap<InfoHash, Arc<Metainfo>>,
) -> bool {
    let Source::Torrent(bytes) = &rec.source else {
        return true;
    };
    if rec.pieces.is_none() {
        return true;
    }
    let Ok(meta) = Metainfo::from_bytes(bytes) else {
        return true;
    };
    if meta.info_hash != rec.info_hash {
        tracing::warn!(
            "state database: skipping torrent {}: its .torrent is of {}",
            rec.info_hash.to_hex(),
            meta.info_hash.to_hex()
        );
        return false;
    }
    let pieces = meta.info.num_pieces();
    let want_bytes = pieces.div_ceil(8);
    let files = meta.info.files.len();
    let why = match &rec.pieces {
        Some(bits) if bits.len() as u64 != want_bytes => Some(format!(
            "a bitfield of {} bytes for {pieces} pieces ({want_bytes} bytes expected)",
            bits.len()
        )),
        Some(bits) if pieces % 8 != 0 && bits.last().is_some_and(|b| b << (pieces % 8) != 0) => {
            Some("bits set past the last piece".to_string())
        }
        _ if rec.file_stamps.len() != files => Some(format!(
            "{} file stamps for {files} files",
            rec.file_stamps.len()
        )),
        _ => None,
    };
    if let Some(why) = why {
        tracing::warn!(
            "state database: torrent {}: {why}; its data will be checked again",
            rec.info_hash.to_hex()
        );
        rec.pieces = None;
        rec.file_stamps.clear();
    }
    parsed.insert(rec.info_hash, Arc::new(meta));
    true
}

/// Syncs a file's data to disk and stamps it; a missing file is stamped
/// as missing.
fn sync_and_stamp(path: &Path) -> Result<FileStamp, String> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(FileStamp {
                size: None,
                mtime_ns: 0,
            })
        }
        Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
    };
    // fdatasync works on a read-only descriptor on Linux: it flushes the
    // file's dirty pages whoever wrote them.
    file.sync_data()
        .map_err(|e| format!("cannot sync {} to disk: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    Ok(FileStamp {
        size: Some(meta.len()),
        mtime_ns: meta
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.mtime_nsec()),
    })
}

/// The store thread: owns the connection.
struct Worker {
    conn: Connection,
    db_path: PathBuf,
    last_error: Arc<Mutex<Option<String>>>,
}

impl Worker {
    fn run(&mut self, rx: Receiver<Request>) {
        // Ends when every handle is gone and the queue is drained.
        while let Ok(req) = rx.recv() {
            match req {
                Request::Write(write, ack) => {
                    let result = self.write(write);
                    if let Err(e) = &result {
                        self.remember(e.to_string());
                    }
                    // The caller may have stopped waiting (timeout).
                    let _ = ack.send(result);
                }
                Request::Progress(batch) => {
                    if let Err(e) = self.save_progress(batch) {
                        tracing::warn!("saving progress: {e}");
                        self.remember(e.to_string());
                    }
                }
                #[cfg(test)]
                Request::Stall(until) => {
                    let _ = until.recv();
                }
            }
        }
    }

    fn remember(&self, e: String) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(e);
        }
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        db_error(&self.db_path, &e)
    }

    fn write(&mut self, write: Write) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| db_error(&self.db_path, &e))?;
        let done = match &write {
            Write::Put(rec) => schema::put(&tx, rec),
            Write::Remove(hash) => schema::remove(&tx, *hash),
            Write::PutCategory(c) => schema::put_category(&tx, c),
            Write::RemoveCategory(name) => schema::remove_category(&tx, name),
            Write::PutValue(key, value) => schema::put_value(&tx, key, value),
            Write::RemoveValue(key) => schema::remove_value(&tx, key),
            Write::Flush => Ok(()),
        };
        done.and_then(|()| tx.commit())
            .map_err(|e| db_error(&self.db_path, &e))
    }

    /// Syncs and stamps the files of every torrent with new pieces, then
    /// commits the whole batch in one transaction.
    fn save_progress(&mut self, batch: Vec<Progress>) -> Result<(), StoreError> {
        let mut staged = Vec::with_capacity(batch.len());
        for p in batch {
            // A torrent removed meanwhile: its files may be going away.
            if !schema::exists(&self.conn, p.info_hash).map_err(|e| self.err(e))? {
                continue;
            }
            let pieces = match &p.pieces {
                None => None,
                Some(update) => match stamp_all(&update.files) {
                    Ok(stamps) => Some(stamps),
                    Err(e) => {
                        // Not on disk for sure: the pieces stay as they
                        // were recorded; the numbers are still saved.
                        tracing::warn!(
                            "torrent {}: not recording its pieces: {e}",
                            p.info_hash.to_hex()
                        );
                        self.remember(e);
                        None
                    }
                },
            };
            staged.push((p, pieces));
        }
        if staged.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction()
            .map_err(|e| db_error(&self.db_path, &e))?;
        for (p, stamps) in &staged {
            let there = schema::update_numbers(
                &tx,
                p.info_hash,
                p.uploaded,
                p.downloaded,
                p.seeding_time_s,
                p.active_time_s,
                p.completed_at,
            )
            .map_err(|e| db_error(&self.db_path, &e))?;
            if let (true, Some(stamps), Some(update)) = (there, stamps, &p.pieces) {
                schema::update_pieces(&tx, p.info_hash, &update.bits, stamps)
                    .map_err(|e| db_error(&self.db_path, &e))?;
            }
        }
        tx.commit().map_err(|e| db_error(&self.db_path, &e))
    }
}

/// One stamp per file, pad files (`None`) stamped as missing.
fn stamp_all(files: &[Option<PathBuf>]) -> Result<Vec<FileStamp>, String> {
    files
        .iter()
        .map(|f| match f {
            Some(path) => sync_and_stamp(path),
            None => Ok(FileStamp {
                size: None,
                mtime_ns: 0,
            }),
        })
        .collect()
}
