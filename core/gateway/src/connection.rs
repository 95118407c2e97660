//! One WebSocket connection from upgrade to close: the handshake, pairing waits, request
//! dispatch by role, keepalive, and cleanup.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use perch_protocol::events::{
    self, NODE_EVENTS, OPERATOR_EVENTS, PairRequested, PairResolution, PairResolved, Tick,
};
use perch_protocol::frame::StateVersion;
use perch_protocol::frame::{Frame, FrameError, Request, RequestId, Response};
use perch_protocol::handshake::{
    CHALLENGE_EVENT, CONNECT_METHOD, Challenge, ClientInfo, ConnectParams, Features, HelloAuth,
    HelloBinding, HelloOk, HelloOkTag, HostProof, Policy, Role, ServerInfo, Snapshot,
};
use perch_protocol::methods::PairDecision;
use perch_protocol::presence::PresenceEntry;
use perch_protocol::scopes::Scopes;
use perch_protocol::verification;
use perch_protocol::{
    DeviceId, ErrorCode, ErrorShape, PRE_HANDSHAKE_MAX_FRAME, Reason, close_code,
};
use perch_store::bootstrap::BootstrapError;
use perch_store::{DeviceRecord, Filed, NewPairingRequest, PendingCaps, Requester};

use crate::dispatch::{self, Handler, NodeCall, OperatorCall};
use crate::frame_limit::{SharedLimit, TooLarge};
use crate::handshake::{MAX_LABEL, check_protocol, clean_label, verify_device};
use crate::hub::{ConnId, Control, Hub, NodeSession, Outbound, Outbox, now_ms};
use crate::operator::store_error;
use crate::pairing::{self, Admission, MAX_CODE_SETS, TokenCheck};
use crate::phase::{Phase, PhaseEvent};
use crate::secrets::{hash_token, new_token, random_b64, secrets_equal};
use crate::selector::{Candidate, distinct_name};
use crate::ws_upgrade::Socket;

/// Messages queued for one client before it counts as too slow and is closed.
const OUTBOX_CAPACITY: usize = 1024;
/// How long to let the writer flush a final close before dropping the socket.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

struct Conn {
    hub: Arc<Hub>,
    id: ConnId,
    out: Outbox,
    phase: Phase,
    remote: SocketAddr,
    /// Requests running in their own task, by id, so a `cancel` can stop them.
    running: HashMap<RequestId, AbortHandle>,
    /// The token minted when the user approved this connection's pairing request.
    approved_token: Option<String>,
    /// This connection's presence entry, once admitted.
    presence_key: Option<String>,
    /// The message size limit the socket's reader enforces; raised once admitted.
    limit: SharedLimit,
    /// The client's own nonce from the upgrade URL, signed into every challenge of this
    /// connection so a recorded proof is worthless on another one.
    client_nonce: Option<String>,
    /// Whether the pending request this connection filed shows the code derived on it.
    code_current: bool,
    /// The client's label (display name or id), for the access record of what it runs.
    client_label: String,
}

