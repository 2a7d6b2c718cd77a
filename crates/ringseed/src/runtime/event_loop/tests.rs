use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

use super::*;

/// Longest any test waits for one completion.
const WAIT_MAX: Duration = Duration::from_secs(2);

fn small_loop() -> EventLoop {
    match EventLoop::new(LoopConfig {
        ring_entries: 16,
        ops_in_flight_max: 16,
        buffers: 8,
        buffer_bytes: 16 * 1024,
    }) {
        Ok(l) => l,
        Err(e) => panic!("event loop: {e}"),
    }
}

/// Submits and drains until `op` completes (bounded by [`WAIT_MAX`]).
fn wait_for(ev: &mut EventLoop, op: OpId, seen: &mut Vec<Completion>) -> Completion {
    let start = Instant::now();
    loop {
        if let Some(c) = seen.iter().find(|c| c.op == op) {
            return *c;
        }
        assert!(start.elapsed() < WAIT_MAX, "op {op:?} did not complete");
        ev.submit_and_wait(1, Some(Duration::from_millis(50)))
            .unwrap_or_else(|e| panic!("submit: {e}"));
        ev.drain_completions(seen);
    }
}

fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let client = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect: {e}"));
    let (server, _) = listener.accept().unwrap_or_else(|e| panic!("accept: {e}"));
    for s in [&client, &server] {
        s.set_read_timeout(Some(WAIT_MAX))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    (client, server)
}

fn acquire(ev: &mut EventLoop) -> BufferId {
    ev.buffers()
        .acquire()
        .unwrap_or_else(|| panic!("no buffer free"))
}

#[test]
fn accepts_a_connection() {
    let mut ev = small_loop();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let op = ev
        .accept(listener.as_raw_fd())
        .unwrap_or_else(|e| panic!("{e}"));
    ev.submit_and_wait(0, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let client = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect: {e}"));
    let mut seen = Vec::new();
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!(c.kind, OpKind::Accept);
    let fd = match c.result {
        Ok(fd) => fd as RawFd,
        Err(errno) => panic!("accept failed: errno {errno}"),
    };
    assert!(fd > 0);
    assert_eq!(c.peer, client.local_addr().ok());
    assert_eq!(c.buffer, None);
    let close = ev.close(fd).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wait_for(&mut ev, close, &mut seen).result, Ok(0));
    assert_eq!(ev.in_flight(), 0);
}

#[test]
fn connect_send_recv_echo() {
    let mut ev = small_loop();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    // A std thread echoes back whatever one client sends.
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(WAIT_MAX))?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf)?;
        s.write_all(buf.get(..n).unwrap_or_default())
    });
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    let mut seen = Vec::new();
    let op = ev.connect(fd, addr).unwrap_or_else(|e| panic!("{e}"));
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!((c.kind, c.result), (OpKind::Connect, Ok(0)));

    let buf = acquire(&mut ev);
    let msg = b"ringseed echo";
    ev.buffers()
        .get_mut(buf)
        .and_then(|b| b.get_mut(..msg.len()))
        .unwrap_or_else(|| panic!("buffer"))
        .copy_from_slice(msg);
    let op = ev
        .send(fd, buf, msg.len())
        .unwrap_or_else(|e| panic!("{e}"));
    // In flight: the caller cannot reach the bytes nor release the buffer.
    assert!(ev.buffers().get(buf).is_none());
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!(c.result, Ok(msg.len() as u32));
    assert_eq!(c.buffer, Some(buf));

    // The same buffer, back with the caller, is reused for the recv.
    let op = ev.recv(fd, buf).unwrap_or_else(|e| panic!("{e}"));
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!(c.kind, OpKind::Recv);
    let n = c.result.unwrap_or_else(|e| panic!("recv errno {e}")) as usize;
    assert_eq!(
        ev.buffers().get(buf).and_then(|b| b.get(..n)),
        Some(&msg[..])
    );
    assert_eq!(ev.buffers().release(buf), Ok(()));
    echo.join()
        .unwrap_or_else(|_| panic!("echo thread"))
        .unwrap_or_else(|e| panic!("echo: {e}"));
    // SAFETY: closing the fd this test opened.
    unsafe { libc::close(fd) };
}

#[test]
fn send_with_header_delivers_header_and_block() {
    let mut ev = small_loop();
    let (client, mut server) = pair();
    let header: [u8; HEADER_BYTES] = [0, 0, 0x40, 0x09, 7, 0, 0, 0, 3, 0, 0, 0x40, 0];
    let buf = acquire(&mut ev);
    let block_bytes = 16 * 1024;
    for (i, b) in ev
        .buffers()
        .get_mut(buf)
        .unwrap_or_else(|| panic!("buffer"))
        .iter_mut()
        .enumerate()
    {
        *b = (i % 251) as u8;
    }
    let op = ev
        .send_with_header(client.as_raw_fd(), header, buf, block_bytes)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!(c.kind, OpKind::SendWithHeader);
    assert_eq!(c.result, Ok((HEADER_BYTES + block_bytes) as u32));
    let mut got = vec![0u8; HEADER_BYTES + block_bytes];
    server
        .read_exact(&mut got)
        .unwrap_or_else(|e| panic!("read: {e}"));
    assert_eq!(got.get(..HEADER_BYTES), Some(&header[..]));
    assert_eq!(
        got.get(HEADER_BYTES..),
        ev.buffers().get(buf).and_then(|b| b.get(..block_bytes))
    );
}

