//! The control socket's protocol: one JSON object per line each way. A
//! request is `{"cmd": "<name>", ...fields}`; its answer is
//! `{"ok": <value>}` or `{"error": "<what was wrong>"}`. This module holds
//! the serde types, checks a request's values and turns it into a core
//! [`Command`] with a fresh reply channel; it does no IO.
//!
//! Limits follow qBittorrent: a rate limit of -1 (or 0) is unlimited, a
//! share limit of -1 is unlimited and -2 the global value; an absent limit
//! is the global or default value.
//!
//! Answers: `add` → `{"hash": "<40 hex>"}`; `list` → an array of
//! [`TorrentInfo`]; `categories` → an array of [`CategoryInfo`];
//! `set_category_def` → `null`; every other command → how many torrents
//! (or categories) changed.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crossbeam_channel::{bounded, Receiver};
use ringseed::InfoHash;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::daemon::command::{AddRequest, Category, Command, CommandError, Selector, TorrentView};
use crate::daemon::record::{Limit, RateLimits, ShareLimits, Source};

/// Which torrents a request is about: a list of 40-hex info-hashes, or
/// the word `"all"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Hashes {
    Word(String),
    List(Vec<String>),
}

impl Hashes {
    pub fn all() -> Hashes {
        Hashes::Word("all".to_string())
    }
}

/// `add`: exactly one of `torrent_hex` (the .torrent file's bytes in hex)
/// and `magnet`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torrent_hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub magnet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_path: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default)]
    pub stopped: bool,
    #[serde(default)]
    pub skip_check: bool,
    /// Bytes per second; -1 (or 0) unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_limit: Option<i64>,
    /// -1 unlimited, -2 global.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_limit: Option<f64>,
    /// Minutes; -1 unlimited, -2 global.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeding_time_limit_min: Option<i64>,
}

/// A request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Add(AddArgs),
    List,
    Stop {
        hashes: Hashes,
    },
    Start {
        hashes: Hashes,
    },
    ForceStart {
        hashes: Hashes,
        #[serde(default = "yes")]
        on: bool,
    },
    Recheck {
        hashes: Hashes,
    },
    Reannounce {
        hashes: Hashes,
    },
    /// `""` removes the category.
    SetCategory {
        hashes: Hashes,
        category: String,
    },
    AddTags {
        hashes: Hashes,
        tags: Vec<String>,
    },
    RemoveTags {
        hashes: Hashes,
        tags: Vec<String>,
    },
    /// An absent limit goes back to the global value.
    SetShareLimits {
        hashes: Hashes,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ratio_limit: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seeding_time_limit_min: Option<i64>,
    },
    /// An absent limit goes back to the configured default.
    SetRateLimits {
        hashes: Hashes,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upload_limit: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        download_limit: Option<i64>,
    },
    Move {
        hashes: Hashes,
        dir: PathBuf,
    },
    Remove {
        hashes: Hashes,
        #[serde(default)]
        delete_files: bool,
    },
    Categories,
    /// Creates or edits a category; no `save_path`: the default download
    /// dir.
    SetCategoryDef {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        save_path: Option<PathBuf>,
    },
    RemoveCategories {
        names: Vec<String>,
    },
}

fn yes() -> bool {
    true
}

impl Request {
    /// The request's name, as in `"cmd"`.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Add(_) => "add",
            Request::List => "list",
            Request::Stop { .. } => "stop",
            Request::Start { .. } => "start",
            Request::ForceStart { .. } => "force_start",
            Request::Recheck { .. } => "recheck",
            Request::Reannounce { .. } => "reannounce",
            Request::SetCategory { .. } => "set_category",
            Request::AddTags { .. } => "add_tags",
            Request::RemoveTags { .. } => "remove_tags",
            Request::SetShareLimits { .. } => "set_share_limits",
            Request::SetRateLimits { .. } => "set_rate_limits",
            Request::Move { .. } => "move",
            Request::Remove { .. } => "remove",
            Request::Categories => "categories",
            Request::SetCategoryDef { .. } => "set_category_def",
            Request::RemoveCategories { .. } => "remove_categories",
        }
    }
}

/// The answer to `add`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddAnswer {
    pub hash: String,
}

/// A category as `categories` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryInfo {
    pub name: String,
    /// `null`: the default download dir.
    pub save_path: Option<PathBuf>,
}

/// A file's size and modification time at the last save.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStampInfo {
    pub size: Option<u64>,
    pub mtime_ns: i64,
}

