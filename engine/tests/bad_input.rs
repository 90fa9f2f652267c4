//! Bad deltas from other devices get a typed error and leave the store
//! exactly as it was; limits hold just below, at and just above.

mod common;

use common::*;
use tandem_engine::delta::*;
use tandem_engine::limits::*;
use tandem_engine::op::*;
use tandem_engine::*;

/// A device with some state, and a good delta from another device.
fn target_and_good_delta() -> (Device, EncodedDelta) {
    let mut target = Device::memory(1);
    target.op(incoming("m1", "u:bob", "bob", 100));
    let mut source = Device::memory(2);
    source.op(Op::Contact(ContactOp::Accept { user: user("bob") }));
    let good = source.all_deltas().remove(0);
    (target, good)
}

fn decode(bytes: &EncodedDelta) -> Delta {
    Delta::decode(&bytes.0, &AccountId::new(ACCOUNT).unwrap())
        .unwrap()
        .0
}

/// Applies `batch` and checks it failed on delta `index` with an error for
/// which `check` holds, leaving everything as it was.
fn refused(batch: Vec<EncodedDelta>, index: usize, check: impl Fn(&DeltaError) -> bool) {
    let (mut target, _) = target_and_good_delta();
    let before = (
        target.state(),
        target.engine.doc_heads().unwrap(),
        target.all_deltas(),
    );
    match target.engine.apply_remote(&batch) {
        Err(ApplyError::Delta { index: i, error }) => {
            assert_eq!(i, index);
            assert!(check(&error), "unexpected error: {error}");
        }
        other => panic!("expected a delta error, got {other:?}"),
    }
    assert_eq!(
        before,
        (
            target.state(),
            target.engine.doc_heads().unwrap(),
            target.all_deltas()
        )
    );
}

#[test]
fn garbage_and_truncated_bytes_are_malformed() {
    let (_, good) = target_and_good_delta();
    refused(vec![EncodedDelta(vec![])], 0, |e| {
        matches!(e, DeltaError::Malformed(_))
    });
    refused(vec![EncodedDelta(vec![1, 0xff, 0xff, 0xff])], 0, |e| {
        matches!(e, DeltaError::Malformed(_))
    });
    for cut in [1, good.0.len() / 2, good.0.len() - 1] {
        refused(vec![EncodedDelta(good.0[..cut].to_vec())], 0, |e| {
            matches!(e, DeltaError::Malformed(_) | DeltaError::MalformedChange(_))
        });
    }
    let mut trailing = good.0.clone();
    trailing.push(0);
    refused(vec![EncodedDelta(trailing)], 0, |e| {
        matches!(e, DeltaError::Malformed(_))
    });
}

#[test]
fn one_bad_delta_refuses_the_whole_batch() {
    let (_, good) = target_and_good_delta();
    // Garbage whose first byte reads as a format number is reported as an
    // unknown format; either way the batch is refused.
    refused(vec![good, EncodedDelta(b"nonsense".to_vec())], 1, |e| {
        matches!(
            e,
            DeltaError::Malformed(_) | DeltaError::UnsupportedFormat(_)
        )
    });
}

#[test]
fn a_newer_format_is_named_as_such() {
    let (_, good) = target_and_good_delta();
    let mut delta = decode(&good);
    delta.format = DELTA_FORMAT + 2;
    refused(vec![delta.encode()], 0, |e| {
        matches!(e, DeltaError::UnsupportedFormat(3))
    });
    // Format 2 is the sealed envelope: a delta claiming it is not one.
    delta.format = DELTA_FORMAT + 1;
    refused(vec![delta.encode()], 0, |e| {
        matches!(e, DeltaError::Envelope(_))
    });
}

#[test]
fn a_delta_of_another_account_is_refused() {
    let (_, good) = target_and_good_delta();
    let mut delta = decode(&good);
    delta.account = AccountId::new("mallory").unwrap();
    refused(vec![delta.encode()], 0, |e| {
        matches!(e, DeltaError::ForeignAccount { .. })
    });
}

#[test]
fn a_change_claimed_for_another_device_is_refused() {
    let (_, good) = target_and_good_delta();
    let mut delta = decode(&good);
    delta.origin = DeviceId([3; 16]);
    refused(vec![delta.encode()], 0, |e| {
        matches!(e, DeltaError::ForgedOrigin { .. })
    });
}

#[test]
fn a_corrupt_document_change_is_refused() {
    let (_, good) = target_and_good_delta();
    let mut delta = decode(&good);
    let change = delta.change.as_mut().unwrap();
    let last = change.len() - 1;
    change[last] ^= 0xff;
    refused(vec![delta.encode()], 0, |e| {
        matches!(e, DeltaError::MalformedChange(_))
    });
}

#[test]
fn an_operation_over_a_limit_is_refused_from_the_network_too() {
    let (_, good) = target_and_good_delta();
    let mut delta = decode(&good);
    delta.op = Op::Message(MessageOp::Send {
        conversation: conv("u:bob"),
        body: "x".repeat(MESSAGE_BODY_BYTES_MAX + 1),
    });
    delta.change = None;
    refused(vec![delta.encode()], 0, |e| {
        matches!(e, DeltaError::InvalidOp(_))
    });
}

#[test]
fn delta_size_limit() {
    refused(
        vec![EncodedDelta(vec![1; DELTA_BYTES_MAX + 1])],
        0,
        |e| matches!(e, DeltaError::TooLarge { len } if *len == DELTA_BYTES_MAX + 1),
    );
    // At the limit the bytes are decoded (and here found malformed).
    refused(vec![EncodedDelta(vec![1; DELTA_BYTES_MAX])], 0, |e| {
        matches!(e, DeltaError::Malformed(_))
    });
}

