//! A whole host (perch-host) on a temporary directory, started from a perch.toml the test
//! writes first; the raw protocol client is `perch_gateway::testing`.

#![allow(dead_code)]

use perch_host::{Host, HostOptions, RunningHost};
use perch_kernel::testing::FakeProvider;
use serde_json::Value;

pub use perch_gateway::testing::*;

pub struct TestHost {
    pub gw: RunningHost,
    pub dir: tempfile::TempDir,
    pub token: String,
}

impl Target for TestHost {
    fn url(&self) -> String {
        self.gw.url()
    }
    fn token(&self) -> &str {
        &self.token
    }
}

/// A host on loopback (any port) whose perch.toml is `toml`.
pub async fn start_host(toml: &str) -> TestHost {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("perch.toml"), toml).unwrap();
    // Loopback: the host never advertises over mDNS.
    let options = HostOptions::new(dir.path()).with_bind("127.0.0.1:0".parse().unwrap());
    let gw = Host::start(options).await.unwrap();
    let token = std::fs::read_to_string(dir.path().join("operator.token"))
        .unwrap()
        .trim()
        .to_string();
    TestHost { gw, dir, token }
}

/// A perch.toml whose default tier is the fake provider (local, so no credential is needed).
pub fn fake_models(fake: &FakeProvider) -> String {
    format!(
        "[models.default]\nprovider = \"openai\"\nmodel = \"test-model\"\nbase_url = \"{}\"\n",
        fake.openai_base_url()
    )
}

/// The JSON lines between `open` and `close` fence lines in the messages of a request body the
/// fake provider received, or `None` when the prompt has no such fence.
pub fn fenced_lines(raw_body: &str, open: &str, close: &str) -> Option<Vec<Value>> {
    let body: Value = serde_json::from_str(raw_body).unwrap();
    let text: String = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let start = text.find(open)?;
    let end = text[start..].find(close)? + start;
    Some(
        text[start + open.len()..end]
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
    )
}
