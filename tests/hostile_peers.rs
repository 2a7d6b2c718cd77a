//! Hostile peers against the engine, end to end over loopback TCP.
//!
//! Against one `ringseed seed` of a small multi-file torrent (about 4 MB,
//! 32 KiB pieces), raw clients written here break the protocol in one way
//! each — a huge length prefix, malformed or out-of-order messages, requests
//! past the end of the torrent or of a piece, garbage instead of a handshake —
//! and each must see its connection closed within [`CLOSE_WAIT_MAX`], with a
//! `dropped` line naming its address on the seeder's stderr. Garbage shorter
//! than the MSE responder's synchronisation window could still be the start
//! of an obfuscated handshake (the seeder runs the default policy, which
//! accepts one): it is closed when the handshake times out, within
//! [`JUNK_CLOSE_WAIT_MAX`]; longer garbage fails the MSE handshake at once. Meanwhile a
//! connection that behaves keeps being served, and a `ringseed download` from
//! the same seeder finishes with byte-identical data.
//!
//! A second test plays a malicious seed that answers every request with wrong
//! bytes: `ringseed download`, given it and a good `ringseed seed`, must ban
//! it (a `banned` line naming it), close its connection, never reconnect, and
//! still finish with byte-identical data.
//!
//! Two more tests check the test's own wire code against libtorrent
//! (python3-libtorrent, via tests/support/hostile/): the raw client fetches
//! blocks from a libtorrent seed and sees libtorrent close the connections it
//! refuses, and libtorrent as the downloader bans the malicious seed, which
//! sees the close. So a failure above points at ringseed, not at the test.
//!
//! Every wait is bounded; every child is killed by pid when its guard drops;
//! a failure prints the children's stderr. Addresses: 127.0.7.1-3 and
//! 127.0.7.30-45 for the first test, 127.0.7.20-22 for the second,
//! 127.0.7.50-53 and 127.0.7.60-62 for the libtorrent checks.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::engine::{compare_tree, free_port, os, Daemon};
use common::raw_peer::{is_close, our_handshake, End, RawPeer};
use common::*;
use ringseed::metainfo::Metainfo;
use ringseed::wire::{Handshake, Limits, Message, MessageDecoder, HANDSHAKE_BYTES};
use ringseed::InfoHash;

/// Piece length of the test torrents (the task asks for 32 KiB).
const PIECE_LENGTH: u64 = 32 * 1024;
/// Bytes of one requested block.
const BLOCK_BYTES: u32 = 16 * 1024;
/// Longest the handshake reply may take.
const HANDSHAKE_WAIT_MAX: Duration = Duration::from_secs(10);
/// "Within a few seconds": how long a protocol breaker may stay connected.
const CLOSE_WAIT_MAX: Duration = Duration::from_secs(5);
/// How long garbage shorter than an MSE handshake's first flight may stay
/// connected: the seeder's handshake timeout (10 s), plus slack.
const JUNK_CLOSE_WAIT_MAX: Duration = Duration::from_secs(15);
/// How long the `dropped` line may lag behind the close.
const LOG_LINE_WAIT_MAX: Duration = Duration::from_secs(5);
/// Longest one `ringseed download` of the test torrent may take.
const DOWNLOAD_WAIT_MAX: Duration = Duration::from_secs(120);
/// One read's timeout; every loop around it also checks its own deadline.
const READ_SLICE: Duration = Duration::from_millis(200);
/// How often a waiting loop polls.
const POLL: Duration = Duration::from_millis(20);

// ---------------------------------------------------------------------------
// Children: a guard that captures stderr and kills by pid on drop.

/// Starts `ringseed seed TORRENT --data DIR` on `ip` and waits until it listens.
fn start_seeder(label: &str, torrent: &Path, data: &Path, ip: Ipv4Addr) -> (Daemon, SocketAddr) {
    start_seeder_on(label, torrent, data, SocketAddr::from((ip, free_port(ip))))
}

/// Starts `ringseed seed` listening on `listen` (bound to its IP).
fn start_seeder_on(
    label: &str,
    torrent: &Path,
    data: &Path,
    listen: SocketAddr,
) -> (Daemon, SocketAddr) {
    let ip = listen.ip();
    let args = vec![
        os("seed"),
        os("--no-dht"),
        os(torrent),
        os("--data"),
        os(data),
        os("--listen"),
        os(listen.to_string()),
        os("--bind-address"),
        os(ip.to_string()),
    ];
    let mut d = Daemon::spawn(label, &args);
    let addr = d.wait_listening("ringseed", listen);
    (d, addr)
}

