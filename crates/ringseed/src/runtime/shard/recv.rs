//! Receiving: a peer's connection keeps one multishot recv armed on the
//! shard's recv ring (a buffer is taken only when bytes arrive; they are
//! copied into the connection's unconsumed bytes and the buffer goes
//! straight back); a connection still being routed uses single recvs into
//! a pool buffer, since it may move to another shard. Received bytes go to
//! the torrent's engine ([`Shard::feed`]), or to routing.
//!
//! Download limits: bytes from a peer of a limited torrent are counted as
//! they arrive; when the tokens run out the peer stops receiving (its
//! multishot is cancelled, or a single recv is not re-armed) and waits,
//! unarmed and holding no buffer, in `throttled_recv` until tokens return.

use super::conn::{Conn, ConnId, ConnState};
use super::{OpCtx, Shard, INBUF_BYTES_MAX};
use crate::engine::PeerId;
use crate::runtime::event_loop::{Completion, EventLoop, OpKind};
use crate::runtime::session::types::TorrentId;

/// A connection's key in the wait queues.
pub(super) fn conn_key(id: ConnId) -> u64 {
    (u64::from(id.slot) << 32) | u64::from(id.generation)
}

fn errno_text(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno).to_string()
}

impl Shard {
    pub(super) fn start_recv(&mut self, id: ConnId) {
        let Some(c) = self.conns.get(id) else { return };
        if c.recv_op.is_some() || c.state == ConnState::Closing {
            return;
        }
        let Some(fd) = c.raw_fd() else { return };
        // A peer's connection receives multishot into the recv ring (a
        // buffer is taken only when bytes arrive). A connection still being
        // routed uses one pool buffer: it may move to another shard, and a
        // multishot op would stay armed on this ring.
        let multishot = self.recv_multishot(c);
        if let ConnState::Peer { torrent, .. } = c.state {
            let t = torrent.slot as usize;
            if self.limits.down.is_limited(t) {
                // Download limited: receive only with tokens; else wait
                // unarmed (holding no buffer), and TCP flow control slows
                // the sender.
                let now = self.now;
                if !self.limits.down.ready(now, t) {
                    if let Some(c) = self.conns.get_mut(id) {
                        c.recv_paused = true;
                    }
                    let key = conn_key(id);
                    if !self.throttled_recv.has(t, key) {
                        let _ = self.throttled_recv.push(t, key, id);
                    }
                    return;
                }
                if let Some(c) = self.conns.get_mut(id) {
                    c.recv_paused = false;
                }
            }
        }
        if multishot {
            match self.queue(OpCtx::Recv { conn: id }, |ev| ev.recv_multi(fd)) {
                Ok(op) => {
                    if let Some(c) = self.conns.get_mut(id) {
                        c.recv_op = Some(op);
                        c.ops += 1;
                    }
                }
                Err(_) => self.deferred_recv.push_back(id),
            }
            return;
        }
        let Some(buffer) = self.ev.buffers().acquire() else {
            self.deferred_recv.push_back(id);
            return;
        };
        match self.queue(OpCtx::Recv { conn: id }, |ev| ev.recv(fd, buffer)) {
            Ok(op) => {
                if let Some(c) = self.conns.get_mut(id) {
                    c.recv_op = Some(op);
                    c.ops += 1;
                }
            }
            Err(_) => {
                let _ = self.ev.buffers().release(buffer);
                self.deferred_recv.push_back(id);
            }
        }
    }

