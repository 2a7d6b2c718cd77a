use super::*;
use crate::InfoHash;

const IH: InfoHash = InfoHash([7; 20]);
const OURS: [u8; 20] = [1; 20];
const THEIRS: [u8; 20] = [2; 20];
const T0: Duration = Duration::from_secs(1000);

fn secs(s: u64) -> Duration {
    T0 + Duration::from_secs(s)
}

/// 3 pieces: 32768, 32768, 14464 bytes.
fn shape() -> TorrentShape {
    TorrentShape::new(IH, 32768, 80000).unwrap()
}

fn conn_with(dir: Direction, cfg: PeerConfig, ours: PieceBits) -> PeerConnection {
    PeerConnection::new(cfg, shape(), dir, OURS, ours, T0).unwrap()
}

fn conn(dir: Direction) -> PeerConnection {
    conn_with(dir, PeerConfig::default(), PieceBits::all(3))
}

fn handshake(fast: bool, ext: bool) -> Vec<u8> {
    Handshake {
        info_hash: IH,
        peer_id: THEIRS,
        reserved: reserved_bits(ext, fast, false),
    }
    .encode()
    .to_vec()
}

fn wire(m: Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&m, &mut out);
    out
}

fn drain(c: &mut PeerConnection) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action()).collect()
}

fn request(piece: u32, offset: u32, length: u32) -> Vec<u8> {
    wire(Message::Request {
        piece,
        offset,
        length,
    })
}

/// An established connection (handshake in, actions drained), unchoked or not.
fn established(fast: bool, unchoked: bool) -> PeerConnection {
    let mut c = conn(Direction::Outgoing);
    assert_eq!(c.receive(T0, &handshake(fast, true)), Ok(68));
    if unchoked {
        c.set_choke(T0, false);
    }
    drain(&mut c);
    c
}

fn sends(actions: &[Action]) -> Vec<SendMessage> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(m) => Some(*m),
            _ => None,
        })
        .collect()
}

#[test]
fn outgoing_handshake_flow_with_fast() {
    let mut c = conn(Direction::Outgoing);
    let a = drain(&mut c);
    let SendMessage::Handshake(h) = sends(&a)[0] else {
        panic!("first action {a:?}")
    };
    assert_eq!(h.info_hash, IH);
    assert!(h.supports_fast() && h.supports_extension_protocol());
    c.set_choke(T0, false);
    assert!(
        drain(&mut c).is_empty(),
        "nothing sent before the handshake"
    );
    assert_eq!(c.receive(T0, &handshake(true, true)), Ok(68));
    assert!(c.is_established() && c.fast() && c.extensions());
    let a = drain(&mut c);
    assert_eq!(
        a[0],
        Action::HandshakeDone {
            peer_id: THEIRS,
            fast: true,
            extensions: true
        }
    );
    assert_eq!(
        sends(&a),
        vec![
            SendMessage::HaveAll,
            SendMessage::ExtensionHandshake,
            SendMessage::Unchoke
        ]
    );
    let mut out = Vec::new();
    c.write_message(&SendMessage::ExtensionHandshake, &mut out);
    let mut d = MessageDecoder::new(Limits::default());
    let Some((Message::Extended { id: 0, payload }, _)) = d.decode(&out).unwrap() else {
        panic!("not an extension handshake")
    };
    let eh = ExtensionHandshake::parse(payload).unwrap();
    assert_eq!(eh.reqq, Some(250));
}

#[test]
fn outgoing_without_fast_sends_bitfield() {
    let mut c = conn(Direction::Outgoing);
    drain(&mut c);
    c.receive(T0, &handshake(false, false)).unwrap();
    assert!(!c.fast() && !c.extensions());
    let a = drain(&mut c);
    assert_eq!(sends(&a), vec![SendMessage::Bitfield]);
    let mut out = Vec::new();
    c.write_message(&SendMessage::Bitfield, &mut out);
    assert_eq!(out, wire(Message::Bitfield(&[0xe0])));
}

