//! The account document: the automerge half of a device's state.
//!
//! Layout (all root maps are made by the genesis change, so no two devices
//! ever create them concurrently, which would make one device's copy win and
//! hide the other's entries):
//!
//! | root map | key | value |
//! | --- | --- | --- |
//! | `contacts` | user | map `{status, remark, since_ms}` |
//! | `blocked` | user | since_ms |
//! | `groups` | group | map (see [`new_group`]) |
//! | `threads` | thread | map `{group, name, members: {user: true}}` |
//! | `pinned`, `dnd` | conversation | bool (a register) |
//! | `marks` | conversation ␟ mark | bool (a register) |
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

use std::collections::BTreeSet;

use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{ActorId, Automerge, AutomergeError, Change, ChangeHash, ObjType, ReadDoc, ROOT};
use tandem_storage::device::{
    BlockedRow, ContactRow, ConversationFlags, GroupMember, GroupRow, MemberAttribute, ThreadRow,
};
use tandem_transport::DeviceId;

use crate::model::*;
use crate::op::*;

/// Joins the parts of a composite map key. Ids cannot contain it.
pub(crate) const SEP: char = '\u{1f}';

/// The genesis change's actor: the same on every device, so the genesis
/// change is byte-identical everywhere and automerge stores it once.
const GENESIS_ACTOR: [u8; 16] = *b"tandem-genesis-1";

const ROOTS: [&str; 7] = [
    "contacts", "blocked", "groups", "threads", "pinned", "dnd", "marks",
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

/// A precondition of a local operation that the current state breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// Removing or setting the remark of a user who is not a contact, pending
    /// or accepted.
    #[error("{0} is not a contact")]
    NoSuchContact(UserId),
    /// A contact request to a user who is a friend already.
    #[error("{0} is already a contact")]
    AlreadyContact(UserId),
    /// Unblocking a user who is not on the blocklist.
    #[error("{0} is not blocked")]
    NotBlocked(UserId),
    /// The operation needs a group this account does not know: never joined,
    /// left, or dissolved.
    #[error("group {0} is not known on this device")]
    NoSuchGroup(GroupId),
    /// Creating or applying to a group this account knows already, or joining
    /// one it is a member of.
    #[error("group {0} already exists")]
    GroupExists(GroupId),
    /// The operation needs a member of the group: a new owner, or a user whose
    /// attributes are set.
    #[error("{user} is not a member of group {group}")]
    NotAMember {
        /// The group.
        group: GroupId,
        /// The user who is not a member of it.
        user: UserId,
    },
    /// The operation needs a thread this account does not take part in.
    #[error("thread {0} is not known on this device")]
    NoSuchThread(ThreadId),
    /// Creating or joining a thread this account takes part in already.
    #[error("thread {0} already exists")]
    ThreadExists(ThreadId),
}

#[derive(Debug, thiserror::Error)]
enum EditError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Automerge(#[from] AutomergeError),
}

/// The outcome of a local edit.
pub(crate) enum Edit {
    /// The operation changed nothing in the document.
    Unchanged,
    /// The raw bytes of the one change it made.
    Changed(Vec<u8>),
}

pub(crate) struct AccountDoc {
    doc: Automerge,
    roots: Roots,
}

