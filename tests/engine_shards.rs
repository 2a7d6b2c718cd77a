//! Shards end to end: `ringseed seed --shards 2` with four small torrents,
//! two owned by each shard (the owner of a torrent is shard
//! `u64::from_le_bytes(info_hash[0..8]) % shards`). Sixty-four connections,
//! sixteen per torrent, each from its own loopback address, arrive on the
//! one shared port; the kernel spreads them over both shards' SO_REUSEPORT
//! listeners, so about half land on the shard that does not own their
//! torrent and must be handed over. Every connection must get a handshake
//! naming its own torrent and be served block 0 of piece 0 with the right
//! bytes; after SIGTERM the seeder must exit 0 and report
//! `ringseed: shard handoffs: N` with N > 0.
//!
//! Every wait is bounded; the seeder is killed by pid when its guard drops;
//! a failure prints its stderr. Addresses: 127.0.8.1 (seeder) and
//! 127.0.8.10-73 (clients).

mod common;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ringseed::metainfo::Metainfo;
use ringseed::wire::{Handshake, Limits, Message, MessageDecoder, HANDSHAKE_BYTES};
use ringseed::InfoHash;

/// Shards the seeder runs.
const SHARDS: u64 = 2;
/// Torrents seeded; [`TORRENTS_PER_SHARD`] owned by each shard.
const TORRENTS: usize = 4;
const TORRENTS_PER_SHARD: usize = TORRENTS / SHARDS as usize;
/// Candidate data sets tried when looking for torrents of each shard.
const CANDIDATES_MAX: u64 = 64;
/// Connections made to each torrent.
const CONNS_PER_TORRENT: usize = 16;
/// Piece length of the test torrents.
const PIECE_LENGTH: u64 = 32 * 1024;
/// Bytes of the block each connection fetches.
const BLOCK_BYTES: u32 = 16 * 1024;
/// Bytes of each torrent's single file (several pieces, the last one short).
const FILE_BYTES: usize = 150_001;
/// Longest the seeder may take to check its data and start listening.
const LISTEN_WAIT_MAX: Duration = Duration::from_secs(60);
/// Longest a connect may take on loopback.
const CONNECT_WAIT_MAX: Duration = Duration::from_secs(5);
/// Longest the handshake reply may take.
const HANDSHAKE_WAIT_MAX: Duration = Duration::from_secs(10);
/// Longest a connection waits to be unchoked and served its block.
const BLOCK_WAIT_MAX: Duration = Duration::from_secs(20);
/// Longest the seeder may take to exit after SIGTERM.
const EXIT_WAIT_MAX: Duration = Duration::from_secs(20);
/// One read's timeout; every loop around it also checks its own deadline.
const READ_SLICE: Duration = Duration::from_millis(200);
/// Most bytes of the seeder's output kept for the failure message.
const LOG_BYTES_MAX: usize = 8 << 20;
/// How often a waiting loop polls.
const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// The seeder: a guard that captures stderr and kills by pid on drop.

struct Daemon {
    cmdline: String,
    child: Child,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

fn pump<R: Read + Send + 'static>(pipe: Option<R>, sink: Arc<Mutex<String>>) {
    let Some(pipe) = pipe else { return };
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                    if s.len() < LOG_BYTES_MAX {
                        s.push_str(&String::from_utf8_lossy(&line));
                        if !s.ends_with('\n') {
                            s.push('\n');
                        }
                    }
                }
            }
        }
    });
}

