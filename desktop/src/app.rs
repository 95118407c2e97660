//! The app's core, shared by the tray, the Tauri commands and the tests: the host
//! supervisor, the operator connection to whatever host runs, the tracker, this computer's
//! node, and the actions every surface calls (approve, reject, retry, save settings). It knows
//! nothing about windows or menus; it publishes an [`AppView`] they draw.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use perch_client::{Client, ClientConfig, ClientError, ConnectionState, OperatorToken};
use perch_host::paths::{operator_token_path, read_operator_token};
use perch_protocol::ErrorShape;
use perch_protocol::methods::{self, PairDecisionResult};
use perch_protocol::settings::{SETTINGS_GET, SETTINGS_SET, Settings, SettingsPatch};

use crate::host::{HostOptions, HostState, HostSupervisor};
use crate::node_mode::{NodeMode, NodeModeState};
use crate::state::{Derived, Inputs, Link, TrayState, derive};
use crate::tracker::{DeviceView, Observation, PendingPairing, Snapshot, Tracker};

/// Limit for the app's own requests (approve, reject, settings).
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// `client.id` of the app's operator connection.
pub const CLIENT_ID: &str = "perch-desktop";

/// How to run the core.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DesktopOptions {
    /// The host supervisor's options (data directory, `--bind`, probe and retry timing).
    pub host: HostOptions,
    /// Run this computer as a node of its host.
    pub node_mode: bool,
    /// Longest reconnect delay of the operator connection.
    pub client_backoff_cap: Duration,
}

impl DesktopOptions {
    /// Defaults: node mode on, operator reconnects capped at 5 s.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            host: HostOptions::new(data_dir),
            node_mode: true,
            client_backoff_cap: Duration::from_secs(5),
        }
    }
}

/// Everything the tray, the shell page and `app_state` show.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppView {
    /// The icon's state.
    pub tray: TrayState,
    /// Tooltip and first menu row.
    pub status: String,
    /// The host supervisor's state (with the error reason and hint).
    pub host: HostState,
    /// The operator connection, in words.
    pub connection: String,
    /// Pairing requests waiting, oldest first.
    pub pending: Vec<PendingPairing>,
    /// Paired nodes.
    pub devices: Vec<DeviceView>,
    /// Agent turns running.
    pub active_turns: u32,
    /// The data directory.
    pub data_dir: String,
    /// The `--bind` address overriding perch.toml, if the app was started with one (then the
    /// file's address does not apply).
    pub bind_override: Option<String>,
    /// This computer as a node.
    pub this_computer: NodeModeState,
    /// perch.toml differs from what the running host uses (a restart applies it).
    pub restart_required: bool,
}

/// Builds the view from its parts (pure).
pub fn compose(
    host: &HostState,
    link: &Link,
    connection: String,
    snapshot: &Snapshot,
    node: &NodeModeState,
    options: &HostOptions,
) -> AppView {
    // Lists from a connection that is not live would be stale; show none.
    let live = host.addr().is_some() && *link == Link::Connected && snapshot.loaded;
    let (pending, devices, turns, restart_required) = if live {
        (
            snapshot.pending.clone(),
            snapshot.devices.clone(),
            snapshot.active_turns,
            snapshot.restart_required,
        )
    } else {
        (vec![], vec![], 0, false)
    };
    let Derived { tray, status } = derive(&Inputs {
        host,
        link,
        pending: &pending,
        active_turns: turns,
        devices: &devices,
    });
    AppView {
        tray,
        status,
        host: host.clone(),
        connection,
        pending,
        devices,
        active_turns: turns,
        data_dir: options.data_dir.display().to_string(),
        bind_override: options.bind.map(|b| b.to_string()),
        this_computer: node.clone(),
        restart_required,
    }
}

