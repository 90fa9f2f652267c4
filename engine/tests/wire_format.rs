//! The delta wire format is a boundary: every encoded operation kind is
//! snapshot-tested, so an accidental change (a reordered variant, a renamed
//! field type) fails here instead of breaking devices in the field.
//!
//! After a deliberate format change (with a new `DELTA_FORMAT`), regenerate
//! with `UPDATE_SNAPSHOTS=1 cargo test -p tandem-engine --test wire_format`.

mod common;

use common::*;
use tandem_engine::delta::*;
use tandem_engine::*;

const SNAPSHOT: &str = "tests/snapshots/deltas.txt";

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
        std::fs::write(SNAPSHOT, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(SNAPSHOT).expect("the committed snapshot");
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