/// One torrent as `list` answers it: every field of the core's
/// [`TorrentView`] and its record, but the .torrent bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TorrentInfo {
    pub hash: String,
    pub name: String,
    pub state: String,
    /// 0.0 to 1.0.
    pub progress: f64,
    /// Pieces verified on disk now, of `piece_count`.
    pub pieces_have: u32,
    pub piece_count: u32,
    pub total_length: u64,
    pub bytes_left: u64,
    /// Bytes per second.
    pub rate_up: u64,
    pub rate_down: u64,
    pub peers: usize,
    pub message: Option<String>,
    /// `torrent` or `magnet`.
    pub source: String,
    /// The URI when `source` is `magnet`.
    pub magnet: Option<String>,
    pub save_path: PathBuf,
    pub category: String,
    pub tags: Vec<String>,
    /// `started` or `stopped`.
    pub wanted: String,
    pub force_start: bool,
    /// Uploaded over downloaded (over the size when nothing was
    /// downloaded), as qBittorrent.
    pub ratio: f64,
    /// `null` global, -1 unlimited.
    pub ratio_limit: Option<f64>,
    /// `null` global, -1 unlimited.
    pub seeding_time_limit_s: Option<i64>,
    /// Bytes per second; `null` the configured default, -1 unlimited.
    pub upload_limit: Option<i64>,
    pub download_limit: Option<i64>,
    /// Unix seconds.
    pub added_at: i64,
    pub completed_at: Option<i64>,
    pub uploaded: u64,
    pub downloaded: u64,
    pub seeding_time_s: u64,
    pub active_time_s: u64,
    /// The verified pieces' bitfield in hex (BEP 3 order); `null` never
    /// checked.
    pub pieces: Option<String>,
    pub file_stamps: Vec<FileStampInfo>,
    pub moving_to: Option<PathBuf>,
}

/// Lowercase hex of `bytes`.
pub fn hex_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// The bytes of a hex text; the error names what was wrong.
pub fn hex_decode(text: &str) -> Result<Vec<u8>, String> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return Err(format!(
            "hex has an even number of digits, found {}",
            bytes.len()
        ));
    }
    let mut out = Vec::with_capacity(bytes.len() / 2);
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let (Some(hi), Some(lo)) = (digit(pair[0]), digit(pair[1])) else {
            return Err(format!("not a hex digit near character {}", 2 * i));
        };
        out.push(hi << 4 | lo);
    }
    Ok(out)
}

impl TorrentInfo {
    pub fn from_view(v: &TorrentView) -> TorrentInfo {
        let r = &v.record;
        let (source, magnet) = match &r.source {
            Source::Torrent(_) => ("torrent", None),
            Source::Magnet(uri) => ("magnet", Some(uri.clone())),
        };
        let ratio = crate::daemon::core::policy::ratio(&crate::daemon::core::policy::ShareFacts {
            uploaded: r.uploaded,
            downloaded: r.downloaded,
            total_length: v.total_length,
            seeding_time_s: r.seeding_time_s,
        });
        TorrentInfo {
            hash: r.info_hash.to_hex(),
            name: r.name.clone(),
            state: v.state.clone(),
            progress: v.progress,
            pieces_have: v.pieces_have,
            piece_count: v.piece_count,
            total_length: v.total_length,
            bytes_left: v.bytes_left,
            rate_up: v.rate_up,
            rate_down: v.rate_down,
            peers: v.peers,
            message: v.message.clone(),
            source: source.to_string(),
            magnet,
            save_path: r.save_path.clone(),
            category: r.category.clone(),
            tags: r.tags.iter().cloned().collect(),
            wanted: r.wanted.as_str().to_string(),
            force_start: r.force_start,
            ratio,
            ratio_limit: limit_out(r.share_limits.ratio, |x| x),
            seeding_time_limit_s: limit_out(r.share_limits.seeding_time_s, |s| {
                i64::try_from(s).unwrap_or(i64::MAX)
            }),
            upload_limit: rate_out(r.rate_limits.upload),
            download_limit: rate_out(r.rate_limits.download),
            added_at: r.added_at,
            completed_at: r.completed_at,
            uploaded: r.uploaded,
            downloaded: r.downloaded,
            seeding_time_s: r.seeding_time_s,
            active_time_s: r.active_time_s,
            pieces: r.pieces.as_deref().map(hex_encode),
            file_stamps: r
                .file_stamps
                .iter()
                .map(|s| FileStampInfo {
                    size: s.size,
                    mtime_ns: s.mtime_ns,
                })
                .collect(),
            moving_to: r.moving_to.clone(),
        }
    }
}

