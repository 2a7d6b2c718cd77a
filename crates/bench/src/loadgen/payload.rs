//! The benchmark's payload: torrent data that is a pure function of a seed,
//! so neither the load generator nor its checks need it stored anywhere.
//!
//! Byte `i` of the data is byte `i % 8` (little-endian) of the 64-bit word
//! `splitmix64((i / 8) ^ splitmix64(seed))`: a counter-mode generator, so any
//! range can be produced directly, a word at a time. This module gives the
//! bytes ([`Payload::fill`]), their piece hashes, a block check that needs no
//! allocation, and a single-file .torrent describing the data. Pure: no file
//! IO (callers that write the data to disk use `fill`).

use ringseed::hash::{Sha1Hasher, SHA1_BYTES};
use ringseed::metainfo::{BuildError, NewFile, TorrentBuilder};
use ringseed::runtime::available_threads;
use ringseed::runtime::hash_batch::hash_batch;

/// Smallest piece length accepted, in bytes (one BitTorrent block).
pub const PIECE_LENGTH_MIN_BYTES: u64 = 16 * 1024;
/// Largest piece length accepted, in bytes.
pub const PIECE_LENGTH_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Largest payload, in bytes (1 TiB).
pub const TOTAL_LENGTH_MAX_BYTES: u64 = 1 << 40;
/// Most pieces in a payload: keeps the .torrent (20 bytes a piece) well under
/// the 64 MiB the metainfo reader accepts, and under its piece-count limit.
pub const PIECES_MAX: u64 = 1 << 21;
/// Bytes generated at a time into a stack buffer when checking or hashing.
const STACK_CHUNK_BYTES: usize = 16 * 1024;
/// Most bytes of pieces generated at once for one [`hash_batch`] call by
/// [`Payload::piece_hashes_threads`] (at least one piece is always taken).
pub const HASH_BATCH_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Word indexes wrap here, as byte offsets wrap at 2^64.
const WORD_INDEX_MASK: u64 = u64::MAX >> 3;
/// The `created by` field of torrents made here.
pub const CREATED_BY: &str = "ringseed-bench";

/// Why a payload or its torrent could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload length {length} bytes is out of range: expected 1 to {max}")]
    TotalLength { length: u64, max: u64 },
    #[error("piece length {length} bytes is not a power of two from {min} to {max}")]
    PieceLength { length: u64, min: u64, max: u64 },
    #[error("{pieces} pieces is over the limit of {max} (use a larger piece length)")]
    TooManyPieces { pieces: u64, max: u64 },
    #[error("building the torrent: {0}")]
    Build(#[from] BuildError),
}

/// A deterministic payload: `total_length` bytes generated from `seed`, cut
/// into pieces of `piece_length` bytes (the last may be short).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    seed: u64,
    total_length: u64,
    piece_length: u64,
    /// `splitmix64(seed)`, mixed into every word index.
    key: u64,
}

