//! The relay over real TCP on 127.0.0.1, driven by `ClientSession` through
//! the drivers, with opaque byte deltas. Every test runs twice
//! (`on_both_links!`): its devices on the relay's TCP listener, then on its
//! WebSocket listener.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use tandem_relay::token::{self, Purpose};
use tandem_relay::{OfflinePushPolicy, OverflowPolicy, StoreLocation};
use tandem_transport::limits::{DELTAS_PER_PAGE_MAX, DELTAS_PER_PUSH_MAX};
use tandem_transport::{
    CloseReason, DeviceRef, EnrollmentState, ErrorCode, LogDelta, OfflineReason, PayloadId,
    Platform, SessionEvent, WireDelta,
};

fn dev_ref(n: u8) -> DeviceRef {
    DeviceRef {
        id: device(n),
        name: format!("dev{n}"),
        platform: Platform::Linux,
    }
}

async fn kicked(conn: &mut Conn) -> OfflineReason {
    let reason = expect(conn, |e| match e {
        SessionEvent::Kicked(reason) => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        next(conn).await,
        SessionEvent::Closed(CloseReason::Kicked(reason.clone()))
    );
    reason
}

fn deltas(tag: u8, count: usize) -> Vec<WireDelta> {
    (0..count)
        .map(|i| WireDelta::new(format!("delta {tag}/{i}").into_bytes()))
        .collect()
}

async fn push_acked(conn: &mut Conn, batch: Vec<WireDelta>) -> Vec<u64> {
    conn.session().push(batch).unwrap();
    expect(conn, |e| match e {
        SessionEvent::PushAcked(entries) => Some(entries.iter().map(|e| e.seq).collect()),
        _ => None,
    })
    .await
}

async fn live(conn: &mut Conn) -> LogDelta {
    expect(conn, |e| match e {
        SessionEvent::Live(d) => Some(d.clone()),
        _ => None,
    })
    .await
}

/// Pulls everything after `after` page by page; returns the pages' sizes and
/// all deltas.
async fn pull_all(conn: &mut Conn, mut after: u64) -> (Vec<usize>, Vec<LogDelta>) {
    let mut sizes = Vec::new();
    let mut all = Vec::new();
    loop {
        conn.session()
            .pull(after, DELTAS_PER_PAGE_MAX as u32)
            .unwrap();
        let (page, more) = expect(conn, |e| match e {
            SessionEvent::Deltas { deltas, more } => Some((deltas.clone(), *more)),
            _ => None,
        })
        .await;
        sizes.push(page.len());
        if let Some(last) = page.last() {
            after = last.seq;
        }
        all.extend(page);
        if !more {
            return (sizes, all);
        }
        assert!(sizes.len() < 1000, "paging ends");
    }
}

on_both_links!(two_devices_get_each_others_deltas_live_and_push_is_idempotent);
async fn two_devices_get_each_others_deltas_live_and_push_is_idempotent() {
    let relay = start(config(StoreLocation::Memory)).await;
    let mut a = login(&relay, "alice", 1).await;
    let mut b = login(&relay, "alice", 2).await;
    let batch = deltas(1, 3);
    assert_eq!(push_acked(&mut a, batch.clone()).await, vec![1, 2, 3]);
    for (seq, sent) in (1..=3).zip(&batch) {
        let got = live(&mut b).await;
        assert_eq!(
            (got.seq, got.origin, got.bytes.as_slice()),
            (seq, device(1), sent.bytes())
        );
    }
    // The same deltas again, from either device: same seqs, nothing new live.
    assert_eq!(push_acked(&mut b, batch.clone()).await, vec![1, 2, 3]);
    assert_eq!(push_acked(&mut a, deltas(2, 1)).await, vec![4]);
    assert_eq!(live(&mut b).await.seq, 4);
    // B's own push went live to A.
    assert_eq!(push_acked(&mut b, deltas(3, 1)).await, vec![5]);
    let got = live(&mut a).await;
    assert_eq!((got.seq, got.origin), (5, device(2)));
    relay.stop().await.expect("the relay stops");
}

on_both_links!(an_offline_device_catches_up_by_pulling_pages);
async fn an_offline_device_catches_up_by_pulling_pages() {
    let hook_log = Arc::new(Mutex::new(Vec::new()));
    let relay = {
        let hook = RecordingHook(hook_log.clone());
        start_with(config(StoreLocation::Memory), move |r| {
            r.with_offline_push_hook(Box::new(hook))
        })
        .await
    };
    // C logs in once, so the relay knows it, then goes offline.
    drop(login(&relay, "alice", 3).await);
    let mut a = login(&relay, "alice", 1).await;
    let total = DELTAS_PER_PAGE_MAX + 44;
    let all = deltas(1, total);
    let mut seqs = Vec::new();
    for chunk in all.chunks(DELTAS_PER_PUSH_MAX) {
        seqs.extend(push_acked(&mut a, chunk.to_vec()).await);
    }
    assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>());

    let token = relay.token(&account("alice"));
    let mut c = open(&relay, client_config("alice", 3, token)).await;
    let SessionEvent::Connected(welcome) = next(&mut c).await else {
        panic!()
    };
    assert_eq!(welcome.head_seq, total as u64);
    let (sizes, got) = pull_all(&mut c, 0).await;
    assert_eq!(sizes, vec![DELTAS_PER_PAGE_MAX, 44]);
    assert_eq!(got.iter().map(|d| d.seq).collect::<Vec<_>>(), seqs);
    assert!(got
        .iter()
        .zip(&all)
        .all(|(g, s)| g.bytes == s.bytes() && g.content_id == s.content_id()));
    c.session().ack(total as u64).unwrap();
    round_trip(&mut c).await;
    // Pulling from the end yields an empty last page.
    assert_eq!(pull_all(&mut c, total as u64).await.0, vec![0]);

    // The offline-push hook heard about C (offline during every push): one
    // call per push, with the push's size and the newest seq.
    let log = hook_log.lock().unwrap().clone();
    let expected: Vec<_> = all
        .chunks(DELTAS_PER_PUSH_MAX)
        .scan(0u64, |seq, chunk| {
            *seq += chunk.len() as u64;
            Some((device(3), chunk.len(), *seq))
        })
        .collect();
    assert_eq!(log, expected);
    relay.stop().await.expect("the relay stops");
}

