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
//! Disk format: event kinds are journaled with postcard (variants are only
//! ever appended). Apps see them as Rust values or as JSON
//! ([`Event::to_json`]), a stable form snapshot-tested in
//! `tests/events.rs`.

use serde::{Deserialize, Serialize};
use tandem_transport::DeviceId;

use crate::model::*;
use crate::op::GroupInfoUpdate;

/// One thing that happened on another device of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the journal: increasing, never reused. Acknowledge up
    /// to it with [`crate::Engine::ack_events`].
    pub seq: i64,
    /// The device the operation was performed on.
    pub source_device: DeviceId,
    /// When it was performed there, by that device's clock.
    pub made_at_ms: i64,
    /// True when, by the time it merged here, a concurrent operation had
    /// won over it (for example a pin that lost to a concurrent unpin): the
    /// app should not show its effect, only that it happened.
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
    Contact(ContactEvent),
    Group(GroupEvent),
    Thread(ThreadEvent),
    Conversation(ConversationEvent),
    Message(MessageEvent),
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
    /// A contact request was sent.
    Added {
        user: UserId,
        greeting: String,
    },
    Accepted {
        user: UserId,
    },
    Declined {
        user: UserId,
    },
    Removed {
        user: UserId,
    },
    Blocked {
        user: UserId,
    },
    Unblocked {
        user: UserId,
    },
    RemarkChanged {
        user: UserId,
        remark: String,
    },
}

/// Group operations done on another device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum GroupEvent {
    Created {
        group: GroupId,
        name: String,
        members: Vec<UserId>,
    },
    Destroyed {
        group: GroupId,
    },
    Joined {
        group: GroupId,
    },
    Left {
        group: GroupId,
    },
    Applied {
        group: GroupId,
        reason: String,
    },
    ApplicationAccepted {
        group: GroupId,
        user: UserId,
    },
    ApplicationDeclined {
        group: GroupId,
        user: UserId,
        reason: String,
    },
    Invited {
        group: GroupId,
        users: Vec<UserId>,
    },
    InvitationAccepted {
        group: GroupId,
        inviter: UserId,
    },
    InvitationDeclined {
        group: GroupId,
        inviter: UserId,
        reason: String,
    },
    MembersKicked {
        group: GroupId,
        users: Vec<UserId>,
    },
    MembersBanned {
        group: GroupId,
        users: Vec<UserId>,
    },
    MembersAllowed {
        group: GroupId,
        users: Vec<UserId>,
    },
    MessagesBlocked {
        group: GroupId,
    },
    MessagesUnblocked {
        group: GroupId,
    },
    OwnerTransferred {
        group: GroupId,
        new_owner: UserId,
    },
    AdminAdded {
        group: GroupId,
        user: UserId,
    },
    AdminRemoved {
        group: GroupId,
        user: UserId,
    },
    MembersMuted {
        group: GroupId,
        users: Vec<UserId>,
        until_ms: i64,
    },
    MembersUnmuted {
        group: GroupId,
        users: Vec<UserId>,
    },
    AllowListAdded {
        group: GroupId,
        users: Vec<UserId>,
    },
    AllowListRemoved {
        group: GroupId,
        users: Vec<UserId>,
    },
    AllMuted {
        group: GroupId,
    },
    AllUnmuted {
        group: GroupId,
    },
    InfoUpdated {
        group: GroupId,
        update: GroupInfoUpdate,
    },
    MemberAttributesChanged {
        group: GroupId,
        user: UserId,
        attributes: Vec<(String, String)>,
    },
}

/// Thread operations done on another device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ThreadEvent {
    Created {
        thread: ThreadId,
        group: GroupId,
        name: String,
    },
    Destroyed {
        thread: ThreadId,
    },
    Joined {
        thread: ThreadId,
        group: GroupId,
    },
    Left {
        thread: ThreadId,
    },
    Updated {
        thread: ThreadId,
        name: String,
    },
    Kicked {
        thread: ThreadId,
        users: Vec<UserId>,
    },
}

/// Conversation and read-state operations done on another device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConversationEvent {
    Pinned {
        conversation: ConversationId,
    },
    Unpinned {
        conversation: ConversationId,
    },
    Deleted {
        conversation: ConversationId,
    },
    MarkChanged {
        conversation: ConversationId,
        mark: String,
        set: bool,
    },
    DoNotDisturbChanged {
        conversation: ConversationId,
        enabled: bool,
    },
    UnreadCleared {
        conversation: ConversationId,
    },
    AllUnreadCleared,
    /// The read marker moved up to `message`.
    Read {
        conversation: ConversationId,
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
        message: MessageId,
        conversation: ConversationId,
    },
    /// A message from someone else arrived on another device.
    Received {
        message: MessageId,
        conversation: ConversationId,
        sender: UserId,
    },
    Recalled {
        message: MessageId,
    },
    DeletedForMe {
        messages: Vec<MessageId>,
    },
    ReceiptUpdated {
        message: MessageId,
        receipt: PeerReceipt,
    },
    /// Another device sent this one a payload.
    PayloadReceived {
        /// The payload's id, 32 hex characters.
        id: String,
        /// The payload, as hex.
        payload: String,
    },
}

/// What happened to this device's connection because of another device or
/// the relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// Another device forced this one offline (the event's source device).
    Kicked { reason: String },
    /// The relay refused this device: the account has too many devices
    /// online.
    TooManyDevices { text: String },
    /// The account logged in on a device the list did not have before (the
    /// event's source device).
    LoggedInOnNewDevice { name: String, platform: String },
    /// The account's device list changed.
    DeviceListChanged,
}

/// The event an operation merged from another device becomes.
pub(crate) fn event_kind(delta: &crate::delta::Delta) -> EventKind {
    use crate::op::*;
    match &delta.op {
        Op::Message(op) => EventKind::Message(match op {
            MessageOp::Send { conversation, .. } => MessageEvent::Sent {
                message: crate::engine::sent_message_id(delta),
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

/// Whether the state after a merge no longer shows the event's effect: a
/// concurrent operation won over it. Messages merge monotonically, so their
/// events are never superseded; nor are clears, whose effect is relative to
/// what each device had.
pub(crate) fn superseded(doc: &crate::doc::AccountDoc, kind: &EventKind) -> bool {
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
            ConversationEvent::Pinned { conversation } => {
                !doc.conversation_settings(&conversation.key()).pinned
            }
            ConversationEvent::Unpinned { conversation } => {
                doc.conversation_settings(&conversation.key()).pinned
            }
            ConversationEvent::MarkChanged {
                conversation,
                mark,
                set,
            } => {
                doc.conversation_settings(&conversation.key())
                    .marks
                    .contains(mark)
                    != *set
            }
            ConversationEvent::DoNotDisturbChanged {
                conversation,
                enabled,
            } => {
                doc.conversation_settings(&conversation.key())
                    .do_not_disturb
                    != *enabled
            }
            ConversationEvent::Read {
                conversation,
                message,
            } => doc.conversation_settings(&conversation.key()).read_message != message.as_str(),
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
