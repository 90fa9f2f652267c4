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
}

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
}

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
        /// The mark: 1 to [`ID_BYTES_MAX`] bytes without control characters.
        mark: String,
    },
    /// Remove a mark from a conversation; removing one that is not set changes
    /// nothing.
    RemoveMark {
        /// The conversation to unmark.
        conversation: ConversationId,
        /// The mark: 1 to [`ID_BYTES_MAX`] bytes without control characters.
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

/// Operations on contacts and the blocklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ContactOp {
    /// Send a contact request: the user is listed as a contact with status
    /// `requested` until accepted. Refused with
    /// [`Refused::AlreadyContact`](crate::Refused::AlreadyContact) for a
    /// friend; sending it again while pending starts the entry over, remark
    /// cleared.
    Add {
        /// The user asked.
        user: UserId,
        /// The text sent with the request, at most [`TEXT_BYTES_MAX`] bytes. It
        /// reaches the other devices in the event, but the contact row does not
        /// keep it.
        greeting: String,
    },
    /// Accept a contact request from `user` (recorded with
    /// [`ContactOp::ReceiveRequest`] as `pending`, or seen only by the IM
    /// service): they become a contact with status `friend`, keeping any
    /// remark. Whether a request is pending is not checked, since the
    /// service may know of one this device has not recorded.
    Accept {
        /// The user whose request is accepted.
        user: UserId,
    },
    /// Decline a contact request from `user`. An entry that is not a friend
    /// yet (their `pending` request, or our own `requested` one) is dropped;
    /// on a contact already accepted (`friend`) or a user with no entry it
    /// changes nothing, and is not refused either.
    Decline {
        /// The user whose request is declined.
        user: UserId,
    },
    /// Remove a contact, friend or pending request. Refused with
    /// [`Refused::NoSuchContact`](crate::Refused::NoSuchContact) if there is
    /// none; a concurrent re-add or accept on another device wins over it.
    Remove {
        /// The contact to remove.
        user: UserId,
    },
    /// Put a user on the blocklist, contact or not; the contact entry is kept.
    /// Blocking again only refreshes the time.
    Block {
        /// The user to block.
        user: UserId,
    },
    /// Take a user off the blocklist. Refused with
    /// [`Refused::NotBlocked`](crate::Refused::NotBlocked) if they are not on
    /// it.
    Unblock {
        /// The user to unblock.
        user: UserId,
    },
    /// Set the remark (the user's own nickname for a contact). Refused with
    /// [`Refused::NoSuchContact`](crate::Refused::NoSuchContact) for a user who
    /// is not a contact.
    SetRemark {
        /// The contact the remark is for.
        user: UserId,
        /// The new remark, at most [`TEXT_BYTES_MAX`] bytes; empty clears it.
        remark: String,
    },
    /// Record a contact request `user` sent this account, as it arrived from
    /// the IM service: the entry becomes `pending` until accepted
    /// ([`ContactOp::Accept`]) or declined ([`ContactOp::Decline`]). A
    /// request from someone who is a contact already is refused with
    /// [`Refused::AlreadyContact`](crate::Refused::AlreadyContact).
    ReceiveRequest {
        /// The user who asked.
        user: UserId,
        /// Their message, at most [`TEXT_BYTES_MAX`] bytes.
        greeting: String,
    },
}

/// Fields of a group's info; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupInfoUpdate {
    /// The group's new name, at most [`TEXT_BYTES_MAX`] bytes.
    pub name: Option<String>,
    /// The group's new description, at most [`TEXT_BYTES_MAX`] bytes.
    pub description: Option<String>,
    /// The group's new announcement, at most [`TEXT_BYTES_MAX`] bytes.
    pub announcement: Option<String>,
}

