//! What `seed` and `download` share as clients of the engine's `Session`:
//! starting it from the engine options, adding their torrents, waiting for
//! the first checks, and stopping with a report. Their wait loops all go
//! through [`wait_for_news`], which also handles what may happen while they
//! wait: SIGHUP (a reload request), SIGUSR1 (a status request) and the
//! periodic status line (`--status-interval`).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use ringseed::metainfo::Metainfo;
use ringseed::runtime::session::{Session, StopReport, TorrentId, TorrentSnapshot, TorrentState};
use ringseed::runtime::signals;
use ringseed::InfoHash;

use super::engine_opts::EngineOpts;
use super::units::human_bytes;

/// How often the commands look at the session's numbers.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Starts a session from the options: settings are checked first, so a bad
/// value is reported before any thread or socket exists; then
/// `Session::start` checks the interface and opens the listeners (a port
/// in use is an error) before any torrent is added, so every option is
/// checked before any data is hashed.
pub fn start(opts: &EngineOpts) -> Result<Session> {
    let settings = opts.settings()?;
    let session = Session::start(opts.session_config(), settings)?;
    let every = (opts.status_interval > 0).then(|| Duration::from_secs(opts.status_interval));
    let now = Instant::now();
    *run_state() = Some(RunState {
        started: now,
        status_every: every,
        next_status: every.and_then(|e| now.checked_add(e)),
    });
    Ok(session)
}

/// Notes when a run started that did not go through [`start`] (the
/// daemon, which has its own status timer), for the stop line.
pub fn mark_started(at: Instant) {
    *run_state() = Some(RunState {
        started: at,
        status_every: None,
        next_status: None,
    });
}

/// What the reporting side of a run keeps between calls: one command runs
/// one session per process, so this lives beside it rather than in every
/// caller's loop.
struct RunState {
    started: Instant,
    /// `--status-interval`; `None` when off.
    status_every: Option<Duration>,
    next_status: Option<Instant>,
}

static RUN: Mutex<Option<RunState>> = Mutex::new(None);

fn run_state() -> std::sync::MutexGuard<'static, Option<RunState>> {
    RUN.lock().unwrap_or_else(PoisonError::into_inner)
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
/// waiting: events only wake us early; snapshots are the truth. Then
/// handles a SIGHUP, a SIGUSR1 or a due status line (see [`housekeeping`]).
pub fn wait_for_news(session: &Session) {
    if session.events().recv_timeout(POLL_INTERVAL).is_ok() {
        while session.events().try_recv().is_ok() {}
    }
    housekeeping(session);
}

/// What SIGHUP does: `seed` and `download` have no configuration file yet,
/// so there is nothing to reload. (The daemon reloads its file here.)
pub const NOTHING_TO_RELOAD: &str = "SIGHUP: nothing to reload (no configuration file); ignored";

/// Handles what the wait loops must notice: a reload request (SIGHUP), a
/// status request (SIGUSR1, answered at once) and the periodic status line.
pub fn housekeeping(session: &Session) {
    if signals::take_reload_request() {
        tracing::info!("{NOTHING_TO_RELOAD}");
    }
    let asked = signals::take_status_request();
    let now = Instant::now();
    let due = {
        let mut run = run_state();
        match run.as_mut() {
            Some(r) => {
                let due = r.next_status.is_some_and(|at| now >= at);
                if due || asked {
                    r.next_status = r.status_every.and_then(|e| now.checked_add(e));
                }
                due
            }
            None => false,
        }
    };
    if due || asked {
        match session.snapshot() {
            Ok(all) => tracing::info!("{}", status_line(&all)),
            Err(e) => tracing::warn!("status: no snapshot ({e})"),
        }
    }
}