#[test]
fn partial_and_empty_bitfields() {
    let mut some = PieceBits::none(3);
    some.set(1);
    let mut c = conn_with(Direction::Outgoing, PeerConfig::default(), some);
    c.receive(T0, &handshake(true, false)).unwrap();
    assert_eq!(sends(&drain(&mut c))[1..], [SendMessage::Bitfield]);
    let mut c = conn_with(
        Direction::Outgoing,
        PeerConfig::default(),
        PieceBits::none(3),
    );
    c.receive(T0, &handshake(true, false)).unwrap();
    assert_eq!(sends(&drain(&mut c))[1..], [SendMessage::HaveNone]);
    let mut c = conn_with(
        Direction::Outgoing,
        PeerConfig::default(),
        PieceBits::none(3),
    );
    c.receive(T0, &handshake(false, false)).unwrap();
    assert_eq!(sends(&drain(&mut c)).len(), 1, "handshake only");
}

#[test]
fn incoming_handshake_byte_by_byte() {
    let mut c = conn(Direction::Incoming);
    assert!(drain(&mut c).is_empty(), "incoming waits for the peer");
    let mut input = handshake(true, true);
    input.extend(wire(Message::Interested));
    input.extend(request(0, 0, 16384));
    let mut buf = Vec::new();
    let mut all = Vec::new();
    for (i, b) in input.iter().enumerate() {
        buf.push(*b);
        let n = c.receive(T0, &buf).unwrap();
        buf.drain(..n);
        let a = drain(&mut c);
        if i + 1 == 48 {
            assert!(matches!(a[..], [Action::Send(SendMessage::Handshake(_))]));
        }
        all.extend(a);
    }
    assert!(buf.is_empty());
    assert!(all.contains(&Action::PeerInterested(true)));
    assert!(c.peer_interested());
    // We choke by default: the request was refused with a reject.
    assert!(all.contains(&Action::Send(SendMessage::RejectRequest {
        piece: 0,
        offset: 0,
        length: 16384
    })));
    assert_eq!(c.counters().bytes_received, input.len() as u64);
}

#[test]
fn handshake_errors() {
    let mut c = conn(Direction::Incoming);
    let mut h = handshake(true, true);
    h[30] ^= 1;
    let e = c.receive(T0, &h[..48]).unwrap_err();
    assert!(matches!(e, PeerError::InfoHashMismatch { expected, .. } if expected == IH));
    assert!(c.is_closed() && c.next_timeout().is_none());
    assert_eq!(c.receive(T0, &h), Err(PeerError::Closed));

    let mut c = conn(Direction::Outgoing);
    let e = c.receive(T0, b"GET / HTTP/1.1").unwrap_err();
    assert!(matches!(e, PeerError::Handshake(_)));

    let mut c = conn(Direction::Outgoing);
    let mut h = handshake(true, true);
    h[48..].copy_from_slice(&OURS);
    assert_eq!(c.receive(T0, &h), Err(PeerError::ConnectedToSelf));

    // A message instead of a handshake.
    let mut c = conn(Direction::Outgoing);
    assert!(matches!(
        c.receive(T0, &wire(Message::Interested)),
        Err(PeerError::Handshake(_))
    ));
}

#[test]
fn setup_errors() {
    let e = PeerConnection::new(
        PeerConfig::default(),
        shape(),
        Direction::Outgoing,
        OURS,
        PieceBits::all(4),
        T0,
    )
    .unwrap_err();
    assert_eq!(
        e,
        SetupError::BitfieldSize {
            expected: 3,
            found: 4
        }
    );
    let cfg = PeerConfig {
        actions_max: 0,
        ..PeerConfig::default()
    };
    let e = PeerConnection::new(
        cfg,
        shape(),
        Direction::Outgoing,
        OURS,
        PieceBits::all(3),
        T0,
    );
    assert!(matches!(e, Err(SetupError::Config(_))));
}

