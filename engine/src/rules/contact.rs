//! Contact operations: requests both ways, contacts, remarks, blocklist.
//!
//! A contact entry, `contacts[user]`, is always written whole as a fresh
//! object, so a re-add wins over a concurrent remove, and a remark written
//! into the old entry cannot bring a removed one back. The blocklist,
//! `blocked[user]`, holds when the user was blocked.

use automerge::transaction::{Transactable, Transaction};
use automerge::{AutomergeError, ObjId, ObjType, ReadDoc};
use serde::{Deserialize, Serialize};
use tandem_storage::device::{BlockedRow, ContactRow, ContactStatus};

use super::{text, EditError, Entity, InvalidOp, Refused};
use crate::doc::{i64_at, keys, object_at, str_at, AccountDoc, Roots};
use crate::limits::*;
use crate::model::*;

/// Operations on contacts and the blocklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ContactOp {
    /// Send a contact request: the user is listed as a contact with status
    /// [`requested`](crate::ContactStatus::Requested) until accepted.
    /// Refused with
    /// [`Refused::AlreadyContact`](crate::Refused::AlreadyContact) for a
    /// friend; on an entry not accepted yet (`requested` or `pending`) it
    /// starts the entry over as `requested`, remark cleared.
    Add {
        /// The user asked.
        user: UserId,
        /// The text sent with the request, at most [`TEXT_BYTES_MAX`] bytes. It
        /// reaches the other devices in the event, but the contact row does not
        /// keep it.
        greeting: String,
    },
    /// Accept a contact request from `user` (recorded with
    /// [`ContactOp::ReceiveRequest`] as `pending`, or seen only by the IM
    /// service): they become a contact with status `friend`, keeping any
    /// remark. Whether a request is pending is not checked, since the
    /// service may know of one this device has not recorded.
    Accept {
        /// The user whose request is accepted.
        user: UserId,
    },
    /// Decline a contact request from `user`. An entry that is not a friend
    /// yet (their `pending` request, or our own `requested` one) is dropped;
    /// on a contact already accepted (`friend`) or a user with no entry it
    /// changes nothing, and is not refused either.
    Decline {
        /// The user whose request is declined.
        user: UserId,
    },
    /// Remove a contact entry in any status (`requested`, `pending` or
    /// `friend`). Refused with
    /// [`Refused::NoSuchContact`](crate::Refused::NoSuchContact) if there is
    /// none; a concurrent re-add or accept on another device wins over it.
    Remove {
        /// The contact to remove.
        user: UserId,
    },
    /// Put a user on the blocklist, contact or not; the contact entry is kept.
    /// Blocking again only refreshes the time.
    Block {
        /// The user to block.
        user: UserId,
    },
    /// Take a user off the blocklist. Refused with
    /// [`Refused::NotBlocked`](crate::Refused::NotBlocked) if they are not on
    /// it.
    Unblock {
        /// The user to unblock.
        user: UserId,
    },
    /// Set the remark (the user's own nickname for a contact). Refused with
    /// [`Refused::NoSuchContact`](crate::Refused::NoSuchContact) for a user who
    /// is not a contact.
    SetRemark {
        /// The contact the remark is for.
        user: UserId,
        /// The new remark, at most [`TEXT_BYTES_MAX`] bytes; empty clears it.
        remark: String,
    },
    /// Record a contact request `user` sent this account, as it arrived from
    /// the IM service: the entry becomes `pending` until accepted
    /// ([`ContactOp::Accept`]) or declined ([`ContactOp::Decline`]). A
    /// request from someone who is a contact already is refused with
    /// [`Refused::AlreadyContact`](crate::Refused::AlreadyContact).
    ReceiveRequest {
        /// The user who asked.
        user: UserId,
        /// Their message, at most [`TEXT_BYTES_MAX`] bytes.
        greeting: String,
    },
    // Variants are appended, never reordered: the wire numbers them.
    /// Any other contact operation with a free-form `ext` the app attaches
    /// (the reference SDKs' contact event `ext`): it does exactly what `op`
    /// does, and the other devices' event for it carries `ext`
    /// ([`Event::ext`](crate::Event::ext)). Build it with
    /// [`ContactOp::with_ext`]. An operation with an empty `ext` is better
    /// sent bare: earlier builds know only the bare form.
    WithExt {
        /// The operation; not itself a `WithExt`
        /// ([`InvalidOp::NestedExt`](crate::op::InvalidOp::NestedExt)).
        op: Box<ContactOp>,
        /// The app's text, at most [`TEXT_BYTES_MAX`] bytes.
        ext: String,
    },
}

