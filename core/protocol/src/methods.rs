//! Method names and the params and results of each method the host serves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorShape;
use crate::handshake::Role;
use crate::node_reports::NodeInventory;

/// `status`: host overview (operator).
pub const STATUS: &str = "status";
/// `device.pair.list`: paired devices and pending requests (operator).
pub const DEVICE_PAIR_LIST: &str = "device.pair.list";
/// `device.pair.approve`: approve a pending request (operator).
pub const DEVICE_PAIR_APPROVE: &str = "device.pair.approve";
/// `device.pair.reject`: reject a pending request (operator).
pub const DEVICE_PAIR_REJECT: &str = "device.pair.reject";
/// `device.pair.revoke`: lock a paired device out and close its connections (operator).
pub const DEVICE_PAIR_REVOKE: &str = "device.pair.revoke";
/// `device.pair.remove`: forget a device; it may ask to pair again (operator).
pub const DEVICE_PAIR_REMOVE: &str = "device.pair.remove";
/// `device.pair.setupCode`: mint a setup code with a single-use bootstrap token (operator).
pub const DEVICE_PAIR_SETUP_CODE: &str = "device.pair.setupCode";
/// `node.list`: known nodes with online state (operator).
pub const NODE_LIST: &str = "node.list";
/// `node.describe`: one node in detail (operator).
pub const NODE_DESCRIBE: &str = "node.describe";
/// `node.invoke`: run a command on a node (operator).
pub const NODE_INVOKE: &str = "node.invoke";
/// `node.invoke.result`: a node answers an invoke request (node).
pub const NODE_INVOKE_RESULT: &str = "node.invoke.result";

/// Result of `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResult {
    /// Host software version.
    pub version: String,
    /// Host id.
    pub host_id: String,
    /// Host display name.
    pub name: String,
    /// Protocol version spoken.
    pub protocol: u32,
    /// Address the gateway listens on.
    pub bind: String,
    /// How long the host has run.
    pub uptime_ms: u64,
    /// Number of paired devices.
    pub paired_devices: u64,
    /// Number of pending pairing requests.
    pub pending_requests: u64,
    /// Nodes connected now.
    pub nodes_online: u64,
    /// Operator connections now.
    pub operators_online: u64,
    /// Chat turns running now (each also announced by `agent.turn` events); 0 from hosts
    /// that predate it.
    #[serde(default)]
    pub active_turns: u64,
}

/// A device the user approved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairedDevice {
    /// Device id.
    pub device_id: String,
    /// Name shown to the user.
    pub display_name: String,
    /// Platform reported at pairing.
    pub platform: String,
    /// Role granted.
    pub role: Role,
    /// When it was approved.
    pub paired_at_ms: i64,
    /// When it was last connected, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_ms: Option<i64>,
    /// Whether it is revoked (locked out).
    pub revoked: bool,
    /// Whether it is connected now.
    pub online: bool,
}

/// A pairing request waiting for the user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRequest {
    /// Stable id: the same for retries of the same key and role.
    pub request_id: String,
    /// Device id.
    pub device_id: String,
    /// Name the device gave.
    pub display_name: String,
    /// Platform the device reported.
    pub platform: String,
    /// Role asked for.
    pub role: Role,
    /// When the request was first made.
    pub requested_at_ms: i64,
    /// Remote address of the requesting connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<String>,
    /// The six digits the device shows too, so the user can tell it is the right device
    /// ([`crate::verification`]); absent when the client made no commitment to derive one
    /// from (an OpenClaw node): such a request cannot be verified by code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_code: Option<String>,
}

/// Result of `device.pair.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DevicePairList {
    /// Approved devices (revoked ones included, flagged).
    pub paired: Vec<PairedDevice>,
    /// Requests waiting for a decision.
    pub pending: Vec<PendingRequest>,
}

/// Params of `device.pair.approve` and `device.pair.reject`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PairDecisionParams {
    /// The request to decide.
    pub request_id: String,
}

/// How a pairing request was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairDecision {
    /// The device may connect.
    Approved,
    /// The device is refused.
    Rejected,
}

/// Result of approve or reject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairDecisionResult {
    /// The decided request.
    pub request_id: String,
    /// The device it was for.
    pub device_id: String,
    /// The decision.
    pub decision: PairDecision,
}

