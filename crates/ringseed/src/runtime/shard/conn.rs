//! `Conn`: the IO side of one TCP connection inside a shard: its fd, the
//! bytes received and not yet consumed, the queue of bytes and blocks to
//! send (in wire order), how many ops are in flight on it, and its
//! obfuscation (the MSE handshake in progress, then the RC4 streams when
//! RC4 was chosen). `Conns` is the slab of them, named by [`ConnId`] (slot
//! and generation).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::engine::PeerId;
use crate::info_hash::InfoHash;
use crate::mse::{
    self, Established, Initiator, MseError, Progress, Rc4Stream, Responder, TorrentLookup,
};
use crate::runtime::event_loop::{BlockSegment, BufferId, OpId, HEADER_BYTES, SEND_BLOCKS_MAX};
use crate::runtime::session::types::TorrentId;
use crate::slab::{Slab, SlabKey};

/// Names one connection of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub slot: u32,
    pub generation: u32,
}

/// What the connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Outgoing, connect in flight, for this torrent.
    Connecting { torrent: TorrentId },
    /// Incoming, waiting for the handshake's first 48 bytes.
    Routing,
    /// In the MSE handshake (`Conn::mse`): dialled for this torrent, or
    /// incoming (`None`: the torrent is named by the handshake).
    Handshake { torrent: Option<TorrentId> },
    /// Attached to a torrent's peer.
    Peer { torrent: TorrentId, peer: PeerId },
    /// Being torn down: waiting for its ops to complete.
    Closing,
}

/// One thing to send.
#[derive(Debug)]
pub enum OutItem {
    /// Control messages, encoded (encrypted as they are sent, on an RC4
    /// connection).
    Bytes(Vec<u8>),
    /// Bytes exactly as they go on the wire: the MSE handshake's, and the
    /// rest of a short send (encrypted already).
    Sealed(Vec<u8>),
    /// Up to `SEND_BLOCKS_MAX` piece messages whose blocks lie in one pool
    /// buffer (a coalesced read), the first `skip` bytes already sent.
    Blocks(BlocksOut),
    /// Piece messages already in the connection's pipe (`Conn::pipe`, the
    /// splice path): `bytes` of them, the last of `blocks` blocks ending
    /// there.
    Piped { bytes: usize, blocks: u32 },
}

/// Piece messages to send from one buffer.
#[derive(Debug, Clone, Copy)]
pub struct BlocksOut {
    pub buffer: BufferId,
    pub segs: [BlockSegment; SEND_BLOCKS_MAX],
    pub n: usize,
    pub skip: usize,
    /// The headers and blocks were encrypted in place (RC4 connections;
    /// once, before the first send).
    pub sealed: bool,
}

impl BlocksOut {
    /// Bytes of the whole sequence, headers included.
    pub fn total(&self) -> usize {
        self.segs[..self.n]
            .iter()
            .map(|s| HEADER_BYTES + s.len)
            .sum()
    }
}

/// The send in flight on a connection.
#[derive(Debug, Clone, Copy)]
pub enum Sending {
    /// Control bytes copied into the op's buffer.
    Bytes { len: usize },
    /// Piece messages.
    Blocks(BlocksOut),
    /// Nothing: a wait until the socket takes more (the splice path).
    Poll,
}