impl ContactOp {
    /// This operation with a free-form `ext` for the other devices' event.
    pub fn with_ext(self, ext: impl Into<String>) -> ContactOp {
        ContactOp::WithExt {
            op: Box::new(self),
            ext: ext.into(),
        }
    }

    /// The free-form `ext` the operation carries, if any.
    pub fn ext(&self) -> Option<&str> {
        match self {
            ContactOp::WithExt { ext, .. } => Some(ext),
            _ => None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), InvalidOp> {
        match self {
            ContactOp::WithExt { op, ext } => {
                if matches!(**op, ContactOp::WithExt { .. }) {
                    return Err(InvalidOp::NestedExt);
                }
                text("ext", ext, TEXT_BYTES_MAX)?;
                op.validate()
            }
            ContactOp::Add { greeting, .. } | ContactOp::ReceiveRequest { greeting, .. } => {
                text("greeting", greeting, TEXT_BYTES_MAX)
            }
            ContactOp::SetRemark { remark, .. } => text("remark", remark, TEXT_BYTES_MAX),
            _ => Ok(()),
        }
    }

    /// The user the operation is about.
    pub(crate) fn user(&self) -> &UserId {
        match self {
            ContactOp::Add { user, .. }
            | ContactOp::Accept { user }
            | ContactOp::Decline { user }
            | ContactOp::Remove { user }
            | ContactOp::Block { user }
            | ContactOp::Unblock { user }
            | ContactOp::SetRemark { user, .. }
            | ContactOp::ReceiveRequest { user, .. } => user,
            ContactOp::WithExt { op, .. } => op.user(),
        }
    }

    pub(crate) fn edit(
        &self,
        tx: &mut Transaction<'_>,
        roots: &Roots,
        now_ms: i64,
    ) -> Result<(), EditError> {
        let existing =
            |tx: &Transaction<'_>, user: &UserId| object_at(tx, &roots.contacts, user.as_str());
        let is_friend = |tx: &Transaction<'_>, user: &UserId| {
            existing(tx, user).is_some_and(|obj| status_at(tx, &obj) == Some(ContactStatus::Friend))
        };
        let put_entry =
            |tx: &mut Transaction<'_>, user: &UserId, status: ContactStatus, remark: &str| {
                let obj = tx.put_object(&roots.contacts, user.as_str(), ObjType::Map)?;
                tx.put(&obj, keys::contact::STATUS, status.as_str())?;
                tx.put(&obj, keys::contact::REMARK, remark)?;
                tx.put(&obj, keys::contact::SINCE_MS, now_ms)?;
                Ok::<_, AutomergeError>(())
            };
        match self {
            ContactOp::WithExt { op, .. } => return op.edit(tx, roots, now_ms),
            ContactOp::Add { user, .. } => {
                if is_friend(tx, user) {
                    return Err(Refused::AlreadyContact(user.clone()).into());
                }
                put_entry(tx, user, ContactStatus::Requested, "")?;
            }
            ContactOp::Accept { user } => {
                let remark = existing(tx, user)
                    .and_then(|obj| str_at(tx, &obj, keys::contact::REMARK))
                    .unwrap_or_default();
                put_entry(tx, user, ContactStatus::Friend, &remark)?;
            }
            ContactOp::Decline { user } => {
                // Declining drops an entry that is not a friend yet; a friend
                // stays a friend.
                if existing(tx, user).is_some() && !is_friend(tx, user) {
                    tx.delete(&roots.contacts, user.as_str())?;
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
                tx.put(&obj, keys::contact::REMARK, remark.as_str())?;
            }
            ContactOp::ReceiveRequest { user, .. } => {
                if is_friend(tx, user) {
                    return Err(Refused::AlreadyContact(user.clone()).into());
                }
                put_entry(tx, user, ContactStatus::Pending, "")?;
            }
        }
        Ok(())
    }

    /// The user's blocklist entry for blocking and unblocking, else their
    /// contact entry.
    pub(crate) fn touched(&self) -> Vec<Entity> {
        let user = self.user().as_str().to_owned();
        match self {
            ContactOp::WithExt { op, .. } => op.touched(),
            ContactOp::Block { .. } | ContactOp::Unblock { .. } => vec![Entity::Blocked(user)],
            _ => vec![Entity::Contact(user)],
        }
    }

    /// The event the operation becomes on another device (its `ext` goes
    /// in the event, not the kind).
    pub(crate) fn event(&self) -> ContactEvent {
        match self.clone() {
            ContactOp::WithExt { op, .. } => op.event(),
            ContactOp::Add { user, greeting } => ContactEvent::Added { user, greeting },
            ContactOp::Accept { user } => ContactEvent::Accepted { user },
            ContactOp::Decline { user } => ContactEvent::Declined { user },
            ContactOp::Remove { user } => ContactEvent::Removed { user },
            ContactOp::Block { user } => ContactEvent::Blocked { user },
            ContactOp::Unblock { user } => ContactEvent::Unblocked { user },
            ContactOp::SetRemark { user, remark } => ContactEvent::RemarkChanged { user, remark },
            ContactOp::ReceiveRequest { user, greeting } => {
                ContactEvent::RequestReceived { user, greeting }
            }
        }
    }
}

