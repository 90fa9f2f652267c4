//! Thread operations: threads inside groups, their names and members.
//!
//! A thread entry, `threads[thread]`, is made fresh on create or join; its
//! members are a nested map.

use automerge::transaction::{Transactable, Transaction};
use automerge::{ObjId, ObjType};
use serde::{Deserialize, Serialize};
use tandem_storage::device::ThreadRow;

use super::{list, text, EditError, Entity, InvalidOp, Refused};
use crate::doc::{delete_keys, keys, nested_map, object_at, AccountDoc, Roots};
use crate::limits::*;
use crate::model::*;

use keys::thread as k;

/// Operations on threads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ThreadOp {
    /// Record a thread the user created in a group; the user is its first
    /// member. Refused with
    /// [`Refused::ThreadExists`](crate::Refused::ThreadExists) if the thread is
    /// known on this device; the group is not checked.
    Create {
        /// The new thread, as the IM service names it.
        thread: ThreadId,
        /// The group the thread belongs to.
        group: GroupId,
        /// The thread's name, at most [`TEXT_BYTES_MAX`] bytes.
        name: String,
    },
    /// Record that the user dissolved the thread: it leaves this account's
    /// threads, exactly as for [`ThreadOp::Leave`]. Ownership is not checked.
    /// Refused with [`Refused::NoSuchThread`](crate::Refused::NoSuchThread) if
    /// the thread is not known on this device.
    Destroy {
        /// The thread, as the IM service names it.
        thread: ThreadId,
    },
    /// Record that the user joined a thread: it is listed with an empty name
    /// and the user as its member. Refused with
    /// [`Refused::ThreadExists`](crate::Refused::ThreadExists) if the thread is
    /// known on this device already.
    Join {
        /// The thread, as the IM service names it.
        thread: ThreadId,
        /// The group the thread belongs to.
        group: GroupId,
    },
    /// Record that the user left the thread: it leaves this account's threads.
    /// Refused with [`Refused::NoSuchThread`](crate::Refused::NoSuchThread) if
    /// the thread is not known on this device.
    Leave {
        /// The thread, as the IM service names it.
        thread: ThreadId,
    },
    /// Rename the thread. Refused with
    /// [`Refused::NoSuchThread`](crate::Refused::NoSuchThread) if the thread is
    /// not known on this device.
    Update {
        /// The thread, as the IM service names it.
        thread: ThreadId,
        /// The thread's new name, at most [`TEXT_BYTES_MAX`] bytes.
        name: String,
    },
    /// Remove users from the thread's members; users not in it are passed
    /// over. Refused with
    /// [`Refused::NoSuchThread`](crate::Refused::NoSuchThread) if the thread is
    /// not known on this device.
    Kick {
        /// The thread, as the IM service names it.
        thread: ThreadId,
        /// The users to remove, 1 to [`USERS_PER_OP_MAX`].
        users: Vec<UserId>,
    },
}

impl ThreadOp {
    pub(crate) fn validate(&self) -> Result<(), InvalidOp> {
        match self {
            ThreadOp::Create { name, .. } | ThreadOp::Update { name, .. } => {
                text("name", name, TEXT_BYTES_MAX)
            }
            ThreadOp::Kick { users, .. } => list("users", users, USERS_PER_OP_MAX),
            _ => Ok(()),
        }
    }

    /// The thread the operation is about.
    pub(crate) fn thread(&self) -> &ThreadId {
        match self {
            ThreadOp::Create { thread, .. }
            | ThreadOp::Destroy { thread }
            | ThreadOp::Join { thread, .. }
            | ThreadOp::Leave { thread }
            | ThreadOp::Update { thread, .. }
            | ThreadOp::Kick { thread, .. } => thread,
        }
    }

