//! The connection loop against a scripted host: handshake, pairing, invokes, reconnects and
//! the ways a host can refuse a node.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Host, RunningNode, WAIT, test_config};
use futures_util::SinkExt;
use futures_util::future::BoxFuture;
use perch_node::{
    Capabilities, CapabilityHandler, CommandError, Node, NodeError, NodeState, StoreError,
    TokenStore, parse_params,
};
use perch_protocol::{ErrorCode, ErrorShape, Frame, close_code};
use serde_json::{Value, json};

/// Commands for exercising the runtime itself: `test.sleep {ms}` (notes when it is dropped)
/// and `test.big {bytes}`.
struct TestHandler {
    dropped: Arc<AtomicBool>,
}

struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[derive(serde::Deserialize)]
struct SleepParams {
    ms: u64,
}

#[derive(serde::Deserialize)]
struct BigParams {
    bytes: usize,
}

impl CapabilityHandler for TestHandler {
    fn commands(&self) -> Vec<String> {
        vec!["test.sleep".into(), "test.big".into()]
    }
    fn caps(&self) -> Vec<String> {
        vec!["test".into()]
    }
    fn permissions(&self) -> BTreeMap<String, bool> {
        BTreeMap::new()
    }
    fn invoke(
        &self,
        command: &str,
        params: Value,
    ) -> BoxFuture<'static, Result<Value, CommandError>> {
        match command {
            "test.sleep" => {
                let flag = DropFlag(self.dropped.clone());
                Box::pin(async move {
                    let p: SleepParams = parse_params("test.sleep", params)?;
                    let _flag = flag;
                    tokio::time::sleep(Duration::from_millis(p.ms)).await;
                    Ok(json!({"slept": p.ms}))
                })
            }
            _ => Box::pin(async move {
                let p: BigParams = parse_params("test.big", params)?;
                Ok(json!("x".repeat(p.bytes)))
            }),
        }
    }
}

fn test_caps() -> (Capabilities, Arc<AtomicBool>) {
    let dropped = Arc::new(AtomicBool::new(false));
    let caps = Capabilities::new()
        .with(Arc::new(TestHandler {
            dropped: dropped.clone(),
        }))
        .unwrap();
    (caps, dropped)
}

#[cfg(feature = "desktop")]
fn desktop_caps() -> Capabilities {
    use perch_node::desktop::{ConfiguredLocation, desktop_capabilities};
    desktop_capabilities(Some(
        ConfiguredLocation::parse("48.20849,16.37208,12.5").unwrap(),
    ))
}

/// (1) challenge → signed connect → hello-ok with a token, which is persisted → location.get
/// is answered with the configured fix → graceful stop closes with 1000.
#[cfg(feature = "desktop")]
#[tokio::test]
async fn happy_path_persists_token_and_answers_location() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), desktop_caps());
    let mut conn = host.accept().await;
    let params = conn.handshake("nonce-1", Some("tok-1")).await;
    assert!(params.auth.is_none(), "first connect has no token");
    assert_eq!(params.client.display_name.as_deref(), Some("Test node"));
    assert_eq!(
        params.commands,
        vec![
            "device.info",
            "device.status",
            "location.get",
            "system.notify"
        ]
    );
    assert_eq!(params.caps, vec!["device", "location", "system"]);
    assert_eq!(params.device.as_ref().unwrap().id, node.device_id);

    let state = node
        .wait_state("Connected", |s| matches!(s, NodeState::Connected { .. }))
        .await;
    assert_eq!(
        state,
        NodeState::Connected {
            host_name: "Test host".into(),
            conn_id: "conn-1".into()
        }
    );
    let me = perch_protocol::DeviceId::parse(&node.device_id).unwrap();
    let tokens = TokenStore::new(dir.path());
    assert_eq!(
        tokens.get(&host.url, &me).unwrap().as_deref(),
        Some("tok-1")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tokens.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    conn.event("tick", json!({"ts": 2})).await;
    conn.invoke("inv-1", &node.device_id, "location.get", Some("{}"), 5000)
        .await;
    let result = conn.recv_result().await;
    assert_eq!(result.id, "inv-1");
    assert_eq!(result.node_id, node.device_id);
    assert!(result.ok, "{result:?}");
    let fix = result.payload.unwrap();
    assert_eq!(fix["lat"], 48.20849);
    assert_eq!(fix["lon"], 16.37208);
    assert_eq!(fix["accuracyMeters"], 12.5);
    assert_eq!(fix["isPrecise"], true);
    assert_eq!(fix["source"], "configured");
    assert!(fix["timestamp"].as_str().unwrap().ends_with('Z'));

    // Coarse, with params absent entirely for another command.
    conn.invoke(
        "inv-2",
        &node.device_id,
        "location.get",
        Some(r#"{"desiredAccuracy":"coarse"}"#),
        5000,
    )
    .await;
    let result = conn.recv_result().await;
    assert_eq!(result.payload.as_ref().unwrap()["lat"], 48.21);
    conn.invoke("inv-3", &node.device_id, "device.info", None, 5000)
        .await;
    let result = conn.recv_result().await;
    assert!(result.ok, "{result:?}");

    node.request_stop();
    let close = conn.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), close_code::NORMAL);
    node.join().await.unwrap();
}

