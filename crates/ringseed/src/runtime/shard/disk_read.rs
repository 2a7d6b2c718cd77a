//! Reading blocks for peers: the blocks a torrent asks to read are
//! coalesced per peer ([`coalesce`]: adjacent blocks of one piece, up to
//! `SEND_BLOCKS_MAX`, within one pool buffer) into [`ReadJob`]s; a job
//! waits for upload tokens when limited (`throttle`), then for a pool
//! buffer (round-robin over torrents and peers when the pool is dry), and
//! is read one file run at a time. Blocks still wanted when the read ends
//! are queued on the connection as one send.
//!
//! Every read op in flight counts in its torrent's `io_ops`, so a torrent
//! is never paused or removed (its files closed) under a read.

use super::conn::{BlocksOut, ConnId, ConnState, OutItem};
use super::recv::conn_key;
use super::{OpCtx, Shard};
use crate::engine::PeerId;
use crate::runtime::event_loop::{
    BlockSegment, BufferId, Completion, HEADER_BYTES, SEND_BLOCKS_MAX,
};
use crate::runtime::session::types::TorrentId;
use crate::storage::FileSpan;

/// A read of up to `SEND_BLOCKS_MAX` adjacent blocks one peer asked for,
/// into one buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadJob {
    pub conn: ConnId,
    pub torrent: TorrentId,
    pub peer: PeerId,
    pub piece: u32,
    /// Offset of the first block in the piece.
    pub offset: u32,
    /// Lengths of the blocks, in order.
    pub lens: [u32; SEND_BLOCKS_MAX],
    pub n: usize,
}

impl ReadJob {
    pub fn total(&self) -> u32 {
        self.lens[..self.n].iter().sum()
    }

    /// Offset in the piece and length of each block.
    pub fn blocks(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.lens[..self.n].iter().scan(self.offset, |at, &len| {
            let b = (*at, len);
            *at += len;
            Some(b)
        })
    }

    /// Bytes the job puts on the wire (blocks and their headers).
    pub fn wire_bytes(&self) -> u64 {
        u64::from(self.total()) + (self.n * HEADER_BYTES) as u64
    }
}

/// One block a torrent asked to read: (peer, piece, offset, length).
pub type BlockRead = (PeerId, u32, u32, u32);

/// Groups `reads` (in the order the torrent asked) into jobs: runs of
/// adjacent blocks of one piece for one peer, at most `SEND_BLOCKS_MAX`
/// blocks and `room` bytes each. `conn` names each peer's connection; a
/// peer without one (gone) gets no job.
pub fn coalesce(
    torrent: TorrentId,
    reads: &[BlockRead],
    room: u32,
    conn: impl Fn(PeerId) -> Option<ConnId>,
    mut emit: impl FnMut(ReadJob),
) {
    let mut job: Option<ReadJob> = None;
    for &(peer, piece, offset, length) in reads {
        if let Some(j) = job.as_mut() {
            let adjacent = j.peer == peer
                && j.piece == piece
                && j.offset + j.total() == offset
                && j.n < SEND_BLOCKS_MAX
                && j.total() + length <= room;
            if adjacent {
                j.lens[j.n] = length;
                j.n += 1;
                continue;
            }
        }
        if let Some(j) = job.take() {
            emit(j);
        }
        let Some(conn) = conn(peer) else {
            continue;
        };
        let mut lens = [0; SEND_BLOCKS_MAX];
        lens[0] = length;
        job = Some(ReadJob {
            conn,
            torrent,
            peer,
            piece,
            offset,
            lens,
            n: 1,
        });
    }
    if let Some(j) = job {
        emit(j);
    }
}

impl Shard {
    /// Starts the reads a pump collected, coalesced.
    pub(super) fn start_reads(&mut self, t: TorrentId, reads: &[BlockRead]) {
        let room = self.ev.buffer_pool().buffer_bytes() as u32;
        let mut jobs = Vec::new();
        if let Some(run) = self.torrents.running(t) {
            coalesce(
                t,
                reads,
                room,
                |p| run.conn_of.get(&p).copied(),
                |j| jobs.push(j),
            );
        }
        for j in jobs {
            self.admit_read(j);
        }
    }

    /// Starts a read, or queues it behind the reads already waiting for a
    /// buffer (its turn comes round-robin, see `deferred_reads`).
    pub(super) fn start_read(&mut self, job: ReadJob) {
        if self.deferred_reads.is_empty() {
            self.read_now(job);
            return;
        }
        self.defer_read(job);
    }