#[test]
fn batch_size_limit() {
    let (mut target, good) = target_and_good_delta();
    let at = vec![good.clone(); DELTAS_PER_BATCH_MAX];
    let applied = target.engine.apply_remote(&at).unwrap();
    assert_eq!(
        (applied.new, applied.duplicate),
        (1, DELTAS_PER_BATCH_MAX - 1)
    );
    let above = vec![good; DELTAS_PER_BATCH_MAX + 1];
    assert!(matches!(
        target.engine.apply_remote(&above),
        Err(ApplyError::BatchTooLarge(n)) if n == DELTAS_PER_BATCH_MAX + 1
    ));
}

#[test]
fn local_limits_below_at_and_above() {
    let mut device = Device::memory(1);
    let send = |len: usize| {
        Op::Message(MessageOp::Send {
            conversation: conv("u:bob"),
            body: "x".repeat(len),
        })
    };
    device.op(send(MESSAGE_BODY_BYTES_MAX - 1));
    device.op(send(MESSAGE_BODY_BYTES_MAX));
    assert!(matches!(
        device.try_op(send(MESSAGE_BODY_BYTES_MAX + 1)),
        Err(OpError::Invalid(InvalidOp::TextTooLong { .. }))
    ));

    device.op(Op::Contact(ContactOp::Accept { user: user("bob") }));
    let remark = |len: usize| {
        Op::Contact(ContactOp::SetRemark {
            user: user("bob"),
            remark: "r".repeat(len),
        })
    };
    device.op(remark(TEXT_BYTES_MAX - 1));
    device.op(remark(TEXT_BYTES_MAX));
    assert!(device.try_op(remark(TEXT_BYTES_MAX + 1)).is_err());

    device.op(Op::Group(GroupOp::Create {
        group: group("g1"),
        name: String::new(),
        members: vec![],
    }));
    let invite = |n: usize| {
        Op::Group(GroupOp::Invite {
            group: group("g1"),
            users: (0..n).map(|i| user(&format!("u{i}"))).collect(),
        })
    };
    device.op(invite(USERS_PER_OP_MAX - 1));
    device.op(invite(USERS_PER_OP_MAX));
    assert!(matches!(
        device.try_op(invite(USERS_PER_OP_MAX + 1)),
        Err(OpError::Invalid(InvalidOp::TooMany { .. }))
    ));
    assert!(matches!(
        device.try_op(invite(0)),
        Err(OpError::Invalid(InvalidOp::Empty { .. }))
    ));

    // Invitees are not members until they accept.
    device.op(Op::Group(GroupOp::InviteeAccepted {
        group: group("g1"),
        user: user("u1"),
    }));
    let attrs = |n: usize| {
        Op::Group(GroupOp::SetMemberAttributes {
            group: group("g1"),
            user: user("u1"),
            attributes: (0..n).map(|i| (format!("k{i}"), "v".into())).collect(),
        })
    };
    device.op(attrs(ATTRIBUTES_PER_OP_MAX));
    assert!(device.try_op(attrs(ATTRIBUTES_PER_OP_MAX + 1)).is_err());

    let mark = |m: &str| {
        Op::Conversation(ConversationOp::AddMark {
            conversation: conv("u:bob"),
            mark: m.into(),
        })
    };
    device.op(mark(&"m".repeat(ID_BYTES_MAX)));
    assert!(device.try_op(mark(&"m".repeat(ID_BYTES_MAX + 1))).is_err());
    assert!(
        device.try_op(mark("a\u{1f}b")).is_err(),
        "the key separator"
    );
}

#[test]
fn ids_from_the_network_are_validated_on_decode() {
    // A user id with a control character cannot be built locally; craft its
    // encoding by hand by swapping the bytes of a valid one.
    let (_, good) = target_and_good_delta();
    let bytes = good.0.clone();
    let at = bytes.windows(3).position(|w| w == b"bob").unwrap();
    let mut evil = bytes;
    evil[at + 1] = 0x1f;
    refused(vec![EncodedDelta(evil)], 0, |e| {
        matches!(e, DeltaError::Malformed(_))
    });
}

#[test]
fn origin_seq_just_below_at_and_above_its_bound() {
    let (_, good) = target_and_good_delta();
    let with_seq = |origin_seq: u64| {
        let mut delta = decode(&good);
        delta.origin_seq = origin_seq;
        delta.encode()
    };
    // Just below and at the bound: stored, waiting for the device's earlier
    // operations, and later batches still merge.
    for seq in [ORIGIN_SEQ_MAX - 1, ORIGIN_SEQ_MAX] {
        let (mut target, _) = target_and_good_delta();
        let applied = target.engine.apply_remote(&[with_seq(seq)]).unwrap();
        assert_eq!((applied.new, applied.waiting), (1, 1), "origin_seq {seq}");
        let again = target
            .engine
            .apply_remote(std::slice::from_ref(&good))
            .unwrap();
        assert_eq!(
            (again.new, again.waiting, again.unblocked),
            (1, 0, 0),
            "origin_seq {seq}: the good delta merges, the other still waits"
        );
    }
    // Above it (2^63 and 2^64 - 1): refused, as it cannot be stored.
    for seq in [ORIGIN_SEQ_MAX + 1, u64::MAX] {
        refused(
            vec![with_seq(seq)],
            0,
            |e| matches!(e, DeltaError::OriginSeqOutOfRange(s) if *s == seq),
        );
    }
    refused(vec![with_seq(0)], 0, |e| {
        matches!(e, DeltaError::OriginSeqOutOfRange(0))
    });
}
