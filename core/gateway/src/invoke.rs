//! `node.invoke` routing: policy checks, the in-flight table, deadlines, idempotency, and the
//! node's `node.invoke.result`.
//!
//! Every call that passes its param checks and names a known node is written to that node's
//! access record ([`crate::access`]) exactly once, with who asked: a call the gates refuse
//! (not advertised, host policy, not connected, queue full) as `refused`, a call sent to the
//! node as `ok` or `failed` when its outcome is known (also when the caller left first). A
//! replay of a finished call or a join of one in flight is not a new access and is not
//! recorded again; bad params, an unknown node and a reused key are the caller's errors and
//! are not recorded either.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

use perch_protocol::events::{self, InvokeCancel, InvokeRequest};
use perch_protocol::methods::{InvokeParams, InvokeResult, InvokeResultParams};
use perch_protocol::{DeviceId, ErrorCode, ErrorShape, Reason};

use crate::hub::{ConnId, Hub, NodeSession, lock, now_ms};
use crate::idempotency::{IdemEntry, IdemKey, IdemMemory};
use crate::secrets::random_b64;
use perch_protocol::handshake::Role;
use perch_store::{DeviceRecord, DeviceStatus, NewAccess, Requester};

/// The outcome of one node command.
pub type Outcome = Result<Value, ErrorShape>;

/// How long a finished call's outcome is kept for retries with the same idempotency key.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(10 * 60);
/// Most remembered idempotency keys; the oldest finished ones are dropped first.
const IDEMPOTENCY_CAP: usize = 4096;
/// Longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 256;

struct Pending {
    node_id: DeviceId,
    conn_id: ConnId,
    command: String,
    tx: oneshot::Sender<Outcome>,
}

/// In-flight invokes and remembered outcomes.
pub struct Invokes {
    pending: Mutex<HashMap<String, Pending>>,
    queued: Mutex<HashMap<DeviceId, usize>>,
    idem: Mutex<IdemMemory>,
    /// When each node last answered a command or left with one running, ms since the epoch.
    served: Mutex<HashMap<DeviceId, i64>>,
}

impl Default for Invokes {
    fn default() -> Self {
        Self {
            pending: Mutex::default(),
            queued: Mutex::default(),
            idem: Mutex::new(IdemMemory::new(IDEMPOTENCY_TTL, IDEMPOTENCY_CAP)),
            served: Mutex::default(),
        }
    }
}

impl Invokes {
    /// Fails every in-flight invoke of a node (of one connection, when given) at once.
    pub fn fail_node(&self, node_id: &DeviceId, conn_id: Option<ConnId>, why: &str) {
        let drained: Vec<Pending> = {
            let mut p = lock(&self.pending);
            let ids: Vec<String> = p
                .iter()
                .filter(|(_, v)| &v.node_id == node_id && conn_id.is_none_or(|c| c == v.conn_id))
                .map(|(k, _)| k.clone())
                .collect();
            ids.into_iter().filter_map(|k| p.remove(&k)).collect()
        };
        if !drained.is_empty() {
            // It was busy for someone when it left: that is the most "in use" a node gets.
            lock(&self.served).insert(node_id.clone(), now_ms());
        }
        for p in drained {
            let _ = p.tx.send(Err(ErrorShape::new(
                ErrorCode::NodeNotConnected,
                format!("{why} ({})", p.command),
            )
            .with_details(json!({"nodeId": p.node_id, "command": p.command}))
            .with_retryable(true)));
        }
    }

    /// When the node last answered a command or left with one running, ms since the epoch.
    pub fn last_served(&self, node_id: &DeviceId) -> Option<i64> {
        lock(&self.served).get(node_id).copied()
    }

    /// Number of invokes waiting for a node.
    pub fn in_flight(&self) -> usize {
        lock(&self.pending).len()
    }

