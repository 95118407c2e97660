//! Unauthenticated load across processes: 5,000 sockets that open, upgrade to WebSocket and
//! then say nothing do not stop a real `perch node run` from pairing and being invoked.
//!
//! The host's perch.toml raises `max_connections` above 5,000 (the default of 4,096 would
//! refuse the rest with 503, which `core/gateway/tests/limits.rs` covers) and stretches the
//! handshake deadline and tick interval, so every idle socket is still open when the node is
//! invoked. The open-file soft limit is raised for the test process (and so for its children);
//! if the hard limit is too low the test says so and skips.

#![cfg(target_os = "linux")]

use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use perch_attack_tests::procs::*;
use perch_attack_tests::rlimit::raise_nofile;

const IDLE: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_idle_sockets_do_not_stop_a_node_from_pairing_and_being_invoked() {
    // Our 5,000 ends, the host's 5,000 ends (it inherits the raised limit), and room to spare.
    if let Err(why) = raise_nofile(2 * IDLE as u64 + 1024) {
        eprintln!("skipped: {why}");
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
    let _host = spawn_logged(
        &[
            "serve",
            "--data-dir",
            host_dir.path().to_str().unwrap(),
            "--bind",
            &format!("127.0.0.1:{port}"),
        ],
        "warn",
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

    let _node = spawn_logged(
        &[
            "node",
            "run",
            "--gateway",
            &gateway,
            "--data-dir",
            node_dir.path().to_str().unwrap(),
            "--name",
            "Busy Node",
        ],
        "warn",
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
