//! Event names and payloads pushed by the host.

use serde::{Deserialize, Serialize};

use crate::error::ErrorShape;
use crate::handshake::Role;
use crate::methods::PairDecision;

/// Keepalive, every `policy.tickIntervalMs`.
pub const TICK: &str = "tick";
/// A device asked to pair (to operators).
pub const DEVICE_PAIR_REQUESTED: &str = "device.pair.requested";
/// A pairing request was decided (to operators and to the waiting device).
pub const DEVICE_PAIR_RESOLVED: &str = "device.pair.resolved";
/// The host asks a node to run a command.
pub const NODE_INVOKE_REQUEST: &str = "node.invoke.request";
/// The host abandons an invoke whose deadline passed.
pub const NODE_INVOKE_CANCEL: &str = "node.invoke.cancel";
/// A node connected or disconnected (to operators).
pub const NODE_STATUS: &str = "node.status";
/// The host is about to close this connection, and why.
pub const CONNECTION_CLOSING: &str = "connection.closing";
/// The host is shutting down.
pub const SHUTDOWN: &str = "shutdown";
/// An error about a frame that cannot be answered as a request (malformed JSON, a client event).
pub const PROTOCOL_ERROR: &str = "protocol.error";

/// Events an operator may receive.
pub const OPERATOR_EVENTS: &[&str] = &[
    crate::handshake::CHALLENGE_EVENT,
    TICK,
    DEVICE_PAIR_REQUESTED,
    DEVICE_PAIR_RESOLVED,
    NODE_STATUS,
    crate::presence::PRESENCE_EVENT,
    crate::chat::CHAT_EVENT,
    crate::settings::SETTINGS_CHANGED_EVENT,
    crate::chat::AGENT_TURN_EVENT,
    CONNECTION_CLOSING,
    SHUTDOWN,
    PROTOCOL_ERROR,
];
/// Events a node may receive.
pub const NODE_EVENTS: &[&str] = &[
    crate::handshake::CHALLENGE_EVENT,
    TICK,
    DEVICE_PAIR_RESOLVED,
    NODE_INVOKE_REQUEST,
    NODE_INVOKE_CANCEL,
    CONNECTION_CLOSING,
    SHUTDOWN,
    PROTOCOL_ERROR,
];

/// Payload of `tick`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    /// Host clock, ms since the epoch.
    pub ts: i64,
}

/// Payload of `device.pair.requested`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairRequested {
    /// The request id to approve or reject.
    pub request_id: String,
    /// The device.
    pub device_id: String,
    /// Its public key (base64url).
    pub public_key: String,
    /// Its name.
    pub display_name: String,
    /// Its platform.
    pub platform: String,
    /// The role it asks for.
    pub role: Role,
    /// The IP address it connects from; `remoteIp` on the wire, as OpenClaw names it (hosts
    /// before this build sent `remoteAddr`, still read).
    #[serde(
        default,
        rename = "remoteIp",
        alias = "remoteAddr",
        skip_serializing_if = "Option::is_none"
    )]
    pub remote_addr: Option<String>,
    /// The six digits the device shows too, so the user can tell it is the right device
    /// ([`crate::verification`]); absent when the client made no commitment to derive one
    /// from (an OpenClaw node): such a request cannot be verified by code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_code: Option<String>,
    /// When, ms since the epoch.
    pub ts: i64,
}

/// How a pairing request ended, as operators and the device are told: an operator's decision,
/// or the host expiring it (nobody decided in time, or newer requests needed the room). A type
/// of its own so no operator can "decide" `expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PairResolution {
    /// The device may connect.
    Approved,
    /// The device is refused.
    Rejected,
    /// Nobody decided; the device may ask again.
    Expired,
}

impl From<PairDecision> for PairResolution {
    fn from(d: PairDecision) -> Self {
        match d {
            PairDecision::Approved => PairResolution::Approved,
            PairDecision::Rejected => PairResolution::Rejected,
        }
    }
}

/// Payload of `device.pair.resolved`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PairResolved {
    /// The decided request.
    pub request_id: String,
    /// The device.
    pub device_id: String,
    /// How it ended.
    pub decision: PairResolution,
    /// When, ms since the epoch.
    pub ts: i64,
}

