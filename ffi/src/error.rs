//! Typed errors at the boundary: one UniFFI error enum per engine and online error enum.
//!
//! Each enum has the variants of the Rust error it mirrors, under the same
//! names, with the same typed fields (nested errors as nested error
//! values, text the engine only has as text as `details`). In Kotlin they
//! are exceptions (`OpError` becomes `OpException`), in Swift `Error`
//! enums, in Python exception classes; every one is thrown typed.
//!
//! Two kinds of variant are the boundary's own:
//! - `InvalidId`, where a function takes ids as strings: the string is not a
//!   valid id of its kind, and nothing was called.
//! - `Unknown`, on each enum that mirrors a non-exhaustive Rust enum: a
//!   variant added to the engine after this build of the bindings. Never
//!   produced when both are built from the same source: the unit tests
//!   below convert every variant the engine has today.
//!
//! Fields never use the names `message` or `cause`, which Kotlin's
//! `Throwable` already has. The engine's `Refused` and `InvalidOp` are
//! `RefusedError` and `InvalidOpError` here: in Kotlin a variant cannot
//! hold a value of a type with its own name (`OpError.Refused` holds a
//! `RefusedError`).

use tandem_engine as e;

use crate::ids::BadId;

fn size(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Why a read or a write of the device's store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum StoreError {
    /// SQLite reported an error (disk full, I/O error, constraint).
    #[error("store error: {details}")]
    Sqlite { details: String },
    /// A stored value breaks an invariant of the schema.
    #[error("the store holds corrupt data: {details}")]
    Corrupt { details: String },
    /// A number above 2^63 - 1 was to be stored; nothing was written.
    #[error("{what} {value} is above the largest number a store keeps (2^63 - 1)")]
    OutOfRange { what: String, value: u64 },
    /// A failure this build of the bindings does not know.
    #[error("{details}")]
    Unknown { details: String },
}

impl From<e::StoreError> for StoreError {
    fn from(error: e::StoreError) -> Self {
        match error {
            e::StoreError::Sqlite(inner) => StoreError::Sqlite {
                details: inner.to_string(),
            },
            e::StoreError::Corrupt(details) => StoreError::Corrupt { details },
            e::StoreError::OutOfRange { what, value } => StoreError::OutOfRange {
                what: what.to_owned(),
                value,
            },
            other => StoreError::Unknown {
                details: other.to_string(),
            },
        }
    }
}

/// Why the device store could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum StoreOpenError {
    /// SQLite refused to open the file or to set it up.
    #[error("cannot open the store: {details}")]
    Sqlite { details: String },
    /// The file was written by a newer Tandem; opening it would lose data.
    #[error("the store's schema version {found} is newer than this build knows ({known})")]
    SchemaTooNew { found: u32, known: u32 },
    /// A migration failed; the store is left at its previous version.
    #[error("migration {version} failed: {details}")]
    Migration { version: u32, details: String },
    /// A failure this build of the bindings does not know.
    #[error("{details}")]
    Unknown { details: String },
}

impl From<tandem_storage::OpenError> for StoreOpenError {
    fn from(error: tandem_storage::OpenError) -> Self {
        use tandem_storage::OpenError as O;
        match error {
            O::Sqlite(inner) => StoreOpenError::Sqlite {
                details: inner.to_string(),
            },
            O::SchemaTooNew { found, known } => StoreOpenError::SchemaTooNew { found, known },
            O::Migration { version, source } => StoreOpenError::Migration {
                version,
                details: source.to_string(),
            },
            other => StoreOpenError::Unknown {
                details: other.to_string(),
            },
        }
    }
}

