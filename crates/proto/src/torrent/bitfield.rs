//! A fixed-length bit set in BitTorrent wire order (bit 0 is the high bit of
//! byte 0), used for "which pieces does this peer (or do we) have". Pure data:
//! parsing a peer's `bitfield` message body, counting, iterating, and
//! word-at-a-time comparisons. Knows nothing about pieces beyond their count.

use thiserror::Error;

use crate::limits::PIECES_PER_TORRENT_MAX;

/// Most bits one bitfield holds (one per piece).
pub const BITS_MAX: usize = PIECES_PER_TORRENT_MAX as usize;

/// Why a bitfield could not be made or changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BitfieldError {
    #[error("bitfield of {len} bits is longer than the limit of {max} bits")]
    TooLong { len: usize, max: usize },
    #[error("bitfield of {len} bits needs {expected} bytes, found {found}")]
    WrongByteLength {
        len: usize,
        expected: usize,
        found: usize,
    },
    #[error("bitfield of {len} bits has spare bits set in its last byte {last_byte:#04x}")]
    SpareBitsSet { len: usize, last_byte: u8 },
    #[error("bit {index} is outside a bitfield of {len} bits")]
    OutOfRange { index: usize, len: usize },
}

/// A fixed number of bits with an O(1) count of the set ones.
///
/// Invariant: the spare bits after `len` in the last byte are always 0, and
/// `ones` equals the number of set bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: usize,
    ones: usize,
}

/// Bytes needed for `len` bits.
fn byte_len(len: usize) -> usize {
    len.div_ceil(8)
}

/// Mask of the bits of the last byte that belong to the bitfield.
fn last_byte_mask(len: usize) -> u8 {
    match len % 8 {
        0 => 0xFF,
        r => 0xFFu8 << (8 - r),
    }
}

/// Eight bytes starting at `8 * word` as a big-endian word, zero-padded past the end.
fn word_at(bytes: &[u8], word: usize) -> u64 {
    let start = word.saturating_mul(8);
    let mut buf = [0u8; 8];
    if let Some(chunk) = bytes.get(start..) {
        let n = chunk.len().min(8);
        buf[..n].copy_from_slice(&chunk[..n]);
    }
    u64::from_be_bytes(buf)
}

impl Bitfield {
    /// `len` bits, all clear.
    pub fn new(len: usize) -> Result<Self, BitfieldError> {
        if len > BITS_MAX {
            return Err(BitfieldError::TooLong { len, max: BITS_MAX });
        }
        Ok(Self {
            bytes: vec![0; byte_len(len)],
            len,
            ones: 0,
        })
    }

    /// `len` bits, all set.
    pub fn full(len: usize) -> Result<Self, BitfieldError> {
        let mut b = Self::new(len)?;
        b.set_all();
        Ok(b)
    }

    /// Parses a wire bitfield of `len` bits. The byte length must be exactly
    /// `ceil(len / 8)` and the spare bits of the last byte must be clear.
    pub fn from_bytes(bytes: &[u8], len: usize) -> Result<Self, BitfieldError> {
        if len > BITS_MAX {
            return Err(BitfieldError::TooLong { len, max: BITS_MAX });
        }
        let expected = byte_len(len);
        if bytes.len() != expected {
            return Err(BitfieldError::WrongByteLength {
                len,
                expected,
                found: bytes.len(),
            });
        }
        if let Some(&last) = bytes.last() {
            if last & !last_byte_mask(len) != 0 {
                return Err(BitfieldError::SpareBitsSet {
                    len,
                    last_byte: last,
                });
            }
        }
        let ones = bytes.iter().map(|b| b.count_ones() as usize).sum();
        Ok(Self {
            bytes: bytes.to_vec(),
            len,
            ones,
        })
    }

    /// The wire bytes (spare bits clear).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the bitfield has no bits at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bit `index`; `false` when out of range.
    pub fn get(&self, index: usize) -> bool {
        if index >= self.len {
            return false;
        }
        self.bytes
            .get(index / 8)
            .is_some_and(|b| b & (0x80 >> (index % 8)) != 0)
    }

    /// The byte that holds bit `index`, and the bit's mask in it.
    fn byte_and_mask(&mut self, index: usize) -> Result<(&mut u8, u8), BitfieldError> {
        let len = self.len;
        let byte = self
            .bytes
            .get_mut(index / 8)
            .filter(|_| index < len)
            .ok_or(BitfieldError::OutOfRange { index, len })?;
        Ok((byte, 0x80 >> (index % 8)))
    }

    /// Sets bit `index`; returns whether it changed.
    pub fn set(&mut self, index: usize) -> Result<bool, BitfieldError> {
        let (byte, mask) = self.byte_and_mask(index)?;
        let changed = *byte & mask == 0;
        *byte |= mask;
        if changed {
            self.ones += 1;
        }
        Ok(changed)
    }