/// Which devices the hook hears of for one push by device 1 of alice,
/// while device 2 is online or not, under `policy`. Device 3 is offline
/// throughout; device 4 was kicked.
async fn offline_pushes(
    policy: OfflinePushPolicy,
    two_online: bool,
) -> Vec<tandem_transport::DeviceId> {
    let hook_log = Arc::new(Mutex::new(Vec::new()));
    let mut config = config(StoreLocation::Memory);
    config.offline_push_policy = policy;
    let relay = {
        let hook = RecordingHook(hook_log.clone());
        start_with(config, move |r| r.with_offline_push_hook(Box::new(hook))).await
    };
    drop(login(&relay, "alice", 3).await);
    drop(login(&relay, "alice", 4).await);
    let mut one = login(&relay, "alice", 1).await;
    one.session().kick(device(4)).unwrap();
    expect(&mut one, |e| {
        matches!(e, SessionEvent::DeviceListChanged).then_some(())
    })
    .await;
    let two = login(&relay, "alice", 2).await;
    let two = if two_online {
        Some(two)
    } else {
        drop(two);
        // Wait (bounded) until the relay lists device 2 offline.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            one.session().list_devices().unwrap();
            let list = expect(&mut one, |e| match e {
                SessionEvent::Devices(list) => Some(list.clone()),
                _ => None,
            })
            .await;
            if list.iter().any(|d| d.id == device(2) && !d.online) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "device 2 still online: {list:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        None
    };
    assert_eq!(push_acked(&mut one, deltas(9, 2)).await, vec![1, 2]);
    drop(two);
    relay.stop().await.expect("the relay stops");
    let mut heard: Vec<_> = hook_log
        .lock()
        .unwrap()
        .iter()
        .map(|(d, _, _)| *d)
        .collect();
    heard.sort_by_key(|d| d.0);
    heard
}

