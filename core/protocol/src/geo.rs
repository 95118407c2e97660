//! Small geometry on the sphere, shared by the host (prompts) and the node (which location
//! changes are worth reporting): distances, coordinate checks, and the user's named places
//! ("Home", "Office"), whose names say more to the user than coordinates and less to anyone
//! else. No geometry dependency; pure functions only.

/// Mean Earth radius in meters (IUGG), the usual choice for haversine distances.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Whether `lat`/`lon` are finite degrees in range; everything downstream assumes it.
pub fn valid_coordinates(lat: f64, lon: f64) -> bool {
    (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)
}

/// Great-circle distance in meters between two points given in degrees (haversine).
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    // Clamp: rounding can push `a` a hair past 1 for antipodal points.
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// Rounds degrees to 5 decimals (about 1.1 m), the most a prompt ever gets.
pub fn round5(deg: f64) -> f64 {
    (deg * 100_000.0).round() / 100_000.0
}

/// A place the user named; the host loads them from the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedPlace {
    /// The user's name for it.
    pub name: String,
    /// Latitude of the center, degrees.
    pub lat: f64,
    /// Longitude of the center, degrees.
    pub lon: f64,
    /// A fix within this many meters of the center is at the place.
    pub radius_m: u32,
}

/// The place a fix at `lat`/`lon` is in: among all places whose radius contains the point
/// (haversine distance to the center), the one with the smallest radius, since the tighter
/// place is the more specific answer ("Office" inside "Campus"). Ties go to the nearer
/// center, then to the name, so the answer never depends on list order.
pub fn place_containing(places: &[NamedPlace], lat: f64, lon: f64) -> Option<&NamedPlace> {
    places
        .iter()
        .filter(|p| p.lat.is_finite() && p.lon.is_finite())
        .map(|p| (p, haversine_m(lat, lon, p.lat, p.lon)))
        .filter(|(p, d)| *d <= f64::from(p.radius_m))
        .min_by(|(a, da), (b, db)| {
            a.radius_m
                .cmp(&b.radius_m)
                .then(da.total_cmp(db))
                .then_with(|| a.name.cmp(&b.name))
        })
        .map(|(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_distances() {
        // Vienna Stephansplatz to Zürich HB: about 600 km.
        let d = haversine_m(48.2085, 16.3721, 47.3779, 8.5403) / 1000.0;
        assert!((590.0..610.0).contains(&d), "{d}");
        assert_eq!(haversine_m(10.0, 20.0, 10.0, 20.0), 0.0);
        // 0.001° of latitude is about 111 m everywhere.
        let d = haversine_m(48.0, 16.0, 48.001, 16.0);
        assert!((110.0..112.5).contains(&d), "{d}");
        // Antipodes: half the circumference, no NaN.
        let d = haversine_m(0.0, 0.0, 0.0, 180.0);
        assert!(
            (d - std::f64::consts::PI * EARTH_RADIUS_M).abs() < 1.0,
            "{d}"
        );
        // Across the antimeridian the short way round.
        let d = haversine_m(0.0, 179.9, 0.0, -179.9) / 1000.0;
        assert!(d < 23.0, "{d}");
    }

    #[test]
    fn coordinate_ranges() {
        assert!(valid_coordinates(90.0, -180.0));
        assert!(valid_coordinates(-90.0, 180.0));
        assert!(!valid_coordinates(90.01, 0.0));
        assert!(!valid_coordinates(0.0, 180.01));
        assert!(!valid_coordinates(f64::NAN, 0.0));
        assert!(!valid_coordinates(0.0, f64::INFINITY));
    }

    #[test]
    fn rounding() {
        assert_eq!(round5(48.208_493_7), 48.20849);
        assert_eq!(round5(-16.372_085_1), -16.37209);
    }

    fn place(name: &str, lat: f64, lon: f64, radius_m: u32) -> NamedPlace {
        NamedPlace {
            name: name.to_string(),
            lat,
            lon,
            radius_m,
        }
    }

    #[test]
    fn inside_outside_and_edge() {
        let places = [place("Home", 48.2000, 16.3700, 100)];
        assert_eq!(
            place_containing(&places, 48.2000, 16.3700).map(|p| p.name.as_str()),
            Some("Home")
        );
        // About 89 m north: inside.
        assert!(place_containing(&places, 48.2008, 16.3700).is_some());
        // About 111 m north: outside.
        assert!(place_containing(&places, 48.2010, 16.3700).is_none());
        assert!(place_containing(&[], 48.2, 16.37).is_none());
    }

    #[test]
    fn smallest_radius_wins_whatever_the_order() {
        let campus = place("Campus", 48.2000, 16.3700, 2_000);
        let office = place("Office", 48.2003, 16.3702, 150);
        let city = place("Vienna", 48.2085, 16.3721, 20_000);
        for places in [
            vec![campus.clone(), office.clone(), city.clone()],
            vec![city.clone(), office.clone(), campus.clone()],
        ] {
            assert_eq!(
                place_containing(&places, 48.2003, 16.3701).map(|p| p.name.as_str()),
                Some("Office")
            );
            // Outside the office but on campus.
            assert_eq!(
                place_containing(&places, 48.2050, 16.3700).map(|p| p.name.as_str()),
                Some("Campus")
            );
        }
    }

    #[test]
    fn equal_radii_go_to_the_nearer_center() {
        let places = [
            place("A", 48.2000, 16.3700, 500),
            place("B", 48.2010, 16.3700, 500),
        ];
        assert_eq!(
            place_containing(&places, 48.2008, 16.3700).map(|p| p.name.as_str()),
            Some("B")
        );
    }
}