#[test]
fn peer_have_set() {
    let mut c = established(false, false);
    c.receive(T0, &wire(Message::Bitfield(&[0x80]))).unwrap();
    assert_eq!(drain(&mut c), vec![Action::PeerHave(PeerHave::Bitfield)]);
    c.receive(T0, &wire(Message::Have { piece: 1 })).unwrap();
    c.receive(T0, &wire(Message::Have { piece: 1 })).unwrap();
    assert_eq!(drain(&mut c), vec![Action::PeerHave(PeerHave::Piece(1))]);
    c.receive(T0, &wire(Message::Have { piece: 2 })).unwrap();
    assert_eq!(
        drain(&mut c),
        vec![
            Action::PeerHave(PeerHave::Piece(2)),
            Action::Disconnect(DisconnectReason::BothSeeds)
        ]
    );
    assert!(c.peer_pieces().is_all());
    let e = c
        .receive(T0, &wire(Message::Have { piece: 3 }))
        .unwrap_err();
    assert_eq!(
        e,
        PeerError::PieceOutOfRange {
            message: "have",
            piece: 3,
            pieces: 3
        }
    );
}

#[test]
fn have_all_and_none_need_fast_and_late_ones_merge() {
    let mut c = established(true, false);
    c.receive(T0, &wire(Message::HaveNone)).unwrap();
    assert_eq!(drain(&mut c), vec![Action::PeerHave(PeerHave::None)]);
    // A later have-all adds every piece; a later have-none takes nothing away.
    c.receive(T0, &wire(Message::HaveAll)).unwrap();
    assert_eq!(
        drain(&mut c).first(),
        Some(&Action::PeerHave(PeerHave::All))
    );
    assert!(c.peer_pieces().is_all());
    c.receive(T0, &wire(Message::HaveNone)).unwrap();
    assert!(drain(&mut c).is_empty());
    assert!(c.peer_pieces().is_all());

    let mut c = established(true, false);
    c.receive(T0, &wire(Message::HaveAll)).unwrap();
    assert!(c.peer_pieces().is_all());

    let mut c = established(false, false);
    let e = c.receive(T0, &wire(Message::HaveAll)).unwrap_err();
    assert_eq!(
        e,
        PeerError::FastNotNegotiated {
            message: "have all"
        }
    );
    for m in [
        Message::RejectRequest {
            piece: 0,
            offset: 0,
            length: 1,
        },
        Message::AllowedFast(0),
        Message::SuggestPiece(0),
    ] {
        let mut c = established(false, false);
        assert!(matches!(
            c.receive(T0, &wire(m)),
            Err(PeerError::FastNotNegotiated { .. })
        ));
        let mut c = established(true, false);
        assert_eq!(c.receive(T0, &wire(m)), Ok(wire(m).len()));
    }
}

#[test]
fn a_late_bitfield_is_merged_not_refused() {
    let mut c = established(false, false);
    // Keep-alives and extended messages may come first.
    let mut input = wire(Message::KeepAlive);
    input.extend(wire(Message::Extended {
        id: 0,
        payload: b"d1:md6:ut_pexi1eee",
    }));
    input.extend(wire(Message::Bitfield(&[0x80])));
    assert_eq!(c.receive(T0, &input), Ok(input.len()));
    assert_eq!(
        c.peer_extensions().and_then(|e| e.extension_id("ut_pex")),
        Some(1)
    );
    assert!(c.peer_pieces().has(0));
    drain(&mut c);
    // aria2 sends its bitfield again after some pieces: merged.
    c.receive(T0, &wire(Message::Bitfield(&[0x20]))).unwrap();
    assert_eq!(drain(&mut c), vec![Action::PeerHave(PeerHave::Bitfield)]);
    assert!(c.peer_pieces().has(0), "pieces are never taken back");
    assert!(c.peer_pieces().has(2));
    assert_eq!(c.peer_pieces().count(), 2);
    let mut c = established(false, false);
    c.receive(T0, &wire(Message::Interested)).unwrap();
    c.receive(T0, &wire(Message::Bitfield(&[0x40]))).unwrap();
    assert!(c.peer_pieces().has(1));
}

