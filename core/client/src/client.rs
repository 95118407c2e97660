//! The handle embedders hold: start, call, subscribe, watch, reconnect, shut down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{Mutex, Notify, broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use perch_protocol::frame::EventFrame;

use crate::connection::{Command, Shared, run};

/// First reconnect delay: an operator UI should come back quickly after a host restart.
const RECONNECT_BASE: Duration = Duration::from_millis(250);
/// Longest reconnect delay: short enough that the tray never looks stale for long.
const RECONNECT_CAP: Duration = Duration::from_secs(10);
use crate::error::ClientError;
use crate::state::ConnectionState;

/// The operator token; `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorToken(String);

impl OperatorToken {
    /// Wraps a token (surrounding whitespace, such as the file's newline, is dropped).
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into().trim().to_string())
    }

    /// The token itself, for the `connect` request only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorToken(<redacted>)")
    }
}

/// How to reach the host and how to present ourselves. Build it with [`ClientConfig::new`]
/// and adjust the fields; new fields get defaults, so embedders keep compiling.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The host's WebSocket URL, for example `ws://127.0.0.1:18789`.
    pub url: String,
    /// The operator token (from `operator.token` in the host's data directory).
    pub token: OperatorToken,
    /// The host key fingerprint the host must prove in its challenge before the token is
    /// sent (from `host-identity.json` in the same data directory).
    pub host_fingerprint: String,
    /// `client.id` sent in `connect`, shown in presence.
    pub client_id: String,
    /// `client.mode`: `cli` keeps the connection out of presence; `ui` shows it.
    pub mode: String,
    /// `client.displayName`, shown in presence.
    pub display_name: Option<String>,
    /// Limit for each handshake step (TCP and upgrade, challenge, `hello-ok`).
    pub connect_timeout: Duration,
    /// First reconnect delay.
    pub backoff_base: Duration,
    /// Longest reconnect delay.
    pub backoff_cap: Duration,
    /// Events buffered per subscriber before a slow one starts losing them (it then sees
    /// `RecvError::Lagged` and should refetch what it shows).
    pub event_capacity: usize,
}

impl ClientConfig {
    /// A config for `url` with the operator token and the fingerprint of the host it belongs
    /// to, presenting as `perch-client` in `ui` mode, with a 10 s handshake limit and 250 ms to
    /// 10 s backoff (the shared scheme of `perch_protocol::backoff`).
    pub fn new(
        url: impl Into<String>,
        token: OperatorToken,
        host_fingerprint: impl Into<String>,
    ) -> Self {
        Self {
            url: url.into(),
            token,
            host_fingerprint: host_fingerprint.into(),
            client_id: "perch-client".into(),
            mode: perch_protocol::handshake::client_mode::UI.into(),
            display_name: None,
            connect_timeout: Duration::from_secs(10),
            backoff_base: RECONNECT_BASE,
            backoff_cap: RECONNECT_CAP,
            event_capacity: 256,
        }
    }
}

