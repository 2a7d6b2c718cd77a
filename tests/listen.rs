//! Listening and dialling across address families and processes:
//! - two `ringseed seed` processes given the same `--listen`: the second is
//!   refused ("address already in use", exit 2) and the first keeps serving
//!   (before, both shards' SO_REUSEPORT let the second join the port);
//! - one process with `--listen 127.0.41.1:0 --listen [::1]:0` serves a raw
//!   peer over IPv4 and another over IPv6, on one port;
//! - BEP 7: a downloader learns an IPv6-only seed from its tracker's compact
//!   `peers6` and, with `--interface lo --bind-address` an IPv4 address,
//!   still dials it (through lo) and completes; without `--interface` it
//!   says why it does not dial it.
//!
//! Addresses: 127.0.41.1 to 127.0.41.9 and ::1 (ports picked by the
//! kernel). Every wait is bounded; processes are killed by pid when their
//! guards drop, the fake tracker stops at its deadline.

mod common;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::engine::{free_port, os, Daemon};
use common::raw_peer::{our_handshake, RawPeer};
use common::*;
use ringseed::hash::sha1;
use ringseed::metainfo::{Metainfo, NewFile, TorrentBuilder};
use ringseed::wire::reserved_bits;

const FIRST_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 41, 1);
const PEER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 41, 2);
const TRACKER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 41, 3);
const LEECH_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 41, 4);
const LONE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 41, 5);
const PIECE_BYTES: u64 = 32 * 1024;
/// Longest a refused start may take.
const REFUSAL_WAIT_MAX: Duration = Duration::from_secs(30);
/// Longest the IPv6 download may take (a few hundred KiB on loopback).
const DOWNLOAD_WAIT_MAX: Duration = Duration::from_secs(60);
/// Longest the fake tracker serves.
const TRACKER_LIFE_MAX: Duration = Duration::from_secs(120);

/// A single-file torrent of `len` random bytes in `dir/data/NAME`, with
/// `trackers`; returns (torrent path, data dir, data).
fn small_torrent(
    dir: &Path,
    name: &str,
    len: usize,
    trackers: &[String],
) -> (PathBuf, PathBuf, Vec<u8>) {
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).unwrap_or_else(|e| panic!("{e}"));
    let mut data = vec![0u8; len];
    XorShift64::new(41).fill(&mut data);
    std::fs::write(data_dir.join(name), &data).unwrap_or_else(|e| panic!("{e}"));
    let hashes: Vec<[u8; 20]> = data.chunks(PIECE_BYTES as usize).map(sha1).collect();
    let b = TorrentBuilder {
        name: name.into(),
        files: vec![NewFile {
            path: vec![],
            length: len as u64,
        }],
        single_file: true,
        piece_length: PIECE_BYTES,
        trackers: trackers.iter().map(|t| vec![t.clone()]).collect(),
        ..TorrentBuilder::default()
    };
    let bytes = b.build(&hashes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let torrent = dir.join(format!("{name}.torrent"));
    std::fs::write(&torrent, bytes).unwrap_or_else(|e| panic!("{e}"));
    (torrent, data_dir, data)
}

