//! The web page: the built-in one (three files embedded in the binary, no
//! build step), or an alternative qBittorrent WebUI from `webui_root` as
//! qBittorrent serves one (`ROOT/public/...`, `index.html` for `/`).
//!
//! Boundary: a path in, a response out; reads files only under the
//! alternative root, never outside it (no `..`, no symlink leaving it).

use std::path::{Component, Path, PathBuf};

use super::routes::ApiResponse;
use super::ApiSettings;

const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const STYLE_CSS: &str = include_str!("page/style.css");

/// Largest file served from an alternative WebUI.
pub const WEBUI_FILE_BYTES_MAX: u64 = 32 * 1024 * 1024;

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("");
    match ext {
        "html" | "htm" => "text/html; charset=UTF-8",
        "js" | "mjs" => "text/javascript; charset=UTF-8",
        "css" => "text/css; charset=UTF-8",
        "json" | "webmanifest" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "jpg" | "jpeg" => "image/jpeg",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "txt" => "text/plain; charset=UTF-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

fn with_headers(mut r: ApiResponse) -> ApiResponse {
    r.headers
        .push((hyper::header::X_FRAME_OPTIONS, "SAMEORIGIN".to_string()));
    r.headers
        .push((hyper::header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()));
    r.headers
        .push((hyper::header::CACHE_CONTROL, "no-store".to_string()));
    r
}

/// Answers a GET of a page path.
pub fn serve(settings: &ApiSettings, path: &str) -> ApiResponse {
    if let Some(root) = &settings.webui_root {
        return with_headers(from_root(root, path));
    }
    let r = match path {
        "/" | "/index.html" => ApiResponse::bytes("text/html; charset=UTF-8", INDEX_HTML.into()),
        "/app.js" => ApiResponse::bytes(content_type("app.js"), APP_JS.into()),
        "/style.css" => ApiResponse::bytes(content_type("style.css"), STYLE_CSS.into()),
        _ => ApiResponse::text(404, "Not Found"),
    };
    with_headers(r)
}

/// The file for `path` under `root/public`, if it is inside.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let public = root.join("public");
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "index.html" } else { rel };
    let rel = Path::new(rel);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    let mut file = public.join(rel);
    if file.is_dir() {
        file = file.join("index.html");
    }
    // Symlinks may not lead out of the folder.
    let real_root = public.canonicalize().ok()?;
    let real = file.canonicalize().ok()?;
    real.starts_with(&real_root).then_some(real)
}

fn from_root(root: &Path, path: &str) -> ApiResponse {
    let Some(file) = resolve(root, path) else {
        return ApiResponse::text(404, "Not Found");
    };
    match std::fs::metadata(&file) {
        Ok(m) if m.is_file() && m.len() <= WEBUI_FILE_BYTES_MAX => {}
        _ => return ApiResponse::text(404, "Not Found"),
    }
    match std::fs::read(&file) {
        Ok(bytes) => ApiResponse::bytes(content_type(&file.to_string_lossy()), bytes),
        Err(_) => ApiResponse::text(404, "Not Found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(webui_root: Option<PathBuf>) -> ApiSettings {
        ApiSettings {
            listen: None,
            username: "admin".into(),
            password_hash: super::super::auth::PasswordHash::new("unused"),
            metrics_require_login: false,
            webui_root,
        }
    }

    #[test]
    fn an_alternative_root_serves_its_public_folder_and_nothing_outside() {
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("public");
        std::fs::create_dir_all(public.join("assets")).unwrap();
        std::fs::write(public.join("index.html"), "<p>alt</p>").unwrap();
        std::fs::write(public.join("assets/a.js"), "x").unwrap();
        std::fs::write(dir.path().join("secret"), "no").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), public.join("link")).unwrap();
        let s = settings(Some(dir.path().to_path_buf()));
        assert_eq!(serve(&s, "/").body, b"<p>alt</p>");
        assert_eq!(serve(&s, "/assets/a.js").body, b"x");
        assert!(serve(&s, "/assets/a.js")
            .content_type
            .starts_with("text/javascript"));
        assert_eq!(serve(&s, "/../secret").status, 404);
        assert_eq!(serve(&s, "/link").status, 404);
        assert_eq!(serve(&s, "/missing").status, 404);
    }

    #[test]
    fn the_built_in_page_is_served() {
        let s = settings(None);
        let r = serve(&s, "/");
        assert_eq!(r.status, 200);
        assert!(String::from_utf8_lossy(&r.body).contains("<html"));
        assert_eq!(serve(&s, "/app.js").status, 200);
        assert_eq!(serve(&s, "/nope").status, 404);
    }
}
