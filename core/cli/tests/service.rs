//! `perch service install|status|uninstall` on Linux, with HOME and XDG_CONFIG_HOME in a
//! temporary directory: the unit file is written where a user manager looks, systemd's own
//! `systemd-analyze verify` accepts it (paths with spaces and `%` included), status reports it,
//! and uninstall removes it. No user manager is reachable from the test (its runtime directory
//! is an empty temporary one), so the commands also show what they say when systemctl cannot
//! act; a developer's real user services are never touched.
#![cfg(target_os = "linux")]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const PERCH: &str = env!("CARGO_BIN_EXE_perch");

/// A home, config and runtime directory of our own, and a perch executable at a path with a
/// space and a `%` in it.
struct Sandbox {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    config: PathBuf,
    runtime: PathBuf,
    exe: PathBuf,
}

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let home = root.join("home");
        let config = root.join("xdg config");
        let runtime = root.join("runtime");
        let bin = root.join("my bin 100%");
        for d in [&home, &config, &runtime, &bin] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        // The service runs the executable that installed it: this copy (a hard link where the
        // file system allows), so the unit has to quote a space and escape a `%`.
        let exe = bin.join("perch");
        if std::fs::hard_link(PERCH, &exe).is_err() {
            std::fs::copy(PERCH, &exe).unwrap();
        }
        Sandbox {
            _tmp: tmp,
            root,
            home,
            config,
            runtime,
            exe,
        }
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.config)
            .env("XDG_RUNTIME_DIR", &self.runtime)
            .env_remove("XDG_DATA_HOME")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("PERCH_DATA_DIR")
            .env("PERCH_LOG", "warn");
    }

    fn perch(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(&self.exe);
        cmd.args(args);
        self.env(&mut cmd);
        cmd.output().unwrap()
    }

    fn unit(&self) -> PathBuf {
        self.config.join("systemd/user/perch.service")
    }

    fn exe_text(&self) -> &str {
        self.exe.to_str().unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn exec_start(unit: &str) -> &str {
    unit.lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart in\n{unit}"))
}

/// `systemd-analyze verify --user FILE`: Some(passed, output), None when it is not installed.
fn systemd_verify(sb: &Sandbox, file: &Path) -> Option<(bool, String)> {
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(["verify", "--user"]).arg(file);
    sb.env(&mut cmd);
    let out = cmd.output().ok()?;
    Some((out.status.success(), text(&out)))
}

#[test]
fn install_status_and_uninstall_a_systemd_user_unit() {
    let sb = Sandbox::new();
    let data = sb.root.join("data dir 100%");
    let data_s = data.to_str().unwrap();

    let out = sb.perch(&["service", "status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["installed"], false);
    assert_eq!(st["path"], sb.unit().to_str().unwrap());

    let out = sb.perch(&[
        "service",
        "install",
        "--no-start",
        "--data-dir",
        data_s,
        "--bind",
        "127.0.0.1:18790",
        "--mdns",
        "off",
    ]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains(sb.unit().to_str().unwrap()), "{said}");
    assert!(
        said.contains("systemctl --user enable --now perch.service"),
        "{said}"
    );

    let unit = std::fs::read_to_string(sb.unit()).unwrap();
    let lines: Vec<&str> = unit.lines().collect();
    for want in [
        "[Unit]",
        "After=network-online.target",
        "[Service]",
        "Restart=on-failure",
        "[Install]",
        "WantedBy=default.target",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in\n{unit}");
    }
    assert_eq!(
        exec_start(&unit),
        format!(
            "\"{}\" serve --data-dir \"{}\" --bind 127.0.0.1:18790 --mdns off",
            sb.exe_text().replace('%', "%%"),
            data_s.replace('%', "%%")
        )
    );

    // systemd's own parser: the quoted path with a space and `%%` names the real executable.
    match systemd_verify(&sb, &sb.unit()) {
        None => println!("note: systemd-analyze not found; the unit was checked by content only"),
        Some((ok, output)) => {
            assert!(
                ok,
                "systemd-analyze verify refused the unit:\n{output}\n{unit}"
            );
            // And it would have caught the same path written without quotes.
            let bad = sb.root.join("unquoted.service");
            std::fs::write(
                &bad,
                unit.replace(
                    &format!("\"{}\"", sb.exe_text().replace('%', "%%")),
                    &sb.exe_text().replace('%', "%%"),
                ),
            )
            .unwrap();
            let (ok, output) = systemd_verify(&sb, &bad).unwrap();
            assert!(!ok, "an unquoted path with a space passed:\n{output}");
        }
    }

    let out = sb.perch(&["service", "status", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["installed"], true);
    assert_eq!(st["kind"], "systemd user unit");
    assert_eq!(st["thisExecutable"], true);
    assert_eq!(
        st["command"],
        serde_json::json!([
            sb.exe_text(),
            "serve",
            "--data-dir",
            data_s,
            "--bind",
            "127.0.0.1:18790",
            "--mdns",
            "off"
        ])
    );
    // No user manager is reachable here: the state is unknown, and says why.
    assert_eq!(st["state"], Value::Null, "{st}");
    assert!(st["stateNote"].is_string(), "{st}");
    let out = sb.perch(&["service", "status"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("installed (systemd user unit)"), "{said}");
    assert!(said.contains(sb.unit().to_str().unwrap()), "{said}");

    // Installing again, with start, where systemctl cannot act: the unit is written, the
    // command succeeds and says how to start it.
    let out = sb.perch(&["service", "install", "--data-dir", data_s]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("not usable here"), "{said}");
    assert!(
        said.contains(
            "systemctl --user daemon-reload && systemctl --user enable --now perch.service"
        ),
        "{said}"
    );
    let unit = std::fs::read_to_string(sb.unit()).unwrap();
    assert!(
        !unit.contains("--bind"),
        "flags not given are not kept:\n{unit}"
    );

    // The link `systemctl enable` would have made goes with the unit.
    let wants = sb.config.join("systemd/user/default.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(sb.unit(), wants.join("perch.service")).unwrap();

    let out = sb.perch(&["service", "uninstall"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(!sb.unit().exists(), "{said}");
    assert!(
        std::fs::symlink_metadata(wants.join("perch.service")).is_err(),
        "{said}"
    );
    assert!(said.contains("Removed"), "{said}");

    let out = sb.perch(&["service", "status", "--json"]);
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["installed"], false);
    let out = sb.perch(&["service", "uninstall"]);
    assert!(out.status.success());
    assert!(text(&out).contains("No Perch service is installed"));
}

#[test]
fn a_unit_for_another_executable_is_kept_unless_forced() {
    let sb = Sandbox::new();
    let other =
        "[Unit]\nDescription=someone else's perch\n[Service]\nExecStart=/opt/other/perch serve\n";
    std::fs::create_dir_all(sb.unit().parent().unwrap()).unwrap();
    std::fs::write(sb.unit(), other).unwrap();

    let out = sb.perch(&[
        "service",
        "install",
        "--no-start",
        "--data-dir",
        "/srv/perch",
    ]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("/opt/other/perch") && said.contains("--force"),
        "{said}"
    );
    assert_eq!(std::fs::read_to_string(sb.unit()).unwrap(), other);

    let out = sb.perch(&["service", "status"]);
    assert!(text(&out).contains("not this perch"), "{}", text(&out));

    let out = sb.perch(&[
        "service",
        "install",
        "--no-start",
        "--force",
        "--data-dir",
        "/srv/perch",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let unit = std::fs::read_to_string(sb.unit()).unwrap();
    assert!(
        exec_start(&unit).ends_with("serve --data-dir /srv/perch"),
        "{unit}"
    );
    assert!(exec_start(&unit).contains("my bin 100%%/perch"), "{unit}");
}

#[test]
fn the_default_data_dir_is_under_home_and_bad_flags_write_nothing() {
    let sb = Sandbox::new();
    let out = sb.perch(&["service", "install", "--no-start", "--bind", "nowhere"]);
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("--bind"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
    assert!(!sb.unit().exists());

    let out = sb.perch(&["service", "install", "--no-start", "--mdns", "loud"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--mdns"), "{}", text(&out));
    assert!(!sb.unit().exists());

    // A relative --data-dir becomes absolute; no flag means the platform default under HOME.
    let out = sb.perch(&["service", "install", "--no-start"]);
    assert!(out.status.success(), "{}", text(&out));
    let unit = std::fs::read_to_string(sb.unit()).unwrap();
    let default = sb.home.join(".local/share/perch");
    assert!(
        exec_start(&unit).ends_with(&format!("--data-dir {}", default.display())),
        "{unit}"
    );
    let mut cmd = Command::new(&sb.exe);
    cmd.args(["service", "install", "--no-start", "--data-dir", "rel/data"])
        .current_dir(&sb.root);
    sb.env(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let unit = std::fs::read_to_string(sb.unit()).unwrap();
    assert!(
        exec_start(&unit).ends_with(&format!(
            "--data-dir {}",
            sb.root.join("rel/data").display()
        )),
        "{unit}"
    );
}
