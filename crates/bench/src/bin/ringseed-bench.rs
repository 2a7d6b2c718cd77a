//! `ringseed-bench`: the swarm load generator's command line (issue 4).
//!
//! - `leech`: K synthetic leechers against a seeder, on one torrent or
//!   spread over several; prints the report (goodput, good/bad blocks,
//!   per-peer rates and fairness, latency, CPU, per-torrent counts).
//! - `serve`: the trivial seeder of a deterministic payload.
//! - `plot`: an SVG of `benches/swarm/run.sh` results.
//! - `make-torrent`: the .torrent of a payload (or of `--count` payloads),
//!   and optionally the payload itself as a file, so `ringseed seed` can
//!   serve it.
//! - `delay-line`: forwards packets between two TUN devices with a fixed
//!   delay (benches/swarm/netns.sh starts it; docs/swarm_delay.md).
//!
//! Boundary: argument parsing, files and printing; the work is in
//! `ringseed_bench::driver` and `ringseed_bench::loadgen`.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ringseed::metainfo::Metainfo;
use ringseed::peer::TorrentShape;
use ringseed_bench::driver::delay_line;
use ringseed_bench::driver::leech::{run_leech_with, LeechOptions, LeechTorrent, WarmupUntil};
use ringseed_bench::driver::proc_stats;
use ringseed_bench::driver::serve::{run_serve, ServeOptions, LISTENS_MAX};
use ringseed_bench::driver::stream;
use ringseed_bench::driver::{default_threads, install_stop_signals, stop_requested, PEERS_MAX};
use ringseed_bench::loadgen::leecher::REQUESTS_MAX_DEFAULT;
use ringseed_bench::loadgen::payload::{Payload, TOTAL_LENGTH_MAX_BYTES};
use ringseed_bench::loadgen::payload_cache::CACHE_BYTES_MAX_DEFAULT;
use ringseed_bench::loadgen::plot::plot_results;
use ringseed_bench::loadgen::report::{PeerSample, Report, ReportInput};
use ringseed_bench::loadgen::torrent_set::{self, PeerFigures, TORRENTS_MAX};

/// Largest .torrent read, in bytes.
const TORRENT_BYTES_MAX: u64 = 64 << 20;
/// How often, and how many times, serve looks whether it listens yet.
const READY_POLL: Duration = Duration::from_millis(10);
const READY_POLLS_MAX: u32 = 6000;
/// Largest results file plotted, in bytes.
const RESULTS_BYTES_MAX: u64 = 256 << 20;
/// Bytes generated and written at a time by make-torrent.
const WRITE_CHUNK_BYTES: usize = 4 << 20;

