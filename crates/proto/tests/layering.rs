//! The layering rule, checked: the protocol crate is sans-IO. Only the
//! runtime (the `ringseed` crate) touches sockets, files, io_uring, threads
//! and the clock.
//!
//! Two checks. The crate's dependencies must be on an allow-list, so a crate
//! that does IO (io-uring, socket2, libc, a channel or async runtime) cannot
//! come in. And no source file may name the standard library's IO, thread,
//! process or clock items: the crate graph cannot forbid `std`, so the
//! sources are scanned (comments left out). A hit names the file, the line
//! and the rule it breaks.

use std::fs;
use std::path::{Path, PathBuf};

/// What the protocol crate may depend on, and why each is harmless.
const ALLOWED_DEPENDENCIES: &[&str] = &[
    "num-bigint", // MSE Diffie-Hellman arithmetic: numbers in, numbers out
    "rc4",        // MSE stream cipher: bytes in place, no IO
    "sha1",       // digests: bytes in, bytes out
    "thiserror",  // error types
];

/// Tokens a protocol module must not use, with the reason shown on a hit.
const FORBIDDEN: &[(&str, &str)] = &[
    ("std::fs", "opens files"),
    ("File::", "opens files"),
    ("OpenOptions", "opens files"),
    ("TcpStream", "opens sockets"),
    ("TcpListener", "opens sockets"),
    ("UdpSocket", "opens sockets"),
    ("std::thread", "starts threads"),
    ("Instant", "reads the clock (take a `now` from the caller)"),
    (
        "SystemTime",
        "reads the clock (take a `now` from the caller)",
    ),
    (
        "UNIX_EPOCH",
        "reads the clock (take a `now` from the caller)",
    ),
    ("std::process", "runs processes"),
    ("std::env", "reads the environment"),
    ("std::os::", "uses OS handles"),
    ("libc", "calls the kernel"),
    ("io_uring", "uses io_uring"),
    ("socket2", "opens sockets"),
];

/// Grouped `use std::{...}` imports that bring in a forbidden module.
const FORBIDDEN_GROUPED: &[&str] = &["fs", "thread", "process", "env", "os"];

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The line without its `//` comment (a `//` inside a string literal is
/// kept: an even number of quotes before it).
fn code_of(line: &str) -> &str {
    let mut from = 0;
    while let Some(i) = line[from..].find("//") {
        let at = from + i;
        if line[..at].matches('"').count() % 2 == 0 {
            return &line[..at];
        }
        from = at + 2;
    }
    line
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether `token` occurs in `code` as a whole word (so `Instant` does not
/// match `Instantly`, nor `libc` match `libcore`).
fn has_token(code: &str, token: &str) -> bool {
    code.match_indices(token).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + token.len()..].chars().next();
        let starts_word = !token.starts_with(is_ident) || !before.is_some_and(is_ident);
        let ends_word = !token.ends_with(is_ident) || !after.is_some_and(is_ident);
        starts_word && ends_word
    })
}

/// Every breach in one file's text: (line number, token, reason).
fn breaches(text: &str) -> Vec<(usize, String, &'static str)> {
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = code_of(line);
        for &(token, why) in FORBIDDEN {
            if has_token(code, token) {
                found.push((i + 1, token.to_owned(), why));
            }
        }
        if let Some(at) = code.find("std::{") {
            let group = &code[at..];
            for &m in FORBIDDEN_GROUPED {
                if has_token(group, m) {
                    found.push((i + 1, format!("std::{{{m}}}"), "imports an IO module"));
                }
            }
        }
    }
    found
}

#[test]
fn protocol_sources_do_no_io() {
    let mut files = Vec::new();
    rust_files(&crate_dir().join("src"), &mut files);
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut report = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for (line, token, why) in breaches(&text) {
            let rel = f.strip_prefix(crate_dir()).unwrap_or(f);
            report.push(format!(
                "{}:{line}: `{token}` {why}: only the runtime may",
                rel.display()
            ));
        }
    }
    assert!(
        report.is_empty(),
        "the protocol crate must stay sans-IO:\n{}",
        report.join("\n")
    );
}

#[test]
fn protocol_dependencies_are_allowed() {
    let manifest = fs::read_to_string(crate_dir().join("Cargo.toml")).expect("Cargo.toml");
    let mut section = String::new();
    let mut bad = Vec::new();
    for line in manifest.lines() {
        let line = code_of(line).trim();
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_owned();
            continue;
        }
        // Normal and build dependencies ship with the crate; dev-dependencies
        // only build its tests.
        let shipped = section == "dependencies"
            || section == "build-dependencies"
            || section.starts_with("dependencies.")
            || section.starts_with("target.") && section.ends_with(".dependencies");
        if !shipped || line.is_empty() {
            continue;
        }
        let name = section
            .strip_prefix("dependencies.")
            .unwrap_or_else(|| line.split(['=', '.']).next().unwrap_or("").trim());
        if !ALLOWED_DEPENDENCIES.contains(&name) {
            bad.push(name.to_owned());
        }
    }
    assert!(
        bad.is_empty(),
        "ringseed-proto depends on {bad:?}, not on the allow-list {ALLOWED_DEPENDENCIES:?}: \
         IO belongs in the runtime crate"
    );
}

#[test]
fn the_scan_catches_what_it_should() {
    let hits = |s: &str| breaches(s).into_iter().map(|b| b.1).collect::<Vec<_>>();
    assert_eq!(
        hits("let f = std::fs::File::open(p)?;"),
        ["std::fs", "File::"]
    );
    assert_eq!(hits("use std::time::{Duration, Instant};"), ["Instant"]);
    assert_eq!(hits("use std::{fs, io};"), ["std::{fs}"]);
    assert_eq!(hits("std::thread::spawn(f);"), ["std::thread"]);
    assert_eq!(hits("let s = UdpSocket::bind(a);"), ["UdpSocket"]);
    // Not code, or not the word.
    assert!(hits("// an `Instant` taken by the caller").is_empty());
    assert!(hits("let url = \"http://x\"; // std::fs").is_empty());
    assert!(hits("let instantly = Instantly::new();").is_empty());
    assert!(hits("use std::io::Read;").is_empty());
}
