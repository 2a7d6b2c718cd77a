//! Layout of one torrent's content: maps pieces and blocks to file spans, and
//! file offsets back to pieces. Pure arithmetic over the file lengths; no IO.
//!
//! The content is one byte stream: the files concatenated in order, pad files
//! included. Pieces cut that stream every `piece_length` bytes; the last piece
//! may be shorter. Zero-length files take no bytes and never show up in spans.
//!
//! Lookups run on the hot path (every block sent), so they binary-search the
//! file start offsets and allocate nothing.

use std::iter::FusedIterator;
use std::ops::Range;

use thiserror::Error;

use super::FileExtent;
use crate::limits::{FILES_PER_TORRENT_MAX, PIECES_PER_TORRENT_MAX};

/// Why a layout could not be built, or why a range could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LayoutError {
    #[error("piece length is 0")]
    PieceLengthZero,
    #[error("too many files: {count} (limit {limit})")]
    TooManyFiles { count: usize, limit: usize },
    #[error(
        "total length overflows u64 at file {file_index}: stream offset {offset} + file length {length}"
    )]
    TotalOverflow {
        file_index: usize,
        offset: u64,
        length: u64,
    },
    #[error("too many pieces: {count} (limit {limit})")]
    TooManyPieces { count: u64, limit: u64 },
    #[error("piece {piece} is out of range: the torrent has {num_pieces} pieces")]
    PieceOutOfRange { piece: u32, num_pieces: u32 },
    #[error(
        "block at offset {offset} with length {length} runs past the end of piece {piece} ({piece_size} bytes)"
    )]
    BlockPastPieceEnd {
        piece: u32,
        offset: u64,
        length: u64,
        piece_size: u64,
    },
}

/// A run of bytes inside one file that a requested piece or block covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpan {
    /// Index of the file in the torrent's file list.
    pub file_index: usize,
    /// Where the run starts inside that file.
    pub file_offset: u64,
    /// Length of the run in bytes (never 0).
    pub length: u64,
    /// The file is a pad file: not on disk, its bytes are zeros.
    pub pad: bool,
    /// Where the run starts inside the requested piece or block.
    pub buffer_offset: u64,
}

/// Piece and file geometry of one torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    piece_length: u64,
    total_length: u64,
    num_pieces: u32,
    files: Vec<FileExtent>,
    /// Stream offset where each file starts; nondecreasing, same length as `files`.
    offsets: Vec<u64>,
}

impl Layout {
    /// Builds the layout for `files` (in torrent order) cut into pieces of
    /// `piece_length` bytes.
    ///
    /// Refuses a zero piece length, more than [`FILES_PER_TORRENT_MAX`] files,
    /// a total length past `u64::MAX`, and more than [`PIECES_PER_TORRENT_MAX`]
    /// pieces. An empty stream (no files, or only zero-length ones) is accepted
    /// and has no pieces.
    pub fn new(piece_length: u64, files: &[FileExtent]) -> Result<Layout, LayoutError> {
        if piece_length == 0 {
            return Err(LayoutError::PieceLengthZero);
        }
        if files.len() > FILES_PER_TORRENT_MAX {
            return Err(LayoutError::TooManyFiles {
                count: files.len(),
                limit: FILES_PER_TORRENT_MAX,
            });
        }
        let mut offsets = Vec::with_capacity(files.len());
        let mut total: u64 = 0;
        for (file_index, file) in files.iter().enumerate() {
            offsets.push(total);
            total = total
                .checked_add(file.length)
                .ok_or(LayoutError::TotalOverflow {
                    file_index,
                    offset: total,
                    length: file.length,
                })?;
        }
        let pieces = total.div_ceil(piece_length);
        let num_pieces = u32::try_from(pieces)
            .ok()
            .filter(|_| pieces <= PIECES_PER_TORRENT_MAX)
            .ok_or(LayoutError::TooManyPieces {
                count: pieces,
                limit: PIECES_PER_TORRENT_MAX,
            })?;
        Ok(Layout {
            piece_length,
            total_length: total,
            num_pieces,
            files: files.to_vec(),
            offsets,
        })
    }

