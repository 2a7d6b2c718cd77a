//! `ringseed config`: prints the documented default configuration file
//! (`--default`) or checks a file as the daemon would read it (`--check
//! FILE`). Reads only the named file; starts nothing.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::daemon::config::{default_toml, DaemonConfig};

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ConfigArgs {
    /// Print a documented configuration file with every key at its default.
    #[arg(long)]
    pub default: bool,
    /// Check a configuration file as the daemon reads it: prints `FILE: ok`,
    /// or the first error with its key and line (exit status 2).
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
}

pub fn run(args: &ConfigArgs) -> Result<()> {
    if let Some(path) = &args.check {
        DaemonConfig::load(path)?;
        println!("{}: ok", path.display());
    } else {
        print!("{}", default_toml());
    }
    Ok(())
}
