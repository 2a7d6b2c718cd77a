//! Multi-buffer SHA-1: several independent messages hashed side by side on one
//! thread.
//!
//! With the CPU's SHA extensions (SHA-NI) one SHA-1 stream is limited by the
//! latency of its chain of dependent round instructions, not by the SHA unit's
//! throughput. Running the rounds of two or four messages interleaved lets the
//! CPU overlap those chains. This module holds that interleaved compression
//! (x86-64 only, chosen at run time) and a portable fallback that compresses
//! each lane in turn with the `sha1` crate. Pure: bytes in, digests out.
//!
//! Boundary: lanes advance together, so every update gives each lane the same
//! number of bytes (pieces of one torrent share one length). Messages of
//! different lengths go through [`sha1_lanes`], which hashes them one by one.

use super::SHA1_BYTES;

/// SHA-1 block size in bytes.
const BLOCK_BYTES: usize = 64;

/// Most lanes a [`Sha1Lanes`] may have; beyond this the registers spill and
/// interleaving stops paying.
pub const LANES_MAX: usize = 8;

/// Longest message SHA-1 can encode the length of, in bytes (2^64 bits).
const MESSAGE_BYTES_MAX: u64 = u64::MAX / 8;

/// SHA-1 initial hash value (FIPS 180-4, 5.3.1).
const H0: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// What an update to a [`Sha1Lanes`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultiError {
    /// The lanes were given different numbers of bytes in one update.
    #[error("lane {lane} got {found} bytes in one update but lane 0 got {expected}")]
    LaneLengthMismatch {
        /// Index of the first lane whose length differs.
        lane: usize,
        /// Bytes given to lane 0.
        expected: usize,
        /// Bytes given to `lane`.
        found: usize,
    },
    /// The messages would grow past the longest length SHA-1 can encode.
    #[error("message would reach {total} bytes, over the SHA-1 limit of {max} bytes")]
    MessageTooLong {
        /// Length the update would have reached (saturated), in bytes.
        total: u64,
        /// Longest message allowed, in bytes.
        max: u64,
    },
}

/// Whether this CPU runs the interleaved SHA-NI compression (otherwise the
/// portable fallback is used, with the same results).
pub fn multi_buffer_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse2")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// SHA-1 of `N` messages hashed side by side. Up to [`LANES_MAX`] lanes use
/// the interleaved path; more lanes use the fallback, one lane at a time.
///
/// Messages of one length are interleaved; if the lengths differ, each message
/// is hashed alone with [`super::sha1`] (same digests, no speed-up).
pub fn sha1_lanes<const N: usize>(messages: [&[u8]; N]) -> [[u8; SHA1_BYTES]; N] {
    let mut lanes = Sha1Lanes::<N>::new();
    match lanes.update_lanes(messages) {
        Ok(()) => lanes.finish(),
        Err(_) => messages.map(super::sha1),
    }
}

/// SHA-1 of two messages hashed side by side; see [`sha1_lanes`].
pub fn sha1_x2(a: &[u8], b: &[u8]) -> ([u8; SHA1_BYTES], [u8; SHA1_BYTES]) {
    let [da, db] = sha1_lanes([a, b]);
    (da, db)
}

/// Streaming SHA-1 of `N` messages of equal length, hashed side by side.
///
/// Each [`update_lanes`](Self::update_lanes) gives every lane the same number
/// of bytes; any number, as each lane buffers a partial 64-byte block.
#[derive(Clone)]
pub struct Sha1Lanes<const N: usize> {
    /// Chaining value of each lane.
    state: [[u32; 5]; N],
    /// Partial block of each lane; the first `buffered` bytes are live.
    buf: [[u8; BLOCK_BYTES]; N],
    /// Bytes live in each lane's `buf`, always below [`BLOCK_BYTES`].
    buffered: usize,
    /// Bytes fed to each lane so far.
    len: u64,
    /// Whether to use the interleaved SHA-NI compression.
    simd: bool,
}

/// Two lanes: two pieces hashed side by side.
pub type Sha1x2 = Sha1Lanes<2>;
/// Four lanes.
pub type Sha1x4 = Sha1Lanes<4>;

impl<const N: usize> Default for Sha1Lanes<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> std::fmt::Debug for Sha1Lanes<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sha1Lanes")
            .field("lanes", &N)
            .field("len", &self.len)
            .field("simd", &self.simd)
            .finish_non_exhaustive()
    }
}

