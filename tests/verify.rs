//! `ringseed verify TORRENT DIR` end to end: a clean tree passes with exit 0,
//! a flipped byte fails exactly the piece that holds it, a deleted file fails
//! exactly the pieces it touches, and an unreadable torrent is an error (exit 2).
//! Failures come in piece order naming their files; files longer or shorter
//! than the torrent says and missing files (zero-length ones too) are
//! reported and fail the run; a wrong save path is one line; `--json` gives
//! the same verdict as an object; `--save-path DIR` is the positional DIR.

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
    // Every failure line gives a reason in parentheses and its files.
    for line in out.stdout.lines().filter(|l| l.contains("FAILED")) {
        assert!(
            line.contains("FAILED (") && line.contains(") in "),
            "failure line without a reason or files: {line:?}"
        );
        assert!(line.contains("sample/beta/gamma/1.bin"), "{line:?}");
    }
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "file sample/beta/gamma/1.bin: missing"),
        "{}",
        out.describe()
    );
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

impl Fixture {
    fn verify_args(&self, extra: &[&str]) -> RunOutput {
        let mut args: Vec<std::ffi::OsString> = vec![
            "verify".into(),
            self.torrent.clone().into(),
            "--save-path".into(),
            self.tree.save_dir.clone().into(),
        ];
        args.extend(extra.iter().map(std::ffi::OsString::from));
        ringseed(args)
    }

    fn set_len(&self, rel: &str, len: u64) {
        let path = self.tree.path_of(rel);
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        f.set_len(len)
            .unwrap_or_else(|e| panic!("set_len {}: {e}", path.display()));
    }
}

/// The lines of `verify` output that report a failed piece.
fn failure_lines(out: &RunOutput) -> Vec<String> {
    out.stdout
        .lines()
        .filter(|l| l.starts_with("piece ") && l.contains("FAILED"))
        .map(str::to_string)
        .collect()
}

#[test]
fn failures_come_in_piece_order_with_their_files() {
    let f = fixture(0x7e51_0006, "16K");
    // Several damaged spots in different files; the pipeline hashes on
    // several threads, so without sorting they would come in any order.
    let spots = [
        "zeta/r/u.bin",
        "alpha/one.bin",
        "delta/epsilon/big.bin",
        "beta/c.bin",
        "omega.bin",
    ];
    let mut expected = Vec::new();
    for rel in spots {
        let at = f.file(rel).length / 2;
        f.flip(rel, at);
        expected.push(((f.file(rel).offset + at) / f.piece_length, rel));
    }
    expected.sort_unstable();
    let out = f.verify_args(&["--threads", "2"]);
    out.assert_code(1);
    let want: Vec<u64> = expected.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        failed_pieces(&out.stdout),
        want,
        "failed pieces must come in piece order\n{}",
        out.describe()
    );
    for ((piece, rel), line) in expected.iter().zip(failure_lines(&out)) {
        assert!(
            line.starts_with(&format!("piece {piece}: FAILED (hash mismatch) in "))
                && line.contains(&format!("sample/{rel}")),
            "piece {piece} should name sample/{rel}: {line:?}"
        );
        assert!(
            out.stdout.lines().any(
                |l| l.starts_with(&format!("file sample/{rel}: ")) && l.ends_with("pieces bad")
            ),
            "no file line for {rel}\n{}",
            out.describe()
        );
    }
}

#[test]
fn size_mismatches_and_missing_empty_files_are_reported() {
    let f = fixture(0x7e51_0007, "16K");
    // Longer than the torrent says: every piece hashes fine.
    let rel = "beta/b.bin";
    let len = f.file(rel).length;
    f.set_len(rel, len + 10);
    let out = f.verify();
    out.assert_code(1);
    assert!(failed_pieces(&out.stdout).is_empty(), "{}", out.describe());
    let want = format!(
        "file sample/{rel}: {} bytes, the torrent says {len} (longer)",
        len + 10
    );
    assert!(
        out.stdout.lines().any(|l| l == want),
        "expected {want:?}\n{}",
        out.describe()
    );
    f.set_len(rel, len);
    f.verify().assert_code(0);

    // Shorter: its tail pieces fail too.
    let path = f.tree.path_of(rel);
    let original = fs::read(&path).unwrap_or_else(|e| panic!("read: {e}"));
    f.set_len(rel, len - 1);
    let out = f.verify();
    out.assert_code(1);
    let want = format!(
        "file sample/{rel}: {} bytes, the torrent says {len} (shorter)",
        len - 1
    );
    assert!(
        out.stdout.lines().any(|l| l == want),
        "expected {want:?}\n{}",
        out.describe()
    );
    fs::write(&path, &original).unwrap_or_else(|e| panic!("write: {e}"));
    f.verify().assert_code(0);

    // A missing zero-length file: no piece fails, the file is reported.
    fs::remove_file(f.tree.path_of("alpha/empty.dat")).unwrap_or_else(|e| panic!("rm: {e}"));
    let out = f.verify();
    out.assert_code(1);
    assert!(failed_pieces(&out.stdout).is_empty(), "{}", out.describe());
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "file sample/alpha/empty.dat: missing"),
        "{}",
        out.describe()
    );
    let m = f.num_pieces;
    assert_summary(&out, m, m);
}

