//! Hard limits, each named with its unit. Inputs beyond them are refused with an
//! error that names the limit; nothing grows without bound.
//!
//! Limits that depend on one another are tied with compile-time assertions
//! (`const _: () = assert!(..)`), each with the reason it must hold, so that
//! changing one limit cannot silently break another: a change that would let
//! two of them disagree does not build. The crate-wide limits and their ties
//! are here; a limit that belongs to one module stays there and is tied to
//! these where it is defined:
//!
//! - `wire::decoder`: the message sizes the decoder accepts (block, bitfield,
//!   extended, unknown) against [`PIECES_PER_TORRENT_MAX`] and the block size
//!   we request; [`Limits::receive_buffer_bytes_max`] is the receive bound
//!   of one connection, from its decoder limits.
//! - `peer::config`: `block_bytes_max` and the client name against the
//!   decoder's limits and the extension handshake's.
//! - `rate_limit`: its block is the picker's block.
//! - `tracker::http::response`: the bencode limits of a tracker's answer
//!   against the peers and scrape entries it may hold.
//! - In the runtime (`ringseed::runtime`): the shard's receive buffers
//!   against [`RECEIVE_CHUNK_BYTES_MAX`], the pool buffer against the block
//!   sizes, the largest write against [`PIECE_LENGTH_BYTES_MAX`], and the
//!   connections of one shard against the peers of one torrent.
//!
//! [`Limits::receive_buffer_bytes_max`]: crate::wire::Limits::receive_buffer_bytes_max

/// Deepest nesting of bencoded lists and dictionaries accepted.
pub const BENCODE_DEPTH_MAX: usize = 100;
/// Most bencode tokens decoded from one buffer: values, dictionary keys
/// included (libtorrent 2.0's `max_decode_tokens` is 3,000,000).
pub const BENCODE_TOKENS_MAX: usize = 4_000_000;
/// Largest .torrent file read, in bytes.
pub const TORRENT_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Largest piece length accepted, in bytes. libtorrent 2.0 loads torrents with
/// pieces just under 512 MiB (its test corpus has one), so we do too; readers
/// hash such pieces in bounded chunks, never with a piece-sized buffer.
pub const PIECE_LENGTH_BYTES_MAX: u64 = 512 * 1024 * 1024;
/// Most files in one torrent. 500,000: every entry of a `files` list takes at
/// least [`FILE_ENTRY_TOKENS_MIN`] bencode tokens, so this is what
/// libtorrent's default `max_decode_tokens` (3,000,000) lets it load, and
/// what ours ([`BENCODE_TOKENS_MAX`]) can decode with room to spare. (It was
/// 1,000,000, which no decodable torrent could reach.)
pub const FILES_PER_TORRENT_MAX: usize = 500_000;
/// Most pieces in one torrent: 2^21 = 2,097,152, libtorrent 2.0's default
/// (`load_torrent_limits::max_pieces`), so a torrent we load is one the
/// libtorrent-based clients of its swarm load too. Its piece hashes are
/// 40 MiB, which fits in [`TORRENT_FILE_BYTES_MAX`], and its bitfield message
/// is 262,149 bytes. (It was 10,000,000: 200 MB of hashes, more than three
/// times the largest .torrent file read, so such a torrent could never be
/// loaded; the receive buffer could not hold its bitfield either.)
pub const PIECES_PER_TORRENT_MAX: u64 = 1 << 21;
/// Longest file path inside a torrent, in path components.
pub const PATH_COMPONENTS_MAX: usize = 64;
/// Longest single path component kept, in bytes (longer ones are truncated, as libtorrent does).
pub const PATH_COMPONENT_BYTES_MAX: usize = 240;
/// Longest magnet URI accepted, in bytes.
pub const MAGNET_URI_BYTES_MAX: usize = 64 * 1024;
/// Most trackers, web seeds or peers kept from one magnet URI.
pub const MAGNET_LIST_ITEMS_MAX: usize = 256;

/// Bytes of one v1 piece hash (SHA-1) in `pieces`.
pub const PIECE_HASH_BYTES: u64 = 20;
/// Fewest bencode tokens one entry of a `files` list takes: the dictionary,
/// the key `length` and its integer, the key `path`, its list and one
/// component.
pub const FILE_ENTRY_TOKENS_MIN: usize = 6;
/// Fewest bytes one entry of a `files` list takes:
/// `d6:lengthi0e4:pathl1:aee`.
pub const FILE_ENTRY_BYTES_MIN: u64 = 24;
/// Room in a .torrent file for what is neither a piece hash nor a file
/// entry (name, trackers, web seeds, comment), in bytes.
pub const TORRENT_REST_BYTES: u64 = 1024 * 1024;
/// Room in the bencode token budget for what is not the smallest file entry
/// (deeper paths, attributes, trackers), in tokens.
pub const TORRENT_REST_TOKENS: usize = 1_000_000;

// The largest torrent allowed must fit in the largest .torrent file read:
// every piece's 20-byte hash, the most files with the smallest entry each,
// and the rest. Otherwise the piece limit promises torrents that can never
// be read (as 10,000,000 pieces did: 200 MB of hashes against 64 MiB).
const _: () = assert!(
    PIECES_PER_TORRENT_MAX * PIECE_HASH_BYTES
        + FILES_PER_TORRENT_MAX as u64 * FILE_ENTRY_BYTES_MIN
        + TORRENT_REST_BYTES
        <= TORRENT_FILE_BYTES_MAX
);
// A torrent with the most files allowed must decode within the token
// budget, or the file limit promises torrents the decoder refuses.
const _: () = assert!(
    FILES_PER_TORRENT_MAX * FILE_ENTRY_TOKENS_MIN + TORRENT_REST_TOKENS <= BENCODE_TOKENS_MAX
);
// Piece indexes and piece sizes travel as u32: in wire messages, in
// `Geometry`, `TorrentShape` and the piece buffers.
const _: () = assert!(PIECES_PER_TORRENT_MAX <= u32::MAX as u64);
const _: () = assert!(PIECE_LENGTH_BYTES_MAX <= u32::MAX as u64);

