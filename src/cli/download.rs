//! `ringseed download TORRENT... --save-path DIR [--seed]`: a client of the
//! engine's session: adds each torrent (data already there is checked and
//! kept), downloads, verifying each piece before it is written, then checks
//! every download on disk: each piece hashed again and each file at the
//! length the torrent says.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;
use ringseed::magnet::Magnet;
use ringseed::metainfo::Metainfo;
use ringseed::runtime::disk::files_on_disk;
use ringseed::runtime::session::{AddTorrent, Event, Mode, Session, TorrentId, TorrentState};
use ringseed::runtime::signals;
use std::time::Duration;

use super::engine_opts::{check_data, EngineOpts};
use super::load::load_torrent;
use super::progress;
use super::session_run;

#[derive(Debug, Args)]
#[command(after_help = "\
Files go to DIR/<name>/... (multi-file) or DIR/<name> (single file), DIR \
being the save path (--save-path, or its older spellings -o and --output). \
Several torrents go into the same save path, as with seed. Data already \
there is checked first and kept. At the end every piece is hashed again from \
disk and every file must have the length the torrent says. Magnet links are \
accepted in place of a .torrent (`magnet:?xt=urn:btih:...`): the metadata \
is fetched from the magnet's peers (x.pe, --peer), its trackers (tr) and \
the DHT, then the download starts. The trackers are told `completed` when a download \
finishes, with or without --seed. Exit status: 0 when every torrent is \
complete and verified on disk, 1 when stopped or failed before that (or the \
check on disk found a problem), 2 on errors. SIGUSR1 logs a status line at \
once; SIGHUP does not stop it (nothing to reload yet).")]
pub struct DownloadArgs {
    /// The .torrent files or magnet links.
    #[arg(required = true, value_name = "TORRENT")]
    pub torrents: Vec<PathBuf>,
    /// The save path: the folder the data goes into (aliases: -o, --output).
    #[arg(
        long = "save-path",
        short = 'o',
        visible_alias = "output",
        value_name = "DIR"
    )]
    pub save_path: PathBuf,
    /// Keep seeding after the download completes, until Ctrl-C or SIGTERM.
    #[arg(long)]
    pub seed: bool,
    /// Also connect to this peer (besides the trackers'); repeatable. Retried
    /// while it does not answer (after 10 s, then a growing wait up to 5 min).
    #[arg(long = "peer", value_name = "IP:PORT")]
    pub peers: Vec<SocketAddr>,
    #[command(flatten)]
    pub engine: EngineOpts,
}

/// A magnet link given where a torrent is expected, parsed; `None` for
/// anything else (a path).
pub fn as_magnet(arg: &OsStr) -> Result<Option<Magnet>> {
    let Some(text) = arg.to_str() else {
        return Ok(None);
    };
    if !text
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("magnet:")
    {
        return Ok(None);
    }
    Magnet::parse(text.trim())
        .map(Some)
        .with_context(|| "not a usable magnet link".to_string())
}

/// A magnet's torrent once its metadata arrived, with the peers the fetch
/// met.
type FetchedTorrent = (Arc<Metainfo>, Vec<SocketAddr>);

/// Fetches every magnet's metadata (BEP 9) through the session: from the
/// magnet's peers and trackers and the DHT. Waits until all arrived or a
/// stop signal; `None` when stopped.
fn fetch_magnets(session: &Session, magnets: &[Magnet]) -> Result<Option<Vec<FetchedTorrent>>> {
    let mut out: Vec<Option<FetchedTorrent>> = vec![None; magnets.len()];
    for m in magnets {
        let name = m
            .display_name
            .clone()
            .unwrap_or_else(|| m.info_hash.to_hex());
        session
            .fetch_metadata(m)
            .with_context(|| format!("{name}: cannot fetch the metadata"))?;
        tracing::info!(
            "{name}: fetching the metadata ({} peers, {} trackers{})",
            m.peers.len(),
            m.trackers.len(),
            if session.dht_addr().is_some() {
                ", DHT"
            } else {
                ""
            }
        );
    }
    while out.iter().any(Option::is_none) {
        if signals::stop_requested() {
            return Ok(None);
        }
        if let Some(why) = session.failure() {
            bail!(why);
        }
        let event = session.events().recv_timeout(Duration::from_millis(250));
        session_run::housekeeping(session);
        let Ok(Event::Metadata {
            info_hash,
            info,
            peers,
        }) = event
        else {
            continue;
        };
        let Some(i) = magnets.iter().position(|m| m.info_hash == info_hash) else {
            continue;
        };
        let m = &magnets[i];
        let metainfo = Metainfo::from_info_bytes(&info, &m.trackers).with_context(|| {
            format!(
                "{}: the metadata peers sent is not a torrent",
                info_hash.to_hex()
            )
        })?;
        tracing::info!(
            "{}: metadata received ({} bytes, {} pieces)",
            metainfo.info.name,
            info.len(),
            metainfo.info.pieces.len()
        );
        out[i] = Some((Arc::new(metainfo), peers));
    }
    Ok(Some(out.into_iter().flatten().collect()))
}

