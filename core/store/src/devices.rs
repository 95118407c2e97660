//! The `devices` table: every device that was approved at least once.

use std::fmt;

use perch_protocol::DeviceId;
use perch_protocol::handshake::Role;
use sqlx::{SqliteConnection, SqlitePool};

use crate::{StoreError, begin_write, parse_device_id, parse_role};

/// Columns of `devices` in the order [`DeviceRow`] expects.
macro_rules! device_columns {
    () => {
        "device_id, public_key, display_name, platform, device_family, role, status, \
         paired_at_ms, revoked_at_ms, last_seen_ms, commands"
    };
}

/// Whether a device may currently connect with its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceStatus {
    /// Approved and not revoked.
    Paired,
    /// Revoked by an operator; its tokens are gone until a new pairing is approved.
    Revoked,
}

impl DeviceStatus {
    /// The text stored in `devices.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Paired => "paired",
            DeviceStatus::Revoked => "revoked",
        }
    }

    /// Parses the stored text; `None` for anything unknown.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "paired" => Some(DeviceStatus::Paired),
            "revoked" => Some(DeviceStatus::Revoked),
            _ => None,
        }
    }
}

impl fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of `devices`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Hex SHA-256 of the device's public key.
    pub device_id: DeviceId,
    /// The device's Ed25519 public key as it arrived on the wire (base64url).
    pub public_key: String,
    /// Human name shown in device lists.
    pub display_name: String,
    /// Operating system, for example `linux` or `ios`.
    pub platform: String,
    /// Hardware family, for example `iPhone`, when the device said.
    pub device_family: Option<String>,
    /// The role of the most recently approved pairing; see `TokenRepo::roles` for all roles
    /// the device currently holds a token for.
    pub role: Role,
    /// Paired or revoked.
    pub status: DeviceStatus,
    /// When the device last went from unpaired (or revoked) to paired.
    pub paired_at_ms: i64,
    /// When it was revoked, if it currently is.
    pub revoked_at_ms: Option<i64>,
    /// When it last connected, if ever.
    pub last_seen_ms: Option<i64>,
    /// The node commands it advertised on its last connect.
    pub commands: Vec<String>,
}

/// The raw row, before enum and JSON parsing.
#[derive(sqlx::FromRow)]
pub(crate) struct DeviceRow {
    device_id: String,
    public_key: String,
    display_name: String,
    platform: String,
    device_family: Option<String>,
    role: String,
    status: String,
    paired_at_ms: i64,
    revoked_at_ms: Option<i64>,
    last_seen_ms: Option<i64>,
    commands: String,
}

impl TryFrom<DeviceRow> for DeviceRecord {
    type Error = StoreError;

    fn try_from(row: DeviceRow) -> Result<Self, StoreError> {
        let status = DeviceStatus::parse(&row.status)
            .ok_or_else(|| StoreError::corrupt("devices", "status", &row.status))?;
        let commands: Vec<String> = serde_json::from_str(&row.commands)
            .map_err(|_| StoreError::corrupt("devices", "commands", &row.commands))?;
        Ok(DeviceRecord {
            device_id: parse_device_id("devices", &row.device_id)?,
            public_key: row.public_key,
            display_name: row.display_name,
            platform: row.platform,
            device_family: row.device_family,
            role: parse_role("devices", &row.role)?,
            status,
            paired_at_ms: row.paired_at_ms,
            revoked_at_ms: row.revoked_at_ms,
            last_seen_ms: row.last_seen_ms,
            commands,
        })
    }
}

/// Reads one device inside any executor (pool or open transaction).
pub(crate) async fn fetch_device<'e, E>(
    executor: E,
    device_id: &str,
) -> Result<Option<DeviceRecord>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let row: Option<DeviceRow> = sqlx::query_as(concat!(
        "SELECT ",
        device_columns!(),
        " FROM devices WHERE device_id = $1"
    ))
    .bind(device_id)
    .fetch_optional(executor)
    .await?;
    row.map(DeviceRecord::try_from).transpose()
}

/// The facts about a device that pairing records, whichever path approved it (an operator
/// approving a request, or a setup code's bootstrap token).
pub(crate) struct PairingSubject<'a> {
    pub device_id: &'a DeviceId,
    pub public_key: &'a str,
    pub display_name: &'a str,
    pub platform: &'a str,
    pub device_family: Option<&'a str>,
    pub role: Role,
}

