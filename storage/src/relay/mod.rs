//! The relay store: accounts' devices, revoked credentials, each account's
//! delta log, and device-addressed payloads waiting for their recipient.
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
pub use crate::values::STORED_VALUE_MAX;
pub use memory::MemoryRelayStore;
pub use sqlite::SqliteRelayStore;

use crate::StoreError;

/// A device id: 16 bytes.
pub type DeviceKey = [u8; 16];
/// A delta's content id: the blake3 hash of its bytes, 32 bytes.
pub type ContentKey = [u8; 32];
/// A payload id, chosen by its sender: 16 bytes.
pub type PayloadKey = [u8; 16];
/// The blake3 hash of a token: what the store keeps instead of the token.
pub type TokenHash = [u8; 32];

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
}

/// One login attempt, as [`RelayStore::login`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login<'a> {
    /// The account, already authenticated by the relay.
    pub account: &'a str,
    /// The device logging in.
    pub device: DeviceKey,
    /// The device's name.
    pub name: &'a str,
    /// The device's platform name.
    pub platform: &'a str,
    /// The blake3 hash of the token used.
    pub token_hash: TokenHash,
    /// The cursor the device resumes from.
    pub resume_cursor: u64,
    /// The time of the login, ms since the Unix epoch.
    pub now_ms: u64,
    /// The most devices the account may have registered; a new device past
    /// it is refused.
    pub devices_max: usize,
}

/// What [`RelayStore::login`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginOutcome {
    /// The device is registered (or updated) and logged in.
    Accepted {
        /// The device as now stored.
        device: DeviceRow,
        /// Whether this was the device's first login.
        first_login: bool,
    },
    /// This device's credentials (this token) were revoked by a kick.
    Revoked,
    /// The device is new and the account already has `devices_max` devices.
    TooManyDevices,
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
    /// Logs a device in. In one step: refuses credentials revoked for this
    /// device; refuses a new device past `devices_max`; otherwise registers
    /// the device (first login now) or updates its name, platform, token
    /// hash and last seen time, and raises its cursor to the resume cursor
    /// (clamped to the log's head).
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

    /// Revokes the device's current credentials (the token hash of its
    /// latest login): that token never logs this device in again, a new one
    /// does. Returns false when the account has no such device.
    fn revoke(&mut self, account: &str, device: DeviceKey) -> Result<bool, StoreError>;

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
}
