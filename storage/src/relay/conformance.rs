//! The relay store conformance suite: every case runs against every
//! backend, through [`relay_store_conformance!`], and the cases about
//! several store instances on one database run against every backend that
//! can share one, through [`shared_store_conformance!`].

use std::collections::{HashMap, HashSet};
use std::sync::Barrier;

use super::*;
use crate::pg_test::TestDb;

const A: &str = "alice";
const B: &str = "bob";
const PHONE: DeviceKey = [1; 16];
const LAPTOP: DeviceKey = [2; 16];
const TABLET: DeviceKey = [3; 16];

/// How long the helpers' enrollments last.
const TTL_MS: u64 = 30 * 86_400_000;
/// How long the helpers' login tokens last.
const TOKEN_MS: u64 = 600_000;

/// The public key the helpers enroll `device` with.
fn key_of(device: DeviceKey) -> PublicKey {
    [device[0] ^ 0x80; 32]
}

/// A login token the relay verified: id `[n, device, 0…]`, so that "token
/// n" is another token for every device.
fn token(n: u8, device: DeviceKey, now_ms: u64) -> TokenUse {
    let mut id = [0; 16];
    id[0] = n;
    id[1] = device[0];
    TokenUse {
        id,
        expires_at_ms: now_ms.saturating_add(TOKEN_MS).min(STORED_VALUE_MAX),
    }
}

/// A login of `device` with its key and login token `n` (0: none).
fn login<'a>(account: &'a str, device: DeviceKey, n: u8, now_ms: u64) -> Login<'a> {
    Login {
        account,
        device,
        public_key: key_of(device),
        name: "dev",
        platform: "linux",
        token: (n > 0).then(|| token(n, device, now_ms)),
        resume_cursor: 0,
        now_ms,
        // Clamped so the helpers log in at the largest time a store keeps.
        enrollment_ttl_ms: TTL_MS.min(STORED_VALUE_MAX.saturating_sub(now_ms)),
        devices_max: 8,
    }
}

fn accepted(outcome: LoginOutcome) -> (DeviceRow, bool) {
    match outcome {
        LoginOutcome::Accepted {
            device,
            first_login,
            ..
        } => (device, first_login),
        other => panic!("login refused: {other:?}"),
    }
}

fn kicked_by(device: DeviceKey, at_ms: u64) -> Revocation {
    Revocation {
        kind: RevocationKind::KickedByDevice,
        by: Some(DeviceMention {
            device,
            name: "kicker".into(),
            platform: "ios".into(),
        }),
        at_ms,
    }
}

fn enrollment(store: &mut impl RelayStore, account: &str, device: DeviceKey) -> EnrollmentRow {
    store
        .devices(account)
        .unwrap()
        .into_iter()
        .find(|d| d.device == device)
        .and_then(|d| d.enrollment)
        .expect("an enrolled device")
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

pub(super) fn enrollment_binds_the_id_to_its_first_key(store: &mut impl RelayStore) {
    // A device without an enrollment and without a token: refused, and
    // nothing is registered.
    assert_eq!(
        store.login(&login(A, PHONE, 0, 1)).unwrap(),
        LoginOutcome::NotEnrolled
    );
    assert!(store.devices(A).unwrap().is_empty());
    match store.login(&login(A, PHONE, 1, 10)).unwrap() {
        LoginOutcome::Accepted {
            device,
            first_login,
            enrolled_now,
        } => {
            assert!(first_login && enrolled_now);
            let e = device.enrollment.expect("enrolled");
            assert_eq!(e.public_key, key_of(PHONE));
            assert_eq!(e.token_id, token(1, PHONE, 10).id);
            assert_eq!((e.enrolled_at_ms, e.expires_at_ms), (10, 10 + TTL_MS));
            assert_eq!(e.revoked, None);
        }
        other => panic!("{other:?}"),
    }
    // Its key alone logs it in from now on, and renews the enrollment.
    match store.login(&login(A, PHONE, 0, 20)).unwrap() {
        LoginOutcome::Accepted {
            device,
            first_login,
            enrolled_now,
        } => {
            assert!(!first_login && !enrolled_now);
            let e = device.enrollment.unwrap();
            assert_eq!((e.enrolled_at_ms, e.expires_at_ms), (10, 20 + TTL_MS));
        }
        other => panic!("{other:?}"),
    }
    // Another key never gets the id: not alone, not with a fresh token, not
    // after a revocation.
    let thief = |n: u8, now_ms| Login {
        public_key: [0x66; 32],
        ..login(A, PHONE, n, now_ms)
    };
    assert_eq!(
        store.login(&thief(0, 30)).unwrap(),
        LoginOutcome::KeyMismatch
    );
    assert_eq!(
        store.login(&thief(2, 30)).unwrap(),
        LoginOutcome::KeyMismatch
    );
    store.revoke(A, PHONE, &kicked_by(LAPTOP, 31)).unwrap();
    assert_eq!(
        store.login(&thief(3, 32)).unwrap(),
        LoginOutcome::KeyMismatch
    );
    // The refused attempts changed nothing: their tokens are not used, and
    // the device's own key enrolls again with one of them.
    assert_eq!(enrollment(store, A, PHONE).public_key, key_of(PHONE));
    accepted(store.login(&login(A, PHONE, 3, 33)).unwrap());
    assert_eq!(enrollment(store, A, PHONE).token_id, token(3, PHONE, 0).id);
    // The same id in another account is another device.
    let elsewhere = Login {
        public_key: [0x66; 32],
        ..login(B, PHONE, 1, 40)
    };
    accepted(store.login(&elsewhere).unwrap());
}

pub(super) fn login_tokens_are_single_use(store: &mut impl RelayStore) {
    let t = token(1, PHONE, 1);
    let with = |device, now_ms| Login {
        token: Some(t),
        ..login(A, device, 0, now_ms)
    };
    accepted(store.login(&with(PHONE, 1)).unwrap());
    // Presented again by the device it enrolled, while that enrollment is
    // active: an ordinary login.
    match store.login(&with(PHONE, 2)).unwrap() {
        LoginOutcome::Accepted { enrolled_now, .. } => assert!(!enrolled_now),
        other => panic!("{other:?}"),
    }
    // By any other device: refused, and that device is not registered.
    assert_eq!(
        store.login(&with(LAPTOP, 3)).unwrap(),
        LoginOutcome::TokenUsed
    );
    assert_eq!(store.devices(A).unwrap().len(), 1);
    // After the enrollment it made is revoked, not even by its device; the
    // device learns why when it logs in with its key.
    let kick = kicked_by(LAPTOP, 4);
    assert_eq!(
        store.revoke(A, PHONE, &kick).unwrap(),
        RevokeOutcome::Revoked
    );
    assert_eq!(
        store.login(&with(PHONE, 5)).unwrap(),
        LoginOutcome::TokenUsed
    );
    assert_eq!(
        store.login(&login(A, PHONE, 0, 5)).unwrap(),
        LoginOutcome::Revoked(kick)
    );
    // A fresh token enrolls it again (same key) and clears the revocation;
    // then the old one is still used.
    accepted(store.login(&login(A, PHONE, 2, 6)).unwrap());
    assert_eq!(enrollment(store, A, PHONE).revoked, None);
    assert_eq!(
        store.login(&with(PHONE, 7)).unwrap(),
        LoginOutcome::TokenUsed
    );
    // Used tokens are kept per account: bob's token with the same id is
    // another token.
    accepted(
        store
            .login(&Login {
                token: Some(t),
                ..login(B, LAPTOP, 0, 8)
            })
            .unwrap(),
    );
    // A management connection's use of a token counts too.
    let manage = token(9, TABLET, 9);
    assert!(store.use_token(A, &manage, TABLET).unwrap());
    assert!(!store.use_token(A, &manage, TABLET).unwrap());
    assert_eq!(
        store
            .login(&Login {
                token: Some(manage),
                ..login(A, TABLET, 0, 10)
            })
            .unwrap(),
        LoginOutcome::TokenUsed
    );
    assert!(!store.use_token(A, &token(2, PHONE, 0), PHONE).unwrap());
    assert!(store.use_token(B, &manage, TABLET).unwrap());
}

pub(super) fn revocations_keep_their_reason_and_revoke_all_spares_one(store: &mut impl RelayStore) {
    for device in [PHONE, LAPTOP, TABLET] {
        accepted(store.login(&login(A, device, 1, 1)).unwrap());
    }
    accepted(store.login(&login(B, PHONE, 1, 1)).unwrap());
    let kick = kicked_by(LAPTOP, 5);
    assert_eq!(
        store.revoke(A, PHONE, &kick).unwrap(),
        RevokeOutcome::Revoked
    );
    // A second revocation keeps the first reason.
    let operator = Revocation {
        kind: RevocationKind::Operator,
        by: None,
        at_ms: 6,
    };
    assert_eq!(
        store.revoke(A, PHONE, &operator).unwrap(),
        RevokeOutcome::AlreadyRevoked
    );
    assert_eq!(enrollment(store, A, PHONE).revoked, Some(kick));
    assert_eq!(
        store.revoke(A, [9; 16], &operator).unwrap(),
        RevokeOutcome::NotFound
    );
    assert_eq!(
        store.revoke(B, TABLET, &operator).unwrap(),
        RevokeOutcome::NotFound
    );
    // Every other device but LAPTOP; PHONE was revoked already.
    let all = Revocation {
        kind: RevocationKind::AllCredentials,
        by: None,
        at_ms: 7,
    };
    assert_eq!(
        store.revoke_all(A, Some(LAPTOP), &all).unwrap(),
        vec![TABLET]
    );
    assert_eq!(enrollment(store, A, LAPTOP).revoked, None);
    assert_eq!(enrollment(store, A, TABLET).revoked, Some(all.clone()));
    assert_eq!(store.revoke_all(A, None, &all).unwrap(), vec![LAPTOP]);
    assert!(store.revoke_all(A, None, &all).unwrap().is_empty());
    assert!(store.revoke_all("nobody", None, &all).unwrap().is_empty());
    // Every kind, with and without a device, reads back as written.
    for (i, kind) in [
        RevocationKind::KickedByDevice,
        RevocationKind::Displaced,
        RevocationKind::LoggedOut,
        RevocationKind::Operator,
        RevocationKind::AllCredentials,
    ]
    .into_iter()
    .enumerate()
    {
        accepted(store.login(&login(A, PHONE, 10 + i as u8, 10)).unwrap());
        let revocation = Revocation {
            kind,
            by: (i % 2 == 0).then(|| DeviceMention {
                device: TABLET,
                name: format!("tablet {i}"),
                platform: "android".into(),
            }),
            at_ms: 11 + i as u64,
        };
        store.revoke(A, PHONE, &revocation).unwrap();
        assert_eq!(enrollment(store, A, PHONE).revoked, Some(revocation));
    }
    // Bob's device was never touched.
    assert_eq!(enrollment(store, B, PHONE).revoked, None);
    accepted(store.login(&login(B, PHONE, 0, 20)).unwrap());
}

pub(super) fn enrollments_expire_and_renew_while_active(store: &mut impl RelayStore) {
    let ttl = |mut l: Login<'static>, ttl_ms| {
        l.enrollment_ttl_ms = ttl_ms;
        l
    };
    accepted(store.login(&ttl(login(A, PHONE, 1, 0), 100)).unwrap());
    assert_eq!(enrollment(store, A, PHONE).expires_at_ms, 100);
    // Renewed while active, never shortened.
    assert!(store.renew_enrollment(A, PHONE, 500, 50).unwrap());
    assert!(store.renew_enrollment(A, PHONE, 200, 60).unwrap());
    assert_eq!(enrollment(store, A, PHONE).expires_at_ms, 500);
    // Just before the expiry the key logs in (and renews); at it, it does
    // not.
    accepted(store.login(&ttl(login(A, PHONE, 0, 499), 1)).unwrap());
    assert_eq!(enrollment(store, A, PHONE).expires_at_ms, 500);
    assert_eq!(
        store.login(&ttl(login(A, PHONE, 0, 500), 100)).unwrap(),
        LoginOutcome::Expired { at_ms: 500 }
    );
    assert!(!store.renew_enrollment(A, PHONE, 900, 500).unwrap());
    assert!(!store.renew_enrollment(A, LAPTOP, 900, 1).unwrap());
    // A new login token enrolls it again.
    accepted(store.login(&ttl(login(A, PHONE, 2, 600), 100)).unwrap());
    assert_eq!(enrollment(store, A, PHONE).expires_at_ms, 700);
    // A revoked enrollment is not renewed.
    store.revoke(A, PHONE, &kicked_by(LAPTOP, 601)).unwrap();
    assert!(!store.renew_enrollment(A, PHONE, 900, 602).unwrap());
}

