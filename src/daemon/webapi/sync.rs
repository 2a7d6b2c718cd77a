//! `sync/maindata`: the whole state once, then only what changed.
//!
//! Each login session keeps the last state it was sent, numbered by its
//! `rid`. A request with that `rid` gets a delta against it (changed
//! fields of changed torrents, removed torrents, categories, tags,
//! trackers and the changed `server_state` keys); any other `rid` (0, an
//! old one, one from another session) gets a full update, as qBittorrent
//! does. At most [`SYNC_SESSIONS_MAX`] states are kept (the least recently
//! used goes first), so memory is bounded by that times the torrents'
//! JSON.
//!
//! Boundary: plain JSON in and out; no IO, no clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Map, Value};

/// Sessions whose last maindata is kept.
pub const SYNC_SESSIONS_MAX: usize = 64;

/// Everything one maindata answer describes, before diffing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MainData {
    /// Hash → torrent object (without `hash`).
    pub torrents: BTreeMap<String, Map<String, Value>>,
    /// Name → category object.
    pub categories: BTreeMap<String, Value>,
    pub tags: BTreeSet<String>,
    /// Tracker URL → hashes using it.
    pub trackers: BTreeMap<String, Vec<String>>,
    pub server_state: Map<String, Value>,
}

#[derive(Debug)]
struct Last {
    rid: u64,
    data: MainData,
    used: u64,
}

/// The last state sent to each session.
#[derive(Debug, Default)]
pub struct SyncState {
    by_session: HashMap<String, Last>,
    clock: u64,
    next_rid: u64,
}

impl SyncState {
    /// The answer for `session` asking with `rid`, and remembers `now` as
    /// what it was sent.
    pub fn answer(&mut self, session: &str, rid: u64, now: MainData) -> Value {
        self.clock += 1;
        self.next_rid += 1;
        let new_rid = self.next_rid;
        let out = match self.by_session.get(session) {
            Some(last) if last.rid == rid && rid != 0 => delta(&last.data, &now, new_rid),
            _ => full(&now, new_rid),
        };
        if !self.by_session.contains_key(session) && self.by_session.len() >= SYNC_SESSIONS_MAX {
            if let Some(oldest) = self
                .by_session
                .iter()
                .min_by_key(|(_, l)| l.used)
                .map(|(k, _)| k.clone())
            {
                self.by_session.remove(&oldest);
            }
        }
        self.by_session.insert(
            session.to_string(),
            Last {
                rid: new_rid,
                data: now,
                used: self.clock,
            },
        );
        out
    }

    /// Forgets a session (logout).
    pub fn forget(&mut self, session: &str) {
        self.by_session.remove(session);
    }
}

fn full(d: &MainData, rid: u64) -> Value {
    json!({
        "rid": rid,
        "full_update": true,
        "torrents": d.torrents,
        "categories": d.categories,
        "tags": d.tags,
        "trackers": d.trackers,
        "server_state": d.server_state,
    })
}

fn delta(old: &MainData, new: &MainData, rid: u64) -> Value {
    let mut out = Map::new();
    out.insert("rid".into(), json!(rid));
    let mut torrents = Map::new();
    for (hash, t) in &new.torrents {
        match old.torrents.get(hash) {
            None => {
                torrents.insert(hash.clone(), Value::Object(t.clone()));
            }
            Some(before) => {
                let changed: Map<String, Value> = t
                    .iter()
                    .filter(|(k, v)| before.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !changed.is_empty() {
                    torrents.insert(hash.clone(), Value::Object(changed));
                }
            }
        }
    }
    if !torrents.is_empty() {
        out.insert("torrents".into(), Value::Object(torrents));
    }
    let removed: Vec<&String> = old
        .torrents
        .keys()
        .filter(|h| !new.torrents.contains_key(*h))
        .collect();
    if !removed.is_empty() {
        out.insert("torrents_removed".into(), json!(removed));
    }
    let cats: Map<String, Value> = new
        .categories
        .iter()
        .filter(|(k, v)| old.categories.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !cats.is_empty() {
        out.insert("categories".into(), Value::Object(cats));
    }
    let cats_removed: Vec<&String> = old
        .categories
        .keys()
        .filter(|k| !new.categories.contains_key(*k))
        .collect();
    if !cats_removed.is_empty() {
        out.insert("categories_removed".into(), json!(cats_removed));
    }
    let tags: Vec<&String> = new.tags.difference(&old.tags).collect();
    if !tags.is_empty() {
        out.insert("tags".into(), json!(tags));
    }
    let tags_removed: Vec<&String> = old.tags.difference(&new.tags).collect();
    if !tags_removed.is_empty() {
        out.insert("tags_removed".into(), json!(tags_removed));
    }
    let trackers: Map<String, Value> = new
        .trackers
        .iter()
        .filter(|(k, v)| old.trackers.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    if !trackers.is_empty() {
        out.insert("trackers".into(), Value::Object(trackers));
    }
    let trackers_removed: Vec<&String> = old
        .trackers
        .keys()
        .filter(|k| !new.trackers.contains_key(*k))
        .collect();
    if !trackers_removed.is_empty() {
        out.insert("trackers_removed".into(), json!(trackers_removed));
    }
    let state: Map<String, Value> = new
        .server_state
        .iter()
        .filter(|(k, v)| old.server_state.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !state.is_empty() {
        out.insert("server_state".into(), Value::Object(state));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(progress: f64, tags: &[&str]) -> MainData {
        let mut d = MainData::default();
        let mut t = Map::new();
        t.insert("name".into(), json!("a"));
        t.insert("progress".into(), json!(progress));
        d.torrents.insert("h1".into(), t);
        d.tags = tags.iter().map(|s| s.to_string()).collect();
        d.server_state.insert("dl_info_speed".into(), json!(0));
        d
    }

    #[test]
    fn first_answer_is_full_then_deltas_carry_only_changes() {
        let mut s = SyncState::default();
        let a = s.answer("sid", 0, data(0.5, &["x"]));
        assert_eq!(a["full_update"], json!(true));
        let rid = a["rid"].as_u64().unwrap();
        let b = s.answer("sid", rid, data(0.75, &["x", "y"]));
        assert!(b.get("full_update").is_none(), "{b}");
        assert_eq!(b["torrents"]["h1"], json!({"progress": 0.75}));
        assert_eq!(b["tags"], json!(["y"]));
        assert!(b.get("server_state").is_none(), "{b}");
        let rid = b["rid"].as_u64().unwrap();
        let mut gone = data(0.75, &["y"]);
        gone.torrents.clear();
        let c = s.answer("sid", rid, gone);
        assert_eq!(c["torrents_removed"], json!(["h1"]));
        assert_eq!(c["tags_removed"], json!(["x"]));
    }

    #[test]
    fn an_unknown_rid_or_session_gets_a_full_update() {
        let mut s = SyncState::default();
        let a = s.answer("one", 0, data(0.5, &[]));
        let rid = a["rid"].as_u64().unwrap();
        assert_eq!(
            s.answer("two", rid, data(0.5, &[]))["full_update"],
            json!(true)
        );
        assert_eq!(
            s.answer("one", rid + 100, data(0.5, &[]))["full_update"],
            json!(true)
        );
    }

    #[test]
    fn sessions_kept_are_bounded() {
        let mut s = SyncState::default();
        for i in 0..(SYNC_SESSIONS_MAX * 3) {
            s.answer(&format!("s{i}"), 0, MainData::default());
        }
        assert_eq!(s.by_session.len(), SYNC_SESSIONS_MAX);
    }
}
