//! Random operations of every kind over a small universe, so that
//! operations made on different devices touch the same entities and their
//! merges are actually tested.
//!
//! The generator does not look at any device's state: it may produce an
//! operation the device refuses (a remark for a non-contact, a read marker
//! on an unknown message). Callers tolerate refusals, which is itself a
//! property: a refusal changes nothing.

use tandem_engine::model::*;
use tandem_engine::op::*;

use crate::choice::Choices;

pub const ACCOUNT: &str = "alice";
pub const USERS: [&str; 5] = ["bob", "carol", "dave", "erin", "frank"];
pub const GROUPS: [&str; 3] = ["g1", "g2", "g3"];
pub const THREADS: [&str; 2] = ["t1", "t2"];
pub const MARKS: [&str; 2] = ["work", "family"];
pub const CONVERSATIONS: [&str; 6] = ["u:bob", "u:carol", "u:dave", "g:g1", "g:g2", "t:t1"];
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

/// How many kinds of operation [`op`] makes: one per variant of every
/// operation enum.
pub const KINDS: u64 = 59;

/// One random operation of any kind, naming `known` messages.
pub fn op(ch: &mut impl Choices, known: &[KnownMessage], time_base_ms: i64) -> Op {
    // Message and read-state operations are what IM state is mostly made
    // of, so a third of all operations are drawn from them first.
    let kind = if ch.chance(350) {
        ch.below(8)
    } else {
        ch.below(KINDS)
    };
    op_of_kind(ch, kind, known, time_base_ms)
}

