//! The control channel into a shard: what the session (and the checker
//! pool) asks of the shard that owns a torrent, and how each request is
//! answered.
//!
//! Every request that expects an answer carries its own reply channel (room
//! for one answer); the shard answers each, with a value or a typed
//! [`ControlError`]. Sending never blocks the sender and never drops a
//! request quietly: a full queue is refused at once with
//! [`SendError::Full`], a stopped shard with [`SendError::Gone`], and the
//! caller holds a [`Pending`] answer it waits for with a bound.
//! Connections handed over between shards travel on a channel of their own
//! ([`Adopt`]), so a burst of connections never delays a control request
//! and the reverse.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use thiserror::Error;

use super::settings::Settings;
use super::types::{Have, Mode, TorrentId, TorrentLimits, TorrentSnapshot};
use crate::metainfo::Metainfo;
use crate::runtime::checker::CheckOutcome;
use crate::runtime::disk::TorrentStorage;
use crate::runtime::waker::WakerHandle;
use crate::torrent::Bitfield;

/// A connection accepted by one shard whose handshake names a torrent of
/// another.
pub struct Adopt {
    pub fd: OwnedFd,
    pub addr: SocketAddr,
    /// Bytes received and not consumed (decrypted, on an RC4 connection).
    pub received: Vec<u8>,
    /// The torrent its MSE handshake named, when it had one.
    pub obfuscated: Option<crate::info_hash::InfoHash>,
    /// Its RC4 streams, when RC4 was chosen.
    pub rc4: Option<Box<crate::runtime::shard::conn::Rc4Pair>>,
    /// Bytes received over its life.
    pub received_total: u64,
}

/// Where one answer goes.
pub type Reply<T> = Sender<Result<T, ControlError>>;

/// A torrent as its shard takes it.
pub struct ShardAdd {
    pub id: TorrentId,
    pub metainfo: Arc<Metainfo>,
    pub save_dir: PathBuf,
    pub mode: Mode,
    pub have: Have,
    /// Opened by the session when `have` is known; for a torrent to check,
    /// the checker opens it after the check.
    pub storage: Option<TorrentStorage>,
    pub paused: bool,
    pub peers: Vec<SocketAddr>,
    pub limits: TorrentLimits,
    pub uploaded_before: u64,
    pub downloaded_before: u64,
}

/// What a removed torrent leaves behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// The torrent's files (pad files excluded), to delete when asked.
    pub files: Vec<PathBuf>,
    /// Block bytes it sent and verified bytes it downloaded in this session.
    pub uploaded: u64,
    pub downloaded: u64,
}

/// A request to a shard.
pub enum Control {
    Add {
        add: Box<ShardAdd>,
        reply: Reply<()>,
    },
    /// Closes the torrent's peers, waits for its disk ops, then forgets it.
    Remove {
        id: TorrentId,
        reply: Reply<Removed>,
    },
    Pause {
        id: TorrentId,
        reply: Reply<()>,
    },
    Resume {
        id: TorrentId,
        reply: Reply<()>,
    },
    /// Stops serving the torrent, checks its data again, then goes on as
    /// before (paused stays paused).
    Recheck {
        id: TorrentId,
        reply: Reply<()>,
    },
    SetLimits {
        id: TorrentId,
        limits: TorrentLimits,
        reply: Reply<()>,
    },
    /// New settings for every torrent of the shard.
    ApplySettings {
        settings: Arc<Settings>,
        reply: Reply<()>,
    },
    /// Addresses to dial (from the user, trackers, later DHT and PEX).
    /// Answers how many were new.
    AddPeers {
        id: TorrentId,
        peers: Vec<SocketAddr>,
        /// Where they were learnt.
        source: crate::engine::PeerSource,
        reply: Reply<usize>,
    },
    /// The torrent's pieces verified and written (see `Session::pieces`).
    Pieces {
        id: TorrentId,
        reply: Reply<Bitfield>,
    },
    /// The torrent's connected peers (see `Session::peers`).
    Peers {
        id: TorrentId,
        reply: Reply<Vec<crate::engine::PeerInfo>>,
    },
    /// Every torrent's pieces version (see `Session::pieces_versions`).
    PiecesVersions {
        reply: Reply<Vec<(TorrentId, u64)>>,
    },
    /// Announce to the torrent's trackers now (see `Session::reannounce`).
    Reannounce {
        id: TorrentId,
        reply: Reply<()>,
    },
    /// One torrent's snapshot, or every torrent's.
    Snapshot {
        id: Option<TorrentId>,
        reply: Reply<Vec<TorrentSnapshot>>,
    },
    /// A data check finished (from the checker pool; no answer).
    Checked(Box<CheckOutcome>),
    /// A torrent of the session (any shard's) starts or stops being one a
    /// connection may name (every shard keeps the table; no answer).
    Known {
        info_hash: crate::info_hash::InfoHash,
        /// The shard that owns the torrent (incoming connections naming it
        /// are handed there); `None`: the torrent is gone.
        owner: Option<usize>,
    },
    /// Stop the shard: `stopped` announces, close every connection, flush.
    Stop,
    /// Tests only: the shard sleeps, so its queue fills.
    #[cfg(test)]
    Stall(Duration, std::sync::mpsc::Sender<()>),
}

/// Why a shard refused a request.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("no torrent {0} (removed, or never added)")]
    UnknownTorrent(TorrentId),
    #[error("torrent {0} is being removed")]
    Removing(TorrentId),
    #[error("torrent {id} cannot start: {reason}")]
    CannotStart { id: TorrentId, reason: String },
    #[error("the shard is stopping")]
    Stopping,
    #[error("torrent id {id} cannot be filed: {reason}")]
    BadId { id: TorrentId, reason: String },
}