/// Params of `device.pair.revoke` and `device.pair.remove`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceParams {
    /// Device id, unambiguous id prefix, or display name.
    pub device_id: String,
}

/// Result of `device.pair.revoke` and `device.pair.remove`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceClosure {
    /// The device.
    pub device_id: String,
    /// Connections closed because of it.
    pub closed_connections: u64,
}

/// Result of `device.pair.setupCode`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetupCodeResult {
    /// The code to type or scan; carries addresses, port, host id, key fingerprint and a
    /// single-use bootstrap token.
    pub setup_code: String,
    /// When the bootstrap token stops working.
    pub expires_at_ms: i64,
    /// The WebSocket URLs the code points at, in the order a node tries them.
    pub gateway_urls: Vec<String>,
    /// The host id.
    pub host_id: String,
    /// The host key fingerprint a node pins.
    pub fingerprint: String,
    /// Things the user should know (for example: the host listens on loopback only).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One node as listed by `node.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    /// Node id (= device id).
    pub node_id: String,
    /// Name shown to the user.
    pub display_name: String,
    /// Platform.
    pub platform: String,
    /// Connected now.
    pub online: bool,
    /// Last time the node was connected (now, when online).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_ms: Option<i64>,
    /// Commands the node advertises (when offline: those it advertised last time).
    pub commands: Vec<String>,
}

/// Params selecting one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSelector {
    /// Node id, unambiguous id prefix, or display name.
    pub node_id: String,
}

/// Result of `node.describe`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeDescription {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: NodeSummary,
    /// Capability categories.
    pub caps: Vec<String>,
    /// Permission claims.
    pub permissions: BTreeMap<String, bool>,
    /// Commands the node advertises that host policy refuses.
    pub blocked_commands: Vec<String>,
    /// Client program and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
    /// Hardware family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    /// When the current connection started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_since_ms: Option<i64>,
    /// Remote address of the current connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<String>,
    /// When the device was paired.
    pub paired_at_ms: i64,
    /// What the node reported about itself on its current connection (skills, plugin tools,
    /// runner features); left out when it reported nothing. Claims only: none of it is
    /// callable unless host policy allows the command.
    #[serde(default, skip_serializing_if = "NodeInventory::is_empty")]
    pub inventory: NodeInventory,
}

/// Params of `node.invoke`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeParams {
    /// Node id, unambiguous id prefix, or display name.
    pub node_id: String,
    /// Command name, for example `location.get`.
    pub command: String,
    /// Command params.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    /// Deadline for this call (default 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Same key, same call: a retry returns the first call's outcome instead of running twice.
    pub idempotency_key: String,
}

/// Result of a successful `node.invoke`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeResult {
    /// The node that ran it.
    pub node_id: String,
    /// The command.
    pub command: String,
    /// The command's result payload.
    pub payload: Value,
}

/// Params of `node.invoke.result`, sent by the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeResultParams {
    /// The invoke request id from `node.invoke.request`.
    pub id: String,
    /// The node's own id.
    pub node_id: String,
    /// Whether the command succeeded.
    pub ok: bool,
    /// Result payload as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Result payload as a JSON string (OpenClaw nodes send this).
    #[serde(
        default,
        rename = "payloadJSON",
        skip_serializing_if = "Option::is_none"
    )]
    pub payload_json: Option<String>,
    /// The error, when `ok` is false. Read leniently: OpenClaw nodes may omit `code` or send a
    /// generic one and put the specific code in the message as `CODE: text`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_node_error"
    )]
    pub error: Option<ErrorShape>,
}

/// An error as nodes in the wild send it; every field optional.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeReportedError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Option<Value>,
    #[serde(default)]
    retryable: Option<bool>,
    #[serde(default)]
    retry_after_ms: Option<u64>,
}

/// Splits `"LOCATION_DISABLED: enable Location"` into the code and the rest.
fn code_prefix(message: &str) -> Option<(&str, &str)> {
    let (head, rest) = message.split_once(':')?;
    let mut chars = head.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_uppercase());
    let rest_ok = chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    (first_ok && rest_ok && head.len() > 2).then(|| (head, rest.trim()))
}

