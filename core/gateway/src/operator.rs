//! What operator methods do: status, pairing decisions, departures, node listing and
//! description. The method table (`dispatch.rs`) routes requests here.

use std::sync::Arc;

use perch_protocol::events::{self, PairResolved};
use perch_protocol::handshake::Role;
use perch_protocol::methods::{
    DeviceClosure, DevicePairList, NodeDescription, NodeSummary, PairDecision, PairDecisionResult,
    PairedDevice, PendingRequest, StatusResult,
};
use perch_protocol::{DeviceId, ErrorCode, ErrorShape, Reason};
use perch_store::{DeviceRecord, DeviceStatus, StoreError};

use crate::hub::{Hub, now_ms};
use crate::pairing;
use crate::secrets::{hash_token, new_token};
use crate::selector::{self, Candidate};

/// Maps a store failure to what an operator sees; details of the database stay in the log.
pub fn store_error(e: StoreError) -> ErrorShape {
    match e {
        StoreError::NotFound { what, id } => {
            ErrorShape::new(ErrorCode::NotFound, format!("no {what} {id:?}"))
        }
        StoreError::NotPending { request_id, status } => ErrorShape::new(
            ErrorCode::InvalidRequest,
            format!("pairing request {request_id} is already {status}"),
        ),
        other => {
            tracing::error!(error = %other, "store failure");
            ErrorShape::new(ErrorCode::Unavailable, "the host's database is unavailable")
                .with_retryable(true)
        }
    }
}

pub(crate) async fn status(hub: &Arc<Hub>) -> Result<StatusResult, ErrorShape> {
    let paired = hub
        .store
        .devices()
        .count_paired()
        .await
        .map_err(store_error)?;
    let pending = hub
        .store
        .pairing()
        .list_pending()
        .await
        .map_err(store_error)?;
    Ok(StatusResult {
        version: env!("CARGO_PKG_VERSION").to_string(),
        host_id: hub.host_id.clone(),
        name: hub.config.name.clone(),
        protocol: perch_protocol::PROTOCOL_VERSION,
        bind: hub.config.bind.to_string(),
        uptime_ms: hub.started.elapsed().as_millis() as u64,
        paired_devices: paired,
        pending_requests: pending.len() as u64,
        nodes_online: hub.count_role(Role::Node),
        operators_online: hub.count_role(Role::Operator),
        active_turns: hub.active_turns(),
    })
}

pub(crate) async fn pair_list(hub: &Arc<Hub>) -> Result<DevicePairList, ErrorShape> {
    let devices = hub.store.devices().list().await.map_err(store_error)?;
    let pending = hub
        .store
        .pairing()
        .list_pending()
        .await
        .map_err(store_error)?;
    Ok(DevicePairList {
        paired: devices
            .into_iter()
            .map(|d| PairedDevice {
                online: hub.is_online(&d.device_id),
                device_id: d.device_id.to_string(),
                display_name: d.display_name,
                platform: d.platform,
                role: d.role,
                paired_at_ms: d.paired_at_ms,
                last_seen_ms: d.last_seen_ms,
                revoked: d.status == DeviceStatus::Revoked,
            })
            .collect(),
        pending: pending
            .into_iter()
            .map(|r| PendingRequest {
                verification_code: r.verification_code,
                request_id: r.request_id,
                device_id: r.device_id.to_string(),
                display_name: r.display_name,
                platform: r.platform,
                role: r.role,
                requested_at_ms: r.requested_at_ms,
                remote_addr: r.remote_addr,
            })
            .collect(),
    })
}

pub(crate) async fn decide(
    hub: &Arc<Hub>,
    request_id: &str,
    decision: PairDecision,
) -> Result<PairDecisionResult, ErrorShape> {
    let now = now_ms();
    let (device_id, token) = match decision {
        PairDecision::Approved => {
            let token =
                new_token().map_err(|e| ErrorShape::new(ErrorCode::Internal, e.to_string()))?;
            let device = hub
                .store
                .pairing()
                .approve(request_id, &hash_token(&token), now)
                .await
                .map_err(store_error)?;
            (device.device_id, Some(token))
        }
        PairDecision::Rejected => {
            let req = hub
                .store
                .pairing()
                .reject(request_id, now)
                .await
                .map_err(store_error)?;
            (req.device_id, None)
        }
    };
    tracing::info!(request_id, device = %device_id.short(), ?decision, "pairing request decided");
    hub.resolve_waiters(request_id, decision, token);
    hub.broadcast_operators(
        events::DEVICE_PAIR_RESOLVED,
        &PairResolved {
            request_id: request_id.to_string(),
            device_id: device_id.to_string(),
            decision: decision.into(),
            ts: now,
        },
    );
    Ok(PairDecisionResult {
        request_id: request_id.to_string(),
        device_id: device_id.to_string(),
        decision,
    })
}

/// The two ways a device leaves: locked out, or forgotten.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Departure {
    /// Refused from now on.
    Revoke,
    /// Forgotten; it may ask to pair again.
    Remove,
}

