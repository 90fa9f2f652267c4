//! Every operation kind of the table, end to end and against snapshots.
//!
//! Each row of `tandem_tests::every_op` reaches another device and is
//! journaled there under the origin device, its event and encoded delta
//! match committed snapshots, and the table has a row for every variant of
//! every operation enum.
//!
//! The delta wire format and the events' JSON form are boundaries: an
//! accidental change (a reordered variant, a renamed field) fails here
//! instead of breaking devices in the field. After a deliberate change
//! (with a new `DELTA_FORMAT` for deltas), regenerate with
//! `UPDATE_SNAPSHOTS=1 cargo test -p tandem-tests --test every_op`.

use tandem_engine::delta::*;
use tandem_engine::event::*;
use tandem_engine::op::*;
use tandem_engine::*;
use tandem_tests::every_op::{every_op, every_op_with_kind, KINDS};
use tandem_tests::fuzz_targets::{
    assert_converged as assert_engines_converged, export_all, memory_engine,
};
use tandem_tests::gen::{op_of_kind, Gen, ACCOUNT};

/// A device with an in-memory store and id `[n; 16]`, and its clock.
struct Device {
    engine: Engine,
    now_ms: i64,
}

impl Device {
    fn memory(n: u8) -> Device {
        Device {
            engine: memory_engine(n),
            now_ms: 1_000,
        }
    }

    /// Performs `op` one millisecond after the device's previous operation.
    fn op(&mut self, op: Op) -> Performed {
        self.now_ms += 1;
        self.engine
            .perform(self.now_ms, op)
            .unwrap_or_else(|e| panic!("operation failed: {e}"))
    }

    fn state(&self) -> AccountState {
        self.engine.state().unwrap()
    }
}

/// Gives `to` every delta `from` holds.
fn send(from: &Device, to: &mut Device) -> Applied {
    to.engine.apply_remote(&export_all(&from.engine)).unwrap()
}

fn assert_converged(devices: [Device; 2]) {
    assert_engines_converged(&devices.map(|d| d.engine));
}

fn category(op: &Op) -> &'static str {
    match op {
        Op::Message(_) => "message",
        Op::Conversation(_) => "conversation",
        Op::Contact(_) => "contact",
        Op::Group(_) => "group",
        Op::Thread(_) => "thread",
        Op::Device(_) => "device",
        _ => unreachable!("the table makes only these"),
    }
}

#[test]
fn every_operation_reaches_the_other_device() {
    let mut a = Device::memory(1);
    let mut b = Device::memory(2);
    let mut journal_seq = 0;
    for (op, kind) in every_op_with_kind() {
        a.op(op.clone());
        send(&a, &mut b);
        let heard = b.engine.events_after(journal_seq, 10).unwrap();
        assert_eq!(heard.len(), 1, "{op:?}");
        assert_eq!(heard[0].kind.category(), category(&op));
        let json = heard[0].to_json_value();
        assert_eq!(
            (
                json["category"].as_str().unwrap(),
                json["op"].as_str().unwrap()
            ),
            kind.event,
            "{}",
            kind.name
        );
        assert!(!heard[0].superseded, "{op:?}");
        assert_eq!(heard[0].source_device, DeviceId([1; 16]));
        assert_eq!(heard[0].made_at_ms, a.now_ms);
        journal_seq = heard[0].seq;
        assert_eq!(a.state(), b.state(), "after {op:?}");
    }
    assert!(
        a.engine.events_after(0, 10).unwrap().is_empty(),
        "local operations are not journaled"
    );
    assert_converged([a, b]);
}

