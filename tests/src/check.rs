//! Properties that hold at every step on every device: nothing a user
//! has seen may move back.

use std::collections::BTreeMap;

use tandem_engine::{AccountState, Receipt};

/// The highest values a device has shown, for what must never move back:
/// read markers, clear points, message flags and receipts, group read
/// receipts, the message log itself.
#[derive(Debug, Default)]
pub struct Watermarks {
    read: BTreeMap<String, (i64, String)>,
    cleared: BTreeMap<String, i64>,
    messages: BTreeMap<String, (bool, bool, Receipt)>,
    group_acks: std::collections::BTreeSet<(String, String)>,
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
        for ack in &self.group_acks {
            if !state.group_acks.contains(ack) {
                return Err(format!("the group read receipt {ack:?} vanished"));
            }
        }
        self.group_acks.extend(state.group_acks.iter().cloned());
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
