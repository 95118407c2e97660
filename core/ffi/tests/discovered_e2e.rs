//! Pairing with a host the platform's Bonjour browser found: the app hands the resolved service
//! to `check_discovered_host`, then `connect_to_discovered` dials it insisting on the advertised
//! key. A real `perch serve` approves the request; an advertisement naming another key for a
//! pinned host is refused before anything is dialled, and one naming a key the host cannot
//! prove never reaches the host.

mod common;

use std::collections::HashMap;
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};

use common::{Events, wait_event};
use perch_attack_tests::procs::RealHost;
use perch_ffi::{
    BrowsedService, NodeEvent, NodePhase, NodeSettings, PerchError, PerchNode,
    check_discovered_host,
};
use perch_protocol::setup_code::SetupCode;

/// What the host advertises, as a platform browser would resolve it: the key comes from the
/// host's own setup code (the same fingerprint its mDNS TXT carries).
async fn advertised(host: &RealHost, fingerprint: Option<String>) -> BrowsedService {
    let minted = host.cli(&["devices", "setup-code"]).await.unwrap();
    let code = SetupCode::decode(minted["setupCode"].as_str().unwrap()).unwrap();
    let fp = fingerprint.unwrap_or_else(|| code.fingerprint_hex());
    let mut txt: HashMap<String, Option<Vec<u8>>> = HashMap::new();
    for (k, v) in [
        ("txtvers", "1".to_string()),
        ("proto", "4-4".to_string()),
        ("hid", fp[..16].to_string()),
        ("fp", fp.clone()),
        ("tls", if code.tls { "1" } else { "0" }.to_string()),
    ] {
        txt.insert(k.to_string(), Some(v.into_bytes()));
    }
    BrowsedService {
        name: "Studio._perch-gw._tcp.local.".into(),
        port: host.port,
        addresses: vec!["127.0.0.1".into()],
        txt,
    }
}

fn settings(dir: &std::path::Path) -> NodeSettings {
    NodeSettings {
        display_name: "Bonjour Phone".into(),
        data_dir: dir.to_string_lossy().into(),
        platform: Some("ios".into()),
        device_family: None,
        model_identifier: None,
        locale: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovered_host_is_paired_by_approval_with_its_advertised_key() {
    let host = RealHost::start("").await;
    let found = check_discovered_host(advertised(&host, None).await).unwrap();
    assert_eq!(found.name, "Studio");
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = channel();
    let node = {
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let node = PerchNode::new(settings(&dir)).unwrap();
            node.set_listener(Arc::new(Events(Mutex::new(tx))));
            node
        })
        .await
        .unwrap()
    };
    node.clone()
        .connect_to_discovered(found.clone())
        .await
        .unwrap();
    let request_id = tokio::task::block_in_place(|| {
        wait_event(&rx, "WaitingForApproval", |e| match e {
            NodeEvent::WaitingForApproval { request_id, .. } => Some(request_id.clone()),
            _ => None,
        })
    });
    host.cli(&["devices", "approve", &request_id])
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        wait_event(&rx, "Online", |e| {
            matches!(e, NodeEvent::Online { .. }).then_some(())
        })
    });
    let status = node.status().unwrap();
    assert_eq!(status.phase, NodePhase::Online);
    assert_eq!(status.hosts.len(), 1);
    assert_eq!(status.hosts[0].host_id, found.host_id);

    // Another key advertised under the pinned host id: refused before anything is dialled.
    let forged_fp = format!("{}{}", &found.host_id, "0".repeat(48));
    let mut forged = found.clone();
    forged.fingerprint = Some(forged_fp);
    assert!(matches!(
        node.clone().connect_to_discovered(forged).await,
        Err(PerchError::HostKeyChanged { .. })
    ));
    assert_eq!(node.status().unwrap().phase, NodePhase::Online);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_advertised_key_the_host_cannot_prove_gets_nothing() {
    let host = RealHost::start("").await;
    // An impostor's advertisement: a well-formed key that is not this host's.
    let impostor_fp = "ab".repeat(32);
    let found = check_discovered_host(advertised(&host, Some(impostor_fp.clone())).await).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = channel();
    let node = {
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let node = PerchNode::new(settings(&dir)).unwrap();
            node.set_listener(Arc::new(Events(Mutex::new(tx))));
            node
        })
        .await
        .unwrap()
    };
    node.clone().connect_to_discovered(found).await.unwrap();
    let host_id = tokio::task::block_in_place(|| {
        wait_event(&rx, "HostKeyChanged", |e| match e {
            NodeEvent::HostKeyChanged { host_id } => Some(host_id.clone()),
            _ => None,
        })
    });
    assert_eq!(host_id, impostor_fp[..16]);
    tokio::task::block_in_place(|| node.stop()).unwrap();
    let pending = host.cli(&["devices", "list"]).await.unwrap();
    assert_eq!(
        pending["pending"].as_array().map_or(0, Vec::len),
        0,
        "the host never saw a request: {pending}"
    );
}
