//! `location.get` for machines without positioning hardware: answers from a location the
//! user configured (`--location LAT,LON[,ACCURACY_M]`), and says so in `source`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use futures_util::future::BoxFuture;
use perch_protocol::ErrorCode;
use perch_protocol::node_commands::{
    DesiredAccuracy, LOCATION_GET, LocationFix, LocationGetParams, LocationSource,
};
use serde_json::Value;

use crate::capability::{CapabilityHandler, CommandError, parse_params};
use crate::shapes::reported_position;

/// Accuracy assumed when the user gives none, in meters.
pub const DEFAULT_ACCURACY_M: f64 = 100.0;
pub use crate::shapes::{COARSE_ACCURACY_M, PRECISE_LIMIT_M};

/// Why a `--location` value was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LocationParseError {
    /// Not two or three comma-separated parts.
    #[error("expected LAT,LON or LAT,LON,ACCURACY_M (for example 48.2085,16.3721,50), got {0:?}")]
    Shape(String),
    /// A part is not a number.
    #[error("{field} {value:?} is not a number")]
    NotANumber {
        /// `latitude`, `longitude` or `accuracy`.
        field: &'static str,
        /// The text given.
        value: String,
    },
    /// A number is outside its valid range.
    #[error("{field} {value} is out of range: {range}")]
    OutOfRange {
        /// `latitude`, `longitude` or `accuracy`.
        field: &'static str,
        /// The value given.
        value: f64,
        /// The valid range, in words.
        range: &'static str,
    },
}

/// A fixed position the user set for this node, with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfiguredLocation {
    /// Latitude, degrees, -90 to 90.
    pub lat: f64,
    /// Longitude, degrees, -180 to 180.
    pub lon: f64,
    /// Uncertainty radius, meters, above 0.
    pub accuracy_m: f64,
}

impl ConfiguredLocation {
    /// Parses `LAT,LON[,ACCURACY_M]` (spaces allowed around parts; accuracy defaults to 100 m).
    pub fn parse(s: &str) -> Result<Self, LocationParseError> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.is_empty()) {
            return Err(LocationParseError::Shape(s.to_string()));
        }
        let num = |field: &'static str, text: &str| {
            text.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| LocationParseError::NotANumber {
                    field,
                    value: text.to_string(),
                })
        };
        let lat = num("latitude", parts[0])?;
        let lon = num("longitude", parts[1])?;
        let accuracy_m = match parts.get(2) {
            Some(a) => num("accuracy", a)?,
            None => DEFAULT_ACCURACY_M,
        };
        if !(-90.0..=90.0).contains(&lat) {
            return Err(LocationParseError::OutOfRange {
                field: "latitude",
                value: lat,
                range: "-90 to 90 degrees",
            });
        }
        if !(-180.0..=180.0).contains(&lon) {
            return Err(LocationParseError::OutOfRange {
                field: "longitude",
                value: lon,
                range: "-180 to 180 degrees",
            });
        }
        if !(accuracy_m > 0.0 && accuracy_m <= 20_000_000.0) {
            return Err(LocationParseError::OutOfRange {
                field: "accuracy",
                value: accuracy_m,
                range: "above 0 and at most 20000000 meters",
            });
        }
        Ok(Self {
            lat,
            lon,
            accuracy_m,
        })
    }

    /// The fix to report for a request, taken now.
    pub fn fix(&self, desired: DesiredAccuracy) -> LocationFix {
        self.fix_at(desired, SystemTime::now())
    }

    /// The fix to report for a request, stamped with `at`.
    pub fn fix_at(&self, desired: DesiredAccuracy, at: SystemTime) -> LocationFix {
        let p = reported_position(self.lat, self.lon, self.accuracy_m, desired, true);
        LocationFix {
            lat: p.lat,
            lon: p.lon,
            accuracy_meters: p.accuracy_m,
            altitude_meters: None,
            speed_mps: None,
            heading_deg: None,
            timestamp: humantime::format_rfc3339_millis(at).to_string(),
            is_precise: p.is_precise,
            source: LocationSource::Configured,
        }
    }
}

impl FromStr for ConfiguredLocation {
    type Err = LocationParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ConfiguredLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{}", self.lat, self.lon, self.accuracy_m)
    }
}

/// Answers `location.get` from a configured location, or `LOCATION_UNAVAILABLE` without one.
#[derive(Debug, Clone, Default)]
pub struct LocationHandler {
    configured: Option<ConfiguredLocation>,
}

impl LocationHandler {
    /// A handler for this node's configured location, if the user gave one.
    pub fn new(configured: Option<ConfiguredLocation>) -> Self {
        Self { configured }
    }

    /// The answer to one `location.get`.
    pub fn get(&self, params: Value) -> Result<LocationFix, CommandError> {
        let params: LocationGetParams = parse_params(LOCATION_GET, params)?;
        let Some(loc) = self.configured else {
            return Err(CommandError::new(
                ErrorCode::LocationUnavailable,
                "no location source: this node has no GPS and no configured location; \
                 start it with --location LAT,LON",
            ));
        };
        Ok(loc.fix(params.desired_accuracy.unwrap_or_default()))
    }
}