impl Daemon {
    fn spawn(args: &[OsString]) -> Daemon {
        let mut cmd = Command::new(ringseed_bin());
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let cmdline = format!("{cmd:?}");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{cmdline}`: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        pump(child.stderr.take(), Arc::clone(&stderr));
        pump(child.stdout.take(), Arc::clone(&stdout));
        Daemon {
            cmdline,
            child,
            stderr,
            stdout,
            status: None,
        }
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn describe(&self) -> String {
        let out = self
            .stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        format!(
            "=== ringseed seed ===\ncommand: {}\nexit: {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.cmdline,
            self.status,
            out,
            self.stderr()
        )
    }

    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.status = Some(s);
            }
        }
        self.status
    }

    /// Waits for `ringseed: listening on ADDR`; returns ADDR (or `fallback`
    /// if the printed address does not parse).
    fn wait_listening(&mut self, fallback: SocketAddr) -> SocketAddr {
        let deadline = Instant::now() + LISTEN_WAIT_MAX;
        loop {
            let log = self.stderr();
            if let Some(line) = log.lines().find(|l| l.contains("ringseed: listening on")) {
                return line
                    .split("listening on")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(fallback);
            }
            if self.poll_exit().is_some() {
                thread::sleep(Duration::from_millis(100));
                panic!(
                    "the seeder exited before printing `ringseed: listening on ADDR`\n{}",
                    self.describe()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the seeder printed no `ringseed: listening on ADDR` within {LISTEN_WAIT_MAX:?}\n{}",
                self.describe()
            );
            thread::sleep(POLL);
        }
    }

    fn terminate(&mut self) -> Option<ExitStatus> {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill only sends a signal to our own child's pid.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + EXIT_WAIT_MAX;
        loop {
            if let Some(s) = self.poll_exit() {
                // Let the pumps read the last lines.
                thread::sleep(Duration::from_millis(100));
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.poll_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
}

// ---------------------------------------------------------------------------
// A raw peer: handshake, interested, one request; every read bounded.

#[derive(Debug)]
enum Got {
    Unchoke,
    Choke,
    Piece {
        piece: u32,
        offset: u32,
        block: Vec<u8>,
    },
    Reject {
        piece: u32,
        offset: u32,
    },
    #[allow(dead_code, reason = "shown through Debug in failure messages")]
    Other(&'static str),
}

struct RawPeer {
    stream: TcpStream,
    local: SocketAddr,
    buf: Vec<u8>,
    decoder: MessageDecoder,
}

impl RawPeer {
    fn connect(src: Ipv4Addr, dst: SocketAddr, pieces: u32) -> Result<RawPeer, String> {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .map_err(|e| format!("socket: {e}"))?;
        let from = SocketAddr::V4(SocketAddrV4::new(src, 0));
        sock.bind(&from.into())
            .map_err(|e| format!("bind {from}: {e}"))?;
        sock.connect_timeout(&dst.into(), CONNECT_WAIT_MAX)
            .map_err(|e| format!("connect {src} -> {dst}: {e}"))?;
        let stream: TcpStream = sock.into();
        stream
            .set_read_timeout(Some(READ_SLICE))
            .and_then(|()| stream.set_write_timeout(Some(CONNECT_WAIT_MAX)))
            .map_err(|e| format!("timeouts: {e}"))?;
        let local = stream
            .local_addr()
            .map_err(|e| format!("local_addr: {e}"))?;
        Ok(RawPeer {
            stream,
            local,
            buf: Vec::new(),
            decoder: MessageDecoder::new(Limits::for_pieces(pieces)),
        })
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .map_err(|e| format!("write: {e}"))
    }

    fn fill(&mut self, deadline: Instant) -> Result<(), String> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("the seeder closed the connection".into()),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return Err("timed out".into());
                    }
                }
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    fn handshake(&mut self, info_hash: InfoHash, tag: u8) -> Result<Handshake, String> {
        let mut peer_id = *b"-SH0001-000000000000";
        peer_id[19] = tag;
        let hs = Handshake {
            info_hash,
            peer_id,
            reserved: ringseed::wire::reserved_bits(true, true, false),
        };
        self.send(&hs.encode())?;
        let deadline = Instant::now() + HANDSHAKE_WAIT_MAX;
        loop {
            match Handshake::decode(&self.buf) {
                Ok(Some(h)) => {
                    self.buf.drain(..HANDSHAKE_BYTES);
                    return Ok(h);
                }
                Ok(None) => self
                    .fill(deadline)
                    .map_err(|e| format!("waiting for the handshake reply: {e}"))?,
                Err(e) => return Err(format!("bad handshake reply: {e}")),
            }
        }
    }

    fn next(&mut self, deadline: Instant) -> Result<Got, String> {
        loop {
            let got = match self.decoder.decode(&self.buf) {
                Ok(Some((m, n))) => {
                    let got = match m {
                        Message::Unchoke => Got::Unchoke,
                        Message::Choke => Got::Choke,
                        Message::Piece {
                            piece,
                            offset,
                            block,
                        } => Got::Piece {
                            piece,
                            offset,
                            block: block.to_vec(),
                        },
                        Message::RejectRequest { piece, offset, .. } => {
                            Got::Reject { piece, offset }
                        }
                        other => Got::Other(other.name()),
                    };
                    Some((got, n))
                }
                Ok(None) => None,
                Err(e) => return Err(format!("bad message from the seeder: {e}")),
            };
            match got {
                Some((g, n)) => {
                    self.buf.drain(..n);
                    return Ok(g);
                }
                None => self.fill(deadline)?,
            }
        }
    }

    fn fetch_block(&mut self, piece: u32, offset: u32, length: u32) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + BLOCK_WAIT_MAX;
        let mut msg = Vec::new();
        ringseed::wire::encode(&Message::Interested, &mut msg);
        self.send(&msg)?;
        let mut seen = Vec::new();
        loop {
            match self.next(deadline) {
                Ok(Got::Unchoke) => break,
                Ok(g) => seen.push(format!("{g:?}")),
                Err(e) => return Err(format!("waiting for unchoke: {e}; saw {seen:?}")),
            }
        }
        msg.clear();
        ringseed::wire::encode(
            &Message::Request {
                piece,
                offset,
                length,
            },
            &mut msg,
        );
        self.send(&msg)?;
        loop {
            match self.next(deadline) {
                Ok(Got::Piece {
                    piece: p,
                    offset: o,
                    block,
                }) if p == piece && o == offset => return Ok(block),
                Ok(Got::Reject {
                    piece: p,
                    offset: o,
                }) if p == piece && o == offset => return Err("the request was rejected".into()),
                Ok(Got::Choke) => return Err("choked while waiting for the block".into()),
                Ok(g) => seen.push(format!("{g:?}")),
                Err(e) => return Err(format!("waiting for the block: {e}; saw {seen:?}")),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The torrents.

struct Seeded {
    name: String,
    torrent: PathBuf,
    info_hash: InfoHash,
    pieces: u32,
    owner: u64,
    /// The first block of piece 0.
    first_block: Vec<u8>,
}

/// The shard that owns `info_hash` among `shards`.
fn owner_shard(info_hash: &InfoHash, shards: u64) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&info_hash.0[..8]);
    u64::from_le_bytes(first) % shards
}

/// Makes single-file torrents of deterministic data under `dir` until each
/// shard owns [`TORRENTS_PER_SHARD`] of them.
fn make_torrents(dir: &Path) -> Vec<Seeded> {
    let mut kept: Vec<Seeded> = Vec::new();
    let mut tried = Vec::new();
    for k in 0..CANDIDATES_MAX {
        if kept.len() == TORRENTS {
            break;
        }
        let name = format!("shard-{k}.bin");
        let data_path = dir.join(&name);
        let mut data = vec![0u8; FILE_BYTES];
        XorShift64::new(0x5a4d_0000 + k).fill(&mut data);
        std::fs::write(&data_path, &data)
            .unwrap_or_else(|e| panic!("write {}: {e}", data_path.display()));
        let torrent = dir.join(format!("shard-{k}.torrent"));
        ringseed([
            OsString::from("create"),
            data_path.clone().into(),
            "-o".into(),
            torrent.clone().into(),
            "--piece-length".into(),
            PIECE_LENGTH.to_string().into(),
            "--no-date".into(),
        ])
        .assert_code(0);
        let raw =
            std::fs::read(&torrent).unwrap_or_else(|e| panic!("read {}: {e}", torrent.display()));
        let meta = Metainfo::from_bytes(&raw)
            .unwrap_or_else(|e| panic!("ringseed's own torrent {}: {e}", torrent.display()));
        let owner = owner_shard(&meta.info_hash, SHARDS);
        tried.push((name.clone(), meta.info_hash.to_hex(), owner));
        if kept.iter().filter(|s| s.owner == owner).count() < TORRENTS_PER_SHARD {
            kept.push(Seeded {
                name,
                torrent,
                info_hash: meta.info_hash,
                pieces: u32::try_from(meta.info.num_pieces()).unwrap_or(u32::MAX),
                owner,
                first_block: data[..BLOCK_BYTES as usize].to_vec(),
            });
        } else {
            let _ = std::fs::remove_file(&data_path);
            let _ = std::fs::remove_file(&torrent);
        }
    }
    for shard in 0..SHARDS {
        assert!(
            kept.iter().any(|s| s.owner == shard),
            "no candidate torrent is owned by shard {shard}: {tried:?}"
        );
    }
    assert_eq!(kept.len(), TORRENTS, "candidates tried: {tried:?}");
    kept
}

/// Opens [`CONNS_PER_TORRENT`] connections to `t`, checks each handshake
/// reply, then fetches block 0 of piece 0 on each in turn. Returns what
/// went wrong (empty when all is well).
fn exercise(t: &Seeded, index: usize, seeder: SocketAddr) -> Vec<String> {
    let mut failures = Vec::new();
    let mut conns = Vec::new();
    for i in 0..CONNS_PER_TORRENT {
        let src = Ipv4Addr::new(127, 0, 8, (10 + index * CONNS_PER_TORRENT + i) as u8);
        let tag = b'a' + i as u8;
        let mut peer = match RawPeer::connect(src, seeder, t.pieces) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{} conn {i} from {src}: {e}", t.name));
                continue;
            }
        };
        match peer.handshake(t.info_hash, tag) {
            Ok(h) if h.info_hash == t.info_hash => conns.push((i, peer)),
            Ok(h) => failures.push(format!(
                "{} conn {i} from {}: handshake reply names {} instead of {}",
                t.name,
                peer.local,
                h.info_hash.to_hex(),
                t.info_hash.to_hex()
            )),
            Err(e) => failures.push(format!("{} conn {i} from {}: {e}", t.name, peer.local)),
        }
    }
    for (i, mut peer) in conns {
        match peer.fetch_block(0, 0, BLOCK_BYTES) {
            Ok(block) if block == t.first_block => {}
            Ok(block) => failures.push(format!(
                "{} conn {i} from {}: block 0/0 has wrong bytes ({} bytes)",
                t.name,
                peer.local,
                block.len()
            )),
            Err(e) => failures.push(format!("{} conn {i} from {}: {e}", t.name, peer.local)),
        }
    }
    failures
}

#[test]
fn two_shards_serve_every_torrent_through_the_shared_port() {
    let dir = tempdir();
    let torrents = make_torrents(dir.path());
    let ip = Ipv4Addr::new(127, 0, 8, 1);
    let listen = SocketAddr::from((ip, free_port(ip)));
    let mut args: Vec<OsString> = vec!["seed".into()];
    args.extend(torrents.iter().map(|t| OsString::from(&t.torrent)));
    args.extend([
        OsString::from("--data"),
        dir.path().into(),
        "--listen".into(),
        listen.to_string().into(),
        "--bind-address".into(),
        ip.to_string().into(),
        "--shards".into(),
        SHARDS.to_string().into(),
    ]);
    let mut seeder = Daemon::spawn(&args);
    let addr = seeder.wait_listening(listen);

    let failures: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = torrents
            .iter()
            .enumerate()
            .map(|(i, t)| s.spawn(move || exercise(t, i, addr)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec!["a connection thread panicked".into()])
            })
            .collect()
    });
    let owners: Vec<String> = torrents
        .iter()
        .map(|t| format!("{} {} -> shard {}", t.name, t.info_hash.to_hex(), t.owner))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} connections failed:\n{}\ntorrents: {owners:#?}\n{}",
        failures.len(),
        TORRENTS * CONNS_PER_TORRENT,
        failures.join("\n"),
        seeder.describe()
    );

    let status = seeder.terminate();
    assert!(
        status.is_some(),
        "the seeder did not exit within {EXIT_WAIT_MAX:?} of SIGTERM\n{}",
        seeder.describe()
    );
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "the seeder did not exit with status 0 after SIGTERM\n{}",
        seeder.describe()
    );
    let log = seeder.stderr();
    let handoffs = log
        .lines()
        .find_map(|l| l.split("ringseed: shard handoffs:").nth(1))
        .map(|rest| rest.trim().parse::<u64>());
    match handoffs {
        Some(Ok(n)) => {
            assert!(
                n > 0,
                "no connection was handed between shards ({n}) although {} connections \
                 reached torrents of both shards\ntorrents: {owners:#?}\n{}",
                TORRENTS * CONNS_PER_TORRENT,
                seeder.describe()
            );
            assert!(
                n <= (TORRENTS * CONNS_PER_TORRENT) as u64,
                "more handoffs ({n}) than connections\n{}",
                seeder.describe()
            );
            eprintln!(
                "shard handoffs: {n} of {} connections; torrents: {owners:?}",
                TORRENTS * CONNS_PER_TORRENT
            );
        }
        Some(Err(e)) => panic!(
            "`ringseed: shard handoffs:` is not followed by a number ({e})\n{}",
            seeder.describe()
        ),
        None => panic!(
            "no `ringseed: shard handoffs: N` line after SIGTERM\n{}",
            seeder.describe()
        ),
    }
}
