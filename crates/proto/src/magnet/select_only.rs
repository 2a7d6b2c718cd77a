//! `so` (BEP 53, select only): which files of the torrent to download, as a
//! comma list of file indices and inclusive ranges, e.g. `0,2,4-6`.
//!
//! Entries are kept as written (not sorted or merged), each as an inclusive
//! `(first, last)` pair; a single index `i` is `(i, i)`.

use super::error::MagnetError;
use crate::limits;

/// Longest piece of a bad entry quoted back in an error, in characters.
const QUOTE_CHARS_MAX: usize = 64;

/// Parses a decoded `so` value.
pub(crate) fn parse(value: &str) -> Result<Vec<(u32, u32)>, MagnetError> {
    let mut ranges = Vec::new();
    for entry in value.split(',') {
        if ranges.len() >= limits::MAGNET_LIST_ITEMS_MAX {
            return Err(MagnetError::TooManyItems {
                what: "select-only entries (so)",
                max: limits::MAGNET_LIST_ITEMS_MAX,
            });
        }
        let (first, last) = match entry.split_once('-') {
            Some((a, b)) => (index(a, entry)?, index(b, entry)?),
            None => {
                let i = index(entry, entry)?;
                (i, i)
            }
        };
        if first > last {
            return Err(MagnetError::ReversedSelectOnly { first, last });
        }
        ranges.push((first, last));
    }
    Ok(ranges)
}

/// Writes ranges back in the form [`parse`] reads.
pub(crate) fn format_into(out: &mut String, ranges: &[(u32, u32)]) {
    for (n, (first, last)) in ranges.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(&first.to_string());
        if first != last {
            out.push('-');
            out.push_str(&last.to_string());
        }
    }
}

/// One file index: ASCII digits only (no sign, no spaces), fitting in `u32`.
fn index(digits: &str, entry: &str) -> Result<u32, MagnetError> {
    let bad = || MagnetError::BadSelectOnly {
        entry: entry.chars().take(QUOTE_CHARS_MAX).collect(),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits.parse::<u32>().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(entry: &str) -> Result<Vec<(u32, u32)>, MagnetError> {
        Err(MagnetError::BadSelectOnly {
            entry: entry.into(),
        })
    }

    #[test]
    fn indices_and_ranges() {
        assert_eq!(parse("0,2,4-6").unwrap(), vec![(0, 0), (2, 2), (4, 6)]);
        assert_eq!(parse("7").unwrap(), vec![(7, 7)]);
        assert_eq!(parse("3-3").unwrap(), vec![(3, 3)]);
        assert_eq!(parse("007").unwrap(), vec![(7, 7)]);
        assert_eq!(parse("4294967295").unwrap(), vec![(u32::MAX, u32::MAX)]);
        // Kept as written: not sorted, not merged.
        assert_eq!(parse("5,1-2,1").unwrap(), vec![(5, 5), (1, 2), (1, 1)]);
    }

    #[test]
    fn format_round_trips() {
        for text in ["0,2,4-6", "7", "5,1-2,1", "0-4294967295"] {
            let mut out = String::new();
            format_into(&mut out, &parse(text).unwrap());
            assert_eq!(out, text);
        }
    }

    #[test]
    fn reversed_range() {
        assert_eq!(
            parse("0,6-4"),
            Err(MagnetError::ReversedSelectOnly { first: 6, last: 4 })
        );
    }

    #[test]
    fn malformed_entries() {
        assert_eq!(parse(""), bad(""));
        assert_eq!(parse("1,,2"), bad(""));
        assert_eq!(parse("1,"), bad(""));
        assert_eq!(parse("a"), bad("a"));
        assert_eq!(parse("+5"), bad("+5"));
        assert_eq!(parse("-5"), bad("-5"));
        assert_eq!(parse("5-"), bad("5-"));
        assert_eq!(parse("1-2-3"), bad("1-2-3"));
        assert_eq!(parse(" 1"), bad(" 1"));
        assert_eq!(parse("4294967296"), bad("4294967296"));
        assert_eq!(parse("١"), bad("١")); // Arabic-Indic digit one
    }

    #[test]
    fn too_many_entries() {
        let max = limits::MAGNET_LIST_ITEMS_MAX;
        let ok = vec!["1"; max].join(",");
        assert_eq!(parse(&ok).unwrap().len(), max);
        let over = vec!["1"; max + 1].join(",");
        assert_eq!(
            parse(&over),
            Err(MagnetError::TooManyItems {
                what: "select-only entries (so)",
                max
            })
        );
    }

    #[test]
    fn long_bad_entries_are_quoted_short() {
        let long = "x".repeat(1000);
        match parse(&long) {
            Err(MagnetError::BadSelectOnly { entry }) => {
                assert_eq!(entry.chars().count(), QUOTE_CHARS_MAX)
            }
            other => panic!("expected BadSelectOnly, got {other:?}"),
        }
    }
}