/// Starts `ringseed download TORRENT -o OUT` from `ip` with the given peers.
fn start_download(torrent: &Path, out: &Path, ip: Ipv4Addr, peers: &[SocketAddr]) -> Daemon {
    let mut args = vec![
        os("download"),
        os("--no-dht"),
        os(torrent),
        os("-o"),
        os(out),
        os("--listen"),
        os(format!("{ip}:{}", free_port(ip))),
        os("--bind-address"),
        os(ip.to_string()),
    ];
    for p in peers {
        args.push(os("--peer"));
        args.push(os(p.to_string()));
    }
    Daemon::spawn("ringseed download", &args)
}

// ---------------------------------------------------------------------------
// The torrent and its bytes.

struct Fixture {
    _dir: tempfile::TempDir,
    tree: Tree,
    torrent: PathBuf,
    meta: Metainfo,
    /// The torrent's whole byte stream, files in torrent order.
    bytes: Vec<u8>,
}

fn fixture(seed: u64) -> Fixture {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "hostile", seed);
    let torrent = create_torrent(
        &tree,
        "hostile.torrent",
        &["--piece-length", &PIECE_LENGTH.to_string(), "--no-date"],
    );
    let raw = std::fs::read(&torrent).unwrap_or_else(|e| panic!("read {}: {e}", torrent.display()));
    let meta = Metainfo::from_bytes(&raw).unwrap_or_else(|e| panic!("ringseed's own torrent: {e}"));
    assert_eq!(meta.info.piece_length, PIECE_LENGTH);
    assert!(
        meta.info.multi_file,
        "the tree must make a multi-file torrent"
    );
    let bytes = stream_bytes(&meta, &tree.save_dir);
    assert_eq!(bytes.len() as u64, meta.info.total_length);
    Fixture {
        _dir: dir,
        tree,
        torrent,
        meta,
        bytes,
    }
}

/// The torrent's byte stream read from `save_dir` (pad files are zeros).
fn stream_bytes(meta: &Metainfo, save_dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for f in &meta.info.files {
        if f.attr.pad {
            out.resize(out.len() + f.length as usize, 0);
            continue;
        }
        let path = save_dir.join(f.relative_path());
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        out.extend_from_slice(&data);
    }
    out
}

/// Byte `offset..offset+len` of piece `piece`.
fn block_of(fx: &Fixture, piece: u32, offset: u32, len: u32) -> &[u8] {
    let start = u64::from(piece) * PIECE_LENGTH + u64::from(offset);
    let start = start as usize;
    &fx.bytes[start..start + len as usize]
}

fn piece_count(fx: &Fixture) -> u32 {
    u32::try_from(fx.meta.info.num_pieces()).unwrap_or(u32::MAX)
}

// ---------------------------------------------------------------------------
// The hostile cases.

/// What a hostile client does.
enum Attack {
    /// A valid handshake, then these bytes.
    AfterHandshake(Vec<u8>),
    /// A valid handshake with these reserved bits, then these bytes.
    AfterHandshakeReserved([u8; 8], Vec<u8>),
    /// These bytes instead of a handshake.
    InsteadOfHandshake(Vec<u8>),
    /// A handshake for a torrent the seeder does not have.
    UnknownTorrent,
}

struct Case {
    name: &'static str,
    src: Ipv4Addr,
    attack: Attack,
    /// Whether the seeder must print a `dropped` line for it.
    dropped_line: bool,
}

fn msg_bytes(m: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    ringseed::wire::encode(m, &mut out);
    out
}

/// A request message by hand (the encoder would build it just the same).
fn request(piece: u32, offset: u32, length: u32) -> Vec<u8> {
    msg_bytes(&Message::Request {
        piece,
        offset,
        length,
    })
}

