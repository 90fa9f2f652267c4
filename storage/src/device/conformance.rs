//! The device store's conformance suite: written once, run against every
//! way a device store can be opened. A new backend adds one line at the
//! bottom.

use super::*;

/// Runs every conformance test against stores made by `$make`.
macro_rules! device_store_conformance {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            fn store() -> (DeviceStore, Option<tempfile::TempDir>) {
                $make()
            }

            #[test]
            fn identity_is_absent_then_round_trips() {
                check_identity(store().0);
            }

            #[test]
            fn credentials_round_trip() {
                check_credentials(store().0);
            }

            #[test]
            fn account_keys_and_the_link_session_round_trip() {
                check_account_keys(store().0);
            }

            #[test]
            fn the_roster_keeps_one_entry_per_device_whatever_the_order() {
                check_roster(store().0);
            }

            #[test]
            fn meta_counters_round_trip() {
                check_meta(store().0);
            }

            #[test]
            fn doc_chunks_keep_order_and_snapshot_replaces_them() {
                check_doc_chunks(store().0);
            }

            #[test]
            fn merges_commit_unsynced_only_when_relaxed() {
                check_relaxed_merges(store().0);
            }

            #[test]
            fn deltas_are_stored_once_and_the_outbox_drains() {
                check_deltas(store().0);
            }

            #[test]
            fn envelopes_are_stored_once_per_chain_position_and_acknowledged_with_their_deltas() {
                check_envelopes(store().0);
            }

            #[test]
            fn sequence_numbers_up_to_i64_max_are_kept_and_above_refused() {
                check_seq_bounds(store().0);
            }

            #[test]
            fn messages_are_a_grow_only_set_with_monotonic_flags() {
                check_messages(store().0);
            }

            #[test]
            fn conversation_projection_derives_unread_and_listing() {
                check_conversations(store().0);
            }

            #[test]
            fn contacts_groups_and_threads_replace_and_remove() {
                check_entities(store().0);
            }

            #[test]
            fn states_are_stored_as_text_and_unknown_ones_are_corrupt() {
                check_states(store().0);
            }

            #[test]
            fn an_uncommitted_transaction_leaves_nothing() {
                check_rollback(store().0);
            }

            #[test]
            fn events_are_journaled_in_order() {
                check_events(store().0);
            }
        }
    };
}

fn memory() -> (DeviceStore, Option<tempfile::TempDir>) {
    (DeviceStore::open(Location::Memory).unwrap(), None)
}

fn file() -> (DeviceStore, Option<tempfile::TempDir>) {
    let dir = tempfile::tempdir().unwrap();
    let store = DeviceStore::open(Location::File(&dir.path().join("device.db"))).unwrap();
    (store, Some(dir))
}

device_store_conformance!(sqlite_memory, memory);
device_store_conformance!(sqlite_file, file);

const ME: &str = "alice";

fn identity() -> Identity {
    Identity {
        account: ME.into(),
        device_id: [7; 16],
        device_name: "phone".into(),
        platform: "ios".into(),
        created_at_ms: 1_000,
        signing_key: Some([5; 32]),
    }
}

/// The identity row as a build before version 7 wrote it.
fn insert_old_identity(conn: &rusqlite::Connection) {
    conn.execute(
        "INSERT INTO identity (id, account, device_id, device_name, platform, created_at_ms) \
         VALUES (1, ?1, ?2, 'phone', 'ios', 1000)",
        rusqlite::params![ME, &identity().device_id[..]],
    )
    .unwrap();
}

fn check_identity(mut store: DeviceStore) {
    assert_eq!(store.identity().unwrap(), None);
    let tx = store.transaction().unwrap();
    tx.insert_identity(&identity()).unwrap();
    tx.commit().unwrap();
    assert_eq!(store.identity().unwrap(), Some(identity()));
    let tx = store.transaction().unwrap();
    assert!(
        tx.insert_identity(&identity()).is_err(),
        "a second identity"
    );
    drop(tx);
    // A key once set is never replaced.
    let tx = store.transaction().unwrap();
    assert!(!tx.set_signing_key(&[6; 32]).unwrap());
    tx.commit().unwrap();
    assert_eq!(
        store.identity().unwrap().unwrap().signing_key,
        Some([5; 32])
    );
}

fn check_credentials(mut store: DeviceStore) {
    assert_eq!(store.credentials().unwrap(), Credentials::default());
    let tx = store.transaction().unwrap();
    tx.set_relays(&["127.0.0.1:7700".into(), "relay.example:7700".into()])
        .unwrap();
    let enrollment = DeviceEnrollment {
        token_id: [3; 16],
        enrolled_at_ms: 10,
        expires_at_ms: crate::STORED_VALUE_MAX,
        active: true,
    };
    tx.record_enrollment(&enrollment).unwrap();
    tx.commit().unwrap();
    let credentials = store.credentials().unwrap();
    assert_eq!(credentials.relays, ["127.0.0.1:7700", "relay.example:7700"]);
    assert_eq!(credentials.enrollment, Some(enrollment.clone()));
    // Addresses with line breaks (which would split one address in two)
    // and expiries past what SQLite keeps are refused; nothing changes.
    let tx = store.transaction().unwrap();
    assert!(tx.set_relays(&["a:1\nb:2".into()]).is_err());
    assert!(tx.set_relays(&["".into()]).is_err());
    assert!(matches!(
        tx.record_enrollment(&DeviceEnrollment {
            expires_at_ms: crate::STORED_VALUE_MAX + 1,
            ..enrollment.clone()
        }),
        Err(StoreError::OutOfRange { .. })
    ));
    tx.set_relays(&[]).unwrap();
    tx.record_enrollment(&DeviceEnrollment {
        active: false,
        ..enrollment.clone()
    })
    .unwrap();
    tx.commit().unwrap();
    let credentials = store.credentials().unwrap();
    assert!(credentials.relays.is_empty());
    assert!(!credentials.enrollment.unwrap().active);
}

