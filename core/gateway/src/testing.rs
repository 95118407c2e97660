//! Test support (feature `test-support`): a raw protocol client for end-to-end tests that
//! need to send frames no well-behaved client would, against a gateway started by a test.
//! Tests may panic on a broken host here; that is what they check.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use perch_protocol::DeviceIdentity;
use perch_protocol::frame::Frame;
use perch_protocol::identity::SignedConnectV3;
use perch_protocol::{handshake, verification};

/// Longest wait for any one frame.
pub const WAIT: Duration = Duration::from_secs(10);

/// A host a test talks to: where it listens and the operator token.
pub trait Target {
    /// The WebSocket URL.
    fn url(&self) -> String;
    /// The operator token.
    fn token(&self) -> &str;
}

pub struct Raw {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub nonce: String,
    /// The host's public key as its first challenge proved it.
    pub host_key: String,
    pub next: u64,
    /// The first challenge as it came.
    pub challenge: Value,
    /// The nonce sent in the upgrade URL, if any.
    pub client_nonce: Option<String>,
    /// The secret behind `client_nonce` when it is a pairing commitment.
    pub pairing_nonce: Option<String>,
}

pub enum Got {
    Frame(Frame),
    Closed(Option<u16>),
}

impl Raw {
    /// Opens a socket and reads the challenge.
    pub async fn open(host: &impl Target) -> Raw {
        Self::open_url(&host.url(), None, None).await
    }

    /// Opens a socket as a Perch node does: a fresh pairing nonce for `id`, its commitment sent
    /// as the client nonce.
    pub async fn open_committed(host: &impl Target, id: &DeviceIdentity) -> Raw {
        let p = verification::new_pairing_nonce().unwrap();
        let c = verification::pairing_commitment(&id.public_key_bytes(), &p);
        let url = handshake::url_with_client_nonce(&host.url(), &c);
        Self::open_url(&url, Some(c), Some(p)).await
    }

    /// Opens a socket with a client nonce that is no commitment (as operator clients send).
    pub async fn open_with_client_nonce(host: &impl Target, client_nonce: &str) -> Raw {
        let url = handshake::url_with_client_nonce(&host.url(), client_nonce);
        Self::open_url(&url, Some(client_nonce.to_string()), None).await
    }

    async fn open_url(
        url: &str,
        client_nonce: Option<String>,
        pairing_nonce: Option<String>,
    ) -> Raw {
        let (ws, _) = connect_async(url).await.unwrap();
        let mut r = Raw {
            ws,
            nonce: String::new(),
            host_key: String::new(),
            next: 0,
            challenge: Value::Null,
            client_nonce,
            pairing_nonce,
        };
        let ev = r.event("connect.challenge").await;
        r.nonce = ev["nonce"].as_str().unwrap().to_string();
        r.host_key = ev["host"]["publicKey"].as_str().unwrap().to_string();
        r.challenge = ev;
        r
    }

    /// Node connect params for this socket's current challenge, revealing the pairing nonce
    /// when the socket made a commitment.
    pub fn node_params(
        &self,
        id: &DeviceIdentity,
        token: Option<&str>,
        commands: &[&str],
    ) -> Value {
        let mut v = node_connect_params(id, &self.nonce, now_ms(), token, commands);
        if let Some(p) = &self.pairing_nonce {
            v["device"]["pairingNonce"] = json!(p);
        }
        v
    }

    /// The code the device shows for this socket's current challenge.
    pub fn verification_code(&self, id: &DeviceIdentity) -> String {
        verification::verification_code(
            &self.host_key,
            &id.public_key_b64(),
            self.pairing_nonce.as_deref().unwrap(),
            &self.nonce,
        )
        .unwrap()
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn next(&mut self) -> Got {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for the host");
            match msg {
                None => return Got::Closed(None),
                Some(Err(_)) => return Got::Closed(None),
                Some(Ok(Message::Text(t))) => return Got::Frame(Frame::parse(t.as_str()).unwrap()),
                Some(Ok(Message::Close(c))) => return Got::Closed(c.map(|c| u16::from(c.code))),
                Some(Ok(_)) => {}
            }
        }
    }

