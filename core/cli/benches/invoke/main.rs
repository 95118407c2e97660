//! `node.invoke` round trip and host memory, against a real `perch serve` process, and the
//! same driver through a minimal OpenClaw-shaped Node relay.
//!
//! Run with `cargo bench -p perch-cli --bench invoke`. One run reports, in order:
//!
//! 1. the floor: a bare tokio-tungstenite echo server and client in this process on
//!    127.0.0.1, round trips of a ~300-byte text message;
//! 2. `node.invoke` round trips through a `perch serve` child process, from an operator
//!    socket sending `node.invoke` to its `res`, with nodes simulated in this process that
//!    answer `node.invoke.request` at once with a small device.info payload; one call in
//!    flight, a fresh idempotency key per call; scenario A with 1 connected node, scenario B
//!    with 1,000 connected nodes (each its own Ed25519 identity, paired through an operator)
//!    and the target node picked at random among them; with the host's VmRSS and VmHWM (from
//!    /proc/<pid>/status) idle, with 1 node and with 1,000;
//! 3. the same operator and node code through `benches/relay/relay.mjs` (a Node `ws` relay:
//!    challenge, Ed25519 check of the node's signature, forwarding, nothing stored), with
//!    scenario A's counts and then one block of 5,000 calls; its npm packages are installed
//!    with `npm ci` when missing;
//! 4. the long run: 50,000 sequential calls to one node of a fresh `perch serve`, p50 and p99
//!    per block of 5,000 and the last block's p50 over the first's.
//!
//! 5. only when named: `ffi`, `device.info` answered by `perch node run` (the Rust runtime
//!    and handler) against a Kotlin node on perch-ffi (see `ffi.rs`; `scripts/ffi-bench.sh`).
//!
//! `PERCH_BENCH_SCENARIOS=floor,host,relay,long,ffi` (any subset) runs only those parts; the
//! default runs all but `ffi`. It prints tables and a one-line JSON summary (after `BENCH_JSON `) on
//! stdout. Every wait has a deadline; child processes are killed on every exit path by drop
//! guards.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

use perch_protocol::DeviceIdentity;
use perch_protocol::frame::Frame;
use perch_protocol::identity::SignedConnectV3;
use perch_protocol::methods::InvokeParams;

mod ffi;
mod relay;

const PERCH: &str = env!("CARGO_BIN_EXE_perch");

/// Round trips before measuring (connection warm-up, caches, allocator).
const WARMUP: usize = 200;
/// Measured round trips per scenario.
const SAMPLES: usize = 2_000;
/// Measured calls of the long scenario.
const LONG_CALLS: usize = 50_000;
/// Calls per block of the long scenario (and of the relay's long block).
const BLOCK: usize = 5_000;
/// Size of the echo floor's text message, about one `node.invoke` request frame.
const ECHO_BYTES: usize = 300;
/// Nodes in scenario B.
const NODES: usize = 1_000;
/// Nodes pairing at the same time.
const PAIR_PARALLEL: usize = 32;
/// Keepalive interval written to the host's perch.toml (the protocol default).
const TICK_INTERVAL_MS: u64 = 15_000;
/// Longest wait for any one frame.
const FRAME_WAIT: Duration = Duration::from_secs(10);
/// Longest wait for the host to start.
const START_WAIT: Duration = Duration::from_secs(30);
/// Longest wait for all nodes to pair.
const PAIR_WAIT: Duration = Duration::from_secs(300);
/// Quiet time before reading the host's memory.
const SETTLE: Duration = Duration::from_secs(3);
/// File descriptors each process needs besides the node sockets.
const FD_SLACK: u64 = 256;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run());
    // Node tasks still hold sockets to the (now killed) host; do not wait on them.
    runtime.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics

#[derive(Debug, Clone)]
struct Latency {
    n: usize,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    max_us: f64,
    mean_us: f64,
}

impl Latency {
    fn from_samples(mut samples: Vec<Duration>) -> Result<Self> {
        if samples.is_empty() {
            bail!("no samples");
        }
        samples.sort_unstable();
        let n = samples.len();
        // Nearest-rank percentile.
        let pct = |p: f64| -> f64 {
            let rank = ((p / 100.0) * n as f64).ceil() as usize;
            us(samples[rank.clamp(1, n) - 1])
        };
        let total: Duration = samples.iter().sum();
        Ok(Self {
            n,
            p50_us: pct(50.0),
            p90_us: pct(90.0),
            p99_us: pct(99.0),
            max_us: us(samples[n - 1]),
            mean_us: us(total) / n as f64,
        })
    }

