//! `Torrent`: one torrent's swarm, sans-IO: its peer connections, piece
//! picker, assembly buffers, choker, announce schedule and bans.
//!
//! The shard (in `runtime/`) owns the sockets and files; it calls in with
//! what happened (a connection made, bytes received, a block read, a piece
//! written, an announce answered, the tick) and a `now`, then drains
//! [`Output`]s with [`Torrent::poll_output`] and carries them out. Nothing
//! here reads a clock, a socket or a file.
//!
//! Peers are named by [`PeerId`]: a slot and its generation. A peer the
//! engine closes (protocol breach, ban, both seeds) is cleaned up at once
//! and reported as [`Output::Close`]; one the shard finds gone (EOF, socket
//! error) is reported with [`Torrent::peer_removed`]. Calls naming a
//! peer that no longer exists are ignored, so late completions are harmless.
//!
//! Dialling: every address learnt (the user, trackers, later PEX and DHT)
//! goes into the [`PeerList`], which says when each may be dialled again
//! after a failure. Downloading or seeding, the torrent dials listed
//! addresses while it has room under `peers_per_torrent_max` and
//! `connects_in_flight_max`; a seeding torrent skips known seeds.
//!
//! Downloading: blocks are assembled in memory ([`PieceBuffers`]); a
//! complete piece is hashed here (SHA-1, a few hundred microseconds per
//! MiB) and only a good piece is written ([`Output::WritePiece`]); it counts
//! as ours, and `have` goes out, once the shard reports it written. A bad
//! piece goes back to the picker; its senders are blamed: a lone sender is
//! banned at once, others after `hash_failures_max` bad pieces, and a
//! sender whose block differs from the later good copy is banned at once.

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use super::announce::AnnounceSchedule;
use super::peer_list::{Added, PeerList, PeerSource, Retry};
use super::piece_buffers::{AssembledPiece, PieceBuffers};
use super::settings::EngineSettings;
use crate::hash::sha1;
use crate::info_hash::InfoHash;
use crate::peer::rate::RateMeter;
use crate::peer::{
    Action, Direction, PeerConnection, PeerHave, PieceBits, SetupError, TorrentShape,
};
use crate::rng::Rng;
use crate::torrent::{Bitfield, BLOCK_BYTES};
use crate::torrent::{BlockOutcome, BlockRequest, Geometry, PeerKey, PiecePicker};
use crate::tracker::{AnnounceRequest, AnnounceResponse, Event};
use crate::upload_slots::{Round, SlotCandidate, UploadSlots};
use crate::wire::PIECE_HEADER_BYTES;

/// Most addresses kept banned per torrent.
pub const BANNED_MAX: usize = 10_000;
/// Window of the per-peer rate meters that size request queues and send
/// watermarks (the allocator ranks on its own `rate_window`).
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Names one peer of a torrent: its slot and the slot's generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerId {
    pub slot: u32,
    pub generation: u32,
}

/// What the torrent needs to start.
#[derive(Debug, Clone)]
pub struct TorrentSetup {
    pub info_hash: InfoHash,
    pub piece_length: u64,
    pub total_length: u64,
    pub piece_hashes: Arc<[[u8; 20]]>,
    /// Pieces verified on disk.
    pub have: Bitfield,
    pub peer_id: [u8; 20],
    /// Our listening port, for announces.
    pub listen_port: u16,
    /// The addresses we listen on and may be known by (every family, the
    /// unspecified ones expanded by the runtime to the machine's
    /// addresses): never dialled (a tracker lists us too). Kept short by
    /// the runtime; checked by a scan.
    pub listen_addrs: Vec<SocketAddr>,
    /// The torrent has trackers to announce to.
    pub has_trackers: bool,
    /// Download missing pieces (false: only seed what we have).
    pub download: bool,
    /// Seed for the picker's and the choker's random choices.
    pub rng_seed: u64,
    /// The info dictionary's bytes, served to peers that ask (BEP 9);
    /// `None`: `ut_metadata` is not offered.
    pub metadata: Option<Arc<[u8]>>,
    /// Exchange peers with peers (BEP 11); false for private torrents.
    pub pex: bool,
}

