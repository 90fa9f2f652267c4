//! Plain rows read from and written to the device store.

use crate::StoreError;

/// Marks of a conversation are joined by this character in storage, so no
/// mark may contain it.
pub const MARK_SEPARATOR: char = '\u{1f}';

/// The device's identity, written once at first open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    pub device_id: [u8; 16],
    pub device_name: String,
    pub platform: String,
    pub created_at_ms: i64,
}

/// Named counters and cursors kept in the `meta` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetaKey {
    /// The number the device's next local operation gets.
    NextOriginSeq,
    /// The relay log position this device has applied everything up to.
    RelayCursor,
    /// The highest event sequence number the app has acknowledged.
    EventsAcked,
    /// Document changes written since the last snapshot.
    DocChangesSinceSnapshot,
}

impl MetaKey {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MetaKey::NextOriginSeq => "next_origin_seq",
            MetaKey::RelayCursor => "relay_cursor",
            MetaKey::EventsAcked => "events_acked",
            MetaKey::DocChangesSinceSnapshot => "doc_changes_since_snapshot",
        }
    }
}

/// One stored chunk of the account document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocChunk {
    /// A whole saved document.
    Snapshot(Vec<u8>),
    /// One change made after the snapshot.
    Change(Vec<u8>),
}

/// A delta as stored: its bytes are opaque here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaRow {
    /// Position in this device's store, assigned on insert (ignored there).
    pub local_seq: i64,
    pub content_id: [u8; 32],
    pub origin: [u8; 16],
    /// The operation's number on its device, at most `i64::MAX`.
    pub origin_seq: u64,
    pub made_at_ms: i64,
    pub bytes: Vec<u8>,
    /// The relay log position, once a relay has accepted it; at most
    /// `i64::MAX`.
    pub relay_seq: Option<u64>,
    /// False while its document change waits for a change it depends on.
    pub applied: bool,
}

/// An immutable message record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub id: String,
    pub conversation: String,
    pub sender: String,
    pub sent_at_ms: i64,
    pub body: String,
}

/// The other party's receipt for a message; only ever moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Receipt {
    #[default]
    None,
    Delivered,
    Read,
}

impl Receipt {
    /// The receipt's level as stored: 0, 1 or 2.
    pub fn level(self) -> i64 {
        match self {
            Receipt::None => 0,
            Receipt::Delivered => 1,
            Receipt::Read => 2,
        }
    }

    /// The receipt for a stored level; out-of-range levels clamp.
    pub fn from_level(level: i64) -> Receipt {
        match level {
            i64::MIN..=0 => Receipt::None,
            1 => Receipt::Delivered,
            _ => Receipt::Read,
        }
    }
}

/// A monotonic update to a message's mutable parts: each field can only turn
/// a flag on or raise the receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlagsUpdate {
    pub recalled: bool,
    pub deleted: bool,
    pub receipt: Receipt,
}

/// A message with its merged flags, as the app sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// The conversation settings that live in the account document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConversationFlags {
    pub pinned: bool,
    pub do_not_disturb: bool,
    /// Sorted, without duplicates.
    pub marks: Vec<String>,
}

/// A conversation's settings: the flags from the account document plus the
/// read marker and clear point, which are maximum registers kept in SQLite.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConversationSettings {
    pub pinned: bool,
    pub do_not_disturb: bool,
    /// Sorted, without duplicates.
    pub marks: Vec<String>,
    /// Messages sent at or before this time are cleared (conversation deleted).
    pub cleared_up_to_ms: i64,
    /// The effective read marker: the highest over all the account's devices.
    pub read_at_ms: i64,
    pub read_message: String,
}

/// One conversation's projection row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRow {
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

/// A stored text that names no state this build knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {value:?} is not one this build knows")]
pub struct UnknownState {
    /// What the text was meant to be (`a contact status`…).
    pub kind: &'static str,
    /// The text.
    pub value: String,
}

impl From<UnknownState> for StoreError {
    fn from(e: UnknownState) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// A state with a fixed text form: how it is stored (TEXT in SQLite, text
/// in the account document) and shown.
macro_rules! text_state {
    ($(#[$doc:meta])* $name:ident, $kind:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every state, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The text form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownState;

            fn from_str(text: &str) -> Result<Self, UnknownState> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownState {
                        kind: $kind,
                        value: text.to_owned(),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_state!(
    /// Where a contact entry stands.
    ContactStatus, "a contact status", {
        /// This account asked the user; the user has not accepted yet.
        Requested => "requested",
        /// The user asked this account; it has not answered yet.
        Pending => "pending",
        /// Accepted: the user is a contact.
        Friend => "friend",
    }
);

text_state!(
    /// This account's standing in a group it knows.
    GroupStanding, "a group standing", {
        /// This account is a member.
        Member => "member",
        /// This account applied to join and waits for an owner or admin.
        Applied => "applied",
        /// A member invited this account; it is not a member until it
        /// accepts.
        Invited => "invited",
    }
);

text_state!(
    /// A group member's role.
    MemberRole, "a member role", {
        /// The group's one owner.
        Owner => "owner",
        /// An admin, appointed by the owner.
        Admin => "admin",
        /// A member without a role.
        Member => "member",
    }
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRow {
    pub user_id: String,
    pub status: ContactStatus,
    pub remark: String,
    pub since_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedRow {
    pub user_id: String,
    pub since_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub user_id: String,
    pub role: MemberRole,
    /// 0 when not muted.
    pub muted_until_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAttribute {
    pub user_id: String,
    pub key: String,
    pub value: String,
}

/// A group with everything attached to it; lists are sorted by user id.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub members: Vec<GroupMember>,
    pub banned: Vec<String>,
    pub allowed: Vec<String>,
    /// Users this account invited who have not accepted yet: not members.
    pub invited: Vec<String>,
    /// Users who applied to join and have not been answered yet.
    pub applicants: Vec<String>,
    /// Sorted by user id, then key.
    pub attributes: Vec<MemberAttribute>,
}

/// A thread with its members (sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadRow {
    pub id: String,
    pub group_id: String,
    pub name: String,
    pub members: Vec<String>,
}

/// One journaled multi-device event; the body is the engine's encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Assigned on insert (ignored there).
    pub seq: i64,
    pub content_id: [u8; 32],
    pub origin: [u8; 16],
    pub made_at_ms: i64,
    pub body: Vec<u8>,
}