/// (2) NOT_PAIRED keeps the socket; approval is followed by a second challenge on the same
/// socket, answered with a fresh signed connect.
#[tokio::test]
async fn not_paired_then_approved_on_the_same_socket() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (caps, _) = test_caps();
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), caps);
    let mut conn = host.accept().await;
    conn.challenge("n-1").await;
    let (id, _) = conn.recv_connect("n-1").await;
    conn.refuse(
        id,
        ErrorShape::new(ErrorCode::NotPaired, "pairing required").with_details(json!({
            "requestId": "req-42", "deviceId": node.device_id, "waitForResolution": true
        })),
    )
    .await;
    let state = node
        .wait_state("AwaitingApproval", |s| {
            matches!(s, NodeState::AwaitingApproval { .. })
        })
        .await;
    assert_eq!(
        state,
        NodeState::AwaitingApproval {
            request_id: "req-42".into(),
            // The challenge carried no host proof, so there is no key to derive a code from.
            verification_code: None,
        }
    );
    // Waiting is not a failure: no reconnect while the user decides.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!host.connects_within(Duration::from_millis(10)).await);

    conn.event(
        "device.pair.resolved",
        json!({"requestId": "req-42", "deviceId": node.device_id, "decision": "approved", "ts": 3}),
    )
    .await;
    conn.challenge("n-2").await;
    let (id, p) = conn.recv_connect("n-2").await;
    assert!(p.auth.is_none());
    conn.hello_ok(id, Some("tok-new")).await;
    node.wait_connected().await;
    let me = perch_protocol::DeviceId::parse(&node.device_id).unwrap();
    assert_eq!(
        TokenStore::new(dir.path())
            .get(&host.url, &me)
            .unwrap()
            .as_deref(),
        Some("tok-new")
    );
    node.request_stop();
    conn.expect_close().await;
    node.join().await.unwrap();
}

/// (3) A rejected pairing request stops the node with PairingRejected.
#[tokio::test]
async fn rejected_pairing_stops_the_node() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (caps, _) = test_caps();
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), caps);
    let mut conn = host.accept().await;
    conn.challenge("n-1").await;
    let (id, _) = conn.recv_connect("n-1").await;
    conn.refuse(
        id,
        ErrorShape::new(ErrorCode::NotPaired, "pairing required").with_details(json!({
            "requestId": "req-7", "deviceId": node.device_id, "waitForResolution": true
        })),
    )
    .await;
    node.wait_state("AwaitingApproval", |s| {
        matches!(s, NodeState::AwaitingApproval { .. })
    })
    .await;
    conn.event(
        "device.pair.resolved",
        json!({"requestId": "req-7", "deviceId": node.device_id, "decision": "rejected", "ts": 3}),
    )
    .await;
    conn.event(
        "connection.closing",
        json!({"error": {"code": "PAIRING_REJECTED", "message": "rejected by the user"}, "reconnect": false}),
    )
    .await;
    conn.close(close_code::POLICY, "pairing rejected").await;
    let mut state = node.state.clone();
    let err = node.join().await.unwrap_err();
    assert!(
        matches!(&err, NodeError::PairingRejected { request_id: Some(r), .. } if r == "req-7"),
        "{err:?}"
    );
    assert!(matches!(
        &*state.borrow_and_update(),
        NodeState::Stopped { error: Some(_) }
    ));
    assert!(!host.connects_within(Duration::from_millis(300)).await);
}

