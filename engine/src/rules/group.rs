//! Group operations: membership, roles, bans, mutes, flags, info, attributes.
//!
//! A group entry, `groups[group]`, is made fresh on create, join, apply,
//! a received invitation or an accepted one, which makes a re-join win over
//! a concurrent leave; its members, admins, bans, allow list, mutes and
//! attributes are nested maps (add-wins). Member attributes are flat keys
//! (`attrs[user␟key]`) shown only for current members.
//!
//! Requests waiting on an answer: this account's own invitation is the
//! entry's standing, [`GroupStanding::Invited`] (with its inviter), until
//! it accepts or declines; users this account invited are flat keys
//! `invited␟user` of the entry, not members until the IM service says they
//! accepted ([`GroupOp::InviteeAccepted`]); users who applied to join are
//! `applicant␟user` until an owner or admin answers. A user who is a
//! member is never shown as invited.

use std::collections::BTreeSet;

use automerge::transaction::{Transactable, Transaction};
use automerge::{AutomergeError, ObjId, ObjType, ReadDoc};
use serde::{Deserialize, Serialize};
use tandem_storage::device::{GroupMember, GroupRow, GroupStanding, MemberAttribute, MemberRole};

use super::{list, text, EditError, Entity, InvalidOp, Lookup, Refused};
use crate::doc::{
    clear_flag, composite, delete_keys, keys, nested_map, object_at, put_if_missing, str_at,
    AccountDoc, Roots, SEP,
};
use crate::limits::*;
use crate::model::*;

use keys::group as k;

/// Fields of a group's info; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupInfoUpdate {
    /// The group's new name, at most [`TEXT_BYTES_MAX`] bytes.
    pub name: Option<String>,
    /// The group's new description, at most [`TEXT_BYTES_MAX`] bytes.
    pub description: Option<String>,
    /// The group's new announcement, at most [`TEXT_BYTES_MAX`] bytes.
    pub announcement: Option<String>,
}