fn check_meta(mut store: DeviceStore) {
    assert_eq!(store.meta(MetaKey::RelayCursor).unwrap(), None);
    let tx = store.transaction().unwrap();
    tx.set_meta(MetaKey::RelayCursor, 5).unwrap();
    tx.set_meta(MetaKey::RelayCursor, 9).unwrap();
    assert_eq!(tx.meta(MetaKey::RelayCursor).unwrap(), Some(9));
    tx.commit().unwrap();
    assert_eq!(store.meta(MetaKey::RelayCursor).unwrap(), Some(9));
    assert_eq!(store.meta(MetaKey::NextOriginSeq).unwrap(), None);
}

fn check_doc_chunks(mut store: DeviceStore) {
    let tx = store.transaction().unwrap();
    tx.append_doc_change(b"c1").unwrap();
    tx.append_doc_change(b"c2").unwrap();
    tx.commit().unwrap();
    assert_eq!(
        store.doc_chunks().unwrap(),
        vec![
            DocChunk::Change(b"c1".to_vec()),
            DocChunk::Change(b"c2".to_vec())
        ]
    );
    let tx = store.transaction().unwrap();
    tx.replace_doc_with_snapshot(b"snap").unwrap();
    tx.append_doc_change(b"c3").unwrap();
    tx.commit().unwrap();
    assert_eq!(
        store.doc_chunks().unwrap(),
        vec![
            DocChunk::Snapshot(b"snap".to_vec()),
            DocChunk::Change(b"c3".to_vec())
        ]
    );
}

fn check_account_keys(mut store: DeviceStore) {
    assert_eq!(store.account_keys().unwrap(), vec![]);
    assert_eq!(store.link_session().unwrap(), None);
    let created = AccountKeyRow {
        generation: 0,
        root: [7; 32],
        source: KeySource::Created,
        epoch: 0,
        snapshot_id: [0; 32],
        granted_by: None,
        added_at_ms: 5,
    };
    let linked = AccountKeyRow {
        generation: u32::MAX,
        root: [8; 32],
        source: KeySource::Linked,
        epoch: crate::STORED_VALUE_MAX,
        snapshot_id: [9; 32],
        granted_by: Some([3; 16]),
        added_at_ms: i64::MIN,
    };
    let tx = store.transaction().unwrap();
    assert!(tx.insert_account_key(&linked).unwrap());
    assert!(tx.insert_account_key(&created).unwrap());
    // A generation held already is kept, not replaced.
    assert!(!tx
        .insert_account_key(&AccountKeyRow {
            root: [1; 32],
            ..created.clone()
        })
        .unwrap());
    tx.commit().unwrap();
    assert_eq!(store.account_keys().unwrap(), vec![created.clone(), linked]);
    // Debug never prints a root.
    assert!(!format!("{created:?}").contains("7, 7"));

    // An epoch above what SQLite holds is refused, not clamped.
    let tx = store.transaction().unwrap();
    let too_far = AccountKeyRow {
        generation: 1,
        epoch: crate::STORED_VALUE_MAX + 1,
        ..created.clone()
    };
    assert!(matches!(
        tx.insert_account_key(&too_far),
        Err(StoreError::OutOfRange { .. })
    ));
    // A linked key must name its granter, a created one must not.
    let unnamed = AccountKeyRow {
        generation: 2,
        source: KeySource::Linked,
        ..created.clone()
    };
    assert!(tx.insert_account_key(&unnamed).is_err());
    drop(tx);

    let session = LinkSessionRow {
        kem_seed: [4; 32],
        psk: [5; 32],
        created_at_ms: 10,
        expires_at_ms: 20,
    };
    let tx = store.transaction().unwrap();
    tx.put_link_session(&session).unwrap();
    tx.commit().unwrap();
    assert_eq!(store.link_session().unwrap(), Some(session.clone()));
    assert!(!format!("{session:?}").contains("4, 4"));
    let newer = LinkSessionRow {
        psk: [6; 32],
        expires_at_ms: 30,
        ..session
    };
    let tx = store.transaction().unwrap();
    tx.put_link_session(&newer).unwrap();
    tx.commit().unwrap();
    assert_eq!(store.link_session().unwrap(), Some(newer));
    let tx = store.transaction().unwrap();
    assert!(tx.delete_link_session().unwrap());
    assert!(!tx.delete_link_session().unwrap());
    tx.commit().unwrap();
    assert_eq!(store.link_session().unwrap(), None);

    // A stored source this build does not know reads as corrupt.
    store
        .conn
        .execute_batch(
            "PRAGMA ignore_check_constraints = ON; \
             UPDATE account_keys SET source = 'recovered' WHERE generation = 0; \
             PRAGMA ignore_check_constraints = OFF;",
        )
        .unwrap();
    assert!(matches!(store.account_keys(), Err(StoreError::Corrupt(_))));
}

fn roster_row(device: u8, key: u8, by: u8, seq: u64, at_ms: i64) -> RosterRow {
    RosterRow {
        device: [device; 16],
        sign_pk: [key; 32],
        kem_pk: [key.wrapping_add(1); 32],
        linked_by: [by; 16],
        linked_seq: seq,
        linked_at_ms: at_ms,
    }
}

