//! The access record on the wire: per device, the node commands run on it (who asked, which
//! command, when, how long, what came of it; never params or payload). Operators read any
//! device's record with `device.access.list`; a node reads only its own with
//! `node.access.list`, so a phone can show its user what the assistant took from it.

use serde::{Deserialize, Serialize};

/// `device.access.list` (operator, `operator.read`): one device's record, newest first.
pub const DEVICE_ACCESS_LIST: &str = "device.access.list";
/// `node.access.list` (node role): the calling node's own record, newest first.
pub const NODE_ACCESS_LIST: &str = "node.access.list";

/// Rows per page when `limit` is not given.
pub const DEFAULT_ACCESS_LIMIT: u32 = 50;
/// Most rows one page may ask for.
pub const MAX_ACCESS_LIMIT: u32 = 500;

/// Params of `device.access.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceAccessParams {
    /// Node id, unambiguous id prefix, or display name (as `node.describe`).
    pub node_id: String,
    /// Rows per page, 1 to [`MAX_ACCESS_LIMIT`] (default [`DEFAULT_ACCESS_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// A previous page's `nextBefore`: rows older than it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
}

/// Params of `node.access.list`; no node id, because a node reads only its own record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeAccessParams {
    /// Rows per page, 1 to [`MAX_ACCESS_LIMIT`] (default [`DEFAULT_ACCESS_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// A previous page's `nextBefore`: rows older than it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
}

/// Who asked for a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
pub enum AccessRequester {
    /// The assistant, during a chat turn.
    Turn {
        /// The conversation.
        session_key: String,
        /// The turn.
        turn_id: String,
    },
    /// An operator client.
    Operator {
        /// The operator's device id, when its connection proved a device key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device_id: Option<String>,
        /// The client's display name or id.
        label: String,
    },
}

/// What came of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessOutcome {
    /// The node answered with a result.
    Ok,
    /// It reached the node and failed (the node's error, a timeout, the node leaving).
    Failed,
    /// The host refused it on the device's behalf before it reached the node.
    Refused,
}

/// One command in a device's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessEntry {
    /// When it was asked for, ms since the epoch.
    pub at_ms: i64,
    /// How long until its outcome was known.
    pub duration_ms: u64,
    /// The command's name.
    pub command: String,
    /// Who asked.
    pub requester: AccessRequester,
    /// What came of it.
    pub outcome: AccessOutcome,
    /// The error code, for `failed` and `refused`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// Result of `device.access.list` and `node.access.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessList {
    /// The device the record is of.
    pub node_id: String,
    /// The rows, newest first.
    pub entries: Vec<AccessEntry>,
    /// Pass as `before` for older rows; absent when this page reached the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_have_their_wire_shape() {
        let list = AccessList {
            node_id: "n".into(),
            entries: vec![
                AccessEntry {
                    at_ms: 5,
                    duration_ms: 2,
                    command: "location.get".into(),
                    requester: AccessRequester::Turn {
                        session_key: "main".into(),
                        turn_id: "t1".into(),
                    },
                    outcome: AccessOutcome::Ok,
                    error_code: None,
                },
                AccessEntry {
                    at_ms: 4,
                    duration_ms: 0,
                    command: "system.run".into(),
                    requester: AccessRequester::Operator {
                        device_id: None,
                        label: "perch".into(),
                    },
                    outcome: AccessOutcome::Refused,
                    error_code: Some("COMMAND_NOT_ALLOWED".into()),
                },
            ],
            next_before: Some("17".into()),
        };
        let v = serde_json::to_value(&list).unwrap();
        assert_eq!(
            v,
            json!({"nodeId": "n", "nextBefore": "17", "entries": [
                {"atMs": 5, "durationMs": 2, "command": "location.get", "outcome": "ok",
                 "requester": {"kind": "turn", "sessionKey": "main", "turnId": "t1"}},
                {"atMs": 4, "durationMs": 0, "command": "system.run", "outcome": "refused",
                 "errorCode": "COMMAND_NOT_ALLOWED",
                 "requester": {"kind": "operator", "label": "perch"}}
            ]})
        );
        assert_eq!(serde_json::from_value::<AccessList>(v).unwrap(), list);
    }

    #[test]
    fn params_refuse_unknown_fields() {
        assert!(
            serde_json::from_value::<NodeAccessParams>(json!({"nodeId": "other"})).is_err(),
            "a node cannot name another node"
        );
        let p: DeviceAccessParams =
            serde_json::from_value(json!({"nodeId": "a", "limit": 3, "before": "9"})).unwrap();
        assert_eq!(p.limit, Some(3));
        assert!(serde_json::from_value::<DeviceAccessParams>(json!({"limit": 3})).is_err());
    }
}
