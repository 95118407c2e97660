//! Node commands: names and the params and results the built-in capabilities use.

use serde::{Deserialize, Serialize};

/// Current position of the device.
pub const LOCATION_GET: &str = "location.get";
/// Show a notification on the device.
pub const SYSTEM_NOTIFY: &str = "system.notify";
/// Static facts about the device.
pub const DEVICE_INFO: &str = "device.info";
/// Changing facts about the device (battery, uptime).
pub const DEVICE_STATUS: &str = "device.status";

/// Commands a host allows by default: they read coarse state or show a notification, and
/// none can change the device or exfiltrate files.
pub const DEFAULT_ALLOWED_COMMANDS: &[&str] =
    &[LOCATION_GET, SYSTEM_NOTIFY, DEVICE_INFO, DEVICE_STATUS];

/// How precise a fix the caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DesiredAccuracy {
    /// City-level is enough.
    Coarse,
    /// The platform's default.
    #[default]
    Balanced,
    /// As precise as the device can.
    Precise,
}

/// Params of `location.get`; all optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LocationGetParams {
    /// How long to wait for a fix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// A cached fix at most this old is acceptable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_ms: Option<u64>,
    /// Wanted accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_accuracy: Option<DesiredAccuracy>,
}

/// Where a fix came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocationSource {
    /// Satellite positioning.
    Gps,
    /// Wi-Fi positioning.
    Wifi,
    /// Cell towers.
    Cell,
    /// Set by the user in the node's configuration (Perch addition for desktops).
    Configured,
    /// The platform did not say.
    Unknown,
}

/// Result of `location.get`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocationFix {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Horizontal accuracy radius, meters.
    pub accuracy_meters: f64,
    /// Altitude, meters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altitude_meters: Option<f64>,
    /// Speed, m/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mps: Option<f64>,
    /// Heading, degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading_deg: Option<f64>,
    /// When the fix was taken, RFC 3339.
    pub timestamp: String,
    /// Whether this is a precise fix.
    pub is_precise: bool,
    /// Where it came from.
    pub source: LocationSource,
}

/// Params of `system.notify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyParams {
    /// Title line.
    pub title: String,
    /// Body text.
    pub body: String,
    /// Play a sound, where the platform can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sound: Option<String>,
    /// `passive`, `active` or `timeSensitive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
}

/// Result of `system.notify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyResult {
    /// The notification was handed to the platform's notification service.
    pub delivered: bool,
    /// The platform's id for it, when it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_id: Option<String>,
}

/// Result of `device.info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceInfo {
    /// Host name.
    pub device_name: String,
    /// Operating system, for example `Debian GNU/Linux`.
    pub system_name: String,
    /// Operating system version.
    pub system_version: String,
    /// Kernel version, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_version: Option<String>,
    /// CPU architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Hardware model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_identifier: Option<String>,
    /// Version of the Perch node software.
    pub app_version: String,
    /// Locale, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// Battery charge state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatteryState {
    /// Not known.
    Unknown,
    /// Running on battery.
    Unplugged,
    /// Charging.
    Charging,
    /// Full and plugged in.
    Full,
}

/// Battery facts, when the OS reports a battery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatteryStatus {
    /// Charge, 0.0 to 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<f64>,
    /// Charge state.
    pub state: BatteryState,
    /// Low-power mode, where the platform has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_power_mode_enabled: Option<bool>,
}

/// Result of `device.status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceStatus {
    /// Battery, absent when the device has none or the OS does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery: Option<BatteryStatus>,
    /// Seconds since boot.
    pub uptime_seconds: u64,
    /// The network the device is on, where the platform says (phones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStatus>,
    /// Storage space, where the platform says (phones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageStatus>,
}

/// Which kind of network a device is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkKind {
    /// Wi-Fi.
    Wifi,
    /// A mobile data network.
    Cellular,
    /// A cable.
    Ethernet,
    /// No network.
    None,
    /// Something else, or not known.
    Other,
}

/// The network part of `device.status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkStatus {
    /// Which kind.
    pub kind: NetworkKind,
    /// Whether the platform counts it as metered or expensive, when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metered: Option<bool>,
}

/// The storage part of `device.status`, in bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    /// Capacity of the device's storage.
    pub total_bytes: u64,
    /// Space still free.
    pub free_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn location_fix_matches_reference_keys() {
        let v = json!({"lat": 48.20849, "lon": 16.37208, "accuracyMeters": 12.5,
                       "timestamp": "2026-01-03T12:34:56.000Z", "isPrecise": true, "source": "gps"});
        let fix: LocationFix = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(fix.source, LocationSource::Gps);
        assert_eq!(serde_json::to_value(&fix).unwrap(), v);
    }

    #[test]
    fn location_params_are_optional() {
        let p: LocationGetParams = serde_json::from_value(json!({})).unwrap();
        assert_eq!(p, LocationGetParams::default());
        let p: LocationGetParams =
            serde_json::from_value(json!({"desiredAccuracy": "precise", "maxAgeMs": 5})).unwrap();
        assert_eq!(p.desired_accuracy, Some(DesiredAccuracy::Precise));
        assert!(
            serde_json::from_value::<LocationGetParams>(json!({"desiredAccuracy": "x"})).is_err()
        );
    }
}
