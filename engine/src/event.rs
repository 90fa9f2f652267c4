//! Multi-device events: what the user did on another device.
//!
//! One [`Event`] per operation another device performed, journaled in the
//! same transaction as the merge that produced it, in merge order (which is
//! causal order: an operation is merged only after the changes it depends
//! on). Events stay in the journal until the app acknowledges them
//! ([`crate::Engine::ack_events`]), so they are delivered at least once and
//! in order across crashes and restarts.
//!
//! The same journal carries what the relay tells this device about the
//! account's devices: payloads another device addressed to it
//! ([`MessageEvent::PayloadReceived`]) and [`ConnectionEvent`]s (kicked, too
//! many devices, a new device, the device list changed). Those are recorded
//! when this device learns of them, so their time is this device's clock.
//!
//! Disk format: event kinds are journaled with postcard (variants are only
//! ever appended). Apps see them as Rust values or as JSON
//! ([`Event::to_json`]), a stable form snapshot-tested for every operation
//! (`tests/tests/every_op.rs` in tandem-tests).

use serde::{Deserialize, Serialize};
use tandem_transport::DeviceId;

use crate::delta::Delta;
use crate::op::Op;
use crate::rules::Lookup;

pub use crate::rules::contact::ContactEvent;
pub use crate::rules::conversation::ConversationEvent;
pub use crate::rules::device::DeviceEvent;
pub use crate::rules::group::GroupEvent;
pub use crate::rules::message::MessageEvent;
pub use crate::rules::thread::ThreadEvent;

/// One thing that happened on another device of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Position in the journal: increasing, never reused. Acknowledge up
    /// to it with [`crate::Engine::ack_events`].
    pub seq: i64,
    /// The device the operation was performed on. For a payload, the device
    /// that sent it; for a connection event, the device that caused it, which
    /// is this device itself for [`ConnectionEvent::TooManyDevices`] and
    /// [`ConnectionEvent::DeviceListChanged`].
    pub source_device: DeviceId,
    /// When it was performed there, in ms since the Unix epoch by that
    /// device's clock. Payloads and connection events are not performed
    /// elsewhere: for them it is when this device journaled them, by its own
    /// clock.
    pub made_at_ms: i64,
    /// True when, by the time it merged here, a concurrent operation had
    /// won over it (for example a pin that lost to a concurrent unpin): the
    /// app should not show its effect, only that it happened. Each variant
    /// of [`EventKind`] says when it is set; message and connection events
    /// are never superseded.
    pub superseded: bool,
    /// What happened, with its targets.
    pub kind: EventKind,
    /// The free-form text the app attached to the operation there
    /// ([`ContactOp::WithExt`](crate::op::ContactOp::WithExt)), carried end
    /// to end; `None` when it attached none. In the JSON form it is the
    /// field `ext`, present only when set.
    pub ext: Option<String>,
}

impl Event {
    /// The event's stable JSON form: one flat object,
    /// `{"seq", "source_device", "made_at_ms", "superseded", ["ext",]
    /// "category", "op", …targets and extras}`, with snake_case names.
    pub fn to_json_value(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        object.insert("seq".into(), self.seq.into());
        object.insert("source_device".into(), self.source_device.to_hex().into());
        object.insert("made_at_ms".into(), self.made_at_ms.into());
        object.insert("superseded".into(), self.superseded.into());
        if let Some(ext) = &self.ext {
            object.insert("ext".into(), ext.clone().into());
        }
        // The kind serializes externally tagged, {"Group": {"MembersKicked":
        // {fields}}}, or {"Conversation": "AllUnreadCleared"} for a variant
        // without fields; flatten that into category, op and fields.
        let kind = serde_json::to_value(&self.kind).expect("an event kind always serializes");
        if let serde_json::Value::Object(outer) = kind {
            for (category, inner) in outer {
                object.insert("category".into(), snake_case(&category).into());
                match inner {
                    serde_json::Value::String(op) => {
                        object.insert("op".into(), snake_case(&op).into());
                    }
                    serde_json::Value::Object(inner) => {
                        for (op, fields) in inner {
                            object.insert("op".into(), snake_case(&op).into());
                            if let serde_json::Value::Object(fields) = fields {
                                object.extend(fields);
                            }
                        }
                    }
                    other => {
                        object.insert("op".into(), other);
                    }
                }
            }
        }
        serde_json::Value::Object(object)
    }

