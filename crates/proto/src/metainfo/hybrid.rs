//! Hybrid (v1 + v2) torrents are read as v1; this checks that their v2 `file
//! tree` describes the same files as the v1 list, so that a torrent whose two
//! halves disagree is refused instead of half-trusted.

use super::error::MetainfoError;
use super::path::sanitize_path;
use super::FileEntry;
use crate::bencode::{Dict, Value};

/// Files read from a v2 tree: (sanitized path below the root, length).
type TreeFile = (Vec<String>, u64);

pub(super) fn check(
    info: &Dict<'_>,
    v1_files: &[FileEntry],
    multi_file: bool,
    piece_length: u64,
) -> Result<(), MetainfoError> {
    let tree = info
        .get(b"file tree")
        .and_then(Value::as_dict)
        .ok_or_else(|| MetainfoError::HybridFileTree("missing or not a dictionary".into()))?;
    let mut v2 = Vec::new();
    walk(tree, &mut Vec::new(), &mut v2)?;

    let v1: Vec<&FileEntry> = v1_files.iter().filter(|f| !f.attr.pad).collect();
    if v1.len() != v2.len() {
        return Err(MetainfoError::HybridMismatch(format!(
            "{} v1 files, {} v2 files",
            v1.len(),
            v2.len()
        )));
    }
    for (i, (f1, (path2, len2))) in v1.iter().zip(&v2).enumerate() {
        let path1 = if multi_file {
            &f1.path[1..]
        } else {
            &f1.path[..]
        };
        if path1 != &path2[..] || f1.length != *len2 {
            return Err(MetainfoError::HybridMismatch(format!(
                "file {i}: v1 has {:?} ({} bytes), v2 has {:?} ({} bytes)",
                path1.join("/"),
                f1.length,
                path2.join("/"),
                len2
            )));
        }
        // In v2 every file starts on a piece boundary; v1 gets there with pad files.
        if f1.length > 0 && f1.offset % piece_length != 0 {
            return Err(MetainfoError::HybridMismatch(format!(
                "file {i} ({:?}) starts at byte {}, not on a piece boundary",
                path1.join("/"),
                f1.offset
            )));
        }
    }
    Ok(())
}

fn walk<'a>(
    dir: &Dict<'a>,
    prefix: &mut Vec<&'a [u8]>,
    out: &mut Vec<TreeFile>,
) -> Result<(), MetainfoError> {
    for (name, node) in dir.iter() {
        let node = node.as_dict().ok_or_else(|| {
            MetainfoError::HybridFileTree(format!(
                "entry {:?} is not a dictionary",
                String::from_utf8_lossy(name)
            ))
        })?;
        if name.is_empty() {
            return Err(MetainfoError::HybridFileTree(
                "an entry has an empty name".into(),
            ));
        }
        prefix.push(name);
        if let Some(leaf) = node.get(b"") {
            if node.len() != 1 {
                return Err(MetainfoError::HybridFileTree(format!(
                    "{:?} is both a file and a folder",
                    String::from_utf8_lossy(name)
                )));
            }
            out.push((
                sanitize_path(prefix.iter().copied()),
                leaf_length(leaf, name)?,
            ));
        } else if node.is_empty() {
            return Err(MetainfoError::HybridFileTree(format!(
                "{:?} is neither a file nor a folder with files",
                String::from_utf8_lossy(name)
            )));
        } else {
            walk(node, prefix, out)?;
        }
        prefix.pop();
    }
    Ok(())
}

fn leaf_length(leaf: &Value<'_>, name: &[u8]) -> Result<u64, MetainfoError> {
    let bad = |what: &str| {
        MetainfoError::HybridFileTree(format!("file {:?}: {what}", String::from_utf8_lossy(name)))
    };
    let props = leaf
        .as_dict()
        .ok_or_else(|| bad("properties are not a dictionary"))?;
    let length = props
        .get(b"length")
        .and_then(Value::as_int)
        .ok_or_else(|| bad("no integer 'length'"))?;
    let length = u64::try_from(length).map_err(|_| bad("negative 'length'"))?;
    if length > 0 {
        let root = props.get(b"pieces root").and_then(Value::as_bytes);
        if root.map(<[u8]>::len) != Some(32) {
            return Err(bad("no 32-byte 'pieces root'"));
        }
    }
    Ok(length)
}
