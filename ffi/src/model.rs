//! What queries and operations return: the engine's rows and results as records.
//!
//! Field for field the engine's projection rows (`ConversationRow`,
//! `MessageView`, `ContactRow`…), `Performed`, `Applied`, `Changed`,
//! `AccountState` and the device's identity. States the engine keeps as
//! closed sets (`ContactStatus`, `GroupStanding`, `MemberRole`) are enums
//! with one extra `Unknown` variant, for a state added to the engine after
//! this build of the bindings (the engine's enums are non-exhaustive); the
//! tests map every state the engine lists.

use tandem_engine as e;

use crate::ids::hex;

/// The platform a device runs on.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum Platform {
    Android,
    Ios,
    Web,
    Windows,
    Macos,
    Linux,
    /// Any other platform, named by the app.
    Custom {
        name: String,
    },
}

impl From<Platform> for e::Platform {
    fn from(value: Platform) -> Self {
        match value {
            Platform::Android => e::Platform::Android,
            Platform::Ios => e::Platform::Ios,
            Platform::Web => e::Platform::Web,
            Platform::Windows => e::Platform::Windows,
            Platform::Macos => e::Platform::Macos,
            Platform::Linux => e::Platform::Linux,
            // The text form is total: a known name is its variant.
            Platform::Custom { name } => name
                .parse()
                .unwrap_or_else(|never: std::convert::Infallible| match never {}),
        }
    }
}

impl From<&e::Platform> for Platform {
    /// Through the text form, which names every platform (an unknown one is
    /// custom).
    fn from(value: &e::Platform) -> Self {
        match value.as_str() {
            "android" => Platform::Android,
            "ios" => Platform::Ios,
            "web" => Platform::Web,
            "windows" => Platform::Windows,
            "macos" => Platform::Macos,
            "linux" => Platform::Linux,
            other => Platform::Custom {
                name: other.to_owned(),
            },
        }
    }
}

/// Who this device is: fixed when the device was created.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DeviceIdentity {
    pub account: String,
    /// 32 hex characters.
    pub device_id: String,
    pub name: String,
    pub platform: Platform,
    /// When the device was created, in ms since the Unix epoch.
    pub created_at_ms: i64,
}

impl From<&e::DeviceIdentity> for DeviceIdentity {
    fn from(value: &e::DeviceIdentity) -> Self {
        DeviceIdentity {
            account: value.account.to_string(),
            device_id: value.device_id.to_hex(),
            name: value.name.clone(),
            platform: (&value.platform).into(),
            created_at_ms: value.created_at_ms,
        }
    }
}

/// What a performed operation produced.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Performed {
    /// The delta that records it; `None` when the operation changed nothing
    /// here (pinning what is pinned, a receipt already recorded…), so
    /// nothing was recorded or sent.
    pub recorded: Option<Recorded>,
    /// The new message's id, for a send.
    pub message_id: Option<String>,
}

/// The delta a performed operation was recorded as.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Recorded {
    /// Its content id, 64 hex characters.
    pub content_id: String,
    /// The operation's number on this device.
    pub origin_seq: u64,
}

impl From<e::Performed> for Performed {
    fn from(value: e::Performed) -> Self {
        Performed {
            recorded: value.recorded.map(|r| Recorded {
                content_id: hex(&r.content_id.0),
                origin_seq: r.origin_seq,
            }),
            message_id: value.message_id.map(String::from),
        }
    }
}

/// What the touched entities are, for the app to refresh.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Changed {
    /// Conversation keys (`u:bob`, `g:team`…).
    pub conversations: Vec<String>,
    pub contacts: Vec<String>,
    pub blocklist: Vec<String>,
    pub groups: Vec<String>,
    pub threads: Vec<String>,
}

impl From<e::Changed> for Changed {
    fn from(value: e::Changed) -> Self {
        Changed {
            conversations: value.conversations,
            contacts: value.contacts,
            blocklist: value.blocklist,
            groups: value.groups,
            threads: value.threads,
        }
    }
}

