//! Multi-device events: what the user did on another device, as the app
//! hears it.
//!
//! One [`Event`] per operation another device performed, journaled in the
//! same transaction as the merge that produced it, in merge order (which is
//! causal order: an operation is merged only after the changes it depends
//! on). Events stay in the journal until the app acknowledges them
//! ([`crate::Engine::ack_events`]), so they are delivered at least once and
//! in order across crashes and restarts.
//!
//! The same journal carries what the relay tells this device about the
//! account's devices: payloads another device addressed to it
//! ([`MessageEvent::PayloadReceived`]) and [`ConnectionEvent`]s (kicked, too
//! many devices, a new device, the device list changed). Those are recorded
//! when this device learns of them, so their time is this device's clock.
//!
//! Disk format: event kinds are journaled with postcard (variants are only
//! ever appended). Apps see them as Rust values or as JSON
//! ([`Event::to_json`]), a stable form snapshot-tested in
//! `tests/events.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tandem_storage::device::ConversationFlags;
use tandem_transport::DeviceId;

use crate::model::*;
use crate::op::GroupInfoUpdate;

/// One thing that happened on another device of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the journal: increasing, never reused. Acknowledge up
    /// to it with [`crate::Engine::ack_events`].
    pub seq: i64,
    /// The device the operation was performed on. For a payload, the device
    /// that sent it; for a connection event, the device that caused it, which
    /// is this device itself for [`ConnectionEvent::TooManyDevices`] and
    /// [`ConnectionEvent::DeviceListChanged`].
    pub source_device: DeviceId,
    /// When it was performed there, in ms since the Unix epoch by that
    /// device's clock. Payloads and connection events are not performed
    /// elsewhere: for them it is when this device journaled them, by its own
    /// clock.
    pub made_at_ms: i64,
    /// True when, by the time it merged here, a concurrent operation had
    /// won over it (for example a pin that lost to a concurrent unpin): the
    /// app should not show its effect, only that it happened. Each variant
    /// of [`EventKind`] says when it is set; message and connection events
    /// are never superseded.
    pub superseded: bool,
    /// What happened, with its targets.
    pub kind: EventKind,
}

impl Event {
    /// The event's stable JSON form: one flat object,
    /// `{"seq", "source_device", "made_at_ms", "superseded", "category",
    /// "op", …targets and extras}`, with snake_case names.
    pub fn to_json_value(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        object.insert("seq".into(), self.seq.into());
        object.insert("source_device".into(), self.source_device.to_hex().into());
        object.insert("made_at_ms".into(), self.made_at_ms.into());
        object.insert("superseded".into(), self.superseded.into());
        // The kind serializes externally tagged, {"Group": {"MembersKicked":
        // {fields}}}, or {"Conversation": "AllUnreadCleared"} for a variant
        // without fields; flatten that into category, op and fields.
        let kind = serde_json::to_value(&self.kind).expect("an event kind always serializes");
        if let serde_json::Value::Object(outer) = kind {
            for (category, inner) in outer {
                object.insert("category".into(), snake_case(&category).into());
                match inner {
                    serde_json::Value::String(op) => {
                        object.insert("op".into(), snake_case(&op).into());
                    }
                    serde_json::Value::Object(inner) => {
                        for (op, fields) in inner {
                            object.insert("op".into(), snake_case(&op).into());
                            if let serde_json::Value::Object(fields) = fields {
                                object.extend(fields);
                            }
                        }
                    }
                    other => {
                        object.insert("op".into(), other);
                    }
                }
            }
        }
        serde_json::Value::Object(object)
    }

    /// [`Event::to_json_value`] as text.
    pub fn to_json(&self) -> String {
        self.to_json_value().to_string()
    }
}

/// `MembersKicked` → `members_kicked`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What happened, grouped by category as IM SDKs group their multi-device
/// callbacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventKind {
    /// A contact or blocklist operation ([`ContactOp`](crate::op::ContactOp)).
    Contact(ContactEvent),
    /// A group operation ([`GroupOp`](crate::op::GroupOp)).
    Group(GroupEvent),
    /// A thread operation ([`ThreadOp`](crate::op::ThreadOp)).
    Thread(ThreadEvent),
    /// A conversation or read-state operation
    /// ([`ConversationOp`](crate::op::ConversationOp)).
    Conversation(ConversationEvent),
    /// A message operation ([`MessageOp`](crate::op::MessageOp)), or a payload
    /// another device sent to this one.
    Message(MessageEvent),
    /// Something that happened to this device's connection; recorded by the
    /// sync driver, not merged from a delta.
    Connection(ConnectionEvent),
}

