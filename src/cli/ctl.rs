//! `ringseed ctl`: talks to a running daemon over its control socket
//! (`STATE_DIR/control.sock`). Turns each subcommand into protocol
//! requests (`daemon::ctl::protocol`), prints the answers for people (or
//! JSON for scripts with `list --json`). Knows nothing of the daemon's
//! internals beyond the protocol.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use ringseed::magnet::Magnet;
use serde_json::Value;

use super::engine_opts::parse_rate;
use super::units::human_bytes;
use crate::daemon::ctl::protocol::{
    hex_encode, AddAnswer, AddArgs as AddFields, CategoryInfo, TorrentInfo,
};
use crate::daemon::ctl::{default_state_dir, ClientError, CtlClient, Hashes, Request, SOCKET_FILE};

/// Exit status when a request failed (as for every other error).
const EXIT_ERROR: u8 = 2;

/// Options of `ringseed ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The daemon's state directory (default: $STATE_DIRECTORY, else
    /// $XDG_STATE_HOME/ringseed, else ~/.local/state/ringseed).
    #[arg(long, value_name = "DIR", global = true)]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// What to ask the daemon. HASH is a 40-hex info-hash; `all` names every
/// torrent.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Add .torrent files or magnet URIs; prints `added HASH NAME` for each.
    Add(AddArgs),
    /// The torrents: hash, state, progress, ratio, rates, category, tags,
    /// name.
    List {
        /// Print a JSON array of objects (every field) instead.
        #[arg(long)]
        json: bool,
    },
    /// Stop (pause) torrents.
    Stop {
        #[arg(value_name = "HASH|all", required = true)]
        hashes: Vec<String>,
    },
    /// Start torrents (they run when the queue gives them a place).
    Start {
        #[arg(value_name = "HASH|all", required = true)]
        hashes: Vec<String>,
    },
    /// Check torrents' data again.
    Recheck {
        #[arg(value_name = "HASH|all", required = true)]
        hashes: Vec<String>,
    },
    /// Announce torrents to their trackers now.
    Reannounce {
        #[arg(value_name = "HASH|all", required = true)]
        hashes: Vec<String>,
    },
    /// Run torrents whatever the queue says (`--off`: back to the queue).
    ForceStart {
        #[arg(value_name = "HASH|all", required = true)]
        hashes: Vec<String>,
        #[arg(long)]
        off: bool,
    },
    /// Put torrents in a category ("" removes it); the category must exist.
    Category {
        name: String,
        #[arg(value_name = "HASH|all", required = true)]
        hashes: Vec<String>,
    },
    /// Add or remove tags (comma-separated) on torrents.
    Tag {
        action: TagAction,
        #[arg(value_name = "TAG[,TAG]")]
        tags: String,
        #[arg(value_name = "HASH|all", required = true)]
        hashes: Vec<String>,
    },
    /// Set torrents' rate limits (bytes/s: 500K, 2M; 0 or -1: unlimited); a
    /// limit not given goes back to the configured default.
    Limits {
        #[arg(value_name = "HASH|all", required = true)]
        hashes: Vec<String>,
        #[arg(long, value_name = "RATE", allow_negative_numbers = true, value_parser = parse_limit_rate)]
        upload: Option<i64>,
        #[arg(long, value_name = "RATE", allow_negative_numbers = true, value_parser = parse_limit_rate)]
        download: Option<i64>,
    },
    /// Set torrents' share limits (-1: unlimited); a limit not given goes
    /// back to the global one.
    ShareLimits {
        #[arg(value_name = "HASH|all", required = true)]
        hashes: Vec<String>,
        /// Stop seeding at this ratio.
        #[arg(long, value_name = "X", allow_negative_numbers = true)]
        ratio: Option<f64>,
        /// Stop seeding after this many minutes of seeding.
        #[arg(long, value_name = "MINUTES", allow_negative_numbers = true)]
        seeding_time: Option<i64>,
    },
    /// Move torrents' data to DIR (their new save path).
    Move {
        dir: PathBuf,
        #[arg(value_name = "HASH|all", required = true)]
        hashes: Vec<String>,
    },
    /// Remove torrents (their data stays unless --delete-files).
    Remove {
        #[arg(long)]
        delete_files: bool,
        #[arg(value_name = "HASH|all", required = true)]
        hashes: Vec<String>,
    },
    /// The categories and their save paths.
    Categories,
    /// Create (or change) a category.
    CategoryCreate {
        name: String,
        /// Where its torrents' data goes (default: the default download dir).
        #[arg(long, value_name = "DIR")]
        save_path: Option<PathBuf>,
    },
    /// Remove categories (their torrents are left without one).
    CategoryRemove {
        #[arg(required = true)]
        names: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TagAction {
    Add,
    Remove,
}

/// Options of `ringseed ctl add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// .torrent files or magnet URIs.
    #[arg(value_name = "FILE|MAGNET", required = true)]
    pub files: Vec<std::ffi::OsString>,
    /// Where the data is (or goes); default: the category's save path, else
    /// the default download dir.
    #[arg(long, value_name = "DIR")]
    pub save_path: Option<PathBuf>,
    #[arg(long, value_name = "C")]
    pub category: Option<String>,
    /// A tag (repeat for more).
    #[arg(long = "tag", value_name = "T")]
    pub tags: Vec<String>,
    /// Add without starting.
    #[arg(long)]
    pub stopped: bool,
    /// Trust the data on disk: no hash check (still checked if a file's
    /// size is wrong).
    #[arg(long)]
    pub skip_check: bool,
    /// Bytes/s (500K, 2M); 0 or -1: unlimited.
    #[arg(long, value_name = "RATE", allow_negative_numbers = true, value_parser = parse_limit_rate)]
    pub upload_limit: Option<i64>,
    #[arg(long, value_name = "RATE", allow_negative_numbers = true, value_parser = parse_limit_rate)]
    pub download_limit: Option<i64>,
    /// -1: unlimited.
    #[arg(long, value_name = "X", allow_negative_numbers = true)]
    pub ratio_limit: Option<f64>,
    /// Minutes; -1: unlimited.
    #[arg(long, value_name = "MINUTES", allow_negative_numbers = true)]
    pub seeding_time_limit: Option<i64>,
}

