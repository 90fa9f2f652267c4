//! The local flow: performing one operation, in one transaction.
//!
//! The operation is validated, made on the document, and recorded for the
//! other devices, all in one transaction.

use std::collections::BTreeSet;

use tandem_storage::device::{DeviceTx, MessageView, MetaKey};
use tandem_storage::StoreError;

use super::project::project;
use super::{count_doc_changes, delta_row, loaded, Engine, OpError};
use crate::delta::{Delta, EncodedDelta, ReadMarker, DELTA_FORMAT};
use crate::doc::{DocError, Edit};
use crate::model::*;
use crate::op::*;
use crate::rules::{effects, EditError};
use crate::ContentId;

/// What a performed operation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Performed {
    /// The delta that records the operation for the other devices, or
    /// `None` when it changed nothing on this device (see
    /// [`Engine::perform`]): then nothing was written, no operation number
    /// was used, and no device will hear of it.
    pub recorded: Option<Recorded>,
    /// The new message's id, for a send.
    pub message_id: Option<MessageId>,
}

/// The delta a performed operation was recorded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The content id of the delta.
    pub content_id: ContentId,
    /// The operation's number on this device.
    pub origin_seq: u64,
}

impl Performed {
    /// The content id of the recording delta, if the operation was
    /// recorded.
    pub fn content_id(&self) -> Option<ContentId> {
        self.recorded.map(|r| r.content_id)
    }
}