impl NodeReportedError {
    fn into_shape(self) -> ErrorShape {
        let message = self.message.unwrap_or_default();
        let generic = |c: &str| c.is_empty() || c == "UNAVAILABLE";
        let (code, text) = match (self.code, code_prefix(&message)) {
            (Some(c), Some((prefix, rest))) if generic(&c) => {
                (prefix.to_string(), rest.to_string())
            }
            (Some(c), _) if !c.is_empty() => (c, message.clone()),
            (_, Some((prefix, rest))) => (prefix.to_string(), rest.to_string()),
            _ => ("UNAVAILABLE".to_string(), message.clone()),
        };
        let text = if text.is_empty() {
            "the node reported a failure without details".to_string()
        } else {
            text
        };
        ErrorShape {
            code: crate::ErrorCode::parse(&code),
            message: text,
            details: self.details,
            retryable: self.retryable,
            retry_after_ms: self.retry_after_ms,
        }
    }
}

fn lenient_node_error<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<ErrorShape>, D::Error> {
    Ok(Option::<NodeReportedError>::deserialize(d)?.map(NodeReportedError::into_shape))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pending_request_has_documented_keys() {
        let p = PendingRequest {
            request_id: "r".into(),
            device_id: "d".into(),
            display_name: "n".into(),
            platform: "linux".into(),
            role: Role::Node,
            requested_at_ms: 1,
            remote_addr: None,
            verification_code: Some("048 213".into()),
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"requestId": "r", "deviceId": "d", "displayName": "n", "platform": "linux",
                   "role": "node", "requestedAtMs": 1, "verificationCode": "048 213"})
        );
    }

    #[test]
    fn node_summary_has_documented_keys() {
        let n = NodeSummary {
            node_id: "id".into(),
            display_name: "n".into(),
            platform: "linux".into(),
            online: true,
            last_seen_ms: Some(5),
            commands: vec!["location.get".into()],
        };
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            json!({"nodeId": "id", "displayName": "n", "platform": "linux", "online": true,
                   "lastSeenMs": 5, "commands": ["location.get"]})
        );
    }

    #[test]
    fn invoke_params_require_idempotency_key() {
        let missing = json!({"nodeId": "a", "command": "device.info"});
        assert!(serde_json::from_value::<InvokeParams>(missing).is_err());
        let ok = json!({"nodeId": "a", "command": "device.info", "idempotencyKey": "k",
                        "timeoutMs": 100, "params": {}});
        let p: InvokeParams = serde_json::from_value(ok.clone()).unwrap();
        assert_eq!(serde_json::to_value(&p).unwrap(), ok);
    }

    #[test]
    fn invoke_result_accepts_payload_json_string() {
        let v = json!({"id": "1", "nodeId": "n", "ok": true, "payloadJSON": "{\"a\":1}"});
        let p: InvokeResultParams = serde_json::from_value(v).unwrap();
        assert_eq!(p.payload_json.as_deref(), Some("{\"a\":1}"));
    }

    #[test]
    fn node_errors_are_read_leniently() {
        let read = |e: Value| -> ErrorShape {
            let v = json!({"id": "1", "nodeId": "n", "ok": false, "error": e});
            serde_json::from_value::<InvokeResultParams>(v)
                .unwrap()
                .error
                .unwrap()
        };
        let e = read(json!({"code": "CAMERA_DISABLED", "message": "off"}));
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("CAMERA_DISABLED", "off")
        );
        let e = read(json!({"message": "LOCATION_DISABLED: enable Location in Settings"}));
        assert_eq!(e.code.as_str(), "LOCATION_DISABLED");
        assert_eq!(e.message, "enable Location in Settings");
        let e = read(json!({"code": "UNAVAILABLE", "message": "LOCATION_TIMEOUT: no fix"}));
        assert_eq!(e.code.as_str(), "LOCATION_TIMEOUT");
        let e = read(json!({"code": "INVALID_REQUEST", "message": "Bad: thing"}));
        assert_eq!(e.code.as_str(), "INVALID_REQUEST");
        assert_eq!(e.message, "Bad: thing");
        let e = read(json!({}));
        assert_eq!(e.code.as_str(), "UNAVAILABLE");
        assert!(!e.message.is_empty());
    }
}
