//! Each endpoint of qBittorrent's Web API v2, answered with the core's
//! [`Command`]s: the same requests `ringseed ctl` makes, so the two can
//! never disagree. Plain blocking functions (they run on tokio's blocking
//! pool): a request in, a response out.
//!
//! qBittorrent's answers kept: 403 `Forbidden` without a session, 400 for
//! a missing or bad parameter (with the reason), 404 for an unknown hash
//! on single-torrent endpoints (unknown hashes are skipped by actions on
//! several torrents), 409 for a bad category, 415 for a .torrent that does
//! not parse, 405 for an action asked with GET.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use crossbeam_channel::{bounded, Sender, TrySendError};
use serde_json::{json, Map, Value};

use super::auth::{Bans, Sessions};
use super::form::{FormError, Params};
use super::sync::SyncState;
use super::{
    metrics, page, serialize, ApiSettings, CORE_REPLY_TIMEOUT, QBT_VERSION, WEBAPI_VERSION,
};
use crate::daemon::command::{
    Category, Command, CommandError, ConfigView, QueueMove, Reply, Selector, TorrentView,
    COMMAND_QUEUE_MAX,
};
use crate::daemon::config::{ConfigPatch, RATIO_LIMIT_MAX};
use crate::daemon::record::{Limit, ShareLimits};
use ringseed::runtime::sockets::BindOptions;
use ringseed::InfoHash;

/// Tags created without a torrent (qBittorrent's tag list), kept here.
pub const FREE_TAGS_MAX: usize = 4096;

/// A request as the handlers see it: read whole.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub content_type: Option<String>,
    /// Every `Cookie` header, joined with `; `.
    pub cookie: String,
    pub authorization: Option<String>,
    pub peer: IpAddr,
    pub body: Bytes,
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    pub set_cookie: Option<String>,
    pub headers: Vec<(hyper::header::HeaderName, String)>,
}

impl ApiResponse {
    pub fn text(status: u16, text: &str) -> ApiResponse {
        ApiResponse {
            status,
            content_type: "text/plain; charset=UTF-8".into(),
            body: text.as_bytes().to_vec(),
            set_cookie: None,
            headers: Vec::new(),
        }
    }

    pub fn ok() -> ApiResponse {
        ApiResponse::text(200, "")
    }

    pub fn json(v: &Value) -> ApiResponse {
        ApiResponse {
            status: 200,
            content_type: "application/json".into(),
            body: serde_json::to_vec(v).unwrap_or_default(),
            set_cookie: None,
            headers: Vec::new(),
        }
    }

    pub fn bytes(content_type: &str, body: Vec<u8>) -> ApiResponse {
        ApiResponse {
            status: 200,
            content_type: content_type.into(),
            body,
            set_cookie: None,
            headers: Vec::new(),
        }
    }
}

/// What every handler shares.
pub struct State {
    pub settings: ApiSettings,
    pub commands: Sender<Command>,
    pub bind: BindOptions,
    pub addr: SocketAddr,
    pub sessions: Mutex<Sessions>,
    pub bans: Mutex<Bans>,
    pub sync: Mutex<SyncState>,
    /// The tag list (qBittorrent's tags are global: created by
    /// `createTags`, by adding a torrent with tags or by `addTags`, and
    /// gone only with `deleteTags`); at most [`FREE_TAGS_MAX`]. Kept in the
    /// state database under [`TAGS_KEY`].
    pub free_tags: Mutex<BTreeSet<String>>,
    /// SHA-256 of the last `Authorization: Basic` value that verified.
    pub basic_verified: Mutex<Option<[u8; 32]>>,
    pub metrics: metrics::ApiCounters,
}

impl State {
    /// Whether a `Cookie` header carries a live session (the session is
    /// not marked used).
    pub fn has_session(&self, cookie: &str) -> bool {
        let Some(sid) = sid_of(cookie) else {
            return false;
        };
        self.sessions
            .lock()
            .map(|mut s| s.check(sid, Instant::now()))
            .unwrap_or(false)
    }

    pub fn new(
        settings: ApiSettings,
        commands: Sender<Command>,
        bind: BindOptions,
        addr: SocketAddr,
        tags: BTreeSet<String>,
    ) -> State {
        State {
            settings,
            commands,
            bind,
            addr,
            sessions: Mutex::new(Sessions::default()),
            bans: Mutex::new(Bans::default()),
            sync: Mutex::new(SyncState::default()),
            free_tags: Mutex::new(tags),
            basic_verified: Mutex::new(None),
            metrics: metrics::ApiCounters::default(),
        }
    }
}

pub(super) type Answer = Result<ApiResponse, ApiResponse>;

pub(super) fn bad(e: FormError) -> ApiResponse {
    ApiResponse::text(400, &e.to_string())
}

