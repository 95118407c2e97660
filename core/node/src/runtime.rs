//! The connection loop: connect, answer the challenge, wait for pairing approval, serve
//! invokes, and reconnect with backoff until told to stop or refused for good.
//!
//! One [`Node`] owns one WebSocket at a time. Invokes run on their own tasks (bounded by the
//! host's `timeoutMs`, aborted on `node.invoke.cancel`); their results come back to the loop
//! through a channel, so the socket has a single writer.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::{Fuse, FutureExt};
use futures_util::{SinkExt, StreamExt};
use perch_protocol::events::{
    self, ConnectionClosing, InvokeCancel, InvokeRequest, PairResolution, PairResolved,
};
use perch_protocol::frame::{EventFrame, Response};
use perch_protocol::handshake::{
    CHALLENGE_EVENT, CONNECT_METHOD, Challenge, ClientInfo, ConnectAuth, ConnectParams,
    HelloBinding, HelloOk, Role,
};
use perch_protocol::methods::{InvokeResultParams, NODE_INVOKE_RESULT};
use perch_protocol::presence::{
    AlivePayload, NODE_EVENT, NODE_PRESENCE_ACTIVITY, NODE_PRESENCE_ALIVE, NodeEventParams,
};
use perch_protocol::verification;
use perch_protocol::{
    DEFAULT_INVOKE_TIMEOUT_MS, DEFAULT_MAX_PAYLOAD, DEFAULT_TICK_INTERVAL_MS, DeviceId,
    DeviceIdentity, ErrorCode, ErrorShape, Frame, MAX_INVOKE_TIMEOUT_MS, PROTOCOL_VERSION, Reason,
    close_code,
};
use perch_tls::{DialError, HostPin};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::backoff::{self, Backoff};
use crate::capability::{Capabilities, CommandError};
use crate::host_calls::{HOST_CALL_QUEUE, HostCall, HostCalls};
use crate::identity_store::{
    FileVault, HostPins, IdentityStore, SecretVault, StoreError, TokenStore, ensure_data_dir,
};
use crate::lifecycle::{self, Lifecycle};

/// How often the activity source is read while connected.
const ACTIVITY_CHECK: Duration = Duration::from_secs(5);
/// Longest gap between activity reports while the user is idle.
const ACTIVITY_KEEPALIVE: Duration = Duration::from_secs(180);

/// `client.id` this runtime presents; part of the signed payload.
pub const CLIENT_ID: &str = "perch-node";
/// `client.mode` and `role` of a node; part of the signed payload.
const NODE_MODE: &str = perch_protocol::handshake::client_mode::NODE;
/// How long a graceful close waits for the host's close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long any other close waits (the host is gone or closing anyway).
const SHORT_CLOSE_GRACE: Duration = Duration::from_millis(250);

/// What a node needs to know to reach its host. Build it with [`NodeConfig::new`] and adjust
/// the public fields; new fields get defaults, so embedders keep compiling.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// The host's WebSocket URL, for example `ws://127.0.0.1:18789` (see [`normalize_gateway_url`]).
    pub gateway_url: String,
    /// The name shown in pairing prompts and node lists.
    pub display_name: String,
    /// Where the identity and device tokens are kept.
    pub data_dir: PathBuf,
    /// Stable per-install id, sent as `client.instanceId` (the host keys presence by device id).
    pub instance_id: Option<String>,
    /// Operating system sent as `client.platform` (`ios`, `android`...); the build target's
    /// OS when `None`. Signed, so it must not change between connects.
    pub platform: Option<String>,
    /// Hardware family (`Mac`, `iPhone`...); signed, so it must not change between connects.
    pub device_family: Option<String>,
    /// Hardware model (`iPhone17,1`...).
    pub model_identifier: Option<String>,
    /// BCP 47 locale of the device.
    pub locale: Option<String>,
    /// Limit for each handshake step (TCP + WebSocket upgrade, challenge, connect answer).
    pub handshake_timeout: Duration,
    /// The host this node must find at the URL (from a setup code, or picked by discovery):
    /// any other key is refused.
    pub expected_host: Option<ExpectedHost>,
    /// A single-use bootstrap token from a setup code: pairs without a manual approval.
    pub bootstrap_token: Option<BootstrapToken>,
    /// First reconnect delay.
    pub backoff_base: Duration,
    /// Longest reconnect delay.
    pub backoff_cap: Duration,
    /// Connect as a short-lived reader of this device's own records (client mode `cli`), for
    /// a command line asking while the node itself runs elsewhere: the host neither lists the
    /// connection as the node nor lets it replace the node's live connection.
    pub reader_only: bool,
    /// Where the identity and device tokens are kept instead of files in `data_dir` (a
    /// phone's Keychain or Keystore); pinned host keys stay in `data_dir`.
    pub secrets: Option<Arc<dyn SecretVault>>,
}

impl NodeConfig {
    /// A config with default timeouts and backoff (500 ms doubling to 30 s).
    pub fn new(
        gateway_url: impl Into<String>,
        display_name: impl Into<String>,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            gateway_url: gateway_url.into(),
            display_name: display_name.into(),
            data_dir: data_dir.into(),
            instance_id: None,
            platform: None,
            device_family: None,
            model_identifier: None,
            locale: None,
            handshake_timeout: Duration::from_secs(15),
            expected_host: None,
            bootstrap_token: None,
            backoff_base: backoff::DEFAULT_BASE,
            backoff_cap: backoff::DEFAULT_CAP,
            reader_only: false,
            secrets: None,
        }
    }

    /// The vault the identity and tokens live in.
    pub fn vault(&self) -> Arc<dyn SecretVault> {
        match &self.secrets {
            Some(v) => v.clone(),
            None => Arc::new(FileVault::new(&self.data_dir)),
        }
    }
}

/// A host identity the node insists on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedHost {
    /// Host id (first 16 hex characters of the fingerprint).
    pub host_id: String,
    /// Hex SHA-256 of the host key.
    pub fingerprint: String,
}

/// A bootstrap token; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken(pub String);

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BootstrapToken(<redacted>)")
    }
}

/// Tells the node how long the user has been idle on this device, where the platform knows.
pub trait ActivitySource: Send + Sync {
    /// Seconds since the last user input, or `None` when unknown.
    fn idle_seconds(&self) -> Option<u64>;
}

/// What the node is doing, for embedders to show (the CLI prints the pairing request id, the
/// desktop app draws it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeState {
    /// Created, `run` not called yet.
    Idle,
    /// Opening the socket or doing the handshake.
    Connecting,
    /// The host does not know this device yet; the user must approve the request.
    AwaitingApproval {
        /// The id to pass to `perch devices approve`.
        request_id: String,
        /// Six digits (`"048 213"`) the host shows beside the request, computed from both keys,
        /// so the user can check they approve this device on the host they mean. `None` when
        /// the host did not prove a key (an OpenClaw gateway).
        verification_code: Option<String>,
    },
    /// Paired and serving invokes.
    Connected {
        /// The host's display name.
        host_name: String,
        /// The host's id for this connection, for matching logs on both sides.
        conn_id: String,
    },
    /// Waiting before the next connection attempt.
    Backoff {
        /// How long until the next attempt.
        retry_in_ms: u64,
        /// Why the last attempt ended.
        last_error: String,
    },
    /// Something at the host's address could not prove the key this node trusts (the pinned
    /// one, or the one its setup code names), so it was told nothing. The node tries again
    /// with backoff: the real host may come back, and whoever holds the address must not be
    /// able to switch the node off. If the host was reinstalled, the user forgets its pin.
    WrongHost {
        /// The host this node trusts at that address.
        trusted_host_id: String,
        /// What answered instead: a host id, or a description when it proved no key.
        found: String,
        /// The whole story, with what to do, for display.
        message: String,
        /// How long until the next attempt.
        retry_in_ms: u64,
    },
    /// `run` has returned.
    Stopped {
        /// Why, when it was not a requested shutdown.
        error: Option<String>,
    },
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeState::Idle => f.write_str("idle"),
            NodeState::Connecting => f.write_str("connecting"),
            NodeState::AwaitingApproval {
                request_id,
                verification_code: Some(code),
            } => write!(
                f,
                "awaiting approval (request {request_id}, verification code {code})"
            ),
            NodeState::AwaitingApproval {
                request_id,
                verification_code: None,
            } => write!(f, "awaiting approval (request {request_id})"),
            NodeState::Connected { host_name, conn_id } => {
                write!(f, "connected to {host_name} (connection {conn_id})")
            }
            NodeState::Backoff {
                retry_in_ms,
                last_error,
            } => write!(f, "retrying in {retry_in_ms} ms after: {last_error}"),
            NodeState::WrongHost {
                message,
                retry_in_ms,
                ..
            } => write!(f, "{message}; trying again in {retry_in_ms} ms"),
            NodeState::Stopped { error: None } => f.write_str("stopped"),
            NodeState::Stopped { error: Some(e) } => write!(f, "stopped: {e}"),
        }
    }
}

