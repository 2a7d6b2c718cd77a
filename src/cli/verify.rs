//! `ringseed verify TORRENT --save-path DIR [--json]`: reads a torrent's
//! data through io_uring, hashes it over all cores and reports, in piece
//! order, every piece that does not match with the files it spans; then
//! every file that is missing, has another length than the torrent says, or
//! holds bad pieces. When no file of the torrent is there at all, one line
//! says so (a wrong save path) instead of a line per piece.
//! Exit status: 0 all good, 1 something wrong, 2 error (reported by main).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use ringseed::metainfo::Metainfo;
use ringseed::runtime::disk::{disk_files, files_on_disk, FileOnDisk};
use ringseed::runtime::{hash_pieces, PieceError};
use ringseed::storage::Layout;
use serde_json::{json, Value};

use super::load::load_torrent;
use super::progress;
use super::tuning::Tuning;
use super::units::{human_bytes, human_rate, percent_floor};

/// Options of `ringseed verify`.
#[derive(Debug, Args)]
#[command(after_help = "\
DIR is the save path, as in libtorrent and qBittorrent: a multi-file \
torrent's files are read from DIR/<name>/..., a single-file torrent from \
DIR/<name>. Give it as --save-path DIR (as for seed and download) or as the \
second argument.

Prints, in piece order, `piece N: FAILED (reason) in FILE, ...` for each bad \
piece; then `file PATH: missing`, `file PATH: N bytes, the torrent says M \
(longer|shorter)` or `file PATH: K of P pieces bad` for each file that is not \
right (zero-length files included); then `G of M pieces good (P.PP%)`. When \
no file of the torrent is in DIR it prints `no file of NAME is in DIR: wrong \
save path?` instead. --json prints one JSON object instead (README.md, \
\"verify --json\"). Exit status: 0 when every piece is good and every file \
has the torrent's length, 1 otherwise, 2 on errors (unreadable torrent, \
missing DIR, io_uring unavailable).")]
pub struct VerifyArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
    /// The save path (the same as --save-path DIR).
    #[arg(value_name = "DIR", conflicts_with = "save_path")]
    pub dir: Option<PathBuf>,
    /// The save path: the folder holding the torrent's data.
    #[arg(long = "save-path", value_name = "DIR")]
    pub save_path: Option<PathBuf>,
    /// Print the report as one JSON object (keys in README.md).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub tuning: Tuning,
}

/// Most file names listed on one failed piece's line; the rest are counted.
const FILES_PER_PIECE_LINE_MAX: usize = 5;

/// Why a piece failed.
#[derive(Debug)]
enum Failure {
    Mismatch,
    NoSuchPiece,
    Read(PieceError),
}

/// A file's verdict, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    Missing,
    SizeMismatch,
    BadPieces,
    Ok,
}

impl FileState {
    pub fn name(self) -> &'static str {
        match self {
            FileState::Missing => "missing",
            FileState::SizeMismatch => "size_mismatch",
            FileState::BadPieces => "bad_pieces",
            FileState::Ok => "ok",
        }
    }
}

/// One file of the report.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// As the torrent names it (`name/dir/file`).
    pub path: String,
    pub disk: FileOnDisk,
    /// Failed pieces this file is to blame for.
    pub bad_pieces: u64,
    /// Pieces touching the file.
    pub pieces: u64,
}

impl FileReport {
    pub fn state(&self) -> FileState {
        match self.disk.actual {
            None => FileState::Missing,
            Some(n) if n != self.disk.expected => FileState::SizeMismatch,
            _ if self.bad_pieces > 0 => FileState::BadPieces,
            _ => FileState::Ok,
        }
    }

    /// The text line of a file that is not right, `None` when it is.
    pub fn line(&self) -> Option<String> {
        let what = match self.state() {
            FileState::Ok => return None,
            FileState::Missing => "missing".to_string(),
            FileState::SizeMismatch => {
                let actual = self.disk.actual.unwrap_or(0);
                let expected = self.disk.expected;
                let how = if actual > expected {
                    "longer"
                } else {
                    "shorter"
                };
                format!("{actual} bytes, the torrent says {expected} ({how})")
            }
            FileState::BadPieces => format!("{} of {} pieces bad", self.bad_pieces, self.pieces),
        };
        Some(format!("file {}: {what}", self.path))
    }
}

