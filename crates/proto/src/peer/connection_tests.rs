use super::*;
use crate::wire::Limits;
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
    // Held until the engine says it left.
    assert_eq!(c.requests_held(), 1);
    c.on_block_sent();
    assert_eq!(c.requests_held(), 0);
    assert_eq!(c.on_block_read(secs(1), 2, 0, 14464), None, "not asked");
}

#[test]
fn the_send_watermark_bounds_reads_plus_blocks_not_yet_sent() {
    let mut c = established_with(queue_config(), false);
    assert_eq!(c.read_window(), 2, "clamped to reads_in_flight_max");
    for i in 0..4 {
        c.receive(T0, &request(0, i * 1024, 1024)).unwrap();
    }
    assert_eq!(drain(&mut c).len(), 2);
    // Read, not sent: the window stays full.
    c.on_block_read(T0, 0, 0, 1024).unwrap();
    assert!(drain(&mut c).is_empty());
    c.on_block_sent();
    assert_eq!(
        drain(&mut c),
        vec![Action::ReadBlock {
            piece: 0,
            offset: 2048,
            length: 1024
        }]
    );
    // A smaller window holds further reads back; a larger one lets them go.
    c.set_read_window(1);
    c.on_block_read(T0, 0, 1024, 1024).unwrap();
    c.on_block_sent();
    assert!(
        drain(&mut c).is_empty(),
        "one read still in flight fills a window of 1"
    );
    c.set_read_window(100);
    assert_eq!(c.read_window(), 2);
    assert_eq!(drain(&mut c).len(), 1);
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
    // A block that was read and sent frees a slot and starts the next
    // queued read.
    assert!(c.on_block_read(T0, 0, 0, 1024).is_some());
    assert!(drain(&mut c).is_empty());
    c.on_block_sent();
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
    // The extended message goes up to the engine, its payload located in
    // the received bytes (the last byte here).
    assert_eq!(
        drain(&mut c),
        vec![
            Action::PeerInterested(true),
            Action::PeerInterested(false),
            Action::PeerUnchoked,
            Action::Extended {
                id: 7,
                data_at: input.len() as u32 - 1,
                length: 1
            }
        ]
    );
    assert!(!c.peer_choking());
    assert_eq!(c.counters().blocks_received, 1);
    assert_eq!(c.counters().block_bytes_received, 3);
    assert_eq!(c.counters().blocks_unrequested, 1);
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

// ---- downloading side ----

const B: u32 = 16384;

fn piece_msg(piece: u32, offset: u32, block: &[u8]) -> Vec<u8> {
    wire(Message::Piece {
        piece,
        offset,
        block,
    })
}

fn dropped(piece: u32, offset: u32, length: u32) -> Action {
    Action::RequestDropped {
        piece,
        offset,
        length,
    }
}

/// A connection where we have nothing and the peer has everything; it
/// advertised `reqq` if given and unchoked us if `unchoked`; we are
/// interested. Actions drained.
fn leeching_with(cfg: PeerConfig, fast: bool, reqq: Option<u32>, unchoked: bool) -> PeerConnection {
    let mut c = conn_with(Direction::Outgoing, cfg, PieceBits::none(3));
    assert_eq!(c.receive(T0, &handshake(fast, true)), Ok(68));
    let mut input = if fast {
        wire(Message::HaveAll)
    } else {
        wire(Message::Bitfield(PieceBits::all(3).as_bytes()))
    };
    if let Some(reqq) = reqq {
        let payload = ExtensionHandshake {
            reqq: Some(reqq),
            ..ExtensionHandshake::default()
        }
        .encode();
        input.extend(wire(Message::Extended {
            id: 0,
            payload: &payload,
        }));
    }
    if unchoked {
        input.extend(wire(Message::Unchoke));
    }
    assert_eq!(c.receive(T0, &input), Ok(input.len()));
    c.set_interested(T0, true);
    drain(&mut c);
    c
}

fn leeching(fast: bool) -> PeerConnection {
    leeching_with(PeerConfig::default(), fast, None, true)
}

#[test]
fn request_is_sent_encoded_and_outstanding() {
    let mut c = leeching(true);
    assert_eq!(c.request_slots_free(), 250);
    let sent = c.counters().bytes_sent;
    assert!(c.request(T0, 1, B, B));
    assert_eq!(c.counters().bytes_sent, sent + 17);
    assert_eq!(c.requests_outstanding(), 1);
    assert_eq!(c.request_slots_free(), 249);
    let a = drain(&mut c);
    let msg = SendMessage::Request {
        piece: 1,
        offset: B,
        length: B,
    };
    assert_eq!(a, vec![Action::Send(msg)]);
    let mut out = Vec::new();
    c.write_message(&msg, &mut out);
    assert_eq!(out, request(1, B, B));
    let cancel = SendMessage::Cancel {
        piece: 1,
        offset: B,
        length: B,
    };
    let mut out = Vec::new();
    c.write_message(&cancel, &mut out);
    assert_eq!(
        out,
        wire(Message::Cancel {
            piece: 1,
            offset: B,
            length: B
        })
    );
    assert!(c.peer_has(2));
    assert!(!c.peer_has(3));
}

#[test]
fn request_refusals() {
    // Not established.
    let mut c = conn_with(
        Direction::Outgoing,
        PeerConfig::default(),
        PieceBits::none(3),
    );
    drain(&mut c);
    assert!(!c.request(T0, 0, 0, B));
    assert!(drain(&mut c).is_empty());
    // Choked.
    let mut c = leeching_with(PeerConfig::default(), true, None, false);
    assert!(!c.request(T0, 0, 0, B));
    // Not interested.
    let mut c = leeching(true);
    c.set_interested(T0, false);
    drain(&mut c);
    assert!(!c.request(T0, 0, 0, B));
    c.set_interested(T0, true);
    drain(&mut c);
    // Out of range: no such piece, past the piece's end, empty, too large.
    assert!(!c.request(T0, 3, 0, B));
    assert!(!c.request(T0, 2, B, B));
    assert!(!c.request(T0, 0, 0, 0));
    assert!(!c.request(T0, 0, 0, 2 * B));
    assert!(drain(&mut c).is_empty());
    // Duplicate.
    assert!(c.request(T0, 0, 0, B));
    assert!(!c.request(T0, 0, 0, B));
    assert_eq!(drain(&mut c).len(), 1);
    assert_eq!(c.requests_outstanding(), 1);
    // Piece the peer lacks.
    let mut c = conn_with(
        Direction::Outgoing,
        PeerConfig::default(),
        PieceBits::none(3),
    );
    c.receive(T0, &handshake(true, false)).unwrap();
    let mut input = wire(Message::HaveNone);
    input.extend(wire(Message::Unchoke));
    c.receive(T0, &input).unwrap();
    c.set_interested(T0, true);
    drain(&mut c);
    assert!(!c.request(T0, 0, 0, B));
    // Closed.
    let mut c = leeching(true);
    assert!(c.receive(T0, &wire(Message::Have { piece: 9 })).is_err());
    assert!(!c.request(T0, 0, 0, B));
    assert_eq!(c.request_slots_free(), 250);
}

#[test]
fn request_slots_follow_config_and_peer_reqq() {
    let cfg = PeerConfig {
        requests_out_max: 2,
        ..PeerConfig::default()
    };
    let mut c = leeching_with(cfg.clone(), true, None, true);
    assert!(c.request(T0, 0, 0, B));
    assert!(c.request(T0, 0, B, B));
    assert_eq!(c.request_slots_free(), 0);
    assert!(!c.request(T0, 1, 0, B));
    assert_eq!(c.requests_outstanding(), 2);
    // The peer's reqq caps it lower.
    let mut c = leeching_with(PeerConfig::default(), true, Some(1), true);
    assert_eq!(c.request_slots_free(), 1);
    assert!(c.request(T0, 0, 0, B));
    assert!(!c.request(T0, 0, B, B));
    // A reqq of 0 counts as 1; a larger reqq leaves our own limit.
    let c = leeching_with(PeerConfig::default(), true, Some(0), true);
    assert_eq!(c.request_slots_free(), 1);
    let c = leeching_with(cfg, true, Some(500), true);
    assert_eq!(c.request_slots_free(), 2);
}

#[test]
fn block_received_data_at_within_one_call() {
    let mut c = leeching(false);
    assert!(c.request(T0, 0, 0, B));
    assert!(c.request(T0, 2, 0, 14464));
    drain(&mut c);
    let b0 = vec![0xaa; B as usize];
    let b1 = vec![0xbb; 14464];
    let mut input = wire(Message::KeepAlive);
    input.extend(piece_msg(0, 0, &b0));
    let second = input.len();
    input.extend(piece_msg(2, 0, &b1));
    assert_eq!(c.receive(secs(1), &input), Ok(input.len()));
    let a = drain(&mut c);
    assert_eq!(
        a,
        vec![
            Action::BlockReceived {
                piece: 0,
                offset: 0,
                length: B,
                data_at: 4 + 13,
            },
            Action::BlockReceived {
                piece: 2,
                offset: 0,
                length: 14464,
                data_at: (second + 13) as u32,
            },
        ]
    );
    for action in a {
        let Action::BlockReceived {
            length, data_at, ..
        } = action
        else {
            continue;
        };
        let data = &input[data_at as usize..(data_at + length) as usize];
        assert!(data.iter().all(|&x| x == data[0]) && (data[0] == 0xaa || data[0] == 0xbb));
    }
    assert_eq!(c.requests_outstanding(), 0);
    assert_eq!(c.last_block_received(), secs(1));
    assert_eq!(c.counters().blocks_received, 2);
    assert_eq!(c.counters().block_bytes_received, u64::from(B) + 14464);
    assert_eq!(c.counters().blocks_unrequested, 0);
}

#[test]
fn block_received_data_at_when_split_across_calls() {
    let mut c = leeching(true);
    assert!(c.request(T0, 1, 0, 100));
    drain(&mut c);
    let block: Vec<u8> = (0..100u8).collect();
    let mut input = wire(Message::Have { piece: 0 });
    let start = input.len();
    input.extend(piece_msg(1, 0, &block));
    // First call: the have and half of the piece message.
    let cut = start + 50;
    assert_eq!(c.receive(T0, &input[..cut]), Ok(start));
    assert!(drain(&mut c).is_empty());
    // Second call: the engine kept the unconsumed rest and appended more.
    let rest = &input[start..];
    assert_eq!(c.receive(T0, rest), Ok(rest.len()));
    let a = drain(&mut c);
    assert_eq!(
        a,
        vec![Action::BlockReceived {
            piece: 1,
            offset: 0,
            length: 100,
            data_at: 13,
        }]
    );
    assert_eq!(rest.get(13..113), Some(&block[..]));
}

#[test]
fn unrequested_or_cancelled_blocks_are_counted_and_ignored() {
    let mut c = leeching(true);
    assert!(c.request(T0, 0, 0, B));
    drain(&mut c);
    assert!(c.cancel_request(T0, 0, 0, B));
    assert_eq!(
        drain(&mut c),
        vec![Action::Send(SendMessage::Cancel {
            piece: 0,
            offset: 0,
            length: B
        })]
    );
    assert!(!c.cancel_request(T0, 0, 0, B));
    assert!(drain(&mut c).is_empty());
    let mut input = piece_msg(0, 0, &[0; B as usize]);
    input.extend(piece_msg(1, 0, &[0; 10]));
    assert_eq!(c.receive(T0, &input), Ok(input.len()));
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.counters().blocks_unrequested, 2);
    assert_eq!(c.counters().blocks_received, 2);
    assert_eq!(c.counters().block_bytes_received, u64::from(B) + 10);
    // A length mismatch is not the requested block either.
    assert!(c.request(T0, 0, 0, B));
    drain(&mut c);
    c.receive(T0, &piece_msg(0, 0, &[0; 10])).unwrap();
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.requests_outstanding(), 1);
    assert_eq!(c.counters().blocks_unrequested, 3);
}

