//! Conversation operations: read markers, pins, marks, DND, deleting.
//!
//! Pins, pinned messages, marks and do-not-disturb modes are registers in
//! the document (`pinned[conversation]`, `pinned[conversation␟message]`,
//! `marks`, `dnd`). Read markers and clear points are maximum registers in
//! SQLite: a delta carries the markers its operation resolved on the origin
//! device, and every device merges them by `max`.

use std::collections::BTreeSet;

use automerge::transaction::{Transactable, Transaction};
use automerge::{AutomergeError, ObjId, ObjType, ReadDoc};
use serde::{Deserialize, Serialize};
use tandem_storage::device::{
    ConversationFlags, DeviceTx, DoNotDisturb, PinnedMessage, QuietTime, RemindType,
};
use tandem_storage::StoreError;

use super::{key, EditError, Entity, InvalidOp, Lookup};
use crate::delta::Delta;
use crate::doc::{bool_at, clear_flag, composite, i64_at, object_at, str_at, AccountDoc, Roots};
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
    /// Turn do-not-disturb on or off for a conversation: on is
    /// [`DoNotDisturb::SILENT`], off is [`DoNotDisturb::OFF`]. The engine
    /// only records the setting; keeping notifications quiet is up to the
    /// app. [`ConversationOp::SetDoNotDisturbMode`] sets the other modes.
    SetDoNotDisturb {
        /// The conversation to set it for.
        conversation: ConversationId,
        /// True to silence the conversation, false to let its notifications
        /// through again.
        enabled: bool,
    },
    // Variants are appended, never reordered: the wire numbers them.
    /// Pin a message in a conversation. The message must be known on this
    /// device and in that conversation; pinning it again keeps the first
    /// pin's time (and changes nothing).
    PinMessage {
        /// The conversation the message is in; naming another one fails with
        /// [`OpError::WrongConversation`](crate::OpError::WrongConversation).
        conversation: ConversationId,
        /// The message to pin; unknown here, it fails with
        /// [`OpError::UnknownMessage`](crate::OpError::UnknownMessage).
        message: MessageId,
    },
    /// Unpin a message; one that is not pinned changes nothing.
    UnpinMessage {
        /// The conversation the pin is in.
        conversation: ConversationId,
        /// The message to unpin.
        message: MessageId,
    },
    /// Set the conversation's do-not-disturb mode as the reference IM SDKs
    /// have it: which messages notify ([`RemindType`]), and an optional
    /// quiet time during which none do (until a time, or a daily window).
    /// One register: concurrent settings resolve to one of them whole.
    /// Whether it is in force is answered for the time the app passes
    /// ([`Engine::remind_type_at`](crate::Engine::remind_type_at)).
    SetDoNotDisturbMode {
        /// The conversation to set it for.
        conversation: ConversationId,
        /// The new mode; [`DoNotDisturb::OFF`] clears it. A daily quiet
        /// time's minutes are below 1440 and differ, its UTC offset at most
        /// 14 hours either way, or the operation is
        /// [`InvalidOp::BadQuietTime`].
        mode: DoNotDisturb,
    },
}

