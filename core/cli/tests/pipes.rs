//! A reader that stops early (`perch nodes list --json | grep -q x`, `perch ... | head -1`) ends
//! a one-shot command quietly: exit 0 or SIGPIPE (the shell's 141), never a panic or an error
//! message. Each run here gets a stdout whose read end is closed before perch starts, so every
//! write meets a broken pipe, deterministically. Long-running commands (`perch serve`,
//! `perch node run`) started the same way carry on without their stdout.
#![cfg(unix)]

mod procs;

use procs::*;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use perch_kernel::testing::{FakeProvider, Script};

/// SIGPIPE's number on Linux and macOS.
const SIGPIPE: i32 = 13;

/// A pipe whose read end is already closed: its write end as a child's stdout.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

/// Runs perch with a stdout nobody reads; returns how it ended and its stderr. (Spawned, not
/// `output()`: tokio's `output()` replaces stdout with a pipe of its own.)
async fn run_unread(args: &[&str]) -> (ExitStatus, String) {
    let child = Command::new(PERCH)
        .args(args)
        .env("PERCH_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.stdout.is_empty(), "stdout was read after all");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Exit 0 or SIGPIPE, and nothing on stderr about it.
fn assert_quiet_end(what: &str, status: ExitStatus, stderr: &str) {
    assert!(
        status.code() == Some(0) || status.signal() == Some(SIGPIPE),
        "perch {what} ended with {status}; stderr:\n{stderr}"
    );
    for noise in ["panicked", "Broken pipe", "error"] {
        assert!(
            !stderr.contains(noise),
            "perch {what} printed {noise:?}:\n{stderr}"
        );
    }
}

/// An operator command with `--json`, read normally.
async fn cli(dir: &Path, gateway: &str, args: &[&str]) -> Option<Value> {
    let out = Command::new(PERCH)
        .args(args)
        .args(["--json", "--data-dir"])
        .arg(dir)
        .args(["--gateway", gateway])
        .output()
        .await
        .unwrap();
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

#[tokio::test]
async fn help_and_completions_end_quietly_when_the_reader_is_gone() {
    for args in [
        &["--help"][..],
        &["nodes", "--help"],
        &["completions", "bash"],
        &["completions", "zsh"],
        &["completions", "fish"],
        &["service", "status"],
    ] {
        let (status, stderr) = run_unread(args).await;
        assert_quiet_end(&args.join(" "), status, &stderr);
    }
}

/// `perch completions bash | head -c 16`: the reader takes a little, then goes.
#[tokio::test]
async fn a_reader_that_stops_after_a_few_bytes() {
    let mut child = Command::new(PERCH)
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).await.unwrap();
    drop(stdout);
    let out = child.wait_with_output().await.unwrap();
    assert!(String::from_utf8_lossy(&first).contains("_perch"));
    assert_quiet_end(
        "completions bash",
        out.status,
        &String::from_utf8_lossy(&out.stderr),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_end_quietly_and_services_carry_on() {
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
    let gateway = format!("ws://{bind}");
    let host_dir_s = host_dir.path().to_str().unwrap();

    // The host's own stdout is closed from the start: its "listening" line meets a broken
    // pipe, and it serves anyway.
    let mut host = Proc(
        Command::new(PERCH)
            .args(["serve", "--data-dir", host_dir_s, "--bind", &bind])
            .env("PERCH_LOG", "warn")
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    );
    until("the host to answer", || {
        cli(host_dir.path(), &gateway, &["status"])
    })
    .await;

    // So does a node: it prints as it connects, then asks to pair.
    let node_dir_s = node_dir.path().to_str().unwrap();
    let mut node = Proc(
        Command::new(PERCH)
            .args([
                "node",
                "run",
                "--gateway",
                &gateway,
                "--data-dir",
                node_dir_s,
            ])
            .args(["--name", "Pipe"])
            .env("PERCH_LOG", "warn")
            .stdout(closed_pipe())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    );
    until("the node's pairing request", || async {
        let l = cli(host_dir.path(), &gateway, &["devices", "list"]).await?;
        (!l["pending"].as_array()?.is_empty()).then_some(())
    })
    .await;
    assert!(
        node.0.try_wait().unwrap().is_none(),
        "the node stopped when its stdout closed"
    );

    let op = |args: &[&str]| {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        v.extend(["--data-dir".into(), host_dir_s.into(), "--gateway".into()]);
        v.push(gateway.clone());
        v
    };
    fake.push(
        Script::new()
            .text("Hello from a long answer that streams in pieces. ")
            .text("Nobody reads it.")
            .usage(10, 10),
    );
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["nodes", "list"],
        &["nodes", "list", "--json"],
        &["devices", "list"],
        &["devices", "list", "--json"],
        &["devices", "setup-code"],
        &["presence"],
        &["sessions", "list"],
        // An error answer printed as JSON on stdout.
        &["nodes", "describe", "no-such-node", "--json"],
        // Streamed answer text.
        &["chat", "Say something long"],
    ] {
        let args = op(args);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, stderr) = run_unread(&refs).await;
        let what = refs[..refs.len() - 4].join(" ");
        if what.contains("no-such-node") {
            // The host's refusal ends it with 1 when the JSON error is read; with nobody
            // reading, the write stops it first.
            assert!(
                status.code() == Some(1) || status.signal() == Some(SIGPIPE),
                "{what}: {status} {stderr}"
            );
            assert!(!stderr.contains("panicked"), "{what}: {stderr}");
            continue;
        }
        assert_quiet_end(&what, status, &stderr);
    }
    // The chat turn reached the model before its answer met the closed pipe.
    until("the chat request at the model", || async {
        (!fake.requests().is_empty()).then_some(())
    })
    .await;

    // The host still answers, and stops cleanly on SIGTERM.
    assert!(
        cli(host_dir.path(), &gateway, &["status"]).await.is_some(),
        "the host stopped serving"
    );
    let pid = host.0.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), host.0.wait())
        .await
        .expect("the host stops after SIGTERM")
        .unwrap();
    let mut stderr = String::new();
    host.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(status.success(), "serve ended with {status}:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
