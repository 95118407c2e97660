//! An impostor host replaying a challenge recorded from the real one gets nothing from a node
//! that pinned the real host: no `connect`, no answer to the invoke it sends, so none of the
//! node's coordinates. The real host's proof covers the client nonce of the connection it was
//! made for; the node sends a fresh one on every connection, so the recording proves nothing.
//! Over `ws://` on loopback, and over `wss://` across two network namespaces, where the
//! impostor also has to present a TLS certificate (of its own key: it has no other).

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;

use perch_attack_tests::impostor::{self, Heard, Script};
use perch_attack_tests::leaks::{VIENNA_COORDINATES, VIENNA_LOCATION, assert_none_reached};
use perch_attack_tests::netns::{HOST_IP, Host, NetPair, NodeProc, eventually_sync, ns_cli};
use perch_attack_tests::procs::*;
use perch_protocol::handshake::new_client_nonce;
use perch_tls::HostPin;

const IMPOSTOR: &str = env!("CARGO_BIN_EXE_perch-impostor");

/// The host id the node pinned for `fingerprint`, if it did.
fn pinned(pins: &Value, fingerprint: &str) -> Option<String> {
    pins["hosts"]
        .as_object()?
        .iter()
        .find(|(_, p)| p["fingerprint"] == fingerprint)
        .map(|(id, _)| id.clone())
}

