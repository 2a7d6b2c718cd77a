//! Interop with libtorrent 2.0 (Debian python3-libtorrent): torrents written by
//! `ringseed create` must load in libtorrent with the same info-hash and
//! geometry, and libtorrent's own recheck of the source data must find every
//! piece. Fails (never skips) when the binding is missing.

mod common;

use common::*;

/// Loopback tracker URL; nothing listens there and nothing ever announces to it.
const TRACKER: &str = "http://127.0.0.1:6969/announce";

/// Creates a torrent of a fresh tree with `extra` args, then checks that
/// ringseed and libtorrent agree on it and that libtorrent finds all pieces.
/// Returns (ringseed's JSON, libtorrent's JSON).
fn create_and_check(
    extra: &[&str],
    expect_piece_length: Option<u64>,
) -> (serde_json::Value, serde_json::Value) {
    require_libtorrent();
    let dir = tempdir();
    let tree = make_tree(dir.path(), "sample", 0x5eed_0001);
    let torrent = create_torrent(&tree, "sample.torrent", extra);
    let ours = info_json(&torrent);
    let lt = lt_check(&torrent, Some(&tree.save_dir));

    assert_eq!(
        json_str(&ours, "info_hash"),
        json_str(&lt, "info_hash"),
        "info-hash differs: ringseed {ours}\nlibtorrent {lt}"
    );
    assert_eq!(json_str(&ours, "name"), "sample");
    assert_eq!(json_str(&lt, "name"), "sample");
    for (key_ours, key_lt) in [
        ("total_size", "total_size"),
        ("piece_length", "piece_length"),
        ("num_pieces", "num_pieces"),
        ("num_files", "num_files"),
    ] {
        assert_eq!(
            json_u64(&ours, key_ours),
            json_u64(&lt, key_lt),
            "{key_ours} differs: ringseed {ours}\nlibtorrent {lt}"
        );
    }
    assert_eq!(json_bool(&ours, "private"), json_bool(&lt, "private"));
    assert_eq!(json_u64(&ours, "total_size"), tree.total_size());
    assert_eq!(json_u64(&ours, "num_files"), tree.files.len() as u64);
    if let Some(pl) = expect_piece_length {
        assert_eq!(json_u64(&ours, "piece_length"), pl);
    }
    let pl = json_u64(&ours, "piece_length");
    assert_eq!(
        json_u64(&ours, "num_pieces"),
        tree.total_size().div_ceil(pl),
        "piece count does not cover the data"
    );

    // libtorrent's recheck of the data ringseed hashed.
    assert!(json_bool(&lt, "checked"), "libtorrent did not check: {lt}");
    assert_eq!(
        json_u64(&lt, "pieces_have"),
        json_u64(&lt, "num_pieces"),
        "libtorrent found pieces missing: {lt}"
    );
    assert!(
        json_bool(&lt, "is_seeding"),
        "libtorrent is not seeding: {lt}"
    );

    // The file list ringseed prints is the tree in sorted order, back to back.
    let files = json_files(&ours);
    let real: Vec<&JsonFile> = files.iter().filter(|f| !f.pad).collect();
    assert_eq!(real.len(), tree.files.len());
    for (want, got) in tree.files.iter().zip(&real) {
        let with_name = format!("{}/{}", tree.name, want.rel);
        assert!(
            got.path == want.rel || got.path == with_name,
            "file order differs: expected {:?}, got {:?}",
            want.rel,
            got.path
        );
        assert_eq!(got.length, want.length, "length of {}", want.rel);
    }
    let mut offset = 0;
    for f in &files {
        assert_eq!(f.offset, offset, "offset of {}", f.path);
        offset += f.length;
    }
    (ours, lt)
}

#[test]
fn libtorrent_agrees_16k_pieces() {
    create_and_check(&["--piece-length", "16K"], Some(16 * 1024));
}

#[test]
fn libtorrent_agrees_32k_pieces_given_in_bytes() {
    create_and_check(&["--piece-length", "32768"], Some(32 * 1024));
}

#[test]
fn libtorrent_agrees_auto_piece_length() {
    let (ours, _) = create_and_check(&["--piece-length", "auto"], None);
    let pl = json_u64(&ours, "piece_length");
    assert!(
        pl.is_power_of_two() && pl >= 16 * 1024,
        "auto piece length {pl} is not a power of two of at least 16 KiB"
    );
}

