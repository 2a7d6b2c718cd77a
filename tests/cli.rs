//! The command line surface: help for every subcommand, clear failures on bad
//! arguments and missing paths, `create` options as seen by `info --json`, and
//! `info` on magnet URIs (hex and base32 info-hashes).

mod common;

use common::*;

/// A fixed info-hash for magnet tests, in hex.
const HASH_HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

/// A loopback web seed URL (BEP 19); never contacted.
const WEB_SEED: &str = "http://127.0.0.1:8080/files/";

/// RFC 4648 base32 (upper case, no padding) of `bytes`.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let idx = ((acc >> bits) & 31) as usize;
            out.push(char::from(ALPHABET[idx]));
        }
    }
    if bits > 0 {
        let idx = ((acc << (5 - bits)) & 31) as usize;
        out.push(char::from(ALPHABET[idx]));
    }
    out
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

#[test]
fn help_for_every_subcommand() {
    for args in [
        vec!["--help"],
        vec!["create", "--help"],
        vec!["info", "--help"],
        vec!["verify", "--help"],
        vec!["seed", "--help"],
        vec!["download", "--help"],
        vec!["help", "create"],
    ] {
        let out = ringseed(&args);
        out.assert_code(0);
        assert!(
            out.stdout.to_lowercase().contains("usage"),
            "`ringseed {}` printed no usage\n{}",
            args.join(" "),
            out.describe()
        );
    }
    let top = ringseed(["--help"]);
    for sub in ["create", "info", "verify", "seed", "download"] {
        assert!(top.stdout.contains(sub), "top-level help omits {sub}");
    }
    let create = ringseed(["create", "--help"]);
    for flag in [
        "--piece-length",
        "--tracker",
        "--private",
        "--comment",
        "--source",
        "--no-date",
    ] {
        assert!(
            create.stdout.contains(flag),
            "`create --help` omits {flag}\n{}",
            create.describe()
        );
    }
    assert!(ringseed(["info", "--help"]).stdout.contains("--json"));
}

#[test]
fn missing_arguments_fail_clearly() {
    for args in [
        vec![],
        vec!["create"],
        vec!["info"],
        vec!["verify"],
        vec!["verify", "x.torrent"],
        vec!["seed"],
        vec!["seed", "x.torrent"],
        vec!["download", "x.torrent"],
        vec!["no-such-subcommand"],
    ] {
        let out = ringseed(&args);
        assert!(
            !matches!(out.code, Some(0) | None),
            "`ringseed {}` should fail\n{}",
            args.join(" "),
            out.describe()
        );
        assert!(
            !out.stderr.trim().is_empty(),
            "`ringseed {}` failed without a message\n{}",
            args.join(" "),
            out.describe()
        );
    }
}

#[test]
fn bad_piece_length_is_refused() {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "sample", 0xc11_0001);
    let out_path = dir.path().join("x.torrent");
    for bad in [
        "abc",
        "1000",
        "0",
        "-16K",
        "16Q",
        "1G",
        "99999999999999999999",
    ] {
        let out = ringseed([
            "create".as_ref(),
            tree.root().as_os_str(),
            "-o".as_ref(),
            out_path.as_os_str(),
            "--piece-length".as_ref(),
            bad.as_ref(),
        ]);
        assert!(
            !matches!(out.code, Some(0) | None),
            "--piece-length {bad} should be refused\n{}",
            out.describe()
        );
        assert!(
            out.stderr.to_lowercase().contains("piece"),
            "the message for --piece-length {bad} should mention the piece length\n{}",
            out.describe()
        );
        assert!(
            !out_path.exists(),
            "a refused create still wrote {}",
            out_path.display()
        );
    }
}

#[test]
fn nonexistent_paths_fail_with_the_path_named() {
    let dir = tempdir();
    let ghost = dir.path().join("ghost-dir");
    let out_path = dir.path().join("x.torrent");
    let out = ringseed([
        "create".as_ref(),
        ghost.as_os_str(),
        "-o".as_ref(),
        out_path.as_os_str(),
    ]);
    assert!(!matches!(out.code, Some(0) | None), "{}", out.describe());
    assert!(
        out.stderr.contains("ghost-dir"),
        "create should name the missing path\n{}",
        out.describe()
    );
    assert!(!out_path.exists());

    let ghost_torrent = dir.path().join("ghost.torrent");
    let out = ringseed(["info".as_ref(), ghost_torrent.as_os_str()]);
    assert!(!matches!(out.code, Some(0) | None), "{}", out.describe());
    assert!(
        out.stderr.contains("ghost.torrent"),
        "info should name the missing file\n{}",
        out.describe()
    );
}

