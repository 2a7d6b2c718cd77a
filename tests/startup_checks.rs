//! Options are checked before the data: `ringseed seed` with a 2 GiB
//! torrent (a sparse file whose pieces never match, so its check would read
//! 2 GiB, seconds on this machine) and one bad option each time: a missing
//! `--interface`, a listen address another program holds, the same torrent
//! given twice, and contradictory upload-slot settings. Each is refused with
//! exit status 2 and a message naming what is wrong, and no `checking` line
//! (the line each torrent gets as its check is queued) comes before it.
//! `download` with the port in use is refused the same way. SIGTERM during
//! a check is tests/check_stop.rs.
//!
//! Addresses: 127.0.42.1. Every run is bounded by a timeout and killed past
//! it.

mod common;

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::engine::{free_port, os};
use common::*;
use ringseed::metainfo::{NewFile, TorrentBuilder};
use ringseed::runtime::sockets::{tcp_listener, BindOptions};

const IP: Ipv4Addr = Ipv4Addr::new(127, 0, 42, 1);
const BIG_BYTES: u64 = 2 << 30;
const BIG_PIECE_BYTES: u64 = 4 << 20;
/// Longest a refused start may take (a refusal is immediate; a run that
/// goes on to hash 2 GiB and serve runs into it and fails the test).
const REFUSAL_WAIT_MAX: Duration = Duration::from_secs(30);

/// The 2 GiB torrent and its data dir: (torrent, copy of the torrent at
/// another path, data dir).
fn big_torrent(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).unwrap_or_else(|e| panic!("{e}"));
    let f = std::fs::File::create(data_dir.join("big.bin")).unwrap_or_else(|e| panic!("{e}"));
    f.set_len(BIG_BYTES).unwrap_or_else(|e| panic!("{e}"));
    let b = TorrentBuilder {
        name: "big.bin".into(),
        files: vec![NewFile {
            path: vec![],
            length: BIG_BYTES,
        }],
        single_file: true,
        piece_length: BIG_PIECE_BYTES,
        ..TorrentBuilder::default()
    };
    let hashes = vec![[1u8; 20]; (BIG_BYTES / BIG_PIECE_BYTES) as usize];
    let bytes = b.build(&hashes).unwrap_or_else(|e| panic!("{e}"));
    let torrent = dir.join("big.torrent");
    std::fs::write(&torrent, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let copy_dir = dir.join("copies");
    std::fs::create_dir_all(&copy_dir).unwrap_or_else(|e| panic!("{e}"));
    let copy = copy_dir.join("same-again.torrent");
    std::fs::write(&copy, &bytes).unwrap_or_else(|e| panic!("{e}"));
    (torrent, copy, data_dir)
}

/// Runs `ringseed seed TORRENTS --data DIR --listen LISTEN EXTRA`; requires
/// exit 2, `want` in stderr and no check started.
fn refused(torrents: &[&Path], data: &Path, listen: SocketAddr, extra: &[&str], want: &str) {
    let mut args: Vec<OsString> = vec![os("seed"), os("--no-dht")];
    args.extend(torrents.iter().map(|t| os(*t)));
    args.extend([
        os("--data"),
        os(data),
        os("--listen"),
        os(listen.to_string()),
    ]);
    args.extend(extra.iter().map(os));
    let mut cmd = Command::new(ringseed_bin());
    cmd.args(&args);
    let out = run_with_timeout(&mut cmd, REFUSAL_WAIT_MAX);
    out.assert_code(2);
    assert!(
        out.stderr.contains(want),
        "expected {want:?}\n{}",
        out.describe()
    );
    assert!(
        !out.stderr.contains("checking"),
        "a check started before the error\n{}",
        out.describe()
    );
    assert!(
        !out.stderr.contains("listening on"),
        "it ran before the error\n{}",
        out.describe()
    );
}

#[test]
fn bad_options_are_reported_before_any_piece_is_hashed() {
    let dir = tempdir();
    let (torrent, copy, data) = big_torrent(dir.path());
    let listen = SocketAddr::from((IP, free_port(IP)));

    // A missing interface.
    refused(
        &[&torrent],
        &data,
        listen,
        &["--interface", "rsnope42"],
        "network interface \"rsnope42\" does not exist",
    );

    // A port another program holds, one that lets others join with
    // SO_REUSEPORT (as two ringseed processes did): with two shards we
    // used to join it and hash first.
    let other = tcp_listener(listen, &BindOptions::default(), true, 16)
        .unwrap_or_else(|e| panic!("the other program's listener: {e}"));
    refused(
        &[&torrent],
        &data,
        listen,
        &["--shards", "2"],
        &format!("cannot listen on {listen}: address already in use (another program holds it)"),
    );
    // `download` starts its session the same way: refused before its
    // check of the data already there.
    let mut cmd = Command::new(ringseed_bin());
    cmd.args([
        os("download"),
        os("--no-dht"),
        os(&torrent),
        os("-o"),
        os(&data),
        os("--listen"),
        os(listen.to_string()),
        os("--shards"),
        os("2"),
    ]);
    let out = run_with_timeout(&mut cmd, REFUSAL_WAIT_MAX);
    out.assert_code(2);
    assert!(
        out.stderr.contains(&format!(
            "cannot listen on {listen}: address already in use"
        )),
        "{}",
        out.describe()
    );
    assert!(
        !out.stderr.contains("on disk already"),
        "the data was checked first\n{}",
        out.describe()
    );
    drop(other);

    // The same torrent twice: the same path, and a copy elsewhere.
    let named =
        |a: &Path, b: &Path| format!("{} and {} are the same torrent", a.display(), b.display());
    refused(
        &[&torrent, &torrent],
        &data,
        listen,
        &[],
        &named(&torrent, &torrent),
    );
    refused(
        &[&torrent, &copy],
        &data,
        listen,
        &[],
        &named(&torrent, &copy),
    );

    // No upload slot at all: no peer could ever be unchoked.
    refused(
        &[&torrent],
        &data,
        listen,
        &["--upload-slots", "0", "--optimistic-slots", "0"],
        "no peer could ever be unchoked",
    );
}
