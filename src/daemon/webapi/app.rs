//! The global endpoints that take more than a line: `app/setPreferences`
//! (the keys ringseed has, applied as a SIGHUP's reload is) and
//! `sync/maindata` (gathered here, diffed by [`super::sync`]).

use std::collections::BTreeMap;

use serde_json::Value;

use super::form::Params;
use super::routes::{
    all_tags, bad, call, config, list, location, set_config, unix_now, Answer, ApiResponse, State,
};
use super::serialize;
use super::sync::MainData;
use crate::daemon::command::Command;
use crate::daemon::config::{ConfigPatch, RATIO_LIMIT_MAX};

/// `app/setPreferences json={...}`: the keys ringseed has are applied
/// (until the next restart; the file stays the operator's); others are
/// ignored, as qBittorrent ignores unknown keys.
pub(super) fn set_preferences(state: &State, p: &Params) -> Answer {
    let raw = p.require("json").map_err(bad)?;
    let v: Value =
        serde_json::from_str(raw).map_err(|e| ApiResponse::text(400, &format!("json: {e}")))?;
    let Value::Object(m) = v else {
        return Err(ApiResponse::text(400, "json: expected an object"));
    };
    let num = |k: &str| m.get(k).and_then(Value::as_i64);
    let flag = |k: &str| m.get(k).and_then(Value::as_bool);
    let up = num("up_limit");
    let down = num("dl_limit");
    let queueing = flag("queueing_enabled");
    let max_dl = num("max_active_downloads");
    let max_up = num("max_active_uploads");
    let max_all = num("max_active_torrents");
    let ratio_on = flag("max_ratio_enabled");
    let ratio = m.get("max_ratio").and_then(Value::as_f64);
    let seed_on = flag("max_seeding_time_enabled");
    let seed_min = num("max_seeding_time");
    let save_path = match m.get("save_path").and_then(Value::as_str) {
        Some(s) => Some(location(s)?),
        None => None,
    };
    let encryption = match num("encryption") {
        Some(n @ 0..=2) => Some(n as u8),
        Some(n) => {
            return Err(ApiResponse::text(
                400,
                &format!("encryption {n}: expected 0 (prefer), 1 (require) or 2 (disable)"),
            ))
        }
        None => None,
    };
    if let Some(r) = ratio {
        if r > RATIO_LIMIT_MAX {
            return Err(ApiResponse::text(
                400,
                &format!("max_ratio {r}: out of range"),
            ));
        }
    }
    let count = |n: i64| usize::try_from(n).unwrap_or(0);
    let mut patch = ConfigPatch {
        upload_rate: up.map(|v| u64::try_from(v).unwrap_or(0)),
        download_rate: down.map(|v| u64::try_from(v).unwrap_or(0)),
        queue_enabled: queueing,
        max_active_downloads: max_dl.map(count),
        max_active_uploads: max_up.map(count),
        max_active_torrents: max_all.map(count),
        download_dir: save_path,
        encryption,
        ..ConfigPatch::default()
    };
    // qBittorrent's pairs: an "enabled" flag and a value.
    patch.ratio_limit = match (ratio_on, ratio) {
        (Some(false), _) => Some(-1.0),
        (Some(true), Some(r)) if r >= 0.0 => Some(r),
        (None, Some(r)) if r >= 0.0 => Some(r),
        _ => None,
    };
    patch.seeding_time_limit_s = match (seed_on, seed_min) {
        (Some(false), _) => Some(-1),
        (Some(true) | None, Some(m)) if m >= 0 => Some(m.saturating_mul(60)),
        _ => None,
    };
    if !patch.is_empty() {
        set_config(state, patch)?;
    }
    Ok(ApiResponse::ok())
}

fn free_space(dir: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a plain struct
    // statvfs fills in.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) == 0 {
            (s.f_bavail as u64).saturating_mul(s.f_frsize as u64)
        } else {
            0
        }
    }
}

pub(super) fn maindata(state: &State, sid: &str, p: &Params) -> Answer {
    let rid = p.num::<u64>("rid").map_err(bad)?.unwrap_or(0);
    let views = list(state)?;
    let c = config(state)?;
    let cats = call(state, |reply| Command::Categories { reply })?;
    let now = unix_now();
    let mut d = MainData::default();
    let mut trackers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in &views {
        let hash = v.record.info_hash.to_hex();
        let mut t = serialize::torrent(v, &c, now);
        t.remove("hash");
        d.torrents.insert(hash.clone(), t);
        if let Some(m) = &v.metainfo {
            for url in m.trackers.iter().flatten() {
                let e = trackers.entry(url.clone()).or_default();
                if !e.contains(&hash) {
                    e.push(hash.clone());
                }
            }
        }
    }
    d.trackers = trackers;
    d.categories = cats
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                serialize::category(&c.name, c.save_path.as_deref()),
            )
        })
        .collect();
    d.tags = all_tags(state, &views);
    d.server_state =
        serialize::server_state(&serialize::totals(&views), &c, free_space(&c.download_dir));
    let answer = state
        .sync
        .lock()
        .map_err(|_| ApiResponse::text(500, "internal error"))?
        .answer(sid, rid, d);
    Ok(ApiResponse::json(&answer))
}