/// Writes that commit in the transaction of a recorded operation.
pub(super) type AlsoWrite<'a> = &'a dyn Fn(&DeviceTx<'_>) -> Result<(), StoreError>;

impl Engine {
    /// Performs one local operation at `now_ms` and records it for the other
    /// devices.
    ///
    /// 1. The operation's limits are checked, then what it needs from the
    ///    message log is looked up (read markers travel in the delta).
    /// 2. The document makes at most one change, or refuses a broken
    ///    precondition.
    /// 3. One transaction writes the change, the message effects, the delta
    ///    (the outbox entry), the next operation number and the projections.
    ///    If it fails, the in-memory document is reloaded from the store.
    ///
    /// An operation that changes nothing here is not recorded
    /// ([`Performed::recorded`] is `None`): no delta, no operation number,
    /// no event on any device. That is an operation whose state is already
    /// what it asks for: unpinning what is not pinned, an older read mark,
    /// declining a friend, a receipt at or below the recorded one,
    /// ingesting a message this device has. "Changes nothing" is exact: the
    /// document made no change, no message is new, and no flag, read marker
    /// or clear point moved.
    pub fn perform(&mut self, now_ms: i64, op: Op) -> Result<Performed, OpError> {
        self.record(now_ms, op, None)
    }

    /// [`Engine::perform`], with `also`: writes that commit in the same
    /// transaction as the operation, also when the operation changed
    /// nothing and is not recorded (the key that a Link operation
    /// announces, for one).
    pub(super) fn record(
        &mut self,
        now_ms: i64,
        op: Op,
        also: Option<AlsoWrite<'_>>,
    ) -> Result<Performed, OpError> {
        op.validate()?;
        let read_markers = self.resolve(&op)?;
        let me = self.device.account.as_str().to_owned();
        let edit = self
            .doc_mut()?
            .edit(now_ms, |tx, roots| op.edit(tx, roots, &me, now_ms))
            .map_err(|e| match e {
                EditError::Refused(r) => OpError::Refused(r),
                EditError::Automerge(e) => OpError::Doc(DocError::Automerge(e)),
            })?;
        let origin_seq = self.next_origin_seq;
        let delta = Delta {
            format: DELTA_FORMAT,
            account: self.device.account.clone(),
            origin: self.device.device_id,
            origin_seq,
            made_at_ms: now_ms,
            op,
            change: match edit {
                Edit::Unchanged => None,
                Edit::Changed(bytes) => Some(bytes),
            },
            read_markers,
        };
        let encoded = delta.encode();
        // Pair assertion: what this device records, every device accepts.
        debug_assert!(
            Delta::decode(&encoded.0, &self.device.account).is_ok_and(|(d, _)| d == delta),
            "a local delta does not decode back"
        );
        let content_id = encoded.content_id();
        let recorded = match self.commit_local(&delta, &encoded, also) {
            Ok(recorded) => recorded,
            Err(error) => {
                // The document already holds the change; the store does not.
                // Reload so the two agree again.
                self.reload_doc();
                return Err(error);
            }
        };
        if !recorded {
            return Ok(Performed {
                recorded: None,
                message_id: None,
            });
        }
        self.next_origin_seq += 1;
        let message_id = match &delta.op {
            Op::Message(MessageOp::Send { .. }) => Some(delta.sent_message_id()),
            _ => None,
        };
        Ok(Performed {
            recorded: Some(Recorded {
                content_id,
                origin_seq,
            }),
            message_id,
        })
    }

    /// Writes the operation and `also` in one transaction; returns false
    /// (and writes only `also`) when the operation changed nothing.
    fn commit_local(
        &mut self,
        delta: &Delta,
        encoded: &EncodedDelta,
        also: Option<AlsoWrite<'_>>,
    ) -> Result<bool, OpError> {
        let account = self.device.account.as_str();
        let doc = loaded(&self.doc, &self.store, &self.device)?;
        let tx = self.store.transaction()?;
        let mut touched = BTreeSet::new();
        if let Some(change) = &delta.change {
            tx.append_doc_change(change)?;
            count_doc_changes(&tx, doc, 1)?;
        }
        let log_changed = effects(&tx, delta, account, &mut touched)?;
        if delta.change.is_none() && !log_changed {
            // Dropping the transaction rolls back the rows the effects
            // looked at (a conversation row made to hold a marker that
            // did not move).
            drop(tx);
            if let Some(also) = also {
                let tx = self.store.transaction()?;
                also(&tx)?;
                tx.commit()?;
            }
            return Ok(false);
        }
        tx.insert_delta(&delta_row(delta, encoded, true))?;
        // The stored counter and this one agree (one engine per store):
        // the delta takes the next number, and the one after is stored.
        let stored = tx.meta_u64(MetaKey::NextOriginSeq)?;
        if stored != Some(delta.origin_seq) {
            return Err(StoreError::Corrupt(format!(
                "next_origin_seq is {stored:?} in the store, {} in memory",
                delta.origin_seq
            ))
            .into());
        }
        tx.set_meta_u64(MetaKey::NextOriginSeq, delta.origin_seq + 1)?;
        project(&tx, doc, account, &touched)?;
        if let Some(also) = also {
            also(&tx)?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// Looks up what the operation needs from the message log, and checks
    /// that the messages it names exist.
    fn resolve(&self, op: &Op) -> Result<Vec<ReadMarker>, OpError> {
        let mut markers = Vec::new();
        let mut marker = |key: String, at_ms: i64, id: String| -> Result<(), OpError> {
            markers.push(ReadMarker {
                conversation: key.parse().map_err(|e| {
                    StoreError::Corrupt(format!("stored conversation id {key:?}: {e}"))
                })?,
                at_ms,
                message: MessageId::new(id.clone())
                    .map_err(|e| StoreError::Corrupt(format!("stored message id {id:?}: {e}")))?,
            });
            Ok(())
        };
        match op {
            Op::Message(op) => {
                for message in op.named_messages() {
                    self.known_message(message)?;
                }
            }
            Op::Conversation(ConversationOp::MarkRead {
                conversation,
                message,
            }) => {
                let view = self.known_message(message)?;
                if view.conversation != conversation.key() {
                    return Err(OpError::WrongConversation {
                        message: message.clone(),
                        conversation: conversation.clone(),
                    });
                }
                marker(view.conversation, view.sent_at_ms, view.id)?;
            }
            Op::Conversation(ConversationOp::PinMessage {
                conversation,
                message,
            }) => {
                let view = self.known_message(message)?;
                if view.conversation != conversation.key() {
                    return Err(OpError::WrongConversation {
                        message: message.clone(),
                        conversation: conversation.clone(),
                    });
                }
            }
            Op::Conversation(ConversationOp::ClearUnread { conversation }) => {
                let key = conversation.key();
                if let Some((at, id)) = self.store.latest_message(&key)? {
                    marker(key, at, id)?;
                }
            }
            Op::Conversation(ConversationOp::ClearAllUnread) => {
                for key in self.store.unread_conversations()? {
                    if let Some((at, id)) = self.store.latest_message(&key)? {
                        marker(key, at, id)?;
                    }
                }
            }
            _ => {}
        }
        Ok(markers)
    }

    fn known_message(&self, id: &MessageId) -> Result<MessageView, OpError> {
        self.store
            .message(id.as_str())?
            .ok_or_else(|| OpError::UnknownMessage(id.clone()))
    }
}
