//! Moving a torrent's data to another save path, file by file, so that an
//! interrupted move loses nothing and can simply be run again.
//!
//! Each file is renamed when source and target are on one file system;
//! otherwise it is copied to `TARGET.ringseed-part`, synced, renamed into
//! place, and only then is the source deleted. A file already at the
//! target with no source left was moved by an earlier run. Runs on a
//! thread of the core's (never on a shard); the torrent is out of the
//! session meanwhile, so nothing reads or writes its files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ringseed::metainfo::Metainfo;

/// Suffix of a copy in progress.
const PART_SUFFIX: &str = ".ringseed-part";

/// What went wrong, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("cannot move {} to {}: {source}", from.display(), to.display())]
pub struct MoveError {
    pub from: PathBuf,
    pub to: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The torrent's (non-pad) files, relative to a save path.
pub fn relative_files(m: &Metainfo) -> Vec<PathBuf> {
    m.info
        .files
        .iter()
        .filter(|f| !f.attr.pad)
        .map(|f| f.relative_path())
        .collect()
}

/// Moves every file of `files` from under `from` to under `to`. Returns
/// how many bytes were copied (0 when every file was renamed).
pub fn move_files(files: &[PathBuf], from: &Path, to: &Path) -> Result<u64, MoveError> {
    let mut copied = 0u64;
    if from == to {
        return Ok(0);
    }
    for rel in files {
        let src = from.join(rel);
        let dst = to.join(rel);
        let err = |source| MoveError {
            from: src.clone(),
            to: dst.clone(),
            source,
        };
        if fs::symlink_metadata(&src).is_err() {
            // Moved by an earlier run (or never there): nothing to do.
            continue;
        }
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).map_err(err)?;
        }
        match fs::rename(&src, &dst) {
            Ok(()) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {}
            Err(e) => return Err(err(e)),
        }
        let mut part = dst.clone().into_os_string();
        part.push(PART_SUFFIX);
        let part = PathBuf::from(part);
        copied += fs::copy(&src, &part).map_err(err)?;
        fs::File::open(&part)
            .and_then(|f| f.sync_all())
            .map_err(err)?;
        fs::rename(&part, &dst).map_err(err)?;
        if let Some(parent) = dst.parent() {
            let _ = fs::File::open(parent).and_then(|d| d.sync_all());
        }
        fs::remove_file(&src).map_err(err)?;
    }
    remove_empty_dirs(files, from);
    Ok(copied)
}

/// Removes the folders under `root` that held `files` and are now empty
/// (deepest first); never `root` itself.
fn remove_empty_dirs(files: &[PathBuf], root: &Path) {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for rel in files {
        let mut p = rel.parent();
        while let Some(d) = p {
            if d.as_os_str().is_empty() {
                break;
            }
            dirs.push(root.join(d));
            p = d.parent();
        }
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    dirs.dedup();
    for d in dirs {
        let _ = fs::remove_dir(&d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_files_and_runs_again_without_harm() {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        fs::create_dir_all(a.join("album/cd1")).unwrap();
        fs::write(a.join("album/cd1/x"), b"xx").unwrap();
        fs::write(a.join("album/y"), b"yyy").unwrap();
        let files = vec![PathBuf::from("album/cd1/x"), PathBuf::from("album/y")];
        assert_eq!(move_files(&files, &a, &b).unwrap(), 0);
        assert_eq!(fs::read(b.join("album/cd1/x")).unwrap(), b"xx");
        assert_eq!(fs::read(b.join("album/y")).unwrap(), b"yyy");
        assert!(!a.join("album").exists(), "empty folders are removed");
        assert!(a.exists());
        // Interrupted after the first file: the second run finishes.
        fs::create_dir_all(a.join("album")).unwrap();
        fs::rename(b.join("album/y"), a.join("album/y")).unwrap();
        assert_eq!(move_files(&files, &a, &b).unwrap(), 0);
        assert_eq!(fs::read(b.join("album/y")).unwrap(), b"yyy");
        assert_eq!(fs::read(b.join("album/cd1/x")).unwrap(), b"xx");
    }
}