struct Roots {
    contacts: automerge::ObjId,
    blocked: automerge::ObjId,
    groups: automerge::ObjId,
    threads: automerge::ObjId,
    pinned: automerge::ObjId,
    dnd: automerge::ObjId,
    marks: automerge::ObjId,
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
        let root = |name: &'static str| -> Result<automerge::ObjId, DocError> {
            match doc.get(ROOT, name)? {
                Some((automerge::Value::Object(ObjType::Map), id)) => Ok(id),
                _ => Err(DocError::MissingRoot(name)),
            }
        };
        let roots = Roots {
            contacts: root("contacts")?,
            blocked: root("blocked")?,
            groups: root("groups")?,
            threads: root("threads")?,
            pinned: root("pinned")?,
            dnd: root("dnd")?,
            marks: root("marks")?,
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

    /// Performs one local operation on the document as one change stamped
    /// with `now_ms`. A refused precondition leaves the document untouched.
    pub fn edit(&mut self, op: &Op, me: &str, now_ms: i64) -> Result<Edit, EditFailure> {
        let roots = &self.roots;
        let result = self.doc.transact_with(
            |_| CommitOptions::default().with_time(now_ms),
            |tx| edit(tx, roots, op, me, now_ms),
        );
        match result {
            Ok(success) => match success.hash {
                None => Ok(Edit::Unchanged),
                Some(hash) => Ok(Edit::Changed(
                    self.doc
                        .get_change_by_hash(&hash)
                        .expect("the change just made")
                        .raw_bytes()
                        .to_vec(),
                )),
            },
            Err(failure) => Err(match failure.error {
                EditError::Refused(refused) => EditFailure::Refused(refused),
                EditError::Automerge(e) => EditFailure::Doc(DocError::Automerge(e)),
            }),
        }
    }

    // ---- Projections: the document's state for one entity, as rows. ----

    /// The conversation's pin, do-not-disturb and marks.
    pub fn conversation_flags(&self, conversation: &str) -> ConversationFlags {
        let r = &self.roots;
        let marks = self
            .prefixed(&r.marks, conversation)
            .into_iter()
            .filter(|(_, key)| self.bool_at(&r.marks, key))
            .map(|(suffix, _)| suffix)
            .collect();
        ConversationFlags {
            pinned: self.bool_at(&r.pinned, conversation),
            do_not_disturb: self.bool_at(&r.dnd, conversation),
            marks,
        }
    }

    pub fn contact(&self, user: &str) -> Option<ContactRow> {
        let obj = self.object_at(&self.roots.contacts, user)?;
        Some(ContactRow {
            user_id: user.to_owned(),
            status: self.str_at(&obj, "status").unwrap_or_default(),
            remark: self.str_at(&obj, "remark").unwrap_or_default(),
            since_ms: self.i64_at(&obj, "since_ms").unwrap_or(0),
        })
    }

    pub fn blocked(&self, user: &str) -> Option<BlockedRow> {
        let since_ms = self.i64_at(&self.roots.blocked, user)?;
        Some(BlockedRow {
            user_id: user.to_owned(),
            since_ms,
        })
    }

    pub fn group(&self, group: &str) -> Option<GroupRow> {
        let obj = self.object_at(&self.roots.groups, group)?;
        let info = self.object_at(&obj, "info");
        let info_str = |key| {
            info.as_ref()
                .and_then(|i| self.str_at(i, key))
                .unwrap_or_default()
        };
        let owner = self.str_at(&obj, "owner").unwrap_or_default();
        let keys_of = |name| -> Vec<String> {
            self.object_at(&obj, name)
                .map(|o| self.doc.keys(&o).collect())
                .unwrap_or_default()
        };
        let admins: BTreeSet<String> = keys_of("admins").into_iter().collect();
        let mutes = self.object_at(&obj, "mutes");
        let member_ids = keys_of("members");
        let members = member_ids
            .iter()
            .map(|user| GroupMember {
                user_id: user.clone(),
                role: if *user == owner {
                    "owner"
                } else if admins.contains(user) {
                    "admin"
                } else {
                    "member"
                }
                .to_owned(),
                muted_until_ms: mutes
                    .as_ref()
                    .and_then(|m| self.i64_at(m, user))
                    .unwrap_or(0),
            })
            .collect();
        let member_set: BTreeSet<&String> = member_ids.iter().collect();
        let mut attributes = Vec::new();
        if let Some(attrs) = self.object_at(&obj, "attrs") {
            for key in self.doc.keys(&attrs) {
                let Some((user, name)) = key.split_once(SEP) else {
                    continue;
                };
                // Attributes of a user who is no longer a member stay hidden.
                if member_set.contains(&user.to_owned()) {
                    attributes.push(MemberAttribute {
                        user_id: user.to_owned(),
                        key: name.to_owned(),
                        value: self.str_at(&attrs, &key).unwrap_or_default(),
                    });
                }
            }
        }
        Some(GroupRow {
            id: group.to_owned(),
            state: self.str_at(&obj, "state").unwrap_or_default(),
            name: info_str("name"),
            description: info_str("description"),
            announcement: info_str("announcement"),
            owner,
            messages_blocked: self.bool_at(&obj, "messages_blocked"),
            mute_all: self.bool_at(&obj, "mute_all"),
            members,
            banned: keys_of("banned"),
            allowed: keys_of("allowed"),
            attributes,
        })
    }

    pub fn thread(&self, thread: &str) -> Option<ThreadRow> {
        let obj = self.object_at(&self.roots.threads, thread)?;
        Some(ThreadRow {
            id: thread.to_owned(),
            group_id: self.str_at(&obj, "group").unwrap_or_default(),
            name: self.str_at(&obj, "name").unwrap_or_default(),
            members: self
                .object_at(&obj, "members")
                .map(|m| self.doc.keys(&m).collect())
                .unwrap_or_default(),
        })
    }

    /// `(suffix, full key)` for every key of `obj` that starts with
    /// `prefix␟`.
    fn prefixed(&self, obj: &automerge::ObjId, prefix: &str) -> Vec<(String, String)> {
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

    fn object_at(&self, obj: &automerge::ObjId, key: &str) -> Option<automerge::ObjId> {
        object_at(&self.doc, obj, key)
    }

    fn str_at(&self, obj: &automerge::ObjId, key: &str) -> Option<String> {
        str_at(&self.doc, obj, key)
    }

    fn i64_at(&self, obj: &automerge::ObjId, key: &str) -> Option<i64> {
        i64_at(&self.doc, obj, key)
    }

    fn bool_at(&self, obj: &automerge::ObjId, key: &str) -> bool {
        matches!(self.doc.get(obj, key), Ok(Some((automerge::Value::Scalar(s), _))) if s.as_bool() == Some(true))
    }
}

/// Why a local edit failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EditFailure {
    #[error(transparent)]
    Refused(Refused),
    #[error(transparent)]
    Doc(DocError),
}

