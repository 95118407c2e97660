//! Perch's frames, checked against OpenClaw's own published schema (`protocol.schema.json` from
//! the pinned npm package `@openclaw/gateway-protocol`).
//!
//! A real `perch serve` and a real `perch node run` talk through a recording WebSocket proxy on
//! loopback, and an operator client in this test drives them: pairing, an invoke, a refused
//! invoke, an unknown method, ticks, and a graceful shutdown. Every captured frame is then
//! validated: the envelope against the schema's root, and each payload that the schema defines
//! against its definition. Every frame kind a client receives from Perch and every frame
//! Perch's node sends must have been seen.
//!
//! Where Perch must differ, the difference is listed in [`KNOWN`] with its reason and must be
//! documented in docs/protocol.md; the test fails on any other violation, and also when a
//! listed difference no longer occurs (so the list and the document stay exact).

#[path = "common/openclaw.rs"]
mod openclaw;
mod procs;

use procs::*;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response as HsResponse};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every wait in this test is bounded by this.
const WAIT: Duration = Duration::from_secs(30);

/// A place where Perch deliberately differs from OpenClaw's schema.
struct Known {
    /// The row in docs/protocol.md that explains it: `| \`id\` |`.
    id: &'static str,
    /// The frame kinds (labels below) it occurs in; each must show it.
    frames: &'static [&'static str],
    /// Where in the validated value (array indices written `*`).
    path: &'static str,
    /// The schema keyword that fails.
    keyword: &'static str,
    /// The properties (or values) it may name.
    props: &'static [&'static str],
    /// Why Perch differs.
    why: &'static str,
}

const KNOWN: &[Known] = &[
    Known {
        id: "hello-ok.server",
        frames: &["hello-ok (node)", "hello-ok (operator)"],
        path: "/server",
        keyword: "additionalProperties",
        props: &["hostId", "name", "binding"],
        why: "Perch's clients show which host they reached and check its id, and verify the \
              host's signature binding hello-ok to the connection; the schema has no place for \
              them",
    },
    Known {
        id: "connect.device.pairingNonce",
        frames: &["node req connect"],
        path: "/device",
        keyword: "additionalProperties",
        props: &["pairingNonce"],
        why: "the secret behind the commitment a Perch node sends as its client nonce, from \
              which both sides derive a verification code a man in the middle cannot grind",
    },
    Known {
        id: "hello-ok.snapshot.presence",
        frames: &["hello-ok (operator)"],
        path: "/snapshot/presence/*",
        keyword: "additionalProperties",
        props: &[
            "key",
            "displayName",
            "role",
            "connectedSinceMs",
            "lastSeenMs",
            "lastActivityMs",
            "remoteAddr",
        ],
        why: "Perch's presence entries are its own shape (protocol.md §15), which its operators \
              keep current from one-change presence events",
    },
    Known {
        id: "hello-ok.snapshot.presence.ts",
        frames: &["hello-ok (operator)"],
        path: "/snapshot/presence/*",
        keyword: "required",
        props: &["ts"],
        why: "the same entries carry lastSeenMs instead of ts",
    },
    Known {
        id: "device.pair.requested.verificationCode",
        frames: &["event device.pair.requested"],
        path: "",
        keyword: "additionalProperties",
        props: &["verificationCode"],
        why: "the six digits the device also shows, so the user approves the right device",
    },
    Known {
        id: "connect.client.id",
        frames: &["node req connect"],
        path: "/client/id",
        keyword: "enum",
        props: &["perch-node"],
        why: "Perch's node names itself; OpenClaw's list of client ids is closed",
    },
];

/// Frame kinds that must all be captured (and validated).
const REQUIRED: &[&str] = &[
    "event connect.challenge",
    "event tick",
    "event presence",
    "event device.pair.requested",
    "event device.pair.resolved",
    "event node.invoke.request",
    "event shutdown",
    "hello-ok (node)",
    "hello-ok (operator)",
    "error response",
    "res node.event",
    "node req connect",
    "node req node.event",
    "node req node.invoke.result",
];

/// One text message that crossed the proxy.
#[derive(Debug, Clone)]
struct Captured {
    conn: u64,
    to_host: bool,
    frame: Value,
}

