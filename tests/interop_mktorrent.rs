//! Interop with mktorrent: torrents mktorrent writes must read in ringseed with
//! the info-hash libtorrent computes, verify clean against their data, and
//! match what `ringseed create` writes for the same tree and settings. Fails
//! (never skips) when mktorrent or libtorrent's binding is missing.

mod common;

use std::process::Command;

use common::*;

/// Loopback announce URL (mktorrent 1.1 requires `-a`); never contacted.
const TRACKER: &str = "http://127.0.0.1:6969/announce";

/// Runs mktorrent with 32 KiB pieces (`-l 15`) on `tree` plus `extra` flags.
fn mktorrent(tree: &Tree, out_name: &str, extra: &[&str]) -> std::path::PathBuf {
    require_mktorrent();
    let out = tree.save_dir.join(out_name);
    let mut cmd = Command::new("mktorrent");
    cmd.args(["-l", "15", "-a", TRACKER, "-t", "1"])
        .args(extra)
        .arg("-o")
        .arg(&out)
        .arg(tree.root());
    run_with_timeout(&mut cmd, MKTORRENT_TIMEOUT).assert_code(0);
    assert!(out.is_file(), "mktorrent wrote no {}", out.display());
    out
}

/// Checks the harness itself, without ringseed: libtorrent must find every
/// piece of mktorrent's torrent of the sample tree, and the geometry must be
/// what the tree says. If this fails, the other interop failures are not
/// ringseed's.
#[test]
fn harness_mktorrent_tree_rechecks_in_libtorrent() {
    require_mktorrent();
    require_libtorrent();
    let dir = tempdir();
    let tree = make_tree(dir.path(), "sample", 0x6d6b_0000);
    assert!(tree.files.len() >= 20);
    assert!(tree.files.iter().any(|f| f.length == 0));
    assert!(tree
        .files
        .iter()
        .all(|f| f.length % 16384 != 0 || f.length == 0));
    let torrent = mktorrent(&tree, "mk.torrent", &[]);
    let lt = lt_check(&torrent, Some(&tree.save_dir));
    assert_eq!(json_u64(&lt, "num_files"), tree.files.len() as u64);
    assert_eq!(json_u64(&lt, "total_size"), tree.total_size());
    assert_eq!(json_u64(&lt, "piece_length"), 32 * 1024);
    assert_eq!(
        json_u64(&lt, "pieces_have"),
        json_u64(&lt, "num_pieces"),
        "{lt}"
    );
    assert!(json_bool(&lt, "is_seeding"), "{lt}");
}

#[test]
fn ringseed_reads_mktorrent_like_libtorrent() {
    require_mktorrent();
    require_libtorrent();
    let dir = tempdir();
    let tree = make_tree(dir.path(), "sample", 0x6d6b_0001);
    let torrent = mktorrent(&tree, "mk.torrent", &[]);

    let ours = info_json(&torrent);
    let lt = lt_check(&torrent, None);
    assert_eq!(
        json_str(&ours, "info_hash"),
        json_str(&lt, "info_hash"),
        "info-hash differs: ringseed {ours}\nlibtorrent {lt}"
    );
    assert_eq!(json_u64(&ours, "num_files"), json_u64(&lt, "num_files"));
    assert_eq!(json_u64(&ours, "num_files"), tree.files.len() as u64);
    assert_eq!(json_u64(&ours, "total_size"), json_u64(&lt, "total_size"));
    assert_eq!(json_u64(&ours, "total_size"), tree.total_size());
    assert_eq!(json_u64(&ours, "piece_length"), 32 * 1024);
    assert_eq!(json_u64(&ours, "num_pieces"), json_u64(&lt, "num_pieces"));
    assert_eq!(json_str(&ours, "name"), "sample");
    assert!(!json_bool(&ours, "private"));
    assert_eq!(ours["trackers"], serde_json::json!([[TRACKER]]));
    let created_by = json_str(&ours, "created_by");
    assert!(
        created_by.contains("mktorrent"),
        "created_by is {created_by:?}"
    );
    assert!(
        ours["creation_date"].is_i64() || ours["creation_date"].is_u64(),
        "mktorrent writes a creation date: {ours}"
    );
}

#[test]
fn ringseed_reads_private_mktorrent_with_source() {
    require_mktorrent();
    require_libtorrent();
    let dir = tempdir();
    let tree = make_tree(dir.path(), "sample", 0x6d6b_0002);
    let torrent = mktorrent(&tree, "mk.torrent", &["-p", "-s", "SRC-X", "-d"]);
    let ours = info_json(&torrent);
    let lt = lt_check(&torrent, None);
    assert_eq!(json_str(&ours, "info_hash"), json_str(&lt, "info_hash"));
    assert!(json_bool(&ours, "private"));
    assert!(json_bool(&lt, "private"));
    assert_eq!(json_str(&ours, "source"), "SRC-X");
    assert!(
        ours["creation_date"].is_null(),
        "mktorrent -d writes no date: {ours}"
    );
}

#[test]
fn ringseed_verifies_mktorrent_data() {
    require_mktorrent();
    let dir = tempdir();
    let tree = make_tree(dir.path(), "sample", 0x6d6b_0003);
    let torrent = mktorrent(&tree, "mk.torrent", &[]);
    let ours = info_json(&torrent);
    let m = json_u64(&ours, "num_pieces");
    let out = ringseed([
        "verify".as_ref(),
        torrent.as_os_str(),
        tree.save_dir.as_os_str(),
    ]);
    out.assert_code(0);
    let want = format!("{m} of {m} pieces good (100.00%)");
    assert!(
        out.stdout.contains(&want),
        "expected {want:?}\n{}",
        out.describe()
    );
}

#[test]
fn ringseed_create_matches_mktorrent_info_hash() {
    require_mktorrent();
    let dir = tempdir();
    let tree = make_tree(dir.path(), "sample", 0x6d6b_0004);

    // Same tree, same piece length, same private/source: the info
    // dictionaries must be the same bytes, hence the same info-hash.
    let cases: [(&[&str], &[&str]); 2] = [
        (&[], &[]),
        (&["-p", "-s", "SRC-Y"], &["--private", "--source", "SRC-Y"]),
    ];
    for (i, (mk_flags, our_flags)) in cases.iter().enumerate() {
        let mk = mktorrent(&tree, &format!("mk{i}.torrent"), mk_flags);
        let mut args = vec!["--piece-length", "32K", "--tracker", TRACKER, "--no-date"];
        args.extend_from_slice(our_flags);
        let ours = create_torrent(&tree, &format!("rs{i}.torrent"), &args);
        let mk_json = info_json(&mk);
        let our_json = info_json(&ours);
        assert_eq!(
            json_str(&our_json, "info_hash"),
            json_str(&mk_json, "info_hash"),
            "ringseed create {our_flags:?} and mktorrent {mk_flags:?} disagree\n\
             ringseed: {our_json}\nmktorrent: {mk_json}"
        );
    }
}
