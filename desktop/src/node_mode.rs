//! This computer as a node of its own host: the app runs the node runtime in-process with the
//! desktop capabilities (`system.notify`, `device.info`, `device.status`, and `location.get`
//! only when `[desktop] location` is set in perch.toml). Its identity and device token live in
//! `DATA_DIR/desktop-node/`.
//!
//! Enrolment: when the host does not know this node's key, the app mints a setup code through
//! the operator connection (`device.pair.setupCode`) and hands its single-use bootstrap token
//! to the runtime, so pairing needs no approval (the app is already the operator). A key the
//! host has paired reconnects with its token, and no code is minted. A key the host revoked
//! stays out until the user removes it (`perch devices remove`).
//!
//! A change of `[desktop] location` (announced by the host as `settings.changed`) reconnects
//! the node, so `location.get` is offered or withdrawn at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use perch_client::Client;
use perch_node::desktop::{ConfiguredLocation, desktop_capabilities};
use perch_node::{BootstrapToken, ExpectedHost, IdentityStore, Node, NodeConfig, NodeState};
use perch_protocol::SetupCode;
use perch_protocol::methods::{self, DevicePairList, SetupCodeResult};
use perch_protocol::settings::{DesktopLocation, SETTINGS_CHANGED_EVENT, Settings};

/// The node's directory inside the host's data directory.
pub const NODE_DIR: &str = "desktop-node";
/// How long enrolment waits for the operator connection and each call.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// How the node got (or keeps) its pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Enrolment {
    /// The host already knew this key; its token is reused.
    ExistingPairing,
    /// A setup code minted just now paired it.
    SetupCode,
}

/// This computer's node, for the shell page and the Devices menu.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum NodeModeState {
    /// Node mode is off (tests, or no host).
    Off,
    /// Checking the pairing and, if needed, minting a setup code.
    #[serde(rename_all = "camelCase")]
    Enrolling {
        /// This node's id.
        device_id: String,
    },
    /// The runtime runs.
    #[serde(rename_all = "camelCase")]
    Running {
        /// This node's id.
        device_id: String,
        /// How it is paired.
        enrolment: Enrolment,
        /// Admitted by the host right now.
        connected: bool,
        /// The runtime's own words (connected, retrying…).
        detail: String,
    },
    /// The host revoked this computer; it stays out until the user removes it there.
    #[serde(rename_all = "camelCase")]
    Revoked {
        /// This node's id.
        device_id: String,
    },
    /// Node mode could not start or stopped for good.
    Failed {
        /// Why.
        reason: String,
    },
}

impl NodeModeState {
    /// This node's id, once known.
    pub fn device_id(&self) -> Option<&str> {
        match self {
            NodeModeState::Enrolling { device_id }
            | NodeModeState::Running { device_id, .. }
            | NodeModeState::Revoked { device_id } => Some(device_id),
            NodeModeState::Off | NodeModeState::Failed { .. } => None,
        }
    }
}

/// The in-process node; stops when [`NodeMode::shutdown`] is called or it is dropped.
pub struct NodeMode {
    state: watch::Receiver<NodeModeState>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Drop for NodeMode {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl NodeMode {
    /// Starts enrolment and the runtime against the host at `gateway_url` (`ws://ADDR`),
    /// using `client` (an operator connection to the same host) for enrolment.
    pub fn start(client: Client, data_dir: &Path, gateway_url: String) -> NodeMode {
        let (tx, state) = watch::channel(NodeModeState::Off);
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            client,
            data_dir.to_path_buf(),
            gateway_url,
            tx,
            stop.clone(),
        ));
        NodeMode {
            state,
            stop,
            task: Some(task),
        }
    }

    /// A live view of the node's state.
    pub fn state(&self) -> watch::Receiver<NodeModeState> {
        self.state.clone()
    }

    /// Stops the runtime (it closes its socket politely) and waits for it.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "node mode ended abnormally");
        }
    }
}

/// The node's own directory.
pub fn node_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(NODE_DIR)
}

/// `[desktop] location` from perch.toml, if set and readable.
/// The node's view of a `[desktop] location` setting.
fn configured(l: DesktopLocation) -> ConfiguredLocation {
    ConfiguredLocation {
        lat: l.lat,
        lon: l.lon,
        accuracy_m: l.accuracy_m,
    }
}

async fn configured_location(data_dir: PathBuf) -> Option<ConfiguredLocation> {
    let read = tokio::task::spawn_blocking(move || perch_host::settings::read(&data_dir)).await;
    match read {
        Ok(Ok(s)) => s.desktop.location.map(configured),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read [desktop] location; location.get stays off");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "settings reader failed");
            None
        }
    }
}

