//! The account document: its layout, loading and saving, and edit helpers.
//!
//! Each operation category's rules read and edit the document through the
//! helpers here; this file knows no operations.
//!
//! Layout (all root maps are made by the genesis change, so no two devices
//! ever create them concurrently, which would make one device's copy win and
//! hide the other's entries). Every key is a constant in [`keys`]:
//!
//! | root map | key | value |
//! | --- | --- | --- |
//! | `contacts` | user | map `{status, remark, since_ms}` |
//! | `blocked` | user | since_ms |
//! | `groups` | group | map `{state, owner, messages_blocked, mute_all, disabled, info: {name, description, announcement}, members, admins, banned, allowed, mutes, attrs, inviter, invited␟user, applicant␟user}` |
//! | `threads` | thread | map `{group, name, members: {user: true}}` |
//! | `pinned` | conversation | bool (a register) |
//! | `pinned` | conversation ␟ message | pinned at ms, or `false` once unpinned (a register) |
//! | `dnd` | conversation | a do-not-disturb mode (a register): `true` (silent), `false`, or a map `{remind, until_ms}` / `{remind, start_minute, end_minute, utc_offset_minutes}` |
//! | `marks` | conversation ␟ mark | bool (a register) |
//!
//! What each entry means, and how each operation edits it, is in its
//! category's rules file (`rules/contact.rs`, `rules/group.rs`…).
//!
//! Merge rules fall out of automerge's map semantics: a put concurrent with a
//! delete survives (add-wins for contacts, the blocklist, members…);
//! concurrent puts to one key resolve the same way everywhere (registers); a
//! put inside an object that was deleted concurrently stays invisible (no
//! resurrection).
//!
//! Read markers and clear points are not here: they are maximum registers,
//! merged by `max` in SQLite from the markers each delta carries (see
//! ARCHITECTURE.md). In the document every marker update would add history
//! that every later read of the map walks past.

use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{
    ActorId, Automerge, AutomergeError, Change, ChangeHash, ObjId, ObjType, ReadDoc, ROOT,
};
use tandem_transport::DeviceId;

/// Joins the parts of a composite map key. Ids cannot contain it.
pub(crate) const SEP: char = '\u{1f}';

/// Every key of the document: the root maps, and the fields of the entries
/// in them.
pub(crate) mod keys {
    /// Root map: user → contact entry ([`contact`]).
    pub const CONTACTS: &str = "contacts";
    /// Root map: user → since_ms.
    pub const BLOCKED: &str = "blocked";
    /// Root map: group → group entry ([`group`]).
    pub const GROUPS: &str = "groups";
    /// Root map: thread → thread entry ([`thread`]).
    pub const THREADS: &str = "threads";
    /// Root map: conversation → pinned (bool).
    pub const PINNED: &str = "pinned";
    /// Root map: conversation → do-not-disturb (bool).
    pub const DND: &str = "dnd";
    /// Root map: conversation ␟ mark → set (bool).
    pub const MARKS: &str = "marks";

    /// The fields of a contact entry, `contacts[user]`.
    pub mod contact {
        /// The contact's status, in its text form.
        pub const STATUS: &str = "status";
        /// The account's own nickname for the contact.
        pub const REMARK: &str = "remark";
        /// When the entry was written, in ms.
        pub const SINCE_MS: &str = "since_ms";
    }