#[test]
fn create_refuses_a_tree_without_data() {
    let dir = tempdir();
    let root = dir.path().join("hollow");
    std::fs::create_dir_all(root.join("a/b")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::write(root.join("a/empty.txt"), b"").unwrap_or_else(|e| panic!("write: {e}"));
    let out_path = dir.path().join("x.torrent");
    let out = ringseed([
        "create".as_ref(),
        root.as_os_str(),
        "-o".as_ref(),
        out_path.as_os_str(),
    ]);
    assert!(
        !matches!(out.code, Some(0) | None),
        "a tree of empty files has no pieces and cannot be a torrent\n{}",
        out.describe()
    );
    assert!(!out.stderr.trim().is_empty(), "{}", out.describe());
    assert!(!out_path.exists(), "a refused create still wrote a torrent");
}

#[test]
fn create_options_show_in_info() {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "sample", 0xc11_0002);
    let t1 = "http://127.0.0.1:6969/announce";
    let t2 = "udp://127.0.0.1:6969/announce";
    let torrent = create_torrent(
        &tree,
        "opts.torrent",
        &[
            "--piece-length",
            "64K",
            "--tracker",
            t1,
            "--tracker",
            t2,
            "--comment",
            "hello, world",
            "--web-seed",
            WEB_SEED,
            "--no-date",
        ],
    );
    let v = info_json(&torrent);
    assert_eq!(json_u64(&v, "piece_length"), 64 * 1024);
    assert_eq!(json_str(&v, "comment"), "hello, world");
    assert!(
        v["creation_date"].is_null(),
        "--no-date still wrote a date: {v}"
    );
    assert!(!json_bool(&v, "private"));
    assert!(!json_bool(&v, "hybrid"));
    assert!(v["source"].is_null(), "no --source given: {v}");
    // Every tracker given appears, in order.
    let flat: Vec<&str> = v["trackers"]
        .as_array()
        .unwrap_or_else(|| panic!("trackers is not a list: {v}"))
        .iter()
        .flat_map(|tier| tier.as_array().into_iter().flatten())
        .filter_map(serde_json::Value::as_str)
        .collect();
    assert_eq!(flat, vec![t1, t2]);
    assert_eq!(json_str(&v, "info_hash").len(), 40);
    assert_eq!(v["web_seeds"], serde_json::json!([WEB_SEED]));

    // Without --no-date a date is written.
    let dated = create_torrent(&tree, "dated.torrent", &["--piece-length", "64K"]);
    let d = info_json(&dated);
    assert!(
        d["creation_date"]
            .as_i64()
            .is_some_and(|t| t > 1_600_000_000),
        "expected a creation date: {d}"
    );
    // The date is outside the info dictionary: same info-hash.
    assert_eq!(json_str(&d, "info_hash"), json_str(&v, "info_hash"));

    // The plain-text view names the torrent and its hash.
    let out = ringseed(["info".as_ref(), torrent.as_os_str()]);
    out.assert_code(0);
    assert!(out.stdout.contains("sample"), "{}", out.describe());
    assert!(
        out.stdout.contains(json_str(&v, "info_hash")),
        "{}",
        out.describe()
    );
}

#[test]
fn create_is_deterministic_with_no_date() {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "sample", 0xc11_0003);
    let a = create_torrent(&tree, "a.torrent", &["--piece-length", "16K", "--no-date"]);
    let b = create_torrent(&tree, "b.torrent", &["--piece-length", "16K", "--no-date"]);
    let ra = std::fs::read(&a).unwrap_or_else(|e| panic!("{e}"));
    let rb = std::fs::read(&b).unwrap_or_else(|e| panic!("{e}"));
    assert!(ra == rb, "two creates of the same tree differ");
}

#[test]
fn info_on_hex_and_base32_magnets() {
    let b32 = base32(&hex_bytes(HASH_HEX));
    assert_eq!(b32.len(), 32);
    let tracker = "http://127.0.0.1:6969/announce";
    let tracker_enc = "http%3A%2F%2F127.0.0.1%3A6969%2Fannounce";
    for xt in [HASH_HEX.to_string(), HASH_HEX.to_uppercase(), b32] {
        let magnet = format!("magnet:?xt=urn:btih:{xt}&dn=Some%20Name&tr={tracker_enc}");
        let v = info_json(&magnet);
        assert_eq!(v["magnet"], serde_json::json!(true), "{v}");
        assert_eq!(json_str(&v, "info_hash"), HASH_HEX, "from xt {xt}");
        assert_eq!(json_str(&v, "name"), "Some Name");
        assert_eq!(v["trackers"], serde_json::json!([[tracker]]), "{v}");
        for key in ["web_seeds", "peers", "total_size", "select_only"] {
            assert!(v.get(key).is_some(), "magnet JSON lacks {key}: {v}");
        }

        let out = ringseed(["info", magnet.as_str()]);
        out.assert_code(0);
        assert!(out.stdout.contains(HASH_HEX), "{}", out.describe());
    }
}