pub(super) fn command_error(e: CommandError) -> ApiResponse {
    match e {
        CommandError::UnknownTorrent(_) => ApiResponse::text(404, "Not Found"),
        CommandError::UnknownCategory(_) => ApiResponse::text(409, "Incorrect category name"),
        CommandError::Duplicate { .. } => ApiResponse::text(409, &e.to_string()),
        CommandError::Invalid(why) => ApiResponse::text(400, &why),
        CommandError::Busy(_) | CommandError::Stopping => ApiResponse::text(503, &e.to_string()),
        CommandError::Store(_) | CommandError::Engine(_) => ApiResponse::text(500, &e.to_string()),
    }
}

/// Sends a command and waits for its answer.
pub(super) fn ask<T>(
    state: &State,
    make: impl FnOnce(Reply<T>) -> Command,
) -> Result<T, CommandError> {
    let (tx, rx) = bounded(1);
    match state.commands.try_send(make(tx)) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => return Err(CommandError::Busy(COMMAND_QUEUE_MAX)),
        Err(TrySendError::Disconnected(_)) => return Err(CommandError::Stopping),
    }
    match rx.recv_timeout(CORE_REPLY_TIMEOUT) {
        Ok(r) => r,
        Err(_) => Err(CommandError::Busy(COMMAND_QUEUE_MAX)),
    }
}

pub(super) fn call<T>(
    state: &State,
    make: impl FnOnce(Reply<T>) -> Command,
) -> Result<T, ApiResponse> {
    ask(state, make).map_err(command_error)
}

/// An action on several torrents: unknown hashes are skipped (as
/// qBittorrent does), the rest acted on.
pub(super) fn each(
    state: &State,
    which: Selector,
    make: impl Fn(Selector, Reply<usize>) -> Command,
) -> Result<usize, ApiResponse> {
    let mut which = which;
    loop {
        match ask(state, |r| make(which.clone(), r)) {
            Err(CommandError::UnknownTorrent(h)) => match &mut which {
                Selector::Hashes(list) => {
                    list.retain(|x| *x != h);
                    if list.is_empty() {
                        return Ok(0);
                    }
                }
                Selector::All => return Ok(0),
            },
            other => return other.map_err(command_error),
        }
    }
}

/// `hashes=a|b|c` or `all`; invalid hashes are skipped.
fn selector(p: &Params) -> Result<Selector, ApiResponse> {
    let raw = p
        .get("hashes")
        .or_else(|| p.get("hash"))
        .ok_or_else(|| bad(FormError::Missing("hashes".into())))?;
    if raw.trim().eq_ignore_ascii_case("all") {
        return Ok(Selector::All);
    }
    let hashes: Vec<InfoHash> = p
        .list(
            if p.get("hashes").is_some() {
                "hashes"
            } else {
                "hash"
            },
            '|',
        )
        .iter()
        .filter_map(|h| InfoHash::from_hex(h).ok())
        .collect();
    Ok(Selector::Hashes(hashes))
}

/// The one torrent named by `hash` (404 when unknown or malformed).
fn one_hash(p: &Params) -> Result<InfoHash, ApiResponse> {
    let h = p.require("hash").map_err(bad)?;
    InfoHash::from_hex(h.trim()).map_err(|_| ApiResponse::text(404, "Not Found"))
}

pub(super) fn list(state: &State) -> Result<Vec<TorrentView>, ApiResponse> {
    call(state, |reply| Command::List { reply })
}

pub(super) fn config(state: &State) -> Result<ConfigView, ApiResponse> {
    call(state, |reply| Command::Config { reply })
}

/// One torrent (404 when unknown), without a fresh snapshot of all.
fn view(state: &State, hash: InfoHash) -> Result<TorrentView, ApiResponse> {
    call(state, |reply| Command::Get { hash, reply })
}

pub(super) fn unix_now() -> i64 {
    crate::daemon::core::unix_now()
}

/// The session id in the `Cookie` header(s): the first `SID=` among the
/// `;`-separated items (attributes a client echoes back are ignored).
fn sid_of(cookie: &str) -> Option<&str> {
    cookie
        .split(';')
        .map(str::trim)
        .find_map(|c| c.strip_prefix("SID="))
        .filter(|s| !s.is_empty())
}

/// `Authorization: Basic` credentials (tolerated as a login): `None`
/// without such a header, else whether they are right. A wrong one counts
/// as a failed login and a banned address is refused, as at `auth/login`.
fn basic_ok(state: &State, req: &ApiRequest) -> Option<bool> {
    use base64::Engine;
    use sha2::Digest;
    let b64 = req.authorization.as_deref()?.strip_prefix("Basic ")?;
    let now = Instant::now();
    if state
        .bans
        .lock()
        .map(|mut b| b.is_banned(req.peer, now))
        .unwrap_or(true)
    {
        return Some(false);
    }
    let text = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .unwrap_or_default();
    // A header that verified once is known by its digest: the password is
    // not hashed again for every request that carries it.
    let digest: [u8; 32] = sha2::Sha256::digest(b64.trim().as_bytes()).into();
    if state
        .basic_verified
        .lock()
        .is_ok_and(|v| v.as_ref() == Some(&digest))
    {
        return Some(true);
    }
    let (user, pass) = text.split_once(':').unwrap_or(("", ""));
    let ok = credentials_ok(state, user, pass);
    record_login(state, req.peer, ok);
    if ok {
        if let Ok(mut v) = state.basic_verified.lock() {
            *v = Some(digest);
        }
    }
    Some(ok)
}

