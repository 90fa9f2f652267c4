//! Operations as the bindings see them: one enum per category, mirroring `tandem_engine::op`.
//!
//! Each variant has the engine variant's name and fields, with ids as
//! strings (see `ids.rs`). [`Op::into_engine`] validates the ids and builds
//! the engine's [`tandem_engine::op::Op`]; the limits (sizes, counts) are
//! checked by the engine itself when the operation is performed. The
//! conversion back ([`Op::from_engine`]) is total over the variants this
//! build knows; the tests check it against the engine's table of every
//! operation kind.

use tandem_engine::model as m;
use tandem_engine::op as e;

use crate::ids::{self, BadId};
use crate::model::DoNotDisturb;

/// One user operation, by category.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum Op {
    /// Sending, ingesting, recalling, hiding and acknowledging messages.
    Message { op: MessageOp },
    /// Read markers, pins, marks, do-not-disturb and deleting conversations.
    Conversation { op: ConversationOp },
    /// Contact requests, contacts and the blocklist.
    Contact { op: ContactOp },
    /// A contact operation with the app's free-form `ext` (at most 4 KiB),
    /// which the other devices' event carries (`Event.ext`). The engine's
    /// `ContactOp::WithExt`; it cannot nest, so here it is its own variant.
    ContactWithExt { op: ContactOp, ext: String },
    /// Groups as this account takes part in them.
    Group { op: GroupOp },
    /// Threads inside groups that this account takes part in.
    Thread { op: ThreadOp },
}

/// Operations on the message log.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum MessageOp {
    /// Send a message; the engine gives it an id (returned in `Performed`).
    Send {
        /// `u:<user>`, `g:<group>`, `t:<thread>` or `r:<room>`.
        conversation: String,
        /// The text, at most 64 KiB.
        body: String,
    },
    /// Store a message that arrived from the IM service; idempotent by id.
    Ingest { message: IncomingMessage },
    /// Recall a message known on this device.
    Recall { message: String },
    /// Hide messages (1 to 500, each known here) on every device of the account.
    DeleteForMe { messages: Vec<String> },
    /// The other party's delivery or read receipt for a message known here.
    Receipt {
        message: String,
        receipt: PeerReceipt,
    },
    /// A group member's read receipt for a group message known here (the
    /// IM service's group message ack); it covers every earlier message of
    /// the conversation too.
    GroupRead { message: String, member: String },
}

/// A message as it arrives from the IM service.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct IncomingMessage {
    /// The message's id as the service gave it.
    pub id: String,
    /// `u:<user>`, `g:<group>`, `t:<thread>` or `r:<room>`.
    pub conversation: String,
    /// Who sent it; the account itself never counts as unread.
    pub sender: String,
    /// When it was sent, in ms since the Unix epoch (the service's clock).
    pub sent_at_ms: i64,
    /// The text, at most 64 KiB.
    pub body: String,
}

/// A receipt from the other party; receipts only move forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PeerReceipt {
    /// The message reached the other party.
    Delivered,
    /// The other party read it.
    Read,
}

/// Operations on conversations and read state.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ConversationOp {
    /// Move this device's read marker up to a message of the conversation.
    MarkRead {
        conversation: String,
        message: String,
    },
    /// Mark everything in the conversation read.
    ClearUnread { conversation: String },
    /// Mark everything in every conversation read.
    ClearAllUnread,
    /// Pin a conversation (listed first).
    Pin { conversation: String },
    /// Unpin a conversation.
    Unpin { conversation: String },
    /// Clear the conversation up to now and drop it from the list.
    Delete { conversation: String },
    /// Set an app-defined mark on a conversation.
    AddMark { conversation: String, mark: String },
    /// Remove a mark from a conversation.
    RemoveMark { conversation: String, mark: String },
    /// Turn do-not-disturb on (silent) or off.
    SetDoNotDisturb { conversation: String, enabled: bool },
    /// Pin a message known here, in its conversation.
    PinMessage {
        conversation: String,
        message: String,
    },
    /// Unpin a message.
    UnpinMessage {
        conversation: String,
        message: String,
    },
    /// Set the do-not-disturb mode: which messages notify and an optional
    /// quiet time (`RemindType.Unknown` is refused as an invalid value).
    SetDoNotDisturbMode {
        conversation: String,
        mode: DoNotDisturb,
    },
}

