//! Places, per-node sharing precision and the audit, over the wire.

mod common;

use serde_json::json;

use common::*;
use perch_protocol::DeviceIdentity;

#[tokio::test]
async fn places_sharing_and_audit() {
    let host = start_host(|_| {}).await;
    let mut op = operator(&host).await;
    let p = op
        .request(
            "places.add",
            json!({"name": "Home", "lat": 48.2085, "lon": 16.3721, "radiusM": 150}),
        )
        .await
        .unwrap();
    assert_eq!(p["name"], "Home");
    let err = op
        .request(
            "places.add",
            json!({"name": "home", "lat": 1.0, "lon": 1.0, "radiusM": 10}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err["code"], "INVALID_REQUEST",
        "names are unique ignoring case"
    );
    let err = op
        .request(
            "places.add",
            json!({"name": "X", "lat": 91.0, "lon": 1.0, "radiusM": 10}),
        )
        .await
        .unwrap_err();
    assert!(err["message"].as_str().unwrap().contains("latitude"));
    assert_eq!(
        op.request("places.list", json!({})).await.unwrap()[0]["radiusM"],
        150
    );
    op.request("places.remove", json!({"name": "HOME"}))
        .await
        .unwrap();
    let err = op
        .request("places.remove", json!({"name": "Home"}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], "NOT_FOUND");

    let id = DeviceIdentity::from_seed(&[70; 32]);
    let (_n, _t) = paired_node(&host, &id, &["location.get"]).await;
    let status = op.request("location.status", json!({})).await.unwrap();
    assert_eq!(
        status[0]["precision"], "off",
        "sharing is off until the user turns it on"
    );
    let s = op
        .request(
            "location.share",
            json!({"nodeId": "Test Node", "precision": "city"}),
        )
        .await
        .unwrap();
    assert_eq!(s["precision"], "city");
    let status = op.request("location.status", json!({})).await.unwrap();
    assert_eq!(status[0]["precision"], "city");
    let err = op
        .request(
            "location.share",
            json!({"nodeId": "Test Node", "precision": "street"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], "INVALID_REQUEST");
    let audit = op.request("location.audit", json!({})).await.unwrap();
    assert_eq!(audit, json!([]), "no prompt has read a location yet");
}
