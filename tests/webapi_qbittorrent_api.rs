//! ringseed's qBittorrent Web API driven by the real PyPI `qbittorrent-api`
//! client (tests/webapi/qbt_scenario.py, in the virtualenv scripts/test.sh
//! creates): log in, version strings, wrong password and no-cookie answers,
//! add a .torrent with save path, category and tags, wait until it seeds,
//! read properties/files/trackers/piece states, change category and tags,
//! watch `sync/maindata` deltas, stop and start under both the 4.x and 5.x
//! names, a libtorrent leecher downloads the torrent while `transfer/info`
//! and `uploaded` grow, delete without and with files.

mod common;

use std::net::Ipv4Addr;

use common::daemon::{small_torrent_with, Dirs, RingDaemon, API_PASSWORD, API_USER};
use common::qbt::{run_scenario, ScenarioArgs};
use serde_json::Value;

/// Addresses of this test (127.0.114.0/24 belongs to the Web API client tests).
const IP: Ipv4Addr = Ipv4Addr::new(127, 0, 114, 10);
const LEECH_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 114, 11);
/// A tracker nobody answers (nothing listens there): the torrent has a
/// real tracker entry beside the DHT/PeX/LSD ones.
const DEAD_TRACKER: &str = "http://127.0.114.250:9/announce";

#[test]
fn qbittorrent_api_client_drives_ringseed() {
    let dirs = Dirs::new();
    let data = dirs.path("data");
    std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
    let (bytes, hash) = small_torrent_with(
        &data,
        "api-payload.bin",
        300_000,
        0xa91_0001,
        16 * 1024,
        &[DEAD_TRACKER.to_string()],
    );
    let torrent = dirs.path("api-payload.torrent");
    std::fs::write(&torrent, &bytes).unwrap_or_else(|e| panic!("{e}"));

    let d = RingDaemon::start_api("ringseed", &dirs, IP, &[]);
    let out = dirs.path("keys.json");
    let leech = dirs.path("leech");
    let run = run_scenario(&ScenarioArgs {
        url: d.api_url(),
        user: API_USER,
        password: API_PASSWORD,
        torrent: &torrent,
        save_path: &data,
        peer: d.addr,
        leech_ip: LEECH_IP,
        leech_dir: &leech,
        out: &out,
    });
    assert!(
        run.passed(),
        "the qbittorrent-api scenario failed against ringseed\n{}\n{}",
        run.output.describe(),
        d.proc.describe()
    );
    let server = run
        .keys
        .as_ref()
        .and_then(|k| k.get("server"))
        .cloned()
        .unwrap_or_default();
    // ringseed behaves as qBittorrent 5.1: the 5.x names were taken.
    assert_eq!(
        server.get("version").and_then(Value::as_str),
        Some("v5.1.4"),
        "app/version: {server}"
    );
    assert_eq!(
        server.get("webapi_version").and_then(Value::as_str),
        Some("2.11.4"),
        "app/webapiVersion: {server}"
    );
    assert_eq!(
        server.get("hash").and_then(Value::as_str),
        Some(hash.as_str()),
        "the scenario's torrent: {server}"
    );
    println!("{}", run.output.stdout);
}