/// Operations on contacts and the blocklist.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ContactOp {
    /// Send a contact request.
    Add { user: String, greeting: String },
    /// Accept a contact request from `user`.
    Accept { user: String },
    /// Decline a contact request from `user`.
    Decline { user: String },
    /// Remove a contact entry in any status.
    Remove { user: String },
    /// Put a user on the blocklist.
    Block { user: String },
    /// Take a user off the blocklist.
    Unblock { user: String },
    /// Set the remark (nickname) of a contact; empty clears it.
    SetRemark { user: String, remark: String },
    /// Record a contact request `user` sent this account.
    ReceiveRequest { user: String, greeting: String },
}

/// Fields of a group's info; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, uniffi::Record)]
pub struct GroupInfoUpdate {
    #[uniffi(default)]
    pub name: Option<String>,
    #[uniffi(default)]
    pub description: Option<String>,
    #[uniffi(default)]
    pub announcement: Option<String>,
}

/// One member attribute: a key and its value.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AttributeEntry {
    pub key: String,
    pub value: String,
}

/// Operations on groups.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum GroupOp {
    /// Record a group the user created, with its first members.
    Create {
        group: String,
        name: String,
        members: Vec<String>,
    },
    /// Record that the user dissolved the group.
    Destroy { group: String },
    /// Record that the user joined a group.
    Join { group: String },
    /// Record that the user left a group.
    Leave { group: String },
    /// Record that the user applied to join a group.
    Apply { group: String, reason: String },
    /// Accept `user`'s application.
    AcceptApplication { group: String, user: String },
    /// Decline `user`'s application.
    DeclineApplication {
        group: String,
        user: String,
        reason: String,
    },
    /// Invite users.
    Invite { group: String, users: Vec<String> },
    /// Accept `inviter`'s invitation.
    AcceptInvitation { group: String, inviter: String },
    /// Decline `inviter`'s invitation.
    DeclineInvitation {
        group: String,
        inviter: String,
        reason: String,
    },
    /// Remove members.
    Kick { group: String, users: Vec<String> },
    /// Ban users.
    Ban { group: String, users: Vec<String> },
    /// Lift bans.
    Allow { group: String, users: Vec<String> },
    /// Stop the group's messages reaching this account.
    BlockMessages { group: String },
    /// Let the group's messages through again.
    UnblockMessages { group: String },
    /// Hand the group to another member.
    TransferOwner { group: String, new_owner: String },
    /// Make a member an admin.
    AddAdmin { group: String, user: String },
    /// Take a member's admin role away.
    RemoveAdmin { group: String, user: String },
    /// Mute members until a time (ms since the Unix epoch).
    Mute {
        group: String,
        users: Vec<String>,
        until_ms: i64,
    },
    /// Unmute members.
    Unmute { group: String, users: Vec<String> },
    /// Add users to the allow list.
    AddAllowList { group: String, users: Vec<String> },
    /// Take users off the allow list.
    RemoveAllowList { group: String, users: Vec<String> },
    /// Mute everyone.
    MuteAll { group: String },
    /// Unmute everyone.
    UnmuteAll { group: String },
    /// Change the group's name, description or announcement.
    UpdateInfo {
        group: String,
        update: GroupInfoUpdate,
    },
    /// Set attributes of a member.
    SetMemberAttributes {
        group: String,
        user: String,
        attributes: Vec<AttributeEntry>,
    },
    /// Record an invitation to a group from `inviter`, as the IM service
    /// delivered it (standing `Invited` until answered).
    ReceiveInvitation { group: String, inviter: String },
    /// Record that a user this account invited accepted.
    InviteeAccepted { group: String, user: String },
    /// Record that a user this account invited declined.
    InviteeDeclined {
        group: String,
        user: String,
        reason: String,
    },
    /// Record a user's application to join, to be accepted or declined.
    ReceiveApplication {
        group: String,
        user: String,
        reason: String,
    },
    /// Remove attribute keys of a member.
    RemoveMemberAttributes {
        group: String,
        user: String,
        keys: Vec<String>,
    },
    /// Record that the IM service disabled the group.
    Disable { group: String },
    /// Record that the IM service enabled the group again.
    Enable { group: String },
}

