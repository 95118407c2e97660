//! The platform's capabilities as foreign traits (Swift, Kotlin and Python implement them),
//! and their adapters into perch-node [`CapabilityHandler`]s answering `location.get`,
//! `device.info` and `device.status` with the protocol's JSON shapes.
//!
//! A foreign call runs on a blocking thread under a deadline: a provider that never returns
//! costs the caller a `TIMEOUT` answer, never a stuck node. (The blocking thread stays with
//! the provider until it returns; tokio caps how many there are.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use perch_node::lifecycle::gate;
use perch_node::shapes::reported_position;
use perch_node::{AppPhase, CapabilityHandler, CommandError, parse_params};
use perch_protocol::ErrorCode;
use perch_protocol::node_commands as nc;
use serde_json::Value;

use crate::error::ProviderError;
use crate::node::AppState;

/// How long a provider may take when the caller set no tighter deadline.
pub(crate) const PROVIDER_TIMEOUT: Duration = Duration::from_secs(15);

/// Wanted accuracy of a fix, as the assistant asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LocationAccuracy {
    /// City level is enough (the answer is rounded to about a kilometer anyway).
    Coarse,
    /// The platform's default.
    Balanced,
    /// As precise as the device can.
    Precise,
}

/// What the assistant asked `location.get` for, so the provider can pick its strategy.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct LocationRequest {
    /// Wanted accuracy.
    pub desired_accuracy: LocationAccuracy,
    /// A cached fix at most this old is acceptable, when the caller said.
    pub max_age_ms: Option<u64>,
    /// How long the caller waits for the fix.
    pub timeout_ms: u64,
}

/// Where a fix came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LocationSource {
    /// Satellite positioning.
    Gps,
    /// Wi-Fi positioning.
    Wifi,
    /// Cell towers.
    Cell,
    /// The platform did not say.
    Unknown,
}

/// A position fix from the platform.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Location {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Uncertainty radius, meters.
    pub accuracy_meters: f64,
    /// Altitude, meters, when known.
    pub altitude_meters: Option<f64>,
    /// Speed, meters per second, when known.
    pub speed_mps: Option<f64>,
    /// Heading, degrees, when known.
    pub heading_deg: Option<f64>,
    /// When the fix was taken, ms since the epoch; now when `None`.
    pub timestamp_ms: Option<i64>,
    /// Where it came from.
    pub source: LocationSource,
}

/// How far the user let the app see location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LocationAccess {
    /// Not granted (or location services off).
    Off,
    /// Only while the app is in use.
    WhileUsing,
    /// Also in the background.
    Always,
}

/// The app's location permission, as the platform reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct LocationPermission {
    /// How far access goes.
    pub access: LocationAccess,
    /// Precise location granted (false: approximate only).
    pub precise: bool,
}

/// The platform's location (CoreLocation, the fused location provider): answers `location.get`.
#[uniffi::export(foreign)]
pub trait LocationProvider: Send + Sync {
    /// A fix for `request`, or why there is none.
    fn current_location(&self, request: LocationRequest) -> Result<Location, ProviderError>;
    /// The permission the user granted, checked before each fix and advertised at connect.
    fn permission(&self) -> LocationPermission;
}

/// Static facts about the device, for `device.info`.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DeviceInfo {
    /// The name the user gave the device.
    pub device_name: String,
    /// OS name (`iOS`, `Android`).
    pub system_name: String,
    /// OS version.
    pub system_version: String,
    /// Hardware model (`iPhone17,1`).
    pub model_identifier: Option<String>,
    /// The app's version.
    pub app_version: String,
    /// BCP 47 locale.
    pub locale: Option<String>,
}

/// Battery charge state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
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

/// The battery, when the device has one.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct BatteryInfo {
    /// Charge, 0.0 to 1.0, when known.
    pub level: Option<f64>,
    /// Charge state (charging or not).
    pub state: BatteryState,
    /// Low-power mode, where the platform has one.
    pub low_power_mode: Option<bool>,
}

/// Which kind of network the device is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum NetworkKind {
    /// Wi-Fi.
    Wifi,
    /// Mobile data.
    Cellular,
    /// A cable.
    Ethernet,
    /// No network.
    None,
    /// Something else, or not known.
    Other,
}

/// The network the device is on.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct NetworkInfo {
    /// Which kind.
    pub kind: NetworkKind,
    /// Metered or expensive, when the platform says.
    pub metered: Option<bool>,
}

/// Storage space, in bytes.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct StorageInfo {
    /// Capacity.
    pub total_bytes: u64,
    /// Space still free.
    pub free_bytes: u64,
}

