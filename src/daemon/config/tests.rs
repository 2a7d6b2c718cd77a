//! Tests of the configuration file: the documented default, every key
//! known and checked, errors that name key and line, the mapping to the
//! engine's settings, and reload plans.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use ringseed::runtime::session::{Settings, SettingsRaw};

use super::parse::{CATEGORIES, CATEGORY_KEYS, KEYS};
use super::*;

fn parse(text: &str) -> DaemonConfig {
    DaemonConfig::parse(text).unwrap_or_else(|e| panic!("{e}\n--- in:\n{text}"))
}

fn error(text: &str) -> String {
    match DaemonConfig::parse(text) {
        Ok(c) => panic!("accepted {text:?}: {c:?}"),
        Err(e) => e,
    }
}

/// The default file with every commented-out key and table uncommented
/// (`# key = value`, `# [categories.x]`); prose comments stay.
fn uncommented_default() -> String {
    let mut out = String::new();
    for line in default_toml().lines() {
        let body = line.strip_prefix("# ").unwrap_or("");
        let first = body.split_whitespace().next().unwrap_or("");
        let is_key = body.contains(" = ")
            && !first.is_empty()
            && first.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        let is_table = first.starts_with('[') && first.ends_with(']') && body == first;
        if is_key || is_table {
            out.push_str(body);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// `section.key` of every key line (`key = ...`) in a file, by the table
/// header above it.
fn documented_keys(text: &str) -> BTreeSet<String> {
    let mut section = String::new();
    let mut keys = BTreeSet::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = h.to_owned();
        } else if let Some((k, _)) = line.split_once(" = ") {
            if !line.starts_with('#') {
                keys.insert(format!("{section}.{k}"));
            }
        }
    }
    keys
}

#[test]
fn the_default_file_is_the_default_config() {
    assert_eq!(parse(default_toml()), DaemonConfig::default());
    assert_eq!(parse(""), DaemonConfig::default());
    // Every section present, empty, is the default too.
    let empty: String = KEYS.iter().map(|(s, _)| format!("[{s}]\n")).collect();
    assert_eq!(parse(&empty), DaemonConfig::default());
}

#[test]
fn every_documented_key_is_known_and_every_known_key_documented() {
    let all = uncommented_default();
    assert_ne!(all, default_toml(), "nothing was commented out");
    let c = parse(&all);
    // The commented-out keys took their example values.
    assert!(c.paths.state_dir.is_some());
    assert!(c.paths.download_dir.is_some());
    assert!(c.paths.watch_dir.is_some());
    assert!(c.network.interface.is_some());
    assert!(c.network.bind_address.is_some());
    assert!(c.engine.shards.is_some());
    assert!(c.engine.optimistic_slots.is_some());
    assert!(c.share.ratio_limit.is_some());
    assert!(c.share.seeding_time_limit_s.is_some());
    assert_eq!(c.categories.len(), 1);

    let documented = documented_keys(&all);
    let mut known: BTreeSet<String> = KEYS
        .iter()
        .flat_map(|(s, keys)| keys.iter().map(move |k| format!("{s}.{k}")))
        .collect();
    for k in CATEGORY_KEYS {
        known.insert(format!("{CATEGORIES}.tv.{k}"));
    }
    assert_eq!(documented, known);
}

#[test]
fn every_key_is_read_and_a_wrong_type_names_it_and_its_line() {
    for (section, keys) in KEYS {
        for key in *keys {
            // An array of arrays is no key's type (nor listen's element).
            let text = format!("# a comment\n[{section}]\n{key} = [[1]]\n");
            let e = error(&text);
            assert!(
                e.starts_with(&format!("{section}.{key} at line 3: expected ")),
                "{e}"
            );
            assert!(e.contains("found an array"), "{e}");
        }
    }
    let e = error("[categories.tv]\nsave_path = 7\n");
    assert_eq!(
        e,
        "categories.tv.save_path at line 2: expected an absolute path (a string), found an integer"
    );
}

#[test]
fn unknown_keys_and_sections_name_the_key_and_line() {
    let e = error("[limits]\nupload_rate = 5\n\n# typo below\nupload_ratee = 1\n");
    assert_eq!(e, "unknown key \"upload_ratee\" in [limits] at line 5");
    // The first unknown key in the file is the one named.
    let e = error("[queue]\nzz = 1\naa = 2\n");
    assert_eq!(e, "unknown key \"zz\" in [queue] at line 2");
    let e = error("limits.upload_ratee = 1\n");
    assert_eq!(e, "unknown key \"upload_ratee\" in [limits] at line 1");
    let e = error("\n[limit]\nupload_rate = 1\n");
    assert_eq!(e, "unknown section [limit] at line 2");
    let e = error("upload_rate = 1\n");
    assert!(
        e.starts_with("unknown key \"upload_rate\" at the top level at line 1"),
        "{e}"
    );
    let e = error("[categories.tv]\nsave_path = \"/a\"\nsavepath = \"/b\"\n");
    assert_eq!(e, "unknown key \"savepath\" in [categories.tv] at line 3");
    let e = error("limits = 5\n");
    assert_eq!(
        e,
        "[limits] at line 1: expected a table of keys, found an integer"
    );
}

#[test]
fn syntax_errors_say_the_line() {
    let e = error("[paths]\nwatch_interval_s = 2\nwatch_dir = \"/x\n");
    assert!(e.starts_with("TOML syntax error at line 3"), "{e}");
    let e = error("[limits]\nupload_rate = 1\nupload_rate = 2\n");
    assert!(e.starts_with("TOML syntax error at line 3"), "{e}");
}

#[test]
fn values_are_read_in_their_units() {
    let c = parse(
        r#"
[paths]
state_dir = "/var/lib/ringseed"
watch_interval_s = 3600
[network]
listen = ["0.0.0.0:7000", "[::]:7000"]
interface = "wg0"
bind_address = "::1"
[engine]
shards = 256
peers_per_torrent = 4000
upload_slots = "rate-based"
seed_choking = "anti-leech"
optimistic_slots = 0
round_robin_pieces = 100000
[limits]
upload_rate = "1.5M"
download_rate = 1_000
torrent_upload_rate = "500K/s"
torrent_download_rate = 0x10
global_upload_slots = 1000000
[queue]
enabled = false
max_active_downloads = -1
max_active_uploads = 0
max_active_torrents = 1000000
ignore_slow = false
slow_download_rate = "4K"
slow_upload_rate = 1
slow_after_s = 86400
[share]
ratio_limit = 2
seeding_time_limit = 1440
action = "remove-with-data"
[categories.tv]
save_path = "/srv/tv"
[categories."linux isos"]
[log]
status_interval_s = 0
"#,
    );
    assert_eq!(c.paths.state_dir, Some("/var/lib/ringseed".into()));
    assert_eq!(c.paths.watch_interval_s, 3600);
    let want: Vec<SocketAddr> = vec![
        "0.0.0.0:7000".parse().unwrap(),
        "[::]:7000".parse().unwrap(),
    ];
    assert_eq!(c.network.listen, want);
    assert_eq!(c.network.interface.as_deref(), Some("wg0"));
    assert_eq!(c.network.bind_address, Some("::1".parse().unwrap()));
    assert_eq!(c.engine.shards, Some(256));
    assert_eq!(c.engine.peers_per_torrent, 4000);
    assert_eq!(c.engine.upload_slots, SlotLimit::RateBased);
    assert_eq!(c.engine.seed_choking, SeedChoking::AntiLeech);
    assert_eq!(c.engine.optimistic_slots, Some(0));
    assert_eq!(c.engine.round_robin_pieces, 100_000);
    assert_eq!(
        c.limits,
        RateConfig {
            upload_rate: 1_572_864,
            download_rate: 1000,
            torrent_upload_rate: 512_000,
            torrent_download_rate: 16,
            global_upload_slots: 1_000_000,
        }
    );
    assert_eq!(
        c.queue,
        QueueConfig {
            enabled: false,
            max_active_downloads: None,
            max_active_uploads: Some(0),
            max_active_torrents: Some(1_000_000),
            ignore_slow: false,
            slow_download_rate: 4096,
            slow_upload_rate: 1,
            slow_after_s: 86_400,
        }
    );
    assert_eq!(c.share.ratio_limit, Some(2.0));
    assert_eq!(c.share.seeding_time_limit_s, Some(86_400));
    assert_eq!(c.share.action, ShareAction::RemoveWithData);
    assert_eq!(c.categories["tv"].save_path, Some("/srv/tv".into()));
    assert_eq!(c.categories["linux isos"].save_path, None);
    assert_eq!(c.log.status_interval_s, 0);

    // -1 is "none" where the file allows it; inline tables are tables.
    let c = parse("share = { ratio_limit = -1, seeding_time_limit = -1 }\n");
    assert_eq!(c.share, ShareConfig::default());
    let c = parse("[share]\nratio_limit = 0.25\n[engine]\nupload_slots = \"unlimited\"\n");
    assert_eq!(c.share.ratio_limit, Some(0.25));
    assert_eq!(c.engine.upload_slots, SlotLimit::Unlimited);
}

#[test]
fn out_of_range_values_name_key_line_and_range() {
    let cases: &[(&str, &str)] = &[
        ("[paths]\nwatch_interval_s = 0", "paths.watch_interval_s at line 2: 0 is out of range: expected an integer from 1 to 3600"),
        ("[paths]\nwatch_interval_s = 3601", "3601 is out of range"),
        ("[paths]\nstate_dir = \"var/lib\"", "paths.state_dir at line 2: \"var/lib\" is not an absolute path"),
        ("[paths]\ndownload_dir = \"\"", "paths.download_dir at line 2: \"\" is not an absolute path"),
        ("[network]\nlisten = []", "network.listen at line 2: 0 addresses: expected 1 to 16"),
        ("[network]\nlisten = [\"0.0.0.0\"]", "network.listen at line 2: \"0.0.0.0\" is not an IP:PORT address"),
        ("[network]\ninterface = \"a-very-long-interface\"", "network.interface at line 2: \"a-very-long-interface\" is not an interface name"),
        ("[network]\nbind_address = \"10.0.0\"", "network.bind_address at line 2: \"10.0.0\" is not an IP address"),
        ("[engine]\nshards = 0", "engine.shards at line 2: 0 is out of range: expected an integer from 1 to 256"),
        ("[engine]\nshards = 257", "257 is out of range"),
        ("[engine]\npeers_per_torrent = 10001", "engine.peers_per_torrent at line 2: 10001 is out of range"),
        ("[engine]\nupload_slots = 10001", "engine.upload_slots at line 2: 10001 is out of range"),
        ("[engine]\nupload_slots = -1", "engine.upload_slots at line 2: -1 is out of range"),
        ("[engine]\nupload_slots = \"lots\"", "engine.upload_slots at line 2: \"lots\": expected a count"),
        ("[engine]\nseed_choking = \"fair\"", "engine.seed_choking at line 2: \"fair\": expected one of \"fastest\", \"round-robin\", \"anti-leech\""),
        ("[engine]\noptimistic_slots = 101", "engine.optimistic_slots at line 2: 101 is out of range"),
        ("[engine]\nround_robin_pieces = 0", "engine.round_robin_pieces at line 2: 0 is out of range"),
        ("[limits]\nupload_rate = \"10X\"", "limits.upload_rate at line 2: rate \"10X\" has an unknown unit"),
        ("[limits]\ndownload_rate = -1", "limits.download_rate at line 2: -1 is out of range"),
        ("[limits]\ntorrent_upload_rate = 99999999999999999999999999999999999999999", "limits.torrent_upload_rate at line 2: 99999999999999999999999999999999999999999 is out of range"),
        ("[limits]\ntorrent_upload_rate = 9223372036854775807", "limits.torrent_upload_rate at line 2: 9223372036854775807 is out of range"),
        ("[limits]\ntorrent_download_rate = \"2T\"", "limits.torrent_download_rate at line 2: rate"),
        ("[limits]\nglobal_upload_slots = 1000001", "limits.global_upload_slots at line 2: 1000001 is out of range"),
        ("[queue]\nmax_active_downloads = -2", "queue.max_active_downloads at line 2: -2 is out of range: expected -1 (no limit) or an integer from 0 to 1000000"),
        ("[queue]\nmax_active_torrents = 1000001", "1000001 is out of range"),
        ("[queue]\nenabled = 1", "queue.enabled at line 2: expected true or false, found an integer"),
        ("[queue]\nslow_after_s = 0", "queue.slow_after_s at line 2: 0 is out of range"),
        ("[share]\nratio_limit = -0.5", "share.ratio_limit at line 2: -0.5 is out of range"),
        ("[share]\nratio_limit = 9999", "share.ratio_limit at line 2: 9999 is out of range"),
        ("[share]\nratio_limit = nan", "share.ratio_limit at line 2: nan is out of range"),
        ("[share]\nratio_limit = inf", "share.ratio_limit at line 2: inf is out of range"),
        ("[share]\nseeding_time_limit = -2", "share.seeding_time_limit at line 2: -2 is out of range"),
        ("[share]\nseeding_time_limit = 525601", "525601 is out of range"),
        ("[share]\naction = \"delete\"", "share.action at line 2: \"delete\": expected one of"),
        ("[categories.\"a/b\"]", "category name \"a/b\" at line 1 is not accepted"),
        ("[categories.\"\"]", "category name \"\" at line 1 is not accepted"),
        ("[categories]\ntv = \"/srv\"", "categories.tv at line 2: expected a table"),
        ("[categories.tv]\nsave_path = \"tv\"", "categories.tv.save_path at line 2: \"tv\" is not an absolute path"),
        ("[log]\nstatus_interval_s = 86401", "log.status_interval_s at line 2: 86401 is out of range"),
        ("[log]\nstatus_interval_s = 1.5", "log.status_interval_s at line 2: expected an integer from 0 to 86400, found a float"),
    ];
    for (text, want) in cases {
        let e = error(text);
        assert!(
            e.starts_with(want) || e.contains(want),
            "{text:?}: got {e:?}, want {want:?}"
        );
    }
    let long = format!(
        "[categories.{}]\n",
        "x".repeat(crate::daemon::record::NAME_BYTES_MAX + 1)
    );
    assert!(error(&long).contains("1 to 255 bytes"));
    let many: Vec<String> = (0..17)
        .map(|i| format!("\"127.0.0.1:{}\"", 7000 + i))
        .collect();
    let e = error(&format!("[network]\nlisten = [{}]\n", many.join(", ")));
    assert_eq!(
        e,
        "network.listen at line 2: 17 addresses: expected 1 to 16"
    );
    let path = format!("[paths]\nwatch_dir = \"/{}\"\n", "a".repeat(PATH_BYTES_MAX));
    assert!(error(&path).contains("more than the 4096 accepted"));
}

#[test]
fn settings_the_engine_refuses_are_refused() {
    let e = error("[engine]\nupload_slots = 0\noptimistic_slots = 0\n");
    assert!(e.starts_with("the engine settings"), "{e}");
}

#[test]
fn a_file_over_the_limit_is_refused() {
    let mut text = String::from("[log]\nstatus_interval_s = 5\n");
    let at_limit = CONFIG_BYTES_MAX - text.len();
    text.push_str(&"#".repeat(at_limit));
    assert_eq!(parse(&text).log.status_interval_s, 5);
    text.push('#');
    assert!(error(&text).contains("more than the 1048576 accepted"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ringseed.toml");
    std::fs::write(&file, &text).unwrap();
    let e = DaemonConfig::load(&file).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}: the file is", file.display())),
        "{e}"
    );
    std::fs::write(&file, "[limits]\nupload_ratee = 1\n").unwrap();
    let e = DaemonConfig::load(&file).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: unknown key \"upload_ratee\" in [limits] at line 2",
            file.display()
        )
    );
    std::fs::write(&file, "[limits]\nupload_rate = \"1M\"\n").unwrap();
    let c = DaemonConfig::load(&file).unwrap();
    assert_eq!(c.limits.upload_rate, 1 << 20);
    let e = DaemonConfig::load(&dir.path().join("missing.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");
}