/// Why a device could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum OpenError {
    /// The store could not be opened.
    #[error("{error}")]
    Store { error: StoreOpenError },
    /// The store opened, but reading the device's identity or state failed.
    #[error("reading the store: {error}")]
    Read { error: StoreError },
    /// The file belongs to another account.
    #[error("this device store belongs to account {found:?}, not {expected}")]
    AccountMismatch { expected: String, found: String },
    /// The device name is longer than 64 bytes.
    #[error("the device name is {bytes} bytes, over the limit")]
    DeviceNameTooLong { bytes: u64 },
    /// The stored identity or document cannot be read back.
    #[error("the stored state is corrupt: {details}")]
    Corrupt { details: String },
    /// The account id is not a valid id.
    #[error("{details}")]
    InvalidId {
        kind: String,
        value: String,
        details: String,
    },
    /// The device's thread could not be started (online devices only).
    #[error("cannot start the device thread: {details}")]
    Spawn { details: String },
    /// A failure this build of the bindings does not know.
    #[error("{details}")]
    Unknown { details: String },
}

impl From<e::OpenError> for OpenError {
    fn from(error: e::OpenError) -> Self {
        match error {
            e::OpenError::Store(inner) => OpenError::Store {
                error: inner.into(),
            },
            e::OpenError::Read(inner) => OpenError::Read {
                error: inner.into(),
            },
            e::OpenError::AccountMismatch { expected, found } => OpenError::AccountMismatch {
                expected: expected.to_string(),
                found,
            },
            e::OpenError::DeviceNameTooLong(bytes) => {
                OpenError::DeviceNameTooLong { bytes: size(bytes) }
            }
            e::OpenError::Corrupt(details) => OpenError::Corrupt { details },
            other => OpenError::Unknown {
                details: other.to_string(),
            },
        }
    }
}

impl From<BadId> for OpenError {
    fn from(bad: BadId) -> Self {
        OpenError::InvalidId {
            kind: bad.kind.to_owned(),
            value: bad.value,
            details: bad.details,
        }
    }
}

/// Why the account document could not be loaded or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum DocError {
    /// automerge could not load the document or make or apply a change.
    #[error("automerge: {details}")]
    Automerge { details: String },
    /// The stored document lacks the genesis layout.
    #[error("the stored document is missing its root map {root:?}")]
    MissingRoot { root: String },
    /// A failure this build of the bindings does not know.
    #[error("{details}")]
    Unknown { details: String },
}

impl From<e::DocError> for DocError {
    fn from(error: e::DocError) -> Self {
        match error {
            e::DocError::Automerge(inner) => DocError::Automerge {
                details: inner.to_string(),
            },
            e::DocError::MissingRoot(root) => DocError::MissingRoot {
                root: root.to_owned(),
            },
            other => DocError::Unknown {
                details: other.to_string(),
            },
        }
    }
}

/// Why an operation's content breaks a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum InvalidOpError {
    /// A text field is longer than its limit, in bytes.
    #[error("{field} is {len} bytes, over the limit of {max}")]
    TextTooLong { field: String, len: u64, max: u64 },
    /// A list is longer than its limit.
    #[error("{field} names {len} entries, over the limit of {max}")]
    TooMany { field: String, len: u64, max: u64 },
    /// A list that must name something is empty.
    #[error("{field} is empty")]
    Empty { field: String },
    /// A mark or attribute key that is empty, too long or has control
    /// characters.
    #[error("{field} is not a valid key")]
    BadKey { field: String },
    /// An operation with an ext inside another one (the engine's
    /// `ContactOp::WithExt` nested; `Op.ContactWithExt` cannot nest).
    #[error("an operation with an ext cannot hold another one")]
    NestedExt,
    /// A do-not-disturb quiet time no device accepts; `reason` says why.
    #[error("{reason}")]
    BadQuietTime { reason: String },
    /// A limit this build of the bindings does not know.
    #[error("{details}")]
    Unknown { details: String },
}

impl From<e::op::InvalidOp> for InvalidOpError {
    fn from(error: e::op::InvalidOp) -> Self {
        use e::op::InvalidOp as I;
        match error {
            I::TextTooLong { field, len, max } => InvalidOpError::TextTooLong {
                field: field.to_owned(),
                len: size(len),
                max: size(max),
            },
            I::TooMany { field, len, max } => InvalidOpError::TooMany {
                field: field.to_owned(),
                len: size(len),
                max: size(max),
            },
            I::Empty { field } => InvalidOpError::Empty {
                field: field.to_owned(),
            },
            I::BadKey { field } => InvalidOpError::BadKey {
                field: field.to_owned(),
            },
            I::NestedExt => InvalidOpError::NestedExt,
            I::BadQuietTime { reason } => InvalidOpError::BadQuietTime {
                reason: reason.to_owned(),
            },
            other => InvalidOpError::Unknown {
                details: other.to_string(),
            },
        }
    }
}

