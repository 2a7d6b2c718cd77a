//! `Responder`: the MSE handshake of the side that was dialled. It answers
//! `Ya` with `Yb, PadB`, searches the initiator's stream for
//! `HASH('req1', S)` within 628 bytes, maps `HASH('req2', SKEY)` to a torrent
//! through the caller's [`TorrentLookup`], reads the encrypted offer
//! (VC, `crypto_provide`, PadC, IA), selects a method by the caller's policy
//! and sends `ENCRYPT(VC, crypto_select, len(PadD), PadD)`. Rules are in the
//! module header (`mse/mod.rs`).

use super::dh::{self, PrivateKey};
use super::{
    find, hash, streams, take_array, CryptoMethod, CryptoSet, Established, MseError, Progress,
    Rc4Stream, TorrentLookup, HASH_BYTES, PAD_BYTES_MAX, PUBLIC_KEY_BYTES, VC,
};
use crate::InfoHash;

/// Bytes after `Ya` within which `HASH('req1', S)` must end (PadA + hash).
const REQ1_SEARCH_BYTES: usize = PAD_BYTES_MAX + HASH_BYTES;

/// What the responder is told to do; every random value comes from the caller.
#[derive(Debug, Clone)]
pub struct ResponderConfig {
    /// Our private key, drawn at random.
    pub private_key: PrivateKey,
    /// PadB: 0..=512 random bytes sent in the clear after `Yb`.
    pub pad: Vec<u8>,
    /// Length of PadD (0..=512), sent encrypted (its bytes are zeros).
    pub encrypted_pad_len: usize,
    /// The methods we accept; plaintext is chosen when both sides allow it.
    pub allowed: CryptoSet,
}

struct Keyed {
    secret: [u8; PUBLIC_KEY_BYTES],
}

struct Streams {
    info_hash: InfoHash,
    enc: Rc4Stream,
    dec: Rc4Stream,
}

enum State {
    AwaitYa,
    AwaitReq1(Keyed),
    AwaitSkey(Keyed),
    AwaitProvide(Streams),
    AwaitPadC(Streams, CryptoMethod, usize),
    AwaitIa(Streams, CryptoMethod, usize),
    Done(Box<Established>),
    Ended,
}