#[test]
fn bad_extension_handshake_and_wire_errors() {
    let mut c = established(false, false);
    let e = c
        .receive(
            T0,
            &wire(Message::Extended {
                id: 0,
                payload: b"i1e",
            }),
        )
        .unwrap_err();
    assert!(matches!(e, PeerError::ExtensionHandshake(_)));
    let mut c = established(false, false);
    // Wrong bitfield size for 3 pieces.
    let e = c
        .receive(T0, &wire(Message::Bitfield(&[0, 0])))
        .unwrap_err();
    assert!(matches!(e, PeerError::Wire(_)));
    let mut c = established(false, false);
    let e = c.receive(T0, &request(0, 0, 16385)).unwrap_err();
    assert!(matches!(e, PeerError::Wire(_)));
    let mut c = established(false, false);
    assert!(matches!(
        c.receive(T0, &u32::MAX.to_be_bytes()),
        Err(PeerError::Wire(_))
    ));
}

#[test]
fn requests_when_unchoked_are_read_and_sent() {
    let mut c = established(true, true);
    c.receive(T0, &request(2, 0, 14464)).unwrap();
    assert_eq!(
        drain(&mut c),
        vec![Action::ReadBlock {
            piece: 2,
            offset: 0,
            length: 14464
        }]
    );
    // Duplicate ignored.
    c.receive(T0, &request(2, 0, 14464)).unwrap();
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.requests_held(), 1);
    let header = c.on_block_read(secs(1), 2, 0, 14464).unwrap();
    assert_eq!(header, piece_header(2, 0, 14464));
    assert_eq!(c.counters().blocks_sent, 1);
    assert_eq!(c.counters().block_bytes_sent, 14464);
    assert_eq!(c.requests_held(), 0);
    assert_eq!(c.on_block_read(secs(1), 2, 0, 14464), None, "not asked");
}

#[test]
fn request_range_errors() {
    let mut c = established(true, true);
    assert_eq!(
        c.receive(T0, &request(3, 0, 16384)),
        Err(PeerError::PieceOutOfRange {
            message: "request",
            piece: 3,
            pieces: 3
        })
    );
    let mut c = established(true, true);
    assert_eq!(
        c.receive(T0, &request(2, 1, 14464)),
        Err(PeerError::BlockOutOfPiece {
            message: "request",
            piece: 2,
            offset: 1,
            length: 14464,
            piece_size: 14464
        })
    );
    let mut c = established(true, true);
    assert!(matches!(
        c.receive(T0, &request(0, u32::MAX, 16384)),
        Err(PeerError::BlockOutOfPiece { .. })
    ));
    let mut c = established(true, true);
    let cancel = wire(Message::Cancel {
        piece: 9,
        offset: 0,
        length: 1,
    });
    assert!(matches!(
        c.receive(T0, &cancel),
        Err(PeerError::PieceOutOfRange {
            message: "cancel",
            ..
        })
    ));
}

#[test]
fn requests_for_missing_pieces_are_refused() {
    let mut some = PieceBits::none(3);
    some.set(0);
    let mut c = conn_with(Direction::Outgoing, PeerConfig::default(), some);
    c.receive(T0, &handshake(true, false)).unwrap();
    c.set_choke(T0, false);
    drain(&mut c);
    c.receive(T0, &request(1, 0, 16384)).unwrap();
    assert_eq!(
        sends(&drain(&mut c)),
        vec![SendMessage::RejectRequest {
            piece: 1,
            offset: 0,
            length: 16384
        }]
    );
    assert_eq!(c.counters().requests_rejected, 1);
}

#[test]
fn choked_requests_without_fast_are_dropped() {
    let mut c = established(false, false);
    c.receive(T0, &request(0, 0, 16384)).unwrap();
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.requests_held(), 0);
}

fn queue_config() -> PeerConfig {
    PeerConfig {
        requests_queued_max: 4,
        reads_in_flight_max: 2,
        ..PeerConfig::default()
    }
}

fn established_with(cfg: PeerConfig, fast: bool) -> PeerConnection {
    let mut c = conn_with(Direction::Outgoing, cfg, PieceBits::all(3));
    c.receive(T0, &handshake(fast, false)).unwrap();
    c.set_choke(T0, false);
    drain(&mut c);
    c
}

