//! `ringseed seed TORRENT... --save-path DIR`: a client of the engine's session:
//! adds each torrent (its data is checked on the checker pool), reports
//! each check, seeds until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;
use ringseed::runtime::checker::name_list;
use ringseed::runtime::session::{AddTorrent, Mode, TorrentSnapshot, TorrentState};
use ringseed::runtime::signals;

use super::engine_opts::EngineOpts;
use super::load::load_torrent;
use super::session_run;

#[derive(Debug, Args)]
#[command(after_help = "\
DIR is the save path, as in libtorrent and qBittorrent: a multi-file \
torrent's files are read from DIR/<name>/..., a single-file torrent from \
DIR/<name>. Options are checked first: a missing interface, a listen address \
in use or a torrent given twice is an error before any piece is hashed. Every \
piece is checked then; pieces that do not match are not offered. A torrent \
with files missing is seeded from the files that are there \
(`NAME: G of M pieces good; missing: ...`); a torrent with no good piece is \
reported and left out, and the others are seeded. Files are only read: \
nothing is created or truncated. Ctrl-C or SIGTERM stops cleanly (also during \
the checks): trackers get a `stopped` announce. SIGUSR1 logs a status line at \
once; SIGHUP does not stop it (nothing to reload yet). RINGSEED_LOG sets the \
log level (default info). Exit status 0 after a clean stop, 2 on errors or \
when no torrent can be seeded.

--save-path DIR is the same option for seed, download and verify; --data DIR \
still works.")]
pub struct SeedArgs {
    /// The .torrent files.
    #[arg(required = true)]
    pub torrents: Vec<PathBuf>,
    /// The save path: the folder holding the torrents' data (alias: --data).
    #[arg(long = "save-path", visible_alias = "data", value_name = "DIR")]
    pub save_path: PathBuf,
    #[command(flatten)]
    pub engine: EngineOpts,
}

pub fn run(args: &SeedArgs) -> Result<ExitCode> {
    signals::install();
    if !args.save_path.is_dir() {
        bail!("{} is not a directory", args.save_path.display());
    }
    let mut torrents = Vec::with_capacity(args.torrents.len());
    for path in &args.torrents {
        torrents.push(Arc::new(load_torrent(path)?));
    }
    session_run::reject_duplicates(&args.torrents, &torrents)?;
    let session = session_run::start(&args.engine)?;
    let mut ids = Vec::with_capacity(torrents.len());
    for m in torrents {
        let name = m.info.name.clone();
        let pieces = m.info.pieces.len();
        let added = session.add_torrent(AddTorrent::new(m, args.save_path.clone(), Mode::Seed));
        match added {
            Ok(id) => {
                tracing::info!("{name}: checking {pieces} pieces");
                ids.push(id);
            }
            Err(e) => {
                session_run::stop(session);
                return Err(e.into());
            }
        }
    }
    let mut seeding = 0;
    let checked = session_run::wait_checked(&session, &ids, |s| {
        if s.state == TorrentState::Error {
            let why = s.error.as_deref().unwrap_or("failed");
            tracing::warn!("{}: {why}", s.name);
        } else {
            seeding += 1;
            tracing::info!("{}", checked_line(s));
        }
    });
    let checked = match checked {
        Ok(c) => c,
        Err(e) => {
            session_run::stop(session);
            return Err(e);
        }
    };
    if checked && seeding == 0 {
        session_run::stop(session);
        bail!("no torrent can be seeded from {}", args.save_path.display());
    }
    if checked {
        session_run::log_listening(&session);
    }
    let mut failed = None;
    while !signals::stop_requested() {
        if let Some(why) = session.failure() {
            failed = Some(why);
            break;
        }
        session_run::wait_for_news(&session);
    }
    tracing::info!("stopping: stopped announces, closing peers and files");
    session_run::stop(session);
    match failed {
        Some(e) => bail!(e),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// What a torrent's first check found: `NAME: G of M pieces good`, and the
/// files that are not there (`; missing: a, b and 3 more`).
pub fn checked_line(s: &TorrentSnapshot) -> String {
    let mut line = format!("{}: {} of {} pieces good", s.name, s.pieces_have, s.pieces);
    if !s.missing_files.is_empty() {
        line.push_str("; missing: ");
        line.push_str(&name_list(&s.missing_files));
    }
    line
}