fn check_roster(mut store: DeviceStore) {
    assert_eq!(store.roster().unwrap(), vec![]);
    assert_eq!(store.device_kem_seed().unwrap(), None);
    // Two Link operations for device 7, merged in either order, and one
    // for device 3: the earlier one holds for 7, whatever came first.
    let early = roster_row(7, 1, 2, 5, 1_000);
    let late = roster_row(7, 9, 1, 1, 2_000);
    let same_time_lower_device = roster_row(7, 4, 1, u64::from(u32::MAX), 1_000);
    let other = roster_row(3, 5, 2, 6, 3_000);
    let tx = store.transaction().unwrap();
    assert!(tx.link_roster_device(&late).unwrap());
    assert!(tx.link_roster_device(&early).unwrap(), "earlier replaces");
    assert!(
        !tx.link_roster_device(&late).unwrap(),
        "later changes nothing"
    );
    assert!(!tx.link_roster_device(&early).unwrap(), "the same again");
    assert!(tx.link_roster_device(&other).unwrap());
    assert_eq!(tx.roster_entry(&[7; 16]).unwrap(), Some(early.clone()));
    assert_eq!(tx.roster_entry(&[9; 16]).unwrap(), None);
    tx.commit().unwrap();
    assert_eq!(store.roster().unwrap(), vec![other.clone(), early.clone()]);

    // At the same time, the lower linking device wins; then the number.
    let tx = store.transaction().unwrap();
    assert!(tx.link_roster_device(&same_time_lower_device).unwrap());
    assert!(!tx.link_roster_device(&early).unwrap());
    let lower_seq = RosterRow {
        linked_seq: 1,
        ..same_time_lower_device.clone()
    };
    assert!(tx.link_roster_device(&lower_seq).unwrap());
    tx.commit().unwrap();
    assert_eq!(store.roster().unwrap(), vec![other, lower_seq]);

    // A number past i64::MAX cannot be stored and changes nothing.
    let tx = store.transaction().unwrap();
    assert!(tx
        .link_roster_device(&roster_row(8, 1, 1, u64::MAX, 0))
        .is_err());
    drop(tx);
    assert_eq!(store.roster().unwrap().len(), 2);

    // The device's KEM seed is stored once.
    let tx = store.transaction().unwrap();
    assert!(tx.insert_device_kem(&[4; 32], 10).unwrap());
    assert!(!tx.insert_device_kem(&[5; 32], 11).unwrap());
    tx.commit().unwrap();
    assert_eq!(store.device_kem_seed().unwrap(), Some([4; 32]));

    // A key of the wrong size reads as corrupt.
    store
        .conn
        .execute_batch(
            "PRAGMA ignore_check_constraints = ON; \
             UPDATE roster SET sign_pk = x'01' WHERE device = x'03030303030303030303030303030303'; \
             PRAGMA ignore_check_constraints = OFF;",
        )
        .unwrap();
    assert!(matches!(store.roster(), Err(StoreError::Corrupt(_))));
}

fn delta(n: u8, origin: [u8; 16]) -> DeltaRow {
    DeltaRow {
        local_seq: 0,
        content_id: [n; 32],
        origin,
        origin_seq: u64::from(n),
        made_at_ms: 10 * i64::from(n),
        bytes: vec![n; 3],
        relay_seq: None,
        applied: true,
        envelope: None,
    }
}

fn own_envelope(n: u8, chain_pos: u64, prev: [u8; 32], through_local_seq: i64) -> EnvelopeRow {
    EnvelopeRow {
        content_id: [0xe0 + n; 32],
        origin: [7; 16],
        chain_pos,
        prev,
        epoch: 0,
        own: Some(OwnEnvelope {
            bytes: vec![n; 5],
            through_local_seq,
        }),
        relay_seq: None,
    }
}

