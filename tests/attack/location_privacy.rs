//! Location sharing against a real model provider wire: a real `perch serve` whose default tier
//! is a fake provider speaking the OpenAI chat-completions wire over real HTTP, and a real
//! `perch node run --location` paired to it. With sharing `off` the provider receives no
//! coordinates (nor the city) through any path: no device-context block, no `location_get`
//! tool offered, a forced call refused with `LOCATION_SHARING_OFF`, other node tools clean.
//! At `city` it gets the city and no coordinates; at `exact` the coordinates. Every read for a
//! prompt leaves an audit row. Then the node reads its own access record (`perch node access`)
//! and finds each command run on it in the test, with who asked.

use serde_json::Value;

use perch_attack_tests::leaks::{VIENNA_COORDINATES, VIENNA_LOCATION, assert_none_reached, found};
use perch_attack_tests::procs::*;
use perch_kernel::model::StopReason;
use perch_kernel::testing::{FakeProvider, Script};

/// A real host on the fake provider and a real node ("Phone", in Vienna) paired to it.
struct World {
    fake: FakeProvider,
    host: RealHost,
    node: RealNode,
    node_id: String,
}

async fn world() -> World {
    let fake = FakeProvider::start().await.unwrap();
    let host = RealHost::start(&fake_models_toml(&fake.openai_base_url())).await;
    let node = RealNode::start(&host.url(), "Phone", &["--location", VIENNA_LOCATION]);
    let node_id = pair_by_approval(&host, &node).await;
    World {
        fake,
        host,
        node,
        node_id,
    }
}

impl World {
    /// Every request body the provider received so far.
    fn bodies(&self) -> Vec<String> {
        self.fake
            .requests()
            .into_iter()
            .map(|r| r.raw_body)
            .collect()
    }

