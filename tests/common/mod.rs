//! Shared helpers for the integration tests: running the `ringseed` binary and
//! outside tools with a time limit, a deterministic sample tree, and checks that
//! the real peers (libtorrent's Python binding, mktorrent) are installed.
//!
//! A missing tool makes the calling test fail with a message that says how to
//! install it; nothing is skipped silently.

#![allow(dead_code)]

pub mod daemon;
pub mod engine;
pub mod http_tracker;
pub mod listening_leecher;
pub mod payload;
pub mod qbt;
pub mod raw_peer;

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Longest any single `ringseed` invocation may take in a test.
pub const RINGSEED_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest a libtorrent check (load + full recheck) may take, including Python start-up.
pub const PYTHON_TIMEOUT: Duration = Duration::from_secs(150);
/// Longest mktorrent may take on the sample tree.
pub const MKTORRENT_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a running child is polled for exit.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Most bytes of a child's stdout or stderr shown in a failure message: the
/// end of it, where a crash or an error is.
pub const OUTPUT_TAIL_BYTES: usize = 64 * 1024;

/// The only interpreter that can import the Debian `python3-libtorrent` module.
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// Install hint shared by every missing-tool failure.
pub const INSTALL_HINT: &str = "install the test peers with `scripts/test.sh` (it runs \
     `apt-get install -y python3-libtorrent mktorrent aria2 opentracker` when they are missing)";

/// Path to the binary under test.
pub fn ringseed_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ringseed"))
}