/// Serves one upgraded socket until it closes.
pub async fn serve_socket(
    hub: Arc<Hub>,
    socket: Socket,
    remote: SocketAddr,
    limit: SharedLimit,
    client_nonce: Option<String>,
) {
    let id = hub.next_conn_id();
    let (mut sink, mut stream) = socket.split();
    let slow = CancellationToken::new();
    let (out, mut out_rx) = Outbox::new(OUTBOX_CAPACITY, slow.clone());
    let (control_tx, mut control_rx) = mpsc::unbounded_channel();
    hub.register_conn(id, out.clone(), control_tx);

    let mut writer = tokio::spawn(async move {
        let mut seq: u64 = 0;
        while let Some(msg) = out_rx.recv().await {
            let sent = match msg {
                Outbound::Frame(mut f) => {
                    if let Frame::Event(e) = &mut f {
                        seq += 1;
                        e.seq = Some(seq);
                    }
                    sink.send(Message::Text(Utf8Bytes::from(f.to_text()))).await
                }
                Outbound::Ping => sink.send(Message::Ping(Default::default())).await,
                Outbound::Close(code, reason) => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code: CloseCode::from(code),
                            reason: Utf8Bytes::from(reason),
                        })))
                        .await;
                    break;
                }
            };
            if sent.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let nonce = match random_b64(32) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "cannot make a challenge nonce");
            hub.unregister_conn(id);
            writer.abort();
            return;
        }
    };
    let mut conn = Conn {
        hub: hub.clone(),
        id,
        out: out.clone(),
        phase: Phase::AwaitingConnect {
            nonce: nonce.clone(),
        },
        remote,
        running: HashMap::new(),
        approved_token: None,
        presence_key: None,
        limit,
        client_nonce,
        code_current: false,
        client_label: String::new(),
    };
    tracing::debug!(conn = %id, %remote, "connection opened");
    conn.send_challenge(&nonce);

    let tick_every = Duration::from_millis(hub.config.tick_interval_ms);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + tick_every, tick_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_inbound = Instant::now();
    // Until `connect` succeeds (or the device waits for the user's approval) the client has
    // this long; nothing it sends extends it.
    let handshake_time = Duration::from_millis(hub.config.limits.handshake_timeout_ms);
    let mut handshake_deadline = Some(tokio::time::Instant::now() + handshake_time);

    loop {
        tokio::select! {
            _ = hub.shutdown.cancelled() => break,
            _ = slow.cancelled() => {
                tracing::warn!(conn = %id, "client reads too slowly; closing it");
                writer.abort();
                break;
            }
            _ = sleep_until_some(handshake_deadline) => {
                tracing::debug!(conn = %id, %remote, "no connect before the handshake deadline; closing");
                let error = ErrorShape::new(
                    ErrorCode::Timeout,
                    format!("connect was not completed within {} ms", handshake_time.as_millis()),
                )
                .with_retryable(true);
                conn.close(error, true, close_code::HANDSHAKE_TIMEOUT);
                break;
            }
            msg = stream.next() => {
                let msg = match msg {
                    Some(Ok(msg)) => msg,
                    Some(Err(WsError::Io(e))) if TooLarge::from_io(&e).is_some() => {
                        if let Some(too) = TooLarge::from_io(&e) {
                            conn.refuse_oversized(too);
                        }
                        break;
                    }
                    _ => break,
                };
                last_inbound = Instant::now();
                if let Some(key) = &conn.presence_key {
                    hub.presence_seen(key);
                }
                let flow = match msg {
                    Message::Text(t) => conn.on_text(t.as_str()).await,
                    Message::Binary(_) => conn.refuse_frame(
                        None,
                        ErrorShape::new(ErrorCode::InvalidRequest, "binary frames are not supported; send JSON text frames"),
                    ),
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Flow::Continue,
                    Message::Close(_) => Flow::Close,
                };
                if flow == Flow::Close { break }
                handshake_deadline = conn.handshake_deadline(handshake_deadline, handshake_time);
            }
            Some(ctrl) = control_rx.recv() => {
                if conn.on_control(ctrl) == Flow::Close { break }
                handshake_deadline = conn.handshake_deadline(handshake_deadline, handshake_time);
            }
            _ = ticker.tick() => {
                if last_inbound.elapsed() > 2 * tick_every {
                    tracing::info!(conn = %id, "peer silent for two tick intervals; closing");
                    let error = ErrorShape::new(
                        ErrorCode::Timeout,
                        "nothing received for two tick intervals",
                    )
                    .with_retryable(true);
                    out.event(events::CONNECTION_CLOSING, &Hub::closing_event(&error, true));
                    out.send(Outbound::Close(close_code::TICK_TIMEOUT, "tick timeout".into()));
                    break;
                }
                if conn.phase.is_ready() {
                    out.event(events::TICK, &Tick { ts: now_ms() });
                }
                out.send(Outbound::Ping);
            }
        }
    }

    conn.finish().await;
    drop(conn);
    drop(out);
    if tokio::time::timeout(CLOSE_FLUSH, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    tracing::debug!(conn = %id, "connection closed");
}

