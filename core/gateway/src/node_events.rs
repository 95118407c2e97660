//! `node.event`: what nodes report on their own (presence beacons, user activity).

use std::sync::Arc;

use serde_json::Value;

use perch_protocol::presence::{
    AlivePayload, NODE_PRESENCE_ACTIVITY, NODE_PRESENCE_ALIVE, NodeEventParams, NodeEventResult,
};
use perch_protocol::{DeviceId, ErrorCode, ErrorShape};

use crate::hub::Hub;

/// Handles one node event; unknown events are answered `handled: false`, not refused, so
/// newer nodes keep working against this host.
pub fn handle(hub: &Arc<Hub>, from: &DeviceId, p: NodeEventParams) -> Result<Value, ErrorShape> {
    let payload = match (p.payload, p.payload_json) {
        (Some(v), _) => v,
        (None, Some(text)) => serde_json::from_str(&text).map_err(|e| {
            ErrorShape::new(
                ErrorCode::InvalidRequest,
                format!("payloadJSON is not JSON: {e}"),
            )
        })?,
        (None, None) => Value::Null,
    };
    let (handled, reason) = match p.event.as_str() {
        NODE_PRESENCE_ALIVE | NODE_PRESENCE_ACTIVITY => {
            let body: AlivePayload = if payload.is_null() {
                AlivePayload::default()
            } else {
                serde_json::from_value(payload).map_err(|e| {
                    ErrorShape::new(
                        ErrorCode::InvalidRequest,
                        format!("invalid {} payload: {e}", p.event),
                    )
                })?
            };
            let key = from.to_string();
            hub.presence_seen(&key);
            if let Some(idle) = body.idle_seconds {
                hub.presence_activity(&key, idle);
            }
            (true, None)
        }
        _ => (false, Some("unknown event".to_string())),
    };
    serde_json::to_value(NodeEventResult {
        ok: true,
        event: p.event,
        handled,
        reason,
    })
    .map_err(|e| ErrorShape::new(ErrorCode::Internal, e.to_string()))
}