#[derive(Parser)]
#[command(
    name = "ringseed-bench",
    version,
    about = "Swarm load generator for ringseed"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// K synthetic leechers download from a seeder and check every block.
    ///
    /// Several torrents (--torrent repeated and/or --torrent-dir): peer i
    /// downloads torrent i % T, in the order given (--torrent first, then
    /// the directory's files by name). A torrent named
    /// ringseed-bench-SEED-SIZE (as make-torrent names them) is checked
    /// against payload SEED; any other name against --payload-seed plus its
    /// index in that order.
    Leech {
        /// A .torrent to download; repeatable.
        #[arg(long)]
        torrent: Vec<PathBuf>,
        /// Every *.torrent file in this directory too (sorted by file name).
        #[arg(long, value_name = "DIR")]
        torrent_dir: Option<PathBuf>,
        #[arg(long)]
        target: SocketAddr,
        /// Synthetic peers in all, spread evenly over the torrents
        /// [default: one per torrent].
        #[arg(long, conflicts_with = "peers_per_torrent")]
        peers: Option<u32>,
        /// Synthetic peers per torrent (instead of --peers).
        #[arg(long)]
        peers_per_torrent: Option<u32>,
        /// Requests each peer keeps outstanding.
        #[arg(long, default_value_t = REQUESTS_MAX_DEFAULT)]
        requests: u32,
        /// Seconds to run.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seed of the payload of a torrent whose name does not say it
        /// (plus the torrent's index when there are several).
        #[arg(long, default_value_t = 1)]
        payload_seed: u64,
        /// Threads (default: the CPUs).
        #[arg(long)]
        threads: Option<usize>,
        /// Each peer stops after this many good bytes (default: never).
        #[arg(long)]
        bytes_per_peer: Option<u64>,
        /// PID of the seeder, to report its CPU time.
        #[arg(long)]
        seeder_pid: Option<u32>,
        /// Check one block in this many (default: every block); the report's
        /// bytes then include the unchecked ones.
        #[arg(long, default_value_t = 1)]
        check_every: u32,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Peer i binds this IPv4 address plus i (default: its own 127.1.x.y
        /// for a loopback target, else the kernel's choice).
        #[arg(long)]
        source_base: Option<std::net::Ipv4Addr>,
        /// Longest warm-up in seconds: peers connect, handshake and say they
        /// are interested but ask for nothing until every peer has the
        /// seeder's handshake (or this time passed); the --duration window,
        /// and the CPU figures, start after it. 0: no warm-up.
        #[arg(long, default_value_t = 30.0)]
        warmup_max: f64,
        /// What each peer waits for in the warm-up: `handshake`, or
        /// `unchoke` (its handshake and an unchoke, for seeders that unchoke
        /// every peer but only on a timer).
        #[arg(long, default_value = "handshake", value_parser = parse_warmup_until)]
        warmup_until: WarmupUntil,
        /// Peers never ask for a block: they connect, handshake, say they
        /// are interested and stay (connected idle peers).
        #[arg(long)]
        idle: bool,
        /// Connections closed and dialled again per second once the window
        /// started (connection churn); the report counts the handshakes the
        /// seeder answered.
        #[arg(long, default_value_t = 0)]
        churn_per_s: u32,
    },
    /// A trivial seeder of the deterministic payload, or K synthetic seeds.
    Serve {
        /// Where to listen; repeatable (one synthetic seed per address).
        #[arg(long, required = true)]
        listen: Vec<SocketAddr>,
        /// K synthetic seeds: the first --listen address and the K-1 IPv4
        /// addresses after it, same port.
        #[arg(long)]
        seeds: Option<u32>,
        #[arg(long, default_value_t = 1)]
        payload_seed: u64,
        /// Payload bytes: a number, or with a K, M or G suffix (binary).
        #[arg(long, value_parser = parse_size)]
        size: u64,
        /// Piece length in bytes (K and M suffixes accepted).
        #[arg(long, default_value = "256K", value_parser = parse_size)]
        piece_length: u64,
        /// Torrent name (must match make-torrent's for the same info-hash).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        threads: Option<usize>,
        /// Connections each thread holds at most.
        #[arg(long, default_value_t = 1024)]
        conns_per_thread: u32,
        /// Seconds to run (default: until SIGINT/SIGTERM).
        #[arg(long)]
        duration: Option<f64>,
        /// Bytes of generated pieces kept in memory (K, M, G suffixes); 0:
        /// no cache, every block generated as it is sent.
        #[arg(long, default_value_t = CACHE_BYTES_MAX_DEFAULT, value_parser = parse_size)]
        cache_bytes_max: u64,
    },
    /// Draws benches/swarm/run.sh results (JSON lines) as an SVG: goodput,
    /// seeder CPU per GiB and seeder peak RSS against the peer count.
    Plot {
        /// The results file (one JSON object a line).
        #[arg(long)]
        results: PathBuf,
        #[arg(short = 'o', long)]
        output: PathBuf,
        #[arg(
            long,
            default_value = "Swarm bench: seeders under K synthetic leechers"
        )]
        title: String,
    },
    /// Forwards packets between a TUN device here and one in a network
    /// namespace, adding --delay-ms to the round trip (half each way), until
    /// SIGINT/SIGTERM.
    DelayLine {
        /// The TUN device in this namespace.
        #[arg(long)]
        outer_tun: String,
        /// The namespace (as in `ip netns`) holding --inner-tun.
        #[arg(long)]
        netns: String,
        #[arg(long)]
        inner_tun: String,
        /// Milliseconds added to the round-trip time (D/2 each direction).
        #[arg(long)]
        delay_ms: u64,
        /// Bound of each direction's queue (K, M, G suffixes accepted).
        #[arg(long, default_value_t = delay_line::QUEUE_BYTES_DEFAULT as u64, value_parser = parse_size)]
        queue_bytes: u64,
    },
    /// One bulk TCP stream's sender (the far-peer bench's ceiling): accepts
    /// connections on --listen and writes to each until it closes, for
    /// --duration seconds in all or until SIGINT/SIGTERM.
    StreamSend {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 600.0)]
        duration: f64,
    },
    /// One bulk TCP stream's receiver: connects to --target (from --source
    /// when given), reads for --duration seconds and reports MB/s over the
    /// run and over its second half.
    StreamRecv {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long)]
        source: Option<std::net::IpAddr>,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Writes the .torrent of a payload (and, with --data-dir, its bytes).
    ///
    /// With --count T: T payloads of --size bytes each, seeds S, S+1, ...,
    /// S+T-1, named ringseed-bench-SEED-SIZE; -o is then a directory that
    /// receives NAME.torrent for each.
    MakeTorrent {
        #[arg(long, default_value_t = 1)]
        payload_seed: u64,
        /// Number of torrents (payload seeds counting up from --payload-seed).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=TORRENTS_MAX as i64))]
        count: Option<u32>,
        /// Payload bytes: a number, or with a K, M or G suffix (binary).
        #[arg(long, value_parser = parse_size)]
        size: u64,
        /// Piece length in bytes (K and M suffixes accepted).
        #[arg(long, default_value = "256K", value_parser = parse_size)]
        piece_length: u64,
        /// The .torrent to write (with --count: the directory to write them in).
        #[arg(short = 'o', long)]
        output: PathBuf,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long, conflicts_with = "count")]
        name: Option<String>,
        #[arg(long)]
        tracker: Option<String>,
    },
}

