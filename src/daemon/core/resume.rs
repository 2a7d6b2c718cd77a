//! Resuming a torrent at start without a recheck: the pieces recorded as
//! had are trusted when every file still has the size and modification
//! time recorded with them; the pieces of a file that changed (or
//! vanished) are checked again, and only those.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ringseed::metainfo::Metainfo;
use ringseed::torrent::Bitfield;

use crate::daemon::record::FileStamp;

/// A file's stamp now (`size: None` when there is no regular file).
pub fn stamp(path: &Path) -> FileStamp {
    match std::fs::metadata(path) {
        Ok(md) if md.is_file() => FileStamp {
            size: Some(md.len()),
            mtime_ns: md.mtime().saturating_mul(1_000_000_000) + md.mtime_nsec(),
        },
        _ => FileStamp {
            size: None,
            mtime_ns: 0,
        },
    }
}

/// What to do with a torrent's recorded pieces at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// Every file as recorded: trust the pieces.
    Trust(Bitfield),
    /// Some files changed: trust the pieces outside them, check the
    /// pieces in `check` (those the changed files touch).
    Partial {
        known: Bitfield,
        check: Bitfield,
        changed_files: Vec<usize>,
    },
    /// Nothing usable recorded: check everything.
    CheckAll,
}

/// Compares the recorded pieces and stamps with the files under
/// `save_path`.
pub fn plan(m: &Metainfo, save_path: &Path, bits: Option<&[u8]>, stamps: &[FileStamp]) -> Resume {
    let pieces = m.info.pieces.len();
    let Some(bits) = bits else {
        return Resume::CheckAll;
    };
    let Ok(known) = Bitfield::from_bytes(bits, pieces) else {
        return Resume::CheckAll;
    };
    if stamps.len() != m.info.files.len() {
        return Resume::CheckAll;
    }
    let mut changed = Vec::new();
    for (i, (f, recorded)) in m.info.files.iter().zip(stamps).enumerate() {
        if f.attr.pad {
            continue;
        }
        let now = stamp(&save_path.join(f.relative_path()));
        if now != *recorded {
            changed.push(i);
        }
    }
    if changed.is_empty() {
        return Resume::Trust(known);
    }
    let Some(check) = pieces_of_files(m, &changed) else {
        return Resume::CheckAll;
    };
    Resume::Partial {
        known,
        check,
        changed_files: changed,
    }
}

/// The pieces that hold bytes of the given files (`None`: more pieces
/// than a bitfield holds, which a parsed torrent never has).
pub fn pieces_of_files(m: &Metainfo, files: &[usize]) -> Option<Bitfield> {
    let pieces = m.info.pieces.len();
    let mut out = Bitfield::new(pieces).ok()?;
    let plen = m.info.piece_length.max(1);
    for &i in files {
        let Some(f) = m.info.files.get(i) else {
            continue;
        };
        if f.length == 0 {
            continue;
        }
        let first = f.offset / plen;
        let last = (f.offset + f.length - 1) / plen;
        for p in first..=last {
            let _ = out.set(p as usize);
        }
    }
    Some(out)
}