#[test]
fn send_blocks_sends_several_piece_messages_and_skips_what_went_out() {
    let mut ev = small_loop();
    let (client, mut server) = pair();
    let buf = acquire(&mut ev);
    let size = ev.buffer_pool().buffer_bytes();
    for (i, b) in ev
        .buffers()
        .get_mut(buf)
        .unwrap_or_else(|| panic!("buffer"))
        .iter_mut()
        .enumerate()
    {
        *b = (i % 253) as u8;
    }
    let third = size / 3;
    let segs: Vec<BlockSegment> = (0..3)
        .map(|i| BlockSegment {
            header: [i as u8 + 1; HEADER_BYTES],
            start: i * third,
            len: third - 7,
        })
        .collect();
    let expected: Vec<u8> = segs
        .iter()
        .flat_map(|s| {
            let block =
                ev.buffer_pool().get(buf).unwrap_or_default()[s.start..s.start + s.len].to_vec();
            s.header.iter().copied().chain(block)
        })
        .collect();
    for skip in [0, 5, HEADER_BYTES + 100] {
        let op = ev
            .send_blocks(client.as_raw_fd(), buf, &segs, skip)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut seen = Vec::new();
        let c = wait_for(&mut ev, op, &mut seen);
        assert_eq!(c.kind, OpKind::SendBlocks);
        assert_eq!(c.result, Ok((expected.len() - skip) as u32));
        let mut got = vec![0u8; expected.len() - skip];
        server
            .read_exact(&mut got)
            .unwrap_or_else(|e| panic!("read: {e}"));
        assert_eq!(got, expected[skip..], "skip {skip}");
    }
    // Refusals: no segment, too many, past the buffer, skipping everything.
    let fd = client.as_raw_fd();
    assert!(matches!(
        ev.send_blocks(fd, buf, &[], 0),
        Err(LoopError::Segments { count: 0, .. })
    ));
    let five = vec![segs[0]; SEND_BLOCKS_MAX + 1];
    assert!(matches!(
        ev.send_blocks(fd, buf, &five, 0),
        Err(LoopError::Segments { .. })
    ));
    let past = BlockSegment {
        header: [0; HEADER_BYTES],
        start: size - 10,
        len: 11,
    };
    assert!(matches!(
        ev.send_blocks(fd, buf, &[past], 0),
        Err(LoopError::Range { .. })
    ));
    assert!(matches!(
        ev.send_blocks(fd, buf, &segs[..1], HEADER_BYTES + third - 7),
        Err(LoopError::Length { .. })
    ));
    assert_eq!(ev.buffer_pool().state(buf).ok(), Some(BufferState::Held));
}

#[test]
fn multishot_recv_fills_ring_buffers_as_bytes_arrive() {
    let mut ev = small_loop();
    let (client, mut server) = pair();
    assert!(matches!(
        ev.recv_multi(client.as_raw_fd()),
        Err(LoopError::NoRecvRing)
    ));
    ev.setup_recv_ring(2, 1024)
        .unwrap_or_else(|e| panic!("{e}"));
    let op = ev
        .recv_multi(client.as_raw_fd())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut got = Vec::new();
    let mut seen = Vec::new();
    // Three chunks through a ring of two buffers: each is given back.
    for round in 0..3u8 {
        server
            .write_all(&[round; 700])
            .unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + WAIT_MAX;
        let mut this = 0;
        while this < 700 {
            assert!(Instant::now() < deadline, "no data in round {round}");
            ev.submit_and_wait(1, Some(Duration::from_millis(100)))
                .unwrap_or_else(|e| panic!("{e}"));
            seen.clear();
            ev.drain_completions(&mut seen);
            for c in &seen {
                assert_eq!(c.op, op);
                assert_eq!(c.kind, OpKind::RecvMulti);
                assert!(c.more, "still armed: {c:?}");
                let n = c.result.unwrap_or_else(|e| panic!("errno {e}")) as usize;
                let bid = EventLoop::ring_buffer_of(c).unwrap_or_else(|| panic!("no buffer"));
                got.extend_from_slice(ev.ring_buffer(bid, n).unwrap_or_default());
                assert!(ev.give_back_ring_buffer(bid));
                assert!(!ev.give_back_ring_buffer(bid), "only once");
                this += n;
            }
        }
    }
    let want: Vec<u8> = (0..3u8).flat_map(|r| [r; 700]).collect();
    assert_eq!(got, want);
    // EOF ends the multishot op.
    drop(server);
    seen.clear();
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!(c.result, Ok(0));
    assert!(!c.more);
}

#[test]
fn an_empty_recv_ring_ends_the_multishot_recv_with_enobufs() {
    let mut ev = small_loop();
    let (client, mut server) = pair();
    ev.setup_recv_ring(1, 256).unwrap_or_else(|e| panic!("{e}"));
    let op = ev
        .recv_multi(client.as_raw_fd())
        .unwrap_or_else(|e| panic!("{e}"));
    server
        .write_all(&[1; 100])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!(c.result, Ok(100));
    // Keep the only buffer: the next bytes find the ring empty.
    server
        .write_all(&[2; 100])
        .unwrap_or_else(|e| panic!("{e}"));
    seen.clear();
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!(c.result, Err(libc::ENOBUFS));
    assert!(!c.more, "ENOBUFS disarms the op");
    assert_eq!(ev.in_flight(), 0);
}

#[test]
fn reads_into_the_registered_pool_with_read_fixed() {
    let mut ev = small_loop();
    assert!(!ev.buffers_registered());
    assert!(
        ev.register_buffers(),
        "this kernel registers a 128 KiB pool"
    );
    assert!(ev.register_buffers(), "a second call is a no-op");
    let mut file = tempfile::tempfile().unwrap_or_else(|e| panic!("{e}"));
    let data: Vec<u8> = (0..70_000u32).map(|i| (i * 13 % 256) as u8).collect();
    file.write_all(&data).unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    // Two buffers, the second at an inner offset: both lie in fixed buffer 0.
    for (k, start) in [(0usize, 0usize), (1, 100)] {
        let buf = acquire(&mut ev);
        let op = ev
            .read_at_range(file.as_raw_fd(), buf, start, 16_000, 1_000 * k as u64)
            .unwrap_or_else(|e| panic!("{e}"));
        let c = wait_for(&mut ev, op, &mut seen);
        assert_eq!((c.kind, c.result), (OpKind::ReadAt, Ok(16_000)));
        assert_eq!(
            ev.buffers()
                .get(buf)
                .and_then(|b| b.get(start..start + 16_000)),
            data.get(1_000 * k..1_000 * k + 16_000)
        );
    }
}

