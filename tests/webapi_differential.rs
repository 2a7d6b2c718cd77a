//! Differential test of the qBittorrent Web API: the same `qbittorrent-api`
//! scenario (tests/webapi/qbt_scenario.py) runs against Debian's
//! qbittorrent-nox (the reference) and against ringseed, and the key sets
//! of every JSON object kind both returned are compared.
//!
//! A difference is a key one side has and the other lacks, or a key whose
//! values have other JSON types on the two sides. Every difference must be
//! listed, with its reason, in tests/webapi/key_differences.json; the test
//! fails on a difference that is not listed and on a listed one that no
//! longer occurs, and prints the exact list ready to paste.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;

use common::daemon::{small_torrent_with, Dirs, RingDaemon, API_PASSWORD, API_USER};
use common::qbt::{
    run_scenario, webapi_file, QbtNox, ScenarioArgs, ScenarioRun, QBT_PASSWORD, QBT_USER,
};
use serde_json::Value;

/// Addresses of this test (127.0.114.0/24 belongs to the Web API client tests).
const QBT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 114, 20);
const QBT_LEECH_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 114, 21);
const RING_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 114, 22);
const RING_LEECH_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 114, 23);
/// A tracker nobody answers (nothing listens there), so that both servers
/// list a real tracker entry beside the DHT/PeX/LSD ones.
const DEAD_TRACKER: &str = "http://127.0.114.250:9/announce";

const NAME: &str = "differential.bin";
const LEN: usize = 300_000;
const SEED: u64 = 0x5eed_0a11;

const QBT: &str = "qBittorrent";
const RING: &str = "ringseed";

/// One difference: `key` of objects of `kind` exists only in `only_in`'s
/// answers, or exists in both with other JSON `types` ("qBittorrent:
/// number | ringseed: string"; integers and reals are both numbers).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Difference {
    kind: String,
    only_in: Option<String>,
    types: Option<String>,
    key: String,
}

/// kind -> key -> the JSON types its values had.
type Shapes = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn strings(v: &Value, what: &str) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what}: not an array: {v}"))
        .iter()
        .map(|k| {
            k.as_str()
                .unwrap_or_else(|| panic!("{what}: not a string: {k}"))
                .to_string()
        })
        .collect()
}

/// The key sets and value types the scenario recorded.
fn shapes(run: &ScenarioRun, who: &str) -> Shapes {
    let doc = run
        .keys
        .as_ref()
        .unwrap_or_else(|| panic!("{who}: the scenario wrote no output"));
    let keys = doc
        .get("keys")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("{who}: the scenario wrote no `keys` object"));
    let types = doc.get("types").and_then(Value::as_object);
    let mut out = Shapes::new();
    for (kind, list) in keys {
        let of_kind = types.and_then(|t| t.get(kind)).and_then(Value::as_object);
        let entry = out.entry(kind.clone()).or_default();
        for key in strings(list, &format!("{who}: keys of {kind}")) {
            let t = of_kind
                .and_then(|o| o.get(&key))
                .map(|t| strings(t, &format!("{who}: types of {kind}.{key}")))
                .unwrap_or_default();
            entry.insert(key, t);
        }
    }
    out
}

/// Every key one side has in a kind (or a whole kind) the other lacks, and
/// every key both have with values of other JSON types.
fn differences(qbt: &Shapes, ring: &Shapes) -> BTreeSet<Difference> {
    let empty = BTreeMap::new();
    let kinds: BTreeSet<&String> = qbt.keys().chain(ring.keys()).collect();
    let mut out = BTreeSet::new();
    for kind in kinds {
        let q = qbt.get(kind).unwrap_or(&empty);
        let r = ring.get(kind).unwrap_or(&empty);
        for (only_in, a, b) in [(QBT, q, r), (RING, r, q)] {
            for key in a.keys().filter(|k| !b.contains_key(*k)) {
                out.insert(Difference {
                    kind: kind.clone(),
                    only_in: Some(only_in.to_string()),
                    types: None,
                    key: key.clone(),
                });
            }
        }
        for (key, qt) in q {
            let Some(rt) = r.get(key) else { continue };
            if qt != rt && !qt.is_empty() && !rt.is_empty() {
                let join = |t: &BTreeSet<String>| t.iter().cloned().collect::<Vec<_>>().join("+");
                out.insert(Difference {
                    kind: kind.clone(),
                    only_in: None,
                    types: Some(format!("{QBT}: {} | {RING}: {}", join(qt), join(rt))),
                    key: key.clone(),
                });
            }
        }
    }
    out
}

/// The accepted differences, with their reasons.
fn accepted(path: &Path) -> BTreeMap<Difference, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let list = doc
        .get("differences")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{}: no `differences` array", path.display()));
    let mut out = BTreeMap::new();
    for entry in list {
        let field = |name: &str| {
            entry
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string)
        };
        let need = |name: &str| {
            field(name)
                .unwrap_or_else(|| panic!("{}: entry without a `{name}`: {entry}", path.display()))
        };
        let d = Difference {
            kind: need("kind"),
            only_in: field("only_in"),
            types: field("types"),
            key: need("key"),
        };
        assert!(
            d.only_in.is_some() != d.types.is_some(),
            "{}: an entry has either `only_in` or `types`: {entry}",
            path.display()
        );
        if let Some(side) = &d.only_in {
            assert!(
                side == QBT || side == RING,
                "{}: only_in must be {QBT:?} or {RING:?}: {entry}",
                path.display()
            );
        }
        let reason = need("reason");
        assert!(
            out.insert(d, reason).is_none(),
            "{}: listed twice: {entry}",
            path.display()
        );
    }
    out
}

