//! `Seed`: a trivial synthetic seed, sans-IO. It answers the handshake,
//! says it has everything (HaveAll with the fast extension, a full bitfield
//! without), unchokes at once and answers every request with a piece
//! message whose block the caller's [`BlockFill`] generates. No choker, no
//! disk, no rate limits: it is the cheapest possible uploader, for the
//! load generator's `serve` mode (a seeder to saturate) and its
//! synthetic-seeds mode (seeds for a leecher under test).
//!
//! Output is written straight into the caller's send buffer
//! ([`Seed::produce`]): control bytes first, then whole piece messages while
//! they fit, so the block bytes are generated where they are sent from.
//! A caller that holds the blocks already (a [`PayloadCache`]) takes the
//! control bytes alone ([`Seed::produce_control`]) and then the blocks owed
//! as a list ([`Seed::take_blocks`]), to send each from where it lies.
//!
//! [`PayloadCache`]: crate::loadgen::payload_cache::PayloadCache
//!
//! Boundary: no socket, no clock. Requests held are bounded
//! ([`SeedConfig::requests_queued_max`]; over it a request is rejected with
//! the fast extension, dropped without), and so is the reassembly buffer
//! (one message).

use std::collections::VecDeque;

use ringseed::peer::TorrentShape;
use ringseed::wire::{
    encode, piece_header, reserved_bits, Handshake, HandshakeError, Limits, Message,
    MessageDecoder, WireError, HANDSHAKE_BYTES, PIECE_HEADER_BYTES,
};
use ringseed::InfoHash;

/// Default most requests held at once.
pub const REQUESTS_QUEUED_MAX_DEFAULT: u32 = 512;
/// Largest `requests_queued_max` accepted.
pub const REQUESTS_QUEUED_LIMIT: u32 = 1 << 16;
/// Largest block served, in bytes.
pub const BLOCK_BYTES_MAX: u32 = 16 * 1024;
/// Smallest output buffer that always fits one whole piece message.
pub const OUTPUT_BYTES_MIN: usize = PIECE_HEADER_BYTES + BLOCK_BYTES_MAX as usize;

/// Generates the bytes of a block.
pub trait BlockFill {
    /// Writes the block at `offset` of piece `piece` into `out` (the block's
    /// length is `out.len()`).
    fn fill(&self, piece: u32, offset: u32, out: &mut [u8]);
}

impl<F: Fn(u32, u32, &mut [u8])> BlockFill for F {
    fn fill(&self, piece: u32, offset: u32, out: &mut [u8]) {
        self(piece, offset, out)
    }
}

/// The tunables of one seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedConfig {
    pub peer_id: [u8; 20],
    /// Most requests held, 1 to [`REQUESTS_QUEUED_LIMIT`].
    pub requests_queued_max: u32,
}

impl Default for SeedConfig {
    fn default() -> Self {
        SeedConfig {
            peer_id: *b"-RB0001-seed00000000",
            requests_queued_max: REQUESTS_QUEUED_MAX_DEFAULT,
        }
    }
}

/// Why a seed cannot start, or why its connection must end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    #[error("requests_queued_max {found} is out of range: expected 1 to {max}")]
    RequestsQueuedMax { found: u32, max: u32 },
    #[error("peer handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("peer asked for torrent {found}, we serve {expected}")]
    InfoHash { expected: InfoHash, found: InfoHash },
    #[error("peer message: {0}")]
    Wire(#[from] WireError),
    #[error("request for piece {piece} offset {offset} length {length} lies outside the torrent ({pieces} pieces)")]
    Request {
        piece: u32,
        offset: u32,
        length: u32,
        pieces: u32,
    },
}

/// What a seed counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeedStats {
    pub requests: u64,
    pub rejected: u64,
    pub cancelled: u64,
    pub blocks_sent: u64,
    pub block_bytes_sent: u64,
    pub wire_bytes_received: u64,
    pub wire_bytes_sent: u64,
}

impl SeedStats {
    /// Adds `other`'s counts to these (totals over connections or threads).
    pub fn add(&mut self, other: &SeedStats) {
        self.requests += other.requests;
        self.rejected += other.rejected;
        self.cancelled += other.cancelled;
        self.blocks_sent += other.blocks_sent;
        self.block_bytes_sent += other.block_bytes_sent;
        self.wire_bytes_received += other.wire_bytes_received;
        self.wire_bytes_sent += other.wire_bytes_sent;
    }
}

/// A block the seed owes its peer (see [`Seed::take_blocks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub piece: u32,
    pub offset: u32,
    pub length: u32,
}

