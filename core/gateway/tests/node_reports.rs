//! What a node reports about itself (`node.runnerInventory.update`, `node.skills.update`,
//! `node.pluginTools.update`): kept on its connection, shown by `node.describe`, bounded, never
//! callable beyond host policy, and gone with the connection.

mod common;

use serde_json::{Value, json};

use common::*;
use perch_protocol::DeviceIdentity;
use perch_protocol::node_reports::{MAX_SKILL_CONTENT, MAX_SKILLS};

async fn describe(op: &mut Raw) -> Value {
    op.request("node.describe", json!({"nodeId": "Test Node"}))
        .await
        .unwrap()
}

#[tokio::test]
async fn reports_are_kept_shown_and_replaced() {
    let host = start_host(|c| {
        c.commands = perch_gateway::config::CommandPolicy::new(&["notes.search".into()], &[]);
    })
    .await;
    let id = DeviceIdentity::from_seed(&[71; 32]);
    let (mut n, _token) = paired_node(&host, &id, &["device.info", "notes.search"]).await;
    let mut op = operator(&host).await;

    // Nothing reported yet: no inventory at all.
    let d = describe(&mut op).await;
    assert!(d.get("inventory").is_none(), "{d}");

    let ok = n
        .request(
            "node.runnerInventory.update",
            json!({"protocolFeatures": ["node-worker-supervisor-v6"],
                   "workerHost": {"enabled": true, "capacity": {"total": 2, "available": 2},
                                  "bundlePrewarm": 1}}),
        )
        .await
        .unwrap();
    assert_eq!(ok, json!({}));
    n.request(
        "node.skills.update",
        json!({"skills": [{"name": "git-review", "description": "Reviews a diff",
                           "content": "Read the diff, then comment."}]}),
    )
    .await
    .unwrap();
    n.request(
        "node.pluginTools.update",
        json!({"tools": [
            {"pluginId": "notes", "name": "search_notes", "description": "Search notes",
             "command": "notes.search", "parameters": {"type": "object"}},
            {"pluginId": "shell", "name": "run", "description": "Run a command",
             "command": "system.run"},
            {"pluginId": "files", "name": "grep", "description": "Grep files",
             "mcp": {"server": "fs", "tool": "grep"}},
            {"pluginId": "misc", "name": "nothing", "description": "No way to call it"}
        ]}),
    )
    .await
    .unwrap();

    let d = describe(&mut op).await;
    let inv = &d["inventory"];
    assert_eq!(
        inv["runner"],
        json!({"protocolFeatures": ["node-worker-supervisor-v6"],
               "workerHost": {"enabled": true, "capacity": {"total": 2, "available": 2}}}),
        "{d}"
    );
    assert_eq!(
        inv["skills"],
        json!([{"name": "git-review", "description": "Reviews a diff", "contentBytes": 28}]),
        "the body's size is shown, not the body: {d}"
    );
    // Allowed only when the node advertises the command and host policy lets it through.
    let tools: Vec<(String, Value, bool)> = inv["pluginTools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["command"].clone(),
                t["allowed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tools,
        vec![
            ("search_notes".into(), json!("notes.search"), true),
            ("run".into(), json!("system.run"), false),
            ("grep".into(), json!("mcp.tools.call.v1"), false),
            ("nothing".into(), Value::Null, false),
        ]
    );
    assert!(inv["updatedAtMs"].as_i64().unwrap() > 0);

    // A report replaces the previous one of its kind; the others stay.
    n.request("node.skills.update", json!({"skills": []}))
        .await
        .unwrap();
    let d = describe(&mut op).await;
    assert_eq!(d["inventory"]["skills"], json!([]), "{d}");
    assert_eq!(d["inventory"]["pluginTools"].as_array().unwrap().len(), 4);

    // Reports describe the connection: gone when it ends.
    drop(n);
    op.event("node.status").await;
    let d = describe(&mut op).await;
    assert_eq!(d["online"], false, "{d}");
    assert!(d.get("inventory").is_none(), "{d}");
}

#[tokio::test]
async fn oversized_and_malformed_reports_are_refused_with_the_field_and_limit() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[72; 32]);
    let (mut n, _token) = paired_node(&host, &id, &["device.info"]).await;
    let mut op = operator(&host).await;
    n.request(
        "node.skills.update",
        json!({"skills": [{"name": "keep-me", "description": "d", "content": "c"}]}),
    )
    .await
    .unwrap();

    let big = "x".repeat(MAX_SKILL_CONTENT + 1);
    let e = n
        .request(
            "node.skills.update",
            json!({"skills": [{"name": "big", "description": "d", "content": big}]}),
        )
        .await
        .unwrap_err();
    assert_eq!(e["code"], "INVALID_REQUEST", "{e}");
    assert_eq!(
        e["details"],
        json!({"method": "node.skills.update", "field": "skills[0].content",
               "size": MAX_SKILL_CONTENT + 1, "limit": MAX_SKILL_CONTENT})
    );

    let many: Vec<Value> = (0..=MAX_SKILLS)
        .map(|i| json!({"name": format!("s{i}"), "description": "d", "content": "c"}))
        .collect();
    let e = n
        .request("node.skills.update", json!({"skills": many}))
        .await
        .unwrap_err();
    assert_eq!(e["details"]["count"], MAX_SKILLS + 1, "{e}");
    assert_eq!(e["details"]["limit"], MAX_SKILLS, "{e}");

    let e = n
        .request(
            "node.pluginTools.update",
            json!({"tools": [{"pluginId": "p", "name": "9lives", "description": "d"}]}),
        )
        .await
        .unwrap_err();
    assert_eq!(e["code"], "INVALID_REQUEST", "{e}");
    assert_eq!(e["details"]["field"], "tools[0].name", "{e}");

    let e = n
        .request("node.runnerInventory.update", json!({"workerHost": 3}))
        .await
        .unwrap_err();
    assert_eq!(e["code"], "INVALID_REQUEST", "{e}");
    assert_eq!(e["details"]["method"], "node.runnerInventory.update", "{e}");

    // The refused reports changed nothing, and the connection is still fine.
    let d = describe(&mut op).await;
    assert_eq!(d["inventory"]["skills"][0]["name"], "keep-me", "{d}");
    assert!(d["inventory"].get("runner").is_none(), "{d}");
}

#[tokio::test]
async fn operators_cannot_send_node_reports() {
    let host = start_host(|_| {}).await;
    let mut op = operator(&host).await;
    let e = op
        .request("node.skills.update", json!({"skills": []}))
        .await
        .unwrap_err();
    assert_eq!(e["code"], "FORBIDDEN", "{e}");
}
