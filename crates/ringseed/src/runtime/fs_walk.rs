//! The directory walk behind `ringseed create`: every regular file under a
//! root, in one fixed order, so the same tree always yields the same
//! info-hash.
//!
//! Order: by path components, each compared as raw bytes (so `a/b` sorts
//! before `a-b`, whatever the file system returns). Symbolic links are never
//! followed: a link inside the tree is skipped and reported, as are sockets,
//! FIFOs and devices. Names must be UTF-8 (a torrent stores UTF-8 paths); any
//! other name is an error that names it. The number of files, the depth and the
//! number of entries looked at are all bounded.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::limits::{FILES_PER_TORRENT_MAX, PATH_COMPONENTS_MAX};

/// Most directory entries (files, folders, links) looked at in one walk.
pub const WALK_ENTRIES_MAX: usize = 4 * FILES_PER_TORRENT_MAX;

/// Limits of one walk; [`WalkLimits::default`] uses the crate-wide ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkLimits {
    /// Most regular files.
    pub files_max: usize,
    /// Most path components below the root (a file directly in the root has 1).
    pub depth_max: usize,
    /// Most entries of any kind looked at.
    pub entries_max: usize,
}

impl Default for WalkLimits {
    fn default() -> Self {
        Self {
            files_max: FILES_PER_TORRENT_MAX,
            depth_max: PATH_COMPONENTS_MAX,
            entries_max: WALK_ENTRIES_MAX,
        }
    }
}

/// One regular file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkedFile {
    /// Path components below the root (never empty).
    pub components: Vec<String>,
    /// The root joined with the components.
    pub path: PathBuf,
    pub length: u64,
}

/// What was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// A symbolic link (not followed).
    Symlink(PathBuf),
    /// Not a regular file, folder or link: a socket, FIFO or device.
    Special(PathBuf),
}

/// The walk's result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Walk {
    /// Regular files, sorted by components (raw bytes).
    pub files: Vec<WalkedFile>,
    /// Entries left out, in the order met.
    pub skipped: Vec<Skipped>,
}

/// Why the walk failed.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("the name {} is not valid UTF-8; a torrent can only hold UTF-8 paths (rename it)", path.display())]
    NonUtf8 { path: PathBuf },
    #[error("more than {limit} files under {}", root.display())]
    TooManyFiles { root: PathBuf, limit: usize },
    #[error("more than {limit} entries under {}", root.display())]
    TooManyEntries { root: PathBuf, limit: usize },
    #[error("{} is more than {limit} levels deep", path.display())]
    TooDeep { path: PathBuf, limit: usize },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalkError + '_ {
    move |source| WalkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Walks `root` (a directory; it is followed if it is itself a link) and
