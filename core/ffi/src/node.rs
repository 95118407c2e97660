//! [`PerchNode`]: one device's node, as the app drives it: configure, pair, start, stop, ask.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use perch_node::setup::{PROBE_TIMEOUT, SetupTarget, first_answering};
use perch_node::{
    Capabilities, CapabilityHandler, ExpectedHost, FileVault, HostCalls, HostPins, IdentityStore,
    Node, NodeConfig, NodeState, SecretVault, TokenStore, normalize_gateway_url,
};
use perch_protocol::access::{self as pa, MAX_ACCESS_LIMIT, NodeAccessParams};
use tokio::sync::{mpsc, oneshot, watch};

use crate::canvas::{CanvasHandler, CanvasPresenter};
use crate::discovery::DiscoveredHost;
use crate::error::PerchError;
use crate::events::{NodeEvent, NodeListener, Reporting, deliver, forward_states};
use crate::location_changes::{LocationReport, Moves, WatchedPlace};
use crate::notifications::{
    NotificationBook, NotificationPresenter, NotificationReply, NotifyHandler,
};
use crate::providers::{
    DeviceHandler, DeviceInfoProvider, Location, LocationHandler, LocationProvider,
};
use crate::rt::{on_runtime, runtime, wait_for};
use crate::secrets::{ForeignVault, SecretStore};

/// How long `stop` waits for the node to close its connection before abandoning it.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What the app tells the node about itself; fixed for the node's lifetime.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct NodeSettings {
    /// The name shown in pairing prompts and node lists ("Anna's iPhone").
    pub display_name: String,
    /// A directory only this app can write (its files dir): the identity, device tokens and
    /// pinned host keys live here.
    pub data_dir: String,
    /// `ios` or `android` (the build target's OS when `None`).
    #[uniffi(default)]
    pub platform: Option<String>,
    /// Hardware family (`iPhone`, `Pixel`).
    #[uniffi(default)]
    pub device_family: Option<String>,
    /// Hardware model (`iPhone17,1`).
    #[uniffi(default)]
    pub model_identifier: Option<String>,
    /// BCP 47 locale.
    #[uniffi(default)]
    pub locale: Option<String>,
}

/// What the node is doing, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum NodePhase {
    /// Not started.
    Idle,
    /// Opening the connection.
    Connecting,
    /// Waiting for the user to approve this device on the host.
    WaitingForApproval,
    /// Paired and serving.
    Online,
    /// Disconnected; retrying by itself.
    Offline,
    /// Stopped (by `stop`, or refused by the host for good).
    Stopped,
}

/// A host this device trusts (pinned by key).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PairedHost {
    /// The host id (first 16 hex characters of its key's fingerprint).
    pub host_id: String,
    /// Hex SHA-256 of the host key.
    pub fingerprint: String,
    /// Where it was last reached.
    pub last_url: String,
}

/// A snapshot for the app's status screen.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct NodeStatus {
    /// This device's id, as the host knows it.
    pub device_id: String,
    /// Whether the node is started (it may still be offline).
    pub running: bool,
    /// What it is doing.
    pub phase: NodePhase,
    /// Where it connects, once paired or told.
    pub gateway_url: Option<String>,
    /// The host's name, while online.
    pub host_name: Option<String>,
    /// The code to compare with the host's, while waiting for approval.
    pub verification_code: Option<String>,
    /// Why the last connection or run ended, when it failed.
    pub last_error: Option<String>,
    /// The hosts this device trusts.
    pub hosts: Vec<PairedHost>,
}

/// What came of a command in the access record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum AccessOutcome {
    /// The node answered with a result.
    Ok,
    /// It reached the node and failed.
    Failed,
    /// The host refused it on the device's behalf.
    Refused,
}

