//! All of Tandem's SQL: the device store ([`device`]) and the relay store
//! ([`relay`]).

#![forbid(unsafe_code)]

pub mod device;
pub mod relay;

mod migrate;

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
}