impl ConversationOp {
    pub(crate) fn validate(&self) -> Result<(), InvalidOp> {
        match self {
            ConversationOp::AddMark { mark, .. } | ConversationOp::RemoveMark { mark, .. } => {
                key("mark", mark)
            }
            ConversationOp::SetDoNotDisturbMode { mode, .. } => {
                match mode.quiet.and_then(|quiet| quiet.invalid()) {
                    Some(reason) => Err(InvalidOp::BadQuietTime { reason }),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn edit(
        &self,
        tx: &mut Transaction<'_>,
        roots: &Roots,
        now_ms: i64,
    ) -> Result<(), EditError> {
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
                enabled,
            } => {
                let mode = if *enabled {
                    DoNotDisturb::SILENT
                } else {
                    DoNotDisturb::OFF
                };
                put_do_not_disturb(tx, roots, &conversation.key(), mode)?;
            }
            ConversationOp::SetDoNotDisturbMode { conversation, mode } => {
                put_do_not_disturb(tx, roots, &conversation.key(), *mode)?;
            }
            ConversationOp::PinMessage {
                conversation,
                message,
            } => {
                let key = composite(&conversation.key(), message.as_str());
                if i64_at(tx, &roots.pinned, &key).is_none() {
                    tx.put(&roots.pinned, key, now_ms)?;
                }
            }
            ConversationOp::UnpinMessage {
                conversation,
                message,
            } => {
                let key = composite(&conversation.key(), message.as_str());
                if i64_at(tx, &roots.pinned, &key).is_some() {
                    tx.put(&roots.pinned, key, false)?;
                }
            }
        }
        Ok(())
    }

    /// The conversation the operation names; clearing all unread touches
    /// the conversations of its read markers instead.
    pub(crate) fn touched(&self) -> Vec<Entity> {
        match self {
            // Read state is not in the document.
            ConversationOp::MarkRead { conversation, .. }
            | ConversationOp::ClearUnread { conversation } => {
                vec![Entity::ConversationLog(conversation.key())]
            }
            ConversationOp::Pin { conversation }
            | ConversationOp::Unpin { conversation }
            | ConversationOp::Delete { conversation }
            | ConversationOp::AddMark { conversation, .. }
            | ConversationOp::RemoveMark { conversation, .. }
            | ConversationOp::SetDoNotDisturb { conversation, .. }
            | ConversationOp::PinMessage { conversation, .. }
            | ConversationOp::UnpinMessage { conversation, .. }
            | ConversationOp::SetDoNotDisturbMode { conversation, .. } => {
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
            ConversationOp::PinMessage {
                conversation,
                message,
            } => ConversationEvent::MessagePinned {
                conversation,
                message,
            },
            ConversationOp::UnpinMessage {
                conversation,
                message,
            } => ConversationEvent::MessageUnpinned {
                conversation,
                message,
            },
            ConversationOp::SetDoNotDisturbMode { conversation, mode } => {
                ConversationEvent::DoNotDisturbModeChanged {
                    conversation,
                    remind: mode.remind,
                    quiet: mode.quiet,
                }
            }
        }
    }
}

/// Writes a do-not-disturb mode, unless it is the one there. The two modes
/// earlier builds know are written as they wrote them (`true`, `false`),
/// so those builds still read them.
fn put_do_not_disturb(
    tx: &mut Transaction<'_>,
    roots: &Roots,
    conversation: &str,
    mode: DoNotDisturb,
) -> Result<(), AutomergeError> {
    use crate::doc::keys::dnd as k;
    if do_not_disturb_at(tx, &roots.dnd, conversation) == mode {
        return Ok(());
    }
    if mode == DoNotDisturb::SILENT {
        tx.put(&roots.dnd, conversation, true)?;
        return Ok(());
    }
    if mode == DoNotDisturb::OFF {
        tx.put(&roots.dnd, conversation, false)?;
        return Ok(());
    }
    let obj = tx.put_object(&roots.dnd, conversation, ObjType::Map)?;
    tx.put(&obj, k::REMIND, mode.remind.as_str())?;
    match mode.quiet {
        None => {}
        Some(QuietTime::Until { until_ms }) => tx.put(&obj, k::UNTIL_MS, until_ms)?,
        Some(QuietTime::Daily {
            start_minute,
            end_minute,
            utc_offset_minutes,
        }) => {
            tx.put(&obj, k::START_MINUTE, i64::from(start_minute))?;
            tx.put(&obj, k::END_MINUTE, i64::from(end_minute))?;
            tx.put(&obj, k::UTC_OFFSET_MINUTES, i64::from(utc_offset_minutes))?;
        }
    }
    Ok(())
}

/// The do-not-disturb mode at `dnd[conversation]`. A map this build cannot
/// read (a malformed change from another device) reads as off.
fn do_not_disturb_at(doc: &impl ReadDoc, dnd: &ObjId, conversation: &str) -> DoNotDisturb {
    use crate::doc::keys::dnd as k;
    if bool_at(doc, dnd, conversation) {
        return DoNotDisturb::SILENT;
    }
    let Some(obj) = object_at(doc, dnd, conversation) else {
        return DoNotDisturb::OFF;
    };
    let read = || -> Option<DoNotDisturb> {
        let remind = str_at(doc, &obj, k::REMIND)?.parse().ok()?;
        let int = |key| i64_at(doc, &obj, key);
        let quiet = match (int(k::UNTIL_MS), int(k::START_MINUTE)) {
            (Some(until_ms), _) => Some(QuietTime::Until { until_ms }),
            (None, Some(start)) => Some(QuietTime::Daily {
                start_minute: start.try_into().ok()?,
                end_minute: int(k::END_MINUTE)?.try_into().ok()?,
                utc_offset_minutes: int(k::UTC_OFFSET_MINUTES)?.try_into().ok()?,
            }),
            (None, None) => None,
        };
        if quiet.and_then(|q| q.invalid()).is_some() {
            return None;
        }
        Some(DoNotDisturb { remind, quiet })
    };
    read().unwrap_or(DoNotDisturb::OFF)
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
        touched.insert(Entity::ConversationLog(key));
    }
    if let super::Op::Conversation(ConversationOp::Delete { conversation }) = &delta.op {
        let key = conversation.key();
        moved |= tx.raise_cleared(&key, delta.made_at_ms)?;
        touched.insert(Entity::Conversation(key));
    }
    Ok(moved)
}

/// The conversation's pin, do-not-disturb mode, marks and pinned
/// messages, as the document has them.
pub(crate) fn flags(doc: &AccountDoc, conversation: &str) -> ConversationFlags {
    let r = doc.roots();
    let marks = doc
        .prefixed(&r.marks, conversation)
        .into_iter()
        .filter(|(_, key)| doc.bool_at(&r.marks, key))
        .map(|(suffix, _)| suffix)
        .collect();
    let pinned_messages = doc
        .prefixed(&r.pinned, conversation)
        .into_iter()
        .filter_map(|(message, key)| {
            Some(PinnedMessage {
                pinned_at_ms: doc.i64_at(&r.pinned, &key)?,
                message,
            })
        })
        .collect();
    ConversationFlags {
        pinned: doc.bool_at(&r.pinned, conversation),
        do_not_disturb: doc.read(|d| do_not_disturb_at(d, &r.dnd, conversation)),
        marks,
        pinned_messages,
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
    /// other state here after the merge (any mode but off counts as on).
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
    // Variants are appended, never reordered: the journal numbers them.
    /// The user pinned a message. Superseded if it is not pinned here after
    /// the merge.
    MessagePinned {
        /// The conversation.
        conversation: ConversationId,
        /// The pinned message.
        message: MessageId,
    },
    /// The user unpinned a message. Superseded if it is pinned here after
    /// the merge.
    MessageUnpinned {
        /// The conversation.
        conversation: ConversationId,
        /// The unpinned message.
        message: MessageId,
    },
    /// The user set the conversation's do-not-disturb mode to `remind` and
    /// `quiet` (the whole new mode: what it changed to). Superseded if the
    /// conversation has another mode here after the merge.
    DoNotDisturbModeChanged {
        /// The conversation.
        conversation: ConversationId,
        /// Which messages notify outside the quiet time.
        remind: RemindType,
        /// When nothing notifies; `None` for never.
        quiet: Option<QuietTime>,
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
            } => lookup.flags(conversation).do_not_disturb.is_set() != *enabled,
            ConversationEvent::MessagePinned {
                conversation,
                message,
            } => !is_pinned(&lookup.flags(conversation), message),
            ConversationEvent::MessageUnpinned {
                conversation,
                message,
            } => is_pinned(&lookup.flags(conversation), message),
            ConversationEvent::DoNotDisturbModeChanged {
                conversation,
                remind,
                quiet,
            } => {
                lookup.flags(conversation).do_not_disturb
                    != DoNotDisturb {
                        remind: *remind,
                        quiet: *quiet,
                    }
            }
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

fn is_pinned(flags: &ConversationFlags, message: &MessageId) -> bool {
    flags
        .pinned_messages
        .iter()
        .any(|p| p.message == message.as_str())
}