/// The host may announce the rejection only through `connection.closing`.
#[tokio::test]
async fn rejection_by_connection_closing_alone_stops_the_node() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (caps, _) = test_caps();
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), caps);
    let mut conn = host.accept().await;
    conn.challenge("n-1").await;
    let (id, _) = conn.recv_connect("n-1").await;
    conn.refuse(
        id,
        ErrorShape::new(ErrorCode::NotPaired, "pairing required").with_details(json!({
            "requestId": "req-8", "deviceId": node.device_id, "waitForResolution": true
        })),
    )
    .await;
    node.wait_state("AwaitingApproval", |s| {
        matches!(s, NodeState::AwaitingApproval { .. })
    })
    .await;
    conn.event(
        "connection.closing",
        json!({"error": {"code": "PAIRING_REJECTED", "message": "rejected"}, "reconnect": false}),
    )
    .await;
    let err = node.join().await.unwrap_err();
    assert!(
        matches!(&err, NodeError::PairingRejected { request_id: Some(r), .. } if r == "req-8"),
        "{err:?}"
    );
}

/// (4) The host drops the socket: the node reconnects with the same identity and its token.
#[tokio::test]
async fn dropped_socket_reconnects_with_the_same_identity() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (caps, _) = test_caps();
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), caps);
    let mut conn = host.accept().await;
    let first = conn.handshake("n-1", Some("tok-1")).await;
    node.wait_connected().await;
    drop(conn);

    let mut conn = host.accept().await;
    conn.challenge("n-2").await;
    let (id, second) = conn.recv_connect("n-2").await;
    let (d1, d2) = (
        first.device.unwrap(),
        second.device.as_ref().unwrap().clone(),
    );
    assert_eq!(d1.id, d2.id);
    assert_eq!(d1.public_key, d2.public_key);
    assert_eq!(
        second.auth.as_ref().and_then(|a| a.device_token.as_deref()),
        Some("tok-1"),
        "the stored token is presented (and signed) on reconnect"
    );
    conn.hello_ok(id, None).await;
    node.wait_connected().await;

    // A host shutdown is followed by a reconnect too.
    conn.event("shutdown", json!({"reason": "restart"})).await;
    conn.close(close_code::GOING_AWAY, "restart").await;
    drop(conn);
    let mut conn = host.accept().await;
    let third = conn.handshake("n-3", None).await;
    assert_eq!(third.device.unwrap().id, d1.id);
    node.wait_connected().await;
    node.request_stop();
    conn.expect_close().await;
    node.join().await.unwrap();
}

/// (5) A revoked device stops without retrying.
#[tokio::test]
async fn revoked_at_connect_stops_without_retry() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (caps, _) = test_caps();
    let node = RunningNode::start(test_config(&host.url, dir.path()), caps);
    let mut conn = host.accept().await;
    conn.challenge("n-1").await;
    let (id, _) = conn.recv_connect("n-1").await;
    conn.refuse(
        id,
        ErrorShape::new(ErrorCode::Unauthorized, "device revoked")
            .with_details(json!({"reason": "device-revoked"})),
    )
    .await;
    conn.close(close_code::POLICY, "revoked").await;
    let err = node.join().await.unwrap_err();
    assert!(matches!(err, NodeError::Revoked { .. }), "{err:?}");
    assert!(!host.connects_within(Duration::from_millis(300)).await);
}

