//! `ringseed seed TORRENT... --data DIR`: checks each torrent's data, then
//! seeds until Ctrl-C or SIGTERM.

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
use ringseed::runtime::signals;

#[derive(Debug, Args)]
#[command(after_help = "\
DIR is the save directory, as in libtorrent: a multi-file torrent's files are \
read from DIR/<name>/..., a single-file torrent from DIR/<name>. Every piece is \
checked first; pieces that do not match are not offered. Ctrl-C or SIGTERM \
stops cleanly: trackers get a `stopped` announce. Exit status 0 after a clean \
stop, 2 on errors.")]
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
    let mut specs = Vec::new();
    for path in &args.torrents {
        let m = load_torrent(path)?;
        let have = check_data(&m, &args.data)?;
        let good = have.count_ones();
        let total = have.len();
        eprintln!("ringseed: {}: {good} of {total} pieces good", m.info.name);
        if good == 0 {
            bail!(
                "{}: no piece of the data in {} matches the torrent",
                m.info.name,
                args.data.display()
            );
        }
        specs.push(TorrentSpec {
            metainfo: Arc::new(m),
            save_dir: args.data.clone(),
            have,
            download: false,
            peers: Vec::new(),
        });
    }
    let config = args.engine.session_config();
    let session = Session::start(config, specs)?;
    eprintln!(
        "ringseed: listening on {} ({} shards)",
        session.local_addr(),
        session.shards()
    );
    let mut failed = None;
    while !signals::stop_requested() {
        match session.events().recv_timeout(Duration::from_millis(200)) {
            Ok(SessionEvent::Failed { shard, error }) => {
                failed = Some(format!("shard {shard}: {error}"));
                break;
            }
            Ok(_) | Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
    }
    eprintln!("ringseed: stopping");
    let report = session.stop();
    eprintln!("ringseed: shard handoffs: {}", report.handoffs);
    eprintln!(
        "ringseed: uploaded {} bytes, downloaded {} bytes",
        report.uploaded, report.downloaded
    );
    match failed {
        Some(e) => bail!(e),
        None => Ok(ExitCode::SUCCESS),
    }
}
