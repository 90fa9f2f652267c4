//! Multi-device events as the bindings see them, mirroring `tandem_engine::event`.
//!
//! An [`Event`] carries its typed [`EventKind`] and, beside it, the
//! engine's stable flat JSON form (`Event::json`), which is the same text
//! the CLI prints. The kinds mirror the engine's categories variant for
//! variant, with ids as strings.

use tandem_engine::event as e;

use crate::model::{QuietTime, RemindType};
use crate::op::{attributes_from_engine, AttributeEntry, GroupInfoUpdate, PeerReceipt};

/// One thing that happened on another device of the account (or to this
/// device's connection).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Event {
    /// Position in the journal: increasing, never reused. Acknowledge up to
    /// it with `ack_events`.
    pub seq: i64,
    /// The device it was performed on (32 hex characters); for a payload the
    /// sender, for a connection event the device that caused it.
    pub source_device: String,
    /// When it was performed there, in ms since the Unix epoch by that
    /// device's clock (for payloads and connection events: when this device
    /// journaled them).
    pub made_at_ms: i64,
    /// True when a concurrent operation won over it by the time it merged
    /// here: show that it happened, not its effect.
    pub superseded: bool,
    /// What happened, typed.
    pub kind: EventKind,
    /// The app's free-form text the operation carried
    /// (`Op.ContactWithExt`), if any.
    pub ext: Option<String>,
    /// The engine's stable JSON form of the whole event:
    /// `{"category", "op", …targets, "seq", "source_device", "made_at_ms",
    /// "superseded"}`.
    pub json: String,
}

/// What happened, by category.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum EventKind {
    /// A contact or blocklist operation.
    Contact { event: ContactEvent },
    /// A group operation.
    Group { event: GroupEvent },
    /// A thread operation.
    Thread { event: ThreadEvent },
    /// A conversation or read-state operation.
    Conversation { event: ConversationEvent },
    /// A message operation, or a payload another device sent to this one.
    Message { event: MessageEvent },
    /// Something that happened to this device's connection.
    Connection { event: ConnectionEvent },
    /// A roster operation: a device linked to the account.
    Device { event: DeviceEvent },
    /// A kind this build of the bindings does not know (the engine is newer
    /// than the bindings); `json` has the whole event. Never produced when
    /// engine and bindings are built from the same source: the tests map
    /// every operation's event.
    Unknown { category: String, op: String },
}

/// Contact operations done on another device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ContactEvent {
    Added { user: String, greeting: String },
    Accepted { user: String },
    Declined { user: String },
    Removed { user: String },
    Blocked { user: String },
    Unblocked { user: String },
    RemarkChanged { user: String, remark: String },
    RequestReceived { user: String, greeting: String },
}

/// Conversation and read-state operations done on another device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ConversationEvent {
    Pinned {
        conversation: String,
    },
    Unpinned {
        conversation: String,
    },
    Deleted {
        conversation: String,
    },
    MarkChanged {
        conversation: String,
        mark: String,
        /// True when the mark was set, false when it was removed.
        set: bool,
    },
    DoNotDisturbChanged {
        conversation: String,
        enabled: bool,
    },
    UnreadCleared {
        conversation: String,
    },
    AllUnreadCleared,
    Read {
        conversation: String,
        message: String,
    },
    MessagePinned {
        conversation: String,
        message: String,
    },
    MessageUnpinned {
        conversation: String,
        message: String,
    },
    DoNotDisturbModeChanged {
        conversation: String,
        remind: RemindType,
        quiet: Option<QuietTime>,
    },
}

/// Message operations done on another device, and payloads addressed to
/// this one.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum MessageEvent {
    Sent {
        message: String,
        conversation: String,
    },
    Received {
        message: String,
        conversation: String,
        sender: String,
    },
    Recalled {
        message: String,
    },
    DeletedForMe {
        messages: Vec<String>,
    },
    ReceiptUpdated {
        message: String,
        receipt: PeerReceipt,
    },
    /// Another device sent this one a payload (the event's source device).
    PayloadReceived {
        /// The payload's id, 32 hex characters, as `send_to_device` returned it.
        id: String,
        /// The payload's bytes.
        payload: Vec<u8>,
    },
    /// A group member read a message (and every earlier one of its
    /// conversation).
    GroupRead {
        message: String,
        member: String,
    },
}

