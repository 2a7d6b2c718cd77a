//! `ringseed verify TORRENT DIR` end to end: a clean tree passes with exit 0,
//! a flipped byte fails exactly the piece that holds it, a deleted file fails
//! exactly the pieces it touches, and an unreadable torrent is an error (exit 2).

mod common;

use std::fs;

use common::*;

/// A tree, its torrent and what `info --json` says about it.
struct Fixture {
    _dir: tempfile::TempDir,
    tree: Tree,
    torrent: std::path::PathBuf,
    piece_length: u64,
    num_pieces: u64,
    files: Vec<JsonFile>,
}

fn fixture(seed: u64, piece_length: &str) -> Fixture {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "sample", seed);
    let torrent = create_torrent(&tree, "sample.torrent", &["--piece-length", piece_length]);
    let info = info_json(&torrent);
    Fixture {
        piece_length: json_u64(&info, "piece_length"),
        num_pieces: json_u64(&info, "num_pieces"),
        files: json_files(&info),
        _dir: dir,
        tree,
        torrent,
    }
}

impl Fixture {
    fn verify(&self) -> RunOutput {
        ringseed([
            "verify".as_ref(),
            self.torrent.as_os_str(),
            self.tree.save_dir.as_os_str(),
        ])
    }

    fn file(&self, rel: &str) -> &JsonFile {
        find_json_file(&self.files, &self.tree.name, rel)
    }

