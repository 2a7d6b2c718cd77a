//! `ringseed download TORRENT -o DIR [--seed]`: downloads, verifying each
//! piece before it is written, then checks the whole download on disk.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use ringseed::runtime::session::{Session, TorrentSpec};
use ringseed::runtime::shard::SessionEvent;

use super::engine_opts::{check_data, EngineOpts};
use super::load::load_torrent;
use super::progress;
use ringseed::runtime::signals;

#[derive(Debug, Args)]
#[command(after_help = "\
Files go to DIR/<name>/... (multi-file) or DIR/<name> (single file). Data \
already there is checked first and kept. Exit status: 0 when every piece is \
verified on disk, 1 when stopped or failed before that, 2 on errors.")]
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

pub fn run(args: &DownloadArgs) -> Result<ExitCode> {
    signals::install();
    let m = load_torrent(&args.torrent)?;
    std::fs::create_dir_all(&args.output)?;
    let have = check_data(&m, &args.output)?;
    let name = m.info.name.clone();
    let total = m.info.total_length;
    let pieces = have.len();
    let mut finished = have.all();
    if finished && !args.seed {
        eprintln!("ringseed: {name}: already complete ({pieces} pieces)");
        return Ok(ExitCode::SUCCESS);
    }
    if m.trackers.is_empty() && args.peers.is_empty() {
        eprintln!("ringseed: {name}: no tracker and no --peer: waiting for incoming peers");
    }
    let m = Arc::new(m);
    let spec = TorrentSpec {
        metainfo: m.clone(),
        save_dir: args.output.clone(),
        have,
        download: true,
        peers: args.peers.clone(),
    };
    let session = Session::start(args.engine.session_config(), vec![spec])?;
    eprintln!(
        "ringseed: listening on {} ({} shards)",
        session.local_addr(),
        session.shards()
    );
    let bar = progress::bytes_bar(total, &name);
    let mut failed = None;
    let mut last_error: Option<String> = None;
    while !signals::stop_requested() {
        match session.events().recv_timeout(Duration::from_millis(200)) {
            Ok(SessionEvent::Stats { torrents, .. }) => {
                for (_, s, err) in torrents {
                    bar.set_position(s.total_length - s.bytes_left);
                    bar.set_message(format!("{name} peers {}", s.peers));
                    if err.is_some() && err != last_error {
                        last_error = err;
                    }
                }
            }
            Ok(SessionEvent::Finished { .. }) => {
                finished = true;
                bar.set_position(total);
                if !args.seed {
                    break;
                }
                progress::println(&bar, &format!("ringseed: {name}: complete; seeding"));
            }
            Ok(SessionEvent::Failed { shard, error }) => {
                failed = Some(format!("shard {shard}: {error}"));
                break;
            }
            Ok(SessionEvent::Stopped { .. }) => {}
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
    }
    bar.finish_and_clear();
    let report = session.stop();
    eprintln!("ringseed: shard handoffs: {}", report.handoffs);
    eprintln!(
        "ringseed: uploaded {} bytes, downloaded {} bytes",
        report.uploaded, report.downloaded
    );
    if let Some(e) = failed {
        bail!(e);
    }
    if !finished {
        eprintln!("ringseed: {name}: stopped before the download completed");
        return Ok(ExitCode::from(1));
    }
    // Every piece was checked before it was written; check the disk too.
    let on_disk = check_data(&m, &args.output)?;
    let good = on_disk.count_ones();
    if good != pieces {
        eprintln!("ringseed: {name}: only {good} of {pieces} pieces verify on disk");
        return Ok(ExitCode::from(1));
    }
    eprintln!("ringseed: complete: {name} ({pieces} pieces verified on disk)");
    Ok(ExitCode::SUCCESS)
}
