//! Shards end to end: `ringseed seed --shards 2` with four small torrents,
//! two owned by each shard (the owner of a torrent is shard
//! `u64::from_le_bytes(info_hash[0..8]) % shards`). Sixty-four connections,
//! sixteen per torrent, each from its own loopback address, arrive on the
//! one shared port; every shard accepts on the one listening socket, so
//! connections land on a shard whatever their torrent, and those for the
//! other shard's torrents must be handed over. Every connection must get a handshake
//! naming its own torrent and be served block 0 of piece 0 with the right
//! bytes; after SIGTERM the seeder must exit 0 and report
//! `connections handed between shards: N` with N > 0 (a debug line).
//!
//! Every wait is bounded; the seeder is killed by pid when its guard drops;
//! a failure prints its stderr. Addresses: 127.0.8.1 (seeder) and
//! 127.0.8.10-73 (clients).

mod common;

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use common::engine::{free_port, Daemon};
use common::raw_peer::{our_handshake, RawPeer};
use common::*;
use ringseed::metainfo::Metainfo;
use ringseed::wire::reserved_bits;
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
/// Longest the seeder may take to exit after SIGTERM.
const EXIT_WAIT_MAX: Duration = Duration::from_secs(20);

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
        let ours = our_handshake(t.info_hash, reserved_bits(true, true, false), tag);
        match peer
            .handshake(&ours)
            .map_err(|e| format!("handshake: {e:?}"))
        {
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
    let mut args: Vec<OsString> = vec!["seed".into(), "--no-dht".into()];
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
    // The handoff count is a debug line of the stop report.
    let mut cmd = std::process::Command::new(ringseed_bin());
    cmd.args(&args)
        .env("RINGSEED_LOG", "info,ringseed::cli::session_run=debug");
    let mut seeder = Daemon::spawn_command("seeder", cmd);
    let addr = seeder.wait_listening("ringseed", listen);

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

    seeder.signal(libc::SIGTERM);
    let status = seeder.wait_exit(EXIT_WAIT_MAX);
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
        .find_map(|l| l.split("DEBUG connections handed between shards:").nth(1))
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .unwrap_or_default()
                .parse::<u64>()
        });
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
            "`DEBUG connections handed between shards:` is not followed by a number ({e})\n{}",
            seeder.describe()
        ),
        None => panic!(
            "no `DEBUG connections handed between shards: N` line after SIGTERM \
             (RINGSEED_LOG=debug)\n{}",
            seeder.describe()
        ),
    }
}
