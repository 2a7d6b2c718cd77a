//! Issue 9, end to end: a peer of the largest torrent allowed
//! (`PIECES_PER_TORRENT_MAX`, 2^21 pieces) can deliver its bitfield to
//! `ringseed download`. That bitfield message is 262,149 bytes, more than the
//! fixed receive bound of 256 KiB a connection had before, which dropped the
//! peer ("over 262144 bytes unconsumed"); now each connection's bound comes
//! from its torrent's piece count.
//!
//! A raw peer (tests/common/raw_peer.rs) plays a partial seed twice, over
//! loopback: once dialled by the downloader (`--peer`), once dialling it
//! (an incoming connection, routed by its handshake). Each time it sends its
//! handshake and the whole bitfield, and the downloader must answer
//! `interested` (it decoded the bitfield and wants those pieces) and keep
//! the connection.
//!
//! The torrent has 2^21 pieces of 16 bytes (32 MiB, a sparse file the
//! download creates and never writes: no block is ever sent); its .torrent
//! is 40 MiB of piece hashes, written to a temporary directory. Every wait is
//! bounded, the child is killed by pid when its guard drops, and a failure
//! prints its stderr. Addresses: 127.0.11.1-3.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use common::engine::{free_port, os, Daemon};
use common::raw_peer::{our_handshake, End, Got, RawPeer};
use common::tempdir;
use ringseed::limits::{bitfield_message_bytes, PIECES_PER_TORRENT_MAX};
use ringseed::wire::{encode, Message};
use ringseed::InfoHash;

/// Piece length of the test torrent, in bytes: small, so the data is 32 MiB.
const PIECE_LENGTH: u64 = 16;
/// The downloader's address.
const DOWNLOADER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 11, 1);
/// The raw peer the downloader dials.
const DIALLED_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 11, 2);
/// The raw peer that dials the downloader.
const DIALLING_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 11, 3);
/// Longest the downloader may take to dial the peer given with `--peer`.
const ACCEPT_WAIT_MAX: Duration = Duration::from_secs(20);
/// Longest the downloader may take to answer a bitfield with `interested`.
const INTERESTED_WAIT_MAX: Duration = Duration::from_secs(20);

/// Writes a single-file .torrent of `PIECES_PER_TORRENT_MAX` pieces (every
/// hash zero) and returns its info-hash.
fn write_torrent(path: &Path) -> InfoHash {
    let pieces = PIECES_PER_TORRENT_MAX;
    let mut info = Vec::new();
    info.extend_from_slice(format!("d6:lengthi{}e", pieces * PIECE_LENGTH).as_bytes());
    info.extend_from_slice(b"4:name5:large");
    info.extend_from_slice(format!("12:piece lengthi{PIECE_LENGTH}e").as_bytes());
    info.extend_from_slice(format!("6:pieces{}:", pieces * 20).as_bytes());
    info.resize(info.len() + (pieces * 20) as usize, 0);
    info.push(b'e');
    let mut file = b"d4:info".to_vec();
    file.extend_from_slice(&info);
    file.push(b'e');
    std::fs::write(path, &file).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    InfoHash::of_info_bytes(&info)
}

/// The bitfield message of a peer that has every other piece.
fn bitfield_message() -> Vec<u8> {
    let bits = vec![0xaa; (PIECES_PER_TORRENT_MAX / 8) as usize];
    let mut msg = Vec::new();
    encode(&Message::Bitfield(&bits), &mut msg);
    assert_eq!(
        msg.len() as u64,
        bitfield_message_bytes(PIECES_PER_TORRENT_MAX)
    );
    assert!(
        msg.len() > 256 * 1024,
        "the old receive bound would hold it"
    );
    msg
}

/// Handshake, bitfield, then wait for `interested`; the connection must
/// stay open. `Err` says what happened instead.
fn deliver_bitfield(peer: &mut RawPeer, info_hash: InfoHash, tag: u8) -> Result<(), String> {
    let theirs = peer
        .handshake(&our_handshake(info_hash, [0; 8], tag))
        .map_err(|e| format!("handshake: {e:?}"))?;
    if theirs.info_hash != info_hash {
        return Err(format!("handshake names {}", theirs.info_hash));
    }
    peer.send(&bitfield_message())
        .map_err(|e| format!("sending the bitfield: {e:?}"))?;
    let deadline = Instant::now() + INTERESTED_WAIT_MAX;
    let mut seen = Vec::new();
    loop {
        match peer.next(deadline) {
            Ok(Got::Other("interested")) => return Ok(()),
            Ok(g) => seen.push(format!("{g:?}")),
            Err(End::Closed(how)) => {
                return Err(format!(
                    "the downloader closed the connection ({how}); saw {seen:?}"
                ))
            }
            Err(e) => return Err(format!("waiting for interested: {e:?}; saw {seen:?}")),
        }
    }
}

#[test]
fn a_bitfield_of_the_largest_torrent_is_delivered_both_ways() {
    let dir = tempdir();
    let torrent = dir.path().join("large.torrent");
    let info_hash = write_torrent(&torrent);
    let out = dir.path().join("out");

    let dialled = TcpListener::bind((DIALLED_IP, 0)).expect("listen for the downloader");
    dialled.set_nonblocking(true).expect("nonblocking listener");
    let dialled_addr = dialled.local_addr().expect("listener address");
    let listen = SocketAddr::from((DOWNLOADER_IP, free_port(DOWNLOADER_IP)));
    let args = vec![
        os("download"),
        os("--no-dht"),
        os(&torrent),
        os("-o"),
        os(&out),
        os("--listen"),
        os(listen.to_string()),
        os("--bind-address"),
        os(DOWNLOADER_IP.to_string()),
        os("--peer"),
        os(dialled_addr.to_string()),
    ];
    let mut downloader = Daemon::spawn("ringseed download", &args);
    let listen = downloader.wait_listening("ringseed", listen);

    // The downloader dials us.
    let deadline = Instant::now() + ACCEPT_WAIT_MAX;
    let stream = loop {
        match dialled.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "the downloader did not dial {dialled_addr}\n{}",
                    downloader.describe()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).expect("blocking stream");
    let pieces = PIECES_PER_TORRENT_MAX as u32;
    let mut outgoing = RawPeer::from_stream(stream, pieces).expect("raw peer");
    if let Err(e) = deliver_bitfield(&mut outgoing, info_hash, 1) {
        panic!("dialled by the downloader: {e}\n{}", downloader.describe());
    }

    // We dial the downloader.
    let mut incoming = RawPeer::connect(DIALLING_IP, listen, pieces).expect("connect");
    if let Err(e) = deliver_bitfield(&mut incoming, info_hash, 2) {
        panic!("dialling the downloader: {e}\n{}", downloader.describe());
    }

    let stderr = downloader.stderr();
    assert!(
        !stderr.contains("dropped"),
        "a peer was dropped\n{}",
        downloader.describe()
    );
}