#[test]
fn queue_limit_without_fast_disconnects() {
    let mut c = established_with(queue_config(), false);
    for i in 0..4 {
        c.receive(T0, &request(0, i * 1024, 1024)).unwrap();
    }
    let a = drain(&mut c);
    assert_eq!(a.len(), 2, "two reads in flight, two queued: {a:?}");
    assert_eq!(
        c.receive(T0, &request(1, 0, 1024)),
        Err(PeerError::TooManyRequests {
            queued: 4,
            limit: 4
        })
    );
}

#[test]
fn queue_limit_with_fast_rejects() {
    let mut c = established_with(queue_config(), true);
    for i in 0..4 {
        c.receive(T0, &request(0, i * 1024, 1024)).unwrap();
    }
    drain(&mut c);
    c.receive(T0, &request(1, 0, 1024)).unwrap();
    assert_eq!(
        sends(&drain(&mut c)),
        vec![SendMessage::RejectRequest {
            piece: 1,
            offset: 0,
            length: 1024
        }]
    );
    // A completed read frees a slot and starts the next queued read.
    assert!(c.on_block_read(T0, 0, 0, 1024).is_some());
    assert_eq!(
        drain(&mut c),
        vec![Action::ReadBlock {
            piece: 0,
            offset: 2048,
            length: 1024
        }]
    );
}

#[test]
fn cancel_removes_queued_requests() {
    let cancel = |o: u32| {
        wire(Message::Cancel {
            piece: 0,
            offset: o,
            length: 1024,
        })
    };
    for fast in [false, true] {
        let mut c = established_with(queue_config(), fast);
        for i in 0..3 {
            c.receive(T0, &request(0, i * 1024, 1024)).unwrap();
        }
        drain(&mut c);
        // Queued, not yet read: removed (and rejected with fast).
        c.receive(T0, &cancel(2048)).unwrap();
        let expect = if fast {
            vec![SendMessage::RejectRequest {
                piece: 0,
                offset: 2048,
                length: 1024,
            }]
        } else {
            vec![]
        };
        assert_eq!(sends(&drain(&mut c)), expect);
        assert_eq!(c.requests_held(), 2);
        // Being read: still sent.
        c.receive(T0, &cancel(0)).unwrap();
        assert!(drain(&mut c).is_empty());
        assert!(c.on_block_read(T0, 0, 0, 1024).is_some());
        // Unknown: ignored.
        c.receive(T0, &cancel(8192)).unwrap();
        assert!(drain(&mut c).is_empty());
    }
}

#[test]
fn choke_with_fast_rejects_everything_held() {
    let mut c = established_with(queue_config(), true);
    for i in 0..3 {
        c.receive(T0, &request(0, i * 1024, 1024)).unwrap();
    }
    drain(&mut c);
    c.set_choke(T0, true);
    let s = sends(&drain(&mut c));
    assert_eq!(s[0], SendMessage::Choke);
    assert_eq!(s.len(), 4, "choke and three rejects: {s:?}");
    assert_eq!(c.requests_held(), 0);
    assert_eq!(c.on_block_read(T0, 0, 0, 1024), None, "unwanted now");
    c.set_choke(T0, true);
    assert!(drain(&mut c).is_empty(), "no repeat");
    c.set_choke(T0, false);
    assert_eq!(sends(&drain(&mut c)), vec![SendMessage::Unchoke]);
    // A re-request of a block whose stale read is still out is served.
    c.receive(T0, &request(0, 1024, 1024)).unwrap();
    assert_eq!(drain(&mut c).len(), 1);
    assert!(c.on_block_read(T0, 0, 1024, 1024).is_some());
    assert_eq!(c.on_block_read(T0, 0, 1024, 1024), None);
}

#[test]
fn choke_without_fast_drops_silently() {
    let mut c = established_with(queue_config(), false);
    for i in 0..3 {
        c.receive(T0, &request(0, i * 1024, 1024)).unwrap();
    }
    drain(&mut c);
    c.set_choke(T0, true);
    assert_eq!(sends(&drain(&mut c)), vec![SendMessage::Choke]);
    assert_eq!(c.requests_held(), 0);
}

