//! The Web API's listener and thread: accepts connections (at most
//! [`CONNECTIONS_MAX`] at once), speaks HTTP/1.1 through hyper with a
//! deadline on headers and body, reads each request whole (at most
//! [`BODY_BYTES_MAX`]) and hands it to [`routes::route`] on tokio's
//! blocking pool (at most [`HANDLERS_MAX`] at once), because the handlers
//! wait for the core.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::Sender;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, SET_COOKIE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use ringseed::runtime::sockets::{tcp_listener, BindOptions};
use thiserror::Error;
use tokio::sync::{oneshot, Semaphore};

use super::routes::{self, ApiRequest, ApiResponse, State};
use super::{
    ApiSettings, BODY_BUDGET_MIB, BODY_BYTES_MAX, BODY_READ_TIMEOUT, CONNECTIONS_MAX,
    CONNECTIONS_PER_ADDRESS_MAX, HANDLERS_MAX, HEADER_READ_TIMEOUT, UNAUTHENTICATED_BODY_BYTES_MAX,
};
use crate::daemon::command::Command;

/// Pending connections the kernel keeps for us.
const BACKLOG: i32 = 256;

/// Why the Web API could not start.
#[derive(Debug, Error)]
pub enum ApiError {
    #[error("cannot listen on {addr} for the Web API: {why}")]
    Listen { addr: SocketAddr, why: String },
    #[error("cannot start the Web API's thread: {0}")]
    Thread(io::Error),
}