/// One command the host ran on this device, for the app's "what the assistant did" screen.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct AccessEntry {
    /// When it was asked for, ms since the epoch.
    pub at_ms: i64,
    /// How long until its outcome was known.
    pub duration_ms: u64,
    /// The command.
    pub command: String,
    /// Who asked: `assistant` (a chat turn) or the operator client's name.
    pub requester: String,
    /// What came of it.
    pub outcome: AccessOutcome,
    /// The error code, for failed and refused commands.
    pub error_code: Option<String>,
}

/// Where the node connects and what it insists on finding there.
#[derive(Clone)]
struct Target {
    url: String,
    setup: Option<SetupTarget>,
    /// The key an advertisement named: any other is refused before anything is sent.
    expected: Option<ExpectedHost>,
}

/// A started node.
struct Running {
    /// Dropping or sending on it stops the node.
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    states: watch::Receiver<NodeState>,
    calls: HostCalls,
    /// Where the app's foreground, background and network reports go.
    app: perch_node::Lifecycle,
}

/// Whether the app is on screen, as the platform reports it (`onStart`/`onStop`,
/// `scenePhase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum AppState {
    /// On screen.
    Foreground,
    /// Not on screen; commands that need the screen answer `NODE_BACKGROUND_UNAVAILABLE`.
    Background,
}

impl From<AppState> for perch_node::AppPhase {
    fn from(s: AppState) -> Self {
        match s {
            AppState::Foreground => perch_node::AppPhase::Foreground,
            AppState::Background => perch_node::AppPhase::Background,
        }
    }
}

/// What the app plugged in, cloned out at each start.
#[derive(Default, Clone)]
struct Providers {
    listener: Option<Arc<dyn NodeListener>>,
    location: Option<Arc<dyn LocationProvider>>,
    device: Option<Arc<dyn DeviceInfoProvider>>,
    notify: Option<Arc<dyn NotificationPresenter>>,
    canvas: Option<Arc<dyn CanvasPresenter>>,
}

/// Plain state, locked only briefly (never across a foreign call or a wait).
#[derive(Default)]
struct Inner {
    target: Option<Target>,
    providers: Providers,
    running: Option<Running>,
    /// A node was started at least once (so no node now means stopped, not idle).
    started: bool,
}

/// This device as a node of a Perch host. Every method may be called from any thread; the
/// work runs on the library's own runtime.
#[derive(uniffi::Object)]
pub struct PerchNode {
    settings: NodeSettings,
    data_dir: PathBuf,
    device_id: String,
    /// Why the last run ended, written by the run task.
    last_error: Arc<Mutex<Option<String>>>,
    inner: Mutex<Inner>,
    /// Serializes start, stop and restart, which wait and call providers; `status` never
    /// takes it, so the UI can always ask.
    lifecycle: Mutex<()>,
    /// The app's last report, applied to every run (the app may report before `start`).
    app_state: Arc<Mutex<AppState>>,
    /// The notifications this node posted, for their replies.
    book: Arc<NotificationBook>,
    /// Where the identity and device tokens are kept.
    vault: Arc<dyn SecretVault>,
    /// What this node reported about its location, for the next decision.
    moves: Arc<Moves>,
}

impl std::fmt::Debug for PerchNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerchNode")
            .field("device_id", &self.device_id)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere never makes the node unusable: the data is plain state.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[uniffi::export]
impl PerchNode {
    /// Opens (or creates) this device's identity in `settings.data_dir`; nothing connects
    /// yet. A directory the app cannot write is `DataDirUnwritable`.
    #[uniffi::constructor]
    pub fn new(settings: NodeSettings) -> Result<Arc<Self>, PerchError> {
        let data_dir = writable_data_dir(&settings)?;
        let vault: Arc<dyn SecretVault> = Arc::new(FileVault::new(&data_dir));
        Self::open(settings, data_dir, vault)
    }