#[test]
fn libtorrent_agrees_private_with_tracker_and_source() {
    let (ours, lt) = create_and_check(
        &[
            "--piece-length",
            "32K",
            "--private",
            "--tracker",
            TRACKER,
            "--source",
            "RINGSEED-TEST",
            "--comment",
            "interop check",
        ],
        Some(32 * 1024),
    );
    assert!(json_bool(&ours, "private"));
    assert!(json_bool(&lt, "private"));
    assert_eq!(json_str(&ours, "source"), "RINGSEED-TEST");
    assert_eq!(json_str(&ours, "comment"), "interop check");
    assert_eq!(ours["trackers"], serde_json::json!([[TRACKER]]));

    // private and source live in the info dictionary: the hash must change.
    let (plain, _) = create_and_check(&["--piece-length", "32K"], Some(32 * 1024));
    assert_ne!(
        json_str(&ours, "info_hash"),
        json_str(&plain, "info_hash"),
        "--private/--source did not change the info-hash"
    );
}

#[test]
fn libtorrent_agrees_on_single_file_torrent() {
    require_libtorrent();
    let dir = tempdir();
    let tree = make_tree(dir.path(), "src", 0x5eed_0002);
    let file = tree.path_of("omega.bin");
    let length = tree
        .files
        .iter()
        .find(|f| f.rel == "omega.bin")
        .map(|f| f.length)
        .unwrap_or_else(|| panic!("tree has no omega.bin"));
    let torrent = dir.path().join("single.torrent");
    ringseed([
        "create".as_ref(),
        file.as_os_str(),
        "-o".as_ref(),
        torrent.as_os_str(),
        "--piece-length".as_ref(),
        "16K".as_ref(),
    ])
    .assert_code(0);
    let ours = info_json(&torrent);
    // A single-file torrent's data lives at SAVE_DIR/<name>: here src/omega.bin.
    let lt = lt_check(&torrent, Some(&tree.root()));
    assert_eq!(json_str(&ours, "info_hash"), json_str(&lt, "info_hash"));
    assert_eq!(json_str(&ours, "name"), "omega.bin");
    assert_eq!(json_u64(&ours, "num_files"), 1);
    assert_eq!(json_u64(&lt, "num_files"), 1);
    assert_eq!(json_u64(&ours, "total_size"), length);
    assert_eq!(json_u64(&lt, "total_size"), length);
    assert_eq!(json_u64(&lt, "pieces_have"), json_u64(&lt, "num_pieces"));
    assert!(
        json_bool(&lt, "is_seeding"),
        "libtorrent is not seeding: {lt}"
    );
}

#[test]
fn libtorrent_and_verify_agree_on_damage() {
    require_libtorrent();
    let dir = tempdir();
    let tree = make_tree(dir.path(), "sample", 0x5eed_0003);
    let torrent = create_torrent(&tree, "sample.torrent", &["--piece-length", "16K"]);
    let ours = info_json(&torrent);
    let pl = json_u64(&ours, "piece_length");
    let files = json_files(&ours);

    // Flip a byte in the middle of one file and delete another.
    let flip = find_json_file(&files, &tree.name, "beta/gamma/2.bin");
    let flip_at = flip.length / 2;
    let path = tree.path_of("beta/gamma/2.bin");
    let mut data = std::fs::read(&path).unwrap_or_else(|e| panic!("read: {e}"));
    let idx = usize::try_from(flip_at).unwrap_or_else(|e| panic!("{e}"));
    if let Some(b) = data.get_mut(idx) {
        *b ^= 0x01;
    }
    std::fs::write(&path, &data).unwrap_or_else(|e| panic!("write: {e}"));
    let gone = find_json_file(&files, &tree.name, "delta/small.bin");
    std::fs::remove_file(tree.path_of("delta/small.bin")).unwrap_or_else(|e| panic!("rm: {e}"));

    let mut expected: Vec<u64> = vec![(flip.offset + flip_at) / pl];
    expected.extend(gone.offset / pl..=(gone.offset + gone.length - 1) / pl);
    expected.sort_unstable();
    expected.dedup();

    let lt = lt_check(&torrent, Some(&tree.save_dir));
    let lt_missing: Vec<u64> = lt["missing_pieces"]
        .as_array()
        .unwrap_or_else(|| panic!("no missing_pieces: {lt}"))
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .collect();
    assert_eq!(lt_missing, expected, "libtorrent's view of the damage");

    let out = ringseed([
        "verify".as_ref(),
        torrent.as_os_str(),
        tree.save_dir.as_os_str(),
    ]);
    out.assert_code(1);
    let mut ours_failed = failed_pieces(&out.stdout);
    ours_failed.sort_unstable();
    assert_eq!(
        ours_failed,
        expected,
        "ringseed verify's view of the damage\n{}",
        out.describe()
    );
}