impl EventKind {
    /// The category's name, as in the JSON form.
    pub fn category(&self) -> &'static str {
        match self {
            EventKind::Contact(_) => "contact",
            EventKind::Group(_) => "group",
            EventKind::Thread(_) => "thread",
            EventKind::Conversation(_) => "conversation",
            EventKind::Message(_) => "message",
            EventKind::Connection(_) => "connection",
        }
    }
}

/// Contact operations done on another device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ContactEvent {
    /// A contact request was sent. Superseded if the user is not a pending
    /// request here after the merge (accepted or removed meanwhile).
    Added {
        /// The user asked.
        user: UserId,
        /// The text sent with the request.
        greeting: String,
    },
    /// A contact request was accepted: the user is a friend. Superseded if they
    /// are not a friend here after the merge (a concurrent remove won).
    Accepted {
        /// The new contact.
        user: UserId,
    },
    /// A contact request was declined, dropping a pending entry for the user;
    /// on a friend it changed nothing. Superseded if a pending request for the
    /// user survived the merge (a concurrent add won).
    Declined {
        /// The user whose request was declined.
        user: UserId,
    },
    /// A contact was removed. Superseded if the user is a contact again here (a
    /// concurrent add or accept won).
    Removed {
        /// The former contact.
        user: UserId,
    },
    /// A user was put on the blocklist. Superseded if they are not on it here
    /// after the merge.
    Blocked {
        /// The user blocked.
        user: UserId,
    },
    /// A user was taken off the blocklist. Superseded if they are on it again
    /// here.
    Unblocked {
        /// The user unblocked.
        user: UserId,
    },
    /// A contact's remark was set. Superseded if the contact now has another
    /// remark (a concurrent edit won) or is gone.
    RemarkChanged {
        /// The contact.
        user: UserId,
        /// The remark set there; empty when it was cleared.
        remark: String,
    },
    /// A contact request from `user` arrived on another device. Superseded
    /// if it is no longer pending here (accepted, declined or removed).
    RequestReceived {
        /// The user who asked.
        user: UserId,
        /// Their message.
        greeting: String,
    },
}

