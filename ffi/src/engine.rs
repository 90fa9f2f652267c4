//! The offline device, `Engine`: opening a device and every synchronous call on it.
//!
//! An `Engine` is one account on one device, with no network: operations,
//! queries, the events journal and the exchange of deltas by hand
//! (`export` / `apply_remote`). Every call is synchronous and quick (one
//! SQLite transaction at most); calls from several threads take turns on
//! one lock, which is never held while foreign code runs. For a device
//! online with a relay, use `OnlineDevice`.
//!
//! This layer is the IO shell the engine's core leaves to its caller: it
//! reads the system clock for `now_ms` and draws a new device's id from the
//! operating system.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tandem_engine as e;

use crate::error::{ApplyError, LinkingError, LoadError, OpError, OpenError, StoreError};
use crate::event::Event;
use crate::ids::{self, BadId};
use crate::model::{
    list, AccountState, Applied, BlockedRow, ContactRow, ConversationRow, DeviceIdentity,
    DoNotDisturb, EventDelivery, Export, GroupMember, GroupRow, MessageCursor, MessageView,
    Performed, PinnedMessage, Platform, RemindType, ThreadRow,
};
use crate::op::Op;

/// Where the device store lives.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum StorePath {
    /// A SQLite file, created on first open.
    File { path: String },
    /// In memory only: nothing survives the device.
    Memory,
}

/// How to open a device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Config {
    /// Where the device store lives.
    pub store: StorePath,
    /// The account (user) this device belongs to.
    pub account: String,
    /// Shown in the device list (at most 64 bytes). Used when the device is
    /// first created.
    pub device_name: String,
    /// Used when the device is first created.
    pub platform: Platform,
    /// Commit what is merged from other devices without a disk sync (the
    /// engine's `Durability::RelaxedMerges`): a power cut can lose the last
    /// merges, which the device pulls again; its own operations stay
    /// synced. Off by default; not stored, so pass it at every open.
    #[uniffi(default = false)]
    pub relaxed_merges: bool,
}

/// Why a query was not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum QueryError {
    /// An id argument is not a valid id of its kind; nothing was read.
    #[error("{details}")]
    InvalidId {
        kind: String,
        value: String,
        details: String,
    },
    /// The store failed.
    #[error("store: {error}")]
    Store { error: StoreError },
}

impl From<BadId> for QueryError {
    fn from(bad: BadId) -> Self {
        QueryError::InvalidId {
            kind: bad.kind.to_owned(),
            value: bad.value,
            details: bad.details,
        }
    }
}

impl From<e::StoreError> for QueryError {
    fn from(error: e::StoreError) -> Self {
        QueryError::Store {
            error: error.into(),
        }
    }
}

/// The wall clock in ms since the Unix epoch; 0 before the epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Opens (or creates) the engine for `config`, with the clock and a fresh
/// random id for a new device.
pub(crate) fn open_engine(config: Config) -> Result<e::Engine, OpenError> {
    let store = match config.store {
        StorePath::File { path } => e::StorePath::File(path.into()),
        StorePath::Memory => e::StorePath::Memory,
    };
    let durability = match config.relaxed_merges {
        true => e::Durability::RelaxedMerges,
        false => e::Durability::Full,
    };
    let config = e::Config {
        store,
        account: ids::account(&config.account)?,
        device_name: config.device_name,
        platform: config.platform.into(),
    };
    let mut engine = e::Engine::open(config, now_ms(), Box::new(e::OsEntropy))?;
    engine.set_durability(durability);
    Ok(engine)
}

