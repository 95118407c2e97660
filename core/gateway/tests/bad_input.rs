//! Every kind of bad input gets a structured error, loses nothing, and leaves the host
//! serving everyone else.

mod common;

use std::time::{Duration, Instant};

use serde_json::json;

use common::*;
use perch_protocol::DeviceIdentity;
use perch_protocol::frame::Frame;

/// After a bad client, a fresh operator still gets answers.
async fn host_still_serves(host: &TestHost) {
    let mut op = operator(host).await;
    let status = op.request("status", json!({})).await.unwrap();
    assert_eq!(status["protocol"], 4);
}

#[tokio::test]
async fn malformed_json_before_connect_is_refused_and_closed() {
    let host = start_host(|_| {}).await;
    let mut r = Raw::open(&host).await;
    r.send_text("{this is not json").await;
    let closing = r.event("connection.closing").await;
    assert_eq!(closing["error"]["code"], "INVALID_REQUEST");
    assert!(
        closing["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed JSON")
    );
    assert_eq!(r.closed().await, Some(1008));
    host_still_serves(&host).await;
}

#[tokio::test]
async fn malformed_json_after_connect_keeps_the_connection() {
    let host = start_host(|_| {}).await;
    let mut op = operator(&host).await;
    op.send_text("[[[").await;
    let ev = op.event("protocol.error").await;
    assert_eq!(ev["error"]["code"], "INVALID_REQUEST");
    // The same connection still works.
    assert!(op.request("status", json!({})).await.is_ok());
}

#[tokio::test]
async fn unknown_frame_type_gets_an_error() {
    let host = start_host(|_| {}).await;
    let mut op = operator(&host).await;
    op.send(json!({"type": "bogus", "id": "x1"})).await;
    let err = op.response("x1").await.unwrap_err();
    assert_eq!(err["code"], "INVALID_REQUEST");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("unknown frame type")
    );
    assert!(op.request("status", json!({})).await.is_ok());
}

#[tokio::test]
async fn any_frame_before_connect_is_refused() {
    let host = start_host(|_| {}).await;
    let mut r = Raw::open(&host).await;
    r.send(json!({"type": "req", "id": "s1", "method": "status"}))
        .await;
    let err = r.response("s1").await.unwrap_err();
    assert_eq!(err["code"], "INVALID_REQUEST");
    assert_eq!(r.closed().await, Some(1008));

    let mut r = Raw::open(&host).await;
    r.send(json!({"type": "event", "event": "tick"})).await;
    let closing = r.event("connection.closing").await;
    assert_eq!(closing["error"]["code"], "INVALID_REQUEST");
    host_still_serves(&host).await;
}

#[tokio::test]
async fn oversized_frame_before_handshake_is_refused() {
    let host = start_host(|_| {}).await;
    let mut r = Raw::open(&host).await;
    let big = format!(
        r#"{{"type":"req","id":"b","method":"connect","params":{{"pad":"{}"}}}}"#,
        "x".repeat(70 * 1024)
    );
    r.send_text(&big).await;
    let closing = r.event("connection.closing").await;
    assert_eq!(closing["error"]["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(closing["error"]["details"]["limit"], 64 * 1024);
    assert_eq!(r.closed().await, Some(1009));
    host_still_serves(&host).await;
}

#[tokio::test]
async fn oversized_frame_after_handshake_respects_max_payload() {
    let host = start_host(|c| c.max_payload = 128 * 1024).await;
    let mut op = operator(&host).await;
    let ok = format!(
        r#"{{"type":"req","id":"m1","method":"status","params":{{"pad":"{}"}}}}"#,
        "x".repeat(100 * 1024)
    );
    op.send_text(&ok).await;
    assert!(
        op.response("m1").await.is_ok(),
        "100 KiB is within maxPayload"
    );
    let big = format!(
        r#"{{"type":"req","id":"m2","method":"status","params":{{"pad":"{}"}}}}"#,
        "x".repeat(150 * 1024)
    );
    op.send_text(&big).await;
    let ev = op.event("protocol.error").await;
    assert_eq!(ev["error"]["code"], "PAYLOAD_TOO_LARGE");
    assert!(op.request("status", json!({})).await.is_ok());
}

#[tokio::test]
async fn wrong_signature_is_refused() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[3; 32]);
    let mut r = Raw::open(&host).await;
    let nonce = r.nonce.clone();
    let mut p = node_connect_params(&id, &nonce, now_ms(), None, &[]);
    let other = DeviceIdentity::from_seed(&[4; 32]);
    p["device"]["signature"] = json!(other.sign_b64("something else"));
    let err = r.request("connect", p).await.unwrap_err();
    assert_eq!(err["code"], "DEVICE_AUTH_SIGNATURE_INVALID");
    assert_eq!(r.closed().await, Some(1008));
    host_still_serves(&host).await;
}

#[tokio::test]
async fn replayed_connect_from_another_connection_is_refused() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[5; 32]);
    let first = Raw::open(&host).await;
    // A connect signed for the first connection's challenge, replayed on a second one.
    let stolen = node_connect_params(&id, &first.nonce, now_ms(), None, &[]);
    let mut second = Raw::open(&host).await;
    let err = second.request("connect", stolen).await.unwrap_err();
    assert_eq!(err["code"], "DEVICE_AUTH_NONCE_MISMATCH");
    assert_eq!(second.closed().await, Some(1008));
    drop(first);
    host_still_serves(&host).await;
}

#[tokio::test]
async fn nonce_cannot_be_used_twice_on_one_connection() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[6; 32]);
    let mut r = Raw::open(&host).await;
    let nonce = r.nonce.clone();
    let err = r
        .request(
            "connect",
            node_connect_params(&id, &nonce, now_ms(), None, &[]),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "NOT_PAIRED");
    // While waiting, a second connect with the spent nonce gets nowhere.
    let err = r
        .request(
            "connect",
            node_connect_params(&id, &nonce, now_ms(), None, &[]),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "NOT_PAIRED");
}

