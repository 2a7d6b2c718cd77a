//! Reads the file's text into a [`DaemonConfig`]: walks toml's spanned
//! document section by section, so that every refusal names the section,
//! the key and the line (toml's serde errors do not say which key they are
//! about). Checks types and ranges here; the engine settings are checked
//! whole by `Settings::check` at the end. No IO.

use ringseed::runtime::shard::send_path::SendPathMode;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use ringseed::engine::settings::PEERS_PER_TORRENT_LIMIT;
use ringseed::rate_limit::RATE_MAX;
use ringseed::runtime::session::settings::{LISTEN_ADDRESSES_MAX, TORRENTS_MAX};
use ringseed::runtime::session::SHARDS_MAX;
use ringseed::runtime::sockets::INTERFACE_NAME_BYTES_MAX;
use ringseed::upload_slots::settings::{OPTIMISTIC_MAX, ROUND_ROBIN_PIECES_MAX, SLOTS_MAX};
use ringseed::upload_slots::{SeedChoking, SlotLimit};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{
    check_host_port, CategoryConfig, DaemonConfig, ShareAction, CONFIG_BYTES_MAX,
    DHT_BOOTSTRAP_MAX, PATH_BYTES_MAX, RATIO_LIMIT_MAX, SEEDING_TIME_LIMIT_MIN_MAX,
    SLOW_AFTER_S_MAX, WATCH_INTERVAL_S_MAX,
};
use crate::cli::engine_opts::{parse_rate, GLOBAL_UPLOAD_SLOTS_MAX, STATUS_INTERVAL_SECS_MAX};
use crate::daemon::record::NAME_BYTES_MAX;

/// Every section and its keys; anything else in the file is refused.
pub(super) const KEYS: &[(&str, &[&str])] = &[
    (
        "paths",
        &["state_dir", "download_dir", "watch_dir", "watch_interval_s"],
    ),
    (
        "network",
        &[
            "listen",
            "interface",
            "bind_address",
            "dht",
            "dht_bootstrap",
            "dht_read_only",
            "pex",
            "lsd",
            "encryption",
            "encryption_level",
        ],
    ),
    (
        "engine",
        &[
            "shards",
            "peers_per_torrent",
            "upload_slots",
            "seed_choking",
            "optimistic_slots",
            "round_robin_pieces",
            "send_path",
            "pin_shards",
        ],
    ),
    (
        "limits",
        &[
            "upload_rate",
            "download_rate",
            "torrent_upload_rate",
            "torrent_download_rate",
            "global_upload_slots",
        ],
    ),
    (
        "queue",
        &[
            "enabled",
            "max_active_downloads",
            "max_active_uploads",
            "max_active_torrents",
            "ignore_slow",
            "slow_download_rate",
            "slow_upload_rate",
            "slow_after_s",
        ],
    ),
    ("share", &["ratio_limit", "seeding_time_limit", "action"]),
    ("log", &["status_interval_s"]),
    (
        "api",
        &[
            "listen",
            "username",
            "password_hash",
            "metrics_require_login",
            "webui_root",
        ],
    ),
];

/// The section of named tables, `[categories.NAME]`.
pub(super) const CATEGORIES: &str = "categories";
/// The keys of one `[categories.NAME]`.
pub(super) const CATEGORY_KEYS: &[&str] = &["save_path"];

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// "an integer", "a string"...
fn a_type(v: &DeValue<'_>) -> String {
    let t = v.type_str();
    let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {t}")
}

/// An integer's value, wide enough for every TOML integer that fits 64
/// bits signed or not; `None` for one larger still.
fn integer(v: &DeValue<'_>) -> Option<Option<i128>> {
    match v {
        DeValue::Integer(i) => Some(i128::from_str_radix(i.as_str(), i.radix()).ok()),
        _ => None,
    }
}

