//! Shared setup: a data directory with mDNS off, fast supervisor timing, a real in-process
//! gateway, real nodes, and a waiting helper.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use perch_desktop::DesktopOptions;
use perch_desktop::host::HostOptions;
use perch_host::{Host, HostOptions as StartOptions, MdnsMode, RunningHost};
use tokio_util::sync::CancellationToken;

/// Longest wait for anything in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

/// A data directory whose perch.toml turns mDNS off (plus `extra` lines).
pub fn data_dir(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("perch.toml"),
        format!("[gateway]\nmdns = \"off\"\n{extra}"),
    )
    .unwrap();
    dir
}

/// Supervisor options with short probes and retries.
pub fn host_options(dir: &Path, bind: &str) -> HostOptions {
    let mut o = HostOptions::new(dir.to_path_buf());
    o.bind = Some(bind.parse().unwrap());
    o.probe_interval = Duration::from_millis(150);
    o.probe_timeout = Duration::from_millis(400);
    o.retry_base = Duration::from_millis(100);
    o.retry_cap = Duration::from_millis(400);
    o
}

/// Core options: fast timing, node mode as asked.
pub fn desktop_options(dir: &Path, bind: &str, node_mode: bool) -> DesktopOptions {
    let mut o = DesktopOptions::new(dir.to_path_buf());
    o.host = host_options(dir, bind);
    o.node_mode = node_mode;
    o.client_backoff_cap = Duration::from_millis(300);
    o
}

/// A host started by the test itself in `dir` (mDNS off), as `perch serve` would.
pub async fn gateway(dir: &Path, bind: SocketAddr) -> RunningHost {
    let options = StartOptions::new(dir)
        .with_bind(bind)
        .with_mdns(MdnsMode::Off);
    Host::start(options).await.unwrap()
}

/// A real node runtime in its own directory, running until `stop`.
pub struct TestNode {
    pub state: tokio::sync::watch::Receiver<perch_node::NodeState>,
    pub task: tokio::task::JoinHandle<Result<(), perch_node::NodeError>>,
    pub stop: CancellationToken,
    pub device_id: String,
    _dir: tempfile::TempDir,
}

pub fn start_node(url: &str, name: &str) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = perch_node::NodeConfig::new(url, name, dir.path());
    cfg.backoff_base = Duration::from_millis(100);
    cfg.backoff_cap = Duration::from_millis(500);
    let node = perch_node::Node::new(cfg, perch_node::Capabilities::new()).unwrap();
    let state = node.subscribe();
    let device_id = node.device_id().to_string();
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { node.run(stop.cancelled_owned()).await }
    });
    TestNode {
        state,
        task,
        stop,
        device_id,
        _dir: dir,
    }
}

/// Polls `probe` every 50 ms until it gives `Some`, or panics after [`WAIT`] with `what`.
pub async fn until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The operator token of a data directory.
pub fn token(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("operator.token"))
        .unwrap()
        .trim()
        .to_string()
}

/// The fingerprint of the host key in `dir`.
pub fn host_key(dir: &Path) -> String {
    perch_host::paths::read_host_fingerprint(dir)
        .unwrap()
        .unwrap()
}

/// A path inside a regular file: no directory can be made there.
pub fn unusable_dir(base: &Path) -> PathBuf {
    let file = base.join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    file.join("data")
}
