//! What `seed` and `download` share as clients of the engine's `Session`:
//! starting it from the engine options, adding their torrents, waiting for
//! the first checks, and stopping with a report.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use ringseed::metainfo::Metainfo;
use ringseed::runtime::session::{Session, StopReport, TorrentId, TorrentSnapshot, TorrentState};
use ringseed::runtime::signals;
use ringseed::InfoHash;

use super::engine_opts::EngineOpts;

/// How often the commands look at the session's numbers.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Starts a session from the options: settings are checked first, so a bad
/// value is reported before any thread or socket exists; then
/// `Session::start` checks the interface and opens the listeners (a port
/// in use is an error) before any torrent is added, so every option is
/// checked before any data is hashed.
pub fn start(opts: &EngineOpts) -> Result<Session> {
    let settings = opts.settings()?;
    Ok(Session::start(opts.session_config(), settings)?)
}

/// Refuses a torrent given twice (the same info-hash from two arguments,
/// be they the same file or copies), naming both arguments: checked before
/// the session starts, so nothing is hashed first.
pub fn reject_duplicates(paths: &[PathBuf], torrents: &[Arc<Metainfo>]) -> Result<()> {
    let mut seen: HashMap<InfoHash, &PathBuf> = HashMap::with_capacity(torrents.len());
    for (path, m) in paths.iter().zip(torrents) {
        if let Some(first) = seen.insert(m.info_hash, path) {
            bail!(
                "{} and {} are the same torrent ({}, info-hash {}): give each torrent once",
                first.display(),
                path.display(),
                m.info.name,
                m.info_hash
            );
        }
    }
    Ok(())
}

/// Logs `listening on A and B (N shards)`: every listen address, the
/// first (the announced one) first, separated by spaces so a reader can
/// take the first word after `listening on`.
pub fn log_listening(session: &Session) {
    let addrs: Vec<String> = session
        .local_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    tracing::info!(
        "listening on {} ({} shards)",
        addrs.join(" and "),
        session.shards()
    );
}

/// The snapshots of `ids` (a torrent the session no longer has is left
/// out).
pub fn snapshots(session: &Session, ids: &[TorrentId]) -> Result<Vec<TorrentSnapshot>> {
    let all = session.snapshot()?;
    Ok(all.into_iter().filter(|s| ids.contains(&s.id)).collect())
}

/// Waits until the first check of every torrent in `ids` has ended, and
/// calls `done` once for each as it does. Returns false when the user
/// stopped the program first. Fails when a shard failed.
pub fn wait_checked(
    session: &Session,
    ids: &[TorrentId],
    mut done: impl FnMut(&TorrentSnapshot),
) -> Result<bool> {
    let mut reported: HashSet<TorrentId> = HashSet::new();
    while reported.len() < ids.len() {
        if signals::stop_requested() {
            return Ok(false);
        }
        if let Some(why) = session.failure() {
            bail!(why);
        }
        wait_for_news(session);
        for s in snapshots(session, ids)? {
            let checked = !s.state.is_checking() && s.state != TorrentState::Stopping;
            if checked && reported.insert(s.id) {
                done(&s);
            }
        }
    }
    Ok(true)
}

/// Waits up to [`POLL_INTERVAL`] for an event, then takes every event
/// waiting: events only wake us early; snapshots are the truth.
pub fn wait_for_news(session: &Session) {
    if session.events().recv_timeout(POLL_INTERVAL).is_ok() {
        while session.events().try_recv().is_ok() {}
    }
}

/// Stops the session and prints what it moved.
pub fn stop(session: Session) -> StopReport {
    let report = session.stop();
    tracing::info!("shard handoffs: {}", report.handoffs);
    tracing::info!(
        "uploaded {} bytes, downloaded {} bytes",
        report.uploaded,
        report.downloaded
    );
    report
}
