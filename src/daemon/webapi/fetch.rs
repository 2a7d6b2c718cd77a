//! Downloads the .torrent behind an `http(s)://` link given to `torrents/add`
//! (what Sonarr and autobrr send for some indexers), through the same
//! interface binding as peer traffic, with the engine's bounded HTTP
//! client (timeouts, redirects, at most [`TORRENT_FILE_BYTES_MAX`] bytes).
//!
//! Links carry secrets (passkeys in the path or query): only
//! [`redact`]ed forms reach errors and logs.

use ringseed::limits::TORRENT_FILE_BYTES_MAX;
use ringseed::runtime::http_client::{bound_connector, http_get, HttpLimits};
use ringseed::runtime::sockets::BindOptions;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("{url}: {why}")]
    Failed { url: String, why: String },
    #[error("{url}: the server answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: not a valid torrent file: {why}")]
    NotATorrent { url: String, why: String },
}

/// `scheme://host/…`: what may be shown of a link.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    if scheme.is_empty() {
        return "(a link)".to_string();
    }
    format!("{scheme}://{host}/…")
}

/// Fetches and checks the .torrent at `url`.
pub fn torrent(url: &str, bind: &BindOptions) -> Result<Vec<u8>, FetchError> {
    let shown = redact(url);
    let limits = HttpLimits {
        body_bytes_max: TORRENT_FILE_BYTES_MAX as usize,
        ..HttpLimits::default()
    };
    let connect = bound_connector(bind.clone());
    let r = http_get(url, &connect, &limits).map_err(|e| FetchError::Failed {
        url: shown.clone(),
        // The client's errors quote the URL: keep only its kind of failure.
        why: e.to_string().replace(url, &shown),
    })?;
    if r.status != 200 {
        return Err(FetchError::Status {
            url: shown,
            status: r.status,
        });
    }
    ringseed::metainfo::Metainfo::from_bytes(&r.body).map_err(|e| FetchError::NotATorrent {
        url: shown,
        why: e.to_string(),
    })?;
    Ok(r.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_only_scheme_and_host() {
        assert_eq!(
            redact("http://user:pw@tracker.example:8080/dl/123/PASSKEY?x=1"),
            "http://tracker.example:8080/…"
        );
        assert_eq!(redact("https://a.b/c?passkey=s"), "https://a.b/…");
        assert_eq!(redact("nonsense"), "(a link)");
    }
}
