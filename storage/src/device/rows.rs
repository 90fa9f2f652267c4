//! Plain rows read from and written to the device store.

use crate::values::key;
use crate::{u64_from_sql, StoreError};

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
    /// The seed of the device's signing key; `None` only in a store made
    /// by a build before device keys, until the engine makes one.
    pub signing_key: Option<[u8; 32]>,
}

/// What a device keeps of its credentials at the relay.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// The relay addresses it uses, in order of preference.
    pub relays: Vec<String>,
    /// Its enrollment as the relay last told it; `None` before the first.
    pub enrollment: Option<DeviceEnrollment>,
}

/// A device's enrollment, as the relay last told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEnrollment {
    /// The login token it enrolled with.
    pub token_id: [u8; 16],
    /// When, in ms since the Unix epoch (the relay's clock).
    pub enrolled_at_ms: u64,
    /// When it expires unless renewed, in ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// False once the device learned that it no longer logs it in.
    pub active: bool,
}

/// How a device got a key generation of its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// This device made it: the account's first device.
    Created,
    /// Another device of the account granted it (linking).
    Linked,
}

impl KeySource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            KeySource::Created => "created",
            KeySource::Linked => "linked",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<KeySource, StoreError> {
        match text {
            "created" => Ok(KeySource::Created),
            "linked" => Ok(KeySource::Linked),
            other => Err(StoreError::Corrupt(format!(
                "account_keys.source {other:?} is not a key source"
            ))),
        }
    }
}

/// One key generation of the account, as this device holds it. `Debug`
/// leaves the root out.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountKeyRow {
    /// The generation, from 0.
    pub generation: u32,
    /// The generation root: whoever holds it reads the generation's data.
    pub root: [u8; 32],
    /// How this device got it.
    pub source: KeySource,
    /// The epoch the device adopts with it, and that epoch's snapshot id
    /// (all zeros for epoch 0, which has no snapshot).
    pub epoch: u64,
    pub snapshot_id: [u8; 32],
    /// The device that granted it; `Some` exactly when `source` is
    /// [`KeySource::Linked`].
    pub granted_by: Option<[u8; 16]>,
    /// When this device stored it, by its clock.
    pub added_at_ms: i64,
}

impl std::fmt::Debug for AccountKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountKeyRow")
            .field("generation", &self.generation)
            .field("source", &self.source)
            .field("epoch", &self.epoch)
            .field("granted_by", &self.granted_by)
            .field("added_at_ms", &self.added_at_ms)
            .finish_non_exhaustive()
    }
}

/// The link session of a device waiting for a grant. `Debug` leaves the
/// secrets out.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkSessionRow {
    /// The seed of its X25519 key, which the grant is sealed to.
    pub kem_seed: [u8; 32],
    /// The pre-shared key its link code carries.
    pub psk: [u8; 32],
    /// When it was made, and when it stops accepting grants, by this
    /// device's clock.
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for LinkSessionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSessionRow")
            .field("created_at_ms", &self.created_at_ms)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// One device of the account's roster: its keys, and the Link operation
/// that put it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterRow {
    /// The linked device.
    pub device: [u8; 16],
    /// Its ed25519 signing key.
    pub sign_pk: [u8; 32],
    /// Its X25519 KEM public key.
    pub kem_pk: [u8; 32],
    /// The device that performed the Link operation, its number there, and
    /// when it was made by that device's clock. Of two Link operations for
    /// the same device, the one with the smallest `(linked_at_ms,
    /// linked_by, linked_seq)` holds.
    pub linked_by: [u8; 16],
    pub linked_seq: u64,
    pub linked_at_ms: i64,
}

/// The columns a roster row is read from, in this order.
pub(crate) const ROSTER_COLUMNS: &str =
    "device, sign_pk, kem_pk, linked_by, linked_seq, linked_at_ms";

impl RosterRow {
    /// Reads a row selected with [`ROSTER_COLUMNS`]; a blob of the wrong
    /// size or a negative number is [`StoreError::Corrupt`].
    pub(crate) fn read(r: &rusqlite::Row<'_>) -> Result<RosterRow, StoreError> {
        Ok(RosterRow {
            device: key(r.get(0)?, "roster.device")?,
            sign_pk: key(r.get(1)?, "roster.sign_pk")?,
            kem_pk: key(r.get(2)?, "roster.kem_pk")?,
            linked_by: key(r.get(3)?, "roster.linked_by")?,
            linked_seq: u64_from_sql("roster.linked_seq", r.get(4)?)?,
            linked_at_ms: r.get(5)?,
        })
    }
}

