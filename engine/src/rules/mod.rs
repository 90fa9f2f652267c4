//! What operations mean: one file per category, and what they share.
//!
//! This file holds what the categories share: the [`Op`] enum, its limits,
//! refusals, the entities an operation touches, and the dispatch to each
//! category.
//!
//! Each category's file (`message`, `conversation`, `contact`, `group`,
//! `thread`, `device`) holds everything about its operations: the op enum and its
//! validation, its document edit, the entities it touches and how they are
//! projected into rows, the event it becomes on another device and when
//! that event is superseded. Adding an operation means adding it there (and
//! to the CLI and the tests' table of every operation).

use std::collections::{BTreeMap, BTreeSet};

use automerge::transaction::Transaction;
use automerge::AutomergeError;
use serde::{Deserialize, Serialize};
use tandem_storage::device::{ConversationFlags, DeviceTx, GroupRow, RosterRow};
use tandem_storage::StoreError;

use crate::delta::Delta;
use crate::doc::{AccountDoc, Roots};
use crate::limits::ID_BYTES_MAX;
use crate::model::*;

pub(crate) mod contact;
pub(crate) mod conversation;
pub(crate) mod device;
pub(crate) mod group;
pub(crate) mod message;
pub(crate) mod thread;

use contact::ContactOp;
use conversation::ConversationOp;
use device::DeviceOp;
use group::GroupOp;
use message::MessageOp;
use thread::ThreadOp;

/// One user operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Op {
    /// Sending, ingesting, recalling, hiding and acknowledging messages:
    /// effects on the message log, not on the account document.
    Message(MessageOp),
    /// Read markers, pins, marks, do-not-disturb and deleting conversations.
    Conversation(ConversationOp),
    /// Contact requests, contacts and the blocklist.
    Contact(ContactOp),
    /// Groups as this account takes part in them: membership, roles, mutes,
    /// info.
    Group(GroupOp),
    /// Threads inside groups that this account takes part in.
    Thread(ThreadOp),
    /// The account's roster: the devices linked to it and their keys. Made
    /// by the engine when it links a device.
    Device(DeviceOp),
}

impl Op {
    /// Checks every size and count limit. Called on local operations before
    /// anything is written, and on remote ones before they are merged.
    pub fn validate(&self) -> Result<(), InvalidOp> {
        match self {
            Op::Message(op) => op.validate(),
            Op::Conversation(op) => op.validate(),
            Op::Contact(op) => op.validate(),
            Op::Group(op) => op.validate(),
            Op::Thread(op) => op.validate(),
            Op::Device(op) => op.validate(),
        }
    }

    /// Makes the operation's edit of the document inside `tx`; `me` is this
    /// account's user id.
    pub(crate) fn edit(
        &self,
        tx: &mut Transaction<'_>,
        roots: &Roots,
        me: &str,
        now_ms: i64,
    ) -> Result<(), EditError> {
        match self {
            // Messages live in the message log and the roster in its own
            // table, not in the document.
            Op::Message(_) | Op::Device(_) => Ok(()),
            Op::Conversation(op) => op.edit(tx, roots, now_ms),
            Op::Contact(op) => op.edit(tx, roots, now_ms),
            Op::Group(op) => op.edit(tx, roots, me, now_ms),
            Op::Thread(op) => op.edit(tx, roots, me),
        }
    }

    /// The free-form `ext` the app attached to the operation, if any.
    pub fn ext(&self) -> Option<&str> {
        match self {
            Op::Contact(op) => op.ext(),
            _ => None,
        }
    }

    /// The document entities the operation touches, to be projected again.
    /// (Conversations touched through the message log or read markers are
    /// added by [`effects`].)
    pub(crate) fn touched(&self) -> Vec<Entity> {
        match self {
            Op::Message(_) | Op::Device(_) => Vec::new(),
            Op::Conversation(op) => op.touched(),
            Op::Contact(op) => op.touched(),
            Op::Group(op) => op.touched(),
            Op::Thread(op) => op.touched(),
        }
    }
}

/// Writes what a performed or merged delta does besides its document
/// change: its effects on the message log and the read markers it carries,
/// noting every entity touched. All of it merges monotonically, so order and
/// repetition do not matter. Returns whether any of it changed what was
/// stored (a message new here, a flag or marker that moved): with no
/// document change either, a local operation changed nothing.
pub(crate) fn effects(
    tx: &DeviceTx<'_>,
    delta: &Delta,
    account: &str,
    touched: &mut BTreeSet<Entity>,
) -> Result<bool, StoreError> {
    let mut changed = false;
    match &delta.op {
        Op::Message(op) => changed |= op.effects(tx, delta, account, touched)?,
        Op::Device(op) => changed |= op.effects(tx, delta)?,
        _ => {}
    }
    changed |= conversation::marker_effects(tx, delta, touched)?;
    touched.extend(delta.op.touched());
    Ok(changed)
}