pub(super) fn used_tokens_are_forgotten_once_they_expire(store: &mut impl RelayStore) {
    let early = TokenUse {
        id: [1; 16],
        expires_at_ms: 100,
    };
    let late = TokenUse {
        id: [2; 16],
        expires_at_ms: 200,
    };
    assert!(store.use_token(A, &early, PHONE).unwrap());
    assert!(store.use_token(B, &late, PHONE).unwrap());
    accepted(
        store
            .login(&Login {
                token: Some(TokenUse {
                    id: [3; 16],
                    expires_at_ms: 150,
                }),
                ..login(A, LAPTOP, 0, 1)
            })
            .unwrap(),
    );
    assert_eq!(store.purge_used_tokens(99).unwrap(), 0);
    assert_eq!(store.purge_used_tokens(100).unwrap(), 1);
    assert_eq!(store.purge_used_tokens(100).unwrap(), 0);
    assert!(!store.use_token(B, &late, PHONE).unwrap(), "still kept");
    assert_eq!(store.purge_used_tokens(u64::MAX).unwrap(), 2);
    // Forgotten: the relay refuses an expired token before the store is
    // asked, so remembering it longer would protect nothing.
    assert!(store.use_token(A, &early, PHONE).unwrap());
}

pub(super) fn banned_and_removed_accounts_are_refused(store: &mut impl RelayStore) {
    assert_eq!(
        store.account_status("nobody").unwrap(),
        AccountStatus::Active
    );
    accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
    accepted(store.login(&login(A, LAPTOP, 1, 1)).unwrap());
    accepted(store.login(&login(B, PHONE, 1, 1)).unwrap());
    append_n(store, A, PHONE, &[1, 2]);
    let p = PayloadRow {
        id: [7; 16],
        sender: PHONE,
        bytes: vec![7],
        sent_ms: 1,
    };
    store.put_payload(A, LAPTOP, &p, 4).unwrap();
    assert_eq!(store.set_banned(A, true).unwrap(), AccountStatus::Banned);
    assert_eq!(store.account_status(A).unwrap(), AccountStatus::Banned);
    for n in [0, 2] {
        assert_eq!(
            store.login(&login(A, PHONE, n, 2)).unwrap(),
            LoginOutcome::AccountBanned
        );
    }
    // A ban keeps the enrollments: unbanned, the devices log in with their
    // keys.
    assert_eq!(store.set_banned(A, false).unwrap(), AccountStatus::Active);
    accepted(store.login(&login(A, PHONE, 0, 3)).unwrap());
    // A ban of an account the store never saw holds from its first login.
    assert_eq!(
        store.set_banned("carol", true).unwrap(),
        AccountStatus::Banned
    );
    assert_eq!(
        store.login(&login("carol", PHONE, 1, 4)).unwrap(),
        LoginOutcome::AccountBanned
    );
    // Removal deletes everything of the account and refuses it for good.
    assert_eq!(store.remove_account(A).unwrap(), 2);
    assert_eq!(store.account_status(A).unwrap(), AccountStatus::Removed);
    assert!(store.devices(A).unwrap().is_empty());
    assert_eq!(store.head_seq(A).unwrap(), 0);
    assert_eq!(
        store.read_log(A, 0, 10, usize::MAX).unwrap(),
        Page::default()
    );
    assert!(store.payloads(A, LAPTOP).unwrap().is_empty());
    for n in [0, 3] {
        assert_eq!(
            store.login(&login(A, PHONE, n, 5)).unwrap(),
            LoginOutcome::AccountRemoved
        );
    }
    assert_eq!(store.set_banned(A, false).unwrap(), AccountStatus::Removed);
    assert_eq!(store.set_banned(A, true).unwrap(), AccountStatus::Removed);
    assert_eq!(store.remove_account(A).unwrap(), 0);
    // Bob is untouched.
    assert_eq!(store.account_status(B).unwrap(), AccountStatus::Active);
    accepted(store.login(&login(B, PHONE, 0, 6)).unwrap());
    assert_eq!(store.remove_account("never-seen").unwrap(), 0);
    assert_eq!(
        store.account_status("never-seen").unwrap(),
        AccountStatus::Removed
    );
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
            Err(StoreError::OutOfRange { what, value: v }) => {
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
            store.renew_enrollment(A, PHONE, value, 0).map(|_| ()),
            "expires_at_ms",
        );
        out_of_range(
            store
                .revoke(A, LAPTOP, &kicked_by(PHONE, value))
                .map(|_| ()),
            "revoked_at_ms",
        );
        out_of_range(
            store
                .revoke_all(A, None, &kicked_by(PHONE, value))
                .map(|_| ()),
            "revoked_at_ms",
        );
        let late = TokenUse {
            id: [0xee; 16],
            expires_at_ms: value,
        };
        out_of_range(
            store.use_token(A, &late, PHONE).map(|_| ()),
            "expires_at_ms",
        );
        // An enrollment that would outlast what a store keeps is refused,
        // not clamped.
        let long = Login {
            enrollment_ttl_ms: value,
            ..login(A, PHONE, 0, 0)
        };
        out_of_range(store.login(&long).map(|_| ()), "expires_at_ms");
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
    assert!(devices
        .iter()
        .all(|d| d.enrollment.as_ref().unwrap().revoked.is_none()));
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

/// A sealed envelope as a test builds it: bytes unique to its origin and
/// position (and `tag`), its content id the hash of its bytes.
#[derive(Debug, Clone)]
struct Sealed {
    bytes: Vec<u8>,
    content_id: ContentKey,
    epoch: u64,
    chain_pos: u64,
    prev: ContentKey,
}

impl Sealed {
    fn new(origin: DeviceKey, epoch: u64, chain_pos: u64, prev: ContentKey, tag: u8) -> Sealed {
        let mut bytes = vec![origin[0], tag];
        bytes.extend_from_slice(&epoch.to_le_bytes());
        bytes.extend_from_slice(&chain_pos.to_le_bytes());
        bytes.extend_from_slice(&prev[..4]);
        Sealed {
            content_id: *blake3::hash(&bytes).as_bytes(),
            bytes,
            epoch,
            chain_pos,
            prev,
        }
    }

    fn input(&self) -> EnvelopeIn<'_> {
        EnvelopeIn {
            content_id: self.content_id,
            epoch: self.epoch,
            chain_pos: self.chain_pos,
            prev: self.prev,
            bytes: &self.bytes,
        }
    }
}

/// One device's chain as a test extends it.
struct Chain {
    origin: DeviceKey,
    pos: u64,
    head: ContentKey,
}

impl Chain {
    fn new(origin: DeviceKey) -> Chain {
        Chain {
            origin,
            pos: 0,
            head: [0; 32],
        }
    }

    /// The next envelope of the chain, which the chain now counts as its
    /// head (the test expects it to be appended).
    fn next(&mut self, epoch: u64) -> Sealed {
        let e = Sealed::new(self.origin, epoch, self.pos + 1, self.head, 0);
        (self.pos, self.head) = (e.chain_pos, e.content_id);
        e
    }
}

fn push(
    store: &mut impl RelayStore,
    account: &str,
    origin: DeviceKey,
    envelopes: &[&Sealed],
    now_ms: u64,
) -> AppendOutcome {
    let inputs: Vec<EnvelopeIn<'_>> = envelopes.iter().map(|e| e.input()).collect();
    store
        .append_envelopes(account, origin, &inputs, now_ms)
        .unwrap()
}

/// `(seq, new)` of each entry of an accepted append.
fn seqs(outcome: AppendOutcome) -> Vec<(u64, bool)> {
    match outcome {
        AppendOutcome::Appended(entries) => entries.iter().map(|a| (a.seq, a.new)).collect(),
        other => panic!("refused: {other:?}"),
    }
}

fn chunk_bytes(snapshot: u8, index: u32) -> Vec<u8> {
    vec![snapshot ^ index as u8; 100 + index as usize]
}

/// Stages `chunks` chunks of snapshot `[snapshot; 32]` and returns their
/// hashes.
fn stage(
    store: &mut impl RelayStore,
    account: &str,
    snapshot: u8,
    chunks: u32,
    now_ms: u64,
) -> Vec<ChunkHash> {
    (0..chunks)
        .map(|index| {
            let bytes = chunk_bytes(snapshot, index);
            let chunk = StagedChunk {
                snapshot_id: [snapshot; 32],
                index,
                bytes: &bytes,
            };
            store.stage_chunk(account, &chunk, now_ms).unwrap();
            *blake3::hash(&bytes).as_bytes()
        })
        .collect()
}

