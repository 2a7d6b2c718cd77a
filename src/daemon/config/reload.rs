//! What a reload (SIGHUP) changes: compares the running configuration with
//! the one just read, key by key, into log lines for what the core applies
//! at run time and the names of the keys that wait for the next start.
//! Values are shown as the file writes them (-1 for "no limit", minutes
//! for the seeding time). Only compares; applying is the core's work.

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;

use ringseed::upload_slots::{SeedChoking, SlotLimit};

use super::{DaemonConfig, ShareAction};

/// What a reload changes: lines for the log
/// (`limits.upload_rate: 0 -> 1048576`), and the keys that only take
/// effect at the next start (`network.listen`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    pub applied: Vec<String>,
    pub need_restart: Vec<String>,
}

impl ReloadPlan {
    /// Nothing changed.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.need_restart.is_empty()
    }

    fn change<T: PartialEq>(&mut self, key: &str, old: T, new: T, show: impl Fn(&T) -> String) {
        if old != new {
            self.applied
                .push(format!("{key}: {} -> {}", show(&old), show(&new)));
        }
    }

    fn restart<T: PartialEq>(&mut self, key: &str, old: T, new: T) {
        if old != new {
            self.need_restart.push(key.to_owned());
        }
    }
}

fn plain<T: Display>(v: &T) -> String {
    v.to_string()
}

/// Keys with no value by default.
fn path_or_unset(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map_or_else(|| "unset".to_owned(), |p| p.display().to_string())
}

fn slots(l: &SlotLimit) -> String {
    match l {
        SlotLimit::Fixed(n) => n.to_string(),
        SlotLimit::Unlimited => "unlimited".to_owned(),
        SlotLimit::RateBased => "rate-based".to_owned(),
    }
}

fn choking(c: &SeedChoking) -> String {
    match c {
        SeedChoking::FastestUpload => "fastest",
        SeedChoking::RoundRobin => "round-robin",
        SeedChoking::AntiLeech => "anti-leech",
    }
    .to_owned()
}

fn action(a: &ShareAction) -> String {
    match a {
        ShareAction::Stop => "stop",
        ShareAction::Remove => "remove",
        ShareAction::RemoveWithData => "remove-with-data",
    }
    .to_owned()
}

/// `None` = no limit, written -1 in the file.
fn limit<T: Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-1".to_owned(), T::to_string)
}

fn minutes(s: &Option<u64>) -> String {
    limit(&s.map(|s| s / 60))
}

fn count_or_unset(v: &Option<usize>) -> String {
    v.map_or_else(|| "unset".to_owned(), |n| n.to_string())
}

