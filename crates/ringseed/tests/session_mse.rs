//! Encrypted (MSE/PE) peers against the session, in process, on loopback:
//! raw sockets run `mse::Initiator` by hand, then speak the wire through
//! the negotiated method, so every byte ringseed sends is checked after
//! decryption.
//!
//! - Two shards, one torrent each: 8 obfuscated connections per torrent
//!   (RC4 and plaintext-after-header alternating) all reach the owner,
//!   whichever shard's accept took them; an RC4 one and a plaintext one per
//!   torrent fetch a block and compare it.
//! - A torrent added while the session runs is reachable encrypted at once;
//!   a removed one is not (the responder no longer finds it).
//! - `required` closes a plaintext peer; `disabled` closes an MSE one.
//!
//! Addresses 127.0.148.x. Every read has a deadline.

#[path = "support/torrent.rs"]
mod torrent;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringseed::metainfo::Metainfo;
use ringseed::mse::{
    CryptoMethod, CryptoSet, EncryptionLevel, EncryptionMode, EncryptionPolicy, Initiator,
    InitiatorConfig, PrivateKey, Progress, Rc4Stream,
};
use ringseed::rng::Rng;
use ringseed::runtime::session::{
    AddTorrent, Mode, Session, SessionConfig, Settings, TorrentId, TorrentState,
};
use ringseed::runtime::shard::shard_of;
use ringseed::wire::{encode, Message};
use ringseed::InfoHash;
use torrent::torrent_of;

const WAIT_MAX: Duration = Duration::from_secs(20);
const BLOCK: u32 = 16 * 1024;
const PIECE_BYTES: u64 = 64 * 1024;

fn session(shards: usize, mode: EncryptionMode) -> Session {
    let config = SessionConfig {
        shards,
        listen: vec!["127.0.148.1:0".parse().unwrap()],
        pin: false,
        check_hash_threads: 1,
        ..SessionConfig::default()
    };
    let mut raw = Settings::default().to_raw();
    raw.encryption = EncryptionPolicy::both_ways(mode, EncryptionLevel::Both);
    let settings = Settings::check(raw).unwrap();
    Session::start(config, settings).unwrap_or_else(|e| panic!("session: {e}"))
}

