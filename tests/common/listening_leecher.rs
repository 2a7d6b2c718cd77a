//! A raw leecher that never dials: it listens on a loopback address,
//! accepts whoever connects, handshakes, asks for every block of the torrent
//! (at most `REQUESTS_MAX` at a time, again after a choke) and checks the
//! bytes against the expected data. It keeps what it got across
//! connections, and ends when it has everything or its time is up.
//!
//! It is how a test proves that a seed connects out: nobody else can start a
//! connection with this peer.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ringseed::wire::{encode, Message};
use ringseed::InfoHash;

use super::raw_peer::{our_handshake, End, Got, RawPeer};

/// Block size requested, in bytes.
pub const BLOCK: u32 = 16 * 1024;
/// Requests kept outstanding.
const REQUESTS_MAX: usize = 16;
/// Longest one connection may go without a message.
const IDLE_MAX: Duration = Duration::from_secs(20);

/// What the leecher did.
#[derive(Debug, Clone)]
pub struct LeechReport {
    /// Connections accepted.
    pub connections: usize,
    /// Where they came from.
    pub from: Vec<SocketAddr>,
    /// Every byte arrived and matched.
    pub complete: bool,
    /// Blocks still missing.
    pub missing: usize,
    /// What went wrong on each connection, for failure messages.
    pub notes: Vec<String>,
}

/// A leecher listening on `addr`.
pub struct ListeningLeecher {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<LeechReport>>,
}

impl ListeningLeecher {
    /// Listens on `listener`; downloads `data` (the torrent's whole content,
    /// pieces of `piece_length`) from whoever connects, for at most
    /// `time_max`.
    pub fn start(
        listener: TcpListener,
        info_hash: InfoHash,
        data: Arc<Vec<u8>>,
        piece_length: u32,
        tag: u8,
        time_max: Duration,
    ) -> ListeningLeecher {
        let addr = listener.local_addr().expect("leecher address");
        listener.set_nonblocking(true).expect("leecher nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let halt = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            run(
                &listener,
                info_hash,
                &data,
                piece_length,
                tag,
                time_max,
                &halt,
            )
        });
        ListeningLeecher {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Whether it has ended (complete, or out of time).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for the end (bounded by its own `time_max`).
    pub fn join(mut self) -> LeechReport {
        let t = self.thread.take().expect("joined once");
        t.join().expect("the leecher thread panicked")
    }
}

impl Drop for ListeningLeecher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The blocks of the torrent: (piece, offset, length).
fn blocks(total: usize, piece_length: u32) -> Vec<(u32, u32, u32)> {
    let mut out = Vec::new();
    let pieces = total.div_ceil(piece_length as usize);
    for p in 0..pieces {
        let start = p * piece_length as usize;
        let size = (total - start).min(piece_length as usize) as u32;
        let mut off = 0;
        while off < size {
            out.push((p as u32, off, BLOCK.min(size - off)));
            off += BLOCK;
        }
    }
    out
}

fn run(
    listener: &TcpListener,
    info_hash: InfoHash,
    data: &[u8],
    piece_length: u32,
    tag: u8,
    time_max: Duration,
    stop: &AtomicBool,
) -> LeechReport {
    let end = Instant::now() + time_max;
    let all = blocks(data.len(), piece_length);
    let pieces = data.len().div_ceil(piece_length as usize) as u32;
    let mut missing: BTreeSet<(u32, u32, u32)> = all.iter().copied().collect();
    let mut report = LeechReport {
        connections: 0,
        from: Vec::new(),
        complete: false,
        missing: missing.len(),
        notes: Vec::new(),
    };
    while !missing.is_empty() && Instant::now() < end && !stop.load(Ordering::Relaxed) {
        let (stream, from) = match listener.accept() {
            Ok(x) => x,
            Err(_) => {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let _ = stream.set_nonblocking(false);
        report.connections += 1;
        report.from.push(from);
        let note = match RawPeer::from_stream(stream, pieces) {
            Ok(mut peer) => fetch(
                &mut peer,
                info_hash,
                data,
                piece_length,
                tag,
                &mut missing,
                end,
                stop,
            ),
            Err(e) => e,
        };
        report.notes.push(format!("{from}: {note}"));
    }
    report.missing = missing.len();
    report.complete = missing.is_empty();
    report
}

/// Downloads what is missing over one connection; returns how it ended.
#[allow(clippy::too_many_arguments)]
fn fetch(
    peer: &mut RawPeer,
    info_hash: InfoHash,
    data: &[u8],
    piece_length: u32,
    tag: u8,
    missing: &mut BTreeSet<(u32, u32, u32)>,
    end: Instant,
    stop: &AtomicBool,
) -> String {
    if let Err(e) = peer.handshake(&our_handshake(info_hash, [0; 8], tag)) {
        return format!("handshake: {e:?}");
    }
    let mut msg = Vec::new();
    encode(&Message::Interested, &mut msg);
    if let Err(e) = peer.send(&msg) {
        return format!("sending interested: {e:?}");
    }
    let mut unchoked = false;
    let mut outstanding: BTreeSet<(u32, u32, u32)> = BTreeSet::new();
    while !missing.is_empty() && !stop.load(Ordering::Relaxed) {
        if unchoked && outstanding.len() < REQUESTS_MAX {
            let want: Vec<_> = missing
                .iter()
                .filter(|b| !outstanding.contains(b))
                .take(REQUESTS_MAX - outstanding.len())
                .copied()
                .collect();
            msg.clear();
            for &(piece, offset, length) in &want {
                encode(
                    &Message::Request {
                        piece,
                        offset,
                        length,
                    },
                    &mut msg,
                );
                outstanding.insert((piece, offset, length));
            }
            if let Err(e) = peer.send(&msg) {
                return format!("sending requests: {e:?}");
            }
        }
        let deadline = (Instant::now() + IDLE_MAX).min(end);
        match peer.next(deadline) {
            Ok(Got::Unchoke) => unchoked = true,
            Ok(Got::Choke) => {
                unchoked = false;
                outstanding.clear();
            }
            Ok(Got::Piece {
                piece,
                offset,
                block,
            }) => {
                let key = (piece, offset, block.len() as u32);
                let start = piece as usize * piece_length as usize + offset as usize;
                let expected = data.get(start..start + block.len());
                if expected != Some(block.as_slice()) {
                    return format!("wrong bytes in piece {piece} at {offset}");
                }
                outstanding.remove(&key);
                missing.remove(&key);
            }
            Ok(Got::Reject { piece, offset }) => {
                outstanding.retain(|b| !(b.0 == piece && b.1 == offset));
            }
            Ok(Got::Other(_)) => {}
            Err(End::TimedOut) => return "idle too long".into(),
            Err(e) => return format!("ended: {e:?}"),
        }
    }
    "complete".into()
}