    /// Delivers a node's answer. Errors are for the node: unknown id or not its invoke.
    pub fn complete(&self, from: &DeviceId, result: InvokeResultParams) -> Result<(), ErrorShape> {
        if result.node_id != from.as_str() {
            return Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                "nodeId does not match the connected device",
            ));
        }
        let pending = {
            let mut p = lock(&self.pending);
            match p.get(&result.id) {
                Some(v) if &v.node_id == from => p.remove(&result.id),
                _ => None,
            }
        };
        let Some(pending) = pending else {
            return Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                "unknown or already finished invoke id",
            )
            .with_details(json!({"id": result.id})));
        };
        let outcome = if result.ok {
            match (result.payload, result.payload_json) {
                (Some(v), _) => Ok(v),
                (None, Some(text)) => serde_json::from_str(&text).map_err(|e| {
                    ErrorShape::new(
                        ErrorCode::InvalidRequest,
                        format!("node returned malformed payloadJSON: {e}"),
                    )
                }),
                (None, None) => Ok(Value::Null),
            }
        } else {
            Err(result.error.unwrap_or_else(|| {
                ErrorShape::new(
                    ErrorCode::Unavailable,
                    "node reported a failure without details",
                )
            }))
        };
        lock(&self.served).insert(from.clone(), now_ms());
        let _ = pending.tx.send(outcome);
        Ok(())
    }

    /// Keeps a finished call's outcome for retries with the same key (a failure that says
    /// "try again", such as a timeout or the node leaving, is not replayed: a retry runs the
    /// command again).
    fn remember(&self, key: IdemKey, fingerprint: String, outcome: Outcome) {
        lock(&self.idem).finish(key, fingerprint, outcome, Instant::now());
    }
}

/// Runs `node.invoke` for `requester` (an operator, or the assistant's turn): resolve, check,
/// dedupe, forward, await, and record the access.
pub async fn invoke(
    hub: &Arc<Hub>,
    params: InvokeParams,
    requester: Requester,
) -> Result<InvokeResult, ErrorShape> {
    let key = params.idempotency_key.trim().to_string();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ErrorShape::new(
            ErrorCode::InvalidRequest,
            format!("idempotencyKey must be 1 to {MAX_IDEMPOTENCY_KEY} characters"),
        ));
    }
    let timeout_ms = match params.timeout_ms {
        None => hub.config.invoke_timeout_ms,
        Some(0) => {
            return Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                "timeoutMs must be at least 1",
            ));
        }
        Some(t) => t.min(perch_protocol::MAX_INVOKE_TIMEOUT_MS),
    };
    let node_id = crate::operator::resolve_node(hub, &params.node_id).await?;
    let access = AccessStart {
        node_id: node_id.clone(),
        command: params.command.clone(),
        requester,
        at_ms: now_ms(),
        started: Instant::now(),
    };
    let fingerprint = format!(
        "{}\u{0}{}",
        params.command,
        params
            .params
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default()
    );
    let idem_key = (node_id.clone(), key.clone());
    let done = |outcome: Outcome| {
        outcome.map(|payload| InvokeResult {
            node_id: node_id.to_string(),
            command: params.command.clone(),
            payload,
        })
    };
    // A node that is offline right now may come back before the deadline: its last-known
    // commands decide the gates until then.
    let offline_record = if hub.config.queue_offline_invokes && !hub.is_online(&node_id) {
        hub.store
            .devices()
            .get(&node_id)
            .await
            .map_err(crate::operator::store_error)?
    } else {
        None
    };
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    // Replay a finished call, join an identical one in flight, or pass the gates and start one.
    let start = {
        let mut idem = lock(&hub.invokes.idem);
        let existing = match idem.get(&idem_key) {
            Some(IdemEntry::Done {
                fingerprint: f,
                outcome,
                at,
                ..
            }) if at.elapsed() < idem.ttl() => Some((f.clone(), Err(outcome.clone()))),
            Some(IdemEntry::InFlight { fingerprint: f, rx }) => Some((f.clone(), Ok(rx.clone()))),
            _ => None,
        };
        match existing {
            Some((f, _)) if f != fingerprint => return Err(reused_key()),
            Some((_, Err(outcome))) => return done(outcome),
            Some((_, Ok(rx))) => Start::Join(rx),
            None => {
                let admitted = match admit_call(hub, &node_id, &params.command) {
                    Ok(s) => Ok(Some(s)),
                    Err(e) if e.code == ErrorCode::NodeNotConnected => match &offline_record {
                        Some(record) => admit_offline(hub, record, &params.command).map(|_| None),
                        None => Err(e),
                    },
                    Err(e) => Err(e),
                };
                let session = match admitted {
                    Ok(s) => s,
                    Err(e) => {
                        // Refused on the node's behalf: it never saw the call, but it was asked.
                        access.refused(hub, &e);
                        return Err(e);
                    }
                };
                let (tx, rx) = watch::channel(None);
                idem.start(idem_key.clone(), fingerprint.clone(), rx);
                Start::Run(session.map(Box::new), tx)
            }
        }
    };

    let outcome = match start {
        Start::Join(mut rx) => loop {
            if let Some(o) = rx.borrow().clone() {
                break o;
            }
            if rx.changed().await.is_err() {
                break Err(ErrorShape::new(
                    ErrorCode::Unavailable,
                    "the original call with this idempotency key was abandoned",
                )
                .with_retryable(true));
            }
        },
        Start::Run(session, tx) => {
            let hub2 = hub.clone();
            let command = params.command.clone();
            let call_params = params.params.clone();
            let node = node_id.clone();
            Detachable::new(async move {
                // Never leave the key stuck in flight, whatever ends this future.
                let mut in_flight = InFlightKey {
                    hub: hub2.clone(),
                    key: Some(idem_key),
                };
                let (outcome, reached) = match session {
                    Some(session) => {
                        forward(&hub2, &session, &command, call_params, timeout_ms, &key).await
                    }
                    None => queued(&hub2, &node, &command, call_params, deadline, &key).await,
                };
                access.finish(&hub2, &outcome, reached);
                if let Some(key) = in_flight.key.take() {
                    hub2.invokes.remember(key, fingerprint, outcome.clone());
                }
                let _ = tx.send(Some(outcome.clone()));
                outcome
            })
            .await
        }
    };
    done(outcome)
}

