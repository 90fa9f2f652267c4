//! The relay store: accounts (and whether they are banned or removed), their
//! devices and each device's enrollment (the public key its id is bound to,
//! active or revoked with a reason), the login tokens used so far, each
//! account's delta log, and device-addressed payloads waiting for their
//! recipient.
//!
//! [`RelayStore`] is the boundary the relay programs against; each method is
//! one logical operation and, in SQL, one transaction (or one savepoint
//! inside a group). Three backends implement it: [`MemoryRelayStore`],
//! [`SqliteRelayStore`] and, with the `postgres` feature,
//! [`PostgresRelayStore`] (for several relay nodes on one database). One
//! conformance suite (`conformance.rs`) runs against all three.
//!
//! The store speaks plain bytes and strings, not the transport's types:
//! storage sits below transport and does not depend on it. The relay
//! converts at its edge.
//!
//! Architecture invariant: everything is keyed by account first. No method
//! can read or write one account's rows through another account's key.

mod memory;
mod sqlite;

#[cfg(feature = "postgres")]
mod postgres;

#[cfg(test)]
mod conformance;

#[cfg(feature = "postgres")]
pub use self::postgres::PostgresRelayStore;
#[cfg(feature = "postgres")]
pub use self::postgres::{
    PostgresChangeFeed, CHANGE_CHANNEL, FEED_APPLICATION_NAME_SUFFIX, NOTIFY_PAYLOAD_BYTES_MAX,
};
pub use crate::values::STORED_VALUE_MAX;
pub use memory::MemoryRelayStore;
pub use sqlite::SqliteRelayStore;

use std::collections::HashMap;

use crate::values::{key, u64_from_sql};
use crate::StoreError;

/// A device id: 16 bytes.
pub type DeviceKey = [u8; 16];
/// A delta's content id: the blake3 hash of its bytes, 32 bytes.
pub type ContentKey = [u8; 32];
/// A payload id, chosen by its sender: 16 bytes.
pub type PayloadKey = [u8; 16];
/// A device's ed25519 public key: 32 bytes.
pub type PublicKey = [u8; 32];
/// A login token's id: 16 random bytes chosen by whoever issued it.
pub type TokenId = [u8; 16];

/// Whether an account may log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AccountStatus {
    /// It may (an account the store has never seen is active too).
    Active,
    /// Every login is refused until the operator lifts the ban; the
    /// enrollments are kept.
    Banned,
    /// The account's data was deleted; its id stays refused for good.
    Removed,
}

impl AccountStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Banned => "banned",
            AccountStatus::Removed => "removed",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "active" => AccountStatus::Active,
            "banned" => AccountStatus::Banned,
            "removed" => AccountStatus::Removed,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "account status {other:?} is not one this build knows"
                )))
            }
        })
    }
}

/// Why an enrollment was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RevocationKind {
    /// Another device (or a management connection) kicked it.
    KickedByDevice,
    /// The device limit made room for a newer login.
    Displaced,
    /// The device logged out.
    LoggedOut,
    /// The operator revoked it.
    Operator,
    /// Every credential of the account was revoked (a password change).
    AllCredentials,
}

impl RevocationKind {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationKind::KickedByDevice => "kicked_by_device",
            RevocationKind::Displaced => "displaced",
            RevocationKind::LoggedOut => "logged_out",
            RevocationKind::Operator => "operator",
            RevocationKind::AllCredentials => "all_credentials",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "kicked_by_device" => RevocationKind::KickedByDevice,
            "displaced" => RevocationKind::Displaced,
            "logged_out" => RevocationKind::LoggedOut,
            "operator" => RevocationKind::Operator,
            "all_credentials" => RevocationKind::AllCredentials,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "revocation {other:?} is not one this build knows"
                )))
            }
        })
    }
}

/// A device named by a revocation: who kicked, who displaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMention {
    /// Its id.
    pub device: DeviceKey,
    /// Its name then.
    pub name: String,
    /// Its platform then.
    pub platform: String,
}

/// Why, by whom and when an enrollment was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Why.
    pub kind: RevocationKind,
    /// The device that caused it, for a kick or a displacement.
    pub by: Option<DeviceMention>,
    /// When, in ms since the Unix epoch.
    pub at_ms: u64,
}

/// A device's enrollment: the key its id is bound to, for good, and
/// whether that key logs it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentRow {
    /// The public key. A device id is never enrolled with another.
    pub public_key: PublicKey,
    /// The login token of the latest (re-)enrollment.
    pub token_id: TokenId,
    /// When that was, in ms since the Unix epoch.
    pub enrolled_at_ms: u64,
    /// When the enrollment stops logging the device in unless renewed, in
    /// ms since the Unix epoch.
    pub expires_at_ms: u64,
    /// Set once revoked; a new login token clears it.
    pub revoked: Option<Revocation>,
}

impl EnrollmentRow {
    /// Whether the key logs the device in at `now_ms`.
    pub fn is_active(&self, now_ms: u64) -> bool {
        self.revoked.is_none() && now_ms < self.expires_at_ms
    }
}

/// A device of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    /// The device id.
    pub device: DeviceKey,
    /// Its name at its latest login.
    pub name: String,
    /// Its platform name at its latest login.
    pub platform: String,
    /// Its first login, ms since the Unix epoch.
    pub first_login_ms: u64,
    /// The last time the relay recorded it, ms since the Unix epoch.
    pub last_seen_ms: u64,
    /// The highest seq it says it has persisted.
    pub cursor: u64,
    /// Its enrollment; `None` for a device known from protocol 1, which
    /// had none.
    pub enrollment: Option<EnrollmentRow>,
}