    fn json(&self) -> Value {
        json!({"n": self.n, "p50_us": round1(self.p50_us), "p90_us": round1(self.p90_us),
               "p99_us": round1(self.p99_us), "max_us": round1(self.max_us),
               "mean_us": round1(self.mean_us)})
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[derive(Debug, Clone, Copy)]
struct Mem {
    rss_kib: u64,
    hwm_kib: u64,
}

impl Mem {
    fn json(&self) -> Value {
        json!({"vm_rss_kib": self.rss_kib, "vm_hwm_kib": self.hwm_kib})
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// VmRSS and VmHWM of a process, from /proc/<pid>/status.
fn read_mem(pid: u32) -> Result<Mem> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let field = |name: &str| -> Result<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("{path} has no {name} line"))
    };
    Ok(Mem {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// The soft limit on open files of this process (children inherit it).
fn open_file_limit() -> Result<u64> {
    let text =
        std::fs::read_to_string("/proc/self/limits").context("cannot read /proc/self/limits")?;
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .ok_or_else(|| anyhow!("/proc/self/limits has no 'Max open files' line"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()
        .ok_or_else(|| anyhow!("cannot parse {line:?}"))?;
    if soft == "unlimited" {
        return Ok(u64::MAX);
    }
    soft.parse()
        .with_context(|| format!("cannot parse the open-file limit in {line:?}"))
}

// ---------------------------------------------------------------------------------------------
// The host process

/// A `perch serve` child, killed and reaped when dropped, however the bench ends.
struct Host {
    child: Child,
    port: u16,
    token: String,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Host {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    fn mem(&self) -> Result<Mem> {
        read_mem(self.pid())
    }

    async fn start(dir: &Path) -> Result<Host> {
        std::fs::write(
            dir.join("perch.toml"),
            // Every simulated node pairs from 127.0.0.1, PAIR_PARALLEL at a time: room for them
            // in the per-source pending cap (the default 8 is for a real LAN).
            format!(
                "[gateway]\ntick_interval_ms = {TICK_INTERVAL_MS}\nmax_pending_pairings_per_source = {}\n",
                PAIR_PARALLEL * 2
            ),
        )
        .context("cannot write perch.toml")?;
        let port = free_port()?;
        let bind = format!("127.0.0.1:{port}");
        let child = std::process::Command::new(PERCH)
            .arg("serve")
            .arg("--data-dir")
            .arg(dir)
            .args(["--bind", &bind])
            .env("PERCH_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {PERCH}"))?;
        let mut host = Host {
            child,
            port,
            token: String::new(),
        };
        let deadline = Instant::now() + START_WAIT;
        let token_file = dir.join("operator.token");
        loop {
            if let Some(status) = host.child.try_wait()? {
                bail!("perch serve exited during start-up ({status})");
            }
            if let Ok(t) = std::fs::read_to_string(&token_file)
                && !t.trim().is_empty()
                && TcpStream::connect(("127.0.0.1", port)).await.is_ok()
            {
                host.token = t.trim().to_string();
                return Ok(host);
            }
            if Instant::now() > deadline {
                bail!("perch serve did not listen on {bind} within {START_WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

// ---------------------------------------------------------------------------------------------
// Raw protocol plumbing

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Opens a WebSocket to the host with TCP_NODELAY on our side, so that any Nagle delay
/// measured comes from the host.
async fn open(url: &str, small_buffers: bool) -> Result<Ws> {
    let cfg = if small_buffers {
        // A thousand idle node sockets do not need tungstenite's 128 KiB buffers.
        Some(
            WebSocketConfig::default()
                .read_buffer_size(4 * 1024)
                .write_buffer_size(0),
        )
    } else {
        None
    };
    let (ws, _) = tokio::time::timeout(FRAME_WAIT, connect_async_with_config(url, cfg, true))
        .await
        .map_err(|_| anyhow!("timed out connecting to {url}"))?
        .with_context(|| format!("cannot connect to {url}"))?;
    Ok(ws)
}

async fn send(ws: &mut Ws, frame: Value) -> Result<()> {
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .context("send failed")
}

/// The next protocol frame; pings are answered by tungstenite while we read.
async fn next_frame(ws: &mut Ws) -> Result<Frame> {
    loop {
        let msg = tokio::time::timeout(FRAME_WAIT, ws.next())
            .await
            .map_err(|_| anyhow!("no frame from the host within {FRAME_WAIT:?}"))?;
        match msg {
            None => bail!("the host closed the connection"),
            Some(Err(e)) => bail!("connection failed: {e}"),
            Some(Ok(Message::Text(t))) => {
                return Frame::parse(t.as_str()).map_err(|e| anyhow!("bad frame: {e}"));
            }
            Some(Ok(Message::Close(c))) => bail!("the host closed the connection: {c:?}"),
            Some(Ok(_)) => {}
        }
    }
}

async fn wait_event(ws: &mut Ws, name: &str) -> Result<Value> {
    loop {
        if let Frame::Event(e) = next_frame(ws).await?
            && e.event == name
        {
            return Ok(e.payload.unwrap_or(Value::Null));
        }
    }
}

/// Waits for the response to `id`: Ok(Ok(payload)) or Ok(Err(error JSON)).
async fn wait_res(ws: &mut Ws, id: &str) -> Result<Result<Value, Value>> {
    loop {
        if let Frame::Res(r) = next_frame(ws).await?
            && r.id.as_str() == id
        {
            return Ok(match r.result {
                Ok(p) => Ok(p.unwrap_or(Value::Null)),
                Err(e) => Err(serde_json::to_value(e)?),
            });
        }
    }
}

async fn request(
    ws: &mut Ws,
    id: &str,
    method: &str,
    params: Value,
) -> Result<Result<Value, Value>> {
    send(
        ws,
        json!({"type": "req", "id": id, "method": method, "params": params}),
    )
    .await?;
    wait_res(ws, id).await
}

/// An operator socket read and written in the caller's task: what the latency loop uses.
async fn operator(url: &str, token: &str) -> Result<Ws> {
    let mut ws = open(url, false).await?;
    wait_event(&mut ws, "connect.challenge").await?;
    let params = json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "perch-bench", "version": "0", "platform": "linux", "mode": "cli"},
        "role": "operator",
        "auth": {"token": token}
    });
    request(&mut ws, "c1", "connect", params)
        .await?
        .map_err(|e| anyhow!("operator connect refused: {e}"))?;
    Ok(ws)
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Result<Value, Value>>>>>;

/// An operator shared by many tasks: a writer task and a reader task that routes responses by
/// id and keeps reading (events, pings) so the host never finds it slow.
struct SharedOperator {
    tx: mpsc::UnboundedSender<String>,
    waiters: Waiters,
    next: AtomicU64,
}

impl SharedOperator {
    async fn connect(url: &str, token: &str) -> Result<Arc<Self>> {
        let ws = operator(url, token).await?;
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let waiters: Waiters = Arc::default();
        tokio::spawn(async move {
            while let Some(text) = rx.recv().await {
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
        });
        let w = waiters.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(t) = msg else { continue };
                let Ok(Frame::Res(r)) = Frame::parse(t.as_str()) else {
                    continue;
                };
                let waiter = w.lock().ok().and_then(|mut m| m.remove(r.id.as_str()));
                if let Some(waiter) = waiter {
                    let outcome = match r.result {
                        Ok(p) => Ok(p.unwrap_or(Value::Null)),
                        Err(e) => Err(serde_json::to_value(e).unwrap_or(Value::Null)),
                    };
                    let _ = waiter.send(outcome);
                }
            }
        });
        Ok(Arc::new(Self {
            tx,
            waiters,
            next: AtomicU64::new(1),
        }))
    }

    async fn request(&self, method: &str, params: Value) -> Result<Result<Value, Value>> {
        let id = format!("s{}", self.next.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .map_err(|_| anyhow!("operator waiters poisoned"))?
            .insert(id.clone(), tx);
        let frame = json!({"type": "req", "id": id, "method": method, "params": params});
        self.tx
            .send(frame.to_string())
            .map_err(|_| anyhow!("the shared operator connection is gone"))?;
        tokio::time::timeout(FRAME_WAIT, rx)
            .await
            .map_err(|_| anyhow!("no answer to {method} within {FRAME_WAIT:?}"))?
            .map_err(|_| anyhow!("the shared operator connection closed"))
    }
}

// ---------------------------------------------------------------------------------------------
// Simulated nodes

const NODE_COMMANDS: &[&str] = &["device.info"];

fn node_connect_params(id: &DeviceIdentity, name: &str, nonce: &str) -> Value {
    let signed_at = now_ms();
    let device_id = id.device_id();
    let payload = SignedConnectV3 {
        device_id: device_id.as_str(),
        client_id: "perch-bench-node",
        client_mode: "node",
        role: "node",
        scopes: &[],
        signed_at_ms: signed_at,
        token: "",
        nonce,
        platform: Some("linux"),
        device_family: None,
    }
    .payload();
    json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "perch-bench-node", "displayName": name, "version": "0",
                   "platform": "linux", "mode": "node"},
        "role": "node",
        "commands": NODE_COMMANDS,
        "device": {"id": device_id.as_str(), "publicKey": id.public_key_b64(),
                   "signature": id.sign_b64(&payload), "signedAt": signed_at, "nonce": nonce}
    })
}

fn identity(index: usize) -> DeviceIdentity {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(index as u64 + 1).to_le_bytes());
    seed[8..16].copy_from_slice(b"perchbnc");
    DeviceIdentity::from_seed(&seed)
}

/// Connects, is told NOT_PAIRED, gets approved by the operator, connects again on the same
/// socket, and returns the admitted socket.
async fn pair_node(url: &str, op: &SharedOperator, id: &DeviceIdentity, name: &str) -> Result<Ws> {
    let mut ws = open(url, true).await?;
    let ch = wait_event(&mut ws, "connect.challenge").await?;
    let nonce = ch["nonce"]
        .as_str()
        .ok_or_else(|| anyhow!("challenge without nonce"))?;
    let refused = request(
        &mut ws,
        "n1",
        "connect",
        node_connect_params(id, name, nonce),
    )
    .await?;
    let err = match refused {
        Ok(_) => bail!("an unpaired node was admitted"),
        Err(e) => e,
    };
    if err["code"] != "NOT_PAIRED" {
        bail!("expected NOT_PAIRED, got {err}");
    }
    let request_id = err["details"]["requestId"]
        .as_str()
        .ok_or_else(|| anyhow!("NOT_PAIRED without requestId: {err}"))?
        .to_string();
    op.request("device.pair.approve", json!({"requestId": request_id}))
        .await?
        .map_err(|e| anyhow!("device.pair.approve failed: {e}"))?;
    let resolved = wait_event(&mut ws, "device.pair.resolved").await?;
    if resolved["decision"] != "approved" {
        bail!("pairing not approved: {resolved}");
    }
    let ch = wait_event(&mut ws, "connect.challenge").await?;
    let nonce = ch["nonce"]
        .as_str()
        .ok_or_else(|| anyhow!("challenge without nonce"))?;
    request(
        &mut ws,
        "n2",
        "connect",
        node_connect_params(id, name, nonce),
    )
    .await?
    .map_err(|e| anyhow!("paired node refused: {e}"))?;
    Ok(ws)
}

#[derive(Default)]
struct NodeCounters {
    answered: AtomicU64,
    errors: AtomicU64,
}

/// Answers every `node.invoke.request` at once, until the socket closes.
async fn answer_invokes(mut ws: Ws, node_id: String, name: String, counters: Arc<NodeCounters>) {
    let info = json!({"deviceName": name, "systemName": "Linux", "systemVersion": "bench",
                      "arch": std::env::consts::ARCH, "appVersion": "0.1.0"});
    let mut seq: u64 = 0;
    // Ends when the host closes the socket or the runtime shuts down.
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(t) = msg else { continue };
        match Frame::parse(t.as_str()) {
            Ok(Frame::Event(e)) if e.event == "node.invoke.request" => {
                let Some(invoke_id) = e.payload.as_ref().and_then(|p| p["id"].as_str()) else {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                seq += 1;
                let frame = json!({"type": "req", "id": format!("r{seq}"),
                    "method": "node.invoke.result",
                    "params": {"id": invoke_id, "nodeId": node_id, "ok": true, "payload": info}});
                if ws
                    .send(Message::Text(frame.to_string().into()))
                    .await
                    .is_err()
                {
                    break;
                }
                counters.answered.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Frame::Res(r)) if r.result.is_err() => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

struct Fleet {
    op: Arc<SharedOperator>,
    url: String,
    node_ids: Vec<String>,
    counters: Arc<NodeCounters>,
}

impl Fleet {
    /// Fails unless the nodes answered exactly `expected` invokes and reported no error.
    fn check_answered(&self, expected: u64) -> Result<()> {
        let answered = self.counters.answered.load(Ordering::Relaxed);
        let errors = self.counters.errors.load(Ordering::Relaxed);
        if answered != expected || errors != 0 {
            bail!("nodes answered {answered} invokes (expected {expected}) with {errors} errors");
        }
        Ok(())
    }

    /// Pairs nodes `from..to` with bounded parallelism; each keeps answering in its own task.
    async fn add(&mut self, from: usize, to: usize) -> Result<Duration> {
        let started = Instant::now();
        let sem = Arc::new(Semaphore::new(PAIR_PARALLEL));
        let (done_tx, mut done_rx) = mpsc::channel::<Result<(usize, String)>>(to - from);
        for i in from..to {
            let sem = sem.clone();
            let done = done_tx.clone();
            let op = self.op.clone();
            let url = self.url.clone();
            let counters = self.counters.clone();
            tokio::spawn(async move {
                let id = identity(i);
                let node_id = id.device_id().as_str().to_string();
                let name = format!("bench-node-{i:04}");
                let paired = match sem.acquire_owned().await {
                    Ok(_permit) => pair_node(&url, &op, &id, &name).await,
                    Err(e) => Err(anyhow!("semaphore closed: {e}")),
                };
                match paired {
                    Ok(ws) => {
                        let _ = done.send(Ok((i, node_id.clone()))).await;
                        answer_invokes(ws, node_id, name, counters).await;
                    }
                    Err(e) => {
                        let _ = done.send(Err(e.context(format!("node {i}")))).await;
                    }
                }
            });
        }
        drop(done_tx);
        let mut got: Vec<(usize, String)> = Vec::with_capacity(to - from);
        let deadline = tokio::time::Instant::now() + PAIR_WAIT;
        while got.len() < to - from {
            match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                Err(_) => bail!(
                    "only {} of {} nodes paired within {PAIR_WAIT:?}",
                    got.len(),
                    to - from
                ),
                Ok(None) => bail!("node tasks ended early"),
                Ok(Some(Err(e))) => return Err(e.context("pairing failed")),
                Ok(Some(Ok(v))) => got.push(v),
            }
        }
        got.sort();
        self.node_ids.extend(got.into_iter().map(|(_, id)| id));
        Ok(started.elapsed())
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements

/// Round trips of a ~300-byte text message through a bare tokio-tungstenite echo server.
async fn echo_floor() -> Result<(Latency, usize)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let mut ws = tokio_tungstenite::accept_async(tcp).await?;
        while let Some(msg) = ws.next().await {
            match msg? {
                Message::Text(t) => ws.send(Message::Text(t)).await?,
                Message::Close(_) => break,
                _ => {}
            }
        }
        anyhow::Ok(())
    });
    let mut ws = open(&format!("ws://{addr}"), false).await?;
    let mut text = String::from(
        "{\"type\":\"req\",\"id\":\"echo\",\"method\":\"echo\",\"params\":{\"pad\":\"",
    );
    while text.len() < ECHO_BYTES - 3 {
        text.push('x');
    }
    text.push_str("\"}}");
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..WARMUP + SAMPLES {
        let t0 = Instant::now();
        ws.send(Message::Text(text.clone().into())).await?;
        loop {
            let msg = tokio::time::timeout(FRAME_WAIT, ws.next())
                .await
                .map_err(|_| anyhow!("echo server silent"))?
                .ok_or_else(|| anyhow!("echo server closed"))??;
            if let Message::Text(t) = msg {
                if t.len() != text.len() {
                    bail!("echo returned {} bytes, sent {}", t.len(), text.len());
                }
                break;
            }
        }
        if i >= WARMUP {
            samples.push(t0.elapsed());
        }
    }
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(FRAME_WAIT, server).await;
    Ok((Latency::from_samples(samples)?, text.len()))
}

/// Tiny deterministic xorshift so scenario B's node choice is random but repeatable.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Sequential `node.invoke` calls from a fresh operator socket to `url`, each with a fresh
/// idempotency key, the target drawn at random among `node_ids`: `warmup` calls unmeasured,
/// then `count` measured. Returns the latencies in call order and the request frame's size.
async fn timed_invokes(
    url: &str,
    token: &str,
    tag: &str,
    node_ids: &[String],
    warmup: usize,
    count: usize,
) -> Result<(Vec<Duration>, usize)> {
    let mut op = operator(url, token).await?;
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut samples = Vec::with_capacity(count);
    let mut frame_len = 0;
    for i in 0..warmup + count {
        let node = &node_ids[(rng.next() % node_ids.len() as u64) as usize];
        let id = format!("{tag}{i}");
        let params = InvokeParams {
            node_id: node.clone(),
            command: "device.info".into(),
            params: Some(json!({})),
            timeout_ms: None,
            idempotency_key: format!("bench-{tag}-{i:06}"),
        };
        let text = Frame::req(
            id.clone(),
            "node.invoke",
            Some(serde_json::to_value(&params)?),
        )
        .to_text();
        frame_len = text.len();
        let t0 = Instant::now();
        op.send(Message::Text(text.into())).await?;
        let res = wait_res(&mut op, &id).await?;
        let elapsed = t0.elapsed();
        let payload = res.map_err(|e| anyhow!("node.invoke {i} failed: {e}"))?;
        if payload["command"] != "device.info" || !payload["payload"]["deviceName"].is_string() {
            bail!("unexpected node.invoke result: {payload}");
        }
        if i >= warmup {
            samples.push(elapsed);
        }
    }
    let _ = op.close(None).await;
    Ok((samples, frame_len))
}

/// The scenario A shape: `WARMUP` unmeasured calls, then `SAMPLES` measured.
async fn invoke_loop(
    url: &str,
    token: &str,
    tag: &str,
    node_ids: &[String],
) -> Result<(Latency, usize)> {
    let (samples, frame_len) = timed_invokes(url, token, tag, node_ids, WARMUP, SAMPLES).await?;
    Ok((Latency::from_samples(samples)?, frame_len))
}

/// Latency of each consecutive block of `BLOCK` samples.
fn blocks(samples: Vec<Duration>) -> Result<Vec<Latency>> {
    samples
        .chunks(BLOCK)
        .map(|c| Latency::from_samples(c.to_vec()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// Which parts of the bench run: all by default; `PERCH_BENCH_SCENARIOS` (comma-separated
/// `floor`, `host`, `relay`, `long`, `ffi`) picks a subset.
#[derive(Debug, Clone, Copy)]
struct Selection {
    floor: bool,
    host: bool,
    relay: bool,
    long: bool,
    ffi: bool,
}

impl Selection {
    fn from_env() -> Result<Self> {
        let Ok(list) = std::env::var("PERCH_BENCH_SCENARIOS") else {
            return Ok(Self {
                floor: true,
                host: true,
                relay: true,
                long: true,
                ffi: false,
            });
        };
        let mut s = Self {
            floor: false,
            host: false,
            relay: false,
            long: false,
            ffi: false,
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "floor" => s.floor = true,
                "host" => s.host = true,
                "relay" => s.relay = true,
                "long" => s.long = true,
                "ffi" => s.ffi = true,
                other => bail!(
                    "PERCH_BENCH_SCENARIOS: unknown scenario {other:?} (known: floor, host, relay, long, ffi)"
                ),
            }
        }
        if !(s.floor || s.host || s.relay || s.long || s.ffi) {
            bail!("PERCH_BENCH_SCENARIOS names no scenario (known: floor, host, relay, long, ffi)");
        }
        Ok(s)
    }
}

/// Scenarios A and B with the host's memory (issue 2).
struct HostFigures {
    one: Latency,
    many: Latency,
    frame_len: usize,
    mem_idle: Mem,
    mem_one: Mem,
    mem_one_after: Mem,
    mem_many: Mem,
    mem_many_after: Mem,
    per_node_kib: f64,
    pair_time: Duration,
}

async fn host_scenarios() -> Result<HostFigures> {
    let dir = tempfile::tempdir().context("cannot make a temporary data directory")?;
    let host = Host::start(dir.path()).await?;
    eprintln!("bench: perch serve pid {} on {}", host.pid(), host.url());
    tokio::time::sleep(SETTLE).await;
    let mem_idle = host.mem()?;

    let op = SharedOperator::connect(&host.url(), &host.token).await?;
    let mut fleet = Fleet {
        op: op.clone(),
        url: host.url(),
        node_ids: Vec::new(),
        counters: Arc::default(),
    };

    eprintln!("bench: scenario A (1 node)...");
    fleet.add(0, 1).await?;
    tokio::time::sleep(SETTLE).await;
    let mem_one = host.mem()?;
    let (one, frame_len) = invoke_loop(&host.url(), &host.token, "a", &fleet.node_ids[..1]).await?;
    tokio::time::sleep(SETTLE).await;
    let mem_one_after = host.mem()?;

    eprintln!(
        "bench: pairing {} more nodes ({PAIR_PARALLEL} at a time)...",
        NODES - 1
    );
    let pair_time = fleet.add(1, NODES).await?;
    eprintln!(
        "bench: {} nodes paired in {:.2} s",
        NODES - 1,
        pair_time.as_secs_f64()
    );
    tokio::time::sleep(SETTLE).await;
    let status = op
        .request("status", json!({}))
        .await?
        .map_err(|e| anyhow!("status failed: {e}"))?;
    let online = status["nodesOnline"].as_u64().unwrap_or(0);
    if online != NODES as u64 {
        bail!("the host reports {online} nodes online, expected {NODES}");
    }
    let mem_many = host.mem()?;

    eprintln!("bench: scenario B ({NODES} nodes)...");
    let (many, _) = invoke_loop(&host.url(), &host.token, "b", &fleet.node_ids).await?;
    tokio::time::sleep(SETTLE).await;
    let mem_many_after = host.mem()?;

    fleet.check_answered(2 * (WARMUP + SAMPLES) as u64)?;
    let per_node_kib =
        (mem_many.rss_kib as f64 - mem_one_after.rss_kib as f64) / (NODES as f64 - 1.0);
    drop(host);
    Ok(HostFigures {
        one,
        many,
        frame_len,
        mem_idle,
        mem_one,
        mem_one_after,
        mem_many,
        mem_many_after,
        per_node_kib,
        pair_time,
    })
}

/// The long scenario: `LONG_CALLS` sequential calls to one node of a fresh host.
struct LongFigures {
    blocks: Vec<Latency>,
    mem_before: Mem,
    mem_after: Mem,
}

impl LongFigures {
    /// The last block's p50 over the first's.
    fn drift(&self) -> f64 {
        match (self.blocks.first(), self.blocks.last()) {
            (Some(first), Some(last)) => last.p50_us / first.p50_us,
            _ => f64::NAN,
        }
    }
}

async fn long_scenario() -> Result<LongFigures> {
    let dir = tempfile::tempdir().context("cannot make a temporary data directory")?;
    let host = Host::start(dir.path()).await?;
    eprintln!(
        "bench: long scenario, perch serve pid {} on {}",
        host.pid(),
        host.url()
    );
    let op = SharedOperator::connect(&host.url(), &host.token).await?;
    let mut fleet = Fleet {
        op,
        url: host.url(),
        node_ids: Vec::new(),
        counters: Arc::default(),
    };
    fleet.add(0, 1).await?;
    tokio::time::sleep(SETTLE).await;
    let mem_before = host.mem()?;
    eprintln!("bench: long scenario, {LONG_CALLS} sequential invokes after {WARMUP} warm-up...");
    let (samples, _) = timed_invokes(
        &host.url(),
        &host.token,
        "l",
        &fleet.node_ids,
        WARMUP,
        LONG_CALLS,
    )
    .await?;
    fleet.check_answered((WARMUP + LONG_CALLS) as u64)?;
    tokio::time::sleep(SETTLE).await;
    let mem_after = host.mem()?;
    drop(host);
    Ok(LongFigures {
        blocks: blocks(samples)?,
        mem_before,
        mem_after,
    })
}

/// The same driver through the Node relay: scenario A's counts, then one block of `BLOCK`.
struct RelayFigures {
    one: Latency,
    block: Latency,
    mem: Mem,
}

async fn relay_scenario() -> Result<RelayFigures> {
    let relay = relay::Relay::start().await?;
    eprintln!(
        "bench: relay (node {}) pid {} on {}",
        relay.node_version,
        relay.pid(),
        relay.url()
    );
    let counters: Arc<NodeCounters> = Arc::default();
    let id = identity(0);
    let node_id = id.device_id().as_str().to_string();
    let name = "bench-node-0000".to_string();
    relay::check_refuses_bad_signature(&relay.url(), &id).await?;
    let ws = relay::connect_node(&relay.url(), &id, &name).await?;
    tokio::spawn(answer_invokes(ws, node_id.clone(), name, counters.clone()));
    let nodes = [node_id];
    eprintln!("bench: relay, 1 node...");
    let (one, _) = invoke_loop(&relay.url(), &relay.token, "r", &nodes).await?;
    eprintln!("bench: relay, one block of {BLOCK}...");
    let (samples, _) = timed_invokes(&relay.url(), &relay.token, "rb", &nodes, 0, BLOCK).await?;
    let mem = relay.mem()?;
    let answered = counters.answered.load(Ordering::Relaxed);
    let errors = counters.errors.load(Ordering::Relaxed);
    let expected = (WARMUP + SAMPLES + BLOCK) as u64;
    if answered != expected || errors != 0 {
        bail!(
            "the relay's node answered {answered} invokes (expected {expected}) with {errors} errors"
        );
    }
    Ok(RelayFigures {
        one,
        block: Latency::from_samples(samples)?,
        mem,
    })
}

// ---------------------------------------------------------------------------------------------
// The run

async fn run() -> Result<()> {
    let sel = Selection::from_env()?;
    eprintln!("bench: scenarios {sel:?}");
    if sel.host {
        let limit = open_file_limit()?;
        let need = NODES as u64 + FD_SLACK;
        if limit < need {
            bail!(
                "the open-file limit (ulimit -n) is {limit}, but this bench needs at least {need} \
                 per process ({NODES} node sockets plus slack); raise it with `ulimit -n {need}` and run again"
            );
        }
        eprintln!(
            "bench: open-file limit {limit} (need {need}); {NODES} nodes, {SAMPLES} samples after {WARMUP} warm-up"
        );
    }
    // Fail early, before minutes of measuring, when the relay cannot run.
    if sel.relay {
        relay::prepare()?;
    }

    let floor = if sel.floor {
        eprintln!("bench: echo floor...");
        Some(echo_floor().await?)
    } else {
        None
    };
    let host = if sel.host {
        Some(host_scenarios().await?)
    } else {
        None
    };
    let relay = if sel.relay {
        Some(relay_scenario().await?)
    } else {
        None
    };
    let long = if sel.long {
        Some(long_scenario().await?)
    } else {
        None
    };
    let ffi = if sel.ffi {
        Some(ffi::ffi_scenario().await?)
    } else {
        None
    };
    let bench_mem = read_mem(std::process::id())?;

    let report = Report {
        floor: floor.as_ref(),
        host: host.as_ref(),
        relay: relay.as_ref(),
        long: long.as_ref(),
    };
    report.print();
    if let Some(f) = &ffi {
        f.print();
    }
    let mut summary = json!({
        "bench": "invoke",
        "samples": SAMPLES,
        "warmup": WARMUP,
        "tick_interval_ms": TICK_INTERVAL_MS,
        "bench_process_vm_rss_kib": bench_mem.rss_kib,
    });
    if let Some((floor, echo_len)) = &floor {
        summary["echo_floor"] = json!({"message_bytes": echo_len, "latency": floor.json()});
    }
    if let Some(h) = &host {
        summary["nodes"] = json!(NODES);
        summary["invoke_1_node"] = json!({"request_bytes": h.frame_len, "latency": h.one.json()});
        summary["invoke_1000_nodes"] =
            json!({"request_bytes": h.frame_len, "latency": h.many.json()});
        summary["host_memory"] = json!({
            "idle": h.mem_idle.json(),
            "one_node": h.mem_one.json(),
            "one_node_after_invokes": h.mem_one_after.json(),
            "nodes_1000": h.mem_many.json(),
            "nodes_1000_after_invokes": h.mem_many_after.json(),
            "per_node_kib": round1(h.per_node_kib),
        });
        summary["pairing_999_nodes_s"] = json!((h.pair_time.as_secs_f64() * 100.0).round() / 100.0);
    }
    if let Some(r) = &relay {
        summary["relay"] = json!({"invoke_1_node": r.one.json(), "block": r.block.json(),
                                  "vm_rss_kib": r.mem.rss_kib});
    }
    if let Some(l) = &long {
        summary["long"] = json!({
            "calls": LONG_CALLS,
            "block": BLOCK,
            "blocks": l.blocks.iter().map(Latency::json).collect::<Vec<_>>(),
            "last_over_first_p50": (l.drift() * 1000.0).round() / 1000.0,
            "host_memory_before": l.mem_before.json(),
            "host_memory_after": l.mem_after.json(),
        });
    }
    if let Some(f) = &ffi {
        summary["ffi"] = f.json();
    }
    summary["ratios"] = json!(report.ratios());
    println!("BENCH_JSON {summary}");
    Ok(())
}

struct Report<'a> {
    floor: Option<&'a (Latency, usize)>,
    host: Option<&'a HostFigures>,
    relay: Option<&'a RelayFigures>,
    long: Option<&'a LongFigures>,
}

impl Report<'_> {
    /// Perch's p50 over the relay's and over the echo floor, where both sides were measured.
    fn ratios(&self) -> Value {
        let mut out = json!({});
        let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
        if let (Some(h), Some(r)) = (self.host, self.relay) {
            out["perch_over_relay_p50"] = json!(round3(h.one.p50_us / r.one.p50_us));
        }
        if let (Some(l), Some(r)) = (self.long, self.relay)
            && let Some(first) = l.blocks.first()
        {
            out["perch_block1_over_relay_block_p50"] = json!(round3(first.p50_us / r.block.p50_us));
        }
        if let (Some(h), Some((f, _))) = (self.host, self.floor) {
            out["perch_over_floor_p50"] = json!(round3(h.one.p50_us / f.p50_us));
        }
        if let (Some(r), Some((f, _))) = (self.relay, self.floor) {
            out["relay_over_floor_p50"] = json!(round3(r.one.p50_us / f.p50_us));
        }
        out
    }

    fn print(&self) {
        let header = || {
            println!(
                "{:<46} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "", "p50", "p90", "p99", "max", "mean"
            );
        };
        let row = |name: String, l: &Latency| {
            println!(
                "{:<46} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                name, l.p50_us, l.p90_us, l.p99_us, l.max_us, l.mean_us
            );
        };
        if self.floor.is_some() || self.host.is_some() || self.relay.is_some() {
            println!();
            println!(
                "Round-trip latency ({SAMPLES} sequential calls after {WARMUP} warm-up), microseconds"
            );
            header();
        }
        if let Some((floor, echo_len)) = self.floor {
            row(
                format!("echo floor (tokio-tungstenite, {echo_len} B)"),
                floor,
            );
        }
        if let Some(h) = self.host {
            row(
                format!("node.invoke, 1 node ({} B request)", h.frame_len),
                &h.one,
            );
            row(
                format!("node.invoke, {NODES} nodes, random target"),
                &h.many,
            );
        }
        if let Some(r) = self.relay {
            row("node.invoke via the Node ws relay, 1 node".into(), &r.one);
            row(
                format!("  same, one block of {BLOCK} (no warm-up)"),
                &r.block,
            );
        }
        if let Some(l) = self.long {
            println!();
            println!(
                "Long run: {LONG_CALLS} sequential node.invoke calls to 1 node of a fresh host \
                 (fresh keys, after {WARMUP} warm-up), per block of {BLOCK}, microseconds"
            );
            header();
            for (i, b) in l.blocks.iter().enumerate() {
                row(
                    format!(
                        "block {:>2} (calls {}-{})",
                        i + 1,
                        i * BLOCK + 1,
                        (i + 1) * BLOCK
                    ),
                    b,
                );
            }
            if let Some(r) = self.relay {
                row(format!("relay, one block of {BLOCK}"), &r.block);
            }
            println!(
                "last block p50 / first block p50: {:.3} (goal: at most 1.2)",
                l.drift()
            );
            println!(
                "perch serve VmRSS before / after: {:.1} / {:.1} MiB",
                mib(l.mem_before.rss_kib),
                mib(l.mem_after.rss_kib)
            );
        }
        let ratios = self.ratios();
        if ratios.as_object().is_some_and(|o| !o.is_empty()) {
            println!();
            println!("p50 ratios");
            let line = |key: &str, what: &str| {
                if let Some(x) = ratios[key].as_f64() {
                    println!("  {what:<60} {x:>7.3}");
                }
            };
            line(
                "perch_over_relay_p50",
                "Perch 1 node / relay 1 node (goal: at most 0.5)",
            );
            line(
                "perch_block1_over_relay_block_p50",
                "Perch long run block 1 / relay block",
            );
            line("perch_over_floor_p50", "Perch 1 node / echo floor");
            line("relay_over_floor_p50", "relay 1 node / echo floor");
        }
        if let Some(r) = self.relay {
            println!(
                "relay (node) VmRSS with 1 node after its calls: {:.1} MiB",
                mib(r.mem.rss_kib)
            );
        }
        if let Some(h) = self.host {
            print_memory(h);
        }
        println!();
    }
}

fn print_memory(h: &HostFigures) {
    println!();
    println!("perch serve memory, MiB");
    println!("{:<46} {:>9} {:>9}", "", "VmRSS", "VmHWM");
    let mem = |name: &str, m: Mem| {
        println!(
            "{:<46} {:>9.1} {:>9.1}",
            name,
            mib(m.rss_kib),
            mib(m.hwm_kib)
        );
    };
    mem("idle, no connection", h.mem_idle);
    mem("1 node (+2 operators)", h.mem_one);
    mem(
        &format!("1 node, after {} invokes", WARMUP + SAMPLES),
        h.mem_one_after,
    );
    mem(&format!("{NODES} nodes, settled"), h.mem_many);
    mem(
        &format!("{NODES} nodes, after {} invokes", WARMUP + SAMPLES),
        h.mem_many_after,
    );
    println!();
    println!(
        "per connected node: {:.1} KiB of host RSS ((RSS_{NODES} - RSS_1) / {})",
        h.per_node_kib,
        NODES - 1
    );
    println!(
        "pairing {} nodes ({PAIR_PARALLEL} at a time): {:.2} s ({:.0} nodes/s)",
        NODES - 1,
        h.pair_time.as_secs_f64(),
        (NODES - 1) as f64 / h.pair_time.as_secs_f64()
    );
}
