//! `Initiator`: the MSE handshake of the side that dialled. It sends `Ya,
//! PadA` at once, answers `Yb` with the `req1`/`req2 xor req3` hashes and the
//! encrypted offer (VC, `crypto_provide`, PadC, IA), then searches the
//! responder's stream for `ENCRYPT(VC)` within 616 bytes and reads its
//! `crypto_select` and PadD. Rules are in the module header (`mse/mod.rs`).

use super::dh::{self, PrivateKey};
use super::{
    find, hash, streams, take_array, CryptoMethod, CryptoSet, Established, MseError, Progress,
    Rc4Stream, HASH_BYTES, INITIAL_PAYLOAD_BYTES_MAX, PAD_BYTES_MAX, PUBLIC_KEY_BYTES, VC,
};
use crate::InfoHash;

/// Bytes after `Yb` within which `ENCRYPT(VC)` must end (PadB + VC).
const VC_SEARCH_BYTES: usize = PAD_BYTES_MAX + VC.len();

/// What the initiator is told to do; every random value comes from the caller.
#[derive(Debug, Clone)]
pub struct InitiatorConfig {
    /// The torrent we dial for (SKEY).
    pub info_hash: InfoHash,
    /// Our private key, drawn at random.
    pub private_key: PrivateKey,
    /// PadA: 0..=512 random bytes sent in the clear after `Ya`.
    pub pad: Vec<u8>,
    /// Length of PadC (0..=512), sent encrypted (its bytes are zeros).
    pub encrypted_pad_len: usize,
    /// `crypto_provide`: the methods we accept for the payload.
    pub provide: CryptoSet,
    /// IA: the first payload bytes (usually the BitTorrent handshake), at most
    /// 65,535, sent RC4-encrypted whatever the selection.
    pub initial_payload: Vec<u8>,
}

enum State {
    AwaitYb,
    AwaitVc {
        encvc: [u8; 8],
        enc: Rc4Stream,
        dec: Rc4Stream,
    },
    AwaitSelect {
        enc: Rc4Stream,
        dec: Rc4Stream,
    },
    AwaitPadD {
        enc: Rc4Stream,
        dec: Rc4Stream,
        method: CryptoMethod,
        len: usize,
    },
    Done(Box<Established>),
    Ended,
}

/// The dialling side of an MSE handshake.
pub struct Initiator {
    config: InitiatorConfig,
    state: State,
    /// Bytes from the peer not yet consumed.
    buf: Vec<u8>,
    /// Bytes to send to the peer.
    out: Vec<u8>,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator")
            .field("buffered", &self.buf.len())
            .field("to_send", &self.out.len())
            .finish_non_exhaustive()
    }
}

