//! `Leecher`: one synthetic downloading peer of the load generator, sans-IO.
//! Received bytes and a `now` go in; bytes to send come out
//! ([`Leecher::take_output`]).
//!
//! What it does, as a real leecher would: sends its handshake (fast
//! extension bit set), checks the peer's, says it has nothing (HaveNone) and
//! that it is interested, waits to be unchoked, then keeps
//! [`LeecherConfig::requests_max`] block requests outstanding, walking the
//! pieces in a seeded random order ([`PieceOrder`]). Every block that
//! arrives is checked by the caller's [`BlockCheck`] (the payload is
//! generated, so nothing is stored) and counted good or bad, and the time
//! from its request to its arrival is kept until the caller drains it into
//! a [`Histogram`] ([`Leecher::drain_latency`]; one histogram per thread,
//! not per peer, keeps 10,000 peers small).
//!
//! Rules (each tested below):
//! - Choked without the fast extension: every outstanding request is gone
//!   (BEP 3) and is asked again after the next unchoke. With the fast
//!   extension the requests stay until the peer rejects them (BEP 6).
//! - A rejected request is asked again later; a bad block is not (the check
//!   is deterministic, a lying peer would loop forever).
//! - Pieces the peer does not have are skipped and counted.
//! - A block is never asked for twice at once (peers ignore the copy).
//! - A block nobody asked for is counted, never credited.
//! - Done: every piece received once; or, with a byte budget, once that many
//!   good bytes arrived (the order starts over, reshuffled, as often as
//!   needed).
//!
//! Boundary: no socket, no clock; limits are config fields checked at
//! construction, and the reassembly buffer never holds more than one
//! message.

use std::collections::VecDeque;
use std::time::Duration;

use super::histogram::Histogram;
use super::order::{OrderError, PieceOrder};
use ringseed::peer::TorrentShape;
use ringseed::wire::{
    encode, reserved_bits, Handshake, HandshakeError, Limits, Message, MessageDecoder, WireError,
    HANDSHAKE_BYTES,
};
use ringseed::InfoHash;

/// Default requests kept outstanding.
pub const REQUESTS_MAX_DEFAULT: u32 = 64;
/// Most requests outstanding a leecher may be configured for.
pub const REQUESTS_LIMIT: u32 = 4096;
/// Quiet time after which [`Leecher::on_timer`] sends a keep-alive (peers
/// drop a connection silent for two minutes).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// Most latency samples kept between two drains (one 1 MiB receive holds
/// at most 64 blocks of 16 KiB; the rest is slack).
pub const LATENCY_PENDING_MAX: usize = 4096;
/// Largest `check_every`: at least one block in a million is checked.
pub const CHECK_EVERY_MAX: u32 = 1_000_000;
/// Default (and largest) block size asked for, in bytes.
pub const BLOCK_BYTES_DEFAULT: u32 = 16 * 1024;

/// Checks one received block: the caller knows what the bytes must be.
pub trait BlockCheck {
    /// Whether `data` is the block at `offset` of piece `piece`.
    fn check(&self, piece: u32, offset: u32, data: &[u8]) -> bool;
}

impl<F: Fn(u32, u32, &[u8]) -> bool> BlockCheck for F {
    fn check(&self, piece: u32, offset: u32, data: &[u8]) -> bool {
        self(piece, offset, data)
    }
}

/// The tunables of one leecher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeecherConfig {
    /// Requests kept outstanding, 1 to [`REQUESTS_LIMIT`].
    pub requests_max: u32,
    /// Block size asked for, 1 to [`BLOCK_BYTES_DEFAULT`] bytes.
    pub block_bytes: u32,
    /// Good bytes after which the leecher is done, starting the piece order
    /// over as often as needed; `None`: done after one pass over the pieces.
    pub bytes_budget: Option<u64>,
    /// Our peer id.
    pub peer_id: [u8; 20],
    /// Seed of the piece order.
    pub order_seed: u64,
    /// Check one block in this many (1: every block, the default); the
    /// others are counted unchecked. For runs where checking would cost the
    /// load generator more CPU than the seeder spends.
    pub check_every: u32,
}

impl Default for LeecherConfig {
    fn default() -> Self {
        LeecherConfig {
            requests_max: REQUESTS_MAX_DEFAULT,
            block_bytes: BLOCK_BYTES_DEFAULT,
            bytes_budget: None,
            peer_id: *b"-RB0001-000000000000",
            order_seed: 1,
            check_every: 1,
        }
    }
}

/// Why a leecher cannot start, or why its connection must end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeecherError {
    #[error("requests_max {found} is out of range: expected 1 to {max}")]
    RequestsMax { found: u32, max: u32 },
    #[error("check_every {found} is out of range: expected 1 to {max}")]
    CheckEvery { found: u32, max: u32 },
    #[error("block_bytes {found} is out of range: expected 1 to {max}")]
    BlockBytes { found: u32, max: u32 },
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error("peer handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("peer answered for torrent {found}, expected {expected}")]
    InfoHash { expected: InfoHash, found: InfoHash },
    #[error("peer message: {0}")]
    Wire(#[from] WireError),
    #[error("peer announced piece {piece}, but the torrent has {pieces}")]
    PieceIndex { piece: u32, pieces: u32 },
}

/// What a leecher counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeecherStats {
    /// Blocks that passed the check, and their bytes.
    pub blocks_good: u64,
    pub bytes_good: u64,
    /// Blocks that failed the check, and their bytes.
    pub blocks_bad: u64,
    pub bytes_bad: u64,
    /// Blocks delivered but not checked (see `check_every`), and their bytes.
    pub blocks_unchecked: u64,
    pub bytes_unchecked: u64,
    /// Blocks that matched no outstanding request (not credited).
    pub blocks_unrequested: u64,
    /// Requests sent, rejects received.
    pub requests_sent: u64,
    pub rejects: u64,
    /// Chokes and unchokes received (changes only).
    pub chokes: u64,
    pub unchokes: u64,
    /// Pieces skipped because the peer did not have them.
    pub pieces_skipped: u64,
    /// Bytes received and sent on the wire, everything included.
    pub wire_bytes_received: u64,
    pub wire_bytes_sent: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Messages,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Block {
    piece: u32,
    offset: u32,
    length: u32,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    block: Block,
    sent_at: Duration,
}

/// The piece being cut into requests.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    piece: u32,
    offset: u32,
    size: u32,
}

