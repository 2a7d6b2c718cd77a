//! The session's requests, as a shard carries them out, and each torrent's
//! lifecycle: start (an engine is made from the pieces on disk), drain
//! (peers closed, disk ops waited for), pause, check again, remove.
//!
//! Every request is answered (see `session::control`); the state machine
//! itself is in [`super::torrents`].

use std::collections::HashMap;
use std::sync::Arc;

use super::torrents::{Entry, Next, Phase, Running, WAITING_PEERS_MAX};
use super::Shard;
use crate::engine::{PeerSource, Torrent, TorrentSetup};
use crate::runtime::checker::{CheckJob, CheckOutcome, CheckProgress, PartialCheck};
use crate::runtime::disk::disk_files;
use crate::runtime::session::control::{answer, Control, ControlError, Removed, ShardAdd};
use crate::runtime::session::types::{Event, Have, Mode, TorrentId, TorrentLimits};
use crate::runtime::tracker_worker::TrackerJob;

impl Shard {
    /// Handles what waits in the control queue (a bounded number per turn).
    pub(super) fn handle_control(&mut self) {
        for _ in 0..super::CONTROL_PER_TURN_MAX {
            let Ok(msg) = self.control.try_recv() else {
                return;
            };
            self.on_control(msg);
        }
        // More is waiting: come back at once rather than after a wait.
        if !self.control.is_empty() {
            self.waker.handle().wake();
        }
    }

    pub(super) fn on_control(&mut self, msg: Control) {
        if self.stopping.is_some() {
            self.refuse_stopping(msg);
            return;
        }
        match msg {
            Control::Add { add, reply } => answer(&reply, self.add(*add)),
            Control::Remove { id, reply } => match self.torrents.get_mut(id) {
                None => answer(&reply, Err(ControlError::UnknownTorrent(id))),
                Some(e) => match &mut e.phase {
                    Phase::Draining(Next::Remove { .. }) => {
                        answer(&reply, Err(ControlError::Removing(id)))
                    }
                    Phase::Draining(next) => *next = Next::Remove { reply },
                    Phase::Active => self.begin_drain(id, Next::Remove { reply }),
                    Phase::Checking | Phase::Paused | Phase::Error => {
                        if let Some(c) = e.check.take() {
                            c.cancel();
                        }
                        let removed = self.forget(id);
                        answer(&reply, Ok(removed));
                    }
                },
            },
            Control::Pause { id, reply } => answer(&reply, self.pause(id)),
            Control::Resume { id, reply } => answer(&reply, self.resume(id)),
            Control::Recheck { id, reply } => answer(&reply, self.recheck(id)),
            Control::SetLimits { id, limits, reply } => answer(&reply, self.set_limits(id, limits)),
            Control::ApplySettings { settings, reply } => {
                self.apply_settings(settings);
                answer(&reply, Ok(()));
            }
            Control::AddPeers {
                id,
                peers,
                source,
                reply,
            } => answer(&reply, self.add_peers(id, &peers, source)),
            Control::Pieces { id, reply } => {
                let r = self
                    .torrents
                    .get(id)
                    .map(|e| e.pieces().clone())
                    .ok_or(ControlError::UnknownTorrent(id));
                answer(&reply, r);
            }
            Control::PiecesVersions { reply } => answer(&reply, Ok(self.pieces_versions())),
            Control::Peers { id, reply } => {
                let now = self.now;
                let r = self
                    .torrents
                    .get(id)
                    .map(|e| {
                        e.run
                            .as_ref()
                            .map_or_else(Vec::new, |r| r.torrent.peer_infos(now))
                    })
                    .ok_or(ControlError::UnknownTorrent(id));
                answer(&reply, r);
            }
            Control::Reannounce { id, reply } => answer(&reply, self.reannounce(id)),
            Control::Snapshot { id, reply } => {
                let r = match id {
                    Some(id) => self
                        .torrents
                        .get(id)
                        .map(|e| vec![e.snapshot()])
                        .ok_or(ControlError::UnknownTorrent(id)),
                    None => Ok(self.torrents.iter().map(|(_, e)| e.snapshot()).collect()),
                };
                answer(&reply, r);
            }
            Control::Checked(outcome) => self.on_checked(*outcome),
            Control::Known { info_hash, owner } => match owner {
                Some(owner) => self.req2.know(info_hash, owner),
                None => self.req2.forget(&info_hash),
            },
            Control::Stop => self.stop(),
            #[cfg(test)]
            Control::Stall(d, ack) => {
                let _ = ack.send(());
                std::thread::sleep(d);
            }
        }
    }