/// A call's future, polled in the caller's task (no hand-off to another task on the hot path)
/// and handed to a task of its own only if the caller goes away first (a cancel, a dropped
/// connection), so the call still finishes and its outcome is remembered for a retry with the
/// same key.
struct Detachable {
    call: Option<Pin<Box<dyn Future<Output = Outcome> + Send>>>,
}

impl Detachable {
    fn new(call: impl Future<Output = Outcome> + Send + 'static) -> Self {
        Self {
            call: Some(Box::pin(call)),
        }
    }
}

impl Future for Detachable {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let Some(call) = self.call.as_mut() else {
            return Poll::Ready(Err(ErrorShape::new(
                ErrorCode::Internal,
                "an invoke was polled after it finished",
            )));
        };
        let outcome = std::task::ready!(call.as_mut().poll(cx));
        self.call = None;
        Poll::Ready(outcome)
    }
}

impl Drop for Detachable {
    fn drop(&mut self) {
        if let Some(call) = self.call.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // Finishes on its own; its outcome is remembered and published to joiners.
            runtime.spawn(call);
        }
    }
}

/// A key marked in flight; forgotten if its call ends without an outcome (a panic, a runtime
/// shutting down), so later calls with the key run instead of joining nothing.
struct InFlightKey {
    hub: Arc<Hub>,
    key: Option<(DeviceId, String)>,
}

impl Drop for InFlightKey {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            lock(&self.hub.invokes.idem).forget(&key);
        }
    }
}