/// What the peer has.
#[derive(Debug, Clone)]
enum PeerPieces {
    Unknown,
    All,
    Some(Vec<u8>),
}

impl PeerPieces {
    fn has(&self, piece: u32) -> bool {
        match self {
            PeerPieces::Unknown => false,
            PeerPieces::All => true,
            PeerPieces::Some(bits) => bits
                .get((piece / 8) as usize)
                .is_some_and(|b| b & (0x80 >> (piece % 8)) != 0),
        }
    }
}

/// One synthetic leecher.
#[derive(Debug)]
pub struct Leecher {
    config: LeecherConfig,
    shape: TorrentShape,
    phase: Phase,
    decoder: MessageDecoder,
    /// Bytes of one message (or the handshake) not yet whole.
    partial: Vec<u8>,
    out: Vec<u8>,
    order: PieceOrder,
    cursor: Option<Cursor>,
    /// Whether this round of the order produced a request (a new round is
    /// only started after one that did, so a peer with nothing never spins).
    requested_this_round: bool,
    /// The order handed out its last piece and will not start over.
    order_done: bool,
    retry: VecDeque<Block>,
    outstanding: VecDeque<Pending>,
    outstanding_bytes: u64,
    peer_choking: bool,
    fast: bool,
    peer_pieces: PeerPieces,
    stats: LeecherStats,
    /// Latencies not yet drained, at most [`LATENCY_PENDING_MAX`].
    latency: Vec<Duration>,
    latency_dropped: u64,
    interested_at: Option<Duration>,
    done_at: Option<Duration>,
    /// When bytes were last queued for sending.
    last_output_at: Duration,
    /// Whether a block can be asked for while a copy is outstanding: only
    /// when the torrent has few blocks more than the window.
    duplicates_possible: bool,
    /// Requests are held back (the harness's warm-up: every peer
    /// handshakes before any asks for data).
    held: bool,
}

impl Leecher {
    /// A leecher of the torrent `shape`, its handshake queued at `now`.
    pub fn new(
        config: LeecherConfig,
        shape: TorrentShape,
        now: Duration,
    ) -> Result<Leecher, LeecherError> {
        if !(1..=REQUESTS_LIMIT).contains(&config.requests_max) {
            return Err(LeecherError::RequestsMax {
                found: config.requests_max,
                max: REQUESTS_LIMIT,
            });
        }
        if !(1..=BLOCK_BYTES_DEFAULT).contains(&config.block_bytes) {
            return Err(LeecherError::BlockBytes {
                found: config.block_bytes,
                max: BLOCK_BYTES_DEFAULT,
            });
        }
        if !(1..=CHECK_EVERY_MAX).contains(&config.check_every) {
            return Err(LeecherError::CheckEvery {
                found: config.check_every,
                max: CHECK_EVERY_MAX,
            });
        }
        let order = PieceOrder::new(shape.pieces(), config.order_seed)?;
        let handshake = Handshake {
            info_hash: shape.info_hash(),
            peer_id: config.peer_id,
            reserved: reserved_bits(false, true, false),
        };
        let mut l = Leecher {
            decoder: MessageDecoder::new(Limits::for_pieces(shape.pieces())),
            partial: Vec::new(),
            out: Vec::new(),
            order,
            cursor: None,
            requested_this_round: false,
            order_done: false,
            retry: VecDeque::new(),
            outstanding: VecDeque::new(),
            outstanding_bytes: 0,
            peer_choking: true,
            fast: false,
            peer_pieces: PeerPieces::Unknown,
            stats: LeecherStats::default(),
            latency: Vec::new(),
            latency_dropped: 0,
            interested_at: None,
            done_at: None,
            last_output_at: now,
            // The order walks every block before it repeats one, and retried
            // blocks were outstanding: a copy can only be outstanding when
            // the torrent has no more blocks than twice the window.
            // (Whole pieces but the last: a lower bound of the blocks.)
            duplicates_possible: u64::from(shape.pieces().saturating_sub(1)) * shape.piece_length()
                / u64::from(config.block_bytes)
                <= 2 * u64::from(config.requests_max) + 2,
            phase: Phase::Handshake,
            held: false,
            config,
            shape,
        };
        l.out.extend_from_slice(&handshake.encode());
        Ok(l)
    }

    /// Appends the bytes to send to `out` and forgets them.
    pub fn take_output(&mut self, out: &mut Vec<u8>) {
        self.stats.wire_bytes_sent += self.out.len() as u64;
        out.extend_from_slice(&self.out);
        self.out.clear();
    }

    /// Bytes waiting in [`take_output`](Self::take_output).
    pub fn output_len(&self) -> usize {
        self.out.len()
    }

    pub fn stats(&self) -> &LeecherStats {
        &self.stats
    }

    /// Moves the request-to-block latencies measured since the last call
    /// (good, bad and unchecked blocks alike) into `into`.
    pub fn drain_latency(&mut self, into: &mut Histogram) {
        for d in self.latency.drain(..) {
            into.record(d);
        }
    }