/// The --listen addresses, the first one grown into `seeds` consecutive
/// IPv4 addresses (same port) when asked.
fn expand_seeds(listen: Vec<SocketAddr>, seeds: Option<u32>) -> Result<Vec<SocketAddr>> {
    let Some(k) = seeds else { return Ok(listen) };
    let Some(SocketAddr::V4(first)) = listen.first().copied() else {
        bail!("--seeds needs an IPv4 --listen address");
    };
    if k == 0 || k as usize > LISTENS_MAX {
        bail!("--seeds {k}: expected 1 to {LISTENS_MAX}");
    }
    let base = u32::from(*first.ip());
    let mut out: Vec<SocketAddr> = (0..k)
        .map(|i| {
            let ip = std::net::Ipv4Addr::from(base.wrapping_add(i));
            SocketAddr::from((ip, first.port()))
        })
        .collect();
    out.extend(listen.into_iter().skip(1));
    Ok(out)
}

fn default_name(seed: u64, size: u64) -> String {
    torrent_set::bench_name(seed, size)
}

fn parse_warmup_until(text: &str) -> Result<WarmupUntil, String> {
    match text {
        "handshake" => Ok(WarmupUntil::Handshake),
        "unchoke" => Ok(WarmupUntil::Unchoke),
        other => Err(format!("expected handshake or unchoke, got {other:?}")),
    }
}

fn seconds(what: &str, s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s).with_context(|| format!("{what} {s}: expected seconds >= 0"))
}

