//! Unit tests for [`Magnet`]: every rule and every error of the module header.

use super::*;

const HEX: &str = "c0fda1edafdbdbb96443424e0b3899af7159d10e";
/// The same hash in base32 (made with Python's base64.b32encode).
const BASE32: &str = "YD62D3NP3PN3SZCDIJHAWOEZV5YVTUIO";

fn hash() -> InfoHash {
    InfoHash::from_hex(HEX).unwrap()
}

fn parse(uri: &str) -> Result<Magnet, MagnetError> {
    Magnet::parse(uri)
}

fn ok(uri: &str) -> Magnet {
    match Magnet::parse(uri) {
        Ok(m) => m,
        Err(e) => panic!("{uri:?} should parse: {e}"),
    }
}

fn with_hash(rest: &str) -> String {
    format!("magnet:?xt=urn:btih:{HEX}{rest}")
}

fn round_trips(m: &Magnet) {
    let uri = m.to_uri();
    assert_eq!(Magnet::parse(&uri).as_ref(), Ok(m), "via {uri}");
}

// --- info-hash -----------------------------------------------------------

#[test]
fn minimal_hex_magnet() {
    let m = ok(&with_hash(""));
    assert_eq!(m, Magnet::new(hash()));
}

#[test]
fn hex_hash_in_upper_case() {
    let m = ok(&format!("magnet:?xt=urn:btih:{}", HEX.to_uppercase()));
    assert_eq!(m.info_hash, hash());
}

#[test]
fn base32_hash_equals_the_hex_one_in_either_case() {
    assert_eq!(
        ok(&format!("magnet:?xt=urn:btih:{BASE32}")).info_hash,
        hash()
    );
    assert_eq!(
        ok(&format!("magnet:?xt=urn:btih:{}", BASE32.to_lowercase())).info_hash,
        hash()
    );
}

#[test]
fn urn_prefix_in_any_case() {
    assert_eq!(ok(&format!("magnet:?xt=URN:BTIH:{HEX}")).info_hash, hash());
}