/// Group operations done on another device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum GroupEvent {
    Created {
        group: String,
        name: String,
        members: Vec<String>,
    },
    Destroyed {
        group: String,
    },
    Joined {
        group: String,
    },
    Left {
        group: String,
    },
    Applied {
        group: String,
        reason: String,
    },
    ApplicationAccepted {
        group: String,
        user: String,
    },
    ApplicationDeclined {
        group: String,
        user: String,
        reason: String,
    },
    Invited {
        group: String,
        users: Vec<String>,
    },
    InvitationAccepted {
        group: String,
        inviter: String,
    },
    InvitationDeclined {
        group: String,
        inviter: String,
        reason: String,
    },
    MembersKicked {
        group: String,
        users: Vec<String>,
    },
    MembersBanned {
        group: String,
        users: Vec<String>,
    },
    MembersAllowed {
        group: String,
        users: Vec<String>,
    },
    MessagesBlocked {
        group: String,
    },
    MessagesUnblocked {
        group: String,
    },
    OwnerTransferred {
        group: String,
        new_owner: String,
    },
    AdminAdded {
        group: String,
        user: String,
    },
    AdminRemoved {
        group: String,
        user: String,
    },
    MembersMuted {
        group: String,
        users: Vec<String>,
        until_ms: i64,
    },
    MembersUnmuted {
        group: String,
        users: Vec<String>,
    },
    AllowListAdded {
        group: String,
        users: Vec<String>,
    },
    AllowListRemoved {
        group: String,
        users: Vec<String>,
    },
    AllMuted {
        group: String,
    },
    AllUnmuted {
        group: String,
    },
    InfoUpdated {
        group: String,
        update: GroupInfoUpdate,
    },
    MemberAttributesChanged {
        group: String,
        user: String,
        attributes: Vec<AttributeEntry>,
    },
    InvitationReceived {
        group: String,
        inviter: String,
    },
    InviteeAccepted {
        group: String,
        user: String,
    },
    InviteeDeclined {
        group: String,
        user: String,
        reason: String,
    },
    ApplicationReceived {
        group: String,
        user: String,
        reason: String,
    },
    MemberAttributesRemoved {
        group: String,
        user: String,
        keys: Vec<String>,
    },
    Disabled {
        group: String,
    },
    Enabled {
        group: String,
    },
}

/// Roster operations done on another device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum DeviceEvent {
    /// A device was linked to the account (or, when `device` is the
    /// event's source, that device made the account key), with its keys as
    /// hex: 32 digits for the device, 64 for each key.
    Linked {
        device: String,
        sign_pk: String,
        kem_pk: String,
    },
}

/// Thread operations done on another device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ThreadEvent {
    Created {
        thread: String,
        group: String,
        name: String,
    },
    Destroyed {
        thread: String,
    },
    Joined {
        thread: String,
        group: String,
    },
    Left {
        thread: String,
    },
    Updated {
        thread: String,
        name: String,
    },
    Kicked {
        thread: String,
        users: Vec<String>,
    },
}

