//! `ringseed-bench`: the swarm load generator's command line (issue 4).
//!
//! - `leech`: K synthetic leechers against a seeder; prints the report
//!   (goodput, good/bad blocks, per-peer rates and fairness, latency, CPU).
//! - `serve`: the trivial seeder of a deterministic payload.
//! - `make-torrent`: the .torrent of a payload, and optionally the payload
//!   itself as a file, so `ringseed seed` can serve it.
//! - `delay-line`: forwards packets between two TUN devices with a fixed
//!   delay (benches/swarm/netns.sh starts it; docs/swarm_delay.md).
//!
//! Boundary: argument parsing, files and printing; the work is in
//! `ringseed::runtime::loadgen` and `ringseed::loadgen`.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ringseed::loadgen::leecher::REQUESTS_MAX_DEFAULT;
use ringseed::loadgen::payload::Payload;
use ringseed::loadgen::report::{PeerSample, Report, ReportInput};
use ringseed::metainfo::Metainfo;
use ringseed::peer::TorrentShape;
use ringseed::runtime::loadgen::delay_line;
use ringseed::runtime::loadgen::leech::{run_leech, LeechOptions};
use ringseed::runtime::loadgen::serve::{run_serve, ServeOptions, LISTENS_MAX};
use ringseed::runtime::loadgen::{default_threads, install_stop_signals};
use ringseed::runtime::proc_stats;

/// Largest .torrent read, in bytes.
const TORRENT_BYTES_MAX: u64 = 64 << 20;
/// How often, and how many times, serve looks whether it listens yet.
const READY_POLL: Duration = Duration::from_millis(10);
const READY_POLLS_MAX: u32 = 6000;
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
    Leech {
        #[arg(long)]
        torrent: PathBuf,
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, default_value_t = 1)]
        peers: u32,
        /// Requests each peer keeps outstanding.
        #[arg(long, default_value_t = REQUESTS_MAX_DEFAULT)]
        requests: u32,
        /// Seconds to run.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seed of the payload the torrent was made from.
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
    /// Writes the .torrent of a payload (and, with --data-dir, its bytes).
    MakeTorrent {
        #[arg(long, default_value_t = 1)]
        payload_seed: u64,
        /// Payload bytes: a number, or with a K, M or G suffix (binary).
        #[arg(long, value_parser = parse_size)]
        size: u64,
        /// Piece length in bytes (K and M suffixes accepted).
        #[arg(long, default_value = "256K", value_parser = parse_size)]
        piece_length: u64,
        #[arg(short = 'o', long)]
        output: PathBuf,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
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
    format!("ringseed-bench-{seed}-{size}")
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
            target,
            peers,
            requests,
            duration,
            payload_seed,
            threads,
            bytes_per_peer,
            seeder_pid,
            check_every,
            json,
            source_base,
        } => leech(LeechArgs {
            torrent,
            target,
            peers,
            requests,
            duration: seconds("--duration", duration)?,
            payload_seed,
            threads: threads.unwrap_or_else(default_threads),
            bytes_per_peer,
            seeder_pid,
            check_every,
            json,
            source_base,
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
            size,
            piece_length,
            output,
            data_dir,
            name,
            tracker,
        } => {
            let payload = Payload::new(payload_seed, size, piece_length)?;
            let name = name.unwrap_or_else(|| default_name(payload_seed, size));
            let hashes = payload.piece_hashes_threads(default_threads());
            let bytes = payload.torrent_bytes_with(&name, tracker.as_deref(), &hashes)?;
            std::fs::write(&output, &bytes)
                .with_context(|| format!("writing {}", output.display()))?;
            if let Some(dir) = data_dir {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let path = dir.join(&name);
                let mut f =
                    File::create(&path).with_context(|| format!("creating {}", path.display()))?;
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
            let meta = Metainfo::from_bytes(&bytes)?;
            println!("{} {}", meta.info_hash, output.display());
            Ok(())
        }
    }
}

struct LeechArgs {
    torrent: PathBuf,
    target: SocketAddr,
    peers: u32,
    requests: u32,
    duration: Duration,
    payload_seed: u64,
    threads: usize,
    bytes_per_peer: Option<u64>,
    seeder_pid: Option<u32>,
    check_every: u32,
    json: bool,
    source_base: Option<std::net::Ipv4Addr>,
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
    let len = std::fs::metadata(&a.torrent)
        .with_context(|| format!("reading {}", a.torrent.display()))?
        .len();
    if len > TORRENT_BYTES_MAX {
        bail!(
            "{}: {len} bytes, over the limit of {TORRENT_BYTES_MAX}",
            a.torrent.display()
        );
    }
    let bytes =
        std::fs::read(&a.torrent).with_context(|| format!("reading {}", a.torrent.display()))?;
    let meta = Metainfo::from_bytes(&bytes)?;
    let (piece_length, total) = (meta.info.piece_length, meta.info.total_length);
    let payload = Payload::new(a.payload_seed, total, piece_length)?;
    // The payload must be the torrent's: compare the first piece's hash.
    if payload.piece_hash(0) != meta.info.pieces.first().copied() {
        bail!(
            "payload seed {} does not generate {} (piece 0's hash differs)",
            a.payload_seed,
            a.torrent.display()
        );
    }
    let shape = TorrentShape::new(meta.info_hash, piece_length, total)?;
    let opts = LeechOptions {
        target: a.target,
        shape,
        payload,
        peers: a.peers,
        requests: a.requests,
        duration: a.duration,
        threads: a.threads,
        bytes_per_peer: a.bytes_per_peer,
        order_seed: a.payload_seed,
        check_every: a.check_every,
        source_base: a.source_base,
    };
    let seeder_before = a.seeder_pid.and_then(|p| proc_stats::read(p).ok());
    let self_before = proc_stats::self_stats().ok();
    let out = run_leech(&opts)?;
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
    let sum = |f: fn(&ringseed::loadgen::leecher::LeecherStats) -> u64| {
        out.peers.iter().map(|p| f(&p.stats)).sum::<u64>()
    };
    let blocks_good = sum(|s| s.blocks_good);
    let blocks_bad = sum(|s| s.blocks_bad);
    let bytes_bad = sum(|s| s.bytes_bad);
    let blocks_unchecked = sum(|s| s.blocks_unchecked);
    let connected = out.peers.iter().filter(|p| p.connected).count();
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
            o.insert("errors".into(), errors.clone().into());
        }
        println!("{v}");
    } else {
        print!("{}", report.to_table());
        println!(
            "{:<24}{blocks_good} good, {blocks_bad} bad ({bytes_bad} bytes), {blocks_unchecked} unchecked",
            "blocks"
        );
        println!(
            "{:<24}{connected} of {}",
            "peers connected",
            out.peers.len()
        );
        for e in &errors {
            println!("{:<24}{e}", "error");
        }
    }
    Ok(())
}