    /// XORs one byte of tree file `rel` at `at` with 0xff.
    fn flip(&self, rel: &str, at: u64) {
        let path = self.tree.path_of(rel);
        let mut data = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let idx = usize::try_from(at).unwrap_or_else(|e| panic!("{e}"));
        let byte = data
            .get_mut(idx)
            .unwrap_or_else(|| panic!("{rel} has no byte {at}"));
        *byte ^= 0xff;
        fs::write(&path, &data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// Checks the summary line `G of M pieces good (P.PP%)`.
fn assert_summary(out: &RunOutput, good: u64, total: u64) {
    let prefix = format!("{good} of {total} pieces good (");
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains(&prefix))
        .unwrap_or_else(|| panic!("no summary {prefix:?}...\n{}", out.describe()));
    let pct_text = line
        .split_once(&prefix)
        .and_then(|(_, rest)| rest.split_once("%)"))
        .map(|(p, _)| p)
        .unwrap_or_else(|| panic!("summary {line:?} lacks a percentage"));
    let decimals = pct_text.split_once('.').map(|(_, d)| d.len());
    assert_eq!(
        decimals,
        Some(2),
        "percentage {pct_text:?} needs two decimals"
    );
    let pct: f64 = pct_text
        .parse()
        .unwrap_or_else(|e| panic!("percentage {pct_text:?}: {e}"));
    let exact = good as f64 * 100.0 / total as f64;
    assert!(
        (pct - exact).abs() <= 0.01,
        "percentage {pct} but {good}/{total} is {exact}"
    );
}

#[test]
fn clean_tree_verifies() {
    let f = fixture(0x7e51_0001, "16K");
    let out = f.verify();
    out.assert_code(0);
    assert_summary(&out, f.num_pieces, f.num_pieces);
    let m = f.num_pieces;
    assert!(
        out.stdout
            .contains(&format!("{m} of {m} pieces good (100.00%)")),
        "{}",
        out.describe()
    );
    assert!(failed_pieces(&out.stdout).is_empty(), "{}", out.describe());
}

#[test]
fn flipped_byte_fails_exactly_its_piece() {
    let f = fixture(0x7e51_0002, "32K");
    // (file, where inside it): the middle, the first byte, the last byte.
    let mid = f.file("beta/b.bin").length / 2;
    let last = f.file("zeta/q.bin").length - 1;
    let spots = [
        ("beta/b.bin", mid),
        ("alpha/deep/x.bin", 0),
        ("zeta/q.bin", last),
    ];
    for (rel, at) in spots {
        let expected = (f.file(rel).offset + at) / f.piece_length;
        f.flip(rel, at);
        let out = f.verify();
        out.assert_code(1);
        assert_eq!(
            failed_pieces(&out.stdout),
            vec![expected],
            "byte {at} of {rel} is in piece {expected}\n{}",
            out.describe()
        );
        assert_summary(&out, f.num_pieces - 1, f.num_pieces);
        // Restore and make sure the tree is clean again.
        f.flip(rel, at);
        f.verify().assert_code(0);
    }
}

#[test]
fn deleted_file_fails_the_pieces_it_touches() {
    let f = fixture(0x7e51_0003, "16K");
    let rel = "beta/gamma/1.bin";
    let file = f.file(rel).clone();
    assert!(file.length > 0);
    fs::remove_file(f.tree.path_of(rel)).unwrap_or_else(|e| panic!("rm {rel}: {e}"));
    let first = file.offset / f.piece_length;
    let last = (file.offset + file.length - 1) / f.piece_length;
    let expected: Vec<u64> = (first..=last).collect();

    let out = f.verify();
    out.assert_code(1);
    let mut got = failed_pieces(&out.stdout);
    got.sort_unstable();
    assert_eq!(
        got,
        expected,
        "{rel} spans pieces {first}..={last}\n{}",
        out.describe()
    );
    assert_summary(&out, f.num_pieces - expected.len() as u64, f.num_pieces);
    // Every failure line gives a reason in parentheses.
    for line in out.stdout.lines().filter(|l| l.contains("FAILED")) {
        assert!(
            line.contains('(') && line.trim_end().ends_with(')'),
            "failure line without a reason: {line:?}"
        );
    }
}

#[test]
fn truncated_file_fails_the_pieces_past_its_end() {
    let f = fixture(0x7e51_0004, "16K");
    let rel = "delta/epsilon/big.bin";
    let file = f.file(rel).clone();
    let keep = file.length / 3;
    let path = f.tree.path_of(rel);
    let data = fs::read(&path).unwrap_or_else(|e| panic!("read: {e}"));
    let keep_idx = usize::try_from(keep).unwrap_or_else(|e| panic!("{e}"));
    fs::write(&path, data.get(..keep_idx).unwrap_or_default())
        .unwrap_or_else(|e| panic!("write: {e}"));
    let first = (file.offset + keep) / f.piece_length;
    let last = (file.offset + file.length - 1) / f.piece_length;
    let expected: Vec<u64> = (first..=last).collect();
    let out = f.verify();
    out.assert_code(1);
    let mut got = failed_pieces(&out.stdout);
    got.sort_unstable();
    assert_eq!(got, expected, "{}", out.describe());
}

#[test]
fn corrupt_torrent_is_an_error() {
    let f = fixture(0x7e51_0005, "16K");
    let bytes = fs::read(&f.torrent).unwrap_or_else(|e| panic!("read: {e}"));
    let half = bytes.get(..bytes.len() / 2).unwrap_or_default().to_vec();
    let cases: [(&str, Vec<u8>); 4] = [
        ("garbage.torrent", b"this is not bencode at all".to_vec()),
        ("truncated.torrent", half),
        ("empty.torrent", Vec::new()),
        ("no-info.torrent", b"d8:announce3:abce".to_vec()),
    ];
    for (name, content) in cases {
        let path = f.tree.save_dir.join(name);
        fs::write(&path, content).unwrap_or_else(|e| panic!("write {name}: {e}"));
        let out = ringseed([
            "verify".as_ref(),
            path.as_os_str(),
            f.tree.save_dir.as_os_str(),
        ]);
        out.assert_code(2);
        assert!(
            !out.stderr.trim().is_empty(),
            "{name}: exit 2 without an error message\n{}",
            out.describe()
        );
    }
    let missing = f.tree.save_dir.join("does-not-exist.torrent");
    let out = ringseed([
        "verify".as_ref(),
        missing.as_os_str(),
        f.tree.save_dir.as_os_str(),
    ]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("does-not-exist.torrent"),
        "the error should name the file\n{}",
        out.describe()
    );

    // A save directory that does not exist is an error too, not a list of
    // failed pieces.
    let no_dir = f.tree.save_dir.join("no-such-save-dir");
    let out = ringseed(["verify".as_ref(), f.torrent.as_os_str(), no_dir.as_os_str()]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("no-such-save-dir"),
        "the error should name the directory\n{}",
        out.describe()
    );
}
