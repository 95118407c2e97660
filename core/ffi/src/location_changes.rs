//! Location changes the phone reports on its own: the app hands the node every position the
//! platform wakes it with (significant-change service, geofence, fused provider), and the node
//! decides with perch-node's [`significant`] whether it is worth a `location.changed` event: the
//! first fix after connecting, a move of the host's distance, a named place entered or left.
//! The host's watch (sharing precision, distance, places) is fetched from the host and kept a
//! few minutes; nothing is sent while the user does not share this device's location.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use perch_node::HostCalls;
use perch_node::location_watch::{Reported, Watch, significant};
use perch_protocol::location::{LocationChangedPayload, LocationTrigger};
use perch_protocol::node_commands as nc;

use crate::error::PerchError;
use crate::providers::{Location, wire_fix};

/// How long a fetched watch is trusted before it is asked for again.
const WATCH_TTL: Duration = Duration::from_secs(300);

/// Why a position was reported.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum LocationChangeReason {
    /// The first position since the node connected.
    First,
    /// A move of at least the host's distance.
    Moved {
        /// Meters from the last reported position.
        distance_meters: f64,
    },
    /// A named place entered.
    Entered {
        /// The place.
        place: String,
    },
    /// A named place left.
    Exited {
        /// The place.
        place: String,
    },
}

impl From<LocationTrigger> for LocationChangeReason {
    fn from(t: LocationTrigger) -> Self {
        match t {
            LocationTrigger::First => Self::First,
            LocationTrigger::Moved { distance_meters } => Self::Moved { distance_meters },
            LocationTrigger::Entered { place } => Self::Entered { place },
            LocationTrigger::Exited { place } => Self::Exited { place },
        }
    }
}

/// What came of a position the app reported.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum LocationReport {
    /// Sent, and the host recorded it.
    Sent {
        /// Why it was worth sending.
        reason: LocationChangeReason,
    },
    /// Not worth a report: a short move, or a fix too coarse to tell.
    NotSignificant,
    /// The user does not share this device's location with the assistant: nothing was sent.
    /// The app may stop asking the platform for updates.
    SharingOff,
}

/// A named place to watch (register it as a geofence to be woken on entry and exit).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct WatchedPlace {
    /// The user's name for it.
    pub name: String,
    /// Latitude of the center.
    pub lat: f64,
    /// Longitude of the center.
    pub lon: f64,
    /// Radius in meters.
    pub radius_meters: u32,
}

/// The node's memory of what it reported, per connection.
#[derive(Debug, Default)]
pub(crate) struct Moves {
    state: Mutex<MoveState>,
}

#[derive(Debug, Default)]
struct MoveState {
    watch: Option<(Watch, Instant)>,
    /// The connection the last report was made on: a new one starts with `First`.
    conn: Option<String>,
    last: Option<Reported>,
}

impl Moves {
    fn lock(&self) -> std::sync::MutexGuard<'_, MoveState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The host's watch, fetched when missing, old, or `refresh`.
    async fn watch(&self, calls: &HostCalls, refresh: bool) -> Result<Watch, PerchError> {
        if !refresh
            && let Some((w, at)) = &self.lock().watch
            && at.elapsed() < WATCH_TTL
        {
            return Ok(w.clone());
        }
        let w: Watch = calls.location_watch().await?.into();
        self.lock().watch = Some((w.clone(), Instant::now()));
        Ok(w)
    }

    /// The places to register as geofences (none while sharing is off).
    pub(crate) async fn places(&self, calls: &HostCalls) -> Result<Vec<WatchedPlace>, PerchError> {
        let w = self.watch(calls, true).await?;
        Ok(w.places
            .into_iter()
            .map(|p| WatchedPlace {
                name: p.name,
                lat: p.lat,
                lon: p.lon,
                radius_meters: p.radius_m,
            })
            .collect())
    }

    /// Decides about one position and sends it when it is worth it.
    pub(crate) async fn report(
        &self,
        calls: &HostCalls,
        conn: Option<String>,
        location: Location,
        precise: bool,
    ) -> Result<LocationReport, PerchError> {
        let Some(fix) = wire_fix(location, nc::DesiredAccuracy::Precise, precise) else {
            return Err(PerchError::InvalidLocation {
                reason: "coordinates or accuracy out of range".into(),
            });
        };
        let new_conn = self.lock().conn != conn;
        let watch = self.watch(calls, new_conn).await?;
        if !watch.sharing {
            return Ok(LocationReport::SharingOff);
        }
        let last = if new_conn {
            None
        } else {
            self.lock().last.clone()
        };
        let Some((trigger, now)) =
            significant(&watch, last.as_ref(), fix.lat, fix.lon, fix.accuracy_meters)
        else {
            return Ok(LocationReport::NotSignificant);
        };
        let result = calls
            .location_changed(LocationChangedPayload {
                fix,
                trigger: trigger.clone(),
            })
            .await?;
        if !result.handled {
            // Sharing was turned off since the watch was fetched, or the fix was refused.
            self.lock().watch = None;
            let reason = result.reason.unwrap_or_default();
            if reason.contains("sharing is off") {
                return Ok(LocationReport::SharingOff);
            }
            return Err(PerchError::HostRefused {
                code: "NOT_RECORDED".into(),
                reason,
            });
        }
        let mut state = self.lock();
        state.conn = conn;
        state.last = Some(now);
        Ok(LocationReport::Sent {
            reason: trigger.into(),
        })
    }
}