impl Block {
    /// The header of this block's piece message.
    pub fn header(&self) -> [u8; PIECE_HEADER_BYTES] {
        piece_header(self.piece, self.offset, self.length)
    }
}

/// One synthetic seed connection.
#[derive(Debug)]
pub struct Seed {
    config: SeedConfig,
    shape: TorrentShape,
    handshake_done: bool,
    fast: bool,
    decoder: MessageDecoder,
    partial: Vec<u8>,
    /// Control bytes to send, and how many of them went out already.
    control: Vec<u8>,
    control_sent: usize,
    requests: VecDeque<Block>,
    stats: SeedStats,
}

impl Seed {
    /// A seed of torrent `shape` for one incoming connection.
    pub fn new(config: SeedConfig, shape: TorrentShape) -> Result<Seed, SeedError> {
        if !(1..=REQUESTS_QUEUED_LIMIT).contains(&config.requests_queued_max) {
            return Err(SeedError::RequestsQueuedMax {
                found: config.requests_queued_max,
                max: REQUESTS_QUEUED_LIMIT,
            });
        }
        Ok(Seed {
            decoder: MessageDecoder::new(Limits::for_pieces(shape.pieces())),
            config,
            shape,
            handshake_done: false,
            fast: false,
            partial: Vec::new(),
            control: Vec::new(),
            control_sent: 0,
            requests: VecDeque::new(),
            stats: SeedStats::default(),
        })
    }

    pub fn stats(&self) -> &SeedStats {
        &self.stats
    }

    /// Whether [`produce`](Self::produce) has something to write.
    pub fn has_output(&self) -> bool {
        self.control_sent < self.control.len() || !self.requests.is_empty()
    }

    /// Requests held now.
    pub fn requests_queued(&self) -> usize {
        self.requests.len()
    }

