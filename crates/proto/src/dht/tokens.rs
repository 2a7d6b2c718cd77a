//! Announce tokens (BEP 5): a `get_peers` answer carries a token bound to the
//! asker's IP; `announce_peer` must bring it back.
//!
//! Boundary: pure; the caller passes `now` and the [`Rng`] that makes
//! secrets.
//!
//! Rules, decided on purpose:
//! - token = first [`TOKEN_LEN`] bytes of SHA-1(secret ‖ IPv4 address);
//! - the secret rotates every [`TOKEN_ROTATION`]; tokens made with the current
//!   or the previous secret are accepted, so a token lives 5 to 10 minutes.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::rng::Rng;

/// How often the secret changes (BEP 5 suggests 5 minutes).
pub const TOKEN_ROTATION: Duration = Duration::from_secs(5 * 60);
/// Bytes in a token we hand out.
pub const TOKEN_LEN: usize = 8;

/// The current and previous secret.
#[derive(Debug, Clone)]
pub struct TokenSecrets {
    current: [u8; 16],
    previous: [u8; 16],
    rotated_at: Duration,
}

fn token_with(secret: &[u8; 16], ip: Ipv4Addr) -> [u8; TOKEN_LEN] {
    let mut input = [0u8; 20];
    input[..16].copy_from_slice(secret);
    input[16..].copy_from_slice(&ip.octets());
    let digest = crate::hash::sha1(&input);
    let mut out = [0u8; TOKEN_LEN];
    out.copy_from_slice(&digest[..TOKEN_LEN]);
    out
}

impl TokenSecrets {
    pub fn new(rng: &mut Rng, now: Duration) -> TokenSecrets {
        let mut current = [0u8; 16];
        let mut previous = [0u8; 16];
        rng.fill(&mut current);
        rng.fill(&mut previous);
        TokenSecrets {
            current,
            previous,
            rotated_at: now,
        }
    }

    /// Rotates the secret if [`TOKEN_ROTATION`] has passed.
    pub fn tick(&mut self, now: Duration, rng: &mut Rng) {
        if now.saturating_sub(self.rotated_at) >= TOKEN_ROTATION {
            self.previous = self.current;
            rng.fill(&mut self.current);
            self.rotated_at = now;
        }
    }

    /// When the next rotation is due.
    pub fn next_rotation(&self) -> Duration {
        self.rotated_at + TOKEN_ROTATION
    }

    /// The token to give `ip`.
    pub fn token_for(&self, ip: Ipv4Addr) -> Vec<u8> {
        token_with(&self.current, ip).to_vec()
    }

    /// Whether `token` was given to `ip` by the current or previous secret.
    pub fn is_valid(&self, ip: Ipv4Addr, token: &[u8]) -> bool {
        token == token_with(&self.current, ip) || token == token_with(&self.previous, ip)
    }
}