#[test]
fn reads_a_file_at_an_offset() {
    let mut ev = small_loop();
    let mut file = tempfile::tempfile().unwrap_or_else(|e| panic!("{e}"));
    let data: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 256) as u8).collect();
    file.write_all(&data).unwrap_or_else(|e| panic!("{e}"));
    let buf = acquire(&mut ev);
    let op = ev
        .read_at(file.as_raw_fd(), buf, 1000, 30_000)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!((c.kind, c.result), (OpKind::ReadAt, Ok(1000)));
    assert_eq!(
        ev.buffers().get(buf).and_then(|b| b.get(..1000)),
        data.get(30_000..31_000)
    );
    // Past the end: 0 bytes, not an error.
    let op = ev
        .read_at(file.as_raw_fd(), buf, 100, 50_000)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wait_for(&mut ev, op, &mut seen).result, Ok(0));
}

#[test]
fn a_timeout_fires() {
    let mut ev = small_loop();
    let start = Instant::now();
    let op = ev
        .timeout(Duration::from_millis(20))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!((c.kind, c.result), (OpKind::Timeout, Err(libc::ETIME)));
    assert!(start.elapsed() >= Duration::from_millis(15));
}

#[test]
fn each_op_keeps_its_context_in_its_slot() {
    let mut ev: EventLoop<Option<u32>> = EventLoop::with_context(LoopConfig {
        ring_entries: 16,
        ops_in_flight_max: 16,
        buffers: 8,
        buffer_bytes: 16 * 1024,
    })
    .unwrap_or_else(|e| panic!("event loop: {e}"));
    let d = Duration::from_millis(5);
    let a = ev
        .queue_with(Some(7), |ev| ev.timeout(d))
        .unwrap_or_else(|e| panic!("{e}"));
    // An op queued without a context gets the default, not a leftover.
    let b = ev.timeout(d).unwrap_or_else(|e| panic!("{e}"));
    let c = ev
        .queue_with(Some(9), |ev| ev.timeout(d))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (ev.ctx(a), ev.ctx(b), ev.ctx(c)),
        (Some(Some(7)), Some(None), Some(Some(9)))
    );
    let mut seen = Vec::new();
    let start = Instant::now();
    while seen.len() < 3 {
        assert!(start.elapsed() < WAIT_MAX, "timeouts did not fire");
        ev.submit_and_wait(1, Some(Duration::from_millis(50)))
            .unwrap_or_else(|e| panic!("submit: {e}"));
        ev.drain_completions(&mut seen);
    }
    let ctx_of = |op| seen.iter().find(|x| x.op == op).map(|x| x.ctx);
    assert_eq!(
        (ctx_of(a), ctx_of(b), ctx_of(c)),
        (Some(Some(7)), Some(None), Some(Some(9)))
    );
    // Completed ops no longer have a context; a reused slot starts clean.
    assert_eq!(ev.ctx(a), None);
    let again = ev.timeout(d).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ev.ctx(again), Some(None));
}

#[test]
fn a_wait_with_timeout_returns_when_nothing_completes() {
    let mut ev = small_loop();
    let start = Instant::now();
    let done = ev.submit_and_wait(1, Some(Duration::from_millis(20)));
    assert!(done.is_ok(), "{done:?}");
    let mut seen = Vec::new();
    assert_eq!(ev.drain_completions(&mut seen), 0);
    assert!(start.elapsed() < WAIT_MAX);
}

#[test]
fn cancel_ends_a_pending_recv() {
    let mut ev = small_loop();
    let (client, _server) = pair();
    let buf = acquire(&mut ev);
    let recv = ev
        .recv(client.as_raw_fd(), buf)
        .unwrap_or_else(|e| panic!("{e}"));
    ev.submit_and_wait(0, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let cancel = ev.cancel(recv).unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    let c = wait_for(&mut ev, recv, &mut seen);
    assert_eq!(c.result, Err(libc::ECANCELED));
    assert_eq!(c.buffer, Some(buf));
    assert_eq!(wait_for(&mut ev, cancel, &mut seen).kind, OpKind::Cancel);
    // The buffer came back to the caller and can go back to the pool.
    assert_eq!(ev.buffers().release(buf), Ok(()));
    // Cancelling an op no longer in flight is refused.
    assert!(matches!(ev.cancel(recv), Err(LoopError::NotInFlight(_))));
    assert_eq!(ev.in_flight(), 0);
}

#[test]
fn the_slab_refuses_when_full_and_cancels_still_fit() {
    let mut ev = match EventLoop::new(LoopConfig {
        ring_entries: 8,
        ops_in_flight_max: 2,
        buffers: 1,
        buffer_bytes: 64,
    }) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let long = Duration::from_secs(60);
    let a = ev.timeout(long).unwrap_or_else(|e| panic!("{e}"));
    let b = ev.timeout(long).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        ev.timeout(long),
        Err(LoopError::SlabFull {
            what: "op",
            in_flight: 2
        })
    ));
    // A full slab can still cancel what it holds.
    let ca = ev.cancel(a).unwrap_or_else(|e| panic!("{e}"));
    let cb = ev.cancel(b).unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    for op in [a, b] {
        assert_eq!(
            wait_for(&mut ev, op, &mut seen).result,
            Err(libc::ECANCELED)
        );
    }
    for op in [ca, cb] {
        assert_eq!(wait_for(&mut ev, op, &mut seen).result, Ok(0));
    }
    assert_eq!(ev.in_flight(), 0);
    assert!(ev.timeout(long).is_ok());
}

