//! The torrent's BEP 10 extensions: serving its metadata (BEP 9,
//! `ut_metadata`) and peer exchange (BEP 11, `ut_pex`). A child of
//! `torrent.rs`, so it sees the torrent's peers; the message codecs are
//! `wire::ut_metadata` and `wire::ut_pex`, the sending policy of PEX is
//! `engine::pex`.
//!
//! Rules, decided on purpose:
//! - what we offer in our extension handshake: `ut_metadata` (with
//!   `metadata_size`) when the torrent was given its info dictionary (the
//!   runtime gives none for a private torrent, as libtorrent), and `ut_pex`
//!   when PEX is on for it (off for private torrents, BEP 27);
//!   messages under an id we did not offer are ignored;
//! - a metadata request is answered with the piece, or rejected when we
//!   have no metadata, the piece is out of range, or the peer's unsent
//!   bytes already hold [`METADATA_QUEUED_BYTES_MAX`] (a peer asking faster
//!   than it reads gets rejects, not our memory); metadata data and rejects
//!   sent to us are ignored (the torrent has its metadata; fetching is the
//!   metadata fetcher's work);
//! - PEX received: at most `PEX_PARSED_MAX` addresses per message (the
//!   codec's bound) go to the peer list as [`PeerSource::Pex`], flagged seed
//!   when the sender says so; a malformed message is ignored, not a breach
//!   (clients differ in what they send);
//! - PEX sent: a peer that offered `ut_pex` gets, at most once per
//!   `PEX_INTERVAL`, the addresses of peers we are connected to (never ones
//!   we only heard of): the dialled address of an outgoing peer, the
//!   listening address an incoming peer named (`p`), flags seed and
//!   reachable (we reached it). Only peers whose turn has come are
//!   considered on a tick, so the cost per tick is the connected peers
//!   times the few whose minute is up;
//! - a peer's BEP 10 `yourip` becomes [`Output::ExternalAddress`], a vote
//!   for the DHT's node id (BEP 42).

use std::net::SocketAddr;
use std::time::Duration;

use super::{Added, Output, PeerId, PeerSource, Torrent};
use crate::engine::pex::{PexCandidate, PexPeerState, PEX_INTERVAL};
use crate::peer::Direction;
use crate::wire::ut_metadata::{self, MetadataMessage};
use crate::wire::ut_pex::{self, PexFlags, PexMessage};

/// How soon a peer we had nothing new to tell is considered again.
const PEX_RECHECK: Duration = Duration::from_secs(5);
/// The id we ask peers to send `ut_pex` messages under.
pub const UT_PEX_ID: u8 = 1;
/// The id we ask peers to send `ut_metadata` messages under.
pub const UT_METADATA_ID: u8 = 2;
/// Most unsent bytes a peer may have queued with us before its metadata
/// requests are rejected (4 metadata pieces).
pub const METADATA_QUEUED_BYTES_MAX: usize = 4 * ut_metadata::METADATA_PIECE_BYTES + 4096;

