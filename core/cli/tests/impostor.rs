//! A fake host at the address the CLI dials gets no operator token: `perch status` checks the
//! host's proof against the key in its data directory before it sends anything secret.

mod procs;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

use perch_protocol::DeviceIdentity;
use perch_protocol::handshake::HostProof;
use procs::*;

const TOKEN: &str = "operator-token-that-must-never-leave-0123";

/// A WebSocket server that greets like a Perch host signed with `key` (or with no proof) and
/// forwards every text frame a client sends.
async fn impostor(
    key: Option<DeviceIdentity>,
) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            let proof = key.as_ref().map(|k| HostProof::sign(k, "n1", 7));
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let mut payload = json!({"nonce": "n1", "ts": 7});
                if let Some(p) = proof {
                    payload["host"] = serde_json::to_value(p).unwrap();
                }
                let ch = json!({"type": "event", "event": "connect.challenge", "payload": payload});
                let _ = ws.send(Message::Text(ch.to_string().into())).await;
                while let Some(Ok(m)) = ws.next().await {
                    if let Message::Text(t) = m {
                        let _ = tx.send(t.to_string());
                    }
                }
            });
        }
    });
    (port, rx)
}

/// A data directory as a host leaves it: its key and the operator token.
fn host_dir(host: &DeviceIdentity) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("host-identity.json"),
        json!({"version": 1, "privateKey": host.private_b64()}).to_string(),
    )
    .unwrap();
    std::fs::write(dir.path().join("operator.token"), format!("{TOKEN}\n")).unwrap();
    dir
}

#[tokio::test]
async fn perch_status_sends_no_token_to_a_host_with_another_key() {
    let real = DeviceIdentity::from_seed(&[1; 32]);
    let dir = host_dir(&real);
    for key in [Some(DeviceIdentity::from_seed(&[2; 32])), None] {
        let (port, mut frames) = impostor(key).await;
        let out = Command::new(PERCH)
            .args(["status", "--data-dir"])
            .arg(dir.path())
            .args(["--gateway", &format!("ws://127.0.0.1:{port}")])
            .env_remove("PERCH_OPERATOR_TOKEN")
            .env_remove("PERCH_HOST_FINGERPRINT")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "status succeeded against an impostor"
        );
        assert!(stderr.contains("no token was sent"), "{stderr}");
        assert!(!stderr.contains(TOKEN), "{stderr}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        while let Ok(f) = frames.try_recv() {
            let v: Value = serde_json::from_str(&f).unwrap_or(Value::Null);
            assert_ne!(v["method"], "connect", "the impostor got a connect: {f}");
            assert!(!f.contains(TOKEN), "the impostor got the token: {f}");
        }
    }
}

#[tokio::test]
async fn without_a_host_key_the_token_goes_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("operator.token"), format!("{TOKEN}\n")).unwrap();
    let (port, mut frames) = impostor(Some(DeviceIdentity::from_seed(&[2; 32]))).await;
    let out = Command::new(PERCH)
        .args(["status", "--data-dir"])
        .arg(dir.path())
        .args(["--gateway", &format!("ws://127.0.0.1:{port}")])
        .env_remove("PERCH_HOST_FINGERPRINT")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("PERCH_HOST_FINGERPRINT"), "{stderr}");
    assert!(frames.try_recv().is_err(), "nothing should reach the host");
}