/// Whether `user`/`pass` are right; the password is hashed whatever the
/// user name, so the time taken does not tell a right name.
fn credentials_ok(state: &State, user: &str, pass: &str) -> bool {
    let password_ok = state.settings.password_hash.verify(pass);
    let user_ok = constant_time_eq(user.as_bytes(), state.settings.username.as_bytes());
    password_ok & user_ok
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// Counts a login attempt (and logs a new ban).
fn record_login(state: &State, peer: IpAddr, ok: bool) {
    if ok {
        if let Ok(mut b) = state.bans.lock() {
            b.succeeded(peer);
        }
        return;
    }
    state.metrics.login_failed();
    let now_banned = state
        .bans
        .lock()
        .map(|mut b| b.failed(peer, Instant::now()))
        .unwrap_or(false);
    if now_banned {
        tracing::warn!(
            "Web API: {peer} banned for {} s after {} failed logins",
            super::auth::BAN_S,
            super::auth::BAN_AFTER_FAILURES
        );
    }
}

/// The state database's key for the tag list.
pub const TAGS_KEY: &str = "api.tags";

/// Adds `tags` to the global tag list (bounded); a change is kept in the
/// state database.
pub(super) fn remember_tags<'a>(state: &State, tags: impl IntoIterator<Item = &'a String>) {
    let mut changed = false;
    if let Ok(mut free) = state.free_tags.lock() {
        for t in tags {
            if free.len() >= FREE_TAGS_MAX {
                break;
            }
            changed |= free.insert(t.clone());
        }
    }
    if changed {
        save_tags(state);
    }
}

/// Keeps the tag list in the state database (a failure is logged: the
/// list then lives on until the daemon stops).
fn save_tags(state: &State) {
    let Ok(list) = state.free_tags.lock().map(|t| t.clone()) else {
        return;
    };
    let value = serde_json::to_vec(&list).unwrap_or_default();
    if let Err(e) = ask(state, |reply| Command::PutValue {
        key: TAGS_KEY.to_string(),
        value,
        reply,
    }) {
        tracing::warn!("Web API: the tag list was not saved: {e}");
    }
}

/// The tag list kept by an earlier run (none when it does not read).
pub fn saved_tags(value: Option<&[u8]>) -> BTreeSet<String> {
    value
        .and_then(|v| serde_json::from_slice::<BTreeSet<String>>(v).ok())
        .map(|t| t.into_iter().take(FREE_TAGS_MAX).collect())
        .unwrap_or_default()
}

/// The caller's session id, if logged in ("basic-IP" for a Basic header).
fn session(state: &State, req: &ApiRequest) -> Option<String> {
    if let Some(sid) = sid_of(&req.cookie) {
        let ok = state
            .sessions
            .lock()
            .map(|mut s| s.check(sid, Instant::now()))
            .unwrap_or(false);
        if ok {
            return Some(sid.to_string());
        }
    }
    if basic_ok(state, req) == Some(true) {
        return Some(format!("basic-{}", req.peer));
    }
    None
}

/// Answers one request.
pub fn route(state: &State, req: ApiRequest) -> ApiResponse {
    state.metrics.request();
    let path = req.path.clone();
    if !path.starts_with("/api/") {
        if path == "/metrics" {
            if state.settings.metrics_require_login && session(state, &req).is_none() {
                return ApiResponse::text(403, "Forbidden");
            }
            return metrics::render(state);
        }
        return page::serve(&state.settings, &path);
    }
    let Some(endpoint) = path.strip_prefix("/api/v2/") else {
        return ApiResponse::text(404, "Not Found");
    };
    let endpoint = endpoint.trim_end_matches('/');
    let parse = || Params::parse(req.query.as_deref(), req.content_type.as_deref(), &req.body);
    match endpoint {
        "auth/login" => {
            return match parse() {
                Ok(p) => login(state, &req, &p),
                Err(e) => bad(e),
            }
        }
        "auth/logout" => {
            if let Some(sid) = sid_of(&req.cookie) {
                if let Ok(mut s) = state.sessions.lock() {
                    s.close(sid);
                }
                if let Ok(mut s) = state.sync.lock() {
                    s.forget(sid);
                }
            }
            let mut r = ApiResponse::ok();
            r.set_cookie = Some("SID=; HttpOnly; SameSite=Strict; path=/; Max-Age=0".into());
            return r;
        }
        _ => {}
    }
    // The session first: without one, nothing of the request is read.
    let Some(sid) = session(state, &req) else {
        return ApiResponse::text(403, "Forbidden");
    };
    if !READS.contains(&endpoint) && !is_action(endpoint) {
        return ApiResponse::text(404, "Not Found");
    }
    if is_action(endpoint) && req.method != "POST" {
        return ApiResponse::text(405, "Method Not Allowed");
    }
    let params = match parse() {
        Ok(p) => p,
        Err(e) => return bad(e),
    };
    match dispatch(state, &sid, endpoint, &params) {
        Ok(r) | Err(r) => r,
    }
}

