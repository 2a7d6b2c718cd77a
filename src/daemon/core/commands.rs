//! The core's answers to [`Command`]s and the watch folder: each change is
//! recorded in the store (and acknowledged only once committed), then
//! applied to the session.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use ringseed::limits::TORRENT_FILE_BYTES_MAX;
use ringseed::magnet::Magnet;
use ringseed::metainfo::Metainfo;
use ringseed::runtime::disk::files_on_disk;
use ringseed::runtime::session::{Have, Mode, SessionError, Settings, TorrentLimits};
use ringseed::InfoHash;

use super::entry::Entry;
use super::startup::{add_request, all_pieces};
use super::watch::{self, ADDED_SUFFIX, INVALID_SUFFIX};
use super::{resume, unix_now, Core};
use crate::daemon::command::{
    AddRequest, Category, Command, CommandError, ConfigView, EngineFigures, QueueMove, Reply,
    Selector, TorrentView,
};
use crate::daemon::config::{ConfigPatch, PATCH_KEY};
use crate::daemon::record::{
    FileStamp, Source, TorrentRecord, Wanted, NAME_BYTES_MAX, TAGS_PER_TORRENT_MAX,
};

fn answer<T>(reply: &Reply<T>, value: Result<T, CommandError>) {
    let _ = reply.try_send(value);
}

fn engine(e: SessionError) -> CommandError {
    CommandError::Engine(e.to_string())
}

fn store(e: crate::daemon::store::StoreError) -> CommandError {
    CommandError::Store(e.to_string())
}

/// Checks a tag or category name.
fn check_name(kind: &str, name: &str) -> Result<(), CommandError> {
    if name.is_empty() || name.len() > NAME_BYTES_MAX || name.contains(['\n', '\r', ',']) {
        return Err(CommandError::Invalid(format!(
            "{kind} {name:?}: expected 1 to {NAME_BYTES_MAX} bytes without commas or line breaks"
        )));
    }
    Ok(())
}