/// Operations on threads.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ThreadOp {
    /// Record a thread the user created in a group.
    Create {
        thread: String,
        group: String,
        name: String,
    },
    /// Record that the user dissolved the thread.
    Destroy { thread: String },
    /// Record that the user joined a thread.
    Join { thread: String, group: String },
    /// Record that the user left the thread.
    Leave { thread: String },
    /// Rename the thread.
    Update { thread: String, name: String },
    /// Remove members from the thread.
    Kick { thread: String, users: Vec<String> },
}

impl Op {
    /// The engine's operation, with every id validated.
    pub(crate) fn into_engine(self) -> Result<e::Op, BadId> {
        Ok(match self {
            Op::Message { op } => e::Op::Message(op.into_engine()?),
            Op::Conversation { op } => e::Op::Conversation(op.into_engine()?),
            Op::Contact { op } => e::Op::Contact(op.into_engine()?),
            Op::ContactWithExt { op, ext } => e::Op::Contact(op.into_engine()?.with_ext(ext)),
            Op::Group { op } => e::Op::Group(op.into_engine()?),
            Op::Thread { op } => e::Op::Thread(op.into_engine()?),
        })
    }

    /// The bindings' form of an engine operation, for the tests; `None`
    /// for a variant this build of the bindings does not know (the engine's
    /// enums are non-exhaustive).
    #[cfg(test)]
    pub(crate) fn from_engine(op: &e::Op) -> Option<Op> {
        Some(match op {
            e::Op::Message(op) => Op::Message {
                op: MessageOp::from_engine(op)?,
            },
            e::Op::Conversation(op) => Op::Conversation {
                op: ConversationOp::from_engine(op)?,
            },
            e::Op::Contact(e::ContactOp::WithExt { op, ext }) => Op::ContactWithExt {
                op: ContactOp::from_engine(op)?,
                ext: ext.clone(),
            },
            e::Op::Contact(op) => Op::Contact {
                op: ContactOp::from_engine(op)?,
            },
            e::Op::Group(op) => Op::Group {
                op: GroupOp::from_engine(op)?,
            },
            e::Op::Thread(op) => Op::Thread {
                op: ThreadOp::from_engine(op)?,
            },
            _ => return None,
        })
    }
}

/// An id's text.
#[cfg(test)]
fn s<T: ToString + ?Sized>(value: &T) -> String {
    value.to_string()
}

#[cfg(test)]
fn strings<T: ToString>(values: &[T]) -> Vec<String> {
    values.iter().map(ToString::to_string).collect()
}

impl MessageOp {
    fn into_engine(self) -> Result<e::MessageOp, BadId> {
        Ok(match self {
            MessageOp::Send { conversation, body } => e::MessageOp::Send {
                conversation: ids::conversation(&conversation)?,
                body,
            },
            MessageOp::Ingest { message } => e::MessageOp::Ingest {
                message: m::IncomingMessage {
                    id: ids::message(&message.id)?,
                    conversation: ids::conversation(&message.conversation)?,
                    sender: ids::user(&message.sender)?,
                    sent_at_ms: message.sent_at_ms,
                    body: message.body,
                },
            },
            MessageOp::Recall { message } => e::MessageOp::Recall {
                message: ids::message(&message)?,
            },
            MessageOp::DeleteForMe { messages } => e::MessageOp::DeleteForMe {
                messages: ids::messages(&messages)?,
            },
            MessageOp::Receipt { message, receipt } => e::MessageOp::Receipt {
                message: ids::message(&message)?,
                receipt: receipt.into(),
            },
            MessageOp::GroupRead { message, member } => e::MessageOp::GroupRead {
                message: ids::message(&message)?,
                member: ids::user(&member)?,
            },
        })
    }

    #[cfg(test)]
    fn from_engine(op: &e::MessageOp) -> Option<MessageOp> {
        Some(match op {
            e::MessageOp::Send { conversation, body } => MessageOp::Send {
                conversation: conversation.to_string(),
                body: body.clone(),
            },
            e::MessageOp::Ingest { message } => MessageOp::Ingest {
                message: IncomingMessage {
                    id: message.id.to_string(),
                    conversation: message.conversation.to_string(),
                    sender: message.sender.to_string(),
                    sent_at_ms: message.sent_at_ms,
                    body: message.body.clone(),
                },
            },
            e::MessageOp::Recall { message } => MessageOp::Recall {
                message: message.to_string(),
            },
            e::MessageOp::DeleteForMe { messages } => MessageOp::DeleteForMe {
                messages: strings(messages),
            },
            e::MessageOp::Receipt { message, receipt } => MessageOp::Receipt {
                message: message.to_string(),
                receipt: (*receipt).into(),
            },
            e::MessageOp::GroupRead { message, member } => MessageOp::GroupRead {
                message: message.to_string(),
                member: member.to_string(),
            },
            _ => return None,
        })
    }
}

