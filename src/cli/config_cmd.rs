//! `ringseed config --default`. STUB: written in the config helper's branch.

use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print a documented configuration file with every key at its default.
    #[arg(long)]
    pub default: bool,
}

pub fn run(_args: &ConfigArgs) -> Result<()> {
    print!("{}", crate::daemon::config::default_toml());
    Ok(())
}