/// Why an operation's content breaks a limit. Ids were checked when they
/// were made; this checks sizes and counts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidOp {
    /// A text field is longer than its limit.
    #[error("{field} is {len} bytes, over the limit of {max}")]
    TextTooLong {
        /// The field, as named in the operation (`body`, `name`, `remark`…).
        field: &'static str,
        /// The field's length, in bytes.
        len: usize,
        /// The field's limit, in bytes.
        max: usize,
    },
    /// A list is longer than its limit.
    #[error("{field} names {len} entries, over the limit of {max}")]
    TooMany {
        /// The list, as named in the operation (`users`, `messages`,
        /// `attributes`…).
        field: &'static str,
        /// How many entries the list has.
        len: usize,
        /// How many entries the list may have.
        max: usize,
    },
    /// A list that must name something is empty.
    #[error("{field} is empty")]
    Empty {
        /// The list, as named in the operation.
        field: &'static str,
    },
    /// A mark or attribute key that is empty, too long or has control
    /// characters.
    #[error("{field} must be 1 to {ID_BYTES_MAX} bytes without control characters")]
    BadKey {
        /// Which key: `mark`, or `attribute key` for a member attribute.
        field: &'static str,
    },
    /// A [`ContactOp::WithExt`](crate::op::ContactOp::WithExt) around
    /// another one.
    #[error("an operation with an ext cannot hold another one")]
    NestedExt,
    /// A do-not-disturb quiet time no device accepts: a daily window's
    /// minutes at or above 1440 or equal, or a UTC offset over 14 hours.
    #[error("{reason}")]
    BadQuietTime {
        /// What is wrong with it, in words.
        reason: &'static str,
    },
}

/// Checks a text field's length.
pub(crate) fn text(field: &'static str, value: &str, max: usize) -> Result<(), InvalidOp> {
    if value.len() > max {
        return Err(InvalidOp::TextTooLong {
            field,
            len: value.len(),
            max,
        });
    }
    Ok(())
}

/// Checks a mark or attribute key.
pub(crate) fn key(field: &'static str, value: &str) -> Result<(), InvalidOp> {
    if value.is_empty() || value.len() > ID_BYTES_MAX || value.chars().any(char::is_control) {
        return Err(InvalidOp::BadKey { field });
    }
    Ok(())
}

/// Checks that a list names 1 to `max` entries.
pub(crate) fn list<T>(field: &'static str, items: &[T], max: usize) -> Result<(), InvalidOp> {
    if items.is_empty() {
        return Err(InvalidOp::Empty { field });
    }
    if items.len() > max {
        return Err(InvalidOp::TooMany {
            field,
            len: items.len(),
            max,
        });
    }
    Ok(())
}

/// A precondition of a local operation that the current state breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// Removing or setting the remark of a user who has no contact entry, in
    /// any status.
    #[error("{0} is not a contact")]
    NoSuchContact(UserId),
    /// A contact request to a user who is a friend already.
    #[error("{0} is already a contact")]
    AlreadyContact(UserId),
    /// Unblocking a user who is not on the blocklist.
    #[error("{0} is not blocked")]
    NotBlocked(UserId),
    /// The operation needs a group this account does not know: never joined,
    /// left, or dissolved.
    #[error("group {0} is not known on this device")]
    NoSuchGroup(GroupId),
    /// Creating or applying to a group this account knows already, or joining
    /// one it is a member of.
    #[error("group {0} already exists")]
    GroupExists(GroupId),
    /// The operation needs a member of the group: a new owner, or a user whose
    /// attributes are set.
    #[error("{user} is not a member of group {group}")]
    NotAMember {
        /// The group.
        group: GroupId,
        /// The user who is not a member of it.
        user: UserId,
    },
    /// The operation needs a thread this account does not take part in.
    #[error("thread {0} is not known on this device")]
    NoSuchThread(ThreadId),
    /// Creating or joining a thread this account takes part in already.
    #[error("thread {0} already exists")]
    ThreadExists(ThreadId),
}

/// Why a category's document edit failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EditError {
    /// The current state does not allow the operation.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// automerge failed to make the change.
    #[error(transparent)]
    Automerge(#[from] AutomergeError),
}

/// What an operation touched, to be projected again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Entity {
    /// A conversation whose flags in the document may have changed: its
    /// whole row is projected again.
    Conversation(String),
    /// A conversation whose message log or read state changed, not its
    /// flags: only its last message and unread count are computed again
    /// (messages and markers are not in the document).
    ConversationLog(String),
    Contact(String),
    Blocked(String),
    Group(String),
    Thread(String),
}

/// What "superseded" compares against: the merged document, the
/// conversation flags the merge just projected, the read markers after the
/// merge, and the roster entries of the devices the batch linked.
pub(crate) struct Lookup<'a> {
    pub doc: &'a AccountDoc,
    pub flags: &'a BTreeMap<String, ConversationFlags>,
    pub read_markers: &'a BTreeMap<String, (i64, String)>,
    pub roster: &'a BTreeMap<[u8; 16], RosterRow>,
    /// The group rows the merge just projected (`None`: gone).
    pub groups: &'a BTreeMap<String, Option<GroupRow>>,
}

impl Lookup<'_> {
    /// A group's row after the merge: the one just projected, else read
    /// from the document.
    pub fn group(&self, id: &str) -> Option<std::borrow::Cow<'_, GroupRow>> {
        match self.groups.get(id) {
            Some(row) => row.as_ref().map(std::borrow::Cow::Borrowed),
            None => group::group_row(self.doc, id).map(std::borrow::Cow::Owned),
        }
    }

    /// A conversation's flags after the merge.
    pub fn flags(&self, conversation: &ConversationId) -> ConversationFlags {
        let key = conversation.key();
        match self.flags.get(&key) {
            Some(flags) => flags.clone(),
            None => conversation::flags(self.doc, &key),
        }
    }
}