impl From<PeerReceipt> for m::PeerReceipt {
    fn from(value: PeerReceipt) -> Self {
        match value {
            PeerReceipt::Delivered => m::PeerReceipt::Delivered,
            PeerReceipt::Read => m::PeerReceipt::Read,
        }
    }
}

impl From<m::PeerReceipt> for PeerReceipt {
    fn from(value: m::PeerReceipt) -> Self {
        match value {
            m::PeerReceipt::Delivered => PeerReceipt::Delivered,
            m::PeerReceipt::Read => PeerReceipt::Read,
        }
    }
}

impl ConversationOp {
    fn into_engine(self) -> Result<e::ConversationOp, BadId> {
        use ids::conversation as c;
        Ok(match self {
            ConversationOp::MarkRead {
                conversation,
                message,
            } => e::ConversationOp::MarkRead {
                conversation: c(&conversation)?,
                message: ids::message(&message)?,
            },
            ConversationOp::ClearUnread { conversation } => e::ConversationOp::ClearUnread {
                conversation: c(&conversation)?,
            },
            ConversationOp::ClearAllUnread => e::ConversationOp::ClearAllUnread,
            ConversationOp::Pin { conversation } => e::ConversationOp::Pin {
                conversation: c(&conversation)?,
            },
            ConversationOp::Unpin { conversation } => e::ConversationOp::Unpin {
                conversation: c(&conversation)?,
            },
            ConversationOp::Delete { conversation } => e::ConversationOp::Delete {
                conversation: c(&conversation)?,
            },
            ConversationOp::AddMark { conversation, mark } => e::ConversationOp::AddMark {
                conversation: c(&conversation)?,
                mark,
            },
            ConversationOp::RemoveMark { conversation, mark } => e::ConversationOp::RemoveMark {
                conversation: c(&conversation)?,
                mark,
            },
            ConversationOp::SetDoNotDisturb {
                conversation,
                enabled,
            } => e::ConversationOp::SetDoNotDisturb {
                conversation: c(&conversation)?,
                enabled,
            },
            ConversationOp::PinMessage {
                conversation,
                message,
            } => e::ConversationOp::PinMessage {
                conversation: c(&conversation)?,
                message: ids::message(&message)?,
            },
            ConversationOp::UnpinMessage {
                conversation,
                message,
            } => e::ConversationOp::UnpinMessage {
                conversation: c(&conversation)?,
                message: ids::message(&message)?,
            },
            ConversationOp::SetDoNotDisturbMode { conversation, mode } => {
                e::ConversationOp::SetDoNotDisturbMode {
                    conversation: c(&conversation)?,
                    mode: mode.into_engine().ok_or_else(|| BadId {
                        kind: "a remind type",
                        value: "Unknown".into(),
                        details: "RemindType.Unknown stands for a remind type this build \
                                  does not know; it cannot be set"
                            .into(),
                    })?,
                }
            }
        })
    }

    #[cfg(test)]
    fn from_engine(op: &e::ConversationOp) -> Option<ConversationOp> {
        Some(match op {
            e::ConversationOp::MarkRead {
                conversation,
                message,
            } => ConversationOp::MarkRead {
                conversation: conversation.to_string(),
                message: message.to_string(),
            },
            e::ConversationOp::ClearUnread { conversation } => ConversationOp::ClearUnread {
                conversation: conversation.to_string(),
            },
            e::ConversationOp::ClearAllUnread => ConversationOp::ClearAllUnread,
            e::ConversationOp::Pin { conversation } => ConversationOp::Pin {
                conversation: conversation.to_string(),
            },
            e::ConversationOp::Unpin { conversation } => ConversationOp::Unpin {
                conversation: conversation.to_string(),
            },
            e::ConversationOp::Delete { conversation } => ConversationOp::Delete {
                conversation: conversation.to_string(),
            },
            e::ConversationOp::AddMark { conversation, mark } => ConversationOp::AddMark {
                conversation: conversation.to_string(),
                mark: mark.clone(),
            },
            e::ConversationOp::RemoveMark { conversation, mark } => ConversationOp::RemoveMark {
                conversation: conversation.to_string(),
                mark: mark.clone(),
            },
            e::ConversationOp::SetDoNotDisturb {
                conversation,
                enabled,
            } => ConversationOp::SetDoNotDisturb {
                conversation: conversation.to_string(),
                enabled: *enabled,
            },
            e::ConversationOp::PinMessage {
                conversation,
                message,
            } => ConversationOp::PinMessage {
                conversation: conversation.to_string(),
                message: message.to_string(),
            },
            e::ConversationOp::UnpinMessage {
                conversation,
                message,
            } => ConversationOp::UnpinMessage {
                conversation: conversation.to_string(),
                message: message.to_string(),
            },
            e::ConversationOp::SetDoNotDisturbMode { conversation, mode } => {
                ConversationOp::SetDoNotDisturbMode {
                    conversation: conversation.to_string(),
                    mode: (*mode).into(),
                }
            }
            _ => return None,
        })
    }
}

