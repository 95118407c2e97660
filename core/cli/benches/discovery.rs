//! Discovery and reconnection timings across two network namespaces (root and `ip netns`):
//!
//! 1. host start → a browser in the other namespace has found it over mDNS (20 runs);
//! 2. host restart → a paired node in the other namespace is online again (10 runs).
//!
//! `cargo bench -p perch-cli --bench discovery`. Without root or namespaces it says so and
//! exits 0 having measured nothing. Only addresses inside the namespaces it creates are used.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use perch_attack_tests::netns::{HOST_IP, Host, NetPair, PERCH};

const DISCOVERY_RUNS: usize = 20;
const RESTART_RUNS: usize = 10;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn summary(name: &str, mut ms: Vec<f64>) -> Value {
    ms.sort_by(|a, b| a.total_cmp(b));
    let (p50, p90) = (percentile(&ms, 50.0), percentile(&ms, 90.0));
    println!(
        "{name:<52} n={:<3} median {p50:>7.0} ms  p90 {p90:>7.0} ms  min {:>7.0}  max {:>7.0}",
        ms.len(),
        ms[0],
        ms[ms.len() - 1]
    );
    serde_json::json!({"name": name, "n": ms.len(), "p50_ms": p50, "p90_ms": p90,
                       "min_ms": ms[0], "max_ms": ms[ms.len() - 1]})
}

fn can_use_netns() -> Result<(), String> {
    if Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout != b"0\n")
        .unwrap_or(true)
    {
        return Err("not root".into());
    }
    let probe = format!("perch-bench-probe-{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &probe])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        return Err("cannot create a network namespace".into());
    }
    let _ = Command::new("ip").args(["netns", "del", &probe]).status();
    Ok(())
}

/// Starts a host in A and, at the same moment, `perch discover --first` in B; the time from
/// spawning the host until the browser has it.
fn time_to_discovery(net: &NetPair, port: u16) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("perch.toml"),
        "[gateway]\nname = \"Bench Host\"\n",
    )
    .unwrap();
    let start = Instant::now();
    let mut host = NetPair::cmd(&net.a, PERCH)
        .args(["serve", "--bind", &format!("0.0.0.0:{port}"), "--data-dir"])
        .arg(dir.path())
        .env("PERCH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = NetPair::cmd(&net.b, PERCH)
        .args(["discover", "--first", "--json", "--timeout", "15000"])
        .env("PERCH_LOG", "warn")
        .output()
        .unwrap();
    let elapsed = start.elapsed().as_secs_f64() * 1000.0;
    let _ = Command::new("kill")
        .args(["-TERM", &host.id().to_string()])
        .status();
    let _ = host.wait();
    let found: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        found.as_array().map(Vec::len),
        Some(1),
        "the browser did not find the host: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    elapsed
}

fn nodes_online(net: &NetPair, host: &Host) -> bool {
    let out = NetPair::cmd(&net.a, PERCH)
        .args(["nodes", "list", "--json", "--data-dir"])
        .arg(host.data_dir())
        .args(["--gateway", &format!("ws://{HOST_IP}:{}", host.port)])
        .env("PERCH_LOG", "error")
        .output();
    match out {
        Ok(o) if o.status.success() => serde_json::from_slice::<Value>(&o.stdout)
            .ok()
            .and_then(|v| v.as_array().and_then(|a| a.first().cloned()))
            .is_some_and(|n| n["online"] == true),
        _ => false,
    }
}

fn wait_online(net: &NetPair, host: &Host, limit: Duration) -> Option<Instant> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if nodes_online(net, host) {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

fn main() {
    if let Err(why) = can_use_netns() {
        println!("discovery bench skipped: {why} (needs root and ip netns)");
        return;
    }
    let net = NetPair::new();
    let mut results = Vec::new();

    let mut times = Vec::new();
    for i in 0..DISCOVERY_RUNS {
        times.push(time_to_discovery(&net, 18900 + (i % 5) as u16));
        std::thread::sleep(Duration::from_millis(300));
    }
    results.push(summary(
        "host start -> found by a browser in another namespace",
        times,
    ));

    // A node paired with a setup code, then the host restarted under it.
    let mut host = Host::start(&net.a, "0.0.0.0", 18950, "name = \"Restart Bench\"");
    let code_out = NetPair::cmd(&net.a, PERCH)
        .args(["devices", "setup-code", "--json", "--data-dir"])
        .arg(host.data_dir())
        .args(["--gateway", &format!("ws://{HOST_IP}:18950")])
        .output()
        .unwrap();
    let code: Value = serde_json::from_slice(&code_out.stdout).unwrap();
    let node_dir = tempfile::tempdir().unwrap();
    let mut node = NetPair::cmd(&net.b, PERCH)
        .args(["node", "run", "--name", "Bench Node", "--data-dir"])
        .arg(node_dir.path())
        .args(["--setup-code", code["setupCode"].as_str().unwrap()])
        .env("PERCH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_online(&net, &host, Duration::from_secs(30)).is_some(),
        "node never came online"
    );
    let mut back = Vec::new();
    for _ in 0..RESTART_RUNS {
        let started = Instant::now();
        host = Host::restart(&net.a, "0.0.0.0", 18950, host);
        let Some(at) = wait_online(&net, &host, Duration::from_secs(60)) else {
            panic!("node did not come back after a restart");
        };
        back.push(at.duration_since(started).as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(500));
    }
    results.push(summary(
        "host restart (SIGTERM + start) -> node online again",
        back,
    ));
    let _ = node.kill();
    let _ = node.wait();
    drop(host);
    println!(
        "BENCH_JSON {}",
        serde_json::json!({"bench": "discovery", "results": results})
    );
}
