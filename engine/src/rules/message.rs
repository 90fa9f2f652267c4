//! Message operations: sending, ingesting, recalling, hiding, receipts
//! (the other party's, and group members' read receipts).
//!
//! They act on the message log rather than the document.
//!
//! Their effects merge monotonically (a grow-only set of messages, flags
//! that only turn on, receipts that only rise, a grow-only set of group
//! read receipts), so their events are never superseded.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tandem_storage::device::{DeviceTx, FlagsUpdate, MessageRecord, Receipt};
use tandem_storage::StoreError;

use super::{list, text, Entity, InvalidOp};
use crate::delta::Delta;
use crate::limits::*;
use crate::model::*;

/// Operations on the message log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MessageOp {
    /// Send a message. Its id is derived from the device and the operation's
    /// number, its time is the operation's time.
    Send {
        /// Where the message goes; the conversation need not be listed yet.
        conversation: ConversationId,
        /// The message text, at most [`MESSAGE_BODY_BYTES_MAX`] bytes.
        body: String,
    },
    /// Store a message that arrived from the IM service; idempotent by id.
    Ingest {
        /// The message as the IM service delivered it; its body is at most
        /// [`MESSAGE_BODY_BYTES_MAX`] bytes.
        message: IncomingMessage,
    },
    /// Recall a message: a tombstone, once recalled always recalled.
    Recall {
        /// The message to recall, sent by anyone; it must be known on this
        /// device, or the operation fails with
        /// [`OpError::UnknownMessage`](crate::OpError::UnknownMessage).
        message: MessageId,
    },
    /// Hide messages on every device of this account.
    DeleteForMe {
        /// The messages to hide, 1 to [`MESSAGES_PER_OP_MAX`]; each must be
        /// known on this device, or the operation fails with
        /// [`OpError::UnknownMessage`](crate::OpError::UnknownMessage).
        messages: Vec<MessageId>,
    },
    /// The other party's delivery or read receipt.
    Receipt {
        /// The message the receipt is for; it must be known on this device, or
        /// the operation fails with
        /// [`OpError::UnknownMessage`](crate::OpError::UnknownMessage).
        message: MessageId,
        /// Delivered or read. A receipt at or below the one already recorded
        /// changes nothing.
        receipt: PeerReceipt,
    },
    // Variants are appended, never reordered: the wire numbers them.
    /// A group read receipt (the reference SDKs' group message ack): a
    /// member of a group read a message, as the IM service reported it.
    /// Receipts are a grow-only set, and a member who read a message read
    /// every earlier one of the conversation too, so a member's read mark
    /// only rises ([`Engine::group_read_by`](crate::Engine::group_read_by)).
    GroupRead {
        /// The message read; it must be known on this device, or the
        /// operation fails with
        /// [`OpError::UnknownMessage`](crate::OpError::UnknownMessage).
        message: MessageId,
        /// The member who read it. The same receipt again changes nothing.
        member: UserId,
    },
}

impl MessageOp {
    pub(crate) fn validate(&self) -> Result<(), InvalidOp> {
        match self {
            MessageOp::Send { body, .. } => text("body", body, MESSAGE_BODY_BYTES_MAX),
            MessageOp::Ingest { message } => text("body", &message.body, MESSAGE_BODY_BYTES_MAX),
            MessageOp::Recall { .. } | MessageOp::Receipt { .. } | MessageOp::GroupRead { .. } => {
                Ok(())
            }
            MessageOp::DeleteForMe { messages } => list("messages", messages, MESSAGES_PER_OP_MAX),
        }
    }

    /// The messages the operation names, which must be known on the device
    /// that performs it.
    pub(crate) fn named_messages(&self) -> &[MessageId] {
        match self {
            MessageOp::Recall { message }
            | MessageOp::Receipt { message, .. }
            | MessageOp::GroupRead { message, .. } => std::slice::from_ref(message),
            MessageOp::DeleteForMe { messages } => messages,
            MessageOp::Send { .. } | MessageOp::Ingest { .. } => &[],
        }
    }

