//! Merging pages of a relay's log: the cursor, gaps, replays, and the
//! outbox draining when a device's own deltas come back.

mod common;

use common::*;
use tandem_engine::op::*;
use tandem_engine::*;

/// A stand-in relay log: position i+1 holds `log[i]`.
fn page(log: &[delta::EncodedDelta], from_seq: u64, count: usize) -> Vec<RelayDelta> {
    log.iter()
        .enumerate()
        .skip(from_seq as usize - 1)
        .take(count)
        .map(|(i, d)| RelayDelta {
            seq: i as u64 + 1,
            delta: d.clone(),
        })
        .collect()
}

#[test]
fn pages_advance_the_cursor_and_own_deltas_leave_the_outbox() {
    let (mut a, path) = file_device(1);
    let mut b = Device::memory(2);
    a.op(incoming("m1", "u:bob", "bob", 1));
    b.op(incoming("m2", "u:bob", "bob", 2));
    a.op(Op::Conversation(ConversationOp::Pin {
        conversation: conv("u:bob"),
    }));
    // The relay accepted a1, b1, a2 in that order; A's push acks were lost.
    let mut log = a.all_deltas();
    log.insert(1, b.all_deltas().remove(0));
    assert_eq!(a.engine.outbox(10).unwrap().len(), 2);

    assert_eq!(a.engine.relay_cursor().unwrap(), 0);
    let first = a.engine.apply_relay(&page(&log, 1, 2)).unwrap();
    assert_eq!((first.new, first.duplicate), (1, 1));
    assert_eq!(
        first.relay_cursor, 2,
        "the merge says where the cursor ended"
    );
    assert_eq!(a.engine.relay_cursor().unwrap(), 2);
    assert_eq!(
        a.engine.outbox(10).unwrap().len(),
        1,
        "a1 came back: acknowledged"
    );

    // A page fetched twice, overlapping the cursor, skips what it had.
    let again = a.engine.apply_relay(&page(&log, 1, 3)).unwrap();
    assert_eq!((again.new, again.duplicate), (0, 1));
    assert_eq!(again.relay_cursor, 3);
    assert_eq!(a.engine.relay_cursor().unwrap(), 3);
    let nothing_new = a.engine.apply_relay(&page(&log, 1, 3)).unwrap();
    assert_eq!(
        nothing_new.relay_cursor, 3,
        "a page all at or before the cursor"
    );
    let remote = a.engine.apply_remote(&log).unwrap();
    assert_eq!(remote.relay_cursor, 3, "apply_remote leaves the cursor");
    assert!(a.engine.outbox(10).unwrap().is_empty());

    a.reopen(&path);
    assert_eq!(
        a.engine.relay_cursor().unwrap(),
        3,
        "the cursor survives a restart"
    );
    assert_eq!(a.state().messages.len(), 2);
}

#[test]
fn a_gap_is_refused_and_changes_nothing() {
    let mut a = Device::memory(1);
    let mut b = Device::memory(2);
    b.op(incoming("m1", "u:bob", "bob", 1));
    b.op(incoming("m2", "u:bob", "bob", 2));
    let log = b.all_deltas();
    let before = a.state();
    match a.engine.apply_relay(&page(&log, 2, 1)) {
        Err(ApplyError::Gap {
            expected: 1,
            found: 2,
        }) => {}
        other => panic!("expected a gap, got {other:?}"),
    }
    assert_eq!(a.engine.relay_cursor().unwrap(), 0);
    assert_eq!(before, a.state());
}

#[test]
fn acknowledged_pushes_leave_the_outbox() {
    let mut a = Device::memory(1);
    let first = a.op(incoming("m1", "u:bob", "bob", 1));
    a.op(incoming("m2", "u:bob", "bob", 2));
    a.engine
        .acknowledge(&[(first.content_id().unwrap(), 7), (ContentId([9; 32]), 8)])
        .unwrap();
    let outbox = a.engine.outbox(10).unwrap();
    assert_eq!(outbox.len(), 1);
    assert_ne!(outbox[0].content_id(), first.content_id().unwrap());
}

