//! The seeding data path, measured: blocks of a file in the page cache sent
//! as piece messages (13-byte header + 16 KiB block) over loopback TCP, three
//! ways, each with 1, 4 and 16 blocks in flight:
//!
//! - `send`: `read_at` into a pool buffer, then `send_with_header` (SENDMSG);
//! - `send_zc`: `read_at`, then `send_zc_with_header` (SENDMSG_ZC; the buffer
//!   comes back on the kernel's notification);
//! - `splice`: the header by a small `send`, while `splice` moves the block
//!   file -> pipe; then `splice` pipe -> socket. No user copy of the block.
//!
//! "In flight" means lanes: one TCP connection per lane, each with one block
//! at a time on its way (a connection carries one send at a time, as a peer
//! connection does). One receiver thread drains every connection with
//! `poll` and a 1 MiB buffer. Per variant and depth: GB/s of block bytes,
//! CPU-seconds per GiB of the sending thread, of the receiver thread, and of
//! the process's other threads (io_uring's io-wq workers, where splice runs),
//! from `getrusage`. Rounds alternate the variants; the median is reported.
//!
//! Run: `cargo bench --bench send_path` (1024 MiB per run, 3 rounds);
//! `-- --quick` (128 MiB, 1 round); `-- --mib N --rounds R` to choose. Run
//! without `--bench` (as `cargo test --benches` does) it sends a few MiB per
//! variant, checks every byte the receiver gets, and exits.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use ringseed::runtime::event_loop::{
    BufferId, Completion, EventLoop, LoopConfig, OpId, OpKind, HEADER_BYTES,
};

const MIB: usize = 1024 * 1024;
const GIB: f64 = (1024 * 1024 * 1024) as f64;
/// Bytes per block (a BitTorrent request).
const BLOCK_BYTES: usize = 16 * 1024;
/// Largest file the blocks come from (served round and round).
const FILE_BYTES_MAX: usize = 64 * MIB;
/// The receiver's read buffer.
const RECV_BUFFER_BYTES: usize = MIB;
/// Longest one run may take before it is abandoned.
const RUN_TIME_MAX: Duration = Duration::from_secs(120);
/// Longest the receiver waits with nothing arriving.
const IDLE_MAX: Duration = Duration::from_secs(10);
/// Most lanes (connections) one run uses.
const LANES_MAX: usize = 64;
/// Loopback address the receiver listens on.
const ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 61);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Send,
    /// `send`, with the pool registered: reads are READ_FIXED.
    SendFixed,
    SendZc,
    Splice,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::Send,
        Variant::SendFixed,
        Variant::SendZc,
        Variant::Splice,
    ];
    fn name(self) -> &'static str {
        match self {
            Variant::Send => "send",
            Variant::SendFixed => "send (fixed reads)",
            Variant::SendZc => "send_zc",
            Variant::Splice => "splice",
        }
    }
}

struct Options {
    mib: usize,
    rounds: usize,
    depths: Vec<usize>,
    verify: bool,
}

fn options() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let value = |flag: &str| -> Result<Option<usize>, String> {
        match args.iter().position(|a| a == flag) {
            None => Ok(None),
            Some(i) => args
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .map(Some)
                .ok_or(format!("{flag} needs a number")),
        }
    };
    let mut o = if !has("--bench") && !has("--quick") {
        // Under `cargo test`: a smoke round that checks the bytes.
        Options {
            mib: 4,
            rounds: 1,
            depths: vec![1, 4],
            verify: true,
        }
    } else if has("--quick") {
        Options {
            mib: 128,
            rounds: 1,
            depths: vec![1, 4, 16],
            verify: false,
        }
    } else {
        Options {
            mib: 1024,
            rounds: 3,
            depths: vec![1, 4, 16],
            verify: false,
        }
    };
    if let Some(m) = value("--mib")? {
        o.mib = m.clamp(1, 64 * 1024);
    }
    if let Some(r) = value("--rounds")? {
        o.rounds = r.clamp(1, 100);
    }
    if has("--verify") {
        o.verify = true;
    }
    Ok(o)
}

