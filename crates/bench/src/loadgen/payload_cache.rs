//! `PayloadCache`: whole pieces of the deterministic [`Payload`], generated
//! once and kept (bounded) so the trivial seeder (`ringseed-bench serve`)
//! sends blocks straight from memory instead of generating them per block.
//!
//! Each piece is one shared `Arc<[u8]>`: a send in flight holds its own
//! reference, so a piece evicted meanwhile stays valid until that send is
//! done. Pieces are filled on demand ([`PayloadCache::piece`]) or up front
//! ([`PayloadCache::prefill`]); when the cache is full the piece cached
//! longest ago is dropped first (FIFO: the synthetic peers walk the pieces
//! in random orders, so recency says little).
//!
//! Boundary: pure (generation is computation, no IO, no clock). Limits: the
//! bytes held ([`PayloadCache::bytes_max`], at least one piece, at most
//! [`CACHE_BYTES_LIMIT`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::payload::Payload;

/// Default bytes of pieces held (serve's `--cache-bytes-max`).
pub const CACHE_BYTES_MAX_DEFAULT: u64 = 512 << 20;
/// Largest cache accepted, in bytes.
pub const CACHE_BYTES_LIMIT: u64 = 64 << 30;

/// Why a cache cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error("cache_bytes_max {found} is out of range: expected {min} (one piece) to {max}")]
    BytesMax { found: u64, min: u64, max: u64 },
}

/// What a cache counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Lookups answered from memory.
    pub hits: u64,
    /// Lookups that generated the piece.
    pub misses: u64,
    /// Pieces dropped to make room.
    pub evictions: u64,
    /// Bytes generated, prefill included.
    pub bytes_generated: u64,
}

impl CacheStats {
    /// Adds `other`'s counts to these (totals over threads).
    pub fn add(&mut self, other: &CacheStats) {
        self.hits += other.hits;
        self.misses += other.misses;
        self.evictions += other.evictions;
        self.bytes_generated += other.bytes_generated;
    }
}

/// A bounded cache of generated pieces.
#[derive(Debug, Clone)]
pub struct PayloadCache {
    payload: Payload,
    bytes_max: u64,
    bytes: u64,
    pieces: HashMap<u32, Arc<[u8]>>,
    /// Cached pieces, oldest first (the eviction order).
    order: VecDeque<u32>,
    stats: CacheStats,
}

impl PayloadCache {
    /// An empty cache of `payload` holding at most `bytes_max` bytes of
    /// pieces: at least one piece, at most [`CACHE_BYTES_LIMIT`].
    pub fn new(payload: Payload, bytes_max: u64) -> Result<PayloadCache, CacheError> {
        let min = payload.piece_length().min(payload.total_length());
        if !(min..=CACHE_BYTES_LIMIT).contains(&bytes_max) {
            return Err(CacheError::BytesMax {
                found: bytes_max,
                min,
                max: CACHE_BYTES_LIMIT,
            });
        }
        Ok(PayloadCache {
            payload,
            bytes_max,
            bytes: 0,
            pieces: HashMap::new(),
            order: VecDeque::new(),
            stats: CacheStats::default(),
        })
    }

    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// Most bytes of pieces held.
    pub fn bytes_max(&self) -> u64 {
        self.bytes_max
    }

    /// Bytes of pieces held now.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Pieces held now.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// Whether the whole payload fits in `bytes_max`.
    pub fn fits_all(&self) -> bool {
        self.payload.total_length() <= self.bytes_max
    }

    /// Whether every piece is held (after [`prefill`](Self::prefill) of a
    /// payload that fits): [`get`](Self::get) then always answers.
    pub fn holds_all(&self) -> bool {
        self.pieces.len() == self.payload.num_pieces() as usize
    }

    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// Piece `piece` if it is held; never generates (for a cache shared
    /// read-only after [`prefill`](Self::prefill)).
    pub fn get(&self, piece: u32) -> Option<&Arc<[u8]>> {
        self.pieces.get(&piece)
    }

    /// Piece `piece`, generated and cached first when it is not held
    /// (evicting the oldest pieces to make room); `None` past the last
    /// piece.
    pub fn piece(&mut self, piece: u32) -> Option<Arc<[u8]>> {
        if let Some(p) = self.pieces.get(&piece) {
            self.stats.hits += 1;
            return Some(Arc::clone(p));
        }
        let bytes: Arc<[u8]> = Arc::from(self.payload.piece_bytes(piece)?);
        self.stats.misses += 1;
        self.insert(piece, Arc::clone(&bytes));
        Some(bytes)
    }