/// A precondition of a local operation that the current state breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum RefusedError {
    #[error("{user} is not a contact")]
    NoSuchContact { user: String },
    #[error("{user} is already a contact")]
    AlreadyContact { user: String },
    #[error("{user} is not blocked")]
    NotBlocked { user: String },
    #[error("group {group} is not known on this device")]
    NoSuchGroup { group: String },
    #[error("group {group} already exists")]
    GroupExists { group: String },
    #[error("{user} is not a member of group {group}")]
    NotAMember { group: String, user: String },
    #[error("thread {thread} is not known on this device")]
    NoSuchThread { thread: String },
    #[error("thread {thread} already exists")]
    ThreadExists { thread: String },
    /// A refusal this build of the bindings does not know.
    #[error("{details}")]
    Unknown { details: String },
}

impl From<e::Refused> for RefusedError {
    fn from(error: e::Refused) -> Self {
        use e::Refused as R;
        let s = |id: &dyn std::fmt::Display| id.to_string();
        match error {
            R::NoSuchContact(user) => RefusedError::NoSuchContact { user: s(&user) },
            R::AlreadyContact(user) => RefusedError::AlreadyContact { user: s(&user) },
            R::NotBlocked(user) => RefusedError::NotBlocked { user: s(&user) },
            R::NoSuchGroup(group) => RefusedError::NoSuchGroup { group: s(&group) },
            R::GroupExists(group) => RefusedError::GroupExists { group: s(&group) },
            R::NotAMember { group, user } => RefusedError::NotAMember {
                group: s(&group),
                user: s(&user),
            },
            R::NoSuchThread(thread) => RefusedError::NoSuchThread { thread: s(&thread) },
            R::ThreadExists(thread) => RefusedError::ThreadExists { thread: s(&thread) },
            other => RefusedError::Unknown {
                details: other.to_string(),
            },
        }
    }
}

/// Why a local operation was not performed; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum OpError {
    /// The operation breaks a size or count limit.
    #[error("invalid operation: {error}")]
    Invalid { error: InvalidOpError },
    /// The current state does not allow it.
    #[error("refused: {reason}")]
    Refused { reason: RefusedError },
    /// The operation names a message this device does not have.
    #[error("unknown message {message_id}")]
    UnknownMessage { message_id: String },
    /// The message belongs to another conversation than the one named.
    #[error("message {message_id} is not in conversation {conversation}")]
    WrongConversation {
        message_id: String,
        conversation: String,
    },
    /// automerge failed to make the change (a defect, not a state the app
    /// can fix).
    #[error("document: {error}")]
    Doc { error: DocError },
    /// The store failed; the in-memory document was reloaded from it.
    #[error("store: {error}")]
    Store { error: StoreError },
    /// An id in the operation is not valid; nothing was called.
    #[error("{details}")]
    InvalidId {
        kind: String,
        value: String,
        details: String,
    },
    /// A failure this build of the bindings does not know.
    #[error("{details}")]
    Unknown { details: String },
}

impl From<e::OpError> for OpError {
    fn from(error: e::OpError) -> Self {
        match error {
            e::OpError::Invalid(inner) => OpError::Invalid {
                error: inner.into(),
            },
            e::OpError::Refused(inner) => OpError::Refused {
                reason: inner.into(),
            },
            e::OpError::UnknownMessage(id) => OpError::UnknownMessage {
                message_id: id.to_string(),
            },
            e::OpError::WrongConversation {
                message,
                conversation,
            } => OpError::WrongConversation {
                message_id: message.to_string(),
                conversation: conversation.to_string(),
            },
            e::OpError::Doc(inner) => OpError::Doc {
                error: inner.into(),
            },
            e::OpError::Store(inner) => OpError::Store {
                error: inner.into(),
            },
            other => OpError::Unknown {
                details: other.to_string(),
            },
        }
    }
}