/// Inside the caller's transaction: marks the device paired in `role` (creating its row, or
/// re-pairing it if it was revoked), replaces its token hash for that role, and returns the
/// row. One place for this SQL, so every pairing path writes the same state.
pub(crate) async fn pair_device(
    conn: &mut SqliteConnection,
    who: &PairingSubject<'_>,
    token_hash: &str,
    now_ms: i64,
) -> Result<DeviceRecord, StoreError> {
    // paired_at_ms moves only when the device goes from revoked to paired; pairing a second
    // role for a paired device keeps it. last_seen_ms and commands are kept.
    sqlx::query(
        "INSERT INTO devices (device_id, public_key, display_name, platform, device_family, \
         role, status, paired_at_ms, revoked_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, 'paired', $7, NULL) \
         ON CONFLICT (device_id) DO UPDATE SET \
         public_key = excluded.public_key, \
         display_name = excluded.display_name, \
         platform = excluded.platform, \
         device_family = excluded.device_family, \
         role = excluded.role, \
         paired_at_ms = CASE WHEN devices.status = 'paired' THEN devices.paired_at_ms \
                        ELSE excluded.paired_at_ms END, \
         status = 'paired', \
         revoked_at_ms = NULL",
    )
    .bind(who.device_id.as_str())
    .bind(who.public_key)
    .bind(who.display_name)
    .bind(who.platform)
    .bind(who.device_family)
    .bind(who.role.as_str())
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;

    crate::tokens::replace_token(
        &mut *conn,
        who.device_id.as_str(),
        who.role,
        token_hash,
        now_ms,
    )
    .await?;

    fetch_device(&mut *conn, who.device_id.as_str())
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "device",
            id: who.device_id.to_string(),
        })
}

/// Reads and updates the `devices` table.
#[derive(Debug, Clone, Copy)]
pub struct DeviceRepo<'a> {
    pool: &'a SqlitePool,
}

