//! Invokes for a node that is briefly offline wait for it until their deadline.

mod common;

use std::time::{Duration, Instant};

use serde_json::json;

use common::*;
use perch_protocol::DeviceIdentity;

#[tokio::test]
async fn a_call_waits_for_a_node_that_comes_back() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[50; 32]);
    let (n, token) = paired_node(&host, &id, &["device.info"]).await;
    drop(n);
    let mut op = operator(&host).await;
    // Wait until the host has noticed the disconnect.
    loop {
        let list = op.request("node.list", json!({})).await.unwrap();
        if list[0]["online"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    op.send(json!({"type": "req", "id": "q", "method": "node.invoke",
                   "params": {"nodeId": "Test Node", "command": "device.info",
                              "idempotencyKey": "q", "timeoutMs": 5000}}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The node comes back; the queued call reaches it.
    let mut back = Raw::open(&host).await;
    let nonce = back.nonce.clone();
    back.request(
        "connect",
        node_connect_params(&id, &nonce, now_ms(), Some(&token), &["device.info"]),
    )
    .await
    .unwrap();
    let req = back.event("node.invoke.request").await;
    assert!(
        req["timeoutMs"].as_u64().unwrap() < 5000,
        "only the time left is forwarded"
    );
    back.request(
        "node.invoke.result",
        json!({"id": req["id"], "nodeId": id.device_id().as_str(),
                                               "ok": true, "payload": {"late": true}}),
    )
    .await
    .unwrap();
    let res = op.response("q").await.unwrap();
    assert_eq!(res["payload"]["late"], true);
}

#[tokio::test]
async fn a_queued_call_fails_with_not_connected_at_its_deadline() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[51; 32]);
    let (n, _) = paired_node(&host, &id, &["device.info"]).await;
    drop(n);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut op = operator(&host).await;
    let started = Instant::now();
    let err = op
        .request(
            "node.invoke",
            json!({"nodeId": "Test Node", "command": "device.info",
                                       "idempotencyKey": "d", "timeoutMs": 400}),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "NODE_NOT_CONNECTED");
    assert_eq!(err["details"]["queued"], true);
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "it waited for the deadline"
    );
    // Commands the node never advertised are refused at once even while it is offline.
    let err = op
        .request(
            "node.invoke",
            json!({"nodeId": "Test Node", "command": "camera.snap",
                                       "idempotencyKey": "e", "timeoutMs": 5000}),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "COMMAND_NOT_ALLOWED");
}

#[tokio::test]
async fn the_queue_is_bounded_per_node() {
    let host = start_host(|c| c.max_queued_invokes = 2).await;
    let id = DeviceIdentity::from_seed(&[52; 32]);
    let (n, _) = paired_node(&host, &id, &["device.info"]).await;
    drop(n);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut op = operator(&host).await;
    for k in ["a", "b"] {
        op.send(json!({"type": "req", "id": k, "method": "node.invoke",
                       "params": {"nodeId": "Test Node", "command": "device.info",
                                  "idempotencyKey": k, "timeoutMs": 3000}}))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let err = op
        .request(
            "node.invoke",
            json!({"nodeId": "Test Node", "command": "device.info",
                                       "idempotencyKey": "c", "timeoutMs": 3000}),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "NODE_NOT_CONNECTED");
    assert_eq!(err["details"]["queueFull"], true);
    assert_eq!(err["details"]["waiting"], 2);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a full queue fails at once"
    );
}

#[tokio::test]
async fn queueing_can_be_switched_off() {
    let host = start_host(|c| c.queue_offline_invokes = false).await;
    let id = DeviceIdentity::from_seed(&[53; 32]);
    let (n, _) = paired_node(&host, &id, &["device.info"]).await;
    drop(n);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut op = operator(&host).await;
    let started = Instant::now();
    let err = op
        .request(
            "node.invoke",
            json!({"nodeId": "Test Node", "command": "device.info",
                                       "idempotencyKey": "x", "timeoutMs": 5000}),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "NODE_NOT_CONNECTED");
    assert!(started.elapsed() < Duration::from_secs(1));
}