/// returns its regular files in the fixed order.
pub fn walk(root: &Path, limits: &WalkLimits) -> Result<Walk, WalkError> {
    let meta = fs::metadata(root).map_err(io_err(root))?;
    if !meta.is_dir() {
        return Err(WalkError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let mut out = Walk::default();
    let mut entries = 0usize;
    // Folders still to read, as components below the root.
    let mut pending: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(dir_components) = pending.pop() {
        let dir: PathBuf = dir_components
            .iter()
            .fold(root.to_path_buf(), |p, c| p.join(c));
        let reader = fs::read_dir(&dir).map_err(io_err(&dir))?;
        for entry in reader {
            let entry = entry.map_err(io_err(&dir))?;
            entries += 1;
            if entries > limits.entries_max {
                return Err(WalkError::TooManyEntries {
                    root: root.to_path_buf(),
                    limit: limits.entries_max,
                });
            }
            let path = entry.path();
            let name = entry
                .file_name()
                .into_string()
                .map_err(|_| WalkError::NonUtf8 { path: path.clone() })?;
            // `file_type` does not follow links.
            let kind = entry.file_type().map_err(io_err(&path))?;
            let mut components = dir_components.clone();
            components.push(name);
            if components.len() > limits.depth_max {
                return Err(WalkError::TooDeep {
                    path,
                    limit: limits.depth_max,
                });
            }
            if kind.is_symlink() {
                out.skipped.push(Skipped::Symlink(path));
            } else if kind.is_dir() {
                pending.push(components);
            } else if kind.is_file() {
                if out.files.len() >= limits.files_max {
                    return Err(WalkError::TooManyFiles {
                        root: root.to_path_buf(),
                        limit: limits.files_max,
                    });
                }
                let length = entry.metadata().map_err(io_err(&path))?.len();
                out.files.push(WalkedFile {
                    components,
                    path,
                    length,
                });
            } else {
                out.skipped.push(Skipped::Special(path));
            }
        }
    }
    // Component-wise, each component by its bytes (String's order is bytewise).
    out.files.sort_by(|a, b| a.components.cmp(&b.components));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, len: usize) {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        fs::write(&p, vec![7u8; len]).unwrap_or_else(|e| panic!("{e}"));
    }

    fn rels(w: &Walk) -> Vec<String> {
        w.files.iter().map(|f| f.components.join("/")).collect()
    }

    #[test]
    fn files_come_in_component_order() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for rel in ["b.txt", "a-b", "a/b", "a/a/z", "A", "a/c.bin", "empty"] {
            write(d.path(), rel, rel.len());
        }
        write(d.path(), "empty", 0);
        fs::create_dir_all(d.path().join("hollow/deeper")).unwrap_or_else(|e| panic!("{e}"));
        let w = walk(d.path(), &WalkLimits::default()).unwrap_or_else(|e| panic!("{e}"));
        // "a" < "a-b" as components, though "a-b" < "a/b" as whole strings.
        assert_eq!(
            rels(&w),
            vec!["A", "a/a/z", "a/b", "a/c.bin", "a-b", "b.txt", "empty"]
        );
        let lens: Vec<u64> = w.files.iter().map(|f| f.length).collect();
        assert_eq!(lens, vec![1, 5, 3, 7, 3, 5, 0]);
        assert!(w.files.iter().all(|f| f.path.starts_with(d.path())));
        assert!(w.skipped.is_empty());
    }

    #[test]
    fn symlinks_are_skipped_and_reported() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        write(d.path(), "real/f", 4);
        std::os::unix::fs::symlink(d.path().join("real/f"), d.path().join("link"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(d.path().join("real"), d.path().join("dirlink"))
            .unwrap_or_else(|e| panic!("{e}"));
        let w = walk(d.path(), &WalkLimits::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rels(&w), vec!["real/f"]);
        assert_eq!(w.skipped.len(), 2);
        assert!(w.skipped.iter().all(|s| matches!(s, Skipped::Symlink(_))));
    }

    #[test]
    fn a_linked_root_is_followed() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        write(d.path(), "real/f", 4);
        let link = d.path().join("rootlink");
        std::os::unix::fs::symlink(d.path().join("real"), &link).unwrap_or_else(|e| panic!("{e}"));
        let w = walk(&link, &WalkLimits::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rels(&w), vec!["f"]);
    }

    #[test]
    fn fifos_are_skipped() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        write(d.path(), "f", 1);
        let fifo = d.path().join("pipe");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: `c` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let w = walk(d.path(), &WalkLimits::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rels(&w), vec!["f"]);
        assert_eq!(w.skipped, vec![Skipped::Special(fifo)]);
    }

    #[test]
    fn non_utf8_names_are_an_error() {
        use std::os::unix::ffi::OsStrExt;
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let bad = d.path().join(std::ffi::OsStr::from_bytes(b"bad\xffname"));
        if fs::write(&bad, b"x").is_err() {
            // Some file systems refuse such names; nothing to test there.
            return;
        }
        match walk(d.path(), &WalkLimits::default()) {
            Err(e @ WalkError::NonUtf8 { .. }) => assert!(e.to_string().contains("UTF-8")),
            other => panic!("expected NonUtf8, got {other:?}"),
        }
    }

    #[test]
    fn limits_are_enforced() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for rel in ["a", "b", "c/d/e"] {
            write(d.path(), rel, 1);
        }
        let base = WalkLimits::default();
        let few_files = WalkLimits {
            files_max: 2,
            ..base
        };
        assert!(matches!(
            walk(d.path(), &few_files),
            Err(WalkError::TooManyFiles { limit: 2, .. })
        ));
        let shallow = WalkLimits {
            depth_max: 2,
            ..base
        };
        assert!(matches!(
            walk(d.path(), &shallow),
            Err(WalkError::TooDeep { limit: 2, .. })
        ));
        let few_entries = WalkLimits {
            entries_max: 3,
            ..base
        };
        assert!(matches!(
            walk(d.path(), &few_entries),
            Err(WalkError::TooManyEntries { limit: 3, .. })
        ));
        let exact = WalkLimits {
            files_max: 3,
            depth_max: 3,
            entries_max: 5,
        };
        assert_eq!(walk(d.path(), &exact).map(|w| w.files.len()).ok(), Some(3));
    }

    #[test]
    fn missing_root_and_file_root_are_errors() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ghost = d.path().join("ghost");
        match walk(&ghost, &WalkLimits::default()) {
            Err(e @ WalkError::Io { .. }) => assert!(e.to_string().contains("ghost")),
            other => panic!("{other:?}"),
        }
        write(d.path(), "file", 1);
        assert!(matches!(
            walk(&d.path().join("file"), &WalkLimits::default()),
            Err(WalkError::NotADirectory { .. })
        ));
    }
}
