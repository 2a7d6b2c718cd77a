//! The Web API tests' outside programs: Debian's `qbittorrent-nox` (the
//! reference qBittorrent, headless, on one loopback address with a
//! throw-away profile) and `tests/webapi/qbt_scenario.py`, the PyPI
//! `qbittorrent-api` client's scenario, run by the virtualenv
//! `scripts/test.sh` creates.
//!
//! Every wait is bounded; children are killed by pid on drop; a missing
//! tool fails the test with the command that installs it.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::engine::{free_port, Daemon};
use super::{run_with_timeout, RunOutput, SYSTEM_PYTHON};

/// The reference server's Web API login. The profile holds this
/// password's PBKDF2 hash (qBittorrent 4.6+ no longer has a default one).
pub const QBT_USER: &str = "admin";
pub const QBT_PASSWORD: &str = "qbt-reference-password";
/// `WebUI\Password_PBKDF2` for [`QBT_PASSWORD`]: PBKDF2-HMAC-SHA512, 100000
/// rounds, salt `ringseed-qbt-ref`, 64 bytes, as qBittorrent stores it.
const QBT_PASSWORD_PBKDF2: &str = "@ByteArray(cmluZ3NlZWQtcWJ0LXJlZg==:DLktHZgxIl6uIDtlZqIHSI0ngZ0HIe+WgfxQ0jMsP2D5jrewB+dDY390QmhctiHS0hLN2aiexBgT4xoFxl2enA==)";

/// Longest qbittorrent-nox may take to open its Web UI and peer ports.
const QBT_READY_MAX: Duration = Duration::from_secs(30);
/// Longest one run of the scenario may take (its own waits are shorter).
pub const SCENARIO_TIMEOUT: Duration = Duration::from_secs(150);
const POLL: Duration = Duration::from_millis(100);

const QBT_INSTALL: &str = "qbittorrent-nox is missing from PATH: install it with \
     `apt-get install -y qbittorrent-nox` (scripts/test.sh does when it is missing)";

/// A running qbittorrent-nox.
pub struct QbtNox {
    pub proc: Daemon,
    /// `http://IP:PORT` of its Web API.
    pub url: String,
    /// Its BitTorrent listen address.
    pub peer: SocketAddr,
    /// Its default save path (inside the profile's temporary folder).
    pub downloads: PathBuf,
    // Dropped after `proc` (fields drop in order): the profile outlives it.
    profile: tempfile::TempDir,
}

/// Fails the test unless `qbittorrent-nox` runs.
pub fn require_qbittorrent_nox() {
    let ok = Command::new("qbittorrent-nox")
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "{QBT_INSTALL}");
}

impl QbtNox {
    /// Starts qbittorrent-nox with a fresh profile, its Web UI and peer
    /// port on `ip` (free ports), DHT, LSD, PeX, UPnP and NAT-PMP off, and
    /// waits until both ports accept connections.
    pub fn start(label: &str, ip: Ipv4Addr) -> QbtNox {
        require_qbittorrent_nox();
        let profile = super::tempdir();
        let config = profile.path().join("qBittorrent").join("config");
        let downloads = profile.path().join("downloads");
        for d in [&config, &downloads] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        }
        let web_port = free_port(ip);
        let mut peer_port = free_port(ip);
        while peer_port == web_port {
            peer_port = free_port(ip);
        }
        let conf = format!(
            "[LegalNotice]\n\
             Accepted=true\n\
             \n\
             [BitTorrent]\n\
             Session\\DHTEnabled=false\n\
             Session\\LSDEnabled=false\n\
             Session\\PeXEnabled=false\n\
             Session\\Port={peer_port}\n\
             Session\\Interface=lo\n\
             Session\\InterfaceName=lo\n\
             Session\\InterfaceAddress={ip}\n\
             Session\\DefaultSavePath={downloads}\n\
             Session\\AnonymousModeEnabled=false\n\
             \n\
             [Network]\n\
             PortForwardingEnabled=false\n\
             \n\
             [Preferences]\n\
             Connection\\UPnP=false\n\
             Connection\\PortRangeMin={peer_port}\n\
             WebUI\\Address={ip}\n\
             WebUI\\Port={web_port}\n\
             WebUI\\Username={QBT_USER}\n\
             WebUI\\Password_PBKDF2=\"{QBT_PASSWORD_PBKDF2}\"\n\
             WebUI\\LocalHostAuth=true\n\
             WebUI\\CSRFProtection=true\n\
             WebUI\\HostHeaderValidation=false\n\
             WebUI\\UseUPnP=false\n",
            downloads = downloads.display(),
        );
        let conf_path = config.join("qBittorrent.conf");
        std::fs::write(&conf_path, conf).unwrap_or_else(|e| panic!("{}: {e}", conf_path.display()));