/// The columns an envelope row is read from, in this order.
pub(crate) const ENVELOPE_COLUMNS: &str =
    "content_id, origin, chain_pos, prev, epoch, bytes, through_local_seq, relay_seq";

impl EnvelopeRow {
    /// Reads a row selected with [`ENVELOPE_COLUMNS`]; a blob of the wrong
    /// size, a negative number, or bytes without a position (or the
    /// reverse) is [`StoreError::Corrupt`].
    pub(crate) fn read(r: &rusqlite::Row<'_>) -> Result<EnvelopeRow, StoreError> {
        let own = match (r.get::<_, Option<Vec<u8>>>(5)?, r.get::<_, Option<i64>>(6)?) {
            (Some(bytes), Some(through_local_seq)) => Some(OwnEnvelope {
                bytes,
                through_local_seq,
            }),
            (None, None) => None,
            _ => {
                return Err(StoreError::Corrupt(
                    "envelopes: bytes without a delta position, or the reverse".into(),
                ))
            }
        };
        Ok(EnvelopeRow {
            content_id: key(r.get(0)?, "envelopes.content_id")?,
            origin: key(r.get(1)?, "envelopes.origin")?,
            chain_pos: u64_from_sql("envelopes.chain_pos", r.get(2)?)?,
            prev: key(r.get(3)?, "envelopes.prev")?,
            epoch: u64_from_sql("envelopes.epoch", r.get(4)?)?,
            own,
            relay_seq: r
                .get::<_, Option<i64>>(7)?
                .map(|seq| u64_from_sql("envelopes.relay_seq", seq))
                .transpose()?,
        })
    }
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
    /// The content id of the envelope it was sealed in or opened from;
    /// `None` for a delta that travelled in the clear or waits to be
    /// sealed.
    pub envelope: Option<[u8; 32]>,
}

/// An envelope this device sealed (`own`) or opened: where it stands in
/// its origin's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeRow {
    /// The blake3 hash of its bytes.
    pub content_id: [u8; 32],
    /// The sealing device.
    pub origin: [u8; 16],
    /// Its position in the origin's chain, from 1, at most `i64::MAX`.
    pub chain_pos: u64,
    /// The content id of the origin's envelope before it; zeros at 1.
    pub prev: [u8; 32],
    /// The epoch it was sealed in.
    pub epoch: u64,
    /// For an own envelope: its bytes, pushed as they are, and the store
    /// position of the last delta it seals (`None` for a received one).
    pub own: Option<OwnEnvelope>,
    /// The relay log position, once a relay has accepted it.
    pub relay_seq: Option<u64>,
}

/// What an own envelope keeps to be pushed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnEnvelope {
    /// The envelope's bytes.
    pub bytes: Vec<u8>,
    /// The store position of the last delta it seals: the outbox's order.
    pub through_local_seq: i64,
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
    pub do_not_disturb: DoNotDisturb,
    /// Sorted, without duplicates.
    pub marks: Vec<String>,
    /// Sorted by message id.
    pub pinned_messages: Vec<PinnedMessage>,
}

/// A message pinned in a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedMessage {
    pub message: String,
    /// When it was pinned, by the pinning device's clock.
    pub pinned_at_ms: i64,
}

/// Minutes in a day: the bound of a daily quiet time's minutes.
pub const MINUTES_PER_DAY: u16 = 24 * 60;

/// The largest UTC offset a daily quiet time may name, in minutes either
/// way (UTC+14:00 is the furthest any zone is from UTC).
pub const UTC_OFFSET_MINUTES_MAX: i16 = 14 * 60;

/// A conversation's do-not-disturb mode, as the reference IM SDKs have it:
/// which messages notify, and an optional quiet time during which none do.
/// The engine reads no clock: whether a quiet time is in force is answered
/// for the time the app passes ([`DoNotDisturb::remind_at`]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct DoNotDisturb {
    /// Which messages notify outside the quiet time.
    pub remind: RemindType,
    /// When nothing notifies, whatever `remind` says; `None` for never.
    pub quiet: Option<QuietTime>,
}

