//! Small geometry on the sphere: enough to say whether a fix lies inside a named place and how
//! far the nearest city is, without a geometry dependency.

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
}
