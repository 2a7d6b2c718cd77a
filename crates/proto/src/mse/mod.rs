//! Message Stream Encryption (MSE/PE, the Vuze "obfuscated header"
//! handshake) as sans-IO state machines: [`Initiator`] (we dial) and
//! [`Responder`] (a peer dialled us). Bytes in, bytes out: the caller reads
//! and writes the socket, and passes in every random value (private keys,
//! padding), so nothing here reads a clock or an OS random source.
//!
//! The exchange (A initiates, B responds):
//! 1. A→B: `Ya, PadA`
//! 2. B→A: `Yb, PadB`
//! 3. A→B: `HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
//!    ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)`
//! 4. B→A: `ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)`
//! 5. A→B: `ENCRYPT2(payload)`
//!
//! Rules, decided on purpose:
//! - Diffie-Hellman over the spec's 768-bit prime [`dh::PRIME`] with
//!   generator 2; public keys travel as [`PUBLIC_KEY_BYTES`] (96) big-endian
//!   bytes; private keys are [`PRIVATE_KEY_BYTES`] (160 bits, as the spec
//!   advises) from the caller's random source;
//! - a peer's public key outside `2..=P-2` (0, 1, P-1, P and above) is a weak
//!   key and ends the handshake ([`MseError::WeakPublicKey`]), as libtorrent
//!   does;
//! - `ENCRYPT` is RC4 keyed with `HASH('keyA', S, SKEY)` (A's sending
//!   direction) or `HASH('keyB', S, SKEY)` (B's), the first
//!   [`RC4_DISCARD_BYTES`] (1,024) keystream bytes dropped; the header and IA
//!   are always RC4, the payload (`ENCRYPT2`) is RC4 only when RC4 was
//!   selected;
//! - padding is 0..=[`PAD_BYTES_MAX`] (512) bytes; a longer length field from
//!   the peer is [`MseError::PadTooLong`];
//! - the responder finds `HASH('req1', S)` within [`RESPONDER_SYNC_WINDOW_BYTES`]
//!   (628 = 96 + 512 + 20) bytes from the start of the stream, the initiator
//!   finds `ENCRYPT(VC)` within [`INITIATOR_SYNC_WINDOW_BYTES`] (616 = 96 +
//!   512 + 8); past that the handshake fails;
//! - the responder names the torrent only from `HASH('req2', SKEY)`: the caller
//!   supplies the lookup ([`TorrentLookup`]) over `HASH('req2', info_hash)`
//!   ([`req2_hash`]) since the runtime keeps that table;
//! - selection is the caller's policy ([`CryptoSet`]): the responder picks
//!   plaintext when the peer offers it and the caller allows it (libtorrent's
//!   choice: the header stays hidden, blocks go zero-copy), else RC4; the
//!   initiator accepts only a single method it provided;
//! - bytes that arrive after the handshake are returned (decrypted when RC4 was
//!   selected) in [`Established::remaining`]; while pending, the machine holds
//!   at most what the handshake allows (the sync windows, 512-byte pads, a
//!   `u16` IA length) plus the caller's last read;
//! - the caller's random values are used as given: a private key of zero
//!   (public key 1) is refused only by the peer.

/// `Machine` for a handshake type whose module has `State::Done(Box<Established>)`
/// and `State::Ended`, a `state` field, a `buf` field and an inherent
/// `advance` (both roles are built so; the impl is written once, here).
macro_rules! impl_machine {
    (impl[$($generics:tt)*] $ty:ty) => {
        impl<$($generics)*> super::Machine for $ty {
            fn buf(&mut self) -> &mut Vec<u8> {
                &mut self.buf
            }
            fn done(&self) -> bool {
                matches!(self.state, State::Done(_))
            }
            fn ended(&self) -> bool {
                matches!(self.state, State::Ended)
            }
            fn end(&mut self) -> Option<Established> {
                match std::mem::replace(&mut self.state, State::Ended) {
                    State::Done(e) => Some(*e),
                    _ => None,
                }
            }
            fn advance(&mut self) -> Result<Progress, MseError> {
                <$ty>::advance(self)
            }
        }
    };
}

mod cipher;
pub mod dh;
mod initiator;
pub mod policy;
mod responder;

#[cfg(test)]
mod tests;

pub use cipher::Rc4Stream;
pub use dh::PrivateKey;
pub use initiator::Initiator;
pub use initiator::InitiatorConfig;
pub use policy::{EncryptionLevel, EncryptionMode, EncryptionPolicy};
pub use responder::{Responder, ResponderConfig};

use sha1::{Digest, Sha1};

use crate::InfoHash;