    pub(super) fn read_now(&mut self, job: ReadJob) {
        let wanted = self
            .torrents
            .get(job.torrent)
            .is_some_and(|e| e.is_active())
            && self
                .conns
                .get(job.conn)
                .is_some_and(|c| c.state != ConnState::Closing);
        if !wanted {
            return;
        }
        let Err(job) = self.try_splice(job) else {
            return;
        };
        let Some(buffer) = self.ev.buffers().acquire() else {
            self.defer_read(job);
            return;
        };
        self.read_span(job, buffer, 0);
    }

    fn defer_read(&mut self, job: ReadJob) {
        let (t, key, conn) = (job.torrent.slot as usize, conn_key(job.conn), job.conn);
        if self.deferred_reads.push(t, key, job).is_err() {
            // Past WAITING_MAX reads waiting (far beyond peers x windows):
            // this peer asks for more than the shard can hold.
            let addr = self
                .conns
                .get(conn)
                .map_or_else(|| "?".to_owned(), |c| c.addr.to_string());
            let line = format!(
                "peer {addr} dropped: asks for more blocks than can wait to be read \
                 ({} reads wait for a buffer)",
                self.deferred_reads.len()
            );
            self.log.line(self.now, line);
            self.drop_conn(conn, true);
        }
    }

    fn read_failed(&mut self, job: ReadJob, buffer: BufferId) {
        let _ = self.ev.buffers().release(buffer);
        let now = self.now;
        if let Some(t) = self.torrents.engine_mut(job.torrent) {
            for (offset, len) in job.blocks() {
                t.on_block_read_failed(now, job.peer, job.piece, offset, len);
            }
        }
        self.pump(job.torrent);
        self.maybe_reap(job.conn);
    }

    /// Reads the next file run of the job's bytes into `buffer`, from byte
    /// `done` of the run on.
    fn read_span(&mut self, job: ReadJob, buffer: BufferId, done: u32) {
        let total = job.total();
        let span = self
            .torrents
            .get(job.torrent)
            .and_then(|e| e.storage.as_ref())
            .and_then(|s| {
                s.block_spans(job.piece, job.offset + done, total - done)
                    .ok()
                    .and_then(|spans| spans.first().copied())
                    .map(|span| (span, s.fd(span.file_index)))
            });
        let Some((span, fd)) = span else {
            self.read_failed(job, buffer);
            return;
        };
        let FileSpan {
            length,
            file_offset,
            pad,
            ..
        } = span;
        let start = done as usize;
        let len = length as usize;
        let fd = match fd {
            Some(fd) if !pad => fd,
            // A file missing when the torrent was opened: none of its
            // pieces is ours, so this is never served as zeros.
            None if !pad => {
                self.read_failed(job, buffer);
                return;
            }
            _ => {
                // Pad files read as zeros.
                if let Some(d) = self
                    .ev
                    .buffers()
                    .get_mut(buffer)
                    .and_then(|b| b.get_mut(start..start + len))
                {
                    d.fill(0);
                }
                let next = done + length as u32;
                if next >= total {
                    self.blocks_ready(job, buffer);
                } else {
                    self.read_span(job, buffer, next);
                }
                return;
            }
        };
        let ctx = OpCtx::Read { job, done };
        match self.queue(ctx, |ev| {
            ev.read_at_range(fd, buffer, start, len, file_offset)
        }) {
            Ok(_) => {
                if let Some(c) = self.conns.get_mut(job.conn) {
                    c.ops += 1;
                }
                if let Some(e) = self.torrents.get_mut(job.torrent) {
                    e.io_ops += 1;
                }
            }
            Err(_) => self.read_failed(job, buffer),
        }
    }

    pub(super) fn on_read(&mut self, c: Completion<Option<OpCtx>>, job: ReadJob, done: u32) {
        if let Some(cn) = self.conns.get_mut(job.conn) {
            cn.ops = cn.ops.saturating_sub(1);
        }
        if let Some(e) = self.torrents.get_mut(job.torrent) {
            debug_assert!(e.io_ops > 0, "a read completed that was not counted");
            e.io_ops = e.io_ops.saturating_sub(1);
        }
        let Some(buffer) = c.buffer else { return };
        let alive = self
            .conns
            .get(job.conn)
            .is_some_and(|cn| cn.state != ConnState::Closing)
            && self
                .torrents
                .get(job.torrent)
                .is_some_and(|e| e.is_active());
        match c.result {
            Ok(n) if n > 0 && alive => {
                let done = done + n;
                if done >= job.total() {
                    self.blocks_ready(job, buffer);
                } else {
                    self.read_span(job, buffer, done);
                }
            }
            _ => self.read_failed(job, buffer),
        }
    }