/// How the session part of a download ended.
enum Ended {
    Finished,
    Stopped,
    Failed(String),
}

pub fn run(args: &DownloadArgs) -> Result<ExitCode> {
    signals::install();
    let mut torrents = Vec::with_capacity(args.torrents.len());
    let mut paths = Vec::with_capacity(args.torrents.len());
    let mut magnets: Vec<Magnet> = Vec::new();
    for path in &args.torrents {
        if let Some(mut m) = as_magnet(path.as_os_str())? {
            if magnets.iter().any(|o| o.info_hash == m.info_hash) {
                bail!("magnet {} is given twice", m.info_hash.to_hex());
            }
            m.peers.extend(args.peers.iter().map(ToString::to_string));
            magnets.push(m);
            continue;
        }
        torrents.push(Arc::new(load_torrent(path)?));
        paths.push(path.clone());
    }
    session_run::reject_duplicates(&paths, &torrents)?;
    if let Some(m) = magnets
        .iter()
        .find(|m| torrents.iter().any(|t| t.info_hash == m.info_hash))
    {
        bail!(
            "{} is given twice (as a magnet and as a .torrent)",
            m.info_hash.to_hex()
        );
    }
    let dir = &args.save_path;
    if dir.exists() && !dir.is_dir() {
        bail!("the save path {} is not a folder", dir.display());
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the save path {}", dir.display()))?;
    for m in &torrents {
        if m.trackers.is_empty() && args.peers.is_empty() {
            let name = &m.info.name;
            tracing::info!("{name}: no tracker and no --peer: waiting for incoming peers");
        }
    }
    let session = session_run::start(&args.engine)?;
    let mut extra_peers: Vec<Vec<SocketAddr>> = vec![args.peers.clone(); torrents.len()];
    if !magnets.is_empty() {
        match fetch_magnets(&session, &magnets) {
            Ok(Some(fetched)) => {
                for (m, peers) in fetched {
                    let mut all = args.peers.clone();
                    for p in peers {
                        if !all.contains(&p) {
                            all.push(p);
                        }
                    }
                    torrents.push(m);
                    extra_peers.push(all);
                }
            }
            Ok(None) => {
                session_run::stop(session);
                tracing::info!("stopped before the metadata arrived");
                return Ok(ExitCode::from(1));
            }
            Err(e) => {
                session_run::stop(session);
                return Err(e);
            }
        }
    }
    let mut ids = Vec::with_capacity(torrents.len());
    for (m, peers) in torrents.iter().zip(extra_peers) {
        let mut add = AddTorrent::new(m.clone(), dir.clone(), Mode::Download);
        add.peers = peers;
        match session.add_torrent(add) {
            Ok(id) => ids.push(id),
            Err(e) => {
                session_run::stop(session);
                return Err(e.into());
            }
        }
    }
    let ended = follow(&session, &ids, args.seed);
    session_run::stop(session);
    let finished = match ended {
        Ended::Failed(e) => bail!(e),
        Ended::Stopped => false,
        Ended::Finished => true,
    };
    if !finished {
        tracing::info!("stopped before the download completed");
        return Ok(ExitCode::from(1));
    }
    // Every piece was checked before it was written; check the disk too.
    let mut all_good = true;
    for m in &torrents {
        let problems = check_on_disk(m, dir)?;
        let (name, pieces) = (&m.info.name, m.info.pieces.len());
        if problems.is_empty() {
            tracing::info!("complete: {name} ({pieces} pieces verified on disk)");
        } else {
            all_good = false;
            for p in problems {
                tracing::warn!("{name}: {p}");
            }
        }
    }
    Ok(if all_good {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The final check of a finished download: every piece hashed from disk,
/// every file at the length the torrent says. Returns what is wrong (empty
/// when all is well).
pub fn check_on_disk(m: &Metainfo, dir: &Path) -> Result<Vec<String>> {
    let mut problems = size_problems(m, dir);
    let good = check_data(m, dir)?.count_ones();
    let pieces = m.info.pieces.len();
    if good != pieces {
        problems.push(format!("only {good} of {pieces} pieces verify on disk"));
    }
    Ok(problems)
}

/// Files under `dir` that are not at the torrent's length (a longer file
/// hashes fine but is not the torrent's data).
fn size_problems(m: &Metainfo, dir: &Path) -> Vec<String> {
    files_on_disk(m, dir)
        .into_iter()
        .filter(|f| !f.size_ok())
        .map(|f| match f.actual {
            None => format!("{} is missing", f.path.display()),
            Some(n) => format!(
                "{} is {n} bytes, the torrent says {}",
                f.path.display(),
                f.expected
            ),
        })
        .collect()
}

/// Follows the downloads until every torrent completes (then, with
/// `seed`, until stopped), the user stops them, or one fails.
fn follow(session: &Session, ids: &[TorrentId], seed: bool) -> Ended {
    let mut done: HashSet<TorrentId> = HashSet::new();
    let checked = session_run::wait_checked(session, ids, |s| {
        if s.is_complete() {
            done.insert(s.id);
        }
        tracing::info!(
            "{}: {} of {} pieces on disk already",
            s.name,
            s.pieces_have,
            s.pieces
        );
    });
    match checked {
        Ok(true) => {}
        Ok(false) => return Ended::Stopped,
        Err(e) => return Ended::Failed(e.to_string()),
    }
    let all_done = |done: &HashSet<TorrentId>| ids.iter().all(|id| done.contains(id));
    if all_done(&done) && !seed {
        tracing::info!("already complete");
        return Ended::Finished;
    }
    session_run::log_listening(session);
    let label = match session_run::snapshots(session, ids) {
        Ok(s) if s.len() == 1 => s.first().map(|s| s.name.clone()).unwrap_or_default(),
        _ => format!("{} torrents", ids.len()),
    };
    let total = session_run::snapshots(session, ids)
        .map(|all| all.iter().map(|s| s.total_length).sum())
        .unwrap_or(0);
    let bar = progress::bytes_bar(total, &label);
    let mut finished = all_done(&done);
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
        let all = match session_run::snapshots(session, ids) {
            Ok(s) => s,
            Err(e) => break Ended::Failed(e.to_string()),
        };
        if all.len() != ids.len() {
            break Ended::Failed("a torrent left the session".to_string());
        }
        let have: u64 = all.iter().map(|s| s.total_length - s.bytes_left).sum();
        let peers: usize = all.iter().map(|s| s.peers).sum();
        bar.set_position(have);
        bar.set_message(format!("{label} peers {peers}"));
        if let Some(s) = all.iter().find(|s| s.state == TorrentState::Error) {
            let why = s.error.clone().unwrap_or_default();
            break Ended::Failed(format!("{}: {why}", s.name));
        }
        for s in &all {
            if s.is_complete() && done.insert(s.id) && seed {
                bar.suspend(|| tracing::info!("complete: {}; seeding", s.name));
            }
        }
        if all_done(&done) && !finished {
            finished = true;
            bar.set_position(total);
            if !seed {
                break Ended::Finished;
            }
        }
    };
    bar.finish_and_clear();
    ended
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringseed::metainfo::{NewFile, TorrentBuilder};

    fn torrent() -> Metainfo {
        let b = TorrentBuilder {
            name: "t".into(),
            files: vec![
                NewFile {
                    path: vec!["a.bin".into()],
                    length: 20_000,
                },
                NewFile {
                    path: vec!["e.dat".into()],
                    length: 0,
                },
            ],
            piece_length: 16 * 1024,
            ..TorrentBuilder::default()
        };
        let bytes = b.build(&[[0u8; 20]; 2]).unwrap_or_else(|e| panic!("{e}"));
        Metainfo::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_final_check_catches_longer_and_missing_files() {
        let m = torrent();
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = d.path().join("t");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("a.bin"), vec![0u8; 20_000]).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("e.dat"), b"").unwrap_or_else(|e| panic!("{e}"));
        assert!(size_problems(&m, d.path()).is_empty());
        std::fs::write(dir.join("a.bin"), vec![0u8; 20_001]).unwrap_or_else(|e| panic!("{e}"));
        std::fs::remove_file(dir.join("e.dat")).unwrap_or_else(|e| panic!("{e}"));
        let p = size_problems(&m, d.path());
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].ends_with("a.bin is 20001 bytes, the torrent says 20000"),
            "{p:?}"
        );
        assert!(p[1].ends_with("e.dat is missing"), "{p:?}");
    }

    #[test]
    fn magnets_are_told_from_paths() {
        let hash = "0123456789abcdef0123456789abcdef01234567";
        let m = as_magnet(OsStr::new(&format!(
            "magnet:?xt=urn:btih:{hash}&x.pe=127.0.0.1:1"
        )))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("not taken for a magnet"));
        assert_eq!(m.info_hash.to_hex(), hash);
        assert_eq!(m.peers, vec!["127.0.0.1:1".to_string()]);
        assert!(as_magnet(OsStr::new("x.torrent"))
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none());
        let bad = as_magnet(OsStr::new("magnet:?xt=urn:btih:00")).err();
        assert!(bad.is_some_and(|e| format!("{e:#}").contains("magnet")));
    }
}