/// Group operations done on another device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum GroupEvent {
    /// The user created the group. Superseded if it is not a member group here
    /// after the merge.
    Created {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The group's name.
        name: String,
        /// The other users added at creation; the creator is a member too.
        members: Vec<UserId>,
    },
    /// The user dissolved the group; it is gone from this account's groups.
    /// Superseded if it is listed again here (a concurrent join won).
    Destroyed {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// The user joined the group. Superseded if it is not a member group here
    /// after the merge.
    Joined {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// The user left the group; it is gone from this account's groups.
    /// Superseded if it is listed again here.
    Left {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// The user applied to join the group, which is listed in state `applied`.
    /// Superseded if the group is gone here.
    Applied {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The text sent with the application.
        reason: String,
    },
    /// The user, as owner or admin, let an applicant in. Superseded if the
    /// applicant is not a member here after the merge.
    ApplicationAccepted {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The applicant, now a member.
        user: UserId,
    },
    /// The user, as owner or admin, turned an applicant down; nothing in the
    /// group changed. Superseded if the group is gone here.
    ApplicationDeclined {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The applicant turned down.
        user: UserId,
        /// The reason given to the applicant.
        reason: String,
    },
    /// The user invited users, who are listed as members. Superseded if any of
    /// them is not a member here after the merge.
    Invited {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users invited.
        users: Vec<UserId>,
    },
    /// The user accepted an invitation: the group is a member group. Superseded
    /// if it is not one here after the merge.
    InvitationAccepted {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member who sent the invitation.
        inviter: UserId,
    },
    /// The user declined an invitation; nothing changed. Never superseded.
    InvitationDeclined {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member who sent the invitation.
        inviter: UserId,
        /// The reason given to the inviter.
        reason: String,
    },
    /// The user removed members, with their admin roles and mutes. Superseded
    /// if any of them is a member here after the merge (a concurrent invite
    /// won).
    MembersKicked {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users removed.
        users: Vec<UserId>,
    },
    /// The user removed users and put them on the ban list. Superseded if any
    /// of them is not on the ban list here after the merge.
    MembersBanned {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users banned.
        users: Vec<UserId>,
    },
    /// The user took users off the ban list (unbanned them). Superseded if any
    /// of them is still banned here.
    MembersAllowed {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users unbanned.
        users: Vec<UserId>,
    },
    /// The user blocked the group's messages (`messages_blocked` set).
    /// Superseded if the flag is clear here after the merge.
    MessagesBlocked {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// The user unblocked the group's messages (`messages_blocked` cleared).
    /// Superseded if the flag is set here after the merge.
    MessagesUnblocked {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// The user made a member the owner. Superseded if someone else is the
    /// owner here after the merge.
    OwnerTransferred {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The new owner.
        new_owner: UserId,
    },
    /// The user gave a member the admin role. Superseded if they are not an
    /// admin here after the merge.
    AdminAdded {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The new admin.
        user: UserId,
    },
    /// The user took a member's admin role away. Superseded if they are an
    /// admin here after the merge.
    AdminRemoved {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The former admin.
        user: UserId,
    },
    /// The user muted members. Superseded if any of them does not show this
    /// mute here after the merge (a later mute, an unmute, or not a member).
    MembersMuted {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The members muted.
        users: Vec<UserId>,
        /// When the mute ends, in ms since the Unix epoch.
        until_ms: i64,
    },
    /// The user lifted members' mutes. Superseded if any of them is muted here
    /// after the merge.
    MembersUnmuted {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The members unmuted.
        users: Vec<UserId>,
    },
    /// The user put users on the group's allow list. Superseded if any of them
    /// is not on it here after the merge.
    AllowListAdded {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users added to the allow list.
        users: Vec<UserId>,
    },
    /// The user took users off the group's allow list. Superseded if any of
    /// them is on it here after the merge.
    AllowListRemoved {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users taken off the allow list.
        users: Vec<UserId>,
    },
    /// The user muted the whole group (`mute_all` set). Superseded if the flag
    /// is clear here after the merge.
    AllMuted {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// The user unmuted the whole group (`mute_all` cleared). Superseded if the
    /// flag is set here after the merge.
    AllUnmuted {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// The user changed the group's info. Superseded if any field it set has
    /// another value here after the merge.
    InfoUpdated {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The fields set; `None` for those left as they were.
        update: GroupInfoUpdate,
    },
    /// The user set attributes of a member. Superseded if any of them has
    /// another value here after the merge, or the user is no longer a member.
    MemberAttributesChanged {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member whose attributes were set.
        user: UserId,
        /// The (key, value) pairs set; other keys kept their values.
        attributes: Vec<(String, String)>,
    },
}

/// Thread operations done on another device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ThreadEvent {
    /// The user created a thread in a group. Superseded if the thread is gone
    /// here after the merge.
    Created {
        /// The thread, as the IM service names it.
        thread: ThreadId,
        /// The group the thread belongs to.
        group: GroupId,
        /// The thread's name.
        name: String,
    },
    /// The user dissolved the thread; it is gone from this account's threads.
    /// Superseded if it is listed again here.
    Destroyed {
        /// The thread, as the IM service names it.
        thread: ThreadId,
    },
    /// The user joined a thread. Superseded if the thread is gone here after
    /// the merge.
    Joined {
        /// The thread, as the IM service names it.
        thread: ThreadId,
        /// The group the thread belongs to.
        group: GroupId,
    },
    /// The user left the thread; it is gone from this account's threads.
    /// Superseded if it is listed again here.
    Left {
        /// The thread, as the IM service names it.
        thread: ThreadId,
    },
    /// The user renamed the thread. Superseded if it has another name here
    /// after the merge, or is gone.
    Updated {
        /// The thread, as the IM service names it.
        thread: ThreadId,
        /// The new name.
        name: String,
    },
    /// The user removed users from the thread. Superseded if any of them is a
    /// member here after the merge.
    Kicked {
        /// The thread, as the IM service names it.
        thread: ThreadId,
        /// The users removed.
        users: Vec<UserId>,
    },
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
}

/// What happened to this device's connection because of another device or
/// the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// Another device forced this one offline (the event's source device).
    Kicked {
        /// The reason the kicking device gave.
        reason: String,
    },
    /// The relay refused this device: the account has too many devices
    /// online.
    TooManyDevices {
        /// The relay's explanation, in words.
        text: String,
    },
    /// The account logged in on a device the list did not have before (the
    /// event's source device).
    LoggedInOnNewDevice {
        /// The new device's name, as it reported it.
        name: String,
        /// The new device's platform, in the text form of
        /// [`Platform`](crate::Platform).
        platform: String,
    },
    /// The account's device list changed (a device logged in or was
    /// kicked); ask the relay for the list to see how. The event's source
    /// device is this device.
    DeviceListChanged,
}

/// The event an operation merged from another device becomes.
pub(crate) fn event_kind(delta: &crate::delta::Delta) -> EventKind {
    use crate::op::*;
    match &delta.op {
        Op::Message(op) => EventKind::Message(match op {
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
        }),
        Op::Conversation(op) => EventKind::Conversation(match op.clone() {
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
        }),
        Op::Contact(op) => EventKind::Contact(match op.clone() {
            ContactOp::Add { user, greeting } => ContactEvent::Added { user, greeting },
            ContactOp::Accept { user } => ContactEvent::Accepted { user },
            ContactOp::Decline { user } => ContactEvent::Declined { user },
            ContactOp::Remove { user } => ContactEvent::Removed { user },
            ContactOp::Block { user } => ContactEvent::Blocked { user },
            ContactOp::Unblock { user } => ContactEvent::Unblocked { user },
            ContactOp::SetRemark { user, remark } => ContactEvent::RemarkChanged { user, remark },
            ContactOp::ReceiveRequest { user, greeting } => {
                ContactEvent::RequestReceived { user, greeting }
            }
        }),
        Op::Group(op) => EventKind::Group(match op.clone() {
            GroupOp::Create {
                group,
                name,
                members,
            } => GroupEvent::Created {
                group,
                name,
                members,
            },
            GroupOp::Destroy { group } => GroupEvent::Destroyed { group },
            GroupOp::Join { group } => GroupEvent::Joined { group },
            GroupOp::Leave { group } => GroupEvent::Left { group },
            GroupOp::Apply { group, reason } => GroupEvent::Applied { group, reason },
            GroupOp::AcceptApplication { group, user } => {
                GroupEvent::ApplicationAccepted { group, user }
            }
            GroupOp::DeclineApplication {
                group,
                user,
                reason,
            } => GroupEvent::ApplicationDeclined {
                group,
                user,
                reason,
            },
            GroupOp::Invite { group, users } => GroupEvent::Invited { group, users },
            GroupOp::AcceptInvitation { group, inviter } => {
                GroupEvent::InvitationAccepted { group, inviter }
            }
            GroupOp::DeclineInvitation {
                group,
                inviter,
                reason,
            } => GroupEvent::InvitationDeclined {
                group,
                inviter,
                reason,
            },
            GroupOp::Kick { group, users } => GroupEvent::MembersKicked { group, users },
            GroupOp::Ban { group, users } => GroupEvent::MembersBanned { group, users },
            GroupOp::Allow { group, users } => GroupEvent::MembersAllowed { group, users },
            GroupOp::BlockMessages { group } => GroupEvent::MessagesBlocked { group },
            GroupOp::UnblockMessages { group } => GroupEvent::MessagesUnblocked { group },
            GroupOp::TransferOwner { group, new_owner } => {
                GroupEvent::OwnerTransferred { group, new_owner }
            }
            GroupOp::AddAdmin { group, user } => GroupEvent::AdminAdded { group, user },
            GroupOp::RemoveAdmin { group, user } => GroupEvent::AdminRemoved { group, user },
            GroupOp::Mute {
                group,
                users,
                until_ms,
            } => GroupEvent::MembersMuted {
                group,
                users,
                until_ms,
            },
            GroupOp::Unmute { group, users } => GroupEvent::MembersUnmuted { group, users },
            GroupOp::AddAllowList { group, users } => GroupEvent::AllowListAdded { group, users },
            GroupOp::RemoveAllowList { group, users } => {
                GroupEvent::AllowListRemoved { group, users }
            }
            GroupOp::MuteAll { group } => GroupEvent::AllMuted { group },
            GroupOp::UnmuteAll { group } => GroupEvent::AllUnmuted { group },
            GroupOp::UpdateInfo { group, update } => GroupEvent::InfoUpdated { group, update },
            GroupOp::SetMemberAttributes {
                group,
                user,
                attributes,
            } => GroupEvent::MemberAttributesChanged {
                group,
                user,
                attributes,
            },
        }),
        Op::Thread(op) => EventKind::Thread(match op.clone() {
            ThreadOp::Create {
                thread,
                group,
                name,
            } => ThreadEvent::Created {
                thread,
                group,
                name,
            },
            ThreadOp::Destroy { thread } => ThreadEvent::Destroyed { thread },
            ThreadOp::Join { thread, group } => ThreadEvent::Joined { thread, group },
            ThreadOp::Leave { thread } => ThreadEvent::Left { thread },
            ThreadOp::Update { thread, name } => ThreadEvent::Updated { thread, name },
            ThreadOp::Kick { thread, users } => ThreadEvent::Kicked { thread, users },
        }),
    }
}

/// What [`superseded`] compares against: the merged document, the
/// conversation flags the merge just projected, and the read markers after
/// the merge.
pub(crate) struct Lookup<'a> {
    pub doc: &'a crate::doc::AccountDoc,
    pub flags: &'a BTreeMap<String, ConversationFlags>,
    pub read_markers: &'a BTreeMap<String, (i64, String)>,
}

impl Lookup<'_> {
    fn flags(&self, conversation: &str) -> ConversationFlags {
        match self.flags.get(conversation) {
            Some(flags) => flags.clone(),
            None => self.doc.conversation_flags(conversation),
        }
    }
}

/// Whether the state after a merge no longer shows the event's effect: a
/// concurrent operation won over it. Messages merge monotonically, so their
/// events are never superseded; nor are clears, whose effect is relative to
/// what each device had.
pub(crate) fn superseded(lookup: &Lookup<'_>, kind: &EventKind) -> bool {
    let doc = lookup.doc;
    let flags = |conversation: &ConversationId| lookup.flags(&conversation.key());
    let members = |group: &GroupId| -> Option<Vec<String>> {
        doc.group(group.as_str())
            .map(|g| g.members.into_iter().map(|m| m.user_id).collect())
    };
    let is_member =
        |group: &GroupId, user: &str| members(group).is_some_and(|m| m.iter().any(|u| u == user));
    let group = |group: &GroupId| doc.group(group.as_str());
    match kind {
        EventKind::Message(_) | EventKind::Connection(_) => false,
        EventKind::Conversation(event) => match event {
            ConversationEvent::Pinned { conversation } => !flags(conversation).pinned,
            ConversationEvent::Unpinned { conversation } => flags(conversation).pinned,
            ConversationEvent::MarkChanged {
                conversation,
                mark,
                set,
            } => flags(conversation).marks.contains(mark) != *set,
            ConversationEvent::DoNotDisturbChanged {
                conversation,
                enabled,
            } => flags(conversation).do_not_disturb != *enabled,
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
        },
        EventKind::Contact(event) => match event {
            ContactEvent::Added { user, .. } => doc
                .contact(user.as_str())
                .is_none_or(|c| c.status != "requested"),
            ContactEvent::Accepted { user } => doc
                .contact(user.as_str())
                .is_none_or(|c| c.status != "friend"),
            ContactEvent::Declined { user } => doc
                .contact(user.as_str())
                .is_some_and(|c| c.status != "friend"),
            ContactEvent::Removed { user } => doc.contact(user.as_str()).is_some(),
            ContactEvent::Blocked { user } => doc.blocked(user.as_str()).is_none(),
            ContactEvent::Unblocked { user } => doc.blocked(user.as_str()).is_some(),
            ContactEvent::RemarkChanged { user, remark } => doc
                .contact(user.as_str())
                .is_none_or(|c| &c.remark != remark),
            ContactEvent::RequestReceived { user, .. } => doc
                .contact(user.as_str())
                .is_none_or(|c| c.status != "pending"),
        },
        EventKind::Group(event) => {
            match event {
                GroupEvent::Created { group: g, .. }
                | GroupEvent::Joined { group: g }
                | GroupEvent::InvitationAccepted { group: g, .. } => {
                    group(g).is_none_or(|g| g.state != "member")
                }
                GroupEvent::Applied { group: g, .. } => group(g).is_none(),
                GroupEvent::Destroyed { group: g } | GroupEvent::Left { group: g } => {
                    group(g).is_some()
                }
                GroupEvent::ApplicationAccepted { group: g, user } => !is_member(g, user.as_str()),
                GroupEvent::ApplicationDeclined { group: g, .. } => group(g).is_none(),
                GroupEvent::InvitationDeclined { .. } => false,
                GroupEvent::Invited { group: g, users } => {
                    users.iter().any(|u| !is_member(g, u.as_str()))
                }
                GroupEvent::MembersKicked { group: g, users } => {
                    users.iter().any(|u| is_member(g, u.as_str()))
                }
                GroupEvent::MembersBanned { group: g, users } => group(g)
                    .is_none_or(|g| users.iter().any(|u| !g.banned.contains(&u.to_string()))),
                GroupEvent::MembersAllowed { group: g, users } => group(g)
                    .is_some_and(|g| users.iter().any(|u| g.banned.contains(&u.to_string()))),
                GroupEvent::MessagesBlocked { group: g } => {
                    group(g).is_none_or(|g| !g.messages_blocked)
                }
                GroupEvent::MessagesUnblocked { group: g } => {
                    group(g).is_none_or(|g| g.messages_blocked)
                }
                GroupEvent::OwnerTransferred {
                    group: g,
                    new_owner,
                } => group(g).is_none_or(|g| g.owner != new_owner.as_str()),
                GroupEvent::AdminAdded { group: g, user } => group(g).is_none_or(|g| {
                    !g.members
                        .iter()
                        .any(|m| m.user_id == user.as_str() && m.role == "admin")
                }),
                GroupEvent::AdminRemoved { group: g, user } => group(g).is_none_or(|g| {
                    g.members
                        .iter()
                        .any(|m| m.user_id == user.as_str() && m.role == "admin")
                }),
                GroupEvent::MembersMuted {
                    group: g,
                    users,
                    until_ms,
                } => group(g).is_none_or(|g| {
                    users.iter().any(|u| {
                        !g.members
                            .iter()
                            .any(|m| m.user_id == u.as_str() && m.muted_until_ms == *until_ms)
                    })
                }),
                GroupEvent::MembersUnmuted { group: g, users } => group(g).is_none_or(|g| {
                    g.members.iter().any(|m| {
                        users.iter().any(|u| u.as_str() == m.user_id) && m.muted_until_ms != 0
                    })
                }),
                GroupEvent::AllowListAdded { group: g, users } => group(g)
                    .is_none_or(|g| users.iter().any(|u| !g.allowed.contains(&u.to_string()))),
                GroupEvent::AllowListRemoved { group: g, users } => group(g)
                    .is_none_or(|g| users.iter().any(|u| g.allowed.contains(&u.to_string()))),
                GroupEvent::AllMuted { group: g } => group(g).is_none_or(|g| !g.mute_all),
                GroupEvent::AllUnmuted { group: g } => group(g).is_none_or(|g| g.mute_all),
                GroupEvent::InfoUpdated { group: g, update } => group(g).is_none_or(|g| {
                    update.name.as_ref().is_some_and(|v| *v != g.name)
                        || update
                            .description
                            .as_ref()
                            .is_some_and(|v| *v != g.description)
                        || update
                            .announcement
                            .as_ref()
                            .is_some_and(|v| *v != g.announcement)
                }),
                GroupEvent::MemberAttributesChanged {
                    group: g,
                    user,
                    attributes,
                } => group(g).is_none_or(|g| {
                    attributes.iter().any(|(k, v)| {
                        !g.attributes
                            .iter()
                            .any(|a| a.user_id == user.as_str() && &a.key == k && &a.value == v)
                    })
                }),
            }
        }
        EventKind::Thread(event) => {
            let thread = |t: &ThreadId| doc.thread(t.as_str());
            match event {
                ThreadEvent::Created { thread: t, .. } | ThreadEvent::Joined { thread: t, .. } => {
                    thread(t).is_none()
                }
                ThreadEvent::Destroyed { thread: t } | ThreadEvent::Left { thread: t } => {
                    thread(t).is_some()
                }
                ThreadEvent::Updated { thread: t, name } => {
                    thread(t).is_none_or(|t| &t.name != name)
                }
                ThreadEvent::Kicked { thread: t, users } => thread(t)
                    .is_some_and(|t| users.iter().any(|u| t.members.contains(&u.to_string()))),
            }
        }
    }
}
