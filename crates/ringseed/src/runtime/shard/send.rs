//! Sending: each connection sends one item at a time, in queue order:
//! control messages (copied into a pool buffer) or up to `SEND_BLOCKS_MAX`
//! piece messages whose blocks lie in one pool buffer, sent with their
//! headers in one vectored op and no copy. A short send puts the rest back
//! at the front of the queue.

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
        let (result, sending, buffer) = match item {
            OutItem::Bytes(mut bytes) => {
                let Some(buffer) = self.ev.buffers().acquire() else {
                    if let Some(c) = self.conns.get_mut(id) {
                        c.out.push_front(OutItem::Bytes(bytes));
                    }
                    self.deferred_send.push_back(id);
                    return;
                };
                let n = bytes.len().min(buffer_bytes);
                if let Some(dst) = self.ev.buffers().get_mut(buffer) {
                    dst[..n].copy_from_slice(&bytes[..n]);
                }
                if n < bytes.len() {
                    bytes.drain(..n);
                    if let Some(c) = self.conns.get_mut(id) {
                        c.out.push_front(OutItem::Bytes(bytes));
                    }
                }
                let r = self.queue(OpCtx::Send { conn: id }, |ev| ev.send(fd, buffer, n));
                (r, Sending::Bytes { len: n }, buffer)
            }
            OutItem::Blocks(b) => {
                let r = self.queue(OpCtx::Send { conn: id }, |ev| {
                    ev.send_blocks(fd, b.buffer, &b.segs[..b.n], b.skip)
                });
                (r, Sending::Blocks(b), b.buffer)
            }
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
            (Ok(n), ConnState::Peer { .. }) => n as usize,
            (_, ConnState::Closing) => {
                release(self);
                self.maybe_reap(id);
                return;
            }
            _ => {
                release(self);
                self.drop_conn(id, true);
                return;
            }
        };
        let ConnState::Peer { torrent, peer } = state else {
            return;
        };
        match sending {
            Some(Sending::Bytes { len }) if sent < len => {
                // A short send: the rest goes first next time.
                let rest = c
                    .buffer
                    .and_then(|b| self.ev.buffer_pool().get(b))
                    .and_then(|b| b.get(sent..len))
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default();
                if let Some(conn) = self.conns.get_mut(id) {
                    conn.out.push_front(OutItem::Bytes(rest));
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
                let now = self.now;
                if let Some(t) = self.torrents.engine_mut(torrent) {
                    t.on_blocks_sent(now, peer, b.n as u32);
                }
                self.pump(torrent);
            }
            _ => release(self),
        }
        self.try_send(id);
    }
}
