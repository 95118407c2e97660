//! perch-ffi driven as a foreign caller would drive it (plain threads, no runtime of its own)
//! against a real `perch serve`: pairing by setup code, Online, `location.get` answered by a
//! provider, a setup code with a typo, and a provider that fails while the node stays online.

mod common;

use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};

use common::{Events, wait_event};
use perch_attack_tests::procs::RealHost;
use perch_ffi::{
    AppState, Location, LocationAccess, LocationPermission, LocationProvider, LocationRequest,
    LocationSource, NodeEvent, NodePhase, NodeSettings, PerchError, PerchNode, ProviderError,
};
use serde_json::Value;

/// A provider with a fixed position, or one that fails when `fail` is set; the user allowed
/// location `access`.
struct Here {
    fail: Mutex<bool>,
    access: Mutex<LocationAccess>,
}

impl LocationProvider for Here {
    fn current_location(&self, request: LocationRequest) -> Result<Location, ProviderError> {
        assert!(request.timeout_ms > 0);
        if *self.fail.lock().unwrap() {
            return Err(ProviderError::Unavailable {
                reason: "no GPS fix indoors".into(),
            });
        }
        Ok(Location {
            lat: 47.3769,
            lon: 8.5417,
            accuracy_meters: 12.0,
            altitude_meters: Some(408.0),
            speed_mps: None,
            heading_deg: None,
            timestamp_ms: None,
            source: LocationSource::Gps,
        })
    }

    fn permission(&self) -> LocationPermission {
        LocationPermission {
            access: *self.access.lock().unwrap(),
            precise: true,
        }
    }
}

fn settings(dir: &std::path::Path, name: &str) -> NodeSettings {
    NodeSettings {
        display_name: name.into(),
        data_dir: dir.to_string_lossy().into(),
        platform: Some("android".into()),
        device_family: Some("Pixel".into()),
        model_identifier: Some("Pixel 9".into()),
        locale: Some("de-CH".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_by_setup_code_and_answers_location_from_the_provider() {
    let host = RealHost::start("").await;
    let minted = host.cli(&["devices", "setup-code"]).await.unwrap();
    let code = minted["setupCode"].as_str().unwrap().to_string();

    let dir = tempfile::tempdir().unwrap();
    let here = Arc::new(Here {
        fail: Mutex::new(false),
        access: Mutex::new(LocationAccess::WhileUsing),
    });
    let (tx, rx) = channel();
    // The synchronous calls run on a plain thread, as a platform thread makes them; the async
    // ones are awaited here, by an executor that is not the library's (as a coroutine or an
    // asyncio loop awaits them).
    let node = {
        let (dir, here) = (dir.path().to_path_buf(), here.clone());
        tokio::task::spawn_blocking(move || {
            let node = PerchNode::new(settings(&dir, "FFI Phone")).unwrap();
            node.set_listener(Arc::new(Events(Mutex::new(tx))));
            node.set_location_provider(here);
            node
        })
        .await
        .unwrap()
    };
    // A typo in the code: a typed error, and nothing starts.
    let mut typo: Vec<char> = code.chars().collect();
    let i = typo.len() / 2;
    typo[i] = if typo[i] == 'A' { 'B' } else { 'A' };
    let typo: String = typo.into_iter().collect();
    assert!(matches!(
        node.clone().pair_with_setup_code(typo).await,
        Err(PerchError::InvalidSetupCode { .. })
    ));
    assert!(matches!(
        node.clone().pair_with_setup_code("PERCH1".into()).await,
        Err(PerchError::InvalidSetupCode { .. })
    ));
    assert!(!node.status().unwrap().running);
    node.clone()
        .pair_with_setup_code(code.clone())
        .await
        .unwrap();
    let host_name = tokio::task::block_in_place(|| {
        wait_event(&rx, "Online", |e| match e {
            NodeEvent::Online { host_name } => Some(host_name.clone()),
            _ => None,
        })
    });
    assert!(!host_name.is_empty());
    let status = node.status().unwrap();
    assert_eq!(status.phase, NodePhase::Online);
    assert!(status.running);
    assert_eq!(
        status.hosts.len(),
        1,
        "the setup code pinned the host: {status:?}"
    );

    // The host asks for the location: the provider's fix comes back.
    let fix = host
        .cli(&["nodes", "invoke", "FFI Phone", "location.get"])
        .await
        .unwrap();
    assert_eq!(fix["lat"], 47.3769);
    assert_eq!(fix["lon"], 8.5417);
    assert_eq!(fix["accuracyMeters"], 12.0);
    assert_eq!(fix["source"], "gps");
    assert_eq!(fix["isPrecise"], true);
    tokio::task::block_in_place(|| {
        wait_event(&rx, "CommandServed ok", |e| {
            matches!(e, NodeEvent::CommandServed { command, ok: true } if command == "location.get")
                .then_some(())
        })
    });

    // The provider fails: the caller gets a clear, typed error and the node stays online.
    *here.fail.lock().unwrap() = true;
    let err = host
        .cli(&["nodes", "invoke", "FFI Phone", "location.get"])
        .await
        .unwrap_err();
    assert_eq!(err["error"]["code"], "LOCATION_UNAVAILABLE", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no GPS fix indoors")),
        "{err}"
    );
    tokio::task::block_in_place(|| {
        wait_event(&rx, "CommandServed failed", |e| {
            matches!(e, NodeEvent::CommandServed { ok: false, .. }).then_some(())
        })
    });
    *here.fail.lock().unwrap() = false;
    // The app goes to the background. Allowed only while in use, the location is refused as
    // the phone would refuse it; allowed always, it answers. All on the same connection (the
    // host logs no new node connection).
    let connections = |log: String| log.matches("node connected").count();
    let before = connections(host.log());
    node.set_app_state(AppState::Background);
    let err = host
        .cli(&["nodes", "invoke", "FFI Phone", "location.get"])
        .await
        .unwrap_err();
    assert_eq!(err["error"]["code"], "NODE_BACKGROUND_UNAVAILABLE", "{err}");
    *here.access.lock().unwrap() = LocationAccess::Always;
    let again = host
        .cli(&["nodes", "invoke", "FFI Phone", "location.get"])
        .await
        .unwrap();
    assert_eq!(again["lat"], 47.3769);
    *here.access.lock().unwrap() = LocationAccess::WhileUsing;
    node.set_app_state(AppState::Foreground);
    let back = host
        .cli(&["nodes", "invoke", "FFI Phone", "location.get"])
        .await
        .unwrap();
    assert_eq!(back["lat"], 47.3769, "served again in the foreground");
    node.network_changed();
    assert_eq!(node.status().unwrap().phase, NodePhase::Online);
    assert!(before >= 1, "the host logs node connections");
    assert_eq!(
        connections(host.log()),
        before,
        "the app's reports made the node reconnect"
    );
    let nodes = host.cli(&["nodes", "list"]).await.unwrap();
    assert_eq!(nodes[0]["online"], Value::Bool(true), "{nodes}");

    // The device's own record, read from the host through the node's connection.
    let record = node.clone().access_record(10).await.unwrap();
    assert!(
        record
            .iter()
            .filter(|e| e.command == "location.get")
            .count()
            >= 5,
        "{record:?}"
    );

    // Stop: a Stopped event without an error, and a second stop is NotRunning.
    let stopped = node.clone();
    tokio::task::spawn_blocking(move || stopped.stop().unwrap())
        .await
        .unwrap();
    let error = tokio::task::block_in_place(|| {
        wait_event(&rx, "Stopped", |e| match e {
            NodeEvent::Stopped { error } => Some(error.clone()),
            _ => None,
        })
    });
    assert_eq!(error, None);
    assert_eq!(node.status().unwrap().phase, NodePhase::Stopped);
    assert!(matches!(node.stop(), Err(PerchError::NotRunning)));
    assert!(matches!(
        node.clone().access_record(5).await,
        Err(PerchError::NotRunning)
    ));

    // After an app restart: a new PerchNode on the same data dir starts from the pinned host.
    let restarted = {
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let node = PerchNode::new(settings(&dir, "FFI Phone")).unwrap();
            node.start().unwrap();
            node
        })
        .await
        .unwrap()
    };
    perch_attack_tests::procs::until("the restarted node online", || {
        let n = restarted.clone();
        async move { (n.status().ok()?.phase == NodePhase::Online).then_some(()) }
    })
    .await;
}

#[test]
fn a_data_dir_that_cannot_be_written_is_a_typed_error() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let inside = file.path().join("node");
    let e = PerchNode::new(settings(&inside, "x")).unwrap_err();
    assert!(matches!(e, PerchError::DataDirUnwritable { .. }), "{e:?}");
    let e = PerchNode::new(settings(std::path::Path::new(""), "x")).unwrap_err();
    assert!(matches!(e, PerchError::DataDirUnwritable { .. }), "{e:?}");
}