/// Changing facts about the device, for `device.status`.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DeviceStatus {
    /// The battery, when there is one and the OS says.
    pub battery: Option<BatteryInfo>,
    /// The network, when known.
    pub network: Option<NetworkInfo>,
    /// Storage, when known.
    pub storage: Option<StorageInfo>,
    /// Seconds since boot.
    pub uptime_seconds: u64,
}

/// The platform's device facts (UIDevice, BatteryManager...): answers `device.info` and
/// `device.status`.
#[uniffi::export(foreign)]
pub trait DeviceInfoProvider: Send + Sync {
    /// Static facts.
    fn device_info(&self) -> Result<DeviceInfo, ProviderError>;
    /// Changing facts.
    fn device_status(&self) -> Result<DeviceStatus, ProviderError>;
}

/// Runs a foreign call on a blocking thread, bounded by `deadline`.
pub(crate) async fn call_foreign<T, F>(
    what: &str,
    deadline: Duration,
    f: F,
) -> Result<T, CommandError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match tokio::time::timeout(deadline, tokio::task::spawn_blocking(f)).await {
        Err(_) => Err(CommandError::new(
            ErrorCode::Timeout,
            format!(
                "the {what} did not answer within {} ms",
                deadline.as_millis()
            ),
        )),
        Ok(Err(e)) => Err(CommandError::internal(format!("the {what} failed: {e}"))),
        Ok(Ok(v)) => Ok(v),
    }
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, CommandError> {
    serde_json::to_value(v).map_err(|e| CommandError::internal(e.to_string()))
}

/// A provider error as the caller sees it: a permission problem gets the command's
/// `*_PERMISSION_REQUIRED` code, anything else `unavailable`.
pub(crate) fn provider_error(
    e: ProviderError,
    permission_code: &str,
    unavailable: ErrorCode,
) -> CommandError {
    match e {
        ProviderError::PermissionDenied { reason } => {
            CommandError::new(ErrorCode::Other(permission_code.into()), reason)
        }
        ProviderError::Unavailable { reason } => CommandError::new(unavailable, reason),
        ProviderError::Failed { reason } => CommandError::new(unavailable, reason),
    }
}

fn rfc3339_ms(ms: i64) -> String {
    let at = u64::try_from(ms)
        .ok()
        .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
        .unwrap_or_else(SystemTime::now);
    humantime::format_rfc3339_millis(at).to_string()
}

/// `location.get` from a [`LocationProvider`]. With permission only while the app is in use,
/// a read in the background is refused (`NODE_BACKGROUND_UNAVAILABLE`), as both phone
/// platforms would refuse it; with `Always` it is served.
pub(crate) struct LocationHandler {
    pub(crate) provider: Arc<dyn LocationProvider>,
    /// The app's last report of its state, shared with the [`crate::PerchNode`].
    pub(crate) app_state: Arc<Mutex<AppState>>,
}

/// Permission code of `location.get`.
const LOCATION_PERMISSION_REQUIRED: &str = "LOCATION_PERMISSION_REQUIRED";

impl CapabilityHandler for LocationHandler {
    fn commands(&self) -> Vec<String> {
        vec![nc::LOCATION_GET.into()]
    }

    fn caps(&self) -> Vec<String> {
        vec!["location".into()]
    }

    fn permissions(&self) -> BTreeMap<String, bool> {
        // Read once, when `start` registers the handler (on the app's thread).
        let granted = self.provider.permission().access != LocationAccess::Off;
        BTreeMap::from([("location".to_string(), granted)])
    }