    /// As [`PerchNode::new`], with the identity key and device tokens in the platform's
    /// keystore (`store`) instead of files; pinned host keys stay in `settings.data_dir`.
    /// Pass the same store on every launch: another store is another device.
    #[uniffi::constructor]
    pub fn with_secret_store(
        settings: NodeSettings,
        store: Arc<dyn SecretStore>,
    ) -> Result<Arc<Self>, PerchError> {
        let data_dir = writable_data_dir(&settings)?;
        Self::open(settings, data_dir, Arc::new(ForeignVault(store)))
    }

    /// Offers the canvas commands through the app's web view; takes effect at the next
    /// start. They are answered only while the app is on screen.
    pub fn set_canvas_presenter(&self, presenter: Arc<dyn CanvasPresenter>) {
        lock(&self.inner).providers.canvas = Some(presenter);
    }

    /// Where events go (replacing any earlier listener); takes effect at the next start.
    pub fn set_listener(&self, listener: Arc<dyn NodeListener>) {
        lock(&self.inner).providers.listener = Some(listener);
    }

    /// Answers `location.get` from the platform; takes effect at the next start.
    pub fn set_location_provider(&self, provider: Arc<dyn LocationProvider>) {
        lock(&self.inner).providers.location = Some(provider);
    }

    /// Answers `device.info` and `device.status`; takes effect at the next start.
    pub fn set_device_info_provider(&self, provider: Arc<dyn DeviceInfoProvider>) {
        lock(&self.inner).providers.device = Some(provider);
    }

    /// Answers `system.notify`; takes effect at the next start.
    pub fn set_notification_presenter(&self, presenter: Arc<dyn NotificationPresenter>) {
        lock(&self.inner).providers.notify = Some(presenter);
    }

    /// Pairs with the host a setup code names (typed or scanned) and starts the node: the
    /// host's key is checked and the code's token pairs without a manual approval. Progress
    /// arrives as events; a code with a typo is `InvalidSetupCode` at once.
    pub async fn pair_with_setup_code(self: Arc<Self>, code: String) -> Result<(), PerchError> {
        let setup = SetupTarget::decode(&code).map_err(|e| PerchError::InvalidSetupCode {
            reason: e.to_string(),
        })?;
        on_runtime(async move {
            let url = match first_answering(&setup.urls, PROBE_TIMEOUT).await {
                Some(url) => url,
                // None answers yet: dial the first; the node retries with backoff.
                None => setup
                    .urls
                    .first()
                    .cloned()
                    .ok_or(PerchError::InvalidSetupCode {
                        reason: "the setup code lists no host address".into(),
                    })?,
            };
            let target = Target {
                url,
                setup: Some(setup),
                expected: None,
            };
            // Stopping an old node and asking providers for permissions may block.
            tokio::task::spawn_blocking(move || self.restart_with(target))
                .await
                .map_err(|e| PerchError::Internal {
                    reason: e.to_string(),
                })?
        })
        .await
    }

    /// Connects to a host by address and starts the node; a host that does not know this
    /// device shows a pairing request, and `WaitingForApproval` carries the code to compare.
    pub fn connect_to(&self, url: String) -> Result<(), PerchError> {
        let url = normalize_gateway_url(&url)?;
        self.restart_with(Target {
            url,
            setup: None,
            expected: None,
        })
    }

