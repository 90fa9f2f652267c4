//! Tandem's device engine: one account on one device.
//!
//! See [`Engine`] for how to drive it, [`op`] for what a user can do, and
//! [`delta`] for what devices exchange.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod delta;
mod doc;
mod engine;
pub mod event;
pub mod limits;
pub mod model;
pub mod op;
mod rules;
pub mod seal;
pub mod sync;

pub use doc::DocError;
pub use engine::{
    AccountState, Applied, ApplyError, BlockedEntry, Changed, Config, Credentials,
    CredentialsError, DeviceEnrollment, DeviceIdentity, Durability, Engine, EventDelivery, Export,
    ExportCursor, KeyFingerprint, LinkState, LinkingError, LoadError, NeedsKey, OpError, OpenError,
    OutboxPosition, Performed, Recorded, RelayDelta, RosterEntry, SealOutboxError, ShownCode,
    StorePath, GENESIS_SNAPSHOT_ID, LINK_CODE_TEXT_CHARS, SEAL_BYTES_BUDGET,
};
pub use event::{Event, EventKind};
pub use rules::Refused;
pub use tandem_storage::device::{
    BlockedRow, ContactRow, ContactStatus, ConversationRow, ConversationSettings, DoNotDisturb,
    GroupMember, GroupRow, GroupStanding, KeySource, MemberAttribute, MemberRole, MessageView,
    PinnedMessage, QuietTime, Receipt, RemindType, ThreadRow, UnknownState, MINUTES_PER_DAY,
    UTC_OFFSET_MINUTES_MAX,
};
pub use tandem_storage::StoreError;
pub use tandem_transport::{
    AccountId, ContentId, DeviceId, DevicePublicKey, Entropy, OsEntropy, Platform, SeededEntropy,
};

/// The README's Rust examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
