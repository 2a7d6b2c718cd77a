//! `MetadataExchange`: one outgoing connection that asks a peer for a
//! torrent's info dictionary (BEP 9 over BEP 10), as a sans-IO machine.
//!
//! Boundary: the caller owns the socket and the clock. It writes
//! [`MetadataExchange::pending_output`] (then calls `output_written`), feeds
//! received bytes to [`MetadataExchange::receive`] and calls
//! [`MetadataExchange::tick`] now and then; both return events or an error
//! that means "close this connection". The pieces themselves go to a
//! [`MetadataAssembler`] shared by all connections of the torrent, which the
//! caller passes in.
//!
//! Rules, decided on purpose:
//! - we send our handshake first (extension bit set); the peer's must carry
//!   our info-hash and the extension bit, or the exchange ends;
//! - after the peer's handshake we send our extension handshake advertising
//!   `ut_metadata` (id [`OUR_UT_METADATA_ID`]) and `ut_pex`
//!   ([`OUR_UT_PEX_ID`]); the peer's must name `ut_metadata` and a
//!   `metadata_size` the assembler accepts;
//! - at most [`REQUESTS_IN_FLIGHT_MAX`] requests are in flight; a request
//!   unanswered for the timeout, or handshakes not done within it of the
//!   start, end the exchange ([`ExchangeError::Timeout`]);
//! - other messages (bitfields of any length the wire decoder accepts, haves,
//!   pieces, unknown ids, other extensions) are ignored; a peer's requests for
//!   metadata are rejected (we have none); a malformed `ut_pex` message is
//!   ignored, a malformed `ut_metadata` message ends the exchange;
//! - `ut_pex` `added` addresses are reported, at most [`PEX_PEERS_MAX`] per
//!   connection;
//! - received bytes are bounded by [`RECEIVE_BYTES_MAX`], queued output by
//!   [`OUTPUT_BYTES_MAX`] (a reject that does not fit is dropped).

use std::net::SocketAddr;
use std::time::Duration;

use super::metadata::{AssemblerError, DataOutcome, MetadataAssembler, PeerKey};
use crate::limits::RECEIVE_CHUNK_BYTES_MAX;
use crate::wire::decoder::BLOCK_BYTES_MAX_LIMIT;
use crate::wire::ut_metadata::{self, MetadataMessage, UtMetadataError};
use crate::wire::ut_pex::{self, PexMessage};
use crate::wire::{
    encode, reserved_bits, ExtensionHandshake, ExtensionHandshakeError, Handshake, HandshakeError,
    Limits, Message, MessageDecoder, WireError, HANDSHAKE_BYTES,
};
use crate::InfoHash;

/// Most `ut_metadata` requests in flight to one peer (libtorrent rejects
/// past a few queued).
pub const REQUESTS_IN_FLIGHT_MAX: usize = 2;
/// The id we ask peers to send `ut_metadata` messages under.
pub const OUR_UT_METADATA_ID: u8 = 3;
/// The id we ask peers to send `ut_pex` messages under.
pub const OUR_UT_PEX_ID: u8 = 1;
/// Most PEX-learned addresses reported per connection.
pub const PEX_PEERS_MAX: usize = 200;
/// Most bytes queued for the peer.
pub const OUTPUT_BYTES_MAX: usize = 64 * 1024;
/// What the wire decoder accepts: the defaults (piece count unknown, so any
/// bitfield up to the largest torrent's) with the largest block allowed, so
/// a peer's unsolicited piece messages are skipped rather than fatal.
pub const DECODER_LIMITS: Limits = Limits {
    block_bytes_max: BLOCK_BYTES_MAX_LIMIT,
    ..Limits::DEFAULT
};
/// Most received bytes held: the largest message plus one read.
pub const RECEIVE_BYTES_MAX: usize = DECODER_LIMITS.receive_buffer_bytes_max();
/// Bytes before an extended message's payload: length prefix, message id
/// and extension id.
const EXTENDED_HEADER_BYTES: usize = crate::limits::MESSAGE_PREFIX_BYTES + 2;
/// Client name sent in our extension handshake.
pub const CLIENT_NAME: &str = "ringseed";

const _: () = assert!(OUR_UT_METADATA_ID != OUR_UT_PEX_ID && OUR_UT_PEX_ID != 0);
const _: () = assert!(RECEIVE_BYTES_MAX >= HANDSHAKE_BYTES + RECEIVE_CHUNK_BYTES_MAX);

