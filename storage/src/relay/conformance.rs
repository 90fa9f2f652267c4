//! The relay store conformance suite: every case runs against every
//! backend, through [`relay_store_conformance!`].

use super::*;

const A: &str = "alice";
const B: &str = "bob";
const PHONE: DeviceKey = [1; 16];
const LAPTOP: DeviceKey = [2; 16];
const TABLET: DeviceKey = [3; 16];

fn login<'a>(account: &'a str, device: DeviceKey, token: u8, now_ms: u64) -> Login<'a> {
    Login {
        account,
        device,
        name: "dev",
        platform: "linux",
        token_hash: [token; 32],
        resume_cursor: 0,
        now_ms,
        devices_max: 8,
    }
}

fn accepted(outcome: LoginOutcome) -> (DeviceRow, bool) {
    match outcome {
        LoginOutcome::Accepted {
            device,
            first_login,
        } => (device, first_login),
        other => panic!("login refused: {other:?}"),
    }
}

fn content(n: u8) -> ContentKey {
    [n; 32]
}

/// Appends deltas `ns` (content id and bytes derived from each n).
fn append_n(
    store: &mut impl RelayStore,
    account: &str,
    origin: DeviceKey,
    ns: &[u8],
) -> Vec<Appended> {
    let bytes: Vec<Vec<u8>> = ns.iter().map(|&n| vec![n; n as usize + 1]).collect();
    let deltas: Vec<(ContentKey, &[u8])> = ns
        .iter()
        .zip(&bytes)
        .map(|(&n, b)| (content(n), b.as_slice()))
        .collect();
    store.append(account, origin, &deltas).unwrap()
}

pub(super) fn login_registers_then_updates(store: &mut impl RelayStore) {
    let (row, first) = accepted(store.login(&login(A, PHONE, 1, 100)).unwrap());
    assert!(first);
    assert_eq!(
        (row.first_login_ms, row.last_seen_ms, row.cursor),
        (100, 100, 0)
    );
    let mut again = login(A, PHONE, 2, 200);
    again.name = "renamed";
    again.platform = "android";
    let (row, first) = accepted(store.login(&again).unwrap());
    assert!(!first);
    assert_eq!((row.first_login_ms, row.last_seen_ms), (100, 200));
    assert_eq!(
        (row.name.as_str(), row.platform.as_str()),
        ("renamed", "android")
    );
    assert_eq!(store.devices(A).unwrap(), vec![row]);
    assert!(store.devices(B).unwrap().is_empty());
}

pub(super) fn devices_are_listed_by_id_and_touch_updates_last_seen(store: &mut impl RelayStore) {
    accepted(store.login(&login(A, LAPTOP, 1, 10)).unwrap());
    accepted(store.login(&login(A, PHONE, 1, 20)).unwrap());
    store.touch(A, PHONE, 99).unwrap();
    store.touch(A, TABLET, 99).unwrap(); // unknown: ignored
    let devices = store.devices(A).unwrap();
    assert_eq!(
        devices.iter().map(|d| d.device).collect::<Vec<_>>(),
        vec![PHONE, LAPTOP]
    );
    assert_eq!(devices[0].last_seen_ms, 99);
    assert_eq!(devices[1].last_seen_ms, 10);
}

pub(super) fn device_limit_below_at_above(store: &mut impl RelayStore) {
    let max = 3;
    for n in 0..max {
        let mut l = login(A, [n; 16], 1, 1);
        l.devices_max = max as usize;
        accepted(store.login(&l).unwrap());
    }
    let mut extra = login(A, [9; 16], 1, 1);
    extra.devices_max = max as usize;
    assert_eq!(store.login(&extra).unwrap(), LoginOutcome::TooManyDevices);
    // A known device still logs in at the limit; another account is unaffected.
    let mut known = login(A, [0; 16], 1, 2);
    known.devices_max = max as usize;
    accepted(store.login(&known).unwrap());
    extra.account = B;
    accepted(store.login(&extra).unwrap());
    assert_eq!(store.devices(A).unwrap().len(), max as usize);
}