/// A rate limit argument: `-1`, `unlimited` or a rate (`0` is unlimited
/// too); the protocol's bytes/s with -1 for unlimited.
fn parse_limit_rate(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if t == "-1" || t.eq_ignore_ascii_case("unlimited") {
        return Ok(-1);
    }
    let rate = parse_rate(t)?;
    if rate == 0 {
        return Ok(-1);
    }
    i64::try_from(rate).map_err(|_| format!("rate {text:?} is too large"))
}

pub fn run(args: &CtlArgs) -> Result<ExitCode> {
    let state_dir = match &args.state_dir {
        Some(d) => d.clone(),
        None => default_state_dir().ok_or_else(|| {
            anyhow!(
                "no state directory: give --state-dir (neither $STATE_DIRECTORY nor $HOME is set)"
            )
        })?,
    };
    let socket = state_dir.join(SOCKET_FILE);
    let mut ctl = Ctl {
        socket,
        state_dir,
        client: None,
    };
    match &args.command {
        CtlCommand::Add(a) => add(&mut ctl, a),
        CtlCommand::List { json } => list(&mut ctl, *json),
        CtlCommand::Stop { hashes } => count(
            &mut ctl,
            "stopped",
            Request::Stop {
                hashes: which(hashes),
            },
        ),
        CtlCommand::Start { hashes } => count(
            &mut ctl,
            "started",
            Request::Start {
                hashes: which(hashes),
            },
        ),
        CtlCommand::Recheck { hashes } => count(
            &mut ctl,
            "rechecking",
            Request::Recheck {
                hashes: which(hashes),
            },
        ),
        CtlCommand::Reannounce { hashes } => count(
            &mut ctl,
            "reannouncing",
            Request::Reannounce {
                hashes: which(hashes),
            },
        ),
        CtlCommand::ForceStart { hashes, off } => count(
            &mut ctl,
            if *off {
                "force start off for"
            } else {
                "force started"
            },
            Request::ForceStart {
                hashes: which(hashes),
                on: !off,
            },
        ),
        CtlCommand::Category { name, hashes } => count(
            &mut ctl,
            "category set on",
            Request::SetCategory {
                hashes: which(hashes),
                category: name.clone(),
            },
        ),
        CtlCommand::Tag {
            action,
            tags,
            hashes,
        } => {
            let tags: Vec<String> = tags
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect();
            if tags.is_empty() {
                bail!("no tag given");
            }
            let hashes = which(hashes);
            match action {
                TagAction::Add => count(&mut ctl, "tagged", Request::AddTags { hashes, tags }),
                TagAction::Remove => {
                    count(&mut ctl, "untagged", Request::RemoveTags { hashes, tags })
                }
            }
        }
        CtlCommand::Limits {
            hashes,
            upload,
            download,
        } => count(
            &mut ctl,
            "rate limits set on",
            Request::SetRateLimits {
                hashes: which(hashes),
                upload_limit: *upload,
                download_limit: *download,
            },
        ),
        CtlCommand::ShareLimits {
            hashes,
            ratio,
            seeding_time,
        } => count(
            &mut ctl,
            "share limits set on",
            Request::SetShareLimits {
                hashes: which(hashes),
                ratio_limit: *ratio,
                seeding_time_limit_min: *seeding_time,
            },
        ),
        CtlCommand::Move { dir, hashes } => count(
            &mut ctl,
            "moving",
            Request::Move {
                hashes: which(hashes),
                dir: absolute(dir)?,
            },
        ),
        CtlCommand::Remove {
            delete_files,
            hashes,
        } => count(
            &mut ctl,
            if *delete_files {
                "removed (files deleted)"
            } else {
                "removed"
            },
            Request::Remove {
                hashes: which(hashes),
                delete_files: *delete_files,
            },
        ),
        CtlCommand::Categories => categories(&mut ctl),
        CtlCommand::CategoryCreate { name, save_path } => {
            let save_path = save_path.as_deref().map(absolute).transpose()?;
            ctl.call(&Request::SetCategoryDef {
                name: name.clone(),
                save_path,
            })?;
            println!("category {name}");
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::CategoryRemove { names } => count(
            &mut ctl,
            "removed categories:",
            Request::RemoveCategories {
                names: names.clone(),
            },
        ),
    }
}

/// The connection, made at the first request.
struct Ctl {
    socket: PathBuf,
    state_dir: PathBuf,
    client: Option<CtlClient>,
}

impl Ctl {
    /// The `ok` value; a daemon's refusal is an error with its text, a
    /// daemon that cannot be reached an error saying how to start it.
    fn call(&mut self, req: &Request) -> Result<Value> {
        let result = match &mut self.client {
            Some(c) => c.call(req),
            None => CtlClient::connect(&self.socket).and_then(|mut c| {
                let r = c.call(req);
                self.client = Some(c);
                r
            }),
        };
        result.map_err(|e| match e {
            ClientError::Connect { path, source } => anyhow!(
                "cannot reach the daemon at {}: {source} (is ringseed daemon running with --state-dir {}?)",
                path.display(),
                self.state_dir.display()
            ),
            other => anyhow!("{other}"),
        })
    }
}

/// `all` alone names every torrent.
fn which(hashes: &[String]) -> Hashes {
    if hashes.len() == 1 && hashes[0] == "all" {
        Hashes::all()
    } else {
        Hashes::List(hashes.to_vec())
    }
}

/// The daemon may run elsewhere in the file tree: paths go absolute.
fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("cannot make {} absolute", p.display()))
}