/// A device and its enrollment as the SQL stores select them (`devices`
/// left-joined with `enrollments`), column by column as stored, before
/// they are checked: each backend reads its row into this, and
/// [`StoredDevice::decode`] is the one decoding for both.
pub(crate) struct StoredDevice {
    pub device: Vec<u8>,
    pub name: String,
    pub platform: String,
    pub first_login_ms: i64,
    pub last_seen_ms: i64,
    pub cursor: i64,
    /// NULL for a device without an enrollment (protocol 1); then every
    /// enrollment column is NULL too.
    pub public_key: Option<Vec<u8>>,
    pub token_id: Option<Vec<u8>>,
    pub enrolled_at_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
    pub revoked_kind: Option<String>,
    pub revoked_by: Option<Vec<u8>>,
    pub revoked_by_name: Option<String>,
    pub revoked_by_platform: Option<String>,
    pub revoked_at_ms: Option<i64>,
}

/// An enrollment column that must not be NULL when the enrollment exists.
fn required<T>(value: Option<T>, what: &str) -> Result<T, StoreError> {
    value.ok_or_else(|| StoreError::Corrupt(format!("an enrollment without {what}")))
}

impl StoredDevice {
    /// The row, every value checked: lengths, signs, the revocation kind.
    /// An enrollment with a NULL where a value belongs is corrupt.
    pub(crate) fn decode(self) -> Result<DeviceRow, StoreError> {
        let enrollment = match self.public_key {
            None => None,
            Some(public_key) => {
                let revoked = match self.revoked_kind {
                    None => None,
                    Some(kind) => Some(Revocation {
                        kind: RevocationKind::parse(&kind)?,
                        by: match self.revoked_by {
                            None => None,
                            Some(device) => Some(DeviceMention {
                                device: key(device, "revoked_by")?,
                                name: self.revoked_by_name.unwrap_or_default(),
                                platform: self.revoked_by_platform.unwrap_or_default(),
                            }),
                        },
                        at_ms: u64_from_sql("revoked_at_ms", self.revoked_at_ms.unwrap_or(-1))?,
                    }),
                };
                Some(EnrollmentRow {
                    public_key: key(public_key, "public_key")?,
                    token_id: key(required(self.token_id, "token_id")?, "token_id")?,
                    enrolled_at_ms: u64_from_sql(
                        "enrolled_at_ms",
                        required(self.enrolled_at_ms, "enrolled_at_ms")?,
                    )?,
                    expires_at_ms: u64_from_sql(
                        "expires_at_ms",
                        required(self.expires_at_ms, "expires_at_ms")?,
                    )?,
                    revoked,
                })
            }
        };
        Ok(DeviceRow {
            device: key(self.device, "device id")?,
            name: self.name,
            platform: self.platform,
            first_login_ms: u64_from_sql("first_login_ms", self.first_login_ms)?,
            last_seen_ms: u64_from_sql("last_seen_ms", self.last_seen_ms)?,
            cursor: u64_from_sql("cursor", self.cursor)?,
            enrollment,
        })
    }
}

/// A login token the relay has verified (its MAC, account and expiry),
/// presented to enroll a device or to manage the account's devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenUse {
    /// Its id.
    pub id: TokenId,
    /// When it expires, in ms since the Unix epoch: until then the store
    /// remembers that it was used.
    pub expires_at_ms: u64,
}

/// One login attempt, as [`RelayStore::login`] records it. The relay has
/// verified the device's signature with `public_key` already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login<'a> {
    /// The account.
    pub account: &'a str,
    /// The device logging in.
    pub device: DeviceKey,
    /// The key its proof verified with.
    pub public_key: PublicKey,
    /// The device's name.
    pub name: &'a str,
    /// The device's platform name.
    pub platform: &'a str,
    /// The login token presented, if any.
    pub token: Option<TokenUse>,
    /// The cursor the device resumes from.
    pub resume_cursor: u64,
    /// The time of the login, ms since the Unix epoch.
    pub now_ms: u64,
    /// How long the enrollment lasts from now, renewed by this login.
    pub enrollment_ttl_ms: u64,
    /// The most devices the account may have registered; a new device past
    /// it is refused.
    pub devices_max: usize,
}

/// What [`RelayStore::login`] decided. Only `Accepted` changed anything.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginOutcome {
    /// The device is enrolled (or was already) and logged in: its name,
    /// platform, last seen time and cursor are updated, its enrollment
    /// renewed, and a token it presented is marked used.
    Accepted {
        /// The device as now stored, its active enrollment included.
        device: DeviceRow,
        /// Whether this was the device's first login.
        first_login: bool,
        /// Whether this login (re-)enrolled it with a token.
        enrolled_now: bool,
    },
    /// The account is banned.
    AccountBanned,
    /// The account was removed.
    AccountRemoved,
    /// The device id is enrolled with another key.
    KeyMismatch,
    /// No token, and no enrollment (a new device, or one from protocol 1).
    NotEnrolled,
    /// No token, and the enrollment was revoked.
    Revoked(Revocation),
    /// No token, and the enrollment expired.
    Expired {
        /// When it expired, in ms since the Unix epoch.
        at_ms: u64,
    },
    /// The token was used before, by another device or for an enrollment
    /// that is no longer active.
    TokenUsed,
    /// The device is new and the account already has `devices_max` devices.
    TooManyDevices,
}

/// What [`RelayStore::revoke`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokeOutcome {
    /// The enrollment was active and is revoked now.
    Revoked,
    /// It was revoked already; the first reason stays.
    AlreadyRevoked,
    /// A device from protocol 1, never enrolled: nothing logs it in anyway.
    NotEnrolled,
    /// The account has no such device.
    NotFound,
}

/// A delta in an account's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    /// Its seq; the account's first delta is 1.
    pub seq: u64,
    /// The device that pushed it first.
    pub origin: DeviceKey,
    /// The blake3 hash of `bytes`.
    pub content_id: ContentKey,
    /// The opaque bytes.
    pub bytes: Vec<u8>,
}

/// What [`RelayStore::append`] did with one delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The delta's content id.
    pub content_id: ContentKey,
    /// Its seq in the log.
    pub seq: u64,
    /// Whether it was stored now (false: the log already held it, `seq` is
    /// the existing one).
    pub new: bool,
}

/// One page of an account's log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Page {
    /// Consecutive deltas in seq order.
    pub rows: Vec<LogRow>,
    /// Whether the log holds deltas after the last row.
    pub more: bool,
}