type Log = Arc<Mutex<Vec<Captured>>>;

/// A WebSocket proxy on loopback that forwards to the host and records every text message.
async fn start_proxy(upstream: u16) -> (u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::default();
    let sink = log.clone();
    tokio::spawn(async move {
        let mut next = 0u64;
        while let Ok((tcp, _)) = listener.accept().await {
            next += 1;
            tokio::spawn(relay(tcp, upstream, next, sink.clone()));
        }
    });
    (port, log)
}

async fn relay(tcp: TcpStream, upstream: u16, conn: u64, log: Log) {
    // The path and query go through unchanged: a Perch client's `clientNonce` travels there, and
    // the host's proof must cover it (a proxy that dropped it would look like a replay).
    let (target_tx, target_rx) = std::sync::mpsc::channel();
    // The handshake callback's error type is tungstenite's, not ours.
    #[allow(clippy::result_large_err)]
    let path = move |req: &Request, res: HsResponse| {
        let _ = target_tx.send(
            req.uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into()),
        );
        Ok(res)
    };
    let Ok(client) = tokio_tungstenite::accept_hdr_async(tcp, path).await else {
        return;
    };
    let target = target_rx.recv().unwrap_or_else(|_| "/".into());
    let Ok((host, _)) =
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{upstream}{target}")).await
    else {
        return;
    };
    let (mut cw, mut cr) = client.split();
    let (mut hw, mut hr) = host.split();
    let record = |to_host: bool, m: &Message| {
        if let Message::Text(t) = m {
            // Text that is not JSON is kept as a string, which the envelope check refuses.
            let frame = serde_json::from_str(t.as_str())
                .unwrap_or_else(|_| Value::String(t.as_str().to_string()));
            log.lock().unwrap().push(Captured {
                conn,
                to_host,
                frame,
            });
        }
    };
    // Pings are answered by each side's WebSocket layer; only data and closes are forwarded.
    let forwarded =
        |m: &Message| matches!(m, Message::Text(_) | Message::Binary(_) | Message::Close(_));
    loop {
        tokio::select! {
            m = cr.next() => match m {
                Some(Ok(m)) => {
                    record(true, &m);
                    if forwarded(&m) && hw.send(m).await.is_err() { break; }
                }
                _ => { let _ = hw.close().await; break; }
            },
            m = hr.next() => match m {
                Some(Ok(m)) => {
                    record(false, &m);
                    if forwarded(&m) && cw.send(m).await.is_err() { break; }
                }
                _ => { let _ = cw.close().await; break; }
            },
        }
    }
}

/// An operator client speaking raw frames, so the test sees exactly what Perch sends.
struct Operator {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    events: Vec<Value>,
}

impl Operator {
    async fn connect(port: u16, token: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/"))
            .await
            .unwrap();
        let mut op = Operator {
            ws,
            next_id: 0,
            events: vec![],
        };
        let challenge = op.recv().await;
        assert_eq!(challenge["event"], "connect.challenge", "{challenge}");
        let hello = op
            .call(
                "connect",
                json!({
                    "minProtocol": 4, "maxProtocol": 4,
                    "client": {"id": "perch-schema-test", "version": "0", "platform": "linux",
                               "mode": "ui", "displayName": "Schema test"},
                    "role": "operator",
                    "auth": {"token": token}
                }),
            )
            .await;
        assert_eq!(hello["ok"], true, "{hello}");
        op
    }

    async fn recv(&mut self) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let m = tokio::time::timeout_at(deadline.into(), self.ws.next())
                .await
                .expect("a frame from the host in time")
                .expect("the host closed the connection")
                .unwrap();
            if let Message::Text(t) = m {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    }

    /// Sends a request and returns its `res` frame; events on the way are kept.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id.to_string();
        let req = json!({"type": "req", "id": id, "method": method, "params": params});
        self.ws
            .send(Message::Text(req.to_string().into()))
            .await
            .unwrap();
        loop {
            let f = self.recv().await;
            if f["type"] == "res" && f["id"] == id.as_str() {
                return f;
            }
            self.events.push(f);
        }
    }

    /// The payload of the first event with this name, kept or still to come.
    async fn event(&mut self, name: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["event"] == name) {
            return self.events.remove(i)["payload"].clone();
        }
        loop {
            let f = self.recv().await;
            if f["event"] == name {
                return f["payload"].clone();
            }
            self.events.push(f);
        }
    }
}

