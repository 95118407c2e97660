//! Presence on the wire: who is connected, from where, and who the user touched last.

use serde::{Deserialize, Serialize};

use crate::handshake::Role;

/// `system-presence`: the presence list and the active device (operator).
pub const SYSTEM_PRESENCE: &str = "system-presence";
/// Event carrying one presence change.
pub const PRESENCE_EVENT: &str = "presence";
/// `node.event`: a node reports something (node).
pub const NODE_EVENT: &str = "node.event";
/// Node event: the node is alive (woke up, came to the foreground), optionally with idle time.
pub const NODE_PRESENCE_ALIVE: &str = "node.presence.alive";
/// Node event: the user's idle time on this device.
pub const NODE_PRESENCE_ACTIVITY: &str = "node.presence.activity";

/// Longest idle time a node may report (30 days), as OpenClaw caps it.
pub const MAX_IDLE_SECONDS: u64 = 30 * 24 * 3600;

/// One connected client as the host sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceEntry {
    /// Stable key: the device id, or `conn:<id>` for a client without one.
    pub key: String,
    /// The device, when the client proved one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Name shown to the user.
    pub display_name: String,
    /// Platform.
    pub platform: String,
    /// Role of the connection.
    pub role: Role,
    /// Client mode (`node`, `cli`, `ui`...).
    pub mode: String,
    /// When this connection was admitted.
    pub connected_since_ms: i64,
    /// Last time anything arrived from it.
    pub last_seen_ms: i64,
    /// When the user last touched this device, from reported idle time (host clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_ms: Option<i64>,
    /// Peer address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<String>,
}

/// The device the user touched most recently, the host's and every client's one rule: newest
/// activity, then newest last-seen, then the greater key; only entries with a device id and
/// reported activity count.
pub fn active_device<'a>(entries: impl IntoIterator<Item = &'a PresenceEntry>) -> Option<&'a str> {
    entries
        .into_iter()
        .filter(|e| e.device_id.is_some() && e.last_activity_ms.is_some())
        .max_by(|a, b| {
            (a.last_activity_ms, a.last_seen_ms, &a.key).cmp(&(
                b.last_activity_ms,
                b.last_seen_ms,
                &b.key,
            ))
        })
        .and_then(|e| e.device_id.as_deref())
}

/// What changed, as carried by a `presence` event (the frame's `stateVersion.presence` orders
/// them; a gap means the client should fetch `system-presence` again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum PresenceChange {
    /// An entry appeared or changed.
    Upsert {
        /// The entry as it is now.
        entry: PresenceEntry,
    },
    /// An entry went away (disconnect or five minutes of silence).
    Remove {
        /// Its key.
        key: String,
    },
}

/// Result of `system-presence`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceList {
    /// Entries, most recent activity first.
    pub entries: Vec<PresenceEntry>,
    /// The device the user touched most recently, if any reported activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_device_id: Option<String>,
    /// The counters this list corresponds to (the same shape as on every frame).
    pub state_version: crate::frame::StateVersion,
}

/// Params of `node.event`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeEventParams {
    /// Event name, for example `node.presence.alive`.
    pub event: String,
    /// Event body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    /// Event body as a JSON string (OpenClaw nodes send this).
    #[serde(
        default,
        rename = "payloadJSON",
        skip_serializing_if = "Option::is_none"
    )]
    pub payload_json: Option<String>,
}

/// Result of `node.event`; count a beacon only when `handled` is true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeEventResult {
    /// Always true for a well-formed event.
    pub ok: bool,
    /// The event name.
    pub event: String,
    /// Whether the host acted on it.
    pub handled: bool,
    /// Why not, when not handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Payload of `node.presence.alive` and `node.presence.activity`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlivePayload {
    /// Why the node sent it (`connect`, `background`, `manual`...); unknown values are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// Seconds since the user last touched this device; the host computes the time itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_seconds: Option<u64>,
    /// Node clock when sent; informational only, never trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(key: &str, device: bool, activity: Option<i64>, seen: i64) -> PresenceEntry {
        PresenceEntry {
            key: key.into(),
            device_id: device.then(|| key.to_string()),
            display_name: key.into(),
            platform: "linux".into(),
            role: Role::Node,
            mode: "node".into(),
            connected_since_ms: 0,
            last_seen_ms: seen,
            last_activity_ms: activity,
            remote_addr: None,
        }
    }

    #[test]
    fn the_active_device_is_the_one_touched_last() {
        assert_eq!(active_device(&[]), None);
        let quiet = [
            entry("a", true, None, 9),
            entry("conn:1", false, Some(9), 9),
        ];
        assert_eq!(active_device(&quiet), None, "no device reported activity");
        let es = [
            entry("a", true, Some(5), 1),
            entry("b", true, Some(7), 1),
            entry("c", true, Some(7), 2),
            entry("d", true, Some(6), 9),
        ];
        assert_eq!(
            active_device(&es),
            Some("c"),
            "newest activity, then newest seen"
        );
        let tie = [entry("x", true, Some(7), 2), entry("y", true, Some(7), 2)];
        assert_eq!(active_device(&tie), Some("y"), "then the greater key");
    }

    #[test]
    fn change_is_tagged() {
        let c = PresenceChange::Remove { key: "k".into() };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"change": "remove", "key": "k"})
        );
        let back: PresenceChange =
            serde_json::from_value(json!({"change": "remove", "key": "k"})).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn alive_accepts_openclaw_fields() {
        let a: AlivePayload = serde_json::from_value(json!({
            "trigger": "silent_push", "sentAtMs": 5, "displayName": "x", "pushTransport": "relay"
        }))
        .unwrap();
        assert_eq!(a.trigger.as_deref(), Some("silent_push"));
        assert_eq!(a.idle_seconds, None);
    }
}
