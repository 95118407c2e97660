//! Notifications through perch-ffi against a real `perch serve`: `system.notify` reaches the
//! app's presenter with the node's id and actions, the user's answer goes back with
//! `reply_to_notification` and the host lists it; a reply to a notification that does not
//! exist, or with an action it never had, is a typed error and the node stays online. The
//! identity and token live in the app's secret store, not in files.

mod common;

use std::collections::HashMap;
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};

use common::{Events, wait_event};
use perch_attack_tests::procs::RealHost;
use perch_ffi::{
    NodeEvent, NodeSettings, Notification, NotificationPresenter, NotificationReply, PerchError,
    PerchNode, ProviderError, SecretStore,
};

/// The app's notification center: keeps what was posted.
#[derive(Default)]
struct Tray(Mutex<Vec<Notification>>);

impl NotificationPresenter for Tray {
    fn post(&self, n: Notification) -> Result<Option<String>, ProviderError> {
        self.0.lock().unwrap().push(n);
        Ok(Some("platform-7".into()))
    }
}

/// The platform keystore.
#[derive(Default)]
struct Keychain(Mutex<HashMap<String, Vec<u8>>>);

impl SecretStore for Keychain {
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, ProviderError> {
        Ok(self.0.lock().unwrap().get(&key).cloned())
    }
    fn set(&self, key: String, value: Vec<u8>) -> Result<(), ProviderError> {
        self.0.lock().unwrap().insert(key, value);
        Ok(())
    }
}

fn settings(dir: &std::path::Path) -> NodeSettings {
    NodeSettings {
        display_name: "Reply Phone".into(),
        data_dir: dir.to_string_lossy().into(),
        platform: Some("ios".into()),
        device_family: Some("iPhone".into()),
        model_identifier: None,
        locale: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_is_shown_and_its_reply_reaches_the_host() {
    let host = RealHost::start("").await;
    let minted = host.cli(&["devices", "setup-code"]).await.unwrap();
    let code = minted["setupCode"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let tray = Arc::new(Tray::default());
    let chain = Arc::new(Keychain::default());
    let (tx, rx) = channel();
    let node = {
        let (dir, tray, chain) = (dir.path().to_path_buf(), tray.clone(), chain.clone());
        tokio::task::spawn_blocking(move || {
            let settings = settings(&dir);
            let node = PerchNode::with_secret_store(settings, chain).unwrap();
            node.set_listener(Arc::new(Events(Mutex::new(tx))));
            node.set_notification_presenter(tray);
            node
        })
        .await
        .unwrap()
    };
    node.clone().pair_with_setup_code(code).await.unwrap();
    tokio::task::block_in_place(|| {
        wait_event(&rx, "Online", |e| {
            matches!(e, NodeEvent::Online { .. }).then_some(())
        })
    });
    // The secrets are in the keystore; no identity or token file was written.
    let keys: Vec<String> = chain.0.lock().unwrap().keys().cloned().collect();
    assert!(keys.iter().any(|k| k.contains("identity")), "{keys:?}");
    assert!(keys.iter().any(|k| k.contains("token")), "{keys:?}");
    for f in ["node-identity.json", "node-tokens.json"] {
        assert!(!dir.path().join(f).exists(), "{f} written to disk");
    }

    let params = r#"{"title":"Dinner at 7?","body":"Reply or tap","actions":[{"id":"yes","title":"Yes"},{"id":"no","title":"No"}]}"#;
    let r = host
        .cli(&[
            "nodes",
            "invoke",
            "Reply Phone",
            "system.notify",
            "--params",
            params,
        ])
        .await
        .unwrap();
    assert_eq!(r["delivered"], true, "{r}");
    let shown = tray.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(shown.title, "Dinner at 7?");
    assert_eq!(shown.actions.len(), 2);
    assert_eq!(
        r["notificationId"],
        shown.id.as_str(),
        "the host knows the node's id"
    );

    // The user types an answer; then taps a button. Both reach the host.
    let reply = |action: Option<&str>, text: Option<&str>, id: &str| NotificationReply {
        notification_id: id.to_string(),
        action_id: action.map(str::to_string),
        text: text.map(str::to_string),
    };
    let id = shown.id.clone();
    let send = |r: NotificationReply| node.clone().reply_to_notification(r);
    let results = [
        send(reply(None, Some("Make it 7:30"), &id)).await,
        send(reply(Some("yes"), None, &id)).await,
        send(reply(Some("maybe"), None, &id)).await,
        send(reply(None, Some("hello"), "n-never-posted")).await,
    ];
    assert_eq!(results[0], Ok(()));
    assert_eq!(results[1], Ok(()));
    assert!(
        matches!(results[2], Err(PerchError::InvalidReply { .. })),
        "{:?}",
        results[2]
    );
    assert_eq!(
        results[3],
        Err(PerchError::UnknownNotification {
            notification_id: "n-never-posted".into()
        })
    );
    let listed = host.cli(&["devices", "replies"]).await.unwrap();
    let replies = listed["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 2, "{listed}");
    assert_eq!(replies[0]["actionId"], "yes");
    assert_eq!(replies[1]["text"], "Make it 7:30");
    assert_eq!(replies[1]["title"], "Dinner at 7?");
    assert_eq!(replies[1]["notificationId"], shown.id.as_str());
    assert_eq!(replies[1]["displayName"], "Reply Phone");

    // Still online and serving after the bad replies.
    let again = host
        .cli(&[
            "nodes",
            "invoke",
            "Reply Phone",
            "system.notify",
            "--params",
            r#"{"title":"t","body":"b"}"#,
        ])
        .await
        .unwrap();
    assert_eq!(again["delivered"], true);
    // A new app process on the same data dir and keystore answers the old notification.
    tokio::task::spawn_blocking(move || node.stop().unwrap())
        .await
        .unwrap();
    let restarted = {
        let (dir, chain) = (dir.path().to_path_buf(), chain.clone());
        tokio::task::spawn_blocking(move || {
            let settings = settings(&dir);
            let node = PerchNode::with_secret_store(settings, chain).unwrap();
            node.start().unwrap();
            node
        })
        .await
        .unwrap()
    };
    let id = shown.id.clone();
    perch_attack_tests::procs::until("a reply after the app restarted", || {
        let n = restarted.clone();
        let id = id.clone();
        async move {
            n.reply_to_notification(NotificationReply {
                notification_id: id,
                action_id: Some("no".into()),
                text: None,
            })
            .await
            .ok()
        }
    })
    .await;
    let listed = host.cli(&["devices", "replies"]).await.unwrap();
    assert_eq!(listed["replies"][0]["actionId"], "no", "{listed}");
    assert_eq!(listed["replies"].as_array().unwrap().len(), 3);
}
