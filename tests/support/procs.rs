//! Real `perch` processes for end-to-end tests: finding the binary, spawning it (killed however
//! the test ends), picking a free port, running an operator command with `--json`, and waiting
//! with a bound. Shared with `core/cli/tests` through `core/cli/tests/procs/mod.rs`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};

/// The `perch` binary under test, usable wherever a program name is (`Command::new(PERCH)`).
pub const PERCH: PerchBin = PerchBin;

/// Stands for the `perch` binary: `PERCH_BIN`, else `perch` in the target directory of the
/// running test (cargo builds it for `cargo test --workspace` and for perch-cli's own tests).
#[derive(Debug, Clone, Copy)]
pub struct PerchBin;

impl PerchBin {
    /// Where the binary is; panics with how to build it if it is missing.
    pub fn path(self) -> &'static Path {
        static BIN: OnceLock<PathBuf> = OnceLock::new();
        BIN.get_or_init(find_perch)
    }
}

impl AsRef<OsStr> for PerchBin {
    fn as_ref(&self) -> &OsStr {
        self.path().as_os_str()
    }
}

impl AsRef<Path> for PerchBin {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

fn find_perch() -> PathBuf {
    if let Some(p) = std::env::var_os("PERCH_BIN") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "PERCH_BIN={} does not exist", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/debug/deps/TEST-HASH -> target/debug/perch
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join(format!("perch{}", std::env::consts::EXE_SUFFIX)))
        .expect("the target directory");
    assert!(
        bin.exists(),
        "{} is missing: build it first: cargo build -p perch-cli (cargo test --workspace does), \
         or point PERCH_BIN at it",
        bin.display()
    );
    bin
}

/// A binary built next to `perch` in the same target directory (`perch-desktop`), if present.
pub fn sibling_bin(name: &str) -> Option<PathBuf> {
    let bin = PERCH
        .path()
        .with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    bin.exists().then_some(bin)
}

/// A child process killed when the test ends, however it ends.
pub struct Proc(pub Child);

impl Proc {
    /// Kills the process and waits for it, so its port and files are free.
    pub async fn stop(&mut self) {
        let _ = self.0.start_kill();
        let _ = self.0.wait().await;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `perch ARGS` with its stdout discarded and its log (at `level`) on the test's stderr.
pub fn spawn_logged(args: &[&str], level: &str) -> Proc {
    Proc(
        Command::new(PERCH)
            .args(args)
            .env("PERCH_LOG", level)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    )
}

/// Starts `perch ARGS` with its stdout and its log (at `level`) appended to `log`, for tests
/// that read what the process said.
pub fn spawn_to_file(args: &[&str], level: &str, log: &Path) -> Proc {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let err = out.try_clone().unwrap();
    Proc(
        Command::new(PERCH)
            .args(args)
            .env("PERCH_LOG", level)
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    )
}

/// A file's text, empty if it does not exist (yet).
pub fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// What a `perch ... --json` run printed: `Ok(stdout)` when it succeeded, `Err(stdout)`
/// otherwise, parsed as JSON when it is JSON.
pub fn json_outcome(out: &std::process::Output) -> Result<Value, Value> {
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if out.status.success() { Ok(v) } else { Err(v) }
}

/// Runs `perch node access --json` as the node whose data directory is `node_dir` (its own
/// access record, read with its own key): `Ok(record)` or `Err(stdout)`.
pub async fn node_access(node_dir: &Path, extra: &[&str]) -> Result<Value, Value> {
    let out = Command::new(PERCH)
        .args(["node", "access", "--json", "--data-dir"])
        .arg(node_dir)
        .args(extra)
        .env_remove("PERCH_GATEWAY")
        .output()
        .await
        .unwrap();
    json_outcome(&out)
}

/// Runs an operator command with `--json` against the host on `port`: `Ok(stdout)` on success,
/// `Err(stdout)` otherwise (parsed as JSON when it is JSON).
pub async fn cli(host_dir: &Path, port: u16, args: &[&str]) -> Result<Value, Value> {
    let out = Command::new(PERCH)
        .args(args)
        .args(["--json", "--data-dir"])
        .arg(host_dir)
        .args(["--gateway", &format!("ws://127.0.0.1:{port}")])
        .output()
        .await
        .unwrap();
    json_outcome(&out)
}

/// Polls `f` until it yields Some, or panics after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// [`eventually`] with the usual 30 s bound.
pub async fn until<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually(what, Duration::from_secs(30), f).await
}

/// A perch.toml whose default tier is the fake provider at `base_url` (local: no credential).
pub fn fake_models_toml(base_url: &str) -> String {
    format!(
        "[models.default]\nprovider = \"openai\"\nmodel = \"test-model\"\nbase_url = \"{base_url}\"\n"
    )
}

/// A real `perch serve` on 127.0.0.1, its data directory and its log, for attacks on the host.
pub struct RealHost {
    /// The host's data directory (its key, the operator token, the database).
    pub dir: tempfile::TempDir,
    /// The port it listens on.
    pub port: u16,
    proc: Option<Proc>,
}

impl RealHost {
    /// Writes `perch_toml` into a fresh data directory, starts the host on a free loopback
    /// port and waits until `perch status` answers.
    pub async fn start(perch_toml: &str) -> RealHost {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("perch.toml"), perch_toml).unwrap();
        let mut host = RealHost {
            dir,
            port: free_port(),
            proc: None,
        };
        host.resume().await;
        host
    }

