//! Limits before authentication, over real sockets on 127.0.0.1: connection caps, the
//! handshake deadline, the pre-auth frame size at the WebSocket layer, the header-read
//! timeout, caps on pending pairing requests, and the Host allowlist.

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use common::*;
use perch_protocol::DeviceIdentity;

/// Reads what the host sends until it closes the connection (or `WAIT` passes).
async fn read_to_close(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).to_string()
}

/// A plain HTTP GET with the given Host header; returns the status line and body.
async fn http_get(host: &TestHost, path: &str, host_header: &str) -> String {
    let mut tcp = TcpStream::connect(host.gw.addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    read_to_close(&mut tcp).await
}

#[tokio::test]
async fn connections_over_the_total_cap_get_503_and_the_operator_keeps_being_served() {
    let host = start_host(|c| c.limits.max_connections = 4).await;
    let mut op = operator(&host).await;
    // Three idle sockets fill the cap of four.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(host.gw.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = TcpStream::connect(host.gw.addr).await.unwrap();
    let answer = read_to_close(&mut over).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(tokio_tungstenite::connect_async(host.url()).await.is_err());

    let status = op.request("status", json!({})).await.unwrap();
    assert!(status.is_object(), "{status}");
    assert_eq!(host.gw.hub().config.limits.max_connections, 4);

    // A place frees when a socket goes.
    drop(idle.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = Raw::open(&host).await;
    let p = operator_connect_params(host.token());
    again.request("connect", p).await.unwrap();
}

#[tokio::test]
async fn the_per_source_cap_applies_to_loopback_when_asked() {
    let host = start_host(|c| {
        c.limits.max_connections_per_source = 2;
        c.limits.limit_loopback = true;
    })
    .await;
    let _a = TcpStream::connect(host.gw.addr).await.unwrap();
    let _b = TcpStream::connect(host.gw.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = TcpStream::connect(host.gw.addr).await.unwrap();
    let answer = read_to_close(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
}

#[tokio::test]
async fn loopback_is_not_capped_per_source_by_default() {
    let host = start_host(|c| c.limits.max_connections_per_source = 1).await;
    let mut a = operator(&host).await;
    let mut b = operator(&host).await;
    assert!(a.request("status", json!({})).await.is_ok());
    assert!(b.request("status", json!({})).await.is_ok());
}

#[tokio::test]
async fn pings_and_pongs_do_not_extend_the_handshake_deadline() {
    let host = start_host(|c| c.limits.handshake_timeout_ms = 600).await;
    let mut raw = Raw::open(&host).await;
    let started = std::time::Instant::now();
    let pinger = async {
        loop {
            // Sends fail once the host has closed; the close frame is still there to read.
            let _ = raw.ws.send(Message::Ping(vec![1].into())).await;
            let _ = raw.ws.send(Message::Pong(vec![2].into())).await;
            match tokio::time::timeout(Duration::from_millis(50), raw.ws.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
                Ok(None) => return None,
                Ok(Some(Err(e))) => panic!("read failed before a close frame: {e}"),
                _ => {}
            }
        }
    };
    let code = tokio::time::timeout(WAIT, pinger).await.unwrap();
    assert_eq!(code, Some(perch_protocol::close_code::HANDSHAKE_TIMEOUT));
    assert!(started.elapsed() >= Duration::from_millis(500));
    // Others are still served.
    let mut op = operator(&host).await;
    assert!(op.request("status", json!({})).await.is_ok());
}

#[tokio::test]
async fn a_device_waiting_for_approval_is_not_cut_by_the_handshake_deadline() {
    let host = start_host(|c| c.limits.handshake_timeout_ms = 300).await;
    let id = DeviceIdentity::from_seed(&[41; 32]);
    let mut n = Raw::open(&host).await;
    let nonce = n.nonce.clone();
    let err = n
        .request(
            "connect",
            node_connect_params(&id, &nonce, now_ms(), None, &[]),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "NOT_PAIRED");
    // Well past the deadline the request is still answered on the same socket.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let again = n.request("status", json!({})).await.unwrap_err();
    assert_eq!(again["code"], "NOT_PAIRED");
}

#[tokio::test]
async fn a_100_kib_frame_before_connect_is_refused_by_the_websocket_layer() {
    let host = start_host(|_| {}).await;
    let mut raw = Raw::open(&host).await;
    let big = format!(
        "{{\"type\":\"req\",\"pad\":\"{}\"}}",
        "x".repeat(100 * 1024)
    );
    let _ = raw.ws.send(Message::Text(big.into())).await;
    let mut code = None;
    let mut told = None;
    while let Ok(Some(msg)) = tokio::time::timeout(WAIT, raw.ws.next()).await {
        match msg {
            Ok(Message::Text(t)) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if v["event"] == "protocol.error" {
                    told = Some(v["payload"]["error"].clone());
                }
            }
            Ok(Message::Close(f)) => {
                code = f.map(|f| u16::from(f.code));
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert_eq!(code, Some(perch_protocol::close_code::TOO_BIG));
    let told = told.expect("a protocol.error before the close");
    assert_eq!(told["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(
        told["details"]["limit"],
        perch_protocol::PRE_HANDSHAKE_MAX_FRAME
    );
    let mut op = operator(&host).await;
    assert!(op.request("status", json!({})).await.is_ok());
}

#[tokio::test]
async fn after_connect_the_limit_is_max_payload() {
    let host = start_host(|_| {}).await;
    let mut op = operator(&host).await;
    // 100 KiB is fine once connected (an unknown method, answered, not a closed socket).
    let big = "x".repeat(100 * 1024);
    let err = op
        .request("no.such.method", json!({"pad": big}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "UNKNOWN_METHOD");
}

#[tokio::test]
async fn a_slow_request_head_is_closed_after_the_header_timeout() {
    let host = start_host(|c| c.limits.header_timeout_ms = 400).await;
    let mut tcp = TcpStream::connect(host.gw.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the host kept a half-sent request open");
    assert!(started.elapsed() >= Duration::from_millis(300));
    // A socket that sends nothing at all is closed too.
    let mut silent = TcpStream::connect(host.gw.addr).await.unwrap();
    let read = tokio::time::timeout(WAIT, silent.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the host kept a silent socket open");
}

/// Asks to pair `n` fresh device keys, one connection each, and counts the answers by code.
async fn flood_pairing(
    host: &TestHost,
    seeds: std::ops::Range<u32>,
    keep: bool,
) -> (usize, usize, Vec<Raw>) {
    let (mut not_paired, mut limited) = (0, 0);
    let mut kept = Vec::new();
    for i in seeds {
        let mut seed = [7u8; 32];
        seed[..4].copy_from_slice(&i.to_be_bytes());
        let id = DeviceIdentity::from_seed(&seed);
        let mut n = Raw::open(host).await;
        let nonce = n.nonce.clone();
        let err = n
            .request(
                "connect",
                node_connect_params(&id, &nonce, now_ms(), None, &[]),
            )
            .await
            .unwrap_err();
        match err["code"].as_str() {
            Some("NOT_PAIRED") => not_paired += 1,
            Some("RATE_LIMITED") => {
                assert!(
                    err["details"]["retryAfterMs"].as_u64().unwrap() > 0,
                    "{err}"
                );
                limited += 1;
            }
            other => panic!("unexpected answer {other:?}: {err}"),
        }
        if keep {
            kept.push(n);
        }
    }
    (not_paired, limited, kept)
}

#[tokio::test]
async fn a_thousand_keys_asking_to_pair_from_one_source_leave_the_list_capped() {
    let host = start_host(|_| {}).await;
    let mut op = operator(&host).await;
    let (filed, limited, _) = flood_pairing(&host, 0..1000, false).await;
    assert_eq!(filed, 8);
    assert_eq!(limited, 992);
    let list = op.request("device.pair.list", json!({})).await.unwrap();
    assert_eq!(list["pending"].as_array().unwrap().len(), 8);
    let status = op.request("status", json!({})).await.unwrap();
    assert!(status.is_object());
}

#[tokio::test]
async fn past_the_total_cap_the_oldest_pending_request_expires_and_its_device_is_told() {
    let host = start_host(|c| {
        c.limits.max_pending_pairings = 5;
        c.limits.max_pending_pairings_per_source = 1000;
    })
    .await;
    let mut op = operator(&host).await;
    // A second operator only listens, as the tray and the web UI do.
    let mut watcher = operator(&host).await;
    let (filed, limited, mut kept) = flood_pairing(&host, 0..12, true).await;
    assert_eq!((filed, limited), (12, 0));
    let list = op.request("device.pair.list", json!({})).await.unwrap();
    assert_eq!(list["pending"].as_array().unwrap().len(), 5);
    let kept_ids: Vec<&str> = list["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requestId"].as_str().unwrap())
        .collect();
    // Every operator is told of each expired request, so no tray keeps a dead row.
    for _ in 0..7 {
        let resolved = watcher.event("device.pair.resolved").await;
        assert_eq!(resolved["decision"], "expired", "{resolved}");
        let id = resolved["requestId"].as_str().unwrap();
        assert!(!kept_ids.contains(&id), "{id} is still pending");
    }
    // The first device's request went first; its connection is told and closed.
    let mut first = kept.remove(0);
    let closing = first.event("connection.closing").await;
    assert_eq!(closing["error"]["code"], "NOT_PAIRED", "{closing}");
    assert_eq!(
        closing["error"]["details"]["reason"], "expired",
        "{closing}"
    );
    // The newest are the ones kept.
    let last = kept.last_mut().unwrap();
    let again = last.request("status", json!({})).await.unwrap_err();
    assert_eq!(again["code"], "NOT_PAIRED");
}

#[tokio::test]
async fn a_rebound_host_header_is_refused_for_http_and_the_websocket() {
    let host = start_host(|_| {}).await;
    let port = host.gw.addr.port();
    let evil = http_get(&host, "/healthz", "evil.example").await;
    assert!(evil.starts_with("HTTP/1.1 421"), "{evil}");
    let evil = http_get(&host, "/", &format!("evil.example:{port}")).await;
    assert!(evil.starts_with("HTTP/1.1 421"), "{evil}");
    for ok in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "[::1]".into(),
    ] {
        let got = http_get(&host, "/healthz", &ok).await;
        assert!(got.starts_with("HTTP/1.1 200"), "{ok}: {got}");
    }

    let mut req = host.url().into_client_request().unwrap();
    req.headers_mut()
        .insert("host", format!("evil.example:{port}").parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 421)
        }
        other => panic!(
            "upgrade with a foreign Host was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    let mut req = host.url().into_client_request().unwrap();
    req.headers_mut()
        .insert("host", format!("localhost:{port}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let first = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert!(matches!(first, Some(Ok(Message::Text(_)))));
}
