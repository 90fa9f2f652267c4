//! The properties the simulation checks along the way and at the end.

use std::hash::{Hash, Hasher};

use tandem_engine::AccountState;
use tandem_engine::ContentId;

/// The first difference between two states, readably.
pub fn diff(a: &AccountState, b: &AccountState) -> String {
    fn first<T: std::fmt::Debug + PartialEq>(name: &str, a: &[T], b: &[T]) -> Option<String> {
        if a == b {
            return None;
        }
        let i = a
            .iter()
            .zip(b)
            .position(|(x, y)| x != y)
            .unwrap_or(a.len().min(b.len()));
        Some(format!(
            "{name}: {} vs {} rows; first difference at {i}:\n  {:?}\n  {:?}",
            a.len(),
            b.len(),
            a.get(i),
            b.get(i)
        ))
    }
    [
        first("conversations", &a.conversations, &b.conversations),
        first("messages", &a.messages, &b.messages),
        first("contacts", &a.contacts, &b.contacts),
        first("blocklist", &a.blocklist, &b.blocklist),
        first("groups", &a.groups, &b.groups),
        first("threads", &a.threads, &b.threads),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("\n")
}

/// A digest of a converged world: equal for two runs of one seed.
pub fn digest(heads: &[String], state: &AccountState, log: &[ContentId]) -> String {
    // DefaultHasher::new() has fixed keys: stable within one build.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    heads.hash(&mut hasher);
    format!("{state:?}").hash(&mut hasher);
    log.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}