/// Why a node stopped for good, or (`HostChanged`, `UnexpectedHost`) why it keeps refusing what
/// answers at its host's address; everything else is retried.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The identity or token store could not be used (for example a corrupt identity file).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The gateway URL cannot be connected to.
    #[error("invalid gateway URL {url:?}: {reason}")]
    InvalidGatewayUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The user rejected this device's pairing request.
    #[error(
        "pairing was rejected on the host{}: {message}",
        request_suffix(request_id)
    )]
    PairingRejected {
        /// The rejected request, when known.
        request_id: Option<String>,
        /// The host's message.
        message: String,
    },
    /// The host revoked this device; it must be paired again by hand.
    #[error("revoked: {message}")]
    Revoked {
        /// The host's message.
        message: String,
    },
    /// The host speaks a protocol version this node does not.
    #[error(
        "protocol mismatch: this node speaks version {node_protocol}, the host expects {}: {message}",
        range_text(*host_min, *host_max)
    )]
    ProtocolMismatch {
        /// The version this node speaks.
        node_protocol: u32,
        /// The oldest version the host accepts, when it said.
        host_min: Option<u32>,
        /// The newest version the host accepts, when it said.
        host_max: Option<u32>,
        /// The host's message.
        message: String,
    },
    /// A different host answers at an address where this node pinned another one.
    #[error(
        "the host at {url} is not the one this node paired with (pinned {pinned_host_id}, found \
         {found}); if the host was reinstalled, run `perch node forget-host {pinned_host_id}` \
         and pair again"
    )]
    HostChanged {
        /// Where.
        url: String,
        /// The host id pinned for that address.
        pinned_host_id: String,
        /// What answered instead (host id, or "a host without an identity proof").
        found: String,
    },
    /// The host did not match the identity the setup code or the user asked for.
    #[error("the host at {url} does not have the expected key (expected host {expected_host_id})")]
    UnexpectedHost {
        /// Where.
        url: String,
        /// The expected host id.
        expected_host_id: String,
    },
    /// The setup code's bootstrap token was refused (used, expired, unknown).
    #[error(
        "the setup code was refused: {0}; ask the host for a new one (`perch devices setup-code`)"
    )]
    SetupCodeRefused(String),
    /// The host closed the connection and said reconnecting cannot help.
    #[error("the host closed the connection for good: {0}")]
    HostClosed(ErrorShape),
}

impl NodeError {
    /// For a wrong host: the host this node trusts there, and what answered instead.
    fn wrong_host_ids(&self) -> (String, String) {
        match self {
            NodeError::HostChanged {
                pinned_host_id,
                found,
                ..
            } => (pinned_host_id.clone(), found.clone()),
            NodeError::UnexpectedHost {
                expected_host_id, ..
            } => (expected_host_id.clone(), "a host with another key".into()),
            other => (String::new(), other.to_string()),
        }
    }
}

fn request_suffix(id: &Option<String>) -> String {
    id.as_ref()
        .map(|id| format!(" (request {id})"))
        .unwrap_or_default()
}

fn range_text(min: Option<u32>, max: Option<u32>) -> String {
    match (min, max) {
        (Some(a), Some(b)) if a == b => format!("version {a}"),
        (Some(a), Some(b)) => format!("versions {a} to {b}"),
        (Some(a), None) => format!("version {a} or newer"),
        (None, Some(b)) => format!("version {b} or older"),
        (None, None) => "another version".into(),
    }
}

/// Accepts `ws://…`, `wss://…`, `http(s)://…` (mapped to ws/wss) or a bare `host:port`
/// (taken as `ws://`), and returns the canonical form used as the token-store key.
pub fn normalize_gateway_url(input: &str) -> Result<String, NodeError> {
    let bad = |reason: &str| NodeError::InvalidGatewayUrl {
        url: input.to_string(),
        reason: reason.to_string(),
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(bad("it is empty"));
    }
    let (scheme, rest) = match s.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => ("ws", rest),
            "wss" | "https" => ("wss", rest),
            _ => return Err(bad("the scheme must be ws:// or wss://")),
        },
        None => ("ws", s),
    };
    let rest = match rest.find('/') {
        // A bare trailing slash is the same endpoint; keep one key for it.
        Some(i) if i + 1 == rest.len() => &rest[..i],
        _ => rest,
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || authority.starts_with(':') {
        return Err(bad("it has no host"));
    }
    let url = format!("{scheme}://{rest}");
    tungstenite::client::IntoClientRequest::into_client_request(url.as_str())
        .map_err(|e| bad(&e.to_string()))?;
    Ok(url)
}