/// What merging a batch of deltas did.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Applied {
    /// Deltas new to this device.
    pub new: u64,
    /// Deltas already known (sent twice, or this device's own).
    pub duplicate: u64,
    /// Deltas stored but waiting for a change they depend on.
    pub waiting: u64,
    /// Deltas merged now that had been waiting.
    pub unblocked: u64,
    /// Multi-device events journaled by this merge.
    pub events: u64,
    /// The relay log position this device has merged everything up to.
    pub relay_cursor: u64,
    pub changed: Changed,
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl From<e::Applied> for Applied {
    fn from(value: e::Applied) -> Self {
        Applied {
            new: count(value.new),
            duplicate: count(value.duplicate),
            waiting: count(value.waiting),
            unblocked: count(value.unblocked),
            events: count(value.events),
            relay_cursor: value.relay_cursor,
            changed: value.changed.into(),
        }
    }
}

/// A page of exported deltas, for exchanging them by hand between two
/// devices of the account.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Export {
    /// The deltas, oldest first; empty when there is nothing after the cursor.
    pub deltas: Vec<Vec<u8>>,
    /// Pass this as `after` to continue after this page.
    pub next: i64,
}

/// A conversation's settings.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ConversationSettings {
    pub pinned: bool,
    /// Which messages notify, and the quiet time if any.
    pub do_not_disturb: DoNotDisturb,
    /// Sorted, without duplicates.
    pub marks: Vec<String>,
    /// Messages sent at or before this time are cleared (conversation deleted).
    pub cleared_up_to_ms: i64,
    /// The effective read marker: the highest over all the account's devices.
    pub read_at_ms: i64,
    pub read_message: String,
}

/// A conversation's do-not-disturb mode: which messages notify, and an
/// optional quiet time during which none do. `remind: All` with no quiet
/// time is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct DoNotDisturb {
    pub remind: RemindType,
    pub quiet: Option<QuietTime>,
}

impl From<e::DoNotDisturb> for DoNotDisturb {
    fn from(value: e::DoNotDisturb) -> Self {
        DoNotDisturb {
            remind: value.remind.into(),
            quiet: value.quiet.map(QuietTime::from),
        }
    }
}

impl DoNotDisturb {
    /// The engine's form; `None` for a remind type this build's engine
    /// does not have (only `RemindType::Unknown`, which the engine never
    /// produces for its own build).
    pub(crate) fn into_engine(self) -> Option<e::DoNotDisturb> {
        Some(e::DoNotDisturb {
            remind: self.remind.into_engine()?,
            quiet: self.quiet.map(QuietTime::into_engine),
        })
    }
}

/// Which messages of a conversation notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RemindType {
    /// Every message (do-not-disturb off).
    All,
    /// Only messages that mention this account.
    MentionsOnly,
    /// None (the engine's `RemindType::None`).
    NoReminders,
    /// A remind type added to the engine after this build of the bindings.
    Unknown,
}

impl From<e::RemindType> for RemindType {
    fn from(value: e::RemindType) -> Self {
        match value {
            e::RemindType::All => RemindType::All,
            e::RemindType::MentionsOnly => RemindType::MentionsOnly,
            e::RemindType::None => RemindType::NoReminders,
            _ => RemindType::Unknown,
        }
    }
}

impl RemindType {
    pub(crate) fn into_engine(self) -> Option<e::RemindType> {
        match self {
            RemindType::All => Some(e::RemindType::All),
            RemindType::MentionsOnly => Some(e::RemindType::MentionsOnly),
            RemindType::NoReminders => Some(e::RemindType::None),
            RemindType::Unknown => None,
        }
    }
}

/// When a do-not-disturb mode silences every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum QuietTime {
    /// Until a time, in ms since the Unix epoch; then it ends by itself.
    Until { until_ms: i64 },
    /// Every day from `start_minute` to `end_minute` (minutes after
    /// midnight, below 1440, different; a window may wrap past midnight)
    /// at a UTC offset of at most 14 hours either way.
    Daily {
        start_minute: u16,
        end_minute: u16,
        utc_offset_minutes: i16,
    },
}