/// What happened to this device's connection because of another device or
/// the relay.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ConnectionEvent {
    /// Another device (the event's source) forced this one offline.
    Kicked { reason: String },
    /// The relay refused this device: too many devices online.
    TooManyDevices { text: String },
    /// The account logged in on a device the list did not have before (the
    /// event's source device).
    LoggedInOnNewDevice { name: String, platform: String },
    /// The account's device list changed; ask the relay for it.
    DeviceListChanged,
    /// This device started catching up with the relay's log: entries after
    /// `from_seq` up to `to_seq` are to come.
    CatchUpStarted { from_seq: u64, to_seq: u64 },
    /// This device has merged the relay's log up to `cursor`.
    CatchUpFinished { cursor: u64 },
    /// Another device of the account (id in hex, name, platform) kicked this
    /// one: it logs in again only with a new login token.
    KickedByDevice {
        device: String,
        name: String,
        platform: String,
    },
    /// The device limit displaced this device for a newer login (named).
    DisplacedByLimit {
        device: String,
        name: String,
        platform: String,
    },
    /// This device logged out.
    LoggedOut,
    /// The relay's operator revoked this device.
    RevokedByOperator,
    /// Every credential of the account was revoked (a password change).
    AllCredentialsRevoked,
    /// The operator removed the account.
    AccountRemoved,
    /// The operator banned the account.
    AccountBanned,
    /// The relay refused this device's login: as many devices online as
    /// allowed; one can be kicked from outside with a manage token.
    TooManyDevicesOnline { devices: Vec<DeviceSummary> },
    /// This device's enrollment expired: it logs in again with a login token.
    CredentialsExpired,
    /// This device's enrollment expires at `expires_at_ms`; coming online
    /// renews it.
    CredentialsExpiring { expires_at_ms: i64 },
}

/// A device of the account, as a connection event lists it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DeviceSummary {
    /// Its id, in hex.
    pub device: String,
    pub name: String,
    pub platform: String,
    pub online: bool,
}

