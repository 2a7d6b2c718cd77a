//! The daemon keeps its state: torrents added through the watch folder
//! and `ringseed ctl` survive kill -9 with their category, tags, limits
//! and totals; a restart resumes complete torrents without reading their
//! data; a file changed behind the daemon's back gets only its own pieces
//! checked.
//!
//! Each test runs `ringseed daemon` on its own loopback address
//! (127.0.111.x), with its folders in a temporary directory; reads of data
//! files are seen through inotify (IN_ACCESS). Every wait is bounded.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::{
    small_torrent, small_torrent_with, state_of, str_of, u64_of, Dirs, ReadWatch, RingDaemon,
};
use common::engine::{os, start_ringseed_download};

const STATE_WAIT: Duration = Duration::from_secs(60);

fn hex_list(v: &[serde_json::Value]) -> Vec<String> {
    let mut h: Vec<String> = v.iter().map(|t| str_of(t, "hash").to_string()).collect();
    h.sort();
    h
}

#[test]
fn watch_folder_adds_each_file_once_and_marks_bad_ones() {
    let ip = Ipv4Addr::new(127, 0, 111, 1);
    let dirs = Dirs::new();
    let (bytes, hash) = small_torrent(&dirs.downloads, "one.bin", 100_000, 1);
    std::fs::write(dirs.watch.join("one.torrent"), &bytes).unwrap();
    let d = RingDaemon::start("daemon", &dirs, ip, &[]);
    d.wait_torrent(&hash, STATE_WAIT, "seeding", |t| state_of(t) == "seeding");
    assert!(dirs.watch.join("one.torrent.added").is_file());
    assert!(!dirs.watch.join("one.torrent").exists());
    // The same torrent again: not added twice, the file is marked added.
    std::fs::write(dirs.watch.join("again.torrent"), &bytes).unwrap();
    // Not a torrent: marked invalid once it had time to be written.
    let junk = dirs.watch.join("junk.torrent");
    std::fs::write(&junk, b"this is not bencode").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&junk)
        .and_then(|f| f.set_modified(old))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && !(dirs.watch.join("again.torrent.added").exists()
            && dirs.watch.join("junk.torrent.invalid").exists())
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        dirs.watch.join("again.torrent.added").is_file(),
        "the duplicate was not marked\n{}",
        d.proc.describe()
    );
    assert!(
        dirs.watch.join("junk.torrent.invalid").is_file(),
        "the junk file was not marked invalid\n{}",
        d.proc.describe()
    );
    assert_eq!(d.list().len(), 1);
    assert!(d.proc.stderr().contains("is already added"));
}