    fn invoke(
        &self,
        _command: &str,
        params: Value,
    ) -> BoxFuture<'static, Result<Value, CommandError>> {
        let provider = self.provider.clone();
        let app_state = self.app_state.clone();
        Box::pin(async move {
            let params: nc::LocationGetParams = parse_params(nc::LOCATION_GET, params)?;
            let desired = params.desired_accuracy.unwrap_or_default();
            let deadline = params
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(PROVIDER_TIMEOUT)
                .min(PROVIDER_TIMEOUT);
            let p = provider.clone();
            let permission =
                call_foreign("location provider", deadline, move || p.permission()).await?;
            if permission.access == LocationAccess::Off {
                return Err(CommandError::new(
                    ErrorCode::Other(LOCATION_PERMISSION_REQUIRED.into()),
                    "the user has not allowed this app to use location",
                ));
            }
            let background =
                *app_state.lock().unwrap_or_else(|e| e.into_inner()) == AppState::Background;
            if background {
                // Only `Always` reaches the location in the background.
                gate(
                    AppPhase::Background,
                    nc::LOCATION_GET,
                    permission.access != LocationAccess::Always,
                )?;
            }
            let request = LocationRequest {
                desired_accuracy: match desired {
                    nc::DesiredAccuracy::Coarse => LocationAccuracy::Coarse,
                    nc::DesiredAccuracy::Balanced => LocationAccuracy::Balanced,
                    nc::DesiredAccuracy::Precise => LocationAccuracy::Precise,
                },
                max_age_ms: params.max_age_ms,
                timeout_ms: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
            };
            let fix = call_foreign("location provider", deadline, move || {
                provider.current_location(request)
            })
            .await?
            .map_err(|e| {
                provider_error(
                    e,
                    LOCATION_PERMISSION_REQUIRED,
                    ErrorCode::LocationUnavailable,
                )
            })?;
            let fix = wire_fix(fix, desired, permission.precise).ok_or_else(|| {
                CommandError::new(
                    ErrorCode::LocationUnavailable,
                    "the location provider returned an impossible fix",
                )
            })?;
            to_json(&fix)
        })
    }
}

/// A provider's fix in the protocol's shape, reduced to what was asked for and allowed
/// (approximate permission, coarse accuracy); `None` for impossible coordinates or accuracy.
pub(crate) fn wire_fix(
    fix: Location,
    desired: nc::DesiredAccuracy,
    precise: bool,
) -> Option<nc::LocationFix> {
    if !(fix.lat.is_finite()
        && (-90.0..=90.0).contains(&fix.lat)
        && fix.lon.is_finite()
        && (-180.0..=180.0).contains(&fix.lon)
        && fix.accuracy_meters.is_finite()
        && fix.accuracy_meters >= 0.0)
    {
        return None;
    }
    let pos = reported_position(fix.lat, fix.lon, fix.accuracy_meters, desired, precise);
    let coarse = desired == nc::DesiredAccuracy::Coarse;
    Some(nc::LocationFix {
        lat: pos.lat,
        lon: pos.lon,
        accuracy_meters: pos.accuracy_m,
        altitude_meters: fix.altitude_meters.filter(|_| !coarse),
        speed_mps: fix.speed_mps.filter(|_| !coarse),
        heading_deg: fix.heading_deg.filter(|_| !coarse),
        timestamp: match fix.timestamp_ms {
            Some(ms) => rfc3339_ms(ms),
            None => humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        },
        is_precise: pos.is_precise,
        source: match fix.source {
            LocationSource::Gps => nc::LocationSource::Gps,
            LocationSource::Wifi => nc::LocationSource::Wifi,
            LocationSource::Cell => nc::LocationSource::Cell,
            LocationSource::Unknown => nc::LocationSource::Unknown,
        },
    })
}

/// `device.info` and `device.status` from a [`DeviceInfoProvider`].
pub(crate) struct DeviceHandler(pub(crate) Arc<dyn DeviceInfoProvider>);

impl CapabilityHandler for DeviceHandler {
    fn commands(&self) -> Vec<String> {
        vec![nc::DEVICE_INFO.into(), nc::DEVICE_STATUS.into()]
    }

    fn caps(&self) -> Vec<String> {
        vec!["device".into()]
    }