/// One connection's IO state.
#[derive(Debug)]
pub struct Conn {
    pub fd: Option<OwnedFd>,
    pub addr: SocketAddr,
    pub state: ConnState,
    pub inbuf: Vec<u8>,
    pub recv_op: Option<OpId>,
    /// Receiving stopped for want of download tokens (a cancelled
    /// multishot's ECANCELED is then expected).
    pub recv_paused: bool,
    pub send_op: Option<OpId>,
    /// What the send in flight carries, for short counts and accounting.
    pub sending: Option<Sending>,
    pub out: VecDeque<OutItem>,
    /// Ops in flight that name this connection (recv, send, reads).
    pub ops: u32,
    /// When the connection was accepted, adopted or dialled.
    pub since: std::time::Duration,
    /// We dialled it.
    pub outgoing: bool,
    /// A dial that starts with the MSE handshake.
    pub dial_obfuscated: bool,
    /// The MSE handshake in progress (boxed: few connections have one).
    pub mse: Option<Box<Handshake>>,
    /// The torrent the MSE handshake named, once it finished.
    pub obfuscated: Option<InfoHash>,
    /// The RC4 streams, when RC4 was chosen.
    pub rc4: Option<Box<Rc4Pair>>,
    /// Bytes received over the connection's life.
    pub received: u64,
    /// The pipe holding the `Piped` items queued (the splice path).
    pub pipe: Option<super::splice::Pipe>,
    /// The socket was switched to O_NONBLOCK (for the splice path).
    pub nonblocking: bool,
    /// Listed in `Shard::flushes_wanted`: its pipe goes to the socket at
    /// the end of the turn.
    pub flush_wanted: bool,
}

/// Both directions' RC4 streams of one connection.
pub struct Rc4Pair {
    /// Encrypts what we send.
    pub enc: Rc4Stream,
    /// Decrypts what we receive.
    pub dec: Rc4Stream,
}

impl std::fmt::Debug for Rc4Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rc4Pair")
    }
}

/// The torrents every shard knows: all of the session's, kept by its
/// control messages (`Control::Known`), each with its owning shard (incoming
/// connections are routed by it) and found also by `HASH('req2',
/// info_hash)` (an encrypted handshake names its torrent so). Each has a
/// count: an info-hash added twice, as a torrent is removed and added again,
/// stays until both are forgotten. Copy-on-write: a handshake in progress
/// holds the table as it was when it started.
#[derive(Debug, Clone, Default)]
pub struct Req2Table(Arc<KnownTorrents>);

#[derive(Debug, Clone, Default)]
struct KnownTorrents {
    by_hash: HashMap<InfoHash, Known>,
    by_req2: HashMap<[u8; mse::HASH_BYTES], InfoHash>,
}

#[derive(Debug, Clone, Copy)]
struct Known {
    /// Times known and not yet forgotten.
    count: u32,
    /// The shard that owns the torrent (the latest `know` says).
    owner: usize,
}

impl Req2Table {
    pub fn know(&mut self, info_hash: InfoHash, owner: usize) {
        let t = Arc::make_mut(&mut self.0);
        let e = t
            .by_hash
            .entry(info_hash)
            .or_insert(Known { count: 0, owner });
        e.count += 1;
        e.owner = owner;
        t.by_req2.insert(mse::req2_hash(&info_hash), info_hash);
    }

    /// The shard that owns the torrent named `info_hash`, if it is known.
    pub fn owner(&self, info_hash: &InfoHash) -> Option<usize> {
        self.0.by_hash.get(info_hash).map(|e| e.owner)
    }

    pub fn forget(&mut self, info_hash: &InfoHash) {
        let t = Arc::make_mut(&mut self.0);
        if let Some(e) = t.by_hash.get_mut(info_hash) {
            e.count = e.count.saturating_sub(1);
            if e.count == 0 {
                t.by_hash.remove(info_hash);
                t.by_req2.remove(&mse::req2_hash(info_hash));
            }
        }
    }
}

impl TorrentLookup for Req2Table {
    fn find(&self, req2: &[u8; mse::HASH_BYTES]) -> Option<InfoHash> {
        self.0.by_req2.get(req2).copied()
    }
}

/// One connection's MSE handshake, by role.
pub enum Handshake {
    /// We dialled.
    Dial(Initiator),
    /// The peer dialled us.
    Answer(Responder<Req2Table>),
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Handshake::Dial(_) => f.write_str("Handshake::Dial"),
            Handshake::Answer(_) => f.write_str("Handshake::Answer"),
        }
    }
}

