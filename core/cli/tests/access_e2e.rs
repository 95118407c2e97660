//! The access record end to end across real processes: a real `perch serve` (its default tier a
//! fake model provider over real HTTP), a real `perch node run`, operator invokes through the
//! CLI and assistant turns whose model calls the node's tools. Then the node reads its own
//! record as itself (`perch node access`, through the node runtime's host-call API) and sees
//! every command run on it with who asked, and `perch devices access` shows the same rows.

mod procs;

use serde_json::Value;

use procs::*;

use perch_kernel::model::StopReason;
use perch_kernel::testing::{FakeProvider, Script};

/// (command, requester kind, outcome, error code) of each row, newest first.
fn rows(list: &Value) -> Vec<(String, String, String, String)> {
    list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["command"].as_str().unwrap().to_string(),
                e["requester"]["kind"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
                e["errorCode"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reads_what_was_run_on_it_and_who_asked() {
    let fake = FakeProvider::start().await.unwrap();
    let host_dir = tempfile::tempdir().unwrap();
    let node_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        host_dir.path().join("perch.toml"),
        fake_models_toml(&fake.openai_base_url()),
    )
    .unwrap();
    let bind = format!("127.0.0.1:{port}");
    let host = host_dir.path();
    let _host = spawn_logged(
        &[
            "serve",
            "--data-dir",
            host.to_str().unwrap(),
            "--bind",
            &bind,
        ],
        "warn",
    );
    until("the host", || async {
        cli(host, port, &["status"]).await.ok()
    })
    .await;
    let _node = spawn_logged(
        &[
            "node",
            "run",
            "--gateway",
            &format!("ws://{bind}"),
            "--data-dir",
            node_dir.path().to_str().unwrap(),
            "--name",
            "Phone",
            "--location",
            "48.2085,16.3721,15",
        ],
        "warn",
    );
    let rid = until("a pairing request", || async {
        let l = cli(host, port, &["devices", "list"]).await.ok()?;
        l["pending"].as_array()?.first()?["requestId"]
            .as_str()
            .map(String::from)
    })
    .await;
    cli(host, port, &["devices", "approve", &rid])
        .await
        .unwrap();
    let node_id = until("the node online", || async {
        let l = cli(host, port, &["nodes", "list"]).await.ok()?;
        (l[0]["online"] == true).then(|| l[0]["nodeId"].as_str().unwrap().to_string())
    })
    .await;

    // Nothing was run yet: the node's record is empty (and reading it is not an access).
    let empty = node_access(node_dir.path(), &[]).await.unwrap();
    assert_eq!(empty["nodeId"], node_id.as_str());
    assert_eq!(empty["entries"], Value::Array(vec![]));

    // An operator runs a command; the same call retried with its key is not a second access.
    let key = ["--idempotency-key", "access-e2e-1"];
    for _ in 0..2 {
        let r = cli(
            host,
            port,
            &[&["nodes", "invoke", "Phone", "device.info"][..], &key[..]].concat(),
        )
        .await
        .unwrap();
        assert!(r.get("systemName").is_some(), "device.info answered: {r}");
    }
    // A command the node does not offer is refused by the host on the node's behalf.
    let refused = cli(host, port, &["nodes", "invoke", "Phone", "system.run"])
        .await
        .unwrap_err();
    assert_eq!(refused["error"]["code"], "COMMAND_NOT_ALLOWED");
    // A name nobody has is the caller's mistake, not an access to any node.
    let unknown = cli(host, port, &["nodes", "invoke", "Nobody", "device.info"])
        .await
        .unwrap_err();
    assert_eq!(unknown["error"]["code"], "NODE_NOT_FOUND");

    // The assistant: one turn reads device.info from the node...
    fake.push(
        Script::new()
            .tool_call("call_1", "device_info", ["{}"])
            .stop(StopReason::ToolUse),
    );
    fake.push(Script::new().text("It is a Linux machine.").usage(30, 6));
    let turn1 = cli(host, port, &["chat", "What is this machine?"])
        .await
        .unwrap();
    assert_eq!(turn1["text"], "It is a Linux machine.");
    assert_eq!(turn1["toolCalls"], 1);
    // ...and one asks for its location, which the user does not share: refused, still recorded.
    fake.push(
        Script::new()
            .tool_call("call_1", "location_get", ["{}"])
            .stop(StopReason::ToolUse),
    );
    fake.push(
        Script::new()
            .text("I cannot see where you are.")
            .usage(30, 6),
    );
    let turn2 = cli(host, port, &["chat", "Where am I?"]).await.unwrap();
    assert_eq!(turn2["text"], "I cannot see where you are.");
    let told = &fake.requests()[3].raw_body;
    assert!(told.contains("LOCATION_SHARING_OFF"), "{told}");
    assert!(!told.contains("48.2085"), "{told}");

    // The node reads its own record, as itself, while `perch node run` keeps serving.
    let own = node_access(node_dir.path(), &[]).await.unwrap();
    assert_eq!(own["nodeId"], node_id.as_str());
    let want = vec![
        (
            "location.get".to_string(),
            "turn".to_string(),
            "refused".to_string(),
            "LOCATION_SHARING_OFF".to_string(),
        ),
        ("device.info".into(), "turn".into(), "ok".into(), "".into()),
        (
            "system.run".into(),
            "operator".into(),
            "refused".into(),
            "COMMAND_NOT_ALLOWED".into(),
        ),
        (
            "device.info".into(),
            "operator".into(),
            "ok".into(),
            "".into(),
        ),
    ];
    assert_eq!(rows(&own), want, "{own:#}");
    // Who asked: the turns name their session and turn; the operator is the CLI.
    let entries = own["entries"].as_array().unwrap();
    for turn in &entries[..2] {
        assert_eq!(turn["requester"]["sessionKey"], "main", "{turn}");
        assert!(
            turn["requester"]["turnId"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        );
    }
    assert_ne!(
        entries[0]["requester"]["turnId"], entries[1]["requester"]["turnId"],
        "two turns"
    );
    for op in &entries[2..] {
        assert_eq!(op["requester"]["label"], "perch-cli", "{op}");
    }
    // When: newest first, and never the payload.
    let times: Vec<i64> = entries
        .iter()
        .map(|e| e["atMs"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let text = own.to_string();
    assert!(
        !text.contains("systemName") && !text.contains("16.3721"),
        "{text}"
    );

    // The operator's view of the same device is the same record.
    let seen = cli(host, port, &["devices", "access", "Phone"])
        .await
        .unwrap();
    assert_eq!(seen, own);

    // Paging: two rows, then the rest from the cursor, on both sides.
    let first = cli(host, port, &["devices", "access", "Phone", "--limit", "2"])
        .await
        .unwrap();
    assert_eq!(rows(&first), want[..2]);
    let cursor = first["nextBefore"].as_str().unwrap().to_string();
    let rest = node_access(node_dir.path(), &["--limit", "2", "--before", &cursor])
        .await
        .unwrap();
    assert_eq!(rows(&rest), want[2..]);
    assert_eq!(rest.get("nextBefore"), None);

    // Bad params get structured errors.
    let bad = cli(host, port, &["devices", "access", "Phone", "--limit", "0"])
        .await
        .unwrap_err();
    assert_eq!(bad["error"]["code"], "INVALID_REQUEST");
    let bad = node_access(node_dir.path(), &["--before", "not-a-cursor"])
        .await
        .unwrap_err();
    assert_eq!(bad["error"]["code"], "INVALID_REQUEST", "{bad}");
    let bad = cli(host, port, &["devices", "access", "Nobody"])
        .await
        .unwrap_err();
    assert_eq!(bad["error"]["code"], "NODE_NOT_FOUND");

    // Reading as the node did not take the running node's place: it still answers.
    let l = cli(host, port, &["nodes", "list"]).await.unwrap();
    assert_eq!(l[0]["online"], true);
    assert!(
        l[0]["commands"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == "device.info")),
        "{l}"
    );
    cli(host, port, &["nodes", "invoke", "Phone", "device.status"])
        .await
        .unwrap();
    let after = node_access(node_dir.path(), &["--limit", "1"])
        .await
        .unwrap();
    assert_eq!(rows(&after)[0].0, "device.status");

    // Shared exactly, a turn reads the location twice: the device-context block at the start
    // of the turn, then the model's tool call. Both are that turn's, both are in the record.
    cli(
        host,
        port,
        &["location", "share", "Phone", "--precision", "exact"],
    )
    .await
    .unwrap();
    fake.push(
        Script::new()
            .tool_call("call_1", "location_get", ["{}"])
            .stop(StopReason::ToolUse),
    );
    fake.push(Script::new().text("Vienna.").usage(30, 2));
    cli(host, port, &["chat", "Where am I now?"]).await.unwrap();
    let two = node_access(node_dir.path(), &["--limit", "2"])
        .await
        .unwrap();
    let located = (
        "location.get".to_string(),
        "turn".to_string(),
        "ok".to_string(),
        String::new(),
    );
    assert_eq!(rows(&two), [located.clone(), located], "{two:#}");
    assert_eq!(
        two["entries"][0]["requester"]["turnId"], two["entries"][1]["requester"]["turnId"],
        "{two:#}"
    );
    assert!(!two.to_string().contains("48.2085"), "{two}");
}