    /// Clears bit `index`; returns whether it changed.
    pub fn clear(&mut self, index: usize) -> Result<bool, BitfieldError> {
        let (byte, mask) = self.byte_and_mask(index)?;
        let changed = *byte & mask != 0;
        *byte &= !mask;
        if changed {
            self.ones -= 1;
        }
        Ok(changed)
    }

    /// Sets every bit.
    pub fn set_all(&mut self) {
        self.bytes.fill(0xFF);
        if let Some(last) = self.bytes.last_mut() {
            *last &= last_byte_mask(self.len);
        }
        self.ones = self.len;
    }

    /// Clears every bit.
    pub fn clear_all(&mut self) {
        self.bytes.fill(0);
        self.ones = 0;
    }

    /// Number of set bits, O(1).
    pub fn count_ones(&self) -> usize {
        self.ones
    }

    /// Number of clear bits, O(1).
    pub fn count_zeros(&self) -> usize {
        self.len - self.ones
    }

    /// Whether every bit is set (true for an empty bitfield).
    pub fn all(&self) -> bool {
        self.ones == self.len
    }

    /// Whether no bit is set.
    pub fn none(&self) -> bool {
        self.ones == 0
    }

    /// Indices of set bits, ascending, a word at a time.
    pub fn iter_ones(&self) -> BitIter<'_> {
        BitIter::new(self, false)
    }

    /// Indices of clear bits, ascending, a word at a time.
    pub fn iter_zeros(&self) -> BitIter<'_> {
        BitIter::new(self, true)
    }

    /// Whether `theirs` has a bit that `ours` lacks ("is this peer
    /// interesting?"), 64 bits at a time without allocating. Bitfields of
    /// different lengths compare over the shorter one.
    pub fn interesting(ours: &Bitfield, theirs: &Bitfield) -> bool {
        Self::lacking_words(ours, theirs).any(|w| w != 0)
    }

    /// Number of bits `theirs` has that `ours` lacks, 64 bits at a time.
    pub fn count_interesting(ours: &Bitfield, theirs: &Bitfield) -> usize {
        Self::lacking_words(ours, theirs)
            .map(|w| w.count_ones() as usize)
            .sum()
    }

    /// The bits `theirs` has and `ours` lacks, a 64-bit word at a time.
    fn lacking_words<'a>(
        ours: &'a Bitfield,
        theirs: &'a Bitfield,
    ) -> impl Iterator<Item = u64> + 'a {
        ours.bytes
            .chunks(8)
            .zip(theirs.bytes.chunks(8))
            .map(|(o, t)| {
                let mut ob = [0u8; 8];
                let mut tb = [0u8; 8];
                ob[..o.len()].copy_from_slice(o);
                tb[..t.len()].copy_from_slice(t);
                u64::from_ne_bytes(tb) & !u64::from_ne_bytes(ob)
            })
    }
}

/// Iterator over set (or clear) bit indices of a [`Bitfield`].
#[derive(Debug, Clone)]
pub struct BitIter<'a> {
    bits: &'a Bitfield,
    invert: bool,
    /// Index of the word loaded into `current`.
    word: usize,
    /// Remaining wanted bits of the current word, high bit first.
    current: u64,
}

impl<'a> BitIter<'a> {
    fn new(bits: &'a Bitfield, invert: bool) -> Self {
        let mut it = Self {
            bits,
            invert,
            word: 0,
            current: 0,
        };
        it.current = it.load(0);
        it
    }

    /// Word `w` with wanted bits set, bits past `len` cleared.
    fn load(&self, w: usize) -> u64 {
        let raw = word_at(&self.bits.bytes, w);
        let raw = if self.invert { !raw } else { raw };
        let start = w.saturating_mul(64);
        let valid = self.bits.len.saturating_sub(start).min(64);
        match valid {
            0 => 0,
            64 => raw,
            v => raw & !(u64::MAX >> v),
        }
    }
}