#[test]
fn settings_map_as_the_command_line_flags_do() {
    assert_eq!(
        DaemonConfig::default().settings_raw(),
        SettingsRaw::default()
    );
    let c = parse(
        "[engine]\npeers_per_torrent = 50\nupload_slots = 7\nseed_choking = \"round-robin\"\n\
         optimistic_slots = 2\nround_robin_pieces = 3\n\
         [limits]\nupload_rate = 1\ndownload_rate = 2\ntorrent_upload_rate = 3\n\
         torrent_download_rate = 4\nglobal_upload_slots = 5\n",
    );
    let raw = c.settings_raw();
    assert_eq!(raw.engine.peers_per_torrent_max, 50);
    assert_eq!(raw.engine.slots.slots, SlotLimit::Fixed(7));
    assert_eq!(raw.engine.slots.seed_choking, SeedChoking::RoundRobin);
    assert_eq!(raw.engine.slots.optimistic, Some(2));
    assert_eq!(raw.engine.slots.round_robin_pieces, 3);
    let l = raw.limits;
    assert_eq!(
        (
            l.upload_rate,
            l.download_rate,
            l.torrent_upload_rate,
            l.torrent_download_rate,
            l.upload_slots
        ),
        (1, 2, 3, 4, 5)
    );
    assert!(Settings::check(raw).is_ok());

    let s = parse("[network]\nlisten = [\"127.0.0.1:0\"]\ninterface = \"lo\"\nbind_address = \"127.0.0.1\"\n[engine]\nshards = 3\n")
        .session_config();
    assert_eq!(s.shards, 3);
    assert_eq!(s.listen, vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()]);
    assert_eq!(s.bind.interface.as_deref(), Some("lo"));
    assert_eq!(s.bind.address, Some("127.0.0.1".parse().unwrap()));
    let d = DaemonConfig::default().session_config();
    assert_eq!(d.shards, ringseed::runtime::session::available_cpus());
    assert_eq!(
        d.listen,
        vec!["0.0.0.0:6881".parse::<SocketAddr>().unwrap()]
    );
}

