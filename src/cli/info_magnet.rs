//! `ringseed info MAGNET`: what a magnet URI holds (BEP 9 fields, BEP 53
//! `so`), as text or as JSON with fixed keys.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use ringseed::magnet::Magnet;
use serde_json::{json, Value};

use super::units::human_bytes;

pub fn run(uri: &str, as_json: bool, show_secrets: bool) -> Result<()> {
    let mut m = Magnet::parse(uri).context("not a usable magnet URI")?;
    if !show_secrets {
        super::info::redact_urls(&mut m.trackers);
        super::info::redact_urls(&mut m.web_seeds);
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&magnet_json(&m))?);
    } else {
        print!("{}", magnet_text(&m));
    }
    Ok(())
}

/// The JSON view: the same keys as a torrent's (`info::JSON_KEYS`), fixed
/// (tests and scripts rely on them).
pub fn magnet_json(m: &Magnet) -> Value {
    let select_only: Option<Vec<[u32; 2]>> = m
        .select_only
        .as_ref()
        .map(|ranges| ranges.iter().map(|&(a, b)| [a, b]).collect());
    // Each `tr` is a tier of its own, as libtorrent reads magnets.
    let tiers: Vec<[&str; 1]> = m.trackers.iter().map(|t| [t.as_str()]).collect();
    // The keys of a torrent's view; what only the metadata holds is null.
    json!({
        "magnet": true,
        "magnet_uri": m.to_uri(),
        "info_hash": m.info_hash.to_hex(),
        "name": m.display_name,
        "total_size": m.exact_length,
        "trackers": tiers,
        "web_seeds": m.web_seeds,
        "peers": m.peers,
        "select_only": select_only,
        "piece_length": null,
        "num_pieces": null,
        "num_files": null,
        "files": null,
        "private": null,
        "hybrid": null,
        "comment": null,
        "created_by": null,
        "creation_date": null,
        "source": null,
    })
}

/// `0-2,5` style, as BEP 53 writes it.
fn ranges_text(ranges: &[(u32, u32)]) -> String {
    ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The text view.
pub fn magnet_text(m: &Magnet) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "magnet link");
    let _ = writeln!(s, "info hash:    {}", m.info_hash);
    let _ = writeln!(
        s,
        "name:         {}",
        m.display_name.as_deref().unwrap_or("(none)")
    );
    if let Some(xl) = m.exact_length {
        let _ = writeln!(s, "size:         {} ({xl} bytes)", human_bytes(xl));
    }
    if let Some(so) = &m.select_only {
        let _ = writeln!(s, "select only:  files {}", ranges_text(so));
    }
    for (label, list) in [
        ("trackers", &m.trackers),
        ("web seeds", &m.web_seeds),
        ("peers", &m.peers),
    ] {
        if list.is_empty() {
            let _ = writeln!(s, "{label}: (none)");
        } else {
            let _ = writeln!(s, "{label}:");
            for item in list {
                let _ = writeln!(s, "  {item}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    #[test]
    fn json_has_every_key() {
        let uri = format!(
            "magnet:?xt=urn:btih:{HASH}&dn=A%20B&tr=http%3A%2F%2F127.0.0.1%3A1%2Fa&xl=10&so=0-2,5&x.pe=127.0.0.1:6881&ws=http%3A%2F%2F127.0.0.1%2Fw"
        );
        let m = Magnet::parse(&uri).unwrap_or_else(|e| panic!("{e}"));
        let v = magnet_json(&m);
        assert_eq!(v["magnet"], json!(true));
        assert_eq!(v["info_hash"], json!(HASH));
        assert_eq!(v["name"], json!("A B"));
        assert_eq!(v["trackers"], json!([["http://127.0.0.1:1/a"]]));
        assert_eq!(v["web_seeds"], json!(["http://127.0.0.1/w"]));
        assert_eq!(v["peers"], json!(["127.0.0.1:6881"]));
        assert_eq!(v["total_size"], json!(10));
        let mut keys: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        let mut want = super::super::info::JSON_KEYS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "a magnet's keys are a torrent's");
        assert_eq!(v["select_only"], json!([[0, 2], [5, 5]]));
        let text = magnet_text(&m);
        assert!(
            text.contains(HASH) && text.contains("files 0-2,5"),
            "{text}"
        );
    }

    #[test]
    fn absent_values_are_null() {
        let m =
            Magnet::parse(&format!("magnet:?xt=urn:btih:{HASH}")).unwrap_or_else(|e| panic!("{e}"));
        let v = magnet_json(&m);
        for key in ["name", "total_size", "select_only", "files", "private"] {
            assert!(v[key].is_null(), "{key}: {v}");
        }
        assert_eq!(v["trackers"], json!([]));
        assert!(magnet_text(&m).contains("(none)"));
    }
}