    /// Pairs with (or reconnects to) a host the platform's Bonjour browser found and
    /// [`crate::check_discovered_host`] accepted: the first of its addresses that answers is
    /// dialled, and only the advertised key is accepted (a pairing request to a host that does
    /// not know this device, as with `connect_to`). An advertisement naming another key than
    /// the one this device pinned for that host is `HostKeyChanged`: it never replaces a pin.
    pub async fn connect_to_discovered(
        self: Arc<Self>,
        host: DiscoveredHost,
    ) -> Result<(), PerchError> {
        if let Some(pinned) = HostPins::new(&self.data_dir).get(&host.host_id)?
            && host.fingerprint.as_deref() != Some(pinned.fingerprint.as_str())
        {
            return Err(PerchError::HostKeyChanged {
                host_id: host.host_id,
                reason: "the advertisement names another key than the one this device trusts"
                    .into(),
            });
        }
        let urls = host
            .urls
            .iter()
            .map(|u| normalize_gateway_url(u))
            .collect::<Result<Vec<_>, _>>()?;
        let expected = host.fingerprint.map(|fingerprint| ExpectedHost {
            host_id: host.host_id,
            fingerprint,
        });
        on_runtime(async move {
            let url = match first_answering(&urls, PROBE_TIMEOUT).await {
                Some(url) => url,
                None => urls
                    .first()
                    .cloned()
                    .ok_or(PerchError::InvalidAdvertisement {
                        reason: "no address to dial".into(),
                    })?,
            };
            let target = Target {
                url,
                setup: None,
                expected,
            };
            tokio::task::spawn_blocking(move || self.restart_with(target))
                .await
                .map_err(|e| PerchError::Internal {
                    reason: e.to_string(),
                })?
        })
        .await
    }

    /// Starts the node with its last target, or the one host this device trusts (after an
    /// app restart). Already running: nothing to do. No host known: `NoHost`.
    pub fn start(&self) -> Result<(), PerchError> {
        let _lifecycle = lock(&self.lifecycle);
        let target = {
            let inner = lock(&self.inner);
            if inner
                .running
                .as_ref()
                .is_some_and(|r| !r.task.is_finished())
            {
                return Ok(());
            }
            inner.target.clone()
        };
        let target = match target {
            Some(t) => t,
            None => match HostPins::new(&self.data_dir).all()?.as_slice() {
                [(_, pinned)] => Target {
                    url: pinned.last_url.clone(),
                    setup: None,
                    expected: None,
                },
                _ => return Err(PerchError::NoHost),
            },
        };
        self.launch(target)
    }

    /// The app came on screen or left it. Coming back reconnects at once if the node was
    /// waiting to; a live connection is kept either way.
    pub fn set_app_state(&self, state: AppState) {
        *lock(&self.app_state) = state;
        if let Some(r) = &lock(&self.inner).running {
            r.app.set_phase(state.into());
        }
    }

    /// The network changed (Wi-Fi joined, cellular back): a node waiting to reconnect tries now.
    pub fn network_changed(&self) {
        if let Some(r) = &lock(&self.inner).running {
            r.app.network_changed();
        }
    }

    /// Closes the connection and stops the node; `NotRunning` when it was not started.
    pub fn stop(&self) -> Result<(), PerchError> {
        let _lifecycle = lock(&self.lifecycle);
        // A node that stopped by itself stays in place, so `status` keeps its last state.
        let running = lock(&self.inner).running.take_if(|r| !r.task.is_finished());
        match running {
            Some(r) => stop_running(r),
            None => Err(PerchError::NotRunning),
        }
    }

    /// What the node is doing now.
    pub fn status(&self) -> Result<NodeStatus, PerchError> {
        let inner = lock(&self.inner);
        let hosts = HostPins::new(&self.data_dir)
            .all()?
            .into_iter()
            .map(|(host_id, p)| PairedHost {
                host_id,
                fingerprint: p.fingerprint,
                last_url: p.last_url,
            })
            .collect();
        let mut status = NodeStatus {
            device_id: self.device_id.clone(),
            running: false,
            phase: if inner.started {
                NodePhase::Stopped
            } else {
                NodePhase::Idle
            },
            gateway_url: inner.target.as_ref().map(|t| t.url.clone()),
            host_name: None,
            verification_code: None,
            last_error: lock(&self.last_error).clone(),
            hosts,
        };
        if let Some(r) = &inner.running {
            status.running = !r.task.is_finished();
            match &*r.states.borrow() {
                NodeState::Idle => {}
                NodeState::Connecting => status.phase = NodePhase::Connecting,
                NodeState::AwaitingApproval {
                    verification_code, ..
                } => {
                    status.phase = NodePhase::WaitingForApproval;
                    status.verification_code = verification_code.clone();
                }
                NodeState::Connected { host_name, .. } => {
                    status.phase = NodePhase::Online;
                    status.host_name = Some(host_name.clone());
                }
                NodeState::Backoff { last_error, .. } => {
                    status.phase = NodePhase::Offline;
                    status.last_error = Some(last_error.clone());
                }
                NodeState::WrongHost { message, .. } => {
                    status.phase = NodePhase::Offline;
                    status.last_error = Some(message.clone());
                }
                NodeState::Stopped { .. } => status.phase = NodePhase::Stopped,
            }
            if !status.running {
                status.phase = NodePhase::Stopped;
            }
        }
        Ok(status)
    }

