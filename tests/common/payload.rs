//! A single-file torrent made for a test: `len` deterministic bytes in
//! `DIR/src/NAME`, and `DIR/NAME.torrent` announcing to `tracker` (if any),
//! made by `ringseed create`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::engine::info_hash_of;
use super::XorShift64;

pub struct Payload {
    /// The save directory holding the file (seed with `--data` this).
    pub data_dir: PathBuf,
    pub torrent: PathBuf,
    pub bytes: Arc<Vec<u8>>,
    pub info_hash: [u8; 20],
    pub piece_length: u32,
}

pub fn single_file(
    dir: &Path,
    name: &str,
    len: usize,
    seed: u64,
    tracker: Option<&str>,
    piece_length: u32,
) -> Payload {
    let data_dir = dir.join("src");
    std::fs::create_dir_all(&data_dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let mut bytes = vec![0u8; len];
    XorShift64::new(seed).fill(&mut bytes);
    let file = data_dir.join(name);
    std::fs::write(&file, &bytes).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
    let torrent = dir.join(format!("{name}.torrent"));
    let pl = piece_length.to_string();
    let mut args: Vec<std::ffi::OsString> = vec![
        "create".into(),
        file.into_os_string(),
        "-o".into(),
        torrent.clone().into_os_string(),
        "--piece-length".into(),
        pl.into(),
        "--no-date".into(),
    ];
    if let Some(url) = tracker {
        args.push("--tracker".into());
        args.push(url.into());
    }
    super::ringseed(args).assert_code(0);
    let info_hash = info_hash_of(&torrent);
    Payload {
        data_dir,
        torrent,
        bytes: Arc::new(bytes),
        info_hash,
        piece_length,
    }
}