fn count(ctl: &mut Ctl, verb: &str, req: Request) -> Result<ExitCode> {
    let v = ctl.call(&req)?;
    let n = v
        .as_u64()
        .ok_or_else(|| anyhow!("the daemon's answer to {} is not a count: {v}", req.name()))?;
    if verb.ends_with(':') {
        println!("{verb} {n}");
    } else {
        println!("{verb} {n} torrent{}", if n == 1 { "" } else { "s" });
    }
    Ok(ExitCode::SUCCESS)
}

fn add(ctl: &mut Ctl, a: &AddArgs) -> Result<ExitCode> {
    let save_path = a.save_path.as_deref().map(absolute).transpose()?;
    let mut failed = false;
    for target in &a.files {
        let prepared = prepare_add(target).map(|(source, name)| {
            let fields = AddFields {
                save_path: save_path.clone(),
                category: a.category.clone(),
                tags: a.tags.clone(),
                stopped: a.stopped,
                skip_check: a.skip_check,
                upload_limit: a.upload_limit,
                download_limit: a.download_limit,
                ratio_limit: a.ratio_limit,
                seeding_time_limit_min: a.seeding_time_limit,
                ..source
            };
            (fields, name)
        });
        let (fields, name) = match prepared {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e:#}");
                failed = true;
                continue;
            }
        };
        match ctl.call(&Request::Add(fields)) {
            Ok(v) => {
                let answer: AddAnswer = serde_json::from_value(v)
                    .context("the daemon's answer to add is not understood")?;
                println!("added {} {name}", answer.hash);
            }
            Err(e) => {
                // The daemon is down: the next files would fail the same.
                if ctl.client.is_none() {
                    return Err(e);
                }
                eprintln!("error: {}: {e:#}", target.to_string_lossy());
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

/// The request's source fields and the torrent's name, from a .torrent
/// file (read and checked here, so that errors name the file) or a magnet.
fn prepare_add(target: &std::ffi::OsStr) -> Result<(AddFields, String)> {
    if let Some(uri) = target.to_str().filter(|t| t.starts_with("magnet:")) {
        let m = Magnet::parse(uri).context("not a valid magnet URI")?;
        let name = m.display_name.unwrap_or_default();
        let fields = AddFields {
            magnet: Some(uri.to_string()),
            ..AddFields::default()
        };
        return Ok((fields, name));
    }
    let path = Path::new(target);
    let (bytes, m) = super::load::load_torrent_bytes(path)?;
    let fields = AddFields {
        torrent_hex: Some(hex_encode(&bytes)),
        ..AddFields::default()
    };
    Ok((fields, m.info.name))
}

fn list(ctl: &mut Ctl, json: bool) -> Result<ExitCode> {
    let v = ctl.call(&Request::List)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let torrents: Vec<TorrentInfo> =
        serde_json::from_value(v).context("the daemon's answer to list is not understood")?;
    print!("{}", list_table(&torrents));
    Ok(ExitCode::SUCCESS)
}

/// The torrents as a table with aligned columns, the name last.
fn list_table(torrents: &[TorrentInfo]) -> String {
    let header = [
        "HASH", "STATE", "PROGRESS", "RATIO", "UP", "DOWN", "CATEGORY", "TAGS", "NAME",
    ];
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let rows: Vec<[String; 9]> = torrents
        .iter()
        .map(|t| {
            [
                t.hash.clone(),
                t.state.clone(),
                format!("{:.1}%", (t.progress * 1000.0).floor() / 10.0),
                format!("{:.2}", t.ratio),
                format!("{}/s", human_bytes(t.rate_up)),
                format!("{}/s", human_bytes(t.rate_down)),
                dash(&t.category),
                dash(&t.tags.join(",")),
                t.name.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

fn categories(ctl: &mut Ctl) -> Result<ExitCode> {
    let v = ctl.call(&Request::Categories)?;
    let cats: Vec<CategoryInfo> =
        serde_json::from_value(v).context("the daemon's answer to categories is not understood")?;
    for c in cats {
        match c.save_path {
            Some(p) => println!("{}\t{}", c.name, p.display()),
            None => println!("{}\t(default download dir)", c.name),
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_rates() {
        assert_eq!(parse_limit_rate("-1"), Ok(-1));
        assert_eq!(parse_limit_rate("0"), Ok(-1));
        assert_eq!(parse_limit_rate("unlimited"), Ok(-1));
        assert_eq!(parse_limit_rate("2K"), Ok(2048));
        assert!(parse_limit_rate("fast").is_err());
    }

    use crossbeam_channel::bounded;
    use ringseed::metainfo::{NewFile, TorrentBuilder};

    use crate::daemon::command::Command;
    use crate::daemon::ctl::CtlServer;
    use crate::daemon::record::{RateLimits, Source};

    fn args(state_dir: &Path, command: CtlCommand) -> CtlArgs {
        CtlArgs {
            state_dir: Some(state_dir.to_path_buf()),
            command,
        }
    }

    /// The CLI against a real socket and the test in the core's place:
    /// an add of a .torrent file carries its bytes and options; a bad file
    /// is named and makes the exit status 2 while the others are added.
    #[test]
    fn add_sends_the_file_and_its_options() {
        let dir = tempfile::tempdir().unwrap();
        let b = TorrentBuilder {
            name: "data.bin".into(),
            files: vec![NewFile {
                path: vec![],
                length: 100,
            }],
            single_file: true,
            piece_length: 16 * 1024,
            ..TorrentBuilder::default()
        };
        let bytes = b.build(&[[0u8; 20]]).unwrap();
        let torrent = dir.path().join("a.torrent");
        std::fs::write(&torrent, &bytes).unwrap();
        let info_hash = ringseed::metainfo::Metainfo::from_bytes(&bytes)
            .unwrap()
            .info_hash;

        let (tx, rx) = bounded(4);
        let server = CtlServer::start(&dir.path().join(SOCKET_FILE), tx).unwrap();
        let core = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while let Ok(cmd) = rx.recv_timeout(std::time::Duration::from_secs(10)) {
                let Command::Add { add, reply } = cmd else {
                    panic!("{cmd:?}")
                };
                reply.send(Ok(info_hash)).unwrap();
                seen.push(*add);
            }
            seen
        });
        let add = AddArgs {
            files: vec![
                torrent.clone().into(),
                dir.path().join("missing.torrent").into(),
            ],
            save_path: Some("rel".into()),
            category: Some("tv".into()),
            tags: vec!["t1".into()],
            stopped: true,
            skip_check: false,
            upload_limit: Some(-1),
            download_limit: None,
            ratio_limit: None,
            seeding_time_limit: None,
        };
        let code = run(&args(dir.path(), CtlCommand::Add(add))).unwrap();
        assert_eq!(
            format!("{code:?}"),
            format!("{:?}", ExitCode::from(EXIT_ERROR))
        );
        server.stop();
        let seen = core.join().unwrap();
        assert_eq!(seen.len(), 1, "the missing file is not sent");
        let a = &seen[0];
        assert_eq!(a.source, Source::Torrent(bytes));
        assert!(a.save_path.as_ref().unwrap().is_absolute());
        assert!(a.save_path.as_ref().unwrap().ends_with("rel"));
        assert_eq!(a.category, "tv");
        assert!(a.stopped && a.tags.contains("t1"));
        assert_eq!(
            a.rate_limits,
            RateLimits {
                upload: Some(0),
                download: None
            }
        );
    }

    #[test]
    fn no_daemon_says_how_to_start_one() {
        let dir = tempfile::tempdir().unwrap();
        let e = run(&args(dir.path(), CtlCommand::List { json: false })).unwrap_err();
        let text = e.to_string();
        let socket = dir.path().join(SOCKET_FILE);
        assert!(
            text.starts_with(&format!(
                "cannot reach the daemon at {}: ",
                socket.display()
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("--state-dir {}?", dir.path().display())),
            "{text}"
        );
    }

    #[test]
    fn the_table_has_the_whole_hash() {
        let hash = "0123456789abcdef0123456789abcdef01234567";
        let t: TorrentInfo = serde_json::from_value(serde_json::json!({
            "hash": hash, "name": "n", "state": "seeding", "progress": 0.9999, "pieces_have": 9, "piece_count": 10,
            "total_length": 1, "bytes_left": 0, "rate_up": 2048, "rate_down": 0,
            "peers": 0, "message": null, "source": "torrent", "magnet": null,
            "save_path": "/d", "category": "", "tags": ["a", "b"], "wanted": "started",
            "force_start": false, "ratio": 1.5, "ratio_limit": null,
            "seeding_time_limit_s": null, "upload_limit": null, "download_limit": null,
            "added_at": 0, "completed_at": null, "uploaded": 0, "downloaded": 0,
            "seeding_time_s": 0, "active_time_s": 0, "pieces": null, "file_stamps": [],
            "moving_to": null
        }))
        .unwrap();
        let table = list_table(&[t]);
        let row = table.lines().nth(1).unwrap();
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [hash, "seeding", "99.9%", "1.50", "2.00", "KiB/s", "0", "B/s", "-", "a,b", "n"]
        );
    }

    #[test]
    fn all_alone_names_every_torrent() {
        assert_eq!(which(&["all".into()]), Hashes::all());
        let two = vec!["all".to_string(), "x".to_string()];
        assert_eq!(which(&two), Hashes::List(two.clone()));
    }
}
