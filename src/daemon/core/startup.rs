//! Starting the core: the store is opened and read, the session started
//! (listeners up, the DHT given the nodes kept at the last shutdown), every
//! recorded torrent added, resumed from its recorded pieces where its files
//! did not change, interrupted moves finished, and the metadata of every
//! started magnet fetched again.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use crossbeam_channel::bounded;
use ringseed::metainfo::Metainfo;
use ringseed::runtime::session::{
    AddPending, AddTorrent, Have, Mode, Session, Settings, TorrentLimits,
};
use ringseed::torrent::Bitfield;
use ringseed::InfoHash;

use super::entry::Entry;
use super::resume::{self, Resume};
use super::{policy, Core, CoreSetup, ADDS_IN_FLIGHT_MAX, MOVES_MAX, SAVE_INTERVAL};
use crate::daemon::command::{Command, COMMAND_QUEUE_MAX};
use crate::daemon::config::{ConfigPatch, PATCH_KEY};
use crate::daemon::record::{Source, TorrentRecord, Wanted};
use crate::daemon::store::Store;

/// What the engine gets for a record: its mode and pieces.
pub(super) fn have_for(rec: &TorrentRecord, m: &Metainfo) -> (Mode, Have, String) {
    let plan = resume::plan(m, &rec.save_path, rec.pieces.as_deref(), &rec.file_stamps);
    let complete = rec.completed_at.is_some();
    let mode = if complete { Mode::Seed } else { Mode::Download };
    match plan {
        Resume::Trust(bits) => {
            let n = bits.count_ones();
            (mode, Have::Known(bits), format!("{n} pieces resumed"))
        }
        Resume::Partial {
            known,
            check,
            changed_files,
        } => {
            let why = format!(
                "{} file(s) changed since the last save: checking their {} pieces",
                changed_files.len(),
                check.count_ones()
            );
            (mode, Have::Partial { known, check }, why)
        }
        Resume::CheckAll => (mode, Have::Check, "checking all pieces".into()),
    }
}

impl Core {
    /// Opens the store, starts the session, adds every recorded torrent.
    pub fn start(setup: CoreSetup, commands: crossbeam_channel::Receiver<Command>) -> Result<Core> {
        let t0 = Instant::now();
        crate::cli::session_run::mark_started(t0);
        let loaded = Store::open(&setup.state_dir)?;
        // What the Web API changed at run time, over the file.
        let mut setup = setup;
        let patch = match loaded.values.get(PATCH_KEY) {
            None => ConfigPatch::default(),
            Some(bytes) => ConfigPatch::from_json(bytes).unwrap_or_else(|| {
                tracing::warn!(
                    "the settings changed through the Web API could not be read back; \
                     the configuration file's are used"
                );
                ConfigPatch::default()
            }),
        };
        if !patch.is_empty() {
            patch.apply(&mut setup.config);
            if let Some(d) = &patch.download_dir {
                setup.download_dir = d.clone();
            }
            tracing::info!(
                "settings changed through the Web API, over the configuration file: {}",
                patch.keys().join(", ")
            );
        }
        let settings = Settings::check(setup.config.settings_raw()).context("the configuration")?;
        let mut session_config = setup.config.session_config();
        if let Some(dht) = session_config.dht.as_mut() {
            dht.saved_nodes = Core::saved_dht_nodes(&loaded.values);
            if !dht.saved_nodes.is_empty() {
                tracing::info!(
                    "DHT: {} nodes kept from the last run",
                    dht.saved_nodes.len()
                );
            }
        }
        let session = Session::start(session_config, settings)?;
        let (moves_tx, moves_rx) = bounded(MOVES_MAX);
        let mut categories = BTreeMap::new();
        for c in loaded.categories {
            categories.insert(c.name, c.save_path);
        }
        for (name, c) in &setup.config.categories {
            categories.insert(name.clone(), c.save_path.clone());
        }
        let now = Instant::now();
        let mut core = Core {
            session,
            store: loaded.store,
            cfg: setup.config,
            reload: setup.reload,
            download_dir: setup.download_dir,
            notifier: setup.notifier,
            entries: HashMap::with_capacity(loaded.torrents.len()),
            by_id: HashMap::with_capacity(loaded.torrents.len()),
            categories,
            commands,
            moves_tx,
            moves_rx,
            last_policy: now,
            next_save: now + SAVE_INTERVAL,
            next_watch: now,
            next_status: None,
            next_watchdog: Some(now),
            last_turns: Vec::new(),
            started: t0,
            next_seq: 0,
            values: loaded.values,
            patch,
        };
        core.next_status = core.status_every().map(|e| now + e);
        let _ = COMMAND_QUEUE_MAX;
        let mut parsed = loaded.parsed;
        for rec in loaded.torrents {
            let metainfo = match &rec.source {
                Source::Torrent(_) if parsed.contains_key(&rec.info_hash) => {
                    parsed.remove(&rec.info_hash)
                }
                Source::Torrent(bytes) => match Metainfo::from_bytes(bytes) {
                    Ok(m) => Some(Arc::new(m)),
                    Err(e) => {
                        tracing::warn!(
                            "{} ({}): the recorded .torrent does not parse: {e}; left out",
                            rec.name,
                            rec.info_hash
                        );
                        continue;
                    }
                },
                Source::Magnet(_) => None,
            };
            if let Some(m) = metainfo.as_ref().filter(|m| m.info_hash != rec.info_hash) {
                tracing::warn!(
                    "{} ({}): the recorded .torrent is of {}; left out",
                    rec.name,
                    rec.info_hash,
                    m.info_hash
                );
                continue;
            }
            core.entries
                .insert(rec.info_hash, Entry::new(rec, metainfo));
        }
        for (seq, hash) in core.queue_order().into_iter().enumerate() {
            if let Some(e) = core.entries.get_mut(&hash) {
                e.seq = seq as u64;
            }
        }
        core.next_seq = core.entries.len() as u64;
        if let Some(w) = core.notifier.as_ref().and_then(|n| n.watchdog_interval()) {
            tracing::info!("systemd watchdog: {} ms", w.as_millis());
        }
        core.add_all();
        Ok(core)
    }