/// Why a request did not reach its shard.
#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
pub enum SendError {
    #[error("shard {shard}'s control queue is full ({max} requests waiting)")]
    Full { shard: usize, max: usize },
    #[error("shard {shard} has stopped")]
    Gone { shard: usize },
}

/// Why no answer came.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum WaitError {
    #[error(transparent)]
    Refused(#[from] ControlError),
    #[error("shard {shard} did not answer within {} ms", waited.as_millis())]
    Timeout { shard: usize, waited: Duration },
    #[error("shard {shard} stopped before it answered")]
    Gone { shard: usize },
}

/// The sending side of one shard's control queue.
#[derive(Clone)]
pub struct ControlTx {
    pub shard: usize,
    pub tx: Sender<Control>,
    pub wake: WakerHandle,
    pub max: usize,
}

impl ControlTx {
    /// Queues `msg` and wakes the shard; refuses at once when the queue is
    /// full or the shard is gone.
    pub fn send(&self, msg: Control) -> Result<(), SendError> {
        match self.tx.try_send(msg) {
            Ok(()) => {
                self.wake.wake();
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(SendError::Full {
                shard: self.shard,
                max: self.max,
            }),
            Err(TrySendError::Disconnected(_)) => Err(SendError::Gone { shard: self.shard }),
        }
    }

    /// Queues `msg`, waiting at most `timeout` for room (for messages that
    /// must not be refused: callers are control threads, never a shard).
    pub fn send_wait(&self, msg: Control, timeout: Duration) -> Result<(), SendError> {
        match self.tx.send_timeout(msg, timeout) {
            Ok(()) => {
                self.wake.wake();
                Ok(())
            }
            Err(crossbeam_channel::SendTimeoutError::Timeout(_)) => Err(SendError::Full {
                shard: self.shard,
                max: self.max,
            }),
            Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => {
                Err(SendError::Gone { shard: self.shard })
            }
        }
    }

    /// Sends a request built around a fresh reply channel; the answer is
    /// waited for with [`Pending::wait`].
    pub fn request<T>(
        &self,
        build: impl FnOnce(Reply<T>) -> Control,
    ) -> Result<Pending<T>, SendError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(build(reply))?;
        Ok(Pending {
            rx,
            shard: self.shard,
        })
    }
}

/// An answer on its way.
#[must_use = "a request's answer says whether it was done"]
pub struct Pending<T> {
    rx: Receiver<Result<T, ControlError>>,
    shard: usize,
}

impl<T> Pending<T> {
    /// Waits at most `timeout` for the answer.
    pub fn wait(self, timeout: Duration) -> Result<T, WaitError> {
        match self.rx.recv_timeout(timeout) {
            Ok(r) => r.map_err(WaitError::Refused),
            Err(RecvTimeoutError::Timeout) => Err(WaitError::Timeout {
                shard: self.shard,
                waited: timeout,
            }),
            Err(RecvTimeoutError::Disconnected) => Err(WaitError::Gone { shard: self.shard }),
        }
    }

    /// The answer if it is there already.
    pub fn try_take(&self) -> Option<Result<T, ControlError>> {
        self.rx.try_recv().ok()
    }
}

/// Sends an answer; a caller that stopped waiting is no error.
pub fn answer<T>(reply: &Reply<T>, value: Result<T, ControlError>) {
    let _ = reply.try_send(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::waker::Waker;

    #[test]
    fn a_full_queue_refuses_and_every_queued_request_is_answered() {
        let waker = Waker::new().unwrap();
        let (tx, rx) = crossbeam_channel::bounded(2);
        let ctl = ControlTx {
            shard: 3,
            tx,
            wake: waker.handle(),
            max: 2,
        };
        let id = TorrentId {
            slot: 1,
            generation: 1,
        };
        let a = ctl.request(|reply| Control::Pause { id, reply }).unwrap();
        let b = ctl.request(|reply| Control::Resume { id, reply }).unwrap();
        let refused = ctl.request(|reply| Control::Recheck { id, reply });
        assert_eq!(refused.err(), Some(SendError::Full { shard: 3, max: 2 }));
        // The shard's side: answer what was queued, in order.
        for msg in rx.try_iter() {
            match msg {
                Control::Pause { reply, .. } => answer(&reply, Ok(())),
                Control::Resume { reply, .. } => {
                    answer(&reply, Err(ControlError::UnknownTorrent(id)))
                }
                _ => panic!("unexpected message"),
            }
        }
        let t = Duration::from_secs(1);
        assert_eq!(a.wait(t), Ok(()));
        assert_eq!(
            b.wait(t),
            Err(WaitError::Refused(ControlError::UnknownTorrent(id)))
        );
        // A shard that is gone: sends are refused at once. (A shard answers
        // what is still queued as it exits: `Shard::finish`.)
        drop(rx);
        assert_eq!(
            ctl.request(|reply| Control::Pause { id, reply }).err(),
            Some(SendError::Gone { shard: 3 })
        );
        // An answer that never comes, because its sender is gone, ends the
        // wait at once.
        let (reply, rx) = crossbeam_channel::bounded::<Result<(), ControlError>>(1);
        drop(reply);
        let p = Pending { rx, shard: 3 };
        assert_eq!(p.wait(t), Err(WaitError::Gone { shard: 3 }));
    }
}