/// A byte count: digits, optionally followed by K, M or G (powers of 1024).
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, c)) if c.eq_ignore_ascii_case(&'k') => (&t[..i], 10),
        Some((i, c)) if c.eq_ignore_ascii_case(&'m') => (&t[..i], 20),
        Some((i, c)) if c.eq_ignore_ascii_case(&'g') => (&t[..i], 30),
        _ => (t, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (examples: 1048576, 512K, 256M, 1G)"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    install_stop_signals();
    match cli.command {
        Command::Leech {
            torrent,
            torrent_dir,
            target,
            peers,
            peers_per_torrent,
            requests,
            duration,
            payload_seed,
            threads,
            bytes_per_peer,
            seeder_pid,
            check_every,
            json,
            source_base,
            warmup_max,
            warmup_until,
            idle,
            churn_per_s,
        } => leech(LeechArgs {
            torrents: torrent_paths(torrent, torrent_dir.as_deref())?,
            target,
            peers,
            peers_per_torrent,
            requests,
            duration: seconds("--duration", duration)?,
            payload_seed,
            threads: threads.unwrap_or_else(default_threads),
            bytes_per_peer,
            seeder_pid,
            check_every,
            json,
            source_base,
            warmup_max: seconds("--warmup-max", warmup_max)?,
            warmup_until,
            idle,
            churn_per_s,
        }),
        Command::Serve {
            listen,
            seeds,
            payload_seed,
            size,
            piece_length,
            name,
            threads,
            conns_per_thread,
            duration,
            cache_bytes_max,
        } => {
            let listen = expand_seeds(listen, seeds)?;
            let first = listen.first().copied().context("no --listen address")?;
            let payload = Payload::new(payload_seed, size, piece_length)?;
            let name = name.unwrap_or_else(|| default_name(payload_seed, size));
            let threads = threads.unwrap_or_else(default_threads);
            let hashes = payload.piece_hashes_threads(threads);
            let meta = Metainfo::from_bytes(&payload.torrent_bytes_with(&name, None, &hashes)?)?;
            let shape = TorrentShape::new(meta.info_hash, piece_length, size)?;
            let opts = ServeOptions {
                listen,
                shape,
                payload,
                threads,
                conns_per_thread,
                duration: duration.map(|d| seconds("--duration", d)).transpose()?,
                cache_bytes_max,
            };
            let all: Vec<String> = opts.listen.iter().map(|a| a.to_string()).collect();
            eprintln!(
                "ringseed-bench: serving {size} bytes (info-hash {}) on {}",
                meta.info_hash,
                all.join(" ")
            );
            let ready = AtomicBool::new(false);
            let finished = AtomicBool::new(false);
            let out = std::thread::scope(|s| {
                // Says "listening" once every thread's listener is bound.
                s.spawn(|| {
                    for _ in 0..READY_POLLS_MAX {
                        if finished.load(Ordering::SeqCst) {
                            return;
                        }
                        if ready.load(Ordering::SeqCst) {
                            eprintln!("ringseed-bench: listening on {first}");
                            return;
                        }
                        std::thread::sleep(READY_POLL);
                    }
                });
                let out = run_serve(&opts, &ready);
                finished.store(true, Ordering::SeqCst);
                out
            })?;
            let secs = out.wall.as_secs_f64().max(1e-9);
            eprintln!(
                "ringseed-bench: served {} bytes in {} blocks to {} connections ({} refused) in {:.3} s, {:.1} MB/s",
                out.stats.block_bytes_sent,
                out.stats.blocks_sent,
                out.connections,
                out.refused,
                secs,
                out.stats.block_bytes_sent as f64 / 1e6 / secs
            );
            let c = out.cache;
            eprintln!(
                "ringseed-bench: piece cache: {} hits, {} misses, {} evictions, {} bytes generated",
                c.hits, c.misses, c.evictions, c.bytes_generated
            );
            Ok(())
        }
        Command::Plot {
            results,
            output,
            title,
        } => {
            let len = std::fs::metadata(&results)
                .with_context(|| format!("reading {}", results.display()))?
                .len();
            if len > RESULTS_BYTES_MAX {
                bail!(
                    "{}: {len} bytes, over the limit of {RESULTS_BYTES_MAX}",
                    results.display()
                );
            }
            let text = std::fs::read_to_string(&results)
                .with_context(|| format!("reading {}", results.display()))?;
            let svg = plot_results(&text, &title)
                .with_context(|| format!("plotting {}", results.display()))?;
            std::fs::write(&output, svg)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!("ringseed-bench: wrote {}", output.display());
            Ok(())
        }
        Command::StreamSend { listen, duration } => {
            let duration = seconds("--duration", duration)?;
            let stop = AtomicBool::new(false);
            let done = AtomicBool::new(false);
            let served = std::thread::scope(|s| {
                s.spawn(|| {
                    while !done.load(Ordering::SeqCst) {
                        if stop_requested() {
                            stop.store(true, Ordering::SeqCst);
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                });
                eprintln!("ringseed-bench: stream sender on {listen}");
                let r = stream::run_sender(listen, duration, &stop);
                done.store(true, Ordering::SeqCst);
                r
            })
            .with_context(|| format!("stream sender on {listen}"))?;
            eprintln!("ringseed-bench: stream sender served {served} connection(s)");
            Ok(())
        }
        Command::StreamRecv {
            target,
            source,
            duration,
            json,
        } => {
            let duration = seconds("--duration", duration)?;
            let out = stream::run_receiver(target, source, duration)
                .with_context(|| format!("stream from {target}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "bytes": out.bytes,
                        "wall_s": out.wall.as_secs_f64(),
                        "mb_s": out.mb_s(),
                        "second_half_mb_s": out.second_half_mb_s(),
                    })
                );
            } else {
                println!(
                    "{} bytes in {:.2} s: {:.1} MB/s ({:.1} MB/s over the second half)",
                    out.bytes,
                    out.wall.as_secs_f64(),
                    out.mb_s(),
                    out.second_half_mb_s()
                );
            }
            Ok(())
        }
        Command::DelayLine {
            outer_tun,
            netns,
            inner_tun,
            delay_ms,
            queue_bytes,
        } => run_delay_line(delay_line::DelayLineOptions {
            outer_tun,
            netns,
            inner_tun,
            delay_rtt: Duration::from_millis(delay_ms),
            queue_bytes: usize::try_from(queue_bytes).context("--queue-bytes")?,
        }),
        Command::MakeTorrent {
            payload_seed,
            count,
            size,
            piece_length,
            output,
            data_dir,
            name,
            tracker,
        } => {
            let tracker = tracker.as_deref();
            let Some(count) = count else {
                let name = name.unwrap_or_else(|| default_name(payload_seed, size));
                let info_hash = make_torrent(
                    payload_seed,
                    size,
                    piece_length,
                    &name,
                    tracker,
                    &output,
                    data_dir.as_deref(),
                )?;
                println!("{info_hash} {}", output.display());
                return Ok(());
            };
            let seeds = torrent_set::make_seeds(payload_seed, count as usize)?;
            if size
                .checked_mul(u64::from(count))
                .is_none_or(|b| b > TOTAL_LENGTH_MAX_BYTES)
            {
                bail!("{count} torrents of {size} bytes: over the limit of {TOTAL_LENGTH_MAX_BYTES} bytes in all");
            }
            std::fs::create_dir_all(&output)
                .with_context(|| format!("creating {}", output.display()))?;
            for seed in seeds {
                let name = default_name(seed, size);
                let path = output.join(format!("{name}.torrent"));
                let info_hash = make_torrent(
                    seed,
                    size,
                    piece_length,
                    &name,
                    tracker,
                    &path,
                    data_dir.as_deref(),
                )?;
                println!("{info_hash} {}", path.display());
            }
            Ok(())
        }
    }
}