    /// Nominal piece length in bytes (every piece but the last has it).
    pub fn piece_length(&self) -> u64 {
        self.piece_length
    }

    /// Number of pieces: the total length divided by the piece length, rounded up.
    pub fn num_pieces(&self) -> u32 {
        self.num_pieces
    }

    /// Length of the whole stream in bytes, pad files included.
    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// Number of files, zero-length and pad files included.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// The extent of file `file`, or `None` past the last file.
    pub fn file(&self, file: usize) -> Option<FileExtent> {
        self.files.get(file).copied()
    }

    /// Stream offset where file `file` starts, or `None` past the last file.
    pub fn file_offset(&self, file: usize) -> Option<u64> {
        self.offsets.get(file).copied()
    }

    /// Stream offset where piece `piece` starts, or `None` if out of range.
    pub fn piece_offset(&self, piece: u32) -> Option<u64> {
        // piece < num_pieces, so piece * piece_length < total_length: no overflow.
        (piece < self.num_pieces).then(|| u64::from(piece) * self.piece_length)
    }

    /// Size of piece `piece` in bytes (the last one may be shorter), or `None`
    /// if out of range.
    pub fn piece_size(&self, piece: u32) -> Option<u64> {
        let start = self.piece_offset(piece)?;
        Some((self.total_length - start).min(self.piece_length))
    }

    /// The file runs that piece `piece` covers, in file order, skipping
    /// zero-length files. `buffer_offset` counts from the piece start. Yields
    /// nothing for a piece out of range.
    pub fn piece_spans(&self, piece: u32) -> Spans<'_> {
        match (self.piece_offset(piece), self.piece_size(piece)) {
            (Some(start), Some(size)) => self.spans(start, size),
            _ => self.spans(0, 0),
        }
    }

    /// The file runs that the block of `length` bytes at `offset_in_piece`
    /// inside piece `piece` covers. `buffer_offset` counts from the block
    /// start. A zero-length block inside the piece yields nothing.
    pub fn block_spans(
        &self,
        piece: u32,
        offset_in_piece: u64,
        length: u64,
    ) -> Result<Spans<'_>, LayoutError> {
        let (start, piece_size) = match (self.piece_offset(piece), self.piece_size(piece)) {
            (Some(start), Some(size)) => (start, size),
            _ => {
                return Err(LayoutError::PieceOutOfRange {
                    piece,
                    num_pieces: self.num_pieces,
                })
            }
        };
        let fits = offset_in_piece
            .checked_add(length)
            .is_some_and(|end| end <= piece_size);
        if !fits {
            return Err(LayoutError::BlockPastPieceEnd {
                piece,
                offset: offset_in_piece,
                length,
                piece_size,
            });
        }
        // start + offset_in_piece + length <= start + piece_size <= total_length.
        Ok(self.spans(start + offset_in_piece, length))
    }

    /// The piece holding byte `offset_in_file` of file `file_index`, and the
    /// byte's offset inside that piece. `None` for a file out of range or an
    /// offset at or past the file's end (so always for zero-length files).
    pub fn file_to_piece(&self, file_index: usize, offset_in_file: u64) -> Option<(u32, u64)> {
        let file = self.files.get(file_index)?;
        if offset_in_file >= file.length {
            return None;
        }
        // Below the file's end, hence below total_length: no overflow.
        let stream = self.offsets.get(file_index)? + offset_in_file;
        let piece = u32::try_from(stream / self.piece_length).ok()?;
        Some((piece, stream % self.piece_length))
    }

    /// The pieces that hold at least one byte of file `file_index`; an empty
    /// range (at the file's position) for a zero-length file, `None` for a file
    /// out of range.
    pub fn file_piece_range(&self, file_index: usize) -> Option<Range<u32>> {
        let file = self.files.get(file_index)?;
        let start = *self.offsets.get(file_index)?;
        let first = u32::try_from(start / self.piece_length)
            .ok()?
            .min(self.num_pieces);
        if file.length == 0 {
            return Some(first..first);
        }
        // start + length <= total_length, and the last piece index fits u32.
        let last = u32::try_from((start + file.length - 1) / self.piece_length).ok()?;
        Some(first..last.saturating_add(1))
    }

    /// Iterator over the file runs of stream bytes `start..start + length`;
    /// the caller guarantees that range lies within the stream.
    fn spans(&self, start: u64, length: u64) -> Spans<'_> {
        // The last file starting at or before `start`. With start < total it
        // is never zero-length: a zero-length file is followed by one that
        // starts at the same offset, unless it is last, and then it starts
        // at total.
        let file = self
            .offsets
            .partition_point(|&o| o <= start)
            .saturating_sub(1);
        Spans {
            layout: self,
            file,
            pos: start,
            end: start.saturating_add(length),
            base: start,
        }
    }
}