    /// While stopping, requests are answered with `Stopping` (snapshots
    /// still work: the CLI reads final numbers).
    pub(super) fn refuse_stopping(&mut self, msg: Control) {
        let no = ControlError::Stopping;
        match msg {
            Control::Add { reply, .. } => answer(&reply, Err(no)),
            Control::Remove { reply, .. } => answer(&reply, Err(no)),
            Control::Pause { reply, .. }
            | Control::Resume { reply, .. }
            | Control::Recheck { reply, .. }
            | Control::SetLimits { reply, .. }
            | Control::ApplySettings { reply, .. } => answer(&reply, Err(no)),
            Control::AddPeers { reply, .. } => answer(&reply, Err(no)),
            Control::Reannounce { reply, .. } => answer(&reply, Err(no)),
            // The pieces are still true while stopping (the daemon saves
            // them last).
            Control::Pieces { id, reply } => {
                let r = self
                    .torrents
                    .get(id)
                    .map(|e| e.pieces().clone())
                    .ok_or(ControlError::UnknownTorrent(id));
                answer(&reply, r);
            }
            Control::PiecesVersions { reply } => answer(&reply, Ok(self.pieces_versions())),
            Control::Peers { reply, .. } => answer(&reply, Err(no)),
            Control::Snapshot { id, reply } => {
                let all = self.torrents.iter().map(|(_, e)| e.snapshot());
                answer(
                    &reply,
                    Ok(all.filter(|s| id.is_none_or(|i| i == s.id)).collect()),
                );
            }
            Control::Checked(_) | Control::Known { .. } | Control::Stop => {}
            #[cfg(test)]
            Control::Stall(..) => {}
        }
    }

    fn add(&mut self, add: ShardAdd) -> Result<(), ControlError> {
        let ShardAdd {
            id,
            metainfo,
            save_dir,
            mode,
            have,
            storage,
            paused,
            peers,
            limits,
            uploaded_before,
            downloaded_before,
        } = add;
        let pieces = metainfo.info.pieces.len();
        let bad = |reason: String| ControlError::BadId { id, reason };
        let wrong = |b: &crate::torrent::Bitfield, what: &str| {
            bad(format!("{} {what}-bits for {pieces} pieces", b.len()))
        };
        let mut partial = None;
        let known = match have {
            Have::Known(b) if b.len() == pieces => Some(b),
            Have::Known(b) => return Err(wrong(&b, "have")),
            Have::Check => None,
            Have::Partial { known, .. } if known.len() != pieces => {
                return Err(wrong(&known, "known"))
            }
            Have::Partial { check, .. } if check.len() != pieces => {
                return Err(wrong(&check, "check"))
            }
            Have::Partial { known, check } => {
                partial = Some(PartialCheck { known, check });
                None
            }
        };
        let empty = crate::torrent::Bitfield::new(pieces).map_err(|e| bad(e.to_string()))?;
        // While checked, the pieces of a partial check are the trusted ones.
        let before_check = partial.as_ref().map(PartialCheck::trusted);
        let mut waiting_peers = peers;
        waiting_peers.truncate(WAITING_PEERS_MAX);
        let entry = Entry {
            id,
            info_hash: metainfo.info_hash,
            metainfo,
            save_dir,
            mode,
            phase: Phase::Paused,
            run: None,
            storage,
            have: known.clone().or(before_check).unwrap_or(empty),
            paused,
            limits,
            waiting_peers,
            uploaded_before,
            downloaded_before,
            uploaded_here: 0,
            downloaded_here: 0,
            hash_failures_here: 0,
            io_ops: 0,
            checks_done: 0,
            check: None,
            error: None,
        };
        self.torrents
            .insert(entry)
            .map_err(|e| bad(e.to_string()))?;
        if partial.is_some() {
            self.submit_check_with(id, partial);
        } else if known.is_none() || self.torrents.get(id).is_some_and(|e| e.storage.is_none()) {
            self.submit_check(id);
        } else if !paused {
            self.start(id);
        }
        Ok(())
    }

    /// Queues a data check of `id` (the torrent is `Checking` meanwhile).
    fn submit_check(&mut self, id: TorrentId) {
        self.submit_check_with(id, None);
    }