impl<const N: usize> Sha1Lanes<N> {
    /// Lanes that have seen no bytes, using SHA-NI when the CPU has it.
    pub fn new() -> Self {
        Self::with_simd(multi_buffer_available())
    }

    /// Lanes that use the interleaved SHA-NI path only if `simd` is true and
    /// the CPU supports it (tests force the fallback with `false`).
    fn with_simd(simd: bool) -> Self {
        Self {
            state: [H0; N],
            buf: [[0; BLOCK_BYTES]; N],
            buffered: 0,
            len: 0,
            simd: simd && N <= LANES_MAX && multi_buffer_available(),
        }
    }

    /// Feeds `lanes[i]` to lane `i`. All must have the same length; otherwise
    /// nothing is fed and the mismatch is returned.
    pub fn update_lanes(&mut self, lanes: [&[u8]; N]) -> Result<(), MultiError> {
        let Some(first) = lanes.first() else {
            return Ok(());
        };
        let n = first.len();
        if let Some((lane, found)) = lanes
            .iter()
            .map(|l| l.len())
            .enumerate()
            .find(|&(_, len)| len != n)
        {
            return Err(MultiError::LaneLengthMismatch {
                lane,
                expected: n,
                found,
            });
        }
        let total = self.len.saturating_add(n as u64);
        if total > MESSAGE_BYTES_MAX {
            return Err(MultiError::MessageTooLong {
                total,
                max: MESSAGE_BYTES_MAX,
            });
        }
        self.len = total;

        let mut rest = lanes;
        if self.buffered > 0 {
            let take = (BLOCK_BYTES - self.buffered).min(n);
            for (buf, lane) in self.buf.iter_mut().zip(rest.iter_mut()) {
                let (head, tail) = lane.split_at(take);
                buf[self.buffered..self.buffered + take].copy_from_slice(head);
                *lane = tail;
            }
            self.buffered += take;
            if self.buffered < BLOCK_BYTES {
                return Ok(());
            }
            let blocks: [&[u8]; N] = std::array::from_fn(|i| self.buf[i].as_slice());
            compress(self.simd, &mut self.state, blocks);
            self.buffered = 0;
        }
        let remaining = rest.first().map_or(0, |l| l.len());
        let whole = remaining - remaining % BLOCK_BYTES;
        let blocks: [&[u8]; N] = rest.map(|l| &l[..whole]);
        compress(self.simd, &mut self.state, blocks);
        for (buf, lane) in self.buf.iter_mut().zip(rest) {
            buf[..remaining - whole].copy_from_slice(&lane[whole..]);
        }
        self.buffered = remaining - whole;
        Ok(())
    }

    /// The digest of each lane (FIPS 180-4 padding: 0x80, zeros, then the
    /// length in bits as a big-endian u64 ending a block).
    pub fn finish(mut self) -> [[u8; SHA1_BYTES]; N] {
        let bits = self.len.wrapping_mul(8).to_be_bytes();
        // One padding block if the 0x80 byte and the 8-byte length fit after
        // the buffered bytes, else two.
        let pad_len = if self.buffered < BLOCK_BYTES - 8 {
            BLOCK_BYTES
        } else {
            2 * BLOCK_BYTES
        };
        let mut pads = [[0u8; 2 * BLOCK_BYTES]; N];
        for (pad, buf) in pads.iter_mut().zip(self.buf.iter()) {
            pad[..self.buffered].copy_from_slice(&buf[..self.buffered]);
            pad[self.buffered] = 0x80;
            pad[pad_len - 8..pad_len].copy_from_slice(&bits);
        }
        let blocks: [&[u8]; N] = std::array::from_fn(|i| &pads[i][..pad_len]);
        compress(self.simd, &mut self.state, blocks);
        self.state.map(|words| {
            let mut digest = [0u8; SHA1_BYTES];
            for (out, word) in digest.chunks_exact_mut(4).zip(words) {
                out.copy_from_slice(&word.to_be_bytes());
            }
            digest
        })
    }
}

impl Sha1Lanes<2> {
    /// Feeds `a` to lane 0 and `b` to lane 1; they must have the same length.
    pub fn update(&mut self, a: &[u8], b: &[u8]) -> Result<(), MultiError> {
        self.update_lanes([a, b])
    }
}

