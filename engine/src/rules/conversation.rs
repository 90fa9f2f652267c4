//! Conversation operations: read markers, pins, marks, DND, deleting.
//!
//! Pins, marks and do-not-disturb are registers in the document (`pinned`,
//! `marks`, `dnd`). Read markers and clear points are maximum registers in
//! SQLite: a delta carries the markers its operation resolved on the origin
//! device, and every device merges them by `max`.

use std::collections::BTreeSet;

use automerge::transaction::{Transactable, Transaction};
use serde::{Deserialize, Serialize};
use tandem_storage::device::{ConversationFlags, DeviceTx};
use tandem_storage::StoreError;

use super::{key, EditError, Entity, InvalidOp, Lookup};
use crate::delta::Delta;
use crate::doc::{clear_flag, composite, AccountDoc, Roots};
use crate::model::*;

/// Operations on conversations and read state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConversationOp {
    /// Move this device's read marker up to a message (never back).
    MarkRead {
        /// The conversation the message is in; naming another one fails with
        /// [`OpError::WrongConversation`](crate::OpError::WrongConversation).
        conversation: ConversationId,
        /// The newest message the user has read: the new read marker. It must
        /// be known on this device; a message older than this device's marker
        /// changes nothing.
        message: MessageId,
    },
    /// Mark everything in the conversation read.
    ClearUnread {
        /// The conversation whose read marker moves to its newest message; one
        /// without messages changes nothing.
        conversation: ConversationId,
    },
    /// Mark everything in every conversation read.
    ClearAllUnread,
    /// Pin a conversation: the conversation list shows pinned ones first.
    Pin {
        /// The conversation to pin; it need not have messages yet.
        conversation: ConversationId,
    },
    /// Unpin a conversation; unpinning one that is not pinned changes nothing.
    Unpin {
        /// The conversation to unpin.
        conversation: ConversationId,
    },
    /// Clear the conversation up to now and drop it from the list.
    Delete {
        /// The conversation to delete: the messages sent up to the operation's
        /// time (by this device's clock) are hidden and it is unpinned. A later
        /// message lists it again.
        conversation: ConversationId,
    },
    /// Set an app-defined mark (a label such as "important") on a
    /// conversation.
    AddMark {
        /// The conversation to mark.
        conversation: ConversationId,
        /// The mark: 1 to [`ID_BYTES_MAX`](crate::limits::ID_BYTES_MAX) bytes without control characters.
        mark: String,
    },
    /// Remove a mark from a conversation; removing one that is not set changes
    /// nothing.
    RemoveMark {
        /// The conversation to unmark.
        conversation: ConversationId,
        /// The mark: 1 to [`ID_BYTES_MAX`](crate::limits::ID_BYTES_MAX) bytes without control characters.
        mark: String,
    },
    /// Turn do-not-disturb on or off for a conversation. The engine only
    /// records the setting; keeping notifications quiet is up to the app.
    SetDoNotDisturb {
        /// The conversation to set it for.
        conversation: ConversationId,
        /// True to silence the conversation, false to let its notifications
        /// through again.
        enabled: bool,
    },
}