/// Why a torrent could not start.
#[derive(Debug, Error)]
pub enum TorrentError {
    #[error(transparent)]
    Shape(#[from] crate::peer::ShapeError),
    #[error(transparent)]
    Geometry(#[from] crate::torrent::GeometryError),
    #[error(transparent)]
    Picker(#[from] crate::torrent::PickerError),
    #[error(transparent)]
    Settings(#[from] super::settings::SettingError),
    #[error("peer settings: {0}")]
    PeerConfig(#[from] crate::peer::ConfigError),
    #[error(transparent)]
    Slots(#[from] crate::upload_slots::SlotsError),
    #[error("{found} piece hashes for {expected} pieces")]
    PieceHashes { expected: u32, found: usize },
    #[error("have-bitfield of {found} bits for {expected} pieces")]
    HaveLength { expected: u32, found: usize },
}

/// Why a peer was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AddPeerError {
    #[error("{count} peers connected already, the most allowed per torrent")]
    TooMany { count: usize },
    #[error("{ip} is banned from this torrent")]
    Banned { ip: IpAddr },
    #[error("the torrent is stopping")]
    Stopping,
    #[error("cannot set up the connection: {0}")]
    Setup(String),
}

/// Why the engine closed a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    pub text: String,
    /// The peer's address is banned from now on.
    pub banned: bool,
    /// A normal end (both sides seeds), not worth a log line.
    pub routine: bool,
}

/// Something for the shard to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The peer has bytes to send: take them with [`Torrent::take_outgoing`].
    Flush { peer: PeerId },
    /// Read this block from disk, then call [`Torrent::on_block_read`].
    Read {
        peer: PeerId,
        piece: u32,
        offset: u32,
        length: u32,
    },
    /// Write this verified piece, then call [`Torrent::on_piece_written`].
    WritePiece { piece: u32, data: Arc<[u8]> },
    /// Open a connection to this address, then call [`Torrent::add_peer`]
    /// or [`Torrent::connect_failed`]. `encrypt`: the address is known to
    /// want the obfuscated (MSE) handshake; the caller's policy decides.
    Connect { addr: SocketAddr, encrypt: bool },
    /// Close this peer's socket; the engine has forgotten it already.
    Close {
        peer: PeerId,
        addr: SocketAddr,
        reason: CloseReason,
    },
    /// Announce this to the torrent's trackers, then call
    /// [`Torrent::on_announce`] (not for `stopped`).
    Announce { request: AnnounceRequest },
    /// Every piece is verified and written.
    Finished,
    /// A peer (`voter`) says it sees us at `ip` (BEP 10 `yourip`): a vote
    /// for the DHT's idea of our external address (BEP 42).
    ExternalAddress { ip: IpAddr, voter: IpAddr },
}

/// Numbers for progress displays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TorrentStats {
    pub pieces: u32,
    pub pieces_have: u32,
    pub total_length: u64,
    pub bytes_left: u64,
    pub uploaded: u64,
    pub downloaded: u64,
    pub peers: usize,
    /// Connected peers that have every piece.
    pub seeds: usize,
    /// Peers we have unchoked now.
    pub unchoked: usize,
    pub rate_up: u64,
    pub rate_down: u64,
    pub hash_failures: u64,
    pub banned: usize,
    pub finished: bool,
}

/// One connected peer as a user sees it (the daemon's peer list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    /// Pieces the peer has, of `pieces`.
    pub pieces_have: u32,
    pub pieces: u32,
    /// Payload bytes per second, over the rate window.
    pub rate_up: u64,
    pub rate_down: u64,
    /// Payload bytes over this connection.
    pub uploaded: u64,
    pub downloaded: u64,
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    pub peer_interested: bool,
    /// The connection began with the obfuscated (MSE) handshake.
    pub encrypted: bool,
    /// Its whole stream is RC4 (else plaintext after the handshake).
    pub rc4: bool,
}

#[derive(Debug)]
struct Peer {
    generation: u32,
    conn: PeerConnection,
    addr: SocketAddr,
    /// The peer-list address this connection holds (marked connected there,
    /// released when it ends): the dialled address, or for an incoming peer
    /// its listening address once its extension handshake names the port.
    listed_as: Option<SocketAddr>,
    bits: Bitfield,
    registered: bool,
    out: Vec<u8>,
    down: RateMeter,
    up: RateMeter,
    counted_down: u64,
    counted_up: u64,
    connected_at: Duration,
    hash_failures: u32,
    /// Rates over the allocator's `rate_window`, for ranking.
    rank_down: RateMeter,
    rank_up: RateMeter,
    /// When we last choked or unchoked the peer (connection time if never).
    choke_changed_at: Duration,
    /// `block_bytes_sent` when we last unchoked the peer.
    sent_at_unchoke: u64,
    /// Since when we have been asking the peer for blocks (interested and
    /// unchoked by it); `None` while we do not ask.
    asking_since: Option<Duration>,
    /// What we told the peer by PEX (boxed: only peers that speak it).
    pex: Option<Box<crate::engine::pex::PexPeerState>>,
    /// When the peer's PEX turn comes next.
    pex_next_at: Duration,
    /// The connection is obfuscated (MSE), see [`Torrent::mark_encrypted`].
    encrypted: bool,
    /// ... and RC4 after the handshake.
    rc4: bool,
}

impl Peer {
    /// Chokes or unchokes, noting when the state changed.
    fn set_choke(&mut self, now: Duration, choke: bool) {
        if self.conn.am_choking() != choke {
            self.choke_changed_at = now;
            self.sent_at_unchoke = self.conn.counters().block_bytes_sent;
        }
        self.conn.set_choke(now, choke);
    }

    /// Since when the peer has sent no block while we asked (see
    /// [`SlotCandidate::waiting_since`]).
    fn waiting_since(&self) -> Option<Duration> {
        self.asking_since
            .map(|asked| asked.max(self.conn.last_block_received()))
    }
}

/// One torrent's swarm state.
pub struct Torrent {
    /// Shared by every torrent given the same `Arc` (a shard's thousands
    /// of idle torrents hold one copy, not one each).
    settings: Arc<EngineSettings>,
    shape: TorrentShape,
    geometry: Geometry,
    piece_hashes: Arc<[[u8; 20]]>,
    picker: PiecePicker,
    buffers: PieceBuffers,
    writing: HashSet<u32>,
    /// Bytes of the pieces in `writing`.
    writing_bytes: u64,
    peer_id: [u8; 20],
    listen_port: u16,
    listen_addrs: Vec<SocketAddr>,
    download: bool,
    finished: bool,
    stopping: bool,
    slots: Vec<Option<Peer>>,
    free_slots: Vec<u32>,
    generations: Vec<u32>,
    peer_count: usize,
    /// Every address known, with its failures and state.
    peers: PeerList,
    banned: HashSet<IpAddr>,
    announce: AnnounceSchedule,
    announce_event: Option<Event>,
    tracker_id: Option<String>,
    choker: UploadSlots,
    unchoked_scratch: Vec<u64>,
    candidates_scratch: Vec<SlotCandidate>,
    /// Cap on regular slots from the global budget (`None`: no cap).
    slot_quota: Option<usize>,
    /// Peer slots chosen by the last rechoke (indexed by slot), reused.
    chosen_scratch: Vec<bool>,
    /// The latest `now` seen by `tick` (for [`Torrent::slot_demand`]).
    last_tick: Duration,
    picks: Vec<BlockRequest>,
    rng: Rng,
    outputs: VecDeque<Output>,
    next_tick: Duration,
    uploaded_closed: u64,
    downloaded: u64,
    hash_failures: u64,
    rate_up: u64,
    rate_down: u64,
    key: u32,
    /// The info dictionary, served by BEP 9 (see `torrent_ext`).
    metadata: Option<Arc<[u8]>>,
    /// PEX is on for this torrent.
    pex: bool,
}

impl Torrent {
    pub fn new(
        setup: TorrentSetup,
        settings: impl Into<Arc<EngineSettings>>,
        now: Duration,
    ) -> Result<Torrent, TorrentError> {
        let settings: Arc<EngineSettings> = settings.into();
        settings.validate()?;
        settings.peer.validate()?;
        let shape = TorrentShape::new(setup.info_hash, setup.piece_length, setup.total_length)?;
        let geometry = Geometry::new(setup.total_length, setup.piece_length)?;
        if setup.piece_hashes.len() != shape.pieces() as usize {
            return Err(TorrentError::PieceHashes {
                expected: shape.pieces(),
                found: setup.piece_hashes.len(),
            });
        }
        if setup.have.len() != shape.pieces() as usize {
            return Err(TorrentError::HaveLength {
                expected: shape.pieces(),
                found: setup.have.len(),
            });
        }
        let mut rng = Rng::new(setup.rng_seed);
        let mut picker = PiecePicker::new(geometry, &mut rng)?;
        for piece in setup.have.iter_ones() {
            picker.mark_have(piece as u32)?;
        }
        let choker = UploadSlots::new(settings.slots.clone(), rng.next_u64())?;
        let key = rng.next_u64() as u32;
        let announce = AnnounceSchedule::new(
            setup.has_trackers,
            now,
            settings.announce_retry_min,
            settings.announce_retry_max,
        );
        let finished = picker.is_finished();
        Ok(Torrent {
            buffers: PieceBuffers::new(settings.failed_pieces_remembered_max),
            settings,
            shape,
            geometry,
            piece_hashes: setup.piece_hashes,
            picker,
            writing: HashSet::new(),
            writing_bytes: 0,
            peer_id: setup.peer_id,
            listen_port: setup.listen_port,
            listen_addrs: setup.listen_addrs,
            download: setup.download,
            finished,
            stopping: false,
            slots: Vec::new(),
            free_slots: Vec::new(),
            generations: Vec::new(),
            peer_count: 0,
            peers: PeerList::new(),
            banned: HashSet::new(),
            announce,
            announce_event: None,
            tracker_id: None,
            choker,
            unchoked_scratch: Vec::new(),
            candidates_scratch: Vec::new(),
            slot_quota: None,
            chosen_scratch: Vec::new(),
            last_tick: now,
            picks: Vec::new(),
            rng,
            outputs: VecDeque::new(),
            next_tick: now,
            uploaded_closed: 0,
            downloaded: 0,
            hash_failures: 0,
            rate_up: 0,
            rate_down: 0,
            key,
            metadata: setup.metadata,
            pex: setup.pex,
        })
    }

