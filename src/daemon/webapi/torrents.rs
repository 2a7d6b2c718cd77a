//! `torrents/info` (filters, sort, paging) and `torrents/add` (files of
//! any field name, magnets, http(s) links): the two torrent endpoints with
//! logic of their own.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::form::Params;
use super::routes::{
    ask, bad, call, command_error, config, list, location, unix_now, Answer, ApiResponse, State,
};
use super::{fetch, serialize, ADD_ITEMS_MAX, URL_FETCHES_MAX};
use crate::daemon::command::{AddRequest, Category, Command, CommandError, TorrentView};
use crate::daemon::config::RATIO_LIMIT_MAX;
use crate::daemon::record::{Limit, RateLimits, ShareLimits, Source};
use ringseed::InfoHash;

/// Whether `v` passes `torrents/info`'s `filter`.
fn passes(filter: &str, v: &TorrentView) -> bool {
    let s = serialize::state(v);
    let complete = v.piece_count > 0 && v.pieces_have == v.piece_count;
    let active = v.rate_up > 0 || v.rate_down > 0;
    match filter {
        "all" | "" => true,
        "downloading" => s.ends_with("DL") || s == "downloading",
        "seeding" => matches!(s, "uploading" | "stalledUP" | "forcedUP"),
        "completed" => complete,
        "paused" | "stopped" => s.starts_with("stopped"),
        "resumed" | "running" => !s.starts_with("stopped"),
        "active" => active,
        "inactive" => !active,
        "stalled" => matches!(s, "stalledUP" | "stalledDL"),
        "stalled_uploading" => s == "stalledUP",
        "stalled_downloading" => s == "stalledDL",
        "checking" => s.starts_with("checking"),
        "moving" => s == "moving",
        "errored" => matches!(s, "error" | "missingFiles"),
        _ => true,
    }
}

