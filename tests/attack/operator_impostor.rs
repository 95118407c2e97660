//! A fake host at the address an operator client dials gets no operator token. `perch status`
//! and `perch-client` check the host's proof against the key the host's data directory (or
//! their config) names before they send anything secret: another key's challenge, a challenge
//! without a proof, and the real host's challenge recorded from another connection and
//! replayed, all end the connection before `connect`.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::mpsc::UnboundedReceiver;

use perch_attack_tests::impostor::{self, Heard, Script};
use perch_attack_tests::procs::*;
use perch_client::{Client, ClientConfig, ConnectionState, OperatorToken};
use perch_protocol::DeviceIdentity;
use perch_protocol::handshake::{HostProof, new_client_nonce};
use perch_tls::HostPin;

const TOKEN: &str = "operator-token-that-must-never-leave-0123";

/// A fake host on a fresh loopback port greeting every client with `challenge`.
async fn fake_host(challenge: Value) -> (u16, UnboundedReceiver<Heard>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(impostor::serve(
        listener,
        Script::greet(challenge),
        None,
        tx,
    ));
    (port, rx)
}

/// Everything a fake host heard so far.
fn drain(rx: &mut UnboundedReceiver<Heard>) -> Vec<Heard> {
    let mut v = Vec::new();
    while let Ok(h) = rx.try_recv() {
        v.push(h);
    }
    v
}

/// Waits (bounded) until the client has come to the fake host and gone again, then checks it
/// sent no frame at all: no `connect`, no token.
async fn assert_told_nothing(rx: &mut UnboundedReceiver<Heard>, who: &str) {
    let mut heard = Vec::new();
    eventually(
        &format!("{who} to come and close"),
        Duration::from_secs(15),
        || {
            heard.extend(drain(rx));
            let came = heard.iter().any(|h| matches!(h, Heard::Upgraded { .. }));
            let gone = heard.contains(&Heard::Closed);
            std::future::ready((came && gone).then_some(()))
        },
    )
    .await;
    let frames = impostor::frames(&heard);
    assert!(frames.is_empty(), "{who} sent the impostor {frames:?}");
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

fn payload(proof: Option<HostProof>) -> Value {
    let mut p = json!({"nonce": "n1", "ts": 7});
    if let Some(p2) = proof {
        p["host"] = serde_json::to_value(p2).unwrap();
    }
    p
}

/// `perch status --data-dir DIR --gateway ws://127.0.0.1:PORT`: (success, stderr).
async fn status(dir: &std::path::Path, port: u16) -> (bool, String) {
    operator_command(dir, port, &["status"]).await
}

/// `perch ARGS --data-dir DIR --gateway ws://127.0.0.1:PORT`, with `BROWSER` a recorder
/// that writes what it was asked to open to `DIR/browser-opened`: (success, stderr).
async fn operator_command(dir: &std::path::Path, port: u16, args: &[&str]) -> (bool, String) {
    let browser = dir.join("browser.sh");
    std::fs::write(
        &browser,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\n",
            dir.join("browser-opened").display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let out = Command::new(PERCH)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("BROWSER", &browser)
        .args(["--gateway", &format!("ws://127.0.0.1:{port}")])
        .env_remove("PERCH_OPERATOR_TOKEN")
        .env_remove("PERCH_HOST_FINGERPRINT")
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
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
        let (port, mut heard) = fake_host(payload(proof)).await;
        let (ok, stderr) = status(dir.path(), port).await;
        assert!(!ok, "status succeeded against an impostor");
        assert!(stderr.contains("no token was sent"), "{stderr}");
        assert!(!stderr.contains(TOKEN), "{stderr}");
        assert_told_nothing(&mut heard, "perch status").await;
    }
}

#[tokio::test]
async fn without_a_host_key_the_token_goes_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("operator.token"), format!("{TOKEN}\n")).unwrap();
    let other = DeviceIdentity::from_seed(&[2; 32]);
    let (port, mut heard) = fake_host(payload(Some(HostProof::sign(&other, "n1", 7, None)))).await;
    let (ok, stderr) = status(dir.path(), port).await;
    assert!(!ok);
    assert!(stderr.contains("PERCH_HOST_FINGERPRINT"), "{stderr}");
    let before = heard_before_marker(port, &mut heard).await;
    assert_eq!(
        before,
        vec![Heard::Accepted],
        "perch status reached the host: {before:?}"
    );
}

