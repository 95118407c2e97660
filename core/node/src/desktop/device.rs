//! `device.info` and `device.status` for desktops: host and OS facts from sysinfo, battery
//! from starship-battery when the machine has one.

use futures_util::future::BoxFuture;
use perch_protocol::node_commands::{
    BatteryState, BatteryStatus, DEVICE_INFO, DEVICE_STATUS, DeviceInfo, DeviceStatus,
};
use serde_json::Value;
use sysinfo::System;

use crate::capability::{CapabilityHandler, CommandError};

/// Answers `device.info` and `device.status`.
#[derive(Debug, Clone, Default)]
pub struct DeviceHandler;

impl DeviceHandler {
    /// The handler.
    pub fn new() -> Self {
        Self
    }
}

/// Static facts about this machine.
pub fn device_info() -> DeviceInfo {
    DeviceInfo {
        device_name: System::host_name().unwrap_or_else(|_| "unknown".into()),
        system_name: System::name().unwrap_or_else(|_| std::env::consts::OS.into()),
        system_version: System::os_version().unwrap_or_else(|_| "unknown".into()),
        kernel_version: System::kernel_version().ok(),
        arch: Some(System::cpu_arch()).filter(|a| !a.is_empty() && a != "unknown"),
        model_identifier: None,
        app_version: env!("CARGO_PKG_VERSION").into(),
        locale: locale_from_env(),
    }
}

/// Changing facts about this machine; never fails (unknowns are left out).
pub fn device_status() -> DeviceStatus {
    let uptime_seconds = System::uptime().unwrap_or_else(|e| {
        tracing::debug!(error = %e, "cannot read uptime");
        0
    });
    DeviceStatus {
        battery: battery(),
        uptime_seconds,
        network: None,
        storage: None,
    }
}

/// The first battery the OS reports, or `None` (no battery, or it could not be read).
fn battery() -> Option<BatteryStatus> {
    let read = || -> Result<Option<BatteryStatus>, starship_battery::Error> {
        let manager = starship_battery::Manager::new()?;
        let Some(battery) = manager.batteries()?.next() else {
            return Ok(None);
        };
        let battery = battery?;
        let level = f64::from(battery.state_of_charge().value).clamp(0.0, 1.0);
        let state = match battery.state() {
            starship_battery::State::Charging => BatteryState::Charging,
            starship_battery::State::Discharging | starship_battery::State::Empty => {
                BatteryState::Unplugged
            }
            starship_battery::State::Full => BatteryState::Full,
            _ => BatteryState::Unknown,
        };
        Ok(Some(BatteryStatus {
            level: Some(level),
            state,
            low_power_mode_enabled: None,
        }))
    };
    read().unwrap_or_else(|e| {
        tracing::debug!(error = %e, "cannot read the battery; reporting none");
        None
    })
}

/// `LC_ALL` / `LC_MESSAGES` / `LANG` as BCP 47 (`en_US.UTF-8` → `en-US`), when set and real.
fn locale_from_env() -> Option<String> {
    ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty())
        .and_then(|v| posix_locale_to_bcp47(&v))
}

fn posix_locale_to_bcp47(v: &str) -> Option<String> {
    let base = v.split(['.', '@']).next().unwrap_or("");
    if base.is_empty() || base == "C" || base == "POSIX" {
        return None;
    }
    Some(base.replace('_', "-"))
}

impl CapabilityHandler for DeviceHandler {
    fn commands(&self) -> Vec<String> {
        vec![DEVICE_INFO.into(), DEVICE_STATUS.into()]
    }

    fn caps(&self) -> Vec<String> {
        vec!["device".into()]
    }

    fn invoke(
        &self,
        command: &str,
        _params: Value,
    ) -> BoxFuture<'static, Result<Value, CommandError>> {
        let read: fn() -> Result<Value, serde_json::Error> = match command {
            DEVICE_INFO => || serde_json::to_value(device_info()),
            DEVICE_STATUS => || serde_json::to_value(device_status()),
            other => {
                let err = CommandError::invalid_request(format!("unknown command {other}"));
                return Box::pin(async move { Err(err) });
            }
        };
        Box::pin(async move {
            // Both read files under /proc, /sys and /etc: cheap, but still blocking I/O.
            tokio::task::spawn_blocking(read)
                .await
                .map_err(|e| CommandError::internal(format!("device task failed: {e}")))?
                .map_err(|e| CommandError::internal(e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_convert() {
        assert_eq!(
            posix_locale_to_bcp47("en_US.UTF-8").as_deref(),
            Some("en-US")
        );
        assert_eq!(
            posix_locale_to_bcp47("de_AT@euro").as_deref(),
            Some("de-AT")
        );
        assert_eq!(posix_locale_to_bcp47("C.UTF-8"), None);
        assert_eq!(posix_locale_to_bcp47("POSIX"), None);
    }

    #[tokio::test]
    async fn info_and_status_answer() {
        let h = DeviceHandler::new();
        let info = h.invoke(DEVICE_INFO, Value::Null).await.unwrap();
        assert!(!info["deviceName"].as_str().unwrap().is_empty());
        assert!(!info["systemName"].as_str().unwrap().is_empty());
        assert_eq!(info["appVersion"], env!("CARGO_PKG_VERSION"));
        let status = h.invoke(DEVICE_STATUS, Value::Null).await.unwrap();
        assert!(status["uptimeSeconds"].as_u64().unwrap() > 0);
        let parsed: DeviceStatus = serde_json::from_value(status).unwrap();
        if let Some(b) = parsed.battery {
            assert!(b.level.is_none_or(|l| (0.0..=1.0).contains(&l)));
        }
        let e = h.invoke("device.other", Value::Null).await.unwrap_err();
        assert_eq!(e.code, perch_protocol::ErrorCode::InvalidRequest);
    }
}
