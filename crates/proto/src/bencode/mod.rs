//! Bencode (BEP 3): a decoder that borrows from its input and an encoder that
//! always writes canonical bencode.
//!
//! The decoder keeps the exact byte span of every value, so the info-hash can be
//! taken over the info dictionary's bytes as they are in the file.
//!
//! What it accepts, decided on purpose (see docs/architecture.md, "Bencode"):
//! - refused always: lengths past the end, integers that overflow `i64`, empty
//!   integers (`ie`), `-0`, integers with leading zeros (`i07e`; libtorrent 2.0
//!   refuses them too), nesting deeper than [`limits::BENCODE_DEPTH_MAX`], more
//!   than [`limits::BENCODE_TOKENS_MAX`] values, dictionary keys that are not
//!   strings, and the same key twice in one dictionary (two readers could
//!   disagree on which one counts);
//! - tolerated, as libtorrent does: string lengths with leading zeros (`04:spam`),
//!   dictionary keys out of order (old torrent makers wrote them so, and the
//!   info-hash is over the bytes as written), and with [`decode_prefix`] bytes
//!   after the top-level value (the caller learns how many).
//!
//! [`limits::BENCODE_DEPTH_MAX`]: crate::limits::BENCODE_DEPTH_MAX
//! [`limits::BENCODE_TOKENS_MAX`]: crate::limits::BENCODE_TOKENS_MAX

mod decode;
mod encode;
mod value;

pub use decode::{decode, decode_prefix, decode_prefix_with, DecodeError, DecodeErrorKind, Limits};
pub use encode::{Encoder, OwnedValue};
pub use value::{Dict, Value, ValueKind};