impl<'a> DeviceRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        DeviceRepo { pool }
    }

    /// The device with this id, paired or revoked; `None` if it never paired.
    pub async fn get(&self, device_id: &DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        fetch_device(self.pool, device_id.as_str()).await
    }

    /// Every known device, oldest pairing first.
    pub async fn list(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        let rows: Vec<DeviceRow> = sqlx::query_as(concat!(
            "SELECT ",
            device_columns!(),
            " FROM devices ORDER BY paired_at_ms, device_id"
        ))
        .fetch_all(self.pool)
        .await?;
        rows.into_iter().map(DeviceRecord::try_from).collect()
    }

    /// Revokes the device and deletes all its tokens in one transaction, so it can no longer
    /// reconnect. Revoking an already revoked device keeps the first revocation time.
    pub async fn revoke(
        &self,
        device_id: &DeviceId,
        now_ms: i64,
    ) -> Result<DeviceRecord, StoreError> {
        let mut tx = begin_write(self.pool).await?;
        let updated = sqlx::query(
            "UPDATE devices SET status = 'revoked', revoked_at_ms = COALESCE(revoked_at_ms, $2) \
             WHERE device_id = $1",
        )
        .bind(device_id.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound {
                what: "device",
                id: device_id.to_string(),
            });
        }
        sqlx::query("DELETE FROM device_tokens WHERE device_id = $1")
            .bind(device_id.as_str())
            .execute(&mut *tx)
            .await?;
        let record = fetch_device(&mut *tx, device_id.as_str())
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "device",
                id: device_id.to_string(),
            })?;
        tx.commit().await?;
        tracing::info!(device = device_id.short(), "device revoked");
        Ok(record)
    }

    /// Forgets the device entirely in one transaction: its row, its tokens (by cascade), any
    /// pending request it had and its access record. It may then ask to pair again like a new
    /// device. Returns the record as it was.
    pub async fn remove(
        &self,
        device_id: &DeviceId,
        now_ms: i64,
    ) -> Result<DeviceRecord, StoreError> {
        let mut tx = begin_write(self.pool).await?;
        let record = fetch_device(&mut *tx, device_id.as_str())
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "device",
                id: device_id.to_string(),
            })?;
        sqlx::query("DELETE FROM device_tokens WHERE device_id = $1")
            .bind(device_id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE pairing_requests SET status = 'expired', decided_at_ms = $2 \
             WHERE device_id = $1 AND status = 'pending'",
        )
        .bind(device_id.as_str())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        // Forgetting a device forgets what was read from it.
        sqlx::query("DELETE FROM node_access WHERE device_id = $1")
            .bind(device_id.as_str())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM devices WHERE device_id = $1")
            .bind(device_id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(device = device_id.short(), "device removed");
        Ok(record)
    }

    /// Records that the device just connected and, when given, the commands it advertised.
    pub async fn touch_seen(
        &self,
        device_id: &DeviceId,
        now_ms: i64,
        commands: Option<&[String]>,
    ) -> Result<(), StoreError> {
        let commands_json = commands
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("cannot encode commands: {e}")))?;
        let updated = sqlx::query(
            "UPDATE devices SET last_seen_ms = $2, commands = COALESCE($3, commands) \
             WHERE device_id = $1",
        )
        .bind(device_id.as_str())
        .bind(now_ms)
        .bind(commands_json)
        .execute(self.pool)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::NotFound {
                what: "device",
                id: device_id.to_string(),
            });
        }
        Ok(())
    }

    /// How many devices are currently paired (not revoked).
    pub async fn count_paired(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM devices WHERE status = 'paired'")
            .fetch_one(self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::test_support::{device, request};

    async fn paired(store: &Store, seed: u8, role: Role, now: i64) -> DeviceRecord {
        let (req, _) = store
            .pairing()
            .upsert_pending(request(seed, role), &format!("r-{seed}-{now}"), now)
            .await
            .unwrap();
        store
            .pairing()
            .approve(&req.request_id, &format!("hash-{seed}-{now}"), now)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn get_list_and_count() {
        let store = Store::open_in_memory().await.unwrap();
        assert_eq!(store.devices().get(&device(1)).await.unwrap(), None);
        paired(&store, 2, Role::Node, 200).await;
        paired(&store, 1, Role::Operator, 100).await;

        let list = store.devices().list().await.unwrap();
        let ids: Vec<_> = list.iter().map(|d| d.device_id.clone()).collect();
        assert_eq!(ids, vec![device(1), device(2)]);
        assert_eq!(list[0].role, Role::Operator);
        assert_eq!(list[0].status, DeviceStatus::Paired);
        assert!(list[0].commands.is_empty());
        assert_eq!(store.devices().count_paired().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn revoke_removes_tokens_and_repairing_restores() {
        let store = Store::open_in_memory().await.unwrap();
        let dev = device(1);
        paired(&store, 1, Role::Node, 100).await;
        assert!(store.tokens().has_token(&dev, Role::Node).await.unwrap());

        let revoked = store.devices().revoke(&dev, 150).await.unwrap();
        assert_eq!(revoked.status, DeviceStatus::Revoked);
        assert_eq!(revoked.revoked_at_ms, Some(150));
        assert!(!store.tokens().has_token(&dev, Role::Node).await.unwrap());
        assert!(
            !store
                .tokens()
                .matches(&dev, Role::Node, "hash-1-100")
                .await
                .unwrap()
        );
        assert_eq!(store.devices().count_paired().await.unwrap(), 0);

        // A second revoke keeps the first time.
        let again = store.devices().revoke(&dev, 170).await.unwrap();
        assert_eq!(again.revoked_at_ms, Some(150));

        // A new approved request re-pairs it with a fresh token.
        let repaired = paired(&store, 1, Role::Node, 200).await;
        assert_eq!(repaired.status, DeviceStatus::Paired);
        assert_eq!(repaired.revoked_at_ms, None);
        assert_eq!(repaired.paired_at_ms, 200);
        assert!(
            store
                .tokens()
                .matches(&dev, Role::Node, "hash-1-200")
                .await
                .unwrap()
        );
        assert_eq!(store.devices().count_paired().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn revoke_unknown_is_not_found() {
        let store = Store::open_in_memory().await.unwrap();
        let err = store.devices().revoke(&device(9), 1).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { what: "device", .. }));
    }

    #[tokio::test]
    async fn touch_seen_updates_last_seen_and_commands() {
        let store = Store::open_in_memory().await.unwrap();
        let dev = device(1);
        paired(&store, 1, Role::Node, 100).await;

        let cmds = vec!["system.run".to_string(), "location.get".to_string()];
        store
            .devices()
            .touch_seen(&dev, 120, Some(&cmds))
            .await
            .unwrap();
        let d = store.devices().get(&dev).await.unwrap().unwrap();
        assert_eq!(d.last_seen_ms, Some(120));
        assert_eq!(d.commands, cmds);

        // Without commands, the last advertised list is kept.
        store.devices().touch_seen(&dev, 130, None).await.unwrap();
        let d = store.devices().get(&dev).await.unwrap().unwrap();
        assert_eq!(d.last_seen_ms, Some(130));
        assert_eq!(d.commands, cmds);

        let err = store
            .devices()
            .touch_seen(&device(2), 130, None)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }));
    }

    #[tokio::test]
    async fn corrupt_rows_are_errors_not_panics() {
        let store = Store::open_in_memory().await.unwrap();
        let dev = device(1);
        paired(&store, 1, Role::Node, 100).await;

        // Bad JSON in commands (no CHECK constraint guards it).
        sqlx::query("UPDATE devices SET commands = 'not json' WHERE device_id = $1")
            .bind(dev.as_str())
            .execute(&store.pool)
            .await
            .unwrap();
        let err = store.devices().get(&dev).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");

        // Unknown enum text, written past the CHECK constraint the way a newer or foreign
        // writer might.
        sqlx::query("PRAGMA ignore_check_constraints = ON")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE devices SET commands = '[]', status = 'banished', role = 'overlord' \
             WHERE device_id = $1",
        )
        .bind(dev.as_str())
        .execute(&store.pool)
        .await
        .unwrap();
        let err = store.devices().get(&dev).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(msg) if msg.contains("banished")),
            "{err:?}"
        );
        assert!(matches!(
            store.devices().list().await.unwrap_err(),
            StoreError::Corrupt(_)
        ));

        // A malformed device id is corruption too.
        sqlx::query(
            "INSERT INTO devices (device_id, public_key, display_name, platform, role, status, \
             paired_at_ms) VALUES ('XYZ', 'pk', 'n', 'p', 'node', 'paired', 1)",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        sqlx::query("DELETE FROM devices WHERE device_id = $1")
            .bind(dev.as_str())
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(matches!(
            store.devices().list().await.unwrap_err(),
            StoreError::Corrupt(_)
        ));
    }

    #[tokio::test]
    async fn remove_forgets_device_and_tokens_and_allows_a_new_request() {
        let store = Store::open_in_memory().await.unwrap();
        let (req, _) = store
            .pairing()
            .upsert_pending(request(1, Role::Node), "r1", 10)
            .await
            .unwrap();
        store
            .pairing()
            .approve(&req.request_id, "h", 11)
            .await
            .unwrap();
        let id = device(1);
        // What was run on it goes with it; another device's record stays.
        let access = |seed: u8| crate::NewAccess {
            device_id: device(seed),
            at_ms: 11,
            duration_ms: 1,
            command: "device.info".into(),
            requester: crate::Requester::Operator {
                device_id: None,
                label: "cli".into(),
            },
            outcome: crate::AccessOutcome::Ok,
        };
        store
            .access()
            .record(&[access(1), access(2)], &Default::default(), 11)
            .await
            .unwrap();
        store.devices().revoke(&id, 12).await.unwrap();
        assert_eq!(
            store
                .access()
                .page(&id, None, 5)
                .await
                .unwrap()
                .records
                .len(),
            1,
            "revoking keeps the record"
        );
        let before = store.devices().remove(&id, 13).await.unwrap();
        assert_eq!(before.device_id, id);
        assert!(store.devices().get(&id).await.unwrap().is_none());
        assert!(
            store
                .access()
                .page(&id, None, 5)
                .await
                .unwrap()
                .records
                .is_empty()
        );
        let other = store.access().page(&device(2), None, 5).await.unwrap();
        assert_eq!(other.records.len(), 1);
        assert!(!store.tokens().has_token(&id, Role::Node).await.unwrap());
        let (again, created) = store
            .pairing()
            .upsert_pending(request(1, Role::Node), "r2", 14)
            .await
            .unwrap();
        assert!(created);
        assert_eq!(again.request_id, "r2");
        assert!(matches!(
            store.devices().remove(&id, 15).await,
            Err(StoreError::NotFound { .. })
        ));
    }
}
