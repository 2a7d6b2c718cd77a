//! `PieceBits`: a plain bitfield of which pieces one side of a connection
//! has, in the wire's bit order (piece 0 is the high bit of byte 0).
//!
//! Boundary: this is the connection's own small type, on purpose. The
//! torrent-wide bitfield and the piece picker are being written elsewhere; the
//! engine can later swap this for that type (the connection only needs
//! [`PieceBits::has`], [`PieceBits::set`], the byte view and the counts).
//! Its size is fixed at construction from the torrent's piece count, which
//! the torrent shape already bounds, so it never grows.

/// Which of `pieces` pieces are present, one bit each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceBits {
    bytes: Vec<u8>,
    pieces: u32,
    count: u32,
}

impl PieceBits {
    /// No piece present.
    pub fn none(pieces: u32) -> PieceBits {
        PieceBits {
            bytes: vec![0; bytes_for(pieces)],
            pieces,
            count: 0,
        }
    }

    /// Every piece present (spare bits in the last byte stay clear).
    pub fn all(pieces: u32) -> PieceBits {
        let mut bits = PieceBits::none(pieces);
        bits.set_all();
        bits
    }

    /// Reads a wire bitfield. `None` if its length is not exactly
    /// `ceil(pieces / 8)` bytes or a spare bit past the last piece is set.
    pub fn from_wire(pieces: u32, bytes: &[u8]) -> Option<PieceBits> {
        if bytes.len() != bytes_for(pieces) {
            return None;
        }
        let spare = spare_mask(pieces);
        if let Some(last) = bytes.last() {
            if last & spare != 0 {
                return None;
            }
        }
        let count = bytes.iter().map(|b| b.count_ones()).sum();
        Some(PieceBits {
            bytes: bytes.to_vec(),
            pieces,
            count,
        })
    }

    /// Number of pieces this bitfield covers.
    pub fn pieces(&self) -> u32 {
        self.pieces
    }

    /// Number of pieces present.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Every piece present (true for a torrent of zero pieces).
    pub fn is_all(&self) -> bool {
        self.count == self.pieces
    }

    /// No piece present.
    pub fn is_none(&self) -> bool {
        self.count == 0
    }

    /// Whether `piece` is present; `false` out of range.
    pub fn has(&self, piece: u32) -> bool {
        let (byte, mask) = position(piece);
        self.bytes.get(byte).is_some_and(|b| b & mask != 0)
    }

    /// Marks `piece` present. Returns `true` if it was not before; `false` if
    /// it already was or is out of range.
    pub fn set(&mut self, piece: u32) -> bool {
        if piece >= self.pieces {
            return false;
        }
        let (byte, mask) = position(piece);
        match self.bytes.get_mut(byte) {
            Some(b) if *b & mask == 0 => {
                *b |= mask;
                self.count += 1;
                true
            }
            _ => false,
        }
    }

    /// Marks every piece present.
    pub fn set_all(&mut self) {
        self.bytes.fill(0xff);
        let spare = spare_mask(self.pieces);
        if let Some(last) = self.bytes.last_mut() {
            *last &= !spare;
        }
        self.count = self.pieces;
    }

    /// Adds every piece of `other` (same piece count; a different one is
    /// ignored).
    pub fn union_with(&mut self, other: &PieceBits) {
        if other.pieces != self.pieces {
            return;
        }
        for (a, b) in self.bytes.iter_mut().zip(&other.bytes) {
            *a |= *b;
        }
        self.count = self.bytes.iter().map(|b| b.count_ones()).sum();
    }

    /// Marks every piece absent.
    pub fn clear(&mut self) {
        self.bytes.fill(0);
        self.count = 0;
    }

    /// The wire form: `ceil(pieces / 8)` bytes, spare bits clear.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn bytes_for(pieces: u32) -> usize {
    pieces.div_ceil(8) as usize
}

fn position(piece: u32) -> (usize, u8) {
    ((piece / 8) as usize, 0x80u8 >> (piece % 8))
}

/// Bits of the last byte that lie past the last piece.
fn spare_mask(pieces: u32) -> u8 {
    match pieces % 8 {
        0 => 0,
        used => 0xffu8 >> used,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_has_count() {
        let mut b = PieceBits::none(10);
        assert_eq!(b.as_bytes(), &[0, 0]);
        assert!(b.set(0));
        assert!(!b.set(0));
        assert!(b.set(9));
        assert!(!b.set(10));
        assert!(!b.set(u32::MAX));
        assert_eq!(b.as_bytes(), &[0x80, 0x40]);
        assert!(b.has(0) && b.has(9) && !b.has(1) && !b.has(10));
        assert_eq!(b.count(), 2);
        b.clear();
        assert!(b.is_none());
    }

    #[test]
    fn all_leaves_spare_bits_clear() {
        let b = PieceBits::all(10);
        assert_eq!(b.as_bytes(), &[0xff, 0xc0]);
        assert!(b.is_all());
        assert_eq!(PieceBits::all(16).as_bytes(), &[0xff, 0xff]);
        assert!(PieceBits::all(0).is_all() && PieceBits::all(0).is_none());
    }

    #[test]
    fn from_wire_checks_length_and_spare_bits() {
        assert_eq!(
            PieceBits::from_wire(10, &[0xff, 0xc0]).map(|b| b.count()),
            Some(10)
        );
        assert!(PieceBits::from_wire(10, &[0xff, 0xe0]).is_none());
        assert!(PieceBits::from_wire(10, &[0xff]).is_none());
        assert!(PieceBits::from_wire(10, &[0xff, 0, 0]).is_none());
        assert!(PieceBits::from_wire(0, &[]).is_some());
    }
}