#[test]
fn a_reload_plan_lists_what_changed_and_what_waits_for_a_restart() {
    let old = DaemonConfig::default();
    assert!(reload_plan(&old, &old.clone()).is_empty());
    assert!(reload_plan(&old, &parse(default_toml())).is_empty());

    let new = parse(
        r#"
[paths]
state_dir = "/var/lib/x"
download_dir = "/srv/dl"
watch_dir = "/srv/watch"
[network]
listen = ["0.0.0.0:7000"]
[engine]
shards = 2
upload_slots = "unlimited"
[limits]
upload_rate = "1M"
[queue]
max_active_downloads = -1
[share]
seeding_time_limit = 90
action = "remove"
[categories.tv]
save_path = "/srv/tv"
[log]
status_interval_s = 10
"#,
    );
    let p = reload_plan(&old, &new);
    assert_eq!(
        p.applied,
        vec![
            "paths.download_dir: unset -> /srv/dl (for torrents added from now on)",
            "paths.watch_dir: unset -> /srv/watch",
            "engine.upload_slots: 4 -> unlimited",
            "limits.upload_rate: 0 -> 1048576",
            "queue.max_active_downloads: 3 -> -1",
            "share.seeding_time_limit: -1 -> 90",
            "share.action: stop -> remove",
            "categories.tv: added (save_path /srv/tv)",
            "log.status_interval_s: 60 -> 10",
        ]
    );
    assert_eq!(
        p.need_restart,
        vec!["paths.state_dir", "network.listen", "engine.shards"]
    );

    // Back again: the category goes, the limits return.
    let back = reload_plan(&new, &old);
    assert!(back.applied.contains(&"categories.tv: removed".to_owned()));
    assert!(back
        .applied
        .contains(&"limits.upload_rate: 1048576 -> 0".to_owned()));
    assert_eq!(back.need_restart, p.need_restart);

    let moved = parse("[categories.tv]\nsave_path = \"/srv/tv2\"\n[network]\ninterface = \"wg0\"\nbind_address = \"10.0.0.2\"\n");
    let p = reload_plan(&new, &moved);
    assert!(p
        .applied
        .contains(&"categories.tv.save_path: /srv/tv -> /srv/tv2".to_owned()));
    assert!(p.need_restart.contains(&"network.interface".to_owned()));
    assert!(p.need_restart.contains(&"network.bind_address".to_owned()));
}