/// (5b) Revoked while connected: `connection.closing {reconnect:false}` with UNAUTHORIZED.
#[tokio::test]
async fn revoked_while_connected_stops() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (caps, _) = test_caps();
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), caps);
    let mut conn = host.accept().await;
    conn.handshake("n-1", Some("tok")).await;
    node.wait_connected().await;
    conn.event(
        "connection.closing",
        json!({"error": {"code": "UNAUTHORIZED", "message": "device revoked",
                         "details": {"reason": "device-revoked"}}, "reconnect": false}),
    )
    .await;
    conn.close(close_code::POLICY, "revoked").await;
    let err = node.join().await.unwrap_err();
    assert!(matches!(err, NodeError::Revoked { .. }), "{err:?}");
}

/// (6) An unknown command and malformed params are INVALID_REQUEST results.
#[tokio::test]
async fn unknown_command_and_bad_params_are_invalid_request() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (caps, _) = test_caps();
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), caps);
    let mut conn = host.accept().await;
    conn.handshake("n-1", None).await;
    node.wait_connected().await;

    conn.invoke("inv-1", &node.device_id, "camera.snap", None, 5000)
        .await;
    let r = conn.recv_result().await;
    assert_eq!(r.id, "inv-1");
    assert!(!r.ok);
    let e = r.error.unwrap();
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    assert_eq!(e.message, "unknown command camera.snap");

    conn.invoke(
        "inv-2",
        &node.device_id,
        "test.sleep",
        Some("{not json"),
        5000,
    )
    .await;
    let r = conn.recv_result().await;
    assert_eq!(r.error.unwrap().code, ErrorCode::InvalidRequest);

    conn.invoke(
        "inv-3",
        &node.device_id,
        "test.sleep",
        Some(r#"{"ms":"x"}"#),
        5000,
    )
    .await;
    let r = conn.recv_result().await;
    assert_eq!(r.error.unwrap().code, ErrorCode::InvalidRequest);

    // An invoke request missing fields still gets an answer when it has an id.
    conn.event("node.invoke.request", json!({"id": "inv-4"}))
        .await;
    let r = conn.recv_result().await;
    assert_eq!(r.id, "inv-4");
    assert_eq!(r.error.unwrap().code, ErrorCode::InvalidRequest);

    node.request_stop();
    conn.expect_close().await;
    node.join().await.unwrap();
}