impl Handshake {
    pub fn receive(&mut self, data: &[u8]) -> Result<Progress, MseError> {
        match self {
            Handshake::Dial(m) => m.receive(data),
            Handshake::Answer(m) => m.receive(data),
        }
    }

    pub fn take_outgoing(&mut self) -> Vec<u8> {
        match self {
            Handshake::Dial(m) => m.take_outgoing(),
            Handshake::Answer(m) => m.take_outgoing(),
        }
    }

    pub fn established(&mut self) -> Option<Established> {
        match self {
            Handshake::Dial(m) => m.established(),
            Handshake::Answer(m) => m.established(),
        }
    }
}

impl SlabKey for ConnId {
    fn from_parts(slot: u32, generation: u32) -> Self {
        ConnId { slot, generation }
    }
    fn slot(&self) -> u32 {
        self.slot
    }
    fn generation(&self) -> u32 {
        self.generation
    }
}

impl Conn {
    pub fn raw_fd(&self) -> Option<RawFd> {
        self.fd.as_ref().map(|f| f.as_raw_fd())
    }

    /// Appends control bytes, merging with a trailing bytes item.
    pub fn queue_bytes(&mut self, bytes: &mut Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        if let Some(OutItem::Bytes(last)) = self.out.back_mut() {
            last.append(bytes);
        } else {
            self.out.push_back(OutItem::Bytes(std::mem::take(bytes)));
        }
    }
}

/// The connections of one shard, named by [`ConnId`].
#[derive(Debug)]
pub struct Conns {
    slab: Slab<ConnId, Conn>,
}

impl Default for Conns {
    fn default() -> Self {
        Conns {
            slab: Slab::new(super::CONNS_PER_SHARD_MAX),
        }
    }
}

impl Conns {
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// A new connection; `None` when the shard holds the most it may.
    pub fn insert(
        &mut self,
        fd: OwnedFd,
        addr: SocketAddr,
        state: ConnState,
        since: std::time::Duration,
    ) -> Option<ConnId> {
        self.slab
            .insert(Conn {
                fd: Some(fd),
                addr,
                state,
                inbuf: Vec::new(),
                recv_op: None,
                recv_paused: false,
                send_op: None,
                sending: None,
                out: VecDeque::new(),
                ops: 0,
                since,
                outgoing: false,
                dial_obfuscated: false,
                mse: None,
                obfuscated: None,
                rc4: None,
                received: 0,
                pipe: None,
                nonblocking: false,
                flush_wanted: false,
            })
            .ok()
    }

    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.slab.get(id)
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slab.get_mut(id)
    }

    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        self.slab.remove(id)
    }

    pub fn ids(&self) -> Vec<ConnId> {
        self.slab.keys()
    }

    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> + '_ {
        self.slab.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torrent_known_twice_stays_until_forgotten_twice() {
        let a = InfoHash([1; 20]);
        let b = InfoHash([2; 20]);
        let mut t = Req2Table::default();
        t.know(a, 0);
        t.know(a, 1);
        t.know(b, 0);
        assert_eq!(
            (t.owner(&a), t.owner(&b)),
            (Some(1), Some(0)),
            "the latest owner"
        );
        // A handshake in progress keeps the table it started with.
        let held = t.clone();
        t.forget(&a);
        assert_eq!(t.find(&mse::req2_hash(&a)), Some(a));
        t.forget(&a);
        assert_eq!(t.find(&mse::req2_hash(&a)), None);
        assert_eq!(t.owner(&a), None);
        assert_eq!(held.find(&mse::req2_hash(&a)), Some(a));
        assert_eq!(t.find(&mse::req2_hash(&b)), Some(b));
        assert_eq!(t.find(&a.0), None, "looked up by HASH('req2', ih), not ih");
        t.forget(&InfoHash([3; 20]));
    }
}