#[test]
fn discovery_keys_default_parse_and_map_to_the_session() {
    let d = DaemonConfig::default();
    assert!(d.network.dht && d.network.pex && !d.network.lsd && !d.network.dht_read_only);
    assert_eq!(d.network.dht_bootstrap, default_dht_bootstrap());
    assert!(!d.network.dht_bootstrap.is_empty());
    let s = d.session_config();
    let dht = s.dht.unwrap_or_else(|| panic!("the DHT is on by default"));
    assert_eq!(dht.bootstrap, default_dht_bootstrap());
    assert!(dht.saved_nodes.is_empty() && !dht.read_only);
    assert!(s.pex && !s.lsd);

    let c = parse(
        "[network]\ndht = true\ndht_bootstrap = [\"127.0.138.5:6881\", \"[::1]:7\", \"node.example:1\"]\n\
         dht_read_only = true\npex = false\nlsd = true\n",
    );
    assert_eq!(
        c.network.dht_bootstrap,
        vec!["127.0.138.5:6881", "[::1]:7", "node.example:1"]
    );
    let s = c.session_config();
    let dht = s.dht.unwrap_or_else(|| panic!("dht = true"));
    assert_eq!(dht.bootstrap, c.network.dht_bootstrap);
    assert!(dht.read_only);
    assert!(!s.pex && s.lsd);

    let off = parse("[network]\ndht = false\n");
    assert!(off.session_config().dht.is_none());
    // An empty list: no bootstrap (the saved nodes only).
    assert!(parse("[network]\ndht_bootstrap = []\n")
        .network
        .dht_bootstrap
        .is_empty());
}

