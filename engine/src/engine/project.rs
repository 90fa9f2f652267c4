//! What a delta writes besides its document change: message-log effects,
//! read markers, and the projection of every entity it touched.

use std::collections::{BTreeMap, BTreeSet};

use tandem_storage::device::{ConversationFlags, DeviceTx, FlagsUpdate, MessageRecord, Receipt};
use tandem_storage::StoreError;

use crate::delta::Delta;
use crate::doc::AccountDoc;
use crate::model::*;
use crate::op::*;

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

/// What an operation touched, to be projected again.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Entity {
    Conversation(String),
    Contact(String),
    Blocked(String),
    Group(String),
    Thread(String),
}

/// Writes an operation's effects on the message log. They merge
/// monotonically (grow-only set, flags that only turn on, receipts that only
/// rise), so order and repetition do not matter.
pub(super) fn message_effects(
    tx: &DeviceTx<'_>,
    delta: &Delta,
    account: &str,
    touched: &mut BTreeSet<Entity>,
) -> Result<(), StoreError> {
    let Op::Message(op) = &delta.op else {
        return Ok(());
    };
    let mut flag = |id: &MessageId, update: FlagsUpdate| -> Result<(), StoreError> {
        tx.merge_message_flags(id.as_str(), update)?;
        if let Some(conversation) = tx.message_conversation(id.as_str())? {
            touched.insert(Entity::Conversation(conversation));
        }
        Ok(())
    };
    match op {
        MessageOp::Send { conversation, body } => {
            tx.insert_message(&MessageRecord {
                id: delta.sent_message_id().into(),
                conversation: conversation.key(),
                sender: account.to_owned(),
                sent_at_ms: delta.made_at_ms,
                body: body.clone(),
            })?;
            touched.insert(Entity::Conversation(conversation.key()));
        }
        MessageOp::Ingest { message } => {
            tx.insert_message(&MessageRecord {
                id: message.id.as_str().to_owned(),
                conversation: message.conversation.key(),
                sender: message.sender.as_str().to_owned(),
                sent_at_ms: message.sent_at_ms,
                body: message.body.clone(),
            })?;
            touched.insert(Entity::Conversation(message.conversation.key()));
        }
        MessageOp::Recall { message } => flag(
            message,
            FlagsUpdate {
                recalled: true,
                ..Default::default()
            },
        )?,
        MessageOp::DeleteForMe { messages } => {
            for message in messages {
                flag(
                    message,
                    FlagsUpdate {
                        deleted: true,
                        ..Default::default()
                    },
                )?;
            }
        }
        MessageOp::Receipt { message, receipt } => flag(
            message,
            FlagsUpdate {
                receipt: Receipt::from(*receipt),
                ..Default::default()
            },
        )?,
    }
    Ok(())
}

/// The document entities an operation touches.
pub(super) fn touched_by(op: &Op) -> Vec<Entity> {
    let conversation = |c: &ConversationId| vec![Entity::Conversation(c.key())];
    match op {
        Op::Message(_) => Vec::new(),
        Op::Conversation(op) => match op {
            ConversationOp::MarkRead {
                conversation: c, ..
            }
            | ConversationOp::ClearUnread { conversation: c }
            | ConversationOp::Pin { conversation: c }
            | ConversationOp::Unpin { conversation: c }
            | ConversationOp::Delete { conversation: c }
            | ConversationOp::AddMark {
                conversation: c, ..
            }
            | ConversationOp::RemoveMark {
                conversation: c, ..
            }
            | ConversationOp::SetDoNotDisturb {
                conversation: c, ..
            } => conversation(c),
            // The conversations it touches are its read markers'.
            ConversationOp::ClearAllUnread => Vec::new(),
        },
        Op::Contact(op) => match op {
            ContactOp::Block { user } | ContactOp::Unblock { user } => {
                vec![Entity::Blocked(user.as_str().to_owned())]
            }
            ContactOp::Add { user, .. }
            | ContactOp::Accept { user }
            | ContactOp::Decline { user }
            | ContactOp::Remove { user }
            | ContactOp::SetRemark { user, .. }
            | ContactOp::ReceiveRequest { user, .. } => {
                vec![Entity::Contact(user.as_str().to_owned())]
            }
        },
        Op::Group(op) => vec![Entity::Group(group_of(op).as_str().to_owned())],
        Op::Thread(op) => vec![Entity::Thread(thread_of(op).as_str().to_owned())],
    }
}