pub(super) fn info(state: &State, p: &Params) -> Answer {
    let views = list(state)?;
    let c = config(state)?;
    let now = unix_now();
    let filter = p.get("filter").unwrap_or("all");
    let category = p.get("category");
    let tag = p.get("tag");
    let hashes: Option<BTreeSet<InfoHash>> = p.get("hashes").map(|_| {
        p.list("hashes", '|')
            .iter()
            .filter_map(|h| InfoHash::from_hex(h).ok())
            .collect()
    });
    let private = p.bool("private").map_err(bad)?;
    let mut out: Vec<Map<String, Value>> = views
        .iter()
        .filter(|v| passes(filter, v))
        .filter(|v| category.is_none_or(|c| v.record.category == c))
        .filter(|v| {
            tag.is_none_or(|t| {
                if t.is_empty() {
                    v.record.tags.is_empty()
                } else {
                    v.record.tags.contains(t)
                }
            })
        })
        .filter(|v| {
            hashes
                .as_ref()
                .is_none_or(|h| h.contains(&v.record.info_hash))
        })
        .filter(|v| {
            private.is_none_or(|want| v.metainfo.as_ref().is_some_and(|m| m.info.private) == want)
        })
        .map(|v| serialize::torrent(v, &c, now))
        .collect();
    if let Some(key) = p.get("sort") {
        out.sort_by(|a, b| compare(a.get(key), b.get(key)));
    }
    if p.bool("reverse").map_err(bad)?.unwrap_or(false) {
        out.reverse();
    }
    let offset = p.num::<i64>("offset").map_err(bad)?.unwrap_or(0);
    let len = out.len() as i64;
    let start = if offset < 0 {
        (len + offset).max(0)
    } else {
        offset.min(len)
    } as usize;
    let mut out: Vec<Map<String, Value>> = out.into_iter().skip(start).collect();
    if let Some(limit) = p.num::<i64>("limit").map_err(bad)? {
        if limit > 0 {
            out.truncate(limit as usize);
        }
    }
    if p.bool("includeTrackers").map_err(bad)?.unwrap_or(false) {
        for t in &mut out {
            let hash = t
                .get("hash")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if let Some(v) = views.iter().find(|v| v.record.info_hash.to_hex() == hash) {
                let trackers = serialize::trackers(v);
                let real: Vec<Value> = trackers
                    .as_array()
                    .map(|a| a.iter().skip(3).cloned().collect())
                    .unwrap_or_default();
                t.insert("trackers".into(), Value::Array(real));
            }
        }
    }
    Ok(ApiResponse::json(&Value::Array(
        out.into_iter().map(Value::Object).collect(),
    )))
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

/// `torrents/add`: .torrent files (any field name) and `urls` (magnets
/// and http(s) links, one per line).
pub(super) fn add(state: &State, p: &Params) -> Answer {
    let urls: Vec<&str> = p.list("urls", '\n');
    if p.files.is_empty() && urls.is_empty() {
        return Err(ApiResponse::text(
            400,
            "missing parameter \"torrents\" or \"urls\"",
        ));
    }
    let fetches = urls
        .iter()
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .count();
    if fetches > URL_FETCHES_MAX {
        return Err(ApiResponse::text(
            400,
            &format!("at most {URL_FETCHES_MAX} http(s) links in one request"),
        ));
    }
    if p.files.len() + urls.len() > ADD_ITEMS_MAX {
        return Err(ApiResponse::text(
            400,
            &format!("at most {ADD_ITEMS_MAX} torrents in one request"),
        ));
    }
    let save_path = match p.get("savepath").or_else(|| p.get("savePath")) {
        Some(s) if !s.trim().is_empty() => Some(location(s)?),
        _ => None,
    };
    let category = p.get("category").unwrap_or("").trim().to_string();
    let tags: BTreeSet<String> = p.list("tags", ',').iter().map(|s| s.to_string()).collect();
    let stopped = match p.bool("stopped").map_err(bad)? {
        Some(b) => b,
        None => p.bool("paused").map_err(bad)?.unwrap_or(false),
    };
    let skip_check = p.bool("skip_checking").map_err(bad)?.unwrap_or(false);
    let ratio = match p.num::<f64>("ratioLimit").map_err(bad)? {
        None => Limit::Global,
        Some(-2.0) => Limit::Global,
        Some(r) if r < 0.0 => Limit::Unlimited,
        Some(r) => Limit::Value(r.min(RATIO_LIMIT_MAX)),
    };
    let seeding_time_s = match p.num::<i64>("seedingTimeLimit").map_err(bad)? {
        None | Some(-2) => Limit::Global,
        Some(m) if m < 0 => Limit::Unlimited,
        Some(m) => Limit::Value((m as u64).saturating_mul(60)),
    };
    let up = p.num::<i64>("upLimit").map_err(bad)?;
    let down = p.num::<i64>("dlLimit").map_err(bad)?;
    let rate_limits = RateLimits {
        upload: up.map(|v| u64::try_from(v).unwrap_or(0)),
        download: down.map(|v| u64::try_from(v).unwrap_or(0)),
    };
    let mut sources: Vec<(String, Source)> = Vec::new();
    for f in &p.files {
        // Parse first: a file that is not a torrent is the client's error
        // (415 with the reason), not the core's.
        if let Err(e) = ringseed::metainfo::Metainfo::from_bytes(&f.bytes) {
            return Err(ApiResponse::text(
                415,
                &format!("{}: not a valid torrent file: {e}", f.filename),
            ));
        }
        sources.push((f.filename.clone(), Source::Torrent(f.bytes.clone())));
    }
    for u in &urls {
        if u.starts_with("magnet:") {
            sources.push((u.to_string(), Source::Magnet(u.to_string())));
        } else if u.starts_with("http://") || u.starts_with("https://") {
            let bytes = fetch::torrent(u, &state.bind)
                .map_err(|e| ApiResponse::text(415, &e.to_string()))?;
            sources.push((fetch::redact(u), Source::Torrent(bytes)));
        } else if let Ok(h) = InfoHash::from_hex(u) {
            let m = format!("magnet:?xt=urn:btih:{}", h.to_hex());
            sources.push((m.clone(), Source::Magnet(m)));
        } else {
            return Err(ApiResponse::text(
                400,
                &format!(
                    "urls: {:?} is not a magnet link or an http(s) URL",
                    fetch::redact(u)
                ),
            ));
        }
    }
    super::routes::remember_tags(state, &tags);
    let mut added = 0usize;
    let mut failures = Vec::new();
    for (what, source) in sources {
        let req = AddRequest {
            source,
            save_path: save_path.clone(),
            category: category.clone(),
            tags: tags.clone(),
            stopped,
            share_limits: ShareLimits {
                ratio,
                seeding_time_s,
            },
            rate_limits,
            skip_check,
        };
        let retry = req.clone();
        match ask(state, |reply| Command::Add {
            add: Box::new(req),
            reply,
        }) {
            Ok(_) => added += 1,
            Err(CommandError::UnknownCategory(c)) => {
                // qBittorrent creates a category it is given at add.
                call(state, |reply| Command::SetCategoryDef {
                    category: Category {
                        name: c.clone(),
                        save_path: None,
                    },
                    reply,
                })?;
                match ask(state, |reply| Command::Add {
                    add: Box::new(retry),
                    reply,
                }) {
                    Ok(_) => added += 1,
                    Err(e) => failures.push(format!("{what}: {e}")),
                }
            }
            Err(e @ (CommandError::Busy(_) | CommandError::Stopping)) => {
                return Err(command_error(e))
            }
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }
    if added == 0 {
        tracing::info!("Web API: add refused: {}", failures.join("; "));
        return Ok(ApiResponse::text(200, "Fails."));
    }
    if !failures.is_empty() {
        tracing::info!("Web API: some adds refused: {}", failures.join("; "));
    }
    Ok(ApiResponse::text(200, "Ok."))
}
