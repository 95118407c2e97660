//! Perch persistence: devices, pairing requests, device tokens and host settings in SQLite.
//!
//! The gateway owns the policy (who may pair, when a token is issued, what a revoked device
//! may do); this crate owns the rows and makes every change to them atomic. One repository
//! per table: [`DeviceRepo`], [`PairingRepo`], [`TokenRepo`], [`BootstrapRepo`],
//! [`MetaRepo`], [`AccessRepo`], all reached through a cheap-to-clone [`Store`].
//!
//! **Architecture Invariant:** the store knows nothing of WebSockets or the protocol's frames;
//! it stores rows, the gateway decides. It borrows only the value types `DeviceId` and `Role`
//! from `perch-protocol`.
//!
//! **Architecture Invariant:** every multi-row change is one transaction: no half-written
//! state. Approving a request, marking the device paired and replacing its token either all
//! happen or none do.
//!
//! **Architecture Invariant:** the store never sees a plaintext token, only its hex SHA-256.
//!
//! **Architecture Invariant:** a row the code cannot understand (unknown enum text, bad JSON)
//! is a [`StoreError::Corrupt`], never a panic.
//!
//! **Architecture Invariant:** the schema only changes through the embedded migrations in
//! `migrations/`, which run on every open; SQL stays portable to Postgres where it costs
//! nothing (`$n` placeholders, `ON CONFLICT`, `BIGINT` times in ms since the epoch).

pub mod access;
pub mod bootstrap;
mod devices;
mod error;
pub mod location;
pub mod location_changes;
mod meta;
pub mod notify_replies;
mod pairing;
mod sessions;
mod tokens;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use perch_protocol::DeviceId;
use perch_protocol::handshake::Role;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};

pub use access::{
    AccessOutcome, AccessPage, AccessRecord, AccessRepo, AccessRetention, NewAccess, Requester,
};
pub use bootstrap::{BootstrapError, BootstrapRepo, BootstrapTokenRecord, Redemption};
pub use devices::{DeviceRecord, DeviceRepo, DeviceStatus};
pub use error::StoreError;
pub use location::{
    AuditRecord, LocationOutcome, LocationPrecision, LocationReadPath, LocationRepo, NewAuditEntry,
    NewPlace, PlaceError, PlaceRecord, SharingRecord,
};
pub use meta::MetaRepo;
pub use pairing::{
    ExpiredRequest, Filed, NewPairingRequest, PairingRepo, PairingRequestRecord, PendingCaps,
    RequestStatus,
};
pub use sessions::{MessageRecord, MessageRole, NewMessage, SessionRecord, SessionRepo};
pub use tokens::TokenRepo;

/// The schema, embedded in the binary so a host never depends on files next to it.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a statement waits for another writer before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections for a file database: WAL lets readers run beside the one writer.
const FILE_POOL_SIZE: u32 = 4;

/// A handle on the host database; clone it freely, all clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// Makes `path` readable and writable by this user only: created empty with mode 0600 when
/// `create` and it is missing, tightened to 0600 when it exists. Elsewhere than Unix, nothing.
fn private_file(path: &Path, create: bool) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let err = |source| StoreError::Permissions {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::metadata(path) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(err)?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map(drop)
                    .or_else(|e| match e.kind() {
                        // Another process made it first: tighten that one.
                        std::io::ErrorKind::AlreadyExists => {
                            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                        }
                        _ => Err(e),
                    })
                    .map_err(err)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
    }
    #[cfg(not(unix))]
    let _ = (path, create);
    Ok(())
}

impl Store {
    /// Opens (creating if missing) the database file at `path` and brings its schema up to
    /// date. The parent directory must already exist.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        // SQLite creates the -wal and -shm files with the database file's mode, so a database
        // made 0600 before the first connection keeps all three private whatever the umask.
        private_file(path, true)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(FILE_POOL_SIZE)
            .connect_with(options)
            .await?;
        // Files made by an older version, or copied in, are tightened too.
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            private_file(Path::new(&side), false)?;
        }
        Self::migrated(pool).await
    }

    /// Opens a fresh private in-memory database, for tests. The pool holds exactly one
    /// connection that never expires, because the data lives only as long as it does.
    pub async fn open_in_memory() -> Result<Store, StoreError> {
        // `:memory:` through the URL parser gets a unique name per call, so two stores in one
        // process never share data.
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }

    async fn migrated(pool: SqlitePool) -> Result<Store, StoreError> {
        MIGRATOR.run(&pool).await?;
        tracing::debug!("store schema is up to date");
        Ok(Store { pool })
    }

    /// Paired and revoked devices.
    pub fn devices(&self) -> DeviceRepo<'_> {
        DeviceRepo::new(&self.pool)
    }

    /// Pairing requests and their decisions.
    pub fn pairing(&self) -> PairingRepo<'_> {
        PairingRepo::new(&self.pool)
    }

    /// Hashes of the tokens paired devices reconnect with.
    pub fn tokens(&self) -> TokenRepo<'_> {
        TokenRepo::new(&self.pool)
    }

    /// Single-use setup-code tokens and the pairing they grant.
    pub fn bootstrap(&self) -> BootstrapRepo<'_> {
        BootstrapRepo::new(&self.pool)
    }

    /// Host-wide settings such as the host id.
    pub fn meta(&self) -> MetaRepo<'_> {
        MetaRepo::new(&self.pool)
    }

    /// Named places, per-device location sharing and the location audit.
    pub fn location(&self) -> LocationRepo<'_> {
        LocationRepo::new(&self.pool)
    }

    /// The record of node commands run on each device: who asked, what, when, what came of it.
    pub fn access(&self) -> AccessRepo<'_> {
        AccessRepo::new(&self.pool)
    }

    /// Location changes devices reported, as their sharing precision allowed.
    pub fn location_changes(&self) -> location_changes::LocationChangeRepo<'_> {
        location_changes::LocationChangeRepo { pool: &self.pool }
    }

    /// Replies to notifications, until the assistant has read them.
    pub fn replies(&self) -> notify_replies::ReplyRepo<'_> {
        notify_replies::ReplyRepo { pool: &self.pool }
    }

    /// Sessions and their transcripts.
    pub fn sessions(&self) -> SessionRepo<'_> {
        SessionRepo::new(&self.pool)
    }

    /// Waits for in-flight statements and closes every connection, so the WAL is checkpointed
    /// before the process exits.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Starts a write transaction that takes the write lock up front (`BEGIN IMMEDIATE`).
