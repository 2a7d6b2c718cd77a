//! The Web API's handlers against a fake core (a thread answering the
//! core's commands from fixed data): authentication, methods, errors, the
//! torrents/info filters and paging, maindata deltas, and that actions
//! reach the core as the right commands. No socket: requests go straight
//! to [`routes::route`].

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;

use bytes::Bytes;
use crossbeam_channel::{bounded, Sender};
use serde_json::Value;

use super::auth::PasswordHash;
use super::routes::{route, ApiRequest, ApiResponse, State};
use super::ApiSettings;
use crate::daemon::command::{Command, ConfigView, Selector, TorrentView};
use crate::daemon::config::DaemonConfig;
use crate::daemon::record::{Limit, RateLimits, ShareLimits, Source, TorrentRecord, Wanted};
use ringseed::runtime::sockets::BindOptions;
use ringseed::InfoHash;

const PASSWORD: &str = "test-pw";

fn record(n: u8, name: &str, category: &str, tags: &[&str]) -> TorrentRecord {
    TorrentRecord {
        info_hash: InfoHash([n; 20]),
        name: name.into(),
        source: Source::Torrent(Vec::new()),
        save_path: PathBuf::from("/srv/data"),
        category: category.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        wanted: Wanted::Started,
        force_start: false,
        share_limits: ShareLimits {
            ratio: Limit::Global,
            seeding_time_s: Limit::Global,
        },
        rate_limits: RateLimits::default(),
        added_at: 1_700_000_000 + i64::from(n),
        completed_at: None,
        uploaded: u64::from(n) * 1000,
        downloaded: 0,
        seeding_time_s: 0,
        active_time_s: 0,
        pieces: None,
        file_stamps: Vec::new(),
        moving_to: None,
    }
}

fn view(record: TorrentRecord, state: &str, have: u32, rate_up: u64) -> TorrentView {
    TorrentView {
        record,
        state: state.into(),
        progress: f64::from(have) / 10.0,
        pieces_have: have,
        piece_count: 10,
        total_length: 10_000,
        bytes_left: u64::from(10 - have) * 1000,
        rate_up,
        rate_down: 0,
        peers: 0,
        seeds: 0,
        message: None,
        metainfo: None,
        tracker_error: None,
        running: true,
        queue_position: 0,
        uploaded_session: 0,
        downloaded_session: 0,
        last_activity: 0,
    }
}

/// What the fake core was asked to do.
type Log = Arc<Mutex<Vec<String>>>;

fn fake_core(views: Arc<Mutex<Vec<TorrentView>>>, log: Log) -> Sender<Command> {
    let (tx, rx) = bounded::<Command>(16);
    thread::spawn(move || {
        for c in rx {
            let views_now = views.lock().unwrap().clone();
            match c {
                Command::List { reply } => {
                    let _ = reply.send(Ok(views_now));
                }
                Command::Get { hash, reply } => {
                    let r = views_now
                        .iter()
                        .find(|v| v.record.info_hash == hash)
                        .cloned()
                        .ok_or(crate::daemon::command::CommandError::UnknownTorrent(hash));
                    let _ = reply.send(r);
                }
                Command::Config { reply } => {
                    let _ = reply.send(Ok(ConfigView {
                        config: DaemonConfig::default(),
                        download_dir: PathBuf::from("/srv/data"),
                        listen: vec![SocketAddr::from(([127, 0, 0, 1], 6881))],
                        dht_nodes: 0,
                    }));
                }
                Command::Categories { reply } => {
                    let _ = reply.send(Ok(Vec::new()));
                }
                Command::Stop { which, reply } => {
                    log.lock().unwrap().push(format!("stop {which:?}"));
                    let known = |h: &InfoHash| views_now.iter().any(|v| v.record.info_hash == *h);
                    let r = match &which {
                        Selector::Hashes(hs) => match hs.iter().find(|h| !known(h)) {
                            Some(h) => {
                                Err(crate::daemon::command::CommandError::UnknownTorrent(*h))
                            }
                            None => Ok(hs.len()),
                        },
                        Selector::All => Ok(views_now.len()),
                    };
                    let _ = reply.send(r);
                }
                Command::PutValue { key, reply, .. } => {
                    log.lock().unwrap().push(format!("put {key}"));
                    let _ = reply.send(Ok(()));
                }
                Command::AddTags { which, tags, reply } => {
                    let mut v = views.lock().unwrap();
                    for t in v.iter_mut() {
                        let chosen = match &which {
                            Selector::All => true,
                            Selector::Hashes(h) => h.contains(&t.record.info_hash),
                        };
                        if chosen {
                            t.record.tags.extend(tags.iter().cloned());
                        }
                    }
                    log.lock().unwrap().push(format!("addTags {tags:?}"));
                    let _ = reply.send(Ok(1));
                }
                other => {
                    log.lock().unwrap().push(format!("unexpected {other:?}"));
                }
            }
        }
    });
    tx
}