/// How a call proceeds once its idempotency key is looked up.
enum Start {
    /// An identical call is in flight: wait for its outcome.
    Join(watch::Receiver<Option<Outcome>>),
    /// A new call: the node's session (none while it is offline and the call may wait for
    /// it) and the channel to publish the outcome on.
    Run(Option<Box<NodeSession>>, watch::Sender<Option<Outcome>>),
}

/// The gates a new call must pass: the node is connected, it advertised the command, and host
/// policy allows it. Nothing reaches the node otherwise.
fn admit_call(hub: &Hub, node_id: &DeviceId, command: &str) -> Result<NodeSession, ErrorShape> {
    let Some(session) = hub.node(node_id) else {
        return Err(ErrorShape::new(
            ErrorCode::NodeNotConnected,
            format!("node {} is not connected", node_id.short()),
        )
        .with_details(json!({"nodeId": node_id}))
        .with_retryable(true));
    };
    if !session.commands.iter().any(|c| c == command) {
        return Err(ErrorShape::new(
            ErrorCode::CommandNotAllowed,
            format!(
                "node {:?} does not offer {:?}",
                session.display_name, command
            ),
        )
        .with_details(json!({"reason": Reason::NotAdvertised, "command": command,
                             "available": session.commands})));
    }
    if !hub.config.commands.allows(command) {
        return Err(ErrorShape::new(
            ErrorCode::CommandNotAllowed,
            format!(
                "host policy does not allow {:?}; add it to [gateway.nodes] allow_commands in perch.toml",
                command
            ),
        )
        .with_details(json!({"reason": Reason::HostPolicy, "command": command})));
    }

    Ok(session)
}

/// The gates for a node that is offline now: the commands it advertised when last connected,
/// host policy, and room in its queue.
fn admit_offline(hub: &Hub, record: &DeviceRecord, command: &str) -> Result<(), ErrorShape> {
    if record.role != Role::Node || record.status != DeviceStatus::Paired {
        return Err(ErrorShape::new(
            ErrorCode::NodeNotConnected,
            format!("node {} is not connected", record.device_id.short()),
        ));
    }
    if !record.commands.iter().any(|c| c == command) {
        return Err(ErrorShape::new(
            ErrorCode::CommandNotAllowed,
            format!("node {:?} does not offer {command:?}", record.display_name),
        )
        .with_details(json!({"reason": Reason::NotAdvertised, "command": command,
                             "available": record.commands})));
    }
    if !hub.config.commands.allows(command) {
        return Err(ErrorShape::new(
            ErrorCode::CommandNotAllowed,
            format!(
                "host policy does not allow {command:?}; add it to [gateway.nodes] allow_commands in perch.toml"
            ),
        )
        .with_details(json!({"reason": Reason::HostPolicy, "command": command})));
    }
    let mut queued = lock(&hub.invokes.queued);
    let n = queued.entry(record.device_id.clone()).or_default();
    if *n >= hub.config.max_queued_invokes {
        return Err(ErrorShape::new(
            ErrorCode::NodeNotConnected,
            format!(
                "node {} is not connected and {} calls already wait for it",
                record.device_id.short(),
                *n
            ),
        )
        .with_details(json!({"nodeId": record.device_id, "queueFull": true, "waiting": *n}))
        .with_retryable(true));
    }
    *n += 1;
    Ok(())
}

/// Waits for an offline node until the deadline, then forwards with the time that is left;
/// also says whether the call was sent to the node.
async fn queued(
    hub: &Arc<Hub>,
    node_id: &DeviceId,
    command: &str,
    params: Option<Value>,
    deadline: tokio::time::Instant,
    idempotency_key: &str,
) -> (Outcome, bool) {
    let session = hub.wait_for_node(node_id, deadline).await;
    {
        let mut queued = lock(&hub.invokes.queued);
        if let Some(n) = queued.get_mut(node_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                queued.remove(node_id);
            }
        }
    }
    let Some(_) = session else {
        let e = ErrorShape::new(
            ErrorCode::NodeNotConnected,
            format!(
                "node {} did not come back before the deadline ({command})",
                node_id.short()
            ),
        )
        .with_details(json!({"nodeId": node_id, "command": command, "queued": true}))
        .with_retryable(true);
        return (Err(e), false);
    };
    // It came back: the live gates apply (it may advertise other commands now).
    let session = match admit_call(hub, node_id, command) {
        Ok(s) => s,
        Err(e) => return (Err(e), false),
    };
    let left = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .as_millis()
        .max(1) as u64;
    forward(hub, &session, command, params, left, idempotency_key).await
}

