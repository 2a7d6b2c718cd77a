//! `MetadataAssembler`: puts one torrent's info dictionary together from the
//! 16 KiB pieces (BEP 9) that several peers send, and checks it against the
//! info-hash.
//!
//! Boundary: no connections and no bytes on the wire here. Each connection
//! (see `magnet::fetch`) tells the assembler what its peer announced and sent,
//! under a [`PeerKey`] the caller picks, and asks it which piece to request
//! next. Time is a `now: Duration` since any fixed epoch the caller picks.
//!
//! Rules, decided on purpose:
//! - the size of the dictionary is the `metadata_size` of the first peer that
//!   asks for a piece; a peer that announced another size gets no requests and
//!   its data is refused ([`AssemblerError::SizeMismatch`]); sizes of 0 or over
//!   [`METADATA_BYTES_MAX`] are refused outright;
//! - a piece is requested from at most [`REQUESTERS_PER_PIECE_MAX`] peers at a
//!   time, pieces nobody was asked for first; a request unanswered after the
//!   request timeout no longer counts, so the piece is asked of someone else;
//! - a reject frees the piece at once, and that peer is not asked again for
//!   [`REJECT_RETRY_AFTER`];
//! - data from a peer whose size matches is kept even if it was not requested
//!   (the hash check decides); data for a piece already held is ignored;
//! - when every piece is held the dictionary is hashed: a match completes it;
//!   a mismatch starts over (size and pieces forgotten) and every peer that
//!   supplied a piece is blamed: it gets no more requests and its data is
//!   refused ([`AssemblerError::PeerBlamed`]);
//! - when the last peer that announced the chosen size goes before any piece
//!   arrived, the size is forgotten, so a lying first peer cannot stall the
//!   others for good;
//! - at most [`PEERS_MAX`] peers at a time.

use std::time::Duration;

use crate::hash::sha1;
use crate::wire::ut_metadata::{metadata_pieces, piece_len, METADATA_BYTES_MAX};
use crate::InfoHash;

/// Caller-chosen name of one connection, unique while it is open.
pub type PeerKey = u64;

/// Most peers asked for the same piece at the same time.
pub const REQUESTERS_PER_PIECE_MAX: usize = 2;
/// How long a peer that rejected a request is left alone.
pub const REJECT_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Most peers (connections) one assembler tracks.
pub const PEERS_MAX: usize = 256;
/// Default time after which an unanswered request no longer counts.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(20);

/// Why the assembler refused what a peer said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssemblerError {
    #[error("metadata_size 0: a peer without metadata cannot serve it")]
    SizeZero,
    #[error("metadata_size {found} bytes is over the limit of {max} bytes")]
    SizeTooLarge { found: u64, max: u64 },
    #[error("peer's metadata size {announced} differs from the {expected} bytes being assembled")]
    SizeMismatch { announced: u64, expected: u64 },
    #[error("more than {max} peers at once")]
    TooManyPeers { max: usize },
    #[error("peer {0} announced no metadata size")]
    UnknownPeer(PeerKey),
    #[error("peer {0} supplied a piece of metadata that failed the hash check")]
    PeerBlamed(PeerKey),
}

/// What a data message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutcome {
    /// The piece was new and is kept.
    Stored,
    /// The piece was already held (or the size was not chosen yet); dropped.
    Ignored,
    /// The last piece: the dictionary hashes to the info-hash.
    Complete(Vec<u8>),
    /// The last piece, and the dictionary did not hash to the info-hash: it
    /// starts over and these peers are blamed.
    HashFailed { blamed: Vec<PeerKey> },
}

#[derive(Debug, Default)]
struct Piece {
    data: Option<Vec<u8>>,
    supplier: Option<PeerKey>,
    /// Who was asked and when, at most [`REQUESTERS_PER_PIECE_MAX`].
    requests: Vec<(PeerKey, Duration)>,
}

#[derive(Debug)]
struct Peer {
    key: PeerKey,
    size: u64,
    blamed: bool,
    rejected_until: Duration,
}

/// The pieces of one torrent's info dictionary, as they arrive.
#[derive(Debug)]
pub struct MetadataAssembler {
    info_hash: InfoHash,
    request_timeout: Duration,
    size: Option<u64>,
    pieces: Vec<Piece>,
    peers: Vec<Peer>,
}

