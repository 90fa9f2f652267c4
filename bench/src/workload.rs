//! Workloads with fixed seeds, realistic message bodies, and the relay and
//! device plumbing every scenario shares.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use tandem_engine::model::*;
use tandem_engine::op::*;
use tandem_engine::{AccountId, Config, Engine, Platform, SeededEntropy, StorePath};
use tandem_online::{Backoff, OnlineConfig, OnlineDevice, Status};
use tandem_relay::harness::{self, LoopbackRelay};
use tandem_relay::secret::Secret;
use tandem_relay::StoreLocation;

/// The account every scenario's devices belong to.
pub const ACCOUNT: &str = "alice";

/// How long any wait for the relay or a device may take before the bench
/// gives up on the scenario (a broken run, not a slow one).
pub const WAIT: Duration = Duration::from_secs(300);

/// A small deterministic generator (splitmix64): fixed seeds give the same
/// workload on every run and machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
}

const WORDS: &[&str] = &[
    "ok",
    "yes",
    "no",
    "maybe",
    "tomorrow",
    "tonight",
    "meeting",
    "lunch",
    "coffee",
    "the",
    "a",
    "and",
    "but",
    "so",
    "I",
    "you",
    "we",
    "they",
    "think",
    "know",
    "see",
    "let's",
    "call",
    "later",
    "sorry",
    "thanks",
    "great",
    "sounds",
    "good",
    "running",
    "late",
    "at",
    "station",
    "office",
    "home",
    "train",
    "bus",
    "delayed",
    "again",
    "photos",
    "from",
    "weekend",
    "trip",
    "send",
    "me",
    "the",
    "link",
    "please",
    "did",
    "review",
    "PR",
    "deploy",
    "failed",
    "fixed",
    "it",
    "now",
    "can",
    "we",
    "move",
    "standup",
    "to",
    "10:30",
    "happy",
    "birthday",
    "🎉",
    "👍",
    "😂",
    "❤️",
    "café",
    "naïve",
    "Grüße",
    "привет",
    "日本語",
    "こんにちは",
    "ok👌",
    "haha",
    "lol",
    "brb",
    "what",
    "time",
    "is",
    "dinner",
    "on",
    "Friday",
    "Saturday",
    "bring",
    "charger",
    "forgot",
    "keys",
    "window",
    "open",
    "invoice",
    "attached",
    "budget",
    "numbers",
    "look",
    "off",
    "by",
    "about",
    "10%",
    "ticket",
    "#4521",
    "closed",
    "reopened",
    "ping",
    "when",
    "you're",
    "free",
    "kids",
    "school",
    "pick",
    "up",
    "groceries",
    "milk",
    "eggs",
    "bread",
    "rain",
    "umbrella",
    "flight",
    "lands",
    "gate",
    "B12",
    "boarding",
    "traffic",
    "parking",
    "garage",
    "level",
    "3",
    "password",
    "reset",
    "email",
    "calendar",
    "invite",
    "declined",
    "accepted",
];

/// A message body of 20 to 400 bytes of varied words (ASCII and not).
pub fn body(rng: &mut Rng) -> String {
    let target = rng.range(20, 400);
    let mut text = String::with_capacity(target + 16);
    while text.len() < target {
        if !text.is_empty() {
            text.push(if rng.below(12) == 0 { '\n' } else { ' ' });
        }
        text.push_str(WORDS[rng.below(WORDS.len())]);
    }
    // Cut back to the target on a character boundary.
    let mut end = target.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

pub fn user(n: usize) -> UserId {
    UserId::new(format!("user{n}")).expect("a valid id")
}

pub fn group(n: usize) -> GroupId {
    GroupId::new(format!("grp{n}")).expect("a valid id")
}

/// Conversation `n` of `count`: one in six is a group's.
pub fn conversation(n: usize) -> ConversationId {
    if n % 6 == 5 {
        format!("g:grp{}", n / 6).parse().expect("a valid id")
    } else {
        format!("u:user{n}").parse().expect("a valid id")
    }
}

/// An incoming message from the conversation's peer.
pub fn incoming(id: String, conversation: &ConversationId, sent_at_ms: i64, rng: &mut Rng) -> Op {
    let sender = match conversation.key().strip_prefix("u:") {
        Some(peer) => peer.to_owned(),
        None => format!("member{}", rng.below(50)),
    };
    Op::Message(MessageOp::Ingest {
        message: IncomingMessage {
            id: MessageId::new(id).expect("a valid id"),
            conversation: conversation.clone(),
            sender: UserId::new(sender).expect("a valid id"),
            sent_at_ms,
            body: body(rng),
        },
    })
}

/// The B1 workload: `messages` messages (mostly incoming, some sent),
/// `markers` read markers and `other` contact, group and conversation
/// operations, interleaved as a real account's history would be.
pub fn catch_up_ops(seed: u64, messages: usize, markers: usize, other: usize) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    let conversations = (messages / 25).clamp(6, 300);
    let mut latest: Vec<Option<MessageId>> = vec![None; conversations];
    let mut contacts = 0usize;
    let mut groups = 0usize;
    let mut left = [messages, markers, other];
    let mut ops = Vec::with_capacity(messages + markers + other);
    let mut at = 1_700_000_000_000i64;
    let mut message_n = 0usize;
    while left.iter().any(|n| *n > 0) {
        at += rng.range(1, 5_000) as i64;
        let total: usize = left.iter().sum();
        let mut pick = rng.below(total);
        let mut kind = 0;
        while pick >= left[kind] {
            pick -= left[kind];
            kind += 1;
        }
        // A read marker needs a message in its conversation first.
        if kind == 1 && latest.iter().all(Option::is_none) {
            kind = if left[0] > 0 { 0 } else { 2 };
        }
        left[kind] -= 1;
        let c = rng.below(conversations);
        let op = match kind {
            0 => {
                if rng.below(7) == 0 {
                    Op::Message(MessageOp::Send {
                        conversation: conversation(c),
                        body: body(&mut rng),
                    })
                } else {
                    message_n += 1;
                    let id = MessageId::new(format!("m{message_n}")).expect("a valid id");
                    latest[c] = Some(id.clone());
                    incoming(id.as_str().to_owned(), &conversation(c), at, &mut rng)
                }
            }
            1 => {
                let c = (0..conversations)
                    .map(|i| (c + i) % conversations)
                    .find(|i| latest[*i].is_some())
                    .expect("some conversation has a message");
                Op::Conversation(ConversationOp::MarkRead {
                    conversation: conversation(c),
                    message: latest[c].clone().expect("checked"),
                })
            }
            _ => other_op(&mut rng, c, &mut contacts, &mut groups),
        };
        ops.push(op);
    }
    ops
}

