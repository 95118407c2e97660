//! A pairing flood against a real `perch serve`: 1,000 distinct device keys, each with a real
//! signed `connect` on its own socket, ask to pair. The pending list stays at its cap (per
//! source, and in total when one source may file more), the rest are told to retry later, and
//! the host stays responsive: `perch status` answers and a real node with a setup code still
//! pairs and is invoked.

use serde_json::Value;

use perch_attack_tests::procs::*;
use perch_gateway::testing::{Raw, Target, node_connect_params, now_ms};
use perch_protocol::DeviceIdentity;

const KEYS: u32 = 1_000;

/// The real host as the raw protocol client sees it.
struct Wire(String, String);

impl Target for Wire {
    fn url(&self) -> String {
        self.0.clone()
    }
    fn token(&self) -> &str {
        &self.1
    }
}

/// Asks to pair `KEYS` fresh keys, one connection each; counts the answers by code.
async fn flood(host: &RealHost) -> (usize, usize) {
    let wire = Wire(host.url(), host.token());
    let (mut filed, mut limited) = (0, 0);
    for i in 0..KEYS {
        let mut seed = [0x5a; 32];
        seed[..4].copy_from_slice(&i.to_be_bytes());
        let id = DeviceIdentity::from_seed(&seed);
        let mut n = Raw::open(&wire).await;
        let nonce = n.nonce.clone();
        let err = n
            .request(
                "connect",
                node_connect_params(&id, &nonce, now_ms(), None, &[]),
            )
            .await
            .expect_err("an unknown key is not admitted");
        match err["code"].as_str() {
            Some("NOT_PAIRED") => filed += 1,
            Some("RATE_LIMITED") => {
                assert!(
                    err["details"]["retryAfterMs"]
                        .as_u64()
                        .is_some_and(|ms| ms > 0),
                    "{err}"
                );
                limited += 1;
            }
            other => panic!("unexpected answer {other:?}: {err}"),
        }
    }
    (filed, limited)
}

fn pending(list: &Value) -> usize {
    list["pending"].as_array().map(Vec::len).unwrap()
}

/// After the flood: status answers, and a real node with a setup code pairs and is invoked
/// (the code admits it without a place on the full pending list).
async fn still_serves(host: &RealHost) {
    let status = host.cli(&["status"]).await.unwrap();
    assert!(status.is_object(), "{status}");
    let minted = host.cli(&["devices", "setup-code"]).await.unwrap();
    let code = minted["setupCode"].as_str().unwrap();
    let node = RealNode::start(&host.url(), "After The Flood", &["--setup-code", code]);
    online(host, &node.name).await;
    let info = host
        .cli(&["nodes", "invoke", "After The Flood", "device.info"])
        .await
        .unwrap_or_else(|e| panic!("invoke failed: {e}\n{}", node.log()));
    assert!(info.get("systemName").is_some(), "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_keys_from_one_source_leave_the_pending_list_at_the_per_source_cap() {
    let host = RealHost::start("").await;
    let (filed, limited) = flood(&host).await;
    // The default per-source cap is 8 (all of these come from 127.0.0.1).
    assert_eq!((filed, limited), (8, KEYS as usize - 8));
    let list = host.cli(&["devices", "list"]).await.unwrap();
    assert_eq!(pending(&list), 8, "{list}");
    still_serves(&host).await;
    let list = host.cli(&["devices", "list"]).await.unwrap();
    assert_eq!(pending(&list), 8, "the setup code filed nothing: {list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_keys_leave_the_pending_list_at_the_total_cap() {
    let host = RealHost::start(
        "[gateway]\nmax_pending_pairings = 20\nmax_pending_pairings_per_source = 5000\n",
    )
    .await;
    let (filed, limited) = flood(&host).await;
    // Every request is filed; past the cap the oldest expire, so the list never grows.
    assert_eq!((filed, limited), (KEYS as usize, 0));
    let list = host.cli(&["devices", "list"]).await.unwrap();
    assert_eq!(pending(&list), 20, "{list}");
    still_serves(&host).await;
}