    pub fn info_hash(&self) -> InfoHash {
        self.shape.info_hash()
    }

    /// Most bytes the runtime may keep received from one of this torrent's
    /// peers and not yet consumed by [`Torrent::receive`]: room for the
    /// largest message its connections decode (its bitfield, for a torrent of
    /// many pieces) and one receive on top, never less than
    /// [`RECEIVE_BUFFER_BYTES_MIN`](crate::limits::RECEIVE_BUFFER_BYTES_MIN)
    /// and never more than
    /// [`RECEIVE_BUFFER_BYTES_MAX`](crate::limits::RECEIVE_BUFFER_BYTES_MAX).
    /// A peer with more waiting broke the limits and should be dropped.
    pub fn receive_buffer_bytes_max(&self) -> usize {
        self.settings.peer.receive_buffer_bytes_max(&self.shape)
    }

    /// Every piece is ours.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next output to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Whether `peer` still exists.
    pub fn has_peer(&self, peer: PeerId) -> bool {
        self.peer(peer).is_some()
    }

    fn peer(&self, id: PeerId) -> Option<&Peer> {
        self.slots
            .get(id.slot as usize)?
            .as_ref()
            .filter(|p| p.generation == id.generation)
    }

    fn peer_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.slots
            .get_mut(id.slot as usize)?
            .as_mut()
            .filter(|p| p.generation == id.generation)
    }