    /// Latency samples lost because nobody drained them in time.
    pub fn latency_dropped(&self) -> u64 {
        self.latency_dropped
    }

    /// Holds requests back (`true`) or lets them go (`false`). While held
    /// the leecher still handshakes and says it is interested, and answers
    /// the peer, but asks for no block. Letting go asks at once (when
    /// unchoked) and starts [`active`](Self::active) time from `now`, so a
    /// warm-up is not counted in the per-peer rate.
    pub fn hold_requests(&mut self, held: bool, now: Duration) {
        if self.held == held {
            return;
        }
        self.held = held;
        if !held {
            if let Some(t) = self.interested_at.as_mut() {
                *t = (*t).max(now);
            }
            let queued_before = self.out.len();
            self.fill_requests(now);
            if self.out.len() > queued_before {
                self.last_output_at = now;
            }
        }
    }

    /// Whether the peer's handshake has arrived (and matched).
    pub fn handshake_done(&self) -> bool {
        self.phase != Phase::Handshake
    }

    /// Whether every piece arrived (or the byte budget was reached).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Whether the peer chokes us.
    pub fn is_choked(&self) -> bool {
        self.peer_choking
    }

    /// Requests outstanding now.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// How long the leecher has been interested, up to `now` or until it
    /// was done.
    pub fn active(&self, now: Duration) -> Duration {
        match self.interested_at {
            None => Duration::ZERO,
            Some(t) => self.done_at.unwrap_or(now).saturating_sub(t),
        }
    }

    /// Hands received bytes to the leecher; `check` judges every block. An
    /// error means the peer broke the protocol: close the connection.
    pub fn receive(
        &mut self,
        now: Duration,
        bytes: &[u8],
        check: &impl BlockCheck,
    ) -> Result<(), LeecherError> {
        let queued_before = self.out.len();
        let r = self.receive_inner(now, bytes, check);
        if self.out.len() > queued_before {
            self.last_output_at = now;
        }
        r
    }

    /// Sends a keep-alive when nothing was sent for [`KEEPALIVE_INTERVAL`];
    /// call it now and then (every few seconds is plenty).
    pub fn on_timer(&mut self, now: Duration) {
        if self.phase != Phase::Messages || !self.out.is_empty() {
            return;
        }
        if now.saturating_sub(self.last_output_at) >= KEEPALIVE_INTERVAL {
            encode(&Message::KeepAlive, &mut self.out);
            self.last_output_at = now;
        }
    }

    fn receive_inner(
        &mut self,
        now: Duration,
        bytes: &[u8],
        check: &impl BlockCheck,
    ) -> Result<(), LeecherError> {
        self.stats.wire_bytes_received += bytes.len() as u64;
        let mut rest = bytes;
        if self.phase == Phase::Handshake {
            let take = HANDSHAKE_BYTES
                .saturating_sub(self.partial.len())
                .min(rest.len());
            let (head, tail) = rest.split_at(take);
            self.partial.extend_from_slice(head);
            rest = tail;
            let Some(h) = Handshake::decode(&self.partial)? else {
                return Ok(());
            };
            self.partial.clear();
            if h.info_hash != self.shape.info_hash() {
                return Err(LeecherError::InfoHash {
                    expected: self.shape.info_hash(),
                    found: h.info_hash,
                });
            }
            self.fast = h.supports_fast();
            self.phase = Phase::Messages;
            if self.fast {
                encode(&Message::HaveNone, &mut self.out);
            }
            encode(&Message::Interested, &mut self.out);
            self.interested_at = Some(now);
        }
        // Bounded: every turn consumes bytes from `rest` or a whole message.
        loop {
            if self.phase == Phase::Done {
                return Ok(());
            }
            if self.partial.is_empty() {
                match self.decoder.decode(rest)? {
                    Some((msg, n)) => {
                        self.on_message(now, msg, check)?;
                        rest = rest.get(n..).unwrap_or(&[]);
                    }
                    None => {
                        self.partial.extend_from_slice(rest);
                        break;
                    }
                }
            } else {
                let partial = std::mem::take(&mut self.partial);
                let decoded = self.decoder.decode(&partial)?;
                match decoded {
                    Some((msg, _)) => {
                        self.on_message(now, msg, check)?;
                        self.partial = partial;
                        self.partial.clear();
                    }
                    None => {
                        self.partial = partial;
                        let need = self
                            .decoder
                            .bytes_wanted()
                            .saturating_sub(self.partial.len());
                        if need == 0 || rest.is_empty() {
                            break;
                        }
                        let take = need.min(rest.len());
                        let (head, tail) = rest.split_at(take);
                        self.partial.extend_from_slice(head);
                        rest = tail;
                    }
                }
            }
        }
        self.fill_requests(now);
        Ok(())
    }

