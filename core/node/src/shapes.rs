//! The answers every platform's handlers give, in one place: how a position is reported for
//! the accuracy asked for, and which `system.notify` params are accepted. The desktop handlers
//! ([`crate::desktop`]) and the phone adapters in `perch-ffi` both use these, so a phone and a
//! laptop answer the same command the same way.

use perch_protocol::node_commands::{DesiredAccuracy, NotifyParams, SYSTEM_NOTIFY};
use serde_json::Value;

use crate::capability::{CommandError, parse_params};

/// Fixes at most this uncertain count as precise, in meters.
pub const PRECISE_LIMIT_M: f64 = 100.0;
/// A coarse fix is never claimed to be better than this, in meters.
pub const COARSE_ACCURACY_M: f64 = 1000.0;
/// Longest notification title accepted, in bytes; notification servers truncate far earlier.
pub const MAX_TITLE_BYTES: usize = 1024;
/// Longest notification body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A position as reported for a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReportedPosition {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Uncertainty radius, meters.
    pub accuracy_m: f64,
    /// Whether the fix counts as precise (`isPrecise`).
    pub is_precise: bool,
}

/// What to report of a fix (`lat`, `lon`, `accuracy_m`) when `desired` was asked for: a coarse
/// request gets two decimals (about a kilometer: "which city", not "which house") and at best
/// 1 km accuracy; `precise_allowed` is false where the user granted only approximate location.
pub fn reported_position(
    lat: f64,
    lon: f64,
    accuracy_m: f64,
    desired: DesiredAccuracy,
    precise_allowed: bool,
) -> ReportedPosition {
    let coarse = desired == DesiredAccuracy::Coarse;
    let (lat, lon, accuracy_m) = if coarse {
        (round2(lat), round2(lon), accuracy_m.max(COARSE_ACCURACY_M))
    } else {
        (lat, lon, accuracy_m)
    };
    ReportedPosition {
        lat,
        lon,
        accuracy_m,
        is_precise: !coarse && precise_allowed && accuracy_m <= PRECISE_LIMIT_M,
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Validated `system.notify` params: a non-empty title and bounded sizes, or
/// `INVALID_REQUEST`.
pub fn validate_notify(params: Value) -> Result<NotifyParams, CommandError> {
    let p: NotifyParams = parse_params(SYSTEM_NOTIFY, params)?;
    if p.title.trim().is_empty() {
        return Err(CommandError::invalid_request(
            "system.notify needs a non-empty title",
        ));
    }
    if p.title.len() > MAX_TITLE_BYTES {
        return Err(CommandError::invalid_request(format!(
            "title is {} bytes; at most {MAX_TITLE_BYTES} are accepted",
            p.title.len()
        )));
    }
    if p.body.len() > MAX_BODY_BYTES {
        return Err(CommandError::invalid_request(format!(
            "body is {} bytes; at most {MAX_BODY_BYTES} are accepted",
            p.body.len()
        )));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_and_approximate_fixes_are_not_precise() {
        let p = reported_position(48.20849, 16.37208, 12.0, DesiredAccuracy::Precise, true);
        assert_eq!(
            (p.lat, p.lon, p.accuracy_m, p.is_precise),
            (48.20849, 16.37208, 12.0, true)
        );
        let p = reported_position(48.20849, 16.37208, 12.0, DesiredAccuracy::Coarse, true);
        assert_eq!(
            (p.lat, p.lon, p.accuracy_m, p.is_precise),
            (48.21, 16.37, 1000.0, false)
        );
        let p = reported_position(48.2, 16.3, 12.0, DesiredAccuracy::Balanced, false);
        assert!(!p.is_precise);
        let p = reported_position(48.2, 16.3, 500.0, DesiredAccuracy::Precise, true);
        assert!(!p.is_precise);
    }
}