/// Writes the .torrent of payload `seed` to `output` and, with `data_dir`,
/// the payload as `data_dir/name`; the torrent's info-hash.
fn make_torrent(
    seed: u64,
    size: u64,
    piece_length: u64,
    name: &str,
    tracker: Option<&str>,
    output: &Path,
    data_dir: Option<&Path>,
) -> Result<ringseed::InfoHash> {
    let payload = Payload::new(seed, size, piece_length)?;
    let hashes = payload.piece_hashes_threads(default_threads());
    let bytes = payload.torrent_bytes_with(name, tracker, &hashes)?;
    std::fs::write(output, &bytes).with_context(|| format!("writing {}", output.display()))?;
    if let Some(dir) = data_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(name);
        let mut f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut buf = vec![0u8; WRITE_CHUNK_BYTES];
        let mut at = 0u64;
        while at < size {
            let n = (size - at).min(WRITE_CHUNK_BYTES as u64) as usize;
            let chunk = buf.get_mut(..n).unwrap_or(&mut []);
            payload.fill(at, chunk);
            f.write_all(chunk)
                .with_context(|| format!("writing {}", path.display()))?;
            at += n as u64;
        }
        f.sync_all().ok();
    }
    Ok(Metainfo::from_bytes(&bytes)?.info_hash)
}

/// The --torrent paths, then the *.torrent files of `dir` sorted by file
/// name; at least one and at most [`TORRENTS_MAX`].
fn torrent_paths(mut paths: Vec<PathBuf>, dir: Option<&Path>) -> Result<Vec<PathBuf>> {
    if let Some(dir) = dir {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry
                .with_context(|| format!("reading {}", dir.display()))?
                .path();
            if path.extension().is_some_and(|e| e == "torrent") && path.is_file() {
                if paths.len() + found.len() >= TORRENTS_MAX {
                    bail!(
                        "{}: more than {TORRENTS_MAX} torrents in all",
                        dir.display()
                    );
                }
                found.push(path);
            }
        }
        if found.is_empty() {
            bail!("{}: no *.torrent file", dir.display());
        }
        found.sort();
        paths.extend(found);
    }
    if paths.is_empty() {
        bail!("no torrent: give --torrent FILE or --torrent-dir DIR");
    }
    torrent_set::check_count(paths.len())?;
    Ok(paths)
}

/// One torrent of a leech run, read and checked against its payload.
struct Loaded {
    name: String,
    seed: u64,
    torrent: LeechTorrent,
}