fn object_at(doc: &impl ReadDoc, obj: &automerge::ObjId, key: &str) -> Option<automerge::ObjId> {
    match doc.get(obj, key).ok()?? {
        (automerge::Value::Object(ObjType::Map), id) => Some(id),
        _ => None,
    }
}

fn i64_at(doc: &impl ReadDoc, obj: &automerge::ObjId, key: &str) -> Option<i64> {
    match doc.get(obj, key).ok()?? {
        (automerge::Value::Scalar(s), _) => s.as_i64(),
        _ => None,
    }
}

fn str_at(doc: &impl ReadDoc, obj: &automerge::ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok()?? {
        (automerge::Value::Scalar(s), _) => s.as_str().map(str::to_owned),
        _ => None,
    }
}

fn composite(a: &str, b: &str) -> String {
    format!("{a}{SEP}{b}")
}

/// Creates a fresh group object at `groups[group]`. A fresh object (rather
/// than edits to an old one) is what makes a re-join win over a concurrent
/// leave.
fn new_group(
    tx: &mut Transaction<'_>,
    roots: &Roots,
    group: &GroupId,
    state: &str,
    owner: &str,
    name: &str,
) -> Result<automerge::ObjId, AutomergeError> {
    let obj = tx.put_object(&roots.groups, group.as_str(), ObjType::Map)?;
    tx.put(&obj, "state", state)?;
    tx.put(&obj, "owner", owner)?;
    tx.put(&obj, "messages_blocked", false)?;
    tx.put(&obj, "mute_all", false)?;
    let info = tx.put_object(&obj, "info", ObjType::Map)?;
    tx.put(&info, "name", name)?;
    tx.put(&info, "description", "")?;
    tx.put(&info, "announcement", "")?;
    for list in ["members", "admins", "banned", "allowed", "mutes", "attrs"] {
        tx.put_object(&obj, list, ObjType::Map)?;
    }
    Ok(obj)
}

fn existing_group(
    tx: &Transaction<'_>,
    roots: &Roots,
    group: &GroupId,
) -> Result<automerge::ObjId, Refused> {
    object_at(tx, &roots.groups, group.as_str()).ok_or_else(|| Refused::NoSuchGroup(group.clone()))
}

/// One of a group's nested maps. Every group object made here has them all;
/// one missing (a malformed change from another device) is made anew rather
/// than trusted or panicked over.
fn group_list(
    tx: &mut Transaction<'_>,
    group: &automerge::ObjId,
    list: &str,
) -> Result<automerge::ObjId, AutomergeError> {
    match object_at(tx, group, list) {
        Some(obj) => Ok(obj),
        None => tx.put_object(group, list, ObjType::Map),
    }
}

fn existing_thread(
    tx: &Transaction<'_>,
    roots: &Roots,
    thread: &ThreadId,
) -> Result<automerge::ObjId, Refused> {
    object_at(tx, &roots.threads, thread.as_str())
        .ok_or_else(|| Refused::NoSuchThread(thread.clone()))
}

