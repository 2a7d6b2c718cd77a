//! `ringseed daemon`: the long-running service. Reads the configuration
//! file with the command-line overrides on top, opens the state database,
//! starts the engine and the control socket, tells systemd it is ready,
//! and runs the core until SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use crossbeam_channel::bounded;
use ringseed::runtime::session::SHARDS_MAX;
use ringseed::runtime::signals;

use crate::daemon::command::COMMAND_QUEUE_MAX;
use crate::daemon::config::{DaemonConfig, DEFAULT_CONFIG_PATH};
use crate::daemon::core::{Core, CoreSetup};
use crate::daemon::ctl::{default_state_dir, CtlServer, SOCKET_FILE};
use crate::daemon::notify::Notifier;
use crate::daemon::webapi::auth::PasswordHash;
use crate::daemon::webapi::routes::{saved_tags, TAGS_KEY};
use crate::daemon::webapi::{ApiSettings, WebApi};
use ringseed::runtime::sockets::BindOptions;

#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Settings come from the configuration file (--config FILE, else \
/etc/ringseed/ringseed.toml when present, else built-in defaults; \
`ringseed config --default` prints a documented one); the options below \
override it. State (torrents, pieces, totals) is kept in STATE_DIR/ringseed.db \
and survives kill -9; a restart resumes without checking data whose files did \
not change. Torrents are added through the watch folder or `ringseed ctl add`. \
SIGHUP re-reads the configuration file; SIGUSR1 logs a status line; SIGTERM \
stops cleanly (state saved, trackers told).")]
pub struct DaemonArgs {
    /// The configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the state database lives [default: $STATE_DIRECTORY, else
    /// ~/.local/state/ringseed].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The default save path of new torrents [default: ~/Downloads].
    #[arg(long, value_name = "DIR")]
    pub download_dir: Option<PathBuf>,
    /// Address and port to accept peers on; repeatable.
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Vec<SocketAddr>,
    /// Bind every socket to this network interface.
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
    /// Use this local address for every socket of its family.
    #[arg(long, value_name = "IP")]
    pub bind_address: Option<IpAddr>,
    /// A folder scanned for .torrent files to add.
    #[arg(long, value_name = "DIR")]
    pub watch_dir: Option<PathBuf>,
    /// Where the qBittorrent Web API, /metrics and the web page listen
    /// ("off": nowhere) [default: the file's api.listen, 127.0.0.1:8080].
    #[arg(long, value_name = "IP:PORT|off")]
    pub api_listen: Option<String>,
    /// Serve this alternative WebUI folder (holding public/index.html,
    /// as VueTorrent's) at / instead of the built-in page.
    #[arg(long, value_name = "DIR")]
    pub webui_root: Option<PathBuf>,
    /// Turn the DHT off (the file's network.dht).
    #[arg(long)]
    pub no_dht: bool,
    /// Bootstrap the DHT from this node instead of the file's
    /// network.dht_bootstrap (the public routers by default); repeatable.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "no_dht")]
    pub dht_bootstrap: Vec<String>,
    /// Shards (threads with their own io_uring) [default: online CPUs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=SHARDS_MAX as i64))]
    pub shards: Option<u16>,
    /// Protocol encryption with peers (the file's network.encryption).
    #[arg(long, value_name = "disabled|enabled|required")]
    pub encryption: Option<ringseed::mse::EncryptionMode>,
    /// What may follow the encrypted handshake (the file's
    /// network.encryption_level).
    #[arg(long, value_name = "plaintext|rc4|both")]
    pub encryption_level: Option<ringseed::mse::EncryptionLevel>,
}

impl DaemonArgs {
    /// The file to read: `--config`, else the system file when present.
    fn config_file(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| {
            let p = PathBuf::from(DEFAULT_CONFIG_PATH);
            p.exists().then_some(p)
        })
    }

    /// The file (or the defaults) with the overrides on top.
    fn load(&self) -> Result<DaemonConfig> {
        let mut c = match self.config_file() {
            Some(p) => DaemonConfig::load(&p)?,
            None => DaemonConfig::default(),
        };
        let abs = |p: &PathBuf| -> Result<PathBuf> {
            std::path::absolute(p).with_context(|| format!("{}", p.display()))
        };
        if let Some(d) = &self.state_dir {
            c.paths.state_dir = Some(abs(d)?);
        }
        if let Some(d) = &self.download_dir {
            c.paths.download_dir = Some(abs(d)?);
        }
        if let Some(d) = &self.watch_dir {
            c.paths.watch_dir = Some(abs(d)?);
        }
        if !self.listen.is_empty() {
            c.network.listen = self.listen.clone();
        }
        if self.interface.is_some() {
            c.network.interface = self.interface.clone();
        }
        if self.bind_address.is_some() {
            c.network.bind_address = self.bind_address;
        }
        if let Some(n) = self.shards {
            c.engine.shards = Some(usize::from(n));
        }
        if let Some(m) = self.encryption {
            c.network.encryption = m;
        }
        if let Some(l) = self.encryption_level {
            c.network.encryption_level = l;
        }
        if self.no_dht {
            c.network.dht = false;
        }
        if !self.dht_bootstrap.is_empty() {
            if self.dht_bootstrap.len() > crate::daemon::config::DHT_BOOTSTRAP_MAX {
                bail!(
                    "--dht-bootstrap given {} times: at most {}",
                    self.dht_bootstrap.len(),
                    crate::daemon::config::DHT_BOOTSTRAP_MAX
                );
            }
            for b in &self.dht_bootstrap {
                crate::daemon::config::check_host_port(b)
                    .map_err(|e| anyhow::anyhow!("--dht-bootstrap {e}"))?;
            }
            c.network.dht = true;
            c.network.dht_bootstrap = self.dht_bootstrap.clone();
        }
        if let Some(a) = &self.api_listen {
            c.api.listen =
                if a == "off" {
                    None
                } else {
                    Some(a.parse().with_context(|| {
                        format!("--api-listen {a:?}: expected IP:PORT or \"off\"")
                    })?)
                };
        }
        if let Some(d) = &self.webui_root {
            c.api.webui_root = Some(abs(d)?);
        }
        Ok(c)
    }
}