impl From<e::QuietTime> for QuietTime {
    fn from(value: e::QuietTime) -> Self {
        match value {
            e::QuietTime::Until { until_ms } => QuietTime::Until { until_ms },
            e::QuietTime::Daily {
                start_minute,
                end_minute,
                utc_offset_minutes,
            } => QuietTime::Daily {
                start_minute,
                end_minute,
                utc_offset_minutes,
            },
        }
    }
}

impl QuietTime {
    pub(crate) fn into_engine(self) -> e::QuietTime {
        match self {
            QuietTime::Until { until_ms } => e::QuietTime::Until { until_ms },
            QuietTime::Daily {
                start_minute,
                end_minute,
                utc_offset_minutes,
            } => e::QuietTime::Daily {
                start_minute,
                end_minute,
                utc_offset_minutes,
            },
        }
    }
}

/// A message pinned in a conversation.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PinnedMessage {
    pub message: String,
    /// When it was first pinned, by the pinning device's clock.
    pub pinned_at_ms: i64,
}

impl From<e::PinnedMessage> for PinnedMessage {
    fn from(value: e::PinnedMessage) -> Self {
        PinnedMessage {
            message: value.message,
            pinned_at_ms: value.pinned_at_ms,
        }
    }
}

/// One conversation of the list.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ConversationRow {
    /// `u:<user>`, `g:<group>`, `t:<thread>` or `r:<room>`.
    pub id: String,
    pub settings: ConversationSettings,
    /// The newest visible message's id.
    pub last_message: Option<String>,
    pub last_activity_ms: i64,
    /// Visible, not recalled messages from others after the read marker.
    pub unread: i64,
    /// Whether the conversation shows in the conversation list.
    pub listed: bool,
}

impl From<e::ConversationRow> for ConversationRow {
    fn from(value: e::ConversationRow) -> Self {
        let s = value.settings;
        ConversationRow {
            id: value.id,
            settings: ConversationSettings {
                pinned: s.pinned,
                do_not_disturb: s.do_not_disturb.into(),
                marks: s.marks,
                cleared_up_to_ms: s.cleared_up_to_ms,
                read_at_ms: s.read_at_ms,
                read_message: s.read_message,
            },
            last_message: value.last_message,
            last_activity_ms: value.last_activity_ms,
            unread: value.unread,
            listed: value.listed,
        }
    }
}

/// The other party's receipt for a message; only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Receipt {
    /// No receipt yet.
    NoReceipt,
    Delivered,
    Read,
}

impl From<e::Receipt> for Receipt {
    fn from(value: e::Receipt) -> Self {
        match value {
            e::Receipt::None => Receipt::NoReceipt,
            e::Receipt::Delivered => Receipt::Delivered,
            e::Receipt::Read => Receipt::Read,
        }
    }
}

/// A message with its merged flags.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MessageView {
    pub id: String,
    pub conversation: String,
    pub sender: String,
    pub sent_at_ms: i64,
    /// Empty once the message is recalled.
    pub body: String,
    pub recalled: bool,
    pub deleted: bool,
    pub receipt: Receipt,
}

impl From<e::MessageView> for MessageView {
    fn from(value: e::MessageView) -> Self {
        MessageView {
            id: value.id,
            conversation: value.conversation,
            sender: value.sender,
            sent_at_ms: value.sent_at_ms,
            body: value.body,
            recalled: value.recalled,
            deleted: value.deleted,
            receipt: value.receipt.into(),
        }
    }
}

/// A position in a conversation's messages: page older messages from here.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MessageCursor {
    pub sent_at_ms: i64,
    pub id: String,
}