pub(crate) async fn depart(
    hub: &Arc<Hub>,
    selector: &str,
    how: Departure,
) -> Result<DeviceClosure, ErrorShape> {
    let devices = hub.store.devices().list().await.map_err(store_error)?;
    let device_id = pick(&devices, selector, "device")?;
    let now = now_ms();
    let devices_repo = hub.store.devices();
    let (error, reconnect) = match how {
        Departure::Revoke => {
            devices_repo
                .revoke(&device_id, now)
                .await
                .map_err(store_error)?;
            (pairing::admit_revoked_error(&device_id), false)
        }
        Departure::Remove => {
            devices_repo
                .remove(&device_id, now)
                .await
                .map_err(store_error)?;
            let e = ErrorShape::new(
                ErrorCode::Unauthorized,
                "this device was removed from the host; it may ask to pair again",
            )
            .with_details(
                serde_json::json!({"reason": Reason::DeviceRemoved, "deviceId": device_id}),
            )
            .with_retryable(true);
            (e, true)
        }
    };
    // Unreachable for invokes at once; its connections close right after.
    hub.drop_node(&device_id);
    let closed = hub.close_device(&device_id, error, reconnect);
    tracing::info!(device = %device_id.short(), closed, ?how, "device left");
    Ok(DeviceClosure {
        device_id: device_id.to_string(),
        closed_connections: closed,
    })
}

fn pick(devices: &[DeviceRecord], selector: &str, what: &str) -> Result<DeviceId, ErrorShape> {
    let candidates: Vec<Candidate> = devices
        .iter()
        .map(|d| Candidate {
            id: d.device_id.to_string(),
            name: d.display_name.clone(),
        })
        .collect();
    let c = selector::resolve(selector, &candidates, what).map_err(|mut e| {
        if e.code == ErrorCode::NodeNotFound && what == "device" {
            e.code = ErrorCode::NotFound;
        }
        e
    })?;
    DeviceId::parse(&c.id).map_err(|e| ErrorShape::new(ErrorCode::Internal, e.to_string()))
}

/// Resolves a node selector against paired, unrevoked nodes.
pub async fn resolve_node(hub: &Arc<Hub>, selector: &str) -> Result<DeviceId, ErrorShape> {
    // Fast paths for a full id (what programs send): a connected node is paired by
    // construction; otherwise one row, not the whole table.
    if let Ok(id) = DeviceId::parse(selector.trim()) {
        if hub.is_online(&id) {
            return Ok(id);
        }
        match hub.store.devices().get(&id).await.map_err(store_error)? {
            Some(d) if d.role == Role::Node && d.status == DeviceStatus::Paired => return Ok(id),
            _ => {}
        }
    }
    let devices: Vec<DeviceRecord> = hub
        .store
        .devices()
        .list()
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|d| d.role == Role::Node && d.status == DeviceStatus::Paired)
        .collect();
    pick(&devices, selector, "node")
}

fn summary(hub: &Hub, d: &DeviceRecord) -> NodeSummary {
    let live = hub.node(&d.device_id);
    let now = now_ms();
    match live {
        Some(s) => NodeSummary {
            node_id: d.device_id.to_string(),
            display_name: s.display_name,
            platform: s.platform,
            online: true,
            last_seen_ms: Some(now),
            commands: s.commands,
        },
        None => NodeSummary {
            node_id: d.device_id.to_string(),
            display_name: d.display_name.clone(),
            platform: d.platform.clone(),
            online: false,
            last_seen_ms: d.last_seen_ms,
            commands: d.commands.clone(),
        },
    }
}

pub(crate) async fn node_list(hub: &Arc<Hub>) -> Result<Vec<NodeSummary>, ErrorShape> {
    let devices = hub.store.devices().list().await.map_err(store_error)?;
    Ok(devices
        .iter()
        .filter(|d| d.role == Role::Node && d.status == DeviceStatus::Paired)
        .map(|d| summary(hub, d))
        .collect())
}

pub(crate) async fn describe(
    hub: &Arc<Hub>,
    selector: &str,
) -> Result<NodeDescription, ErrorShape> {
    let id = resolve_node(hub, selector).await?;
    let record = hub
        .store
        .devices()
        .get(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| ErrorShape::new(ErrorCode::NodeNotFound, "node vanished"))?;
    let s = summary(hub, &record);
    let live = hub.node(&id);
    let blocked = s
        .commands
        .iter()
        .filter(|c| !hub.config.commands.allows(c))
        .cloned()
        .collect();
    Ok(NodeDescription {
        caps: live.as_ref().map(|l| l.caps.clone()).unwrap_or_default(),
        permissions: live
            .as_ref()
            .map(|l| l.permissions.clone())
            .unwrap_or_default(),
        blocked_commands: blocked,
        client_version: live.as_ref().map(|l| l.client_version.clone()),
        device_family: live
            .as_ref()
            .and_then(|l| l.device_family.clone())
            .or(record.device_family.clone()),
        connected_since_ms: live.as_ref().map(|l| l.connected_since_ms),
        remote_addr: live.as_ref().map(|l| l.remote_addr.clone()),
        paired_at_ms: record.paired_at_ms,
        inventory: crate::node_reports::inventory(hub, live.as_ref()),
        summary: s,
    })
}
