//! Tests of the hashing pipeline against SHA-1 of the concatenated stream.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::hash::sha1;
use crate::storage::LayoutError;

/// Deterministic bytes.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    crate::rng::Rng::new(seed).bytes(n)
}

/// A file of the test stream: `Some(data)` on disk, or a pad of `len` zeros.
enum Spec {
    Data(Vec<u8>),
    Pad(u64),
    /// In the list but never written.
    Missing(u64),
}

struct Fixture {
    _dir: tempfile::TempDir,
    files: Vec<DiskFile>,
    /// The stream as it should be.
    stream: Vec<u8>,
}

fn fixture(specs: Vec<Spec>) -> Fixture {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut files = Vec::new();
    let mut stream = Vec::new();
    for (i, spec) in specs.into_iter().enumerate() {
        let path = dir.path().join(format!("file{i}.bin"));
        match spec {
            Spec::Data(d) => {
                std::fs::write(&path, &d).unwrap_or_else(|e| panic!("{e}"));
                files.push(DiskFile {
                    path: Some(path),
                    length: d.len() as u64,
                });
                stream.extend_from_slice(&d);
            }
            Spec::Pad(n) => {
                files.push(DiskFile {
                    path: None,
                    length: n,
                });
                stream.resize(stream.len() + n as usize, 0);
            }
            Spec::Missing(n) => {
                files.push(DiskFile {
                    path: Some(path),
                    length: n,
                });
                stream.resize(stream.len() + n as usize, 0xee);
            }
        }
    }
    Fixture {
        _dir: dir,
        files,
        stream,
    }
}

