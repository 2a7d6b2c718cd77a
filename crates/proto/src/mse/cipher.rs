//! `Rc4Stream`: one direction's RC4 keystream for MSE, with the spec's first
//! 1,024 bytes already dropped. Works in place on the caller's buffer, never
//! allocates; the connection keeps one per direction for its whole life.

use rc4::consts::U20;
use rc4::{Key, KeyInit, Rc4, StreamCipher};

use super::{HASH_BYTES, RC4_DISCARD_BYTES};

/// One direction's RC4 stream (20-byte key, 1,024 bytes dropped).
pub struct Rc4Stream(Rc4<U20>);

impl Rc4Stream {
    /// A stream keyed with `key`, its first [`RC4_DISCARD_BYTES`] dropped.
    pub fn new_discarded(key: &[u8; HASH_BYTES]) -> Rc4Stream {
        let mut rc4 = Rc4::<U20>::new(&Key::<U20>::from(*key));
        let mut drop = [0u8; RC4_DISCARD_BYTES];
        rc4.apply_keystream(&mut drop);
        Rc4Stream(rc4)
    }

    /// Encrypts or decrypts `buf` in place (RC4 is its own inverse).
    pub fn apply(&mut self, buf: &mut [u8]) {
        self.0.apply_keystream(buf);
    }
}

impl std::fmt::Debug for Rc4Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rc4Stream(..)")
    }
}