fn cases(fx: &Fixture) -> Vec<Case> {
    let pieces = piece_count(fx);
    let last = pieces - 1;
    let last_size = fx.meta.info.piece_size(u64::from(last)).unwrap_or(0) as u32;
    let bitfield_len = pieces.div_ceil(8) as usize;
    let ip = |n: u8| Ipv4Addr::new(127, 0, 7, n);
    let mut random = vec![0u8; 4096];
    XorShift64::new(0xbad_b17e).fill(&mut random);
    // A length prefix far over any limit, whatever the generator gave.
    random[0] |= 0x80;
    let mut random_hs = vec![0u8; HANDSHAKE_BYTES];
    XorShift64::new(0x0dd_ba11).fill(&mut random_hs);
    random_hs[0] = 0x55; // not 19: not the protocol string's length
    let mut random_kib = vec![0u8; 1024];
    XorShift64::new(0x0dd_ba12).fill(&mut random_kib);
    random_kib[0] = 0x55;

    // A have for a piece the torrent does not have.
    let have_past_end = msg_bytes(&Message::Have {
        piece: u32::try_from(fx.meta.info.num_pieces()).unwrap_or(u32::MAX),
    });
    let mut unknown_too_long = (40_000u32).to_be_bytes().to_vec();
    unknown_too_long.push(0xaa);
    unknown_too_long.extend_from_slice(&[0x5a; 200]);
    let mut bitfield_wrong_len = ((bitfield_len as u32) + 3).to_be_bytes().to_vec();
    bitfield_wrong_len.push(5);
    bitfield_wrong_len.extend(vec![0u8; bitfield_len + 2]);
    let mut huge = 0xFFFF_FFF0u32.to_be_bytes().to_vec();
    huge.extend_from_slice(&[7; 64]);

    let interested = msg_bytes(&Message::Interested);
    let with_interest = |mut tail: Vec<u8>| {
        let mut v = interested.clone();
        v.append(&mut tail);
        v
    };

    vec![
        Case {
            name: "a: length prefix 0xFFFF_FFF0",
            src: ip(30),
            attack: Attack::AfterHandshake(huge),
            dropped_line: true,
        },
        Case {
            name: "b: have with a 2-byte payload",
            src: ip(31),
            attack: Attack::AfterHandshake(vec![0, 0, 0, 3, 4, 0, 0]),
            dropped_line: true,
        },
        Case {
            name: "b: have for a piece past the end",
            src: ip(32),
            attack: Attack::AfterHandshake(have_past_end),
            dropped_line: true,
        },
        Case {
            name: "b: unknown id 0xaa with 40000 bytes",
            src: ip(33),
            attack: Attack::AfterHandshake(unknown_too_long),
            dropped_line: true,
        },
        Case {
            name: "b: bitfield of the wrong length",
            src: ip(34),
            attack: Attack::AfterHandshake(bitfield_wrong_len),
            dropped_line: true,
        },
        Case {
            name: "b: 4 KiB of random bytes",
            src: ip(35),
            attack: Attack::AfterHandshake(random),
            dropped_line: true,
        },
        Case {
            name: "b: have-all without the fast bit",
            src: ip(36),
            attack: Attack::AfterHandshakeReserved([0; 8], vec![0, 0, 0, 1, 0x0e]),
            dropped_line: true,
        },
        Case {
            name: "b: request of length 0",
            src: ip(37),
            attack: Attack::AfterHandshake(with_interest(request(0, 0, 0))),
            dropped_line: true,
        },
        Case {
            name: "c: request for piece index = piece count",
            src: ip(38),
            attack: Attack::AfterHandshake(with_interest(request(pieces, 0, BLOCK_BYTES))),
            dropped_line: true,
        },
        Case {
            name: "c: block past the end of piece 0",
            src: ip(39),
            attack: Attack::AfterHandshake(with_interest(request(
                0,
                PIECE_LENGTH as u32 - BLOCK_BYTES / 2,
                BLOCK_BYTES,
            ))),
            dropped_line: true,
        },
        Case {
            name: "c: block past the end of the last (short) piece",
            src: ip(40),
            // Starts at most half a block before the end, so it runs past it.
            attack: Attack::AfterHandshake(with_interest(request(
                last,
                last_size.saturating_sub(BLOCK_BYTES / 2),
                BLOCK_BYTES,
            ))),
            dropped_line: true,
        },
        Case {
            name: "c: request with offset 2^32-16 (overflow)",
            src: ip(41),
            attack: Attack::AfterHandshake(with_interest(request(0, u32::MAX - 15, BLOCK_BYTES))),
            dropped_line: true,
        },
        Case {
            name: "d: an HTTP request instead of a handshake",
            src: ip(42),
            attack: Attack::InsteadOfHandshake(
                b"GET /announce?info_hash=x HTTP/1.1\r\nHost: 127.0.7.1\r\n\r\n".to_vec(),
            ),
            dropped_line: true,
        },
        Case {
            name: "d: 68 random bytes instead of a handshake",
            src: ip(43),
            attack: Attack::InsteadOfHandshake(random_hs),
            dropped_line: true,
        },
        Case {
            name: "d: 1 KiB of random bytes instead of a handshake (past the MSE window)",
            src: ip(45),
            attack: Attack::InsteadOfHandshake(random_kib),
            dropped_line: true,
        },
        Case {
            name: "d: a handshake for an unknown torrent",
            src: ip(44),
            attack: Attack::UnknownTorrent,
            dropped_line: false,
        },
    ]
}