/// Reads `path` (torrent `index` of the run) and finds its payload seed
/// (see [`torrent_set::payload_seed`]); fails when that payload does not
/// give the torrent's first piece hash.
fn load_torrent(path: &Path, index: usize, base_seed: u64) -> Result<Loaded> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > TORRENT_BYTES_MAX {
        bail!(
            "{}: {len} bytes, over the limit of {TORRENT_BYTES_MAX}",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let meta =
        Metainfo::from_bytes(&bytes).with_context(|| format!("reading {}", path.display()))?;
    let (piece_length, total) = (meta.info.piece_length, meta.info.total_length);
    let seed =
        torrent_set::payload_seed(&meta.info.name, total, base_seed, index).with_context(|| {
            format!(
                "{}: payload seed {base_seed} + {index} overflows",
                path.display()
            )
        })?;
    let payload = Payload::new(seed, total, piece_length)?;
    // The payload must be the torrent's: compare the first piece's hash.
    if payload.piece_hash(0) != meta.info.pieces.first().copied() {
        bail!(
            "payload seed {seed} does not generate {} (piece 0's hash differs)",
            path.display()
        );
    }
    let shape = TorrentShape::new(meta.info_hash, piece_length, total)?;
    Ok(Loaded {
        name: meta.info.name.clone(),
        seed,
        torrent: LeechTorrent { shape, payload },
    })
}

struct LeechArgs {
    torrents: Vec<PathBuf>,
    target: SocketAddr,
    peers: Option<u32>,
    peers_per_torrent: Option<u32>,
    requests: u32,
    duration: Duration,
    payload_seed: u64,
    threads: usize,
    bytes_per_peer: Option<u64>,
    seeder_pid: Option<u32>,
    check_every: u32,
    json: bool,
    source_base: Option<std::net::Ipv4Addr>,
    warmup_max: Duration,
    warmup_until: WarmupUntil,
    idle: bool,
    churn_per_s: u32,
}

fn run_delay_line(opts: delay_line::DelayLineOptions) -> Result<()> {
    let ready = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..READY_POLLS_MAX {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                if ready.load(Ordering::SeqCst) {
                    eprintln!("delay-line: ready");
                    return;
                }
                std::thread::sleep(READY_POLL);
            }
        });
        let out = delay_line::run_delay_line(&opts, &ready, &stop);
        stop.store(true, Ordering::SeqCst);
        out
    })?;
    let secs = out.wall.as_secs_f64().max(1e-9);
    for (what, d) in [("inward", out.inward), ("outward", out.outward)] {
        let q = d.queue;
        eprintln!(
            "delay-line: {what}: {} packets {} bytes forwarded ({:.1} MB/s), {} packets {} bytes dropped (queue full), {} write errors, {} left queued",
            q.packets_out,
            q.bytes_out,
            q.bytes_out as f64 / 1e6 / secs,
            q.packets_dropped,
            q.bytes_dropped,
            d.write_errors,
            d.left_in_queue
        );
    }
    Ok(())
}