    /// Generates pieces in order from piece 0 while they fit without
    /// evicting anything; returns how many were added.
    pub fn prefill(&mut self) -> u32 {
        let mut added = 0;
        for piece in 0..self.payload.num_pieces() {
            let Some(size) = self.payload.piece_size(piece) else {
                break;
            };
            if self.pieces.contains_key(&piece) {
                continue;
            }
            if self.bytes + u64::from(size) > self.bytes_max {
                break;
            }
            if let Some(bytes) = self.payload.piece_bytes(piece) {
                self.insert(piece, Arc::from(bytes));
                added += 1;
            }
        }
        added
    }

    fn insert(&mut self, piece: u32, bytes: Arc<[u8]>) {
        let size = bytes.len() as u64;
        self.stats.bytes_generated += size;
        // Bounded: every turn removes one piece.
        while self.bytes + size > self.bytes_max {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(p) = self.pieces.remove(&old) {
                self.bytes = self.bytes.saturating_sub(p.len() as u64);
                self.stats.evictions += 1;
            }
        }
        self.bytes += size;
        self.pieces.insert(piece, bytes);
        self.order.push_back(piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIECE: u64 = 32 * 1024;

    /// 5 pieces, the last short.
    fn payload() -> Payload {
        Payload::new(11, 4 * PIECE + 1000, PIECE).unwrap()
    }

    #[test]
    fn size_limits_are_checked() {
        let p = payload();
        for bad in [0, PIECE - 1, CACHE_BYTES_LIMIT + 1] {
            assert_eq!(
                PayloadCache::new(p, bad).unwrap_err(),
                CacheError::BytesMax {
                    found: bad,
                    min: PIECE,
                    max: CACHE_BYTES_LIMIT
                }
            );
        }
        assert!(PayloadCache::new(p, PIECE).is_ok());
        // A payload shorter than a piece: its one piece is the minimum.
        let tiny = Payload::new(1, 100, PIECE).unwrap();
        assert!(PayloadCache::new(tiny, 100).is_ok());
        assert!(PayloadCache::new(tiny, 99).is_err());
    }

    #[test]
    fn pieces_are_the_payload_bytes_and_are_shared() {
        let p = payload();
        let mut c = PayloadCache::new(p, 1 << 20).unwrap();
        for piece in 0..p.num_pieces() {
            let got = c.piece(piece).unwrap();
            assert_eq!(
                &got[..],
                &p.piece_bytes(piece).unwrap()[..],
                "piece {piece}"
            );
            let again = c.piece(piece).unwrap();
            assert!(Arc::ptr_eq(&got, &again));
        }
        assert_eq!(c.piece(p.num_pieces()), None);
        assert_eq!(
            *c.stats(),
            CacheStats {
                hits: 5,
                misses: 5,
                evictions: 0,
                bytes_generated: p.total_length()
            }
        );
        assert_eq!(c.bytes(), p.total_length());
        assert!(c.holds_all());
    }

    #[test]
    fn full_cache_evicts_oldest_first_and_stays_bounded() {
        let p = payload();
        let mut c = PayloadCache::new(p, 2 * PIECE).unwrap();
        let first = c.piece(0).unwrap();
        c.piece(1).unwrap();
        c.piece(2).unwrap();
        assert!(c.get(0).is_none(), "oldest evicted");
        assert!(c.get(1).is_some() && c.get(2).is_some());
        assert_eq!(c.stats().evictions, 1);
        assert!(c.bytes() <= c.bytes_max());
        // A reference taken before the eviction is still whole.
        assert_eq!(&first[..], &p.piece_bytes(0).unwrap()[..]);
        // A hit does not refresh: 1 is still the oldest.
        c.piece(1).unwrap();
        c.piece(4).unwrap();
        assert!(c.get(1).is_none());
        assert_eq!(c.len(), 2);
        for piece in 0..5 {
            c.piece(piece).unwrap();
            assert!(c.bytes() <= c.bytes_max());
        }
    }

    #[test]
    fn prefill_fills_what_fits_without_evicting() {
        let p = payload();
        let mut all = PayloadCache::new(p, p.total_length()).unwrap();
        assert!(all.fits_all());
        assert_eq!(all.prefill(), 5);
        assert!(all.holds_all());
        assert_eq!(all.prefill(), 0);
        for piece in 0..5 {
            assert_eq!(
                &all.get(piece).unwrap()[..],
                &p.piece_bytes(piece).unwrap()[..]
            );
        }
        assert_eq!(all.stats().evictions, 0);

        let mut some = PayloadCache::new(p, 3 * PIECE + 10).unwrap();
        assert!(!some.fits_all());
        assert_eq!(some.prefill(), 3);
        assert!(!some.holds_all());
        assert!(some.get(3).is_none());
        assert_eq!(some.stats().evictions, 0);
        assert!(!some.is_empty() && some.len() == 3);
    }
}