#[test]
fn piece_message_out_of_range_is_an_error() {
    let mut c = leeching(true);
    assert_eq!(
        c.receive(T0, &piece_msg(3, 0, &[0; 4])),
        Err(PeerError::PieceOutOfRange {
            message: "piece",
            piece: 3,
            pieces: 3
        })
    );
    assert!(c.is_closed());
    let mut c = leeching(true);
    assert!(matches!(
        c.receive(T0, &piece_msg(2, 14460, &[0; 8])),
        Err(PeerError::BlockOutOfPiece {
            piece: 2,
            offset: 14460,
            length: 8,
            ..
        })
    ));
}

#[test]
fn choke_without_fast_drops_every_outstanding_request() {
    let mut c = leeching(false);
    assert!(c.request(T0, 0, 0, B));
    assert!(c.request(T0, 0, B, B));
    drain(&mut c);
    let mut input = wire(Message::Choke);
    input.extend(wire(Message::Choke));
    c.receive(T0, &input).unwrap();
    assert_eq!(
        drain(&mut c),
        vec![Action::PeerChoked, dropped(0, 0, B), dropped(0, B, B)]
    );
    assert_eq!(c.requests_outstanding(), 0);
    assert!(c.peer_choking());
    assert!(!c.request(T0, 0, 0, B));
    // Unchoke: once per change.
    let mut input = wire(Message::Unchoke);
    input.extend(wire(Message::Unchoke));
    c.receive(T0, &input).unwrap();
    assert_eq!(drain(&mut c), vec![Action::PeerUnchoked]);
    assert!(c.request(T0, 0, 0, B));
}

