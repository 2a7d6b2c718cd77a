//! A small per-thread cache of open, read-only file descriptors, keyed by file
//! index. Each entry counts the reads in flight on it; an entry is only closed
//! (evicted) when none are, so the kernel never sees a closed or reused fd in a
//! pending io_uring read. Failed opens are cached too, so a missing file costs
//! one open per thread, not one per piece.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

/// Why a file could not be opened, kept so later lookups answer at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFailure {
    /// ENOENT / ENOTDIR: the file is not there.
    Missing,
    /// Any other errno.
    Errno(i32),
}

#[derive(Debug)]
struct Entry {
    file: usize,
    opened: Result<File, OpenFailure>,
    /// Reads submitted on this fd whose completion has not arrived yet.
    busy: u32,
    last_use: u64,
}

/// The cache; see the module header.
#[derive(Debug)]
pub struct FdCache {
    entries: Vec<Entry>,
    capacity: usize,
    clock: u64,
}

/// The cache is full and every entry has reads in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("all {capacity} cached file descriptors have reads in flight")]
pub struct CacheFull {
    pub capacity: usize,
}

fn open_read(path: &Path) -> Result<File, OpenFailure> {
    File::open(path).map_err(|e: io::Error| match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => OpenFailure::Missing,
        Some(errno) => OpenFailure::Errno(errno),
        None => OpenFailure::Errno(libc::EINVAL),
    })
}

impl FdCache {
    /// A cache holding at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Vec::new(),
            capacity: capacity.max(1),
            clock: 0,
        }
    }

    /// The fd of file `file` (opening `path` if needed) with one more read
    /// counted in flight on it; pair with [`FdCache::release`].
    pub fn acquire(
        &mut self,
        file: usize,
        path: &Path,
    ) -> Result<Result<RawFd, OpenFailure>, CacheFull> {
        self.clock += 1;
        let clock = self.clock;
        if let Some(e) = self.entries.iter_mut().find(|e| e.file == file) {
            e.last_use = clock;
            return Ok(match &e.opened {
                Ok(f) => {
                    e.busy += 1;
                    Ok(f.as_raw_fd())
                }
                Err(fail) => Err(*fail),
            });
        }
        if self.entries.len() >= self.capacity {
            let victim = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.busy == 0)
                .min_by_key(|(_, e)| e.last_use)
                .map(|(i, _)| i)
                .ok_or(CacheFull {
                    capacity: self.capacity,
                })?;
            self.entries.swap_remove(victim);
        }
        let mut opened = open_read(path);
        if matches!(opened, Err(OpenFailure::Errno(libc::EMFILE))) {
            // Out of descriptors: give back the idle ones and try once more.
            self.entries.retain(|e| e.busy > 0);
            opened = open_read(path);
        }
        let answer = match &opened {
            Ok(f) => Ok(f.as_raw_fd()),
            Err(fail) => Err(*fail),
        };
        self.entries.push(Entry {
            file,
            busy: u32::from(opened.is_ok()),
            opened,
            last_use: clock,
        });
        Ok(answer)
    }

    /// Marks one read on file `file` as finished.
    pub fn release(&mut self, file: usize) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.file == file) {
            e.busy = e.busy.saturating_sub(1);
        }
    }

    /// Entries held now (open or failed).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(n: usize) -> (tempfile::TempDir, Vec<std::path::PathBuf>) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let paths = (0..n)
            .map(|i| {
                let p = dir.path().join(format!("f{i}"));
                std::fs::write(&p, b"x").unwrap_or_else(|e| panic!("{e}"));
                p
            })
            .collect();
        (dir, paths)
    }

    #[test]
    fn reuses_an_open_fd() {
        let (_d, p) = files(1);
        let mut c = FdCache::new(4);
        let a = c.acquire(0, &p[0]);
        let b = c.acquire(0, &p[0]);
        assert_eq!(a, b);
        assert!(matches!(a, Ok(Ok(_))));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn missing_file_is_remembered() {
        let (d, _) = files(0);
        let ghost = d.path().join("ghost");
        let mut c = FdCache::new(4);
        assert_eq!(c.acquire(7, &ghost), Ok(Err(OpenFailure::Missing)));
        // Creating it now does not matter: the answer is cached.
        std::fs::write(&ghost, b"").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.acquire(7, &ghost), Ok(Err(OpenFailure::Missing)));
    }

    #[test]
    fn a_directory_inside_the_path_reads_as_missing() {
        let (_d, p) = files(1);
        let through_file = p[0].join("below");
        let mut c = FdCache::new(2);
        assert_eq!(c.acquire(0, &through_file), Ok(Err(OpenFailure::Missing)));
    }

    #[test]
    fn evicts_only_idle_entries() {
        let (_d, p) = files(3);
        let mut c = FdCache::new(2);
        assert!(matches!(c.acquire(0, &p[0]), Ok(Ok(_))));
        assert!(matches!(c.acquire(1, &p[1]), Ok(Ok(_))));
        // Both busy: no room.
        assert_eq!(c.acquire(2, &p[2]), Err(CacheFull { capacity: 2 }));
        c.release(0);
        assert!(matches!(c.acquire(2, &p[2]), Ok(Ok(_))));
        assert_eq!(c.len(), 2);
        // File 1 is still cached and busy; file 0 was evicted.
        c.release(1);
        c.release(2);
        assert!(matches!(c.acquire(0, &p[0]), Ok(Ok(_))));
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn release_of_unknown_file_is_harmless() {
        let mut c = FdCache::new(1);
        c.release(99);
        assert!(c.is_empty());
    }
}
