//! How much one idle seeding torrent costs: time to add N small torrents
//! with known pieces (resume data: no check), and the memory and file
//! descriptors they hold once seeding with nobody connected.
//!
//! `cargo run --release -p ringseed --example idle_torrents -- 10000`
//!
//! Each torrent is one sparse file (64 KiB to 1 MiB of zeros, so no disk
//! is written and nothing is read), pieces of 64 KiB, no trackers. Adds are
//! pipelined with `send_add`: at most `IN_FLIGHT_MAX` answers outstanding,
//! and a full control queue (`SessionError::Busy`) waits for the oldest
//! answer before trying again. Memory is the process's resident set
//! (`VmRSS` of /proc/self/status) before the metainfo is built, after it,
//! and once every torrent seeds; fds are the entries of /proc/self/fd.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringseed::hash::sha1;
use ringseed::metainfo::{Metainfo, NewFile, TorrentBuilder};
use ringseed::runtime::session::{
    AddTorrent, Have, Mode, Session, SessionConfig, SessionError, Settings, TorrentState,
};
use ringseed::torrent::Bitfield;

/// Piece length of every torrent, bytes.
const PIECE: u64 = 64 * 1024;
/// Smallest and largest file, bytes.
const FILE_MIN: u64 = 64 * 1024;
const FILE_MAX: u64 = 1024 * 1024;
/// Most add answers waited for at once (below the control queue's 1024).
const IN_FLIGHT_MAX: usize = 512;
/// Longest the example waits for every torrent to seed.
const SEED_WAIT_MAX: Duration = Duration::from_secs(60);
/// Most torrents the example makes.
const TORRENTS_MAX: usize = 200_000;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time this process used so far (user + system), from
/// /proc/self/stat, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15, so 11 and 12 after ')'.
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// How long the idle CPU use is measured.
const IDLE_MEASURE: Duration = Duration::from_secs(2);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `--paused`: added paused (no engine), to tell the engine's share.
    let paused = std::env::args().any(|a| a == "--paused");
    let n: usize = match std::env::args().skip(1).find(|a| !a.starts_with("--")) {
        Some(a) => a.parse().map_err(|e| format!("torrent count {a:?}: {e}"))?,
        None => 10_000,
    };
    if n == 0 || n > TORRENTS_MAX {
        return Err(format!("torrent count {n}: expected 1 to {TORRENTS_MAX}").into());
    }
    let dir = tempfile::tempdir()?;
    let config = SessionConfig {
        shards: 2,
        listen: vec!["127.0.0.1:0".parse()?],
        pin: false,
        check_hash_threads: 1,
        ..SessionConfig::default()
    };
    let session = Session::start(config, Settings::default())?;
    let fds_start = open_fds();
    let rss_start = rss_kib();

    // The data and the metainfo (what the daemon holds anyway).
    let zeros = vec![0u8; PIECE as usize];
    let full_hash = sha1(&zeros);
    let mut metainfos = Vec::with_capacity(n);
    let mut rng = ringseed::rng::Rng::new(7);
    let made = Instant::now();
    for i in 0..n {
        let len = FILE_MIN + rng.below_usize((FILE_MAX - FILE_MIN) as usize + 1) as u64;
        let name = format!("t{i:06}.bin");
        std::fs::File::create(dir.path().join(&name))?.set_len(len)?;
        let pieces = len.div_ceil(PIECE) as usize;
        let last = (len - (pieces as u64 - 1) * PIECE) as usize;
        let mut hashes = vec![full_hash; pieces];
        hashes[pieces - 1] = sha1(&zeros[..last]);
        let b = TorrentBuilder {
            name,
            files: vec![NewFile {
                path: vec![],
                length: len,
            }],
            single_file: true,
            piece_length: PIECE,
            ..TorrentBuilder::default()
        };
        metainfos.push(Arc::new(Metainfo::from_bytes(&b.build(&hashes)?)?));
    }
    let rss_made = rss_kib();
    println!(
        "{n} torrents' files and metainfo made in {:.2} s",
        made.elapsed().as_secs_f64()
    );

    // Add them all, pipelined.
    let started = Instant::now();
    let mut pending = VecDeque::with_capacity(IN_FLIGHT_MAX);
    for m in &metainfos {
        let mut add = AddTorrent::new(m.clone(), dir.path().into(), Mode::Seed);
        add.have = Have::Known(Bitfield::full(m.info.pieces.len())?);
        add.paused = paused;
        loop {
            if pending.len() >= IN_FLIGHT_MAX {
                let p: ringseed::runtime::session::AddPending =
                    pending.pop_front().ok_or("no add in flight")?;
                p.wait(&session, Duration::from_secs(30))?;
            }
            match session.send_add(add.clone()) {
                Ok(p) => {
                    pending.push_back(p);
                    break;
                }
                Err(SessionError::Busy(_)) if !pending.is_empty() => {
                    let p = pending.pop_front().ok_or("no add in flight")?;
                    p.wait(&session, Duration::from_secs(30))?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    for p in pending {
        p.wait(&session, Duration::from_secs(30))?;
    }
    let added = started.elapsed();
    // Every one seeding (or paused, as asked).
    let want = if paused {
        TorrentState::Paused
    } else {
        TorrentState::Seeding
    };
    loop {
        let snaps = session.snapshot()?;
        let seeding = snaps.iter().filter(|s| s.state == want).count();
        if seeding == n {
            break;
        }
        if started.elapsed() > SEED_WAIT_MAX {
            return Err(format!("only {seeding} of {n} torrents seed").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let serving = started.elapsed();
    // Let the shards settle (first ticks, rate windows) before measuring.
    std::thread::sleep(Duration::from_millis(500));
    let rss_end = rss_kib();
    let fds_end = open_fds();
    let cpu_before = cpu_ticks();
    std::thread::sleep(IDLE_MEASURE);
    let idle_ticks = cpu_ticks().saturating_sub(cpu_before);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let per = |kib: u64| kib as f64 * 1024.0 / n as f64;
    println!(
        "added in {:.3} s ({:.0} torrents/s), all {} after {:.3} s",
        added.as_secs_f64(),
        n as f64 / added.as_secs_f64(),
        want.name(),
        serving.as_secs_f64()
    );
    println!(
        "RSS: {} KiB at start, +{} KiB metainfo ({:.0} B/torrent), +{} KiB in the session \
         ({:.0} B/torrent), {:.0} B/torrent in all",
        rss_start,
        rss_made.saturating_sub(rss_start),
        per(rss_made.saturating_sub(rss_start)),
        rss_end.saturating_sub(rss_made),
        per(rss_end.saturating_sub(rss_made)),
        per(rss_end.saturating_sub(rss_start)),
    );
    println!(
        "fds: {fds_start} at start, {fds_end} with the torrents ({:.2} per torrent)",
        (fds_end.saturating_sub(fds_start)) as f64 / n as f64
    );
    println!(
        "idle CPU: {:.1}% of one core over {} s (shard turns {:?})",
        idle_ticks as f64 / hz / IDLE_MEASURE.as_secs_f64() * 100.0,
        IDLE_MEASURE.as_secs(),
        session.shard_turns()
    );
    let t = Instant::now();
    session.stop();
    println!("stopped in {:.3} s", t.elapsed().as_secs_f64());
    Ok(())
}