fn run(
    files: &[DiskFile],
    piece_length: u64,
    opts: HashOptions,
) -> BTreeMap<u64, Result<[u8; 20], PieceError>> {
    let mut got = BTreeMap::new();
    let stats = hash_pieces(files, piece_length, &opts, |r| {
        assert!(
            got.insert(r.index, r.hash).is_none(),
            "piece reported twice"
        );
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats.pieces, got.len() as u64);
    got
}

fn expected(stream: &[u8], piece_length: u64) -> Vec<[u8; 20]> {
    stream.chunks(piece_length as usize).map(sha1).collect()
}

fn opts(threads: usize, chunk_bytes: usize, depth: usize) -> HashOptions {
    HashOptions {
        threads,
        chunk_bytes,
        depth,
        lanes: 1,
    }
}

fn with_lanes(o: HashOptions, lanes: usize) -> HashOptions {
    HashOptions { lanes, ..o }
}

/// Every lane count from 1 to LANES_MAX.
fn all_lanes(o: HashOptions) -> impl Iterator<Item = HashOptions> {
    (LANES_MIN..=LANES_MAX).map(move |l| with_lanes(o, l))
}

fn assert_all_good(f: &Fixture, piece_length: u64, o: HashOptions) {
    let want = expected(&f.stream, piece_length);
    for o in all_lanes(o) {
        let got = run(&f.files, piece_length, o);
        assert_eq!(got.len(), want.len());
        for (i, w) in want.iter().enumerate() {
            assert_eq!(got.get(&(i as u64)), Some(&Ok(*w)), "piece {i} with {o:?}");
        }
    }
}

#[test]
fn hashes_match_the_concatenated_stream() {
    let f = fixture(vec![
        Spec::Data(bytes(1, 100_000)),
        Spec::Data(bytes(2, 16_384)),
        Spec::Data(bytes(3, 1)),
        Spec::Data(bytes(4, 77_777)),
    ]);
    for o in [
        opts(1, CHUNK_BYTES_MIN, 2),
        opts(2, CHUNK_BYTES_MIN, 3),
        opts(3, 64 * 1024, 8),
        HashOptions::default(),
    ] {
        assert_all_good(&f, 16 * 1024, o);
        assert_all_good(&f, 32 * 1024, o);
    }
}

#[test]
fn pieces_longer_than_a_chunk_are_hashed_in_parts() {
    let f = fixture(vec![
        Spec::Data(bytes(5, 300_001)),
        Spec::Data(bytes(6, 50_000)),
    ]);
    // 128 KiB pieces, 16 KiB chunks: eight chunks per piece.
    assert_all_good(&f, 128 * 1024, opts(2, CHUNK_BYTES_MIN, 2));
    assert_all_good(&f, 128 * 1024, opts(1, CHUNK_BYTES_MIN, 8));
    // One piece holding everything.
    assert_all_good(&f, 1024 * 1024, opts(2, CHUNK_BYTES_MIN, 3));
}

#[test]
fn pad_files_read_as_zeros() {
    let f = fixture(vec![
        Spec::Data(bytes(7, 10_000)),
        Spec::Pad(16_384 - 10_000),
        Spec::Data(bytes(8, 20_000)),
        Spec::Pad(40_000),
        Spec::Data(bytes(9, 3)),
    ]);
    assert_all_good(&f, 16 * 1024, opts(2, CHUNK_BYTES_MIN, 2));
    // A piece of nothing but padding.
    let pad_only = fixture(vec![Spec::Pad(50_000)]);
    assert_all_good(&pad_only, 16 * 1024, opts(2, CHUNK_BYTES_MIN, 2));
}

#[test]
fn many_tiny_files_in_one_piece() {
    // 1200 files of 1 to 40 bytes (and some empty ones), far more than
    // SPANS_PER_CHUNK_MAX per piece.
    let specs: Vec<Spec> = (0..1200u64)
        .map(|i| Spec::Data(bytes(100 + i, (i % 41) as usize)))
        .collect();
    let f = fixture(specs);
    assert!(f.stream.len() > 16 * 1024);
    assert_all_good(&f, 16 * 1024, opts(2, CHUNK_BYTES_MIN, 2));
    assert_all_good(&f, 16 * 1024, opts(1, CHUNK_BYTES_MIN, 8));
}

#[test]
fn zero_length_files_need_no_reads() {
    let f = fixture(vec![
        Spec::Data(Vec::new()),
        Spec::Data(bytes(10, 20_000)),
        Spec::Missing(0),
        Spec::Data(Vec::new()),
        Spec::Data(bytes(11, 20_000)),
        Spec::Missing(0),
    ]);
    // The missing empty files are never opened, so nothing fails.
    assert_all_good(&f, 16 * 1024, opts(2, CHUNK_BYTES_MIN, 2));
}

#[test]
fn empty_stream_has_no_pieces() {
    let got = run(&[], 16 * 1024, HashOptions::default());
    assert!(got.is_empty());
    let f = fixture(vec![Spec::Data(Vec::new())]);
    assert!(run(&f.files, 16 * 1024, HashOptions::default()).is_empty());
}

/// Pieces `first..=last` touched by stream bytes `[start, end)`.
fn pieces_of(start: u64, end: u64, piece_length: u64) -> std::ops::RangeInclusive<u64> {
    start / piece_length..=(end - 1) / piece_length
}

#[test]
fn missing_file_fails_only_its_pieces() {
    let pl = 16 * 1024u64;
    let f = fixture(vec![
        Spec::Data(bytes(12, 40_000)),
        Spec::Missing(50_000),
        Spec::Data(bytes(13, 60_000)),
    ]);
    let bad = pieces_of(40_000, 90_000, pl);
    let want = expected(&f.stream, pl);
    for o in [opts(1, CHUNK_BYTES_MIN, 2), opts(3, CHUNK_BYTES_MIN, 4)]
        .into_iter()
        .flat_map(all_lanes)
    {
        let got = run(&f.files, pl, o);
        assert_eq!(got.len(), want.len());
        for (i, w) in want.iter().enumerate() {
            let i = i as u64;
            let r = got.get(&i).unwrap_or_else(|| panic!("piece {i} missing"));
            if bad.contains(&i) {
                match r {
                    Err(PieceError::MissingFile { file: 1, path }) => {
                        assert!(path.ends_with("file1.bin"))
                    }
                    other => panic!("piece {i}: expected missing file1, got {other:?}"),
                }
            } else {
                assert_eq!(r, &Ok(*w), "piece {i}");
            }
        }
    }
}

#[test]
fn short_file_fails_the_pieces_past_its_end() {
    let pl = 16 * 1024u64;
    let mut f = fixture(vec![
        Spec::Data(bytes(14, 20_000)),
        Spec::Data(bytes(15, 70_000)),
        Spec::Data(bytes(16, 30_000)),
    ]);
    // Cut file 1 to 25,000 bytes: stream bytes 45,000..90,000 are gone.
    let path = f.files[1].path.clone().unwrap_or_default();
    let full = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&path, &full[..25_000]).unwrap_or_else(|e| panic!("{e}"));
    let bad = pieces_of(45_000, 90_000, pl);
    let want = expected(&f.stream, pl);
    let got = run(&f.files, pl, with_lanes(opts(2, CHUNK_BYTES_MIN, 2), 3));
    for (i, w) in want.iter().enumerate() {
        let i = i as u64;
        let r = got.get(&i).unwrap_or_else(|| panic!("piece {i} missing"));
        if bad.contains(&i) {
            assert!(
                matches!(
                    r,
                    Err(PieceError::ShortFile {
                        file: 1,
                        found: 25_000,
                        expected: 70_000,
                        ..
                    })
                ),
                "piece {i}: {r:?}"
            );
        } else {
            assert_eq!(r, &Ok(*w), "piece {i}");
        }
    }
    // The message names the file.
    let msg = PieceError::ShortFile {
        file: 1,
        path: path.clone(),
        found: 25_000,
        expected: 70_000,
    }
    .to_string();
    assert!(msg.contains("file1.bin") && msg.contains("25000"), "{msg}");
    f.files.clear();
}