    /// (path, outcome, precision) of each location audit row, sorted.
    async fn audit(&self) -> Vec<(String, String, String)> {
        let rows = self.host.cli(&["location", "audit"]).await.unwrap();
        let mut rows: Vec<_> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["deviceId"], self.node_id.as_str(), "{r}");
                (
                    r["path"].as_str().unwrap().to_string(),
                    r["outcome"].as_str().unwrap().to_string(),
                    r["precision"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        rows.sort();
        rows
    }

    /// The node's own record, read as the node: (command, requester kind, outcome, error
    /// code), sorted; and the raw record.
    async fn own_record(&self) -> (Vec<(String, String, String, String)>, Value) {
        let own = self.node.access(&[]).await.unwrap();
        assert_eq!(own["nodeId"], self.node_id.as_str());
        let mut rows: Vec<_> = own["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let who = &e["requester"];
                match who["kind"].as_str().unwrap() {
                    "turn" => {
                        assert_eq!(who["sessionKey"], "main", "{e}");
                        assert!(who["turnId"].as_str().is_some_and(|t| !t.is_empty()), "{e}");
                    }
                    "operator" => assert_eq!(who["label"], "perch-cli", "{e}"),
                    other => panic!("unexpected requester {other}: {e}"),
                }
                (
                    e["command"].as_str().unwrap().to_string(),
                    who["kind"].as_str().unwrap().to_string(),
                    e["outcome"].as_str().unwrap().to_string(),
                    e["errorCode"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        rows.sort();
        // The record says what ran and who asked, never what the node answered.
        assert_none_reached("the access record", &[own.to_string()], VIENNA_COORDINATES);
        (rows, own)
    }

    /// The operator runs `command` on the node through the CLI.
    async fn operator_invokes(&self, command: &str) -> Value {
        self.host
            .cli(&["nodes", "invoke", "Phone", command])
            .await
            .unwrap_or_else(|e| panic!("{command}: {e}\n{}", self.node.log()))
    }
}

fn row(command: &str, who: &str, outcome: &str, code: &str) -> (String, String, String, String) {
    (command.into(), who.into(), outcome.into(), code.into())
}

/// The tool messages of a request body, as the provider received them.
fn tool_messages(raw_body: &str) -> Vec<String> {
    let body: Value = serde_json::from_str(raw_body).unwrap();
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_sends_no_coordinates_to_the_provider_by_any_path() {
    let w = world().await;
    // Sharing is off until the user says otherwise. The model calls the tool it was not
    // offered, plainly and naming the node, and the node's other tools.
    let prefix = &w.node_id[..12];
    w.fake.push(
        Script::new()
            .tool_call("c1", "location_get", ["{}"])
            .tool_call("c2", "location_get", [format!(r#"{{"node":"{prefix}"}}"#)])
            .tool_call("c3", "device_status", ["{}"])
            .tool_call("c4", "device_info", ["{}"])
            .stop(StopReason::ToolUse),
    );
    w.fake.push(Script::new().text("I can't tell.").usage(2, 2));
    let r = w.host.cli(&["chat", "Where am I?"]).await.unwrap();
    assert_eq!(r["text"], "I can't tell.");
    // A second turn: the history (tool results included) goes to the provider again.
    w.fake.push(Script::new().text("Still can't.").usage(2, 2));
    w.host.cli(&["chat", "And now?"]).await.unwrap();

    let bodies = w.bodies();
    assert_eq!(bodies.len(), 3);
    // Offered: the node's other tools. Not offered: location; no device-context block.
    assert!(offered(&bodies[0], "device_status"), "{}", bodies[0]);
    assert!(!bodies[0].contains("location_get"), "{}", bodies[0]);
    for b in &bodies {
        assert!(!offered(b, "location_get"), "{b}");
        assert!(!b.contains("device-context"), "{b}");
    }
    let tools = tool_messages(&bodies[1]);
    assert_eq!(tools.len(), 4, "{tools:?}");
    let refused: Vec<_> = tools
        .iter()
        .filter(|t| t.contains("LOCATION_SHARING_OFF"))
        .collect();
    assert_eq!(refused.len(), 2, "{tools:?}");
    let mut secrets = VIENNA_COORDINATES.to_vec();
    secrets.extend(["Vienna", "Wien", "Europe/Vienna"]);
    assert_none_reached("the model provider", &bodies, &secrets);

    // Both refusals are audited as tool reads that were off.
    assert_eq!(
        w.audit().await,
        vec![("tool".into(), "off".into(), "off".into()); 2]
    );
    // The operator reads the location itself (not a model read: no audit row).
    let fix = w.operator_invokes("location.get").await;
    assert_eq!(fix["lat"], 48.2085);
    assert_eq!(w.audit().await.len(), 2);
    assert_eq!(
        w.fake.requests().len(),
        3,
        "nothing more went to the provider"
    );

    let (rows, own) = w.own_record().await;
    let mut want = vec![
        row("location.get", "turn", "refused", "LOCATION_SHARING_OFF"),
        row("location.get", "turn", "refused", "LOCATION_SHARING_OFF"),
        row("device.status", "turn", "ok", ""),
        row("device.info", "turn", "ok", ""),
        row("location.get", "operator", "ok", ""),
    ];
    want.sort();
    assert_eq!(rows, want, "{own:#}");
}

/// Whether the request body offers a tool named `name` (in its `tools` list).
fn offered(raw_body: &str, name: &str) -> bool {
    let body: Value = serde_json::from_str(raw_body).unwrap();
    body["tools"].as_array().is_some_and(|tools| {
        tools
            .iter()
            .any(|t| t["function"]["name"] == name || t["name"] == name)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn city_sends_the_city_and_no_coordinates() {
    let w = world().await;
    w.host
        .cli(&["location", "share", "Phone", "--precision", "city"])
        .await
        .unwrap();
    w.fake.push(
        Script::new()
            .tool_call("c1", "location_get", ["{}"])
            .stop(StopReason::ToolUse),
    );
    w.fake.push(Script::new().text("Vienna.").usage(2, 2));
    let r = w.host.cli(&["chat", "Where am I?"]).await.unwrap();
    assert_eq!(r["text"], "Vienna.");

    let bodies = w.bodies();
    assert_eq!(bodies.len(), 2);
    assert!(offered(&bodies[0], "location_get"), "{}", bodies[0]);
    assert!(bodies[0].contains("device-context"), "{}", bodies[0]);
    for b in &bodies {
        assert!(b.contains("Vienna"), "{b}");
    }
    assert!(
        tool_messages(&bodies[1])[0].contains("Vienna"),
        "{}",
        bodies[1]
    );
    assert_none_reached("the model provider", &bodies, VIENNA_COORDINATES);
    assert_eq!(
        w.audit().await,
        vec![
            ("context".into(), "included".into(), "city".into()),
            ("tool".into(), "included".into(), "city".into()),
        ]
    );

    let info = w.operator_invokes("device.info").await;
    assert!(info.get("systemName").is_some(), "{info}");
    let (rows, own) = w.own_record().await;
    let mut want = vec![
        row("location.get", "turn", "ok", ""),
        row("location.get", "turn", "ok", ""),
        row("device.info", "operator", "ok", ""),
    ];
    want.sort();
    assert_eq!(rows, want, "{own:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_sends_the_coordinates_and_audits_each_read() {
    let w = world().await;
    w.host
        .cli(&["location", "share", "Phone", "--precision", "exact"])
        .await
        .unwrap();
    w.fake.push(
        Script::new()
            .tool_call("c1", "location_get", ["{}"])
            .stop(StopReason::ToolUse),
    );
    w.fake
        .push(Script::new().text("Stephansplatz.").usage(2, 2));
    w.host.cli(&["chat", "Where exactly am I?"]).await.unwrap();

    let bodies = w.bodies();
    assert_eq!(bodies.len(), 2);
    // The block at the start of the turn, then the tool result: both carry the coordinates.
    assert!(!found(&bodies[0], &["48.208"]).is_empty(), "{}", bodies[0]);
    let tool = &tool_messages(&bodies[1])[0];
    assert!(
        tool.contains("48.2085") && tool.contains("16.3721"),
        "{tool}"
    );
    assert_eq!(
        w.audit().await,
        vec![
            ("context".into(), "included".into(), "exact".into()),
            ("tool".into(), "included".into(), "exact".into()),
        ]
    );
    // The operator's own read is exact and is no model read: no audit row.
    let fix = w.operator_invokes("location.get").await;
    assert_eq!(fix["lon"], 16.3721);
    assert_eq!(w.audit().await.len(), 2);

    let (rows, own) = w.own_record().await;
    let mut want = vec![
        row("location.get", "turn", "ok", ""),
        row("location.get", "turn", "ok", ""),
        row("location.get", "operator", "ok", ""),
    ];
    want.sort();
    assert_eq!(rows, want, "{own:#}");
    // Both model reads belong to the one turn.
    let turns: Vec<&Value> = own["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["requester"]["kind"] == "turn")
        .map(|e| &e["requester"]["turnId"])
        .collect();
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[0], turns[1], "{own:#}");
}