    fn on_message(
        &mut self,
        now: Duration,
        msg: Message<'_>,
        check: &impl BlockCheck,
    ) -> Result<(), LeecherError> {
        let pieces = self.shape.pieces();
        match msg {
            Message::Choke => {
                if !self.peer_choking {
                    self.peer_choking = true;
                    self.stats.chokes += 1;
                }
                if !self.fast {
                    // BEP 3: a choke drops every request; ask again later.
                    while let Some(p) = self.outstanding.pop_back() {
                        self.retry.push_front(p.block);
                    }
                    self.outstanding_bytes = 0;
                }
            }
            Message::Unchoke => {
                if self.peer_choking {
                    self.peer_choking = false;
                    self.stats.unchokes += 1;
                }
            }
            Message::Have { piece } => {
                if piece >= pieces {
                    return Err(LeecherError::PieceIndex { piece, pieces });
                }
                match &mut self.peer_pieces {
                    PeerPieces::All => {}
                    PeerPieces::Some(bits) => {
                        if let Some(b) = bits.get_mut((piece / 8) as usize) {
                            *b |= 0x80 >> (piece % 8);
                        }
                    }
                    PeerPieces::Unknown => {
                        let mut bits = vec![0u8; pieces.div_ceil(8) as usize];
                        if let Some(b) = bits.get_mut((piece / 8) as usize) {
                            *b |= 0x80 >> (piece % 8);
                        }
                        self.peer_pieces = PeerPieces::Some(bits);
                    }
                }
            }
            // The decoder checked the length and the spare bits.
            Message::Bitfield(bits) => self.peer_pieces = PeerPieces::Some(bits.to_vec()),
            Message::HaveAll => self.peer_pieces = PeerPieces::All,
            Message::HaveNone => {
                self.peer_pieces = PeerPieces::Some(vec![0u8; pieces.div_ceil(8) as usize])
            }
            Message::RejectRequest {
                piece,
                offset,
                length,
            } => {
                let b = Block {
                    piece,
                    offset,
                    length,
                };
                if let Some(p) = self.take_outstanding(b) {
                    self.stats.rejects += 1;
                    self.retry.push_back(p.block);
                }
            }
            Message::Piece {
                piece,
                offset,
                block,
            } => {
                let b = Block {
                    piece,
                    offset,
                    length: block.len() as u32,
                };
                match self.take_outstanding(b) {
                    None => self.stats.blocks_unrequested += 1,
                    Some(p) => {
                        if self.latency.len() < LATENCY_PENDING_MAX {
                            self.latency.push(now.saturating_sub(p.sent_at));
                        } else {
                            self.latency_dropped += 1;
                        }
                        let arrived = self.stats.blocks_good
                            + self.stats.blocks_bad
                            + self.stats.blocks_unchecked;
                        if arrived % u64::from(self.config.check_every) != 0 {
                            self.stats.blocks_unchecked += 1;
                            self.stats.bytes_unchecked += block.len() as u64;
                        } else if check.check(piece, offset, block) {
                            self.stats.blocks_good += 1;
                            self.stats.bytes_good += block.len() as u64;
                        } else {
                            self.stats.blocks_bad += 1;
                            self.stats.bytes_bad += block.len() as u64;
                        }
                    }
                }
                self.check_done(now);
            }
            // Nothing to give, nothing to do with hints or extensions.
            Message::KeepAlive
            | Message::Interested
            | Message::NotInterested
            | Message::Request { .. }
            | Message::Cancel { .. }
            | Message::Port(_)
            | Message::SuggestPiece(_)
            | Message::AllowedFast(_)
            | Message::Extended { .. }
            | Message::Unknown { .. } => {}
        }
        Ok(())
    }

    fn take_outstanding(&mut self, b: Block) -> Option<Pending> {
        let i = self.outstanding.iter().position(|p| p.block == b)?;
        let p = self.outstanding.remove(i)?;
        self.outstanding_bytes = self
            .outstanding_bytes
            .saturating_sub(u64::from(p.block.length));
        Some(p)
    }

    fn budget_left(&self) -> bool {
        match self.config.bytes_budget {
            None => true,
            Some(budget) => self.bytes_delivered() + self.outstanding_bytes < budget,
        }
    }

    /// Good bytes plus those delivered unchecked.
    pub fn bytes_delivered(&self) -> u64 {
        self.stats.bytes_good + self.stats.bytes_unchecked
    }

    fn check_done(&mut self, now: Duration) {
        let done = match self.config.bytes_budget {
            Some(budget) => self.bytes_delivered() >= budget,
            None => {
                self.outstanding.is_empty()
                    && self.retry.is_empty()
                    && self.cursor.is_none()
                    && self.order_done
            }
        };
        if done {
            self.phase = Phase::Done;
            self.done_at = Some(now);
        }
    }

    /// The next block to ask for, if any.
    fn next_block(&mut self) -> Option<Block> {
        if let Some(b) = self.retry.pop_front() {
            return Some(b);
        }
        // Bounded: at most one round's pieces and one restart.
        let turns = u64::from(self.shape.pieces()) * 2 + 2;
        for _ in 0..turns {
            if let Some(c) = &mut self.cursor {
                if c.offset < c.size {
                    let length = (c.size - c.offset).min(self.config.block_bytes);
                    let b = Block {
                        piece: c.piece,
                        offset: c.offset,
                        length,
                    };
                    c.offset += length;
                    self.requested_this_round = true;
                    return Some(b);
                }
                self.cursor = None;
            }
            match self.order.next_piece() {
                Some(piece) => {
                    if !self.peer_pieces.has(piece) {
                        self.stats.pieces_skipped += 1;
                        continue;
                    }
                    let size = self
                        .shape
                        .piece_size(piece)
                        .and_then(|s| u32::try_from(s).ok())
                        .unwrap_or(0);
                    self.cursor = Some(Cursor {
                        piece,
                        offset: 0,
                        size,
                    });
                }
                None => {
                    if self.config.bytes_budget.is_none() || !self.requested_this_round {
                        self.order_done = true;
                        return None;
                    }
                    self.order.restart();
                    self.requested_this_round = false;
                }
            }
        }
        None
    }

