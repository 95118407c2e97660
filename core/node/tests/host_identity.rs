//! The node checks who answers before it sends anything secret: host key proofs, pins,
//! setup-code expectations and bootstrap tokens; and it says it is present.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Host, RunningNode, test_config};
use perch_node::runtime::{ActivitySource, BootstrapToken, ExpectedHost};
use perch_node::{Capabilities, HostPins, Node, NodeState};
use perch_protocol::DeviceIdentity;
use perch_protocol::frame::Frame;

#[tokio::test]
async fn a_pinned_host_replaced_by_another_key_is_refused_before_connect() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let real = DeviceIdentity::from_seed(&[1; 32]);
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), Capabilities::new());
    let mut conn = host.accept().await;
    conn.challenge_signed("n1", &real).await;
    let (id, _) = conn.recv_connect("n1").await;
    conn.hello_ok(id, Some("tok-1")).await;
    node.wait_connected().await;
    let pins = HostPins::new(dir.path());
    let fp = real.device_id().to_string();
    let host_id = perch_protocol::identity::host_id_for(&fp);
    assert_eq!(
        pins.get(&host_id).unwrap().unwrap().fingerprint,
        fp,
        "pinned at pairing"
    );

    // The host goes away; an impostor with another key answers at the same address.
    drop(conn);
    let impostor = DeviceIdentity::from_seed(&[2; 32]);
    let mut fake = host.accept().await;
    fake.challenge_signed("n2", &impostor).await;
    node.wait_state("WrongHost", |s| {
        matches!(s, NodeState::WrongHost { trusted_host_id, message, .. }
            if *trusted_host_id == host_id && message.contains("forget-host"))
    })
    .await;
    // It never sent the impostor a connect (no token, no signature).
    fake.expect_close().await;

    // Whoever holds the address can't switch the node off: the real host comes back and the
    // node connects to it again, with its token.
    let mut conn = host.accept().await;
    conn.challenge_signed("n3", &real).await;
    let (id, p) = conn.recv_connect("n3").await;
    assert_eq!(p.auth.unwrap().device_token.as_deref(), Some("tok-1"));
    conn.hello_ok(id, None).await;
    node.wait_connected().await;
    node.request_stop();
    assert!(node.join().await.is_ok());
}

#[tokio::test]
async fn a_host_without_proof_at_a_pinned_address_is_refused() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let real = DeviceIdentity::from_seed(&[3; 32]);
    let fp = real.device_id().to_string();
    let url = perch_node::normalize_gateway_url(&host.url).unwrap();
    HostPins::new(dir.path())
        .pin(&perch_protocol::identity::host_id_for(&fp), &fp, &url)
        .unwrap();
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), Capabilities::new());
    let mut conn = host.accept().await;
    conn.challenge("n1").await; // no host proof: a downgrade
    node.wait_state("WrongHost", |s| {
        matches!(s, NodeState::WrongHost { found, .. } if found.contains("without an identity proof"))
    })
    .await;
    conn.expect_close().await;
    node.request_stop();
    assert!(node.join().await.is_ok());
}

#[tokio::test]
async fn setup_code_expectation_and_bootstrap_token() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let real = DeviceIdentity::from_seed(&[4; 32]);
    let fp = real.device_id().to_string();
    let mut config = test_config(&host.url, dir.path());
    config.expected_host = Some(ExpectedHost {
        host_id: perch_protocol::identity::host_id_for(&fp),
        fingerprint: fp.clone(),
    });
    config.bootstrap_token = Some(BootstrapToken("boot-secret".into()));
    assert!(
        !format!("{config:?}").contains("boot-secret"),
        "Debug never shows the token"
    );
    let mut node = RunningNode::start(config.clone(), Capabilities::new());
    let mut conn = host.accept().await;
    conn.challenge_signed("n1", &real).await;
    let (id, p) = conn.recv_connect("n1").await;
    let auth = p.auth.unwrap();
    assert_eq!(auth.bootstrap_token.as_deref(), Some("boot-secret"));
    assert_eq!(auth.device_token, None);
    conn.hello_ok(id, Some("device-tok")).await;
    node.wait_connected().await;
    // Reconnect: the device token is presented too (the host ignores a spent bootstrap token
    // for a device it knows, and pairs a removed device again with a fresh one).
    drop(conn);
    let mut conn = host.accept().await;
    conn.challenge_signed("n2", &real).await;
    let (id, p) = conn.recv_connect("n2").await;
    let auth = p.auth.unwrap();
    assert_eq!(auth.device_token.as_deref(), Some("device-tok"));
    assert_eq!(auth.bootstrap_token.as_deref(), Some("boot-secret"));
    conn.hello_ok(id, None).await;
    node.wait_connected().await;
    node.request_stop();
    let _ = node.join().await;

    // Another key than the setup code names: refused before connect.
    let dir2 = tempfile::tempdir().unwrap();
    let mut other = config;
    other.data_dir = dir2.path().to_path_buf();
    let mut node = RunningNode::start(other, Capabilities::new());
    let mut conn = host.accept().await;
    conn.challenge_signed("n3", &DeviceIdentity::from_seed(&[5; 32]))
        .await;
    node.wait_state("WrongHost", |s| matches!(s, NodeState::WrongHost { .. }))
        .await;
    conn.expect_close().await;
    node.request_stop();
    assert!(node.join().await.is_ok());
}

