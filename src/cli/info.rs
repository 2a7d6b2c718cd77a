//! `ringseed info FILE|MAGNET [--json]`: what a .torrent file or a magnet URI
//! holds, as text for people or as JSON with fixed keys for scripts. Tracker
//! and web seed URLs are redacted unless `--show-secrets` is given.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use ringseed::metainfo::Metainfo;
use serde_json::{json, Value};

use super::load::load_torrent;
use super::units::{human_bytes, utc_date};

/// Options of `ringseed info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A .torrent file, or a magnet URI (`magnet:?xt=urn:btih:...`).
    #[arg(value_name = "FILE|MAGNET")]
    pub target: std::ffi::OsString,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Print tracker and web seed URLs whole, passkeys included (by default
    /// query values and key-like path segments show as `***`).
    #[arg(long)]
    pub show_secrets: bool,
}

pub fn run(args: &InfoArgs) -> Result<()> {
    if let Some(uri) = args.target.to_str().filter(|t| t.starts_with("magnet:")) {
        return super::info_magnet::run(uri, args.json, args.show_secrets);
    }
    let path = PathBuf::from(&args.target);
    let mut m = load_torrent(&path)?;
    if !args.show_secrets {
        m.trackers.iter_mut().for_each(|tier| redact_urls(tier));
        redact_urls(&mut m.url_list);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&torrent_json(&m))?);
    } else {
        print!("{}", torrent_text(&m));
    }
    Ok(())
}

/// Replaces each URL by its redacted form (`tracker::redact`): output is
/// pasted into bug reports and forums, and a private tracker's passkey in it
/// is an account compromise.
pub fn redact_urls(urls: &mut [String]) {
    for url in urls {
        *url = ringseed::tracker::redact_url(url);
    }
}

/// The keys of `info --json`, the same for a torrent and a magnet (a value
/// a magnet does not carry is null); documented in README.md. The views
/// are built with `json!`; the tests hold both to this list.
#[cfg(test)]
pub const JSON_KEYS: [&str; 19] = [
    "magnet",
    "magnet_uri",
    "info_hash",
    "name",
    "total_size",
    "trackers",
    "web_seeds",
    "peers",
    "select_only",
    "piece_length",
    "num_pieces",
    "num_files",
    "files",
    "private",
    "hybrid",
    "comment",
    "created_by",
    "creation_date",
    "source",
];

/// The JSON view; keys are fixed ([`JSON_KEYS`]: tests and scripts rely
/// on them).
pub fn torrent_json(m: &Metainfo) -> Value {
    let info = &m.info;
    let files: Vec<Value> = info
        .files
        .iter()
        .map(|f| {
            json!({
                "path": f.display_path(),
                "length": f.length,
                "offset": f.offset,
                "pad": f.attr.pad,
            })
        })
        .collect();
    json!({
        "magnet": false,
        "magnet_uri": m.magnet().to_uri(),
        "info_hash": m.info_hash.to_hex(),
        "name": info.name,
        "total_size": info.total_length,
        "trackers": m.trackers,
        "web_seeds": m.url_list,
        "peers": [],
        "select_only": null,
        "piece_length": info.piece_length,
        "num_pieces": info.num_pieces(),
        "num_files": info.files.len(),
        "files": files,
        "private": info.private,
        "hybrid": m.hybrid,
        "comment": m.comment,
        "created_by": m.created_by,
        "creation_date": m.creation_date,
        "source": info.source,
    })
}

