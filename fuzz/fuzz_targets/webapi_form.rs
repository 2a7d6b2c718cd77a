//! Fuzz target: the Web API's parameter parsing (src/daemon/webapi/form.rs,
//! included as it is) must never panic, whatever the query string, the
//! Content-Type and the body, and every accessor of a parsed `Params` must
//! answer. Beyond "no panic" it checks what must hold for any input: the
//! limits (parts, name length) are kept, every error has a reason,
//! `require` agrees with `get`, `bool` only says true/false for those words
//! (any case) and fails naming the field, and `list` only yields trimmed,
//! non-empty items.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../src/daemon/webapi/form.rs"]
mod form;

use form::{FormError, Params, FIELD_NAME_BYTES_MAX, PARTS_MAX};

/// The Content-Types worth trying; the input's first byte picks one, or
/// (past the list) the input carries its own.
const CONTENT_TYPES: &[&str] = &[
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=q",
    "multipart/form-data; boundary=\"----WebKitFormBoundary7MA4YWxkTrZu0gW\"",
    "multipart/form-data; boundary=9f0e4e7c4b6f4f0c8d2c1b0a99887766",
    "multipart/form-data",
    "text/plain",
];

/// Field names the API asks for, so that accessors hit present values.
const NAMES: &[&str] = &[
    "a", "q", "f", "name", "hashes", "urls", "tags", "category", "savepath", "paused", "limit",
    "torrents", "",
];

fuzz_target!(|data: &[u8]| {
    // Layout: [selector][query length][query bytes][content-type if custom][body]
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((&qlen, rest)) = rest.split_first() else {
        return;
    };
    let qlen = (qlen as usize).min(rest.len());
    let (query, rest) = rest.split_at(qlen);
    let query = std::str::from_utf8(query).ok();
    let (content_type, body): (Option<String>, &[u8]) =
        match CONTENT_TYPES.get(selector as usize % 8) {
            Some(ct) => (Some((*ct).to_string()), rest),
            None if selector % 8 == 6 => (None, rest),
            None => {
                // A custom Content-Type: up to the first NUL.
                let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
                let ct = String::from_utf8_lossy(&rest[..end]).into_owned();
                (Some(ct), rest.get(end + 1..).unwrap_or_default())
            }
        };

    let params = match Params::parse(query, content_type.as_deref(), body) {
        Ok(p) => p,
        Err(e) => {
            // Every error has a reason to show.
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(params.files.len() <= PARTS_MAX);
    for f in &params.files {
        assert!(f.field.len() <= FIELD_NAME_BYTES_MAX);
    }
    for name in NAMES {
        let value = params.get(name);
        match params.require(name) {
            Ok(v) => assert_eq!(Some(v), value),
            Err(FormError::Missing(n)) => {
                assert_eq!(n, *name);
                assert!(value.is_none());
            }
            Err(e) => panic!("require answered {e:?}"),
        }
        match params.bool(name) {
            Ok(Some(b)) => assert!(value.unwrap().trim().eq_ignore_ascii_case(if b {
                "true"
            } else {
                "false"
            })),
            Ok(None) => assert!(value.is_none_or(|v| v.trim().is_empty())),
            Err(FormError::Invalid { name: n, .. }) => assert_eq!(n, *name),
            Err(e) => panic!("bool answered {e:?}"),
        }
        let _ = params.num::<i64>(name);
        let _ = params.num::<u64>(name);
        let _ = params.num::<f64>(name);
        for sep in ['|', ',', '\n'] {
            for item in params.list(name, sep) {
                assert!(!item.is_empty());
                assert_eq!(item, item.trim());
                assert!(!item.contains(sep));
            }
        }
    }
});
