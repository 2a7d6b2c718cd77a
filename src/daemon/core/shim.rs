//! TEMPORARY: stand-ins for engine calls landing in the engine branch.
use ringseed::runtime::session::{Have, Session, SessionError, TorrentId};
use ringseed::torrent::Bitfield;

pub trait EngineShim {
    fn pieces(&self, id: TorrentId) -> Result<Bitfield, SessionError>;
    fn reannounce(&self, id: TorrentId) -> Result<(), SessionError>;
    fn shard_turns(&self) -> Vec<u64>;
}

impl EngineShim for Session {
    fn pieces(&self, id: TorrentId) -> Result<Bitfield, SessionError> {
        let s = self.torrent(id)?;
        if s.is_complete() {
            Ok(Bitfield::full(s.pieces as usize).unwrap_or_else(|_| unreachable!()))
        } else {
            Err(SessionError::UnknownTorrent(id))
        }
    }
    fn reannounce(&self, _id: TorrentId) -> Result<(), SessionError> {
        Ok(())
    }
    fn shard_turns(&self) -> Vec<u64> {
        Vec::new()
    }
}

pub fn partial(_known: Bitfield, _check: Bitfield) -> Have {
    Have::Check
}
