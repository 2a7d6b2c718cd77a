//! Reading a .torrent file: every field checked, paths sanitized.

use super::error::MetainfoError;
use super::hybrid;
use super::path::{sanitize_component, sanitize_path, UniquePaths};
use super::{FileAttr, FileEntry, Info, Metainfo};
use crate::bencode::{self, Dict, Value};
use crate::limits::{
    FILES_PER_TORRENT_MAX, PATH_COMPONENTS_MAX, PIECES_PER_TORRENT_MAX, PIECE_LENGTH_BYTES_MAX,
};
use crate::InfoHash;

/// Most trackers or web seeds kept from one torrent.
const URLS_MAX: usize = 1024;

/// BitComet-style pad files carry no attribute, only this name prefix.
const OLD_PAD_PREFIX: &str = "_____padding_file_";
/// The folder of a pad file that names no path (`.pad/<length>`, as
/// libtorrent names them when it loads and when it creates torrents).
const PAD_DIR: &str = ".pad";

impl Metainfo {
    /// Loads a .torrent file from its bytes. Bytes after the top-level
    /// dictionary are ignored, as libtorrent does.
    pub fn from_bytes(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
        let (root, _used) = bencode::decode_prefix(bytes)?;
        let top = root.as_dict().ok_or(MetainfoError::NotADictionary {
            found: root.type_name(),
        })?;
        let info_value = top.get(b"info").ok_or(MetainfoError::MissingInfo)?;
        let info_dict = info_value.as_dict().ok_or(MetainfoError::MissingInfo)?;
        let info_hash = InfoHash::of_info_bytes(info_value.raw);
        let (info, hybrid) = parse_info(info_dict, &info_hash)?;
        Ok(Metainfo {
            info,
            info_hash,
            trackers: parse_trackers(top),
            url_list: parse_url_list(top.get(b"url-list")),
            comment: text(top, b"comment.utf-8").or_else(|| text(top, b"comment")),
            created_by: text(top, b"created by"),
            creation_date: top.get(b"creation date").and_then(Value::as_int),
            hybrid,
            info_bytes: std::sync::Arc::from(info_value.raw),
        })
    }

    /// A torrent from an info dictionary fetched from peers (BEP 9) and the
    /// trackers its magnet named (one tier each, in order): the bytes are
    /// wrapped in a top-level dictionary and read as a .torrent would be.
    pub fn from_info_bytes(info: &[u8], trackers: &[String]) -> Result<Metainfo, MetainfoError> {
        Metainfo::from_bytes(&Metainfo::torrent_bytes(info, trackers))
    }

    /// The bytes of a .torrent file holding `info` as it is (so its hash
    /// stays the info-hash) and `trackers`, one tier each.
    pub fn torrent_bytes(info: &[u8], trackers: &[String]) -> Vec<u8> {
        use crate::bencode::OwnedValue;
        let mut top = Vec::with_capacity(info.len() + 64);
        top.push(b'd');
        if !trackers.is_empty() {
            let tiers = OwnedValue::List(
                trackers
                    .iter()
                    .map(|t| OwnedValue::List(vec![OwnedValue::str(t)]))
                    .collect(),
            );
            top.extend_from_slice(b"13:announce-list");
            top.extend_from_slice(&tiers.encode());
        }
        top.extend_from_slice(b"4:info");
        top.extend_from_slice(info);
        top.push(b'e');
        top
    }

    /// The torrent's magnet link: its info-hash, name, size and trackers.
    pub fn magnet(&self) -> crate::magnet::Magnet {
        let mut m = crate::magnet::Magnet::new(self.info_hash);
        m.display_name = Some(self.info.name.clone());
        m.exact_length = Some(self.info.total_length);
        m.trackers = self.trackers.iter().flatten().cloned().collect();
        m.trackers.dedup();
        m
    }
}

