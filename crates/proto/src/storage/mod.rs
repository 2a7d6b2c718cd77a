//! Storage: how a torrent's byte stream maps onto its files.
//!
//! This module is pure: it computes which bytes of which files a piece or a
//! block covers, and back. Reading and writing the files is the runtime's job.

mod layout;

pub use layout::{FileSpan, Layout, LayoutError, Spans};

/// One file of a torrent as the layout sees it: its length and whether it is a
/// pad file (BEP 47: never on disk, reads as zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileExtent {
    pub length: u64,
    pub pad: bool,
}
