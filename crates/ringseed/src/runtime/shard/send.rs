//! Sending: each connection sends one item at a time, in queue order:
//! control messages (copied into a pool buffer) or up to `SEND_BLOCKS_MAX`
//! piece messages whose blocks lie in one pool buffer, sent with their
//! headers in one vectored op and no copy. A short send puts the rest back
//! at the front of the queue.
//!
//! On an RC4 connection an item is encrypted in place as it is taken for
//! its first send (control bytes in the pool buffer they were copied into,
//! blocks and their headers in their read buffer), so the stream is
//! encrypted once, in wire order, with no allocation; the rest of a short
//! send goes back as bytes already sealed.

use super::conn::{ConnId, ConnState, OutItem, Sending};
use super::{OpCtx, Shard};
use crate::runtime::event_loop::Completion;

impl Shard {
    pub(super) fn try_send(&mut self, id: ConnId) {
        let buffer_bytes = self.ev.buffer_pool().buffer_bytes();
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.send_op.is_some() || conn.state == ConnState::Closing {
            return;
        }
        let Some(fd) = conn.raw_fd() else { return };
        let Some(item) = conn.out.pop_front() else {
            return;
        };
        if let OutItem::Piped { bytes, blocks } = item {
            self.send_piped(id, bytes, blocks);
            return;
        }
        if conn.nonblocking && conn.pipe.is_none() && !self.send_path.splice() {
            // Back on the copy path: a blocking socket again, so that an
            // io_uring send with MSG_WAITALL sends all of its bytes instead
            // of coming back short whenever the socket fills.
            if super::splice::set_nonblocking(fd, false) {
                conn.nonblocking = false;
            }
        }
        let (result, sending, buffer) = match item {
            item @ (OutItem::Bytes(_) | OutItem::Sealed(_)) => {
                // `plain`: bytes still to encrypt on an RC4 connection.
                let (mut bytes, plain) = match item {
                    OutItem::Bytes(b) => (b, true),
                    OutItem::Sealed(b) => (b, false),
                    OutItem::Blocks(_) | OutItem::Piped { .. } => return,
                };
                let again = |bytes: Vec<u8>| {
                    if plain {
                        OutItem::Bytes(bytes)
                    } else {
                        OutItem::Sealed(bytes)
                    }
                };
                if bytes.is_empty() {
                    self.try_send(id);
                    return;
                }
                let Some(buffer) = self.ev.buffers().acquire() else {
                    if let Some(c) = self.conns.get_mut(id) {
                        c.out.push_front(again(bytes));
                    }
                    self.deferred_send.push_back(id);
                    return;
                };
                let n = bytes.len().min(buffer_bytes);
                let Some(c) = self.conns.get_mut(id) else {
                    let _ = self.ev.buffers().release(buffer);
                    return;
                };
                if let Some(dst) = self.ev.buffers().get_mut(buffer) {
                    dst[..n].copy_from_slice(&bytes[..n]);
                    if let (true, Some(rc4)) = (plain, c.rc4.as_mut()) {
                        rc4.enc.apply(&mut dst[..n]);
                    }
                }
                if n < bytes.len() {
                    bytes.drain(..n);
                    c.out.push_front(again(bytes));
                }
                let r = self.queue(OpCtx::Send { conn: id }, |ev| ev.send(fd, buffer, n));
                (r, Sending::Bytes { len: n }, buffer)
            }
            OutItem::Blocks(mut b) => {
                if !b.sealed {
                    if let Some(rc4) = conn.rc4.as_mut() {
                        if let Some(data) = self.ev.buffers().get_mut(b.buffer) {
                            for seg in &mut b.segs[..b.n] {
                                rc4.enc.apply(&mut seg.header);
                                if let Some(block) = data.get_mut(seg.start..seg.start + seg.len) {
                                    rc4.enc.apply(block);
                                }
                            }
                        }
                    }
                    b.sealed = true;
                }
                let r = self.queue(OpCtx::Send { conn: id }, |ev| {
                    ev.send_blocks(fd, b.buffer, &b.segs[..b.n], b.skip)
                });
                (r, Sending::Blocks(b), b.buffer)
            }
            OutItem::Piped { .. } => return,
        };
        match result {
            Ok(op) => {
                if let Some(c) = self.conns.get_mut(id) {
                    c.send_op = Some(op);
                    c.sending = Some(sending);
                    c.ops += 1;
                }
            }
            Err(_) => {
                let _ = self.ev.buffers().release(buffer);
                self.drop_conn(id, true);
            }
        }
    }

    pub(super) fn on_send(&mut self, id: ConnId, c: Completion<Option<OpCtx>>) {
        let release = |s: &mut Shard| {
            if let Some(b) = c.buffer {
                let _ = s.ev.buffers().release(b);
            }
        };
        let Some(conn) = self.conns.get_mut(id) else {
            release(self);
            return;
        };
        conn.send_op = None;
        conn.ops = conn.ops.saturating_sub(1);
        let sending = conn.sending.take();
        let state = conn.state;
        let sent = match (c.result, state) {
            (_, ConnState::Closing) => {
                release(self);
                self.maybe_reap(id);
                return;
            }
            // A handshake's last bytes may complete after the connection
            // moved on to routing.
            (Ok(n), _) => n as usize,
            _ => {
                release(self);
                self.drop_conn(id, true);
                return;
            }
        };
        if !matches!(sending, Some(Sending::Poll)) {
            self.sent_bytes += sent as u64;
        }
        match sending {
            Some(Sending::Bytes { len }) if sent < len => {
                // A short send: the rest, as it is in the buffer (sealed),
                // goes first next time.
                let rest = c
                    .buffer
                    .and_then(|b| self.ev.buffer_pool().get(b))
                    .and_then(|b| b.get(sent..len))
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default();
                if let Some(conn) = self.conns.get_mut(id) {
                    conn.out.push_front(OutItem::Sealed(rest));
                }
                release(self);
            }
            Some(Sending::Blocks(mut b)) if b.skip + sent < b.total() => {
                b.skip += sent;
                if let Some(conn) = self.conns.get_mut(id) {
                    conn.out.push_front(OutItem::Blocks(b));
                }
            }
            Some(Sending::Blocks(b)) => {
                release(self);
                if let ConnState::Peer { torrent, peer } = state {
                    let now = self.now;
                    if let Some(t) = self.torrents.engine_mut(torrent) {
                        t.on_blocks_sent(now, peer, b.n as u32);
                    }
                    self.pump(torrent);
                }
            }
            Some(Sending::Poll) => {}
            _ => release(self),
        }
        self.try_send(id);
        // An incoming connection that named another shard's torrent waits
        // for its handshake's last bytes to go out before it moves.
        let idle_routing = self.conns.get(id).is_some_and(|c| {
            c.state == ConnState::Routing && c.send_op.is_none() && !c.inbuf.is_empty()
        });
        if idle_routing {
            self.route(id);
        }
    }
}