pub(super) fn revoked_token_is_refused_and_a_new_one_works(store: &mut impl RelayStore) {
    accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
    accepted(store.login(&login(A, LAPTOP, 1, 1)).unwrap());
    assert!(store.revoke(A, PHONE).unwrap());
    assert!(store.revoke(A, PHONE).unwrap(), "revoking twice is fine");
    assert_eq!(
        store.login(&login(A, PHONE, 1, 2)).unwrap(),
        LoginOutcome::Revoked
    );
    // The same token still works for another device of the account.
    accepted(store.login(&login(A, LAPTOP, 1, 2)).unwrap());
    // A new token works for the kicked device, and is then revocable too.
    accepted(store.login(&login(A, PHONE, 2, 3)).unwrap());
    assert!(store.revoke(A, PHONE).unwrap());
    assert_eq!(
        store.login(&login(A, PHONE, 2, 4)).unwrap(),
        LoginOutcome::Revoked
    );
    assert_eq!(
        store.login(&login(A, PHONE, 1, 4)).unwrap(),
        LoginOutcome::Revoked
    );
    // Unknown devices and other accounts' devices are not found.
    assert!(!store.revoke(A, TABLET).unwrap());
    assert!(!store.revoke(B, LAPTOP).unwrap());
    accepted(store.login(&login(A, LAPTOP, 1, 5)).unwrap());
}