/// One contact, group or conversation operation that is valid after the
/// ones before it.
fn other_op(rng: &mut Rng, c: usize, contacts: &mut usize, groups: &mut usize) -> Op {
    let conversation = conversation(c);
    match rng.below(20) {
        0..=3 => {
            *contacts += 1;
            Op::Contact(ContactOp::Accept {
                user: user(*contacts),
            })
        }
        4..=5 if *contacts > 0 => Op::Contact(ContactOp::SetRemark {
            user: user(rng.range(1, *contacts)),
            remark: body(rng).chars().take(20).collect(),
        }),
        6 => Op::Contact(ContactOp::Block {
            user: UserId::new(format!("spam{}", rng.below(1_000))).expect("a valid id"),
        }),
        7..=8 if *groups > 0 => Op::Group(GroupOp::Invite {
            group: group(rng.range(1, *groups)),
            users: (0..rng.range(1, 5))
                .map(|_| user(rng.range(1, 5_000)))
                .collect(),
        }),
        9 if *groups > 0 => Op::Group(GroupOp::UpdateInfo {
            group: group(rng.range(1, *groups)),
            update: GroupInfoUpdate {
                name: Some(body(rng).chars().take(24).collect()),
                description: None,
                announcement: rng.below(2).eq(&0).then(|| body(rng)),
            },
        }),
        4..=9 => {
            *groups += 1;
            Op::Group(GroupOp::Create {
                group: group(*groups),
                name: format!("group {}", *groups),
                members: (0..rng.range(3, 20))
                    .map(|_| user(rng.range(1, 5_000)))
                    .collect(),
            })
        }
        10..=12 => Op::Conversation(ConversationOp::Pin { conversation }),
        13 => Op::Conversation(ConversationOp::Unpin { conversation }),
        14..=16 => Op::Conversation(ConversationOp::AddMark {
            conversation,
            mark: ["work", "family", "todo", "starred"][rng.below(4)].into(),
        }),
        _ => Op::Conversation(ConversationOp::SetDoNotDisturb {
            conversation,
            enabled: rng.below(2) == 0,
        }),
    }
}

pub fn account() -> AccountId {
    AccountId::new(ACCOUNT).expect("a valid account")
}

/// Opens (creating) a device of the bench account with id `[n; 16]`.
pub fn open_engine(store: StorePath, n: u8) -> anyhow::Result<Engine> {
    let config = Config {
        store,
        account: account(),
        device_name: format!("bench device {n}"),
        platform: Platform::Linux,
    };
    Engine::open(
        config,
        now_ms(),
        Box::new(SeededEntropy::starting_with(&[n; 16], n.into())),
    )
    .context("opening a bench device")
}

/// Removes a SQLite file and its WAL companions, if present.
pub fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A relay on a loopback port with its store at `store`, served on the
/// current tokio runtime by the relay's shared harness.
pub async fn start_relay(store: StoreLocation) -> anyhow::Result<LoopbackRelay> {
    let config = harness::loopback(store, Secret::from_bytes([42; 32]), 0);
    LoopbackRelay::start(config)
        .await
        .context("starting the bench relay")
}

/// An engine online with the relay at `addr` (`host:port`), logging in
/// with `token` (a login token, single use: one per device).
pub fn online(engine: Engine, addr: String, token: String) -> anyhow::Result<OnlineDevice> {
    Ok(OnlineDevice::spawn(
        engine,
        OnlineConfig {
            backoff: Backoff {
                initial_ms: 20,
                max_ms: 500,
            },
            ..OnlineConfig::new(addr).with_login_token(token)
        },
    )?)
}

/// Waits until `check` holds for the device's status.
pub async fn wait_status(
    device: &OnlineDevice,
    what: &str,
    check: impl Fn(&Status) -> bool,
) -> anyhow::Result<()> {
    let mut status = device.status();
    let reached = tokio::time::timeout(WAIT, status.wait_for(|s| check(s)))
        .await
        .is_ok_and(|r| r.is_ok());
    match reached {
        true => Ok(()),
        false => anyhow::bail!(
            "timed out waiting for {what}; status {:?}",
            device.status().borrow()
        ),
    }
}