/// Waits until `f` holds, bounded by [`WAIT`].
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The schema, with one compiled validator per definition used.
struct Schema {
    root: Value,
    validators: HashMap<String, jsonschema::Validator>,
}

/// One schema violation, reduced to what the allow list matches on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    frame: String,
    definition: String,
    path: String,
    keyword: String,
    prop: String,
    message: String,
}

impl Schema {
    fn load(path: &Path) -> Self {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let root: Value = serde_json::from_str(&text).expect("protocol.schema.json is JSON");
        assert_eq!(
            root["title"], "OpenClaw Gateway Protocol",
            "not OpenClaw's schema"
        );
        Schema {
            root,
            validators: HashMap::new(),
        }
    }

    /// Validates `value` against the root schema (`""`) or one of its definitions.
    fn check(&mut self, frame: &str, definition: &str, value: &Value) -> Vec<Violation> {
        if !self.validators.contains_key(definition) {
            let schema = if definition.is_empty() {
                self.root.clone()
            } else {
                let mut d = self.root["definitions"][definition].clone();
                assert!(d.is_object(), "the schema has no definition {definition}");
                d["$schema"] = self.root["$schema"].clone();
                d
            };
            let v = jsonschema::draft7::new(&schema)
                .unwrap_or_else(|e| panic!("definition {definition:?} does not compile: {e}"));
            self.validators.insert(definition.to_string(), v);
        }
        let v = &self.validators[definition];
        let mut out = vec![];
        for e in v.iter_errors(value) {
            let path = e
                .instance_path()
                .as_str()
                .split('/')
                .map(|seg| {
                    if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                        "*"
                    } else {
                        seg
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let props: Vec<String> = match e.kind() {
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    unexpected.clone()
                }
                jsonschema::error::ValidationErrorKind::Required { property } => {
                    vec![property.as_str().unwrap_or_default().to_string()]
                }
                jsonschema::error::ValidationErrorKind::Enum { .. } => {
                    vec![e.instance().as_str().unwrap_or_default().to_string()]
                }
                _ => vec![String::new()],
            };
            for prop in props {
                out.push(Violation {
                    frame: frame.to_string(),
                    definition: if definition.is_empty() {
                        "(root)".into()
                    } else {
                        definition.into()
                    },
                    path: path.clone(),
                    keyword: e.kind().keyword().to_string(),
                    prop,
                    message: e.to_string(),
                });
            }
        }
        out
    }
}

/// The schema definition for an event's payload, where the schema has one.
fn event_definition(event: &str) -> Option<&'static str> {
    Some(match event {
        "tick" => "TickEvent",
        "shutdown" => "ShutdownEvent",
        "device.pair.requested" => "DevicePairRequestedEvent",
        "device.pair.resolved" => "DevicePairResolvedEvent",
        "node.invoke.request" => "NodeInvokeRequestEvent",
        _ => return None,
    })
}

/// The schema definition for the params of a request a node sends.
fn node_request_definition(method: &str) -> Option<&'static str> {
    Some(match method {
        "connect" => "ConnectParams",
        "node.invoke.result" => "NodeInvokeResultParams",
        "node.event" => "NodeEventParams",
        "node.skills.update" => "NodeSkillsUpdateParams",
        "node.pluginTools.update" => "NodePluginToolsUpdateParams",
        _ => return None,
    })
}

/// The schema definition for a `node.event` payload.
fn node_event_definition(event: &str) -> Option<&'static str> {
    Some(match event {
        "node.presence.alive" => "NodePresenceAlivePayload",
        "node.presence.activity" => "NodePresenceActivityPayload",
        _ => return None,
    })
}