/// Why an action failed; commands send it to the page as `{code, message}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActionError {
    /// No host, or no connection to it.
    #[error("no Perch host is available: {reason}")]
    HostUnavailable {
        /// Why.
        reason: String,
    },
    /// The host (or the settings library) refused, with its structured error.
    #[error("{}: {}", .0.code, .0.message)]
    Host(ErrorShape),
    /// The page named something that does not exist.
    #[error("{0}")]
    Invalid(String),
    /// A window could not be opened.
    #[error("cannot open the window: {0}")]
    Window(String),
}

impl ActionError {
    /// The stable code for the page to branch on.
    pub fn code(&self) -> String {
        match self {
            ActionError::HostUnavailable { .. } => "HOST_UNAVAILABLE".into(),
            ActionError::Host(shape) => shape.code.to_string(),
            ActionError::Invalid(_) => "INVALID_REQUEST".into(),
            ActionError::Window(_) => "WINDOW_ERROR".into(),
        }
    }
}

impl From<ClientError> for ActionError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Host(shape) => ActionError::Host(shape),
            other => ActionError::HostUnavailable {
                reason: other.to_string(),
            },
        }
    }
}

/// A URL of the host's web UI carrying the operator token in its fragment; `Debug` hides the
/// fragment, and nothing logs it.
pub struct UiUrl(pub tauri::Url);

impl std::fmt::Debug for UiUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.0.clone();
        shown.set_fragment(Some("token=<redacted>"));
        write!(f, "UiUrl({shown})")
    }
}

/// The operator token for the host in `data_dir`: `PERCH_OPERATOR_TOKEN`, else the
/// data directory's `operator.token`. The error never contains the token.
pub fn operator_token(data_dir: &Path) -> Result<String, String> {
    if let Ok(t) = std::env::var("PERCH_OPERATOR_TOKEN")
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_string());
    }
    read_operator_token(&operator_token_path(data_dir)).map_err(|e| {
        format!(
            "no operator token for this host ({e}); start the host once with this data directory or set PERCH_OPERATOR_TOKEN"
        )
    })
}

/// The shared core. Cheap to clone.
#[derive(Clone)]
pub struct Desktop {
    inner: Arc<Inner>,
}

