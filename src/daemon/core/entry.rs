//! One torrent as the core holds it: its record, its metadata, its id in
//! the session (none while its data moves), its latest snapshot and the
//! small facts the policies need.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ringseed::metainfo::Metainfo;
use ringseed::runtime::session::{TorrentId, TorrentSnapshot, TorrentState};

use super::policy::QueueItem;
use crate::daemon::command::TorrentView;
use crate::daemon::config::QueueConfig;
use crate::daemon::record::{Source, TorrentRecord, Wanted};

pub struct Entry {
    pub record: TorrentRecord,
    /// `None` for a magnet without metadata yet.
    pub metainfo: Option<Arc<Metainfo>>,
    pub id: Option<TorrentId>,
    pub snap: Option<TorrentSnapshot>,
    /// Running in the session as far as the core asked (not paused).
    pub running: bool,
    /// Paused by the queue (started, waiting for a place).
    pub queued: bool,
    /// Its data is being moved (out of the session meanwhile).
    pub moving: bool,
    /// `pieces_have` when its pieces were last recorded; `None`: never.
    pub saved_have: Option<u32>,
    /// Numbers changed since the last save.
    pub dirty: bool,
    /// Slower than the queue's thresholds since.
    pub slow_since: Option<Instant>,
    pub slow: bool,
    /// Milliseconds not yet counted in the record's whole seconds.
    seeding_ms: u64,
    active_ms: u64,
    /// An error of the core's own (a failed move).
    pub error: Option<String>,
    /// A check was asked for (at add, at start, a recheck) and its end
    /// not logged yet.
    pub check_pending: bool,
    /// Place in the queue: the order torrents were added in (loaded ones
    /// first, by their added time).
    pub seq: u64,
    /// The record's totals when the daemon started (or the torrent was
    /// added): what moved since is this session's.
    base_uploaded: u64,
    base_downloaded: u64,
    /// Unix seconds of the last payload byte moved (0: not in this run).
    last_activity: i64,
}

impl Entry {
    pub fn new(record: TorrentRecord, metainfo: Option<Arc<Metainfo>>) -> Entry {
        let (base_uploaded, base_downloaded) = (record.uploaded, record.downloaded);
        Entry {
            record,
            metainfo,
            id: None,
            snap: None,
            running: false,
            queued: false,
            moving: false,
            saved_have: None,
            dirty: false,
            slow_since: None,
            slow: false,
            seeding_ms: 0,
            active_ms: 0,
            error: None,
            check_pending: false,
            seq: 0,
            base_uploaded,
            base_downloaded,
            last_activity: 0,
        }
    }

    /// Takes a new snapshot: totals, completion, slowness.
    pub fn update(&mut self, s: TorrentSnapshot, now: Instant, q: &QueueConfig) {
        if s.uploaded != self.record.uploaded || s.downloaded != self.record.downloaded {
            self.last_activity = super::unix_now();
            self.record.uploaded = s.uploaded;
            self.record.downloaded = s.downloaded;
            self.dirty = true;
        }
        if s.is_complete() && self.record.completed_at.is_none() {
            self.record.completed_at = Some(super::unix_now());
            self.dirty = true;
        }
        let slow_now = match s.state {
            TorrentState::Downloading => s.rate_down < q.slow_download_rate,
            TorrentState::Seeding => s.rate_up < q.slow_upload_rate,
            _ => false,
        };
        if slow_now {
            let since = *self.slow_since.get_or_insert(now);
            self.slow = now.duration_since(since) >= Duration::from_secs(q.slow_after_s);
        } else {
            self.slow_since = None;
            self.slow = false;
        }
        if self.check_pending && !s.state.is_checking() && s.state != TorrentState::Stopping {
            self.check_pending = false;
            if s.state == TorrentState::Error {
                let why = s.error.as_deref().unwrap_or("failed");
                tracing::warn!("{}: {why}", s.name);
            } else {
                tracing::info!("{}", crate::cli::seed::checked_line(&s));
            }
        }
        self.snap = Some(s);
    }

    /// Adds `dt` of running to the seeding and active times.
    pub fn count_time(&mut self, dt: Duration) {
        let Some(s) = &self.snap else { return };
        let ms = dt.as_millis() as u64;
        let (active, seeding) = match s.state {
            TorrentState::Downloading => (true, false),
            TorrentState::Seeding => (true, true),
            _ => (false, false),
        };
        if active {
            self.active_ms += ms;
            self.record.active_time_s += self.active_ms / 1000;
            self.active_ms %= 1000;
            self.dirty = true;
        }
        if seeding {
            self.seeding_ms += ms;
            self.record.seeding_time_s += self.seeding_ms / 1000;
            self.seeding_ms %= 1000;
        }
    }