/// Where a contact entry stands.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum ContactStatus {
    /// This account asked the user; not accepted yet.
    Requested,
    /// The user asked this account; not answered yet.
    Pending,
    /// Accepted: the user is a contact.
    Friend,
    /// A status added to the engine after this build of the bindings, in its
    /// text form.
    Unknown { text: String },
}

impl From<e::ContactStatus> for ContactStatus {
    fn from(value: e::ContactStatus) -> Self {
        match value {
            e::ContactStatus::Requested => ContactStatus::Requested,
            e::ContactStatus::Pending => ContactStatus::Pending,
            e::ContactStatus::Friend => ContactStatus::Friend,
            other => ContactStatus::Unknown {
                text: other.as_str().to_owned(),
            },
        }
    }
}

/// This account's standing in a group it knows.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum GroupStanding {
    Member,
    /// Applied to join, waiting for an owner or admin.
    Applied,
    /// Invited, not answered yet.
    Invited,
    /// A standing added to the engine after this build of the bindings.
    Unknown {
        text: String,
    },
}

impl From<e::GroupStanding> for GroupStanding {
    fn from(value: e::GroupStanding) -> Self {
        match value {
            e::GroupStanding::Member => GroupStanding::Member,
            e::GroupStanding::Applied => GroupStanding::Applied,
            e::GroupStanding::Invited => GroupStanding::Invited,
            other => GroupStanding::Unknown {
                text: other.as_str().to_owned(),
            },
        }
    }
}

/// A group member's role.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum MemberRole {
    Owner,
    Admin,
    Member,
    /// A role added to the engine after this build of the bindings.
    Unknown {
        text: String,
    },
}