/// Invokes run concurrently, time out on their deadline, and are aborted on cancel.
#[tokio::test]
async fn invokes_run_concurrently_time_out_and_cancel() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (caps, dropped) = test_caps();
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), caps);
    let mut conn = host.accept().await;
    conn.handshake("n-1", None).await;
    node.wait_connected().await;
    let me = node.device_id.clone();

    conn.invoke("slow", &me, "test.sleep", Some(r#"{"ms":400}"#), 5000)
        .await;
    conn.invoke("fast", &me, "test.sleep", Some(r#"{"ms":1}"#), 5000)
        .await;
    let first = conn.recv_result().await;
    let second = conn.recv_result().await;
    assert_eq!((first.id.as_str(), second.id.as_str()), ("fast", "slow"));
    assert_eq!(second.payload.unwrap(), json!({"slept": 400}));

    conn.invoke("late", &me, "test.sleep", Some(r#"{"ms":60000}"#), 100)
        .await;
    let r = conn.recv_result().await;
    assert_eq!(r.id, "late");
    assert_eq!(r.error.unwrap().code, ErrorCode::Timeout);

    dropped.store(false, Ordering::SeqCst);
    conn.invoke("doomed", &me, "test.sleep", Some(r#"{"ms":60000}"#), 60000)
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!dropped.load(Ordering::SeqCst), "running before the cancel");
    conn.event(
        "node.invoke.cancel",
        json!({"invokeId": "doomed", "nodeId": me}),
    )
    .await;
    tokio::time::timeout(WAIT, async {
        while !dropped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the cancelled invoke was not aborted");
    // Nothing is sent for a cancelled invoke: the next frame answers the next invoke.
    conn.invoke("after", &me, "test.sleep", Some(r#"{"ms":1}"#), 5000)
        .await;
    assert_eq!(conn.recv_result().await.id, "after");

    node.request_stop();
    conn.expect_close().await;
    node.join().await.unwrap();
}

/// Results over the host's maxPayload become PAYLOAD_TOO_LARGE errors.
#[tokio::test]
async fn oversized_results_become_payload_too_large() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (caps, _) = test_caps();
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), caps);
    let mut conn = host.accept().await;
    conn.challenge("n-1").await;
    let (id, _) = conn.recv_connect("n-1").await;
    conn.hello_ok_with(id, None, 15_000, 2_000).await;
    node.wait_connected().await;
    conn.invoke(
        "small",
        &node.device_id,
        "test.big",
        Some(r#"{"bytes":100}"#),
        5000,
    )
    .await;
    assert!(conn.recv_result().await.ok);
    conn.invoke(
        "big",
        &node.device_id,
        "test.big",
        Some(r#"{"bytes":5000}"#),
        5000,
    )
    .await;
    let r = conn.recv_result().await;
    assert!(!r.ok);
    assert_eq!(r.error.unwrap().code, ErrorCode::PayloadTooLarge);
    node.request_stop();
    conn.expect_close().await;
    node.join().await.unwrap();
}

/// A host silent for two tick intervals is treated as dead: the node reconnects.
#[tokio::test]
async fn silent_host_is_dropped_and_reconnected() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (caps, _) = test_caps();
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), caps);
    let mut conn = host.accept().await;
    conn.challenge("n-1").await;
    let (id, _) = conn.recv_connect("n-1").await;
    conn.hello_ok_with(id, None, 300, 1_000_000).await;
    node.wait_connected().await;
    // Ticks keep it alive well past two intervals...
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        conn.event("tick", json!({"ts": 1})).await;
    }
    assert!(matches!(&*node.state.borrow(), NodeState::Connected { .. }));
    // ...silence does not.
    let close = conn.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), close_code::TICK_TIMEOUT);
    let mut conn = host.accept().await;
    conn.handshake("n-2", None).await;
    node.wait_connected().await;
    node.request_stop();
    conn.expect_close().await;
    node.join().await.unwrap();
}

/// A device-token mismatch drops the token and reconnects at once, without it.
#[tokio::test]
async fn token_mismatch_drops_the_token_and_retries_at_once() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (caps, _) = test_caps();
    let node_for_id = Node::new(test_config(&host.url, dir.path()), Capabilities::new()).unwrap();
    let me = node_for_id.device_id().clone();
    drop(node_for_id);
    let tokens = TokenStore::new(dir.path());
    tokens.set(&host.url, &me, "stale").unwrap();

    let mut node = RunningNode::start(test_config(&host.url, dir.path()), caps);
    let mut conn = host.accept().await;
    conn.challenge("n-1").await;
    let (id, p) = conn.recv_connect("n-1").await;
    assert_eq!(
        p.auth.as_ref().and_then(|a| a.device_token.as_deref()),
        Some("stale")
    );
    conn.refuse(
        id,
        ErrorShape::new(ErrorCode::Unauthorized, "device token mismatch")
            .with_details(json!({"reason": "device-token-mismatch"})),
    )
    .await;
    let mut conn = host.accept().await;
    conn.challenge("n-2").await;
    let (id, p) = conn.recv_connect("n-2").await;
    assert!(p.auth.is_none(), "the stale token is gone");
    assert_eq!(tokens.get(&host.url, &me).unwrap(), None);
    conn.hello_ok(id, Some("fresh")).await;
    node.wait_connected().await;
    assert_eq!(
        tokens.get(&host.url, &me).unwrap().as_deref(),
        Some("fresh")
    );
    node.request_stop();
    conn.expect_close().await;
    node.join().await.unwrap();
}

/// PROTOCOL_MISMATCH stops with the host's range.
#[tokio::test]
async fn protocol_mismatch_stops_with_the_hosts_range() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (caps, _) = test_caps();
    let node = RunningNode::start(test_config(&host.url, dir.path()), caps);
    let mut conn = host.accept().await;
    conn.challenge("n-1").await;
    let (id, _) = conn.recv_connect("n-1").await;
    conn.refuse(
        id,
        ErrorShape::new(ErrorCode::ProtocolMismatch, "upgrade the node").with_details(
            json!({"clientMinProtocol": 4, "clientMaxProtocol": 4, "minProtocol": 5, "maxProtocol": 6}),
        ),
    )
    .await;
    match node.join().await.unwrap_err() {
        NodeError::ProtocolMismatch {
            node_protocol,
            host_min,
            host_max,
            ..
        } => {
            assert_eq!(node_protocol, perch_protocol::PROTOCOL_VERSION);
            assert_eq!((host_min, host_max), (Some(5), Some(6)));
        }
        other => panic!("{other:?}"),
    }
}

/// Any other refusal is retried with backoff, and the state says why.
#[tokio::test]
async fn other_refusals_are_retried_with_backoff() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (caps, _) = test_caps();
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), caps);
    let mut conn = host.accept().await;
    conn.challenge("n-1").await;
    let (id, _) = conn.recv_connect("n-1").await;
    conn.refuse(id, ErrorShape::new(ErrorCode::Unavailable, "starting up"))
        .await;
    let state = node
        .wait_state("Backoff", |s| matches!(s, NodeState::Backoff { .. }))
        .await;
    let NodeState::Backoff {
        retry_in_ms,
        last_error,
    } = state
    else {
        unreachable!()
    };
    assert!((20..=200).contains(&retry_in_ms), "{retry_in_ms}");
    assert!(last_error.contains("UNAVAILABLE"), "{last_error}");
    let mut conn = host.accept().await;
    conn.handshake("n-2", None).await;
    node.wait_connected().await;
    node.request_stop();
    conn.expect_close().await;
    node.join().await.unwrap();
}