fn login(state: &State, req: &ApiRequest, p: &Params) -> ApiResponse {
    let now = Instant::now();
    let banned = state
        .bans
        .lock()
        .map(|mut b| b.is_banned(req.peer, now))
        .unwrap_or(true);
    if banned {
        return ApiResponse::text(
            403,
            "Your IP address has been banned after too many failed authentication attempts.",
        );
    }
    let user = p.get("username").unwrap_or("");
    let pass = p.get("password").unwrap_or("");
    let ok = credentials_ok(state, user, pass);
    record_login(state, req.peer, ok);
    if !ok {
        return ApiResponse::text(200, "Fails.");
    }
    let sid = match state.sessions.lock() {
        Ok(mut s) => s.open(now),
        Err(_) => return ApiResponse::text(500, "internal error"),
    };
    let mut r = ApiResponse::text(200, "Ok.");
    r.set_cookie = Some(format!("SID={sid}; HttpOnly; SameSite=Strict; path=/"));
    r
}

/// Endpoints that only read: GET or POST.
const READS: &[&str] = &[
    "app/version",
    "app/webapiVersion",
    "app/buildInfo",
    "app/preferences",
    "app/defaultSavePath",
    "app/networkInterfaceList",
    "app/networkInterfaceAddressList",
    "app/cookies",
    "transfer/info",
    "transfer/speedLimitsMode",
    "transfer/uploadLimit",
    "transfer/downloadLimit",
    "sync/maindata",
    "sync/torrentPeers",
    "torrents/info",
    "torrents/count",
    "torrents/properties",
    "torrents/trackers",
    "torrents/webseeds",
    "torrents/files",
    "torrents/pieceStates",
    "torrents/pieceHashes",
    "torrents/categories",
    "torrents/tags",
    "torrents/uploadLimit",
    "torrents/downloadLimit",
    "torrents/export",
    "log/main",
    "log/peers",
    "rss/items",
    "search/plugins",
];

/// Endpoints that change something: POST only (a GET is answered 405).
const ACTIONS: &[&str] = &[
    "app/setPreferences",
    "app/shutdown",
    "app/setCookies",
    "transfer/toggleSpeedLimitsMode",
    "transfer/setSpeedLimitsMode",
    "transfer/setUploadLimit",
    "transfer/setDownloadLimit",
    "transfer/banPeers",
    "torrents/add",
    "torrents/delete",
    "torrents/stop",
    "torrents/pause",
    "torrents/start",
    "torrents/resume",
    "torrents/recheck",
    "torrents/reannounce",
    "torrents/setForceStart",
    "torrents/setLocation",
    "torrents/setSavePath",
    "torrents/setDownloadPath",
    "torrents/rename",
    "torrents/setCategory",
    "torrents/createCategory",
    "torrents/editCategory",
    "torrents/removeCategories",
    "torrents/addTags",
    "torrents/removeTags",
    "torrents/setTags",
    "torrents/createTags",
    "torrents/deleteTags",
    "torrents/setShareLimits",
    "torrents/setUploadLimit",
    "torrents/setDownloadLimit",
    "torrents/topPrio",
    "torrents/bottomPrio",
    "torrents/increasePrio",
    "torrents/decreasePrio",
    "torrents/setSuperSeeding",
    "torrents/setAutoManagement",
    "torrents/toggleSequentialDownload",
    "torrents/toggleFirstLastPiecePrio",
    "torrents/filePrio",
    "torrents/addTrackers",
    "torrents/editTracker",
    "torrents/removeTrackers",
    "torrents/addPeers",
    "torrents/renameFile",
    "torrents/renameFolder",
];

fn is_action(endpoint: &str) -> bool {
    ACTIONS.contains(&endpoint)
}

