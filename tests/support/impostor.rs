//! Fake hosts: a WebSocket server at the address a client dials that greets like a Perch host
//! (with a challenge recorded from the real one, or signed by another key), optionally over
//! TLS with a certificate of its own key, then says whatever its script says and reports every
//! frame the client sends. The client under test must give it nothing.

use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedSender;
use tokio_rustls::rustls::ServerConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

use perch_protocol::DeviceIdentity;
use perch_protocol::handshake::{CHALLENGE_EVENT, HostProof, client_nonce_from_query};
use perch_tls::{HostCertificate, HostPin};

/// Why a fake host could not be set up (never why a client refused it: that is the test).
#[derive(Debug, thiserror::Error)]
pub enum ImpostorError {
    /// The socket or a file.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Dialling the real host to record its challenge.
    #[error("cannot reach the real host: {0}")]
    Dial(#[from] perch_tls::DialError),
    /// The real host's socket misbehaved while recording.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The real host's first frame was no challenge.
    #[error("the host's first frame was no connect.challenge: {0}")]
    NoChallenge(String),
    /// A certificate for the impostor's own key could not be made.
    #[error("cannot make the impostor's certificate: {0}")]
    Certificate(String),
}

/// Something a fake host observed, in order, per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A TCP connection arrived: the client came to the impostor's address.
    Accepted,
    /// The TLS handshake did not complete (the client refused the certificate, or spoke
    /// plain text): nothing was read.
    TlsFailed(String),
    /// The WebSocket upgrade completed; the client nonce its URL carried.
    Upgraded {
        /// `clientNonce` from the upgrade URL, if any.
        client_nonce: Option<String>,
    },
    /// A text frame from the client: what must not contain a secret, a `connect` or an answer.
    Frame(String),
    /// The client closed or the socket ended.
    Closed,
}

impl Heard {
    /// One JSON line, as the `perch-impostor` binary logs it.
    pub fn to_line(&self) -> String {
        match self {
            Heard::Accepted => json!({"kind": "accepted"}),
            Heard::TlsFailed(why) => json!({"kind": "tlsFailed", "why": why}),
            Heard::Upgraded { client_nonce } => {
                json!({"kind": "upgraded", "clientNonce": client_nonce})
            }
            Heard::Frame(text) => json!({"kind": "frame", "text": text}),
            Heard::Closed => json!({"kind": "closed"}),
        }
        .to_string()
    }

    /// Parses a line written by [`Heard::to_line`]; `None` for anything else.
    pub fn from_line(line: &str) -> Option<Heard> {
        let v: Value = serde_json::from_str(line).ok()?;
        Some(match v["kind"].as_str()? {
            "accepted" => Heard::Accepted,
            "tlsFailed" => Heard::TlsFailed(v["why"].as_str().unwrap_or("").to_string()),
            "upgraded" => Heard::Upgraded {
                client_nonce: v["clientNonce"].as_str().map(String::from),
            },
            "frame" => Heard::Frame(v["text"].as_str()?.to_string()),
            "closed" => Heard::Closed,
            _ => return None,
        })
    }
}

/// What a fake host says on every connection, whatever the client does.
#[derive(Debug, Clone)]
pub struct Script {
    /// The `connect.challenge` payload it greets with.
    pub challenge: Value,
    /// Frames it sends right after the challenge, without waiting for `connect`.
    pub then: Vec<Value>,
    /// The JSON it answers a plain HTTP request with (`/healthz` copied from the real host);
    /// `None` closes such requests unanswered.
    pub healthz: Option<Value>,
    /// A private key (base64url seed) to sign a fresh challenge with on every connection, over
    /// the client's own nonce, instead of `challenge`: a host that really holds that key. The
    /// positive control of an attack (with the real key the secret does arrive).
    pub signer: Option<String>,
}

impl Script {
    /// Greets with `challenge` and nothing else.
    pub fn greet(challenge: Value) -> Script {
        Script {
            challenge,
            then: Vec::new(),
            healthz: None,
            signer: None,
        }
    }

    /// Signs a fresh challenge with the key whose base64url seed is `private_key` on every
    /// connection (bound to the client's nonce), instead of a fixed challenge.
    pub fn signing(private_key: &str) -> Script {
        Script {
            signer: Some(private_key.to_string()),
            ..Script::greet(Value::Null)
        }
    }

    /// Also answers plain HTTP requests with `body` (what the real host's `/healthz` says).
    pub fn with_healthz(mut self, body: Value) -> Script {
        self.healthz = Some(body);
        self
    }

    /// A replay aimed at a node: the recorded `challenge`, then a forged `hello-ok` and a
    /// `node.invoke.request` for `location.get` addressed to `node_id`, so any answer the node
    /// gave would carry its coordinates to the impostor.
    pub fn replay_to_node(challenge: Value, node_id: &str) -> Script {
        let host_id = challenge["host"]["hostId"].clone();
        Script {
            challenge,
            then: vec![
                json!({"type": "res", "id": "1", "ok": true, "payload": {
                    "type": "hello-ok", "protocol": 4,
                    "server": {"version": "0", "connId": "c-impostor", "hostId": host_id},
                    "features": {"methods": [], "events": []},
                    "snapshot": {}, "auth": {"deviceToken": "forged-token", "role": "node", "scopes": []},
                    "policy": {"maxPayload": 1048576, "maxBufferedBytes": 1048576, "tickIntervalMs": 30000}
                }}),
                json!({"type": "event", "event": "node.invoke.request", "payload": {
                    "id": "impostor-invoke-1", "nodeId": node_id, "command": "location.get",
                    "timeoutMs": 10000
                }}),
            ],
            healthz: None,
            signer: None,
        }
    }
}

