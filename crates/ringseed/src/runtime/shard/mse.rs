//! The obfuscated handshake (MSE/PE) of a shard's connections: carrying out
//! the sans-IO machines of `crate::mse` on a connection, and the policy
//! (`Settings::encryption`) at the points where a connection is accepted,
//! dialled, routed and dropped.
//!
//! - An incoming connection whose first bytes are not the plaintext
//!   handshake's is answered as an MSE responder on the shard that accepted
//!   it; the responder names the torrent through the shard's [`Req2Table`]
//!   (every torrent of the session), and once the handshake ends the
//!   connection is routed as any other, with its initial payload and the
//!   bytes after it as its first received bytes (decrypted), handed to the
//!   owning shard with its RC4 streams when that is another.
//! - A dial that the policy says to obfuscate starts the initiator once
//!   connected and attaches to its torrent once the handshake ends.
//! - A dial whose form was refused (an obfuscated handshake that failed, or
//!   a plaintext connection the peer closed before sending a byte) is
//!   reported to the engine, whose peer list tries the other form next when
//!   the policy allows both.
//! - Random values (private keys from the OS, padding lengths and bytes
//!   from the shard's generator) are drawn here; the machines read none.
//!
//! A handshake costs two 768-bit modular exponentiations on the shard's
//! thread; it is bounded, like routing, by `ROUTING_TIMEOUT`.

use super::conn::{ConnId, ConnState, Handshake, OutItem, Rc4Pair};
use super::Shard;
use crate::mse::{
    Established, Initiator, InitiatorConfig, MseError, PrivateKey, Progress, Responder,
    ResponderConfig, PAD_BYTES_MAX, PRIVATE_KEY_BYTES,
};
use crate::runtime::session::types::TorrentId;
use crate::wire::handshake::PROTOCOL;

/// Whether `received` (the first bytes of an incoming connection) could be
/// the start of a plaintext handshake (`19`, "BitTorrent protocol"); an
/// MSE public key matches its first 20 bytes with odds of 2^-160.
pub(super) fn looks_plaintext(received: &[u8]) -> bool {
    let mut header = [0u8; 20];
    header[0] = PROTOCOL.len() as u8;
    header[1..].copy_from_slice(PROTOCOL);
    let n = received.len().min(header.len());
    received[..n] == header[..n]
}

impl Shard {
    /// A private key from the OS's random source (the shard's generator if
    /// that fails: the handshake is obfuscation, not secrecy).
    fn mse_private_key(&mut self) -> PrivateKey {
        let mut key = [0u8; PRIVATE_KEY_BYTES];
        // SAFETY: getrandom writes at most `key.len()` bytes into `key`.
        let got = unsafe { libc::getrandom(key.as_mut_ptr().cast(), key.len(), 0) };
        if usize::try_from(got).ok() != Some(key.len()) {
            self.rng.fill(&mut key);
        }
        PrivateKey(key)
    }

    /// Random padding of 0..=512 bytes.
    fn mse_pad(&mut self) -> Vec<u8> {
        let len = self.rng.below_usize(PAD_BYTES_MAX + 1);
        self.rng.bytes(len)
    }

    /// An incoming connection began with something other than a plaintext
    /// handshake: answer it as an MSE responder (or drop it, when the policy
    /// disables encryption).
    pub(super) fn start_answer(&mut self, id: ConnId) {
        let policy = self.settings.encryption();
        let Some(addr) = self.conns.get(id).map(|c| c.addr) else {
            return;
        };
        if !policy.accept_obfuscated() {
            self.log.line(
                self.now,
                format!("peer {addr} dropped: encrypted (MSE) handshake, encryption is disabled"),
            );
            self.drop_conn(id, false);
            return;
        }
        let config = ResponderConfig {
            private_key: self.mse_private_key(),
            pad: self.mse_pad(),
            encrypted_pad_len: 0,
            allowed: policy.level.as_set(),
        };
        let machine = match Responder::new(config, self.req2.clone()) {
            Ok(m) => m,
            Err(e) => {
                self.log.line(self.now, format!("peer {addr} dropped: {e}"));
                self.drop_conn(id, false);
                return;
            }
        };
        if let Some(c) = self.conns.get_mut(id) {
            c.state = ConnState::Handshake { torrent: None };
            c.mse = Some(Box::new(Handshake::Answer(machine)));
        }
        self.handshake_input(id);
    }

    /// A dial that starts obfuscated has connected: send `Ya, PadA`.
    pub(super) fn start_dial_handshake(&mut self, id: ConnId, t: TorrentId) {
        let Some(info_hash) = self.torrents.get(t).map(|e| e.info_hash) else {
            self.drop_conn(id, false);
            return;
        };
        let config = InitiatorConfig {
            info_hash,
            private_key: self.mse_private_key(),
            pad: self.mse_pad(),
            encrypted_pad_len: 0,
            provide: self.settings.encryption().level.as_set(),
            initial_payload: Vec::new(),
        };
        let machine = match Initiator::new(config) {
            Ok(m) => m,
            Err(e) => {
                self.handshake_failed(id, &e);
                return;
            }
        };
        if let Some(c) = self.conns.get_mut(id) {
            c.state = ConnState::Handshake { torrent: Some(t) };
            c.mse = Some(Box::new(Handshake::Dial(machine)));
        }
        self.handshake_input(id);
    }

