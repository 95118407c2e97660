//! Location sharing settings an operator manages: named places, per-node precision, and the
//! audit of location reads made for prompts.

use std::sync::Arc;

use serde_json::json;

use perch_protocol::location::{
    AddPlaceParams, AuditInfo, AuditParams, PlaceInfo, RemovePlaceParams, ShareParams, SharingInfo,
};
use perch_protocol::{ErrorCode, ErrorShape};
use perch_store::{LocationPrecision, NewPlace, PlaceError, PlaceRecord, StoreError};

use crate::hub::{Hub, now_ms};
use crate::operator::{resolve_node, store_error};

fn place(p: PlaceRecord) -> PlaceInfo {
    PlaceInfo {
        name: p.name,
        lat: p.lat,
        lon: p.lon,
        radius_m: p.radius_m,
        created_at_ms: p.created_at_ms,
    }
}

/// `places.list`.
pub async fn list_places(hub: &Arc<Hub>) -> Result<Vec<PlaceInfo>, ErrorShape> {
    let rows = hub
        .store
        .location()
        .list_places()
        .await
        .map_err(store_error)?;
    Ok(rows.into_iter().map(place).collect())
}

/// `places.add`.
pub async fn add_place(hub: &Arc<Hub>, p: AddPlaceParams) -> Result<PlaceInfo, ErrorShape> {
    let new = NewPlace {
        name: p.name,
        lat: p.lat,
        lon: p.lon,
        radius_m: p.radius_m,
    };
    match hub.store.location().add_place(&new, now_ms()).await {
        Ok(r) => Ok(place(r)),
        Err(PlaceError::Store(e)) => Err(store_error(e)),
        Err(e) => Err(ErrorShape::new(ErrorCode::InvalidRequest, e.to_string())),
    }
}

/// `places.remove`.
pub async fn remove_place(
    hub: &Arc<Hub>,
    p: RemovePlaceParams,
) -> Result<serde_json::Value, ErrorShape> {
    match hub.store.location().remove_place(&p.name).await {
        Ok(()) => Ok(json!({"removed": p.name})),
        Err(StoreError::NotFound { .. }) => Err(ErrorShape::new(
            ErrorCode::NotFound,
            format!("no place named {:?}", p.name),
        )),
        Err(e) => Err(store_error(e)),
    }
}

/// `location.share`.
pub async fn share(hub: &Arc<Hub>, p: ShareParams) -> Result<SharingInfo, ErrorShape> {
    let precision = LocationPrecision::parse(p.precision.trim()).ok_or_else(|| {
        ErrorShape::new(
            ErrorCode::InvalidRequest,
            format!(
                "precision must be exact, city or off, not {:?}",
                p.precision
            ),
        )
    })?;
    let node_id = resolve_node(hub, &p.node_id).await?;
    let now = now_ms();
    hub.store
        .location()
        .set_sharing(&node_id, precision, now)
        .await
        .map_err(store_error)?;
    let name = hub
        .store
        .devices()
        .get(&node_id)
        .await
        .map_err(store_error)?
        .map(|d| d.display_name)
        .unwrap_or_default();
    tracing::info!(node = %node_id.short(), %precision, "location sharing changed");
    Ok(SharingInfo {
        node_id: node_id.to_string(),
        display_name: name,
        precision: precision.as_str().to_string(),
        updated_at_ms: Some(now),
    })
}

/// `location.status`: every paired node with its precision (off unless the user chose).
pub async fn status(hub: &Arc<Hub>) -> Result<Vec<SharingInfo>, ErrorShape> {
    let settings = hub
        .store
        .location()
        .list_sharing()
        .await
        .map_err(store_error)?;
    let devices = hub.store.devices().list().await.map_err(store_error)?;
    Ok(devices
        .into_iter()
        .filter(|d| {
            d.role == perch_protocol::handshake::Role::Node
                && d.status == perch_store::DeviceStatus::Paired
        })
        .map(|d| {
            let s = settings.iter().find(|s| s.device_id == d.device_id);
            SharingInfo {
                node_id: d.device_id.to_string(),
                display_name: d.display_name,
                precision: s
                    .map(|s| s.precision)
                    .unwrap_or_default()
                    .as_str()
                    .to_string(),
                updated_at_ms: s.map(|s| s.updated_at_ms),
            }
        })
        .collect())
}

/// `location.audit`.
pub async fn audit(hub: &Arc<Hub>, p: AuditParams) -> Result<Vec<AuditInfo>, ErrorShape> {
    let limit = p.limit.unwrap_or(50).clamp(1, 1000);
    let rows = hub
        .store
        .location()
        .list_audit(limit)
        .await
        .map_err(store_error)?;
    Ok(rows
        .into_iter()
        .map(|r| AuditInfo {
            at_ms: r.at_ms,
            device_id: r.device_id.to_string(),
            session_key: r.session_key,
            precision: r.precision.as_str().to_string(),
            outcome: r.outcome.as_str().to_string(),
            place_name: r.place_name,
            city: r.city,
            path: r.path.as_str().to_string(),
        })
        .collect())
}