/// A snapshot's id: the blake3 hash of its manifest without the
/// signature, 32 bytes.
pub type SnapshotKey = [u8; 32];
/// The blake3 hash of one snapshot chunk, 32 bytes.
pub type ChunkHash = [u8; 32];

/// A sealed envelope (format 2) to append, as the relay read it from the
/// envelope's clear header. The store does not read `bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeIn<'a> {
    /// The blake3 hash of `bytes`.
    pub content_id: ContentKey,
    /// The epoch it was sealed in.
    pub epoch: u64,
    /// Its position in its origin's chain, from 1.
    pub chain_pos: u64,
    /// The content id of the origin's envelope at `chain_pos - 1`; zeros at
    /// position 1.
    pub prev: ContentKey,
    /// The whole envelope.
    pub bytes: &'a [u8],
}

/// An account's current epoch, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochRow {
    /// Its number, from 1.
    pub epoch: u64,
    /// The key generation it derives its keys from.
    pub generation: u32,
    /// The log position its snapshot holds everything up to (B).
    pub base_seq: u64,
    /// Its snapshot.
    pub snapshot_id: SnapshotKey,
    /// The snapshot's manifest, opaque to the store.
    pub manifest: Vec<u8>,
    /// How many chunks the snapshot has.
    pub chunks: u32,
    /// The device that published it.
    pub published_by: DeviceKey,
    /// When the relay committed it, ms since the Unix epoch.
    pub published_at_ms: u64,
}

/// What [`RelayStore::append_envelopes`] did. Only `Appended` changed
/// anything: a batch is all or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppendOutcome {
    /// Every envelope is in the log: one entry per input, in order.
    Appended(Vec<Appended>),
    /// The envelope at `index` is not one the log holds, and was sealed in
    /// another epoch than the account's current one. Nothing was appended.
    StaleEpoch {
        /// Its index in the batch.
        index: usize,
        /// The current epoch; `None` while the account is at epoch 0 (no
        /// epoch published yet).
        current: Option<EpochRow>,
    },
    /// The envelope at `index` does not continue its origin's chain (its
    /// position is not `head_pos + 1`, or its `prev` is not `head`): a gap
    /// or a fork. Nothing was appended.
    ChainConflict {
        /// Its index in the batch.
        index: usize,
        /// The origin's chain position before the batch (0: none yet).
        head_pos: u64,
        /// The content id at `head_pos` (zeros at 0).
        head: ContentKey,
    },
}

/// One chunk of a snapshot a device is uploading before it publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagedChunk<'a> {
    /// The snapshot it belongs to.
    pub snapshot_id: SnapshotKey,
    /// Its index, from 0.
    pub index: u32,
    /// Its ciphertext; the store keeps its blake3 hash beside it.
    pub bytes: &'a [u8],
}

/// A publish of epoch `epoch`, as [`RelayStore::publish_epoch`] takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish<'a> {
    /// The epoch published: the current one plus one.
    pub epoch: u64,
    /// The log head the snapshot was built at (B).
    pub base_seq: u64,
    /// The key generation of the new epoch.
    pub generation: u32,
    /// The snapshot's id.
    pub snapshot_id: SnapshotKey,
    /// The manifest, kept opaque.
    pub manifest: &'a [u8],
    /// The chunk hashes the manifest lists, in order (the relay decoded
    /// them from `manifest`; the manifest codec guarantees at least one).
    pub chunk_hashes: &'a [ChunkHash],
    /// The publishing device.
    pub published_by: DeviceKey,
}

/// What [`RelayStore::publish_epoch`] decided. Only `Published` changed
/// anything.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishOutcome {
    /// The epoch is the account's current one now.
    Published(EpochRow),
    /// The account is not at `epoch - 1`, or its head is not `base_seq`:
    /// another publish or an append came first.
    Conflict {
        /// The current epoch (`None`: epoch 0). A publisher that finds its
        /// own snapshot here won before (a retry after a lost answer).
        current: Option<EpochRow>,
        /// The log's head.
        head_seq: u64,
    },
    /// The condition holds but these chunks (indexes) are not staged, or
    /// are staged with bytes whose hash is not the manifest's.
    Incomplete {
        /// The indexes, ascending.
        missing: Vec<u32>,
    },
}

/// The shape of an account's log around its current epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TailStats {
    /// The log's head.
    pub head_seq: u64,
    /// The current epoch (0: none published).
    pub epoch: u64,
    /// The current epoch's base B: the tail is `(B, head]`.
    pub base_seq: u64,
    /// Entries in the tail: `head_seq - base_seq`.
    pub entries: u64,
    /// Bytes of the entries in the tail.
    pub bytes: u64,
    /// The highest seq deleted from the log (0: none): a page after a
    /// cursor below it would have a hole.
    pub floor_seq: u64,
}

/// What [`RelayStore::read_log_from`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogRead {
    /// Consecutive entries after the cursor, as [`RelayStore::read_log`]
    /// gives them.
    Page(Page),
    /// The cursor is below the log's floor: entries after it were deleted,
    /// so no page after it would be dense. The device must move to the
    /// current epoch instead (design §2.4, the gap case).
    Truncated {
        /// The highest deleted seq.
        floor: u64,
    },
}

/// How long [`RelayStore::retain`] keeps what an epoch covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Log entries at or below the current epoch's base are kept until
    /// every device seen within this has acknowledged them, or for this
    /// long after they were appended, whichever ends first
    /// (`LOG_RETENTION_MS`, 30 days).
    pub log_retention_ms: u64,
    /// Staged chunks that no publish committed are kept this long after
    /// their last staging (`STAGED_TTL_MS`, 1 hour).
    pub staged_ttl_ms: u64,
}

/// What [`RelayStore::retain`] deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retained {
    /// Log entries.
    pub log_entries: u64,
    /// The log's floor afterwards (the highest deleted seq, 0: none).
    pub floor_seq: u64,
    /// Committed chunks of snapshots older than the previous epoch's.
    pub snapshot_chunks: u64,
    /// Staged chunks past their time to live.
    pub staged_chunks: u64,
}