#[test]
fn a_full_submission_queue_is_backpressure() {
    let mut ev = match EventLoop::new(LoopConfig {
        ring_entries: 2,
        ops_in_flight_max: 8,
        buffers: 1,
        buffer_bytes: 64,
    }) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let d = Duration::from_millis(1);
    assert!(ev.timeout(d).is_ok());
    assert!(ev.timeout(d).is_ok());
    assert!(matches!(
        ev.timeout(d),
        Err(LoopError::QueueFull { entries: 2 })
    ));
    // Submitting makes room.
    ev.submit_and_wait(0, None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ev.timeout(d).is_ok());
    let mut seen = Vec::new();
    let start = Instant::now();
    while ev.in_flight() > 0 && start.elapsed() < WAIT_MAX {
        ev.submit_and_wait(1, Some(Duration::from_millis(50)))
            .unwrap_or_else(|e| panic!("{e}"));
        ev.drain_completions(&mut seen);
    }
    assert_eq!(seen.len(), 3);
}

#[test]
fn a_refused_op_gives_its_buffer_back() {
    let mut ev = match EventLoop::new(LoopConfig {
        ring_entries: 1,
        ops_in_flight_max: 4,
        buffers: 2,
        buffer_bytes: 64,
    }) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    assert!(ev.timeout(Duration::from_millis(1)).is_ok());
    let buf = acquire(&mut ev);
    assert!(matches!(ev.recv(0, buf), Err(LoopError::QueueFull { .. })));
    assert_eq!(ev.buffers().state(buf), Ok(BufferState::Held));
    // Lengths outside the buffer are refused before anything is queued.
    assert!(matches!(
        ev.send(0, buf, 65),
        Err(LoopError::Length { len: 65, max: 64 })
    ));
    assert!(matches!(
        ev.send(0, buf, 0),
        Err(LoopError::Length { len: 0, .. })
    ));
}

#[test]
fn an_op_needs_a_held_buffer() {
    let mut ev = small_loop();
    let buf = acquire(&mut ev);
    assert_eq!(ev.buffers().release(buf), Ok(()));
    // Free: not the caller's to lend.
    assert!(matches!(
        ev.send(0, buf, 1),
        Err(LoopError::Buffer(BufferError::State {
            found: BufferState::Free,
            ..
        }))
    ));
    assert!(matches!(
        ev.recv(0, BufferId(999)),
        Err(LoopError::Buffer(BufferError::Unknown { index: 999, .. }))
    ));
    // In flight: not lendable twice.
    let (client, _server) = pair();
    let buf = acquire(&mut ev);
    let recv = ev
        .recv(client.as_raw_fd(), buf)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        ev.send(client.as_raw_fd(), buf, 1),
        Err(LoopError::Buffer(BufferError::State {
            found: BufferState::InKernel,
            ..
        }))
    ));
    assert!(ev.cancel(recv).is_ok());
    // Dropping the loop now waits the recv out before freeing the buffer.
}

#[test]
fn the_pool_hands_out_each_buffer_once() {
    let mut pool = BufferPool::new(3, 8);
    let ids: Vec<BufferId> = std::iter::from_fn(|| pool.acquire()).collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(pool.available(), 0);
    for (i, a) in ids.iter().enumerate() {
        assert!(ids.iter().skip(i + 1).all(|b| b != a));
    }
    for id in &ids {
        assert_eq!(pool.release(*id), Ok(()));
    }
    assert_eq!(pool.available(), 3);
}

#[test]
#[cfg_attr(debug_assertions, should_panic(expected = "buffer release refused"))]
fn a_double_release_is_refused() {
    let mut pool = BufferPool::new(2, 8);
    let id = pool.acquire().unwrap_or_else(|| panic!("no buffer"));
    assert_eq!(pool.release(id), Ok(()));
    // Debug builds stop here; release builds get the error.
    let again = pool.release(id);
    assert_eq!(
        again,
        Err(BufferError::State {
            index: id.index(),
            expected: BufferState::Held,
            found: BufferState::Free
        })
    );
    assert_eq!(pool.available(), 2);
}

#[test]
#[cfg_attr(debug_assertions, should_panic(expected = "buffer release refused"))]
fn releasing_a_buffer_in_flight_is_refused() {
    let mut ev = small_loop();
    let (client, _server) = pair();
    let buf = acquire(&mut ev);
    let _recv = ev
        .recv(client.as_raw_fd(), buf)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ev.buffers().release(buf).is_err());
}

#[test]
fn stale_user_data_is_counted_and_dropped() {
    let mut ev = small_loop();
    let op = ev
        .timeout(Duration::from_millis(1))
        .unwrap_or_else(|e| panic!("{e}"));
    // A completion for the same slot but an older generation, and one for a
    // slot that does not exist.
    let stale = OpId::new(op.index() as u32, op.generation().wrapping_sub(1));
    let outside = OpId::new(u32::MAX, 1);
    for id in [stale, outside] {
        let nop = opcode::Nop::new().build().user_data(id.user_data());
        // SAFETY: a nop carries no pointers.
        assert!(unsafe { ev.ring.submission().push(&nop) }.is_ok());
    }
    let mut seen = Vec::new();
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!(c.kind, OpKind::Timeout);
    let start = Instant::now();
    while ev.stale_completions() < 2 && start.elapsed() < WAIT_MAX {
        ev.submit_and_wait(1, Some(Duration::from_millis(10)))
            .unwrap_or_else(|e| panic!("{e}"));
        ev.drain_completions(&mut seen);
    }
    assert_eq!(ev.stale_completions(), 2);
    assert_eq!(seen.len(), 1);
    // The slot was reused: the old id no longer reaches it.
    let next = ev
        .timeout(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ev.cancel(op).is_err());
    assert!(ev.cancel(next).is_ok());
}

