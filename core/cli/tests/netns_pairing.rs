//! Zero-configuration pairing across two network namespaces joined by a veth pair: `perch
//! serve` in A, `perch node run` without `--gateway` in B. The node finds the host over
//! multicast, pairs with a setup code (or by approval), and answers invokes; over `wss://`,
//! with a packet capture on the link that finds no cleartext. Needs root and `ip netns`;
//! `scripts/netns-tests.sh` runs these.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::netns::{HOST_IP, Host, NetPair, NodeProc, PERCH, eventually_sync, ns_cli};

/// An operator command run in the host's namespace, `--json`.
fn cli(ns: &str, host: &Host, args: &[&str]) -> Result<Value, Value> {
    ns_cli(ns, host, args)
}

fn eventually<T>(what: &str, limit: Duration, f: impl FnMut() -> Option<T>) -> T {
    eventually_sync(what, limit, f)
}

fn online(ns: &str, host: &Host, name: &str) -> Value {
    eventually(&format!("{name} online"), Duration::from_secs(30), || {
        let list = cli(ns, host, &["nodes", "list"]).ok()?;
        list.as_array()?
            .iter()
            .find(|n| n["displayName"] == name && n["online"] == true)
            .cloned()
    })
}

#[test]
#[ignore = "needs root and ip netns; scripts/test.sh runs it"]
fn a_node_finds_the_host_over_multicast_and_pairs_with_a_setup_code() {
    let net = NetPair::new();
    let host = Host::start(&net.a, "0.0.0.0", 18811, "name = \"Pairing Host\"");
    host.wait_for_log_ro("advertising on mDNS");
    let minted = cli(&net.a, &host, &["devices", "setup-code"]).unwrap();
    let code = minted["setupCode"].as_str().unwrap().to_string();
    assert_eq!(minted["gatewayUrls"][0], format!("wss://{HOST_IP}:18811"));

    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(
        &net.b,
        dir.path(),
        &[
            "--setup-code",
            &code,
            "--name",
            "Netns Node",
            "--location",
            "47.3769,8.5417,20",
        ],
    );
    online(&net.a, &host, "Netns Node");
    assert!(
        node.log().contains("over mDNS"),
        "found by multicast:\n{}",
        node.log()
    );
    let devices = cli(&net.a, &host, &["devices", "list"]).unwrap();
    assert_eq!(
        devices["pending"],
        serde_json::json!([]),
        "no approval was needed"
    );

    let fix = cli(
        &net.a,
        &host,
        &["nodes", "invoke", "Netns Node", "location.get"],
    )
    .unwrap();
    assert_eq!(fix["lat"], 47.3769);
    assert_eq!(fix["lon"], 8.5417);
    assert_eq!(fix["source"], "configured");

    // The node pinned the host's key.
    let pins: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("node-hosts.json")).unwrap())
            .unwrap();
    assert_eq!(
        pins["hosts"][&minted["hostId"].as_str().unwrap()]["fingerprint"],
        host.fingerprint()
    );

    // The same code again, from another device: refused with a clear error.
    let dir2 = tempfile::tempdir().unwrap();
    let mut second = NodeProc::start(
        &net.b,
        dir2.path(),
        &["--setup-code", &code, "--name", "Second"],
    );
    let status = second.wait_exit(Duration::from_secs(30));
    assert!(!status.success());
    assert!(second.log().contains("already used"), "{}", second.log());

    // A mistyped code never reaches the network.
    let mut typo = code.clone();
    let last = typo.pop().unwrap();
    typo.push(if last == '0' { '1' } else { '0' });
    let dir3 = tempfile::tempdir().unwrap();
    let mut bad = NodeProc::start(&net.b, dir3.path(), &["--setup-code", &typo]);
    assert!(!bad.wait_exit(Duration::from_secs(10)).success());
    assert!(bad.log().contains("--setup-code"), "{}", bad.log());
    drop(node);
}

