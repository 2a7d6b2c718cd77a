//! `ringseed download TORRENT -o DIR [--seed]`: a client of the engine's
//! session: adds the torrent (data already there is checked and kept),
//! downloads, verifying each piece before it is written, then checks the
//! whole download on disk.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::Args;
use ringseed::runtime::session::{AddTorrent, Mode, Session, TorrentId, TorrentState};
use ringseed::runtime::signals;

use super::engine_opts::{check_data, EngineOpts};
use super::load::load_torrent;
use super::progress;
use super::session_run;

#[derive(Debug, Args)]
#[command(after_help = "\
Files go to DIR/<name>/... (multi-file) or DIR/<name> (single file). Data \
already there is checked first and kept. Exit status: 0 when every piece is \
verified on disk, 1 when stopped or failed before that, 2 on errors. SIGUSR1 \
logs a status line at once; SIGHUP does not stop it (nothing to reload yet).")]
pub struct DownloadArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
    /// The save directory.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,
    /// Keep seeding after the download completes, until Ctrl-C or SIGTERM.
    #[arg(long)]
    pub seed: bool,
    /// Also connect to this peer (besides the trackers'); repeatable.
    #[arg(long = "peer", value_name = "IP:PORT")]
    pub peers: Vec<SocketAddr>,
    #[command(flatten)]
    pub engine: EngineOpts,
}

/// How the session part of a download ended.
enum Ended {
    Finished,
    Stopped,
    Failed(String),
}

pub fn run(args: &DownloadArgs) -> Result<ExitCode> {
    signals::install();
    let m = Arc::new(load_torrent(&args.torrent)?);
    std::fs::create_dir_all(&args.output)?;
    let name = m.info.name.clone();
    let pieces = m.info.pieces.len();
    if m.trackers.is_empty() && args.peers.is_empty() {
        tracing::info!("{name}: no tracker and no --peer: waiting for incoming peers");
    }
    let session = session_run::start(&args.engine)?;
    let mut add = AddTorrent::new(m.clone(), args.output.clone(), Mode::Download);
    add.peers = args.peers.clone();
    let id = match session.add_torrent(add) {
        Ok(id) => id,
        Err(e) => {
            session_run::stop(session);
            return Err(e.into());
        }
    };
    let ended = follow(&session, id, args.seed, &name);
    session_run::stop(session);
    let finished = match ended {
        Ended::Failed(e) => bail!(e),
        Ended::Stopped => false,
        Ended::Finished => true,
    };
    if !finished {
        tracing::info!("{name}: stopped before the download completed");
        return Ok(ExitCode::from(1));
    }
    // Every piece was checked before it was written; check the disk too.
    let on_disk = check_data(&m, &args.output)?;
    let good = on_disk.count_ones();
    if good != pieces {
        tracing::warn!("{name}: only {good} of {pieces} pieces verify on disk");
        return Ok(ExitCode::from(1));
    }
    tracing::info!("complete: {name} ({pieces} pieces verified on disk)");
    Ok(ExitCode::SUCCESS)
}

/// Follows the download until it completes (then, with `seed`, until
/// stopped), the user stops it, or it fails.
fn follow(session: &Session, id: TorrentId, seed: bool, name: &str) -> Ended {
    let mut already = false;
    let checked = session_run::wait_checked(session, &[id], |s| {
        already = s.is_complete();
        tracing::info!(
            "{name}: {} of {} pieces on disk already",
            s.pieces_have,
            s.pieces
        );
    });
    match checked {
        Ok(true) => {}
        Ok(false) => return Ended::Stopped,
        Err(e) => return Ended::Failed(e.to_string()),
    }
    if already && !seed {
        tracing::info!("{name}: already complete");
        return Ended::Finished;
    }
    tracing::info!(
        "listening on {} ({} shards)",
        session.local_addr(),
        session.shards()
    );
    let total = session.torrent(id).map_or(0, |s| s.total_length);
    let bar = progress::bytes_bar(total, name);
    let mut finished = already;
    let mut last_error: Option<String> = None;
    let ended = loop {
        if signals::stop_requested() {
            break if finished {
                Ended::Finished
            } else {
                Ended::Stopped
            };
        }
        if let Some(why) = session.failure() {
            break Ended::Failed(why);
        }
        session_run::wait_for_news(session);
        let s = match session.torrent(id) {
            Ok(s) => s,
            Err(e) => break Ended::Failed(e.to_string()),
        };
        bar.set_position(s.total_length - s.bytes_left);
        bar.set_message(format!("{name} peers {}", s.peers));
        if s.tracker_error.is_some() && s.tracker_error != last_error {
            last_error = s.tracker_error.clone();
        }
        if s.state == TorrentState::Error {
            let why = s.error.unwrap_or_default();
            break Ended::Failed(format!("{name}: {why}"));
        }
        if s.is_complete() && !finished {
            finished = true;
            bar.set_position(s.total_length);
            if !seed {
                break Ended::Finished;
            }
            bar.suspend(|| tracing::info!("{name}: complete; seeding"));
        }
    };
    bar.finish_and_clear();
    ended
}
