//! The web UI over HTTP: the built `ui/` (Vite's `ui/dist`) served under `/ui/` as a
//! single-page app, with headers that keep it in its own origin, and the rule that keeps web
//! pages elsewhere from driving the host through the WebSocket (the `Origin` check).
//!
//! The UI holds no secret of its own: it talks to the same WebSocket as every operator and
//! needs the operator token to do anything.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use tower_http::services::{ServeDir, ServeFile};

use crate::config::GatewayConfig;

/// Where the UI is served.
pub const UI_PATH: &str = "/ui/";
/// Environment variable naming the UI directory when perch.toml does not.
pub const UI_DIR_ENV: &str = "PERCH_UI_DIR";
/// The file every page route falls back to.
const INDEX: &str = "index.html";
/// Vite puts content-hashed files here; they never change under the same name.
const HASHED_ASSETS: &str = "/assets/";

/// Only this origin's scripts, styles, images and sockets; never framed by another page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

/// The page served when no built UI is found.
const NOT_BUILT_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Perch</title></head>\n<body><h1>Perch</h1><p>The web UI is not built. Run <code>make ui</code>.</p></body></html>\n";

/// Where to look for the built UI, in order: `[gateway] ui_dir`, then `PERCH_UI_DIR` (each
/// alone when set, so a wrong setting shows up rather than being skipped), else beside the
/// executable (`ui/`, `../share/perch/ui/`), else the source tree's `ui/dist`.
pub fn ui_dir_candidates(config: &GatewayConfig) -> Vec<PathBuf> {
    if let Some(dir) = &config.ui_dir {
        return vec![dir.clone()];
    }
    if let Some(dir) = std::env::var_os(UI_DIR_ENV).filter(|d| !d.is_empty()) {
        return vec![PathBuf::from(dir)];
    }
    let mut out = Vec::new();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        out.push(exe_dir.join("ui"));
        out.push(exe_dir.join("..").join("share").join("perch").join("ui"));
    }
    out.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("..")
            .join("ui")
            .join("dist"),
    );
    out
}

/// The first candidate that holds a built UI (an `index.html`); looked up on each request, so
/// building the UI while the host runs is enough.
pub fn ui_dir(config: &GatewayConfig) -> Option<PathBuf> {
    ui_dir_candidates(config)
        .into_iter()
        .find(|d| d.join(INDEX).is_file())
}

/// `GET /ui` → `/ui/`, so relative asset paths resolve.
pub async fn redirect_to_ui() -> Response {
    Redirect::temporary(UI_PATH).into_response()
}

/// Serves a file of the UI, `index.html` for page routes, 404 for a missing asset, and 503
/// when there is no built UI.
pub async fn serve_ui(config: &GatewayConfig, req: Request) -> Response {
    let Some(dir) = ui_dir(config) else {
        let mut r = (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            NOT_BUILT_PAGE,
        )
            .into_response();
        secure(r.headers_mut(), "no-store");
        return r;
    };
    let (mut parts, body) = req.into_parts();
    let inner = parts
        .uri
        .path()
        .strip_prefix(UI_PATH.trim_end_matches('/'))
        .filter(|p| p.starts_with('/'))
        .unwrap_or("/")
        .to_string();
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    parts.uri = match format!("{inner}{query}").parse::<Uri>() {
        Ok(u) => u,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let req = Request::from_parts(parts, body);
    // A page route (no extension: /ui/chat) that is not a file is the app's; a missing file
    // with an extension is a real 404, so a broken asset is not answered with HTML.
    let last = inner.rsplit('/').next().unwrap_or("");
    let result = if last.contains('.') {
        ServeDir::new(&dir)
            .try_call(req)
            .await
            .map(|r| r.map(Body::new))
    } else {
        ServeDir::new(&dir)
            .fallback(ServeFile::new(dir.join(INDEX)))
            .try_call(req)
            .await
            .map(|r| r.map(Body::new))
    };
    let mut response = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, path = %inner, "cannot serve a UI file");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    };
    let cache = if inner.starts_with(HASHED_ASSETS) && response.status().is_success() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    secure(response.headers_mut(), cache);
    response
}

/// The headers every UI answer carries.
fn secure(headers: &mut HeaderMap, cache: &'static str) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
}