pub(crate) fn group_of(op: &GroupOp) -> &GroupId {
    match op {
        GroupOp::Create { group, .. }
        | GroupOp::Destroy { group }
        | GroupOp::Join { group }
        | GroupOp::Leave { group }
        | GroupOp::Apply { group, .. }
        | GroupOp::AcceptApplication { group, .. }
        | GroupOp::DeclineApplication { group, .. }
        | GroupOp::Invite { group, .. }
        | GroupOp::AcceptInvitation { group, .. }
        | GroupOp::DeclineInvitation { group, .. }
        | GroupOp::Kick { group, .. }
        | GroupOp::Ban { group, .. }
        | GroupOp::Allow { group, .. }
        | GroupOp::BlockMessages { group }
        | GroupOp::UnblockMessages { group }
        | GroupOp::TransferOwner { group, .. }
        | GroupOp::AddAdmin { group, .. }
        | GroupOp::RemoveAdmin { group, .. }
        | GroupOp::Mute { group, .. }
        | GroupOp::Unmute { group, .. }
        | GroupOp::AddAllowList { group, .. }
        | GroupOp::RemoveAllowList { group, .. }
        | GroupOp::MuteAll { group }
        | GroupOp::UnmuteAll { group }
        | GroupOp::UpdateInfo { group, .. }
        | GroupOp::SetMemberAttributes { group, .. } => group,
    }
}

pub(crate) fn thread_of(op: &ThreadOp) -> &ThreadId {
    match op {
        ThreadOp::Create { thread, .. }
        | ThreadOp::Destroy { thread }
        | ThreadOp::Join { thread, .. }
        | ThreadOp::Leave { thread }
        | ThreadOp::Update { thread, .. }
        | ThreadOp::Kick { thread, .. } => thread,
    }
}

/// What the touched entities are, for the app to refresh.
pub(super) fn changed(touched: &BTreeSet<Entity>) -> Changed {
    let mut out = Changed::default();
    for entity in touched {
        match entity {
            Entity::Conversation(key) => out.conversations.push(key.clone()),
            Entity::Contact(user) => out.contacts.push(user.clone()),
            Entity::Blocked(user) => out.blocklist.push(user.clone()),
            Entity::Group(group) => out.groups.push(group.clone()),
            Entity::Thread(thread) => out.threads.push(thread.clone()),
        }
    }
    out
}

/// Projects the touched entities from the document into their rows, and
/// returns the conversation flags it read, so the events of the same batch
/// need not read the document again.
pub(super) fn project(
    tx: &DeviceTx<'_>,
    doc: &AccountDoc,
    account: &str,
    touched: &BTreeSet<Entity>,
) -> Result<BTreeMap<String, ConversationFlags>, StoreError> {
    let mut flags = BTreeMap::new();
    for entity in touched {
        match entity {
            Entity::Conversation(key) => {
                let read = doc.conversation_flags(key);
                tx.put_conversation_flags(key, &read, account)?;
                flags.insert(key.clone(), read);
            }
            Entity::Contact(user) => tx.put_contact(user, doc.contact(user).as_ref())?,
            Entity::Blocked(user) => tx.put_blocked(user, doc.blocked(user).as_ref())?,
            Entity::Group(group) => tx.put_group(group, doc.group(group).as_ref())?,
            Entity::Thread(thread) => tx.put_thread(thread, doc.thread(thread).as_ref())?,
        }
    }
    Ok(flags)
}

/// Raises the read markers a delta carries and, for a deleted
/// conversation, its clear point (the delta's time). Both are maximum
/// registers, so order and repetition do not matter.
pub(super) fn marker_effects(
    tx: &DeviceTx<'_>,
    delta: &Delta,
    touched: &mut BTreeSet<Entity>,
) -> Result<(), StoreError> {
    for marker in &delta.read_markers {
        let key = marker.conversation.key();
        tx.raise_read_marker(&key, marker.at_ms, marker.message.as_str())?;
        touched.insert(Entity::Conversation(key));
    }
    if let Op::Conversation(ConversationOp::Delete { conversation }) = &delta.op {
        let key = conversation.key();
        tx.raise_cleared(&key, delta.made_at_ms)?;
        touched.insert(Entity::Conversation(key));
    }
    Ok(())
}