on_both_links!(the_offline_push_policy_decides_who_is_notified_and_a_kicked_device_never_is);
async fn the_offline_push_policy_decides_who_is_notified_and_a_kicked_device_never_is() {
    use OfflinePushPolicy::*;
    // Each offline device hears, whoever else is online; never the kicked one.
    assert_eq!(
        offline_pushes(EachOfflineDevice, true).await,
        vec![device(3)]
    );
    assert_eq!(
        offline_pushes(EachOfflineDevice, false).await,
        vec![device(2), device(3)]
    );
    // Only while no other device is online.
    assert_eq!(offline_pushes(WhenAllOthersOffline, true).await, vec![]);
    assert_eq!(
        offline_pushes(WhenAllOthersOffline, false).await,
        vec![device(2), device(3)]
    );
}

on_both_links!(device_limit_refuses_the_newcomer_below_at_above);
async fn device_limit_refuses_the_newcomer_below_at_above() {
    let mut config = config(StoreLocation::Memory);
    config.devices_online_max = 2;
    config.overflow_policy = OverflowPolicy::RefuseNew;
    let relay = start(config).await;
    let mut a = login(&relay, "alice", 1).await; // below the limit
    let b = login(&relay, "alice", 2).await; // at the limit
    let token = relay.token(&account("alice"));
    assert_eq!(
        refused(&relay, client_config("alice", 3, token.clone())).await,
        ErrorCode::TooManyDevices
    );
    // Another account is not affected, nor is a reconnect of an online device.
    drop(login(&relay, "bob", 3).await);
    drop(login(&relay, "alice", 2).await);
    drop(b);
    // Once a device is offline, the newcomer gets in (the relay learns of the
    // close asynchronously: retry, bounded).
    let mut admitted = None;
    for _ in 0..100 {
        let mut conn = open(&relay, client_config("alice", 3, token.clone())).await;
        match next(&mut conn).await {
            SessionEvent::Connected(_) => {
                admitted = Some(conn);
                break;
            }
            SessionEvent::Refused(refusal) if refusal.code == ErrorCode::TooManyDevices => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(admitted.is_some(), "admitted after a device left");
    round_trip(&mut a).await;
    relay.stop().await.expect("the relay stops");
}

on_both_links!(device_limit_can_kick_the_longest_idle_device);
async fn device_limit_can_kick_the_longest_idle_device() {
    let mut config = config(StoreLocation::Memory);
    config.devices_online_max = 2;
    config.overflow_policy = OverflowPolicy::KickLongestIdle;
    let relay = start(config).await;
    let mut a = login(&relay, "alice", 1).await;
    let mut b = login(&relay, "alice", 2).await;
    // B was active after A: A is the idlest.
    push_acked(&mut b, deltas(1, 1)).await;
    let mut c = login(&relay, "alice", 3).await;
    assert_eq!(
        kicked(&mut a).await,
        OfflineReason::Displaced { by: dev_ref(3) }
    );
    round_trip(&mut b).await;
    round_trip(&mut c).await;
    // Displacement holds: A's key no longer logs it in (else two devices
    // over the limit would displace each other forever) ...
    let refusal = refusal(&relay, device_config("alice", 1)).await;
    assert_eq!(refusal.code, ErrorCode::CredentialsRevoked);
    assert_eq!(
        refusal.reason,
        Some(OfflineReason::Displaced { by: dev_ref(3) })
    );
    // ... a new login token does, displacing B, now the idlest.
    let mut a = login(&relay, "alice", 1).await;
    assert_eq!(
        kicked(&mut b).await,
        OfflineReason::Displaced { by: dev_ref(1) }
    );
    round_trip(&mut a).await;
    relay.stop().await.expect("the relay stops");
}

on_both_links!(a_kicked_device_stays_out_whatever_it_holds_until_a_new_login_token);
/// The hole issue 11 was filed for, closed: a kicked device's login token
/// does not log anyone in, under its id or a new one.
async fn a_kicked_device_stays_out_whatever_it_holds_until_a_new_login_token() {
    let relay = start(config(StoreLocation::Memory)).await;
    let mut phone = login(&relay, "alice", 1).await;
    let stolen_token = relay.token(&account("alice"));
    let mut stolen = login_with(&relay, client_config("alice", 2, stolen_token.clone())).await;
    let mut tablet = login(&relay, "alice", 3).await;
    // The token enrolled one device: no second device gets in with it.
    assert_eq!(
        refused(&relay, client_config("alice", 4, stolen_token.clone())).await,
        ErrorCode::LoginTokenUsed
    );
    phone.session().kick(device(2)).unwrap();
    phone.flush().await.unwrap();
    assert_eq!(
        kicked(&mut stolen).await,
        OfflineReason::KickedByDevice { by: dev_ref(1) }
    );
    for watcher in [&mut phone, &mut tablet] {
        expect(watcher, |e| {
            matches!(e, SessionEvent::DeviceListChanged).then_some(())
        })
        .await;
    }
    // Its file (id and key), with or without the token it used, and the
    // token under a new device id: all refused, each with its own code.
    let refusal = refusal(&relay, device_config("alice", 2)).await;
    assert_eq!(refusal.code, ErrorCode::CredentialsRevoked);
    assert_eq!(
        refusal.reason,
        Some(OfflineReason::KickedByDevice { by: dev_ref(1) })
    );
    assert_eq!(
        refused(&relay, client_config("alice", 2, stolen_token.clone())).await,
        ErrorCode::LoginTokenUsed
    );
    assert_eq!(
        refused(&relay, client_config("alice", 5, stolen_token)).await,
        ErrorCode::LoginTokenUsed
    );
    // The kicker's list shows why.
    phone.session().list_devices().unwrap();
    let devices = expect(&mut phone, |e| match e {
        SessionEvent::Devices(list) => Some(list.clone()),
        _ => None,
    })
    .await;
    let entry = devices.iter().find(|d| d.id == device(2)).unwrap();
    assert!(!entry.online);
    assert!(matches!(
        &entry.enrollment,
        EnrollmentState::Revoked {
            reason: OfflineReason::KickedByDevice { by },
            ..
        } if by.id == device(1)
    ));
    // A new login token lets the device back in, with its own key.
    let mut back = login(&relay, "alice", 2).await;
    round_trip(&mut back).await;
    // Kicking a device the account does not have, or yourself, is refused
    // without closing the connection.
    drop(login(&relay, "bob", 9).await);
    for target in [device(9), device(77), device(1)] {
        phone.session().kick(target).unwrap();
        let code = expect(&mut phone, |e| match e {
            SessionEvent::Error { code, .. } => Some(*code),
            _ => None,
        })
        .await;
        let want = if target == device(1) {
            ErrorCode::InvalidRequest
        } else {
            ErrorCode::NotFound
        };
        assert_eq!(code, want);
    }
    round_trip(&mut phone).await;
    round_trip(&mut tablet).await;
    relay.stop().await.expect("the relay stops");
}

on_both_links!(kick_all_others_leaves_only_the_kicker_online);
async fn kick_all_others_leaves_only_the_kicker_online() {
    let relay = start(config(StoreLocation::Memory)).await;
    let mut a = login(&relay, "alice", 1).await;
    let mut b = login(&relay, "alice", 2).await;
    let mut c = login(&relay, "alice", 3).await;
    let mut bob = login(&relay, "bob", 4).await;
    a.session().kick_all_others().unwrap();
    a.flush().await.unwrap();
    for other in [&mut b, &mut c] {
        assert_eq!(
            kicked(other).await,
            OfflineReason::KickedByDevice { by: dev_ref(1) }
        );
    }
    a.session().list_devices().unwrap();
    let devices = expect(&mut a, |e| match e {
        SessionEvent::Devices(list) => Some(list.clone()),
        _ => None,
    })
    .await;
    let online: Vec<_> = devices.iter().filter(|d| d.online).map(|d| d.id).collect();
    assert_eq!(online, vec![device(1)]);
    assert_eq!(devices.len(), 3, "kicked devices stay listed");
    assert_eq!(
        refused(&relay, device_config("alice", 3)).await,
        ErrorCode::CredentialsRevoked
    );
    round_trip(&mut a).await;
    round_trip(&mut bob).await; // another account is untouched
    relay.stop().await.expect("the relay stops");
}

on_both_links!(kick_all_revokes_every_device_the_kicker_included);
async fn kick_all_revokes_every_device_the_kicker_included() {
    let relay = start(config(StoreLocation::Memory)).await;
    let mut a = login(&relay, "alice", 1).await;
    let mut b = login(&relay, "alice", 2).await;
    let mut bob = login(&relay, "bob", 1).await;
    a.session().kick_all().unwrap();
    a.flush().await.unwrap();
    let reason = OfflineReason::KickedByDevice { by: dev_ref(1) };
    assert_eq!(kicked(&mut b).await, reason);
    assert_eq!(kicked(&mut a).await, reason);
    for n in [1, 2] {
        assert_eq!(
            refused(&relay, device_config("alice", n)).await,
            ErrorCode::CredentialsRevoked
        );
    }
    round_trip(&mut bob).await;
    drop(login(&relay, "alice", 1).await);
    relay.stop().await.expect("the relay stops");
}

on_both_links!(a_device_that_logs_out_needs_a_new_login_token);
async fn a_device_that_logs_out_needs_a_new_login_token() {
    let relay = start(config(StoreLocation::Memory)).await;
    let mut a = login(&relay, "alice", 1).await;
    drop(login(&relay, "alice", 2).await);
    // Its key alone logs it in while it is logged in...
    let mut b = login_with(&relay, device_config("alice", 2)).await;
    b.session().logout().unwrap();
    b.flush().await.unwrap();
    assert_eq!(kicked(&mut b).await, OfflineReason::LoggedOut);
    expect(&mut a, |e| {
        matches!(e, SessionEvent::DeviceListChanged).then_some(())
    })
    .await;
    // ... and not once logged out.
    let refusal = refusal(&relay, device_config("alice", 2)).await;
    assert_eq!(
        (refusal.code, refusal.reason),
        (
            ErrorCode::CredentialsRevoked,
            Some(OfflineReason::LoggedOut)
        )
    );
    drop(login(&relay, "alice", 2).await);
    round_trip(&mut a).await;
    relay.stop().await.expect("the relay stops");
}

on_both_links!(accounts_are_isolated_and_bad_tokens_are_refused);
async fn accounts_are_isolated_and_bad_tokens_are_refused() {
    let relay = start(config(StoreLocation::Memory)).await;
    let mut alice = login(&relay, "alice", 1).await;
    push_acked(&mut alice, deltas(1, 5)).await;
    let mut bob = login(&relay, "bob", 1).await;
    let (_, got) = pull_all(&mut bob, 0).await;
    assert!(got.is_empty(), "bob sees none of alice's log");
    assert_eq!(
        push_acked(&mut bob, deltas(1, 1)).await,
        vec![1],
        "bob's log is his own"
    );
    // Same content as alice's first delta: stored again, in bob's log.
    let alice_token = relay.token(&account("alice"));
    assert_eq!(
        refused(&relay, client_config("bob", 2, alice_token)).await,
        ErrorCode::Unauthorized
    );
    let forged = token::issue_login(
        &tandem_relay::secret::Secret::from_bytes([1; 32]),
        &account("alice"),
        Purpose::Login,
        u64::MAX,
        [1; 16],
    );
    assert_eq!(
        refused(&relay, client_config("alice", 2, forged)).await,
        ErrorCode::Unauthorized
    );
    let expired = token::issue_login(&relay.secret, &account("alice"), Purpose::Login, 1, [2; 16]);
    assert_eq!(
        refused(&relay, client_config("alice", 2, expired)).await,
        ErrorCode::TokenExpired
    );
    let (_, got) = pull_all(&mut alice, 0).await;
    assert_eq!(got.len(), 5);
    relay.stop().await.expect("the relay stops");
}

on_both_links!(a_restart_on_sqlite_loses_nothing_acknowledged);
async fn a_restart_on_sqlite_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.sqlite");
    let first = deltas(1, 20);
    {
        let relay = start(config(StoreLocation::Sqlite(path.clone()))).await;
        let mut a = login(&relay, "alice", 1).await;
        assert_eq!(
            push_acked(&mut a, first.clone()).await,
            (1..=20).collect::<Vec<_>>()
        );
        a.session()
            .send_to_device(device(1), PayloadId([5; 16]), b"note to self".to_vec())
            .unwrap();
        expect(&mut a, |e| {
            matches!(e, SessionEvent::PayloadStored { .. }).then_some(())
        })
        .await;
        relay.stop().await.expect("the relay stops");
        // The open session was told, then closed.
        let code = expect(&mut a, |e| match e {
            SessionEvent::Error { code, .. } => Some(*code),
            _ => None,
        })
        .await;
        assert_eq!(code, ErrorCode::ShuttingDown);
    }
    let relay = start(config(StoreLocation::Sqlite(path))).await;
    let mut b = login(&relay, "alice", 2).await;
    let (_, got) = pull_all(&mut b, 0).await;
    assert_eq!(got.len(), 20);
    assert!(got
        .iter()
        .zip(&first)
        .all(|(g, s)| g.content_id == s.content_id() && g.origin == device(1)));
    // Idempotence survives the restart; new deltas continue the seqs.
    let mut batch = first[..2].to_vec();
    batch.extend(deltas(2, 1));
    assert_eq!(push_acked(&mut b, batch).await, vec![1, 2, 21]);
    // The payload waited across the restart too.
    let mut a = open(
        &relay,
        client_config("alice", 1, relay.token(&account("alice"))),
    )
    .await;
    assert!(matches!(next(&mut a).await, SessionEvent::Connected(_)));
    assert!(
        matches!(next(&mut a).await, SessionEvent::DevicePayload { ref bytes, .. } if bytes == b"note to self")
    );
    relay.stop().await.expect("the relay stops");
}

on_both_links!(payloads_reach_an_offline_device_once_it_connects_until_acked);
async fn payloads_reach_an_offline_device_once_it_connects_until_acked() {
    let relay = start(config(StoreLocation::Memory)).await;
    drop(login(&relay, "alice", 2).await);
    let mut a = login(&relay, "alice", 1).await;
    let id = PayloadId([7; 16]);
    for _ in 0..2 {
        // Twice: a resend with the same id is idempotent.
        a.session()
            .send_to_device(device(2), id, b"hello b".to_vec())
            .unwrap();
        let stored = expect(&mut a, |e| match e {
            SessionEvent::PayloadStored { id } => Some(*id),
            _ => None,
        })
        .await;
        assert_eq!(stored, id);
    }
    a.session()
        .send_to_device(device(99), PayloadId([8; 16]), b"nobody".to_vec())
        .unwrap();
    let code = expect(&mut a, |e| match e {
        SessionEvent::Error { code, .. } => Some(*code),
        _ => None,
    })
    .await;
    assert_eq!(code, ErrorCode::NotFound);

    let expected = SessionEvent::DevicePayload {
        from: device(1),
        id,
        bytes: b"hello b".to_vec(),
    };
    // Delivered on connect; not acked, so delivered again on the next one.
    for _ in 0..2 {
        let token = relay.token(&account("alice"));
        let mut b = open(&relay, client_config("alice", 2, token)).await;
        assert!(matches!(next(&mut b).await, SessionEvent::Connected(_)));
        assert_eq!(next(&mut b).await, expected);
        round_trip(&mut b).await; // exactly one copy came
    }
    let mut b = login(&relay, "alice", 2).await;
    assert_eq!(next(&mut b).await, expected);
    b.session().ack_payload(id).unwrap();
    round_trip(&mut b).await;
    drop(b);
    let token = relay.token(&account("alice"));
    let mut b = open(&relay, client_config("alice", 2, token)).await;
    assert!(matches!(next(&mut b).await, SessionEvent::Connected(_)));
    // An online recipient gets a payload at once.
    a.session()
        .send_to_device(device(2), PayloadId([9; 16]), b"live".to_vec())
        .unwrap();
    a.flush().await.unwrap();
    let got = expect(&mut b, |e| match e {
        SessionEvent::DevicePayload { id, .. } => Some(*id),
        _ => None,
    })
    .await;
    assert_eq!(got, PayloadId([9; 16]), "the acked payload never came back");
    relay.stop().await.expect("the relay stops");
}
