//! What sealing costs: seal and open time for a 1-op and a 1,024-op
//! envelope, and the bytes of an envelope against today's deltas of the
//! same operations. A measurement, not a test: it asserts nothing about
//! time. Run with `cargo run -p tandem-engine --example seal_cost
//! [--release]`.
//!
//! The operations are what a device performs: message sends of 40 to 120
//! bytes, and every tenth a contact request (which makes an automerge
//! change), as in the bench's B1 mix where most operations have no change.

use std::time::Instant;

use tandem_engine::delta::Delta;
use tandem_engine::model::UserId;
use tandem_engine::op::{ContactOp, MessageOp, Op};
use tandem_engine::seal::{self, BodyV1, GenerationRoot, OriginSigner, SealHeader};
use tandem_engine::{
    AccountId, Config, ContentId, Engine, ExportCursor, Platform, SeededEntropy, StorePath,
};
use tandem_transport::envelope::SnapshotId;
use tandem_transport::DeviceKey;

fn main() {
    let account = AccountId::new("alice").expect("valid");
    let mut engine = Engine::open(
        Config {
            store: StorePath::Memory,
            account: account.clone(),
            device_name: "phone".into(),
            platform: Platform::Linux,
        },
        1_000,
        Box::new(SeededEntropy::new(1)),
    )
    .expect("opens");
    let words = "the quick brown fox jumps over a lazy dog while we wait for lunch today";
    for i in 0..1024i64 {
        let op = if i % 10 == 9 {
            Op::Contact(ContactOp::Add {
                user: UserId::new(format!("user{i}")).expect("valid"),
                greeting: "hi".into(),
            })
        } else {
            let len = 40 + (i as usize * 7) % 30;
            Op::Message(MessageOp::Send {
                conversation: format!("u:friend{}", i % 20).parse().expect("valid"),
                body: format!("{i} {}", &words[..len]),
            })
        };
        engine.perform(2_000 + i, op).expect("performs");
    }
    let deltas = engine
        .export(ExportCursor::default(), 10_000)
        .expect("exports")
        .deltas;
    assert_eq!(deltas.len(), 1024);
    let origin = engine.device().device_id;

    let root = GenerationRoot::from_bytes([1; 32]);
    let key = root.epoch_key(1, &SnapshotId([2; 32])).envelope_key();
    let device_key = DeviceKey::from_seed(&[3; 32]);
    let signer = OriginSigner::new(&device_key);
    let public = device_key.public_key();
    let header = SealHeader {
        epoch: 1,
        origin,
        chain_pos: 1,
        prev: ContentId([0; 32]),
    };
    let mut entropy = SeededEntropy::new(9);
    println!(
        "{:>6} {:>10} {:>10} {:>12} {:>12} {:>10} {:>10}",
        "ops", "seal µs", "open µs", "delta bytes", "env. bytes", "B/op delta", "B/op env."
    );
    for n in [1usize, 16, 256, 1024] {
        let body = body_of(&account, &deltas[..n]);
        let delta_bytes: usize = deltas[..n].iter().map(|d| d.0.len()).sum();
        let rounds = (4096 / n).clamp(20, 2000);
        let start = Instant::now();
        let mut bytes = Vec::new();
        for _ in 0..rounds {
            bytes =
                seal::seal(&key, &account, header, &body, &signer, &mut entropy).expect("seals");
        }
        let seal_us = start.elapsed().as_secs_f64() * 1e6 / rounds as f64;
        let start = Instant::now();
        for _ in 0..rounds {
            let opened = seal::open(&bytes, &account, &key, &public).expect("opens");
            assert_eq!(opened.body.ops.len(), n);
        }
        let open_us = start.elapsed().as_secs_f64() * 1e6 / rounds as f64;
        println!(
            "{n:>6} {seal_us:>10.1} {open_us:>10.1} {delta_bytes:>12} {:>12} {:>10.1} {:>10.1}",
            bytes.len(),
            delta_bytes as f64 / n as f64,
            bytes.len() as f64 / n as f64
        );
    }
}

/// One envelope body holding `deltas` (consecutive, of one device).
fn body_of(account: &AccountId, deltas: &[tandem_engine::delta::EncodedDelta]) -> BodyV1 {
    let decoded = deltas
        .iter()
        .map(|encoded| Delta::decode(&encoded.0, account).expect("decodes").0);
    BodyV1::from_deltas(decoded, 10_000).expect("consecutive operations of one device")
}