    /// The fields of a group entry, `groups[group]`.
    pub mod group {
        /// This account's standing in the group, in its text form.
        pub const STATE: &str = "state";
        /// The owner's user id.
        pub const OWNER: &str = "owner";
        /// Whether the user blocked the group's messages (bool).
        pub const MESSAGES_BLOCKED: &str = "messages_blocked";
        /// Whether the whole group is muted (bool).
        pub const MUTE_ALL: &str = "mute_all";
        /// Whether the IM service disabled the group (bool).
        pub const DISABLED: &str = "disabled";
        /// Map: `name`, `description`, `announcement` (text).
        pub const INFO: &str = "info";
        /// In [`INFO`]: the group's name.
        pub const NAME: &str = "name";
        /// In [`INFO`]: the group's description.
        pub const DESCRIPTION: &str = "description";
        /// In [`INFO`]: the group's announcement.
        pub const ANNOUNCEMENT: &str = "announcement";
        /// Map: member → joined at ms.
        pub const MEMBERS: &str = "members";
        /// Map: admin → since ms.
        pub const ADMINS: &str = "admins";
        /// Map: banned user → since ms.
        pub const BANNED: &str = "banned";
        /// Map: user on the allow list → since ms.
        pub const ALLOWED: &str = "allowed";
        /// Map: muted member → muted until ms.
        pub const MUTES: &str = "mutes";
        /// Map: member ␟ key → attribute value (text).
        pub const ATTRS: &str = "attrs";
        /// Every nested map a group entry has.
        pub const LISTS: [&str; 6] = [MEMBERS, ADMINS, BANNED, ALLOWED, MUTES, ATTRS];
        /// Flat keys `invited␟user` → invited at ms: users this account
        /// invited who have not accepted yet. Flat keys in the entry (not a
        /// nested map) because entries made by earlier builds have no such
        /// map, and two devices creating it concurrently would hide one
        /// device's entries.
        pub const INVITED: &str = "invited";
        /// Flat keys `applicant␟user` → the applicant's reason (text):
        /// users who asked to join and wait for an answer.
        pub const APPLICANT: &str = "applicant";
        /// For this account's own invitation (standing `invited`): who
        /// invited it.
        pub const INVITER: &str = "inviter";
    }

    /// The fields of a do-not-disturb mode, `dnd[conversation]`, when it
    /// is a map. (`true` is silent, `false` or no entry is off: what builds
    /// before modes wrote, and what this one still writes for those two.)
    pub mod dnd {
        /// Which messages notify, in its text form.
        pub const REMIND: &str = "remind";
        /// A quiet time until this time, in ms.
        pub const UNTIL_MS: &str = "until_ms";
        /// A daily quiet time: its start, minutes after midnight.
        pub const START_MINUTE: &str = "start_minute";
        /// A daily quiet time: its end, minutes after midnight.
        pub const END_MINUTE: &str = "end_minute";
        /// A daily quiet time: the UTC offset its minutes are at.
        pub const UTC_OFFSET_MINUTES: &str = "utc_offset_minutes";
    }

    /// The fields of a thread entry, `threads[thread]`.
    pub mod thread {
        /// The group the thread belongs to.
        pub const GROUP: &str = "group";
        /// The thread's name.
        pub const NAME: &str = "name";
        /// Map: member → true.
        pub const MEMBERS: &str = "members";
    }
}

/// The genesis change's actor: the same on every device, so the genesis
/// change is byte-identical everywhere and automerge stores it once.
const GENESIS_ACTOR: [u8; 16] = *b"tandem-genesis-1";

const ROOTS: [&str; 7] = [
    keys::CONTACTS,
    keys::BLOCKED,
    keys::GROUPS,
    keys::THREADS,
    keys::PINNED,
    keys::DND,
    keys::MARKS,
];