impl Initiator {
    /// Starts the handshake; `Ya, PadA` are queued for [`Initiator::take_outgoing`].
    pub fn new(config: InitiatorConfig) -> Result<Initiator, MseError> {
        if config.pad.len() > PAD_BYTES_MAX {
            return Err(MseError::OurPadTooLong(config.pad.len()));
        }
        if config.encrypted_pad_len > PAD_BYTES_MAX {
            return Err(MseError::OurPadTooLong(config.encrypted_pad_len));
        }
        if config.initial_payload.len() > INITIAL_PAYLOAD_BYTES_MAX {
            return Err(MseError::OurInitialPayloadTooLong(
                config.initial_payload.len(),
            ));
        }
        if config.provide.intersect(CryptoSet::BOTH).0 == 0 {
            return Err(MseError::NoMethodConfigured(config.provide.0));
        }
        let mut out = Vec::with_capacity(PUBLIC_KEY_BYTES + config.pad.len());
        out.extend_from_slice(&dh::public_key(&config.private_key));
        out.extend_from_slice(&config.pad);
        Ok(Initiator {
            config,
            state: State::AwaitYb,
            buf: Vec::new(),
            out,
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
                State::AwaitYb => {
                    let Some(yb) = take_array::<PUBLIC_KEY_BYTES>(&mut self.buf) else {
                        self.state = State::AwaitYb;
                        return Ok(Progress::Pending);
                    };
                    self.send_offer(&yb)?
                }
                State::AwaitVc { encvc, enc, dec } => {
                    let window = self.buf.len().min(VC_SEARCH_BYTES);
                    match find(&self.buf[..window], &encvc) {
                        Some(at) => {
                            self.buf.drain(..at + encvc.len());
                            State::AwaitSelect { enc, dec }
                        }
                        None if self.buf.len() >= VC_SEARCH_BYTES => {
                            return Err(MseError::VcNotFound)
                        }
                        None => {
                            self.state = State::AwaitVc { encvc, enc, dec };
                            return Ok(Progress::Pending);
                        }
                    }
                }
                State::AwaitSelect { enc, mut dec } => {
                    let Some(mut field) = take_array::<6>(&mut self.buf) else {
                        self.state = State::AwaitSelect { enc, dec };
                        return Ok(Progress::Pending);
                    };
                    dec.apply(&mut field);
                    let [s0, s1, s2, s3, l0, l1] = field;
                    let selected = u32::from_be_bytes([s0, s1, s2, s3]);
                    let len = u16::from_be_bytes([l0, l1]);
                    let provided = self.config.provide.0;
                    let method = if selected == CryptoSet::PLAINTEXT.0 {
                        CryptoMethod::Plaintext
                    } else if selected == CryptoSet::RC4.0 {
                        CryptoMethod::Rc4
                    } else {
                        return Err(MseError::SelectNotOffered { selected, provided });
                    };
                    if !self.config.provide.contains(method.as_set()) {
                        return Err(MseError::SelectNotOffered { selected, provided });
                    }
                    if usize::from(len) > PAD_BYTES_MAX {
                        return Err(MseError::PadTooLong(len));
                    }
                    State::AwaitPadD {
                        enc,
                        dec,
                        method,
                        len: usize::from(len),
                    }
                }
                State::AwaitPadD {
                    enc,
                    mut dec,
                    method,
                    len,
                } => {
                    if self.buf.len() < len {
                        self.state = State::AwaitPadD {
                            enc,
                            dec,
                            method,
                            len,
                        };
                        return Ok(Progress::Pending);
                    }
                    let mut pad: Vec<u8> = self.buf.drain(..len).collect();
                    dec.apply(&mut pad);
                    let mut remaining = std::mem::take(&mut self.buf);
                    let (encryptor, decryptor) = match method {
                        CryptoMethod::Plaintext => (None, None),
                        CryptoMethod::Rc4 => {
                            dec.apply(&mut remaining);
                            (Some(enc), Some(dec))
                        }
                    };
                    self.state = State::Done(Box::new(Established {
                        method,
                        encryptor,
                        decryptor,
                        remaining,
                        info_hash: self.config.info_hash,
                        initial_payload: Vec::new(),
                    }));
                    return Ok(Progress::Done);
                }
                State::Done(_) | State::Ended => return Err(MseError::Ended),
            };
        }
    }

    /// Step 3 on receipt of `Yb`; returns the state that searches for VC.
    fn send_offer(&mut self, yb: &[u8; PUBLIC_KEY_BYTES]) -> Result<State, MseError> {
        let secret = dh::shared_secret(&self.config.private_key, yb)?;
        let skey = self.config.info_hash;
        let req2 = hash(b"req2", &[&skey.0]);
        let req3 = hash(b"req3", &[&secret]);
        let mut xored = [0u8; HASH_BYTES];
        for (x, (a, b)) in xored.iter_mut().zip(req2.iter().zip(req3.iter())) {
            *x = a ^ b;
        }
        let (mut enc, mut dec) = streams(&secret, &skey, true);
        let ia = &self.config.initial_payload;
        let mut header = Vec::with_capacity(16 + self.config.encrypted_pad_len + ia.len());
        header.extend_from_slice(&VC);
        header.extend_from_slice(&self.config.provide.0.to_be_bytes());
        // Both lengths were checked in `new` (<= 512, <= 65,535).
        header.extend_from_slice(&(self.config.encrypted_pad_len as u16).to_be_bytes());
        header.resize(header.len() + self.config.encrypted_pad_len, 0);
        header.extend_from_slice(&(ia.len() as u16).to_be_bytes());
        header.extend_from_slice(ia);
        enc.apply(&mut header);
        self.out.extend_from_slice(&hash(b"req1", &[&secret]));
        self.out.extend_from_slice(&xored);
        self.out.extend_from_slice(&header);
        let mut encvc = VC;
        dec.apply(&mut encvc);
        Ok(State::AwaitVc { encvc, enc, dec })
    }
}

impl_machine!(impl[] Initiator);
