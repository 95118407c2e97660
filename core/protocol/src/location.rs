//! Location sharing on the wire: named places, per-device sharing precision, and the audit of
//! every location read made for a prompt.

use serde::{Deserialize, Serialize};

/// `places.list` (operator).
pub const PLACES_LIST: &str = "places.list";
/// `places.add` (operator).
pub const PLACES_ADD: &str = "places.add";
/// `places.remove` (operator).
pub const PLACES_REMOVE: &str = "places.remove";
/// `location.share`: set a device's sharing precision (operator).
pub const LOCATION_SHARE: &str = "location.share";
/// `location.status`: sharing precision of every node (operator).
pub const LOCATION_STATUS: &str = "location.status";
/// `location.audit`: the latest location reads made for prompts (operator).
pub const LOCATION_AUDIT: &str = "location.audit";

/// A named place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaceInfo {
    /// The user's name for it.
    pub name: String,
    /// Latitude of the center.
    pub lat: f64,
    /// Longitude of the center.
    pub lon: f64,
    /// A fix within this radius is "at" the place.
    pub radius_m: u32,
    /// When it was added.
    #[serde(default)]
    pub created_at_ms: i64,
}

/// Params of `places.add`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddPlaceParams {
    /// Name, 1 to 64 characters, unique ignoring case.
    pub name: String,
    /// Latitude, -90 to 90.
    pub lat: f64,
    /// Longitude, -180 to 180.
    pub lon: f64,
    /// Radius in meters, 1 to 100000.
    pub radius_m: u32,
}

/// Params of `places.remove`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemovePlaceParams {
    /// The place's name (any case).
    pub name: String,
}

/// Params of `location.share`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShareParams {
    /// Node id, id prefix, or display name.
    pub node_id: String,
    /// `exact`, `city` or `off`.
    pub precision: String,
}

/// A node's sharing setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharingInfo {
    /// The node.
    pub node_id: String,
    /// Its name.
    pub display_name: String,
    /// `exact`, `city` or `off` (off when never set).
    pub precision: String,
    /// When the user last changed it, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at_ms: Option<i64>,
}

/// Params of `location.audit`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditParams {
    /// At most this many rows, newest first (default 50, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// One audited location read; never carries coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditInfo {
    /// When.
    pub at_ms: i64,
    /// The device read.
    pub device_id: String,
    /// The session whose prompt asked.
    pub session_key: String,
    /// The precision in force.
    pub precision: String,
    /// `included`, `stale`, `dropped`, `off` or `unavailable`.
    pub outcome: String,
    /// The named place the prompt was told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_name: Option<String>,
    /// The city the prompt was told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Which way the location went to the model: `context` (the device-context block) or
    /// `tool` (a node tool's result); hosts before this field only had `context`.
    #[serde(default = "context_path")]
    pub path: String,
}

fn context_path() -> String {
    "context".to_string()
}

/// Node event: the device moved significantly or entered or left a named place
/// (payload: [`LocationChangedPayload`]). The host records it reduced to the device's sharing
/// precision, and refuses it (`handled: false`) while sharing is off.
pub const LOCATION_CHANGED: &str = "location.changed";
/// `node.location.watch` (node): what the device should report: its sharing precision, the
/// distance that counts as a move, and the named places to watch (none while sharing is off).
pub const NODE_LOCATION_WATCH: &str = "node.location.watch";
/// `location.changes` (operator, `operator.read`): the changes recorded, newest first.
pub const LOCATION_CHANGES: &str = "location.changes";

/// A move shorter than this is not reported, by default.
pub const DEFAULT_MIN_DISTANCE_M: u32 = 500;

/// Why a location change was reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum LocationTrigger {
    /// The first position reported since the device connected.
    First,
    /// The device moved at least the watch's distance since its last report.
    Moved {
        /// Meters from the last reported position.
        distance_meters: f64,
    },
    /// The device entered a named place.
    Entered {
        /// The place's name.
        place: String,
    },
    /// The device left a named place.
    Exited {
        /// The place's name.
        place: String,
    },
}

/// Payload of the `location.changed` node event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocationChangedPayload {
    /// Where the device is now (the `location.get` shape).
    pub fix: crate::node_commands::LocationFix,
    /// Why it is reported.
    pub trigger: LocationTrigger,
}

/// Result of `node.location.watch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationWatch {
    /// `exact`, `city` or `off`: while `off`, report nothing.
    pub sharing: String,
    /// A move shorter than this is not worth a report.
    pub min_distance_meters: u32,
    /// Named places whose entry and exit are worth a report (empty while sharing is off).
    pub places: Vec<PlaceInfo>,
}

/// Params of `location.changes`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocationChangesParams {
    /// At most this many rows, newest first (default 50, at most 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// One recorded change, as the sharing precision allowed it to be kept: never coordinates
/// unless the device shared `exact` when it arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationChangeInfo {
    /// The device.
    pub device_id: String,
    /// Its name when the change arrived.
    pub display_name: String,
    /// When the host received it.
    pub at_ms: i64,
    /// Why it was reported.
    pub trigger: LocationTrigger,
    /// The precision in force when it arrived.
    pub precision: String,
    /// The named place the device was at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place_name: Option<String>,
    /// The nearest city, when not at a named place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// The time zone there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Latitude, only at `exact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    /// Longitude, only at `exact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    /// Whether the assistant has read it in a turn yet.
    pub seen: bool,
}

/// Result of `location.changes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationChangesList {
    /// Newest first.
    pub changes: Vec<LocationChangeInfo>,
}

#[cfg(test)]
mod change_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn triggers_are_tagged_and_payloads_closed() {
        let t = LocationTrigger::Moved {
            distance_meters: 812.5,
        };
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"kind": "moved", "distanceMeters": 812.5})
        );
        let e: LocationTrigger =
            serde_json::from_value(json!({"kind": "entered", "place": "Home"})).unwrap();
        assert_eq!(
            e,
            LocationTrigger::Entered {
                place: "Home".into()
            }
        );
        assert!(serde_json::from_value::<LocationTrigger>(json!({"kind": "teleported"})).is_err());
        let fix = json!({"lat": 1.0, "lon": 2.0, "accuracyMeters": 5.0,
                         "timestamp": "2026-12-06T05:00:00Z", "isPrecise": true, "source": "gps"});
        let ok = json!({"fix": fix, "trigger": {"kind": "first"}});
        assert!(serde_json::from_value::<LocationChangedPayload>(ok).is_ok());
        let extra = json!({"fix": fix, "trigger": {"kind": "first"}, "note": "x"});
        assert!(serde_json::from_value::<LocationChangedPayload>(extra).is_err());
    }
}