/// An operation of kind `kind` (see [`KINDS`]).
pub fn op_of_kind(
    ch: &mut impl Choices,
    kind: u64,
    known: &[KnownMessage],
    time_base_ms: i64,
) -> Op {
    let u = |ch: &mut dyn FnMut(u64) -> u64| user(USERS[ch(USERS.len() as u64) as usize]);
    let mut b = |n: u64| ch.below(n);
    let users = |b: &mut dyn FnMut(u64) -> u64| -> Vec<UserId> {
        let count = 1 + b(3) as usize;
        (0..count)
            .map(|_| user(USERS[b(USERS.len() as u64) as usize]))
            .collect()
    };
    let g = |b: &mut dyn FnMut(u64) -> u64| group(GROUPS[b(GROUPS.len() as u64) as usize]);
    let t = |b: &mut dyn FnMut(u64) -> u64| thread(THREADS[b(THREADS.len() as u64) as usize]);
    let c = |b: &mut dyn FnMut(u64) -> u64| {
        conversation(CONVERSATIONS[b(CONVERSATIONS.len() as u64) as usize])
    };
    let text = |b: &mut dyn FnMut(u64) -> u64| TEXTS[b(TEXTS.len() as u64) as usize].to_owned();
    let mark = |b: &mut dyn FnMut(u64) -> u64| MARKS[b(MARKS.len() as u64) as usize].to_owned();
    // A known message, or (rarely, or when none is known) one from the
    // pool that may not have arrived yet.
    let message = |b: &mut dyn FnMut(u64) -> u64| -> KnownMessage {
        if known.is_empty() || b(10) == 0 {
            let m = incoming(b(MESSAGE_POOL as u64) as usize, time_base_ms);
            (m.id, m.conversation)
        } else {
            known[b(known.len() as u64) as usize].clone()
        }
    };
    match kind {
        0 => Op::Message(MessageOp::Ingest {
            message: incoming(b(MESSAGE_POOL as u64) as usize, time_base_ms),
        }),
        1 => Op::Message(MessageOp::Send {
            conversation: c(&mut b),
            body: text(&mut b),
        }),
        2 => {
            let (message, mut conversation) = message(&mut b);
            // Now and then name the wrong conversation: it must be refused.
            if b(20) == 0 {
                conversation = c(&mut b);
            }
            Op::Conversation(ConversationOp::MarkRead {
                conversation,
                message,
            })
        }
        3 => Op::Conversation(ConversationOp::ClearUnread {
            conversation: c(&mut b),
        }),
        4 => Op::Message(MessageOp::Receipt {
            message: message(&mut b).0,
            receipt: if b(2) == 0 {
                PeerReceipt::Delivered
            } else {
                PeerReceipt::Read
            },
        }),
        5 => Op::Message(MessageOp::Recall {
            message: message(&mut b).0,
        }),
        6 => {
            let count = 1 + b(2) as usize;
            Op::Message(MessageOp::DeleteForMe {
                messages: (0..count).map(|_| message(&mut b).0).collect(),
            })
        }
        7 => Op::Conversation(ConversationOp::ClearAllUnread),
        8 => Op::Conversation(ConversationOp::Pin {
            conversation: c(&mut b),
        }),
        9 => Op::Conversation(ConversationOp::Unpin {
            conversation: c(&mut b),
        }),
        10 => Op::Conversation(ConversationOp::Delete {
            conversation: c(&mut b),
        }),
        11 => Op::Conversation(ConversationOp::AddMark {
            conversation: c(&mut b),
            mark: mark(&mut b),
        }),
        12 => Op::Conversation(ConversationOp::RemoveMark {
            conversation: c(&mut b),
            mark: mark(&mut b),
        }),
        13 => Op::Conversation(ConversationOp::SetDoNotDisturb {
            conversation: c(&mut b),
            enabled: b(2) == 0,
        }),
        14 => Op::Contact(ContactOp::Add {
            user: u(&mut b),
            greeting: text(&mut b),
        }),
        15 => Op::Contact(ContactOp::Accept { user: u(&mut b) }),
        16 => Op::Contact(ContactOp::Decline { user: u(&mut b) }),
        17 => Op::Contact(ContactOp::Remove { user: u(&mut b) }),
        18 => Op::Contact(ContactOp::Block { user: u(&mut b) }),
        19 => Op::Contact(ContactOp::Unblock { user: u(&mut b) }),
        20 => Op::Contact(ContactOp::SetRemark {
            user: u(&mut b),
            remark: text(&mut b),
        }),
        21 => Op::Group(GroupOp::Create {
            group: g(&mut b),
            name: text(&mut b),
            members: if b(3) == 0 { Vec::new() } else { users(&mut b) },
        }),
        22 => Op::Group(GroupOp::Destroy { group: g(&mut b) }),
        23 => Op::Group(GroupOp::Join { group: g(&mut b) }),
        24 => Op::Group(GroupOp::Leave { group: g(&mut b) }),
        25 => Op::Group(GroupOp::Apply {
            group: g(&mut b),
            reason: text(&mut b),
        }),
        26 => Op::Group(GroupOp::AcceptApplication {
            group: g(&mut b),
            user: u(&mut b),
        }),
        27 => Op::Group(GroupOp::DeclineApplication {
            group: g(&mut b),
            user: u(&mut b),
            reason: text(&mut b),
        }),
        28 => Op::Group(GroupOp::Invite {
            group: g(&mut b),
            users: users(&mut b),
        }),
        29 => Op::Group(GroupOp::AcceptInvitation {
            group: g(&mut b),
            inviter: u(&mut b),
        }),
        30 => Op::Group(GroupOp::DeclineInvitation {
            group: g(&mut b),
            inviter: u(&mut b),
            reason: text(&mut b),
        }),
        31 => Op::Group(GroupOp::Kick {
            group: g(&mut b),
            users: users(&mut b),
        }),
        32 => Op::Group(GroupOp::Ban {
            group: g(&mut b),
            users: users(&mut b),
        }),
        33 => Op::Group(GroupOp::Allow {
            group: g(&mut b),
            users: users(&mut b),
        }),
        34 => Op::Group(GroupOp::BlockMessages { group: g(&mut b) }),
        35 => Op::Group(GroupOp::UnblockMessages { group: g(&mut b) }),
        36 => Op::Group(GroupOp::TransferOwner {
            group: g(&mut b),
            new_owner: u(&mut b),
        }),
        37 => Op::Group(GroupOp::AddAdmin {
            group: g(&mut b),
            user: u(&mut b),
        }),
        38 => Op::Group(GroupOp::RemoveAdmin {
            group: g(&mut b),
            user: u(&mut b),
        }),
        39 => Op::Group(GroupOp::Mute {
            group: g(&mut b),
            users: users(&mut b),
            until_ms: 50_000 + b(1_000) as i64 * 100,
        }),
        40 => Op::Group(GroupOp::Unmute {
            group: g(&mut b),
            users: users(&mut b),
        }),
        41 => Op::Group(GroupOp::AddAllowList {
            group: g(&mut b),
            users: users(&mut b),
        }),
        42 => Op::Group(GroupOp::RemoveAllowList {
            group: g(&mut b),
            users: users(&mut b),
        }),
        43 => Op::Group(GroupOp::MuteAll { group: g(&mut b) }),
        44 => Op::Group(GroupOp::UnmuteAll { group: g(&mut b) }),
        45 => {
            let field = |b: &mut dyn FnMut(u64) -> u64| (b(2) == 0).then(|| text(b));
            Op::Group(GroupOp::UpdateInfo {
                group: g(&mut b),
                update: GroupInfoUpdate {
                    name: field(&mut b),
                    description: field(&mut b),
                    announcement: field(&mut b),
                },
            })
        }
        46 => {
            let count = 1 + b(2) as usize;
            Op::Group(GroupOp::SetMemberAttributes {
                group: g(&mut b),
                user: if b(3) == 0 { user(ACCOUNT) } else { u(&mut b) },
                attributes: (0..count)
                    .map(|_| {
                        let key = ATTRIBUTE_KEYS[b(ATTRIBUTE_KEYS.len() as u64) as usize];
                        (key.to_owned(), text(&mut b))
                    })
                    .collect(),
            })
        }
        47 => Op::Thread(ThreadOp::Create {
            thread: t(&mut b),
            group: g(&mut b),
            name: text(&mut b),
        }),
        48 => Op::Thread(ThreadOp::Destroy { thread: t(&mut b) }),
        49 => Op::Thread(ThreadOp::Join {
            thread: t(&mut b),
            group: g(&mut b),
        }),
        50 => Op::Thread(ThreadOp::Leave { thread: t(&mut b) }),
        51 => Op::Thread(ThreadOp::Update {
            thread: t(&mut b),
            name: text(&mut b),
        }),
        52 => Op::Thread(ThreadOp::Kick {
            thread: t(&mut b),
            users: users(&mut b),
        }),
        // The kinds above, once more, for the ones that build state others
        // need: without them most group and contact operations are refused.
        53 => Op::Contact(ContactOp::Accept { user: u(&mut b) }),
        54 => Op::Group(GroupOp::Create {
            group: g(&mut b),
            name: text(&mut b),
            members: users(&mut b),
        }),
        55 => Op::Thread(ThreadOp::Create {
            thread: t(&mut b),
            group: g(&mut b),
            name: text(&mut b),
        }),
        56 => Op::Message(MessageOp::Ingest {
            message: incoming(b(MESSAGE_POOL as u64) as usize, time_base_ms),
        }),
        57 => {
            let (message, conversation) = message(&mut b);
            Op::Conversation(ConversationOp::MarkRead {
                conversation,
                message,
            })
        }
        // 58, the last kind: a contact request arriving from the service.
        _ => Op::Contact(ContactOp::ReceiveRequest {
            user: u(&mut b),
            greeting: text(&mut b),
        }),
    }
}
