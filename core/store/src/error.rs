//! The one error type every store operation returns.

use crate::pairing::RequestStatus;

/// Why a store operation failed; callers match on the domain variants and log the rest.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused or failed the statement (I/O, constraint, busy past the timeout).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The embedded migrations could not be applied (for example a newer schema on disk).
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The row the operation needs does not exist.
    #[error("{what} not found: {id}")]
    NotFound {
        /// What kind of row was looked for, for example `"pairing request"`.
        what: &'static str,
        /// The id that was looked up.
        id: String,
    },
    /// The pairing request was already decided, so it cannot be decided again.
    #[error("pairing request {request_id} is {status}, not pending")]
    NotPending {
        /// The request that was asked about.
        request_id: String,
        /// Its current status.
        status: RequestStatus,
    },
    /// A stored value does not parse (unknown enum text, bad JSON, bad device id).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database file could not be made private to this user.
    #[error("cannot make {path} private: {source}")]
    Permissions {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl StoreError {
    /// Builds a `Corrupt` error naming the table, column and offending value.
    pub(crate) fn corrupt(table: &str, column: &str, value: &str) -> Self {
        StoreError::Corrupt(format!("{table}.{column} holds unexpected value {value:?}"))
    }
}
