//! libtorrent's own test torrents (../shared/corpus/libtorrent-test-torrents):
//! ringseed must load what libtorrent 2.0.8 loads, with the same info-hash and
//! shape, and refuse what it refuses, with a clear error.

use std::path::PathBuf;

use ringseed::metainfo::{Metainfo, MetainfoError};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/libtorrent-test-torrents")
}

#[test]
fn agrees_with_libtorrent_on_every_corpus_torrent() {
    let dir = corpus_dir();
    let manifest_path = dir.join("manifest.json");
    let manifest = std::fs::read(&manifest_path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; the corpus lives in ../shared beside the checkout",
            manifest_path.display()
        )
    });
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest is JSON");
    let entries = manifest.as_array().expect("manifest is a list");
    assert_eq!(entries.len(), 72, "the corpus has 72 torrents");

    let mut failures = Vec::new();
    let (mut loaded, mut rejected) = (0, 0);
    for e in entries {
        let file = e["file"].as_str().expect("file name");
        let bytes = std::fs::read(dir.join(file)).expect("corpus file readable");
        let result = Metainfo::from_bytes(&bytes);
        match (e["expect"].as_str().expect("expect"), result) {
            ("load", Ok(m)) => {
                loaded += 1;
                let got = (
                    m.info_hash.to_hex(),
                    m.info.files.len() as u64,
                    m.info.total_length,
                    m.info.piece_length,
                    m.info.num_pieces(),
                    m.info.private,
                );
                let want = (
                    e["info_hash_v1"].as_str().unwrap_or("").to_string(),
                    e["num_files"].as_u64().unwrap_or(0),
                    e["total_size"].as_u64().unwrap_or(0),
                    e["piece_length"].as_u64().unwrap_or(0),
                    e["num_pieces"].as_u64().unwrap_or(0),
                    e["private"].as_bool().unwrap_or(false),
                );
                if got != want {
                    failures.push(format!("{file}: got {got:?}, libtorrent {want:?}"));
                }
                assert_eq!(
                    m.hybrid,
                    !e["info_hash_v2"].is_null(),
                    "{file}: hybrid flag"
                );
                for f in &m.info.files {
                    for c in &f.path {
                        assert!(
                            !c.is_empty()
                                && c != "."
                                && c != ".."
                                && !c.contains(['/', '\\', '\0']),
                            "{file}: unsafe path component {c:?}"
                        );
                    }
                }
            }
            ("load", Err(err)) => {
                failures.push(format!("{file}: refused ({err}), libtorrent loads it"))
            }
            ("reject", Ok(_)) => failures.push(format!(
                "{file}: loaded, libtorrent refuses it ({})",
                e["libtorrent_error"]
            )),
            ("reject", Err(err)) => {
                rejected += 1;
                let msg = err.to_string();
                assert!(msg.len() > 10, "{file}: error too vague: {msg:?}");
                println!("{file}: {msg}  (libtorrent: {})", e["libtorrent_error"]);
            }
            ("reject_v2_only", Err(MetainfoError::V2Only)) => {
                rejected += 1;
                let msg = MetainfoError::V2Only.to_string();
                assert!(msg.contains("v2") && msg.contains("not supported yet"));
            }
            ("reject_v2_only", other) => {
                failures.push(format!("{file}: expected the v2-only error, got {other:?}"))
            }
            (what, _) => failures.push(format!("{file}: unknown expectation {what}")),
        }
    }
    println!("loaded {loaded}, refused {rejected}");
    assert!(
        failures.is_empty(),
        "disagreements with libtorrent:\n{}",
        failures.join("\n")
    );
    assert_eq!(loaded + rejected, 72);
}
