//! TLS on the gateway's one port, over real sockets on 127.0.0.1: `wss://` proves the host key
//! its chain was issued by, a client pinned to another key gets no socket, first use learns the
//! key, HTTP works over TLS too, a broken or stalled TLS handshake costs the host nothing, and
//! `tls = false` serves plain only. (Plain refused from the network, 426, needs a non-loopback
//! peer: core/cli/tests/netns_pairing.rs.)

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use common::*;
use perch_protocol::handshake::{self, Challenge};
use perch_tls::{DialError, HostPin};

fn wss(host: &TestHost) -> String {
    format!("wss://{}", host.gw.addr)
}

/// The next frame's JSON, skipping pings.
async fn next_json(ws: &mut perch_tls::HostSocket) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("a message");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

#[tokio::test]
async fn wss_proves_the_host_key_and_carries_the_protocol() {
    let host = start_host(|_| {}).await;
    let fp = host.gw.hub().fingerprint.clone();
    let nonce = handshake::new_client_nonce().unwrap();
    let dialed = perch_tls::dial_host(&wss(&host), &nonce, HostPin::Fingerprint(fp.clone()))
        .await
        .unwrap();
    assert_eq!(dialed.tls_fingerprint.as_deref(), Some(fp.as_str()));
    let mut ws = dialed.socket;
    let challenge = next_json(&mut ws).await;
    assert_eq!(challenge["event"], "connect.challenge", "{challenge}");
    let challenge: Challenge = serde_json::from_value(challenge["payload"].clone()).unwrap();
    challenge.verify_host(&fp, &nonce).unwrap();

    // An operator connects and is served over TLS like over plain.
    let connect = json!({"type": "req", "id": "c1", "method": "connect",
        "params": operator_connect_params(host.token())});
    ws.send(Message::text(connect.to_string())).await.unwrap();
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["ok"], true, "{hello}");
    let status = json!({"type": "req", "id": "s1", "method": "status", "params": {}});
    ws.send(Message::text(status.to_string())).await.unwrap();
    loop {
        let f = next_json(&mut ws).await;
        if f["id"] == "s1" {
            assert_eq!(f["ok"], true, "{f}");
            break;
        }
    }
}

#[tokio::test]
async fn a_client_pinned_to_another_key_gets_no_socket() {
    let host = start_host(|_| {}).await;
    let other = perch_protocol::DeviceIdentity::from_seed(&[9; 32]);
    let nonce = handshake::new_client_nonce().unwrap();
    let pinned = other.device_id().to_string();
    match perch_tls::dial_host(&wss(&host), &nonce, HostPin::Fingerprint(pinned.clone())).await {
        Err(DialError::HostKeyMismatch { pinned: p, found }) => {
            assert_eq!(p, pinned);
            assert_eq!(found, host.gw.hub().fingerprint);
        }
        Err(e) => panic!("expected a key mismatch, got {e}"),
        Ok(_) => panic!("a socket to a host with another key"),
    }
    // The host keeps serving others.
    let mut op = operator(&host).await;
    op.request("status", json!({})).await.unwrap();
}

#[tokio::test]
async fn first_use_learns_the_key_the_certificate_proves() {
    let host = start_host(|_| {}).await;
    let nonce = handshake::new_client_nonce().unwrap();
    let dialed = perch_tls::dial_host(&wss(&host), &nonce, HostPin::FirstUse)
        .await
        .unwrap();
    assert_eq!(
        dialed.tls_fingerprint.as_deref(),
        Some(host.gw.hub().fingerprint.as_str())
    );
}

/// A TLS stream to the host with a config pinned to its key, for plain HTTP over it.
async fn tls_stream(host: &TestHost) -> tokio_rustls::client::TlsStream<TcpStream> {
    let (config, _) =
        perch_tls::client_config(HostPin::Fingerprint(host.gw.hub().fingerprint.clone())).unwrap();
    let tcp = TcpStream::connect(host.gw.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::from(host.gw.addr.ip());
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn https_serves_health_and_the_certificate_is_kept_across_a_restart() {
    let host = start_host(|_| {}).await;
    let mut tls = tls_stream(&host).await;
    let req = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        host.gw.addr
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(&host.gw.hub().host_id), "{text}");
    let chain = tls.get_ref().1.peer_certificates().unwrap().to_vec();
    assert_eq!(
        chain.len(),
        2,
        "the leaf and the identity key's certificate"
    );

    // Same data dir, new process state: the same certificate (a browser's exception holds).
    let dir = host.dir;
    host.gw.shutdown().await;
    let mut cfg = perch_gateway::GatewayConfig::defaults(dir.path().to_path_buf());
    cfg.bind = "127.0.0.1:0".parse().unwrap();
    let gw = perch_gateway::start(cfg, Arc::new(perch_gateway::GatewayOnly))
        .await
        .unwrap();
    let again = TestHost {
        gw,
        dir,
        token: String::new(),
    };
    let tls = tls_stream(&again).await;
    assert_eq!(tls.get_ref().1.peer_certificates().unwrap(), &chain[..]);
}

#[tokio::test]
async fn broken_and_stalled_tls_handshakes_cost_the_host_nothing() {
    let host = start_host(|c| c.limits.header_timeout_ms = 300).await;
    // A TLS record header followed by garbage: the handshake fails and the socket closes.
    let mut junk = TcpStream::connect(host.gw.addr).await.unwrap();
    junk.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])
        .await
        .unwrap();
    let mut sink = Vec::new();
    let read = tokio::time::timeout(WAIT, junk.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "the host closed the broken handshake");
    // One byte of a handshake, then silence: closed at the header deadline.
    let mut stalled = TcpStream::connect(host.gw.addr).await.unwrap();
    stalled.write_all(&[0x16]).await.unwrap();
    let start = std::time::Instant::now();
    let read = tokio::time::timeout(WAIT, stalled.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "the host closed the stalled handshake");
    assert!(start.elapsed() < Duration::from_secs(5));
    // A socket that says nothing at all is closed too.
    let mut silent = TcpStream::connect(host.gw.addr).await.unwrap();
    let read = tokio::time::timeout(WAIT, silent.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "the host closed the silent socket");
    let mut op = operator(&host).await;
    op.request("status", json!({})).await.unwrap();
}

