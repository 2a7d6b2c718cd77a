//! `ringseed verify TORRENT DIR`: reads a torrent's data through io_uring,
//! hashes it over all cores and reports every piece that does not match.
//! Exit status: 0 all good, 1 some piece failed, 2 error (reported by main).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use ringseed::metainfo::Metainfo;
use ringseed::runtime::disk::disk_files;
use ringseed::runtime::{hash_pieces, PieceError};

use super::load::load_torrent;
use super::progress;
use super::tuning::Tuning;
use super::units::{human_bytes, human_rate, percent_floor};

/// Options of `ringseed verify`.
#[derive(Debug, Args)]
#[command(after_help = "\
DIR is the save directory, as in libtorrent: a multi-file torrent's files are \
read from DIR/<name>/..., a single-file torrent from DIR/<name>.

Prints `piece N: FAILED (reason)` for each bad piece, then `G of M pieces good \
(P.PP%)`. Exit status: 0 when every piece is good, 1 when some piece failed, \
2 on errors (unreadable torrent, missing DIR, io_uring unavailable).")]
pub struct VerifyArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
    /// The save directory holding the torrent's data.
    pub dir: PathBuf,
    #[command(flatten)]
    pub tuning: Tuning,
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

pub fn run(args: &VerifyArgs) -> Result<ExitCode> {
    let m = load_torrent(&args.torrent)?;
    let meta = std::fs::metadata(&args.dir)
        .with_context(|| format!("cannot read save directory {}", args.dir.display()))?;
    if !meta.is_dir() {
        bail!("{} is not a directory", args.dir.display());
    }
    let files = disk_files(&m, &args.dir);
    let info = &m.info;
    let total = info.total_length;
    let bar = progress::bytes_bar(total, "verifying");
    let options = args.tuning.options()?;
    let started = Instant::now();
    let mut good = 0u64;
    let mut reported = 0u64;
    let stats = hash_pieces(&files, info.piece_length, &options, |r| {
        reported += 1;
        bar.inc(info.piece_size(r.index).unwrap_or(0));
        let expected = usize::try_from(r.index)
            .ok()
            .and_then(|i| info.pieces.get(i));
        let reason = match (&r.hash, expected) {
            (Ok(h), Some(want)) if h == want => {
                good += 1;
                return;
            }
            (Ok(_), Some(_)) => "hash mismatch".to_string(),
            (Ok(_), None) => "no such piece in the torrent".to_string(),
            (Err(e), _) => read_failure(&m, e),
        };
        progress::println(&bar, &format!("piece {}: FAILED ({reason})", r.index));
    })
    .with_context(|| format!("cannot verify {}", args.torrent.display()))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let num = info.num_pieces();
    if reported != num || stats.pieces != num {
        bail!(
            "internal error: {reported} results for {num} pieces (the pipeline saw {})",
            stats.pieces
        );
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
    Ok(if good == num {
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