    /// Waits for the named event, skipping others.
    pub async fn event(&mut self, name: &str) -> Value {
        loop {
            match self.next().await {
                Got::Frame(Frame::Event(e)) if e.event == name => {
                    return e.payload.unwrap_or(Value::Null);
                }
                Got::Frame(_) => {}
                Got::Closed(c) => panic!("closed ({c:?}) while waiting for {name}"),
            }
        }
    }

    /// Waits for the response to `id`: Ok(payload) or Err(error JSON).
    pub async fn response(&mut self, id: &str) -> Result<Value, Value> {
        loop {
            match self.next().await {
                Got::Frame(Frame::Res(r)) if r.id.as_str() == id => {
                    return r
                        .result
                        .map(|p| p.unwrap_or(Value::Null))
                        .map_err(|e| serde_json::to_value(e).unwrap());
                }
                Got::Frame(_) => {}
                Got::Closed(c) => panic!("closed ({c:?}) while waiting for response {id}"),
            }
        }
    }

    /// Reads until the socket closes; returns the close code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Got::Closed(c) = self.next().await {
                return c;
            }
        }
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next += 1;
        let id = format!("t{}", self.next);
        self.send(json!({"type": "req", "id": id, "method": method, "params": params}))
            .await;
        self.response(&id).await
    }
}

pub fn operator_connect_params(token: &str) -> Value {
    json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "test", "version": "0", "platform": "linux", "mode": "test"},
        "role": "operator",
        "auth": {"token": token}
    })
}

pub async fn operator(host: &impl Target) -> Raw {
    let mut r = Raw::open(host).await;
    let p = operator_connect_params(host.token());
    r.request("connect", p).await.expect("operator connect");
    r
}

/// Connect params for a node, signed over the v3 payload.
pub fn node_connect_params(
    id: &DeviceIdentity,
    nonce: &str,
    signed_at: i64,
    token: Option<&str>,
    commands: &[&str],
) -> Value {
    let payload = SignedConnectV3 {
        device_id: id.device_id().as_str(),
        client_id: "test-node",
        client_mode: "node",
        role: "node",
        scopes: &[],
        signed_at_ms: signed_at,
        token: token.unwrap_or(""),
        nonce,
        platform: Some("linux"),
        device_family: None,
    }
    .payload();
    let mut v = json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "test-node", "displayName": "Test Node", "version": "0",
                   "platform": "linux", "mode": "node"},
        "role": "node",
        "commands": commands,
        "device": {"id": id.device_id().as_str(), "publicKey": id.public_key_b64(),
                   "signature": id.sign_b64(&payload), "signedAt": signed_at, "nonce": nonce}
    });
    if let Some(t) = token {
        v["auth"] = json!({"deviceToken": t});
    }
    v
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Pairs a node through the whole flow on one connection and returns it ready, with its token.
pub async fn paired_node(
    host: &impl Target,
    id: &DeviceIdentity,
    commands: &[&str],
) -> (Raw, String) {
    let mut op = operator(host).await;
    let mut n = Raw::open(host).await;
    let nonce = n.nonce.clone();
    let err = n
        .request(
            "connect",
            node_connect_params(id, &nonce, now_ms(), None, commands),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "NOT_PAIRED");
    let request_id = err["details"]["requestId"].as_str().unwrap().to_string();
    op.request("device.pair.approve", json!({"requestId": request_id}))
        .await
        .unwrap();
    let resolved = n.event("device.pair.resolved").await;
    assert_eq!(resolved["decision"], "approved");
    let ch = n.event("connect.challenge").await;
    let nonce = ch["nonce"].as_str().unwrap().to_string();
    let hello = n
        .request(
            "connect",
            node_connect_params(id, &nonce, now_ms(), None, commands),
        )
        .await
        .unwrap();
    let token = hello["auth"]["deviceToken"].as_str().unwrap().to_string();
    (n, token)
}
