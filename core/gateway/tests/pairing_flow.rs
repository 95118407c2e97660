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
        let mut n = Raw::open_committed(&host, &id).await;
        let err = n
            .request("connect", n.node_params(&id, None, &[]))
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
    let mut n = Raw::open_committed(&host, &id).await;
    let err = n
        .request("connect", n.node_params(&id, None, &[]))
        .await
        .unwrap_err();
    assert_eq!(err["details"]["codeCurrent"], true);
    let ev = op.event("device.pair.requested").await;
    assert_eq!(ev["deviceId"], id.device_id().as_str());
    assert_eq!(ev["displayName"], "Test Node");
    // The code the device computes from the host's proved key, its own key, the secret behind
    // its commitment and the challenge nonce.
    let expected = n.verification_code(&id);
    assert_eq!(ev["verificationCode"], expected.as_str());
    let list = op.request("device.pair.list", json!({})).await.unwrap();
    assert_eq!(list["pending"][0]["verificationCode"], expected.as_str());
}

/// Each reconnect brings a new commitment and so a new code, which operators hear about; after
/// a few the host keeps the code it shows and tells the device so, and a man in the middle
/// gets no more tries by reconnecting.
#[tokio::test]
async fn a_requests_code_changes_only_a_few_times() {
    let host = start_host(|_| {}).await;
    let mut op = operator(&host).await;
    let id = DeviceIdentity::from_seed(&[27; 32]);
    let mut shown = vec![];
    for attempt in 0..6 {
        let mut n = Raw::open_committed(&host, &id).await;
        let err = n
            .request("connect", n.node_params(&id, None, &[]))
            .await
            .unwrap_err();
        let current = err["details"]["codeCurrent"].as_bool().unwrap();
        assert_eq!(current, attempt < 4, "attempt {attempt}: {err}");
        if current {
            let ev = op.event("device.pair.requested").await;
            assert_eq!(ev["verificationCode"], n.verification_code(&id).as_str());
            shown.push(n.verification_code(&id));
        }
    }
    let list = op.request("device.pair.list", json!({})).await.unwrap();
    assert_eq!(
        list["pending"][0]["verificationCode"],
        shown.last().unwrap().as_str()
    );
}

/// A pairing nonce that does not open the commitment is refused with its reason, and files
/// nothing.
#[tokio::test]
async fn a_pairing_nonce_that_does_not_open_the_commitment_is_refused() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[28; 32]);
    let mut n = Raw::open_committed(&host, &id).await;
    let mut params = n.node_params(&id, None, &[]);
    params["device"]["pairingNonce"] = json!("not-the-nonce-behind-the-commitment");
    let err = n.request("connect", params).await.unwrap_err();
    assert_eq!(err["code"], "INVALID_REQUEST", "{err}");
    assert_eq!(err["details"]["reason"], "pairing-commitment");
    let mut op = operator(&host).await;
    let list = op.request("device.pair.list", json!({})).await.unwrap();
    assert!(list["pending"].as_array().unwrap().is_empty(), "{list}");
}

/// A client that made no commitment (an OpenClaw node) can still ask to pair, but no code is
/// shown for it: a code over the keys alone could be ground by a man in the middle.
#[tokio::test]
async fn a_request_without_a_commitment_shows_no_code() {
    let host = start_host(|_| {}).await;
    let mut op = operator(&host).await;
    let id = DeviceIdentity::from_seed(&[29; 32]);
    let mut n = Raw::open(&host).await;
    let err = n
        .request("connect", n.node_params(&id, None, &[]))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "NOT_PAIRED");
    assert_eq!(err["details"]["codeCurrent"], false);
    let ev = op.event("device.pair.requested").await;
    assert!(ev.get("verificationCode").is_none(), "{ev}");
    let list = op.request("device.pair.list", json!({})).await.unwrap();
    assert!(
        list["pending"][0].get("verificationCode").is_none(),
        "{list}"
    );
}

/// The challenge's proof covers the client's nonce, and hello-ok is bound to it; a client that
/// sent none gets the older proof and no binding.
#[tokio::test]
async fn the_proof_and_hello_ok_are_bound_to_the_client_nonce() {
    use perch_protocol::handshake::{Challenge, HelloBinding, HelloOk, Role};
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[30; 32]);
    let (n, token) = paired_node(&host, &id, &[]).await;
    drop(n);
    let mut n = Raw::open_committed(&host, &id).await;
    let cn = n.client_nonce.clone().unwrap();
    let challenge: Challenge = serde_json::from_value(n.challenge.clone()).unwrap();
    assert_eq!(
        challenge.host.as_ref().unwrap().client_nonce.as_deref(),
        Some(cn.as_str())
    );
    let fp = id_fingerprint(&n.host_key);
    challenge.verify_host(&fp, &cn).unwrap();
    let hello = n
        .request("connect", n.node_params(&id, Some(&token), &[]))
        .await
        .unwrap();
    let hello: HelloOk = serde_json::from_value(hello).unwrap();
    let host_id = challenge.host.as_ref().unwrap().host_id.clone();
    let device_id = id.device_id();
    let binding = HelloBinding {
        host_id: &host_id,
        nonce: &challenge.nonce,
        client_nonce: &cn,
        role: Role::Node,
        device_id: device_id.as_str(),
        conn_id: &hello.server.conn_id,
    };
    binding.verify(&challenge, &hello).unwrap();
    // Checked for another device, the same hello-ok does not verify.
    let other = DeviceIdentity::from_seed(&[31; 32]).device_id();
    let for_other = HelloBinding {
        device_id: other.as_str(),
        ..binding
    };
    assert!(for_other.verify(&challenge, &hello).is_err());

    let mut plain = Raw::open(&host).await;
    assert!(plain.challenge["host"].get("clientNonce").is_none());
    let hello = plain
        .request("connect", plain.node_params(&id, Some(&token), &[]))
        .await
        .unwrap();
    assert!(hello["server"].get("binding").is_none(), "{hello}");
}

/// The fingerprint a client pins for a host key.
fn id_fingerprint(public_key_b64: &str) -> String {
    let key = perch_protocol::identity::decode_public_key(public_key_b64).unwrap();
    perch_protocol::DeviceId::from_public_key(key.as_bytes()).to_string()
}

/// A malformed client nonce in the upgrade URL is refused before the upgrade.
#[tokio::test]
async fn a_malformed_client_nonce_is_refused_before_the_upgrade() {
    let host = start_host(|_| {}).await;
    for query in [
        "clientNonce=short",
        "clientNonce=has%20space-0123456789",
        "clientNonce=aaaaaaaaaaaaaaaaaaaa&clientNonce=aaaaaaaaaaaaaaaaaaaa",
    ] {
        let url = format!("{}/?{query}", host.url().trim_end_matches('/'));
        let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
        match err {
            tokio_tungstenite::tungstenite::Error::Http(r) => {
                assert_eq!(r.status(), 400, "{query}")
            }
            other => panic!("{query}: {other}"),
        }
    }
    // The host still serves a well-formed client.
    let id = DeviceIdentity::from_seed(&[32; 32]);
    let _ = Raw::open_committed(&host, &id).await;
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