#[test]
fn choke_with_fast_keeps_requests_and_reject_drops_one() {
    let mut c = leeching(true);
    assert!(c.request(T0, 0, 0, B));
    assert!(c.request(T0, 0, B, B));
    drain(&mut c);
    c.receive(T0, &wire(Message::Choke)).unwrap();
    assert_eq!(drain(&mut c), vec![Action::PeerChoked]);
    assert_eq!(c.requests_outstanding(), 2);
    let reject = |piece, offset, length| {
        wire(Message::RejectRequest {
            piece,
            offset,
            length,
        })
    };
    let mut input = reject(0, B, B);
    input.extend(reject(0, B, B));
    input.extend(reject(1, 0, B));
    c.receive(T0, &input).unwrap();
    assert_eq!(drain(&mut c), vec![dropped(0, B, B)]);
    assert_eq!(c.requests_outstanding(), 1);
    // The kept request is still answered after an unchoke.
    c.receive(T0, &wire(Message::Unchoke)).unwrap();
    c.receive(T0, &piece_msg(0, 0, &[0; B as usize])).unwrap();
    assert_eq!(
        drain(&mut c),
        vec![
            Action::PeerUnchoked,
            Action::BlockReceived {
                piece: 0,
                offset: 0,
                length: B,
                data_at: 13
            }
        ]
    );
}