#[test]
fn first_btih_wins() {
    let other = "0".repeat(40);
    let m = ok(&format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{other}"));
    assert_eq!(m.info_hash, hash());
    let m = ok(&format!("magnet:?xt=urn:btih:{other}&xt.1=urn:btih:{HEX}"));
    assert_eq!(m.info_hash, InfoHash([0; 20]));
}

#[test]
fn every_btih_must_be_well_formed() {
    assert_eq!(
        parse(&format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btih:abc")),
        Err(MagnetError::BadHashLength { found: 3 })
    );
}

#[test]
fn v2_alone_is_not_supported_yet() {
    let v2 = "magnet:?xt=urn:btmh:1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e&dn=x";
    assert_eq!(parse(v2), Err(MagnetError::V2NotSupported));
    assert!(MagnetError::V2NotSupported
        .to_string()
        .contains("not supported yet"));
}

#[test]
fn hybrid_uses_the_btih_in_either_order() {
    let btmh = "urn:btmh:1220d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb";
    let m = ok(&format!("magnet:?xt={btmh}&xt=urn:btih:{HEX}"));
    assert_eq!(m.info_hash, hash());
    let m = ok(&format!("magnet:?xt=urn:btih:{HEX}&xt={btmh}"));
    assert_eq!(m.info_hash, hash());
    // The btmh is not kept anywhere.
    assert!(m.unknown.is_empty());
}

#[test]
fn missing_info_hash() {
    assert_eq!(parse("magnet:?"), Err(MagnetError::MissingInfoHash));
    assert_eq!(
        parse("magnet:?dn=x&tr=http://t/a"),
        Err(MagnetError::MissingInfoHash)
    );
    // Other kinds of exact topic do not count.
    assert_eq!(
        parse("magnet:?xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C"),
        Err(MagnetError::MissingInfoHash)
    );
    assert_eq!(parse("magnet:?xt="), Err(MagnetError::MissingInfoHash));
}

#[test]
fn bad_hash_lengths() {
    for (hash, found) in [
        ("", 0),
        ("abc", 3),
        (&HEX[..39], 39),
        (&format!("{HEX}0")[..], 41),
    ] {
        assert_eq!(
            parse(&format!("magnet:?xt=urn:btih:{hash}")),
            Err(MagnetError::BadHashLength { found }),
            "{hash}"
        );
    }
    // Counted in characters, not bytes.
    assert_eq!(
        parse(&format!("magnet:?xt=urn:btih:{}", "é".repeat(20))),
        Err(MagnetError::BadHashLength { found: 20 })
    );
}

#[test]
fn bad_hash_digits() {
    let mut bad = HEX.to_string();
    bad.replace_range(5..6, "g");
    assert_eq!(
        parse(&format!("magnet:?xt=urn:btih:{bad}")),
        Err(MagnetError::BadHashDigit {
            encoding: "hex",
            position: 5,
            found: 'g'
        })
    );
    let non_ascii = format!("{}é", &HEX[..39]);
    assert_eq!(
        parse(&format!("magnet:?xt=urn:btih:{non_ascii}")),
        Err(MagnetError::BadHashDigit {
            encoding: "hex",
            position: 39,
            found: 'é'
        })
    );
    let mut bad32 = BASE32.to_string();
    bad32.replace_range(0..1, "1");
    assert_eq!(
        parse(&format!("magnet:?xt=urn:btih:{bad32}")),
        Err(MagnetError::BadHashDigit {
            encoding: "base32",
            position: 0,
            found: '1'
        })
    );
}

#[test]
fn percent_escaped_exact_topic() {
    let m = ok(&format!("magnet:?xt=urn%3Abtih%3A{HEX}"));
    assert_eq!(m.info_hash, hash());
}

// --- scheme and size -----------------------------------------------------

#[test]
fn scheme_in_any_case() {
    assert_eq!(ok(&format!("MAGNET:?xt=urn:btih:{HEX}")).info_hash, hash());
    assert_eq!(ok(&format!("Magnet:?xt=urn:btih:{HEX}")).info_hash, hash());
}

#[test]
fn not_a_magnet() {
    for text in [
        "",
        "magnet",
        "magnet:",
        "magnet:xt=urn:btih:",
        "http://example.com/?xt=urn:btih:",
        " magnet:?xt=urn:btih:",
        "magneté?xt=",
        "é",
    ] {
        assert_eq!(
            parse(text),
            Err(MagnetError::NotMagnet {
                found: text.chars().take(QUOTE_CHARS_MAX).collect()
            }),
            "{text:?}"
        );
    }
}

#[test]
fn not_a_magnet_quotes_only_the_start() {
    let long = "x".repeat(10_000);
    match parse(&long) {
        Err(MagnetError::NotMagnet { found }) => assert_eq!(found.len(), QUOTE_CHARS_MAX),
        other => panic!("expected NotMagnet, got {other:?}"),
    }
}

#[test]
fn too_long() {
    let max = limits::MAGNET_URI_BYTES_MAX;
    let base = with_hash("&dn=");
    let at_limit = format!("{base}{}", "a".repeat(max - base.len()));
    assert_eq!(at_limit.len(), max);
    assert!(parse(&at_limit).is_ok());
    let over = format!("{at_limit}a");
    assert_eq!(
        parse(&over),
        Err(MagnetError::TooLong {
            bytes: max + 1,
            max
        })
    );
}

// --- keys ----------------------------------------------------------------

#[test]
fn keys_in_any_case() {
    let m = ok(&format!(
        "magnet:?XT=urn:btih:{HEX}&Dn=name&TR=http://t/a&Ws=http://w/f&X.PE=1.2.3.4:5&XL=7&SO=1"
    ));
    assert_eq!(m.info_hash, hash());
    assert_eq!(m.display_name.as_deref(), Some("name"));
    assert_eq!(m.trackers, ["http://t/a"]);
    assert_eq!(m.web_seeds, ["http://w/f"]);
    assert_eq!(m.peers, ["1.2.3.4:5"]);
    assert_eq!(m.exact_length, Some(7));
    assert_eq!(m.select_only, Some(vec![(1, 1)]));
    assert!(m.unknown.is_empty());
}

#[test]
fn indexed_keys() {
    let m = ok(&with_hash(
        "&tr.1=http://a/&tr.2=http://b/&TR.10=http://c/&ws.1=http://w/&x.pe.1=h:1",
    ));
    assert_eq!(m.trackers, ["http://a/", "http://b/", "http://c/"]);
    assert_eq!(m.web_seeds, ["http://w/"]);
    assert_eq!(m.peers, ["h:1"]);
    // Only digits make an index, and only list keys take one.
    let m = ok(&with_hash("&tr.=a&tr.x=b&tr.1a=c&dn.1=d&xl.1=e"));
    assert!(m.trackers.is_empty());
    assert_eq!(m.display_name, None);
    assert_eq!(
        m.unknown,
        [
            ("tr.".into(), "a".into()),
            ("tr.x".into(), "b".into()),
            ("tr.1a".into(), "c".into()),
            ("dn.1".into(), "d".into()),
            ("xl.1".into(), "e".into()),
        ]
    );
}

#[test]
fn percent_escaped_keys() {
    let m = ok(&format!("magnet:?%78t=urn:btih:{HEX}&d%6E=n"));
    assert_eq!(m.info_hash, hash());
    assert_eq!(m.display_name.as_deref(), Some("n"));
}

#[test]
fn empty_segments_and_valueless_keys() {
    let m = ok(&format!("magnet:?&&xt=urn:btih:{HEX}&&flag&=v&"));
    assert_eq!(
        m.unknown,
        [("flag".into(), String::new()), (String::new(), "v".into())]
    );
    // A value may hold '='.
    let m = ok(&with_hash("&dn=a=b"));
    assert_eq!(m.display_name.as_deref(), Some("a=b"));
}

// --- decoding ------------------------------------------------------------

#[test]
fn display_name_with_percent_20_and_plus() {
    let m = ok(&with_hash("&dn=Ubuntu%2024.04+Desktop%2Bextra"));
    assert_eq!(
        m.display_name.as_deref(),
        Some("Ubuntu 24.04 Desktop+extra")
    );
}

#[test]
fn first_display_name_wins() {
    let m = ok(&with_hash("&dn=first&dn=second"));
    assert_eq!(m.display_name.as_deref(), Some("first"));
    let m = ok(&with_hash("&dn="));
    assert_eq!(m.display_name.as_deref(), Some(""));
}

#[test]
fn bad_escapes_name_key_and_byte() {
    let base = with_hash("&dn=");
    assert_eq!(
        parse(&format!("{base}ab%zz")),
        Err(MagnetError::BadEscape {
            key: "dn".into(),
            position: base.len() + 2,
            found: "%zz".into()
        })
    );
    assert_eq!(
        parse(&format!("{base}%4")),
        Err(MagnetError::BadEscape {
            key: "dn".into(),
            position: base.len(),
            found: "%4".into()
        })
    );
    // In a key.
    assert_eq!(
        parse("magnet:?x%t=1"),
        Err(MagnetError::BadEscape {
            key: "x%t".into(),
            position: 9,
            found: "%t".into()
        })
    );
    let err = parse(&format!("{base}%4")).unwrap_err().to_string();
    let at = format!("byte {}", base.len());
    assert!(err.contains("\"dn\"") && err.contains(&at), "{err}");
}

#[test]
fn bad_escape_before_multibyte_character_does_not_panic() {
    assert!(matches!(
        parse(&with_hash("&dn=%é")),
        Err(MagnetError::BadEscape { .. })
    ));
    assert!(matches!(
        parse(&with_hash("&dn=%aé")),
        Err(MagnetError::BadEscape { .. })
    ));
}

#[test]
fn non_utf8_addresses_are_refused() {
    let base = with_hash("&tr=");
    assert_eq!(
        parse(&format!("{base}http://t/%FF")),
        Err(MagnetError::NotUtf8 {
            key: "tr".into(),
            position: base.len()
        })
    );
    for key in ["ws", "x.pe", "xl", "so", "xt"] {
        assert!(
            matches!(
                parse(&with_hash(&format!("&{key}=%C3%28"))),
                Err(MagnetError::NotUtf8 { key: k, .. }) if k == key
            ),
            "{key}"
        );
    }
}

#[test]
fn non_utf8_name_and_unknown_are_lossy() {
    let m = ok(&with_hash("&dn=caf%E9&k%FF=v%FE"));
    assert_eq!(m.display_name.as_deref(), Some("caf\u{FFFD}"));
    assert_eq!(m.unknown, [("k\u{FFFD}".into(), "v\u{FFFD}".into())]);
    round_trips(&m);
}

#[test]
fn raw_utf8_is_accepted() {
    let m = ok(&with_hash("&dn=日本語 файл"));
    assert_eq!(m.display_name.as_deref(), Some("日本語 файл"));
}

// --- xl ------------------------------------------------------------------

#[test]
fn exact_length() {
    assert_eq!(ok(&with_hash("&xl=0")).exact_length, Some(0));
    assert_eq!(
        ok(&with_hash("&xl=18446744073709551615")).exact_length,
        Some(u64::MAX)
    );
    assert_eq!(ok(&with_hash("&xl=5&xl=6")).exact_length, Some(5));
}

#[test]
fn bad_exact_length() {
    for value in ["", "abc", "-1", "1.5", " 1", "18446744073709551616", "1e9"] {
        assert_eq!(
            parse(&with_hash(&format!("&xl={value}"))),
            Err(MagnetError::BadExactLength {
                found: value.into()
            }),
            "{value:?}"
        );
    }
    // '+' is a space; an escaped '+' is still not a digit.
    assert_eq!(
        parse(&with_hash("&xl=%2B1")),
        Err(MagnetError::BadExactLength { found: "+1".into() })
    );
    // Every xl is checked, not only the first.
    assert!(parse(&with_hash("&xl=5&xl=x")).is_err());
}

// --- so ------------------------------------------------------------------

#[test]
fn select_only() {
    let m = ok(&with_hash("&so=0,2,4-6"));
    assert_eq!(m.select_only, Some(vec![(0, 0), (2, 2), (4, 6)]));
    let m = ok(&with_hash("&so=1&so=2"));
    assert_eq!(m.select_only, Some(vec![(1, 1)]));
    // Commas may be escaped.
    let m = ok(&with_hash("&so=1%2C3"));
    assert_eq!(m.select_only, Some(vec![(1, 1), (3, 3)]));
}

#[test]
fn bad_select_only() {
    assert_eq!(
        parse(&with_hash("&so=6-4")),
        Err(MagnetError::ReversedSelectOnly { first: 6, last: 4 })
    );
    assert_eq!(
        parse(&with_hash("&so=1,x")),
        Err(MagnetError::BadSelectOnly { entry: "x".into() })
    );
    assert_eq!(
        parse(&with_hash("&so=")),
        Err(MagnetError::BadSelectOnly { entry: "".into() })
    );
    let too_many = vec!["1"; limits::MAGNET_LIST_ITEMS_MAX + 1].join(",");
    assert!(matches!(
        parse(&with_hash(&format!("&so={too_many}"))),
        Err(MagnetError::TooManyItems { what, .. }) if what.contains("so")
    ));
}

// --- lists ---------------------------------------------------------------

#[test]
fn trackers_keep_order_and_drop_duplicates_and_empties() {
    let m = ok(&with_hash(
        "&tr=udp%3A%2F%2Fb%3A1&tr=http://a/&tr=udp://b:1&tr=&tr.2=http://a/&tr=http://c/",
    ));
    assert_eq!(m.trackers, ["udp://b:1", "http://a/", "http://c/"]);
}

#[test]
fn web_seeds_and_peers() {
    let m = ok(&with_hash(
        "&ws=http%3A%2F%2Fseed.example%2Fdir%2F&x.pe=10.0.0.1:6881&x.pe=[::1]:6881&x.pe=10.0.0.1:6881",
    ));
    assert_eq!(m.web_seeds, ["http://seed.example/dir/"]);
    assert_eq!(m.peers, ["10.0.0.1:6881", "[::1]:6881"]);
}

#[test]
fn too_many_list_items() {
    let max = limits::MAGNET_LIST_ITEMS_MAX;
    for (key, what) in [
        ("tr", "trackers (tr)"),
        ("ws", "web seeds (ws)"),
        ("x.pe", "peers (x.pe)"),
    ] {
        let items =
            |n: usize| -> String { (0..n).map(|i| format!("&{key}=h{i}:1")).collect::<String>() };
        let m = ok(&with_hash(&items(max)));
        assert_eq!(m.trackers.len() + m.web_seeds.len() + m.peers.len(), max);
        assert_eq!(
            parse(&with_hash(&items(max + 1))),
            Err(MagnetError::TooManyItems { what, max }),
            "{key}"
        );
    }
    // Duplicates do not count against the limit.
    let dupes = "&tr=http://same/".repeat(max + 10);
    assert_eq!(ok(&with_hash(&dupes)).trackers.len(), 1);
}

#[test]
fn unknown_parameters_are_kept_decoded() {
    let m = ok(&with_hash(
        "&kt=linux+iso&as=http%3A%2F%2Fx%2Fy.torrent&Foo=Bar",
    ));
    assert_eq!(
        m.unknown,
        [
            ("kt".into(), "linux iso".into()),
            ("as".into(), "http://x/y.torrent".into()),
            ("Foo".into(), "Bar".into()),
        ]
    );
}

#[test]
fn too_many_unknown_parameters() {
    let max = limits::MAGNET_LIST_ITEMS_MAX;
    let items = |n: usize| -> String { (0..n).map(|i| format!("&k{i}=v")).collect::<String>() };
    assert_eq!(ok(&with_hash(&items(max))).unknown.len(), max);
    assert_eq!(
        parse(&with_hash(&items(max + 1))),
        Err(MagnetError::TooManyItems {
            what: "unknown parameters",
            max
        })
    );
}

// --- writing and round trips ---------------------------------------------

#[test]
fn to_uri_exact_text() {
    let m = Magnet {
        info_hash: hash(),
        display_name: Some("My File (1).iso".into()),
        trackers: vec![
            "udp://t.example:6969/announce".into(),
            "http://a/?x=1&y=2".into(),
        ],
        exact_length: Some(1024),
        peers: vec!["[::1]:6881".into()],
        web_seeds: vec!["http://w.example/f".into()],
        select_only: Some(vec![(0, 0), (4, 6)]),
        unknown: vec![("k e+y".into(), "a=b&c".into())],
    };
    assert_eq!(
        m.to_uri(),
        format!(
            "magnet:?xt=urn:btih:{HEX}&dn=My%20File%20(1).iso&xl=1024\
             &tr=udp://t.example:6969/announce&tr=http://a/%3Fx%3D1%26y%3D2\
             &ws=http://w.example/f&x.pe=%5B::1%5D:6881&so=0,4-6&k%20e%2By=a%3Db%26c"
        )
    );
    round_trips(&m);
    assert_eq!(m.to_string(), m.to_uri());
    assert_eq!(m.to_uri().parse::<Magnet>(), Ok(m));
}

#[test]
fn base32_input_is_written_as_lower_hex() {
    let m = ok(&format!("magnet:?xt=urn:btih:{BASE32}"));
    assert_eq!(m.to_uri(), format!("magnet:?xt=urn:btih:{HEX}"));
}

#[test]
fn round_trip_of_real_world_shaped_magnets() {
    for uri in [
        // Several trackers, escaped, name with %20 and +.
        "magnet:?xt=urn:btih:C0FDA1EDAFDBDBB96443424E0B3899AF7159D10E&dn=ubuntu-24.04.1+desktop%20amd64.iso\
         &tr=https%3A%2F%2Ftorrent.ubuntu.com%2Fannounce&tr=https%3A%2F%2Fipv6.torrent.ubuntu.com%2Fannounce",
        // Base32 hash, indexed trackers, peer, web seed, select-only, unknown.
        "magnet:?xt=urn:btih:YD62D3NP3PN3SZCDIJHAWOEZV5YVTUIO&dn=Big+Buck+Bunny&xl=276134947\
         &tr.1=udp%3A%2F%2Fexplodie.org%3A6969&tr.2=udp%3A%2F%2Ftracker.example.org%3A1337%2Fannounce\
         &ws=https%3A%2F%2Fwebtorrent.example%2Ftorrents%2F&x.pe=192.0.2.7:51413&so=0,2-3&kt=video",
        // Hybrid v1/v2.
        "magnet:?xt=urn:btih:631a31dd0a46257d5078c0dee4e66e26f73e42ac\
         &xt=urn:btmh:1220d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb\
         &dn=bittorrent-v1-v2-hybrid-test",
        // Odd but valid: characters that need escaping everywhere.
        "magnet:?xt=urn:btih:c0fda1edafdbdbb96443424e0b3899af7159d10e&dn=%25%26%3D%2B%23%3F%00%7F%C3%A9&%26=%3D",
    ] {
        let m = ok(uri);
        round_trips(&m);
        // Writing is stable: the second writing equals the first.
        assert_eq!(ok(&m.to_uri()).to_uri(), m.to_uri());
    }
}

#[test]
fn real_world_shaped_fields() {
    let m = ok(
        "magnet:?xt=urn:btih:C0FDA1EDAFDBDBB96443424E0B3899AF7159D10E&dn=ubuntu-24.04.1+desktop%20amd64.iso\
         &tr=https%3A%2F%2Ftorrent.ubuntu.com%2Fannounce&tr=https%3A%2F%2Fipv6.torrent.ubuntu.com%2Fannounce",
    );
    assert_eq!(m.info_hash, hash());
    assert_eq!(
        m.display_name.as_deref(),
        Some("ubuntu-24.04.1 desktop amd64.iso")
    );
    assert_eq!(
        m.trackers,
        [
            "https://torrent.ubuntu.com/announce",
            "https://ipv6.torrent.ubuntu.com/announce"
        ]
    );
}

#[test]
fn errors_read_well() {
    let cases = [
        (
            MagnetError::BadHashLength { found: 3 },
            "40 hex or 32 base32",
        ),
        (MagnetError::MissingInfoHash, "xt=urn:btih:"),
        (
            MagnetError::BadExactLength { found: "x".into() },
            "xl (exact length)",
        ),
        (
            MagnetError::ReversedSelectOnly { first: 6, last: 4 },
            "6-4 runs backwards",
        ),
        (
            MagnetError::TooLong {
                bytes: 70000,
                max: 65536,
            },
            "70000 bytes",
        ),
    ];
    for (err, needle) in cases {
        assert!(err.to_string().contains(needle), "{err}");
    }
}