    /// Edits the thread's entry; `me` is this account's user id.
    pub(crate) fn edit(
        &self,
        tx: &mut Transaction<'_>,
        roots: &Roots,
        me: &str,
    ) -> Result<(), EditError> {
        let new_thread =
            |tx: &mut Transaction<'_>, thread: &ThreadId, group: &GroupId, name: &str| {
                if object_at(tx, &roots.threads, thread.as_str()).is_some() {
                    return Err(EditError::from(Refused::ThreadExists(thread.clone())));
                }
                let obj = tx.put_object(&roots.threads, thread.as_str(), ObjType::Map)?;
                tx.put(&obj, k::GROUP, group.as_str())?;
                tx.put(&obj, k::NAME, name)?;
                let members = tx.put_object(&obj, k::MEMBERS, ObjType::Map)?;
                tx.put(&members, me, true)?;
                Ok(())
            };
        match self {
            ThreadOp::Create {
                thread,
                group,
                name,
            } => new_thread(tx, thread, group, name)?,
            ThreadOp::Join { thread, group } => new_thread(tx, thread, group, "")?,
            ThreadOp::Destroy { thread } | ThreadOp::Leave { thread } => {
                existing_thread(tx, roots, thread)?;
                tx.delete(&roots.threads, thread.as_str())?;
            }
            ThreadOp::Update { thread, name } => {
                let obj = existing_thread(tx, roots, thread)?;
                tx.put(&obj, k::NAME, name.as_str())?;
            }
            ThreadOp::Kick { thread, users } => {
                let obj = existing_thread(tx, roots, thread)?;
                let members = nested_map(tx, &obj, k::MEMBERS)?;
                delete_keys(tx, &members, users.iter().map(UserId::as_str))?;
            }
        }
        Ok(())
    }

    pub(crate) fn touched(&self) -> Vec<Entity> {
        vec![Entity::Thread(self.thread().as_str().to_owned())]
    }

    /// The event the operation becomes on another device.
    pub(crate) fn event(&self) -> ThreadEvent {
        match self.clone() {
            ThreadOp::Create {
                thread,
                group,
                name,
            } => ThreadEvent::Created {
                thread,
                group,
                name,
            },
            ThreadOp::Destroy { thread } => ThreadEvent::Destroyed { thread },
            ThreadOp::Join { thread, group } => ThreadEvent::Joined { thread, group },
            ThreadOp::Leave { thread } => ThreadEvent::Left { thread },
            ThreadOp::Update { thread, name } => ThreadEvent::Updated { thread, name },
            ThreadOp::Kick { thread, users } => ThreadEvent::Kicked { thread, users },
        }
    }
}

fn existing_thread(
    tx: &Transaction<'_>,
    roots: &Roots,
    thread: &ThreadId,
) -> Result<ObjId, Refused> {
    object_at(tx, &roots.threads, thread.as_str())
        .ok_or_else(|| Refused::NoSuchThread(thread.clone()))
}

/// The thread's row, as the document has it.
pub(crate) fn thread_row(doc: &AccountDoc, thread: &str) -> Option<ThreadRow> {
    let obj = doc.object_at(&doc.roots().threads, thread)?;
    Some(ThreadRow {
        id: thread.to_owned(),
        group_id: doc.str_at(&obj, k::GROUP).unwrap_or_default(),
        name: doc.str_at(&obj, k::NAME).unwrap_or_default(),
        members: doc
            .object_at(&obj, k::MEMBERS)
            .map(|m| doc.keys(&m))
            .unwrap_or_default(),
    })
}

/// Thread operations done on another device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ThreadEvent {
    /// The user created a thread in a group. Superseded if the thread is gone
    /// here after the merge.
    Created {
        /// The thread, as the IM service names it.
        thread: ThreadId,
        /// The group the thread belongs to.
        group: GroupId,
        /// The thread's name.
        name: String,
    },
    /// The user dissolved the thread; it is gone from this account's threads.
    /// Superseded if it is listed again here.
    Destroyed {
        /// The thread, as the IM service names it.
        thread: ThreadId,
    },
    /// The user joined a thread. Superseded if the thread is gone here after
    /// the merge.
    Joined {
        /// The thread, as the IM service names it.
        thread: ThreadId,
        /// The group the thread belongs to.
        group: GroupId,
    },
    /// The user left the thread; it is gone from this account's threads.
    /// Superseded if it is listed again here.
    Left {
        /// The thread, as the IM service names it.
        thread: ThreadId,
    },
    /// The user renamed the thread. Superseded if it has another name here
    /// after the merge, or is gone.
    Updated {
        /// The thread, as the IM service names it.
        thread: ThreadId,
        /// The new name.
        name: String,
    },
    /// The user removed users from the thread. Superseded if any of them is a
    /// member here after the merge.
    Kicked {
        /// The thread, as the IM service names it.
        thread: ThreadId,
        /// The users removed.
        users: Vec<UserId>,
    },
}

impl ThreadEvent {
    /// Whether the state after the merge no longer shows the event's effect.
    pub(crate) fn superseded(&self, doc: &AccountDoc) -> bool {
        let thread = |t: &ThreadId| thread_row(doc, t.as_str());
        match self {
            ThreadEvent::Created { thread: t, .. } | ThreadEvent::Joined { thread: t, .. } => {
                thread(t).is_none()
            }
            ThreadEvent::Destroyed { thread: t } | ThreadEvent::Left { thread: t } => {
                thread(t).is_some()
            }
            ThreadEvent::Updated { thread: t, name } => thread(t).is_none_or(|t| &t.name != name),
            ThreadEvent::Kicked { thread: t, users } => {
                thread(t).is_some_and(|t| users.iter().any(|u| t.members.contains(&u.to_string())))
            }
        }
    }
}