/// Runs one case; `Ok(how it was closed)` or what went wrong.
fn run_case(case: &Case, seeder: SocketAddr, fx: &Fixture, tag: u8) -> Result<String, String> {
    let mut peer = RawPeer::connect(case.src, seeder, piece_count(fx))?;
    let reserved = ringseed::wire::reserved_bits(true, true, false);
    let sent = match &case.attack {
        Attack::AfterHandshake(bytes) | Attack::AfterHandshakeReserved(_, bytes) => {
            let reserved = match &case.attack {
                Attack::AfterHandshakeReserved(r, _) => *r,
                _ => reserved,
            };
            let reply = peer
                .handshake(&our_handshake(fx.meta.info_hash, reserved, tag))
                .map_err(|e| format!("handshake before the attack failed: {e:?}"))?;
            if reply.info_hash != fx.meta.info_hash {
                return Err(format!(
                    "handshake reply names {} instead of {}",
                    reply.info_hash.to_hex(),
                    fx.meta.info_hash.to_hex()
                ));
            }
            peer.send(bytes)
        }
        Attack::InsteadOfHandshake(bytes) => peer.send(bytes),
        Attack::UnknownTorrent => {
            let hs = our_handshake(InfoHash([0x42; 20]), reserved, tag);
            match peer.handshake(&hs) {
                Ok(h) => {
                    return Err(format!(
                        "the seeder answered a handshake for a torrent it does not have \
                         (its reply names {})",
                        h.info_hash.to_hex()
                    ))
                }
                Err(End::Closed(how)) => return Ok(how.to_string()),
                Err(End::TimedOut) => {
                    return Err(format!(
                        "no reply and no close within {HANDSHAKE_WAIT_MAX:?}"
                    ))
                }
                Err(End::Failed(e)) => return Err(e),
            }
        }
    };
    match sent {
        Ok(()) => {}
        Err(End::Closed(how)) => return Ok(how.to_string()),
        Err(e) => return Err(format!("sending the attack: {e:?}")),
    }
    let started = Instant::now();
    let wait = match &case.attack {
        Attack::InsteadOfHandshake(b) if b.len() < ringseed::mse::RESPONDER_SYNC_WINDOW_BYTES => {
            JUNK_CLOSE_WAIT_MAX
        }
        _ => CLOSE_WAIT_MAX,
    };
    let how = peer.wait_closed(wait)?;
    Ok(format!(
        "{how} after {:?} (from {})",
        started.elapsed(),
        peer.local
    ))
}

/// The stderr line that says `ip` was dropped, if any.
fn dropped_line(log: &str, ip: Ipv4Addr) -> Option<String> {
    let needle = format!("{ip}:");
    log.lines()
        .find(|l| l.contains("dropped") && l.contains(&needle))
        .map(str::to_string)
}

