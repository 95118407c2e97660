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