pub(super) fn append_assigns_dense_seqs_once_per_content_id(store: &mut impl RelayStore) {
    accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
    accepted(store.login(&login(A, LAPTOP, 1, 1)).unwrap());
    accepted(store.login(&login(B, PHONE, 1, 1)).unwrap());
    assert_eq!(store.head_seq(A).unwrap(), 0);
    let first = append_n(store, A, PHONE, &[10, 11]);
    assert_eq!(
        first.iter().map(|a| (a.seq, a.new)).collect::<Vec<_>>(),
        vec![(1, true), (2, true)]
    );
    // A repeat (even from another device, even inside one batch) keeps its seq.
    let second = append_n(store, A, LAPTOP, &[11, 12, 12, 10]);
    assert_eq!(
        second
            .iter()
            .map(|a| (a.content_id[0], a.seq, a.new))
            .collect::<Vec<_>>(),
        vec![
            (11, 2, false),
            (12, 3, true),
            (12, 3, false),
            (10, 1, false)
        ]
    );
    assert_eq!(store.head_seq(A).unwrap(), 3);
    // Accounts have separate logs: the same content id is new for bob.
    let bob = append_n(store, B, PHONE, &[10]);
    assert_eq!((bob[0].seq, bob[0].new), (1, true));
    let page = store.read_log(A, 0, 10, usize::MAX).unwrap();
    assert_eq!(
        page.rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(page.rows[2].origin, LAPTOP);
    assert_eq!(page.rows[2].bytes, vec![12; 13]);
    assert!(!page.more);
    assert!(store.append(A, PHONE, &[]).unwrap().is_empty());
}

pub(super) fn read_log_pages_by_count_and_bytes(store: &mut impl RelayStore) {
    accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
    append_n(store, A, PHONE, &[1, 2, 3, 4, 5]); // bytes: 2,3,4,5,6
    let seqs = |p: &Page| p.rows.iter().map(|r| r.seq).collect::<Vec<_>>();
    let page = store.read_log(A, 0, 2, usize::MAX).unwrap();
    assert_eq!((seqs(&page), page.more), (vec![1, 2], true));
    let page = store.read_log(A, 2, 2, usize::MAX).unwrap();
    assert_eq!((seqs(&page), page.more), (vec![3, 4], true));
    let page = store.read_log(A, 4, 2, usize::MAX).unwrap();
    assert_eq!((seqs(&page), page.more), (vec![5], false));
    let page = store.read_log(A, 5, 2, usize::MAX).unwrap();
    assert_eq!((seqs(&page), page.more), (vec![], false));
    let page = store.read_log(A, 99, 2, usize::MAX).unwrap();
    assert_eq!((seqs(&page), page.more), (vec![], false));
    // Byte budget: 2+3 = 5 fits at 5, not at 4; one delta always comes.
    assert_eq!(seqs(&store.read_log(A, 0, 10, 6).unwrap()), vec![1, 2]);
    assert_eq!(seqs(&store.read_log(A, 0, 10, 5).unwrap()), vec![1, 2]);
    assert_eq!(seqs(&store.read_log(A, 0, 10, 4).unwrap()), vec![1]);
    assert_eq!(seqs(&store.read_log(A, 0, 10, 0).unwrap()), vec![1]);
    assert!(store
        .read_log(B, 0, 10, usize::MAX)
        .unwrap()
        .rows
        .is_empty());
}

pub(super) fn cursors_only_move_forward_and_stop_at_the_head(store: &mut impl RelayStore) {
    accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
    append_n(store, A, PHONE, &[1, 2, 3]);
    assert_eq!(store.set_cursor(A, PHONE, 2).unwrap(), Some(2));
    assert_eq!(store.set_cursor(A, PHONE, 1).unwrap(), Some(2));
    assert_eq!(store.set_cursor(A, PHONE, u64::MAX).unwrap(), Some(3));
    assert_eq!(store.set_cursor(A, LAPTOP, 1).unwrap(), None);
    assert_eq!(store.set_cursor(B, PHONE, 1).unwrap(), None);
    let mut resume = login(A, LAPTOP, 1, 2);
    resume.resume_cursor = 10;
    assert_eq!(accepted(store.login(&resume).unwrap()).0.cursor, 3);
    resume.resume_cursor = 1;
    assert_eq!(accepted(store.login(&resume).unwrap()).0.cursor, 3);
}

pub(super) fn payloads_wait_until_acked(store: &mut impl RelayStore) {
    accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
    accepted(store.login(&login(A, LAPTOP, 1, 1)).unwrap());
    accepted(store.login(&login(B, TABLET, 1, 1)).unwrap());
    let payload = |id: u8| PayloadRow {
        id: [id; 16],
        sender: PHONE,
        bytes: vec![id],
        sent_ms: 5,
    };
    let max = 2;
    assert_eq!(
        store.put_payload(A, LAPTOP, &payload(1), max).unwrap(),
        PutPayload::Stored
    );
    assert_eq!(
        store.put_payload(A, LAPTOP, &payload(1), max).unwrap(),
        PutPayload::AlreadyStored
    );
    assert_eq!(
        store.put_payload(A, LAPTOP, &payload(2), max).unwrap(),
        PutPayload::Stored
    );
    assert_eq!(
        store.put_payload(A, LAPTOP, &payload(3), max).unwrap(),
        PutPayload::QueueFull
    );
    assert_eq!(
        store.put_payload(A, TABLET, &payload(1), max).unwrap(),
        PutPayload::UnknownRecipient
    );
    assert_eq!(
        store.put_payload(B, LAPTOP, &payload(1), max).unwrap(),
        PutPayload::UnknownRecipient
    );
    assert_eq!(
        store.payloads(A, LAPTOP).unwrap(),
        vec![payload(1), payload(2)]
    );
    assert!(store.payloads(A, PHONE).unwrap().is_empty());
    assert!(store.payloads(B, LAPTOP).unwrap().is_empty());
    assert!(!store.ack_payload(B, LAPTOP, [1; 16]).unwrap());
    assert!(store.ack_payload(A, LAPTOP, [1; 16]).unwrap());
    assert!(!store.ack_payload(A, LAPTOP, [1; 16]).unwrap());
    assert_eq!(store.payloads(A, LAPTOP).unwrap(), vec![payload(2)]);
    assert_eq!(
        store.put_payload(A, LAPTOP, &payload(3), max).unwrap(),
        PutPayload::Stored
    );
}

pub(super) fn a_group_commits_its_operations_together(store: &mut impl RelayStore) {
    store.begin_group().unwrap();
    accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
    let first = append_n(store, A, PHONE, &[1, 2]);
    // Inside the group, each operation sees the ones before it.
    let again = append_n(store, A, PHONE, &[2, 3]);
    assert_eq!(store.read_log(A, 0, 10, usize::MAX).unwrap().rows.len(), 3);
    store.commit_group().unwrap();
    assert_eq!(
        first
            .iter()
            .chain(&again)
            .map(|a| a.seq)
            .collect::<Vec<_>>(),
        vec![1, 2, 2, 3]
    );
    assert_eq!(store.head_seq(A).unwrap(), 3);
    // Groups follow one another.
    store.begin_group().unwrap();
    append_n(store, A, PHONE, &[4]);
    store.commit_group().unwrap();
    assert_eq!(store.head_seq(A).unwrap(), 4);
    // Committing with no group open does nothing.
    store.commit_group().unwrap();
}

pub(super) fn a_failed_operation_leaves_the_rest_of_its_group(store: &mut impl RelayStore) {
    accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
    accepted(store.login(&login(A, LAPTOP, 1, 1)).unwrap());
    store.begin_group().unwrap();
    let first = append_n(store, A, PHONE, &[1, 2]);
    // TABLET never logged in: every backend refuses its append.
    let bytes = [9u8; 3];
    assert!(store.append(A, TABLET, &[(content(9), &bytes)]).is_err());
    // The group goes on: later operations see the earlier ones, and the
    // failed one took no seq.
    let after = append_n(store, A, LAPTOP, &[3]);
    assert_eq!(store.set_cursor(A, PHONE, 3).unwrap(), Some(3));
    let payload = PayloadRow {
        id: [5; 16],
        sender: PHONE,
        bytes: vec![5],
        sent_ms: 2,
    };
    assert_eq!(
        store.put_payload(A, LAPTOP, &payload, 4).unwrap(),
        PutPayload::Stored
    );
    store.commit_group().unwrap();
    assert_eq!(
        first
            .iter()
            .chain(&after)
            .map(|a| (a.content_id[0], a.seq))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 2), (3, 3)]
    );
    let page = store.read_log(A, 0, 10, usize::MAX).unwrap();
    assert_eq!(
        page.rows
            .iter()
            .map(|r| (r.seq, r.content_id[0], r.origin))
            .collect::<Vec<_>>(),
        vec![(1, 1, PHONE), (2, 2, PHONE), (3, 3, LAPTOP)]
    );
    assert_eq!(store.devices(A).unwrap()[0].cursor, 3);
    assert_eq!(store.payloads(A, LAPTOP).unwrap(), vec![payload]);
    assert_eq!(
        store.devices(A).unwrap().len(),
        2,
        "TABLET was not registered"
    );
}