#[test]
fn protocol_breakers_are_dropped_while_good_peers_are_served() {
    let fx = fixture(0x4057_11e5);
    let seeder_ip = Ipv4Addr::new(127, 0, 7, 1);
    let (mut seeder, addr) =
        start_seeder("ringseed seed", &fx.torrent, &fx.tree.save_dir, seeder_ip);

    // A well-behaved connection made before the attacks, used after them.
    let mut bystander = RawPeer::connect(Ipv4Addr::new(127, 0, 7, 3), addr, piece_count(&fx))
        .unwrap_or_else(|e| panic!("bystander: {e}\n{}", seeder.describe()));
    let reply = bystander
        .handshake(&our_handshake(
            fx.meta.info_hash,
            ringseed::wire::reserved_bits(true, true, false),
            b'b',
        ))
        .unwrap_or_else(|e| panic!("bystander handshake: {e:?}\n{}", seeder.describe()));
    assert_eq!(reply.info_hash, fx.meta.info_hash, "{}", seeder.describe());

    // The good download runs while the attacks do.
    let out = tempdir();
    let mut download = start_download(
        &fx.torrent,
        out.path(),
        Ipv4Addr::new(127, 0, 7, 2),
        &[addr],
    );

    let all = cases(&fx);
    let results: Vec<(usize, Result<String, String>)> = thread::scope(|s| {
        let handles: Vec<_> = all
            .iter()
            .enumerate()
            .map(|(i, case)| {
                let fx = &fx;
                s.spawn(move || (i, run_case(case, addr, fx, b'a' + i as u8)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("a case thread panicked"))
            })
            .collect()
    });

    let mut failures = Vec::new();
    let mut report = Vec::new();
    for (i, r) in &results {
        let case = &all[*i];
        match r {
            Ok(how) => report.push(format!("ok   {} [{}]: closed: {how}", case.name, case.src)),
            Err(e) => failures.push(format!("FAIL {} [{}]: {e}", case.name, case.src)),
        }
    }
    // Each dropped connection must be reported with its address (one
    // deadline for all of them).
    let lines_deadline = Instant::now() + LOG_LINE_WAIT_MAX;
    let mut missing: Vec<&Case> = all.iter().filter(|c| c.dropped_line).collect();
    loop {
        let log = seeder.stderr();
        missing.retain(|c| dropped_line(&log, c.src).is_none());
        if missing.is_empty() || Instant::now() >= lines_deadline {
            break;
        }
        thread::sleep(POLL);
    }
    let log = seeder.stderr();
    for case in all.iter().filter(|c| c.dropped_line) {
        if let Some(line) = dropped_line(&log, case.src) {
            report.push(format!("     {}: {line}", case.name));
        }
    }
    for case in missing {
        failures.push(format!(
            "FAIL {} [{}]: no stderr line with `dropped` and `{}:` within {LOG_LINE_WAIT_MAX:?}",
            case.name, case.src, case.src
        ));
    }

    // The bystander is still served.
    match bystander.fetch_block(1, BLOCK_BYTES, BLOCK_BYTES) {
        Ok(block) if block == block_of(&fx, 1, BLOCK_BYTES, BLOCK_BYTES) => {
            report.push("ok   bystander: block 1/16384 served after the attacks".into())
        }
        Ok(block) => failures.push(format!(
            "FAIL bystander: block 1/16384 has wrong bytes ({} bytes)",
            block.len()
        )),
        Err(e) => failures.push(format!("FAIL bystander: {e}")),
    }
    if let Some(line) = dropped_line(&seeder.stderr(), Ipv4Addr::new(127, 0, 7, 3)) {
        failures.push(format!("FAIL bystander was dropped: {line}"));
    }

    // The good download finishes with the right bytes.
    let status = download.wait_exit(DOWNLOAD_WAIT_MAX);
    match status.map(|s| s.code()) {
        Some(Some(0)) => {
            let diffs = compare_tree(&fx.tree, out.path());
            if diffs.is_empty() {
                report.push("ok   ringseed download: exit 0, data identical".into());
            } else {
                failures.push(format!("FAIL ringseed download: data differs: {diffs:#?}"));
            }
        }
        Some(_) => failures.push(format!(
            "FAIL ringseed download ended with {}",
            exit_text(status)
        )),
        None => failures.push(format!(
            "FAIL ringseed download did not finish within {DOWNLOAD_WAIT_MAX:?}"
        )),
    }

    eprintln!("{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}\n\npassed:\n{}\n\n{}\n\n{}",
        failures.len(),
        failures.join("\n"),
        report.join("\n"),
        seeder.describe(),
        download.describe()
    );
    drop(bystander);
    seeder.terminate_cleanly();
}

// ---------------------------------------------------------------------------
// A malicious seed: right lengths, wrong bytes.

/// What the malicious seed saw on one connection.
#[derive(Debug, Clone)]
struct BadConn {
    #[allow(dead_code, reason = "shown through Debug in failure messages")]
    peer: SocketAddr,
    accepted: Instant,
    blocks_served: u64,
    /// When the downloader closed it (EOF or reset), if it did.
    closed_by_peer: Option<Instant>,
    note: String,
}

struct BadSeed {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<BadConn>>>,
    thread: Option<thread::JoinHandle<()>>,
}

/// Byte every wrong block is made of.
const WRONG_BYTE: u8 = 0xa5;
/// Longest the malicious seed runs (a safety net; the test stops it sooner).
const BAD_SEED_LIFETIME_MAX: Duration = Duration::from_secs(180);
/// Most connections the malicious seed serves at once.
const BAD_SEED_CONNS_MAX: usize = 64;

impl BadSeed {
    fn start(ip: Ipv4Addr, info_hash: InfoHash, pieces: u32) -> BadSeed {
        let listener = TcpListener::bind((ip, 0))
            .unwrap_or_else(|e| panic!("malicious seed cannot listen on {ip}: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local_addr: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("nonblocking: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (stop2, conns2) = (Arc::clone(&stop), Arc::clone(&conns));
        let thread = thread::spawn(move || {
            let end = Instant::now() + BAD_SEED_LIFETIME_MAX;
            let mut workers = Vec::new();
            while !stop2.load(Ordering::SeqCst) && Instant::now() < end {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        let index = {
                            let mut c = conns2.lock().unwrap_or_else(|e| e.into_inner());
                            c.push(BadConn {
                                peer,
                                accepted: Instant::now(),
                                blocks_served: 0,
                                closed_by_peer: None,
                                note: String::new(),
                            });
                            c.len() - 1
                        };
                        if workers.len() >= BAD_SEED_CONNS_MAX {
                            continue;
                        }
                        let (stop3, conns3) = (Arc::clone(&stop2), Arc::clone(&conns2));
                        workers.push(thread::spawn(move || {
                            bad_conn(stream, info_hash, pieces, &stop3, &conns3, index, end)
                        }));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(POLL),
                    Err(_) => thread::sleep(POLL),
                }
            }
            for w in workers {
                let _ = w.join();
            }
        });
        BadSeed {
            addr,
            stop,
            conns,
            thread: Some(thread),
        }
    }

    fn conns(&self) -> Vec<BadConn> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for BadSeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one downloader connection with wrong bytes until it closes or we stop.
fn bad_conn(
    mut stream: TcpStream,
    info_hash: InfoHash,
    pieces: u32,
    stop: &AtomicBool,
    conns: &Mutex<Vec<BadConn>>,
    index: usize,
    end: Instant,
) {
    let note = |text: String| {
        let mut c = conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(conn) = c.get_mut(index) {
            conn.note.push_str(&text);
            conn.note.push_str("; ");
        }
    };
    let closed = || {
        let mut c = conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(conn) = c.get_mut(index) {
            conn.closed_by_peer = Some(Instant::now());
        }
    };
    let served = || {
        let mut c = conns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(conn) = c.get_mut(index) {
            conn.blocks_served += 1;
        }
    };
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(READ_SLICE)).is_err()
        || stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .is_err()
    {
        note("cannot set timeouts".into());
        return;
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut handshaken = false;
    let limits = Limits {
        block_bytes_max: 128 * 1024,
        ..Limits::for_pieces(pieces)
    };
    let mut decoder = MessageDecoder::new(limits);
    while !stop.load(Ordering::SeqCst) && Instant::now() < end {
        // Act on what is buffered.
        let mut out = Vec::new();
        if !handshaken {
            match Handshake::decode(&buf) {
                Ok(Some(h)) => {
                    buf.drain(..HANDSHAKE_BYTES);
                    if h.info_hash != info_hash {
                        note(format!("handshake for {}", h.info_hash.to_hex()));
                        return;
                    }
                    handshaken = true;
                    out.extend_from_slice(
                        &Handshake {
                            info_hash,
                            peer_id: *b"-BAD000-wrongbytes!!",
                            reserved: [0; 8],
                        }
                        .encode(),
                    );
                    let mut bits = vec![0xffu8; pieces.div_ceil(8) as usize];
                    let spare = bits.len() * 8 - pieces as usize;
                    if let Some(last) = bits.last_mut() {
                        *last &= 0xffu8 << spare;
                    }
                    ringseed::wire::encode(&Message::Bitfield(&bits), &mut out);
                    ringseed::wire::encode(&Message::Unchoke, &mut out);
                }
                Ok(None) => {}
                Err(e) => {
                    note(format!("bad handshake: {e}"));
                    return;
                }
            }
        }
        if handshaken {
            loop {
                let step = match decoder.decode(&buf) {
                    Ok(Some((
                        Message::Request {
                            piece,
                            offset,
                            length,
                        },
                        n,
                    ))) => Some((Some((piece, offset, length)), n)),
                    Ok(Some((_, n))) => Some((None, n)),
                    Ok(None) => None,
                    Err(e) => {
                        note(format!("bad message from the downloader: {e}"));
                        return;
                    }
                };
                let Some((req, n)) = step else { break };
                buf.drain(..n);
                if let Some((piece, offset, length)) = req {
                    let wrong = vec![WRONG_BYTE; length as usize];
                    ringseed::wire::encode(
                        &Message::Piece {
                            piece,
                            offset,
                            block: &wrong,
                        },
                        &mut out,
                    );
                    served();
                }
            }
        }
        if !out.is_empty() {
            if let Err(e) = stream.write_all(&out) {
                if is_close(e.kind()) {
                    closed();
                } else {
                    note(format!("write: {e}"));
                }
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                closed();
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_close(e.kind()) => {
                closed();
                return;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                note(format!("read: {e}"));
                return;
            }
        }
    }
}

/// What a download from a malicious seed and a good one (at `good`) must
/// come to: exit 0, identical data, a `banned` line naming the malicious
/// seed and none naming the good one, the malicious seed's connection closed
/// by the downloader before it finished, and no reconnect to it.
fn check_ban_outcome(
    fx: &Fixture,
    out: &Path,
    bad: &BadSeed,
    good: SocketAddr,
    download: &mut Daemon,
    others: &[&Daemon],
) {
    let status = download.wait_exit(DOWNLOAD_WAIT_MAX);
    let finished = Instant::now();
    let conns = bad.conns();
    let context = || {
        let mut text = format!(
            "malicious seed at {} saw: {conns:#?}\n\n{}",
            bad.addr,
            download.describe()
        );
        for d in others {
            text.push_str("\n\n");
            text.push_str(&d.describe());
        }
        text
    };
    assert!(
        status.is_some(),
        "the download did not finish within {DOWNLOAD_WAIT_MAX:?}\n{}",
        context()
    );
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "the download failed ({})\n{}",
        exit_text(status),
        context()
    );
    let diffs = compare_tree(&fx.tree, out);
    assert!(
        diffs.is_empty(),
        "downloaded data differs: {diffs:#?}\n{}",
        context()
    );

    let bad_ip = format!("{}:", bad.addr.ip());
    let banned = download
        .stderr()
        .lines()
        .find(|l| l.contains("banned") && l.contains(&bad_ip))
        .map(str::to_string);
    assert!(
        banned.is_some(),
        "no stderr line with `banned` and `{bad_ip}`\n{}",
        context()
    );
    let good_ip = format!("{}:", good.ip());
    let good_banned = download
        .stderr()
        .lines()
        .find(|l| l.contains("banned") && l.contains(&good_ip))
        .map(str::to_string);
    assert!(
        good_banned.is_none(),
        "the good seed was banned: {good_banned:?}\n{}",
        context()
    );

    // The connection that got wrong bytes was closed by the downloader
    // before it finished, and nothing came back after that.
    let served: Vec<&BadConn> = conns.iter().filter(|c| c.blocks_served > 0).collect();
    assert!(
        !served.is_empty(),
        "the downloader never requested a block from the malicious seed\n{}",
        context()
    );
    let first_close = served
        .iter()
        .filter_map(|c| c.closed_by_peer)
        .filter(|t| *t < finished)
        .min();
    let Some(first_close) = first_close else {
        panic!(
            "the downloader never closed its connection to the malicious seed before it \
             finished\n{}",
            context()
        );
    };
    let later: Vec<&BadConn> = conns.iter().filter(|c| c.accepted > first_close).collect();
    assert!(
        later.is_empty(),
        "the downloader reconnected to the banned seed: {later:#?}\n{}",
        context()
    );
    eprintln!(
        "banned line: {banned:?}; malicious seed: {} connection(s), {} wrong block(s) served",
        conns.len(),
        conns.iter().map(|c| c.blocks_served).sum::<u64>()
    );
}

/// Longest the download may take to get its first block from the malicious
/// seed.
const BAD_BLOCK_WAIT_MAX: Duration = Duration::from_secs(30);

#[test]
fn a_seed_sending_wrong_data_is_banned_and_the_download_finishes() {
    let fx = fixture(0xbad_5eed);
    let bad = BadSeed::start(
        Ipv4Addr::new(127, 0, 7, 20),
        fx.meta.info_hash,
        piece_count(&fx),
    );
    // The good seed comes up only once the malicious one has served a block:
    // the download must take (and check) bytes from it first, whatever the
    // machine's load. Its first dial to the good seed is refused; the peer
    // list retries it after its back-off.
    let good_ip = Ipv4Addr::new(127, 0, 7, 21);
    let good_listen = SocketAddr::from((good_ip, free_port(good_ip)));
    let out = tempdir();
    let mut download = start_download(
        &fx.torrent,
        out.path(),
        Ipv4Addr::new(127, 0, 7, 22),
        &[bad.addr, good_listen],
    );
    let deadline = Instant::now() + BAD_BLOCK_WAIT_MAX;
    while !bad.conns().iter().any(|c| c.blocks_served > 0) {
        assert!(
            Instant::now() < deadline,
            "the download took no block from the malicious seed within {BAD_BLOCK_WAIT_MAX:?}\n{}",
            download.describe()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut good, good_addr) = start_seeder_on(
        "ringseed seed (good)",
        &fx.torrent,
        &fx.tree.save_dir,
        good_listen,
    );
    check_ban_outcome(&fx, out.path(), &bad, good_addr, &mut download, &[&good]);
    drop(bad);
    good.terminate_cleanly();
}

// ---------------------------------------------------------------------------
// The raw client itself, checked against a real peer (libtorrent), so a
// failure above points at ringseed and not at the test's own wire code.

#[test]
fn raw_client_checks_out_against_libtorrent() {
    require_libtorrent();
    let fx = fixture(0x11b_7022);
    let ip = Ipv4Addr::new(127, 0, 7, 50);
    let mut cmd = Command::new(SYSTEM_PYTHON);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/hostile/lt_seed.py"))
        .arg(&fx.torrent)
        .arg(&fx.tree.save_dir)
        .arg(ip.to_string())
        .arg("--timeout")
        .arg("120");
    let mut lt = Daemon::spawn_command("libtorrent seed", cmd);
    let addr = lt.wait_listening("lt_seed", SocketAddr::from((ip, 0)));
    let pieces = piece_count(&fx);
    let reserved = ringseed::wire::reserved_bits(true, true, false);

    // Handshake and two blocks, the last one short.
    let mut good = RawPeer::connect(Ipv4Addr::new(127, 0, 7, 51), addr, pieces)
        .unwrap_or_else(|e| panic!("{e}\n{}", lt.describe()));
    let reply = good
        .handshake(&our_handshake(fx.meta.info_hash, reserved, b'g'))
        .unwrap_or_else(|e| panic!("{e:?}\n{}", lt.describe()));
    assert_eq!(reply.info_hash, fx.meta.info_hash);
    let block = good
        .fetch_block(2, BLOCK_BYTES, BLOCK_BYTES)
        .unwrap_or_else(|e| panic!("{e}\n{}", lt.describe()));
    assert!(
        block == block_of(&fx, 2, BLOCK_BYTES, BLOCK_BYTES),
        "wrong bytes for 2/16384"
    );
    let last = pieces - 1;
    let last_size = fx.meta.info.piece_size(u64::from(last)).unwrap_or(0) as u32;
    let tail_offset = (last_size - 1) / BLOCK_BYTES * BLOCK_BYTES;
    let tail_len = last_size - tail_offset;
    let block = good
        .fetch_block(last, tail_offset, tail_len)
        .unwrap_or_else(|e| panic!("{e}\n{}", lt.describe()));
    assert!(
        block == block_of(&fx, last, tail_offset, tail_len),
        "wrong bytes for the last block"
    );

    // Cases libtorrent 2.0.8 refuses at once: the close detection works.
    // (libtorrent keeps the others open: it ignores bad requests, waits for
    // as many protocol-string bytes as the first byte announces, and lets a
    // bitfield follow a have. HOSTILE_DIAG=1 prints every case's outcome.)
    let all = cases(&fx);
    if std::env::var_os("HOSTILE_DIAG").is_some() {
        for case in &all {
            eprintln!("DIAG {}: {:?}", case.name, run_case(case, addr, &fx, b'y'));
        }
    }
    for name in [
        "a: length prefix 0xFFFF_FFF0",
        "b: have with a 2-byte payload",
        "b: 4 KiB of random bytes",
        "d: a handshake for an unknown torrent",
    ] {
        let Some(case) = all.iter().find(|c| c.name == name) else {
            panic!("no case named {name:?}");
        };
        let r = run_case(case, addr, &fx, b'x');
        assert!(
            r.is_ok(),
            "libtorrent kept {name:?} open: {r:?}\n{}",
            lt.describe()
        );
    }
    // And the good connection is still open (the close check is not fooled).
    let mut peer = good;
    let open = peer.wait_closed(Duration::from_millis(500));
    assert!(
        open.is_err(),
        "libtorrent closed the good connection: {open:?}"
    );
}

/// The malicious seed itself, checked against libtorrent as the downloader
/// (the good seed is connected only after the first hash failure, so the
/// malicious one surely serves): libtorrent bans it, and the seed sees the
/// close, so a failure of the test above points at ringseed.
#[test]
fn malicious_seed_checks_out_against_libtorrent() {
    require_libtorrent();
    let fx = fixture(0x11b_bad5);
    let bad = BadSeed::start(
        Ipv4Addr::new(127, 0, 7, 60),
        fx.meta.info_hash,
        piece_count(&fx),
    );
    let script = |name: &str| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/support/hostile")
            .join(name)
    };
    let ip = Ipv4Addr::new(127, 0, 7, 61);
    let mut cmd = Command::new(SYSTEM_PYTHON);
    cmd.arg(script("lt_seed.py"))
        .arg(&fx.torrent)
        .arg(&fx.tree.save_dir)
        .arg(ip.to_string())
        .arg("--timeout")
        .arg("120");
    let mut good = Daemon::spawn_command("libtorrent seed", cmd);
    let good_addr = good.wait_listening("lt_seed", SocketAddr::from((ip, 0)));
    let out = tempdir();
    let mut cmd = Command::new(SYSTEM_PYTHON);
    cmd.arg(script("lt_download.py"))
        .arg(&fx.torrent)
        .arg(out.path())
        .arg("127.0.7.62")
        .arg("--peer")
        .arg(bad.addr.to_string())
        .arg("--peer-after-failure")
        .arg(good_addr.to_string());
    let mut download = Daemon::spawn_command("libtorrent download", cmd);
    check_ban_outcome(&fx, out.path(), &bad, good_addr, &mut download, &[&good]);
}
