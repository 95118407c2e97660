//! Reading sessions and transcripts over the wire.

mod common;

use serde_json::json;

use common::*;
use perch_store::{MessageRole, NewMessage};

#[tokio::test]
async fn sessions_are_listed_and_their_history_read() {
    let host = start_host(|_| {}).await;
    let store = &host.gw.hub().store;
    store
        .sessions()
        .append_turn(
            "main",
            "t1",
            &[
                NewMessage::text(MessageRole::User, "where am I?"),
                NewMessage {
                    tool_calls: Some(
                        r#"[{"id":"c1","name":"location_get","arguments":"{}"}]"#.into(),
                    ),
                    output_tokens: Some(7),
                    ..NewMessage::text(MessageRole::Assistant, "")
                },
                NewMessage {
                    tool_call_id: Some("c1".into()),
                    tool_name: Some("location_get".into()),
                    ..NewMessage::text(MessageRole::Tool, r#"{"city":"Vienna"}"#)
                },
                NewMessage::text(MessageRole::Assistant, "You are in Vienna."),
            ],
            now_ms(),
        )
        .await
        .unwrap();
    let mut op = operator(&host).await;
    let list = op.request("sessions.list", json!({})).await.unwrap();
    assert_eq!(list[0]["sessionKey"], "main");
    assert_eq!(list[0]["messageCount"], 4);
    assert_eq!(list[0]["outputTokens"], 7);
    let h = op
        .request(
            "sessions.history",
            json!({"sessionKey": "main", "limit": 3}),
        )
        .await
        .unwrap();
    let msgs = h["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0]["seq"], 2);
    assert_eq!(msgs[0]["toolCalls"][0]["name"], "location_get");
    assert_eq!(msgs[1]["toolName"], "location_get");
    assert_eq!(msgs[2]["content"], "You are in Vienna.");
    let err = op
        .request("sessions.history", json!({"sessionKey": "nope"}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "NOT_FOUND");
    let err = op
        .request("sessions.history", json!({"sessionKey": "bad key"}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "INVALID_REQUEST");
}