/// Binds `127.0.0.1:port` once the stopped host has let it go.
async fn rebind(port: u16) -> TcpListener {
    eventually(
        "the host's port to be free",
        Duration::from_secs(10),
        || async { TcpListener::bind(("127.0.0.1", port)).await.ok() },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_challenge_gets_nothing_from_a_pinned_node_over_loopback() {
    let mut host = RealHost::start("").await;
    let node = RealNode::start(
        &host.url(),
        "Pinned Phone",
        &["--location", VIENNA_LOCATION],
    );
    let node_id = pair_by_approval(&host, &node).await;
    let fingerprint = host.fingerprint();
    let host_id = until("the node to pin the host", || {
        std::future::ready(pinned(&node.pins(), &fingerprint))
    })
    .await;

    // A client with its own nonce records a real challenge, proof and all.
    let mine = new_client_nonce().unwrap();
    let recorded = impostor::record_challenge(
        &host.url(),
        &mine,
        HostPin::Fingerprint(fingerprint.clone()),
    )
    .await
    .unwrap();
    assert_eq!(recorded["host"]["hostId"], host_id.as_str());
    assert_eq!(recorded["host"]["clientNonce"], mine.as_str());

    // The host goes; the impostor takes its port and replays the recording to whoever comes,
    // then a forged hello-ok and an invoke of location.get.
    host.stop().await;
    let listener = rebind(host.port).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let fake = tokio::spawn(impostor::serve(
        listener,
        Script::replay_to_node(recorded, &node_id),
        None,
        tx,
    ));
    let mut heard: Vec<Heard> = Vec::new();
    eventually(
        "the node to try the impostor twice",
        Duration::from_secs(45),
        || {
            while let Ok(h) = rx.try_recv() {
                heard.push(h);
            }
            let tries = heard
                .iter()
                .filter(|h| matches!(h, Heard::Upgraded { .. }))
                .count();
            let closed = heard.iter().filter(|h| **h == Heard::Closed).count();
            std::future::ready((tries >= 2 && closed >= 2).then_some(()))
        },
    )
    .await;
    fake.abort();

    // The node came with a fresh nonce each time, not the recorded one...
    for h in &heard {
        if let Heard::Upgraded { client_nonce } = h {
            let cn = client_nonce
                .as_deref()
                .expect("the node sends a client nonce");
            assert_ne!(cn, mine, "the node reused the recorded nonce");
        }
    }
    // ...and sent nothing: no connect (no signature, no token), no answer to the invoke.
    let frames = impostor::frames(&heard);
    assert!(frames.is_empty(), "the node told the impostor {frames:?}");
    assert_none_reached("the impostor", &frames, VIENNA_COORDINATES);
    let log = node.log();
    assert!(
        log.contains("identity proof was refused") && log.contains("not made for this connection"),
        "the node's log does not say the host could not prove itself:\n{log}"
    );

    // The real host comes back on the same port: the node reconnects, its pin intact.
    host.resume().await;
    let again = eventually("the node back online", Duration::from_secs(60), || async {
        let l = host.cli(&["nodes", "list"]).await.ok()?;
        l.as_array()?
            .iter()
            .find(|n| n["nodeId"] == node_id.as_str() && n["online"] == true)
            .cloned()
    })
    .await;
    assert_eq!(again["displayName"], "Pinned Phone");
    assert_eq!(pinned(&node.pins(), &fingerprint), Some(host_id));
    let fix = host
        .cli(&["nodes", "invoke", "Pinned Phone", "location.get"])
        .await
        .unwrap();
    assert_eq!(fix["lat"], 48.2085, "the real host is answered: {fix}");
}

/// A process killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Killed {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the `perch-impostor` in a namespace logged, parsed.
fn impostor_heard(log: &std::path::Path) -> Vec<Heard> {
    read_text(log)
        .lines()
        .filter_map(Heard::from_line)
        .collect()
}

#[test]
#[ignore = "needs root and ip netns; scripts/netns-tests.sh runs it"]
fn a_replayed_challenge_over_wss_across_namespaces_gets_nothing_from_a_pinned_node() {
    const PORT: u16 = 18831;
    let net = NetPair::new();
    let host = Host::start(&net.a, "0.0.0.0", PORT, "name = \"Replay Host\"");
    let fingerprint = host.fingerprint();
    let minted = ns_cli(&net.a, &host, &["devices", "setup-code"]).unwrap();
    let code = minted["setupCode"].as_str().unwrap().to_string();
    let url = format!("wss://{HOST_IP}:{PORT}");
    assert_eq!(minted["gatewayUrls"][0], url.as_str());

    // A node on the other machine pairs with the code, over wss:// at the host's address.
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(
        &net.b,
        dir.path(),
        &[
            "--gateway",
            &url,
            "--setup-code",
            &code,
            "--name",
            "Far Node",
            "--location",
            VIENNA_LOCATION,
        ],
    );
    let far_online = |host: &Host| {
        eventually_sync("Far Node online", Duration::from_secs(60), || {
            let l = ns_cli(&net.a, host, &["nodes", "list"]).ok()?;
            l.as_array()?
                .iter()
                .find(|n| n["displayName"] == "Far Node" && n["online"] == true)?["nodeId"]
                .as_str()
                .map(String::from)
        })
    };
    let node_id = far_online(&host);
    eventually_sync("the node to pin the host", Duration::from_secs(10), || {
        let pins: Value =
            serde_json::from_str(&read_text(&dir.path().join("node-hosts.json"))).ok()?;
        pinned(&pins, &fingerprint)
    });
    // From now on it runs as a paired node does: its address and its pin, no code.
    drop(node);
    let node = NodeProc::start(
        &net.b,
        dir.path(),
        &[
            "--gateway",
            &url,
            "--name",
            "Far Node",
            "--location",
            VIENNA_LOCATION,
        ],
    );
    assert_eq!(far_online(&host), node_id);

    // An attacker on the network records a challenge, over wss:// like the node.
    let rec = tempfile::tempdir().unwrap();
    let challenge = rec.path().join("challenge.json");
    let mine = new_client_nonce().unwrap();
    let out = NetPair::cmd(&net.b, IMPOSTOR)
        .args(["record", &url, &fingerprint, &mine])
        .arg(&challenge)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "recording failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recorded: Value = serde_json::from_str(&read_text(&challenge)).unwrap();
    assert_eq!(recorded["host"]["clientNonce"], mine.as_str());

    // The host goes; the impostor takes its address in A, over TLS with its own key.
    let mut host = host;
    host.stop();
    let log = rec.path().join("impostor.log");
    let mut fake = Killed(
        NetPair::cmd(&net.a, IMPOSTOR)
            .args(["replay", &format!("0.0.0.0:{PORT}")])
            .arg(&challenge)
            .arg(&log)
            .args([&node_id, "--tls"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually_sync("the impostor listening", Duration::from_secs(10), || {
        read_text(&log).contains("listening").then_some(())
    });
    // The node comes to the impostor's address, sees a certificate of another key than the
    // one it pinned, refuses it and keeps running: whoever holds the address can't switch it
    // off, and a changed host stays the user's call.
    let mut node = node;
    eventually_sync(
        "the node to refuse the impostor",
        Duration::from_secs(60),
        || {
            node.log()
                .contains("is not the one this node paired with")
                .then_some(())
        },
    );
    assert!(
        node.is_running(),
        "the impostor stopped the node:\n{}",
        node.log()
    );
    // The impostor saw the node come, and got no socket and no frame.
    let settled = eventually_sync(
        "the impostor's connections to end",
        Duration::from_secs(15),
        || {
            let heard = impostor_heard(&log);
            let accepted = heard.iter().filter(|h| **h == Heard::Accepted).count();
            let ended = heard
                .iter()
                .filter(|h| matches!(h, Heard::TlsFailed(_) | Heard::Closed))
                .count();
            (accepted >= 1 && ended >= accepted).then_some(heard)
        },
    );
    fake.stop();
    let frames = impostor::frames(&settled);
    assert!(frames.is_empty(), "the node told the impostor {frames:?}");
    assert_none_reached("the impostor", &frames, VIENNA_COORDINATES);
    assert!(
        !settled.iter().any(|h| matches!(h, Heard::Upgraded { .. })),
        "the node opened a socket through the impostor's TLS: {settled:?}"
    );

    // The real host comes back: the same node process reconnects to the host it pinned, pin
    // intact.
    let host = Host::restart(&net.a, "0.0.0.0", PORT, host);
    assert_eq!(far_online(&host), node_id);
    let pins: Value =
        serde_json::from_str(&read_text(&dir.path().join("node-hosts.json"))).unwrap();
    assert!(pinned(&pins, &fingerprint).is_some(), "{pins}");
    let fix = ns_cli(
        &net.a,
        &host,
        &["nodes", "invoke", "Far Node", "location.get"],
    )
    .unwrap();
    assert_eq!(fix["lat"], 48.2085, "{fix}");
    drop(node);
}
