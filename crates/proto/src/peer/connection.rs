//! `PeerConnection`: the protocol state of one peer connection, seeding side
//! first, as a sans-IO state machine.
//!
//! Time: every entry point takes `now: Duration`, the time since an arbitrary
//! epoch the caller picks (a monotonic clock read by the runtime); it must
//! never go backwards for one connection. The connection never reads a clock.
//!
//! Input: [`receive`](PeerConnection::receive) takes the unconsumed received
//! bytes and returns how many it consumed; the caller keeps the rest and
//! calls again with more appended. It also stops early when the action queue
//! reaches `actions_max`: drain [`poll_action`](PeerConnection::poll_action)
//! and call again with the rest (backpressure instead of an unbounded queue).
//!
//! Order on the wire: handshake (an outgoing connection sends it at once; an
//! incoming one as soon as the peer's first 48 bytes name our torrent), then
//! our bitfield (or `HaveAll`/`HaveNone` when both set the fast bit; nothing
//! when we have no piece and fast is off), then our extension handshake when
//! both set the BEP 10 bit, then `Unchoke` if the caller already unchoked.
//!
//! Decisions:
//! - The peer's bitfield, `HaveAll` or `HaveNone` normally comes first; one
//!   that comes later (aria2 sends its bitfield again after a few pieces) is
//!   merged into what we know (pieces are never taken back) and reported as
//!   `PeerHave::Bitfield` or `PeerHave::All` again; a late `HaveNone` is
//!   ignored. The engine diffs the new have-set against its own copy.
//! - Fast-extension messages without the fast bit on both sides end the
//!   connection (BEP 6 says so). Extended messages without the BEP 10 bit, or
//!   with ids we never registered, are ignored.
//! - Requests: piece and block range errors end the connection. A request
//!   while we choke, or for a piece we lack, is rejected (fast) or dropped
//!   (BEP 3). Duplicates are ignored. Past `requests_queued_max` (which we
//!   advertise as `reqq`): with fast the extra request is rejected (the peer
//!   learns and retries), without fast the connection ends with
//!   `TooManyRequests` (libtorrent drops such peers too; silently dropping
//!   would leave the peer waiting forever).
//! - Cancel removes a queued request not yet handed to the engine (with fast
//!   it is answered by a reject, as BEP 6 requires); a block already being
//!   read is sent anyway, which BEP 6 allows and BEP 3 tolerates.
//! - Choking drops every queued request and marks blocks being read as
//!   unwanted (`on_block_read` then returns `None`); with fast each gets a
//!   reject. So `set_choke` may queue up to `requests_queued_max + 1`
//!   actions past `actions_max`: the queue is bounded by
//!   `actions_max + ACTIONS_PER_MESSAGE_MAX + requests_queued_max + 1`.
//! - Pieces the peer sends us (we never request) are counted and ignored;
//!   its rejects, suggests, allowed-fast and port messages are ignored.
//! - Counters count bytes handed to the engine to send (`bytes_sent`) and
//!   bytes consumed from the peer (`bytes_received`).
//! - After an error the connection is closed: every later call is a no-op or
//!   `Err(Closed)`. Actions queued before the error are still valid (have
//!   notifications included), so the engine should drain them; its final
//!   have-set is [`peer_pieces`](PeerConnection::peer_pieces).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use super::action::{Action, DisconnectReason, PeerHave, SendMessage};
use super::config::PeerConfig;
use super::error::{PeerError, SetupError};
use super::pieces::PieceBits;
use super::shape::TorrentShape;
use crate::wire::{
    encode, piece_header, reserved_bits, ExtensionHandshake, Handshake, HandshakePrefix, Message,
    MessageDecoder, HANDSHAKE_BYTES, PIECE_HEADER_BYTES,
};

/// First send watermark of a connection, in blocks (256 KiB), before the
/// engine knows the peer's rate.
pub const READ_WINDOW_INITIAL: u32 = 16;

/// Most actions one input message (or the handshake) may queue.
pub const ACTIONS_PER_MESSAGE_MAX: usize = 6;

/// Who opened the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We connected; we send our handshake first.
    Outgoing,
    /// The peer connected; the caller routed it to this torrent by the
    /// handshake's info-hash and passes that torrent's shape.
    Incoming,
}