fn publish_of<'a>(
    epoch: u64,
    base_seq: u64,
    snapshot: u8,
    hashes: &'a [ChunkHash],
    by: DeviceKey,
) -> Publish<'a> {
    Publish {
        epoch,
        base_seq,
        generation: 7,
        snapshot_id: [snapshot; 32],
        manifest: b"manifest bytes",
        chunk_hashes: hashes,
        published_by: by,
    }
}

fn published(outcome: PublishOutcome) -> EpochRow {
    match outcome {
        PublishOutcome::Published(row) => row,
        other => panic!("not published: {other:?}"),
    }
}

pub(super) fn envelopes_append_in_chain_order_once_per_content_id(store: &mut impl RelayStore) {
    accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
    accepted(store.login(&login(A, LAPTOP, 1, 1)).unwrap());
    let (mut phone, mut laptop) = (Chain::new(PHONE), Chain::new(LAPTOP));
    let (p1, p2, p3) = (phone.next(0), phone.next(0), phone.next(0));
    assert_eq!(
        seqs(push(store, A, PHONE, &[&p1, &p2, &p3], 10)),
        vec![(1, true), (2, true), (3, true)]
    );
    // A resend, whole or in part, gets the same seqs and stores nothing.
    assert_eq!(
        seqs(push(store, A, PHONE, &[&p2, &p3, &p1], 11)),
        vec![(2, false), (3, false), (1, false)]
    );
    // Each device has a chain of its own; a repeat inside a batch keeps
    // the seq of its first copy.
    let l1 = laptop.next(0);
    let p4 = phone.next(0);
    assert_eq!(
        seqs(push(store, A, LAPTOP, &[&l1, &l1], 12)),
        vec![(4, true), (4, false)]
    );
    assert_eq!(
        seqs(push(store, A, PHONE, &[&p3, &p4], 13)),
        vec![(3, false), (5, true)]
    );
    let page = store.read_log(A, 0, 10, usize::MAX).unwrap();
    assert_eq!(
        page.rows
            .iter()
            .map(|r| (r.seq, r.origin, r.content_id, r.bytes.clone()))
            .collect::<Vec<_>>(),
        [(1, &p1), (2, &p2), (3, &p3), (4, &l1), (5, &p4)]
            .into_iter()
            .map(|(seq, e)| {
                let origin = if e.bytes[0] == PHONE[0] {
                    PHONE
                } else {
                    LAPTOP
                };
                (seq, origin, e.content_id, e.bytes.clone())
            })
            .collect::<Vec<_>>()
    );
    let bytes: u64 = [&p1, &p2, &p3, &l1, &p4]
        .iter()
        .map(|e| e.bytes.len() as u64)
        .sum();
    assert_eq!(
        store.tail_stats(A).unwrap(),
        TailStats {
            head_seq: 5,
            epoch: 0,
            base_seq: 0,
            entries: 5,
            bytes,
            floor_seq: 0
        }
    );
    assert_eq!(store.tail_stats(B).unwrap(), TailStats::default());
    // Plaintext deltas and envelopes share the log's order and its tail.
    assert_eq!(append_n(store, A, PHONE, &[9])[0].seq, 6);
    assert_eq!(store.tail_stats(A).unwrap().bytes, bytes + 10);
    assert_eq!(
        store.append_envelopes(A, PHONE, &[], 14).unwrap(),
        AppendOutcome::Appended(Vec::new())
    );
}

pub(super) fn chain_gaps_and_forks_refuse_the_whole_batch(store: &mut impl RelayStore) {
    accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
    let zeros = [0; 32];
    let conflict = |index, head_pos, head| AppendOutcome::ChainConflict {
        index,
        head_pos,
        head,
    };
    let mut chain = Chain::new(PHONE);
    let (e1, e2) = (chain.next(0), chain.next(0));
    let e4 = Sealed::new(PHONE, 0, 4, [4; 32], 0);
    // A gap after two good ones refuses all three.
    assert_eq!(
        push(store, A, PHONE, &[&e1, &e2, &e4], 10),
        conflict(2, 0, zeros)
    );
    // Not starting at 1, or starting at 1 with a previous id.
    assert_eq!(push(store, A, PHONE, &[&e2], 10), conflict(0, 0, zeros));
    let first_with_prev = Sealed::new(PHONE, 0, 1, [1; 32], 0);
    assert_eq!(
        push(store, A, PHONE, &[&first_with_prev], 10),
        conflict(0, 0, zeros)
    );
    // The right position with the wrong previous id.
    let wrong_prev = Sealed::new(PHONE, 0, 2, [2; 32], 0);
    assert_eq!(
        push(store, A, PHONE, &[&e1, &wrong_prev], 10),
        conflict(1, 0, zeros)
    );
    assert_eq!(store.head_seq(A).unwrap(), 0, "nothing of a refused batch");
    assert_eq!(
        seqs(push(store, A, PHONE, &[&e1, &e2], 11)),
        vec![(1, true), (2, true)]
    );
    // Forks: another envelope at a position the chain holds.
    let fork2 = Sealed::new(PHONE, 0, 2, e1.content_id, 1);
    let fork1 = Sealed::new(PHONE, 0, 1, zeros, 1);
    for fork in [&fork2, &fork1] {
        assert_eq!(
            push(store, A, PHONE, &[fork], 12),
            conflict(0, 2, e2.content_id)
        );
    }
    // A resend and a good one before a gap: nothing moves, not even the
    // good one; the chain's head is still e2.
    let e3 = chain.next(0);
    let e5 = Sealed::new(PHONE, 0, 5, [5; 32], 0);
    assert_eq!(
        push(store, A, PHONE, &[&e2, &e3, &e5], 13),
        conflict(2, 2, e2.content_id)
    );
    assert_eq!(store.head_seq(A).unwrap(), 2);
    assert_eq!(seqs(push(store, A, PHONE, &[&e3], 14)), vec![(3, true)]);
    // Another account's chain of the same device is its own.
    accepted(store.login(&login(B, PHONE, 1, 1)).unwrap());
    assert_eq!(push(store, B, PHONE, &[&e3], 15), conflict(0, 0, zeros));
    assert_eq!(seqs(push(store, B, PHONE, &[&e1], 15)), vec![(1, true)]);
}

pub(super) fn publish_is_a_compare_and_swap_on_epoch_and_head(store: &mut impl RelayStore) {
    accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
    let mut chain = Chain::new(PHONE);
    let (e1, e2) = (chain.next(0), chain.next(0));
    seqs(push(store, A, PHONE, &[&e1, &e2], 10));
    assert_eq!(store.epoch(A).unwrap(), None);
    let hashes = stage(store, A, 0x51, 2, 20);
    // Another epoch than the next, or another head than the log's.
    for (epoch, base) in [(2, 2), (0, 2), (1, 1), (1, 3), (STORED_VALUE_MAX, 2)] {
        let outcome = store
            .publish_epoch(A, &publish_of(epoch, base, 0x51, &hashes, PHONE), 30)
            .unwrap();
        assert_eq!(
            outcome,
            PublishOutcome::Conflict {
                current: None,
                head_seq: 2
            },
            "epoch {epoch} at {base}"
        );
    }
    // The condition holds but a chunk is missing, or staged with other
    // bytes than the manifest's hash.
    let mut three = hashes.clone();
    three.push([3; 32]);
    assert_eq!(
        store
            .publish_epoch(A, &publish_of(1, 2, 0x51, &three, PHONE), 30)
            .unwrap(),
        PublishOutcome::Incomplete { missing: vec![2] }
    );
    let mut wrong = hashes.clone();
    wrong[0] = [0; 32];
    assert_eq!(
        store
            .publish_epoch(A, &publish_of(1, 2, 0x51, &wrong, PHONE), 30)
            .unwrap(),
        PublishOutcome::Incomplete { missing: vec![0] }
    );
    // Chunks of another snapshot, or of another account, do not count.
    stage(store, B, 0x52, 2, 20);
    assert_eq!(
        store
            .publish_epoch(A, &publish_of(1, 2, 0x52, &hashes, PHONE), 30)
            .unwrap(),
        PublishOutcome::Incomplete {
            missing: vec![0, 1]
        }
    );
    assert_eq!(store.epoch(A).unwrap(), None, "nothing changed");
    assert_eq!(store.snapshot_chunk(A, 1, 0).unwrap(), None);
    // A staged chunk is replaced until it is committed.
    let other = vec![0xee; 10];
    let restaged = StagedChunk {
        snapshot_id: [0x51; 32],
        index: 1,
        bytes: &other,
    };
    store.stage_chunk(A, &restaged, 21).unwrap();
    let mut hashes = hashes;
    hashes[1] = *blake3::hash(&other).as_bytes();
    let row = published(
        store
            .publish_epoch(A, &publish_of(1, 2, 0x51, &hashes, PHONE), 30)
            .unwrap(),
    );
    assert_eq!(
        row,
        EpochRow {
            epoch: 1,
            generation: 7,
            base_seq: 2,
            snapshot_id: [0x51; 32],
            manifest: b"manifest bytes".to_vec(),
            chunks: 2,
            published_by: PHONE,
            published_at_ms: 30,
        }
    );
    assert_eq!(store.epoch(A).unwrap(), Some(row.clone()));
    assert_eq!(store.epoch(B).unwrap(), None);
    let stats = store.tail_stats(A).unwrap();
    assert_eq!(
        (stats.epoch, stats.base_seq, stats.entries, stats.bytes),
        (1, 2, 0, 0)
    );
    assert_eq!(
        store.snapshot_chunk(A, 1, 0).unwrap(),
        Some(chunk_bytes(0x51, 0))
    );
    assert_eq!(store.snapshot_chunk(A, 1, 1).unwrap(), Some(other.clone()));
    for (account, epoch, index) in [(A, 1, 2), (A, 0, 0), (A, 2, 0), (B, 1, 0)] {
        assert_eq!(store.snapshot_chunk(account, epoch, index).unwrap(), None);
    }
    // A committed chunk never changes.
    store
        .stage_chunk(A, &restaged_with(&[1, 2, 3]), 40)
        .unwrap();
    assert_eq!(store.snapshot_chunk(A, 1, 1).unwrap(), Some(other));
    // The same publish again (a retry after a lost answer) finds its own
    // epoch current: it won before.
    assert_eq!(
        store
            .publish_epoch(A, &publish_of(1, 2, 0x51, &hashes, PHONE), 50)
            .unwrap(),
        PublishOutcome::Conflict {
            current: Some(row.clone()),
            head_seq: 2
        }
    );
    // The next epoch, once the tail moved: at the new head only.
    let e3 = chain.next(1);
    seqs(push(store, A, PHONE, &[&e3], 60));
    assert_eq!(store.tail_stats(A).unwrap().entries, 1);
    let next = stage(store, A, 0x53, 1, 61);
    let mut p = publish_of(2, 2, 0x53, &next, PHONE);
    p.generation = u32::MAX;
    assert_eq!(
        store.publish_epoch(A, &p, 62).unwrap(),
        PublishOutcome::Conflict {
            current: Some(row),
            head_seq: 3
        }
    );
    p.base_seq = 3;
    let row2 = published(store.publish_epoch(A, &p, 62).unwrap());
    assert_eq!(
        (row2.epoch, row2.generation, row2.base_seq),
        (2, u32::MAX, 3)
    );
    assert_eq!(store.epoch(A).unwrap(), Some(row2));
    // The previous epoch's snapshot is still served.
    assert_eq!(
        store.snapshot_chunk(A, 1, 0).unwrap(),
        Some(chunk_bytes(0x51, 0))
    );
}