fn reused_key() -> ErrorShape {
    ErrorShape::new(
        ErrorCode::InvalidRequest,
        "idempotencyKey was already used for a different command or params",
    )
}

/// Sends the call to the node and waits for its answer; also says whether it was sent (a
/// node gone before the request was queued to it never saw the call).
async fn forward(
    hub: &Arc<Hub>,
    session: &NodeSession,
    command: &str,
    params: Option<Value>,
    timeout_ms: u64,
    idempotency_key: &str,
) -> (Outcome, bool) {
    let invoke_id = match random_b64(12) {
        Ok(id) => id,
        Err(e) => {
            return (
                Err(ErrorShape::new(ErrorCode::Internal, e.to_string())),
                false,
            );
        }
    };
    let (tx, rx) = oneshot::channel();
    lock(&hub.invokes.pending).insert(
        invoke_id.clone(),
        Pending {
            node_id: session.node_id.clone(),
            conn_id: session.conn_id,
            command: command.to_string(),
            tx,
        },
    );
    let request = InvokeRequest {
        id: invoke_id.clone(),
        node_id: session.node_id.to_string(),
        command: command.to_string(),
        params_json: params.as_ref().map(Value::to_string),
        timeout_ms,
        idempotency_key: Some(idempotency_key.to_string()),
    };
    let not_connected = || {
        ErrorShape::new(
            ErrorCode::NodeNotConnected,
            format!("node {} is not connected", session.node_id.short()),
        )
        .with_retryable(true)
    };
    if !session.out.event(events::NODE_INVOKE_REQUEST, &request) {
        lock(&hub.invokes.pending).remove(&invoke_id);
        return (Err(not_connected()), false);
    }
    // The node may have gone between the lookup and the queueing; its pending entries were
    // then already failed or will never be answered, so check once more.
    if session.out.is_closed() {
        lock(&hub.invokes.pending).remove(&invoke_id);
        return (Err(not_connected()), false);
    }
    let outcome = match tokio::time::timeout(Duration::from_millis(timeout_ms), rx).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Err(not_connected()),
        Err(_) => {
            lock(&hub.invokes.pending).remove(&invoke_id);
            session.out.event(
                events::NODE_INVOKE_CANCEL,
                &InvokeCancel {
                    invoke_id,
                    node_id: session.node_id.to_string(),
                },
            );
            Err(ErrorShape::new(
                ErrorCode::Timeout,
                format!("node did not answer {command} within {timeout_ms} ms"),
            )
            .with_details(json!({"timeoutMs": timeout_ms, "command": command}))
            .with_retryable(true))
        }
    };
    (outcome, true)
}

/// A call on its way into a node's access record: who asked, what, and since when.
struct AccessStart {
    node_id: DeviceId,
    command: String,
    requester: Requester,
    at_ms: i64,
    started: Instant,
}

impl AccessStart {
    /// Records the call's outcome; `reached` says whether it was sent to the node.
    fn finish(self, hub: &Hub, outcome: &Outcome, reached: bool) {
        let outcome = crate::access::outcome_of(outcome, reached);
        hub.access.record(NewAccess {
            device_id: self.node_id,
            at_ms: self.at_ms,
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            command: self.command,
            requester: self.requester,
            outcome,
        });
    }

    /// Records a call the gates refused before it reached the node.
    fn refused(self, hub: &Hub, e: &ErrorShape) {
        self.finish(hub, &Err(e.clone()), false);
    }
}
