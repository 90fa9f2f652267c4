//! Operations: what the user did, recorded as an intent.
//!
//! Every local change goes through [`Engine::perform`](crate::Engine::perform)
//! with one [`Op`]. The op travels inside the delta beside the document
//! change it made, so the device that merges it can name it (multi-device
//! events) without guessing from a state diff.
//!
//! Wire format: ops are encoded with postcard, which numbers enum variants
//! by position. New variants go at the end of their enum; none is ever
//! removed or reordered (the snapshot tests in `delta` catch a slip).

use serde::{Deserialize, Serialize};

use crate::limits::*;
use crate::model::*;

/// One user operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Op {
    Message(MessageOp),
    Conversation(ConversationOp),
    Contact(ContactOp),
    Group(GroupOp),
    Thread(ThreadOp),
}

/// Operations on the message log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MessageOp {
    /// Send a message. Its id is derived from the device and the operation's
    /// number, its time is the operation's time.
    Send {
        conversation: ConversationId,
        body: String,
    },
    /// Store a message that arrived from the IM service; idempotent by id.
    Ingest { message: IncomingMessage },
    /// Recall a message: a tombstone, once recalled always recalled.
    Recall { message: MessageId },
    /// Hide messages on every device of this account.
    DeleteForMe { messages: Vec<MessageId> },
    /// The other party's delivery or read receipt.
    Receipt {
        message: MessageId,
        receipt: PeerReceipt,
    },
}

/// Operations on conversations and read state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConversationOp {
    /// Move this device's read marker up to a message (never back).
    MarkRead {
        conversation: ConversationId,
        message: MessageId,
    },
    /// Mark everything in the conversation read.
    ClearUnread {
        conversation: ConversationId,
    },
    /// Mark everything in every conversation read.
    ClearAllUnread,
    Pin {
        conversation: ConversationId,
    },
    Unpin {
        conversation: ConversationId,
    },
    /// Clear the conversation up to now and drop it from the list.
    Delete {
        conversation: ConversationId,
    },
    AddMark {
        conversation: ConversationId,
        mark: String,
    },
    RemoveMark {
        conversation: ConversationId,
        mark: String,
    },
    SetDoNotDisturb {
        conversation: ConversationId,
        enabled: bool,
    },
}

/// Operations on contacts and the blocklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ContactOp {
    /// Send a contact request.
    Add {
        user: UserId,
        greeting: String,
    },
    /// Accept a contact request from `user`.
    Accept {
        user: UserId,
    },
    /// Decline a contact request from `user`.
    Decline {
        user: UserId,
    },
    Remove {
        user: UserId,
    },
    Block {
        user: UserId,
    },
    Unblock {
        user: UserId,
    },
    SetRemark {
        user: UserId,
        remark: String,
    },
}

/// Fields of a group's info; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupInfoUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub announcement: Option<String>,
}

/// Operations on groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum GroupOp {
    Create {
        group: GroupId,
        name: String,
        members: Vec<UserId>,
    },
    Destroy {
        group: GroupId,
    },
    Join {
        group: GroupId,
    },
    Leave {
        group: GroupId,
    },
    Apply {
        group: GroupId,
        reason: String,
    },
    AcceptApplication {
        group: GroupId,
        user: UserId,
    },
    DeclineApplication {
        group: GroupId,
        user: UserId,
        reason: String,
    },
    Invite {
        group: GroupId,
        users: Vec<UserId>,
    },
    AcceptInvitation {
        group: GroupId,
        inviter: UserId,
    },
    DeclineInvitation {
        group: GroupId,
        inviter: UserId,
        reason: String,
    },
    Kick {
        group: GroupId,
        users: Vec<UserId>,
    },
    Ban {
        group: GroupId,
        users: Vec<UserId>,
    },
    Allow {
        group: GroupId,
        users: Vec<UserId>,
    },
    BlockMessages {
        group: GroupId,
    },
    UnblockMessages {
        group: GroupId,
    },
    TransferOwner {
        group: GroupId,
        new_owner: UserId,
    },
    AddAdmin {
        group: GroupId,
        user: UserId,
    },
    RemoveAdmin {
        group: GroupId,
        user: UserId,
    },
    Mute {
        group: GroupId,
        users: Vec<UserId>,
        until_ms: i64,
    },
    Unmute {
        group: GroupId,
        users: Vec<UserId>,
    },
    AddAllowList {
        group: GroupId,
        users: Vec<UserId>,
    },
    RemoveAllowList {
        group: GroupId,
        users: Vec<UserId>,
    },
    MuteAll {
        group: GroupId,
    },
    UnmuteAll {
        group: GroupId,
    },
    UpdateInfo {
        group: GroupId,
        update: GroupInfoUpdate,
    },
    SetMemberAttributes {
        group: GroupId,
        user: UserId,
        attributes: Vec<(String, String)>,
    },
}

