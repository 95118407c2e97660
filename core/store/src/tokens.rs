//! The `device_tokens` table: hashes of the bearer tokens paired devices reconnect with.

use perch_protocol::DeviceId;
use perch_protocol::handshake::Role;
use sqlx::SqlitePool;

use crate::{StoreError, begin_write, parse_role};

/// Replaces the token hash for (device, role) inside any executor; used by `approve` too.
pub(crate) async fn replace_token<'e, E>(
    executor: E,
    device_id: &str,
    role: Role,
    token_hash: &str,
    now_ms: i64,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    sqlx::query(
        "INSERT INTO device_tokens (device_id, role, token_hash, issued_at_ms) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (device_id, role) DO UPDATE SET \
         token_hash = excluded.token_hash, issued_at_ms = excluded.issued_at_ms",
    )
    .bind(device_id)
    .bind(role.as_str())
    .bind(token_hash)
    .bind(now_ms)
    .execute(executor)
    .await?;
    Ok(())
}

/// Issues, checks and lists device token hashes. The store only ever sees hex SHA-256
/// hashes; hashing the presented token is the gateway's job.
#[derive(Debug, Clone, Copy)]
pub struct TokenRepo<'a> {
    pool: &'a SqlitePool,
}

impl<'a> TokenRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        TokenRepo { pool }
    }

    /// Replaces the token hash for (device, role), for token rotation. The device must be
    /// paired: a revoked or unknown device gets `NotFound { what: "paired device" }`, so a
    /// revoked device can never hold a token.
    pub async fn issue(
        &self,
        device_id: &DeviceId,
        role: Role,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = begin_write(self.pool).await?;
        let paired: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM devices WHERE device_id = $1 AND status = 'paired')",
        )
        .bind(device_id.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if !paired {
            return Err(StoreError::NotFound {
                what: "paired device",
                id: device_id.to_string(),
            });
        }
        replace_token(&mut *tx, device_id.as_str(), role, token_hash, now_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether `token_hash` is the current token of a *paired* device in this role.
    pub async fn matches(
        &self,
        device_id: &DeviceId,
        role: Role,
        token_hash: &str,
    ) -> Result<bool, StoreError> {
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM device_tokens t \
             JOIN devices d ON d.device_id = t.device_id \
             WHERE t.device_id = $1 AND t.role = $2 AND t.token_hash = $3 \
             AND d.status = 'paired')",
        )
        .bind(device_id.as_str())
        .bind(role.as_str())
        .bind(token_hash)
        .fetch_one(self.pool)
        .await?;
        Ok(found)
    }

    /// Whether the device holds any token for this role (it paired in this role and was not
    /// revoked since).
    pub async fn has_token(&self, device_id: &DeviceId, role: Role) -> Result<bool, StoreError> {
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM device_tokens WHERE device_id = $1 AND role = $2)",
        )
        .bind(device_id.as_str())
        .bind(role.as_str())
        .fetch_one(self.pool)
        .await?;
        Ok(found)
    }

    /// The roles the device currently holds a token for, sorted by name.
    pub async fn roles(&self, device_id: &DeviceId) -> Result<Vec<Role>, StoreError> {
        let roles: Vec<String> =
            sqlx::query_scalar("SELECT role FROM device_tokens WHERE device_id = $1 ORDER BY role")
                .bind(device_id.as_str())
                .fetch_all(self.pool)
                .await?;
        roles
            .iter()
            .map(|r| parse_role("device_tokens", r))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::test_support::{device, request};

    async fn paired_node(store: &Store) -> DeviceId {
        store
            .pairing()
            .upsert_pending(request(1, Role::Node), "r1", 100)
            .await
            .unwrap();
        store.pairing().approve("r1", "first", 100).await.unwrap();
        device(1)
    }

    #[tokio::test]
    async fn matches_and_mismatches() {
        let store = Store::open_in_memory().await.unwrap();
        let dev = paired_node(&store).await;
        let t = store.tokens();
        assert!(t.matches(&dev, Role::Node, "first").await.unwrap());
        assert!(!t.matches(&dev, Role::Node, "other").await.unwrap());
        assert!(!t.matches(&dev, Role::Operator, "first").await.unwrap());
        assert!(!t.matches(&device(2), Role::Node, "first").await.unwrap());
        assert!(t.has_token(&dev, Role::Node).await.unwrap());
        assert!(!t.has_token(&dev, Role::Operator).await.unwrap());
        assert_eq!(t.roles(&dev).await.unwrap(), vec![Role::Node]);
    }

    #[tokio::test]
    async fn issue_replaces_the_previous_token() {
        let store = Store::open_in_memory().await.unwrap();
        let dev = paired_node(&store).await;
        let t = store.tokens();
        t.issue(&dev, Role::Node, "second", 200).await.unwrap();
        assert!(t.matches(&dev, Role::Node, "second").await.unwrap());
        assert!(!t.matches(&dev, Role::Node, "first").await.unwrap());
    }

    #[tokio::test]
    async fn issue_needs_a_paired_device() {
        let store = Store::open_in_memory().await.unwrap();
        let t = store.tokens();
        let err = t.issue(&device(1), Role::Node, "h", 1).await.unwrap_err();
        assert!(matches!(
            err,
            StoreError::NotFound {
                what: "paired device",
                ..
            }
        ));

        let dev = paired_node(&store).await;
        store.devices().revoke(&dev, 150).await.unwrap();
        let err = t.issue(&dev, Role::Node, "h", 160).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }));
        assert!(!t.has_token(&dev, Role::Node).await.unwrap());
    }
}