#[test]
fn config_is_bounded() {
    let base = LoopConfig::default();
    for bad in [
        LoopConfig {
            ops_in_flight_max: 0,
            ..base
        },
        LoopConfig {
            buffer_bytes: 0,
            ..base
        },
        LoopConfig {
            buffer_bytes: BUFFER_BYTES_MAX + 1,
            ..base
        },
        LoopConfig {
            buffers: BUFFERS_MAX + 1,
            ..base
        },
        LoopConfig {
            buffers: BUFFERS_MAX,
            buffer_bytes: BUFFER_BYTES_MAX,
            ..base
        },
    ] {
        assert!(
            matches!(EventLoop::new(bad), Err(LoopError::Config { .. })),
            "{bad:?}"
        );
    }
    assert!(matches!(
        EventLoop::new(LoopConfig {
            ring_entries: 0,
            ..base
        }),
        Err(LoopError::Setup(_))
    ));
}

#[test]
fn op_ids_pack_index_and_generation() {
    let id = OpId::new(5, 9);
    assert_eq!((id.index(), id.generation()), (5, 9));
    assert_eq!(id.user_data(), (9 << 32) | 5);
}

#[test]
fn socket_addresses_round_trip() {
    for text in ["127.0.0.1:6881", "[::1]:51413"] {
        let addr: SocketAddr = text.parse().unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: all-zero bytes are a valid sockaddr_storage.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let len = write_sockaddr(addr, &mut storage);
        assert_eq!(read_sockaddr(&storage, len), Some(addr));
        assert_eq!(read_sockaddr(&storage, 1), None);
    }
}

#[test]
fn multishot_accept_reports_each_connection() {
    let mut ev = small_loop();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let op = ev
        .accept_multi(listener.as_raw_fd())
        .unwrap_or_else(|e| panic!("{e}"));
    ev.submit_and_wait(0, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let clients: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect: {e}")))
        .collect();
    let mut seen = Vec::new();
    let start = Instant::now();
    while seen.len() < clients.len() && start.elapsed() < WAIT_MAX {
        ev.submit_and_wait(1, Some(Duration::from_millis(50)))
            .unwrap_or_else(|e| panic!("{e}"));
        ev.drain_completions(&mut seen);
    }
    assert_eq!(seen.len(), 2);
    for c in &seen {
        assert_eq!((c.op, c.kind, c.more), (op, OpKind::AcceptMulti, true));
        let fd = c.result.unwrap_or_else(|e| panic!("accept errno {e}"));
        // SAFETY: closing an fd the loop accepted for this test.
        unsafe { libc::close(fd as RawFd) };
    }
    // Still armed; a cancel ends it with a last completion.
    assert_eq!(ev.in_flight(), 1);
    seen.clear();
    let cancel = ev.cancel(op).unwrap_or_else(|e| panic!("{e}"));
    let last = wait_for(&mut ev, op, &mut seen);
    assert_eq!((last.result, last.more), (Err(libc::ECANCELED), false));
    assert_eq!(wait_for(&mut ev, cancel, &mut seen).result, Ok(0));
    assert_eq!(ev.in_flight(), 0);
}

#[test]
fn two_loop_sockets_talk_through_ranges() {
    let mut ev = small_loop();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: plain socket(2) call.
    let client = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(client >= 0);
    let accept = ev
        .accept(listener.as_raw_fd())
        .unwrap_or_else(|e| panic!("{e}"));
    let connect = ev.connect(client, addr).unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    let server = match wait_for(&mut ev, accept, &mut seen).result {
        Ok(fd) => fd as RawFd,
        Err(e) => panic!("accept errno {e}"),
    };
    assert_eq!(wait_for(&mut ev, connect, &mut seen).result, Ok(0));

    // The client sends bytes 100..300 of its buffer.
    let out = acquire(&mut ev);
    for (i, b) in ev
        .buffers()
        .get_mut(out)
        .unwrap_or_else(|| panic!("buffer"))
        .iter_mut()
        .enumerate()
    {
        *b = (i % 256) as u8;
    }
    let send = ev
        .send_range(client, out, 100, 200)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wait_for(&mut ev, send, &mut seen).result, Ok(200));

    // The server gathers them at offset 10 of its buffer, however they come.
    let inb = acquire(&mut ev);
    let mut got = 0usize;
    let start = Instant::now();
    while got < 200 && start.elapsed() < WAIT_MAX {
        let recv = ev
            .recv_range(server, inb, 10 + got, 200 - got)
            .unwrap_or_else(|e| panic!("{e}"));
        match wait_for(&mut ev, recv, &mut seen).result {
            Ok(0) => panic!("peer closed early"),
            Ok(n) => got += n as usize,
            Err(e) => panic!("recv errno {e}"),
        }
    }
    let sent = ev
        .buffers()
        .get(out)
        .and_then(|b| b.get(100..300))
        .map(<[u8]>::to_vec);
    assert_eq!(
        ev.buffers()
            .get(inb)
            .and_then(|b| b.get(10..210))
            .map(<[u8]>::to_vec),
        sent
    );
    for fd in [client, server] {
        let close = ev.close(fd).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(wait_for(&mut ev, close, &mut seen).result, Ok(0));
    }
    for id in [out, inb] {
        assert_eq!(ev.buffers().release(id), Ok(()));
    }
    assert_eq!(ev.buffer_pool().available(), ev.buffer_pool().capacity());
}

#[test]
fn ranges_must_lie_inside_the_buffer() {
    let mut ev = small_loop();
    let buf = acquire(&mut ev);
    let size = ev.buffer_pool().buffer_bytes();
    assert!(matches!(
        ev.send_range(0, buf, size, 1),
        Err(LoopError::Start { .. })
    ));
    assert!(matches!(
        ev.recv_range(0, buf, size - 10, 11),
        Err(LoopError::Length { len: 11, max: 10 })
    ));
    assert_eq!(ev.buffers().state(buf), Ok(BufferState::Held));
    assert_eq!(ev.in_flight(), 0);
}

