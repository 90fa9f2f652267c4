//! The things a user's IM state is made of, with validated ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::limits::ID_BYTES_MAX;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must be 1 to {ID_BYTES_MAX} bytes without control characters, got {value:?}")]
pub struct InvalidId {
    /// What the string was meant to be (`a user id`, `a group id`…), for the
    /// message.
    pub kind: &'static str,
    /// The string refused.
    pub value: String,
}

fn check_id(kind: &'static str, value: &str) -> Result<(), InvalidId> {
    // Control characters are refused because the document joins ids with
    // U+001F inside map keys.
    if value.is_empty() || value.len() > ID_BYTES_MAX || value.chars().any(char::is_control) {
        return Err(InvalidId {
            kind,
            value: value.to_owned(),
        });
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an id.
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                check_id($kind, &value)?;
                Ok($name(value))
            }

            /// The id as text, exactly as it was given.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, InvalidId> {
                $name::new(value)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(value: &str) -> Result<Self, InvalidId> {
                $name::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// Another user (a contact, a group member, a message sender).
    UserId,
    "a user id"
);
string_id!(
    /// A group, as the IM service names it.
    GroupId,
    "a group id"
);
string_id!(
    /// A thread inside a group.
    ThreadId,
    "a thread id"
);
string_id!(
    /// A message, unique within the account.
    MessageId,
    "a message id"
);
string_id!(
    /// A chat room, as the IM service names it.
    RoomId,
    "a room id"
);

/// A conversation: with one user, in a group, in a thread, or in a chat
/// room. Its text form is `u:<user>`, `g:<group>`, `t:<thread>` or
/// `r:<room>`, which is also how it is serialized.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ConversationId {
    /// A one-to-one conversation with another user: `u:<user>`.
    User(UserId),
    /// A group's conversation: `g:<group>`.
    Group(GroupId),
    /// A thread's conversation: `t:<thread>`.
    Thread(ThreadId),
    /// A chat room's conversation: `r:<room>`. Its messages and read state
    /// sync like any other conversation's; the account document has no
    /// membership for rooms (the IM service keeps who is in one).
    Room(RoomId),
}

impl ConversationId {
    /// The stable text form, used as the key in the store and the document.
    pub fn key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConversationId::User(id) => write!(f, "u:{id}"),
            ConversationId::Group(id) => write!(f, "g:{id}"),
            ConversationId::Thread(id) => write!(f, "t:{id}"),
            ConversationId::Room(id) => write!(f, "r:{id}"),
        }
    }
}

impl fmt::Debug for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Why a string is not a conversation id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidConversationId {
    /// The string does not start with `u:`, `g:`, `t:` or `r:`, so it names no
    /// kind of conversation.
    #[error(
        "{value:?} is not a conversation id: write u:<user> for a user, \
         g:<group> for a group, t:<thread> for a thread or r:<room> for a chat room"
    )]
    NoKind {
        /// The string refused.
        value: String,
    },
    /// The kind is known, but the id after it is not valid.
    #[error("{value:?} is not a conversation id: {source}")]
    Id {
        /// The string refused.
        value: String,
        /// What is wrong with the id after the prefix.
        source: InvalidId,
    },
}

impl TryFrom<String> for ConversationId {
    type Error = InvalidConversationId;
    fn try_from(value: String) -> Result<Self, InvalidConversationId> {
        value.parse()
    }
}

impl From<ConversationId> for String {
    fn from(value: ConversationId) -> String {
        value.to_string()
    }
}

impl FromStr for ConversationId {
    type Err = InvalidConversationId;

    fn from_str(s: &str) -> Result<Self, InvalidConversationId> {
        let id = |source| InvalidConversationId::Id {
            value: s.to_owned(),
            source,
        };
        match s.split_once(':') {
            Some(("u", rest)) => Ok(ConversationId::User(rest.parse().map_err(id)?)),
            Some(("g", rest)) => Ok(ConversationId::Group(rest.parse().map_err(id)?)),
            Some(("t", rest)) => Ok(ConversationId::Thread(rest.parse().map_err(id)?)),
            Some(("r", rest)) => Ok(ConversationId::Room(rest.parse().map_err(id)?)),
            _ => Err(InvalidConversationId::NoKind {
                value: s.to_owned(),
            }),
        }
    }
}

/// A message as it arrives from the IM service, to be ingested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingMessage {
    /// The message's id, as the IM service gave it. Ingesting the same id again
    /// changes nothing.
    pub id: MessageId,
    /// The conversation the message belongs to.
    pub conversation: ConversationId,
    /// Who sent it. A message whose sender is the account itself never counts
    /// as unread.
    pub sender: UserId,
    /// When it was sent, in ms since the Unix epoch by the IM service's clock.
    /// It orders the conversation and is compared with read markers and with
    /// the time a conversation was deleted.
    pub sent_at_ms: i64,
    /// The message text, at most
    /// [`MESSAGE_BODY_BYTES_MAX`](crate::limits::MESSAGE_BODY_BYTES_MAX) bytes.
    pub body: String,
}

/// A receipt the other party sent for a message. Receipts only move
/// forward: none < delivered < read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerReceipt {
    /// The message reached the other party.
    Delivered,
    /// The other party read the message, which implies it was delivered.
    Read,
}

impl From<PeerReceipt> for tandem_storage::device::Receipt {
    fn from(value: PeerReceipt) -> Self {
        match value {
            PeerReceipt::Delivered => tandem_storage::device::Receipt::Delivered,
            PeerReceipt::Read => tandem_storage::device::Receipt::Read,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_ids_round_trip_through_text() {
        for text in ["u:bob", "g:team", "t:plans:2024", "r:lobby"] {
            assert_eq!(text.parse::<ConversationId>().unwrap().to_string(), text);
        }
        for bad in ["bob", "x:bob", "u:", "u:a\u{1f}b", "r:", "R:lobby"] {
            assert!(bad.parse::<ConversationId>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_conversation_id_without_its_kind_says_so() {
        for bad in ["bob", "", "x:bob", "U:bob", ":bob", "user:bob"] {
            let error = bad.parse::<ConversationId>().unwrap_err();
            assert_eq!(
                error,
                InvalidConversationId::NoKind {
                    value: bad.to_owned()
                }
            );
            let text = error.to_string();
            for form in ["u:<user>", "g:<group>", "t:<thread>", "r:<room>"] {
                assert!(text.contains(form), "{text}");
            }
            assert!(!text.contains("bytes"), "not a length problem: {text}");
        }
        // With a known kind, the id after it is what is wrong.
        let long = format!("u:{}", "a".repeat(ID_BYTES_MAX + 1));
        for bad in ["u:", long.as_str(), "g:a\u{1f}b"] {
            let error = bad.parse::<ConversationId>().unwrap_err();
            assert!(
                matches!(&error, InvalidConversationId::Id { value, .. } if value == bad),
                "{error:?}"
            );
            assert!(error.to_string().contains("bytes"), "{error}");
        }
        let at_limit = format!("t:{}", "a".repeat(ID_BYTES_MAX));
        assert!(at_limit.parse::<ConversationId>().is_ok());
    }

    #[test]
    fn id_length_limit() {
        assert!(UserId::new("a".repeat(ID_BYTES_MAX)).is_ok());
        assert!(UserId::new("a".repeat(ID_BYTES_MAX + 1)).is_err());
        assert!(UserId::new("").is_err());
    }
}