#[tokio::test]
async fn a_refused_setup_code_stops_the_node_with_a_clear_error() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(&host.url, dir.path());
    config.bootstrap_token = Some(BootstrapToken("used".into()));
    let node = RunningNode::start(config, Capabilities::new());
    let mut conn = host.accept().await;
    conn.challenge("n1").await;
    let (id, _) = conn.recv_connect("n1").await;
    conn.refuse(
        id,
        perch_protocol::ErrorShape::new(
            perch_protocol::ErrorCode::BootstrapTokenInvalid,
            "this setup code was already used",
        ),
    )
    .await;
    let result = node.join().await;
    let msg = result.unwrap_err().to_string();
    assert!(
        msg.contains("already used") && msg.contains("setup-code"),
        "{msg}"
    );
}

struct FixedIdle(std::sync::atomic::AtomicU64);

impl ActivitySource for FixedIdle {
    fn idle_seconds(&self) -> Option<u64> {
        Some(self.0.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[tokio::test]
async fn the_node_says_it_is_here_and_reports_fresh_input() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let idle = Arc::new(FixedIdle(std::sync::atomic::AtomicU64::new(120)));
    let node = Node::new(test_config(&host.url, dir.path()), Capabilities::new())
        .unwrap()
        .with_activity(idle.clone());
    let task = tokio::spawn(node.run(std::future::pending()));
    let mut conn = host.accept().await;
    conn.handshake("n1", None).await;
    // The first beacons: alive on connect, then the idle time, each in OpenClaw's shape.
    let mut beacon = async || loop {
        match conn.recv_any().await {
            Frame::Req(r) if r.method == "node.event" => break r.params.unwrap(),
            _ => {}
        }
    };
    let first = beacon().await;
    assert_eq!(first["event"], "node.presence.alive");
    assert_eq!(first["payload"]["trigger"], "connect");
    assert!(first["payload"].get("idleSeconds").is_none(), "{first}");
    let second = beacon().await;
    assert_eq!(second["event"], "node.presence.activity");
    assert_eq!(second["payload"], serde_json::json!({"idleSeconds": 120}));
    // The user touches the device: the next check reports it.
    idle.0.store(0, std::sync::atomic::Ordering::SeqCst);
    let next = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Frame::Req(r) = conn.recv_any().await
                && r.method == "node.event"
            {
                break r.params.unwrap();
            }
        }
    })
    .await
    .expect("fresh input is reported within a check interval");
    assert_eq!(next["event"], "node.presence.activity");
    assert_eq!(next["payload"]["idleSeconds"], 0);
    task.abort();
}

#[tokio::test]
async fn awaiting_approval_shows_the_verification_code_of_both_keys_and_the_commitment() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let host_key = DeviceIdentity::from_seed(&[9; 32]);
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), Capabilities::new());
    let mut conn = host.accept().await;
    conn.challenge_signed("n1", &host_key).await;
    let (id, params) = conn.recv_connect("n1").await;
    conn.refuse(
        id,
        perch_protocol::ErrorShape::new(perch_protocol::ErrorCode::NotPaired, "pairing required")
            .with_details(serde_json::json!({
                "requestId": "req-7", "deviceId": node.device_id, "waitForResolution": true
            })),
    )
    .await;
    let state = node
        .wait_state("AwaitingApproval", |s| {
            matches!(s, perch_node::NodeState::AwaitingApproval { .. })
        })
        .await;
    let device = params.device.expect("a node signs its connect");
    let pairing_nonce = device
        .pairing_nonce
        .expect("a node reveals its pairing nonce");
    // The nonce opens the commitment the node sent before the challenge.
    assert!(
        perch_protocol::verification::opens_commitment(
            conn.client_nonce.as_deref().unwrap(),
            &device.public_key,
            &pairing_nonce
        )
        .unwrap()
    );
    let expected = perch_protocol::verification::verification_code(
        &host_key.public_key_b64(),
        &device.public_key,
        &pairing_nonce,
        "n1",
    )
    .unwrap();
    assert_eq!(
        state,
        perch_node::NodeState::AwaitingApproval {
            request_id: "req-7".into(),
            verification_code: Some(expected),
        }
    );
    node.request_stop();
    let _ = node.join().await;
}