/// The status of the contact entry `obj`; `None` when it has none this
/// build knows (a malformed change from another device).
fn status_at(doc: &impl ReadDoc, obj: &ObjId) -> Option<ContactStatus> {
    str_at(doc, obj, keys::contact::STATUS)?.parse().ok()
}

/// The user's contact row, as the document has it. An entry without a
/// status this build knows is not shown.
pub(crate) fn contact_row(doc: &AccountDoc, user: &str) -> Option<ContactRow> {
    let obj = doc.object_at(&doc.roots().contacts, user)?;
    Some(ContactRow {
        user_id: user.to_owned(),
        status: doc.str_at(&obj, keys::contact::STATUS)?.parse().ok()?,
        remark: doc.str_at(&obj, keys::contact::REMARK).unwrap_or_default(),
        since_ms: doc.i64_at(&obj, keys::contact::SINCE_MS).unwrap_or(0),
    })
}

/// The user's blocklist row, as the document has it.
pub(crate) fn blocked_row(doc: &AccountDoc, user: &str) -> Option<BlockedRow> {
    let since_ms = doc.i64_at(&doc.roots().blocked, user)?;
    Some(BlockedRow {
        user_id: user.to_owned(),
        since_ms,
    })
}

/// Contact operations done on another device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ContactEvent {
    /// A contact request was sent. Superseded if the user's entry is not
    /// `requested` here after the merge (accepted or removed meanwhile).
    Added {
        /// The user asked.
        user: UserId,
        /// The text sent with the request.
        greeting: String,
    },
    /// A contact request was accepted: the user is a friend. Superseded if they
    /// are not a friend here after the merge (a concurrent remove won).
    Accepted {
        /// The new contact.
        user: UserId,
    },
    /// A contact request was declined, dropping the user's entry if it was
    /// not accepted yet (`requested` or `pending`); on a friend it changed
    /// nothing. Superseded if such an entry survived the merge (a
    /// concurrent add won).
    Declined {
        /// The user whose request was declined.
        user: UserId,
    },
    /// A contact was removed. Superseded if the user is a contact again here (a
    /// concurrent add or accept won).
    Removed {
        /// The former contact.
        user: UserId,
    },
    /// A user was put on the blocklist. Superseded if they are not on it here
    /// after the merge.
    Blocked {
        /// The user blocked.
        user: UserId,
    },
    /// A user was taken off the blocklist. Superseded if they are on it again
    /// here.
    Unblocked {
        /// The user unblocked.
        user: UserId,
    },
    /// A contact's remark was set. Superseded if the contact now has another
    /// remark (a concurrent edit won) or is gone.
    RemarkChanged {
        /// The contact.
        user: UserId,
        /// The remark set there; empty when it was cleared.
        remark: String,
    },
    /// A contact request from `user` arrived on another device. Superseded
    /// if the user's entry is no longer `pending` here (accepted, declined
    /// or removed).
    RequestReceived {
        /// The user who asked.
        user: UserId,
        /// Their message.
        greeting: String,
    },
}

impl ContactEvent {
    /// Whether the state after the merge no longer shows the event's effect.
    pub(crate) fn superseded(&self, doc: &AccountDoc) -> bool {
        let contact = |user: &UserId| contact_row(doc, user.as_str());
        match self {
            ContactEvent::Added { user, .. } => {
                contact(user).is_none_or(|c| c.status != ContactStatus::Requested)
            }
            ContactEvent::Accepted { user } => {
                contact(user).is_none_or(|c| c.status != ContactStatus::Friend)
            }
            ContactEvent::Declined { user } => {
                contact(user).is_some_and(|c| c.status != ContactStatus::Friend)
            }
            ContactEvent::Removed { user } => contact(user).is_some(),
            ContactEvent::Blocked { user } => blocked_row(doc, user.as_str()).is_none(),
            ContactEvent::Unblocked { user } => blocked_row(doc, user.as_str()).is_some(),
            ContactEvent::RemarkChanged { user, remark } => {
                contact(user).is_none_or(|c| &c.remark != remark)
            }
            ContactEvent::RequestReceived { user, .. } => {
                contact(user).is_none_or(|c| c.status != ContactStatus::Pending)
            }
        }
    }
}