fn seeding(s: &Session, id: TorrentId) {
    let deadline = Instant::now() + WAIT_MAX;
    while s.torrent(id).unwrap().state != TorrentState::Seeding {
        assert!(Instant::now() < deadline, "{id} never seeded");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Torrents of random data until one maps to each of two shards.
fn torrents_on_both_shards(dir: &Path) -> Vec<(Arc<Metainfo>, Vec<u8>)> {
    let mut found: [Option<(Arc<Metainfo>, Vec<u8>)>; 2] = [None, None];
    for seed in 0..64u64 {
        let data = Rng::new(seed + 100).bytes(3 * PIECE_BYTES as usize + 777);
        let m = torrent_of(dir, &format!("t{seed}.bin"), &data, PIECE_BYTES);
        let shard = shard_of(&m.info_hash, 2);
        if found[shard].is_none() {
            found[shard] = Some((m, data));
        }
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    found
        .into_iter()
        .map(|f| f.expect("a torrent per shard"))
        .collect()
}

/// One encrypted connection, as a peer would run it.
struct MsePeer {
    stream: TcpStream,
    method: CryptoMethod,
    enc: Option<Rc4Stream>,
    dec: Option<Rc4Stream>,
    /// Received and decrypted, not yet consumed.
    buf: Vec<u8>,
}

fn read_some(stream: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err("timed out".into());
    }
    stream.set_read_timeout(Some(left)).unwrap();
    let mut b = vec![0u8; 64 * 1024];
    match stream.read(&mut b) {
        Ok(0) => Err("closed".into()),
        Ok(n) => {
            b.truncate(n);
            Ok(b)
        }
        Err(e) => Err(format!("read: {e}")),
    }
}

impl MsePeer {
    /// Dials `to` from `from` and runs the handshake for `info_hash`.
    fn connect(
        from: Ipv4Addr,
        to: SocketAddr,
        info_hash: InfoHash,
        provide: CryptoSet,
        tag: u8,
    ) -> Result<MsePeer, String> {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .map_err(|e| e.to_string())?;
        socket
            .bind(&SocketAddr::from((from, 0)).into())
            .map_err(|e| e.to_string())?;
        socket
            .connect_timeout(&to.into(), WAIT_MAX)
            .map_err(|e| e.to_string())?;
        let mut stream: TcpStream = socket.into();
        let mut m = Initiator::new(InitiatorConfig {
            info_hash,
            private_key: PrivateKey([tag | 1; 20]),
            pad: vec![tag; usize::from(tag) % 200],
            encrypted_pad_len: usize::from(tag) % 3,
            provide,
            initial_payload: Vec::new(),
        })
        .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            let out = m.take_outgoing();
            stream.write_all(&out).map_err(|e| e.to_string())?;
            let data = read_some(&mut stream, deadline)?;
            match m.receive(&data).map_err(|e| e.to_string())? {
                Progress::Pending => {}
                Progress::Done => break,
            }
        }
        let e = m.established().ok_or("no outcome")?;
        Ok(MsePeer {
            stream,
            method: e.method,
            enc: e.encryptor,
            dec: e.decryptor,
            buf: e.remaining,
        })
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let mut b = bytes.to_vec();
        if let Some(enc) = self.enc.as_mut() {
            enc.apply(&mut b);
        }
        self.stream.write_all(&b).map_err(|e| e.to_string())
    }

    fn fill(&mut self, deadline: Instant) -> Result<(), String> {
        let mut b = read_some(&mut self.stream, deadline)?;
        if let Some(dec) = self.dec.as_mut() {
            dec.apply(&mut b);
        }
        self.buf.extend_from_slice(&b);
        Ok(())
    }

    /// Sends the BitTorrent handshake; returns the info-hash of the reply.
    fn bt_handshake(&mut self, info_hash: InfoHash, tag: u8) -> Result<InfoHash, String> {
        let mut hs = vec![19u8];
        hs.extend_from_slice(b"BitTorrent protocol");
        hs.extend_from_slice(&[0u8; 8]);
        hs.extend_from_slice(&info_hash.0);
        hs.extend_from_slice(&[tag; 20]);
        self.send(&hs)?;
        let deadline = Instant::now() + WAIT_MAX;
        while self.buf.len() < 68 {
            self.fill(deadline)?;
        }
        let reply: Vec<u8> = self.buf.drain(..68).collect();
        if reply[..20] != hs[..20] {
            return Err(format!("not a handshake: {:?}", &reply[..20]));
        }
        let mut h = [0u8; 20];
        h.copy_from_slice(&reply[28..48]);
        Ok(InfoHash(h))
    }

    /// The next whole message: (id, payload); keep-alives skipped.
    fn next_message(&mut self, deadline: Instant) -> Result<(u8, Vec<u8>), String> {
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
                    as usize;
                if len == 0 {
                    self.buf.drain(..4);
                    continue;
                }
                if self.buf.len() >= 4 + len {
                    let msg: Vec<u8> = self.buf.drain(..4 + len).collect();
                    return Ok((msg[4], msg[5..].to_vec()));
                }
            }
            self.fill(deadline)?;
        }
    }

    /// Interested, then (once unchoked) a request for block 0 of piece
    /// `piece`; returns the block.
    fn fetch(&mut self, piece: u32) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        encode(&Message::Interested, &mut out);
        self.send(&out)?;
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            match self.next_message(deadline)? {
                (1, _) => {
                    let mut req = Vec::new();
                    encode(
                        &Message::Request {
                            piece,
                            offset: 0,
                            length: BLOCK,
                        },
                        &mut req,
                    );
                    self.send(&req)?;
                }
                (7, p) if p.len() >= 8 && p[..4] == piece.to_be_bytes() => {
                    return Ok(p[8..].to_vec())
                }
                _ => {}
            }
        }
    }
}

