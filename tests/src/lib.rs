//! What Tandem's cross-crate tests share.
//!
//! - [`choice`]: where random decisions come from: a seeded PRNG for the
//!   simulation, fuzzer bytes for the fuzz targets, a proptest vector for
//!   the property tests. Every generator takes a [`choice::Choices`], so one
//!   generator serves all three.
//! - [`check`]: watermarks of what must never move back (read markers,
//!   clear points, message flags, receipts).
//! - [`every_op`]: the one table of every operation kind, with the event
//!   each becomes, examples, and how to draw a random one.
//! - [`gen`]: random operations of every kind over a small universe of
//!   users, groups, threads and messages, so that random operations collide.
//! - [`fuzz_targets`]: the bodies of the cargo-fuzz targets in `../fuzz`.
//!   `tests/fuzz_replay.rs` runs them over every committed corpus and crash
//!   input, so an ordinary `cargo test` replays what the fuzzer found.

#![forbid(unsafe_code)]

pub mod check;
pub mod choice;
pub mod every_op;
pub mod fuzz_targets;
pub mod gen;