struct Inner {
    options: DesktopOptions,
    host: HostSupervisor,
    client: Mutex<Option<Client>>,
    view: watch::Sender<AppView>,
    observations: broadcast::Sender<Observation>,
    refresh: Arc<Notify>,
    rebuild: Notify,
    quitting: AtomicBool,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Desktop {
    /// Starts the host supervisor and the core's loop; must be called inside a tokio runtime.
    pub fn start(options: DesktopOptions) -> Desktop {
        let host = HostSupervisor::start(options.host.clone());
        let initial = compose(
            &host.current(),
            &Link::Connecting,
            "not connected".into(),
            &Snapshot::default(),
            &NodeModeState::Off,
            &options.host,
        );
        let (view, _) = watch::channel(initial);
        let (observations, _) = broadcast::channel(64);
        let inner = Arc::new(Inner {
            options,
            host,
            client: Mutex::new(None),
            view,
            observations,
            refresh: Arc::new(Notify::new()),
            rebuild: Notify::new(),
            quitting: AtomicBool::new(false),
            stop: CancellationToken::new(),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(main_loop(inner.clone()));
        if let Ok(mut slot) = inner.task.lock() {
            *slot = Some(task);
        }
        Desktop { inner }
    }

    /// A live view of what to show.
    pub fn view(&self) -> watch::Receiver<AppView> {
        self.inner.view.subscribe()
    }

    /// What to show now.
    pub fn current(&self) -> AppView {
        self.inner.view.borrow().clone()
    }

    /// What happened on the host, for notifications.
    pub fn observations(&self) -> broadcast::Receiver<Observation> {
        self.inner.observations.subscribe()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.inner.options.host.data_dir
    }

    /// Marks that the user chose Quit, so the app may exit when its windows close.
    pub fn begin_quit(&self) {
        self.inner.quitting.store(true, Ordering::Relaxed);
    }

    /// Whether the user chose Quit.
    pub fn is_quitting(&self) -> bool {
        self.inner.quitting.load(Ordering::Relaxed)
    }

    fn connected_client(&self) -> Result<Client, ActionError> {
        let client = self.inner.client.lock().ok().and_then(|c| c.clone());
        match client {
            Some(c) if c.current_state().is_connected() => Ok(c),
            _ => Err(ActionError::HostUnavailable {
                reason: self.current().status,
            }),
        }
    }

    async fn decide(
        &self,
        method: &str,
        request_id: &str,
    ) -> Result<PairDecisionResult, ActionError> {
        let client = self.connected_client()?;
        let result = client
            .call_as(
                method,
                Some(json!({ "requestId": request_id })),
                CALL_TIMEOUT,
            )
            .await?;
        self.inner.refresh.notify_one();
        Ok(result)
    }

    /// Approves a pairing request.
    pub async fn approve(&self, request_id: &str) -> Result<PairDecisionResult, ActionError> {
        self.decide(methods::DEVICE_PAIR_APPROVE, request_id).await
    }

    /// Rejects a pairing request.
    pub async fn reject(&self, request_id: &str) -> Result<PairDecisionResult, ActionError> {
        self.decide(methods::DEVICE_PAIR_REJECT, request_id).await
    }

    /// Tries again: the host (attach, else start) when there is none, or the operator
    /// connection (re-reading the token) when the host refused it.
    pub fn retry(&self) {
        let link_refused = matches!(
            self.inner
                .client
                .lock()
                .ok()
                .and_then(|c| c.clone())
                .map(|c| c.current_state()),
            Some(ConnectionState::Unauthorized { .. })
        );
        let no_client = self
            .inner
            .client
            .lock()
            .map(|c| c.is_none())
            .unwrap_or(true);
        if self.inner.host.current().addr().is_some() && (link_refused || no_client) {
            self.inner.rebuild.notify_one();
        } else {
            self.inner.host.retry();
        }
    }

    /// Restarts the host running in this app so a changed perch.toml applies; an attached
    /// host is left alone (it is not ours to stop).
    pub fn restart_host(&self) {
        self.inner.host.restart();
    }

    /// The settings in perch.toml (with what the running host uses, when one answers).
    pub async fn settings(&self) -> Result<Settings, ActionError> {
        if let Ok(client) = self.connected_client() {
            return Ok(client.call_as(SETTINGS_GET, None, CALL_TIMEOUT).await?);
        }
        let dir = self.data_dir().to_path_buf();
        tokio::task::spawn_blocking(move || perch_host::settings::read(&dir))
            .await
            .map_err(|e| ActionError::Invalid(e.to_string()))?
            .map_err(|e| ActionError::Host(e.to_shape()))
    }

    /// Changes settings: through the host when one answers (so it reports what needs a
    /// restart), else in perch.toml directly; then, if there is no host, tries again.
    pub async fn save_settings(&self, patch: SettingsPatch) -> Result<Settings, ActionError> {
        if let Ok(client) = self.connected_client() {
            let params =
                serde_json::to_value(&patch).map_err(|e| ActionError::Invalid(e.to_string()))?;
            return Ok(client
                .call_as(SETTINGS_SET, Some(params), CALL_TIMEOUT)
                .await?);
        }
        let dir = self.data_dir().to_path_buf();
        let saved = tokio::task::spawn_blocking(move || perch_host::settings::update(&dir, patch))
            .await
            .map_err(|e| ActionError::Invalid(e.to_string()))?
            .map_err(|e| ActionError::Host(e.to_shape()))?;
        if self.inner.host.current().addr().is_none() {
            self.inner.host.retry();
        }
        Ok(saved)
    }

    /// The web UI's URL for `page` (`chat`, `devices`, `settings`) on the running host, with
    /// the operator token in the fragment.
    pub fn ui_url(&self, page: &str) -> Result<UiUrl, ActionError> {
        let addr =
            self.inner
                .host
                .current()
                .addr()
                .ok_or_else(|| ActionError::HostUnavailable {
                    reason: self.current().status,
                })?;
        // The page gets the token: only a host that proved this data directory's key (the
        // operator connection is up, and its client checked the key) may serve it.
        let verified = self
            .inner
            .client
            .lock()
            .ok()
            .and_then(|c| c.as_ref().map(|c| c.current_state().is_connected()))
            .unwrap_or(false);
        if !verified {
            return Err(ActionError::HostUnavailable {
                reason: format!("the host at {addr} has not proved its identity yet"),
            });
        }
        let token = operator_token(self.data_dir())
            .map_err(|reason| ActionError::HostUnavailable { reason })?;
        let mut url = tauri::Url::parse(&format!("http://{addr}/ui/{page}"))
            .map_err(|e| ActionError::Invalid(e.to_string()))?;
        url.set_fragment(Some(&format!("token={token}")));
        Ok(UiUrl(url))
    }

    /// Stops node mode, the operator connection and (if it runs here) the host.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        let task = self.inner.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "desktop core ended abnormally");
        }
        self.inner.host.shutdown().await;
    }
}

/// The operator token of `dir` and the key fingerprint of the host it belongs to: the token
/// goes only to the host that proves that key. `Err` says why there is no operator connection.
fn credentials(dir: &Path) -> Result<(OperatorToken, String), String> {
    let token = OperatorToken::new(operator_token(dir)?);
    match perch_host::paths::read_host_fingerprint(dir) {
        Ok(Some(fp)) => Ok((token, fp)),
        Ok(None) => Err(format!(
            "no host key in {} to check the host against",
            dir.display()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The operator connection, tracker and node for one running host.
struct Session {
    addr: SocketAddr,
    client: Option<Client>,
    /// Why there is no client (no operator token).
    no_client: Option<String>,
    tracker: Option<Tracker>,
    node: Option<NodeMode>,
}

impl Session {
    fn open(inner: &Inner, addr: SocketAddr) -> Session {
        let dir = &inner.options.host.data_dir;
        let (token, host_key) = match credentials(dir) {
            Ok(c) => c,
            Err(reason) => {
                tracing::warn!(%reason, "no operator connection");
                return Session {
                    addr,
                    client: None,
                    no_client: Some(reason),
                    tracker: None,
                    node: None,
                };
            }
        };
        let url = format!("ws://{addr}");
        let mut config = ClientConfig::new(url.clone(), token, host_key);
        config.client_id = CLIENT_ID.into();
        config.display_name = Some("Perch menu".into());
        config.backoff_cap = inner.options.client_backoff_cap;
        let client = Client::start(config);
        let tracker = Tracker::start(
            client.clone(),
            inner.observations.clone(),
            inner.refresh.clone(),
        );
        let node = inner
            .options
            .node_mode
            .then(|| NodeMode::start(client.clone(), dir, url));
        Session {
            addr,
            client: Some(client),
            no_client: None,
            tracker: Some(tracker),
            node,
        }
    }

    async fn close(mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await;
        }
        drop(self.tracker.take());
        if let Some(client) = self.client.take() {
            client.shutdown().await;
        }
    }
}

/// Waits for a change of an optional watch; pends forever without one, and drops a watch
/// whose sender is gone.
async fn changed<T>(rx: &mut Option<watch::Receiver<T>>) {
    match rx {
        Some(r) => {
            if r.changed().await.is_err() {
                *rx = None;
            }
        }
        None => std::future::pending().await,
    }
}

async fn main_loop(inner: Arc<Inner>) {
    let mut host_rx = inner.host.state();
    let mut session: Option<Session> = None;
    let mut conn_rx: Option<watch::Receiver<ConnectionState>> = None;
    let mut snap_rx: Option<watch::Receiver<Snapshot>> = None;
    let mut node_rx: Option<watch::Receiver<NodeModeState>> = None;
    let mut rebuild = false;
    loop {
        let host = host_rx.borrow_and_update().clone();
        let want = host.addr();
        if rebuild || want != session.as_ref().map(|s| s.addr) {
            rebuild = false;
            if let Some(old) = session.take() {
                old.close().await;
            }
            if let Ok(mut c) = inner.client.lock() {
                *c = None;
            }
            conn_rx = None;
            snap_rx = None;
            node_rx = None;
            if let Some(addr) = want {
                let s = Session::open(&inner, addr);
                conn_rx = s.client.as_ref().map(Client::state);
                snap_rx = s.tracker.as_ref().map(Tracker::snapshot);
                node_rx = s.node.as_ref().map(NodeMode::state);
                if let Ok(mut c) = inner.client.lock() {
                    c.clone_from(&s.client);
                }
                session = Some(s);
            }
        }
        let (link, connection) = match (&session, &conn_rx) {
            (Some(s), _) if s.no_client.is_some() => {
                let reason = s.no_client.clone().unwrap_or_default();
                (
                    Link::Refused {
                        reason: reason.clone(),
                    },
                    reason,
                )
            }
            (_, Some(rx)) => {
                let state = rx.borrow().clone();
                (Link::from_client(&state), state.to_string())
            }
            _ => (Link::Connecting, "not connected".into()),
        };
        let snapshot = snap_rx
            .as_ref()
            .map(|r| r.borrow().clone())
            .unwrap_or_default();
        let node = node_rx
            .as_ref()
            .map(|r| r.borrow().clone())
            .unwrap_or(NodeModeState::Off);
        let view = compose(
            &host,
            &link,
            connection,
            &snapshot,
            &node,
            &inner.options.host,
        );
        inner.view.send_if_modified(|v| {
            let changed = *v != view;
            *v = view;
            changed
        });
        tokio::select! {
            r = host_rx.changed() => {
                if r.is_err() {
                    break;
                }
            }
            _ = changed(&mut conn_rx) => {}
            _ = changed(&mut snap_rx) => {}
            _ = changed(&mut node_rx) => {}
            _ = inner.rebuild.notified() => rebuild = true,
            _ = inner.stop.cancelled() => break,
        }
    }
    if let Some(s) = session.take() {
        s.close().await;
    }
    if let Ok(mut c) = inner.client.lock() {
        *c = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_urls_hide_the_token_in_debug() {
        let mut url = tauri::Url::parse("http://127.0.0.1:1/ui/chat").unwrap();
        url.set_fragment(Some("token=s3cret-token-value"));
        let shown = format!("{:?}", UiUrl(url));
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("/ui/chat"), "{shown}");
    }

    #[test]
    fn stale_lists_are_hidden_when_not_connected() {
        let host = HostState::Running {
            addr: "127.0.0.1:1".parse().unwrap(),
            mode: crate::host::HostMode::Embedded,
            host_id: "h".into(),
        };
        let snapshot = Snapshot {
            loaded: true,
            pending: vec![PendingPairing {
                request_id: "r".into(),
                device_id: "d".into(),
                display_name: "n".into(),
                platform: "p".into(),
                verification_code: "000 000".into(),
                requested_at_ms: 0,
            }],
            ..Snapshot::default()
        };
        let opts = HostOptions::new("/d".into());
        let live = compose(
            &host,
            &Link::Connected,
            "c".into(),
            &snapshot,
            &NodeModeState::Off,
            &opts,
        );
        assert_eq!(live.tray, TrayState::Attention);
        assert_eq!(live.pending.len(), 1);
        let lost = Link::Lost { reason: "x".into() };
        let v = compose(
            &host,
            &lost,
            "c".into(),
            &snapshot,
            &NodeModeState::Off,
            &opts,
        );
        assert!(v.pending.is_empty());
        assert!(matches!(v.tray, TrayState::Error { .. }));
    }

    #[test]
    fn action_errors_have_stable_codes() {
        let e: ActionError = ClientError::Host(ErrorShape::new(
            perch_protocol::ErrorCode::NotFound,
            "no such request",
        ))
        .into();
        assert_eq!(e.code(), "NOT_FOUND");
        let e: ActionError = ClientError::Closed.into();
        assert_eq!(e.code(), "HOST_UNAVAILABLE");
    }
}
