//! The UI's static files, embedded in the binary (`include_bytes!`: `cargo build` alone builds
//! them, no node toolchain, no network) and served under `/assets/<version>/`, where the version
//! is a digest of every file: a new build gets new URLs, so the files are cached as immutable.

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use sha2::{Digest as _, Sha256};

use super::pages::{not_found_page, security_headers};

/// Every file under `assets/` that the pages use, by its path below `/assets/<version>/`.
const FILES: &[(&str, &[u8])] = &[
    ("app.js", include_bytes!("assets/app.js")),
    ("caches.js", include_bytes!("assets/caches.js")),
    ("api.js", include_bytes!("assets/api.js")),
    ("csp.js", include_bytes!("assets/csp.js")),
    ("create.js", include_bytes!("assets/create.js")),
    ("list.js", include_bytes!("assets/list.js")),
    ("session.js", include_bytes!("assets/session.js")),
    ("ui.js", include_bytes!("assets/ui.js")),
    ("style.css", include_bytes!("assets/style.css")),
    ("icon.svg", include_bytes!("assets/icon.svg")),
    (
        "vendor/xterm/xterm.mjs",
        include_bytes!("assets/vendor/xterm/xterm.mjs"),
    ),
    (
        "vendor/xterm/xterm.css",
        include_bytes!("assets/vendor/xterm/xterm.css"),
    ),
    (
        "vendor/xterm/addon-fit.mjs",
        include_bytes!("assets/vendor/xterm/addon-fit.mjs"),
    ),
];

/// The digest of every embedded file (12 hex digits), computed once.
fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let mut h = Sha256::new();
        for (name, bytes) in FILES {
            h.update(name.as_bytes());
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        h.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

/// The URL prefix of this build's assets (`/assets/<version>`).
pub fn base() -> String {
    format!("/assets/{}", version())
}

/// The `Content-Type` of a file, by its extension.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `GET /assets/{version}/{*file}`: the file, cached for a year as immutable; another
/// build's version or an unknown file is not found.
pub async fn asset(Path((v, file)): Path<(String, String)>) -> Response {
    let found = FILES.iter().find(|(name, _)| *name == file);
    let Some((name, bytes)) = found.filter(|_| v == version()) else {
        return not_found_page();
    };
    let mut resp = Response::new(Body::from(*bytes));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    security_headers(h);
    *resp.status_mut() = StatusCode::OK;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_known_type_and_the_version_is_stable() {
        for (name, bytes) in FILES {
            assert_ne!(content_type(name), "application/octet-stream", "{name}");
            assert!(!bytes.is_empty(), "{name}");
        }
        assert_eq!(version().len(), 12);
        assert_eq!(version(), version());
        assert!(base().starts_with("/assets/"));
    }
}