/// Over `wss://`, the key the challenge proved must be the one the certificate proved: a relay
/// holding some other certificate cannot pass a real host's challenge through.
fn check_same_key(host: &Option<(String, String)>, tls: Option<&str>) -> Result<(), End> {
    match (tls, host) {
        (None, _) => Ok(()),
        (Some(tls), Some((_, proved))) if tls.eq_ignore_ascii_case(proved) => Ok(()),
        (Some(tls), Some((host_id, _))) => Err(End::retry(format!(
            "the host's TLS certificate (key {}) and its signed challenge (host {host_id}) name different keys",
            perch_protocol::identity::host_id_for(tls)
        ))),
        (Some(_), None) => Err(End::retry(
            "the host's TLS certificate names a Perch host key but its challenge proves none",
        )),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

type Ws = perch_tls::HostSocket;
type Shutdown<'a> = Fuse<Pin<Box<dyn Future<Output = ()> + Send + 'a>>>;

/// A node runtime bound to one identity, one host and one set of capabilities.
pub struct Node {
    config: NodeConfig,
    identity: DeviceIdentity,
    device_id: DeviceId,
    capabilities: Arc<Capabilities>,
    tokens: TokenStore,
    pins: HostPins,
    state: watch::Sender<NodeState>,
    wake: Arc<tokio::sync::Notify>,
    lifecycle: Lifecycle,
    activity: Option<Arc<dyn ActivitySource>>,
    calls_tx: mpsc::Sender<HostCall>,
    /// Calls to the host, read by the serving loop of the connection that is up.
    calls_rx: tokio::sync::Mutex<mpsc::Receiver<HostCall>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("gateway_url", &self.config.gateway_url)
            .field("device_id", &self.device_id)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

/// Connects and serves until `shutdown` completes (then `Ok`) or the host refuses this node
/// for good (then the reason). Shorthand for [`Node::new`] + [`Node::run`].
pub async fn run(
    config: NodeConfig,
    capabilities: Capabilities,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), NodeError> {
    Node::new(config, capabilities)?.run(shutdown).await
}

/// How a connection ended.
enum End {
    /// `shutdown` completed; the socket was closed with 1000.
    Shutdown,
    /// Stop for good.
    Fatal(NodeError),
    /// Someone else answered at the host's address (`HostChanged` or `UnexpectedHost`): it
    /// was told nothing, and the node tries again later.
    WrongHost(NodeError),
    /// Reconnect.
    Retry(Retry),
}

struct Retry {
    reason: String,
    /// Reconnect at once (a stale device token was just dropped).
    immediate: bool,
    /// The host asked for at least this long.
    retry_after: Option<Duration>,
}

impl End {
    fn retry(reason: impl Into<String>) -> End {
        End::Retry(Retry {
            reason: reason.into(),
            immediate: false,
            retry_after: None,
        })
    }
}

/// State that outlives one connection.
struct Attempts {
    /// The last connection got somewhere (hello-ok, or a pairing wait): start backoff over.
    progressed: bool,
    /// One immediate retry after a device-token mismatch, re-armed by hello-ok.
    token_retry_available: bool,
}

/// How the host answered `connect` with an error, decided without I/O.
#[derive(Debug, Clone, PartialEq)]
enum Refusal {
    NotPaired {
        request_id: String,
        wait_for_resolution: bool,
        /// Whether the host shows the code derived on this connection (absent: older hosts
        /// always did).
        code_current: bool,
    },
    Rejected(String),
    Revoked(String),
    SetupCode(String),
    TokenMismatch,
    ProtocolMismatch {
        host_min: Option<u32>,
        host_max: Option<u32>,
        message: String,
    },
    Other {
        reason: String,
        retry_after: Option<Duration>,
    },
}

fn details_str<'a>(shape: &'a ErrorShape, key: &str) -> Option<&'a str> {
    shape.details.as_ref()?.get(key)?.as_str()
}

fn details_u32(shape: &ErrorShape, keys: &[&str]) -> Option<u32> {
    let d = shape.details.as_ref()?;
    keys.iter()
        .find_map(|k| d.get(*k)?.as_u64())
        .and_then(|v| u32::try_from(v).ok())
}

fn classify_refusal(shape: &ErrorShape) -> Refusal {
    let reason = shape.reason();
    match &shape.code {
        ErrorCode::NotPaired => Refusal::NotPaired {
            request_id: details_str(shape, "requestId")
                .unwrap_or("unknown")
                .to_string(),
            wait_for_resolution: shape
                .details
                .as_ref()
                .and_then(|d| d.get("waitForResolution"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            code_current: shape
                .details
                .as_ref()
                .and_then(|d| d.get("codeCurrent"))
                .and_then(Value::as_bool)
                .unwrap_or(true),
        },
        ErrorCode::PairingRejected => Refusal::Rejected(shape.message.clone()),
        ErrorCode::BootstrapTokenInvalid => Refusal::SetupCode(shape.message.clone()),
        ErrorCode::Unauthorized if reason == Some(Reason::DeviceRevoked) => {
            Refusal::Revoked(shape.message.clone())
        }
        ErrorCode::Unauthorized if reason == Some(Reason::DeviceTokenMismatch) => {
            Refusal::TokenMismatch
        }
        ErrorCode::ProtocolMismatch => Refusal::ProtocolMismatch {
            host_min: details_u32(
                shape,
                &[
                    "expectedMinProtocol",
                    "minProtocol",
                    "serverMinProtocol",
                    "expectedProtocol",
                ],
            ),
            host_max: details_u32(
                shape,
                &[
                    "expectedMaxProtocol",
                    "maxProtocol",
                    "serverMaxProtocol",
                    "expectedProtocol",
                ],
            ),
            message: shape.message.clone(),
        },
        _ => Refusal::Other {
            reason: shape.to_string(),
            retry_after: shape.retry_after_ms.map(Duration::from_millis),
        },
    }
}

/// The error to stop with when the host says `connection.closing {reconnect:false}`.
fn closing_error(closing: &ConnectionClosing, request_id: Option<&str>) -> NodeError {
    let shape = &closing.error;
    let reason = shape.reason();
    match shape.code {
        ErrorCode::PairingRejected => NodeError::PairingRejected {
            request_id: request_id
                .map(str::to_string)
                .or_else(|| details_str(shape, "requestId").map(str::to_string)),
            message: shape.message.clone(),
        },
        ErrorCode::Unauthorized if matches!(reason, None | Some(Reason::DeviceRevoked)) => {
            NodeError::Revoked {
                message: shape.message.clone(),
            }
        }
        _ => NodeError::HostClosed(shape.clone()),
    }
}

impl Node {
    /// Loads (or creates) the device identity and prepares the runtime; nothing connects yet,
    /// so callers can show the device id and subscribe to the state first.
    pub fn new(mut config: NodeConfig, capabilities: Capabilities) -> Result<Node, NodeError> {
        config.gateway_url = normalize_gateway_url(&config.gateway_url)?;
        ensure_data_dir(&config.data_dir)?;
        let vault = config.vault();
        let identity = IdentityStore::with_vault(vault.clone()).load_or_create()?;
        let device_id = identity.device_id();
        let tokens = TokenStore::with_vault(vault);
        let pins = HostPins::new(&config.data_dir);
        let (state, _) = watch::channel(NodeState::Idle);
        let (calls_tx, calls_rx) = mpsc::channel(HOST_CALL_QUEUE);
        let wake = Arc::new(tokio::sync::Notify::new());
        Ok(Node {
            config,
            identity,
            device_id,
            capabilities: Arc::new(capabilities),
            tokens,
            pins,
            state,
            lifecycle: Lifecycle::new(wake.clone()),
            wake,
            activity: None,
            calls_tx,
            calls_rx: tokio::sync::Mutex::new(calls_rx),
        })
    }

    /// Reports user idle time from `source` to the host (presence), on connect and whenever it
    /// changes.
    pub fn with_activity(mut self, source: Arc<dyn ActivitySource>) -> Self {
        self.activity = Some(source);
        self
    }

    /// A handle that ends a reconnect wait at once: call `notify_one()` when the network comes
    /// back or the host is seen again.
    pub fn waker(&self) -> Arc<tokio::sync::Notify> {
        self.wake.clone()
    }

    /// The app's handle for reporting foreground, background and network changes (phones).
    pub fn lifecycle(&self) -> Lifecycle {
        self.lifecycle.clone()
    }

    /// This device's id (the node id the host knows it by).
    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// The normalized gateway URL this node connects to.
    pub fn gateway_url(&self) -> &str {
        &self.config.gateway_url
    }

    /// A live view of the node's state. After `run` returns, the last state (`Stopped`) stays
    /// readable and `changed()` reports the channel closed.
    pub fn subscribe(&self) -> watch::Receiver<NodeState> {
        self.state.subscribe()
    }

    /// A handle for calling the host on this node's connection (its own access record);
    /// take it before `run`, use it from any task while the node is connected.
    pub fn host_calls(&self) -> HostCalls {
        HostCalls::new(self.calls_tx.clone(), self.state.subscribe())
    }

    fn set_state(&self, s: NodeState) {
        self.state.send_replace(s);
    }

    /// Connects and serves until `shutdown` completes (`Ok`, socket closed with 1000) or the
    /// host refuses this node for good (pairing rejected, revoked, protocol mismatch). Every
    /// other failure is retried with backoff.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), NodeError> {
        let boxed: Pin<Box<dyn Future<Output = ()> + Send + '_>> = Box::pin(shutdown);
        let mut shutdown: Shutdown<'_> = boxed.fuse();
        let mut backoff = Backoff::new(self.config.backoff_base, self.config.backoff_cap);
        let mut attempts = Attempts {
            progressed: false,
            token_retry_available: true,
        };
        tracing::info!(
            gateway = %self.config.gateway_url,
            device_id = %self.device_id,
            commands = ?self.capabilities.commands(),
            "node starting"
        );
        loop {
            self.set_state(NodeState::Connecting);
            attempts.progressed = false;
            let end = self.connection(&mut shutdown, &mut attempts).await;
            let retry = match end {
                End::Shutdown => {
                    tracing::info!("node stopped");
                    self.set_state(NodeState::Stopped { error: None });
                    return Ok(());
                }
                End::Fatal(e) => {
                    tracing::error!(error = %e, "node stopping for good");
                    self.set_state(NodeState::Stopped {
                        error: Some(e.to_string()),
                    });
                    return Err(e);
                }
                End::WrongHost(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64,
                        "the host could not prove its key; told it nothing, will try again");
                    let (trusted_host_id, found) = e.wrong_host_ids();
                    self.set_state(NodeState::WrongHost {
                        trusted_host_id,
                        found,
                        message: e.to_string(),
                        retry_in_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    });
                    if self.pause(delay, &mut shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
                End::Retry(r) => r,
            };
            if attempts.progressed {
                backoff.reset();
            }
            if retry.immediate {
                tracing::info!(reason = %retry.reason, "reconnecting now");
                continue;
            }
            let mut delay = backoff.next_delay();
            if let Some(after) = retry.retry_after {
                delay = delay.max(after.min(backoff.cap()));
            }
            tracing::warn!(
                reason = %retry.reason,
                retry_in_ms = delay.as_millis() as u64,
                "connection to host lost; will retry"
            );
            self.set_state(NodeState::Backoff {
                retry_in_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                last_error: retry.reason,
            });
            if self.pause(delay, &mut shutdown).await {
                return Ok(());
            }
        }
    }

    /// Waits `delay` before the next attempt, or less if the embedder says the network or the
    /// host is back; true when shutdown came first (the state is then `Stopped`).
    async fn pause(&self, delay: Duration, shutdown: &mut Shutdown<'_>) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => false,
            _ = self.wake.notified() => {
                tracing::info!("network or host is back; reconnecting now");
                false
            }
            _ = &mut *shutdown => {
                tracing::info!("node stopped");
                self.set_state(NodeState::Stopped { error: None });
                true
            }
        }
    }

    /// One connection from dial to close.
    async fn connection(&self, shutdown: &mut Shutdown<'_>, attempts: &mut Attempts) -> End {
        let url = self.config.gateway_url.as_str();
        tracing::debug!(gateway = url, "connecting");
        // A fresh secret per connection; its commitment goes out as the client nonce before the
        // host says anything, so the host's proof is bound to this connection and the pairing
        // code cannot be ground (perch_protocol::verification).
        let pairing_nonce = match verification::new_pairing_nonce() {
            Ok(n) => n,
            Err(e) => return End::retry(format!("cannot make a connection nonce: {e}")),
        };
        let client_nonce =
            verification::pairing_commitment(&self.identity.public_key_bytes(), &pairing_nonce);
        let pin = match self.tls_pin() {
            Ok(p) => p,
            Err(end) => return end,
        };
        let dial = tokio::time::timeout(
            self.config.handshake_timeout,
            perch_tls::dial_host(url, &client_nonce, pin.clone()),
        );
        let dialed = tokio::select! {
            r = dial => match r {
                Ok(Ok(d)) => d,
                Ok(Err(e)) => return self.dial_failed(url, &pin, e),
                Err(_) => return End::retry(format!("connecting to {url} timed out")),
            },
            _ = &mut *shutdown => return End::Shutdown,
        };
        let ws = dialed.socket;
        let mut conn = Conn {
            ws,
            closing: None,
            next_id: 0,
            timeout: self.config.handshake_timeout,
            client_nonce,
            pairing_nonce,
            tls_fingerprint: dialed.tls_fingerprint,
        };
        let hello = match self.handshake(&mut conn, shutdown, attempts).await {
            Ok(h) => h,
            Err(end) => return conn.finish(end).await,
        };
        attempts.progressed = true;
        attempts.token_retry_available = true;
        let end = self.serve(&mut conn, hello, shutdown).await;
        conn.finish(end).await
    }

    /// The host key a `wss://` certificate must prove: the key pinned for this URL, else the one
    /// the setup code or advert named, else any (first use; the challenge must then prove the
    /// same key, see [`check_same_key`]).
    fn tls_pin(&self) -> Result<HostPin, End> {
        let pinned = self
            .pins
            .by_url(&self.config.gateway_url)
            .map_err(|e| End::Fatal(NodeError::Store(e)))?;
        Ok(match (&self.config.expected_host, pinned) {
            (Some(expected), _) => HostPin::Fingerprint(expected.fingerprint.clone()),
            (None, Some((_, pin))) => HostPin::Fingerprint(pin.fingerprint),
            (None, None) => HostPin::FirstUse,
        })
    }

    /// What a failed dial means: a certificate from another key is the wrong host (for good,
    /// as with a challenge from another key); everything else is retried.
    fn dial_failed(&self, url: &str, pin: &HostPin, e: DialError) -> End {
        match e {
            DialError::HostKeyMismatch { found, .. } => {
                let found = perch_protocol::identity::host_id_for(&found);
                match &self.config.expected_host {
                    Some(expected) => End::WrongHost(NodeError::UnexpectedHost {
                        url: url.to_string(),
                        expected_host_id: expected.host_id.clone(),
                    }),
                    None => End::WrongHost(NodeError::HostChanged {
                        url: url.to_string(),
                        pinned_host_id: match pin {
                            HostPin::Fingerprint(fp) => perch_protocol::identity::host_id_for(fp),
                            HostPin::FirstUse => String::new(),
                        },
                        found,
                    }),
                }
            }
            DialError::Ws(tungstenite::Error::Url(e)) => End::Fatal(NodeError::InvalidGatewayUrl {
                url: url.to_string(),
                reason: e.to_string(),
            }),
            e => End::retry(format!("cannot connect to {url}: {e}")),
        }
    }

    /// Checks who answered before anything secret is sent: the host's proof must verify, match
    /// what the setup code or the user expects, and match any pin for this address. Returns the
    /// host id and fingerprint when the host proved one.
    fn check_host(
        &self,
        challenge: &Challenge,
        client_nonce: &str,
    ) -> Result<Option<(String, String)>, End> {
        let url = self.config.gateway_url.as_str();
        let pinned_here = self
            .pins
            .by_url(url)
            .map_err(|e| End::Fatal(NodeError::Store(e)))?;
        let Some(proof) = &challenge.host else {
            // A host without a proof (an OpenClaw gateway) is fine unless we know better.
            if let Some(expected) = &self.config.expected_host {
                return Err(End::WrongHost(NodeError::UnexpectedHost {
                    url: url.to_string(),
                    expected_host_id: expected.host_id.clone(),
                }));
            }
            if let Some((pinned_host_id, _)) = pinned_here {
                return Err(End::WrongHost(NodeError::HostChanged {
                    url: url.to_string(),
                    pinned_host_id,
                    found: "a host without an identity proof".into(),
                }));
            }
            return Ok(None);
        };
        let fingerprint = proof
            .verify_for(&challenge.nonce, challenge.ts, client_nonce)
            .map_err(|e| End::retry(format!("the host's identity proof was refused: {e}")))?;
        if let Some(expected) = &self.config.expected_host
            && expected.fingerprint != fingerprint
        {
            return Err(End::WrongHost(NodeError::UnexpectedHost {
                url: url.to_string(),
                expected_host_id: expected.host_id.clone(),
            }));
        }
        if let Some((pinned_host_id, pin)) = pinned_here
            && pin.fingerprint != fingerprint
            && self.config.expected_host.is_none()
        {
            return Err(End::WrongHost(NodeError::HostChanged {
                url: url.to_string(),
                pinned_host_id,
                found: proof.host_id.clone(),
            }));
        }
        Ok(Some((proof.host_id.clone(), fingerprint)))
    }

    /// The pairing verification code from the key the host proved in this challenge, this
    /// device's key and this connection's nonces; `None` without a proof.
    fn verification_code(&self, challenge: &Challenge, pairing_nonce: &str) -> Option<String> {
        let proof = challenge.host.as_ref()?;
        let host_key = perch_protocol::identity::decode_public_key(&proof.public_key).ok()?;
        Some(verification::verification_code_raw(
            host_key.as_bytes(),
            &self.identity.public_key_bytes(),
            pairing_nonce,
            &challenge.nonce,
        ))
    }

    fn stored_token(&self, key: &str) -> Option<String> {
        match self.tokens.get(key, &self.device_id) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the device token store; connecting without a token");
                None
            }
        }
    }

    /// The signed `connect` params answering `nonce`.
    fn connect_params(
        &self,
        nonce: &str,
        token: Option<&str>,
        bootstrap: Option<&str>,
    ) -> ConnectParams {
        let platform = self
            .config
            .platform
            .as_deref()
            .unwrap_or(std::env::consts::OS);
        let scopes: Vec<String> = Vec::new();
        let version = env!("CARGO_PKG_VERSION");
        let mut params = ConnectParams {
            min_protocol: PROTOCOL_VERSION,
            max_protocol: PROTOCOL_VERSION,
            client: ClientInfo {
                id: CLIENT_ID.into(),
                display_name: Some(self.config.display_name.clone()),
                version: version.into(),
                platform: platform.into(),
                device_family: self.config.device_family.clone(),
                model_identifier: self.config.model_identifier.clone(),
                mode: if self.config.reader_only {
                    perch_protocol::handshake::client_mode::CLI.into()
                } else {
                    NODE_MODE.into()
                },
                instance_id: self.config.instance_id.clone(),
            },
            role: Role::Node,
            scopes,
            caps: self.capabilities.caps(),
            commands: self.capabilities.commands(),
            permissions: self.capabilities.permissions(),
            device: None,
            auth: match (token, bootstrap) {
                (None, None) => None,
                (token, bootstrap) => Some(ConnectAuth {
                    device_token: token.map(str::to_string),
                    bootstrap_token: bootstrap.map(str::to_string),
                    ..Default::default()
                }),
            },
            locale: self.config.locale.clone(),
            user_agent: Some(format!("{CLIENT_ID}/{version}")),
            extra: Default::default(),
        };
        params.sign(&self.identity, now_ms(), nonce);
        params
    }

    /// Challenge → connect → hello-ok, waiting on the same socket through pairing approval.
    async fn handshake(
        &self,
        conn: &mut Conn,
        shutdown: &mut Shutdown<'_>,
        attempts: &mut Attempts,
    ) -> Result<HelloOk, End> {
        let mut pending_request: Option<String> = None;
        loop {
            let challenge = conn
                .wait_challenge(shutdown, pending_request.as_deref())
                .await?;
            let host = self.check_host(&challenge, &conn.client_nonce)?;
            check_same_key(&host, conn.tls_fingerprint.as_deref())?;
            let token_key = match &host {
                Some((host_id, _)) => format!("host:{host_id}"),
                None => self.config.gateway_url.clone(),
            };
            let token = self.stored_token(&token_key);
            // Always offered while configured: a host that knows this device ignores it, and one
            // that forgot the device (removed) pairs it again with it.
            let bootstrap = self.config.bootstrap_token.as_ref().map(|b| b.0.as_str());
            let mut params = self.connect_params(&challenge.nonce, token.as_deref(), bootstrap);
            params.reveal_pairing_nonce(&conn.pairing_nonce);
            let params = serde_json::to_value(&params)
                .map_err(|e| End::retry(format!("cannot encode connect params: {e}")))?;
            let id = conn.request_id("connect");
            conn.send(&Frame::req(id.clone(), CONNECT_METHOD, Some(params)))
                .await?;
            let response = conn
                .wait_response(&id, shutdown, pending_request.as_deref())
                .await?;
            let shape = match response.result {
                Ok(payload) => {
                    let hello: HelloOk = serde_json::from_value(payload.unwrap_or(Value::Null))
                        .map_err(|e| End::retry(format!("host sent a malformed hello-ok: {e}")))?;
                    // A host that proved its key must also have signed this admission: nothing
                    // from the connection is answered before that holds.
                    if let Some((host_id, _)) = &host {
                        HelloBinding {
                            host_id,
                            nonce: &challenge.nonce,
                            client_nonce: &conn.client_nonce,
                            role: Role::Node,
                            device_id: self.device_id.as_str(),
                            conn_id: &hello.server.conn_id,
                        }
                        .verify(&challenge, &hello)
                        .map_err(|e| End::retry(format!("the host's hello-ok was refused: {e}")))?;
                    }
                    if let Some(t) = hello.auth.device_token.as_deref() {
                        match self.tokens.set(&token_key, &self.device_id, t) {
                            Ok(()) => tracing::debug!("stored the device token issued by the host"),
                            Err(e) => tracing::warn!(error = %e, "cannot store the device token"),
                        }
                    }
                    if let Some((host_id, fingerprint)) = &host {
                        match self
                            .pins
                            .pin(host_id, fingerprint, &self.config.gateway_url)
                        {
                            Ok(true) => {}
                            Ok(false) => tracing::warn!(host_id, "pinned key differs; pin kept"),
                            Err(e) => tracing::warn!(error = %e, "cannot pin the host key"),
                        }
                    }
                    return Ok(hello);
                }
                Err(shape) => shape,
            };
            match classify_refusal(&shape) {
                Refusal::NotPaired {
                    request_id,
                    wait_for_resolution,
                    code_current,
                } => {
                    let verification_code = if code_current {
                        self.verification_code(&challenge, &conn.pairing_nonce)
                    } else {
                        tracing::warn!(
                            request_id = %request_id,
                            "the host keeps showing the code from an earlier connection; reject \
                             this request on the host and pair again to get a code to compare"
                        );
                        None
                    };
                    tracing::info!(
                        request_id = %request_id,
                        device_id = %self.device_id,
                        verification_code = verification_code.as_deref().unwrap_or("none"),
                        "this device is not paired yet; approve it on the host with \
                         `perch devices approve {request_id}`"
                    );
                    self.set_state(NodeState::AwaitingApproval {
                        request_id: request_id.clone(),
                        verification_code,
                    });
                    // Waiting for a human is progress, not a failure.
                    attempts.progressed = true;
                    if !wait_for_resolution {
                        return Err(End::retry(format!(
                            "pairing request {request_id} is pending approval"
                        )));
                    }
                    pending_request = Some(request_id.clone());
                    conn.wait_approval(&request_id, &self.device_id, shutdown)
                        .await?;
                    tracing::info!(request_id = %request_id, "pairing approved; connecting again");
                    self.set_state(NodeState::Connecting);
                }
                Refusal::Rejected(message) => {
                    return Err(End::Fatal(NodeError::PairingRejected {
                        request_id: pending_request,
                        message,
                    }));
                }
                Refusal::Revoked(message) => {
                    return Err(End::Fatal(NodeError::Revoked { message }));
                }
                Refusal::SetupCode(message) => {
                    return Err(End::Fatal(NodeError::SetupCodeRefused(message)));
                }
                Refusal::TokenMismatch => {
                    match self.tokens.remove(&token_key) {
                        Ok(_) => tracing::warn!(
                            "the host no longer accepts this device's token; dropped it"
                        ),
                        Err(e) => tracing::warn!(error = %e, "cannot drop the stale device token"),
                    }
                    let immediate = attempts.token_retry_available;
                    attempts.token_retry_available = false;
                    return Err(End::Retry(Retry {
                        reason: "device token mismatch".into(),
                        immediate,
                        retry_after: None,
                    }));
                }
                Refusal::ProtocolMismatch {
                    host_min,
                    host_max,
                    message,
                } => {
                    return Err(End::Fatal(NodeError::ProtocolMismatch {
                        node_protocol: PROTOCOL_VERSION,
                        host_min,
                        host_max,
                        message,
                    }));
                }
                Refusal::Other {
                    reason,
                    retry_after,
                } => {
                    return Err(End::Retry(Retry {
                        reason: format!("host refused connect: {reason}"),
                        immediate: false,
                        retry_after,
                    }));
                }
            }
        }
    }

    /// Serves invokes until the connection ends.
    async fn serve(&self, conn: &mut Conn, hello: HelloOk, shutdown: &mut Shutdown<'_>) -> End {
        let tick_ms = match hello.policy.tick_interval_ms {
            0 => DEFAULT_TICK_INTERVAL_MS,
            t => t,
        };
        let silence_limit = Duration::from_millis(tick_ms.saturating_mul(2));
        let max_payload = match usize::try_from(hello.policy.max_payload) {
            Ok(0) => DEFAULT_MAX_PAYLOAD,
            Ok(n) => n,
            Err(_) => usize::MAX,
        };
        tracing::info!(
            host = %hello.server.name,
            conn_id = %hello.server.conn_id,
            protocol = hello.protocol,
            "connected to host"
        );
        self.set_state(NodeState::Connected {
            host_name: hello.server.name.clone(),
            conn_id: hello.server.conn_id.clone(),
        });

        // Presence: say we are here, then the user's idle time where we know it.
        let mut reported_idle = self.activity.as_ref().and_then(|a| a.idle_seconds());
        let mut reported_at = Instant::now();
        if let Err(end) = self.send_presence(conn, NODE_PRESENCE_ALIVE, None).await {
            return end;
        }
        if reported_idle.is_some()
            && let Err(end) = self
                .send_presence(conn, NODE_PRESENCE_ACTIVITY, reported_idle)
                .await
        {
            return end;
        }
        let mut activity_check = tokio::time::interval(ACTIVITY_CHECK);
        activity_check.reset();

        let (results_tx, mut results_rx) = mpsc::unbounded_channel::<InvokeDone>();
        let mut running = Running::default();
        // Calls to the host: only this loop sends them and reads their answers; dropping the
        // table when the connection ends tells every waiting caller it is gone.
        let mut calls = self.calls_rx.lock().await;
        let mut waiting: HashMap<String, oneshot::Sender<Result<Value, ErrorShape>>> =
            HashMap::new();
        let silence = tokio::time::sleep(silence_limit);
        tokio::pin!(silence);

        loop {
            tokio::select! {
                _ = &mut *shutdown => return End::Shutdown,
                _ = &mut silence => {
                    return End::retry(format!("host silent for {} ms", silence_limit.as_millis()));
                }
                _ = activity_check.tick(), if self.activity.is_some() => {
                    let idle = self.activity.as_ref().and_then(|a| a.idle_seconds());
                    // Report fresh input at once, and otherwise keep the host's view warm.
                    let touched = matches!((idle, reported_idle), (Some(now), Some(before))
                        if now < before + reported_at.elapsed().as_secs().saturating_sub(1));
                    let stale = reported_at.elapsed() >= ACTIVITY_KEEPALIVE;
                    if idle.is_some() && (touched || stale || reported_idle.is_none()) {
                        if let Err(end) = self.send_presence(conn, NODE_PRESENCE_ACTIVITY, idle).await {
                            return end;
                        }
                        reported_idle = idle;
                        reported_at = Instant::now();
                    }
                }
                Some(call) = calls.recv() => {
                    if call.reply.is_closed() {
                        continue;
                    }
                    let id = conn.request_id("call");
                    let frame = Frame::req(id.clone(), call.method, Some(call.params));
                    if let Err(end) = conn.send(&frame).await {
                        return end;
                    }
                    // Callers that gave up (their deadline passed) are forgotten here, so a host
                    // that never answers cannot grow the table.
                    waiting.retain(|_, reply| !reply.is_closed());
                    waiting.insert(id, call.reply);
                }
                Some(done) = results_rx.recv() => {
                    if running.0.remove(&done.invoke_id).is_none() {
                        // Cancelled while finishing: the host no longer waits for it.
                        continue;
                    }
                    let frame = conn.invoke_result(
                        &done.invoke_id,
                        &self.device_id,
                        done.outcome,
                        max_payload,
                    );
                    if let Err(end) = conn.send(&frame).await {
                        return end;
                    }
                }
                msg = conn.ws.next() => {
                    silence.as_mut().reset(Instant::now() + silence_limit);
                    let frame = match conn.inbound(msg) {
                        Ok(Some(f)) => f,
                        Ok(None) => continue,
                        Err(end) => return end,
                    };
                    match frame {
                        Frame::Event(ev) => {
                            if let Err(end) = self
                                .on_serving_event(conn, ev, &results_tx, &mut running, max_payload)
                                .await
                            {
                                return end;
                            }
                        }
                        Frame::Res(res) => {
                            if let Some(reply) = waiting.remove(res.id.as_str()) {
                                let _ = reply.send(res.result.map(|v| v.unwrap_or(Value::Null)));
                            } else if let Err(e) = res.result {
                                tracing::debug!(id = %res.id, error = %e, "host refused a result");
                            }
                        }
                        Frame::Req(req) => {
                            // The host calls nodes through events, never requests.
                            let err = ErrorShape::new(
                                ErrorCode::UnknownMethod,
                                format!("a node serves no method {}", req.method),
                            );
                            if let Err(end) = conn.send(&Frame::Res(Response::err(req.id, err))).await {
                                return end;
                            }
                        }
                        Frame::Cancel(_) => {}
                    }
                }
            }
        }
    }

    /// Sends a presence beacon (`node.event`); the host's answer is only logged. Each event
    /// carries only the fields OpenClaw's schema gives it: `node.presence.alive` the trigger
    /// and send time, `node.presence.activity` the idle time.
    async fn send_presence(
        &self,
        conn: &mut Conn,
        event: &str,
        idle_seconds: Option<u64>,
    ) -> Result<(), End> {
        let payload = if event == NODE_PRESENCE_ALIVE {
            AlivePayload {
                trigger: Some("connect".to_string()),
                idle_seconds: None,
                sent_at_ms: Some(now_ms()),
            }
        } else {
            AlivePayload {
                trigger: None,
                idle_seconds,
                sent_at_ms: None,
            }
        };
        let params = NodeEventParams {
            event: event.to_string(),
            payload: serde_json::to_value(payload).ok(),
            payload_json: None,
        };
        let id = conn.request_id("presence");
        conn.send(&Frame::req(
            id,
            NODE_EVENT,
            serde_json::to_value(params).ok(),
        ))
        .await
    }

    async fn on_serving_event(
        &self,
        conn: &mut Conn,
        ev: EventFrame,
        results: &mpsc::UnboundedSender<InvokeDone>,
        running: &mut Running,
        max_payload: usize,
    ) -> Result<(), End> {
        match ev.event.as_str() {
            events::TICK => Ok(()),
            events::NODE_INVOKE_REQUEST => {
                let payload = ev.payload.unwrap_or(Value::Null);
                let req: InvokeRequest = match serde_json::from_value(payload.clone()) {
                    Ok(r) => r,
                    Err(e) => {
                        let Some(id) = payload.get("id").and_then(Value::as_str) else {
                            tracing::warn!(error = %e, "ignoring an invoke request without an id");
                            return Ok(());
                        };
                        let err =
                            CommandError::invalid_request(format!("malformed invoke request: {e}"));
                        let frame = conn.invoke_result(id, &self.device_id, Err(err), max_payload);
                        return conn.send(&frame).await;
                    }
                };
                self.start_invoke(conn, req, results, running, max_payload)
                    .await
            }
            events::NODE_INVOKE_CANCEL => {
                match ev
                    .payload
                    .and_then(|p| serde_json::from_value::<InvokeCancel>(p).ok())
                {
                    Some(c) => {
                        if let Some(task) = running.0.remove(&c.invoke_id) {
                            task.abort();
                            tracing::debug!(invoke_id = %c.invoke_id, "invoke cancelled by the host");
                        }
                    }
                    None => tracing::debug!("ignoring a malformed invoke cancel"),
                }
                Ok(())
            }
            _ => {
                if let Some(ev) = conn.on_common_event(ev, None)? {
                    tracing::debug!(event = %ev.event, "ignoring event");
                }
                Ok(())
            }
        }
    }

    async fn start_invoke(
        &self,
        conn: &mut Conn,
        req: InvokeRequest,
        results: &mpsc::UnboundedSender<InvokeDone>,
        running: &mut Running,
        max_payload: usize,
    ) -> Result<(), End> {
        if req.node_id != self.device_id.as_str() {
            tracing::warn!(node_id = %req.node_id, "invoke addressed to another node id; answering as this node");
        }
        if running.0.contains_key(&req.id) {
            tracing::debug!(invoke_id = %req.id, "duplicate invoke id while running; ignored");
            return Ok(());
        }
        let params = match req.params_json.as_deref().map(str::trim) {
            None | Some("") => Value::Null,
            Some(text) => match serde_json::from_str(text) {
                Ok(v) => v,
                Err(e) => {
                    let err =
                        CommandError::invalid_request(format!("paramsJSON is not valid JSON: {e}"));
                    let frame = conn.invoke_result(&req.id, &self.device_id, Err(err), max_payload);
                    return conn.send(&frame).await;
                }
            },
        };
        let timeout_ms = match req.timeout_ms {
            0 => DEFAULT_INVOKE_TIMEOUT_MS,
            t => t.min(MAX_INVOKE_TIMEOUT_MS),
        };
        tracing::debug!(invoke_id = %req.id, command = %req.command, timeout_ms, "invoke");
        let command = req.command.clone();
        let needs_screen = self.capabilities.needs_foreground(&command);
        if let Err(err) = lifecycle::gate(self.lifecycle.phase(), &command, needs_screen) {
            tracing::info!(invoke_id = %req.id, %command, "refused: the app is in the background");
            let frame = conn.invoke_result(&req.id, &self.device_id, Err(err), max_payload);
            return conn.send(&frame).await;
        }
        // A handler that panics while building its future must not take the loop down.
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| {
            self.capabilities.invoke(&command, params)
        }));
        let invoke_id = req.id.clone();
        let tx = results.clone();
        let task = tokio::spawn(async move {
            let outcome = match started {
                Err(_) => Err(CommandError::internal(format!(
                    "the {command} handler panicked"
                ))),
                Ok(fut) => match tokio::time::timeout(
                    Duration::from_millis(timeout_ms),
                    AssertUnwindSafe(fut).catch_unwind(),
                )
                .await
                {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(_)) => Err(CommandError::internal(format!(
                        "the {command} handler panicked"
                    ))),
                    Err(_) => Err(CommandError::new(
                        ErrorCode::Timeout,
                        format!("{command} did not finish within {timeout_ms} ms"),
                    )),
                },
            };
            if let Err(e) = &outcome {
                tracing::debug!(command = %command, error = %e, "invoke failed");
            }
            let _ = tx.send(InvokeDone { invoke_id, outcome });
        });
        running.0.insert(req.id, task.abort_handle());
        Ok(())
    }
}

