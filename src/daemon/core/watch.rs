//! The watch folder: .torrent files dropped into it are added, then
//! renamed `NAME.torrent.added` (or `.invalid` when they cannot be added),
//! so that no file is added twice, even across restarts: a file is renamed
//! only after its torrent is durably recorded, and a kill in between adds
//! it again at the next scan, where it is found already added.
//!
//! A file that does not parse may still be being written: it is left for
//! the next scans until it is [`SETTLE`] old, then marked invalid.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Files looked at per scan; the rest wait for the next one.
pub const WATCH_FILES_PER_SCAN_MAX: usize = 1_000;
/// Directory entries read per scan (files of other kinds included).
const WATCH_ENTRIES_PER_SCAN_MAX: usize = 100_000;
/// How long an unparsable file is given to finish being written.
pub const SETTLE: Duration = Duration::from_secs(10);

/// Suffix of a file whose torrent was added.
pub const ADDED_SUFFIX: &str = ".added";
/// Suffix of a file that could not be added.
pub const INVALID_SUFFIX: &str = ".invalid";

/// One dropped file, read.
#[derive(Debug)]
pub struct Dropped {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// Modified more than [`SETTLE`] ago.
    pub settled: bool,
}

/// Reads the `.torrent` files waiting in `dir` (at most
/// [`WATCH_FILES_PER_SCAN_MAX`], each at most `bytes_max`; a larger one is
/// returned empty and settled, so it is marked invalid).
pub fn scan(dir: &Path, bytes_max: u64, now: SystemTime) -> std::io::Result<Vec<Dropped>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)?.take(WATCH_ENTRIES_PER_SCAN_MAX) {
        if out.len() >= WATCH_FILES_PER_SCAN_MAX {
            break;
        }
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let is_torrent = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("torrent"));
        let Ok(md) = fs::metadata(&path) else {
            continue;
        };
        if !is_torrent || !md.is_file() {
            continue;
        }
        let settled = md
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age >= SETTLE);
        let mut bytes = Vec::new();
        if md.len() <= bytes_max {
            let read =
                fs::File::open(&path).and_then(|f| f.take(bytes_max + 1).read_to_end(&mut bytes));
            if read.is_err() {
                continue;
            }
        }
        out.push(Dropped {
            path,
            bytes,
            settled,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Renames `path` to `path` + `suffix` (an existing file of that name is
/// replaced).
pub fn mark(path: &Path, suffix: &str) -> std::io::Result<PathBuf> {
    let mut to = path.as_os_str().to_owned();
    to.push(suffix);
    let to = PathBuf::from(to);
    fs::rename(path, &to)?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_torrent_files_only_and_marks_them() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("a.torrent"), b"d4:infoe").unwrap();
        fs::write(t.path().join("B.TORRENT"), b"x").unwrap();
        fs::write(t.path().join("c.torrent.added"), b"x").unwrap();
        fs::write(t.path().join("notes.txt"), b"x").unwrap();
        fs::create_dir(t.path().join("d.torrent")).unwrap();
        fs::write(t.path().join("big.torrent"), vec![0u8; 100]).unwrap();
        let now = SystemTime::now();
        let got = scan(t.path(), 50, now).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|d| d.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["B.TORRENT", "a.torrent", "big.torrent"]);
        assert_eq!(got[1].bytes, b"d4:infoe");
        assert!(got[2].bytes.is_empty());
        assert!(!got[1].settled);
        let later = scan(t.path(), 50, now + SETTLE).unwrap();
        assert!(later.iter().all(|d| d.settled));
        let to = mark(&got[1].path, ADDED_SUFFIX).unwrap();
        assert!(to.ends_with("a.torrent.added") && to.exists());
        assert_eq!(scan(t.path(), 50, now).unwrap().len(), 2);
    }
}