#[test]
fn a_wrong_save_path_is_one_line() {
    let f = fixture(0x7e51_0008, "16K");
    let elsewhere = f.tree.save_dir.join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap_or_else(|e| panic!("{e}"));
    let out = ringseed([
        "verify".as_ref(),
        f.torrent.as_os_str(),
        elsewhere.as_os_str(),
    ]);
    out.assert_code(1);
    let want = format!(
        "no file of sample is in {}: wrong save path?",
        elsewhere.display()
    );
    assert!(
        out.stdout.lines().any(|l| l == want),
        "expected {want:?}\n{}",
        out.describe()
    );
    assert!(
        out.stdout.lines().count() <= 2,
        "a wrong save path should not print a line per piece\n{}",
        out.describe()
    );
    assert_summary(&out, 0, f.num_pieces);
}

#[test]
fn json_report_has_the_whole_verdict() {
    let f = fixture(0x7e51_0009, "16K");
    let clean = f.verify_args(&["--json"]);
    clean.assert_code(0);
    let v: serde_json::Value = serde_json::from_str(&clean.stdout)
        .unwrap_or_else(|e| panic!("not JSON: {e}\n{}", clean.describe()));
    assert_eq!(v["ok"], serde_json::json!(true), "{v}");
    assert_eq!(v["pieces"]["total"], serde_json::json!(f.num_pieces));
    assert_eq!(v["pieces"]["good"], serde_json::json!(f.num_pieces));
    assert_eq!(v["pieces"]["bad"], serde_json::json!([]));
    assert_eq!(json_str(&v, "name"), "sample");
    assert_eq!(json_str(&v, "info_hash").len(), 40);
    let files = v["files"].as_array().cloned().unwrap_or_default();
    assert_eq!(files.len(), f.tree.files.len(), "{v}");
    assert!(files.iter().all(|x| x["state"] == "ok"), "{v}");

    // Damage three ways.
    let flip = "alpha/two.bin";
    let at = f.file(flip).length / 2;
    f.flip(flip, at);
    let long = "delta/small.bin";
    f.set_len(long, f.file(long).length + 1);
    let gone = "zeta/q.bin";
    fs::remove_file(f.tree.path_of(gone)).unwrap_or_else(|e| panic!("rm: {e}"));
    let out = f.verify_args(&["--json"]);
    out.assert_code(1);
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON: {e}\n{}", out.describe()));
    assert_eq!(v["ok"], serde_json::json!(false));
    let bad: Vec<u64> = v["pieces"]["bad"]
        .as_array()
        .unwrap_or_else(|| panic!("no bad list: {v}"))
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .collect();
    let mut sorted = bad.clone();
    sorted.sort_unstable();
    assert_eq!(bad, sorted, "bad pieces in order: {v}");
    assert!(
        bad.contains(&((f.file(flip).offset + at) / f.piece_length)),
        "{v}"
    );
    assert_eq!(
        json_u64(&v["pieces"], "good") + bad.len() as u64,
        f.num_pieces
    );
    let entry = |rel: &str| -> serde_json::Value {
        let path = format!("sample/{rel}");
        files_of(&v)
            .into_iter()
            .find(|x| x["path"] == serde_json::json!(path))
            .unwrap_or_else(|| panic!("no file {path}: {v}"))
    };
    assert_eq!(entry(flip)["state"], serde_json::json!("bad_pieces"));
    let l = entry(long);
    assert_eq!(l["state"], serde_json::json!("size_mismatch"));
    assert_eq!(
        json_u64(&l, "actual_size"),
        json_u64(&l, "expected_size") + 1
    );
    let g = entry(gone);
    assert_eq!(g["state"], serde_json::json!("missing"));
    assert!(g["actual_size"].is_null(), "{g}");
    assert_eq!(json_u64(&g, "expected_size"), f.file(gone).length);
    assert_eq!(entry("omega.bin")["state"], serde_json::json!("ok"));
}

fn files_of(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["files"].as_array().cloned().unwrap_or_default()
}
