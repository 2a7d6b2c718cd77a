//! The control socket's server: binds the Unix socket (mode 0600,
//! replacing a stale file a killed daemon left, refusing one a live
//! daemon answers on), accepts on its own thread and serves each
//! connection on a thread of its own, at most [`CTL_CONNECTIONS_MAX`] at
//! once. Each request line goes to the core as a [`Command`] (never
//! waiting for room in the core's queue: a full queue is
//! [`CommandError::Busy`]) and its answer comes back as one line.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender, TrySendError};
use serde_json::{json, Value};
use thiserror::Error;

use super::protocol::{answer_json, to_command, Answer, Request, Waiter};
use super::{
    CTL_CONNECTIONS_MAX, CTL_IDLE_TIMEOUT, CTL_REPLY_TIMEOUT, CTL_REPLY_TIMEOUT_LONG,
    CTL_REQUEST_BYTES_MAX, CTL_WRITE_TIMEOUT,
};
use crate::daemon::command::{Command, CommandError};

/// A request buffer larger than this is given back after its request.
const REQUEST_BUFFER_KEEP_BYTES: usize = 1024 * 1024;
/// At stop, how long connections get to send their last answer.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// The pause after a failed accept (out of file descriptors...), so that
/// the accept thread does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Why the control socket could not be set up.
#[derive(Debug, Error)]
pub enum CtlError {
    #[error("another daemon is running: it answers on its control socket {0}")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; remove it or choose another state directory")]
    NotASocket(PathBuf),
    #[error("cannot check the control socket {path}: {source}")]
    Probe { path: PathBuf, source: io::Error },
    #[error("cannot create the control socket {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
    #[error("cannot start the control socket's thread: {0}")]
    Thread(io::Error),
}

/// The running control socket. [`CtlServer::stop`] (or drop) closes it,
/// ends every connection and removes the socket file.
#[derive(Debug)]
pub struct CtlServer {
    path: PathBuf,
    /// The socket file's (device, inode): removed at stop only if it is
    /// still ours.
    identity: (u64, u64),
    /// Writing here wakes the accept thread to stop.
    wake: UnixStream,
    /// Dropped at stop: every connection waiting for the core sees it.
    stop_tx: Option<Sender<()>>,
    accept: Option<JoinHandle<()>>,
}

/// The open connections: their streams (to shut them down at stop) and
/// threads (to join).
type Connections = Arc<Mutex<HashMap<u64, (UnixStream, JoinHandle<()>)>>>;

impl CtlServer {
    /// Binds the control socket at `socket_path` and starts serving;
    /// requests become commands sent on `commands`.
    pub fn start(socket_path: &Path, commands: Sender<Command>) -> Result<CtlServer, CtlError> {
        let path = socket_path.to_path_buf();
        check_existing(&path)?;
        let listener = bind_private(&path)?;
        let meta = fs::symlink_metadata(&path).map_err(|source| CtlError::Bind {
            path: path.clone(),
            source,
        })?;
        let identity = (meta.dev(), meta.ino());
        let (wake, wake_rx) = UnixStream::pair().map_err(CtlError::Thread)?;
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let accept = std::thread::Builder::new()
            .name("ctl-accept".into())
            .spawn(move || accept_loop(listener, wake_rx, commands, stop_rx))
            .map_err(CtlError::Thread)?;
        tracing::info!("control socket {}", path.display());
        Ok(CtlServer {
            path,
            identity,
            wake,
            stop_tx: Some(stop_tx),
            accept: Some(accept),
        })
    }