fn dispatch(state: &State, sid: &str, endpoint: &str, p: &Params) -> Answer {
    match endpoint {
        "app/version" => Ok(ApiResponse::text(200, QBT_VERSION)),
        "app/webapiVersion" => Ok(ApiResponse::text(200, WEBAPI_VERSION)),
        "app/buildInfo" => Ok(ApiResponse::json(&json!({
            "bitness": 64,
            "boost": "-",
            "libtorrent": concat!("ringseed ", env!("CARGO_PKG_VERSION")),
            "openssl": "-",
            "platform": "linux",
            "qt": "-",
            "zlib": "-",
        }))),
        "app/preferences" => {
            let c = config(state)?;
            Ok(ApiResponse::json(&serialize::preferences(
                &c,
                &state.settings.username,
                state.addr.port(),
            )))
        }
        "app/setPreferences" => super::app::set_preferences(state, p),
        "app/defaultSavePath" => {
            let c = config(state)?;
            Ok(ApiResponse::text(200, &c.download_dir.display().to_string()))
        }
        "app/networkInterfaceList" | "app/networkInterfaceAddressList" | "app/cookies" => {
            Ok(ApiResponse::json(&json!([])))
        }
        "app/shutdown" => Ok(ApiResponse::text(
            403,
            "ringseed is stopped by its service manager (systemctl stop ringseed), not through the Web API",
        )),
        "transfer/info" => {
            let views = list(state)?;
            let c = config(state)?;
            Ok(ApiResponse::json(&serialize::transfer_info(
                &serialize::totals(&views),
                &c,
            )))
        }
        "transfer/speedLimitsMode" => Ok(ApiResponse::text(200, "0")),
        "transfer/toggleSpeedLimitsMode" | "transfer/setSpeedLimitsMode" => {
            if p.get("mode") == Some("1") || endpoint.ends_with("toggleSpeedLimitsMode") {
                return Err(ApiResponse::text(
                    409,
                    "ringseed has no alternative speed limits; set limits.upload_rate and limits.download_rate",
                ));
            }
            Ok(ApiResponse::ok())
        }
        "transfer/uploadLimit" => {
            let c = config(state)?;
            Ok(ApiResponse::text(200, &c.config.limits.upload_rate.to_string()))
        }
        "transfer/downloadLimit" => {
            let c = config(state)?;
            Ok(ApiResponse::text(200, &c.config.limits.download_rate.to_string()))
        }
        "transfer/setUploadLimit" | "transfer/setDownloadLimit" => {
            let limit = rate(p, "limit")?;
            let up = endpoint.ends_with("setUploadLimit");
            let patch = if up {
                ConfigPatch {
                    upload_rate: Some(limit),
                    ..ConfigPatch::default()
                }
            } else {
                ConfigPatch {
                    download_rate: Some(limit),
                    ..ConfigPatch::default()
                }
            };
            set_config(state, patch)?;
            Ok(ApiResponse::ok())
        }
        "sync/maindata" => super::app::maindata(state, sid, p),
        "sync/torrentPeers" => {
            let hash = one_hash(p)?;
            let v = view(state, hash)?;
            let peers = call(state, |reply| Command::Peers { hash, reply })?;
            // Always a full update: a peer list is small, and clients
            // (Flood, VueTorrent) ask with rid=0 or take a full one.
            let rid = p.num::<u64>("rid").map_err(bad)?.unwrap_or(0);
            Ok(ApiResponse::json(&json!({
                "full_update": true,
                "peers": serialize::peers(&peers, &v),
                "rid": rid + 1,
                "show_flags": true,
            })))
        }
        "torrents/info" => super::torrents::info(state, p),
        "torrents/count" => Ok(ApiResponse::text(200, &list(state)?.len().to_string())),
        "torrents/properties" => {
            let v = view(state, one_hash(p)?)?;
            let c = config(state)?;
            Ok(ApiResponse::json(&serialize::properties(&v, &c, unix_now())))
        }
        "torrents/trackers" => Ok(ApiResponse::json(&serialize::trackers(&view(
            state,
            one_hash(p)?,
        )?))),
        "torrents/webseeds" => Ok(ApiResponse::json(&serialize::webseeds(&view(
            state,
            one_hash(p)?,
        )?))),
        "torrents/files" => {
            let hash = one_hash(p)?;
            let v = view(state, hash)?;
            let pieces = call(state, |reply| Command::Pieces { hash, reply })?;
            let mut files = serialize::files(&v, &pieces);
            if let (Some(wanted), Value::Array(all)) = (p.get("indexes"), &mut files) {
                let keep: BTreeSet<u64> = wanted
                    .split('|')
                    .filter_map(|i| i.trim().parse().ok())
                    .collect();
                all.retain(|f| f["index"].as_u64().is_some_and(|i| keep.contains(&i)));
            }
            Ok(ApiResponse::json(&files))
        }
        "torrents/pieceStates" => {
            let hash = one_hash(p)?;
            let v = view(state, hash)?;
            let pieces = call(state, |reply| Command::Pieces { hash, reply })?;
            Ok(ApiResponse::json(&serialize::piece_states(&v, &pieces)))
        }
        "torrents/pieceHashes" => Ok(ApiResponse::json(&serialize::piece_hashes(&view(
            state,
            one_hash(p)?,
        )?))),
        "torrents/export" => {
            let hash = one_hash(p)?;
            let bytes = call(state, |reply| Command::Export { hash, reply })?;
            Ok(ApiResponse::bytes("application/x-bittorrent", bytes))
        }
        "torrents/add" => super::torrents::add(state, p),
        "torrents/delete" => {
            let which = selector(p)?;
            let delete_files = p.bool("deleteFiles").map_err(bad)?.unwrap_or(false);
            each(state, which, |which, reply| Command::Remove {
                which,
                delete_files,
                reply,
            })?;
            Ok(ApiResponse::ok())
        }
        "torrents/stop" | "torrents/pause" => {
            each(state, selector(p)?, |which, reply| Command::Stop { which, reply })?;
            Ok(ApiResponse::ok())
        }
        "torrents/start" | "torrents/resume" => {
            each(state, selector(p)?, |which, reply| Command::Start { which, reply })?;
            Ok(ApiResponse::ok())
        }
        "torrents/recheck" => {
            each(state, selector(p)?, |which, reply| Command::Recheck { which, reply })?;
            Ok(ApiResponse::ok())
        }
        "torrents/reannounce" => {
            each(state, selector(p)?, |which, reply| Command::Reannounce {
                which,
                reply,
            })?;
            Ok(ApiResponse::ok())
        }
        "torrents/setForceStart" => {
            let on = p.bool("value").map_err(bad)?.unwrap_or(false);
            each(state, selector(p)?, |which, reply| Command::ForceStart {
                which,
                on,
                reply,
            })?;
            Ok(ApiResponse::ok())
        }
        "torrents/setLocation" => {
            let which = selector(p)?;
            move_to(state, which, p.require("location").map_err(bad)?)
        }
        "torrents/setSavePath" | "torrents/setDownloadPath" => {
            // qBittorrent 5 names the torrents `id` here.
            let which = match p.get("id") {
                Some(ids) if ids.trim().eq_ignore_ascii_case("all") => Selector::All,
                Some(_) => Selector::Hashes(
                    p.list("id", '|')
                        .iter()
                        .filter_map(|h| InfoHash::from_hex(h).ok())
                        .collect(),
                ),
                None => selector(p)?,
            };
            let raw = p
                .get("path")
                .or_else(|| p.get("savePath"))
                .ok_or_else(|| bad(FormError::Missing("path".into())))?;
            if endpoint.ends_with("setDownloadPath") {
                return Err(ApiResponse::text(
                    409,
                    "ringseed downloads into the save path (no separate download path)",
                ));
            }
            move_to(state, which, raw)
        }
        "torrents/rename" => {
            let hash = one_hash(p)?;
            let name = p.require("name").map_err(bad)?.to_string();
            call(state, |reply| Command::Rename { hash, name, reply })?;
            Ok(ApiResponse::ok())
        }
        "torrents/setCategory" => {
            let which = selector(p)?;
            let category = p.get("category").unwrap_or("").to_string();
            each(state, which, |which, reply| Command::SetCategory {
                which,
                category: category.clone(),
                reply,
            })?;
            Ok(ApiResponse::ok())
        }
        "torrents/categories" => {
            let cats = call(state, |reply| Command::Categories { reply })?;
            let m: Map<String, Value> = cats
                .iter()
                .map(|c| {
                    (
                        c.name.clone(),
                        serialize::category(&c.name, c.save_path.as_deref()),
                    )
                })
                .collect();
            Ok(ApiResponse::json(&Value::Object(m)))
        }
        "torrents/createCategory" | "torrents/editCategory" => {
            let name = p.require("category").map_err(bad)?.trim().to_string();
            if name.is_empty() {
                return Err(ApiResponse::text(400, "Category name cannot be empty"));
            }
            let save = p.get("savePath").unwrap_or("").trim();
            let save_path = if save.is_empty() {
                None
            } else {
                Some(location(save)?)
            };
            let cats = call(state, |reply| Command::Categories { reply })?;
            let exists = cats.iter().any(|c| c.name == name);
            if endpoint.ends_with("createCategory") && exists {
                return Err(ApiResponse::text(409, "Category already exists"));
            }
            if endpoint.ends_with("editCategory") && !exists {
                return Err(ApiResponse::text(409, "Category editing failed"));
            }
            call(state, |reply| Command::SetCategoryDef {
                category: Category { name, save_path },
                reply,
            })?;
            Ok(ApiResponse::ok())
        }
        "torrents/removeCategories" => {
            let names: Vec<String> = p
                .list("categories", '\n')
                .iter()
                .map(|s| s.to_string())
                .collect();
            call(state, |reply| Command::RemoveCategories { names, reply })?;
            Ok(ApiResponse::ok())
        }
        "torrents/tags" => {
            let views = list(state)?;
            Ok(ApiResponse::json(&json!(all_tags(state, &views))))
        }
        "torrents/addTags" | "torrents/removeTags" | "torrents/setTags" => {
            let which = selector(p)?;
            let tags: BTreeSet<String> = tag_set(p);
            let views = list(state)?;
            let chosen = |v: &&TorrentView| which.includes(&v.record.info_hash);
            if endpoint.ends_with("setTags") {
                remember_tags(state, &tags);
                // Each torrent gets exactly these tags.
                for v in views.iter().filter(chosen) {
                    let drop: BTreeSet<String> =
                        v.record.tags.difference(&tags).cloned().collect();
                    let h = Selector::Hashes(vec![v.record.info_hash]);
                    if !drop.is_empty() {
                        each(state, h.clone(), |which, reply| Command::RemoveTags {
                            which,
                            tags: drop.clone(),
                            reply,
                        })?;
                    }
                    if !tags.is_empty() {
                        each(state, h, |which, reply| Command::AddTags {
                            which,
                            tags: tags.clone(),
                            reply,
                        })?;
                    }
                }
            } else if endpoint.ends_with("addTags") {
                // No tags: nothing to do (qBittorrent answers 200).
                remember_tags(state, &tags);
                if !tags.is_empty() {
                    each(state, which, |which, reply| Command::AddTags {
                        which,
                        tags: tags.clone(),
                        reply,
                    })?;
                }
            } else {
                // No tags: remove them all (qBittorrent's rule).
                let tags = if tags.is_empty() {
                    views
                        .iter()
                        .filter(chosen)
                        .flat_map(|v| v.record.tags.iter().cloned())
                        .collect()
                } else {
                    tags
                };
                if !tags.is_empty() {
                    each(state, which, |which, reply| Command::RemoveTags {
                        which,
                        tags: tags.clone(),
                        reply,
                    })?;
                }
            }
            Ok(ApiResponse::ok())
        }
        "torrents/createTags" => {
            let tags = tag_set(p);
            for t in &tags {
                if t.len() > crate::daemon::record::NAME_BYTES_MAX || t.contains(['\n', '\r']) {
                    return Err(ApiResponse::text(
                        400,
                        &format!("tag {t:?}: expected at most 255 bytes without line breaks"),
                    ));
                }
            }
            remember_tags(state, &tags);
            Ok(ApiResponse::ok())
        }
        "torrents/deleteTags" => {
            let tags: BTreeSet<String> = tag_set(p);
            if let Ok(mut free) = state.free_tags.lock() {
                free.retain(|t| !tags.contains(t));
            }
            save_tags(state);
            if !tags.is_empty() {
                each(state, Selector::All, |which, reply| Command::RemoveTags {
                    which,
                    tags: tags.clone(),
                    reply,
                })?;
            }
            Ok(ApiResponse::ok())
        }
        "torrents/setShareLimits" => {
            let which = selector(p)?;
            let ratio = p.num::<f64>("ratioLimit").map_err(bad)?.unwrap_or(-2.0);
            let minutes = p.num::<i64>("seedingTimeLimit").map_err(bad)?.unwrap_or(-2);
            let ratio = match ratio {
                -2.0 => Limit::Global,
                -1.0 => Limit::Unlimited,
                r if (0.0..=RATIO_LIMIT_MAX).contains(&r) => Limit::Value(r),
                r => return Err(ApiResponse::text(400, &format!("ratioLimit {r}: out of range"))),
            };
            let seeding_time_s = match minutes {
                -2 => Limit::Global,
                -1 => Limit::Unlimited,
                m if m >= 0 => Limit::Value((m as u64).saturating_mul(60)),
                m => {
                    return Err(ApiResponse::text(
                        400,
                        &format!("seedingTimeLimit {m}: out of range"),
                    ))
                }
            };
            let limits = ShareLimits {
                ratio,
                seeding_time_s,
            };
            each(state, which, |which, reply| Command::SetShareLimits {
                which,
                limits,
                reply,
            })?;
            Ok(ApiResponse::ok())
        }
        "torrents/setUploadLimit" | "torrents/setDownloadLimit" => {
            let which = selector(p)?;
            let limit = rate(p, "limit")?;
            let up = endpoint.ends_with("setUploadLimit");
            let views = list(state)?;
            let chosen: Vec<&TorrentView> = views
                .iter()
                .filter(|v| which.includes(&v.record.info_hash))
                .collect();
            for v in chosen {
                let mut limits = v.record.rate_limits;
                if up {
                    limits.upload = Some(limit);
                } else {
                    limits.download = Some(limit);
                }
                each(
                    state,
                    Selector::Hashes(vec![v.record.info_hash]),
                    |which, reply| Command::SetRateLimits {
                        which,
                        limits,
                        reply,
                    },
                )?;
            }
            Ok(ApiResponse::ok())
        }
        "torrents/uploadLimit" | "torrents/downloadLimit" => {
            let which = selector(p)?;
            let views = list(state)?;
            let c = config(state)?;
            let up = endpoint.ends_with("uploadLimit");
            let m: Map<String, Value> = views
                .iter()
                .filter(|v| which.includes(&v.record.info_hash))
                .map(|v| {
                    let (u, d) = serialize::rate_limits(v, &c);
                    (v.record.info_hash.to_hex(), json!(if up { u } else { d }))
                })
                .collect();
            Ok(ApiResponse::json(&Value::Object(m)))
        }
        "torrents/topPrio" | "torrents/bottomPrio" | "torrents/increasePrio"
        | "torrents/decreasePrio" => {
            let c = config(state)?;
            if !c.config.queue.enabled {
                return Err(ApiResponse::text(409, "Torrent queueing must be enabled"));
            }
            let to = match endpoint {
                "torrents/topPrio" => QueueMove::Top,
                "torrents/bottomPrio" => QueueMove::Bottom,
                "torrents/increasePrio" => QueueMove::Up,
                _ => QueueMove::Down,
            };
            each(state, selector(p)?, |which, reply| Command::QueueMove {
                which,
                to,
                reply,
            })?;
            Ok(ApiResponse::ok())
        }
        "torrents/setSuperSeeding" | "torrents/setAutoManagement"
        | "torrents/toggleSequentialDownload" | "torrents/toggleFirstLastPiecePrio" => {
            // Accepted and left off (ringseed has neither super-seeding,
            // automatic management, nor sequential or first/last piece
            // priority): the torrents keep reporting `false`.
            selector(p)?;
            if endpoint.starts_with("torrents/set") {
                p.bool("value").map_err(bad)?;
                p.bool("enable").map_err(bad)?;
            }
            Ok(ApiResponse::ok())
        }
        "torrents/filePrio" => {
            let hash = one_hash(p)?;
            view(state, hash)?;
            p.require("id").map_err(bad)?;
            let prio = p.num::<i64>("priority").map_err(bad)?;
            match prio {
                Some(1) | Some(6) | Some(7) => Ok(ApiResponse::ok()),
                Some(0) => Err(ApiResponse::text(
                    409,
                    "ringseed downloads every file of a torrent (file priorities are not supported yet)",
                )),
                _ => Err(ApiResponse::text(400, "Priority is not valid")),
            }
        }
        "torrents/addTrackers" | "torrents/editTracker" | "torrents/removeTrackers"
        | "torrents/addPeers" | "torrents/renameFile" | "torrents/renameFolder" => {
            one_hash(p).or_else(|_| selector(p).map(|_| InfoHash([0; 20])))?;
            Err(ApiResponse::text(
                409,
                &format!("{endpoint}: not supported by ringseed yet (docs/api.md)"),
            ))
        }
        "log/main" | "log/peers" | "search/plugins" => Ok(ApiResponse::json(&json!([]))),
        "rss/items" => Ok(ApiResponse::json(&json!({}))),
        _ => Err(ApiResponse::text(404, "Not Found")),
    }
}