impl From<BadId> for OpError {
    fn from(bad: BadId) -> Self {
        OpError::InvalidId {
            kind: bad.kind.to_owned(),
            value: bad.value,
            details: bad.details,
        }
    }
}

impl From<e::StoreError> for OpError {
    fn from(error: e::StoreError) -> Self {
        OpError::Store {
            error: error.into(),
        }
    }
}

/// Why the document could not be (re)loaded from the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum LoadError {
    #[error("document: {error}")]
    Doc { error: DocError },
    #[error("store: {error}")]
    Store { error: StoreError },
    /// A failure this build of the bindings does not know.
    #[error("{details}")]
    Unknown { details: String },
}

impl From<e::LoadError> for LoadError {
    fn from(error: e::LoadError) -> Self {
        match error {
            e::LoadError::Doc(inner) => LoadError::Doc {
                error: inner.into(),
            },
            e::LoadError::Store(inner) => LoadError::Store {
                error: inner.into(),
            },
            other => LoadError::Unknown {
                details: other.to_string(),
            },
        }
    }
}

/// Why a delta was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum DeltaError {
    /// Larger than 1 MiB; refused before decoding.
    #[error("a delta of {len} bytes is over the limit")]
    TooLarge { len: u64 },
    /// The bytes do not decode as a delta.
    #[error("malformed delta: {details}")]
    Malformed { details: String },
    /// Written by a newer (or unknown) format.
    #[error("delta format {format} is not supported")]
    UnsupportedFormat { format: u16 },
    /// The delta belongs to another account.
    #[error("the delta belongs to account {found}, not {expected}")]
    ForeignAccount { expected: String, found: String },
    /// The operation's number on its device is 0 or too large.
    #[error("origin_seq {seq} is out of range")]
    OriginSeqOutOfRange { seq: u64 },
    /// The operation breaks a limit.
    #[error("invalid operation: {error}")]
    InvalidOp { error: InvalidOpError },
    /// The document change does not decode.
    #[error("malformed document change: {details}")]
    MalformedChange { details: String },
    /// The change was made by another device than the delta claims.
    #[error("the document change was not made by the origin device {origin}")]
    ForgedOrigin { origin: String },
    /// A refusal this build of the bindings does not know.
    #[error("{details}")]
    Unknown { details: String },
}

impl From<e::delta::DeltaError> for DeltaError {
    fn from(error: e::delta::DeltaError) -> Self {
        use e::delta::DeltaError as D;
        match error {
            D::TooLarge { len } => DeltaError::TooLarge { len: size(len) },
            D::Malformed(details) => DeltaError::Malformed { details },
            D::UnsupportedFormat(format) => DeltaError::UnsupportedFormat { format },
            D::ForeignAccount { expected, found } => DeltaError::ForeignAccount {
                expected: expected.to_string(),
                found: found.to_string(),
            },
            D::OriginSeqOutOfRange(seq) => DeltaError::OriginSeqOutOfRange { seq },
            D::InvalidOp(inner) => DeltaError::InvalidOp {
                error: inner.into(),
            },
            D::MalformedChange(details) => DeltaError::MalformedChange { details },
            D::ForgedOrigin { origin } => DeltaError::ForgedOrigin {
                origin: origin.to_hex(),
            },
            other => DeltaError::Unknown {
                details: other.to_string(),
            },
        }
    }
}

/// Why a batch of deltas was not merged; nothing of it was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ApplyError {
    /// More deltas than 10,000 in one batch.
    #[error("a batch of {count} deltas is over the limit")]
    BatchTooLarge { count: u64 },
    /// One delta of the batch is bad (its position, from 0); the whole
    /// batch is refused.
    #[error("delta {index} of the batch: {error}")]
    Delta { index: u64, error: DeltaError },
    /// One entry of a relay page is not a delta this build can merge.
    #[error("relay log entry {seq}: {error}")]
    RelayEntry { seq: u64, error: DeltaError },
    /// A relay page does not continue the log after the cursor.
    #[error("the relay log continues at {expected}, the page has {found}")]
    Gap { expected: u64, found: u64 },
    /// automerge refused a change.
    #[error("document: {error}")]
    Doc { error: DocError },
    /// The store failed.
    #[error("store: {error}")]
    Store { error: StoreError },
    /// A failure this build of the bindings does not know.
    #[error("{details}")]
    Unknown { details: String },
}

