//! `ringseed seed TORRENT... --data DIR`: a client of the engine's session:
//! adds each torrent (its data is checked on the checker pool), reports
//! each check, seeds until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;
use ringseed::runtime::session::{AddTorrent, Mode, TorrentState};
use ringseed::runtime::signals;

use super::engine_opts::EngineOpts;
use super::load::load_torrent;
use super::session_run;

#[derive(Debug, Args)]
#[command(after_help = "\
DIR is the save directory, as in libtorrent: a multi-file torrent's files are \
read from DIR/<name>/..., a single-file torrent from DIR/<name>. Every piece is \
checked first; pieces that do not match are not offered, and a torrent with no \
good piece (or a missing file) is reported and left out. Ctrl-C or SIGTERM \
stops cleanly (also during the checks): trackers get a `stopped` announce. \
SIGUSR1 logs a status line at once; SIGHUP does not stop it (nothing to \
reload yet). RINGSEED_LOG sets the log level (default info). \
Exit status 0 after a clean stop, 2 on errors or when no torrent can be seeded.")]
pub struct SeedArgs {
    /// The .torrent files.
    #[arg(required = true)]
    pub torrents: Vec<PathBuf>,
    /// The save directory holding the data.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    #[command(flatten)]
    pub engine: EngineOpts,
}

pub fn run(args: &SeedArgs) -> Result<ExitCode> {
    signals::install();
    if !args.data.is_dir() {
        bail!("{} is not a directory", args.data.display());
    }
    let mut torrents = Vec::with_capacity(args.torrents.len());
    for path in &args.torrents {
        torrents.push(Arc::new(load_torrent(path)?));
    }
    let session = session_run::start(&args.engine)?;
    let mut ids = Vec::with_capacity(torrents.len());
    for m in torrents {
        let name = m.info.name.clone();
        let pieces = m.info.pieces.len();
        let added = session.add_torrent(AddTorrent::new(m, args.data.clone(), Mode::Seed));
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
            tracing::info!("{}: {} of {} pieces good", s.name, s.pieces_have, s.pieces);
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
        bail!("no torrent can be seeded from {}", args.data.display());
    }
    if checked {
        tracing::info!(
            "listening on {} ({} shards)",
            session.local_addr(),
            session.shards()
        );
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