impl Iterator for BitIter<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let words = self.bits.len.div_ceil(64);
        loop {
            if self.current != 0 {
                let lz = self.current.leading_zeros() as usize;
                self.current &= !(1u64 << (63 - lz));
                return Some(self.word * 64 + lz);
            }
            if self.word + 1 >= words {
                return None;
            }
            self.word += 1;
            self.current = self.load(self.word);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_is_clear_and_sized() {
        let b = Bitfield::new(10).unwrap();
        assert_eq!(b.as_bytes(), &[0, 0]);
        assert_eq!(b.len(), 10);
        assert!(b.none());
        assert!(!b.all());
        assert_eq!(b.count_zeros(), 10);
        let e = Bitfield::new(0).unwrap();
        assert!(e.is_empty() && e.all() && e.none());
        assert!(e.as_bytes().is_empty());
    }

    #[test]
    fn too_long_is_refused() {
        assert_eq!(
            Bitfield::new(BITS_MAX + 1),
            Err(BitfieldError::TooLong {
                len: BITS_MAX + 1,
                max: BITS_MAX
            })
        );
        assert!(matches!(
            Bitfield::from_bytes(&[], BITS_MAX + 1),
            Err(BitfieldError::TooLong { .. })
        ));
    }

    #[test]
    fn wire_bit_order_is_high_bit_first() {
        let mut b = Bitfield::new(12).unwrap();
        b.set(0).unwrap();
        b.set(9).unwrap();
        assert_eq!(b.as_bytes(), &[0x80, 0x40]);
        let p = Bitfield::from_bytes(&[0x01, 0x10], 12).unwrap();
        assert!(p.get(7) && p.get(11));
        assert_eq!(p.count_ones(), 2);
    }

    #[test]
    fn wrong_byte_length_is_refused() {
        assert_eq!(
            Bitfield::from_bytes(&[0, 0, 0], 12),
            Err(BitfieldError::WrongByteLength {
                len: 12,
                expected: 2,
                found: 3
            })
        );
        assert!(matches!(
            Bitfield::from_bytes(&[0], 12),
            Err(BitfieldError::WrongByteLength { found: 1, .. })
        ));
        assert!(Bitfield::from_bytes(&[], 0).is_ok());
        assert!(Bitfield::from_bytes(&[0], 0).is_err());
    }

    #[test]
    fn spare_bits_are_refused() {
        // 12 bits: the low 4 bits of byte 1 are spare.
        assert_eq!(
            Bitfield::from_bytes(&[0xFF, 0xF1], 12),
            Err(BitfieldError::SpareBitsSet {
                len: 12,
                last_byte: 0xF1
            })
        );
        assert!(Bitfield::from_bytes(&[0xFF, 0xF0], 12).unwrap().all());
        // A multiple of 8 has no spare bits.
        assert!(Bitfield::from_bytes(&[0xFF], 8).unwrap().all());
        assert!(Bitfield::from_bytes(&[0x80], 1).unwrap().all());
        assert!(Bitfield::from_bytes(&[0x40], 1).is_err());
    }

    #[test]
    fn set_clear_count_incrementally() {
        let mut b = Bitfield::new(70).unwrap();
        assert_eq!(b.set(69), Ok(true));
        assert_eq!(b.set(69), Ok(false));
        assert_eq!(b.set(0), Ok(true));
        assert_eq!(b.count_ones(), 2);
        assert_eq!(b.clear(69), Ok(true));
        assert_eq!(b.clear(69), Ok(false));
        assert_eq!(b.count_ones(), 1);
        assert_eq!(
            b.set(70),
            Err(BitfieldError::OutOfRange { index: 70, len: 70 })
        );
        assert!(b.clear(1000).is_err());
        assert!(!b.get(70));
        b.set_all();
        assert!(b.all());
        assert_eq!(b.count_ones(), 70);
        assert_eq!(b.as_bytes().last(), Some(&0xFC));
        b.clear_all();
        assert!(b.none());
        assert_eq!(Bitfield::full(9).unwrap().as_bytes(), &[0xFF, 0x80]);
    }

    #[test]
    fn iterators_match_get() {
        for len in [0usize, 1, 7, 8, 9, 63, 64, 65, 130, 200] {
            let mut b = Bitfield::new(len).unwrap();
            for i in (0..len).filter(|i| i % 3 == 0 || i % 7 == 1) {
                b.set(i).unwrap();
            }
            let ones: Vec<usize> = b.iter_ones().collect();
            let zeros: Vec<usize> = b.iter_zeros().collect();
            let want_ones: Vec<usize> = (0..len).filter(|&i| b.get(i)).collect();
            let want_zeros: Vec<usize> = (0..len).filter(|&i| !b.get(i)).collect();
            assert_eq!(ones, want_ones, "len {len}");
            assert_eq!(zeros, want_zeros, "len {len}");
            assert_eq!(ones.len(), b.count_ones());
        }
    }

    #[test]
    fn interesting_word_at_a_time() {
        let len = 150;
        let mut ours = Bitfield::new(len).unwrap();
        let mut theirs = Bitfield::new(len).unwrap();
        assert!(!Bitfield::interesting(&ours, &theirs));
        theirs.set(149).unwrap();
        assert!(Bitfield::interesting(&ours, &theirs));
        assert_eq!(Bitfield::count_interesting(&ours, &theirs), 1);
        ours.set(149).unwrap();
        assert!(!Bitfield::interesting(&ours, &theirs));
        theirs.set(3).unwrap();
        theirs.set(70).unwrap();
        assert_eq!(Bitfield::count_interesting(&ours, &theirs), 2);
        ours.set_all();
        assert!(!Bitfield::interesting(&ours, &theirs));
        assert_eq!(Bitfield::count_interesting(&ours, &theirs), 0);
    }
}