#[test]
fn magnet_peers_web_seeds_length_and_selection() {
    let magnet = format!(
        "magnet:?xt=urn:btih:{HASH_HEX}&x.pe=127.0.0.1:6881\
         &ws=http%3A%2F%2F127.0.0.1%3A8080%2F&xl=12345&so=0,2-4"
    );
    let v = info_json(&magnet);
    assert_eq!(v["magnet"], serde_json::json!(true));
    assert_eq!(json_str(&v, "info_hash"), HASH_HEX);
    assert!(v["name"].is_null(), "no dn given: {v}");
    assert_eq!(v["trackers"], serde_json::json!([]));
    assert_eq!(v["peers"], serde_json::json!(["127.0.0.1:6881"]));
    assert_eq!(
        v["web_seeds"],
        serde_json::json!(["http://127.0.0.1:8080/"])
    );
    assert_eq!(json_u64(&v, "total_size"), 12345);
    // BEP 53 `so=0,2-4`: inclusive ranges.
    assert_eq!(v["select_only"], serde_json::json!([[0, 0], [2, 4]]));
}

#[test]
fn bad_magnets_are_refused() {
    for bad in [
        "magnet:?dn=no-hash",
        "magnet:?xt=urn:btih:1234",
        "magnet:?xt=urn:btih:zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        "magnet:",
    ] {
        let out = ringseed(["info", bad]);
        assert!(
            !matches!(out.code, Some(0) | None),
            "{bad:?} should be refused\n{}",
            out.describe()
        );
        assert!(!out.stderr.trim().is_empty(), "{}", out.describe());
    }
}

#[test]
fn engine_commands_list_their_network_options() {
    for sub in ["seed", "download"] {
        let help = ringseed([sub, "--help"]);
        help.assert_code(0);
        for flag in [
            "--listen",
            "--interface",
            "--bind-address",
            "--shards",
            "--peers-per-torrent",
        ] {
            assert!(
                help.stdout.contains(flag),
                "`{sub} --help` omits {flag}\n{}",
                help.describe()
            );
        }
    }
    // Out-of-range limits are refused before anything starts.
    for bad in [["--shards", "0"], ["--peers-per-torrent", "0"]] {
        let out = ringseed(["seed", "x.torrent", "--data", ".", bad[0], bad[1]]);
        out.assert_code(2);
        assert!(out.stderr.contains(bad[0]), "{}", out.describe());
    }
    let download = ringseed(["download", "--help"]);
    for flag in ["--seed", "--peer", "-o"] {
        assert!(
            download.stdout.contains(flag),
            "`download --help` omits {flag}"
        );
    }
}

#[test]
fn engine_commands_refuse_to_start_on_a_missing_interface_or_bad_input() {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "iface", 41);
    let torrent = create_torrent(&tree, "iface.torrent", &["--piece-length", "32K"]);
    let data = dir.path().to_str().unwrap_or_default().to_string();
    let t = torrent.to_str().unwrap_or_default().to_string();
    // An interface that does not exist: no traffic may leave another way.
    let out = ringseed([
        "seed",
        "--no-dht",
        &t,
        "--data",
        &data,
        "--listen",
        "127.0.0.1:0",
        "--interface",
        "rsnoiface0",
    ]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("rsnoiface0"),
        "the missing interface is not named\n{}",
        out.describe()
    );
    let dl = dir.path().join("dl");
    let dl = dl.to_str().unwrap_or_default().to_string();
    let out = ringseed([
        "download",
        "--no-dht",
        &t,
        "-o",
        &dl,
        "--listen",
        "127.0.0.1:0",
        "--interface",
        "rsnoiface0",
    ]);
    out.assert_code(2);
    assert!(out.stderr.contains("rsnoiface0"), "{}", out.describe());
    // Seeding data that is not there.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap_or_else(|e| panic!("{e}"));
    let out = ringseed([
        "seed",
        "--no-dht",
        &t,
        "--data",
        empty.to_str().unwrap_or_default(),
        "--listen",
        "127.0.0.1:0",
    ]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("wrong save path?") && out.stderr.contains("no torrent can be seeded"),
        "{}",
        out.describe()
    );
    // A file that is not a torrent.
    let bogus = dir.path().join("bogus.torrent");
    std::fs::write(&bogus, b"d4:spami3ee").unwrap_or_else(|e| panic!("{e}"));
    let out = ringseed([
        "download",
        "--no-dht",
        bogus.to_str().unwrap_or_default(),
        "-o",
        &dl,
        "--listen",
        "127.0.0.1:0",
    ]);
    out.assert_code(2);
}