/// Operations on groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum GroupOp {
    /// Record a group the user created: they are its owner and first member,
    /// and `members` join with them. Refused with
    /// [`Refused::GroupExists`](crate::Refused::GroupExists) if the group is
    /// known on this device in any state.
    Create {
        /// The new group, as the IM service names it.
        group: GroupId,
        /// The group's name, at most [`TEXT_BYTES_MAX`] bytes.
        name: String,
        /// The other users added at creation, at most [`USERS_PER_OP_MAX`]; may
        /// be empty.
        members: Vec<UserId>,
    },
    /// Record that the user dissolved the group: it leaves this account's
    /// groups, exactly as for [`GroupOp::Leave`]. Ownership is not checked.
    /// Refused with [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if
    /// the group is not known on this device.
    Destroy {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// Record that the user joined a group that needs no approval: it is
    /// listed as a member group with empty info and owner until they are
    /// updated. Refused with
    /// [`Refused::GroupExists`](crate::Refused::GroupExists) if the user is a
    /// member already; an application in progress is replaced.
    Join {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// Record that the user left the group: it leaves this account's groups.
    /// Refused with [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if
    /// the group is not known on this device.
    Leave {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// Record that the user asked to join a group that needs approval: the
    /// group is listed in state `applied`. Refused with
    /// [`Refused::GroupExists`](crate::Refused::GroupExists) if the group is
    /// known on this device already.
    Apply {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The text sent with the application, at most [`TEXT_BYTES_MAX`]
        /// bytes; the other devices hear it, the group row does not keep it.
        reason: String,
    },
    /// Record that the user, as owner or admin, let an applicant in: they are
    /// added to the members and are no longer an applicant. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    AcceptApplication {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The applicant, now a member.
        user: UserId,
    },
    /// Record that the user, as owner or admin, turned an applicant down:
    /// they are no longer listed as an applicant. For a user who is not
    /// (the application was not recorded with
    /// [`GroupOp::ReceiveApplication`]) it changes nothing. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    DeclineApplication {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The applicant turned down.
        user: UserId,
        /// The reason given to the applicant, at most [`TEXT_BYTES_MAX`] bytes;
        /// not kept in the group row.
        reason: String,
    },
    /// Record that the user invited users into the group. They are listed as
    /// invited, not as members, until the IM service says they accepted
    /// ([`GroupOp::InviteeAccepted`]) or declined
    /// ([`GroupOp::InviteeDeclined`]); members among them are passed over.
    /// Refused with [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup)
    /// if the group is not known on this device.
    ///
    /// Builds before pending invitations listed invitees as members at
    /// once. Their deltas still merge that way: a merge applies the
    /// document change the origin made, it never runs the operation again.
    Invite {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users invited, 1 to [`USERS_PER_OP_MAX`].
        users: Vec<UserId>,
    },
    /// Record that the user accepted an invitation: the group becomes a member
    /// group with the user and the inviter among its members. A pending
    /// invitation, or a group unknown so far (the invitation was not
    /// recorded with [`GroupOp::ReceiveInvitation`]), becomes a fresh entry
    /// with empty info and owner: accepting wins over a concurrent decline.
    AcceptInvitation {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member who sent the invitation; listed as a member too.
        inviter: UserId,
    },
    /// Record that the user declined an invitation: a group listed as
    /// [`invited`](crate::GroupStanding::Invited) is dropped. On a group in
    /// another standing, or unknown, it changes nothing (and so is not
    /// recorded).
    DeclineInvitation {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member who sent the invitation.
        inviter: UserId,
        /// The reason given to the inviter, at most [`TEXT_BYTES_MAX`] bytes;
        /// not kept anywhere.
        reason: String,
    },
    /// Remove members from the group, together with their admin role, their
    /// mute and a pending invitation. Users who are neither are passed over.
    /// Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    Kick {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The members to remove, 1 to [`USERS_PER_OP_MAX`].
        users: Vec<UserId>,
    },
    /// Remove members as [`GroupOp::Kick`] does and puts them on the group's
    /// ban list. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    Ban {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users to ban, 1 to [`USERS_PER_OP_MAX`]; they need not be
        /// members.
        users: Vec<UserId>,
    },
    /// Take users off the group's ban list (unbans them) without making them
    /// members again. Not to be confused with [`GroupOp::AddAllowList`].
    /// Refused with [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if
    /// the group is not known on this device.
    Allow {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users to unban, 1 to [`USERS_PER_OP_MAX`]; those not banned are
        /// passed over.
        users: Vec<UserId>,
    },
    /// Set the group's `messages_blocked` flag: the user does not want the
    /// group's messages. The engine only records the flag; it still stores
    /// messages ingested for the group. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    BlockMessages {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// Clear the group's `messages_blocked` flag. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    UnblockMessages {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// Make a member the group's owner. The new owner loses the admin role
    /// (the owner role covers it) and the old owner becomes a plain member.
    /// Refused with [`Refused::NotAMember`](crate::Refused::NotAMember) if
    /// `new_owner` is not a member. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    TransferOwner {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member who becomes the owner.
        new_owner: UserId,
    },
    /// Give a user the admin role. Membership is not checked: the role shows
    /// only while the user is a member. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    AddAdmin {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The user who becomes an admin.
        user: UserId,
    },
    /// Take the admin role away; a user who is not an admin is passed over.
    /// Refused with [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if
    /// the group is not known on this device.
    RemoveAdmin {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The admin who becomes a plain member.
        user: UserId,
    },
    /// Mute members until a time, shown as their `muted_until_ms`. The mute
    /// ends by itself at that time: the engine reads no clock, so queries
    /// take the time ([`Engine::muted_members`](crate::Engine::muted_members),
    /// [`GroupMember::is_muted_at`]). A mute of a user who is not a member
    /// is kept but not shown. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    Mute {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The members to mute, 1 to [`USERS_PER_OP_MAX`].
        users: Vec<UserId>,
        /// When the mute ends, in ms since the Unix epoch. It replaces an
        /// earlier mute of the same member; 0 reads as not muted.
        until_ms: i64,
    },
    /// Lift members' mutes; members not muted are passed over. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    Unmute {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The members to unmute, 1 to [`USERS_PER_OP_MAX`].
        users: Vec<UserId>,
    },
    /// Put users on the group's allow list: in IM services, the members who
    /// may still speak while the whole group is muted ([`GroupOp::MuteAll`]).
    /// The engine only records the list. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    AddAllowList {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users to add, 1 to [`USERS_PER_OP_MAX`]; membership is not
        /// checked.
        users: Vec<UserId>,
    },
    /// Take users off the group's allow list; users not on it are passed over.
    /// Refused with [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if
    /// the group is not known on this device.
    RemoveAllowList {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users to take off, 1 to [`USERS_PER_OP_MAX`].
        users: Vec<UserId>,
    },
    /// Set the group's `mute_all` flag: the whole group is muted. The engine
    /// only records the flag; the IM service enforces it. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    MuteAll {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// Clear the group's `mute_all` flag. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    UnmuteAll {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// Change the group's name, description or announcement. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    UpdateInfo {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The fields to change; a field left `None` keeps its value.
        update: GroupInfoUpdate,
    },
    /// Set app-defined attributes of a member (a nickname in the group, say).
    /// Keys not named keep their values; [`GroupOp::RemoveMemberAttributes`]
    /// removes keys.
    /// Refused with [`Refused::NotAMember`](crate::Refused::NotAMember) if
    /// `user` is not a member; a member who leaves takes their attributes out
    /// of view. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    SetMemberAttributes {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member whose attributes are set.
        user: UserId,
        /// (key, value) pairs, 1 to [`ATTRIBUTES_PER_OP_MAX`]: each key 1 to
        /// [`ID_BYTES_MAX`] bytes without control characters, each value at
        /// most [`TEXT_BYTES_MAX`] bytes.
        attributes: Vec<(String, String)>,
    },
    // Variants are appended, never reordered: the wire numbers them.
    /// Record an invitation to a group that arrived from the IM service:
    /// the group is listed in standing
    /// [`invited`](crate::GroupStanding::Invited), not as a member group,
    /// until the user accepts ([`GroupOp::AcceptInvitation`]) or declines
    /// ([`GroupOp::DeclineInvitation`]). A new invitation replaces an
    /// earlier one. Refused with
    /// [`Refused::GroupExists`](crate::Refused::GroupExists) if the group
    /// is known as a member group or an application.
    ReceiveInvitation {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member who invited this account.
        inviter: UserId,
    },
    /// Record that a user this account invited accepted, as the IM service
    /// reported it: they become a member and are no longer invited. Refused
    /// with [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the
    /// group is not known on this device.
    InviteeAccepted {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The invitee, now a member.
        user: UserId,
    },
    /// Record that a user this account invited declined: they are no longer
    /// invited. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    InviteeDeclined {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The invitee who declined.
        user: UserId,
        /// Their reason, at most [`TEXT_BYTES_MAX`] bytes; not kept.
        reason: String,
    },
    /// Record an application to join the group that arrived from the IM
    /// service, for this account (an owner or admin) to answer: the user is
    /// listed as an applicant until [`GroupOp::AcceptApplication`] or
    /// [`GroupOp::DeclineApplication`]. For a member it changes nothing.
    /// Refused with [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if
    /// the group is not known on this device.
    ReceiveApplication {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The user who applied.
        user: UserId,
        /// Their reason, at most [`TEXT_BYTES_MAX`] bytes; kept with the
        /// application.
        reason: String,
    },
    /// Remove app-defined attributes of a member; keys not set are passed
    /// over. Membership is not checked. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    RemoveMemberAttributes {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member whose attributes go.
        user: UserId,
        /// The keys to remove, 1 to [`ATTRIBUTES_PER_OP_MAX`], each 1 to
        /// [`ID_BYTES_MAX`] bytes without control characters.
        keys: Vec<String>,
    },
    /// Record that the IM service disabled the group (the reference SDKs'
    /// "group disabled" event): it is kept, flagged `disabled`. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    Disable {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// Record that the IM service enabled the group again. Refused with
    /// [`Refused::NoSuchGroup`](crate::Refused::NoSuchGroup) if the group is
    /// not known on this device.
    Enable {
        /// The group, as the IM service names it.
        group: GroupId,
    },
}

