//! Operations: what the user did, recorded as an intent.
//!
//! Every local change goes through [`Engine::perform`](crate::Engine::perform)
//! with one [`Op`]. The op travels inside the delta beside the document
//! change it made, so the device that merges it can name it (multi-device
//! events) without guessing from a state diff.
//!
//! Each category's operations, and everything they mean (validation, the
//! document edit, the event they become), live in the engine's rules file
//! for that category; this module is their public path.
//!
//! Wire format: ops are encoded with postcard, which numbers enum variants
//! by position. New variants go at the end of their enum; none is ever
//! removed or reordered (the delta snapshot test catches a slip).

pub use crate::rules::contact::ContactOp;
pub use crate::rules::conversation::ConversationOp;
pub use crate::rules::device::DeviceOp;
pub use crate::rules::group::{GroupInfoUpdate, GroupOp};
pub use crate::rules::message::MessageOp;
pub use crate::rules::thread::ThreadOp;
pub use crate::rules::{InvalidOp, Op};
pub use tandem_storage::device::{DoNotDisturb, QuietTime, RemindType};
