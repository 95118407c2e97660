//! Location changes reported by the app through perch-ffi against a real `perch serve`: nothing
//! leaves the phone while sharing is off; at `city` a first fix, a short move (not sent), leaving
//! a named place and a long move are recorded without coordinates; at `exact` with them. An
//! impossible position is a typed error.

mod common;

use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};

use common::{Events, wait_event};
use perch_attack_tests::procs::RealHost;
use perch_ffi::{
    Location, LocationChangeReason, LocationReport, LocationSource, NodeEvent, NodeSettings,
    PerchError, PerchNode,
};
use serde_json::Value;

fn at(lat: f64, lon: f64) -> Location {
    Location {
        lat,
        lon,
        accuracy_meters: 15.0,
        altitude_meters: None,
        speed_mps: None,
        heading_deg: None,
        timestamp_ms: None,
        source: LocationSource::Gps,
    }
}

async fn report(node: &Arc<PerchNode>, lat: f64, lon: f64) -> Result<LocationReport, PerchError> {
    node.clone().report_location(at(lat, lon)).await
}

async fn changes(host: &RealHost) -> Vec<Value> {
    let list = host.cli(&["location", "changes"]).await.unwrap();
    list["changes"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_sent_when_significant_and_kept_at_the_sharing_precision() {
    let host = RealHost::start("").await;
    host.cli(&["places", "add", "Home", "47.3769,8.5417", "150"])
        .await
        .unwrap();
    let minted = host.cli(&["devices", "setup-code"]).await.unwrap();
    let code = minted["setupCode"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = channel();
    let node = {
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            let node = PerchNode::new(NodeSettings {
                display_name: "Move Phone".into(),
                data_dir: dir.to_string_lossy().into(),
                platform: Some("android".into()),
                device_family: None,
                model_identifier: None,
                locale: None,
            })
            .unwrap();
            node.set_listener(Arc::new(Events(Mutex::new(tx))));
            node
        })
        .await
        .unwrap()
    };
    node.clone().pair_with_setup_code(code).await.unwrap();
    tokio::task::block_in_place(|| {
        wait_event(&rx, "Online", |e| {
            matches!(e, NodeEvent::Online { .. }).then_some(())
        })
    });

    // Sharing is off by default: no places to watch, nothing sent, nothing kept.
    let places = node.clone().watched_places().await.unwrap();
    assert!(places.is_empty());
    assert_eq!(
        report(&node, 47.3770, 8.5418).await,
        Ok(LocationReport::SharingOff)
    );
    assert!(changes(&host).await.is_empty());

    host.cli(&["location", "share", "Move Phone", "--precision", "city"])
        .await
        .unwrap();
    let places = node.clone().watched_places().await.unwrap();
    assert_eq!(places.len(), 1);
    assert_eq!(places[0].name, "Home");
    assert_eq!(places[0].radius_meters, 150);

    assert_eq!(
        report(&node, 47.3770, 8.5418).await,
        Ok(LocationReport::Sent {
            reason: LocationChangeReason::First
        })
    );
    assert_eq!(
        report(&node, 47.3771, 8.5419).await,
        Ok(LocationReport::NotSignificant)
    );
    assert_eq!(
        report(&node, 47.3800, 8.5417).await,
        Ok(LocationReport::Sent {
            reason: LocationChangeReason::Exited {
                place: "Home".into()
            }
        })
    );
    match report(&node, 47.3900, 8.5417).await {
        Ok(LocationReport::Sent {
            reason: LocationChangeReason::Moved { distance_meters },
        }) => assert!(
            (1000.0..1200.0).contains(&distance_meters),
            "{distance_meters}"
        ),
        other => panic!("{other:?}"),
    }
    let kept = changes(&host).await;
    assert_eq!(kept.len(), 3, "{kept:?}");
    for c in &kept {
        assert_eq!(c["precision"], "city");
        assert!(c.get("lat").is_none() && c.get("lon").is_none(), "{c}");
        assert!(c["timezone"] == "Europe/Zurich", "{c}");
    }
    assert_eq!(kept[2]["placeName"], "Home");
    assert_eq!(kept[2]["trigger"]["kind"], "first");
    assert_eq!(kept[1]["trigger"]["kind"], "exited");
    assert!(
        kept[0]["city"].as_str().is_some_and(|c| !c.is_empty()),
        "{}",
        kept[0]
    );

    // At exact, a long move keeps its coordinates.
    host.cli(&["location", "share", "Move Phone", "--precision", "exact"])
        .await
        .unwrap();
    node.clone().watched_places().await.unwrap();
    assert!(matches!(
        report(&node, 47.4300, 8.5417).await,
        Ok(LocationReport::Sent { .. })
    ));
    let kept = changes(&host).await;
    assert_eq!(kept[0]["precision"], "exact");
    assert_eq!(kept[0]["lat"], 47.43);

    // Turned off again: refused on the host even before the node's watch expires.
    host.cli(&["location", "share", "Move Phone", "--precision", "off"])
        .await
        .unwrap();
    assert_eq!(
        report(&node, 47.5300, 8.5417).await,
        Ok(LocationReport::SharingOff)
    );
    assert_eq!(changes(&host).await.len(), 4);

    // An impossible position is the app's bug, said plainly.
    assert!(matches!(
        report(&node, 123.0, 8.0).await,
        Err(PerchError::InvalidLocation { .. })
    ));
}