#[test]
fn bad_bootstrap_nodes_name_key_line_and_why() {
    for (text, want) in [
        ("[network]\ndht_bootstrap = [\"nohost\"]", "network.dht_bootstrap at line 2: \"nohost\" is not HOST:PORT: no port"),
        ("[network]\ndht_bootstrap = [\"h:0\"]", "network.dht_bootstrap at line 2: \"h:0\" is not HOST:PORT: the port must be 1 to 65535"),
        ("[network]\ndht_bootstrap = [\"[::1:5\"]", "network.dht_bootstrap at line 2: \"[::1:5\" is not HOST:PORT: not an IPv6 address in brackets"),
        ("[network]\ndht_bootstrap = [\"a b:5\"]", "network.dht_bootstrap at line 2: \"a b:5\" is not HOST:PORT: the host must be a name or an IP address"),
        ("[network]\ndht_bootstrap = [\":5\"]", "network.dht_bootstrap at line 2: \":5\" is not HOST:PORT: the host must be a name or an IP address"),
        ("[network]\ndht_bootstrap = \"h:1\"", "network.dht_bootstrap at line 2: expected an array of \"HOST:PORT\" strings"),
        ("[network]\ndht_bootstrap = [1]", "network.dht_bootstrap at line 2: expected an array of \"HOST:PORT\" strings"),
        ("[network]\ndht = \"yes\"", "network.dht at line 2: expected true or false, found a string"),
        ("[network]\ndht_bootstraps = []", "unknown key \"dht_bootstraps\" in [network] at line 2"),
    ] {
        let e = error(text);
        assert!(e.starts_with(want), "{text:?}: got {e:?}, want {want:?}");
    }
    let many: Vec<String> = (0..=DHT_BOOTSTRAP_MAX)
        .map(|i| format!("\"n{i}.example:1\""))
        .collect();
    let e = error(&format!(
        "[network]\ndht_bootstrap = [{}]\n",
        many.join(", ")
    ));
    assert_eq!(
        e,
        format!(
            "network.dht_bootstrap at line 2: {} nodes: expected at most {DHT_BOOTSTRAP_MAX}",
            DHT_BOOTSTRAP_MAX + 1
        )
    );
    let long = format!("\"{}:1\"", "a".repeat(DHT_BOOTSTRAP_ENTRY_BYTES_MAX));
    assert!(error(&format!("[network]\ndht_bootstrap = [{long}]\n")).contains("more than"));
}