/// Operations on groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum GroupOp {
    /// Record a group the user created: they are its owner and first member,
    /// and `members` join with them. Refused with
    /// [`Refused::GroupExists`](crate::Refused::GroupExists) if the group is
    /// known on this device in any state.
    Create {
        /// The new group, as the IM service names it.
        group: GroupId,
        /// The group's name, at most [`TEXT_BYTES_MAX`] bytes.
        name: String,
        /// The other users added at creation, at most [`USERS_PER_OP_MAX`]; may
        /// be empty.
        members: Vec<UserId>,
    },
    /// Record that the user dissolved the group: it leaves this account's
    /// groups, exactly as for [`GroupOp::Leave`]. Ownership is not checked.
    /// Refused with [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if
    /// the group is not known on this device.
    Destroy {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// Record that the user joined a group that needs no approval: it is
    /// listed as a member group with empty info and owner until they are
    /// updated. Refused with
    /// [`Refused::GroupExists`](crate::Refused::GroupExists) if the user is a
    /// member already; an application in progress is replaced.
    Join {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// Record that the user left the group: it leaves this account's groups.
    /// Refused with [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if
    /// the group is not known on this device.
    Leave {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// Record that the user asked to join a group that needs approval: the
    /// group is listed in state `applied`. Refused with
    /// [`Refused::GroupExists`](crate::Refused::GroupExists) if the group is
    /// known on this device already.
    Apply {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The text sent with the application, at most [`TEXT_BYTES_MAX`]
        /// bytes; the other devices hear it, the group row does not keep it.
        reason: String,
    },
    /// Record that the user, as owner or admin, let an applicant in: they are
    /// added to the members. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    AcceptApplication {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The applicant, now a member.
        user: UserId,
    },
    /// Record that the user, as owner or admin, turned an applicant down.
    /// Nothing in the group changes; the other devices only hear that it
    /// happened. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    DeclineApplication {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The applicant turned down.
        user: UserId,
        /// The reason given to the applicant, at most [`TEXT_BYTES_MAX`] bytes;
        /// not kept in the group row.
        reason: String,
    },
    /// Record that the user invited users into the group. They are listed as
    /// members at once: there is no pending-invitation state. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    Invite {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users invited, 1 to [`USERS_PER_OP_MAX`].
        users: Vec<UserId>,
    },
    /// Record that the user accepted an invitation: the group becomes a member
    /// group with the user and the inviter among its members. A group unknown
    /// so far is listed with empty info and owner.
    AcceptInvitation {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member who sent the invitation; listed as a member too.
        inviter: UserId,
    },
    /// Record that the user declined an invitation. Nothing changes on this
    /// device, whether the group is known or not; the other devices only hear
    /// that it happened.
    DeclineInvitation {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member who sent the invitation.
        inviter: UserId,
        /// The reason given to the inviter, at most [`TEXT_BYTES_MAX`] bytes;
        /// not kept anywhere.
        reason: String,
    },
    /// Remove members from the group, together with their admin role and their
    /// mute. Users who are not members are passed over. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    Kick {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The members to remove, 1 to [`USERS_PER_OP_MAX`].
        users: Vec<UserId>,
    },
    /// Remove members as [`GroupOp::Kick`] does and puts them on the group's
    /// ban list. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    Ban {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users to ban, 1 to [`USERS_PER_OP_MAX`]; they need not be
        /// members.
        users: Vec<UserId>,
    },
    /// Take users off the group's ban list (unbans them) without making them
    /// members again. Not to be confused with [`GroupOp::AddAllowList`].
    /// Refused with [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if
    /// the group is not known on this device.
    Allow {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users to unban, 1 to [`USERS_PER_OP_MAX`]; those not banned are
        /// passed over.
        users: Vec<UserId>,
    },
    /// Set the group's `messages_blocked` flag: the user does not want the
    /// group's messages. The engine only records the flag; it still stores
    /// messages ingested for the group. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    BlockMessages {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// Clear the group's `messages_blocked` flag. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    UnblockMessages {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// Make a member the group's owner. The new owner loses the admin role
    /// (the owner role covers it) and the old owner becomes a plain member.
    /// Refused with [`Refused::NotAMember`](crate::Refused::NotAMember) if
    /// `new_owner` is not a member. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    TransferOwner {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member who becomes the owner.
        new_owner: UserId,
    },
    /// Give a user the admin role. Membership is not checked: the role shows
    /// only while the user is a member. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    AddAdmin {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The user who becomes an admin.
        user: UserId,
    },
    /// Take the admin role away; a user who is not an admin is passed over.
    /// Refused with [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if
    /// the group is not known on this device.
    RemoveAdmin {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The admin who becomes a plain member.
        user: UserId,
    },
    /// Mute members until a time, shown as their `muted_until_ms`. The engine
    /// reads no clock, so a mute does not lift itself: the app compares
    /// `until_ms` with the time. A mute of a user who is not a member is kept
    /// but not shown. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    Mute {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The members to mute, 1 to [`USERS_PER_OP_MAX`].
        users: Vec<UserId>,
        /// When the mute ends, in ms since the Unix epoch. It replaces an
        /// earlier mute of the same member; 0 reads as not muted.
        until_ms: i64,
    },
    /// Lift members' mutes; members not muted are passed over. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    Unmute {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The members to unmute, 1 to [`USERS_PER_OP_MAX`].
        users: Vec<UserId>,
    },
    /// Put users on the group's allow list: in IM services, the members who
    /// may still speak while the whole group is muted ([`GroupOp::MuteAll`]).
    /// The engine only records the list. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    AddAllowList {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users to add, 1 to [`USERS_PER_OP_MAX`]; membership is not
        /// checked.
        users: Vec<UserId>,
    },
    /// Take users off the group's allow list; users not on it are passed over.
    /// Refused with [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if
    /// the group is not known on this device.
    RemoveAllowList {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users to take off, 1 to [`USERS_PER_OP_MAX`].
        users: Vec<UserId>,
    },
    /// Set the group's `mute_all` flag: the whole group is muted. The engine
    /// only records the flag; the IM service enforces it. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    MuteAll {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// Clear the group's `mute_all` flag. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    UnmuteAll {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// Change the group's name, description or announcement. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    UpdateInfo {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The fields to change; a field left `None` keeps its value.
        update: GroupInfoUpdate,
    },
    /// Set app-defined attributes of a member (a nickname in the group, say).
    /// Keys not named keep their values; there is no way to remove a key.
    /// Refused with [`Refused::NotAMember`](crate::Refused::NotAMember) if
    /// `user` is not a member; a member who leaves takes their attributes out
    /// of view. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    SetMemberAttributes {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member whose attributes are set.
        user: UserId,
        /// (key, value) pairs, 1 to [`ATTRIBUTES_PER_OP_MAX`]: each key 1 to
        /// [`ID_BYTES_MAX`] bytes without control characters, each value at
        /// most [`TEXT_BYTES_MAX`] bytes.
        attributes: Vec<(String, String)>,
    },
}

