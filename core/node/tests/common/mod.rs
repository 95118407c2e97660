//! A scripted host for the runtime tests: a real WebSocket server on 127.0.0.1 that the test
//! drives frame by frame, playing the gateway side of the protocol.

#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use perch_node::{Capabilities, Node, NodeConfig, NodeError, NodeState};
use perch_protocol::DeviceIdentity;
use perch_protocol::frame::{RequestId, Response};
use perch_protocol::handshake::{
    self, CHALLENGE_EVENT, CONNECT_METHOD, ConnectParams, HelloBinding, HostProof, Role,
};
use perch_protocol::identity::{SignedConnectV3, verify_device_signature};
use perch_protocol::methods::{InvokeResultParams, NODE_INVOKE_RESULT};
use perch_protocol::{ErrorShape, Frame, PROTOCOL_VERSION};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response as HsResponse};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Every wait in these tests is bounded by this, so a bug fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Host {
    listener: TcpListener,
    pub url: String,
}

impl Host {
    pub async fn start() -> Host {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        Host { listener, url }
    }

    /// The next node connection, upgraded to WebSocket.
    pub async fn accept(&self) -> HostConn {
        let (tcp, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("node did not connect in time")
            .unwrap();
        let (nonce_tx, nonce_rx) = std::sync::mpsc::channel();
        // The handshake callback\'s error type is tungstenite\'s, not ours.
        #[allow(clippy::result_large_err)]
        let record = move |req: &Request, res: HsResponse| {
            let q = req.uri().query().map(str::to_string);
            let _ = nonce_tx.send(handshake::client_nonce_from_query(q.as_deref()));
            Ok(res)
        };
        let ws = tokio_tungstenite::accept_hdr_async(tcp, record)
            .await
            .unwrap();
        let client_nonce = nonce_rx
            .recv()
            .unwrap()
            .expect("a well-formed client nonce");
        HostConn {
            ws,
            beacons: Vec::new(),
            client_nonce,
            signed: None,
            device_id: None,
        }
    }

    /// Whether a node connects within `within` (without accepting it for real).
    pub async fn connects_within(&self, within: Duration) -> bool {
        tokio::time::timeout(within, self.listener.accept())
            .await
            .is_ok()
    }
}

pub struct HostConn {
    pub ws: WebSocketStream<TcpStream>,
    /// Params of the `node.event` presence beacons the node sent.
    pub beacons: Vec<Value>,
    /// The client nonce from the node's upgrade URL.
    pub client_nonce: Option<String>,
    /// The key and nonce of the last signed challenge, so hello-ok can be bound as a Perch
    /// host binds it.
    pub signed: Option<(DeviceIdentity, String)>,
    /// The device that sent the last connect.
    pub device_id: Option<String>,
}

impl HostConn {
    pub async fn send(&mut self, frame: Frame) {
        self.ws.send(Message::text(frame.to_text())).await.unwrap();
    }

    pub async fn event(&mut self, name: &str, payload: Value) {
        self.send(Frame::event(name, payload)).await;
    }

    /// A challenge signed with a host key, as a Perch host sends it.
    pub async fn challenge_signed(&mut self, nonce: &str, host: &DeviceIdentity) {
        let cn = self.client_nonce.clone();
        self.signed = Some((
            DeviceIdentity::from_private_b64(&host.private_b64()).unwrap(),
            nonce.to_string(),
        ));
        self.challenge_proved(nonce, host, cn.as_deref()).await;
    }

    /// A challenge whose proof covers `client_nonce` (a replay when it is not this
    /// connection's).
    pub async fn challenge_proved(
        &mut self,
        nonce: &str,
        host: &DeviceIdentity,
        client_nonce: Option<&str>,
    ) {
        let proof = HostProof::sign(host, nonce, 1, client_nonce);
        self.event(
            CHALLENGE_EVENT,
            json!({"nonce": nonce, "ts": 1, "host": serde_json::to_value(proof).unwrap()}),
        )
        .await;
    }

    pub async fn challenge(&mut self, nonce: &str) {
        self.event(CHALLENGE_EVENT, json!({"nonce": nonce, "ts": 1}))
            .await;
    }

