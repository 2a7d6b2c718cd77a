//! python3-libtorrent peers for the engine crate's interop tests: a check
//! that the binding imports (else the test fails with the install hint), a
//! test torrent of fixed bytes, and a script run with `/usr/bin/python3`,
//! killed by its pid however the test ends, whose `lt: seeding on IP:PORT`
//! line is waited for with a bound.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ringseed::hash::sha1;
use ringseed::metainfo::{NewFile, TorrentBuilder};

pub const PYTHON: &str = "/usr/bin/python3";
/// Longest a libtorrent script may take to check its data and listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A python process, killed (by its pid) and reaped on drop.
pub struct Python(pub Child);

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Fails with the install hint unless `import libtorrent` works.
pub fn require_libtorrent() {
    let ok = Command::new(PYTHON)
        .args(["-c", "import libtorrent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3-libtorrent is missing: apt-get install python3-libtorrent \
         (it must import in {PYTHON})"
    );
}

/// Writes `pieces` pieces of `piece_bytes` of fixed bytes as
/// `dir/payload.bin` and its torrent as `dir/t.torrent`; returns the info
/// dictionary's bytes.
pub fn make_torrent(dir: &Path, pieces: u64, piece_bytes: u64) -> Vec<u8> {
    let len = pieces * piece_bytes;
    let data: Vec<u8> = (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("payload.bin"), &data).unwrap();
    let hashes: Vec<[u8; 20]> = data.chunks(piece_bytes as usize).map(sha1).collect();
    let builder = TorrentBuilder {
        name: "payload.bin".into(),
        files: vec![NewFile {
            path: Vec::new(),
            length: len,
        }],
        single_file: true,
        piece_length: piece_bytes,
        ..Default::default()
    };
    std::fs::write(dir.join("t.torrent"), builder.build(&hashes).unwrap()).unwrap();
    builder.info_bytes(&hashes).unwrap()
}

/// Runs `script` with `args`, echoing its output, until it prints
/// `lt: seeding on IP:PORT` (within [`START_TIMEOUT`]); returns the process
/// and that address.
pub fn start_seed(script: &str, args: &[&OsStr]) -> (Python, SocketAddr) {
    let mut child = Command::new(PYTHON)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start /usr/bin/python3");
    let stdout = child.stdout.take().expect("piped stdout");
    let seed = Python(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("libtorrent seed did not start in time");
        if let Some(addr) = line.strip_prefix("lt: seeding on ") {
            return (seed, addr.trim().parse().expect("seed address"));
        }
    }
}