fn check_envelopes(mut store: DeviceStore) {
    let tx = store.transaction().unwrap();
    tx.insert_identity(&identity()).unwrap();
    for n in 1..=3 {
        assert!(tx.insert_delta(&delta(n, [7; 16])).unwrap());
    }
    tx.commit().unwrap();
    assert_eq!(store.own_chain_head().unwrap(), None);
    let locals: Vec<i64> = store
        .unsealed_outbox_after(0, 10)
        .unwrap()
        .iter()
        .map(|d| d.local_seq)
        .collect();
    assert_eq!(locals.len(), 3);

    // Deltas 1 and 2 sealed in the first envelope, 3 in the second.
    let first = own_envelope(1, 1, [0; 32], locals[1]);
    let second = own_envelope(2, 2, first.content_id, locals[2]);
    let tx = store.transaction().unwrap();
    assert!(tx.insert_envelope(&first).unwrap());
    assert!(!tx.insert_envelope(&first).unwrap(), "stored twice");
    let fork = EnvelopeRow {
        content_id: [0xee; 32],
        ..first.clone()
    };
    assert!(
        !tx.insert_envelope(&fork).unwrap(),
        "a second one at position 1"
    );
    assert!(tx.insert_envelope(&second).unwrap());
    tx.set_delta_envelope(&[1; 32], &first.content_id).unwrap();
    tx.set_delta_envelope(&[2; 32], &first.content_id).unwrap();
    tx.set_delta_envelope(&[3; 32], &second.content_id).unwrap();
    tx.commit().unwrap();
    assert!(store.unsealed_outbox_after(0, 10).unwrap().is_empty());
    assert_eq!(store.own_chain_head().unwrap(), Some(second.clone()));
    // Relay entries held: both envelopes and the deltas, not the fork.
    for held in [first.content_id, second.content_id, [1; 32], [3; 32]] {
        assert!(store.has_entry(&held).unwrap());
    }
    assert!(!store.has_entry(&[0xee; 32]).unwrap());
    assert_eq!(
        store.chain_link_at(&[7; 16], 2).unwrap(),
        Some((second.content_id, first.content_id))
    );
    assert_eq!(store.chain_link_at(&[7; 16], 3).unwrap(), None);
    assert_eq!(store.chain_link_at(&[7; 16], u64::MAX).unwrap(), None);
    assert_eq!(
        store.envelope_at(&[7; 16], 1).unwrap(),
        Some(first.content_id)
    );
    assert_eq!(store.envelope_at(&[7; 16], 3).unwrap(), None);
    assert_eq!(store.envelope_at(&[7; 16], u64::MAX).unwrap(), None);
    assert_eq!(
        store.envelope_outbox_after(0, 10).unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert_eq!(
        store.envelope_outbox_after(locals[1], 10).unwrap(),
        vec![second.clone()]
    );
    let sealed_in: Vec<_> = store
        .deltas_after(0, 10)
        .unwrap()
        .iter()
        .map(|d| d.envelope)
        .collect();
    assert_eq!(
        sealed_in,
        [
            Some(first.content_id),
            Some(first.content_id),
            Some(second.content_id)
        ]
    );

    // The relay accepts the first envelope: it and both its deltas leave
    // the outboxes; the second stays.
    let tx = store.transaction().unwrap();
    assert!(tx.set_relay_seq(&first.content_id, 40).unwrap());
    assert!(!tx.set_relay_seq(&[0xab; 32], 41).unwrap(), "unknown");
    tx.commit().unwrap();
    assert_eq!(
        store.envelope_outbox_after(0, 10).unwrap(),
        vec![second.clone()]
    );
    let outbox = outbox_ids(&store);
    assert_eq!(outbox, [3]);

    // A received envelope keeps no bytes; a row with bytes but no delta
    // position is corrupt.
    let received = EnvelopeRow {
        content_id: [0xd0; 32],
        origin: [8; 16],
        chain_pos: 1,
        prev: [0; 32],
        epoch: 0,
        own: None,
        relay_seq: Some(42),
    };
    let tx = store.transaction().unwrap();
    assert!(tx.insert_envelope(&received).unwrap());
    tx.commit().unwrap();
    assert_eq!(
        store.envelope_at(&[8; 16], 1).unwrap(),
        Some(received.content_id)
    );
    assert!(store
        .conn
        .execute(
            "UPDATE envelopes SET through_local_seq = NULL WHERE chain_pos = 2 AND own = 1",
            [],
        )
        .is_err());
}

/// The first byte of each outbox delta's content id, in outbox order.
fn outbox_ids(store: &DeviceStore) -> Vec<u8> {
    store
        .outbox(10)
        .unwrap()
        .iter()
        .map(|d| d.content_id[0])
        .collect()
}

/// `synchronous` as the connection has it now: 1 NORMAL, 2 FULL.
fn synchronous(store: &DeviceStore) -> i64 {
    store
        .conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .unwrap()
}

fn check_relaxed_merges(mut store: DeviceStore) {
    assert!(!store.relaxed_merges(), "off at open");
    store.merge_transaction().unwrap().commit().unwrap();
    assert_eq!(synchronous(&store), 2, "a merge is synced unless relaxed");
    store.set_relaxed_merges(true);
    store.merge_transaction().unwrap().commit().unwrap();
    assert_eq!(synchronous(&store), 1, "a relaxed merge is not synced");
    store.transaction().unwrap().commit().unwrap();
    assert_eq!(synchronous(&store), 2, "any other transaction is");
    store.merge_transaction().unwrap().commit().unwrap();
    assert_eq!(synchronous(&store), 1);
    store.set_relaxed_merges(false);
    store.merge_transaction().unwrap().commit().unwrap();
    assert_eq!(synchronous(&store), 2);
    // An unsynced transaction is unsynced whatever the setting, and the
    // next synced one is synced again.
    store.unsynced_transaction().unwrap().commit().unwrap();
    assert_eq!(synchronous(&store), 1, "unsynced while merges are synced");
    store.merge_transaction().unwrap().commit().unwrap();
    assert_eq!(synchronous(&store), 2);
    store.set_relaxed_merges(true);
    store.unsynced_transaction().unwrap().commit().unwrap();
    assert_eq!(synchronous(&store), 1);
    store.transaction().unwrap().commit().unwrap();
    assert_eq!(synchronous(&store), 2);
}

fn check_deltas(mut store: DeviceStore) {
    let tx = store.transaction().unwrap();
    tx.insert_identity(&identity()).unwrap();
    assert!(tx.insert_delta(&delta(1, [7; 16])).unwrap());
    assert!(
        !tx.insert_delta(&delta(1, [7; 16])).unwrap(),
        "stored twice"
    );
    assert!(tx.insert_delta(&delta(2, [8; 16])).unwrap());
    assert!(tx
        .insert_delta(&DeltaRow {
            applied: false,
            ..delta(3, [7; 16])
        })
        .unwrap());
    tx.commit().unwrap();
    assert!(store.has_delta(&[2; 32]).unwrap());
    assert!(!store.has_delta(&[9; 32]).unwrap());

    let outbox = outbox_ids(&store);
    assert_eq!(outbox, [1, 3], "only own, unacknowledged deltas");
    let first = store.outbox(1).unwrap()[0].local_seq;
    let rest: Vec<_> = store
        .unsealed_outbox_after(first, 10)
        .unwrap()
        .iter()
        .map(|d| d.content_id[0])
        .collect();
    assert_eq!(rest, [3], "the outbox after its first delta");
    assert_eq!(
        store.unsealed_outbox_after(0, 1).unwrap()[0].content_id,
        [1; 32]
    );
    assert!(store
        .unsealed_outbox_after(i64::MAX, 10)
        .unwrap()
        .is_empty());
    let all = store.deltas_after(0, 10).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(
        all[1],
        DeltaRow {
            local_seq: all[1].local_seq,
            ..delta(2, [8; 16])
        }
    );
    let after_first = store.deltas_after(all[0].local_seq, 1).unwrap();
    assert_eq!(after_first.len(), 1, "limit");
    assert_eq!(after_first[0].content_id, [2; 32]);
    let pending: Vec<_> = store
        .pending_deltas()
        .unwrap()
        .iter()
        .map(|d| d.content_id[0])
        .collect();
    assert_eq!(pending, [3]);

    let tx = store.transaction().unwrap();
    assert!(tx.set_relay_seq(&[1; 32], 41).unwrap());
    assert!(!tx.set_relay_seq(&[9; 32], 42).unwrap(), "unknown delta");
    tx.mark_delta_applied(&[3; 32]).unwrap();
    tx.commit().unwrap();
    let outbox = outbox_ids(&store);
    assert_eq!(outbox, [3]);
    assert!(store.pending_deltas().unwrap().is_empty());
}

fn check_seq_bounds(mut store: DeviceStore) {
    let max = i64::MAX as u64;
    let tx = store.transaction().unwrap();
    tx.insert_identity(&identity()).unwrap();
    // At the bound: kept exactly.
    let at_max = DeltaRow {
        origin_seq: max,
        relay_seq: Some(max),
        ..delta(1, [7; 16])
    };
    assert!(tx.insert_delta(&at_max).unwrap());
    assert_eq!(tx.delta_applied(&[7; 16], max).unwrap(), Some(true));
    assert!(tx.set_relay_seq(&[1; 32], max - 1).unwrap());
    tx.set_meta_u64(MetaKey::RelayCursor, max).unwrap();
    // Above it: refused, never clamped or wrapped.
    for above in [max + 1, u64::MAX] {
        let refused = tx.insert_delta(&DeltaRow {
            origin_seq: above,
            ..delta(2, [7; 16])
        });
        assert!(matches!(refused, Err(StoreError::OutOfRange { value, .. }) if value == above));
        let refused = tx.insert_delta(&DeltaRow {
            relay_seq: Some(above),
            ..delta(3, [7; 16])
        });
        assert!(matches!(refused, Err(StoreError::OutOfRange { value, .. }) if value == above));
        assert!(tx.set_relay_seq(&[1; 32], above).is_err());
        assert!(tx.set_meta_u64(MetaKey::RelayCursor, above).is_err());
        assert!(tx.delta_applied(&[7; 16], above).is_err());
    }
    tx.commit().unwrap();
    let rows = store.deltas_after(0, 10).unwrap();
    assert_eq!(rows.len(), 1, "nothing above the bound was stored");
    assert_eq!(
        (rows[0].origin_seq, rows[0].relay_seq),
        (max, Some(max - 1))
    );
    assert_eq!(store.meta_u64(MetaKey::RelayCursor).unwrap(), Some(max));

    // A negative stored number is corrupt, not a small one.
    let tx = store.transaction().unwrap();
    tx.set_meta(MetaKey::RelayCursor, -1).unwrap();
    assert!(matches!(
        tx.meta_u64(MetaKey::RelayCursor),
        Err(StoreError::Corrupt(_))
    ));
    tx.commit().unwrap();
    assert!(matches!(
        store.meta_u64(MetaKey::RelayCursor),
        Err(StoreError::Corrupt(_))
    ));
    store
        .conn
        .execute("UPDATE deltas SET relay_seq = -5", [])
        .unwrap();
    assert!(matches!(
        store.deltas_after(0, 10),
        Err(StoreError::Corrupt(_))
    ));
}

fn message(id: &str, conversation: &str, sender: &str, at: i64) -> MessageRecord {
    MessageRecord {
        id: id.into(),
        conversation: conversation.into(),
        sender: sender.into(),
        sent_at_ms: at,
        body: format!("body of {id}"),
    }
}

fn check_messages(mut store: DeviceStore) {
    let tx = store.transaction().unwrap();
    assert!(tx
        .insert_message(&message("m1", "u:bob", "bob", 10))
        .unwrap());
    let mut changed = message("m1", "u:bob", "bob", 10);
    changed.body = "other".into();
    assert!(!tx.insert_message(&changed).unwrap(), "a second copy");
    // A recall may arrive before its message.
    tx.merge_message_flags(
        "m2",
        FlagsUpdate {
            recalled: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(tx
        .insert_message(&message("m2", "u:bob", "bob", 20))
        .unwrap());
    let read = FlagsUpdate {
        receipt: Receipt::Read,
        ..Default::default()
    };
    assert!(
        tx.merge_message_flags("m1", read).unwrap(),
        "a receipt rises"
    );
    assert!(
        !tx.merge_message_flags("m1", read).unwrap(),
        "the same again"
    );
    assert!(
        !tx.merge_message_flags(
            "m1",
            FlagsUpdate {
                receipt: Receipt::Delivered,
                ..Default::default()
            },
        )
        .unwrap(),
        "a lower receipt moves nothing"
    );
    assert!(!tx
        .merge_message_flags("m2", FlagsUpdate::default())
        .unwrap());
    assert!(
        !tx.merge_message_flags(
            "m2",
            FlagsUpdate {
                recalled: true,
                ..Default::default()
            },
        )
        .unwrap(),
        "recalled already"
    );
    assert!(
        tx.merge_message_flags(
            "never-seen",
            FlagsUpdate {
                deleted: true,
                ..Default::default()
            },
        )
        .unwrap(),
        "a flag of a message not known yet is recorded"
    );
    assert_eq!(
        tx.message_conversation("m1").unwrap().as_deref(),
        Some("u:bob")
    );
    tx.commit().unwrap();

    let m1 = store.message("m1").unwrap().unwrap();
    assert_eq!(m1.body, "body of m1");
    assert_eq!(m1.receipt, Receipt::Read, "receipts never move back");
    let m2 = store.message("m2").unwrap().unwrap();
    assert!(m2.recalled, "once recalled, always recalled");
    assert_eq!(m2.body, "", "a recalled message shows no content");

    let tx = store.transaction().unwrap();
    tx.merge_message_flags(
        "m1",
        FlagsUpdate {
            deleted: true,
            ..Default::default()
        },
    )
    .unwrap();
    tx.commit().unwrap();
    assert_eq!(store.message("m1").unwrap(), None, "deleted for me");
    // Group read receipts: a grow-only set, read as marks that only rise.
    let tx = store.transaction().unwrap();
    assert!(tx.add_group_ack("m2", "carol").unwrap());
    assert!(!tx.add_group_ack("m2", "carol").unwrap(), "once");
    assert!(tx.add_group_ack("m1", "dave").unwrap());
    assert!(
        tx.add_group_ack("m-later", "erin").unwrap(),
        "before its message"
    );
    tx.commit().unwrap();
    assert_eq!(
        store.group_read_by("m1").unwrap(),
        ["carol", "dave"],
        "carol read m2, after m1"
    );
    assert_eq!(store.group_read_by("m2").unwrap(), ["carol"]);
    assert!(store.group_read_by("nope").unwrap().is_empty());
    assert_eq!(store.group_acks().unwrap().len(), 3);
    assert_eq!(store.message_log().unwrap().len(), 2, "the log keeps it");
    assert_eq!(
        store.latest_message("u:bob").unwrap(),
        Some((20, "m2".into()))
    );
}

fn check_conversations(mut store: DeviceStore) {
    let tx = store.transaction().unwrap();
    for (id, sender, at) in [
        ("a1", "bob", 10),
        ("a2", ME, 20),
        ("a3", "bob", 30),
        ("a4", "bob", 30),
    ] {
        tx.insert_message(&message(id, "u:bob", sender, at))
            .unwrap();
    }
    tx.insert_message(&message("c1", "g:team", "carol", 5))
        .unwrap();
    tx.refresh_conversation("u:bob", ME).unwrap();
    tx.refresh_conversation("g:team", ME).unwrap();
    tx.commit().unwrap();

    let bob = store.conversation("u:bob").unwrap().unwrap();
    assert_eq!(bob.unread, 3, "own messages are never unread");
    assert_eq!(bob.last_message.as_deref(), Some("a4"), "ties break by id");
    assert_eq!(bob.last_activity_ms, 30);
    let list: Vec<_> = store
        .conversation_list(0, 10)
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(list, ["u:bob", "g:team"], "newest activity first");

    // Read up to a3: a4 (same time, larger id) stays unread. Pin the group.
    let tx = store.transaction().unwrap();
    assert!(tx.raise_read_marker("u:bob", 30, "a3").unwrap());
    assert!(
        !tx.raise_read_marker("u:bob", 30, "a2").unwrap(),
        "never back"
    );
    assert!(
        !tx.raise_read_marker("u:bob", 10, "a9").unwrap(),
        "never back"
    );
    assert_eq!(tx.read_marker("u:bob").unwrap(), (30, "a3".to_owned()));
    assert_eq!(tx.read_marker("u:nobody").unwrap(), (0, String::new()));
    tx.refresh_conversation("u:bob", ME).unwrap();
    let pinned = ConversationFlags {
        pinned: true,
        do_not_disturb: DoNotDisturb::OFF,
        marks: vec!["important".into(), "work".into()],
        pinned_messages: Vec::new(),
    };
    tx.put_conversation_flags("g:team", &pinned, ME).unwrap();

    tx.commit().unwrap();
    assert_eq!(store.conversation("u:bob").unwrap().unwrap().unread, 1);
    assert_eq!(store.unread_conversations().unwrap(), ["g:team", "u:bob"]);
    let list = store.conversation_list(0, 10).unwrap();
    assert_eq!(list[0].id, "g:team", "pinned first");
    assert_eq!(
        list[0].settings,
        ConversationSettings {
            pinned: true,
            marks: pinned.marks.clone(),
            ..Default::default()
        }
    );
    assert_eq!(store.conversation_list(1, 10).unwrap().len(), 1, "offset");

    // Every do-not-disturb mode and pinned messages read back as written.
    for mode in [
        DoNotDisturb::SILENT,
        DoNotDisturb {
            remind: RemindType::MentionsOnly,
            quiet: Some(QuietTime::Until { until_ms: i64::MAX }),
        },
        DoNotDisturb {
            remind: RemindType::All,
            quiet: Some(QuietTime::Daily {
                start_minute: 1_380,
                end_minute: 420,
                utc_offset_minutes: -UTC_OFFSET_MINUTES_MAX,
            }),
        },
    ] {
        let flags = ConversationFlags {
            do_not_disturb: mode,
            pinned_messages: vec![
                PinnedMessage {
                    message: "a1".into(),
                    pinned_at_ms: 7,
                },
                PinnedMessage {
                    message: "a2".into(),
                    pinned_at_ms: 8,
                },
            ],
            ..Default::default()
        };
        let tx = store.transaction().unwrap();
        tx.put_conversation_flags("u:dnd", &flags, ME).unwrap();
        tx.commit().unwrap();
        let row = store.conversation("u:dnd").unwrap().unwrap();
        assert_eq!(row.settings.do_not_disturb, mode);
        assert_eq!(
            store.pinned_messages("u:dnd").unwrap(),
            flags.pinned_messages
        );
    }
    let tx = store.transaction().unwrap();
    tx.put_conversation_flags("u:dnd", &ConversationFlags::default(), ME)
        .unwrap();
    tx.commit().unwrap();
    assert!(store.pinned_messages("u:dnd").unwrap().is_empty());
    assert_eq!(
        store.all_pinned_messages().unwrap(),
        Vec::<(String, PinnedMessage)>::new()
    );

    // Deleting the conversation up to 30 clears it and hides it; a newer
    // message brings it back. The clear point never moves back either.
    let tx = store.transaction().unwrap();
    assert!(tx.raise_cleared("u:bob", 30).unwrap());
    assert!(!tx.raise_cleared("u:bob", 20).unwrap());
    tx.refresh_conversation("u:bob", ME).unwrap();
    tx.commit().unwrap();
    let bob = store.conversation("u:bob").unwrap().unwrap();
    assert!(!bob.listed);
    assert_eq!(bob.unread, 0);
    assert!(store.messages("u:bob", None, 10).unwrap().is_empty());
    let tx = store.transaction().unwrap();
    tx.insert_message(&message("a5", "u:bob", "bob", 31))
        .unwrap();
    tx.refresh_conversation("u:bob", ME).unwrap();
    tx.commit().unwrap();
    let bob = store.conversation("u:bob").unwrap().unwrap();
    assert!(bob.listed);
    assert_eq!(bob.unread, 1);
    let page: Vec<_> = store
        .messages("u:bob", None, 10)
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(page, ["a5"]);
    assert_eq!(
        store.all_conversations().unwrap().len(),
        3,
        "u:dnd has no messages"
    );
}

fn check_entities(mut store: DeviceStore) {
    let contact = ContactRow {
        user_id: "bob".into(),
        status: ContactStatus::Friend,
        remark: "Bobby".into(),
        since_ms: 3,
    };
    let group = GroupRow {
        id: "g1".into(),
        state: GroupStanding::Member,
        name: "Team".into(),
        description: "d".into(),
        announcement: "a".into(),
        owner: ME.into(),
        messages_blocked: false,
        mute_all: true,
        disabled: true,
        members: vec![
            GroupMember {
                user_id: ME.into(),
                role: MemberRole::Owner,
                muted_until_ms: 0,
            },
            GroupMember {
                user_id: "bob".into(),
                role: MemberRole::Member,
                muted_until_ms: 99,
            },
        ],
        banned: vec!["eve".into()],
        allowed: vec!["bob".into()],
        invited: vec!["carol".into(), "dave".into()],
        applicants: vec!["erin".into()],
        attributes: vec![MemberAttribute {
            user_id: "bob".into(),
            key: "nick".into(),
            value: "b".into(),
        }],
    };
    let thread = ThreadRow {
        id: "t1".into(),
        group_id: "g1".into(),
        name: "Plans".into(),
        members: vec![ME.into(), "bob".into()],
    };
    let tx = store.transaction().unwrap();
    tx.put_contact("bob", Some(&contact)).unwrap();
    tx.put_blocked(
        "eve",
        Some(&BlockedRow {
            user_id: "eve".into(),
            since_ms: 4,
        }),
    )
    .unwrap();
    tx.put_group("g1", Some(&group)).unwrap();
    tx.put_group("g1", Some(&group)).unwrap();
    tx.put_thread("t1", Some(&thread)).unwrap();
    tx.commit().unwrap();
    assert_eq!(store.contacts().unwrap(), [contact]);
    assert_eq!(store.blocklist().unwrap().len(), 1);
    assert_eq!(store.groups().unwrap(), [group]);
    assert_eq!(store.threads().unwrap(), [thread]);

    let tx = store.transaction().unwrap();
    tx.put_contact("bob", None).unwrap();
    tx.put_blocked("eve", None).unwrap();
    tx.put_group("g1", None).unwrap();
    tx.put_thread("t1", None).unwrap();
    tx.commit().unwrap();
    assert!(store.contacts().unwrap().is_empty());
    assert!(store.blocklist().unwrap().is_empty());
    assert!(store.groups().unwrap().is_empty());
    assert!(store.threads().unwrap().is_empty());
}

fn check_states(mut store: DeviceStore) {
    // Every state round-trips through its text form, as stored.
    for status in ContactStatus::ALL {
        assert_eq!(status.as_str().parse::<ContactStatus>(), Ok(*status));
        let tx = store.transaction().unwrap();
        let row = ContactRow {
            user_id: "bob".into(),
            status: *status,
            remark: String::new(),
            since_ms: 1,
        };
        tx.put_contact("bob", Some(&row)).unwrap();
        tx.commit().unwrap();
        assert_eq!(store.contacts().unwrap(), [row]);
    }
    for standing in GroupStanding::ALL {
        assert_eq!(standing.as_str().parse::<GroupStanding>(), Ok(*standing));
    }
    for role in MemberRole::ALL {
        assert_eq!(role.as_str().parse::<MemberRole>(), Ok(*role));
    }
    let mut members: Vec<GroupMember> = MemberRole::ALL
        .iter()
        .map(|role| GroupMember {
            user_id: role.as_str().into(),
            role: *role,
            muted_until_ms: 0,
        })
        .collect();
    members.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    let group = GroupRow {
        id: "g1".into(),
        state: GroupStanding::Applied,
        name: String::new(),
        description: String::new(),
        announcement: String::new(),
        owner: String::new(),
        messages_blocked: false,
        mute_all: false,
        disabled: false,
        members,
        banned: Vec::new(),
        allowed: Vec::new(),
        invited: Vec::new(),
        applicants: Vec::new(),
        attributes: Vec::new(),
    };
    let tx = store.transaction().unwrap();
    tx.put_group("g1", Some(&group)).unwrap();
    tx.commit().unwrap();
    assert_eq!(store.group("g1").unwrap(), Some(group));

    // A stored text this build does not know is corrupt data, never a
    // default and never a panic.
    let corrupt = |store: &DeviceStore, sql: &str| {
        store.conn.execute(sql, []).unwrap();
    };
    corrupt(
        &store,
        "UPDATE contacts SET status = 'invited' WHERE user_id = 'bob'",
    );
    assert!(
        matches!(store.contacts(), Err(StoreError::Corrupt(e)) if e.contains("invited")),
        "{:?}",
        store.contacts()
    );
    corrupt(&store, "UPDATE groups SET state = '' WHERE id = 'g1'");
    assert!(matches!(store.group("g1"), Err(StoreError::Corrupt(_))));
    assert!(matches!(store.groups(), Err(StoreError::Corrupt(_))));
    corrupt(&store, "UPDATE groups SET state = 'member' WHERE id = 'g1'");
    assert!(store.group("g1").is_ok());
    corrupt(
        &store,
        "UPDATE group_users SET role = 'Owner' WHERE user_id = 'owner'",
    );
    assert!(matches!(store.group("g1"), Err(StoreError::Corrupt(_))));
}

fn check_rollback(mut store: DeviceStore) {
    {
        let tx = store.transaction().unwrap();
        tx.insert_message(&message("m1", "u:bob", "bob", 1))
            .unwrap();
        tx.append_doc_change(b"c").unwrap();
        tx.insert_delta(&delta(1, [7; 16])).unwrap();
        // Dropped without commit.
    }
    assert!(store.message_log().unwrap().is_empty());
    assert!(store.doc_chunks().unwrap().is_empty());
    assert!(!store.has_delta(&[1; 32]).unwrap());
}

fn check_events(mut store: DeviceStore) {
    assert_eq!(store.events_head().unwrap(), 0);
    let tx = store.transaction().unwrap();
    let first = tx
        .append_event(&EventRow {
            seq: 0,
            content_id: [1; 32],
            origin: [2; 16],
            origin_seq: Some(1),
            made_at_ms: 5,
            body: b"e1".to_vec(),
        })
        .unwrap();
    let second = tx
        .append_event(&EventRow {
            seq: 0,
            content_id: [3; 32],
            origin: [2; 16],
            origin_seq: None,
            made_at_ms: 6,
            body: b"e2".to_vec(),
        })
        .unwrap();
    let again = tx
        .append_event(&EventRow {
            seq: 0,
            content_id: [1; 32],
            origin: [2; 16],
            origin_seq: Some(2),
            made_at_ms: 7,
            body: b"e1 again".to_vec(),
        })
        .unwrap();
    assert_eq!(again, None, "journaled once per content id");
    // The same operation under another content id (sealed again in a
    // later epoch) is not journaled twice either.
    let resealed = tx
        .append_event(&EventRow {
            seq: 0,
            content_id: [4; 32],
            origin: [2; 16],
            origin_seq: Some(1),
            made_at_ms: 5,
            body: b"e1 resealed".to_vec(),
        })
        .unwrap();
    assert_eq!(resealed, None, "journaled once per operation");
    // Events without a number (payloads) never collide with each other.
    let payload = tx
        .append_event(&EventRow {
            seq: 0,
            content_id: [5; 32],
            origin: [2; 16],
            origin_seq: None,
            made_at_ms: 8,
            body: b"p".to_vec(),
        })
        .unwrap();
    assert!(payload.is_some());
    // A number no operation has, or one SQLite cannot hold, is refused.
    for bad in [0, crate::STORED_VALUE_MAX + 1] {
        assert!(tx
            .append_event(&EventRow {
                seq: 0,
                content_id: [6; 32],
                origin: [2; 16],
                origin_seq: Some(bad),
                made_at_ms: 9,
                body: Vec::new(),
            })
            .is_err());
    }
    tx.commit().unwrap();
    let (first, second) = (first.unwrap(), second.unwrap());
    assert!(second > first);
    assert_eq!(store.events_head().unwrap(), payload.unwrap());
    let events = store.events_after(0, 10).unwrap();
    assert_eq!(
        events.iter().map(|e| e.body.clone()).collect::<Vec<_>>(),
        [b"e1".to_vec(), b"e2".to_vec(), b"p".to_vec()]
    );
    assert_eq!(
        events.iter().map(|e| e.origin_seq).collect::<Vec<_>>(),
        [Some(1), None, None]
    );
    assert_eq!(store.events_after(first, 10).unwrap().len(), 2);
}

#[test]
fn a_newer_schema_is_refused_not_downgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    drop(DeviceStore::open(Location::File(&path)).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(
        None,
        "user_version",
        DeviceStore::schema_version_known() + 1,
    )
    .unwrap();
    drop(conn);
    match DeviceStore::open(Location::File(&path)) {
        Err(crate::OpenError::SchemaTooNew { found, known }) => {
            assert_eq!(found, known + 1);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    let mut store = DeviceStore::open(Location::File(&path)).unwrap();
    let tx = store.transaction().unwrap();
    tx.insert_identity(&identity()).unwrap();
    tx.insert_message(&message("m1", "u:bob", "bob", 1))
        .unwrap();
    tx.commit().unwrap();
    drop(store);
    let store = DeviceStore::open(Location::File(&path)).unwrap();
    assert_eq!(store.identity().unwrap(), Some(identity()));
    assert_eq!(store.message_log().unwrap().len(), 1);
}

#[test]
fn version_2_repairs_positions_an_earlier_build_wrapped_negative() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    {
        // A version-1 store as an earlier build left it: a remote delta
        // numbered 2^63 (stored as i64::MIN), an own delta acknowledged at
        // 2^63, and the cursor moved there.
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        crate::migrate::open_durable(&mut conn, &MIGRATIONS[..1]).unwrap();
        insert_old_identity(&conn);
        let mut store = DeviceStore::on(conn);
        let tx = store.transaction().unwrap();
        tx.insert_delta(&delta(1, identity().device_id)).unwrap();
        tx.insert_delta(&DeltaRow {
            applied: false,
            ..delta(2, [8; 16])
        })
        .unwrap();
        tx.insert_delta(&delta(3, [8; 16])).unwrap();
        tx.commit().unwrap();
        store
            .conn
            .execute_batch(
                "UPDATE deltas SET origin_seq = -9223372036854775808 WHERE origin_seq = 2; \
                 UPDATE deltas SET relay_seq = -9223372036854775808 WHERE origin_seq = 1; \
                 UPDATE deltas SET relay_seq = 4 WHERE origin_seq = 3; \
                 INSERT INTO meta (key, value) VALUES ('relay_cursor', -9223372036854775808);",
            )
            .unwrap();
    }
    let store = DeviceStore::open(Location::File(&path)).unwrap();
    let rows = store.deltas_after(0, 10).unwrap();
    let kept: Vec<_> = rows
        .iter()
        .map(|r| (r.content_id[0], r.relay_seq))
        .collect();
    assert_eq!(kept, [(1, None), (3, Some(4))], "the wrapped delta is gone");
    assert_eq!(
        store.outbox(10).unwrap().len(),
        1,
        "the own delta is back in the outbox"
    );
    assert_eq!(store.meta_u64(MetaKey::RelayCursor).unwrap(), Some(0));
}

#[test]
fn version_3_keeps_an_old_device_and_leaves_its_key_to_be_made() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        crate::migrate::open_durable(&mut conn, &MIGRATIONS[..2]).unwrap();
        insert_old_identity(&conn);
        let mut store = DeviceStore::on(conn);
        let tx = store.transaction().unwrap();
        tx.insert_delta(&delta(1, identity().device_id)).unwrap();
        tx.commit().unwrap();
    }
    let mut store = DeviceStore::open(Location::File(&path)).unwrap();
    let old = store.identity().unwrap().unwrap();
    assert_eq!(
        old,
        Identity {
            signing_key: None,
            ..identity()
        }
    );
    assert_eq!(store.deltas_after(0, 10).unwrap().len(), 1, "data kept");
    assert_eq!(store.credentials().unwrap(), Credentials::default());
    let tx = store.transaction().unwrap();
    assert!(tx.set_signing_key(&[9; 32]).unwrap());
    tx.commit().unwrap();
    assert_eq!(
        store.identity().unwrap().unwrap().signing_key,
        Some([9; 32])
    );
}

#[test]
fn version_9_names_journaled_operations_by_origin_and_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device.db");
    {
        // A version-8 store: two merged operations journaled by content id
        // alone, and a payload event (no delta).
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        crate::migrate::open_durable(&mut conn, &MIGRATIONS[..8]).unwrap();
        for (id, seq) in [(1u8, 1i64), (2, crate::STORED_VALUE_MAX as i64)] {
            conn.execute(
                "INSERT INTO deltas (content_id, origin, origin_seq, made_at_ms, bytes, applied) \
                 VALUES (?1, ?2, ?3, 0, x'00', 1)",
                rusqlite::params![&[id; 32][..], &[9u8; 16][..], seq],
            )
            .unwrap();
        }
        for id in [1u8, 2, 3] {
            conn.execute(
                "INSERT INTO events (content_id, origin, made_at_ms, body) \
                 VALUES (?1, ?2, 0, x'00')",
                rusqlite::params![&[id; 32][..], &[9u8; 16][..]],
            )
            .unwrap();
        }
    }
    let mut store = DeviceStore::open(Location::File(&path)).unwrap();
    let numbers: Vec<_> = store
        .events_after(0, 10)
        .unwrap()
        .iter()
        .map(|e| e.origin_seq)
        .collect();
    assert_eq!(numbers, [Some(1), Some(crate::STORED_VALUE_MAX), None]);
    // The migrated numbers now keep an operation from being heard twice.
    let tx = store.transaction().unwrap();
    let again = tx
        .append_event(&EventRow {
            seq: 0,
            content_id: [7; 32],
            origin: [9; 16],
            origin_seq: Some(1),
            made_at_ms: 0,
            body: Vec::new(),
        })
        .unwrap();
    assert_eq!(again, None);
}
