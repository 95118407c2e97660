//! Scenario `ffi`: `device.info` round trips through one `perch serve`, answered (a) by the
//! Rust node runtime with its Rust handler (`perch node run`) and (b) by a Kotlin node process
//! (perch-ffi's runtime with a Kotlin `DeviceInfoProvider`, mobile-android/bench's
//! KotlinNode), from the same operator driver with the same counts: what the uniffi callback
//! and the JVM add to an invoke. The Kotlin node is started with the shell command in
//! `PERCH_BENCH_KOTLIN_NODE` (scripts/ffi-bench.sh sets it); unset, that half is skipped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{Host, Latency, PERCH, SAMPLES, START_WAIT, WARMUP, operator, request, timed_invokes};

/// The env var naming the command that starts the Kotlin node.
pub const KOTLIN_NODE_ENV: &str = "PERCH_BENCH_KOTLIN_NODE";

/// Both halves' latencies; `kotlin` is `None` when the command was not given.
pub struct FfiFigures {
    pub rust: Latency,
    pub kotlin: Option<Latency>,
}

impl FfiFigures {
    pub fn json(&self) -> Value {
        let mut out = json!({"rust_node": self.rust.json()});
        if let Some(k) = &self.kotlin {
            out["kotlin_node"] = k.json();
            out["kotlin_over_rust_p50"] =
                json!(((k.p50_us / self.rust.p50_us) * 1000.0).round() / 1000.0);
        }
        out
    }

    pub fn print(&self) {
        println!();
        println!(
            "## device.info round trip by node runtime ({SAMPLES} calls after {WARMUP} warm-up, one host)"
        );
        println!();
        println!("| node | p50 µs | p90 µs | p99 µs | max µs | mean µs |");
        println!("|---|---:|---:|---:|---:|---:|");
        let row = |label: &str, l: &Latency| {
            println!(
                "| {label} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                l.p50_us, l.p90_us, l.p99_us, l.max_us, l.mean_us
            );
        };
        row("Rust runtime, Rust handler (perch node run)", &self.rust);
        match &self.kotlin {
            Some(k) => row("perch-ffi runtime, Kotlin provider (JVM)", k),
            None => println!("| Kotlin node: skipped ({KOTLIN_NODE_ENV} not set) | | | | | |"),
        }
    }
}

/// A node child process, killed on drop.
struct NodeProc(Child);

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh setup code from the host's CLI.
fn setup_code(host: &Host, data_dir: &Path) -> Result<String> {
    let out = Command::new(PERCH)
        .args(["devices", "setup-code", "--json", "--gateway", &host.url()])
        .arg("--data-dir")
        .arg(data_dir)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run perch devices setup-code")?;
    if !out.status.success() {
        bail!("perch devices setup-code failed ({})", out.status);
    }
    let v: Value = serde_json::from_slice(&out.stdout).context("setup-code --json")?;
    v["setupCode"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no setupCode in {v}"))
}

/// The node id of the online node named `name`, polled through `node.list` until the deadline.
async fn online_node(host: &Host, name: &str) -> Result<String> {
    let mut op = operator(&host.url(), &host.token).await?;
    let deadline = Instant::now() + START_WAIT;
    for i in 0.. {
        let res = request(&mut op, &format!("l{i}"), "node.list", json!({}))
            .await?
            .map_err(|e| anyhow!("node.list refused: {e}"))?;
        // The result is the list itself (older hosts: `{"nodes": [...]}`).
        let found = res
            .as_array()
            .or_else(|| res["nodes"].as_array())
            .and_then(|nodes| {
                nodes
                    .iter()
                    .find(|n| n["displayName"] == name && n["online"] == true)
                    .and_then(|n| n["nodeId"].as_str().map(str::to_string))
            });
        if let Some(id) = found {
            let _ = op.close(None).await;
            return Ok(id);
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("node {name:?} did not come online within {START_WAIT:?}")
}

/// Starts the Kotlin node with the command in [`KOTLIN_NODE_ENV`] and waits for its `ONLINE`.
async fn kotlin_node(
    cmd: &str,
    code: &str,
    dir: &Path,
    name: &str,
) -> Result<tokio::process::Child> {
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", cmd])
        .env("PERCH_SETUP_CODE", code)
        .env("PERCH_NODE_NAME", name)
        .env("PERCH_NODE_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start the Kotlin node ({cmd})"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let online = tokio::time::timeout(START_WAIT, async {
        while let Some(line) = lines.next_line().await? {
            if line.trim() == "ONLINE" {
                return Ok(());
            }
        }
        bail!("the Kotlin node exited before it came online")
    })
    .await
    .map_err(|_| anyhow!("the Kotlin node did not come online within {START_WAIT:?}"))?;
    online?;
    // Its standard input stays open (held by the child handle) until the drop kills it.
    Ok(child)
}

pub async fn ffi_scenario() -> Result<FfiFigures> {
    let dir = tempfile::tempdir().context("cannot make a temporary data directory")?;
    let host = Host::start(dir.path()).await?;

    let rust_dir = tempfile::tempdir()?;
    let code = setup_code(&host, dir.path())?;
    let _rust_node = NodeProc(
        Command::new(PERCH)
            .args([
                "node",
                "run",
                "--setup-code",
                &code,
                "--name",
                "Rust Bench Node",
            ])
            .arg("--data-dir")
            .arg(rust_dir.path())
            .env("PERCH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start perch node run")?,
    );
    let rust_id = online_node(&host, "Rust Bench Node").await?;
    eprintln!("bench: ffi, Rust node...");
    let (samples, _) =
        timed_invokes(&host.url(), &host.token, "fr", &[rust_id], WARMUP, SAMPLES).await?;
    let rust = Latency::from_samples(samples)?;

    let kotlin = match std::env::var(KOTLIN_NODE_ENV) {
        Ok(cmd) if !cmd.trim().is_empty() => {
            let kt_dir = tempfile::tempdir()?;
            let code = setup_code(&host, dir.path())?;
            let _kt = kotlin_node(&cmd, &code, kt_dir.path(), "Kotlin Bench Node").await?;
            let kt_id = online_node(&host, "Kotlin Bench Node").await?;
            eprintln!("bench: ffi, Kotlin node...");
            let (samples, _) =
                timed_invokes(&host.url(), &host.token, "fk", &[kt_id], WARMUP, SAMPLES).await?;
            Some(Latency::from_samples(samples)?)
        }
        _ => {
            eprintln!(
                "bench: ffi, Kotlin node skipped: set {KOTLIN_NODE_ENV} to the command that starts it \
                 (scripts/ffi-bench.sh does)"
            );
            None
        }
    };
    Ok(FfiFigures { rust, kotlin })
}
