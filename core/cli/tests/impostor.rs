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

/// A WebSocket server that greets like a Perch host with `proof` (or with none) and forwards
/// every text frame a client sends.
async fn impostor(proof: Option<HostProof>) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            let proof = proof.clone();
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
    let other = DeviceIdentity::from_seed(&[2; 32]);
    for proof in [
        // Another key (signed over a client nonce it could only guess).
        Some(HostProof::sign(
            &other,
            "n1",
            7,
            Some("guessed-client-nonce-0001"),
        )),
        None,
        // The real host's proof, recorded from another connection (another client nonce), and
        // one from a client that sent none: both replays.
        Some(HostProof::sign(
            &real,
            "n1",
            7,
            Some("recorded-client-nonce-0001"),
        )),
        Some(HostProof::sign(&real, "n1", 7, None)),
    ] {
        let (port, mut frames) = impostor(proof).await;
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
    let other = DeviceIdentity::from_seed(&[2; 32]);
    let (port, mut frames) = impostor(Some(HostProof::sign(&other, "n1", 7, None))).await;
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