    pub(super) fn on_recv(&mut self, id: ConnId, c: Completion<Option<OpCtx>>) {
        let mut n = 0;
        let mut failed = None;
        let mut rearm_later = false;
        match c.result {
            Ok(0) => failed = Some("closed by peer".to_owned()),
            Ok(k) => n = k as usize,
            // The recv ring ran dry: arm again once buffers come back.
            Err(libc::ENOBUFS) if c.kind == OpKind::RecvMulti => rearm_later = true,
            // Cancelled by `pause_recv`: armed again when tokens return.
            Err(libc::ECANCELED) if self.conns.get(id).is_some_and(|c| c.recv_paused) => {}
            Err(e) => failed = Some(errno_text(e)),
        }
        let ring_bid = EventLoop::ring_buffer_of(&c);
        let Some(conn) = self.conns.get_mut(id) else {
            if let Some(b) = c.buffer {
                let _ = self.ev.buffers().release(b);
            }
            if let Some(bid) = ring_bid {
                self.ev.give_back_ring_buffer(bid);
            }
            return;
        };
        if !c.more {
            conn.recv_op = None;
            conn.ops = conn.ops.saturating_sub(1);
        }
        let before = conn.inbuf.len();
        if let Some(b) = c.buffer {
            if failed.is_none() {
                if let Some(bytes) = self.ev.buffer_pool().get(b).and_then(|s| s.get(..n)) {
                    conn.inbuf.extend_from_slice(bytes);
                }
            }
            let _ = self.ev.buffers().release(b);
        }
        if let Some(bid) = ring_bid {
            if failed.is_none() {
                if let Some(bytes) = self.ev.ring_buffer(bid, n) {
                    conn.inbuf.extend_from_slice(bytes);
                }
            }
            self.ev.give_back_ring_buffer(bid);
        }
        conn.received += (conn.inbuf.len() - before) as u64;
        // An RC4 connection: decrypt in place, before anything reads them.
        if let (Some(rc4), Some(fresh)) = (conn.rc4.as_mut(), conn.inbuf.get_mut(before..)) {
            rc4.dec.apply(fresh);
        }
        if conn.state == ConnState::Closing {
            self.maybe_reap(id);
            return;
        }
        if failed.is_some() {
            self.drop_conn(id, true);
            return;
        }
        if rearm_later {
            self.deferred_recv.push_back(id);
            return;
        }
        if let ConnState::Peer { torrent, .. } = conn.state {
            let t = torrent.slot as usize;
            if n > 0 && self.limits.down.is_limited(t) {
                let now = self.now;
                self.limits.down.charge(now, t, n as u64);
                if !self.limits.down.ready(now, t) {
                    self.pause_recv(id);
                }
            }
        }
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        // Room for the largest message the peer's torrent allows (its
        // bitfield may be larger than a block), plus one receive.
        let inbuf_max = match conn.state {
            ConnState::Peer { torrent, .. } => self
                .torrents
                .running(torrent)
                .map_or(crate::limits::RECEIVE_BUFFER_BYTES_MIN, |r| {
                    r.torrent.receive_buffer_bytes_max()
                }),
            _ => crate::limits::RECEIVE_BUFFER_BYTES_MIN,
        }
        .min(INBUF_BYTES_MAX);
        if conn.inbuf.len() > inbuf_max {
            let addr = conn.addr;
            self.log.line(
                self.now,
                format!("peer {addr} dropped: over {inbuf_max} bytes unconsumed"),
            );
            self.drop_conn(id, true);
            return;
        }
        match conn.state {
            ConnState::Routing => self.route(id),
            ConnState::Handshake { .. } => self.handshake_input(id),
            ConnState::Peer { torrent, peer } => {
                self.feed(id, torrent, peer);
                self.start_recv(id);
            }
            _ => {}
        }
    }

    /// Hands the connection's unconsumed bytes to its torrent.
    pub(super) fn feed(&mut self, id: ConnId, torrent: TorrentId, peer: PeerId) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let inbuf = std::mem::take(&mut conn.inbuf);
        let Some(t) = self.torrents.engine_mut(torrent) else {
            return;
        };
        let consumed = t.receive(now, peer, &inbuf);
        if let Some(conn) = self.conns.get_mut(id) {
            let mut inbuf = inbuf;
            inbuf.drain(..consumed.min(inbuf.len()));
            conn.inbuf = inbuf;
        }
        self.pump(torrent);
    }

    /// Whether a connection receives multishot: a peer, when the kernel
    /// has provided-buffer rings. A download-limited peer too: its op is
    /// cancelled when the tokens run out ([`Self::pause_recv`]), so an
    /// idle peer holds no buffer while it waits.
    pub(super) fn recv_multishot(&self, c: &Conn) -> bool {
        self.multishot && matches!(c.state, ConnState::Peer { .. })
    }

    /// Download tokens ran out: stop receiving from this peer until they
    /// return. A multishot op is cancelled (its last completion, ECANCELED,
    /// is not a failure); a single recv simply is not re-armed.
    fn pause_recv(&mut self, id: ConnId) {
        let Some(c) = self.conns.get(id) else {
            return;
        };
        if c.recv_paused {
            return;
        }
        // A cancel that cannot be queued now is tried again on the next
        // completion (the flag stays down).
        if let (Some(op), true) = (c.recv_op, self.multishot) {
            if self.ev.cancel(op).is_err() {
                return;
            }
        }
        if let Some(c) = self.conns.get_mut(id) {
            c.recv_paused = true;
        }
    }
}
