//! The Web API's credentials, sessions and bans, as qBittorrent has them.
//!
//! Boundary: plain data and a `now` passed in; no IO, no clock reads, no
//! logging (a password never reaches a log from here).
//!
//! - [`PasswordHash`]: PBKDF2-HMAC-SHA512, 100,000 iterations, 16-byte
//!   random salt, written as qBittorrent writes `WebUI\Password_PBKDF2`:
//!   `@ByteArray(SALT_BASE64:HASH_BASE64)`, so a hash can be copied from a
//!   qBittorrent.conf. Verification compares in constant time.
//! - [`Sessions`]: the `SID` cookies handed out at login, forgotten after
//!   [`SESSION_IDLE_S`] without use; at most [`SESSIONS_MAX`] (the oldest
//!   goes first).
//! - [`Bans`]: an address that failed to log in [`BAN_AFTER_FAILURES`]
//!   times in a row is refused for [`BAN_S`]; at most [`BANNED_ADDRESSES_MAX`]
//!   addresses are tracked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha2::Sha512;

use thiserror::Error;

/// PBKDF2 rounds (qBittorrent's).
pub const PBKDF2_ITERATIONS: u32 = 100_000;
/// Salt bytes.
pub const SALT_BYTES: usize = 16;
/// Hash bytes (SHA-512's output).
pub const HASH_BYTES: usize = 64;
/// Sessions kept at once.
pub const SESSIONS_MAX: usize = 1024;
/// A session unused this long is forgotten (qBittorrent's default: 3600 s).
pub const SESSION_IDLE_S: u64 = 3600;
/// Failed logins in a row from one address before it is banned
/// (qBittorrent's default: 5).
pub const BAN_AFTER_FAILURES: u32 = 5;
/// How long a ban lasts (qBittorrent's default: 3600 s).
pub const BAN_S: u64 = 3600;
/// Addresses whose failures are counted at once; when full, the oldest
/// entry that is not banned is forgotten first.
pub const BANNED_ADDRESSES_MAX: usize = 4096;
/// Characters of a session id.
pub const SID_CHARS: usize = 32;
/// Characters of a generated password (qBittorrent's: 9).
pub const GENERATED_PASSWORD_CHARS: usize = 9;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("bad password hash: {0} (expected @ByteArray(SALT_BASE64:HASH_BASE64), as in qBittorrent.conf)")]
    BadHash(String),
}

/// A salted password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    salt: [u8; SALT_BYTES],
    hash: [u8; HASH_BYTES],
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt.
    pub fn new(password: &str) -> PasswordHash {
        let mut salt = [0u8; SALT_BYTES];
        random_fill(&mut salt);
        PasswordHash::with_salt(password, salt)
    }

    fn with_salt(password: &str, salt: [u8; SALT_BYTES]) -> PasswordHash {
        PasswordHash {
            salt,
            hash: derive(password, &salt),
        }
    }

    /// Reads `@ByteArray(SALT:HASH)` (the wrapper optional).
    ///
    /// Surrounding spaces and one pair of double quotes (as qBittorrent.conf
    /// writes the value) are allowed.
    pub fn parse(s: &str) -> Result<PasswordHash, AuthError> {
        let mut t = s.trim();
        if let Some(inner) = t.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            t = inner.trim();
        }
        if let Some(inner) = t
            .strip_prefix("@ByteArray(")
            .and_then(|r| r.strip_suffix(')'))
        {
            t = inner;
        }
        let Some((salt, hash)) = t.split_once(':') else {
            return Err(AuthError::BadHash(
                "no ':' between salt and hash".to_string(),
            ));
        };
        let salt = decode_exact::<SALT_BYTES>("salt", salt)?;
        let hash = decode_exact::<HASH_BYTES>("hash", hash)?;
        Ok(PasswordHash { salt, hash })
    }

    /// `@ByteArray(SALT_BASE64:HASH_BASE64)`.
    pub fn encode(&self) -> String {
        format!(
            "@ByteArray({}:{})",
            BASE64.encode(self.salt),
            BASE64.encode(self.hash)
        )
    }

    /// Whether `password` is the one hashed (constant time).
    pub fn verify(&self, password: &str) -> bool {
        constant_time_eq(&derive(password, &self.salt), &self.hash)
    }
}