fn info_hash(torrent: &Path) -> ringseed::InfoHash {
    Metainfo::from_bytes(&std::fs::read(torrent).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"))
        .info_hash
}

/// Handshakes over `peer` and checks the second block of piece 1.
fn fetch_and_check(mut peer: RawPeer, torrent: &Path, data: &[u8], d: &Daemon) {
    let hs = our_handshake(info_hash(torrent), reserved_bits(true, true, false), 4);
    peer.handshake(&hs)
        .unwrap_or_else(|e| panic!("handshake: {e:?}\n{}", d.describe()));
    let block = peer
        .fetch_block(1, 16 * 1024, 16 * 1024)
        .unwrap_or_else(|e| panic!("block: {e}\n{}", d.describe()));
    let at = PIECE_BYTES as usize + 16 * 1024;
    assert_eq!(block, data[at..at + 16 * 1024]);
}

fn seed_args(
    torrent: &Path,
    data_dir: &Path,
    listen: &[SocketAddr],
    extra: &[&str],
) -> Vec<OsString> {
    let mut args = vec![
        os("seed"),
        os("--no-dht"),
        os(torrent),
        os("--data"),
        os(data_dir),
    ];
    for l in listen {
        args.push(os("--listen"));
        args.push(os(l.to_string()));
    }
    args.extend(extra.iter().map(os));
    args
}

/// The addresses of `... listening on A and B (N shards)`.
fn listening_addrs(d: &mut Daemon) -> Vec<SocketAddr> {
    let line = d
        .wait_line(common::engine::LISTEN_WAIT_MAX, |l| {
            l.contains("INFO listening on")
        })
        .unwrap_or_else(|why| panic!("never listened: {why}\n{}", d.describe()));
    let rest = line.split("listening on").nth(1).unwrap_or_default();
    let rest = rest.split(" (").next().unwrap_or_default();
    rest.split(" and ")
        .map(|a| {
            a.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{a:?} in {line:?}: {e}"))
        })
        .collect()
}

#[test]
fn a_second_process_on_the_same_listen_address_is_refused() {
    let dir = tempdir();
    let (torrent, data_dir, data) = small_torrent(dir.path(), "two.bin", 100_000, &[]);
    let listen = SocketAddr::from((FIRST_IP, free_port(FIRST_IP)));
    let args = seed_args(&torrent, &data_dir, &[listen], &["--shards", "2"]);
    let mut first = Daemon::spawn("first seeder", &args);
    let addr = first.wait_listening("ringseed", listen);
    assert_eq!(addr, listen);

    let mut cmd = std::process::Command::new(ringseed_bin());
    cmd.args(&args);
    let second = run_with_timeout(&mut cmd, REFUSAL_WAIT_MAX);
    second.assert_code(2);
    let want =
        format!("cannot listen on {listen}: address already in use (another program holds it)");
    assert!(second.stderr.contains(&want), "{}", second.describe());
    assert!(
        !second.stderr.contains("checking"),
        "the data was checked before the port: {}",
        second.describe()
    );
    // The first still owns the port: every connection reaches it.
    for _ in 0..4 {
        let peer = RawPeer::connect(PEER_IP, listen, 4).unwrap_or_else(|e| panic!("{e}"));
        fetch_and_check(peer, &torrent, &data, &first);
    }
    first.terminate_cleanly();
}

#[test]
fn one_process_serves_ipv4_and_ipv6_on_one_port() {
    let dir = tempdir();
    let (torrent, data_dir, data) = small_torrent(dir.path(), "dual.bin", 100_000, &[]);
    let v4 = SocketAddr::from((FIRST_IP, 0));
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 0));
    let args = seed_args(&torrent, &data_dir, &[v4, v6], &["--shards", "2"]);
    let mut d = Daemon::spawn("dual-stack seeder", &args);
    let addrs = listening_addrs(&mut d);
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert_eq!(addrs[0].ip(), FIRST_IP);
    assert_eq!(addrs[1].ip(), Ipv6Addr::LOCALHOST);
    assert_eq!(addrs[0].port(), addrs[1].port(), "one port for both");
    for _ in 0..2 {
        let peer = RawPeer::connect(PEER_IP, addrs[0], 4).unwrap_or_else(|e| panic!("{e}"));
        fetch_and_check(peer, &torrent, &data, &d);
        let stream = TcpStream::connect_timeout(&addrs[1], Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect {}: {e}", addrs[1]));
        let peer = RawPeer::from_stream(stream, 4).unwrap_or_else(|e| panic!("{e}"));
        fetch_and_check(peer, &torrent, &data, &d);
    }
    d.terminate_cleanly();
}