    /// [`Event::to_json_value`] as text.
    pub fn to_json(&self) -> String {
        self.to_json_value().to_string()
    }

    /// Reads an event back from its JSON form ([`Event::to_json`]), as an
    /// app or a binding stored it: `Event::from_json(&e.to_json())` is `e`.
    pub fn from_json(text: &str) -> Result<Event, EventJsonError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(EventJsonError::Syntax)?;
        Event::from_json_value(&value)
    }

    /// [`Event::from_json`] from a parsed value.
    pub fn from_json_value(value: &serde_json::Value) -> Result<Event, EventJsonError> {
        let serde_json::Value::Object(object) = value else {
            return Err(EventJsonError::NotAnObject);
        };
        let mut fields = object.clone();
        let mut take =
            |name: &'static str| fields.remove(name).ok_or(EventJsonError::Missing(name));
        let seq = take("seq")?
            .as_i64()
            .ok_or(EventJsonError::WrongType("seq"))?;
        let source_device = take("source_device")?
            .as_str()
            .and_then(|hex| hex.parse::<DeviceId>().ok())
            .ok_or(EventJsonError::WrongType("source_device"))?;
        let made_at_ms = take("made_at_ms")?
            .as_i64()
            .ok_or(EventJsonError::WrongType("made_at_ms"))?;
        let superseded = take("superseded")?
            .as_bool()
            .ok_or(EventJsonError::WrongType("superseded"))?;
        let ext = match fields.remove("ext") {
            None => None,
            Some(serde_json::Value::String(ext)) => Some(ext),
            Some(_) => return Err(EventJsonError::WrongType("ext")),
        };
        let mut take =
            |name: &'static str| fields.remove(name).ok_or(EventJsonError::Missing(name));
        let category = take("category")?;
        let op = take("op")?;
        let (Some(category), Some(op)) = (category.as_str(), op.as_str()) else {
            return Err(EventJsonError::WrongType("category"));
        };
        // Back to the externally tagged form the kind deserializes from:
        // {"Group": {"MembersKicked": {fields}}}, or {"Conversation":
        // "AllUnreadCleared"} for a variant without fields.
        let variant = if fields.is_empty() {
            serde_json::Value::String(pascal_case(op))
        } else {
            let mut inner = serde_json::Map::new();
            inner.insert(pascal_case(op), serde_json::Value::Object(fields));
            serde_json::Value::Object(inner)
        };
        let mut outer = serde_json::Map::new();
        outer.insert(pascal_case(category), variant);
        let kind = serde_json::from_value(serde_json::Value::Object(outer)).map_err(|e| {
            EventJsonError::Kind {
                category: category.to_owned(),
                op: op.to_owned(),
                reason: e.to_string(),
            }
        })?;
        Ok(Event {
            seq,
            source_device,
            made_at_ms,
            superseded,
            kind,
            ext,
        })
    }
}