#[test]
fn a_directory_in_place_of_a_file_is_an_io_error() {
    let pl = 16 * 1024u64;
    let f = fixture(vec![Spec::Data(bytes(17, 40_000))]);
    let dir_path = f._dir.path().join("a-dir");
    std::fs::create_dir(&dir_path).unwrap_or_else(|e| panic!("{e}"));
    let mut files = f.files.clone();
    files.push(DiskFile {
        path: Some(dir_path),
        length: 10_000,
    });
    let got = run(&files, pl, opts(1, CHUNK_BYTES_MIN, 2));
    // Piece 2 holds bytes 32,768..49,152: the directory's part.
    match got.get(&2) {
        Some(Err(
            e @ PieceError::Io {
                file: 1,
                op: "read",
                ..
            },
        )) => {
            assert!(e.to_string().contains("a-dir"), "{e}");
        }
        other => panic!("expected a read error, got {other:?}"),
    }
    assert!(got.get(&0).is_some_and(Result::is_ok));
    assert!(got.get(&1).is_some_and(Result::is_ok));
}

#[test]
fn unreadable_file_is_an_open_error() {
    let e = open_error(3, Path::new("/x/y"), OpenFailure::Errno(libc::EACCES));
    assert_eq!(e.file(), 3);
    let msg = e.to_string();
    assert!(msg.contains("open") && msg.contains("/x/y"), "{msg}");
    let m = open_error(4, Path::new("/x/z"), OpenFailure::Missing);
    assert_eq!(m.to_string(), "missing file /x/z");
}