#[tokio::test]
async fn stale_signed_at_is_refused() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[7; 32]);
    let mut r = Raw::open(&host).await;
    let nonce = r.nonce.clone();
    let p = node_connect_params(&id, &nonce, now_ms() - 10 * 60 * 1000, None, &[]);
    let err = r.request("connect", p).await.unwrap_err();
    assert_eq!(err["code"], "DEVICE_AUTH_SIGNATURE_EXPIRED");
    host_still_serves(&host).await;
}

#[tokio::test]
async fn protocol_mismatch_is_structured() {
    let host = start_host(|_| {}).await;
    let mut r = Raw::open(&host).await;
    let mut p = operator_connect_params(&host.token);
    p["minProtocol"] = json!(1);
    p["maxProtocol"] = json!(2);
    let err = r.request("connect", p).await.unwrap_err();
    assert_eq!(err["code"], "PROTOCOL_MISMATCH");
    assert_eq!(err["details"]["expectedProtocol"], 4);
    assert_eq!(r.closed().await, Some(1002));
}

#[tokio::test]
async fn wrong_operator_token_is_unauthorized() {
    let host = start_host(|_| {}).await;
    let mut r = Raw::open(&host).await;
    let err = r
        .request("connect", operator_connect_params("not-the-token-at-all"))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "UNAUTHORIZED");
    assert!(
        !err.to_string().contains(&host.token),
        "the real token must never be echoed"
    );
}

#[tokio::test]
async fn unknown_method_and_wrong_role() {
    let host = start_host(|_| {}).await;
    let mut op = operator(&host).await;
    let err = op.request("no.such.method", json!({})).await.unwrap_err();
    assert_eq!(err["code"], "UNKNOWN_METHOD");
    let err = op
        .request("node.invoke.result", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "FORBIDDEN");
    let err = op
        .request("node.invoke", json!({"nodeId": 5}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "INVALID_REQUEST");
}

#[tokio::test]
async fn invoke_for_unknown_node_or_command() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[8; 32]);
    let (_node, _token) = paired_node(&host, &id, &["device.info"]).await;
    let mut op = operator(&host).await;
    let err = op
        .request(
            "node.invoke",
            json!({"nodeId": "ffff", "command": "device.info", "idempotencyKey": "k1"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "NODE_NOT_FOUND");
    let err = op
        .request(
            "node.invoke",
            json!({"nodeId": "Test Node", "command": "camera.snap", "idempotencyKey": "k2"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "COMMAND_NOT_ALLOWED");
    assert_eq!(err["details"]["reason"], "not-advertised");
}

#[tokio::test]
async fn host_policy_refuses_advertised_command_without_reaching_the_node() {
    let host = start_host(|c| {
        c.commands = perch_gateway::config::CommandPolicy::new(&[], &["device.info".into()]);
    })
    .await;
    let id = DeviceIdentity::from_seed(&[9; 32]);
    let (mut node, _token) = paired_node(&host, &id, &["device.info", "system.run"]).await;
    let mut op = operator(&host).await;
    for cmd in ["device.info", "system.run"] {
        let err = op
            .request(
                "node.invoke",
                json!({"nodeId": "Test Node", "command": cmd, "idempotencyKey": cmd}),
            )
            .await
            .unwrap_err();
        assert_eq!(err["code"], "COMMAND_NOT_ALLOWED", "{cmd}");
        assert_eq!(err["details"]["reason"], "host-policy");
    }
    // Nothing reached the node: within a short wait it sees no invoke request.
    let got = tokio::time::timeout(
        Duration::from_millis(300),
        node.event("node.invoke.request"),
    )
    .await;
    assert!(got.is_err(), "the node must not receive a refused command");
}

#[tokio::test]
async fn node_disconnecting_mid_invoke_fails_at_once() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[10; 32]);
    let (mut node, _token) = paired_node(&host, &id, &["device.info"]).await;
    let mut op = operator(&host).await;
    op.send(json!({"type": "req", "id": "inv", "method": "node.invoke",
                   "params": {"nodeId": "Test Node", "command": "device.info",
                              "idempotencyKey": "mid", "timeoutMs": 20000}}))
        .await;
    node.event("node.invoke.request").await;
    let started = Instant::now();
    drop(node);
    let err = op.response("inv").await.unwrap_err();
    assert_eq!(err["code"], "NODE_NOT_CONNECTED");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "must fail on disconnect, not wait for the 20 s deadline"
    );
    host_still_serves(&host).await;
}

#[tokio::test]
async fn invoke_times_out_with_timeout_code() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[11; 32]);
    let (mut node, _token) = paired_node(&host, &id, &["device.info"]).await;
    let mut op = operator(&host).await;
    let err = op
        .request(
            "node.invoke",
            json!({"nodeId": "Test Node", "command": "device.info",
                                       "idempotencyKey": "slow", "timeoutMs": 200}),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "TIMEOUT");
    // The node was told to stop.
    let cancel = node.event("node.invoke.cancel").await;
    assert!(cancel["invokeId"].is_string());
}

#[tokio::test]
async fn binary_frames_are_refused_with_a_reason() {
    use futures_util::SinkExt;
    let host = start_host(|_| {}).await;
    let mut op = operator(&host).await;
    op.ws
        .send(tokio_tungstenite::tungstenite::Message::Binary(
            vec![1, 2, 3].into(),
        ))
        .await
        .unwrap();
    let ev = op.event("protocol.error").await;
    assert_eq!(ev["error"]["code"], "INVALID_REQUEST");
    let _ = Frame::parse("{}");
}