/// A challenge payload signed by `key` (an impostor's own key) over `client_nonce` (which it
/// can only guess), with a fresh nonce and time.
pub fn challenge_signed_by(key: &DeviceIdentity, client_nonce: Option<&str>) -> Value {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let proof = HostProof::sign(key, "impostor-nonce-1", ts, client_nonce);
    json!({"nonce": "impostor-nonce-1", "ts": ts, "host": proof})
}

/// A rustls server config with a Perch-shaped certificate issued by a fresh key that is not
/// the real host's: what an impostor on the network can present.
pub fn tls_of_another_key() -> Result<Arc<ServerConfig>, ImpostorError> {
    let key = DeviceIdentity::generate().map_err(|e| ImpostorError::Certificate(e.to_string()))?;
    HostCertificate::issue(&key)
        .and_then(|c| c.server_config())
        .map_err(|e| ImpostorError::Certificate(e.to_string()))
}

/// Connects to the real host at `url` as a client with `client_nonce` and returns the
/// challenge payload it sent (its proof bound to that nonce): the recording an impostor
/// replays. Over `wss://` the host must prove `pin`.
pub async fn record_challenge(
    url: &str,
    client_nonce: &str,
    pin: HostPin,
) -> Result<Value, ImpostorError> {
    let mut dialed = perch_tls::dial_host(url, client_nonce, pin).await?;
    while let Some(msg) = dialed.socket.next().await {
        if let Message::Text(t) = msg? {
            let v: Value = serde_json::from_str(t.as_str())
                .map_err(|_| ImpostorError::NoChallenge(t.to_string()))?;
            if v["event"] != CHALLENGE_EVENT {
                return Err(ImpostorError::NoChallenge(t.to_string()));
            }
            let _ = dialed.socket.close(None).await;
            return Ok(v["payload"].clone());
        }
    }
    Err(ImpostorError::NoChallenge("the socket closed".into()))
}

/// Serves `script` on every connection `listener` accepts (over TLS when `tls` is given) and
/// reports what it hears on `heard`, until the listener fails or nobody listens to `heard`.
pub async fn serve(
    listener: TcpListener,
    script: Script,
    tls: Option<Arc<ServerConfig>>,
    heard: UnboundedSender<Heard>,
) {
    while let Ok((tcp, _)) = listener.accept().await {
        if heard.send(Heard::Accepted).is_err() {
            return;
        }
        let (script, heard, tls) = (script.clone(), heard.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => match plain_http(&tcp).await {
                    Some(true) => answer_http(tcp, script.healthz.as_ref()).await,
                    Some(false) => converse(tcp, &script, &heard).await,
                    None => {}
                },
                Some(config) => match tokio_rustls::TlsAcceptor::from(config).accept(tcp).await {
                    Ok(stream) => converse(stream, &script, &heard).await,
                    Err(e) => {
                        let _ = heard.send(Heard::TlsFailed(e.to_string()));
                    }
                },
            }
        });
    }
}

/// Whether the request waiting on `tcp` is plain HTTP (`Some(true)`) or a WebSocket upgrade
/// (`Some(false)`), read with `peek` so the upgrade still sees the whole request; `None` if the
/// client sent no complete head within 16 KiB.
async fn plain_http(tcp: &TcpStream) -> Option<bool> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tcp.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        if head.contains("\r\n\r\n") {
            return Some(!head.contains("upgrade: websocket"));
        }
        if n == buf.len() {
            return None;
        }
        // More of the head is on its way.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Answers one plain HTTP request with `body` as JSON (or closes without an answer).
async fn answer_http(mut tcp: TcpStream, body: Option<&Value>) {
    let mut head = vec![0u8; 16 * 1024];
    let _ = tcp.read(&mut head).await;
    let Some(body) = body else {
        return;
    };
    let body = body.to_string();
    let res = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(res.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

/// One connection: upgrade, say the script, report every frame until it ends.
// The upgrade callback's error type is tungstenite's (an HTTP response), not ours.
#[allow(clippy::result_large_err)]
async fn converse<S>(stream: S, script: &Script, heard: &UnboundedSender<Heard>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let nonce: Arc<Mutex<Option<String>>> = Arc::default();
    let seen = nonce.clone();
    let callback = move |req: &Request, res: Response| {
        let cn = client_nonce_from_query(req.uri().query()).ok().flatten();
        *seen.lock().unwrap_or_else(PoisonError::into_inner) = cn;
        Ok(res)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        let _ = heard.send(Heard::Closed);
        return;
    };
    let client_nonce = nonce.lock().unwrap_or_else(PoisonError::into_inner).take();
    let challenge = match script
        .signer
        .as_deref()
        .map(DeviceIdentity::from_private_b64)
    {
        Some(Ok(key)) => challenge_signed_by(&key, client_nonce.as_deref()),
        _ => script.challenge.clone(),
    };
    let _ = heard.send(Heard::Upgraded { client_nonce });
    let greeting = json!({"type": "event", "event": CHALLENGE_EVENT, "payload": challenge});
    let mut out = vec![greeting];
    out.extend(script.then.iter().cloned());
    for frame in out {
        if ws.send(Message::text(frame.to_string())).await.is_err() {
            break;
        }
    }
    while let Some(Ok(m)) = ws.next().await {
        match m {
            Message::Text(t) => {
                let _ = heard.send(Heard::Frame(t.to_string()));
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    let _ = heard.send(Heard::Closed);
}

/// Every text frame the clients sent, in order: what a client must never send an impostor.
pub fn frames(heard: &[Heard]) -> Vec<String> {
    heard
        .iter()
        .filter_map(|h| match h {
            Heard::Frame(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}