/// When a do-not-disturb quiet time holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuietTime {
    /// Until a time (ms since the Unix epoch), not at it or after.
    Until { until_ms: i64 },
    /// Every day from `start_minute` up to (not at) `end_minute`, minutes
    /// after midnight at `utc_offset_minutes` from UTC; a start after the
    /// end spans midnight. Both below [`MINUTES_PER_DAY`], not equal; the
    /// offset at most [`UTC_OFFSET_MINUTES_MAX`] either way. The offset is
    /// part of the setting, so every device of the account answers alike.
    Daily {
        start_minute: u16,
        end_minute: u16,
        utc_offset_minutes: i16,
    },
}

impl DoNotDisturb {
    /// No do-not-disturb: every message notifies.
    pub const OFF: DoNotDisturb = DoNotDisturb {
        remind: RemindType::All,
        quiet: None,
    };

    /// Classic do-not-disturb: nothing notifies, at any time.
    pub const SILENT: DoNotDisturb = DoNotDisturb {
        remind: RemindType::None,
        quiet: None,
    };

    /// Whether any setting other than [`DoNotDisturb::OFF`] is made.
    pub fn is_set(&self) -> bool {
        *self != DoNotDisturb::OFF
    }

    /// Which messages notify at `now_ms` (ms since the Unix epoch): none
    /// while the quiet time holds, else what `remind` says.
    pub fn remind_at(&self, now_ms: i64) -> RemindType {
        match self.quiet {
            Some(quiet) if quiet.holds_at(now_ms) => RemindType::None,
            _ => self.remind,
        }
    }

    /// Whether anything is kept quiet at `now_ms`: the remind type then is
    /// not [`RemindType::All`].
    pub fn in_force_at(&self, now_ms: i64) -> bool {
        self.remind_at(now_ms) != RemindType::All
    }
}

impl QuietTime {
    /// Whether the quiet time holds at `now_ms`.
    pub fn holds_at(&self, now_ms: i64) -> bool {
        match *self {
            QuietTime::Until { until_ms } => now_ms < until_ms,
            QuietTime::Daily {
                start_minute,
                end_minute,
                utc_offset_minutes,
            } => {
                let minutes = now_ms.div_euclid(60_000) + i64::from(utc_offset_minutes);
                let minute = minutes.rem_euclid(i64::from(MINUTES_PER_DAY));
                let (start, end) = (i64::from(start_minute), i64::from(end_minute));
                if start <= end {
                    start <= minute && minute < end
                } else {
                    minute >= start || minute < end
                }
            }
        }
    }

    /// Why the quiet time is not one a device accepts, if it is not.
    pub fn invalid(&self) -> Option<&'static str> {
        match *self {
            QuietTime::Until { .. } => None,
            QuietTime::Daily {
                start_minute,
                end_minute,
                utc_offset_minutes,
            } => {
                if start_minute >= MINUTES_PER_DAY || end_minute >= MINUTES_PER_DAY {
                    Some("a daily quiet time's minutes must be below 1440")
                } else if start_minute == end_minute {
                    Some("a daily quiet time must start and end at different minutes")
                } else if utc_offset_minutes.unsigned_abs() > UTC_OFFSET_MINUTES_MAX.unsigned_abs()
                {
                    Some("a UTC offset is at most 14 hours either way")
                } else {
                    None
                }
            }
        }
    }
}

/// A conversation's settings: the flags from the account document plus the
/// read marker and clear point, which are maximum registers kept in SQLite.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConversationSettings {
    pub pinned: bool,
    pub do_not_disturb: DoNotDisturb,
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
    /// Which messages of a conversation notify, as the reference IM SDKs
    /// name it.
    RemindType, "a remind type", {
        /// Every message.
        All => "all",
        /// Only messages that mention the user.
        MentionsOnly => "mentions_only",
        /// None.
        None => "none",
    }
);

// Written out: `text_state!` derives no `Default`, and most states have none.
#[allow(clippy::derivable_impls)]
impl Default for RemindType {
    fn default() -> Self {
        RemindType::All
    }
}

// On the wire (in operations and events) a remind type is its text form.
impl serde::Serialize for RemindType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for RemindType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

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
    /// When the member's mute ends, in ms since the Unix epoch; 0 when never
    /// muted. A mute in the past has ended: ask [`GroupMember::is_muted_at`].
    pub muted_until_ms: i64,
}

