//! Storage layout: which bytes of which files a piece or block covers.
//! (Stub: lands with the storage work.)

/// One file of a torrent as the layout sees it: its length and whether it is a
/// pad file (BEP 47: never on disk, reads as zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileExtent {
    pub length: u64,
    pub pad: bool,
}
