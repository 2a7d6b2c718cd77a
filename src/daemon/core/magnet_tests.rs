//! A magnet's life in a real core (a session on 127.0.138.x, DHT off, a
//! state database in a temporary folder): add → `metaDL` (recorded as a
//! magnet) → metadata → a .torrent record in the session; stop and start;
//! remove; a restart fetches the magnets still without metadata again.
//! The metadata is handed to the core as the session's event would.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use ringseed::metainfo::{Metainfo, NewFile, TorrentBuilder};
use ringseed::InfoHash;

use super::{Core, CoreSetup};
use crate::daemon::command::{AddRequest, CommandError};
use crate::daemon::config::DaemonConfig;
use crate::daemon::record::{Source, Wanted};
use crate::daemon::store::Store;
use crate::daemon::webapi::serialize;

/// A small single-file torrent whose data is written to `dir`.
fn torrent(dir: &Path, name: &str, len: usize, seed: u8) -> Metainfo {
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    std::fs::write(dir.join(name), &data).unwrap_or_else(|e| panic!("{e}"));
    let piece_length = 16 * 1024;
    let hashes: Vec<[u8; 20]> = data
        .chunks(piece_length)
        .map(ringseed::hash::sha1)
        .collect();
    let b = TorrentBuilder {
        name: name.into(),
        files: vec![NewFile {
            path: vec![],
            length: len as u64,
        }],
        single_file: true,
        piece_length: piece_length as u64,
        ..TorrentBuilder::default()
    };
    let bytes = b.build(&hashes).unwrap_or_else(|e| panic!("{e}"));
    Metainfo::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"))
}

fn start(state: &Path, downloads: &Path, ip_last: u8) -> Core {
    let mut config = DaemonConfig::default();
    config.network.listen = vec![SocketAddr::from(([127, 0, 138, ip_last], 0))];
    config.network.dht = false;
    config.engine.shards = Some(1);
    config.api.listen = None;
    let setup = CoreSetup {
        config,
        reload: Box::new(|| Ok(DaemonConfig::default())),
        state_dir: state.to_path_buf(),
        download_dir: downloads.to_path_buf(),
        notifier: None,
    };
    let (_tx, rx) = bounded(4);
    Core::start(setup, rx).unwrap_or_else(|e| panic!("the core did not start: {e:#}"))
}

fn add_req(source: Source, stopped: bool) -> AddRequest {
    AddRequest {
        source,
        save_path: None,
        category: String::new(),
        tags: BTreeSet::new(),
        stopped,
        share_limits: Default::default(),
        rate_limits: Default::default(),
        skip_check: false,
    }
}

fn magnet(hash: InfoHash, dn: Option<&str>) -> Source {
    let mut uri = format!(
        "magnet:?xt=urn:btih:{}&tr=http%3A%2F%2F127.0.138.250%3A1%2Fannounce",
        hash.to_hex()
    );
    if let Some(n) = dn {
        uri.push_str("&dn=");
        uri.push_str(n);
    }
    Source::Magnet(uri)
}

/// The state qBittorrent clients see, and ctl's word.
fn states(core: &Core, hash: &InfoHash) -> (String, &'static str) {
    let e = core
        .entries
        .get(hash)
        .unwrap_or_else(|| panic!("{hash} is not listed"));
    let v = e.view();
    let api = serialize::state(&v);
    (v.state, api)
}

/// Waits (bounded) until the torrent has a snapshot in the session.
fn wait_in_session(core: &mut Core, hash: &InfoHash) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        core.refresh(Instant::now());
        if core.entries.get(hash).is_some_and(|e| e.snap.is_some()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{hash} never showed in the session");
}