/// Operations on threads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ThreadOp {
    /// Record a thread the user created in a group; the user is its first
    /// member. Refused with
    /// [`Refused::ThreadExists`](crate::Refused::ThreadExists) if the thread is
    /// known on this device; the group is not checked.
    Create {
        /// The new thread, as the IM service names it.
        thread: ThreadId,
        /// The group the thread belongs to.
        group: GroupId,
        /// The thread's name, at most [`TEXT_BYTES_MAX`] bytes.
        name: String,
    },
    /// Record that the user dissolved the thread: it leaves this account's
    /// threads, exactly as for [`ThreadOp::Leave`]. Ownership is not checked.
    /// Refused with [`Refused::NoSuchThread`](crate::Refused::NoSuchThread) if
    /// the thread is not known on this device.
    Destroy {
        /// The thread, as the IM service names it.
        thread: ThreadId,
    },
    /// Record that the user joined a thread: it is listed with an empty name
    /// and the user as its member. Refused with
    /// [`Refused::ThreadExists`](crate::Refused::ThreadExists) if the thread is
    /// known on this device already.
    Join {
        /// The thread, as the IM service names it.
        thread: ThreadId,
        /// The group the thread belongs to.
        group: GroupId,
    },
    /// Record that the user left the thread: it leaves this account's threads.
    /// Refused with [`Refused::NoSuchThread`](crate::Refused::NoSuchThread) if
    /// the thread is not known on this device.
    Leave {
        /// The thread, as the IM service names it.
        thread: ThreadId,
    },
    /// Rename the thread. Refused with
    /// [`Refused::NoSuchThread`](crate::Refused::NoSuchThread) if the thread is
    /// not known on this device.
    Update {
        /// The thread, as the IM service names it.
        thread: ThreadId,
        /// The thread's new name, at most [`TEXT_BYTES_MAX`] bytes.
        name: String,
    },
    /// Remove users from the thread's members; users not in it are passed
    /// over. Refused with
    /// [`Refused::NoSuchThread`](crate::Refused::NoSuchThread) if the thread is
    /// not known on this device.
    Kick {
        /// The thread, as the IM service names it.
        thread: ThreadId,
        /// The users to remove, 1 to [`USERS_PER_OP_MAX`].
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
                ContactOp::ReceiveRequest { greeting, .. } => {
                    text("greeting", greeting, TEXT_BYTES_MAX)
                }
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
