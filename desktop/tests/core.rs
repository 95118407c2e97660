//! The core without any window: a chat turn on the host shows as Working, its end becomes a
//! "Perch answered" notice when the chat window is hidden, and the tray returns to Idle.

mod common;

use std::time::Duration;

use serde_json::json;

use perch_client::{Client, ClientConfig, OperatorToken};
use perch_desktop::Desktop;
use perch_desktop::notify::{NotifyContext, decide};
use perch_desktop::state::TrayState;
use perch_desktop::tracker::Observation;
use perch_kernel::testing::{FakeProvider, Script};

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_turn_is_working_then_a_notice_then_idle() {
    let fake = FakeProvider::start().await.unwrap();
    let dir = data_dir(&format!(
        "[models.default]\nprovider = \"openai\"\nmodel = \"test-model\"\nbase_url = \"{}\"\n",
        fake.openai_base_url()
    ));
    let desktop = Desktop::start(desktop_options(dir.path(), "127.0.0.1:0", false));
    let view = desktop.view();
    let idle = until("idle", || {
        let v = view.borrow().clone();
        (v.tray == TrayState::Idle).then_some(v)
    })
    .await;
    let addr = idle.host.addr().unwrap();
    let mut observations = desktop.observations();

    fake.push(
        Script::new()
            .text("It is 21 °C in Vienna.")
            .delay(Duration::from_millis(400)),
    );
    let caller = Client::start(ClientConfig::new(
        format!("ws://{addr}"),
        OperatorToken::new(token(dir.path())),
        host_key(dir.path()),
    ));
    let chat = tokio::spawn({
        let caller = caller.clone();
        async move {
            caller
                .call("chat.send", Some(json!({"message": "Weather?"})), WAIT)
                .await
        }
    });
    let working = until("working", || {
        let v = view.borrow().clone();
        (v.tray == TrayState::Working).then_some(v)
    })
    .await;
    assert_eq!(working.active_turns, 1);
    assert_eq!(working.status, "Perch: answering · no devices online");

    let finished = tokio::time::timeout(WAIT, async {
        loop {
            let obs = observations.recv().await.unwrap();
            if matches!(obs, Observation::TurnFinished { .. }) {
                break obs;
            }
        }
    })
    .await
    .expect("a TurnFinished observation");
    // The notifier's decision: a notice with the preview while the chat window is hidden.
    let notice = decide(&finished, &NotifyContext::default()).unwrap();
    assert_eq!(notice.summary, "Perch answered");
    assert_eq!(notice.body, "It is 21 °C in Vienna.");
    let answer = chat.await.unwrap().unwrap();
    assert_eq!(answer["text"], "It is 21 °C in Vienna.");
    let v = until("idle again", || {
        let v = view.borrow().clone();
        (v.tray == TrayState::Idle).then_some(v)
    })
    .await;
    assert_eq!(v.active_turns, 0);
    caller.shutdown().await;
    desktop.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_setting_is_applied_by_restarting_the_host_in_the_app() {
    let dir = data_dir("");
    let desktop = Desktop::start(desktop_options(dir.path(), "127.0.0.1:0", false));
    let view = desktop.view();
    let idle = until("idle", || {
        let v = view.borrow().clone();
        (v.tray == TrayState::Idle).then_some(v)
    })
    .await;
    assert!(
        !idle.restart_required,
        "the --bind override is not a difference a restart would fix"
    );

    desktop
        .save_settings(perch_protocol::settings::SettingsPatch {
            name: Some("Renamed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    until("the tray to offer a restart", || {
        view.borrow().restart_required.then_some(())
    })
    .await;

    desktop.restart_host();
    until("the restarted host", || {
        let v = view.borrow().clone();
        (v.tray == TrayState::Idle && !v.restart_required).then_some(v)
    })
    .await;
    let running = desktop.settings().await.unwrap().running.unwrap();
    assert_eq!(running.name, "Renamed");
    assert_eq!(running.overridden, vec!["bind".to_string()]);
    desktop.shutdown().await;
}

/// Whether `node.list` shows `node` offering `location.get`.
fn offers_location(list: &serde_json::Value, node: &str) -> bool {
    list.as_array().into_iter().flatten().any(|n| {
        n["nodeId"] == node
            && n["online"] == true
            && n["commands"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c == "location.get"))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fixed_location_set_in_settings_is_offered_at_once_and_withdrawn_the_same_way() {
    use perch_protocol::settings::{DesktopLocation, DesktopPatch, SettingsPatch};
    let dir = data_dir("");
    let desktop = Desktop::start(desktop_options(dir.path(), "127.0.0.1:0", true));
    let view = desktop.view();
    let (addr, me) = until("this computer online as a node", || {
        let v = view.borrow().clone();
        let me = v.this_computer.device_id()?.to_string();
        let online = v.devices.iter().any(|d| d.node_id == me && d.online);
        online.then(|| (v.host.addr().unwrap(), me))
    })
    .await;
    let op = Client::start(ClientConfig::new(
        format!("ws://{addr}"),
        OperatorToken::new(token(dir.path())),
        host_key(dir.path()),
    ));
    let list = op.call("node.list", None, WAIT).await.unwrap();
    assert!(!offers_location(&list, &me), "no location set: {list}");

    // `Some(location)` sets it, `None` removes it.
    let set = |location: Option<DesktopLocation>| SettingsPatch {
        desktop: Some(DesktopPatch {
            location: Some(location),
        }),
        ..Default::default()
    };
    desktop
        .save_settings(set(Some(DesktopLocation {
            lat: 48.2085,
            lon: 16.3721,
            accuracy_m: 50.0,
        })))
        .await
        .unwrap();
    let mut offered = false;
    for _ in 0..100 {
        let list = op.call("node.list", None, WAIT).await.unwrap();
        if offers_location(&list, &me) {
            offered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(offered, "location.get was not offered after the setting");
    let fix = op
        .call(
            "node.invoke",
            Some(
                json!({"nodeId": me, "command": "location.get", "params": {},
                        "idempotencyKey": "loc-1"}),
            ),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(fix["payload"]["lat"], 48.2085, "{fix}");

    desktop.save_settings(set(None)).await.unwrap();
    let mut withdrawn = false;
    for _ in 0..100 {
        let list = op.call("node.list", None, WAIT).await.unwrap();
        if !offers_location(&list, &me)
            && list.as_array().is_some_and(|l| {
                l.iter()
                    .any(|n| n["nodeId"] == me.as_str() && n["online"] == true)
            })
        {
            withdrawn = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        withdrawn,
        "location.get stayed after the setting was removed"
    );
    desktop.shutdown().await;
}