/// The text view.
pub fn torrent_text(m: &Metainfo) -> String {
    let info = &m.info;
    let mut s = String::new();
    let _ = writeln!(s, "name:         {}", info.name);
    let _ = writeln!(s, "info hash:    {}", m.info_hash);
    let _ = writeln!(s, "magnet:       {}", m.magnet().to_uri());
    let _ = writeln!(
        s,
        "size:         {} ({} bytes)",
        human_bytes(info.total_length),
        info.total_length
    );
    let _ = writeln!(
        s,
        "pieces:       {} of {} ({} bytes)",
        info.num_pieces(),
        human_bytes(info.piece_length),
        info.piece_length
    );
    let mut flags = Vec::new();
    if info.private {
        flags.push("private");
    }
    if m.hybrid {
        flags.push("hybrid (v1 + v2, read as v1)");
    }
    if info.multi_file {
        flags.push("multi-file");
    } else {
        flags.push("single-file");
    }
    let _ = writeln!(s, "flags:        {}", flags.join(", "));
    if let Some(c) = &m.comment {
        let _ = writeln!(s, "comment:      {c}");
    }
    if let Some(c) = &m.created_by {
        let _ = writeln!(s, "created by:   {c}");
    }
    if let Some(d) = m.creation_date {
        let _ = writeln!(s, "created on:   {}", utc_date(d));
    }
    if let Some(src) = &info.source {
        let _ = writeln!(s, "source:       {src}");
    }
    if m.trackers.is_empty() {
        let _ = writeln!(s, "trackers:     (none)");
    } else {
        let _ = writeln!(s, "trackers:");
        for (i, tier) in m.trackers.iter().enumerate() {
            for url in tier {
                let _ = writeln!(s, "  tier {i}: {url}");
            }
        }
    }
    if !m.url_list.is_empty() {
        let _ = writeln!(s, "web seeds:");
        for url in &m.url_list {
            let _ = writeln!(s, "  {url}");
        }
    }
    let _ = writeln!(s, "files ({}):", info.files.len());
    for f in &info.files {
        let mut marks = String::new();
        if f.attr.pad {
            marks.push_str(" [pad]");
        }
        if f.attr.executable {
            marks.push_str(" [exec]");
        }
        if f.attr.hidden {
            marks.push_str(" [hidden]");
        }
        if f.attr.symlink {
            marks.push_str(" [symlink]");
        }
        let _ = writeln!(s, "  {:>15}  {}{}", f.length, f.display_path(), marks);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringseed::metainfo::{NewFile, TorrentBuilder};

    fn sample(single: bool) -> Metainfo {
        let files = if single {
            vec![NewFile {
                path: Vec::new(),
                length: 40_000,
            }]
        } else {
            vec![
                NewFile {
                    path: vec!["a".into(), "b.bin".into()],
                    length: 30_000,
                },
                NewFile {
                    path: vec!["c.txt".into()],
                    length: 10_000,
                },
            ]
        };
        let b = TorrentBuilder {
            name: "sample".into(),
            files,
            single_file: single,
            piece_length: 16 * 1024,
            trackers: vec![vec!["http://127.0.0.1:1/a".into()]],
            private: true,
            comment: Some("c".into()),
            source: None,
            created_by: Some("ringseed/test".into()),
            creation_date: Some(1_700_000_000),
            url_list: Vec::new(),
        };
        let bytes = b.build(&[[0u8; 20]; 3]).unwrap_or_else(|e| panic!("{e}"));
        Metainfo::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn json_keys_are_exact() {
        let v = torrent_json(&sample(false));
        let mut keys: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        let mut want = JSON_KEYS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(v["magnet"], json!(false));
        assert_eq!(v["peers"], json!([]));
        assert_eq!(v["files"][0]["path"], json!("sample/a/b.bin"));
        assert_eq!(v["files"][1]["offset"], json!(30_000));
        assert_eq!(v["files"][1]["pad"], json!(false));
        assert_eq!(v["num_pieces"], json!(3));
        assert_eq!(v["private"], json!(true));
        assert!(v["source"].is_null());
        assert_eq!(v["trackers"], json!([["http://127.0.0.1:1/a"]]));
        assert_eq!(v["web_seeds"], json!([]));
    }

    #[test]
    fn single_file_path_is_the_name() {
        let m = sample(true);
        let v = torrent_json(&m);
        assert_eq!(v["files"][0]["path"], json!("sample"));
        let text = torrent_text(&m);
        for needle in [
            "sample",
            &m.info_hash.to_hex(),
            "single-file",
            "private",
            "2023-11-14 22:13:20 UTC",
            "tier 0: http://127.0.0.1:1/a",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }
}