// ---- receive buffers ----

/// Bytes of a peer message's length prefix.
pub const MESSAGE_PREFIX_BYTES: usize = 4;

/// Bytes of the bitfield message of a torrent of `pieces` pieces, length
/// prefix and id included: 5 + ceil(pieces / 8).
pub const fn bitfield_message_bytes(pieces: u64) -> u64 {
    MESSAGE_PREFIX_BYTES as u64 + 1 + pieces.div_ceil(8)
}

/// Least a connection may keep received and not yet consumed, in bytes
/// (256 KiB, what every connection had before the bound depended on the
/// torrent): the largest message of an ordinary torrent (an extended message
/// of 64 KiB, a block) plus one receive fits several times over.
pub const RECEIVE_BUFFER_BYTES_MIN: usize = 256 * 1024;

/// Most bytes one receive adds to a connection's unconsumed bytes. The
/// runtime's receive buffers (recv-ring buffers, and pool buffers where it
/// receives into those) are no larger; it asserts so where they are sized.
pub const RECEIVE_CHUNK_BYTES_MAX: usize = 64 * 1024;

/// Most bytes a connection may keep received and not yet consumed when the
/// largest message its decoder accepts has a length prefix of
/// `message_bytes_max` (id and payload): that message still one byte short,
/// plus one more receive; at least [`RECEIVE_BUFFER_BYTES_MIN`]. The decoder
/// consumes every complete message, so a peer that keeps to the limits never
/// has more waiting; one that has more is dropped.
pub const fn receive_buffer_bytes_max(message_bytes_max: u32) -> usize {
    let needed = MESSAGE_PREFIX_BYTES + message_bytes_max as usize + RECEIVE_CHUNK_BYTES_MAX;
    if needed > RECEIVE_BUFFER_BYTES_MIN {
        needed
    } else {
        RECEIVE_BUFFER_BYTES_MIN
    }
}

/// Most bytes any connection may keep received and not yet consumed: the
/// bound of a connection to a torrent of [`PIECES_PER_TORRENT_MAX`] pieces
/// with the largest blocks a configuration allows
/// ([`Limits::LARGEST`](crate::wire::Limits::LARGEST)), whose largest
/// message is the bitfield. About 320 KiB; a connection to an ordinary
/// torrent keeps at most [`RECEIVE_BUFFER_BYTES_MIN`].
pub const RECEIVE_BUFFER_BYTES_MAX: usize = crate::wire::Limits::LARGEST.receive_buffer_bytes_max();

// The bitfield of the largest torrent allowed, plus a receive on top of it,
// fits under the global bound; so a peer of that torrent can deliver its
// bitfield. (The old fixed bound of 256 KiB could not: that bitfield is
// 262,149 bytes, and any torrent of more than about 2,000,000 pieces had a
// bitfield its peers could never deliver.)
const _: () = assert!(
    bitfield_message_bytes(PIECES_PER_TORRENT_MAX) as usize + RECEIVE_CHUNK_BYTES_MAX
        <= RECEIVE_BUFFER_BYTES_MAX
);
// Ordinary torrents keep the old bound: the floor is not above the cap. And
// the cap keeps memory bounded: under 400 KiB per connection.
const _: () = assert!(RECEIVE_BUFFER_BYTES_MIN <= RECEIVE_BUFFER_BYTES_MAX);
const _: () = assert!(RECEIVE_BUFFER_BYTES_MAX < 400 * 1024);
// A receive is a fraction of the floor, so a connection can take several
// receives while a message is incomplete.
const _: () = assert!(RECEIVE_CHUNK_BYTES_MAX <= RECEIVE_BUFFER_BYTES_MIN / 2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfield_message_sizes() {
        assert_eq!(bitfield_message_bytes(0), 5);
        assert_eq!(bitfield_message_bytes(1), 6);
        assert_eq!(bitfield_message_bytes(8), 6);
        assert_eq!(bitfield_message_bytes(9), 7);
        assert_eq!(bitfield_message_bytes(PIECES_PER_TORRENT_MAX), 262_149);
    }

    #[test]
    fn receive_bound_grows_only_past_the_floor() {
        assert_eq!(receive_buffer_bytes_max(0), RECEIVE_BUFFER_BYTES_MIN);
        assert_eq!(
            receive_buffer_bytes_max(64 * 1024 + 1),
            RECEIVE_BUFFER_BYTES_MIN
        );
        let big = 1_000_000;
        assert_eq!(
            receive_buffer_bytes_max(big),
            4 + 1_000_000 + RECEIVE_CHUNK_BYTES_MAX
        );
    }

    /// The boundary of issue 9: the largest torrent's bitfield did not fit
    /// the old fixed bound of 256 KiB; it fits the new one with a receive
    /// on top.
    #[test]
    fn largest_bitfield_fits_the_global_bound() {
        let bitfield = bitfield_message_bytes(PIECES_PER_TORRENT_MAX) as usize;
        let old_bound = 256 * 1024;
        assert_eq!(
            bitfield - old_bound,
            5,
            "five bytes too many for the old bound"
        );
        assert_eq!(
            RECEIVE_BUFFER_BYTES_MAX,
            receive_buffer_bytes_max(bitfield as u32 - 4)
        );
        assert_eq!(RECEIVE_BUFFER_BYTES_MAX, bitfield + RECEIVE_CHUNK_BYTES_MAX);
    }
}
