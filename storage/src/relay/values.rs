//! The relay store's u64 values (seqs, times) as SQL's signed 64-bit
//! integers: checked on the way in, checked on the way out.

use crate::StoreError;

/// The largest seq or time (ms since the Unix epoch) a relay store holds:
/// SQL integers (SQLite's INTEGER, PostgreSQL's BIGINT) are signed 64-bit.
/// Every backend, the in-memory one too, refuses a larger value with
/// [`StoreError::ValueOutOfRange`] instead of clamping or wrapping it.
pub const STORED_VALUE_MAX: u64 = i64::MAX as u64;

/// `value` as it is stored, or [`StoreError::ValueOutOfRange`] when it is
/// above [`STORED_VALUE_MAX`].
pub(crate) fn stored(value: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::ValueOutOfRange { what, value })
}

/// `value` as a bound that is only compared with stored values (a page's
/// `after_seq`, a cursor clamped to the head, a row limit), never stored.
/// Saturating is exact here: every stored value is at most
/// [`STORED_VALUE_MAX`], so `stored > v` and `stored > min(v, MAX)` agree.
pub(crate) fn bound(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// [`bound`] for sizes and counts.
pub(crate) fn bound_usize(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored integer read back: a negative one is corrupt.
pub(crate) fn loaded(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {what}: {value}")))
}

/// A stored blob read back as a fixed-size key.
pub(crate) fn key<const N: usize>(blob: Vec<u8>, what: &str) -> Result<[u8; N], StoreError> {
    <[u8; N]>::try_from(blob)
        .map_err(|b| StoreError::Corrupt(format!("{what} of {} bytes, expected {N}", b.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_are_checked_at_the_edge() {
        assert_eq!(stored(0, "t").unwrap(), 0);
        assert_eq!(stored(STORED_VALUE_MAX - 1, "t").unwrap(), i64::MAX - 1);
        assert_eq!(stored(STORED_VALUE_MAX, "t").unwrap(), i64::MAX);
        for value in [STORED_VALUE_MAX + 1, u64::MAX] {
            match stored(value, "now_ms") {
                Err(StoreError::ValueOutOfRange {
                    what: "now_ms",
                    value: v,
                }) => {
                    assert_eq!(v, value)
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn bounds_saturate_and_loads_refuse_negatives() {
        assert_eq!(bound(STORED_VALUE_MAX), i64::MAX);
        assert_eq!(bound(STORED_VALUE_MAX + 1), i64::MAX);
        assert_eq!(bound(u64::MAX), i64::MAX);
        assert_eq!(bound_usize(usize::MAX), i64::MAX);
        assert_eq!(loaded(i64::MAX, "seq").unwrap(), STORED_VALUE_MAX);
        assert!(matches!(loaded(-1, "seq"), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            key::<2>(vec![1], "id"),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(key::<2>(vec![1, 2], "id").unwrap(), [1, 2]);
    }
}