impl Core {
    pub(super) fn handle(&mut self, c: Command) {
        match c {
            Command::Add { add, reply } => {
                let r = self.add(*add);
                answer(&reply, r);
            }
            Command::List { reply } => {
                // Numbers as of now, not of the last policy tick.
                self.refresh(std::time::Instant::now());
                let mut v: Vec<TorrentView> = self.entries.values().map(Entry::view).collect();
                if self.cfg.queue.enabled {
                    let mut place = 0u64;
                    let positions: std::collections::HashMap<InfoHash, u64> = self
                        .queue_order()
                        .into_iter()
                        .filter(|h| self.entries.get(h).is_some_and(|e| !e.complete()))
                        .map(|h| {
                            place += 1;
                            (h, place)
                        })
                        .collect();
                    for t in &mut v {
                        t.queue_position = positions.get(&t.record.info_hash).copied().unwrap_or(0);
                    }
                }
                v.sort_by_key(|t| (t.record.added_at, t.record.info_hash));
                answer(&reply, Ok(v));
            }
            Command::Stop { which, reply } => {
                let r = self.each(&which, |core, h| core.set_wanted(h, Wanted::Stopped));
                answer(&reply, r);
            }
            Command::Start { which, reply } => {
                let r = self.each(&which, |core, h| core.set_wanted(h, Wanted::Started));
                self.apply_queue();
                answer(&reply, r);
            }
            Command::ForceStart { which, on, reply } => {
                let r = self.each(&which, |core, h| {
                    core.edit(h, |r| {
                        r.force_start = on;
                        if on {
                            r.wanted = Wanted::Started;
                        }
                    })
                });
                self.apply_queue();
                answer(&reply, r);
            }
            Command::Recheck { which, reply } => {
                let r = self.each(&which, |core, h| {
                    let e = core
                        .entries
                        .get_mut(&h)
                        .ok_or(CommandError::UnknownTorrent(h))?;
                    let id = e.id.ok_or_else(|| busy(e))?;
                    e.saved_have = None;
                    e.check_pending = true;
                    core.session.recheck(id).map_err(engine)?;
                    Ok(true)
                });
                answer(&reply, r);
            }
            Command::Reannounce { which, reply } => {
                let r = self.each(&which, |core, h| {
                    let e = core
                        .entries
                        .get(&h)
                        .ok_or(CommandError::UnknownTorrent(h))?;
                    let id = e.id.ok_or_else(|| busy(e))?;
                    core.session.reannounce(id).map_err(engine)?;
                    Ok(true)
                });
                answer(&reply, r);
            }
            Command::SetCategory {
                which,
                category,
                reply,
            } => {
                if !category.is_empty() && !self.categories.contains_key(&category) {
                    answer(&reply, Err(CommandError::UnknownCategory(category)));
                    return;
                }
                let r = self.each(&which, |core, h| {
                    core.edit(h, |r| r.category = category.clone())
                });
                answer(&reply, r);
            }
            Command::AddTags { which, tags, reply } => {
                if let Err(e) = tags.iter().try_for_each(|t| check_name("tag", t)) {
                    answer(&reply, Err(e));
                    return;
                }
                let r = self.each(&which, |core, h| {
                    let n = core.entries.get(&h).map_or(0, |e| e.record.tags.len());
                    if n + tags.len() > TAGS_PER_TORRENT_MAX {
                        return Err(CommandError::Invalid(format!(
                            "at most {TAGS_PER_TORRENT_MAX} tags per torrent"
                        )));
                    }
                    core.edit(h, |r| r.tags.extend(tags.iter().cloned()))
                });
                answer(&reply, r);
            }
            Command::RemoveTags { which, tags, reply } => {
                let r = self.each(&which, |core, h| {
                    core.edit(h, |r| r.tags.retain(|t| !tags.contains(t)))
                });
                answer(&reply, r);
            }
            Command::SetShareLimits {
                which,
                limits,
                reply,
            } => {
                let r = self.each(&which, |core, h| core.edit(h, |r| r.share_limits = limits));
                answer(&reply, r);
            }
            Command::SetRateLimits {
                which,
                limits,
                reply,
            } => {
                let r = self.each(&which, |core, h| {
                    core.edit(h, |r| r.rate_limits = limits)?;
                    if let Some(id) = core.entries.get(&h).and_then(|e| e.id) {
                        let l = TorrentLimits {
                            upload_rate: limits.upload,
                            download_rate: limits.download,
                        };
                        core.session.set_limits(id, l).map_err(engine)?;
                    }
                    Ok(true)
                });
                answer(&reply, r);
            }
            Command::Move { which, dir, reply } => {
                if !dir.is_absolute() {
                    answer(
                        &reply,
                        Err(CommandError::Invalid(format!(
                            "{}: the new save path must be absolute",
                            dir.display()
                        ))),
                    );
                    return;
                }
                let r = self.each(&which, |core, h| core.start_move(h, dir.clone()));
                answer(&reply, r);
            }
            Command::Remove {
                which,
                delete_files,
                reply,
            } => {
                let r = self.each(&which, |core, h| core.remove_one(h, delete_files));
                answer(&reply, r);
            }
            Command::Categories { reply } => {
                let v = self
                    .categories
                    .iter()
                    .map(|(name, p)| Category {
                        name: name.clone(),
                        save_path: p.clone(),
                    })
                    .collect();
                answer(&reply, Ok(v));
            }
            Command::SetCategoryDef { category, reply } => {
                let r = check_name("category", &category.name).and_then(|()| {
                    if let Some(p) = &category.save_path {
                        if !p.is_absolute() {
                            return Err(CommandError::Invalid(format!(
                                "category {}: save path {} must be absolute",
                                category.name,
                                p.display()
                            )));
                        }
                    }
                    self.store.put_category(&category).map_err(store)?;
                    self.categories
                        .insert(category.name.clone(), category.save_path.clone());
                    Ok(())
                });
                answer(&reply, r);
            }
            Command::RemoveCategories { names, reply } => {
                let mut n = 0;
                let mut r = Ok(());
                for name in &names {
                    if self.categories.remove(name).is_some() {
                        n += 1;
                        if let Err(e) = self.store.remove_category(name) {
                            r = Err(store(e));
                        }
                        let users: Vec<InfoHash> = self
                            .entries
                            .values()
                            .filter(|e| &e.record.category == name)
                            .map(|e| e.record.info_hash)
                            .collect();
                        for h in users {
                            let _ = self.edit(h, |r| r.category.clear());
                        }
                    }
                }
                answer(&reply, r.map(|()| n));
            }
            Command::Get { hash, reply } => {
                let r = self
                    .entries
                    .get(&hash)
                    .map(Entry::view)
                    .ok_or(CommandError::UnknownTorrent(hash));
                answer(&reply, r);
            }
            Command::Pieces { hash, reply } => {
                let r = match self.entries.get(&hash) {
                    None => Err(CommandError::UnknownTorrent(hash)),
                    Some(e) => match e.id {
                        Some(id) => self
                            .session
                            .pieces(id)
                            .map(|b| b.as_bytes().to_vec())
                            .map_err(engine),
                        // Out of the session (moving): what was recorded.
                        None => Ok(e.record.pieces.clone().unwrap_or_default()),
                    },
                };
                answer(&reply, r);
            }
            Command::Peers { hash, reply } => {
                let r = match self.entries.get(&hash) {
                    None => Err(CommandError::UnknownTorrent(hash)),
                    Some(e) => match e.id {
                        Some(id) if e.running => self.session.peers(id).map_err(engine),
                        _ => Ok(Vec::new()),
                    },
                };
                answer(&reply, r);
            }
            Command::Export { hash, reply } => {
                let r = match self.entries.get(&hash).map(|e| &e.record.source) {
                    None => Err(CommandError::UnknownTorrent(hash)),
                    Some(Source::Torrent(b)) => Ok(b.clone()),
                    Some(Source::Magnet(_)) => Err(CommandError::Invalid(format!(
                        "torrent {hash} has no metadata yet"
                    ))),
                };
                answer(&reply, r);
            }
            Command::Rename { hash, name, reply } => {
                let r = if name.trim().is_empty()
                    || name.len() > NAME_BYTES_MAX * 4
                    || name.contains(['\n', '\r'])
                {
                    Err(CommandError::Invalid(format!(
                        "name {name:?}: expected 1 to {} bytes without line breaks",
                        NAME_BYTES_MAX * 4
                    )))
                } else {
                    self.edit(hash, |r| r.name = name).map(|_| ())
                };
                answer(&reply, r);
            }
            Command::QueueMove { which, to, reply } => {
                let r = self.queue_move(&which, to);
                answer(&reply, r);
            }
            Command::Config { reply } => {
                let v = ConfigView {
                    config: self.cfg.clone(),
                    download_dir: self.download_dir.clone(),
                    listen: self.session.local_addrs().to_vec(),
                    dht_nodes: self.session.dht_node_count(),
                };
                answer(&reply, Ok(v));
            }
            Command::EngineFigures { reply } => {
                let f = EngineFigures {
                    shard_turns: self.session.shard_turns(),
                    events_dropped: self.session.events_dropped(),
                };
                answer(&reply, Ok(f));
            }
            Command::SetConfig { patch, reply } => {
                let r = self.set_config(&patch);
                answer(&reply, r);
            }
            Command::PutValue { key, value, reply } => {
                let r = self.put_value(&key, value).map_err(store);
                answer(&reply, r);
            }
        }
    }