/// Why the document could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    /// automerge could not load the stored document or make or apply a change
    /// (corrupt bytes, a change reused with other content).
    #[error("automerge: {0}")]
    Automerge(#[from] AutomergeError),
    /// The stored document lacks the genesis layout.
    #[error("the stored document is missing its root map {0:?}")]
    MissingRoot(&'static str),
}

/// The outcome of a local edit.
pub(crate) enum Edit {
    /// The operation changed nothing in the document.
    Unchanged,
    /// The raw bytes of the one change it made.
    Changed(Vec<u8>),
}

/// The account document, acting as this device.
pub(crate) struct AccountDoc {
    doc: Automerge,
    roots: Roots,
}

/// The root maps' object ids.
pub(crate) struct Roots {
    pub contacts: ObjId,
    pub blocked: ObjId,
    pub groups: ObjId,
    pub threads: ObjId,
    pub pinned: ObjId,
    pub dnd: ObjId,
    pub marks: ObjId,
}

impl AccountDoc {
    /// The genesis change every device starts from.
    pub fn genesis() -> Vec<u8> {
        let mut doc = Automerge::new().with_actor(ActorId::from(GENESIS_ACTOR));
        let mut tx = doc.transaction();
        for name in ROOTS {
            tx.put_object(ROOT, name, ObjType::Map)
                .expect("putting into the root of an empty document");
        }
        let (hash, _) = tx.commit_with(CommitOptions::default().with_time(0));
        let hash = hash.expect("genesis has operations");
        doc.get_change_by_hash(&hash)
            .expect("the change just made")
            .raw_bytes()
            .to_vec()
    }

    /// Builds the document from stored chunks (a snapshot and/or changes),
    /// acting as `device` from now on.
    pub fn load<'a>(
        snapshot: Option<&[u8]>,
        changes: impl IntoIterator<Item = &'a [u8]>,
        device: DeviceId,
    ) -> Result<Self, DocError> {
        let mut doc = match snapshot {
            Some(bytes) => Automerge::load(bytes)?,
            None => Automerge::new(),
        };
        let mut parsed = Vec::new();
        for bytes in changes {
            parsed.push(Change::from_bytes(bytes.to_vec()).map_err(AutomergeError::from)?);
        }
        doc.apply_changes(parsed)?;
        let doc = doc.with_actor(ActorId::from(device.0));
        let root = |name: &'static str| -> Result<ObjId, DocError> {
            match doc.get(ROOT, name)? {
                Some((automerge::Value::Object(ObjType::Map), id)) => Ok(id),
                _ => Err(DocError::MissingRoot(name)),
            }
        };
        let roots = Roots {
            contacts: root(keys::CONTACTS)?,
            blocked: root(keys::BLOCKED)?,
            groups: root(keys::GROUPS)?,
            threads: root(keys::THREADS)?,
            pinned: root(keys::PINNED)?,
            dnd: root(keys::DND)?,
            marks: root(keys::MARKS)?,
        };
        Ok(AccountDoc { doc, roots })
    }

    pub fn save(&self) -> Vec<u8> {
        self.doc.save()
    }

    pub fn heads(&self) -> Vec<ChangeHash> {
        let mut heads = self.doc.get_heads();
        heads.sort();
        heads
    }

    pub fn has_change(&self, hash: &ChangeHash) -> bool {
        self.doc.get_change_by_hash(hash).is_some()
    }

    /// Merges changes from other devices. Changes whose dependencies are
    /// missing wait inside automerge until those arrive.
    pub fn apply_changes(&mut self, changes: Vec<Change>) -> Result<(), DocError> {
        Ok(self.doc.apply_changes(changes)?)
    }

    /// Makes one local change stamped with `now_ms` with `edit` (an
    /// operation's rules). An error from `edit` (a refused precondition)
    /// rolls everything back and leaves the document untouched.
    pub fn edit<E>(
        &mut self,
        now_ms: i64,
        edit: impl FnOnce(&mut Transaction<'_>, &Roots) -> Result<(), E>,
    ) -> Result<Edit, E> {
        let roots = &self.roots;
        let success = self
            .doc
            .transact_with(
                |_| CommitOptions::default().with_time(now_ms),
                |tx| edit(tx, roots),
            )
            .map_err(|failure| failure.error)?;
        Ok(match success.hash {
            None => Edit::Unchanged,
            Some(hash) => Edit::Changed(
                self.doc
                    .get_change_by_hash(&hash)
                    .expect("the change just made")
                    .raw_bytes()
                    .to_vec(),
            ),
        })
    }

    // ---- Reads, for the projections. ----

    /// The root maps.
    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    /// The keys of the map `obj`, sorted.
    pub fn keys(&self, obj: &ObjId) -> Vec<String> {
        self.doc.keys(obj).collect()
    }

    /// `(suffix, full key)` for every key of `obj` that starts with
    /// `prefix␟`.
    pub fn prefixed(&self, obj: &ObjId, prefix: &str) -> Vec<(String, String)> {
        let start = format!("{prefix}{SEP}");
        // U+0020 is the character right after the separator U+001F.
        let end = format!("{prefix}\u{20}");
        self.doc
            .map_range(obj, start.clone()..end)
            .map(|item| {
                let key = item.key.into_owned();
                (key[start.len()..].to_owned(), key)
            })
            .collect()
    }

    pub fn object_at(&self, obj: &ObjId, key: &str) -> Option<ObjId> {
        object_at(&self.doc, obj, key)
    }

    pub fn str_at(&self, obj: &ObjId, key: &str) -> Option<String> {
        str_at(&self.doc, obj, key)
    }

    pub fn i64_at(&self, obj: &ObjId, key: &str) -> Option<i64> {
        i64_at(&self.doc, obj, key)
    }

    /// Whether `obj[key]` is `true`; false when missing or not a bool.
    pub fn bool_at(&self, obj: &ObjId, key: &str) -> bool {
        bool_at(&self.doc, obj, key)
    }

    /// Reads the document with a helper written for any [`ReadDoc`] (the
    /// same helper an edit uses inside its transaction).
    pub fn read<T>(&self, read: impl FnOnce(&Automerge) -> T) -> T {
        read(&self.doc)
    }
}