/// Payload of `node.invoke.request`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeRequest {
    /// Invoke id to echo in `node.invoke.result`.
    pub id: String,
    /// The node's id.
    pub node_id: String,
    /// Command name.
    pub command: String,
    /// Params as a JSON string, as OpenClaw nodes expect.
    #[serde(
        default,
        rename = "paramsJSON",
        skip_serializing_if = "Option::is_none"
    )]
    pub params_json: Option<String>,
    /// How long the host will wait.
    pub timeout_ms: u64,
    /// The caller's idempotency key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Payload of `node.invoke.cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvokeCancel {
    /// The abandoned invoke.
    pub invoke_id: String,
    /// The node's id.
    pub node_id: String,
}

/// Payload of `node.status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The node.
    pub node_id: String,
    /// Its name.
    pub display_name: String,
    /// Connected now.
    pub online: bool,
    /// When the node last answered a command, or was still working on one as it left, ms
    /// since the epoch: lets a client tell a device in use from an idle one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_invoke_ms: Option<i64>,
    /// When, ms since the epoch.
    pub ts: i64,
}

/// Payload of `connection.closing`: the reason for a close the client did not ask for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionClosing {
    /// Why.
    pub error: ErrorShape,
    /// Whether reconnecting can help.
    pub reconnect: bool,
}

/// Payload of `shutdown`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shutdown {
    /// Why.
    pub reason: String,
    /// When the host expects to be back, if it knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_expected_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn a_resolution_is_a_decision_or_the_hosts_expiry() {
        let expired = PairResolved {
            request_id: "r".into(),
            device_id: "d".into(),
            decision: PairResolution::Expired,
            ts: 3,
        };
        let v = serde_json::to_value(&expired).unwrap();
        assert_eq!(
            v,
            json!({"requestId": "r", "deviceId": "d", "decision": "expired", "ts": 3})
        );
        assert_eq!(serde_json::from_value::<PairResolved>(v).unwrap(), expired);
        assert_eq!(
            PairResolution::from(PairDecision::Rejected),
            PairResolution::Rejected
        );
        // An operator's decision can't be "expired": only the host ends a request that way.
        assert!(serde_json::from_value::<PairDecision>(json!("expired")).is_err());
    }

    #[test]
    fn pair_requested_carries_the_verification_code() {
        let p = PairRequested {
            request_id: "r".into(),
            device_id: "d".into(),
            public_key: "k".into(),
            display_name: "n".into(),
            platform: "linux".into(),
            role: Role::Node,
            remote_addr: None,
            verification_code: Some("048 213".into()),
            ts: 1,
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            json!({"requestId": "r", "deviceId": "d", "publicKey": "k", "displayName": "n",
                   "platform": "linux", "role": "node", "verificationCode": "048 213", "ts": 1})
        );
        assert_eq!(serde_json::from_value::<PairRequested>(v).unwrap(), p);
        let with_ip = PairRequested {
            remote_addr: Some("192.0.2.7".into()),
            ..p
        };
        let v = serde_json::to_value(&with_ip).unwrap();
        assert_eq!(v["remoteIp"], "192.0.2.7");
        let mut old = v.as_object().unwrap().clone();
        let ip = old.remove("remoteIp").unwrap();
        old.insert("remoteAddr".into(), ip);
        let read: PairRequested = serde_json::from_value(Value::Object(old)).unwrap();
        assert_eq!(read, with_ip, "an older host's remoteAddr is still read");
    }

    #[test]
    fn invoke_request_uses_params_json_key() {
        let r = InvokeRequest {
            id: "i".into(),
            node_id: "n".into(),
            command: "location.get".into(),
            params_json: Some("{}".into()),
            timeout_ms: 30000,
            idempotency_key: Some("k".into()),
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v,
            json!({"id": "i", "nodeId": "n", "command": "location.get", "paramsJSON": "{}",
                   "timeoutMs": 30000, "idempotencyKey": "k"})
        );
        assert_eq!(serde_json::from_value::<InvokeRequest>(v).unwrap(), r);
    }
}
