//! Settings changed at run time through the Web API (`app/setPreferences`,
//! `transfer/setUploadLimit`...): kept in the state database and applied on
//! top of the configuration file at every start and SIGHUP, so that a limit
//! changed in a web UI survives a restart as it does in qBittorrent. The
//! file stays the operator's: ringseed never writes it, and the log says
//! which values come from the database.
//!
//! Plain data (serde JSON in the store's key/value table); no IO.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::DaemonConfig;

/// The key the patch is kept under in the state database.
pub const PATCH_KEY: &str = "api.config_patch";

/// Values set through the Web API; `None`: the file's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigPatch {
    /// Bytes per second, 0 unlimited.
    pub upload_rate: Option<u64>,
    pub download_rate: Option<u64>,
    pub queue_enabled: Option<bool>,
    /// 0: no limit.
    pub max_active_downloads: Option<usize>,
    pub max_active_uploads: Option<usize>,
    pub max_active_torrents: Option<usize>,
    /// Negative: no ratio limit.
    pub ratio_limit: Option<f64>,
    /// Seconds; negative: no seeding-time limit.
    pub seeding_time_limit_s: Option<i64>,
    pub download_dir: Option<PathBuf>,
    /// qBittorrent's `encryption`: 0 enabled (prefer), 1 required, 2
    /// disabled.
    pub encryption: Option<u8>,
}

/// qBittorrent's `encryption` number for a mode.
pub fn qbt_encryption(m: ringseed::mse::EncryptionMode) -> u8 {
    use ringseed::mse::EncryptionMode as M;
    match m {
        M::Enabled => 0,
        M::Required => 1,
        M::Disabled => 2,
    }
}

/// The mode for qBittorrent's `encryption` number (0 to 2).
pub fn encryption_of_qbt(n: u8) -> Option<ringseed::mse::EncryptionMode> {
    use ringseed::mse::EncryptionMode as M;
    match n {
        0 => Some(M::Enabled),
        1 => Some(M::Required),
        2 => Some(M::Disabled),
        _ => None,
    }
}

fn count(n: usize) -> Option<usize> {
    (n > 0).then_some(n)
}

impl ConfigPatch {
    pub fn is_empty(&self) -> bool {
        *self == ConfigPatch::default()
    }

    /// `newer`'s values over this one's.
    pub fn merge(&mut self, newer: &ConfigPatch) {
        macro_rules! take {
            ($($f:ident),*) => {$(
                if newer.$f.is_some() {
                    self.$f = newer.$f.clone();
                }
            )*};
        }
        take!(
            upload_rate,
            download_rate,
            queue_enabled,
            max_active_downloads,
            max_active_uploads,
            max_active_torrents,
            ratio_limit,
            seeding_time_limit_s,
            download_dir,
            encryption
        );
    }

    /// Writes the values set into `c`.
    pub fn apply(&self, c: &mut DaemonConfig) {
        if let Some(v) = self.upload_rate {
            c.limits.upload_rate = v;
        }
        if let Some(v) = self.download_rate {
            c.limits.download_rate = v;
        }
        if let Some(v) = self.queue_enabled {
            c.queue.enabled = v;
        }
        if let Some(n) = self.max_active_downloads {
            c.queue.max_active_downloads = count(n);
        }
        if let Some(n) = self.max_active_uploads {
            c.queue.max_active_uploads = count(n);
        }
        if let Some(n) = self.max_active_torrents {
            c.queue.max_active_torrents = count(n);
        }
        if let Some(r) = self.ratio_limit {
            c.share.ratio_limit = (r >= 0.0).then_some(r);
        }
        if let Some(s) = self.seeding_time_limit_s {
            c.share.seeding_time_limit_s = u64::try_from(s).ok();
        }
        if let Some(d) = &self.download_dir {
            c.paths.download_dir = Some(d.clone());
        }
        if let Some(m) = self.encryption.and_then(encryption_of_qbt) {
            c.network.encryption = m;
        }
    }

    /// The keys set, for the log.
    pub fn keys(&self) -> Vec<&'static str> {
        let mut k = Vec::new();
        let mut add = |set: bool, name| {
            if set {
                k.push(name);
            }
        };
        add(self.upload_rate.is_some(), "limits.upload_rate");
        add(self.download_rate.is_some(), "limits.download_rate");
        add(self.queue_enabled.is_some(), "queue.enabled");
        add(
            self.max_active_downloads.is_some(),
            "queue.max_active_downloads",
        );
        add(
            self.max_active_uploads.is_some(),
            "queue.max_active_uploads",
        );
        add(
            self.max_active_torrents.is_some(),
            "queue.max_active_torrents",
        );
        add(self.ratio_limit.is_some(), "share.ratio_limit");
        add(
            self.seeding_time_limit_s.is_some(),
            "share.seeding_time_limit",
        );
        add(self.download_dir.is_some(), "paths.download_dir");
        add(self.encryption.is_some(), "network.encryption");
        k
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a stored patch; one that does not read is `None` (the file's
    /// values are used, and the caller says so).
    pub fn from_json(bytes: &[u8]) -> Option<ConfigPatch> {
        serde_json::from_slice(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_overrides_only_what_it_sets_and_round_trips() {
        let mut a = ConfigPatch {
            upload_rate: Some(1000),
            max_active_downloads: Some(0),
            ..ConfigPatch::default()
        };
        a.merge(&ConfigPatch {
            upload_rate: Some(2000),
            ratio_limit: Some(-1.0),
            ..ConfigPatch::default()
        });
        let mut c = DaemonConfig::default();
        c.share.ratio_limit = Some(2.0);
        let before = c.clone();
        a.apply(&mut c);
        assert_eq!(c.limits.upload_rate, 2000);
        assert_eq!(c.queue.max_active_downloads, None);
        assert_eq!(c.share.ratio_limit, None);
        assert_eq!(c.limits.download_rate, before.limits.download_rate);
        assert_eq!(c.queue.max_active_uploads, before.queue.max_active_uploads);
        assert_eq!(ConfigPatch::from_json(&a.to_json()), Some(a.clone()));
        assert_eq!(
            a.keys(),
            [
                "limits.upload_rate",
                "queue.max_active_downloads",
                "share.ratio_limit"
            ]
        );
        assert_eq!(ConfigPatch::from_json(b"{\"nope\": 1}"), None);
        assert!(ConfigPatch::default().is_empty());
    }
}