fn default_download_dir(state_dir: &Path) -> PathBuf {
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => Path::new(&h).join("Downloads"),
        None => state_dir.join("downloads"),
    }
}

pub fn run(args: &DaemonArgs) -> Result<ExitCode> {
    signals::install();
    let config = args.load()?;
    let state_dir = match config.paths.state_dir.clone().or_else(default_state_dir) {
        Some(d) => d,
        None => bail!("no state directory: give --state-dir (HOME and STATE_DIRECTORY are unset)"),
    };
    let download_dir = config
        .paths
        .download_dir
        .clone()
        .unwrap_or_else(|| default_download_dir(&state_dir));
    std::fs::create_dir_all(&download_dir)
        .with_context(|| format!("cannot create the download dir {}", download_dir.display()))?;
    if let Some(w) = &config.paths.watch_dir {
        std::fs::create_dir_all(w)
            .with_context(|| format!("cannot create the watch folder {}", w.display()))?;
    }
    let notifier = Notifier::from_env();
    let reload_args = args.clone();
    let setup = CoreSetup {
        config: config.clone(),
        reload: Box::new(move || reload_args.load()),
        state_dir: state_dir.clone(),
        download_dir: download_dir.clone(),
        notifier,
    };
    match args.config_file() {
        Some(p) => tracing::info!("configuration {}", p.display()),
        None => tracing::info!("configuration: built-in defaults (no {DEFAULT_CONFIG_PATH})"),
    }
    let (cmd_tx, cmd_rx) = bounded(COMMAND_QUEUE_MAX);
    let mut core = Core::start(setup, cmd_rx)?;
    let ctl = CtlServer::start(&state_dir.join(SOCKET_FILE), cmd_tx.clone())
        .context("the control socket")?;
    tracing::info!(
        "state {}, downloads {}{}",
        state_dir.display(),
        download_dir.display(),
        config
            .paths
            .watch_dir
            .as_ref()
            .map_or(String::new(), |w| format!(", watch folder {}", w.display()))
    );
    let api = match config.api.listen {
        None => None,
        Some(listen) => {
            let settings = api_settings(&config, &mut core)?;
            let bind = BindOptions {
                interface: config.network.interface.clone(),
                address: config.network.bind_address,
            };
            let tags = saved_tags(core.value(TAGS_KEY));
            let api = WebApi::start(settings, listen, cmd_tx.clone(), bind, tags)?;
            tracing::info!("Web API listening on http://{}", api.local_addr());
            Some(api)
        }
    };
    core.announce_ready();
    let result = core.run();
    if let Some(api) = api {
        api.stop();
    }
    ctl.stop();
    result.map(|()| ExitCode::SUCCESS)
}

/// The Web API's credentials: the file's hash, else the environment's
/// password, else the one kept in the state database (generated and shown
/// once at the first start, as qBittorrent 4.6+ does).
fn api_settings(config: &DaemonConfig, core: &mut Core) -> Result<ApiSettings> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let username = env("RINGSEED_API_USERNAME").unwrap_or_else(|| config.api.username.clone());
    let password_hash = if let Some(h) = &config.api.password_hash {
        PasswordHash::parse(h).context("api.password_hash")?
    } else if let Some(p) = env("RINGSEED_API_PASSWORD") {
        PasswordHash::new(&p)
    } else {
        let (hash, new) = core.stored_api_password()?;
        if let Some(password) = new {
            // Shown once, on the terminal or in the journal; only its hash
            // is kept.
            eprintln!(
                "The Web API's password was not set: generated one for user {username:?}: {password}\n\
                 (only its hash is kept, in the state database; set api.password_hash with \
                 `ringseed config --hash-password`, or RINGSEED_API_PASSWORD, to choose one)"
            );
        }
        hash
    };
    Ok(ApiSettings {
        listen: config.api.listen,
        username,
        password_hash,
        metrics_require_login: config.api.metrics_require_login,
        webui_root: config.api.webui_root.clone(),
    })
}
