//! `chat.send` through the host: a fake model provider over real HTTP asks for `location.get`,
//! the host routes it to a paired node, and the answer streams back and lands in the transcript.

mod common;

use serde_json::json;

use common::*;
use perch_kernel::model::StopReason;
use perch_kernel::testing::{FakeProvider, Script};
use perch_protocol::DeviceIdentity;
use perch_protocol::frame::Frame;

#[tokio::test]
async fn a_turn_calls_a_node_tool_and_answers() {
    let fake = FakeProvider::start().await.unwrap();
    let host = start_host(|_| {}).await;
    std::fs::write(
        host.dir.path().join("perch.toml"),
        format!(
            "[models.default]\nprovider = \"openai\"\nmodel = \"test-model\"\nbase_url = \"{}\"\n",
            fake.openai_base_url()
        ),
    )
    .unwrap();
    let id = DeviceIdentity::from_seed(&[80; 32]);
    let (mut node, _t) = paired_node(&host, &id, &["location.get"]).await;
    fake.push(
        Script::new()
            .tool_call("c1", "location_get", ["{}"])
            .stop(StopReason::ToolUse),
    );
    fake.push(
        Script::new()
            .text("You are ")
            .text("in Vienna.")
            .usage(12, 4),
    );

    let mut op = operator(&host).await;
    op.send(json!({"type": "req", "id": "chat1", "method": "chat.send",
                   "params": {"message": "Where am I?"}}))
        .await;
    // The node is asked, and answers.
    let req = node.event("node.invoke.request").await;
    assert_eq!(req["command"], "location.get");
    node.request(
        "node.invoke.result",
        json!({"id": req["id"], "nodeId": id.device_id().as_str(),
        "ok": true, "payload": {"lat": 48.2085, "lon": 16.3721, "accuracyMeters": 10,
        "timestamp": "2026-11-21T10:00:00Z", "isPrecise": true, "source": "configured"}}),
    )
    .await
    .unwrap();
    // Deltas stream to the caller before the result.
    let mut text = String::new();
    let result = loop {
        match op.next().await {
            Got::Frame(Frame::Event(e)) if e.event == "chat" => {
                let p = e.payload.unwrap();
                if p["kind"] == "delta" {
                    text.push_str(p["text"].as_str().unwrap());
                }
            }
            Got::Frame(Frame::Res(r)) if r.id.as_str() == "chat1" => {
                break r.result.unwrap().unwrap();
            }
            Got::Frame(_) => {}
            Got::Closed(c) => panic!("closed {c:?}"),
        }
    };
    assert_eq!(text, "You are in Vienna.");
    assert_eq!(result["text"], "You are in Vienna.");
    assert_eq!(result["toolCalls"], 1);
    // The model got the node's answer.
    assert!(fake.requests()[1].raw_body.contains("16.3721"));
    // The whole turn is in the transcript.
    let h = op
        .request("sessions.history", json!({"sessionKey": "main"}))
        .await
        .unwrap();
    let roles: Vec<&str> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, vec!["user", "assistant", "tool", "assistant"]);
}

#[tokio::test]
async fn an_unconfigured_tier_is_an_explicit_error() {
    let host = start_host(|_| {}).await;
    let mut op = operator(&host).await;
    let err = op
        .request("chat.send", json!({"message": "hi", "tier": "smart"}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "CREDENTIAL_MISSING");
    assert!(
        err["message"].as_str().unwrap().contains("[models.smart]"),
        "{err}"
    );
}