/// Bytes of a public key on the wire (768 bits).
pub const PUBLIC_KEY_BYTES: usize = 96;
/// Bytes of a private key the caller draws (160 bits, the spec's advice).
pub const PRIVATE_KEY_BYTES: usize = 20;
/// Most bytes of any padding (PadA, PadB, PadC, PadD).
pub const PAD_BYTES_MAX: usize = 512;
/// Bytes of a SHA-1 hash (`req1`, `req2 xor req3`).
pub const HASH_BYTES: usize = 20;
/// The verification constant: eight zero bytes.
pub const VC: [u8; 8] = [0; 8];
/// RC4 keystream bytes dropped before the first byte is encrypted.
pub const RC4_DISCARD_BYTES: usize = 1024;
/// Bytes from the start of the initiator's stream within which the responder
/// must have read all of `HASH('req1', S)`.
pub const RESPONDER_SYNC_WINDOW_BYTES: usize = PUBLIC_KEY_BYTES + PAD_BYTES_MAX + HASH_BYTES;
/// Bytes from the start of the responder's stream within which the initiator
/// must have read all of `ENCRYPT(VC)`.
pub const INITIATOR_SYNC_WINDOW_BYTES: usize = PUBLIC_KEY_BYTES + PAD_BYTES_MAX + VC.len();
/// Most bytes of the initial payload (its length field is a `u16`).
pub const INITIAL_PAYLOAD_BYTES_MAX: usize = u16::MAX as usize;

const _: () = assert!(RESPONDER_SYNC_WINDOW_BYTES == 628);
const _: () = assert!(INITIATOR_SYNC_WINDOW_BYTES == 616);
const _: () = assert!(PAD_BYTES_MAX <= u16::MAX as usize);

/// A set of crypto methods as the `crypto_provide`/`crypto_select` bit field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CryptoSet(pub u32);

impl CryptoSet {
    /// Plaintext after the header (bit 0x01).
    pub const PLAINTEXT: CryptoSet = CryptoSet(0x01);
    /// RC4 after the header (bit 0x02).
    pub const RC4: CryptoSet = CryptoSet(0x02);
    /// Both methods.
    pub const BOTH: CryptoSet = CryptoSet(0x03);

    /// Whether every bit of `other` is in `self`.
    pub fn contains(self, other: CryptoSet) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
    /// The methods in both sets.
    pub fn intersect(self, other: CryptoSet) -> CryptoSet {
        CryptoSet(self.0 & other.0)
    }
}

/// The method the handshake settled on for the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CryptoMethod {
    /// The payload travels in plaintext.
    Plaintext,
    /// The payload is RC4-encrypted in both directions.
    Rc4,
}

impl CryptoMethod {
    /// Its bit in a [`CryptoSet`].
    pub fn as_set(self) -> CryptoSet {
        match self {
            CryptoMethod::Plaintext => CryptoSet::PLAINTEXT,
            CryptoMethod::Rc4 => CryptoSet::RC4,
        }
    }
}

/// The responder's way to the torrent an initiator asks for: given
/// `HASH('req2', info_hash)` (see [`req2_hash`]), the info-hash we serve.
pub trait TorrentLookup {
    /// The torrent whose `HASH('req2', info_hash)` is `req2`, if we serve it.
    fn find(&self, req2: &[u8; HASH_BYTES]) -> Option<InfoHash>;
}

impl<F: Fn(&[u8; HASH_BYTES]) -> Option<InfoHash>> TorrentLookup for F {
    fn find(&self, req2: &[u8; HASH_BYTES]) -> Option<InfoHash> {
        self(req2)
    }
}

/// What a finished handshake hands to the connection.
#[derive(Debug)]
pub struct Established {
    /// The payload method selected.
    pub method: CryptoMethod,
    /// For RC4: encrypts what we send (keep it for the connection's life).
    pub encryptor: Option<Rc4Stream>,
    /// For RC4: decrypts what we receive.
    pub decryptor: Option<Rc4Stream>,
    /// Payload bytes that arrived after the handshake, already decrypted.
    pub remaining: Vec<u8>,
    /// The torrent (the initiator's own; the one the responder found).
    pub info_hash: InfoHash,
    /// The initiator's initial payload (IA), decrypted; empty for the
    /// initiator's side.
    pub initial_payload: Vec<u8>,
}