/// The reason shown for a piece that could not be read.
fn read_failure(m: &Metainfo, e: &PieceError) -> String {
    let name = m
        .info
        .files
        .get(e.file())
        .map(|f| f.display_path())
        .unwrap_or_default();
    match e {
        PieceError::MissingFile { .. } => format!("missing file {name}"),
        PieceError::ShortFile {
            found, expected, ..
        } => format!("short file {name}: {found} of {expected} bytes"),
        PieceError::Io { op, errno, .. } => format!(
            "{op} error in {name}: {}",
            std::io::Error::from_raw_os_error(*errno)
        ),
    }
}

/// The torrent's names of the (non-pad) files piece `index` spans.
fn piece_files(m: &Metainfo, layout: &Layout, index: u64) -> Vec<String> {
    let Ok(piece) = u32::try_from(index) else {
        return Vec::new();
    };
    layout
        .piece_spans(piece)
        .filter(|s| !s.pad)
        .filter_map(|s| m.info.files.get(s.file_index))
        .map(|f| f.display_path())
        .collect()
}

/// `a, b, c, d, e and 3 more files`.
fn files_text(names: &[String]) -> String {
    let shown: Vec<&str> = names
        .iter()
        .take(FILES_PER_PIECE_LINE_MAX)
        .map(String::as_str)
        .collect();
    let mut text = shown.join(", ");
    if names.len() > shown.len() {
        text.push_str(&format!(" and {} more files", names.len() - shown.len()));
    }
    text
}

/// The report on every (non-pad) file: what is on disk and how many bad
/// pieces it is to blame for: a piece that could not be read counts
/// against the file that failed the read, a hash mismatch against every
/// file the piece spans.
fn file_reports(
    m: &Metainfo,
    layout: &Layout,
    dir: &Path,
    failures: &[(u64, Failure)],
) -> Vec<FileReport> {
    let mut blamed = vec![0u64; m.info.files.len()];
    for (index, failure) in failures {
        match failure {
            Failure::Read(e) => {
                if let Some(n) = blamed.get_mut(e.file()) {
                    *n += 1;
                }
            }
            Failure::Mismatch | Failure::NoSuchPiece => {
                let Ok(piece) = u32::try_from(*index) else {
                    continue;
                };
                for span in layout.piece_spans(piece) {
                    if let Some(n) = blamed.get_mut(span.file_index) {
                        *n += 1;
                    }
                }
            }
        }
    }
    files_on_disk(m, dir)
        .into_iter()
        .map(|disk| {
            let range = layout.file_piece_range(disk.index).unwrap_or(0..0);
            FileReport {
                path: m
                    .info
                    .files
                    .get(disk.index)
                    .map(|f| f.display_path())
                    .unwrap_or_default(),
                bad_pieces: blamed.get(disk.index).copied().unwrap_or(0),
                pieces: u64::from(range.end - range.start),
                disk,
            }
        })
        .collect()
}

/// The `--json` object; its keys are documented in README.md and fixed.
fn report_json(
    m: &Metainfo,
    dir: &Path,
    good: u64,
    bad: &[u64],
    files: &[FileReport],
    all_missing: bool,
) -> Value {
    let files: Vec<Value> = files
        .iter()
        .map(|f| {
            json!({
                "path": f.path,
                "expected_size": f.disk.expected,
                "actual_size": f.disk.actual,
                "state": f.state().name(),
                "bad_pieces": f.bad_pieces,
            })
        })
        .collect();
    let ok = bad.is_empty() && !all_missing && files.iter().all(|f| f["state"] == "ok");
    json!({
        "name": m.info.name,
        "info_hash": m.info_hash.to_hex(),
        "save_path": dir.display().to_string(),
        "ok": ok,
        "all_missing": all_missing,
        "pieces": {
            "total": m.info.num_pieces(),
            "good": good,
            "bad": bad,
        },
        "files": files,
    })
}