fn derive(password: &str, salt: &[u8; SALT_BYTES]) -> [u8; HASH_BYTES] {
    let mut out = [0u8; HASH_BYTES];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, PBKDF2_ITERATIONS, &mut out);
    out
}

/// Compares every byte whatever the first difference.
fn constant_time_eq(a: &[u8; HASH_BYTES], b: &[u8; HASH_BYTES]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

fn decode_exact<const N: usize>(what: &str, b64: &str) -> Result<[u8; N], AuthError> {
    let bytes = BASE64
        .decode(b64.trim())
        .map_err(|e| AuthError::BadHash(format!("the {what} is not base64 ({e})")))?;
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| AuthError::BadHash(format!("the {what} has {} bytes, not {N}", bytes.len())))
}

/// The system's random bytes. Without them there is no safe salt or
/// session id, so their absence is fatal.
fn random_fill(buf: &mut [u8]) {
    if let Err(e) = getrandom::fill(buf) {
        panic!("the system's random number generator failed: {e}");
    }
}

const ALPHANUMERIC: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `n` random letters and digits, uniformly (bytes past the largest
/// multiple of 62 are drawn again).
fn random_alphanumeric(n: usize) -> String {
    const LIMIT: u8 = (256 / ALPHANUMERIC.len() * ALPHANUMERIC.len()) as u8; // 248
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        random_fill(&mut buf);
        for &b in &buf {
            if b < LIMIT && out.len() < n {
                out.push(ALPHANUMERIC[(b as usize) % ALPHANUMERIC.len()] as char);
            }
        }
    }
    out
}

/// A random password of [`GENERATED_PASSWORD_CHARS`] letters and digits.
pub fn generate_password() -> String {
    random_alphanumeric(GENERATED_PASSWORD_CHARS)
}

/// The logged-in sessions.
#[derive(Default)]
pub struct Sessions {
    /// Session id → when it was last used.
    live: HashMap<String, Instant>,
}

/// Session ids are secrets: never in a log.
impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("len", &self.live.len())
            .finish()
    }
}

const SESSION_IDLE: Duration = Duration::from_secs(SESSION_IDLE_S);

impl Sessions {
    /// Opens a session; returns its id (the `SID` cookie's value).
    pub fn open(&mut self, now: Instant) -> String {
        self.live
            .retain(|_, used| now.saturating_duration_since(*used) < SESSION_IDLE);
        while self.live.len() >= SESSIONS_MAX {
            // The one unused for longest goes first.
            let Some(oldest) = self
                .live
                .iter()
                .min_by_key(|(_, used)| **used)
                .map(|(sid, _)| sid.clone())
            else {
                break;
            };
            self.live.remove(&oldest);
        }
        loop {
            let sid = random_alphanumeric(SID_CHARS);
            if !self.live.contains_key(&sid) {
                self.live.insert(sid.clone(), now);
                return sid;
            }
        }
    }

    /// Whether `sid` is a live session (and marks it used).
    pub fn check(&mut self, sid: &str, now: Instant) -> bool {
        match self.live.get_mut(sid) {
            Some(used) if now.saturating_duration_since(*used) < SESSION_IDLE => {
                *used = (*used).max(now);
                true
            }
            Some(_) => {
                self.live.remove(sid);
                false
            }
            None => false,
        }
    }

    pub fn close(&mut self, sid: &str) {
        self.live.remove(sid);
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }
}

/// One address's failed logins.
#[derive(Debug, Clone, Copy)]
struct Failures {
    /// In a row, since the last success or ban.
    count: u32,
    /// The last failure.
    last: Instant,
    /// Banned until then.
    banned_until: Option<Instant>,
}

/// Failed logins per address.
#[derive(Debug, Default)]
pub struct Bans {
    by_ip: HashMap<IpAddr, Failures>,
}

const BAN: Duration = Duration::from_secs(BAN_S);