    /// Closes the socket, ends every connection (a request waiting for the
    /// core is answered "the daemon is stopping") and removes the socket
    /// file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.stop_tx = None;
        let _ = (&self.wake).write_all(&[1]);
        let _ = accept.join();
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.identity {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

impl Drop for CtlServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Refuses a socket a live daemon answers on, or a path that is not a
/// socket; a stale socket (nothing answers) is left to be replaced.
fn check_existing(path: &Path) -> Result<(), CtlError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CtlError::Probe {
            path: path.to_path_buf(),
            source,
        }),
        Ok(meta) if !meta.file_type().is_socket() => Err(CtlError::NotASocket(path.to_path_buf())),
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => Err(CtlError::InUse(path.to_path_buf())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(socket = %path.display(), "replacing a stale control socket");
                Ok(())
            }
            Err(source) => Err(CtlError::Probe {
                path: path.to_path_buf(),
                source,
            }),
        },
    }
}

/// Binds at a temporary name beside `path`, makes it 0600, then renames it
/// over `path`: the socket is never reachable with a wider mode, and a
/// stale file is replaced in one step.
fn bind_private(path: &Path) -> Result<UnixListener, CtlError> {
    let bind_err = |source| CtlError::Bind {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Short, so that it fits in a socket address wherever `path` does.
    let tmp = dir.join(format!(".cs{}", std::process::id()));
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(bind_err(e)),
        _ => {}
    }
    let listener = UnixListener::bind(&tmp).map_err(bind_err)?;
    let placed = fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = placed {
        let _ = fs::remove_file(&tmp);
        return Err(bind_err(e));
    }
    Ok(listener)
}

fn accept_loop(
    listener: UnixListener,
    wake: UnixStream,
    commands: Sender<Command>,
    stop_rx: Receiver<()>,
) {
    let conns: Connections = Arc::new(Mutex::new(HashMap::new()));
    let next_id = AtomicU64::new(0);
    loop {
        let mut fds = [
            libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            tracing::warn!(error = %e, "control socket: poll failed");
            std::thread::sleep(ACCEPT_ERROR_PAUSE);
            continue;
        }
        if fds[1].revents != 0 {
            break;
        }
        if fds[0].revents == 0 {
            continue;
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket: accept failed");
                std::thread::sleep(ACCEPT_ERROR_PAUSE);
                continue;
            }
        };
        let mut map = conns.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CTL_CONNECTIONS_MAX {
            drop(map);
            refuse(
                stream,
                &format!(
                    "too many control connections (at most {CTL_CONNECTIONS_MAX} at once); try again"
                ),
            );
            continue;
        }
        let Ok(shut) = stream.try_clone() else {
            drop(map);
            refuse(
                stream,
                "cannot serve the connection (out of file descriptors?)",
            );
            continue;
        };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        let commands = commands.clone();
        let stop_rx = stop_rx.clone();
        let registry = Arc::clone(&conns);
        let spawned = std::thread::Builder::new()
            .name("ctl-conn".into())
            .spawn(move || {
                serve(stream, &commands, &stop_rx);
                // Leaves the registry (its handle, dropped, detaches).
                registry
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
            });
        match spawned {
            Ok(handle) => {
                map.insert(id, (shut, handle));
            }
            Err(e) => {
                drop(map);
                tracing::warn!(error = %e, "control socket: cannot start a connection thread");
                refuse(shut, "cannot serve the connection (no thread)");
            }
        }
    }
    drop(listener);
    // End every connection: reads end at once and a wait for the core ends
    // on the stop channel, so each answers "stopping" and leaves; one that
    // cannot write its answer in time is cut off.
    let open: Vec<_> = conns
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
        .collect();
    for (_, (stream, _)) in &open {
        let _ = stream.shutdown(std::net::Shutdown::Read);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline && open.iter().any(|(_, (_, h))| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(5));
    }
    for (_, (stream, _)) in &open {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
    for (_, (_, handle)) in open {
        let _ = handle.join();
    }
}

/// Answers an error line without waiting and closes.
fn refuse(stream: UnixStream, message: &str) {
    let _ = stream.set_nonblocking(true);
    let _ = write_line(&stream, &json!({ "error": message }));
}

fn write_line(mut stream: &UnixStream, v: &Value) -> io::Result<()> {
    let mut line = serde_json::to_vec(v).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    stream.flush()
}