#[test]
fn acknowledged_positions_that_continue_the_cursor_move_it() {
    let mut a = Device::memory(1);
    let first = a.op(incoming("m1", "u:bob", "bob", 1));
    let second = a.op(incoming("m2", "u:bob", "bob", 2));
    let third = a.op(incoming("m3", "u:bob", "bob", 3));
    // Another device's delta is at 3: the relay logged these at 1, 2 and 4.
    let cursor = a
        .engine
        .acknowledge(&[
            (second.content_id().unwrap(), 2),
            (first.content_id().unwrap(), 1),
            (third.content_id().unwrap(), 4),
        ])
        .unwrap();
    assert_eq!(cursor, 2, "3 is someone else's");
    assert_eq!(a.engine.relay_cursor().unwrap(), 2);
    assert!(a.engine.outbox(10).unwrap().is_empty());
    // An acknowledgement that does not continue the cursor leaves it.
    let fourth = a.op(incoming("m4", "u:bob", "bob", 4));
    assert_eq!(
        a.engine
            .acknowledge(&[(fourth.content_id().unwrap(), 9)])
            .unwrap(),
        2
    );
    assert_eq!(a.engine.relay_cursor().unwrap(), 2);
    // Skipping the entry after the cursor moves it there, and says so.
    assert_eq!(a.engine.skip_relay_entry(3).unwrap(), 3);
    assert_eq!(a.engine.relay_cursor().unwrap(), 3);
    assert!(matches!(
        a.engine.skip_relay_entry(5),
        Err(ApplyError::Gap {
            expected: 4,
            found: 5
        })
    ));
}

