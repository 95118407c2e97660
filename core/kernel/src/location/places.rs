//! Named places: the user's own labels for spots ("Home", "Office"). A fix inside a place is
//! described by the place's name, which says more to the user than coordinates and less to
//! anyone else.

use super::geo::haversine_m;

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
