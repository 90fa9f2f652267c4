//! Unsigned 64-bit numbers (seqs, cursors, times) as SQL's signed 64-bit
//! integers: checked on the way in, checked on the way out, for every store.

use crate::StoreError;

/// The largest seq, cursor or time (ms since the Unix epoch) a store holds:
/// SQL integers (SQLite's INTEGER, PostgreSQL's BIGINT) are signed 64-bit.
/// Every store, the in-memory relay store too, refuses a larger value with
/// [`StoreError::OutOfRange`] instead of clamping or wrapping it.
pub const STORED_VALUE_MAX: u64 = i64::MAX as u64;

/// `value` as it is stored, or [`StoreError::OutOfRange`] when it is above
/// [`STORED_VALUE_MAX`]. Nothing is ever clamped or wrapped.
pub fn u64_to_sql(what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}

/// A stored number that must not be negative, back as the `u64` it was. A
/// negative one is [`StoreError::Corrupt`].
pub fn u64_from_sql(what: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is negative: {value}")))
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

/// A stored blob read back as a fixed-size key.
pub(crate) fn key<const N: usize>(blob: Vec<u8>, what: &str) -> Result<[u8; N], StoreError> {
    <[u8; N]>::try_from(blob)
        .map_err(|b| StoreError::Corrupt(format!("{what} of {} bytes, expected {N}", b.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_are_checked_at_the_edges() {
        let max = STORED_VALUE_MAX;
        assert_eq!(max, i64::MAX as u64);
        assert_eq!(u64_to_sql("n", 0).unwrap(), 0);
        assert_eq!(u64_to_sql("n", max - 1).unwrap(), i64::MAX - 1);
        assert_eq!(u64_to_sql("n", max).unwrap(), i64::MAX);
        for above in [max + 1, u64::MAX] {
            assert!(matches!(
                u64_to_sql("now_ms", above),
                Err(StoreError::OutOfRange { what: "now_ms", value }) if value == above
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

    #[test]
    fn bounds_saturate_and_keys_check_their_length() {
        assert_eq!(bound(STORED_VALUE_MAX), i64::MAX);
        assert_eq!(bound(STORED_VALUE_MAX + 1), i64::MAX);
        assert_eq!(bound(u64::MAX), i64::MAX);
        assert_eq!(bound_usize(usize::MAX), i64::MAX);
        assert!(matches!(
            key::<2>(vec![1], "id"),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(key::<2>(vec![1, 2], "id").unwrap(), [1, 2]);
    }
}
