//! Test hosts in network namespaces: two namespaces joined by a veth pair (A holds
//! 10.231.0.1, B 10.231.0.2), and `perch serve` / `perch node run` processes inside them.
//! Nothing here touches the machine's own interfaces. Needs root and `ip netns`. Shared with
//! `core/cli/tests` through `core/cli/tests/common/mod.rs`.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use crate::procs::PERCH;
/// A's address on the veth.
pub const HOST_IP: &str = "10.231.0.1";
/// B's address on the veth.
pub const BROWSER_IP: &str = "10.231.0.2";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs a command that must succeed (namespace and link set-up), panicking with its stderr.
pub fn run_ok(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair: A holds 10.231.0.1, B holds 10.231.0.2. Deleted on
/// drop, however the test ends (deleting a namespace deletes its end of the veth too).
pub struct NetPair {
    /// The host's namespace (10.231.0.1).
    pub a: String,
    /// The other machine's namespace (10.231.0.2).
    pub b: String,
    /// B's end of the veth, for captures on the link.
    pub veth_b: String,
}

impl NetPair {
    /// Creates both namespaces and the link; panics (after cleaning up) if it cannot.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let id = format!(
            "{}x{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let pair = NetPair {
            a: format!("perch-a-{id}"),
            b: format!("perch-b-{id}"),
            veth_b: format!("pvb{id}"),
        };
        let veth_a = format!("pva{id}");
        assert!(veth_a.len() <= 15, "interface name too long: {veth_a}");
        // The guard exists before the first namespace, so a failure half-way still cleans up.
        run_ok(&["ip", "netns", "add", &pair.a]);
        run_ok(&["ip", "netns", "add", &pair.b]);
        run_ok(&[
            "ip",
            "link",
            "add",
            &veth_a,
            "type",
            "veth",
            "peer",
            "name",
            &pair.veth_b,
        ]);
        run_ok(&["ip", "link", "set", &veth_a, "netns", &pair.a]);
        run_ok(&["ip", "link", "set", &pair.veth_b, "netns", &pair.b]);
        run_ok(&[
            "ip",
            "-n",
            &pair.a,
            "addr",
            "add",
            &format!("{HOST_IP}/24"),
            "dev",
            &veth_a,
        ]);
        run_ok(&[
            "ip",
            "-n",
            &pair.b,
            "addr",
            "add",
            &format!("{BROWSER_IP}/24"),
            "dev",
            &pair.veth_b,
        ]);
        for (ns, dev) in [(&pair.a, &veth_a), (&pair.b, &pair.veth_b)] {
            run_ok(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            run_ok(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        pair
    }

    /// A command that runs `program` inside namespace `ns`.
    pub fn cmd(ns: &str, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// `perch discover --json` in namespace `ns`; the parsed array.
    pub fn discover(&self, ns: &str, extra: &[&str]) -> Vec<Value> {
        let out = Self::cmd(ns, PERCH)
            .args(["discover", "--json", "--timeout", "4000"])
            .args(extra)
            .env("PERCH_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "perch discover failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        match serde_json::from_slice(&out.stdout) {
            Ok(Value::Array(v)) => v,
            _ => panic!(
                "perch discover printed no JSON array: {}",
                String::from_utf8_lossy(&out.stdout)
            ),
        }
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A `perch serve` in a namespace; stopped with SIGTERM on drop (so it says goodbye), killed if
/// it does not exit in time. Its stderr log goes to `<data dir>/serve.log`.
pub struct Host {
    /// The running `perch serve`, until stopped.
    pub child: Option<Child>,
    /// Its data directory.
    pub dir: tempfile::TempDir,
    /// The port it listens on.
    pub port: u16,
}

impl Host {
    /// Writes `perch.toml` (`[gateway]` body) and starts `perch serve --bind BIND:PORT` in `ns`.
    pub fn start(ns: &str, bind_ip: &str, port: u16, gateway_toml: &str) -> Host {
        Self::start_with(ns, bind_ip, port, gateway_toml, &[])
    }

    /// Starts a stopped host again on its data directory (same key, same pairings).
    pub fn restart(ns: &str, bind_ip: &str, port: u16, mut old: Host) -> Host {
        old.stop();
        let dir = std::mem::replace(&mut old.dir, tempfile::tempdir().unwrap());
        drop(old);
        // A fresh log, so waits look at this run only.
        let _ = std::fs::rename(
            dir.path().join("serve.log"),
            dir.path().join("serve.prev.log"),
        );
        Self::spawn_in(ns, bind_ip, port, dir, &[])
    }

    /// Like `start`, with extra `perch serve` flags.
    pub fn start_with(
        ns: &str,
        bind_ip: &str,
        port: u16,
        gateway_toml: &str,
        flags: &[&str],
    ) -> Host {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("perch.toml"),
            format!("[gateway]\n{gateway_toml}\n"),
        )
        .unwrap();
        Self::spawn_in(ns, bind_ip, port, dir, flags)
    }

    fn spawn_in(
        ns: &str,
        bind_ip: &str,
        port: u16,
        dir: tempfile::TempDir,
        flags: &[&str],
    ) -> Host {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("serve.log"))
            .unwrap();
        let child = NetPair::cmd(ns, PERCH)
            .args([
                "serve",
                "--bind",
                &format!("{bind_ip}:{port}"),
                "--data-dir",
            ])
            .arg(dir.path())
            .args(flags)
            .env("PERCH_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut host = Host {
            child: Some(child),
            dir,
            port,
        };
        host.wait_for_log("gateway listening", Duration::from_secs(20));
        host
    }

    /// The host's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("serve.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Waits until the log says `needle`; panics if the host exits or `limit` passes.
    pub fn wait_for_log(&mut self, needle: &str, limit: Duration) {
        let start = Instant::now();
        loop {
            if self.log().contains(needle) {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "perch serve exited ({status}) before {needle:?}:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < limit,
                "no {needle:?} in the host log after {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The host key fingerprint from `host-identity.json`.
    pub fn fingerprint(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("host-identity.json")).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        v["fingerprint"].as_str().unwrap().to_string()
    }

    /// The host's data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Host {
    /// Like `wait_for_log` for a host the test only reads.
    pub fn wait_for_log_ro(&self, needle: &str) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no {needle:?} in the host log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A `perch node run` in a namespace, its output in `<dir>/node.log`; killed on drop.
pub struct NodeProc {
    child: Child,
    log: PathBuf,
}

impl NodeProc {
    /// Starts `perch node run --data-dir DIR ARGS...` in namespace `ns`.
    pub fn start(ns: &str, dir: &Path, args: &[&str]) -> NodeProc {
        let log = dir.join("node.log");
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = NetPair::cmd(ns, PERCH)
            .args(["node", "run", "--data-dir"])
            .arg(dir)
            .args(args)
            .env("PERCH_LOG", "info")
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        NodeProc { child, log }
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Whether the process is still running (it has not exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit; its status.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "node still running:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An operator command run in the host's namespace, `--json`, against `host`.
pub fn ns_cli(ns: &str, host: &Host, args: &[&str]) -> Result<Value, Value> {
    let out = NetPair::cmd(ns, PERCH)
        .args(args)
        .args(["--json", "--data-dir"])
        .arg(host.data_dir())
        .args(["--gateway", &format!("ws://{HOST_IP}:{}", host.port)])
        .env("PERCH_LOG", "warn")
        .output()
        .unwrap();
    crate::procs::json_outcome(&out)
}

/// Polls `f` (blocking) until it yields Some, or panics after `limit`.
pub fn eventually_sync<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(150));
    }
}