/// Operations on threads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ThreadOp {
    Create {
        thread: ThreadId,
        group: GroupId,
        name: String,
    },
    Destroy {
        thread: ThreadId,
    },
    Join {
        thread: ThreadId,
        group: GroupId,
    },
    Leave {
        thread: ThreadId,
    },
    Update {
        thread: ThreadId,
        name: String,
    },
    Kick {
        thread: ThreadId,
        users: Vec<UserId>,
    },
}

/// Why an operation's content breaks a limit. Ids were checked when they
/// were made; this checks sizes and counts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidOp {
    /// A text field is longer than its limit.
    #[error("{field} is {len} bytes, over the limit of {max}")]
    TextTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// A list is longer than its limit.
    #[error("{field} names {len} entries, over the limit of {max}")]
    TooMany {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// A list that must name something is empty.
    #[error("{field} is empty")]
    Empty { field: &'static str },
    /// A mark or attribute key that is empty, too long or has control
    /// characters.
    #[error("{field} must be 1 to {ID_BYTES_MAX} bytes without control characters")]
    BadKey { field: &'static str },
}

fn text(field: &'static str, value: &str, max: usize) -> Result<(), InvalidOp> {
    if value.len() > max {
        return Err(InvalidOp::TextTooLong {
            field,
            len: value.len(),
            max,
        });
    }
    Ok(())
}

fn key(field: &'static str, value: &str) -> Result<(), InvalidOp> {
    if value.is_empty() || value.len() > ID_BYTES_MAX || value.chars().any(char::is_control) {
        return Err(InvalidOp::BadKey { field });
    }
    Ok(())
}

fn list<T>(field: &'static str, items: &[T], max: usize) -> Result<(), InvalidOp> {
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

impl Op {
    /// Checks every size and count limit. Called on local operations before
    /// anything is written, and on remote ones before they are merged.
    pub fn validate(&self) -> Result<(), InvalidOp> {
        match self {
            Op::Message(op) => match op {
                MessageOp::Send { body, .. } => text("body", body, MESSAGE_BODY_BYTES_MAX),
                MessageOp::Ingest { message } => {
                    text("body", &message.body, MESSAGE_BODY_BYTES_MAX)
                }
                MessageOp::Recall { .. } | MessageOp::Receipt { .. } => Ok(()),
                MessageOp::DeleteForMe { messages } => {
                    list("messages", messages, MESSAGES_PER_OP_MAX)
                }
            },
            Op::Conversation(op) => match op {
                ConversationOp::AddMark { mark, .. } | ConversationOp::RemoveMark { mark, .. } => {
                    key("mark", mark)
                }
                _ => Ok(()),
            },
            Op::Contact(op) => match op {
                ContactOp::Add { greeting, .. } => text("greeting", greeting, TEXT_BYTES_MAX),
                ContactOp::SetRemark { remark, .. } => text("remark", remark, TEXT_BYTES_MAX),
                _ => Ok(()),
            },
            Op::Group(op) => match op {
                GroupOp::Create { name, members, .. } => {
                    text("name", name, TEXT_BYTES_MAX)?;
                    if members.len() > USERS_PER_OP_MAX {
                        return Err(InvalidOp::TooMany {
                            field: "members",
                            len: members.len(),
                            max: USERS_PER_OP_MAX,
                        });
                    }
                    Ok(())
                }
                GroupOp::Apply { reason, .. }
                | GroupOp::DeclineApplication { reason, .. }
                | GroupOp::DeclineInvitation { reason, .. } => {
                    text("reason", reason, TEXT_BYTES_MAX)
                }
                GroupOp::Invite { users, .. }
                | GroupOp::Kick { users, .. }
                | GroupOp::Ban { users, .. }
                | GroupOp::Allow { users, .. }
                | GroupOp::Mute { users, .. }
                | GroupOp::Unmute { users, .. }
                | GroupOp::AddAllowList { users, .. }
                | GroupOp::RemoveAllowList { users, .. } => list("users", users, USERS_PER_OP_MAX),
                GroupOp::UpdateInfo { update, .. } => {
                    for (field, value) in [
                        ("name", &update.name),
                        ("description", &update.description),
                        ("announcement", &update.announcement),
                    ] {
                        if let Some(value) = value {
                            text(field, value, TEXT_BYTES_MAX)?;
                        }
                    }
                    Ok(())
                }
                GroupOp::SetMemberAttributes { attributes, .. } => {
                    list("attributes", attributes, ATTRIBUTES_PER_OP_MAX)?;
                    for (k, v) in attributes {
                        key("attribute key", k)?;
                        text("attribute value", v, TEXT_BYTES_MAX)?;
                    }
                    Ok(())
                }
                _ => Ok(()),
            },
            Op::Thread(op) => match op {
                ThreadOp::Create { name, .. } | ThreadOp::Update { name, .. } => {
                    text("name", name, TEXT_BYTES_MAX)
                }
                ThreadOp::Kick { users, .. } => list("users", users, USERS_PER_OP_MAX),
                _ => Ok(()),
            },
        }
    }
}