#[test]
fn shutdown_cancels_everything_and_frees_the_buffers() {
    let (client, _server) = pair();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let start = Instant::now();
    let mut ev = small_loop();
    let buf = acquire(&mut ev);
    assert!(ev.recv(client.as_raw_fd(), buf).is_ok());
    assert!(ev.timeout(Duration::from_secs(60)).is_ok());
    assert!(ev.accept_multi(listener.as_raw_fd()).is_ok());
    ev.submit_and_wait(0, None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ev.in_flight(), 3);
    assert_eq!(ev.shutdown(), 0);
    assert_eq!(ev.buffer_pool().available(), ev.buffer_pool().capacity());
    assert!(start.elapsed() < Duration::from_secs(1));
    // Still usable afterwards.
    let op = ev
        .timeout(Duration::from_millis(1))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    assert_eq!(wait_for(&mut ev, op, &mut seen).kind, OpKind::Timeout);
}

#[test]
fn dropping_a_busy_loop_is_quick() {
    let (client, _server) = pair();
    let start = Instant::now();
    {
        let mut ev = small_loop();
        let buf = acquire(&mut ev);
        assert!(ev.recv(client.as_raw_fd(), buf).is_ok());
        assert!(ev.timeout(Duration::from_secs(60)).is_ok());
    }
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_wait_times_out_without_ext_arg_too() {
    let mut ev = small_loop();
    // As on a kernel before 5.11: the loop's own timer ends the wait.
    ev.ext_arg = false;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let start = Instant::now();
        let done = ev.submit_and_wait(3, Some(Duration::from_millis(20)));
        assert!(done.is_ok(), "{done:?}");
        assert!(start.elapsed() < WAIT_MAX);
        assert_eq!(ev.drain_completions(&mut seen), 0);
        assert_eq!(ev.in_flight(), 0);
    }
    // A real op still completes and is reported.
    let op = ev
        .timeout(Duration::from_millis(1))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wait_for(&mut ev, op, &mut seen).kind, OpKind::Timeout);
    assert_eq!(seen.len(), 1);
}

fn temp_file_with(data: &[u8]) -> std::fs::File {
    let mut file = tempfile::tempfile().unwrap_or_else(|e| panic!("{e}"));
    file.write_all(data).unwrap_or_else(|e| panic!("{e}"));
    file
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed) % 253) as u8)
        .collect()
}

#[test]
fn read_at_range_fills_one_buffer_from_two_files() {
    let mut ev = small_loop();
    let a = pattern(5000, 1);
    let b = pattern(5000, 2);
    let (fa, fb) = (temp_file_with(&a), temp_file_with(&b));
    let buf = acquire(&mut ev);
    let mut seen = Vec::new();
    // The block's first 1000 bytes are the end of file a, the rest the start of b.
    let op = ev
        .read_at_range(fa.as_raw_fd(), buf, 0, 1000, 4000)
        .unwrap_or_else(|e| panic!("{e}"));
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!(
        (c.kind, c.result, c.buffer),
        (OpKind::ReadAt, Ok(1000), Some(buf))
    );
    let op = ev
        .read_at_range(fb.as_raw_fd(), buf, 1000, 3000, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!((c.kind, c.result), (OpKind::ReadAt, Ok(3000)));
    let got = ev.buffers().get(buf).unwrap_or_else(|| panic!("buffer"));
    assert_eq!(got.get(..1000), a.get(4000..));
    assert_eq!(got.get(1000..4000), b.get(..3000));
}

#[test]
fn read_at_range_must_lie_inside_the_buffer() {
    let mut ev = small_loop();
    let buf = acquire(&mut ev);
    let size = ev.buffer_pool().buffer_bytes();
    assert!(matches!(
        ev.read_at_range(0, buf, size, 1, 0),
        Err(LoopError::Start { .. })
    ));
    assert!(matches!(
        ev.read_at_range(0, buf, 100, size, 0),
        Err(LoopError::Length { .. })
    ));
    assert!(matches!(
        ev.read_at_range(0, buf, 0, 0, 0),
        Err(LoopError::Length { len: 0, .. })
    ));
    assert_eq!(ev.buffers().state(buf), Ok(BufferState::Held));
    assert_eq!(ev.in_flight(), 0);
}

#[test]
fn write_at_shared_writes_and_holds_the_data_until_drained() {
    let mut ev = small_loop();
    let file = temp_file_with(&[0u8; 100]);
    let data: Arc<[u8]> = pattern(3000, 9).into();
    let op = ev
        .write_at_shared(file.as_raw_fd(), Arc::clone(&data), 500, 2000, 50)
        .unwrap_or_else(|e| panic!("{e}"));
    // The op holds its own reference until its completion is drained.
    assert_eq!(Arc::strong_count(&data), 2);
    ev.submit_and_wait(1, Some(WAIT_MAX))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Arc::strong_count(&data), 2);
    let mut seen = Vec::new();
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!(
        (c.kind, c.result, c.buffer),
        (OpKind::WriteAt, Ok(2000), None)
    );
    assert_eq!(Arc::strong_count(&data), 1);
    // Read it back through the loop.
    let buf = acquire(&mut ev);
    let op = ev
        .read_at(file.as_raw_fd(), buf, 2100, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wait_for(&mut ev, op, &mut seen).result, Ok(2050));
    let got = ev.buffers().get(buf).unwrap_or_else(|| panic!("buffer"));
    assert_eq!(got.get(..50), Some(&[0u8; 50][..]));
    assert_eq!(got.get(50..2050), data.get(500..2500));
}