    /// Adds every loaded torrent, pipelined ([`ADDS_IN_FLIGHT_MAX`] at
    /// once), paused where the queue or the user says so; finishes the
    /// moves a kill interrupted first.
    fn add_all(&mut self) {
        let order = self.queue_order();
        let items: Vec<_> = order
            .iter()
            .filter_map(|h| self.entries.get(h))
            .map(Entry::queue_item)
            .collect();
        let plan = policy::queue_plan(&items, &self.cfg.queue);
        let mut pending: Vec<(InfoHash, AddPending)> = Vec::new();
        let mut resumed = 0usize;
        let mut checking = 0usize;
        let mut magnets = Vec::new();
        for (hash, run) in order.iter().zip(plan) {
            let Some(e) = self.entries.get_mut(hash) else {
                continue;
            };
            let Some(m) = e.metainfo.clone() else {
                magnets.push(*hash);
                continue;
            };
            if let Some(to) = e.record.moving_to.clone() {
                e.moving = true;
                let from = e.record.save_path.clone();
                tracing::info!("{}: finishing its move to {}", e.record.name, to.display());
                self.spawn_move(*hash, from, to);
                continue;
            }
            let (mode, have, why) = have_for(&e.record, &m);
            match &have {
                Have::Known(_) => resumed += 1,
                _ => {
                    checking += 1;
                    e.check_pending = true;
                    tracing::info!("{}: {why}", e.record.name);
                }
            }
            let add = add_request(&e.record, m, mode, have, !run);
            e.running = run;
            e.queued = !run && e.record.wanted == Wanted::Started;
            match self.session.send_add(add) {
                Ok(p) => pending.push((*hash, p)),
                Err(err) => {
                    tracing::warn!("{}: not added: {err}", e.record.name);
                    e.error = Some(err.to_string());
                }
            }
            if pending.len() >= ADDS_IN_FLIGHT_MAX {
                self.wait_adds(&mut pending);
                if let Some(n) = &self.notifier {
                    // A large library loads in batches: each one that
                    // finishes asks systemd for more start time.
                    n.extend_timeout(std::time::Duration::from_secs(30));
                }
            }
        }
        self.wait_adds(&mut pending);
        for hash in &magnets {
            self.start_fetch(*hash);
        }
        tracing::info!(
            "loaded {} torrents from the state database in {} ms: {resumed} resumed without a check, {checking} to check, {} magnets without metadata",
            self.entries.len(),
            self.started.elapsed().as_millis(),
            magnets.len()
        );
    }

    fn wait_adds(&mut self, pending: &mut Vec<(InfoHash, AddPending)>) {
        for (hash, p) in pending.drain(..) {
            let result = p.wait(&self.session, ringseed::runtime::session::ANSWER_TIMEOUT);
            let Some(e) = self.entries.get_mut(&hash) else {
                continue;
            };
            match result {
                Ok(id) => {
                    e.id = Some(id);
                    self.by_id.insert(id, hash);
                }
                Err(err) => {
                    tracing::warn!("{}: not added: {err}", e.record.name);
                    e.error = Some(err.to_string());
                }
            }
        }
    }

    /// Adds one torrent of the core to the session (after a move).
    pub(super) fn add_to_session(&mut self, hash: InfoHash) {
        self.add_to_session_with(hash, Vec::new());
    }

    /// Adds one torrent of the core to the session, with peers to dial
    /// (a magnet whose metadata arrived).
    pub(super) fn add_to_session_with(&mut self, hash: InfoHash, peers: Vec<std::net::SocketAddr>) {
        let run = self.would_run(hash);
        let Some(e) = self.entries.get_mut(&hash) else {
            return;
        };
        let Some(m) = e.metainfo.clone() else { return };
        let (mode, have, _) = have_for(&e.record, &m);
        e.check_pending = !matches!(have, Have::Known(_));
        let mut add = add_request(&e.record, m, mode, have, !run);
        add.peers = peers;
        match self.session.add_torrent(add) {
            Ok(id) => {
                e.id = Some(id);
                e.running = run;
                e.queued = !run && e.record.wanted == Wanted::Started;
                e.snap = None;
                self.by_id.insert(id, hash);
            }
            Err(err) => {
                tracing::warn!("{}: not added: {err}", e.record.name);
                e.error = Some(err.to_string());
            }
        }
    }
}

/// The session's add request for a record.
pub(super) fn add_request(
    rec: &TorrentRecord,
    m: Arc<Metainfo>,
    mode: Mode,
    have: Have,
    paused: bool,
) -> AddTorrent {
    let mut add = AddTorrent::new(m, rec.save_path.clone(), mode);
    add.have = have;
    add.paused = paused;
    add.limits = TorrentLimits {
        upload_rate: rec.rate_limits.upload,
        download_rate: rec.rate_limits.download,
    };
    add.uploaded_before = rec.uploaded;
    add.downloaded_before = rec.downloaded;
    add
}

/// Every piece of `m` (for "skip check").
pub(super) fn all_pieces(m: &Metainfo) -> Option<Bitfield> {
    Bitfield::full(m.info.pieces.len()).ok()
}