/// One entry as key_differences.json writes it (one line, this key order).
fn entry_line(d: &Difference, reason: &str) -> String {
    let q = |s: &str| Value::from(s).to_string();
    let what = match (&d.only_in, &d.types) {
        (Some(side), _) => format!("\"only_in\": {}", q(side)),
        (None, Some(t)) => format!("\"types\": {}", q(t)),
        (None, None) => String::new(),
    };
    format!(
        "{{\"kind\": {}, \"key\": {}, {what}, \"reason\": {}}}",
        q(&d.kind),
        q(&d.key),
        q(reason)
    )
}

fn describe_run(who: &str, run: &ScenarioRun) -> String {
    format!("=== scenario against {who} ===\n{}", run.output.describe())
}

#[test]
fn key_sets_match_qbittorrent_nox_up_to_the_listed_differences() {
    let dirs = Dirs::new();
    let torrent = dirs.path("differential.torrent");
    let qbt_data = dirs.path("qbt-data");
    let ring_data = dirs.path("ring-data");
    let mut bytes = Vec::new();
    for d in [&qbt_data, &ring_data] {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        let (b, _hash) =
            small_torrent_with(d, NAME, LEN, SEED, 16 * 1024, &[DEAD_TRACKER.to_string()]);
        assert!(bytes.is_empty() || bytes == b, "the same torrent twice");
        bytes = b;
    }
    std::fs::write(&torrent, &bytes).unwrap_or_else(|e| panic!("{e}"));

    let nox = QbtNox::start("qbittorrent-nox", QBT_IP);
    let ring = RingDaemon::start_api("ringseed", &dirs, RING_IP, &[]);

    let qbt_out = dirs.path("keys-qbittorrent.json");
    let ring_out = dirs.path("keys-ringseed.json");
    let qbt_leech = dirs.path("leech-qbt");
    let ring_leech = dirs.path("leech-ring");
    let qbt_args = ScenarioArgs {
        url: &nox.url,
        user: QBT_USER,
        password: QBT_PASSWORD,
        torrent: &torrent,
        save_path: &qbt_data,
        peer: nox.peer,
        leech_ip: QBT_LEECH_IP,
        leech_dir: &qbt_leech,
        out: &qbt_out,
    };
    let ring_args = ScenarioArgs {
        url: ring.api_url(),
        user: API_USER,
        password: API_PASSWORD,
        torrent: &torrent,
        save_path: &ring_data,
        peer: ring.addr,
        leech_ip: RING_LEECH_IP,
        leech_dir: &ring_leech,
        out: &ring_out,
    };
    // Both at once: the scenario mostly waits.
    let (qbt_run, ring_run) = std::thread::scope(|s| {
        let q = s.spawn(|| run_scenario(&qbt_args));
        let r = run_scenario(&ring_args);
        (
            q.join()
                .unwrap_or_else(|_| panic!("the qbittorrent-nox scenario panicked")),
            r,
        )
    });

    assert!(
        qbt_run.passed(),
        "the scenario failed against the reference qbittorrent-nox (a broken reference \
         setup, not ringseed)\n{}\n{}",
        describe_run("qbittorrent-nox", &qbt_run),
        nox.describe()
    );
    assert!(
        ring_run.passed(),
        "the scenario failed against ringseed\n{}\n{}",
        describe_run("ringseed", &ring_run),
        ring.proc.describe()
    );

    let found = differences(&shapes(&qbt_run, QBT), &shapes(&ring_run, RING));
    let list_path = webapi_file("key_differences.json");
    let listed = accepted(&list_path);
    let unlisted: Vec<&Difference> = found.iter().filter(|d| !listed.contains_key(d)).collect();
    let stale: Vec<(&Difference, &String)> =
        listed.iter().filter(|(d, _)| !found.contains(d)).collect();
    if unlisted.is_empty() && stale.is_empty() {
        println!(
            "{} differences, all listed in {}",
            found.len(),
            list_path.display()
        );
        return;
    }
    let mut msg = String::new();
    if !unlisted.is_empty() {
        msg.push_str(&format!(
            "{} differences not in {} (fix ringseed, or list them with a reason):\n",
            unlisted.len(),
            list_path.display()
        ));
        for d in &unlisted {
            msg.push_str(&format!("  {},\n", entry_line(d, "TODO: why")));
        }
    }
    if !stale.is_empty() {
        msg.push_str(&format!(
            "{} listed differences that no longer occur (remove them):\n",
            stale.len()
        ));
        for (d, reason) in &stale {
            msg.push_str(&format!("  {},\n", entry_line(d, reason)));
        }
    }
    // The exact list, ready to paste as `differences` (reasons kept).
    let exact: Vec<String> = found
        .iter()
        .map(|d| {
            let reason = listed.get(d).map(String::as_str).unwrap_or("TODO: why");
            format!("  {}", entry_line(d, reason))
        })
        .collect();
    msg.push_str(&format!(
        "\nthe exact \"differences\" array now:\n [\n{}\n ]\n\nqbittorrent-nox answered {} and ringseed {}",
        exact.join(",\n"),
        qbt_run.keys.as_ref().and_then(|k| k.get("server")).cloned().unwrap_or_default(),
        ring_run.keys.as_ref().and_then(|k| k.get("server")).cloned().unwrap_or_default(),
    ));
    panic!("{msg}");
}
