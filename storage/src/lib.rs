//! All of Tandem's SQL: the device store ([`device`]) and the relay store
//! ([`relay`]), on SQLite and (feature `postgres`) on PostgreSQL.

#![forbid(unsafe_code)]

pub mod device;
pub mod relay;

#[cfg(feature = "test-postgres")]
pub mod pg_test;

mod migrate;
mod values;

pub use values::{u64_from_sql, u64_to_sql, STORED_VALUE_MAX};

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// SQLite refused to open the file or to set it up.
    #[error("cannot open the store: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// The file was written by a newer Tandem; opening it would lose data.
    #[error("the store's schema version {found} is newer than this build knows ({known}); upgrade Tandem")]
    SchemaTooNew { found: u32, known: u32 },
    /// A migration failed; the store is left at its previous version.
    #[error("migration {version} failed: {source}")]
    Migration {
        version: u32,
        #[source]
        source: rusqlite::Error,
    },
    /// PostgreSQL refused the connection string, the connection or the
    /// set-up.
    #[cfg(feature = "postgres")]
    #[error("cannot open the PostgreSQL store: {}", postgres_why(.0))]
    Postgres(#[source] postgres::Error),
    /// A PostgreSQL migration failed; the database is left at its previous
    /// version (migrations run in one transaction).
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL migration {version} failed: {}", postgres_why(.source))]
    PostgresMigration {
        version: u32,
        #[source]
        source: postgres::Error,
    },
}

/// Why a read or a write of an open store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error (disk full, I/O error, constraint).
    #[error("store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value breaks an invariant of the schema.
    #[error("the store holds corrupt data: {0}")]
    Corrupt(String),
    /// A seq, cursor or time above [`STORED_VALUE_MAX`] (2^63 - 1, the
    /// largest SQL integer) was to be stored. Nothing was written.
    #[error("{what} {value} is above the largest number a store keeps (2^63 - 1)")]
    OutOfRange {
        /// What the number is (`relay_seq`, `now_ms`…).
        what: &'static str,
        /// The number refused.
        value: u64,
    },
    /// PostgreSQL reported an error: the connection failed or was lost, or
    /// a statement failed. After a lost connection the store reconnects on
    /// its next operation.
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL store error: {}", postgres_why(.0))]
    Postgres(#[from] postgres::Error),
    /// The current group's transaction was lost with its connection: none
    /// of the group is durable, and every further operation of the group
    /// fails until `commit_group` ends it (reporting this error too).
    #[cfg(feature = "postgres")]
    #[error("the store group was lost with its database connection; nothing of it is durable")]
    GroupLost,
    /// The change feed's connection to the database closed. The next
    /// [`relay::ChangeFeed::wait`] connects again and reports
    /// [`relay::Changes::Everything`], since changes may have been missed.
    #[cfg(feature = "postgres")]
    #[error("the change feed lost its database connection")]
    ChangeFeedLost,
}

/// A PostgreSQL error with what caused it: the client's own message is only
/// its kind ("db error", "error connecting to server").
#[cfg(feature = "postgres")]
fn postgres_why(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
