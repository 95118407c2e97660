//! Location changes a node reports on its own: what it should watch (`node.location.watch`),
//! recording a change (`location.changed`) reduced to the device's sharing precision, and the
//! list operators read (`location.changes`). The assistant reads unread changes in its next
//! turn (perch-host's context).
//!
//! **Architecture Invariant:** the sharing precision is read here, at the time of each
//! report: while it is `off` nothing is kept, at `city` no coordinates are kept, whatever the
//! node sent.

use std::sync::Arc;

use perch_kernel::location::{
    ContextInput, DeviceFix, Gazetteer, LocationPolicy, NamedPlace, Precision, describe_change,
};
use perch_protocol::location::{
    DEFAULT_MIN_DISTANCE_M, LocationChangeInfo, LocationChangedPayload, LocationChangesList,
    LocationChangesParams, LocationTrigger, LocationWatch,
};
use perch_protocol::{DeviceId, ErrorCode, ErrorShape};
use perch_store::LocationPrecision;
use perch_store::location_changes::{LocationChange, NewLocationChange};

use crate::hub::{Hub, now_ms};
use crate::operator::store_error;

/// Operator event announcing a recorded change (payload: [`LocationChangeInfo`]).
pub const LOCATION_CHANGE_EVENT: &str = "location.change";

/// Most rows `location.changes` returns.
const MAX_CHANGES_LIMIT: u32 = 500;

/// `node.location.watch`: the calling node's sharing and, while it shares, the named places.
pub async fn watch(hub: &Arc<Hub>, node: &DeviceId) -> Result<LocationWatch, ErrorShape> {
    let sharing = hub
        .store
        .location()
        .sharing(node)
        .await
        .map_err(store_error)?;
    let places = if sharing == LocationPrecision::Off {
        Vec::new()
    } else {
        crate::location::list_places(hub).await?
    };
    Ok(LocationWatch {
        sharing: sharing.as_str().to_string(),
        min_distance_meters: DEFAULT_MIN_DISTANCE_M,
        places,
    })
}

/// Records a reported change as its precision allows. `Ok(None)` when recorded, `Ok(Some(why))`
/// when the host keeps nothing (sharing off, an unusable or stale fix): the node hears why
/// in `handled: false`.
pub async fn changed(
    hub: &Arc<Hub>,
    node: &DeviceId,
    payload: LocationChangedPayload,
) -> Result<Option<String>, ErrorShape> {
    let trigger = checked_trigger(payload.trigger)?;
    let stored = hub
        .store
        .location()
        .sharing(node)
        .await
        .map_err(store_error)?;
    let precision = match stored {
        LocationPrecision::Off => {
            return Ok(Some("location sharing is off for this device".into()));
        }
        LocationPrecision::City => Precision::City,
        LocationPrecision::Exact => Precision::Exact,
    };
    let fix = match DeviceFix::from_protocol(&payload.fix) {
        Ok(fix) => fix,
        Err(e) => {
            return Err(ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("invalid location.changed fix: {e}"),
            ));
        }
    };
    let places: Vec<NamedPlace> = crate::location::list_places(hub)
        .await?
        .into_iter()
        .map(|p| NamedPlace {
            name: p.name,
            lat: p.lat,
            lon: p.lon,
            radius_m: p.radius_m,
        })
        .collect();
    let gazetteer = Gazetteer::global();
    if !gazetteer.is_warm() {
        tokio::task::spawn_blocking(move || gazetteer.warm())
            .await
            .map_err(|e| ErrorShape::new(ErrorCode::Internal, e.to_string()))?;
    }
    let display_name = hub
        .node(node)
        .map(|n| n.display_name)
        .unwrap_or_else(|| node.to_string());
    let at_ms = now_ms();
    let input = ContextInput {
        device_id: node,
        device_name: &display_name,
        session_key: "",
        precision,
        fix: Some(&fix),
        places: &places,
        active_device: None,
        now_ms: at_ms,
    };
    let Some(described) = describe_change(gazetteer, &LocationPolicy::default(), &input) else {
        return Ok(Some("the fix is too old or unusable".into()));
    };
    let change = NewLocationChange {
        device_id: node.clone(),
        display_name,
        at_ms,
        trigger: serde_json::to_string(&trigger)
            .map_err(|e| ErrorShape::new(ErrorCode::Internal, e.to_string()))?,
        precision: stored,
        place_name: described.place_name,
        city: described.city,
        timezone: described.time_zone,
        coordinates: described
            .coordinates
            .filter(|_| stored == LocationPrecision::Exact),
    };
    let id = hub
        .store
        .location_changes()
        .record(&change)
        .await
        .map_err(store_error)?;
    tracing::info!(device = %node, "location change recorded");
    hub.broadcast_operators(
        LOCATION_CHANGE_EVENT,
        &info(LocationChange {
            id,
            change,
            seen_at_ms: None,
        }),
    );
    Ok(None)
}

/// A trigger with a place name the host can keep: 1 to 64 characters.
fn checked_trigger(t: LocationTrigger) -> Result<LocationTrigger, ErrorShape> {
    let bad = |why: &str| {
        Err(ErrorShape::new(
            ErrorCode::InvalidRequest,
            format!("invalid location.changed trigger: {why}"),
        ))
    };
    match &t {
        LocationTrigger::Entered { place } | LocationTrigger::Exited { place }
            if place.trim().is_empty() || place.chars().count() > 64 =>
        {
            bad("place must be 1 to 64 characters")
        }
        LocationTrigger::Moved { distance_meters }
            if !distance_meters.is_finite() || *distance_meters < 0.0 =>
        {
            bad("distanceMeters must be a finite, non-negative number")
        }
        _ => Ok(t),
    }
}

/// A stored change as operators read it.
pub fn info(c: LocationChange) -> LocationChangeInfo {
    let trigger = serde_json::from_str(&c.change.trigger).unwrap_or(LocationTrigger::First);
    LocationChangeInfo {
        device_id: c.change.device_id.to_string(),
        display_name: c.change.display_name,
        at_ms: c.change.at_ms,
        trigger,
        precision: c.change.precision.as_str().to_string(),
        place_name: c.change.place_name,
        city: c.change.city,
        timezone: c.change.timezone,
        lat: c.change.coordinates.map(|(lat, _)| lat),
        lon: c.change.coordinates.map(|(_, lon)| lon),
        seen: c.seen_at_ms.is_some(),
    }
}

/// `location.changes`: the recorded changes, newest first.
pub async fn list(
    hub: &Arc<Hub>,
    p: LocationChangesParams,
) -> Result<LocationChangesList, ErrorShape> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=MAX_CHANGES_LIMIT).contains(&limit) {
        return Err(ErrorShape::new(
            ErrorCode::InvalidRequest,
            format!("limit must be 1 to {MAX_CHANGES_LIMIT}"),
        ));
    }
    let rows = hub
        .store
        .location_changes()
        .recent(limit)
        .await
        .map_err(store_error)?;
    Ok(LocationChangesList {
        changes: rows.into_iter().map(info).collect(),
    })
}
