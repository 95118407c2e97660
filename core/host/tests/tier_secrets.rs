//! A tier's own key set over the wire (`settings.secret.set`): stored in the secret store
//! (its 0600 file here: `PERCH_NO_KEYRING`, so no test ever writes a developer's keyring),
//! used by the next turn against a fake provider over real HTTP, never shown by `settings.get`,
//! the `settings.changed` event or any log line; bound to the tier's address; bad params get
//! structured errors naming the field.
//!
//! One test function on purpose: it sets the process environment before any thread starts,
//! and installs the log capture as the global subscriber.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;

use common::*;
use perch_kernel::testing::{FakeProvider, Script};

const KEY: &str = "sk-tier-NEVER-SHOWN-5150";
const KEY2: &str = "sk-tier-REPLACED-NEVER-SHOWN-6161";

/// Every log line of the process, at every level.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }
}

/// A tier at the fake provider that insists on a key (`auth_mode = "api_key"`), so a turn
/// without one fails.
fn keyed_models(fake: &FakeProvider) -> String {
    format!(
        "[models.default]\nprovider = \"openai\"\nmodel = \"test-model\"\nbase_url = \"{}\"\nauth_mode = \"api_key\"\n",
        fake.openai_base_url()
    )
}

#[test]
fn a_tiers_key_is_write_only_bound_and_used_by_the_next_turn() {
    // SAFETY: the only test of this binary, before any thread of it starts.
    unsafe {
        std::env::set_var("PERCH_NO_KEYRING", "1");
        std::env::remove_var("OPENAI_API_KEY");
    }
    let logs = Logs::default();
    let writer = logs.clone();
    // Everything, with the caps every perch process adds to its filter.
    let filter = perch_host::log_caps::cap_wire_logs(tracing_subscriber::EnvFilter::new("trace"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario(&logs));
}

async fn scenario(logs: &Logs) {
    let fake = FakeProvider::start().await.unwrap();
    let host = start_host(&keyed_models(&fake)).await;
    let mut op = operator(&host).await;
    let mut other = operator(&host).await;

    // Advertised to an admin operator.
    let hello = Raw::open(&host)
        .await
        .request("connect", operator_connect_params(&host.token))
        .await
        .unwrap();
    let methods = hello["features"]["methods"].as_array().unwrap();
    for m in ["settings.secret.set", "settings.secret.clear"] {
        assert!(methods.iter().any(|x| x == m), "{m} not advertised");
    }

    // Before: no key, so the turn fails naming what to do.
    let err = op
        .request("chat.send", json!({"message": "hi"}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "CREDENTIAL_MISSING", "{err}");
    assert_eq!(err["details"]["reason"], "credential-missing", "{err}");
    let s = op.request("settings.get", json!({})).await.unwrap();
    assert_eq!(s["models"]["default"]["credential"]["configured"], false);
    assert_eq!(s["models"]["default"]["credential"]["tierSecret"], false);

    // Set: the answer and every other operator's event say "set", never the key.
    let s = op
        .request(
            "settings.secret.set",
            json!({"tier": "default", "secret": format!("{KEY}\n")}),
        )
        .await
        .unwrap();
    let cred = &s["models"]["default"]["credential"];
    assert_eq!(cred["configured"], true, "{s}");
    assert_eq!(cred["tierSecret"], true, "{s}");
    assert_eq!(cred["source"], "file", "{s}");
    let ev = other.event("settings.changed").await;
    assert_eq!(ev["models"]["default"]["credential"]["tierSecret"], true);
    for shown in [&s, &ev] {
        assert!(!shown.to_string().contains(KEY), "{shown}");
    }
    let got = op.request("settings.get", json!({})).await.unwrap();
    assert!(!got.to_string().contains(KEY));
    assert_eq!(got["models"]["default"]["credential"]["tierSecret"], true);

    // The next turn uses it, without a restart.
    fake.push(Script::new().text("hello").usage(1, 1));
    let r = op
        .request("chat.send", json!({"message": "hi"}))
        .await
        .unwrap();
    assert_eq!(r["text"], "hello");
    let sent = fake
        .requests()
        .last()
        .unwrap()
        .authorization
        .clone()
        .unwrap();
    assert_eq!(sent.expose(), format!("Bearer {KEY}"));

    // Replace: the next turn uses the new key (the tier's provider was built afresh).
    op.request(
        "settings.secret.set",
        json!({"tier": "default", "secret": KEY2}),
    )
    .await
    .unwrap();
    fake.push(Script::new().text("again").usage(1, 1));
    op.request("chat.send", json!({"message": "hi"}))
        .await
        .unwrap();
    let sent = fake
        .requests()
        .last()
        .unwrap()
        .authorization
        .clone()
        .unwrap();
    assert_eq!(sent.expose(), format!("Bearer {KEY2}"));

    // Bound to where the tier points: moved elsewhere, the key stays home and the result says
    // what to do; the provider is never called with it.
    let calls = fake.requests().len();
    let moved = op
        .request(
            "settings.set",
            json!({"models": {"default": {"baseUrl": "http://localhost:9/v1"}}}),
        )
        .await
        .unwrap();
    let cred = &moved["models"]["default"]["credential"];
    assert_eq!(cred["configured"], false, "{moved}");
    assert_eq!(cred["problem"]["reason"], "credential-origin-changed");
    let msg = cred["problem"]["message"].as_str().unwrap();
    assert!(
        msg.contains("store the key again") && msg.contains("http://localhost:9"),
        "{msg}"
    );
    let err = op
        .request("chat.send", json!({"message": "hi"}))
        .await
        .unwrap_err();
    assert_eq!(
        err["details"]["reason"], "credential-origin-changed",
        "{err}"
    );
    assert_eq!(fake.requests().len(), calls, "nothing was sent anywhere");
    // Back home, it works again.
    op.request(
        "settings.set",
        json!({"models": {"default": {"baseUrl": fake.openai_base_url()}}}),
    )
    .await
    .unwrap();
    fake.push(Script::new().text("home").usage(1, 1));
    op.request("chat.send", json!({"message": "hi"}))
        .await
        .unwrap();

    // Bad params: structured, naming the field, never echoing the value.
    let huge = "k".repeat(perch_protocol::settings::MAX_SECRET_CHARS + 1);
    let cases = [
        (json!({"tier": "huge", "secret": KEY}), "tier"),
        (json!({"tier": "smart", "secret": KEY}), "tier"),
        (json!({"tier": "default", "secret": ""}), "secret"),
        (json!({"tier": "default", "secret": huge}), "secret"),
        (json!({"tier": "default"}), "secret"),
        (json!({"tier": "default", "secret": KEY, "x": 1}), "x"),
    ];
    for (params, field) in cases {
        let err = op
            .request("settings.secret.set", params.clone())
            .await
            .unwrap_err();
        assert_eq!(err["code"], "INVALID_REQUEST", "{err}");
        assert_eq!(err["details"]["field"], field, "{err}");
        assert!(!err.to_string().contains(KEY), "{err}");
        assert!(err.to_string().len() < 1000, "the value came back: {err}");
    }

    // Clear: not set any more, and the next turn fails again.
    let s = op
        .request("settings.secret.clear", json!({"tier": "default"}))
        .await
        .unwrap();
    assert_eq!(s["models"]["default"]["credential"]["tierSecret"], false);
    assert_eq!(s["models"]["default"]["credential"]["configured"], false);
    let err = op
        .request("chat.send", json!({"message": "hi"}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "CREDENTIAL_MISSING");

    // A read-only operator may not set a key.
    let mut ro = Raw::open(&host).await;
    let mut params = operator_connect_params(&host.token);
    params["scopes"] = json!(["operator.read"]);
    ro.request("connect", params).await.unwrap();
    let err = ro
        .request(
            "settings.secret.set",
            json!({"tier": "default", "secret": KEY}),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "FORBIDDEN", "{err}");

    // Nothing in any log line, at trace level, and not in perch.toml.
    let all = logs.text();
    assert!(
        all.contains("a tier's key was stored"),
        "logs were captured"
    );
    assert!(all.contains(" TRACE "), "trace level was captured");
    for k in [KEY, KEY2] {
        let leaks: Vec<&str> = all.lines().filter(|l| l.contains(k)).collect();
        assert!(leaks.is_empty(), "the key is in the logs: {leaks:#?}");
        let toml = std::fs::read_to_string(host.dir.path().join("perch.toml")).unwrap();
        assert!(!toml.contains(k));
    }
}