/// Why a JSON text is not an event ([`Event::from_json`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventJsonError {
    /// The text is not JSON.
    #[error("not JSON: {0}")]
    Syntax(serde_json::Error),
    /// The JSON is not an object.
    #[error("an event is a JSON object")]
    NotAnObject,
    /// A field every event has is missing.
    #[error("the event has no {0:?}")]
    Missing(&'static str),
    /// A field every event has is of the wrong type (or, for
    /// `source_device`, not 32 hex characters).
    #[error("the event's {0:?} has the wrong type")]
    WrongType(&'static str),
    /// The category and op name no event this build knows, or its fields
    /// do not fit it.
    #[error("not an event this build knows: {category} {op}: {reason}")]
    Kind {
        /// The event's `category`.
        category: String,
        /// The event's `op`.
        op: String,
        /// What did not fit, in words.
        reason: String,
    },
}

/// `members_kicked` → `MembersKicked`.
fn pascal_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `MembersKicked` → `members_kicked`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What happened, grouped by category as IM SDKs group their multi-device
/// callbacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventKind {
    /// A contact or blocklist operation ([`ContactOp`](crate::op::ContactOp)).
    Contact(ContactEvent),
    /// A group operation ([`GroupOp`](crate::op::GroupOp)).
    Group(GroupEvent),
    /// A thread operation ([`ThreadOp`](crate::op::ThreadOp)).
    Thread(ThreadEvent),
    /// A conversation or read-state operation
    /// ([`ConversationOp`](crate::op::ConversationOp)).
    Conversation(ConversationEvent),
    /// A message operation ([`MessageOp`](crate::op::MessageOp)), or a payload
    /// another device sent to this one.
    Message(MessageEvent),
    /// Something that happened to this device's connection; recorded by the
    /// sync driver, not merged from a delta.
    Connection(ConnectionEvent),
    /// Roster operations: a device linked to the account.
    Device(DeviceEvent),
}

impl EventKind {
    /// The category's name, as in the JSON form.
    pub fn category(&self) -> &'static str {
        match self {
            EventKind::Contact(_) => "contact",
            EventKind::Group(_) => "group",
            EventKind::Thread(_) => "thread",
            EventKind::Conversation(_) => "conversation",
            EventKind::Message(_) => "message",
            EventKind::Connection(_) => "connection",
            EventKind::Device(_) => "device",
        }
    }

    /// The event an operation merged from another device becomes.
    pub(crate) fn of(delta: &Delta) -> EventKind {
        match &delta.op {
            Op::Message(op) => EventKind::Message(op.event(delta)),
            Op::Conversation(op) => EventKind::Conversation(op.event()),
            Op::Contact(op) => EventKind::Contact(op.event()),
            Op::Group(op) => EventKind::Group(op.event()),
            Op::Thread(op) => EventKind::Thread(op.event()),
            Op::Device(op) => EventKind::Device(op.event()),
        }
    }

    /// Whether the state after a merge no longer shows the event's effect:
    /// a concurrent operation won over it. Each category's event says when.
    pub(crate) fn superseded(&self, lookup: &Lookup<'_>) -> bool {
        match self {
            EventKind::Message(event) => event.superseded(),
            EventKind::Conversation(event) => event.superseded(lookup),
            EventKind::Contact(event) => event.superseded(lookup.doc),
            EventKind::Group(event) => event.superseded(lookup),
            EventKind::Thread(event) => event.superseded(lookup.doc),
            EventKind::Connection(_) => false,
            EventKind::Device(event) => event.superseded(lookup),
        }
    }
}