/// The host says it keeps an earlier code: the node shows none rather than one the user would
/// compare in vain.
#[tokio::test]
async fn a_code_the_host_does_not_show_is_not_shown() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let host_key = DeviceIdentity::from_seed(&[9; 32]);
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), Capabilities::new());
    let mut conn = host.accept().await;
    conn.challenge_signed("n1", &host_key).await;
    let (id, _) = conn.recv_connect("n1").await;
    conn.refuse(
        id,
        perch_protocol::ErrorShape::new(perch_protocol::ErrorCode::NotPaired, "pairing required")
            .with_details(serde_json::json!({
                "requestId": "req-8", "deviceId": node.device_id, "waitForResolution": true,
                "codeCurrent": false
            })),
    )
    .await;
    let state = node
        .wait_state("AwaitingApproval", |s| {
            matches!(s, perch_node::NodeState::AwaitingApproval { .. })
        })
        .await;
    assert_eq!(
        state,
        perch_node::NodeState::AwaitingApproval {
            request_id: "req-8".into(),
            verification_code: None,
        }
    );
    node.request_stop();
    let _ = node.join().await;
}

/// An impostor that recorded the real host's challenge (its proof covers another connection's
/// client nonce) gets nothing from a node that pinned the host: no connect, no answer.
#[tokio::test]
async fn a_replayed_challenge_gets_no_connect_from_a_pinned_node() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let real = DeviceIdentity::from_seed(&[11; 32]);
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), Capabilities::new());
    let mut conn = host.accept().await;
    let recorded = conn.client_nonce.clone().unwrap();
    conn.challenge_signed("n1", &real).await;
    let (id, _) = conn.recv_connect("n1").await;
    conn.hello_ok(id, Some("tok-1")).await;
    node.wait_connected().await;
    drop(conn);

    // The replay: the same key, nonce and time, signed over the client nonce of the recorded
    // connection. The node refuses it, reconnects, and never sends connect.
    for _ in 0..2 {
        let mut fake = host.accept().await;
        assert_ne!(fake.client_nonce.as_deref(), Some(recorded.as_str()));
        fake.challenge_proved("n1", &real, Some(&recorded)).await;
        fake.expect_close().await;
    }
    node.request_stop();
    let _ = node.join().await;
}

/// A relay that passes the real challenge through but answers connect itself (an unbound
/// hello-ok) is not a connection: the node drops it and answers no invoke on it.
#[tokio::test]
async fn an_unbound_hello_ok_is_not_trusted() {
    let host = Host::start().await;
    let dir = tempfile::tempdir().unwrap();
    let real = DeviceIdentity::from_seed(&[12; 32]);
    let mut node = RunningNode::start(test_config(&host.url, dir.path()), Capabilities::new());
    let mut conn = host.accept().await;
    let cn = conn.client_nonce.clone();
    // The proof is right for this connection, but hello-ok carries no binding.
    conn.challenge_proved("n1", &real, cn.as_deref()).await;
    let (id, _) = conn.recv_connect("n1").await;
    conn.hello_ok(id, Some("tok-1")).await;
    let invoke = Frame::event(
        "node.invoke.request",
        serde_json::json!({"id": "i1", "nodeId": node.device_id, "command": "device.info"}),
    );
    // It may have closed already; either way nothing but a close comes back.
    let _ = futures_util::SinkExt::send(
        &mut conn.ws,
        tokio_tungstenite::tungstenite::Message::text(invoke.to_text()),
    )
    .await;
    conn.expect_close().await;
    assert!(
        !matches!(
            *node.state.borrow(),
            perch_node::NodeState::Connected { .. }
        ),
        "the node must not count itself connected"
    );
    node.request_stop();
    let _ = node.join().await;
}