impl Bans {
    /// Whether `ip` is banned now.
    pub fn is_banned(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.by_ip.get(&ip).and_then(|f| f.banned_until) {
            Some(until) if now < until => true,
            Some(_) => {
                // The ban is over: the address starts again from nothing.
                self.by_ip.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Counts a failed login; returns whether `ip` is banned from now.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.is_banned(ip, now) {
            return true;
        }
        if !self.by_ip.contains_key(&ip) {
            self.make_room(now);
        }
        let f = self.by_ip.entry(ip).or_insert(Failures {
            count: 0,
            last: now,
            banned_until: None,
        });
        f.count = f.count.saturating_add(1);
        f.last = f.last.max(now);
        if f.count >= BAN_AFTER_FAILURES {
            f.banned_until = Some(now + BAN);
            true
        } else {
            false
        }
    }

    /// A successful login clears the count.
    pub fn succeeded(&mut self, ip: IpAddr) {
        // A ban is not lifted by a success (a banned address is refused
        // before its password is checked anyway).
        if matches!(self.by_ip.get(&ip), Some(f) if f.banned_until.is_none()) {
            self.by_ip.remove(&ip);
        }
    }

    /// Addresses tracked (banned or counting).
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    /// Keeps the table under [`BANNED_ADDRESSES_MAX`] before a new address
    /// is added: bans that are over go, then the address that failed
    /// longest ago without being banned, then the ban that ends first.
    fn make_room(&mut self, now: Instant) {
        if self.by_ip.len() < BANNED_ADDRESSES_MAX {
            return;
        }
        self.by_ip
            .retain(|_, f| f.banned_until.is_none_or(|until| now < until));
        while self.by_ip.len() >= BANNED_ADDRESSES_MAX {
            let counting = self
                .by_ip
                .iter()
                .filter(|(_, f)| f.banned_until.is_none())
                .min_by_key(|(_, f)| f.last)
                .map(|(ip, _)| *ip);
            let victim = counting.or_else(|| {
                self.by_ip
                    .iter()
                    .min_by_key(|(_, f)| f.banned_until)
                    .map(|(ip, _)| *ip)
            });
            match victim {
                Some(ip) => {
                    self.by_ip.remove(&ip);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// qBittorrent's `adminadmin` as it appears in public setup guides
    /// (a `WebUI\Password_PBKDF2` line), checked with Python's
    /// `hashlib.pbkdf2_hmac('sha512', b'adminadmin', salt, 100000)`.
    const ADMINADMIN: &str = "@ByteArray(ruz0RpHqKptKv44/ZacGKA==:v6n/OXeMd5qASDJL8uEJsJVKk3LSrFXroxusykX929FQ24/rYIRWeWNfXrsJcBCvXsFmyNGSLF0GMj/bEDb2Fg==)";
    /// Python: salt `b"ringseed-salt-16"`, password `"pässwörd"` (UTF-8).
    const PYTHON_VECTOR: &str = "@ByteArray(cmluZ3NlZWQtc2FsdC0xNg==:keZCOYJLDOLx4l/5lXuQSE4ezN81lgSRGMFjD+AF6YktDfww0nXwaxWQuLRfgHPV4Sjm20rh8Tvduea3+EsE4g==)";

    #[test]
    fn known_vectors() {
        // PBKDF2 with 100,000 rounds is slow in a debug build: few calls.
        let h = PasswordHash::parse(ADMINADMIN).unwrap();
        assert!(h.verify("adminadmin"));
        assert!(!h.verify("adminadmiN"));
        assert_eq!(h.encode(), ADMINADMIN);

        let mine = PasswordHash::with_salt("pässwörd", *b"ringseed-salt-16");
        assert_eq!(mine.encode(), PYTHON_VECTOR);
        assert_eq!(PasswordHash::parse(PYTHON_VECTOR).unwrap(), mine);
    }

    #[test]
    fn new_hash_round_trip() {
        let a = PasswordHash::new("secret");
        assert!(a.verify("secret"));
        let text = a.encode();
        assert!(
            text.starts_with("@ByteArray(") && text.ends_with(')'),
            "{text}"
        );
        assert_eq!(PasswordHash::parse(&text).unwrap(), a);
        // A fresh random salt (its source, without another slow hash).
        let mut salt = [0u8; SALT_BYTES];
        random_fill(&mut salt);
        assert_ne!(a.salt, salt);
        assert_ne!(a.salt, [0u8; SALT_BYTES]);
        // Nothing secret in Debug.
        assert_eq!(format!("{a:?}"), "PasswordHash(..)");
    }

    #[test]
    fn parse_forms_and_errors() {
        let inner = ADMINADMIN
            .strip_prefix("@ByteArray(")
            .unwrap()
            .strip_suffix(')')
            .unwrap();
        let want = PasswordHash::parse(ADMINADMIN).unwrap();
        for form in [
            inner.to_string(),
            format!("\"{ADMINADMIN}\""),
            format!("  {ADMINADMIN}\n"),
            format!(" \"{inner}\" "),
        ] {
            assert_eq!(PasswordHash::parse(&form).unwrap(), want, "{form}");
        }
        let (salt, hash) = inner.split_once(':').unwrap();
        for (bad, why) in [
            ("", "no ':'"),
            ("@ByteArray()", "no ':'"),
            ("adminadmin", "no ':'"),
            (&format!("{salt}{hash}") as &str, "no ':'"),
            (&format!("!!:{hash}"), "salt is not base64"),
            (&format!("{salt}:%%"), "hash is not base64"),
            (&format!("AAAA:{hash}"), "salt has 3 bytes, not 16"),
            (&format!("{salt}:{salt}"), "hash has 16 bytes, not 64"),
            (&format!("{salt}:"), "hash has 0 bytes"),
        ] {
            match PasswordHash::parse(bad) {
                Err(AuthError::BadHash(m)) => assert!(m.contains(why), "{bad}: {m}"),
                Ok(_) => panic!("{bad} parsed"),
            }
        }
        let msg = PasswordHash::parse("x").unwrap_err().to_string();
        assert!(msg.contains("@ByteArray(SALT_BASE64:HASH_BASE64)"), "{msg}");
    }

    #[test]
    fn constant_time_compare() {
        let a = [7u8; HASH_BYTES];
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[HASH_BYTES - 1] ^= 1;
        assert!(!constant_time_eq(&a, &b));
        b = a;
        b[0] ^= 0x80;
        assert!(!constant_time_eq(&a, &b));
    }

    #[test]
    fn generated_passwords() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let p = generate_password();
            assert_eq!(p.len(), GENERATED_PASSWORD_CHARS);
            assert!(p.bytes().all(|c| c.is_ascii_alphanumeric()), "{p}");
            seen.insert(p);
        }
        assert_eq!(seen.len(), 200);
        // All 62 characters turn up (a biased or short alphabet would not).
        let many = random_alphanumeric(20_000);
        let distinct: std::collections::HashSet<char> = many.chars().collect();
        assert_eq!(distinct.len(), 62);
    }

    #[test]
    fn sessions_open_check_close() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        assert_eq!(s.len(), 0);
        let a = s.open(t0);
        let b = s.open(t0);
        assert_eq!(a.len(), SID_CHARS);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert_eq!(s.len(), 2);
        assert!(s.check(&a, t0));
        assert!(!s.check("", t0));
        assert!(!s.check(&a[..SID_CHARS - 1], t0));
        // One character changed: refused.
        let mut other = a.clone().into_bytes();
        other[0] = if other[0] == b'A' { b'B' } else { b'A' };
        assert!(!s.check(&String::from_utf8(other).unwrap(), t0));
        s.close(&a);
        assert!(!s.check(&a, t0));
        assert!(s.check(&b, t0));
        s.close("unknown");
        assert_eq!(s.len(), 1);
        // Debug shows no session id.
        let dbg = format!("{s:?}");
        assert!(!dbg.contains(&b), "{dbg}");
    }

    #[test]
    fn sessions_expire_when_idle() {
        let t0 = Instant::now();
        let idle = Duration::from_secs(SESSION_IDLE_S);
        let mut s = Sessions::default();
        let a = s.open(t0);
        let b = s.open(t0);
        // Use keeps a session alive past the idle time since opening.
        assert!(s.check(&a, t0 + idle - Duration::from_secs(1)));
        assert!(s.check(&a, t0 + idle + Duration::from_secs(100)));
        // Unused for the idle time: gone.
        assert!(!s.check(&b, t0 + idle));
        assert!(!s.check(&b, t0));
        assert_eq!(s.len(), 1);
        // Opening forgets the expired ones.
        let later = t0 + 3 * idle;
        let _c = s.open(later);
        assert_eq!(s.len(), 1);
        assert!(!s.check(&a, later));
        // A clock that seems to go back does not panic or expire anything.
        let d = s.open(later);
        assert!(s.check(&d, t0));
        assert!(s.check(&d, later));
    }

    #[test]
    fn sessions_are_bounded_and_the_least_used_goes() {
        let t0 = Instant::now();
        let mut s = Sessions::default();
        let first = s.open(t0);
        let second = s.open(t0 + Duration::from_millis(1));
        let mut last = String::new();
        for i in 2..SESSIONS_MAX {
            last = s.open(t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(s.len(), SESSIONS_MAX);
        // The first is used again: the second is now the oldest.
        let now = t0 + Duration::from_secs(10);
        assert!(s.check(&first, now));
        let newest = s.open(now);
        assert_eq!(s.len(), SESSIONS_MAX);
        assert!(!s.check(&second, now));
        for sid in [&first, &last, &newest] {
            assert!(s.check(sid, now));
        }
        for i in 0..10 {
            s.open(now + Duration::from_millis(i));
        }
        assert_eq!(s.len(), SESSIONS_MAX);
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x7f00_0000 | n))
    }

    #[test]
    fn ban_after_five_failures_for_an_hour() {
        let t0 = Instant::now();
        let mut b = Bans::default();
        let (x, y) = (ip(1), ip(2));
        for i in 1..BAN_AFTER_FAILURES {
            assert!(!b.failed(x, t0), "failure {i}");
            assert!(!b.is_banned(x, t0));
        }
        assert!(b.failed(x, t0));
        assert!(b.is_banned(x, t0));
        assert!(!b.is_banned(y, t0));
        // A success does not lift a ban; more failures keep it.
        b.succeeded(x);
        assert!(b.is_banned(x, t0 + Duration::from_secs(10)));
        assert!(b.failed(x, t0 + Duration::from_secs(10)));
        assert!(b.is_banned(x, t0 + Duration::from_secs(BAN_S - 1)));
        // Over after BAN_S: back to zero failures.
        let after = t0 + Duration::from_secs(BAN_S);
        assert!(!b.is_banned(x, after));
        assert!(!b.failed(x, after));
        assert!(!b.is_banned(x, after));
        // IPv6 works the same.
        let v6: IpAddr = "::1".parse().unwrap();
        for _ in 0..BAN_AFTER_FAILURES {
            b.failed(v6, t0);
        }
        assert!(b.is_banned(v6, t0));
    }

    #[test]
    fn success_resets_the_count() {
        let t0 = Instant::now();
        let mut b = Bans::default();
        let x = ip(1);
        for _ in 1..BAN_AFTER_FAILURES {
            assert!(!b.failed(x, t0));
        }
        b.succeeded(x);
        assert_eq!(b.len(), 0);
        for _ in 1..BAN_AFTER_FAILURES {
            assert!(!b.failed(x, t0));
        }
        assert!(!b.is_banned(x, t0));
        b.succeeded(ip(99));
    }

    #[test]
    fn ban_table_is_bounded() {
        let t0 = Instant::now();
        let mut b = Bans::default();
        // Some banned addresses, then a flood of single failures.
        for n in 0..10 {
            for _ in 0..BAN_AFTER_FAILURES {
                b.failed(ip(n), t0);
            }
        }
        for n in 10..(BANNED_ADDRESSES_MAX as u32 + 500) {
            b.failed(ip(n), t0 + Duration::from_millis(n as u64));
            assert!(b.len() <= BANNED_ADDRESSES_MAX);
        }
        assert_eq!(b.len(), BANNED_ADDRESSES_MAX);
        // Bans survive the flood; the oldest counting addresses went.
        for n in 0..10 {
            assert!(b.is_banned(ip(n), t0), "{n}");
        }
        assert!(!b.by_ip.contains_key(&ip(10)));
        // A table full of bans still takes new addresses (the ban that
        // ends first goes).
        let mut b = Bans::default();
        for n in 0..BANNED_ADDRESSES_MAX as u32 {
            for _ in 0..BAN_AFTER_FAILURES {
                b.failed(ip(n), t0 + Duration::from_millis(n as u64));
            }
        }
        assert_eq!(b.len(), BANNED_ADDRESSES_MAX);
        b.failed(ip(1 << 20), t0 + Duration::from_secs(1));
        assert_eq!(b.len(), BANNED_ADDRESSES_MAX);
        assert!(!b.is_banned(ip(0), t0 + Duration::from_secs(1)));
        assert!(b.is_banned(ip(1), t0 + Duration::from_secs(1)));
        // Bans that are over make room first.
        let later = t0 + Duration::from_secs(BAN_S + 10);
        b.failed(ip(1 << 21), later);
        assert_eq!(b.len(), 2); // ip(1 << 20) counting, ip(1 << 21)
    }
}