/// Moves the selected torrents' data to the folder `raw` names.
fn move_to(state: &State, which: Selector, raw: &str) -> Answer {
    let dir = location(raw)?;
    each(state, which, |which, reply| Command::Move {
        which,
        dir: dir.clone(),
        reply,
    })?;
    Ok(ApiResponse::ok())
}

/// The `tags` parameter: comma-separated names.
fn tag_set(p: &Params) -> BTreeSet<String> {
    p.list("tags", ',').iter().map(|s| s.to_string()).collect()
}

/// A rate in bytes/s; 0 or negative: unlimited.
pub(super) fn rate(p: &Params, name: &str) -> Result<u64, ApiResponse> {
    let v = p
        .num::<i64>(name)
        .map_err(bad)?
        .ok_or_else(|| bad(FormError::Missing(name.into())))?;
    Ok(u64::try_from(v).unwrap_or(0))
}

/// A save path from a client: absolute, without `..`.
pub(super) fn location(raw: &str) -> Result<PathBuf, ApiResponse> {
    let p = PathBuf::from(raw.trim());
    if raw.trim().is_empty() {
        return Err(ApiResponse::text(400, "Save path cannot be empty"));
    }
    if !p.is_absolute() {
        return Err(ApiResponse::text(
            400,
            &format!("save path {raw:?} must be absolute"),
        ));
    }
    if p.components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(ApiResponse::text(
            400,
            &format!("save path {raw:?} must not contain \"..\""),
        ));
    }
    Ok(p)
}

