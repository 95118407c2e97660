//! perch-ffi paired by approval against a real `perch serve` (the app shows the same
//! verification code as the host), answering `device.info`, `device.status` and
//! `system.notify` from foreign providers, and bounding a location provider that never returns.

mod common;

use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Events, wait_event};
use perch_attack_tests::procs::{RealHost, until};
use perch_ffi::{
    BatteryInfo, BatteryState, DeviceInfo, DeviceInfoProvider, DeviceStatus, Location,
    LocationAccess, LocationPermission, LocationProvider, LocationRequest, NetworkInfo,
    NetworkKind, NodeEvent, NodePhase, NodeSettings, Notification, NotificationPresenter,
    PerchNode, ProviderError, StorageInfo,
};
use serde_json::{Value, json};

struct Phone;

impl DeviceInfoProvider for Phone {
    fn device_info(&self) -> Result<DeviceInfo, ProviderError> {
        Ok(DeviceInfo {
            device_name: "Anna's Pixel".into(),
            system_name: "Android".into(),
            system_version: "16".into(),
            model_identifier: Some("Pixel 9".into()),
            app_version: "0.1.0".into(),
            locale: Some("de-CH".into()),
        })
    }

    fn device_status(&self) -> Result<DeviceStatus, ProviderError> {
        Ok(DeviceStatus {
            battery: Some(BatteryInfo {
                level: Some(0.64),
                state: BatteryState::Charging,
                low_power_mode: Some(false),
            }),
            network: Some(NetworkInfo {
                kind: NetworkKind::Wifi,
                metered: Some(false),
            }),
            storage: Some(StorageInfo {
                total_bytes: 128_000_000_000,
                free_bytes: 42_000_000_000,
            }),
            uptime_seconds: 3600,
        })
    }
}

/// Keeps what it was asked to show.
struct Shade(Mutex<Vec<Notification>>);

impl NotificationPresenter for Shade {
    fn post(&self, notification: Notification) -> Result<Option<String>, ProviderError> {
        let mut shown = self.0.lock().unwrap();
        shown.push(notification);
        Ok(Some(format!("n-{}", shown.len())))
    }
}

/// A location provider stuck in the platform (it never answers in time).
struct Stuck;

impl LocationProvider for Stuck {
    fn current_location(&self, _request: LocationRequest) -> Result<Location, ProviderError> {
        std::thread::sleep(Duration::from_secs(60));
        Err(ProviderError::Unavailable {
            reason: "too late".into(),
        })
    }

    fn permission(&self) -> LocationPermission {
        LocationPermission {
            access: LocationAccess::Always,
            precise: false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_by_approval_and_serves_foreign_providers() {
    let host = RealHost::start("").await;
    let dir = tempfile::tempdir().unwrap();
    let shade = Arc::new(Shade(Mutex::new(Vec::new())));
    let (tx, rx) = channel();
    let node = {
        let (dir, url, shade) = (dir.path().to_path_buf(), host.url(), shade.clone());
        tokio::task::spawn_blocking(move || {
            let node = PerchNode::new(NodeSettings {
                display_name: "Approval Phone".into(),
                data_dir: dir.to_string_lossy().into(),
                platform: Some("android".into()),
                device_family: None,
                model_identifier: None,
                locale: None,
            })
            .unwrap();
            node.set_listener(Arc::new(Events(Mutex::new(tx))));
            node.set_device_info_provider(Arc::new(Phone));
            node.set_notification_presenter(shade);
            node.set_location_provider(Arc::new(Stuck));
            node.connect_to(url).unwrap();
            node
        })
        .await
        .unwrap()
    };

    // The app and the host show the same verification code; the user approves on the host.
    let (request_id, app_code) = tokio::task::block_in_place(|| {
        wait_event(&rx, "WaitingForApproval", |e| match e {
            NodeEvent::WaitingForApproval {
                request_id,
                verification_code,
            } => Some((request_id.clone(), verification_code.clone())),
            _ => None,
        })
    });
    let app_code = app_code.expect("a Perch host proves its key, so there is a code");
    let status = node.status().unwrap();
    assert_eq!(status.phase, NodePhase::WaitingForApproval);
    assert_eq!(status.verification_code.as_deref(), Some(app_code.as_str()));
    let pending = host.cli(&["devices", "list"]).await.unwrap();
    let request = pending["pending"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["requestId"] == request_id.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(request["verificationCode"], app_code.as_str(), "{pending}");
    host.cli(&["devices", "approve", &request_id])
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        wait_event(&rx, "Online", |e| {
            matches!(e, NodeEvent::Online { .. }).then_some(())
        })
    });

    let info = host
        .cli(&["nodes", "invoke", "Approval Phone", "device.info"])
        .await
        .unwrap();
    assert_eq!(info["systemName"], "Android");
    assert_eq!(info["modelIdentifier"], "Pixel 9");
    let status = host
        .cli(&["nodes", "invoke", "Approval Phone", "device.status"])
        .await
        .unwrap();
    assert_eq!(
        status,
        json!({
            "battery": {"level": 0.64, "state": "charging", "lowPowerModeEnabled": false},
            "uptimeSeconds": 3600,
            "network": {"kind": "wifi", "metered": false},
            "storage": {"totalBytes": 128_000_000_000u64, "freeBytes": 42_000_000_000u64},
        })
    );

    let params =
        json!({"title": "Dinner?", "body": "At 7", "actions": [{"id": "yes", "title": "Yes"}]});
    let shown = host
        .cli(&[
            "nodes",
            "invoke",
            "Approval Phone",
            "system.notify",
            "--params",
            &params.to_string(),
        ])
        .await
        .unwrap();
    {
        let seen = shade.0.lock().unwrap();
        // The host knows the notification by the node's id (for replies), not the platform's.
        assert_eq!(
            shown,
            json!({"delivered": true, "notificationId": seen[0].id.as_str()})
        );
        assert_eq!(seen[0].title, "Dinner?");
        assert_eq!(seen[0].actions[0].id, "yes");
    }
    let bad = host
        .cli(&[
            "nodes",
            "invoke",
            "Approval Phone",
            "system.notify",
            "--params",
            r#"{"title": " ", "body": "x"}"#,
        ])
        .await
        .unwrap_err();
    assert_eq!(bad["error"]["code"], "INVALID_REQUEST", "{bad}");

    // A provider that never returns: the caller gets TIMEOUT at the deadline, and the node
    // keeps serving.
    let started = std::time::Instant::now();
    let late = host
        .cli(&[
            "nodes",
            "invoke",
            "Approval Phone",
            "location.get",
            "--params",
            r#"{"timeoutMs": 800}"#,
        ])
        .await
        .unwrap_err();
    assert_eq!(late["error"]["code"], "TIMEOUT", "{late}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let info = host
        .cli(&["nodes", "invoke", "Approval Phone", "device.info"])
        .await
        .unwrap();
    assert_eq!(info["systemName"], "Android");
    until("the node still online", || {
        let n = node.clone();
        async move { (n.status().ok()?.phase == NodePhase::Online).then_some(()) }
    })
    .await;
}