#[test]
#[ignore = "needs root and ip netns; scripts/test.sh runs it"]
fn a_node_without_an_address_discovers_the_host_and_waits_for_approval() {
    let net = NetPair::new();
    let host = Host::start(&net.a, "0.0.0.0", 18812, "name = \"Approval Host\"");
    host.wait_for_log_ro("advertising on mDNS");
    let dir = tempfile::tempdir().unwrap();
    let _node = NodeProc::start(&net.b, dir.path(), &["--name", "Finder"]);
    let request_id = eventually("a pending request", Duration::from_secs(30), || {
        let l = cli(&net.a, &host, &["devices", "list"]).ok()?;
        l["pending"].as_array()?.first()?["requestId"]
            .as_str()
            .map(String::from)
    });
    cli(&net.a, &host, &["devices", "approve", &request_id]).unwrap();
    online(&net.a, &host, "Finder");
    let info = cli(&net.a, &host, &["nodes", "invoke", "Finder", "device.info"]).unwrap();
    assert!(info["systemName"].is_string());
    // Presence knows where it connects from.
    let presence = cli(&net.a, &host, &["presence"]).unwrap();
    let entry = presence["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["displayName"] == "Finder")
        .cloned()
        .unwrap();
    assert_eq!(entry["remoteAddr"], common::netns::BROWSER_IP);
}

#[test]
#[ignore = "needs root and ip netns; scripts/test.sh runs it"]
fn the_node_is_back_soon_after_a_host_restart() {
    let net = NetPair::new();
    let mut host = Host::start(&net.a, "0.0.0.0", 18813, "name = \"Restart Host\"");
    host.wait_for_log_ro("advertising on mDNS");
    let code = cli(&net.a, &host, &["devices", "setup-code"]).unwrap()["setupCode"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let _node = NodeProc::start(
        &net.b,
        dir.path(),
        &["--setup-code", &code, "--name", "Stayer"],
    );
    online(&net.a, &host, "Stayer");
    let data = host.dir.path().to_path_buf();
    host.stop();
    // Same data directory, same port: same key, same pairing.
    let restarted = Host::restart(&net.a, "0.0.0.0", 18813, host);
    let started = Instant::now();
    online(&net.a, &restarted, "Stayer");
    assert!(started.elapsed() < Duration::from_secs(20));
    let devices = cli(&net.a, &restarted, &["devices", "list"]).unwrap();
    assert_eq!(devices["pending"], serde_json::json!([]), "no new approval");
    assert_eq!(restarted.data_dir(), data);
}

/// `tcpdump` on B's end of the veth, writing every packet to a file until stopped.
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn start(net: &NetPair, dir: &Path) -> Capture {
        let file = dir.join("link.pcap");
        let err = dir.join("tcpdump.log");
        let child = NetPair::cmd(&net.b, "tcpdump")
            // `-Z root`: tcpdump otherwise drops to its own user, who cannot write in our 0700 dir;
            // immediate mode: packets still in the ring buffer at SIGINT would be lost.
            .args([
                "-i",
                &net.veth_b,
                "-Z",
                "root",
                "--immediate-mode",
                "-U",
                "-n",
                "-s",
                "0",
                "-w",
            ])
            .arg(&file)
            .arg("tcp")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("tcpdump (scripts/setup.sh test installs it)");
        eventually("tcpdump listening", Duration::from_secs(10), || {
            std::fs::read_to_string(&err)
                .ok()
                .filter(|l| l.contains("listening on"))
        });
        Capture { child, file }
    }

    /// Stops the capture (SIGINT flushes it) and returns every captured byte.
    fn stop(mut self) -> Vec<u8> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        std::fs::read(&self.file).unwrap()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A plain HTTP GET from namespace `ns`, as an OpenClaw-style client without TLS would send it;
/// the host's whole answer.
fn plain_get(ns: &str, port: u16, path: &str) -> String {
    let script = format!(
        "exec 3<>/dev/tcp/{HOST_IP}/{port}; \
         printf 'GET {path} HTTP/1.1\\r\\nHost: {HOST_IP}:{port}\\r\\nConnection: close\\r\\n\\r\\n' >&3; \
         timeout 5 cat <&3"
    );
    let out = NetPair::cmd(ns, "bash")
        .args(["-c", &script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
#[ignore = "needs root and ip netns; scripts/test.sh runs it"]
fn over_the_network_everything_is_tls_and_a_capture_shows_no_cleartext() {
    let net = NetPair::new();
    let capture_dir = tempfile::tempdir().unwrap();
    let capture = Capture::start(&net, capture_dir.path());
    let host = Host::start(&net.a, "0.0.0.0", 18821, "name = \"TLS Host\"");
    host.wait_for_log_ro("advertising on mDNS");
    // The operator CLI in A is given ws://: the host answers 426 and the CLI moves to wss://,
    // pinned to the key in the data directory.
    let minted = cli(&net.a, &host, &["devices", "setup-code"]).unwrap();
    let code = minted["setupCode"].as_str().unwrap().to_string();
    assert_eq!(minted["gatewayUrls"][0], format!("wss://{HOST_IP}:18821"));
    let bootstrap = perch_protocol::setup_code::SetupCode::decode(&code)
        .unwrap()
        .bootstrap_token;

    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(
        &net.b,
        dir.path(),
        &[
            "--setup-code",
            &code,
            "--name",
            "Cleartext Canary",
            "--location",
            "47.3769,8.5417,20",
        ],
    );
    online(&net.a, &host, "Cleartext Canary");
    let fix = cli(
        &net.a,
        &host,
        &["nodes", "invoke", "Cleartext Canary", "location.get"],
    )
    .unwrap();
    assert_eq!(fix["lat"], 47.3769);

    // An operator on B reaches the host over wss:// too, pinned by the key file.
    let out = NetPair::cmd(&net.b, PERCH)
        .args(["status", "--json", "--gateway"])
        .arg(format!("wss://{HOST_IP}:18821"))
        .arg("--data-dir")
        .arg(host.data_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Plain HTTP from the network is refused before anything is served.
    let refused = plain_get(&net.b, 18821, "/healthz?plain-canary-7f3a");
    assert!(refused.starts_with("HTTP/1.1 426"), "{refused:?}");
    assert!(refused.contains("wss://"), "{refused:?}");

    drop(node);
    let bytes = capture.stop();
    // The capture saw the link: the plain request is in it, and so is the host's answer.
    assert!(
        contains(&bytes, "plain-canary-7f3a"),
        "the capture recorded the link: {} bytes; tcpdump said {:?}",
        bytes.len(),
        std::fs::read_to_string(capture_dir.path().join("tcpdump.log"))
    );
    assert!(contains(&bytes, "426 Upgrade Required"));
    let operator_token = std::fs::read_to_string(host.data_dir().join("operator.token"))
        .unwrap()
        .trim()
        .to_string();
    for secret in [
        "Cleartext Canary",
        "47.3769",
        "8.5417",
        "connect.challenge",
        "hello-ok",
        "node.invoke",
        "deviceToken",
        bootstrap.as_str(),
        operator_token.as_str(),
    ] {
        assert!(
            !contains(&bytes, secret),
            "{secret:?} crossed the link in clear"
        );
    }
}

#[test]
#[ignore = "needs root and ip netns; scripts/test.sh runs it"]
fn plain_ws_from_the_network_is_the_users_choice() {
    let net = NetPair::new();
    // Off by default: a node given ws:// moves to wss:// and pairs by approval.
    let host = Host::start(
        &net.a,
        "0.0.0.0",
        18822,
        "name = \"Strict Host\"\nmdns = \"off\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProc::start(
        &net.b,
        dir.path(),
        &[
            "--gateway",
            &format!("ws://{HOST_IP}:18822"),
            "--name",
            "Upgrader",
        ],
    );
    let request_id = eventually("a pending request", Duration::from_secs(30), || {
        let l = cli(&net.a, &host, &["devices", "list"]).ok()?;
        l["pending"].as_array()?.first()?["requestId"]
            .as_str()
            .map(String::from)
    });
    cli(&net.a, &host, &["devices", "approve", &request_id]).unwrap();
    online(&net.a, &host, "Upgrader");
    assert!(node.log().contains("using wss://"), "{}", node.log());
    drop(node);

    // Allowed: an OpenClaw-style client without TLS is served in plain.
    let open = Host::start(
        &net.a,
        "0.0.0.0",
        18823,
        "name = \"Open Host\"\nmdns = \"off\"\nallow_plain_ws = true",
    );
    let served = plain_get(&net.b, open.port, "/healthz");
    assert!(served.starts_with("HTTP/1.1 200"), "{served:?}");
}