/// Compresses the whole 64-byte blocks of each lane; every lane has the same
/// number of bytes, a multiple of 64 (callers guarantee it; any excess beyond
/// the shortest lane's whole blocks is ignored).
fn compress<const N: usize>(simd: bool, state: &mut [[u32; 5]; N], blocks: [&[u8]; N]) {
    let count = blocks.iter().map(|b| b.len()).min().unwrap_or(0) / BLOCK_BYTES;
    if count == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: `simd` is only true when `multi_buffer_available()` saw the
        // sha, sse2, ssse3 and sse4.1 features on this CPU, which is all the
        // target features the function enables.
        unsafe { x86::compress_lanes(state, blocks, count) };
        return;
    }
    let _ = simd;
    compress_fallback(state, blocks, count);
}

/// Portable path: each lane compressed in turn by the `sha1` crate.
fn compress_fallback<const N: usize>(state: &mut [[u32; 5]; N], blocks: [&[u8]; N], count: usize) {
    for (lane_state, lane) in state.iter_mut().zip(blocks) {
        for block in lane.chunks_exact(BLOCK_BYTES).take(count) {
            let mut one = [0u8; BLOCK_BYTES];
            one.copy_from_slice(block);
            sha1::block_api::compress(lane_state, &[one]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The interleaved SHA-NI compression of N lanes.

    use core::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_extract_epi32, _mm_loadu_si128, _mm_set_epi32, _mm_set_epi64x,
        _mm_sha1msg1_epu32, _mm_sha1msg2_epu32, _mm_sha1nexte_epu32, _mm_sha1rnds4_epu32,
        _mm_shuffle_epi8, _mm_xor_si128,
    };

    use super::BLOCK_BYTES;

    /// Compresses blocks `0..count` of every lane into that lane's state.
    ///
    /// Register layout (the SHA extensions' convention): `abcd` holds A in
    /// the top 32 bits down to D in the bottom; `e` holds E (or E plus a
    /// message word) in the top 32 bits. A message group holds four schedule
    /// words W[4g..4g+4], W[4g] on top. Each group of four rounds is done for
    /// all lanes before the next, so the lanes' dependency chains interleave.
    ///
    /// # Safety
    /// The CPU must support sha, sse2, ssse3 and sse4.1. `count` is clamped
    /// to the shortest lane's whole blocks, so no read leaves the slices.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    pub(super) unsafe fn compress_lanes<const N: usize>(
        state: &mut [[u32; 5]; N],
        blocks: [&[u8]; N],
        count: usize,
    ) {
        let count = count.min(
            blocks
                .iter()
                .map(|b| b.len() / BLOCK_BYTES)
                .min()
                .unwrap_or(0),
        );
        // Reverses the 16 bytes of a register: turns four big-endian words in
        // memory order into W[0] on top ... W[3] at the bottom.
        let reverse = _mm_set_epi64x(0x0001_0203_0405_0607, 0x0809_0a0b_0c0d_0e0f);
        let mut abcd: [__m128i; N] = std::array::from_fn(|l| {
            _mm_set_epi32(
                w(state[l][0]),
                w(state[l][1]),
                w(state[l][2]),
                w(state[l][3]),
            )
        });
        let mut e: [__m128i; N] = std::array::from_fn(|l| _mm_set_epi32(w(state[l][4]), 0, 0, 0));

        for k in 0..count {
            let start = k * BLOCK_BYTES;
            // In bounds: every lane holds at least `count` blocks.
            let block: [&[u8]; N] = std::array::from_fn(|l| &blocks[l][start..start + BLOCK_BYTES]);
            let mut msg: [[__m128i; 4]; N] = std::array::from_fn(|l| {
                std::array::from_fn(|g| {
                    // SAFETY: `block[l]` is exactly 64 bytes long (taken with
                    // `get(start..start + 64)` above) and g < 4, so the 16
                    // bytes at 16 * g are in bounds; `loadu` has no alignment
                    // requirement.
                    let v = unsafe { _mm_loadu_si128(block[l].as_ptr().add(16 * g).cast()) };
                    _mm_shuffle_epi8(v, reverse)
                })
            });
            let abcd_in = abcd;
            let e_in = e;
            // ABCD before the latest rounds, whose A (rotated) is the next E.
            let mut prev = abcd;

            macro_rules! group {
                ($g:literal, $f:literal) => {
                    for l in 0..N {
                        let words = if $g < 4 {
                            msg[l][$g % 4]
                        } else {
                            // W[t] = rotl1(W[t-3] ^ W[t-8] ^ W[t-14] ^ W[t-16]).
                            let x = _mm_sha1msg1_epu32(msg[l][$g % 4], msg[l][($g + 1) % 4]);
                            let x = _mm_xor_si128(x, msg[l][($g + 2) % 4]);
                            let x = _mm_sha1msg2_epu32(x, msg[l][($g + 3) % 4]);
                            msg[l][$g % 4] = x;
                            x
                        };
                        let e_words = if $g == 0 {
                            _mm_add_epi32(e[l], words)
                        } else {
                            _mm_sha1nexte_epu32(prev[l], words)
                        };
                        prev[l] = abcd[l];
                        abcd[l] = _mm_sha1rnds4_epu32(abcd[l], e_words, $f);
                    }
                };
            }
            group!(0, 0);
            group!(1, 0);
            group!(2, 0);
            group!(3, 0);
            group!(4, 0);
            group!(5, 1);
            group!(6, 1);
            group!(7, 1);
            group!(8, 1);
            group!(9, 1);
            group!(10, 2);
            group!(11, 2);
            group!(12, 2);
            group!(13, 2);
            group!(14, 2);
            group!(15, 3);
            group!(16, 3);
            group!(17, 3);
            group!(18, 3);
            group!(19, 3);
            for l in 0..N {
                e[l] = _mm_sha1nexte_epu32(prev[l], e_in[l]);
                abcd[l] = _mm_add_epi32(abcd[l], abcd_in[l]);
            }
        }

        for l in 0..N {
            state[l] = [
                _mm_extract_epi32(abcd[l], 3) as u32,
                _mm_extract_epi32(abcd[l], 2) as u32,
                _mm_extract_epi32(abcd[l], 1) as u32,
                _mm_extract_epi32(abcd[l], 0) as u32,
                _mm_extract_epi32(e[l], 3) as u32,
            ];
        }
    }

    /// A state word as the signed lane type the set intrinsics take.
    #[inline(always)]
    fn w(x: u32) -> i32 {
        x as i32
    }
}

#[cfg(test)]
mod tests {
    use super::super::sha1;
    use super::*;

    /// Deterministic pseudo-random bytes (xorshift32) from `seed`.
    fn bytes(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect()
    }

    const LENGTHS: [usize; 14] = [
        0,
        1,
        55,
        56,
        63,
        64,
        65,
        119,
        120,
        128,
        1000,
        16 * 1024,
        1024 * 1024 + 3,
        4097,
    ];

    #[test]
    fn one_shot_lanes_match_single_stream() {
        for (i, &len) in LENGTHS.iter().enumerate() {
            let a = bytes(len, 2 * i as u32 + 1);
            let b = bytes(len, 2 * i as u32 + 2);
            assert_eq!(sha1_x2(&a, &b), (sha1(&a), sha1(&b)), "len {len}");
            let c = bytes(len, 7 * i as u32 + 3);
            let d = bytes(len, 7 * i as u32 + 4);
            assert_eq!(
                sha1_lanes([&a[..], &b, &c, &d]),
                [sha1(&a), sha1(&b), sha1(&c), sha1(&d)],
                "len {len}"
            );
            assert_eq!(sha1_lanes([&a[..]]), [sha1(&a)], "len {len}");
        }
        // Eight lanes, the most that take the interleaved path.
        for len in [0, 55, 64, 1000, 70_000] {
            let msgs: Vec<Vec<u8>> = (0..8).map(|i| bytes(len, 40 + i)).collect();
            let refs: [&[u8]; 8] = std::array::from_fn(|i| msgs[i].as_slice());
            assert_eq!(Sha1Lanes::<8>::new().simd, multi_buffer_available());
            assert_eq!(sha1_lanes(refs), refs.map(sha1), "len {len}");
        }
    }

    #[test]
    fn known_vectors_in_both_lanes() {
        let abc = sha1(b"abc");
        assert_eq!(sha1_x2(b"abc", b"abc"), (abc, abc));
        let million = vec![b'a'; 1_000_000];
        let (x, y) = sha1_x2(&million, &million);
        let hex: String = x.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
        assert_eq!(x, y);
    }

    #[test]
    fn unequal_lengths_are_hashed_one_by_one() {
        let a = bytes(1000, 5);
        let b = bytes(999, 6);
        assert_eq!(sha1_x2(&a, &b), (sha1(&a), sha1(&b)));
        assert_eq!(sha1_x2(b"", &b), (sha1(b""), sha1(&b)));
    }

    /// Feeds `a` and `b` in chunks of the given sizes (cycled) and checks the
    /// digests against the single-stream ones.
    fn streaming_matches(simd: bool, len: usize, splits: &[usize]) {
        let a = bytes(len, 11);
        let b = bytes(len, 12);
        let mut h = Sha1x2::with_simd(simd);
        let mut at = 0;
        for &step in splits.iter().cycle() {
            if at >= len {
                break;
            }
            let end = (at + step).min(len);
            h.update(&a[at..end], &b[at..end]).unwrap();
            at = end;
        }
        assert_eq!(h.finish(), [sha1(&a), sha1(&b)], "simd {simd} len {len}");
    }

    #[test]
    fn streaming_odd_splits_equal_one_shot() {
        let splits: [&[usize]; 5] = [&[1], &[63, 1, 64, 65], &[7, 200, 3], &[4096], &[0, 5, 129]];
        for simd in [true, false] {
            for &len in &[0, 1, 63, 64, 65, 200, 1000, 20_000] {
                for s in splits {
                    streaming_matches(simd, len, s);
                }
            }
        }
    }

    #[test]
    fn fallback_path_matches_single_stream() {
        for (i, &len) in LENGTHS.iter().enumerate() {
            let a = bytes(len, 100 + i as u32);
            let b = bytes(len, 200 + i as u32);
            let mut h = Sha1x2::with_simd(false);
            assert!(!h.simd);
            h.update(&a, &b).unwrap();
            assert_eq!(h.finish(), [sha1(&a), sha1(&b)], "len {len}");
        }
        // More lanes than LANES_MAX always take the fallback.
        let msgs: Vec<Vec<u8>> = (0..9).map(|i| bytes(300, i)).collect();
        let refs: [&[u8]; 9] = std::array::from_fn(|i| msgs[i].as_slice());
        let lanes = Sha1Lanes::<9>::new();
        assert!(!lanes.simd);
        assert_eq!(sha1_lanes(refs), refs.map(sha1));
    }

    #[test]
    fn dispatch_follows_the_cpu() {
        assert_eq!(Sha1x2::new().simd, multi_buffer_available());
        assert_eq!(Sha1x4::default().simd, multi_buffer_available());
        assert!(!Sha1x2::with_simd(false).simd);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            multi_buffer_available(),
            std::arch::is_x86_feature_detected!("sha")
                && std::arch::is_x86_feature_detected!("sse4.1")
                && std::arch::is_x86_feature_detected!("ssse3")
        );
        #[cfg(not(target_arch = "x86_64"))]
        assert!(!multi_buffer_available());
        assert!(format!("{:?}", Sha1x2::new()).contains("Sha1Lanes"));
    }

    #[test]
    fn zero_lanes_do_nothing() {
        let out: [[u8; SHA1_BYTES]; 0] = sha1_lanes([]);
        assert_eq!(out.len(), 0);
    }

    #[test]
    fn mismatched_update_is_refused_and_changes_nothing() {
        let mut h = Sha1x2::new();
        h.update(b"ab", b"cd").unwrap();
        assert_eq!(
            h.update(b"xyz", b"x"),
            Err(MultiError::LaneLengthMismatch {
                lane: 1,
                expected: 3,
                found: 1
            })
        );
        h.update(b"c", b"e").unwrap();
        assert_eq!(h.finish(), [sha1(b"abc"), sha1(b"cde")]);
        let err = MultiError::LaneLengthMismatch {
            lane: 1,
            expected: 3,
            found: 1,
        };
        assert!(err.to_string().contains("lane 1 got 1 bytes"));
    }

    #[test]
    fn overlong_message_is_refused() {
        let mut h = Sha1x2::new();
        h.len = MESSAGE_BYTES_MAX - 1;
        h.update(b"a", b"b").unwrap();
        let err = h.update(b"a", b"b").unwrap_err();
        assert_eq!(
            err,
            MultiError::MessageTooLong {
                total: MESSAGE_BYTES_MAX + 1,
                max: MESSAGE_BYTES_MAX
            }
        );
        assert!(err.to_string().contains("over the SHA-1 limit"));
        assert_eq!(h.len, MESSAGE_BYTES_MAX);
    }
}
