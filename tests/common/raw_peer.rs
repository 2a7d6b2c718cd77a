//! A raw BitTorrent peer for the engine's tests: the wire written by hand
//! (with ringseed's codec for decoding), every read bounded, so a test can
//! break the protocol on purpose or fetch a block and check it.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

use ringseed::wire::{Handshake, Limits, Message, MessageDecoder, HANDSHAKE_BYTES};
use ringseed::InfoHash;

/// Longest a connect may take on loopback.
pub const CONNECT_WAIT_MAX: Duration = Duration::from_secs(5);
/// Longest the handshake reply may take.
pub const HANDSHAKE_WAIT_MAX: Duration = Duration::from_secs(10);
/// Longest a peer waits to be unchoked and served one block.
pub const BLOCK_WAIT_MAX: Duration = Duration::from_secs(20);
/// One read's timeout; every loop around it also checks its own deadline.
pub const READ_SLICE: Duration = Duration::from_millis(200);

/// A message from the other side, owned.
#[derive(Debug)]
pub enum Got {
    Unchoke,
    Choke,
    Piece {
        piece: u32,
        offset: u32,
        block: Vec<u8>,
    },
    Reject {
        piece: u32,
        offset: u32,
    },
    #[allow(dead_code, reason = "shown through Debug in failure messages")]
    Other(&'static str),
}

/// Why reading stopped.
#[derive(Debug)]
pub enum End {
    /// EOF or reset: the other side closed.
    Closed(&'static str),
    TimedOut,
    Failed(String),
}

pub struct RawPeer {
    pub stream: TcpStream,
    pub local: SocketAddr,
    buf: Vec<u8>,
    decoder: MessageDecoder,
}

pub fn our_handshake(info_hash: InfoHash, reserved: [u8; 8], tag: u8) -> [u8; HANDSHAKE_BYTES] {
    let mut peer_id = *b"-HT0001-000000000000";
    peer_id[19] = tag;
    Handshake {
        info_hash,
        peer_id,
        reserved,
    }
    .encode()
}

pub fn is_close(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

impl RawPeer {
    /// Connects from `src` (any port) to `dst`.
    pub fn connect(src: Ipv4Addr, dst: SocketAddr, pieces: u32) -> Result<RawPeer, String> {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .map_err(|e| format!("socket: {e}"))?;
        let from = SocketAddr::V4(SocketAddrV4::new(src, 0));
        sock.bind(&from.into())
            .map_err(|e| format!("bind {from}: {e}"))?;
        sock.connect_timeout(&dst.into(), CONNECT_WAIT_MAX)
            .map_err(|e| format!("connect {src} -> {dst}: {e}"))?;
        RawPeer::from_stream(sock.into(), pieces)
    }

    /// A raw peer on a connection the other side opened (accepted here).
    pub fn from_stream(stream: TcpStream, pieces: u32) -> Result<RawPeer, String> {
        stream
            .set_read_timeout(Some(READ_SLICE))
            .and_then(|()| stream.set_write_timeout(Some(CONNECT_WAIT_MAX)))
            .map_err(|e| format!("timeouts: {e}"))?;
        let local = stream
            .local_addr()
            .map_err(|e| format!("local_addr: {e}"))?;
        let limits = Limits {
            block_bytes_max: 128 * 1024,
            ..Limits::for_pieces(pieces)
        };
        Ok(RawPeer {
            stream,
            local,
            buf: Vec::new(),
            decoder: MessageDecoder::new(limits),
        })
    }

    /// Writes all of `bytes`; a reset or broken pipe is [`End::Closed`].
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), End> {
        match self.stream.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(e) if is_close(e.kind()) => Err(End::Closed("reset while writing")),
            Err(e) => Err(End::Failed(format!("write: {e}"))),
        }
    }