    /// The next frame the node sends, presence beacons aside (they are recorded in
    /// `beacons`); panics on close or timeout.
    pub async fn recv(&mut self) -> Frame {
        loop {
            let frame = self.recv_any().await;
            match frame {
                Frame::Req(r) if r.method == "node.event" => {
                    self.beacons.push(r.params.unwrap_or_default());
                }
                other => return other,
            }
        }
    }

    /// The next frame the node sends, whatever it is.
    pub async fn recv_any(&mut self) -> Frame {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("node sent nothing in time")
                .expect("node closed the connection")
                .unwrap();
            match msg {
                Message::Text(t) => return Frame::parse(t.as_str()).unwrap(),
                Message::Close(c) => panic!("node closed the connection: {c:?}"),
                _ => continue,
            }
        }
    }

    /// Reads a `connect` request, checks its shape and verifies its signature over the v3
    /// payload for `nonce`.
    pub async fn recv_connect(&mut self, nonce: &str) -> (RequestId, ConnectParams) {
        let Frame::Req(req) = self.recv().await else {
            panic!("expected a connect request")
        };
        assert_eq!(req.method, CONNECT_METHOD);
        let p: ConnectParams = serde_json::from_value(req.params.unwrap()).unwrap();
        assert_eq!(p.min_protocol, PROTOCOL_VERSION);
        assert_eq!(p.max_protocol, PROTOCOL_VERSION);
        assert_eq!(p.role, Role::Node);
        assert_eq!(p.client.id, "perch-node");
        assert_eq!(p.client.mode, "node");
        assert_eq!(p.client.platform, std::env::consts::OS);
        assert_eq!(p.client.version, env!("CARGO_PKG_VERSION"));
        assert!(p.scopes.is_empty());
        let device = p
            .device
            .as_ref()
            .expect("a node must send its device proof");
        assert_eq!(device.nonce, nonce);
        let token = p
            .auth
            .as_ref()
            .and_then(|a| a.device_token.as_deref())
            .unwrap_or("");
        let payload = SignedConnectV3 {
            device_id: &device.id,
            client_id: "perch-node",
            client_mode: "node",
            role: "node",
            scopes: &[],
            signed_at_ms: device.signed_at,
            token,
            nonce,
            platform: Some(&p.client.platform),
            device_family: p.client.device_family.as_deref(),
        }
        .payload();
        verify_device_signature(&device.id, &device.public_key, &device.signature, &payload)
            .expect("connect signature must verify");
        self.device_id = Some(device.id.clone());
        (req.id, p)
    }

    pub async fn hello_ok(&mut self, id: RequestId, token: Option<&str>) {
        self.hello_ok_with(id, token, 15_000, 25 * 1024 * 1024)
            .await;
    }

    pub async fn hello_ok_with(
        &mut self,
        id: RequestId,
        token: Option<&str>,
        tick_interval_ms: u64,
        max_payload: u64,
    ) {
        let mut auth = json!({"role": "node", "scopes": []});
        if let Some(t) = token {
            auth["deviceToken"] = json!(t);
            auth["issuedAtMs"] = json!(1);
        }
        let mut server = json!({"version": "0.1.0", "connId": "conn-1", "hostId": "host-1", "name": "Test host"});
        if let (Some((key, nonce)), Some(cn)) = (&self.signed, &self.client_nonce) {
            let host_id = perch_protocol::identity::host_id_for(key.device_id().as_str());
            server["hostId"] = json!(host_id);
            server["binding"] = json!(
                HelloBinding {
                    host_id: &host_id,
                    nonce,
                    client_nonce: cn,
                    role: Role::Node,
                    device_id: self.device_id.as_deref().unwrap_or(""),
                    conn_id: "conn-1",
                }
                .sign(key)
            );
        }
        let hello = json!({
            "type": "hello-ok",
            "protocol": PROTOCOL_VERSION,
            "server": server,
            "features": {"methods": ["node.invoke.result"], "events": ["tick"]},
            "snapshot": {"uptimeMs": 1, "presence": []},
            "auth": auth,
            "policy": {"maxPayload": max_payload, "maxBufferedBytes": 1_000_000, "tickIntervalMs": tick_interval_ms}
        });
        self.send(Frame::Res(Response::ok(id, hello))).await;
    }