fn text(d: &Dict<'_>, key: &[u8]) -> Option<String> {
    d.get(key)
        .and_then(Value::as_bytes)
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn int_of(d: &Dict<'_>, key: &'static str) -> Result<Option<i64>, MetainfoError> {
    match d.get(key.as_bytes()) {
        None => Ok(None),
        Some(v) => v.as_int().map(Some).ok_or(MetainfoError::WrongType {
            key: key.to_string(),
            expected: "an integer",
            found: v.type_name(),
        }),
    }
}

fn parse_info(d: &Dict<'_>, info_hash: &InfoHash) -> Result<(Info, bool), MetainfoError> {
    let meta_version = int_of(d, "meta version")?.unwrap_or(1);
    let has_pieces = d.get(b"pieces").is_some();
    let hybrid = match meta_version {
        1 => false,
        2 if has_pieces => true,
        2 => return Err(MetainfoError::V2Only),
        v => return Err(MetainfoError::UnsupportedMetaVersion(v)),
    };

    let piece_length = match int_of(d, "piece length")? {
        None => {
            return Err(MetainfoError::Missing {
                key: "piece length",
            })
        }
        Some(n) if n <= 0 => return Err(MetainfoError::PieceLengthNotPositive(n)),
        Some(n) => n.unsigned_abs(),
    };
    if piece_length > PIECE_LENGTH_BYTES_MAX {
        return Err(MetainfoError::PieceLengthTooLarge {
            length: piece_length,
            limit: PIECE_LENGTH_BYTES_MAX,
        });
    }
    if hybrid && (!piece_length.is_power_of_two() || piece_length < 16 * 1024) {
        return Err(MetainfoError::HybridPieceLength(piece_length));
    }

    let pieces_value = d
        .get(b"pieces")
        .ok_or(MetainfoError::Missing { key: "pieces" })?;
    let pieces_raw = pieces_value.as_bytes().ok_or(MetainfoError::WrongType {
        key: "pieces".into(),
        expected: "a string of 20-byte hashes",
        found: pieces_value.type_name(),
    })?;

    let raw_name = d
        .get(b"name.utf-8")
        .or_else(|| d.get(b"name"))
        .ok_or(MetainfoError::Missing { key: "name" })?;
    let raw_name = raw_name.as_bytes().ok_or(MetainfoError::WrongType {
        key: "name".into(),
        expected: "a string",
        found: raw_name.type_name(),
    })?;
    // A name with nothing usable left (such as "..") becomes the info-hash.
    let name = sanitize_component(raw_name).unwrap_or_else(|| info_hash.to_hex());

    let (files, multi_file) = match d.get(b"files") {
        Some(list) => (parse_files(list, &name)?, true),
        None => (vec![parse_single_file(d, &name)?], false),
    };

    let mut total_length: u64 = 0;
    let mut files = files;
    for f in &mut files {
        f.offset = total_length;
        total_length = total_length
            .checked_add(f.length)
            .ok_or(MetainfoError::TotalLengthOverflow)?;
    }
    if total_length == 0 {
        return Err(MetainfoError::EmptyTorrent);
    }
    let expected = total_length.div_ceil(piece_length);
    if expected > PIECES_PER_TORRENT_MAX {
        return Err(MetainfoError::TooManyPieces {
            count: expected,
            limit: PIECES_PER_TORRENT_MAX,
        });
    }
    if pieces_raw.len() % 20 != 0 {
        return Err(MetainfoError::PiecesNotMultipleOf20(pieces_raw.len()));
    }
    let found = pieces_raw.len() / 20;
    if found as u64 != expected {
        return Err(MetainfoError::PieceCountMismatch {
            found,
            expected,
            total_length,
            piece_length,
        });
    }
    let pieces = pieces_raw
        .chunks_exact(20)
        .map(|c| {
            let mut h = [0u8; 20];
            h.copy_from_slice(c);
            h
        })
        .collect();

    if hybrid {
        hybrid::check(d, &files, multi_file, piece_length)?;
    }

    let private = matches!(int_of(d, "private"), Ok(Some(p)) if p != 0);
    let source = text(d, b"source");
    Ok((
        Info {
            name,
            piece_length,
            pieces,
            files,
            multi_file,
            private,
            source,
            total_length,
        },
        hybrid,
    ))
}

fn parse_attr(d: &Dict<'_>) -> FileAttr {
    let mut attr = FileAttr::default();
    if let Some(a) = d.get(b"attr").and_then(Value::as_bytes) {
        for &c in a {
            match c {
                b'p' => attr.pad = true,
                b'x' => attr.executable = true,
                b'h' => attr.hidden = true,
                b'l' => attr.symlink = true,
                _ => {}
            }
        }
    }
    attr
}

fn parse_length(d: &Dict<'_>, index: usize, attr: &FileAttr) -> Result<u64, MetainfoError> {
    let length = match d.get(b"length") {
        // A symlink's size does not count (libtorrent loads symlinks without one).
        None if attr.symlink => 0,
        None => return Err(MetainfoError::Missing { key: "length" }),
        Some(v) => v.as_int().ok_or(MetainfoError::WrongType {
            key: format!("length of file {index}"),
            expected: "an integer",
            found: v.type_name(),
        })?,
    };
    if length < 0 {
        return Err(MetainfoError::NegativeFileLength { index, length });
    }
    // A symlink holds no data in the torrent's byte stream.
    Ok(if attr.symlink {
        0
    } else {
        length.unsigned_abs()
    })
}

fn parse_symlink(d: &Dict<'_>, attr: &FileAttr) -> Option<Vec<String>> {
    if !attr.symlink {
        return None;
    }
    let list = d.get(b"symlink path")?.as_list()?;
    Some(sanitize_path(list.iter().filter_map(Value::as_bytes)))
}

fn parse_single_file(d: &Dict<'_>, name: &str) -> Result<FileEntry, MetainfoError> {
    let attr = parse_attr(d);
    let length = parse_length(d, 0, &attr)?;
    Ok(FileEntry {
        path: vec![name.to_string()],
        length,
        offset: 0,
        attr,
        symlink_target: parse_symlink(d, &attr),
    })
}

fn parse_files(list: &Value<'_>, name: &str) -> Result<Vec<FileEntry>, MetainfoError> {
    let items = list.as_list().ok_or(MetainfoError::WrongType {
        key: "files".into(),
        expected: "a list",
        found: list.type_name(),
    })?;
    if items.is_empty() {
        return Err(MetainfoError::NoFiles);
    }
    if items.len() > FILES_PER_TORRENT_MAX {
        return Err(MetainfoError::TooManyFiles {
            count: items.len(),
            limit: FILES_PER_TORRENT_MAX,
        });
    }
    let mut unique = UniquePaths::default();
    let mut files = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let fd = item.as_dict().ok_or(MetainfoError::WrongType {
            key: format!("file {index}"),
            expected: "a dictionary",
            found: item.type_name(),
        })?;
        let mut attr = parse_attr(fd);
        let length = parse_length(fd, index, &attr)?;
        let path_value = fd.get(b"path.utf-8").or_else(|| fd.get(b"path"));
        let parts = match path_value {
            None => &[][..],
            Some(v) => v.as_list().ok_or(MetainfoError::WrongType {
                key: format!("path of file {index}"),
                expected: "a list of strings",
                found: v.type_name(),
            })?,
        };
        if parts.len() > PATH_COMPONENTS_MAX {
            return Err(MetainfoError::PathTooDeep {
                index,
                count: parts.len(),
                limit: PATH_COMPONENTS_MAX,
            });
        }
        let mut path = vec![name.to_string()];
        if parts.is_empty() {
            // As libtorrent: a pad file needs no path (it is never written)
            // and goes under `.pad/<length>`; any other file must name one.
            if !attr.pad {
                return Err(match path_value {
                    None => MetainfoError::MissingPath { index },
                    Some(_) => MetainfoError::EmptyPath { index },
                });
            }
            path.extend([PAD_DIR.to_string(), length.to_string()]);
        } else {
            let mut raw = Vec::with_capacity(parts.len());
            for part in parts {
                raw.push(part.as_bytes().ok_or_else(|| MetainfoError::WrongType {
                    key: format!("path of file {index}"),
                    expected: "a list of strings",
                    found: part.type_name(),
                })?);
            }
            path.extend(sanitize_path(raw.iter().copied()));
        }
        if path
            .last()
            .is_some_and(|last| last.starts_with(OLD_PAD_PREFIX))
        {
            attr.pad = true;
        }
        let path = unique.claim(path);
        files.push(FileEntry {
            path,
            length,
            offset: 0,
            attr,
            symlink_target: parse_symlink(fd, &attr),
        });
    }
    Ok(files)
}