/// An HTTP tracker on TRACKER_IP answering every announce with `peers6`
/// holding `v6_peers` (and no IPv4 peers), until `stop` or its deadline.
fn peers6_tracker(v6_peers: Vec<SocketAddr>, stop: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind((TRACKER_IP, 0)).unwrap_or_else(|e| panic!("{e}"));
    listener
        .set_nonblocking(true)
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let mut compact = Vec::new();
    for p in &v6_peers {
        let SocketAddr::V6(p) = p else {
            panic!("{p} is not IPv6")
        };
        compact.extend_from_slice(&p.ip().octets());
        compact.extend_from_slice(&p.port().to_be_bytes());
    }
    let mut body = b"d8:intervali30e5:peers0:6:peers6".to_vec();
    body.extend_from_slice(format!("{}:", compact.len()).as_bytes());
    body.extend_from_slice(&compact);
    body.push(b'e');
    std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < TRACKER_LIFE_MAX && !stop.load(Ordering::Relaxed) {
            let Ok((mut s, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let _ = s.set_nonblocking(false);
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 16 * 1024 {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => got.extend_from_slice(&buf[..k]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}/announce")
}

#[test]
fn an_ipv6_seed_from_the_trackers_peers6_is_dialled_with_an_ipv4_bind_address() {
    let dir = tempdir();
    // The seed listens on ::1 only; its port is known before the torrent
    // is made, so the tracker can name it.
    let probe = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).unwrap_or_else(|e| panic!("{e}"));
    let seed_v6 = probe.local_addr().unwrap_or_else(|e| panic!("{e}"));
    drop(probe);
    // The downloader also listens on ::1; the tracker lists it too (as
    // trackers list the announcer), and it must not dial itself.
    let leech_v6_port = {
        let p = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).unwrap_or_else(|e| panic!("{e}"));
        p.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
    };
    let leech_v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, leech_v6_port));
    let stop = Arc::new(AtomicBool::new(false));
    let url = peers6_tracker(vec![leech_v6, seed_v6], stop.clone());
    let (torrent, data_dir, data) = small_torrent(dir.path(), "six.bin", 300_000, &[url]);
    let seed_args = seed_args(&torrent, &data_dir, &[seed_v6], &["--shards", "1"]);
    let mut seeder = Daemon::spawn("IPv6 seeder", &seed_args);
    seeder.wait_listening("ringseed", seed_v6);

    // --bind-address is IPv4 only; --interface lo pins the IPv6 dial.
    let out = dir.path().join("out");
    let leech_v4 = SocketAddr::from((LEECH_IP, free_port(LEECH_IP)));
    let args: Vec<OsString> = vec![
        os("download"),
        os("--no-dht"),
        os(&torrent),
        os("-o"),
        os(&out),
        os("--listen"),
        os(leech_v4.to_string()),
        os("--listen"),
        os(leech_v6.to_string()),
        os("--interface"),
        os("lo"),
        os("--bind-address"),
        os(LEECH_IP.to_string()),
    ];
    let mut leech = Daemon::spawn("downloader", &args);
    let status = leech.wait_exit(DOWNLOAD_WAIT_MAX);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "the download from the IPv6 seed did not complete\n{}\n{}",
        leech.describe(),
        seeder.describe()
    );
    let got = std::fs::read(out.join("six.bin")).unwrap_or_default();
    assert!(got == data, "the copy differs ({} bytes)", got.len());

    // Without --interface nothing would keep IPv6 traffic on lo: the
    // downloader says so instead of dialling.
    let out2 = dir.path().join("out2");
    let lone = SocketAddr::from((LONE_IP, free_port(LONE_IP)));
    let args: Vec<OsString> = vec![
        os("download"),
        os("--no-dht"),
        os(&torrent),
        os("-o"),
        os(&out2),
        os("--listen"),
        os(lone.to_string()),
        os("--bind-address"),
        os(LONE_IP.to_string()),
        os("--peer"),
        os(seed_v6.to_string()),
    ];
    let mut lone_leech = Daemon::spawn("downloader without --interface", &args);
    let want = format!("bind address {LONE_IP} is IPv4 but the remote {seed_v6} is IPv6");
    if let Err(why) = lone_leech.wait_line(Duration::from_secs(30), |l| l.contains(&want)) {
        panic!(
            "no refusal naming the family: {why}\n{}",
            lone_leech.describe()
        );
    }
    // Stopped before it completed: exit status 1.
    lone_leech.signal(libc::SIGTERM);
    let status = lone_leech.wait_exit(common::engine::EXIT_WAIT_MAX);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "{}",
        lone_leech.describe()
    );
    stop.store(true, Ordering::Relaxed);
    seeder.terminate_cleanly();
}