/// Path to the swarm bench's binary (`ringseed-bench`, crate
/// `crates/bench`). Cargo gives a test only its own package's binaries, so
/// it is found beside `ringseed` in the same target folder; `scripts/test.sh`
/// builds every binary of the workspace before the tests run. Panics with
/// the command to build it when it is missing.
pub fn bench_bin_path() -> PathBuf {
    let path = ringseed_bin().with_file_name("ringseed-bench");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build --profile P --workspace --bins`, P the \
         tests' profile (scripts/test.sh builds it with `ci`), then run the tests again",
        path.display()
    );
    path
}

/// Path to a helper script in tests/support/.
pub fn support_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("support")
        .join(name)
}

/// How a child ended, for failure messages: `exit status: 1`, `killed by
/// signal: 11 (SIGSEGV) (core dumped)` (a crash, which no exit code shows),
/// or `still running`.
pub fn exit_text(status: Option<ExitStatus>) -> String {
    match status {
        None => "still running".to_string(),
        Some(s) if s.signal().is_some() => format!("killed by {s}"),
        Some(s) => s.to_string(),
    }
}

/// The last `OUTPUT_TAIL_BYTES` of a child's output, saying how much was cut.
pub fn output_tail(text: &str) -> String {
    if text.len() <= OUTPUT_TAIL_BYTES {
        return text.to_string();
    }
    let mut start = text.len() - OUTPUT_TAIL_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!(
        "[... {start} bytes before this cut ...]\n{}",
        &text[start..]
    )
}

/// What a finished child produced.
#[derive(Debug)]
pub struct RunOutput {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// How it ended (the signal, when there is no code).
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for messages.
    pub cmdline: String,
}

impl RunOutput {
    /// stdout and stderr together, for searching messages.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// A readable dump for assertion messages (the ends of long outputs).
    pub fn describe(&self) -> String {
        format!(
            "command: {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline,
            exit_text(Some(self.status)),
            output_tail(&self.stdout),
            output_tail(&self.stderr)
        )
    }

    /// Panics with the full dump unless the exit code is `expected`.
    pub fn assert_code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(expected),
            "unexpected exit ({})\n{}",
            exit_text(Some(self.status)),
            self.describe()
        );
        self
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The child's exit status, or `None` when it ran past `timeout` (then it
/// is killed and reaped).
fn wait_bounded(child: &mut Child, timeout: Duration, cmdline: &str) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("waiting for `{cmdline}` failed: {e}"),
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Runs `cmd` with stdin closed, capturing its output; panics (failing the test,
/// with what it printed) if it cannot start or runs longer than `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> RunOutput {
    let cmdline = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{cmdline}`: {e}"));
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_bounded(&mut child, timeout, &cmdline);
    // The pipes close when the child is gone, killed or not.
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let Some(status) = status else {
        panic!(
            "`{cmdline}` did not finish within {timeout:?}; killed it\n\
             --- stdout ---\n{}\n--- stderr ---\n{}",
            output_tail(&stdout),
            output_tail(&stderr)
        );
    };
    RunOutput {
        code: status.code(),
        status,
        stdout,
        stderr,
        cmdline,
    }
}

/// Runs `ringseed ARGS...` with the default time limit.
pub fn ringseed<I, S>(args: I) -> RunOutput
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(ringseed_bin());
    cmd.args(args);
    run_with_timeout(&mut cmd, RINGSEED_TIMEOUT)
}

/// Runs `ringseed info --json TARGET`, requires exit 0 and returns the parsed JSON.
pub fn info_json(target: impl AsRef<OsStr>) -> serde_json::Value {
    let out = ringseed([OsStr::new("info"), target.as_ref(), OsStr::new("--json")]);
    out.assert_code(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`ringseed info --json` printed invalid JSON: {e}\n{}",
            out.describe()
        )
    })
}

/// Fails the test unless `/usr/bin/python3` can import libtorrent.
pub fn require_libtorrent() {
    let mut cmd = Command::new(SYSTEM_PYTHON);
    cmd.args(["-c", "import libtorrent; print(libtorrent.__version__)"]);
    let ok = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) => s.success(),
        Err(_) => false,
    };
    assert!(
        ok,
        "libtorrent's Python binding is missing: `{SYSTEM_PYTHON} -c 'import libtorrent'` failed; \
         {INSTALL_HINT} (Debian package: python3-libtorrent)"
    );
}

/// Fails the test unless `mktorrent` is on PATH.
pub fn require_mktorrent() {
    let found = Command::new("mktorrent")
        .arg("-h")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "mktorrent is missing from PATH; {INSTALL_HINT} (Debian package: mktorrent)"
    );
}

/// Runs tests/support/lt_check.py on `torrent`; with `save_path`, libtorrent
/// also rechecks the data there. Returns the JSON the script prints.
pub fn lt_check(torrent: &Path, save_path: Option<&Path>) -> serde_json::Value {
    require_libtorrent();
    let mut cmd = Command::new(SYSTEM_PYTHON);
    cmd.arg(support_script("lt_check.py")).arg(torrent);
    if let Some(dir) = save_path {
        cmd.arg("--save-path").arg(dir);
    }
    let out = run_with_timeout(&mut cmd, PYTHON_TIMEOUT);
    out.assert_code(0);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("lt_check.py printed invalid JSON: {e}\n{}", out.describe()))
}

/// xorshift64: a tiny deterministic generator for file sizes and contents.
pub struct XorShift64(u64);

impl XorShift64 {
    pub fn new(seed: u64) -> Self {
        // Zero is a fixed point of xorshift; never start there.
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            let n = chunk.len();
            chunk.copy_from_slice(&bytes[..n]);
        }
    }
}

/// One file of a generated tree.
#[derive(Debug, Clone)]
pub struct TreeFile {
    /// Path below the tree root, '/'-separated.
    pub rel: String,
    pub length: u64,
}

/// A generated sample tree: `save_dir/name/...`.
#[derive(Debug, Clone)]
pub struct Tree {
    /// The save directory (parent of the tree root).
    pub save_dir: PathBuf,
    /// Name of the tree root folder (becomes the torrent's name).
    pub name: String,
    /// Files, in sorted path order.
    pub files: Vec<TreeFile>,
}

impl Tree {
    pub fn root(&self) -> PathBuf {
        self.save_dir.join(&self.name)
    }

    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.length).sum()
    }

    pub fn path_of(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }
}

/// Relative paths of the sample tree: nested folders up to three deep.
const TREE_PATHS: &[&str] = &[
    "README.txt",
    "alpha/one.bin",
    "alpha/two.bin",
    "alpha/empty.dat",
    "alpha/deep/x.bin",
    "alpha/deep/y.bin",
    "alpha/deep/er/z.bin",
    "alpha/deep/er/zz.bin",
    "beta/a.bin",
    "beta/b.bin",
    "beta/c.bin",
    "beta/gamma/1.bin",
    "beta/gamma/2.bin",
    "beta/gamma/3.bin",
    "delta/tiny.txt",
    "delta/small.bin",
    "delta/epsilon/big.bin",
    "delta/epsilon/mid.bin",
    "delta/epsilon/zeta/last.bin",
    "omega.bin",
    "zeta/p.bin",
    "zeta/q.bin",
    "zeta/r/s/t.bin",
    "zeta/r/u.bin",
];

/// Largest generated file, in bytes.
const TREE_FILE_BYTES_MAX: u64 = 400_000;

/// Writes the deterministic sample tree under `save_dir/name`: 24 files in
/// nested folders, one empty, sizes never multiples of 16 KiB, about 4 MB in all,
/// contents from xorshift seeded by `seed`.
pub fn make_tree(save_dir: &Path, name: &str, seed: u64) -> Tree {
    let mut rng = XorShift64::new(seed);
    let mut files = Vec::with_capacity(TREE_PATHS.len());
    for rel in TREE_PATHS {
        let length = if rel.ends_with("empty.dat") {
            0
        } else if rel.contains("tiny") {
            1 + rng.next_u64() % 100
        } else {
            let mut n = 1 + rng.next_u64() % TREE_FILE_BYTES_MAX;
            if n % 16384 == 0 {
                n += 1;
            }
            n
        };
        let path = save_dir.join(name).join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
        }
        let len = usize::try_from(length).unwrap_or_else(|e| panic!("size {length}: {e}"));
        let mut data = vec![0u8; len];
        rng.fill(&mut data);
        fs::write(&path, &data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        files.push(TreeFile {
            rel: (*rel).to_string(),
            length,
        });
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Tree {
        save_dir: save_dir.to_path_buf(),
        name: name.to_string(),
        files,
    }
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ringseed-test-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"))
}

/// Field `key` of a JSON object as u64, or a failing test naming the key.
pub fn json_u64(v: &serde_json::Value, key: &str) -> u64 {
    v.get(key)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("JSON has no unsigned integer `{key}`: {v}"))
}

/// Field `key` of a JSON object as a string, or a failing test naming the key.
pub fn json_str<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v.get(key)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_else(|| panic!("JSON has no string `{key}`: {v}"))
}

/// Field `key` of a JSON object as a bool, or a failing test naming the key.
pub fn json_bool(v: &serde_json::Value, key: &str) -> bool {
    v.get(key)
        .and_then(serde_json::Value::as_bool)
        .unwrap_or_else(|| panic!("JSON has no boolean `{key}`: {v}"))
}

/// One entry of `info --json`'s "files".
#[derive(Debug, Clone)]
pub struct JsonFile {
    pub path: String,
    pub length: u64,
    pub offset: u64,
    pub pad: bool,
}

/// The "files" array of `info --json`.
pub fn json_files(v: &serde_json::Value) -> Vec<JsonFile> {
    let arr = v
        .get("files")
        .and_then(serde_json::Value::as_array)
        .unwrap_or_else(|| panic!("JSON has no `files` array: {v}"));
    arr.iter()
        .map(|f| JsonFile {
            path: json_str(f, "path").to_string(),
            length: json_u64(f, "length"),
            offset: json_u64(f, "offset"),
            pad: f
                .get("pad")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
        })
        .collect()
}

/// Finds the `info --json` entry of tree file `rel`, whether or not the
/// printed path starts with the torrent's name.
pub fn find_json_file<'a>(files: &'a [JsonFile], name: &str, rel: &str) -> &'a JsonFile {
    let with_name = format!("{name}/{rel}");
    files
        .iter()
        .find(|f| f.path == rel || f.path == with_name)
        .unwrap_or_else(|| panic!("`info --json` lists no file {rel:?}: {files:?}"))
}

/// Runs `ringseed create` on `tree` with extra args; requires exit 0 and returns
/// the torrent's path.
pub fn create_torrent(tree: &Tree, out_name: &str, extra: &[&str]) -> PathBuf {
    let out = tree.save_dir.join(out_name);
    let mut args: Vec<std::ffi::OsString> = vec![
        "create".into(),
        tree.root().into_os_string(),
        "-o".into(),
        out.clone().into_os_string(),
    ];
    args.extend(extra.iter().map(std::ffi::OsString::from));
    ringseed(args).assert_code(0);
    assert!(
        out.is_file(),
        "`ringseed create` exited 0 but wrote no {}",
        out.display()
    );
    out
}

/// Lines of `verify` output that report a failed piece, as piece indexes.
pub fn failed_pieces(output: &str) -> Vec<u64> {
    let mut found = Vec::new();
    for line in output.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("piece ") else {
            continue;
        };
        let Some((num, tail)) = rest.split_once(':') else {
            continue;
        };
        if !tail.trim_start().starts_with("FAILED") {
            continue;
        }
        if let Ok(n) = num.trim().parse::<u64>() {
            found.push(n);
        }
    }
    found
}
