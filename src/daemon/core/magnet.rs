//! Magnets in the core: a torrent known by its info-hash alone until the
//! session's metadata fetch (BEP 9) brings its info dictionary. The record
//! is kept (as the magnet URI) from the add on; when the metadata arrives
//! the record's source becomes the .torrent built from it, so a restart
//! does not fetch again, and the torrent enters the session like any
//! added one (its data checked if present).
//!
//! Also the DHT's nodes kept over restarts: saved at shutdown in the
//! store's key/value table under [`DHT_NODES_KEY`], given back to the DHT
//! at the next start.
//!
//! Decided on purpose:
//! - the magnet's `tr` trackers become the .torrent's `announce-list`, one
//!   tier each (as `Metainfo::from_info_bytes` does);
//! - metadata for a torrent that is not (or no longer) a magnet of ours is
//!   ignored; so is metadata whose info-hash differs from the record's;
//! - a stopped magnet does not fetch; its fetch starts again when started,
//!   and at every start of the daemon;
//! - a fetch that cannot start is the entry's error (shown), not a reason
//!   to forget the record.

use std::net::SocketAddr;
use std::sync::Arc;

use ringseed::limits::TORRENT_FILE_BYTES_MAX;
use ringseed::magnet::Magnet;
use ringseed::metainfo::Metainfo;
use ringseed::InfoHash;

use super::Core;
use crate::daemon::record::{Source, Wanted};

/// The store's key for the DHT nodes saved at shutdown.
pub const DHT_NODES_KEY: &str = "dht.nodes";
/// Most DHT nodes saved (and read back): enough to start warm, small
/// enough to write at every shutdown.
pub const DHT_NODES_SAVED_MAX: usize = 300;
/// Most peer addresses a magnet's `x.pe` gives the torrent.
pub const XPE_PEERS_MAX: usize = 200;

/// The magnet of a record's source, when it is one that parses.
pub fn magnet_of(source: &Source) -> Option<Magnet> {
    match source {
        Source::Magnet(uri) => Magnet::parse(uri).ok(),
        Source::Torrent(_) => None,
    }
}

/// A .torrent file's bytes: the info dictionary as received (so its hash
/// is the info-hash) and the trackers, one tier each.
pub fn torrent_file(info: &[u8], trackers: &[String]) -> Vec<u8> {
    Metainfo::torrent_bytes(info, trackers)
}

/// The `x.pe` addresses that are IP:PORT (names are left out: no DNS
/// lookups in the core), at most [`XPE_PEERS_MAX`].
pub fn xpe_addrs(m: &Magnet) -> Vec<SocketAddr> {
    m.peers
        .iter()
        .filter_map(|p| p.parse::<SocketAddr>().ok())
        .take(XPE_PEERS_MAX)
        .collect()
}

