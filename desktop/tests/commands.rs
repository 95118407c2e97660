//! The shell page's commands on Tauri's MockRuntime (no display, no D-Bus), against a real
//! in-process gateway and real node runtimes: pairing through `approve_pairing` and
//! `reject_pairing`, the tray state moving Idle → Attention → Idle, a stopped host becoming
//! an error with its reason, settings repairing a host that cannot start, the window
//! fallbacks, node mode, and the capability that keeps every other window away from IPC.

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder};
use tauri::webview::InvokeRequest;
use tauri::{App, Manager, WebviewUrl, WebviewWindow, WebviewWindowBuilder};

use perch_client::{Client, ClientConfig, OperatorToken};
use perch_desktop::Desktop;

use common::*;

fn mock_app(desktop: &Desktop) -> App<MockRuntime> {
    perch_desktop::commands::register(mock_builder())
        .manage(desktop.clone())
        .build(tauri::generate_context!())
        .expect("mock app")
}

fn window(app: &App<MockRuntime>, label: &str) -> WebviewWindow<MockRuntime> {
    WebviewWindowBuilder::new(app, label, WebviewUrl::App("index.html".into()))
        .build()
        .expect("mock window")
}

/// Calls a command the way the shell page does.
fn invoke(w: &WebviewWindow<MockRuntime>, cmd: &str, args: Value) -> Result<Value, Value> {
    get_ipc_response(
        w,
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|b| b.deserialize::<Value>().unwrap())
}

fn app_state(w: &WebviewWindow<MockRuntime>) -> Value {
    invoke(w, "app_state", json!({})).expect("app_state")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tauri::async_runtime::block_on(f)
}