/// Parses the whole text.
pub(super) fn parse(text: &str) -> Result<DaemonConfig, String> {
    if text.len() > CONFIG_BYTES_MAX {
        return Err(format!(
            "the file is {} bytes, more than the {CONFIG_BYTES_MAX} accepted",
            text.len()
        ));
    }
    let doc = DeTable::parse(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| format!(" at line {}", line_of(text, s.start)))
            .unwrap_or_default();
        format!("TOML syntax error{at}: {}", e.message())
    })?;
    let doc = doc.get_ref();

    // Unknown top-level entries first, the earliest in the file first.
    let mut unknown: Vec<(&Spanned<_>, &Spanned<DeValue<'_>>)> = doc
        .iter()
        .filter(|(k, _)| {
            let k: &str = k.get_ref();
            k != CATEGORIES && !KEYS.iter().any(|(s, _)| *s == k)
        })
        .collect();
    unknown.sort_by_key(|(k, _)| k.span().start);
    if let Some((k, v)) = unknown.first() {
        let line = line_of(text, k.span().start);
        let name: &str = k.get_ref();
        return Err(if v.get_ref().is_table() {
            format!("unknown section [{name}] at line {line}")
        } else {
            format!(
                "unknown key {name:?} at the top level at line {line} (keys belong in a section such as [limits])"
            )
        });
    }

    let mut c = DaemonConfig::default();
    let empty = DeTable::default();
    let section = |name: &'static str| -> Result<Section<'_, '_>, String> {
        let known = KEYS
            .iter()
            .find(|(s, _)| *s == name)
            .map_or(&[][..], |(_, k)| *k);
        let table = match doc.get_key_value(name) {
            None => &empty,
            Some((k, v)) => match v.get_ref() {
                DeValue::Table(t) => t,
                other => {
                    return Err(format!(
                        "[{name}] at line {}: expected a table of keys, found {}",
                        line_of(text, k.span().start),
                        a_type(other)
                    ))
                }
            },
        };
        Section::new(name.to_owned(), table, known, text)
    };

    let s = section("paths")?;
    c.paths.state_dir = s.path("state_dir")?;
    c.paths.download_dir = s.path("download_dir")?;
    c.paths.watch_dir = s.path("watch_dir")?;
    if let Some(n) = s.uint("watch_interval_s", 1, WATCH_INTERVAL_S_MAX)? {
        c.paths.watch_interval_s = n;
    }

    let s = section("network")?;
    if let Some(listen) = s.listen("listen")? {
        c.network.listen = listen;
    }
    c.network.interface = s.interface("interface")?;
    c.network.bind_address = s.parsed::<IpAddr>("bind_address", "an IP address")?;
    for (key, field) in [
        ("dht", &mut c.network.dht),
        ("dht_read_only", &mut c.network.dht_read_only),
        ("pex", &mut c.network.pex),
        ("lsd", &mut c.network.lsd),
    ] {
        if let Some(b) = s.boolean(key)? {
            *field = b;
        }
    }
    if let Some(nodes) = s.host_ports("dht_bootstrap")? {
        c.network.dht_bootstrap = nodes;
    }
    if let Some(m) = s.parsed("encryption", "disabled, enabled or required")? {
        c.network.encryption = m;
    }
    if let Some(l) = s.parsed("encryption_level", "plaintext, rc4 or both")? {
        c.network.encryption_level = l;
    }

    let s = section("engine")?;
    c.engine.shards = s.uint("shards", 1, SHARDS_MAX as u64)?.map(|n| n as usize);
    if let Some(n) = s.uint("peers_per_torrent", 1, PEERS_PER_TORRENT_LIMIT as u64)? {
        c.engine.peers_per_torrent = n as usize;
    }
    if let Some(l) = s.upload_slots("upload_slots")? {
        c.engine.upload_slots = l;
    }
    if let Some(a) = s.seed_choking("seed_choking")? {
        c.engine.seed_choking = a;
    }
    c.engine.optimistic_slots = s
        .uint("optimistic_slots", 0, OPTIMISTIC_MAX as u64)?
        .map(|n| n as usize);
    if let Some(n) = s.uint("round_robin_pieces", 1, u64::from(ROUND_ROBIN_PIECES_MAX))? {
        c.engine.round_robin_pieces = n as u32;
    }
    // The words are SendPathMode's own (FromStr), as on the command line.
    if let Some(p) = s.parsed::<SendPathMode>("send_path", "copy, splice or auto")? {
        c.engine.send_path = p;
    }
    if let Some(b) = s.boolean("pin_shards")? {
        c.engine.pin_shards = b;
    }

    let s = section("limits")?;
    let l = &mut c.limits;
    for (key, field) in [
        ("upload_rate", &mut l.upload_rate),
        ("download_rate", &mut l.download_rate),
        ("torrent_upload_rate", &mut l.torrent_upload_rate),
        ("torrent_download_rate", &mut l.torrent_download_rate),
    ] {
        if let Some(r) = s.rate(key)? {
            *field = r;
        }
    }
    if let Some(n) = s.uint("global_upload_slots", 0, u64::from(GLOBAL_UPLOAD_SLOTS_MAX))? {
        l.global_upload_slots = n;
    }

    let s = section("queue")?;
    let q = &mut c.queue;
    if let Some(b) = s.boolean("enabled")? {
        q.enabled = b;
    }
    for (key, field) in [
        ("max_active_downloads", &mut q.max_active_downloads),
        ("max_active_uploads", &mut q.max_active_uploads),
        ("max_active_torrents", &mut q.max_active_torrents),
    ] {
        if let Some(n) = s.int(key, -1, TORRENTS_MAX as i64)? {
            *field = usize::try_from(n).ok();
        }
    }
    if let Some(b) = s.boolean("ignore_slow")? {
        q.ignore_slow = b;
    }
    if let Some(r) = s.rate("slow_download_rate")? {
        q.slow_download_rate = r;
    }
    if let Some(r) = s.rate("slow_upload_rate")? {
        q.slow_upload_rate = r;
    }
    if let Some(n) = s.uint("slow_after_s", 1, SLOW_AFTER_S_MAX)? {
        q.slow_after_s = n;
    }

    let s = section("share")?;
    c.share.ratio_limit = s.ratio("ratio_limit")?;
    c.share.seeding_time_limit_s = s
        .int("seeding_time_limit", -1, SEEDING_TIME_LIMIT_MIN_MAX as i64)?
        .and_then(|m| u64::try_from(m).ok())
        .map(|m| m * 60);
    if let Some(a) = s.share_action("action")? {
        c.share.action = a;
    }

    c.categories = categories(doc, text)?;

    let s = section("log")?;
    if let Some(n) = s.uint("status_interval_s", 0, STATUS_INTERVAL_SECS_MAX)? {
        c.log.status_interval_s = n;
    }

    let s = section("api")?;
    if let Some((v, span)) = s.string("listen", "\"IP:PORT\" or \"off\" (a string)")? {
        c.api.listen =
            if v == "off" {
                None
            } else {
                Some(v.parse().map_err(|_| {
                    s.error("listen", span, format!("{v:?} is not IP:PORT or \"off\""))
                })?)
            };
    }
    if let Some((v, span)) = s.string("username", "a user name (a string)")? {
        if v.is_empty() || v.len() > 255 || v.contains([':', '\n', '\r']) {
            return Err(s.error(
                "username",
                span,
                "expected 1 to 255 bytes without ':' or line breaks",
            ));
        }
        c.api.username = v.to_string();
    }
    if let Some((v, span)) = s.string("password_hash", "a password hash (a string)")? {
        crate::daemon::webapi::auth::PasswordHash::parse(v)
            .map_err(|e| s.error("password_hash", span, e))?;
        c.api.password_hash = Some(v.to_string());
    }
    if let Some(b) = s.boolean("metrics_require_login")? {
        c.api.metrics_require_login = b;
    }
    c.api.webui_root = s.path("webui_root")?;

    ringseed::runtime::session::Settings::check(c.settings_raw())
        .map_err(|e| format!("the engine settings ([engine] and [limits]): {e}"))?;
    Ok(c)
}

