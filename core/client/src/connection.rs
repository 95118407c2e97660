//! The background task: dial, handshake, serve requests and events on one socket, then back
//! off and dial again. It is the socket's only reader and writer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use perch_protocol::events::{CONNECTION_CLOSING, ConnectionClosing, SHUTDOWN, TICK};
use perch_protocol::frame::{Cancel, EventFrame, RequestId};
use perch_protocol::handshake::{
    self, CHALLENGE_EVENT, CONNECT_METHOD, Challenge, ClientInfo, ConnectParams, HelloBinding,
    HelloOk, Role,
};
use perch_protocol::{DEFAULT_TICK_INTERVAL_MS, ErrorShape, Frame};

use crate::client::ClientConfig;
use crate::error::ClientError;
use crate::state::{ConnEvent, ConnectionState};
use perch_protocol::backoff::Backoff;

type Ws = perch_tls::HostSocket;
type Reply = oneshot::Sender<Result<Value, ClientError>>;

/// How long a polite close waits for the host's close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What handles ask of the task.
pub(crate) enum Command {
    /// Send a request and route its answer to `reply`.
    Call {
        id: String,
        method: String,
        params: Option<Value>,
        reply: Reply,
    },
    /// The caller gave up on `id`: forget it and tell the host.
    Cancel { id: String },
}

/// State the handles and the task both touch.
pub(crate) struct Shared {
    /// Connection attempts made so far.
    pub attempts: AtomicU64,
    /// Ends a backoff or an Unauthorized wait.
    pub wake: Notify,
}

/// How a connection or an attempt ended.
enum End {
    /// The embedder stopped the client (or dropped every handle).
    Stop,
    /// Worth another attempt after a backoff.
    Lost(String),
    /// The host answered `connect` with an error.
    Refused(ErrorShape),
}

/// Runs until stopped: one connection at a time, backoff in between.
pub(crate) async fn run(
    config: ClientConfig,
    mut commands: mpsc::UnboundedReceiver<Command>,
    state: watch::Sender<ConnectionState>,
    events: broadcast::Sender<EventFrame>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let step = |event: ConnEvent| {
        state.send_modify(|s| *s = s.next(event));
    };
    let mut backoff = Backoff::new(config.backoff_base, config.backoff_cap);
    loop {
        step(ConnEvent::Dial);
        shared.attempts.fetch_add(1, Ordering::Relaxed);
        let end = tokio::select! {
            end = connect(&config) => match end {
                Ok((ws, hello)) => {
                    backoff.reset();
                    let tick = Duration::from_millis(match hello.policy.tick_interval_ms {
                        0 => DEFAULT_TICK_INTERVAL_MS,
                        t => t,
                    });
                    tracing::info!(
                        host = %hello.server.name,
                        conn_id = %hello.server.conn_id,
                        "operator connection admitted"
                    );
                    step(ConnEvent::Admitted(Arc::new(hello)));
                    serve(ws, tick, &mut commands, &events, &stop).await
                }
                Err(end) => end,
            },
            _ = stop.cancelled() => End::Stop,
        };
        let delay = backoff.next_delay();
        match end {
            End::Stop => break,
            End::Lost(reason) => {
                tracing::info!(%reason, retry_in_ms = delay.as_millis() as u64, "operator connection lost");
                step(ConnEvent::Lost {
                    reason,
                    retry_in: delay,
                });
            }
            End::Refused(error) => {
                tracing::warn!(code = %error.code, message = %error.message, "the host refused the operator connection");
                step(ConnEvent::Refused {
                    error,
                    retry_in: delay,
                });
            }
        }
        let retrying = state.borrow().will_retry();
        if !wait(
            retrying.then_some(delay),
            &mut commands,
            &state,
            &shared,
            &stop,
        )
        .await
        {
            break;
        }
    }
    step(ConnEvent::Stop);
    // Anything that slipped in after the stop gets a clear answer rather than a hang.
    commands.close();
    while let Ok(cmd) = commands.try_recv() {
        if let Command::Call { reply, .. } = cmd {
            let _ = reply.send(Err(ClientError::Closed));
        }
    }
    tracing::debug!("operator client stopped");
}

/// Waits out a backoff (`Some`) or until woken (`None`), answering requests meanwhile.
/// Returns false when the client must stop.
async fn wait(
    delay: Option<Duration>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    state: &watch::Sender<ConnectionState>,
    shared: &Shared,
    stop: &CancellationToken,
) -> bool {
    let sleep = async {
        match delay {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return true,
            _ = shared.wake.notified() => return true,
            _ = stop.cancelled() => return false,
            cmd = commands.recv() => match cmd {
                None => return false,
                Some(Command::Call { reply, .. }) => {
                    let reason = not_connected_reason(&state.borrow());
                    let _ = reply.send(Err(ClientError::NotConnected { reason }));
                }
                Some(Command::Cancel { .. }) => {}
            },
        }
    }
}