#[test]
fn the_end_state_of_every_operation() {
    let mut a = Device::memory(1);
    for op in every_op() {
        a.op(op);
    }
    let state = a.state();
    let contacts: Vec<_> = state
        .contacts
        .iter()
        .map(|c| (c.user_id.as_str(), c.status, c.remark.as_str()))
        .collect();
    assert_eq!(contacts, [("bob", ContactStatus::Friend, "Bob (work)")]);
    let blocked: Vec<_> = state.blocklist.iter().map(|b| b.user_id.as_str()).collect();
    assert_eq!(blocked, ["mallory"]);
    let groups: Vec<_> = state
        .groups
        .iter()
        .map(|g| (g.id.as_str(), g.state))
        .collect();
    assert_eq!(
        groups,
        [("g1", GroupStanding::Member), ("g4", GroupStanding::Member)]
    );
    let g1 = &state.groups[0];
    assert_eq!(
        (
            g1.name.as_str(),
            g1.description.as_str(),
            g1.announcement.as_str()
        ),
        ("Core team", "The core", "Ship it")
    );
    assert_eq!(g1.owner, "bob");
    assert!(!g1.mute_all && !g1.messages_blocked);
    assert!(g1.banned.is_empty() && g1.allowed.is_empty());
    let members: Vec<_> = g1
        .members
        .iter()
        .map(|m| (m.user_id.as_str(), m.role))
        .collect();
    assert_eq!(
        members,
        [
            (ACCOUNT, MemberRole::Member),
            ("bob", MemberRole::Owner),
            ("carol", MemberRole::Member)
        ]
    );
    assert!(g1.attributes.is_empty(), "set, then removed");
    assert!(!g1.disabled, "disabled, then enabled");
    assert!(g1.invited.is_empty() && g1.applicants.is_empty());
    assert!(state.threads.is_empty());
    let bob = state
        .conversations
        .iter()
        .find(|c| c.id == "u:bob")
        .unwrap();
    assert!(
        bob.settings.do_not_disturb.is_set()
            && !bob.settings.pinned
            && bob.settings.marks.is_empty()
    );
    assert_eq!(bob.unread, 0);
    let carol = state
        .conversations
        .iter()
        .find(|c| c.id == "u:carol")
        .unwrap();
    assert!(!carol.listed, "deleted");
    assert_eq!(
        carol.settings.do_not_disturb,
        DoNotDisturb {
            remind: RemindType::MentionsOnly,
            quiet: Some(QuietTime::Until { until_ms: 9_000 }),
        }
    );
    let carol_id = "u:carol".parse().unwrap();
    assert_eq!(
        a.engine.remind_type_at(&carol_id, 8_999).unwrap(),
        RemindType::None
    );
    assert_eq!(
        a.engine.remind_type_at(&carol_id, 9_000).unwrap(),
        RemindType::MentionsOnly,
        "the quiet time ended by itself"
    );
    let pins: Vec<_> = state
        .pinned_messages
        .iter()
        .map(|(c, p)| (c.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(pins, [("r:lobby", "m5")]);
    let lobby = state
        .conversations
        .iter()
        .find(|c| c.id == "r:lobby")
        .unwrap();
    assert_eq!(
        (lobby.unread, lobby.settings.read_message.as_str()),
        (0, "m5"),
        "clearing all unread reached the room too"
    );
    let m2 = state.messages.iter().find(|m| m.id == "m2").unwrap();
    assert!(m2.recalled);
    let m3 = state.messages.iter().find(|m| m.id == "m3").unwrap();
    assert!(m3.deleted);
}

const EVENTS_SNAPSHOT: &str = "tests/snapshots/events.jsonl";

/// B's events after A performed every operation kind, plus the events that
/// do not come from operations.
fn every_event() -> Vec<Event> {
    let mut a = Device::memory(1);
    let mut b = Device::memory(2);
    for op in every_op() {
        a.op(op);
        send(&a, &mut b);
    }
    let c = DeviceId([3; 16]);
    b.engine
        .record_payload(5_000, DeviceId([1; 16]), [9; 16], b"ping")
        .unwrap();
    for (at, source, event) in [
        (
            5_001,
            DeviceId([1; 16]),
            ConnectionEvent::Kicked {
                reason: "lost phone".into(),
            },
        ),
        (
            5_002,
            DeviceId([2; 16]),
            ConnectionEvent::TooManyDevices {
                text: "4 online".into(),
            },
        ),
        (
            5_003,
            c,
            ConnectionEvent::LoggedInOnNewDevice {
                name: "tablet".into(),
                platform: "android".into(),
            },
        ),
        (5_004, DeviceId([2; 16]), ConnectionEvent::DeviceListChanged),
        (
            5_005,
            DeviceId([2; 16]),
            ConnectionEvent::CatchUpStarted {
                from_seq: 3,
                to_seq: 2_000,
            },
        ),
        (
            5_006,
            DeviceId([2; 16]),
            ConnectionEvent::CatchUpFinished { cursor: 2_000 },
        ),
    ] {
        b.engine.record_connection_event(at, source, event).unwrap();
    }
    b.engine.events_after(0, 1_000).unwrap()
}

#[test]
fn every_event_kind_has_a_stable_json_form() {
    let actual: String = every_event().iter().map(|e| e.to_json() + "\n").collect();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(EVENTS_SNAPSHOT, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(EVENTS_SNAPSHOT).expect("the committed snapshot");
    for (i, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
        assert_eq!(a, e, "event {i} serializes differently");
    }
    assert_eq!(actual.lines().count(), expected.lines().count());
}

#[test]
fn every_event_reads_back_from_its_json_form() {
    let events = every_event();
    for event in &events {
        let json = event.to_json();
        let back = Event::from_json(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(&back, event, "{json}");
        assert_eq!(back.to_json(), json);
    }
    // The committed snapshot reads back too: what an app stored with an
    // earlier build is still an event.
    let stored = std::fs::read_to_string(EVENTS_SNAPSHOT).unwrap();
    assert_eq!(stored.lines().count(), events.len());
    for line in stored.lines() {
        assert_eq!(Event::from_json(line).unwrap().to_json(), line);
    }
    // A superseded event keeps the flag.
    let mut superseded = events[0].clone();
    superseded.superseded = true;
    assert_eq!(Event::from_json(&superseded.to_json()).unwrap(), superseded);
}

#[test]
fn the_contact_ext_is_carried_end_to_end() {
    let events = every_event();
    let with_ext: Vec<_> = events.iter().filter(|e| e.ext.is_some()).collect();
    assert_eq!(with_ext.len(), 1);
    let json = with_ext[0].to_json_value();
    assert_eq!(json["ext"], "renamed from the desk phone");
    assert_eq!(json["op"], "remark_changed");
    assert_eq!(json["remark"], "Bob (work)");
    assert!(
        events[0].to_json_value().get("ext").is_none(),
        "no ext, no field"
    );
    assert!(matches!(
        Event::from_json(&with_ext[0].to_json())
            .unwrap()
            .ext
            .as_deref(),
        Some("renamed from the desk phone")
    ));
}

#[test]
fn json_that_is_not_an_event_is_refused_with_a_reason() {
    let good = every_event()[0].to_json_value();
    let with = |key: &str, value: serde_json::Value| {
        let mut v = good.clone();
        v[key] = value;
        v.to_string()
    };
    let without = |key: &str| {
        let mut v = good.clone();
        v.as_object_mut().unwrap().remove(key);
        v.to_string()
    };
    for (text, expected) in [
        ("not json".to_owned(), "not JSON"),
        ("[1, 2]".to_owned(), "object"),
        (without("seq"), "\"seq\""),
        (without("op"), "\"op\""),
        (with("seq", "one".into()), "\"seq\""),
        (with("source_device", "0101".into()), "\"source_device\""),
        (with("op", "teleported".into()), "teleported"),
        (with("category", "weather".into()), "weather"),
        (with("conversation", 7.into()), "received"),
        (with("ext", 7.into()), "\"ext\""),
    ] {
        let error = Event::from_json(&text).unwrap_err().to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
    // A field this build does not know is passed over: a newer build may
    // add one.
    let newer = with("added_later", 7.into());
    assert_eq!(Event::from_json(&newer).unwrap(), every_event()[0]);
}

#[test]
fn every_event_names_its_category_op_and_source() {
    let events = every_event();
    let ops = every_op().len();
    assert_eq!(events.len(), ops + 7);
    for event in &events[..ops] {
        assert_eq!(event.source_device, DeviceId([1; 16]));
        let json = event.to_json_value();
        assert_eq!(json["category"], event.kind.category());
        assert!(json["op"].is_string(), "{json}");
    }
    let sent = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::Message(MessageEvent::Sent { .. })))
        .unwrap();
    let json = sent.to_json_value();
    assert_eq!(json["conversation"], "u:bob");
    assert_eq!(json["message"], format!("{}.6", DeviceId([1; 16]).to_hex()));
    let kicked = &events[ops + 1];
    assert_eq!(kicked.to_json_value()["op"], "kicked");
    assert_eq!(
        kicked.source_device,
        DeviceId([1; 16]),
        "names the kicking device"
    );
}

#[test]
fn local_operations_make_no_event() {
    let mut a = Device::memory(1);
    for op in every_op() {
        a.op(op);
    }
    assert!(a.engine.pending_events(10).unwrap().is_empty());
}

const DELTAS_SNAPSHOT: &str = "tests/snapshots/deltas.txt";

fn encoded_every_op() -> String {
    let account = AccountId::new(ACCOUNT).unwrap();
    let mut out = String::new();
    for (i, op) in every_op().into_iter().enumerate() {
        let delta = Delta {
            format: DELTA_FORMAT,
            account: account.clone(),
            origin: DeviceId([0xab; 16]),
            origin_seq: i as u64 + 1,
            made_at_ms: 1_700_000_000_000 + i as i64,
            op,
            change: (i % 2 == 0).then(|| vec![1, 2, 3]),
            read_markers: if i % 3 == 0 {
                vec![ReadMarker {
                    conversation: "u:bob".parse().unwrap(),
                    at_ms: 1_700_000_000_000,
                    message: tandem_engine::model::MessageId::new("m1").unwrap(),
                }]
            } else {
                Vec::new()
            },
        };
        let encoded = delta.encode();
        let hex: String = encoded.0.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&hex);
        out.push('\n');
    }
    out
}

#[test]
fn encoded_deltas_match_the_snapshot() {
    let actual = encoded_every_op();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(DELTAS_SNAPSHOT, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(DELTAS_SNAPSHOT).expect("the committed snapshot");
    for (i, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
        assert_eq!(a, e, "delta {i} ({:?}) encodes differently", every_op()[i]);
    }
    assert_eq!(actual.lines().count(), expected.lines().count());
}

#[test]
fn every_encoded_delta_decodes_back() {
    let account = AccountId::new(ACCOUNT).unwrap();
    for (i, op) in every_op().into_iter().enumerate() {
        let delta = Delta {
            format: DELTA_FORMAT,
            account: account.clone(),
            origin: DeviceId([0xab; 16]),
            origin_seq: i as u64 + 1,
            made_at_ms: 5,
            op,
            change: None,
            read_markers: Vec::new(),
        };
        let (decoded, change) = Delta::decode(&delta.encode().0, &account).unwrap();
        assert_eq!(decoded, delta);
        assert!(change.is_none());
    }
}

/// The variants of `Op` and of each category's enum, as postcard numbers
/// them: `[category, variant]` is a variant exactly when its bytes decode
/// or run out (a variant with fields), and not when the variant number is
/// past the enum's end.
fn variants() -> Vec<(u8, u8)> {
    let exists = |bytes: &[u8]| match postcard::from_bytes::<Op>(bytes) {
        Ok(_) | Err(postcard::Error::DeserializeUnexpectedEnd) => true,
        Err(_) => false,
    };
    let mut out = Vec::new();
    for category in 0u8.. {
        if !exists(&[category]) {
            break;
        }
        for variant in 0u8.. {
            if !exists(&[category, variant]) {
                break;
            }
            out.push((category, variant));
        }
    }
    out
}

/// `[category, variant]` of an operation's encoding.
fn variant_of(op: &Op) -> (u8, u8) {
    let bytes = postcard::to_stdvec(op).unwrap();
    (bytes[0], bytes[1])
}

#[test]
fn the_table_has_one_row_for_every_operation_variant() {
    let variants = variants();
    assert!(variants.len() > 40, "probing found {variants:?}");
    let mut rows: Vec<(u8, u8)> = Vec::new();
    for kind in KINDS {
        let examples = (kind.examples)();
        assert!(!examples.is_empty(), "{} has no example", kind.name);
        let variant = variant_of(&examples[0]);
        for op in &examples {
            assert_eq!(variant_of(op), variant, "{}: {op:?}", kind.name);
            let (category, name) = kind.name.split_once("Op::").unwrap();
            assert!(
                format!("{op:?}").starts_with(&format!("{category}({name}")),
                "{} is named after another variant: {op:?}",
                kind.name
            );
        }
        // Random ones are of the same variant.
        let mut rng = tandem_tests::choice::Rng::new(7);
        let gen = Gen::new(1_000);
        for _ in 0..20 {
            let index = tandem_tests::every_op::kind(kind.name);
            let op = op_of_kind(&mut rng, index, &gen.known, gen.time_base_ms);
            assert_eq!(variant_of(&op), variant, "{}: random {op:?}", kind.name);
        }
        assert!(!rows.contains(&variant), "{} has two rows", kind.name);
        rows.push(variant);
    }
    rows.sort_unstable();
    assert_eq!(
        rows, variants,
        "a variant without a row, or a row without a variant"
    );
}
