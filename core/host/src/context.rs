//! The device context a turn starts with: where the user's device is (place or city, time
//! zone, local time; coordinates only at `exact`), read through the kernel's
//! [`LocationPrompts`] (consent, the read, the audit) from the device the user is at first;
//! and what devices reported on their own that the assistant has not read yet (replies to
//! notifications, location changes).

use std::sync::Arc;

use perch_gateway::hub::Hub;
use perch_gateway::secrets::random_b64;
use perch_kernel::location::{AuditEntry, AuditOutcome, LocationLedger, Precision, ReadPath};
use perch_kernel::location::{LocationPolicy, LocationPrompts, PromptTarget};
use perch_kernel::untrusted::{
    NotificationReply, fence_location_changes, fence_notification_replies,
};
use perch_protocol::methods::InvokeParams;
use perch_protocol::node_commands::{LOCATION_GET, LocationFix};
use perch_store::LocationPrecision;
use perch_store::Requester;

use crate::location_ledger::StoreLedger;

/// The device-context block for this turn, when a connected node shares its location: the
/// device the user is at first, then the others by id. Consent, the read and the audit are the
/// kernel's [`LocationPrompts`]; nothing is read from a device whose sharing is off.
pub async fn location_context(hub: &Arc<Hub>, session: &str, turn: &str) -> Option<String> {
    let ledger = StoreLedger(hub.store.clone());
    let active = hub.presence_list().active_device_id;
    let mut candidates: Vec<_> = hub
        .nodes()
        .into_iter()
        .filter(|n| {
            n.commands.iter().any(|c| c == LOCATION_GET) && hub.config.commands.allows(LOCATION_GET)
        })
        .collect();
    candidates.sort_by_key(|n| (Some(n.node_id.to_string()) != active, n.node_id.clone()));
    let active_name = candidates
        .iter()
        .find(|n| Some(n.node_id.to_string()) == active)
        .map(|n| n.display_name.clone());
    let prompts = LocationPrompts::new(LocationPolicy::default());
    for node in candidates {
        let sharing = hub.store.location().sharing(&node.node_id).await.ok()?;
        if sharing == perch_store::LocationPrecision::Off {
            continue;
        }
        let target = PromptTarget {
            device_id: node.node_id.clone(),
            device_name: node.display_name.clone(),
            session_key: session.to_string(),
            active_device: active_name.clone(),
        };
        let fetch = || async {
            let params = InvokeParams {
                node_id: node.node_id.to_string(),
                command: LOCATION_GET.to_string(),
                params: None,
                timeout_ms: Some(LOCATION_READ_TIMEOUT_MS),
                idempotency_key: format!("ctx:{}", random_b64(9).unwrap_or_default()),
            };
            // The turn asked: the node's access record says so.
            let requester = Requester::Turn {
                session_key: session.to_string(),
                turn_id: turn.to_string(),
            };
            let r = perch_gateway::invoke::invoke(hub, params, requester)
                .await
                .map_err(|e| e.to_string())?;
            serde_json::from_value::<LocationFix>(r.payload).map_err(|e| e.to_string())
        };
        let read = prompts.read(&ledger, &target, fetch).await;
        if read.block.is_some() {
            return read.block;
        }
    }
    None
}

/// How long a prompt waits for a device's position.
const LOCATION_READ_TIMEOUT_MS: u64 = 5_000;

/// Most unread replies, and most unread location changes, one turn reads; older ones wait for
/// the next turn.
const EVENTS_PER_TURN: u32 = 20;

/// What the user's devices reported on their own since the assistant last read: replies to
/// notifications and location changes, fenced as untrusted data, with the rows to mark read
/// once the turn has ended well (so a failed turn loses none).
#[derive(Debug, Default)]
pub struct DeviceEvents {
    /// The fenced blocks for the prompt.
    pub blocks: Vec<String>,
    replies: Vec<i64>,
    changes: Vec<i64>,
}

impl DeviceEvents {
    /// Reads the unread events. A location change is shown at the sharing precision in force
    /// now (coordinates dropped at `city`, nothing while `off`) and audited as a read.
    pub async fn read(hub: &Arc<Hub>, session: &str) -> Self {
        let mut events = DeviceEvents::default();
        match hub.store.replies().unseen(EVENTS_PER_TURN).await {
            Ok(rows) => {
                let replies: Vec<NotificationReply> = rows
                    .iter()
                    .map(|r| NotificationReply {
                        device: r.display_name.clone(),
                        title: r.title.clone(),
                        action: r.action_id.clone(),
                        text: r.text.clone(),
                        received_at: rfc3339_ms(r.received_at_ms),
                    })
                    .collect();
                events.blocks.extend(fence_notification_replies(&replies));
                events.replies = rows.iter().map(|r| r.id).collect();
            }
            Err(e) => tracing::warn!(error = %e, "could not read notification replies for a turn"),
        }
        match hub.store.location_changes().unseen(EVENTS_PER_TURN).await {
            Ok(rows) => {
                let mut shown = Vec::new();
                for row in rows {
                    events.changes.push(row.id);
                    if let Some(v) = change_for_prompt(hub, session, row).await {
                        shown.push(v);
                    }
                }
                events.blocks.extend(fence_location_changes(&shown));
            }
            Err(e) => tracing::warn!(error = %e, "could not read location changes for a turn"),
        }
        events
    }

    /// Marks what this turn read as read.
    pub async fn mark_read(&self, hub: &Arc<Hub>) {
        let now = perch_gateway::hub::now_ms();
        // On failure they are shown again next turn: repeated, not lost.
        if let Err(e) = hub.store.replies().mark_seen(&self.replies, now).await {
            tracing::warn!(error = %e, "could not mark notification replies as read");
        }
        if let Err(e) = hub
            .store
            .location_changes()
            .mark_seen(&self.changes, now)
            .await
        {
            tracing::warn!(error = %e, "could not mark location changes as read");
        }
    }
}

/// One recorded change as the prompt may carry it now, audited; `None` when sharing is off
/// now or the audit could not be written.
async fn change_for_prompt(
    hub: &Arc<Hub>,
    session: &str,
    row: perch_store::location_changes::LocationChange,
) -> Option<serde_json::Value> {
    let c = &row.change;
    let now = match hub.store.location().sharing(&c.device_id).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "location consent unreadable; change left out");
            return None;
        }
    };
    let precision = match now {
        LocationPrecision::Off => return None,
        LocationPrecision::City => Precision::City,
        LocationPrecision::Exact => Precision::Exact,
    };
    let coordinates = c.coordinates.filter(|_| now == LocationPrecision::Exact);
    let audit = AuditEntry {
        at_ms: perch_gateway::hub::now_ms(),
        device_id: c.device_id.clone(),
        session_key: session.to_string(),
        precision,
        outcome: AuditOutcome::Included,
        place_name: c.place_name.clone(),
        city: c.city.clone(),
        path: ReadPath::Change,
    };
    if let Err(e) = StoreLedger(hub.store.clone()).record(&audit).await {
        tracing::warn!(error = %e, "location audit failed; change withheld");
        return None;
    }
    let trigger: serde_json::Value =
        serde_json::from_str(&c.trigger).unwrap_or(serde_json::Value::Null);
    Some(serde_json::json!({
        "device": c.display_name,
        "trigger": trigger,
        "precision": precision.as_str(),
        "place": c.place_name,
        "city": c.city,
        "timeZone": c.timezone,
        "lat": coordinates.map(|(lat, _)| lat),
        "lon": coordinates.map(|(_, lon)| lon),
        "at": rfc3339_ms(c.at_ms),
    }))
}

fn rfc3339_ms(ms: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}