#[test]
fn reject_without_fast_is_an_error() {
    let mut c = leeching(false);
    assert!(c.request(T0, 0, 0, B));
    assert_eq!(
        c.receive(
            T0,
            &wire(Message::RejectRequest {
                piece: 0,
                offset: 0,
                length: B
            })
        ),
        Err(PeerError::FastNotNegotiated {
            message: "reject request"
        })
    );
    assert_eq!(c.requests_outstanding(), 0);
}

#[test]
fn not_interested_keeps_outstanding_requests() {
    let mut c = leeching(true);
    assert!(c.request(T0, 0, 0, B));
    c.set_interested(T0, false);
    assert_eq!(c.requests_outstanding(), 1);
    drain(&mut c);
    c.receive(T0, &piece_msg(0, 0, &[0; B as usize])).unwrap();
    assert!(matches!(
        drain(&mut c).as_slice(),
        [Action::BlockReceived { .. }]
    ));
}

#[test]
fn request_timeout_drops_cancels_and_snubs() {
    let mut c = leeching(true);
    assert_eq!(c.next_timeout(), Some(secs(60)));
    assert!(c.request(secs(10), 0, 0, B));
    assert!(c.request(secs(12), 0, B, B));
    drain(&mut c);
    // Measured from the oldest request.
    assert_eq!(c.next_timeout(), Some(secs(40)));
    c.receive(secs(20), &wire(Message::KeepAlive)).unwrap();
    c.on_timer(secs(39)).unwrap();
    assert!(drain(&mut c).is_empty());
    // A block moves the deadline to 30 s after it.
    c.receive(secs(30), &piece_msg(0, 0, &[0; B as usize]))
        .unwrap();
    drain(&mut c);
    assert_eq!(c.next_timeout(), Some(secs(60)));
    assert!(c.request(secs(31), 1, 0, B));
    drain(&mut c);
    c.receive(secs(59), &wire(Message::KeepAlive)).unwrap();
    c.on_timer(secs(60)).unwrap();
    assert!(c.is_snubbed());
    assert!(!c.is_closed());
    let cancel = |piece, offset| {
        Action::Send(SendMessage::Cancel {
            piece,
            offset,
            length: B,
        })
    };
    assert_eq!(
        drain(&mut c),
        vec![
            cancel(0, B),
            dropped(0, B, B),
            cancel(1, 0),
            dropped(1, 0, B)
        ]
    );
    assert_eq!(c.requests_outstanding(), 0);
    assert_eq!(c.next_timeout(), Some(secs(120)));
    // Still snubbed until a requested block arrives; late ones do not count.
    c.receive(secs(61), &piece_msg(1, 0, &[0; B as usize]))
        .unwrap();
    assert!(c.is_snubbed());
    assert!(c.request(secs(62), 1, B, B));
    c.receive(secs(63), &piece_msg(1, B, &[0; B as usize]))
        .unwrap();
    assert!(!c.is_snubbed());
    assert_eq!(c.last_block_received(), secs(63));
}

