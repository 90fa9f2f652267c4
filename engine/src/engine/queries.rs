//! Queries: reads served from the projection tables, never the document.

use tandem_storage::device::{
    BlockedRow, ContactRow, ConversationRow, DoNotDisturb, GroupMember, GroupRow, MessageView,
    PinnedMessage, RemindType, ThreadRow,
};
use tandem_storage::StoreError;

use super::{Engine, LoadError, RosterEntry};
use crate::model::*;

/// The whole projected state of the account on this device, in a stable
/// order: what two converged devices agree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountState {
    /// Every conversation the account has settings or messages in, deleted ones
    /// included, by key.
    pub conversations: Vec<ConversationRow>,
    /// The raw message log, deleted and recalled messages included.
    pub messages: Vec<MessageView>,
    /// Every contact entry, in any status, by user id.
    pub contacts: Vec<ContactRow>,
    /// Every blocked user, by user id.
    pub blocklist: Vec<BlockedRow>,
    /// Every group this account knows (as a member or applicant), by id.
    pub groups: Vec<GroupRow>,
    /// Every thread this account takes part in, by id.
    pub threads: Vec<ThreadRow>,
    /// Every pinned message, as `(conversation, pin)`, by conversation and
    /// message id.
    pub pinned_messages: Vec<(String, PinnedMessage)>,
    /// Every group read receipt, as `(message, member)`.
    pub group_acks: Vec<(String, String)>,
    /// The account's roster: every linked device with its keys, by device
    /// id.
    pub roster: Vec<RosterEntry>,
}

impl Engine {
    /// A page of the conversation list: pinned first, then by last activity.
    pub fn conversations(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<ConversationRow>, StoreError> {
        self.store.conversation_list(offset, limit)
    }

    /// One conversation, listed or not.
    pub fn conversation(&self, id: &ConversationId) -> Result<Option<ConversationRow>, StoreError> {
        self.store.conversation(&id.key())
    }

    /// A page of a conversation's messages, newest first, before the
    /// `(sent_at_ms, id)` position `before` when given.
    pub fn messages(
        &self,
        conversation: &ConversationId,
        before: Option<(i64, &MessageId)>,
        limit: usize,
    ) -> Result<Vec<MessageView>, StoreError> {
        self.store.messages(
            &conversation.key(),
            before.map(|(at, id)| (at, id.as_str())),
            limit,
        )
    }

    /// One message, unless unknown or deleted for this account.
    pub fn message(&self, id: &MessageId) -> Result<Option<MessageView>, StoreError> {
        self.store.message(id.as_str())
    }

    /// Every contact entry, in any [`ContactStatus`](crate::ContactStatus)
    /// (`requested`, `pending` or `friend`), by user id.
    pub fn contacts(&self) -> Result<Vec<ContactRow>, StoreError> {
        self.store.contacts()
    }

    /// Every blocked user, by user id.
    pub fn blocklist(&self) -> Result<Vec<BlockedRow>, StoreError> {
        self.store.blocklist()
    }

    /// Every group this account knows, as a member or an applicant (the
    /// row's `state`), by id.
    pub fn groups(&self) -> Result<Vec<GroupRow>, StoreError> {
        self.store.groups()
    }

    /// One group, or `None` if this account does not know it (never joined,
    /// left, or dissolved).
    pub fn group(&self, id: &GroupId) -> Result<Option<GroupRow>, StoreError> {
        self.store.group(id.as_str())
    }

    /// The group's members muted at `now_ms` (the app's clock), by user id;
    /// empty for a group this account does not know. A mute whose time has
    /// come is over: nobody has to lift it.
    pub fn muted_members(&self, id: &GroupId, now_ms: i64) -> Result<Vec<GroupMember>, StoreError> {
        Ok(self
            .group(id)?
            .map(|g| {
                g.members
                    .into_iter()
                    .filter(|m| m.is_muted_at(now_ms))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Every thread this account takes part in, by id.
    pub fn threads(&self) -> Result<Vec<ThreadRow>, StoreError> {
        self.store.threads()
    }

    /// The group members who have read a message (group read receipts),
    /// by user id: those who read it or a later message of its
    /// conversation. Their number is the message's read count.
    pub fn group_read_by(&self, message: &MessageId) -> Result<Vec<String>, StoreError> {
        self.store.group_read_by(message.as_str())
    }

    /// The messages pinned in a conversation, by message id (pins of
    /// messages not known here yet included).
    pub fn pinned_messages(
        &self,
        conversation: &ConversationId,
    ) -> Result<Vec<PinnedMessage>, StoreError> {
        self.store.pinned_messages(&conversation.key())
    }

    /// The conversation's do-not-disturb mode ([`DoNotDisturb::OFF`] for
    /// one never set).
    pub fn do_not_disturb(
        &self,
        conversation: &ConversationId,
    ) -> Result<DoNotDisturb, StoreError> {
        Ok(self
            .conversation(conversation)?
            .map_or(DoNotDisturb::OFF, |c| c.settings.do_not_disturb))
    }

    /// Which of the conversation's messages notify at `now_ms` (ms since
    /// the Unix epoch, the app's clock): none while a quiet time holds,
    /// else the mode's remind type. The engine reads no clock, so a quiet
    /// time ends by itself for whoever asks after it.
    pub fn remind_type_at(
        &self,
        conversation: &ConversationId,
        now_ms: i64,
    ) -> Result<RemindType, StoreError> {
        Ok(self.do_not_disturb(conversation)?.remind_at(now_ms))
    }

    /// Whether do-not-disturb keeps anything of the conversation quiet at
    /// `now_ms`: [`Engine::remind_type_at`] is not [`RemindType::All`].
    pub fn do_not_disturb_in_force(
        &self,
        conversation: &ConversationId,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.do_not_disturb(conversation)?.in_force_at(now_ms))
    }

    /// Everything the app can see, in a stable order.
    pub fn state(&self) -> Result<AccountState, StoreError> {
        Ok(AccountState {
            conversations: self.store.all_conversations()?,
            messages: self.store.message_log()?,
            contacts: self.store.contacts()?,
            blocklist: self.store.blocklist()?,
            groups: self.store.groups()?,
            threads: self.store.threads()?,
            pinned_messages: self.store.all_pinned_messages()?,
            group_acks: self.store.group_acks()?,
            roster: self.roster()?,
        })
    }

    /// The account document's heads, sorted, as hex: equal on two devices
    /// exactly when their documents hold the same changes. Loads the
    /// document if no operation or merge has yet.
    pub fn doc_heads(&self) -> Result<Vec<String>, LoadError> {
        Ok(self.doc()?.heads().iter().map(|h| h.to_string()).collect())
    }
}