    /// The job's blocks are in `buffer`: queue those still wanted.
    fn blocks_ready(&mut self, job: ReadJob, buffer: BufferId) {
        let now = self.now;
        let mut out = BlocksOut {
            buffer,
            segs: [BlockSegment {
                header: [0; HEADER_BYTES],
                start: 0,
                len: 0,
            }; SEND_BLOCKS_MAX],
            n: 0,
            skip: 0,
            sealed: false,
        };
        if let Some(t) = self.torrents.engine_mut(job.torrent) {
            for (offset, len) in job.blocks() {
                if let Some(header) = t.on_block_read(now, job.peer, job.piece, offset, len) {
                    out.segs[out.n] = BlockSegment {
                        header,
                        start: (offset - job.offset) as usize,
                        len: len as usize,
                    };
                    out.n += 1;
                }
            }
        }
        match self.conns.get_mut(job.conn) {
            Some(c) if c.state != ConnState::Closing && out.n > 0 => {
                c.out.push_back(OutItem::Blocks(out));
                self.pump(job.torrent);
                self.try_send(job.conn);
            }
            _ => {
                let _ = self.ev.buffers().release(buffer);
                self.pump(job.torrent);
                self.maybe_reap(job.conn);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: TorrentId = TorrentId {
        slot: 0,
        generation: 1,
    };

    fn peer(n: u32) -> PeerId {
        PeerId {
            slot: n,
            generation: 1,
        }
    }

    fn jobs(reads: &[BlockRead], room: u32) -> Vec<ReadJob> {
        let mut out = Vec::new();
        coalesce(
            T,
            reads,
            room,
            |p| {
                (p.slot != 9).then_some(ConnId {
                    slot: p.slot,
                    generation: 1,
                })
            },
            |j| out.push(j),
        );
        out
    }

    const B: u32 = 16 * 1024;

    #[test]
    fn adjacent_blocks_of_one_peer_and_piece_go_together() {
        let reads: Vec<BlockRead> = (0..6).map(|i| (peer(1), 3, i * B, B)).collect();
        let j = jobs(&reads, 64 * 1024);
        assert_eq!(j.len(), 2, "at most SEND_BLOCKS_MAX (4) per job");
        assert_eq!((j[0].n, j[0].offset, j[0].total()), (4, 0, 4 * B));
        assert_eq!((j[1].n, j[1].offset), (2, 4 * B));
        assert_eq!(
            j[1].blocks().collect::<Vec<_>>(),
            vec![(4 * B, B), (5 * B, B)]
        );
        assert_eq!(j[0].wire_bytes(), u64::from(4 * B) + 4 * 13);
    }

    #[test]
    fn gaps_other_peers_pieces_and_the_buffer_split_jobs() {
        let reads = [
            (peer(1), 0, 0, B),
            (peer(1), 0, 2 * B, B), // gap
            (peer(2), 0, 3 * B, B), // other peer
            (peer(2), 1, 4 * B, B), // other piece
            (peer(2), 1, 5 * B, B),
            (peer(2), 1, 6 * B, B), // past a 2-block buffer
        ];
        let j = jobs(&reads, 2 * B);
        let shape: Vec<(u32, u32, usize)> =
            j.iter().map(|j| (j.peer.slot, j.offset, j.n)).collect();
        assert_eq!(
            shape,
            vec![
                (1, 0, 1),
                (1, 2 * B, 1),
                (2, 3 * B, 1),
                (2, 4 * B, 2),
                (2, 6 * B, 1)
            ]
        );
    }

    #[test]
    fn a_peer_without_a_connection_gets_no_job() {
        let reads = [(peer(9), 0, 0, B), (peer(9), 0, B, B), (peer(1), 0, 0, B)];
        let j = jobs(&reads, 64 * 1024);
        assert_eq!(j.len(), 1);
        assert_eq!(j[0].peer, peer(1));
    }
}