#[test]
fn large_bursts_stay_bounded_by_backpressure() {
    let cfg = PeerConfig {
        actions_max: 8,
        requests_out_max: 100,
        ..PeerConfig::default()
    };
    let mut c = leeching_with(cfg, false, None, true);
    let mut n = 0;
    for piece in 0..2 {
        for offset in (0..32768).step_by(512) {
            n += u32::from(c.request(T0, piece, offset, 512));
        }
    }
    assert_eq!(n, 100);
    drain(&mut c);
    // A choke then many answers: the choke alone may exceed actions_max,
    // and nothing after it is decoded until the engine drains.
    let mut input = wire(Message::Choke);
    for _ in 0..200 {
        input.extend(wire(Message::Unchoke));
        input.extend(wire(Message::Choke));
    }
    let mut rounds = 0;
    let mut pos = 0;
    let mut most = 0;
    while pos < input.len() && rounds < 1000 {
        let n = c.receive(T0, &input[pos..]).unwrap();
        pos += n;
        let a = drain(&mut c);
        most = most.max(a.len());
        rounds += 1;
    }
    assert_eq!(pos, input.len());
    assert_eq!(most, 101);
}

#[test]
fn our_extension_handshake_carries_port_and_yourip() {
    let mut c = conn_with(
        Direction::Outgoing,
        PeerConfig::default(),
        PieceBits::none(3),
    );
    c.set_extension_info(Some(6881), Some("127.0.0.9".parse().unwrap()), &[], None);
    let mut out = Vec::new();
    c.write_message(&SendMessage::ExtensionHandshake, &mut out);
    // length prefix, id 20, extended id 0, then the dictionary
    let h = ExtensionHandshake::parse(&out[6..]).unwrap();
    assert_eq!(h.p, Some(6881));
    assert_eq!(h.yourip, Some("127.0.0.9".parse().unwrap()));
    assert_eq!(h.reqq, Some(PeerConfig::default().requests_queued_max));
    assert!(h.v.is_some_and(|v| v.starts_with("ringseed/")));
    // Port 0 (not listening) is left out.
    c.set_extension_info(Some(0), None, &[], None);
    out.clear();
    c.write_message(&SendMessage::ExtensionHandshake, &mut out);
    let h = ExtensionHandshake::parse(&out[6..]).unwrap();
    assert_eq!((h.p, h.yourip), (None, None));
}