#[tokio::test]
async fn with_tls_off_the_host_serves_plain_only_and_codes_say_ws() {
    let host = start_host(|c| c.transport.tls = false).await;
    let nonce = handshake::new_client_nonce().unwrap();
    let pin = HostPin::Fingerprint(host.gw.hub().fingerprint.clone());
    assert!(
        perch_tls::dial_host(&wss(&host), &nonce, pin.clone())
            .await
            .is_err()
    );
    let nonce = handshake::new_client_nonce().unwrap();
    let dialed = perch_tls::dial_host(&host.url(), &nonce, pin)
        .await
        .unwrap();
    assert_eq!(dialed.tls_fingerprint, None);
    let mut op = operator(&host).await;
    let r = op
        .request("device.pair.setupCode", json!({}))
        .await
        .unwrap();
    let code =
        perch_protocol::setup_code::SetupCode::decode(r["setupCode"].as_str().unwrap()).unwrap();
    assert!(!code.tls);
}

/// Runs a real node with `config` until its state satisfies `until` (within `WAIT`), then
/// stops it; it must stop cleanly.
async fn run_node_until(
    config: perch_node::NodeConfig,
    what: &str,
    until: impl FnMut(&perch_node::NodeState) -> bool,
) {
    let node = perch_node::Node::new(config, perch_node::Capabilities::new()).unwrap();
    let mut state = node.subscribe();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(node.run(async move {
        let _ = stopped.await;
    }));
    tokio::time::timeout(WAIT, state.wait_for(until))
        .await
        .unwrap_or_else(|_| panic!("{what} in time"))
        .unwrap();
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// A real node over `wss://`: it pairs with the setup code's host, and refuses (and keeps
/// refusing, without stopping) a host whose certificate is issued by another key.
#[tokio::test]
async fn a_real_node_pairs_over_wss_and_refuses_a_host_with_another_key() {
    use perch_node::NodeConfig;
    use perch_node::runtime::{BootstrapToken, ExpectedHost, NodeState};

    let host = start_host(|_| {}).await;
    let mut op = operator(&host).await;
    let r = op
        .request("device.pair.setupCode", json!({}))
        .await
        .unwrap();
    let code =
        perch_protocol::setup_code::SetupCode::decode(r["setupCode"].as_str().unwrap()).unwrap();
    let node_dir = tempfile::tempdir().unwrap();
    let expected = ExpectedHost {
        host_id: code.host_id(),
        fingerprint: code.fingerprint_hex(),
    };
    let mut config = NodeConfig::new(wss(&host), "TLS node", node_dir.path());
    config.expected_host = Some(expected.clone());
    config.bootstrap_token = Some(BootstrapToken(code.bootstrap_token.clone()));
    config.handshake_timeout = Duration::from_secs(5);
    run_node_until(config, "paired", |s| {
        matches!(s, NodeState::Connected { .. })
    })
    .await;
    let list = op.request("device.pair.list", json!({})).await.unwrap();
    assert_eq!(list["paired"].as_array().unwrap().len(), 1, "{list}");

    // Another host (another key) at the address the node was sent to.
    let other = start_host(|_| {}).await;
    let mut config = NodeConfig::new(wss(&other), "TLS node", node_dir.path());
    config.expected_host = Some(expected);
    config.handshake_timeout = Duration::from_secs(5);
    run_node_until(config, "refused", |s| {
        matches!(s, NodeState::WrongHost { .. })
    })
    .await;
    // The other host never saw a connect from it: nothing pending there.
    let mut other_op = operator(&other).await;
    let list = other_op
        .request("device.pair.list", json!({}))
        .await
        .unwrap();
    assert_eq!(list["pending"].as_array().unwrap().len(), 0, "{list}");
}