impl From<e::ApplyError> for ApplyError {
    fn from(error: e::ApplyError) -> Self {
        match error {
            e::ApplyError::BatchTooLarge(count) => ApplyError::BatchTooLarge { count: size(count) },
            e::ApplyError::Delta { index, error } => ApplyError::Delta {
                index: size(index),
                error: error.into(),
            },
            e::ApplyError::RelayEntry { seq, error } => ApplyError::RelayEntry {
                seq,
                error: error.into(),
            },
            e::ApplyError::Gap { expected, found } => ApplyError::Gap { expected, found },
            e::ApplyError::Doc(inner) => ApplyError::Doc {
                error: inner.into(),
            },
            e::ApplyError::Store(inner) => ApplyError::Store {
                error: inner.into(),
            },
            other => ApplyError::Unknown {
                details: other.to_string(),
            },
        }
    }
}

/// Why the connection refused a command: nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum CommandError {
    /// The session closed meanwhile.
    #[error("the session is closed")]
    Closed,
    #[error("{count} deltas in one push is over the limit")]
    TooManyDeltas { count: u64 },
    #[error("delta of {bytes} bytes is over the limit")]
    DeltaTooLarge { bytes: u64 },
    /// A payload above 64 KiB.
    #[error("payload of {bytes} bytes is over the limit")]
    PayloadTooLarge { bytes: u64 },
    #[error("log position {seq} is over the limit")]
    SeqTooLarge { seq: u64 },
    #[error("the frame would be too large: {details}")]
    FrameTooLarge { details: String },
    /// A refusal this build of the bindings does not know.
    #[error("{details}")]
    Unknown { details: String },
}

impl From<tandem_transport::CommandError> for CommandError {
    fn from(error: tandem_transport::CommandError) -> Self {
        use tandem_transport::CommandError as C;
        match error {
            C::Closed => CommandError::Closed,
            C::TooManyDeltas { count } => CommandError::TooManyDeltas { count: size(count) },
            C::DeltaTooLarge { bytes } => CommandError::DeltaTooLarge { bytes: size(bytes) },
            C::PayloadTooLarge { bytes } => CommandError::PayloadTooLarge { bytes: size(bytes) },
            C::SeqTooLarge { seq } => CommandError::SeqTooLarge { seq },
            C::FrameTooLarge(inner) => CommandError::FrameTooLarge {
                details: inner.to_string(),
            },
            other => CommandError::Unknown {
                details: other.to_string(),
            },
        }
    }
}

/// Why a call to an online device failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum DeviceError {
    /// The device has shut down.
    #[error("the device has shut down")]
    ShutDown,
    /// The call needs the relay and the device is not logged in.
    #[error("not connected to the relay")]
    NotConnected,
    /// The engine refused or failed the operation (or, for a query, its
    /// store failed: `OpError.Store`).
    #[error("{error}")]
    Op { error: OpError },
    /// The connection refused the command because it closed meanwhile.
    #[error("session: {error}")]
    Session { error: CommandError },
    /// A device id is not 32 hex characters; nothing was called.
    #[error("{details}")]
    InvalidId {
        kind: String,
        value: String,
        details: String,
    },
    /// A linking call was refused or failed; nothing was stored.
    #[error("{error}")]
    Linking { error: LinkingError },
    /// A failure this build of the bindings does not know.
    #[error("{details}")]
    Unknown { details: String },
}

