//! Which location changes a node reports on its own (`location.changed`): the first position
//! after connecting, a move of at least the host's distance, and entering or leaving one of the
//! user's named places. The host says what to watch (`node.location.watch`); this module is
//! the pure decision, so both phones make it the same way.

use perch_protocol::geo::{NamedPlace, haversine_m, place_containing, valid_coordinates};
use perch_protocol::location::{LocationTrigger, LocationWatch};

/// What the host asked this node to watch, in the shape the decision needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    /// Sharing is on (`city` or `exact`); while off, nothing is reported.
    pub sharing: bool,
    /// A move shorter than this is not reported.
    pub min_distance_m: f64,
    /// The user's named places.
    pub places: Vec<NamedPlace>,
}

impl From<LocationWatch> for Watch {
    fn from(w: LocationWatch) -> Self {
        Watch {
            sharing: w.sharing == "city" || w.sharing == "exact",
            min_distance_m: f64::from(w.min_distance_meters.max(1)),
            places: w
                .places
                .into_iter()
                .map(|p| NamedPlace {
                    name: p.name,
                    lat: p.lat,
                    lon: p.lon,
                    radius_m: p.radius_m,
                })
                .collect(),
        }
    }
}

/// The last position this node reported, and the place it was in then.
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// The named place it was in, if any.
    pub place: Option<String>,
}

/// Whether a fix at `lat`/`lon` (accurate to `accuracy_m`) is worth reporting after `last`,
/// and why. A fix too coarse to tell a move from noise (less accurate than the watch distance)
/// is never reported, nor anything while sharing is off or for impossible coordinates.
pub fn significant(
    watch: &Watch,
    last: Option<&Reported>,
    lat: f64,
    lon: f64,
    accuracy_m: f64,
) -> Option<(LocationTrigger, Reported)> {
    if !watch.sharing
        || !valid_coordinates(lat, lon)
        || !accuracy_m.is_finite()
        || accuracy_m > watch.min_distance_m
    {
        return None;
    }
    let place = place_containing(&watch.places, lat, lon).map(|p| p.name.clone());
    let now = Reported {
        lat,
        lon,
        place: place.clone(),
    };
    let Some(last) = last else {
        return Some((LocationTrigger::First, now));
    };
    if place != last.place {
        // Arriving somewhere says more than having left; leaving for nowhere named is an exit.
        let trigger = match &place {
            Some(p) => LocationTrigger::Entered { place: p.clone() },
            // `place != last.place`, so the old one is named.
            None => LocationTrigger::Exited {
                place: last.place.clone().unwrap_or_default(),
            },
        };
        return Some((trigger, now));
    }
    let moved = haversine_m(last.lat, last.lon, lat, lon);
    (moved >= watch.min_distance_m).then(|| {
        (
            LocationTrigger::Moved {
                distance_meters: moved.round(),
            },
            now,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> Watch {
        Watch {
            sharing: true,
            min_distance_m: 500.0,
            places: vec![NamedPlace {
                name: "Home".into(),
                lat: 47.3769,
                lon: 8.5417,
                radius_m: 150,
            }],
        }
    }

    #[test]
    fn first_moves_and_places_are_reported_and_noise_is_not() {
        let w = watch();
        // First fix, at home.
        let (t, home) = significant(&w, None, 47.3770, 8.5418, 10.0).unwrap();
        assert_eq!(t, LocationTrigger::First);
        assert_eq!(home.place.as_deref(), Some("Home"));
        // A few meters: nothing.
        assert!(significant(&w, Some(&home), 47.3772, 8.5419, 10.0).is_none());
        // Out of the radius but under the distance: leaving home is still news.
        let (t, out) = significant(&w, Some(&home), 47.3790, 8.5417, 10.0).unwrap();
        assert_eq!(
            t,
            LocationTrigger::Exited {
                place: "Home".into()
            }
        );
        // 1 km further: a move, with the distance.
        let (t, far) = significant(&w, Some(&out), 47.3880, 8.5417, 20.0).unwrap();
        match t {
            LocationTrigger::Moved { distance_meters } => {
                assert!(
                    (980.0..1020.0).contains(&distance_meters),
                    "{distance_meters}"
                )
            }
            other => panic!("{other:?}"),
        }
        // Back home: entered.
        let (t, _) = significant(&w, Some(&far), 47.3769, 8.5417, 10.0).unwrap();
        assert_eq!(
            t,
            LocationTrigger::Entered {
                place: "Home".into()
            }
        );
    }

    #[test]
    fn nothing_while_off_or_for_coarse_or_impossible_fixes() {
        let mut w = watch();
        assert!(
            significant(&w, None, 47.0, 8.0, 600.0).is_none(),
            "coarser than 500 m"
        );
        assert!(significant(&w, None, 91.0, 8.0, 5.0).is_none());
        assert!(significant(&w, None, f64::NAN, 8.0, 5.0).is_none());
        assert!(significant(&w, None, 47.0, 8.0, f64::INFINITY).is_none());
        w.sharing = false;
        assert!(significant(&w, None, 47.0, 8.0, 5.0).is_none());
    }

    #[test]
    fn the_hosts_watch_becomes_the_nodes() {
        let w: Watch = LocationWatch {
            sharing: "off".into(),
            min_distance_meters: 0,
            places: vec![],
        }
        .into();
        assert!(!w.sharing);
        assert_eq!(
            w.min_distance_m, 1.0,
            "a zero distance would report every fix"
        );
    }
}
