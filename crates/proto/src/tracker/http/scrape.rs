//! The body of an HTTP scrape answer (BEP 48): `files`, a dictionary keyed by
//! 20-byte info-hashes, each with `complete`, `downloaded`, `incomplete`.
//!
//! Rules: `failure reason` becomes [`TrackerError::Failure`]; `files` is
//! required and must be a dictionary; keys that are not 20 bytes and values
//! that are not dictionaries are skipped; a count missing or outside
//! `0..=u32::MAX` reads as 0; at most [`SCRAPE_FILES_MAX`] entries are kept.

use super::response::{check_failure, count, top_dict, wrong_type};
use crate::tracker::{ScrapeStats, TrackerError};
use crate::InfoHash;

/// Most torrents kept from one scrape answer.
pub const SCRAPE_FILES_MAX: usize = 1_000;

/// What a tracker answered to a scrape.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScrapeResponse {
    /// Per torrent, in the tracker's order.
    pub files: Vec<(InfoHash, ScrapeStats)>,
    /// Entries left out: malformed, or past [`SCRAPE_FILES_MAX`].
    pub skipped: usize,
}

impl ScrapeResponse {
    /// The numbers for one torrent, if the tracker gave them.
    pub fn get(&self, hash: &InfoHash) -> Option<ScrapeStats> {
        self.files.iter().find(|(h, _)| h == hash).map(|(_, s)| *s)
    }
}

/// Reads a scrape answer.
pub fn parse_scrape_response(body: &[u8]) -> Result<ScrapeResponse, TrackerError> {
    let top = top_dict(body)?;
    let dict = top.as_dict().ok_or(TrackerError::NotADictionary {
        found: top.type_name(),
    })?;
    check_failure(dict)?;
    let files_value = dict
        .get(b"files")
        .ok_or(TrackerError::MissingKey { key: "files" })?;
    let files = files_value
        .as_dict()
        .ok_or_else(|| wrong_type("files", files_value, "a dictionary"))?;
    let mut out = ScrapeResponse::default();
    for (key, value) in files.iter() {
        let hash: Option<[u8; 20]> = (*key).try_into().ok();
        match (hash, value.as_dict()) {
            (Some(hash), Some(stats)) if out.files.len() < SCRAPE_FILES_MAX => {
                out.files.push((
                    InfoHash(hash),
                    ScrapeStats {
                        complete: count(stats, "complete").unwrap_or(0),
                        downloaded: count(stats, "downloaded").unwrap_or(0),
                        incomplete: count(stats, "incomplete").unwrap_or(0),
                    },
                ));
            }
            _ => out.skipped += 1,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files() {
        let body =
            b"d5:filesd20:aaaaaaaaaaaaaaaaaaaad8:completei5e10:downloadedi50e10:incompletei10ee\
            20:bbbbbbbbbbbbbbbbbbbbd8:completei-1ee3:badd8:completei1eeee";
        let r = parse_scrape_response(body).unwrap();
        assert_eq!(
            r.get(&InfoHash([b'a'; 20])),
            Some(ScrapeStats {
                complete: 5,
                downloaded: 50,
                incomplete: 10
            })
        );
        assert_eq!(r.get(&InfoHash([b'b'; 20])), Some(ScrapeStats::default()));
        assert_eq!(r.files.len(), 2);
        assert_eq!(r.skipped, 1);
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse_scrape_response(b"d14:failure reason4:nopee"),
            Err(TrackerError::Failure("nope".to_string()))
        );
        assert_eq!(
            parse_scrape_response(b"de"),
            Err(TrackerError::MissingKey { key: "files" })
        );
        assert!(matches!(
            parse_scrape_response(b"d5:fileslee"),
            Err(TrackerError::WrongType {
                key: "files",
                offset: 8,
                ..
            })
        ));
        assert!(matches!(
            parse_scrape_response(b"i1e"),
            Err(TrackerError::NotADictionary { found: "integer" })
        ));
        assert!(matches!(
            parse_scrape_response(b"d5:files"),
            Err(TrackerError::Bencode(_))
        ));
    }

    #[test]
    fn at_most_the_limit_is_kept() {
        let mut body = b"d5:filesd".to_vec();
        for i in 0..SCRAPE_FILES_MAX + 3 {
            let mut h = [0u8; 20];
            h[..8].copy_from_slice(&u64::try_from(i).unwrap().to_be_bytes());
            body.extend_from_slice(b"20:");
            body.extend_from_slice(&h);
            body.extend_from_slice(b"de");
        }
        body.extend_from_slice(b"ee");
        let r = parse_scrape_response(&body).unwrap();
        assert_eq!(r.files.len(), SCRAPE_FILES_MAX);
        assert_eq!(r.skipped, 3);
    }
}
