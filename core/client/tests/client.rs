//! The operator client against a real in-process gateway (temp data dir, 127.0.0.1:0, mDNS
//! off), plus a scripted fake host for the handshake edges a real one never shows.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use perch_client::{Client, ClientConfig, ClientError, ConnectionState, OperatorToken};
use perch_host::{Host, HostOptions, MdnsMode, RunningHost};
use perch_protocol::handshake::HostProof;
use perch_protocol::{DeviceIdentity, ErrorCode};

const WAIT: Duration = Duration::from_secs(10);

async fn start_host(dir: &Path, bind: SocketAddr) -> (RunningHost, String) {
    let options = HostOptions::new(dir)
        .with_bind(bind)
        .with_mdns(MdnsMode::Off);
    let gw = Host::start(options).await.unwrap();
    let token = std::fs::read_to_string(dir.join("operator.token"))
        .unwrap()
        .trim()
        .to_string();
    (gw, token)
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The fingerprint of the host key in `dir`: what a client of that host expects it to prove.
fn fp(dir: &Path) -> String {
    perch_host::paths::read_host_fingerprint(dir)
        .unwrap()
        .unwrap()
}

fn config(url: String, token: &str, host: &str) -> ClientConfig {
    let mut c = ClientConfig::new(url, OperatorToken::new(token), host);
    c.client_id = "perch-client-test".into();
    c.backoff_base = Duration::from_millis(50);
    c.backoff_cap = Duration::from_millis(300);
    c.connect_timeout = Duration::from_secs(3);
    c
}

/// Waits until the state satisfies `pred`, and returns it.
async fn wait_for(
    client: &Client,
    what: &str,
    pred: impl Fn(&ConnectionState) -> bool,
) -> ConnectionState {
    let mut rx = client.state();
    let got = tokio::time::timeout(WAIT, async {
        loop {
            let s = rx.borrow_and_update().clone();
            if pred(&s) {
                return s;
            }
            if rx.changed().await.is_err() {
                return rx.borrow().clone();
            }
        }
    })
    .await;
    match got {
        Ok(s) if pred(&s) => s,
        Ok(s) => panic!("state watch closed at {s:?} while waiting for {what}"),
        Err(_) => panic!(
            "timed out waiting for {what}; state is {:?}",
            client.current_state()
        ),
    }
}

#[tokio::test]
async fn concurrent_calls_each_get_their_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, token) = start_host(dir.path(), any_port()).await;
    let client = Client::start(config(gw.url(), &token, &fp(dir.path())));
    let mut calls = Vec::new();
    for i in 0..40 {
        let c = client.clone();
        calls.push(tokio::spawn(async move {
            let method = if i % 2 == 0 {
                "status"
            } else {
                "device.pair.list"
            };
            (method, c.call(method, None, WAIT).await)
        }));
    }
    for call in calls {
        let (method, result) = call.await.unwrap();
        let v = result.unwrap_or_else(|e| panic!("{method}: {e}"));
        match method {
            "status" => assert!(v.get("hostId").is_some(), "status got {v}"),
            _ => assert!(v.get("paired").is_some(), "device.pair.list got {v}"),
        }
    }
    // A host error comes back structured.
    let err = client
        .call(
            "device.pair.approve",
            Some(json!({"requestId": "nope"})),
            WAIT,
        )
        .await
        .unwrap_err();
    assert_eq!(err.host_code(), Some(&ErrorCode::NotFound), "{err}");
    client.shutdown().await;
    gw.shutdown().await;
}

#[tokio::test]
async fn connected_carries_hello_and_calls_work_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, token) = start_host(dir.path(), any_port()).await;
    let client = Client::start(config(gw.url(), &token, &fp(dir.path())));
    // A call made while still connecting waits for the connection.
    let status: Value = client.call_as("status", None, WAIT).await.unwrap();
    let state = client.current_state();
    let hello = state.hello().expect("connected after a successful call");
    assert_eq!(hello.server.host_id, status["hostId"].as_str().unwrap());
    assert_eq!(client.connection_attempts(), 1);
    client.shutdown().await;
    gw.shutdown().await;
}

#[tokio::test]
async fn events_reach_every_subscriber() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, token) = start_host(dir.path(), any_port()).await;
    let client = Client::start(config(gw.url(), &token, &fp(dir.path())));
    client.wait_connected(WAIT).await.unwrap();
    let mut a = client.subscribe();
    let mut b = client.subscribe();

    // A real node asks to pair: operators hear device.pair.requested.
    let node_dir = tempfile::tempdir().unwrap();
    let node = perch_node::Node::new(
        perch_node::NodeConfig::new(gw.url(), "Kitchen", node_dir.path()),
        perch_node::Capabilities::new(),
    )
    .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let node_task = tokio::spawn({
        let stop = stop.clone();
        async move { node.run(stop.cancelled_owned()).await }
    });
    for rx in [&mut a, &mut b] {
        let ev = tokio::time::timeout(WAIT, async {
            loop {
                let e = rx.recv().await.unwrap();
                if e.event == "device.pair.requested" {
                    return e;
                }
                assert_ne!(e.event, "tick", "ticks are not forwarded");
            }
        })
        .await
        .expect("device.pair.requested");
        assert_eq!(ev.payload.unwrap()["displayName"], "Kitchen");
    }
    stop.cancel();
    node_task.await.unwrap().unwrap();
    client.shutdown().await;
    gw.shutdown().await;
}