/// Iterator over the [`FileSpan`]s of a piece or block; see
/// [`Layout::piece_spans`] and [`Layout::block_spans`].
#[derive(Debug, Clone)]
pub struct Spans<'a> {
    layout: &'a Layout,
    /// Next file to look at.
    file: usize,
    /// Next stream offset to cover.
    pos: u64,
    /// Stream offset where the requested range ends.
    end: u64,
    /// Stream offset where the requested range starts.
    base: u64,
}

impl Iterator for Spans<'_> {
    type Item = FileSpan;

    fn next(&mut self) -> Option<FileSpan> {
        while self.pos < self.end {
            let index = self.file;
            let (Some(file), Some(&start)) =
                (self.layout.files.get(index), self.layout.offsets.get(index))
            else {
                break;
            };
            self.file += 1;
            if file.length == 0 {
                continue;
            }
            let Some(file_offset) = self.pos.checked_sub(start) else {
                break;
            };
            // start + length <= total_length: checked when the layout was built.
            let run_end = (start + file.length).min(self.end);
            if run_end <= self.pos {
                continue;
            }
            let span = FileSpan {
                file_index: index,
                file_offset,
                length: run_end - self.pos,
                pad: file.pad,
                buffer_offset: self.pos - self.base,
            };
            self.pos = run_end;
            return Some(span);
        }
        self.pos = self.end;
        None
    }
}