/// Serves one connection: request lines in, answer lines out, until the
/// client closes, goes idle, or sends a line too long.
fn serve(stream: UnixStream, commands: &Sender<Command>, stop_rx: &Receiver<()>) {
    if stream.set_read_timeout(Some(CTL_IDLE_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(CTL_WRITE_TIMEOUT)).is_err()
    {
        return;
    }
    let mut reader = BufReader::new(&stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        if line.capacity() > REQUEST_BUFFER_KEEP_BYTES {
            line = Vec::new();
        }
        let limit = CTL_REQUEST_BYTES_MAX as u64 + 1;
        match (&mut reader).take(limit).read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {}
            // Idle, closed under us, or reset.
            Err(_) => return,
        }
        let complete = line.last() == Some(&b'\n');
        if complete {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        if line.len() > CTL_REQUEST_BYTES_MAX {
            let _ = write_line(
                &stream,
                &json!({ "error": format!(
                    "request line longer than {CTL_REQUEST_BYTES_MAX} bytes, the most taken"
                ) }),
            );
            return;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            if complete {
                continue;
            }
            return;
        }
        let answer = handle(&line, commands, stop_rx);
        if write_line(&stream, &answer).is_err() || !complete {
            return;
        }
    }
}

/// One request line → one answer.
pub(super) fn handle(line: &[u8], commands: &Sender<Command>, stop_rx: &Receiver<()>) -> Value {
    let req: Request = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) => return json!({ "error": format!("bad request: {e}") }),
    };
    let name = req.name();
    tracing::debug!(cmd = name, "control request");
    let timeout = match req {
        Request::Move { .. } | Request::Remove { .. } => CTL_REPLY_TIMEOUT_LONG,
        _ => CTL_REPLY_TIMEOUT,
    };
    let (command, waiter) = match to_command(req) {
        Ok(c) => c,
        Err(e) => return json!({ "error": e }),
    };
    match commands.try_send(command) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return json!({ "error": CommandError::Busy(commands.len()).to_string() })
        }
        Err(TrySendError::Disconnected(_)) => {
            return json!({ "error": CommandError::Stopping.to_string() })
        }
    }
    match wait(waiter, stop_rx, timeout) {
        Ok(answer) => json!({ "ok": answer_json(answer) }),
        Err(Waited::Refused(e)) => json!({ "error": e.to_string() }),
        Err(Waited::TimedOut) => json!({ "error": format!(
            "the daemon did not answer {name} within {} s (it may still carry it out)",
            timeout.as_secs()
        ) }),
    }
}

enum Waited {
    Refused(CommandError),
    TimedOut,
}

/// The core's answer, or why there is none: a stop of the server or a
/// core gone (dropped reply) reads as [`CommandError::Stopping`].
fn wait(waiter: Waiter, stop_rx: &Receiver<()>, timeout: Duration) -> Result<Answer, Waited> {
    fn one<T>(
        rx: &Receiver<Result<T, CommandError>>,
        stop_rx: &Receiver<()>,
        timeout: Duration,
    ) -> Result<T, Waited> {
        select! {
            recv(rx) -> r => match r {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(Waited::Refused(e)),
                Err(_) => Err(Waited::Refused(CommandError::Stopping)),
            },
            recv(stop_rx) -> _ => Err(Waited::Refused(CommandError::Stopping)),
            default(timeout) => Err(Waited::TimedOut),
        }
    }
    Ok(match waiter {
        Waiter::Hash(rx) => Answer::Hash(one(&rx, stop_rx, timeout)?),
        Waiter::Views(rx) => Answer::Views(one(&rx, stop_rx, timeout)?),
        Waiter::Count(rx) => Answer::Count(one(&rx, stop_rx, timeout)?),
        Waiter::Categories(rx) => Answer::Categories(one(&rx, stop_rx, timeout)?),
        Waiter::Unit(rx) => {
            one(&rx, stop_rx, timeout)?;
            Answer::Unit
        }
    })
}
