//! The menu-bar app end to end, on a real X server: Xvfb with Debian's `trayer` as the tray
//! host, the real `perch-desktop` (embedding its host), and a real `perch node run` asking to
//! pair. The test screenshots the tray icon and the open menu (kept under
//! `$CARGO_TARGET_DIR/test-artifacts/desktop/`), approves the request from the menu with the
//! keyboard, and checks with `perch nodes list` that the node is online. A second test floods
//! the host with pairing requests and checks that the menu counts the ones it doesn't list.
//!
//! It needs `Xvfb`, `trayer`, `xdotool` and ImageMagick's `import` (scripts/setup.sh test
//! installs them) and the `perch` binary next to this test's target directory (built by
//! `cargo test --workspace`, or `cargo build -p perch-cli`).

mod screen;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use screen::{Proc, Screen, count_colour, eventually, free_port};

const DESKTOP: &str = env!("CARGO_BIN_EXE_perch-desktop");

/// One X server at a time: two starting together can pick the same display, and two apps with
/// their nodes are more than a 2-core CI machine should run side by side.
static ONE_SCREEN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The `perch` CLI built in the same target directory as this test.
fn perch_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/tray_xvfb-HASH -> target/debug/perch
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let bin = dir.join("perch");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p perch-cli` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let dir = target.join("test-artifacts").join("desktop");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// The tray colours of desktop/src/icon.rs: idle teal, attention amber.
const IDLE: &str = "#1F6F78";
const ATTENTION: &str = "#E59400";

fn cli(perch: &Path, data_dir: &Path, port: u16, args: &[&str]) -> Option<Value> {
    let out = Command::new(perch)
        .args(args)
        .args(["--json", "--data-dir"])
        .arg(data_dir)
        .args(["--gateway", &format!("ws://127.0.0.1:{port}")])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// The real app on its own X screen, embedding a host on a free loopback port, its tray icon
/// embedded.
struct App {
    // Dropped first: the app goes before its screen.
    _proc: Proc,
    screen: Screen,
    perch: PathBuf,
    host_dir: tempfile::TempDir,
    port: u16,
    /// trayer's panel with the icon in it.
    panel: (i32, i32, i32, i32),
    /// The panel's width before the icon came.
    empty_width: i32,
}

impl App {
    fn start() -> App {
        if let Err(e) = screen::require_tools(&screen::TOOLS) {
            panic!("{e}");
        }
        let perch = perch_bin();
        let host_dir = tempfile::tempdir().expect("tempdir");
        // No mDNS advertisement from a test host on the machine's network.
        std::fs::write(
            host_dir.path().join("perch.toml"),
            "[gateway]\nmdns = \"off\"\n",
        )
        .expect("write perch.toml");
        let port = free_port();
        let screen = Screen::start().unwrap_or_else(|e| panic!("{e}"));
        let (_, _, empty_width, _) = screen.tray_panel().expect("panel");
        let proc = Proc(
            screen
                .cmd(DESKTOP)
                .args(["--data-dir"])
                .arg(host_dir.path())
                .args(["--bind", &format!("127.0.0.1:{port}")])
                .env("NO_AT_BRIDGE", "1")
                .env("PERCH_NO_KEYRING", "1")
                .env("PERCH_LOG", "info")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start perch-desktop"),
        );
        eventually(
            "the embedded host to answer",
            Duration::from_secs(60),
            || cli(&perch, host_dir.path(), port, &["status"]),
        );
        // The icon is embedded when the panel grows.
        let panel = eventually("the tray icon", Duration::from_secs(30), || {
            screen.tray_panel().filter(|p| p.2 > empty_width)
        });
        App {
            _proc: proc,
            screen,
            perch,
            host_dir,
            port,
            panel,
            empty_width,
        }
    }
}

#[test]
fn tray_menu_approves_a_real_node() {
    let _one = ONE_SCREEN.lock().unwrap_or_else(|p| p.into_inner());
    let app = App::start();
    let (perch, port, host_dir, screen) = (&app.perch, app.port, app.host_dir.path(), &app.screen);
    let artifacts = artifacts_dir();
    let node_dir = tempfile::tempdir().expect("tempdir");
    let (px, py, pw, ph) = app.panel;
    let empty_width = app.empty_width;

    let node_log = node_dir.path().join("node.out");
    let _node = Proc(
        Command::new(perch)
            .args(["node", "run", "--data-dir"])
            .arg(node_dir.path())
            .args([
                "--gateway",
                &format!("ws://127.0.0.1:{port}"),
                "--name",
                "tray-e2e-phone",
            ])
            .env("PERCH_LOG", "info")
            .env("PERCH_NO_KEYRING", "1")
            .stdout(std::fs::File::create(&node_log).expect("node log"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start perch node run"),
    );
    let pending = eventually("the pairing request", Duration::from_secs(30), || {
        let v = cli(perch, host_dir, port, &["devices", "list"])?;
        v["pending"].as_array()?.first().cloned()
    });
    let code = pending["verificationCode"]
        .as_str()
        .expect("code")
        .to_string();
    let printed = eventually(
        "the node to print its code",
        Duration::from_secs(10),
        || {
            let text = std::fs::read_to_string(&node_log).ok()?;
            text.contains("verification code").then_some(text)
        },
    );
    assert!(
        printed.contains(&code),
        "the node printed {printed:?}, the host shows {code}"
    );

    // The icon turns to its attention colour once the app has the request (on a busy machine
    // that can take a few seconds); the menu is rebuilt in the same step.
    let icon_shot = artifacts.join("tray-icon.png");
    let icon_rect = screen::icon_rect((px, py, pw, ph), empty_width);
    eventually(
        "the tray icon in its attention colour with a request waiting",
        Duration::from_secs(15),
        || {
            screen.screenshot(&icon_shot).ok()?;
            (count_colour(&icon_shot, icon_rect, ATTENTION) > 100).then_some(())
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    let (cx, cy) = (px + pw - (pw - empty_width) / 2, py + ph / 2);
    screen.click(cx, cy).unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(1200));
    screen
        .screenshot(&artifacts.join("tray-menu-pending.png"))
        .unwrap_or_else(|e| panic!("{e}"));

    // The first enabled item of the menu is "Approve <name>".
    screen
        .keys(&["Down", "Return"])
        .unwrap_or_else(|e| panic!("{e}"));

    let node = eventually("the node to be online", Duration::from_secs(40), || {
        let list = cli(perch, host_dir, port, &["nodes", "list"])?;
        list.as_array()?
            .iter()
            .find(|n| n["displayName"] == "tray-e2e-phone" && n["online"] == true)
            .cloned()
    });
    let devices = cli(perch, host_dir, port, &["devices", "list"]).expect("devices");
    assert_eq!(
        devices["pending"].as_array().map(Vec::len),
        Some(0),
        "{devices}"
    );
    assert!(
        node["commands"].as_array().is_some_and(|c| !c.is_empty()),
        "{node}"
    );
    let after = artifacts.join("tray-after-approve.png");
    eventually(
        "the tray icon to turn idle",
        Duration::from_secs(10),
        || {
            screen.screenshot(&after).ok()?;
            (count_colour(&after, icon_rect, IDLE) > 100).then_some(())
        },
    );
    assert_eq!(count_colour(&after, icon_rect, ATTENTION), 0);
}

/// A flood of pairing requests leaves the menu usable: the newest five are listed, one row
/// counts the rest, and choosing it opens Devices (nothing is approved or rejected on the way).
#[test]
fn a_flood_of_requests_is_counted_and_the_count_opens_devices() {
    let _one = ONE_SCREEN.lock().unwrap_or_else(|p| p.into_inner());
    let app = App::start();
    let (perch, port, host_dir, screen) = (&app.perch, app.port, app.host_dir.path(), &app.screen);
    let artifacts = artifacts_dir();
    let (px, py, pw, ph) = app.panel;
    let empty_width = app.empty_width;

    // Seven devices ask to pair (under the per-source cap of eight).
    const FLOOD: usize = 7;
    let node_dirs: Vec<_> = (0..FLOOD)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let _nodes: Vec<Proc> = node_dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            Proc(
                Command::new(perch)
                    .args(["node", "run", "--data-dir"])
                    .arg(dir.path())
                    .args([
                        "--gateway",
                        &format!("ws://127.0.0.1:{port}"),
                        "--name",
                        &format!("flood-{i}"),
                    ])
                    .env("PERCH_LOG", "warn")
                    .env("PERCH_NO_KEYRING", "1")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start perch node run"),
            )
        })
        .collect();
    let pending_count = || {
        cli(perch, host_dir, port, &["devices", "list"])
            .and_then(|v| v["pending"].as_array().map(Vec::len))
    };
    eventually("seven pairing requests", Duration::from_secs(40), || {
        (pending_count()? == FLOOD).then_some(())
    });
    std::thread::sleep(Duration::from_millis(2000));
    let (cx, cy) = (px + pw - (pw - empty_width) / 2, py + ph / 2);
    screen.click(cx, cy).unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(1200));
    screen
        .screenshot(&artifacts.join("tray-menu-flood.png"))
        .unwrap_or_else(|e| panic!("{e}"));
    // Five Approve/Reject pairs, then the count: the eleventh choosable item.
    let mut keys = vec!["Down"; 11];
    keys.push("Return");
    screen.keys(&keys).unwrap_or_else(|e| panic!("{e}"));
    eventually("the Devices window", Duration::from_secs(20), || {
        let out = screen
            .cmd("xdotool")
            .args(["search", "--name", "Perch — Devices"])
            .output()
            .ok()?;
        (out.status.success() && !out.stdout.is_empty()).then_some(())
    });
    assert_eq!(
        pending_count(),
        Some(FLOOD),
        "choosing the count row approved or rejected a request"
    );
}
