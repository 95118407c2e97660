//! Pairing, approval on the open connection, token reuse, rejection, and revocation.

mod common;

use serde_json::json;

use common::*;
use perch_protocol::DeviceIdentity;

#[tokio::test]
async fn retries_keep_the_same_request_id() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[20; 32]);
    let mut ids = vec![];
    for _ in 0..3 {
        let mut n = Raw::open(&host).await;
        let nonce = n.nonce.clone();
        let err = n
            .request(
                "connect",
                node_connect_params(&id, &nonce, now_ms(), None, &[]),
            )
            .await
            .unwrap_err();
        ids.push(err["details"]["requestId"].as_str().unwrap().to_string());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    let mut op = operator(&host).await;
    let list = op.request("device.pair.list", json!({})).await.unwrap();
    assert_eq!(list["pending"].as_array().unwrap().len(), 1);
    let p = &list["pending"][0];
    for key in [
        "requestId",
        "deviceId",
        "displayName",
        "platform",
        "role",
        "requestedAtMs",
        "verificationCode",
    ] {
        assert!(!p[key].is_null(), "pending entry lacks {key}: {p}");
    }
}

#[tokio::test]
async fn operators_hear_about_requests() {
    let host = start_host(|_| {}).await;
    let mut op = operator(&host).await;
    let id = DeviceIdentity::from_seed(&[21; 32]);
    let mut n = Raw::open(&host).await;
    let nonce = n.nonce.clone();
    let _ = n
        .request(
            "connect",
            node_connect_params(&id, &nonce, now_ms(), None, &[]),
        )
        .await;
    let ev = op.event("device.pair.requested").await;
    assert_eq!(ev["deviceId"], id.device_id().as_str());
    assert_eq!(ev["displayName"], "Test Node");
    // The code the device computes from the key the host proved in its challenge and its own.
    let expected =
        perch_protocol::verification::verification_code(&n.host_key, &id.public_key_b64()).unwrap();
    assert_eq!(ev["verificationCode"], expected.as_str());
    let list = op.request("device.pair.list", json!({})).await.unwrap();
    assert_eq!(list["pending"][0]["verificationCode"], expected.as_str());
}

#[tokio::test]
async fn approved_node_reconnects_with_its_token_without_new_approval() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[22; 32]);
    let (n, token) = paired_node(&host, &id, &["device.info"]).await;
    drop(n);
    let mut again = Raw::open(&host).await;
    let nonce = again.nonce.clone();
    let hello = again
        .request(
            "connect",
            node_connect_params(&id, &nonce, now_ms(), Some(&token), &["device.info"]),
        )
        .await
        .unwrap();
    assert_eq!(hello["type"], "hello-ok");
    assert!(
        hello["auth"]["deviceToken"].is_null(),
        "token still valid: none reissued"
    );
    assert_eq!(hello["policy"]["tickIntervalMs"], 15000);
}

#[tokio::test]
async fn wrong_device_token_is_refused_with_reason() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[23; 32]);
    let (n, _token) = paired_node(&host, &id, &[]).await;
    drop(n);
    let mut again = Raw::open(&host).await;
    let nonce = again.nonce.clone();
    let err = again
        .request(
            "connect",
            node_connect_params(&id, &nonce, now_ms(), Some("forged"), &[]),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "UNAUTHORIZED");
    assert_eq!(err["details"]["reason"], "device-token-mismatch");
}