struct InvokeDone {
    invoke_id: String,
    outcome: Result<Value, CommandError>,
}

/// Invokes in flight; dropping it aborts them (their answers could not be delivered anyway).
#[derive(Default)]
struct Running(HashMap<String, AbortHandle>);

impl Drop for Running {
    fn drop(&mut self) {
        for task in self.0.values() {
            task.abort();
        }
    }
}

/// One open socket and what the host said on it.
struct Conn {
    ws: Ws,
    /// The last `connection.closing` the host sent.
    closing: Option<ConnectionClosing>,
    next_id: u64,
    timeout: Duration,
    /// The nonce sent in the upgrade URL: the commitment to `pairing_nonce`.
    client_nonce: String,
    /// The secret revealed in `connect`, behind the commitment.
    pairing_nonce: String,
    /// Over `wss://`, the host key the TLS certificate proved; the challenge must prove the same.
    tls_fingerprint: Option<String>,
}

impl Conn {
    fn request_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    async fn send(&mut self, frame: &Frame) -> Result<(), End> {
        self.ws
            .send(Message::text(frame.to_text()))
            .await
            .map_err(|e| End::retry(format!("cannot send to host: {e}")))
    }

    /// The reason a closed connection gives.
    fn closed_reason(&self, frame: Option<&CloseFrame>) -> String {
        if let Some(c) = &self.closing {
            return format!("host closed the connection: {}", c.error);
        }
        match frame {
            Some(f) if !f.reason.is_empty() => {
                format!(
                    "host closed the connection ({}): {}",
                    u16::from(f.code),
                    f.reason
                )
            }
            Some(f) => format!("host closed the connection ({})", u16::from(f.code)),
            None => "host closed the connection".into(),
        }
    }