/// `create` refuses every output that would destroy data (issue 10, item
/// 9): the input file itself, a file inside the folder being hashed, and an
/// existing file unless `--force`. The data stays byte for byte.
#[test]
fn create_never_destroys_data() {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "keep", 0xc11_0009);
    let data = tree.path_of("omega.bin");
    let before = std::fs::read(&data).unwrap_or_else(|e| panic!("{e}"));
    let d = |p: &std::path::Path| p.display().to_string();
    let cases: [(std::path::PathBuf, std::path::PathBuf, bool, &str); 4] = [
        (data.clone(), data.clone(), false, "data being hashed"),
        (data.clone(), data.clone(), true, "data being hashed"),
        (tree.root(), data.clone(), true, "inside"),
        (
            tree.root(),
            tree.path_of("alpha/new.torrent"),
            false,
            "inside",
        ),
    ];
    for (input, output, force, needle) in cases {
        let mut args = vec!["create".to_string(), d(&input), "-o".into(), d(&output)];
        if force {
            args.push("--force".into());
        }
        let out = ringseed(&args);
        out.assert_code(2);
        assert!(
            out.stderr.contains(needle) && out.stderr.contains(&d(&output)),
            "`ringseed {}` should say why and name the output\n{}",
            args.join(" "),
            out.describe()
        );
    }
    let after = std::fs::read(&data).unwrap_or_else(|e| panic!("{e}"));
    assert!(before == after, "create changed the data it hashed");
    assert!(!tree.path_of("alpha/new.torrent").exists());

    // An existing file is replaced only with --force.
    let other = dir.path().join("existing.torrent");
    std::fs::write(&other, b"precious").unwrap_or_else(|e| panic!("{e}"));
    let out = ringseed(["create", &d(&data), "-o", &d(&other)]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("--force") && out.stderr.contains(&d(&other)),
        "{}",
        out.describe()
    );
    assert_eq!(std::fs::read(&other).unwrap_or_default(), b"precious");
    ringseed(["create", &d(&data), "-o", &d(&other), "--force"]).assert_code(0);
    assert_eq!(json_str(&info_json(&other), "name"), "omega.bin");
}

/// Error messages say each cause once and name the path (issue 10, item
/// 12).
#[test]
fn errors_say_things_once_with_the_path() {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "errs", 0xc11_0012);
    let torrent = create_torrent(&tree, "errs.torrent", &["--piece-length", "32K"]);
    let t = torrent.display().to_string();

    // A library error that prints its own source: the cause comes once.
    let held = std::net::TcpListener::bind("127.0.13.20:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = held.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let save = dir.path().display().to_string();
    let out = ringseed([
        "seed",
        "--no-dht",
        &t,
        "--save-path",
        &save,
        "--listen",
        &addr.to_string(),
    ]);
    out.assert_code(2);
    let lower = out.stderr.to_ascii_lowercase();
    assert_eq!(
        lower.matches("already in use").count(),
        1,
        "the cause (address already in use) should be said once\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains(&addr.to_string()),
        "the error should name {addr}\n{}",
        out.describe()
    );
    drop(held);

    // create -o into a folder that does not exist names that folder.
    let missing = dir.path().join("missing/dir/x.torrent");
    let out = ringseed([
        "create".as_ref(),
        tree.root().as_os_str(),
        "-o".as_ref(),
        missing.as_os_str(),
    ]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("missing/dir does not exist") && !out.stderr.contains(".tmp"),
        "{}",
        out.describe()
    );

    // A broken magnet link given to download: the parser's reason, before
    // anything starts.
    let magnet = "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9";
    let out = ringseed(["download", magnet, "--save-path", &save, "--no-dht"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("not a usable magnet link") && out.stderr.contains("40 hex"),
        "{}",
        out.describe()
    );
    assert!(!out.stderr.contains("cannot open"), "{}", out.describe());

    // A save path that is a file: the path is named ("File exists" alone
    // was printed before).
    let out = ringseed([
        "download",
        "--no-dht",
        &t,
        "--save-path",
        &t,
        "--listen",
        "127.0.13.21:0",
    ]);
    out.assert_code(2);
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("error:"))
        .unwrap_or_default();
    assert!(line.contains(&t), "{}", out.describe());
}
