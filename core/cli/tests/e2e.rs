//! The spine end to end, across real processes on loopback: `perch serve`, `perch node run`,
//! pairing approved through the CLI, invokes through `perch nodes invoke`, a host restart
//! that needs no new approval, and revocation that locks the node out.

mod procs;

use procs::*;
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

fn spawn(args: &[&str]) -> Proc {
    spawn_logged(args, "info")
}

/// Like [`spawn`], but keeps what the process prints on stdout, line by line.
fn spawn_capturing(args: &[&str]) -> (Proc, Arc<Mutex<Vec<String>>>) {
    use tokio::io::AsyncBufReadExt;
    let mut child = Command::new(PERCH)
        .args(args)
        .env("PERCH_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().unwrap();
    let sink = lines.clone();
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    (Proc(child), lines)
}

/// The `NNN NNN` after "verification code " in the lines printed so far.
fn printed_verification_code(lines: &Mutex<Vec<String>>) -> Option<String> {
    lines.lock().unwrap().iter().find_map(|l| {
        let rest = &l[l.find("verification code ")? + "verification code ".len()..];
        rest.get(..7).map(str::to_string)
    })
}

/// Runs an operator command for people (no `--json`) and returns its stdout.
async fn cli_text(host_dir: &Path, port: u16, args: &[&str]) -> String {
    let gateway = format!("ws://127.0.0.1:{port}");
    let out = Command::new(PERCH)
        .args(args)
        .args(["--data-dir"])
        .arg(host_dir)
        .args(["--gateway", &gateway])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "perch {args:?} failed");
    String::from_utf8_lossy(&out.stdout).to_string()
}

async fn start_host(dir: &Path, port: u16) -> Proc {
    let bind = format!("127.0.0.1:{port}");
    let p = spawn(&[
        "serve",
        "--data-dir",
        dir.to_str().unwrap(),
        "--bind",
        &bind,
    ]);
    eventually("the host to answer", Duration::from_secs(20), || async {
        cli(dir, port, &["status"]).await.ok()
    })
    .await;
    p
}

async fn node_online(dir: &Path, port: u16) -> Value {
    eventually("the node to be online", Duration::from_secs(40), || async {
        let list = cli(dir, port, &["nodes", "list"]).await.ok()?;
        let n = list.as_array()?.first()?.clone();
        (n["online"] == true).then_some(n)
    })
    .await
}