#[test]
fn discovery_changes_wait_for_a_restart() {
    let old = DaemonConfig::default();
    let new = parse(
        "[network]\ndht = false\ndht_bootstrap = [\"127.0.138.5:1\"]\ndht_read_only = true\n\
         pex = false\nlsd = true\n",
    );
    let p = reload_plan(&old, &new);
    assert!(p.applied.is_empty(), "{:?}", p.applied);
    assert_eq!(
        p.need_restart,
        vec![
            "network.dht",
            "network.dht_bootstrap",
            "network.dht_read_only",
            "network.pex",
            "network.lsd"
        ]
    );
}

#[test]
fn encryption_keys_parse_reload_at_run_time_and_reach_the_settings() {
    use ringseed::mse::{EncryptionLevel, EncryptionMode};
    let d = DaemonConfig::default();
    assert_eq!(d.network.encryption, EncryptionMode::Enabled);
    assert_eq!(d.network.encryption_level, EncryptionLevel::Both);
    let c = parse("[network]\nencryption = \"required\"\nencryption_level = \"rc4\"\n");
    let e = Settings::check(c.settings_raw()).unwrap().encryption();
    assert_eq!(e.incoming, EncryptionMode::Required);
    assert_eq!(e.outgoing, EncryptionMode::Required);
    assert_eq!(e.level, EncryptionLevel::Rc4);
    let p = reload_plan(&d, &c);
    assert_eq!(
        p.applied,
        vec![
            "network.encryption: enabled -> required",
            "network.encryption_level: both -> rc4",
        ]
    );
    assert!(p.need_restart.is_empty(), "{:?}", p.need_restart);
    let e = error("[network]\nencryption = \"forced\"\n");
    assert!(
        e.contains("encryption") && e.contains("\"forced\"") && e.contains("line 2"),
        "{e}"
    );
    // The Web API's number (qBittorrent's: 0 prefer, 1 require, 2 disable).
    let mut c = DaemonConfig::default();
    let patch = ConfigPatch {
        encryption: Some(2),
        ..ConfigPatch::default()
    };
    patch.apply(&mut c);
    assert_eq!(c.network.encryption, EncryptionMode::Disabled);
    assert_eq!(qbt_encryption(EncryptionMode::Required), 1);
    assert_eq!(patch.keys(), vec!["network.encryption"]);
}

