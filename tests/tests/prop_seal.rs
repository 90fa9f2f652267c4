//! Round trips of sealed envelopes (engine/src/seal) with real operations
//! and their automerge changes: body ↔ plaintext and seal ↔ open.

mod prop_common;

use proptest::collection::vec;
use proptest::prelude::*;
use tandem_engine::delta::Delta;
use tandem_engine::seal::{self, BodyV1, ViewEntry};
use tandem_engine::OpError;
use tandem_tests::choice::List;
use tandem_tests::fuzz_targets::{
    body_of, export_all, memory_engine, seal_body, seal_key, seal_signer,
};
use tandem_tests::gen::{Gen, ACCOUNT};
use tandem_transport::envelope::Envelope;
use tandem_transport::{AccountId, DeviceId};

fn config(default_cases: u32) -> ProptestConfig {
    prop_common::config(
        default_cases,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/prop_seal.txt"
        ),
    )
}

fn account() -> AccountId {
    AccountId::new(ACCOUNT).expect("valid")
}

fn view_entry() -> impl Strategy<Value = ViewEntry> {
    (any::<u16>(), any::<u64>(), any::<[u8; 8]>()).prop_map(|(roster_index, chain_pos, head8)| {
        ViewEntry {
            roster_index,
            chain_pos,
            head8,
        }
    })
}

proptest! {
    #![proptest_config(config(24))]

    /// What a device performed, put in one envelope: the body survives its
    /// plaintext and sealing; opening gives back every operation, read
    /// marker and change exactly as the device's deltas hold them.
    #[test]
    fn performed_ops_round_trip_through_an_envelope(
        ops in vec(vec(any::<u32>(), 1..12), 0..24),
        sealed_at_ms in any::<i64>(),
        view in vec(view_entry(), 0..4),
        seed in any::<u64>(),
    ) {
        let mut engine = memory_engine(1);
        let mut gen = Gen::new(1_000);
        for (i, choices) in ops.iter().enumerate() {
            let op = gen.op(&mut List::new(choices));
            match engine.perform(2_000 + i as i64, op.clone()) {
                Ok(p) => gen.performed(&op, p.message_id.as_ref()),
                Err(OpError::Refused(_) | OpError::UnknownMessage(_)
                    | OpError::WrongConversation { .. }) => {}
                Err(e) => panic!("{op:?} failed: {e}"),
            }
        }
        let deltas = export_all(&engine);
        let mut body = body_of(&deltas, sealed_at_ms);
        body.view = view;
        let plaintext = body.to_plaintext().expect("a plaintext");
        prop_assert_eq!(plaintext.len() % 64, 0);
        prop_assert_eq!(&BodyV1::from_plaintext(&plaintext).expect("reads"), &body);

        let bytes = seal_body(&body, 1, seed);
        prop_assert_eq!(&seal_body(&body, 1, seed), &bytes, "sealing is a function of the entropy");
        let opened = seal::open(&bytes, &account(), &seal_key(), &seal_signer(1).public_key())
            .expect("opens");
        prop_assert_eq!(&opened.body, &body);
        prop_assert_eq!(opened.header.origin, DeviceId([1; 16]));
        prop_assert_eq!(
            Envelope::decode(&bytes).expect("decodes").header,
            opened.header
        );
        // Every delta's change, in order, and nothing else.
        let mut expected = Vec::new();
        for encoded in &deltas {
            let (_, change) = Delta::decode(&encoded.0, &account()).expect("decodes");
            expected.extend(change.map(|c| c.hash()));
        }
        let got: Vec<_> = opened.changes.iter().map(|c| c.hash()).collect();
        prop_assert_eq!(got, expected);
        for (index, entry) in opened.body.ops.iter().enumerate() {
            let (delta, _) = Delta::decode(&deltas[index].0, &account()).expect("decodes");
            prop_assert_eq!(opened.body.origin_seq(index), delta.origin_seq);
            prop_assert_eq!(&entry.op, &delta.op);
            prop_assert_eq!(&entry.read_markers, &delta.read_markers);
            prop_assert_eq!(entry.made_at_ms, delta.made_at_ms);
        }
        // Another device's key does not open it.
        prop_assert!(
            seal::open(&bytes, &account(), &seal_key(), &seal_signer(2).public_key()).is_err()
        );
    }
}

/// The `envelope_open` seeds reach past the cryptography: the envelopes
/// open, the plaintexts read.
#[test]
fn envelope_seeds_open() {
    let seeds = tandem_tests::fuzz_targets::seeds("envelope_open");
    assert_eq!(seeds.len(), 6);
    let origin_key = seal_signer(1).public_key();
    for seed in &seeds[..4] {
        seal::open(seed, &account(), &seal_key(), &origin_key).expect("a seed envelope opens");
    }
    let every_kind = seal::open(&seeds[2], &account(), &seal_key(), &origin_key).expect("opens");
    assert!(every_kind.body.ops.len() > 40, "every kind of operation");
    assert!(!every_kind.changes.is_empty());
    for seed in &seeds[4..] {
        BodyV1::from_plaintext(seed).expect("a seed plaintext reads");
    }
}