/// Polls `app_state` until `pred` holds.
fn until_view(w: &WebviewWindow<MockRuntime>, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let v = app_state(w);
        if pred(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; app_state is {v:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tray(v: &Value) -> &str {
    v["tray"]["kind"].as_str().unwrap_or("")
}

fn operator(url: String, dir: &std::path::Path) -> Client {
    Client::start(ClientConfig::new(
        url,
        OperatorToken::new(token(dir)),
        host_key(dir),
    ))
}

#[test]
fn pairing_through_the_commands_moves_the_tray_state() {
    let dir = data_dir("");
    let desktop =
        block_on(async { Desktop::start(desktop_options(dir.path(), "127.0.0.1:0", false)) });
    let app = mock_app(&desktop);
    let shell = window(&app, "shell");

    let v = until_view(&shell, "idle", |v| tray(v) == "idle");
    assert_eq!(v["status"], "Perch: idle · no devices online");
    assert_eq!(v["host"]["mode"], "embedded");
    assert_eq!(v["bindOverride"], "127.0.0.1:0");
    let url = format!("ws://{}", v["host"]["addr"].as_str().unwrap());

    // A real node asks to pair: Attention, with the request and its verification code.
    let kitchen = block_on(async { start_node(&url, "Kitchen") });
    let v = until_view(&shell, "attention", |v| tray(v) == "attention");
    assert_eq!(v["status"], "Perch: 1 pairing request waiting");
    let request = v["pending"][0].clone();
    assert_eq!(request["displayName"], "Kitchen");
    let code = request["verificationCode"].as_str().unwrap();
    assert!(
        code.len() == 7 && code.as_bytes()[3] == b' ',
        "verification code {code:?}"
    );

    // Approve: the node is admitted and the host lists it as paired and online.
    let decided = invoke(
        &shell,
        "approve_pairing",
        json!({"requestId": request["requestId"]}),
    )
    .unwrap();
    assert_eq!(decided["decision"], "approved");
    assert_eq!(decided["deviceId"], kitchen.device_id.as_str());
    let mut kitchen_state = kitchen.state.clone();
    block_on(async {
        until("the node to connect", || {
            matches!(
                *kitchen_state.borrow_and_update(),
                perch_node::NodeState::Connected { .. }
            )
            .then_some(())
        })
        .await
    });
    let ops = block_on(async { operator(url.clone(), dir.path()) });
    let nodes: Value = block_on(ops.call("node.list", None, WAIT)).unwrap();
    assert_eq!(nodes[0]["nodeId"], kitchen.device_id.as_str());
    assert_eq!(nodes[0]["online"], true);
    let v = until_view(&shell, "idle with one device", |v| {
        tray(v) == "idle" && v["status"] == "Perch: idle · 1 device online"
    });
    assert_eq!(v["devices"][0]["displayName"], "Kitchen");
    assert!(v["pending"].as_array().unwrap().is_empty());

    // Reject: the second node is refused for good.
    let garage = block_on(async { start_node(&url, "Garage") });
    let v = until_view(&shell, "attention again", |v| tray(v) == "attention");
    let request = v["pending"][0].clone();
    assert_eq!(request["displayName"], "Garage");
    let decided = invoke(
        &shell,
        "reject_pairing",
        json!({"requestId": request["requestId"]}),
    )
    .unwrap();
    assert_eq!(decided["decision"], "rejected");
    let ended = block_on(async { tokio::time::timeout(WAIT, garage.task).await })
        .expect("the rejected node stops")
        .unwrap();
    assert!(
        matches!(ended, Err(perch_node::NodeError::PairingRejected { .. })),
        "{ended:?}"
    );
    until_view(&shell, "idle after reject", |v| tray(v) == "idle");
    let list: Value = block_on(ops.call("device.pair.list", None, WAIT)).unwrap();
    assert_eq!(list["paired"].as_array().unwrap().len(), 1);
    assert!(list["pending"].as_array().unwrap().is_empty());

    // An unknown request is a structured error, not a crash.
    let err = invoke(
        &shell,
        "approve_pairing",
        json!({"requestId": "no-such-request"}),
    )
    .unwrap_err();
    assert_eq!(err["code"], "NOT_FOUND", "{err}");
    assert!(!err["message"].as_str().unwrap().is_empty(), "{err}");

    kitchen.stop.cancel();
    block_on(async {
        let _ = kitchen.task.await;
        ops.shutdown().await;
        desktop.shutdown().await;
    });
}

#[test]
fn a_stopped_host_becomes_an_error_with_its_reason_and_retry_recovers() {
    let dir = data_dir("");
    let gw = block_on(gateway(dir.path(), "127.0.0.1:0".parse().unwrap()));
    let addr = gw.addr();
    let desktop =
        block_on(async { Desktop::start(desktop_options(dir.path(), &addr.to_string(), false)) });
    let app = mock_app(&desktop);
    let shell = window(&app, "shell");
    let v = until_view(&shell, "idle", |v| tray(v) == "idle");
    assert_eq!(v["host"]["mode"], "attached");

    block_on(gw.shutdown());
    let v = until_view(&shell, "the host error", |v| v["host"]["state"] == "error");
    assert_eq!(tray(&v), "error");
    let reason = v["tray"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("stopped answering") && reason.contains(&addr.to_string()),
        "{reason}"
    );
    assert_eq!(v["status"], format!("Perch: error — {reason}"));

    // Retry (the shell page's button) starts the host inside the app on the same address.
    let v = invoke(&shell, "retry_host", json!({})).unwrap();
    assert!(v.get("tray").is_some());
    let v = until_view(&shell, "idle again", |v| tray(v) == "idle");
    assert_eq!(v["host"]["mode"], "embedded");
    assert_eq!(v["host"]["addr"], addr.to_string());
    block_on(desktop.shutdown());
}

#[test]
fn settings_repair_a_host_that_cannot_start_and_windows_fall_back_to_the_shell() {
    let dir = data_dir("bind = \"127.0.0.1:nope\"\n");
    let mut options = desktop_options(dir.path(), "127.0.0.1:0", false);
    // Use perch.toml's bind (no override), so fixing it in Settings is what helps.
    options.host.bind = None;
    let desktop = block_on(async { Desktop::start(options) });
    let app = mock_app(&desktop);
    let shell = window(&app, "shell");
    let v = until_view(&shell, "the config error", |v| tray(v) == "error");
    assert!(
        v["tray"]["reason"].as_str().unwrap().contains("bind"),
        "{v}"
    );

    // With no host, Settings (and Chat) open the bundled shell page.
    assert_eq!(
        invoke(&shell, "open_window", json!({"page": "settings"})).unwrap(),
        "shell"
    );
    assert_eq!(
        invoke(&shell, "open_window", json!({"page": "chat"})).unwrap(),
        "shell"
    );
    assert!(app.get_webview_window("chat").is_none());
    let err = invoke(&shell, "open_window", json!({"page": "admin"})).unwrap_err();
    assert_eq!(err["code"], "INVALID_REQUEST");

    // A bad value is refused naming the field; a good one is saved and the host starts.
    let err = invoke(&shell, "save_settings", json!({"bind": "not an address"})).unwrap_err();
    assert_eq!(err["code"], "INVALID_REQUEST", "{err}");
    assert!(err["message"].as_str().unwrap().contains("bind"), "{err}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let saved = invoke(
        &shell,
        "save_settings",
        json!({"bind": bind, "mdns": "off"}),
    )
    .unwrap();
    assert_eq!(saved["bind"], bind);
    let text = std::fs::read_to_string(dir.path().join("perch.toml")).unwrap();
    assert!(text.contains(&bind), "{text}");
    let v = until_view(&shell, "running after the fix", |v| tray(v) == "idle");
    assert_eq!(v["host"]["addr"], bind);
    let loaded = invoke(&shell, "load_settings", json!({})).unwrap();
    assert_eq!(loaded["bind"], bind);
    assert_eq!(loaded["running"]["bind"], bind);

    // With a host, Chat opens the web UI with the token in the fragment; Canvas is local.
    assert_eq!(
        invoke(&shell, "open_window", json!({"page": "chat"})).unwrap(),
        "chat"
    );
    let chat = app.get_webview_window("chat").expect("chat window");
    let url = chat.url().unwrap();
    assert_eq!(
        url.as_str().split('#').next().unwrap(),
        format!("http://{bind}/ui/chat")
    );
    assert_eq!(
        url.fragment(),
        Some(format!("token={}", token(dir.path())).as_str())
    );
    assert_eq!(
        invoke(&shell, "open_window", json!({"page": "canvas"})).unwrap(),
        "canvas"
    );
    // The token never shows up in what the page can read.
    let state = app_state(&shell).to_string();
    assert!(!state.contains(&token(dir.path())));
    block_on(desktop.shutdown());
}

#[test]
fn a_corrupt_perch_toml_is_moved_aside_only_when_asked() {
    let dir = data_dir("bind = 127.0.0.1:9\n");
    let mut options = desktop_options(dir.path(), "127.0.0.1:0", false);
    options.host.bind = None;
    let desktop = block_on(async { Desktop::start(options) });
    let app = mock_app(&desktop);
    let shell = window(&app, "shell");
    let v = until_view(&shell, "the parse error", |v| tray(v) == "error");
    assert!(
        v["tray"]["reason"].as_str().unwrap().contains("line 3"),
        "{v}"
    );
    let err = invoke(&shell, "load_settings", json!({})).unwrap_err();
    assert!(
        err["message"].as_str().unwrap().contains("not valid TOML"),
        "{err}"
    );
    let err = invoke(&shell, "save_settings", json!({"mdns": "off"})).unwrap_err();
    assert!(
        err["message"].as_str().unwrap().contains("not valid TOML"),
        "{err}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    invoke(
        &shell,
        "save_settings",
        json!({"bind": bind, "mdns": "off", "resetCorrupt": true}),
    )
    .unwrap();
    let kept = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("perch.toml.corrupt-")
        });
    assert!(kept, "the broken file is kept beside the new one");
    let v = until_view(&shell, "running after the reset", |v| tray(v) == "idle");
    assert_eq!(v["host"]["addr"], bind);
    block_on(desktop.shutdown());
}

#[test]
fn only_the_shell_window_may_call_commands() {
    let dir = data_dir("");
    let desktop =
        block_on(async { Desktop::start(desktop_options(dir.path(), "127.0.0.1:0", false)) });
    let app = mock_app(&desktop);
    let shell = window(&app, "shell");
    assert!(invoke(&shell, "app_state", json!({})).is_ok());
    let chat = window(&app, "chat");
    let err = invoke(&chat, "app_state", json!({})).unwrap_err();
    assert!(err.to_string().contains("not allowed"), "{err}");
    let err = invoke(&chat, "approve_pairing", json!({"requestId": "x"})).unwrap_err();
    assert!(err.to_string().contains("not allowed"), "{err}");
    block_on(desktop.shutdown());
}

#[test]
fn this_computer_pairs_with_a_setup_code_once_and_then_reuses_its_pairing() {
    let dir = data_dir("[desktop]\nlocation = { lat = 48.2, lon = 16.37, accuracy_m = 50 }\n");
    let desktop =
        block_on(async { Desktop::start(desktop_options(dir.path(), "127.0.0.1:0", true)) });
    let app = mock_app(&desktop);
    let shell = window(&app, "shell");
    let v = until_view(&shell, "this computer connected", |v| {
        v["thisComputer"]["connected"] == true
            && tray(v) == "idle"
            && v["devices"].as_array().is_some_and(|d| !d.is_empty())
    });
    assert_eq!(v["thisComputer"]["enrolment"], "setupCode");
    let device_id = v["thisComputer"]["deviceId"].as_str().unwrap().to_string();
    assert_eq!(v["devices"][0]["nodeId"], device_id.as_str());
    assert!(
        v["pending"].as_array().unwrap().is_empty(),
        "no approval needed"
    );
    assert!(dir.path().join("desktop-node/node-identity.json").exists());
    // With [desktop] location set, location.get is offered.
    let url = format!("ws://{}", v["host"]["addr"].as_str().unwrap());
    let ops = block_on(async { operator(url, dir.path()) });
    let nodes: Value = block_on(ops.call("node.list", None, WAIT)).unwrap();
    let commands = nodes[0]["commands"].to_string();
    assert!(
        commands.contains("location.get") && commands.contains("system.notify"),
        "{commands}"
    );
    block_on(async {
        ops.shutdown().await;
        desktop.shutdown().await;
    });

    // Second start, same data dir, no location: same identity, no new code, no location.get.
    std::fs::write(dir.path().join("perch.toml"), "[gateway]\nmdns = \"off\"\n").unwrap();
    let desktop =
        block_on(async { Desktop::start(desktop_options(dir.path(), "127.0.0.1:0", true)) });
    let app = mock_app(&desktop);
    let shell = window(&app, "shell");
    let v = until_view(&shell, "this computer connected again", |v| {
        v["thisComputer"]["connected"] == true
    });
    assert_eq!(v["thisComputer"]["enrolment"], "existingPairing");
    assert_eq!(v["thisComputer"]["deviceId"], device_id.as_str());
    let url = format!("ws://{}", v["host"]["addr"].as_str().unwrap());
    let ops = block_on(async { operator(url, dir.path()) });
    let list: Value = block_on(ops.call("device.pair.list", None, WAIT)).unwrap();
    assert_eq!(list["paired"].as_array().unwrap().len(), 1);
    let nodes: Value = block_on(ops.call("node.list", None, WAIT)).unwrap();
    assert!(!nodes[0]["commands"].to_string().contains("location.get"));
    block_on(async {
        ops.shutdown().await;
        desktop.shutdown().await;
    });
}