/// Validates every captured frame; returns the violations and the frame kinds seen.
fn validate(schema: &mut Schema, log: &[Captured]) -> (Vec<Violation>, BTreeSet<String>) {
    let mut violations = vec![];
    let mut seen = BTreeSet::new();
    // Per connection: its role (from its connect request) and the method of each request id.
    let mut roles: HashMap<u64, String> = HashMap::new();
    let mut methods: HashMap<(u64, String), String> = HashMap::new();
    for c in log.iter().filter(|c| c.to_host) {
        if c.frame["method"] == "connect" {
            let role = c.frame["params"]["role"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            roles.insert(c.conn, role);
        }
        if let (Some(id), Some(m)) = (c.frame["id"].as_str(), c.frame["method"].as_str()) {
            methods.insert((c.conn, id.to_string()), m.to_string());
        }
    }
    for c in log {
        let f = &c.frame;
        let role = roles.get(&c.conn).map(String::as_str).unwrap_or("?");
        let kind = f["type"].as_str().unwrap_or("?");
        let mut check = |label: String, def: &str, v: &Value| {
            violations.extend(schema.check(&label, def, v));
            seen.insert(label);
        };
        if c.to_host {
            // What Perch's node sends (the test's own operator requests are not Perch's).
            if role != "node" {
                continue;
            }
            let method = f["method"].as_str().unwrap_or("?");
            check(format!("node {kind} {method}"), "", f);
            if let Some(def) = node_request_definition(method) {
                check(format!("node {kind} {method}"), def, &f["params"]);
            }
            if method == "node.event" {
                let p = &f["params"];
                let payload = match p["payloadJSON"].as_str() {
                    Some(t) => serde_json::from_str(t).unwrap(),
                    None => p["payload"].clone(),
                };
                if let Some(def) = p["event"].as_str().and_then(node_event_definition) {
                    check(format!("node.event {}", p["event"]), def, &payload);
                }
            }
            continue;
        }
        // What a client receives from Perch.
        match kind {
            "event" => {
                let name = f["event"].as_str().unwrap_or("?");
                let label = format!("event {name}");
                check(label.clone(), "", f);
                if let Some(def) = event_definition(name) {
                    check(label, def, &f["payload"]);
                }
            }
            "res" => {
                let id = f["id"].as_str().unwrap_or_default().to_string();
                let method = methods.get(&(c.conn, id)).cloned().unwrap_or_default();
                if f["ok"] == false {
                    check("error response".into(), "", f);
                    check("error response".into(), "ErrorShape", &f["error"]);
                } else if method == "connect" {
                    let label = format!("hello-ok ({role})");
                    check(label.clone(), "", f);
                    check(label, "HelloOk", &f["payload"]);
                } else if method == "node.event" {
                    check("res node.event".into(), "", f);
                    check("res node.event".into(), "NodeEventResult", &f["payload"]);
                } else {
                    check(format!("res {method}"), "", f);
                }
            }
            other => check(format!("{other} frame"), "", f),
        }
    }
    (violations, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perch_frames_conform_to_openclaws_schema() {
    // Fails (never skips) when the pinned package is not installed.
    let mut schema = Schema::load(&openclaw::installed(
        "@openclaw/gateway-protocol/protocol.schema.json",
    ));

    let host_dir = tempfile::tempdir().unwrap();
    let node_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        host_dir.path().join("perch.toml"),
        "[gateway]\ntick_interval_ms = 300\n",
    )
    .unwrap();
    let port = free_port();
    let mut host = Proc(
        Command::new(PERCH)
            .args(["serve", "--data-dir"])
            .arg(host_dir.path())
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .env("PERCH_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    );
    let token_path = perch_host::paths::operator_token_path(host_dir.path());
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() || !token_path.exists() {
        assert!(start.elapsed() < WAIT, "perch serve did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = perch_host::paths::read_operator_token(&token_path).unwrap();
    let (proxy, log) = start_proxy(port).await;

    // An operator watches from the start, so it sees the pairing events.
    let mut op = Operator::connect(proxy, &token).await;
    let _node = Proc(
        Command::new(PERCH)
            .args([
                "node",
                "run",
                "--gateway",
                &format!("ws://127.0.0.1:{proxy}"),
            ])
            .arg("--data-dir")
            .arg(node_dir.path())
            .args(["--name", "Schema Node"])
            .env("PERCH_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    );
    let requested = op.event("device.pair.requested").await;
    let approved = op
        .call(
            "device.pair.approve",
            json!({"requestId": requested["requestId"]}),
        )
        .await;
    assert_eq!(approved["ok"], true, "{approved}");
    op.event("device.pair.resolved").await;
    let status = op.event("node.status").await;
    assert_eq!(status["online"], true, "{status}");
    let node_id = status["nodeId"].as_str().unwrap().to_string();

    // An invoke that runs, one that host policy refuses, and an unknown method.
    let info = op
        .call(
            "node.invoke",
            json!({"nodeId": node_id, "command": "device.info", "idempotencyKey": "schema-1"}),
        )
        .await;
    assert_eq!(info["ok"], true, "{info}");
    let refused = op
        .call(
            "node.invoke",
            json!({"nodeId": node_id, "command": "system.run", "idempotencyKey": "schema-2",
                   "params": {"command": ["true"]}}),
        )
        .await;
    assert_eq!(refused["error"]["code"], "COMMAND_NOT_ALLOWED", "{refused}");
    let unknown = op.call("no.such.method", json!({})).await;
    assert_eq!(unknown["error"]["code"], "UNKNOWN_METHOD", "{unknown}");

    // Ticks reach both connections, and the node's presence beacon is answered.
    let node_conn = || {
        log.lock()
            .unwrap()
            .iter()
            .find(|c| c.to_host && c.frame["params"]["role"] == "node")
            .map(|c| c.conn)
    };
    until("a tick on the node's connection", || {
        let Some(n) = node_conn() else { return false };
        log.lock()
            .unwrap()
            .iter()
            .any(|c| c.conn == n && c.frame["event"] == "tick")
    })
    .await;
    until("the answer to the node's presence beacon", || {
        log.lock()
            .unwrap()
            .iter()
            .any(|c| !c.to_host && c.frame["payload"]["event"] == "node.presence.alive")
    })
    .await;

    // A graceful stop: every client gets `shutdown`.
    let pid = host.0.id().unwrap().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    until("shutdown to reach the node's connection", || {
        let Some(n) = node_conn() else { return false };
        log.lock()
            .unwrap()
            .iter()
            .any(|c| c.conn == n && c.frame["event"] == "shutdown")
    })
    .await;
    let exited = tokio::time::timeout(WAIT, host.0.wait()).await;
    assert!(
        matches!(exited, Ok(Ok(s)) if s.success()),
        "perch serve did not stop cleanly: {exited:?}"
    );

    let captured = log.lock().unwrap().clone();
    let (violations, seen) = validate(&mut schema, &captured);
    eprintln!(
        "validated {} frames; kinds: {}",
        captured.len(),
        seen.iter().cloned().collect::<Vec<_>>().join(", ")
    );

    let missing: Vec<&&str> = REQUIRED.iter().filter(|k| !seen.contains(**k)).collect();
    assert!(
        missing.is_empty(),
        "frame kinds not captured: {missing:?}; seen: {seen:?}"
    );

    // Every violation must be a documented difference, and every documented one must occur.
    let mut hits: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut unexplained = vec![];
    for v in &violations {
        let known = KNOWN.iter().find(|k| {
            k.frames.contains(&v.frame.as_str())
                && k.path == v.path
                && k.keyword == v.keyword
                && k.props.contains(&v.prop.as_str())
        });
        match known {
            Some(k) => *hits.entry((k.id, v.frame.as_str())).or_default() += 1,
            None => unexplained.push(v.clone()),
        }
    }
    unexplained.sort();
    unexplained.dedup();
    assert!(
        unexplained.is_empty(),
        "Perch frames that OpenClaw's schema refuses and docs/protocol.md does not explain:\n{}",
        unexplained
            .iter()
            .map(|v| format!(
                "  {} / {} at {:?}: {} {:?} ({})",
                v.frame, v.definition, v.path, v.keyword, v.prop, v.message
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let docs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol.md"),
    )
    .unwrap();
    for k in KNOWN {
        assert!(!k.why.is_empty());
        assert!(
            docs.contains(&format!("| `{}` |", k.id)),
            "docs/protocol.md has no row for the known difference {:?}",
            k.id
        );
        for frame in k.frames {
            assert!(
                hits.contains_key(&(k.id, *frame)),
                "the known difference {:?} ({} {:?}) no longer occurs in {frame}: remove it from \
                 KNOWN and docs/protocol.md",
                k.id,
                k.keyword,
                k.props
            );
        }
    }
}