/// A page size or offset from the bindings, as the engine takes it.
pub(crate) fn index(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A message page's starting point, validated.
pub(crate) fn before(
    cursor: Option<MessageCursor>,
) -> Result<Option<(i64, e::model::MessageId)>, BadId> {
    cursor
        .map(|c| Ok((c.sent_at_ms, ids::message(&c.id)?)))
        .transpose()
}

/// One account on one device, offline. See the module docs.
#[derive(uniffi::Object)]
pub struct Engine {
    inner: Mutex<e::Engine>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    pub(crate) fn from_engine(engine: e::Engine) -> Engine {
        Engine {
            inner: Mutex::new(engine),
        }
    }

    /// The engine, for one call. A panic inside an earlier call (a defect;
    /// UniFFI turns it into an internal error) poisons the lock; the engine
    /// itself leaves store and memory as they were on every error, so the
    /// next call goes on.
    fn engine(&self) -> MutexGuard<'_, e::Engine> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[uniffi::export]
impl Engine {
    /// Opens a device, creating it on first open (its id is drawn then and
    /// kept in the store).
    #[uniffi::constructor]
    pub fn open(config: Config) -> Result<Arc<Engine>, OpenError> {
        Ok(Arc::new(Engine::from_engine(open_engine(config)?)))
    }

    /// This device's identity.
    pub fn device(&self) -> DeviceIdentity {
        self.engine().device().into()
    }

    /// This device's ed25519 signing key, 64 hex characters: what a device
    /// that accepts a grant from it checks the grant against.
    pub fn public_key(&self) -> String {
        self.engine().device().public_key.to_hex()
    }

    /// Makes the account key on the account's first device; returns its
    /// fingerprint (the same on every linked device). From then on the
    /// device seals what it pushes.
    pub fn create_account_key(&self) -> Result<String, LinkingError> {
        Ok(self.engine().create_account_key(now_ms())?.to_string())
    }

    /// On a new device: the link code to show a device that holds the key
    /// (181 base32 characters, for a QR code; the same until it expires).
    /// It holds a secret: never send it through the relay.
    pub fn show_link_code(&self) -> Result<String, LinkingError> {
        Ok(self.engine().show_link_code(now_ms())?.code)
    }

    /// On a device that holds the key: the grant for the device that shows
    /// `code`, to hand back to it with this device's `public_key` (any
    /// channel: only that device opens it).
    pub fn grant_link(&self, code: String) -> Result<Vec<u8>, LinkingError> {
        Ok(self.engine().grant_link(&code, now_ms())?)
    }

    /// On the new device: accepts `grant` from the device whose signing
    /// key is `granter_key` (64 hex characters); returns the key's
    /// fingerprint.
    pub fn accept_link_grant(
        &self,
        grant: Vec<u8>,
        granter_key: String,
    ) -> Result<String, LinkingError> {
        let key = parse_public_key(&granter_key)?;
        Ok(self
            .engine()
            .accept_link_grant(&grant, &key, now_ms())?
            .to_string())
    }

    /// The fingerprint of the account key this device holds, or `None`
    /// when it holds none.
    pub fn key_fingerprint(&self) -> Result<Option<String>, LinkingError> {
        Ok(match self.engine().link_state(now_ms())? {
            e::LinkState::Linked { fingerprint, .. } => Some(fingerprint.to_string()),
            _ => None,
        })
    }

    /// Performs a local operation now (by the system clock) and records it
    /// for the other devices.
    pub fn perform(&self, op: Op) -> Result<Performed, OpError> {
        let op = op.into_engine()?;
        Ok(self.engine().perform(now_ms(), op)?.into())
    }

    /// A page of the conversation list: pinned first, then by last activity.
    pub fn conversations(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<ConversationRow>, QueryError> {
        Ok(list(
            self.engine().conversations(index(offset), index(limit))?,
        ))
    }

    /// One conversation (`u:<user>`, `g:<group>`, `t:<thread>`,
    /// `r:<room>`), listed or not.
    pub fn conversation(&self, id: String) -> Result<Option<ConversationRow>, QueryError> {
        let id = ids::conversation(&id)?;
        Ok(self.engine().conversation(&id)?.map(Into::into))
    }

    /// A page of a conversation's messages, newest first, before `before`
    /// when given.
    pub fn messages(
        &self,
        conversation: String,
        before: Option<MessageCursor>,
        limit: u32,
    ) -> Result<Vec<MessageView>, QueryError> {
        let conversation = ids::conversation(&conversation)?;
        let before = self::before(before)?;
        let engine = self.engine();
        let rows = engine.messages(
            &conversation,
            before.as_ref().map(|(at, id)| (*at, id)),
            index(limit),
        )?;
        Ok(list(rows))
    }

    /// One message, unless unknown or deleted for this account.
    pub fn message(&self, id: String) -> Result<Option<MessageView>, QueryError> {
        let id = ids::message(&id)?;
        Ok(self.engine().message(&id)?.map(Into::into))
    }

    /// Every contact entry, in any status, by user id.
    pub fn contacts(&self) -> Result<Vec<ContactRow>, QueryError> {
        Ok(list(self.engine().contacts()?))
    }

    /// Every blocked user, by user id.
    pub fn blocklist(&self) -> Result<Vec<BlockedRow>, QueryError> {
        Ok(list(self.engine().blocklist()?))
    }

    /// Every group this account knows, by id.
    pub fn groups(&self) -> Result<Vec<GroupRow>, QueryError> {
        Ok(list(self.engine().groups()?))
    }

    /// One group, or `None` if this account does not know it.
    pub fn group(&self, id: String) -> Result<Option<GroupRow>, QueryError> {
        let id = ids::group(&id)?;
        Ok(self.engine().group(&id)?.map(Into::into))
    }

    /// The members of a group muted at `now_ms` (each muted until a later
    /// time, or all while the group is muted); empty for a group not known.
    pub fn muted_members(
        &self,
        group: String,
        now_ms: i64,
    ) -> Result<Vec<GroupMember>, QueryError> {
        let group = ids::group(&group)?;
        Ok(list(self.engine().muted_members(&group, now_ms)?))
    }

    /// The group members who have read a message, sorted.
    pub fn group_read_by(&self, message: String) -> Result<Vec<String>, QueryError> {
        let message = ids::message(&message)?;
        Ok(self.engine().group_read_by(&message)?)
    }

    /// The messages pinned in a conversation, oldest pin first.
    pub fn pinned_messages(&self, conversation: String) -> Result<Vec<PinnedMessage>, QueryError> {
        let conversation = ids::conversation(&conversation)?;
        Ok(list(self.engine().pinned_messages(&conversation)?))
    }

    /// A conversation's do-not-disturb mode (off for one not known).
    pub fn do_not_disturb(&self, conversation: String) -> Result<DoNotDisturb, QueryError> {
        let conversation = ids::conversation(&conversation)?;
        Ok(self.engine().do_not_disturb(&conversation)?.into())
    }

    /// Which messages of a conversation notify at `now_ms` (a quiet time
    /// in force silences all).
    pub fn remind_type_at(
        &self,
        conversation: String,
        now_ms: i64,
    ) -> Result<RemindType, QueryError> {
        let conversation = ids::conversation(&conversation)?;
        Ok(self.engine().remind_type_at(&conversation, now_ms)?.into())
    }

    /// Whether do-not-disturb holds back any message of a conversation at
    /// `now_ms`.
    pub fn do_not_disturb_in_force(
        &self,
        conversation: String,
        now_ms: i64,
    ) -> Result<bool, QueryError> {
        let conversation = ids::conversation(&conversation)?;
        Ok(self
            .engine()
            .do_not_disturb_in_force(&conversation, now_ms)?)
    }

    /// Every thread this account takes part in, by id.
    pub fn threads(&self) -> Result<Vec<ThreadRow>, QueryError> {
        Ok(list(self.engine().threads()?))
    }

    /// Everything the app can see, in a stable order.
    pub fn state(&self) -> Result<AccountState, QueryError> {
        Ok(self.engine().state()?.into())
    }

    /// The account document's heads, sorted, as hex: equal on two devices
    /// exactly when their documents hold the same changes.
    pub fn doc_heads(&self) -> Result<Vec<String>, LoadError> {
        Ok(self.engine().doc_heads()?)
    }

    /// The oldest event not acknowledged yet (with `AutoAck` delivery,
    /// acknowledged as it is returned).
    pub fn next_event(&self) -> Result<Option<Event>, StoreError> {
        Ok(self.engine().next_event()?.as_ref().map(Event::from_engine))
    }

    /// Up to `limit` events not acknowledged yet, oldest first.
    pub fn pending_events(&self, limit: u32) -> Result<Vec<Event>, StoreError> {
        let events = self.engine().pending_events(index(limit))?;
        Ok(events.iter().map(Event::from_engine).collect())
    }

    /// Journaled events after position `after`, acknowledged or not.
    pub fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        let events = self.engine().events_after(after, index(limit))?;
        Ok(events.iter().map(Event::from_engine).collect())
    }

    /// Acknowledges every event up to and including `seq`: never delivered
    /// again, also after a restart.
    pub fn ack_events(&self, seq: i64) -> Result<(), StoreError> {
        Ok(self.engine().ack_events(seq)?)
    }

    /// The newest journaled event's sequence number (0 for none).
    pub fn events_head(&self) -> Result<i64, StoreError> {
        Ok(self.engine().events_head()?)
    }

    /// The highest acknowledged event sequence number (0 for none).
    pub fn events_acked(&self) -> Result<i64, StoreError> {
        Ok(self.engine().events_acked()?)
    }

    /// Chooses how `next_event` acknowledges.
    pub fn set_event_delivery(&self, delivery: EventDelivery) {
        self.engine().set_event_delivery(delivery.into());
    }

    /// Up to `limit` deltas this device holds, after `after` (0 for the
    /// start), oldest first: another device of the account merges them with
    /// `apply_remote`.
    pub fn export(&self, after: i64, limit: u32) -> Result<Export, StoreError> {
        let page = self.engine().export(e::ExportCursor(after), index(limit))?;
        Ok(Export {
            deltas: page.deltas.into_iter().map(|d| d.0).collect(),
            next: page.next.0,
        })
    }

    /// Merges deltas another device of the account exported, in one
    /// transaction; idempotent, in any order.
    pub fn apply_remote(&self, deltas: Vec<Vec<u8>>) -> Result<Applied, ApplyError> {
        let deltas: Vec<e::delta::EncodedDelta> =
            deltas.into_iter().map(e::delta::EncodedDelta).collect();
        Ok(self.engine().apply_remote(&deltas)?.into())
    }

    /// The relay log position this device has merged everything up to.
    pub fn relay_cursor(&self) -> Result<u64, StoreError> {
        Ok(self.engine().relay_cursor()?)
    }
}

/// A signing key from its 64 hex characters.
pub(crate) fn parse_public_key(text: &str) -> Result<e::DevicePublicKey, LinkingError> {
    let bad = || LinkingError::BadKey {
        details: format!("a signing key is 64 hex characters, not {text:?}"),
    };
    if text.len() != 64 || !text.is_ascii() {
        return Err(bad());
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(e::DevicePublicKey(key))
}