fn restaged_with(bytes: &[u8]) -> StagedChunk<'_> {
    StagedChunk {
        snapshot_id: [0x51; 32],
        index: 1,
        bytes,
    }
}

pub(super) fn dedupe_comes_before_the_epoch_check_and_the_epoch_before_the_chain(
    store: &mut impl RelayStore,
) {
    accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
    let mut chain = Chain::new(PHONE);
    let e1 = chain.next(0);
    // At epoch 0 (nothing published), only epoch 0 is current.
    let future = Sealed::new(PHONE, 1, 1, [0; 32], 0);
    assert_eq!(
        push(store, A, PHONE, &[&future], 10),
        AppendOutcome::StaleEpoch {
            index: 0,
            current: None
        }
    );
    seqs(push(store, A, PHONE, &[&e1], 10));
    let hashes = stage(store, A, 0x61, 1, 11);
    let row = published(
        store
            .publish_epoch(A, &publish_of(1, 1, 0x61, &hashes, LAPTOP), 12)
            .unwrap(),
    );
    // A resend of an accepted envelope gets its seq back after the publish.
    assert_eq!(seqs(push(store, A, PHONE, &[&e1], 13)), vec![(1, false)]);
    let stale = Sealed::new(PHONE, 0, 2, e1.content_id, 0);
    let stale_at = |index| AppendOutcome::StaleEpoch {
        index,
        current: Some(row.clone()),
    };
    assert_eq!(push(store, A, PHONE, &[&stale], 13), stale_at(0));
    assert_eq!(push(store, A, PHONE, &[&e1, &stale], 13), stale_at(1));
    // A later epoch than the current is refused the same way.
    let ahead = Sealed::new(PHONE, 2, 2, e1.content_id, 0);
    assert_eq!(push(store, A, PHONE, &[&ahead], 13), stale_at(0));
    // Wrong epoch and broken chain: the epoch is reported.
    let both = Sealed::new(PHONE, 0, 7, [7; 32], 0);
    assert_eq!(push(store, A, PHONE, &[&both], 13), stale_at(0));
    // The chain continues across the epoch.
    let e2 = chain.next(1);
    assert_eq!(
        seqs(push(store, A, PHONE, &[&e1, &e2], 14)),
        vec![(1, false), (2, true)]
    );
    assert_eq!(store.head_seq(A).unwrap(), 2);
}

pub(super) fn an_envelope_refusal_leaves_the_rest_of_its_group(store: &mut impl RelayStore) {
    accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
    let mut chain = Chain::new(PHONE);
    let (e1, e2) = (chain.next(0), chain.next(0));
    let gap = Sealed::new(PHONE, 0, 9, [9; 32], 0);
    store.begin_group().unwrap();
    seqs(push(store, A, PHONE, &[&e1], 10));
    assert!(matches!(
        push(store, A, PHONE, &[&e2, &gap], 10),
        AppendOutcome::ChainConflict { index: 1, .. }
    ));
    let hashes = stage(store, A, 0x71, 1, 10);
    assert!(matches!(
        store
            .publish_epoch(A, &publish_of(1, 0, 0x71, &hashes, PHONE), 10)
            .unwrap(),
        PublishOutcome::Conflict { head_seq: 1, .. }
    ));
    seqs(push(store, A, PHONE, &[&e2], 10));
    store.commit_group().unwrap();
    assert_eq!(store.head_seq(A).unwrap(), 2);
    assert_eq!(store.epoch(A).unwrap(), None);
}

pub(super) fn removing_an_account_forgets_its_epochs_and_chains(store: &mut impl RelayStore) {
    accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
    let mut chain = Chain::new(PHONE);
    let e1 = chain.next(0);
    seqs(push(store, A, PHONE, &[&e1], 10));
    let hashes = stage(store, A, 0x81, 1, 10);
    published(
        store
            .publish_epoch(A, &publish_of(1, 1, 0x81, &hashes, PHONE), 10)
            .unwrap(),
    );
    store.remove_account(A).unwrap();
    assert_eq!(store.epoch(A).unwrap(), None);
    assert_eq!(store.snapshot_chunk(A, 1, 0).unwrap(), None);
    assert_eq!(store.tail_stats(A).unwrap(), TailStats::default());
}

fn out_of_range<T: std::fmt::Debug>(r: Result<T, StoreError>, name: &str, value: u64) {
    match r {
        Err(StoreError::OutOfRange { what, value: v }) => assert_eq!((what, v), (name, value)),
        Ok(other) => panic!("{name} = {value} was accepted: {other:?}"),
        Err(other) => panic!("{name} = {value}: {other}"),
    }
}

pub(super) fn envelope_values_above_i64_max_are_refused_not_clamped(store: &mut impl RelayStore) {
    let max = STORED_VALUE_MAX;
    accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
    // Below and at the limit the numbers are kept and compared: an epoch
    // or a position the account is not at is refused as such.
    for value in [max - 1, max] {
        let far = Sealed::new(PHONE, value, 1, [0; 32], 0);
        assert_eq!(
            push(store, A, PHONE, &[&far], 1),
            AppendOutcome::StaleEpoch {
                index: 0,
                current: None
            }
        );
        let far = Sealed::new(PHONE, 0, value, [1; 32], 0);
        assert!(matches!(
            push(store, A, PHONE, &[&far], 1),
            AppendOutcome::ChainConflict { index: 0, .. }
        ));
        assert!(matches!(
            store
                .publish_epoch(A, &publish_of(value, 0, 1, &[[0; 32]], PHONE), 1)
                .unwrap(),
            PublishOutcome::Conflict { .. }
        ));
        assert!(matches!(
            store
                .publish_epoch(A, &publish_of(1, value, 1, &[[0; 32]], PHONE), 1)
                .unwrap(),
            PublishOutcome::Conflict { .. }
        ));
    }
    let mut chain = Chain::new(PHONE);
    let e1 = chain.next(0);
    assert_eq!(seqs(push(store, A, PHONE, &[&e1], max)), vec![(1, true)]);
    let hashes = stage(store, A, 0x91, 1, max);
    let row = published(
        store
            .publish_epoch(A, &publish_of(1, 1, 0x91, &hashes, PHONE), max)
            .unwrap(),
    );
    assert_eq!(store.epoch(A).unwrap(), Some(row.clone()));
    assert_eq!(row.published_at_ms, max);
    // Above it (2^63, and u64::MAX): a typed error, and nothing changes.
    for value in [max + 1, u64::MAX] {
        let e2 = Sealed::new(PHONE, 1, 2, e1.content_id, 0);
        let mut epoch = e2.clone();
        epoch.epoch = value;
        let mut pos = e2.clone();
        pos.chain_pos = value;
        // Refused even behind an envelope that would be appended.
        out_of_range(
            store.append_envelopes(A, PHONE, &[e2.input(), epoch.input()], 2),
            "epoch",
            value,
        );
        out_of_range(
            store.append_envelopes(A, PHONE, &[e2.input(), pos.input()], 2),
            "chain_pos",
            value,
        );
        out_of_range(
            store.append_envelopes(A, PHONE, &[e2.input()], value),
            "appended_at_ms",
            value,
        );
        out_of_range(
            store.publish_epoch(A, &publish_of(value, 1, 0x91, &hashes, PHONE), 2),
            "epoch",
            value,
        );
        out_of_range(
            store.publish_epoch(A, &publish_of(2, value, 0x91, &hashes, PHONE), 2),
            "base_seq",
            value,
        );
        out_of_range(
            store.publish_epoch(A, &publish_of(2, 1, 0x91, &hashes, PHONE), value),
            "published_at_ms",
            value,
        );
        let bytes = [1u8];
        let chunk = StagedChunk {
            snapshot_id: [0x92; 32],
            index: 0,
            bytes: &bytes,
        };
        out_of_range(store.stage_chunk(A, &chunk, value), "staged_at_ms", value);
        // Only compared, never stored: anything goes.
        assert_eq!(store.snapshot_chunk(A, value, 0).unwrap(), None);
    }
    assert_eq!(store.head_seq(A).unwrap(), 1);
    assert_eq!(store.epoch(A).unwrap(), Some(row));
    assert_eq!(store.snapshot_chunk(A, 1, u32::MAX).unwrap(), None);
}

