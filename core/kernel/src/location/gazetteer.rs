//! Offline answers to "where is this?" and "what time is it there?": the nearest populated
//! place and the time zone of a coordinate, from data compiled into the binary. Nothing here
//! touches the network, at build time or at run time.
//!
//! The crates behind it are an implementation detail, kept replaceable behind [`Gazetteer`],
//! [`Place`] and [`local_time`]:
//! - nearest place: `reverse_geocoder` (GeoNames `cities1000`, about 145,000 places with at
//!   least 1,000 inhabitants; CC BY 4.0, attribution: GeoNames, geonames.org);
//! - time zone: `tzf-rs` over the bundled `tzf-dist` lite boundaries (timezone-boundary-builder,
//!   OpenStreetMap data, ODbL), which also covers the oceans with `Etc/GMT±N` zones;
//! - local time: `jiff` with its bundled IANA tzdb.
//!
//! Loading the place index costs about 50 MB of memory and 60–90 ms (release build), so it
//! happens on first use, not at startup: a host whose devices all keep sharing off never pays.

use std::sync::OnceLock;
use std::time::Instant;

use reverse_geocoder::ReverseGeocoder;
use tzf_rs::EmbeddedFinder;

use perch_protocol::geo::{haversine_m, valid_coordinates};

/// The nearest populated place to a coordinate.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    /// The place's name, ASCII-transliterated as GeoNames' ASCII column has it (`Zuerich`).
    pub name: String,
    /// First-level administrative division (state, canton, region); may be empty.
    pub admin1: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country_code: String,
    /// Great-circle distance from the coordinate to the place's center.
    pub distance_km: f64,
}

/// Offline nearest-place and time-zone lookups; build one (or use [`Gazetteer::global`]) and
/// share it, since the data loads once per instance.
#[derive(Default)]
pub struct Gazetteer {
    places: OnceLock<ReverseGeocoder>,
    zones: OnceLock<EmbeddedFinder>,
}

impl std::fmt::Debug for Gazetteer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gazetteer")
            .field("places_loaded", &self.places.get().is_some())
            .field("zones_loaded", &self.zones.get().is_some())
            .finish()
    }
}

impl Gazetteer {
    /// An unloaded gazetteer; the data loads on first lookup or [`Gazetteer::warm`].
    pub const fn new() -> Self {
        Gazetteer {
            places: OnceLock::new(),
            zones: OnceLock::new(),
        }
    }

    /// The process-wide instance, so the data is loaded at most once per process.
    pub fn global() -> &'static Gazetteer {
        static GLOBAL: Gazetteer = Gazetteer::new();
        &GLOBAL
    }

    /// Whether both data sets are loaded, so an async caller knows whether a lookup may block.
    pub fn is_warm(&self) -> bool {
        self.places.get().is_some() && self.zones.get().is_some()
    }

    /// Loads both data sets now (blocking, tens of milliseconds); call it on a blocking thread
    /// before the first lookup from async code.
    pub fn warm(&self) {
        self.places();
        self.zones();
    }

    fn places(&self) -> &ReverseGeocoder {
        self.places.get_or_init(|| {
            let started = Instant::now();
            let index = ReverseGeocoder::new();
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "gazetteer loaded"
            );
            index
        })
    }

    fn zones(&self) -> &EmbeddedFinder {
        self.zones.get_or_init(|| {
            let started = Instant::now();
            let finder = EmbeddedFinder::new();
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                data = finder.data_version(),
                "time zone boundaries loaded"
            );
            finder
        })
    }

    /// The nearest populated place, or `None` for coordinates out of range.
    pub fn nearest(&self, lat: f64, lon: f64) -> Option<Place> {
        if !valid_coordinates(lat, lon) {
            return None;
        }
        let found = self.places().search((lat, lon));
        let record = found.record;
        Some(Place {
            name: display_name(&record.name),
            admin1: record.admin1.clone(),
            country_code: record.cc.clone(),
            distance_km: haversine_m(lat, lon, record.lat, record.lon) / 1000.0,
        })
    }

    /// The IANA time zone name at a coordinate (`Europe/Vienna`; `Etc/GMT+3` at sea), or
    /// `None` for coordinates out of range or not covered.
    pub fn timezone_at(&self, lat: f64, lon: f64) -> Option<&str> {
        if !valid_coordinates(lat, lon) {
            return None;
        }
        let name = self.zones().get_tz_name(lon, lat);
        (!name.is_empty()).then_some(name)
    }
}

/// The wall-clock time in `tz` at `now_ms` (ms since the epoch), for example
/// `2026-11-21 14:03 (Saturday, UTC+01:00)`; `None` for an unknown zone or time.
pub fn local_time(tz: &str, now_ms: i64) -> Option<String> {
    let zone = jiff::tz::TimeZone::get(tz).ok()?;
    let at = jiff::Timestamp::from_millisecond(now_ms).ok()?;
    Some(
        at.to_zoned(zone)
            .strftime("%Y-%m-%d %H:%M (%A, UTC%:z)")
            .to_string(),
    )
}

