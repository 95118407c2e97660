//! Binding the listener, the HTTP routes (the socket, health, the web UI), and orderly start
//! and shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Extension, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use perch_store::Store;

use crate::config::GatewayConfig;
use crate::hub::{Hub, now_ms};
use crate::secrets::{SecretError, load_or_create_operator_token};
use crate::services::HostServices;

/// Name of the database file in the data directory.
pub const DATABASE_FILE: &str = "perch.db";
/// Pending pairing requests untouched this long are expired.
const PENDING_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// Bytes read from a socket at a time.
const WS_READ_BUFFER: usize = 4096;
/// How long shutdown waits for connections to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The data directory could not be created or written.
    #[error("data directory {path} is not usable: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error("database {path}: {source}")]
    Store {
        /// The database file.
        path: std::path::PathBuf,
        /// The store error.
        source: perch_store::StoreError,
    },
    /// The operator token could not be read or minted.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The host's TLS certificate could not be issued or served.
    #[error(transparent)]
    Tls(#[from] perch_tls::IssueError),
    /// The address is taken or not ours; [`GatewayError::hint`] says what to do.
    #[error("cannot listen on {addr}: {}", bind_problem(.source).0)]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl GatewayError {
    /// What the user can do about it, for every face that shows the error (the CLI's message,
    /// the menu-bar app's shell page).
    pub fn hint(&self) -> &'static str {
        match self {
            GatewayError::Bind { source, .. } => bind_problem(source).1,
            GatewayError::DataDir { .. }
            | GatewayError::Store { .. }
            | GatewayError::Secret(_)
            | GatewayError::Tls(_) => {
                "Check that the data directory exists and is writable by this user (--data-dir or PERCH_DATA_DIR picks another)."
            }
        }
    }
}

/// A bind failure in a few words, and the hint that goes with it.
fn bind_problem(e: &std::io::Error) -> (String, &'static str) {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => (
            "address in use".into(),
            "Another program (perhaps another Perch host) uses this port: stop it, or choose another address (--bind, or bind in Settings).",
        ),
        std::io::ErrorKind::PermissionDenied => (
            "permission denied".into(),
            "Ports below 1024 need privileges: choose another port (--bind, or bind in Settings).",
        ),
        std::io::ErrorKind::AddrNotAvailable => (
            "this machine has no such address".into(),
            "Choose an address of this machine (127.0.0.1 for this machine only, 0.0.0.0 for the local network).",
        ),
        _ => (
            e.to_string(),
            "Choose another address (--bind, or bind in Settings) and try again.",
        ),
    }
}

/// A gateway that is accepting connections.
pub struct RunningGateway {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    hub: Arc<Hub>,
    server: JoinHandle<()>,
    tracker: TaskTracker,
    mdns: Option<crate::mdns::MdnsHandle>,
}

impl RunningGateway {
    /// The shared state, for embedding hosts and tests.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The WebSocket URL clients should use.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Tells every client the host is going away, closes connections, and closes the database.
    pub async fn shutdown(self) {
        tracing::info!("shutting down");
        self.hub.close_all_for_shutdown();
        self.hub.shutdown.cancel();
        if let Some(mdns) = self.mdns {
            // Goodbye packets, so browsers drop this host now rather than after the TTL.
            mdns.stopped().await;
        }
        self.tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close in time");
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, self.server)
            .await
            .is_err()
        {
            tracing::warn!("HTTP server did not stop in time");
        }
        // Calls that finished during shutdown are in the access record before the database closes.
        self.hub.access.flush().await;
        self.hub.store.close().await;
        tracing::info!("stopped");
    }
}

