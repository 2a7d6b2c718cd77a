//! `Action`: what a connection asks the engine to do, drained in order with
//! `PeerConnection::poll_action`.
//!
//! Decision on outgoing bytes: a control message is queued as
//! [`Action::Send`] carrying a small [`SendMessage`] that describes it (no
//! allocation, no buffer inside the connection). The engine writes it into
//! its own reusable write buffer with `PeerConnection::write_message`, which
//! knows the two variable-size payloads (our bitfield, our extension
//! handshake). Blocks never travel through the queue: the queue says
//! [`Action::ReadBlock`], the engine reads the disk, and
//! `PeerConnection::on_block_read` gives the 13-byte piece header to write
//! before the block. Writing everything in the order it is handed out keeps
//! the wire order right (a choke before the rejects that follow it).

use crate::wire::Handshake;

/// A control message to send, described, not encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendMessage {
    /// Our 68-byte handshake.
    Handshake(Handshake),
    /// Our bitfield (the connection's `our_pieces`).
    Bitfield,
    /// Our BEP 10 extension handshake (built once at construction).
    ExtensionHandshake,
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have {
        piece: u32,
    },
    HaveAll,
    HaveNone,
    RejectRequest {
        piece: u32,
        offset: u32,
        length: u32,
    },
    /// A block we ask the peer for.
    Request {
        piece: u32,
        offset: u32,
        length: u32,
    },
    /// A request we take back.
    Cancel {
        piece: u32,
        offset: u32,
        length: u32,
    },
}

/// What changed about the peer's pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerHave {
    /// Its bitfield arrived (read it with `peer_pieces`).
    Bitfield,
    /// It has every piece.
    All,
    /// It has no piece.
    None,
    /// It announced one more piece (repeats of a known piece are not passed on).
    Piece(u32),
}

/// Why the connection itself decided to close, without the peer breaking
/// anything (breaches come back as a `PeerError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// Both sides have every piece: there is nothing to trade.
    BothSeeds,
}

/// One thing for the engine to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Write this message (see `PeerConnection::write_message`).
    Send(SendMessage),
    /// Read this block from disk, then call `on_block_read` (or
    /// `on_block_read_failed`).
    ReadBlock {
        piece: u32,
        offset: u32,
        length: u32,
    },
    /// The peer's handshake was accepted; messages flow from now on.
    HandshakeDone {
        peer_id: [u8; 20],
        fast: bool,
        extensions: bool,
    },
    /// The peer's extension handshake arrived (read it with
    /// `peer_extensions`).
    ExtensionHandshake,
    /// The peer became interested (`true`) or stopped being (`false`).
    PeerInterested(bool),
    /// The peer's have-set changed; for the torrent's availability counts.
    PeerHave(PeerHave),
    /// Close the connection.
    Disconnect(DisconnectReason),
    /// A block we requested arrived. Its bytes are
    /// `bytes[data_at..data_at + length]` of the slice passed to the
    /// `receive` call that queued this action: copy them out before that
    /// slice is dropped or changed (drain actions right after `receive`).
    BlockReceived {
        piece: u32,
        offset: u32,
        length: u32,
        data_at: u32,
    },
    /// A request of ours is gone without its block (choked without the fast
    /// extension, rejected, or timed out): the picker may give it to
    /// another peer.
    RequestDropped {
        piece: u32,
        offset: u32,
        length: u32,
    },
    /// A BEP 10 extended message (not the handshake) under one of the ids
    /// we offered in our extension handshake. Its payload is
    /// `bytes[data_at..data_at + length]` of the slice passed to the
    /// `receive` call that queued this action, as for `BlockReceived`.
    Extended { id: u8, data_at: u32, length: u32 },
    /// The peer choked us (only on a change).
    PeerChoked,
    /// The peer unchoked us (only on a change).
    PeerUnchoked,
}