/// A payload waiting for its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadRow {
    /// Its id, chosen by the sender.
    pub id: PayloadKey,
    /// The sending device.
    pub sender: DeviceKey,
    /// The payload.
    pub bytes: Vec<u8>,
    /// When the relay accepted it, ms since the Unix epoch.
    pub sent_ms: u64,
}

/// What [`RelayStore::put_payload`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutPayload {
    /// Stored; it waits for the recipient's ack.
    Stored,
    /// A payload with this id already waits for this recipient; nothing
    /// changed. Resends are idempotent.
    AlreadyStored,
    /// The account has no such recipient device.
    UnknownRecipient,
    /// The recipient already has `pending_max` payloads waiting.
    QueueFull,
}

/// The relay's durable state. Every method is one logical operation: it
/// happens entirely or not at all.
///
/// Methods take `&mut self`: the relay runs its store on one thread of its
/// own, so a backend needs no internal locking.
pub trait RelayStore: Send {
    /// Logs a device in, in one step (the enrollment state machine is in
    /// ARCHITECTURE.md):
    ///
    /// 1. A banned or removed account is refused.
    /// 2. A device id enrolled with another key is refused, token or not.
    /// 3. With a token: a token used before is refused, unless this device
    ///    used it for its enrollment and that enrollment is still active
    ///    (then it is an ordinary login); otherwise the device is enrolled
    ///    (again) with `public_key`, a new device past `devices_max` is
    ///    refused, and the token is marked used until it expires.
    /// 4. Without one: the device's enrollment must be active (not revoked,
    ///    not expired).
    /// 5. Accepted: the enrollment expires `enrollment_ttl_ms` from now; the
    ///    device's name, platform and last seen time are updated and its
    ///    cursor raised to the resume cursor (clamped to the log's head).
    fn login(&mut self, login: &Login<'_>) -> Result<LoginOutcome, StoreError>;

    /// The account's devices, ordered by id; empty for an unknown account.
    fn devices(&mut self, account: &str) -> Result<Vec<DeviceRow>, StoreError>;

    /// Records that the device was seen at `last_seen_ms`. An unknown device
    /// is ignored.
    fn touch(
        &mut self,
        account: &str,
        device: DeviceKey,
        last_seen_ms: u64,
    ) -> Result<(), StoreError>;

    /// Revokes the device's enrollment: its key no longer logs it in; a new
    /// login token enrolls it again (with the same key).
    fn revoke(
        &mut self,
        account: &str,
        device: DeviceKey,
        revocation: &Revocation,
    ) -> Result<RevokeOutcome, StoreError>;

    /// Revokes every enrollment of the account that is not revoked yet,
    /// but `except`'s. Returns the devices revoked now, ordered by id.
    fn revoke_all(
        &mut self,
        account: &str,
        except: Option<DeviceKey>,
        revocation: &Revocation,
    ) -> Result<Vec<DeviceKey>, StoreError>;

    /// Extends an active enrollment to `expires_at_ms` (never shortens it).
    /// Returns false when the device has no active enrollment.
    fn renew_enrollment(
        &mut self,
        account: &str,
        device: DeviceKey,
        expires_at_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError>;

    /// Marks a login token used by `device` (a management connection's
    /// token). Returns false, changing nothing, when it was used already.
    fn use_token(
        &mut self,
        account: &str,
        token: &TokenUse,
        device: DeviceKey,
    ) -> Result<bool, StoreError>;

    /// Forgets used tokens that expired at or before `now_ms`: nobody can
    /// present them successfully any more. Returns how many.
    fn purge_used_tokens(&mut self, now_ms: u64) -> Result<u64, StoreError>;

    /// The account's status; [`AccountStatus::Active`] for an account the
    /// store does not know.
    fn account_status(&mut self, account: &str) -> Result<AccountStatus, StoreError>;

    /// Bans (`banned`) or unbans the account. A removed account stays
    /// removed. Returns the status now.
    fn set_banned(&mut self, account: &str, banned: bool) -> Result<AccountStatus, StoreError>;

    /// Removes the account: its log, payloads, used tokens, devices and
    /// their enrollments are deleted, and its id is refused from now on.
    /// Returns how many devices it had.
    fn remove_account(&mut self, account: &str) -> Result<u64, StoreError>;

    /// Appends deltas pushed by `origin` (a registered device), each once by
    /// content id: a content id already in the account's log keeps its seq.
    /// New deltas get the next seqs in the given order. Returns one entry
    /// per input, in order.
    fn append(
        &mut self,
        account: &str,
        origin: DeviceKey,
        deltas: &[(ContentKey, &[u8])],
    ) -> Result<Vec<Appended>, StoreError>;

    /// Up to `count_max` deltas after `after_seq`, stopping early before the
    /// summed bytes would pass `bytes_max` (but always at least one delta
    /// when there is one).
    fn read_log(
        &mut self,
        account: &str,
        after_seq: u64,
        count_max: usize,
        bytes_max: usize,
    ) -> Result<Page, StoreError>;

    /// The seq of the account's newest delta, 0 when none.
    fn head_seq(&mut self, account: &str) -> Result<u64, StoreError>;

    /// Appends sealed envelopes pushed by `origin` (a registered device),
    /// all or nothing, under the account's lock (the same lock
    /// [`RelayStore::publish_epoch`] takes). For each envelope in order:
    ///
    /// 1. **Dedupe**: a content id the account's log holds (or one earlier
    ///    in the batch) keeps its seq, whatever its epoch: a resend of an
    ///    accepted envelope gets its seq back even after a publish.
    /// 2. **Epoch**: an envelope of another epoch than the current one is
    ///    [`AppendOutcome::StaleEpoch`].
    /// 3. **Chain**: it must be `origin`'s next, position `head_pos + 1`
    ///    and `prev` the content id at `head_pos`, where the head includes
    ///    the batch's earlier envelopes; else
    ///    [`AppendOutcome::ChainConflict`].
    ///
    /// The first refusal refuses the batch: nothing of it is stored, and
    /// the index says which envelope. Otherwise new envelopes get the next
    /// seqs in order, with the epoch and `now_ms`; the origin's chain head
    /// and the tail's bytes move with them. An epoch, chain position or
    /// time above [`STORED_VALUE_MAX`] is [`StoreError::OutOfRange`] before
    /// anything is read.
    fn append_envelopes(
        &mut self,
        account: &str,
        origin: DeviceKey,
        envelopes: &[EnvelopeIn<'_>],
        now_ms: u64,
    ) -> Result<AppendOutcome, StoreError>;

    /// The account's current epoch; `None` at epoch 0 (never published,
    /// or an account the store does not know).
    fn epoch(&mut self, account: &str) -> Result<Option<EpochRow>, StoreError>;

    /// Stages one chunk of a snapshot under its id, keyed `(account,
    /// snapshot, index)`: idempotent, so an upload can resume (through any
    /// relay node). A chunk not committed yet is replaced, and its staging
    /// time renewed; a committed one (its epoch was published) never
    /// changes.
    fn stage_chunk(
        &mut self,
        account: &str,
        chunk: &StagedChunk<'_>,
        now_ms: u64,
    ) -> Result<(), StoreError>;

    /// Publishes epoch `publish.epoch` by compare-and-swap, under the
    /// account's lock: it succeeds iff the account's epoch is
    /// `publish.epoch - 1` **and** its head is `publish.base_seq` (else
    /// [`PublishOutcome::Conflict`]) **and** every chunk the manifest lists
    /// is staged under the snapshot's id with the listed hash (else
    /// [`PublishOutcome::Incomplete`]). Then, atomically: the account's
    /// epoch, generation and base become the publish's, its tail is empty,
    /// the epoch row is written (published at `now_ms`) and the chunks are
    /// committed. Of two publishers of the same epoch one wins, the same
    /// on every node; a publish and an append are ordered: either the
    /// append came first (the head moved: `Conflict`) or the publish did
    /// (the append is stale).
    fn publish_epoch(
        &mut self,
        account: &str,
        publish: &Publish<'_>,
        now_ms: u64,
    ) -> Result<PublishOutcome, StoreError>;

    /// Chunk `index` of the snapshot of the account's published epoch
    /// `epoch`; `None` when there is no such epoch, chunk, or when it was
    /// only staged.
    fn snapshot_chunk(
        &mut self,
        account: &str,
        epoch: u64,
        index: u32,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// The account's head, current epoch, tail and floor, read together.
    fn tail_stats(&mut self, account: &str) -> Result<TailStats, StoreError>;

    /// [`RelayStore::read_log`] that knows the floor: a cursor below the
    /// log's floor is [`LogRead::Truncated`]. The floor and the rows are
    /// read in one snapshot, so a concurrent [`RelayStore::retain`] never
    /// yields a page with a hole: it is dense, or `Truncated`.
    fn read_log_from(
        &mut self,
        account: &str,
        after_seq: u64,
        count_max: usize,
        bytes_max: usize,
    ) -> Result<LogRead, StoreError>;

    /// Deletes what the account's current epoch makes droppable, under the
    /// account's lock, and never anything else:
    ///
    /// - log entries at or below the current epoch's base, as a prefix:
    ///   up to the lowest cursor among the devices seen within
    ///   `log_retention_ms` (every device, when none was), or up to the
    ///   newest entry such that it and every entry before it were appended
    ///   at least `log_retention_ms` ago, whichever is higher; the floor
    ///   rises to the highest deleted seq. Entries after the base (the
    ///   tail) are never deleted.
    /// - committed chunks of epochs older than the previous one: the
    ///   current and the previous snapshot stay. Epoch rows stay (they are
    ///   small).
    /// - staged chunks that no publish committed, last staged at least
    ///   `staged_ttl_ms` ago.
    fn retain(
        &mut self,
        account: &str,
        retention: &Retention,
        now_ms: u64,
    ) -> Result<Retained, StoreError>;

    /// Raises the device's cursor to `cursor`, clamped to the log's head; a
    /// lower cursor changes nothing. Returns the stored cursor, or `None`
    /// for an unknown device.
    fn set_cursor(
        &mut self,
        account: &str,
        device: DeviceKey,
        cursor: u64,
    ) -> Result<Option<u64>, StoreError>;

    /// Holds a payload for `recipient` until it acks it.
    fn put_payload(
        &mut self,
        account: &str,
        recipient: DeviceKey,
        payload: &PayloadRow,
        pending_max: usize,
    ) -> Result<PutPayload, StoreError>;

    /// The payloads waiting for `recipient`, oldest first.
    fn payloads(
        &mut self,
        account: &str,
        recipient: DeviceKey,
    ) -> Result<Vec<PayloadRow>, StoreError>;

    /// Forgets a delivered payload. Returns false when none had that id.
    fn ack_payload(
        &mut self,
        account: &str,
        recipient: DeviceKey,
        id: PayloadKey,
    ) -> Result<bool, StoreError>;

    /// Starts a group: the operations until [`RelayStore::commit_group`]
    /// become durable together, with one sync to disk instead of one each
    /// (group commit). Nothing of a group is durable before its commit, so
    /// the caller must not acknowledge anything of it before then.
    fn begin_group(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Makes the group's operations durable. On an error none of them is,
    /// and the store is left outside any group.
    fn commit_group(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Right after [`RelayStore::begin_group`]: takes, in one order that
    /// every writer shares, the account locks the group's operations on
    /// these accounts will take, so that the groups of two writers (relay
    /// nodes on one database) never wait on each other in a cycle. Nothing
    /// for a store with one writer. Accounts that do not exist yet are
    /// skipped (creating one is not a thing to do before its login is
    /// checked); a failure only means the operations lock as they go.
    fn lock_accounts(&mut self, _accounts: &[&str]) -> Result<(), StoreError> {
        Ok(())
    }

    /// Outside any group: creates the accounts among these that do not
    /// exist yet, committed at once, so that no group of any writer holds
    /// a new account's row uncommitted while another waits for it. Nothing
    /// for a store with one writer (a login creates its account there).
    /// For accounts a login is authorized for only: an empty account is
    /// harmless, but the relay must not make them for anyone who asks.
    fn create_accounts(&mut self, _accounts: &[&str]) -> Result<(), StoreError> {
        Ok(())
    }

    /// What other writers of the same database change, for a relay that
    /// shares its store with other relay nodes: `None` for a store only
    /// this process writes (memory, SQLite), which has nothing to report.
    ///
    /// The feed is a hint, not a copy of the data: it names the accounts
    /// that changed and how, and the relay reads the store to learn what
    /// is new. Changes this store instance made itself are not reported
    /// (its own relay saw them). Call it once; the feed runs on a thread of
    /// its own, beside the store's.
    fn change_feed(&mut self) -> Option<Box<dyn ChangeFeed>> {
        None
    }

    /// Records that `session.device` is online on this relay node (on its
    /// connection `session.conn`), replacing any session of that device on
    /// any node, and renews this node's lease to `lease_until_ms`. A store
    /// without other writers keeps nothing: the relay's memory is the whole
    /// truth there.
    fn open_session(
        &mut self,
        _account: &str,
        _session: &SessionRow,
        _lease_until_ms: u64,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// Forgets the session of `device` on this node's connection `conn`;
    /// a later session of the device (another connection, another node)
    /// stays.
    fn close_session(
        &mut self,
        _account: &str,
        _device: DeviceKey,
        _conn: u64,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// Forgets the session of `device` whichever node holds it: the device
    /// was displaced or revoked.
    fn end_session(&mut self, _account: &str, _device: DeviceKey) -> Result<(), StoreError> {
        Ok(())
    }

    /// The account's sessions on other nodes whose lease runs past
    /// `now_ms` and whose device's enrollment is not revoked, ordered by
    /// device; always empty for a store without other writers. Inside a
    /// group that locked the account (a login did), the answer holds until
    /// the group commits.
    fn sessions_elsewhere(
        &mut self,
        _account: &str,
        _now_ms: u64,
    ) -> Result<Vec<SessionRow>, StoreError> {
        Ok(Vec::new())
    }

    /// Renews this node's lease to `lease_until_ms`: until then its
    /// sessions count on the other nodes.
    fn renew_node_lease(&mut self, _lease_until_ms: u64) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A device online on a relay node, as other nodes see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The device.
    pub device: DeviceKey,
    /// The node's connection id.
    pub conn: u64,
    /// Its platform name.
    pub platform: String,
    /// When it logged in (other nodes do not see its later activity).
    pub last_active_ms: u64,
    /// When its enrollment was made.
    pub enrolled_at_ms: u64,
}

/// What changed about one account, as far as a relay serving its devices
/// must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct ChangeKinds {
    /// New deltas in its log.
    pub deltas: bool,
    /// Its device list: a login, or an enrollment revoked.
    pub devices: bool,
    /// A payload stored for one of its devices.
    pub payloads: bool,
    /// Its status: banned, unbanned or removed.
    pub status: bool,
}

impl ChangeKinds {
    /// Every kind: what a relay re-reads when it may have missed changes.
    pub const ALL: ChangeKinds = ChangeKinds {
        deltas: true,
        devices: true,
        payloads: true,
        status: true,
    };

    /// Both `self`'s kinds and `other`'s.
    pub fn union(self, other: ChangeKinds) -> ChangeKinds {
        ChangeKinds {
            deltas: self.deltas || other.deltas,
            devices: self.devices || other.devices,
            payloads: self.payloads || other.payloads,
            status: self.status || other.status,
        }
    }

    /// Whether no kind is set.
    pub fn is_empty(self) -> bool {
        self == ChangeKinds::default()
    }
}

/// What a [`ChangeFeed`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Changes {
    /// These accounts changed, each named once, with every kind of change
    /// reported for it since the last report.
    Accounts(Vec<(String, ChangeKinds)>),
    /// The feed (re)connected and may have missed changes: re-read every
    /// account the relay serves.
    Everything,
}

/// The changes other writers (relay nodes) commit to a shared store, in
/// commit order as far as the database tells, as hints: see
/// [`RelayStore::change_feed`]. Blocking; runs on a plain thread.
pub trait ChangeFeed: Send {
    /// Waits at most `timeout` for changes. `Ok(None)`: none came. The
    /// first call connects and reports [`Changes::Everything`]; so does the
    /// first call that connects again after an error (a lost connection
    /// loses the changes made meanwhile).
    fn wait(&mut self, timeout: std::time::Duration) -> Result<Option<Changes>, StoreError>;

    /// How long the notifications read since the last call took to arrive,
    /// in ms, one entry each: this process's clock when it read one minus
    /// the writer's clock just before its commit (0 when the clocks say it
    /// came before it was sent; skewed clocks skew it). For a lag metric;
    /// empty for a feed that cannot tell.
    fn take_lags_ms(&mut self) -> Vec<u64> {
        Vec::new()
    }
}

/// What a backend knows when it decides a login: read inside the login's
/// transaction (on PostgreSQL, under the account's row lock).
#[derive(Debug)]
pub(crate) struct LoginFacts<'a> {
    /// The account's status.
    pub status: AccountStatus,
    /// The device's row, with its enrollment, if the device is known.
    pub device: Option<&'a DeviceRow>,
    /// Who used the presented token, if it was used.
    pub token_used_by: Option<DeviceKey>,
    /// Devices the account has registered.
    pub devices_registered: u64,
}

/// What an accepted login writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LoginWrites {
    /// Insert the device's row first.
    pub new_device: bool,
    /// Mark this token used and (re-)enroll with the login's key; `None`
    /// renews the active enrollment.
    pub enroll_with: Option<TokenUse>,
}

/// The decision of [`RelayStore::login`], the same for every backend: the
/// enrollment state machine in one place. Each backend reads the facts,
/// asks this, and writes what it says.
pub(crate) fn plan_login(login: &Login<'_>, facts: &LoginFacts<'_>) -> LoginPlan {
    match refusal_or_writes(login, facts) {
        Ok(writes) => LoginPlan::Write(writes),
        Err(refused) => LoginPlan::Refuse(refused),
    }
}

/// What [`plan_login`] decided.
#[derive(Debug)]
pub(crate) enum LoginPlan {
    /// Accept, writing this.
    Write(LoginWrites),
    /// Refuse, changing nothing.
    Refuse(LoginOutcome),
}

#[allow(clippy::result_large_err)] // Private, and read once per login.
fn refusal_or_writes(
    login: &Login<'_>,
    facts: &LoginFacts<'_>,
) -> Result<LoginWrites, LoginOutcome> {
    match facts.status {
        AccountStatus::Active => {}
        AccountStatus::Banned => return Err(LoginOutcome::AccountBanned),
        AccountStatus::Removed => return Err(LoginOutcome::AccountRemoved),
    }
    let enrollment = facts.device.and_then(|d| d.enrollment.as_ref());
    if enrollment.is_some_and(|e| e.public_key != login.public_key) {
        return Err(LoginOutcome::KeyMismatch);
    }
    let renew = LoginWrites {
        new_device: false,
        enroll_with: None,
    };
    if let Some(token) = login.token {
        return match facts.token_used_by {
            // The token this device enrolled with, presented again while
            // that enrollment is active: an ordinary login.
            Some(user)
                if user == login.device
                    && enrollment
                        .is_some_and(|e| e.is_active(login.now_ms) && e.token_id == token.id) =>
            {
                Ok(renew)
            }
            Some(_) => Err(LoginOutcome::TokenUsed),
            None => {
                let new_device = facts.device.is_none();
                if new_device && facts.devices_registered >= login.devices_max as u64 {
                    return Err(LoginOutcome::TooManyDevices);
                }
                Ok(LoginWrites {
                    new_device,
                    enroll_with: Some(token),
                })
            }
        };
    }
    match enrollment {
        None => Err(LoginOutcome::NotEnrolled),
        Some(e) => match &e.revoked {
            Some(revocation) => Err(LoginOutcome::Revoked(revocation.clone())),
            None if e.expires_at_ms <= login.now_ms => Err(LoginOutcome::Expired {
                at_ms: e.expires_at_ms,
            }),
            None => Ok(renew),
        },
    }
}

/// When an enrollment renewed by a login at `now_ms` expires; checked
/// against what the stores can keep.
pub(crate) fn expiry_after(login: &Login<'_>) -> Result<u64, StoreError> {
    let expires = login.now_ms.saturating_add(login.enrollment_ttl_ms);
    crate::values::u64_to_sql("expires_at_ms", expires)?;
    Ok(expires)
}

/// Checks the numbers of an envelope append against what stores keep,
/// before anything is read.
pub(crate) fn check_envelopes(envelopes: &[EnvelopeIn<'_>], now_ms: u64) -> Result<(), StoreError> {
    crate::values::u64_to_sql("appended_at_ms", now_ms)?;
    for e in envelopes {
        crate::values::u64_to_sql("epoch", e.epoch)?;
        crate::values::u64_to_sql("chain_pos", e.chain_pos)?;
    }
    Ok(())
}

/// What a backend knows when it decides an envelope append: read under the
/// account's lock.
#[derive(Debug)]
pub(crate) struct AppendFacts<'a> {
    /// The account's current epoch.
    pub epoch: u64,
    /// Its log's head.
    pub head_seq: u64,
    /// The origin's chain head: position and content id (0 and zeros for
    /// none).
    pub chain: (u64, ContentKey),
    /// The seqs of the batch's content ids that the log holds.
    pub known: &'a HashMap<ContentKey, u64>,
}

/// What an accepted envelope append writes.
#[derive(Debug)]
pub(crate) struct AppendWrites {
    /// The answer, one entry per input.
    pub out: Vec<Appended>,
    /// The envelopes to insert: index in the batch and seq.
    pub new: Vec<(usize, u64)>,
    /// The origin's chain head after the batch, when it moved.
    pub chain: Option<(u64, ContentKey)>,
    /// The log's head after the batch.
    pub head_seq: u64,
    /// Bytes the new envelopes add to the tail.
    pub bytes: u64,
}

/// The decision of [`RelayStore::append_envelopes`], the same for every
/// backend.
#[derive(Debug)]
pub(crate) enum AppendPlan {
    Write(AppendWrites),
    StaleEpoch {
        index: usize,
    },
    ChainConflict {
        index: usize,
        head_pos: u64,
        head: ContentKey,
    },
}

pub(crate) fn plan_append(envelopes: &[EnvelopeIn<'_>], facts: &AppendFacts<'_>) -> AppendPlan {
    let mut seqs: HashMap<ContentKey, u64> = facts.known.clone();
    let mut writes = AppendWrites {
        out: Vec::with_capacity(envelopes.len()),
        new: Vec::new(),
        chain: None,
        head_seq: facts.head_seq,
        bytes: 0,
    };
    let (mut pos, mut head) = facts.chain;
    for (index, e) in envelopes.iter().enumerate() {
        if let Some(&seq) = seqs.get(&e.content_id) {
            writes.out.push(Appended {
                content_id: e.content_id,
                seq,
                new: false,
            });
            continue;
        }
        if e.epoch != facts.epoch {
            return AppendPlan::StaleEpoch { index };
        }
        if pos.checked_add(1) != Some(e.chain_pos) || e.prev != head {
            return AppendPlan::ChainConflict {
                index,
                head_pos: facts.chain.0,
                head: facts.chain.1,
            };
        }
        (pos, head) = (e.chain_pos, e.content_id);
        writes.head_seq += 1;
        writes.bytes += e.bytes.len() as u64;
        writes.new.push((index, writes.head_seq));
        writes.chain = Some((pos, head));
        seqs.insert(e.content_id, writes.head_seq);
        writes.out.push(Appended {
            content_id: e.content_id,
            seq: writes.head_seq,
            new: true,
        });
    }
    AppendPlan::Write(writes)
}

/// Checks the numbers of a publish against what stores keep.
pub(crate) fn check_publish(publish: &Publish<'_>, now_ms: u64) -> Result<(), StoreError> {
    crate::values::u64_to_sql("epoch", publish.epoch)?;
    crate::values::u64_to_sql("base_seq", publish.base_seq)?;
    crate::values::u64_to_sql("published_at_ms", now_ms)?;
    u32::try_from(publish.chunk_hashes.len()).map_err(|_| StoreError::OutOfRange {
        what: "chunks",
        value: publish.chunk_hashes.len() as u64,
    })?;
    Ok(())
}

/// The compare of the compare-and-swap: the account is at the epoch before
/// and its head is the publish's base.
pub(crate) fn publish_condition(epoch: u64, head_seq: u64, publish: &Publish<'_>) -> bool {
    epoch.checked_add(1) == Some(publish.epoch) && head_seq == publish.base_seq
}

/// The chunks of `publish` that are not staged with their listed hash;
/// `staged` maps each staged index of the snapshot to its hash.
pub(crate) fn missing_chunks(publish: &Publish<'_>, staged: &HashMap<u32, ChunkHash>) -> Vec<u32> {
    (0u32..)
        .zip(publish.chunk_hashes)
        .filter(|(index, hash)| staged.get(index) != Some(hash))
        .map(|(index, _)| index)
        .collect()
}

/// The row a successful publish writes.
pub(crate) fn published_row(publish: &Publish<'_>, now_ms: u64) -> EpochRow {
    EpochRow {
        epoch: publish.epoch,
        generation: publish.generation,
        base_seq: publish.base_seq,
        snapshot_id: publish.snapshot_id,
        manifest: publish.manifest.to_vec(),
        chunks: publish.chunk_hashes.len() as u32,
        published_by: publish.published_by,
        published_at_ms: now_ms,
    }
}

/// A chunk's hash, as the store keeps it beside the chunk.
pub(crate) fn chunk_hash(bytes: &[u8]) -> ChunkHash {
    *blake3::hash(bytes).as_bytes()
}

/// The floor [`RelayStore::retain`] raises the log to: see its docs.
/// `min_active_cursor` is `None` when no device was seen within the
/// retention; `first_recent_seq` is the lowest seq appended less than the
/// retention ago (`None`: none was).
pub(crate) fn retained_floor(
    stats: &TailStats,
    min_active_cursor: Option<u64>,
    first_recent_seq: Option<u64>,
) -> u64 {
    let acked = min_active_cursor.unwrap_or(stats.head_seq);
    let old = first_recent_seq.map_or(stats.head_seq, |seq| seq.saturating_sub(1));
    acked.max(old).min(stats.base_seq).max(stats.floor_seq)
}

/// Whether a device last seen at `last_seen_ms` still holds back the
/// log's retention at `now_ms`.
pub(crate) fn is_active(last_seen_ms: u64, retention: &Retention, now_ms: u64) -> bool {
    last_seen_ms.saturating_add(retention.log_retention_ms) > now_ms
}

/// Whether a row from `at_ms` is at least `keep_ms` old at `now_ms`.
pub(crate) fn is_expired(at_ms: u64, keep_ms: u64, now_ms: u64) -> bool {
    at_ms.saturating_add(keep_ms) <= now_ms
}

#[cfg(test)]
mod stored_device_tests {
    use super::*;

    fn enrolled() -> StoredDevice {
        StoredDevice {
            device: vec![1; 16],
            name: "phone".into(),
            platform: "ios".into(),
            first_login_ms: 1,
            last_seen_ms: i64::MAX,
            cursor: 0,
            public_key: Some(vec![2; 32]),
            token_id: Some(vec![3; 16]),
            enrolled_at_ms: Some(4),
            expires_at_ms: Some(5),
            revoked_kind: Some("kicked_by_device".into()),
            revoked_by: Some(vec![6; 16]),
            revoked_by_name: Some("laptop".into()),
            revoked_by_platform: None,
            revoked_at_ms: Some(7),
        }
    }

    #[test]
    fn a_stored_device_decodes_with_and_without_its_enrollment() {
        let row = enrolled().decode().unwrap();
        assert_eq!(row.last_seen_ms, i64::MAX as u64);
        let enrollment = row.enrollment.unwrap();
        assert_eq!(enrollment.token_id, [3; 16]);
        let revoked = enrollment.revoked.unwrap();
        assert_eq!(revoked.kind, RevocationKind::KickedByDevice);
        assert_eq!(revoked.by.unwrap().platform, "");
        let protocol_1 = StoredDevice {
            public_key: None,
            token_id: None,
            enrolled_at_ms: None,
            expires_at_ms: None,
            revoked_kind: None,
            revoked_by: None,
            revoked_by_name: None,
            revoked_at_ms: None,
            ..enrolled()
        };
        assert_eq!(protocol_1.decode().unwrap().enrollment, None);
    }

    #[test]
    fn a_corrupt_stored_device_is_an_error() {
        let corrupt = [
            StoredDevice {
                device: vec![1; 15],
                ..enrolled()
            },
            StoredDevice {
                cursor: -1,
                ..enrolled()
            },
            StoredDevice {
                token_id: None,
                ..enrolled()
            },
            StoredDevice {
                expires_at_ms: None,
                ..enrolled()
            },
            StoredDevice {
                public_key: Some(vec![2; 33]),
                ..enrolled()
            },
            StoredDevice {
                revoked_kind: Some("hacked".into()),
                ..enrolled()
            },
            StoredDevice {
                revoked_at_ms: None,
                ..enrolled()
            },
        ];
        for device in corrupt {
            assert!(matches!(device.decode(), Err(StoreError::Corrupt(_))));
        }
    }
}