#[test]
fn a_bad_entry_in_a_page_that_overlaps_the_cursor_skips_only_itself() {
    let mut a = Device::memory(1);
    a.op(incoming("m1", "u:bob", "bob", 1));
    a.op(incoming("m2", "u:bob", "bob", 2));
    let deltas = a.all_deltas();
    let log = vec![
        log_entry(1, deltas[0].0.clone()),
        log_entry(2, deltas[1].0.clone()),
        log_entry(3, b"not a delta".to_vec()),
    ];
    let mut b = Device::memory(2);
    let (mut session, mut syncer) = session();
    // Entry 1 arrived live while a pull from 0 was in flight; the pull's
    // page then overlaps the cursor.
    syncer
        .handle_live(&mut b.engine, &mut session, vec![log[0].clone()])
        .unwrap();
    assert_eq!(b.engine.relay_cursor().unwrap(), 1);
    let heard = syncer
        .handle(
            &mut b.engine,
            &mut session,
            tandem_transport::SessionEvent::Deltas {
                deltas: log,
                more: false,
            },
            0,
        )
        .unwrap();
    let skipped: Vec<u64> = heard
        .iter()
        .filter_map(|e| match e {
            sync::SyncEvent::Skipped { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(skipped, [3], "only the bad entry is skipped: {heard:?}");
    assert_eq!(b.engine.relay_cursor().unwrap(), 3);
    assert!(
        b.engine.message(&msg("m2")).unwrap().is_some(),
        "the good entry 2 merged"
    );
}

#[test]
fn a_bad_relay_entry_is_named_by_its_log_position() {
    let mut a = Device::memory(1);
    a.op(incoming("m1", "u:bob", "bob", 1));
    let mut log = a.all_deltas();
    log.push(delta::EncodedDelta(b"not a delta".to_vec()));
    let mut b = Device::memory(2);
    b.engine.apply_relay(&page(&log, 1, 1)).unwrap();
    // The page starts at the cursor; the bad entry is the page's second
    // but the first after the cursor.
    match b.engine.apply_relay(&page(&log, 1, 2)) {
        Err(ApplyError::RelayEntry { seq: 2, .. }) => {}
        other => panic!("expected entry 2 named, got {other:?}"),
    }
    assert_eq!(b.engine.relay_cursor().unwrap(), 1, "nothing was written");
}

#[test]
fn an_acknowledged_position_above_the_bound_is_refused_and_changes_nothing() {
    let mut a = Device::memory(1);
    let first = a.op(incoming("m1", "u:bob", "bob", 1));
    a.op(incoming("m2", "u:bob", "bob", 2));
    for above in [limits::RELAY_SEQ_MAX + 1, u64::MAX] {
        assert!(matches!(
            a.engine.acknowledge(&[(first.content_id().unwrap(), above)]),
            Err(StoreError::OutOfRange { value, .. }) if value == above
        ));
        assert_eq!(a.engine.outbox(10).unwrap().len(), 2, "nothing written");
    }
    // At the bound it is a position like any other.
    a.engine
        .acknowledge(&[(first.content_id().unwrap(), limits::RELAY_SEQ_MAX)])
        .unwrap();
    assert_eq!(a.engine.outbox(10).unwrap(), [a.all_deltas()[1].clone()]);
    assert_eq!(
        a.engine.relay_cursor().unwrap(),
        0,
        "it does not continue the cursor"
    );
}

/// A session that has finished its handshake, the syncer told so, and the
/// frames sent so far taken out.
fn connected(device: &mut Device) -> (tandem_transport::ClientSession, sync::Syncer) {
    use tandem_transport::frame::{DeviceInfo, Enrollment, EnrollmentState, Frame, Welcome};
    let (mut session, mut syncer) = session();
    let info = DeviceInfo {
        id: DeviceId([2; 16]),
        name: "b".into(),
        platform: Platform::Linux,
        first_login_ms: 1,
        last_seen_ms: 1,
        online: true,
        enrollment: EnrollmentState::Active {
            expires_at_ms: 1 << 40,
        },
    };
    let frames = [
        Frame::Challenge {
            nonce: tandem_transport::auth::ChallengeNonce([7; 32]),
        },
        Frame::Welcome(Welcome {
            version: tandem_transport::PROTOCOL_VERSION,
            device: info.clone(),
            devices: vec![info],
            head_seq: 0,
            enrollment: Enrollment {
                token_id: [0; 16],
                enrolled_at_ms: 1,
                expires_at_ms: 1 << 40,
            },
        }),
    ];
    for frame in frames {
        session.handle_bytes(&tandem_transport::codec::encode(&frame).unwrap(), 1);
    }
    while let Some(event) = session.poll_event() {
        syncer
            .handle(&mut device.engine, &mut session, event, 1)
            .unwrap();
    }
    sent_pushes(&mut session);
    (session, syncer)
}

/// The content ids of each push frame the session has sent since last asked.
fn sent_pushes(session: &mut tandem_transport::ClientSession) -> Vec<Vec<ContentId>> {
    std::iter::from_fn(|| session.poll_transmit())
        .filter_map(|mut bytes| {
            match tandem_transport::codec::decode(&mut bytes)
                .unwrap()
                .unwrap()
            {
                tandem_transport::frame::Frame::Push { deltas } => {
                    Some(deltas.iter().map(|d| d.content_id()).collect())
                }
                _ => None,
            }
        })
        .collect()
}

#[test]
fn operations_made_while_pushes_are_in_flight_go_out_at_once_up_to_the_bound() {
    let mut b = Device::memory(2);
    let (mut session, mut syncer) = connected(&mut b);
    let ops = sync::PUSHES_IN_FLIGHT_MAX + 2;
    for n in 0..ops {
        b.op(incoming(&format!("m{n}"), "u:bob", "bob", n as i64 + 1));
        syncer.push(&mut b.engine, &mut session, b.now_ms).unwrap();
    }
    let ids: Vec<ContentId> = b.all_deltas().iter().map(|d| d.content_id()).collect();
    // One push per operation while fewer than the bound are in flight; the
    // rest wait.
    let pushed = sent_pushes(&mut session);
    let expected: Vec<Vec<ContentId>> = ids[..sync::PUSHES_IN_FLIGHT_MAX]
        .iter()
        .map(|id| vec![*id])
        .collect();
    assert_eq!(pushed, expected);
    assert!(!syncer.is_in_step(&b.engine).unwrap());

    // The first acknowledgement frees a slot: everything waiting goes in
    // one push, after what is in flight (nothing is pushed twice).
    let ack = |session: &mut tandem_transport::ClientSession, n: usize| {
        let frame = tandem_transport::frame::Frame::PushAck {
            entries: vec![tandem_transport::PushAckEntry {
                content_id: ids[n],
                seq: n as u64 + 1,
            }],
        };
        session.handle_bytes(&tandem_transport::codec::encode(&frame).unwrap(), 2);
        session.poll_event().expect("the acknowledgement")
    };
    let event = ack(&mut session, 0);
    syncer
        .handle(&mut b.engine, &mut session, event, 2)
        .unwrap();
    assert_eq!(
        sent_pushes(&mut session),
        [ids[sync::PUSHES_IN_FLIGHT_MAX..].to_vec()]
    );
    // Every push answered: in step, with the cursor at the last position.
    for n in 1..ops {
        let event = ack(&mut session, n);
        syncer
            .handle(&mut b.engine, &mut session, event, 2)
            .unwrap();
    }
    assert!(sent_pushes(&mut session).is_empty());
    assert!(b.engine.outbox(10).unwrap().is_empty());
    assert_eq!(b.engine.relay_cursor().unwrap(), ops as u64);
    assert!(syncer.is_in_step(&b.engine).unwrap());
}

#[test]
fn a_repeated_acknowledgement_does_not_let_a_push_go_before_the_one_in_flight_is_answered() {
    let mut b = Device::memory(2);
    let (mut session, mut syncer) = connected(&mut b);
    let mut ids = Vec::new();
    let mut op = |b: &mut Device, n: usize| {
        let id = b
            .op(incoming(&format!("m{n}"), "u:bob", "bob", n as i64 + 1))
            .content_id()
            .unwrap();
        ids.push(id);
        id
    };
    let ack = |session: &mut tandem_transport::ClientSession, id: ContentId, seq: u64| {
        let frame = tandem_transport::frame::Frame::PushAck {
            entries: vec![tandem_transport::PushAckEntry {
                content_id: id,
                seq,
            }],
        };
        session.handle_bytes(&tandem_transport::codec::encode(&frame).unwrap(), 2);
        session.poll_event().expect("the acknowledgement")
    };
    let m0 = op(&mut b, 0);
    syncer.push(&mut b.engine, &mut session, 2).unwrap();
    let event = ack(&mut session, m0, 1);
    syncer
        .handle(&mut b.engine, &mut session, event, 2)
        .unwrap();
    let m1 = op(&mut b, 1);
    syncer.push(&mut b.engine, &mut session, 2).unwrap();
    let m2 = op(&mut b, 2);
    syncer.push(&mut b.engine, &mut session, 2).unwrap();
    assert_eq!(sent_pushes(&mut session), [vec![m0], vec![m1]]);

    // The transport hands the first answer over again: m1 is still
    // unanswered, so m2 waits.
    let event = ack(&mut session, m0, 1);
    syncer
        .handle(&mut b.engine, &mut session, event, 2)
        .unwrap();
    assert!(sent_pushes(&mut session).is_empty());
    let event = ack(&mut session, m1, 2);
    syncer
        .handle(&mut b.engine, &mut session, event, 2)
        .unwrap();
    assert_eq!(sent_pushes(&mut session), [vec![m2]]);
    assert_eq!(ids, [m0, m1, m2]);
}

#[test]
fn a_push_not_answered_in_time_sends_everything_unacknowledged_again() {
    let mut b = Device::memory(2);
    let (mut session, mut syncer) = connected(&mut b);
    for n in 0..3 {
        b.op(incoming(&format!("m{n}"), "u:bob", "bob", n as i64 + 1));
        syncer.push(&mut b.engine, &mut session, b.now_ms).unwrap();
    }
    let ids: Vec<ContentId> = b.all_deltas().iter().map(|d| d.content_id()).collect();
    assert_eq!(
        sent_pushes(&mut session).len(),
        3.min(sync::PUSHES_IN_FLIGHT_MAX)
    );
    // The first look starts the deadline; at the deadline all three go
    // again, oldest first, in one push.
    syncer
        .handle_timeout(&mut b.engine, &mut session, 10)
        .unwrap();
    assert!(sent_pushes(&mut session).is_empty());
    syncer
        .handle_timeout(&mut b.engine, &mut session, 10 + sync::REQUEST_TIMEOUT_MS)
        .unwrap();
    assert_eq!(sent_pushes(&mut session), [ids]);
}