fn not_connected_reason(state: &ConnectionState) -> String {
    match state {
        ConnectionState::Disconnected { reason, .. } | ConnectionState::Unauthorized { reason } => {
            reason.clone()
        }
        other => other.to_string(),
    }
}

/// Dials, reads the challenge, sends `connect`, and reads `hello-ok`.
async fn connect(config: &ClientConfig) -> Result<(Ws, HelloOk), End> {
    let limit = config.connect_timeout;
    let url = config.url.as_str();
    let client_nonce = handshake::new_client_nonce()
        .map_err(|e| End::Lost(format!("cannot make a connection nonce: {e}")))?;
    let pin = perch_tls::HostPin::Fingerprint(config.host_fingerprint.clone());
    let mut ws =
        match tokio::time::timeout(limit, perch_tls::dial_host(url, &client_nonce, pin)).await {
            Ok(Ok(dialed)) => dialed.socket,
            Ok(Err(e @ perch_tls::DialError::Ws(_))) => {
                return Err(End::Lost(format!("cannot connect to {url}: {e}")));
            }
            Ok(Err(e)) => {
                return Err(End::Lost(format!(
                    "{e}: {url} is not the expected Perch host; the operator token was not sent"
                )));
            }
            Err(_) => return Err(End::Lost(format!("connecting to {url} timed out"))),
        };
    // The challenge comes first: the host must prove the expected key before the token goes.
    let challenge: Challenge = loop {
        match next_frame(&mut ws, limit, "the host's challenge").await? {
            Frame::Event(e) if e.event == CHALLENGE_EVENT => {
                break serde_json::from_value(e.payload.unwrap_or(Value::Null))
                    .map_err(|e| End::Lost(format!("the host sent a malformed challenge: {e}")))?;
            }
            _ => {}
        }
    };
    if let Err(e) = challenge.verify_host(&config.host_fingerprint, &client_nonce) {
        close(&mut ws, CloseCode::Normal).await;
        return Err(End::Lost(format!(
            "{e}: {url} is not the expected Perch host; the operator token was not sent"
        )));
    }
    let params = ConnectParams::operator(
        ClientInfo {
            id: config.client_id.clone(),
            display_name: config.display_name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            platform: std::env::consts::OS.into(),
            device_family: None,
            model_identifier: None,
            mode: config.mode.clone(),
            instance_id: None,
        },
        config.token.expose(),
    );
    let params = serde_json::to_value(&params)
        .map_err(|e| End::Lost(format!("cannot encode connect: {e}")))?;
    let id = RequestId::new("connect");
    send(
        &mut ws,
        Frame::req(id.0.clone(), CONNECT_METHOD, Some(params)),
    )
    .await
    .map_err(End::Lost)?;
    loop {
        match next_frame(&mut ws, limit, "hello-ok").await? {
            Frame::Res(r) if r.id == id => {
                return match r.result {
                    Ok(payload) => {
                        let hello: HelloOk = serde_json::from_value(payload.unwrap_or(Value::Null))
                            .map_err(|e| {
                                End::Lost(format!("the host sent a malformed hello-ok: {e}"))
                            })?;
                        let host_id = challenge.host.as_ref().map(|p| p.host_id.as_str());
                        let bound = HelloBinding {
                            host_id: host_id.unwrap_or(""),
                            nonce: &challenge.nonce,
                            client_nonce: &client_nonce,
                            role: Role::Operator,
                            device_id: "",
                            conn_id: &hello.server.conn_id,
                        }
                        .verify(&challenge, &hello);
                        if let Err(e) = bound {
                            close(&mut ws, CloseCode::Normal).await;
                            return Err(End::Lost(format!("{e}: {url} was dropped")));
                        }
                        Ok((ws, hello))
                    }
                    Err(error) => {
                        close(&mut ws, CloseCode::Normal).await;
                        Err(End::Refused(error))
                    }
                };
            }
            _ => {}
        }
    }
}

/// The next frame during the handshake, or why there is none.
async fn next_frame(ws: &mut Ws, limit: Duration, waiting_for: &str) -> Result<Frame, End> {
    let deadline = Instant::now() + limit;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(m) => m,
            Err(_) => {
                return Err(End::Lost(format!(
                    "the host did not send {waiting_for} within {} ms",
                    limit.as_millis()
                )));
            }
        };
        match msg {
            None => return Err(End::Lost("the host closed the connection".into())),
            Some(Err(e)) => return Err(End::Lost(format!("connection failed: {e}"))),
            Some(Ok(Message::Text(t))) => match Frame::parse(t.as_str()) {
                Ok(f) => return Ok(f),
                Err(e) => tracing::debug!(error = %e, "ignoring a malformed frame from the host"),
            },
            Some(Ok(Message::Close(c))) => return Err(End::Lost(close_reason(c.as_ref()))),
            Some(Ok(_)) => {}
        }
    }
}

fn close_reason(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(c) if !c.reason.is_empty() => {
            format!(
                "the host closed the connection ({}: {})",
                u16::from(c.code),
                c.reason
            )
        }
        Some(c) => format!("the host closed the connection ({})", u16::from(c.code)),
        None => "the host closed the connection".into(),
    }
}

