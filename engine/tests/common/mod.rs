//! Devices of one account in one process, exchanging deltas by hand.

#![allow(dead_code)]

use tandem_engine::delta::EncodedDelta;
use tandem_engine::model::*;
use tandem_engine::op::*;
use tandem_engine::*;

pub const ACCOUNT: &str = "alice";

pub struct Device {
    pub engine: Engine,
    /// The clock this device's operations are stamped with.
    pub now_ms: i64,
    _dir: Option<tempfile::TempDir>,
}

impl Device {
    /// A device with an in-memory store and id `[n; 16]`.
    pub fn memory(n: u8) -> Device {
        Device::memory_of(n, ACCOUNT)
    }

    /// A device of `account` with an in-memory store and id `[n; 16]`.
    pub fn memory_of(n: u8, account: &str) -> Device {
        let config = Config {
            store: StorePath::Memory,
            account: AccountId::new(account).unwrap(),
            device_name: format!("device {n}"),
            platform: Platform::Linux,
        };
        Device {
            engine: Engine::open(config, 1_000, entropy(n)).unwrap(),
            now_ms: 1_000,
            _dir: None,
        }
    }

    /// Performs `op` one millisecond after the device's previous operation.
    pub fn op(&mut self, op: Op) -> Performed {
        self.now_ms += 1;
        self.engine
            .perform(self.now_ms, op)
            .unwrap_or_else(|e| panic!("operation failed: {e}"))
    }

    pub fn try_op(&mut self, op: Op) -> Result<Performed, OpError> {
        self.now_ms += 1;
        self.engine.perform(self.now_ms, op)
    }

    /// Every delta this device holds.
    pub fn all_deltas(&self) -> Vec<EncodedDelta> {
        self.engine
            .export(ExportCursor::default(), usize::MAX >> 1)
            .unwrap()
            .deltas
    }

    pub fn state(&self) -> AccountState {
        self.engine.state().unwrap()
    }
}

/// Gives `to` every delta `from` holds.
pub fn send(from: &Device, to: &mut Device) -> Applied {
    to.engine.apply_remote(&from.all_deltas()).unwrap()
}

/// Full exchange until every device holds every delta.
pub fn sync_all(devices: &mut [Device]) {
    for _ in 0..2 {
        for i in 0..devices.len() {
            for j in 0..devices.len() {
                if i != j {
                    let deltas = devices[i].all_deltas();
                    devices[j].engine.apply_remote(&deltas).unwrap();
                }
            }
        }
    }
}

/// Asserts every device has the same document and the same projections.
pub fn assert_converged(devices: &[Device]) {
    let first = &devices[0];
    for other in &devices[1..] {
        assert_eq!(
            first.engine.doc_heads().unwrap(),
            other.engine.doc_heads().unwrap(),
            "document heads"
        );
        assert_eq!(first.state(), other.state(), "projected state");
    }
}

pub fn user(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

pub fn group(id: &str) -> GroupId {
    GroupId::new(id).unwrap()
}

pub fn conv(id: &str) -> ConversationId {
    id.parse().unwrap()
}

pub fn msg(id: &str) -> MessageId {
    MessageId::new(id).unwrap()
}

pub fn incoming(id: &str, conversation: &str, sender: &str, at: i64) -> Op {
    Op::Message(MessageOp::Ingest {
        message: IncomingMessage {
            id: msg(id),
            conversation: conv(conversation),
            sender: user(sender),
            sent_at_ms: at,
            body: format!("text of {id}"),
        },
    })
}

/// Runs a concurrent scenario twice: `setup` builds the devices and makes
/// their concurrent operations; then the deltas are exchanged A→B first in
/// one world and B→A first in the other. Both worlds must converge to the
/// same state, which is returned for the rule's own assertions.
pub fn both_orders(setup: impl Fn() -> (Device, Device)) -> AccountState {
    let (mut a1, mut b1) = setup();
    send(&a1, &mut b1);
    send(&b1, &mut a1);
    let (mut a2, mut b2) = setup();
    send(&b2, &mut a2);
    send(&a2, &mut b2);
    let devices = [a1, b1, a2, b2];
    assert_converged(&devices);
    devices[0].state()
}

/// A device backed by a file in its own temporary folder.
pub fn file_device(n: u8) -> (Device, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    let device = Device {
        engine: Engine::open(file_config(&path), 1_000, entropy(n)).unwrap(),
        now_ms: 1_000,
        _dir: Some(dir),
    };
    (device, path)
}

pub fn file_config(path: &std::path::Path) -> Config {
    Config {
        store: StorePath::File(path.to_owned()),
        account: AccountId::new(ACCOUNT).unwrap(),
        device_name: "file device".into(),
        platform: Platform::Macos,
    }
}

impl Device {
    /// Reopens the device's file store (the old engine is dropped once the
    /// new one is open; WAL lets both connections coexist meanwhile).
    pub fn reopen(&mut self, path: &std::path::Path) {
        self.engine = Engine::open(file_config(path), 0, Box::new(DrawsNothing)).unwrap();
    }
}

/// Device `n`'s entropy: its id is `[n; 16]`, the rest a seeded stream.
pub fn entropy(n: u8) -> Box<dyn tandem_engine::Entropy> {
    Box::new(tandem_engine::SeededEntropy::starting_with(
        &[n; 16],
        n.into(),
    ))
}

/// The entropy of a device that must draw none: a reopened device keeps
/// its id and key.
pub struct DrawsNothing;

impl tandem_engine::Entropy for DrawsNothing {
    fn fill(&mut self, _: &mut [u8]) {
        panic!("a reopened device keeps its id and key")
    }
}

/// A syncer on a session that is still handshaking: its commands queue.
pub fn session() -> (tandem_transport::ClientSession, sync::Syncer) {
    let config = tandem_transport::ClientConfig::new(
        AccountId::new(ACCOUNT).unwrap(),
        DeviceId([2; 16]),
        "b",
        Platform::Linux,
        tandem_transport::DeviceKey::from_seed(&[2; 32]),
    );
    let session = tandem_transport::ClientSession::new(config, 0).unwrap();
    (session, sync::Syncer::new())
}

pub fn log_entry(seq: u64, bytes: Vec<u8>) -> tandem_transport::LogDelta {
    tandem_transport::LogDelta {
        seq,
        origin: DeviceId([1; 16]),
        content_id: ContentId::of(&bytes),
        bytes,
    }
}