/// The file's byte at `offset`: cheap, and not constant.
fn file_byte(offset: usize) -> u8 {
    let x = (offset as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 56) as u8 ^ (offset >> 14) as u8
}

fn make_file(file_bytes: usize) -> Result<std::fs::File, String> {
    let mut file = tempfile::tempfile().map_err(|e| format!("temp file: {e}"))?;
    for start in (0..file_bytes).step_by(MIB) {
        let bytes: Vec<u8> = (start..start + MIB).map(file_byte).collect();
        file.write_all(&bytes)
            .map_err(|e| format!("write temp file: {e}"))?;
    }
    file.flush().map_err(|e| format!("flush: {e}"))?;
    Ok(file)
}

/// The header of block `index`: a piece message, `begin` its file offset.
fn header(index: usize, file_bytes: usize) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[..4].copy_from_slice(&((9 + BLOCK_BYTES) as u32).to_be_bytes());
    h[4] = 7;
    h[5..9].copy_from_slice(&(index as u32).to_be_bytes());
    h[9..].copy_from_slice(&(block_offset(index, file_bytes) as u32).to_be_bytes());
    h
}

fn block_offset(index: usize, file_bytes: usize) -> usize {
    (index * BLOCK_BYTES) % file_bytes
}

/// User + system CPU time of this thread (`RUSAGE_THREAD`) or process.
fn cpu_time(who: libc::c_int) -> Duration {
    // SAFETY: all-zero is a valid rusage; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid `who` and a live rusage to fill.
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// What the receiver saw.
struct Received {
    bytes: u64,
    cpu: Duration,
}

/// Parses piece messages on one connection and checks them (smoke mode).
#[derive(Default)]
struct Checker {
    file_bytes: usize,
    header: Vec<u8>,
    body_left: usize,
    body_offset: usize,
}

impl Checker {
    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            if self.body_left == 0 {
                let take = (HEADER_BYTES - self.header.len()).min(bytes.len());
                self.header.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.header.len() == HEADER_BYTES {
                    let index = u32::from_be_bytes([
                        self.header[5],
                        self.header[6],
                        self.header[7],
                        self.header[8],
                    ]) as usize;
                    if self.header[..] != header(index, self.file_bytes)[..] {
                        return Err(format!("bad header {:?}", self.header));
                    }
                    self.header.clear();
                    self.body_left = BLOCK_BYTES;
                    self.body_offset = block_offset(index, self.file_bytes);
                }
            } else {
                let take = self.body_left.min(bytes.len());
                for (i, &b) in bytes[..take].iter().enumerate() {
                    if b != file_byte(self.body_offset + i) {
                        return Err(format!("bad byte at file offset {}", self.body_offset + i));
                    }
                }
                self.body_offset += take;
                self.body_left -= take;
                bytes = &bytes[take..];
            }
        }
        Ok(())
    }
}