async fn send(ws: &mut Ws, frame: Frame) -> Result<(), String> {
    ws.send(Message::Text(frame.to_text().into()))
        .await
        .map_err(|e| format!("cannot write to the host: {e}"))
}

async fn close(ws: &mut Ws, code: CloseCode) {
    let frame = CloseFrame {
        code,
        reason: "".into(),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if ws.close(Some(frame)).await.is_ok() {
            // Drain until the host's close reply, so the close is clean on both sides.
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

/// Serves one admitted connection until it ends.
async fn serve(
    mut ws: Ws,
    tick: Duration,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    events: &broadcast::Sender<EventFrame>,
    stop: &CancellationToken,
) -> End {
    let mut pending: HashMap<String, Reply> = HashMap::new();
    // Why the host said it is closing, reported instead of a bare close.
    let mut closing: Option<String> = None;
    // The host ticks every interval and closes peers silent for two; we ping at the same
    // rate and give up on a host silent for two intervals and a half.
    let silence_limit = tick * 2 + tick / 2;
    let mut last_heard = Instant::now();
    let mut keepalive = tokio::time::interval_at(Instant::now() + tick, tick);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = loop {
        tokio::select! {
            msg = ws.next() => {
                last_heard = Instant::now();
                match msg {
                    None => break End::Lost(closing.take().unwrap_or_else(|| "the host closed the connection".into())),
                    Some(Err(e)) => break End::Lost(closing.take().unwrap_or_else(|| format!("connection failed: {e}"))),
                    Some(Ok(Message::Close(c))) => {
                        break End::Lost(closing.take().unwrap_or_else(|| close_reason(c.as_ref())));
                    }
                    Some(Ok(Message::Text(t))) => match Frame::parse(t.as_str()) {
                        Ok(Frame::Res(r)) => {
                            if let Some(reply) = pending.remove(r.id.as_str()) {
                                let _ = reply.send(r.result.map(|p| p.unwrap_or(Value::Null)).map_err(ClientError::Host));
                            }
                        }
                        Ok(Frame::Event(e)) => {
                            if e.event == CONNECTION_CLOSING {
                                closing = Some(describe_closing(e.payload.as_ref()));
                            } else if e.event == SHUTDOWN {
                                closing = Some(describe_shutdown(e.payload.as_ref()));
                            }
                            if e.event != TICK {
                                // No subscriber is fine: events are for whoever listens.
                                let _ = events.send(e);
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!(error = %e, "ignoring a malformed frame from the host"),
                    },
                    Some(Ok(_)) => {}
                }
            }
            cmd = commands.recv() => match cmd {
                None => {
                    close(&mut ws, CloseCode::Normal).await;
                    break End::Stop;
                }
                Some(Command::Call { id, method, params, reply }) => {
                    match send(&mut ws, Frame::req(id.clone(), method, params)).await {
                        Ok(()) => {
                            pending.insert(id, reply);
                        }
                        Err(reason) => {
                            let _ = reply.send(Err(ClientError::ConnectionLost { reason: reason.clone() }));
                            break End::Lost(reason);
                        }
                    }
                }
                Some(Command::Cancel { id }) => {
                    if pending.remove(&id).is_some() {
                        let cancel = Frame::Cancel(Cancel { id: RequestId::new(id) });
                        if let Err(reason) = send(&mut ws, cancel).await {
                            break End::Lost(reason);
                        }
                    }
                }
            },
            _ = keepalive.tick() => {
                if last_heard.elapsed() > silence_limit {
                    break End::Lost(format!("the host went silent for {} s", last_heard.elapsed().as_secs()));
                }
                if let Err(reason) = ws.send(Message::Ping(Vec::new().into())).await.map_err(|e| format!("cannot write to the host: {e}")) {
                    break End::Lost(reason);
                }
            }
            _ = stop.cancelled() => {
                close(&mut ws, CloseCode::Normal).await;
                break End::Stop;
            }
        }
    };
    let failure = match &end {
        End::Stop => ClientError::Closed,
        End::Lost(reason) => ClientError::ConnectionLost {
            reason: reason.clone(),
        },
        End::Refused(e) => ClientError::ConnectionLost {
            reason: e.message.clone(),
        },
    };
    for (_, reply) in pending.drain() {
        let _ = reply.send(Err(failure.clone()));
    }
    end
}

fn describe_closing(payload: Option<&Value>) -> String {
    match payload.and_then(|p| serde_json::from_value::<ConnectionClosing>(p.clone()).ok()) {
        Some(c) => format!(
            "the host closed the connection: {}: {}",
            c.error.code, c.error.message
        ),
        None => "the host closed the connection".into(),
    }
}

fn describe_shutdown(payload: Option<&Value>) -> String {
    match payload
        .and_then(|p| p.get("reason"))
        .and_then(Value::as_str)
    {
        Some(r) => format!("the host shut down ({r})"),
        None => "the host shut down".into(),
    }
}