    /// Starts the host again on its data directory and port (same key, same pairings).
    pub async fn resume(&mut self) {
        let bind = format!("127.0.0.1:{}", self.port);
        let data_dir = self.dir.path().to_str().unwrap().to_string();
        self.proc = Some(spawn_to_file(
            &["serve", "--data-dir", &data_dir, "--bind", &bind],
            "info",
            &self.log_path(),
        ));
        until("the host to answer `perch status`", || async {
            self.cli(&["status"]).await.ok()
        })
        .await;
    }

    /// Kills the host and waits until it is gone; its port is free again.
    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop().await;
        }
    }

    /// `ws://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// An operator command with `--json` (see [`cli`]).
    pub async fn cli(&self, args: &[&str]) -> Result<Value, Value> {
        cli(self.dir.path(), self.port, args).await
    }

    /// The operator token the host wrote.
    pub fn token(&self) -> String {
        read_text(&self.dir.path().join("operator.token"))
            .trim()
            .to_string()
    }

    /// The host key fingerprint from `host-identity.json`.
    pub fn fingerprint(&self) -> String {
        let text = read_text(&self.dir.path().join("host-identity.json"));
        let v: Value = serde_json::from_str(&text).unwrap();
        v["fingerprint"].as_str().unwrap().to_string()
    }

    /// Where the host's log goes.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }

    /// The host's log so far.
    pub fn log(&self) -> String {
        read_text(&self.log_path())
    }
}

/// A real `perch node run`, its data directory and its log.
pub struct RealNode {
    /// The node's data directory (its key, its pins, its token).
    pub dir: tempfile::TempDir,
    /// The name it shows.
    pub name: String,
    proc: Proc,
}

impl RealNode {
    /// Starts `perch node run --gateway URL --name NAME EXTRA...` on a fresh data directory.
    pub fn start(gateway: &str, name: &str, extra: &[&str]) -> RealNode {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap().to_string();
        let mut args = vec![
            "node",
            "run",
            "--gateway",
            gateway,
            "--data-dir",
            &data_dir,
            "--name",
            name,
        ];
        args.extend_from_slice(extra);
        let proc = spawn_to_file(&args, "info", &dir.path().join("node.log"));
        RealNode {
            dir,
            name: name.to_string(),
            proc,
        }
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        read_text(&self.dir.path().join("node.log"))
    }

    /// The host keys this node pinned (`node-hosts.json`).
    pub fn pins(&self) -> Value {
        let text = read_text(&self.dir.path().join("node-hosts.json"));
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// `perch node access --json` as this node (its own access record, read with its own key
    /// while `perch node run` keeps serving): `Ok(record)` or `Err(stdout)`.
    pub async fn access(&self, extra: &[&str]) -> Result<Value, Value> {
        node_access(self.dir.path(), extra).await
    }

    /// Kills the node.
    pub async fn stop(&mut self) {
        self.proc.stop().await;
    }
}

/// Approves `node`'s pairing request on `host` through the CLI and waits until it is online;
/// returns its node id.
pub async fn pair_by_approval(host: &RealHost, node: &RealNode) -> String {
    let rid = until("a pairing request", || async {
        let l = host.cli(&["devices", "list"]).await.ok()?;
        l["pending"]
            .as_array()?
            .iter()
            .find(|p| p["displayName"] == node.name.as_str())?["requestId"]
            .as_str()
            .map(String::from)
    })
    .await;
    host.cli(&["devices", "approve", &rid]).await.unwrap();
    online(host, &node.name).await
}

/// Waits until the node called `name` is online on `host`; returns its node id.
pub async fn online(host: &RealHost, name: &str) -> String {
    until(&format!("{name} online"), || async {
        let l = host.cli(&["nodes", "list"]).await.ok()?;
        l.as_array()?
            .iter()
            .find(|n| n["displayName"] == name && n["online"] == true)?["nodeId"]
            .as_str()
            .map(String::from)
    })
    .await
}