#[test]
fn read_failure_rejects() {
    let mut c = established_with(queue_config(), true);
    c.receive(T0, &request(0, 0, 1024)).unwrap();
    drain(&mut c);
    c.on_block_read_failed(T0, 0, 0, 1024);
    assert_eq!(sends(&drain(&mut c)).len(), 1);
    assert_eq!(c.requests_held(), 0);
}

#[test]
fn interest_have_and_ignored_messages() {
    let mut c = established(true, true);
    let mut input = wire(Message::Interested);
    input.extend(wire(Message::Interested));
    input.extend(wire(Message::NotInterested));
    input.extend(wire(Message::Unchoke));
    input.extend(wire(Message::Port(6881)));
    input.extend(wire(Message::Piece {
        piece: 0,
        offset: 0,
        block: &[1, 2, 3],
    }));
    input.extend(wire(Message::Unknown {
        id: 99,
        payload: b"x",
    }));
    input.extend(wire(Message::Extended {
        id: 7,
        payload: b"x",
    }));
    assert_eq!(c.receive(T0, &input), Ok(input.len()));
    assert_eq!(
        drain(&mut c),
        vec![
            Action::PeerInterested(true),
            Action::PeerInterested(false),
            Action::PeerUnchoked
        ]
    );
    assert!(!c.peer_choking());
    assert_eq!(c.counters().blocks_received, 1);
    assert_eq!(c.counters().block_bytes_received, 3);
    c.set_interested(T0, true);
    assert!(c.am_interested());
    assert_eq!(sends(&drain(&mut c)), vec![SendMessage::Interested]);
    let mut ours = PieceBits::none(3);
    ours.set(0);
    let mut c = conn_with(Direction::Outgoing, PeerConfig::default(), ours);
    c.receive(T0, &handshake(true, false)).unwrap();
    drain(&mut c);
    c.announce_have(T0, 1);
    c.announce_have(T0, 1);
    assert_eq!(sends(&drain(&mut c)), vec![SendMessage::Have { piece: 1 }]);
    // Completing the torrent while the peer is a seed ends the connection.
    c.receive(T0, &wire(Message::HaveAll)).unwrap();
    drain(&mut c);
    c.announce_have(T0, 2);
    assert_eq!(
        drain(&mut c),
        vec![
            Action::Send(SendMessage::Have { piece: 2 }),
            Action::Disconnect(DisconnectReason::BothSeeds)
        ]
    );
}

#[test]
fn counters_count_what_is_handed_out() {
    let mut c = established(true, true);
    let control = c.counters().bytes_sent;
    assert_eq!(
        control,
        68 + 5 + (6 + c.our_extension_handshake.len() as u64) + 5
    );
    c.receive(T0, &request(0, 0, 16384)).unwrap();
    drain(&mut c);
    c.on_block_read(T0, 0, 0, 16384).unwrap();
    assert_eq!(c.counters().bytes_sent, control + 13 + 16384);
    assert_eq!(c.counters().bytes_received, 68 + 17);
    assert_eq!(c.counters().messages_received, 1);
}

#[test]
fn backpressure_stops_at_actions_max() {
    let cfg = PeerConfig {
        actions_max: 8,
        ..PeerConfig::default()
    };
    let mut c = conn_with(Direction::Outgoing, cfg, PieceBits::all(3));
    c.receive(T0, &handshake(false, false)).unwrap();
    drain(&mut c);
    let mut input = Vec::new();
    for _ in 0..10 {
        input.extend(wire(Message::Interested));
        input.extend(wire(Message::NotInterested));
    }
    let n = c.receive(T0, &input).unwrap();
    assert_eq!(n, 8 * 5);
    assert_eq!(drain(&mut c).len(), 8);
    let mut done = n;
    for _ in 0..10 {
        done += c.receive(T0, &input[done..]).unwrap();
        drain(&mut c);
    }
    assert_eq!(done, input.len());
}