#[tokio::test]
async fn rejection_closes_the_waiting_connection() {
    let host = start_host(|_| {}).await;
    let mut op = operator(&host).await;
    let id = DeviceIdentity::from_seed(&[24; 32]);
    let mut n = Raw::open(&host).await;
    let nonce = n.nonce.clone();
    let err = n
        .request(
            "connect",
            node_connect_params(&id, &nonce, now_ms(), None, &[]),
        )
        .await
        .unwrap_err();
    let rid = err["details"]["requestId"].as_str().unwrap().to_string();
    let r = op
        .request("device.pair.reject", json!({"requestId": rid}))
        .await
        .unwrap();
    assert_eq!(r["decision"], "rejected");
    let closing = n.event("connection.closing").await;
    assert_eq!(closing["error"]["code"], "PAIRING_REJECTED");
    assert_eq!(closing["reconnect"], false);
    assert_eq!(n.closed().await, Some(1008));
    // Deciding twice is a clear error.
    let err = op
        .request("device.pair.approve", json!({"requestId": rid}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "INVALID_REQUEST");
    let err = op
        .request("device.pair.approve", json!({"requestId": "nope"}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "NOT_FOUND");
}

#[tokio::test]
async fn revocation_closes_at_once_and_locks_out() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[25; 32]);
    let (mut n, token) = paired_node(&host, &id, &["device.info"]).await;
    let mut op = operator(&host).await;
    let r = op
        .request(
            "device.pair.revoke",
            json!({"deviceId": &id.device_id().as_str()[..10]}),
        )
        .await
        .unwrap();
    assert_eq!(r["closedConnections"], 1);
    let closing = n.event("connection.closing").await;
    assert_eq!(closing["error"]["details"]["reason"], "device-revoked");
    assert_eq!(n.closed().await, Some(1008));
    for tok in [Some(token.as_str()), None] {
        let mut again = Raw::open(&host).await;
        let nonce = again.nonce.clone();
        let err = again
            .request(
                "connect",
                node_connect_params(&id, &nonce, now_ms(), tok, &[]),
            )
            .await
            .unwrap_err();
        assert_eq!(err["code"], "UNAUTHORIZED");
        assert_eq!(err["details"]["reason"], "device-revoked");
    }
    let list = op.request("node.list", json!({})).await.unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        0,
        "revoked nodes leave the node list"
    );
}

#[tokio::test]
async fn invoke_round_trip_and_idempotency() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[26; 32]);
    let (mut n, _token) = paired_node(&host, &id, &["device.info"]).await;
    let mut op = operator(&host).await;
    let params = json!({"nodeId": &id.device_id().as_str()[..8], "command": "device.info",
                        "params": {"x": 1}, "idempotencyKey": "same"});
    op.send(json!({"type": "req", "id": "a", "method": "node.invoke", "params": params.clone()}))
        .await;
    let req = n.event("node.invoke.request").await;
    assert_eq!(req["command"], "device.info");
    assert_eq!(req["paramsJSON"], "{\"x\":1}");
    let invoke_id = req["id"].as_str().unwrap().to_string();
    n.request(
        "node.invoke.result",
        json!({"id": invoke_id, "nodeId": id.device_id().as_str(),
                                            "ok": true, "payload": {"deviceName": "box"}}),
    )
    .await
    .unwrap();
    let res = op.response("a").await.unwrap();
    assert_eq!(res["payload"]["deviceName"], "box");
    // The same key replays the outcome without asking the node again.
    let again = op.request("node.invoke", params.clone()).await.unwrap();
    assert_eq!(again["payload"]["deviceName"], "box");
    // The same key with other params is a clear error.
    let mut other = params;
    other["params"] = json!({"x": 2});
    let err = op.request("node.invoke", other).await.unwrap_err();
    assert_eq!(err["code"], "INVALID_REQUEST");
    // A node error passes through with its code.
    op.send(json!({"type": "req", "id": "b", "method": "node.invoke",
                   "params": {"nodeId": "Test Node", "command": "device.info", "idempotencyKey": "k2"}}))
        .await;
    let req = n.event("node.invoke.request").await;
    n.request("node.invoke.result", json!({"id": req["id"], "nodeId": id.device_id().as_str(),
                                            "ok": false, "error": {"code": "LOCATION_UNAVAILABLE", "message": "none"}}))
        .await
        .unwrap();
    let err = op.response("b").await.unwrap_err();
    assert_eq!(err["code"], "LOCATION_UNAVAILABLE");
    // A node cannot answer an invoke that is not its own.
    let err = n
        .request(
            "node.invoke.result",
            json!({"id": "forged", "nodeId": id.device_id().as_str(), "ok": true}),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "INVALID_REQUEST");
}

