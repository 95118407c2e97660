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