/// A share limit as JSON: `null` global, -1 unlimited.
fn limit_out<T, U: From<i8>>(l: Limit<T>, f: impl Fn(T) -> U) -> Option<U> {
    match l {
        Limit::Global => None,
        Limit::Unlimited => Some(U::from(-1)),
        Limit::Value(v) => Some(f(v)),
    }
}

/// A rate limit as JSON: `null` the default, -1 unlimited.
fn rate_out(l: Option<u64>) -> Option<i64> {
    match l {
        None => None,
        Some(0) => Some(-1),
        Some(n) => Some(i64::try_from(n).unwrap_or(i64::MAX)),
    }
}

/// Where the core's answer to a command will come, by its type.
#[derive(Debug)]
pub enum Waiter {
    Hash(Receiver<Result<InfoHash, CommandError>>),
    Views(Receiver<Result<Vec<TorrentView>, CommandError>>),
    Count(Receiver<Result<usize, CommandError>>),
    Categories(Receiver<Result<Vec<Category>, CommandError>>),
    Unit(Receiver<Result<(), CommandError>>),
}

/// The core's answer as the JSON value of `{"ok": ...}`.
pub fn answer_json(answer: Answer) -> Value {
    match answer {
        Answer::Hash(h) => serde_json::json!({ "hash": h.to_hex() }),
        Answer::Views(views) => Value::Array(
            views
                .iter()
                .map(|v| serde_json::to_value(TorrentInfo::from_view(v)).unwrap_or(Value::Null))
                .collect(),
        ),
        Answer::Count(n) => Value::from(n),
        Answer::Categories(cats) => Value::Array(
            cats.into_iter()
                .map(|c| {
                    serde_json::to_value(CategoryInfo {
                        name: c.name,
                        save_path: c.save_path,
                    })
                    .unwrap_or(Value::Null)
                })
                .collect(),
        ),
        Answer::Unit => Value::Null,
    }
}

/// A core's answer, whatever its type.
#[derive(Debug)]
pub enum Answer {
    Hash(InfoHash),
    Views(Vec<TorrentView>),
    Count(usize),
    Categories(Vec<Category>),
    Unit,
}

/// The command for `req`, and where its answer will come; the error says
/// what in the request was wrong.
pub fn to_command(req: Request) -> Result<(Command, Waiter), String> {
    macro_rules! count {
        ($variant:ident { $($field:ident : $value:expr),* $(,)? }) => {{
            let (reply, rx) = bounded(1);
            (Command::$variant { $($field: $value,)* reply }, Waiter::Count(rx))
        }};
    }
    Ok(match req {
        Request::Add(a) => {
            let add = add_request(a)?;
            let (reply, rx) = bounded(1);
            (
                Command::Add {
                    add: Box::new(add),
                    reply,
                },
                Waiter::Hash(rx),
            )
        }
        Request::List => {
            let (reply, rx) = bounded(1);
            (Command::List { reply }, Waiter::Views(rx))
        }
        Request::Stop { hashes } => count!(Stop {
            which: selector(&hashes)?
        }),
        Request::Start { hashes } => count!(Start {
            which: selector(&hashes)?
        }),
        Request::ForceStart { hashes, on } => count!(ForceStart {
            which: selector(&hashes)?,
            on: on
        }),
        Request::Recheck { hashes } => count!(Recheck {
            which: selector(&hashes)?
        }),
        Request::Reannounce { hashes } => count!(Reannounce {
            which: selector(&hashes)?
        }),
        Request::SetCategory { hashes, category } => count!(SetCategory {
            which: selector(&hashes)?,
            category: category
        }),
        Request::AddTags { hashes, tags } => count!(AddTags {
            which: selector(&hashes)?,
            tags: tag_set(tags)?
        }),
        Request::RemoveTags { hashes, tags } => count!(RemoveTags {
            which: selector(&hashes)?,
            tags: tag_set(tags)?
        }),
        Request::SetShareLimits {
            hashes,
            ratio_limit,
            seeding_time_limit_min,
        } => count!(SetShareLimits {
            which: selector(&hashes)?,
            limits: share_limits(ratio_limit, seeding_time_limit_min)?
        }),
        Request::SetRateLimits {
            hashes,
            upload_limit,
            download_limit,
        } => count!(SetRateLimits {
            which: selector(&hashes)?,
            limits: RateLimits {
                upload: rate_limit("upload_limit", upload_limit)?,
                download: rate_limit("download_limit", download_limit)?,
            }
        }),
        Request::Move { hashes, dir } => {
            if dir.as_os_str().is_empty() {
                return Err("move: dir is empty".to_string());
            }
            count!(Move {
                which: selector(&hashes)?,
                dir: dir
            })
        }
        Request::Remove {
            hashes,
            delete_files,
        } => count!(Remove {
            which: selector(&hashes)?,
            delete_files: delete_files
        }),
        Request::Categories => {
            let (reply, rx) = bounded(1);
            (Command::Categories { reply }, Waiter::Categories(rx))
        }
        Request::SetCategoryDef { name, save_path } => {
            if name.is_empty() {
                return Err("a category needs a name".to_string());
            }
            let (reply, rx) = bounded(1);
            (
                Command::SetCategoryDef {
                    category: Category { name, save_path },
                    reply,
                },
                Waiter::Unit(rx),
            )
        }
        Request::RemoveCategories { names } => {
            if names.is_empty() {
                return Err("remove_categories: no category named".to_string());
            }
            count!(RemoveCategories { names: names })
        }
    })
}