/// Stopping while no host is reachable returns promptly.
#[tokio::test]
async fn stop_during_backoff_returns_ok() {
    let host = Host::start().await;
    let url = host.url.clone();
    drop(host);
    let dir = tempfile::tempdir().unwrap();
    let (caps, _) = test_caps();
    let mut node = RunningNode::start(test_config(&url, dir.path()), caps);
    node.wait_state("Backoff", |s| matches!(s, NodeState::Backoff { .. }))
        .await;
    node.request_stop();
    node.join().await.unwrap();
}

/// (7) The identity is persisted 0600 and reloaded; a corrupt file is an error, not a new key.
#[tokio::test]
async fn identity_is_persisted_and_corruption_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config("ws://127.0.0.1:9", dir.path());
    let first = Node::new(config.clone(), Capabilities::new()).unwrap();
    let path = dir.path().join("node-identity.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let second = Node::new(config.clone(), Capabilities::new()).unwrap();
    assert_eq!(first.device_id(), second.device_id());

    std::fs::write(&path, "{ this is not an identity").unwrap();
    let err = Node::new(config, Capabilities::new()).unwrap_err();
    assert!(
        matches!(err, NodeError::Store(StoreError::CorruptIdentity { .. })),
        "{err:?}"
    );
    assert!(err.to_string().contains("node-identity.json"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{ this is not an identity"
    );
}

/// Frames the node does not expect do not disturb it.
#[tokio::test]
async fn stray_frames_are_tolerated() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (caps, _) = test_caps();
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), caps);
    let mut conn = host.accept().await;
    conn.event("something.new", json!({})).await;
    conn.handshake("n-1", None).await;
    node.wait_connected().await;
    conn.ws
        .send(tokio_tungstenite::tungstenite::Message::text("not json"))
        .await
        .unwrap();
    conn.event(
        "node.invoke.cancel",
        json!({"invokeId": "nope", "nodeId": "x"}),
    )
    .await;
    conn.send(Frame::req("h-1", "status", None)).await;
    match conn.recv().await {
        Frame::Res(r) => assert_eq!(r.result.unwrap_err().code, ErrorCode::UnknownMethod),
        other => panic!("{other:?}"),
    }
    conn.invoke(
        "ok",
        &node.device_id,
        "test.sleep",
        Some(r#"{"ms":1}"#),
        5000,
    )
    .await;
    assert!(conn.recv_result().await.ok);
    node.request_stop();
    conn.expect_close().await;
    node.join().await.unwrap();
}

