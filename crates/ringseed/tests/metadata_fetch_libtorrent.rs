//! The metadata fetcher against a real peer: a libtorrent 2.0 seed (python3-
//! libtorrent, DHT, LSD, PEX, UPnP and NAT-PMP off) on 127.0.131.2 serves a
//! torrent whose info dictionary spans two BEP 9 pieces; the fetcher, bound
//! to 127.0.131.1 and also given an address where nothing listens, must
//! return exactly that dictionary, whose SHA-1 is the info-hash.

#[path = "support/libtorrent.rs"]
mod libtorrent;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use libtorrent::{make_torrent, require_libtorrent, start_seed};
use ringseed::hash::sha1;
use ringseed::runtime::metadata_fetch::{FetcherConfig, MetadataFetcher};
use ringseed::runtime::sockets::BindOptions;
use ringseed::wire::ut_metadata::METADATA_PIECE_BYTES;
use ringseed::InfoHash;

const OUR_IP: &str = "127.0.131.1";
const SEED_IP: &str = "127.0.131.2";
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
const PIECE_BYTES: u64 = 16 * 1024;
/// 1100 pieces: 22,000 bytes of hashes, so the info dictionary has 2 pieces.
const PIECES: u64 = 1100;

/// A libtorrent seed: prints `lt: seeding on IP:PORT` once its data checked,
/// seeds until killed or the timeout (argv[4] seconds) passes.
const SEED_SCRIPT: &str = r#"
import os, sys, time
import libtorrent as lt
torrent, save, ip, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
# flags 0: no default plugins (ut_pex, smart_ban); only ut_metadata is added.
ses = lt.session({
    "listen_interfaces": f"{ip}:0",
    "outgoing_interfaces": ip,
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    "allow_multiple_connections_per_ip": True,
    "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.status_notification,
}, 0)
ses.add_extension("ut_metadata")
ti = lt.torrent_info(torrent)
h = ses.add_torrent({"ti": ti, "save_path": save})
end = time.monotonic() + timeout
announced = False
while time.monotonic() < end:
    ses.wait_for_alert(200)
    for a in ses.pop_alerts():
        if a.category() & lt.alert.category_t.error_notification:
            print(f"lt: {a.message()}", flush=True)
    st = h.status()
    if st.errc.value() != 0:
        print(f"lt: error {st.errc.message()}", flush=True)
        os._exit(1)
    if st.is_seeding and not announced and st.num_pieces == ti.num_pieces():
        announced = True
        print(f"lt: seeding on {ip}:{ses.listen_port()}", flush=True)
sys.stdout.flush()
os._exit(0)
"#;

#[test]
fn fetches_metadata_from_a_libtorrent_seed() {
    require_libtorrent();
    let dir = tempfile::tempdir().unwrap();
    let info = make_torrent(dir.path(), PIECES, PIECE_BYTES);
    assert!(info.len() > METADATA_PIECE_BYTES, "two metadata pieces");
    let info_hash = InfoHash(sha1(&info));
    let args = [
        dir.path().join("t.torrent").into_os_string(),
        dir.path().as_os_str().to_owned(),
        SEED_IP.into(),
        "120".into(),
    ];
    let (seed, seed_addr) = start_seed(
        SEED_SCRIPT,
        &args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>(),
    );

    let mut config = FetcherConfig::new(*b"-RS0001-metadatatest");
    config.bind = BindOptions {
        interface: None,
        address: Some(OUR_IP.parse::<IpAddr>().unwrap()),
    };
    config.threads = 1;
    config.peer_timeout = Duration::from_secs(10);
    let fetcher = MetadataFetcher::start(config).unwrap();
    fetcher.fetch(info_hash).unwrap();
    // Nothing listens on port 1 of the seed's address: a refused peer first.
    let dead: SocketAddr = format!("{SEED_IP}:1").parse().unwrap();
    fetcher.add_peers(info_hash, vec![dead, seed_addr]);
    let started = Instant::now();
    let fetched = fetcher
        .results()
        .recv_timeout(FETCH_TIMEOUT)
        .expect("no metadata from the libtorrent seed in time");
    eprintln!(
        "fetched {} bytes in {:?}",
        fetched.info.len(),
        started.elapsed()
    );
    fetcher.shutdown();
    drop(seed);

    assert_eq!(fetched.info_hash, info_hash);
    assert_eq!(InfoHash(sha1(&fetched.info)), info_hash);
    assert_eq!(&fetched.info[..], &info[..]);
    assert_eq!(fetched.peers, vec![seed_addr]);
}