impl From<tandem_online::DeviceError> for DeviceError {
    fn from(error: tandem_online::DeviceError) -> Self {
        use tandem_online::DeviceError as D;
        match error {
            D::ShutDown => DeviceError::ShutDown,
            D::NotConnected => DeviceError::NotConnected,
            D::Op(inner) => DeviceError::Op {
                error: inner.into(),
            },
            D::Session(inner) => DeviceError::Session {
                error: inner.into(),
            },
            D::Linking(inner) => DeviceError::Linking {
                error: inner.into(),
            },
            other => DeviceError::Unknown {
                details: other.to_string(),
            },
        }
    }
}

impl From<OpError> for DeviceError {
    fn from(error: OpError) -> Self {
        DeviceError::Op { error }
    }
}

impl From<e::StoreError> for DeviceError {
    fn from(error: e::StoreError) -> Self {
        OpError::from(error).into()
    }
}

impl From<e::LoadError> for DeviceError {
    fn from(error: e::LoadError) -> Self {
        OpError::from(e::OpError::from(error)).into()
    }
}

impl From<BadId> for DeviceError {
    fn from(bad: BadId) -> Self {
        DeviceError::InvalidId {
            kind: bad.kind.to_owned(),
            value: bad.value,
            details: bad.details,
        }
    }
}