/// A screen command: answers only while the app is on screen.
struct Screen;

impl CapabilityHandler for Screen {
    fn commands(&self) -> Vec<String> {
        vec!["test.screen".into(), "test.any".into()]
    }
    fn caps(&self) -> Vec<String> {
        vec!["test".into()]
    }
    fn needs_foreground(&self, command: &str) -> bool {
        command == "test.screen"
    }
    fn invoke(&self, command: &str, _: Value) -> BoxFuture<'static, Result<Value, CommandError>> {
        let command = command.to_string();
        Box::pin(async move { Ok(json!({"ran": command})) })
    }
}

/// In the background a screen command is refused with NODE_BACKGROUND_UNAVAILABLE (other
/// commands still run); back on screen it runs, on the same connection: the phase change
/// never forced a reconnect.
#[tokio::test]
async fn screen_commands_wait_for_the_foreground_on_the_same_connection() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let caps = Capabilities::new().with(Arc::new(Screen)).unwrap();
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), caps);
    let mut conn = host.accept().await;
    conn.handshake("n-1", None).await;
    node.wait_connected().await;
    let me = node.device_id.clone();

    node.lifecycle.set_phase(perch_node::AppPhase::Background);
    conn.invoke("bg-screen", &me, "test.screen", None, 5000)
        .await;
    let r = conn.recv_result().await;
    let e = r.error.unwrap();
    assert_eq!(e.code, ErrorCode::NodeBackgroundUnavailable);
    assert!(
        e.message.starts_with("NODE_BACKGROUND_UNAVAILABLE:"),
        "{}",
        e.message
    );
    conn.invoke("bg-any", &me, "test.any", None, 5000).await;
    assert_eq!(
        conn.recv_result().await.payload.unwrap(),
        json!({"ran": "test.any"})
    );

    node.lifecycle.set_phase(perch_node::AppPhase::Foreground);
    conn.invoke("fg-screen", &me, "test.screen", None, 5000)
        .await;
    let r = conn.recv_result().await;
    assert_eq!(r.id, "fg-screen");
    assert_eq!(r.payload.unwrap(), json!({"ran": "test.screen"}));
    assert!(
        !host.connects_within(Duration::from_millis(300)).await,
        "coming back to the foreground reconnected"
    );

    node.request_stop();
    conn.expect_close().await;
    node.join().await.unwrap();
}

/// Returning to the foreground ends a reconnect wait at once, instead of its backoff.
#[tokio::test]
async fn coming_back_to_the_foreground_reconnects_now() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    // A host may ask for a long pause; the test's usual 200 ms cap would hide it.
    let mut config = test_config(&host.url, dir.path());
    config.backoff_cap = Duration::from_secs(30);
    let mut node = RunningNode::start(config, Capabilities::new());
    let mut conn = host.accept().await;
    conn.handshake("n-1", None).await;
    node.wait_connected().await;
    node.lifecycle.set_phase(perch_node::AppPhase::Background);
    // The host drops the connection, then asks the node to stay away for 20 s...
    drop(conn);
    let mut again = host.accept().await;
    again.challenge("n-2").await;
    let (id, _) = again.recv_connect("n-2").await;
    let mut busy = ErrorShape::new(ErrorCode::Unavailable, "busy");
    busy.retryable = Some(true);
    busy.retry_after_ms = Some(20_000);
    again.refuse(id, busy).await;
    again.expect_close().await;
    node.wait_state(
        "a long backoff",
        |s| matches!(s, NodeState::Backoff { retry_in_ms, .. } if *retry_in_ms >= 10_000),
    )
    .await;
    // ...while the app is away. It comes back: the node tries now, not in 20 s.
    node.lifecycle.set_phase(perch_node::AppPhase::Foreground);
    assert!(host.connects_within(Duration::from_secs(2)).await);
    node.request_stop();
    let _ = node.join().await;
}