impl GroupOp {
    pub(crate) fn validate(&self) -> Result<(), InvalidOp> {
        match self {
            GroupOp::Create { name, members, .. } => {
                text("name", name, TEXT_BYTES_MAX)?;
                if members.len() > USERS_PER_OP_MAX {
                    return Err(InvalidOp::TooMany {
                        field: "members",
                        len: members.len(),
                        max: USERS_PER_OP_MAX,
                    });
                }
                Ok(())
            }
            GroupOp::Apply { reason, .. }
            | GroupOp::DeclineApplication { reason, .. }
            | GroupOp::DeclineInvitation { reason, .. }
            | GroupOp::InviteeDeclined { reason, .. }
            | GroupOp::ReceiveApplication { reason, .. } => text("reason", reason, TEXT_BYTES_MAX),
            GroupOp::Invite { users, .. }
            | GroupOp::Kick { users, .. }
            | GroupOp::Ban { users, .. }
            | GroupOp::Allow { users, .. }
            | GroupOp::Mute { users, .. }
            | GroupOp::Unmute { users, .. }
            | GroupOp::AddAllowList { users, .. }
            | GroupOp::RemoveAllowList { users, .. } => list("users", users, USERS_PER_OP_MAX),
            GroupOp::UpdateInfo { update, .. } => {
                for (field, value) in update.fields() {
                    if let Some(value) = value {
                        text(field, value, TEXT_BYTES_MAX)?;
                    }
                }
                Ok(())
            }
            GroupOp::RemoveMemberAttributes { keys, .. } => {
                list("keys", keys, ATTRIBUTES_PER_OP_MAX)?;
                for k in keys {
                    super::key("attribute key", k)?;
                }
                Ok(())
            }
            GroupOp::SetMemberAttributes { attributes, .. } => {
                list("attributes", attributes, ATTRIBUTES_PER_OP_MAX)?;
                for (k, v) in attributes {
                    super::key("attribute key", k)?;
                    text("attribute value", v, TEXT_BYTES_MAX)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The group the operation is about.
    pub(crate) fn group(&self) -> &GroupId {
        match self {
            GroupOp::Create { group, .. }
            | GroupOp::Destroy { group }
            | GroupOp::Join { group }
            | GroupOp::Leave { group }
            | GroupOp::Apply { group, .. }
            | GroupOp::AcceptApplication { group, .. }
            | GroupOp::DeclineApplication { group, .. }
            | GroupOp::Invite { group, .. }
            | GroupOp::AcceptInvitation { group, .. }
            | GroupOp::DeclineInvitation { group, .. }
            | GroupOp::Kick { group, .. }
            | GroupOp::Ban { group, .. }
            | GroupOp::Allow { group, .. }
            | GroupOp::BlockMessages { group }
            | GroupOp::UnblockMessages { group }
            | GroupOp::TransferOwner { group, .. }
            | GroupOp::AddAdmin { group, .. }
            | GroupOp::RemoveAdmin { group, .. }
            | GroupOp::Mute { group, .. }
            | GroupOp::Unmute { group, .. }
            | GroupOp::AddAllowList { group, .. }
            | GroupOp::RemoveAllowList { group, .. }
            | GroupOp::MuteAll { group }
            | GroupOp::UnmuteAll { group }
            | GroupOp::UpdateInfo { group, .. }
            | GroupOp::SetMemberAttributes { group, .. }
            | GroupOp::ReceiveInvitation { group, .. }
            | GroupOp::InviteeAccepted { group, .. }
            | GroupOp::InviteeDeclined { group, .. }
            | GroupOp::ReceiveApplication { group, .. }
            | GroupOp::RemoveMemberAttributes { group, .. }
            | GroupOp::Disable { group }
            | GroupOp::Enable { group } => group,
        }
    }

    /// Edits the group's entry; `me` is this account's user id.
    pub(crate) fn edit(
        &self,
        tx: &mut Transaction<'_>,
        roots: &Roots,
        me: &str,
        now_ms: i64,
    ) -> Result<(), EditError> {
        // Users already on a list keep their entry (and its time), so an
        // operation that finds them there changes nothing.
        let put_users = |tx: &mut Transaction<'_>,
                         group: &GroupId,
                         list: &str,
                         users: &[UserId],
                         value: i64| {
            let obj = existing_group(tx, roots, group)?;
            let list = nested_map(tx, &obj, list)?;
            for user in users {
                put_if_missing(tx, &list, user.as_str(), value)?;
            }
            Ok::<_, EditError>(())
        };
        let delete_users =
            |tx: &mut Transaction<'_>, group: &GroupId, lists: &[&str], users: &[UserId]| {
                let obj = existing_group(tx, roots, group)?;
                for list in lists {
                    let list = nested_map(tx, &obj, list)?;
                    delete_keys(tx, &list, users.iter().map(UserId::as_str))?;
                }
                Ok::<_, EditError>(())
            };
        // A request (`invited␟user`, `applicant␟user`) answered or withdrawn.
        let delete_requests =
            |tx: &mut Transaction<'_>, group: &GroupId, kind: &str, users: &[UserId]| {
                let obj = existing_group(tx, roots, group)?;
                let keys: Vec<String> = users.iter().map(|u| composite(kind, u.as_str())).collect();
                delete_keys(tx, &obj, keys.iter().map(String::as_str))?;
                Ok::<_, EditError>(())
            };
        let is_member = |tx: &Transaction<'_>, obj: &ObjId, user: &str| {
            object_at(tx, obj, k::MEMBERS)
                .is_some_and(|members| tx.get(&members, user).ok().flatten().is_some())
        };
        let set_flag = |tx: &mut Transaction<'_>, group: &GroupId, flag: &str, value: bool| {
            let obj = existing_group(tx, roots, group)?;
            tx.put(&obj, flag, value)?;
            Ok::<_, EditError>(())
        };
        let require_member =
            |tx: &mut Transaction<'_>, group: &GroupId, obj: &ObjId, user: &UserId| {
                let members = nested_map(tx, obj, k::MEMBERS)?;
                if tx.get(&members, user.as_str())?.is_none() {
                    return Err(EditError::from(Refused::NotAMember {
                        group: group.clone(),
                        user: user.clone(),
                    }));
                }
                Ok(())
            };
        // Membership, admin roles and mutes go together when a member is
        // removed.
        const MEMBERSHIP: [&str; 3] = [k::MEMBERS, k::ADMINS, k::MUTES];
        match self {
            GroupOp::Create {
                group,
                name,
                members,
            } => {
                if object_at(tx, &roots.groups, group.as_str()).is_some() {
                    return Err(Refused::GroupExists(group.clone()).into());
                }
                let obj = new_group(tx, roots, group, GroupStanding::Member, me, name)?;
                let list = nested_map(tx, &obj, k::MEMBERS)?;
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
                    if standing_at(tx, &obj) == Some(GroupStanding::Member) {
                        return Err(Refused::GroupExists(group.clone()).into());
                    }
                }
                let obj = new_group(tx, roots, group, GroupStanding::Member, "", "")?;
                let list = nested_map(tx, &obj, k::MEMBERS)?;
                tx.put(&list, me, now_ms)?;
            }
            GroupOp::Apply { group, .. } => {
                if object_at(tx, &roots.groups, group.as_str()).is_some() {
                    return Err(Refused::GroupExists(group.clone()).into());
                }
                new_group(tx, roots, group, GroupStanding::Applied, "", "")?;
            }
            GroupOp::AcceptInvitation { group, inviter } => {
                // A pending invitation (or none recorded) becomes a fresh
                // member entry, so accepting wins over a concurrent decline
                // as a re-add wins over a remove; a group known otherwise
                // keeps its entry.
                let existing = object_at(tx, &roots.groups, group.as_str())
                    .filter(|obj| standing_at(tx, obj) != Some(GroupStanding::Invited));
                let obj = match existing {
                    Some(obj) => {
                        tx.put(&obj, k::STATE, GroupStanding::Member.as_str())?;
                        obj
                    }
                    None => new_group(tx, roots, group, GroupStanding::Member, "", "")?,
                };
                let list = nested_map(tx, &obj, k::MEMBERS)?;
                put_if_missing(tx, &list, me, now_ms)?;
                put_if_missing(tx, &list, inviter.as_str(), now_ms)?;
            }
            GroupOp::AcceptApplication { group, user } => {
                let users = std::slice::from_ref(user);
                put_users(tx, group, k::MEMBERS, users, now_ms)?;
                delete_requests(tx, group, k::APPLICANT, users)?;
            }
            GroupOp::DeclineApplication { group, user, .. } => {
                delete_requests(tx, group, k::APPLICANT, std::slice::from_ref(user))?;
            }
            GroupOp::DeclineInvitation { group, .. } => {
                // Only this account's own pending invitation goes; a member
                // group or an application stays.
                if let Some(obj) = object_at(tx, &roots.groups, group.as_str()) {
                    if standing_at(tx, &obj) == Some(GroupStanding::Invited) {
                        tx.delete(&roots.groups, group.as_str())?;
                    }
                }
            }
            GroupOp::Invite { group, users } => {
                let obj = existing_group(tx, roots, group)?;
                for user in users {
                    if !is_member(tx, &obj, user.as_str()) {
                        put_if_missing(tx, &obj, &composite(k::INVITED, user.as_str()), now_ms)?;
                    }
                }
            }
            GroupOp::Kick { group, users } => {
                delete_users(tx, group, &MEMBERSHIP, users)?;
                delete_requests(tx, group, k::INVITED, users)?;
            }
            GroupOp::Ban { group, users } => {
                delete_users(tx, group, &MEMBERSHIP, users)?;
                delete_requests(tx, group, k::INVITED, users)?;
                put_users(tx, group, k::BANNED, users, now_ms)?;
            }
            GroupOp::ReceiveInvitation { group, inviter } => {
                if let Some(obj) = object_at(tx, &roots.groups, group.as_str()) {
                    match standing_at(tx, &obj) {
                        // The same invitation again changes nothing.
                        Some(GroupStanding::Invited)
                            if str_at(tx, &obj, k::INVITER).as_deref()
                                == Some(inviter.as_str()) =>
                        {
                            return Ok(());
                        }
                        Some(GroupStanding::Invited) | None => {}
                        Some(_) => return Err(Refused::GroupExists(group.clone()).into()),
                    }
                }
                let obj = new_group(tx, roots, group, GroupStanding::Invited, "", "")?;
                tx.put(&obj, k::INVITER, inviter.as_str())?;
            }
            GroupOp::InviteeAccepted { group, user } => {
                let users = std::slice::from_ref(user);
                put_users(tx, group, k::MEMBERS, users, now_ms)?;
                delete_requests(tx, group, k::INVITED, users)?;
            }
            GroupOp::InviteeDeclined { group, user, .. } => {
                delete_requests(tx, group, k::INVITED, std::slice::from_ref(user))?;
            }
            GroupOp::ReceiveApplication {
                group,
                user,
                reason,
            } => {
                let obj = existing_group(tx, roots, group)?;
                if !is_member(tx, &obj, user.as_str()) {
                    tx.put(
                        &obj,
                        composite(k::APPLICANT, user.as_str()),
                        reason.as_str(),
                    )?;
                }
            }
            GroupOp::Allow { group, users } => delete_users(tx, group, &[k::BANNED], users)?,
            GroupOp::BlockMessages { group } => set_flag(tx, group, k::MESSAGES_BLOCKED, true)?,
            GroupOp::UnblockMessages { group } => set_flag(tx, group, k::MESSAGES_BLOCKED, false)?,
            GroupOp::TransferOwner { group, new_owner } => {
                let obj = existing_group(tx, roots, group)?;
                require_member(tx, group, &obj, new_owner)?;
                tx.put(&obj, k::OWNER, new_owner.as_str())?;
                delete_users(tx, group, &[k::ADMINS], std::slice::from_ref(new_owner))?;
            }
            GroupOp::AddAdmin { group, user } => {
                put_users(tx, group, k::ADMINS, std::slice::from_ref(user), now_ms)?;
            }
            GroupOp::RemoveAdmin { group, user } => {
                delete_users(tx, group, &[k::ADMINS], std::slice::from_ref(user))?;
            }
            GroupOp::Mute {
                group,
                users,
                until_ms,
            } => {
                // A mute replaces an earlier one; the same time again is no
                // change (automerge makes none for an equal value).
                let obj = existing_group(tx, roots, group)?;
                let mutes = nested_map(tx, &obj, k::MUTES)?;
                for user in users {
                    tx.put(&mutes, user.as_str(), *until_ms)?;
                }
            }
            GroupOp::Unmute { group, users } => delete_users(tx, group, &[k::MUTES], users)?,
            GroupOp::AddAllowList { group, users } => {
                put_users(tx, group, k::ALLOWED, users, now_ms)?
            }
            GroupOp::RemoveAllowList { group, users } => {
                delete_users(tx, group, &[k::ALLOWED], users)?
            }
            GroupOp::Disable { group } => set_flag(tx, group, k::DISABLED, true)?,
            GroupOp::Enable { group } => {
                let obj = existing_group(tx, roots, group)?;
                clear_flag(tx, &obj, k::DISABLED)?;
            }
            GroupOp::RemoveMemberAttributes { group, user, keys } => {
                let obj = existing_group(tx, roots, group)?;
                let attrs = nested_map(tx, &obj, k::ATTRS)?;
                let keys: Vec<String> = keys
                    .iter()
                    .map(|key| composite(user.as_str(), key))
                    .collect();
                delete_keys(tx, &attrs, keys.iter().map(String::as_str))?;
            }
            GroupOp::MuteAll { group } => set_flag(tx, group, k::MUTE_ALL, true)?,
            GroupOp::UnmuteAll { group } => set_flag(tx, group, k::MUTE_ALL, false)?,
            GroupOp::UpdateInfo { group, update } => {
                let obj = existing_group(tx, roots, group)?;
                let info = nested_map(tx, &obj, k::INFO)?;
                for (field, value) in update.fields() {
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
                require_member(tx, group, &obj, user)?;
                let attrs = nested_map(tx, &obj, k::ATTRS)?;
                for (key, value) in attributes {
                    tx.put(&attrs, composite(user.as_str(), key), value.as_str())?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn touched(&self) -> Vec<Entity> {
        vec![Entity::Group(self.group().as_str().to_owned())]
    }

    /// The event the operation becomes on another device.
    pub(crate) fn event(&self) -> GroupEvent {
        match self.clone() {
            GroupOp::Create {
                group,
                name,
                members,
            } => GroupEvent::Created {
                group,
                name,
                members,
            },
            GroupOp::Destroy { group } => GroupEvent::Destroyed { group },
            GroupOp::Join { group } => GroupEvent::Joined { group },
            GroupOp::Leave { group } => GroupEvent::Left { group },
            GroupOp::Apply { group, reason } => GroupEvent::Applied { group, reason },
            GroupOp::AcceptApplication { group, user } => {
                GroupEvent::ApplicationAccepted { group, user }
            }
            GroupOp::DeclineApplication {
                group,
                user,
                reason,
            } => GroupEvent::ApplicationDeclined {
                group,
                user,
                reason,
            },
            GroupOp::Invite { group, users } => GroupEvent::Invited { group, users },
            GroupOp::AcceptInvitation { group, inviter } => {
                GroupEvent::InvitationAccepted { group, inviter }
            }
            GroupOp::DeclineInvitation {
                group,
                inviter,
                reason,
            } => GroupEvent::InvitationDeclined {
                group,
                inviter,
                reason,
            },
            GroupOp::Kick { group, users } => GroupEvent::MembersKicked { group, users },
            GroupOp::Ban { group, users } => GroupEvent::MembersBanned { group, users },
            GroupOp::Allow { group, users } => GroupEvent::MembersAllowed { group, users },
            GroupOp::BlockMessages { group } => GroupEvent::MessagesBlocked { group },
            GroupOp::UnblockMessages { group } => GroupEvent::MessagesUnblocked { group },
            GroupOp::TransferOwner { group, new_owner } => {
                GroupEvent::OwnerTransferred { group, new_owner }
            }
            GroupOp::AddAdmin { group, user } => GroupEvent::AdminAdded { group, user },
            GroupOp::RemoveAdmin { group, user } => GroupEvent::AdminRemoved { group, user },
            GroupOp::Mute {
                group,
                users,
                until_ms,
            } => GroupEvent::MembersMuted {
                group,
                users,
                until_ms,
            },
            GroupOp::Unmute { group, users } => GroupEvent::MembersUnmuted { group, users },
            GroupOp::AddAllowList { group, users } => GroupEvent::AllowListAdded { group, users },
            GroupOp::RemoveAllowList { group, users } => {
                GroupEvent::AllowListRemoved { group, users }
            }
            GroupOp::MuteAll { group } => GroupEvent::AllMuted { group },
            GroupOp::UnmuteAll { group } => GroupEvent::AllUnmuted { group },
            GroupOp::UpdateInfo { group, update } => GroupEvent::InfoUpdated { group, update },
            GroupOp::SetMemberAttributes {
                group,
                user,
                attributes,
            } => GroupEvent::MemberAttributesChanged {
                group,
                user,
                attributes,
            },
            GroupOp::ReceiveInvitation { group, inviter } => {
                GroupEvent::InvitationReceived { group, inviter }
            }
            GroupOp::InviteeAccepted { group, user } => GroupEvent::InviteeAccepted { group, user },
            GroupOp::InviteeDeclined {
                group,
                user,
                reason,
            } => GroupEvent::InviteeDeclined {
                group,
                user,
                reason,
            },
            GroupOp::ReceiveApplication {
                group,
                user,
                reason,
            } => GroupEvent::ApplicationReceived {
                group,
                user,
                reason,
            },
            GroupOp::RemoveMemberAttributes { group, user, keys } => {
                GroupEvent::MemberAttributesRemoved { group, user, keys }
            }
            GroupOp::Disable { group } => GroupEvent::Disabled { group },
            GroupOp::Enable { group } => GroupEvent::Enabled { group },
        }
    }
}

impl GroupInfoUpdate {
    /// The fields as `(key in the group's info, new value)`.
    fn fields(&self) -> [(&'static str, &Option<String>); 3] {
        [
            (k::NAME, &self.name),
            (k::DESCRIPTION, &self.description),
            (k::ANNOUNCEMENT, &self.announcement),
        ]
    }
}

/// Creates a fresh group entry at `groups[group]`. A fresh object (rather
/// than edits to an old one) is what makes a re-join win over a concurrent
/// leave.
fn new_group(
    tx: &mut Transaction<'_>,
    roots: &Roots,
    group: &GroupId,
    standing: GroupStanding,
    owner: &str,
    name: &str,
) -> Result<ObjId, AutomergeError> {
    let obj = tx.put_object(&roots.groups, group.as_str(), ObjType::Map)?;
    tx.put(&obj, k::STATE, standing.as_str())?;
    tx.put(&obj, k::OWNER, owner)?;
    tx.put(&obj, k::MESSAGES_BLOCKED, false)?;
    tx.put(&obj, k::MUTE_ALL, false)?;
    let info = tx.put_object(&obj, k::INFO, ObjType::Map)?;
    tx.put(&info, k::NAME, name)?;
    tx.put(&info, k::DESCRIPTION, "")?;
    tx.put(&info, k::ANNOUNCEMENT, "")?;
    for list in k::LISTS {
        tx.put_object(&obj, list, ObjType::Map)?;
    }
    Ok(obj)
}

fn existing_group(tx: &Transaction<'_>, roots: &Roots, group: &GroupId) -> Result<ObjId, Refused> {
    object_at(tx, &roots.groups, group.as_str()).ok_or_else(|| Refused::NoSuchGroup(group.clone()))
}

/// This account's standing in the group entry `obj`; `None` when it has
/// none this build knows (a malformed change from another device).
fn standing_at(doc: &impl ReadDoc, obj: &ObjId) -> Option<GroupStanding> {
    str_at(doc, obj, k::STATE)?.parse().ok()
}

/// The group's row, as the document has it. An entry without a standing
/// this build knows is not shown.
pub(crate) fn group_row(doc: &AccountDoc, group: &str) -> Option<GroupRow> {
    let obj = doc.object_at(&doc.roots().groups, group)?;
    let state = doc.str_at(&obj, k::STATE)?.parse().ok()?;
    let info = doc.object_at(&obj, k::INFO);
    let info_str = |key| {
        info.as_ref()
            .and_then(|i| doc.str_at(i, key))
            .unwrap_or_default()
    };
    let owner = doc.str_at(&obj, k::OWNER).unwrap_or_default();
    let keys_of = |name| -> Vec<String> {
        doc.object_at(&obj, name)
            .map(|o| doc.keys(&o))
            .unwrap_or_default()
    };
    let admins: BTreeSet<String> = keys_of(k::ADMINS).into_iter().collect();
    let mutes = doc.object_at(&obj, k::MUTES);
    let member_ids = keys_of(k::MEMBERS);
    let members = member_ids
        .iter()
        .map(|user| GroupMember {
            user_id: user.clone(),
            role: if *user == owner {
                MemberRole::Owner
            } else if admins.contains(user) {
                MemberRole::Admin
            } else {
                MemberRole::Member
            },
            muted_until_ms: mutes
                .as_ref()
                .and_then(|m| doc.i64_at(m, user))
                .unwrap_or(0),
        })
        .collect();
    let member_set: BTreeSet<&String> = member_ids.iter().collect();
    let mut attributes = Vec::new();
    if let Some(attrs) = doc.object_at(&obj, k::ATTRS) {
        for key in doc.keys(&attrs) {
            let Some((user, name)) = key.split_once(SEP) else {
                continue;
            };
            // Attributes of a user who is no longer a member stay hidden.
            if member_set.contains(&user.to_owned()) {
                attributes.push(MemberAttribute {
                    user_id: user.to_owned(),
                    key: name.to_owned(),
                    value: doc.str_at(&attrs, &key).unwrap_or_default(),
                });
            }
        }
    }
    // A member is never shown as invited (a concurrent invitation and
    // acceptance leave both keys).
    let invited = doc
        .prefixed(&obj, k::INVITED)
        .into_iter()
        .map(|(user, _)| user)
        .filter(|user| !member_set.contains(user))
        .collect();
    let applicants = doc
        .prefixed(&obj, k::APPLICANT)
        .into_iter()
        .map(|(user, _)| user)
        .filter(|user| !member_set.contains(user))
        .collect();
    Some(GroupRow {
        id: group.to_owned(),
        state,
        name: info_str(k::NAME),
        description: info_str(k::DESCRIPTION),
        announcement: info_str(k::ANNOUNCEMENT),
        owner,
        messages_blocked: doc.bool_at(&obj, k::MESSAGES_BLOCKED),
        mute_all: doc.bool_at(&obj, k::MUTE_ALL),
        disabled: doc.bool_at(&obj, k::DISABLED),
        members,
        banned: keys_of(k::BANNED),
        allowed: keys_of(k::ALLOWED),
        invited,
        applicants,
        attributes,
    })
}

/// Group operations done on another device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum GroupEvent {
    /// The user created the group. Superseded if it is not a member group here
    /// after the merge.
    Created {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The group's name.
        name: String,
        /// The other users added at creation; the creator is a member too.
        members: Vec<UserId>,
    },
    /// The user dissolved the group; it is gone from this account's groups.
    /// Superseded if it is listed again here (a concurrent join won).
    Destroyed {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// The user joined the group. Superseded if it is not a member group here
    /// after the merge.
    Joined {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// The user left the group; it is gone from this account's groups.
    /// Superseded if it is listed again here.
    Left {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// The user applied to join the group, which is listed in state `applied`.
    /// Superseded if the group is gone here.
    Applied {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The text sent with the application.
        reason: String,
    },
    /// The user, as owner or admin, let an applicant in. Superseded if the
    /// applicant is not a member here after the merge.
    ApplicationAccepted {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The applicant, now a member.
        user: UserId,
    },
    /// The user, as owner or admin, turned an applicant down, who is no
    /// longer listed as one. Superseded if the group is gone here, or the
    /// user is listed as an applicant again.
    ApplicationDeclined {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The applicant turned down.
        user: UserId,
        /// The reason given to the applicant.
        reason: String,
    },
    /// The user invited users, who are listed as invited (by builds before
    /// pending invitations: as members). Superseded if any of them is
    /// neither invited nor a member here after the merge (kicked, or they
    /// declined).
    Invited {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users invited.
        users: Vec<UserId>,
    },
    /// The user accepted an invitation: the group is a member group. Superseded
    /// if it is not one here after the merge.
    InvitationAccepted {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member who sent the invitation.
        inviter: UserId,
    },
    /// The user declined an invitation, which is gone from this account's
    /// groups. Superseded if the group is listed as an invitation here
    /// after the merge (a concurrent new invitation).
    InvitationDeclined {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member who sent the invitation.
        inviter: UserId,
        /// The reason given to the inviter.
        reason: String,
    },
    /// The user removed members, with their admin roles and mutes. Superseded
    /// if any of them is a member here after the merge (a concurrent invite
    /// won).
    MembersKicked {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users removed.
        users: Vec<UserId>,
    },
    /// The user removed users and put them on the ban list. Superseded if any
    /// of them is not on the ban list here after the merge.
    MembersBanned {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users banned.
        users: Vec<UserId>,
    },
    /// The user took users off the ban list (unbanned them). Superseded if any
    /// of them is still banned here.
    MembersAllowed {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users unbanned.
        users: Vec<UserId>,
    },
    /// The user blocked the group's messages (`messages_blocked` set).
    /// Superseded if the flag is clear here after the merge.
    MessagesBlocked {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// The user unblocked the group's messages (`messages_blocked` cleared).
    /// Superseded if the flag is set here after the merge.
    MessagesUnblocked {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// The user made a member the owner. Superseded if someone else is the
    /// owner here after the merge.
    OwnerTransferred {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The new owner.
        new_owner: UserId,
    },
    /// The user gave a member the admin role. Superseded if they are not an
    /// admin here after the merge.
    AdminAdded {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The new admin.
        user: UserId,
    },
    /// The user took a member's admin role away. Superseded if they are an
    /// admin here after the merge.
    AdminRemoved {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The former admin.
        user: UserId,
    },
    /// The user muted members. Superseded if any of them does not show this
    /// mute here after the merge (a later mute, an unmute, or not a member).
    MembersMuted {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The members muted.
        users: Vec<UserId>,
        /// When the mute ends, in ms since the Unix epoch.
        until_ms: i64,
    },
    /// The user lifted members' mutes. Superseded if any of them is muted here
    /// after the merge.
    MembersUnmuted {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The members unmuted.
        users: Vec<UserId>,
    },
    /// The user put users on the group's allow list. Superseded if any of them
    /// is not on it here after the merge.
    AllowListAdded {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users added to the allow list.
        users: Vec<UserId>,
    },
    /// The user took users off the group's allow list. Superseded if any of
    /// them is on it here after the merge.
    AllowListRemoved {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The users taken off the allow list.
        users: Vec<UserId>,
    },
    /// The user muted the whole group (`mute_all` set). Superseded if the flag
    /// is clear here after the merge.
    AllMuted {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// The user unmuted the whole group (`mute_all` cleared). Superseded if the
    /// flag is set here after the merge.
    AllUnmuted {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// The user changed the group's info. Superseded if any field it set has
    /// another value here after the merge.
    InfoUpdated {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The fields set; `None` for those left as they were.
        update: GroupInfoUpdate,
    },
    /// The user set attributes of a member. Superseded if any of them has
    /// another value here after the merge, or the user is no longer a member.
    MemberAttributesChanged {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member whose attributes were set.
        user: UserId,
        /// The (key, value) pairs set; other keys kept their values.
        attributes: Vec<(String, String)>,
    },
    // Variants are appended, never reordered: the journal numbers them.
    /// An invitation to the group arrived on another device: the group is
    /// listed as [`invited`](crate::GroupStanding::Invited). Superseded if it
    /// is not listed so here after the merge (accepted, declined or left).
    InvitationReceived {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member who invited this account.
        inviter: UserId,
    },
    /// A user this account invited accepted and is a member. Superseded if
    /// they are not a member here after the merge.
    InviteeAccepted {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The new member.
        user: UserId,
    },
    /// A user this account invited declined. Superseded if they are listed
    /// as invited here after the merge (invited again concurrently).
    InviteeDeclined {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The invitee who declined.
        user: UserId,
        /// Their reason.
        reason: String,
    },
    /// An application to join arrived on another device. Superseded if the
    /// user is not listed as an applicant here after the merge (answered).
    ApplicationReceived {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The user who applied.
        user: UserId,
        /// Their reason.
        reason: String,
    },
    /// The user removed attributes of a member. Superseded if any of them
    /// has a value here after the merge (set again concurrently).
    MemberAttributesRemoved {
        /// The group, as the IM service names it.
        group: GroupId,
        /// The member whose attributes went.
        user: UserId,
        /// The keys removed.
        keys: Vec<String>,
    },
    /// The IM service disabled the group (the reference SDKs' code 34).
    /// Superseded if it is not disabled here after the merge.
    Disabled {
        /// The group, as the IM service names it.
        group: GroupId,
    },
    /// The IM service enabled the group again (the reference SDKs' code
    /// 35). Superseded if it is disabled here after the merge.
    Enabled {
        /// The group, as the IM service names it.
        group: GroupId,
    },
}

impl GroupEvent {
    /// Whether the state after the merge no longer shows the event's effect.
    pub(crate) fn superseded(&self, lookup: &Lookup<'_>) -> bool {
        let group = |g: &GroupId| lookup.group(g.as_str());
        let is_member = |g: &GroupId, user: &str| {
            group(g).is_some_and(|g| g.members.iter().any(|m| m.user_id == user))
        };
        match self {
            GroupEvent::Created { group: g, .. }
            | GroupEvent::Joined { group: g }
            | GroupEvent::InvitationAccepted { group: g, .. } => {
                group(g).is_none_or(|g| g.state != GroupStanding::Member)
            }
            GroupEvent::Applied { group: g, .. } => group(g).is_none(),
            GroupEvent::Destroyed { group: g } | GroupEvent::Left { group: g } => {
                group(g).is_some()
            }
            GroupEvent::ApplicationAccepted { group: g, user } => !is_member(g, user.as_str()),
            GroupEvent::ApplicationDeclined { group: g, user, .. } => {
                group(g).is_none_or(|g| g.applicants.contains(&user.to_string()))
            }
            GroupEvent::InvitationDeclined { group: g, .. } => {
                group(g).is_some_and(|g| g.state == GroupStanding::Invited)
            }
            GroupEvent::Invited { group: g, users } => group(g).is_none_or(|row| {
                users
                    .iter()
                    .any(|u| !row.invited.contains(&u.to_string()) && !is_member(g, u.as_str()))
            }),
            GroupEvent::InvitationReceived { group: g, .. } => {
                group(g).is_none_or(|g| g.state != GroupStanding::Invited)
            }
            GroupEvent::InviteeAccepted { group: g, user } => !is_member(g, user.as_str()),
            GroupEvent::InviteeDeclined { group: g, user, .. } => {
                group(g).is_some_and(|g| g.invited.contains(&user.to_string()))
            }
            GroupEvent::ApplicationReceived { group: g, user, .. } => {
                group(g).is_none_or(|g| !g.applicants.contains(&user.to_string()))
            }
            GroupEvent::MemberAttributesRemoved {
                group: g,
                user,
                keys,
            } => group(g).is_some_and(|g| {
                g.attributes
                    .iter()
                    .any(|a| a.user_id == user.as_str() && keys.contains(&a.key))
            }),
            GroupEvent::Disabled { group: g } => group(g).is_none_or(|g| !g.disabled),
            GroupEvent::Enabled { group: g } => group(g).is_none_or(|g| g.disabled),
            GroupEvent::MembersKicked { group: g, users } => {
                users.iter().any(|u| is_member(g, u.as_str()))
            }
            GroupEvent::MembersBanned { group: g, users } => {
                group(g).is_none_or(|g| users.iter().any(|u| !g.banned.contains(&u.to_string())))
            }
            GroupEvent::MembersAllowed { group: g, users } => {
                group(g).is_some_and(|g| users.iter().any(|u| g.banned.contains(&u.to_string())))
            }
            GroupEvent::MessagesBlocked { group: g } => {
                group(g).is_none_or(|g| !g.messages_blocked)
            }
            GroupEvent::MessagesUnblocked { group: g } => {
                group(g).is_none_or(|g| g.messages_blocked)
            }
            GroupEvent::OwnerTransferred {
                group: g,
                new_owner,
            } => group(g).is_none_or(|g| g.owner != new_owner.as_str()),
            GroupEvent::AdminAdded { group: g, user } => group(g).is_none_or(|g| {
                !g.members
                    .iter()
                    .any(|m| m.user_id == user.as_str() && m.role == MemberRole::Admin)
            }),
            GroupEvent::AdminRemoved { group: g, user } => group(g).is_none_or(|g| {
                g.members
                    .iter()
                    .any(|m| m.user_id == user.as_str() && m.role == MemberRole::Admin)
            }),
            GroupEvent::MembersMuted {
                group: g,
                users,
                until_ms,
            } => group(g).is_none_or(|g| {
                users.iter().any(|u| {
                    !g.members
                        .iter()
                        .any(|m| m.user_id == u.as_str() && m.muted_until_ms == *until_ms)
                })
            }),
            GroupEvent::MembersUnmuted { group: g, users } => group(g).is_none_or(|g| {
                g.members
                    .iter()
                    .any(|m| users.iter().any(|u| u.as_str() == m.user_id) && m.muted_until_ms != 0)
            }),
            GroupEvent::AllowListAdded { group: g, users } => {
                group(g).is_none_or(|g| users.iter().any(|u| !g.allowed.contains(&u.to_string())))
            }
            GroupEvent::AllowListRemoved { group: g, users } => {
                group(g).is_none_or(|g| users.iter().any(|u| g.allowed.contains(&u.to_string())))
            }
            GroupEvent::AllMuted { group: g } => group(g).is_none_or(|g| !g.mute_all),
            GroupEvent::AllUnmuted { group: g } => group(g).is_none_or(|g| g.mute_all),
            GroupEvent::InfoUpdated { group: g, update } => group(g).is_none_or(|g| {
                update.name.as_ref().is_some_and(|v| *v != g.name)
                    || update
                        .description
                        .as_ref()
                        .is_some_and(|v| *v != g.description)
                    || update
                        .announcement
                        .as_ref()
                        .is_some_and(|v| *v != g.announcement)
            }),
            GroupEvent::MemberAttributesChanged {
                group: g,
                user,
                attributes,
            } => group(g).is_none_or(|g| {
                attributes.iter().any(|(k, v)| {
                    !g.attributes
                        .iter()
                        .any(|a| a.user_id == user.as_str() && &a.key == k && &a.value == v)
                })
            }),
        }
    }
}
