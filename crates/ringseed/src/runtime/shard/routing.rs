//! Connections coming and going: accepting (on any of the listening
//! sockets the shards share), reading until the handshake's
//! first 48 bytes name an info-hash, handing a connection to the shard that
//! owns that torrent (the fd and the bytes read so far travel over the
//! owner's hand-off queue, and its waker is poked), dialling (a failed dial
//! is reported to the engine's peer list, which says when it is retried, and
//! logged with the reason), attaching a connection to its torrent's engine,
//! and tearing it down.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::conn::{ConnId, ConnState, OutItem};
use super::{OpCtx, Shard, CONNS_PER_SHARD_MAX, HANDOFF_QUEUE_MAX, ROUTING_TIMEOUT};
use crate::engine::Retry;
use crate::peer::Direction;
use crate::runtime::event_loop::Completion;
use crate::runtime::session::control::Adopt;
use crate::runtime::session::types::TorrentId;
use crate::runtime::sockets;
use crate::wire::HandshakePrefix;

impl Shard {
    /// A connection accepted on `listeners[listener]` (every shard accepts
    /// on every listening socket; the handshake decides whose it is).
    pub(super) fn on_accept(&mut self, listener: usize, c: Completion<Option<OpCtx>>) {
        if !c.more {
            if let Some(slot) = self.accept_ops.get_mut(listener) {
                *slot = None;
            }
            if c.result.is_err() {
                // EMFILE and friends: try again soon rather than spin.
                self.accept_retry_at = Some(self.now + super::ACCEPT_RETRY);
            } else {
                self.arm_accept();
            }
        }
        let Ok(fd) = c.result else {
            return;
        };
        // SAFETY: the kernel just gave us this new fd; nobody else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        if self.stopping.is_some() || self.conns.len() >= CONNS_PER_SHARD_MAX {
            return;
        }
        let addr = c
            .peer
            .or_else(|| peer_addr(&fd))
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let Some(id) = self.conns.insert(fd, addr, ConnState::Routing, self.now) else {
            return;
        };
        self.start_recv(id);
    }

    /// An incoming connection: find the torrent its handshake names.
    pub(super) fn route(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get(id) else {
            return;
        };
        let addr = conn.addr;
        let obfuscated = conn.obfuscated;
        if obfuscated.is_none() && !super::mse::looks_plaintext(&conn.inbuf) {
            self.start_answer(id);
            return;
        }
        let hash = match HandshakePrefix::decode(&conn.inbuf) {
            Ok(Some(p)) => p.info_hash,
            Ok(None) => {
                self.start_recv(id);
                return;
            }
            Err(e) => {
                self.log.line(self.now, format!("peer {addr} dropped: {e}"));
                self.drop_conn(id, false);
                return;
            }
        };
        if obfuscated.is_some_and(|h| h != hash) {
            self.log.line(
                self.now,
                format!("peer {addr} dropped: its handshake names another torrent than its encrypted header"),
            );
            self.drop_conn(id, false);
            return;
        }
        if self.refuse_plaintext(id) {
            return;
        }
        // The session placed the torrent (`Registry::place`) and told every
        // shard; an unknown info-hash is refused below, here.
        let owner = self.req2.owner(&hash).unwrap_or(self.index);
        if owner != self.index {
            // The MSE handshake's last bytes go out from this shard first
            // (in order, whole); `on_send` routes again once they are.
            let sending = self
                .conns
                .get(id)
                .is_some_and(|c| c.send_op.is_some() || !c.out.is_empty());
            if !sending {
                self.hand_off(id, owner);
            }
            return;
        }
        let Some(t) = self.torrents.by_hash(&hash) else {
            self.log.line(
                self.now,
                format!("peer {addr} dropped: unknown info-hash {hash}"),
            );
            self.drop_conn(id, false);
            return;
        };
        if !self.torrents.get(t).is_some_and(|e| e.is_active()) {
            let state = self.torrents.get(t).map_or("gone", |e| e.state().name());
            self.log.line(
                self.now,
                format!("peer {addr} dropped: torrent {hash} is {state}"),
            );
            self.drop_conn(id, false);
            return;
        }
        if let Err(e) = self.attach(id, t, addr, Direction::Incoming) {
            self.log.line(self.now, format!("peer {addr} refused: {e}"));
        }
    }

    /// Moves a connection to the shard that owns its torrent.
    fn hand_off(&mut self, id: ConnId, owner: usize) {
        let Some(mut conn) = self.conns.remove(id) else {
            return;
        };
        let addr = conn.addr;
        let (Some(fd), Some(route)) = (conn.fd.take(), self.routes.get(owner)) else {
            return;
        };
        let adopt = Adopt {
            fd,
            addr,
            received: std::mem::take(&mut conn.inbuf),
            obfuscated: conn.obfuscated,
            rc4: conn.rc4.take(),
            received_total: conn.received,
        };
        // A full queue (the owner is far behind) drops the connection: the
        // fd is closed with the message; the peer may retry.
        match route.handoff.try_send(adopt) {
            Ok(()) => {
                self.handoffs += 1;
                route.wake().wake();
            }
            Err(_) => {
                self.log.line(
                    self.now,
                    format!(
                        "peer {addr} dropped: too many new connections at once \
                         ({HANDOFF_QUEUE_MAX} wait for shard {owner})"
                    ),
                );
            }
        }
    }

    /// Connections other shards handed to us.
    pub(super) fn handle_handoffs(&mut self) {
        while let Ok(a) = self.handoff.try_recv() {
            if self.stopping.is_some() {
                continue;
            }
            let Some(id) = self
                .conns
                .insert(a.fd, a.addr, ConnState::Routing, self.now)
            else {
                continue;
            };
            if let Some(c) = self.conns.get_mut(id) {
                c.inbuf = a.received;
                c.obfuscated = a.obfuscated;
                c.rc4 = a.rc4;
                c.received = a.received_total;
            }
            self.route(id);
        }
    }

    /// Dials `addr` for torrent `t`; `encrypt`: the peer list's choice of
    /// the obfuscated handshake for it (the policy decides).
    pub(super) fn start_connect(&mut self, t: TorrentId, addr: SocketAddr, encrypt: bool) {
        let socket = match sockets::tcp_socket_for_connect(addr, &self.bind) {
            Ok(s) => s,
            Err(e) => {
                self.dial_failed(t, addr, &e.to_string());
                return;
            }
        };
        let fd: OwnedFd = socket.into();
        let raw = fd.as_raw_fd();
        let Some(id) = self
            .conns
            .insert(fd, addr, ConnState::Connecting { torrent: t }, self.now)
        else {
            self.dial_failed(t, addr, "too many connections on this shard");
            return;
        };
        let obfuscate = self.settings.encryption().dial_obfuscated(encrypt);
        if let Some(c) = self.conns.get_mut(id) {
            c.outgoing = true;
            c.dial_obfuscated = obfuscate;
        }
        match self.queue(OpCtx::Connect { conn: id }, |ev| ev.connect(raw, addr)) {
            Ok(_) => {
                if let Some(c) = self.conns.get_mut(id) {
                    c.ops += 1;
                }
            }
            Err(e) => {
                self.conns.remove(id);
                self.dial_failed(t, addr, &e.to_string());
            }
        }
    }

    pub(super) fn on_connect(&mut self, id: ConnId, c: Completion<Option<OpCtx>>) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        conn.ops = conn.ops.saturating_sub(1);
        let addr = conn.addr;
        let ConnState::Connecting { torrent: t } = conn.state else {
            self.maybe_reap(id);
            return;
        };
        let active = self.torrents.get(t).is_some_and(|e| e.is_active());
        if let Err(errno) = c.result {
            self.dial_failed(t, addr, &os_error_text(errno));
            self.drop_conn(id, false);
            self.pump(t);
            return;
        }
        if !active {
            // Dropping a connecting conn tells the engine (which is stopping).
            self.drop_conn(id, false);
            return;
        }
        if self.conns.get(id).is_some_and(|c| c.dial_obfuscated) {
            self.start_dial_handshake(id, t);
            return;
        }
        let _ = self.attach(id, t, addr, Direction::Outgoing);
    }

    /// Drops connections that did not name a torrent, or connect, or end
    /// their encrypted handshake, in time.
    pub(super) fn sweep(&mut self, now: std::time::Duration) {
        let slow: Vec<(ConnId, ConnState, SocketAddr)> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                matches!(
                    c.state,
                    ConnState::Routing | ConnState::Connecting { .. } | ConnState::Handshake { .. }
                ) && now.saturating_sub(c.since) >= ROUTING_TIMEOUT
            })
            .map(|(id, c)| (id, c.state, c.addr))
            .collect();
        for (id, state, addr) in slow {
            if let ConnState::Connecting { torrent }
            | ConnState::Handshake {
                torrent: Some(torrent),
            } = state
            {
                let why = match state {
                    ConnState::Handshake { .. } => format!(
                        "no answer to the encrypted handshake within {} s",
                        ROUTING_TIMEOUT.as_secs()
                    ),
                    _ => format!("no answer within {} s", ROUTING_TIMEOUT.as_secs()),
                };
                self.dial_failed(torrent, addr, &why);
                self.drop_conn(id, false);
                if matches!(state, ConnState::Handshake { .. }) {
                    self.switch_form(torrent, addr, "no answer to its encrypted handshake");
                }
                self.pump(torrent);
                continue;
            }
            if matches!(state, ConnState::Routing | ConnState::Handshake { .. }) {
                self.log.line(
                    now,
                    format!(
                        "peer {addr} dropped: no handshake within {} s",
                        ROUTING_TIMEOUT.as_secs()
                    ),
                );
            }
            self.drop_conn(id, false);
        }
    }

    /// Makes a connection a peer of torrent `t`, feeds it what it received
    /// so far and starts receiving; on refusal the connection is dropped.
    pub(super) fn attach(
        &mut self,
        id: ConnId,
        t: TorrentId,
        addr: SocketAddr,
        direction: Direction,
    ) -> Result<(), crate::engine::AddPeerError> {
        let now = self.now;
        let Some(run) = self.torrents.running_mut(t) else {
            self.drop_conn(id, false);
            return Err(crate::engine::AddPeerError::Stopping);
        };
        match run.torrent.add_peer(now, addr, direction) {
            Ok(peer) => {
                run.conn_of.insert(peer, id);
                if let Some(c) = self.conns.get_mut(id) {
                    c.state = ConnState::Peer { torrent: t, peer };
                    if c.obfuscated.is_some() {
                        run.torrent.mark_encrypted(peer, c.rc4.is_some());
                    }
                }
                self.feed(id, t, peer);
                self.start_recv(id);
                Ok(())
            }
            Err(e) => {
                self.drop_conn(id, false);
                Err(e)
            }
        }
    }

    /// Starts tearing a connection down; `notify`: tell its torrent.
    pub(super) fn drop_conn(&mut self, id: ConnId, notify: bool) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.state == ConnState::Closing {
            return;
        }
        let state = conn.state;
        let addr = conn.addr;
        // A dial in plaintext that the peer closed before sending a byte:
        // it may want the obfuscated handshake.
        let refused_plaintext = conn.outgoing && conn.obfuscated.is_none() && conn.received == 0;
        conn.state = ConnState::Closing;
        conn.mse = None;
        let pipe = conn.pipe.take();
        if let Some(fd) = conn.raw_fd() {
            // SAFETY: shutdown on an fd we own; it only wakes pending ops.
            unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR);
            }
        }
        let items: Vec<OutItem> = conn.out.drain(..).collect();
        if let (Some(p), Some(pipes)) = (pipe, self.pipes.as_mut()) {
            pipes.discard(p);
        }
        match state {
            ConnState::Peer { torrent, peer } => {
                if let Some(run) = self.torrents.running_mut(torrent) {
                    run.conn_of.remove(&peer);
                    if notify {
                        run.torrent.peer_removed(now, peer);
                    }
                }
                if refused_plaintext {
                    self.switch_form(torrent, addr, "closed before its handshake");
                }
            }
            ConnState::Connecting { torrent }
            | ConnState::Handshake {
                torrent: Some(torrent),
            } => {
                // Dials dropped because the torrent stops (a failure that
                // was reported already is ignored by the engine).
                if let Some(t) = self.torrents.engine_mut(torrent) {
                    t.connect_failed(now, addr);
                }
            }
            ConnState::Routing | ConnState::Handshake { torrent: None } | ConnState::Closing => {}
        }
        for item in items {
            if let OutItem::Blocks(b) = item {
                let _ = self.ev.buffers().release(b.buffer);
            }
        }
        self.maybe_reap(id);
    }

    /// A dial of `addr` for torrent `t` failed: the engine's peer list
    /// counts it and says when the address is dialled again; the reason and
    /// that go to the peer log. The engine's new outputs (the next dials)
    /// are left for the caller's pump.
    pub(super) fn dial_failed(&mut self, t: TorrentId, addr: SocketAddr, why: &str) {
        let now = self.now;
        let Some(engine) = self.torrents.engine_mut(t) else {
            return;
        };
        let next = match engine.connect_failed(now, addr) {
            Retry::In(wait) => format!("retry in {}", wait_text(wait)),
            Retry::Forgotten { failures } => {
                format!("{failures} failures in a row: address forgotten")
            }
            Retry::NotWhileSeeding => "not retried while seeding".to_owned(),
            // The torrent stops, or the report is late: nothing to say.
            Retry::Unknown => return,
        };
        self.log
            .line(now, format!("connect to {addr} failed: {why} ({next})"));
    }

    /// Drops the dials in flight for torrent `t` (it stops serving).
    pub(super) fn drop_connecting(&mut self, t: TorrentId) {
        let dialling: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.state == ConnState::Connecting { torrent: t }
                    || c.state == ConnState::Handshake { torrent: Some(t) }
            })
            .map(|(id, _)| id)
            .collect();
        for id in dialling {
            self.drop_conn(id, false);
        }
    }

    /// Frees a closing connection once no op names it.
    pub(super) fn maybe_reap(&mut self, id: ConnId) {
        let ready = self
            .conns
            .get(id)
            .is_some_and(|c| c.state == ConnState::Closing && c.ops == 0);
        if ready {
            // Dropping the OwnedFd closes it.
            self.conns.remove(id);
        }
    }
}

fn peer_addr(fd: &OwnedFd) -> Option<SocketAddr> {
    let s = socket2::SockRef::from(fd);
    s.peer_addr().ok()?.as_socket()
}

/// An errno as words, without Rust's " (os error N)" suffix.
fn os_error_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// A wait as an operator reads it: "10 s", "5 min", "250 ms".
fn wait_text(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 120 && secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else if secs >= 1 {
        format!("{secs} s")
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn waits_and_errors_read_as_words() {
        assert_eq!(wait_text(Duration::from_secs(10)), "10 s");
        assert_eq!(wait_text(Duration::from_secs(300)), "5 min");
        assert_eq!(wait_text(Duration::from_secs(90)), "90 s");
        assert_eq!(wait_text(Duration::from_millis(250)), "250 ms");
        assert_eq!(os_error_text(libc::ECONNREFUSED), "Connection refused");
    }
}