fn leech(a: LeechArgs) -> Result<()> {
    let mut loaded = Vec::with_capacity(a.torrents.len());
    for (i, path) in a.torrents.iter().enumerate() {
        loaded.push(load_torrent(path, i, a.payload_seed)?);
    }
    let peers = torrent_set::total_peers(loaded.len(), a.peers, a.peers_per_torrent, PEERS_MAX)?;
    let opts = LeechOptions {
        target: a.target,
        torrents: loaded.iter().map(|l| l.torrent).collect(),
        peers,
        requests: a.requests,
        duration: a.duration,
        threads: a.threads,
        bytes_per_peer: a.bytes_per_peer,
        order_seed: a.payload_seed,
        check_every: a.check_every,
        source_base: a.source_base,
        warmup_max: a.warmup_max,
        warmup_until: a.warmup_until,
        idle: a.idle,
        churn_per_s: a.churn_per_s,
    };
    // CPU is counted over the measured window: sampled when it starts
    // (after the warm-up), by whichever leech thread starts it.
    let before = std::sync::Mutex::new(None);
    let out = run_leech_with(&opts, &|| {
        let sample = (
            a.seeder_pid.and_then(|p| proc_stats::read(p).ok()),
            proc_stats::self_stats().ok(),
        );
        if let Ok(mut b) = before.lock() {
            *b = Some(sample);
        }
    })?;
    let (seeder_before, self_before) = before.into_inner().ok().flatten().unwrap_or((None, None));
    let self_after = proc_stats::self_stats().ok();
    let seeder_after = a.seeder_pid.and_then(|p| proc_stats::read(p).ok());
    let delta = |b: Option<proc_stats::ProcStats>, a: Option<proc_stats::ProcStats>| {
        b.zip(a).map(|(b, a)| proc_stats::delta(&b, &a).into())
    };
    let samples: Vec<PeerSample> = out
        .peers
        .iter()
        .map(|p| PeerSample {
            bytes: p.stats.bytes_good + p.stats.bytes_unchecked,
            active: p.active,
        })
        .collect();
    let report = Report::new(&ReportInput {
        wall: out.wall,
        peers: &samples,
        latency: Some(&out.latency),
        seeder: delta(seeder_before, seeder_after),
        loadgen: delta(self_before, self_after),
    });
    let sum = |f: fn(&ringseed_bench::loadgen::leecher::LeecherStats) -> u64| {
        out.peers.iter().map(|p| f(&p.stats)).sum::<u64>()
    };
    let blocks_good = sum(|s| s.blocks_good);
    let blocks_bad = sum(|s| s.blocks_bad);
    let bytes_bad = sum(|s| s.bytes_bad);
    let blocks_unchecked = sum(|s| s.blocks_unchecked);
    let connected = out.peers.iter().filter(|p| p.connected).count();
    let handshakes: u64 = out.peers.iter().map(|p| p.handshakes).sum();
    let redials: u64 = out.peers.iter().map(|p| p.redials).sum();
    let wall_s = out.wall.as_secs_f64();
    let redials_per_s = if wall_s > 0.0 {
        redials as f64 / wall_s
    } else {
        0.0
    };
    let per_torrent = torrent_set::totals(
        loaded.len(),
        out.peers.iter().map(|p| PeerFigures {
            torrent: p.torrent,
            connected: p.connected,
            bytes: p.stats.bytes_good + p.stats.bytes_unchecked,
            blocks_bad: p.stats.blocks_bad,
        }),
    );
    let errors: Vec<String> = out
        .peers
        .iter()
        .filter_map(|p| p.error.as_ref().map(|e| format!("peer {}: {e}", p.index)))
        .take(5)
        .collect();
    if a.json {
        let mut v = report.to_json();
        if let Some(o) = v.as_object_mut() {
            o.insert("blocks_good".into(), blocks_good.into());
            o.insert("blocks_bad".into(), blocks_bad.into());
            o.insert("bytes_bad".into(), bytes_bad.into());
            o.insert("blocks_unchecked".into(), blocks_unchecked.into());
            o.insert("peers_connected".into(), connected.into());
            o.insert("handshakes".into(), handshakes.into());
            o.insert("redials".into(), redials.into());
            o.insert("redials_per_s".into(), redials_per_s.into());
            o.insert("warmup_s".into(), out.warmup.as_secs_f64().into());
            o.insert(
                "peers_ready_at_start".into(),
                out.peers_ready_at_start.into(),
            );
            o.insert("errors".into(), errors.clone().into());
            o.insert("torrents".into(), loaded.len().into());
            let list: Vec<serde_json::Value> = loaded
                .iter()
                .zip(&per_torrent)
                .map(|(l, t)| {
                    serde_json::json!({
                        "name": l.name,
                        "payload_seed": l.seed,
                        "peers": t.peers,
                        "peers_connected": t.peers_connected,
                        "bytes": t.bytes,
                        "blocks_bad": t.blocks_bad,
                    })
                })
                .collect();
            o.insert("per_torrent".into(), list.into());
        }
        println!("{v}");
    } else {
        print!("{}", report.to_table());
        println!(
            "{:<24}{blocks_good} good, {blocks_bad} bad ({bytes_bad} bytes), {blocks_unchecked} unchecked",
            "blocks"
        );
        println!(
            "{:<24}{connected} of {} (handshake received)",
            "peers connected",
            out.peers.len()
        );
        println!(
            "{:<24}{:.2} s, {} peers ready when the window started",
            "warm-up",
            out.warmup.as_secs_f64(),
            out.peers_ready_at_start
        );
        if let Some(line) = torrents_line(&per_torrent) {
            println!("{:<24}{line}", "torrents");
        }
        if a.churn_per_s > 0 {
            println!(
                "{:<24}{redials} closed and dialled again ({redials_per_s:.1}/s), {handshakes} handshakes answered",
                "churn"
            );
        }
        for e in &errors {
            println!("{:<24}{e}", "error");
        }
    }
    Ok(())
}