pub(super) fn values_above_i64_max_are_refused_not_clamped(store: &mut impl RelayStore) {
    let max = STORED_VALUE_MAX;
    assert_eq!(max, (1 << 63) - 1);
    // Just below and at the limit: stored and read back exactly.
    let (row, _) = accepted(store.login(&login(A, PHONE, 1, max)).unwrap());
    assert_eq!((row.first_login_ms, row.last_seen_ms), (max, max));
    accepted(store.login(&login(A, LAPTOP, 1, max - 1)).unwrap());
    assert_eq!(store.devices(A).unwrap()[1].last_seen_ms, max - 1);
    let payload = |id: u8, sent_ms: u64| PayloadRow {
        id: [id; 16],
        sender: PHONE,
        bytes: vec![id],
        sent_ms,
    };
    assert_eq!(
        store.put_payload(A, LAPTOP, &payload(1, max), 8).unwrap(),
        PutPayload::Stored
    );
    // Above it (2^63, and u64::MAX): a typed error, and nothing changes.
    for value in [max + 1, u64::MAX] {
        let out_of_range = |r: Result<_, StoreError>, name: &str| match r {
            Err(StoreError::ValueOutOfRange { what, value: v }) => {
                assert_eq!((what, v), (name, value))
            }
            Ok(_) => panic!("{name} = {value} was accepted"),
            Err(other) => panic!("{name} = {value}: {other}"),
        };
        out_of_range(
            store.login(&login(A, TABLET, 1, value)).map(|_| ()),
            "now_ms",
        );
        out_of_range(
            store.login(&login(A, PHONE, 1, value)).map(|_| ()),
            "now_ms",
        );
        out_of_range(store.touch(A, PHONE, value), "last_seen_ms");
        out_of_range(
            store
                .put_payload(A, LAPTOP, &payload(2, value), 8)
                .map(|_| ()),
            "sent_ms",
        );
    }
    let devices = store.devices(A).unwrap();
    assert_eq!(
        devices
            .iter()
            .map(|d| (d.device, d.last_seen_ms))
            .collect::<Vec<_>>(),
        vec![(PHONE, max), (LAPTOP, max - 1)]
    );
    assert_eq!(store.payloads(A, LAPTOP).unwrap(), vec![payload(1, max)]);
    // Bounds that are only compared, never stored, may be anything.
    for after in [max, max + 1, u64::MAX] {
        assert_eq!(
            store.read_log(A, after, usize::MAX, usize::MAX).unwrap(),
            Page::default()
        );
    }
    assert_eq!(store.set_cursor(A, PHONE, u64::MAX).unwrap(), Some(0));
}

