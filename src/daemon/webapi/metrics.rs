//! `/metrics`: Prometheus's text format, written with `prometheus-client`
//! from a fresh registry per scrape (the figures are the core's at that
//! moment; nothing is kept between scrapes but the API's own counters).
//!
//! Global: bytes up and down (this run and all time), rates, peers,
//! torrents by qBittorrent state, torrents checking, torrents whose
//! tracker fails; per torrent (labels `hash`, `name`): bytes, rates,
//! peers, progress; per shard: event-loop turns; the API's requests and
//! failed logins.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::routes::{ApiResponse, State};
use super::serialize;
use crate::daemon::command::{Command, EngineFigures, TorrentView};

/// The API's own counters, kept between scrapes.
#[derive(Debug, Default)]
pub struct ApiCounters {
    requests: AtomicU64,
    failed_logins: AtomicU64,
}

impl ApiCounters {
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn login_failed(&self) {
        self.failed_logins.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TorrentLabels {
    hash: String,
    name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabels {
    shard: String,
}

fn counter(registry: &mut Registry, name: &str, help: &str, v: u64) {
    let c: Counter = Counter::default();
    c.inc_by(v);
    registry.register(name, help, c);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, v: i64) {
    let g: Gauge = Gauge::default();
    g.set(v);
    registry.register(name, help, g);
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The text for the figures given.
pub fn encode(
    views: &[TorrentView],
    engine: &EngineFigures,
    api: &ApiCounters,
    sessions: usize,
    ban_entries: usize,
) -> String {
    let mut r = Registry::default();
    let t = serialize::totals(views);
    counter(
        &mut r,
        "ringseed_uploaded_bytes",
        "Payload bytes uploaded since the daemon started",
        t.up_session,
    );
    counter(
        &mut r,
        "ringseed_downloaded_bytes",
        "Payload bytes downloaded since the daemon started",
        t.down_session,
    );
    gauge(
        &mut r,
        "ringseed_uploaded_all_time_bytes",
        "Payload bytes uploaded by the torrents held, over their whole life",
        i(t.up_all),
    );
    gauge(
        &mut r,
        "ringseed_downloaded_all_time_bytes",
        "Payload bytes downloaded by the torrents held, over their whole life",
        i(t.down_all),
    );
    gauge(
        &mut r,
        "ringseed_upload_rate_bytes_per_second",
        "Upload rate",
        i(t.up_rate),
    );
    gauge(
        &mut r,
        "ringseed_download_rate_bytes_per_second",
        "Download rate",
        i(t.down_rate),
    );
    gauge(&mut r, "ringseed_peers", "Connected peers", t.peers as i64);
    let by_state = Family::<StateLabels, Gauge>::default();
    let mut checking = 0i64;
    let mut tracker_errors = 0i64;
    for v in views {
        let s = serialize::state(v);
        by_state
            .get_or_create(&StateLabels {
                state: s.to_string(),
            })
            .inc();
        if s.starts_with("checking") {
            checking += 1;
        }
        if v.tracker_error.is_some() {
            tracker_errors += 1;
        }
    }
    r.register(
        "ringseed_torrents",
        "Torrents by state (qBittorrent's state words)",
        by_state,
    );
    gauge(
        &mut r,
        "ringseed_torrents_checking",
        "Torrents being checked or waiting for a check",
        checking,
    );
    gauge(
        &mut r,
        "ringseed_torrents_tracker_failing",
        "Torrents whose last announce failed",
        tracker_errors,
    );

    let up = Family::<TorrentLabels, Counter>::default();
    let down = Family::<TorrentLabels, Counter>::default();
    let up_rate = Family::<TorrentLabels, Gauge>::default();
    let down_rate = Family::<TorrentLabels, Gauge>::default();
    let peers = Family::<TorrentLabels, Gauge>::default();
    let progress = Family::<TorrentLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for v in views {
        let l = TorrentLabels {
            hash: v.record.info_hash.to_hex(),
            name: v.record.name.clone(),
        };
        up.get_or_create(&l).inc_by(v.record.uploaded);
        down.get_or_create(&l).inc_by(v.record.downloaded);
        up_rate.get_or_create(&l).set(i(v.rate_up));
        down_rate.get_or_create(&l).set(i(v.rate_down));
        peers.get_or_create(&l).set(v.peers as i64);
        progress.get_or_create(&l).set(v.progress);
    }
    r.register(
        "ringseed_torrent_uploaded_bytes",
        "Payload bytes uploaded by the torrent over its life",
        up,
    );
    r.register(
        "ringseed_torrent_downloaded_bytes",
        "Payload bytes downloaded by the torrent over its life",
        down,
    );
    r.register(
        "ringseed_torrent_upload_rate_bytes_per_second",
        "The torrent's upload rate",
        up_rate,
    );
    r.register(
        "ringseed_torrent_download_rate_bytes_per_second",
        "The torrent's download rate",
        down_rate,
    );
    r.register(
        "ringseed_torrent_peers",
        "The torrent's connected peers",
        peers,
    );
    r.register(
        "ringseed_torrent_progress_ratio",
        "Share of the torrent's pieces verified on disk (0 to 1)",
        progress,
    );

    let turns = Family::<ShardLabels, Counter>::default();
    for (n, t) in engine.shard_turns.iter().enumerate() {
        turns
            .get_or_create(&ShardLabels {
                shard: n.to_string(),
            })
            .inc_by(*t);
    }
    r.register(
        "ringseed_shard_loop_turns",
        "Event-loop turns of each shard",
        turns,
    );
    counter(
        &mut r,
        "ringseed_session_events_dropped",
        "Engine events the daemon's core fell behind on",
        engine.events_dropped,
    );
    counter(
        &mut r,
        "ringseed_api_requests",
        "Web API requests",
        api.requests.load(Ordering::Relaxed),
    );
    counter(
        &mut r,
        "ringseed_api_failed_logins",
        "Failed Web API logins",
        api.failed_logins.load(Ordering::Relaxed),
    );

    gauge(
        &mut r,
        "ringseed_api_sessions",
        "Web API login sessions open",
        sessions as i64,
    );
    gauge(
        &mut r,
        "ringseed_api_addresses_with_failed_logins",
        "Addresses whose failed logins are counted (banned ones included)",
        ban_entries as i64,
    );
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &r).is_err() {
        return String::new();
    }
    out
}

fn ask<T>(
    state: &State,
    make: impl FnOnce(crate::daemon::command::Reply<T>) -> Command,
) -> Option<T> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    state.commands.try_send(make(tx)).ok()?;
    rx.recv_timeout(super::CORE_REPLY_TIMEOUT).ok()?.ok()
}

/// Answers `/metrics`.
pub fn render(state: &State) -> ApiResponse {
    let Some(views) = ask(state, |reply| Command::List { reply }) else {
        return ApiResponse::text(503, "the daemon's core did not answer");
    };
    let engine = ask(state, |reply| Command::EngineFigures { reply }).unwrap_or_default();
    ApiResponse::bytes(
        "text/plain; version=0.0.4; charset=utf-8",
        encode(
            &views,
            &engine,
            &state.metrics,
            state.sessions.lock().map_or(0, |s| s.len()),
            state.bans.lock().map_or(0, |b| b.len()),
        )
        .into_bytes(),
    )
}