/// The torrents `hashes` names; the error names a bad info-hash.
pub fn selector(hashes: &Hashes) -> Result<Selector, String> {
    match hashes {
        Hashes::Word(w) if w == "all" => Ok(Selector::All),
        Hashes::Word(w) => Err(format!(
            "hashes must be a list of info-hashes or \"all\", found {w:?}"
        )),
        Hashes::List(list) if list.is_empty() => {
            Err("no torrent named: give info-hashes or \"all\"".to_string())
        }
        Hashes::List(list) => list
            .iter()
            .map(|h| InfoHash::from_hex(h).map_err(|e| format!("bad info-hash {h:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Selector::Hashes),
    }
}

fn tag_set(tags: Vec<String>) -> Result<BTreeSet<String>, String> {
    if tags.is_empty() {
        return Err("no tag named".to_string());
    }
    Ok(tags.into_iter().collect())
}

/// A rate limit from JSON: absent → the default, -1 or 0 → unlimited.
fn rate_limit(field: &str, v: Option<i64>) -> Result<Option<u64>, String> {
    match v {
        None => Ok(None),
        Some(-1) | Some(0) => Ok(Some(0)),
        Some(n) => u64::try_from(n).map(Some).map_err(|_| {
            format!("{field} {n} is not a rate: give bytes per second, or -1 for unlimited")
        }),
    }
}

fn share_limits(ratio: Option<f64>, minutes: Option<i64>) -> Result<ShareLimits, String> {
    let ratio = match ratio {
        None => Limit::Global,
        Some(-2.0) => Limit::Global,
        Some(-1.0) => Limit::Unlimited,
        Some(r) if r.is_finite() && r >= 0.0 => Limit::Value(r),
        Some(r) => {
            return Err(format!(
                "ratio_limit {r} is not a ratio: give a number >= 0, -1 for unlimited or -2 for the global limit"
            ))
        }
    };
    let seeding_time_s = match minutes {
        None | Some(-2) => Limit::Global,
        Some(-1) => Limit::Unlimited,
        Some(m) => match u64::try_from(m).ok().and_then(|m| m.checked_mul(60)) {
            Some(s) => Limit::Value(s),
            None => {
                return Err(format!(
                    "seeding_time_limit_min {m} is not a time: give minutes >= 0, -1 for unlimited or -2 for the global limit"
                ))
            }
        },
    };
    Ok(ShareLimits {
        ratio,
        seeding_time_s,
    })
}

fn add_request(a: AddArgs) -> Result<AddRequest, String> {
    let source = match (a.torrent_hex, a.magnet) {
        (Some(hex), None) => Source::Torrent(
            hex_decode(&hex).map_err(|e| format!("add: torrent_hex is not hex: {e}"))?,
        ),
        (None, Some(uri)) => {
            if !uri.starts_with("magnet:") {
                return Err(format!(
                    "add: magnet {:?} is not a magnet URI (magnet:?xt=urn:btih:...)",
                    uri.chars().take(64).collect::<String>()
                ));
            }
            Source::Magnet(uri)
        }
        (Some(_), Some(_)) => {
            return Err("add: give either torrent_hex or magnet, not both".to_string())
        }
        (None, None) => return Err("add: give torrent_hex or magnet".to_string()),
    };
    Ok(AddRequest {
        source,
        save_path: a.save_path.filter(|p| !p.as_os_str().is_empty()),
        category: a.category.unwrap_or_default(),
        tags: a.tags.into_iter().collect(),
        stopped: a.stopped,
        share_limits: share_limits(a.ratio_limit, a.seeding_time_limit_min)?,
        rate_limits: RateLimits {
            upload: rate_limit("upload_limit", a.upload_limit)?,
            download: rate_limit("download_limit", a.download_limit)?,
        },
        skip_check: a.skip_check,
    })
}