    /// Writes the operation's effects on the message log, noting the
    /// conversations they touch; returns whether the log changed. `delta`
    /// is the operation's delta (a sent message takes its id and time from
    /// it); `account` is this account's user id, the sender of a sent
    /// message.
    pub(crate) fn effects(
        &self,
        tx: &DeviceTx<'_>,
        delta: &Delta,
        account: &str,
        touched: &mut BTreeSet<Entity>,
    ) -> Result<bool, StoreError> {
        let mut flag = |id: &MessageId, update: FlagsUpdate| -> Result<bool, StoreError> {
            let moved = tx.merge_message_flags(id.as_str(), update)?;
            if let Some(conversation) = tx.message_conversation(id.as_str())? {
                touched.insert(Entity::ConversationLog(conversation));
            }
            Ok(moved)
        };
        let changed = match self {
            MessageOp::Send { conversation, body } => {
                let new = tx.insert_message(&MessageRecord {
                    id: delta.sent_message_id().into(),
                    conversation: conversation.key(),
                    sender: account.to_owned(),
                    sent_at_ms: delta.made_at_ms,
                    body: body.clone(),
                })?;
                touched.insert(Entity::ConversationLog(conversation.key()));
                new
            }
            MessageOp::Ingest { message } => {
                let new = tx.insert_message(&MessageRecord {
                    id: message.id.as_str().to_owned(),
                    conversation: message.conversation.key(),
                    sender: message.sender.as_str().to_owned(),
                    sent_at_ms: message.sent_at_ms,
                    body: message.body.clone(),
                })?;
                touched.insert(Entity::ConversationLog(message.conversation.key()));
                new
            }
            MessageOp::Recall { message } => flag(
                message,
                FlagsUpdate {
                    recalled: true,
                    ..Default::default()
                },
            )?,
            MessageOp::DeleteForMe { messages } => {
                let mut any = false;
                for message in messages {
                    any |= flag(
                        message,
                        FlagsUpdate {
                            deleted: true,
                            ..Default::default()
                        },
                    )?;
                }
                any
            }
            MessageOp::Receipt { message, receipt } => flag(
                message,
                FlagsUpdate {
                    receipt: Receipt::from(*receipt),
                    ..Default::default()
                },
            )?,
            MessageOp::GroupRead { message, member } => {
                tx.add_group_ack(message.as_str(), member.as_str())?
            }
        };
        Ok(changed)
    }

    /// The event the operation becomes on another device; `delta` is its
    /// delta (a sent message's id comes from it).
    pub(crate) fn event(&self, delta: &Delta) -> MessageEvent {
        match self {
            MessageOp::Send { conversation, .. } => MessageEvent::Sent {
                message: delta.sent_message_id(),
                conversation: conversation.clone(),
            },
            MessageOp::Ingest { message } => MessageEvent::Received {
                message: message.id.clone(),
                conversation: message.conversation.clone(),
                sender: message.sender.clone(),
            },
            MessageOp::Recall { message } => MessageEvent::Recalled {
                message: message.clone(),
            },
            MessageOp::DeleteForMe { messages } => MessageEvent::DeletedForMe {
                messages: messages.clone(),
            },
            MessageOp::Receipt { message, receipt } => MessageEvent::ReceiptUpdated {
                message: message.clone(),
                receipt: *receipt,
            },
            MessageOp::GroupRead { message, member } => MessageEvent::GroupRead {
                message: message.clone(),
                member: member.clone(),
            },
        }
    }
}

/// Message operations done on another device, and payloads addressed to
/// this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MessageEvent {
    /// The user sent a message from another device.
    Sent {
        /// The id the engine gave the message: the sending device in hex, a
        /// dot, and the operation's number there.
        message: MessageId,
        /// Where the message went.
        conversation: ConversationId,
    },
    /// A message from someone else arrived on another device.
    Received {
        /// The message's id, as the IM service gave it.
        message: MessageId,
        /// The conversation the message is in.
        conversation: ConversationId,
        /// Who sent it.
        sender: UserId,
    },
    /// The user recalled a message. Never superseded: once recalled, always
    /// recalled.
    Recalled {
        /// The recalled message; it may not have reached this device yet, and
        /// is shown recalled when it does.
        message: MessageId,
    },
    /// The user hid messages for this account. Never superseded.
    DeletedForMe {
        /// The hidden messages.
        messages: Vec<MessageId>,
    },
    /// A delivery or read receipt from the other party was recorded there.
    /// Never superseded.
    ReceiptUpdated {
        /// The message the receipt is for.
        message: MessageId,
        /// The receipt recorded there. A message shows the highest receipt any
        /// device recorded.
        receipt: PeerReceipt,
    },
    /// Another device sent this one a payload (the event's source device).
    /// Journaled once per sender and id, when the relay delivered it.
    PayloadReceived {
        /// The payload's id, 32 lowercase hex characters (16 bytes): the
        /// `PayloadId` the sender's `send_to_device` returned.
        id: String,
        /// The payload's bytes, as lowercase hex (two characters a byte).
        payload: String,
    },
    // Variants are appended, never reordered: the journal numbers them.
    /// A group read receipt was recorded there: `member` read `message`.
    /// Never superseded.
    GroupRead {
        /// The message read.
        message: MessageId,
        /// The member who read it.
        member: UserId,
    },
}

impl MessageEvent {
    /// Never: messages merge monotonically, so what a message operation did
    /// always shows.
    pub(crate) fn superseded(&self) -> bool {
        false
    }
}
