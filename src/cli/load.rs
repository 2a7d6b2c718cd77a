//! Reading a .torrent file from disk with a size limit, for `info` and `verify`.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ringseed::limits::TORRENT_FILE_BYTES_MAX;
use ringseed::metainfo::Metainfo;

/// Reads and parses the torrent at `path`; errors name the file.
pub fn load_torrent(path: &Path) -> Result<Metainfo> {
    load_torrent_bytes(path).map(|(_, m)| m)
}

/// [`load_torrent`], keeping the file's bytes too.
pub fn load_torrent_bytes(path: &Path) -> Result<(Vec<u8>, Metainfo)> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(TORRENT_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > TORRENT_FILE_BYTES_MAX {
        bail!(
            "{} is larger than {} bytes, the most a .torrent file may have",
            path.display(),
            TORRENT_FILE_BYTES_MAX
        );
    }
    let m = Metainfo::from_bytes(&bytes)
        .with_context(|| format!("{} is not a valid .torrent file", path.display()))?;
    Ok((bytes, m))
}
