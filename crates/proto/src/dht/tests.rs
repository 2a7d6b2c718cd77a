//! Unit tests of the DHT pieces: codec, ids (BEP 42 vectors), tokens, peer
//! store, routing table, and the node's server side.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use super::krpc::{self, Body, KrpcError, Message, Query, Response};
use super::node_id::*;
use super::peer_store::*;
use super::routing_table::*;
use super::tokens::*;
use super::*;
use crate::rng::Rng;
use crate::InfoHash;

fn addr(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), port)
}

fn id(b: u8) -> NodeId {
    NodeId([b; 20])
}

fn hex20(s: &str) -> NodeId {
    let mut out = [0u8; 20];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    NodeId(out)
}

// ---- codec ----

fn round_trip(m: Message) {
    let bytes = m.encode();
    assert_eq!(
        krpc::decode(&bytes).unwrap(),
        m,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
}

#[test]
fn krpc_round_trips_every_message() {
    let q = |body| Message {
        tid: b"aa".to_vec(),
        body,
        read_only: false,
        ip: None,
    };
    round_trip(q(Body::Query(Query::Ping { id: id(1) })));
    round_trip(q(Body::Query(Query::FindNode {
        id: id(1),
        target: id(2),
    })));
    round_trip(q(Body::Query(Query::GetPeers {
        id: id(1),
        info_hash: InfoHash([3; 20]),
    })));
    round_trip(q(Body::Query(Query::AnnouncePeer {
        id: id(1),
        info_hash: InfoHash([3; 20]),
        port: 6881,
        implied_port: true,
        token: b"tok".to_vec(),
    })));
    round_trip(Message {
        tid: b"xyz".to_vec(),
        body: Body::Response(Response {
            id: id(9),
            nodes: vec![(id(4), addr(1, 2, 3, 4, 5)), (id(5), addr(6, 7, 8, 9, 10))],
            values: vec![addr(11, 12, 13, 14, 15)],
            token: Some(b"t".to_vec()),
        }),
        read_only: true,
        ip: Some(addr(20, 0, 0, 1, 999)),
    });
    round_trip(q(Body::Error {
        code: 203,
        message: b"bad token".to_vec(),
    }));
}

#[test]
fn krpc_decodes_the_bep5_examples() {
    let ping = krpc::decode(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe").unwrap();
    assert_eq!(ping.tid, b"aa");
    assert_eq!(
        ping.body,
        Body::Query(Query::Ping {
            id: NodeId(*b"abcdefghij0123456789")
        })
    );
    let resp = krpc::decode(b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re").unwrap();
    assert!(matches!(resp.body, Body::Response(r) if r.id == NodeId(*b"mnopqrstuvwxyz123456")));
    let err = krpc::decode(b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee").unwrap();
    assert_eq!(
        err.body,
        Body::Error {
            code: 201,
            message: b"A Generic Error Ocurred".to_vec()
        }
    );
    let ro =
        krpc::decode(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping2:roi1e1:t2:aa1:y1:qe").unwrap();
    assert!(ro.read_only);
    let unknown = krpc::decode(b"d1:ad2:id20:abcdefghij0123456789e1:q3:foo1:t2:aa1:y1:qe").unwrap();
    assert!(matches!(unknown.body, Body::Query(Query::Unknown { .. })));
}

#[test]
fn krpc_malformed_cases_give_typed_errors() {
    type Check = fn(&KrpcError) -> bool;
    let cases: Vec<(&[u8], Check)> = vec![
        (b"", |e| matches!(e, KrpcError::Bencode(_))),
        (b"i1e", |e| matches!(e, KrpcError::NotADict { .. })),
        (b"d1:y1:qe", |e| matches!(e, KrpcError::Missing { key: "t" })),
        (b"d1:ti1e1:y1:qe", |e| matches!(e, KrpcError::WrongType { key: "t", .. })),
        (b"d1:t0:1:y1:qe", |e| matches!(e, KrpcError::BadLength { key: "t", .. })),
        (b"d1:t2:aae", |e| matches!(e, KrpcError::Missing { key: "y" })),
        (b"d1:t2:aa1:y1:xe", |e| matches!(e, KrpcError::UnknownType(_))),
        (b"d1:t2:aa1:y1:qe", |e| matches!(e, KrpcError::Missing { key: "q" })),
        (b"d1:q4:ping1:t2:aa1:y1:qe", |e| matches!(e, KrpcError::Missing { key: "a" })),
        (b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe", |e| {
            matches!(e, KrpcError::BadLength { key: "id", .. })
        }),
        (b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:aa1:y1:qe", |e| {
            matches!(e, KrpcError::Missing { key: "target" })
        }),
        (
            b"d1:ad2:id20:abcdefghij01234567899:info_hash20:abcdefghij01234567894:porti70000e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe",
            |e| matches!(e, KrpcError::BadPort(70000)),
        ),
        (b"d1:rd2:id20:mnopqrstuvwxyz1234565:nodes3:abce1:t2:aa1:y1:re", |e| {
            matches!(e, KrpcError::BadLength { key: "nodes", .. })
        }),
        (b"d1:rd2:id20:mnopqrstuvwxyz1234566:valuesl3:abcee1:t2:aa1:y1:re", |e| {
            matches!(e, KrpcError::BadLength { key: "values", .. })
        }),
        (b"d1:rd2:id20:mnopqrstuvwxyz1234566:valuesi1ee1:t2:aa1:y1:re", |e| {
            matches!(e, KrpcError::WrongType { key: "values", .. })
        }),
        (b"d1:eli201ee1:t2:aa1:y1:re", |e| matches!(e, KrpcError::Missing { key: "r" })),
        (b"d1:ele1:t2:aa1:y1:ee", |e| matches!(e, KrpcError::Missing { key: "e" })),
        (b"d1:e3:abc1:t2:aa1:y1:ee", |e| matches!(e, KrpcError::WrongType { key: "e", .. })),
    ];
    for (input, check) in cases {
        let err = krpc::decode(input).unwrap_err();
        assert!(
            check(&err),
            "{:?} gave {err:?}",
            String::from_utf8_lossy(input)
        );
        assert!(!err.to_string().is_empty());
    }
    let long = vec![b'x'; krpc::DATAGRAM_LEN_MAX + 1];
    assert!(matches!(
        krpc::decode(&long),
        Err(KrpcError::TooLong { .. })
    ));
}

#[test]
fn krpc_skips_ipv6_values_and_ip() {
    let mut r = b"d2:ip18:0123456789abcdefgh1:rd2:id20:mnopqrstuvwxyz1234566:valuesl18:0123456789abcdefgh6:abcdefee1:t2:aa1:y1:re".to_vec();
    let m = krpc::decode(&r).unwrap();
    assert_eq!(m.ip, None);
    let Body::Response(resp) = m.body else {
        panic!()
    };
    assert_eq!(resp.values.len(), 1);
    r.truncate(10);
    assert!(krpc::decode(&r).is_err());
}

// ---- ids ----

#[test]
fn crc32c_check_value() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c(b""), 0);
}

/// The table of BEP 42: IP, rand, an example id whose first 21 bits and last
/// byte are fixed by the rule.
const BEP42_VECTORS: &[(&str, u8, &str)] = &[
    (
        "124.31.75.21",
        1,
        "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401",
    ),
    (
        "21.75.31.124",
        86,
        "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256",
    ),
    (
        "65.23.51.170",
        22,
        "a5d43220bc8f112a3d426c84764f8c2a1150e616",
    ),
    (
        "84.124.73.14",
        65,
        "1b0321dd1bb1fe518101ceef99462b947a01ff41",
    ),
    (
        "43.213.53.83",
        90,
        "e56f6cbf5b7c4be0237986d5243b87aa6d51305a",
    ),
];

#[test]
fn bep42_vectors_verify_and_generate() {
    for (ip, rand, example) in BEP42_VECTORS {
        let ip: Ipv4Addr = ip.parse().unwrap();
        let example = hex20(example);
        assert_eq!(example.0[19], *rand);
        assert!(is_secure_node_id(&example, ip), "{ip}");
        // Flip one of the 21 checked bits: no longer secure.
        let mut bad = example;
        bad.0[2] ^= 0x08;
        assert!(!is_secure_node_id(&bad, ip), "{ip}");
        // Generated ids carry the same 21 bits when r matches.
        let mut rng = Rng::new(u64::from(*rand));
        for _ in 0..200 {
            let g = secure_node_id(ip, &mut rng);
            assert!(is_secure_node_id(&g, ip));
            if g.0[19] & 7 == rand & 7 {
                assert_eq!(&g.0[..2], &example.0[..2]);
                assert_eq!(g.0[2] & 0xf8, example.0[2] & 0xf8);
            }
        }
    }
}

#[test]
fn bep42_exempts_local_networks() {
    let mut rng = Rng::new(5);
    let random = NodeId::random(&mut rng);
    for ip in [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.3.3",
        "127.0.130.1",
    ] {
        assert!(is_secure_node_id(&random, ip.parse().unwrap()));
    }
    assert!(!is_secure_node_id(
        &NodeId([0; 20]),
        "124.31.75.21".parse().unwrap()
    ));
}

#[test]
fn distance_and_prefixes() {
    let a = id(0);
    let mut rng = Rng::new(9);
    for bits in [0, 1, 7, 8, 63, 159] {
        let r = a.random_with_prefix(bits, &mut rng);
        assert_eq!(a.distance(&r).leading_zeros(), bits);
    }
    assert_eq!(a.distance(&a).leading_zeros(), 160);
}

// ---- tokens and peer store ----

#[test]
fn tokens_accept_current_and_previous_secret_only() {
    let mut rng = Rng::new(3);
    let mut t = TokenSecrets::new(&mut rng, Duration::ZERO);
    let ip = Ipv4Addr::new(20, 0, 0, 1);
    let tok = t.token_for(ip);
    assert!(t.is_valid(ip, &tok));
    assert!(!t.is_valid(Ipv4Addr::new(20, 0, 0, 2), &tok));
    t.tick(TOKEN_ROTATION - Duration::from_secs(1), &mut rng);
    assert_eq!(t.token_for(ip), tok);
    t.tick(TOKEN_ROTATION, &mut rng);
    assert_ne!(t.token_for(ip), tok);
    assert!(t.is_valid(ip, &tok), "previous secret still accepted");
    t.tick(TOKEN_ROTATION * 2, &mut rng);
    assert!(!t.is_valid(ip, &tok), "two rotations later it is refused");
}

#[test]
fn peer_store_is_bounded_and_expires() {
    let mut rng = Rng::new(4);
    let mut s = PeerStore::new(PeerStoreLimits {
        hashes_max: 3,
        peers_per_hash_max: 5,
    });
    let now = Duration::from_secs(10);
    for h in 0..5u8 {
        for p in 0..10u16 {
            s.announce(
                now + Duration::from_secs(u64::from(p)),
                InfoHash([h; 20]),
                addr(20, 0, 0, h, 1000 + p),
            );
        }
    }
    assert_eq!(s.hashes(), 3);
    assert_eq!(s.peer_count(), 15);
    let got = s.peers(now, &InfoHash([0; 20]), &mut rng);
    assert_eq!(got.len(), 5);
    assert!(
        got.iter().all(|a| a.port() >= 1005),
        "oldest replaced first: {got:?}"
    );
    assert!(s.peers(now, &InfoHash([4; 20]), &mut rng).is_empty());
    s.expire(now + PEER_TTL + Duration::from_secs(20));
    assert_eq!(s.hashes(), 0);
}

// ---- routing table ----

#[test]
fn routing_table_stays_bounded_and_splits_only_near_us() {
    let mut rng = Rng::new(11);
    let own = NodeId::random(&mut rng);
    let mut t = RoutingTable::new(own, K, NODE_FAILS_MAX, Duration::ZERO);
    for i in 0..20_000u32 {
        let nid = if i % 2 == 0 {
            NodeId::random(&mut rng)
        } else {
            own.random_with_prefix((i as usize / 2) % 40, &mut rng)
        };
        let b = i.to_be_bytes();
        t.insert(
            nid,
            addr(30, b[1], b[2], b[3], 6881),
            Duration::from_secs(u64::from(i)),
            true,
        );
    }
    assert!(t.largest_bucket() <= K);
    assert!(t.bucket_count() <= node_id::NODE_ID_BITS);
    assert!(t.len() <= t.bucket_count() * K);
    assert!(t.replacement_len() <= t.bucket_count() * REPLACEMENTS_PER_BUCKET_MAX);
    assert!(
        t.bucket_count() >= 30,
        "buckets near us split: {}",
        t.bucket_count()
    );
    assert_eq!(
        t.insert(own, addr(30, 0, 0, 1, 1), Duration::ZERO, true),
        Inserted::Refused
    );
}

#[test]
fn routing_table_evicts_failing_nodes_for_replacements() {
    let own = id(0);
    let mut t = RoutingTable::new(own, 2, 2, Duration::ZERO);
    // Three ids in the far bucket (first bit set); the table splits once it
    // holds our side, so use ids that all land in bucket 0.
    let far = |b: u8| NodeId([0x80 | b; 20]);
    let now = Duration::from_secs(1);
    assert_eq!(
        t.insert(far(1), addr(20, 0, 0, 1, 1), now, true),
        Inserted::Added
    );
    assert_eq!(
        t.insert(far(2), addr(20, 0, 0, 2, 1), now, true),
        Inserted::Added
    );
    // Splitting moves nothing: bucket 0 is full and not ours to split again.
    t.insert(NodeId([0x01; 20]), addr(20, 0, 0, 9, 1), now, true);
    assert_eq!(
        t.insert(far(3), addr(20, 0, 0, 3, 1), now, true),
        Inserted::Replacement
    );
    assert!(!t.on_failure(addr(20, 0, 0, 1, 1)));
    assert!(t.on_failure(addr(20, 0, 0, 1, 1)));
    assert!(
        t.contains_addr(addr(20, 0, 0, 3, 1)),
        "replacement promoted"
    );
    assert!(!t.contains_addr(addr(20, 0, 0, 1, 1)));
}

#[test]
fn routing_table_prefers_secure_ids_when_full() {
    let own = id(0);
    let mut t = RoutingTable::new(own, 1, 2, Duration::ZERO);
    t.insert(
        NodeId([0x01; 20]),
        addr(20, 0, 0, 9, 1),
        Duration::ZERO,
        true,
    );
    let ip = Ipv4Addr::new(124, 31, 75, 21);
    let mut rng = Rng::new(1);
    // Find a secure id for ip that lands in bucket 0 (first bit set).
    let secure = loop {
        let s = secure_node_id(ip, &mut rng);
        if s.0[0] & 0x80 != 0 {
            break s;
        }
    };
    let insecure = NodeId([0xff; 20]);
    assert_eq!(
        t.insert(insecure, addr(20, 0, 0, 1, 1), Duration::ZERO, true),
        Inserted::Added
    );
    assert_eq!(
        t.insert(secure, SocketAddrV4::new(ip, 1), Duration::ZERO, true),
        Inserted::Added,
        "secure id replaces the insecure one"
    );
    assert!(!t.contains_addr(addr(20, 0, 0, 1, 1)));
}

// ---- the node's server side ----

fn node(read_only: bool) -> Dht {
    Dht::new(
        DhtConfig {
            read_only,
            ..DhtConfig::default()
        },
        77,
        Duration::ZERO,
    )
}

fn sends(d: &mut Dht) -> Vec<(SocketAddr, Message)> {
    let mut out = Vec::new();
    while let Some(o) = d.poll_output() {
        if let DhtOutput::Send { to, bytes } = o {
            out.push((to, krpc::decode(&bytes).unwrap()));
        }
    }
    out
}

fn query(tid: &[u8], q: Query, ro: bool) -> Vec<u8> {
    Message {
        tid: tid.to_vec(),
        body: Body::Query(q),
        read_only: ro,
        ip: None,
    }
    .encode()
}

#[test]
fn answers_ping_with_our_id_and_the_askers_address() {
    let mut d = node(false);
    let from = addr(20, 1, 1, 1, 4000);
    d.handle_datagram(
        Duration::ZERO,
        from.into(),
        &query(b"t1", Query::Ping { id: id(5) }, false),
    );
    let out = sends(&mut d);
    assert_eq!(out.len(), 2, "the answer, then a ping to verify the asker");
    assert_eq!(out[0].0, SocketAddr::V4(from));
    assert_eq!(out[0].1.tid, b"t1");
    assert_eq!(out[0].1.ip, Some(from));
    assert!(matches!(&out[0].1.body, Body::Response(r) if r.id == d.node_id()));
    assert!(matches!(&out[1].1.body, Body::Query(Query::Ping { .. })));
    assert_eq!(d.stats().nodes, 0, "not in the table before it answers");
    let answer = Message {
        tid: out[1].1.tid.clone(),
        body: Body::Response(Response {
            id: id(5),
            ..Response::default()
        }),
        read_only: false,
        ip: None,
    };
    d.handle_datagram(Duration::ZERO, from.into(), &answer.encode());
    assert_eq!(
        d.stats().nodes,
        1,
        "the asker joins the table once it answered"
    );
}

#[test]
fn read_only_nodes_answer_nothing_and_ro_askers_stay_out() {
    let mut d = node(true);
    d.handle_datagram(
        Duration::ZERO,
        addr(20, 1, 1, 1, 1).into(),
        &query(b"t1", Query::Ping { id: id(5) }, false),
    );
    assert!(sends(&mut d).is_empty());
    d.add_node(Duration::ZERO, addr(20, 1, 1, 2, 1).into());
    let out = sends(&mut d);
    assert_eq!(out.len(), 1);
    assert!(out[0].1.read_only, "queries carry ro=1");

    let mut s = node(false);
    s.handle_datagram(
        Duration::ZERO,
        addr(20, 1, 1, 1, 1).into(),
        &query(b"t1", Query::Ping { id: id(5) }, true),
    );
    assert_eq!(
        sends(&mut s).len(),
        1,
        "a read-only asker is still answered"
    );
    assert_eq!(s.stats().nodes, 0, "but never added");
}

#[test]
fn announce_needs_the_token_and_honours_implied_port() {
    let mut d = node(false);
    let from = addr(20, 1, 1, 1, 4000);
    let now = Duration::from_secs(1);
    let ih = InfoHash([7; 20]);
    d.handle_datagram(
        now,
        from.into(),
        &query(
            b"g1",
            Query::GetPeers {
                id: id(5),
                info_hash: ih,
            },
            false,
        ),
    );
    let out = sends(&mut d);
    let Body::Response(r) = &out[0].1.body else {
        panic!()
    };
    let token = r.token.clone().unwrap();
    let announce = |token: Vec<u8>, implied: bool| {
        query(
            b"a1",
            Query::AnnouncePeer {
                id: id(5),
                info_hash: ih,
                port: 6000,
                implied_port: implied,
                token,
            },
            false,
        )
    };
    d.handle_datagram(now, from.into(), &announce(b"wrong".to_vec(), false));
    assert!(matches!(
        sends(&mut d)[0].1.body,
        Body::Error { code: 203, .. }
    ));
    // Same token from another IP is refused too.
    d.handle_datagram(
        now,
        addr(20, 1, 1, 2, 4000).into(),
        &announce(token.clone(), false),
    );
    assert!(matches!(
        sends(&mut d)[0].1.body,
        Body::Error { code: 203, .. }
    ));
    d.handle_datagram(now, from.into(), &announce(token.clone(), true));
    assert!(matches!(sends(&mut d)[0].1.body, Body::Response(_)));
    d.handle_datagram(
        now,
        addr(20, 1, 1, 3, 1).into(),
        &query(
            b"g2",
            Query::GetPeers {
                id: id(6),
                info_hash: ih,
            },
            false,
        ),
    );
    let out = sends(&mut d);
    let Body::Response(r) = &out[0].1.body else {
        panic!()
    };
    assert_eq!(
        r.values,
        vec![from],
        "implied port: the source port is stored"
    );
}

#[test]
fn unknown_methods_get_204_and_garbage_or_ipv6_is_ignored() {
    let mut d = node(false);
    let from = addr(20, 1, 1, 1, 4000);
    d.handle_datagram(
        Duration::ZERO,
        from.into(),
        &query(
            b"u1",
            Query::Unknown {
                id: id(5),
                method: b"vote".to_vec(),
            },
            false,
        ),
    );
    assert!(matches!(
        sends(&mut d)[0].1.body,
        Body::Error { code: 204, .. }
    ));
    d.handle_datagram(Duration::ZERO, from.into(), b"garbage");
    let v6: SocketAddr = "[::1]:5000".parse().unwrap();
    d.handle_datagram(
        Duration::ZERO,
        v6,
        &query(b"p", Query::Ping { id: id(5) }, false),
    );
    d.add_node(Duration::ZERO, v6);
    d.external_ip_vote(
        Duration::ZERO,
        "::1".parse().unwrap(),
        "::2".parse().unwrap(),
    );
    assert!(sends(&mut d).is_empty());
    assert_eq!(d.stats().malformed, 1);
}

#[test]
fn responses_from_unexpected_addresses_or_tids_are_ignored() {
    let mut d = node(false);
    let boot = addr(20, 1, 1, 1, 4000);
    d.add_node(Duration::ZERO, boot.into());
    let out = sends(&mut d);
    let tid = out[0].1.tid.clone();
    let resp = |tid: &[u8]| {
        Message {
            tid: tid.to_vec(),
            body: Body::Response(Response {
                id: id(9),
                ..Response::default()
            }),
            read_only: false,
            ip: None,
        }
        .encode()
    };
    d.handle_datagram(Duration::ZERO, addr(20, 1, 1, 2, 4000).into(), &resp(&tid));
    d.handle_datagram(Duration::ZERO, boot.into(), &resp(b"zz"));
    assert_eq!(d.stats().unexpected_responses, 2);
    assert_eq!(d.stats().nodes, 0);
    d.handle_datagram(Duration::ZERO, boot.into(), &resp(&tid));
    assert_eq!(d.stats().nodes, 1);
    d.handle_datagram(Duration::ZERO, boot.into(), &resp(&tid));
    assert_eq!(d.stats().unexpected_responses, 3, "a tid answers once");
}

#[test]
fn flooders_are_rate_limited() {
    let mut d = node(false);
    let from = addr(20, 1, 1, 1, 4000);
    for i in 0..100u8 {
        d.handle_datagram(
            Duration::from_millis(u64::from(i)),
            from.into(),
            &query(&[i, i], Query::Ping { id: id(5) }, false),
        );
    }
    let answers = |d: &mut Dht| {
        sends(d)
            .into_iter()
            .filter(|(_, m)| matches!(m.body, Body::Response(_)))
            .count()
    };
    assert_eq!(answers(&mut d), QUERIES_PER_IP_PER_SECOND as usize);
    assert_eq!(
        d.stats().queries_rate_limited,
        100 - u64::from(QUERIES_PER_IP_PER_SECOND)
    );
    d.handle_datagram(
        Duration::from_secs(2),
        from.into(),
        &query(b"zz", Query::Ping { id: id(5) }, false),
    );
    assert_eq!(answers(&mut d), 1, "the window moves on");
}

#[test]
fn external_ip_majority_gives_a_secure_id() {
    let mut d = node(false);
    let ip = Ipv4Addr::new(124, 31, 75, 21);
    let old = d.node_id();
    d.external_ip_vote(Duration::ZERO, IpAddr::V4(ip), "20.0.0.1".parse().unwrap());
    d.external_ip_vote(Duration::ZERO, IpAddr::V4(ip), "20.0.0.1".parse().unwrap());
    d.external_ip_vote(
        Duration::ZERO,
        "30.0.0.1".parse().unwrap(),
        "20.0.0.2".parse().unwrap(),
    );
    assert_eq!(d.node_id(), old, "one voter twice is one vote");
    d.external_ip_vote(Duration::ZERO, IpAddr::V4(ip), "20.0.0.3".parse().unwrap());
    assert_eq!(d.node_id(), old, "2 of 3 is not yet the minimum");
    d.external_ip_vote(
        Duration::ZERO,
        "10.0.0.1".parse().unwrap(),
        "20.0.0.5".parse().unwrap(),
    );
    d.external_ip_vote(Duration::ZERO, IpAddr::V4(ip), "20.0.0.4".parse().unwrap());
    assert_ne!(d.node_id(), old);
    assert!(is_secure_node_id(&d.node_id(), ip));
    assert_eq!(d.external_ip(), Some(ip));
    assert_eq!(d.stats().id_changes, 1);
}

#[test]
fn liars_values_and_oversized_node_lists_are_cleaned() {
    let mut d = node(false);
    let boot = addr(20, 1, 1, 1, 4000);
    d.add_node(Duration::ZERO, boot.into());
    sends(&mut d);
    let ih = InfoHash([1; 20]);
    // Give the table a node so get_peers asks it.
    let tid_of = |d: &mut Dht| {
        sends(d)
            .into_iter()
            .find(|(to, _)| *to == SocketAddr::V4(boot))
            .map(|(_, m)| m.tid)
    };
    d.get_peers(Duration::ZERO, ih);
    let tid = tid_of(&mut d).unwrap_or_default();
    let many_nodes: Vec<_> = (0..40u8)
        .map(|i| (NodeId([i; 20]), addr(20, 2, 0, i, 1 + u16::from(i))))
        .collect();
    let mut values: Vec<_> = (0..10u8).map(|i| addr(20, 3, 0, i, 7000)).collect();
    values.push(addr(20, 3, 1, 1, 0));
    let bytes = Message {
        tid,
        body: Body::Response(Response {
            id: id(9),
            nodes: many_nodes,
            values,
            token: Some(b"tk".to_vec()),
        }),
        read_only: false,
        ip: None,
    }
    .encode();
    d.handle_datagram(Duration::ZERO, boot.into(), &bytes);
    let mut peers = Vec::new();
    let mut queried = 0;
    while let Some(o) = d.poll_output() {
        match o {
            DhtOutput::Peers { peers: p, .. } => peers.extend(p),
            DhtOutput::Send { .. } => queried += 1,
            _ => {}
        }
    }
    assert_eq!(peers.len(), 10, "port-0 entry dropped");
    assert!(queried <= ALPHA);
}

#[test]
fn bootstrap_is_retried_with_a_pause_while_nobody_answers() {
    let mut d = node(false);
    let boot = addr(20, 1, 1, 1, 4000);
    d.add_node(Duration::ZERO, boot.into());
    assert_eq!(sends(&mut d).len(), 1);
    let mut sent_at = Vec::new();
    for s in 1..=120u64 {
        let now = Duration::from_secs(s);
        if d.next_tick() <= now {
            d.tick(now);
        }
        if !sends(&mut d).is_empty() {
            sent_at.push(s);
        }
    }
    assert!(sent_at.len() >= 3 && sent_at.len() <= 5, "{sent_at:?}");
    assert!(
        sent_at
            .windows(2)
            .all(|w| w[1] - w[0] >= BOOTSTRAP_RETRY_INTERVAL.as_secs()),
        "{sent_at:?}"
    );
}

#[test]
fn bootstrap_is_retried_while_fewer_than_k_nodes_answered() {
    // The router's answer is lost; one other node queries us and answers
    // our ping, so the table holds one good node that knows nobody. The
    // router must be asked again, not only while the table is empty.
    let mut d = node(false);
    let boot = addr(20, 1, 1, 1, 4000);
    d.add_node(Duration::ZERO, boot.into());
    assert_eq!(sends(&mut d).len(), 1, "the find_node to the router");
    let other = addr(20, 1, 2, 2, 4000);
    d.handle_datagram(
        Duration::from_secs(1),
        other.into(),
        &query(b"t1", Query::Ping { id: id(5) }, false),
    );
    let out = sends(&mut d);
    let ping = out
        .iter()
        .find(|(_, m)| matches!(m.body, Body::Query(Query::Ping { .. })))
        .map(|(_, m)| m.tid.clone())
        .expect("a ping to verify the asker");
    let answer = Message {
        tid: ping,
        body: Body::Response(Response {
            id: id(5),
            ..Response::default()
        }),
        read_only: false,
        ip: None,
    };
    d.handle_datagram(Duration::from_secs(1), other.into(), &answer.encode());
    assert_eq!(d.table.good_nodes(K).len(), 1);
    let mut router_asked_at = Vec::new();
    for s in 2..=120u64 {
        let now = Duration::from_secs(s);
        if d.next_tick() <= now {
            d.tick(now);
        }
        for (to, m) in sends(&mut d) {
            if to == SocketAddr::V4(boot) && matches!(m.body, Body::Query(Query::FindNode { .. })) {
                router_asked_at.push(s);
            }
            if to == SocketAddr::V4(other) {
                // It answers everything, with no nodes, so it stays good.
                let answer = Message {
                    tid: m.tid,
                    body: Body::Response(Response {
                        id: id(5),
                        ..Response::default()
                    }),
                    read_only: false,
                    ip: None,
                };
                d.handle_datagram(now, other.into(), &answer.encode());
            }
        }
    }
    println!("router asked at {router_asked_at:?}");
    assert!(
        !router_asked_at.is_empty() && router_asked_at[0] <= 2 * BOOTSTRAP_RETRY_INTERVAL.as_secs(),
        "the router is asked again: {router_asked_at:?}"
    );
    assert!(
        router_asked_at
            .windows(2)
            .all(|w| w[1] - w[0] >= BOOTSTRAP_RETRY_INTERVAL.as_secs()),
        "with a pause: {router_asked_at:?}"
    );
}
