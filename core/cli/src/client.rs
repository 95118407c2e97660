//! The operator side of the gateway protocol, as the CLI uses it: connect with the operator
//! token, send requests, wait for their responses.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use perch_protocol::ErrorShape;
use perch_protocol::frame::{Frame, Request, RequestId};
use perch_protocol::handshake::{
    self, CHALLENGE_EVENT, CONNECT_METHOD, Challenge, ClientInfo, ConnectParams, HelloBinding,
    HelloOk, Role,
};

/// How long to wait for the host to greet us.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed request: either the host answered with a structured error, or the transport broke.
#[derive(Debug)]
pub enum CallError {
    /// The host's structured answer.
    Host(ErrorShape),
    /// Anything else.
    Transport(anyhow::Error),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Host(e) => write!(f, "{}: {}", e.code, e.message),
            CallError::Transport(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for CallError {}

/// An authenticated operator connection.
pub struct OperatorClient {
    ws: Ws,
    next_id: u64,
}

impl OperatorClient {
    /// Connects, checks that the host proves the key `host_fingerprint` (the host of the data
    /// directory the token came from), and only then authenticates with the operator token.
    pub async fn connect(
        url: &str,
        token: &str,
        host_fingerprint: &str,
    ) -> Result<Self, CallError> {
        let client_nonce = handshake::new_client_nonce()
            .map_err(|e| CallError::Transport(anyhow!("cannot make a connection nonce: {e}")))?;
        let pin = perch_tls::HostPin::Fingerprint(host_fingerprint.to_string());
        let dialed = tokio::time::timeout(
            CONNECT_TIMEOUT,
            perch_tls::dial_host(url, &client_nonce, pin),
        )
        .await
        .map_err(|_| CallError::Transport(anyhow!("timed out connecting to {url}")))?
        .map_err(|e| match e {
            perch_tls::DialError::Ws(e) => CallError::Transport(anyhow!(
                "cannot reach the Perch host at {url}: {e} (is `perch serve` running?)"
            )),
            e => CallError::Transport(anyhow!(
                "{e}: the host at {url} is not the Perch host whose data directory the operator token came from, so no token was sent"
            )),
        })?;
        let mut ws = dialed.socket;
        let challenge: Challenge = loop {
            let frame = next_frame(&mut ws, CONNECT_TIMEOUT)
                .await
                .map_err(CallError::Transport)?;
            if let Frame::Event(e) = frame
                && e.event == CHALLENGE_EVENT
            {
                break serde_json::from_value(e.payload.unwrap_or(Value::Null))
                    .map_err(|e| CallError::Transport(anyhow!("bad challenge from host: {e}")))?;
            }
        };
        challenge.verify_host(host_fingerprint, &client_nonce).map_err(|e| {
            CallError::Transport(anyhow!(
                "{e}: the host at {url} is not the Perch host whose data directory the operator token came from, so no token was sent"
            ))
        })?;
        let params = ConnectParams::operator(
            ClientInfo {
                id: "perch-cli".into(),
                display_name: None,
                version: env!("CARGO_PKG_VERSION").into(),
                platform: std::env::consts::OS.into(),
                device_family: None,
                model_identifier: None,
                mode: perch_protocol::handshake::client_mode::CLI.into(),
                instance_id: None,
            },
            token,
        );
        let v = serde_json::to_value(&params).map_err(|e| CallError::Transport(e.into()))?;
        let mut next_id = 0;
        let payload = call_on(
            &mut ws,
            &mut next_id,
            CONNECT_METHOD,
            Some(v),
            CONNECT_TIMEOUT,
            &mut |_| {},
        )
        .await?;
        let hello: HelloOk = serde_json::from_value(payload)
            .map_err(|e| CallError::Transport(anyhow!("bad hello-ok from host: {e}")))?;
        let host_id = challenge
            .host
            .as_ref()
            .map(|p| p.host_id.as_str())
            .unwrap_or("");
        HelloBinding {
            host_id,
            nonce: &challenge.nonce,
            client_nonce: &client_nonce,
            role: Role::Operator,
            device_id: "",
            conn_id: &hello.server.conn_id,
        }
        .verify(&challenge, &hello)
        .map_err(|e| CallError::Transport(anyhow!("{e}: the connection to {url} was dropped")))?;
        Ok(Self { ws, next_id })
    }

    /// Sends a request, hands every event that arrives meanwhile to `on_event`, and waits for
    /// the response.
    pub async fn call_streaming(
        &mut self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
        on_event: &mut dyn FnMut(&perch_protocol::frame::EventFrame),
    ) -> Result<Value, CallError> {
        call_on(
            &mut self.ws,
            &mut self.next_id,
            method,
            params,
            timeout,
            on_event,
        )
        .await
    }

    /// Sends a request and waits for its response.
    pub async fn call(
        &mut self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        call_on(
            &mut self.ws,
            &mut self.next_id,
            method,
            params,
            timeout,
            &mut |_| {},
        )
        .await
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

type Ws = perch_tls::HostSocket;

async fn call_on(
    ws: &mut Ws,
    next_id: &mut u64,
    method: &str,
    params: Option<Value>,
    timeout: Duration,
    on_event: &mut dyn FnMut(&perch_protocol::frame::EventFrame),
) -> Result<Value, CallError> {
    *next_id += 1;
    let id = RequestId::new(format!("cli-{next_id}"));
    let frame = Frame::Req(Request {
        id: id.clone(),
        method: method.to_string(),
        params,
    });
    ws.send(Message::Text(frame.to_text().into()))
        .await
        .map_err(|e| CallError::Transport(anyhow!("connection to host lost: {e}")))?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = next_frame(ws, left).await.map_err(CallError::Transport)?;
        match frame {
            Frame::Res(r) if r.id == id => {
                return r
                    .result
                    .map(|p| p.unwrap_or(Value::Null))
                    .map_err(CallError::Host);
            }
            Frame::Event(e) if e.event == perch_protocol::events::CONNECTION_CLOSING => {
                if let Some(Ok(c)) = e
                    .payload
                    .map(serde_json::from_value::<perch_protocol::events::ConnectionClosing>)
                {
                    return Err(CallError::Host(c.error));
                }
            }
            Frame::Event(e) => on_event(&e),
            _ => {}
        }
    }
}

async fn next_frame(ws: &mut Ws, timeout: Duration) -> Result<Frame> {
    loop {
        let msg = tokio::time::timeout(timeout, ws.next())
            .await
            .map_err(|_| anyhow!("the host did not answer in time"))?;
        match msg {
            None => bail!("the host closed the connection"),
            Some(Err(e)) => return Err(anyhow!("connection to host failed: {e}")),
            Some(Ok(Message::Text(t))) => {
                return Frame::parse(t.as_str()).context("the host sent a malformed frame");
            }
            Some(Ok(Message::Close(c))) => {
                bail!(
                    "the host closed the connection{}",
                    c.map(|c| format!(": {}", c.reason)).unwrap_or_default()
                )
            }
            Some(Ok(_)) => {}
        }
    }
}