/// Traffic counters, for the upload-slot logic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounters {
    /// Bytes handed to the engine to send (messages and blocks, headers included).
    pub bytes_sent: u64,
    /// Bytes consumed from the peer (handshake included).
    pub bytes_received: u64,
    /// Blocks handed to the engine to send.
    pub blocks_sent: u64,
    /// Block payload bytes handed to the engine to send.
    pub block_bytes_sent: u64,
    /// Blocks the peer sent us (unrequested: we only seed).
    pub blocks_received: u64,
    /// Block payload bytes the peer sent us.
    pub block_bytes_received: u64,
    /// Messages received after the handshake (keep-alives included).
    pub messages_received: u64,
    /// Requests refused (choked, piece missing, queue full with fast, cancelled with fast).
    pub requests_rejected: u64,
    /// Blocks the peer sent that we had not requested (or had cancelled).
    pub blocks_unrequested: u64,
    /// Our requests sent.
    pub requests_sent: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Messages,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlockRequest {
    piece: u32,
    offset: u32,
    length: u32,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    request: BlockRequest,
    wanted: bool,
}

/// The protocol state of one connection.
#[derive(Debug)]
pub struct PeerConnection {
    config: PeerConfig,
    shape: TorrentShape,
    direction: Direction,
    our_peer_id: [u8; 20],
    our_reserved: [u8; 8],
    our_pieces: PieceBits,
    our_extension_handshake: Vec<u8>,
    phase: Phase,
    our_handshake_sent: bool,
    peer_handshake: Option<Handshake>,
    fast: bool,
    extensions: bool,
    decoder: MessageDecoder,
    peer_pieces: PieceBits,
    peer_have_seen: bool,
    peer_extensions: Option<ExtensionHandshake>,
    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    queued: VecDeque<BlockRequest>,
    in_flight: Vec<InFlight>,
    actions: VecDeque<Action>,
    started: Duration,
    last_received: Duration,
    last_sent: Duration,
    counters: PeerCounters,
    /// Our requests the peer has not answered yet (at most
    /// `requests_out_max`).
    outstanding: Vec<BlockRequest>,
    /// Blocks read and handed back with a header, not yet reported sent.
    sending: u32,
    /// Most blocks read or being sent at once (the send watermark), at most
    /// `reads_in_flight_max`; the engine sizes it by the peer's rate.
    read_window: u32,
    /// Since when we have been waiting for a block: the later of the last
    /// block received and the moment requests became outstanding.
    waiting_since: Duration,
    /// When the last requested block arrived (the connection's start
    /// before any).
    last_block_at: Duration,
    snubbed: bool,
}

impl PeerConnection {
    /// A new connection at `now`. `our_pieces` must cover the torrent's piece
    /// count. An outgoing connection queues its handshake at once.
    pub fn new(
        config: PeerConfig,
        shape: TorrentShape,
        direction: Direction,
        our_peer_id: [u8; 20],
        our_pieces: PieceBits,
        now: Duration,
    ) -> Result<PeerConnection, SetupError> {
        config.validate()?;
        if our_pieces.pieces() != shape.pieces() {
            return Err(SetupError::BitfieldSize {
                expected: shape.pieces(),
                found: our_pieces.pieces(),
            });
        }
        let our_extension_handshake = ExtensionHandshake {
            v: Some(config.client_name.clone()),
            reqq: Some(config.requests_queued_max),
            ..ExtensionHandshake::default()
        }
        .encode();
        let limits = config.wire_limits(&shape);
        let read_window = config.reads_in_flight_max.min(READ_WINDOW_INITIAL);
        let mut conn = PeerConnection {
            our_reserved: reserved_bits(
                config.extension_protocol,
                config.fast_extension,
                config.dht,
            ),
            decoder: MessageDecoder::new(limits),
            peer_pieces: PieceBits::none(shape.pieces()),
            queued: VecDeque::new(),
            in_flight: Vec::new(),
            actions: VecDeque::new(),
            config,
            shape,
            direction,
            our_peer_id,
            our_pieces,
            our_extension_handshake,
            phase: Phase::Handshake,
            our_handshake_sent: false,
            peer_handshake: None,
            fast: false,
            extensions: false,
            peer_have_seen: false,
            peer_extensions: None,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            started: now,
            last_received: now,
            last_sent: now,
            counters: PeerCounters::default(),
            outstanding: Vec::new(),
            sending: 0,
            read_window,
            waiting_since: now,
            last_block_at: now,
            snubbed: false,
        };
        if direction == Direction::Outgoing {
            conn.send_handshake(now);
        }
        Ok(conn)
    }

    // ---- accessors ----