    /// Stops trusting a host (after it was reinstalled with a new key): its pinned key and
    /// this device's token for it are removed, so the next connection pairs anew.
    pub fn forget_host(&self, host_id: String) -> Result<(), PerchError> {
        if !HostPins::new(&self.data_dir).forget(&host_id)? {
            return Err(PerchError::UnknownHost { host_id });
        }
        if let Err(e) =
            TokenStore::with_vault(self.vault.clone()).remove(&format!("host:{host_id}"))
        {
            tracing::warn!(error = %e, "cannot remove the device token of a forgotten host");
        }
        let mut inner = lock(&self.inner);
        if inner
            .target
            .as_ref()
            .and_then(|t| t.setup.as_ref())
            .is_some_and(|s| s.expected.host_id == host_id)
        {
            inner.target = None;
        }
        Ok(())
    }

    /// Reports a position the platform woke the app with (significant-change service,
    /// geofence, a fused-provider update). The node sends it to the host only when it is
    /// worth it: the first fix after connecting, a move of the host's distance, a named place
    /// entered or left; never while the user does not share this device's location.
    pub async fn report_location(
        self: Arc<Self>,
        location: Location,
    ) -> Result<LocationReport, PerchError> {
        let calls = self.host_calls()?;
        let conn = self.connection_id();
        let provider = lock(&self.inner).providers.location.clone();
        let moves = self.moves.clone();
        on_runtime(async move {
            // The provider's permission says whether the fix may be precise (a foreign call:
            // off the runtime's workers).
            let precise = match provider {
                Some(p) => tokio::task::spawn_blocking(move || p.permission().precise)
                    .await
                    .unwrap_or(false),
                None => true,
            };
            moves.report(&calls, conn, location, precise).await
        })
        .await
    }

    /// The named places to register as geofences (empty while the user does not share this
    /// device's location), asked of the host now.
    pub async fn watched_places(self: Arc<Self>) -> Result<Vec<WatchedPlace>, PerchError> {
        let calls = self.host_calls()?;
        let moves = self.moves.clone();
        on_runtime(async move { moves.places(&calls).await }).await
    }

    /// Sends what the user answered to a notification this node showed (a tapped action,
    /// typed text) to the host, where the assistant reads it in its next turn; returns once
    /// the host has recorded it. `UnknownNotification` for an id this node never posted (or
    /// one a week old), `InvalidReply` for an empty or oversized answer, `NotConnected` while
    /// offline (the app may try again: the host keeps one copy).
    pub async fn reply_to_notification(
        self: Arc<Self>,
        reply: NotificationReply,
    ) -> Result<(), PerchError> {
        let payload = self.book.reply_payload(reply)?;
        let calls = self.host_calls()?;
        let result =
            on_runtime(async move { Ok(calls.notification_reply(payload).await?) }).await?;
        if !result.handled {
            return Err(PerchError::HostRefused {
                code: "UNSUPPORTED".into(),
                reason: result
                    .reason
                    .unwrap_or_else(|| "the host does not take notification replies".into()),
            });
        }
        Ok(())
    }