#[test]
fn calls_need_a_host_first() {
    let dir = tempfile::tempdir().unwrap();
    let node = PerchNode::new(settings(dir.path(), "x")).unwrap();
    assert!(matches!(node.start(), Err(PerchError::NoHost)));
    assert!(matches!(
        node.connect_to("ftp://x".into()),
        Err(PerchError::InvalidAddress { .. })
    ));
    assert!(matches!(
        node.forget_host("0123456789abcdef".into()),
        Err(PerchError::UnknownHost { .. })
    ));
    let s = node.status().unwrap();
    assert_eq!(s.phase, NodePhase::Idle);
    assert_eq!(s.device_id.len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_key_at_the_address_is_host_key_changed() {
    // A code from host A pointed at host B's port: B cannot prove A's key.
    let a = RealHost::start("").await;
    let b = RealHost::start("").await;
    let minted = a.cli(&["devices", "setup-code"]).await.unwrap();
    let mut code =
        perch_protocol::setup_code::SetupCode::decode(minted["setupCode"].as_str().unwrap())
            .unwrap();
    code.port = b.port;
    let expected = code.host_id();
    let code = code.encode().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = channel();
    let node = {
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let node = PerchNode::new(settings(&dir, "Wary Phone")).unwrap();
            node.set_listener(Arc::new(Events(Mutex::new(tx))));
            node
        })
        .await
        .unwrap()
    };
    node.clone().pair_with_setup_code(code).await.unwrap();
    let host_id = tokio::task::block_in_place(|| {
        wait_event(&rx, "HostKeyChanged", |e| match e {
            NodeEvent::HostKeyChanged { host_id } => Some(host_id.clone()),
            _ => None,
        })
    });
    assert_eq!(host_id, expected);
    // It keeps running (offline, saying why) instead of stopping: the impostor can't switch
    // it off. Stopping it is the app's call.
    perch_attack_tests::procs::until("the reason in the status", || {
        let n = node.clone();
        let expected = expected.clone();
        async move {
            let s = n.status().ok()?;
            (s.running
                && s.phase == NodePhase::Offline
                && s.last_error.is_some_and(|e| e.contains(&expected)))
            .then_some(())
        }
    })
    .await;
    tokio::task::block_in_place(|| node.stop()).unwrap();
    // Host B never saw a pairing request from this device.
    let pending = b.cli(&["devices", "list"]).await.unwrap();
    assert_eq!(
        pending["pending"].as_array().map_or(0, Vec::len),
        0,
        "{pending}"
    );
    assert!(node.status().unwrap().hosts.is_empty());
}