    /// Hands received bytes to the seed. An error means the peer broke the
    /// protocol: close the connection.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), SeedError> {
        self.stats.wire_bytes_received += bytes.len() as u64;
        let mut rest = bytes;
        if !self.handshake_done {
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
                return Err(SeedError::InfoHash {
                    expected: self.shape.info_hash(),
                    found: h.info_hash,
                });
            }
            self.handshake_done = true;
            self.fast = h.supports_fast();
            let ours = Handshake {
                info_hash: self.shape.info_hash(),
                peer_id: self.config.peer_id,
                reserved: reserved_bits(false, true, false),
            };
            self.control.extend_from_slice(&ours.encode());
            if self.fast {
                encode(&Message::HaveAll, &mut self.control);
            } else {
                let pieces = self.shape.pieces();
                let mut bits = vec![0xffu8; pieces.div_ceil(8) as usize];
                let spare = (pieces % 8) as u8;
                if let (Some(last), true) = (bits.last_mut(), spare != 0) {
                    *last = 0xff << (8 - spare);
                }
                encode(&Message::Bitfield(&bits), &mut self.control);
            }
            encode(&Message::Unchoke, &mut self.control);
        }
        // Bounded: every turn consumes bytes from `rest` or a whole message.
        loop {
            if self.partial.is_empty() {
                match self.decoder.decode(rest)? {
                    Some((msg, n)) => {
                        self.on_message(msg)?;
                        rest = rest.get(n..).unwrap_or(&[]);
                    }
                    None => {
                        self.partial.extend_from_slice(rest);
                        return Ok(());
                    }
                }
            } else {
                let partial = std::mem::take(&mut self.partial);
                let decoded = self.decoder.decode(&partial)?;
                match decoded {
                    Some((msg, _)) => {
                        self.on_message(msg)?;
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
                            return Ok(());
                        }
                        let take = need.min(rest.len());
                        let (head, tail) = rest.split_at(take);
                        self.partial.extend_from_slice(head);
                        rest = tail;
                    }
                }
            }
        }
    }

    fn on_message(&mut self, msg: Message<'_>) -> Result<(), SeedError> {
        match msg {
            Message::Request {
                piece,
                offset,
                length,
            } => {
                let fits = self
                    .shape
                    .piece_size(piece)
                    .is_some_and(|size| u64::from(offset) + u64::from(length) <= size);
                if !fits || length > BLOCK_BYTES_MAX {
                    return Err(SeedError::Request {
                        piece,
                        offset,
                        length,
                        pieces: self.shape.pieces(),
                    });
                }
                self.stats.requests += 1;
                let b = Block {
                    piece,
                    offset,
                    length,
                };
                if self.requests.len() >= self.config.requests_queued_max as usize {
                    self.stats.rejected += 1;
                    if self.fast {
                        self.compact_control();
                        encode(
                            &Message::RejectRequest {
                                piece,
                                offset,
                                length,
                            },
                            &mut self.control,
                        );
                    }
                } else {
                    self.requests.push_back(b);
                }
            }
            Message::Cancel {
                piece,
                offset,
                length,
            } => {
                let b = Block {
                    piece,
                    offset,
                    length,
                };
                if let Some(i) = self.requests.iter().position(|r| *r == b) {
                    self.requests.remove(i);
                    self.stats.cancelled += 1;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Drops the control bytes already sent, so the buffer stays small.
    fn compact_control(&mut self) {
        if self.control_sent > 0 {
            self.control
                .drain(..self.control_sent.min(self.control.len()));
            self.control_sent = 0;
        }
    }

    /// Whether control bytes (handshake, bitfield, unchoke, rejects) wait
    /// to be sent; send them before any block.
    pub fn has_control(&self) -> bool {
        self.control_sent < self.control.len()
    }

    /// Writes pending control bytes only (as many as fit) into `out`;
    /// returns the bytes written.
    pub fn produce_control(&mut self, out: &mut [u8]) -> usize {
        let pending = self.control.get(self.control_sent..).unwrap_or(&[]);
        let n = pending.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), pending.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.control_sent += n;
        if self.control_sent >= self.control.len() {
            self.control.clear();
            self.control_sent = 0;
        }
        self.stats.wire_bytes_sent += n as u64;
        n
    }

    /// Moves up to `max` blocks owed into `out`: the oldest request, then
    /// the requests after it while they are of the same piece (so one send
    /// can take them all from one cached piece). They count as sent.
    /// Returns how many were taken; none while control bytes wait.
    pub fn take_blocks(&mut self, max: usize, out: &mut Vec<Block>) -> usize {
        if self.has_control() {
            return 0;
        }
        let Some(first) = self.requests.front().map(|b| b.piece) else {
            return 0;
        };
        let mut taken = 0;
        while taken < max {
            match self.requests.front() {
                Some(b) if b.piece == first => {}
                _ => break,
            }
            let Some(b) = self.requests.pop_front() else {
                break;
            };
            self.stats.blocks_sent += 1;
            self.stats.block_bytes_sent += u64::from(b.length);
            self.stats.wire_bytes_sent += (PIECE_HEADER_BYTES as u64) + u64::from(b.length);
            out.push(b);
            taken += 1;
        }
        taken
    }

    /// Writes what is to be sent into `out`: pending control bytes (as many
    /// as fit), then whole piece messages, each block generated by `fill`
    /// in place. Returns the bytes written. A buffer of at least
    /// [`OUTPUT_BYTES_MIN`] always takes at least one piece message.
    pub fn produce(&mut self, out: &mut [u8], fill: &impl BlockFill) -> usize {
        let mut at = 0;
        let pending = self.control.get(self.control_sent..).unwrap_or(&[]);
        if !pending.is_empty() {
            let n = pending.len().min(out.len());
            if let (Some(dst), Some(src)) = (out.get_mut(..n), pending.get(..n)) {
                dst.copy_from_slice(src);
            }
            self.control_sent += n;
            at = n;
            if self.control_sent < self.control.len() {
                self.stats.wire_bytes_sent += at as u64;
                return at;
            }
            self.control.clear();
            self.control_sent = 0;
        }
        while let Some(b) = self.requests.front().copied() {
            let len = b.length as usize;
            let end = at + PIECE_HEADER_BYTES + len;
            let Some(dst) = out.get_mut(at..end) else {
                break;
            };
            let (head, block) = dst.split_at_mut(PIECE_HEADER_BYTES);
            head.copy_from_slice(&piece_header(b.piece, b.offset, b.length));
            fill.fill(b.piece, b.offset, block);
            self.requests.pop_front();
            self.stats.blocks_sent += 1;
            self.stats.block_bytes_sent += u64::from(b.length);
            at = end;
        }
        self.stats.wire_bytes_sent += at as u64;
        at
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::loadgen::leecher::{Leecher, LeecherConfig};
    use crate::loadgen::payload::Payload;

    const IH: InfoHash = InfoHash([4; 20]);
    const T0: Duration = Duration::from_secs(5);
    const TURNS_MAX: usize = 100_000;

    fn payload() -> Payload {
        Payload::new(7, 6 * 32768 + 123, 32768).unwrap()
    }

    fn shape(p: &Payload) -> TorrentShape {
        TorrentShape::new(IH, p.piece_length(), p.total_length()).unwrap()
    }

    fn filler(p: &Payload) -> impl Fn(u32, u32, &mut [u8]) + '_ {
        move |piece, offset, out: &mut [u8]| {
            p.fill(u64::from(piece) * p.piece_length() + u64::from(offset), out)
        }
    }

    /// Leecher against seed in memory with an output buffer of `buf` bytes.
    fn run(l: &mut Leecher, s: &mut Seed, p: &Payload, buf: usize) {
        let check = |piece, offset, data: &[u8]| p.check_block(piece, offset, data);
        let fill = filler(p);
        let mut out = vec![0u8; buf];
        let mut now = T0;
        for _ in 0..TURNS_MAX {
            now += Duration::from_micros(10);
            let mut a = Vec::new();
            l.take_output(&mut a);
            s.receive(&a).unwrap();
            let n = s.produce(&mut out, &fill);
            l.receive(now, &out[..n], &check).unwrap();
            if l.is_done() || (a.is_empty() && n == 0) {
                return;
            }
        }
        panic!("stuck");
    }

    #[test]
    fn serves_a_whole_torrent_to_the_leecher() {
        let p = payload();
        for buf in [OUTPUT_BYTES_MIN, 1 << 20] {
            let mut l = Leecher::new(LeecherConfig::default(), shape(&p), T0).unwrap();
            let mut s = Seed::new(SeedConfig::default(), shape(&p)).unwrap();
            run(&mut l, &mut s, &p, buf);
            assert!(l.is_done(), "buffer {buf}");
            assert_eq!(l.stats().bytes_good, p.total_length());
            assert_eq!(l.stats().blocks_bad, 0);
            assert_eq!(s.stats().block_bytes_sent, p.total_length());
            assert!(!s.has_output());
        }
    }

    /// Leecher against seed in memory, the seed's blocks taken as a list
    /// (at most `max` a turn) and sent from the payload's pieces.
    fn run_taking_blocks(l: &mut Leecher, s: &mut Seed, p: &Payload, max: usize) {
        let check = |piece, offset, data: &[u8]| p.check_block(piece, offset, data);
        let mut now = T0;
        let mut ctl = vec![0u8; 7];
        let mut blocks = Vec::new();
        for _ in 0..TURNS_MAX {
            now += Duration::from_micros(10);
            let mut a = Vec::new();
            l.take_output(&mut a);
            s.receive(&a).unwrap();
            let mut wire = Vec::new();
            while s.has_control() {
                assert_eq!(s.take_blocks(max, &mut blocks), 0, "control goes first");
                let n = s.produce_control(&mut ctl);
                wire.extend_from_slice(&ctl[..n]);
            }
            blocks.clear();
            let n = s.take_blocks(max, &mut blocks);
            assert_eq!(n, blocks.len());
            assert!(n <= max);
            for b in &blocks {
                assert_eq!(b.piece, blocks[0].piece, "one piece per take");
                let piece = p.piece_bytes(b.piece).unwrap();
                wire.extend_from_slice(&b.header());
                wire.extend_from_slice(&piece[b.offset as usize..(b.offset + b.length) as usize]);
            }
            l.receive(now, &wire, &check).unwrap();
            if l.is_done() || (a.is_empty() && wire.is_empty()) {
                return;
            }
        }
        panic!("stuck");
    }

    #[test]
    fn taken_blocks_serve_a_whole_torrent() {
        let p = payload();
        for max in [1, 4, 64] {
            let mut l = Leecher::new(LeecherConfig::default(), shape(&p), T0).unwrap();
            let mut s = Seed::new(SeedConfig::default(), shape(&p)).unwrap();
            run_taking_blocks(&mut l, &mut s, &p, max);
            assert!(l.is_done(), "max {max}");
            assert_eq!(l.stats().bytes_good, p.total_length());
            assert_eq!(l.stats().blocks_bad, 0);
            assert_eq!(s.stats().block_bytes_sent, p.total_length());
            assert_eq!(s.stats().wire_bytes_sent, l.stats().wire_bytes_received);
        }
    }

    #[test]
    fn a_tiny_buffer_still_carries_the_control_bytes() {
        let p = payload();
        let mut s = Seed::new(SeedConfig::default(), shape(&p)).unwrap();
        let mut l = Leecher::new(LeecherConfig::default(), shape(&p), T0).unwrap();
        let mut a = Vec::new();
        l.take_output(&mut a);
        s.receive(&a).unwrap();
        let fill = filler(&p);
        let mut got = Vec::new();
        let mut out = [0u8; 10];
        for _ in 0..100 {
            let n = s.produce(&mut out, &fill);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&out[..n]);
        }
        // handshake, have-all, unchoke
        assert_eq!(got.len(), 68 + 5 + 5);
        assert_eq!(&got[68..], &[0, 0, 0, 1, 0x0e, 0, 0, 0, 1, 1]);
    }

    #[test]
    fn without_fast_a_full_bitfield_with_clear_spare_bits() {
        let p = payload(); // 7 pieces
        let mut s = Seed::new(SeedConfig::default(), shape(&p)).unwrap();
        let h = Handshake {
            info_hash: IH,
            peer_id: [1; 20],
            reserved: [0; 8],
        };
        s.receive(&h.encode()).unwrap();
        let mut out = vec![0u8; 200];
        let n = s.produce(&mut out, &filler(&p));
        assert_eq!(&out[68..n], &[0, 0, 0, 2, 5, 0xfe, 0, 0, 0, 1, 1]);
    }

    fn started(fast: bool, max: u32) -> Seed {
        let p = payload();
        let cfg = SeedConfig {
            requests_queued_max: max,
            ..SeedConfig::default()
        };
        let mut s = Seed::new(cfg, shape(&p)).unwrap();
        let h = Handshake {
            info_hash: IH,
            peer_id: [1; 20],
            reserved: reserved_bits(false, fast, false),
        };
        s.receive(&h.encode()).unwrap();
        let mut out = vec![0u8; 200];
        s.produce(&mut out, &|_, _, _: &mut [u8]| {});
        s
    }

    fn msg(m: Message<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        encode(&m, &mut v);
        v
    }

    #[test]
    fn over_the_queue_limit_requests_are_rejected_with_fast_dropped_without() {
        for fast in [true, false] {
            let mut s = started(fast, 1);
            for offset in [0, 16384] {
                let r = msg(Message::Request {
                    piece: 0,
                    offset,
                    length: 16384,
                });
                s.receive(&r).unwrap();
            }
            assert_eq!((s.requests_queued(), s.stats().rejected), (1, 1));
            let mut out = vec![0u8; 1 << 16];
            let n = s.produce(&mut out, &|_, _, _: &mut [u8]| {});
            let expect = if fast { 17 } else { 0 } + 13 + 16384;
            assert_eq!(n, expect, "fast {fast}");
        }
    }

    #[test]
    fn cancel_removes_a_held_request() {
        let mut s = started(true, 10);
        let r = Message::Request {
            piece: 1,
            offset: 0,
            length: 100,
        };
        s.receive(&msg(r)).unwrap();
        s.receive(&msg(Message::Cancel {
            piece: 1,
            offset: 0,
            length: 100,
        }))
        .unwrap();
        assert_eq!((s.requests_queued(), s.stats().cancelled), (0, 1));
        assert!(!s.has_output());
    }

    #[test]
    fn bad_requests_handshakes_and_config_are_errors() {
        let mut s = started(true, 10);
        let r = msg(Message::Request {
            piece: 6,
            offset: 0,
            length: 124,
        });
        assert!(matches!(s.receive(&r), Err(SeedError::Request { .. })));
        let mut s = started(true, 10);
        let r = msg(Message::Request {
            piece: 7,
            offset: 0,
            length: 1,
        });
        assert!(matches!(s.receive(&r), Err(SeedError::Request { .. })));
        let p = payload();
        let mut s = Seed::new(SeedConfig::default(), shape(&p)).unwrap();
        let h = Handshake {
            info_hash: InfoHash([0; 20]),
            peer_id: [1; 20],
            reserved: [0; 8],
        };
        assert!(matches!(
            s.receive(&h.encode()),
            Err(SeedError::InfoHash { .. })
        ));
        let mut s = Seed::new(SeedConfig::default(), shape(&p)).unwrap();
        assert!(matches!(
            s.receive(b"\x05hello"),
            Err(SeedError::Handshake(_))
        ));
        for found in [0, REQUESTS_QUEUED_LIMIT + 1] {
            let cfg = SeedConfig {
                requests_queued_max: found,
                ..SeedConfig::default()
            };
            assert!(Seed::new(cfg, shape(&p)).is_err());
        }
    }

    #[test]
    fn messages_split_anywhere_are_reassembled() {
        let mut s = started(true, 10);
        let mut bytes = Vec::new();
        for piece in 0..3 {
            bytes.extend(msg(Message::Request {
                piece,
                offset: 0,
                length: 1000,
            }));
        }
        for b in bytes.chunks(3) {
            s.receive(b).unwrap();
        }
        assert_eq!(s.requests_queued(), 3);
    }
}