/// The splitmix64 output function of `x` (a bijection on 64-bit words with
/// good avalanche).
#[inline(always)]
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Payload {
    /// A payload after checking the limits: `total_length` from 1 to
    /// [`TOTAL_LENGTH_MAX_BYTES`], `piece_length` a power of two from
    /// [`PIECE_LENGTH_MIN_BYTES`] to [`PIECE_LENGTH_MAX_BYTES`], and at most
    /// [`PIECES_MAX`] pieces.
    pub fn new(seed: u64, total_length: u64, piece_length: u64) -> Result<Self, PayloadError> {
        if total_length == 0 || total_length > TOTAL_LENGTH_MAX_BYTES {
            return Err(PayloadError::TotalLength {
                length: total_length,
                max: TOTAL_LENGTH_MAX_BYTES,
            });
        }
        if !piece_length.is_power_of_two()
            || !(PIECE_LENGTH_MIN_BYTES..=PIECE_LENGTH_MAX_BYTES).contains(&piece_length)
        {
            return Err(PayloadError::PieceLength {
                length: piece_length,
                min: PIECE_LENGTH_MIN_BYTES,
                max: PIECE_LENGTH_MAX_BYTES,
            });
        }
        let pieces = total_length.div_ceil(piece_length);
        if pieces > PIECES_MAX {
            return Err(PayloadError::TooManyPieces {
                pieces,
                max: PIECES_MAX,
            });
        }
        Ok(Self {
            seed,
            total_length,
            piece_length,
            key: splitmix64(seed),
        })
    }

    /// The seed the bytes are generated from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Total bytes of data.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// Bytes in a piece (all but the last, which may be shorter).
    pub fn piece_length(&self) -> u64 {
        self.piece_length
    }

    /// Number of pieces (at most [`PIECES_MAX`], so it fits in `u32`).
    pub fn num_pieces(&self) -> u32 {
        // `new` caps the count at PIECES_MAX, far below u32::MAX.
        u32::try_from(self.total_length.div_ceil(self.piece_length)).unwrap_or(u32::MAX)
    }

    /// Size of piece `piece` in bytes, or `None` past the last piece.
    pub fn piece_size(&self, piece: u32) -> Option<u32> {
        let start = self.piece_offset(piece)?;
        let size = self
            .piece_length
            .min(self.total_length.saturating_sub(start));
        u32::try_from(size).ok()
    }

    /// Offset of the first byte of piece `piece` in the data, or `None` past
    /// the last piece.
    pub fn piece_offset(&self, piece: u32) -> Option<u64> {
        if piece >= self.num_pieces() {
            return None;
        }
        u64::from(piece).checked_mul(self.piece_length)
    }

    /// Offset in the data of the block of `length` bytes at `offset` within
    /// piece `piece`, or `None` when the block is empty or does not lie
    /// entirely inside the piece.
    pub fn block_offset(&self, piece: u32, offset: u32, length: usize) -> Option<u64> {
        let size = u64::from(self.piece_size(piece)?);
        let length = u64::try_from(length).ok()?;
        let end = u64::from(offset).checked_add(length)?;
        if length == 0 || end > size {
            return None;
        }
        self.piece_offset(piece)?.checked_add(u64::from(offset))
    }

    /// The generated 64-bit word number `index` (bytes `8 * index ..`).
    #[inline(always)]
    fn word(&self, index: u64) -> u64 {
        splitmix64(index ^ self.key)
    }

    /// Byte `offset` of the generated stream.
    pub fn byte_at(&self, offset: u64) -> u8 {
        let word = self.word(offset / 8).to_le_bytes();
        // offset % 8 is below 8, the length of `word`.
        word.get((offset % 8) as usize).copied().unwrap_or(0)
    }

    /// Writes the generated bytes `offset .. offset + out.len()` into `out`.
    ///
    /// The stream is defined for every offset, also past `total_length` (the
    /// caller clamps to the data it wants); offsets wrap at 2^64. Allocates
    /// nothing; whole words are written with one store each.
    pub fn fill(&self, offset: u64, out: &mut [u8]) {
        let mut index = offset / 8;
        let skip = (offset % 8) as usize;
        let mut rest = out;
        if skip != 0 {
            let word = self.word(index).to_le_bytes();
            let head = word.get(skip..).unwrap_or(&[]);
            let n = head.len().min(rest.len());
            let (dst, tail) = rest.split_at_mut(n);
            dst.copy_from_slice(head.get(..n).unwrap_or(&[]));
            rest = tail;
            index = index.wrapping_add(1) & WORD_INDEX_MASK;
        }
        let mut chunks = rest.chunks_exact_mut(8);
        for dst in &mut chunks {
            dst.copy_from_slice(&self.word(index).to_le_bytes());
            index = index.wrapping_add(1) & WORD_INDEX_MASK;
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let word = self.word(index).to_le_bytes();
            let n = tail.len();
            tail.copy_from_slice(word.get(..n).unwrap_or(&[]));
        }
    }

    /// The bytes of piece `piece`, or `None` past the last piece.
    pub fn piece_bytes(&self, piece: u32) -> Option<Vec<u8>> {
        let start = self.piece_offset(piece)?;
        let size = usize::try_from(self.piece_size(piece)?).ok()?;
        let mut out = vec![0u8; size];
        self.fill(start, &mut out);
        Some(out)
    }

    /// SHA-1 of piece `piece`, generated a stack buffer at a time, or `None`
    /// past the last piece.
    pub fn piece_hash(&self, piece: u32) -> Option<[u8; SHA1_BYTES]> {
        let mut offset = self.piece_offset(piece)?;
        let mut left = u64::from(self.piece_size(piece)?);
        let mut buf = [0u8; STACK_CHUNK_BYTES];
        let mut hasher = Sha1Hasher::new();
        while left > 0 {
            let n = usize::try_from(left.min(STACK_CHUNK_BYTES as u64)).unwrap_or(0);
            let chunk = buf.get_mut(..n).unwrap_or(&mut []);
            self.fill(offset, chunk);
            hasher.update(chunk);
            offset = offset.saturating_add(n as u64);
            left = left.saturating_sub(n as u64);
        }
        Some(hasher.finish())
    }

    /// The hashes of all pieces in order, hashed on up to
    /// [`available_threads`] threads.
    pub fn piece_hashes(&self) -> Vec<[u8; SHA1_BYTES]> {
        self.piece_hashes_threads(available_threads())
    }

    /// The hashes of all pieces in order: up to [`HASH_BATCH_BYTES_MAX`]
    /// bytes of pieces are generated at a time and hashed with
    /// [`hash_batch`] on up to `threads` threads.
    pub fn piece_hashes_threads(&self, threads: usize) -> Vec<[u8; SHA1_BYTES]> {
        self.piece_hashes_batched(threads, HASH_BATCH_BYTES_MAX)
    }

    /// [`piece_hashes_threads`](Self::piece_hashes_threads) generating up
    /// to `batch_bytes` of pieces at a time (at least one piece).
    fn piece_hashes_batched(&self, threads: usize, batch_bytes: u64) -> Vec<[u8; SHA1_BYTES]> {
        let pieces = self.num_pieces();
        let per_batch = u32::try_from((batch_bytes / self.piece_length).max(1))
            .unwrap_or(u32::MAX)
            .min(pieces.max(1));
        let mut out = Vec::with_capacity(pieces as usize);
        let mut buf: Vec<u8> = Vec::new();
        let mut first = 0u32;
        while first < pieces {
            let last = first.saturating_add(per_batch).min(pieces);
            let start = self.piece_offset(first).unwrap_or(0);
            let end = self
                .piece_offset(last)
                .unwrap_or(self.total_length)
                .min(self.total_length);
            buf.resize(usize::try_from(end.saturating_sub(start)).unwrap_or(0), 0);
            self.fill(start, &mut buf);
            let chunk = usize::try_from(self.piece_length).unwrap_or(usize::MAX);
            let blocks: Vec<&[u8]> = buf.chunks(chunk).collect();
            out.extend(hash_batch(&blocks, threads));
            first = last;
        }
        out
    }

    /// Whether `data` is exactly the block at `offset` within piece `piece`:
    /// false when it differs, is empty, or does not lie inside the piece.
    /// Generates the expected bytes into a stack buffer; allocates nothing.
    pub fn check_block(&self, piece: u32, offset: u32, data: &[u8]) -> bool {
        let Some(mut at) = self.block_offset(piece, offset, data.len()) else {
            return false;
        };
        let mut buf = [0u8; STACK_CHUNK_BYTES];
        for got in data.chunks(STACK_CHUNK_BYTES) {
            let want = buf.get_mut(..got.len()).unwrap_or(&mut []);
            self.fill(at, want);
            if want != got {
                return false;
            }
            at = at.wrapping_add(got.len() as u64);
        }
        true
    }

    /// A single-file .torrent named `name` describing this payload (hashes
    /// computed here), announcing to `tracker` when given. No creation date,
    /// so the same payload, name and tracker always give the same info-hash.
    pub fn torrent_bytes(
        &self,
        name: &str,
        tracker: Option<&str>,
    ) -> Result<Vec<u8>, PayloadError> {
        self.torrent_bytes_with(name, tracker, &self.piece_hashes())
    }

    /// As [`torrent_bytes`](Self::torrent_bytes), with piece hashes the
    /// caller already has (from [`piece_hashes`](Self::piece_hashes)).
    pub fn torrent_bytes_with(
        &self,
        name: &str,
        tracker: Option<&str>,
        hashes: &[[u8; SHA1_BYTES]],
    ) -> Result<Vec<u8>, PayloadError> {
        let builder = TorrentBuilder {
            name: name.to_string(),
            files: vec![NewFile {
                path: Vec::new(),
                length: self.total_length,
            }],
            single_file: true,
            piece_length: self.piece_length,
            trackers: tracker
                .map(|t| vec![vec![t.to_string()]])
                .unwrap_or_default(),
            created_by: Some(CREATED_BY.to_string()),
            ..Default::default()
        };
        Ok(builder.build(hashes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringseed::hash::sha1;
    use ringseed::metainfo::Metainfo;

    const KIB16: u64 = 16 * 1024;

    fn payload(seed: u64, total: u64, piece: u64) -> Payload {
        Payload::new(seed, total, piece).unwrap()
    }

    /// Byte-at-a-time reference, written from the definition.
    fn reference(seed: u64, offset: u64, len: usize) -> Vec<u8> {
        let key = splitmix64(seed);
        (0..len as u64)
            .map(|k| {
                let i = offset.wrapping_add(k);
                splitmix64((i / 8) ^ key).to_le_bytes()[(i % 8) as usize]
            })
            .collect()
    }

    #[test]
    fn splitmix64_known_values() {
        // The first outputs of the splitmix64 generator seeded with 0 are
        // splitmix64(0), splitmix64(golden), ...: published test values.
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(0x9E37_79B9_7F4A_7C15), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(
            Payload::new(1, 0, KIB16),
            Err(PayloadError::TotalLength {
                length: 0,
                max: TOTAL_LENGTH_MAX_BYTES
            })
        );
        assert!(matches!(
            Payload::new(1, TOTAL_LENGTH_MAX_BYTES + 1, PIECE_LENGTH_MAX_BYTES),
            Err(PayloadError::TotalLength { .. })
        ));
        assert!(Payload::new(1, TOTAL_LENGTH_MAX_BYTES, PIECE_LENGTH_MAX_BYTES).is_ok());
        for bad in [0, 1, 8 * 1024, KIB16 + 1, 3 * KIB16, 32 * 1024 * 1024] {
            assert_eq!(
                Payload::new(1, 1000, bad),
                Err(PayloadError::PieceLength {
                    length: bad,
                    min: PIECE_LENGTH_MIN_BYTES,
                    max: PIECE_LENGTH_MAX_BYTES
                }),
                "piece length {bad}"
            );
        }
        assert!(Payload::new(1, 1000, KIB16).is_ok());
        assert!(Payload::new(1, 1000, PIECE_LENGTH_MAX_BYTES).is_ok());
        assert!(Payload::new(1, PIECES_MAX * KIB16, KIB16).is_ok());
        assert_eq!(
            Payload::new(1, PIECES_MAX * KIB16 + 1, KIB16),
            Err(PayloadError::TooManyPieces {
                pieces: PIECES_MAX + 1,
                max: PIECES_MAX
            })
        );
    }

    #[test]
    fn geometry() {
        let p = payload(7, 3 * KIB16 + 100, KIB16);
        assert_eq!(p.seed(), 7);
        assert_eq!(p.total_length(), 3 * KIB16 + 100);
        assert_eq!(p.piece_length(), KIB16);
        assert_eq!(p.num_pieces(), 4);
        assert_eq!(p.piece_size(0), Some(16384));
        assert_eq!(p.piece_size(3), Some(100));
        assert_eq!(p.piece_size(4), None);
        assert_eq!(p.piece_offset(3), Some(3 * KIB16));
        assert_eq!(p.piece_offset(u32::MAX), None);
        assert_eq!(p.block_offset(1, 0, 16384), Some(KIB16));
        assert_eq!(p.block_offset(1, 16383, 1), Some(2 * KIB16 - 1));
        assert_eq!(p.block_offset(1, 16383, 2), None);
        assert_eq!(p.block_offset(1, 0, 0), None);
        assert_eq!(p.block_offset(3, 0, 100), Some(3 * KIB16));
        assert_eq!(p.block_offset(3, 0, 101), None);
        assert_eq!(p.block_offset(3, u32::MAX, 1), None);
        assert_eq!(p.block_offset(4, 0, 1), None);
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        let a = payload(42, 100_000, KIB16);
        let b = payload(42, 100_000, KIB16);
        let c = payload(43, 100_000, KIB16);
        let mut x = vec![0u8; 4096];
        let mut y = vec![0u8; 4096];
        let mut z = vec![0u8; 4096];
        a.fill(1000, &mut x);
        b.fill(1000, &mut y);
        c.fill(1000, &mut z);
        assert_eq!(x, y);
        assert_ne!(x, z);
        // Not trivially patterned: every byte value shows up in 4 KiB.
        let mut seen = [false; 256];
        x.iter().for_each(|&v| seen[v as usize] = true);
        assert!(seen.iter().all(|&s| s));
        // Pieces differ from each other.
        assert_ne!(a.piece_bytes(0), a.piece_bytes(1));
    }

    #[test]
    fn fill_at_odd_offsets_matches_reference() {
        let p = payload(0xDEAD_BEEF, 1 << 20, KIB16);
        for offset in [0u64, 1, 3, 7, 8, 9, 15, 16, 17, 1000, 65_535, u64::MAX - 20] {
            for len in [0usize, 1, 2, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1001] {
                let mut out = vec![0xAAu8; len];
                p.fill(offset, &mut out);
                assert_eq!(
                    out,
                    reference(0xDEAD_BEEF, offset, len),
                    "offset {offset} len {len}"
                );
            }
        }
        for i in [0u64, 5, 8, 12345, u64::MAX] {
            assert_eq!(p.byte_at(i), reference(0xDEAD_BEEF, i, 1)[0], "byte {i}");
        }
        // A range filled in pieces equals one fill of the whole.
        let mut whole = vec![0u8; 10_000];
        p.fill(3, &mut whole);
        let mut parts = vec![0u8; 10_000];
        let (a, rest) = parts.split_at_mut(13);
        let (b, c) = rest.split_at_mut(4099);
        p.fill(3, a);
        p.fill(3 + 13, b);
        p.fill(3 + 13 + 4099, c);
        assert_eq!(whole, parts);
    }

    #[test]
    fn piece_hashes_match_the_generated_pieces() {
        let p = payload(5, 5 * KIB16 + 777, KIB16);
        let hashes = p.piece_hashes();
        assert_eq!(hashes.len(), 6);
        for (i, h) in hashes.iter().enumerate() {
            let bytes = p.piece_bytes(i as u32).unwrap();
            assert_eq!(*h, sha1(&bytes), "piece {i}");
            assert_eq!(p.piece_hash(i as u32), Some(*h), "piece {i}");
        }
        assert_eq!(p.piece_bytes(5).unwrap().len(), 777);
        assert_eq!(p.piece_hash(6), None);
        assert_eq!(p.piece_bytes(6), None);
        for threads in [0, 1, 3] {
            assert_eq!(p.piece_hashes_threads(threads), hashes);
        }
    }

    #[test]
    fn piece_hashes_span_several_batches() {
        let p = payload(9, 8 * KIB16 + 12_345, KIB16);
        let want: Vec<[u8; SHA1_BYTES]> = (0..9).map(|i| p.piece_hash(i).unwrap()).collect();
        assert_eq!(want[8], sha1(&p.piece_bytes(8).unwrap()));
        // 4 pieces a batch: three batches, the last one short and ending in
        // a short piece; a batch smaller than a piece still takes one.
        for (batch_bytes, threads) in [(4 * KIB16, 2), (4 * KIB16 + 1, 1), (1, 3), (u64::MAX, 2)] {
            assert_eq!(
                p.piece_hashes_batched(threads, batch_bytes),
                want,
                "batch {batch_bytes} threads {threads}"
            );
        }
        // The public batch size takes several 16 MiB pieces at once.
        assert_eq!(HASH_BATCH_BYTES_MAX / PIECE_LENGTH_MAX_BYTES, 4);
    }

    #[test]
    fn check_block_accepts_only_the_right_bytes() {
        let p = payload(11, 2 * KIB16 + 5000, KIB16);
        let piece1 = p.piece_bytes(1).unwrap();
        assert!(p.check_block(1, 0, &piece1));
        assert!(p.check_block(1, 0, &piece1[..16384]));
        assert!(p.check_block(1, 3, &piece1[3..40]));
        assert!(p.check_block(1, 16383, &piece1[16383..]));
        let last = p.piece_bytes(2).unwrap();
        assert!(p.check_block(2, 0, &last));
        assert!(p.check_block(2, 4999, &last[4999..]));
        // One flipped bit anywhere fails, also past the first stack chunk.
        for at in [0usize, 7, 8000, 16383] {
            let mut bad = piece1.clone();
            bad[at] ^= 0x10;
            assert!(!p.check_block(1, 0, &bad), "flip at {at}");
        }
        // Right bytes at the wrong place, piece or offset.
        assert!(!p.check_block(0, 0, &piece1));
        assert!(!p.check_block(1, 1, &piece1[..100]));
        // Outside the piece, past the end, empty.
        assert!(!p.check_block(1, 16000, &piece1[..1000]));
        assert!(!p.check_block(2, 0, &[last.as_slice(), &[0]].concat()));
        assert!(!p.check_block(3, 0, &piece1[..10]));
        assert!(!p.check_block(1, 0, &[]));
        assert!(!p.check_block(1, u32::MAX, &piece1[..1]));
        // A longer block than the stack buffer (a 16 MiB piece's block).
        let big = payload(11, 2 * PIECE_LENGTH_MAX_BYTES, PIECE_LENGTH_MAX_BYTES);
        let mut block = vec![0u8; 100_000];
        big.fill(PIECE_LENGTH_MAX_BYTES + 123, &mut block);
        assert!(big.check_block(1, 123, &block));
        block[99_999] ^= 1;
        assert!(!big.check_block(1, 123, &block));
    }

    #[test]
    fn torrent_reads_back_with_matching_hashes() {
        let p = payload(3, 4 * KIB16 + 1, KIB16);
        let bytes = p
            .torrent_bytes("bench.bin", Some("udp://127.0.0.1:6969"))
            .unwrap();
        let m = Metainfo::from_bytes(&bytes).unwrap();
        assert_eq!(m.info.name, "bench.bin");
        assert!(!m.info.multi_file);
        assert_eq!(m.info.total_length, 4 * KIB16 + 1);
        assert_eq!(m.info.piece_length, KIB16);
        assert_eq!(m.info.pieces.len(), 5);
        for (i, h) in m.info.pieces.iter().enumerate() {
            assert_eq!(p.piece_hash(i as u32), Some(*h), "piece {i}");
        }
        assert_eq!(m.trackers, vec![vec!["udp://127.0.0.1:6969".to_string()]]);
        assert_eq!(m.created_by.as_deref(), Some(CREATED_BY));
        // Deterministic: same inputs, same bytes; no tracker, no announce.
        assert_eq!(
            p.torrent_bytes("bench.bin", Some("udp://127.0.0.1:6969"))
                .unwrap(),
            bytes
        );
        let plain = p.torrent_bytes("bench.bin", None).unwrap();
        assert!(Metainfo::from_bytes(&plain).unwrap().trackers.is_empty());
        // Another seed, another info-hash.
        let other = payload(4, 4 * KIB16 + 1, KIB16)
            .torrent_bytes("bench.bin", None)
            .unwrap();
        assert_ne!(
            Metainfo::from_bytes(&other).unwrap().info_hash,
            Metainfo::from_bytes(&plain).unwrap().info_hash
        );
    }

    #[test]
    fn torrent_errors_are_typed() {
        let p = payload(3, KIB16, KIB16);
        assert_eq!(
            p.torrent_bytes("../x", None),
            Err(PayloadError::Build(BuildError::BadName("../x".into())))
        );
        assert_eq!(
            p.torrent_bytes_with("x", None, &[]),
            Err(PayloadError::Build(BuildError::PieceCount {
                given: 0,
                expected: 1
            }))
        );
    }
}
