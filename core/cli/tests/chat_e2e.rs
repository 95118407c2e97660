//! The assistant end to end across real processes: `perch serve` configured with a model tier
//! that points at a fake provider (the real OpenAI wire format over HTTP), a real
//! `perch node run`, and `perch chat`. In one turn the model calls `location.get` on the node and
//! answers with the result.

mod procs;

use procs::*;

use perch_kernel::model::StopReason;
use perch_kernel::testing::{FakeProvider, Script};

fn spawn(args: &[&str]) -> Proc {
    spawn_logged(args, "warn")
}

/// A real host whose default tier is `fake`, and a real node ("Phone", with a configured
/// location) paired to it by approval through the CLI.
struct World {
    fake: FakeProvider,
    host_dir: tempfile::TempDir,
    port: u16,
    _node_dir: tempfile::TempDir,
    _host: Proc,
    _node: Proc,
}

async fn world() -> World {
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
    let host = spawn(&[
        "serve",
        "--data-dir",
        host_dir.path().to_str().unwrap(),
        "--bind",
        &bind,
    ]);
    until("the host", || async {
        cli(host_dir.path(), port, &["status"]).await.ok()
    })
    .await;
    let node = spawn(&[
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
    ]);
    let rid = until("a pairing request", || async {
        let l = cli(host_dir.path(), port, &["devices", "list"])
            .await
            .ok()?;
        l["pending"].as_array()?.first()?["requestId"]
            .as_str()
            .map(String::from)
    })
    .await;
    cli(host_dir.path(), port, &["devices", "approve", &rid])
        .await
        .unwrap();
    until("the node online", || async {
        let l = cli(host_dir.path(), port, &["nodes", "list"]).await.ok()?;
        (l[0]["online"] == true).then_some(())
    })
    .await;
    // The assistant sees the node's location only because the user shares it, exactly.
    cli(
        host_dir.path(),
        port,
        &["location", "share", "Phone", "--precision", "exact"],
    )
    .await
    .unwrap();
    World {
        fake,
        host_dir,
        port,
        _node_dir: node_dir,
        _host: host,
        _node: node,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_calls_location_get_on_a_real_node() {
    let w = world().await;
    let (fake, host_dir, port) = (&w.fake, &w.host_dir, w.port);
    fake.push(
        Script::new()
            .tool_call("call_1", "location_get", ["{}"])
            .stop(StopReason::ToolUse),
    );
    fake.push(
        Script::new()
            .text("You are in Vienna, Austria.")
            .usage(40, 8),
    );
    let r = cli(host_dir.path(), port, &["chat", "Where am I?"])
        .await
        .unwrap();
    assert_eq!(r["text"], "You are in Vienna, Austria.");
    assert_eq!(r["toolCalls"], 1);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    // The model was offered the node's tool, and got the node's real answer.
    assert!(
        reqs[0].raw_body.contains("location_get"),
        "{}",
        reqs[0].raw_body
    );
    assert!(reqs[1].raw_body.contains("48.2085") && reqs[1].raw_body.contains("configured"));
    let h = cli(host_dir.path(), port, &["sessions", "show", "main"])
        .await
        .unwrap();
    assert_eq!(h["messages"].as_array().unwrap().len(), 4);
}

/// One turn that calls two different commands on the node in one model step, then the first
/// again in the next step (with a tool-call id the provider reuses): every call runs, each
/// result reaches the model and the transcript, and nothing is refused as a reused key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_turn_makes_several_calls_to_the_same_node() {
    let w = world().await;
    w.fake.push(
        Script::new()
            .tool_call("call_1", "location_get", ["{}"])
            .tool_call("call_2", "device_info", ["{}"])
            .stop(StopReason::ToolUse),
    );
    w.fake.push(
        Script::new()
            .tool_call(
                "call_1",
                "location_get",
                [r#"{"desiredAccuracy": "precise"}"#],
            )
            .stop(StopReason::ToolUse),
    );
    w.fake.push(
        Script::new()
            .text("You are in Vienna, on Phone.")
            .usage(60, 9),
    );
    let r = cli(
        w.host_dir.path(),
        w.port,
        &["chat", "Where am I, and what is this machine?"],
    )
    .await
    .unwrap();
    assert_eq!(r["text"], "You are in Vienna, on Phone.");
    assert_eq!(r["toolCalls"], 3);
    let reqs = w.fake.requests();
    assert_eq!(reqs.len(), 3);
    // Both results of the first step reached the model, and neither is an error.
    let second = &reqs[1].raw_body;
    assert!(second.contains("48.2085"), "{second}");
    assert!(
        second.contains("systemName"),
        "device.info answered: {second}"
    );
    assert!(!second.contains("idempotencyKey"), "{second}");
    assert!(!second.contains("FAILED"), "{second}");
    // The repeated call ran again: two tool results, plus the device-context block (exact).
    let third = &reqs[2].raw_body;
    assert_eq!(third.matches("48.2085").count(), 3, "{third}");
    let h = cli(w.host_dir.path(), w.port, &["sessions", "show", "main"])
        .await
        .unwrap();
    let msgs = h["messages"].as_array().unwrap();
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        vec![
            "user",
            "assistant",
            "tool",
            "tool",
            "assistant",
            "tool",
            "assistant"
        ]
    );
    for m in msgs.iter().filter(|m| m["role"] == "tool") {
        assert_eq!(m["isError"], false, "{m}");
    }
    let tools: Vec<&str> = msgs.iter().filter_map(|m| m["toolName"].as_str()).collect();
    assert_eq!(tools, vec!["location_get", "device_info", "location_get"]);
}