impl CapabilityHandler for LocationHandler {
    fn commands(&self) -> Vec<String> {
        vec![LOCATION_GET.into()]
    }

    fn caps(&self) -> Vec<String> {
        vec!["location".into()]
    }

    fn permissions(&self) -> BTreeMap<String, bool> {
        BTreeMap::from([("location".to_string(), self.configured.is_some())])
    }

    fn invoke(
        &self,
        _command: &str,
        params: Value,
    ) -> BoxFuture<'static, Result<Value, CommandError>> {
        let out = self.get(params).and_then(|fix| {
            serde_json::to_value(fix).map_err(|e| CommandError::internal(e.to_string()))
        });
        Box::pin(async move { out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn parses_good_locations() {
        let l = ConfiguredLocation::parse("48.20849,16.37208").unwrap();
        assert_eq!((l.lat, l.lon, l.accuracy_m), (48.20849, 16.37208, 100.0));
        let l: ConfiguredLocation = " -33.9 , 151.2 , 25 ".parse().unwrap();
        assert_eq!((l.lat, l.lon, l.accuracy_m), (-33.9, 151.2, 25.0));
        assert_eq!(ConfiguredLocation::parse("90,-180").unwrap().lat, 90.0);
    }

    #[test]
    fn rejects_bad_locations_clearly() {
        use LocationParseError::*;
        assert!(matches!(ConfiguredLocation::parse("48.2"), Err(Shape(_))));
        assert!(matches!(
            ConfiguredLocation::parse("1,2,3,4"),
            Err(Shape(_))
        ));
        assert!(matches!(ConfiguredLocation::parse("1,,3"), Err(Shape(_))));
        assert!(matches!(
            ConfiguredLocation::parse("north,2"),
            Err(NotANumber {
                field: "latitude",
                ..
            })
        ));
        assert!(matches!(
            ConfiguredLocation::parse("1,NaN"),
            Err(NotANumber {
                field: "longitude",
                ..
            })
        ));
        assert!(matches!(
            ConfiguredLocation::parse("91,0"),
            Err(OutOfRange {
                field: "latitude",
                ..
            })
        ));
        assert!(matches!(
            ConfiguredLocation::parse("0,180.5"),
            Err(OutOfRange {
                field: "longitude",
                ..
            })
        ));
        assert!(matches!(
            ConfiguredLocation::parse("0,0,0"),
            Err(OutOfRange {
                field: "accuracy",
                ..
            })
        ));
        assert!(matches!(
            ConfiguredLocation::parse("0,0,-5"),
            Err(OutOfRange {
                field: "accuracy",
                ..
            })
        ));
        let msg = ConfiguredLocation::parse("91,0").unwrap_err().to_string();
        assert_eq!(msg, "latitude 91 is out of range: -90 to 90 degrees");
    }

    #[test]
    fn precise_and_coarse_fixes() {
        let l = ConfiguredLocation::parse("48.20849,16.37208,12.5").unwrap();
        let at = UNIX_EPOCH + Duration::from_millis(1_767_443_696_000);
        let fix = l.fix_at(DesiredAccuracy::Precise, at);
        assert_eq!(
            serde_json::to_value(&fix).unwrap(),
            json!({"lat": 48.20849, "lon": 16.37208, "accuracyMeters": 12.5,
                   "timestamp": "2026-01-03T12:34:56.000Z", "isPrecise": true,
                   "source": "configured"})
        );
        let coarse = l.fix_at(DesiredAccuracy::Coarse, at);
        assert_eq!((coarse.lat, coarse.lon), (48.21, 16.37));
        assert_eq!(coarse.accuracy_meters, 1000.0);
        assert!(!coarse.is_precise);
        let vague = ConfiguredLocation::parse("1,2,5000").unwrap();
        assert_eq!(vague.fix(DesiredAccuracy::Coarse).accuracy_meters, 5000.0);
        assert!(!vague.fix(DesiredAccuracy::Balanced).is_precise);
        assert!(
            ConfiguredLocation::parse("1,2,100")
                .unwrap()
                .fix(DesiredAccuracy::Balanced)
                .is_precise
        );
    }

    #[tokio::test]
    async fn handler_answers_validates_and_reports_unavailable() {
        let h = LocationHandler::new(Some(ConfiguredLocation::parse("1.234,5.678").unwrap()));
        let v = h.invoke(LOCATION_GET, Value::Null).await.unwrap();
        assert_eq!(v["source"], "configured");
        assert_eq!(v["lat"], 1.234);
        let v = h
            .invoke(
                LOCATION_GET,
                json!({"desiredAccuracy": "coarse", "timeoutMs": 5}),
            )
            .await
            .unwrap();
        assert_eq!(v["lat"], 1.23);
        assert_eq!(v["isPrecise"], false);
        for bad in [
            json!({"desiredAccuracy": "exact"}),
            json!({"timeoutMs": "soon"}),
            json!([1]),
        ] {
            let e = h.invoke(LOCATION_GET, bad).await.unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest);
        }
        let none = LocationHandler::new(None);
        let e = none.invoke(LOCATION_GET, json!({})).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::LocationUnavailable);
        assert!(e.message.contains("--location LAT,LON"), "{}", e.message);
        assert_eq!(none.permissions().get("location"), Some(&false));
    }
}
