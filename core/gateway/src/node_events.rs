//! `node.event`: what nodes report on their own (presence beacons, user activity, replies to
//! notifications, location changes).

use std::sync::Arc;

use serde_json::Value;

use perch_protocol::location::{LOCATION_CHANGED, LocationChangedPayload};
use perch_protocol::notify_replies::{
    DEFAULT_REPLIES_LIMIT, MAX_REPLIES_LIMIT, NotifyRepliesList, NotifyRepliesParams,
    NotifyReplyEntry, NotifyReplyPayload, SYSTEM_NOTIFY_REPLY,
};
use perch_protocol::presence::{
    AlivePayload, NODE_PRESENCE_ACTIVITY, NODE_PRESENCE_ALIVE, NodeEventParams, NodeEventResult,
};
use perch_protocol::{DeviceId, ErrorCode, ErrorShape};
use perch_store::notify_replies::{NewReply, Recorded};

use crate::hub::{Hub, now_ms};

/// Operator event announcing a reply that arrived (payload: [`NotifyReplyEntry`]).
pub const NOTIFY_REPLY_EVENT: &str = "notify.reply";

/// Handles one node event; unknown events are answered `handled: false`, not refused, so
/// newer nodes keep working against this host.
pub async fn handle(
    hub: Arc<Hub>,
    from: DeviceId,
    p: NodeEventParams,
) -> Result<Value, ErrorShape> {
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
                parse_payload(&p.event, payload)?
            };
            let key = from.to_string();
            hub.presence_seen(&key);
            if let Some(idle) = body.idle_seconds {
                hub.presence_activity(&key, idle);
            }
            (true, None)
        }
        SYSTEM_NOTIFY_REPLY => {
            let body: NotifyReplyPayload = parse_payload(&p.event, payload)?;
            record_reply(&hub, &from, body).await?;
            (true, None)
        }
        LOCATION_CHANGED => {
            let body: LocationChangedPayload = parse_payload(&p.event, payload)?;
            match crate::location_changes::changed(&hub, &from, body).await? {
                None => (true, None),
                Some(why) => (false, Some(why)),
            }
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

fn parse_payload<T: serde::de::DeserializeOwned>(event: &str, v: Value) -> Result<T, ErrorShape> {
    serde_json::from_value(v).map_err(|e| {
        ErrorShape::new(
            ErrorCode::InvalidRequest,
            format!("invalid {event} payload: {e}"),
        )
    })
}

/// Records a reply (once per reply id) and tells operators; the assistant reads it in its next
/// turn. Only the reply's bounds are checked here: what the user typed is the device's word,
/// and the prompt fences it as such.
async fn record_reply(
    hub: &Arc<Hub>,
    from: &DeviceId,
    body: NotifyReplyPayload,
) -> Result<(), ErrorShape> {
    let body = body.validated().map_err(|e| {
        ErrorShape::new(
            ErrorCode::InvalidRequest,
            format!("invalid {SYSTEM_NOTIFY_REPLY} payload: {e}"),
        )
    })?;
    let display_name = hub
        .node(from)
        .map(|n| n.display_name)
        .unwrap_or_else(|| from.to_string());
    let reply = NewReply {
        device_id: from.clone(),
        reply_id: body.reply_id,
        notification_id: body.notification_id,
        display_name,
        title: body.title,
        action_id: body.action_id,
        text: body.text,
        received_at_ms: now_ms(),
    };
    let recorded = hub.store.replies().record(&reply).await.map_err(|e| {
        tracing::error!(error = %e, "could not record a notification reply");
        ErrorShape::new(ErrorCode::Unavailable, "the host's database is unavailable")
            .with_retryable(true)
    })?;
    if recorded == Recorded::New {
        tracing::info!(device = %from, "notification reply recorded");
        hub.broadcast_operators(
            NOTIFY_REPLY_EVENT,
            &NotifyReplyEntry {
                device_id: reply.device_id.to_string(),
                display_name: reply.display_name,
                notification_id: reply.notification_id,
                title: reply.title,
                action_id: reply.action_id,
                text: reply.text,
                received_at_ms: reply.received_at_ms,
                seen: false,
            },
        );
    }
    Ok(())
}

/// `notify.replies.list`: the replies that arrived, newest first.
pub async fn list_replies(
    hub: &Arc<Hub>,
    p: NotifyRepliesParams,
) -> Result<NotifyRepliesList, ErrorShape> {
    let limit = p.limit.unwrap_or(DEFAULT_REPLIES_LIMIT);
    if !(1..=MAX_REPLIES_LIMIT).contains(&limit) {
        return Err(ErrorShape::new(
            ErrorCode::InvalidRequest,
            format!("limit must be 1 to {MAX_REPLIES_LIMIT}"),
        ));
    }
    let rows = hub.store.replies().recent(limit).await.map_err(|e| {
        tracing::error!(error = %e, "could not read notification replies");
        ErrorShape::new(ErrorCode::Unavailable, "the host's database is unavailable")
            .with_retryable(true)
    })?;
    Ok(NotifyRepliesList {
        replies: rows
            .into_iter()
            .map(|r| NotifyReplyEntry {
                device_id: r.device_id.to_string(),
                display_name: r.display_name,
                notification_id: r.notification_id,
                title: r.title,
                action_id: r.action_id,
                text: r.text,
                received_at_ms: r.received_at_ms,
                seen: r.seen_at_ms.is_some(),
            })
            .collect(),
    })
}