/// Why an exchange ended; each means "close the connection".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    #[error("bad handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("peer answered for info-hash {found}, not ours")]
    WrongInfoHash { found: String },
    #[error("peer does not speak the extension protocol (BEP 10)")]
    NoExtensionProtocol,
    #[error("peer broke the wire protocol: {0}")]
    Wire(#[from] WireError),
    #[error("bad extension handshake: {0}")]
    ExtensionHandshake(#[from] ExtensionHandshakeError),
    #[error("peer does not offer ut_metadata")]
    NoUtMetadata,
    #[error("peer announced no metadata_size")]
    NoMetadataSize,
    #[error("metadata refused: {0}")]
    Assembler(#[from] AssemblerError),
    #[error("bad ut_metadata message: {0}")]
    UtMetadata(#[from] UtMetadataError),
    #[error("peer sent {found} bytes with {held} held, over the {max}-byte receive limit")]
    ReceiveOverflow {
        found: usize,
        held: usize,
        max: usize,
    },
    #[error("timed out waiting for the peer's {waiting_for}")]
    Timeout { waiting_for: &'static str },
}

/// What happened on a connection that the caller must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExchangeEvent {
    /// The peer has the metadata (its extension handshake was accepted).
    HasMetadata { size: u64 },
    /// Addresses the peer sent in a `ut_pex` message.
    Peers(Vec<SocketAddr>),
    /// The info dictionary is complete and hashes to the info-hash.
    Complete(Vec<u8>),
    /// The assembled dictionary failed its hash: these connections' peers
    /// supplied it (this one may be among them).
    HashFailed { blamed: Vec<PeerKey> },
}

/// What the exchange is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    ExtensionHandshake,
    Ready { metadata_id: u8 },
}

/// One connection's metadata exchange.
#[derive(Debug)]
pub struct MetadataExchange {
    key: PeerKey,
    info_hash: InfoHash,
    listen_port: u16,
    timeout: Duration,
    started: Duration,
    state: State,
    decoder: MessageDecoder,
    received: Vec<u8>,
    output: Vec<u8>,
    in_flight: Vec<(u32, Duration)>,
    pex_reported: usize,
}

impl MetadataExchange {
    /// A new exchange known to the assembler as `key`, with our handshake
    /// queued. `listen_port` (0: none) goes into our extension handshake.
    pub fn new(
        key: PeerKey,
        info_hash: InfoHash,
        peer_id: [u8; 20],
        listen_port: u16,
        timeout: Duration,
        now: Duration,
    ) -> MetadataExchange {
        let handshake = Handshake {
            info_hash,
            peer_id,
            reserved: reserved_bits(true, false, false),
        };
        MetadataExchange {
            key,
            info_hash,
            listen_port,
            timeout,
            started: now,
            state: State::Handshake,
            decoder: MessageDecoder::new(DECODER_LIMITS),
            received: Vec::new(),
            output: handshake.encode().to_vec(),
            in_flight: Vec::new(),
            pex_reported: 0,
        }
    }

    pub fn key(&self) -> PeerKey {
        self.key
    }

    /// Bytes to send, oldest first.
    pub fn pending_output(&self) -> &[u8] {
        &self.output
    }

    /// `n` bytes of [`pending_output`](Self::pending_output) were sent.
    pub fn output_written(&mut self, n: usize) {
        self.output.drain(..n.min(self.output.len()));
    }

    /// How many bytes [`receive`](Self::receive) accepts now (read at most
    /// this much from the socket).
    pub fn receive_room(&self) -> usize {
        RECEIVE_BYTES_MAX.saturating_sub(self.received.len())
    }

    /// Feeds bytes from the peer.
    pub fn receive(
        &mut self,
        bytes: &[u8],
        now: Duration,
        assembler: &mut MetadataAssembler,
    ) -> Result<Vec<ExchangeEvent>, ExchangeError> {
        if bytes.len() > self.receive_room() {
            return Err(ExchangeError::ReceiveOverflow {
                found: bytes.len(),
                held: self.received.len(),
                max: RECEIVE_BYTES_MAX,
            });
        }
        self.received.extend_from_slice(bytes);
        let mut events = Vec::new();
        let result = self.process(now, assembler, &mut events);
        result.map(|()| events)
    }

    fn process(
        &mut self,
        now: Duration,
        assembler: &mut MetadataAssembler,
        events: &mut Vec<ExchangeEvent>,
    ) -> Result<(), ExchangeError> {
        let mut at = 0;
        if self.state == State::Handshake {
            let Some(theirs) = Handshake::decode(&self.received)? else {
                return Ok(());
            };
            if theirs.info_hash != self.info_hash {
                return Err(ExchangeError::WrongInfoHash {
                    found: theirs.info_hash.to_hex(),
                });
            }
            if !theirs.supports_extension_protocol() {
                return Err(ExchangeError::NoExtensionProtocol);
            }
            at = HANDSHAKE_BYTES;
            self.send_extension_handshake();
            self.state = State::ExtensionHandshake;
        }
        let mut failure = None;
        loop {
            let rest = self.received.get(at..).unwrap_or_default();
            let (message, used) = match self.decoder.decode(rest) {
                Ok(Some(found)) => found,
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e.into());
                    break;
                }
            };
            at += used;
            if let Message::Extended { id, payload } = message {
                // The payload borrows `received`; copy it out only when needed.
                let payload = payload.to_vec();
                if let Err(e) = self.on_extended(id, &payload, now, assembler, events) {
                    failure = Some(e);
                    break;
                }
            }
        }
        self.received.drain(..at.min(self.received.len()));
        if let Some(e) = failure {
            return Err(e);
        }
        self.fill_requests(now, assembler);
        Ok(())
    }

    fn send_extension_handshake(&mut self) {
        let ours = ExtensionHandshake {
            m: vec![
                (ut_metadata::EXTENSION_NAME.to_string(), OUR_UT_METADATA_ID),
                (ut_pex::EXTENSION_NAME.to_string(), OUR_UT_PEX_ID),
            ],
            v: Some(CLIENT_NAME.to_string()),
            p: (self.listen_port != 0).then_some(self.listen_port),
            ..ExtensionHandshake::default()
        };
        let payload = ours.encode();
        self.send_extended(0, &payload);
    }

    fn send_extended(&mut self, id: u8, payload: &[u8]) {
        encode(&Message::Extended { id, payload }, &mut self.output);
    }

    fn on_extended(
        &mut self,
        id: u8,
        payload: &[u8],
        now: Duration,
        assembler: &mut MetadataAssembler,
        events: &mut Vec<ExchangeEvent>,
    ) -> Result<(), ExchangeError> {
        match (id, self.state) {
            (0, State::ExtensionHandshake) => {
                let theirs = ExtensionHandshake::parse(payload)?;
                let metadata_id = theirs
                    .extension_id(ut_metadata::EXTENSION_NAME)
                    .ok_or(ExchangeError::NoUtMetadata)?;
                let size = theirs.metadata_size.ok_or(ExchangeError::NoMetadataSize)?;
                assembler.add_peer(self.key, size)?;
                self.state = State::Ready { metadata_id };
                events.push(ExchangeEvent::HasMetadata { size });
            }
            (OUR_UT_METADATA_ID, State::Ready { metadata_id }) => {
                match MetadataMessage::parse(payload)? {
                    MetadataMessage::Request { piece } => {
                        let mut reply = Vec::new();
                        MetadataMessage::Reject { piece }.encode(&mut reply);
                        if self.output.len() + EXTENDED_HEADER_BYTES + reply.len()
                            <= OUTPUT_BYTES_MAX
                        {
                            self.send_extended(metadata_id, &reply);
                        }
                    }
                    MetadataMessage::Reject { piece } => {
                        self.in_flight.retain(|(p, _)| *p != piece);
                        assembler.on_reject(self.key, piece, now);
                    }
                    MetadataMessage::Data {
                        piece,
                        total_size,
                        data,
                    } => {
                        self.in_flight.retain(|(p, _)| *p != piece);
                        match assembler.on_data(self.key, piece, total_size, data)? {
                            DataOutcome::Stored | DataOutcome::Ignored => {}
                            DataOutcome::Complete(info) => {
                                events.push(ExchangeEvent::Complete(info))
                            }
                            DataOutcome::HashFailed { blamed } => {
                                events.push(ExchangeEvent::HashFailed { blamed })
                            }
                        }
                    }
                }
            }
            (OUR_UT_PEX_ID, _) => {
                let room = PEX_PEERS_MAX - self.pex_reported;
                if let (Ok(pex), true) = (PexMessage::parse(payload), room > 0) {
                    let peers: Vec<SocketAddr> =
                        pex.added.into_iter().map(|(a, _)| a).take(room).collect();
                    self.pex_reported += peers.len();
                    if !peers.is_empty() {
                        events.push(ExchangeEvent::Peers(peers));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn fill_requests(&mut self, now: Duration, assembler: &mut MetadataAssembler) {
        let State::Ready { metadata_id } = self.state else {
            return;
        };
        while self.in_flight.len() < REQUESTS_IN_FLIGHT_MAX {
            let Some(piece) = assembler.next_request(self.key, now) else {
                break;
            };
            let mut payload = Vec::new();
            MetadataMessage::Request { piece }.encode(&mut payload);
            self.send_extended(metadata_id, &payload);
            self.in_flight.push((piece, now));
        }
    }

    /// Checks the timeouts and sends requests the assembler has freed up
    /// since the last call (after a timeout or reject elsewhere).
    pub fn tick(
        &mut self,
        now: Duration,
        assembler: &mut MetadataAssembler,
    ) -> Result<(), ExchangeError> {
        let expired = |since: Duration| now.saturating_sub(since) >= self.timeout;
        match self.state {
            State::Handshake if expired(self.started) => {
                return Err(ExchangeError::Timeout {
                    waiting_for: "handshake",
                })
            }
            State::ExtensionHandshake if expired(self.started) => {
                return Err(ExchangeError::Timeout {
                    waiting_for: "extension handshake",
                })
            }
            _ => {}
        }
        if self.in_flight.iter().any(|&(_, at)| expired(at)) {
            return Err(ExchangeError::Timeout {
                waiting_for: "metadata piece",
            });
        }
        self.fill_requests(now, assembler);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
