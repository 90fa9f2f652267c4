//! The properties the simulation checks along the way and at the end.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use tandem_engine::delta::ContentId;
use tandem_engine::{AccountState, Receipt};

/// The highest values a device has shown, for what must never move back:
/// read markers, clear points, message flags and receipts, the message log
/// itself.
#[derive(Debug, Default)]
pub struct Watermarks {
    read: BTreeMap<String, (i64, String)>,
    cleared: BTreeMap<String, i64>,
    messages: BTreeMap<String, (bool, bool, Receipt)>,
}

impl Watermarks {
    /// Compares the device's state with everything it showed before, then
    /// remembers it.
    pub fn observe(&mut self, state: &AccountState) -> Result<(), String> {
        let rows: BTreeMap<&str, _> = state
            .conversations
            .iter()
            .map(|c| (c.id.as_str(), &c.settings))
            .collect();
        for (id, marker) in &self.read {
            let now = rows
                .get(id.as_str())
                .map(|s| (s.read_at_ms, s.read_message.clone()))
                .unwrap_or((0, String::new()));
            if now < *marker {
                return Err(format!(
                    "the read marker of {id} moved back from {marker:?} to {now:?}"
                ));
            }
        }
        for (id, cleared) in &self.cleared {
            let now = rows.get(id.as_str()).map_or(0, |s| s.cleared_up_to_ms);
            if now < *cleared {
                return Err(format!(
                    "the clear point of {id} moved back from {cleared} to {now}"
                ));
            }
        }
        let messages: BTreeMap<&str, _> = state
            .messages
            .iter()
            .map(|m| (m.id.as_str(), (m.recalled, m.deleted, m.receipt)))
            .collect();
        for (id, (recalled, deleted, receipt)) in &self.messages {
            let Some((r, d, rc)) = messages.get(id.as_str()) else {
                return Err(format!("message {id} vanished from the log"));
            };
            if (*recalled && !r) || (*deleted && !d) || rc < receipt {
                return Err(format!(
                    "message {id} went back from {:?} to {:?}",
                    (recalled, deleted, receipt),
                    (r, d, rc)
                ));
            }
        }
        for (id, settings) in rows {
            self.read.insert(
                id.to_owned(),
                (settings.read_at_ms, settings.read_message.clone()),
            );
            self.cleared
                .insert(id.to_owned(), settings.cleared_up_to_ms);
        }
        for (id, flags) in messages {
            self.messages.insert(id.to_owned(), flags);
        }
        Ok(())
    }
}

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
