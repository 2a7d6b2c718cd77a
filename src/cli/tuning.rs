//! Options that tune the hashing pipeline, shared by `create` and `verify`:
//! `--threads`, and the hidden `--read-chunk` / `--read-depth` /
//! `--read-lanes` used by the benchmarks.

use anyhow::Result;
use clap::Args;
use ringseed::runtime::piece_hash::{
    CHUNK_BYTES_MAX, CHUNK_BYTES_MIN, DEPTH_MAX, DEPTH_MIN, LANES_MAX, LANES_MIN, THREADS_MAX,
};
use ringseed::runtime::HashOptions;

use super::units::{parse_piece_length, PieceLength};

/// Pipeline tuning.
#[derive(Debug, Clone, Args)]
pub struct Tuning {
    /// Hashing threads, each with its own io_uring [default: all cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=THREADS_MAX as i64))]
    pub threads: Option<u16>,
    /// Bytes per read (power of two, 16K to 4M) [default: 512K].
    #[arg(long, value_name = "SIZE", hide = true, value_parser = parse_chunk)]
    pub read_chunk: Option<usize>,
    /// Chunks in flight per lane (2 to 8) [default: 2].
    #[arg(long, value_name = "N", hide = true,
          value_parser = clap::value_parser!(u8).range(DEPTH_MIN as i64..=DEPTH_MAX as i64))]
    pub read_depth: Option<u8>,
    /// Pieces hashed at once per thread, interleaved (1 to 4) [default: 3].
    #[arg(long, value_name = "N", hide = true,
          value_parser = clap::value_parser!(u8).range(LANES_MIN as i64..=LANES_MAX as i64))]
    pub read_lanes: Option<u8>,
}

fn parse_chunk(text: &str) -> Result<usize, String> {
    // Same syntax as a piece length; the range is the pipeline's.
    let bytes =
        match parse_piece_length(text).map_err(|e| e.replace("piece length", "read chunk"))? {
            PieceLength::Bytes(b) => b,
            PieceLength::Auto => return Err("read chunk cannot be `auto`".to_string()),
        };
    usize::try_from(bytes)
        .ok()
        .filter(|b| (CHUNK_BYTES_MIN..=CHUNK_BYTES_MAX).contains(b))
        .ok_or_else(|| format!("read chunk must be {CHUNK_BYTES_MIN} to {CHUNK_BYTES_MAX} bytes"))
}

impl Tuning {
    pub fn options(&self) -> Result<HashOptions> {
        let mut o = HashOptions::default();
        if let Some(t) = self.threads {
            o.threads = usize::from(t);
        }
        if let Some(c) = self.read_chunk {
            o.chunk_bytes = c;
        }
        if let Some(d) = self.read_depth {
            o.depth = usize::from(d);
        }
        if let Some(l) = self.read_lanes {
            o.lanes = usize::from(l);
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk("256K"), Ok(256 * 1024));
        assert_eq!(parse_chunk("4M"), Ok(4 << 20));
        assert!(parse_chunk("8M").is_err());
        assert!(parse_chunk("auto").is_err());
        assert!(parse_chunk("x")
            .err()
            .unwrap_or_default()
            .contains("read chunk"));
    }
}