    fn ids(&self) -> Vec<PeerId> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.as_ref().map(|p| PeerId {
                    slot: i as u32,
                    generation: p.generation,
                })
            })
            .collect()
    }

    // ---- peers coming and going ----

    /// A connection is up (incoming: its handshake named this torrent;
    /// outgoing: the connect finished). For an incoming one, feed the bytes
    /// received so far with [`Torrent::receive`] next.
    pub fn add_peer(
        &mut self,
        now: Duration,
        addr: SocketAddr,
        direction: Direction,
    ) -> Result<PeerId, AddPeerError> {
        let added = self.add_peer_inner(now, addr, direction);
        match (&added, direction) {
            (Ok(id), Direction::Outgoing) => {
                self.peers.connected(&addr);
                if let Some(p) = self.peer_mut(*id) {
                    p.listed_as = Some(addr);
                }
            }
            (Ok(id), Direction::Incoming) => {
                if self.peers.claim(&addr) {
                    if let Some(p) = self.peer_mut(*id) {
                        p.listed_as = Some(addr);
                    }
                }
            }
            (Err(_), Direction::Outgoing) => self.peers.dial_abandoned(&addr),
            (Err(_), Direction::Incoming) => {}
        }
        added
    }

    fn add_peer_inner(
        &mut self,
        now: Duration,
        addr: SocketAddr,
        direction: Direction,
    ) -> Result<PeerId, AddPeerError> {
        if self.stopping {
            return Err(AddPeerError::Stopping);
        }
        if self.banned.contains(&addr.ip()) {
            return Err(AddPeerError::Banned { ip: addr.ip() });
        }
        if self.peer_count >= self.settings.peers_per_torrent_max {
            return Err(AddPeerError::TooMany {
                count: self.peer_count,
            });
        }
        let ours = PieceBits::from_wire(self.shape.pieces(), self.picker.have().as_bytes())
            .unwrap_or_else(|| PieceBits::none(self.shape.pieces()));
        let conn = PeerConnection::new(
            self.settings.peer.clone(),
            self.shape,
            direction,
            self.peer_id,
            ours,
            now,
        )
        .map_err(|e: SetupError| AddPeerError::Setup(e.to_string()))?;
        let mut conn = conn;
        let (m, metadata_size) = self.offered_extensions();
        conn.set_extension_info(Some(self.listen_port), Some(addr.ip()), &m, metadata_size);
        let bits = Bitfield::new(self.shape.pieces() as usize)
            .map_err(|e| AddPeerError::Setup(e.to_string()))?;
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.generations.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        let generation = self
            .generations
            .get(slot as usize)
            .copied()
            .unwrap_or(0)
            .wrapping_add(1);
        if let Some(g) = self.generations.get_mut(slot as usize) {
            *g = generation;
        }
        let peer = Peer {
            generation,
            conn,
            addr,
            listed_as: None,
            bits,
            registered: false,
            out: Vec::new(),
            down: RateMeter::new(RATE_WINDOW),
            up: RateMeter::new(RATE_WINDOW),
            counted_down: 0,
            counted_up: 0,
            connected_at: now,
            hash_failures: 0,
            rank_down: RateMeter::new(self.settings.slots.rate_window),
            rank_up: RateMeter::new(self.settings.slots.rate_window),
            choke_changed_at: now,
            sent_at_unchoke: 0,
            asking_since: None,
            pex: None,
            pex_next_at: now,
            encrypted: false,
            rc4: false,
        };
        if let Some(s) = self.slots.get_mut(slot as usize) {
            *s = Some(peer);
        }
        self.peer_count += 1;
        let id = PeerId { slot, generation };
        // An outgoing connection queued its handshake.
        self.drain(now, id, &[], 0);
        Ok(id)
    }

    /// An outgoing connect failed at `now`: returns when the address will
    /// be dialled again (for the log). A report about an address that was
    /// not being dialled (late, or after a stop) is ignored.
    pub fn connect_failed(&mut self, now: Duration, addr: SocketAddr) -> Retry {
        if self.stopping {
            self.peers.dial_abandoned(&addr);
            return Retry::Unknown;
        }
        let policy = self.settings.retry_policy();
        let retry = self.peers.dial_failed(&addr, now, &policy);
        self.connect_more(now);
        retry
    }

    /// A dial of `addr` ended because the peer refused the handshake's
    /// form (it hung up on our plaintext handshake, or our obfuscated one
    /// failed): report the failure first ([`Torrent::connect_failed`] or
    /// [`Torrent::peer_removed`]), then this; the other form is tried next
    /// (see `PeerList::switch_handshake`). Returns the form now preferred.
    pub fn switch_handshake(&mut self, now: Duration, addr: SocketAddr) -> Option<bool> {
        if self.stopping {
            return None;
        }
        let encrypt = self.peers.switch_handshake(&addr, now);
        self.connect_more(now);
        encrypt
    }

    /// The connection of `peer` is obfuscated (MSE; `rc4`: the whole
    /// stream): PEX tells others it prefers encryption, and the peer list
    /// shows it.
    pub fn mark_encrypted(&mut self, peer: PeerId, rc4: bool) {
        if let Some(p) = self.peer_mut(peer) {
            p.encrypted = true;
            p.rc4 = rc4;
        }
    }

    /// The shard found `peer` gone (EOF, socket error, shutdown).
    pub fn peer_removed(&mut self, now: Duration, peer: PeerId) {
        self.forget(now, peer, false);
    }

    /// The known address list (for tests and displays).
    pub fn peer_list(&self) -> &PeerList {
        &self.peers
    }

    /// Drops `id` from the tables; its address goes back to the peer list
    /// (`routine`: a normal end, not counted as a failure).
    fn forget(&mut self, now: Duration, id: PeerId, routine: bool) -> Option<Peer> {
        let slot = self.slots.get_mut(id.slot as usize)?;
        if slot.as_ref().map(|p| p.generation) != Some(id.generation) {
            return None;
        }
        let p = slot.take()?;
        let counters = p.conn.counters();
        let useful = counters.block_bytes_sent > 0 || counters.block_bytes_received > 0;
        let seed = p.bits.all() || p.conn.peer_pieces().is_all();
        let policy = self.settings.retry_policy();
        if let Some(listed) = p.listed_as {
            self.peers
                .disconnected(&listed, now, seed, useful, routine, &policy);
        }
        self.free_slots.push(id.slot);
        self.peer_count = self.peer_count.saturating_sub(1);
        self.uploaded_closed += p.conn.counters().block_bytes_sent;
        let key = PeerKey(id.slot);
        self.picker.peer_disconnected(key);
        self.buffers.peer_gone(key);
        if p.registered {
            let _ = self.picker.peer_lost(&p.bits);
        }
        // Pieces whose blocks went back to the picker keep their buffers:
        // the blocks already received stay valid.
        Some(p)
    }

    fn close(&mut self, now: Duration, id: PeerId, text: String, ban: bool) {
        self.close_with(now, id, text, ban, false);
    }

    fn close_with(&mut self, now: Duration, id: PeerId, text: String, ban: bool, routine: bool) {
        let Some(p) = self.forget(now, id, routine) else {
            return;
        };
        if ban {
            self.peers.remove_ip(p.addr.ip());
            if self.banned.len() < BANNED_MAX {
                self.banned.insert(p.addr.ip());
            }
        }
        self.outputs.push_back(Output::Close {
            peer: id,
            addr: p.addr,
            reason: CloseReason {
                text,
                banned: ban,
                routine,
            },
        });
    }

    /// The bytes `peer` has to send, appended to `out`.
    pub fn take_outgoing(&mut self, peer: PeerId, out: &mut Vec<u8>) {
        if let Some(p) = self.peer_mut(peer) {
            out.append(&mut p.out);
        }
    }

    // ---- input ----

    /// Bytes received from `peer` (everything not consumed yet). Returns how
    /// many were consumed; keep the rest. Drains every output the bytes
    /// cause before returning, so the caller may then drop consumed bytes.
    pub fn receive(&mut self, now: Duration, peer: PeerId, bytes: &[u8]) -> usize {
        let mut consumed = 0;
        // Each round consumes at least one byte or stops; the bound is a
        // second guard.
        for _ in 0..=bytes.len() {
            let Some(p) = self.peer_mut(peer) else {
                break;
            };
            let rest = bytes.get(consumed..).unwrap_or_default();
            if rest.is_empty() {
                break;
            }
            match p.conn.receive(now, rest) {
                Ok(n) => {
                    let base = consumed;
                    consumed += n;
                    self.drain(now, peer, bytes, base);
                    if n == 0 {
                        break;
                    }
                }
                Err(e) => {
                    self.drain(now, peer, bytes, consumed);
                    self.close(now, peer, e.to_string(), false);
                    break;
                }
            }
        }
        self.fill_requests(now, peer);
        consumed
    }

    /// Handles every action `peer`'s connection queued. `bytes[base..]` is
    /// the slice the last `receive` call saw (block data lives there).
    fn drain(&mut self, now: Duration, id: PeerId, bytes: &[u8], base: usize) {
        let mut fill = false;
        loop {
            let Some(p) = self.peer_mut(id) else {
                return;
            };
            let Some(action) = p.conn.poll_action() else {
                break;
            };
            match action {
                Action::Send(msg) => {
                    let was_empty = p.out.is_empty();
                    p.conn.write_message(&msg, &mut p.out);
                    if was_empty && !p.out.is_empty() {
                        self.outputs.push_back(Output::Flush { peer: id });
                    }
                }
                Action::ReadBlock {
                    piece,
                    offset,
                    length,
                } => self.outputs.push_back(Output::Read {
                    peer: id,
                    piece,
                    offset,
                    length,
                }),
                Action::HandshakeDone { .. } => {}
                Action::ExtensionHandshake => {
                    self.on_listen_port(now, id);
                    self.on_extension_handshake(now, id);
                }
                Action::Extended {
                    id: ext,
                    data_at,
                    length,
                } => {
                    let start = base + data_at as usize;
                    let payload = bytes
                        .get(start..start + length as usize)
                        .unwrap_or_default();
                    self.on_extended(now, id, ext, payload);
                }
                Action::PeerInterested(on) => {
                    if on {
                        self.unchoke_if_room(now, id);
                    }
                }
                Action::PeerHave(h) => {
                    self.on_peer_have(now, id, h);
                    fill = true;
                }
                Action::Disconnect(reason) => {
                    self.close_with(now, id, format!("{reason:?}"), false, true);
                    return;
                }
                Action::BlockReceived {
                    piece,
                    offset,
                    length,
                    data_at,
                } => {
                    let start = base + data_at as usize;
                    let data = bytes
                        .get(start..start + length as usize)
                        .unwrap_or_default();
                    self.on_block(now, id, piece, offset, data);
                    fill = true;
                }
                Action::RequestDropped {
                    piece,
                    offset,
                    length,
                } => {
                    let b = BlockRequest {
                        piece,
                        offset,
                        length,
                    };
                    let _ = self.picker.request_cancelled(PeerKey(id.slot), &b);
                    fill = true;
                }
                Action::PeerChoked => {}
                Action::PeerUnchoked => fill = true,
            }
        }
        if fill {
            self.fill_requests(now, id);
        }
    }

    /// An incoming peer named its listening port (extension handshake `p`):
    /// its listening address is listed and held as connected, so it is not
    /// dialled while this connection lasts, and learnt for later.
    fn on_listen_port(&mut self, now: Duration, id: PeerId) {
        let Some(p) = self.peer(id) else {
            return;
        };
        if p.listed_as.is_some() {
            return;
        }
        let port = p
            .conn
            .peer_extensions()
            .and_then(|e| e.p)
            .filter(|&p| p != 0);
        let Some(port) = port else {
            return;
        };
        let listen = SocketAddr::new(p.addr.ip(), port);
        if self.is_own_address(listen) || self.stopping {
            return;
        }
        let policy = self.settings.retry_policy();
        let _ = self
            .peers
            .add(listen, PeerSource::Incoming, false, now, &policy);
        if self.peers.claim(&listen) {
            if let Some(p) = self.peer_mut(id) {
                p.listed_as = Some(listen);
            }
        }
    }

    fn on_peer_have(&mut self, now: Duration, id: PeerId, h: PeerHave) {
        let download = self.download && !self.finished;
        let Some(p) = self
            .slots
            .get_mut(id.slot as usize)
            .and_then(|s| s.as_mut())
        else {
            return;
        };
        let interesting = match h {
            PeerHave::Bitfield => {
                let Ok(theirs) =
                    Bitfield::from_bytes(p.conn.peer_pieces().as_bytes(), p.bits.len())
                else {
                    return;
                };
                if !p.registered {
                    p.bits = theirs;
                    p.registered = true;
                    if p.bits.all() {
                        let _ = self.picker.peer_has_all();
                    } else {
                        let _ = self.picker.peer_bitfield(&p.bits);
                    }
                } else {
                    // A later bitfield (aria2): register only what is new.
                    let fresh: Vec<usize> =
                        theirs.iter_ones().filter(|&i| !p.bits.get(i)).collect();
                    for i in fresh {
                        if p.bits.set(i).unwrap_or(false) {
                            let _ = self.picker.peer_has(i as u32, &p.bits);
                        }
                    }
                }
                Bitfield::interesting(self.picker.have(), &p.bits)
            }
            PeerHave::All => {
                if p.registered && !p.bits.all() {
                    let _ = self.picker.peer_lost(&p.bits);
                }
                if !(p.registered && p.bits.all()) {
                    p.bits.set_all();
                    p.registered = true;
                    let _ = self.picker.peer_has_all();
                }
                !self.picker.is_finished()
            }
            PeerHave::None => false,
            PeerHave::Piece(i) => {
                if p.bits.set(i as usize).unwrap_or(false) {
                    p.registered = true;
                    let _ = self.picker.peer_has(i, &p.bits);
                }
                !self.picker.have().get(i as usize)
            }
        };
        if download && interesting && !p.conn.am_interested() {
            p.conn.set_interested(now, true);
        }
    }

    fn on_block(&mut self, now: Duration, id: PeerId, piece: u32, offset: u32, data: &[u8]) {
        let length = data.len() as u32;
        let block = BlockRequest {
            piece,
            offset,
            length,
        };
        let key = PeerKey(id.slot);
        let outcome = match self.picker.block_received(key, &block) {
            Ok(o) => o,
            Err(_) => return,
        };
        let BlockOutcome::New { cancel } = outcome else {
            return;
        };
        let piece_size = self.geometry.piece_size(piece);
        if self
            .buffers
            .store(piece, piece_size, offset, data, key)
            .is_err()
        {
            return;
        }
        for other in cancel.iter() {
            let other_id = self.slots.get(other.0 as usize).and_then(|s| {
                s.as_ref().map(|p| PeerId {
                    slot: other.0,
                    generation: p.generation,
                })
            });
            if let Some(oid) = other_id {
                if let Some(p) = self.peer_mut(oid) {
                    p.conn.cancel_request(now, piece, offset, length);
                }
                self.drain(now, oid, &[], 0);
            }
        }
        if self.picker.piece_complete(piece) && !self.writing.contains(&piece) {
            self.verify_piece(now, piece);
        }
    }

    fn verify_piece(&mut self, now: Duration, piece: u32) {
        let Some(assembled) = self.buffers.take(piece) else {
            return;
        };
        let expected = self.piece_hashes.get(piece as usize).copied();
        if Some(sha1(&assembled.data)) == expected {
            for bad in self.buffers.proven_bad(piece, &assembled.data) {
                self.ban_slot(now, bad.0, format!("sent bad data in piece {piece}"));
            }
            self.writing.insert(piece);
            self.writing_bytes += assembled.data.len() as u64;
            self.outputs.push_back(Output::WritePiece {
                piece,
                data: Arc::from(assembled.data),
            });
            return;
        }
        self.hash_failures += 1;
        let _ = self.picker.piece_verified(piece, false);
        // Remembered first: a peer banned by `blame` is then forgotten from
        // the record too, before its slot can name someone else.
        self.buffers.remember_failure(&assembled);
        self.blame(now, &assembled);
    }

    fn blame(&mut self, now: Duration, failed: &AssembledPiece) {
        let mut senders: Vec<u32> = failed.senders.iter().flatten().map(|k| k.0).collect();
        senders.sort_unstable();
        senders.dedup();
        let piece = failed.piece;
        // A block whose sender is gone (its slot may be someone else's now)
        // leaves the piece with more than one possible culprit.
        let anonymous = failed.senders.iter().any(Option::is_none);
        if let ([only], false) = (&senders[..], anonymous) {
            let only = *only;
            self.ban_slot(
                now,
                only,
                format!("sent piece {piece}, which failed its hash check"),
            );
            return;
        }
        let max = self.settings.hash_failures_max;
        for slot in senders {
            let Some(p) = self.slots.get_mut(slot as usize).and_then(|s| s.as_mut()) else {
                continue;
            };
            p.hash_failures += 1;
            if p.hash_failures >= max {
                let n = p.hash_failures;
                self.ban_slot(
                    now,
                    slot,
                    format!("took part in {n} pieces that failed their hash check"),
                );
            }
        }
    }

    fn ban_slot(&mut self, now: Duration, slot: u32, why: String) {
        let Some(generation) = self
            .slots
            .get(slot as usize)
            .and_then(|s| s.as_ref().map(|p| p.generation))
        else {
            return;
        };
        self.close(now, PeerId { slot, generation }, why, true);
    }

    /// The disk read of a block `peer` asked for is done: returns the piece
    /// header to send before the block, or `None` to drop the block.
    pub fn on_block_read(
        &mut self,
        now: Duration,
        peer: PeerId,
        piece: u32,
        offset: u32,
        length: u32,
    ) -> Option<[u8; PIECE_HEADER_BYTES]> {
        let p = self.peer_mut(peer)?;
        let header = p.conn.on_block_read(now, piece, offset, length);
        self.drain(now, peer, &[], 0);
        header
    }

    /// `blocks` blocks handed out by `on_block_read` have been sent (or
    /// dropped): the peer's send watermark has room again.
    pub fn on_blocks_sent(&mut self, now: Duration, peer: PeerId, blocks: u32) {
        if let Some(p) = self.peer_mut(peer) {
            for _ in 0..blocks {
                p.conn.on_block_sent();
            }
            self.drain(now, peer, &[], 0);
        }
    }

    /// The block could not be read.
    pub fn on_block_read_failed(
        &mut self,
        now: Duration,
        peer: PeerId,
        piece: u32,
        offset: u32,
        length: u32,
    ) {
        if let Some(p) = self.peer_mut(peer) {
            p.conn.on_block_read_failed(now, piece, offset, length);
            self.drain(now, peer, &[], 0);
        }
    }

    /// A verified piece reached the disk (`ok`), or could not be written.
    pub fn on_piece_written(&mut self, now: Duration, piece: u32, ok: bool) {
        if !self.writing.remove(&piece) {
            return;
        }
        self.writing_bytes = self
            .writing_bytes
            .saturating_sub(u64::from(self.geometry.piece_size(piece)));
        if !ok {
            // Download it again; nobody is blamed for our disk.
            let _ = self.picker.piece_verified(piece, false);
            return;
        }
        if self.picker.piece_verified(piece, true).is_err() {
            return;
        }
        self.downloaded += u64::from(self.geometry.piece_size(piece));
        let finished = self.picker.is_finished();
        if finished && !self.finished {
            self.finished = true;
            // `completed` goes out now, before the shard hears `Finished`
            // (a download that stops at once still owes it: see `stop`).
            self.announce.completed(now);
            self.announce_if_due(now);
            self.outputs.push_back(Output::Finished);
        }
        for id in self.ids() {
            let have = self.picker.have();
            if let Some(Some(p)) = self.slots.get_mut(id.slot as usize) {
                p.conn.announce_have(now, piece);
                if p.conn.am_interested() && (finished || !Bitfield::interesting(have, &p.bits)) {
                    p.conn.set_interested(now, false);
                }
            }
            self.drain(now, id, &[], 0);
            // A completed write may have made room under the memory limit.
            self.fill_requests(now, id);
        }
    }

    // ---- requests ----

    fn fill_requests(&mut self, now: Duration, id: PeerId) {
        if !self.download || self.finished || self.stopping {
            return;
        }
        // Backpressure from the disk: pieces in memory are bounded.
        if self.buffers.bytes() + self.writing_bytes >= self.settings.download_memory_max_bytes {
            return;
        }
        let queue_time = self.settings.request_queue_time;
        let min = self.settings.requests_per_peer_min;
        let Some(p) = self
            .slots
            .get_mut(id.slot as usize)
            .and_then(|s| s.as_mut())
            .filter(|p| p.generation == id.generation)
        else {
            return;
        };
        if !p.conn.is_established() || p.conn.peer_choking() || !p.conn.am_interested() {
            return;
        }
        let rate = p.down.rate(now);
        let by_rate =
            (rate as u128 * queue_time.as_millis() / 1000 / u128::from(BLOCK_BYTES)) as usize;
        let target = by_rate.max(min);
        let outstanding = p.conn.requests_outstanding();
        let want = target
            .saturating_sub(outstanding)
            .min(p.conn.request_slots_free());
        if want == 0 {
            return;
        }
        self.picks.clear();
        let key = PeerKey(id.slot);
        if self
            .picker
            .pick_blocks(key, &p.bits, want, &mut self.picks, &mut self.rng)
            .is_err()
        {
            return;
        }
        for b in self.picks.iter() {
            if !p.conn.request(now, b.piece, b.offset, b.length) {
                let _ = self.picker.request_cancelled(key, b);
            }
        }
        self.drain(now, id, &[], 0);
    }

    // ---- choking ----

    /// How many regular upload slots this torrent would use now if the
    /// global budget did not cap it: its interested, unsnubbed peers, capped
    /// by its per-torrent slot setting (unchoke-all: every interested peer).
    /// The shard reports this as the torrent's demand for global slots.
    pub fn slot_demand(&self) -> usize {
        let seeding = self.is_seeding();
        let now = self.last_tick;
        let snub_time = self.settings.slots.snub_time;
        let wanting = self
            .slots
            .iter()
            .flatten()
            .filter(|p| p.conn.peer_interested())
            .filter(|p| {
                seeding
                    || p.waiting_since()
                        .is_none_or(|t| now.saturating_sub(t) < snub_time)
            })
            .count();
        match self.choker.slot_limit() {
            Some(limit) => wanting.min(limit),
            None => wanting,
        }
    }

    fn is_seeding(&self) -> bool {
        self.finished || !self.download
    }

    /// Caps this torrent's regular slots at `quota` from the next rechoke on
    /// (`None`: no global cap, only the per-torrent setting). A quota of 0
    /// is treated as 1 while any peer is interested: a torrent's upload is
    /// never starved completely.
    pub fn set_slot_quota(&mut self, quota: Option<usize>) {
        self.slot_quota = quota;
    }

    /// The cap set by [`Torrent::set_slot_quota`].
    pub fn slot_quota(&self) -> Option<usize> {
        self.slot_quota
    }

    fn unchoked_count(&self) -> usize {
        self.slots
            .iter()
            .flatten()
            .filter(|p| !p.conn.am_choking())
            .count()
    }

    fn unchoke_if_room(&mut self, now: Duration, id: PeerId) {
        let room = self.unchoked_count() < self.choker.room(self.slot_quota);
        if let Some(p) = self.peer_mut(id) {
            if room && p.conn.am_choking() {
                p.set_choke(now, false);
            }
        }
    }

    fn rechoke(&mut self, now: Duration) {
        let round = Round {
            now,
            seeding: self.is_seeding(),
            quota: self.slot_quota,
            piece_length: u64::from(self.geometry.piece_length()),
            pieces_total: self.shape.pieces(),
        };
        self.candidates_scratch.clear();
        for (i, p) in self.slots.iter_mut().enumerate() {
            let Some(p) = p else { continue };
            let unchoked = !p.conn.am_choking();
            let sent = p.conn.counters().block_bytes_sent;
            self.candidates_scratch.push(SlotCandidate {
                peer: i as u64,
                interested: p.conn.peer_interested(),
                rate_from_peer: p.rank_down.rate(now),
                rate_to_peer: p.rank_up.rate(now),
                waiting_since: p.waiting_since(),
                unchoked,
                choke_changed_at: p.choke_changed_at,
                bytes_sent_since_unchoke: if unchoked {
                    sent.saturating_sub(p.sent_at_unchoke)
                } else {
                    0
                },
                pieces_have: p.bits.count_ones() as u32,
                priority: 0,
                connected_at: p.connected_at,
            });
        }
        self.choker
            .rechoke(&round, &self.candidates_scratch, &mut self.unchoked_scratch);
        self.chosen_scratch.clear();
        self.chosen_scratch.resize(self.slots.len(), false);
        for &peer in &self.unchoked_scratch {
            if let Some(c) = usize::try_from(peer)
                .ok()
                .and_then(|i| self.chosen_scratch.get_mut(i))
            {
                *c = true;
            }
        }
        for slot in 0..self.slots.len() {
            let chosen = self.chosen_scratch.get(slot).copied().unwrap_or(false);
            let Some(Some(p)) = self.slots.get_mut(slot) else {
                continue;
            };
            p.set_choke(now, !chosen);
            let id = PeerId {
                slot: slot as u32,
                generation: p.generation,
            };
            self.drain(now, id, &[], 0);
        }
    }

    // ---- time ----

    /// When [`Torrent::tick`] should next run.
    pub fn next_tick(&self) -> Duration {
        self.next_tick
    }

    /// Housekeeping: timeouts, rates, choking, announces, connects.
    pub fn tick(&mut self, now: Duration) {
        self.next_tick = now.saturating_add(self.settings.tick_interval);
        self.last_tick = now;
        let mut up = 0;
        let mut down = 0;
        let watermark_ms = self.settings.send_watermark_time.as_millis();
        let watermark_min = self.settings.send_watermark_min_blocks;
        for id in self.ids() {
            let Some(p) = self.peer_mut(id) else { continue };
            let c = *p.conn.counters();
            p.down
                .add(now, c.block_bytes_received.saturating_sub(p.counted_down));
            p.up.add(now, c.block_bytes_sent.saturating_sub(p.counted_up));
            p.rank_down
                .add(now, c.block_bytes_received.saturating_sub(p.counted_down));
            p.rank_up
                .add(now, c.block_bytes_sent.saturating_sub(p.counted_up));
            let asking = p.conn.am_interested() && !p.conn.peer_choking();
            p.asking_since = if asking {
                p.asking_since.or(Some(now))
            } else {
                None
            };
            p.counted_down = c.block_bytes_received;
            p.counted_up = c.block_bytes_sent;
            up += p.up.rate(now);
            down += p.down.rate(now);
            // Send watermark: about `send_watermark_time` of the peer's rate.
            let window =
                (p.up.rate(now) as u128 * watermark_ms / 1000 / u128::from(BLOCK_BYTES)) as u32;
            p.conn.set_read_window(window.max(watermark_min));
            if let Err(e) = p.conn.on_timer(now) {
                self.drain(now, id, &[], 0);
                self.close(now, id, e.to_string(), false);
                continue;
            }
            self.drain(now, id, &[], 0);
            self.fill_requests(now, id);
        }
        self.rate_up = up;
        self.rate_down = down;
        if now >= self.choker.next_rechoke() {
            self.rechoke(now);
        }
        self.send_pex(now);
        self.announce_if_due(now);
        self.connect_more(now);
    }

    fn announce_if_due(&mut self, now: Duration) {
        if let Some(event) = self.announce.due(now) {
            self.announce_event = event;
            let request = self.announce_request(event);
            self.outputs.push_back(Output::Announce { request });
        }
    }

    /// Dials listed addresses while there is room: downloading or seeding
    /// (a seeding torrent skips known seeds), at most
    /// `connects_in_flight_max` dials at once and `peers_per_torrent_max`
    /// peers and dials together.
    fn connect_more(&mut self, now: Duration) {
        if self.stopping {
            return;
        }
        let seeding = self.is_seeding();
        while self.peers.connecting() < self.settings.connects_in_flight_max
            && self.peer_count + self.peers.connecting() < self.settings.peers_per_torrent_max
        {
            let Some(addr) = self.peers.next_to_dial(now, seeding) else {
                break;
            };
            let encrypt = self.peers.get(&addr).is_some_and(|e| e.encrypt);
            self.outputs.push_back(Output::Connect { addr, encrypt });
        }
    }

    /// One of the addresses we listen on (we would dial ourselves).
    fn is_own_address(&self, addr: SocketAddr) -> bool {
        self.listen_addrs.contains(&addr)
    }

    /// Adds addresses to dial, learnt from `source` (a tracker, the user,
    /// later DHT and PEX); returns how many were new. Our own address,
    /// banned addresses and addresses past `peer_addresses_max` are left
    /// out.
    pub fn add_addresses(
        &mut self,
        now: Duration,
        addrs: &[SocketAddr],
        source: PeerSource,
    ) -> usize {
        let mut added = 0;
        for &a in addrs {
            match self.learn(now, a, source, false) {
                Some(Added::New) => added += 1,
                Some(Added::Full) => break,
                Some(Added::Known) | None => {}
            }
        }
        self.connect_more(now);
        added
    }

    /// Adds one address that `source` says is (`seed`) or is not a seed;
    /// a seeding torrent never dials a seed. Returns whether it was new.
    pub fn add_address(
        &mut self,
        now: Duration,
        addr: SocketAddr,
        source: PeerSource,
        seed: bool,
    ) -> bool {
        let added = self.learn(now, addr, source, seed) == Some(Added::New);
        self.connect_more(now);
        added
    }

    fn learn(
        &mut self,
        now: Duration,
        addr: SocketAddr,
        source: PeerSource,
        seed: bool,
    ) -> Option<Added> {
        if self.stopping || self.is_own_address(addr) || self.banned.contains(&addr.ip()) {
            return None;
        }
        let policy = self.settings.retry_policy();
        Some(self.peers.add(addr, source, seed, now, &policy))
    }

    fn announce_request(&self, event: Option<Event>) -> AnnounceRequest {
        let left = self
            .geometry
            .total_length()
            .saturating_sub(self.bytes_have());
        AnnounceRequest {
            uploaded: self.uploaded(),
            downloaded: self.downloaded,
            left,
            event,
            numwant: Some(self.settings.announce_numwant),
            key: Some(self.key),
            tracker_id: self.tracker_id.clone(),
            ..AnnounceRequest::new(self.shape.info_hash(), self.peer_id, self.listen_port)
        }
    }

    /// A tracker answered the last announce (or every tracker failed, with
    /// the reason).
    pub fn on_announce(&mut self, now: Duration, result: Result<AnnounceResponse, String>) {
        let event = self.announce_event.take();
        match result {
            Ok(r) => {
                self.announce.on_success(now, event, r.next_announce_in());
                if r.tracker_id.is_some() {
                    self.tracker_id = r.tracker_id.clone();
                }
                self.add_addresses(now, &r.peers, PeerSource::Tracker);
            }
            Err(message) => self.announce.on_failure(now, message),
        }
    }

    /// Announces now ("force reannounce"), unless one is in flight (it is
    /// not doubled), the torrent has no trackers, or it is stopping. The
    /// request comes out as [`Output::Announce`]; returns whether one did.
    pub fn reannounce(&mut self, now: Duration) -> bool {
        if self.stopping || !self.announce.reannounce(now) {
            return false;
        }
        let before = self.outputs.len();
        self.announce_if_due(now);
        self.outputs.len() > before
    }

    /// The last tracker failure, until a tracker answers again.
    pub fn tracker_error(&self) -> Option<&str> {
        self.announce.last_error()
    }

    /// The pieces verified and written.
    pub fn have(&self) -> &Bitfield {
        self.picker.have()
    }

    /// The settings in force.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// New settings, in force from now: limits and timings at once (a
    /// lower peer limit refuses new peers; connected ones stay), the
    /// per-connection protocol settings for peers that connect from now on,
    /// and a changed choker policy with a fresh allocator whose first round
    /// is the next tick. Refused whole when a value is out of range.
    pub fn apply_settings(
        &mut self,
        settings: impl Into<Arc<EngineSettings>>,
    ) -> Result<(), TorrentError> {
        let settings: Arc<EngineSettings> = settings.into();
        settings.validate()?;
        if settings.slots != self.settings.slots {
            self.choker = UploadSlots::new(settings.slots.clone(), self.rng.next_u64())?;
        }
        self.settings = settings;
        Ok(())
    }

    /// Stops the torrent: no new connections or requests; returns the
    /// announces still owed, to be sent in this order and answered by
    /// nobody: `completed` when the download finished and no tracker has it
    /// yet, then `stopped`. The shard closes the sockets and calls
    /// [`Torrent::peer_removed`] for each.
    pub fn stop(&mut self) -> Vec<AnnounceRequest> {
        self.stopping = true;
        self.peers.clear();
        let owed = self.announce.stop();
        let mut out = Vec::new();
        if owed.completed {
            out.push(self.announce_request(Some(Event::Completed)));
        }
        if owed.stopped {
            out.push(self.announce_request(Some(Event::Stopped)));
        }
        out
    }

    /// Ids of every connected peer (for shutdown).
    pub fn peer_ids(&self) -> Vec<PeerId> {
        self.ids()
    }

    fn bytes_have(&self) -> u64 {
        self.picker
            .have()
            .iter_ones()
            .map(|i| u64::from(self.geometry.piece_size(i as u32)))
            .sum()
    }

    fn uploaded(&self) -> u64 {
        self.uploaded_closed
            + self
                .slots
                .iter()
                .flatten()
                .map(|p| p.conn.counters().block_bytes_sent)
                .sum::<u64>()
    }

    /// The connected peers (those past the handshake), at most the
    /// torrent's peer limit.
    pub fn peer_infos(&self, now: Duration) -> Vec<PeerInfo> {
        let pieces = self.shape.pieces();
        self.slots
            .iter()
            .flatten()
            .map(|p| {
                let c = p.conn.counters();
                PeerInfo {
                    addr: p.addr,
                    pieces_have: p.bits.count_ones() as u32,
                    pieces,
                    rate_up: p.up.rate(now),
                    rate_down: p.down.rate(now),
                    uploaded: c.block_bytes_sent,
                    downloaded: c.block_bytes_received,
                    am_choking: p.conn.am_choking(),
                    am_interested: p.conn.am_interested(),
                    peer_choking: p.conn.peer_choking(),
                    peer_interested: p.conn.peer_interested(),
                    encrypted: p.encrypted,
                    rc4: p.rc4,
                }
            })
            .collect()
    }

    /// Progress numbers.
    pub fn stats(&self) -> TorrentStats {
        let have = self.picker.have().count_ones() as u32;
        let bytes_have = self.bytes_have();
        TorrentStats {
            pieces: self.shape.pieces(),
            pieces_have: have,
            total_length: self.geometry.total_length(),
            bytes_left: self.geometry.total_length().saturating_sub(bytes_have),
            uploaded: self.uploaded(),
            downloaded: self.downloaded,
            peers: self.peer_count,
            seeds: self
                .slots
                .iter()
                .flatten()
                .filter(|p| !p.bits.is_empty() && p.bits.count_zeros() == 0)
                .count(),
            unchoked: self.unchoked_count(),
            rate_up: self.rate_up,
            rate_down: self.rate_down,
            hash_failures: self.hash_failures,
            banned: self.banned.len(),
            finished: self.finished,
        }
    }
}

#[cfg(test)]
#[path = "torrent_tests.rs"]
mod tests;

#[path = "torrent_ext.rs"]
mod ext;
pub use ext::{UT_METADATA_ID, UT_PEX_ID};