#[tokio::test]
async fn silent_peer_is_closed_after_two_ticks() {
    let host = start_host(|c| c.tick_interval_ms = 200).await;
    // A raw socket that never reads stops answering pings; tungstenite answers pings only
    // while reading, so simply not reading makes us silent.
    let r = Raw::open(&host).await;
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let mut r = r;
    assert_eq!(r.closed().await, Some(4000));
}

#[tokio::test]
async fn retryable_failures_are_not_replayed_but_successes_survive_the_node() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[27; 32]);
    let (mut n, _token) = paired_node(&host, &id, &["device.info"]).await;
    let mut op = operator(&host).await;
    let call = json!({"nodeId": "Test Node", "command": "device.info", "idempotencyKey": "again", "timeoutMs": 150});
    let err = op.request("node.invoke", call.clone()).await.unwrap_err();
    assert_eq!(err["code"], "TIMEOUT");
    n.event("node.invoke.request").await;
    // Same key after a timeout: the command runs again.
    op.send(json!({"type": "req", "id": "r2", "method": "node.invoke", "params": call}))
        .await;
    let req = n.event("node.invoke.request").await;
    n.request(
        "node.invoke.result",
        json!({"id": req["id"], "nodeId": id.device_id().as_str(),
                                            "ok": true, "payload": {"v": 2}}),
    )
    .await
    .unwrap();
    assert_eq!(op.response("r2").await.unwrap()["payload"]["v"], 2);
    // The node goes away; the finished call still replays under its key.
    drop(n);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let replay = op
        .request(
            "node.invoke",
            json!({"nodeId": "Test Node", "command": "device.info",
                                       "idempotencyKey": "again", "timeoutMs": 150}),
        )
        .await
        .unwrap();
    assert_eq!(replay["payload"]["v"], 2);
    let err = op
        .request(
            "node.invoke",
            json!({"nodeId": "Test Node", "command": "device.info", "idempotencyKey": "new", "timeoutMs": 200}),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "NODE_NOT_CONNECTED");
}

#[tokio::test]
async fn openclaw_style_error_prefix_is_understood() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[28; 32]);
    let (mut n, _token) = paired_node(&host, &id, &["location.get"]).await;
    let mut op = operator(&host).await;
    op.send(json!({"type": "req", "id": "p", "method": "node.invoke",
                   "params": {"nodeId": "Test Node", "command": "location.get", "idempotencyKey": "p"}}))
        .await;
    let req = n.event("node.invoke.request").await;
    n.request("node.invoke.result", json!({"id": req["id"], "nodeId": id.device_id().as_str(), "ok": false,
                                            "error": {"message": "LOCATION_DISABLED: enable Location in Settings"}}))
        .await
        .unwrap();
    let err = op.response("p").await.unwrap_err();
    assert_eq!(err["code"], "LOCATION_DISABLED");
    assert_eq!(err["message"], "enable Location in Settings");
}

#[tokio::test]
async fn cancel_after_the_answer_sends_nothing_more() {
    let host = start_host(|_| {}).await;
    let mut op = operator(&host).await;
    op.send(json!({"type": "req", "id": "s", "method": "status"}))
        .await;
    op.response("s").await.unwrap();
    op.send(json!({"type": "cancel", "id": "s"})).await;
    // The next answer on the socket is for the next request, not a CANCELLED for "s".
    let v = op.request("status", json!({})).await.unwrap();
    assert_eq!(v["protocol"], 4);
}

#[tokio::test]
async fn cancel_stops_a_running_invoke() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[29; 32]);
    let (mut n, _token) = paired_node(&host, &id, &["device.info"]).await;
    let mut op = operator(&host).await;
    op.send(json!({"type": "req", "id": "c", "method": "node.invoke",
                   "params": {"nodeId": "Test Node", "command": "device.info", "idempotencyKey": "c"}}))
        .await;
    n.event("node.invoke.request").await;
    op.send(json!({"type": "cancel", "id": "c"})).await;
    let err = op.response("c").await.unwrap_err();
    assert_eq!(err["code"], "CANCELLED");
}

