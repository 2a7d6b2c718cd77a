//! The `ringseed` command line: `create`, `info`, `verify`, `seed`,
//! `download`, the service (`daemon`), its client (`ctl`) and `config`. Parses arguments (clap), sets up logging, runs the subcommand,
//! prints `error: ...` with the cause chain (each cause once) and exits with
//! status 2 on failure.

// serde_json's `json!` for qBittorrent's larger objects (56 keys).
#![recursion_limit = "256"]
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod daemon;

mod cli {
    pub mod config_cmd;
    pub mod create;
    pub mod ctl;
    pub mod daemon;
    pub mod download;
    pub mod engine_opts;
    pub mod info;
    pub mod info_magnet;
    pub mod load;
    pub mod logging;
    pub mod progress;
    pub mod seed;
    pub mod session_run;
    pub mod tuning;
    pub mod units;
    pub mod verify;
}

/// Exit status for errors (bad arguments, unreadable inputs).
const EXIT_ERROR: u8 = 2;

/// ringseed: a BitTorrent seedbox engine on io_uring.
#[derive(Debug, Parser)]
#[command(name = "ringseed", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a .torrent file from a file or a directory.
    Create(cli::create::CreateArgs),
    /// Show what a .torrent file or a magnet URI holds.
    Info(cli::info::InfoArgs),
    /// Check a torrent's data on disk, piece by piece.
    Verify(cli::verify::VerifyArgs),
    /// Seed torrents whose data is on disk, until stopped.
    Seed(cli::seed::SeedArgs),
    /// Download a torrent, then (with --seed) keep seeding it.
    Download(cli::download::DownloadArgs),
    /// Run the service: keeps its torrents and state, takes new ones while
    /// it runs, until SIGTERM.
    Daemon(cli::daemon::DaemonArgs),
    /// Control a running daemon (add, list, stop, start, move, remove...).
    Ctl(cli::ctl::CtlArgs),
    /// The daemon's configuration file (`--default` prints one).
    Config(cli::config_cmd::ConfigArgs),
}

/// Lets each hashing thread keep its files open: raises the soft limit on
/// open files to the hard one.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write `lim`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Create(a) => {
            raise_open_file_limit();
            cli::create::run(&a).map(|()| ExitCode::SUCCESS)
        }
        Command::Info(a) => cli::info::run(&a).map(|()| ExitCode::SUCCESS),
        Command::Verify(a) => {
            raise_open_file_limit();
            cli::verify::run(&a)
        }
        Command::Seed(a) => {
            raise_open_file_limit();
            cli::seed::run(&a)
        }
        Command::Download(a) => {
            raise_open_file_limit();
            cli::download::run(&a)
        }
        Command::Daemon(a) => {
            raise_open_file_limit();
            cli::daemon::run(&a)
        }
        Command::Ctl(a) => cli::ctl::run(&a),
        Command::Config(a) => cli::config_cmd::run(&a).map(|()| ExitCode::SUCCESS),
    }
}

/// The error and its causes joined by `: `, each said once: a cause whose
/// text a message before it already holds (an error type that prints its
/// source in its own message) is left out, and a message that the next
/// cause repeats and extends gives way to that cause.
fn error_text(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if part.is_empty() || parts.iter().any(|p| p.contains(&part)) {
            continue;
        }
        match parts.last_mut() {
            Some(last) if part.starts_with(last.as_str()) => *last = part,
            _ => parts.push(part),
        }
    }
    parts.join(": ")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::logging::init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that prints its source in its own message, as several of
    /// the library's errors do.
    #[derive(Debug)]
    struct OpenError {
        path: String,
        source: std::io::Error,
    }

    impl std::fmt::Display for OpenError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot open {}: {}", self.path, self.source)
        }
    }

    impl std::error::Error for OpenError {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        let io_text = io.to_string();
        let e = anyhow::Error::new(OpenError {
            path: "x/y.bin".into(),
            source: io,
        })
        .context("cannot open x/y.bin");
        let text = error_text(&e);
        assert_eq!(text, format!("cannot open x/y.bin: {io_text}"));
        assert_eq!(text.matches("os error 2").count(), 1, "{text}");
        // Distinct causes are all kept, in order.
        let e = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(error_text(&e), "outer: middle: inner");
    }
}