#[test]
fn encrypted_peers_reach_the_owning_shard_and_get_the_right_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let s = session(2, EncryptionMode::Enabled);
    let addr = s.local_addr();
    let torrents = torrents_on_both_shards(dir.path());
    let mut ids = Vec::new();
    for (m, _) in &torrents {
        let id = s
            .add_torrent(AddTorrent::new(m.clone(), dir.path().into(), Mode::Seed))
            .unwrap();
        seeding(&s, id);
        ids.push(id);
    }
    for (k, (m, data)) in torrents.iter().enumerate() {
        for i in 0..8u8 {
            let provide = if i % 2 == 0 {
                CryptoSet::RC4
            } else {
                CryptoSet::BOTH
            };
            let from = Ipv4Addr::new(127, 0, 148, 10 + 10 * k as u8 + i);
            let tag = 16 * k as u8 + i + 1;
            let mut p = MsePeer::connect(from, addr, m.info_hash, provide, tag)
                .unwrap_or_else(|e| panic!("torrent {k} connection {i}: {e}"));
            let want = if i % 2 == 0 {
                CryptoMethod::Rc4
            } else {
                CryptoMethod::Plaintext
            };
            assert_eq!(p.method, want, "torrent {k} connection {i}");
            let named = p
                .bt_handshake(m.info_hash, tag)
                .unwrap_or_else(|e| panic!("torrent {k} connection {i}: {e}"));
            assert_eq!(named, m.info_hash, "torrent {k} connection {i}");
            if i < 2 {
                let block = p.fetch(1).unwrap_or_else(|e| panic!("torrent {k}: {e}"));
                let at = PIECE_BYTES as usize;
                assert_eq!(
                    block,
                    &data[at..at + BLOCK as usize],
                    "torrent {k} {want:?}"
                );
            }
        }
    }
    // A torrent added now is reachable at once; a removed one is not.
    let data = Rng::new(9).bytes(PIECE_BYTES as usize);
    let late = torrent_of(dir.path(), "late.bin", &data, PIECE_BYTES);
    let id = s
        .add_torrent(AddTorrent::new(late.clone(), dir.path().into(), Mode::Seed))
        .unwrap();
    seeding(&s, id);
    let from = Ipv4Addr::new(127, 0, 148, 40);
    let mut p = MsePeer::connect(from, addr, late.info_hash, CryptoSet::RC4, 40).unwrap();
    assert_eq!(p.bt_handshake(late.info_hash, 40).unwrap(), late.info_hash);
    s.remove(id, false).unwrap();
    let gone = MsePeer::connect(from, addr, late.info_hash, CryptoSet::RC4, 41);
    assert!(
        gone.is_err(),
        "a removed torrent answered its encrypted handshake"
    );
    for id in ids {
        s.remove(id, false).unwrap();
    }
    // Accepts go round the shards, so about half of the 17 connections were
    // accepted by the shard that does not own their torrent (2^-17 odds of
    // none, were it random): the hand-off path was taken.
    let report = s.stop();
    assert!(
        report.handoffs > 0,
        "no connection changed shards: {report:?}"
    );
}

#[test]
fn required_closes_plaintext_and_disabled_closes_mse() {
    let dir = tempfile::tempdir().unwrap();
    let data = Rng::new(3).bytes(PIECE_BYTES as usize);
    let m = torrent_of(dir.path(), "p.bin", &data, PIECE_BYTES);
    for mode in [EncryptionMode::Required, EncryptionMode::Disabled] {
        let s = session(1, mode);
        let addr = s.local_addr();
        let id = s
            .add_torrent(AddTorrent::new(m.clone(), dir.path().into(), Mode::Seed))
            .unwrap();
        seeding(&s, id);
        let from = Ipv4Addr::new(127, 0, 148, 50);
        // Plaintext.
        let mut plain = TcpStream::connect(addr).unwrap();
        let mut hs = vec![19u8];
        hs.extend_from_slice(b"BitTorrent protocol");
        hs.extend_from_slice(&[0u8; 8]);
        hs.extend_from_slice(&m.info_hash.0);
        hs.extend_from_slice(&[7u8; 20]);
        plain.write_all(&hs).unwrap();
        let reply = read_some(&mut plain, Instant::now() + WAIT_MAX);
        // Obfuscated.
        let mse = MsePeer::connect(from, addr, m.info_hash, CryptoSet::BOTH, 9)
            .and_then(|mut p| p.bt_handshake(m.info_hash, 9));
        match mode {
            EncryptionMode::Required => {
                assert_eq!(reply, Err("closed".to_owned()), "plaintext answered");
                assert_eq!(mse, Ok(m.info_hash));
            }
            _ => {
                assert!(reply.is_ok(), "plaintext refused: {reply:?}");
                assert!(mse.is_err(), "MSE answered with encryption disabled");
            }
        }
        s.remove(id, false).unwrap();
        s.stop();
    }
}