/// The dialled side of an MSE handshake; `L` finds the torrent asked for.
pub struct Responder<L> {
    config: ResponderConfig,
    lookup: L,
    state: State,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl<L> std::fmt::Debug for Responder<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("buffered", &self.buf.len())
            .field("to_send", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl<L: TorrentLookup> Responder<L> {
    /// A responder waiting for `Ya`.
    pub fn new(config: ResponderConfig, lookup: L) -> Result<Responder<L>, MseError> {
        if config.pad.len() > PAD_BYTES_MAX {
            return Err(MseError::OurPadTooLong(config.pad.len()));
        }
        if config.encrypted_pad_len > PAD_BYTES_MAX {
            return Err(MseError::OurPadTooLong(config.encrypted_pad_len));
        }
        if config.allowed.intersect(CryptoSet::BOTH).0 == 0 {
            return Err(MseError::NoMethodConfigured(config.allowed.0));
        }
        Ok(Responder {
            config,
            lookup,
            state: State::AwaitYa,
            buf: Vec::new(),
            out: Vec::new(),
        })
    }

    /// The bytes to send now (empties the queue).
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Feeds bytes read from the peer. After an error the machine is ended.
    pub fn receive(&mut self, data: &[u8]) -> Result<Progress, MseError> {
        super::feed(self, data)
    }

    /// The outcome, once [`Progress::Done`] was returned (then `None` after).
    pub fn established(&mut self) -> Option<Established> {
        super::established(self)
    }

    fn advance(&mut self) -> Result<Progress, MseError> {
        loop {
            let state = std::mem::replace(&mut self.state, State::Ended);
            self.state = match state {
                State::AwaitYa => {
                    let Some(ya) = take_array::<PUBLIC_KEY_BYTES>(&mut self.buf) else {
                        self.state = State::AwaitYa;
                        return Ok(Progress::Pending);
                    };
                    let secret = dh::shared_secret(&self.config.private_key, &ya)?;
                    self.out
                        .extend_from_slice(&dh::public_key(&self.config.private_key));
                    self.out.extend_from_slice(&self.config.pad);
                    State::AwaitReq1(Keyed { secret })
                }
                State::AwaitReq1(keyed) => {
                    let req1 = hash(b"req1", &[&keyed.secret]);
                    let window = self.buf.len().min(REQ1_SEARCH_BYTES);
                    match find(&self.buf[..window], &req1) {
                        Some(at) => {
                            self.buf.drain(..at + HASH_BYTES);
                            State::AwaitSkey(keyed)
                        }
                        None if self.buf.len() >= REQ1_SEARCH_BYTES => {
                            return Err(MseError::Req1NotFound)
                        }
                        None => {
                            self.state = State::AwaitReq1(keyed);
                            return Ok(Progress::Pending);
                        }
                    }
                }
                State::AwaitSkey(keyed) => {
                    let Some(xored) = take_array::<HASH_BYTES>(&mut self.buf) else {
                        self.state = State::AwaitSkey(keyed);
                        return Ok(Progress::Pending);
                    };
                    let req3 = hash(b"req3", &[&keyed.secret]);
                    let mut req2 = [0u8; HASH_BYTES];
                    for (r, (a, b)) in req2.iter_mut().zip(xored.iter().zip(req3.iter())) {
                        *r = a ^ b;
                    }
                    let info_hash = self.lookup.find(&req2).ok_or(MseError::UnknownInfoHash)?;
                    let (enc, dec) = streams(&keyed.secret, &info_hash, false);
                    State::AwaitProvide(Streams {
                        info_hash,
                        enc,
                        dec,
                    })
                }
                State::AwaitProvide(mut s) => {
                    let Some(mut field) = take_array::<14>(&mut self.buf) else {
                        self.state = State::AwaitProvide(s);
                        return Ok(Progress::Pending);
                    };
                    s.dec.apply(&mut field);
                    let [v0, v1, v2, v3, v4, v5, v6, v7, p0, p1, p2, p3, l0, l1] = field;
                    if [v0, v1, v2, v3, v4, v5, v6, v7] != VC {
                        return Err(MseError::BadVc);
                    }
                    let provided = u32::from_be_bytes([p0, p1, p2, p3]);
                    let len = u16::from_be_bytes([l0, l1]);
                    if usize::from(len) > PAD_BYTES_MAX {
                        return Err(MseError::PadTooLong(len));
                    }
                    let common = CryptoSet(provided).intersect(self.config.allowed);
                    let method = if common.contains(CryptoSet::PLAINTEXT) {
                        CryptoMethod::Plaintext
                    } else if common.contains(CryptoSet::RC4) {
                        CryptoMethod::Rc4
                    } else {
                        return Err(MseError::NoCommonMethod {
                            provided,
                            allowed: self.config.allowed.0,
                        });
                    };
                    State::AwaitPadC(s, method, usize::from(len))
                }
                State::AwaitPadC(mut s, method, len) => {
                    if self.buf.len() < len + 2 {
                        self.state = State::AwaitPadC(s, method, len);
                        return Ok(Progress::Pending);
                    }
                    let mut field = [0u8; PAD_BYTES_MAX + 2];
                    let field = &mut field[..len + 2];
                    field.copy_from_slice(&self.buf[..len + 2]);
                    self.buf.drain(..len + 2);
                    s.dec.apply(field);
                    // len + 2 bytes: the pad, then IA's length.
                    let ia_len = usize::from(u16::from_be_bytes([field[len], field[len + 1]]));
                    State::AwaitIa(s, method, ia_len)
                }
                State::AwaitIa(mut s, method, ia_len) => {
                    if self.buf.len() < ia_len {
                        self.state = State::AwaitIa(s, method, ia_len);
                        return Ok(Progress::Pending);
                    }
                    let mut initial_payload: Vec<u8> = self.buf.drain(..ia_len).collect();
                    s.dec.apply(&mut initial_payload);
                    let pad_len = self.config.encrypted_pad_len;
                    let mut reply = Vec::with_capacity(14 + pad_len);
                    reply.extend_from_slice(&VC);
                    reply.extend_from_slice(&method.as_set().0.to_be_bytes());
                    // Checked in `new`: at most 512.
                    reply.extend_from_slice(&(pad_len as u16).to_be_bytes());
                    reply.resize(reply.len() + pad_len, 0);
                    s.enc.apply(&mut reply);
                    self.out.extend_from_slice(&reply);
                    let mut remaining = std::mem::take(&mut self.buf);
                    let (encryptor, decryptor) = match method {
                        CryptoMethod::Plaintext => (None, None),
                        CryptoMethod::Rc4 => {
                            s.dec.apply(&mut remaining);
                            (Some(s.enc), Some(s.dec))
                        }
                    };
                    self.state = State::Done(Box::new(Established {
                        method,
                        encryptor,
                        decryptor,
                        remaining,
                        info_hash: s.info_hash,
                        initial_payload,
                    }));
                    return Ok(Progress::Done);
                }
                State::Done(_) | State::Ended => return Err(MseError::Ended),
            };
        }
    }
}

impl_machine!(impl[L: TorrentLookup] Responder<L>);