        let mut cmd = Command::new("qbittorrent-nox");
        cmd.arg(format!("--profile={}", profile.path().display()))
            .arg(format!("--webui-port={web_port}"))
            // Nothing of the machine's own configuration.
            .env("HOME", profile.path())
            .env("XDG_CONFIG_HOME", profile.path().join("xdg-config"))
            .env("XDG_DATA_HOME", profile.path().join("xdg-data"))
            .env("XDG_CACHE_HOME", profile.path().join("xdg-cache"));
        let mut proc = Daemon::spawn_command(label, cmd);
        let web = SocketAddr::from((ip, web_port));
        let peer = SocketAddr::from((ip, peer_port));
        let deadline = Instant::now() + QBT_READY_MAX;
        loop {
            let up = |a: &SocketAddr| TcpStream::connect_timeout(a, Duration::from_secs(1)).is_ok();
            if up(&web) && up(&peer) {
                break;
            }
            if proc.poll_exit().is_some() {
                panic!(
                    "{label} (qbittorrent-nox) exited before listening\n{}",
                    proc.describe()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "{label} (qbittorrent-nox) did not listen on Web UI {web} and peer port {peer} \
                     within {QBT_READY_MAX:?}\n{}",
                    proc.describe()
                );
            }
            thread::sleep(POLL);
        }
        QbtNox {
            proc,
            url: format!("http://{web}"),
            peer,
            downloads,
            profile,
        }
    }

    /// The profile folder (logs under `qBittorrent/data/logs`).
    pub fn profile(&self) -> &Path {
        self.profile.path()
    }

    /// Its output and the end of its own log file, for failure messages.
    pub fn describe(&self) -> String {
        let log = self
            .profile
            .path()
            .join("qBittorrent/data/logs/qbittorrent.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        format!(
            "{}\n--- {} ---\n{}",
            self.proc.describe(),
            log.display(),
            super::output_tail(&text)
        )
    }
}

/// `<repo>/target/test-venv/bin/python`, which has `qbittorrent-api`
/// (created by scripts/test.sh); fails the test when it is missing.
pub fn venv_python() -> PathBuf {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python");
    assert!(
        py.is_file(),
        "{} is missing: run `scripts/test.sh` once (it creates the virtualenv from \
         tests/webapi/requirements.txt: qbittorrent-api, prometheus-client)",
        py.display()
    );
    py
}

/// tests/webapi/NAME.
pub fn webapi_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("webapi")
        .join(name)
}

/// What the scenario is pointed at.
pub struct ScenarioArgs<'a> {
    pub url: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    /// The .torrent; its data already sits in `save_path`.
    pub torrent: &'a Path,
    pub save_path: &'a Path,
    /// The server's BitTorrent address, which the leecher dials.
    pub peer: SocketAddr,
    /// The leecher's own loopback address and download folder.
    pub leech_ip: Ipv4Addr,
    pub leech_dir: &'a Path,
    /// Where the key sets go (JSON).
    pub out: &'a Path,
}

/// What one run of the scenario gave.
pub struct ScenarioRun {
    pub output: RunOutput,
    /// The --out file, when written.
    pub keys: Option<serde_json::Value>,
}

impl ScenarioRun {
    /// Exit 0 and `"ok": true` in the output file.
    pub fn passed(&self) -> bool {
        self.output.code == Some(0)
            && self
                .keys
                .as_ref()
                .and_then(|k| k.get("ok"))
                .and_then(serde_json::Value::as_bool)
                == Some(true)
    }
}

/// Runs tests/webapi/qbt_scenario.py (the virtualenv's Python) against a
/// server, within [`SCENARIO_TIMEOUT`].
pub fn run_scenario(a: &ScenarioArgs) -> ScenarioRun {
    super::require_libtorrent();
    let mut cmd = Command::new(venv_python());
    cmd.arg(webapi_file("qbt_scenario.py"))
        .arg("--url")
        .arg(a.url)
        .arg("--user")
        .arg(a.user)
        .arg("--password")
        .arg(a.password)
        .arg("--torrent")
        .arg(a.torrent)
        .arg("--save-path")
        .arg(a.save_path)
        .arg("--out")
        .arg(a.out)
        .arg("--peer")
        .arg(a.peer.to_string())
        .arg("--leech-ip")
        .arg(a.leech_ip.to_string())
        .arg("--leech-dir")
        .arg(a.leech_dir)
        .env("PYTHONUNBUFFERED", "1")
        // The scenario starts the leecher with Debian's interpreter.
        .env("QBT_SCENARIO_LT_PYTHON", SYSTEM_PYTHON);
    let output = run_with_timeout(&mut cmd, SCENARIO_TIMEOUT);
    let keys = std::fs::read_to_string(a.out)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    ScenarioRun { output, keys }
}