impl Event {
    pub(crate) fn from_engine(event: &e::Event) -> Event {
        let json = event.to_json_value();
        let kind = EventKind::from_engine(&event.kind).unwrap_or_else(|| {
            let field = |name: &str| {
                json.get(name)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            EventKind::Unknown {
                category: field("category"),
                op: field("op"),
            }
        });
        Event {
            seq: event.seq,
            source_device: event.source_device.to_hex(),
            made_at_ms: event.made_at_ms,
            superseded: event.superseded,
            kind,
            ext: event.ext.clone(),
            json: json.to_string(),
        }
    }
}

/// An id's text.
fn s<T: ToString + ?Sized>(value: &T) -> String {
    value.to_string()
}

fn strings<T: ToString>(values: &[T]) -> Vec<String> {
    values.iter().map(ToString::to_string).collect()
}

impl EventKind {
    /// `None` for a kind this build of the bindings does not know.
    fn from_engine(kind: &e::EventKind) -> Option<EventKind> {
        Some(match kind {
            e::EventKind::Contact(event) => EventKind::Contact {
                event: contact(event)?,
            },
            e::EventKind::Group(event) => EventKind::Group {
                event: group(event)?,
            },
            e::EventKind::Thread(event) => EventKind::Thread {
                event: thread(event)?,
            },
            e::EventKind::Conversation(event) => EventKind::Conversation {
                event: conversation(event)?,
            },
            e::EventKind::Message(event) => EventKind::Message {
                event: message(event)?,
            },
            e::EventKind::Connection(event) => EventKind::Connection {
                event: connection(event)?,
            },
            e::EventKind::Device(event) => EventKind::Device {
                event: device(event)?,
            },
            _ => return None,
        })
    }
}

fn contact(event: &e::ContactEvent) -> Option<ContactEvent> {
    Some(match event {
        e::ContactEvent::Added { user, greeting } => ContactEvent::Added {
            user: s(user),
            greeting: greeting.clone(),
        },
        e::ContactEvent::Accepted { user } => ContactEvent::Accepted { user: s(user) },
        e::ContactEvent::Declined { user } => ContactEvent::Declined { user: s(user) },
        e::ContactEvent::Removed { user } => ContactEvent::Removed { user: s(user) },
        e::ContactEvent::Blocked { user } => ContactEvent::Blocked { user: s(user) },
        e::ContactEvent::Unblocked { user } => ContactEvent::Unblocked { user: s(user) },
        e::ContactEvent::RemarkChanged { user, remark } => ContactEvent::RemarkChanged {
            user: s(user),
            remark: remark.clone(),
        },
        e::ContactEvent::RequestReceived { user, greeting } => ContactEvent::RequestReceived {
            user: s(user),
            greeting: greeting.clone(),
        },
        _ => return None,
    })
}

fn conversation(event: &e::ConversationEvent) -> Option<ConversationEvent> {
    Some(match event {
        e::ConversationEvent::Pinned { conversation } => ConversationEvent::Pinned {
            conversation: s(conversation),
        },
        e::ConversationEvent::Unpinned { conversation } => ConversationEvent::Unpinned {
            conversation: s(conversation),
        },
        e::ConversationEvent::Deleted { conversation } => ConversationEvent::Deleted {
            conversation: s(conversation),
        },
        e::ConversationEvent::MarkChanged {
            conversation,
            mark,
            set,
        } => ConversationEvent::MarkChanged {
            conversation: s(conversation),
            mark: mark.clone(),
            set: *set,
        },
        e::ConversationEvent::DoNotDisturbChanged {
            conversation,
            enabled,
        } => ConversationEvent::DoNotDisturbChanged {
            conversation: s(conversation),
            enabled: *enabled,
        },
        e::ConversationEvent::UnreadCleared { conversation } => ConversationEvent::UnreadCleared {
            conversation: s(conversation),
        },
        e::ConversationEvent::AllUnreadCleared => ConversationEvent::AllUnreadCleared,
        e::ConversationEvent::Read {
            conversation,
            message,
        } => ConversationEvent::Read {
            conversation: s(conversation),
            message: s(message),
        },
        e::ConversationEvent::MessagePinned {
            conversation,
            message,
        } => ConversationEvent::MessagePinned {
            conversation: s(conversation),
            message: s(message),
        },
        e::ConversationEvent::MessageUnpinned {
            conversation,
            message,
        } => ConversationEvent::MessageUnpinned {
            conversation: s(conversation),
            message: s(message),
        },
        e::ConversationEvent::DoNotDisturbModeChanged {
            conversation,
            remind,
            quiet,
        } => ConversationEvent::DoNotDisturbModeChanged {
            conversation: s(conversation),
            remind: (*remind).into(),
            quiet: quiet.map(QuietTime::from),
        },
        _ => return None,
    })
}

fn message(event: &e::MessageEvent) -> Option<MessageEvent> {
    Some(match event {
        e::MessageEvent::Sent {
            message,
            conversation,
        } => MessageEvent::Sent {
            message: s(message),
            conversation: s(conversation),
        },
        e::MessageEvent::Received {
            message,
            conversation,
            sender,
        } => MessageEvent::Received {
            message: s(message),
            conversation: s(conversation),
            sender: s(sender),
        },
        e::MessageEvent::Recalled { message } => MessageEvent::Recalled {
            message: s(message),
        },
        e::MessageEvent::DeletedForMe { messages } => MessageEvent::DeletedForMe {
            messages: strings(messages),
        },
        e::MessageEvent::ReceiptUpdated { message, receipt } => MessageEvent::ReceiptUpdated {
            message: s(message),
            receipt: (*receipt).into(),
        },
        // The engine journals the payload as hex; the bindings hand out the
        // bytes. A journal entry that is not hex is not one this engine
        // wrote; it stays an unknown kind rather than a wrong payload.
        e::MessageEvent::PayloadReceived { id, payload } => MessageEvent::PayloadReceived {
            id: id.clone(),
            payload: unhex(payload)?,
        },
        e::MessageEvent::GroupRead { message, member } => MessageEvent::GroupRead {
            message: s(message),
            member: s(member),
        },
        _ => return None,
    })
}

fn group(event: &e::GroupEvent) -> Option<GroupEvent> {
    Some(match event {
        e::GroupEvent::Created {
            group,
            name,
            members,
        } => GroupEvent::Created {
            group: s(group),
            name: name.clone(),
            members: strings(members),
        },
        e::GroupEvent::Destroyed { group } => GroupEvent::Destroyed { group: s(group) },
        e::GroupEvent::Joined { group } => GroupEvent::Joined { group: s(group) },
        e::GroupEvent::Left { group } => GroupEvent::Left { group: s(group) },
        e::GroupEvent::Applied { group, reason } => GroupEvent::Applied {
            group: s(group),
            reason: reason.clone(),
        },
        e::GroupEvent::ApplicationAccepted { group, user } => GroupEvent::ApplicationAccepted {
            group: s(group),
            user: s(user),
        },
        e::GroupEvent::ApplicationDeclined {
            group,
            user,
            reason,
        } => GroupEvent::ApplicationDeclined {
            group: s(group),
            user: s(user),
            reason: reason.clone(),
        },
        e::GroupEvent::Invited { group, users } => GroupEvent::Invited {
            group: s(group),
            users: strings(users),
        },
        e::GroupEvent::InvitationAccepted { group, inviter } => GroupEvent::InvitationAccepted {
            group: s(group),
            inviter: s(inviter),
        },
        e::GroupEvent::InvitationDeclined {
            group,
            inviter,
            reason,
        } => GroupEvent::InvitationDeclined {
            group: s(group),
            inviter: s(inviter),
            reason: reason.clone(),
        },
        e::GroupEvent::MembersKicked { group, users } => GroupEvent::MembersKicked {
            group: s(group),
            users: strings(users),
        },
        e::GroupEvent::MembersBanned { group, users } => GroupEvent::MembersBanned {
            group: s(group),
            users: strings(users),
        },
        e::GroupEvent::MembersAllowed { group, users } => GroupEvent::MembersAllowed {
            group: s(group),
            users: strings(users),
        },
        e::GroupEvent::MessagesBlocked { group } => GroupEvent::MessagesBlocked { group: s(group) },
        e::GroupEvent::MessagesUnblocked { group } => {
            GroupEvent::MessagesUnblocked { group: s(group) }
        }
        e::GroupEvent::OwnerTransferred { group, new_owner } => GroupEvent::OwnerTransferred {
            group: s(group),
            new_owner: s(new_owner),
        },
        e::GroupEvent::AdminAdded { group, user } => GroupEvent::AdminAdded {
            group: s(group),
            user: s(user),
        },
        e::GroupEvent::AdminRemoved { group, user } => GroupEvent::AdminRemoved {
            group: s(group),
            user: s(user),
        },
        e::GroupEvent::MembersMuted {
            group,
            users,
            until_ms,
        } => GroupEvent::MembersMuted {
            group: s(group),
            users: strings(users),
            until_ms: *until_ms,
        },
        e::GroupEvent::MembersUnmuted { group, users } => GroupEvent::MembersUnmuted {
            group: s(group),
            users: strings(users),
        },
        e::GroupEvent::AllowListAdded { group, users } => GroupEvent::AllowListAdded {
            group: s(group),
            users: strings(users),
        },
        e::GroupEvent::AllowListRemoved { group, users } => GroupEvent::AllowListRemoved {
            group: s(group),
            users: strings(users),
        },
        e::GroupEvent::AllMuted { group } => GroupEvent::AllMuted { group: s(group) },
        e::GroupEvent::AllUnmuted { group } => GroupEvent::AllUnmuted { group: s(group) },
        e::GroupEvent::InfoUpdated { group, update } => GroupEvent::InfoUpdated {
            group: s(group),
            update: update.into(),
        },
        e::GroupEvent::MemberAttributesChanged {
            group,
            user,
            attributes,
        } => GroupEvent::MemberAttributesChanged {
            group: s(group),
            user: s(user),
            attributes: attributes_from_engine(attributes),
        },
        e::GroupEvent::InvitationReceived { group, inviter } => GroupEvent::InvitationReceived {
            group: s(group),
            inviter: s(inviter),
        },
        e::GroupEvent::InviteeAccepted { group, user } => GroupEvent::InviteeAccepted {
            group: s(group),
            user: s(user),
        },
        e::GroupEvent::InviteeDeclined {
            group,
            user,
            reason,
        } => GroupEvent::InviteeDeclined {
            group: s(group),
            user: s(user),
            reason: reason.clone(),
        },
        e::GroupEvent::ApplicationReceived {
            group,
            user,
            reason,
        } => GroupEvent::ApplicationReceived {
            group: s(group),
            user: s(user),
            reason: reason.clone(),
        },
        e::GroupEvent::MemberAttributesRemoved { group, user, keys } => {
            GroupEvent::MemberAttributesRemoved {
                group: s(group),
                user: s(user),
                keys: keys.clone(),
            }
        }
        e::GroupEvent::Disabled { group } => GroupEvent::Disabled { group: s(group) },
        e::GroupEvent::Enabled { group } => GroupEvent::Enabled { group: s(group) },
        _ => return None,
    })
}

fn thread(event: &e::ThreadEvent) -> Option<ThreadEvent> {
    Some(match event {
        e::ThreadEvent::Created {
            thread,
            group,
            name,
        } => ThreadEvent::Created {
            thread: s(thread),
            group: s(group),
            name: name.clone(),
        },
        e::ThreadEvent::Destroyed { thread } => ThreadEvent::Destroyed { thread: s(thread) },
        e::ThreadEvent::Joined { thread, group } => ThreadEvent::Joined {
            thread: s(thread),
            group: s(group),
        },
        e::ThreadEvent::Left { thread } => ThreadEvent::Left { thread: s(thread) },
        e::ThreadEvent::Updated { thread, name } => ThreadEvent::Updated {
            thread: s(thread),
            name: name.clone(),
        },
        e::ThreadEvent::Kicked { thread, users } => ThreadEvent::Kicked {
            thread: s(thread),
            users: strings(users),
        },
        _ => return None,
    })
}

fn device(event: &e::DeviceEvent) -> Option<DeviceEvent> {
    Some(match event {
        e::DeviceEvent::Linked {
            device,
            sign_pk,
            kem_pk,
        } => DeviceEvent::Linked {
            device: device.clone(),
            sign_pk: sign_pk.clone(),
            kem_pk: kem_pk.clone(),
        },
        _ => return None,
    })
}

fn connection(event: &e::ConnectionEvent) -> Option<ConnectionEvent> {
    Some(match event {
        e::ConnectionEvent::Kicked { reason } => ConnectionEvent::Kicked {
            reason: reason.clone(),
        },
        e::ConnectionEvent::TooManyDevices { text } => {
            ConnectionEvent::TooManyDevices { text: text.clone() }
        }
        e::ConnectionEvent::LoggedInOnNewDevice { name, platform } => {
            ConnectionEvent::LoggedInOnNewDevice {
                name: name.clone(),
                platform: platform.clone(),
            }
        }
        e::ConnectionEvent::DeviceListChanged => ConnectionEvent::DeviceListChanged,
        e::ConnectionEvent::CatchUpStarted { from_seq, to_seq } => {
            ConnectionEvent::CatchUpStarted {
                from_seq: *from_seq,
                to_seq: *to_seq,
            }
        }
        e::ConnectionEvent::CatchUpFinished { cursor } => {
            ConnectionEvent::CatchUpFinished { cursor: *cursor }
        }
        e::ConnectionEvent::KickedByDevice {
            device,
            name,
            platform,
        } => ConnectionEvent::KickedByDevice {
            device: device.clone(),
            name: name.clone(),
            platform: platform.clone(),
        },
        e::ConnectionEvent::DisplacedByLimit {
            device,
            name,
            platform,
        } => ConnectionEvent::DisplacedByLimit {
            device: device.clone(),
            name: name.clone(),
            platform: platform.clone(),
        },
        e::ConnectionEvent::LoggedOut => ConnectionEvent::LoggedOut,
        e::ConnectionEvent::RevokedByOperator => ConnectionEvent::RevokedByOperator,
        e::ConnectionEvent::AllCredentialsRevoked => ConnectionEvent::AllCredentialsRevoked,
        e::ConnectionEvent::AccountRemoved => ConnectionEvent::AccountRemoved,
        e::ConnectionEvent::AccountBanned => ConnectionEvent::AccountBanned,
        e::ConnectionEvent::TooManyDevicesOnline { devices } => {
            ConnectionEvent::TooManyDevicesOnline {
                devices: devices
                    .iter()
                    .map(|d| DeviceSummary {
                        device: d.device.clone(),
                        name: d.name.clone(),
                        platform: d.platform.clone(),
                        online: d.online,
                    })
                    .collect(),
            }
        }
        e::ConnectionEvent::CredentialsExpired => ConnectionEvent::CredentialsExpired,
        e::ConnectionEvent::CredentialsExpiring { expires_at_ms } => {
            ConnectionEvent::CredentialsExpiring {
                expires_at_ms: *expires_at_ms,
            }
        }
        _ => return None,
    })
}

/// The bytes of lowercase or uppercase hex text; `None` if it is not hex.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            let pair = &text[i..i + 2];
            // from_str_radix takes a leading sign; a hex pair has none.
            if pair.starts_with('+') || pair.starts_with('-') {
                return None;
            }
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::hex;