    /// Pieces had now that were not recorded yet (never during a check).
    pub fn pieces_changed(&self) -> bool {
        let Some(s) = &self.snap else { return false };
        if s.state.is_checking() || s.state == TorrentState::Stopping || self.moving {
            return false;
        }
        self.saved_have != Some(s.pieces_have)
    }

    pub fn complete(&self) -> bool {
        match &self.snap {
            Some(s) => s.is_complete(),
            None => self.record.completed_at.is_some(),
        }
    }

    pub fn queue_item(&self) -> QueueItem {
        let busy = self.moving
            || self
                .snap
                .as_ref()
                .is_some_and(|s| s.state.is_checking() || s.state == TorrentState::Stopping);
        QueueItem {
            started: self.record.wanted == Wanted::Started && self.metainfo.is_some(),
            forced: self.record.force_start,
            complete: self.complete(),
            busy,
            slow: self.slow,
        }
    }

    /// The state word clients see.
    pub fn state_name(&self) -> &'static str {
        if self.moving {
            return "moving";
        }
        if self.error.is_some() {
            return "error";
        }
        let Some(s) = &self.snap else {
            return match (&self.metainfo, self.record.wanted) {
                (None, Wanted::Stopped) => "stopped",
                (None, Wanted::Started) => "metadata",
                (Some(_), _) => "loading",
            };
        };
        if !s.missing_files.is_empty() && !s.state.is_checking() {
            return "missing files";
        }
        match s.state {
            TorrentState::Paused if self.record.wanted == Wanted::Stopped => "stopped",
            TorrentState::Paused => "queued",
            TorrentState::CheckQueued => "check queued",
            other => other.name(),
        }
    }

    pub fn view(&self) -> TorrentView {
        // Everything but the .torrent's bytes (clients never need them back).
        let r = &self.record;
        let record = TorrentRecord {
            info_hash: r.info_hash,
            name: r.name.clone(),
            source: match &r.source {
                Source::Torrent(_) => Source::Torrent(Vec::new()),
                other => other.clone(),
            },
            save_path: r.save_path.clone(),
            category: r.category.clone(),
            tags: r.tags.clone(),
            wanted: r.wanted,
            force_start: r.force_start,
            share_limits: r.share_limits,
            rate_limits: r.rate_limits,
            added_at: r.added_at,
            completed_at: r.completed_at,
            uploaded: r.uploaded,
            downloaded: r.downloaded,
            seeding_time_s: r.seeding_time_s,
            active_time_s: r.active_time_s,
            pieces: r.pieces.clone(),
            file_stamps: r.file_stamps.clone(),
            moving_to: r.moving_to.clone(),
        };
        let s = self.snap.as_ref();
        let total = self.metainfo.as_ref().map_or(0, |m| m.info.total_length);
        let message = self.error.clone().or_else(|| {
            s.and_then(|s| {
                s.error.clone().or_else(|| {
                    (!s.missing_files.is_empty())
                        .then(|| format!("missing: {}", s.missing_files.join(", ")))
                })
            })
        });
        TorrentView {
            record,
            state: self.state_name().to_string(),
            progress: s.map_or(0.0, TorrentSnapshot::progress),
            pieces_have: s.map_or(0, |s| s.pieces_have),
            piece_count: self
                .metainfo
                .as_ref()
                .map_or(0, |m| m.info.pieces.len() as u32),
            total_length: total,
            bytes_left: s.map_or(total, |s| s.bytes_left),
            rate_up: s.map_or(0, |s| s.rate_up),
            rate_down: s.map_or(0, |s| s.rate_down),
            peers: s.map_or(0, |s| s.peers),
            seeds: s.map_or(0, |s| s.seeds),
            message,
            metainfo: self.metainfo.clone(),
            tracker_error: s.and_then(|s| s.tracker_error.clone()),
            running: self.running && !self.moving,
            queue_position: 0,
            uploaded_session: r.uploaded.saturating_sub(self.base_uploaded),
            downloaded_session: r.downloaded.saturating_sub(self.base_downloaded),
            last_activity: self.last_activity,
        }
    }
}