    /// Applies a Web API change over the running configuration; keeps it
    /// (committed) before answering, so that it survives a restart.
    fn set_config(&mut self, patch: &ConfigPatch) -> Result<Vec<String>, CommandError> {
        let mut new = self.cfg.clone();
        patch.apply(&mut new);
        if Settings::check(new.settings_raw()).is_err() {
            return Err(CommandError::Invalid(
                "the new settings do not fit together".to_string(),
            ));
        }
        let mut kept = self.patch.clone();
        kept.merge(patch);
        self.put_value(PATCH_KEY, kept.to_json()).map_err(store)?;
        self.patch = kept;
        self.apply_config(new, "Web API")
            .map_err(CommandError::Invalid)
    }

    /// Moves the selected torrents in the queue; the others keep their
    /// order.
    fn queue_move(&mut self, which: &Selector, to: QueueMove) -> Result<usize, CommandError> {
        let mut order = self.queue_order();
        let chosen: std::collections::HashSet<InfoHash> = match which {
            Selector::All => order.iter().copied().collect(),
            Selector::Hashes(h) => {
                if let Some(missing) = h.iter().find(|h| !self.entries.contains_key(h)) {
                    return Err(CommandError::UnknownTorrent(*missing));
                }
                h.iter().copied().collect()
            }
        };
        match to {
            QueueMove::Top => order.sort_by_key(|h| !chosen.contains(h)),
            QueueMove::Bottom => order.sort_by_key(|h| chosen.contains(h)),
            QueueMove::Up => {
                for i in 1..order.len() {
                    if chosen.contains(&order[i]) && !chosen.contains(&order[i - 1]) {
                        order.swap(i, i - 1);
                    }
                }
            }
            QueueMove::Down => {
                for i in (0..order.len().saturating_sub(1)).rev() {
                    if chosen.contains(&order[i]) && !chosen.contains(&order[i + 1]) {
                        order.swap(i, i + 1);
                    }
                }
            }
        }
        for (seq, h) in order.iter().enumerate() {
            if let Some(e) = self.entries.get_mut(h) {
                e.seq = seq as u64;
            }
        }
        self.next_seq = order.len() as u64;
        self.apply_queue();
        Ok(chosen.len())
    }

