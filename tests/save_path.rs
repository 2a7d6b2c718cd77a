//! One command-line convention (issue 10, item 15): `--save-path DIR` for
//! seed, download and verify, the older spellings (`--data`, `-o`,
//! `--output`, verify's second argument) still accepted; `download` takes
//! several torrents like `seed` (all into the save path, exit 0 once every
//! one is complete and verified on disk); fractional rates (`1.5M`); `info
//! --json` has the same keys for a torrent and a magnet.
//!
//! Addresses: 127.0.13.10-12. Every wait is bounded; children are killed by
//! pid when their guards drop.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::engine::*;
use common::*;

/// Longest the two downloads may take on loopback.
const DOWNLOAD_WAIT_MAX: Duration = Duration::from_secs(90);

#[test]
fn download_takes_several_torrents_into_one_save_path() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let one = make_tree(&src, "first", 0x5a7e_0001);
    let two = make_tree(&src, "second", 0x5a7e_0002);
    let t1 = create_torrent(&one, "first.torrent", &["--piece-length", "32K"]);
    let t2 = create_torrent(&two, "second.torrent", &["--piece-length", "32K"]);
    // The old spelling --data still works for seed.
    let seed_ip = Ipv4Addr::new(127, 0, 13, 10);
    let listen = format!("{seed_ip}:{}", free_port(seed_ip));
    let mut seeder = Daemon::spawn(
        "seeder",
        &[
            os("seed"),
            os("--no-dht"),
            os(&t1),
            os(&t2),
            os("--data"),
            os(&src),
            os("--listen"),
            os(&listen),
            os("--bind-address"),
            os(seed_ip.to_string()),
            os("--upload-limit"),
            os("1.5G"),
        ],
    );
    let addr = seeder.wait_listening("ringseed", listen.parse().unwrap_or_else(|e| panic!("{e}")));
    let out = dir.path().join("out");
    let dl_ip = Ipv4Addr::new(127, 0, 13, 11);
    let mut dl = Daemon::spawn(
        "download",
        &[
            os("download"),
            os("--no-dht"),
            os(&t1),
            os(&t2),
            os("--save-path"),
            os(&out),
            os("--peer"),
            os(addr.to_string()),
            os("--listen"),
            os(format!("{dl_ip}:{}", free_port(dl_ip))),
            os("--bind-address"),
            os(dl_ip.to_string()),
            os("--download-limit"),
            os("0.75G"),
        ],
    );
    let status = dl.wait_exit(DOWNLOAD_WAIT_MAX);
    assert!(
        status.is_some_and(|s| s.success()),
        "download of two torrents did not end with status 0 ({})\n{}\n{}",
        exit_text(status),
        dl.describe(),
        seeder.describe()
    );
    for (tree, name) in [(&one, "first"), (&two, "second")] {
        let bad = compare_tree(tree, &out);
        assert!(bad.is_empty(), "{name}: {bad:?}\n{}", dl.describe());
        assert!(
            dl.stderr().contains(&format!("complete: {name} (")),
            "no `complete: {name}` line\n{}",
            dl.describe()
        );
    }
    // verify takes the save path as --save-path or as its second argument.
    for args in [
        vec![os("verify"), os(&t1), os("--save-path"), os(&out)],
        vec![os("verify"), os(&t2), os(&out)],
    ] {
        ringseed(&args).assert_code(0);
    }
    // Both at once is refused, neither is refused.
    let both = ringseed([os("verify"), os(&t1), os(&out), os("--save-path"), os(&out)]);
    both.assert_code(2);
    let neither = ringseed([os("verify"), os(&t1)]);
    neither.assert_code(2);
    assert!(
        neither.stderr.contains("--save-path"),
        "{}",
        neither.describe()
    );
    seeder.terminate_cleanly();
}

#[test]
fn help_names_the_save_path_and_its_aliases() {
    for (sub, aliases) in [
        ("seed", &["--data"][..]),
        ("download", &["-o", "--output"][..]),
        ("verify", &[][..]),
    ] {
        let help = ringseed([sub, "--help"]);
        help.assert_code(0);
        assert!(
            help.stdout.contains("--save-path"),
            "`{sub} --help` omits --save-path\n{}",
            help.describe()
        );
        for a in aliases {
            assert!(
                help.stdout.contains(a),
                "`{sub} --help` omits the alias {a}\n{}",
                help.describe()
            );
        }
    }
    // -o and --output still reach download's save path: a bad value there
    // is reported as the save path.
    let dir = tempdir();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap_or_else(|e| panic!("{e}"));
    let tree = make_tree(dir.path(), "h", 0x5a7e_0003);
    let t = create_torrent(&tree, "h.torrent", &["--piece-length", "32K"]);
    for flag in ["-o", "--output", "--save-path"] {
        let out = ringseed([
            os("download"),
            os("--no-dht"),
            os(&t),
            os(flag),
            os(&file),
            os("--listen"),
            os("127.0.13.12:0"),
        ]);
        out.assert_code(2);
        assert!(
            out.stderr.contains("save path") && out.stderr.contains("a-file"),
            "{flag}: {}",
            out.describe()
        );
    }
}

#[test]
fn fractional_rates_are_accepted_and_bad_ones_named() {
    for rate in ["1.5M", "0.5K", "2.25G/s"] {
        // Parsing happens before the torrent is read: a missing torrent is
        // the only complaint.
        let out = ringseed([
            "seed",
            "--no-dht",
            "no-such.torrent",
            "--save-path",
            ".",
            "--listen",
            "127.0.13.12:0",
            "--upload-limit",
            rate,
        ]);
        out.assert_code(2);
        assert!(
            !out.stderr.contains("rate") && out.stderr.contains("no-such.torrent"),
            "{rate}: {}",
            out.describe()
        );
    }
    let out = ringseed([
        "seed",
        "--no-dht",
        "x.torrent",
        "--save-path",
        ".",
        "--listen",
        "127.0.13.12:0",
        "--upload-limit",
        "1.5Q",
    ]);
    out.assert_code(2);
    assert!(out.stderr.contains("unknown unit"), "{}", out.describe());
}

#[test]
fn info_json_has_the_same_keys_for_torrents_and_magnets() {
    let dir = tempdir();
    let tree = make_tree(dir.path(), "keys", 0x5a7e_0004);
    let t = create_torrent(
        &tree,
        "keys.torrent",
        &[
            "--piece-length",
            "32K",
            "--tracker",
            "http://127.0.0.1:6969/announce",
        ],
    );
    let torrent = info_json(&t);
    let magnet = info_json(format!(
        "magnet:?xt=urn:btih:{}&dn=keys&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce&xl=5",
        json_str(&torrent, "info_hash")
    ));
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        k.sort_unstable();
        k
    };
    assert_eq!(keys(&torrent), keys(&magnet), "{torrent}\n{magnet}");
    for key in ["info_hash", "name", "trackers"] {
        assert_eq!(torrent[key], magnet[key], "{key}: {torrent}\n{magnet}");
    }
    assert_eq!(torrent["magnet"], serde_json::json!(false));
    assert_eq!(magnet["magnet"], serde_json::json!(true));
    assert_eq!(json_u64(&magnet, "total_size"), 5);
    assert_eq!(json_u64(&torrent, "total_size"), tree.total_size());
}