    /// Feeds the connection's received bytes to its handshake, sends what
    /// the handshake answers, and carries out its end.
    pub(super) fn handshake_input(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(id) else {
            return;
        };
        let data = std::mem::take(&mut c.inbuf);
        let Some(machine) = c.mse.as_mut() else {
            return;
        };
        let progress = if data.is_empty() {
            Ok(Progress::Pending)
        } else {
            machine.receive(&data)
        };
        let out = machine.take_outgoing();
        let established = match progress {
            Ok(Progress::Done) => machine.established(),
            _ => None,
        };
        if !out.is_empty() {
            c.out.push_back(OutItem::Sealed(out));
        }
        if c.state == ConnState::Closing {
            return;
        }
        match progress {
            Ok(Progress::Pending) => {
                self.try_send(id);
                self.start_recv(id);
            }
            Ok(Progress::Done) => match established {
                Some(e) => {
                    self.try_send(id);
                    self.handshake_done(id, e);
                }
                None => self.handshake_failed(id, &MseError::Ended),
            },
            Err(e) => self.handshake_failed(id, &e),
        }
    }

    /// The handshake ended well: keep the streams, put the payload that
    /// came with it first in the received bytes, then route (incoming) or
    /// attach (a dial).
    fn handshake_done(&mut self, id: ConnId, e: Established) {
        let Some(c) = self.conns.get_mut(id) else {
            return;
        };
        c.mse = None;
        c.obfuscated = Some(e.info_hash);
        c.rc4 = match (e.encryptor, e.decryptor) {
            (Some(enc), Some(dec)) => Some(Box::new(Rc4Pair { enc, dec })),
            _ => None,
        };
        let mut received = e.initial_payload;
        received.extend_from_slice(&e.remaining);
        c.inbuf = received;
        let ConnState::Handshake { torrent } = c.state else {
            return;
        };
        match torrent {
            None => {
                c.state = ConnState::Routing;
                if c.inbuf.is_empty() {
                    self.start_recv(id);
                } else {
                    self.route(id);
                }
            }
            Some(t) => {
                let addr = c.addr;
                c.state = ConnState::Connecting { torrent: t };
                let active = self.torrents.get(t).is_some_and(|e| e.is_active());
                if !active {
                    self.drop_conn(id, false);
                    return;
                }
                let _ = self.attach(id, t, addr, crate::peer::Direction::Outgoing);
            }
        }
    }

    /// The handshake failed: an incoming connection is dropped with the
    /// reason; a dial is reported failed, and its address is tried in
    /// plaintext next when the policy allows both forms.
    pub(super) fn handshake_failed(&mut self, id: ConnId, e: &MseError) {
        let Some(c) = self.conns.get(id) else {
            return;
        };
        let addr = c.addr;
        match c.state {
            ConnState::Handshake { torrent: Some(t) } => {
                self.dial_failed(t, addr, &format!("encrypted handshake failed: {e}"));
                self.drop_conn(id, false);
                self.switch_form(t, addr, "its encrypted handshake failed");
                self.pump(t);
            }
            _ => {
                let why = match e {
                    MseError::UnknownInfoHash => {
                        "encrypted handshake names a torrent we do not serve".to_owned()
                    }
                    e => format!("encrypted handshake failed: {e}"),
                };
                self.log
                    .line(self.now, format!("peer {addr} dropped: {why}"));
                self.drop_conn(id, false);
            }
        }
    }

    /// A dial's handshake form was refused (`why`): the engine tries the
    /// other form next, when the policy allows both.
    pub(super) fn switch_form(&mut self, t: TorrentId, addr: std::net::SocketAddr, why: &str) {
        if self.stopping.is_some() || !self.settings.encryption().may_switch_form() {
            return;
        }
        let now = self.now;
        let Some(engine) = self.torrents.engine_mut(t) else {
            return;
        };
        if let Some(encrypt) = engine.switch_handshake(now, addr) {
            let form = if encrypt { "encrypted" } else { "plaintext" };
            let name = self.torrents.name(t);
            self.log.line(
                now,
                format!("peer {addr} ({name}): {why}; next dial {form}"),
            );
        }
    }

    /// A plaintext connection is refused when the policy requires
    /// encryption; returns whether it was.
    pub(super) fn refuse_plaintext(&mut self, id: ConnId) -> bool {
        let Some(c) = self.conns.get(id) else {
            return true;
        };
        if c.obfuscated.is_some() || self.settings.encryption().accept_plaintext() {
            return false;
        }
        let addr = c.addr;
        self.log.line(
            self.now,
            format!("peer {addr} refused: plaintext handshake, encryption is required"),
        );
        self.drop_conn(id, false);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plaintext_handshake_is_told_from_an_mse_key() {
        let mut hs = vec![19u8];
        hs.extend_from_slice(PROTOCOL);
        assert!(looks_plaintext(&hs[..1]));
        assert!(looks_plaintext(&hs[..7]));
        assert!(looks_plaintext(&hs));
        assert!(!looks_plaintext(&[20]));
        let mut wrong = hs.clone();
        wrong[19] ^= 1;
        assert!(!looks_plaintext(&wrong));
        assert!(!looks_plaintext(&[0x13, b'b']));
    }
}
