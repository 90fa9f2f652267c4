//! Ids at the boundary: text in the bindings, validated into the engine's id types.
//!
//! Every id crosses as a string in the form the engine's JSON uses (a user
//! id as given, a conversation as `u:<user>`, `g:<group>`, `t:<thread>` or
//! `r:<room>`, a device as 32 lowercase hex characters). A string that is
//! not a valid id is refused with the error's `InvalidId` variant before
//! the engine is called.

use tandem_engine::model::{ConversationId, GroupId, MessageId, ThreadId, UserId};
use tandem_engine::{AccountId, DeviceId};

/// A string refused as an id: what it was meant to be, the string, and the
/// engine's explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadId {
    /// What the string was meant to be (`a user id`, `a device id`…).
    pub kind: &'static str,
    /// The string refused.
    pub value: String,
    /// Why, in words.
    pub details: String,
}

fn bad(kind: &'static str, value: &str, error: impl std::fmt::Display) -> BadId {
    BadId {
        kind,
        value: value.to_owned(),
        details: error.to_string(),
    }
}

pub(crate) fn user(value: &str) -> Result<UserId, BadId> {
    UserId::new(value).map_err(|e| bad("a user id", value, e))
}

pub(crate) fn users(values: &[String]) -> Result<Vec<UserId>, BadId> {
    values.iter().map(|v| user(v)).collect()
}

pub(crate) fn group(value: &str) -> Result<GroupId, BadId> {
    GroupId::new(value).map_err(|e| bad("a group id", value, e))
}

pub(crate) fn thread(value: &str) -> Result<ThreadId, BadId> {
    ThreadId::new(value).map_err(|e| bad("a thread id", value, e))
}

pub(crate) fn message(value: &str) -> Result<MessageId, BadId> {
    MessageId::new(value).map_err(|e| bad("a message id", value, e))
}

pub(crate) fn messages(values: &[String]) -> Result<Vec<MessageId>, BadId> {
    values.iter().map(|v| message(v)).collect()
}

pub(crate) fn conversation(value: &str) -> Result<ConversationId, BadId> {
    value
        .parse()
        .map_err(|e| bad("a conversation id", value, e))
}

pub(crate) fn account(value: &str) -> Result<AccountId, BadId> {
    AccountId::new(value).map_err(|e| bad("an account id", value, e))
}

pub(crate) fn device(value: &str) -> Result<DeviceId, BadId> {
    value.parse().map_err(|e| bad("a device id", value, e))
}

/// Lowercase hex, two characters a byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_engine::limits::ID_BYTES_MAX;

    #[test]
    fn ids_at_their_length_limit_pass_and_one_byte_more_is_refused() {
        let at = "a".repeat(ID_BYTES_MAX);
        let over = "a".repeat(ID_BYTES_MAX + 1);
        assert!(user(&at).is_ok());
        let refused = user(&over).unwrap_err();
        assert_eq!(refused.kind, "a user id");
        assert_eq!(refused.value, over);
        assert!(group("").is_err());
        assert!(thread("a\u{1f}b").is_err());
        assert!(message(&at).is_ok());
    }

    #[test]
    fn a_conversation_without_its_kind_says_which_forms_exist() {
        let refused = conversation("bob").unwrap_err();
        assert_eq!(refused.kind, "a conversation id");
        assert!(refused.details.contains("u:<user>"), "{}", refused.details);
        assert_eq!(conversation("g:team").unwrap().to_string(), "g:team");
    }

    #[test]
    fn device_ids_are_32_hex_characters() {
        let id = "01".repeat(16);
        assert_eq!(device(&id).unwrap().to_hex(), id);
        assert!(device(&"01".repeat(15)).is_err());
        assert!(device(&format!("{}0", id)).is_err());
        assert!(device(&"zz".repeat(16)).is_err());
        assert_eq!(hex(&[0, 0xab, 0xff]), "00abff");
    }
}