#[derive(Clone, Default)]
struct FakeNotifications {
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl FakeNotifications {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        _app: String,
        _replaces: u32,
        _icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        _hints: HashMap<String, zbus::OwnedVariant>,
        _timeout: i32,
    ) -> u32 {
        if let Ok(mut s) = self.seen.lock() {
            s.push((summary, body));
        }
        7
    }
    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into()]
    }
    fn get_server_information(&self) -> (String, String, String, String) {
        ("fake".into(), "perch-test".into(), "0".into(), "1.2".into())
    }
    fn close_notification(&self, _id: u32) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_pair_invoke_restart_revoke() {
    let host_dir = tempfile::tempdir().unwrap();
    let node_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let gateway = format!("ws://127.0.0.1:{port}");

    // A notification server for the node to deliver to, where a session bus exists.
    let fake = FakeNotifications::default();
    let _bus = if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
        Some(
            zbus::connection::Builder::session()
                .name("org.freedesktop.Notifications")
                .serve_at("/org/freedesktop/Notifications", fake.clone())
                .build()
                .await
                .expect("serve the fake notification server"),
        )
    } else {
        None
    };

    let mut host = start_host(host_dir.path(), port).await;
    let (mut node, node_out) = spawn_capturing(&[
        "node",
        "run",
        "--gateway",
        &gateway,
        "--data-dir",
        node_dir.path().to_str().unwrap(),
        "--name",
        "E2E Node",
        "--location",
        "48.20849,16.37208,12.5",
    ]);

    // The node waits for approval; approve it through the CLI.
    let (request_id, host_code) =
        eventually("a pending request", Duration::from_secs(20), || async {
            let list = cli(host_dir.path(), port, &["devices", "list"])
                .await
                .ok()?;
            let p = list["pending"].as_array()?.first()?.clone();
            assert_eq!(p["displayName"], "E2E Node");
            assert_eq!(p["role"], "node");
            Some((
                p["requestId"].as_str()?.to_string(),
                p["verificationCode"].as_str()?.to_string(),
            ))
        })
        .await;
    // The node prints the same code it computed from the host's proven key and its own.
    let node_code = eventually(
        "the node to print its verification code",
        Duration::from_secs(10),
        || async { printed_verification_code(&node_out) },
    )
    .await;
    assert_eq!(node_code, host_code);
    assert!(
        host_code.len() == 7
            && host_code.as_bytes()[3] == b' '
            && host_code
                .replace(' ', "")
                .bytes()
                .all(|b| b.is_ascii_digit()),
        "{host_code}"
    );
    let table = cli_text(host_dir.path(), port, &["devices", "list"]).await;
    assert!(
        table.contains(&host_code) && table.contains(&request_id),
        "{table}"
    );
    let approved = cli(host_dir.path(), port, &["devices", "approve", &request_id])
        .await
        .unwrap();
    assert_eq!(approved["decision"], "approved");
    let n = node_online(host_dir.path(), port).await;
    let node_id = n["nodeId"].as_str().unwrap().to_string();
    for cmd in [
        "location.get",
        "system.notify",
        "device.info",
        "device.status",
    ] {
        assert!(
            n["commands"].as_array().unwrap().iter().any(|c| c == cmd),
            "{cmd} missing: {n}"
        );
    }

    // location.get: the configured fix.
    let fix = cli(
        host_dir.path(),
        port,
        &["nodes", "invoke", "E2E Node", "location.get"],
    )
    .await
    .unwrap();
    assert_eq!(fix["lat"], 48.20849);
    assert_eq!(fix["lon"], 16.37208);
    assert_eq!(fix["accuracyMeters"], 12.5);
    assert_eq!(fix["source"], "configured");
    assert_eq!(fix["isPrecise"], true);

    // device.info by id prefix.
    let info = cli(
        host_dir.path(),
        port,
        &["nodes", "invoke", &node_id[..8], "device.info"],
    )
    .await
    .unwrap();
    assert!(!info["systemName"].as_str().unwrap().is_empty());
    assert_eq!(info["appVersion"], env!("CARGO_PKG_VERSION"));

    // system.notify: delivered to the fake server, or a structured error without a bus.
    let notify = cli(
        host_dir.path(),
        port,
        &[
            "nodes",
            "invoke",
            "E2E Node",
            "system.notify",
            "--params",
            r#"{"title":"Hello","body":"from the e2e test"}"#,
        ],
    )
    .await;
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
        let r = notify.unwrap();
        assert_eq!(r["delivered"], true);
        assert_eq!(
            fake.seen.lock().unwrap().clone(),
            vec![("Hello".to_string(), "from the e2e test".to_string())]
        );
    } else {
        let e = notify.unwrap_err();
        assert_eq!(e["error"]["code"], "NOTIFICATIONS_UNAVAILABLE");
    }

    // Restart the host gracefully; the node comes back with no new approval.
    let pid = host.0.id().unwrap() as i32;
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = tokio::time::timeout(Duration::from_secs(15), host.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    host = start_host(host_dir.path(), port).await;
    node_online(host_dir.path(), port).await;
    let list = cli(host_dir.path(), port, &["devices", "list"])
        .await
        .unwrap();
    assert_eq!(
        list["pending"].as_array().unwrap().len(),
        0,
        "no new approval after restart"
    );
    let fix = cli(host_dir.path(), port, &["nodes", "location", "E2E Node"])
        .await
        .unwrap();
    assert_eq!(fix["source"], "configured");

    // Revoke: the node is closed at once, stops for good, and stays out.
    let r = cli(host_dir.path(), port, &["devices", "revoke", "E2E Node"])
        .await
        .unwrap();
    assert_eq!(r["closedConnections"], 1);
    let exit = tokio::time::timeout(Duration::from_secs(15), node.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!exit.success(), "a revoked node exits with an error");
    let list = cli(host_dir.path(), port, &["nodes", "list"])
        .await
        .unwrap();
    assert_eq!(list, serde_json::json!([]));
    let devices = cli(host_dir.path(), port, &["devices", "list"])
        .await
        .unwrap();
    assert_eq!(devices["paired"][0]["revoked"], true);
    let err = cli(
        host_dir.path(),
        port,
        &["nodes", "invoke", &node_id, "device.info"],
    )
    .await
    .unwrap_err();
    assert_eq!(err["error"]["code"], "NODE_NOT_FOUND");
    // Started again, the revoked node is refused at once.
    let mut again = spawn(&[
        "node",
        "run",
        "--gateway",
        &gateway,
        "--data-dir",
        node_dir.path().to_str().unwrap(),
    ]);
    let exit = tokio::time::timeout(Duration::from_secs(15), again.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(!exit.success());
    drop(host);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_explain_failures() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // No host running: a clear client error, not a panic.
    let err = cli(dir.path(), port, &["status"]).await.unwrap_err();
    assert_eq!(err["error"]["code"], "CLIENT_ERROR");
    let _host = start_host(dir.path(), port).await;
    let err = cli(dir.path(), port, &["devices", "approve", "does-not-exist"])
        .await
        .unwrap_err();
    assert_eq!(err["error"]["code"], "NOT_FOUND");
    let err = cli(
        dir.path(),
        port,
        &[
            "nodes",
            "invoke",
            "nobody",
            "device.info",
            "--params",
            "{bad",
        ],
    )
    .await
    .unwrap_err();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--params")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_config_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("perch.toml"), "[gateway]\nbind = oops\n").unwrap();
    let out = Command::new(PERCH)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("perch.toml") && err.contains("line 2"),
        "{err}"
    );
}

