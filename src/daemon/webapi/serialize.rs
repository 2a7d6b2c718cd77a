//! qBittorrent's JSON, as its Web API 2.11.4 (qBittorrent 5.1) writes it:
//! the field names, units and state words clients parse. A value ringseed
//! does not have is answered as qBittorrent answers it when the feature is
//! off (DHT, PeX and LSD disabled, no alternative speed limits, no
//! sequential download); no key is ever left out.
//!
//! Boundary: plain data in ([`TorrentView`], [`ConfigView`]), JSON out; no
//! IO and no clock (the caller passes `now`).

use serde_json::{json, Map, Value};

use crate::daemon::command::{ConfigView, TorrentView};
use crate::daemon::config::ShareAction;
use crate::daemon::core::policy::{ratio, ShareFacts};
use crate::daemon::record::Limit;
use ringseed::engine::PeerInfo;
use ringseed::magnet::Magnet;
use ringseed::metainfo::Metainfo;

/// qBittorrent's "infinity" for an ETA, in seconds (100 days).
pub const ETA_INFINITY: u64 = 8_640_000;
/// qBittorrent's ratio ceiling.
pub const MAX_RATIO: f64 = 9999.0;

/// The state word of a torrent, as qBittorrent 5 names it.
pub fn state(v: &TorrentView) -> &'static str {
    let complete = v.piece_count > 0 && v.pieces_have == v.piece_count;
    let forced = v.record.force_start;
    match v.state.as_str() {
        "moving" => "moving",
        "error" => "error",
        "missing files" => "missingFiles",
        "metadata" => {
            if forced {
                "forcedMetaDL"
            } else {
                "metaDL"
            }
        }
        "loading" => "checkingResumeData",
        "stopped" | "stopping" | "paused" => {
            if complete {
                "stoppedUP"
            } else {
                "stoppedDL"
            }
        }
        "queued" => {
            if complete {
                "queuedUP"
            } else {
                "queuedDL"
            }
        }
        "check queued" | "checking" => {
            if complete || v.record.completed_at.is_some() {
                "checkingUP"
            } else {
                "checkingDL"
            }
        }
        "downloading" => {
            if forced {
                "forcedDL"
            } else if v.rate_down > 0 {
                "downloading"
            } else {
                "stalledDL"
            }
        }
        "seeding" => {
            if forced {
                "forcedUP"
            } else if v.rate_up > 0 {
                "uploading"
            } else {
                "stalledUP"
            }
        }
        _ => "unknown",
    }
}

fn hex(v: &TorrentView) -> String {
    v.record.info_hash.to_hex()
}

fn share_facts(v: &TorrentView) -> ShareFacts {
    ShareFacts {
        uploaded: v.record.uploaded,
        downloaded: v.record.downloaded,
        total_length: v.total_length,
        seeding_time_s: v.record.seeding_time_s,
    }
}

/// Uploaded over downloaded (the size when little was downloaded); -1
/// from [`MAX_RATIO`] up, as qBittorrent writes "infinite".
pub fn torrent_ratio(v: &TorrentView) -> f64 {
    let r = ratio(&share_facts(v));
    if r.is_finite() && r < MAX_RATIO {
        r
    } else {
        -1.0
    }
}

/// A per-torrent limit: -2 the global one, -1 none, else the value.
fn limit_f64(l: Limit<f64>) -> f64 {
    match l {
        Limit::Global => -2.0,
        Limit::Unlimited => -1.0,
        Limit::Value(x) => x,
    }
}

fn limit_minutes(l: Limit<u64>) -> i64 {
    match l {
        Limit::Global => -2,
        Limit::Unlimited => -1,
        Limit::Value(s) => (s / 60) as i64,
    }
}

/// The ratio limit in force (-1: none).
fn effective_ratio(v: &TorrentView, c: &ConfigView) -> f64 {
    match v.record.share_limits.ratio {
        Limit::Global => c.config.share.ratio_limit.unwrap_or(-1.0),
        Limit::Unlimited => -1.0,
        Limit::Value(x) => x,
    }
}

/// The seeding-time limit in force, minutes (-1: none).
fn effective_seeding_minutes(v: &TorrentView, c: &ConfigView) -> i64 {
    match v.record.share_limits.seeding_time_s {
        Limit::Global => c
            .config
            .share
            .seeding_time_limit_s
            .map_or(-1, |s| (s / 60) as i64),
        Limit::Unlimited => -1,
        Limit::Value(s) => (s / 60) as i64,
    }
}

