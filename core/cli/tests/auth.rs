//! `perch auth` and `perch doctor` say where credentials are and what is missing, and never
//! print a secret, not even in debug logs.

use std::io::Write;
use std::process::{Command, Stdio};

const PERCH: &str = env!("CARGO_BIN_EXE_perch");
const SECRET: &str = "sk-test-NEVER-PRINT-4242";

fn run(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(PERCH)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("PERCH_LOG", "debug")
        .env("PERCH_NO_KEYRING", "1")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), all)
}

#[test]
fn credentials_are_stored_reported_and_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("perch.toml"),
        "[models.default]\nprovider = \"openai\"\nmodel = \"gpt-4.1-mini\"\n[models.smart]\nprovider = \"anthropic\"\nmodel = \"claude\"\nauth_mode = \"oauth\"\n",
    )
    .unwrap();

    // Before: the default tier is an explicit error naming where it looked.
    let (_, before) = run(dir.path(), &["auth", "status", "--json"], None);
    assert!(
        before.contains("MISSING") || before.contains("no credential"),
        "{before}"
    );

    let (ok, set) = run(
        dir.path(),
        &["auth", "set", "openai", "--api-key"],
        Some(&format!("{SECRET}\n")),
    );
    assert!(ok, "{set}");
    assert!(set.contains("0600"), "{set}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("secrets.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let (_, status) = run(dir.path(), &["auth", "status", "--json"], None);
    assert!(
        status.contains("secret store (perch/openai:api_key)"),
        "{status}"
    );
    assert!(
        status.contains("ANTHROPIC_AUTH_TOKEN"),
        "the oauth tier says where it looked: {status}"
    );

    let (_, doctor) = run(dir.path(), &["doctor"], None);
    assert!(doctor.contains("model tier default"), "{doctor}");
    assert!(
        doctor.contains("secrets.json"),
        "the file fallback is said out loud: {doctor}"
    );

    for (name, text) in [
        ("auth set", &set),
        ("auth status", &status),
        ("doctor", &doctor),
    ] {
        assert!(!text.contains(SECRET), "{name} printed the secret:\n{text}");
        assert!(
            !text.contains("NEVER-PRINT"),
            "{name} printed part of the secret"
        );
    }

    // Bad input: an empty secret and an unknown provider are clear errors.
    let (ok, out) = run(
        dir.path(),
        &["auth", "set", "openai", "--api-key"],
        Some("\n"),
    );
    assert!(!ok && out.contains("no secret"), "{out}");
    let (ok, out) = run(
        dir.path(),
        &["auth", "set", "bard", "--api-key"],
        Some("x\n"),
    );
    assert!(!ok && out.contains("unknown provider"), "{out}");
}
