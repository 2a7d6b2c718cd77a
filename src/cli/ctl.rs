//! `ringseed ctl`: talks to a running daemon over its control socket.
//! STUB: written in the ctl helper's branch.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct CtlArgs {}

pub fn run(_args: &CtlArgs) -> Result<ExitCode> {
    anyhow::bail!("not yet")
}
