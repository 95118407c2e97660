//! The location tables: named places, per-device sharing consent, and the audit of location
//! reads made for prompts. The kernel decides what goes into a prompt; this module keeps the
//! rows and refuses places that make no sense.
//!
//! **Architecture Invariant:** the audit never holds coordinates, at any precision. It says
//! which device was read for which session, at what precision, what came of it, and the place
//! or city name the prompt was told, nothing more.

use std::fmt;

use perch_protocol::DeviceId;
use sqlx::SqlitePool;

use crate::{StoreError, parse_device_id};

/// Longest place name, in characters; names go into prompts and tables.
pub const PLACE_NAME_MAX_CHARS: usize = 64;

/// Smallest place radius in meters.
pub const PLACE_RADIUS_MIN_M: u32 = 1;

/// Largest place radius in meters (100 km): past that a "place" is a region.
pub const PLACE_RADIUS_MAX_M: u32 = 100_000;

/// How precisely a device's location may reach a model provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LocationPrecision {
    /// Coordinates and accuracy, besides place, city and time zone.
    Exact,
    /// Named place or nearest city, time zone and local time; never coordinates.
    City,
    /// Nothing; the default, because sharing is opt-in.
    #[default]
    Off,
}

impl LocationPrecision {
    /// The stored text, which is also what the CLI accepts.
    pub fn as_str(self) -> &'static str {
        match self {
            LocationPrecision::Exact => "exact",
            LocationPrecision::City => "city",
            LocationPrecision::Off => "off",
        }
    }

    /// Parses the stored text; `None` for anything unknown.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "exact" => Some(LocationPrecision::Exact),
            "city" => Some(LocationPrecision::City),
            "off" => Some(LocationPrecision::Off),
            _ => None,
        }
    }
}

impl fmt::Display for LocationPrecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What came of one location read made for a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocationOutcome {
    /// A fresh fix went into the prompt.
    Included,
    /// A fix older than the maximum age went into the prompt, labeled stale.
    Stale,
    /// A fix was read but was too old (or untrustworthy) to use; nothing went in.
    Dropped,
    /// Sharing is off for the device; nothing was read.
    Off,
    /// The device gave no usable fix (offline, error, malformed).
    Unavailable,
}

impl LocationOutcome {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            LocationOutcome::Included => "included",
            LocationOutcome::Stale => "stale",
            LocationOutcome::Dropped => "dropped",
            LocationOutcome::Off => "off",
            LocationOutcome::Unavailable => "unavailable",
        }
    }

    /// Parses the stored text; `None` for anything unknown.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "included" => Some(LocationOutcome::Included),
            "stale" => Some(LocationOutcome::Stale),
            "dropped" => Some(LocationOutcome::Dropped),
            "off" => Some(LocationOutcome::Off),
            "unavailable" => Some(LocationOutcome::Unavailable),
            _ => None,
        }
    }
}

impl fmt::Display for LocationOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way a location read went to a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LocationReadPath {
    /// The device-context block of a prompt.
    #[default]
    Context,
    /// A node tool's result (`location.get` or another command that returns a position).
    Tool,
    /// A location change the device reported on its own, read in a turn.
    Change,
}

impl LocationReadPath {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            LocationReadPath::Context => "context",
            LocationReadPath::Tool => "tool",
            LocationReadPath::Change => "change",
        }
    }

    /// Parses the stored text; `None` for anything unknown.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "context" => Some(LocationReadPath::Context),
            "tool" => Some(LocationReadPath::Tool),
            "change" => Some(LocationReadPath::Change),
            _ => None,
        }
    }
}

