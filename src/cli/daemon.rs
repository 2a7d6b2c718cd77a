//! `ringseed daemon`: the long-running service. STUB.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct DaemonArgs {}

pub fn run(_args: &DaemonArgs) -> Result<ExitCode> {
    anyhow::bail!("not yet")
}