impl GroupMember {
    /// Whether the member is muted at `now_ms`: before the mute's end, not
    /// at it or after. The engine reads no clock, so a mute ends by itself
    /// for whoever asks after it.
    pub fn is_muted_at(&self, now_ms: i64) -> bool {
        now_ms < self.muted_until_ms
    }
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
    /// The IM service disabled the group (it can be enabled again).
    pub disabled: bool,
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
    /// The operation's number on `origin`, for a merged operation; `None`
    /// for payloads and connection events. An operation is journaled once
    /// by `(origin, origin_seq)`, whatever its content id.
    pub origin_seq: Option<u64>,
    pub made_at_ms: i64,
    pub body: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;

    #[test]
    fn a_quiet_time_until_holds_below_it_only() {
        let until = QuietTime::Until { until_ms: 5_000 };
        assert!(until.holds_at(4_999));
        assert!(!until.holds_at(5_000));
        assert!(!until.holds_at(5_001));
        let dnd = DoNotDisturb {
            remind: RemindType::MentionsOnly,
            quiet: Some(until),
        };
        assert_eq!(dnd.remind_at(4_999), RemindType::None);
        assert_eq!(dnd.remind_at(5_000), RemindType::MentionsOnly);
        assert!(dnd.in_force_at(6_000), "mentions only is still quiet");
        assert!(!DoNotDisturb::OFF.in_force_at(0));
        assert!(DoNotDisturb::SILENT.in_force_at(i64::MAX));
    }

    #[test]
    fn a_daily_quiet_time_holds_in_its_window_at_its_offset() {
        // 22:00 to 07:00 at UTC+02:00 is 20:00 to 05:00 UTC.
        let night = QuietTime::Daily {
            start_minute: 22 * 60,
            end_minute: 7 * 60,
            utc_offset_minutes: 120,
        };
        let day = 86_400_000 * 20_000;
        for (utc_minute, holds) in [
            (19 * 60 + 59, false),
            (20 * 60, true),
            (23 * 60 + 59, true),
            (0, true),
            (4 * 60 + 59, true),
            (5 * 60, false),
            (12 * 60, false),
        ] {
            assert_eq!(
                night.holds_at(day + utc_minute * MINUTE),
                holds,
                "{utc_minute}"
            );
        }
        // A window inside one day, at a negative offset, before 1970 too.
        let lunch = QuietTime::Daily {
            start_minute: 12 * 60,
            end_minute: 13 * 60,
            utc_offset_minutes: -300,
        };
        assert!(lunch.holds_at(17 * 60 * MINUTE));
        assert!(!lunch.holds_at(18 * 60 * MINUTE));
        assert!(lunch.holds_at(-86_400_000 + 17 * 60 * MINUTE));
        // The extremes of time do not overflow.
        for now in [i64::MIN, i64::MIN + 1, i64::MAX] {
            let _ = lunch.holds_at(now);
            let _ = night.holds_at(now);
        }
    }

    #[test]
    fn daily_quiet_time_limits() {
        let daily = |start_minute, end_minute, utc_offset_minutes| QuietTime::Daily {
            start_minute,
            end_minute,
            utc_offset_minutes,
        };
        assert_eq!(daily(0, MINUTES_PER_DAY - 1, 0).invalid(), None);
        assert!(daily(0, MINUTES_PER_DAY, 0).invalid().is_some());
        assert!(daily(MINUTES_PER_DAY, 0, 0).invalid().is_some());
        assert!(daily(5, 5, 0).invalid().is_some());
        assert_eq!(daily(1, 2, UTC_OFFSET_MINUTES_MAX).invalid(), None);
        assert_eq!(daily(1, 2, -UTC_OFFSET_MINUTES_MAX).invalid(), None);
        assert!(daily(1, 2, UTC_OFFSET_MINUTES_MAX + 1).invalid().is_some());
        assert!(daily(1, 2, -UTC_OFFSET_MINUTES_MAX - 1).invalid().is_some());
        assert!(daily(1, 2, i16::MIN).invalid().is_some());
        assert_eq!(QuietTime::Until { until_ms: i64::MIN }.invalid(), None);
    }
}
