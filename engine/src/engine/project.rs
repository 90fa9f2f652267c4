//! Projections: rewriting the rows of the entities a batch touched.
//!
//! Each batch rewrites the rows of the entities it touched from the
//! document, and tells the app what changed.

use std::collections::{BTreeMap, BTreeSet};

use tandem_storage::device::{ConversationFlags, DeviceTx, GroupRow};
use tandem_storage::StoreError;

use crate::doc::AccountDoc;
use crate::rules::{contact, conversation, group, thread, Entity};

/// What a merge changed, for a UI to refresh exactly that.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Changed {
    /// Conversation keys (`u:bob`, `g:team`…).
    pub conversations: Vec<String>,
    /// User ids whose contact entry changed (added, accepted, removed, remark).
    pub contacts: Vec<String>,
    /// User ids that went on or off the blocklist.
    pub blocklist: Vec<String>,
    /// Ids of groups whose row changed, including groups that are gone.
    pub groups: Vec<String>,
    /// Ids of threads whose row changed, including threads that are gone.
    pub threads: Vec<String>,
}

/// What the touched entities are, for the app to refresh.
pub(super) fn changed(touched: &BTreeSet<Entity>) -> Changed {
    let mut out = Changed::default();
    for entity in touched {
        match entity {
            Entity::Conversation(key) | Entity::ConversationLog(key) => {
                out.conversations.push(key.clone())
            }
            Entity::Contact(user) => out.contacts.push(user.clone()),
            Entity::Blocked(user) => out.blocklist.push(user.clone()),
            Entity::Group(group) => out.groups.push(group.clone()),
            Entity::Thread(thread) => out.threads.push(thread.clone()),
        }
    }
    // A conversation can be touched both ways: listed once, by key.
    out.conversations.sort();
    out.conversations.dedup();
    out
}

/// What a projection read from the document: the conversation flags and
/// the group rows of the touched entities, so the events of the same batch
/// need not read the document again.
#[derive(Default)]
pub(super) struct Projected {
    pub flags: BTreeMap<String, ConversationFlags>,
    /// `None` for a group that is gone.
    pub groups: BTreeMap<String, Option<GroupRow>>,
}

/// Projects the touched entities from the document into their rows, and
/// returns what it read.
pub(super) fn project(
    tx: &DeviceTx<'_>,
    doc: &AccountDoc,
    account: &str,
    touched: &BTreeSet<Entity>,
) -> Result<Projected, StoreError> {
    let mut flags = BTreeMap::new();
    let mut groups = BTreeMap::new();
    for entity in touched {
        match entity {
            Entity::Conversation(key) => {
                let read = conversation::flags(doc, key);
                tx.put_conversation_flags(key, &read, account)?;
                flags.insert(key.clone(), read);
            }
            // Its flags did not change: the last message and the unread
            // count are all there is to compute (a full projection of
            // every conversation a page's messages touched was a fifth
            // of a catch-up's merge time in B1's profile).
            Entity::ConversationLog(key) => {
                if !touched.contains(&Entity::Conversation(key.clone())) {
                    tx.refresh_conversation(key, account)?;
                }
            }
            Entity::Contact(user) => {
                tx.put_contact(user, contact::contact_row(doc, user).as_ref())?
            }
            Entity::Blocked(user) => {
                tx.put_blocked(user, contact::blocked_row(doc, user).as_ref())?
            }
            Entity::Group(id) => {
                let row = group::group_row(doc, id);
                tx.put_group(id, row.as_ref())?;
                groups.insert(id.clone(), row);
            }
            Entity::Thread(id) => tx.put_thread(id, thread::thread_row(doc, id).as_ref())?,
        }
    }
    Ok(Projected { flags, groups })
}