fn parse_trackers(top: &Dict<'_>) -> Vec<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut tiers: Vec<Vec<String>> = Vec::new();
    let mut add = |tier: &mut Vec<String>, raw: &[u8]| {
        let url = String::from_utf8_lossy(raw).trim().to_string();
        if !url.is_empty() && seen.len() < URLS_MAX && seen.insert(url.clone()) {
            tier.push(url);
        }
    };
    if let Some(list) = top.get(b"announce-list").and_then(Value::as_list) {
        for tier_value in list {
            let mut tier = Vec::new();
            match tier_value.as_list() {
                Some(urls) => urls
                    .iter()
                    .filter_map(Value::as_bytes)
                    .for_each(|u| add(&mut tier, u)),
                None => {
                    if let Some(u) = tier_value.as_bytes() {
                        add(&mut tier, u);
                    }
                }
            }
            if !tier.is_empty() {
                tiers.push(tier);
            }
        }
    }
    // BEP 12: announce-list, when present and usable, replaces announce.
    if tiers.is_empty() {
        if let Some(u) = top.get(b"announce").and_then(Value::as_bytes) {
            let mut tier = Vec::new();
            add(&mut tier, u);
            if !tier.is_empty() {
                tiers.push(tier);
            }
        }
    }
    tiers
}