/// `[categories.NAME]` tables.
fn categories(doc: &DeTable<'_>, text: &str) -> Result<BTreeMap<String, CategoryConfig>, String> {
    let mut out = BTreeMap::new();
    let Some((k, v)) = doc.get_key_value(CATEGORIES) else {
        return Ok(out);
    };
    let DeValue::Table(table) = v.get_ref() else {
        return Err(format!(
            "[{CATEGORIES}] at line {}: expected tables such as [{CATEGORIES}.tv], found {}",
            line_of(text, k.span().start),
            a_type(v.get_ref())
        ));
    };
    for (k, v) in table {
        let name: &str = k.get_ref();
        let line = line_of(text, k.span().start);
        if name.is_empty() || name.len() > NAME_BYTES_MAX || name.contains('/') {
            return Err(format!(
                "category name {name:?} at line {line} is not accepted: it must be 1 to \
                 {NAME_BYTES_MAX} bytes without '/'"
            ));
        }
        let DeValue::Table(t) = v.get_ref() else {
            return Err(format!(
                "{CATEGORIES}.{name} at line {line}: expected a table ([{CATEGORIES}.{name}] with \
                 save_path), found {}",
                a_type(v.get_ref())
            ));
        };
        let s = Section::new(format!("{CATEGORIES}.{name}"), t, CATEGORY_KEYS, text)?;
        let save_path = s.path("save_path")?;
        out.insert(name.to_owned(), CategoryConfig { save_path });
    }
    Ok(out)
}