fn edit(
    tx: &mut Transaction<'_>,
    roots: &Roots,
    op: &Op,
    me: &str,
    now_ms: i64,
) -> Result<(), EditError> {
    match op {
        // Messages live in the message log, not in the document.
        Op::Message(_) => {}
        Op::Conversation(op) => edit_conversation(tx, roots, op)?,
        Op::Contact(op) => edit_contact(tx, roots, op, now_ms)?,
        Op::Group(op) => edit_group(tx, roots, op, me, now_ms)?,
        Op::Thread(op) => edit_thread(tx, roots, op, me)?,
    }
    Ok(())
}

fn edit_conversation(
    tx: &mut Transaction<'_>,
    roots: &Roots,
    op: &ConversationOp,
) -> Result<(), EditError> {
    match op {
        // Read markers travel in the delta and merge in SQLite.
        ConversationOp::MarkRead { .. }
        | ConversationOp::ClearUnread { .. }
        | ConversationOp::ClearAllUnread => {}
        ConversationOp::Pin { conversation } => {
            tx.put(&roots.pinned, conversation.key(), true)?;
        }
        ConversationOp::Unpin { conversation } => {
            tx.put(&roots.pinned, conversation.key(), false)?;
        }
        ConversationOp::Delete { conversation } => {
            // The clear point is the delta's time, merged in SQLite; the
            // document only unpins.
            tx.put(&roots.pinned, conversation.key(), false)?;
        }
        ConversationOp::AddMark { conversation, mark } => {
            tx.put(&roots.marks, composite(&conversation.key(), mark), true)?;
        }
        ConversationOp::RemoveMark { conversation, mark } => {
            tx.put(&roots.marks, composite(&conversation.key(), mark), false)?;
        }
        ConversationOp::SetDoNotDisturb {
            conversation,
            enabled,
        } => {
            tx.put(&roots.dnd, conversation.key(), *enabled)?;
        }
    }
    Ok(())
}

fn edit_contact(
    tx: &mut Transaction<'_>,
    roots: &Roots,
    op: &ContactOp,
    now_ms: i64,
) -> Result<(), EditError> {
    let existing =
        |tx: &Transaction<'_>, user: &UserId| object_at(tx, &roots.contacts, user.as_str());
    // A contact entry is always written whole as a fresh object, so a re-add
    // wins over a concurrent remove, and a remark written into the old entry
    // cannot bring a removed one back.
    let put_entry = |tx: &mut Transaction<'_>, user: &UserId, status: &str, remark: &str| {
        let obj = tx.put_object(&roots.contacts, user.as_str(), ObjType::Map)?;
        tx.put(&obj, "status", status)?;
        tx.put(&obj, "remark", remark)?;
        tx.put(&obj, "since_ms", now_ms)?;
        Ok::<_, AutomergeError>(())
    };
    match op {
        ContactOp::Add { user, .. } => {
            if let Some(obj) = existing(tx, user) {
                if str_at(tx, &obj, "status").as_deref() == Some("friend") {
                    return Err(Refused::AlreadyContact(user.clone()).into());
                }
            }
            put_entry(tx, user, "requested", "")?;
        }
        ContactOp::Accept { user } => {
            let remark = existing(tx, user)
                .and_then(|obj| str_at(tx, &obj, "remark"))
                .unwrap_or_default();
            put_entry(tx, user, "friend", &remark)?;
        }
        ContactOp::Decline { user } => {
            // Declining drops a pending entry; a friend stays a friend.
            if let Some(obj) = existing(tx, user) {
                if str_at(tx, &obj, "status").as_deref() != Some("friend") {
                    tx.delete(&roots.contacts, user.as_str())?;
                }
            }
        }
        ContactOp::Remove { user } => {
            existing(tx, user).ok_or_else(|| Refused::NoSuchContact(user.clone()))?;
            tx.delete(&roots.contacts, user.as_str())?;
        }
        ContactOp::Block { user } => {
            tx.put(&roots.blocked, user.as_str(), now_ms)?;
        }
        ContactOp::Unblock { user } => {
            if i64_at(tx, &roots.blocked, user.as_str()).is_none() {
                return Err(Refused::NotBlocked(user.clone()).into());
            }
            tx.delete(&roots.blocked, user.as_str())?;
        }
        ContactOp::SetRemark { user, remark } => {
            let obj = existing(tx, user).ok_or_else(|| Refused::NoSuchContact(user.clone()))?;
            tx.put(&obj, "remark", remark.as_str())?;
        }
        ContactOp::ReceiveRequest { user, .. } => {
            if let Some(obj) = existing(tx, user) {
                if str_at(tx, &obj, "status").as_deref() == Some("friend") {
                    return Err(Refused::AlreadyContact(user.clone()).into());
                }
            }
            put_entry(tx, user, "pending", "")?;
        }
    }
    Ok(())
}

