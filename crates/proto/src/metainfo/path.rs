//! File path sanitizing: turns the path components a torrent names into ones that
//! can only ever land inside the save directory.
//!
//! Rules (as libtorrent applies them, since it loads such torrents):
//! - a component that is empty, `.` or `..` is dropped;
//! - `/` and `\` inside a component (which would make it several components, or
//!   an absolute path) become `_`, as do NUL and other control characters;
//! - bytes that are not UTF-8 become `_` (one per bad sequence);
//! - a component longer than [`PATH_COMPONENT_BYTES_MAX`] is cut at a character
//!   boundary, keeping a short extension;
//! - a path with nothing left becomes `_`;
//! - two files that end up on the same path (or a file on a path that another
//!   file uses as a folder) are told apart by renaming the later one
//!   `name.1.ext`, `name.2.ext`, … as libtorrent does.

use std::collections::HashSet;

use crate::limits::PATH_COMPONENT_BYTES_MAX;

/// A sanitized path component: never empty, never `.` or `..`, no separator,
/// no NUL or control character.
pub fn sanitize_component(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = match c {
            '/' | '\\' => '_',
            c if c.is_control() => '_',
            char::REPLACEMENT_CHARACTER => '_',
            c => c,
        };
        out.push(c);
    }
    if out.is_empty() || out == "." || out == ".." {
        return None;
    }
    Some(truncate_component(out))
}

fn truncate_component(s: String) -> String {
    if s.len() <= PATH_COMPONENT_BYTES_MAX {
        return s;
    }
    // Keep an extension of up to 10 bytes, cut the stem at a char boundary.
    let ext = match s.rfind('.') {
        Some(dot) if dot > 0 && s.len() - dot <= 10 => &s[dot..],
        _ => "",
    };
    let mut stem_end = PATH_COMPONENT_BYTES_MAX - ext.len();
    while !s.is_char_boundary(stem_end) {
        stem_end -= 1;
    }
    format!("{}{}", &s[..stem_end], ext)
}

/// Sanitizes a whole path; an empty result becomes `["_"]`.
pub fn sanitize_path<'a>(raw: impl IntoIterator<Item = &'a [u8]>) -> Vec<String> {
    let out: Vec<String> = raw.into_iter().filter_map(sanitize_component).collect();
    if out.is_empty() {
        vec!["_".to_string()]
    } else {
        out
    }
}

/// Makes file paths unique: a path already taken by an earlier file, or used as
/// a folder by an earlier file, or whose folders are an earlier file, gets
/// `.N` before its extension.
#[derive(Default)]
pub struct UniquePaths {
    files: HashSet<Vec<String>>,
    folders: HashSet<Vec<String>>,
}

impl UniquePaths {
    pub fn claim(&mut self, mut path: Vec<String>) -> Vec<String> {
        // A folder of this path that is already a file: rename that folder
        // component for this path (the earlier file keeps its name).
        for depth in 1..path.len() {
            if self.files.contains(&path[..depth]) {
                let mut n = 1u64;
                loop {
                    let candidate = with_counter(&path[depth - 1], n);
                    let mut prefix = path[..depth - 1].to_vec();
                    prefix.push(candidate.clone());
                    if !self.files.contains(&prefix) {
                        path[depth - 1] = candidate;
                        break;
                    }
                    n += 1;
                }
            }
        }
        if self.files.contains(&path) || self.folders.contains(&path) {
            let last = path.len() - 1;
            let original = path[last].clone();
            let mut n = 1u64;
            loop {
                path[last] = with_counter(&original, n);
                if !self.files.contains(&path) && !self.folders.contains(&path) {
                    break;
                }
                n += 1;
            }
        }
        for depth in 1..path.len() {
            self.folders.insert(path[..depth].to_vec());
        }
        self.files.insert(path.clone());
        path
    }
}

fn with_counter(name: &str, n: u64) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{}.{}{}", &name[..dot], n, &name[dot..]),
        _ => format!("{name}.{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(parts: &[&str]) -> Vec<String> {
        sanitize_path(parts.iter().map(|s| s.as_bytes()))
    }

    #[test]
    fn dot_and_empty_components_are_dropped() {
        assert_eq!(p(&["..", "..", "bar"]), vec!["bar"]);
        assert_eq!(p(&[".", ".", "x"]), vec!["x"]);
        assert_eq!(p(&["", "a", ""]), vec!["a"]);
        assert_eq!(p(&[".."]), vec!["_"]);
        assert_eq!(p(&[]), vec!["_"]);
    }

    #[test]
    fn separators_inside_a_component_are_neutralised() {
        assert_eq!(p(&["/foobar"]), vec!["_foobar"]);
        assert_eq!(
            p(&["foo/../../../bar", "bar"]),
            vec!["foo_.._.._.._bar", "bar"]
        );
        assert_eq!(p(&["\\", "\\", "bar"]), vec!["_", "_", "bar"]);
        assert_eq!(p(&["/", "."]), vec!["_"]);
        assert_eq!(p(&["C:\\Windows"]), vec!["C:_Windows"]);
    }

    #[test]
    fn nul_control_and_bad_utf8_become_underscores() {
        assert_eq!(sanitize_component(b"a\0b"), Some("a_b".into()));
        assert_eq!(sanitize_component(b"a\nb\x7f"), Some("a_b_".into()));
        assert_eq!(sanitize_component(b"caf\xe9"), Some("caf_".into()));
        assert_eq!(sanitize_component("héllo".as_bytes()), Some("héllo".into()));
    }

    #[test]
    fn long_components_are_cut_at_a_char_boundary_keeping_the_extension() {
        let long = "é".repeat(300) + ".mkv";
        let cut = sanitize_component(long.as_bytes()).unwrap();
        assert!(cut.len() <= PATH_COMPONENT_BYTES_MAX);
        assert!(cut.ends_with(".mkv"));
        let plain = "x".repeat(1000);
        assert_eq!(sanitize_component(plain.as_bytes()).unwrap().len(), 240);
    }

    #[test]
    fn nothing_escapes_the_save_directory() {
        let hostile: &[&[&str]] = &[
            &["..", "..", "etc", "passwd"],
            &["/etc/passwd"],
            &["a/../../b"],
            &["\\..\\..\\x"],
            &["", "", ""],
        ];
        for parts in hostile {
            for c in p(parts) {
                assert!(!c.is_empty() && c != "." && c != "..");
                assert!(!c.contains('/') && !c.contains('\\') && !c.contains('\0'));
            }
        }
    }

    #[test]
    fn duplicate_paths_are_renamed() {
        let mut u = UniquePaths::default();
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(u.claim(v(&["foo", "bar.txt"])), v(&["foo", "bar.txt"]));
        assert_eq!(u.claim(v(&["foo", "bar.txt"])), v(&["foo", "bar.1.txt"]));
        assert_eq!(u.claim(v(&["foo", "bar.txt"])), v(&["foo", "bar.2.txt"]));
        // A file where a folder already is.
        assert_eq!(u.claim(v(&["foo"])), v(&["foo.1"]));
        // A folder where a file already is.
        assert_eq!(u.claim(v(&["_"])), v(&["_"]));
        assert_eq!(u.claim(v(&["_", "x"])), v(&["_.1", "x"]));
        assert_eq!(u.claim(v(&["noext"])), v(&["noext"]));
        assert_eq!(u.claim(v(&["noext"])), v(&["noext.1"]));
    }
}