/// Expands to one `#[test]` per conformance case, each on a fresh store.
/// `$make` gives `(keep, store)`: `keep` lives as long as the test (the
/// temporary folder or database the store is in).
macro_rules! relay_store_conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            relay_store_conformance!(@cases $make;
                login_registers_then_updates,
                devices_are_listed_by_id_and_touch_updates_last_seen,
                device_limit_below_at_above,
                revoked_token_is_refused_and_a_new_one_works,
                append_assigns_dense_seqs_once_per_content_id,
                read_log_pages_by_count_and_bytes,
                cursors_only_move_forward_and_stop_at_the_head,
                payloads_wait_until_acked,
                a_group_commits_its_operations_together,
                a_failed_operation_leaves_the_rest_of_its_group,
                values_above_i64_max_are_refused_not_clamped,
            );
        }
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let (_keep, mut store) = $make;
                super::$case(&mut store);
            }
        )*
    };
}

relay_store_conformance!(memory, ((), MemoryRelayStore::new()));
relay_store_conformance!(sqlite, ((), SqliteRelayStore::open_in_memory().unwrap()));
mod sqlite_file {
    use super::*;

    #[test]
    fn everything_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.sqlite");
        {
            let mut store = SqliteRelayStore::open(&path).unwrap();
            accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
            accepted(store.login(&login(A, LAPTOP, 1, 1)).unwrap());
            append_n(&mut store, A, PHONE, &[1, 2]);
            store.revoke(A, LAPTOP).unwrap();
            let p = PayloadRow {
                id: [7; 16],
                sender: PHONE,
                bytes: vec![7],
                sent_ms: 1,
            };
            store.put_payload(A, LAPTOP, &p, 4).unwrap();
        }
        let mut store = SqliteRelayStore::open(&path).unwrap();
        assert_eq!(store.head_seq(A).unwrap(), 2);
        assert_eq!(
            append_n(&mut store, A, PHONE, &[2, 3])
                .iter()
                .map(|a| a.seq)
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(
            store.login(&login(A, LAPTOP, 1, 2)).unwrap(),
            LoginOutcome::Revoked
        );
        assert_eq!(store.payloads(A, LAPTOP).unwrap().len(), 1);
    }

    #[test]
    fn a_group_that_never_commits_is_not_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.sqlite");
        {
            let mut store = SqliteRelayStore::open(&path).unwrap();
            accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
            append_n(&mut store, A, PHONE, &[1]);
            store.begin_group().unwrap();
            append_n(&mut store, A, PHONE, &[2, 3]);
            // Dropped (a crash) before commit_group.
        }
        let mut store = SqliteRelayStore::open(&path).unwrap();
        assert_eq!(store.head_seq(A).unwrap(), 1);
    }

    #[test]
    fn a_newer_schema_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.sqlite");
        drop(SqliteRelayStore::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        match SqliteRelayStore::open(&path) {
            Err(crate::OpenError::SchemaTooNew {
                found: 99,
                known: 1,
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn corrupt_rows_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.sqlite");
        let mut store = SqliteRelayStore::open(&path).unwrap();
        accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("UPDATE devices SET last_seen_ms = -5", [])
            .unwrap();
        assert!(matches!(
            store.devices(A),
            Err(crate::StoreError::Corrupt(_))
        ));
    }
}
