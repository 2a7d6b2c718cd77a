//! The encryption policy: when a connection uses the MSE handshake and which
//! payload methods it may settle on, as plain data and plain functions
//! (libtorrent's `in_enc_policy`, `out_enc_policy` and `allowed_enc_level`;
//! qBittorrent's "prefer / require / disable encryption").
//!
//! Rules, decided on purpose:
//! - [`EncryptionMode::Enabled`] (the default) accepts both handshakes and
//!   dials plaintext first; an address that hung up on our plaintext
//!   handshake, or that PEX says prefers encryption, is dialled obfuscated,
//!   and the reverse after an obfuscated dial failed (the engine's peer list
//!   keeps that choice per address);
//! - [`EncryptionMode::Required`] dials and accepts the MSE handshake only;
//!   [`EncryptionMode::Disabled`] neither dials nor accepts it;
//! - the level is what we offer and accept after the handshake; with both
//!   on offer, plaintext is chosen (the header stays hidden and blocks still
//!   go from the page cache to the socket without a copy): only peers that
//!   allow RC4 alone get RC4.

use std::fmt;
use std::str::FromStr;

use super::CryptoSet;

/// When the MSE handshake is used, for one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EncryptionMode {
    /// Plaintext BitTorrent handshakes only.
    Disabled,
    /// Both; dial plaintext first unless the address wants obfuscation.
    #[default]
    Enabled,
    /// The MSE handshake only.
    Required,
}

/// The payload methods allowed after the MSE handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EncryptionLevel {
    /// Only the header is obfuscated; the payload is plaintext.
    Plaintext,
    /// The whole stream is RC4.
    Rc4,
    /// Either; plaintext is chosen when the peer allows it.
    #[default]
    Both,
}

/// Both directions' modes and the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EncryptionPolicy {
    /// Connections peers open to us.
    pub incoming: EncryptionMode,
    /// Connections we open.
    pub outgoing: EncryptionMode,
    pub level: EncryptionLevel,
}

impl EncryptionLevel {
    /// As the `crypto_provide` / allowed bit field.
    pub fn as_set(self) -> CryptoSet {
        match self {
            EncryptionLevel::Plaintext => CryptoSet::PLAINTEXT,
            EncryptionLevel::Rc4 => CryptoSet::RC4,
            EncryptionLevel::Both => CryptoSet::BOTH,
        }
    }
}

impl EncryptionPolicy {
    /// One mode for both directions.
    pub fn both_ways(mode: EncryptionMode, level: EncryptionLevel) -> EncryptionPolicy {
        EncryptionPolicy {
            incoming: mode,
            outgoing: mode,
            level,
        }
    }

    /// Whether a dial starts with the MSE handshake; `address_wants`: the
    /// peer list's choice for the address.
    pub fn dial_obfuscated(&self, address_wants: bool) -> bool {
        match self.outgoing {
            EncryptionMode::Disabled => false,
            EncryptionMode::Enabled => address_wants,
            EncryptionMode::Required => true,
        }
    }

    /// Whether a dial whose handshake form was refused is tried again in
    /// the other form.
    pub fn may_switch_form(&self) -> bool {
        self.outgoing == EncryptionMode::Enabled
    }

    /// Whether an incoming plaintext handshake is accepted.
    pub fn accept_plaintext(&self) -> bool {
        self.incoming != EncryptionMode::Required
    }

    /// Whether an incoming MSE handshake is answered.
    pub fn accept_obfuscated(&self) -> bool {
        self.incoming != EncryptionMode::Disabled
    }
}

/// A word that names no mode or level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown encryption {what} {given:?}: expected one of {expected}")]
pub struct ParsePolicyError {
    pub what: &'static str,
    pub given: String,
    pub expected: &'static str,
}

impl FromStr for EncryptionMode {
    type Err = ParsePolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "disabled" => Ok(EncryptionMode::Disabled),
            "enabled" => Ok(EncryptionMode::Enabled),
            "required" => Ok(EncryptionMode::Required),
            _ => Err(ParsePolicyError {
                what: "mode",
                given: s.chars().take(40).collect(),
                expected: "disabled, enabled, required",
            }),
        }
    }
}

impl FromStr for EncryptionLevel {
    type Err = ParsePolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "plaintext" => Ok(EncryptionLevel::Plaintext),
            "rc4" => Ok(EncryptionLevel::Rc4),
            "both" => Ok(EncryptionLevel::Both),
            _ => Err(ParsePolicyError {
                what: "level",
                given: s.chars().take(40).collect(),
                expected: "plaintext, rc4, both",
            }),
        }
    }
}

impl fmt::Display for EncryptionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncryptionMode::Disabled => "disabled",
            EncryptionMode::Enabled => "enabled",
            EncryptionMode::Required => "required",
        })
    }
}

impl fmt::Display for EncryptionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncryptionLevel::Plaintext => "plaintext",
            EncryptionLevel::Rc4 => "rc4",
            EncryptionLevel::Both => "both",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_decide_dials_and_accepts() {
        let p = |m| EncryptionPolicy::both_ways(m, EncryptionLevel::Both);
        let enabled = p(EncryptionMode::Enabled);
        assert!(!enabled.dial_obfuscated(false) && enabled.dial_obfuscated(true));
        assert!(enabled.accept_plaintext() && enabled.accept_obfuscated());
        assert!(enabled.may_switch_form());
        let required = p(EncryptionMode::Required);
        assert!(required.dial_obfuscated(false) && !required.accept_plaintext());
        assert!(!required.may_switch_form());
        let disabled = p(EncryptionMode::Disabled);
        assert!(!disabled.dial_obfuscated(true) && !disabled.accept_obfuscated());
        assert_eq!(EncryptionPolicy::default(), enabled);
    }

    #[test]
    fn words_parse_and_print_back() {
        for m in ["disabled", "enabled", "required"] {
            assert_eq!(m.parse::<EncryptionMode>().unwrap().to_string(), m);
        }
        for l in ["plaintext", "rc4", "both"] {
            assert_eq!(l.parse::<EncryptionLevel>().unwrap().to_string(), l);
        }
        assert_eq!("RC4".parse::<EncryptionLevel>(), Ok(EncryptionLevel::Rc4));
        let e = "forced".parse::<EncryptionMode>().unwrap_err().to_string();
        assert!(e.contains("\"forced\"") && e.contains("required"), "{e}");
        assert_eq!(EncryptionLevel::Both.as_set(), CryptoSet::BOTH);
    }
}