/// Runs `perch ui ...` against the host in `dir`; (success, stdout, stderr).
async fn perch_ui(
    dir: &Path,
    gateway: &str,
    extra: &[&str],
    browser: Option<&Path>,
) -> (bool, String, String) {
    let mut cmd = Command::new(PERCH);
    cmd.arg("ui")
        .args(extra)
        .arg("--data-dir")
        .arg(dir)
        .args(["--gateway", gateway])
        .env_remove("PERCH_OPERATOR_TOKEN");
    match browser {
        Some(b) => cmd.env("BROWSER", b),
        None => cmd.env_remove("BROWSER"),
    };
    let out = cmd.output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perch_ui_opens_the_browser_and_never_prints_the_token() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let gateway = format!("ws://127.0.0.1:{port}");
    let _host = start_host(dir.path(), port).await;
    let token = std::fs::read_to_string(dir.path().join("operator.token"))
        .unwrap()
        .trim()
        .to_string();

    let (ok, out, err) = perch_ui(dir.path(), &gateway, &["--print-url"], None).await;
    assert!(ok, "{err}");
    assert_eq!(
        out,
        format!("http://127.0.0.1:{port}/ui/#token=<operator-token>\n")
    );
    assert!(!out.contains(&token) && !err.contains(&token));

    // A stand-in browser records the URL it was handed.
    let opened = dir.path().join("opened.txt");
    let browser = dir.path().join("browser.sh");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (ok, out, err) = perch_ui(dir.path(), &gateway, &[], Some(&browser)).await;
    assert!(ok, "{err}");
    assert_eq!(
        std::fs::read_to_string(&opened).unwrap(),
        format!("http://127.0.0.1:{port}/ui/#token={token}")
    );
    assert!(
        out.contains(&format!("http://127.0.0.1:{port}/ui/")),
        "{out}"
    );
    assert!(
        !out.contains(&token) && !err.contains(&token),
        "token printed"
    );

    // No host there: a clear error, still without the token.
    let elsewhere = format!("ws://127.0.0.1:{}", free_port());
    let (ok, out, err) = perch_ui(dir.path(), &elsewhere, &[], Some(&browser)).await;
    assert!(!ok);
    assert!(err.contains("does not answer"), "{err}");
    assert!(
        !out.contains(&token) && !err.contains(&token),
        "token printed"
    );
}
