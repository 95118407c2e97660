//! The web UI over HTTP (files, page routes, headers, the page shown when it is not built) and
//! the `Origin` rule on WebSocket upgrades.

mod common;

use std::collections::HashMap;
use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use common::*;

const INDEX: &str = "<!doctype html><title>Perch UI</title><div id=app></div>";
const ASSET: &str = "console.log('perch');";

/// A status, lower-cased headers and the body of one HTTP/1.1 exchange.
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

/// Sends one request over a fresh connection and reads the whole answer.
async fn http(host: &TestHost, method: &str, path: &str, extra: &[(&str, &str)]) -> Answer {
    let mut tcp = tokio::net::TcpStream::connect(host.gw.addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        host.gw.addr
    );
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

fn built_ui(root: &Path) -> std::path::PathBuf {
    let ui = root.join("dist");
    std::fs::create_dir_all(ui.join("assets")).unwrap();
    std::fs::write(ui.join("index.html"), INDEX).unwrap();
    std::fs::write(ui.join("assets").join("app-3f9a1c.js"), ASSET).unwrap();
    std::fs::write(root.join("secret.txt"), "not for the web").unwrap();
    ui
}

fn assert_secure(a: &Answer) {
    assert_eq!(
        a.headers["content-security-policy"],
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
    );
    assert_eq!(a.headers["x-content-type-options"], "nosniff");
    assert_eq!(a.headers["referrer-policy"], "no-referrer");
}

#[tokio::test]
async fn the_built_ui_is_served_with_its_headers() {
    let root = tempfile::tempdir().unwrap();
    let ui = built_ui(root.path());
    let host = start_host(|c| c.ui_dir = Some(ui)).await;

    let index = http(&host, "GET", "/ui/", &[]).await;
    assert_eq!(index.status, 200);
    assert_eq!(index.body, INDEX);
    assert!(index.headers["content-type"].starts_with("text/html"));
    assert_eq!(index.headers["cache-control"], "no-cache");
    assert_secure(&index);

    let asset = http(&host, "GET", "/ui/assets/app-3f9a1c.js", &[]).await;
    assert_eq!(asset.status, 200);
    assert_eq!(asset.body, ASSET);
    assert!(
        asset.headers["content-type"].contains("javascript"),
        "{:?}",
        asset.headers
    );
    assert_eq!(
        asset.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_secure(&asset);
}

#[tokio::test]
async fn page_routes_fall_back_to_the_app_and_missing_files_are_404() {
    let root = tempfile::tempdir().unwrap();
    let ui = built_ui(root.path());
    let host = start_host(|c| c.ui_dir = Some(ui)).await;
    for page in [
        "/ui/devices",
        "/ui/chat",
        "/ui/settings",
        "/ui/chat/older?x=1",
    ] {
        let a = http(&host, "GET", page, &[]).await;
        assert_eq!(a.status, 200, "{page}");
        assert_eq!(a.body, INDEX, "{page}");
        assert_eq!(a.headers["cache-control"], "no-cache", "{page}");
        assert_secure(&a);
    }
    let missing = http(&host, "GET", "/ui/assets/gone-123.js", &[]).await;
    assert_eq!(missing.status, 404);
    assert_ne!(missing.body, INDEX);
    assert_eq!(missing.headers["cache-control"], "no-cache");
    // Nothing outside the UI directory is reachable.
    for path in [
        "/ui/../secret.txt",
        "/ui/%2e%2e/secret.txt",
        "/ui/..%2fsecret.txt",
    ] {
        let a = http(&host, "GET", path, &[]).await;
        assert!(!a.body.contains("not for the web"), "{path}: {}", a.body);
        assert_ne!(a.status, 200, "{path}");
    }
    let redirect = http(&host, "GET", "/ui", &[]).await;
    assert_eq!(redirect.status, 307);
    assert_eq!(redirect.headers["location"], "/ui/");
    let head = http(&host, "HEAD", "/ui/", &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "");
    let post = http(&host, "POST", "/ui/", &[("Content-Length", "0")]).await;
    assert_eq!(post.status, 405);
}

#[tokio::test]
async fn a_missing_ui_answers_503_saying_how_to_build_it() {
    let root = tempfile::tempdir().unwrap();
    let host = start_host(|c| c.ui_dir = Some(root.path().join("nowhere"))).await;
    for path in ["/ui/", "/ui/chat"] {
        let a = http(&host, "GET", path, &[]).await;
        assert_eq!(a.status, 503, "{path}");
        assert!(a.headers["content-type"].starts_with("text/html"));
        assert!(
            a.body
                .contains("The web UI is not built. Run <code>make ui</code>."),
            "{}",
            a.body
        );
        assert_secure(&a);
    }
}

#[tokio::test]
async fn the_root_redirects_browsers_and_answers_json_to_others() {
    let host = start_host(|_| {}).await;
    let browser = http(
        &host,
        "GET",
        "/",
        &[("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
    )
    .await;
    assert_eq!(browser.status, 307);
    assert_eq!(browser.headers["location"], "/ui/");
    let program = http(&host, "GET", "/", &[("Accept", "application/json")]).await;
    assert_eq!(program.status, 200);
    let banner: serde_json::Value = serde_json::from_str(&program.body).unwrap();
    assert_eq!(banner["service"], "perch-gateway");
    let bare = http(&host, "GET", "/", &[]).await;
    assert_eq!(bare.status, 200);
}

/// Opens the socket with an optional `Origin`; Ok(first event name) or Err(HTTP status).
async fn upgrade(host: &TestHost, origin: Option<&str>) -> Result<String, u16> {
    let mut req = host.gw.url().into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut()
            .insert("Origin", HeaderValue::from_str(o).unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => {
            let mut r = Raw {
                ws,
                nonce: String::new(),
                host_key: String::new(),
                next: 0,
                challenge: serde_json::Value::Null,
                client_nonce: None,
                pairing_nonce: None,
            };
            let ev = r.event("connect.challenge").await;
            assert!(ev["nonce"].is_string());
            Ok("connect.challenge".into())
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected failure: {e}"),
    }
}

#[tokio::test]
async fn websocket_upgrades_from_another_origin_are_refused() {
    let host = start_host(|_| {}).await;
    assert_eq!(upgrade(&host, Some("http://evil.example")).await, Err(403));
    assert_eq!(
        upgrade(&host, Some("http://127.0.0.1:1")).await,
        Err(403),
        "another port is another origin"
    );
    assert_eq!(upgrade(&host, Some("null")).await, Err(403));
    let own = format!("http://{}", host.gw.addr);
    assert_eq!(
        upgrade(&host, Some(&own)).await.as_deref(),
        Ok("connect.challenge"),
        "the host's own pages may connect"
    );
    assert_eq!(
        upgrade(&host, None).await.as_deref(),
        Ok("connect.challenge"),
        "programs send no Origin"
    );
}

#[tokio::test]
async fn http_requests_from_another_origin_are_refused() {
    let host = start_host(|_| {}).await;
    for path in ["/healthz", "/", "/ui/"] {
        let a = http(&host, "GET", path, &[("Origin", "http://evil.example")]).await;
        assert_eq!(a.status, 403, "{path}: {}", a.body);
        assert!(!a.headers.contains_key("access-control-allow-origin"));
    }
    let a = http(&host, "POST", "/", &[("Origin", "http://evil.example")]).await;
    assert_eq!(a.status, 403);
    let own = format!("http://{}", host.gw.addr);
    let a = http(&host, "GET", "/healthz", &[("Origin", &own)]).await;
    assert_eq!(a.status, 200, "the host's own pages may call it");
}