    pub async fn refuse(&mut self, id: RequestId, error: ErrorShape) {
        self.send(Frame::Res(Response::err(id, error))).await;
    }

    /// Challenge → verified connect → hello-ok; returns the connect params.
    pub async fn handshake(&mut self, nonce: &str, token: Option<&str>) -> ConnectParams {
        self.challenge(nonce).await;
        let (id, p) = self.recv_connect(nonce).await;
        self.hello_ok(id, token).await;
        p
    }

    /// Sends `node.invoke.request`.
    pub async fn invoke(
        &mut self,
        id: &str,
        node_id: &str,
        command: &str,
        params: Option<&str>,
        timeout_ms: u64,
    ) {
        let mut payload =
            json!({"id": id, "nodeId": node_id, "command": command, "timeoutMs": timeout_ms});
        if let Some(p) = params {
            payload["paramsJSON"] = json!(p);
        }
        self.event("node.invoke.request", payload).await;
    }

    /// Reads one `node.invoke.result` request and acknowledges it like the host does.
    pub async fn recv_result(&mut self) -> InvokeResultParams {
        match self.recv().await {
            Frame::Req(req) if req.method == NODE_INVOKE_RESULT => {
                let p: InvokeResultParams = serde_json::from_value(req.params.unwrap()).unwrap();
                self.send(Frame::Res(Response::ok(req.id, json!({"ok": true}))))
                    .await;
                p
            }
            other => panic!("expected node.invoke.result, got {other:?}"),
        }
    }

    /// Waits for the node's close frame (or the end of the stream).
    pub async fn expect_close(&mut self) -> Option<CloseFrame> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("node did not close in time")
            {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Close(c))) => {
                    // Polling once more sends tungstenite's queued close reply.
                    let _ = self.ws.flush().await;
                    return c;
                }
                Some(Ok(Message::Text(t))) => match Frame::parse(t.as_str()) {
                    Ok(Frame::Req(r)) if r.method == "node.event" => {
                        self.beacons.push(r.params.unwrap_or_default());
                    }
                    _ => panic!("unexpected frame before close: {t}"),
                },
                Some(Ok(_)) => {}
            }
        }
    }

    /// Closes from the host side with a code, as the gateway does on policy closes.
    pub async fn close(&mut self, code: u16, reason: &str) {
        let _ = self
            .ws
            .close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            }))
            .await;
    }
}

pub fn test_config(url: &str, data_dir: &Path) -> NodeConfig {
    let mut c = NodeConfig::new(url, "Test node", data_dir);
    c.backoff_base = Duration::from_millis(20);
    c.backoff_cap = Duration::from_millis(200);
    c.handshake_timeout = Duration::from_secs(5);
    c
}

/// A node running on its own task.
pub struct RunningNode {
    pub device_id: String,
    pub state: watch::Receiver<NodeState>,
    pub lifecycle: perch_node::Lifecycle,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), NodeError>>,
}

impl RunningNode {
    pub fn start(config: NodeConfig, caps: Capabilities) -> RunningNode {
        let node = Node::new(config, caps).unwrap();
        let device_id = node.device_id().to_string();
        let state = node.subscribe();
        let lifecycle = node.lifecycle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(node.run(async move {
            let _ = stopped.await;
        }));
        RunningNode {
            device_id,
            state,
            lifecycle,
            stop: Some(stop),
            task,
        }
    }

    pub async fn wait_state(
        &mut self,
        what: &str,
        pred: impl FnMut(&NodeState) -> bool,
    ) -> NodeState {
        let mut rx = self.state.clone();
        let reached =
            tokio::time::timeout(
                WAIT,
                async move { rx.wait_for(pred).await.map(|s| s.clone()) },
            )
            .await;
        match reached {
            Ok(state) => state.unwrap(),
            Err(_) => panic!(
                "node never reached {what}; last state {:?}",
                *self.state.borrow()
            ),
        }
    }

    pub async fn wait_connected(&mut self) {
        self.wait_state("Connected", |s| matches!(s, NodeState::Connected { .. }))
            .await;
    }

    /// Asks the node to stop.
    pub fn request_stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// What `run` returned.
    pub async fn join(self) -> Result<(), NodeError> {
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("node did not stop in time")
            .unwrap()
    }
}
