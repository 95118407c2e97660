//! Unauthenticated load across processes: 5,000 sockets that open, upgrade to WebSocket and
//! then say nothing do not stop a real `perch node run` from pairing and being invoked.
//!
//! The host's perch.toml raises `max_connections` above 5,000 (the default of 4,096 would
//! refuse the rest with 503, which `core/gateway/tests/limits.rs` covers) and stretches the
//! handshake deadline and tick interval, so every idle socket is still open when the node is
//! invoked. The open-file soft limit is raised for the test process (and so for its children);
//! if the hard limit is too low the test says so and skips.

#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

const PERCH: &str = env!("CARGO_BIN_EXE_perch");
const IDLE: usize = 5_000;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Raises the soft open-file limit to `want`; `Err` with the reason if the hard limit is lower.
// rlim_t is not u64 on every unix.
#[allow(clippy::unnecessary_cast)]
fn raise_nofile(want: u64) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err("getrlimit failed".into());
    }
    if (lim.rlim_cur as u64) >= want {
        return Ok(());
    }
    if (lim.rlim_max as u64) < want {
        return Err(format!(
            "the hard open-file limit is {} and this test needs {want}",
            lim.rlim_max
        ));
    }
    let raised = libc::rlimit {
        rlim_cur: want as libc::rlim_t,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err("setrlimit failed".into());
    }
    Ok(())
}

async fn cli(host_dir: &Path, port: u16, args: &[&str]) -> Result<Value, Value> {
    let gateway = format!("ws://127.0.0.1:{port}");
    let out = Command::new(PERCH)
        .args(args)
        .args(["--json", "--data-dir"])
        .arg(host_dir)
        .args(["--gateway", &gateway])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if out.status.success() { Ok(v) } else { Err(v) }
}

async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
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
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_idle_sockets_do_not_stop_a_node_from_pairing_and_being_invoked() {
    // Our 5,000 ends, the host's 5,000 ends (it inherits the raised limit), and room to spare.
    if let Err(why) = raise_nofile(2 * IDLE as u64 + 1024) {
        println!("skipped: {why}");
        return;
    }
    let host_dir = tempfile::tempdir().unwrap();
    let node_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        host_dir.path().join("perch.toml"),
        "[gateway]\nmax_connections = 8192\nhandshake_timeout_ms = 600000\ntick_interval_ms = 120000\n",
    )
    .unwrap();
    let port = free_port();
    let gateway = format!("ws://127.0.0.1:{port}");
    let _host = Proc(
        Command::new(PERCH)
            .args(["serve", "--data-dir"])
            .arg(host_dir.path())
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .env("PERCH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    );
    eventually("the host to answer", Duration::from_secs(30), || async {
        cli(host_dir.path(), port, &["status"]).await.ok()
    })
    .await;

    // 5,000 sockets, upgraded, that never send `connect` (nor anything else).
    let url = gateway.clone();
    let mut idle: Vec<_> = futures_util::stream::iter(0..IDLE)
        .map(|_| {
            let url = url.clone();
            async move {
                tokio_tungstenite::connect_async(url)
                    .await
                    .map(|(ws, _)| ws)
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("every idle socket upgrades under max_connections");
    assert_eq!(idle.len(), IDLE);

    let _node = Proc(
        Command::new(PERCH)
            .args(["node", "run", "--gateway", &gateway, "--data-dir"])
            .arg(node_dir.path())
            .args(["--name", "Busy Node"])
            .env("PERCH_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    );
    let request_id = eventually("a pending request", Duration::from_secs(60), || async {
        let list = cli(host_dir.path(), port, &["devices", "list"])
            .await
            .ok()?;
        let p = list["pending"].as_array()?.first()?.clone();
        Some(p["requestId"].as_str()?.to_string())
    })
    .await;
    cli(host_dir.path(), port, &["devices", "approve", &request_id])
        .await
        .unwrap();
    let info = eventually("an invoke to answer", Duration::from_secs(60), || async {
        cli(
            host_dir.path(),
            port,
            &["nodes", "invoke", "Busy Node", "device.info"],
        )
        .await
        .ok()
    })
    .await;
    assert_eq!(info["appVersion"], env!("CARGO_PKG_VERSION"));

    // The idle sockets were held open all along: each still has its challenge to read.
    for ws in idle.iter_mut().step_by(500) {
        let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an idle socket answers");
        match first {
            Some(Ok(Message::Text(t))) => assert!(t.as_str().contains("connect.challenge")),
            other => panic!("idle socket was closed: {other:?}"),
        }
    }
}
