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
    /// Read a password from standard input (one line) and print its salted
    /// hash for api.password_hash (qBittorrent.conf's format).
    #[arg(long)]
    pub hash_password: bool,
}

pub fn run(args: &ConfigArgs) -> Result<()> {
    if args.hash_password {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let password = line.trim_end_matches(['\n', '\r']);
        if password.is_empty() {
            anyhow::bail!("no password on standard input");
        }
        println!(
            "{}",
            crate::daemon::webapi::auth::PasswordHash::new(password).encode()
        );
    } else if let Some(path) = &args.check {
        DaemonConfig::load(path)?;
        println!("{}: ok", path.display());
    } else {
        print!("{}", default_toml());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_accepts_the_default_file_and_names_the_error_of_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.toml");
        std::fs::write(&good, default_toml()).unwrap();
        let args = |check: &std::path::Path| ConfigArgs {
            default: false,
            check: Some(check.to_owned()),
            hash_password: false,
        };
        assert!(run(&args(&good)).is_ok());
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[queue]\nenabled = \"yes\"\n").unwrap();
        let e = run(&args(&bad)).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: queue.enabled at line 2: expected true or false, found a string",
                bad.display()
            )
        );
    }
}