/// What happened to this device's connection because of another device or
/// the relay.
///
/// Journaled with postcard: variants are only ever appended. `Kicked` and
/// `TooManyDevices` are what builds of protocol 1 journaled; they are read
/// back as they were and never journaled any more (their typed successors
/// follow `CatchUpFinished`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// Protocol 1: another device forced this one offline (the event's
    /// source device). Now [`ConnectionEvent::KickedByDevice`] and the
    /// other typed reasons.
    Kicked {
        /// The reason the kicking device gave.
        reason: String,
    },
    /// Protocol 1: the relay refused this device for the device limit. Now
    /// [`ConnectionEvent::TooManyDevicesOnline`].
    TooManyDevices {
        /// The relay's explanation, in words.
        text: String,
    },
    /// The account logged in on a device the list did not have before (the
    /// event's source device).
    LoggedInOnNewDevice {
        /// The new device's name, as it reported it.
        name: String,
        /// The new device's platform, in the text form of
        /// [`Platform`](crate::Platform).
        platform: String,
    },
    /// The account's device list changed (a device logged in or was
    /// kicked); ask the relay for the list to see how. The event's source
    /// device is this device.
    DeviceListChanged,
    // Variants are appended, never reordered: the journal numbers them.
    /// This device connected behind the relay and started catching up: the
    /// events of what it merges follow, then [`ConnectionEvent::CatchUpFinished`]
    /// (unless the connection ends first; the next one starts again). The
    /// event's source device is this device.
    CatchUpStarted {
        /// The relay log position this device had merged up to.
        from_seq: u64,
        /// The relay's head when this device connected: the catch-up's goal.
        to_seq: u64,
    },
    /// This device has merged everything the relay had when it connected.
    /// The event's source device is this device.
    CatchUpFinished {
        /// The relay log position it has merged up to now.
        cursor: u64,
    },
    /// Another device of the account kicked this one (the event's source
    /// device, named here too): its enrollment is revoked, and it logs in
    /// again only with a new login token.
    KickedByDevice {
        /// The kicking device's id, in hex.
        device: String,
        /// Its name.
        name: String,
        /// Its platform, in the text form of [`Platform`](crate::Platform).
        platform: String,
    },
    /// The device limit displaced this device to make room for a newer
    /// login (the event's source device, named here too); revoked like a
    /// kick.
    DisplacedByLimit {
        /// The newcomer's id, in hex.
        device: String,
        /// Its name.
        name: String,
        /// Its platform.
        platform: String,
    },
    /// This device logged out.
    LoggedOut,
    /// The relay's operator revoked this device.
    RevokedByOperator,
    /// Every credential of the account was revoked (a password change):
    /// every device logs in again.
    AllCredentialsRevoked,
    /// The operator removed the account.
    AccountRemoved,
    /// The operator banned the account; the device logs in again, with its
    /// key, once the ban is lifted.
    AccountBanned,
    /// The relay refused this device's login: the account has as many
    /// devices online as allowed. One of them can be kicked from outside
    /// with a login token of the "manage" purpose.
    TooManyDevicesOnline {
        /// The account's devices, as the relay listed them.
        devices: Vec<DeviceSummary>,
    },
    /// This device's enrollment expired (it was offline too long): it logs
    /// in again with a login token.
    CredentialsExpired,
    /// This device's enrollment expires soon (see
    /// [`crate::limits::CREDENTIALS_EXPIRING_WARNING_MS`]); coming online
    /// renews it.
    CredentialsExpiring {
        /// When, in ms since the Unix epoch.
        expires_at_ms: i64,
    },
}

/// A device of the account, as a connection event lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSummary {
    /// Its id, in hex.
    pub device: String,
    /// Its name.
    pub name: String,
    /// Its platform.
    pub platform: String,
    /// Whether it is online.
    pub online: bool,
}

impl ConnectionEvent {
    /// The event an offline reason from the relay becomes, and the device
    /// that caused it (`None`: this device).
    pub fn from_offline(reason: &tandem_transport::OfflineReason) -> (Option<DeviceId>, Self) {
        use tandem_transport::OfflineReason as R;
        let named = |by: &tandem_transport::DeviceRef| {
            (
                by.id.to_hex(),
                by.name.clone(),
                by.platform.as_str().to_owned(),
            )
        };
        match reason {
            R::KickedByDevice { by } => {
                let (device, name, platform) = named(by);
                (
                    Some(by.id),
                    ConnectionEvent::KickedByDevice {
                        device,
                        name,
                        platform,
                    },
                )
            }
            R::Displaced { by } => {
                let (device, name, platform) = named(by);
                (
                    Some(by.id),
                    ConnectionEvent::DisplacedByLimit {
                        device,
                        name,
                        platform,
                    },
                )
            }
            R::LoggedOut => (None, ConnectionEvent::LoggedOut),
            R::AllCredentialsRevoked => (None, ConnectionEvent::AllCredentialsRevoked),
            R::AccountRemoved => (None, ConnectionEvent::AccountRemoved),
            R::AccountBanned => (None, ConnectionEvent::AccountBanned),
            // RevokedByOperator, and reasons a newer relay may add.
            _ => (None, ConnectionEvent::RevokedByOperator),
        }
    }
}
