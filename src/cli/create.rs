//! `ringseed create PATH -o FILE`: hashes a file or a directory tree over all
//! cores (through the io_uring pipeline) and writes a v1 .torrent.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use ringseed::limits::PIECES_PER_TORRENT_MAX;
use ringseed::metainfo::{auto_piece_length, NewFile, TorrentBuilder};
use ringseed::runtime::fs_walk::{walk, Skipped, WalkLimits};
use ringseed::runtime::{hash_pieces, DiskFile, HashOptions};
use ringseed::InfoHash;

use super::progress;
use super::tuning::Tuning;
use super::units::{human_bytes, human_rate, parse_piece_length, PieceLength};

/// Options of `ringseed create`.
#[derive(Debug, Args)]
#[command(after_help = "\
PATH may be a file (a single-file torrent named after it) or a directory (a \
multi-file torrent named after the directory). Inside a directory, every regular \
file is included, in a fixed order (sorted by path components, byte by byte), so \
the same tree always gives the same info-hash. Symbolic links inside the directory \
are NOT followed: they are skipped with a warning, as are sockets, FIFOs and \
devices. File names must be valid UTF-8.

create never destroys data: it refuses an output that is PATH itself or \
inside the directory PATH, and an output that exists already unless --force \
is given. The torrent is written to a temporary file beside the output, then \
moved into place.")]
pub struct CreateArgs {
    /// File or directory to make a torrent of.
    pub path: PathBuf,
    /// Where to write the .torrent file (an existing file is kept unless --force).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// Replace the output file if it exists (never the data being hashed).
    #[arg(long)]
    pub force: bool,
    /// Piece length: bytes (32768), a binary size (16K, 1M, 256KiB), or `auto`
    /// (about 1500 pieces, 16 KiB to 16 MiB). Must be a power of two, at least 16 KiB.
    #[arg(long, value_name = "N|auto", default_value = "auto", allow_hyphen_values = true,
          value_parser = parse_piece_length)]
    pub piece_length: PieceLength,
    /// Tracker announce URL; repeat for more (each becomes its own tier).
    #[arg(long = "tracker", short = 't', value_name = "URL")]
    pub trackers: Vec<String>,
    /// Web seed URL (BEP 19); repeat for more.
    #[arg(long = "web-seed", short = 'w', value_name = "URL")]
    pub web_seeds: Vec<String>,
    /// Mark the torrent private (BEP 27: no DHT, no peer exchange).
    #[arg(long)]
    pub private: bool,
    /// Free-text comment.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// `source` tag in the info dictionary (private trackers use it; changes the info-hash).
    #[arg(long, value_name = "TEXT")]
    pub source: Option<String>,
    /// Leave out the creation date (the file then depends only on its inputs).
    #[arg(long)]
    pub no_date: bool,
    #[command(flatten)]
    pub tuning: Tuning,
}

/// The torrent's name: the last component of PATH, resolving `.` and `..`.
fn torrent_name(path: &Path) -> Result<String> {
    let owned;
    let name = match path.file_name() {
        Some(n) => n,
        None => {
            owned = fs::canonicalize(path)
                .with_context(|| format!("cannot resolve {}", path.display()))?;
            owned
                .file_name()
                .ok_or_else(|| anyhow!("{} has no name to give the torrent", path.display()))?
        }
    };
    name.to_str().map(str::to_string).ok_or_else(|| {
        anyhow!(
            "the name of {} is not valid UTF-8; a torrent name must be UTF-8",
            path.display()
        )
    })
}

/// Checks before any hashing that writing the torrent to `output` destroys
/// nothing: not the input `path` itself, nothing inside it when it is a
/// directory, and no existing file unless `force`. The output's folder
/// must exist.
fn check_output(path: &Path, output: &Path, force: bool) -> Result<()> {
    let input =
        fs::canonicalize(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file_name = output
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", output.display()))?;
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent_real = match fs::canonicalize(parent) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "cannot write {}: the folder {} does not exist",
            output.display(),
            parent.display()
        ),
        Err(e) => {
            return Err(anyhow!(e).context(format!(
                "cannot write {}: cannot read the folder {}",
                output.display(),
                parent.display()
            )))
        }
    };
    if !parent_real.is_dir() {
        bail!(
            "cannot write {}: {} is not a folder",
            output.display(),
            parent.display()
        );
    }
    // Where the output lands, a link at its place followed.
    let target = match fs::canonicalize(output) {
        Ok(t) => t,
        Err(_) => parent_real.join(file_name),
    };
    if target == input {
        bail!(
            "refusing to write the torrent to {}: that is the data being hashed ({})",
            output.display(),
            path.display()
        );
    }
    if input.is_dir() && (target.starts_with(&input) || parent_real.starts_with(&input)) {
        bail!(
            "refusing to write the torrent to {}: it is inside {}, the folder being hashed",
            output.display(),
            path.display()
        );
    }
    match fs::symlink_metadata(output) {
        Ok(m) if m.is_dir() => bail!("cannot write {}: it is a folder", output.display()),
        Ok(_) if !force => bail!(
            "{} exists already; give --force to replace it",
            output.display()
        ),
        _ => Ok(()),
    }
}