/// The running Web API; [`WebApi::stop`] (or drop) ends it.
pub struct WebApi {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WebApi {
    /// Binds `settings.listen` and serves on a thread of its own; requests
    /// become commands on `commands`. `bind` is the peers' interface
    /// binding, used for the .torrent downloads the API asks for; `tags`
    /// the tag list kept by the last run.
    pub fn start(
        settings: ApiSettings,
        listen: SocketAddr,
        commands: Sender<Command>,
        bind: BindOptions,
        tags: std::collections::BTreeSet<String>,
    ) -> Result<WebApi, ApiError> {
        let listener =
            tcp_listener(listen, &BindOptions::default(), false, BACKLOG).map_err(|e| {
                ApiError::Listen {
                    addr: listen,
                    why: e.to_string(),
                }
            })?;
        let addr = listener.local_addr().map_err(|e| ApiError::Listen {
            addr: listen,
            why: e.to_string(),
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| ApiError::Listen {
                addr: listen,
                why: e.to_string(),
            })?;
        let state = Arc::new(State::new(settings, commands, bind, addr, tags));
        let (tx, rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("webapi".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .max_blocking_threads(HANDLERS_MAX)
                    .thread_name("webapi-handler")
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("Web API: cannot start its runtime: {e}");
                        return;
                    }
                };
                rt.block_on(serve(listener, state, rx));
            })
            .map_err(ApiError::Thread)?;
        Ok(WebApi {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and ends the thread (open connections are dropped).
    pub fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for WebApi {
    fn drop(&mut self) {
        self.end();
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("Web API: {e}");
            return;
        }
    };
    let connections = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let handlers = Arc::new(Semaphore::new(HANDLERS_MAX));
    let bodies = Arc::new(Semaphore::new(BODY_BUDGET_MIB));
    let per_address: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut stop => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!("Web API: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Never wait for room: a full server, or an address holding its
        // share already, has the new connection closed at once, so that
        // idle connections cannot keep others waiting.
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!("Web API: {CONNECTIONS_MAX} connections open; closing {peer}'s");
            continue;
        };
        let Some(slot) = AddressSlot::take(&per_address, peer.ip()) else {
            tracing::debug!(
                "Web API: {} has {CONNECTIONS_PER_ADDRESS_MAX} connections open; closing another",
                peer.ip()
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let handlers = handlers.clone();
        let bodies = bodies.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                handle(state.clone(), handlers.clone(), bodies.clone(), peer, req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!("Web API: connection from {peer}: {e}");
            }
            drop(slot);
            drop(permit);
        });
    }
}

/// One of an address's connections, given back on drop.
struct AddressSlot {
    table: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl AddressSlot {
    fn take(table: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr) -> Option<AddressSlot> {
        let mut t = table.lock().ok()?;
        let n = t.entry(ip).or_insert(0);
        if *n >= CONNECTIONS_PER_ADDRESS_MAX {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut t) = self.table.lock() {
            if let Some(n) = t.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    t.remove(&self.ip);
                }
            }
        }
    }
}

/// 413 for a body over `limit`.
fn too_large(limit: usize) -> Response<Full<Bytes>> {
    let why = if limit < BODY_BYTES_MAX {
        format!("Request body too large (at most {limit} bytes without a session)")
    } else {
        format!("Request body too large (at most {limit} bytes)")
    };
    plain(StatusCode::PAYLOAD_TOO_LARGE, &why)
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    r
}

async fn handle(
    state: Arc<State>,
    handlers: Arc<Semaphore>,
    bodies: Arc<Semaphore>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Who may send a large body: a client with a live session (or Basic
    // credentials, checked later); anyone else's body (a login form) is
    // small. Large bodies also share one budget, so that memory stays
    // bounded whatever the number of connections.
    let cookie_ok = parts
        .headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|c| state.has_session(c));
    let limit = if cookie_ok || parts.headers.contains_key(hyper::header::AUTHORIZATION) {
        BODY_BYTES_MAX
    } else {
        UNAUTHENTICATED_BODY_BYTES_MAX
    };
    if declared.is_some_and(|n| n > limit as u64) {
        let mut r = too_large(limit);
        r.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(r);
    }
    // A body that may be large (declared so, or chunked: its size is
    // unknown) waits for its share of the budget; small ones (a form, a GET
    // without a body) are bounded by the connections and do not wait.
    let expected = declared.or_else(|| hyper::body::Body::size_hint(&body).exact());
    let large = expected.is_none_or(|n| n > UNAUTHENTICATED_BODY_BYTES_MAX as u64);
    let budget = if limit == BODY_BYTES_MAX && large {
        let mib = expected
            .map_or(limit, |n| n as usize)
            .div_ceil(1 << 20)
            .max(1);
        match bodies.acquire_many_owned(mib as u32).await {
            Ok(p) => Some(p),
            Err(_) => return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, "stopping")),
        }
    } else {
        None
    };
    let body =
        match tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, limit).collect()).await {
            Ok(Ok(c)) => c.to_bytes(),
            Ok(Err(e)) => {
                let is_too_large = e
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some();
                let mut r = if is_too_large {
                    too_large(limit)
                } else {
                    plain(StatusCode::BAD_REQUEST, &format!("Bad request body: {e}"))
                };
                r.headers_mut()
                    .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                return Ok(r);
            }
            Err(_) => {
                let mut r = plain(
                    StatusCode::REQUEST_TIMEOUT,
                    &format!("Request body not received within {BODY_READ_TIMEOUT:?}"),
                );
                r.headers_mut()
                    .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                return Ok(r);
            }
        };
    let header = |name: hyper::header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let api_req = ApiRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        content_type: header(CONTENT_TYPE),
        cookie: parts
            .headers
            .get_all(hyper::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; "),
        authorization: header(hyper::header::AUTHORIZATION),
        peer: peer.ip(),
        body,
    };
    drop(budget);
    let Ok(_permit) = handlers.acquire_owned().await else {
        return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, "stopping"));
    };
    let answer = tokio::task::spawn_blocking(move || routes::route(&state, api_req)).await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("Web API: a handler failed: {e}");
            ApiResponse::text(500, "internal error")
        }
    };
    Ok(to_hyper(answer))
}

fn to_hyper(a: ApiResponse) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(a.body)));
    *r.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&a.content_type) {
        h.insert(CONTENT_TYPE, v);
    }
    if let Some(c) = a.set_cookie {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.insert(SET_COOKIE, v);
        }
    }
    for (name, value) in a.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    r
}