#[test]
fn write_at_shared_refuses_bad_ranges_and_keeps_no_reference() {
    let mut ev = small_loop();
    let file = temp_file_with(&[]);
    let data: Arc<[u8]> = vec![1u8; 100].into();
    for (start, len) in [(0, 0), (0, 101), (100, 1), (99, 2), (usize::MAX, 2)] {
        let got = ev.write_at_shared(file.as_raw_fd(), Arc::clone(&data), start, len, 0);
        assert!(
            matches!(got, Err(LoopError::Range { size: 100, .. })),
            "{start}+{len}: {got:?}"
        );
    }
    assert_eq!(Arc::strong_count(&data), 1);
    assert_eq!(ev.in_flight(), 0);
    // The last byte alone is fine.
    let op = ev
        .write_at_shared(file.as_raw_fd(), Arc::clone(&data), 99, 1, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    assert_eq!(wait_for(&mut ev, op, &mut seen).result, Ok(1));
    assert_eq!(Arc::strong_count(&data), 1);
}

#[test]
fn a_write_refused_by_a_full_queue_drops_its_reference() {
    let mut ev = small_loop();
    let file = temp_file_with(&[]);
    let data: Arc<[u8]> = vec![1u8; 10].into();
    let mut refused = false;
    for _ in 0..64 {
        match ev.write_at_shared(file.as_raw_fd(), Arc::clone(&data), 0, 10, 0) {
            Ok(_) => {}
            Err(LoopError::QueueFull { .. } | LoopError::SlabFull { .. }) => {
                refused = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused);
    assert_eq!(Arc::strong_count(&data), 1 + ev.in_flight() as usize);
    assert_eq!(ev.shutdown(), 0);
    assert_eq!(Arc::strong_count(&data), 1);
}

#[test]
fn a_leaked_loop_keeps_the_data_of_a_write_in_flight() {
    // A write to a full pipe nobody reads stays in flight.
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let [read_end, write_end] = fds;
    fill_pipe(write_end);
    let data: Arc<[u8]> = vec![7u8; 4096].into();
    {
        let mut ev = small_loop();
        let op = ev.write_at_shared(write_end, Arc::clone(&data), 0, data.len(), u64::MAX);
        assert!(op.is_ok(), "{op:?}");
        ev.submit_and_wait(1, Some(Duration::from_millis(20)))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut seen = Vec::new();
        assert_eq!(ev.drain_completions(&mut seen), 0);
        assert_eq!(Arc::strong_count(&data), 2);
        // What Drop does when the kernel does not give an op back in time.
        ev.leak_in_flight();
        ev.ops_in_flight = 0;
    }
    // The kernel may still read it: the op's reference was never dropped.
    assert_eq!(Arc::strong_count(&data), 2);
    for fd in [read_end, write_end] {
        // SAFETY: closing fds this test opened.
        unsafe { libc::close(fd) };
    }
}

/// Fills a pipe until a write would block; leaves the fd blocking.
fn fill_pipe(write_end: RawFd) {
    // SAFETY: fcntl flag calls on an fd the caller owns.
    let flags = unsafe { libc::fcntl(write_end, libc::F_GETFL) };
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::fcntl(write_end, libc::F_SETFL, flags | libc::O_NONBLOCK) },
        0
    );
    let chunk = [0u8; 4096];
    let mut filled = false;
    // A pipe holds at most 1 MiB by default (pipe-max-size).
    for _ in 0..=256 {
        // SAFETY: writes a live local array.
        let n = unsafe { libc::write(write_end, chunk.as_ptr().cast(), chunk.len()) };
        if n < 0 {
            filled = true;
            break;
        }
    }
    assert!(filled);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::fcntl(write_end, libc::F_SETFL, flags) }, 0);
}

#[test]
fn shutdown_cancels_a_blocked_write_and_drops_its_data() {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let [read_end, write_end] = fds;
    fill_pipe(write_end);
    let data: Arc<[u8]> = vec![7u8; 4096].into();
    let mut ev = small_loop();
    let op = ev.write_at_shared(write_end, Arc::clone(&data), 0, data.len(), u64::MAX);
    assert!(op.is_ok(), "{op:?}");
    ev.submit_and_wait(0, None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Arc::strong_count(&data), 2);
    assert_eq!(ev.shutdown(), 0);
    assert_eq!(Arc::strong_count(&data), 1);
    for fd in [read_end, write_end] {
        // SAFETY: closing fds this test opened.
        unsafe { libc::close(fd) };
    }
}