/// What a listener returns when it could not handle an event. The engine
/// logs and counts it (see `ListenerHandle`); it never reaches the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ListenerError {
    /// The listener failed; `details` says why.
    #[error("the listener failed: {details}")]
    Failed { details: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for ListenerError {
    /// An exception the listener threw that is not a `ListenerError`.
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        ListenerError::Failed {
            details: error.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every variant the engine has today converts to its own variant, not
    //! to `Unknown`.
    use super::*;
    use tandem_engine::model::{GroupId, MessageId, ThreadId, UserId};

    /// A real SQLite error, without naming rusqlite: SQLite cannot open a
    /// folder as a store.
    fn sqlite() -> e::StoreError {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let config = e::Config {
            store: e::StorePath::File(dir.path().to_owned()),
            account: e::AccountId::new("a").unwrap(),
            device_name: "d".into(),
            platform: e::Platform::Linux,
        };
        match e::Engine::open(config, 0, Box::new(e::SeededEntropy::new(1))) {
            Err(e::OpenError::Store(tandem_storage::OpenError::Sqlite(inner))) => {
                e::StoreError::Sqlite(inner)
            }
            other => panic!("opening a folder: {other:?}"),
        }
    }

    fn store_errors() -> Vec<e::StoreError> {
        vec![
            sqlite(),
            e::StoreError::Corrupt("x".into()),
            e::StoreError::OutOfRange {
                what: "relay_seq",
                value: 1 << 63,
            },
        ]
    }

    #[test]
    fn every_store_error_has_its_variant() {
        for error in store_errors() {
            let ours = StoreError::from(error);
            assert!(!matches!(ours, StoreError::Unknown { .. }), "{ours:?}");
        }
        assert_eq!(
            StoreError::from(e::StoreError::OutOfRange {
                what: "relay_seq",
                value: u64::MAX
            }),
            StoreError::OutOfRange {
                what: "relay_seq".into(),
                value: u64::MAX
            }
        );
    }

    #[test]
    fn every_op_error_has_its_variant() {
        let user = UserId::new("bob").unwrap();
        let group = GroupId::new("g").unwrap();
        let thread = ThreadId::new("t").unwrap();
        let refusals = [
            e::Refused::NoSuchContact(user.clone()),
            e::Refused::AlreadyContact(user.clone()),
            e::Refused::NotBlocked(user.clone()),
            e::Refused::NoSuchGroup(group.clone()),
            e::Refused::GroupExists(group.clone()),
            e::Refused::NotAMember {
                group: group.clone(),
                user: user.clone(),
            },
            e::Refused::NoSuchThread(thread.clone()),
            e::Refused::ThreadExists(thread),
        ];
        let invalid = [
            e::op::InvalidOp::TextTooLong {
                field: "body",
                len: usize::MAX,
                max: 1,
            },
            e::op::InvalidOp::TooMany {
                field: "users",
                len: 501,
                max: 500,
            },
            e::op::InvalidOp::Empty { field: "users" },
            e::op::InvalidOp::BadKey { field: "mark" },
            e::op::InvalidOp::NestedExt,
            e::op::InvalidOp::BadQuietTime { reason: "r" },
        ];
        let mut errors: Vec<e::OpError> = Vec::new();
        errors.extend(refusals.iter().cloned().map(e::OpError::Refused));
        errors.extend(invalid.iter().cloned().map(e::OpError::Invalid));
        errors.push(e::OpError::UnknownMessage(MessageId::new("m").unwrap()));
        errors.push(e::OpError::WrongConversation {
            message: MessageId::new("m").unwrap(),
            conversation: "u:bob".parse().unwrap(),
        });
        errors.push(e::OpError::Doc(e::DocError::MissingRoot("contacts")));
        errors.extend(store_errors().into_iter().map(e::OpError::Store));
        for error in errors {
            let text = error.to_string();
            let ours = OpError::from(error);
            let unknown = match &ours {
                OpError::Unknown { .. } => true,
                OpError::Invalid { error } => matches!(error, InvalidOpError::Unknown { .. }),
                OpError::Refused { reason } => matches!(reason, RefusedError::Unknown { .. }),
                OpError::Store { error } => matches!(error, StoreError::Unknown { .. }),
                OpError::Doc { error } => matches!(error, DocError::Unknown { .. }),
                _ => false,
            };
            assert!(!unknown, "{text}: {ours:?}");
        }
        assert_eq!(
            OpError::from(e::OpError::Invalid(e::op::InvalidOp::TextTooLong {
                field: "body",
                len: usize::MAX,
                max: 65_536,
            })),
            OpError::Invalid {
                error: InvalidOpError::TextTooLong {
                    field: "body".into(),
                    len: usize::MAX as u64,
                    max: 65_536,
                }
            }
        );
    }

    #[test]
    fn every_open_and_load_error_has_its_variant() {
        let errors = [
            e::OpenError::Read(e::StoreError::Corrupt("x".into())),
            e::OpenError::AccountMismatch {
                expected: tandem_engine::AccountId::new("a").unwrap(),
                found: "b".into(),
            },
            e::OpenError::DeviceNameTooLong(65),
            e::OpenError::Corrupt("x".into()),
            e::OpenError::Store(tandem_storage::OpenError::SchemaTooNew { found: 9, known: 2 }),
        ];
        for error in errors {
            let ours = OpenError::from(error);
            assert!(
                !matches!(
                    ours,
                    OpenError::Unknown { .. }
                        | OpenError::Store {
                            error: StoreOpenError::Unknown { .. }
                        }
                ),
                "{ours:?}"
            );
        }
        for error in [
            e::LoadError::Doc(e::DocError::MissingRoot("groups")),
            e::LoadError::Store(e::StoreError::Corrupt("x".into())),
        ] {
            assert!(!matches!(LoadError::from(error), LoadError::Unknown { .. }));
        }
    }

    #[test]
    fn every_apply_and_delta_error_has_its_variant() {
        use e::delta::DeltaError as D;
        let deltas = [
            D::TooLarge { len: 1 << 21 },
            D::Malformed("x".into()),
            D::UnsupportedFormat(u16::MAX),
            D::ForeignAccount {
                expected: tandem_engine::AccountId::new("a").unwrap(),
                found: tandem_engine::AccountId::new("b").unwrap(),
            },
            D::OriginSeqOutOfRange(0),
            D::InvalidOp(e::op::InvalidOp::Empty { field: "users" }),
            D::MalformedChange("x".into()),
            D::ForgedOrigin {
                origin: tandem_engine::DeviceId([2; 16]),
            },
        ];
        for delta in deltas {
            let ours = ApplyError::from(e::ApplyError::Delta {
                index: 3,
                error: delta,
            });
            match ours {
                ApplyError::Delta { index: 3, error } => {
                    assert!(!matches!(error, DeltaError::Unknown { .. }), "{error:?}")
                }
                other => panic!("{other:?}"),
            }
        }
        for error in [
            e::ApplyError::BatchTooLarge(10_001),
            e::ApplyError::RelayEntry {
                seq: u64::MAX,
                error: D::Malformed("x".into()),
            },
            e::ApplyError::Gap {
                expected: 2,
                found: 5,
            },
            e::ApplyError::Doc(e::DocError::MissingRoot("marks")),
            e::ApplyError::Store(e::StoreError::Corrupt("x".into())),
        ] {
            assert!(!matches!(
                ApplyError::from(error),
                ApplyError::Unknown { .. }
            ));
        }
    }

    #[test]
    fn every_device_and_command_error_has_its_variant() {
        use tandem_transport::CommandError as C;
        let commands = [
            C::Closed,
            C::TooManyDeltas { count: 257 },
            C::DeltaTooLarge { bytes: 1 },
            C::PayloadTooLarge { bytes: 65_537 },
            C::SeqTooLarge { seq: u64::MAX },
        ];
        for command in commands {
            let ours = DeviceError::from(tandem_online::DeviceError::Session(command));
            assert!(
                matches!(&ours, DeviceError::Session { error } if !matches!(error, CommandError::Unknown { .. })),
                "{ours:?}"
            );
        }
        for error in [
            tandem_online::DeviceError::ShutDown,
            tandem_online::DeviceError::NotConnected,
            tandem_online::DeviceError::Op(e::OpError::Store(e::StoreError::Corrupt("x".into()))),
        ] {
            assert!(!matches!(
                DeviceError::from(error),
                DeviceError::Unknown { .. }
            ));
        }
    }
}

/// Why a key or linking call was refused; nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum LinkingError {
    /// This device holds the account key already.
    #[error("this device holds the account key already (generation {generation})")]
    AlreadyLinked { generation: u32 },
    /// This device holds no account key, so it has none to grant.
    #[error("this device holds no account key: link it first")]
    NotLinked,
    /// The text is not a link code (or a code of another version).
    #[error("not a link code ({details})")]
    BadCode { details: String },
    /// The code is this device's own.
    #[error("the link code is this device's own")]
    OwnCode,
    /// This device shows no link code (none shown, or a grant was
    /// accepted already).
    #[error("this device shows no link code: show one, then accept its grant")]
    NoLinkCode,
    /// The code this device showed has expired; show a new one.
    #[error("the link code expired at {expired_at_ms}; show a new one")]
    CodeExpired { expired_at_ms: i64 },
    /// The grant was refused: not a grant, sealed to another code,
    /// account or key, altered, or not signed by the granter's key.
    #[error("link grant refused: {details}")]
    Grant { details: String },
    /// The roster lists the code's device with other keys.
    #[error("device {device} is in the roster with other keys than its code shows")]
    RosterConflict { device: String },
    /// The granter's key is not 64 hex characters.
    #[error("{details}")]
    BadKey { details: String },
    /// Another failure (the store, a case this build of the bindings does
    /// not know), in words.
    #[error("{details}")]
    Other { details: String },
}

impl From<tandem_engine::LinkingError> for LinkingError {
    fn from(error: tandem_engine::LinkingError) -> Self {
        use tandem_engine::LinkingError as L;
        match error {
            L::AlreadyLinked { generation } => LinkingError::AlreadyLinked { generation },
            L::NotLinked => LinkingError::NotLinked,
            L::BadCode(details) => LinkingError::BadCode { details },
            L::OwnCode => LinkingError::OwnCode,
            L::NoLinkCode => LinkingError::NoLinkCode,
            L::CodeExpired { expired_at_ms } => LinkingError::CodeExpired { expired_at_ms },
            L::Grant(error) => LinkingError::Grant {
                details: error.to_string(),
            },
            L::RosterConflict { device } => LinkingError::RosterConflict {
                device: device.to_hex(),
            },
            other => LinkingError::Other {
                details: other.to_string(),
            },
        }
    }
}

impl From<LinkingError> for DeviceError {
    fn from(error: LinkingError) -> Self {
        DeviceError::Linking { error }
    }
}

impl From<tandem_engine::StoreError> for LinkingError {
    fn from(error: tandem_engine::StoreError) -> Self {
        LinkingError::Other {
            details: error.to_string(),
        }
    }
}
