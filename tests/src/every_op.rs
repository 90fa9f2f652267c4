//! The one table of every operation kind, for every "every operation" test.
//!
//! One row per variant of every operation enum.
//! A row says what the operation becomes on another device (its event's
//! category and name in the JSON form), how to draw a random one (for the
//! simulation, the property tests and the fuzz targets, through
//! [`crate::gen`]), and examples that are valid when performed in table
//! order on one fresh device ([`every_op`]). Adding an operation means
//! adding its row here; every count is derived from the table.

use tandem_engine::model::*;
use tandem_engine::op::*;

use crate::gen::{conversation, group, thread, user, Draw};

/// One kind of operation: one variant of an operation enum.
pub struct Kind {
    /// The variant, as `Enum::Variant`.
    pub name: &'static str,
    /// The event it becomes on another device: `(category, op)` as in
    /// [`Event::to_json_value`](tandem_engine::Event::to_json_value).
    pub event: (&'static str, &'static str),
    /// How often [`crate::gen::op`] draws this kind, relative to the others.
    pub weight: u64,
    /// Examples of this kind; performed in table order, every example of
    /// every row on one fresh device of [`crate::gen::ACCOUNT`], each is
    /// valid.
    pub examples: fn() -> Vec<Op>,
    /// A random operation of this kind over the small universe of
    /// [`crate::gen`]. It may be refused by a device's state.
    pub random: fn(&mut Draw<'_>) -> Op,
}

/// The index of the kind named `name` in [`KINDS`].
///
/// # Panics
///
/// When no kind has that name: a test names a kind that does not exist.
pub fn kind(name: &str) -> usize {
    KINDS
        .iter()
        .position(|k| k.name == name)
        .unwrap_or_else(|| panic!("no operation kind {name}"))
}

/// Every example of every kind, in table order: valid in this order on one
/// fresh device.
pub fn every_op() -> Vec<Op> {
    every_op_with_kind().into_iter().map(|(op, _)| op).collect()
}

/// [`every_op`], each with its kind.
pub fn every_op_with_kind() -> Vec<(Op, &'static Kind)> {
    KINDS
        .iter()
        .flat_map(|kind| (kind.examples)().into_iter().map(move |op| (op, kind)))
        .collect()
}

fn ingest(id: &str, conv: &str, sender: &str, at: i64) -> Op {
    Op::Message(MessageOp::Ingest {
        message: IncomingMessage {
            id: MessageId::new(id).expect("a valid message id"),
            conversation: conversation(conv),
            sender: user(sender),
            sent_at_ms: at,
            body: format!("text of {id}"),
        },
    })
}

fn m(id: &str) -> MessageId {
    MessageId::new(id).expect("a valid message id")
}

fn users(ids: &[&str]) -> Vec<UserId> {
    ids.iter().map(|u| user(u)).collect()
}

/// Message and read-state operations are what IM state is mostly made of,
/// so they are drawn this much more often than the rest.
const OFTEN: u64 = 5;

/// The table. Its order is the order of [`every_op`].
pub const KINDS: &[Kind] = &[
    // ---- Messages ----
    Kind {
        name: "MessageOp::Ingest",
        event: ("message", "received"),
        weight: OFTEN + 1,
        examples: || {
            vec![
                ingest("m1", "u:bob", "bob", 100),
                ingest("m2", "u:bob", "bob", 101),
                ingest("m3", "u:bob", "bob", 102),
                ingest("m4", "u:carol", "carol", 103),
                // A chat room's messages sync like any other's.
                ingest("m5", "r:lobby", "zoe", 104),
            ]
        },
        random: |d| {
            Op::Message(MessageOp::Ingest {
                message: d.pool_message(),
            })
        },
    },
    Kind {
        name: "MessageOp::Send",
        event: ("message", "sent"),
        weight: OFTEN,
        examples: || {
            vec![Op::Message(MessageOp::Send {
                conversation: conversation("u:bob"),
                body: "hello bob".into(),
            })]
        },
        random: |d| {
            Op::Message(MessageOp::Send {
                conversation: d.conversation(),
                body: d.text(),
            })
        },
    },
    Kind {
        name: "MessageOp::Recall",
        event: ("message", "recalled"),
        weight: OFTEN,
        examples: || vec![Op::Message(MessageOp::Recall { message: m("m2") })],
        random: |d| {
            Op::Message(MessageOp::Recall {
                message: d.message().0,
            })
        },
    },
    Kind {
        name: "MessageOp::DeleteForMe",
        event: ("message", "deleted_for_me"),
        weight: OFTEN,
        examples: || {
            vec![Op::Message(MessageOp::DeleteForMe {
                messages: vec![m("m3")],
            })]
        },
        random: |d| {
            let count = 1 + d.below(2) as usize;
            Op::Message(MessageOp::DeleteForMe {
                messages: (0..count).map(|_| d.message().0).collect(),
            })
        },
    },
    Kind {
        name: "MessageOp::Receipt",
        event: ("message", "receipt_updated"),
        weight: OFTEN,
        examples: || {
            vec![Op::Message(MessageOp::Receipt {
                message: m("m1"),
                receipt: PeerReceipt::Read,
            })]
        },
        random: |d| {
            Op::Message(MessageOp::Receipt {
                message: d.message().0,
                receipt: if d.below(2) == 0 {
                    PeerReceipt::Delivered
                } else {
                    PeerReceipt::Read
                },
            })
        },
    },
    Kind {
        name: "MessageOp::GroupRead",
        event: ("message", "group_read"),
        weight: OFTEN,
        examples: || {
            vec![Op::Message(MessageOp::GroupRead {
                message: m("m5"),
                member: user("yan"),
            })]
        },
        random: |d| {
            Op::Message(MessageOp::GroupRead {
                message: d.message().0,
                member: d.user(),
            })
        },
    },
    // ---- Conversations ----
    Kind {
        name: "ConversationOp::MarkRead",
        event: ("conversation", "read"),
        weight: OFTEN + 1,
        examples: || {
            vec![Op::Conversation(ConversationOp::MarkRead {
                conversation: conversation("u:bob"),
                message: m("m1"),
            })]
        },
        random: |d| {
            let (message, mut conversation) = d.message();
            // Now and then name the wrong conversation: it must be refused.
            if d.below(40) == 0 {
                conversation = d.conversation();
            }
            Op::Conversation(ConversationOp::MarkRead {
                conversation,
                message,
            })
        },
    },
    Kind {
        name: "ConversationOp::ClearUnread",
        event: ("conversation", "unread_cleared"),
        weight: OFTEN,
        examples: || {
            vec![Op::Conversation(ConversationOp::ClearUnread {
                conversation: conversation("u:bob"),
            })]
        },
        random: |d| {
            Op::Conversation(ConversationOp::ClearUnread {
                conversation: d.conversation(),
            })
        },
    },
    Kind {
        name: "ConversationOp::ClearAllUnread",
        event: ("conversation", "all_unread_cleared"),
        weight: OFTEN,
        examples: || vec![Op::Conversation(ConversationOp::ClearAllUnread)],
        random: |_| Op::Conversation(ConversationOp::ClearAllUnread),
    },
    Kind {
        name: "ConversationOp::Pin",
        event: ("conversation", "pinned"),
        weight: 1,
        examples: || {
            vec![Op::Conversation(ConversationOp::Pin {
                conversation: conversation("u:bob"),
            })]
        },
        random: |d| {
            Op::Conversation(ConversationOp::Pin {
                conversation: d.conversation(),
            })
        },
    },
    Kind {
        name: "ConversationOp::Unpin",
        event: ("conversation", "unpinned"),
        weight: 1,
        examples: || {
            vec![Op::Conversation(ConversationOp::Unpin {
                conversation: conversation("u:bob"),
            })]
        },
        random: |d| {
            Op::Conversation(ConversationOp::Unpin {
                conversation: d.conversation(),
            })
        },
    },
    Kind {
        name: "ConversationOp::AddMark",
        event: ("conversation", "mark_changed"),
        weight: 1,
        examples: || {
            vec![Op::Conversation(ConversationOp::AddMark {
                conversation: conversation("u:bob"),
                mark: "work".into(),
            })]
        },
        random: |d| {
            Op::Conversation(ConversationOp::AddMark {
                conversation: d.conversation(),
                mark: d.mark(),
            })
        },
    },
    Kind {
        name: "ConversationOp::RemoveMark",
        event: ("conversation", "mark_changed"),
        weight: 1,
        examples: || {
            vec![Op::Conversation(ConversationOp::RemoveMark {
                conversation: conversation("u:bob"),
                mark: "work".into(),
            })]
        },
        random: |d| {
            Op::Conversation(ConversationOp::RemoveMark {
                conversation: d.conversation(),
                mark: d.mark(),
            })
        },
    },
    Kind {
        name: "ConversationOp::SetDoNotDisturb",
        event: ("conversation", "do_not_disturb_changed"),
        weight: 1,
        examples: || {
            vec![Op::Conversation(ConversationOp::SetDoNotDisturb {
                conversation: conversation("u:bob"),
                enabled: true,
            })]
        },
        random: |d| {
            Op::Conversation(ConversationOp::SetDoNotDisturb {
                conversation: d.conversation(),
                enabled: d.below(2) == 0,
            })
        },
    },
    Kind {
        name: "ConversationOp::SetDoNotDisturbMode",
        event: ("conversation", "do_not_disturb_mode_changed"),
        weight: 1,
        examples: || {
            vec![
                Op::Conversation(ConversationOp::SetDoNotDisturbMode {
                    conversation: conversation("u:carol"),
                    mode: DoNotDisturb {
                        remind: RemindType::MentionsOnly,
                        quiet: Some(QuietTime::Until { until_ms: 9_000 }),
                    },
                }),
                Op::Conversation(ConversationOp::SetDoNotDisturbMode {
                    conversation: conversation("r:lobby"),
                    mode: DoNotDisturb {
                        remind: RemindType::All,
                        quiet: Some(QuietTime::Daily {
                            start_minute: 22 * 60,
                            end_minute: 7 * 60,
                            utc_offset_minutes: 60,
                        }),
                    },
                }),
            ]
        },
        random: |d| {
            let remind =
                [RemindType::All, RemindType::MentionsOnly, RemindType::None][d.below(3) as usize];
            let quiet = match d.below(3) {
                0 => None,
                1 => Some(QuietTime::Until {
                    until_ms: d.time_ms(),
                }),
                _ => {
                    // Any valid window: the end is never the start.
                    let start = d.below(1_440);
                    Some(QuietTime::Daily {
                        start_minute: start as u16,
                        end_minute: ((start + 1 + d.below(1_439)) % 1_440) as u16,
                        utc_offset_minutes: d.below(1_681) as i16 - 840,
                    })
                }
            };
            Op::Conversation(ConversationOp::SetDoNotDisturbMode {
                conversation: d.conversation(),
                mode: DoNotDisturb { remind, quiet },
            })
        },
    },
    Kind {
        name: "ConversationOp::PinMessage",
        event: ("conversation", "message_pinned"),
        weight: 1,
        examples: || {
            vec![
                Op::Conversation(ConversationOp::PinMessage {
                    conversation: conversation("u:bob"),
                    message: m("m1"),
                }),
                Op::Conversation(ConversationOp::PinMessage {
                    conversation: conversation("r:lobby"),
                    message: m("m5"),
                }),
            ]
        },
        random: |d| {
            let (message, mut conversation) = d.message();
            // Now and then name the wrong conversation: it must be refused.
            if d.below(40) == 0 {
                conversation = d.conversation();
            }
            Op::Conversation(ConversationOp::PinMessage {
                conversation,
                message,
            })
        },
    },
    Kind {
        name: "ConversationOp::UnpinMessage",
        event: ("conversation", "message_unpinned"),
        weight: 1,
        examples: || {
            vec![Op::Conversation(ConversationOp::UnpinMessage {
                conversation: conversation("u:bob"),
                message: m("m1"),
            })]
        },
        random: |d| {
            let (message, conversation) = d.message();
            Op::Conversation(ConversationOp::UnpinMessage {
                conversation,
                message,
            })
        },
    },
    Kind {
        name: "ConversationOp::Delete",
        event: ("conversation", "deleted"),
        weight: 1,
        examples: || {
            vec![Op::Conversation(ConversationOp::Delete {
                conversation: conversation("u:carol"),
            })]
        },
        random: |d| {
            Op::Conversation(ConversationOp::Delete {
                conversation: d.conversation(),
            })
        },
    },
    // ---- Contacts ----
    Kind {
        name: "ContactOp::Add",
        event: ("contact", "added"),
        weight: 1,
        examples: || {
            vec![
                Op::Contact(ContactOp::Add {
                    user: user("dave"),
                    greeting: "hi".into(),
                }),
                Op::Contact(ContactOp::Add {
                    user: user("erin"),
                    greeting: String::new(),
                }),
            ]
        },
        random: |d| {
            Op::Contact(ContactOp::Add {
                user: d.user(),
                greeting: d.text(),
            })
        },
    },
    Kind {
        name: "ContactOp::Decline",
        event: ("contact", "declined"),
        weight: 1,
        examples: || vec![Op::Contact(ContactOp::Decline { user: user("dave") })],
        random: |d| Op::Contact(ContactOp::Decline { user: d.user() }),
    },
    Kind {
        name: "ContactOp::ReceiveRequest",
        event: ("contact", "request_received"),
        weight: 1,
        examples: || {
            vec![Op::Contact(ContactOp::ReceiveRequest {
                user: user("bob"),
                greeting: "hi, it's bob".into(),
            })]
        },
        random: |d| {
            Op::Contact(ContactOp::ReceiveRequest {
                user: d.user(),
                greeting: d.text(),
            })
        },
    },
    Kind {
        name: "ContactOp::Accept",
        event: ("contact", "accepted"),
        // Most contact operations need a contact first.
        weight: 2,
        examples: || vec![Op::Contact(ContactOp::Accept { user: user("bob") })],
        random: |d| Op::Contact(ContactOp::Accept { user: d.user() }),
    },
    Kind {
        name: "ContactOp::SetRemark",
        event: ("contact", "remark_changed"),
        weight: 1,
        examples: || {
            vec![Op::Contact(ContactOp::SetRemark {
                user: user("bob"),
                remark: "Bobby".into(),
            })]
        },
        random: |d| {
            Op::Contact(ContactOp::SetRemark {
                user: d.user(),
                remark: d.text(),
            })
        },
    },
    Kind {
        name: "ContactOp::WithExt",
        event: ("contact", "remark_changed"),
        weight: 1,
        examples: || {
            vec![Op::Contact(
                ContactOp::SetRemark {
                    user: user("bob"),
                    remark: "Bob (work)".into(),
                }
                .with_ext("renamed from the desk phone"),
            )]
        },
        random: |d| {
            let user = d.user();
            let inner = match d.below(4) {
                0 => ContactOp::Accept { user },
                1 => ContactOp::Decline { user },
                2 => ContactOp::Remove { user },
                _ => ContactOp::SetRemark {
                    user,
                    remark: d.text(),
                },
            };
            Op::Contact(inner.with_ext(d.text()))
        },
    },
    Kind {
        name: "ContactOp::Remove",
        event: ("contact", "removed"),
        weight: 1,
        examples: || vec![Op::Contact(ContactOp::Remove { user: user("erin") })],
        random: |d| Op::Contact(ContactOp::Remove { user: d.user() }),
    },
    Kind {
        name: "ContactOp::Block",
        event: ("contact", "blocked"),
        weight: 1,
        examples: || {
            vec![
                Op::Contact(ContactOp::Block { user: user("eve") }),
                Op::Contact(ContactOp::Block {
                    user: user("mallory"),
                }),
            ]
        },
        random: |d| Op::Contact(ContactOp::Block { user: d.user() }),
    },
    Kind {
        name: "ContactOp::Unblock",
        event: ("contact", "unblocked"),
        weight: 1,
        examples: || vec![Op::Contact(ContactOp::Unblock { user: user("eve") })],
        random: |d| Op::Contact(ContactOp::Unblock { user: d.user() }),
    },
    // ---- Groups ----
    Kind {
        name: "GroupOp::Create",
        event: ("group", "created"),
        // Most group operations need a group first.
        weight: 2,
        examples: || {
            vec![Op::Group(GroupOp::Create {
                group: group("g1"),
                name: "Team".into(),
                members: users(&["bob", "carol"]),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::Create {
                group: d.group(),
                name: d.text(),
                members: if d.below(6) == 0 {
                    Vec::new()
                } else {
                    d.users()
                },
            })
        },
    },
    Kind {
        name: "GroupOp::Invite",
        event: ("group", "invited"),
        weight: 1,
        examples: || {
            vec![
                Op::Group(GroupOp::Invite {
                    group: group("g1"),
                    users: users(&["dave"]),
                }),
                Op::Group(GroupOp::Invite {
                    group: group("g1"),
                    users: users(&["frank"]),
                }),
            ]
        },
        random: |d| {
            Op::Group(GroupOp::Invite {
                group: d.group(),
                users: d.users(),
            })
        },
    },
    Kind {
        name: "GroupOp::InviteeAccepted",
        event: ("group", "invitee_accepted"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::InviteeAccepted {
                group: group("g1"),
                user: user("dave"),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::InviteeAccepted {
                group: d.group(),
                user: d.user(),
            })
        },
    },
    Kind {
        name: "GroupOp::InviteeDeclined",
        event: ("group", "invitee_declined"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::InviteeDeclined {
                group: group("g1"),
                user: user("frank"),
                reason: "busy".into(),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::InviteeDeclined {
                group: d.group(),
                user: d.user(),
                reason: d.text(),
            })
        },
    },
    Kind {
        name: "GroupOp::ReceiveApplication",
        event: ("group", "application_received"),
        weight: 1,
        examples: || {
            vec![
                Op::Group(GroupOp::ReceiveApplication {
                    group: group("g1"),
                    user: user("erin"),
                    reason: "hi, it's erin".into(),
                }),
                Op::Group(GroupOp::ReceiveApplication {
                    group: group("g1"),
                    user: user("frank"),
                    reason: String::new(),
                }),
            ]
        },
        random: |d| {
            Op::Group(GroupOp::ReceiveApplication {
                group: d.group(),
                user: d.user(),
                reason: d.text(),
            })
        },
    },
    Kind {
        name: "GroupOp::AcceptApplication",
        event: ("group", "application_accepted"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::AcceptApplication {
                group: group("g1"),
                user: user("erin"),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::AcceptApplication {
                group: d.group(),
                user: d.user(),
            })
        },
    },
    Kind {
        name: "GroupOp::DeclineApplication",
        event: ("group", "application_declined"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::DeclineApplication {
                group: group("g1"),
                user: user("frank"),
                reason: "no".into(),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::DeclineApplication {
                group: d.group(),
                user: d.user(),
                reason: d.text(),
            })
        },
    },
    Kind {
        name: "GroupOp::Kick",
        event: ("group", "members_kicked"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::Kick {
                group: group("g1"),
                users: users(&["dave"]),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::Kick {
                group: d.group(),
                users: d.users(),
            })
        },
    },
    Kind {
        name: "GroupOp::Ban",
        event: ("group", "members_banned"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::Ban {
                group: group("g1"),
                users: users(&["erin"]),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::Ban {
                group: d.group(),
                users: d.users(),
            })
        },
    },
    Kind {
        name: "GroupOp::Allow",
        event: ("group", "members_allowed"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::Allow {
                group: group("g1"),
                users: users(&["erin"]),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::Allow {
                group: d.group(),
                users: d.users(),
            })
        },
    },
    Kind {
        name: "GroupOp::BlockMessages",
        event: ("group", "messages_blocked"),
        weight: 1,
        examples: || vec![Op::Group(GroupOp::BlockMessages { group: group("g1") })],
        random: |d| Op::Group(GroupOp::BlockMessages { group: d.group() }),
    },
    Kind {
        name: "GroupOp::UnblockMessages",
        event: ("group", "messages_unblocked"),
        weight: 1,
        examples: || vec![Op::Group(GroupOp::UnblockMessages { group: group("g1") })],
        random: |d| Op::Group(GroupOp::UnblockMessages { group: d.group() }),
    },
    Kind {
        name: "GroupOp::AddAdmin",
        event: ("group", "admin_added"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::AddAdmin {
                group: group("g1"),
                user: user("bob"),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::AddAdmin {
                group: d.group(),
                user: d.user(),
            })
        },
    },
    Kind {
        name: "GroupOp::RemoveAdmin",
        event: ("group", "admin_removed"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::RemoveAdmin {
                group: group("g1"),
                user: user("bob"),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::RemoveAdmin {
                group: d.group(),
                user: d.user(),
            })
        },
    },
    Kind {
        name: "GroupOp::Mute",
        event: ("group", "members_muted"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::Mute {
                group: group("g1"),
                users: users(&["carol"]),
                until_ms: 5_000,
            })]
        },
        random: |d| {
            Op::Group(GroupOp::Mute {
                group: d.group(),
                users: d.users(),
                until_ms: 50_000 + d.below(1_000) as i64 * 100,
            })
        },
    },
    Kind {
        name: "GroupOp::Unmute",
        event: ("group", "members_unmuted"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::Unmute {
                group: group("g1"),
                users: users(&["carol"]),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::Unmute {
                group: d.group(),
                users: d.users(),
            })
        },
    },
    Kind {
        name: "GroupOp::AddAllowList",
        event: ("group", "allow_list_added"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::AddAllowList {
                group: group("g1"),
                users: users(&["bob"]),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::AddAllowList {
                group: d.group(),
                users: d.users(),
            })
        },
    },
    Kind {
        name: "GroupOp::RemoveAllowList",
        event: ("group", "allow_list_removed"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::RemoveAllowList {
                group: group("g1"),
                users: users(&["bob"]),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::RemoveAllowList {
                group: d.group(),
                users: d.users(),
            })
        },
    },
    Kind {
        name: "GroupOp::MuteAll",
        event: ("group", "all_muted"),
        weight: 1,
        examples: || vec![Op::Group(GroupOp::MuteAll { group: group("g1") })],
        random: |d| Op::Group(GroupOp::MuteAll { group: d.group() }),
    },
    Kind {
        name: "GroupOp::UnmuteAll",
        event: ("group", "all_unmuted"),
        weight: 1,
        examples: || vec![Op::Group(GroupOp::UnmuteAll { group: group("g1") })],
        random: |d| Op::Group(GroupOp::UnmuteAll { group: d.group() }),
    },
    Kind {
        name: "GroupOp::UpdateInfo",
        event: ("group", "info_updated"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::UpdateInfo {
                group: group("g1"),
                update: GroupInfoUpdate {
                    name: Some("Core team".into()),
                    description: Some("The core".into()),
                    announcement: Some("Ship it".into()),
                },
            })]
        },
        random: |d| {
            let group = d.group();
            let field = |d: &mut Draw<'_>| (d.below(2) == 0).then(|| d.text());
            Op::Group(GroupOp::UpdateInfo {
                group,
                update: GroupInfoUpdate {
                    name: field(d),
                    description: field(d),
                    announcement: field(d),
                },
            })
        },
    },
    Kind {
        name: "GroupOp::SetMemberAttributes",
        event: ("group", "member_attributes_changed"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::SetMemberAttributes {
                group: group("g1"),
                user: user("bob"),
                attributes: vec![("nick".into(), "B".into())],
            })]
        },
        random: |d| {
            let count = 1 + d.below(2) as usize;
            let group = d.group();
            let user = if d.below(3) == 0 {
                user(crate::gen::ACCOUNT)
            } else {
                d.user()
            };
            Op::Group(GroupOp::SetMemberAttributes {
                group,
                user,
                attributes: (0..count).map(|_| (d.attribute_key(), d.text())).collect(),
            })
        },
    },
    Kind {
        name: "GroupOp::RemoveMemberAttributes",
        event: ("group", "member_attributes_removed"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::RemoveMemberAttributes {
                group: group("g1"),
                user: user("bob"),
                keys: vec!["nick".into()],
            })]
        },
        random: |d| {
            let count = 1 + d.below(2) as usize;
            let group = d.group();
            let user = if d.below(3) == 0 {
                user(crate::gen::ACCOUNT)
            } else {
                d.user()
            };
            Op::Group(GroupOp::RemoveMemberAttributes {
                group,
                user,
                keys: (0..count).map(|_| d.attribute_key()).collect(),
            })
        },
    },
    Kind {
        name: "GroupOp::Disable",
        event: ("group", "disabled"),
        weight: 1,
        examples: || vec![Op::Group(GroupOp::Disable { group: group("g1") })],
        random: |d| Op::Group(GroupOp::Disable { group: d.group() }),
    },
    Kind {
        name: "GroupOp::Enable",
        event: ("group", "enabled"),
        weight: 1,
        examples: || vec![Op::Group(GroupOp::Enable { group: group("g1") })],
        random: |d| Op::Group(GroupOp::Enable { group: d.group() }),
    },
    Kind {
        name: "GroupOp::TransferOwner",
        event: ("group", "owner_transferred"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::TransferOwner {
                group: group("g1"),
                new_owner: user("bob"),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::TransferOwner {
                group: d.group(),
                new_owner: d.user(),
            })
        },
    },
    Kind {
        name: "GroupOp::Apply",
        event: ("group", "applied"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::Apply {
                group: group("g2"),
                reason: "let me in".into(),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::Apply {
                group: d.group(),
                reason: d.text(),
            })
        },
    },
    Kind {
        name: "GroupOp::Join",
        event: ("group", "joined"),
        weight: 1,
        examples: || vec![Op::Group(GroupOp::Join { group: group("g3") })],
        random: |d| Op::Group(GroupOp::Join { group: d.group() }),
    },
    Kind {
        name: "GroupOp::Leave",
        event: ("group", "left"),
        weight: 1,
        examples: || vec![Op::Group(GroupOp::Leave { group: group("g3") })],
        random: |d| Op::Group(GroupOp::Leave { group: d.group() }),
    },
    Kind {
        name: "GroupOp::ReceiveInvitation",
        event: ("group", "invitation_received"),
        weight: 1,
        examples: || {
            vec![
                Op::Group(GroupOp::ReceiveInvitation {
                    group: group("g4"),
                    inviter: user("bob"),
                }),
                Op::Group(GroupOp::ReceiveInvitation {
                    group: group("g5"),
                    inviter: user("carol"),
                }),
            ]
        },
        random: |d| {
            Op::Group(GroupOp::ReceiveInvitation {
                group: d.group(),
                inviter: d.user(),
            })
        },
    },
    Kind {
        name: "GroupOp::AcceptInvitation",
        event: ("group", "invitation_accepted"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::AcceptInvitation {
                group: group("g4"),
                inviter: user("bob"),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::AcceptInvitation {
                group: d.group(),
                inviter: d.user(),
            })
        },
    },
    Kind {
        name: "GroupOp::DeclineInvitation",
        event: ("group", "invitation_declined"),
        weight: 1,
        examples: || {
            vec![Op::Group(GroupOp::DeclineInvitation {
                group: group("g5"),
                inviter: user("bob"),
                reason: String::new(),
            })]
        },
        random: |d| {
            Op::Group(GroupOp::DeclineInvitation {
                group: d.group(),
                inviter: d.user(),
                reason: d.text(),
            })
        },
    },
    Kind {
        name: "GroupOp::Destroy",
        event: ("group", "destroyed"),
        weight: 1,
        examples: || vec![Op::Group(GroupOp::Destroy { group: group("g2") })],
        random: |d| Op::Group(GroupOp::Destroy { group: d.group() }),
    },
    // ---- Threads ----
    Kind {
        name: "ThreadOp::Create",
        event: ("thread", "created"),
        // Most thread operations need a thread first.
        weight: 2,
        examples: || {
            vec![Op::Thread(ThreadOp::Create {
                thread: thread("t1"),
                group: group("g1"),
                name: "Plans".into(),
            })]
        },
        random: |d| {
            Op::Thread(ThreadOp::Create {
                thread: d.thread(),
                group: d.group(),
                name: d.text(),
            })
        },
    },
    Kind {
        name: "ThreadOp::Update",
        event: ("thread", "updated"),
        weight: 1,
        examples: || {
            vec![Op::Thread(ThreadOp::Update {
                thread: thread("t1"),
                name: "Plans v2".into(),
            })]
        },
        random: |d| {
            Op::Thread(ThreadOp::Update {
                thread: d.thread(),
                name: d.text(),
            })
        },
    },
    Kind {
        name: "ThreadOp::Join",
        event: ("thread", "joined"),
        weight: 1,
        examples: || {
            vec![Op::Thread(ThreadOp::Join {
                thread: thread("t2"),
                group: group("g1"),
            })]
        },
        random: |d| {
            Op::Thread(ThreadOp::Join {
                thread: d.thread(),
                group: d.group(),
            })
        },
    },
    Kind {
        name: "ThreadOp::Kick",
        event: ("thread", "kicked"),
        weight: 1,
        examples: || {
            // The thread's only member is the account itself (kicking a
            // user who is not a member would change nothing).
            vec![Op::Thread(ThreadOp::Kick {
                thread: thread("t2"),
                users: users(&[crate::gen::ACCOUNT]),
            })]
        },
        random: |d| {
            Op::Thread(ThreadOp::Kick {
                thread: d.thread(),
                users: d.users(),
            })
        },
    },
    Kind {
        name: "ThreadOp::Leave",
        event: ("thread", "left"),
        weight: 1,
        examples: || {
            vec![Op::Thread(ThreadOp::Leave {
                thread: thread("t2"),
            })]
        },
        random: |d| Op::Thread(ThreadOp::Leave { thread: d.thread() }),
    },
    Kind {
        name: "ThreadOp::Destroy",
        event: ("thread", "destroyed"),
        weight: 1,
        examples: || {
            vec![Op::Thread(ThreadOp::Destroy {
                thread: thread("t1"),
            })]
        },
        random: |d| Op::Thread(ThreadOp::Destroy { thread: d.thread() }),
    },
    // ---- The roster ----
    Kind {
        name: "DeviceOp::Link",
        event: ("device", "linked"),
        weight: 1,
        examples: || vec![Op::Device(link(0xd1, 0x51))],
        // Four devices, three key sets: concurrent Links of one device
        // with other keys happen, and every device must keep the same one.
        // The ids are none of the simulation's devices.
        random: |d| {
            let device = 0xd0 + d.below(4) as u8;
            let keys = 0x50 + d.below(3) as u8;
            Op::Device(link(device, keys))
        },
    },
];

/// A Link of device `[device; 16]` with keys made of the byte `keys`.
fn link(device: u8, keys: u8) -> DeviceOp {
    DeviceOp::Link {
        device: tandem_engine::DeviceId([device; 16]),
        sign_pk: tandem_engine::DevicePublicKey([keys; 32]),
        kem_pk: [keys.wrapping_add(1); 32],
    }
}