impl ContactOp {
    fn into_engine(self) -> Result<e::ContactOp, BadId> {
        use ids::user as u;
        Ok(match self {
            ContactOp::Add { user, greeting } => e::ContactOp::Add {
                user: u(&user)?,
                greeting,
            },
            ContactOp::Accept { user } => e::ContactOp::Accept { user: u(&user)? },
            ContactOp::Decline { user } => e::ContactOp::Decline { user: u(&user)? },
            ContactOp::Remove { user } => e::ContactOp::Remove { user: u(&user)? },
            ContactOp::Block { user } => e::ContactOp::Block { user: u(&user)? },
            ContactOp::Unblock { user } => e::ContactOp::Unblock { user: u(&user)? },
            ContactOp::SetRemark { user, remark } => e::ContactOp::SetRemark {
                user: u(&user)?,
                remark,
            },
            ContactOp::ReceiveRequest { user, greeting } => e::ContactOp::ReceiveRequest {
                user: u(&user)?,
                greeting,
            },
        })
    }

    #[cfg(test)]
    fn from_engine(op: &e::ContactOp) -> Option<ContactOp> {
        Some(match op {
            e::ContactOp::Add { user, greeting } => ContactOp::Add {
                user: user.to_string(),
                greeting: greeting.clone(),
            },
            e::ContactOp::Accept { user } => ContactOp::Accept {
                user: user.to_string(),
            },
            e::ContactOp::Decline { user } => ContactOp::Decline {
                user: user.to_string(),
            },
            e::ContactOp::Remove { user } => ContactOp::Remove {
                user: user.to_string(),
            },
            e::ContactOp::Block { user } => ContactOp::Block {
                user: user.to_string(),
            },
            e::ContactOp::Unblock { user } => ContactOp::Unblock {
                user: user.to_string(),
            },
            e::ContactOp::SetRemark { user, remark } => ContactOp::SetRemark {
                user: user.to_string(),
                remark: remark.clone(),
            },
            e::ContactOp::ReceiveRequest { user, greeting } => ContactOp::ReceiveRequest {
                user: user.to_string(),
                greeting: greeting.clone(),
            },
            _ => return None,
        })
    }
}

impl From<GroupInfoUpdate> for e::GroupInfoUpdate {
    fn from(value: GroupInfoUpdate) -> Self {
        e::GroupInfoUpdate {
            name: value.name,
            description: value.description,
            announcement: value.announcement,
        }
    }
}

impl From<&e::GroupInfoUpdate> for GroupInfoUpdate {
    fn from(value: &e::GroupInfoUpdate) -> Self {
        GroupInfoUpdate {
            name: value.name.clone(),
            description: value.description.clone(),
            announcement: value.announcement.clone(),
        }
    }
}

pub(crate) fn attributes_to_engine(entries: Vec<AttributeEntry>) -> Vec<(String, String)> {
    entries.into_iter().map(|a| (a.key, a.value)).collect()
}

