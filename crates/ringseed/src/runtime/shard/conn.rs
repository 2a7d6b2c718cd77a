//! `Conn`: the IO side of one TCP connection inside a shard: its fd, the
//! bytes received and not yet consumed, the queue of bytes and blocks to
//! send (in wire order), and how many ops are in flight on it. `Conns` is
//! the slab of them, named by [`ConnId`] (slot and generation).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::engine::PeerId;
use crate::runtime::event_loop::{BlockSegment, BufferId, OpId, HEADER_BYTES, SEND_BLOCKS_MAX};

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
    Connecting { torrent: usize },
    /// Incoming, waiting for the handshake's first 48 bytes.
    Routing,
    /// Attached to a torrent's peer.
    Peer { torrent: usize, peer: PeerId },
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
    pub generation: u32,
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

/// The connections of one shard.
#[derive(Debug, Default)]
pub struct Conns {
    slots: Vec<Option<Conn>>,
    generations: Vec<u32>,
    free: Vec<u32>,
    count: usize,
}

impl Conns {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn insert(
        &mut self,
        fd: OwnedFd,
        addr: SocketAddr,
        state: ConnState,
        since: std::time::Duration,
    ) -> ConnId {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.generations.push(0);
            (self.slots.len() - 1) as u32
        });
        let i = slot as usize;
        let generation = self
            .generations
            .get(i)
            .copied()
            .unwrap_or(0)
            .wrapping_add(1);
        if let Some(g) = self.generations.get_mut(i) {
            *g = generation;
        }
        if let Some(s) = self.slots.get_mut(i) {
            *s = Some(Conn {
                generation,
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
            });
        }
        self.count += 1;
        ConnId { slot, generation }
    }

    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        self.slots
            .get(id.slot as usize)?
            .as_ref()
            .filter(|c| c.generation == id.generation)
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.slots
            .get_mut(id.slot as usize)?
            .as_mut()
            .filter(|c| c.generation == id.generation)
    }

    pub fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let s = self.slots.get_mut(id.slot as usize)?;
        if s.as_ref().map(|c| c.generation) != Some(id.generation) {
            return None;
        }
        let c = s.take()?;
        self.free.push(id.slot);
        self.count -= 1;
        Some(c)
    }

    pub fn ids(&self) -> Vec<ConnId> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                c.as_ref().map(|c| ConnId {
                    slot: i as u32,
                    generation: c.generation,
                })
            })
            .collect()
    }
}