    /// The newest `limit` commands the host ran on this device (who asked, when, what came
    /// of it), read from the host while online; `HostRefused` from a host without the record.
    pub async fn access_record(
        self: Arc<Self>,
        limit: u32,
    ) -> Result<Vec<AccessEntry>, PerchError> {
        let calls = self.host_calls()?;
        let query = NodeAccessParams {
            limit: Some(limit.clamp(1, MAX_ACCESS_LIMIT)),
            before: None,
        };
        let page = on_runtime(async move { Ok(calls.access_record(query).await?) }).await?;
        Ok(page.entries.into_iter().map(access_entry).collect())
    }
}

fn access_entry(e: pa::AccessEntry) -> AccessEntry {
    AccessEntry {
        at_ms: e.at_ms,
        duration_ms: e.duration_ms,
        command: e.command,
        requester: match e.requester {
            pa::AccessRequester::Turn { .. } => "assistant".into(),
            pa::AccessRequester::Operator { label, .. } => label,
        },
        outcome: match e.outcome {
            pa::AccessOutcome::Ok => AccessOutcome::Ok,
            pa::AccessOutcome::Failed => AccessOutcome::Failed,
            pa::AccessOutcome::Refused => AccessOutcome::Refused,
        },
        error_code: e.error_code,
    }
}

/// Asks a running node to stop and waits (bounded) for it to close its connection.
fn stop_running(r: Running) -> Result<(), PerchError> {
    let Running { stop, task, .. } = r;
    let _ = stop.send(());
    let abort = task.abort_handle();
    let finished = wait_for(async move { tokio::time::timeout(STOP_GRACE, task).await.is_ok() })?;
    if !finished {
        tracing::warn!("the node did not stop in time; abandoning its connection");
        abort.abort();
    }
    Ok(())
}

/// The app's data dir, created and checked writable.
fn writable_data_dir(settings: &NodeSettings) -> Result<PathBuf, PerchError> {
    let unwritable = |reason: String| PerchError::DataDirUnwritable { reason };
    if settings.data_dir.trim().is_empty() {
        return Err(unwritable("no data directory given".into()));
    }
    let data_dir = PathBuf::from(&settings.data_dir);
    perch_node::identity_store::ensure_data_dir(&data_dir)?;
    let probe = data_dir.join(".perch-write-probe");
    std::fs::write(&probe, b"ok")
        .map_err(|e| unwritable(format!("cannot write in {}: {e}", data_dir.display())))?;
    let _ = std::fs::remove_file(&probe);
    Ok(data_dir)
}

impl PerchNode {
    /// Loads (or creates) the identity in `vault` and builds the node object.
    fn open(
        settings: NodeSettings,
        data_dir: PathBuf,
        vault: Arc<dyn SecretVault>,
    ) -> Result<Arc<Self>, PerchError> {
        let identity = IdentityStore::with_vault(vault.clone()).load_or_create()?;
        Ok(Arc::new(PerchNode {
            device_id: identity.device_id().to_string(),
            settings,
            book: Arc::new(NotificationBook::open(&data_dir)),
            data_dir,
            vault,
            moves: Arc::new(Moves::default()),
            last_error: Arc::new(Mutex::new(None)),
            inner: Mutex::new(Inner::default()),
            lifecycle: Mutex::new(()),
            app_state: Arc::new(Mutex::new(AppState::Foreground)),
        }))
    }

    /// The id of the live connection, if connected.
    fn connection_id(&self) -> Option<String> {
        match &lock(&self.inner).running {
            Some(r) => match &*r.states.borrow() {
                NodeState::Connected { conn_id, .. } => Some(conn_id.clone()),
                _ => None,
            },
            None => None,
        }
    }

    /// The running node's handle for calls to its host.
    fn host_calls(&self) -> Result<HostCalls, PerchError> {
        match &lock(&self.inner).running {
            Some(r) if !r.task.is_finished() => Ok(r.calls.clone()),
            _ => Err(PerchError::NotRunning),
        }
    }

