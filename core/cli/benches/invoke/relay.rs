//! The Node relay that the bench times Perch against (`benches/relay/relay.mjs`): its npm
//! packages, its process, and a node connecting to it. The relay stores nothing, so a node
//! with a valid signature is admitted without pairing.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use perch_protocol::DeviceIdentity;

use super::{
    Mem, START_WAIT, Ws, free_port, node_connect_params, open, read_mem, request, wait_event,
};

/// Where the relay and its package.json live.
const RELAY_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/relay");
/// Oldest Node.js major version the relay runs on.
const NODE_MIN_MAJOR: u32 = 18;

/// A running relay, killed and reaped when dropped.
pub struct Relay {
    child: Child,
    port: u16,
    /// The operator token the relay was started with.
    pub token: String,
    /// `node --version`.
    pub node_version: String,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Relay {
    /// Starts `node relay.mjs` on a free loopback port and waits until it accepts connections.
    pub async fn start() -> Result<Relay> {
        let node_version = prepare()?;
        let mut secret = [0u8; 16];
        getrandom::fill(&mut secret).map_err(|e| anyhow!("no randomness for a token: {e}"))?;
        let token = hex::encode(secret);
        let port = free_port()?;
        let child = Command::new("node")
            .arg("relay.mjs")
            .args(["--port", &port.to_string()])
            .current_dir(RELAY_DIR)
            .env("RELAY_TOKEN", &token)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start `node relay.mjs`")?;
        let mut relay = Relay {
            child,
            port,
            token,
            node_version,
        };
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Some(status) = relay.child.try_wait()? {
                bail!("the relay exited during start-up ({status})");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(relay);
            }
            if Instant::now() > deadline {
                bail!("the relay did not listen on 127.0.0.1:{port} within {START_WAIT:?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The relay's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The relay's WebSocket URL.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// The relay process's memory.
    pub fn mem(&self) -> Result<Mem> {
        read_mem(self.pid())
    }
}

/// Checks for Node.js and installs the relay's npm packages (`npm ci`) when they are missing
/// or not the pinned version; returns `node --version`.
pub fn prepare() -> Result<String> {
    let dir = Path::new(RELAY_DIR);
    let out = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| {
            anyhow!(
                "the relay scenario needs Node.js {NODE_MIN_MAJOR} or newer as `node` on PATH \
             (scripts/setup.sh test installs it): {e}"
            )
        })?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| anyhow!("cannot read the Node.js version from {version:?}"))?;
    if major < NODE_MIN_MAJOR {
        bail!("the relay needs Node.js {NODE_MIN_MAJOR} or newer; `node --version` is {version}");
    }
    let wanted = pinned_ws(dir)?;
    if installed_ws(dir).as_deref() != Some(wanted.as_str()) {
        eprintln!("bench: installing the relay's npm packages (npm ci in {RELAY_DIR})...");
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .map_err(|e| {
                anyhow!(
                    "cannot run `npm ci` for the relay in {RELAY_DIR}: {e}; install npm \
                     (scripts/setup.sh test does)"
                )
            })?;
        if !status.success() {
            bail!(
                "`npm ci` for the relay in {RELAY_DIR} failed ({status}); it installs ws {wanted} \
                 from the npm registry as pinned in package-lock.json"
            );
        }
        if installed_ws(dir).as_deref() != Some(wanted.as_str()) {
            bail!("`npm ci` in {RELAY_DIR} did not install ws {wanted}");
        }
    }
    Ok(version)
}

/// The exact `ws` version package.json pins.
fn pinned_ws(dir: &Path) -> Result<String> {
    let path = dir.join("package.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    v["dependencies"]["ws"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{} pins no ws version", path.display()))
}

/// The `ws` version in node_modules, if any.
fn installed_ws(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("node_modules/ws/package.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["version"].as_str().map(str::to_string)
}

/// Connects a node to the relay with the same signed `connect` that Perch's nodes send.
pub async fn connect_node(url: &str, id: &DeviceIdentity, name: &str) -> Result<Ws> {
    let mut ws = open(url, true).await?;
    let ch = wait_event(&mut ws, "connect.challenge").await?;
    let nonce = ch["nonce"]
        .as_str()
        .ok_or_else(|| anyhow!("relay challenge without nonce"))?;
    request(
        &mut ws,
        "n1",
        "connect",
        node_connect_params(id, name, nonce),
    )
    .await?
    .map_err(|e| anyhow!("the relay refused the node: {e}"))?;
    Ok(ws)
}

/// Checks that the relay really verifies: a node whose signature covers another payload is
/// refused, so the figures include the Ed25519 work.
pub async fn check_refuses_bad_signature(url: &str, id: &DeviceIdentity) -> Result<()> {
    let mut ws = open(url, true).await?;
    let ch = wait_event(&mut ws, "connect.challenge").await?;
    let nonce = ch["nonce"]
        .as_str()
        .ok_or_else(|| anyhow!("relay challenge without nonce"))?;
    let mut params = node_connect_params(id, "bench-forged", nonce);
    params["device"]["signature"] = Value::String(id.sign_b64("not the v3 payload"));
    match request(&mut ws, "n1", "connect", params).await? {
        Ok(_) => bail!("the relay admitted a node with a signature over the wrong payload"),
        Err(e) if e["code"] == "UNAUTHORIZED" => Ok(()),
        Err(e) => bail!("the relay refused a bad signature with an unexpected error: {e}"),
    }
}
