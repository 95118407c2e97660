//! The assistant end to end across real processes: `perch serve` configured with a model tier
//! that points at a fake provider (the real OpenAI wire format over HTTP), a real
//! `perch node run`, and `perch chat`. In one turn the model calls `location.get` on the node and
//! answers with the result.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};

use perch_kernel::model::StopReason;
use perch_kernel::testing::{FakeProvider, Script};

const PERCH: &str = env!("CARGO_BIN_EXE_perch");

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

fn spawn(args: &[&str]) -> Proc {
    Proc(
        Command::new(PERCH)
            .args(args)
            .env("PERCH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    )
}

async fn cli(dir: &std::path::Path, port: u16, args: &[&str]) -> Result<Value, Value> {
    let out = Command::new(PERCH)
        .args(args)
        .args(["--json", "--data-dir"])
        .arg(dir)
        .args(["--gateway", &format!("ws://127.0.0.1:{port}")])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if out.status.success() { Ok(v) } else { Err(v) }
}

async fn until<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_calls_location_get_on_a_real_node() {
    let fake = FakeProvider::start().await.unwrap();
    let host_dir = tempfile::tempdir().unwrap();
    let node_dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        host_dir.path().join("perch.toml"),
        format!(
            "[models.default]\nprovider = \"openai\"\nmodel = \"test-model\"\nbase_url = \"{}\"\n",
            fake.openai_base_url()
        ),
    )
    .unwrap();
    let bind = format!("127.0.0.1:{port}");
    let _host = spawn(&[
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
    let _node = spawn(&[
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