    /// Stops any running node, then starts one for `target`.
    fn restart_with(&self, target: Target) -> Result<(), PerchError> {
        let _lifecycle = lock(&self.lifecycle);
        let old = lock(&self.inner).running.take();
        if let Some(r) = old
            && !r.task.is_finished()
        {
            stop_running(r)?;
        }
        self.launch(target)
    }

    /// Starts a node for `target` and records it; the caller holds `lifecycle`.
    fn launch(&self, target: Target) -> Result<(), PerchError> {
        let providers = lock(&self.inner).providers.clone();
        let running = self.spawn(&providers, &target)?;
        let mut inner = lock(&self.inner);
        inner.target = Some(target);
        inner.running = Some(running);
        inner.started = true;
        Ok(())
    }

    /// Builds the node for `target` with the app's providers (asking them for their
    /// permissions) and runs it on the library's runtime.
    fn spawn(&self, providers: &Providers, target: &Target) -> Result<Running, PerchError> {
        let rt = runtime()?;
        let (events, events_rx) = mpsc::unbounded_channel();
        let mut handlers: Vec<Arc<dyn CapabilityHandler>> = Vec::new();
        if let Some(p) = &providers.location {
            handlers.push(Arc::new(LocationHandler {
                provider: p.clone(),
                app_state: self.app_state.clone(),
            }));
        }
        if let Some(p) = &providers.device {
            handlers.push(Arc::new(DeviceHandler(p.clone())));
        }
        if let Some(p) = &providers.notify {
            handlers.push(Arc::new(NotifyHandler {
                presenter: p.clone(),
                book: self.book.clone(),
            }));
        }
        if let Some(p) = &providers.canvas {
            handlers.push(Arc::new(CanvasHandler(p.clone())));
        }
        let mut caps = Capabilities::new();
        for h in handlers {
            caps.register(Arc::new(Reporting {
                inner: h,
                events: events.clone(),
            }))
            .map_err(|e| PerchError::Internal {
                reason: e.to_string(),
            })?;
        }
        let mut config = NodeConfig::new(
            target.url.clone(),
            self.settings.display_name.clone(),
            self.data_dir.clone(),
        );
        config.platform = self.settings.platform.clone();
        config.device_family = self.settings.device_family.clone();
        config.model_identifier = self.settings.model_identifier.clone();
        config.locale = self.settings.locale.clone();
        config.secrets = Some(self.vault.clone());
        if let Some(setup) = &target.setup {
            setup.apply(&mut config);
        }
        if let Some(expected) = &target.expected {
            config.expected_host = Some(expected.clone());
        }
        let node = Node::new(config, caps)?;
        let url = node.gateway_url().to_string();
        let states = node.subscribe();
        let calls = node.host_calls();
        let app = node.lifecycle();
        app.set_phase((*lock(&self.app_state)).into());
        let (stop, stop_rx) = oneshot::channel::<()>();
        let last_error = self.last_error.clone();
        *lock(&last_error) = None;
        rt.spawn(deliver(events_rx, providers.listener.clone()));
        let forward = rt.spawn(forward_states(
            node.subscribe(),
            url.clone(),
            events.clone(),
        ));
        let task = rt.spawn(async move {
            // A dropped sender (the PerchNode went away) stops the node as well.
            let result = node.run(async move {
                let _ = stop_rx.await;
            });
            let result = result.await;
            let _ = forward.await;
            let error = result.err().map(|e| {
                tracing::warn!(error = %e, "the node stopped");
                e.to_string()
            });
            // The status says why before any listener hears of it.
            lock(&last_error).clone_from(&error);
            let _ = events.send(NodeEvent::Stopped { error });
        });
        Ok(Running {
            stop,
            task,
            states,
            calls,
            app,
        })
    }
}
