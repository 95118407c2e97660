//! The gateway's shared state: live connections, connected nodes, clients waiting for a
//! pairing decision. Every connection task holds an `Arc<Hub>`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use perch_protocol::events::{self, ConnectionClosing, NodeStatus};
use perch_protocol::frame::{EventFrame, Frame, StateVersion};
use perch_protocol::handshake::Role;
use perch_protocol::methods::PairDecision;
use perch_protocol::presence::{PRESENCE_EVENT, PresenceEntry, PresenceList};
use perch_protocol::{DeviceId, ErrorShape};
use perch_store::Store;

use crate::config::GatewayConfig;
use crate::invoke::Invokes;
use crate::presence::{PresenceTable, Versioned};

/// Locks a mutex, recovering the data if a panicking thread poisoned it: the maps hold
/// plain data whose invariants hold between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Identifies one WebSocket connection for its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// What a connection's writer task sends.
#[derive(Debug)]
pub enum Outbound {
    /// A protocol frame.
    Frame(Frame),
    /// A WebSocket ping, to keep NATs open and prove the peer still reads.
    Ping,
    /// Close the socket with a code and reason.
    Close(u16, String),
}

/// Instructions to a connection task from elsewhere in the hub.
#[derive(Debug)]
pub enum Control {
    /// The pairing request this connection waits on was decided.
    PairResolved {
        /// The request.
        request_id: String,
        /// The decision.
        decision: PairDecision,
        /// On approval, the device token minted for it.
        token: Option<String>,
    },
    /// Close the connection, telling the client why.
    Close {
        /// Why.
        error: ErrorShape,
        /// Whether reconnecting can help.
        reconnect: bool,
    },
}

/// The sending half of a connection's outbound queue. A client that does not read fast enough
/// to keep the queue below its bound is closed rather than allowed to grow host memory.
#[derive(Debug, Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outbound>,
    slow: CancellationToken,
}

