//! The menu-bar app (the real `perch-desktop`, on a virtual X screen) with a data directory
//! that holds a host key and the operator token, and a fake host on the host's port: it copies
//! the real `/healthz` (so the app's probe takes it for its own host) and greets on the socket
//! with another key's challenge, or with the real host's challenge recorded from another
//! connection. The app's operator connection makes the host prove the key in the data directory
//! first, so the fake never receives the token, and the app never connects. The positive
//! control: a fake that really holds the key does receive it.
//!
//! Needs `Xvfb` and the `perch-desktop` binary next to `perch` (`cargo test --workspace`
//! builds both; else `cargo build -p perch-cli -p perch-desktop`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use perch_attack_tests::display::Xvfb;
use perch_attack_tests::impostor::{self, Heard, Script};
use perch_attack_tests::procs::*;
use perch_protocol::DeviceIdentity;
use perch_protocol::handshake::new_client_nonce;
use perch_tls::HostPin;

/// The menu-bar app binary, built next to `perch`.
fn desktop_bin() -> PathBuf {
    sibling_bin("perch-desktop").unwrap_or_else(|| {
        panic!(
            "perch-desktop is missing next to {}: build it first: cargo build -p perch-desktop \
             (cargo test --workspace does)",
            PERCH.path().display()
        )
    })
}

/// What the real host's `/healthz` says.
async fn healthz(port: u16) -> Value {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let req =
        format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.unwrap();
    let body = raw.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(body).unwrap()
}

/// A host's data directory, left behind by a real `perch serve` (key, token, TLS files), and
/// what an attacker could record from that host while it ran.
struct Recorded {
    host: RealHost,
    healthz: Value,
    challenge: Value,
}

async fn recorded() -> Recorded {
    let mut host = RealHost::start("[gateway]\nmdns = \"off\"\n").await;
    let healthz = healthz(host.port).await;
    assert_eq!(healthz["ok"], true, "{healthz}");
    let challenge = impostor::record_challenge(
        &host.url(),
        &new_client_nonce().unwrap(),
        HostPin::Fingerprint(host.fingerprint()),
    )
    .await
    .unwrap();
    host.stop().await;
    Recorded {
        host,
        healthz,
        challenge,
    }
}

/// One app at a time: a second `perch-desktop` in the same D-Bus session exits at once with
/// status 1 (its application id is taken on the bus), which the tests would read as a crash.
static ONE_APP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs the app on `data_dir` against `script` on `port` until its operator connection has
/// met the fake `tries` times; returns what the fake heard and the app's log.
async fn app_meets(
    data_dir: &Path,
    port: u16,
    script: Script,
    tries: usize,
) -> (Vec<Heard>, String) {
    let _one = ONE_APP.lock().await;
    let listener = eventually("the port to be free", Duration::from_secs(10), || async {
        TcpListener::bind(("127.0.0.1", port)).await.ok()
    })
    .await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let fake = tokio::spawn(impostor::serve(listener, script, None, tx));
    let screen = Xvfb::start().unwrap_or_else(|e| panic!("{e}"));
    let log = data_dir.join("desktop.log");
    let _ = std::fs::remove_file(&log);
    let out = std::fs::File::create(&log).unwrap();
    let mut app = Proc(
        tokio::process::Command::new(desktop_bin())
            .args(["--data-dir"])
            .arg(data_dir)
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .env("DISPLAY", &screen.display)
            .env("NO_AT_BRIDGE", "1")
            .env("PERCH_NO_KEYRING", "1")
            .env("PERCH_LOG", "info")
            .env_remove("PERCH_OPERATOR_TOKEN")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("start perch-desktop"),
    );
    let mut heard = Vec::new();
    eventually(
        "the app's operator connection to meet the fake host",
        Duration::from_secs(60),
        || {
            while let Ok(h) = rx.try_recv() {
                heard.push(h);
            }
            if let Ok(Some(status)) = app.0.try_wait() {
                panic!("perch-desktop exited ({status}):\n{}", read_text(&log));
            }
            let upgraded = heard
                .iter()
                .filter(|h| matches!(h, Heard::Upgraded { .. }))
                .count();
            let closed = heard.iter().filter(|h| **h == Heard::Closed).count();
            let framed = heard.iter().any(|h| matches!(h, Heard::Frame(_)));
            std::future::ready((upgraded >= tries && (closed >= tries || framed)).then_some(()))
        },
    )
    .await;
    app.stop().await;
    fake.abort();
    while let Ok(h) = rx.try_recv() {
        heard.push(h);
    }
    (heard, read_text(&log))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_sends_no_token_to_a_fake_host_with_the_right_healthz() {
    let r = recorded().await;
    let token = r.host.token();
    let other = DeviceIdentity::generate().unwrap();
    let cases = [
        (
            "another key",
            impostor::challenge_signed_by(&other, Some("guessed-client-nonce-0001")),
            "not the expected Perch host",
        ),
        (
            "a replay",
            r.challenge.clone(),
            "not made for this connection",
        ),
    ];
    for (what, challenge, says) in cases {
        let script = Script::greet(challenge).with_healthz(r.healthz.clone());
        let (heard, log) = app_meets(r.host.dir.path(), r.host.port, script, 2).await;
        let frames = impostor::frames(&heard);
        assert!(frames.is_empty(), "the app told {what} {frames:?}");
        assert!(
            log.contains(says),
            "the app's log does not say why it refused {what}:\n{log}"
        );
        assert!(
            !log.contains(&token),
            "the token is in the app's log:\n{log}"
        );
        // It attached to nothing else: no host of its own was started on the port.
        assert!(!log.contains("mode=Embedded"), "{log}");
    }
}

/// The positive control: a fake that really holds the data directory's key (here, read from
/// it) is the host as far as anyone can tell, and the app does send it the token. Without this
/// the test above could pass because the app never tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_sends_the_token_only_to_a_host_that_holds_the_key() {
    let r = recorded().await;
    let token = r.host.token();
    let identity: Value =
        serde_json::from_str(&read_text(&r.host.dir.path().join("host-identity.json"))).unwrap();
    let key = identity["privateKey"].as_str().unwrap();
    let script = Script::signing(key).with_healthz(r.healthz.clone());
    let (heard, log) = app_meets(r.host.dir.path(), r.host.port, script, 1).await;
    let frames = impostor::frames(&heard);
    let connect = frames
        .iter()
        .find(|f| f.contains("\"connect\""))
        .unwrap_or_else(|| panic!("no connect reached the key holder: {heard:?}\n{log}"));
    assert!(connect.contains(&token), "{connect}");
}