/// Where a handshake stands after it was fed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More bytes from the peer are needed.
    Pending,
    /// The handshake is complete: take [`Established`] from the machine.
    Done,
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MseError {
    /// The peer's public key is 0, 1, P-1 or out of range.
    #[error("weak or out-of-range Diffie-Hellman public key from the peer")]
    WeakPublicKey,
    /// The shared secret came out as 0 or 1.
    #[error("degenerate Diffie-Hellman shared secret")]
    WeakSharedSecret,
    /// A padding we were asked to send is longer than `PAD_BYTES_MAX`.
    #[error("our padding of {0} bytes is longer than {PAD_BYTES_MAX}")]
    OurPadTooLong(usize),
    /// An initial payload we were asked to send is too long.
    #[error("our initial payload of {0} bytes is longer than {INITIAL_PAYLOAD_BYTES_MAX}")]
    OurInitialPayloadTooLong(usize),
    /// We were asked to provide or allow no method.
    #[error("no crypto method to offer or accept (set {0:#x})")]
    NoMethodConfigured(u32),
    /// `HASH('req1', S)` not found within the responder's window.
    #[error("req1 hash not found within {RESPONDER_SYNC_WINDOW_BYTES} bytes")]
    Req1NotFound,
    /// `ENCRYPT(VC)` not found within the initiator's window.
    #[error(
        "encrypted verification constant not found within {INITIATOR_SYNC_WINDOW_BYTES} bytes"
    )]
    VcNotFound,
    /// The decrypted verification constant is not eight zero bytes.
    #[error("verification constant is not zero")]
    BadVc,
    /// `HASH('req2', SKEY)` names no torrent we serve.
    #[error("the peer asks for a torrent we do not serve")]
    UnknownInfoHash,
    /// A padding length field says more than `PAD_BYTES_MAX`.
    #[error("peer's padding length {0} is longer than {PAD_BYTES_MAX}")]
    PadTooLong(u16),
    /// The peer's `crypto_provide` has no method we allow.
    #[error("peer provides methods {provided:#x}, we allow {allowed:#x}: none in common")]
    NoCommonMethod { provided: u32, allowed: u32 },
    /// The responder's `crypto_select` is not one single method we provided.
    #[error("peer selected methods {selected:#x}, not one of ours {provided:#x}")]
    SelectNotOffered { selected: u32, provided: u32 },
    /// The machine was fed after it failed or finished.
    #[error("the handshake already ended")]
    Ended,
}

/// What both machines are made of, so that feeding, ending and handing
/// over the outcome are written once ([`feed`], [`take_established`]).
pub(crate) trait Machine {
    /// Bytes from the peer not yet consumed.
    fn buf(&mut self) -> &mut Vec<u8>;
    /// Whether the handshake finished (its outcome not yet taken).
    fn done(&self) -> bool;
    /// Whether it failed, or its outcome was taken.
    fn ended(&self) -> bool;
    /// Ends the machine; returns the outcome if it had finished.
    fn end(&mut self) -> Option<Established>;
    /// Runs the handshake as far as the buffered bytes go.
    fn advance(&mut self) -> Result<Progress, MseError>;
}

/// Feeds bytes read from the peer; after an error the machine is ended.
pub(crate) fn feed<M: Machine>(m: &mut M, data: &[u8]) -> Result<Progress, MseError> {
    if m.done() || m.ended() {
        return Err(MseError::Ended);
    }
    m.buf().extend_from_slice(data);
    let result = m.advance();
    if result.is_err() {
        m.end();
        *m.buf() = Vec::new();
    }
    result
}

/// The outcome once the handshake finished (the machine ends), else `None`.
pub(crate) fn established<M: Machine>(m: &mut M) -> Option<Established> {
    if m.done() {
        m.end()
    } else {
        None
    }
}

/// `HASH(tag, parts...)`: SHA-1 over the tag's bytes and then each part.
pub(crate) fn hash(tag: &[u8], parts: &[&[u8]]) -> [u8; HASH_BYTES] {
    let mut h = Sha1::new();
    h.update(tag);
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// `HASH('req2', info_hash)`: the key of the responder's torrent table.
pub fn req2_hash(info_hash: &InfoHash) -> [u8; HASH_BYTES] {
    hash(b"req2", &[&info_hash.0])
}

/// The two RC4 streams of one side, keyed `HASH('keyA'|'keyB', S, SKEY)` and
/// with the first [`RC4_DISCARD_BYTES`] dropped: `(encryptor, decryptor)`.
pub(crate) fn streams(
    secret: &[u8; PUBLIC_KEY_BYTES],
    skey: &InfoHash,
    initiator: bool,
) -> (Rc4Stream, Rc4Stream) {
    let a = Rc4Stream::new_discarded(&hash(b"keyA", &[secret, &skey.0]));
    let b = Rc4Stream::new_discarded(&hash(b"keyB", &[secret, &skey.0]));
    if initiator {
        (a, b)
    } else {
        (b, a)
    }
}

/// Finds `needle` in `hay`, the first position.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Takes the first `N` bytes of `buf`, if it holds that many.
pub(crate) fn take_array<const N: usize>(buf: &mut Vec<u8>) -> Option<[u8; N]> {
    let bytes: [u8; N] = buf.get(..N)?.try_into().ok()?;
    buf.drain(..N);
    Some(bytes)
}