impl From<e::MemberRole> for MemberRole {
    fn from(value: e::MemberRole) -> Self {
        match value {
            e::MemberRole::Owner => MemberRole::Owner,
            e::MemberRole::Admin => MemberRole::Admin,
            e::MemberRole::Member => MemberRole::Member,
            other => MemberRole::Unknown {
                text: other.as_str().to_owned(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ContactRow {
    pub user_id: String,
    pub status: ContactStatus,
    pub remark: String,
    pub since_ms: i64,
}

impl From<e::ContactRow> for ContactRow {
    fn from(value: e::ContactRow) -> Self {
        ContactRow {
            user_id: value.user_id,
            status: value.status.into(),
            remark: value.remark,
            since_ms: value.since_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BlockedRow {
    pub user_id: String,
    pub since_ms: i64,
}

impl From<e::BlockedRow> for BlockedRow {
    fn from(value: e::BlockedRow) -> Self {
        BlockedRow {
            user_id: value.user_id,
            since_ms: value.since_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct GroupMember {
    pub user_id: String,
    pub role: MemberRole,
    /// 0 when not muted.
    pub muted_until_ms: i64,
}

impl From<e::GroupMember> for GroupMember {
    fn from(m: e::GroupMember) -> Self {
        GroupMember {
            user_id: m.user_id,
            role: m.role.into(),
            muted_until_ms: m.muted_until_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MemberAttribute {
    pub user_id: String,
    pub key: String,
    pub value: String,
}

/// A group with everything attached to it; lists are sorted by user id.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct GroupRow {
    pub id: String,
    /// This account's standing.
    pub state: GroupStanding,
    pub name: String,
    pub description: String,
    pub announcement: String,
    pub owner: String,
    pub messages_blocked: bool,
    pub mute_all: bool,
    /// Disabled by the IM service: kept, but nothing can be sent to it.
    pub disabled: bool,
    pub members: Vec<GroupMember>,
    pub banned: Vec<String>,
    pub allowed: Vec<String>,
    /// Users invited, not answered yet.
    pub invited: Vec<String>,
    /// Users who applied to join, not answered yet.
    pub applicants: Vec<String>,
    /// Sorted by user id, then key.
    pub attributes: Vec<MemberAttribute>,
}

impl From<e::GroupRow> for GroupRow {
    fn from(value: e::GroupRow) -> Self {
        GroupRow {
            id: value.id,
            state: value.state.into(),
            name: value.name,
            description: value.description,
            announcement: value.announcement,
            owner: value.owner,
            messages_blocked: value.messages_blocked,
            mute_all: value.mute_all,
            disabled: value.disabled,
            members: list(value.members),
            banned: value.banned,
            allowed: value.allowed,
            invited: value.invited,
            applicants: value.applicants,
            attributes: value
                .attributes
                .into_iter()
                .map(|a| MemberAttribute {
                    user_id: a.user_id,
                    key: a.key,
                    value: a.value,
                })
                .collect(),
        }
    }
}

/// A thread with its members (sorted).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ThreadRow {
    pub id: String,
    pub group_id: String,
    pub name: String,
    pub members: Vec<String>,
}

impl From<e::ThreadRow> for ThreadRow {
    fn from(value: e::ThreadRow) -> Self {
        ThreadRow {
            id: value.id,
            group_id: value.group_id,
            name: value.name,
            members: value.members,
        }
    }
}

/// The whole projected state of the account on this device, in a stable
/// order: what two converged devices agree on.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AccountState {
    pub conversations: Vec<ConversationRow>,
    pub messages: Vec<MessageView>,
    pub contacts: Vec<ContactRow>,
    pub blocklist: Vec<BlockedRow>,
    pub groups: Vec<GroupRow>,
    pub threads: Vec<ThreadRow>,
}

pub(crate) fn list<T, U: From<T>>(rows: Vec<T>) -> Vec<U> {
    rows.into_iter().map(U::from).collect()
}

impl From<e::AccountState> for AccountState {
    fn from(value: e::AccountState) -> Self {
        AccountState {
            conversations: list(value.conversations),
            messages: list(value.messages),
            contacts: list(value.contacts),
            blocklist: list(value.blocklist),
            groups: list(value.groups),
            threads: list(value.threads),
        }
    }
}

/// How `next_event` acknowledges (the offline engine only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum EventDelivery {
    /// The app acknowledges with `ack_events`; until then `next_event`
    /// returns the same event again, also after a restart.
    Manual,
    /// `next_event` acknowledges each event as it returns it.
    AutoAck,
}

impl From<EventDelivery> for e::EventDelivery {
    fn from(value: EventDelivery) -> Self {
        match value {
            EventDelivery::Manual => e::EventDelivery::Manual,
            EventDelivery::AutoAck => e::EventDelivery::AutoAck,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_crosses_both_ways() {
        for name in [
            "android", "ios", "web", "windows", "macos", "linux", "fridge",
        ] {
            let engine: e::Platform = name.parse().unwrap();
            let ours = Platform::from(&engine);
            assert_eq!(e::Platform::from(ours.clone()), engine, "{name}");
            assert_eq!(matches!(ours, Platform::Custom { .. }), name == "fridge");
        }
        // A custom name that is a known platform is that platform.
        let ios = e::Platform::from(Platform::Custom { name: "ios".into() });
        assert_eq!(ios, e::Platform::Ios);
    }

    #[test]
    fn every_state_the_engine_lists_has_its_own_variant() {
        for status in e::ContactStatus::ALL {
            assert!(!matches!(
                ContactStatus::from(*status),
                ContactStatus::Unknown { .. }
            ));
        }
        for standing in e::GroupStanding::ALL {
            assert!(!matches!(
                GroupStanding::from(*standing),
                GroupStanding::Unknown { .. }
            ));
        }
        for role in e::MemberRole::ALL {
            assert!(!matches!(
                MemberRole::from(*role),
                MemberRole::Unknown { .. }
            ));
        }
        for remind in e::RemindType::ALL {
            assert_ne!(RemindType::from(*remind), RemindType::Unknown);
            assert_eq!(RemindType::from(*remind).into_engine(), Some(*remind));
        }
    }

    #[test]
    fn counts_cross_unchanged() {
        assert_eq!(count(0), 0);
        assert_eq!(count(usize::MAX), usize::MAX as u64);
    }
}