/// Why a place was refused before it reached the database.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// The name is empty or only whitespace.
    #[error("a place needs a name")]
    EmptyName,
    /// The name is longer than [`PLACE_NAME_MAX_CHARS`].
    #[error("place names are at most {PLACE_NAME_MAX_CHARS} characters, this one has {0}")]
    NameTooLong(usize),
    /// The name holds a control character (a newline, a tab...).
    #[error("place names cannot contain control characters")]
    NameHasControlCharacter,
    /// Latitude outside -90..=90 or not a number.
    #[error("latitude must be between -90 and 90, got {0}")]
    Latitude(f64),
    /// Longitude outside -180..=180 or not a number.
    #[error("longitude must be between -180 and 180, got {0}")]
    Longitude(f64),
    /// Radius outside [`PLACE_RADIUS_MIN_M`]..=[`PLACE_RADIUS_MAX_M`].
    #[error("radius must be between {PLACE_RADIUS_MIN_M} and {PLACE_RADIUS_MAX_M} m, got {0}")]
    Radius(u32),
    /// A place with the same name, ignoring case, exists.
    #[error("a place named {0:?} already exists")]
    Duplicate(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for PlaceError {
    fn from(e: sqlx::Error) -> Self {
        PlaceError::Store(e.into())
    }
}

/// A place the user named, as given to [`LocationRepo::add_place`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewPlace {
    /// The user's name for it; trimmed before it is checked and stored.
    pub name: String,
    /// Latitude of the center, degrees.
    pub lat: f64,
    /// Longitude of the center, degrees.
    pub lon: f64,
    /// A fix within this many meters of the center is "at" the place.
    pub radius_m: u32,
}

impl NewPlace {
    /// Checks the place and returns its trimmed name; every rule the table enforces, with a
    /// message a user can act on.
    pub fn validate(&self) -> Result<String, PlaceError> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(PlaceError::EmptyName);
        }
        let chars = name.chars().count();
        if chars > PLACE_NAME_MAX_CHARS {
            return Err(PlaceError::NameTooLong(chars));
        }
        if name.chars().any(char::is_control) {
            return Err(PlaceError::NameHasControlCharacter);
        }
        if !(-90.0..=90.0).contains(&self.lat) {
            return Err(PlaceError::Latitude(self.lat));
        }
        if !(-180.0..=180.0).contains(&self.lon) {
            return Err(PlaceError::Longitude(self.lon));
        }
        if !(PLACE_RADIUS_MIN_M..=PLACE_RADIUS_MAX_M).contains(&self.radius_m) {
            return Err(PlaceError::Radius(self.radius_m));
        }
        Ok(name.to_string())
    }
}

/// One row of `places`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaceRecord {
    /// The name as the user spelled it.
    pub name: String,
    /// Latitude of the center, degrees.
    pub lat: f64,
    /// Longitude of the center, degrees.
    pub lon: f64,
    /// Radius in meters.
    pub radius_m: u32,
    /// When it was added.
    pub created_at_ms: i64,
}

/// One row of `location_sharing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharingRecord {
    /// The device the setting is for.
    pub device_id: DeviceId,
    /// What may reach a prompt.
    pub precision: LocationPrecision,
    /// When the user last changed it.
    pub updated_at_ms: i64,
}

/// A location read to record in the audit; never carries coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEntry {
    /// When the read was made.
    pub at_ms: i64,
    /// The device that was (or would have been) read.
    pub device_id: DeviceId,
    /// The session whose prompt asked.
    pub session_key: String,
    /// The device's sharing precision at the time.
    pub precision: LocationPrecision,
    /// What came of it.
    pub outcome: LocationOutcome,
    /// The named place the prompt was told, if any.
    pub place_name: Option<String>,
    /// The city the prompt was told (for example `Vienna, AT`), if any.
    pub city: Option<String>,
    /// Which way the read went to the model.
    pub path: LocationReadPath,
}

/// One row of `location_audit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Increasing id; later reads have larger ids.
    pub id: i64,
    /// When the read was made.
    pub at_ms: i64,
    /// The device that was (or would have been) read.
    pub device_id: DeviceId,
    /// The session whose prompt asked.
    pub session_key: String,
    /// The device's sharing precision at the time.
    pub precision: LocationPrecision,
    /// What came of it.
    pub outcome: LocationOutcome,
    /// The named place the prompt was told, if any.
    pub place_name: Option<String>,
    /// The city the prompt was told, if any.
    pub city: Option<String>,
    /// Which way the read went to the model.
    pub path: LocationReadPath,
}

#[derive(sqlx::FromRow)]
struct PlaceRow {
    name: String,
    lat: f64,
    lon: f64,
    radius_m: i64,
    created_at_ms: i64,
}

