//! Location changes a device reports on its own, end to end through a real host: kept only as
//! the device's sharing precision allows (nothing while off, no coordinates at city), read by
//! the assistant in its next turn inside a fence, audited as a `change` read, and held back if
//! sharing was turned off after they arrived. Bad reports get a structured error.

mod common;

use serde_json::{Value, json};

use common::*;
use perch_kernel::testing::{FakeProvider, Script};
use perch_kernel::untrusted::{LOCATION_CHANGES_CLOSE, LOCATION_CHANGES_OPEN};
use perch_protocol::DeviceIdentity;

fn fix(lat: f64, lon: f64) -> Value {
    json!({"lat": lat, "lon": lon, "accuracyMeters": 12.0,
           "timestamp": jiff::Timestamp::now().to_string(), "isPrecise": true, "source": "gps"})
}

fn changed(lat: f64, lon: f64, trigger: Value) -> Value {
    json!({"event": "location.changed", "payload": {"fix": fix(lat, lon), "trigger": trigger}})
}

async fn share(op: &mut Raw, id: &DeviceIdentity, precision: &str) {
    op.request(
        "location.share",
        json!({"nodeId": id.device_id().as_str(), "precision": precision}),
    )
    .await
    .unwrap();
}

/// The fenced location changes in a request body.
fn block(raw_body: &str) -> Option<Vec<Value>> {
    fenced_lines(raw_body, LOCATION_CHANGES_OPEN, LOCATION_CHANGES_CLOSE)
}

#[tokio::test]
async fn changes_are_kept_at_the_sharing_precision_and_read_once() {
    let fake = FakeProvider::start().await.unwrap();
    let host = start_host(&fake_models(&fake)).await;
    let id = DeviceIdentity::from_seed(&[81; 32]);
    let (mut node, _t) = paired_node(&host, &id, &["device.info"]).await;
    let mut op = operator(&host).await;
    op.request(
        "places.add",
        json!({"name": "Home", "lat": 48.2085, "lon": 16.3721, "radiusM": 200}),
    )
    .await
    .unwrap();

    // Off: the watch is empty and a report is not kept.
    let watch = node
        .request("node.location.watch", json!({}))
        .await
        .unwrap();
    assert_eq!(watch["sharing"], "off");
    assert_eq!(watch["places"], json!([]));
    let r = node
        .request(
            "node.event",
            changed(48.2085, 16.3721, json!({"kind": "first"})),
        )
        .await
        .unwrap();
    assert_eq!(r["handled"], false, "{r}");
    let list = op.request("location.changes", json!({})).await.unwrap();
    assert_eq!(list["changes"], json!([]));

    // City: kept as the place or the city, never coordinates.
    share(&mut op, &id, "city").await;
    let watch = node
        .request("node.location.watch", json!({}))
        .await
        .unwrap();
    assert_eq!(watch["places"][0]["name"], "Home");
    for (lat, lon, trigger) in [
        (
            48.2085,
            16.3721,
            json!({"kind": "entered", "place": "Home"}),
        ),
        (
            48.3000,
            16.3721,
            json!({"kind": "moved", "distanceMeters": 10200.0}),
        ),
    ] {
        let r = node
            .request("node.event", changed(lat, lon, trigger))
            .await
            .unwrap();
        assert_eq!(r["handled"], true, "{r}");
    }
    let list = op.request("location.changes", json!({})).await.unwrap();
    let rows = list["changes"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["placeName"], "Home");
    assert!(rows[0]["city"].is_string(), "{}", rows[0]);
    for r in rows {
        assert!(r.get("lat").is_none(), "{r}");
    }

    // The next turn reads both, fenced, without coordinates, and audits them.
    fake.push(Script::new().text("Noted.").usage(2, 2));
    op.request("chat.send", json!({"message": "Where has my phone been?"}))
        .await
        .unwrap();
    let body = fake.requests().last().unwrap().raw_body.clone();
    let lines = block(&body).expect("the changes reach the model");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["place"], "Home");
    assert_eq!(lines[0]["trigger"]["kind"], "entered");
    assert_eq!(lines[1]["trigger"]["kind"], "moved");
    for l in &lines {
        assert!(l["lat"].is_null() && l["lon"].is_null(), "{l}");
    }
    // Both fixes share this longitude; four decimals never occur in the body's timestamps.
    assert!(
        !body.contains("16.3721") && !body.contains("48.2085"),
        "no coordinates at city"
    );
    let audit = op
        .request("location.audit", json!({"limit": 10}))
        .await
        .unwrap();
    let paths: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["path"].as_str())
        .collect();
    assert_eq!(
        paths.iter().filter(|p| **p == "change").count(),
        2,
        "{audit}"
    );

    // Read once.
    fake.push(Script::new().text("Nothing new.").usage(2, 2));
    op.request("chat.send", json!({"message": "And now?"}))
        .await
        .unwrap();
    assert!(block(&fake.requests().last().unwrap().raw_body).is_none());

    // A change kept at exact, then sharing turned off before a turn reads it: held back.
    share(&mut op, &id, "exact").await;
    node.request(
        "node.event",
        changed(
            48.4000,
            16.3721,
            json!({"kind": "moved", "distanceMeters": 11000.0}),
        ),
    )
    .await
    .unwrap();
    let list = op
        .request("location.changes", json!({"limit": 1}))
        .await
        .unwrap();
    assert_eq!(list["changes"][0]["lat"], 48.4);
    share(&mut op, &id, "off").await;
    fake.push(Script::new().text("Ok.").usage(2, 2));
    op.request("chat.send", json!({"message": "Anything?"}))
        .await
        .unwrap();
    let body = fake.requests().last().unwrap().raw_body.clone();
    assert!(block(&body).is_none(), "sharing off holds on this path too");
    assert!(
        !body.contains("16.3721"),
        "nor coordinates from an earlier exact"
    );
}

#[tokio::test]
async fn bad_reports_are_refused_and_the_host_keeps_serving() {
    let host = start_host("").await;
    let id = DeviceIdentity::from_seed(&[82; 32]);
    let (mut node, _t) = paired_node(&host, &id, &["device.info"]).await;
    let mut op = operator(&host).await;
    share(&mut op, &id, "exact").await;
    let bad = [
        changed(91.0, 0.0, json!({"kind": "first"})),
        changed(48.0, 16.0, json!({"kind": "teleported"})),
        changed(48.0, 16.0, json!({"kind": "entered", "place": ""})),
        changed(48.0, 16.0, json!({"kind": "moved", "distanceMeters": -5.0})),
        json!({"event": "location.changed", "payload": {"fix": {"lat": 1.0}, "trigger": {"kind": "first"}}}),
        json!({"event": "location.changed", "payload": {"fix": {"lat": 48.0, "lon": 16.0, "accuracyMeters": 5.0,
               "timestamp": "yesterday", "isPrecise": true, "source": "gps"}, "trigger": {"kind": "first"}}}),
    ];
    for b in bad {
        let e = node.request("node.event", b.clone()).await.unwrap_err();
        assert_eq!(e["code"], "INVALID_REQUEST", "{b} -> {e}");
    }
    let list = op.request("location.changes", json!({})).await.unwrap();
    assert_eq!(list["changes"], json!([]), "nothing half-written");
    let ok = node
        .request("node.event", changed(48.0, 16.0, json!({"kind": "first"})))
        .await
        .unwrap();
    assert_eq!(ok["handled"], true);
    let e = op
        .request("location.changes", json!({"limit": 0}))
        .await
        .unwrap_err();
    assert_eq!(e["code"], "INVALID_REQUEST");
}