/// Whether `obj[key]` is `true`; false when missing or not a bool.
pub(crate) fn bool_at(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> bool {
    matches!(doc.get(obj, key), Ok(Some((automerge::Value::Scalar(s), _))) if s.as_bool() == Some(true))
}

/// Puts `value` at `obj[key]` unless the key holds a value already, so an
/// operation that finds what it asks for makes no change (and is not
/// recorded): adding a member who is one, banning who is banned.
pub(crate) fn put_if_missing(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    key: &str,
    value: impl Into<automerge::ScalarValue>,
) -> Result<(), AutomergeError> {
    if tx.get(obj, key)?.is_none() {
        tx.put(obj, key, value)?;
    }
    Ok(())
}

/// Clears the flag `obj[key]`: writes `false` only where it is `true`, so
/// clearing what is not set makes no change. (A missing key and `false`
/// read the same.)
pub(crate) fn clear_flag(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    key: &str,
) -> Result<(), AutomergeError> {
    if bool_at(tx, obj, key) {
        tx.put(obj, key, false)?;
    }
    Ok(())
}

/// The map at `obj[key]`, if there is one.
pub(crate) fn object_at(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key).ok()?? {
        (automerge::Value::Object(ObjType::Map), id) => Some(id),
        _ => None,
    }
}

/// The integer at `obj[key]`, if there is one.
pub(crate) fn i64_at(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Option<i64> {
    match doc.get(obj, key).ok()?? {
        (automerge::Value::Scalar(s), _) => s.as_i64(),
        _ => None,
    }
}

/// The text at `obj[key]`, if there is one.
pub(crate) fn str_at(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok()?? {
        (automerge::Value::Scalar(s), _) => s.as_str().map(str::to_owned),
        _ => None,
    }
}

/// A composite map key: `a␟b`.
pub(crate) fn composite(a: &str, b: &str) -> String {
    format!("{a}{SEP}{b}")
}

/// The nested map at `entry[key]`. Every entry made by this build has its
/// nested maps; one missing (a malformed change from another device) is
/// made anew rather than trusted or panicked over.
pub(crate) fn nested_map(
    tx: &mut Transaction<'_>,
    entry: &ObjId,
    key: &str,
) -> Result<ObjId, AutomergeError> {
    match object_at(tx, entry, key) {
        Some(obj) => Ok(obj),
        None => tx.put_object(entry, key, ObjType::Map),
    }
}

/// Deletes `keys` from the map `list`, passing over those not in it.
pub(crate) fn delete_keys<'a>(
    tx: &mut Transaction<'_>,
    list: &ObjId,
    keys: impl IntoIterator<Item = &'a str>,
) -> Result<(), AutomergeError> {
    for key in keys {
        if tx.get(list, key)?.is_some() {
            tx.delete(list, key)?;
        }
    }
    Ok(())
}