pub fn run(args: &CreateArgs) -> Result<()> {
    let path = &args.path;
    let meta = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = torrent_name(path)?;
    check_output(path, &args.output, args.force)?;
    let (new_files, disk_files, single_file) = if meta.is_dir() {
        let found = walk(path, &WalkLimits::default())?;
        for s in &found.skipped {
            match s {
                Skipped::Symlink(p) => eprintln!(
                    "warning: skipping symbolic link {} (links are not followed)",
                    p.display()
                ),
                Skipped::Special(p) => {
                    eprintln!("warning: skipping {} (not a regular file)", p.display())
                }
            }
        }
        let mut new_files = Vec::with_capacity(found.files.len());
        let mut disk_files = Vec::with_capacity(found.files.len());
        for f in found.files {
            new_files.push(NewFile {
                path: f.components,
                length: f.length,
            });
            disk_files.push(DiskFile {
                path: Some(f.path),
                length: f.length,
            });
        }
        (new_files, disk_files, false)
    } else if meta.is_file() {
        let new = NewFile {
            path: Vec::new(),
            length: meta.len(),
        };
        let disk = DiskFile {
            path: Some(path.clone()),
            length: meta.len(),
        };
        (vec![new], vec![disk], true)
    } else {
        bail!(
            "{} is neither a regular file nor a directory",
            path.display()
        );
    };
    let total: u64 = new_files.iter().map(|f| f.length).sum();
    let piece_length = match args.piece_length {
        PieceLength::Auto => auto_piece_length(total),
        PieceLength::Bytes(n) => n,
    };
    let creation_date = if args.no_date {
        None
    } else {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the system clock is before 1970")?;
        Some(i64::try_from(now.as_secs()).context("the system clock is out of range")?)
    };
    let builder = TorrentBuilder {
        name,
        files: new_files,
        single_file,
        piece_length,
        trackers: args.trackers.iter().map(|t| vec![t.clone()]).collect(),
        private: args.private,
        comment: args.comment.clone(),
        source: args.source.clone(),
        created_by: Some(format!("ringseed/{}", env!("CARGO_PKG_VERSION"))),
        creation_date,
        url_list: args.web_seeds.clone(),
    };
    // Refuse a bad shape before spending time on hashing.
    let num_pieces = builder
        .validate()
        .with_context(|| format!("cannot make a torrent of {}", path.display()))?;
    if num_pieces > PIECES_PER_TORRENT_MAX {
        bail!(
            "{} at {} per piece makes {num_pieces} pieces, over the limit of \
             {PIECES_PER_TORRENT_MAX}: choose a larger --piece-length",
            human_bytes(total),
            human_bytes(piece_length)
        );
    }
    let count = usize::try_from(num_pieces).context("too many pieces for this machine")?;
    let mut pieces: Vec<Option<[u8; 20]>> = vec![None; count];
    let options: HashOptions = args.tuning.options()?;
    let bar = progress::bytes_bar(total, "hashing");
    let started = std::time::Instant::now();
    let mut first_failure = None;
    hash_pieces(&disk_files, piece_length, &options, |r| {
        let size = piece_length.min(total.saturating_sub(r.index.saturating_mul(piece_length)));
        bar.inc(size);
        match r.hash {
            Ok(h) => {
                if let Some(slot) = usize::try_from(r.index)
                    .ok()
                    .and_then(|i| pieces.get_mut(i))
                {
                    *slot = Some(h);
                }
            }
            Err(e) => {
                first_failure.get_or_insert((r.index, e));
            }
        }
    })
    .context("hashing failed")?;
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    if let Some((index, e)) = first_failure {
        bail!("cannot hash piece {index}: {e} (did a file change while hashing?)");
    }
    let pieces: Vec<[u8; 20]> = pieces
        .into_iter()
        .enumerate()
        .map(|(i, h)| h.ok_or_else(|| anyhow!("piece {i} was never hashed")))
        .collect::<Result<_>>()?;
    let info = builder.info_bytes(&pieces)?;
    let torrent = builder.build(&pieces)?;
    write_atomically(&args.output, &torrent, args.force)?;
    println!("info hash: {}", InfoHash::of_info_bytes(&info));
    println!(
        "{} pieces of {}, {} in {:.2} s ({})",
        pieces.len(),
        human_bytes(piece_length),
        human_bytes(total),
        elapsed,
        human_rate(total, elapsed)
    );
    println!("wrote {}", args.output.display());
    Ok(())
}