/// Opens the store, binds the listener and starts serving; `services` answers the methods
/// the host composition owns (chat, settings).
pub async fn start(
    config: GatewayConfig,
    services: Arc<dyn HostServices>,
) -> Result<RunningGateway, GatewayError> {
    let dir = config.data_dir.clone();
    std::fs::create_dir_all(&dir).map_err(|source| GatewayError::DataDir {
        path: dir.clone(),
        source,
    })?;
    let db_path = dir.join(DATABASE_FILE);
    let store = Store::open(&db_path)
        .await
        .map_err(|source| GatewayError::Store {
            path: db_path.clone(),
            source,
        })?;
    let operator_token = load_or_create_operator_token(&dir)?;
    let host_key = crate::secrets::load_or_create_host_identity(&dir)?;
    let tls = if config.transport.tls {
        let cert = perch_tls::HostCertificate::load_or_issue(&dir, &host_key)?;
        Some(cert.server_config()?)
    } else {
        if !crate::config::is_loopback(config.bind.ip()) {
            tracing::warn!(
                bind = %config.bind,
                "TLS is off ([gateway] tls = false): tokens, chats and locations cross the network in clear"
            );
        }
        None
    };
    let transports = Arc::new(crate::accept::Transports::new(config.transport, tls));
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| GatewayError::Bind {
            addr: config.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| GatewayError::Bind {
        addr: config.bind,
        source,
    })?;
    let mut config = config;
    // Report the address actually bound (port 0 picks one).
    config.bind = addr;
    let hub = Hub::new(config, store, operator_token, host_key, services);
    // Best effort: never fails or delays the start; it logs a warning at worst.
    let mdns = crate::mdns::start(
        crate::mdns::Advertisement::from_hub(&hub),
        hub.config.mdns,
        hub.shutdown.clone(),
    );
    let tracker = TaskTracker::new();
    let allowlist = Arc::new(crate::host_check::HostAllowlist::new(&hub.config));
    let app = Router::new()
        .route("/", get(root))
        .route("/healthz", get(health))
        .route("/ui", get(crate::web::redirect_to_ui))
        .route("/ui/", get(ui))
        .route("/ui/{*path}", get(ui))
        .with_state(AppState {
            hub: hub.clone(),
            tracker: tracker.clone(),
        })
        .layer(axum::middleware::from_fn_with_state(
            allowlist,
            crate::host_check::check_host,
        ));
    let limits = crate::conn_limits::ConnLimits::new(&hub.config.limits);
    crate::fd_limit::raise_for(hub.config.limits.max_connections);
    let server = tokio::spawn(crate::accept::serve(
        listener,
        app,
        transports,
        limits,
        Duration::from_millis(hub.config.limits.header_timeout_ms),
        hub.shutdown.clone(),
        tracker.clone(),
    ));
    tracker.spawn(janitor(hub.clone()));
    tracing::info!(%addr, host_id = %hub.host_id, name = %hub.config.name, "gateway listening");
    Ok(RunningGateway {
        addr,
        hub,
        server,
        tracker,
        mdns,
    })
}

#[derive(Clone)]
struct AppState {
    hub: Arc<Hub>,
    tracker: TaskTracker,
}

/// `/`: the protocol socket for a WebSocket upgrade from no origin or the host's own; for a
/// browser asking for a page, the web UI; for anything else, the JSON banner.
async fn root(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    slot: Option<Extension<crate::accept::SlotHandle>>,
    mut req: Request,
) -> Response {
    // A foreign `Origin` never gets here: `host_check::check_host` refuses it on every route.
    let upgrade = crate::ws_upgrade::Upgrade::from_request(&mut req);
    let headers = req.headers();
    match upgrade {
        None if crate::web::wants_html(headers) => {
            Redirect::temporary(crate::web::UI_PATH).into_response()
        }
        Some(upgrade) => {
            let client_nonce =
                match perch_protocol::handshake::client_nonce_from_query(req.uri().query()) {
                    Ok(n) => n,
                    Err(e) => {
                        return (axum::http::StatusCode::BAD_REQUEST, format!("{e}\n"))
                            .into_response();
                    }
                };
            // The message limit starts at the pre-handshake size and is raised after `connect`;
            // tungstenite's own limit is the most the socket ever allows.
            let max =
                state.hub.config.max_payload as usize + perch_protocol::PRE_HANDSHAKE_MAX_FRAME;
            // A small read buffer: most frames are tiny, and tungstenite's default of 128 KiB
            // per socket would dominate host memory with many nodes connected.
            let (response, limit, socket) =
                upgrade.accept(perch_protocol::PRE_HANDSHAKE_MAX_FRAME, max, WS_READ_BUFFER);
            let hub = state.hub.clone();
            let slot = slot.map(|Extension(s)| s);
            tokio::spawn(state.tracker.track_future(async move {
                if let Some(socket) = socket.await {
                    crate::connection::serve_socket(hub, socket, remote, limit, client_nonce).await;
                }
                // The connection's place under the caps is free once the socket is gone.
                drop(slot);
            }));
            response
        }
        None => axum::Json(json!({
            "service": "perch-gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "hostId": state.hub.host_id,
            "websocket": "connect with a WebSocket client to this URL",
        }))
        .into_response(),
    }
}

async fn ui(State(state): State<AppState>, req: Request) -> Response {
    crate::web::serve_ui(&state.hub.config, req).await
}

async fn health(State(state): State<AppState>) -> Response {
    axum::Json(json!({"ok": true, "ts": now_ms(), "hostId": state.hub.host_id})).into_response()
}

/// Expires silent presence entries, and pairing requests nobody decided on except those a
/// device is still waiting on.
async fn janitor(hub: Arc<Hub>) {
    let mut every = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = hub.shutdown.cancelled() => return,
            _ = every.tick() => {
                hub.presence_expire();
                for request_id in hub.waited_requests() {
                    if let Err(e) = hub.store.pairing().touch(&request_id, now_ms()).await {
                        tracing::warn!(error = %e, "could not refresh a waited-on pairing request");
                    }
                }
                match hub.store.pairing().expire_stale(now_ms() - PENDING_TTL_MS).await {
                    Ok(expired) => hub.expire_pairings(&expired),
                    Err(e) => tracing::warn!(error = %e, "could not expire pairing requests"),
                }
            }
        }
    }
}