pub(super) fn retain_drops_only_what_the_epoch_covers(store: &mut impl RelayStore) {
    accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
    accepted(store.login(&login(A, LAPTOP, 1, 1)).unwrap());
    let mut chain = Chain::new(PHONE);
    let old: Vec<Sealed> = (0..4).map(|_| chain.next(0)).collect();
    seqs(push(store, A, PHONE, &old.iter().collect::<Vec<_>>(), 100));
    let hashes = stage(store, A, 0xb1, 1, 100);
    let epoch1 = published(
        store
            .publish_epoch(A, &publish_of(1, 4, 0xb1, &hashes, PHONE), 100)
            .unwrap(),
    );
    let (e5, e6) = (chain.next(1), chain.next(1));
    seqs(push(store, A, PHONE, &[&e5, &e6], 200));
    store.touch(A, PHONE, 140).unwrap();
    store.touch(A, LAPTOP, 140).unwrap();
    let policy = Retention {
        log_retention_ms: 1_000,
        staged_ttl_ms: 50,
    };
    let retained = |log_entries, floor_seq, snapshot_chunks, staged_chunks| Retained {
        log_entries,
        floor_seq,
        snapshot_chunks,
        staged_chunks,
    };
    let page_seqs = |read: LogRead| match read {
        LogRead::Page(page) => (
            page.rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
            page.more,
        ),
        other => panic!("{other:?}"),
    };
    // Nobody acknowledged anything, and it is all recent: nothing goes.
    assert_eq!(store.retain(A, &policy, 150).unwrap(), retained(0, 0, 0, 0));
    assert_eq!(
        page_seqs(store.read_log_from(A, 0, 10, usize::MAX).unwrap()),
        ((1..=6).collect(), false)
    );
    // Up to the lowest cursor of the devices seen within the retention.
    store.set_cursor(A, PHONE, 3).unwrap();
    store.set_cursor(A, LAPTOP, 6).unwrap();
    assert_eq!(store.retain(A, &policy, 150).unwrap(), retained(3, 3, 0, 0));
    assert_eq!(
        store.read_log_from(A, 2, 10, usize::MAX).unwrap(),
        LogRead::Truncated { floor: 3 }
    );
    assert_eq!(
        page_seqs(store.read_log_from(A, 3, 2, usize::MAX).unwrap()),
        (vec![4, 5], true)
    );
    // Today's read_log does not know the floor: it reads what is kept.
    assert_eq!(
        store
            .read_log(A, 0, 10, usize::MAX)
            .unwrap()
            .rows
            .first()
            .map(|r| r.seq),
        Some(4)
    );
    assert_eq!(store.tail_stats(A).unwrap().floor_seq, 3);
    // Entries appended at least the retention ago go whoever has not
    // acknowledged them, but never past the base (4): 5 and 6 are the tail.
    assert_eq!(
        store.retain(A, &policy, 1_100).unwrap(),
        retained(1, 4, 0, 0)
    );
    store.set_cursor(A, PHONE, 6).unwrap();
    assert_eq!(
        store.retain(A, &policy, 1_100).unwrap(),
        retained(0, 4, 0, 0)
    );
    assert_eq!(
        store.retain(A, &policy, 10_000).unwrap(),
        retained(0, 4, 0, 0)
    );
    assert_eq!(
        page_seqs(store.read_log_from(A, 4, 10, usize::MAX).unwrap()),
        (vec![5, 6], false)
    );
    // A resend of a deleted envelope is no longer deduplicated: its epoch
    // refuses it.
    assert_eq!(
        push(store, A, PHONE, &[&old[0]], 10_000),
        AppendOutcome::StaleEpoch {
            index: 0,
            current: Some(epoch1)
        }
    );
    // Two more epochs: the oldest snapshot goes, the previous and the
    // current stay; the log goes up to the new base.
    for (epoch, snapshot) in [(2, 0xb2), (3, 0xb3)] {
        let hashes = stage(store, A, snapshot, 1, 10_000);
        published(
            store
                .publish_epoch(A, &publish_of(epoch, 6, snapshot, &hashes, PHONE), 10_000)
                .unwrap(),
        );
    }
    assert_eq!(
        store.retain(A, &policy, 10_000).unwrap(),
        retained(2, 6, 1, 0)
    );
    assert_eq!(store.snapshot_chunk(A, 1, 0).unwrap(), None);
    for epoch in [2, 3] {
        assert!(store.snapshot_chunk(A, epoch, 0).unwrap().is_some());
    }
    let stats = store.tail_stats(A).unwrap();
    assert_eq!((stats.head_seq, stats.floor_seq, stats.entries), (6, 6, 0));
    assert_eq!(
        page_seqs(store.read_log_from(A, 6, 10, usize::MAX).unwrap()),
        (vec![], false)
    );
    assert_eq!(
        store.read_log_from(A, 5, 10, usize::MAX).unwrap(),
        LogRead::Truncated { floor: 6 }
    );
    // Staged chunks no publish committed live for their time to live;
    // committed ones do not expire.
    stage(store, A, 0xb4, 2, 10_000);
    assert_eq!(
        store.retain(A, &policy, 10_049).unwrap(),
        retained(0, 6, 0, 0)
    );
    assert_eq!(
        store.retain(A, &policy, 10_050).unwrap(),
        retained(0, 6, 0, 2)
    );
    assert!(store.snapshot_chunk(A, 3, 0).unwrap().is_some());
    // An unknown account has nothing to retain or read.
    assert_eq!(
        store.retain(B, &policy, 10_050).unwrap(),
        Retained::default()
    );
    assert_eq!(
        store.read_log_from(B, 0, 10, usize::MAX).unwrap(),
        LogRead::Page(Page::default())
    );
    out_of_range(
        store.retain(A, &policy, STORED_VALUE_MAX + 1),
        "now_ms",
        STORED_VALUE_MAX + 1,
    );
    // Retentions that reach back before 1970 keep everything.
    let forever = Retention {
        log_retention_ms: u64::MAX,
        staged_ttl_ms: u64::MAX,
    };
    stage(store, A, 0xb5, 1, 0);
    assert_eq!(
        store.retain(A, &forever, STORED_VALUE_MAX).unwrap(),
        retained(0, 6, 0, 0)
    );
}

fn session(device: DeviceKey, conn: u64, at_ms: u64) -> SessionRow {
    SessionRow {
        device,
        conn,
        platform: "linux".into(),
        last_active_ms: at_ms,
        enrolled_at_ms: at_ms,
    }
}

pub(super) fn an_instance_never_sees_its_own_sessions_as_elsewhere(store: &mut impl RelayStore) {
    accepted(store.login(&login(A, PHONE, 1, 10)).unwrap());
    store
        .open_session(A, &session(PHONE, 1, 10), 1_000)
        .unwrap();
    store.renew_node_lease(2_000).unwrap();
    assert_eq!(store.sessions_elsewhere(A, 10).unwrap(), Vec::new());
    store.close_session(A, PHONE, 1).unwrap();
    store.end_session(A, PHONE).unwrap();
    assert_eq!(store.sessions_elsewhere(A, 10).unwrap(), Vec::new());
}