/// The text report's line for several torrents: their count and the
/// spread of their bytes (`None` for one torrent).
fn torrents_line(per_torrent: &[torrent_set::TorrentTotals]) -> Option<String> {
    if per_torrent.len() < 2 {
        return None;
    }
    let mut bytes: Vec<u64> = per_torrent.iter().map(|t| t.bytes).collect();
    bytes.sort_unstable();
    let mb = |b: Option<&u64>| b.map_or(0.0, |&b| b as f64 / 1e6);
    let served = bytes.iter().filter(|&&b| b > 0).count();
    Some(format!(
        "{} ({served} got bytes); MB per torrent min / median / max {:.1} / {:.1} / {:.1}",
        bytes.len(),
        mb(bytes.first()),
        mb(bytes.get(bytes.len() / 2)),
        mb(bytes.last())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ringseed-bench").chain(args.iter().copied()))
    }

    #[test]
    fn leech_takes_several_torrents_and_one_peer_option() {
        let cli = parse(&[
            "leech",
            "--torrent",
            "a",
            "--torrent",
            "b",
            "--torrent-dir",
            "d",
            "--target",
            "127.0.0.1:1",
            "--peers-per-torrent",
            "10",
        ])
        .unwrap();
        let Command::Leech {
            torrent,
            torrent_dir,
            peers,
            peers_per_torrent,
            ..
        } = cli.command
        else {
            panic!("not leech");
        };
        assert_eq!(torrent, vec![PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(torrent_dir, Some(PathBuf::from("d")));
        assert_eq!((peers, peers_per_torrent), (None, Some(10)));
        assert!(parse(&[
            "leech",
            "--torrent",
            "a",
            "--target",
            "127.0.0.1:1",
            "--peers",
            "4",
            "--peers-per-torrent",
            "2",
        ])
        .is_err());
    }

    #[test]
    fn make_torrent_count_is_bounded_and_excludes_name() {
        let ok = parse(&["make-torrent", "--size", "1M", "--count", "3", "-o", "d"]).unwrap();
        assert!(matches!(
            ok.command,
            Command::MakeTorrent { count: Some(3), .. }
        ));
        for bad in [
            vec!["make-torrent", "--size", "1M", "--count", "0", "-o", "d"],
            vec![
                "make-torrent",
                "--size",
                "1M",
                "--count",
                "10001",
                "-o",
                "d",
            ],
            vec![
                "make-torrent",
                "--size",
                "1M",
                "--count",
                "2",
                "--name",
                "n",
                "-o",
                "d",
            ],
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn torrent_paths_lists_the_dir_sorted_after_the_files() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.torrent", "a.torrent", "notes.txt"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let got = torrent_paths(vec![PathBuf::from("z.torrent")], Some(dir.path())).unwrap();
        assert_eq!(
            got,
            vec![
                PathBuf::from("z.torrent"),
                dir.path().join("a.torrent"),
                dir.path().join("b.torrent"),
            ]
        );
        assert!(torrent_paths(Vec::new(), None).is_err());
        let empty = tempfile::tempdir().unwrap();
        assert!(torrent_paths(Vec::new(), Some(empty.path())).is_err());
        assert!(torrent_paths(Vec::new(), Some(&empty.path().join("missing"))).is_err());
    }

    #[test]
    fn made_torrents_load_with_their_seed_and_a_wrong_seed_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let size = 64 * 1024;
        let piece = 16 * 1024;
        let mut paths = Vec::new();
        for seed in [5, 6] {
            let path = dir.path().join(format!("{seed}.torrent"));
            make_torrent(
                seed,
                size,
                piece,
                &default_name(seed, size),
                None,
                &path,
                None,
            )
            .unwrap();
            paths.push(path);
        }
        // Seeds come from the names, whatever the base.
        for (i, p) in paths.iter().enumerate() {
            let l = load_torrent(p, i, 1).unwrap();
            assert_eq!(l.seed, 5 + i as u64);
            assert_eq!(l.name, default_name(l.seed, size));
        }
        // A custom name: base + index, checked against the hashes.
        let custom = dir.path().join("custom.torrent");
        make_torrent(9, size, piece, "custom", None, &custom, None).unwrap();
        assert_eq!(load_torrent(&custom, 2, 7).unwrap().seed, 9);
        let err = load_torrent(&custom, 0, 7).err().unwrap().to_string();
        assert!(err.contains("payload seed 7 does not generate"), "{err}");
    }

    #[test]
    fn torrents_line_only_for_several() {
        let t = |bytes| torrent_set::TorrentTotals {
            bytes,
            ..Default::default()
        };
        assert_eq!(torrents_line(&[t(5)]), None);
        let line = torrents_line(&[t(0), t(2_000_000), t(4_000_000)]).unwrap();
        assert_eq!(
            line,
            "3 (2 got bytes); MB per torrent min / median / max 0.0 / 2.0 / 4.0"
        );
    }
}
