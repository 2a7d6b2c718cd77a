//! `MagnetError`: every way a magnet URI can be refused, with the evidence.

/// Why a text is not an accepted magnet URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    #[error("magnet URI is {bytes} bytes, more than the limit of {max}")]
    TooLong { bytes: usize, max: usize },
    #[error("a magnet URI starts with \"magnet:?\", found {found:?}")]
    NotMagnet { found: String },
    #[error(
        "bad percent-escape in parameter {key:?} at byte {position}: \
         expected '%' and two hex digits, found {found:?}"
    )]
    BadEscape {
        key: String,
        /// Byte offset of the `%` in the whole URI.
        position: usize,
        found: String,
    },
    #[error("parameter {key:?} (value at byte {position}) is not UTF-8 once percent-decoded")]
    NotUtf8 {
        key: String,
        /// Byte offset of the value in the whole URI.
        position: usize,
    },
    #[error("no v1 exact topic (xt=urn:btih:...) in the magnet URI")]
    MissingInfoHash,
    #[error(
        "v2 magnet URIs (xt=urn:btmh:) are not supported yet, \
         and this one has no v1 xt=urn:btih: hash"
    )]
    V2NotSupported,
    #[error("xt=urn:btih: takes 40 hex or 32 base32 characters, found {found} characters")]
    BadHashLength { found: usize },
    #[error("xt=urn:btih: in {encoding} has a bad digit {found:?} at character {position}")]
    BadHashDigit {
        encoding: &'static str,
        position: usize,
        found: char,
    },
    #[error("xl (exact length) must be a decimal number of bytes below 2^64, found {found:?}")]
    BadExactLength { found: String },
    #[error("so (select only) entry {entry:?} is not a file index or a range like 4-6")]
    BadSelectOnly { entry: String },
    #[error("so (select only) range {first}-{last} runs backwards")]
    ReversedSelectOnly { first: u32, last: u32 },
    #[error("more than {max} {what} in the magnet URI")]
    TooManyItems { what: &'static str, max: usize },
}