async fn run(
    client: Client,
    data_dir: PathBuf,
    gateway_url: String,
    tx: watch::Sender<NodeModeState>,
    stop: CancellationToken,
) {
    let dir = node_dir(&data_dir);
    let fail = |reason: String| {
        tracing::warn!(%reason, "node mode not running");
        tx.send_replace(NodeModeState::Failed { reason });
    };
    let identity = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            perch_node::identity_store::ensure_data_dir(&dir)?;
            IdentityStore::new(&dir).load_or_create()
        })
        .await
    };
    let device_id = match identity {
        Ok(Ok(identity)) => identity.device_id().to_string(),
        Ok(Err(e)) => return fail(format!("this computer's node identity: {e}")),
        Err(e) => return fail(e.to_string()),
    };
    tx.send_replace(NodeModeState::Enrolling {
        device_id: device_id.clone(),
    });
    let enrolled = tokio::select! {
        e = enrol(&client, &device_id) => e,
        _ = stop.cancelled() => return,
    };
    let (enrolment, bootstrap) = match enrolled {
        Ok(Enrolled::Paired) => (Enrolment::ExistingPairing, None),
        Ok(Enrolled::Code(code)) => (Enrolment::SetupCode, Some(code)),
        Ok(Enrolled::Revoked) => {
            tracing::info!("the host revoked this computer's node; node mode stays off");
            tx.send_replace(NodeModeState::Revoked { device_id });
            return;
        }
        Err(reason) => return fail(reason),
    };
    // Idle time tells the host when the user is at this computer (the active device).
    let activity = crate::activity::DesktopActivity::start();
    let mut bootstrap = bootstrap;
    loop {
        let location = configured_location(data_dir.clone()).await;
        let name = gethostname::gethostname().to_string_lossy().to_string();
        let mut config = NodeConfig::new(gateway_url.clone(), name, dir.clone());
        // The code is single use: after the first run the node holds a token for this host.
        if let Some(code) = bootstrap.take() {
            config.expected_host = Some(ExpectedHost {
                host_id: code.host_id(),
                fingerprint: code.fingerprint_hex(),
            });
            config.bootstrap_token = Some(BootstrapToken(code.bootstrap_token.clone()));
        }
        let node = match Node::new(config, desktop_capabilities(location)) {
            Ok(n) => n,
            Err(e) => return fail(format!("cannot start this computer's node: {e}")),
        };
        let node = match &activity {
            Some(a) => node.with_activity(a.clone()),
            None => node,
        };
        let mut states = node.subscribe();
        let report = {
            let tx = tx.clone();
            let device_id = device_id.clone();
            async move {
                loop {
                    let s = states.borrow_and_update().clone();
                    tx.send_replace(NodeModeState::Running {
                        device_id: device_id.clone(),
                        enrolment,
                        connected: matches!(s, NodeState::Connected { .. }),
                        detail: s.to_string(),
                    });
                    if states.changed().await.is_err() {
                        return;
                    }
                }
            }
        };
        let reporter = tokio::spawn(report);
        let this_run = stop.child_token();
        let running = node.run(this_run.clone().cancelled_owned());
        tokio::pin!(running);
        let result = tokio::select! {
            r = &mut running => Some(r),
            _ = location_changed(&client, location) => None,
        };
        let result = match result {
            Some(r) => r,
            None => {
                // Offer (or withdraw) location.get: the host learns commands at connect.
                tracing::info!("[desktop] location changed; reconnecting this computer's node");
                this_run.cancel();
                let r = running.await;
                reporter.abort();
                if let Err(e) = r {
                    return fail(e.to_string());
                }
                continue;
            }
        };
        reporter.abort();
        match result {
            Ok(()) => {
                tx.send_replace(NodeModeState::Off);
            }
            Err(e) => fail(e.to_string()),
        }
        return;
    }
}

/// Resolves when a `settings.changed` from the host leaves `[desktop] location` different from
/// `current`; never while it stays the same (or the connection ends).
async fn location_changed(client: &Client, current: Option<ConfiguredLocation>) {
    let mut events = client.subscribe();
    loop {
        match events.recv().await {
            Ok(ev) if ev.event == SETTINGS_CHANGED_EVENT => {
                // The event carries the settings as saved: no need to read the file again.
                let saved = ev
                    .payload
                    .and_then(|p| serde_json::from_value::<Settings>(p).ok());
                if let Some(s) = saved
                    && s.desktop.location.map(configured) != current
                {
                    return;
                }
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// What enrolment decided.
enum Enrolled {
    Paired,
    Code(Box<SetupCode>),
    Revoked,
}

/// Looks this key up on the host; mints a setup code when the host does not know it.
async fn enrol(client: &Client, device_id: &str) -> Result<Enrolled, String> {
    client
        .wait_connected(CALL_TIMEOUT * 4)
        .await
        .map_err(|e| format!("cannot enrol this computer: {e}"))?;
    let list: DevicePairList = client
        .call_as(methods::DEVICE_PAIR_LIST, None, CALL_TIMEOUT)
        .await
        .map_err(|e| format!("cannot list paired devices: {e}"))?;
    if let Some(d) = list.paired.iter().find(|d| d.device_id == device_id) {
        return Ok(if d.revoked {
            Enrolled::Revoked
        } else {
            Enrolled::Paired
        });
    }
    let minted: SetupCodeResult = client
        .call_as(methods::DEVICE_PAIR_SETUP_CODE, None, CALL_TIMEOUT)
        .await
        .map_err(|e| format!("cannot mint a setup code for this computer: {e}"))?;
    let code = SetupCode::decode(&minted.setup_code)
        .map_err(|e| format!("the host's setup code does not decode: {e}"))?;
    tracing::info!(host_id = %minted.host_id, "pairing this computer with a fresh setup code");
    Ok(Enrolled::Code(Box::new(code)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_serializes_with_its_tag() {
        let v = serde_json::to_value(NodeModeState::Running {
            device_id: "d".into(),
            enrolment: Enrolment::SetupCode,
            connected: true,
            detail: "connected".into(),
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"state": "running", "deviceId": "d", "enrolment": "setupCode",
                               "connected": true, "detail": "connected"})
        );
        assert_eq!(
            NodeModeState::Revoked {
                device_id: "x".into()
            }
            .device_id(),
            Some("x")
        );
    }
}
