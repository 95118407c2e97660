//! Setup codes: a single-use bootstrap token pairs a node without a manual approval, and the
//! code carries the key the node must find.

mod common;

use serde_json::json;

use common::*;
use perch_protocol::DeviceIdentity;
use perch_protocol::setup_code::SetupCode;

fn with_bootstrap(mut params: serde_json::Value, token: &str) -> serde_json::Value {
    params["auth"] = json!({"bootstrapToken": token});
    params
}

#[tokio::test]
async fn a_setup_code_pairs_once_without_approval() {
    let host = start_host(|_| {}).await;
    let mut op = operator(&host).await;
    let r = op
        .request("device.pair.setupCode", json!({}))
        .await
        .unwrap();
    let code = SetupCode::decode(r["setupCode"].as_str().unwrap()).unwrap();
    assert_eq!(code.port, host.gw.addr.port());
    assert!(
        code.tls,
        "the host serves TLS by default, so the code sends nodes to wss://"
    );
    assert!(
        r["gatewayUrls"][0].as_str().unwrap().starts_with("wss://"),
        "{r}"
    );
    assert_eq!(code.fingerprint_hex(), r["fingerprint"]);
    assert_eq!(code.host_id(), r["hostId"]);
    assert!(r["expiresAtMs"].as_i64().unwrap() > now_ms() + 9 * 60 * 1000);
    assert!(
        r["warnings"][0].as_str().unwrap().contains("0.0.0.0"),
        "loopback bind is explained"
    );

    // The challenge proves the key the code names.
    let id = DeviceIdentity::from_seed(&[60; 32]);
    let mut n = Raw::open(&host).await;
    let nonce = n.nonce.clone();
    let hello = n
        .request(
            "connect",
            with_bootstrap(
                node_connect_params(&id, &nonce, now_ms(), None, &["device.info"]),
                &code.bootstrap_token,
            ),
        )
        .await
        .expect("paired at once");
    assert!(hello["auth"]["deviceToken"].is_string());
    let list = op.request("device.pair.list", json!({})).await.unwrap();
    assert_eq!(list["paired"][0]["deviceId"], id.device_id().as_str());
    assert_eq!(list["pending"].as_array().unwrap().len(), 0);

    // A second device with the same code is refused; nothing is paired for it.
    let other = DeviceIdentity::from_seed(&[61; 32]);
    let mut m = Raw::open(&host).await;
    let nonce = m.nonce.clone();
    let err = m
        .request(
            "connect",
            with_bootstrap(
                node_connect_params(&other, &nonce, now_ms(), None, &[]),
                &code.bootstrap_token,
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "BOOTSTRAP_TOKEN_INVALID");
    assert_eq!(err["details"]["reason"], "used");
    let list = op.request("device.pair.list", json!({})).await.unwrap();
    assert_eq!(list["paired"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn unknown_bootstrap_tokens_are_refused() {
    let host = start_host(|_| {}).await;
    let id = DeviceIdentity::from_seed(&[62; 32]);
    let mut n = Raw::open(&host).await;
    let nonce = n.nonce.clone();
    let err = n
        .request(
            "connect",
            with_bootstrap(
                node_connect_params(&id, &nonce, now_ms(), None, &[]),
                "AAAAAAAAAAAAAAAAAAAAAA",
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "BOOTSTRAP_TOKEN_INVALID");
    assert_eq!(err["details"]["reason"], "unknown");
}

#[tokio::test]
async fn the_challenge_proves_the_hosts_key() {
    let host = start_host(|_| {}).await;
    let r = Raw::open_with_client_nonce(&host, "a-client-nonce-0123456789").await;
    let ch = r.challenge.clone();
    let proof: perch_protocol::handshake::HostProof =
        serde_json::from_value(ch["host"].clone()).unwrap();
    let fp = proof
        .verify_for(
            ch["nonce"].as_str().unwrap(),
            ch["ts"].as_i64().unwrap(),
            "a-client-nonce-0123456789",
        )
        .unwrap();
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(host.dir.path().join("host-identity.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(file["fingerprint"], fp);
    assert_eq!(proof.host_id, fp[..16]);
}