/// Whether a request asks for a page (a browser's `Accept: text/html`).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// The `Origin` rule for every request: no `Origin` (the CLI, nodes, native apps) is fine; a
/// browser's `Origin` must name the same host and port as the `Host` it sent, so a page from
/// elsewhere can neither open the socket nor call the host over HTTP. Returns the refused
/// origin.
pub fn foreign_origin(headers: &HeaderMap) -> Option<String> {
    let origin = headers.get(header::ORIGIN)?;
    let origin_text = String::from_utf8_lossy(origin.as_bytes()).to_string();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match (parse_origin(&origin_text), host) {
        (Some((scheme, authority)), Some(host))
            if normalize(&authority, scheme) == normalize(host, scheme) =>
        {
            None
        }
        _ => Some(origin_text),
    }
}

/// `http://Host:1234` → (`http`, `Host:1234`); `null` and other shapes → None.
fn parse_origin(origin: &str) -> Option<(&'static str, String)> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => "http",
        "https" => "https",
        _ => return None,
    };
    let authority = rest.trim_end_matches('/');
    (!authority.is_empty() && !authority.contains(['/', '?', '#', '@']))
        .then(|| (scheme, authority.to_string()))
}

/// Lower-case host with an explicit port (the scheme's default when absent).
fn normalize(authority: &str, scheme: &str) -> String {
    let a = authority.trim().to_ascii_lowercase();
    let has_port = match a.rfind(']') {
        Some(end) => a[end..].contains(':'),
        None => a.contains(':'),
    };
    if has_port {
        a
    } else {
        let port = if scheme == "https" { 443 } else { 80 };
        format!("{a}:{port}")
    }
}

/// The answer to a request (a WebSocket upgrade or plain HTTP) from a foreign origin.
pub fn forbidden_origin(origin: &str) -> Response {
    tracing::info!(origin, "refused a request from another origin");
    (
        StatusCode::FORBIDDEN,
        "requests from web pages of another origin are refused\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        if let Some(x) = host {
            h.insert(header::HOST, HeaderValue::from_str(x).unwrap());
        }
        h
    }

    #[test]
    fn no_origin_is_fine() {
        assert_eq!(
            foreign_origin(&headers(None, Some("127.0.0.1:18789"))),
            None
        );
        assert_eq!(foreign_origin(&headers(None, None)), None);
    }

    #[test]
    fn same_host_and_port_is_fine() {
        for (origin, host) in [
            ("http://127.0.0.1:18789", "127.0.0.1:18789"),
            ("http://LocalHost:18789", "localhost:18789"),
            ("http://box.lan", "box.lan:80"),
            ("https://box.lan", "box.lan"),
            ("http://[::1]:18789", "[::1]:18789"),
        ] {
            assert_eq!(
                foreign_origin(&headers(Some(origin), Some(host))),
                None,
                "{origin} vs {host}"
            );
        }
    }

    #[test]
    fn another_host_port_or_shape_is_refused() {
        for (origin, host) in [
            ("http://evil.example", "127.0.0.1:18789"),
            ("http://127.0.0.1:8080", "127.0.0.1:18789"),
            ("http://localhost:18789", "127.0.0.1:18789"),
            ("https://box.lan", "box.lan:80"),
            ("null", "127.0.0.1:18789"),
            ("file://", "127.0.0.1:18789"),
            ("http://user@127.0.0.1:18789", "127.0.0.1:18789"),
        ] {
            assert_eq!(
                foreign_origin(&headers(Some(origin), Some(host))).as_deref(),
                Some(origin),
                "{origin} vs {host}"
            );
        }
        assert!(foreign_origin(&headers(Some("http://127.0.0.1:1"), None)).is_some());
    }

    #[test]
    fn browsers_are_told_apart_by_accept() {
        let mut h = HeaderMap::new();
        assert!(!wants_html(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
        );
        assert!(wants_html(&h));
    }

    #[test]
    fn an_explicit_ui_dir_is_the_only_candidate() {
        let mut c = GatewayConfig::defaults(PathBuf::from("/d"));
        c.ui_dir = Some(PathBuf::from("/srv/perch-ui"));
        assert_eq!(ui_dir_candidates(&c), vec![PathBuf::from("/srv/perch-ui")]);
        assert_eq!(ui_dir(&c), None);
    }

    #[test]
    fn the_source_tree_is_the_last_resort() {
        let c = GatewayConfig::defaults(PathBuf::from("/d"));
        if std::env::var_os(UI_DIR_ENV).is_none() {
            let all = ui_dir_candidates(&c);
            assert!(all.last().unwrap().ends_with("ui/dist"), "{all:?}");
            assert!(all.len() >= 2);
        }
    }
}