/// A cancelled caller does not abandon the call: the node's answer is still remembered, and a
/// retry with the same key gets it without asking the node again.
#[tokio::test]
async fn a_cancelled_invoke_still_finishes_and_replays() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[31; 32]);
    let (mut n, _token) = paired_node(&host, &id, &["device.info"]).await;
    let mut op = operator(&host).await;
    let params = json!({"nodeId": "Test Node", "command": "device.info", "idempotencyKey": "k1"});
    op.send(json!({"type": "req", "id": "c", "method": "node.invoke", "params": params}))
        .await;
    let req = n.event("node.invoke.request").await;
    op.send(json!({"type": "cancel", "id": "c"})).await;
    assert_eq!(op.response("c").await.unwrap_err()["code"], "CANCELLED");
    n.request(
        "node.invoke.result",
        json!({"id": req["id"], "nodeId": id.device_id().as_str(), "ok": true,
               "payload": {"answer": 42}}),
    )
    .await
    .unwrap();
    // The retry replays (or joins the call still finishing on its own); the node sees no second
    // request: its next one is the next call's.
    let replay = op.request("node.invoke", params.clone()).await.unwrap();
    assert_eq!(replay["payload"]["answer"], 42);
    op.send(json!({"type": "req", "id": "other", "method": "node.invoke",
                   "params": {"nodeId": "Test Node", "command": "device.info", "idempotencyKey": "k2"}}))
        .await;
    let next = n.event("node.invoke.request").await;
    assert_eq!(next["idempotencyKey"], "k2");
}

#[tokio::test]
async fn removed_device_may_pair_again() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[30; 32]);
    let (mut n, token) = paired_node(&host, &id, &["device.info"]).await;
    let mut op = operator(&host).await;
    op.request("device.pair.revoke", json!({"deviceId": "Test Node"}))
        .await
        .unwrap();
    assert_eq!(n.closed().await, Some(1008));
    let r = op
        .request("device.pair.remove", json!({"deviceId": "Test Node"}))
        .await
        .unwrap();
    assert_eq!(r["deviceId"], id.device_id().as_str());
    let list = op.request("device.pair.list", json!({})).await.unwrap();
    assert_eq!(list["paired"].as_array().unwrap().len(), 0);
    // Its old token means nothing now; it files a new request like any new device.
    let mut again = Raw::open(&host).await;
    let nonce = again.nonce.clone();
    let err = again
        .request(
            "connect",
            node_connect_params(&id, &nonce, now_ms(), Some(&token), &[]),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "NOT_PAIRED");
    let err = op
        .request("device.pair.remove", json!({"deviceId": "Test Node"}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "NOT_FOUND");
}

#[tokio::test]
async fn removing_a_connected_device_tells_it_to_reconnect() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[31; 32]);
    let (mut n, _token) = paired_node(&host, &id, &[]).await;
    let mut op = operator(&host).await;
    let r = op
        .request(
            "device.pair.remove",
            json!({"deviceId": &id.device_id().as_str()[..6]}),
        )
        .await
        .unwrap();
    assert_eq!(r["closedConnections"], 1);
    let closing = n.event("connection.closing").await;
    assert_eq!(closing["error"]["details"]["reason"], "device-removed");
    assert_eq!(closing["reconnect"], true);
}

#[tokio::test]
async fn last_seen_survives_a_host_restart() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[32; 32]);
    let (n, _token) = paired_node(&host, &id, &["device.info"]).await;
    drop(n);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let TestHost { gw, dir, token } = host;
    gw.shutdown().await;
    let mut cfg = perch_gateway::GatewayConfig::defaults(dir.path().to_path_buf());
    cfg.bind = "127.0.0.1:0".parse().unwrap();
    let gw = perch_gateway::start(cfg, std::sync::Arc::new(perch_gateway::GatewayOnly))
        .await
        .unwrap();
    let host = TestHost { gw, dir, token };
    let mut op = operator(&host).await;
    let list = op.request("node.list", json!({})).await.unwrap();
    let node = &list[0];
    assert_eq!(node["online"], false);
    let seen = node["lastSeenMs"]
        .as_i64()
        .expect("last seen kept across the restart");
    assert!(now_ms() - seen < 60_000);
    assert_eq!(
        node["commands"],
        json!(["device.info"]),
        "last advertised commands kept too"
    );
}