    /// One read into the buffer, or an [`End`] once `deadline` passes.
    pub fn fill(&mut self, deadline: Instant) -> Result<(), End> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(End::Closed("EOF")),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if is_close(e.kind()) => return Err(End::Closed("reset")),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if Instant::now() >= deadline {
                        return Err(End::TimedOut);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(End::Failed(format!("read: {e}"))),
            }
        }
    }

    /// Sends our handshake and reads the reply.
    pub fn handshake(&mut self, hs: &[u8; HANDSHAKE_BYTES]) -> Result<Handshake, End> {
        self.send(hs)?;
        let deadline = Instant::now() + HANDSHAKE_WAIT_MAX;
        loop {
            match Handshake::decode(&self.buf) {
                Ok(Some(h)) => {
                    self.buf.drain(..HANDSHAKE_BYTES);
                    return Ok(h);
                }
                Ok(None) => self.fill(deadline)?,
                Err(e) => return Err(End::Failed(format!("bad handshake reply: {e}"))),
            }
        }
    }

    /// The next message, waiting until `deadline`.
    pub fn next(&mut self, deadline: Instant) -> Result<Got, End> {
        loop {
            let got = match self.decoder.decode(&self.buf) {
                Ok(Some((m, n))) => {
                    let got = match m {
                        Message::Unchoke => Got::Unchoke,
                        Message::Choke => Got::Choke,
                        Message::Piece {
                            piece,
                            offset,
                            block,
                        } => Got::Piece {
                            piece,
                            offset,
                            block: block.to_vec(),
                        },
                        Message::RejectRequest { piece, offset, .. } => {
                            Got::Reject { piece, offset }
                        }
                        other => Got::Other(other.name()),
                    };
                    Some((got, n))
                }
                Ok(None) => None,
                Err(e) => return Err(End::Failed(format!("bad message from the seeder: {e}"))),
            };
            match got {
                Some((g, n)) => {
                    self.buf.drain(..n);
                    return Ok(g);
                }
                None => self.fill(deadline)?,
            }
        }
    }

    /// Reads and discards until the other side closes; `Ok(how)` if it does
    /// within `timeout`.
    pub fn wait_closed(&mut self, timeout: Duration) -> Result<&'static str, String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.buf.clear();
            match self.fill(deadline) {
                Ok(()) => {}
                Err(End::Closed(how)) => return Ok(how),
                Err(End::TimedOut) => return Err(format!("still open after {timeout:?}")),
                Err(End::Failed(e)) => return Err(e),
            }
        }
    }

    /// Interested, wait for unchoke, request one block, return its bytes.
    pub fn fetch_block(&mut self, piece: u32, offset: u32, length: u32) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + BLOCK_WAIT_MAX;
        let mut msg = Vec::new();
        ringseed::wire::encode(&Message::Interested, &mut msg);
        self.send(&msg)
            .map_err(|e| format!("sending interested: {e:?}"))?;
        let mut seen = Vec::new();
        loop {
            match self.next(deadline) {
                Ok(Got::Unchoke) => break,
                Ok(g) => seen.push(format!("{g:?}")),
                Err(e) => return Err(format!("waiting for unchoke: {e:?}; saw {seen:?}")),
            }
        }
        msg.clear();
        ringseed::wire::encode(
            &Message::Request {
                piece,
                offset,
                length,
            },
            &mut msg,
        );
        self.send(&msg)
            .map_err(|e| format!("sending request: {e:?}"))?;
        loop {
            match self.next(deadline) {
                Ok(Got::Piece {
                    piece: p,
                    offset: o,
                    block,
                }) if p == piece && o == offset => return Ok(block),
                Ok(Got::Reject {
                    piece: p,
                    offset: o,
                }) if p == piece && o == offset => return Err("the request was rejected".into()),
                Ok(Got::Choke) => return Err("choked while waiting for the block".into()),
                Ok(g) => seen.push(format!("{g:?}")),
                Err(e) => return Err(format!("waiting for the block: {e:?}; saw {seen:?}")),
            }
        }
    }
}
