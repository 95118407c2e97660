//! What a web page in the user's browser can do to a real `perch serve` on loopback: a page on
//! another origin opening the protocol socket or calling the host's HTTP endpoints is refused
//! (403), and a DNS-rebinding page (its own name resolved to 127.0.0.1, so the browser sends
//! `Host: evil.example:PORT`) is refused (421) for HTTP and for the socket. The host's own
//! loopback names pass.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use perch_attack_tests::procs::*;

/// One HTTP/1.1 exchange on a fresh connection: the status and the lower-cased head.
async fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        let body = r#"{"type":"req","id":"1","method":"status"}"#;
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .expect("the host answers")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    (status, head)
}

/// Opens the protocol socket with the given headers: Ok(first frame) or Err(HTTP status).
async fn upgrade(port: u16, headers: &[(&'static str, String)]) -> Result<String, u16> {
    let mut req = format!("ws://127.0.0.1:{port}")
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        req.headers_mut()
            .insert(*k, HeaderValue::from_str(v).unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((mut ws, _)) => match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => Ok(t.to_string()),
            other => panic!("the socket opened but said {other:?}"),
        },
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected failure: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_origin_is_refused_on_the_socket_and_over_http() {
    let host = RealHost::start("").await;
    let port = host.port;
    let own_host = format!("127.0.0.1:{port}");
    for evil in [
        "http://evil.example",
        "https://evil.example",
        "null",
        // Another port on loopback is another origin.
        "http://127.0.0.1:1",
    ] {
        assert_eq!(
            upgrade(port, &[("Origin", evil.to_string())]).await,
            Err(403),
            "socket from {evil}"
        );
        for (method, path) in [("GET", "/healthz"), ("GET", "/"), ("POST", "/")] {
            let (status, head) =
                http(port, method, path, &[("Host", &own_host), ("Origin", evil)]).await;
            assert_eq!(status, 403, "{method} {path} from {evil}: {head}");
            assert!(
                !head.contains("access-control-allow-origin"),
                "{method} {path} from {evil} granted CORS: {head}"
            );
        }
    }
    // The host's own pages and programs without an Origin pass.
    for name in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let own = format!("http://{name}");
        let first = upgrade(port, &[("Host", name.clone()), ("Origin", own.clone())]).await;
        assert!(
            first
                .as_deref()
                .is_ok_and(|t| t.contains("connect.challenge")),
            "{own}: {first:?}"
        );
        let (status, _) = http(
            port,
            "GET",
            "/healthz",
            &[("Host", &name), ("Origin", &own)],
        )
        .await;
        assert_eq!(status, 200, "GET /healthz from {own}");
    }
    // A loopback name with the host's port is still another origin when the page's Host is
    // another name: the browser sent both, and they disagree.
    assert_eq!(
        upgrade(port, &[("Origin", format!("http://localhost:{port}"))]).await,
        Err(403)
    );
    let first = upgrade(port, &[]).await;
    assert!(first.is_ok_and(|t| t.contains("connect.challenge")));
    let (status, _) = http(port, "GET", "/healthz", &[("Host", &own_host)]).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebound_host_header_is_refused_for_http_and_the_socket() {
    let host = RealHost::start("").await;
    let port = host.port;
    for evil in [format!("evil.example:{port}"), "evil.example".to_string()] {
        for path in ["/healthz", "/", "/ui/"] {
            let (status, head) = http(port, "GET", path, &[("Host", &evil)]).await;
            assert_eq!(status, 421, "GET {path} with Host {evil}: {head}");
        }
        assert_eq!(
            upgrade(port, &[("Host", evil.clone())]).await,
            Err(421),
            "socket with Host {evil}"
        );
        // Rebound and from the rebinding page's own origin: still the Host that decides.
        assert_eq!(
            upgrade(
                port,
                &[("Host", evil.clone()), ("Origin", format!("http://{evil}"))]
            )
            .await,
            Err(421),
        );
    }
    for ok in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let (status, head) = http(port, "GET", "/healthz", &[("Host", &ok)]).await;
        assert_eq!(status, 200, "Host {ok}: {head}");
        let first = upgrade(port, &[("Host", ok.clone())]).await;
        assert!(
            first
                .as_deref()
                .is_ok_and(|t| t.contains("connect.challenge")),
            "socket with Host {ok}: {first:?}"
        );
    }
}