#[test]
fn read_takes_what_a_pipe_holds() {
    let mut ev = small_loop();
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let [read_end, write_end] = fds;
    let buf = acquire(&mut ev);
    let op = ev
        .read(read_end, buf, 100)
        .unwrap_or_else(|e| panic!("{e}"));
    ev.submit_and_wait(0, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let msg = b"through the pipe";
    // SAFETY: writes a live local array to a pipe this test owns.
    let n = unsafe { libc::write(write_end, msg.as_ptr().cast(), msg.len()) };
    assert_eq!(n, msg.len() as isize);
    let mut seen = Vec::new();
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!((c.kind, c.result), (OpKind::Read, Ok(msg.len() as u32)));
    assert_eq!(
        ev.buffers().get(buf).and_then(|b| b.get(..msg.len())),
        Some(&msg[..])
    );
    for fd in [read_end, write_end] {
        // SAFETY: closing fds this test opened.
        unsafe { libc::close(fd) };
    }
}

#[test]
fn read_on_an_eventfd_returns_its_counter() {
    let mut ev = small_loop();
    // SAFETY: plain eventfd(2) call.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    assert!(fd >= 0);
    let add = 5u64.to_ne_bytes();
    // SAFETY: writes 8 bytes from a live local array to the eventfd.
    assert_eq!(unsafe { libc::write(fd, add.as_ptr().cast(), 8) }, 8);
    let buf = acquire(&mut ev);
    let op = ev.read(fd, buf, 8).unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!((c.kind, c.result), (OpKind::Read, Ok(8)));
    assert_eq!(
        ev.buffers().get(buf).and_then(|b| b.get(..8)),
        Some(&add[..])
    );
    // SAFETY: closing the fd this test opened.
    unsafe { libc::close(fd) };
}

#[test]
fn the_probe_knows_the_basic_opcodes() {
    let ev = small_loop();
    // Every kernel this loop runs on (5.10+) has these and probes.
    assert!(ev.supports(opcode::Read::CODE));
    assert!(ev.supports(opcode::SendMsg::CODE));
    assert!(ev.supports(opcode::Nop::CODE));
    assert!(!ev.supports(u8::MAX));
}

#[test]
fn send_zc_with_header_reports_once_after_the_notification() {
    let mut ev = small_loop();
    if !ev.supports(opcode::SendMsgZc::CODE) {
        eprintln!("skipped: this kernel has no SENDMSG_ZC");
        return;
    }
    let (client, mut server) = pair();
    let header: [u8; HEADER_BYTES] = [0, 0, 0x40, 0x09, 7, 0, 0, 0, 1, 0, 0, 0, 0];
    let block = pattern(16 * 1024, 5);
    let buf = acquire(&mut ev);
    ev.buffers()
        .get_mut(buf)
        .unwrap_or_else(|| panic!("buffer"))
        .copy_from_slice(&block);
    let mut seen = Vec::new();
    for round in 0..3 {
        let op = ev
            .send_zc_with_header(client.as_raw_fd(), header, buf, block.len())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(ev.buffers().get(buf).is_none());
        let mut got = vec![0u8; HEADER_BYTES + block.len()];
        let c = wait_for(&mut ev, op, &mut seen);
        assert_eq!(c.kind, OpKind::SendZcWithHeader, "round {round}");
        assert_eq!(c.result, Ok(got.len() as u32));
        assert_eq!(c.buffer, Some(buf));
        assert!(!c.more);
        // Exactly one completion per send, and the slot is free.
        assert_eq!(seen.iter().filter(|s| s.op == op).count(), 1);
        assert_eq!(ev.in_flight(), 0);
        server
            .read_exact(&mut got)
            .unwrap_or_else(|e| panic!("read: {e}"));
        assert_eq!(got.get(..HEADER_BYTES), Some(&header[..]));
        assert_eq!(got.get(HEADER_BYTES..), Some(&block[..]));
    }
    assert_eq!(ev.stale_completions(), 0);
}

#[test]
fn a_failed_send_zc_still_returns_its_buffer() {
    let mut ev = small_loop();
    if !ev.supports(opcode::SendMsgZc::CODE) {
        eprintln!("skipped: this kernel has no SENDMSG_ZC");
        return;
    }
    // A file is no socket: the send fails, with or without a notification.
    let file = temp_file_with(&[]);
    let buf = acquire(&mut ev);
    let op = ev
        .send_zc_with_header(file.as_raw_fd(), [0; HEADER_BYTES], buf, 10)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    let c = wait_for(&mut ev, op, &mut seen);
    assert!(c.result.is_err(), "{:?}", c.result);
    assert_eq!(c.buffer, Some(buf));
    assert_eq!(ev.in_flight(), 0);
    // A late notification would be counted stale; give one a moment.
    ev.submit_and_wait(1, Some(Duration::from_millis(20)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ev.drain_completions(&mut seen), 0);
    assert_eq!(ev.stale_completions(), 0);
}

#[test]
fn splice_moves_a_file_range_through_a_pipe_to_a_socket() {
    let mut ev = small_loop();
    let data = pattern(50_000, 3);
    let file = temp_file_with(&data);
    let (client, mut server) = pair();
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let [read_end, write_end] = fds;
    let mut seen = Vec::new();
    let op = ev
        .splice(file.as_raw_fd(), Some(10_000), write_end, None, 16_384)
        .unwrap_or_else(|e| panic!("{e}"));
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!(
        (c.kind, c.result, c.buffer),
        (OpKind::Splice, Ok(16_384), None)
    );
    let op = ev
        .splice(read_end, None, client.as_raw_fd(), None, 16_384)
        .unwrap_or_else(|e| panic!("{e}"));
    let c = wait_for(&mut ev, op, &mut seen);
    assert_eq!((c.kind, c.result), (OpKind::Splice, Ok(16_384)));
    let mut got = vec![0u8; 16_384];
    server
        .read_exact(&mut got)
        .unwrap_or_else(|e| panic!("read: {e}"));
    assert_eq!(Some(&got[..]), data.get(10_000..26_384));
    // Neither end a pipe: the kernel refuses it in the completion.
    let op = ev
        .splice(file.as_raw_fd(), Some(0), file.as_raw_fd(), Some(0), 10)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wait_for(&mut ev, op, &mut seen).result, Err(libc::EINVAL));
    for fd in [read_end, write_end] {
        // SAFETY: closing fds this test opened.
        unsafe { libc::close(fd) };
    }
}

#[test]
fn splice_refuses_an_empty_length_and_huge_offsets() {
    let mut ev = small_loop();
    assert!(matches!(
        ev.splice(0, None, 1, None, 0),
        Err(LoopError::Length { len: 0, .. })
    ));
    let huge = 1u64 << 63;
    assert!(matches!(
        ev.splice(0, Some(huge), 1, None, 10),
        Err(LoopError::Offset { offset, .. }) if offset == huge
    ));
    assert!(matches!(
        ev.splice(0, None, 1, Some(u64::MAX), 10),
        Err(LoopError::Offset { .. })
    ));
    assert_eq!(ev.in_flight(), 0);
}

#[test]
fn ops_the_kernel_lacks_are_refused() {
    let mut ev = small_loop();
    // As on a kernel whose probe lists none of them.
    ev.opcodes = [0; OPCODES / 64];
    let buf = acquire(&mut ev);
    assert!(matches!(
        ev.send_zc_with_header(0, [0; HEADER_BYTES], buf, 10),
        Err(LoopError::Unsupported {
            op: OpKind::SendZcWithHeader,
            ..
        })
    ));
    assert!(matches!(
        ev.splice(0, None, 1, None, 10),
        Err(LoopError::Unsupported {
            op: OpKind::Splice,
            ..
        })
    ));
    assert!(!ev.supports(opcode::SendMsgZc::CODE));
    assert_eq!(ev.buffers().state(buf), Ok(BufferState::Held));
    assert_eq!(ev.in_flight(), 0);
}
