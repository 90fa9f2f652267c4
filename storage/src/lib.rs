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
    /// A number to be stored is above what SQLite's integers hold
    /// ([`i64::MAX`]); nothing was written.
    #[error(
        "{what} {value} is above the largest number a store keeps ({})",
        i64::MAX
    )]
    OutOfRange {
        /// What the number is (`relay_seq`, `origin_seq`…).
        what: &'static str,
        /// The number.
        value: u64,
    },
}

/// `value` as SQLite stores it. A value above [`i64::MAX`] is refused with
/// [`StoreError::OutOfRange`], never clamped or wrapped.
pub fn u64_to_sql(what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}

/// A stored number that must not be negative, back as the `u64` it was. A
/// negative one is [`StoreError::Corrupt`].
pub fn u64_from_sql(what: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is negative: {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_conversions_are_checked_at_the_edges() {
        let max = i64::MAX as u64;
        assert_eq!(u64_to_sql("n", 0).unwrap(), 0);
        assert_eq!(u64_to_sql("n", max - 1).unwrap(), i64::MAX - 1);
        assert_eq!(u64_to_sql("n", max).unwrap(), i64::MAX);
        for above in [max + 1, u64::MAX] {
            assert!(matches!(
                u64_to_sql("n", above),
                Err(StoreError::OutOfRange { what: "n", value }) if value == above
            ));
        }
        assert_eq!(u64_from_sql("n", 0).unwrap(), 0);
        assert_eq!(u64_from_sql("n", i64::MAX).unwrap(), max);
        for negative in [-1, i64::MIN] {
            assert!(matches!(
                u64_from_sql("n", negative),
                Err(StoreError::Corrupt(_))
            ));
        }
    }
}