/// What the fake heard before a marker connection of ours, opened after the client under test
/// exited: the fake accepts connections in order, so whatever that client opened comes first.
/// Only the marker's own `Accepted` when the client opened nothing.
async fn heard_before_marker(port: u16, rx: &mut UnboundedReceiver<Heard>) -> Vec<Heard> {
    const MARKER: &str = "marker-connection-of-the-test";
    let url = format!("ws://127.0.0.1:{port}/?clientNonce={MARKER}");
    let _marker = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut heard = Vec::new();
    let marked = Heard::Upgraded {
        client_nonce: Some(MARKER.to_string()),
    };
    eventually("the marker connection", Duration::from_secs(10), || {
        heard.extend(drain(rx));
        std::future::ready(heard.contains(&marked).then_some(()))
    })
    .await;
    heard.into_iter().take_while(|h| *h != marked).collect()
}

/// A real host's challenge, recorded by a client with its own nonce, replayed at the port the
/// operator dials: `perch status`, the other operator commands and `perch ui` (which would
/// put the token in a browser's URL) on the real data directory (its key, its token) refuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perch_commands_refuse_a_recorded_challenge_of_the_real_host() {
    let mut host = RealHost::start("").await;
    let mine = new_client_nonce().unwrap();
    let recorded =
        impostor::record_challenge(&host.url(), &mine, HostPin::Fingerprint(host.fingerprint()))
            .await
            .unwrap();
    assert_eq!(recorded["host"]["clientNonce"], mine.as_str());
    let token = host.token();
    host.stop().await;

    let (port, mut heard) = fake_host(recorded).await;
    for args in [
        &["status"][..],
        &["nodes", "list"],
        &["devices", "list"],
        &["chat", "hello"],
        &["ui"],
    ] {
        let (ok, stderr) = operator_command(host.dir.path(), port, args).await;
        assert!(!ok, "perch {args:?} succeeded against a replay");
        assert!(
            stderr.contains("not made for this connection"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains(&token), "{stderr}");
        assert_told_nothing(&mut heard, &format!("perch {args:?}")).await;
    }
    assert!(
        !host.dir.path().join("browser-opened").exists(),
        "perch ui opened a browser on the impostor: {}",
        read_text(&host.dir.path().join("browser-opened"))
    );
    // The control: against the real host, `perch ui` does open the browser, with the token.
    host.resume().await;
    let (ok, stderr) = operator_command(host.dir.path(), host.port, &["ui"]).await;
    assert!(ok, "{stderr}");
    let opened = read_text(&host.dir.path().join("browser-opened"));
    assert!(
        opened.contains(&format!("127.0.0.1:{}/ui/#token=", host.port)),
        "{opened}"
    );
}

/// perch-client, configured with the real host's token and fingerprint, meets a fake host
/// with another key and then the real host's replayed challenge: it never connects and never
/// sends a frame; the real host, back on the port, gets the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perch_client_sends_no_token_to_an_impostor_or_a_replay() {
    let host = RealHost::start("").await;
    let recorded = impostor::record_challenge(
        &host.url(),
        &new_client_nonce().unwrap(),
        HostPin::Fingerprint(host.fingerprint()),
    )
    .await
    .unwrap();
    let other = DeviceIdentity::generate().unwrap();
    let cases = [
        (
            "another key",
            impostor::challenge_signed_by(&other, Some("guessed-client-nonce-0001")),
            "not the expected Perch host",
        ),
        ("a replay", recorded, "not made for this connection"),
    ];
    for (what, challenge, says) in cases {
        let (port, mut heard) = fake_host(challenge).await;
        let mut cfg = ClientConfig::new(
            format!("ws://127.0.0.1:{port}"),
            OperatorToken::new(host.token()),
            host.fingerprint(),
        );
        cfg.connect_timeout = Duration::from_secs(3);
        let client = Client::start(cfg);
        let mut state = client.state();
        let refused = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                let s = state.borrow_and_update().clone();
                assert!(!s.is_connected(), "perch-client connected to {what}");
                if matches!(s, ConnectionState::Disconnected { .. }) {
                    return s;
                }
                state.changed().await.unwrap();
            }
        })
        .await
        .unwrap_or_else(|_| panic!("perch-client never refused {what}"));
        assert!(refused.to_string().contains(says), "{what}: {refused}");
        assert!(!refused.to_string().contains(&host.token()), "{refused}");
        client.shutdown().await;
        assert_told_nothing(&mut heard, "perch-client").await;
    }

    // The control: the same client config against the real host connects.
    let mut cfg = ClientConfig::new(
        host.url(),
        OperatorToken::new(host.token()),
        host.fingerprint(),
    );
    cfg.connect_timeout = Duration::from_secs(5);
    let client = Client::start(cfg);
    client
        .wait_connected(Duration::from_secs(15))
        .await
        .expect("perch-client connects to the real host");
    client.shutdown().await;
}