/// Torrents acknowledged by `ctl add` (with a category, tags and limits)
/// are all there after kill -9, and the upload total of a torrent a
/// leecher took is at least what was listed more than one save interval
/// before the kill.
#[test]
fn kill9_loses_no_acknowledged_torrent_nor_more_than_10s_of_totals() {
    let ip = Ipv4Addr::new(127, 0, 111, 2);
    let dirs = Dirs::new();
    let mut d = RingDaemon::start("daemon", &dirs, ip, &[]);
    d.ctl(&[
        "category-create",
        "tv",
        "--save-path",
        &dirs.downloads.to_string_lossy(),
    ]);
    // One torrent a leecher downloads, to have an upload total.
    let (bytes, shared) = small_torrent(&dirs.downloads, "shared.bin", 3_000_000, 7);
    let shared_file = dirs.path("shared.torrent");
    std::fs::write(&shared_file, &bytes).unwrap();
    d.ctl(&[
        "add",
        &shared_file.to_string_lossy(),
        "--category",
        "tv",
        "--tag",
        "kept",
        "--upload-limit",
        "50M",
    ]);
    d.wait_torrent(&shared, STATE_WAIT, "seeding", |t| state_of(t) == "seeding");
    let out = dirs.path("leech");
    std::fs::create_dir_all(&out).unwrap();
    let mut leech = start_ringseed_download(
        "leecher",
        &shared_file,
        &out,
        Ipv4Addr::new(127, 0, 111, 3),
        &["--peer", &d.addr.to_string()],
    );
    let exit = leech.wait_exit(Duration::from_secs(60));
    assert_eq!(
        exit.and_then(|s| s.code()),
        Some(0),
        "the leecher failed\n{}\n{}",
        leech.describe(),
        d.proc.describe()
    );
    // Many adds from a second thread while the daemon is killed.
    let gen = dirs.path("gen");
    std::fs::create_dir_all(&gen).unwrap();
    let mut files = Vec::new();
    for i in 0..60u64 {
        let (b, h) = small_torrent(&dirs.downloads, &format!("t{i}.bin"), 20_000, 100 + i);
        let f = gen.join(format!("t{i}.torrent"));
        std::fs::write(&f, b).unwrap();
        files.push((f, h));
    }
    let listed = d.torrent(&shared).unwrap();
    let uploaded_before = u64_of(&listed, "uploaded");
    assert!(
        uploaded_before >= 3_000_000,
        "{listed}\n{}\n{}",
        leech.describe(),
        d.proc.describe()
    );
    // Saved within the next save interval (5 s) at the latest.
    std::thread::sleep(Duration::from_secs(7));
    let state = d.state.clone();
    let adder = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for (f, h) in files {
            let out = common::ringseed([
                os("ctl"),
                os("--state-dir"),
                os(&state),
                os("add"),
                os(&f),
                os("--tag"),
                os("bulk"),
            ]);
            if out.code == Some(0) {
                acked.push(h);
            } else {
                break;
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(1500));
    d.kill9();
    let acked = adder.join().unwrap();
    assert!(!acked.is_empty(), "no add was acknowledged before the kill");
    eprintln!("{} adds acknowledged before kill -9", acked.len());

    let d = RingDaemon::start("daemon after kill -9", &dirs, ip, &[]);
    let all = d.list();
    let present = hex_list(&all);
    for h in &acked {
        assert!(
            present.contains(h),
            "acknowledged torrent {h} is gone after kill -9\n{}",
            d.proc.describe()
        );
    }
    let t = d.torrent(&shared).expect("the shared torrent is gone");
    assert_eq!(str_of(&t, "category"), "tv", "{t}");
    assert_eq!(t["tags"], serde_json::json!(["kept"]), "{t}");
    assert_eq!(u64_of(&t, "upload_limit"), 50 << 20, "{t}");
    assert!(
        u64_of(&t, "uploaded") >= uploaded_before,
        "uploaded {} after the restart, {uploaded_before} listed 7 s before the kill",
        u64_of(&t, "uploaded")
    );
    for h in &acked {
        let t = all.iter().find(|t| str_of(t, "hash") == h).unwrap();
        assert_eq!(t["tags"], serde_json::json!(["bulk"]), "{t}");
    }
}

/// 1,000 complete torrents: the first start checks them (reads seen), the
/// restart after SIGTERM reads no data file at all and logs every one
/// resumed without a check.
#[test]
fn a_restart_with_1000_complete_torrents_reads_no_piece_data() {
    const N: usize = 1000;
    let ip = Ipv4Addr::new(127, 0, 111, 4);
    let dirs = Dirs::new();
    for i in 0..N {
        let (b, _) = small_torrent(&dirs.downloads, &format!("f{i:04}.bin"), 5_000, i as u64);
        std::fs::write(dirs.watch.join(format!("f{i:04}.torrent")), b).unwrap();
    }
    let reads = ReadWatch::new(&dirs.downloads);
    let mut d = RingDaemon::start("daemon", &dirs, ip, &[]);
    d.wait_all(N, "seeding", Duration::from_secs(240));
    let first = reads.take();
    assert!(
        first.len() >= N / 2,
        "the first start's checks should be seen reading the files (inotify saw {})",
        first.len()
    );
    std::thread::sleep(Duration::from_secs(6));
    d.proc.terminate_cleanly();
    drop(d);
    let _ = reads.take();

    let started = Instant::now();
    let d = RingDaemon::start("daemon restarted", &dirs, ip, &[]);
    let ready = started.elapsed();
    d.wait_all(N, "seeding", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    let read = reads.take();
    assert!(
        read.is_empty(),
        "the restart read {} data files, e.g. {:?}\n{}",
        read.len(),
        &read[..read.len().min(5)],
        d.proc.describe()
    );
    let log = d.proc.stderr();
    assert!(
        log.contains(&format!("{N} resumed without a check, 0 to check")),
        "{}",
        d.proc.describe()
    );
    eprintln!("restart with {N} torrents ready in {ready:?}");
}

/// A file modified while the daemon was stopped: only the pieces of that
/// file are checked (only it is read), and its damaged piece is dropped.
#[test]
fn a_file_changed_behind_the_daemons_back_gets_only_its_pieces_checked() {
    let ip = Ipv4Addr::new(127, 0, 111, 5);
    let dirs = Dirs::new();
    let mut hashes = Vec::new();
    for (i, name) in ["a.bin", "b.bin", "c.bin"].iter().enumerate() {
        let (b, h) = small_torrent_with(
            &dirs.downloads,
            name,
            256 * 1024,
            50 + i as u64,
            32 * 1024,
            &[],
        );
        std::fs::write(dirs.watch.join(format!("{name}.torrent")), b).unwrap();
        hashes.push(h);
    }
    let mut d = RingDaemon::start("daemon", &dirs, ip, &[]);
    d.wait_all(3, "seeding", STATE_WAIT);
    std::thread::sleep(Duration::from_secs(6));
    d.proc.terminate_cleanly();
    drop(d);
    // One byte of b.bin's third piece changes.
    corrupt(&dirs.downloads.join("b.bin"), 2 * 32 * 1024 + 100);
    let reads = ReadWatch::new(&dirs.downloads);
    let d = RingDaemon::start("daemon restarted", &dirs, ip, &[]);
    let b = d.wait_torrent(&hashes[1], STATE_WAIT, "checked", |t| {
        !state_of(t).contains("check")
    });
    std::thread::sleep(Duration::from_millis(500));
    let read = reads.take();
    assert_eq!(
        read,
        ["b.bin"],
        "only b.bin may be read\n{}",
        d.proc.describe()
    );
    assert!(
        (u64_of(&b, "pieces_have"), u64_of(&b, "piece_count")) == (7, 8),
        "b.bin should have lost exactly its damaged piece: {b}"
    );
    for h in [&hashes[0], &hashes[2]] {
        let t = d.torrent(h).unwrap();
        assert_eq!(state_of(&t), "seeding", "{t}");
    }
    assert!(
        d.proc
            .stderr()
            .contains("1 file(s) changed since the last save: checking their 8 pieces"),
        "{}",
        d.proc.describe()
    );
}

fn corrupt(path: &Path, at: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0xff;
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&b).unwrap();
}