    /// [`Shard::submit_check`] that, with `partial`, hashes only the pieces
    /// it names (the first check of a torrent added with `Have::Partial`).
    fn submit_check_with(&mut self, id: TorrentId, partial: Option<PartialCheck>) {
        let Some(route) = self.routes.get(self.index).map(|r| r.control.clone()) else {
            return;
        };
        let Some(e) = self.torrents.get_mut(id) else {
            return;
        };
        let progress = CheckProgress::new();
        e.check = Some(progress.clone());
        e.phase = Phase::Checking;
        e.error = None;
        let job = CheckJob {
            id,
            metainfo: e.metainfo.clone(),
            save_dir: e.save_dir.clone(),
            // Files missing at the last open are looked for again.
            open: e
                .storage
                .as_ref()
                .is_none_or(|s| !s.missing_files().is_empty())
                .then_some(e.mode),
            progress,
            partial,
            reply: route,
        };
        if self.checker.submit(job).is_err() {
            self.fail(id, "the checker's queue is full".to_owned());
        }
    }

    fn on_checked(&mut self, outcome: CheckOutcome) {
        let id = outcome.id;
        let Some(e) = self.torrents.get_mut(id) else {
            return;
        };
        // A stale result (the torrent was checked again since): ignored.
        let current = e
            .check
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(c, &outcome.progress));
        if !current || !matches!(e.phase, Phase::Checking) {
            return;
        }
        e.check = None;
        match outcome.result {
            Ok(checked) => {
                e.have = checked.have;
                e.checks_done = e.checks_done.wrapping_add(1);
                if checked.storage.is_some() {
                    e.storage = checked.storage;
                }
                let pieces_have = e.have.count_ones() as u32;
                let pieces = e.have.len() as u32;
                let paused = e.paused;
                e.phase = Phase::Paused;
                self.events.send(Event::Checked {
                    id,
                    pieces_have,
                    pieces,
                });
                if !paused {
                    self.start(id);
                }
            }
            Err(err) => self.fail(id, err.to_string()),
        }
    }

    /// The torrent stops on an error (kept, with the reason, until the user
    /// resumes, checks or removes it).
    fn fail(&mut self, id: TorrentId, error: String) {
        if let Some(e) = self.torrents.get_mut(id) {
            e.phase = Phase::Error;
            e.error = Some(error.clone());
            e.check = None;
        }
        self.events.send(Event::Error { id, error });
    }

    /// Makes the engine of a checked torrent and starts serving.
    fn start(&mut self, id: TorrentId) {
        let now = self.now;
        let seed = self.rng_seed ^ id.to_u64().wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let engine_settings = self.engine_settings.clone();
        let listen_port = self.listen_port;
        let own_addrs = self.own_addrs.to_vec();
        let peer_id = self.peer_id;
        let Some(e) = self.torrents.get_mut(id) else {
            return;
        };
        if e.storage.is_none() {
            return;
        }
        let info = &e.metainfo.info;
        // BEP 27: a private torrent's peers come from its trackers only.
        let public = !info.private;
        let setup = TorrentSetup {
            info_hash: e.info_hash,
            piece_length: info.piece_length,
            total_length: info.total_length,
            piece_hashes: Arc::from(info.pieces.clone()),
            have: e.have.clone(),
            peer_id,
            listen_port,
            listen_addrs: own_addrs,
            has_trackers: !e.trackers().is_empty(),
            download: e.mode == Mode::Download,
            rng_seed: seed,
            // As libtorrent: a private torrent's metadata goes to no peer
            // that asks (it is had from its tracker's site only).
            metadata: public.then(|| e.metainfo.info_bytes.clone()),
            pex: public && self.pex,
        };
        if public {
            if let Some(dht) = &self.dht {
                dht.announce(e.info_hash, listen_port);
            }
            if let Some(lsd) = &self.lsd {
                // A full queue drops it; the next start announces again.
                let _ = lsd.announce(e.info_hash);
            }
        }
        let torrent = match Torrent::new(setup, engine_settings, now) {
            Ok(t) => t,
            Err(err) => {
                let reason = err.to_string();
                self.fail(id, reason);
                return;
            }
        };
        let peers = std::mem::take(&mut e.waiting_peers);
        e.run = Some(Box::new(Running {
            torrent,
            conn_of: HashMap::new(),
        }));
        e.phase = Phase::Active;
        e.error = None;
        let limits = e.limits;
        self.apply_torrent_limits(id, limits);
        // Its share of the global slots before any peer can be unchoked.
        self.limits.round_due_now(now);
        self.quota_round();
        if let Some(t) = self.torrents.engine_mut(id) {
            t.add_addresses(now, &peers, PeerSource::User);
            t.tick(now);
        }
        self.pump(id);
    }

    /// The torrent `id` names, if it is here.
    fn entry(&mut self, id: TorrentId) -> Result<&mut Entry, ControlError> {
        self.torrents
            .get_mut(id)
            .ok_or(ControlError::UnknownTorrent(id))
    }

    /// The torrent `id` names, if it is here and not being removed (its
    /// state can still change).
    fn changeable(&mut self, id: TorrentId) -> Result<&mut Entry, ControlError> {
        let e = self.entry(id)?;
        if matches!(e.phase, Phase::Draining(Next::Remove { .. })) {
            return Err(ControlError::Removing(id));
        }
        Ok(e)
    }

    fn pause(&mut self, id: TorrentId) -> Result<(), ControlError> {
        let e = self.changeable(id)?;
        e.paused = true;
        if e.is_active() {
            self.begin_drain(id, Next::Pause);
        }
        Ok(())
    }

    fn resume(&mut self, id: TorrentId) -> Result<(), ControlError> {
        let e = self.changeable(id)?;
        e.paused = false;
        match e.phase {
            Phase::Paused => self.start(id),
            // Try again: the files may be back.
            Phase::Error => self.submit_check(id),
            Phase::Checking | Phase::Active | Phase::Draining(_) => {}
        }
        Ok(())
    }

    fn recheck(&mut self, id: TorrentId) -> Result<(), ControlError> {
        let e = self.changeable(id)?;
        match &mut e.phase {
            Phase::Active => self.begin_drain(id, Next::Recheck),
            Phase::Paused | Phase::Error => self.submit_check(id),
            Phase::Draining(next) => *next = Next::Recheck,
            Phase::Checking => {}
        }
        Ok(())
    }

    fn set_limits(&mut self, id: TorrentId, limits: TorrentLimits) -> Result<(), ControlError> {
        let e = self.entry(id)?;
        e.limits = limits;
        if e.is_active() {
            self.apply_torrent_limits(id, limits);
        }
        Ok(())
    }

    /// Sets the torrent's buckets: its own limit, else the session's
    /// default per torrent.
    fn apply_torrent_limits(&mut self, id: TorrentId, limits: TorrentLimits) {
        let defaults = *self.settings.limits();
        let now = self.now;
        let t = id.slot as usize;
        let up = limits.upload_rate.unwrap_or(defaults.torrent_upload_rate);
        let down = limits
            .download_rate
            .unwrap_or(defaults.torrent_download_rate);
        self.limits.up.set_torrent_rate(now, t, up);
        self.limits.down.set_torrent_rate(now, t, down);
    }

    fn apply_settings(&mut self, settings: Arc<crate::runtime::session::settings::Settings>) {
        let now = self.now;
        self.limits.apply(settings.limits(), now);
        self.engine_settings = Arc::new(settings.engine().clone());
        self.settings = settings;
        for id in self.torrents.ids() {
            let limits = match self.torrents.get(id) {
                Some(e) if e.is_active() => e.limits,
                _ => continue,
            };
            self.apply_torrent_limits(id, limits);
            let engine = self.engine_settings.clone();
            if let Some(t) = self.torrents.engine_mut(id) {
                // Checked by the session: cannot fail.
                let _ = t.apply_settings(engine);
            }
        }
    }

    fn pieces_versions(&self) -> Vec<(TorrentId, u64)> {
        self.torrents
            .iter()
            .map(|(id, e)| (id, e.pieces_version()))
            .collect()
    }

    /// Announces now if the torrent runs and has no announce in flight; a
    /// paused, checking or tracker-less torrent does nothing.
    fn reannounce(&mut self, id: TorrentId) -> Result<(), ControlError> {
        let now = self.now;
        let e = self.entry(id)?;
        if let (Phase::Active, Some(r)) = (&e.phase, e.run.as_mut()) {
            if r.torrent.reannounce(now) {
                self.pump(id);
            }
        }
        Ok(())
    }

    fn add_peers(
        &mut self,
        id: TorrentId,
        peers: &[std::net::SocketAddr],
        source: PeerSource,
    ) -> Result<usize, ControlError> {
        let now = self.now;
        let e = self.entry(id)?;
        if let (Phase::Active, Some(r)) = (&e.phase, e.run.as_mut()) {
            let added = r.torrent.add_addresses(now, peers, source);
            self.pump(id);
            return Ok(added);
        }
        let room = WAITING_PEERS_MAX.saturating_sub(e.waiting_peers.len());
        let mut added = 0;
        for p in peers.iter().take(room) {
            if !e.waiting_peers.contains(p) {
                e.waiting_peers.push(*p);
                added += 1;
            }
        }
        Ok(added)
    }

    /// Stops serving `id`: a `stopped` announce, every peer closed; the
    /// rest waits in `finish_drains` until no disk op names it.
    fn begin_drain(&mut self, id: TorrentId, next: Next) {
        let Some(e) = self.torrents.get_mut(id) else {
            return;
        };
        e.phase = Phase::Draining(next);
        self.stop_engine(id);
        let Some(run) = self.torrents.running_mut(id) else {
            return;
        };
        let conns: Vec<_> = run.conn_of.drain().map(|(_, c)| c).collect();
        for c in conns {
            self.drop_conn(c, false);
        }
        self.drop_connecting(id);
        self.release_waits(id);
        self.finish_drains();
    }

    /// Completes the drains whose disk ops are done.
    pub(super) fn finish_drains(&mut self) {
        let ready: Vec<TorrentId> = self
            .torrents
            .iter()
            .filter(|(_, e)| e.is_draining() && e.io_ops == 0)
            .map(|(id, _)| id)
            .collect();
        for id in ready {
            let Some(e) = self.torrents.get_mut(id) else {
                continue;
            };
            let next = std::mem::replace(&mut e.phase, Phase::Paused);
            e.retire_engine();
            match next {
                // Resumed while it drained: running again.
                Phase::Draining(Next::Pause) if !e.paused => self.start(id),
                Phase::Draining(Next::Pause) => {}
                Phase::Draining(Next::Recheck) => self.submit_check(id),
                Phase::Draining(Next::Remove { reply }) => {
                    let removed = self.forget(id);
                    answer(&reply, Ok(removed));
                }
                _ => {}
            }
        }
    }

    /// Stops the torrent's engine (no new peers or requests) and hands the
    /// announces it still owes (`completed` for a download that just
    /// finished, then `stopped`) to the tracker worker, which runs one
    /// torrent's announces in the order given, after any in flight (their
    /// answers are not waited for).
    fn stop_engine(&mut self, id: TorrentId) {
        let Some(e) = self.torrents.get_mut(id) else {
            return;
        };
        let Some(owed) = e.run.as_mut().map(|r| r.torrent.stop()) else {
            return;
        };
        if let Some(dht) = &self.dht {
            dht.forget(e.info_hash);
        }
        if let Some(lsd) = &self.lsd {
            let _ = lsd.forget(e.info_hash);
        }
        for request in owed {
            let job = TrackerJob {
                token: id.to_u64(),
                tiers: e.trackers().to_vec(),
                request,
                reply: self.stopped_tx.clone(),
                wake: None,
            };
            if let Err(job) = self.tracker.submit(job) {
                tracing::warn!(
                    "{}: the tracker queue is full: {} announce not sent",
                    e.name(),
                    job.request.event.map_or("regular", |ev| ev.as_str())
                );
            }
        }
    }

    /// Drops the torrent's work waiting for buffers or tokens, and its
    /// buckets (its slot may serve another torrent next).
    fn release_waits(&mut self, id: TorrentId) {
        let t = id.slot as usize;
        self.deferred_reads.remove_torrent(t);
        self.throttled_reads.remove_torrent(t);
        self.throttled_recv.remove_torrent(t);
        self.limits.up.set_torrent_rate(self.now, t, 0);
        self.limits.down.set_torrent_rate(self.now, t, 0);
    }

    /// Forgets a torrent that holds no engine and no op; its files close.
    fn forget(&mut self, id: TorrentId) -> Removed {
        let Some(e) = self.torrents.remove(id) else {
            return Removed::default();
        };
        debug_assert_eq!(e.io_ops, 0, "a torrent forgotten with disk ops in flight");
        debug_assert!(e.run.is_none(), "a torrent forgotten with its engine");
        self.release_waits(id);
        self.gone.uploaded += e.uploaded_here;
        self.gone.downloaded += e.downloaded_here;
        self.events.send(Event::Removed { id });
        Removed {
            files: disk_files(&e.metainfo, &e.save_dir)
                .into_iter()
                .filter_map(|f| f.path)
                .collect(),
            uploaded: e.uploaded_here,
            downloaded: e.downloaded_here,
        }
    }

    /// Stop: `stopped` announces, close connections, then exit once idle.
    pub(super) fn stop(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(self.now);
        for slot in &mut self.accept_ops {
            if let Some(op) = slot.take() {
                let _ = self.ev.cancel(op);
            }
        }
        for id in self.torrents.ids() {
            let Some(e) = self.torrents.get_mut(id) else {
                continue;
            };
            if let Some(c) = e.check.take() {
                c.cancel();
            }
            self.stop_engine(id);
        }
        for id in self.conns.ids() {
            self.drop_conn(id, true);
        }
    }
}