/// Writes `bytes` to a temporary file beside `dest`, then moves it to
/// `dest`, so a failed run never leaves a half-written torrent. Without
/// `replace`, a file that appeared at `dest` meanwhile is kept (the move is
/// a hard link, which never replaces). Errors name `dest`, never the
/// temporary file.
fn write_atomically(dest: &Path, bytes: &[u8], replace: bool) -> Result<()> {
    let file_name = dest
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file path", dest.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dest.with_file_name(tmp_name);
    let cannot = || format!("cannot write {}", dest.display());
    fs::write(&tmp, bytes).with_context(cannot)?;
    let moved = if replace {
        fs::rename(&tmp, dest)
    } else {
        fs::hard_link(&tmp, dest)
    };
    let _ = fs::remove_file(&tmp);
    moved.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow!(
                "{} exists already; give --force to replace it",
                dest.display()
            )
        } else {
            anyhow!(e).context(cannot())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_last_component() {
        assert_eq!(
            torrent_name(Path::new("/a/b/file.bin")).ok().as_deref(),
            Some("file.bin")
        );
        assert_eq!(torrent_name(Path::new("dir/")).ok().as_deref(), Some("dir"));
        let cwd = std::env::current_dir().unwrap_or_default();
        let here = cwd.file_name().and_then(|n| n.to_str()).map(str::to_string);
        assert_eq!(torrent_name(Path::new(".")).ok(), here);
    }

    #[test]
    fn atomic_write_replaces_only_when_asked() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dest = d.path().join("out.torrent");
        fs::write(&dest, b"old").unwrap_or_else(|e| panic!("{e}"));
        let e = write_atomically(&dest, b"new", false)
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("exists already")),
            "{e:?}"
        );
        assert_eq!(fs::read(&dest).unwrap_or_default(), b"old");
        write_atomically(&dest, b"new", true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read(&dest).unwrap_or_default(), b"new");
        assert_eq!(fs::read_dir(d.path()).map(|r| r.count()).unwrap_or(0), 1);
        let fresh = d.path().join("fresh.torrent");
        write_atomically(&fresh, b"x", false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fs::read_dir(d.path()).map(|r| r.count()).unwrap_or(0), 2);
        let e = write_atomically(&d.path().join("no/such/dir/x"), b"x", false)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(e.contains("no/such/dir/x") && !e.contains("/.x."), "{e}");
    }

    #[test]
    fn outputs_that_would_destroy_data_are_refused() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let data = d.path().join("data");
        fs::create_dir_all(data.join("sub")).unwrap_or_else(|e| panic!("{e}"));
        let file = data.join("self.bin");
        fs::write(&file, b"payload").unwrap_or_else(|e| panic!("{e}"));
        let refused = |path: &Path, out: &Path, force: bool, needle: &str| {
            let e = check_output(path, out, force)
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(
                e.contains(needle) && e.contains(&out.display().to_string()),
                "{} -> {}: {e:?}",
                path.display(),
                out.display()
            );
        };
        // The input itself, with or without --force, and through `..`.
        refused(&file, &file, true, "the data being hashed");
        refused(
            &file,
            &data.join("sub/../self.bin"),
            true,
            "the data being hashed",
        );
        // Inside the folder being hashed, new file or not.
        refused(&data, &data.join("x.torrent"), true, "inside");
        refused(&data, &data.join("sub/x.torrent"), false, "inside");
        refused(&data, &file, true, "inside");
        // An existing file elsewhere needs --force.
        let other = d.path().join("other.torrent");
        fs::write(&other, b"keep").unwrap_or_else(|e| panic!("{e}"));
        refused(&file, &other, false, "--force");
        assert!(check_output(&file, &other, true).is_ok());
        // A missing folder is named, not a temporary file.
        refused(
            &file,
            &d.path().join("missing/dir/x.torrent"),
            false,
            "missing/dir does not exist",
        );
        refused(&file, &d.path().join("data"), true, "is a folder");
        assert!(check_output(&file, &d.path().join("new.torrent"), false).is_ok());
        assert!(check_output(&data, &d.path().join("data.torrent"), false).is_ok());
    }
}