#[test]
fn pin_shards_parses_reaches_the_session_and_waits_for_a_restart() {
    let old = DaemonConfig::default();
    assert!(old.engine.pin_shards);
    assert!(old.session_config().pin);
    let new = parse("[engine]\npin_shards = false\n");
    assert!(!new.engine.pin_shards);
    assert!(!new.session_config().pin);
    let p = reload_plan(&old, &new);
    assert!(p.applied.is_empty(), "{:?}", p.applied);
    assert_eq!(p.need_restart, vec!["engine.pin_shards"]);
    assert!(error("[engine]\npin_shards = 1\n").contains("engine.pin_shards"));
}

#[test]
fn send_path_takes_the_command_line_words_and_names_a_wrong_one() {
    use ringseed::runtime::shard::send_path::SendPathMode;
    for (word, mode) in [
        ("copy", SendPathMode::Copy),
        ("splice", SendPathMode::Splice),
        ("auto", SendPathMode::Auto),
    ] {
        let c = parse(&format!("[engine]\nsend_path = \"{word}\"\n"));
        assert_eq!(c.engine.send_path, mode);
        assert_eq!(c.session_config().send_path, mode);
    }
    let e = error("[engine]\nsend_path = \"zero-copy\"\n");
    assert!(e.starts_with("engine.send_path at line 2:"), "{e}");
    assert!(
        e.contains("\"zero-copy\" is not copy, splice or auto"),
        "{e}"
    );
}
