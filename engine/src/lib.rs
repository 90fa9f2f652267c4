//! Tandem's device engine: one account on one device.
//!
//! See [`Engine`] for how to drive it, [`op`] for what a user can do, and
//! [`delta`] for what devices exchange.

pub mod delta;
mod doc;
mod engine;
pub mod limits;
pub mod model;
pub mod net;
pub mod op;
pub mod sync;

pub use doc::{DocError, Refused};
pub use engine::{
    AccountState, Applied, ApplyError, Config, DeviceInfo, Engine, Export, ExportCursor,
    JournalEntry, Journaled, LoadError, OpError, OpenError, Performed, RelayDelta, StorePath,
};
pub use tandem_storage::device::{
    BlockedRow, ContactRow, ConversationRow, ConversationSettings, GroupMember, GroupRow,
    MemberAttribute, MessageView, Receipt, ThreadRow,
};
pub use tandem_storage::StoreError;
pub use tandem_transport::{AccountId, DeviceId, Platform};