impl Outbox {
    /// A queue with room for `capacity` messages; `slow` fires when it overflows.
    pub fn new(capacity: usize, slow: CancellationToken) -> (Self, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx, slow }, rx)
    }

    /// Queues a message; false when the connection is gone or too slow (and is being closed).
    pub fn send(&self, msg: Outbound) -> bool {
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.slow.cancel();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a frame.
    pub fn frame(&self, f: Frame) -> bool {
        self.send(Outbound::Frame(f))
    }

    /// Queues an event.
    pub fn event<T: Serialize>(&self, name: &str, payload: &T) -> bool {
        match serde_json::to_value(payload) {
            Ok(v) => self.frame(Frame::Event(EventFrame {
                event: name.to_string(),
                payload: Some(v),
                seq: None,
                state_version: None,
            })),
            Err(e) => {
                tracing::error!(event = name, error = %e, "event payload did not serialize");
                false
            }
        }
    }

    /// Whether the receiving side is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A connection the hub can reach.
#[derive(Debug, Clone)]
struct ConnEntry {
    role: Option<Role>,
    device_id: Option<DeviceId>,
    out: Outbox,
    control: mpsc::UnboundedSender<Control>,
}

/// A connected node and what it offers.
#[derive(Debug, Clone)]
pub struct NodeSession {
    /// The connection carrying it.
    pub conn_id: ConnId,
    /// Node id (device id).
    pub node_id: DeviceId,
    /// Display name.
    pub display_name: String,
    /// Platform.
    pub platform: String,
    /// Hardware family.
    pub device_family: Option<String>,
    /// Client program id and version.
    pub client_version: String,
    /// Advertised commands.
    pub commands: Vec<String>,
    /// Advertised capability categories.
    pub caps: Vec<String>,
    /// Permission claims.
    pub permissions: BTreeMap<String, bool>,
    /// When this connection was admitted.
    pub connected_since_ms: i64,
    /// Peer address.
    pub remote_addr: String,
    /// Its outbound queue.
    pub out: Outbox,
    /// What the node reported about itself on this connection ([`crate::node_reports`]);
    /// shared, so cloning a session stays cheap however large the reports are.
    pub reports: Arc<crate::node_reports::NodeReports>,
}

/// Shared gateway state.
pub struct Hub {
    /// Settings in force.
    pub config: GatewayConfig,
    /// Persistence.
    pub store: Store,
    /// The operator bearer token.
    pub(crate) operator_token: String,
    /// Stable host id: the first 16 hex characters of the key fingerprint.
    pub host_id: String,
    /// Hex SHA-256 of the host's public key; what nodes pin.
    pub fingerprint: String,
    /// The host's signing key, for challenge proofs.
    pub(crate) host_key: perch_protocol::DeviceIdentity,
    /// When the gateway started.
    pub started: Instant,
    /// Fires on graceful shutdown.
    pub shutdown: CancellationToken,
    /// In-flight node invokes.
    pub invokes: Invokes,
    /// The per-device record of node commands run, written off the invoke path.
    pub access: crate::access::AccessLog,
    /// What the host composition provides: the assistant's turns and the settings file.
    pub services: Arc<dyn crate::services::HostServices>,
    /// Chat turns running now.
    active_turns: AtomicU64,
    next_conn: AtomicU64,
    conns: Mutex<HashMap<ConnId, ConnEntry>>,
    nodes: Mutex<HashMap<DeviceId, NodeSession>>,
    waiters: Mutex<HashMap<String, HashSet<ConnId>>>,
    presence: Mutex<PresenceTable>,
    arrivals: tokio::sync::broadcast::Sender<DeviceId>,
    /// Operator events for in-process subscribers.
    events: tokio::sync::broadcast::Sender<EventFrame>,
}

impl Hub {
    /// Builds the hub.
    pub fn new(
        config: GatewayConfig,
        store: Store,
        operator_token: String,
        host_key: perch_protocol::DeviceIdentity,
        services: Arc<dyn crate::services::HostServices>,
    ) -> Arc<Self> {
        let fingerprint = host_key.device_id().to_string();
        Arc::new(Self {
            config,
            store: store.clone(),
            operator_token,
            host_id: perch_protocol::identity::host_id_for(&fingerprint),
            fingerprint,
            host_key,
            started: Instant::now(),
            shutdown: CancellationToken::new(),
            invokes: Invokes::default(),
            access: crate::access::AccessLog::new(store.clone(), Default::default()),
            services,
            active_turns: AtomicU64::new(0),
            next_conn: AtomicU64::new(1),
            conns: Mutex::new(HashMap::new()),
            nodes: Mutex::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            presence: Mutex::new(PresenceTable::default()),
            arrivals: tokio::sync::broadcast::channel(256).0,
            events: tokio::sync::broadcast::channel(256).0,
        })
    }

    /// Chat turns running now, for `status`.
    pub fn active_turns(&self) -> u64 {
        self.active_turns.load(Ordering::Relaxed)
    }

    /// Counts a turn in (`true`) or out (`false`); only [`crate::chat`]'s turn guard calls it,
    /// so every start has exactly one end.
    pub(crate) fn count_turn(&self, running: bool) {
        if running {
            self.active_turns.fetch_add(1, Ordering::Relaxed);
        } else {
            self.active_turns.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// Registers a connection before its handshake, so shutdown reaches it too.
    pub fn register_conn(&self, id: ConnId, out: Outbox, control: mpsc::UnboundedSender<Control>) {
        lock(&self.conns).insert(
            id,
            ConnEntry {
                role: None,
                device_id: None,
                out,
                control,
            },
        );
    }

    /// Records the role and device of an admitted connection.
    pub fn set_conn_identity(&self, id: ConnId, role: Role, device_id: Option<DeviceId>) {
        if let Some(e) = lock(&self.conns).get_mut(&id) {
            e.role = Some(role);
            e.device_id = device_id;
        }
    }

    /// Forgets a connection and everything that hangs off it.
    pub fn unregister_conn(&self, id: ConnId) {
        lock(&self.conns).remove(&id);
        let mut waiters = lock(&self.waiters);
        for set in waiters.values_mut() {
            set.remove(&id);
        }
        waiters.retain(|_, s| !s.is_empty());
    }

    /// Number of admitted connections per role.
    pub fn count_role(&self, role: Role) -> u64 {
        lock(&self.conns)
            .values()
            .filter(|e| e.role == Some(role))
            .count() as u64
    }

    /// The outboxes of every admitted operator.
    fn operator_outboxes(&self) -> Vec<Outbox> {
        lock(&self.conns)
            .values()
            .filter(|e| e.role == Some(Role::Operator))
            .map(|e| e.out.clone())
            .collect()
    }

    /// Sends an event to every admitted operator.
    pub fn broadcast_operators<T: Serialize>(&self, name: &str, payload: &T) {
        let targets = self.operator_outboxes();
        for out in targets {
            out.event(name, payload);
        }
        self.tap(name, payload, None);
    }

    /// Every operator event, for an embedder in this process (the host handle's `events`).
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<EventFrame> {
        self.events.subscribe()
    }

    /// Copies an operator event to in-process subscribers, when there are any.
    fn tap<T: Serialize>(&self, name: &str, payload: &T, state_version: Option<StateVersion>) {
        if self.events.receiver_count() == 0 {
            return;
        }
        if let Ok(v) = serde_json::to_value(payload) {
            // A lagging subscriber loses the oldest events, never blocks the hub.
            let _ = self.events.send(EventFrame {
                event: name.to_string(),
                payload: Some(v),
                seq: None,
                state_version,
            });
        }
    }

    /// Sends an event to every connection, admitted or not.
    pub fn broadcast_all<T: Serialize>(&self, name: &str, payload: &T) {
        let targets: Vec<Outbox> = lock(&self.conns).values().map(|e| e.out.clone()).collect();
        for out in targets {
            out.event(name, payload);
        }
    }

    /// Asks every connection of a device to close; returns how many there were.
    pub fn close_device(&self, device_id: &DeviceId, error: ErrorShape, reconnect: bool) -> u64 {
        let targets: Vec<mpsc::UnboundedSender<Control>> = lock(&self.conns)
            .values()
            .filter(|e| e.device_id.as_ref() == Some(device_id))
            .map(|e| e.control.clone())
            .collect();
        for t in &targets {
            let _ = t.send(Control::Close {
                error: error.clone(),
                reconnect,
            });
        }
        targets.len() as u64
    }

    /// Parks a connection until the request it made is decided.
    pub fn add_waiter(&self, request_id: &str, conn: ConnId) {
        lock(&self.waiters)
            .entry(request_id.to_string())
            .or_default()
            .insert(conn);
    }

    /// Tells every operator that these requests expired (so trays and pages drop them), and
    /// closes the connections still waiting on one, so the device can ask again.
    pub fn expire_pairings(&self, expired: &[perch_store::ExpiredRequest]) {
        let now = now_ms();
        for e in expired {
            self.expire_waiters(&e.request_id);
            self.broadcast_operators(
                perch_protocol::events::DEVICE_PAIR_RESOLVED,
                &perch_protocol::events::PairResolved {
                    request_id: e.request_id.clone(),
                    device_id: e.device_id.to_string(),
                    decision: perch_protocol::events::PairResolution::Expired,
                    ts: now,
                },
            );
        }
    }

    /// Closes the connections waiting on a request that expired to make room for newer ones.
    fn expire_waiters(&self, request_id: &str) {
        let conns = lock(&self.waiters).remove(request_id).unwrap_or_default();
        let all = lock(&self.conns);
        for c in conns {
            if let Some(e) = all.get(&c) {
                let _ = e.control.send(Control::Close {
                    error: crate::pairing::expired_for_room(request_id),
                    reconnect: true,
                });
            }
        }
    }

    /// Requests that a connection is waiting on right now.
    pub fn waited_requests(&self) -> Vec<String> {
        lock(&self.waiters).keys().cloned().collect()
    }

    /// Tells the connections waiting on a request how it was decided.
    pub fn resolve_waiters(
        &self,
        request_id: &str,
        decision: PairDecision,
        token: Option<String>,
    ) -> usize {
        let conns = lock(&self.waiters).remove(request_id).unwrap_or_default();
        let controls: Vec<mpsc::UnboundedSender<Control>> = {
            let all = lock(&self.conns);
            conns
                .iter()
                .filter_map(|c| all.get(c).map(|e| e.control.clone()))
                .collect()
        };
        // Only one connection can use the minted token; a device normally has one anyway.
        let mut token = token;
        for c in &controls {
            let _ = c.send(Control::PairResolved {
                request_id: request_id.to_string(),
                decision,
                token: token.take(),
            });
        }
        controls.len()
    }

    /// Makes a node reachable; a previous connection of the same node is told to close.
    pub fn add_node(&self, session: NodeSession) {
        let status = NodeStatus {
            node_id: session.node_id.to_string(),
            display_name: session.display_name.clone(),
            online: true,
            last_invoke_ms: self.invokes.last_served(&session.node_id),
            ts: now_ms(),
        };
        let previous = lock(&self.nodes).insert(session.node_id.clone(), session.clone());
        if let Some(prev) = previous
            && prev.conn_id != session.conn_id
        {
            let control = lock(&self.conns)
                .get(&prev.conn_id)
                .map(|e| e.control.clone());
            if let Some(c) = control {
                let _ = c.send(Control::Close {
                    error: ErrorShape::new(
                        perch_protocol::ErrorCode::Unavailable,
                        "replaced by a newer connection from the same device",
                    ),
                    reconnect: false,
                });
            }
            self.invokes.fail_node(
                &prev.node_id,
                Some(prev.conn_id),
                "node reconnected while the command was running",
            );
        }
        let _ = self.arrivals.send(session.node_id.clone());
        self.broadcast_operators(events::NODE_STATUS, &status);
    }

    /// Waits until the node is connected, or the deadline passes.
    pub async fn wait_for_node(
        &self,
        node_id: &DeviceId,
        deadline: tokio::time::Instant,
    ) -> Option<NodeSession> {
        // Subscribe before looking, so an arrival between the two is not missed.
        let mut arrivals = self.arrivals.subscribe();
        loop {
            if let Some(s) = self.node(node_id) {
                return Some(s);
            }
            match tokio::time::timeout_at(deadline, arrivals.recv()).await {
                Err(_) => return None,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Removes a node when its connection ends (unless a newer connection replaced it), and
    /// fails its in-flight invokes at once.
    pub fn remove_node(&self, node_id: &DeviceId, conn_id: ConnId) {
        let removed = {
            let mut nodes = lock(&self.nodes);
            match nodes.get(node_id) {
                Some(s) if s.conn_id == conn_id => nodes.remove(node_id),
                _ => None,
            }
        };
        self.invokes.fail_node(
            node_id,
            Some(conn_id),
            "node disconnected while the command was running",
        );
        if let Some(s) = removed {
            self.broadcast_operators(
                events::NODE_STATUS,
                &NodeStatus {
                    node_id: s.node_id.to_string(),
                    display_name: s.display_name,
                    online: false,
                    last_invoke_ms: self.invokes.last_served(&s.node_id),
                    ts: now_ms(),
                },
            );
        }
    }

    /// Sends presence changes to operators in version order. Called with the presence lock
    /// held, so two changes can never overtake each other on the way out.
    fn publish_presence(&self, changes: Vec<Versioned>) {
        if changes.is_empty() {
            return;
        }
        let targets = self.operator_outboxes();
        for (version, change) in changes {
            let Ok(payload) = serde_json::to_value(&change) else {
                continue;
            };
            let state_version = StateVersion {
                presence: version,
                health: 0,
            };
            for out in &targets {
                out.frame(Frame::Event(EventFrame {
                    event: PRESENCE_EVENT.to_string(),
                    payload: Some(payload.clone()),
                    seq: None,
                    state_version: Some(state_version),
                }));
            }
            self.tap(PRESENCE_EVENT, &change, Some(state_version));
        }
    }

    /// Admits a connection: records its presence entry (if any), lets `respond` queue its
    /// `hello-ok` with the presence snapshot and version, then switches it to its role. All under
    /// the presence lock, so no change falls between the snapshot and the first event.
    pub fn admit_conn(
        &self,
        conn: ConnId,
        role: Role,
        device_id: Option<DeviceId>,
        entry: Option<PresenceEntry>,
        respond: impl FnOnce(Vec<PresenceEntry>, u64),
    ) {
        let mut table = lock(&self.presence);
        if let Some(entry) = entry {
            let changes = table.connect(conn, entry);
            self.publish_presence(changes);
        }
        respond(table.entries(), table.version());
        self.set_conn_identity(conn, role, device_id);
    }

    /// A client's connection ended.
    pub fn presence_disconnect(&self, conn: ConnId, key: &str) {
        let mut table = lock(&self.presence);
        let changes = table.disconnect(conn, key);
        self.publish_presence(changes);
    }

    /// Something arrived from a client.
    pub fn presence_seen(&self, key: &str) {
        lock(&self.presence).seen(key, now_ms());
    }

    /// A device reported its user's idle time.
    pub fn presence_activity(&self, key: &str, idle_seconds: u64) {
        let mut table = lock(&self.presence);
        let changes = table.activity(key, idle_seconds, now_ms());
        self.publish_presence(changes);
    }

    /// Drops silent entries.
    pub fn presence_expire(&self) {
        let mut table = lock(&self.presence);
        let changes = table.expire(now_ms());
        self.publish_presence(changes);
    }

    /// The presence list with the active device.
    pub fn presence_list(&self) -> PresenceList {
        lock(&self.presence).list()
    }

    /// Makes a device unreachable at once (revocation), whichever connection carries it; its
    /// connection closes on its own shortly after.
    pub fn drop_node(&self, node_id: &DeviceId) {
        let conn = lock(&self.nodes).get(node_id).map(|s| s.conn_id);
        if let Some(conn) = conn {
            self.remove_node(node_id, conn);
        }
    }

    /// Changes a connected node's session in place; false when the node is not connected.
    pub(crate) fn update_node(&self, node_id: &DeviceId, f: impl FnOnce(&mut NodeSession)) -> bool {
        match lock(&self.nodes).get_mut(node_id) {
            Some(s) => {
                f(s);
                true
            }
            None => false,
        }
    }

    /// The session of a connected node.
    pub fn node(&self, node_id: &DeviceId) -> Option<NodeSession> {
        lock(&self.nodes).get(node_id).cloned()
    }

    /// All connected nodes.
    pub fn nodes(&self) -> Vec<NodeSession> {
        lock(&self.nodes).values().cloned().collect()
    }

    /// Whether a device has a live connection.
    pub fn is_online(&self, device_id: &DeviceId) -> bool {
        lock(&self.nodes).contains_key(device_id)
    }

    /// Tells every connection the host is going away and closes it.
    pub fn close_all_for_shutdown(&self) {
        let entries: Vec<ConnEntry> = lock(&self.conns).values().cloned().collect();
        for e in entries {
            e.out.event(
                events::SHUTDOWN,
                &events::Shutdown {
                    reason: "host shutting down".into(),
                    restart_expected_ms: None,
                },
            );
            e.out.send(Outbound::Close(
                perch_protocol::close_code::GOING_AWAY,
                "host shutting down".into(),
            ));
        }
    }

    /// The `connection.closing` event for a close the client did not ask for.
    pub fn closing_event(error: &ErrorShape, reconnect: bool) -> ConnectionClosing {
        ConnectionClosing {
            error: error.clone(),
            reconnect,
        }
    }
}
