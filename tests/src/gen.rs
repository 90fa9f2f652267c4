//! Random operations of every kind of the table, over a small universe.
//!
//! The kinds are the rows of [`crate::every_op`]; the universe is small so
//! that operations made on different devices touch the same entities and
//! their merges are actually tested.
//!
//! The generator does not look at any device's state: it may produce an
//! operation the device refuses (a remark for a non-contact, a read marker
//! on an unknown message). Callers tolerate refusals, which is itself a
//! property: a refusal changes nothing.

use tandem_engine::model::*;
use tandem_engine::op::*;

use crate::choice::Choices;
use crate::every_op::KINDS;

pub const ACCOUNT: &str = "alice";
pub const USERS: [&str; 5] = ["bob", "carol", "dave", "erin", "frank"];
pub const GROUPS: [&str; 3] = ["g1", "g2", "g3"];
pub const THREADS: [&str; 2] = ["t1", "t2"];
pub const MARKS: [&str; 2] = ["work", "family"];
pub const CONVERSATIONS: [&str; 7] = [
    "u:bob", "u:carol", "u:dave", "g:g1", "g:g2", "t:t1", "r:lobby",
];
const TEXTS: [&str; 4] = [
    "",
    "hi",
    "h\u{e9}llo \u{2603}",
    "a longer text, with spaces",
];
const ATTRIBUTE_KEYS: [&str; 2] = ["nick", "role"];

/// Messages the IM service can deliver: `m0` … `m{MESSAGE_POOL - 1}`.
pub const MESSAGE_POOL: usize = 24;

/// A message known to exist somewhere (ingested or sent), with its
/// conversation: what read markers, receipts and recalls can name.
pub type KnownMessage = (MessageId, ConversationId);

pub fn user(id: &str) -> UserId {
    UserId::new(id).expect("a valid user id")
}

pub fn group(id: &str) -> GroupId {
    GroupId::new(id).expect("a valid group id")
}

pub fn thread(id: &str) -> ThreadId {
    ThreadId::new(id).expect("a valid thread id")
}

pub fn conversation(id: &str) -> ConversationId {
    id.parse().expect("a valid conversation id")
}

/// Message `n` of the pool, always with the same content: the IM service
/// delivers one message identically to every device, so two devices that
/// ingest it must store it once. Pairs of messages share a timestamp, so
/// ties between read markers are exercised too. `time_base_ms` places the
/// pool on the harness's clock: message times then interleave with the
/// times devices stamp on their own operations (sends, clear points).
pub fn incoming(n: usize, time_base_ms: i64) -> IncomingMessage {
    let conv = CONVERSATIONS[n % CONVERSATIONS.len()];
    let sender = match conversation(conv) {
        ConversationId::User(u) => u,
        _ => user(USERS[n % USERS.len()]),
    };
    IncomingMessage {
        id: MessageId::new(format!("m{n}")).expect("a valid message id"),
        conversation: conversation(conv),
        sender,
        sent_at_ms: time_base_ms + (n as i64 / 2) * MESSAGE_SPACING_MS,
        body: format!("text of m{n}"),
    }
}

/// Time between two pairs of pool messages.
pub const MESSAGE_SPACING_MS: i64 = 2_000;

/// The generator's memory: where the message pool sits in time, and which
/// messages exist somewhere (ingested or sent), for operations that name
/// one.
#[derive(Debug, Clone, Default)]
pub struct Gen {
    pub time_base_ms: i64,
    pub known: Vec<KnownMessage>,
}

impl Gen {
    pub fn new(time_base_ms: i64) -> Gen {
        Gen {
            time_base_ms,
            known: Vec::new(),
        }
    }

    /// One random operation of any kind.
    pub fn op(&self, ch: &mut impl Choices) -> Op {
        op(ch, &self.known, self.time_base_ms)
    }

    /// Notes the message a performed operation created, if any.
    pub fn performed(&mut self, op: &Op, sent: Option<&MessageId>) {
        if let Some(known) = created(op, sent) {
            if !self.known.contains(&known) {
                self.known.push(known);
            }
        }
    }
}

/// The messages an operation creates, to add to the known ones once it was
/// performed (`sent` is the id the engine gave a sent message).
pub fn created(op: &Op, sent: Option<&MessageId>) -> Option<KnownMessage> {
    match op {
        Op::Message(MessageOp::Ingest { message }) => {
            Some((message.id.clone(), message.conversation.clone()))
        }
        Op::Message(MessageOp::Send { conversation, .. }) => {
            Some((sent?.clone(), conversation.clone()))
        }
        _ => None,
    }
}

/// One random operation of any kind of [`KINDS`], naming `known`
/// messages. Kinds are drawn by their weight.
pub fn op(ch: &mut impl Choices, known: &[KnownMessage], time_base_ms: i64) -> Op {
    let total: u64 = KINDS.iter().map(|k| k.weight).sum();
    let mut pick = ch.below(total);
    let kind = KINDS
        .iter()
        .position(|k| {
            let hit = pick < k.weight;
            pick = pick.saturating_sub(k.weight);
            hit
        })
        .expect("the pick is below the total weight");
    op_of_kind(ch, kind, known, time_base_ms)
}

/// An operation of kind `KINDS[kind]`.
pub fn op_of_kind(
    ch: &mut impl Choices,
    kind: usize,
    known: &[KnownMessage],
    time_base_ms: i64,
) -> Op {
    let mut below = |n: u64| ch.below(n);
    let mut draw = Draw {
        below: &mut below,
        known,
        time_base_ms,
    };
    (KINDS[kind].random)(&mut draw)
}

/// What the random operations of [`KINDS`] are drawn from: the choices,
/// the small universe, and the messages known to exist.
pub struct Draw<'a> {
    below: &'a mut dyn FnMut(u64) -> u64,
    known: &'a [KnownMessage],
    time_base_ms: i64,
}

impl Draw<'_> {
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        (self.below)(n)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    pub fn user(&mut self) -> UserId {
        user(self.pick(&USERS))
    }

    /// One to three users, perhaps the same one twice.
    pub fn users(&mut self) -> Vec<UserId> {
        let count = 1 + self.below(3) as usize;
        (0..count).map(|_| self.user()).collect()
    }

    pub fn group(&mut self) -> GroupId {
        group(self.pick(&GROUPS))
    }

    pub fn thread(&mut self) -> ThreadId {
        thread(self.pick(&THREADS))
    }

    pub fn conversation(&mut self) -> ConversationId {
        conversation(self.pick(&CONVERSATIONS))
    }

    pub fn text(&mut self) -> String {
        self.pick(&TEXTS).to_owned()
    }

    pub fn mark(&mut self) -> String {
        self.pick(&MARKS).to_owned()
    }

    /// A time near the message pool's, before or after it.
    pub fn time_ms(&mut self) -> i64 {
        self.time_base_ms + self.below(120_000) as i64 - 60_000
    }

    pub fn attribute_key(&mut self) -> String {
        self.pick(&ATTRIBUTE_KEYS).to_owned()
    }

    /// A message of the pool, as the IM service delivers it.
    pub fn pool_message(&mut self) -> IncomingMessage {
        incoming(self.below(MESSAGE_POOL as u64) as usize, self.time_base_ms)
    }

    /// A known message or (rarely, or when none is known) one from the
    /// pool that may not have arrived yet.
    pub fn message(&mut self) -> KnownMessage {
        if self.known.is_empty() || self.below(10) == 0 {
            let m = self.pool_message();
            (m.id, m.conversation)
        } else {
            self.known[self.below(self.known.len() as u64) as usize].clone()
        }
    }
}
