//! Where the bytes of a torrent's stream lie: cuts a range of the stream (a
//! chunk of a piece) into spans of single files. Pure arithmetic, no IO; used by
//! the piece-hashing workers to plan their reads.

/// A file as the stream sees it: its length and whether it is a pad file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFile {
    pub length: u64,
    pub pad: bool,
}

/// One part of a range that lies in a single file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Index of the file in the list given to [`StreamMap::new`].
    pub file: usize,
    /// Offset inside that file.
    pub file_offset: u64,
    /// Bytes in this span (never 0).
    pub length: usize,
    /// Where the span starts inside the range.
    pub range_offset: usize,
    /// True for a pad file: the bytes are zeros and nothing is read.
    pub pad: bool,
}

/// The files' sum overflows 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the files' total length overflows 64 bits (at file {file})")]
pub struct TotalOverflow {
    pub file: usize,
}

/// The stream offsets of a list of files laid end to end.
#[derive(Debug, Clone)]
pub struct StreamMap {
    /// `ends[i]`: stream offset just past file `i`.
    ends: Vec<u64>,
    pad: Vec<bool>,
}

impl StreamMap {
    pub fn new(files: impl IntoIterator<Item = StreamFile>) -> Result<Self, TotalOverflow> {
        let mut ends = Vec::new();
        let mut pad = Vec::new();
        let mut end = 0u64;
        for (index, f) in files.into_iter().enumerate() {
            end = end
                .checked_add(f.length)
                .ok_or(TotalOverflow { file: index })?;
            ends.push(end);
            pad.push(f.pad);
        }
        Ok(Self { ends, pad })
    }

    /// Bytes in the whole stream.
    pub fn total(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Stream offset of file `index`'s first byte.
    fn start_of(&self, index: usize) -> u64 {
        match index.checked_sub(1) {
            Some(prev) => self.ends.get(prev).copied().unwrap_or(0),
            None => 0,
        }
    }

    /// Appends to `out` the spans of the stream range `[pos, pos + length)`,
    /// stopping after `spans_max` spans or at the end of the stream. Returns the
    /// bytes covered (less than `length` when a limit stopped it).
    pub fn spans(&self, pos: u64, length: usize, spans_max: usize, out: &mut Vec<Span>) -> usize {
        // First file whose end lies beyond `pos` (zero-length files are skipped,
        // since their end equals their start).
        let mut file = self.ends.partition_point(|&e| e <= pos);
        let mut covered = 0usize;
        let mut added = 0usize;
        while covered < length && added < spans_max {
            let Some(&end) = self.ends.get(file) else {
                break;
            };
            let at = pos + covered as u64;
            let start = self.start_of(file);
            let in_file = end - at;
            let want = (length - covered) as u64;
            let take = in_file.min(want) as usize;
            if take > 0 {
                out.push(Span {
                    file,
                    file_offset: at - start,
                    length: take,
                    range_offset: covered,
                    pad: self.pad.get(file).copied().unwrap_or(false),
                });
                covered += take;
                added += 1;
            }
            file += 1;
        }
        covered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(lengths: &[(u64, bool)]) -> StreamMap {
        StreamMap::new(
            lengths
                .iter()
                .map(|&(length, pad)| StreamFile { length, pad }),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn spans(m: &StreamMap, pos: u64, len: usize, max: usize) -> (usize, Vec<Span>) {
        let mut out = Vec::new();
        let n = m.spans(pos, len, max, &mut out);
        (n, out)
    }

    #[test]
    fn single_file_range() {
        let m = map(&[(100, false)]);
        assert_eq!(m.total(), 100);
        let (n, s) = spans(&m, 10, 20, 16);
        assert_eq!(n, 20);
        assert_eq!(
            s,
            vec![Span {
                file: 0,
                file_offset: 10,
                length: 20,
                range_offset: 0,
                pad: false
            }]
        );
    }

    #[test]
    fn range_crosses_files_and_skips_empty_ones() {
        let m = map(&[(10, false), (0, false), (5, true), (0, false), (20, false)]);
        let (n, s) = spans(&m, 8, 10, 16);
        assert_eq!(n, 10);
        let got: Vec<(usize, u64, usize, usize, bool)> = s
            .iter()
            .map(|s| (s.file, s.file_offset, s.length, s.range_offset, s.pad))
            .collect();
        assert_eq!(
            got,
            vec![(0, 8, 2, 0, false), (2, 0, 5, 2, true), (4, 0, 3, 7, false)]
        );
    }

    #[test]
    fn range_starting_on_a_boundary() {
        let m = map(&[(10, false), (10, false)]);
        let (_, s) = spans(&m, 10, 5, 16);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].file, s[0].file_offset), (1, 0));
    }

    #[test]
    fn span_limit_stops_early() {
        let m = map(&[(1, false); 10]);
        let (n, s) = spans(&m, 2, 8, 3);
        assert_eq!(n, 3);
        assert_eq!(s.len(), 3);
        assert_eq!(s[2].file, 4);
        assert_eq!(s[2].range_offset, 2);
    }

    #[test]
    fn range_past_the_end_is_cut() {
        let m = map(&[(10, false)]);
        assert_eq!(spans(&m, 5, 100, 16).0, 5);
        assert_eq!(spans(&m, 10, 100, 16).0, 0);
        assert_eq!(spans(&m, 500, 1, 16).0, 0);
        let empty = map(&[]);
        assert_eq!(empty.total(), 0);
        assert_eq!(spans(&empty, 0, 1, 16).0, 0);
    }

    #[test]
    fn overflow_is_refused() {
        let r = StreamMap::new([
            StreamFile {
                length: u64::MAX,
                pad: false,
            },
            StreamFile {
                length: 1,
                pad: false,
            },
        ]);
        assert_eq!(r.err(), Some(TotalOverflow { file: 1 }));
    }
}