    fn invoke(
        &self,
        command: &str,
        _params: Value,
    ) -> BoxFuture<'static, Result<Value, CommandError>> {
        let provider = self.0.clone();
        let info = command == nc::DEVICE_INFO;
        Box::pin(async move {
            let unavailable =
                |e: ProviderError| CommandError::new(ErrorCode::Unavailable, e.to_string());
            if info {
                let i = call_foreign("device info provider", PROVIDER_TIMEOUT, move || {
                    provider.device_info()
                })
                .await?
                .map_err(unavailable)?;
                return to_json(&nc::DeviceInfo {
                    device_name: i.device_name,
                    system_name: i.system_name,
                    system_version: i.system_version,
                    kernel_version: None,
                    arch: Some(std::env::consts::ARCH.to_string()),
                    model_identifier: i.model_identifier,
                    app_version: i.app_version,
                    locale: i.locale,
                });
            }
            let s = call_foreign("device info provider", PROVIDER_TIMEOUT, move || {
                provider.device_status()
            })
            .await?
            .map_err(unavailable)?;
            to_json(&nc::DeviceStatus {
                battery: s.battery.map(|b| nc::BatteryStatus {
                    level: b.level.filter(|l| l.is_finite()).map(|l| l.clamp(0.0, 1.0)),
                    state: match b.state {
                        BatteryState::Unknown => nc::BatteryState::Unknown,
                        BatteryState::Unplugged => nc::BatteryState::Unplugged,
                        BatteryState::Charging => nc::BatteryState::Charging,
                        BatteryState::Full => nc::BatteryState::Full,
                    },
                    low_power_mode_enabled: b.low_power_mode,
                }),
                uptime_seconds: s.uptime_seconds,
                network: s.network.map(|n| nc::NetworkStatus {
                    kind: match n.kind {
                        NetworkKind::Wifi => nc::NetworkKind::Wifi,
                        NetworkKind::Cellular => nc::NetworkKind::Cellular,
                        NetworkKind::Ethernet => nc::NetworkKind::Ethernet,
                        NetworkKind::None => nc::NetworkKind::None,
                        NetworkKind::Other => nc::NetworkKind::Other,
                    },
                    metered: n.metered,
                }),
                storage: s.storage.map(|st| nc::StorageStatus {
                    total_bytes: st.total_bytes,
                    free_bytes: st.free_bytes.min(st.total_bytes),
                }),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fixed {
        access: LocationAccess,
        precise: bool,
        lat: f64,
    }

    impl LocationProvider for Fixed {
        fn current_location(&self, _r: LocationRequest) -> Result<Location, ProviderError> {
            Ok(Location {
                lat: self.lat,
                lon: 8.54171,
                accuracy_meters: 10.0,
                altitude_meters: Some(400.0),
                speed_mps: None,
                heading_deg: None,
                timestamp_ms: Some(0),
                source: LocationSource::Gps,
            })
        }
        fn permission(&self) -> LocationPermission {
            LocationPermission {
                access: self.access,
                precise: self.precise,
            }
        }
    }

    fn handler(access: LocationAccess, precise: bool, lat: f64) -> LocationHandler {
        LocationHandler {
            provider: Arc::new(Fixed {
                access,
                precise,
                lat,
            }),
            app_state: Arc::new(Mutex::new(AppState::Foreground)),
        }
    }

    #[tokio::test]
    async fn location_follows_the_permission_and_the_accuracy_asked_for() {
        let h = handler(LocationAccess::WhileUsing, true, 47.37691);
        assert_eq!(h.permissions().get("location"), Some(&true));
        let fix = h.invoke("location.get", Value::Null).await.unwrap();
        assert_eq!(fix["lat"], 47.37691);
        assert_eq!(fix["isPrecise"], true);
        assert_eq!(fix["altitudeMeters"], 400.0);
        assert_eq!(fix["timestamp"], "1970-01-01T00:00:00.000Z");
        // A coarse request: about a kilometer, and no altitude to narrow it down.
        let coarse = h
            .invoke("location.get", json!({"desiredAccuracy": "coarse"}))
            .await
            .unwrap();
        assert_eq!(
            (coarse["lat"].clone(), coarse["accuracyMeters"].clone()),
            (json!(47.38), json!(1000.0))
        );
        assert_eq!(coarse["isPrecise"], false);
        assert!(coarse.get("altitudeMeters").is_none());
        // Approximate location granted: never claimed precise.
        let approx = handler(LocationAccess::Always, false, 47.0);
        let fix = approx.invoke("location.get", Value::Null).await.unwrap();
        assert_eq!(fix["isPrecise"], false);
        // Location off: a typed code, and the provider is not asked for a fix.
        let off = handler(LocationAccess::Off, true, 47.0);
        assert_eq!(off.permissions().get("location"), Some(&false));
        let e = off.invoke("location.get", Value::Null).await.unwrap_err();
        assert_eq!(
            e.code,
            ErrorCode::Other("LOCATION_PERMISSION_REQUIRED".into())
        );
        // An impossible fix from the platform is refused, not passed on.
        let e = handler(LocationAccess::Always, true, 123.0)
            .invoke("location.get", Value::Null)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::LocationUnavailable);
        // Bad params are the caller's mistake.
        let e = h
            .invoke("location.get", json!({"desiredAccuracy": "perfect"}))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn provider_errors_map_to_command_codes() {
        let e = provider_error(
            ProviderError::PermissionDenied {
                reason: "no".into(),
            },
            "LOCATION_PERMISSION_REQUIRED",
            ErrorCode::LocationUnavailable,
        );
        assert_eq!(e.code.as_str(), "LOCATION_PERMISSION_REQUIRED");
        let e = provider_error(
            ProviderError::Failed {
                reason: "boom".into(),
            },
            "X",
            ErrorCode::LocationUnavailable,
        );
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::LocationUnavailable, "boom")
        );
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert!(rfc3339_ms(-5).ends_with('Z'));
    }
}
