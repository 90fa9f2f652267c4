//! Every way a login is refused, over real TCP: each with its own typed
//! code, while the relay keeps serving a good device of the same account.

mod common;

use common::*;
use tandem_relay::secret::Secret;
use tandem_relay::token::{self, Purpose};
use tandem_relay::StoreLocation;
use tandem_transport::frame::AdminRequest;
use tandem_transport::{ErrorCode, Frame, OfflineReason, SessionEvent};

async fn refused_raw(raw: &mut Raw) -> ErrorCode {
    match raw.rest().await.last() {
        Some(Frame::Refused(r)) => r.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_code_and_good_devices_are_served_meanwhile() {
    let relay = start(config(StoreLocation::Memory)).await;
    let mut good = login(&relay, "alice", 1).await;
    let alice = account("alice");
    let check_good = async |good: &mut Conn| round_trip(good).await;

    // A login token that enrolled one device enrolls no other.
    let token = relay.token(&alice);
    drop(login_with(&relay, client_config("alice", 2, token.clone())).await);
    assert_eq!(
        refused(&relay, client_config("alice", 3, token)).await,
        ErrorCode::LoginTokenUsed
    );
    check_good(&mut good).await;

    // A signature over another connection's challenge.
    let hello = raw_hello(&relay, "alice", 4);
    let mut first = Raw::connect(&relay).await;
    let nonce_first = first.hello(&hello).await;
    let mut second = Raw::connect(&relay).await;
    let nonce_second = second.hello(&hello).await;
    assert_ne!(nonce_first, nonce_second, "every challenge is fresh");
    second.prove(&key(4), &hello, &nonce_first).await;
    assert_eq!(refused_raw(&mut second).await, ErrorCode::BadProof);
    // The first connection still logs in with its own challenge.
    first.prove(&key(4), &hello, &nonce_first).await;
    assert!(matches!(first.receive().await, Some(Frame::Welcome(_))));
    check_good(&mut good).await;

    // A recorded Hello and Proof, replayed on a new connection: the
    // challenge is another, so the proof is worth nothing.
    let hello = raw_hello(&relay, "alice", 5);
    let mut recorded = Raw::connect(&relay).await;
    let nonce = recorded.hello(&hello).await;
    let proof = Frame::Proof {
        public_key: key(5).public_key(),
        signature: key(5).prove(&hello, &nonce),
    };
    recorded.send(&proof).await;
    assert!(matches!(recorded.receive().await, Some(Frame::Welcome(_))));
    drop(recorded);
    let mut replay = Raw::connect(&relay).await;
    replay.hello(&hello).await;
    replay.send(&proof).await;
    assert_eq!(refused_raw(&mut replay).await, ErrorCode::BadProof);
    check_good(&mut good).await;

    // An enrolled id presented with another key, even with a fresh token.
    let mut thief = client_config("alice", 1, relay.token(&alice));
    thief.key = key(99);
    assert_eq!(refused(&relay, thief).await, ErrorCode::KeyMismatch);
    let mut thief = device_config("alice", 1);
    thief.key = key(99);
    assert_eq!(refused(&relay, thief).await, ErrorCode::KeyMismatch);
    check_good(&mut good).await;

    // Expired, forged, other-account and retired tokens.
    let expired = token::issue_login(&relay.secret, &alice, Purpose::Login, 1, [1; 16]);
    assert_eq!(
        refused(&relay, client_config("alice", 6, expired)).await,
        ErrorCode::TokenExpired
    );
    let forged = token::issue_login(
        &Secret::from_bytes([9; 32]),
        &alice,
        Purpose::Login,
        u64::MAX,
        [2; 16],
    );
    assert_eq!(
        refused(&relay, client_config("alice", 6, forged)).await,
        ErrorCode::Unauthorized
    );
    let bobs = relay.token(&account("bob"));
    assert_eq!(
        refused(&relay, client_config("alice", 6, bobs)).await,
        ErrorCode::Unauthorized
    );
    let retired = format!("t1.9999999999.{}", "ab".repeat(32));
    let refusal = refusal(&relay, client_config("alice", 6, retired)).await;
    assert_eq!(refusal.code, ErrorCode::AccountTokenRetired);
    assert!(refusal.text.contains("login token"), "{}", refusal.text);
    // No token, and never enrolled.
    assert_eq!(
        refused(&relay, device_config("alice", 6)).await,
        ErrorCode::NotEnrolled
    );
    check_good(&mut good).await;
    // None of these attempts used the good device's slot or changed it.
    assert_eq!(relay.counters.snapshot().logins_refused, 10);
    relay.stop().await.expect("the relay stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banned_and_removed_accounts_are_refused_with_their_own_codes() {
    let relay = start(config(StoreLocation::Memory)).await;
    let mut bob = login(&relay, "bob", 1).await;
    let mut alice = login(&relay, "alice", 1).await;
    let mut admin = relay.admin().await.expect("an operator's connection");
    admin
        .request(AdminRequest::Ban {
            account: account("alice"),
        })
        .await
        .unwrap();
    // The online device is told at once and disconnected.
    let reason = expect(&mut alice, |e| match e {
        SessionEvent::Kicked(reason) => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reason, OfflineReason::AccountBanned);
    for config in [
        device_config("alice", 1),
        client_config("alice", 2, relay.token(&account("alice"))),
    ] {
        assert_eq!(refused(&relay, config).await, ErrorCode::AccountBanned);
    }
    round_trip(&mut bob).await;
    // Unbanned, the device's key logs it in again: a ban revokes nothing.
    admin
        .request(AdminRequest::Unban {
            account: account("alice"),
        })
        .await
        .unwrap();
    let mut alice = login_with(&relay, device_config("alice", 1)).await;
    admin
        .request(AdminRequest::Remove {
            account: account("alice"),
        })
        .await
        .unwrap();
    let reason = expect(&mut alice, |e| match e {
        SessionEvent::Kicked(reason) => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(reason, OfflineReason::AccountRemoved);
    for config in [
        device_config("alice", 1),
        client_config("alice", 3, relay.token(&account("alice"))),
        client_config("alice", 3, relay.manage_token(&account("alice"))),
    ] {
        assert_eq!(refused(&relay, config).await, ErrorCode::AccountRemoved);
    }
    round_trip(&mut bob).await;
    relay.stop().await.expect("the relay stops");
}