fn parse_url_list(v: Option<&Value<'_>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |raw: &[u8]| {
        let url = String::from_utf8_lossy(raw).trim().to_string();
        if !url.is_empty() && out.len() < URLS_MAX && !out.contains(&url) {
            out.push(url);
        }
    };
    match v {
        Some(v) if v.as_bytes().is_some() => v.as_bytes().into_iter().for_each(&mut push),
        Some(v) => v
            .as_list()
            .unwrap_or(&[])
            .iter()
            .filter_map(Value::as_bytes)
            .for_each(push),
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bencode::OwnedValue as O;
    use std::collections::BTreeMap;

    fn dict(entries: &[(&str, O)]) -> O {
        O::Dict(
            entries
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        )
    }
    fn s(x: &str) -> O {
        O::str(x)
    }
    fn list(items: &[O]) -> O {
        O::List(items.to_vec())
    }
    fn file(len: i64, path: &[&str]) -> O {
        dict(&[
            ("length", O::Int(len)),
            ("path", list(&path.iter().map(|p| s(p)).collect::<Vec<_>>())),
        ])
    }
    fn hashes(n: usize) -> O {
        O::Bytes(vec![7u8; 20 * n])
    }
    fn single(len: i64, piece: i64, n: usize) -> Vec<(&'static str, O)> {
        vec![
            ("length", O::Int(len)),
            ("name", s("f.bin")),
            ("piece length", O::Int(piece)),
            ("pieces", hashes(n)),
        ]
    }
    fn torrent(info: Vec<(&str, O)>, top: Vec<(&str, O)>) -> Vec<u8> {
        let mut t = top;
        t.push(("info", dict(&info)));
        dict(&t).encode()
    }
    fn load(info: Vec<(&str, O)>) -> Result<Metainfo, MetainfoError> {
        Metainfo::from_bytes(&torrent(info, vec![]))
    }
    fn with(mut info: Vec<(&'static str, O)>, key: &'static str, v: O) -> Vec<(&'static str, O)> {
        info.retain(|(k, _)| *k != key);
        info.push((key, v));
        info
    }
    fn without(mut info: Vec<(&'static str, O)>, key: &str) -> Vec<(&'static str, O)> {
        info.retain(|(k, _)| *k != key);
        info
    }

    #[test]
    fn single_file_basics() {
        let m = load(single(40_000, 16384, 3)).unwrap();
        assert_eq!(m.info.name, "f.bin");
        assert_eq!(m.info.num_pieces(), 3);
        assert_eq!(m.info.piece_size(2), Some(40_000 - 2 * 16384));
        assert_eq!(m.info.piece_size(3), None);
        assert!(!m.info.multi_file && !m.info.private && !m.hybrid);
        assert_eq!(
            m.info.files[0].relative_path(),
            std::path::PathBuf::from("f.bin")
        );
    }

    #[test]
    fn top_level_problems() {
        assert!(matches!(
            Metainfo::from_bytes(b"li1ee"),
            Err(MetainfoError::NotADictionary { found: "list" })
        ));
        assert!(matches!(
            Metainfo::from_bytes(b"de"),
            Err(MetainfoError::MissingInfo)
        ));
        assert!(matches!(
            Metainfo::from_bytes(b"d4:infoi1ee"),
            Err(MetainfoError::MissingInfo)
        ));
        assert!(matches!(
            Metainfo::from_bytes(b"d4:info"),
            Err(MetainfoError::Bencode(_))
        ));
        assert!(matches!(
            Metainfo::from_bytes(b""),
            Err(MetainfoError::Bencode(_))
        ));
    }

    #[test]
    fn bytes_after_the_dictionary_are_ignored() {
        let mut t = torrent(single(10, 16384, 1), vec![]);
        let plain = Metainfo::from_bytes(&t).unwrap();
        t.extend_from_slice(b"\r\ngarbage");
        assert_eq!(Metainfo::from_bytes(&t).unwrap(), plain);
    }

    #[test]
    fn info_hash_is_over_the_exact_bytes_even_unsorted() {
        // Keys out of order: a re-encoding would sort them and change the hash.
        let info: &[u8] =
            b"d6:lengthi10e4:name1:x6:pieces20:aaaaaaaaaaaaaaaaaaaa12:piece lengthi16384ee";
        let mut t = b"d4:info".to_vec();
        t.extend_from_slice(info);
        t.push(b'e');
        let m = Metainfo::from_bytes(&t).unwrap();
        assert_eq!(m.info_hash, InfoHash::of_info_bytes(info));
        let sorted =
            crate::bencode::OwnedValue::from(&crate::bencode::decode(info).unwrap()).encode();
        assert_ne!(m.info_hash, InfoHash::of_info_bytes(&sorted));
    }

    #[test]
    fn piece_length_rules() {
        assert_eq!(
            load(with(single(10, 16384, 1), "piece length", O::Int(0))),
            Err(MetainfoError::PieceLengthNotPositive(0))
        );
        assert_eq!(
            load(with(single(10, 16384, 1), "piece length", O::Int(-5))),
            Err(MetainfoError::PieceLengthNotPositive(-5))
        );
        assert!(matches!(
            load(with(single(10, 16384, 1), "piece length", s("16384"))),
            Err(MetainfoError::WrongType { .. })
        ));
        assert_eq!(
            load(without(single(10, 16384, 1), "piece length")),
            Err(MetainfoError::Missing {
                key: "piece length"
            })
        );
        assert!(matches!(
            load(with(single(10, 16384, 1), "piece length", O::Int(1 << 40))),
            Err(MetainfoError::PieceLengthTooLarge { .. })
        ));
        // Not a power of two: libtorrent loads these, so do we.
        let m = load(single(100, 30, 4)).unwrap();
        assert_eq!(m.info.piece_length, 30);
        assert_eq!(m.info.piece_size(3), Some(10));
    }

    #[test]
    fn pieces_rules() {
        assert_eq!(
            load(with(single(10, 16384, 1), "pieces", O::Bytes(vec![0; 21]))),
            Err(MetainfoError::PiecesNotMultipleOf20(21))
        );
        assert_eq!(
            load(single(40_000, 16384, 2)),
            Err(MetainfoError::PieceCountMismatch {
                found: 2,
                expected: 3,
                total_length: 40_000,
                piece_length: 16384
            })
        );
        assert!(matches!(
            load(with(single(10, 16384, 1), "pieces", O::Int(-23))),
            Err(MetainfoError::WrongType { .. })
        ));
        assert!(matches!(
            load(single(1 << 40, 16384, 1)),
            Err(MetainfoError::TooManyPieces { .. })
        ));
    }

    #[test]
    fn size_rules() {
        assert_eq!(load(single(0, 16384, 0)), Err(MetainfoError::EmptyTorrent));
        assert_eq!(
            load(single(-45, 16384, 1)),
            Err(MetainfoError::NegativeFileLength {
                index: 0,
                length: -45
            })
        );
        let big = i64::MAX;
        let info = vec![
            (
                "files",
                list(&[file(big, &["a"]), file(big, &["b"]), file(big, &["c"])]),
            ),
            ("name", s("t")),
            ("piece length", O::Int(16384)),
            ("pieces", hashes(1)),
        ];
        assert_eq!(load(info), Err(MetainfoError::TotalLengthOverflow));
        assert!(matches!(
            load(with(single(10, 16384, 1), "length", list(&[O::Int(45)]))),
            Err(MetainfoError::WrongType { .. })
        ));
    }

    fn multi(files: Vec<O>, n: usize) -> Vec<(&'static str, O)> {
        vec![
            ("files", O::List(files)),
            ("name", s("t")),
            ("piece length", O::Int(16384)),
            ("pieces", hashes(n)),
        ]
    }

    #[test]
    fn file_list_rules() {
        assert_eq!(load(multi(vec![], 1)), Err(MetainfoError::NoFiles));
        let no_path = dict(&[("length", O::Int(5))]);
        assert_eq!(
            load(multi(vec![no_path], 1)),
            Err(MetainfoError::MissingPath { index: 0 })
        );
        let deep: Vec<&str> = vec!["d"; 65];
        assert!(matches!(
            load(multi(vec![file(5, &deep)], 1)),
            Err(MetainfoError::PathTooDeep {
                index: 0,
                count: 65,
                ..
            })
        ));
        assert!(matches!(
            load(multi(vec![O::Int(3)], 1)),
            Err(MetainfoError::WrongType { .. })
        ));
        assert!(matches!(
            load(without(multi(vec![file(5, &["a"])], 1), "name")),
            Err(MetainfoError::Missing { key: "name" })
        ));
    }

    #[test]
    fn multi_file_offsets_paths_and_duplicates() {
        let m = load(multi(
            vec![
                file(5, &["foo", "bar.txt"]),
                file(0, &["empty"]),
                file(4, &["foo", "bar.txt"]),
                file(3, &["..", "..", "etc", "passwd"]),
                file(2, &[""]),
            ],
            1,
        ))
        .unwrap();
        let paths: Vec<String> = m.info.files.iter().map(|f| f.display_path()).collect();
        assert_eq!(
            paths,
            vec![
                "t/foo/bar.txt",
                "t/empty",
                "t/foo/bar.1.txt",
                "t/etc/passwd",
                "t/_"
            ]
        );
        let offsets: Vec<u64> = m.info.files.iter().map(|f| f.offset).collect();
        assert_eq!(offsets, vec![0, 5, 5, 9, 12]);
        assert_eq!(m.info.total_length, 14);
    }

    #[test]
    fn name_rules() {
        let m = load(with(single(10, 16384, 1), "name", s(".."))).unwrap();
        assert_eq!(m.info.name, m.info_hash.to_hex());
        let m = load(with(single(10, 16384, 1), "name", s("a/../../b"))).unwrap();
        assert_eq!(m.info.name, "a_.._.._b");
        let m = load(with(single(10, 16384, 1), "name.utf-8", s("utf"))).unwrap();
        assert_eq!(m.info.name, "utf");
    }

    #[test]
    fn attributes_pad_and_symlinks() {
        let pad = dict(&[
            ("attr", s("p")),
            ("length", O::Int(16379)),
            ("path", list(&[s(".pad"), s("16379")])),
        ]);
        let link = dict(&[
            ("attr", s("lx")),
            ("length", O::Int(99)),
            ("path", list(&[s("link")])),
            ("symlink path", list(&[s(".."), s("a")])),
        ]);
        let old_pad = file(1, &["_____padding_file_0_"]);
        let m = load(multi(
            vec![file(5, &["a"]), pad, link, old_pad, file(1, &["z"])],
            2,
        ))
        .unwrap();
        let f = &m.info.files;
        assert!(f[1].attr.pad && !f[0].attr.pad);
        assert!(f[2].attr.symlink && f[2].attr.executable);
        assert_eq!(f[2].length, 0, "a symlink holds no data");
        assert_eq!(f[2].symlink_target, Some(vec!["a".to_string()]));
        assert!(f[3].attr.pad, "BitComet-style pad name");
        assert_eq!(m.info.total_length, 16386);
        let extents = m.info.extents();
        assert!(extents[1].pad && extents[1].length == 16379);
    }

    /// BEP 47 pad files without a path load, as libtorrent loads them, under
    /// `.pad/<length>`: with no `path` key, or with an empty one.
    #[test]
    fn pad_file_without_a_path_loads() {
        let pad = |len: i64, path: Option<O>| {
            let mut entries = vec![("attr", s("p")), ("length", O::Int(len))];
            if let Some(p) = path {
                entries.push(("path", p));
            }
            dict(&entries)
        };
        let m = load(multi(
            vec![
                file(5, &["a"]),
                pad(16379, None),
                file(3, &["b"]),
                pad(16381, Some(list(&[]))),
                file(2, &["c"]),
                pad(16382, None),
                file(2, &["d"]),
                pad(16382, None),
            ],
            4,
        ))
        .unwrap();
        let f = &m.info.files;
        let paths: Vec<String> = f.iter().map(|f| f.display_path()).collect();
        assert_eq!(
            paths,
            vec![
                "t/a",
                "t/.pad/16379",
                "t/b",
                "t/.pad/16381",
                "t/c",
                "t/.pad/16382",
                "t/d",
                "t/.pad/16382.1"
            ]
        );
        assert!(f[1].attr.pad && f[3].attr.pad && f[5].attr.pad && f[7].attr.pad);
        assert_eq!(f[1].length, 16379);
        assert_eq!(
            m.info.total_length,
            5 + 16379 + 3 + 16381 + 2 + 16382 + 2 + 16382
        );
        let extents = m.info.extents();
        assert!(extents[1].pad && extents[3].pad && !extents[2].pad);
    }

    /// A file that is not a pad file must name a path: an empty `path` list
    /// is refused, as libtorrent refuses it, naming the file.
    #[test]
    fn empty_path_list_is_refused() {
        let empty = dict(&[("length", O::Int(3)), ("path", list(&[]))]);
        let e = load(multi(vec![file(5, &["a"]), empty], 1)).unwrap_err();
        assert_eq!(e, MetainfoError::EmptyPath { index: 1 });
        assert!(
            e.to_string().starts_with("file 1: 'path' is an empty list"),
            "{e}"
        );
        // `path.utf-8` is preferred when present, an empty one too.
        let utf8_empty = dict(&[
            ("length", O::Int(3)),
            ("path", list(&[s("x")])),
            ("path.utf-8", list(&[])),
        ]);
        assert_eq!(
            load(multi(vec![utf8_empty], 1)),
            Err(MetainfoError::EmptyPath { index: 0 })
        );
        // A symlink is not a pad file: it must name a path too.
        let link = dict(&[
            ("attr", s("l")),
            ("path", list(&[])),
            ("symlink path", list(&[s("a")])),
        ]);
        assert_eq!(
            load(multi(vec![file(5, &["a"]), link], 1)),
            Err(MetainfoError::EmptyPath { index: 1 })
        );
        // A path whose components are all dropped is not empty: it becomes `_`.
        let m = load(multi(vec![file(5, &[".."])], 1)).unwrap();
        assert_eq!(m.info.files[0].display_path(), "t/_");
    }

    #[test]
    fn flags_and_source() {
        let m = load(with(single(10, 16384, 1), "private", O::Int(1))).unwrap();
        assert!(m.info.private);
        let m = load(with(single(10, 16384, 1), "private", O::Int(0))).unwrap();
        assert!(!m.info.private);
        let m = load(with(single(10, 16384, 1), "source", s("TRK"))).unwrap();
        assert_eq!(m.info.source.as_deref(), Some("TRK"));
    }

    #[test]
    fn trackers_and_web_seeds() {
        let t = torrent(
            single(10, 16384, 1),
            vec![
                ("announce", s("http://a/ann")),
                (
                    "announce-list",
                    list(&[
                        list(&[s(" http://b/ann "), s("http://c/ann")]),
                        list(&[]),
                        list(&[s("http://b/ann"), s("udp://d:80")]),
                    ]),
                ),
                ("url-list", list(&[s("http://w/"), s(""), s("http://w/")])),
                ("comment", s("c")),
                ("created by", s("me")),
                ("creation date", O::Int(5)),
            ],
        );
        let m = Metainfo::from_bytes(&t).unwrap();
        assert_eq!(
            m.trackers,
            vec![vec!["http://b/ann", "http://c/ann"], vec!["udp://d:80"]]
        );
        assert_eq!(m.url_list, vec!["http://w/"]);
        assert_eq!(m.comment.as_deref(), Some("c"));
        assert_eq!(m.created_by.as_deref(), Some("me"));
        assert_eq!(m.creation_date, Some(5));

        let t = torrent(
            single(10, 16384, 1),
            vec![
                ("announce", s("\t udp://x/announce")),
                ("url-list", s("http://one/")),
            ],
        );
        let m = Metainfo::from_bytes(&t).unwrap();
        assert_eq!(m.trackers, vec![vec!["udp://x/announce"]]);
        assert_eq!(m.url_list, vec!["http://one/"]);
    }

    #[test]
    fn versions() {
        let v2 = without(
            with(single(10, 16384, 1), "meta version", O::Int(2)),
            "pieces",
        );
        assert_eq!(load(v2), Err(MetainfoError::V2Only));
        assert_eq!(
            load(with(single(10, 16384, 1), "meta version", O::Int(3))),
            Err(MetainfoError::UnsupportedMetaVersion(3))
        );
    }

    fn leaf(len: i64) -> O {
        dict(&[(
            "",
            dict(&[
                ("length", O::Int(len)),
                ("pieces root", O::Bytes(vec![1; 32])),
            ]),
        )])
    }

    #[test]
    fn hybrid_checks() {
        let pad = dict(&[
            ("attr", s("p")),
            ("length", O::Int(16384 - 5)),
            ("path", list(&[s(".pad"), s("x")])),
        ]);
        let ok = vec![
            (
                "files",
                list(&[file(5, &["a"]), pad.clone(), file(3, &["b"])]),
            ),
            ("file tree", dict(&[("a", leaf(5)), ("b", leaf(3))])),
            ("meta version", O::Int(2)),
            ("name", s("t")),
            ("piece length", O::Int(16384)),
            ("pieces", hashes(2)),
        ];
        let m = load(ok.clone()).unwrap();
        assert!(m.hybrid);
        assert!(matches!(
            load(with(
                with(
                    ok.clone(),
                    "files",
                    list(&[file(5, &["a"]), file(3, &["b"])])
                ),
                "pieces",
                hashes(1)
            )),
            Err(MetainfoError::HybridMismatch(_))
        ));
        assert!(matches!(
            load(with(
                ok.clone(),
                "file tree",
                dict(&[("a", leaf(5)), ("c", leaf(3))])
            )),
            Err(MetainfoError::HybridMismatch(_))
        ));
        assert!(matches!(
            load(with(
                ok.clone(),
                "file tree",
                dict(&[("a", dict(&[("length", O::Int(5))]))])
            )),
            Err(MetainfoError::HybridFileTree(_))
        ));
        assert!(matches!(
            load(without(ok.clone(), "file tree")),
            Err(MetainfoError::HybridFileTree(_))
        ));
        assert_eq!(
            load(with(ok, "piece length", O::Int(20000))),
            Err(MetainfoError::HybridPieceLength(20000))
        );
    }
}
