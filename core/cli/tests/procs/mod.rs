//! Real `perch` processes for end-to-end tests: spawning them (killed however the test ends),
//! picking a free port, running an operator command with `--json`, and waiting with a bound.

#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};

/// The `perch` binary under test.
pub const PERCH: &str = env!("CARGO_BIN_EXE_perch");

/// A child process killed when the test ends, however it ends.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `perch ARGS` with its stdout discarded and its log (at `level`) on the test's stderr.
pub fn spawn_logged(args: &[&str], level: &str) -> Proc {
    Proc(
        Command::new(PERCH)
            .args(args)
            .env("PERCH_LOG", level)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    )
}

/// Runs an operator command with `--json` against the host on `port`: `Ok(stdout)` on success,
/// `Err(stdout)` otherwise (parsed as JSON when it is JSON).
pub async fn cli(host_dir: &Path, port: u16, args: &[&str]) -> Result<Value, Value> {
    let out = Command::new(PERCH)
        .args(args)
        .args(["--json", "--data-dir"])
        .arg(host_dir)
        .args(["--gateway", &format!("ws://127.0.0.1:{port}")])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if out.status.success() { Ok(v) } else { Err(v) }
}

/// Polls `f` until it yields Some, or panics after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// [`eventually`] with the usual 30 s bound.
pub async fn until<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually(what, Duration::from_secs(30), f).await
}

/// A perch.toml whose default tier is the fake provider at `base_url` (local: no credential).
pub fn fake_models_toml(base_url: &str) -> String {
    format!(
        "[models.default]\nprovider = \"openai\"\nmodel = \"test-model\"\nbase_url = \"{base_url}\"\n"
    )
}
