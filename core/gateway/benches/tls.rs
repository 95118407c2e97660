//! What TLS costs on the gateway's port, measured against plain WebSocket on the same host in
//! the same run: a new connection up to the host's signed challenge (TCP, the TLS 1.3 handshake
//! with the chain check against the pinned key, the upgrade), and one operator request's round
//! trip on a connection that is already open.
//!
//! `cargo bench -p perch-gateway --bench tls`; figures in docs/benchmarks.md.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use perch_gateway::testing::operator_connect_params;
use perch_gateway::{GatewayConfig, GatewayOnly, RunningGateway};
use perch_tls::{HostPin, HostSocket};

struct Bench {
    gw: RunningGateway,
    _dir: tempfile::TempDir,
    token: String,
    fingerprint: String,
}

async fn start() -> Bench {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = GatewayConfig::defaults(dir.path().to_path_buf());
    cfg.bind = "127.0.0.1:0".parse().expect("addr");
    let gw = perch_gateway::start(cfg, Arc::new(GatewayOnly))
        .await
        .expect("gateway");
    let token = std::fs::read_to_string(dir.path().join("operator.token"))
        .expect("token")
        .trim()
        .to_string();
    let fingerprint = perch_host_fingerprint(dir.path());
    Bench {
        gw,
        _dir: dir,
        token,
        fingerprint,
    }
}

/// The host key's fingerprint, as a node pins it: the challenge's proof carries it.
fn perch_host_fingerprint(dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(dir.join("host-identity.json")).expect("host key");
    let v: Value = serde_json::from_str(&text).expect("json");
    let key = v["privateKey"].as_str().expect("privateKey");
    perch_protocol::DeviceIdentity::from_private_b64(key)
        .expect("key")
        .device_id()
        .to_string()
}

async fn dial(url: &str, pin: &HostPin) -> HostSocket {
    perch_tls::dial_host(url, "bench-client-nonce-0123456789abcdef", pin.clone())
        .await
        .expect("dial")
        .socket
}

async fn next_text(ws: &mut HostSocket) -> Value {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).expect("json"),
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}"),
        }
    }
}

async fn request(ws: &mut HostSocket, id: &str, method: &str, params: Value) -> Value {
    let frame = json!({"type": "req", "id": id, "method": method, "params": params});
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .expect("send");
    loop {
        let v = next_text(ws).await;
        if v["type"] == "res" && v["id"] == id {
            return v;
        }
    }
}

fn transports(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let b = rt.block_on(start());
    let addr = b.gw.addr;
    let pin = HostPin::Fingerprint(b.fingerprint.clone());
    let urls = [
        ("ws", format!("ws://{addr}")),
        ("wss", format!("wss://{addr}")),
    ];

    let mut g = c.benchmark_group("connect_to_challenge");
    g.measurement_time(Duration::from_secs(8));
    for (name, url) in &urls {
        g.bench_function(*name, |bench| {
            bench.to_async(&rt).iter(|| async {
                let mut ws = dial(url, &pin).await;
                let challenge = next_text(&mut ws).await;
                assert_eq!(challenge["event"], "connect.challenge");
                let _ = ws.close(None).await;
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("status_round_trip");
    g.measurement_time(Duration::from_secs(5));
    for (name, url) in &urls {
        let mut ws = rt.block_on(async {
            let mut ws = dial(url, &pin).await;
            next_text(&mut ws).await;
            let hello = request(&mut ws, "c", "connect", operator_connect_params(&b.token)).await;
            assert_eq!(hello["ok"], true, "{hello}");
            ws
        });
        let mut n = 0u64;
        g.bench_function(*name, |bench| {
            bench.iter(|| {
                n += 1;
                let id = format!("s{n}");
                let r = rt.block_on(request(&mut ws, &id, "status", json!({})));
                assert_eq!(r["ok"], true);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, transports);
criterion_main!(benches);