#[test]
fn handshake_timeout() {
    let mut c = conn(Direction::Incoming);
    assert_eq!(c.next_timeout(), Some(secs(10)));
    assert_eq!(c.on_timer(secs(9)), Ok(()));
    assert_eq!(
        c.on_timer(secs(10)),
        Err(PeerError::HandshakeTimeout {
            waited: Duration::from_secs(10),
            limit: Duration::from_secs(10)
        })
    );
    assert!(c.is_closed());
    assert_eq!(c.on_timer(secs(11)), Ok(()));
}

#[test]
fn keepalive_and_inactivity_with_virtual_time() {
    let mut c = established(false, false);
    // Our handshake and bitfield went out at T0.
    assert_eq!(c.next_timeout(), Some(secs(60)));
    c.on_timer(secs(59)).unwrap();
    assert!(drain(&mut c).is_empty());
    c.on_timer(secs(60)).unwrap();
    assert_eq!(sends(&drain(&mut c)), vec![SendMessage::KeepAlive]);
    assert_eq!(c.next_timeout(), Some(secs(120)));
    // The peer's keep-alive counts as activity.
    c.receive(secs(100), &wire(Message::KeepAlive)).unwrap();
    c.on_timer(secs(120)).unwrap();
    assert_eq!(sends(&drain(&mut c)), vec![SendMessage::KeepAlive]);
    assert_eq!(c.next_timeout(), Some(secs(180)));
    c.on_timer(secs(180)).unwrap();
    drain(&mut c);
    assert_eq!(
        c.on_timer(secs(220)),
        Err(PeerError::Inactive {
            silent: Duration::from_secs(120),
            limit: Duration::from_secs(120)
        })
    );
}

#[test]
fn write_message_matches_the_counters() {
    let c = established(true, true);
    for m in [
        SendMessage::KeepAlive,
        SendMessage::Choke,
        SendMessage::HaveAll,
        SendMessage::Have { piece: 2 },
        SendMessage::RejectRequest {
            piece: 1,
            offset: 2,
            length: 3,
        },
        SendMessage::Bitfield,
        SendMessage::ExtensionHandshake,
        SendMessage::Handshake(Handshake {
            info_hash: IH,
            peer_id: OURS,
            reserved: [0; 8],
        }),
    ] {
        let mut out = Vec::new();
        c.write_message(&m, &mut out);
        assert_eq!(out.len(), c.encoded_len(&m), "{m:?}");
    }
}

#[test]
fn mini_fuzz_after_handshake_never_panics() {
    let mut rng = crate::rng::Rng::new(0x9e37_79b9_7f4a_7c15);
    let (mut oks, mut errs) = (0u32, 0u32);
    for round in 0..2000u32 {
        let fast = round % 2 == 0;
        let mut c = established_with(queue_config(), fast);
        let mut buf = Vec::new();
        let len = (rng.next_u64() % 200) as usize;
        for _ in 0..len {
            let r = rng.next_u64();
            // Bias towards small length prefixes and known ids.
            buf.push(if r % 4 == 0 {
                (r >> 8) as u8 % 21
            } else {
                (r >> 16) as u8
            });
        }
        let mut now = T0;
        for _ in 0..64 {
            now += Duration::from_millis(rng.next_u64() % 5000);
            match c.receive(now, &buf) {
                Ok(n) => {
                    buf.drain(..n);
                    for a in drain(&mut c) {
                        if let Action::ReadBlock {
                            piece,
                            offset,
                            length,
                        } = a
                        {
                            let _ = c.on_block_read(now, piece, offset, length);
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                Err(e) => {
                    assert!(c.is_closed(), "{e}");
                    assert_eq!(c.receive(now, &buf), Err(PeerError::Closed));
                    errs += 1;
                    break;
                }
            }
            if rng.next_u64() % 8 == 0 {
                c.set_choke(now, rng.next_u64() % 2 == 0);
            }
            let _ = c.on_timer(now);
        }
        assert!(c.requests_held() <= 4);
        if !c.is_closed() {
            oks += 1;
        }
    }
    assert!(
        oks > 0 && errs > 0,
        "both outcomes reached: {oks} ok, {errs} errors"
    );
}