/// The one-line status of all torrents: how many in each state, peers,
/// rates and the bytes moved (earlier sessions included), e.g. `status: 12
/// torrents (11 seeding, 1 downloading), 84 peers, up 412.30 MiB/s, down 0
/// B/s, uploaded 1.20 TiB, downloaded 3.00 GiB`.
pub fn status_line(torrents: &[TorrentSnapshot]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for t in torrents {
        let state = if t.state.is_checking() {
            "checking"
        } else {
            t.state.name()
        };
        match counts.iter_mut().find(|(name, _)| *name == state) {
            Some((_, n)) => *n += 1,
            None => counts.push((state, 1)),
        }
    }
    const ORDER: [&str; 6] = [
        "seeding",
        "downloading",
        "checking",
        "paused",
        "stopping",
        "error",
    ];
    counts.sort_by_key(|(name, _)| ORDER.iter().position(|o| o == name).unwrap_or(ORDER.len()));
    let states: Vec<String> = counts
        .iter()
        .map(|(name, n)| format!("{n} {name}"))
        .collect();
    let sum =
        |f: fn(&TorrentSnapshot) -> u64| torrents.iter().map(f).fold(0u64, u64::saturating_add);
    let peers = torrents
        .iter()
        .map(|t| t.peers)
        .fold(0usize, usize::saturating_add);
    let n = torrents.len();
    format!(
        "status: {n} torrent{}{}, {peers} peer{}, up {}/s, down {}/s, uploaded {}, downloaded {}",
        if n == 1 { "" } else { "s" },
        if states.is_empty() {
            String::new()
        } else {
            format!(" ({})", states.join(", "))
        },
        if peers == 1 { "" } else { "s" },
        human_bytes(sum(|t| t.rate_up)),
        human_bytes(sum(|t| t.rate_down)),
        human_bytes(sum(|t| t.uploaded)),
        human_bytes(sum(|t| t.downloaded)),
    )
}

/// `45s`, `2m05s`, `3h12m`, `2d03h`: how long a run lasted, to the unit an
/// operator reads at a glance.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Stops the session and prints what it moved in this run.
pub fn stop(session: Session) -> StopReport {
    let report = session.stop();
    let took = run_state()
        .as_ref()
        .map_or(Duration::ZERO, |r| r.started.elapsed());
    tracing::info!(
        "stopped: uploaded {}, downloaded {} in {}",
        human_bytes(report.uploaded),
        human_bytes(report.downloaded),
        human_duration(took)
    );
    tracing::debug!(
        "connections handed between shards: {} (uploaded {} bytes, downloaded {} bytes, {} blocks spliced)",
        report.handoffs,
        report.uploaded,
        report.downloaded,
        report.spliced_blocks
    );
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringseed::runtime::session::{Mode, TorrentLimits};
    use ringseed::InfoHash;

    fn snap(state: TorrentState, peers: usize, up: u64, down: u64) -> TorrentSnapshot {
        TorrentSnapshot {
            id: TorrentId::from_u64(1),
            info_hash: InfoHash([0; 20]),
            name: "t".into(),
            save_dir: "/tmp".into(),
            mode: Mode::Seed,
            state,
            pieces_have: 1,
            pieces: 1,
            total_length: 1,
            bytes_left: 0,
            uploaded: up,
            downloaded: down,
            rate_up: up / 10,
            rate_down: down / 10,
            peers,
            seeds: 0,
            unchoked: 0,
            hash_failures: 0,
            limits: TorrentLimits::default(),
            tracker_error: None,
            error: None,
            missing_files: Vec::new(),
        }
    }

    #[test]
    fn status_line_counts_states_peers_and_bytes() {
        let mut all = vec![snap(TorrentState::Downloading, 4, 0, 10 << 20)];
        all.extend((0..11).map(|_| snap(TorrentState::Seeding, 7, 1 << 40, 0)));
        all.push(snap(TorrentState::Checking { pieces_checked: 3 }, 0, 0, 0));
        all.push(snap(TorrentState::CheckQueued, 0, 0, 0));
        all.push(snap(TorrentState::Error, 0, 0, 0));
        assert_eq!(
            status_line(&all),
            "status: 15 torrents (11 seeding, 1 downloading, 2 checking, 1 error), 81 peers, \
             up 1.10 TiB/s, down 1.00 MiB/s, uploaded 11.00 TiB, downloaded 10.00 MiB"
        );
        assert_eq!(
            status_line(&[snap(TorrentState::Seeding, 1, 0, 0)]),
            "status: 1 torrent (1 seeding), 1 peer, up 0 B/s, down 0 B/s, uploaded 0 B, \
             downloaded 0 B"
        );
        assert_eq!(
            status_line(&[]),
            "status: 0 torrents, 0 peers, up 0 B/s, down 0 B/s, uploaded 0 B, downloaded 0 B"
        );
        // Sums saturate instead of overflowing.
        let huge = vec![snap(TorrentState::Seeding, 0, u64::MAX, 0); 2];
        assert!(status_line(&huge).contains("uploaded 16.00 EiB"));
    }

    #[test]
    fn durations_read_at_a_glance() {
        let d = Duration::from_secs;
        assert_eq!(human_duration(d(0)), "0s");
        assert_eq!(human_duration(d(59)), "59s");
        assert_eq!(human_duration(d(125)), "2m05s");
        assert_eq!(human_duration(d(3 * 3600 + 12 * 60 + 59)), "3h12m");
        assert_eq!(human_duration(d(2 * 86_400 + 3 * 3600)), "2d03h");
    }
}