    /// The payload id and bytes as the engine journals them.
    fn payload_kind(id: &[u8; 16], payload: &[u8]) -> e::EventKind {
        e::EventKind::Message(e::MessageEvent::PayloadReceived {
            id: hex(id),
            payload: hex(payload),
        })
    }

    #[test]
    fn hex_payloads_decode_and_anything_else_is_refused() {
        assert_eq!(unhex(""), Some(vec![]));
        assert_eq!(unhex("00ff7A"), Some(vec![0, 255, 0x7a]));
        for bad in ["0", "zz", "+1", "-1", "é0"] {
            assert_eq!(unhex(bad), None, "{bad:?}");
        }
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)), Some(bytes));
    }

    #[test]
    fn a_payload_event_carries_its_bytes() {
        let kind = EventKind::from_engine(&payload_kind(&[7; 16], b"hello")).unwrap();
        assert_eq!(
            kind,
            EventKind::Message {
                event: MessageEvent::PayloadReceived {
                    id: "07".repeat(16),
                    payload: b"hello".to_vec(),
                }
            }
        );
    }

    /// The engine's snapshot of the events another device journals after
    /// every operation kind (tests/tests/every_op.rs keeps it complete).
    const EVENTS_SNAPSHOT: &str = include_str!("../../tests/tests/snapshots/events.jsonl");

    #[test]
    fn every_operations_event_has_its_kind_and_keeps_its_json() {
        let mut seen = 0;
        for line in EVENTS_SNAPSHOT.lines() {
            let event = e::Event::from_json(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let ours = Event::from_engine(&event);
            assert!(
                !matches!(ours.kind, EventKind::Unknown { .. }),
                "no kind in the bindings for {line}"
            );
            assert_eq!(ours.json, event.to_json_value().to_string());
            assert_eq!(ours.ext, event.ext);
            seen += 1;
        }
        assert!(seen > 50, "only {seen} events in the snapshot");
    }

    #[test]
    fn every_connection_event_has_its_kind() {
        for event in [
            e::ConnectionEvent::Kicked { reason: "r".into() },
            e::ConnectionEvent::TooManyDevices { text: "t".into() },
            e::ConnectionEvent::LoggedInOnNewDevice {
                name: "n".into(),
                platform: "ios".into(),
            },
            e::ConnectionEvent::DeviceListChanged,
            e::ConnectionEvent::CatchUpStarted {
                from_seq: 0,
                to_seq: u64::MAX,
            },
            e::ConnectionEvent::CatchUpFinished { cursor: u64::MAX },
        ] {
            let kind = EventKind::from_engine(&e::EventKind::Connection(event.clone()));
            assert!(
                matches!(kind, Some(EventKind::Connection { .. })),
                "{event:?}"
            );
        }
    }
}
