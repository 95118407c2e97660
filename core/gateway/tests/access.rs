//! The access record through the gateway: every `node.invoke` that names a known node is
//! recorded once (refusals included, replays and joins not), an operator reads any node's record
//! with `device.access.list`, and a node reads only its own with `node.access.list`.

mod common;

use serde_json::{Value, json};

use common::*;
use perch_protocol::DeviceIdentity;
use perch_protocol::identity::SignedConnectV3;

/// (command, outcome, error code) of each row, newest first.
fn rows(list: &Value) -> Vec<(String, String, String)> {
    list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["command"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
                e["errorCode"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn row(command: &str, outcome: &str, code: &str) -> (String, String, String) {
    (command.into(), outcome.into(), code.into())
}

/// Answers the next invoke request on `n` with an empty result.
async fn answer(n: &mut Raw, id: &DeviceIdentity) {
    let req = n.event("node.invoke.request").await;
    n.request(
        "node.invoke.result",
        json!({"id": req["id"], "nodeId": id.device_id().as_str(), "ok": true,
               "payload": {"secret": "payload-never-recorded"}}),
    )
    .await
    .unwrap();
}

fn invoke(req: &str, node: &str, command: &str, key: &str) -> Value {
    json!({"type": "req", "id": req, "method": "node.invoke",
           "params": {"nodeId": node, "command": command, "idempotencyKey": key,
                      "params": {"secretParam": "never-recorded"}}})
}

#[tokio::test]
async fn a_node_reads_only_its_own_record_and_operators_read_any() {
    let host = start_host(|_| {}).await;
    let a = DeviceIdentity::from_seed(&[71; 32]);
    let b = DeviceIdentity::from_seed(&[72; 32]);
    let (mut na, _) = paired_node(&host, &a, &["device.info"]).await;
    let (mut nb, _) = paired_node(&host, &b, &["device.info"]).await;
    let a_id = a.device_id().to_string();
    let b_id = b.device_id().to_string();
    let mut op = operator(&host).await;

    // One call that runs, its retry with the same key (a replay), a refused one.
    op.send(invoke("1", &a_id, "device.info", "k1")).await;
    answer(&mut na, &a).await;
    op.response("1").await.unwrap();
    op.send(invoke("2", &a_id, "device.info", "k1")).await;
    op.response("2").await.unwrap();
    op.send(invoke("3", &a_id, "camera.snap", "k2")).await;
    assert_eq!(
        op.response("3").await.unwrap_err()["code"],
        "COMMAND_NOT_ALLOWED"
    );
    // Bad params and an unknown node are the caller's errors: nothing to record.
    op.send(invoke("4", &a_id, "device.info", "")).await;
    assert_eq!(
        op.response("4").await.unwrap_err()["code"],
        "INVALID_REQUEST"
    );
    op.send(invoke("5", "nobody", "device.info", "k3")).await;
    assert_eq!(
        op.response("5").await.unwrap_err()["code"],
        "NODE_NOT_FOUND"
    );

    let own = na.request("node.access.list", json!({})).await.unwrap();
    assert_eq!(own["nodeId"], a_id.as_str());
    assert_eq!(
        rows(&own),
        [
            row("camera.snap", "refused", "COMMAND_NOT_ALLOWED"),
            row("device.info", "ok", "")
        ]
    );
    let who = &own["entries"][1]["requester"];
    assert_eq!(who["kind"], "operator", "{who}");
    assert_eq!(who["label"], "test", "{who}");
    assert!(who.get("deviceId").is_none(), "{who}");
    let text = own.to_string();
    assert!(!text.contains("never-recorded"), "{text}");

    // Node B sees nothing of A's, and cannot name A.
    let theirs = nb.request("node.access.list", Value::Null).await.unwrap();
    assert_eq!(theirs["nodeId"], b_id.as_str());
    assert_eq!(theirs["entries"], json!([]));
    let err = nb
        .request("node.access.list", json!({"nodeId": a_id}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "INVALID_REQUEST", "{err}");
    // Nor can it use the operator's method.
    let err = nb
        .request("device.access.list", json!({"nodeId": a_id}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "FORBIDDEN", "{err}");

    // The operator reads A's record by name (B was renamed to stay distinct), the same rows.
    let seen = op
        .request("device.access.list", json!({"nodeId": "Test Node"}))
        .await
        .unwrap();
    assert_eq!(seen, own);
}

#[tokio::test]
async fn joins_cancels_and_timeouts_are_recorded_once_each() {
    let host = start_host(|_| {}).await;
    let a = DeviceIdentity::from_seed(&[73; 32]);
    let (mut n, _) = paired_node(&host, &a, &["device.info", "device.status"]).await;
    let id = a.device_id().to_string();
    let mut op = operator(&host).await;
    let mut op2 = operator(&host).await;

    // Two callers with one key while the call is in flight: one access.
    op.send(invoke("1", &id, "device.info", "shared")).await;
    let req = n.event("node.invoke.request").await;
    op2.send(invoke("1", &id, "device.info", "shared")).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    n.request(
        "node.invoke.result",
        json!({"id": req["id"], "nodeId": id, "ok": true, "payload": {}}),
    )
    .await
    .unwrap();
    op.response("1").await.unwrap();
    op2.response("1").await.unwrap();

    // A caller that cancels: the call still finishes, and is recorded once, as it ended.
    op.send(invoke("2", &id, "device.status", "cancelled"))
        .await;
    let req = n.event("node.invoke.request").await;
    op.send(json!({"type": "cancel", "id": "2"})).await;
    assert_eq!(op.response("2").await.unwrap_err()["code"], "CANCELLED");
    n.request(
        "node.invoke.result",
        json!({"id": req["id"], "nodeId": id, "ok": false,
               "error": {"code": "CAMERA_DISABLED", "message": "no"}}),
    )
    .await
    .unwrap();

    // A node that does not answer in time: failed, TIMEOUT.
    op.send(json!({"type": "req", "id": "3", "method": "node.invoke",
                   "params": {"nodeId": id, "command": "device.info",
                              "idempotencyKey": "slow", "timeoutMs": 150}}))
        .await;
    n.event("node.invoke.request").await;
    assert_eq!(op.response("3").await.unwrap_err()["code"], "TIMEOUT");

    let own = n
        .request("node.access.list", json!({"limit": 10}))
        .await
        .unwrap();
    assert_eq!(
        rows(&own),
        [
            row("device.info", "failed", "TIMEOUT"),
            row("device.status", "failed", "CAMERA_DISABLED"),
            row("device.info", "ok", ""),
        ],
        "{own}"
    );
    let took = own["entries"][0]["durationMs"].as_u64().unwrap();
    assert!(took >= 150, "{own}");
}

#[tokio::test]
async fn pages_and_bad_params() {
    let host = start_host(|_| {}).await;
    let a = DeviceIdentity::from_seed(&[74; 32]);
    let (mut n, _) = paired_node(&host, &a, &["device.info"]).await;
    let id = a.device_id().to_string();
    let mut op = operator(&host).await;
    for i in 0..5 {
        let key = format!("k{i}");
        op.send(invoke("x", &id, "camera.snap", &key)).await;
        op.response("x").await.unwrap_err();
    }
    let mut seen = 0;
    let mut before: Option<String> = None;
    loop {
        let mut p = json!({"limit": 2});
        if let Some(b) = &before {
            p["before"] = json!(b);
        }
        let page = n.request("node.access.list", p).await.unwrap();
        seen += page["entries"].as_array().unwrap().len();
        match page["nextBefore"].as_str() {
            Some(b) => before = Some(b.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, 5);
    for bad in [
        json!({"limit": 0}),
        json!({"limit": 501}),
        json!({"before": "x"}),
    ] {
        let e = n
            .request("node.access.list", bad.clone())
            .await
            .unwrap_err();
        assert_eq!(e["code"], "INVALID_REQUEST", "{bad} {e}");
        let mut p = bad.clone();
        p["nodeId"] = json!(id);
        let e = op.request("device.access.list", p).await.unwrap_err();
        assert_eq!(e["code"], "INVALID_REQUEST", "{bad} {e}");
    }
    let e = op
        .request("device.access.list", json!({"nodeId": "nobody"}))
        .await
        .unwrap_err();
    assert_eq!(e["code"], "NODE_NOT_FOUND", "{e}");
    let e = op
        .request("device.access.list", json!({"limit": 3}))
        .await
        .unwrap_err();
    assert_eq!(e["code"], "INVALID_REQUEST", "{e}");
}

/// Connect params for a paired node connecting as a command-line reader (client mode `cli`).
fn reader_params(id: &DeviceIdentity, nonce: &str, token: &str) -> Value {
    let signed_at = now_ms();
    let payload = SignedConnectV3 {
        device_id: id.device_id().as_str(),
        client_id: "perch-node",
        client_mode: "cli",
        role: "node",
        scopes: &[],
        signed_at_ms: signed_at,
        token,
        nonce,
        platform: Some("linux"),
        device_family: None,
    }
    .payload();
    json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "perch-node", "displayName": "reader", "version": "0",
                   "platform": "linux", "mode": "cli"},
        "role": "node",
        "commands": [],
        "auth": {"deviceToken": token},
        "device": {"id": id.device_id().as_str(), "publicKey": id.public_key_b64(),
                   "signature": id.sign_b64(&payload), "signedAt": signed_at, "nonce": nonce}
    })
}

#[tokio::test]
async fn a_reader_connection_does_not_take_the_nodes_place() {
    let host = start_host(|_| {}).await;
    let a = DeviceIdentity::from_seed(&[75; 32]);
    let (mut n, token) = paired_node(&host, &a, &["device.info"]).await;
    let id = a.device_id().to_string();
    let mut op = operator(&host).await;
    op.send(invoke("1", &id, "device.info", "k1")).await;
    answer(&mut n, &a).await;
    op.response("1").await.unwrap();

    let mut reader = Raw::open(&host).await;
    let nonce = reader.nonce.clone();
    let hello = reader
        .request("connect", reader_params(&a, &nonce, &token))
        .await
        .unwrap();
    let methods = hello["features"]["methods"].as_array().unwrap();
    assert!(methods.iter().any(|m| m == "node.access.list"), "{hello}");
    let own = reader.request("node.access.list", json!({})).await.unwrap();
    assert_eq!(rows(&own), [row("device.info", "ok", "")]);

    // The node is still the one online, with its commands, and still answers.
    let nodes = op.request("node.list", json!({})).await.unwrap();
    let me = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["nodeId"] == id.as_str())
        .unwrap();
    assert_eq!(me["online"], true, "{me}");
    assert_eq!(me["commands"], json!(["device.info"]), "{me}");
    op.send(invoke("2", &id, "device.info", "k2")).await;
    answer(&mut n, &a).await;
    op.response("2").await.unwrap();
    drop(reader);
    let own = n.request("node.access.list", json!({})).await.unwrap();
    assert_eq!(own["entries"].as_array().unwrap().len(), 2);
}