#[tokio::test]
async fn reconnects_after_the_host_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, token) = start_host(dir.path(), any_port()).await;
    let addr = gw.addr();
    let client = Client::start(config(gw.url(), &token, &fp(dir.path())));
    let first = client.wait_connected(WAIT).await.unwrap();
    gw.shutdown().await;
    let gone = wait_for(&client, "disconnected", |s| {
        matches!(s, ConnectionState::Disconnected { .. })
    })
    .await;
    assert!(gone.will_retry(), "{gone:?}");
    let (gw, _) = start_host(dir.path(), addr).await;
    let back = wait_for(&client, "connected again", ConnectionState::is_connected).await;
    let second = back.hello().unwrap();
    assert_eq!(second.server.host_id, first.server.host_id);
    assert!(client.connection_attempts() >= 2);
    // The new connection serves calls and events.
    let v = client.call("status", None, WAIT).await.unwrap();
    assert_eq!(v["operatorsOnline"], 1);
    client.shutdown().await;
    gw.shutdown().await;
}

#[tokio::test]
async fn wrong_token_parks_in_unauthorized_without_retrying() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, _token) = start_host(dir.path(), any_port()).await;
    let secret = "wrong-token-0123456789abcdefghijkl";
    let client = Client::start(config(gw.url(), secret, &fp(dir.path())));
    let s = wait_for(&client, "unauthorized", |s| {
        matches!(s, ConnectionState::Unauthorized { .. })
    })
    .await;
    let ConnectionState::Unauthorized { reason } = &s else {
        unreachable!()
    };
    assert!(reason.contains("operator token"), "{reason}");
    assert!(!reason.contains(secret) && !format!("{s:?}").contains(secret));
    assert!(!format!("{client:?}").contains(secret));
    // Well past several backoff steps: still one attempt, still parked.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(client.connection_attempts(), 1);
    assert!(matches!(
        client.current_state(),
        ConnectionState::Unauthorized { .. }
    ));
    // Calls fail at once, with the reason and without the token.
    let err = client.call("status", None, WAIT).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::NotConnected { reason } if reason.contains("operator token")),
        "{err}"
    );
    assert!(!err.to_string().contains(secret));
    // Asked explicitly, it tries once more.
    client.reconnect_now();
    tokio::time::timeout(WAIT, async {
        while client.connection_attempts() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    wait_for(&client, "unauthorized again", |s| {
        matches!(s, ConnectionState::Unauthorized { .. })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(client.connection_attempts(), 2);
    client.shutdown().await;
    gw.shutdown().await;
}

#[tokio::test]
async fn host_gone_is_disconnected_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, token) = start_host(dir.path(), any_port()).await;
    let url = gw.url();
    let client = Client::start(config(url.clone(), &token, &fp(dir.path())));
    client.wait_connected(WAIT).await.unwrap();
    let mut rx = client.state();
    rx.borrow_and_update();
    gw.shutdown().await;
    // The first report names the shutdown the host announced.
    rx.changed().await.unwrap();
    let s = rx.borrow_and_update().clone();
    match &s {
        ConnectionState::Disconnected { reason, retry_in } => {
            assert!(reason.contains("shut down"), "{reason}");
            assert!(retry_in.is_some());
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    // Later attempts say the host cannot be reached, and calls fail fast with that reason.
    let s = wait_for(&client, "a refused dial", |s| {
        matches!(s, ConnectionState::Disconnected { reason, .. } if reason.contains("cannot connect"))
    })
    .await;
    assert!(s.to_string().contains(&url), "{s}");
    let started = std::time::Instant::now();
    let err = client.call("status", None, WAIT).await.unwrap_err();
    assert!(matches!(err, ClientError::NotConnected { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    client.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (gw, token) = start_host(dir.path(), any_port()).await;
    let watcher = Client::start(config(gw.url(), &token, &fp(dir.path())));
    watcher.wait_connected(WAIT).await.unwrap();
    let client = Client::start(config(gw.url(), &token, &fp(dir.path())));
    client.wait_connected(WAIT).await.unwrap();
    let other = client.clone();
    client.shutdown().await;
    assert_eq!(other.current_state(), ConnectionState::Stopped);
    assert_eq!(
        other.call("status", None, WAIT).await.unwrap_err(),
        ClientError::Closed
    );
    // The host saw the connection go.
    tokio::time::timeout(WAIT, async {
        loop {
            let v = watcher.call("status", None, WAIT).await.unwrap();
            if v["operatorsOnline"] == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("operatorsOnline back to 1");
    watcher.shutdown().await;
    gw.shutdown().await;
}

/// A scripted host: sends the challenge, answers `connect` after `hello_delay` (or never),
/// never answers anything else, and reports every frame it receives.
async fn fake_host(
    hello_delay: Option<Duration>,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    fake_host_with_key(hello_delay, FAKE_KEY).await
}

/// The fake host's key seed, and the fingerprint its clients expect.
const FAKE_KEY: [u8; 32] = [9; 32];

fn fake_fp() -> String {
    DeviceIdentity::from_seed(&FAKE_KEY).device_id().to_string()
}

/// [`fake_host`] signing its challenges with the key of `seed`.
async fn fake_host_with_key(
    hello_delay: Option<Duration>,
    seed: [u8; 32],
) -> (String, tokio::sync::mpsc::UnboundedReceiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            let key = DeviceIdentity::from_seed(&seed);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let proof = HostProof::sign(&key, "n", 0);
                let challenge = json!({"type": "event", "event": "connect.challenge", "seq": 1,
                    "payload": {"nonce": "n", "ts": 0, "host": proof}});
                let _ = ws.send(Message::Text(challenge.to_string().into())).await;
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(t) = msg else { continue };
                    let v: Value = serde_json::from_str(t.as_str()).unwrap();
                    let _ = tx.send(v.clone());
                    if v["method"] == "connect" {
                        let Some(delay) = hello_delay else { continue };
                        tokio::time::sleep(delay).await;
                        let hello = json!({"type": "res", "id": v["id"], "ok": true, "payload": {
                            "type": "hello-ok", "protocol": 4,
                            "server": {"version": "0", "connId": "c1", "hostId": "fake", "name": "fake"},
                            "features": {"methods": [], "events": []},
                            "snapshot": {"uptimeMs": 1, "presence": [], "stateVersion": {"presence": 0, "health": 0}},
                            "auth": {"role": "operator", "scopes": []},
                            "policy": {"maxPayload": 1000000, "maxBufferedBytes": 1000000, "tickIntervalMs": 15000}}});
                        let _ = ws.send(Message::Text(hello.to_string().into())).await;
                    }
                }
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn never_connected_before_hello_ok() {
    let (url, mut frames) = fake_host(Some(Duration::from_millis(600))).await;
    let client = Client::start(config(
        url,
        "token-for-the-fake-host-0123456789",
        &fake_fp(),
    ));
    let mut rx = client.state();
    let mut seen = vec![rx.borrow_and_update().clone()];
    // The connect request arrives, but hello-ok is still 600 ms away.
    let connect = tokio::time::timeout(WAIT, frames.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(connect["method"], "connect");
    assert_eq!(connect["params"]["role"], "operator");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(client.current_state(), ConnectionState::Connecting);
    let hello = client.wait_connected(WAIT).await.unwrap();
    assert_eq!(hello.server.host_id, "fake");
    seen.push(rx.borrow_and_update().clone());
    assert_eq!(seen[0], ConnectionState::Connecting);
    assert!(seen[1].is_connected());
    client.shutdown().await;
}

#[tokio::test]
async fn missing_hello_ok_times_out_as_disconnected() {
    let (url, _frames) = fake_host(None).await;
    let mut cfg = config(url, "token-for-the-fake-host-0123456789", &fake_fp());
    cfg.connect_timeout = Duration::from_millis(300);
    let client = Client::start(cfg);
    let s = wait_for(&client, "a handshake timeout", |s| {
        matches!(s, ConnectionState::Disconnected { .. })
    })
    .await;
    assert!(s.to_string().contains("hello-ok"), "{s}");
    client.shutdown().await;
}

#[tokio::test]
async fn timed_out_call_is_cancelled_on_the_host() {
    let (url, mut frames) = fake_host(Some(Duration::ZERO)).await;
    let client = Client::start(config(
        url,
        "token-for-the-fake-host-0123456789",
        &fake_fp(),
    ));
    client.wait_connected(WAIT).await.unwrap();
    let err = client
        .call("node.list", None, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Timeout { method, .. } if method == "node.list"),
        "{err}"
    );
    let mut req_id = None;
    let cancel = tokio::time::timeout(WAIT, async {
        loop {
            let f = frames.recv().await.unwrap();
            if f["method"] == "node.list" {
                req_id = Some(f["id"].clone());
            }
            if f["type"] == "cancel" {
                return f;
            }
        }
    })
    .await
    .expect("a cancel frame");
    assert_eq!(Some(cancel["id"].clone()), req_id);
    client.shutdown().await;
}

/// An impostor at the host's address (another key, a well-formed challenge) gets no token: the
/// client closes before `connect`, says why, and keeps trying the expected host.
#[tokio::test]
async fn a_host_with_another_key_gets_no_token() {
    let (url, mut frames) = fake_host_with_key(Some(Duration::ZERO), [10; 32]).await;
    let client = Client::start(config(
        url,
        "token-for-the-fake-host-0123456789",
        &fake_fp(),
    ));
    let s = wait_for(&client, "a refusal of the host", |s| {
        matches!(s, ConnectionState::Disconnected { .. })
    })
    .await;
    assert!(s.to_string().contains("not the expected Perch host"), "{s}");
    assert!(!s.to_string().contains("token-for-the-fake"), "{s}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(frames.try_recv().is_err(), "the impostor received a frame");
    client.shutdown().await;
}