#[test]
fn a_magnet_is_recorded_fetched_converted_and_survives_restarts() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (state, downloads) = (root.path().join("state"), root.path().join("dl"));
    std::fs::create_dir_all(&downloads).unwrap_or_else(|e| panic!("{e}"));
    let elsewhere = root.path().join("src");
    std::fs::create_dir_all(&elsewhere).unwrap_or_else(|e| panic!("{e}"));
    let t = torrent(&elsewhere, "payload.bin", 40_000, 3);
    let other = torrent(&elsewhere, "other.bin", 20_000, 9);
    let lone = InfoHash([0x5a; 20]);

    let mut core = start(&state, &downloads, 1);
    // Bad input: a clear error, nothing recorded.
    match core.add(add_req(
        Source::Magnet("magnet:?xt=urn:btih:zz".into()),
        false,
    )) {
        Err(CommandError::Invalid(why)) => {
            assert!(why.contains("not a valid magnet link"), "{why}")
        }
        other => panic!("a bad magnet was not refused: {other:?}"),
    }
    assert!(core.entries.is_empty());

    // Added: listed as metaDL, named by dn, nothing known of its size.
    let h = core
        .add(add_req(magnet(t.info_hash, Some("the%20show")), false))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h, t.info_hash);
    assert_eq!(states(&core, &h), ("metadata".to_string(), "metaDL"));
    let v = core.entries[&h].view();
    assert_eq!(v.record.name, "the show");
    assert_eq!((v.total_length, v.piece_count, v.pieces_have), (0, 0, 0));
    assert!(v.metainfo.is_none());
    // No dn: the hex hash.
    let h2 = core
        .add(add_req(magnet(other.info_hash, None), true))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(core.entries[&h2].record.name, other.info_hash.to_hex());
    // Added stopped: qBittorrent 5's stoppedDL.
    assert_eq!(states(&core, &h2), ("stopped".to_string(), "stoppedDL"));
    // A duplicate magnet, and the .torrent of a known magnet.
    assert!(matches!(
        core.add(add_req(magnet(t.info_hash, None), false)),
        Err(CommandError::Duplicate { hash, .. }) if hash == h
    ));
    let lone_h = core
        .add(add_req(magnet(lone, Some("lone")), false))
        .unwrap_or_else(|e| panic!("{e}"));

    // Stop and start a magnet.
    core.set_wanted(h, Wanted::Stopped)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(states(&core, &h), ("stopped".to_string(), "stoppedDL"));
    core.set_wanted(h, Wanted::Started)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(states(&core, &h), ("metadata".to_string(), "metaDL"));
    // Commands that need the engine say it is not there.
    assert!(core.entries[&h].id.is_none());

    // Metadata of another torrent for h: ignored.
    core.metadata_arrived(h, other.info_bytes.clone(), Vec::new());
    assert!(core.entries[&h].metainfo.is_none());
    // Metadata for an unknown hash: ignored.
    core.metadata_arrived(InfoHash([1; 20]), t.info_bytes.clone(), Vec::new());

    // The metadata: a .torrent record with the real name, in the session.
    core.metadata_arrived(h, t.info_bytes.clone(), Vec::new());
    let e = &core.entries[&h];
    assert_eq!(e.record.name, "payload.bin");
    let Source::Torrent(bytes) = &e.record.source else {
        panic!("the record is still a magnet");
    };
    let m = Metainfo::from_bytes(bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.info_hash, h);
    assert_eq!(
        m.trackers,
        vec![vec!["http://127.0.138.250:1/announce".to_string()]]
    );
    assert!(e.metainfo.is_some() && e.id.is_some());
    wait_in_session(&mut core, &h);
    let v = core.entries[&h].view();
    assert_eq!(v.total_length, 40_000);
    assert_eq!(v.piece_count, 3);
    assert_ne!(serialize::state(&v), "metaDL");
    // Its metadata again (a late event): nothing changes.
    let id = core.entries[&h].id;
    core.metadata_arrived(h, t.info_bytes.clone(), Vec::new());
    assert_eq!(core.entries[&h].id, id);
    assert_eq!(core.session.torrent_ids().len(), 1);

    // Remove a magnet without metadata.
    core.remove_one(lone_h, false)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!core.entries.contains_key(&lone_h));
    core.shutdown();

    // The store: h is a .torrent now, h2 still a magnet, lone gone.
    {
        let loaded = Store::open(&state).unwrap_or_else(|e| panic!("{e}"));
        let by: std::collections::HashMap<InfoHash, _> = loaded
            .torrents
            .iter()
            .map(|r| (r.info_hash, r.clone()))
            .collect();
        assert_eq!(by.len(), 2, "{:?}", by.keys().collect::<Vec<_>>());
        assert!(matches!(by[&h].source, Source::Torrent(_)));
        assert_eq!(by[&h].name, "payload.bin");
        assert!(matches!(by[&h2].source, Source::Magnet(_)));
        assert_eq!(by[&h2].wanted, Wanted::Stopped);
        loaded.store.close();
    }

    // A restart: h enters the session from its .torrent, h2 still waits
    // (stopped); started, it fetches again.
    let mut core = start(&state, &downloads, 2);
    assert!(core.entries[&h].metainfo.is_some());
    assert!(core.entries[&h].id.is_some());
    assert_eq!(states(&core, &h2), ("stopped".to_string(), "stoppedDL"));
    core.set_wanted(h2, Wanted::Started)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(states(&core, &h2), ("metadata".to_string(), "metaDL"));
    core.shutdown();

    // Once more: the started magnet is fetched again at start.
    let core = start(&state, &downloads, 3);
    assert_eq!(states(&core, &h2), ("metadata".to_string(), "metaDL"));
    assert!(core.entries[&h2].error.is_none());
    core.shutdown();
}

#[test]
fn the_saved_dht_nodes_are_read_back_from_the_values() {
    let mut values = std::collections::BTreeMap::new();
    assert!(Core::saved_dht_nodes(&values).is_empty());
    let nodes = vec![
        SocketAddr::from(([127, 0, 138, 7], 6881)),
        SocketAddr::from(([127, 0, 138, 8], 6882)),
    ];
    values.insert(
        super::magnet::DHT_NODES_KEY.to_string(),
        super::magnet::encode_nodes(&nodes),
    );
    assert_eq!(Core::saved_dht_nodes(&values), nodes);
}
