//! `node.status` tells operators when a node comes and goes, and whether it was in use: a node
//! that answered a command (or left with one running) carries `lastInvokeMs`.

mod common;

use serde_json::json;

use common::*;
use perch_protocol::DeviceIdentity;

/// Connects an already paired node again with its token.
async fn reconnect(host: &TestHost, id: &DeviceIdentity, token: &str) -> Raw {
    let mut n = Raw::open(host).await;
    let nonce = n.nonce.clone();
    n.request(
        "connect",
        node_connect_params(id, &nonce, now_ms(), Some(token), &["device.info"]),
    )
    .await
    .unwrap();
    n
}

#[tokio::test]
async fn an_idle_node_leaves_without_a_last_invoke() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[61; 32]);
    let (n, _token) = paired_node(&host, &id, &["device.info"]).await;
    let mut watcher = operator(&host).await;
    drop(n);
    let status = watcher.event("node.status").await;
    assert_eq!(status["online"], false, "{status}");
    assert!(status.get("lastInvokeMs").is_none(), "{status}");
}

#[tokio::test]
async fn a_node_that_answered_or_was_busy_leaves_marked_in_use() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[62; 32]);
    let (mut n, token) = paired_node(&host, &id, &["device.info"]).await;
    let mut op = operator(&host).await;
    let before = now_ms();
    op.send(json!({"type": "req", "id": "a", "method": "node.invoke",
                   "params": {"nodeId": "Test Node", "command": "device.info",
                              "idempotencyKey": "a"}}))
        .await;
    let req = n.event("node.invoke.request").await;
    n.request(
        "node.invoke.result",
        json!({"id": req["id"], "nodeId": id.device_id().as_str(), "ok": true, "payload": {}}),
    )
    .await
    .unwrap();
    op.response("a").await.unwrap();
    let mut watcher = operator(&host).await;
    drop(n);
    let status = watcher.event("node.status").await;
    assert_eq!(status["online"], false, "{status}");
    let served = status["lastInvokeMs"].as_i64().expect("lastInvokeMs");
    assert!(served >= before && served <= now_ms(), "{status}");

    // Back online it still says when it last served; then it leaves mid-command.
    let mut n = reconnect(&host, &id, &token).await;
    let online = watcher.event("node.status").await;
    assert_eq!(online["online"], true, "{online}");
    assert_eq!(online["lastInvokeMs"].as_i64(), Some(served), "{online}");
    op.send(json!({"type": "req", "id": "b", "method": "node.invoke",
                   "params": {"nodeId": "Test Node", "command": "device.info",
                              "idempotencyKey": "b"}}))
        .await;
    n.event("node.invoke.request").await;
    drop(n);
    let left = watcher.event("node.status").await;
    assert_eq!(left["online"], false, "{left}");
    assert!(
        left["lastInvokeMs"].as_i64().expect("lastInvokeMs") >= served,
        "{left}"
    );
    let err = op.response("b").await.unwrap_err();
    assert_eq!(err["code"], "NODE_NOT_CONNECTED", "{err}");
}