impl MetadataAssembler {
    /// An assembler for the dictionary whose SHA-1 is `info_hash`; requests
    /// unanswered for `request_timeout` are asked of other peers.
    pub fn new(info_hash: InfoHash, request_timeout: Duration) -> MetadataAssembler {
        MetadataAssembler {
            info_hash,
            request_timeout,
            size: None,
            pieces: Vec::new(),
            peers: Vec::new(),
        }
    }

    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The size being assembled, once chosen.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Pieces held and pieces in all (0 and 0 before the size is chosen).
    pub fn progress(&self) -> (u32, u32) {
        let held = self.pieces.iter().filter(|p| p.data.is_some()).count();
        (held as u32, self.pieces.len() as u32)
    }

    /// Whether `peer` supplied a piece that failed the hash check.
    pub fn is_blamed(&self, peer: PeerKey) -> bool {
        self.peer(peer).is_some_and(|p| p.blamed)
    }

    fn peer(&self, key: PeerKey) -> Option<&Peer> {
        self.peers.iter().find(|p| p.key == key)
    }

    fn peer_mut(&mut self, key: PeerKey) -> Option<&mut Peer> {
        self.peers.iter_mut().find(|p| p.key == key)
    }

    /// A peer announced `metadata_size` in its extension handshake. An error
    /// means it will get no requests (a different size is remembered, so the
    /// peer may still serve if the assembly starts over).
    pub fn add_peer(&mut self, peer: PeerKey, metadata_size: u64) -> Result<(), AssemblerError> {
        if metadata_size == 0 {
            return Err(AssemblerError::SizeZero);
        }
        if metadata_size > METADATA_BYTES_MAX {
            return Err(AssemblerError::SizeTooLarge {
                found: metadata_size,
                max: METADATA_BYTES_MAX,
            });
        }
        match self.peer_mut(peer) {
            Some(p) => p.size = metadata_size,
            None => {
                if self.peers.len() >= PEERS_MAX {
                    return Err(AssemblerError::TooManyPeers { max: PEERS_MAX });
                }
                self.peers.push(Peer {
                    key: peer,
                    size: metadata_size,
                    blamed: false,
                    rejected_until: Duration::ZERO,
                });
            }
        }
        match self.size {
            Some(expected) if expected != metadata_size => Err(AssemblerError::SizeMismatch {
                announced: metadata_size,
                expected,
            }),
            _ => Ok(()),
        }
    }

    /// The connection to `peer` closed: its requests no longer count.
    pub fn remove_peer(&mut self, peer: PeerKey) {
        self.peers.retain(|p| p.key != peer);
        for piece in &mut self.pieces {
            piece.requests.retain(|(k, _)| *k != peer);
        }
        let Some(size) = self.size else { return };
        let nothing_held = self.pieces.iter().all(|p| p.data.is_none());
        let someone_agrees = self.peers.iter().any(|p| p.size == size && !p.blamed);
        if nothing_held && !someone_agrees {
            self.forget();
        }
    }

    fn forget(&mut self) {
        self.size = None;
        self.pieces.clear();
    }

    /// The piece to request from `peer` now, recorded as requested; `None`
    /// when there is nothing it should be asked for.
    pub fn next_request(&mut self, peer: PeerKey, now: Duration) -> Option<u32> {
        let p = self.peer(peer)?;
        if p.blamed || now < p.rejected_until {
            return None;
        }
        let peer_size = p.size;
        let size = match self.size {
            Some(size) => size,
            None => {
                self.size = Some(peer_size);
                let count = metadata_pieces(peer_size) as usize;
                self.pieces = (0..count).map(|_| Piece::default()).collect();
                peer_size
            }
        };
        if peer_size != size {
            return None;
        }
        let timeout = self.request_timeout;
        for piece in &mut self.pieces {
            piece
                .requests
                .retain(|&(_, at)| now.saturating_sub(at) < timeout);
        }
        let wanted = |p: &Piece, busy: usize| {
            p.data.is_none()
                && p.requests.len() <= busy
                && p.requests.iter().all(|(k, _)| *k != peer)
        };
        let index = (0..REQUESTERS_PER_PIECE_MAX)
            .find_map(|busy| self.pieces.iter().position(|p| wanted(p, busy)))?;
        let piece = self.pieces.get_mut(index)?;
        piece.requests.push((peer, now));
        u32::try_from(index).ok()
    }

    /// `peer` rejected `piece`.
    pub fn on_reject(&mut self, peer: PeerKey, piece: u32, now: Duration) {
        if let Some(p) = self.pieces.get_mut(piece as usize) {
            p.requests.retain(|(k, _)| *k != peer);
        }
        if let Some(p) = self.peer_mut(peer) {
            p.rejected_until = now.saturating_add(REJECT_RETRY_AFTER);
        }
    }

