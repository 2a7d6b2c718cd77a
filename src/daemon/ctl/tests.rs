//! The control socket end to end: a real socket in a temporary directory,
//! the test in the core's place answering the commands it receives.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver};
use ringseed::InfoHash;
use serde_json::{json, Value};

use super::*;
use crate::daemon::command::{Category, Command, CommandError, Selector, TorrentView};
use crate::daemon::record::{
    FileStamp, Limit, RateLimits, ShareLimits, Source, TorrentRecord, Wanted,
};

/// The longest a test waits for anything.
const WAIT: Duration = Duration::from_secs(10);

const H1: &str = "0123456789abcdef0123456789abcdef01234567";
const H2: &str = "89abcdef0123456789abcdef0123456789abcdef";

fn h(s: &str) -> InfoHash {
    InfoHash::from_hex(s).unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    rx: Receiver<Command>,
    server: Option<CtlServer>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SOCKET_FILE);
    let (tx, rx) = bounded(crate::daemon::command::COMMAND_QUEUE_MAX);
    let server = CtlServer::start(&path, tx).unwrap();
    Fixture {
        _dir: dir,
        path,
        rx,
        server: Some(server),
    }
}

/// Sends `line` from a client thread; `core` gets the command it became
/// and answers it; gives back the client's result.
fn roundtrip(f: &Fixture, line: &str, core: impl FnOnce(Command)) -> Result<Value, String> {
    let client = send(&f.path, line);
    let cmd =
        f.rx.recv_timeout(WAIT)
            .expect("the request reaches the core");
    core(cmd);
    client.join().unwrap()
}

/// A request that must not reach the core.
fn refused(f: &Fixture, line: &str) -> String {
    let answer = send(&f.path, line).join().unwrap();
    assert!(f.rx.is_empty(), "{line} reached the core");
    answer.expect_err(line)
}

fn send(path: &Path, line: &str) -> thread::JoinHandle<Result<Value, String>> {
    let path = path.to_path_buf();
    let line = format!("{line}\n");
    thread::spawn(move || {
        CtlClient::connect(&path)
            .map_err(|e| e.to_string())?
            .call_raw(line.as_bytes())
            .map_err(|e| e.to_string())
    })
}

fn count_reply(n: usize) -> impl FnOnce(Command) {
    move |cmd| match cmd {
        Command::Stop { reply, .. }
        | Command::Start { reply, .. }
        | Command::ForceStart { reply, .. }
        | Command::Recheck { reply, .. }
        | Command::Reannounce { reply, .. }
        | Command::SetCategory { reply, .. }
        | Command::AddTags { reply, .. }
        | Command::RemoveTags { reply, .. }
        | Command::SetShareLimits { reply, .. }
        | Command::SetRateLimits { reply, .. }
        | Command::Move { reply, .. }
        | Command::Remove { reply, .. }
        | Command::RemoveCategories { reply, .. } => reply.send(Ok(n)).unwrap(),
        other => panic!("not a counting command: {other:?}"),
    }
}

