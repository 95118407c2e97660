//! The method table over the wire: every method `hello-ok` advertises dispatches (it may refuse
//! the empty params, but it is not unknown or forbidden), nothing else does, and scopes narrow
//! both what is advertised and what runs.

mod common;

use serde_json::{Value, json};

use common::*;
use perch_protocol::DeviceIdentity;

/// Errors that mean "not dispatched".
fn not_dispatched(r: &Result<Value, Value>) -> bool {
    matches!(r, Err(e) if e["code"] == "UNKNOWN_METHOD" || e["code"] == "FORBIDDEN")
}

fn advertised(hello: &Value) -> Vec<String> {
    hello["features"]["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

/// Names that no connection may call: the other role's, near misses, and junk.
fn strangers(own: &[String], other: &[String]) -> Vec<String> {
    let mut v: Vec<String> = other.to_vec();
    v.extend(
        [
            "Status",
            "status ",
            "node.invoke.results",
            "device.pair",
            "settings",
            "config.set",
            "system.run",
            "node.runnerInventory.updat",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    v.retain(|m| !own.contains(m));
    v
}

#[tokio::test]
async fn exactly_the_advertised_methods_dispatch() {
    let host = start_host(|_| {}).await;
    let mut op = Raw::open(&host).await;
    let hello = op
        .request("connect", operator_connect_params(&host.token))
        .await
        .unwrap();
    assert_eq!(
        hello["auth"]["scopes"],
        json!([
            "operator.read",
            "operator.write",
            "operator.pairing",
            "operator.admin"
        ])
    );
    let op_methods = advertised(&hello);
    assert!(op_methods.len() >= 20, "{op_methods:?}");

    let id = DeviceIdentity::from_seed(&[21; 32]);
    let (mut node, token) = paired_node(&host, &id, &["device.info"]).await;
    drop(node);
    // A fresh connection, to read its hello-ok.
    node = Raw::open(&host).await;
    let nonce = node.nonce.clone();
    let node_hello = node
        .request(
            "connect",
            node_connect_params(&id, &nonce, now_ms(), Some(&token), &["device.info"]),
        )
        .await
        .unwrap();
    let node_methods = advertised(&node_hello);
    assert_eq!(
        node_methods,
        vec![
            "node.invoke.result",
            "node.event",
            "node.location.watch",
            "node.access.list",
            "node.runnerInventory.update",
            "node.skills.update",
            "node.pluginTools.update"
        ]
    );

    for m in &op_methods {
        // Never approve or remove anything for real: an empty params object.
        let r = op.request(m, json!({})).await;
        assert!(
            !not_dispatched(&r),
            "advertised {m} did not dispatch: {r:?}"
        );
    }
    for m in &node_methods {
        let r = node.request(m, json!({})).await;
        assert!(
            !not_dispatched(&r),
            "advertised {m} did not dispatch: {r:?}"
        );
    }
    for m in strangers(&op_methods, &node_methods) {
        let r = op.request(&m, json!({})).await;
        assert!(not_dispatched(&r), "operator ran {m:?}: {r:?}");
    }
    for m in strangers(&node_methods, &op_methods) {
        let r = node.request(&m, json!({})).await;
        assert!(not_dispatched(&r), "node ran {m:?}: {r:?}");
    }
    // Both connections still serve.
    assert!(op.request("status", json!({})).await.is_ok());
}

#[tokio::test]
async fn a_read_only_operator_reads_and_nothing_more() {
    let host = start_host(|_| {}).await;
    let mut op = Raw::open(&host).await;
    let mut params = operator_connect_params(&host.token);
    params["scopes"] = json!(["operator.read"]);
    let hello = op.request("connect", params).await.unwrap();
    assert_eq!(hello["auth"]["scopes"], json!(["operator.read"]));
    let methods = advertised(&hello);
    assert!(methods.contains(&"status".to_string()));
    assert!(methods.contains(&"node.list".to_string()));
    for m in [
        "chat.send",
        "node.invoke",
        "device.pair.approve",
        "settings.set",
    ] {
        assert!(!methods.contains(&m.to_string()), "{m} advertised");
    }
    assert!(op.request("status", json!({})).await.is_ok());
    let e = op
        .request("device.pair.setupCode", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e["code"], "FORBIDDEN");
    assert_eq!(e["details"]["missingScope"], "operator.pairing");
    let e = op
        .request(
            "node.invoke",
            json!({"nodeId": "x", "command": "device.info", "idempotencyKey": "k"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e["details"]["missingScope"], "operator.write");
    // A scope name the host does not know grants nothing.
    let mut none = Raw::open(&host).await;
    let mut params = operator_connect_params(&host.token);
    params["scopes"] = json!(["operator.everything"]);
    let hello = none.request("connect", params).await.unwrap();
    assert_eq!(hello["auth"]["scopes"], json!([]));
    assert_eq!(hello["features"]["methods"], json!([]));
    let e = none.request("status", json!({})).await.unwrap_err();
    assert_eq!(e["code"], "FORBIDDEN");
}