    /// `peer` sent piece `piece` of a `total_size`-byte dictionary (already
    /// checked by the codec: `data` is exactly that piece's length).
    pub fn on_data(
        &mut self,
        peer: PeerKey,
        piece: u32,
        total_size: u64,
        data: &[u8],
    ) -> Result<DataOutcome, AssemblerError> {
        let p = self.peer(peer).ok_or(AssemblerError::UnknownPeer(peer))?;
        if p.blamed {
            return Err(AssemblerError::PeerBlamed(peer));
        }
        let Some(size) = self.size else {
            return Ok(DataOutcome::Ignored);
        };
        if p.size != size || total_size != size {
            return Err(AssemblerError::SizeMismatch {
                announced: if p.size != size { p.size } else { total_size },
                expected: size,
            });
        }
        if piece_len(size, piece) != Some(data.len()) {
            return Ok(DataOutcome::Ignored);
        }
        let Some(slot) = self.pieces.get_mut(piece as usize) else {
            return Ok(DataOutcome::Ignored);
        };
        if slot.data.is_some() {
            return Ok(DataOutcome::Ignored);
        }
        slot.data = Some(data.to_vec());
        slot.supplier = Some(peer);
        slot.requests.clear();
        if self.pieces.iter().any(|p| p.data.is_none()) {
            return Ok(DataOutcome::Stored);
        }
        let mut info = Vec::with_capacity(size as usize);
        for p in &self.pieces {
            info.extend_from_slice(p.data.as_deref().unwrap_or_default());
        }
        if sha1(&info) == self.info_hash.0 {
            return Ok(DataOutcome::Complete(info));
        }
        let mut blamed: Vec<PeerKey> = self.pieces.iter().filter_map(|p| p.supplier).collect();
        blamed.sort_unstable();
        blamed.dedup();
        for p in &mut self.peers {
            if blamed.contains(&p.key) {
                p.blamed = true;
            }
        }
        self.forget();
        Ok(DataOutcome::HashFailed { blamed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ut_metadata::{piece_of, METADATA_PIECE_BYTES};

    const T: Duration = Duration::from_secs(10);

    fn info(len: usize) -> (Vec<u8>, InfoHash) {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let hash = InfoHash(sha1(&bytes));
        (bytes, hash)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn assembles_from_two_peers_and_spreads_requests() {
        let (bytes, hash) = info(3 * METADATA_PIECE_BYTES + 100);
        let mut a = MetadataAssembler::new(hash, T);
        a.add_peer(1, bytes.len() as u64).unwrap();
        a.add_peer(2, bytes.len() as u64).unwrap();
        assert_eq!(a.next_request(1, secs(0)), Some(0));
        assert_eq!(a.next_request(2, secs(0)), Some(1));
        assert_eq!(a.next_request(1, secs(0)), Some(2));
        assert_eq!(a.next_request(2, secs(0)), Some(3));
        // Every piece is asked of someone: now a second requester each.
        assert_eq!(a.next_request(1, secs(0)), Some(1));
        let size = bytes.len() as u64;
        for (peer, piece) in [(1, 0), (2, 1), (1, 2)] {
            let data = piece_of(&bytes, piece).unwrap();
            assert_eq!(a.on_data(peer, piece, size, data), Ok(DataOutcome::Stored));
        }
        // A duplicate is ignored.
        let data = piece_of(&bytes, 1).unwrap();
        assert_eq!(a.on_data(1, 1, size, data), Ok(DataOutcome::Ignored));
        assert_eq!(a.progress(), (3, 4));
        let last = piece_of(&bytes, 3).unwrap();
        assert_eq!(
            a.on_data(2, 3, size, last),
            Ok(DataOutcome::Complete(bytes))
        );
    }

    #[test]
    fn a_piece_goes_to_at_most_two_peers_and_again_after_the_timeout() {
        let (bytes, hash) = info(100);
        let mut a = MetadataAssembler::new(hash, T);
        for k in 1..=3 {
            a.add_peer(k, bytes.len() as u64).unwrap();
        }
        assert_eq!(a.next_request(1, secs(0)), Some(0));
        assert_eq!(a.next_request(1, secs(1)), None, "asked already");
        assert_eq!(a.next_request(2, secs(1)), Some(0));
        assert_eq!(a.next_request(3, secs(2)), None, "two requesters");
        // Peer 1's request expires at 10 s; peer 2's at 11 s.
        assert_eq!(a.next_request(3, secs(10)), Some(0));
        assert_eq!(a.next_request(1, secs(10)), None);
        assert_eq!(a.next_request(1, secs(11)), Some(0));
    }

    #[test]
    fn a_reject_frees_the_piece_and_rests_the_peer() {
        let (bytes, hash) = info(100);
        let mut a = MetadataAssembler::new(hash, T);
        a.add_peer(1, 100).unwrap();
        a.add_peer(2, 100).unwrap();
        a.add_peer(3, 100).unwrap();
        assert_eq!(a.next_request(1, secs(0)), Some(0));
        assert_eq!(a.next_request(2, secs(0)), Some(0));
        a.on_reject(1, 0, secs(1));
        assert_eq!(a.next_request(3, secs(1)), Some(0));
        assert_eq!(a.next_request(1, secs(20)), None, "resting");
        a.remove_peer(3);
        let at = secs(1) + REJECT_RETRY_AFTER;
        assert_eq!(a.next_request(1, at), Some(0));
        assert_eq!(
            a.on_data(1, 0, 100, &bytes),
            Ok(DataOutcome::Complete(bytes))
        );
    }

    #[test]
    fn wrong_data_fails_the_hash_and_blames_its_suppliers() {
        let (bytes, hash) = info(METADATA_PIECE_BYTES + 10);
        let size = bytes.len() as u64;
        let mut a = MetadataAssembler::new(hash, T);
        a.add_peer(1, size).unwrap();
        a.add_peer(2, size).unwrap();
        a.add_peer(3, size).unwrap();
        assert_eq!(a.next_request(1, secs(0)), Some(0));
        assert_eq!(a.next_request(2, secs(0)), Some(1));
        let good = piece_of(&bytes, 0).unwrap();
        let mut bad = piece_of(&bytes, 1).unwrap().to_vec();
        bad[3] ^= 1;
        assert_eq!(a.on_data(1, 0, size, good), Ok(DataOutcome::Stored));
        assert_eq!(
            a.on_data(2, 1, size, &bad),
            Ok(DataOutcome::HashFailed { blamed: vec![1, 2] })
        );
        assert!(a.is_blamed(2));
        assert_eq!(a.progress(), (0, 0));
        assert_eq!(a.next_request(1, secs(1)), None);
        assert_eq!(
            a.on_data(2, 1, size, &bad),
            Err(AssemblerError::PeerBlamed(2))
        );
        // Peer 3 starts over alone.
        assert_eq!(a.next_request(3, secs(1)), Some(0));
        assert_eq!(a.next_request(3, secs(1)), Some(1));
        assert_eq!(
            a.on_data(3, 1, size, piece_of(&bytes, 1).unwrap()),
            Ok(DataOutcome::Stored)
        );
        assert_eq!(
            a.on_data(3, 0, size, good),
            Ok(DataOutcome::Complete(bytes))
        );
    }

    #[test]
    fn sizes_that_disagree_are_not_trusted() {
        let (bytes, hash) = info(100);
        let mut a = MetadataAssembler::new(hash, T);
        assert_eq!(a.add_peer(9, 0), Err(AssemblerError::SizeZero));
        assert_eq!(
            a.add_peer(9, METADATA_BYTES_MAX + 1),
            Err(AssemblerError::SizeTooLarge {
                found: METADATA_BYTES_MAX + 1,
                max: METADATA_BYTES_MAX
            })
        );
        a.add_peer(1, 100).unwrap();
        assert_eq!(a.next_request(1, secs(0)), Some(0));
        assert_eq!(
            a.add_peer(2, 101),
            Err(AssemblerError::SizeMismatch {
                announced: 101,
                expected: 100
            })
        );
        assert_eq!(a.next_request(2, secs(0)), None);
        let liar = vec![0u8; 101];
        assert!(matches!(
            a.on_data(2, 0, 101, &liar),
            Err(AssemblerError::SizeMismatch { .. })
        ));
        // A trusted peer with a data message whose total_size lies.
        assert!(matches!(
            a.on_data(1, 0, 101, &liar),
            Err(AssemblerError::SizeMismatch { .. })
        ));
        assert_eq!(
            a.on_data(7, 0, 100, &bytes),
            Err(AssemblerError::UnknownPeer(7))
        );
        // The first peer leaves before sending anything: the other size wins.
        a.remove_peer(1);
        assert_eq!(a.size(), None);
        assert_eq!(a.next_request(2, secs(1)), Some(0));
        assert_eq!(a.size(), Some(101));
    }

    #[test]
    fn peers_are_bounded() {
        let (_, hash) = info(10);
        let mut a = MetadataAssembler::new(hash, T);
        for k in 0..PEERS_MAX as u64 {
            a.add_peer(k, 10).unwrap();
        }
        assert_eq!(
            a.add_peer(u64::MAX, 10),
            Err(AssemblerError::TooManyPeers { max: PEERS_MAX })
        );
    }
}