/// Sleeps until the deadline, or forever without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Conn {
    /// The handshake deadline after a step: kept while waiting for `connect`, none while the
    /// user decides or once admitted, and a fresh one when approval asks for `connect` again.
    fn handshake_deadline(
        &self,
        current: Option<tokio::time::Instant>,
        window: Duration,
    ) -> Option<tokio::time::Instant> {
        match (&self.phase, current) {
            (Phase::AwaitingConnect { .. }, Some(d)) => Some(d),
            (Phase::AwaitingConnect { .. }, None) => Some(tokio::time::Instant::now() + window),
            _ => None,
        }
    }

    /// The reader saw a message over the limit in force: says so and closes with 1009 (the
    /// stream cannot be resynchronised past a payload it refused to read).
    fn refuse_oversized(&mut self, too: TooLarge) {
        let error = ErrorShape::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "frame of at least {} bytes exceeds the limit of {} bytes",
                too.size, too.limit
            ),
        )
        .with_details(json!({"limit": too.limit, "size": too.size}));
        self.fail(None, error, close_code::TOO_BIG);
    }

    fn send_challenge(&self, nonce: &str) {
        let ts = now_ms();
        self.out.event(
            CHALLENGE_EVENT,
            &Challenge {
                nonce: nonce.to_string(),
                ts,
                host: Some(HostProof::sign(
                    &self.hub.host_key,
                    nonce,
                    ts,
                    self.client_nonce.as_deref(),
                )),
            },
        );
    }

    fn transition(&mut self, event: PhaseEvent) {
        let phase = std::mem::replace(&mut self.phase, Phase::Closed);
        self.phase = match phase.next(event) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(conn = %self.id, error = %e, "connection state bug; closing");
                Phase::Closed
            }
        };
    }

    fn reply(&self, id: RequestId, result: Result<Value, ErrorShape>) {
        let res = match result {
            Ok(v) => Response::ok(id, v),
            Err(e) => Response::err(id, e),
        };
        self.out.frame(Frame::Res(res));
    }

    /// Reports an error on a frame that could not be answered as a request.
    fn report(&self, id: Option<RequestId>, error: ErrorShape) {
        match id {
            Some(id) => self.reply(id, Err(error)),
            None => {
                self.out.event("protocol.error", &json!({ "error": error }));
            }
        }
    }

    /// Answers a bad frame: before the handshake the connection is closed, after it the
    /// client is told and the connection stays up.
    fn refuse_frame(&mut self, id: Option<RequestId>, error: ErrorShape) -> Flow {
        if self.phase.is_ready() {
            self.report(id, error);
            Flow::Continue
        } else {
            let code = if error.code == ErrorCode::PayloadTooLarge {
                close_code::TOO_BIG
            } else {
                close_code::POLICY
            };
            self.fail(id, error, code)
        }
    }

    /// Sends the error, says why the connection closes, and closes it.
    fn fail(&mut self, id: Option<RequestId>, error: ErrorShape, code: u16) -> Flow {
        tracing::info!(conn = %self.id, remote = %self.remote, code = %error.code, "refusing connection: {}", error.message);
        self.report(id, error.clone());
        let reconnect = error.retryable.unwrap_or(false);
        self.close(error, reconnect, code)
    }

    /// Refuses a request because the host itself failed (no randomness); nothing was changed.
    fn internal(&mut self, id: RequestId, e: impl std::fmt::Display) -> Flow {
        let error = ErrorShape::new(ErrorCode::Internal, e.to_string()).with_retryable(true);
        self.fail(Some(id), error, close_code::GOING_AWAY)
    }

    fn close(&mut self, error: ErrorShape, reconnect: bool, code: u16) -> Flow {
        self.out.event(
            events::CONNECTION_CLOSING,
            &Hub::closing_event(&error, reconnect),
        );
        let mut reason = error.code.to_string();
        reason.truncate(120);
        self.out.send(Outbound::Close(code, reason));
        self.transition(PhaseEvent::Close);
        Flow::Close
    }

    async fn on_text(&mut self, text: &str) -> Flow {
        let limit = if self.phase.is_ready() {
            self.hub.config.max_payload as usize
        } else {
            PRE_HANDSHAKE_MAX_FRAME
        };
        if text.len() > limit {
            let error = ErrorShape::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "frame of {} bytes exceeds the limit of {limit} bytes",
                    text.len()
                ),
            )
            .with_details(json!({"limit": limit, "size": text.len()}));
            return self.refuse_frame(None, error);
        }
        let frame = match Frame::parse(text) {
            Ok(f) => f,
            Err(e) => {
                let id = FrameError::request_id_hint(text);
                return self.refuse_frame(id, e.to_error_shape());
            }
        };
        match (&self.phase, frame) {
            (Phase::AwaitingConnect { .. }, Frame::Req(r)) if r.method == CONNECT_METHOD => {
                self.on_connect(r).await
            }
            (Phase::AwaitingConnect { .. }, other) => {
                let id = frame_id(&other);
                self.fail(
                    id,
                    ErrorShape::new(
                        ErrorCode::InvalidRequest,
                        "the first frame must be a connect request answering connect.challenge",
                    ),
                    close_code::POLICY,
                )
            }
            (
                Phase::AwaitingApproval {
                    request_id,
                    device_id,
                },
                Frame::Req(r),
            ) => {
                let e = pairing::not_paired(request_id, device_id.as_str(), self.code_current);
                self.reply(r.id, Err(e));
                Flow::Continue
            }
            (Phase::AwaitingApproval { .. }, _) => Flow::Continue,
            (
                Phase::Ready {
                    role,
                    scopes,
                    device_id,
                },
                frame,
            ) => {
                let (role, scopes, device_id) = (*role, *scopes, device_id.clone());
                self.on_ready_frame(role, scopes, device_id, frame);
                Flow::Continue
            }
            (Phase::Closed, _) => Flow::Close,
        }
    }

    fn on_ready_frame(
        &mut self,
        role: Role,
        scopes: Scopes,
        device_id: Option<DeviceId>,
        frame: Frame,
    ) {
        match frame {
            Frame::Req(r) => self.on_request(role, scopes, device_id, r),
            // The host sends no requests, so a response from the client answers nothing.
            Frame::Res(_) => {}
            Frame::Event(_) => self.report(
                None,
                ErrorShape::new(ErrorCode::InvalidRequest, "clients do not send events"),
            ),
            Frame::Cancel(c) => {
                // A cancel for a request that already finished (or never ran) has nothing to stop.
                if let Some(task) = self.running.remove(&c.id)
                    && !task.is_finished()
                {
                    task.abort();
                    self.reply(
                        c.id,
                        Err(ErrorShape::new(
                            ErrorCode::Cancelled,
                            "cancelled by the client",
                        )),
                    );
                }
            }
        }
    }

    fn on_request(&mut self, role: Role, scopes: Scopes, device_id: Option<DeviceId>, r: Request) {
        if r.method == CONNECT_METHOD {
            self.reply(
                r.id,
                Err(ErrorShape::new(
                    ErrorCode::InvalidRequest,
                    "already connected",
                )),
            );
            return;
        }
        let method = match dispatch::lookup(&r.method, role, scopes) {
            Ok(m) => m,
            Err(refusal) => {
                self.reply(r.id, Err(refusal.to_shape(&r.method, role)));
                return;
            }
        };
        match (method.handler, device_id) {
            // Node methods are quick and need no task.
            (Handler::Node { run }, Some(node)) => {
                let result = run(NodeCall {
                    hub: &self.hub,
                    node: &node,
                    params: r.params,
                });
                self.reply(r.id, result);
            }
            (Handler::NodeTask { run }, Some(node)) => {
                self.running.retain(|_, h| !h.is_finished());
                let call = dispatch::NodeTaskCall {
                    hub: self.hub.clone(),
                    node,
                    params: r.params,
                };
                let out = self.out.clone();
                let id = r.id.clone();
                let task = tokio::spawn(async move {
                    let res = match run(call).await {
                        Ok(v) => Response::ok(r.id, v),
                        Err(e) => Response::err(r.id, e),
                    };
                    out.frame(Frame::Res(res));
                });
                self.running.insert(id, task.abort_handle());
            }
            (Handler::Node { .. } | Handler::NodeTask { .. }, None) => self.reply(
                r.id,
                Err(ErrorShape::new(
                    ErrorCode::Unauthorized,
                    "no device identity",
                )),
            ),
            (Handler::Operator { run, .. }, device_id) => {
                self.running.retain(|_, h| !h.is_finished());
                let call = OperatorCall {
                    hub: self.hub.clone(),
                    caller: self.out.clone(),
                    params: r.params,
                    operator: Requester::Operator {
                        device_id,
                        label: self.client_label.clone(),
                    },
                };
                let out = self.out.clone();
                let id = r.id.clone();
                let task = tokio::spawn(async move {
                    let res = match run(call).await {
                        Ok(v) => Response::ok(r.id, v),
                        Err(e) => Response::err(r.id, e),
                    };
                    out.frame(Frame::Res(res));
                });
                self.running.insert(id, task.abort_handle());
            }
        }
    }

    async fn on_connect(&mut self, r: Request) -> Flow {
        let Phase::AwaitingConnect { nonce } = &self.phase else {
            return Flow::Continue;
        };
        let nonce = nonce.clone();
        let params: ConnectParams =
            match serde_json::from_value(r.params.clone().unwrap_or(Value::Null)) {
                Ok(p) => p,
                Err(e) => {
                    return self.fail(
                        Some(r.id),
                        ErrorShape::new(
                            ErrorCode::InvalidRequest,
                            format!("invalid connect params: {e}"),
                        ),
                        close_code::POLICY,
                    );
                }
            };
        let protocol = match check_protocol(&params) {
            Ok(p) => p,
            Err(e) => return self.fail(Some(r.id), e, close_code::PROTOCOL_ERROR),
        };
        match params.role {
            Role::Operator => self.connect_operator(r.id, params, protocol, &nonce),
            Role::Node => self.connect_node(r.id, params, protocol, &nonce).await,
        }
    }

    fn connect_operator(
        &mut self,
        id: RequestId,
        params: ConnectParams,
        protocol: u32,
        nonce: &str,
    ) -> Flow {
        let presented = params.auth.as_ref().and_then(|a| a.token.as_deref());
        let ok = presented.is_some_and(|t| secrets_equal(t, &self.hub.operator_token));
        if !ok {
            let e = ErrorShape::new(
                ErrorCode::Unauthorized,
                "operator token missing or wrong; the CLI reads it from operator.token in the host's data directory",
            )
            .with_details(json!({"reason": if presented.is_some() { Reason::TokenMismatch } else { Reason::TokenMissing }}));
            return self.fail(Some(id), e, close_code::POLICY);
        }
        let device_id = match &params.device {
            Some(_) => match verify_device(&params, nonce, now_ms()) {
                Ok(d) => Some(d),
                Err(e) => return self.fail(Some(id), e, close_code::POLICY),
            },
            None => None,
        };
        self.admit(
            id,
            (Role::Operator, Scopes::grant(&params.scopes)),
            device_id,
            protocol,
            None,
            &params.client,
        );
        tracing::info!(conn = %self.id, remote = %self.remote, client = %params.client.id, "operator connected");
        Flow::Continue
    }

    /// The node's name, made distinct from every other device's
    /// ([`crate::selector::distinct_name`]); a device keeping the name it has costs no lookup.
    async fn distinct_display_name(
        &self,
        device_id: &DeviceId,
        record: Option<&DeviceRecord>,
        wanted: String,
    ) -> String {
        if record.is_some_and(|r| r.display_name == wanted) {
            return wanted;
        }
        let others = match self.hub.store.devices().list().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the node's name against the others");
                return wanted;
            }
        };
        let candidates: Vec<Candidate> = others
            .into_iter()
            .filter(|d| &d.device_id != device_id)
            .map(|d| Candidate {
                id: d.device_id.to_string(),
                name: d.display_name,
            })
            .collect();
        let name = distinct_name(&wanted, device_id.as_str(), &candidates, MAX_LABEL);
        if name != wanted {
            tracing::info!(device = %device_id.short(), asked = %wanted, shown = %name, "node renamed: its name was taken");
        }
        name
    }

    /// The pairing verification code for this connection: `None` when the client made no
    /// commitment (no client nonce or no pairing nonce, as from an OpenClaw node); refused when
    /// the revealed pairing nonce does not open the commitment it sent.
    fn pairing_code(
        &self,
        params: &ConnectParams,
        nonce: &str,
    ) -> Result<Option<String>, ErrorShape> {
        let (Some(commitment), Some(dev)) = (&self.client_nonce, &params.device) else {
            return Ok(None);
        };
        let Some(pairing_nonce) = dev.pairing_nonce.as_deref() else {
            return Ok(None);
        };
        let refused = || {
            ErrorShape::new(
                ErrorCode::InvalidRequest,
                "device.pairingNonce does not open the commitment sent as clientNonce",
            )
            .with_details(json!({"reason": Reason::PairingCommitment}))
        };
        match verification::opens_commitment(commitment, &dev.public_key, pairing_nonce) {
            Ok(true) => {}
            Ok(false) | Err(_) => return Err(refused()),
        }
        verification::verification_code(
            &self.hub.host_key.public_key_b64(),
            &dev.public_key,
            pairing_nonce,
            nonce,
        )
        .map(Some)
        .map_err(|_| refused())
    }

    async fn connect_node(
        &mut self,
        id: RequestId,
        params: ConnectParams,
        protocol: u32,
        nonce: &str,
    ) -> Flow {
        let now = now_ms();
        let device_id = match verify_device(&params, nonce, now) {
            Ok(d) => d,
            Err(e) => return self.fail(Some(id), e, close_code::POLICY),
        };
        let code = match self.pairing_code(&params, nonce) {
            Ok(c) => c,
            Err(e) => return self.fail(Some(id), e, close_code::POLICY),
        };
        let store = &self.hub.store;
        let record = match store.devices().get(&device_id).await {
            Ok(r) => r,
            Err(e) => return self.fail(Some(id), store_error(e), close_code::GOING_AWAY),
        };
        let presented = params.auth.as_ref().and_then(|a| a.device_token.clone());
        let token_check = match &presented {
            None => TokenCheck::Absent,
            Some(t) => match store
                .tokens()
                .matches(&device_id, Role::Node, &hash_token(t))
                .await
            {
                Ok(true) => TokenCheck::Matches,
                Ok(false) => TokenCheck::Mismatch,
                Err(e) => return self.fail(Some(id), store_error(e), close_code::GOING_AWAY),
            },
        };
        let display_name = clean_label(
            params
                .client
                .display_name
                .as_deref()
                .unwrap_or(&params.client.id),
            "node",
        );
        let display_name = self
            .distinct_display_name(&device_id, record.as_ref(), display_name)
            .await;
        let platform = clean_label(&params.client.platform, "unknown");
        let bootstrap = params.auth.as_ref().and_then(|a| a.bootstrap_token.clone());
        if record.is_none()
            && let Some(b) = bootstrap
        {
            return self
                .redeem_setup_code(
                    id,
                    &params,
                    device_id,
                    &b,
                    display_name,
                    platform,
                    protocol,
                    now,
                )
                .await;
        }
        match pairing::admit(record.as_ref(), token_check) {
            Admission::Refuse(e) => self.fail(Some(id), e, close_code::POLICY),
            Admission::RequestPairing => {
                let dev = params
                    .device
                    .as_ref()
                    .map(|d| d.public_key.clone())
                    .unwrap_or_default();
                let request_id = new_request_id();
                let req = NewPairingRequest {
                    device_id: device_id.clone(),
                    public_key: dev.clone(),
                    role: Role::Node,
                    display_name: display_name.clone(),
                    platform: platform.clone(),
                    device_family: params.client.device_family.clone(),
                    remote_addr: Some(self.remote.ip().to_string()),
                };
                let limits = &self.hub.config.limits;
                let caps = PendingCaps {
                    total: limits.max_pending_pairings,
                    per_source: limits.max_pending_pairings_per_source,
                };
                let filed = match store
                    .pairing()
                    .file_pending(req, &request_id, now, caps)
                    .await
                {
                    Ok(v) => v,
                    Err(e) => {
                        return self.fail(Some(id), store_error(e), close_code::GOING_AWAY);
                    }
                };
                let (rec, created) = match filed {
                    Filed::Existing(rec) => (rec, false),
                    Filed::Created { record, expired } => {
                        self.hub.expire_pairings(&expired);
                        (record, true)
                    }
                    Filed::SourceFull { pending } => {
                        let e = pairing::source_full(pending);
                        return self.fail(Some(id), e, close_code::POLICY);
                    }
                };
                let code_current = match &code {
                    Some(c) => match store
                        .pairing()
                        .set_code(&rec.request_id, c, MAX_CODE_SETS)
                        .await
                    {
                        Ok(current) => current,
                        Err(e) => {
                            return self.fail(Some(id), store_error(e), close_code::GOING_AWAY);
                        }
                    },
                    None => false,
                };
                if !created && code.is_some() && !code_current {
                    tracing::warn!(request_id = %rec.request_id, device = %device_id.short(), "pairing request's code already changed {MAX_CODE_SETS} times; keeping the earlier one");
                }
                // A new request, or a new code for one (the device reconnected): operators show it.
                if created || code_current {
                    tracing::info!(request_id = %rec.request_id, device = %device_id.short(), name = %display_name, "new pairing request");
                    let verification_code = if code_current { code } else { None };
                    self.hub.broadcast_operators(
                        events::DEVICE_PAIR_REQUESTED,
                        &PairRequested {
                            request_id: rec.request_id.clone(),
                            device_id: device_id.to_string(),
                            verification_code,
                            public_key: dev,
                            display_name,
                            platform,
                            role: Role::Node,
                            remote_addr: Some(self.remote.ip().to_string()),
                            ts: now,
                        },
                    );
                }
                self.hub.add_waiter(&rec.request_id, self.id);
                self.code_current = code_current;
                let e = pairing::not_paired(&rec.request_id, device_id.as_str(), code_current);
                self.reply(id, Err(e));
                self.transition(PhaseEvent::PairingRequested {
                    request_id: rec.request_id,
                    device_id,
                });
                Flow::Continue
            }
            Admission::Admit { mint_token } => {
                let token = if mint_token {
                    match self.approved_token.take() {
                        Some(t) => Some(t),
                        None => {
                            let t = match new_token() {
                                Ok(t) => t,
                                Err(e) => return self.internal(id, e),
                            };
                            if let Err(e) = store
                                .tokens()
                                .issue(&device_id, Role::Node, &hash_token(&t), now)
                                .await
                            {
                                return self.fail(Some(id), store_error(e), close_code::GOING_AWAY);
                            }
                            Some(t)
                        }
                    }
                } else {
                    None
                };
                self.admit_node(
                    id,
                    &params,
                    device_id,
                    display_name,
                    platform,
                    protocol,
                    token,
                    now,
                )
                .await
            }
        }
    }

    /// Makes an admitted node reachable and answers `hello-ok`.
    #[allow(clippy::too_many_arguments)]
    async fn admit_node(
        &mut self,
        id: RequestId,
        params: &ConnectParams,
        device_id: DeviceId,
        display_name: String,
        platform: String,
        protocol: u32,
        token: Option<String>,
        now: i64,
    ) -> Flow {
        // A command line reading this node's own records (client mode `cli`) is not the node:
        // it keeps the node's last-known commands and never replaces its live connection.
        let reader_only = params.client.mode == perch_protocol::handshake::client_mode::CLI;
        let commands = (!reader_only).then_some(&params.commands[..]);
        if let Err(e) = self
            .hub
            .store
            .devices()
            .touch_seen(&device_id, now, commands)
            .await
        {
            tracing::warn!(error = %e, "could not record last seen");
        }
        let session = NodeSession {
            conn_id: self.id,
            node_id: device_id.clone(),
            display_name: display_name.clone(),
            platform,
            device_family: params.client.device_family.clone(),
            client_version: format!("{} {}", params.client.id, params.client.version),
            commands: params.commands.clone(),
            caps: params.caps.clone(),
            permissions: params.permissions.clone(),
            connected_since_ms: now,
            remote_addr: self.remote.to_string(),
            out: self.out.clone(),
            reports: Default::default(),
        };
        tracing::info!(conn = %self.id, node = %device_id.short(), name = %display_name, "node connected");
        // hello-ok first: a call that waited for this node must reach it after the handshake.
        self.admit(
            id,
            (Role::Node, Scopes::NONE),
            Some(device_id),
            protocol,
            token,
            &params.client,
        );
        if !reader_only {
            self.hub.add_node(session);
        }
        Flow::Continue
    }

    /// Pairs an unknown device that presents a setup code's bootstrap token, without asking the
    /// user: the token is single use and short-lived, and minting it was the user's approval.
    #[allow(clippy::too_many_arguments)]
    async fn redeem_setup_code(
        &mut self,
        id: RequestId,
        params: &ConnectParams,
        device_id: DeviceId,
        bootstrap: &str,
        display_name: String,
        platform: String,
        protocol: u32,
        now: i64,
    ) -> Flow {
        let token = match new_token() {
            Ok(t) => t,
            Err(e) => return self.internal(id, e),
        };
        let req = NewPairingRequest {
            device_id: device_id.clone(),
            public_key: params
                .device
                .as_ref()
                .map(|d| d.public_key.clone())
                .unwrap_or_default(),
            role: Role::Node,
            display_name: display_name.clone(),
            platform: platform.clone(),
            device_family: params.client.device_family.clone(),
            remote_addr: Some(self.remote.ip().to_string()),
        };
        let redeemed = self
            .hub
            .store
            .bootstrap()
            .redeem(&hash_token(bootstrap), req, &hash_token(&token), now)
            .await;
        let invalid = |reason: Reason, message: &str| {
            ErrorShape::new(ErrorCode::BootstrapTokenInvalid, message)
                .with_details(json!({"reason": reason}))
                .with_retryable(false)
        };
        let redemption = match redeemed {
            Ok(r) => r,
            Err(BootstrapError::Unknown) => {
                let e = invalid(
                    Reason::Unknown,
                    "this setup code is not known to the host (mistyped, or from another host)",
                );
                return self.fail(Some(id), e, close_code::POLICY);
            }
            Err(BootstrapError::Used { .. }) => {
                let e = invalid(
                    Reason::Used,
                    "this setup code was already used; each code pairs one device",
                );
                return self.fail(Some(id), e, close_code::POLICY);
            }
            Err(BootstrapError::Expired { .. }) => {
                let e = invalid(
                    Reason::Expired,
                    "this setup code has expired (codes last 10 minutes)",
                );
                return self.fail(Some(id), e, close_code::POLICY);
            }
            Err(BootstrapError::DeviceRevoked) => {
                let e = pairing::admit_revoked_error(&device_id);
                return self.fail(Some(id), e, close_code::POLICY);
            }
            Err(BootstrapError::RoleNotAllowed { .. }) => {
                let e = ErrorShape::new(ErrorCode::Forbidden, "a setup code pairs nodes only");
                return self.fail(Some(id), e, close_code::POLICY);
            }
            Err(BootstrapError::Store(e)) => {
                return self.fail(Some(id), store_error(e), close_code::GOING_AWAY);
            }
        };
        tracing::info!(device = %device_id.short(), name = %display_name, "paired with a setup code");
        for request_id in redemption.approved_requests {
            self.hub
                .resolve_waiters(&request_id, PairDecision::Approved, None);
            self.hub.broadcast_operators(
                events::DEVICE_PAIR_RESOLVED,
                &PairResolved {
                    request_id,
                    device_id: device_id.to_string(),
                    decision: PairResolution::Approved,
                    ts: now,
                },
            );
        }
        self.admit_node(
            id,
            params,
            device_id,
            display_name,
            platform,
            protocol,
            Some(token),
            now,
        )
        .await
    }

    fn admit(
        &mut self,
        id: RequestId,
        (role, scopes): (Role, Scopes),
        device_id: Option<DeviceId>,
        protocol: u32,
        token: Option<String>,
        client: &ClientInfo,
    ) {
        self.client_label = clean_label(
            client.display_name.as_deref().unwrap_or(&client.id),
            "client",
        );
        let entry = self.presence_entry(role, device_id.as_ref(), client);
        let cfg = &self.hub.config;
        let issued_at_ms = token.as_ref().map(|_| now_ms());
        let conn_id = self.id.to_string();
        let binding = match (&self.client_nonce, &self.phase) {
            (Some(client_nonce), Phase::AwaitingConnect { nonce }) => Some(
                HelloBinding {
                    host_id: &self.hub.host_id,
                    nonce,
                    client_nonce,
                    role,
                    device_id: device_id.as_ref().map(DeviceId::as_str).unwrap_or(""),
                    conn_id: &conn_id,
                }
                .sign(&self.hub.host_key),
            ),
            _ => None,
        };
        let mut hello = HelloOk {
            kind: HelloOkTag::HelloOk,
            protocol,
            server: ServerInfo {
                version: env!("CARGO_PKG_VERSION").to_string(),
                conn_id,
                host_id: self.hub.host_id.clone(),
                name: cfg.name.clone(),
                binding,
            },
            features: Features {
                methods: dispatch::advertised(role, scopes),
                events: match role {
                    Role::Operator => OPERATOR_EVENTS,
                    Role::Node => NODE_EVENTS,
                }
                .iter()
                .map(|s| s.to_string())
                .collect(),
            },
            snapshot: Snapshot {
                uptime_ms: self.hub.started.elapsed().as_millis() as u64,
                presence: Vec::new(),
                state_version: StateVersion::default(),
                health: Default::default(),
            },
            auth: HelloAuth {
                role,
                scopes: scopes.names(),
                device_token: token,
                issued_at_ms,
            },
            policy: Policy {
                max_payload: cfg.max_payload,
                max_buffered_bytes: cfg.max_buffered_bytes,
                tick_interval_ms: cfg.tick_interval_ms,
            },
        };
        let out = self.out.clone();
        self.limit.store(
            cfg.max_payload as usize + PRE_HANDSHAKE_MAX_FRAME,
            std::sync::atomic::Ordering::Relaxed,
        );
        // Snapshot, hello-ok and the role switch happen under the presence lock, so this client
        // sees every later change as an event and none before its hello-ok.
        self.hub.admit_conn(
            self.id,
            role,
            device_id.clone(),
            entry,
            |presence, version| {
                // Nodes do not learn who else is around; operators do.
                if role == Role::Operator {
                    hello.snapshot.presence = presence;
                }
                hello.snapshot.state_version.presence = version;
                let res = match serde_json::to_value(&hello) {
                    Ok(v) => Response::ok(id, v),
                    Err(e) => {
                        Response::err(id, ErrorShape::new(ErrorCode::Internal, e.to_string()))
                    }
                };
                out.frame(Frame::Res(res));
            },
        );
        self.transition(PhaseEvent::Admitted {
            role,
            scopes,
            device_id,
        });
    }

    /// This connection's presence entry; the CLI's short-lived connections stay out, as they
    /// would only be noise.
    fn presence_entry(
        &mut self,
        role: Role,
        device_id: Option<&DeviceId>,
        client: &ClientInfo,
    ) -> Option<PresenceEntry> {
        if client.mode == perch_protocol::handshake::client_mode::CLI {
            return None;
        }
        let now = now_ms();
        let key = match device_id {
            Some(d) => d.to_string(),
            None => format!("conn:{}", self.id),
        };
        self.presence_key = Some(key.clone());
        Some(PresenceEntry {
            key,
            device_id: device_id.map(|d| d.to_string()),
            display_name: clean_label(
                client.display_name.as_deref().unwrap_or(&client.id),
                "client",
            ),
            platform: clean_label(&client.platform, "unknown"),
            role,
            mode: clean_label(&client.mode, "unknown"),
            connected_since_ms: now,
            last_seen_ms: now,
            last_activity_ms: None,
            remote_addr: Some(self.remote.ip().to_string()),
        })
    }

    fn on_control(&mut self, ctrl: Control) -> Flow {
        match ctrl {
            Control::Close { error, reconnect } => {
                tracing::info!(conn = %self.id, code = %error.code, "closing connection on the host's request");
                self.close(error, reconnect, close_code::POLICY)
            }
            Control::PairResolved {
                request_id,
                decision,
                token,
            } => {
                let (waiting_for, device_id) = match &self.phase {
                    Phase::AwaitingApproval {
                        request_id,
                        device_id,
                    } => (request_id.clone(), device_id.clone()),
                    _ => return Flow::Continue,
                };
                if waiting_for != request_id {
                    return Flow::Continue;
                }
                self.out.event(
                    events::DEVICE_PAIR_RESOLVED,
                    &PairResolved {
                        request_id: request_id.clone(),
                        device_id: device_id.to_string(),
                        decision: decision.into(),
                        ts: now_ms(),
                    },
                );
                match decision {
                    PairDecision::Approved => {
                        let nonce = match random_b64(32) {
                            Ok(n) => n,
                            Err(e) => {
                                return self.close(
                                    ErrorShape::new(ErrorCode::Internal, e.to_string()),
                                    true,
                                    close_code::GOING_AWAY,
                                );
                            }
                        };
                        self.approved_token = token;
                        self.transition(PhaseEvent::Approved {
                            nonce: nonce.clone(),
                        });
                        self.send_challenge(&nonce);
                        Flow::Continue
                    }
                    PairDecision::Rejected => {
                        self.close(pairing::rejected(&request_id), false, close_code::POLICY)
                    }
                }
            }
        }
    }

    /// Cleanup when the connection ends, whatever the reason.
    async fn finish(&mut self) {
        for (_, task) in self.running.drain() {
            task.abort();
        }
        self.hub.unregister_conn(self.id);
        if let Some(key) = self.presence_key.take() {
            self.hub.presence_disconnect(self.id, &key);
        }
        if let Phase::Ready {
            role: Role::Node,
            device_id: Some(dev),
            ..
        } = &self.phase
        {
            self.hub.remove_node(dev, self.id);
            if let Err(e) = self
                .hub
                .store
                .devices()
                .touch_seen(dev, now_ms(), None)
                .await
            {
                tracing::warn!(error = %e, "could not record last seen");
            }
            tracing::info!(conn = %self.id, node = %dev.short(), "node disconnected");
        }
        // A node that disconnects mid-invoke is handled by remove_node; one that was not
        // admitted has nothing in flight.
        if !matches!(self.phase, Phase::Closed) {
            self.transition(PhaseEvent::Close);
        }
    }
}

fn frame_id(f: &Frame) -> Option<RequestId> {
    match f {
        Frame::Req(r) => Some(r.id.clone()),
        Frame::Res(r) => Some(r.id.clone()),
        Frame::Cancel(c) => Some(c.id.clone()),
        Frame::Event(_) => None,
    }
}

/// A short pairing request id that is easy to type and never starts with `-`.
fn new_request_id() -> String {
    let mut b = [0u8; 5];
    if getrandom::fill(&mut b).is_err() {
        // Fall back to the clock; uniqueness is still enforced by the store's key.
        let t = now_ms() as u64;
        b.copy_from_slice(&t.to_be_bytes()[3..8]);
    }
    hex::encode(b)
}