///
/// A deferred transaction that reads and then writes can fail with `SQLITE_BUSY` at the
/// write without waiting for the busy timeout; taking the lock at `BEGIN` makes writers
/// queue instead. This is the one SQLite-specific statement in the crate.
pub(crate) async fn begin_write(
    pool: &SqlitePool,
) -> Result<Transaction<'static, Sqlite>, StoreError> {
    Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
}

/// Marks rows of a read-once table (replies, location changes) as read by the assistant, in
/// one transaction; `update` is that table's `UPDATE ... SET seen_at_ms = $1 WHERE id = $2 AND
/// seen_at_ms IS NULL`, so a row keeps the time it was first read.
pub(crate) async fn mark_rows_seen(
    pool: &SqlitePool,
    update: &'static str,
    ids: &[i64],
    now_ms: i64,
) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut tx = begin_write(pool).await?;
    for id in ids {
        sqlx::query(update)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Parses a stored role, treating unknown text as corruption.
pub(crate) fn parse_role(table: &str, value: &str) -> Result<Role, StoreError> {
    Role::parse(value).ok_or_else(|| StoreError::corrupt(table, "role", value))
}

/// Parses a stored device id, treating a malformed one as corruption.
pub(crate) fn parse_device_id(table: &str, value: &str) -> Result<DeviceId, StoreError> {
    DeviceId::parse(value).map_err(|_| StoreError::corrupt(table, "device_id", value))
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Fixtures shared by the unit tests of every repository.

    use perch_protocol::DeviceId;
    use perch_protocol::handshake::Role;

    use crate::NewPairingRequest;

    /// A valid device id derived from a one-byte seed.
    pub fn device(seed: u8) -> DeviceId {
        DeviceId::from_public_key(&[seed; 32])
    }

    /// A pairing request from the device derived from `seed`.
    pub fn request(seed: u8, role: Role) -> NewPairingRequest {
        NewPairingRequest {
            device_id: device(seed),
            public_key: format!("pk-{seed}"),
            role,
            display_name: format!("Device {seed}"),
            platform: "linux".to_string(),
            device_family: None,
            remote_addr: Some("127.0.0.1".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_db_reopens_and_uses_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("perch.db");

        let store = Store::open(&path).await.unwrap();
        let host_id = store.meta().get_or_insert("host_id", "h-1").await.unwrap();
        store.close().await;

        // Migrations run again on the same file without error, and the data survived.
        let store = Store::open(&path).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(fk, 1);
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(applied, MIGRATOR.iter().count() as i64);
        assert!(applied >= 2);
        assert_eq!(
            store.meta().get_or_insert("host_id", "h-2").await.unwrap(),
            host_id
        );
        store.close().await;
    }

    /// The database and its WAL are private whatever the umask, and files left readable by an
    /// older version are tightened on open.
    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_and_its_wal_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("perch.db");
        let store = Store::open(&path).await.unwrap();
        store.meta().get_or_insert("host_id", "h").await.unwrap();
        let wal = dir.path().join("perch.db-wal");
        assert!(wal.exists(), "WAL mode writes a -wal file");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&wal), 0o600);
        store.close().await;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = Store::open(&path).await.unwrap();
        assert_eq!(mode(&path), 0o600);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_on_a_file_db_agree() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("perch.db")).await.unwrap();

        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let req = test_support::request(1, Role::Node);
                let (rec, created) = store
                    .pairing()
                    .upsert_pending(req, &format!("r{i}"), 100 + i)
                    .await
                    .unwrap();
                let host = store
                    .meta()
                    .get_or_insert("host_id", &format!("h{i}"))
                    .await
                    .unwrap();
                (rec.request_id, created, host)
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        assert_eq!(results.iter().filter(|r| r.1).count(), 1);
        assert!(
            results
                .iter()
                .all(|r| r.0 == results[0].0 && r.2 == results[0].2)
        );
        assert_eq!(store.pairing().list_pending().await.unwrap().len(), 1);
        store.close().await;
    }

    #[tokio::test]
    async fn in_memory_stores_are_separate() {
        let a = Store::open_in_memory().await.unwrap();
        let b = Store::open_in_memory().await.unwrap();
        a.meta().set("k", "a").await.unwrap();
        assert_eq!(b.meta().get("k").await.unwrap(), None);
        assert_eq!(a.meta().get("k").await.unwrap().as_deref(), Some("a"));
    }
}