/// Compares the running configuration with the one just read.
pub(super) fn plan(old: &DaemonConfig, new: &DaemonConfig) -> ReloadPlan {
    let mut p = ReloadPlan::default();
    let (o, n) = (&old.paths, &new.paths);
    p.restart("paths.state_dir", &o.state_dir, &n.state_dir);
    if o.download_dir != n.download_dir {
        p.applied.push(format!(
            "paths.download_dir: {} -> {} (for torrents added from now on)",
            path_or_unset(&o.download_dir),
            path_or_unset(&n.download_dir)
        ));
    }
    p.change("paths.watch_dir", &o.watch_dir, &n.watch_dir, |v| {
        path_or_unset(v)
    });
    p.change(
        "paths.watch_interval_s",
        o.watch_interval_s,
        n.watch_interval_s,
        plain,
    );

    let (o, n) = (&old.network, &new.network);
    p.restart::<&Vec<SocketAddr>>("network.listen", &o.listen, &n.listen);
    p.restart("network.interface", &o.interface, &n.interface);
    p.restart("network.bind_address", &o.bind_address, &n.bind_address);
    p.restart("network.dht", o.dht, n.dht);
    p.restart("network.dht_bootstrap", &o.dht_bootstrap, &n.dht_bootstrap);
    p.restart("network.dht_read_only", o.dht_read_only, n.dht_read_only);
    p.restart("network.pex", o.pex, n.pex);
    p.restart("network.lsd", o.lsd, n.lsd);
    p.change("network.encryption", o.encryption, n.encryption, plain);
    p.change(
        "network.encryption_level",
        o.encryption_level,
        n.encryption_level,
        plain,
    );
    // The Web API's listener and credentials are set up once, at start.
    p.restart("api", &old.api, &new.api);

    let (o, n) = (&old.engine, &new.engine);
    p.restart("engine.shards", o.shards, n.shards);
    p.restart("engine.send_path", o.send_path, n.send_path);
    p.restart("engine.pin_shards", o.pin_shards, n.pin_shards);
    p.change(
        "engine.peers_per_torrent",
        o.peers_per_torrent,
        n.peers_per_torrent,
        plain,
    );
    p.change("engine.upload_slots", o.upload_slots, n.upload_slots, slots);
    p.change(
        "engine.seed_choking",
        o.seed_choking,
        n.seed_choking,
        choking,
    );
    p.change(
        "engine.optimistic_slots",
        o.optimistic_slots,
        n.optimistic_slots,
        count_or_unset,
    );
    p.change(
        "engine.round_robin_pieces",
        o.round_robin_pieces,
        n.round_robin_pieces,
        plain,
    );

    let (o, n) = (&old.limits, &new.limits);
    p.change("limits.upload_rate", o.upload_rate, n.upload_rate, plain);
    p.change(
        "limits.download_rate",
        o.download_rate,
        n.download_rate,
        plain,
    );
    p.change(
        "limits.torrent_upload_rate",
        o.torrent_upload_rate,
        n.torrent_upload_rate,
        plain,
    );
    p.change(
        "limits.torrent_download_rate",
        o.torrent_download_rate,
        n.torrent_download_rate,
        plain,
    );
    p.change(
        "limits.global_upload_slots",
        o.global_upload_slots,
        n.global_upload_slots,
        plain,
    );

    let (o, n) = (&old.queue, &new.queue);
    p.change("queue.enabled", o.enabled, n.enabled, plain);
    p.change(
        "queue.max_active_downloads",
        o.max_active_downloads,
        n.max_active_downloads,
        limit,
    );
    p.change(
        "queue.max_active_uploads",
        o.max_active_uploads,
        n.max_active_uploads,
        limit,
    );
    p.change(
        "queue.max_active_torrents",
        o.max_active_torrents,
        n.max_active_torrents,
        limit,
    );
    p.change("queue.ignore_slow", o.ignore_slow, n.ignore_slow, plain);
    p.change(
        "queue.slow_download_rate",
        o.slow_download_rate,
        n.slow_download_rate,
        plain,
    );
    p.change(
        "queue.slow_upload_rate",
        o.slow_upload_rate,
        n.slow_upload_rate,
        plain,
    );
    p.change("queue.slow_after_s", o.slow_after_s, n.slow_after_s, plain);

    let (o, n) = (&old.share, &new.share);
    p.change("share.ratio_limit", o.ratio_limit, n.ratio_limit, limit);
    p.change(
        "share.seeding_time_limit",
        o.seeding_time_limit_s,
        n.seeding_time_limit_s,
        minutes,
    );
    p.change("share.action", o.action, n.action, action);

    for (name, c) in &old.categories {
        match new.categories.get(name) {
            None => p.applied.push(format!("categories.{name}: removed")),
            Some(nc) => p.change(
                &format!("categories.{name}.save_path"),
                &c.save_path,
                &nc.save_path,
                |v| path_or_unset(v),
            ),
        }
    }
    for (name, c) in &new.categories {
        if !old.categories.contains_key(name) {
            p.applied.push(format!(
                "categories.{name}: added (save_path {})",
                path_or_unset(&c.save_path)
            ));
        }
    }

    let (o, n) = (&old.log, &new.log);
    p.change(
        "log.status_interval_s",
        o.status_interval_s,
        n.status_interval_s,
        plain,
    );
    p
}