    pub fn direction(&self) -> Direction {
        self.direction
    }
    /// The peer's handshake, once accepted.
    pub fn peer_handshake(&self) -> Option<&Handshake> {
        self.peer_handshake.as_ref()
    }
    /// Both sides set the BEP 6 fast bit.
    pub fn fast(&self) -> bool {
        self.fast
    }
    /// Both sides set the BEP 10 extension protocol bit.
    pub fn extensions(&self) -> bool {
        self.extensions
    }
    pub fn peer_extensions(&self) -> Option<&ExtensionHandshake> {
        self.peer_extensions.as_ref()
    }
    /// The pieces the peer has said it has.
    pub fn peer_pieces(&self) -> &PieceBits {
        &self.peer_pieces
    }
    pub fn our_pieces(&self) -> &PieceBits {
        &self.our_pieces
    }
    pub fn am_choking(&self) -> bool {
        self.am_choking
    }
    pub fn am_interested(&self) -> bool {
        self.am_interested
    }
    pub fn peer_choking(&self) -> bool {
        self.peer_choking
    }
    pub fn peer_interested(&self) -> bool {
        self.peer_interested
    }
    pub fn counters(&self) -> &PeerCounters {
        &self.counters
    }
    /// Requests held: queued plus being read (wanted ones).
    pub fn requests_held(&self) -> usize {
        self.queued.len()
            + self.in_flight.iter().filter(|f| f.wanted).count()
            + self.sending as usize
    }
    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }
    /// Whether the handshake is done and messages flow.
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Messages
    }

    // ---- output ----

    /// The next thing for the engine to do, in order.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Appends the wire form of `msg` to `out` (the engine's write buffer).
    pub fn write_message(&self, msg: &SendMessage, out: &mut Vec<u8>) {
        let m = match *msg {
            SendMessage::Handshake(h) => return out.extend_from_slice(&h.encode()),
            SendMessage::Bitfield => Message::Bitfield(self.our_pieces.as_bytes()),
            SendMessage::ExtensionHandshake => Message::Extended {
                id: 0,
                payload: &self.our_extension_handshake,
            },
            SendMessage::KeepAlive => Message::KeepAlive,
            SendMessage::Choke => Message::Choke,
            SendMessage::Unchoke => Message::Unchoke,
            SendMessage::Interested => Message::Interested,
            SendMessage::NotInterested => Message::NotInterested,
            SendMessage::Have { piece } => Message::Have { piece },
            SendMessage::HaveAll => Message::HaveAll,
            SendMessage::HaveNone => Message::HaveNone,
            SendMessage::RejectRequest {
                piece,
                offset,
                length,
            } => Message::RejectRequest {
                piece,
                offset,
                length,
            },
            SendMessage::Request {
                piece,
                offset,
                length,
            } => Message::Request {
                piece,
                offset,
                length,
            },
            SendMessage::Cancel {
                piece,
                offset,
                length,
            } => Message::Cancel {
                piece,
                offset,
                length,
            },
        };
        encode(&m, out);
    }

    fn encoded_len(&self, msg: &SendMessage) -> usize {
        match msg {
            SendMessage::Handshake(_) => HANDSHAKE_BYTES,
            SendMessage::Bitfield => 5 + self.our_pieces.as_bytes().len(),
            SendMessage::ExtensionHandshake => 6 + self.our_extension_handshake.len(),
            SendMessage::KeepAlive => 4,
            SendMessage::Have { .. } => 9,
            SendMessage::RejectRequest { .. }
            | SendMessage::Request { .. }
            | SendMessage::Cancel { .. } => 17,
            _ => 5,
        }
    }

    fn send(&mut self, now: Duration, msg: SendMessage) {
        self.counters.bytes_sent += self.encoded_len(&msg) as u64;
        self.last_sent = now;
        self.actions.push_back(Action::Send(msg));
    }

    fn send_handshake(&mut self, now: Duration) {
        if self.our_handshake_sent {
            return;
        }
        self.our_handshake_sent = true;
        let h = Handshake {
            info_hash: self.shape.info_hash(),
            peer_id: self.our_peer_id,
            reserved: self.our_reserved,
        };
        self.send(now, SendMessage::Handshake(h));
    }

    fn reject(&mut self, now: Duration, r: BlockRequest) {
        self.counters.requests_rejected += 1;
        if self.fast {
            self.send(
                now,
                SendMessage::RejectRequest {
                    piece: r.piece,
                    offset: r.offset,
                    length: r.length,
                },
            );
        }
    }

    fn close(&mut self, e: PeerError) -> PeerError {
        self.phase = Phase::Closed;
        self.queued.clear();
        self.in_flight.clear();
        self.outstanding.clear();
        e
    }

    // ---- input ----

    /// Feeds received bytes (everything not yet consumed, oldest first).
    /// Returns how many were consumed; keep the rest for the next call. An
    /// error ends the connection.
    ///
    /// An incoming connection is fed from the handshake's first byte, the 48
    /// bytes the engine peeked at for routing included. Any non-empty call
    /// counts as activity for the inactivity timeout, so call it when bytes
    /// arrive (or right after draining actions, on the backpressure path).
    pub fn receive(&mut self, now: Duration, bytes: &[u8]) -> Result<usize, PeerError> {
        if self.phase == Phase::Closed {
            return Err(PeerError::Closed);
        }
        if !bytes.is_empty() {
            self.last_received = now;
        }
        match self.receive_inner(now, bytes) {
            Ok(n) => Ok(n),
            Err(e) => Err(self.close(e)),
        }
    }

    fn receive_inner(&mut self, now: Duration, bytes: &[u8]) -> Result<usize, PeerError> {
        let mut consumed = 0;
        if self.phase == Phase::Handshake {
            let Some(prefix) = HandshakePrefix::decode(bytes)? else {
                return Ok(0);
            };
            let expected = self.shape.info_hash();
            if prefix.info_hash != expected {
                return Err(PeerError::InfoHashMismatch {
                    expected,
                    found: prefix.info_hash,
                });
            }
            self.send_handshake(now);
            let Some(h) = Handshake::decode(bytes)? else {
                return Ok(0);
            };
            if h.peer_id == self.our_peer_id {
                return Err(PeerError::ConnectedToSelf);
            }
            consumed = HANDSHAKE_BYTES;
            self.counters.bytes_received += HANDSHAKE_BYTES as u64;
            self.on_handshake(now, h);
        }
        while self.phase == Phase::Messages && self.actions.len() < self.config.actions_max as usize
        {
            let rest = bytes.get(consumed..).unwrap_or_default();
            let Some((msg, n)) = self.decoder.decode(rest)? else {
                break;
            };
            // Where a piece message's block starts inside `bytes`.
            let data_at = match &msg {
                Message::Piece { block, .. } => {
                    (block.as_ptr() as usize).saturating_sub(bytes.as_ptr() as usize)
                }
                Message::Extended { payload, .. } => {
                    (payload.as_ptr() as usize).saturating_sub(bytes.as_ptr() as usize)
                }
                _ => 0,
            };
            consumed += n;
            self.counters.bytes_received += n as u64;
            self.on_message(now, msg, data_at as u32)?;
            self.counters.messages_received += 1;
        }
        Ok(consumed)
    }

    fn on_handshake(&mut self, now: Duration, h: Handshake) {
        let fast = self.config.fast_extension && h.supports_fast();
        let extensions = self.config.extension_protocol && h.supports_extension_protocol();
        self.fast = fast;
        self.extensions = extensions;
        self.peer_handshake = Some(h);
        self.phase = Phase::Messages;
        self.actions.push_back(Action::HandshakeDone {
            peer_id: h.peer_id,
            fast,
            extensions,
        });
        let ours = &self.our_pieces;
        let first = if fast && ours.is_all() {
            Some(SendMessage::HaveAll)
        } else if fast && ours.is_none() {
            Some(SendMessage::HaveNone)
        } else if ours.is_none() {
            None
        } else {
            Some(SendMessage::Bitfield)
        };
        if let Some(m) = first {
            self.send(now, m);
        }
        if extensions {
            self.send(now, SendMessage::ExtensionHandshake);
        }
        if !self.am_choking {
            self.send(now, SendMessage::Unchoke);
        }
    }

    fn fast_only(&self, message: &'static str) -> Result<(), PeerError> {
        if self.fast {
            Ok(())
        } else {
            Err(PeerError::FastNotNegotiated { message })
        }
    }

    /// Records a have-set message; returns whether one (or any other
    /// message) came before it.
    fn have_set_late(&mut self) -> bool {
        let late = self.peer_have_seen;
        self.peer_have_seen = true;
        late
    }

    fn check_block(
        &self,
        message: &'static str,
        piece: u32,
        offset: u32,
        length: u32,
    ) -> Result<BlockRequest, PeerError> {
        let piece_size = self
            .shape
            .piece_size(piece)
            .ok_or(PeerError::PieceOutOfRange {
                message,
                piece,
                pieces: self.shape.pieces(),
            })?;
        if u64::from(offset) + u64::from(length) > piece_size {
            return Err(PeerError::BlockOutOfPiece {
                message,
                piece,
                offset,
                length,
                piece_size,
            });
        }
        Ok(BlockRequest {
            piece,
            offset,
            length,
        })
    }

    fn on_message(
        &mut self,
        now: Duration,
        msg: Message<'_>,
        data_at: u32,
    ) -> Result<(), PeerError> {
        let name = msg.name();
        match msg {
            Message::KeepAlive | Message::Extended { .. } | Message::Unknown { .. } => {}
            Message::Bitfield(_) | Message::HaveAll | Message::HaveNone => {}
            _ => self.peer_have_seen = true,
        }
        match msg {
            Message::KeepAlive | Message::Unknown { .. } | Message::Port(_) => {}
            Message::Choke => {
                if !self.peer_choking {
                    self.peer_choking = true;
                    self.actions.push_back(Action::PeerChoked);
                    if !self.fast {
                        // Without BEP 6 a choke drops every request.
                        self.drop_outstanding(now, false);
                    }
                }
            }
            Message::Unchoke => {
                if self.peer_choking {
                    self.peer_choking = false;
                    self.actions.push_back(Action::PeerUnchoked);
                }
            }
            Message::Interested | Message::NotInterested => {
                let on = msg == Message::Interested;
                if self.peer_interested != on {
                    self.peer_interested = on;
                    self.actions.push_back(Action::PeerInterested(on));
                }
            }
            Message::Have { piece } => {
                if piece >= self.shape.pieces() {
                    return Err(PeerError::PieceOutOfRange {
                        message: name,
                        piece,
                        pieces: self.shape.pieces(),
                    });
                }
                if self.peer_pieces.set(piece) {
                    self.actions
                        .push_back(Action::PeerHave(PeerHave::Piece(piece)));
                    self.check_seeds();
                }
            }
            Message::Bitfield(bits) => {
                // The decoder checked length and spare bits against the same
                // piece count, so this cannot fail; stay total anyway.
                let theirs = PieceBits::from_wire(self.shape.pieces(), bits)
                    .unwrap_or_else(|| PieceBits::none(self.shape.pieces()));
                if self.have_set_late() {
                    // aria2 sends a bitfield again later: pieces are only
                    // ever added, so merge it.
                    self.peer_pieces.union_with(&theirs);
                } else {
                    self.peer_pieces = theirs;
                }
                self.actions.push_back(Action::PeerHave(PeerHave::Bitfield));
                self.check_seeds();
            }
            Message::HaveAll | Message::HaveNone => {
                self.fast_only(name)?;
                let late = self.have_set_late();
                if msg == Message::HaveAll {
                    self.peer_pieces.set_all();
                    self.actions.push_back(Action::PeerHave(PeerHave::All));
                    self.check_seeds();
                } else if !late {
                    self.peer_pieces.clear();
                    self.actions.push_back(Action::PeerHave(PeerHave::None));
                }
            }
            Message::Request {
                piece,
                offset,
                length,
            } => {
                let r = self.check_block(name, piece, offset, length)?;
                self.on_request(now, r)?;
            }
            Message::Cancel {
                piece,
                offset,
                length,
            } => {
                let r = self.check_block(name, piece, offset, length)?;
                if let Some(i) = self.queued.iter().position(|q| *q == r) {
                    self.queued.remove(i);
                    self.reject(now, r);
                }
            }
            Message::Piece {
                piece,
                offset,
                block,
            } => {
                let length = block.len() as u32;
                let r = self.check_block(name, piece, offset, length)?;
                self.counters.blocks_received += 1;
                self.counters.block_bytes_received += block.len() as u64;
                if let Some(i) = self.outstanding.iter().position(|o| *o == r) {
                    self.outstanding.swap_remove(i);
                    self.waiting_since = now;
                    self.last_block_at = now;
                    self.snubbed = false;
                    self.actions.push_back(Action::BlockReceived {
                        piece,
                        offset,
                        length,
                        data_at,
                    });
                } else {
                    self.counters.blocks_unrequested += 1;
                }
            }
            Message::SuggestPiece(_) | Message::AllowedFast(_) => self.fast_only(name)?,
            Message::RejectRequest {
                piece,
                offset,
                length,
            } => {
                self.fast_only(name)?;
                let r = BlockRequest {
                    piece,
                    offset,
                    length,
                };
                if let Some(i) = self.outstanding.iter().position(|o| *o == r) {
                    self.outstanding.swap_remove(i);
                    self.actions.push_back(Action::RequestDropped {
                        piece,
                        offset,
                        length,
                    });
                }
            }
            Message::Extended { id, payload } => {
                if self.extensions && id == 0 {
                    self.peer_extensions = Some(ExtensionHandshake::parse(payload)?);
                    self.actions.push_back(Action::ExtensionHandshake);
                } else if self.extensions {
                    self.actions.push_back(Action::Extended {
                        id,
                        data_at,
                        length: payload.len() as u32,
                    });
                }
            }
        }
        Ok(())
    }

    fn check_seeds(&mut self) {
        if self.config.disconnect_seeds && self.peer_pieces.is_all() && self.our_pieces.is_all() {
            self.actions
                .push_back(Action::Disconnect(DisconnectReason::BothSeeds));
        }
    }

    fn on_request(&mut self, now: Duration, r: BlockRequest) -> Result<(), PeerError> {
        if self.am_choking || !self.our_pieces.has(r.piece) {
            self.reject(now, r);
            return Ok(());
        }
        let duplicate =
            self.queued.contains(&r) || self.in_flight.iter().any(|f| f.wanted && f.request == r);
        if duplicate {
            return Ok(());
        }
        let held = self.requests_held();
        let limit = self.config.requests_queued_max;
        if held >= limit as usize {
            if self.fast {
                self.reject(now, r);
                return Ok(());
            }
            return Err(PeerError::TooManyRequests {
                queued: held as u32,
                limit,
            });
        }
        self.queued.push_back(r);
        self.start_reads();
        Ok(())
    }

    /// Hands queued requests to the engine while reads are below the limit.
    fn start_reads(&mut self) {
        while self.in_flight.len() + (self.sending as usize) < self.read_window as usize {
            let Some(r) = self.queued.pop_front() else {
                break;
            };
            self.in_flight.push(InFlight {
                request: r,
                wanted: true,
            });
            self.actions.push_back(Action::ReadBlock {
                piece: r.piece,
                offset: r.offset,
                length: r.length,
            });
        }
    }

    fn take_in_flight(&mut self, r: BlockRequest) -> Option<InFlight> {
        let i = self
            .in_flight
            .iter()
            .position(|f| f.wanted && f.request == r)
            .or_else(|| self.in_flight.iter().position(|f| f.request == r))?;
        Some(self.in_flight.swap_remove(i))
    }

    /// The engine has read the block asked for by `ReadBlock`. Returns the
    /// piece header to write right before the block, or `None` if the block
    /// is no longer wanted (we choked since, or it was never asked for): drop
    /// it then.
    pub fn on_block_read(
        &mut self,
        now: Duration,
        piece: u32,
        offset: u32,
        length: u32,
    ) -> Option<[u8; PIECE_HEADER_BYTES]> {
        if self.phase != Phase::Messages {
            return None;
        }
        let r = BlockRequest {
            piece,
            offset,
            length,
        };
        let f = self.take_in_flight(r)?;
        if f.wanted {
            self.sending += 1;
        }
        self.start_reads();
        if !f.wanted {
            return None;
        }
        self.counters.blocks_sent += 1;
        self.counters.block_bytes_sent += u64::from(length);
        self.counters.bytes_sent += (PIECE_HEADER_BYTES as u64) + u64::from(length);
        self.last_sent = now;
        Some(piece_header(piece, offset, length))
    }

    /// A block handed out by `on_block_read` has left (or was dropped with
    /// its connection's queue): room for the next read.
    pub fn on_block_sent(&mut self) {
        self.sending = self.sending.saturating_sub(1);
        if self.phase == Phase::Messages {
            self.start_reads();
        }
    }

    /// Sets the send watermark: most blocks read or queued for sending at
    /// once, clamped to 1..=`reads_in_flight_max`. The engine keeps it near
    /// 1.5 s of the peer's upload rate, as libtorrent does.
    pub fn set_read_window(&mut self, blocks: u32) {
        self.read_window = blocks.clamp(1, self.config.reads_in_flight_max);
        if self.phase == Phase::Messages {
            self.start_reads();
        }
    }

    /// The send watermark, in blocks.
    pub fn read_window(&self) -> u32 {
        self.read_window
    }

    /// The engine could not read the block: the request is refused (a
    /// reject with fast, dropped otherwise).
    pub fn on_block_read_failed(&mut self, now: Duration, piece: u32, offset: u32, length: u32) {
        if self.phase != Phase::Messages {
            return;
        }
        let r = BlockRequest {
            piece,
            offset,
            length,
        };
        if let Some(f) = self.take_in_flight(r) {
            if f.wanted {
                self.reject(now, r);
            }
            self.start_reads();
        }
    }

    /// Chokes (`true`) or unchokes the peer, as the torrent's choker decides.
    /// Before the handshake is done, only the state is kept; an unchoke is
    /// sent after our bitfield.
    pub fn set_choke(&mut self, now: Duration, choke: bool) {
        if self.phase == Phase::Closed || self.am_choking == choke {
            return;
        }
        self.am_choking = choke;
        if self.phase != Phase::Messages {
            return;
        }
        if !choke {
            self.send(now, SendMessage::Unchoke);
            return;
        }
        self.send(now, SendMessage::Choke);
        let queued: Vec<BlockRequest> = self.queued.drain(..).collect();
        let mut dropped = Vec::new();
        for f in self.in_flight.iter_mut().filter(|f| f.wanted) {
            f.wanted = false;
            dropped.push(f.request);
        }
        for r in dropped.into_iter().chain(queued) {
            self.reject(now, r);
        }
    }

    /// Says we are (or are no longer) interested in the peer's pieces.
    pub fn set_interested(&mut self, now: Duration, interested: bool) {
        if self.phase != Phase::Messages || self.am_interested == interested {
            return;
        }
        self.am_interested = interested;
        let m = if interested {
            SendMessage::Interested
        } else {
            SendMessage::NotInterested
        };
        self.send(now, m);
    }

    /// We completed `piece`: record it and tell the peer.
    pub fn announce_have(&mut self, now: Duration, piece: u32) {
        if self.our_pieces.set(piece) && self.phase == Phase::Messages {
            self.send(now, SendMessage::Have { piece });
            self.check_seeds();
        }
    }

    /// Adds our listen port (`p`) and the address we see the peer at
    /// (`yourip`) to our BEP 10 handshake. Call before the handshake goes
    /// out (right after `new`); later calls change nothing already sent.
    ///
    /// `m` names the extensions we speak, each with the id the peer is to
    /// send it under; `metadata_size` is the info dictionary's length when
    /// we serve it (BEP 9).
    pub fn set_extension_info(
        &mut self,
        listen_port: Option<u16>,
        yourip: Option<IpAddr>,
        m: &[(&str, u8)],
        metadata_size: Option<u64>,
    ) {
        self.our_extension_handshake = ExtensionHandshake {
            m: m.iter()
                .map(|(name, id)| ((*name).to_string(), *id))
                .collect(),
            v: Some(self.config.client_name.clone()),
            reqq: Some(self.config.requests_queued_max),
            p: listen_port.filter(|&p| p != 0),
            yourip,
            metadata_size,
        }
        .encode();
    }

    /// Writes a BEP 10 extended message (`id`: the peer's id for the
    /// extension) with `payload` into `out`, counted as sent. Only after the
    /// handshakes: returns false (writing nothing) before, or when the peer
    /// did not set the extension bit.
    pub fn write_extended(
        &mut self,
        now: Duration,
        id: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        if self.phase != Phase::Messages || !self.extensions || id == 0 {
            return false;
        }
        let before = out.len();
        crate::wire::message::encode(&Message::Extended { id, payload }, out);
        self.counters.bytes_sent += (out.len() - before) as u64;
        self.last_sent = now;
        true
    }

    // ---- our requests (downloading) ----

    /// Our requests outstanding at the peer.
    pub fn requests_outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// How many more requests we may send now: `requests_out_max`, lowered
    /// to the peer's `reqq` (at least 1), minus those outstanding.
    pub fn request_slots_free(&self) -> usize {
        let mut limit = self.config.requests_out_max;
        if let Some(reqq) = self.peer_extensions.as_ref().and_then(|e| e.reqq) {
            limit = limit.min(reqq.max(1));
        }
        (limit as usize).saturating_sub(self.outstanding.len())
    }

    /// When the last block we had requested arrived (the connection's
    /// start before any).
    pub fn last_block_received(&self) -> Duration {
        self.last_block_at
    }

    /// The peer has sent nothing we asked for in `request_timeout`.
    pub fn is_snubbed(&self) -> bool {
        self.snubbed
    }

    /// Whether the peer has `piece`.
    pub fn peer_has(&self, piece: u32) -> bool {
        self.peer_pieces.has(piece)
    }

    /// Asks the peer for a block. Returns false, sending nothing, unless the
    /// handshake is done, the peer unchokes us, we said we are interested,
    /// the peer has the piece, the block lies inside the torrent and is at
    /// most `block_bytes_max` long, it is not outstanding already and a
    /// request slot is free.
    pub fn request(&mut self, now: Duration, piece: u32, offset: u32, length: u32) -> bool {
        if self.phase != Phase::Messages || self.peer_choking || !self.am_interested {
            return false;
        }
        let Ok(r) = self.check_block("request", piece, offset, length) else {
            return false;
        };
        // A block over our own decoder's limit would end the connection
        // when it arrives; a piece the peer lacks cannot be served.
        if length == 0
            || length > self.config.block_bytes_max
            || !self.peer_pieces.has(piece)
            || self.outstanding.contains(&r)
            || self.request_slots_free() == 0
        {
            return false;
        }
        if self.outstanding.is_empty() {
            self.waiting_since = now;
        }
        self.outstanding.push(r);
        self.counters.requests_sent += 1;
        self.send(
            now,
            SendMessage::Request {
                piece,
                offset,
                length,
            },
        );
        true
    }

    /// Takes back an outstanding request (sends a cancel). Returns whether
    /// it was outstanding.
    pub fn cancel_request(&mut self, now: Duration, piece: u32, offset: u32, length: u32) -> bool {
        let r = BlockRequest {
            piece,
            offset,
            length,
        };
        let Some(i) = self.outstanding.iter().position(|o| *o == r) else {
            return false;
        };
        self.outstanding.swap_remove(i);
        if self.phase == Phase::Messages {
            self.send(
                now,
                SendMessage::Cancel {
                    piece,
                    offset,
                    length,
                },
            );
        }
        true
    }

    /// Drops every outstanding request with a `RequestDropped` each (at most
    /// `requests_out_max`), sending cancels when `cancel`.
    fn drop_outstanding(&mut self, now: Duration, cancel: bool) {
        let dropped: Vec<BlockRequest> = self.outstanding.drain(..).collect();
        for r in dropped {
            if cancel {
                self.send(
                    now,
                    SendMessage::Cancel {
                        piece: r.piece,
                        offset: r.offset,
                        length: r.length,
                    },
                );
            }
            self.actions.push_back(Action::RequestDropped {
                piece: r.piece,
                offset: r.offset,
                length: r.length,
            });
        }
    }

    // ---- time ----

    /// When [`on_timer`](Self::on_timer) must next be called, if ever.
    pub fn next_timeout(&self) -> Option<Duration> {
        match self.phase {
            Phase::Closed => None,
            Phase::Handshake => Some(self.started.saturating_add(self.config.handshake_timeout)),
            Phase::Messages => {
                let mut at = self
                    .last_received
                    .saturating_add(self.config.inactivity_timeout)
                    .min(
                        self.last_sent
                            .saturating_add(self.config.keepalive_interval),
                    );
                if !self.outstanding.is_empty() {
                    at = at.min(
                        self.waiting_since
                            .saturating_add(self.config.request_timeout),
                    );
                }
                Some(at)
            }
        }
    }

    /// Checks the timeouts at `now`: ends the connection if the peer is too
    /// slow or silent, queues a keep-alive if we have been quiet.
    pub fn on_timer(&mut self, now: Duration) -> Result<(), PeerError> {
        match self.phase {
            Phase::Closed => Ok(()),
            Phase::Handshake => {
                let waited = now.saturating_sub(self.started);
                if waited >= self.config.handshake_timeout {
                    return Err(self.close(PeerError::HandshakeTimeout {
                        waited,
                        limit: self.config.handshake_timeout,
                    }));
                }
                Ok(())
            }
            Phase::Messages => {
                let silent = now.saturating_sub(self.last_received);
                if silent >= self.config.inactivity_timeout {
                    return Err(self.close(PeerError::Inactive {
                        silent,
                        limit: self.config.inactivity_timeout,
                    }));
                }
                if !self.outstanding.is_empty()
                    && now.saturating_sub(self.waiting_since) >= self.config.request_timeout
                {
                    self.snubbed = true;
                    self.waiting_since = now;
                    self.drop_outstanding(now, true);
                }
                if now.saturating_sub(self.last_sent) >= self.config.keepalive_interval {
                    self.send(now, SendMessage::KeepAlive);
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