/// A GeoNames name made fit for a sentence: Swiss city districts are listed as
/// `Zuerich (Kreis 1) / Lindenhof`, which should read `Zuerich`. Keeps the part before ` / `
/// and drops a trailing parenthetical, unless nothing would remain.
fn display_name(raw: &str) -> String {
    let head = raw.split(" / ").next().unwrap_or(raw).trim();
    let head = match head.rfind(" (") {
        Some(i) if head.ends_with(')') && i > 0 => head[..i].trim_end(),
        _ => head,
    };
    if head.is_empty() {
        raw.trim().to_string()
    } else {
        head.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(lat: f64, lon: f64) -> Place {
        Gazetteer::global().nearest(lat, lon).unwrap()
    }

    #[test]
    fn known_cities() {
        let vienna = near(48.2085, 16.3721);
        assert_eq!(
            (vienna.name.as_str(), vienna.country_code.as_str()),
            ("Vienna", "AT")
        );
        assert!(vienna.distance_km < 1.0, "{vienna:?}");

        let zurich = near(47.3769, 8.5417);
        assert_eq!(
            (
                zurich.name.as_str(),
                zurich.admin1.as_str(),
                zurich.country_code.as_str()
            ),
            ("Zuerich", "Zurich", "CH")
        );

        let tokyo = near(35.6812, 139.7671);
        assert_eq!(
            (tokyo.name.as_str(), tokyo.country_code.as_str()),
            ("Tokyo", "JP")
        );
    }

    #[test]
    fn a_point_at_sea_gets_the_nearest_coast_and_a_distance() {
        // In the Ligurian Sea, about 15 km off the Côte d'Azur.
        let sea = near(43.55, 7.35);
        assert_eq!(sea.country_code, "FR");
        assert!((10.0..30.0).contains(&sea.distance_km), "{sea:?}");
        // Mid-Atlantic: the Azores, hundreds of km away.
        let atlantic = near(40.0, -40.0);
        assert_eq!(atlantic.country_code, "PT");
        assert!(atlantic.distance_km > 500.0, "{atlantic:?}");
    }

    #[test]
    fn time_zones() {
        let g = Gazetteer::global();
        assert_eq!(g.timezone_at(48.2085, 16.3721), Some("Europe/Vienna"));
        assert_eq!(g.timezone_at(47.3769, 8.5417), Some("Europe/Zurich"));
        assert_eq!(g.timezone_at(35.6812, 139.7671), Some("Asia/Tokyo"));
        assert_eq!(g.timezone_at(40.7831, -73.9712), Some("America/New_York"));
        // The open ocean has nautical zones.
        assert_eq!(g.timezone_at(40.0, -40.0), Some("Etc/GMT+3"));
        assert_eq!(g.timezone_at(91.0, 0.0), None);
        assert_eq!(g.timezone_at(f64::NAN, 0.0), None);
        assert!(g.nearest(0.0, 181.0).is_none());
        assert!(g.is_warm());
    }

    #[test]
    fn local_times() {
        // 2026-11-21T13:03:00Z: Vienna is on CET, Tokyo on JST, New York on EST.
        let at = 1_795_266_180_000;
        assert_eq!(
            local_time("Europe/Vienna", at).as_deref(),
            Some("2026-11-21 14:03 (Saturday, UTC+01:00)")
        );
        assert_eq!(
            local_time("Asia/Tokyo", at).as_deref(),
            Some("2026-11-21 22:03 (Saturday, UTC+09:00)")
        );
        assert_eq!(
            local_time("America/New_York", at).as_deref(),
            Some("2026-11-21 08:03 (Saturday, UTC-05:00)")
        );
        // Summer time: 2026-07-01T12:00:00Z is 14:00 CEST.
        assert_eq!(
            local_time("Europe/Vienna", 1_782_907_200_000).as_deref(),
            Some("2026-07-01 14:00 (Wednesday, UTC+02:00)")
        );
        assert_eq!(local_time("Mars/Olympus_Mons", at), None);
        assert_eq!(local_time("Europe/Vienna", i64::MAX), None);
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name("Zuerich (Kreis 1) / Lindenhof"), "Zuerich");
        assert_eq!(
            display_name("Stadt Winterthur (Kreis 1)"),
            "Stadt Winterthur"
        );
        assert_eq!(
            display_name("Girisu de Cris / Koroesgyires"),
            "Girisu de Cris"
        );
        assert_eq!(display_name("Vienna"), "Vienna");
        assert_eq!(display_name("(odd)"), "(odd)");
    }
}