/// One table of the file, its keys already checked against the known ones.
struct Section<'a, 'i> {
    /// `limits`, `categories.tv`.
    name: String,
    table: &'a DeTable<'i>,
    text: &'a str,
}

impl<'a, 'i> Section<'a, 'i> {
    /// Refuses the first unknown key (in file order).
    fn new(
        name: String,
        table: &'a DeTable<'i>,
        known: &[&str],
        text: &'a str,
    ) -> Result<Self, String> {
        let first_unknown = table
            .keys()
            .filter(|k| !known.contains(&&**k.get_ref()))
            .min_by_key(|k| k.span().start);
        if let Some(k) = first_unknown {
            return Err(format!(
                "unknown key {:?} in [{name}] at line {}",
                &**k.get_ref(),
                line_of(text, k.span().start)
            ));
        }
        Ok(Section { name, table, text })
    }

    fn get(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.table.get(key)
    }

    /// `limits.upload_rate at line 12: WHAT`.
    fn error(&self, key: &str, span: Range<usize>, what: impl std::fmt::Display) -> String {
        format!(
            "{}.{key} at line {}: {what}",
            self.name,
            line_of(self.text, span.start)
        )
    }

    /// The value as written in the file.
    fn shown(&self, v: &Spanned<DeValue<'_>>) -> &'a str {
        self.text.get(v.span()).unwrap_or("the value")
    }

    /// "expected X, found a string".
    fn wrong_type(&self, key: &str, v: &Spanned<DeValue<'_>>, expected: &str) -> String {
        self.error(
            key,
            v.span(),
            format!("expected {expected}, found {}", a_type(v.get_ref())),
        )
    }

    fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, String> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let range = if min == -1 {
            format!("-1 (no limit) or an integer from 0 to {max}")
        } else {
            format!("an integer from {min} to {max}")
        };
        match integer(v.get_ref()) {
            None => Err(self.wrong_type(key, v, &range)),
            Some(Some(n)) if (i128::from(min)..=i128::from(max)).contains(&n) => Ok(Some(n as i64)),
            Some(_) => Err(self.error(
                key,
                v.span(),
                format!("{} is out of range: expected {range}", self.shown(v)),
            )),
        }
    }

    fn uint(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, String> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let range = format!("an integer from {min} to {max}");
        match integer(v.get_ref()) {
            None => Err(self.wrong_type(key, v, &range)),
            Some(Some(n)) if (i128::from(min)..=i128::from(max)).contains(&n) => Ok(Some(n as u64)),
            Some(_) => Err(self.error(
                key,
                v.span(),
                format!("{} is out of range: expected {range}", self.shown(v)),
            )),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, String> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(Some(*b)),
            _ => Err(self.wrong_type(key, v, "true or false")),
        }
    }