/// Expands to one `#[test]` per conformance case, each on a fresh store.
/// `$make` gives `(keep, store)`: `keep` lives as long as the test (the
/// temporary folder or database the store is in).
macro_rules! relay_store_conformance {
    ($backend:ident, $make:expr, change_feed: $feed:expr) => {
        mod $backend {
            use super::*;

            /// Only a store that other writers share has changes to report.
            #[test]
            fn change_feed_only_where_others_write() {
                let (_keep, mut store) = $make;
                assert_eq!(store.change_feed().is_some(), $feed);
            }

            relay_store_conformance!(@cases $make;
                login_registers_then_updates,
                devices_are_listed_by_id_and_touch_updates_last_seen,
                device_limit_below_at_above,
                enrollment_binds_the_id_to_its_first_key,
                login_tokens_are_single_use,
                revocations_keep_their_reason_and_revoke_all_spares_one,
                enrollments_expire_and_renew_while_active,
                used_tokens_are_forgotten_once_they_expire,
                banned_and_removed_accounts_are_refused,
                append_assigns_dense_seqs_once_per_content_id,
                read_log_pages_by_count_and_bytes,
                cursors_only_move_forward_and_stop_at_the_head,
                payloads_wait_until_acked,
                a_group_commits_its_operations_together,
                a_failed_operation_leaves_the_rest_of_its_group,
                values_above_i64_max_are_refused_not_clamped,
                an_instance_never_sees_its_own_sessions_as_elsewhere,
                envelopes_append_in_chain_order_once_per_content_id,
                chain_gaps_and_forks_refuse_the_whole_batch,
                publish_is_a_compare_and_swap_on_epoch_and_head,
                dedupe_comes_before_the_epoch_check_and_the_epoch_before_the_chain,
                an_envelope_refusal_leaves_the_rest_of_its_group,
                removing_an_account_forgets_its_epochs_and_chains,
                envelope_values_above_i64_max_are_refused_not_clamped,
                retain_drops_only_what_the_epoch_covers,
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

relay_store_conformance!(memory, ((), MemoryRelayStore::new()), change_feed: false);
relay_store_conformance!(
    sqlite,
    ((), SqliteRelayStore::open_in_memory().unwrap()),
    change_feed: false
);
relay_store_conformance!(postgres, {
    let db = TestDb::create();
    let store = PostgresRelayStore::open(db.url()).unwrap();
    (db, store)
}, change_feed: true);

/// Several instances of one backend on one database (several relay nodes,
/// or a relay and a tool): appends from all of them make one gapless total
/// order per account, each content id once, and every acknowledged seq is
/// the one in the log.
pub(super) fn concurrent_appends_make_one_gapless_order<S: RelayStore>(
    open: &(dyn Fn() -> S + Sync),
) {
    const THREADS: u8 = 2;
    const GROUPS: u8 = 30;
    const PUSHES_PER_GROUP: u8 = 3;
    // Each push: one delta of the thread's own and one that both threads
    // push (as two devices of one account pushing a delta they both hold).
    let id = |owner: u8, group: u8, push: u8| -> ContentKey {
        let mut id = [0; 32];
        id[..3].copy_from_slice(&[owner, group, push]);
        id
    };
    drop(open()); // migrated once, before the threads race
    let start = Barrier::new(THREADS.into());
    let acks: Vec<Vec<Appended>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let start = &start;
                scope.spawn(move || {
                    let mut store = open();
                    let device = [t + 1; 16];
                    accepted(store.login(&login(A, device, 1, 1)).unwrap());
                    start.wait();
                    let mut acks = Vec::new();
                    for group in 0..GROUPS {
                        store.begin_group().unwrap();
                        for push in 0..PUSHES_PER_GROUP {
                            let (own, shared) = (id(t + 1, group, push), id(0xFF, group, push));
                            let deltas: [(ContentKey, &[u8]); 2] =
                                [(own, &own[..3]), (shared, &shared[..3])];
                            acks.extend(store.append(A, device, &deltas).unwrap());
                        }
                        store.commit_group().unwrap();
                    }
                    acks
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut store = open();
    let mut log = Vec::new();
    loop {
        let page = store.read_log(A, log.len() as u64, 64, usize::MAX).unwrap();
        log.extend(page.rows);
        if !page.more {
            break;
        }
    }
    let expected = usize::from(GROUPS) * usize::from(PUSHES_PER_GROUP) * usize::from(THREADS + 1);
    assert_eq!(
        log.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=expected as u64).collect::<Vec<_>>(),
        "one gapless order"
    );
    assert_eq!(store.head_seq(A).unwrap(), expected as u64);
    let by_id: HashMap<ContentKey, u64> = log.iter().map(|r| (r.content_id, r.seq)).collect();
    assert_eq!(by_id.len(), expected, "each content id once");
    assert!(log.iter().all(|r| r.bytes == r.content_id[..3]));
    let mut stored_by = HashSet::new();
    for ack in acks.iter().flatten() {
        assert_eq!(
            by_id.get(&ack.content_id),
            Some(&ack.seq),
            "acked where it is"
        );
        if ack.new {
            assert!(stored_by.insert(ack.content_id), "stored as new twice");
        }
    }
    assert_eq!(stored_by.len(), expected, "every delta stored as new once");
}

/// The reports of `feed` merged, until every account of `until` has been
/// named, within a bound.
fn feed_until(feed: &mut dyn ChangeFeed, until: &[&str]) -> HashMap<String, ChangeKinds> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen: HashMap<String, ChangeKinds> = HashMap::new();
    while !until.iter().all(|a| seen.contains_key(*a)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the feed named {seen:?}, not yet all of {until:?}"
        );
        match feed.wait(std::time::Duration::from_millis(200)).unwrap() {
            None => {}
            Some(Changes::Accounts(accounts)) => {
                for (account, kinds) in accounts {
                    let entry = seen.entry(account).or_default();
                    *entry = entry.union(kinds);
                }
            }
            Some(other) => panic!("unexpected report {other:?}"),
        }
    }
    seen
}

/// A store shared with other writers offers a change feed, which names the
/// accounts other instances changed and how (deltas, devices, payloads,
/// status), once they commit, and never the instance's own changes or
/// operations that changed nothing. Stores that one process writes offer
/// none (`feed` false).
pub(super) fn the_change_feed_names_what_other_instances_changed<S: RelayStore>(
    open: &(dyn Fn() -> S + Sync),
    feed: bool,
) {
    let (mut mine, mut other) = (open(), open());
    let found = mine.change_feed();
    assert_eq!(found.is_some(), feed, "a change feed where others write");
    let Some(mut feed) = found else { return };
    // Connecting may have missed changes: the first report says so.
    assert_eq!(
        feed.wait(std::time::Duration::from_secs(10)).unwrap(),
        Some(Changes::Everything)
    );
    const OWN: &str = "own";
    const C: &str = "carol";
    // Its own instance's changes, in a group and alone: never reported.
    mine.begin_group().unwrap();
    accepted(mine.login(&login(OWN, PHONE, 1, 10)).unwrap());
    append_n(&mut mine, OWN, PHONE, &[1]);
    mine.commit_group().unwrap();
    mine.revoke(OWN, PHONE, &kicked_by(LAPTOP, 11)).unwrap();
    // Another instance's group: one report of each kind it made.
    other.begin_group().unwrap();
    accepted(other.login(&login(A, PHONE, 1, 10)).unwrap());
    accepted(other.login(&login(A, LAPTOP, 1, 10)).unwrap());
    append_n(&mut other, A, PHONE, &[1, 2]);
    let payload = PayloadRow {
        id: [7; 16],
        sender: PHONE,
        bytes: b"hi".to_vec(),
        sent_ms: 12,
    };
    assert_eq!(
        other.put_payload(A, LAPTOP, &payload, 8).unwrap(),
        PutPayload::Stored
    );
    other.commit_group().unwrap();
    // Alone (outside a group): reported too.
    assert_eq!(other.set_banned(B, true).unwrap(), AccountStatus::Banned);
    let seen = feed_until(feed.as_mut(), &[A, B]);
    assert_eq!(
        seen,
        HashMap::from([
            (
                A.to_owned(),
                ChangeKinds {
                    deltas: true,
                    devices: true,
                    payloads: true,
                    status: false
                }
            ),
            (
                B.to_owned(),
                ChangeKinds {
                    status: true,
                    ..ChangeKinds::default()
                }
            ),
        ])
    );
    // Operations that changed nothing are not reported: a refused login,
    // deltas the log holds already, a payload already stored, a ban of a
    // banned account, a revocation of a revoked device. Between them, one
    // revocation that does change the device list; a later change
    // shows that nothing else came before it.
    assert_eq!(
        other.login(&login(A, TABLET, 0, 20)).unwrap(),
        LoginOutcome::NotEnrolled
    );
    assert!(append_n(&mut other, A, PHONE, &[1, 2])
        .iter()
        .all(|a| !a.new));
    assert_eq!(
        other.put_payload(A, LAPTOP, &payload, 8).unwrap(),
        PutPayload::AlreadyStored
    );
    assert_eq!(other.set_banned(B, true).unwrap(), AccountStatus::Banned);
    other.revoke(A, LAPTOP, &kicked_by(PHONE, 21)).unwrap();
    assert_eq!(
        other.revoke(A, LAPTOP, &kicked_by(PHONE, 22)).unwrap(),
        RevokeOutcome::AlreadyRevoked
    );
    other.begin_group().unwrap();
    accepted(other.login(&login(C, PHONE, 1, 23)).unwrap());
    append_n(&mut other, C, PHONE, &[3]);
    other.commit_group().unwrap();
    let seen = feed_until(feed.as_mut(), &[C]);
    let devices_only = ChangeKinds {
        devices: true,
        ..ChangeKinds::default()
    };
    let deltas_and_devices = ChangeKinds {
        deltas: true,
        ..devices_only
    };
    assert_eq!(
        seen,
        HashMap::from([
            (A.to_owned(), devices_only),
            (C.to_owned(), deltas_and_devices)
        ])
    );
}

/// On a store other writers share, a session opened by one instance counts
/// for the others while its node's lease runs and its device's enrollment
/// is not revoked; a later session of the device replaces it, and only the
/// connection that opened it closes it. A store that one process writes
/// (`shared` false) keeps no sessions: nothing is ever elsewhere.
pub(super) fn sessions_count_elsewhere_while_their_lease_runs<S: RelayStore>(
    open: &(dyn Fn() -> S + Sync),
    shared: bool,
) {
    let (mut one, mut two) = (open(), open());
    let seen = |store: &mut S, now_ms: u64| -> Vec<(DeviceKey, u64)> {
        store
            .sessions_elsewhere(A, now_ms)
            .unwrap()
            .into_iter()
            .map(|s| (s.device, s.conn))
            .collect()
    };
    let expect = |rows: Vec<(DeviceKey, u64)>| if shared { rows } else { Vec::new() };
    for device in [PHONE, LAPTOP, TABLET] {
        accepted(one.login(&login(A, device, 1, 10)).unwrap());
    }
    one.open_session(A, &session(PHONE, 1, 10), 1_000).unwrap();
    one.open_session(A, &session(LAPTOP, 2, 10), 1_000).unwrap();
    assert_eq!(seen(&mut two, 999), expect(vec![(PHONE, 1), (LAPTOP, 2)]));
    assert_eq!(seen(&mut one, 999), Vec::new(), "its own are not elsewhere");
    assert_eq!(
        two.sessions_elsewhere(A, 999).unwrap().first().cloned(),
        expect(vec![(PHONE, 1)])
            .first()
            .map(|_| session(PHONE, 1, 10))
    );
    // The lease ends at 1,000: from then on they do not count, until the
    // node renews it.
    assert_eq!(seen(&mut two, 1_000), Vec::new());
    one.renew_node_lease(5_000).unwrap();
    assert_eq!(seen(&mut two, 1_000), expect(vec![(PHONE, 1), (LAPTOP, 2)]));
    // A revoked device's session does not count.
    one.revoke(A, LAPTOP, &kicked_by(PHONE, 20)).unwrap();
    assert_eq!(seen(&mut two, 1_000), expect(vec![(PHONE, 1)]));
    // The phone logs in on the other node: its session moves there, and
    // the first node's connection closing later leaves it.
    two.open_session(A, &session(PHONE, 7, 30), 5_000).unwrap();
    one.close_session(A, PHONE, 1).unwrap();
    assert_eq!(seen(&mut one, 1_000), expect(vec![(PHONE, 7)]));
    assert_eq!(seen(&mut two, 1_000), Vec::new());
    // Closed by its own connection, or ended from anywhere, it is gone.
    one.open_session(A, &session(TABLET, 3, 40), 5_000).unwrap();
    one.close_session(A, TABLET, 99).unwrap();
    assert_eq!(seen(&mut two, 1_000), expect(vec![(TABLET, 3)]));
    one.close_session(A, TABLET, 3).unwrap();
    assert_eq!(seen(&mut two, 1_000), Vec::new());
    one.end_session(A, PHONE).unwrap();
    assert_eq!(seen(&mut one, 1_000), Vec::new());
    // Removing the account ends its sessions.
    one.open_session(A, &session(PHONE, 4, 50), 5_000).unwrap();
    assert_eq!(seen(&mut two, 1_000), expect(vec![(PHONE, 4)]));
    one.remove_account(A).unwrap();
    assert_eq!(seen(&mut two, 1_000), Vec::new());
}

/// How many rounds each race runs: each round is one contest.
const RACE_ROUNDS: u64 = 12;

/// Two instances publish the same epoch at the same head, round after
/// round, each its own snapshot: exactly one is `Published`, and the other
/// finds the winner's epoch current.
pub(super) fn two_publishers_of_one_epoch_one_wins<S: RelayStore>(open: &(dyn Fn() -> S + Sync)) {
    {
        let mut store = open();
        accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
        accepted(store.login(&login(A, LAPTOP, 1, 1)).unwrap());
        let mut chain = Chain::new(PHONE);
        let e1 = chain.next(0);
        seqs(push(&mut store, A, PHONE, &[&e1], 1));
    }
    let (staged, done) = (Barrier::new(2), Barrier::new(2));
    let outcomes: Vec<Vec<(u8, PublishOutcome)>> = std::thread::scope(|scope| {
        let threads: Vec<_> = [PHONE, LAPTOP]
            .into_iter()
            .map(|device| {
                let (staged, done) = (&staged, &done);
                scope.spawn(move || {
                    let mut store = open();
                    let mut outcomes = Vec::new();
                    for round in 0..RACE_ROUNDS {
                        let snapshot = device[0] * 0x10 + round as u8;
                        let hashes = stage(&mut store, A, snapshot, 1, round);
                        staged.wait();
                        let publish = publish_of(round + 1, 1, snapshot, &hashes, device);
                        outcomes.push((snapshot, store.publish_epoch(A, &publish, round).unwrap()));
                        done.wait();
                    }
                    outcomes
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(outcomes.iter().all(|o| o.len() == RACE_ROUNDS as usize));
    for (round, (one, two)) in outcomes[0].iter().zip(&outcomes[1]).enumerate() {
        let pair = [one, two];
        let winners: Vec<&EpochRow> = pair
            .iter()
            .filter_map(|(_, o)| match o {
                PublishOutcome::Published(row) => Some(row),
                _ => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {pair:?}");
        let winner = winners[0];
        assert_eq!(winner.epoch, round as u64 + 1);
        for (snapshot, outcome) in pair {
            if winner.snapshot_id != [*snapshot; 32] {
                assert_eq!(
                    outcome,
                    &PublishOutcome::Conflict {
                        current: Some(winner.clone()),
                        head_seq: 1
                    },
                    "round {round}"
                );
            }
        }
    }
    let mut store = open();
    assert_eq!(store.epoch(A).unwrap().unwrap().epoch, RACE_ROUNDS);
}

/// An append and a publish race on one account, round after round:
/// either the append wins (the publish sees the head moved) or the
/// publish does (the append is stale), never both.
pub(super) fn a_publish_racing_an_append_never_both_win<S: RelayStore>(
    open: &(dyn Fn() -> S + Sync),
) {
    {
        let mut store = open();
        accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
        accepted(store.login(&login(A, LAPTOP, 1, 1)).unwrap());
    }
    let (ready, done) = (Barrier::new(2), Barrier::new(2));
    let (appends, publishes) = std::thread::scope(|scope| {
        let appender = scope.spawn(|| {
            let mut store = open();
            let mut chain = Chain::new(PHONE);
            let mut outcomes = Vec::new();
            for round in 0..RACE_ROUNDS {
                let epoch = store.tail_stats(A).unwrap().epoch;
                let e = Sealed::new(PHONE, epoch, chain.pos + 1, chain.head, 0);
                ready.wait();
                let outcome = push(&mut store, A, PHONE, &[&e], round);
                if matches!(outcome, AppendOutcome::Appended(_)) {
                    (chain.pos, chain.head) = (e.chain_pos, e.content_id);
                }
                outcomes.push(outcome);
                done.wait();
            }
            outcomes
        });
        let publisher = scope.spawn(|| {
            let mut store = open();
            let mut outcomes = Vec::new();
            for round in 0..RACE_ROUNDS {
                let stats = store.tail_stats(A).unwrap();
                let snapshot = 0xa0 + round as u8;
                let hashes = stage(&mut store, A, snapshot, 1, round);
                ready.wait();
                let publish =
                    publish_of(stats.epoch + 1, stats.head_seq, snapshot, &hashes, LAPTOP);
                outcomes.push((stats, store.publish_epoch(A, &publish, round).unwrap()));
                done.wait();
            }
            outcomes
        });
        (appender.join().unwrap(), publisher.join().unwrap())
    });
    let (mut appended, mut published) = (0, 0);
    for (round, (append, (before, publish))) in appends.iter().zip(&publishes).enumerate() {
        match (append, publish) {
            (AppendOutcome::Appended(entries), PublishOutcome::Conflict { head_seq, .. }) => {
                assert_eq!(entries.len(), 1);
                assert!(entries[0].new);
                assert_eq!(entries[0].seq, before.head_seq + 1, "round {round}");
                assert_eq!(*head_seq, before.head_seq + 1, "round {round}");
                appended += 1;
            }
            (AppendOutcome::StaleEpoch { index: 0, current }, PublishOutcome::Published(row)) => {
                assert_eq!(current.as_ref(), Some(row), "round {round}");
                assert_eq!(row.base_seq, before.head_seq);
                published += 1;
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
    let stats = open().tail_stats(A).unwrap();
    assert_eq!((stats.head_seq, stats.epoch), (appended, published));
    // Which side won is the scheduler's choice; shown with --nocapture.
    eprintln!("of {RACE_ROUNDS} rounds, {appended} appends and {published} publishes won");
}

/// Expands to one `#[test]` per shared-database case. `$make` gives
/// `(keep, open)`: `open()` opens one more instance on the same database.
macro_rules! shared_store_conformance {
    ($backend:ident, $make:expr, change_feed: $feed:expr) => {
        mod $backend {
            use super::*;

            #[test]
            fn concurrent_appends_make_one_gapless_order() {
                let (_keep, open) = $make;
                super::concurrent_appends_make_one_gapless_order(&open);
            }

            #[test]
            fn the_change_feed_names_what_other_instances_changed() {
                let (_keep, open) = $make;
                super::the_change_feed_names_what_other_instances_changed(&open, $feed);
            }

            #[test]
            fn sessions_count_elsewhere_while_their_lease_runs() {
                let (_keep, open) = $make;
                super::sessions_count_elsewhere_while_their_lease_runs(&open, $feed);
            }

            #[test]
            fn two_publishers_of_one_epoch_one_wins() {
                let (_keep, open) = $make;
                super::two_publishers_of_one_epoch_one_wins(&open);
            }

            #[test]
            fn a_publish_racing_an_append_never_both_win() {
                let (_keep, open) = $make;
                super::a_publish_racing_an_append_never_both_win(&open);
            }
        }
    };
}

shared_store_conformance!(sqlite_shared, {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.sqlite");
    (dir, move || SqliteRelayStore::open(&path).unwrap())
}, change_feed: false);
shared_store_conformance!(postgres_shared, {
    let db = TestDb::create();
    let url = db.url().to_owned();
    (db, move || PostgresRelayStore::open(&url).unwrap())
}, change_feed: true);

/// What a relay of protocol 1 left in its store: two devices with token
/// hashes, one of them revoked, a log and a payload. The same statements
/// fit SQLite and PostgreSQL (hex blobs aside: `$blob` is replaced).
fn protocol_1_rows(blob: fn(&[u8]) -> String) -> String {
    let (phone, laptop) = (blob(&PHONE), blob(&LAPTOP));
    let (hash, cid) = (blob(&[9; 32]), blob(&[1; 32]));
    format!(
        "INSERT INTO accounts (account, head_seq) VALUES ('{A}', 1);
         INSERT INTO devices (account, device, name, platform, first_login_ms, last_seen_ms,
                              token_hash, cursor)
         VALUES ('{A}', {phone}, 'phone', 'ios', 5, 6, {hash}, 1),
                ('{A}', {laptop}, 'laptop', 'macos', 5, 6, {hash}, 0);
         INSERT INTO revoked (account, device, token_hash) VALUES ('{A}', {laptop}, {hash});
         INSERT INTO log (account, seq, content_id, origin, bytes)
         VALUES ('{A}', 1, {cid}, {phone}, {cid});
         INSERT INTO payloads (account, recipient, id, sender, bytes, sent_ms)
         VALUES ('{A}', {laptop}, {phone}, {phone}, {phone}, 7);"
    )
}

/// After the migration: the data is there, the devices are known but not
/// enrolled, and each logs in once more with a login token.
fn protocol_1_store_migrated(store: &mut impl RelayStore) {
    let devices = store.devices(A).unwrap();
    assert_eq!(
        devices
            .iter()
            .map(|d| (d.device, d.name.as_str(), d.cursor, d.enrollment.is_none()))
            .collect::<Vec<_>>(),
        vec![(PHONE, "phone", 1, true), (LAPTOP, "laptop", 0, true)]
    );
    assert_eq!(store.head_seq(A).unwrap(), 1);
    assert_eq!(
        store.read_log(A, 0, 10, usize::MAX).unwrap().rows[0].origin,
        PHONE
    );
    assert_eq!(store.payloads(A, LAPTOP).unwrap().len(), 1);
    assert_eq!(store.account_status(A).unwrap(), AccountStatus::Active);
    assert_eq!(
        store.login(&login(A, PHONE, 0, 10)).unwrap(),
        LoginOutcome::NotEnrolled
    );
    assert_eq!(
        store.revoke(A, LAPTOP, &kicked_by(PHONE, 10)).unwrap(),
        RevokeOutcome::NotEnrolled
    );
    let (row, first) = accepted(store.login(&login(A, PHONE, 1, 11)).unwrap());
    assert!(!first, "a known device, not a new one");
    assert_eq!((row.first_login_ms, row.cursor), (5, 1));
    // Epochs: the old rows are epoch 0's tail, nothing was deleted.
    assert_eq!(store.epoch(A).unwrap(), None);
    assert_eq!(
        store.tail_stats(A).unwrap(),
        TailStats {
            head_seq: 1,
            epoch: 0,
            base_seq: 0,
            entries: 1,
            bytes: 32,
            floor_seq: 0
        }
    );
    accepted(store.login(&login(A, LAPTOP, 1, 11)).unwrap());
    append_n(store, A, LAPTOP, &[2]);
    assert_eq!(store.head_seq(A).unwrap(), 2);
    let e1 = Chain::new(LAPTOP).next(0);
    assert_eq!(seqs(push(store, A, LAPTOP, &[&e1], 12)), vec![(3, true)]);
    let hashes = stage(store, A, 1, 1, 12);
    published(
        store
            .publish_epoch(A, &publish_of(1, 3, 1, &hashes, LAPTOP), 12)
            .unwrap(),
    );
}

mod sqlite_file {
    use super::*;

    #[test]
    fn a_protocol_1_file_migrates_and_its_devices_enroll_once_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.sqlite");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(include_str!("migrations/sqlite/0001_init.sql"))
                .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            let hex = |b: &[u8]| {
                format!(
                    "x'{}'",
                    b.iter().map(|x| format!("{x:02x}")).collect::<String>()
                )
            };
            conn.execute_batch(&protocol_1_rows(hex)).unwrap();
        }
        let mut store = SqliteRelayStore::open(&path).unwrap();
        protocol_1_store_migrated(&mut store);
    }

    #[test]
    fn everything_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.sqlite");
        {
            let mut store = SqliteRelayStore::open(&path).unwrap();
            accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
            accepted(store.login(&login(A, LAPTOP, 1, 1)).unwrap());
            append_n(&mut store, A, PHONE, &[1, 2]);
            store.revoke(A, LAPTOP, &kicked_by(PHONE, 1)).unwrap();
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
            store.login(&login(A, LAPTOP, 0, 2)).unwrap(),
            LoginOutcome::Revoked(kicked_by(PHONE, 1))
        );
        assert_eq!(
            store.login(&login(A, LAPTOP, 1, 2)).unwrap(),
            LoginOutcome::TokenUsed
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
                known: 3,
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

/// What only a database server shows: reopening, refusing a newer schema,
/// nodes starting together, connections lost under the store, and two
/// groups deadlocking.
mod postgres_database {
    use super::*;
    use ::postgres::error::SqlState;

    #[test]
    fn a_protocol_1_database_migrates_and_its_devices_enroll_once_more() {
        let db = TestDb::create();
        let mut admin = client(&db);
        admin
            .batch_execute(include_str!("migrations/postgres/0001_init.sql"))
            .unwrap();
        admin
            .batch_execute("INSERT INTO schema_version (version) VALUES (1)")
            .unwrap();
        let hex = |b: &[u8]| {
            format!(
                "'\\x{}'::BYTEA",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            )
        };
        admin.batch_execute(&protocol_1_rows(hex)).unwrap();
        let mut store = open(&db);
        protocol_1_store_migrated(&mut store);
    }

    fn open(db: &TestDb) -> PostgresRelayStore {
        PostgresRelayStore::open(db.url()).unwrap()
    }

    fn client(db: &TestDb) -> ::postgres::Client {
        ::postgres::Client::connect(db.url(), ::postgres::NoTls).unwrap()
    }

    /// Ends every connection to the database (what a restart does to them),
    /// waiting until they are gone.
    fn end_connections(db: &TestDb) {
        let ended: i64 = db
            .admin()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity, pg_terminate_backend(pid, 5000) AS ended
                 WHERE datname = $1 AND pid <> pg_backend_pid() AND ended",
                &[&db.name()],
            )
            .unwrap()
            .get(0);
        assert!(ended > 0, "the store had a connection to end");
    }

    fn allow_connections(db: &TestDb, allow: bool) {
        db.admin()
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS {allow}",
                db.name()
            ))
            .unwrap();
    }

    fn is_postgres_error(result: Result<impl std::fmt::Debug, StoreError>) -> bool {
        matches!(result, Err(StoreError::Postgres(_)))
    }

    #[test]
    fn everything_survives_a_reopen() {
        let db = TestDb::create();
        {
            let mut store = open(&db);
            accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
            accepted(store.login(&login(A, LAPTOP, 1, 1)).unwrap());
            append_n(&mut store, A, PHONE, &[1, 2]);
            store.revoke(A, LAPTOP, &kicked_by(PHONE, 1)).unwrap();
            let p = PayloadRow {
                id: [7; 16],
                sender: PHONE,
                bytes: vec![7],
                sent_ms: 1,
            };
            store.put_payload(A, LAPTOP, &p, 4).unwrap();
        }
        let mut store = open(&db);
        assert_eq!(store.head_seq(A).unwrap(), 2);
        assert_eq!(
            append_n(&mut store, A, PHONE, &[2, 3])
                .iter()
                .map(|a| a.seq)
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(
            store.login(&login(A, LAPTOP, 0, 2)).unwrap(),
            LoginOutcome::Revoked(kicked_by(PHONE, 1))
        );
        assert_eq!(
            store.login(&login(A, LAPTOP, 1, 2)).unwrap(),
            LoginOutcome::TokenUsed
        );
        assert_eq!(store.payloads(A, LAPTOP).unwrap().len(), 1);
    }

    #[test]
    fn a_group_that_never_commits_is_not_durable() {
        let db = TestDb::create();
        {
            let mut store = open(&db);
            accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
            append_n(&mut store, A, PHONE, &[1]);
            store.begin_group().unwrap();
            append_n(&mut store, A, PHONE, &[2, 3]);
            // Dropped (a crash) before commit_group.
        }
        assert_eq!(open(&db).head_seq(A).unwrap(), 1);
    }

    #[test]
    fn a_newer_schema_is_refused_with_a_clear_error() {
        let db = TestDb::create();
        drop(open(&db));
        client(&db)
            .batch_execute("INSERT INTO schema_version (version) VALUES (99)")
            .unwrap();
        match PostgresRelayStore::open(db.url()) {
            Err(crate::OpenError::SchemaTooNew {
                found: 99,
                known: 4,
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nodes_opening_a_fresh_database_together_migrate_it_once() {
        let db = TestDb::create();
        let start = Barrier::new(4);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    start.wait();
                    drop(open(&db));
                });
            }
        });
        let versions: Vec<i32> = client(&db)
            .query("SELECT version FROM schema_version", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(versions, vec![1, 2, 3, 4]);
    }

    #[test]
    fn corrupt_rows_are_errors_not_panics_and_do_not_poison_a_group() {
        let db = TestDb::create();
        let mut store = open(&db);
        accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
        client(&db)
            .batch_execute("UPDATE devices SET last_seen_ms = -5")
            .unwrap();
        assert!(matches!(store.devices(A), Err(StoreError::Corrupt(_))));
        store.begin_group().unwrap();
        assert!(matches!(store.devices(A), Err(StoreError::Corrupt(_))));
        append_n(&mut store, A, PHONE, &[1]);
        store.commit_group().unwrap();
        assert_eq!(store.head_seq(A).unwrap(), 1);
    }

    #[test]
    fn a_lost_database_is_an_error_and_the_store_reconnects_after_it() {
        let db = TestDb::create();
        let mut store = open(&db);
        accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
        append_n(&mut store, A, PHONE, &[1, 2]);
        // Down: the store's connection is ended and no new one is let in.
        allow_connections(&db, false);
        end_connections(&db);
        assert!(is_postgres_error(store.head_seq(A)));
        let bytes = [3u8; 4];
        assert!(is_postgres_error(store.append(
            A,
            PHONE,
            &[(content(3), &bytes)]
        )));
        assert!(is_postgres_error(store.begin_group()));
        assert!(is_postgres_error(store.devices(A)));
        // Up again: the next operation connects, and nothing acknowledged
        // was lost.
        allow_connections(&db, true);
        assert_eq!(store.head_seq(A).unwrap(), 2);
        assert_eq!(
            append_n(&mut store, A, PHONE, &[2, 3])
                .iter()
                .map(|a| (a.seq, a.new))
                .collect::<Vec<_>>(),
            vec![(2, false), (3, true)]
        );
    }

    #[test]
    fn errors_say_what_postgres_said() {
        let db = TestDb::create();
        let mut store = open(&db);
        let bytes = [1u8];
        let refused = store.append(A, PHONE, &[(content(1), &bytes)]).unwrap_err();
        let text = refused.to_string();
        assert!(
            text.contains("foreign key") && text.contains("23503"),
            "{text}"
        );
        let unreachable = PostgresRelayStore::open("postgresql://postgres@127.0.0.1:1/x")
            .unwrap_err()
            .to_string();
        assert!(unreachable.contains("refused"), "{unreachable}");
    }

    #[test]
    fn a_group_whose_connection_is_lost_is_lost_whole() {
        let db = TestDb::create();
        let mut store = open(&db);
        accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
        append_n(&mut store, A, PHONE, &[1]);
        store.begin_group().unwrap();
        append_n(&mut store, A, PHONE, &[2]);
        end_connections(&db);
        let bytes = [3u8; 4];
        assert!(is_postgres_error(store.append(
            A,
            PHONE,
            &[(content(3), &bytes)]
        )));
        // The rest of the group fails fast, and so does its commit.
        assert!(matches!(store.head_seq(A), Err(StoreError::GroupLost)));
        assert!(matches!(store.commit_group(), Err(StoreError::GroupLost)));
        // Outside the group the store reconnects; the group left nothing.
        assert_eq!(store.head_seq(A).unwrap(), 1);
        store.begin_group().unwrap();
        let again = append_n(&mut store, A, PHONE, &[2, 3]);
        store.commit_group().unwrap();
        assert_eq!(again.iter().map(|a| a.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(open(&db).head_seq(A).unwrap(), 3);
    }

    #[test]
    fn conflicts_are_retried_up_to_the_attempt_limit() {
        use super::super::postgres::OPERATION_ATTEMPTS_MAX as MAX;
        let db = TestDb::create();
        let mut store = open(&db);
        accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
        // Every insert into the log fails as a unique conflict while the
        // (non-transactional) attempt counter is at most `failures`.
        let mut admin = client(&db);
        admin
            .batch_execute(
                "CREATE SEQUENCE attempts;
                 CREATE TABLE failures (n BIGINT NOT NULL);
                 INSERT INTO failures VALUES (0);
                 CREATE FUNCTION conflict() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                     IF nextval('attempts') <= (SELECT n FROM failures) THEN
                         RAISE EXCEPTION 'injected conflict' USING ERRCODE = 'unique_violation';
                     END IF;
                     RETURN NULL;
                 END $$;
                 CREATE TRIGGER conflict BEFORE INSERT ON log
                     FOR EACH STATEMENT EXECUTE FUNCTION conflict();",
            )
            .unwrap();
        let mut n = 0;
        for grouped in [false, true] {
            // Below the limit, at it (the last attempt succeeds), above it.
            for failures in [MAX - 2, MAX - 1, MAX] {
                admin
                    .execute("UPDATE failures SET n = $1", &[&i64::from(failures)])
                    .unwrap();
                admin
                    .batch_execute("ALTER SEQUENCE attempts RESTART")
                    .unwrap();
                n += 1;
                let bytes = [n];
                if grouped {
                    store.begin_group().unwrap();
                }
                let result = store.append(A, PHONE, &[(content(n), &bytes)]);
                if grouped {
                    store.commit_group().unwrap();
                }
                let attempts: i64 = admin
                    .query_one("SELECT last_value FROM attempts", &[])
                    .unwrap()
                    .get(0);
                assert_eq!(attempts, i64::from((failures + 1).min(MAX)), "{failures}");
                match result {
                    Ok(appended) if failures < MAX => assert!(appended[0].new),
                    Err(StoreError::Postgres(e)) if failures == MAX => {
                        assert_eq!(e.code(), Some(&SqlState::UNIQUE_VIOLATION))
                    }
                    other => panic!("{failures} failures, grouped {grouped}: {other:?}"),
                }
            }
        }
        assert_eq!(store.head_seq(A).unwrap(), 4, "two of three, twice");
    }

    #[test]
    fn deadlocked_groups_lose_one_operation_not_a_group() {
        let db = TestDb::create();
        {
            let mut store = open(&db);
            accepted(store.login(&login(A, PHONE, 1, 1)).unwrap());
            accepted(store.login(&login(B, PHONE, 1, 1)).unwrap());
        }
        // Two nodes, each in a group, each holding one account's lock and
        // then asking for the other's.
        let locked = Barrier::new(2);
        let node = |first: &str, second: &str, n: u8| {
            let mut store = open(&db);
            store.begin_group().unwrap();
            append_n(&mut store, first, PHONE, &[n]);
            locked.wait();
            let bytes = [n + 1];
            let second = store.append(second, PHONE, &[(content(n + 1), &bytes)]);
            store.commit_group().unwrap();
            second
        };
        let (one, two) = std::thread::scope(|scope| {
            let one = scope.spawn(|| node(A, B, 10));
            let two = scope.spawn(|| node(B, A, 20));
            (one.join().unwrap(), two.join().unwrap())
        });
        let deadlocked = |r: &Result<Vec<Appended>, StoreError>| matches!(r, Err(StoreError::Postgres(e)) if e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED));
        assert!(
            deadlocked(&one) != deadlocked(&two),
            "exactly one operation fails: {one:?} {two:?}"
        );
        assert!(one.is_ok() || two.is_ok());
        let mut store = open(&db);
        let ids = |store: &mut PostgresRelayStore, account| {
            store
                .read_log(account, 0, 10, usize::MAX)
                .unwrap()
                .rows
                .iter()
                .map(|r| (r.seq, r.content_id[0]))
                .collect::<Vec<_>>()
        };
        // Both groups' first appends committed; so did the second append
        // that won.
        let (a, b) = (ids(&mut store, A), ids(&mut store, B));
        if one.is_ok() {
            assert_eq!((a, b), (vec![(1, 10)], vec![(1, 20), (2, 11)]));
        } else {
            assert_eq!((a, b), (vec![(1, 10), (2, 21)], vec![(1, 20)]));
        }
    }
}
