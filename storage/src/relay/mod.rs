//! The relay store.
