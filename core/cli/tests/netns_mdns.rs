//! mDNS discovery across real processes, inside network namespaces this test creates: a host
//! (`perch serve`) in namespace A, browsers (`perch discover`, python-zeroconf) in namespace B,
//! joined by a veth pair on 10.231.0.0/24. Nothing here multicasts on the machine's own
//! interfaces. Every test needs root and `ip netns`; `scripts/netns-tests.sh` runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::netns::{HOST_IP, Host, NetPair, PERCH};

const CONFLICT_LINE: &str = "mDNS name conflict";
const MINIMAL_KEYS: [&str; 6] = ["txtvers", "proto", "port", "hid", "fp", "tls"];
const FULL_KEYS: [&str; 8] = [
    "txtvers", "proto", "port", "hid", "fp", "tls", "name", "ver",
];

/// The Python to run the zeroconf fixture with: `PERCH_TEST_PYTHON` (set by
/// scripts/netns-tests.sh to one that imports zeroconf), else `python3`.
fn python() -> String {
    std::env::var("PERCH_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// A Python with the zeroconf package, or a failure that says how to get it.
fn require_zeroconf() {
    let ok = Command::new(python())
        .args(["-c", "import zeroconf"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{} cannot import zeroconf: install it (pip install zeroconf, or apt-get install \
         python3-zeroconf); scripts/netns-tests.sh does this before running these tests",
        python()
    );
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Runs the python-zeroconf browser in `ns` for a few seconds; the parsed array.
fn zeroconf_browse(ns: &str) -> Vec<Value> {
    let out: Output = NetPair::cmd(ns, python())
        .arg(fixture("zeroconf_browse.py"))
        .args(["--timeout", "4"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "zeroconf_browse.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout) {
        Ok(Value::Array(v)) => v,
        _ => panic!(
            "zeroconf_browse.py printed no JSON array: {}",
            String::from_utf8_lossy(&out.stdout)
        ),
    }
}

fn sorted_keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

fn sorted(keys: &[&str]) -> Vec<String> {
    let mut k: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
    k.sort();
    k
}

/// (a) `perch discover` in B finds exactly the one host in A, with its port, host id and
/// fingerprint; `--interface` narrows the browse and a wrong name is an error, not silence.
#[test]
#[ignore = "needs root and ip netns; scripts/test.sh runs it"]
fn discover_finds_the_host_with_its_identity() {
    let net = NetPair::new();
    let host = Host::start(&net.a, "0.0.0.0", 18801, "name = \"Netns Host\"");
    host.wait_for_log_ro("advertising on mDNS");
    let fp = host.fingerprint();
    let found = net.discover(&net.b, &[]);
    assert_eq!(found.len(), 1, "{found:#?}");
    let h = &found[0];
    assert_eq!(h["name"], "Netns Host");
    assert_eq!(h["port"], host.port);
    assert_eq!(h["hostId"], fp[..16]);
    assert_eq!(h["fingerprint"], fp);
    assert_eq!(h["protoMin"], 3);
    assert_eq!(h["protoMax"], 4);
    assert_eq!(
        h["version"],
        Value::Null,
        "minimal mode publishes no version"
    );
    assert_eq!(h["addresses"], serde_json::json!([HOST_IP]));
    assert_eq!(
        h["wsUrls"],
        serde_json::json!([format!("wss://{HOST_IP}:{}", host.port)])
    );
    assert_eq!(h["tls"], true);
    assert_eq!(
        sorted_keys(h),
        sorted(&[
            "name",
            "hostId",
            "fingerprint",
            "addresses",
            "port",
            "protoMin",
            "protoMax",
            "version",
            "tls",
            "wsUrls",
        ])
    );

    let on_veth = net.discover(&net.b, &["--interface", &net.veth_b]);
    assert_eq!(on_veth.len(), 1, "{on_veth:#?}");
    assert_eq!(on_veth[0]["fingerprint"], fp);

    let out = NetPair::cmd(&net.b, PERCH)
        .args(["discover", "--timeout", "500", "--interface", "nosuch0"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a missing interface must be an error"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nosuch0"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (b) A non-Perch client (python-zeroconf) sees the advertisement with exactly the
/// documented minimal TXT keys, and values that match the host.
#[test]
#[ignore = "needs root and ip netns; scripts/test.sh runs it"]
fn a_generic_mdns_client_sees_the_minimal_txt_keys() {
    require_zeroconf();
    let net = NetPair::new();
    let host = Host::start(&net.a, "0.0.0.0", 18802, "name = \"Plain Client\"");
    host.wait_for_log_ro("advertising on mDNS");
    let fp = host.fingerprint();
    let found = zeroconf_browse(&net.b);
    assert_eq!(found.len(), 1, "{found:#?}");
    let s = &found[0];
    assert_eq!(s["name"], "Plain Client");
    assert_eq!(s["port"], host.port);
    assert_eq!(s["addresses"], serde_json::json!([HOST_IP]));
    let props = &s["properties"];
    assert_eq!(sorted_keys(props), sorted(&MINIMAL_KEYS), "{props}");
    assert_eq!(props["txtvers"], "1");
    assert_eq!(props["proto"], "3-4");
    assert_eq!(props["port"], host.port.to_string());
    assert_eq!(props["hid"], fp[..16]);
    assert_eq!(props["fp"], fp);
    assert_eq!(props["tls"], "1");
}

/// (b') In `full` mode the same client also sees the display name and software version.
#[test]
#[ignore = "needs root and ip netns; scripts/test.sh runs it"]
fn full_mode_adds_name_and_version_for_any_client() {
    require_zeroconf();
    let net = NetPair::new();
    let host = Host::start(
        &net.a,
        "0.0.0.0",
        18803,
        "name = \"Full Host\"\nmdns = \"full\"",
    );
    host.wait_for_log_ro("advertising on mDNS");
    let found = zeroconf_browse(&net.b);
    assert_eq!(found.len(), 1, "{found:#?}");
    let props = &found[0]["properties"];
    assert_eq!(sorted_keys(props), sorted(&FULL_KEYS), "{props}");
    assert_eq!(props["name"], "Full Host");
    assert_eq!(props["ver"], env!("CARGO_PKG_VERSION"));
    let ours = net.discover(&net.b, &[]);
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0]["version"], env!("CARGO_PKG_VERSION"));
}

/// (c) Two hosts with the same display name: the second is renamed once (`Twin (2)`), each
/// host logs at most one conflict line, and nothing keeps re-probing.
#[test]
#[ignore = "needs root and ip netns; scripts/test.sh runs it"]
fn a_name_conflict_is_resolved_once() {
    let net = NetPair::new();
    let first = Host::start(&net.a, "0.0.0.0", 18804, "name = \"Twin\"");
    first.wait_for_log_ro("advertising on mDNS");
    // Let the first host finish probing and announce before the second one probes.
    std::thread::sleep(Duration::from_millis(1500));
    let mut second = Host::start(&net.a, "0.0.0.0", 18805, "name = \"Twin\"");
    second.wait_for_log(CONFLICT_LINE, Duration::from_secs(10));
    let found = net.discover(&net.b, &[]);
    let mut names: Vec<String> = found
        .iter()
        .map(|h| h["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["Twin", "Twin (2)"], "{found:#?}");
    let by_port = |port: u16| {
        found
            .iter()
            .find(|h| h["port"] == port)
            .map(|h| (h["name"].clone(), h["fingerprint"].clone()))
            .unwrap()
    };
    assert_eq!(
        by_port(first.port),
        ("Twin".into(), first.fingerprint().into())
    );
    assert_eq!(
        by_port(second.port),
        ("Twin (2)".into(), second.fingerprint().into())
    );
    // Several seconds after the rename, still exactly one conflict line in all.
    std::thread::sleep(Duration::from_secs(2));
    let (l1, l2) = (first.log(), second.log());
    assert_eq!(l1.matches(CONFLICT_LINE).count(), 0, "{l1}");
    assert_eq!(l2.matches(CONFLICT_LINE).count(), 1, "{l2}");
    assert!(l2.contains("\"Twin (2)\""), "{l2}");
}

/// (d) `mdns = "off"` (perch.toml or `--mdns off`): nothing to discover, yet the host answers
/// on its port from B.
#[test]
#[ignore = "needs root and ip netns; scripts/test.sh runs it"]
fn mdns_off_advertises_nothing_but_serves() {
    let net = NetPair::new();
    let host = Host::start(
        &net.a,
        "0.0.0.0",
        18806,
        "name = \"Quiet Host\"\nmdns = \"off\"",
    );
    assert!(
        host.log().contains("mDNS advertisement off"),
        "{}",
        host.log()
    );
    // The command-line flag wins over perch.toml.
    let flagged = Host::start_with(
        &net.a,
        "0.0.0.0",
        18809,
        "name = \"Flag Off\"\nmdns = \"full\"",
        &["--mdns", "off"],
    );
    assert!(
        flagged.log().contains("mDNS advertisement off"),
        "{}",
        flagged.log()
    );
    assert_eq!(net.discover(&net.b, &[]), Vec::<Value>::new());
    let out = NetPair::cmd(&net.b, PERCH)
        .args([
            "status",
            "--gateway",
            &format!("ws://{HOST_IP}:{}", host.port),
            "--json",
            "--data-dir",
        ])
        .arg(host.data_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "perch status failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["hostId"], host.fingerprint()[..16]);
}

/// A host bound to loopback starts no mDNS daemon at all (a daemon joins the multicast group
/// on every interface as it starts): neither namespace sees it, and its log says why.
#[test]
#[ignore = "needs root and ip netns; scripts/test.sh runs it"]
fn a_loopback_host_is_not_advertised() {
    let net = NetPair::new();
    let host = Host::start(&net.a, "127.0.0.1", 18807, "name = \"Local Only\"");
    host.wait_for_log_ro("mDNS advertisement skipped");
    assert_eq!(net.discover(&net.b, &[]), Vec::<Value>::new());
    assert_eq!(net.discover(&net.a, &[]), Vec::<Value>::new());
    assert!(!host.log().contains("advertising on mDNS"));
}

/// Stopping the host sends goodbye packets: a browser drops it at once, not after the TTL.
#[test]
#[ignore = "needs root and ip netns; scripts/test.sh runs it"]
fn shutdown_says_goodbye() {
    require_zeroconf();
    let net = NetPair::new();
    let mut host = Host::start(&net.a, "0.0.0.0", 18808, "name = \"Leaving\"");
    host.wait_for_log_ro("advertising on mDNS");
    let mut watcher = NetPair::cmd(&net.b, python())
        .arg(fixture("zeroconf_browse.py"))
        .args(["--events", "--timeout", "12"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Value)>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send((Instant::now(), v));
            }
        }
    });
    let (_, added) = rx.recv_timeout(Duration::from_secs(6)).unwrap();
    assert_eq!(added["event"], "added", "{added}");
    let stopped_at = Instant::now();
    host.stop();
    let (when, removed) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("no removal seen within 5 s of stopping the host: no goodbye?");
    assert_eq!(removed["event"], "removed", "{removed}");
    assert!(when.duration_since(stopped_at) < Duration::from_secs(4));
    let _ = watcher.kill();
    let _ = watcher.wait();
}