    /// A string value and its span.
    fn string(&self, key: &str, expected: &str) -> Result<Option<(&'a str, Range<usize>)>, String> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::String(s) => Ok(Some((s, v.span()))),
            _ => Err(self.wrong_type(key, v, expected)),
        }
    }

    /// An absolute path of at most `PATH_BYTES_MAX` bytes.
    fn path(&self, key: &str) -> Result<Option<PathBuf>, String> {
        let Some((s, span)) = self.string(key, "an absolute path (a string)")? else {
            return Ok(None);
        };
        if s.len() > PATH_BYTES_MAX {
            return Err(self.error(
                key,
                span,
                format!(
                    "the path is {} bytes, more than the {PATH_BYTES_MAX} accepted",
                    s.len()
                ),
            ));
        }
        if s.contains('\0') {
            return Err(self.error(key, span, format!("{s:?} contains a NUL byte")));
        }
        if !Path::new(s).is_absolute() {
            return Err(self.error(
                key,
                span,
                format!("{s:?} is not an absolute path (it must start with /)"),
            ));
        }
        Ok(Some(PathBuf::from(s)))
    }

    /// A string parsed with `FromStr`.
    fn parsed<T: std::str::FromStr>(&self, key: &str, what: &str) -> Result<Option<T>, String> {
        let Some((s, span)) = self.string(key, &format!("{what} (a string)"))? else {
            return Ok(None);
        };
        s.parse()
            .map(Some)
            .map_err(|_| self.error(key, span, format!("{s:?} is not {what}")))
    }

    /// A network interface's name, in the kernel's form.
    fn interface(&self, key: &str) -> Result<Option<String>, String> {
        let Some((s, span)) = self.string(key, "a network interface's name (a string)")? else {
            return Ok(None);
        };
        let bad = s.is_empty()
            || s.len() > INTERFACE_NAME_BYTES_MAX
            || s == "."
            || s == ".."
            || s.contains(['/', ':', '\0'])
            || s.chars().any(char::is_whitespace);
        if bad {
            return Err(self.error(
                key,
                span,
                format!(
                    "{s:?} is not an interface name: 1 to {INTERFACE_NAME_BYTES_MAX} bytes, \
                     no '/', ':', NUL or whitespace"
                ),
            ));
        }
        Ok(Some(s.to_owned()))
    }

    /// `["0.0.0.0:6881", "[::]:6881"]`: 1 to `LISTEN_ADDRESSES_MAX`.
    fn listen(&self, key: &str) -> Result<Option<Vec<SocketAddr>>, String> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let expected = "an array of IP:PORT strings such as [\"0.0.0.0:6881\", \"[::]:6881\"]";
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.wrong_type(key, v, expected));
        };
        if items.is_empty() || items.len() > LISTEN_ADDRESSES_MAX {
            return Err(self.error(
                key,
                v.span(),
                format!(
                    "{} addresses: expected 1 to {LISTEN_ADDRESSES_MAX}",
                    items.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            let DeValue::String(s) = item.get_ref() else {
                return Err(self.wrong_type(key, item, expected));
            };
            let addr = s.parse::<SocketAddr>().map_err(|_| {
                self.error(
                    key,
                    item.span(),
                    format!(
                        "{s:?} is not an IP:PORT address (such as \"0.0.0.0:6881\" or \"[::]:6881\")"
                    ),
                )
            })?;
            out.push(addr);
        }
        Ok(Some(out))
    }

    /// `["router.example:6881", "10.0.0.1:6881"]`: 0 to
    /// `DHT_BOOTSTRAP_MAX` `HOST:PORT` strings.
    fn host_ports(&self, key: &str) -> Result<Option<Vec<String>>, String> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let expected = "an array of \"HOST:PORT\" strings such as [\"router.bittorrent.com:6881\"]";
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.wrong_type(key, v, expected));
        };
        if items.len() > DHT_BOOTSTRAP_MAX {
            return Err(self.error(
                key,
                v.span(),
                format!(
                    "{} nodes: expected at most {DHT_BOOTSTRAP_MAX}",
                    items.len()
                ),
            ));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items.iter() {
            let DeValue::String(s) = item.get_ref() else {
                return Err(self.wrong_type(key, item, expected));
            };
            check_host_port(s).map_err(|e| self.error(key, item.span(), e))?;
            out.push(s.to_string());
        }
        Ok(Some(out))
    }

    /// Bytes per second: an integer, or a string with a binary unit.
    fn rate(&self, key: &str) -> Result<Option<u64>, String> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let expected = "bytes per second: an integer or a string such as \"10M\"";
        match (v.get_ref(), integer(v.get_ref())) {
            (_, Some(Some(n))) if (0..=i128::from(RATE_MAX)).contains(&n) => Ok(Some(n as u64)),
            (DeValue::Integer(i), _) => Err(self.error(
                key,
                v.span(),
                format!(
                    "{i} is out of range: expected 0 (unlimited) to {RATE_MAX} bytes per second"
                ),
            )),
            (DeValue::String(s), _) => parse_rate(s)
                .map(Some)
                .map_err(|e| self.error(key, v.span(), e)),
            _ => Err(self.wrong_type(key, v, expected)),
        }
    }

    /// `upload_slots`: a count, "unlimited" or "rate-based".
    fn upload_slots(&self, key: &str) -> Result<Option<SlotLimit>, String> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let expected = format!("a count from 0 to {SLOTS_MAX}, \"unlimited\" or \"rate-based\"");
        match (v.get_ref(), integer(v.get_ref())) {
            (_, Some(Some(n))) if (0..=SLOTS_MAX as i128).contains(&n) => {
                Ok(Some(SlotLimit::Fixed(n as usize)))
            }
            (DeValue::Integer(i), _) => Err(self.error(
                key,
                v.span(),
                format!("{i} is out of range: expected {expected}"),
            )),
            (DeValue::String(s), _) => match &**s {
                "unlimited" => Ok(Some(SlotLimit::Unlimited)),
                "rate-based" => Ok(Some(SlotLimit::RateBased)),
                _ => Err(self.error(key, v.span(), format!("{s:?}: expected {expected}"))),
            },
            _ => Err(self.wrong_type(key, v, &expected)),
        }
    }

    /// One of a few words.
    fn word<T: Copy>(&self, key: &str, words: &[(&str, T)]) -> Result<Option<T>, String> {
        let names: Vec<String> = words.iter().map(|(w, _)| format!("{w:?}")).collect();
        let expected = format!("one of {}", names.join(", "));
        let Some((s, span)) = self.string(key, &expected)? else {
            return Ok(None);
        };
        match words.iter().find(|(w, _)| *w == s) {
            Some((_, t)) => Ok(Some(*t)),
            None => Err(self.error(key, span, format!("{s:?}: expected {expected}"))),
        }
    }

    fn seed_choking(&self, key: &str) -> Result<Option<SeedChoking>, String> {
        self.word(
            key,
            &[
                ("fastest", SeedChoking::FastestUpload),
                ("round-robin", SeedChoking::RoundRobin),
                ("anti-leech", SeedChoking::AntiLeech),
            ],
        )
    }

    fn share_action(&self, key: &str) -> Result<Option<ShareAction>, String> {
        self.word(
            key,
            &[
                ("stop", ShareAction::Stop),
                ("remove", ShareAction::Remove),
                ("remove-with-data", ShareAction::RemoveWithData),
            ],
        )
    }

    /// A ratio: -1 (none) or 0 to `RATIO_LIMIT_MAX`, integer or float.
    fn ratio(&self, key: &str) -> Result<Option<f64>, String> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let expected = format!("-1 (no limit) or a number from 0 to {RATIO_LIMIT_MAX}");
        let x = match (v.get_ref(), integer(v.get_ref())) {
            (_, Some(Some(n))) => n as f64,
            (DeValue::Float(f), _) => f.as_str().parse::<f64>().unwrap_or(f64::NAN),
            (DeValue::Integer(_), _) => f64::INFINITY,
            _ => return Err(self.wrong_type(key, v, &expected)),
        };
        if x == -1.0 {
            Ok(None)
        } else if (0.0..=RATIO_LIMIT_MAX).contains(&x) {
            Ok(Some(x))
        } else {
            Err(self.error(
                key,
                v.span(),
                format!("{} is out of range: expected {expected}", self.shown(v)),
            ))
        }
    }
}
