//! The local control socket (`STATE_DIR/control.sock`). STUB: written in
//! the ctl helper's branch.

use std::path::{Path, PathBuf};

use crossbeam_channel::Sender;

use super::command::Command;

pub const SOCKET_FILE: &str = "control.sock";

#[derive(Debug, thiserror::Error)]
#[error("control socket")]
pub struct CtlError;

pub struct CtlServer;

impl CtlServer {
    pub fn start(_path: &Path, _commands: Sender<Command>) -> Result<CtlServer, CtlError> {
        Ok(CtlServer)
    }
    pub fn stop(self) {}
}

pub fn default_state_dir() -> Option<PathBuf> {
    None
}