pub(super) fn set_config(state: &State, patch: ConfigPatch) -> Result<Vec<String>, ApiResponse> {
    call(state, |reply| Command::SetConfig { patch, reply })
}

pub(super) fn all_tags(state: &State, views: &[TorrentView]) -> BTreeSet<String> {
    let mut tags: BTreeSet<String> = state
        .free_tags
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    for v in views {
        tags.extend(v.record.tags.iter().cloned());
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sid_is_found_among_echoed_attributes() {
        assert_eq!(
            sid_of("SID=abc; HttpOnly; path=/; SameSite=Strict"),
            Some("abc")
        );
        assert_eq!(sid_of("other=1; SID=xyz"), Some("xyz"));
        assert_eq!(sid_of("SID="), None);
        assert_eq!(sid_of(""), None);
    }

    #[test]
    fn save_paths_must_be_absolute_without_parent_steps() {
        assert!(location("/data/x").is_ok());
        assert_eq!(location("data").unwrap_err().status, 400);
        assert_eq!(location("/data/../etc").unwrap_err().status, 400);
        assert_eq!(location("  ").unwrap_err().status, 400);
    }

    #[test]
    fn no_endpoint_is_both_a_read_and_an_action() {
        for r in READS {
            assert!(!ACTIONS.contains(r), "{r}");
        }
    }

    #[test]
    fn reads_are_not_actions() {
        assert!(!is_action("torrents/info"));
        assert!(!is_action("sync/maindata"));
        assert!(is_action("torrents/delete"));
        assert!(is_action("torrents/add"));
        assert!(is_action("app/setPreferences"));
    }
}
