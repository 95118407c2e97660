//! The `host_meta` table: host-wide key/value settings, starting with the host id.

use sqlx::SqlitePool;

use crate::{StoreError, begin_write};

/// Reads and writes host-wide settings.
#[derive(Debug, Clone, Copy)]
pub struct MetaRepo<'a> {
    pool: &'a SqlitePool,
}

impl<'a> MetaRepo<'a> {
    pub(crate) fn new(pool: &'a SqlitePool) -> Self {
        MetaRepo { pool }
    }

    /// The value stored under `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let value = sqlx::query_scalar("SELECT value FROM host_meta WHERE key = $1")
            .bind(key)
            .fetch_optional(self.pool)
            .await?;
        Ok(value)
    }

    /// Stores `value` under `key`, replacing any previous value.
    pub async fn set(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO host_meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(self.pool)
        .await?;
        Ok(())
    }

    /// Returns the value under `key`, first storing `value` if there is none; concurrent
    /// callers all get the same winner, so a generated host id is chosen exactly once.
    pub async fn get_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let mut tx = begin_write(self.pool).await?;
        sqlx::query(
            "INSERT INTO host_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await?;
        let stored: String = sqlx::query_scalar("SELECT value FROM host_meta WHERE key = $1")
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    #[tokio::test]
    async fn get_or_insert_is_stable() {
        let store = Store::open_in_memory().await.unwrap();
        let m = store.meta();
        assert_eq!(m.get("host_id").await.unwrap(), None);
        assert_eq!(m.get_or_insert("host_id", "a").await.unwrap(), "a");
        assert_eq!(m.get_or_insert("host_id", "b").await.unwrap(), "a");
        assert_eq!(m.get("host_id").await.unwrap().as_deref(), Some("a"));
    }

    #[tokio::test]
    async fn set_overwrites() {
        let store = Store::open_in_memory().await.unwrap();
        let m = store.meta();
        m.set("theme", "dark").await.unwrap();
        m.set("theme", "light").await.unwrap();
        assert_eq!(m.get("theme").await.unwrap().as_deref(), Some("light"));
        assert_eq!(m.get_or_insert("theme", "x").await.unwrap(), "light");
    }
}
