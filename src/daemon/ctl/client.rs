//! One connection to the control socket, for `ringseed ctl` and tests:
//! sends a [`Request`] line, reads its answer line (bounded in size and
//! time) and gives back the `ok` value or the daemon's error text.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use thiserror::Error;

use super::protocol::Request;
use super::{CTL_REPLY_TIMEOUT_LONG, CTL_RESPONSE_BYTES_MAX, CTL_WRITE_TIMEOUT};

/// How long the client waits for an answer: the longest the server waits
/// for the core, and some.
pub const CLIENT_READ_TIMEOUT: Duration =
    Duration::from_secs(CTL_REPLY_TIMEOUT_LONG.as_secs() + 30);

/// Why a request got no answer from the core.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("cannot reach the daemon at {path}: {source}")]
    Connect { path: PathBuf, source: io::Error },
    #[error("the connection to the daemon at {path} failed: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("the daemon at {path} closed the connection without an answer")]
    Closed { path: PathBuf },
    #[error("the daemon's answer is longer than {CTL_RESPONSE_BYTES_MAX} bytes")]
    TooLong,
    #[error("the daemon's answer is not understood: {0}")]
    BadAnswer(String),
    /// The daemon answered with an error.
    #[error("{0}")]
    Refused(String),
}

/// A connection to a daemon's control socket.
#[derive(Debug)]
pub struct CtlClient {
    path: PathBuf,
    reader: BufReader<UnixStream>,
}

impl CtlClient {
    pub fn connect(socket: &Path) -> Result<CtlClient, ClientError> {
        let connect_err = |source| ClientError::Connect {
            path: socket.to_path_buf(),
            source,
        };
        let stream = UnixStream::connect(socket).map_err(connect_err)?;
        stream
            .set_read_timeout(Some(CLIENT_READ_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(CTL_WRITE_TIMEOUT)))
            .map_err(connect_err)?;
        Ok(CtlClient {
            path: socket.to_path_buf(),
            reader: BufReader::new(stream),
        })
    }

    /// Sends `req` and gives back the `ok` value of its answer.
    pub fn call(&mut self, req: &Request) -> Result<Value, ClientError> {
        let mut line = serde_json::to_vec(req)
            .map_err(|e| ClientError::BadAnswer(format!("cannot encode the request: {e}")))?;
        line.push(b'\n');
        self.call_raw(&line)
    }

    /// Sends one raw line (newline included) and gives back the `ok`
    /// value of its answer.
    pub fn call_raw(&mut self, line: &[u8]) -> Result<Value, ClientError> {
        // A server that refuses the line may close before it is all
        // written; its answer says why, so read it whatever the write did.
        let written = self.reader.get_mut().write_all(line);
        let answer = self.read_answer();
        match (answer, written) {
            (Err(ClientError::Closed { .. }), Err(source)) => Err(ClientError::Io {
                path: self.path.clone(),
                source,
            }),
            (answer, _) => answer,
        }
    }

    fn read_answer(&mut self) -> Result<Value, ClientError> {
        let mut buf = Vec::new();
        let limit = CTL_RESPONSE_BYTES_MAX as u64 + 1;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Err(ClientError::Closed {
                path: self.path.clone(),
            });
        }
        if buf.last() != Some(&b'\n') && buf.len() > CTL_RESPONSE_BYTES_MAX {
            return Err(ClientError::TooLong);
        }
        let v: Value =
            serde_json::from_slice(&buf).map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        let Value::Object(mut map) = v else {
            return Err(ClientError::BadAnswer("not a JSON object".to_string()));
        };
        if let Some(e) = map.remove("error") {
            return Err(ClientError::Refused(match e {
                Value::String(s) => s,
                other => other.to_string(),
            }));
        }
        map.remove("ok")
            .ok_or_else(|| ClientError::BadAnswer("neither \"ok\" nor \"error\"".to_string()))
    }
}