pub(crate) fn attributes_from_engine(pairs: &[(String, String)]) -> Vec<AttributeEntry> {
    pairs
        .iter()
        .map(|(key, value)| AttributeEntry {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

impl GroupOp {
    fn into_engine(self) -> Result<e::GroupOp, BadId> {
        use ids::{group as g, user as u, users as us};
        Ok(match self {
            GroupOp::Create {
                group,
                name,
                members,
            } => e::GroupOp::Create {
                group: g(&group)?,
                name,
                members: us(&members)?,
            },
            GroupOp::Destroy { group } => e::GroupOp::Destroy { group: g(&group)? },
            GroupOp::Join { group } => e::GroupOp::Join { group: g(&group)? },
            GroupOp::Leave { group } => e::GroupOp::Leave { group: g(&group)? },
            GroupOp::Apply { group, reason } => e::GroupOp::Apply {
                group: g(&group)?,
                reason,
            },
            GroupOp::AcceptApplication { group, user } => e::GroupOp::AcceptApplication {
                group: g(&group)?,
                user: u(&user)?,
            },
            GroupOp::DeclineApplication {
                group,
                user,
                reason,
            } => e::GroupOp::DeclineApplication {
                group: g(&group)?,
                user: u(&user)?,
                reason,
            },
            GroupOp::Invite { group, users } => e::GroupOp::Invite {
                group: g(&group)?,
                users: us(&users)?,
            },
            GroupOp::AcceptInvitation { group, inviter } => e::GroupOp::AcceptInvitation {
                group: g(&group)?,
                inviter: u(&inviter)?,
            },
            GroupOp::DeclineInvitation {
                group,
                inviter,
                reason,
            } => e::GroupOp::DeclineInvitation {
                group: g(&group)?,
                inviter: u(&inviter)?,
                reason,
            },
            GroupOp::Kick { group, users } => e::GroupOp::Kick {
                group: g(&group)?,
                users: us(&users)?,
            },
            GroupOp::Ban { group, users } => e::GroupOp::Ban {
                group: g(&group)?,
                users: us(&users)?,
            },
            GroupOp::Allow { group, users } => e::GroupOp::Allow {
                group: g(&group)?,
                users: us(&users)?,
            },
            GroupOp::BlockMessages { group } => e::GroupOp::BlockMessages { group: g(&group)? },
            GroupOp::UnblockMessages { group } => e::GroupOp::UnblockMessages { group: g(&group)? },
            GroupOp::TransferOwner { group, new_owner } => e::GroupOp::TransferOwner {
                group: g(&group)?,
                new_owner: u(&new_owner)?,
            },
            GroupOp::AddAdmin { group, user } => e::GroupOp::AddAdmin {
                group: g(&group)?,
                user: u(&user)?,
            },
            GroupOp::RemoveAdmin { group, user } => e::GroupOp::RemoveAdmin {
                group: g(&group)?,
                user: u(&user)?,
            },
            GroupOp::Mute {
                group,
                users,
                until_ms,
            } => e::GroupOp::Mute {
                group: g(&group)?,
                users: us(&users)?,
                until_ms,
            },
            GroupOp::Unmute { group, users } => e::GroupOp::Unmute {
                group: g(&group)?,
                users: us(&users)?,
            },
            GroupOp::AddAllowList { group, users } => e::GroupOp::AddAllowList {
                group: g(&group)?,
                users: us(&users)?,
            },
            GroupOp::RemoveAllowList { group, users } => e::GroupOp::RemoveAllowList {
                group: g(&group)?,
                users: us(&users)?,
            },
            GroupOp::MuteAll { group } => e::GroupOp::MuteAll { group: g(&group)? },
            GroupOp::UnmuteAll { group } => e::GroupOp::UnmuteAll { group: g(&group)? },
            GroupOp::UpdateInfo { group, update } => e::GroupOp::UpdateInfo {
                group: g(&group)?,
                update: update.into(),
            },
            GroupOp::SetMemberAttributes {
                group,
                user,
                attributes,
            } => e::GroupOp::SetMemberAttributes {
                group: g(&group)?,
                user: u(&user)?,
                attributes: attributes_to_engine(attributes),
            },
            GroupOp::ReceiveInvitation { group, inviter } => e::GroupOp::ReceiveInvitation {
                group: g(&group)?,
                inviter: u(&inviter)?,
            },
            GroupOp::InviteeAccepted { group, user } => e::GroupOp::InviteeAccepted {
                group: g(&group)?,
                user: u(&user)?,
            },
            GroupOp::InviteeDeclined {
                group,
                user,
                reason,
            } => e::GroupOp::InviteeDeclined {
                group: g(&group)?,
                user: u(&user)?,
                reason,
            },
            GroupOp::ReceiveApplication {
                group,
                user,
                reason,
            } => e::GroupOp::ReceiveApplication {
                group: g(&group)?,
                user: u(&user)?,
                reason,
            },
            GroupOp::RemoveMemberAttributes { group, user, keys } => {
                e::GroupOp::RemoveMemberAttributes {
                    group: g(&group)?,
                    user: u(&user)?,
                    keys,
                }
            }
            GroupOp::Disable { group } => e::GroupOp::Disable { group: g(&group)? },
            GroupOp::Enable { group } => e::GroupOp::Enable { group: g(&group)? },
        })
    }

    #[cfg(test)]
    fn from_engine(op: &e::GroupOp) -> Option<GroupOp> {
        Some(match op {
            e::GroupOp::Create {
                group,
                name,
                members,
            } => GroupOp::Create {
                group: s(group),
                name: name.clone(),
                members: strings(members),
            },
            e::GroupOp::Destroy { group } => GroupOp::Destroy { group: s(group) },
            e::GroupOp::Join { group } => GroupOp::Join { group: s(group) },
            e::GroupOp::Leave { group } => GroupOp::Leave { group: s(group) },
            e::GroupOp::Apply { group, reason } => GroupOp::Apply {
                group: s(group),
                reason: reason.clone(),
            },
            e::GroupOp::AcceptApplication { group, user } => GroupOp::AcceptApplication {
                group: s(group),
                user: s(user),
            },
            e::GroupOp::DeclineApplication {
                group,
                user,
                reason,
            } => GroupOp::DeclineApplication {
                group: s(group),
                user: s(user),
                reason: reason.clone(),
            },
            e::GroupOp::Invite { group, users } => GroupOp::Invite {
                group: s(group),
                users: strings(users),
            },
            e::GroupOp::AcceptInvitation { group, inviter } => GroupOp::AcceptInvitation {
                group: s(group),
                inviter: s(inviter),
            },
            e::GroupOp::DeclineInvitation {
                group,
                inviter,
                reason,
            } => GroupOp::DeclineInvitation {
                group: s(group),
                inviter: s(inviter),
                reason: reason.clone(),
            },
            e::GroupOp::Kick { group, users } => GroupOp::Kick {
                group: s(group),
                users: strings(users),
            },
            e::GroupOp::Ban { group, users } => GroupOp::Ban {
                group: s(group),
                users: strings(users),
            },
            e::GroupOp::Allow { group, users } => GroupOp::Allow {
                group: s(group),
                users: strings(users),
            },
            e::GroupOp::BlockMessages { group } => GroupOp::BlockMessages { group: s(group) },
            e::GroupOp::UnblockMessages { group } => GroupOp::UnblockMessages { group: s(group) },
            e::GroupOp::TransferOwner { group, new_owner } => GroupOp::TransferOwner {
                group: s(group),
                new_owner: s(new_owner),
            },
            e::GroupOp::AddAdmin { group, user } => GroupOp::AddAdmin {
                group: s(group),
                user: s(user),
            },
            e::GroupOp::RemoveAdmin { group, user } => GroupOp::RemoveAdmin {
                group: s(group),
                user: s(user),
            },
            e::GroupOp::Mute {
                group,
                users,
                until_ms,
            } => GroupOp::Mute {
                group: s(group),
                users: strings(users),
                until_ms: *until_ms,
            },
            e::GroupOp::Unmute { group, users } => GroupOp::Unmute {
                group: s(group),
                users: strings(users),
            },
            e::GroupOp::AddAllowList { group, users } => GroupOp::AddAllowList {
                group: s(group),
                users: strings(users),
            },
            e::GroupOp::RemoveAllowList { group, users } => GroupOp::RemoveAllowList {
                group: s(group),
                users: strings(users),
            },
            e::GroupOp::MuteAll { group } => GroupOp::MuteAll { group: s(group) },
            e::GroupOp::UnmuteAll { group } => GroupOp::UnmuteAll { group: s(group) },
            e::GroupOp::UpdateInfo { group, update } => GroupOp::UpdateInfo {
                group: s(group),
                update: update.into(),
            },
            e::GroupOp::SetMemberAttributes {
                group,
                user,
                attributes,
            } => GroupOp::SetMemberAttributes {
                group: s(group),
                user: s(user),
                attributes: attributes_from_engine(attributes),
            },
            e::GroupOp::ReceiveInvitation { group, inviter } => GroupOp::ReceiveInvitation {
                group: s(group),
                inviter: s(inviter),
            },
            e::GroupOp::InviteeAccepted { group, user } => GroupOp::InviteeAccepted {
                group: s(group),
                user: s(user),
            },
            e::GroupOp::InviteeDeclined {
                group,
                user,
                reason,
            } => GroupOp::InviteeDeclined {
                group: s(group),
                user: s(user),
                reason: reason.clone(),
            },
            e::GroupOp::ReceiveApplication {
                group,
                user,
                reason,
            } => GroupOp::ReceiveApplication {
                group: s(group),
                user: s(user),
                reason: reason.clone(),
            },
            e::GroupOp::RemoveMemberAttributes { group, user, keys } => {
                GroupOp::RemoveMemberAttributes {
                    group: s(group),
                    user: s(user),
                    keys: keys.clone(),
                }
            }
            e::GroupOp::Disable { group } => GroupOp::Disable { group: s(group) },
            e::GroupOp::Enable { group } => GroupOp::Enable { group: s(group) },
            _ => return None,
        })
    }
}

impl ThreadOp {
    fn into_engine(self) -> Result<e::ThreadOp, BadId> {
        use ids::{group as g, thread as t, users as us};
        Ok(match self {
            ThreadOp::Create {
                thread,
                group,
                name,
            } => e::ThreadOp::Create {
                thread: t(&thread)?,
                group: g(&group)?,
                name,
            },
            ThreadOp::Destroy { thread } => e::ThreadOp::Destroy {
                thread: t(&thread)?,
            },
            ThreadOp::Join { thread, group } => e::ThreadOp::Join {
                thread: t(&thread)?,
                group: g(&group)?,
            },
            ThreadOp::Leave { thread } => e::ThreadOp::Leave {
                thread: t(&thread)?,
            },
            ThreadOp::Update { thread, name } => e::ThreadOp::Update {
                thread: t(&thread)?,
                name,
            },
            ThreadOp::Kick { thread, users } => e::ThreadOp::Kick {
                thread: t(&thread)?,
                users: us(&users)?,
            },
        })
    }

    #[cfg(test)]
    fn from_engine(op: &e::ThreadOp) -> Option<ThreadOp> {
        Some(match op {
            e::ThreadOp::Create {
                thread,
                group,
                name,
            } => ThreadOp::Create {
                thread: s(thread),
                group: s(group),
                name: name.clone(),
            },
            e::ThreadOp::Destroy { thread } => ThreadOp::Destroy { thread: s(thread) },
            e::ThreadOp::Join { thread, group } => ThreadOp::Join {
                thread: s(thread),
                group: s(group),
            },
            e::ThreadOp::Leave { thread } => ThreadOp::Leave { thread: s(thread) },
            e::ThreadOp::Update { thread, name } => ThreadOp::Update {
                thread: s(thread),
                name: name.clone(),
            },
            e::ThreadOp::Kick { thread, users } => ThreadOp::Kick {
                thread: s(thread),
                users: strings(users),
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_kind_crosses_the_boundary_and_back_unchanged() {
        let all = tandem_tests::every_op::every_op_with_kind();
        assert!(!all.is_empty());
        for (op, kind) in all {
            if matches!(op, e::Op::Device(_)) {
                // Roster operations are made by the engine when it links a
                // device (create_account_key, grant_link), never by an app:
                // the bindings have no form for them.
                continue;
            }
            let ours = Op::from_engine(&op)
                .unwrap_or_else(|| panic!("{} has no form in the bindings", kind.name));
            let back = ours
                .into_engine()
                .unwrap_or_else(|e| panic!("{}: {e:?}", kind.name));
            assert_eq!(back, op, "{}", kind.name);
        }
    }

    #[test]
    fn a_bad_id_anywhere_in_an_operation_is_refused_by_kind() {
        let op = Op::Group {
            op: GroupOp::Invite {
                group: "trip".into(),
                users: vec!["bob".into(), String::new()],
            },
        };
        let refused = op.into_engine().unwrap_err();
        assert_eq!((refused.kind, refused.value.as_str()), ("a user id", ""));
        let op = Op::Message {
            op: MessageOp::Send {
                conversation: "bob".into(),
                body: "hi".into(),
            },
        };
        assert_eq!(op.into_engine().unwrap_err().kind, "a conversation id");
    }
}
