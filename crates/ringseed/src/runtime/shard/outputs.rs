//! Carrying out what a torrent's engine asked for ([`Output`]): bytes to
//! send, blocks to read, pieces to write, peers to dial or close, announces
//! to make, and its completion. Every call into an engine is followed by a
//! pump of its outputs.

use std::sync::Arc;

use super::disk_read::BlockRead;
use super::Shard;
use crate::engine::Output;
use crate::runtime::session::types::{Event, TorrentId};
use crate::runtime::tracker_worker::TrackerJob;

impl Shard {
    pub(super) fn pump(&mut self, t: TorrentId) {
        let mut reads: Vec<BlockRead> = Vec::new();
        while let Some(out) = self.torrents.engine_mut(t).and_then(|e| e.poll_output()) {
            match out {
                Output::Flush { peer } => {
                    let Some(run) = self.torrents.running_mut(t) else {
                        continue;
                    };
                    let Some(&id) = run.conn_of.get(&peer) else {
                        continue;
                    };
                    let mut bytes = std::mem::take(&mut self.scratch);
                    run.torrent.take_outgoing(peer, &mut bytes);
                    if let Some(c) = self.conns.get_mut(id) {
                        c.queue_bytes(&mut bytes);
                    }
                    bytes.clear();
                    self.scratch = bytes;
                    self.try_send(id);
                }
                Output::Read {
                    peer,
                    piece,
                    offset,
                    length,
                } => reads.push((peer, piece, offset, length)),
                Output::WritePiece { piece, data } => self.start_write(t, piece, data),
                Output::Connect { addr, encrypt } => self.start_connect(t, addr, encrypt),
                Output::Close { peer, addr, reason } => {
                    let verb = if reason.banned { "banned" } else { "dropped" };
                    if !reason.routine {
                        let name = self.torrents.name(t);
                        let line = format!("peer {addr} {verb} ({name}): {}", reason.text);
                        if reason.banned {
                            self.log.warn(self.now, line);
                        } else {
                            self.log.line(self.now, line);
                        }
                    }
                    let conn = self
                        .torrents
                        .running_mut(t)
                        .and_then(|r| r.conn_of.remove(&peer));
                    if let Some(id) = conn {
                        self.drop_conn(id, false);
                    }
                }
                Output::Announce { request } => self.announce(t, request),
                Output::Finished => {
                    if let Some(e) = self.torrents.get(t) {
                        if let Some(Err(err)) = e.storage.as_ref().map(|s| s.sync()) {
                            tracing::error!("{}: {err}", e.name());
                        }
                    }
                    self.events.send(Event::Finished { id: t });
                }
                Output::ExternalAddress { ip, voter } => {
                    if let Some(dht) = &self.dht {
                        dht.external_ip_vote(ip, voter);
                    }
                }
            }
        }
        if !reads.is_empty() {
            self.start_reads(t, &reads);
        }
    }

    fn announce(&mut self, t: TorrentId, request: crate::tracker::AnnounceRequest) {
        let Some(trackers) = self.torrents.get(t).map(|e| e.trackers().to_vec()) else {
            return;
        };
        let wake = self.routes.get(self.index).map(|r| r.wake().clone());
        let job = TrackerJob {
            token: t.to_u64(),
            tiers: trackers,
            request,
            reply: self.replies_tx.clone(),
            wake: wake.map(|w| Arc::new(move || w.wake()) as Arc<dyn Fn() + Send + Sync>),
        };
        if self.tracker.submit(job).is_err() {
            let now = self.now;
            if let Some(engine) = self.torrents.engine_mut(t) {
                engine.on_announce(now, Err("the tracker queue is full".into()));
            }
        }
    }
}