    /// Turns one socket read into a frame; `Ok(None)` for messages that carry none.
    fn inbound(
        &mut self,
        msg: Option<Result<Message, tungstenite::Error>>,
    ) -> Result<Option<Frame>, End> {
        match msg {
            None => Err(End::retry(self.closed_reason(None))),
            Some(Err(e)) => Err(End::retry(format!("connection error: {e}"))),
            Some(Ok(Message::Text(text))) => match Frame::parse(text.as_str()) {
                Ok(f) => Ok(Some(f)),
                Err(e) => {
                    tracing::debug!(error = %e, "ignoring an unreadable frame from the host");
                    Ok(None)
                }
            },
            Some(Ok(Message::Close(frame))) => Err(End::retry(self.closed_reason(frame.as_ref()))),
            // Pings are answered by tungstenite as we keep reading; they still prove liveness.
            Some(Ok(_)) => Ok(None),
        }
    }

    /// Reads the next frame, giving up at `deadline` (None: wait as long as it takes).
    async fn next_frame(
        &mut self,
        shutdown: &mut Shutdown<'_>,
        deadline: Option<Instant>,
        waiting_for: &str,
    ) -> Result<Frame, End> {
        loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let msg = tokio::select! {
                _ = &mut *shutdown => return Err(End::Shutdown),
                _ = sleep => return Err(End::retry(format!("timed out waiting for {waiting_for}"))),
                msg = self.ws.next() => msg,
            };
            if let Some(f) = self.inbound(msg)? {
                return Ok(f);
            }
        }
    }

    /// Handles events that mean the same in every phase; returns the ones it did not consume.
    fn on_common_event(
        &mut self,
        ev: EventFrame,
        pending_request: Option<&str>,
    ) -> Result<Option<EventFrame>, End> {
        match ev.event.as_str() {
            events::TICK => Ok(None),
            events::CONNECTION_CLOSING => {
                let closing = ev
                    .payload
                    .and_then(|p| serde_json::from_value::<ConnectionClosing>(p).ok());
                let Some(closing) = closing else {
                    tracing::debug!("ignoring a malformed connection.closing");
                    return Ok(None);
                };
                tracing::info!(error = %closing.error, reconnect = closing.reconnect, "host is closing the connection");
                if !closing.reconnect {
                    return Err(End::Fatal(closing_error(&closing, pending_request)));
                }
                self.closing = Some(closing);
                Ok(None)
            }
            events::SHUTDOWN => {
                let reason = ev
                    .payload
                    .as_ref()
                    .and_then(|p| p.get("reason"))
                    .and_then(Value::as_str)
                    .unwrap_or("unspecified")
                    .to_string();
                tracing::info!(reason = %reason, "host is shutting down; will reconnect");
                self.closing.get_or_insert(ConnectionClosing {
                    error: ErrorShape::new(
                        ErrorCode::Unavailable,
                        format!("host shutting down: {reason}"),
                    ),
                    reconnect: true,
                });
                Ok(None)
            }
            _ => Ok(Some(ev)),
        }
    }

    async fn wait_challenge(
        &mut self,
        shutdown: &mut Shutdown<'_>,
        pending_request: Option<&str>,
    ) -> Result<Challenge, End> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let frame = self
                .next_frame(shutdown, Some(deadline), "connect.challenge")
                .await?;
            let Frame::Event(ev) = frame else { continue };
            let Some(ev) = self.on_common_event(ev, pending_request)? else {
                continue;
            };
            if ev.event == CHALLENGE_EVENT {
                match ev.payload.map(serde_json::from_value::<Challenge>) {
                    Some(Ok(c)) => return Ok(c),
                    _ => return Err(End::retry("host sent a malformed connect.challenge")),
                }
            }
            tracing::debug!(event = %ev.event, "ignoring event before the handshake");
        }
    }

    async fn wait_response(
        &mut self,
        id: &str,
        shutdown: &mut Shutdown<'_>,
        pending_request: Option<&str>,
    ) -> Result<Response, End> {
        let deadline = Instant::now() + self.timeout;
        loop {
            match self
                .next_frame(shutdown, Some(deadline), "the connect answer")
                .await?
            {
                Frame::Res(r) if r.id.as_str() == id => return Ok(r),
                Frame::Event(ev) => {
                    if let Some(ev) = self.on_common_event(ev, pending_request)? {
                        tracing::debug!(event = %ev.event, "ignoring event during the handshake");
                    }
                }
                _ => {}
            }
        }
    }

    /// Waits, as long as it takes, for the user's decision on `request_id`.
    async fn wait_approval(
        &mut self,
        request_id: &str,
        device_id: &DeviceId,
        shutdown: &mut Shutdown<'_>,
    ) -> Result<(), End> {
        loop {
            let frame = self.next_frame(shutdown, None, "pairing approval").await?;
            let Frame::Event(ev) = frame else { continue };
            let Some(ev) = self.on_common_event(ev, Some(request_id))? else {
                continue;
            };
            if ev.event != events::DEVICE_PAIR_RESOLVED {
                tracing::debug!(event = %ev.event, "ignoring event while awaiting approval");
                continue;
            }
            let Some(resolved) = ev
                .payload
                .and_then(|p| serde_json::from_value::<PairResolved>(p).ok())
            else {
                tracing::debug!("ignoring a malformed device.pair.resolved");
                continue;
            };
            if resolved.request_id != request_id && resolved.device_id != device_id.as_str() {
                continue;
            }
            return match resolved.decision {
                PairResolution::Approved => Ok(()),
                PairResolution::Rejected => Err(End::Fatal(NodeError::PairingRejected {
                    request_id: Some(resolved.request_id),
                    message: "the user rejected the pairing request".into(),
                })),
                // Nobody decided in time: ask again on a fresh connection.
                PairResolution::Expired => Err(End::Retry(Retry {
                    reason: "the pairing request expired before anyone decided".into(),
                    immediate: false,
                    retry_after: None,
                })),
            };
        }
    }

    /// The `node.invoke.result` request for one outcome, within the host's payload limit.
    fn invoke_result(
        &mut self,
        invoke_id: &str,
        node_id: &DeviceId,
        outcome: Result<Value, CommandError>,
        max_payload: usize,
    ) -> Frame {
        let req_id = self.request_id("invoke-result");
        let build = |outcome: Result<Value, CommandError>| {
            let (ok, payload, error) = match outcome {
                Ok(v) => (true, Some(v), None),
                Err(e) => (false, None, Some(e.to_error_shape())),
            };
            let params = InvokeResultParams {
                id: invoke_id.to_string(),
                node_id: node_id.to_string(),
                ok,
                payload,
                payload_json: None,
                error,
            };
            let params = serde_json::to_value(params).unwrap_or(Value::Null);
            Frame::req(req_id.clone(), NODE_INVOKE_RESULT, Some(params))
        };
        let frame = build(outcome);
        let size = frame.to_text().len();
        if size <= max_payload {
            return frame;
        }
        tracing::warn!(
            invoke_id,
            size,
            max_payload,
            "invoke result too large for the host"
        );
        build(Err(CommandError::new(
            ErrorCode::PayloadTooLarge,
            format!("the result is {size} bytes; the host accepts at most {max_payload}"),
        )))
    }

    /// Ends the connection with a close frame. On shutdown it waits for the host's close reply
    /// (a clean close handshake); otherwise only briefly, since the host is gone or closing.
    async fn finish(mut self, end: End) -> End {
        let (code, reason, grace) = match &end {
            End::Shutdown => (close_code::NORMAL, "node stopping", CLOSE_GRACE),
            End::Fatal(_) => (close_code::NORMAL, "node giving up", SHORT_CLOSE_GRACE),
            End::WrongHost(_) => (close_code::NORMAL, "not my host", SHORT_CLOSE_GRACE),
            End::Retry(r) if r.reason.starts_with("host silent") => {
                (close_code::TICK_TIMEOUT, "tick timeout", SHORT_CLOSE_GRACE)
            }
            End::Retry(_) => (close_code::NORMAL, "reconnecting", SHORT_CLOSE_GRACE),
        };
        let close = async {
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            };
            if self.ws.close(Some(frame)).await.is_ok() {
                // The host's close reply completes the handshake; later frames are moot.
                while let Some(Ok(msg)) = self.ws.next().await {
                    if msg.is_close() {
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(grace, close).await;
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gateway_urls_normalize() {
        let ok = |s: &str| normalize_gateway_url(s).unwrap();
        assert_eq!(ok("ws://127.0.0.1:18789"), "ws://127.0.0.1:18789");
        assert_eq!(ok(" ws://127.0.0.1:18789/ "), "ws://127.0.0.1:18789");
        assert_eq!(ok("127.0.0.1:18789"), "ws://127.0.0.1:18789");
        assert_eq!(ok("http://host:1/ws"), "ws://host:1/ws");
        assert_eq!(ok("HTTPS://host"), "wss://host");
        assert_eq!(ok("wss://h.example:443/gw/"), "wss://h.example:443/gw/");
        for bad in ["", "  ", "ftp://x", "ws://", "ws://:80", "ws:// bad host"] {
            assert!(
                matches!(
                    normalize_gateway_url(bad),
                    Err(NodeError::InvalidGatewayUrl { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refusals_are_classified() {
        let e = |code: ErrorCode, details: Value| ErrorShape::new(code, "m").with_details(details);
        assert_eq!(
            classify_refusal(&e(
                ErrorCode::NotPaired,
                json!({"requestId": "r1", "deviceId": "d", "waitForResolution": true})
            )),
            Refusal::NotPaired {
                request_id: "r1".into(),
                wait_for_resolution: true,
                code_current: true,
            }
        );
        assert_eq!(
            classify_refusal(&e(
                ErrorCode::NotPaired,
                json!({"requestId": "r1", "waitForResolution": true, "codeCurrent": false})
            )),
            Refusal::NotPaired {
                request_id: "r1".into(),
                wait_for_resolution: true,
                code_current: false,
            }
        );
        assert_eq!(
            classify_refusal(&e(
                ErrorCode::Unauthorized,
                json!({"reason": "device-revoked"})
            )),
            Refusal::Revoked("m".into())
        );
        assert_eq!(
            classify_refusal(&e(
                ErrorCode::Unauthorized,
                json!({"reason": "device-token-mismatch"})
            )),
            Refusal::TokenMismatch
        );
        assert!(matches!(
            classify_refusal(&e(ErrorCode::Unauthorized, json!({"reason": "other"}))),
            Refusal::Other { .. }
        ));
        assert_eq!(
            classify_refusal(&e(
                ErrorCode::ProtocolMismatch,
                json!({"clientMinProtocol": 9, "clientMaxProtocol": 9, "expectedProtocol": 4})
            )),
            Refusal::ProtocolMismatch {
                host_min: Some(4),
                host_max: Some(4),
                message: "m".into()
            }
        );
        assert_eq!(
            classify_refusal(&e(
                ErrorCode::ProtocolMismatch,
                json!({"minProtocol": 3, "maxProtocol": 5})
            )),
            Refusal::ProtocolMismatch {
                host_min: Some(3),
                host_max: Some(5),
                message: "m".into()
            }
        );
        let unavailable =
            ErrorShape::new(ErrorCode::Unavailable, "starting").with_retry_after(1500);
        assert_eq!(
            classify_refusal(&unavailable),
            Refusal::Other {
                reason: "UNAVAILABLE: starting".into(),
                retry_after: Some(Duration::from_millis(1500))
            }
        );
    }

    #[test]
    fn closing_errors_map_to_stop_reasons() {
        let closing = |code: ErrorCode, details: Option<Value>| ConnectionClosing {
            error: ErrorShape {
                details,
                ..ErrorShape::new(code, "bye")
            },
            reconnect: false,
        };
        assert!(matches!(
            closing_error(&closing(ErrorCode::PairingRejected, None), Some("r")),
            NodeError::PairingRejected { request_id: Some(r), .. } if r == "r"
        ));
        assert!(matches!(
            closing_error(&closing(ErrorCode::Unauthorized, None), None),
            NodeError::Revoked { .. }
        ));
        assert!(matches!(
            closing_error(
                &closing(
                    ErrorCode::Unauthorized,
                    Some(json!({"reason": "device-revoked"}))
                ),
                None
            ),
            NodeError::Revoked { .. }
        ));
        assert!(matches!(
            closing_error(&closing(ErrorCode::Internal, None), None),
            NodeError::HostClosed(_)
        ));
    }

    #[test]
    fn errors_read_well() {
        let e = NodeError::ProtocolMismatch {
            node_protocol: 4,
            host_min: Some(5),
            host_max: Some(6),
            message: "upgrade".into(),
        };
        assert_eq!(
            e.to_string(),
            "protocol mismatch: this node speaks version 4, the host expects versions 5 to 6: upgrade"
        );
        let e = NodeError::PairingRejected {
            request_id: Some("r1".into()),
            message: "no".into(),
        };
        assert_eq!(
            e.to_string(),
            "pairing was rejected on the host (request r1): no"
        );
        assert_eq!(
            NodeState::AwaitingApproval {
                request_id: "r1".into(),
                verification_code: None,
            }
            .to_string(),
            "awaiting approval (request r1)"
        );
        assert_eq!(
            NodeState::AwaitingApproval {
                request_id: "r1".into(),
                verification_code: Some("048 213".into()),
            }
            .to_string(),
            "awaiting approval (request r1, verification code 048 213)"
        );
    }

    #[test]
    fn connect_params_are_signed_over_v3() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = NodeConfig::new("127.0.0.1:1", "Test node", dir.path());
        config.device_family = Some("Desktop".into());
        let node = Node::new(config, Capabilities::new()).unwrap();
        let p = node.connect_params("nonce-1", Some("tok"), None);
        assert_eq!(p.min_protocol, PROTOCOL_VERSION);
        assert_eq!(p.client.id, CLIENT_ID);
        assert_eq!(p.client.mode, "node");
        assert_eq!(p.auth.as_ref().unwrap().signed_token(), "tok");
        let device = p.device.as_ref().unwrap();
        let payload = p.signed_payload().unwrap();
        perch_protocol::identity::verify_device_signature(
            &device.id,
            &device.public_key,
            &device.signature,
            &payload,
        )
        .unwrap();
        assert!(node.connect_params("n", None, None).auth.is_none());
    }
}
