//! Writing verified pieces: a piece the engine verified is written with
//! one op per file run, all from one shared buffer (no copy); short writes
//! continue where they stopped. The piece counts as written (and the engine
//! sends `have`) only when every run completed; a failed run fails the
//! piece, which goes back to the picker.
//!
//! Every write op in flight counts in its torrent's `io_ops`, so a torrent
//! is never paused or removed (its files closed) under a write.

use std::sync::Arc;

use super::{OpCtx, Shard};
use crate::runtime::event_loop::Completion;
use crate::runtime::session::types::TorrentId;

/// A piece being written.
pub struct PendingWrite {
    pub data: Arc<[u8]>,
    /// Write ops in flight.
    pub ops: u32,
    pub failed: bool,
}

/// Where one write op puts its bytes.
#[derive(Debug, Clone, Copy)]
struct Run {
    file: usize,
    /// Range of the piece.
    start: u32,
    len: u32,
    file_offset: u64,
}

fn errno_text(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno).to_string()
}

impl Shard {
    pub(super) fn start_write(&mut self, t: TorrentId, piece: u32, data: Arc<[u8]>) {
        let Some(spans) = self
            .torrents
            .get(t)
            .and_then(|e| e.storage.as_ref())
            .map(|s| s.piece_spans(piece))
        else {
            let now = self.now;
            if let Some(engine) = self.torrents.engine_mut(t) {
                engine.on_piece_written(now, piece, false);
            }
            return;
        };
        self.writes.insert(
            (t, piece),
            PendingWrite {
                data,
                ops: 0,
                failed: false,
            },
        );
        for s in spans.into_iter().filter(|s| !s.pad) {
            let run = Run {
                file: s.file_index,
                start: s.buffer_offset as u32,
                len: s.length as u32,
                file_offset: s.file_offset,
            };
            self.write_run(t, piece, run);
        }
        self.write_done_check(t, piece);
    }

    fn write_run(&mut self, t: TorrentId, piece: u32, run: Run) {
        let fd = self
            .torrents
            .get(t)
            .and_then(|e| e.storage.as_ref())
            .and_then(|s| s.fd(run.file));
        let Some(w) = self.writes.get(&(t, piece)) else {
            return;
        };
        let data = w.data.clone();
        let Run {
            file,
            start,
            len,
            file_offset,
        } = run;
        let ok = fd.is_some_and(|fd| {
            let ctx = OpCtx::Write {
                torrent: t,
                piece,
                file,
                start,
                len,
                file_offset,
            };
            self.queue(ctx, |ev| {
                ev.write_at_shared(fd, data.clone(), start as usize, len as usize, file_offset)
            })
            .is_ok()
        });
        if ok {
            if let Some(e) = self.torrents.get_mut(t) {
                e.io_ops += 1;
            }
        }
        if let Some(w) = self.writes.get_mut(&(t, piece)) {
            if ok {
                w.ops += 1;
            } else {
                w.failed = true;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_write(
        &mut self,
        c: Completion<Option<OpCtx>>,
        t: TorrentId,
        piece: u32,
        file: usize,
        start: u32,
        len: u32,
        file_offset: u64,
    ) {
        if let Some(e) = self.torrents.get_mut(t) {
            debug_assert!(e.io_ops > 0, "a write completed that was not counted");
            e.io_ops = e.io_ops.saturating_sub(1);
        }
        if let Some(w) = self.writes.get_mut(&(t, piece)) {
            w.ops = w.ops.saturating_sub(1);
        }
        match c.result {
            Ok(n) if n > 0 && n < len => {
                let rest = Run {
                    file,
                    start: start + n,
                    len: len - n,
                    file_offset: file_offset + u64::from(n),
                };
                self.write_run(t, piece, rest);
            }
            Ok(n) if n == len => {}
            other => {
                let path = self
                    .torrents
                    .get(t)
                    .and_then(|e| e.storage.as_ref())
                    .and_then(|s| s.path(file))
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let why = match other {
                    Err(e) => errno_text(e),
                    _ => "nothing written".into(),
                };
                tracing::error!("cannot write {path}: {why}");
                if let Some(w) = self.writes.get_mut(&(t, piece)) {
                    w.failed = true;
                }
            }
        }
        self.write_done_check(t, piece);
    }

    fn write_done_check(&mut self, t: TorrentId, piece: u32) {
        let done = self.writes.get(&(t, piece)).is_some_and(|w| w.ops == 0);
        if !done {
            return;
        }
        let Some(w) = self.writes.remove(&(t, piece)) else {
            return;
        };
        let now = self.now;
        if let Some(engine) = self.torrents.engine_mut(t) {
            engine.on_piece_written(now, piece, !w.failed);
        }
        self.pump(t);
    }
}
