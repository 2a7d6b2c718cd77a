//! `Conn`: the IO side of one TCP connection inside a shard: its fd, the
//! bytes received and not yet consumed, the queue of bytes and blocks to
//! send (in wire order), and how many ops are in flight on it. `Conns` is
//! the slab of them, named by [`ConnId`] (slot and generation).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::engine::PeerId;
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
    /// Attached to a torrent's peer.
    Peer { torrent: TorrentId, peer: PeerId },
    /// Being torn down: waiting for its ops to complete.
    Closing,
}

/// One thing to send.
#[derive(Debug)]
pub enum OutItem {
    /// Control messages, encoded.
    Bytes(Vec<u8>),
    /// Up to `SEND_BLOCKS_MAX` piece messages whose blocks lie in one pool
    /// buffer (a coalesced read), the first `skip` bytes already sent.
    Blocks(BlocksOut),
}

/// Piece messages to send from one buffer.
#[derive(Debug, Clone, Copy)]
pub struct BlocksOut {
    pub buffer: BufferId,
    pub segs: [BlockSegment; SEND_BLOCKS_MAX],
    pub n: usize,
    pub skip: usize,
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