impl TryFrom<PlaceRow> for PlaceRecord {
    type Error = StoreError;

    fn try_from(row: PlaceRow) -> Result<Self, StoreError> {
        let radius_m = u32::try_from(row.radius_m)
            .map_err(|_| StoreError::corrupt("places", "radius_m", &row.radius_m.to_string()))?;
        Ok(PlaceRecord {
            name: row.name,
            lat: row.lat,
            lon: row.lon,
            radius_m,
            created_at_ms: row.created_at_ms,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SharingRow {
    device_id: String,
    precision: String,
    updated_at_ms: i64,
}

impl TryFrom<SharingRow> for SharingRecord {
    type Error = StoreError;

    fn try_from(row: SharingRow) -> Result<Self, StoreError> {
        Ok(SharingRecord {
            device_id: parse_device_id("location_sharing", &row.device_id)?,
            precision: parse_precision("location_sharing", &row.precision)?,
            updated_at_ms: row.updated_at_ms,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at_ms: i64,
    device_id: String,
    session_key: String,
    precision: String,
    outcome: String,
    place_name: Option<String>,
    city: Option<String>,
    path: String,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        let outcome = LocationOutcome::parse(&row.outcome)
            .ok_or_else(|| StoreError::corrupt("location_audit", "outcome", &row.outcome))?;
        let path = LocationReadPath::parse(&row.path)
            .ok_or_else(|| StoreError::corrupt("location_audit", "path", &row.path))?;
        Ok(AuditRecord {
            id: row.id,
            at_ms: row.at_ms,
            device_id: parse_device_id("location_audit", &row.device_id)?,
            session_key: row.session_key,
            precision: parse_precision("location_audit", &row.precision)?,
            outcome,
            place_name: row.place_name,
            city: row.city,
            path,
        })
    }
}

fn parse_precision(table: &str, value: &str) -> Result<LocationPrecision, StoreError> {
    LocationPrecision::parse(value).ok_or_else(|| StoreError::corrupt(table, "precision", value))
}

/// The lookup key of a place name: trimmed and lower-cased (Unicode-aware).
fn place_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Named places, sharing settings and the location audit.
#[derive(Debug, Clone, Copy)]
pub struct LocationRepo<'a> {
    pool: &'a SqlitePool,
}

impl<'a> LocationRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        LocationRepo { pool }
    }

    /// Adds a named place after checking it; a name already used (ignoring case) is
    /// [`PlaceError::Duplicate`], so adding never silently moves a place.
    pub async fn add_place(
        &self,
        place: &NewPlace,
        now_ms: i64,
    ) -> Result<PlaceRecord, PlaceError> {
        let name = place.validate()?;
        let inserted = sqlx::query(
            "INSERT INTO places (name_key, name, lat, lon, radius_m, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name_key) DO NOTHING",
        )
        .bind(place_key(&name))
        .bind(&name)
        .bind(place.lat)
        .bind(place.lon)
        .bind(i64::from(place.radius_m))
        .bind(now_ms)
        .execute(self.pool)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(PlaceError::Duplicate(name));
        }
        tracing::debug!(place = %name, "named place added");
        Ok(PlaceRecord {
            name,
            lat: place.lat,
            lon: place.lon,
            radius_m: place.radius_m,
            created_at_ms: now_ms,
        })
    }

    /// Every named place, by name.
    pub async fn list_places(&self) -> Result<Vec<PlaceRecord>, StoreError> {
        let rows: Vec<PlaceRow> = sqlx::query_as(
            "SELECT name, lat, lon, radius_m, created_at_ms FROM places ORDER BY name_key",
        )
        .fetch_all(self.pool)
        .await?;
        rows.into_iter().map(PlaceRecord::try_from).collect()
    }

    /// Removes the place with this name (ignoring case); `NotFound` when there is none, so
    /// the CLI can say so.
    pub async fn remove_place(&self, name: &str) -> Result<(), StoreError> {
        let removed = sqlx::query("DELETE FROM places WHERE name_key = $1")
            .bind(place_key(name))
            .execute(self.pool)
            .await?
            .rows_affected();
        if removed == 0 {
            return Err(StoreError::NotFound {
                what: "place",
                id: name.to_string(),
            });
        }
        Ok(())
    }

    /// Sets how precisely the device's location may reach prompts. `Off` is stored too,
    /// so the time the user turned sharing off is kept.
    pub async fn set_sharing(
        &self,
        device_id: &DeviceId,
        precision: LocationPrecision,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO location_sharing (device_id, precision, updated_at_ms) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (device_id) DO UPDATE SET \
             precision = excluded.precision, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(device_id.as_str())
        .bind(precision.as_str())
        .bind(now_ms)
        .execute(self.pool)
        .await?;
        tracing::debug!(device = %device_id.short(), %precision, "location sharing set");
        Ok(())
    }

    /// The device's sharing precision; [`LocationPrecision::Off`] when never set, because
    /// sharing is opt-in.
    pub async fn sharing(&self, device_id: &DeviceId) -> Result<LocationPrecision, StoreError> {
        let value: Option<String> =
            sqlx::query_scalar("SELECT precision FROM location_sharing WHERE device_id = $1")
                .bind(device_id.as_str())
                .fetch_optional(self.pool)
                .await?;
        match value {
            Some(v) => parse_precision("location_sharing", &v),
            None => Ok(LocationPrecision::Off),
        }
    }

    /// Every device with a sharing setting (including ones set back to off), by device id.
    pub async fn list_sharing(&self) -> Result<Vec<SharingRecord>, StoreError> {
        let rows: Vec<SharingRow> = sqlx::query_as(
            "SELECT device_id, precision, updated_at_ms FROM location_sharing ORDER BY device_id",
        )
        .fetch_all(self.pool)
        .await?;
        rows.into_iter().map(SharingRecord::try_from).collect()
    }

    /// Appends one audit row and returns its id.
    pub async fn record_audit(&self, entry: &NewAuditEntry) -> Result<i64, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO location_audit \
             (at_ms, device_id, session_key, precision, outcome, place_name, city, path) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(entry.at_ms)
        .bind(entry.device_id.as_str())
        .bind(&entry.session_key)
        .bind(entry.precision.as_str())
        .bind(entry.outcome.as_str())
        .bind(&entry.place_name)
        .bind(&entry.city)
        .bind(entry.path.as_str())
        .fetch_one(self.pool)
        .await?;
        Ok(id)
    }

    /// The latest `limit` audit rows, newest first.
    pub async fn list_audit(&self, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT id, at_ms, device_id, session_key, precision, outcome, place_name, city, \
             path FROM location_audit ORDER BY at_ms DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool)
        .await?;
        rows.into_iter().map(AuditRecord::try_from).collect()
    }

