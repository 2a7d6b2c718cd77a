//! Test torrents for the session's in-process tests: one file of given
//! bytes written into a folder, and its metainfo.

use std::path::Path;
use std::sync::Arc;

use ringseed::hash::sha1;
use ringseed::metainfo::{Metainfo, NewFile, TorrentBuilder};

/// A single-file torrent of `data` in `dir`, pieces of `piece_length`.
pub fn torrent_of(dir: &Path, name: &str, data: &[u8], piece_length: u64) -> Arc<Metainfo> {
    std::fs::write(dir.join(name), data).unwrap();
    let hashes: Vec<[u8; 20]> = data.chunks(piece_length as usize).map(sha1).collect();
    let b = TorrentBuilder {
        name: name.into(),
        files: vec![NewFile {
            path: vec![],
            length: data.len() as u64,
        }],
        single_file: true,
        piece_length,
        ..TorrentBuilder::default()
    };
    Arc::new(Metainfo::from_bytes(&b.build(&hashes).unwrap()).unwrap())
}