/// Per-torrent upload and download limits in bytes/s (0: none), the
/// configured default when the torrent has none of its own.
pub fn rate_limits(v: &TorrentView, c: &ConfigView) -> (u64, u64) {
    (
        v.record
            .rate_limits
            .upload
            .unwrap_or(c.config.limits.torrent_upload_rate),
        v.record
            .rate_limits
            .download
            .unwrap_or(c.config.limits.torrent_download_rate),
    )
}

/// Seconds to completion (downloading at the current rate), else
/// [`ETA_INFINITY`].
fn eta(v: &TorrentView) -> u64 {
    if v.bytes_left == 0 || v.rate_down == 0 {
        return ETA_INFINITY;
    }
    (v.bytes_left / v.rate_down).min(ETA_INFINITY)
}

fn tags(v: &TorrentView) -> String {
    v.record
        .tags
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The data's path: the folder of a multi-file torrent, else its file.
pub fn content_path(v: &TorrentView) -> String {
    let base = v.record.save_path.clone();
    let p = match &v.metainfo {
        Some(m) if !m.info.multi_file => {
            m.info.files.first().map_or(base.join(&m.info.name), |f| {
                f.path.iter().fold(base.clone(), |p, c| p.join(c))
            })
        }
        Some(m) => base.join(&m.info.name),
        None => base,
    };
    p.display().to_string()
}

fn root_path(v: &TorrentView) -> String {
    match &v.metainfo {
        Some(m) if m.info.multi_file => v.record.save_path.join(&m.info.name).display().to_string(),
        _ => String::new(),
    }
}

/// The torrent's magnet link (its trackers included).
pub fn magnet_uri(v: &TorrentView) -> String {
    if let crate::daemon::record::Source::Magnet(m) = &v.record.source {
        return m.clone();
    }
    let mut m = Magnet::new(v.record.info_hash);
    m.display_name = Some(v.record.name.clone());
    if let Some(meta) = &v.metainfo {
        let mut seen = std::collections::HashSet::new();
        m.trackers = meta
            .trackers
            .iter()
            .flatten()
            .filter(|u| seen.insert(u.as_str()))
            .cloned()
            .collect();
    }
    m.to_uri()
}

fn tracker_urls(m: Option<&Metainfo>) -> Vec<(usize, &str)> {
    m.map_or_else(Vec::new, |m| {
        m.trackers
            .iter()
            .enumerate()
            .flat_map(|(tier, urls)| urls.iter().map(move |u| (tier, u.as_str())))
            .collect()
    })
}

/// The tracker the torrent talks to now ("" when none works).
fn current_tracker(v: &TorrentView) -> String {
    if !v.running || v.tracker_error.is_some() {
        return String::new();
    }
    tracker_urls(v.metainfo.as_deref())
        .first()
        .map_or(String::new(), |(_, u)| (*u).to_string())
}

fn completed_bytes(v: &TorrentView) -> u64 {
    v.total_length.saturating_sub(v.bytes_left)
}

/// Uploads per size per 30 days active (qBittorrent's popularity).
fn popularity(v: &TorrentView) -> f64 {
    if v.total_length == 0 || v.record.active_time_s == 0 {
        return 0.0;
    }
    let months = v.record.active_time_s as f64 / (30.0 * 86_400.0);
    let p = (v.record.uploaded as f64 / v.total_length as f64) / months.max(1.0 / 30.0);
    p.min(MAX_RATIO)
}

/// One torrent as `torrents/info` lists it (and sync/maindata, without
/// `hash`).
pub fn torrent(v: &TorrentView, c: &ConfigView, now: i64) -> Map<String, Value> {
    let (up, down) = rate_limits(v, c);
    let private = v.metainfo.as_ref().map(|m| m.info.private);
    let complete = v.piece_count > 0 && v.pieces_have == v.piece_count;
    let obj = json!({
        "added_on": v.record.added_at,
        "amount_left": v.bytes_left,
        "auto_tmm": false,
        "availability": -1,
        "category": v.record.category,
        "comment": v.metainfo.as_ref().and_then(|m| m.comment.clone()).unwrap_or_default(),
        "completed": completed_bytes(v),
        "completion_on": v.record.completed_at.unwrap_or(-1),
        "content_path": content_path(v),
        "dl_limit": down,
        "dlspeed": v.rate_down,
        "download_path": "",
        "downloaded": v.record.downloaded,
        "downloaded_session": v.downloaded_session,
        "eta": eta(v),
        "f_l_piece_prio": false,
        "force_start": v.record.force_start,
        "has_metadata": v.metainfo.is_some(),
        "hash": hex(v),
        "inactive_seeding_time_limit": -2,
        "infohash_v1": hex(v),
        "infohash_v2": "",
        "last_activity": if v.last_activity > 0 { v.last_activity } else { v.record.added_at },
        "magnet_uri": magnet_uri(v),
        "max_inactive_seeding_time": -1,
        "max_ratio": effective_ratio(v, c),
        "max_seeding_time": effective_seeding_minutes(v, c),
        "name": v.record.name,
        "num_complete": v.seeds,
        "num_incomplete": v.peers.saturating_sub(v.seeds),
        "num_leechs": v.peers.saturating_sub(v.seeds),
        "num_seeds": v.seeds,
        "popularity": popularity(v),
        "priority": v.queue_position,
        "private": private,
        "progress": if complete { 1.0 } else { v.progress },
        "ratio": torrent_ratio(v),
        "ratio_limit": limit_f64(v.record.share_limits.ratio),
        "reannounce": 0,
        "root_path": root_path(v),
        "save_path": v.record.save_path.display().to_string(),
        "seeding_time": v.record.seeding_time_s,
        "seeding_time_limit": limit_minutes(v.record.share_limits.seeding_time_s),
        "seen_complete": if complete || v.seeds > 0 { now } else { 0 },
        "seq_dl": false,
        "size": v.total_length,
        "state": state(v),
        "super_seeding": false,
        "tags": tags(v),
        "time_active": v.record.active_time_s,
        "total_size": v.total_length,
        "tracker": current_tracker(v),
        "trackers_count": tracker_urls(v.metainfo.as_deref()).len(),
        "up_limit": up,
        "uploaded": v.record.uploaded,
        "uploaded_session": v.uploaded_session,
        "upspeed": v.rate_up,
    });
    match obj {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `torrents/properties`.
pub fn properties(v: &TorrentView, c: &ConfigView, now: i64) -> Value {
    let (up, down) = rate_limits(v, c);
    let neg_if_zero = |x: u64| if x == 0 { -1 } else { x as i64 };
    let m = v.metainfo.as_deref();
    let elapsed = v.record.active_time_s.max(1);
    let private = m.map(|m| m.info.private);
    json!({
        "addition_date": v.record.added_at,
        "comment": m.and_then(|m| m.comment.clone()).unwrap_or_default(),
        "completion_date": v.record.completed_at.unwrap_or(-1),
        "created_by": m.and_then(|m| m.created_by.clone()).unwrap_or_default(),
        "creation_date": m.and_then(|m| m.creation_date).unwrap_or(-1),
        "dl_limit": neg_if_zero(down),
        "dl_speed": v.rate_down,
        "dl_speed_avg": v.record.downloaded / elapsed,
        "download_path": "",
        "eta": eta(v),
        "has_metadata": m.is_some(),
        "hash": hex(v),
        "infohash_v1": hex(v),
        "infohash_v2": "",
        "is_private": private.unwrap_or(false),
        "last_seen": if v.seeds > 0 || v.piece_count == v.pieces_have { now } else { -1 },
        "name": v.record.name,
        "nb_connections": v.peers,
        "nb_connections_limit": c.config.engine.peers_per_torrent,
        "peers": v.peers.saturating_sub(v.seeds),
        "peers_total": v.peers.saturating_sub(v.seeds),
        "piece_size": m.map_or(0, |m| m.info.piece_length),
        "pieces_have": v.pieces_have,
        "pieces_num": v.piece_count,
        "popularity": popularity(v),
        "private": private,
        "progress": v.progress,
        "reannounce": 0,
        "save_path": v.record.save_path.display().to_string(),
        "seeding_time": v.record.seeding_time_s,
        "seeds": v.seeds,
        "seeds_total": v.seeds,
        "share_ratio": torrent_ratio(v),
        "time_elapsed": v.record.active_time_s,
        "total_downloaded": v.record.downloaded,
        "total_downloaded_session": v.downloaded_session,
        "total_size": v.total_length,
        "total_uploaded": v.record.uploaded,
        "total_uploaded_session": v.uploaded_session,
        "total_wasted": 0,
        "up_limit": neg_if_zero(up),
        "up_speed": v.rate_up,
        "up_speed_avg": v.record.uploaded / elapsed,
    })
}

/// `torrents/files`: one entry per file (pad files left out, as
/// qBittorrent does), with its progress from the verified pieces.
pub fn files(v: &TorrentView, pieces: &[u8]) -> Value {
    let Some(m) = &v.metainfo else {
        return json!([]);
    };
    let have = |i: u64| {
        pieces
            .get((i / 8) as usize)
            .is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
    };
    let plen = m.info.piece_length.max(1);
    let mut out = Vec::new();
    for (index, f) in m.info.files.iter().enumerate() {
        if f.attr.pad {
            continue;
        }
        let first = f.offset / plen;
        let last = if f.length == 0 {
            first
        } else {
            (f.offset + f.length - 1) / plen
        };
        // Bytes of this file inside pieces we have.
        let mut done = 0u64;
        if f.length > 0 {
            for p in first..=last {
                if have(p) {
                    let start = (p * plen).max(f.offset);
                    let end = ((p + 1) * plen).min(f.offset + f.length);
                    done += end.saturating_sub(start);
                }
            }
        }
        let progress = if f.length == 0 {
            1.0
        } else {
            done as f64 / f.length as f64
        };
        let mut e = json!({
            "availability": -1,
            "index": index,
            "name": f.path.join("/"),
            "piece_range": [first, last],
            "priority": 1,
            "progress": progress,
            "size": f.length,
        });
        if out.is_empty() {
            if let Some(o) = e.as_object_mut() {
                o.insert("is_seed".into(), json!(v.piece_count == v.pieces_have));
            }
        }
        out.push(e);
    }
    Value::Array(out)
}

/// `torrents/trackers`: DHT, PeX and LSD first (disabled: ringseed has
/// none yet), then the torrent's trackers.
pub fn trackers(v: &TorrentView) -> Value {
    let private = v.metainfo.as_ref().is_some_and(|m| m.info.private);
    let pseudo_msg = if private {
        "This torrent is private"
    } else {
        ""
    };
    let mut out: Vec<Value> = ["** [DHT] **", "** [PeX] **", "** [LSD] **"]
        .iter()
        .map(|url| {
            json!({
                "msg": pseudo_msg,
                "num_downloaded": 0,
                "num_leeches": 0,
                "num_peers": 0,
                "num_seeds": 0,
                "status": 0,
                "tier": -1,
                "url": url,
            })
        })
        .collect();
    for (tier, url) in tracker_urls(v.metainfo.as_deref()) {
        let (status, msg) = if !v.running {
            (1, String::new())
        } else if let Some(e) = &v.tracker_error {
            (4, e.clone())
        } else {
            (2, String::new())
        };
        out.push(json!({
            "msg": msg,
            "num_downloaded": -1,
            "num_leeches": -1,
            "num_peers": -1,
            "num_seeds": -1,
            "status": status,
            "tier": tier,
            "url": url,
        }));
    }
    Value::Array(out)
}

/// qBittorrent's peer flags, with their legend.
fn peer_flags(p: &PeerInfo) -> (String, String) {
    let mut flags = Vec::new();
    let mut desc = Vec::new();
    let mut add = |f: &str, d: &str| {
        flags.push(f.to_string());
        desc.push(format!("{f} = {d}"));
    };
    if p.am_interested {
        if p.peer_choking {
            add("d", "Interested (local) and choked (peer)");
        } else {
            add("D", "Downloading from peer");
        }
    } else if !p.peer_choking {
        add("K", "Not interested (local) and unchoked (peer)");
    }
    if p.peer_interested {
        if p.am_choking {
            add("u", "Interested (peer) and choked (local)");
        } else {
            add("U", "Uploading to peer");
        }
    } else if !p.am_choking {
        add("?", "Not interested (peer) and unchoked (local)");
    }
    if p.rc4 {
        add("E", "Encrypted traffic");
    } else if p.encrypted {
        add("e", "Encrypted handshake");
    }
    (flags.join(" "), desc.join("\n"))
}

/// `sync/torrentPeers`' `peers`: `IP:PORT` → peer.
pub fn peers(list: &[PeerInfo], v: &TorrentView) -> Value {
    let mut m = Map::new();
    for p in list {
        let (flags, flags_desc) = peer_flags(p);
        let progress = if p.pieces == 0 {
            0.0
        } else {
            f64::from(p.pieces_have) / f64::from(p.pieces)
        };
        // Share of what the peer has that we lack (qBittorrent's
        // relevance): 0 for a seeding torrent.
        let relevance = if v.bytes_left == 0 { 0.0 } else { progress };
        m.insert(
            p.addr.to_string(),
            json!({
                "client": "",
                "connection": "BT",
                "country": "",
                "country_code": "",
                "dl_speed": p.rate_down,
                "downloaded": p.downloaded,
                "files": "",
                "flags": flags,
                "flags_desc": flags_desc,
                "ip": p.addr.ip().to_string(),
                "peer_id_client": "",
                "port": p.addr.port(),
                "progress": progress,
                "relevance": relevance,
                "up_speed": p.rate_up,
                "uploaded": p.uploaded,
            }),
        );
    }
    Value::Object(m)
}

/// `torrents/webseeds`.
pub fn webseeds(v: &TorrentView) -> Value {
    let urls = v.metainfo.as_ref().map_or(&[][..], |m| &m.url_list[..]);
    Value::Array(urls.iter().map(|u| json!({ "url": u })).collect())
}

/// `torrents/pieceStates`: 0 not had, 2 had (ringseed does not say which
/// pieces are being downloaded: 1 is never given).
pub fn piece_states(v: &TorrentView, pieces: &[u8]) -> Value {
    let n = u64::from(v.piece_count);
    Value::Array(
        (0..n)
            .map(|i| {
                let had = pieces
                    .get((i / 8) as usize)
                    .is_some_and(|b| b & (0x80 >> (i % 8)) != 0);
                json!(if had { 2 } else { 0 })
            })
            .collect(),
    )
}

/// `torrents/pieceHashes`.
pub fn piece_hashes(v: &TorrentView) -> Value {
    let Some(m) = &v.metainfo else {
        return json!([]);
    };
    Value::Array(
        m.info
            .pieces
            .iter()
            .map(|h| Value::String(h.iter().map(|b| format!("{b:02x}")).collect()))
            .collect(),
    )
}

/// Global figures: `transfer/info` and the core of `server_state`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub up_rate: u64,
    pub down_rate: u64,
    pub up_session: u64,
    pub down_session: u64,
    pub up_all: u64,
    pub down_all: u64,
    pub peers: usize,
}

pub fn totals(views: &[TorrentView]) -> Totals {
    let mut t = Totals::default();
    for v in views {
        t.up_rate += v.rate_up;
        t.down_rate += v.rate_down;
        t.up_session += v.uploaded_session;
        t.down_session += v.downloaded_session;
        t.up_all += v.record.uploaded;
        t.down_all += v.record.downloaded;
        t.peers += v.peers;
    }
    t
}

/// `transfer/info`.
pub fn transfer_info(t: &Totals, c: &ConfigView) -> Value {
    json!({
        "connection_status": if c.listen.is_empty() { "disconnected" } else { "connected" },
        "dht_nodes": c.dht_nodes,
        "dl_info_data": t.down_session,
        "dl_info_speed": t.down_rate,
        "dl_rate_limit": c.config.limits.download_rate,
        "last_external_address_v4": "",
        "last_external_address_v6": "",
        "up_info_data": t.up_session,
        "up_info_speed": t.up_rate,
        "up_rate_limit": c.config.limits.upload_rate,
    })
}

/// `sync/maindata`'s `server_state`.
pub fn server_state(t: &Totals, c: &ConfigView, free_space: u64) -> Map<String, Value> {
    let mut m = match transfer_info(t, c) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let global_ratio = if t.down_all == 0 {
        0.0
    } else {
        t.up_all as f64 / t.down_all as f64
    };
    let extra = json!({
        "alltime_dl": t.down_all,
        "alltime_ul": t.up_all,
        "average_time_queue": 0,
        "free_space_on_disk": free_space,
        "global_ratio": format!("{global_ratio:.2}"),
        "queued_io_jobs": 0,
        "queueing": c.config.queue.enabled,
        "read_cache_hits": "0",
        "read_cache_overload": "0",
        "refresh_interval": 1500,
        "total_buffers_size": 0,
        "total_peer_connections": t.peers,
        "total_queued_size": 0,
        "total_wasted_session": 0,
        "use_alt_speed_limits": false,
        "use_subcategories": false,
        "write_cache_overload": "0",
    });
    if let Value::Object(e) = extra {
        m.extend(e);
    }
    m
}

/// A category object.
pub fn category(name: &str, save_path: Option<&std::path::Path>) -> Value {
    json!({
        "name": name,
        "savePath": save_path.map_or(String::new(), |p| p.display().to_string()),
    })
}

/// Seconds to minutes for the preferences (-1 stays -1).
fn minutes(s: Option<u64>) -> i64 {
    s.map_or(-1, |s| (s / 60) as i64)
}

fn count_or_minus1(n: Option<usize>) -> i64 {
    n.map_or(-1, |n| n as i64)
}

/// `app/preferences`: the settings ringseed has, by qBittorrent's names;
/// the rest answered as qBittorrent does with the feature off.
pub fn preferences(c: &ConfigView, username: &str, api_port: u16) -> Value {
    let cfg = &c.config;
    let listen_port = c.listen.first().map_or(0, |a| a.port());
    let max_ratio_act = match cfg.share.action {
        ShareAction::Stop => 0,
        ShareAction::Remove => 1,
        ShareAction::RemoveWithData => 3,
    };
    let ours = json!({
        "save_path": c.download_dir.display().to_string(),
        "temp_path": c.download_dir.join("incomplete").display().to_string(),
        "temp_path_enabled": false,
        "export_dir": "",
        "export_dir_fin": "",
        "scan_dirs": match &cfg.paths.watch_dir {
            Some(d) => json!({ d.display().to_string(): 1 }),
            None => json!({}),
        },
        "listen_port": listen_port,
        "random_port": false,
        "upnp": false,
        "dl_limit": cfg.limits.download_rate,
        "up_limit": cfg.limits.upload_rate,
        "alt_dl_limit": 0,
        "alt_up_limit": 0,
        "scheduler_enabled": false,
        "max_connec": -1,
        "max_connec_per_torrent": cfg.engine.peers_per_torrent,
        "max_uploads": -1,
        "max_uploads_per_torrent": match cfg.engine.upload_slots {
            ringseed::upload_slots::SlotLimit::Fixed(n) => n as i64,
            _ => -1,
        },
        "dht": cfg.network.dht,
        "pex": cfg.network.pex,
        "lsd": cfg.network.lsd,
        "dht_bootstrap_nodes": cfg.network.dht_bootstrap.join(", "),
        "encryption": crate::daemon::config::qbt_encryption(cfg.network.encryption),
        "anonymous_mode": false,
        "queueing_enabled": cfg.queue.enabled,
        "max_active_downloads": count_or_minus1(cfg.queue.max_active_downloads),
        "max_active_uploads": count_or_minus1(cfg.queue.max_active_uploads),
        "max_active_torrents": count_or_minus1(cfg.queue.max_active_torrents),
        "dont_count_slow_torrents": cfg.queue.ignore_slow,
        "slow_torrent_dl_rate_threshold": cfg.queue.slow_download_rate / 1024,
        "slow_torrent_ul_rate_threshold": cfg.queue.slow_upload_rate / 1024,
        "slow_torrent_inactive_timer": cfg.queue.slow_after_s,
        "max_ratio_enabled": cfg.share.ratio_limit.is_some(),
        "max_ratio": cfg.share.ratio_limit.unwrap_or(-1.0),
        "max_ratio_act": max_ratio_act,
        "max_seeding_time_enabled": cfg.share.seeding_time_limit_s.is_some(),
        "max_seeding_time": minutes(cfg.share.seeding_time_limit_s),
        "max_inactive_seeding_time_enabled": false,
        "max_inactive_seeding_time": -1,
        "web_ui_address": "*",
        "web_ui_port": api_port,
        "web_ui_username": username,
        "web_ui_max_auth_fail_count": super::auth::BAN_AFTER_FAILURES,
        "web_ui_ban_duration": super::auth::BAN_S,
        "web_ui_session_timeout": super::auth::SESSION_IDLE_S,
        "current_network_interface": cfg.network.interface.clone().unwrap_or_default(),
        "current_interface_name": cfg.network.interface.clone().unwrap_or_default(),
        "current_interface_address": cfg.network.bind_address.map_or(String::new(), |a| a.to_string()),
        "torrent_file_size_limit": ringseed::limits::TORRENT_FILE_BYTES_MAX,
        "add_stopped_enabled": false,
        "start_paused_enabled": false,
        "auto_tmm_enabled": false,
        "torrent_content_layout": "Original",
        "bittorrent_protocol": 1,
        "refresh_interval": 1500,
        "locale": "en",
    });
    let mut m = match ours {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    for (k, v) in OFF_PREFERENCES {
        m.entry(k.to_string()).or_insert_with(|| off_value(v));
    }
    Value::Object(m)
}

/// How an "off" preference's value is written.
enum Off {
    Bool(bool),
    Int(i64),
    Str(&'static str),
}

fn off_value(v: &Off) -> Value {
    match v {
        Off::Bool(b) => json!(b),
        Off::Int(n) => json!(n),
        Off::Str(s) => json!(s),
    }
}

/// Preferences for features ringseed does not have, with the value
/// qBittorrent shows when they are off (or its default).
const OFF_PREFERENCES: &[(&str, Off)] = &[
    ("add_to_top_of_queue", Off::Bool(false)),
    ("add_trackers", Off::Str("")),
    ("add_trackers_enabled", Off::Bool(false)),
    ("add_trackers_from_url_enabled", Off::Bool(false)),
    ("add_trackers_url", Off::Str("")),
    ("add_trackers_url_list", Off::Str("")),
    ("alternative_webui_enabled", Off::Bool(false)),
    ("alternative_webui_path", Off::Str("")),
    ("announce_ip", Off::Str("")),
    ("announce_port", Off::Int(0)),
    ("announce_to_all_tiers", Off::Bool(true)),
    ("announce_to_all_trackers", Off::Bool(false)),
    ("app_instance_name", Off::Str("")),
    ("async_io_threads", Off::Int(10)),
    ("auto_delete_mode", Off::Int(0)),
    ("autorun_enabled", Off::Bool(false)),
    ("autorun_on_torrent_added_enabled", Off::Bool(false)),
    ("autorun_on_torrent_added_program", Off::Str("")),
    ("autorun_program", Off::Str("")),
    ("banned_IPs", Off::Str("")),
    ("bdecode_depth_limit", Off::Int(100)),
    ("bdecode_token_limit", Off::Int(10_000_000)),
    ("block_peers_on_privileged_ports", Off::Bool(false)),
    ("bypass_auth_subnet_whitelist", Off::Str("")),
    ("bypass_auth_subnet_whitelist_enabled", Off::Bool(false)),
    ("bypass_local_auth", Off::Bool(false)),
    ("category_changed_tmm_enabled", Off::Bool(false)),
    ("checking_memory_use", Off::Int(32)),
    ("confirm_torrent_deletion", Off::Bool(true)),
    ("confirm_torrent_recheck", Off::Bool(true)),
    ("connection_speed", Off::Int(30)),
    ("delete_torrent_content_files", Off::Bool(false)),
    ("disk_cache", Off::Int(-1)),
    ("disk_cache_ttl", Off::Int(60)),
    ("disk_io_read_mode", Off::Int(1)),
    ("disk_io_type", Off::Int(0)),
    ("disk_io_write_mode", Off::Int(1)),
    ("disk_queue_size", Off::Int(1_048_576)),
    ("dyndns_domain", Off::Str("")),
    ("dyndns_enabled", Off::Bool(false)),
    ("dyndns_password", Off::Str("")),
    ("dyndns_service", Off::Int(0)),
    ("dyndns_username", Off::Str("")),
    ("embedded_tracker_port", Off::Int(9000)),
    ("embedded_tracker_port_forwarding", Off::Bool(false)),
    ("enable_coalesce_read_write", Off::Bool(false)),
    ("enable_embedded_tracker", Off::Bool(false)),
    ("enable_multi_connections_from_same_ip", Off::Bool(false)),
    ("enable_piece_extent_affinity", Off::Bool(false)),
    ("enable_upload_suggestions", Off::Bool(false)),
    ("excluded_file_names", Off::Str("")),
    ("excluded_file_names_enabled", Off::Bool(false)),
    ("file_log_age", Off::Int(1)),
    ("file_log_age_type", Off::Int(1)),
    ("file_log_backup_enabled", Off::Bool(false)),
    ("file_log_delete_old", Off::Bool(false)),
    ("file_log_enabled", Off::Bool(false)),
    ("file_log_max_size", Off::Int(65)),
    ("file_log_path", Off::Str("")),
    ("file_pool_size", Off::Int(100)),
    ("hashing_threads", Off::Int(1)),
    ("i2p_address", Off::Str("")),
    ("i2p_enabled", Off::Bool(false)),
    ("i2p_inbound_length", Off::Int(3)),
    ("i2p_inbound_quantity", Off::Int(3)),
    ("i2p_mixed_mode", Off::Bool(false)),
    ("i2p_outbound_length", Off::Int(3)),
    ("i2p_outbound_quantity", Off::Int(3)),
    ("i2p_port", Off::Int(7656)),
    ("idn_support_enabled", Off::Bool(false)),
    ("ignore_ssl_errors", Off::Bool(false)),
    ("incomplete_files_ext", Off::Bool(false)),
    ("ip_filter_enabled", Off::Bool(false)),
    ("ip_filter_path", Off::Str("")),
    ("ip_filter_trackers", Off::Bool(false)),
    ("limit_lan_peers", Off::Bool(true)),
    ("limit_tcp_overhead", Off::Bool(false)),
    ("limit_utp_rate", Off::Bool(true)),
    ("mail_notification_auth_enabled", Off::Bool(false)),
    ("mail_notification_email", Off::Str("")),
    ("mail_notification_enabled", Off::Bool(false)),
    ("mail_notification_password", Off::Str("")),
    ("mail_notification_sender", Off::Str("")),
    ("mail_notification_smtp", Off::Str("")),
    ("mail_notification_ssl_enabled", Off::Bool(false)),
    ("mail_notification_username", Off::Str("")),
    ("mark_of_the_web", Off::Bool(false)),
    ("max_active_checking_torrents", Off::Int(1)),
    ("max_concurrent_http_announces", Off::Int(50)),
    ("memory_working_set_limit", Off::Int(512)),
    ("merge_trackers", Off::Bool(false)),
    ("outgoing_ports_max", Off::Int(0)),
    ("outgoing_ports_min", Off::Int(0)),
    ("peer_tos", Off::Int(4)),
    ("peer_turnover", Off::Int(4)),
    ("peer_turnover_cutoff", Off::Int(90)),
    ("peer_turnover_interval", Off::Int(300)),
    ("performance_warning", Off::Bool(false)),
    ("preallocate_all", Off::Bool(false)),
    ("proxy_auth_enabled", Off::Bool(false)),
    ("proxy_bittorrent", Off::Bool(false)),
    ("proxy_hostname_lookup", Off::Bool(false)),
    ("proxy_ip", Off::Str("")),
    ("proxy_misc", Off::Bool(false)),
    ("proxy_password", Off::Str("")),
    ("proxy_peer_connections", Off::Bool(false)),
    ("proxy_port", Off::Int(8080)),
    ("proxy_rss", Off::Bool(false)),
    ("proxy_torrents_only", Off::Bool(false)),
    ("proxy_type", Off::Str("None")),
    ("proxy_username", Off::Str("")),
    ("python_executable_path", Off::Str("")),
    ("reannounce_when_address_changed", Off::Bool(false)),
    ("recheck_completed_torrents", Off::Bool(false)),
    ("request_queue_size", Off::Int(500)),
    ("resolve_peer_countries", Off::Bool(false)),
    ("resume_data_storage_type", Off::Str("SQLite")),
    ("rss_auto_downloading_enabled", Off::Bool(false)),
    ("rss_download_repack_proper_episodes", Off::Bool(false)),
    ("rss_fetch_delay", Off::Int(2)),
    ("rss_max_articles_per_feed", Off::Int(50)),
    ("rss_processing_enabled", Off::Bool(false)),
    ("rss_refresh_interval", Off::Int(30)),
    ("rss_smart_episode_filters", Off::Str("")),
    ("save_path_changed_tmm_enabled", Off::Bool(false)),
    ("save_resume_data_interval", Off::Int(1)),
    ("save_statistics_interval", Off::Int(15)),
    ("schedule_from_hour", Off::Int(8)),
    ("schedule_from_min", Off::Int(0)),
    ("schedule_to_hour", Off::Int(20)),
    ("schedule_to_min", Off::Int(0)),
    ("scheduler_days", Off::Int(0)),
    ("send_buffer_low_watermark", Off::Int(10)),
    ("send_buffer_watermark", Off::Int(500)),
    ("send_buffer_watermark_factor", Off::Int(50)),
    ("socket_backlog_size", Off::Int(30)),
    ("socket_receive_buffer_size", Off::Int(0)),
    ("socket_send_buffer_size", Off::Int(0)),
    ("ssl_enabled", Off::Bool(false)),
    ("ssl_listen_port", Off::Int(0)),
    ("ssrf_mitigation", Off::Bool(true)),
    ("status_bar_external_ip", Off::Bool(false)),
    ("stop_tracker_timeout", Off::Int(5)),
    ("torrent_changed_tmm_enabled", Off::Bool(true)),
    ("torrent_content_remove_option", Off::Str("Delete")),
    ("torrent_stop_condition", Off::Str("None")),
    ("upload_choking_algorithm", Off::Int(1)),
    ("upload_slots_behavior", Off::Int(0)),
    ("upnp_lease_duration", Off::Int(0)),
    ("use_category_paths_in_manual_mode", Off::Bool(false)),
    ("use_https", Off::Bool(false)),
    ("use_subcategories", Off::Bool(false)),
    ("use_unwanted_folder", Off::Bool(false)),
    ("utp_tcp_mixed_mode", Off::Int(0)),
    ("validate_https_tracker_certificate", Off::Bool(true)),
    ("web_ui_clickjacking_protection_enabled", Off::Bool(true)),
    ("web_ui_csrf_protection_enabled", Off::Bool(true)),
    ("web_ui_custom_http_headers", Off::Str("")),
    ("web_ui_domain_list", Off::Str("*")),
    ("web_ui_host_header_validation_enabled", Off::Bool(false)),
    ("web_ui_https_cert_path", Off::Str("")),
    ("web_ui_https_key_path", Off::Str("")),
    ("web_ui_reverse_proxies_list", Off::Str("")),
    ("web_ui_reverse_proxy_enabled", Off::Bool(false)),
    ("web_ui_secure_cookie_enabled", Off::Bool(true)),
    ("web_ui_upnp", Off::Bool(false)),
    ("web_ui_use_custom_http_headers_enabled", Off::Bool(false)),
];