    /// Deletes audit rows older than `cutoff_ms` and returns how many went, so the host can
    /// bound the table (one row per prompt adds up).
    pub async fn prune_audit(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        let removed = sqlx::query("DELETE FROM location_audit WHERE at_ms < $1")
            .bind(cutoff_ms)
            .execute(self.pool)
            .await?
            .rows_affected();
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::test_support::device;

    fn place(name: &str, lat: f64, lon: f64, radius_m: u32) -> NewPlace {
        NewPlace {
            name: name.to_string(),
            lat,
            lon,
            radius_m,
        }
    }

    fn audit(at_ms: i64, outcome: LocationOutcome) -> NewAuditEntry {
        NewAuditEntry {
            at_ms,
            device_id: device(1),
            session_key: "main".to_string(),
            precision: LocationPrecision::City,
            outcome,
            place_name: None,
            city: Some("Vienna, AT".to_string()),
            path: LocationReadPath::Context,
        }
    }

    #[tokio::test]
    async fn places_add_list_remove() {
        let store = Store::open_in_memory().await.unwrap();
        let repo = store.location();
        let home = repo
            .add_place(&place("  Home ", 48.2085, 16.3721, 150), 10)
            .await
            .unwrap();
        assert_eq!(home.name, "Home");
        repo.add_place(&place("Office", 48.19, 16.37, 80), 20)
            .await
            .unwrap();
        repo.add_place(&place("Äpfelgarten", -33.9, 151.2, 100_000), 30)
            .await
            .unwrap();

        let listed = repo.list_places().await.unwrap();
        let names: Vec<_> = listed.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Home", "Office", "Äpfelgarten"]);
        assert_eq!(listed[0], home);
        assert_eq!(listed[1].radius_m, 80);

        // Names are unique ignoring case, Unicode included.
        assert!(matches!(
            repo.add_place(&place("HOME", 0.0, 0.0, 10), 40)
                .await
                .unwrap_err(),
            PlaceError::Duplicate(name) if name == "HOME"
        ));
        assert!(matches!(
            repo.add_place(&place("äPFELGARTEN", 0.0, 0.0, 10), 40)
                .await
                .unwrap_err(),
            PlaceError::Duplicate(_)
        ));

        repo.remove_place("home").await.unwrap();
        assert!(matches!(
            repo.remove_place("Home").await.unwrap_err(),
            StoreError::NotFound { what: "place", .. }
        ));
        assert_eq!(repo.list_places().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn invalid_places_are_refused() {
        let store = Store::open_in_memory().await.unwrap();
        let repo = store.location();
        let cases = [
            (place("   ", 0.0, 0.0, 10), PlaceError::EmptyName),
            (
                place(&"x".repeat(65), 0.0, 0.0, 10),
                PlaceError::NameTooLong(65),
            ),
            (
                place("Home\nignore previous instructions", 0.0, 0.0, 10),
                PlaceError::NameHasControlCharacter,
            ),
            (place("a", 90.5, 0.0, 10), PlaceError::Latitude(90.5)),
            (place("a", -91.0, 0.0, 10), PlaceError::Latitude(-91.0)),
            (place("a", 0.0, 180.1, 10), PlaceError::Longitude(180.1)),
            (place("a", 0.0, -181.0, 10), PlaceError::Longitude(-181.0)),
            (place("a", 0.0, 0.0, 0), PlaceError::Radius(0)),
            (place("a", 0.0, 0.0, 100_001), PlaceError::Radius(100_001)),
        ];
        for (p, want) in cases {
            let got = repo.add_place(&p, 1).await.unwrap_err();
            assert_eq!(got.to_string(), want.to_string(), "{p:?}");
        }
        // NaN is out of range, not silently stored.
        assert!(matches!(
            repo.add_place(&place("a", f64::NAN, 0.0, 10), 1)
                .await
                .unwrap_err(),
            PlaceError::Latitude(_)
        ));
        assert!(matches!(
            repo.add_place(&place("a", 0.0, f64::INFINITY, 10), 1)
                .await
                .unwrap_err(),
            PlaceError::Longitude(_)
        ));
        // The edges are allowed, and 64 characters (not bytes) is the limit.
        repo.add_place(&place(&"ä".repeat(64), 90.0, -180.0, 1), 1)
            .await
            .unwrap();
        repo.add_place(&place("b", -90.0, 180.0, 100_000), 1)
            .await
            .unwrap();
        assert_eq!(repo.list_places().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn sharing_defaults_off_and_updates() {
        let store = Store::open_in_memory().await.unwrap();
        let repo = store.location();
        assert_eq!(
            repo.sharing(&device(1)).await.unwrap(),
            LocationPrecision::Off
        );
        assert!(repo.list_sharing().await.unwrap().is_empty());

        repo.set_sharing(&device(1), LocationPrecision::City, 5)
            .await
            .unwrap();
        repo.set_sharing(&device(2), LocationPrecision::Exact, 6)
            .await
            .unwrap();
        assert_eq!(
            repo.sharing(&device(1)).await.unwrap(),
            LocationPrecision::City
        );
        repo.set_sharing(&device(1), LocationPrecision::Off, 7)
            .await
            .unwrap();
        assert_eq!(
            repo.sharing(&device(1)).await.unwrap(),
            LocationPrecision::Off
        );

        let mut want = vec![
            SharingRecord {
                device_id: device(1),
                precision: LocationPrecision::Off,
                updated_at_ms: 7,
            },
            SharingRecord {
                device_id: device(2),
                precision: LocationPrecision::Exact,
                updated_at_ms: 6,
            },
        ];
        want.sort_by(|a, b| a.device_id.as_str().cmp(b.device_id.as_str()));
        assert_eq!(repo.list_sharing().await.unwrap(), want);
    }

    #[tokio::test]
    async fn corrupt_rows_are_errors_not_panics() {
        let store = Store::open_in_memory().await.unwrap();
        // A row the store did not write (a hand-edited database) with a malformed device id.
        sqlx::query(
            "INSERT INTO location_sharing (device_id, precision, updated_at_ms) \
             VALUES ('not-a-device', 'city', 1)",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        assert!(matches!(
            store.location().list_sharing().await.unwrap_err(),
            StoreError::Corrupt(_)
        ));
    }

    #[tokio::test]
    async fn audit_lists_newest_first_and_prunes() {
        let store = Store::open_in_memory().await.unwrap();
        let repo = store.location();
        let first = repo
            .record_audit(&audit(100, LocationOutcome::Included))
            .await
            .unwrap();
        let second = repo
            .record_audit(&audit(200, LocationOutcome::Stale))
            .await
            .unwrap();
        let mut off = audit(200, LocationOutcome::Off);
        off.precision = LocationPrecision::Off;
        off.city = None;
        off.session_key = "work".to_string();
        off.path = LocationReadPath::Tool;
        let third = repo.record_audit(&off).await.unwrap();
        assert!(first < second && second < third);

        let rows = repo.list_audit(10).await.unwrap();
        let outcomes: Vec<_> = rows.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [
                LocationOutcome::Off,
                LocationOutcome::Stale,
                LocationOutcome::Included
            ]
        );
        assert_eq!(rows[0].session_key, "work");
        assert_eq!(rows[0].precision, LocationPrecision::Off);
        assert_eq!(rows[0].path, LocationReadPath::Tool);
        assert_eq!(rows[1].path, LocationReadPath::Context);
        assert_eq!(rows[0].city, None);
        assert_eq!(rows[2].city.as_deref(), Some("Vienna, AT"));
        assert_eq!(rows[2].device_id, device(1));
        assert_eq!(repo.list_audit(1).await.unwrap()[0].id, third);

        assert_eq!(repo.prune_audit(150).await.unwrap(), 1);
        assert_eq!(repo.list_audit(10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn audit_table_has_no_coordinate_columns() {
        let store = Store::open_in_memory().await.unwrap();
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info('location_audit')")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        assert!(!columns.is_empty());
        for c in &columns {
            assert!(
                !["lat", "lon", "latitude", "longitude", "accuracy"]
                    .iter()
                    .any(|bad| c.contains(bad)),
                "{c}"
            );
        }
    }

    #[tokio::test]
    async fn audit_rows_refuse_an_unknown_path() {
        let store = Store::open_in_memory().await.unwrap();
        let bad = sqlx::query(
            "INSERT INTO location_audit (at_ms, device_id, session_key, precision, outcome, path) \
             VALUES (1, 'd', 'main', 'city', 'included', 'carrier-pigeon')",
        )
        .execute(&store.pool)
        .await;
        assert!(bad.is_err());
        for p in [
            LocationReadPath::Context,
            LocationReadPath::Tool,
            LocationReadPath::Change,
        ] {
            assert_eq!(LocationReadPath::parse(p.as_str()), Some(p));
        }
        assert_eq!(LocationReadPath::parse("Tool"), None);
    }

    #[test]
    fn enums_round_trip() {
        for p in [
            LocationPrecision::Exact,
            LocationPrecision::City,
            LocationPrecision::Off,
        ] {
            assert_eq!(LocationPrecision::parse(p.as_str()), Some(p));
        }
        for o in [
            LocationOutcome::Included,
            LocationOutcome::Stale,
            LocationOutcome::Dropped,
            LocationOutcome::Off,
            LocationOutcome::Unavailable,
        ] {
            assert_eq!(LocationOutcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(LocationPrecision::parse("EXACT"), None);
        assert_eq!(LocationPrecision::default(), LocationPrecision::Off);
    }
}
