//! Presence over the wire: snapshot in hello-ok, ordered change events, activity reports,
//! the active device, and removal on disconnect.

mod common;

use serde_json::{Value, json};

use common::*;
use perch_protocol::DeviceIdentity;
use perch_protocol::frame::Frame;

/// The next `presence` event with its stateVersion.presence.
async fn presence_event(r: &mut Raw) -> (u64, Value) {
    loop {
        match r.next().await {
            Got::Frame(Frame::Event(e)) if e.event == "presence" => {
                let v = e
                    .state_version
                    .expect("presence events carry stateVersion")
                    .presence;
                return (v, e.payload.unwrap());
            }
            Got::Frame(_) => {}
            Got::Closed(c) => panic!("closed {c:?}"),
        }
    }
}

#[tokio::test]
async fn presence_follows_nodes_in_order() {
    let host = start_host(|_| {}).await;
    let mut op = Raw::open(&host).await;
    let hello = op
        .request("connect", operator_connect_params(&host.token))
        .await
        .unwrap();
    let v0 = hello["snapshot"]["stateVersion"]["presence"]
        .as_u64()
        .unwrap();
    let mine = hello["snapshot"]["presence"].as_array().unwrap().clone();
    assert!(
        mine.iter().any(|e| e["role"] == "operator"),
        "the snapshot includes this client: {mine:?}"
    );

    let phone = DeviceIdentity::from_seed(&[40; 32]);
    let laptop = DeviceIdentity::from_seed(&[41; 32]);
    let (mut p, _) = paired_node(&host, &phone, &[]).await;
    let (mut l, _) = paired_node(&host, &laptop, &[]).await;

    // Upserts for both nodes arrive with growing versions after the snapshot's.
    let mut seen = vec![];
    let mut last = v0;
    while seen.len() < 2 {
        let (v, change) = presence_event(&mut op).await;
        assert!(v > last, "versions grow: {v} after {last}");
        last = v;
        if change["change"] == "upsert" && change["entry"]["role"] == "node" {
            seen.push(change["entry"]["deviceId"].as_str().unwrap().to_string());
        }
    }
    assert!(seen.contains(&phone.device_id().to_string()));

    // Activity: the phone was touched 5 s ago, the laptop 60 s ago.
    let r = p
        .request(
            "node.event",
            json!({"event": "node.presence.alive",
                                      "payload": {"trigger": "manual", "idleSeconds": 5}}),
        )
        .await
        .unwrap();
    assert_eq!(r["handled"], true);
    l.request(
        "node.event",
        json!({"event": "node.presence.activity", "payload": {"idleSeconds": 60}}),
    )
    .await
    .unwrap();
    let list = op.request("system-presence", json!({})).await.unwrap();
    assert_eq!(list["activeDeviceId"], phone.device_id().as_str());
    assert_eq!(
        list["entries"][0]["deviceId"],
        phone.device_id().as_str(),
        "most recent first"
    );
    assert!(list["entries"][0]["lastActivityMs"].as_i64().unwrap() <= now_ms() - 4_000);

    // An unknown event is answered, not refused.
    let r = p
        .request(
            "node.event",
            json!({"event": "voice.transcript", "payload": {}}),
        )
        .await
        .unwrap();
    assert_eq!(r["handled"], false);
    // A malformed one is refused with a reason.
    let err = p
        .request(
            "node.event",
            json!({"event": "node.presence.alive", "payload": {"idleSeconds": "x"}}),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "INVALID_REQUEST");

    // The laptop leaves: a remove event with a larger version.
    let before =
        op.request("system-presence", json!({})).await.unwrap()["stateVersion"]["presence"]
            .as_u64()
            .unwrap();
    drop(l);
    loop {
        let (v, change) = presence_event(&mut op).await;
        if change["change"] == "remove" {
            assert!(v > before);
            assert_eq!(change["key"], laptop.device_id().as_str());
            break;
        }
    }
    let list = op.request("system-presence", json!({})).await.unwrap();
    assert!(
        !list["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["deviceId"] == laptop.device_id().as_str())
    );
}

#[tokio::test]
async fn nodes_do_not_see_who_else_is_around() {
    let host = start_host(|_| {}).await;
    let _op = operator(&host).await;
    let a = DeviceIdentity::from_seed(&[42; 32]);
    let (_na, token) = paired_node(&host, &a, &[]).await;
    let mut again = Raw::open(&host).await;
    let nonce = again.nonce.clone();
    // A second connection of the same node, to read its hello-ok.
    let hello = again
        .request(
            "connect",
            node_connect_params(&a, &nonce, now_ms(), Some(&token), &[]),
        )
        .await
        .unwrap();
    assert_eq!(hello["snapshot"]["presence"], json!([]));
    assert!(
        hello["snapshot"]["stateVersion"]["presence"]
            .as_u64()
            .unwrap()
            > 0
    );
}