    fn fill_requests(&mut self, now: Duration) {
        if self.phase != Phase::Messages || self.peer_choking || self.held {
            return;
        }
        if matches!(self.peer_pieces, PeerPieces::Unknown) {
            return;
        }
        let window = self.config.requests_max as usize;
        while self.outstanding.len() < window && self.budget_left() {
            let Some(b) = self.next_block() else { break };
            if self.duplicates_possible && self.outstanding.iter().any(|p| p.block == b) {
                // A torrent smaller than the window, on a later round: a
                // peer ignores a request it already holds, so this one
                // waits until the first copy arrives.
                self.retry.push_front(b);
                break;
            }
            encode(
                &Message::Request {
                    piece: b.piece,
                    offset: b.offset,
                    length: b.length,
                },
                &mut self.out,
            );
            self.outstanding.push_back(Pending {
                block: b,
                sent_at: now,
            });
            self.outstanding_bytes += u64::from(b.length);
            self.stats.requests_sent += 1;
        }
        self.check_done(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::payload::Payload;
    use ringseed::peer::{Action, Direction, PeerConfig, PeerConnection, PieceBits};

    const IH: InfoHash = InfoHash([9; 20]);
    const T0: Duration = Duration::from_secs(100);
    /// Turns of a simulation before it is declared stuck.
    const TURNS_MAX: usize = 100_000;

    fn payload() -> Payload {
        // 5 pieces of 32 KiB, the last one shorter.
        Payload::new(42, 4 * 32768 + 5000, 32768).unwrap()
    }

    fn shape(p: &Payload) -> TorrentShape {
        TorrentShape::new(IH, p.piece_length(), p.total_length()).unwrap()
    }

    /// The real seeding state machine with a payload for a disk.
    struct Real {
        c: PeerConnection,
        p: Payload,
        inbox: Vec<u8>,
        /// Unchoke when the peer says it is interested.
        unchoke: bool,
    }

    impl Real {
        fn new(p: Payload, cfg: PeerConfig) -> Real {
            let n = p.num_pieces();
            let c = PeerConnection::new(
                cfg,
                shape(&p),
                Direction::Incoming,
                [3; 20],
                PieceBits::all(n),
                T0,
            )
            .unwrap();
            Real {
                c,
                p,
                inbox: Vec::new(),
                unchoke: true,
            }
        }

        fn feed(&mut self, now: Duration, bytes: &[u8]) {
            self.inbox.extend_from_slice(bytes);
            let n = self.c.receive(now, &self.inbox).unwrap();
            self.inbox.drain(..n);
        }

        fn pump(&mut self, now: Duration, out: &mut Vec<u8>) {
            while let Some(a) = self.c.poll_action() {
                match a {
                    Action::Send(m) => self.c.write_message(&m, out),
                    Action::ReadBlock {
                        piece,
                        offset,
                        length,
                    } => {
                        let mut buf = vec![0u8; length as usize];
                        let at = u64::from(piece) * self.p.piece_length() + u64::from(offset);
                        self.p.fill(at, &mut buf);
                        if let Some(h) = self.c.on_block_read(now, piece, offset, length) {
                            out.extend_from_slice(&h);
                            out.extend_from_slice(&buf);
                            self.c.on_block_sent();
                        }
                    }
                    Action::PeerInterested(true) if self.unchoke => self.c.set_choke(now, false),
                    _ => {}
                }
            }
        }
    }

    /// Runs leecher and seeder until the leecher is done or nothing moves;
    /// `chunk` cuts every transfer to the leecher into pieces of that size.
    fn run(l: &mut Leecher, s: &mut Real, chunk: usize, check: &impl BlockCheck) -> usize {
        let mut now = T0;
        for turn in 0..TURNS_MAX {
            now += Duration::from_micros(100);
            let mut to_seed = Vec::new();
            l.take_output(&mut to_seed);
            if !to_seed.is_empty() {
                s.feed(now, &to_seed);
            }
            let mut to_leech = Vec::new();
            s.pump(now, &mut to_leech);
            for part in to_leech.chunks(chunk.max(1)) {
                l.receive(now, part, check).unwrap();
            }
            if l.is_done() || (to_seed.is_empty() && to_leech.is_empty() && turn > 0) {
                return turn;
            }
        }
        panic!("stuck after {TURNS_MAX} turns");
    }

    fn leecher(p: &Payload, cfg: LeecherConfig) -> Leecher {
        Leecher::new(cfg, shape(p), T0).unwrap()
    }

    #[test]
    fn downloads_everything_from_a_real_seeder_and_checks_every_block() {
        let p = payload();
        for chunk in [1, 7, 1000, 1 << 20] {
            let mut l = leecher(&p, LeecherConfig::default());
            let mut s = Real::new(p, PeerConfig::default());
            let check = |piece, offset, data: &[u8]| p.check_block(piece, offset, data);
            run(&mut l, &mut s, chunk, &check);
            assert!(l.is_done(), "chunk {chunk}: {:?}", l.stats());
            let st = *l.stats();
            assert_eq!(st.bytes_good, p.total_length(), "chunk {chunk}");
            assert_eq!(st.blocks_good, 9, "2 blocks x 4 pieces + 1");
            assert_eq!((st.blocks_bad, st.blocks_unrequested), (0, 0));
            let mut h = Histogram::new();
            l.drain_latency(&mut h);
            assert_eq!(h.count(), 9);
            l.drain_latency(&mut h);
            assert_eq!(h.count(), 9, "drained once");
            assert_eq!(l.latency_dropped(), 0);
            assert_eq!(st.unchokes, 1);
            assert!(l.active(T0 + Duration::from_secs(1000)) > Duration::ZERO);
        }
    }

    #[test]
    fn held_requests_wait_for_the_release_and_active_time_starts_there() {
        let p = payload();
        let mut l = leecher(&p, LeecherConfig::default());
        l.hold_requests(true, T0);
        let mut s = Real::new(p, PeerConfig::default());
        let check = |piece, offset, data: &[u8]| p.check_block(piece, offset, data);
        run(&mut l, &mut s, 1 << 20, &check);
        assert!(l.handshake_done());
        assert!(!l.is_choked(), "unchoked while held");
        assert_eq!(l.stats().requests_sent, 0, "no request while held");
        assert_eq!(l.outstanding(), 0);
        let release = T0 + Duration::from_secs(50);
        l.hold_requests(false, release);
        assert!(l.outstanding() > 0, "the release asks at once");
        assert!(l.output_len() > 0);
        assert_eq!(
            l.active(release + Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        // And it then downloads everything.
        let mut now = release;
        for _ in 0..TURNS_MAX {
            if l.is_done() {
                break;
            }
            now += Duration::from_micros(100);
            let mut to_seed = Vec::new();
            l.take_output(&mut to_seed);
            s.feed(now, &to_seed);
            let mut to_leech = Vec::new();
            s.pump(now, &mut to_leech);
            l.receive(now, &to_leech, &check).unwrap();
        }
        assert!(l.is_done(), "{:?}", l.stats());
        assert_eq!(l.stats().bytes_good, p.total_length());
    }

    #[test]
    fn a_check_that_fails_counts_bad_blocks_and_does_not_retry() {
        let p = payload();
        let mut l = leecher(&p, LeecherConfig::default());
        let mut s = Real::new(p, PeerConfig::default());
        // Piece 2 is "corrupt".
        let check = |piece, offset, data: &[u8]| piece != 2 && p.check_block(piece, offset, data);
        run(&mut l, &mut s, 4096, &check);
        assert!(l.is_done());
        assert_eq!(l.stats().blocks_bad, 2);
        assert_eq!(l.stats().bytes_bad, 32768);
        assert_eq!(l.stats().bytes_good, p.total_length() - 32768);
    }

    /// A leecher with a window of `window` against a synthetic seed, after
    /// the handshake: its first requests are with the seed.
    fn started_with_seed(p: &Payload, window: u32) -> (Leecher, crate::loadgen::seed::Seed) {
        use crate::loadgen::seed::{Seed, SeedConfig};
        let cfg = LeecherConfig {
            requests_max: window,
            ..LeecherConfig::default()
        };
        let mut l = leecher(p, cfg);
        let mut s = Seed::new(SeedConfig::default(), shape(p)).unwrap();
        let ok = |_: u32, _: u32, _: &[u8]| true;
        let mut ctl = vec![0u8; 1024];
        for _ in 0..3 {
            let mut a = Vec::new();
            l.take_output(&mut a);
            s.receive(&a).unwrap();
            let n = s.produce_control(&mut ctl);
            l.receive(T0, &ctl[..n], &ok).unwrap();
        }
        let mut a = Vec::new();
        l.take_output(&mut a);
        s.receive(&a).unwrap();
        (l, s)
    }

    /// The seed's next block as a piece message.
    fn next_piece_message(p: &Payload, s: &mut crate::loadgen::seed::Seed) -> Vec<u8> {
        let mut blocks = Vec::new();
        assert_eq!(s.take_blocks(1, &mut blocks), 1);
        let b = blocks[0];
        let piece = p.piece_bytes(b.piece).unwrap();
        let mut m = b.header().to_vec();
        m.extend_from_slice(&piece[b.offset as usize..(b.offset + b.length) as usize]);
        m
    }

    #[test]
    fn every_block_in_frees_a_slot_that_is_asked_again_at_once() {
        let p = Payload::new(5, 64 << 20, 1 << 20).unwrap();
        let (mut l, mut s) = started_with_seed(&p, 8);
        let ok = |_: u32, _: u32, _: &[u8]| true;
        assert_eq!(l.outstanding(), 8);
        assert_eq!(s.requests_queued(), 8);
        for _ in 0..3 {
            let m = next_piece_message(&p, &mut s);
            l.receive(T0, &m, &ok).unwrap();
            // One request of 17 bytes per block received.
            assert_eq!((l.outstanding(), l.output_len()), (8, 17));
            let mut a = Vec::new();
            l.take_output(&mut a);
            s.receive(&a).unwrap();
        }
        assert_eq!(l.stats().blocks_good + l.stats().blocks_unchecked, 3);
    }

    #[test]
    fn the_duplicate_guard_is_on_only_for_torrents_near_the_window() {
        let big = Payload::new(5, 64 << 20, 1 << 20).unwrap();
        assert!(!leecher(&big, LeecherConfig::default()).duplicates_possible);
        let small = payload();
        assert!(leecher(&small, LeecherConfig::default()).duplicates_possible);
    }

    #[test]
    fn keeps_at_most_requests_max_outstanding() {
        let p = payload();
        let cfg = LeecherConfig {
            requests_max: 2,
            ..LeecherConfig::default()
        };
        let mut l = leecher(&p, cfg);
        let mut s = Real::new(p, PeerConfig::default());
        let check = |_: u32, _: u32, _: &[u8]| true;
        let mut now = T0;
        for _ in 0..TURNS_MAX {
            now += Duration::from_millis(1);
            let mut a = Vec::new();
            l.take_output(&mut a);
            s.feed(now, &a);
            let mut b = Vec::new();
            s.pump(now, &mut b);
            l.receive(now, &b, &check).unwrap();
            assert!(l.outstanding() <= 2);
            if l.is_done() {
                break;
            }
        }
        assert!(l.is_done());
        assert_eq!(l.stats().requests_sent, 9);
    }

    #[test]
    fn waits_while_choked_and_resumes_after_unchoke() {
        let p = payload();
        let mut l = leecher(&p, LeecherConfig::default());
        let mut s = Real::new(p, PeerConfig::default());
        s.unchoke = false;
        let check = |piece, offset, data: &[u8]| p.check_block(piece, offset, data);
        run(&mut l, &mut s, 1 << 20, &check);
        assert!(!l.is_done());
        assert!(l.is_choked());
        assert_eq!(l.stats().requests_sent, 0);
        s.c.set_choke(T0, false);
        s.unchoke = true;
        run(&mut l, &mut s, 1 << 20, &check);
        assert!(l.is_done());
        assert_eq!(l.stats().bytes_good, p.total_length());
    }

    /// Feeds hand-written peer messages (after the peer's handshake).
    fn scripted(fast: bool, cfg: LeecherConfig) -> (Leecher, Payload) {
        let p = payload();
        let mut l = leecher(&p, cfg);
        let h = Handshake {
            info_hash: IH,
            peer_id: [5; 20],
            reserved: reserved_bits(false, fast, false),
        };
        let ok = |_: u32, _: u32, _: &[u8]| true;
        l.receive(T0, &h.encode(), &ok).unwrap();
        (l, p)
    }

    fn msg(m: Message<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        encode(&m, &mut v);
        v
    }

    fn sent(l: &mut Leecher) -> Vec<Message<'static>> {
        let mut out = Vec::new();
        l.take_output(&mut out);
        let mut d = MessageDecoder::default();
        let mut at = 0;
        let mut v = Vec::new();
        if out.first() == Some(&19) {
            at = HANDSHAKE_BYTES;
        }
        while let Ok(Some((m, n))) = d.decode(out.get(at..).unwrap_or(&[])) {
            // Only fixed-size messages are sent; rebuild them owned.
            v.push(match m {
                Message::Request {
                    piece,
                    offset,
                    length,
                } => Message::Request {
                    piece,
                    offset,
                    length,
                },
                Message::Interested => Message::Interested,
                Message::HaveNone => Message::HaveNone,
                other => panic!("unexpected {other:?}"),
            });
            at += n;
        }
        v
    }

    #[test]
    fn handshake_then_have_none_and_interested_then_requests_after_unchoke() {
        let (mut l, _) = scripted(true, LeecherConfig::default());
        assert_eq!(sent(&mut l), vec![Message::HaveNone, Message::Interested]);
        let ok = |_: u32, _: u32, _: &[u8]| true;
        l.receive(T0, &msg(Message::Unchoke), &ok).unwrap();
        assert!(sent(&mut l).is_empty(), "nothing before the peer's pieces");
        l.receive(T0, &msg(Message::HaveAll), &ok).unwrap();
        let reqs = sent(&mut l);
        assert_eq!(reqs.len(), 9);
        // Without the fast extension, no HaveNone.
        let (mut l, _) = scripted(false, LeecherConfig::default());
        assert_eq!(sent(&mut l), vec![Message::Interested]);
    }

    #[test]
    fn wrong_info_hash_and_bad_messages_are_errors() {
        let p = payload();
        let ok = |_: u32, _: u32, _: &[u8]| true;
        let mut l = leecher(&p, LeecherConfig::default());
        let h = Handshake {
            info_hash: InfoHash([1; 20]),
            peer_id: [5; 20],
            reserved: [0; 8],
        };
        assert!(matches!(
            l.receive(T0, &h.encode(), &ok),
            Err(LeecherError::InfoHash { .. })
        ));
        let mut l = leecher(&p, LeecherConfig::default());
        assert!(matches!(
            l.receive(T0, b"\x13GET /", &ok),
            Err(LeecherError::Handshake(_))
        ));
        let (mut l, _) = scripted(true, LeecherConfig::default());
        assert_eq!(
            l.receive(T0, &msg(Message::Have { piece: 5 }), &ok),
            Err(LeecherError::PieceIndex {
                piece: 5,
                pieces: 5
            })
        );
        let (mut l, _) = scripted(true, LeecherConfig::default());
        assert!(matches!(
            l.receive(T0, &[0xff, 0, 0, 0, 1], &ok),
            Err(LeecherError::Wire(_))
        ));
    }

    #[test]
    fn config_limits_are_checked() {
        let p = payload();
        for (requests_max, block_bytes, check_every) in [
            (0, 16384, 1),
            (REQUESTS_LIMIT + 1, 16384, 1),
            (1, 0, 1),
            (1, 16385, 1),
            (1, 16384, 0),
            (1, 16384, CHECK_EVERY_MAX + 1),
        ] {
            let cfg = LeecherConfig {
                requests_max,
                block_bytes,
                check_every,
                ..LeecherConfig::default()
            };
            assert!(Leecher::new(cfg, shape(&p), T0).is_err());
        }
    }

    #[test]
    fn choke_without_fast_drops_requests_and_asks_again() {
        let (mut l, _) = scripted(false, LeecherConfig::default());
        let ok = |_: u32, _: u32, _: &[u8]| true;
        sent(&mut l);
        l.receive(T0, &msg(Message::HaveAll), &ok).unwrap();
        l.receive(T0, &msg(Message::Unchoke), &ok).unwrap();
        let first = sent(&mut l);
        assert_eq!(first.len(), 9);
        l.receive(T0, &msg(Message::Choke), &ok).unwrap();
        assert_eq!(l.outstanding(), 0);
        assert_eq!(l.stats().chokes, 1);
        l.receive(T0, &msg(Message::Unchoke), &ok).unwrap();
        assert_eq!(sent(&mut l), first, "the same requests again, in order");
    }

    #[test]
    fn choke_with_fast_keeps_requests_until_rejected() {
        let (mut l, _) = scripted(true, LeecherConfig::default());
        let ok = |_: u32, _: u32, _: &[u8]| true;
        sent(&mut l);
        l.receive(T0, &msg(Message::HaveAll), &ok).unwrap();
        l.receive(T0, &msg(Message::Unchoke), &ok).unwrap();
        let first = sent(&mut l);
        l.receive(T0, &msg(Message::Choke), &ok).unwrap();
        assert_eq!(l.outstanding(), 9);
        let Message::Request {
            piece,
            offset,
            length,
        } = first[0]
        else {
            panic!()
        };
        let rej = msg(Message::RejectRequest {
            piece,
            offset,
            length,
        });
        l.receive(T0, &rej, &ok).unwrap();
        assert_eq!((l.outstanding(), l.stats().rejects), (8, 1));
        // A reject of something never asked for changes nothing.
        l.receive(T0, &rej, &ok).unwrap();
        assert_eq!(l.stats().rejects, 1);
        l.receive(T0, &msg(Message::Unchoke), &ok).unwrap();
        assert_eq!(sent(&mut l), vec![first[0]]);
    }

    #[test]
    fn unrequested_blocks_are_not_credited_and_missing_pieces_are_skipped() {
        let (mut l, _) = scripted(true, LeecherConfig::default());
        let ok = |_: u32, _: u32, _: &[u8]| true;
        sent(&mut l);
        // The peer has only piece 3 (bitfield 0b0001_0000).
        l.receive(T0, &msg(Message::Bitfield(&[0x10])), &ok)
            .unwrap();
        l.receive(T0, &msg(Message::Unchoke), &ok).unwrap();
        let reqs = sent(&mut l);
        assert_eq!(reqs.len(), 2);
        assert!(reqs
            .iter()
            .all(|m| matches!(m, Message::Request { piece: 3, .. })));
        assert_eq!(l.stats().pieces_skipped, 4);
        let block = [0u8; 100];
        let m = msg(Message::Piece {
            piece: 1,
            offset: 0,
            block: &block,
        });
        l.receive(T0, &m, &ok).unwrap();
        assert_eq!((l.stats().blocks_unrequested, l.stats().bytes_good), (1, 0));
        // Have adds to what may be asked (already skipped this round).
        l.receive(T0, &msg(Message::Have { piece: 1 }), &ok)
            .unwrap();
        assert!(sent(&mut l).is_empty());
    }

    #[test]
    fn check_every_n_checks_one_block_in_n() {
        let p = payload();
        let cfg = LeecherConfig {
            check_every: 4,
            ..LeecherConfig::default()
        };
        let mut l = leecher(&p, cfg);
        let mut s = Real::new(p, PeerConfig::default());
        let checked = std::cell::Cell::new(0u32);
        let check = |piece, offset, data: &[u8]| {
            checked.set(checked.get() + 1);
            p.check_block(piece, offset, data)
        };
        run(&mut l, &mut s, 1 << 20, &check);
        assert!(l.is_done());
        // 9 blocks: the 1st, 5th and 9th are checked.
        assert_eq!(checked.get(), 3);
        assert_eq!((l.stats().blocks_good, l.stats().blocks_unchecked), (3, 6));
        assert_eq!(l.bytes_delivered(), p.total_length());
    }

    #[test]
    fn keep_alive_after_a_quiet_minute_only() {
        let (mut l, _) = scripted(true, LeecherConfig::default());
        let ok = |_: u32, _: u32, _: &[u8]| true;
        l.receive(T0, &msg(Message::HaveAll), &ok).unwrap();
        sent(&mut l);
        l.on_timer(T0 + KEEPALIVE_INTERVAL - Duration::from_millis(1));
        assert_eq!(l.output_len(), 0);
        l.on_timer(T0 + KEEPALIVE_INTERVAL);
        let mut out = Vec::new();
        l.take_output(&mut out);
        assert_eq!(out, [0, 0, 0, 0]);
        l.on_timer(T0 + KEEPALIVE_INTERVAL + Duration::from_secs(1));
        assert_eq!(l.output_len(), 0, "not again right away");
        // Before the handshake: nothing.
        let p = payload();
        let mut fresh = leecher(&p, LeecherConfig::default());
        let mut hs = Vec::new();
        fresh.take_output(&mut hs);
        fresh.on_timer(T0 + Duration::from_secs(3600));
        assert_eq!(fresh.output_len(), 0);
    }

    #[test]
    fn a_byte_budget_wraps_the_order_and_stops_at_the_budget() {
        let p = payload();
        let total = p.total_length();
        let cfg = LeecherConfig {
            bytes_budget: Some(3 * total),
            requests_max: 8,
            ..LeecherConfig::default()
        };
        let mut l = leecher(&p, cfg);
        let mut s = Real::new(p, PeerConfig::default());
        let check = |piece, offset, data: &[u8]| p.check_block(piece, offset, data);
        run(&mut l, &mut s, 1 << 20, &check);
        assert!(l.is_done(), "{:?} {:?}", l.stats(), s.c.counters());
        assert!(l.stats().bytes_good >= 3 * total);
        assert!(l.stats().bytes_good < 3 * total + 8 * 16384);
        assert_eq!(l.stats().blocks_bad, 0);
    }

    #[test]
    fn a_peer_with_nothing_ends_a_budgeted_leecher_without_spinning() {
        let cfg = LeecherConfig {
            bytes_budget: Some(1 << 30),
            ..LeecherConfig::default()
        };
        let (mut l, _) = scripted(true, cfg);
        let ok = |_: u32, _: u32, _: &[u8]| true;
        l.receive(T0, &msg(Message::HaveNone), &ok).unwrap();
        l.receive(T0, &msg(Message::Unchoke), &ok).unwrap();
        assert_eq!(l.stats().requests_sent, 0);
        assert!(!l.is_done());
    }
}
