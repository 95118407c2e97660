//! Location changes devices reported on their own, kept only as their sharing precision
//! allowed when they arrived, until the assistant has read them in a turn.
//!
//! **Architecture Invariant:** a row holds coordinates only at `exact` (a CHECK in the schema
//! refuses anything else), and each device keeps at most [`MAX_CHANGES_PER_DEVICE`] rows,
//! pruned on every insert.

use perch_protocol::DeviceId;
use sqlx::{Row, SqlitePool};

use crate::location::LocationPrecision;
use crate::{StoreError, begin_write, mark_rows_seen, parse_device_id};

/// Rows kept per device; the oldest go first.
pub const MAX_CHANGES_PER_DEVICE: i64 = 200;

/// What a change may say, already reduced to the precision in force.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLocationChange {
    /// The device.
    pub device_id: DeviceId,
    /// Its name now.
    pub display_name: String,
    /// When it arrived.
    pub at_ms: i64,
    /// Why it was reported, as the protocol's JSON (`{"kind":"entered","place":"Home"}`).
    pub trigger: String,
    /// `exact` or `city`; nothing is recorded while sharing is off.
    pub precision: LocationPrecision,
    /// The named place the device was at.
    pub place_name: Option<String>,
    /// The nearest city.
    pub city: Option<String>,
    /// The time zone there.
    pub timezone: Option<String>,
    /// Coordinates, only at `exact`.
    pub coordinates: Option<(f64, f64)>,
}

/// A recorded change.
#[derive(Debug, Clone, PartialEq)]
pub struct LocationChange {
    /// Row id: arrival order.
    pub id: i64,
    /// The change as recorded.
    pub change: NewLocationChange,
    /// When the assistant read it, if it has.
    pub seen_at_ms: Option<i64>,
}

/// The location changes table.
pub struct LocationChangeRepo<'a> {
    pub(crate) pool: &'a SqlitePool,
}

/// The columns every read selects (a macro, so queries stay `&'static str`).
macro_rules! columns {
    () => {
        "id, device_id, display_name, at_ms, trigger, precision, place_name, city, \
                       timezone, lat, lon, seen_at_ms"
    };
}

fn change_of(row: &sqlx::sqlite::SqliteRow) -> Result<LocationChange, StoreError> {
    let device: String = row.try_get("device_id")?;
    let precision: String = row.try_get("precision")?;
    let lat: Option<f64> = row.try_get("lat")?;
    let lon: Option<f64> = row.try_get("lon")?;
    Ok(LocationChange {
        id: row.try_get("id")?,
        change: NewLocationChange {
            device_id: parse_device_id("location_changes", &device)?,
            display_name: row.try_get("display_name")?,
            at_ms: row.try_get("at_ms")?,
            trigger: row.try_get("trigger")?,
            precision: LocationPrecision::parse(&precision)
                .ok_or_else(|| StoreError::corrupt("location_changes", "precision", &precision))?,
            place_name: row.try_get("place_name")?,
            city: row.try_get("city")?,
            timezone: row.try_get("timezone")?,
            coordinates: lat.zip(lon),
        },
        seen_at_ms: row.try_get("seen_at_ms")?,
    })
}

impl LocationChangeRepo<'_> {
    /// Records a change and drops the device's oldest rows past [`MAX_CHANGES_PER_DEVICE`], in
    /// one transaction. Coordinates at any precision but `exact` are refused by the schema.
    pub async fn record(&self, c: &NewLocationChange) -> Result<i64, StoreError> {
        let mut tx = begin_write(self.pool).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO location_changes (device_id, display_name, at_ms, trigger, precision, \
             place_name, city, timezone, lat, lon) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(c.device_id.as_str())
        .bind(&c.display_name)
        .bind(c.at_ms)
        .bind(&c.trigger)
        .bind(c.precision.as_str())
        .bind(&c.place_name)
        .bind(&c.city)
        .bind(&c.timezone)
        .bind(c.coordinates.map(|(lat, _)| lat))
        .bind(c.coordinates.map(|(_, lon)| lon))
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM location_changes WHERE device_id = $1 AND id NOT IN \
             (SELECT id FROM location_changes WHERE device_id = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(c.device_id.as_str())
        .bind(MAX_CHANGES_PER_DEVICE)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The newest `limit` changes of every device, newest first.
    pub async fn recent(&self, limit: u32) -> Result<Vec<LocationChange>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM location_changes ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(change_of).collect()
    }

    /// The changes the assistant has not read, oldest first, at most `limit`.
    pub async fn unseen(&self, limit: u32) -> Result<Vec<LocationChange>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM location_changes WHERE seen_at_ms IS NULL ORDER BY id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(self.pool)
        .await?;
        rows.iter().map(change_of).collect()
    }

    /// Marks changes read by the assistant (after the turn that read them ended well).
    pub async fn mark_seen(&self, ids: &[i64], now_ms: i64) -> Result<(), StoreError> {
        mark_rows_seen(
            self.pool,
            "UPDATE location_changes SET seen_at_ms = $1 WHERE id = $2 AND seen_at_ms IS NULL",
            ids,
            now_ms,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::test_support::device;

    fn change(
        seed: u8,
        precision: LocationPrecision,
        coords: Option<(f64, f64)>,
    ) -> NewLocationChange {
        NewLocationChange {
            device_id: device(seed),
            display_name: "Phone".into(),
            at_ms: 5,
            trigger: r#"{"kind":"entered","place":"Home"}"#.into(),
            precision,
            place_name: Some("Home".into()),
            city: None,
            timezone: Some("Europe/Zurich".into()),
            coordinates: coords,
        }
    }

    #[tokio::test]
    async fn coordinates_only_at_exact_and_read_once() {
        let store = Store::open_in_memory().await.unwrap();
        let repo = store.location_changes();
        assert!(
            repo.record(&change(1, LocationPrecision::City, Some((47.0, 8.0))))
                .await
                .is_err(),
            "the schema refuses coordinates at city"
        );
        assert!(
            repo.record(&change(1, LocationPrecision::Off, None))
                .await
                .is_err(),
            "nothing is recorded while off"
        );
        let a = repo
            .record(&change(1, LocationPrecision::City, None))
            .await
            .unwrap();
        repo.record(&change(2, LocationPrecision::Exact, Some((47.0, 8.0))))
            .await
            .unwrap();
        let recent = repo.recent(10).await.unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].change.coordinates, Some((47.0, 8.0)));
        assert_eq!(recent[1].change.coordinates, None);
        repo.mark_seen(&[a], 9).await.unwrap();
        let unseen = repo.unseen(10).await.unwrap();
        assert_eq!(unseen.len(), 1);
        assert_eq!(unseen[0].change.device_id, device(2));
    }

    #[tokio::test]
    async fn each_device_keeps_a_bounded_number_of_rows() {
        let store = Store::open_in_memory().await.unwrap();
        let repo = store.location_changes();
        for _ in 0..(MAX_CHANGES_PER_DEVICE + 3) {
            repo.record(&change(1, LocationPrecision::City, None))
                .await
                .unwrap();
        }
        assert_eq!(
            repo.recent(1_000).await.unwrap().len() as i64,
            MAX_CHANGES_PER_DEVICE
        );
    }
}