impl FusedIterator for Spans<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(length: u64) -> FileExtent {
        FileExtent { length, pad: false }
    }

    fn pad(length: u64) -> FileExtent {
        FileExtent { length, pad: true }
    }

    /// (file_index, file_offset, length, buffer_offset) of each span.
    fn tuples(spans: Spans<'_>) -> Vec<(usize, u64, u64, u64)> {
        spans
            .map(|s| (s.file_index, s.file_offset, s.length, s.buffer_offset))
            .collect()
    }

    fn piece(layout: &Layout, piece: u32) -> Vec<(usize, u64, u64, u64)> {
        tuples(layout.piece_spans(piece))
    }

    fn block(layout: &Layout, piece: u32, off: u64, len: u64) -> Vec<(usize, u64, u64, u64)> {
        match layout.block_spans(piece, off, len) {
            Ok(spans) => tuples(spans),
            Err(e) => panic!("block_spans({piece}, {off}, {len}): {e}"),
        }
    }

    fn layout(piece_length: u64, files: &[FileExtent]) -> Layout {
        match Layout::new(piece_length, files) {
            Ok(l) => l,
            Err(e) => panic!("Layout::new: {e}"),
        }
    }

    #[test]
    fn piece_length_zero_is_refused() {
        assert_eq!(Layout::new(0, &[f(10)]), Err(LayoutError::PieceLengthZero));
    }

    #[test]
    fn too_many_files_is_refused() {
        let files = vec![f(0); FILES_PER_TORRENT_MAX + 1];
        assert_eq!(
            Layout::new(16, &files),
            Err(LayoutError::TooManyFiles {
                count: FILES_PER_TORRENT_MAX + 1,
                limit: FILES_PER_TORRENT_MAX
            })
        );
    }

    #[test]
    fn too_many_pieces_is_refused() {
        assert_eq!(
            Layout::new(1, &[f(PIECES_PER_TORRENT_MAX + 1)]),
            Err(LayoutError::TooManyPieces {
                count: PIECES_PER_TORRENT_MAX + 1,
                limit: PIECES_PER_TORRENT_MAX
            })
        );
        // Past u32 as well: still an error, not a truncation.
        assert!(matches!(
            Layout::new(1, &[f(u64::MAX)]),
            Err(LayoutError::TooManyPieces { .. })
        ));
        assert_eq!(
            layout(1, &[f(PIECES_PER_TORRENT_MAX)]).num_pieces() as u64,
            PIECES_PER_TORRENT_MAX
        );
    }

    #[test]
    fn total_overflow_is_refused() {
        assert_eq!(
            Layout::new(1 << 40, &[f(u64::MAX), f(1)]),
            Err(LayoutError::TotalOverflow {
                file_index: 1,
                offset: u64::MAX,
                length: 1
            })
        );
        assert_eq!(
            Layout::new(1 << 62, &[f(u64::MAX - 5), f(0), f(5), f(1)]),
            Err(LayoutError::TotalOverflow {
                file_index: 3,
                offset: u64::MAX,
                length: 1
            })
        );
    }

    #[test]
    fn empty_streams_have_no_pieces() {
        for files in [&[][..], &[f(0)][..], &[f(0), pad(0), f(0)][..]] {
            let l = layout(16, files);
            assert_eq!(l.total_length(), 0);
            assert_eq!(l.num_pieces(), 0);
            assert_eq!(l.file_count(), files.len());
            assert_eq!(l.piece_size(0), None);
            assert_eq!(l.piece_offset(0), None);
            assert_eq!(piece(&l, 0), vec![]);
            assert_eq!(
                l.block_spans(0, 0, 0).map(tuples),
                Err(LayoutError::PieceOutOfRange {
                    piece: 0,
                    num_pieces: 0
                })
            );
            for i in 0..files.len() {
                assert_eq!(l.file_offset(i), Some(0));
                assert_eq!(l.file_to_piece(i, 0), None);
                assert_eq!(l.file_piece_range(i), Some(0..0));
            }
        }
    }

    #[test]
    fn piece_spanning_three_files() {
        let l = layout(10, &[f(4), f(3), f(8)]);
        assert_eq!(l.total_length(), 15);
        assert_eq!(l.num_pieces(), 2);
        assert_eq!(l.piece_length(), 10);
        assert_eq!(piece(&l, 0), vec![(0, 0, 4, 0), (1, 0, 3, 4), (2, 0, 3, 7)]);
        assert_eq!(piece(&l, 1), vec![(2, 3, 5, 0)]);
        assert_eq!(piece(&l, 2), vec![]);
        assert_eq!(l.file_offset(0), Some(0));
        assert_eq!(l.file_offset(1), Some(4));
        assert_eq!(l.file_offset(2), Some(7));
        assert_eq!(l.file_offset(3), None);
        assert_eq!(l.file(1), Some(f(3)));
        assert_eq!(l.file(3), None);
        assert_eq!(l.file_piece_range(0), Some(0..1));
        assert_eq!(l.file_piece_range(1), Some(0..1));
        assert_eq!(l.file_piece_range(2), Some(0..2));
        assert_eq!(l.file_piece_range(3), None);
        assert_eq!(l.file_to_piece(2, 2), Some((0, 9)));
        assert_eq!(l.file_to_piece(2, 3), Some((1, 0)));
        assert_eq!(l.file_to_piece(2, 7), Some((1, 4)));
        assert_eq!(l.file_to_piece(2, 8), None);
        assert_eq!(l.file_to_piece(3, 0), None);
    }

    #[test]
    fn zero_length_files_first_middle_last_and_consecutive() {
        let l = layout(4, &[f(0), f(5), f(0), f(0), f(5), f(0)]);
        assert_eq!(l.total_length(), 10);
        assert_eq!(l.num_pieces(), 3);
        assert_eq!(piece(&l, 0), vec![(1, 0, 4, 0)]);
        assert_eq!(piece(&l, 1), vec![(1, 4, 1, 0), (4, 0, 3, 1)]);
        assert_eq!(piece(&l, 2), vec![(4, 3, 2, 0)]);
        // A block that starts right where the empty files sit.
        assert_eq!(block(&l, 1, 1, 2), vec![(4, 0, 2, 0)]);
        assert_eq!(l.file_piece_range(0), Some(0..0));
        assert_eq!(l.file_piece_range(2), Some(1..1));
        assert_eq!(l.file_piece_range(3), Some(1..1));
        assert_eq!(l.file_piece_range(5), Some(2..2));
        assert_eq!(l.file_piece_range(1), Some(0..2));
        assert_eq!(l.file_piece_range(4), Some(1..3));
        assert_eq!(l.file_to_piece(0, 0), None);
        assert_eq!(l.file_to_piece(3, 0), None);
        assert_eq!(l.file_to_piece(4, 0), Some((1, 1)));
        assert_eq!(l.file_offset(2), Some(5));
        assert_eq!(l.file_offset(5), Some(10));
    }

    #[test]
    fn trailing_zero_length_file_after_an_exact_multiple() {
        let l = layout(4, &[f(8), f(0)]);
        assert_eq!(l.num_pieces(), 2);
        assert_eq!(l.file_piece_range(1), Some(2..2));
        assert_eq!(piece(&l, 1), vec![(0, 4, 4, 0)]);
    }

    #[test]
    fn last_piece_is_shorter() {
        let l = layout(32, &[f(100)]);
        assert_eq!(l.num_pieces(), 4);
        assert_eq!(l.piece_size(0), Some(32));
        assert_eq!(l.piece_size(2), Some(32));
        assert_eq!(l.piece_size(3), Some(4));
        assert_eq!(l.piece_size(4), None);
        assert_eq!(l.piece_offset(3), Some(96));
        assert_eq!(piece(&l, 3), vec![(0, 96, 4, 0)]);
        assert_eq!(block(&l, 3, 2, 2), vec![(0, 98, 2, 0)]);
        assert_eq!(
            l.block_spans(3, 2, 3).map(tuples),
            Err(LayoutError::BlockPastPieceEnd {
                piece: 3,
                offset: 2,
                length: 3,
                piece_size: 4
            })
        );
    }

    #[test]
    fn single_file_torrent() {
        let l = layout(16, &[f(40)]);
        assert_eq!(l.file_count(), 1);
        assert_eq!(piece(&l, 0), vec![(0, 0, 16, 0)]);
        assert_eq!(piece(&l, 1), vec![(0, 16, 16, 0)]);
        assert_eq!(piece(&l, 2), vec![(0, 32, 8, 0)]);
        assert_eq!(l.file_piece_range(0), Some(0..3));
        assert_eq!(l.file_to_piece(0, 39), Some((2, 7)));
    }

    #[test]
    fn block_starting_at_a_file_boundary() {
        let l = layout(10, &[f(4), f(3), f(8)]);
        assert_eq!(block(&l, 0, 4, 3), vec![(1, 0, 3, 0)]);
        assert_eq!(block(&l, 0, 4, 6), vec![(1, 0, 3, 0), (2, 0, 3, 3)]);
        assert_eq!(block(&l, 0, 7, 3), vec![(2, 0, 3, 0)]);
        assert_eq!(block(&l, 0, 3, 2), vec![(0, 3, 1, 0), (1, 0, 1, 1)]);
        assert_eq!(block(&l, 0, 0, 4), vec![(0, 0, 4, 0)]);
        assert_eq!(block(&l, 1, 0, 5), vec![(2, 3, 5, 0)]);
        // Zero-length block inside the piece, including at its end.
        assert_eq!(block(&l, 0, 4, 0), vec![]);
        assert_eq!(block(&l, 1, 5, 0), vec![]);
    }

    #[test]
    fn block_errors() {
        let l = layout(10, &[f(4), f(3), f(8)]);
        assert_eq!(
            l.block_spans(2, 0, 1).map(tuples),
            Err(LayoutError::PieceOutOfRange {
                piece: 2,
                num_pieces: 2
            })
        );
        assert_eq!(
            l.block_spans(u32::MAX, 0, 1).map(tuples),
            Err(LayoutError::PieceOutOfRange {
                piece: u32::MAX,
                num_pieces: 2
            })
        );
        assert_eq!(
            l.block_spans(0, 11, 0).map(tuples),
            Err(LayoutError::BlockPastPieceEnd {
                piece: 0,
                offset: 11,
                length: 0,
                piece_size: 10
            })
        );
        assert_eq!(
            l.block_spans(0, 9, 2).map(tuples),
            Err(LayoutError::BlockPastPieceEnd {
                piece: 0,
                offset: 9,
                length: 2,
                piece_size: 10
            })
        );
        assert!(l.block_spans(0, u64::MAX, u64::MAX).is_err());
        assert!(l.block_spans(0, 1, u64::MAX).is_err());
    }

    #[test]
    fn pad_files_are_marked() {
        let l = layout(8, &[f(5), pad(3), f(8), pad(0)]);
        let spans: Vec<FileSpan> = l.piece_spans(0).collect();
        assert_eq!(
            spans,
            vec![
                FileSpan {
                    file_index: 0,
                    file_offset: 0,
                    length: 5,
                    pad: false,
                    buffer_offset: 0
                },
                FileSpan {
                    file_index: 1,
                    file_offset: 0,
                    length: 3,
                    pad: true,
                    buffer_offset: 5
                },
            ]
        );
        assert_eq!(piece(&l, 1), vec![(2, 0, 8, 0)]);
        assert!(l.piece_spans(1).all(|s| !s.pad));
        let spans: Vec<FileSpan> = match l.block_spans(0, 4, 2) {
            Ok(s) => s.collect(),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            spans.iter().map(|s| s.pad).collect::<Vec<_>>(),
            vec![false, true]
        );
        assert_eq!(l.file_to_piece(1, 2), Some((0, 7)));
    }

    #[test]
    fn file_exactly_one_piece_long() {
        let l = layout(16, &[f(16), f(16), f(16)]);
        assert_eq!(l.num_pieces(), 3);
        for p in 0..3u32 {
            assert_eq!(piece(&l, p), vec![(p as usize, 0, 16, 0)]);
            assert_eq!(l.file_piece_range(p as usize), Some(p..p + 1));
            assert_eq!(l.piece_size(p), Some(16));
        }
        assert_eq!(l.file_to_piece(1, 0), Some((1, 0)));
        assert_eq!(l.file_to_piece(1, 15), Some((1, 15)));
        assert_eq!(l.file_to_piece(1, 16), None);
    }

    #[test]
    fn piece_length_not_a_power_of_two() {
        let l = layout(40_000, &[f(80_001), f(39_999), f(1)]);
        assert_eq!(l.total_length(), 120_001);
        assert_eq!(l.num_pieces(), 4);
        assert_eq!(piece(&l, 1), vec![(0, 40_000, 40_000, 0)]);
        assert_eq!(piece(&l, 2), vec![(0, 80_000, 1, 0), (1, 0, 39_999, 1)]);
        assert_eq!(piece(&l, 3), vec![(2, 0, 1, 0)]);
        assert_eq!(l.piece_size(3), Some(1));
        assert_eq!(l.file_piece_range(1), Some(2..3));
        assert_eq!(l.file_to_piece(2, 0), Some((3, 0)));

        let l = layout(3, &[f(1), f(1), f(1), f(1), f(1)]);
        assert_eq!(l.num_pieces(), 2);
        assert_eq!(piece(&l, 0), vec![(0, 0, 1, 0), (1, 0, 1, 1), (2, 0, 1, 2)]);
        assert_eq!(piece(&l, 1), vec![(3, 0, 1, 0), (4, 0, 1, 1)]);
        assert_eq!(l.file_to_piece(4, 0), Some((1, 1)));
        assert_eq!(l.file_piece_range(3), Some(1..2));
    }

    #[test]
    fn huge_sizes_near_u64_max() {
        let pl = 1u64 << 62;
        let l = layout(pl, &[f(u64::MAX - 10), f(10)]);
        assert_eq!(l.total_length(), u64::MAX);
        assert_eq!(l.num_pieces(), 4);
        assert_eq!(l.piece_size(3), Some(pl - 1));
        assert_eq!(
            piece(&l, 3),
            vec![(0, 3 * pl, pl - 11, 0), (1, 0, 10, pl - 11)]
        );
        assert_eq!(block(&l, 3, pl - 2, 1), vec![(1, 9, 1, 0)]);
        assert!(l.block_spans(3, pl - 1, 1).is_err());
        assert!(l.block_spans(3, u64::MAX, u64::MAX).is_err());
        assert!(l.block_spans(0, 0, u64::MAX).is_err());
        assert_eq!(l.file_to_piece(1, 9), Some((3, pl - 2)));
        assert_eq!(l.file_to_piece(1, u64::MAX), None);
        assert_eq!(l.file_piece_range(0), Some(0..4));
        assert_eq!(l.file_piece_range(1), Some(3..4));

        // The largest piece length: one piece holds everything.
        let l = layout(u64::MAX, &[f(u64::MAX)]);
        assert_eq!(l.num_pieces(), 1);
        assert_eq!(l.piece_size(0), Some(u64::MAX));
        assert_eq!(piece(&l, 0), vec![(0, 0, u64::MAX, 0)]);
        assert_eq!(l.file_to_piece(0, u64::MAX - 1), Some((0, u64::MAX - 1)));
        let l = layout(u64::MAX, &[f(5)]);
        assert_eq!(l.piece_size(0), Some(5));
    }

    #[test]
    fn spans_cover_the_stream_once_in_order() {
        let mut rng = crate::rng::Rng::new(0x9E37_79B9_7F4A_7C15);
        for _round in 0..500 {
            let piece_length = 1 + rng.below(40);
            let count = rng.below(10) as usize;
            let files: Vec<FileExtent> = (0..count)
                .map(|_| {
                    let length = match rng.below(4) {
                        0 => 0,
                        1 => 1 + rng.below(3),
                        2 => piece_length * (1 + rng.below(2)),
                        _ => rng.below(100),
                    };
                    FileExtent {
                        length,
                        pad: rng.below(5) == 0,
                    }
                })
                .collect();
            let l = layout(piece_length, &files);

            // Every byte of the stream as (file, offset in file), in order.
            let expected: Vec<(usize, u64)> = files
                .iter()
                .enumerate()
                .flat_map(|(i, x)| (0..x.length).map(move |o| (i, o)))
                .collect();
            assert_eq!(l.total_length(), expected.len() as u64);

            let mut seen: Vec<(usize, u64)> = Vec::new();
            let mut touched: Vec<Vec<u32>> = vec![Vec::new(); files.len()];
            for p in 0..l.num_pieces() {
                let size = l.piece_size(p).unwrap_or(0);
                let mut covered = 0;
                for s in l.piece_spans(p) {
                    let x = files[s.file_index];
                    assert!(s.length > 0);
                    assert_eq!(s.buffer_offset, covered);
                    assert_eq!(s.pad, x.pad);
                    assert!(s.file_offset + s.length <= x.length);
                    covered += s.length;
                    touched[s.file_index].push(p);
                    for o in s.file_offset..s.file_offset + s.length {
                        assert_eq!(
                            l.file_to_piece(s.file_index, o),
                            Some((p, seen.len() as u64 % piece_length))
                        );
                        seen.push((s.file_index, o));
                    }
                }
                assert_eq!(covered, size);
            }
            assert_eq!(seen, expected);

            for (i, pieces) in touched.iter().enumerate() {
                let range = l.file_piece_range(i).unwrap_or(0..0);
                assert_eq!(range.clone().collect::<Vec<_>>(), *pieces, "file {i}");
            }

            // Random blocks: their spans are the matching slice of the stream.
            for _ in 0..20 {
                if l.num_pieces() == 0 {
                    break;
                }
                let p = rng.below(u64::from(l.num_pieces())) as u32;
                let size = l.piece_size(p).unwrap_or(0);
                let off = rng.below(size + 1);
                let len = rng.below(size - off + 1);
                let base = (u64::from(p) * piece_length + off) as usize;
                let mut got = Vec::new();
                let mut covered = 0;
                for s in block_iter(&l, p, off, len) {
                    assert_eq!(s.buffer_offset, covered);
                    covered += s.length;
                    got.extend(
                        (s.file_offset..s.file_offset + s.length).map(|o| (s.file_index, o)),
                    );
                }
                assert_eq!(got, expected[base..base + len as usize]);
                assert!(l.block_spans(p, off, size - off + 1).is_err());
            }
        }
    }

    fn block_iter(l: &Layout, p: u32, off: u64, len: u64) -> Spans<'_> {
        match l.block_spans(p, off, len) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }
}