fn edit_group(
    tx: &mut Transaction<'_>,
    roots: &Roots,
    op: &GroupOp,
    me: &str,
    now_ms: i64,
) -> Result<(), EditError> {
    let put_users =
        |tx: &mut Transaction<'_>, group: &GroupId, list: &str, users: &[UserId], value: i64| {
            let obj = existing_group(tx, roots, group)?;
            let list = group_list(tx, &obj, list)?;
            for user in users {
                tx.put(&list, user.as_str(), value)?;
            }
            Ok::<_, EditError>(())
        };
    let delete_users =
        |tx: &mut Transaction<'_>, group: &GroupId, lists: &[&str], users: &[UserId]| {
            let obj = existing_group(tx, roots, group)?;
            for list in lists {
                let list = group_list(tx, &obj, list)?;
                for user in users {
                    if tx.get(&list, user.as_str())?.is_some() {
                        tx.delete(&list, user.as_str())?;
                    }
                }
            }
            Ok::<_, EditError>(())
        };
    let set_flag = |tx: &mut Transaction<'_>, group: &GroupId, flag: &str, value: bool| {
        let obj = existing_group(tx, roots, group)?;
        tx.put(&obj, flag, value)?;
        Ok::<_, EditError>(())
    };
    match op {
        GroupOp::Create {
            group,
            name,
            members,
        } => {
            if object_at(tx, &roots.groups, group.as_str()).is_some() {
                return Err(Refused::GroupExists(group.clone()).into());
            }
            let obj = new_group(tx, roots, group, "member", me, name)?;
            let list = group_list(tx, &obj, "members")?;
            tx.put(&list, me, now_ms)?;
            for user in members {
                tx.put(&list, user.as_str(), now_ms)?;
            }
        }
        GroupOp::Destroy { group } | GroupOp::Leave { group } => {
            existing_group(tx, roots, group)?;
            tx.delete(&roots.groups, group.as_str())?;
        }
        GroupOp::Join { group } => {
            if let Some(obj) = object_at(tx, &roots.groups, group.as_str()) {
                if str_at(tx, &obj, "state").as_deref() == Some("member") {
                    return Err(Refused::GroupExists(group.clone()).into());
                }
            }
            let obj = new_group(tx, roots, group, "member", "", "")?;
            let list = group_list(tx, &obj, "members")?;
            tx.put(&list, me, now_ms)?;
        }
        GroupOp::Apply { group, .. } => {
            if object_at(tx, &roots.groups, group.as_str()).is_some() {
                return Err(Refused::GroupExists(group.clone()).into());
            }
            new_group(tx, roots, group, "applied", "", "")?;
        }
        GroupOp::AcceptInvitation { group, inviter } => {
            let obj = match object_at(tx, &roots.groups, group.as_str()) {
                Some(obj) => {
                    tx.put(&obj, "state", "member")?;
                    obj
                }
                None => new_group(tx, roots, group, "member", "", "")?,
            };
            let list = group_list(tx, &obj, "members")?;
            tx.put(&list, me, now_ms)?;
            tx.put(&list, inviter.as_str(), now_ms)?;
        }
        GroupOp::AcceptApplication { group, user } => {
            put_users(tx, group, "members", std::slice::from_ref(user), now_ms)?;
        }
        GroupOp::DeclineApplication { group, .. } => {
            // Nothing changes in the document; the delta still tells the
            // other devices it happened.
            existing_group(tx, roots, group)?;
        }
        GroupOp::DeclineInvitation { .. } => {}
        GroupOp::Invite { group, users } => put_users(tx, group, "members", users, now_ms)?,
        GroupOp::Kick { group, users } => {
            delete_users(tx, group, &["members", "admins", "mutes"], users)?;
        }
        GroupOp::Ban { group, users } => {
            delete_users(tx, group, &["members", "admins", "mutes"], users)?;
            put_users(tx, group, "banned", users, now_ms)?;
        }
        GroupOp::Allow { group, users } => delete_users(tx, group, &["banned"], users)?,
        GroupOp::BlockMessages { group } => set_flag(tx, group, "messages_blocked", true)?,
        GroupOp::UnblockMessages { group } => set_flag(tx, group, "messages_blocked", false)?,
        GroupOp::TransferOwner { group, new_owner } => {
            let obj = existing_group(tx, roots, group)?;
            let members = group_list(tx, &obj, "members")?;
            if tx.get(&members, new_owner.as_str())?.is_none() {
                return Err(Refused::NotAMember {
                    group: group.clone(),
                    user: new_owner.clone(),
                }
                .into());
            }
            tx.put(&obj, "owner", new_owner.as_str())?;
            delete_users(tx, group, &["admins"], std::slice::from_ref(new_owner))?;
        }
        GroupOp::AddAdmin { group, user } => {
            put_users(tx, group, "admins", std::slice::from_ref(user), now_ms)?;
        }
        GroupOp::RemoveAdmin { group, user } => {
            delete_users(tx, group, &["admins"], std::slice::from_ref(user))?;
        }
        GroupOp::Mute {
            group,
            users,
            until_ms,
        } => put_users(tx, group, "mutes", users, *until_ms)?,
        GroupOp::Unmute { group, users } => delete_users(tx, group, &["mutes"], users)?,
        GroupOp::AddAllowList { group, users } => put_users(tx, group, "allowed", users, now_ms)?,
        GroupOp::RemoveAllowList { group, users } => delete_users(tx, group, &["allowed"], users)?,
        GroupOp::MuteAll { group } => set_flag(tx, group, "mute_all", true)?,
        GroupOp::UnmuteAll { group } => set_flag(tx, group, "mute_all", false)?,
        GroupOp::UpdateInfo { group, update } => {
            let obj = existing_group(tx, roots, group)?;
            let info = group_list(tx, &obj, "info")?;
            for (field, value) in [
                ("name", &update.name),
                ("description", &update.description),
                ("announcement", &update.announcement),
            ] {
                if let Some(value) = value {
                    tx.put(&info, field, value.as_str())?;
                }
            }
        }
        GroupOp::SetMemberAttributes {
            group,
            user,
            attributes,
        } => {
            let obj = existing_group(tx, roots, group)?;
            let members = group_list(tx, &obj, "members")?;
            if tx.get(&members, user.as_str())?.is_none() {
                return Err(Refused::NotAMember {
                    group: group.clone(),
                    user: user.clone(),
                }
                .into());
            }
            let attrs = group_list(tx, &obj, "attrs")?;
            for (key, value) in attributes {
                tx.put(&attrs, composite(user.as_str(), key), value.as_str())?;
            }
        }
    }
    Ok(())
}