pub fn run(args: &VerifyArgs) -> Result<ExitCode> {
    let m = load_torrent(&args.torrent)?;
    let Some(dir) = args.save_path.as_ref().or(args.dir.as_ref()) else {
        bail!("no save path: give --save-path DIR (or DIR after the torrent)");
    };
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("cannot read the save path {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("the save path {} is not a folder", dir.display());
    }
    let info = &m.info;
    let num = info.num_pieces();
    let layout = Layout::new(info.piece_length, &info.extents())
        .with_context(|| format!("{} has an impossible layout", args.torrent.display()))?;
    let on_disk = files_on_disk(&m, dir);
    let all_missing = !on_disk.is_empty() && on_disk.iter().all(|f| f.actual.is_none());
    if all_missing {
        let bad: Vec<u64> = (0..num).collect();
        let mut files = file_reports(&m, &layout, dir, &[]);
        for f in &mut files {
            f.bad_pieces = f.pieces;
        }
        if args.json {
            let v = report_json(&m, dir, 0, &bad, &files, true);
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!(
                "no file of {} is in {}: wrong save path?",
                info.name,
                dir.display()
            );
            println!("0 of {num} pieces good ({}%)", percent_floor(0, num));
        }
        return Ok(ExitCode::from(1));
    }
    let files = disk_files(&m, dir);
    let total = info.total_length;
    let bar = progress::bytes_bar(total, "verifying");
    let options = args.tuning.options()?;
    let started = Instant::now();
    let mut good = 0u64;
    let mut reported = 0u64;
    let mut failures: Vec<(u64, Failure)> = Vec::new();
    let stats = hash_pieces(&files, info.piece_length, &options, |r| {
        reported += 1;
        bar.inc(info.piece_size(r.index).unwrap_or(0));
        let expected = usize::try_from(r.index)
            .ok()
            .and_then(|i| info.pieces.get(i));
        let failure = match (r.hash, expected) {
            (Ok(h), Some(want)) if h == *want => {
                good += 1;
                return;
            }
            (Ok(_), Some(_)) => Failure::Mismatch,
            (Ok(_), None) => Failure::NoSuchPiece,
            (Err(e), _) => Failure::Read(e),
        };
        failures.push((r.index, failure));
    })
    .with_context(|| format!("cannot verify {}", args.torrent.display()))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if reported != num || stats.pieces != num {
        bail!(
            "internal error: {reported} results for {num} pieces (the pipeline saw {})",
            stats.pieces
        );
    }
    failures.sort_unstable_by_key(|(i, _)| *i);
    let bad: Vec<u64> = failures.iter().map(|(i, _)| *i).collect();
    let reports = file_reports(&m, &layout, dir, &failures);
    let files_ok = reports.iter().all(|f| f.state() == FileState::Ok);
    if args.json {
        let v = report_json(&m, dir, good, &bad, &reports, false);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for (index, failure) in &failures {
            let reason = match failure {
                Failure::Mismatch => "hash mismatch".to_string(),
                Failure::NoSuchPiece => "no such piece in the torrent".to_string(),
                Failure::Read(e) => read_failure(&m, e),
            };
            let names = piece_files(&m, &layout, *index);
            println!("piece {index}: FAILED ({reason}) in {}", files_text(&names));
        }
        for line in reports.iter().filter_map(FileReport::line) {
            println!("{line}");
        }
        println!(
            "{good} of {num} pieces good ({}%), {} ({} bytes) checked in {seconds:.2} s, {} on {} thread{}",
            percent_floor(good, num),
            human_bytes(total),
            total,
            human_rate(total, seconds),
            stats.threads,
            if stats.threads == 1 { "" } else { "s" }
        );
    }
    Ok(if good == num && files_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringseed::metainfo::{NewFile, TorrentBuilder};
    use std::path::Path;

    fn multi() -> Metainfo {
        let b = TorrentBuilder {
            name: "t".into(),
            files: vec![
                NewFile {
                    path: vec!["d".into(), "x.bin".into()],
                    length: 20_000,
                },
                NewFile {
                    path: vec!["y.bin".into()],
                    length: 20_000,
                },
            ],
            piece_length: 16 * 1024,
            ..TorrentBuilder::default()
        };
        let bytes = b.build(&[[0u8; 20]; 3]).unwrap_or_else(|e| panic!("{e}"));
        Metainfo::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn files_live_under_the_save_dir_and_name() {
        let m = multi();
        let files = disk_files(&m, Path::new("/save"));
        assert_eq!(files[0].path.as_deref(), Some(Path::new("/save/t/d/x.bin")));
        assert_eq!(files[1].path.as_deref(), Some(Path::new("/save/t/y.bin")));
        assert_eq!(files[1].length, 20_000);
    }

    #[test]
    fn failure_reasons_name_the_torrent_path() {
        let m = multi();
        let missing = PieceError::MissingFile {
            file: 0,
            path: "/save/t/d/x.bin".into(),
        };
        assert_eq!(read_failure(&m, &missing), "missing file t/d/x.bin");
        let short = PieceError::ShortFile {
            file: 1,
            path: "/save/t/y.bin".into(),
            found: 5,
            expected: 20_000,
        };
        assert_eq!(
            read_failure(&m, &short),
            "short file t/y.bin: 5 of 20000 bytes"
        );
        let io = PieceError::Io {
            file: 1,
            path: "/save/t/y.bin".into(),
            op: "read",
            errno: libc::EISDIR,
        };
        let text = read_failure(&m, &io);
        assert!(text.starts_with("read error in t/y.bin: "), "{text}");
    }
}
