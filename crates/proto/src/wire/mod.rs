//! The peer wire protocol (BEP 3, BEP 6 fast extension, BEP 10 extension
//! protocol) as a sans-IO codec: bytes in, values out, and values in, bytes out.
//!
//! Boundary: nothing here touches a socket, a file or the clock. The engine
//! (in `runtime/`) owns the buffers and the connections; it hands received
//! bytes to [`Handshake::decode`] and then to a [`MessageDecoder`], and writes
//! what [`encode`] and [`piece_header`] produce.
//!
//! - [`handshake`]: the 68-byte handshake, and its first 48 bytes alone
//!   ([`HandshakePrefix`]) so a connection can be routed to the shard that
//!   owns its info-hash before the peer id arrives.
//! - [`message`]: the [`Message`] enum (borrowing blocks and bitfields from the
//!   receive buffer) and its encoder.
//! - [`decoder`]: the streaming [`MessageDecoder`], bounded by [`Limits`]: a
//!   length prefix is checked before the body is waited for, so nothing is
//!   ever buffered beyond the limits.
//! - [`extension`]: the BEP 10 extension handshake dictionary.
//!
//! Decisions (each is tested where it is made):
//! - Unknown message ids are not an error (BEP 3: ignore them). They come out
//!   as [`Message::Unknown`] so the bytes consumed are accounted for, and their
//!   length is bounded by [`Limits::unknown_bytes_max`].
//! - A bitfield's spare bits (past the last piece) must be zero, and when the
//!   piece count is known its length must be exact: BEP 3 says to drop such
//!   peers, and libtorrent does.
//! - Requests, cancels and rejects of length 0 or over the block limit, and
//!   piece messages with an empty or oversized block, are errors.
//! - The decoder does not know what was negotiated: a fast-extension or
//!   extended message from a peer that did not set the reserved bit is decoded
//!   all the same, and the engine decides what to do with it.

pub mod decoder;
pub mod error;
pub mod extension;
pub mod handshake;
pub mod message;
pub mod ut_metadata;
pub mod ut_pex;

pub use decoder::{Limits, MessageDecoder};
pub use error::{ExtensionHandshakeError, HandshakeError, WireError};
pub use extension::ExtensionHandshake;
pub use handshake::{
    reserved_bits, Handshake, HandshakePrefix, HANDSHAKE_BYTES, HANDSHAKE_PREFIX_BYTES,
};
pub use message::{encode, piece_header, Message, PIECE_HEADER_BYTES};