/// Drains every connection until `expected` bytes arrived in all.
fn receive(
    conns: Vec<TcpStream>,
    expected: u64,
    verify: bool,
    file_bytes: usize,
) -> Result<Received, String> {
    let cpu_start = cpu_time(libc::RUSAGE_THREAD);
    let mut buf = vec![0u8; RECV_BUFFER_BYTES];
    let mut checkers: Vec<Checker> = conns
        .iter()
        .map(|_| Checker {
            file_bytes,
            ..Checker::default()
        })
        .collect();
    let mut pollfds: Vec<libc::pollfd> = conns
        .iter()
        .map(|c| libc::pollfd {
            fd: c.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut bytes = 0u64;
    let mut last_progress = Instant::now();
    while bytes < expected {
        if last_progress.elapsed() > IDLE_MAX {
            return Err(format!("receiver: stalled at {bytes} of {expected} bytes"));
        }
        // SAFETY: a live array of pollfds of the given length.
        let n = unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, 100) };
        if n <= 0 {
            continue;
        }
        for (i, p) in pollfds.iter_mut().enumerate() {
            if p.revents == 0 {
                continue;
            }
            p.revents = 0;
            // SAFETY: reads into a live buffer of its length.
            let got = unsafe { libc::recv(p.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if got > 0 {
                let got = got as usize;
                bytes += got as u64;
                last_progress = Instant::now();
                if verify {
                    checkers[i].feed(&buf[..got])?;
                }
            } else if got == 0 {
                p.fd = -1; // closed: poll ignores negative fds
            }
        }
    }
    Ok(Received {
        bytes,
        cpu: cpu_time(libc::RUSAGE_THREAD).saturating_sub(cpu_start),
    })
}

/// One lane's state: its connection and what is on its way.
struct Lane {
    sock: RawFd,
    buf: BufferId,
    /// Splice only: the header buffer and the pipe (read end, write end).
    hdr: Option<BufferId>,
    pipe: (RawFd, RawFd),
    block: Option<usize>,
    /// Splice only: the file -> pipe op in flight.
    fill_op: Option<OpId>,
    in_flight: u32,
    header_sent: bool,
    filled: usize,
    drained: usize,
}

struct Outcome {
    seconds: f64,
    sender_cpu: Duration,
    receiver_cpu: Duration,
    other_cpu: Duration,
    block_bytes: u64,
}

fn fail(what: &str, c: &Completion) -> String {
    format!("{what}: {:?} -> {:?}", c.kind, c.result)
}

fn run(
    variant: Variant,
    depth: usize,
    blocks: usize,
    file: RawFd,
    file_bytes: usize,
    verify: bool,
) -> Result<Outcome, String> {
    let depth = depth.clamp(1, LANES_MAX);
    let listener =
        TcpListener::bind(SocketAddr::from((ADDR, 0))).map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| format!("{e}"))?;
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..depth {
        clients.push(TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?);
        servers.push(listener.accept().map_err(|e| format!("accept: {e}"))?.0);
    }
    let expected = (blocks * (HEADER_BYTES + BLOCK_BYTES)) as u64;
    let receiver = std::thread::spawn(move || receive(servers, expected, verify, file_bytes));

    let mut ev = EventLoop::new(LoopConfig {
        ring_entries: 256,
        ops_in_flight_max: 256,
        buffers: (depth * 2) as u32,
        buffer_bytes: BLOCK_BYTES,
    })
    .map_err(|e| format!("event loop: {e}"))?;
    if variant == Variant::SendFixed && !ev.register_buffers() {
        return Err("the kernel refused to register the buffer pool".into());
    }
    let mut lanes = Vec::new();
    for c in &clients {
        let buf = ev.buffers().acquire().ok_or("no buffer")?;
        let (hdr, pipe) = if variant == Variant::Splice {
            let mut fds = [0; 2];
            // SAFETY: pipe2 fills the two-fd array.
            if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
                return Err("pipe2 failed".into());
            }
            (
                Some(ev.buffers().acquire().ok_or("no buffer")?),
                (fds[0], fds[1]),
            )
        } else {
            (None, (-1, -1))
        };
        lanes.push(Lane {
            sock: c.as_raw_fd(),
            buf,
            hdr,
            pipe,
            block: None,
            fill_op: None,
            in_flight: 0,
            header_sent: false,
            filled: 0,
            drained: 0,
        });
    }

    let cpu_self_start = cpu_time(libc::RUSAGE_SELF);
    let cpu_start = cpu_time(libc::RUSAGE_THREAD);
    let start = Instant::now();
    let mut owner: std::collections::HashMap<OpId, usize> = std::collections::HashMap::new();
    let mut next_block = 0usize;
    let mut done_blocks = 0usize;
    let mut seen = Vec::new();
    while done_blocks < blocks {
        if start.elapsed() > RUN_TIME_MAX {
            return Err(format!(
                "{variant:?}: too slow, {done_blocks} of {blocks} blocks"
            ));
        }
        // Idle lanes take the next block.
        for (i, lane) in lanes.iter_mut().enumerate() {
            if lane.block.is_some() || next_block >= blocks {
                continue;
            }
            let index = next_block;
            next_block += 1;
            lane.block = Some(index);
            let offset = block_offset(index, file_bytes) as u64;
            match variant {
                Variant::Send | Variant::SendFixed | Variant::SendZc => {
                    let op = ev
                        .read_at(file, lane.buf, BLOCK_BYTES, offset)
                        .map_err(|e| format!("read_at: {e}"))?;
                    owner.insert(op, i);
                    lane.in_flight = 1;
                }
                Variant::Splice => {
                    let hdr = lane.hdr.ok_or("no header buffer")?;
                    ev.buffers()
                        .get_mut(hdr)
                        .and_then(|b| b.get_mut(..HEADER_BYTES))
                        .ok_or("header buffer")?
                        .copy_from_slice(&header(index, file_bytes));
                    let op = ev
                        .send(lane.sock, hdr, HEADER_BYTES)
                        .map_err(|e| format!("send: {e}"))?;
                    owner.insert(op, i);
                    let op = ev
                        .splice(file, Some(offset), lane.pipe.1, None, BLOCK_BYTES as u32)
                        .map_err(|e| format!("splice: {e}"))?;
                    owner.insert(op, i);
                    lane.fill_op = Some(op);
                    (lane.in_flight, lane.header_sent) = (2, false);
                    (lane.filled, lane.drained) = (0, 0);
                }
            }
        }
        ev.submit_and_wait(1, Some(Duration::from_millis(500)))
            .map_err(|e| format!("submit: {e}"))?;
        seen.clear();
        ev.drain_completions(&mut seen);
        for c in &seen {
            let i = owner.remove(&c.op).ok_or("completion of an unknown op")?;
            let lane = lanes.get_mut(i).ok_or("lane")?;
            lane.in_flight -= 1;
            let index = lane.block.ok_or("idle lane completed")?;
            let n = c.result.map_err(|_| fail("op failed", c))? as usize;
            match c.kind {
                OpKind::ReadAt => {
                    if n != BLOCK_BYTES {
                        return Err(fail("short read", c));
                    }
                    let op = if variant == Variant::SendZc {
                        ev.send_zc_with_header(
                            lane.sock,
                            header(index, file_bytes),
                            lane.buf,
                            BLOCK_BYTES,
                        )
                    } else {
                        ev.send_with_header(
                            lane.sock,
                            header(index, file_bytes),
                            lane.buf,
                            BLOCK_BYTES,
                        )
                    }
                    .map_err(|e| format!("send: {e}"))?;
                    owner.insert(op, i);
                    lane.in_flight = 1;
                }
                OpKind::SendWithHeader | OpKind::SendZcWithHeader => {
                    if n != HEADER_BYTES + BLOCK_BYTES {
                        return Err(fail("short send", c));
                    }
                    lane.block = None;
                    done_blocks += 1;
                }
                OpKind::Send => {
                    if n != HEADER_BYTES {
                        return Err(fail("short header send", c));
                    }
                    lane.header_sent = true;
                }
                OpKind::Splice if lane.fill_op == Some(c.op) => lane.filled += n,
                OpKind::Splice => lane.drained += n,
                _ => return Err(fail("unexpected", c)),
            }
            if variant != Variant::Splice || lane.in_flight > 0 || lane.block.is_none() {
                continue;
            }
            // Splice: move what is in the pipe to the socket, refill, or finish.
            if lane.drained == BLOCK_BYTES && lane.header_sent {
                lane.block = None;
                done_blocks += 1;
            } else if lane.filled > lane.drained && lane.header_sent {
                let op = ev
                    .splice(
                        lane.pipe.0,
                        None,
                        lane.sock,
                        None,
                        (lane.filled - lane.drained) as u32,
                    )
                    .map_err(|e| format!("splice: {e}"))?;
                owner.insert(op, i);
                lane.in_flight = 1;
            } else if lane.filled < BLOCK_BYTES {
                let offset = (block_offset(index, file_bytes) + lane.filled) as u64;
                let op = ev
                    .splice(
                        file,
                        Some(offset),
                        lane.pipe.1,
                        None,
                        (BLOCK_BYTES - lane.filled) as u32,
                    )
                    .map_err(|e| format!("splice: {e}"))?;
                owner.insert(op, i);
                lane.fill_op = Some(op);
                lane.in_flight = 1;
            }
        }
    }
    let sender_cpu = cpu_time(libc::RUSAGE_THREAD).saturating_sub(cpu_start);
    let received = receiver
        .join()
        .map_err(|_| "receiver panicked".to_string())??;
    let seconds = start.elapsed().as_secs_f64();
    let process_cpu = cpu_time(libc::RUSAGE_SELF).saturating_sub(cpu_self_start);
    if received.bytes != expected {
        return Err(format!("received {} of {expected} bytes", received.bytes));
    }
    for lane in &lanes {
        for fd in [lane.pipe.0, lane.pipe.1] {
            if fd >= 0 {
                // SAFETY: closing pipe fds this run opened.
                unsafe { libc::close(fd) };
            }
        }
    }
    Ok(Outcome {
        seconds,
        sender_cpu,
        receiver_cpu: received.cpu,
        other_cpu: process_cpu
            .saturating_sub(sender_cpu)
            .saturating_sub(received.cpu),
        block_bytes: (blocks * BLOCK_BYTES) as u64,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    if let Err(e) = bench() {
        eprintln!("send_path: {e}");
        std::process::exit(1);
    }
}

fn bench() -> Result<(), String> {
    let o = options()?;
    let file_bytes = (o.mib * MIB).min(FILE_BYTES_MAX);
    let file = make_file(file_bytes)?;
    let blocks = o.mib * MIB / BLOCK_BYTES;
    let probe = EventLoop::new(LoopConfig::default()).map_err(|e| format!("{e}"))?;
    let zc = probe.supports(io_uring::opcode::SendMsgZc::CODE);
    drop(probe);
    let variants: Vec<Variant> = Variant::ALL
        .into_iter()
        .filter(|v| *v != Variant::SendZc || zc)
        .collect();
    println!(
        "send_path: {} MiB per run, {} KiB blocks, {} round(s){}",
        o.mib,
        BLOCK_BYTES / 1024,
        o.rounds,
        if o.verify {
            ", checking every byte"
        } else {
            ""
        }
    );
    let mut results: Vec<(Variant, usize, Vec<Outcome>)> = Vec::new();
    for &d in &o.depths {
        for &v in &variants {
            results.push((v, d, Vec::new()));
        }
    }
    for round in 0..o.rounds {
        for &d in &o.depths {
            // Alternate which variant goes first.
            for k in 0..variants.len() {
                let v = variants[(k + round) % variants.len()];
                let out = run(v, d, blocks, file.as_raw_fd(), file_bytes, o.verify)?;
                if let Some(slot) = results.iter_mut().find(|(rv, rd, _)| *rv == v && *rd == d) {
                    slot.2.push(out);
                }
            }
        }
    }
    println!("| variant | in flight | GB/s (min-max) | sender CPU s/GiB | receiver CPU s/GiB | io-wq/other CPU s/GiB |");
    println!("|---|---|---|---|---|---|");
    for (v, d, outs) in &results {
        let per_gib = |f: &dyn Fn(&Outcome) -> Duration| {
            median(
                outs.iter()
                    .map(|o| f(o).as_secs_f64() / (o.block_bytes as f64 / GIB))
                    .collect(),
            )
        };
        let rates: Vec<f64> = outs
            .iter()
            .map(|o| o.block_bytes as f64 / o.seconds / 1e9)
            .collect();
        let low = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let high = rates.iter().copied().fold(0.0, f64::max);
        println!(
            "| {} | {} | {:.2} ({low:.2}-{high:.2}) | {:.3} | {:.3} | {:.3} |",
            v.name(),
            d,
            median(rates),
            per_gib(&|o| o.sender_cpu),
            per_gib(&|o| o.receiver_cpu),
            per_gib(&|o| o.other_cpu),
        );
    }
    if !zc {
        println!("(send_zc skipped: this kernel has no IORING_OP_SENDMSG_ZC)");
    }
    Ok(())
}