fn edit_thread(
    tx: &mut Transaction<'_>,
    roots: &Roots,
    op: &ThreadOp,
    me: &str,
) -> Result<(), EditError> {
    let new_thread = |tx: &mut Transaction<'_>, thread: &ThreadId, group: &GroupId, name: &str| {
        let obj = tx.put_object(&roots.threads, thread.as_str(), ObjType::Map)?;
        tx.put(&obj, "group", group.as_str())?;
        tx.put(&obj, "name", name)?;
        let members = tx.put_object(&obj, "members", ObjType::Map)?;
        tx.put(&members, me, true)?;
        Ok::<_, AutomergeError>(())
    };
    match op {
        ThreadOp::Create {
            thread,
            group,
            name,
        } => {
            if object_at(tx, &roots.threads, thread.as_str()).is_some() {
                return Err(Refused::ThreadExists(thread.clone()).into());
            }
            new_thread(tx, thread, group, name)?;
        }
        ThreadOp::Join { thread, group } => {
            if object_at(tx, &roots.threads, thread.as_str()).is_some() {
                return Err(Refused::ThreadExists(thread.clone()).into());
            }
            new_thread(tx, thread, group, "")?;
        }
        ThreadOp::Destroy { thread } | ThreadOp::Leave { thread } => {
            existing_thread(tx, roots, thread)?;
            tx.delete(&roots.threads, thread.as_str())?;
        }
        ThreadOp::Update { thread, name } => {
            let obj = existing_thread(tx, roots, thread)?;
            tx.put(&obj, "name", name.as_str())?;
        }
        ThreadOp::Kick { thread, users } => {
            let obj = existing_thread(tx, roots, thread)?;
            let members = group_list(tx, &obj, "members")?;
            for user in users {
                if tx.get(&members, user.as_str())?.is_some() {
                    tx.delete(&members, user.as_str())?;
                }
            }
        }
    }
    Ok(())
}