/// The saved nodes as the store keeps them: one `IP:PORT` a line.
pub fn encode_nodes(nodes: &[SocketAddr]) -> Vec<u8> {
    let mut out = String::new();
    for n in nodes.iter().take(DHT_NODES_SAVED_MAX) {
        out.push_str(&n.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

/// The saved nodes back; lines that do not parse are skipped; at most
/// [`DHT_NODES_SAVED_MAX`].
pub fn decode_nodes(bytes: &[u8]) -> Vec<SocketAddr> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|l| l.trim().parse::<SocketAddr>().ok())
        .take(DHT_NODES_SAVED_MAX)
        .collect()
}

impl Core {
    /// Starts (or restarts) fetching the metadata of the magnet `hash`;
    /// a failure is kept as the entry's error.
    pub(super) fn start_fetch(&mut self, hash: InfoHash) {
        let Some(e) = self.entries.get_mut(&hash) else {
            return;
        };
        if e.metainfo.is_some() || e.record.wanted != Wanted::Started {
            return;
        }
        let Some(m) = magnet_of(&e.record.source) else {
            e.error = Some("the recorded magnet link does not parse".to_string());
            return;
        };
        match self.session.fetch_metadata(&m) {
            Ok(()) => {
                e.error = None;
                tracing::info!(
                    "{}: fetching the metadata ({} peers, {} trackers{})",
                    e.record.name,
                    m.peers.len(),
                    m.trackers.len(),
                    if self.session.dht_addr().is_some() {
                        ", DHT"
                    } else {
                        ""
                    }
                );
            }
            Err(err) => {
                tracing::warn!("{}: cannot fetch the metadata: {err}", e.record.name);
                e.error = Some(format!("cannot fetch the metadata: {err}"));
            }
        }
    }

    /// The metadata of a magnet arrived (checked against its hash by the
    /// session): the record becomes a .torrent, and the torrent enters the
    /// session with the fetch's peers and the magnet's `x.pe`.
    pub(super) fn metadata_arrived(
        &mut self,
        hash: InfoHash,
        info: Arc<[u8]>,
        peers: Vec<SocketAddr>,
    ) {
        let Some(e) = self.entries.get_mut(&hash) else {
            return;
        };
        if e.metainfo.is_some() {
            return;
        }
        let magnet = magnet_of(&e.record.source).unwrap_or_else(|| Magnet::new(hash));
        let m = match Metainfo::from_info_bytes(&info, &magnet.trackers) {
            Ok(m) if m.info_hash == hash => m,
            Ok(m) => {
                tracing::warn!(
                    "{}: metadata of {} received for {hash}: ignored",
                    e.record.name,
                    m.info_hash
                );
                return;
            }
            Err(err) => {
                tracing::warn!("{}: the metadata is not a torrent: {err}", e.record.name);
                e.error = Some(format!("the metadata peers sent is not a torrent: {err}"));
                return;
            }
        };
        let bytes = torrent_file(&info, &magnet.trackers);
        if bytes.len() as u64 > TORRENT_FILE_BYTES_MAX {
            tracing::warn!(
                "{}: the metadata makes a {}-byte .torrent, more than the {TORRENT_FILE_BYTES_MAX} allowed",
                e.record.name,
                bytes.len()
            );
            e.error = Some(format!(
                "the torrent's metadata is {} bytes, more than the {TORRENT_FILE_BYTES_MAX} allowed",
                bytes.len()
            ));
            return;
        }
        let mut rec = e.record.clone();
        rec.source = Source::Torrent(bytes);
        rec.name = m.info.name.clone();
        tracing::info!(
            "{}: metadata received ({} bytes, {} pieces)",
            rec.name,
            info.len(),
            m.info.pieces.len()
        );
        if let Err(err) = self.store.put(&rec) {
            // Still added: the record stays a magnet, fetched again at
            // the next start.
            tracing::warn!("{}: the .torrent not recorded: {err}", rec.name);
        }
        // The fetch is over (the session may have ended it already).
        self.session.cancel_metadata(hash);
        e.record = rec;
        e.metainfo = Some(Arc::new(m));
        e.error = None;
        let mut all = peers;
        for p in xpe_addrs(&magnet) {
            if !all.contains(&p) {
                all.push(p);
            }
        }
        self.add_to_session_with(hash, all);
        self.apply_queue();
    }

    /// The DHT nodes kept at the last shutdown.
    pub(super) fn saved_dht_nodes(
        values: &std::collections::BTreeMap<String, Vec<u8>>,
    ) -> Vec<SocketAddr> {
        values
            .get(DHT_NODES_KEY)
            .map(|v| decode_nodes(v))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_torrent_file_has_the_info_hash_and_the_trackers() {
        let info = b"d6:lengthi5e4:name1:a12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let trackers = vec!["http://127.0.138.9/announce".to_string()];
        let bytes = torrent_file(info, &trackers);
        let m = Metainfo::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let want = Metainfo::from_info_bytes(info, &trackers).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.info_hash, want.info_hash);
        assert_eq!(m.info_hash, InfoHash(ringseed::hash::sha1(info)));
        assert_eq!(m.info.name, "a");
        assert_eq!(m.trackers, vec![trackers.clone()]);
        // No trackers: no announce-list.
        let bare = Metainfo::from_bytes(&torrent_file(info, &[])).unwrap_or_else(|e| panic!("{e}"));
        assert!(bare.trackers.iter().flatten().next().is_none());
    }

    #[test]
    fn nodes_round_trip_bounded_and_bad_lines_skipped() {
        let nodes: Vec<SocketAddr> = (0..DHT_NODES_SAVED_MAX + 50)
            .map(|i| SocketAddr::from(([127, 0, 138, (i % 250) as u8], 1000 + i as u16)))
            .collect();
        let bytes = encode_nodes(&nodes);
        let back = decode_nodes(&bytes);
        assert_eq!(back.len(), DHT_NODES_SAVED_MAX);
        assert_eq!(back[..], nodes[..DHT_NODES_SAVED_MAX]);
        let v6: SocketAddr = "[::1]:6881".parse().unwrap_or_else(|e| panic!("{e}"));
        let mixed = format!("127.0.138.1:1\nnot a node\n\n{v6}\n\u{fffd}:9\n");
        assert_eq!(
            decode_nodes(mixed.as_bytes()),
            vec![SocketAddr::from(([127, 0, 138, 1], 1)), v6]
        );
        assert!(decode_nodes(b"\xff\xfe").is_empty());
    }

    #[test]
    fn xpe_keeps_addresses_only() {
        let h = InfoHash([7; 20]);
        let uri = format!(
            "magnet:?xt=urn:btih:{}&x.pe=127.0.138.2:7000&x.pe=peer.example:1&x.pe=[::1]:9",
            h.to_hex()
        );
        let m = Magnet::parse(&uri).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            xpe_addrs(&m),
            vec![
                SocketAddr::from(([127, 0, 138, 2], 7000)),
                "[::1]:9".parse().unwrap_or_else(|e| panic!("{e}"))
            ]
        );
        assert!(magnet_of(&Source::Magnet(uri)).is_some());
        assert!(magnet_of(&Source::Magnet("magnet:?xt=nope".into())).is_none());
        assert!(magnet_of(&Source::Torrent(Vec::new())).is_none());
    }
}