struct Api {
    state: State,
    log: Log,
    views: Arc<Mutex<Vec<TorrentView>>>,
}

fn api(views: Vec<TorrentView>) -> Api {
    let views = Arc::new(Mutex::new(views));
    let log: Log = Arc::default();
    let commands = fake_core(views.clone(), log.clone());
    let settings = ApiSettings {
        listen: None,
        username: "admin".into(),
        password_hash: PasswordHash::new(PASSWORD),
        metrics_require_login: false,
        webui_root: None,
    };
    Api {
        state: State::new(
            settings,
            commands,
            BindOptions::default(),
            SocketAddr::from(([127, 0, 0, 1], 8080)),
            BTreeSet::new(),
        ),
        log,
        views,
    }
}

fn req(method: &str, path: &str, body: &str, cookie: &str, peer: u8) -> ApiRequest {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (path.to_string(), None),
    };
    ApiRequest {
        method: method.into(),
        path,
        query,
        content_type: Some("application/x-www-form-urlencoded".into()),
        cookie: cookie.into(),
        authorization: None,
        peer: IpAddr::V4(Ipv4Addr::new(10, 0, 0, peer)),
        body: Bytes::from(body.to_string()),
    }
}

fn text(r: &ApiResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn json(r: &ApiResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", text(r)))
}

/// A login with the right credentials from 10.0.0.`peer`.
fn login_req(peer: u8) -> ApiRequest {
    req(
        "POST",
        "/api/v2/auth/login",
        &format!("username=admin&password={PASSWORD}"),
        "",
        peer,
    )
}

fn login(a: &Api, peer: u8) -> String {
    let r = route(&a.state, login_req(peer));
    assert_eq!((r.status, text(&r).as_str()), (200, "Ok."));
    let c = r.set_cookie.expect("a SID cookie");
    c.split(';').next().unwrap().to_string()
}

#[test]
fn without_a_session_everything_but_login_is_forbidden() {
    let a = api(Vec::new());
    for path in [
        "/api/v2/torrents/info",
        "/api/v2/app/version",
        "/api/v2/sync/maindata",
    ] {
        let r = route(&a.state, req("GET", path, "", "", 1));
        assert_eq!((r.status, text(&r).as_str()), (403, "Forbidden"), "{path}");
    }
    let r = route(
        &a.state,
        req("GET", "/api/v2/app/version", "", "SID=made-up", 1),
    );
    assert_eq!(r.status, 403);
    let sid = login(&a, 1);
    let r = route(&a.state, req("GET", "/api/v2/app/version", "", &sid, 1));
    assert_eq!((r.status, text(&r).as_str()), (200, "v5.1.4"));
    // The cookie echoed back with its attributes (Flood) works too.
    let echoed = format!("{sid}; HttpOnly; path=/; SameSite=Strict");
    let r = route(
        &a.state,
        req("POST", "/api/v2/app/webapiVersion", "", &echoed, 1),
    );
    assert_eq!((r.status, text(&r).as_str()), (200, "2.11.4"));
}

#[test]
fn five_failed_logins_ban_the_address_and_only_it() {
    let a = api(Vec::new());
    for _ in 0..5 {
        let r = route(
            &a.state,
            req(
                "POST",
                "/api/v2/auth/login",
                "username=admin&password=nope",
                "",
                7,
            ),
        );
        assert_eq!((r.status, text(&r).as_str()), (200, "Fails."));
    }
    let r = route(&a.state, login_req(7));
    assert_eq!(r.status, 403);
    assert!(text(&r).contains("banned"), "{}", text(&r));
    // Another address still logs in.
    login(&a, 8);
}

#[test]
fn actions_need_post_and_unknown_endpoints_are_404() {
    let a = api(vec![view(record(1, "a", "", &[]), "seeding", 10, 0)]);
    let sid = login(&a, 1);
    let hash = InfoHash([1; 20]).to_hex();
    let r = route(
        &a.state,
        req(
            "GET",
            &format!("/api/v2/torrents/stop?hashes={hash}"),
            "",
            &sid,
            1,
        ),
    );
    assert_eq!(r.status, 405);
    assert!(a.log.lock().unwrap().is_empty());
    let r = route(
        &a.state,
        req("GET", "/api/v2/torrents/nothing", "", &sid, 1),
    );
    assert_eq!(r.status, 404);
    let r = route(
        &a.state,
        req("POST", "/api/v2/torrents/properties", "", &sid, 1),
    );
    assert_eq!(r.status, 400, "missing hash: {}", text(&r));
    let r = route(
        &a.state,
        req(
            "POST",
            "/api/v2/torrents/properties",
            &format!("hash={}", "ab".repeat(20)),
            &sid,
            1,
        ),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn stop_and_its_old_name_skip_unknown_hashes() {
    let a = api(vec![view(record(1, "a", "", &[]), "seeding", 10, 0)]);
    let sid = login(&a, 1);
    let known = InfoHash([1; 20]).to_hex();
    let unknown = InfoHash([9; 20]).to_hex();
    for path in ["/api/v2/torrents/stop", "/api/v2/torrents/pause"] {
        let r = route(
            &a.state,
            req("POST", path, &format!("hashes={unknown}|{known}"), &sid, 1),
        );
        assert_eq!(r.status, 200, "{}", text(&r));
    }
    let log = a.log.lock().unwrap().clone();
    // Asked with both, then again with the known one only.
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(
        log[1].contains(&format!("{:?}", InfoHash([1; 20]))),
        "{log:?}"
    );
    assert!(
        !log[1].contains(&format!("{:?}", InfoHash([9; 20]))),
        "{log:?}"
    );
}

#[test]
fn torrents_info_filters_sorts_and_pages_as_qbittorrent() {
    let a = api(vec![
        view(record(1, "Bravo", "tv", &["x"]), "seeding", 10, 500),
        view(record(2, "alpha", "movies", &[]), "downloading", 3, 0),
        view(record(3, "Charlie", "tv", &["x", "y"]), "stopped", 10, 0),
    ]);
    let sid = login(&a, 1);
    let names = |q: &str| -> Vec<String> {
        let r = route(
            &a.state,
            req("GET", &format!("/api/v2/torrents/info?{q}"), "", &sid, 1),
        );
        assert_eq!(r.status, 200, "{q}: {}", text(&r));
        json(&r)
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("sort=name"), ["alpha", "Bravo", "Charlie"]);
    assert_eq!(
        names("sort=name&reverse=True"),
        ["Charlie", "Bravo", "alpha"]
    );
    assert_eq!(names("sort=name&limit=1&offset=1"), ["Bravo"]);
    assert_eq!(names("filter=seeding"), ["Bravo"]);
    assert_eq!(names("filter=stopped&sort=name"), ["Charlie"]);
    assert_eq!(names("filter=paused"), ["Charlie"]);
    assert_eq!(names("filter=downloading"), ["alpha"]);
    assert_eq!(names("category=tv&sort=name"), ["Bravo", "Charlie"]);
    assert_eq!(names("tag=y"), ["Charlie"]);
    assert_eq!(names("tag="), ["alpha"]);
    let h = InfoHash([2; 20]).to_hex();
    assert_eq!(names(&format!("hashes={h}")), ["alpha"]);
    let r = route(
        &a.state,
        req(
            "GET",
            "/api/v2/torrents/info?hashes=&sort=name",
            "",
            &sid,
            1,
        ),
    );
    assert_eq!(json(&r), Value::Array(Vec::new()));
    let r = route(
        &a.state,
        req("GET", "/api/v2/torrents/info?sort=name", "", &sid, 1),
    );
    let first = &json(&r)[0];
    assert_eq!(first["state"], "stalledDL");
    assert_eq!(first["eta"], 8_640_000);
    assert_eq!(first["ratio_limit"], -2.0);
    assert_eq!(first["tags"], "");
    let r = route(
        &a.state,
        req(
            "GET",
            "/api/v2/torrents/info?sort=name&limit=2",
            "",
            &sid,
            1,
        ),
    );
    assert_eq!(json(&r)[1]["state"], "uploading");
    assert_eq!(json(&r)[1]["tags"], "x");
}

#[test]
fn maindata_sends_everything_once_then_only_changes() {
    let a = api(vec![view(record(1, "a", "", &[]), "seeding", 10, 0)]);
    let sid = login(&a, 1);
    let r = route(
        &a.state,
        req("GET", "/api/v2/sync/maindata?rid=0", "", &sid, 1),
    );
    let full = json(&r);
    assert_eq!(full["full_update"], true);
    let hash = InfoHash([1; 20]).to_hex();
    assert!(full["torrents"][&hash]["name"] == "a", "{full}");
    assert!(full["torrents"][&hash].get("hash").is_none());
    assert!(full["server_state"]["free_space_on_disk"].is_u64());
    let rid = full["rid"].as_u64().unwrap();
    let r = route(
        &a.state,
        req(
            "POST",
            "/api/v2/torrents/addTags",
            &format!("hashes={hash}&tags=new"),
            &sid,
            1,
        ),
    );
    assert_eq!(r.status, 200);
    let r = route(
        &a.state,
        req(
            "GET",
            &format!("/api/v2/sync/maindata?rid={rid}"),
            "",
            &sid,
            1,
        ),
    );
    let delta = json(&r);
    assert!(delta.get("full_update").is_none(), "{delta}");
    assert_eq!(delta["torrents"][&hash], serde_json::json!({"tags": "new"}));
    assert_eq!(delta["tags"], serde_json::json!(["new"]));
    let tags: BTreeSet<String> = a.views.lock().unwrap()[0].record.tags.clone();
    assert!(tags.contains("new"));
}

#[test]
fn a_malformed_form_is_a_400_with_the_reason() {
    let a = api(Vec::new());
    let sid = login(&a, 1);
    let mut r = req("POST", "/api/v2/torrents/add", "--x\r\nbroken", &sid, 1);
    r.content_type = Some("multipart/form-data; boundary=x".into());
    let r = route(&a.state, r);
    assert_eq!(r.status, 400, "{}", text(&r));
    let r = route(
        &a.state,
        req("POST", "/api/v2/torrents/add", "savepath=/x", &sid, 1),
    );
    assert_eq!(r.status, 400);
    assert!(text(&r).contains("torrents"), "{}", text(&r));
    let r = route(
        &a.state,
        req(
            "POST",
            "/api/v2/torrents/add",
            "urls=magnet:?xt=urn:btih:abc&savepath=../etc",
            &sid,
            1,
        ),
    );
    assert_eq!(r.status, 400, "{}", text(&r));
    let mut bad = req("POST", "/api/v2/torrents/add", "", &sid, 1);
    bad.content_type = Some("multipart/form-data; boundary=b".into());
    bad.body = Bytes::from_static(
        b"--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.torrent\"\r\n\r\nnot bencode\r\n--b--\r\n",
    );
    let r = route(&a.state, bad);
    assert_eq!(r.status, 415, "{}", text(&r));
    assert!(text(&r).contains("x.torrent"), "{}", text(&r));
}