#[test]
fn add_maps_every_field() {
    let f = fixture();
    let line = json!({
        "cmd": "add", "torrent_hex": "64303a65", "save_path": "/data/x",
        "category": "tv", "tags": ["a", "b"], "stopped": true, "skip_check": true,
        "upload_limit": 1000, "download_limit": -1, "ratio_limit": 2.5,
        "seeding_time_limit_min": 90
    })
    .to_string();
    let answer = roundtrip(&f, &line, |cmd| {
        let Command::Add { add, reply } = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(add.source, Source::Torrent(b"d0:e".to_vec()));
        assert_eq!(add.save_path, Some(PathBuf::from("/data/x")));
        assert_eq!(add.category, "tv");
        assert_eq!(
            add.tags,
            ["a", "b"]
                .iter()
                .map(|s| s.to_string())
                .collect::<BTreeSet<_>>()
        );
        assert!(add.stopped && add.skip_check);
        assert_eq!(
            add.rate_limits,
            RateLimits {
                upload: Some(1000),
                download: Some(0)
            }
        );
        assert_eq!(
            add.share_limits,
            ShareLimits {
                ratio: Limit::Value(2.5),
                seeding_time_s: Limit::Value(5400)
            }
        );
        reply.send(Ok(h(H1))).unwrap();
    });
    assert_eq!(answer.unwrap(), json!({ "hash": H1 }));

    // A magnet, every option absent: the defaults.
    let uri = format!("magnet:?xt=urn:btih:{H2}");
    let line = json!({ "cmd": "add", "magnet": uri }).to_string();
    let answer = roundtrip(&f, &line, |cmd| {
        let Command::Add { add, reply } = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(add.source, Source::Magnet(uri.clone()));
        assert_eq!(add.save_path, None);
        assert_eq!(add.category, "");
        assert!(add.tags.is_empty() && !add.stopped && !add.skip_check);
        assert_eq!(add.rate_limits, RateLimits::default());
        assert_eq!(add.share_limits, ShareLimits::default());
        reply
            .send(Err(CommandError::Duplicate {
                name: "x".into(),
                hash: h(H2),
            }))
            .unwrap();
    });
    assert_eq!(
        answer.unwrap_err(),
        format!("torrent x ({H2}) is already added")
    );

    let both = json!({ "cmd": "add", "magnet": "magnet:?", "torrent_hex": "00" });
    assert!(refused(&f, &both.to_string()).contains("not both"));
    assert!(refused(&f, r#"{"cmd":"add"}"#).contains("torrent_hex or magnet"));
    assert!(refused(&f, r#"{"cmd":"add","torrent_hex":"0g"}"#).contains("not hex"));
    assert!(refused(&f, r#"{"cmd":"add","magnet":"http://x"}"#).contains("not a magnet"));
    assert!(
        refused(&f, r#"{"cmd":"add","magnet":"magnet:?","upload_limit":-5}"#)
            .contains("upload_limit -5")
    );
    assert!(
        refused(&f, r#"{"cmd":"add","magnet":"magnet:?","ratio_limit":-3}"#)
            .contains("ratio_limit -3")
    );
    assert!(
        refused(&f, r#"{"cmd":"add","magnet":"magnet:?","stoped":true}"#).contains("bad request")
    );
}

#[test]
fn selector_commands_map_to_their_commands() {
    let f = fixture();
    let both = Selector::Hashes(vec![h(H1), h(H2)]);
    let list = format!(r#"["{H1}","{H2}"]"#);

    let a = roundtrip(&f, r#"{"cmd":"stop","hashes":"all"}"#, |c| {
        assert!(
            matches!(
                &c,
                Command::Stop {
                    which: Selector::All,
                    ..
                }
            ),
            "{c:?}"
        );
        count_reply(3)(c)
    });
    assert_eq!(a.unwrap(), json!(3));

    let line = format!(r#"{{"cmd":"start","hashes":{list}}}"#);
    let a = roundtrip(&f, &line, |c| {
        assert!(
            matches!(&c, Command::Start { which, .. } if *which == both),
            "{c:?}"
        );
        count_reply(2)(c)
    });
    assert_eq!(a.unwrap(), json!(2));

    for (line, want_on) in [
        (
            format!(r#"{{"cmd":"force_start","hashes":["{H1}"]}}"#),
            true,
        ),
        (
            format!(r#"{{"cmd":"force_start","hashes":["{H1}"],"on":false}}"#),
            false,
        ),
    ] {
        roundtrip(&f, &line, |c| {
            assert!(
                matches!(&c, Command::ForceStart { which: Selector::Hashes(v), on, .. }
                    if *v == vec![h(H1)] && *on == want_on),
                "{c:?}"
            );
            count_reply(1)(c)
        })
        .unwrap();
    }

    roundtrip(&f, r#"{"cmd":"recheck","hashes":"all"}"#, |c| {
        assert!(
            matches!(
                &c,
                Command::Recheck {
                    which: Selector::All,
                    ..
                }
            ),
            "{c:?}"
        );
        count_reply(0)(c)
    })
    .unwrap();
    roundtrip(&f, r#"{"cmd":"reannounce","hashes":"all"}"#, |c| {
        assert!(
            matches!(
                &c,
                Command::Reannounce {
                    which: Selector::All,
                    ..
                }
            ),
            "{c:?}"
        );
        count_reply(0)(c)
    })
    .unwrap();

    let line = format!(r#"{{"cmd":"set_category","hashes":["{H2}"],"category":"movies"}}"#);
    roundtrip(&f, &line, |c| {
        assert!(
            matches!(&c, Command::SetCategory { category, .. } if category == "movies"),
            "{c:?}"
        );
        count_reply(1)(c)
    })
    .unwrap();

    let tags: BTreeSet<String> = ["x".to_string(), "y".to_string()].into();
    let line = r#"{"cmd":"add_tags","hashes":"all","tags":["y","x","y"]}"#;
    roundtrip(&f, line, |c| {
        assert!(
            matches!(&c, Command::AddTags { tags: t, .. } if *t == tags),
            "{c:?}"
        );
        count_reply(1)(c)
    })
    .unwrap();
    let line = r#"{"cmd":"remove_tags","hashes":"all","tags":["x","y"]}"#;
    roundtrip(&f, line, |c| {
        assert!(
            matches!(&c, Command::RemoveTags { tags: t, .. } if *t == tags),
            "{c:?}"
        );
        count_reply(1)(c)
    })
    .unwrap();

    for (extra, want) in [
        (
            r#","ratio_limit":1.5,"seeding_time_limit_min":10"#,
            ShareLimits {
                ratio: Limit::Value(1.5),
                seeding_time_s: Limit::Value(600),
            },
        ),
        (
            r#","ratio_limit":-1,"seeding_time_limit_min":-2"#,
            ShareLimits {
                ratio: Limit::Unlimited,
                seeding_time_s: Limit::Global,
            },
        ),
        ("", ShareLimits::default()),
    ] {
        let line = format!(r#"{{"cmd":"set_share_limits","hashes":"all"{extra}}}"#);
        roundtrip(&f, &line, |c| {
            assert!(
                matches!(&c, Command::SetShareLimits { limits, .. } if *limits == want),
                "{c:?}"
            );
            count_reply(1)(c)
        })
        .unwrap();
    }

    let line =
        r#"{"cmd":"set_rate_limits","hashes":"all","upload_limit":-1,"download_limit":4096}"#;
    roundtrip(&f, line, |c| {
        let want = RateLimits {
            upload: Some(0),
            download: Some(4096),
        };
        assert!(
            matches!(&c, Command::SetRateLimits { limits, .. } if *limits == want),
            "{c:?}"
        );
        count_reply(1)(c)
    })
    .unwrap();
    roundtrip(&f, r#"{"cmd":"set_rate_limits","hashes":"all"}"#, |c| {
        assert!(
            matches!(&c, Command::SetRateLimits { limits, .. } if *limits == RateLimits::default()),
            "{c:?}"
        );
        count_reply(1)(c)
    })
    .unwrap();

    let line = format!(r#"{{"cmd":"move","hashes":["{H1}"],"dir":"/new/place"}}"#);
    roundtrip(&f, &line, |c| {
        assert!(
            matches!(&c, Command::Move { dir, .. } if dir == Path::new("/new/place")),
            "{c:?}"
        );
        count_reply(1)(c)
    })
    .unwrap();

    for (extra, want) in [("", false), (r#","delete_files":true"#, true)] {
        let line = format!(r#"{{"cmd":"remove","hashes":["{H1}"]{extra}}}"#);
        roundtrip(&f, &line, |c| {
            assert!(
                matches!(&c, Command::Remove { delete_files, .. } if *delete_files == want),
                "{c:?}"
            );
            count_reply(1)(c)
        })
        .unwrap();
    }

    // The core's refusal comes back as its text.
    let line = format!(r#"{{"cmd":"stop","hashes":["{H1}"]}}"#);
    let a = roundtrip(&f, &line, |c| {
        let Command::Stop { reply, .. } = c else {
            panic!("{c:?}")
        };
        reply
            .send(Err(CommandError::UnknownTorrent(h(H1))))
            .unwrap();
    });
    assert_eq!(a.unwrap_err(), format!("no torrent with info-hash {H1}"));
}

#[test]
fn bad_requests_are_refused_and_named() {
    let f = fixture();
    let e = refused(&f, &format!(r#"{{"cmd":"stop","hashes":["{H1}","abc"]}}"#));
    assert!(e.contains("bad info-hash \"abc\""), "{e}");
    let e = refused(
        &f,
        r#"{"cmd":"start","hashes":["0123456789abcdef0123456789abcdef0123456z"]}"#,
    );
    assert!(e.contains("0123456z"), "{e}");
    let e = refused(&f, r#"{"cmd":"stop","hashes":"some"}"#);
    assert!(e.contains("\"some\""), "{e}");
    let e = refused(&f, r#"{"cmd":"stop","hashes":[]}"#);
    assert!(e.contains("no torrent named"), "{e}");
    let e = refused(&f, r#"{"cmd":"explode"}"#);
    assert!(e.starts_with("bad request") && e.contains("explode"), "{e}");
    // A misspelt option is refused, not ignored.
    let e = refused(&f, r#"{"cmd":"remove","hashes":"all","delete_file":true}"#);
    assert!(
        e.starts_with("bad request") && e.contains("delete_file"),
        "{e}"
    );
    let e = refused(&f, "not json");
    assert!(e.starts_with("bad request"), "{e}");
    let e = refused(&f, r#"{"cmd":"set_category_def","name":""}"#);
    assert!(e.contains("name"), "{e}");
}

#[test]
fn list_and_categories_answer_every_field() {
    let f = fixture();
    let record = TorrentRecord {
        info_hash: h(H1),
        name: "ubuntu.iso".into(),
        source: Source::Torrent(b"d4:infode".to_vec()),
        save_path: "/data".into(),
        category: "linux".into(),
        tags: ["iso".to_string()].into(),
        wanted: Wanted::Started,
        force_start: true,
        share_limits: ShareLimits {
            ratio: Limit::Unlimited,
            seeding_time_s: Limit::Value(3600),
        },
        rate_limits: RateLimits {
            upload: Some(0),
            download: None,
        },
        added_at: 1000,
        completed_at: Some(2000),
        uploaded: 300,
        downloaded: 100,
        seeding_time_s: 50,
        active_time_s: 60,
        pieces: Some(vec![0xff, 0x80]),
        file_stamps: vec![FileStamp {
            size: Some(9),
            mtime_ns: 7,
        }],
        moving_to: None,
    };
    let view = TorrentView {
        record,
        state: "seeding".into(),
        progress: 1.0,
        pieces_have: 2,
        piece_count: 2,
        total_length: 400,
        bytes_left: 0,
        rate_up: 12,
        rate_down: 0,
        peers: 3,
        seeds: 0,
        message: None,
        metainfo: None,
        tracker_error: None,
        running: true,
        queue_position: 0,
        uploaded_session: 0,
        downloaded_session: 0,
        last_activity: 0,
    };
    let v = view.clone();
    let a = roundtrip(&f, r#"{"cmd":"list"}"#, move |c| {
        let Command::List { reply } = c else {
            panic!("{c:?}")
        };
        reply.send(Ok(vec![v])).unwrap();
    })
    .unwrap();
    let infos: Vec<protocol::TorrentInfo> = serde_json::from_value(a.clone()).unwrap();
    assert_eq!(infos.len(), 1);
    let t = &infos[0];
    assert_eq!(t.hash, H1);
    assert_eq!(t.name, "ubuntu.iso");
    assert_eq!((t.state.as_str(), t.progress), ("seeding", 1.0));
    assert_eq!(
        (t.total_length, t.bytes_left, t.rate_up, t.peers),
        (400, 0, 12, 3)
    );
    assert_eq!((t.source.as_str(), t.magnet.as_deref()), ("torrent", None));
    assert_eq!(t.category, "linux");
    assert_eq!(t.tags, vec!["iso".to_string()]);
    assert_eq!((t.wanted.as_str(), t.force_start), ("started", true));
    assert_eq!(t.ratio, 3.0);
    assert_eq!(t.ratio_limit, Some(-1.0));
    assert_eq!(t.seeding_time_limit_s, Some(3600));
    assert_eq!((t.upload_limit, t.download_limit), (Some(-1), None));
    assert_eq!((t.added_at, t.completed_at), (1000, Some(2000)));
    assert_eq!((t.uploaded, t.downloaded), (300, 100));
    assert_eq!((t.seeding_time_s, t.active_time_s), (50, 60));
    assert_eq!(t.pieces.as_deref(), Some("ff80"));
    assert_eq!(t.file_stamps.len(), 1);
    assert_eq!(
        (t.file_stamps[0].size, t.file_stamps[0].mtime_ns),
        (Some(9), 7)
    );
    // The .torrent's bytes stay in the daemon.
    assert!(!a.to_string().contains(&protocol::hex_encode(b"d4:infode")));

    let a = roundtrip(&f, r#"{"cmd":"categories"}"#, |c| {
        let Command::Categories { reply } = c else {
            panic!("{c:?}")
        };
        let cats = vec![
            Category {
                name: "tv".into(),
                save_path: Some("/tv".into()),
            },
            Category {
                name: "misc".into(),
                save_path: None,
            },
        ];
        reply.send(Ok(cats)).unwrap();
    });
    assert_eq!(
        a.unwrap(),
        json!([{"name": "tv", "save_path": "/tv"}, {"name": "misc", "save_path": null}])
    );

    let a = roundtrip(
        &f,
        r#"{"cmd":"set_category_def","name":"tv","save_path":"/srv/tv"}"#,
        |c| {
            let Command::SetCategoryDef { category, reply } = c else {
                panic!("{c:?}")
            };
            assert_eq!(
                category,
                Category {
                    name: "tv".into(),
                    save_path: Some("/srv/tv".into())
                }
            );
            reply.send(Ok(())).unwrap();
        },
    );
    assert_eq!(a.unwrap(), Value::Null);

    let a = roundtrip(
        &f,
        r#"{"cmd":"remove_categories","names":["a","b"]}"#,
        |c| {
            assert!(
                matches!(&c, Command::RemoveCategories { names, .. } if *names == ["a", "b"]),
                "{c:?}"
            );
            count_reply(2)(c)
        },
    );
    assert_eq!(a.unwrap(), json!(2));
}

#[test]
fn a_full_queue_is_busy_and_a_gone_core_is_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SOCKET_FILE);
    let (tx, rx) = bounded(1);
    let (filler, _filler_rx) = bounded(1);
    tx.try_send(Command::List { reply: filler }).unwrap();
    let server = CtlServer::start(&path, tx).unwrap();
    let e = send(&path, r#"{"cmd":"list"}"#)
        .join()
        .unwrap()
        .unwrap_err();
    assert_eq!(e, CommandError::Busy(1).to_string());
    assert_eq!(rx.len(), 1, "the busy request was not queued");
    // The core takes the command and drops it unanswered, then goes.
    drop(rx);
    let e = send(&path, r#"{"cmd":"list"}"#)
        .join()
        .unwrap()
        .unwrap_err();
    assert_eq!(e, CommandError::Stopping.to_string());
    server.stop();
}

#[test]
fn an_oversize_line_is_refused() {
    let f = fixture();
    let mut stream = UnixStream::connect(&f.path).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    // Written from a thread: the server stops reading at the limit.
    let w = thread::spawn(move || {
        let chunk = vec![b'x'; 1024 * 1024];
        let mut sent = 0;
        while sent <= CTL_REQUEST_BYTES_MAX {
            if writer.write_all(&chunk).is_err() {
                return;
            }
            sent += chunk.len();
        }
        let _ = writer.write_all(b"\n");
    });
    let mut line = String::new();
    BufReader::new(&mut stream).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    let e = v["error"].as_str().unwrap();
    assert!(e.contains("longer than"), "{e}");
    w.join().unwrap();
    assert!(f.rx.is_empty());
}

#[test]
fn too_many_connections_are_refused() {
    let f = fixture();
    let open: Vec<UnixStream> = (0..CTL_CONNECTIONS_MAX)
        .map(|_| UnixStream::connect(&f.path).unwrap())
        .collect();
    let mut extra = UnixStream::connect(&f.path).unwrap();
    extra.set_read_timeout(Some(WAIT)).unwrap();
    let mut line = String::new();
    BufReader::new(&mut extra).read_line(&mut line).unwrap();
    assert!(line.contains("too many control connections"), "{line}");
    // Once one closes, a new client is served again.
    drop(open);
    let deadline = Instant::now() + WAIT;
    loop {
        let e = send(&f.path, r#"{"cmd":"stop","hashes":[]}"#)
            .join()
            .unwrap()
            .unwrap_err();
        if e.contains("no torrent named") {
            break;
        }
        assert!(e.contains("too many"), "{e}");
        assert!(Instant::now() < deadline, "never served again");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SOCKET_FILE);
    // A killed daemon's socket: the file stays, nothing listens.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let (tx, _rx) = bounded(4);
    let server = CtlServer::start(&path, tx.clone()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // A second daemon on the same state dir.
    let e = CtlServer::start(&path, tx.clone()).unwrap_err();
    assert!(matches!(e, CtlError::InUse(_)), "{e:?}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    // The first one still serves.
    let e = send(&path, r#"{"cmd":"stop","hashes":[]}"#).join().unwrap();
    assert!(e.unwrap_err().contains("no torrent named"));

    server.stop();
    assert!(!path.exists(), "stop removes the socket file");

    std::fs::write(&path, b"not a socket").unwrap();
    let e = CtlServer::start(&path, tx).unwrap_err();
    assert!(matches!(e, CtlError::NotASocket(_)), "{e:?}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
}

#[test]
fn stop_ends_a_request_waiting_for_the_core() {
    let mut f = fixture();
    let client = send(&f.path, r#"{"cmd":"list"}"#);
    let cmd = f.rx.recv_timeout(WAIT).unwrap();
    // An idle connection too.
    let _idle = UnixStream::connect(&f.path).unwrap();
    let started = Instant::now();
    f.server.take().unwrap().stop();
    assert!(started.elapsed() < WAIT);
    let e = client.join().unwrap().unwrap_err();
    assert_eq!(e, CommandError::Stopping.to_string());
    drop(cmd);
    assert!(!f.path.exists());
}

#[test]
fn default_state_dir_order() {
    let os = |s: &str| Some(std::ffi::OsString::from(s));
    assert_eq!(
        state_dir_from(os("/var/lib/ringseed:/other"), os("/x"), os("/home/u")),
        Some(PathBuf::from("/var/lib/ringseed"))
    );
    assert_eq!(
        state_dir_from(None, os("/xdg"), os("/home/u")),
        Some(PathBuf::from("/xdg/ringseed"))
    );
    assert_eq!(
        state_dir_from(os(""), os("rel"), os("/home/u")),
        Some(PathBuf::from("/home/u/.local/state/ringseed"))
    );
    assert_eq!(state_dir_from(None, None, None), None);
}