/// A long-lived operator connection. Cloning is cheap and every clone talks through the same
/// socket; the background task stops on [`Client::shutdown`] or when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<ConnectionState>,
    events: broadcast::Sender<EventFrame>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: nobody can call or shut down any more.
        self.stop.cancel();
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("state", &*self.inner.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts the background task, which connects at once and keeps reconnecting. Must be
    /// called inside a tokio runtime.
    pub fn start(config: ClientConfig) -> Client {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (state_tx, state) = watch::channel(ConnectionState::Connecting);
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            attempts: AtomicU64::new(0),
            wake: Notify::new(),
        });
        let task = tokio::spawn(run(
            config,
            command_rx,
            state_tx,
            events.clone(),
            shared.clone(),
            stop.clone(),
        ));
        Client {
            inner: Arc::new(Inner {
                commands,
                state,
                events,
                shared,
                next_id: AtomicU64::new(0),
                stop,
                task: Mutex::new(Some(task)),
            }),
        }
    }

    /// A live view of the connection state.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.inner.state.clone()
    }

    /// The connection state now.
    pub fn current_state(&self) -> ConnectionState {
        self.inner.state.borrow().clone()
    }

    /// Every event the host sends after `hello-ok`, except `tick`. Subscribe before acting
    /// on state you fetched, so no change slips between the two.
    pub fn subscribe(&self) -> broadcast::Receiver<EventFrame> {
        self.inner.events.subscribe()
    }

    /// How many connection attempts the client has made; lets embedders and tests see that a
    /// refused token is not retried in a loop.
    pub fn connection_attempts(&self) -> u64 {
        self.inner.shared.attempts.load(Ordering::Relaxed)
    }

    /// Ends a backoff wait, or leaves [`ConnectionState::Unauthorized`], and tries at once
    /// (call it when the token file changed or the user pressed Retry).
    pub fn reconnect_now(&self) {
        self.inner.shared.wake.notify_one();
    }

    /// Waits until the client is admitted, for at most `timeout`. Fails at once with
    /// [`ClientError::NotConnected`] when the client is not trying (token refused, stopped).
    pub async fn wait_connected(
        &self,
        timeout: Duration,
    ) -> Result<Arc<perch_protocol::handshake::HelloOk>, ClientError> {
        let mut rx = self.inner.state.clone();
        let wait = async {
            loop {
                let state = rx.borrow_and_update().clone();
                match state {
                    ConnectionState::Connected { hello } => return Ok(hello),
                    ConnectionState::Stopped => return Err(ClientError::Closed),
                    ConnectionState::Unauthorized { reason }
                    | ConnectionState::Disconnected {
                        reason,
                        retry_in: None,
                    } => return Err(ClientError::NotConnected { reason }),
                    _ => {}
                }
                if rx.changed().await.is_err() {
                    return Err(ClientError::Closed);
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::NotConnected {
                reason: match self.current_state() {
                    ConnectionState::Disconnected { reason, .. } => reason,
                    other => format!("still {other} after {} ms", timeout.as_millis()),
                },
            }),
        }
    }

    /// Sends one request and waits for its answer, at most `timeout`. Many calls may run at
    /// once. While the client is connecting, the call waits for the connection within the
    /// same deadline; while it is disconnected, it fails at once with
    /// [`ClientError::NotConnected`]. On timeout the host is sent a `cancel`.
    pub async fn call(
        &self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let timed_out = || ClientError::Timeout {
            method: method.to_string(),
            timeout,
        };
        match self.current_state() {
            ConnectionState::Connected { .. } => {}
            ConnectionState::Connecting => {
                self.wait_connected(timeout).await?;
            }
            ConnectionState::Stopped => return Err(ClientError::Closed),
            ConnectionState::Disconnected { reason, .. }
            | ConnectionState::Unauthorized { reason } => {
                return Err(ClientError::NotConnected { reason });
            }
        }
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("op-{n}");
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Call {
                id: id.clone(),
                method: method.to_string(),
                params,
                reply,
            })
            .map_err(|_| ClientError::Closed)?;
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(result)) => result,
            // The task dropped the reply: it is gone.
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => {
                // Best effort: tell the host to stop working on it; the task forgets the id.
                let _ = self.inner.commands.send(Command::Cancel { id });
                Err(timed_out())
            }
        }
    }

    /// [`Client::call`], decoding the answer into `T`.
    pub async fn call_as<T: DeserializeOwned>(
        &self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let v = self.call(method, params, timeout).await?;
        serde_json::from_value(v).map_err(|e| ClientError::Decode {
            method: method.to_string(),
            message: e.to_string(),
        })
    }

    /// Closes the connection politely (close code 1000), fails requests still waiting with
    /// [`ClientError::Closed`], and waits for the background task to end. Every clone sees
    /// [`ConnectionState::Stopped`].
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        let task = self.inner.task.lock().await.take();
        if let Some(task) = task
            && let Err(e) = task.await
        {
            tracing::warn!(error = %e, "operator client task ended abnormally");
        }
    }
}