#[test]
fn options_are_checked() {
    let f = fixture(vec![Spec::Data(bytes(18, 100))]);
    for (o, what) in [
        (opts(0, CHUNK_BYTES_MIN, 2), "thread count"),
        (opts(THREADS_MAX + 1, CHUNK_BYTES_MIN, 2), "thread count"),
        (opts(1, CHUNK_BYTES_MIN - 1, 2), "chunk size"),
        (opts(1, CHUNK_BYTES_MAX + 1, 2), "chunk size"),
        (opts(1, CHUNK_BYTES_MIN, 1), "read-ahead depth"),
        (opts(1, CHUNK_BYTES_MIN, DEPTH_MAX + 1), "read-ahead depth"),
        (with_lanes(opts(1, CHUNK_BYTES_MIN, 2), 0), "lane count"),
        (
            with_lanes(opts(1, CHUNK_BYTES_MIN, 2), LANES_MAX + 1),
            "lane count",
        ),
    ] {
        match hash_pieces(&f.files, 16 * 1024, &o, |_| {}) {
            Err(HashError::Option { what: w, .. }) => assert_eq!(w, what),
            other => panic!("{o:?}: {other:?}"),
        }
    }
    assert!(matches!(
        hash_pieces(&f.files, 0, &HashOptions::default(), |_| {}),
        Err(HashError::Layout(LayoutError::PieceLengthZero))
    ));
    let huge = [
        DiskFile {
            path: None,
            length: u64::MAX,
        },
        DiskFile {
            path: None,
            length: 1,
        },
    ];
    assert!(matches!(
        hash_pieces(&huge, 16 * 1024, &HashOptions::default(), |_| {}),
        Err(HashError::Layout(LayoutError::TotalOverflow { .. }))
    ));
}

#[test]
fn more_threads_than_pieces() {
    let f = fixture(vec![Spec::Data(bytes(19, 5_000))]);
    assert_all_good(&f, 16 * 1024, opts(16, CHUNK_BYTES_MIN, 2));
}

#[test]
fn a_panicking_callback_does_not_hang_the_workers() {
    // More pieces than the results queue holds, so workers would block on a
    // receiver that nobody reads if it were not dropped.
    let f = fixture(vec![Spec::Pad(
        16 * 1024 * (RESULTS_QUEUE_MAX as u64 + 100),
    )]);
    let files = f.files.clone();
    let outcome = std::panic::catch_unwind(move || {
        let _ = hash_pieces(&files, 16 * 1024, &opts(2, CHUNK_BYTES_MIN, 2), |_| {
            panic!("callback gives up");
        });
    });
    assert!(outcome.is_err());
}

#[test]
fn only_the_selected_pieces_are_hashed() {
    let piece_length = 16 * 1024;
    let f = fixture(vec![
        Spec::Data(bytes(41, 100_000)),
        Spec::Data(bytes(42, 70_000)),
    ]);
    let want = expected(&f.stream, piece_length);
    let pieces = want.len() as u64;
    // Runs at the start, the middle and past the end (cut to the last).
    let select = [(0, 1), (3, 6), (pieces - 1, pieces + 5)];
    for threads in [1, 3] {
        for o in all_lanes(opts(threads, CHUNK_BYTES_MIN, 2)) {
            let mut got = BTreeMap::new();
            let stats = hash_pieces_in(
                &f.files,
                piece_length,
                &o,
                &AtomicBool::new(false),
                Some(&select),
                |r| assert!(got.insert(r.index, r.hash).is_none(), "piece twice"),
            )
            .unwrap();
            let idx: Vec<u64> = got.keys().copied().collect();
            assert_eq!(idx, [0, 3, 4, 5, pieces - 1], "{o:?}");
            assert_eq!(stats.pieces, 5);
            let last = f.stream.len() as u64 - (pieces - 1) * piece_length;
            assert_eq!(stats.bytes, 4 * piece_length + last);
            for (i, h) in got {
                assert_eq!(h, Ok(want[i as usize]), "piece {i}");
            }
        }
    }
    // Nothing selected: nothing read. Out of order: refused.
    let none = hash_pieces_in(
        &f.files,
        piece_length,
        &opts(1, CHUNK_BYTES_MIN, 2),
        &AtomicBool::new(false),
        Some(&[]),
        |_| panic!("nothing to hash"),
    )
    .unwrap();
    assert_eq!(none.pieces, 0);
    let bad = hash_pieces_in(
        &f.files,
        piece_length,
        &opts(1, CHUNK_BYTES_MIN, 2),
        &AtomicBool::new(false),
        Some(&[(4, 6), (2, 3)]),
        |_| {},
    );
    assert!(
        matches!(bad, Err(HashError::Selection { start: 2, end: 3 })),
        "{bad:?}"
    );
}