    /// Runs `f` on every selected torrent; answers how many it changed,
    /// or the first error (an unknown hash is an error before any change).
    fn each(
        &mut self,
        which: &Selector,
        mut f: impl FnMut(&mut Core, InfoHash) -> Result<bool, CommandError>,
    ) -> Result<usize, CommandError> {
        let hashes: Vec<InfoHash> = match which {
            Selector::All => self.entries.keys().copied().collect(),
            Selector::Hashes(h) => {
                if let Some(missing) = h.iter().find(|h| !self.entries.contains_key(h)) {
                    return Err(CommandError::UnknownTorrent(*missing));
                }
                h.clone()
            }
        };
        let mut n = 0;
        for h in hashes {
            if f(self, h)? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Changes a record and stores it (acknowledged once committed).
    fn edit(
        &mut self,
        h: InfoHash,
        change: impl FnOnce(&mut TorrentRecord),
    ) -> Result<bool, CommandError> {
        let e = self
            .entries
            .get_mut(&h)
            .ok_or(CommandError::UnknownTorrent(h))?;
        let mut rec = e.record.clone();
        change(&mut rec);
        if rec == e.record {
            return Ok(false);
        }
        self.store.put(&rec).map_err(store)?;
        e.record = rec;
        Ok(true)
    }

    /// Stops or starts a torrent for the user.
    pub(super) fn set_wanted(&mut self, h: InfoHash, wanted: Wanted) -> Result<bool, CommandError> {
        let changed = self.edit(h, |r| {
            r.wanted = wanted;
            if wanted == Wanted::Stopped {
                r.force_start = false;
            }
        })?;
        if wanted == Wanted::Stopped {
            if let Some(e) = self.entries.get_mut(&h) {
                e.queued = false;
                if e.metainfo.is_none() {
                    self.session.cancel_metadata(h);
                }
                if let (Some(id), true) = (e.id, e.running) {
                    self.session.pause(id).map_err(engine)?;
                    e.running = false;
                }
            }
        } else if self.entries.get(&h).is_some_and(|e| e.metainfo.is_none()) {
            // A magnet: fetch its metadata (again; a fetch in progress
            // goes on).
            self.start_fetch(h);
        }
        Ok(changed)
    }

    /// Removes a torrent (and its data when asked).
    pub(super) fn remove_one(
        &mut self,
        h: InfoHash,
        delete_files: bool,
    ) -> Result<bool, CommandError> {
        let e = self
            .entries
            .get(&h)
            .ok_or(CommandError::UnknownTorrent(h))?;
        if e.moving {
            return Err(CommandError::Invalid(format!(
                "{} is being moved: remove it once the move ended",
                e.record.name
            )));
        }
        if e.metainfo.is_none() {
            self.session.cancel_metadata(h);
        }
        if let Some(id) = e.id {
            match self.session.remove(id, delete_files) {
                Ok(_) | Err(SessionError::UnknownTorrent(_)) => {}
                Err(err) => return Err(engine(err)),
            }
            self.by_id.remove(&id);
        }
        self.store.remove(h).map_err(store)?;
        if let Some(e) = self.entries.remove(&h) {
            tracing::info!(
                "{}: removed{}",
                e.record.name,
                if delete_files { " with its data" } else { "" }
            );
        }
        Ok(true)
    }

    /// Records the move, takes the torrent out of the session, and moves
    /// its files on a thread.
    fn start_move(&mut self, h: InfoHash, dir: std::path::PathBuf) -> Result<bool, CommandError> {
        let e = self
            .entries
            .get(&h)
            .ok_or(CommandError::UnknownTorrent(h))?;
        if e.moving {
            return Err(CommandError::Invalid(format!(
                "{} is already being moved",
                e.record.name
            )));
        }
        if e.record.save_path == dir {
            return Ok(false);
        }
        if e.metainfo.is_none() {
            // A magnet has no data yet: only its save path changes.
            return self.edit(h, |r| r.save_path = dir);
        }
        // One thread per move: bounded.
        let moving = self.entries.values().filter(|e| e.moving).count();
        if moving >= super::MOVES_MAX {
            return Err(CommandError::Invalid(format!(
                "{moving} moves are running, the most at once; move {} once some ended",
                e.record.name
            )));
        }
        let id = e.id;
        let name = e.record.name.clone();
        let pieces = match id {
            Some(id) => Some(self.session.pieces(id).map_err(engine)?),
            None => None,
        };
        let from = e.record.save_path.clone();
        self.edit(h, |r| {
            r.moving_to = Some(dir.clone());
            if let Some(p) = &pieces {
                r.pieces = Some(p.as_bytes().to_vec());
            }
        })?;
        if let Some(id) = id {
            match self.session.remove(id, false) {
                Ok(_) | Err(SessionError::UnknownTorrent(_)) => {}
                Err(err) => return Err(engine(err)),
            }
            self.by_id.remove(&id);
        }
        if let Some(e) = self.entries.get_mut(&h) {
            e.id = None;
            e.snap = None;
            e.running = false;
            e.moving = true;
            e.error = None;
        }
        tracing::info!(
            "{name}: moving from {} to {}",
            from.display(),
            dir.display()
        );
        self.spawn_move(h, from, dir);
        Ok(true)
    }

    /// Adds a torrent: checked, recorded durably, then given to the
    /// session.
    pub(super) fn add(&mut self, add: AddRequest) -> Result<InfoHash, CommandError> {
        let (hash, name, m) = match &add.source {
            Source::Torrent(bytes) => {
                if bytes.len() as u64 > TORRENT_FILE_BYTES_MAX {
                    return Err(CommandError::Invalid(format!(
                        "the .torrent is {} bytes, more than the {TORRENT_FILE_BYTES_MAX} allowed",
                        bytes.len()
                    )));
                }
                let m = Metainfo::from_bytes(bytes)
                    .map_err(|e| CommandError::Invalid(format!("not a valid .torrent: {e}")))?;
                let name = m.info.name.clone();
                (m.info_hash, name, Some(m))
            }
            Source::Magnet(uri) => {
                let mg = Magnet::parse(uri)
                    .map_err(|e| CommandError::Invalid(format!("not a valid magnet link: {e}")))?;
                let name = magnet_name(&mg);
                (mg.info_hash, name, None)
            }
        };
        if let Some(e) = self.entries.get(&hash) {
            return Err(CommandError::Duplicate {
                name: e.record.name.clone(),
                hash,
            });
        }
        if !add.category.is_empty() && !self.categories.contains_key(&add.category) {
            return Err(CommandError::UnknownCategory(add.category));
        }
        add.tags.iter().try_for_each(|t| check_name("tag", t))?;
        if add.tags.len() > TAGS_PER_TORRENT_MAX {
            return Err(CommandError::Invalid(format!(
                "{} tags: at most {TAGS_PER_TORRENT_MAX} per torrent",
                add.tags.len()
            )));
        }
        let save_path = match &add.save_path {
            Some(p) if !p.is_absolute() => {
                return Err(CommandError::Invalid(format!(
                    "save path {} must be absolute",
                    p.display()
                )))
            }
            Some(p) => p.clone(),
            None => self
                .categories
                .get(&add.category)
                .cloned()
                .flatten()
                .unwrap_or_else(|| self.download_dir.clone()),
        };
        let mut rec = TorrentRecord {
            info_hash: hash,
            name,
            source: add.source.clone(),
            save_path,
            category: add.category.clone(),
            tags: add.tags.clone(),
            wanted: if add.stopped {
                Wanted::Stopped
            } else {
                Wanted::Started
            },
            force_start: false,
            share_limits: add.share_limits,
            rate_limits: add.rate_limits,
            added_at: unix_now(),
            completed_at: None,
            uploaded: 0,
            downloaded: 0,
            seeding_time_s: 0,
            active_time_s: 0,
            pieces: None,
            file_stamps: Vec::new(),
            moving_to: None,
        };
        // Same second: keep the order of adds (the queue's order).
        if let Some(last) = self.entries.values().map(|e| e.record.added_at).max() {
            rec.added_at = rec.added_at.max(last);
        }
        let Some(m) = m else {
            return self.add_magnet(rec);
        };
        let m = Arc::new(m);
        let mut have = Have::Check;
        if add.skip_check
            && files_on_disk(&m, &rec.save_path)
                .iter()
                .all(|f| f.size_ok())
        {
            if let Some(all) = all_pieces(&m) {
                rec.pieces = Some(all.as_bytes().to_vec());
                rec.file_stamps = stamps(&m, &rec.save_path);
                rec.completed_at = Some(rec.added_at);
                have = Have::Known(all);
            }
        }
        self.store.put(&rec).map_err(store)?;
        let mut entry = Entry::new(rec, Some(m.clone()));
        entry.seq = self.next_seq;
        self.next_seq += 1;
        if matches!(have, Have::Known(_)) {
            entry.saved_have = Some(m.info.pieces.len() as u32);
        } else {
            entry.check_pending = true;
        }
        self.entries.insert(hash, entry);
        let run = self.would_run(hash);
        let Some(e) = self.entries.get_mut(&hash) else {
            return Ok(hash);
        };
        let req = add_request(&e.record, m, Mode::Download, have, !run);
        match self.session.add_torrent(req) {
            Ok(id) => {
                e.id = Some(id);
                e.running = run;
                e.queued = !run && e.record.wanted == Wanted::Started;
                self.by_id.insert(id, hash);
                tracing::info!(
                    "{}: added ({}, save path {})",
                    e.record.name,
                    hash,
                    e.record.save_path.display()
                );
                Ok(hash)
            }
            Err(err) => {
                // Not acknowledged: forget it again.
                self.entries.remove(&hash);
                let _ = self.store.remove(hash);
                Err(engine(err))
            }
        }
    }

    /// Adds a magnet: recorded durably (no metadata yet), then its
    /// metadata fetched unless it was added stopped.
    fn add_magnet(&mut self, rec: TorrentRecord) -> Result<InfoHash, CommandError> {
        let hash = rec.info_hash;
        self.store.put(&rec).map_err(store)?;
        let mut entry = Entry::new(rec, None);
        entry.seq = self.next_seq;
        self.next_seq += 1;
        tracing::info!(
            "{}: added as a magnet ({hash}, save path {})",
            entry.record.name,
            entry.record.save_path.display()
        );
        self.entries.insert(hash, entry);
        self.start_fetch(hash);
        Ok(hash)
    }

    /// Adds what waits in the watch folder.
    pub(super) fn scan_watch_dir(&mut self) {
        let Some(dir) = self.cfg.paths.watch_dir.clone() else {
            return;
        };
        let dropped = match watch::scan(&dir, TORRENT_FILE_BYTES_MAX, SystemTime::now()) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("watch folder {}: {e}", dir.display());
                return;
            }
        };
        for d in dropped {
            let req = AddRequest {
                source: Source::Torrent(d.bytes),
                save_path: None,
                category: String::new(),
                tags: BTreeSet::new(),
                stopped: false,
                share_limits: Default::default(),
                rate_limits: Default::default(),
                skip_check: false,
            };
            let shown = d.path.display().to_string();
            match self.add(req) {
                Ok(_) => mark(&d.path, ADDED_SUFFIX),
                Err(CommandError::Duplicate { name, hash }) => {
                    tracing::info!("watch folder: {shown}: {name} ({hash}) is already added");
                    mark(&d.path, ADDED_SUFFIX);
                }
                Err(CommandError::Invalid(why)) if d.settled => {
                    tracing::warn!("watch folder: {shown}: {why}");
                    mark(&d.path, INVALID_SUFFIX);
                }
                Err(CommandError::Invalid(_)) => {} // maybe still being written
                Err(e) => tracing::warn!("watch folder: {shown}: {e} (tried again later)"),
            }
        }
    }
}

fn mark(path: &Path, suffix: &str) {
    if let Err(e) = watch::mark(path, suffix) {
        tracing::warn!("watch folder: cannot rename {}: {e}", path.display());
    }
}

fn busy(e: &Entry) -> CommandError {
    CommandError::Invalid(format!(
        "{} is not in the engine now ({})",
        e.record.name,
        e.state_name()
    ))
}

/// A magnet's name until its metadata comes: its `dn`, else its
/// info-hash in hex.
pub(super) fn magnet_name(m: &Magnet) -> String {
    m.display_name
        .as_deref()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .map_or_else(
            || m.info_hash.to_hex(),
            |n| n.chars().take(NAME_BYTES_MAX).collect(),
        )
}

/// The stamps of a torrent's files now.
pub(super) fn stamps(m: &Metainfo, save_path: &Path) -> Vec<FileStamp> {
    ringseed::runtime::disk::disk_files(m, save_path)
        .iter()
        .map(|f| match &f.path {
            Some(p) => resume::stamp(p),
            None => FileStamp {
                size: None,
                mtime_ns: 0,
            },
        })
        .collect()
}