impl Torrent {
    /// The extensions we offer a new connection, with their ids.
    pub(super) fn offered_extensions(&self) -> (Vec<(&'static str, u8)>, Option<u64>) {
        let mut m = Vec::with_capacity(2);
        if self.pex {
            m.push((ut_pex::EXTENSION_NAME, UT_PEX_ID));
        }
        let size = self.metadata.as_ref().map(|info| info.len() as u64);
        if size.is_some() {
            m.push((ut_metadata::EXTENSION_NAME, UT_METADATA_ID));
        }
        (m, size)
    }

    /// The peer's extension handshake arrived: its `yourip` is a vote for
    /// our external address; PEX starts if both sides speak it.
    pub(super) fn on_extension_handshake(&mut self, now: Duration, id: PeerId) {
        let pex = self.pex;
        let Some(p) = self.peer_mut(id) else {
            return;
        };
        let Some(ext) = p.conn.peer_extensions() else {
            return;
        };
        let yourip = ext.yourip;
        let speaks_pex = ext.extension_id(ut_pex::EXTENSION_NAME).is_some();
        if pex && speaks_pex && p.pex.is_none() {
            p.pex = Some(Box::new(PexPeerState::new()));
            // The first message may go at the next tick.
            p.pex_next_at = now;
        }
        let voter = p.addr.ip();
        if let Some(ip) = yourip {
            self.outputs
                .push_back(Output::ExternalAddress { ip, voter });
        }
    }

    /// A BEP 10 message under one of our ids, `payload` its bytes.
    pub(super) fn on_extended(&mut self, now: Duration, id: PeerId, ext: u8, payload: &[u8]) {
        match ext {
            UT_METADATA_ID if self.metadata.is_some() => self.on_metadata_message(now, id, payload),
            UT_PEX_ID if self.pex => self.on_pex_message(now, id, payload),
            _ => {}
        }
    }

    fn on_metadata_message(&mut self, now: Duration, id: PeerId, payload: &[u8]) {
        let Ok(MetadataMessage::Request { piece }) = MetadataMessage::parse(payload) else {
            return;
        };
        let Some(info) = self.metadata.clone() else {
            return;
        };
        let Some(p) = self.peer_mut(id) else {
            return;
        };
        let Some(their_id) = p
            .conn
            .peer_extensions()
            .and_then(|e| e.extension_id(ut_metadata::EXTENSION_NAME))
        else {
            return;
        };
        let data = if p.out.len() < METADATA_QUEUED_BYTES_MAX {
            ut_metadata::piece_of(&info, piece)
        } else {
            None
        };
        let mut body = Vec::with_capacity(64 + data.map_or(0, <[u8]>::len));
        match data {
            Some(data) => MetadataMessage::Data {
                piece,
                total_size: info.len() as u64,
                data,
            }
            .encode(&mut body),
            None => MetadataMessage::Reject { piece }.encode(&mut body),
        }
        let was_empty = p.out.is_empty();
        if p.conn.write_extended(now, their_id, &body, &mut p.out) && was_empty {
            self.outputs.push_back(Output::Flush { peer: id });
        }
    }

    fn on_pex_message(&mut self, now: Duration, id: PeerId, payload: &[u8]) {
        let Ok(msg) = PexMessage::parse(payload) else {
            return;
        };
        if self.peer(id).is_none() {
            return;
        }
        for (addr, flags) in msg.added {
            match self.learn(now, addr, PeerSource::Pex, flags.seed()) {
                Some(Added::Full) => break,
                Some(Added::New) if flags.encryption() => self.peers.prefer_encryption(&addr, true),
                _ => {}
            }
        }
        self.connect_more(now);
    }

    /// Sends PEX to the peers whose turn has come (called from `tick`).
    pub(super) fn send_pex(&mut self, now: Duration) {
        if !self.pex
            || !self
                .slots
                .iter()
                .flatten()
                .any(|p| p.pex.is_some() && p.pex_next_at <= now)
        {
            // The common tick: nobody's turn, no allocation.
            return;
        }
        let due: Vec<PeerId> = self
            .ids()
            .into_iter()
            .filter(|&id| {
                self.peer(id)
                    .is_some_and(|p| p.pex.is_some() && p.pex_next_at <= now)
            })
            .collect();
        if due.is_empty() {
            return;
        }
        let candidates = self.pex_candidates();
        for id in due {
            let Some(p) = self.peer_mut(id) else {
                continue;
            };
            p.pex_next_at = now.saturating_add(PEX_INTERVAL);
            let own = p.listed_as.unwrap_or(p.addr);
            let Some(their_id) = p
                .conn
                .peer_extensions()
                .and_then(|e| e.extension_id(ut_pex::EXTENSION_NAME))
            else {
                continue;
            };
            let Some(state) = p.pex.as_mut() else {
                continue;
            };
            let Some(msg) = state.next_message(now, &candidates, own) else {
                // Nothing new to say: look again a little later.
                p.pex_next_at = now.saturating_add(PEX_RECHECK);
                continue;
            };
            let body = msg.encode();
            let was_empty = p.out.is_empty();
            if p.conn.write_extended(now, their_id, &body, &mut p.out) && was_empty {
                self.outputs.push_back(Output::Flush { peer: id });
            }
        }
    }

    /// The connected peers others could dial, with their flags.
    fn pex_candidates(&self) -> Vec<PexCandidate> {
        let mut out = Vec::with_capacity(self.peer_count);
        for p in self.slots.iter().flatten() {
            let (addr, reachable): (Option<SocketAddr>, bool) = match p.conn.direction() {
                Direction::Outgoing => (Some(p.addr), true),
                Direction::Incoming => (p.listed_as, false),
            };
            let Some(addr) = addr else { continue };
            let mut flags = 0;
            if p.conn.peer_pieces().is_all() {
                flags |= PexFlags::SEED;
            }
            if reachable {
                flags |= PexFlags::REACHABLE;
            }
            if p.encrypted {
                flags |= PexFlags::ENCRYPTION;
            }
            out.push(PexCandidate {
                addr,
                flags: PexFlags(flags),
            });
        }
        out
    }
}