impl ConversationOp {
    pub(crate) fn validate(&self) -> Result<(), InvalidOp> {
        match self {
            ConversationOp::AddMark { mark, .. } | ConversationOp::RemoveMark { mark, .. } => {
                key("mark", mark)
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn edit(&self, tx: &mut Transaction<'_>, roots: &Roots) -> Result<(), EditError> {
        match self {
            // Read markers travel in the delta and merge in SQLite.
            ConversationOp::MarkRead { .. }
            | ConversationOp::ClearUnread { .. }
            | ConversationOp::ClearAllUnread => {}
            ConversationOp::Pin { conversation } => {
                tx.put(&roots.pinned, conversation.key(), true)?;
            }
            ConversationOp::Unpin { conversation } => {
                clear_flag(tx, &roots.pinned, &conversation.key())?;
            }
            ConversationOp::Delete { conversation } => {
                // The clear point is the delta's time, merged in SQLite; the
                // document only unpins.
                clear_flag(tx, &roots.pinned, &conversation.key())?;
            }
            ConversationOp::AddMark { conversation, mark } => {
                tx.put(&roots.marks, composite(&conversation.key(), mark), true)?;
            }
            ConversationOp::RemoveMark { conversation, mark } => {
                clear_flag(tx, &roots.marks, &composite(&conversation.key(), mark))?;
            }
            ConversationOp::SetDoNotDisturb {
                conversation,
                enabled: true,
            } => {
                tx.put(&roots.dnd, conversation.key(), true)?;
            }
            ConversationOp::SetDoNotDisturb {
                conversation,
                enabled: false,
            } => {
                clear_flag(tx, &roots.dnd, &conversation.key())?;
            }
        }
        Ok(())
    }

    /// The conversation the operation names; clearing all unread touches
    /// the conversations of its read markers instead.
    pub(crate) fn touched(&self) -> Vec<Entity> {
        match self {
            ConversationOp::MarkRead { conversation, .. }
            | ConversationOp::ClearUnread { conversation }
            | ConversationOp::Pin { conversation }
            | ConversationOp::Unpin { conversation }
            | ConversationOp::Delete { conversation }
            | ConversationOp::AddMark { conversation, .. }
            | ConversationOp::RemoveMark { conversation, .. }
            | ConversationOp::SetDoNotDisturb { conversation, .. } => {
                vec![Entity::Conversation(conversation.key())]
            }
            ConversationOp::ClearAllUnread => Vec::new(),
        }
    }

    /// The event the operation becomes on another device.
    pub(crate) fn event(&self) -> ConversationEvent {
        match self.clone() {
            ConversationOp::MarkRead {
                conversation,
                message,
            } => ConversationEvent::Read {
                conversation,
                message,
            },
            ConversationOp::ClearUnread { conversation } => {
                ConversationEvent::UnreadCleared { conversation }
            }
            ConversationOp::ClearAllUnread => ConversationEvent::AllUnreadCleared,
            ConversationOp::Pin { conversation } => ConversationEvent::Pinned { conversation },
            ConversationOp::Unpin { conversation } => ConversationEvent::Unpinned { conversation },
            ConversationOp::Delete { conversation } => ConversationEvent::Deleted { conversation },
            ConversationOp::AddMark { conversation, mark } => ConversationEvent::MarkChanged {
                conversation,
                mark,
                set: true,
            },
            ConversationOp::RemoveMark { conversation, mark } => ConversationEvent::MarkChanged {
                conversation,
                mark,
                set: false,
            },
            ConversationOp::SetDoNotDisturb {
                conversation,
                enabled,
            } => ConversationEvent::DoNotDisturbChanged {
                conversation,
                enabled,
            },
        }
    }
}

/// Raises the read markers a delta carries and, for a deleted
/// conversation, its clear point (the delta's time). Both are maximum
/// registers, so order and repetition do not matter. Returns whether any of
/// them moved.
pub(crate) fn marker_effects(
    tx: &DeviceTx<'_>,
    delta: &Delta,
    touched: &mut BTreeSet<Entity>,
) -> Result<bool, StoreError> {
    let mut moved = false;
    for marker in &delta.read_markers {
        let key = marker.conversation.key();
        moved |= tx.raise_read_marker(&key, marker.at_ms, marker.message.as_str())?;
        touched.insert(Entity::Conversation(key));
    }
    if let super::Op::Conversation(ConversationOp::Delete { conversation }) = &delta.op {
        let key = conversation.key();
        moved |= tx.raise_cleared(&key, delta.made_at_ms)?;
        touched.insert(Entity::Conversation(key));
    }
    Ok(moved)
}

/// The conversation's pin, do-not-disturb and marks, as the document has
/// them.
pub(crate) fn flags(doc: &AccountDoc, conversation: &str) -> ConversationFlags {
    let r = doc.roots();
    let marks = doc
        .prefixed(&r.marks, conversation)
        .into_iter()
        .filter(|(_, key)| doc.bool_at(&r.marks, key))
        .map(|(suffix, _)| suffix)
        .collect();
    ConversationFlags {
        pinned: doc.bool_at(&r.pinned, conversation),
        do_not_disturb: doc.bool_at(&r.dnd, conversation),
        marks,
    }
}

/// Conversation and read-state operations done on another device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConversationEvent {
    /// The user pinned the conversation. Superseded if it is not pinned here
    /// after the merge (a concurrent unpin or delete won).
    Pinned {
        /// The conversation.
        conversation: ConversationId,
    },
    /// The user unpinned the conversation. Superseded if it is pinned here
    /// after the merge.
    Unpinned {
        /// The conversation.
        conversation: ConversationId,
    },
    /// The user deleted the conversation: messages sent up to then are hidden
    /// and it is unpinned. Never superseded: clear points only move forward.
    Deleted {
        /// The conversation.
        conversation: ConversationId,
    },
    /// The user set or removed a mark. Superseded if the mark is in the other
    /// state here after the merge.
    MarkChanged {
        /// The conversation.
        conversation: ConversationId,
        /// The mark.
        mark: String,
        /// True when the mark was set, false when it was removed.
        set: bool,
    },
    /// The user turned do-not-disturb on or off. Superseded if it is in the
    /// other state here after the merge.
    DoNotDisturbChanged {
        /// The conversation.
        conversation: ConversationId,
        /// True when it was turned on, false when off.
        enabled: bool,
    },
    /// The user marked the conversation read up to its newest message, as that
    /// device knew it. Never superseded: what it cleared depends on what that
    /// device had.
    UnreadCleared {
        /// The conversation.
        conversation: ConversationId,
    },
    /// The user marked every conversation read, as that device knew them. Never
    /// superseded.
    AllUnreadCleared,
    /// That device's read marker moved up to `message`. Superseded if the
    /// effective marker (the furthest over all devices) is another message
    /// here after the merge, typically because a device read further.
    Read {
        /// The conversation.
        conversation: ConversationId,
        /// The message that is that device's new read marker.
        message: MessageId,
    },
}

impl ConversationEvent {
    /// Whether the state after the merge no longer shows the event's effect.
    /// Clears never are: what they cleared depends on what that device had.
    pub(crate) fn superseded(&self, lookup: &Lookup<'_>) -> bool {
        match self {
            ConversationEvent::Pinned { conversation } => !lookup.flags(conversation).pinned,
            ConversationEvent::Unpinned { conversation } => lookup.flags(conversation).pinned,
            ConversationEvent::MarkChanged {
                conversation,
                mark,
                set,
            } => lookup.flags(conversation).marks.contains(mark) != *set,
            ConversationEvent::DoNotDisturbChanged {
                conversation,
                enabled,
            } => lookup.flags(conversation).do_not_disturb != *enabled,
            ConversationEvent::Read {
                conversation,
                message,
            } => lookup
                .read_markers
                .get(&conversation.key())
                .is_none_or(|(_, read)| read != message.as_str()),
            ConversationEvent::Deleted { .. }
            | ConversationEvent::UnreadCleared { .. }
            | ConversationEvent::AllUnreadCleared => false,
        }
    }
}
